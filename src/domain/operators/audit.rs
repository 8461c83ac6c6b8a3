//! The audit log: who changed what, when, with the state before and after.

use serde::Serialize;

use crate::db::community::orgs::OrgRow;
use crate::db::operators::audit::{self as store, AuditFilter, AuditRow, NewAuditEntry};
use crate::db::{self, Db, Page, PageRequest, Tx};
use crate::domain::operators::access::{scope_of, Actor, Role};
use crate::domain::DomainResult;

/// Writes one entry in the change's own transaction, so the log and the change commit together.
/// `org` is the org the change belongs to: it decides who may read the entry; `target` is what
/// changed (its type and id), `change` the state before and after.
pub async fn record<B: Serialize, A: Serialize>(
    tx: &mut Tx,
    actor: &Actor,
    org: &OrgRow,
    action: &str,
    target: (&str, impl ToString),
    change: (Option<&B>, Option<&A>),
) -> DomainResult<()> {
    let ((target_type, target_id), (before, after)) = (target, change);
    store::insert(
        tx,
        NewAuditEntry {
            at: db::now_ms(),
            actor_key_id: actor.key_id,
            actor: &actor.label,
            org_id: org.id,
            org_path: &org.path,
            action,
            target_type,
            target_id: &target_id.to_string(),
            before_json: before.map(to_json),
            after_json: after.map(to_json),
            request_id: actor.request_id.as_deref(),
        },
    )
    .await?;
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Rows are plain structs of numbers and strings: serialising them cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Reads the log of the actor's subtree (or of `filter_org` inside it). Admins only.
pub async fn list(
    db: &Db,
    actor: &Actor,
    filter_org: Option<i64>,
    mut filter: AuditFilter,
    page: PageRequest,
) -> DomainResult<Page<AuditRow>> {
    filter.scope_path = scope_of(db, actor, filter_org).await?;
    actor.require(Role::Admin)?;
    Ok(store::list(db.reader(), &filter, page).await?)
}
