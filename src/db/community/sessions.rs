//! Mini-program sessions: bearer and refresh tokens, stored hashed.

use sqlx::AnyPool;

use crate::db::{DbResult, Tx};

/// A live session found by its token.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub id: i64,
    pub resident_id: i64,
    pub identity_id: i64,
    pub expires_at: i64,
    pub refresh_expires_at: i64,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, resident_id, identity_id, expires_at, refresh_expires_at, revoked_at";

pub struct NewSession<'a> {
    pub resident_id: i64,
    pub identity_id: i64,
    pub token_hash: &'a str,
    pub refresh_hash: &'a str,
    pub session_key: &'a str,
    pub expires_at: i64,
    pub refresh_expires_at: i64,
}

pub async fn insert(tx: &mut Tx, s: &NewSession<'_>, now: i64) -> DbResult<SessionRow> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO mp_sessions (resident_id, identity_id, token_hash, refresh_hash, session_key, expires_at, \
             refresh_expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(s.resident_id)
    .bind(s.identity_id)
    .bind(s.token_hash)
    .bind(s.refresh_hash)
    .bind(s.session_key)
    .bind(s.expires_at)
    .bind(s.refresh_expires_at)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

/// The unrevoked, unexpired session whose bearer token has this hash.
pub async fn by_token(pool: &AnyPool, token_hash: &str, now: i64) -> DbResult<Option<SessionRow>> {
    let row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM mp_sessions WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2"
    ))
    .bind(token_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

/// Revokes the unrevoked session whose refresh token has this hash and is unexpired, and answers
/// it: a refresh token works once.
/// A live session as the in-memory cache keeps it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LiveSession {
    pub token_hash: String,
    pub id: i64,
    pub resident_id: i64,
    pub identity_id: i64,
    pub expires_at: i64,
}

/// The newest live sessions, at most `limit`.
pub async fn live(pool: &AnyPool, now: i64, limit: i64) -> DbResult<Vec<LiveSession>> {
    let rows = sqlx::query_as(
        "SELECT token_hash, id, resident_id, identity_id, expires_at FROM mp_sessions \
         WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The sessions revoked at `since` or later.
pub async fn revoked_since(pool: &AnyPool, since: i64) -> DbResult<Vec<i64>> {
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM mp_sessions WHERE revoked_at >= $1").bind(since).fetch_all(pool).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

pub async fn take_by_refresh(tx: &mut Tx, refresh_hash: &str, now: i64) -> DbResult<Option<SessionRow>> {
    let row = sqlx::query_as(&format!(
        "UPDATE mp_sessions SET revoked_at = $1 \
         WHERE refresh_hash = $2 AND revoked_at IS NULL AND refresh_expires_at > $1 RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(refresh_hash)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

/// WeChat's session key of a session, kept for decrypting the mini-program's signed data.
pub async fn session_key(tx: &mut Tx, id: i64) -> DbResult<String> {
    let (key,): (String,) =
        sqlx::query_as("SELECT session_key FROM mp_sessions WHERE id = $1").bind(id).fetch_one(&mut **tx).await?;
    Ok(key)
}

pub async fn revoke(pool: &AnyPool, id: i64, now: i64) -> DbResult<()> {
    sqlx::query("UPDATE mp_sessions SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
