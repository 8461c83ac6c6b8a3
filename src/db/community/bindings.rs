//! Bindings of residents to rooms, and owners' invitations.

use serde::Serialize;
use sqlx::{Any, AnyPool, Executor};

use crate::db::community::roster::ResidentRole;
use crate::db::{subtree_pattern, DbResult, Page, PageRequest, Tx};

stored_enum! {
    /// Where a resident's binding to a room is: asked for, verified, rejected, or ended.
    pub enum BindingState ("binding state") {
        Pending = "pending",
        Verified = "verified",
        Rejected = "rejected",
        Ended = "ended",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct BindingRow {
    pub id: i64,
    pub resident_id: i64,
    pub room_id: i64,
    pub community_id: i64,
    pub community_name: String,
    pub building: String,
    pub unit: String,
    pub number: String,
    pub role: ResidentRole,
    pub state: BindingState,
    pub name: String,
    pub phone: String,
    pub verified_by: Option<String>,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub invited_by: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const SELECT: &str = "SELECT b.id, b.resident_id, b.room_id, b.community_id, c.name AS community_name, r.building, \
                             r.unit, r.number, b.role, b.state, b.name, b.phone, b.verified_by, b.reason, \
                             b.decided_by, b.decided_at, b.invited_by, b.created_at, b.updated_at \
                      FROM bindings b JOIN rooms r ON r.id = b.room_id JOIN orgs c ON c.id = b.community_id";

pub struct NewBinding<'a> {
    pub resident_id: i64,
    pub room_id: i64,
    pub community_id: i64,
    pub role: ResidentRole,
    pub state: BindingState,
    pub name: &'a str,
    pub phone: &'a str,
    pub verified_by: Option<&'a str>,
    pub decided_by: Option<&'a str>,
    pub invited_by: Option<i64>,
}

/// Inserts a binding unless the resident has an open one for the room; `None` when it has.
pub async fn insert(tx: &mut Tx, b: &NewBinding<'_>, now: i64) -> DbResult<Option<BindingRow>> {
    let decided_at = b.verified_by.map(|_| now);
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO bindings (resident_id, room_id, community_id, role, state, name, phone, verified_by, decided_by, \
             decided_at, invited_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(b.resident_id)
    .bind(b.room_id)
    .bind(b.community_id)
    .bind(b.role)
    .bind(b.state)
    .bind(b.name)
    .bind(b.phone)
    .bind(b.verified_by)
    .bind(b.decided_by)
    .bind(decided_at)
    .bind(b.invited_by)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        Some((id,)) => Ok(Some(get(&mut **tx, id).await?.expect("just inserted"))),
        None => Ok(None),
    }
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<BindingRow>> {
    let row = sqlx::query_as(&format!("{SELECT} WHERE b.id = $1")).bind(id).fetch_optional(ex).await?;
    Ok(row)
}

/// A decision on a binding: from which state to which, how it was verified, why, by whom.
#[derive(Clone, Copy, Debug)]
pub struct Transition<'a> {
    pub from: BindingState,
    pub to: BindingState,
    pub verified_by: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub decided_by: &'a str,
}

/// Moves a binding as decided, recording who decided and why; `None` if it was not in the state
/// the decision starts from (someone else decided first).
pub async fn transition(tx: &mut Tx, id: i64, d: &Transition<'_>, now: i64) -> DbResult<Option<BindingRow>> {
    let Transition { from, to, verified_by, reason, decided_by } = *d;
    let changed = sqlx::query(
        "UPDATE bindings SET state = $1, verified_by = COALESCE($2, verified_by), reason = $3, decided_by = $4, \
             decided_at = $5, updated_at = $5 \
         WHERE id = $6 AND state = $7",
    )
    .bind(to.as_str())
    .bind(verified_by)
    .bind(reason)
    .bind(decided_by)
    .bind(now)
    .bind(id)
    .bind(from.as_str())
    .execute(&mut **tx)
    .await?;
    if changed.rows_affected() == 0 {
        return Ok(None);
    }
    get(&mut **tx, id).await
}

/// Locks the room against concurrent bindings until the transaction ends, and counts its open
/// bindings.
pub async fn lock_room_and_count_open(tx: &mut Tx, room_id: i64) -> DbResult<i64> {
    sqlx::query("UPDATE rooms SET updated_at = updated_at WHERE id = $1").bind(room_id).execute(&mut **tx).await?;
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM bindings WHERE room_id = $1 AND state IN ('pending', 'verified')")
            .bind(room_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(n)
}

pub async fn of_resident(pool: &AnyPool, resident_id: i64) -> DbResult<Vec<BindingRow>> {
    let rows = sqlx::query_as(&format!("{SELECT} WHERE b.resident_id = $1 ORDER BY b.id DESC"))
        .bind(resident_id)
        .fetch_all(pool)
        .await?;
    Ok(rows)
}

/// The open bindings of a room.
pub async fn open_in_room(pool: &AnyPool, room_id: i64) -> DbResult<Vec<BindingRow>> {
    let rows =
        sqlx::query_as(&format!("{SELECT} WHERE b.room_id = $1 AND b.state IN ('pending', 'verified') ORDER BY b.id"))
            .bind(room_id)
            .fetch_all(pool)
            .await?;
    Ok(rows)
}

#[derive(Clone, Debug, Default)]
pub struct BindingFilter {
    pub scope_path: String,
    pub community_id: Option<i64>,
    pub room_id: Option<i64>,
    pub resident_id: Option<i64>,
    pub state: Option<BindingState>,
}

const FILTER: &str = "c.path LIKE $1 AND ($2 IS NULL OR b.community_id = $2) AND ($3 IS NULL OR b.room_id = $3) \
     AND ($4 IS NULL OR b.resident_id = $4) AND ($5 IS NULL OR b.state = $5)";

/// Oldest first, the order a review queue is worked in.
pub async fn list(pool: &AnyPool, f: &BindingFilter, page: PageRequest) -> DbResult<Page<BindingRow>> {
    let scope = subtree_pattern(&f.scope_path);
    let items = sqlx::query_as(&format!("{SELECT} WHERE {FILTER} ORDER BY b.id LIMIT $6 OFFSET $7"))
        .bind(&scope)
        .bind(f.community_id)
        .bind(f.room_id)
        .bind(f.resident_id)
        .bind(f.state)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(pool)
        .await?;
    let (total,): (i64,) =
        sqlx::query_as(&format!("SELECT COUNT(*) FROM bindings b JOIN orgs c ON c.id = b.community_id WHERE {FILTER}"))
            .bind(&scope)
            .bind(f.community_id)
            .bind(f.room_id)
            .bind(f.resident_id)
            .bind(f.state)
            .fetch_one(pool)
            .await?;
    Ok(Page { items, total })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: i64,
    pub code: String,
    pub binding_id: i64,
    pub room_id: i64,
    pub role: ResidentRole,
    pub expires_at: i64,
    pub redeemed_by: Option<i64>,
    pub created_at: i64,
}

const INVITATION: &str = "id, code, binding_id, room_id, role, expires_at, redeemed_by, created_at";

/// Inserts an invitation; `None` when the random code collided.
pub async fn insert_invitation(
    tx: &mut Tx,
    code: &str,
    binding_id: i64,
    room_id: i64,
    role: ResidentRole,
    expires_at: i64,
    now: i64,
) -> DbResult<Option<InvitationRow>> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO binding_invitations (code, binding_id, room_id, role, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (code) DO NOTHING RETURNING {INVITATION}"
    ))
    .bind(code)
    .bind(binding_id)
    .bind(room_id)
    .bind(role)
    .bind(expires_at)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn invitation_by_code(tx: &mut Tx, code: &str) -> DbResult<Option<InvitationRow>> {
    let row = sqlx::query_as(&format!("SELECT {INVITATION} FROM binding_invitations WHERE code = $1"))
        .bind(code)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row)
}

/// Marks an invitation used by a binding; `false` if it was used meanwhile.
pub async fn redeem_invitation(tx: &mut Tx, id: i64, binding_id: i64) -> DbResult<bool> {
    let r = sqlx::query("UPDATE binding_invitations SET redeemed_by = $1 WHERE id = $2 AND redeemed_by IS NULL")
        .bind(binding_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// The rooms of a resident's verified bindings in communities under `scope_path`, oldest first.
pub async fn verified_rooms_in_scope<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    resident_id: i64,
    scope_path: &str,
) -> DbResult<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT b.room_id FROM bindings b JOIN orgs c ON c.id = b.community_id \
         WHERE b.resident_id = $1 AND b.state = 'verified' AND c.path LIKE $2 ORDER BY b.id",
    )
    .bind(resident_id)
    .bind(subtree_pattern(scope_path))
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(|(r,)| r).collect())
}

/// How many verified bindings a resident has ever had (ended ones included).
pub async fn verified_ever(tx: &mut Tx, resident_id: i64) -> DbResult<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM bindings WHERE resident_id = $1 AND verified_by IS NOT NULL")
            .bind(resident_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(n)
}
