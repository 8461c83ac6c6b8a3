//! Operator API keys: stored as SHA-256 hashes, bound to an org and a role.

use serde::Serialize;
use sqlx::{Any, Executor};

use crate::db::{subtree_pattern, DbResult, Page, PageRequest, Tx};

stored_enum! {
    /// What a key may do, in increasing power.
    #[derive(PartialOrd, Ord)]
    pub enum Role ("API key role") {
        /// Reads.
        Viewer = "viewer",
        /// Reads and day-to-day changes: rooms, rosters, campaigns, reviews.
        Operator = "operator",
        /// Everything in the subtree, including orgs, keys and the audit log.
        Admin = "admin",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: i64,
    pub org_id: i64,
    pub role: Role,
    pub name: String,
    pub prefix: String,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, org_id, role, name, prefix, created_by, created_at, revoked_at";

/// A live key found by its hash, with what authorisation needs of its org.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ActiveKey {
    pub id: i64,
    pub org_id: i64,
    pub org_path: String,
    pub role: String,
    pub name: String,
    pub prefix: String,
}

pub struct NewApiKey<'a> {
    pub org_id: i64,
    pub role: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub created_by: Option<i64>,
}

pub async fn insert(tx: &mut Tx, key: &NewApiKey<'_>, now: i64) -> DbResult<ApiKeyRow> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO api_keys (org_id, role, name, prefix, key_hash, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(key.org_id)
    .bind(key.role)
    .bind(key.name)
    .bind(key.prefix)
    .bind(key.key_hash)
    .bind(key.created_by)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

/// The key with this hash, if it is neither revoked nor bound to an archived org.
pub async fn find_active(pool: &sqlx::AnyPool, key_hash: &str) -> DbResult<Option<ActiveKey>> {
    let row = sqlx::query_as(
        "SELECT k.id, k.org_id, o.path AS org_path, k.role, k.name, k.prefix \
         FROM api_keys k JOIN orgs o ON o.id = k.org_id \
         WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND o.archived_at IS NULL",
    )
    .bind(key_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<ApiKeyRow>> {
    let row =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1")).bind(id).fetch_optional(ex).await?;
    Ok(row)
}

#[derive(Clone, Debug, Default)]
pub struct ApiKeyFilter {
    pub scope_path: String,
    pub org_id: Option<i64>,
    pub include_revoked: bool,
}

const FILTER: &str = "o.path LIKE $1 AND ($2 IS NULL OR k.org_id = $2) AND ($3 = 1 OR k.revoked_at IS NULL)";

pub async fn list(pool: &sqlx::AnyPool, filter: &ApiKeyFilter, page: PageRequest) -> DbResult<Page<ApiKeyRow>> {
    let scope = subtree_pattern(&filter.scope_path);
    let revoked = i64::from(filter.include_revoked);
    let items = sqlx::query_as(&format!(
        "SELECT k.id, k.org_id, k.role, k.name, k.prefix, k.created_by, k.created_at, k.revoked_at \
         FROM api_keys k JOIN orgs o ON o.id = k.org_id WHERE {FILTER} \
         ORDER BY k.id LIMIT $4 OFFSET $5"
    ))
    .bind(&scope)
    .bind(filter.org_id)
    .bind(revoked)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let (total,): (i64,) =
        sqlx::query_as(&format!("SELECT COUNT(*) FROM api_keys k JOIN orgs o ON o.id = k.org_id WHERE {FILTER}"))
            .bind(&scope)
            .bind(filter.org_id)
            .bind(revoked)
            .fetch_one(pool)
            .await?;
    Ok(Page { items, total })
}

/// Revokes the key; revoking twice keeps the first time.
pub async fn revoke(tx: &mut Tx, id: i64, now: i64) -> DbResult<ApiKeyRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}
