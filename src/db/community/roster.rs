//! A community's resident roster: who lives in which room, as the property company knows it.

use serde::Serialize;
use sqlx::{Any, Executor};

use crate::db::{like_contains, subtree_pattern, DbResult, Page, PageRequest, Tx};

stored_enum! {
    /// How a person lives in a room: its owner (业主), the owner's family (家属) or a tenant (租户).
    pub enum ResidentRole ("resident role") {
        Owner = "owner",
        Family = "family",
        Tenant = "tenant",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RosterRow {
    pub id: i64,
    pub community_id: i64,
    pub room_id: i64,
    pub building: String,
    pub unit: String,
    pub number: String,
    pub name: String,
    pub phone: String,
    pub role: ResidentRole,
    pub created_at: i64,
    pub updated_at: i64,
}

const SELECT: &str = "SELECT e.id, e.community_id, e.room_id, r.building, r.unit, r.number, e.name, \
                             e.phone, e.role, e.created_at, e.updated_at \
                      FROM roster_entries e JOIN rooms r ON r.id = e.room_id";

/// One person of the roster, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterFields {
    pub name: String,
    pub phone: String,
    pub role: ResidentRole,
}

async fn fetch(tx: &mut Tx, id: i64) -> DbResult<RosterRow> {
    let row = sqlx::query_as(&format!("{SELECT} WHERE e.id = $1")).bind(id).fetch_one(&mut **tx).await?;
    Ok(row)
}

pub async fn insert(
    tx: &mut Tx,
    community_id: i64,
    room_id: i64,
    fields: &RosterFields,
    now: i64,
) -> DbResult<RosterRow> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO roster_entries (community_id, room_id, name, phone, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
    )
    .bind(community_id)
    .bind(room_id)
    .bind(&fields.name)
    .bind(&fields.phone)
    .bind(fields.role)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    fetch(tx, id).await
}

/// Inserts the entry unless (room, phone) exists; `None` when it did.
pub async fn insert_if_absent(
    tx: &mut Tx,
    community_id: i64,
    room_id: i64,
    fields: &RosterFields,
    now: i64,
) -> DbResult<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO roster_entries (community_id, room_id, name, phone, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (room_id, phone) DO NOTHING RETURNING id",
    )
    .bind(community_id)
    .bind(room_id)
    .bind(&fields.name)
    .bind(&fields.phone)
    .bind(fields.role)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(id,)| id))
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<RosterRow>> {
    let row = sqlx::query_as(&format!("{SELECT} WHERE e.id = $1")).bind(id).fetch_optional(ex).await?;
    Ok(row)
}

/// Every entry of a community: what an import compares against.
pub async fn all_in_community(tx: &mut Tx, community_id: i64) -> DbResult<Vec<RosterRow>> {
    let rows =
        sqlx::query_as(&format!("{SELECT} WHERE e.community_id = $1")).bind(community_id).fetch_all(&mut **tx).await?;
    Ok(rows)
}

#[derive(Clone, Debug, Default)]
pub struct RosterFilter {
    pub scope_path: String,
    pub community_id: Option<i64>,
    pub room_id: Option<i64>,
    pub phone: Option<String>,
    pub name_contains: Option<String>,
}

const FILTER: &str = "c.path LIKE $1 AND ($2 IS NULL OR e.community_id = $2) \
     AND ($3 IS NULL OR e.room_id = $3) AND ($4 IS NULL OR e.phone = $4) \
     AND ($5 IS NULL OR e.name LIKE $5 ESCAPE '\\')";

pub async fn list(pool: &sqlx::AnyPool, filter: &RosterFilter, page: PageRequest) -> DbResult<Page<RosterRow>> {
    let scope = subtree_pattern(&filter.scope_path);
    let name = filter.name_contains.as_deref().map(like_contains);
    let items = sqlx::query_as(&format!(
        "{SELECT} JOIN orgs c ON c.id = e.community_id WHERE {FILTER} \
         ORDER BY r.building, r.unit, r.number, e.id LIMIT $6 OFFSET $7"
    ))
    .bind(&scope)
    .bind(filter.community_id)
    .bind(filter.room_id)
    .bind(&filter.phone)
    .bind(&name)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let (total,): (i64,) = sqlx::query_as(&format!(
        "SELECT COUNT(*) FROM roster_entries e JOIN orgs c ON c.id = e.community_id WHERE {FILTER}"
    ))
    .bind(&scope)
    .bind(filter.community_id)
    .bind(filter.room_id)
    .bind(&filter.phone)
    .bind(&name)
    .fetch_one(pool)
    .await?;
    Ok(Page { items, total })
}

pub async fn update(tx: &mut Tx, id: i64, room_id: i64, fields: &RosterFields, now: i64) -> DbResult<RosterRow> {
    sqlx::query(
        "UPDATE roster_entries SET room_id = $1, name = $2, phone = $3, role = $4, updated_at = $5 \
         WHERE id = $6",
    )
    .bind(room_id)
    .bind(&fields.name)
    .bind(&fields.phone)
    .bind(fields.role)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    fetch(tx, id).await
}

pub async fn delete(tx: &mut Tx, id: i64) -> DbResult<()> {
    sqlx::query("DELETE FROM roster_entries WHERE id = $1").bind(id).execute(&mut **tx).await?;
    Ok(())
}

/// How many entries point at a room.
pub async fn count_for_room(tx: &mut Tx, room_id: i64) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM roster_entries WHERE room_id = $1")
        .bind(room_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(n)
}

/// The entries of one room.
pub async fn all_in_room(tx: &mut Tx, room_id: i64) -> DbResult<Vec<RosterRow>> {
    let rows = sqlx::query_as(&format!("{SELECT} WHERE e.room_id = $1")).bind(room_id).fetch_all(&mut **tx).await?;
    Ok(rows)
}
