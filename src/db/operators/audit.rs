//! The audit log: one row per admin change, written in the change's own transaction.

use sqlx::AnyPool;

use crate::db::{subtree_pattern, DbResult, Page, PageRequest, Tx};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor_key_id: Option<i64>,
    pub actor: String,
    pub org_id: i64,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub request_id: Option<String>,
}

const COLUMNS: &str = "id, at, actor_key_id, actor, org_id, action, target_type, target_id, \
                       before_json, after_json, request_id";

pub struct NewAuditEntry<'a> {
    pub at: i64,
    pub actor_key_id: Option<i64>,
    pub actor: &'a str,
    pub org_id: i64,
    pub org_path: &'a str,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub request_id: Option<&'a str>,
}

pub async fn insert(tx: &mut Tx, entry: NewAuditEntry<'_>) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_key_id, actor, org_id, org_path, action, target_type, \
                                target_id, before_json, after_json, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(entry.at)
    .bind(entry.actor_key_id)
    .bind(entry.actor)
    .bind(entry.org_id)
    .bind(entry.org_path)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(entry.before_json)
    .bind(entry.after_json)
    .bind(entry.request_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// The subtree to read: the caller's, or an org inside it.
    pub scope_path: String,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub actor_key_id: Option<i64>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

const FILTER: &str = "org_path LIKE $1 AND ($2 IS NULL OR action = $2) \
     AND ($3 IS NULL OR target_type = $3) AND ($4 IS NULL OR target_id = $4) \
     AND ($5 IS NULL OR actor_key_id = $5) AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7)";

/// Newest first.
pub async fn list(pool: &AnyPool, filter: &AuditFilter, page: PageRequest) -> DbResult<Page<AuditRow>> {
    let scope = subtree_pattern(&filter.scope_path);
    let items =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM audit_log WHERE {FILTER} ORDER BY id DESC LIMIT $8 OFFSET $9"))
            .bind(&scope)
            .bind(&filter.action)
            .bind(&filter.target_type)
            .bind(&filter.target_id)
            .bind(filter.actor_key_id)
            .bind(filter.since)
            .bind(filter.until)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(pool)
            .await?;
    let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM audit_log WHERE {FILTER}"))
        .bind(&scope)
        .bind(&filter.action)
        .bind(&filter.target_type)
        .bind(&filter.target_id)
        .bind(filter.actor_key_id)
        .bind(filter.since)
        .bind(filter.until)
        .fetch_one(pool)
        .await?;
    Ok(Page { items, total })
}
