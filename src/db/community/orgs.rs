//! Orgs: the tree of platform, property companies, communities and merchants.

use serde::Serialize;
use sqlx::{Any, Executor};

use crate::db::{like_contains, subtree_pattern, DbResult, Page, PageRequest, Tx};

stored_enum! {
    /// What an org is in the tree.
    pub enum OrgKind ("org kind") {
        Platform = "platform",
        Company = "company",
        Community = "community",
        Merchant = "merchant",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OrgRow {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub kind: OrgKind,
    pub name: String,
    pub path: String,
    pub address: Option<String>,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
    pub archived_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, parent_id, kind, name, path, address, contact_name, contact_phone, \
                       archived_at, created_at, updated_at";

/// The fields an org is created or edited with.
#[derive(Clone, Debug)]
pub struct OrgFields {
    pub name: String,
    pub address: Option<String>,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
}

/// Inserts an org under `parent` and sets its path from its new id.
pub async fn insert(tx: &mut Tx, parent: &OrgRow, kind: OrgKind, fields: &OrgFields, now: i64) -> DbResult<OrgRow> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO orgs (parent_id, kind, name, path, address, contact_name, contact_phone, \
                           created_at, updated_at) \
         VALUES ($1, $2, $3, '', $4, $5, $6, $7, $7) RETURNING id",
    )
    .bind(parent.id)
    .bind(kind)
    .bind(&fields.name)
    .bind(&fields.address)
    .bind(&fields.contact_name)
    .bind(&fields.contact_phone)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let path = format!("{}{id}/", parent.path);
    let row = sqlx::query_as(&format!("UPDATE orgs SET path = $1 WHERE id = $2 RETURNING {COLUMNS}"))
        .bind(path)
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row)
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<OrgRow>> {
    let row = sqlx::query_as(&format!("SELECT {COLUMNS} FROM orgs WHERE id = $1")).bind(id).fetch_optional(ex).await?;
    Ok(row)
}

/// What a list of orgs may be narrowed by. `scope_path` is always applied.
#[derive(Clone, Debug, Default)]
pub struct OrgFilter {
    pub scope_path: String,
    pub kind: Option<OrgKind>,
    pub parent_id: Option<i64>,
    pub name_contains: Option<String>,
    pub include_archived: bool,
}

const FILTER: &str = "path LIKE $1 AND ($2 IS NULL OR kind = $2) AND ($3 IS NULL OR parent_id = $3) \
     AND ($4 IS NULL OR name LIKE $4 ESCAPE '\\') AND ($5 = 1 OR archived_at IS NULL)";

pub async fn list(pool: &sqlx::AnyPool, filter: &OrgFilter, page: PageRequest) -> DbResult<Page<OrgRow>> {
    let name = filter.name_contains.as_deref().map(like_contains);
    let scope = subtree_pattern(&filter.scope_path);
    let archived = i64::from(filter.include_archived);
    let items = sqlx::query_as(&format!("SELECT {COLUMNS} FROM orgs WHERE {FILTER} ORDER BY id LIMIT $6 OFFSET $7"))
        .bind(&scope)
        .bind(filter.kind)
        .bind(filter.parent_id)
        .bind(&name)
        .bind(archived)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(pool)
        .await?;
    let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM orgs WHERE {FILTER}"))
        .bind(&scope)
        .bind(filter.kind)
        .bind(filter.parent_id)
        .bind(&name)
        .bind(archived)
        .fetch_one(pool)
        .await?;
    Ok(Page { items, total })
}

pub async fn update(tx: &mut Tx, id: i64, fields: &OrgFields, now: i64) -> DbResult<OrgRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE orgs SET name = $1, address = $2, contact_name = $3, contact_phone = $4, \
                         updated_at = $5 \
         WHERE id = $6 RETURNING {COLUMNS}"
    ))
    .bind(&fields.name)
    .bind(&fields.address)
    .bind(&fields.contact_name)
    .bind(&fields.contact_phone)
    .bind(now)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn archive(tx: &mut Tx, id: i64, now: i64) -> DbResult<OrgRow> {
    let row =
        sqlx::query_as(&format!("UPDATE orgs SET archived_at = $1, updated_at = $1 WHERE id = $2 RETURNING {COLUMNS}"))
            .bind(now)
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(row)
}

/// How many orgs directly under `id` are still active.
pub async fn count_active_children(tx: &mut Tx, id: i64) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orgs WHERE parent_id = $1 AND archived_at IS NULL")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(n)
}
