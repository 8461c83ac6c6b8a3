//! Rooms: community → building → unit → room number.

use serde::Serialize;
use sqlx::{Any, Executor};

use crate::db::{like_contains, subtree_pattern, DbResult, Page, PageRequest, Tx};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RoomRow {
    pub id: i64,
    pub community_id: i64,
    pub building: String,
    pub unit: String,
    pub number: String,
    pub archived_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, community_id, building, unit, number, archived_at, created_at, updated_at";

/// A room's address inside its community.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoomAddress {
    pub building: String,
    pub unit: String,
    pub number: String,
}

pub async fn insert(tx: &mut Tx, community_id: i64, addr: &RoomAddress, now: i64) -> DbResult<RoomRow> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO rooms (community_id, building, unit, number, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
    ))
    .bind(community_id)
    .bind(&addr.building)
    .bind(&addr.unit)
    .bind(&addr.number)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

/// Inserts the room unless its address exists; `None` when it did.
pub async fn insert_if_absent(tx: &mut Tx, community_id: i64, addr: &RoomAddress, now: i64) -> DbResult<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO rooms (community_id, building, unit, number, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (community_id, building, unit, number) DO NOTHING RETURNING id",
    )
    .bind(community_id)
    .bind(&addr.building)
    .bind(&addr.unit)
    .bind(&addr.number)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(id,)| id))
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<RoomRow>> {
    let row = sqlx::query_as(&format!("SELECT {COLUMNS} FROM rooms WHERE id = $1")).bind(id).fetch_optional(ex).await?;
    Ok(row)
}

/// Every room of a community, archived ones included: what an import compares against.
pub async fn all_in_community(tx: &mut Tx, community_id: i64) -> DbResult<Vec<RoomRow>> {
    let rows = sqlx::query_as(&format!("SELECT {COLUMNS} FROM rooms WHERE community_id = $1"))
        .bind(community_id)
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows)
}

#[derive(Clone, Debug, Default)]
pub struct RoomFilter {
    pub scope_path: String,
    pub community_id: Option<i64>,
    pub building: Option<String>,
    pub unit: Option<String>,
    pub number_contains: Option<String>,
    pub include_archived: bool,
}

const FILTER: &str = "c.path LIKE $1 AND ($2 IS NULL OR r.community_id = $2) \
     AND ($3 IS NULL OR r.building = $3) AND ($4 IS NULL OR r.unit = $4) \
     AND ($5 IS NULL OR r.number LIKE $5 ESCAPE '\\') AND ($6 = 1 OR r.archived_at IS NULL)";

pub async fn list(pool: &sqlx::AnyPool, filter: &RoomFilter, page: PageRequest) -> DbResult<Page<RoomRow>> {
    let scope = subtree_pattern(&filter.scope_path);
    let number = filter.number_contains.as_deref().map(like_contains);
    let archived = i64::from(filter.include_archived);
    let items = sqlx::query_as(&format!(
        "SELECT r.id, r.community_id, r.building, r.unit, r.number, r.archived_at, r.created_at, \
                r.updated_at \
         FROM rooms r JOIN orgs c ON c.id = r.community_id WHERE {FILTER} \
         ORDER BY r.community_id, r.building, r.unit, r.number, r.id LIMIT $7 OFFSET $8"
    ))
    .bind(&scope)
    .bind(filter.community_id)
    .bind(&filter.building)
    .bind(&filter.unit)
    .bind(&number)
    .bind(archived)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let (total,): (i64,) =
        sqlx::query_as(&format!("SELECT COUNT(*) FROM rooms r JOIN orgs c ON c.id = r.community_id WHERE {FILTER}"))
            .bind(&scope)
            .bind(filter.community_id)
            .bind(&filter.building)
            .bind(&filter.unit)
            .bind(&number)
            .bind(archived)
            .fetch_one(pool)
            .await?;
    Ok(Page { items, total })
}

pub async fn update(tx: &mut Tx, id: i64, addr: &RoomAddress, now: i64) -> DbResult<RoomRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE rooms SET building = $1, unit = $2, number = $3, updated_at = $4 \
         WHERE id = $5 RETURNING {COLUMNS}"
    ))
    .bind(&addr.building)
    .bind(&addr.unit)
    .bind(&addr.number)
    .bind(now)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn archive(tx: &mut Tx, id: i64, now: i64) -> DbResult<RoomRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE rooms SET archived_at = $1, updated_at = $1 WHERE id = $2 RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

/// How many active rooms a community has.
pub async fn count_active_in_community(tx: &mut Tx, community_id: i64) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM rooms WHERE community_id = $1 AND archived_at IS NULL")
        .bind(community_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(n)
}

/// The room at an address in a community.
pub async fn find(tx: &mut Tx, community_id: i64, addr: &RoomAddress) -> DbResult<Option<RoomRow>> {
    let row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rooms WHERE community_id = $1 AND building = $2 AND unit = $3 AND number = $4"
    ))
    .bind(community_id)
    .bind(&addr.building)
    .bind(&addr.unit)
    .bind(&addr.number)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}
