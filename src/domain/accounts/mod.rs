//! WeChat accounts: the official accounts, mini-programs and WeChat Pay merchants each owner
//! (a property company, or the platform for shared use) brings. They are records, managed through
//! the admin API ([`apps`], [`merchants`]) with their secrets sealed at rest (`crate::sealing`),
//! or, for a deployment configured the old way, the one account, mini-program and merchant of the
//! environment. [`registry`] holds what every instance routes by: pushes by appid, logins by the
//! mini-program's appid, payouts by the merchant of their funding owner.

pub mod apps;
pub mod import;
pub mod merchants;
pub mod registry;
pub mod rotation;

use sqlx::{Any, Executor};

use crate::codes::ErrorCode;
use crate::db::community::orgs::{self, OrgKind, OrgRow};
use crate::db::{DbError, Tx};
use crate::domain::accounts::registry::Accounts;
use crate::domain::operators::access::Actor;
use crate::domain::{DomainError, DomainResult};
use crate::sealing::SealingKeys;

/// The master keys, or the refusal to store secrets without them.
fn sealing(accounts: &Accounts) -> DomainResult<&SealingKeys> {
    accounts.keys().ok_or_else(|| {
        DomainError::conflict(
            ErrorCode::SealingNotConfigured,
            format!("{} is not set: app and merchant secrets cannot be stored", crate::sealing::SECRET_KEY_ENV),
        )
    })
}

/// The org a record is registered for: in the actor's reach (404 otherwise), a property company or
/// the platform, not archived. `what` names the records in the refusal.
async fn owner_in_reach<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    actor: &Actor,
    org_id: i64,
    what: &str,
) -> DomainResult<OrgRow> {
    let org = orgs::get(ex, org_id).await?.filter(|o| actor.reaches(&o.path)).ok_or(DomainError::NotFound("org"))?;
    if !matches!(org.kind, OrgKind::Company | OrgKind::Platform) {
        return Err(DomainError::invalid(
            ErrorCode::InvalidOwner,
            format!("{what} belong to a property company, or to the platform for shared use"),
        ));
    }
    if org.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::OrgArchived, "the org is archived"));
    }
    Ok(org)
}

/// The owner of a stored record, when the actor reaches it; otherwise the record is `what` not
/// found, as if it did not exist.
async fn reached_owner(accounts: &Accounts, actor: &Actor, org_id: i64, what: &'static str) -> DomainResult<OrgRow> {
    orgs::get(accounts.db().reader(), org_id)
        .await?
        .filter(|o| actor.reaches(&o.path))
        .ok_or(DomainError::NotFound(what))
}

/// Commits a change of records and re-reads them, so this instance routes by it at once.
async fn commit(tx: Tx, accounts: &Accounts) -> DomainResult<()> {
    tx.commit().await.map_err(DbError::from)?;
    if let Err(e) = accounts.refresh().await {
        tracing::warn!(error = %e, "re-reading the WeChat accounts after a change failed; the next round will");
    }
    Ok(())
}
