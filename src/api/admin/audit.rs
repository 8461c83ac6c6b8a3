//! `/admin/v1/audit-log`: every admin change, newest first.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use super::{ms, ts, PageInfo};
use crate::api::auth::OperatorKey;
use crate::api::query::QueryParams;
use crate::api::ApiTags;
use crate::db::operators::audit::{AuditFilter, AuditRow};
use crate::domain::operators::audit;
use crate::error::ApiError;
use crate::state::AppState;

pub struct AuditApi;

/// One change.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AuditEntry")]
pub struct AuditEntryView {
    pub id: i64,
    pub at: OffsetDateTime,
    /// The key that made the change; absent for the command line.
    #[oai(nullable)]
    pub actor_key_id: Option<i64>,
    /// Who made the change: `key:<prefix> (<name>)` or `cli`.
    pub actor: String,
    /// The org the change belongs to.
    pub org_id: i64,
    /// What was done, e.g. `org.create`, `room.import`, `api_key.revoke`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// The target before the change (absent for creations).
    #[oai(nullable)]
    pub before: Option<serde_json::Value>,
    /// The target after the change (absent for deletions), or an import's summary.
    #[oai(nullable)]
    pub after: Option<serde_json::Value>,
    /// The request that made the change.
    #[oai(nullable)]
    pub request_id: Option<String>,
}

impl From<AuditRow> for AuditEntryView {
    fn from(a: AuditRow) -> Self {
        let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
        Self {
            id: a.id,
            at: ts(a.at),
            actor_key_id: a.actor_key_id,
            actor: a.actor,
            org_id: a.org_id,
            action: a.action,
            target_type: a.target_type,
            target_id: a.target_id,
            before: parse(a.before_json),
            after: parse(a.after_json),
            request_id: a.request_id,
        }
    }
}

/// A page of audit entries.
#[derive(Debug, Clone, Object)]
pub struct AuditPage {
    pub items: Vec<AuditEntryView>,
    pub page: PageInfo,
}

list_query! {
    /// What `list_audit_log` is narrowed by.
    pub struct ListAuditLog {
        /// Only changes to this org and the orgs below it.
        pub org_id: Option<i64>,
        /// Only this action, e.g. `room.create`.
        #[oai(validator(max_length = 64))]
        pub action: Option<String>,
        /// Only changes to this kind of thing, e.g. `room`.
        #[oai(validator(max_length = 64))]
        pub target_type: Option<String>,
        /// Only changes to this thing (with `target_type`).
        #[oai(validator(max_length = 64))]
        pub target_id: Option<String>,
        /// Only changes made with this key.
        pub actor_key_id: Option<i64>,
        /// Only changes at or after this time (RFC 3339).
        pub since: Option<OffsetDateTime>,
        /// Only changes before this time (RFC 3339).
        pub until: Option<OffsetDateTime>,
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::Audit")]
impl AuditApi {
    /// Read the audit log of the orgs the caller reaches, newest first. Admins only.
    #[oai(path = "/audit-log", method = "get", operation_id = "list_audit_log")]
    async fn list_audit_log(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        QueryParams(query): QueryParams<ListAuditLog>,
    ) -> Result<Json<AuditPage>, ApiError> {
        let req = query.page_request();
        let filter = AuditFilter {
            scope_path: String::new(),
            action: query.action,
            target_type: query.target_type,
            target_id: query.target_id,
            actor_key_id: query.actor_key_id,
            since: query.since.map(ms),
            until: query.until.map(ms),
        };
        let found = audit::list(&state.db, &key.0, query.org_id, filter, req).await?;
        Ok(Json(AuditPage {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }
}
