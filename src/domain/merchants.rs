//! Merchants acting for themselves (the merchant API): an ordinary API key whose org is a
//! merchant. The key's org is the merchant it acts as; nothing else is reachable through it.

use super::access::{self, Actor};
use super::DomainResult;
use crate::db::orgs::OrgRow;
use crate::db::{self, Db};

/// A merchant's till or shop, authenticated by one of the merchant's keys.
#[derive(Clone, Debug)]
pub struct MerchantActor {
    /// The key, as the audit log names it.
    pub actor: Actor,
    /// The merchant org the key belongs to.
    pub merchant: OrgRow,
}

impl MerchantActor {
    pub fn merchant_id(&self) -> i64 {
        self.merchant.id
    }

    /// The property company the merchant belongs to (the org just under the platform).
    pub fn company_id(&self) -> i64 {
        self.merchant.path.split('/').filter(|s| !s.is_empty()).nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    /// The merchant's name, for records residents see.
    pub fn name(&self) -> &str {
        &self.merchant.name
    }
}

/// The merchant behind a key, or `None` when the key is not good or its org is not a merchant.
pub async fn authenticate(db: &Db, secret: &str, request_id: Option<String>) -> DomainResult<Option<MerchantActor>> {
    let Some(actor) = access::authenticate(db, secret, request_id).await? else {
        return Ok(None);
    };
    let merchant =
        db::orgs::get(db.reader(), actor.org_id).await?.filter(|o| o.kind == "merchant" && o.archived_at.is_none());
    Ok(merchant.map(|merchant| MerchantActor { actor, merchant }))
}
