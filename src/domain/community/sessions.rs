//! Residents' mini-program sessions: a `wx.login` code becomes our own bearer token.
//!
//! The code is exchanged with WeChat (`jscode2session`) for the openid, the unionid (which links
//! the resident who followed the official account) and the session key, which stays here. The
//! bearer token and the refresh token are random, shown once and stored hashed; a refresh token
//! works once and replaces the whole session.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;

use crate::codes::ErrorCode;
use crate::db::community::sessions::{self as store, NewSession};
use crate::db::{self, Db, DbError};
use crate::domain::community::residents::{self, AppKind};
use crate::domain::operators::keys::hash_key;
use crate::domain::{DomainError, DomainResult};
use crate::wechat::api::{AppCredentials, WechatClient, WechatError};

/// The resident a request acts as: always from the session, never from the request.
#[derive(Clone, Debug)]
pub struct ResidentActor {
    pub resident_id: i64,
    pub session_id: i64,
    pub identity_id: i64,
}

/// A new session's tokens, shown to the client once.
#[derive(Clone, Debug)]
pub struct IssuedSession {
    pub resident_id: i64,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: i64,
    pub refresh_expires_at: i64,
}

/// How long tokens last, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub session_secs: i64,
    pub refresh_secs: i64,
}

const ACCESS_PREFIX: &str = "ms_";
const REFRESH_PREFIX: &str = "mr_";

fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// What WeChat's answer to a login code means for the client.
fn login_error(e: WechatError) -> DomainError {
    match e.errcode() {
        Some(40029) | Some(40163) => DomainError::Unauthenticated(
            "the login code is invalid, expired or already used; call wx.login for a new one".into(),
        ),
        Some(45011) => DomainError::RateLimited(60),
        Some(40226) => DomainError::Forbidden("WeChat blocked this user as high-risk".into()),
        Some(40013) | Some(40125) | Some(41002) | Some(41004) => {
            tracing::error!(error = %e, "WeChat refused the mini-program credentials (WECHAT_MP_APPID/SECRET)");
            DomainError::Upstream("login is unavailable; try again later".into())
        }
        _ => {
            tracing::warn!(error = %e, "jscode2session failed");
            DomainError::Upstream("WeChat is unavailable; try again".into())
        }
    }
}

/// Logs a resident in with a `wx.login` code.
pub async fn login(
    db: &Db,
    wechat: &WechatClient,
    mp: &AppCredentials,
    code: &str,
    lifetimes: Lifetimes,
) -> DomainResult<IssuedSession> {
    let code = code.trim();
    if code.is_empty() || code.len() > 128 {
        return Err(DomainError::Unauthenticated("a login code from wx.login is required".into()));
    }
    // The call to WeChat happens before any transaction opens.
    let wx = wechat.code_to_session(mp, code).await.map_err(login_error)?;
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let found =
        residents::find_or_create(&mut tx, AppKind::Mp, &mp.appid, &wx.openid, wx.unionid.as_deref(), now).await?;
    let issued = open_session(&mut tx, found.resident.id, found.identity.id, &wx.session_key, lifetimes, now).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(issued)
}

async fn open_session(
    tx: &mut db::Tx,
    resident_id: i64,
    identity_id: i64,
    session_key: &str,
    lifetimes: Lifetimes,
    now: i64,
) -> DomainResult<IssuedSession> {
    let access_token = random_token(ACCESS_PREFIX);
    let refresh_token = random_token(REFRESH_PREFIX);
    let row = store::insert(
        tx,
        &NewSession {
            resident_id,
            identity_id,
            token_hash: &hash_key(&access_token),
            refresh_hash: &hash_key(&refresh_token),
            session_key,
            expires_at: now + lifetimes.session_secs * 1000,
            refresh_expires_at: now + lifetimes.refresh_secs * 1000,
        },
        now,
    )
    .await?;
    Ok(IssuedSession {
        resident_id,
        access_token,
        refresh_token,
        expires_at: row.expires_at,
        refresh_expires_at: row.refresh_expires_at,
    })
}

/// Trades a refresh token (once) for a new session; the old session ends.
pub async fn refresh(
    db: &Db,
    cache: &SessionCache,
    refresh_token: &str,
    lifetimes: Lifetimes,
) -> DomainResult<IssuedSession> {
    let invalid = || DomainError::Unauthenticated("the refresh token is invalid, expired or already used".into());
    if !refresh_token.starts_with(REFRESH_PREFIX) {
        return Err(invalid());
    }
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let old = store::take_by_refresh(&mut tx, &hash_key(refresh_token), now).await?.ok_or_else(invalid)?;
    let session_key = store::session_key(&mut tx, old.id).await?;
    let issued = open_session(&mut tx, old.resident_id, old.identity_id, &session_key, lifetimes, now).await?;
    tx.commit().await.map_err(DbError::from)?;
    cache.forget_session(old.id);
    Ok(issued)
}

/// The resident behind a bearer token, if the session is live.
pub async fn authenticate(db: &Db, cache: &SessionCache, token: &str) -> DomainResult<Option<ResidentActor>> {
    if !token.starts_with(ACCESS_PREFIX) || token.len() != ACCESS_PREFIX.len() + 64 {
        return Ok(None);
    }
    let hash = hash_key(token);
    let now = db::now_ms();
    if let Some(actor) = cache.get(&hash, now) {
        return Ok(Some(actor));
    }
    let Some(s) = store::by_token(db.reader(), &hash, now).await? else { return Ok(None) };
    let actor = ResidentActor { resident_id: s.resident_id, session_id: s.id, identity_id: s.identity_id };
    cache.put(hash, actor.clone(), s.expires_at);
    Ok(Some(actor))
}

/// Ends the session; its tokens stop working at once on this instance, and within
/// [`REVOCATION_POLL`] on the others.
pub async fn logout(db: &Db, cache: &SessionCache, actor: &ResidentActor) -> DomainResult<()> {
    store::revoke(db.writer(), actor.session_id, db::now_ms()).await?;
    cache.forget_session(actor.session_id);
    Ok(())
}

/// How often an instance asks which sessions were revoked (by a logout or refresh on any
/// instance): the longest a revoked token still works on an instance that did not revoke it.
pub const REVOCATION_POLL: Duration = Duration::from_millis(500);
/// How far back each look reaches before the previous one, for clocks of instances that differ
/// and transactions that committed late.
const REVOCATION_OVERLAP_MS: i64 = 10_000;
/// Entries kept at most; past it, the cache starts over (it only saves reads).
const SESSION_CACHE_MAX: usize = 500_000;

/// The live sessions this instance knows, by token hash, so a request does not read its session:
/// loaded at start, added on first use, dropped when they expire or are revoked. A logout or
/// refresh on this instance drops its session at once; on another instance within
/// [`REVOCATION_POLL`], which [`SessionCache::spawn_sync`] keeps.
#[derive(Debug, Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<String, (ResidentActor, i64)>>,
}

impl SessionCache {
    fn get(&self, hash: &str, now_ms: i64) -> Option<ResidentActor> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (actor, expires_at) = entries.get(hash)?;
        (now_ms < *expires_at).then(|| actor.clone())
    }

    fn put(&self, hash: String, actor: ResidentActor, expires_at: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= SESSION_CACHE_MAX {
            let now = db::now_ms();
            entries.retain(|_, (_, expires_at)| now < *expires_at);
            if entries.len() >= SESSION_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(hash, (actor, expires_at));
    }

    fn forget_sessions(&self, ids: &HashSet<i64>) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, (a, _)| !ids.contains(&a.session_id));
    }

    fn forget_session(&self, session_id: i64) {
        self.forget_sessions(&HashSet::from([session_id]));
    }

    /// Loads the newest live sessions, so residents' first requests after a start read nothing.
    pub async fn preload(&self, db: &Db) -> DomainResult<usize> {
        let rows = store::live(db.reader(), db::now_ms(), SESSION_CACHE_MAX as i64 / 2).await?;
        let n = rows.len();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for s in rows {
            let actor = ResidentActor { resident_id: s.resident_id, session_id: s.id, identity_id: s.identity_id };
            entries.insert(s.token_hash, (actor, s.expires_at));
        }
        Ok(n)
    }

    /// Learns of revoked sessions every [`REVOCATION_POLL`] and drops them; drops expired ones
    /// now and then.
    pub fn spawn_sync(self: Arc<Self>, db: Db) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut since = db::now_ms() - REVOCATION_OVERLAP_MS;
            let mut ticks = 0u64;
            loop {
                tokio::time::sleep(REVOCATION_POLL).await;
                let now = db::now_ms();
                match store::revoked_since(db.reader(), since).await {
                    Ok(ids) => {
                        if !ids.is_empty() {
                            self.forget_sessions(&ids.into_iter().collect());
                        }
                        since = now - REVOCATION_OVERLAP_MS;
                    }
                    Err(e) => tracing::warn!(error = %e, "could not read revoked sessions; trying again"),
                }
                ticks += 1;
                if ticks % 120 == 0 {
                    self.entries
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .retain(|_, (_, expires_at)| now < *expires_at);
                }
            }
        })
    }
}

/// Fetches the phone number the resident shared through the mini-program's phone-number button
/// and keeps it, so bindings can match the roster by it.
pub async fn confirm_phone(
    db: &Db,
    wechat: &WechatClient,
    mp: &AppCredentials,
    actor: &ResidentActor,
    code: &str,
) -> DomainResult<String> {
    let phone = wechat.phone_number(mp, code.trim()).await.map_err(|e| match e.errcode() {
        Some(40029) | Some(40163) | Some(47001) => DomainError::invalid(
            ErrorCode::InvalidPhoneCode,
            "the phone-number code is invalid, expired or already used",
        ),
        _ => {
            tracing::warn!(error = %e, "getuserphonenumber failed");
            DomainError::Upstream("WeChat is unavailable; try again".into())
        }
    })?;
    let phone = crate::domain::community::roster::normalize_phone(&phone).unwrap_or(phone);
    db::community::residents::set_phone(db.writer(), actor.resident_id, &phone, db::now_ms()).await?;
    Ok(phone)
}
