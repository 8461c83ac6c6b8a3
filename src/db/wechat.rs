//! WeChat bookkeeping: the dedupe record of OA pushes, the binding of each push URL's (timestamp,
//! nonce) to its body, and the shared access-token cache.

use sqlx::{Any, AnyPool, Executor};

use crate::db::{Db, DbError, DbResult, Tx};
use crate::wechat::api::{StoreError, StoreFuture, StoredToken, TokenStore};

/// Claims a push for processing: `true` for the first delivery, `false` for a duplicate. Called in
/// the transaction that applies the push's effects, so the claim and the effects commit together;
/// a concurrent duplicate waits for that transaction and then sees the claim.
pub async fn claim_push(
    tx: &mut Tx,
    appid: &str,
    dedupe_key: &str,
    openid: &str,
    msg_type: &str,
    event: Option<&str>,
    now: i64,
) -> DbResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO wechat_pushes (appid, dedupe_key, openid, msg_type, event, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (appid, dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(appid)
    .bind(dedupe_key)
    .bind(openid)
    .bind(msg_type)
    .bind(event)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

/// Stores the answer given to a push, for its redeliveries.
pub async fn set_push_reply(tx: &mut Tx, appid: &str, dedupe_key: &str, reply: Option<&str>) -> DbResult<()> {
    sqlx::query("UPDATE wechat_pushes SET reply = $1 WHERE appid = $2 AND dedupe_key = $3")
        .bind(reply)
        .bind(appid)
        .bind(dedupe_key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A push seen before: `Some(reply)` (the reply itself may be absent: "success"). On the read
/// pool before handling, or in the handling transaction after a lost claim.
pub async fn seen_push<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    appid: &str,
    dedupe_key: &str,
) -> DbResult<Option<Option<String>>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT reply FROM wechat_pushes WHERE appid = $1 AND dedupe_key = $2")
            .bind(appid)
            .bind(dedupe_key)
            .fetch_optional(ex)
            .await?;
    Ok(row.map(|(r,)| r))
}

/// Pushes among `keys` seen before, with their replies.
pub async fn seen_pushes(tx: &mut Tx, appid: &str, keys: &[&str]) -> DbResult<Vec<(String, Option<String>)>> {
    let mut rows = Vec::new();
    for chunk in keys.chunks(crate::db::ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT dedupe_key, reply FROM wechat_pushes WHERE appid = $1 AND dedupe_key IN ({})",
            crate::db::in_list(chunk.len(), 2)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query_as::<_, (String, Option<String>)>(&sql).bind(appid);
        for k in chunk {
            q = q.bind(*k);
        }
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

/// A push handled, with the reply its redeliveries get.
#[derive(Clone, Debug)]
pub struct HandledPush<'a> {
    pub dedupe_key: &'a str,
    pub openid: &'a str,
    pub msg_type: &'a str,
    pub event: Option<&'a str>,
    pub reply: Option<&'a str>,
    pub received_at: i64,
}

/// Records many handled pushes in one statement. The (appid, dedupe key) key stays the guard: a
/// push handled meanwhile elsewhere fails the whole statement (and its transaction's effects).
pub async fn insert_pushes(tx: &mut Tx, appid: &str, pushes: &[HandledPush<'_>]) -> DbResult<()> {
    for chunk in pushes.chunks(crate::db::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO wechat_pushes (appid, dedupe_key, openid, msg_type, event, reply, received_at) VALUES {}",
            crate::db::values_list(chunk.len(), 7, 1)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query(&sql);
        for p in chunk {
            q = q.bind(appid).bind(p.dedupe_key).bind(p.openid).bind(p.msg_type).bind(p.event).bind(p.reply);
            q = q.bind(p.received_at);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A push URL's (timestamp, nonce) and the SHA-256 (hex) of the body that came with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonceClaim<'a> {
    pub url_timestamp: i64,
    pub nonce: &'a str,
    pub body_sha256: &'a str,
}

/// The body hash a push URL's (timestamp, nonce) is bound to, if a push was taken under it.
pub async fn nonce_binding<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    appid: &str,
    url_timestamp: i64,
    nonce: &str,
) -> DbResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT body_sha256 FROM wechat_push_nonces WHERE url_timestamp = $1 AND appid = $2 AND nonce = $3",
    )
    .bind(url_timestamp)
    .bind(appid)
    .bind(nonce)
    .fetch_optional(ex)
    .await?;
    Ok(row.map(|(h,)| h))
}

/// Binds each (timestamp, nonce) to its body unless it is bound already, in the caller's
/// transaction, one statement per [`crate::db::ROWS_PER_STATEMENT`] claims, and answers the claims
/// whose URL is bound to another body (refused), as indexes into `claims`. The claims must be
/// distinct pairs. A binding being made by a concurrent transaction is waited for.
///
/// The common case, every URL new, costs one insert that answers nothing back; only a chunk
/// where some URL was taken before (a redelivery under its own URL, or a captured one reused)
/// reads the bindings it met.
pub async fn bind_nonces(tx: &mut Tx, appid: &str, claims: &[NonceClaim<'_>], now: i64) -> DbResult<Vec<usize>> {
    let mut refused = Vec::new();
    for (c, chunk) in claims.chunks(crate::db::ROWS_PER_STATEMENT).enumerate() {
        let sql = format!(
            "INSERT INTO wechat_push_nonces (url_timestamp, appid, nonce, body_sha256, received_at) VALUES {} \
             ON CONFLICT (url_timestamp, appid, nonce) DO NOTHING",
            crate::db::values_list(chunk.len(), 5, 1)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query(&sql);
        for claim in chunk {
            q = q.bind(claim.url_timestamp).bind(appid).bind(claim.nonce).bind(claim.body_sha256).bind(now);
        }
        if q.execute(&mut **tx).await?.rows_affected() == chunk.len() as u64 {
            continue;
        }
        for (i, claim) in chunk.iter().enumerate() {
            let bound = nonce_binding(&mut **tx, appid, claim.url_timestamp, claim.nonce).await?;
            if bound.as_deref() != Some(claim.body_sha256) {
                refused.push(c * crate::db::ROWS_PER_STATEMENT + i);
            }
        }
    }
    Ok(refused)
}

/// Forgets the bindings of URLs dated before `before` (unix seconds): no push dated then passes
/// the timestamp window any more. Answers how many went.
pub async fn prune_nonces(pool: &AnyPool, before: i64) -> DbResult<u64> {
    let done =
        sqlx::query("DELETE FROM wechat_push_nonces WHERE url_timestamp < $1").bind(before).execute(pool).await?;
    Ok(done.rows_affected())
}

/// The cached token of an app.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TokenRow {
    pub access_token: Option<String>,
    pub expires_at: i64,
    pub lease_until: i64,
}

pub async fn token(pool: &AnyPool, appid: &str) -> DbResult<Option<TokenRow>> {
    let row = sqlx::query_as("SELECT access_token, expires_at, lease_until FROM wechat_tokens WHERE appid = $1")
        .bind(appid)
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

/// Takes the refresh lease when it is free or lapsed and no token valid past `fresh_until` is
/// stored. One writer wins; the others wait for the token it stores (a caller that looked before
/// the token arrived finds it stored and does not refresh again).
pub async fn take_token_lease(
    pool: &AnyPool,
    appid: &str,
    owner: &str,
    now: i64,
    until: i64,
    fresh_until: i64,
) -> DbResult<bool> {
    sqlx::query(
        "INSERT INTO wechat_tokens (appid, expires_at, lease_until, updated_at) VALUES ($1, 0, 0, $2) \
         ON CONFLICT (appid) DO NOTHING",
    )
    .bind(appid)
    .bind(now)
    .execute(pool)
    .await?;
    let taken = sqlx::query(
        "UPDATE wechat_tokens SET lease_owner = $1, lease_until = $2, updated_at = $3 \
         WHERE appid = $4 AND lease_until < $3 AND (access_token IS NULL OR expires_at <= $5)",
    )
    .bind(owner)
    .bind(until)
    .bind(now)
    .bind(appid)
    .bind(fresh_until)
    .execute(pool)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Stores a fresh token and frees the lease, if this owner still holds it.
pub async fn store_token(
    pool: &AnyPool,
    appid: &str,
    owner: &str,
    token: &str,
    expires_at: i64,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE wechat_tokens SET access_token = $1, expires_at = $2, lease_owner = NULL, lease_until = 0, \
                updated_at = $3 WHERE appid = $4 AND lease_owner = $5",
    )
    .bind(token)
    .bind(expires_at)
    .bind(now)
    .bind(appid)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn release_token_lease(pool: &AnyPool, appid: &str, owner: &str) -> DbResult<()> {
    sqlx::query("UPDATE wechat_tokens SET lease_owner = NULL, lease_until = 0 WHERE appid = $1 AND lease_owner = $2")
        .bind(appid)
        .bind(owner)
        .execute(pool)
        .await?;
    Ok(())
}

/// Expires the cached token only if it is still the one that failed, so a token another instance
/// just refreshed is not thrown away.
pub async fn expire_token_if(pool: &AnyPool, appid: &str, token: &str, now: i64) -> DbResult<bool> {
    let r =
        sqlx::query("UPDATE wechat_tokens SET expires_at = 0, updated_at = $1 WHERE appid = $2 AND access_token = $3")
            .bind(now)
            .bind(appid)
            .bind(token)
            .execute(pool)
            .await?;
    Ok(r.rows_affected() == 1)
}

/// The access tokens of WeChat's server API, shared by every instance through `wechat_tokens`.
#[derive(Clone, Debug)]
pub struct TokenTable(pub Db);

fn store_error(e: DbError) -> StoreError {
    StoreError(Box::new(e))
}

impl TokenStore for TokenTable {
    fn token<'a>(&'a self, appid: &'a str) -> StoreFuture<'a, Option<StoredToken>> {
        Box::pin(async move {
            let row = token(self.0.writer(), appid).await.map_err(store_error)?;
            Ok(row.map(|r| StoredToken { access_token: r.access_token, expires_at: r.expires_at }))
        })
    }

    fn take_lease<'a>(
        &'a self,
        appid: &'a str,
        owner: &'a str,
        now: i64,
        until: i64,
        fresh_until: i64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            take_token_lease(self.0.writer(), appid, owner, now, until, fresh_until).await.map_err(store_error)
        })
    }

    fn store<'a>(
        &'a self,
        appid: &'a str,
        owner: &'a str,
        token: &'a str,
        expires_at: i64,
        now: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            store_token(self.0.writer(), appid, owner, token, expires_at, now).await.map_err(store_error)
        })
    }

    fn release_lease<'a>(&'a self, appid: &'a str, owner: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move { release_token_lease(self.0.writer(), appid, owner).await.map_err(store_error) })
    }

    fn expire_if<'a>(&'a self, appid: &'a str, token: &'a str, now: i64) -> StoreFuture<'a, ()> {
        Box::pin(
            async move { expire_token_if(self.0.writer(), appid, token, now).await.map(|_| ()).map_err(store_error) },
        )
    }
}
