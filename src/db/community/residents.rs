//! Residents and their per-app WeChat identities.

use serde::Serialize;
use sqlx::{Any, Executor};

use crate::db::{DbResult, Tx};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ResidentRow {
    pub id: i64,
    pub unionid: Option<String>,
    pub invite_code: String,
    pub created_at: i64,
    pub updated_at: i64,
}

stored_enum! {
    /// Which app a resident's WeChat identity belongs to.
    pub enum AppKind ("app kind") {
        /// The official account (公众号).
        Oa = "oa",
        /// The mini-program (小程序).
        Mp = "mp",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct IdentityRow {
    pub id: i64,
    pub resident_id: i64,
    pub app_kind: AppKind,
    pub appid: String,
    pub openid: String,
    /// Follows the official account now.
    #[sqlx(try_from = "crate::db::Flag")]
    pub subscribed: bool,
    pub first_followed_at: Option<i64>,
    pub last_followed_at: Option<i64>,
    pub last_unfollowed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const RESIDENT: &str = "id, unionid, invite_code, created_at, updated_at";
const IDENTITY: &str = "id, resident_id, app_kind, appid, openid, subscribed, first_followed_at, \
                        last_followed_at, last_unfollowed_at, created_at, updated_at";

pub async fn get<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<ResidentRow>> {
    let row =
        sqlx::query_as(&format!("SELECT {RESIDENT} FROM residents WHERE id = $1")).bind(id).fetch_optional(ex).await?;
    Ok(row)
}

pub async fn by_unionid(tx: &mut Tx, unionid: &str) -> DbResult<Option<ResidentRow>> {
    let row = sqlx::query_as(&format!("SELECT {RESIDENT} FROM residents WHERE unionid = $1"))
        .bind(unionid)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row)
}

pub async fn by_invite_code(tx: &mut Tx, code: &str) -> DbResult<Option<ResidentRow>> {
    let row = sqlx::query_as(&format!("SELECT {RESIDENT} FROM residents WHERE invite_code = $1"))
        .bind(code)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row)
}

/// Inserts a resident; `None` when the unionid or the invite code is taken (no error, so the
/// transaction stays usable on PostgreSQL).
pub async fn insert(tx: &mut Tx, unionid: Option<&str>, invite_code: &str, now: i64) -> DbResult<Option<ResidentRow>> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO residents (unionid, invite_code, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT DO NOTHING RETURNING {RESIDENT}"
    ))
    .bind(unionid)
    .bind(invite_code)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

/// Records a unionid learnt later for a resident that had none.
pub async fn set_unionid(tx: &mut Tx, id: i64, unionid: &str, now: i64) -> DbResult<()> {
    sqlx::query("UPDATE residents SET unionid = $1, updated_at = $2 WHERE id = $3 AND unionid IS NULL")
        .bind(unionid)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn identity<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    appid: &str,
    openid: &str,
) -> DbResult<Option<IdentityRow>> {
    let row = sqlx::query_as(&format!("SELECT {IDENTITY} FROM resident_identities WHERE appid = $1 AND openid = $2"))
        .bind(appid)
        .bind(openid)
        .fetch_optional(ex)
        .await?;
    Ok(row)
}

/// The identities of many residents, in one statement.
pub async fn identities_of_many(tx: &mut Tx, residents: &[i64]) -> DbResult<Vec<IdentityRow>> {
    let mut rows = Vec::new();
    for chunk in residents.chunks(crate::db::ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT {IDENTITY} FROM resident_identities WHERE resident_id IN ({})",
            crate::db::in_list(chunk.len(), 1)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query_as::<_, IdentityRow>(&sql);
        for r in chunk {
            q = q.bind(*r);
        }
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

/// The residents behind the app's openids that have one: (openid, resident).
pub async fn residents_by_openid(tx: &mut Tx, appid: &str, openids: &[&str]) -> DbResult<Vec<(String, i64)>> {
    let mut rows = Vec::new();
    for chunk in openids.chunks(crate::db::ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT openid, resident_id FROM resident_identities WHERE appid = $1 AND openid IN ({})",
            crate::db::in_list(chunk.len(), 2)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query_as::<_, (String, i64)>(&sql).bind(appid);
        for o in chunk {
            q = q.bind(*o);
        }
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

pub async fn identities_of<'c, E: Executor<'c, Database = Any>>(ex: E, resident_id: i64) -> DbResult<Vec<IdentityRow>> {
    let rows =
        sqlx::query_as(&format!("SELECT {IDENTITY} FROM resident_identities WHERE resident_id = $1 ORDER BY id"))
            .bind(resident_id)
            .fetch_all(ex)
            .await?;
    Ok(rows)
}

/// Inserts an identity unless (appid, openid) exists; `None` when it did.
pub async fn insert_identity(
    tx: &mut Tx,
    resident_id: i64,
    app_kind: AppKind,
    appid: &str,
    openid: &str,
    now: i64,
) -> DbResult<Option<IdentityRow>> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO resident_identities (resident_id, app_kind, appid, openid, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (appid, openid) DO NOTHING RETURNING {IDENTITY}"
    ))
    .bind(resident_id)
    .bind(app_kind)
    .bind(appid)
    .bind(openid)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

/// Marks a follow (`subscribed = true`) or an unfollow, and records it in the history.
pub async fn record_follow(
    tx: &mut Tx,
    identity: &IdentityRow,
    subscribed: bool,
    scene: Option<&str>,
    now: i64,
) -> DbResult<()> {
    if subscribed {
        sqlx::query(
            "UPDATE resident_identities SET subscribed = 1, first_followed_at = COALESCE(first_followed_at, $1), \
                    last_followed_at = $1, updated_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(identity.id)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE resident_identities SET subscribed = 0, last_unfollowed_at = $1, updated_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(identity.id)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("INSERT INTO follow_events (identity_id, resident_id, kind, scene, at) VALUES ($1, $2, $3, $4, $5)")
        .bind(identity.id)
        .bind(identity.resident_id)
        .bind(if subscribed { "follow" } else { "unfollow" })
        .bind(scene)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// How many follows a resident has ever made (through any identity).
pub async fn follow_count(tx: &mut Tx, resident_id: i64) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM follow_events WHERE resident_id = $1 AND kind = 'follow'")
        .bind(resident_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(n)
}

/// Records who invited a resident; `false` when the resident already had an inviter.
pub async fn insert_referral(tx: &mut Tx, invitee_id: i64, inviter_id: i64, scene: &str, now: i64) -> DbResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO referrals (invitee_id, inviter_id, scene, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (invitee_id) DO NOTHING RETURNING id",
    )
    .bind(invitee_id)
    .bind(inviter_id)
    .bind(scene)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

/// Records the phone number WeChat confirmed for a resident.
pub async fn set_phone(pool: &sqlx::AnyPool, id: i64, phone: &str, now: i64) -> DbResult<()> {
    sqlx::query("UPDATE residents SET phone = $1, updated_at = $2 WHERE id = $3")
        .bind(phone)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The phone number WeChat confirmed for a resident, if any.
pub async fn phone_of<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<String>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT phone FROM residents WHERE id = $1").bind(id).fetch_optional(ex).await?;
    Ok(row.and_then(|(p,)| p))
}
