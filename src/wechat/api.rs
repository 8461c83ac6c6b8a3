//! WeChat's server API (api.weixin.qq.com): access tokens and the calls made with them.
//!
//! Access tokens are shared by every instance through a [`TokenStore`] (linli's database table
//! `wechat_tokens`, see `crate::db::wechat::TokenTable`): one instance at a time takes a lease and
//! refreshes with `stable_token`; the others wait for the token it stores. When WeChat calls a token invalid or expired (40001, 40014, 42001), the cached
//! token is expired only if it is still the one that failed (another instance may have refreshed
//! it already), and the call is retried once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use serde::Deserialize;

use crate::secret::Secret;

/// A token store's answer, boxed so one store can be shared as `Arc<dyn TokenStore>`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The token store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("the access-token store failed")]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// An app's stored token and when it expires (unix ms).
#[derive(Clone, Debug)]
pub struct StoredToken {
    pub access_token: Option<String>,
    pub expires_at: i64,
}

/// Where instances share access tokens: one refreshes an app's token under a lease, the others
/// read what it stored. Every method is about one app.
pub trait TokenStore: Send + Sync {
    /// The stored token, if any.
    fn token<'a>(&'a self, appid: &'a str) -> StoreFuture<'a, Option<StoredToken>>;
    /// Takes the refresh lease for `owner` until `until`, when it is free or lapsed and no token
    /// valid past `fresh_until` is stored; answers whether it was taken.
    fn take_lease<'a>(
        &'a self,
        appid: &'a str,
        owner: &'a str,
        now: i64,
        until: i64,
        fresh_until: i64,
    ) -> StoreFuture<'a, bool>;
    /// Stores a fresh token and frees the lease, if `owner` still holds it.
    fn store<'a>(
        &'a self,
        appid: &'a str,
        owner: &'a str,
        token: &'a str,
        expires_at: i64,
        now: i64,
    ) -> StoreFuture<'a, ()>;
    /// Frees the lease, if `owner` holds it.
    fn release_lease<'a>(&'a self, appid: &'a str, owner: &'a str) -> StoreFuture<'a, ()>;
    /// Expires the stored token only if it is still `token` (another instance may have
    /// refreshed it already).
    fn expire_if<'a>(&'a self, appid: &'a str, token: &'a str, now: i64) -> StoreFuture<'a, ()>;
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An app's credentials.
#[derive(Clone, Debug)]
pub struct AppCredentials {
    pub appid: String,
    pub secret: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    #[error("WeChat answered errcode {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    #[error("calling WeChat failed")]
    Transport(#[source] reqwest::Error),
    #[error("WeChat's answer could not be read: {0}")]
    Decode(String),
    #[error("no access token arrived in time from the instance refreshing it")]
    TokenBusy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WechatError {
    /// WeChat's error code, when it answered with one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            WechatError::Api { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// The token was rejected: invalid, not the latest, or expired.
    fn is_token_rejection(&self) -> bool {
        matches!(self, WechatError::Api { errcode: 40001 | 40014 | 42001, .. })
    }
}

/// A follower's profile from `/cgi-bin/user/info`.
#[derive(Clone, Debug, Deserialize)]
pub struct UserInfo {
    #[serde(default)]
    pub subscribe: i64,
    pub openid: String,
    #[serde(default)]
    pub unionid: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: Option<String>,
}

/// Treat a token as expired this long before WeChat would, so a call never races its expiry.
const EXPIRY_MARGIN_MS: i64 = 60_000;
/// WeChat's access tokens live 7,200 s; a longer `expires_in` is not believed (nor overflows).
const TOKEN_MAX_SECS: i64 = 7_200;
/// How long a refresh lease lasts before another instance may take over.
const LEASE_MS: i64 = 15_000;
/// How long a caller waits for another instance's refresh.
const WAIT_FOR_REFRESH: Duration = Duration::from_secs(5);

/// The client of WeChat's server API. Cheap to clone.
#[derive(Clone)]
pub struct WechatClient {
    http: reqwest::Client,
    api_base: String,
    tokens: Arc<dyn TokenStore>,
    /// This process's name as a lease owner.
    instance: String,
}

impl fmt::Debug for WechatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatClient").field("api_base", &self.api_base).field("instance", &self.instance).finish()
    }
}

impl WechatClient {
    pub fn new(api_base: &str, tokens: Arc<dyn TokenStore>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        let mut id = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Self { http, api_base: api_base.trim_end_matches('/').to_owned(), tokens, instance: hex::encode(id) }
    }

    /// A valid access token for the app: the shared cached one, or a fresh one.
    pub async fn access_token(&self, app: &AppCredentials) -> Result<String, WechatError> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_REFRESH;
        loop {
            let now = now_ms();
            if let Some(row) = self.tokens.token(&app.appid).await? {
                if let Some(token) = row.access_token.filter(|_| row.expires_at > now + EXPIRY_MARGIN_MS) {
                    return Ok(token);
                }
            }
            let fresh_until = now + EXPIRY_MARGIN_MS;
            if self.tokens.take_lease(&app.appid, &self.instance, now, now + LEASE_MS, fresh_until).await? {
                let fetched = self.fetch_stable_token(app).await;
                return match fetched {
                    Ok((token, expires_in)) => {
                        let now = now_ms();
                        let expires_at = now + expires_in.clamp(0, TOKEN_MAX_SECS) * 1000;
                        self.tokens.store(&app.appid, &self.instance, &token, expires_at, now).await?;
                        Ok(token)
                    }
                    Err(e) => {
                        self.tokens.release_lease(&app.appid, &self.instance).await?;
                        Err(e)
                    }
                };
            }
            // Another instance is refreshing: wait for its token.
            if tokio::time::Instant::now() >= deadline {
                return Err(WechatError::TokenBusy);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Checks an app's credentials by fetching a token with them, past the shared cache (which
    /// may hold a token fetched with other credentials). The token is not kept.
    pub async fn check_credentials(&self, app: &AppCredentials) -> Result<(), WechatError> {
        self.fetch_stable_token(app).await.map(|_| ())
    }

    async fn fetch_stable_token(&self, app: &AppCredentials) -> Result<(String, i64), WechatError> {
        let body = serde_json::json!({
            "grant_type": "client_credential",
            "appid": app.appid,
            "secret": app.secret.expose(),
            "force_refresh": false,
        });
        let answer: TokenAnswer = self
            .http
            .post(format!("{}/cgi-bin/stable_token", self.api_base))
            .json(&body)
            .send()
            .await
            .map_err(WechatError::Transport)?
            .json()
            .await
            .map_err(|e| WechatError::Decode(e.to_string()))?;
        match (answer.access_token, answer.expires_in, answer.errcode.unwrap_or(0)) {
            (Some(token), Some(expires_in), 0) if !token.is_empty() => Ok((token, expires_in)),
            (_, _, errcode) => Err(WechatError::Api { errcode, errmsg: answer.errmsg.unwrap_or_default() }),
        }
    }

    /// Runs `call` with a token; when WeChat rejects the token, expires it (if still current)
    /// and retries once with a fresh one.
    async fn with_token<T, F, Fut>(&self, app: &AppCredentials, call: F) -> Result<T, WechatError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, WechatError>>,
    {
        let token = self.access_token(app).await?;
        match call(token.clone()).await {
            Err(e) if e.is_token_rejection() => {
                tracing::warn!(appid = %app.appid, error = %e, "access token rejected; refreshing once");
                self.tokens.expire_if(&app.appid, &token, now_ms()).await?;
                let token = self.access_token(app).await?;
                call(token).await
            }
            other => other,
        }
    }

    /// A follower's profile, with the unionid when the account is bound to an Open Platform.
    pub async fn user_info(&self, app: &AppCredentials, openid: &str) -> Result<UserInfo, WechatError> {
        let url = format!("{}/cgi-bin/user/info", self.api_base);
        self.with_token(app, |token| {
            let req =
                self.http.get(&url).query(&[("access_token", token.as_str()), ("openid", openid), ("lang", "zh_CN")]);
            async move {
                let value: serde_json::Value = req
                    .send()
                    .await
                    .map_err(WechatError::Transport)?
                    .json()
                    .await
                    .map_err(|e| WechatError::Decode(e.to_string()))?;
                check_errcode(&value)?;
                serde_json::from_value(value).map_err(|e| WechatError::Decode(e.to_string()))
            }
        })
        .await
    }
}

/// What `jscode2session` gives for a mini-program login code.
#[derive(Clone, Deserialize)]
pub struct CodeSession {
    pub openid: String,
    /// Secret: used to check the mini-program's signed data; never sent to the client.
    pub session_key: String,
    #[serde(default)]
    pub unionid: Option<String>,
}

impl std::fmt::Debug for CodeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeSession")
            .field("openid", &self.openid)
            .field("unionid", &self.unionid)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct PhoneAnswer {
    phone_info: PhoneInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhoneInfo {
    pure_phone_number: String,
    #[serde(default)]
    country_code: String,
}

impl WechatClient {
    /// Exchanges a mini-program `wx.login` code (single use) for the user's openid, unionid and
    /// session key.
    pub async fn code_to_session(&self, app: &AppCredentials, code: &str) -> Result<CodeSession, WechatError> {
        let value: serde_json::Value = self
            .http
            .get(format!("{}/sns/jscode2session", self.api_base))
            .query(&[
                ("appid", app.appid.as_str()),
                ("secret", app.secret.expose()),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ])
            .send()
            .await
            .map_err(WechatError::Transport)?
            .json()
            .await
            .map_err(|e| WechatError::Decode(e.to_string()))?;
        check_errcode(&value)?;
        serde_json::from_value(value).map_err(|e| WechatError::Decode(e.to_string()))
    }

    /// The phone number a mini-program user chose to share (the code from the phone-number
    /// button), as a national number when it is a mainland one.
    pub async fn phone_number(&self, app: &AppCredentials, code: &str) -> Result<String, WechatError> {
        let url = format!("{}/wxa/business/getuserphonenumber", self.api_base);
        self.with_token(app, |token| {
            let req = self
                .http
                .post(&url)
                .query(&[("access_token", token.as_str())])
                .json(&serde_json::json!({ "code": code }));
            async move {
                let value: serde_json::Value = req
                    .send()
                    .await
                    .map_err(WechatError::Transport)?
                    .json()
                    .await
                    .map_err(|e| WechatError::Decode(e.to_string()))?;
                check_errcode(&value)?;
                let answer: PhoneAnswer =
                    serde_json::from_value(value).map_err(|e| WechatError::Decode(e.to_string()))?;
                let info = answer.phone_info;
                Ok(if info.country_code.is_empty() || info.country_code == "86" {
                    info.pure_phone_number
                } else {
                    format!("+{}{}", info.country_code, info.pure_phone_number)
                })
            }
        })
        .await
    }
}

/// A parametric QR code of the official account (`/cgi-bin/qrcode/create`).
#[derive(Clone, Debug, Deserialize)]
pub struct QrCode {
    pub ticket: String,
    /// Absent for permanent codes.
    #[serde(default)]
    pub expire_seconds: Option<i64>,
    /// What the code encodes, for drawing it without WeChat's image.
    pub url: String,
}

impl WechatClient {
    /// Posts `body` to `path` with the app's token and reads WeChat's JSON answer.
    async fn post_json(
        &self,
        app: &AppCredentials,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, WechatError> {
        let url = format!("{}{path}", self.api_base);
        self.with_token(app, |token| {
            let req = self.http.post(&url).query(&[("access_token", token.as_str())]).json(body);
            async move {
                let value: serde_json::Value = req
                    .send()
                    .await
                    .map_err(WechatError::Transport)?
                    .json()
                    .await
                    .map_err(|e| WechatError::Decode(e.to_string()))?;
                check_errcode(&value)?;
                Ok(value)
            }
        })
        .await
    }

    /// A temporary QR code carrying `scene` (1..=64 characters) for `expire_seconds` (at most 30
    /// days): whoever scans it and follows arrives with `EventKey = qrscene_<scene>`.
    pub async fn create_qr_scene(
        &self,
        app: &AppCredentials,
        scene: &str,
        expire_seconds: i64,
    ) -> Result<QrCode, WechatError> {
        let body = serde_json::json!({
            "expire_seconds": expire_seconds,
            "action_name": "QR_STR_SCENE",
            "action_info": { "scene": { "scene_str": scene } },
        });
        let value = self.post_json(app, "/cgi-bin/qrcode/create", &body).await?;
        let mut code: QrCode = serde_json::from_value(value).map_err(|e| WechatError::Decode(e.to_string()))?;
        // The code lives as long as asked at most: a larger figure is not believed, and callers
        // add it to the clock.
        code.expire_seconds = code.expire_seconds.map(|s| s.clamp(0, expire_seconds.max(0)));
        Ok(code)
    }

    /// Sends a mini-program subscribe message (the resident must have accepted the template).
    pub async fn send_subscribe_message(
        &self,
        app: &AppCredentials,
        openid: &str,
        template_id: &str,
        page: Option<&str>,
        data: &serde_json::Value,
    ) -> Result<(), WechatError> {
        let mut body = serde_json::json!({ "touser": openid, "template_id": template_id, "data": data });
        if let Some(page) = page {
            body["page"] = serde_json::Value::String(page.to_owned());
        }
        self.post_json(app, "/cgi-bin/message/subscribe/send", &body).await.map(|_| ())
    }
}

/// WeChat answers errors with HTTP 200 and a non-zero `errcode`.
fn check_errcode(value: &serde_json::Value) -> Result<(), WechatError> {
    match value.get("errcode").and_then(|c| c.as_i64()) {
        Some(0) | None => Ok(()),
        Some(errcode) => Err(WechatError::Api {
            errcode,
            errmsg: value.get("errmsg").and_then(|m| m.as_str()).unwrap_or_default().to_owned(),
        }),
    }
}
