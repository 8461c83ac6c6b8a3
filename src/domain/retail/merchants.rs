//! Merchants acting for themselves (the merchant API): an ordinary API key whose org is a
//! merchant. The key's org is the merchant it acts as; nothing else is reachable through it.
//! Its role is checked here, once, for every request: a viewer key reads, and only operator and
//! admin keys change anything (orders, refunds, write-offs, vouchers), so no merchant write can
//! forget the check.

use crate::db::community::orgs::OrgKind;
use crate::db::community::orgs::OrgRow;
use crate::db::{self, Db};
use crate::domain::operators::access::{Actor, Role};
use crate::domain::operators::keys;
use crate::domain::DomainResult;

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

/// What a request means to do with the merchant's things.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Looks only: any role of the merchant may.
    Read,
    /// Changes something: operator or admin keys only.
    Write,
}

/// The merchant behind a key, or `None` when the key is not good or its org is not a merchant;
/// `Forbidden` when the key's role may not do what the request means to (`intent`). The role
/// does not depend on what the request names, so refusing it first tells nothing about them.
pub async fn authenticate(
    db: &Db,
    secret: &str,
    request_id: Option<String>,
    intent: Intent,
) -> DomainResult<Option<MerchantActor>> {
    let Some(actor) = keys::authenticate(db, secret, request_id).await? else {
        return Ok(None);
    };
    let merchant = db::community::orgs::get(db.reader(), actor.org_id)
        .await?
        .filter(|o| o.kind == OrgKind::Merchant && o.archived_at.is_none());
    let Some(merchant) = merchant else {
        return Ok(None);
    };
    if intent == Intent::Write {
        actor.require(Role::Operator)?;
    }
    Ok(Some(MerchantActor { actor, merchant }))
}
