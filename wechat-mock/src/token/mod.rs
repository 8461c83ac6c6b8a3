//! Access tokens, WeChat's "basic support" area: `GET /cgi-bin/token`, `POST /cgi-bin/stable_token`,
//! and [`MockWechat::check_access_token`], which every later API uses to accept or refuse a call.
//!
//! Behaviour follows WeChat's docs (getAccessToken, getStableAccessToken) and what WeChat is seen to
//! answer: a wrong AppSecret gets `40125 invalid appsecret`, an unknown AppID `40013 invalid appid`,
//! missing parameters `41002 appid missing` / `41004 appsecret missing`, a wrong `grant_type`
//! `40002 invalid grant_type`. The two endpoints keep separate, isolated token sets.

mod http;
mod store;

pub(crate) use http::routes;
pub(crate) use store::TokenStore;
pub use store::{AppTokenStats, TokenGrant};

use crate::state::MockWechat;
use crate::wx_error::WxError;

/// Path of the classic token endpoint.
pub const TOKEN_PATH: &str = "/cgi-bin/token";
/// Path of the stable token endpoint.
pub const STABLE_TOKEN_PATH: &str = "/cgi-bin/stable_token";
/// The only `grant_type` both endpoints accept.
pub const CLIENT_CREDENTIAL: &str = "client_credential";

/// The parameters of `GET /cgi-bin/token`; `None` is a parameter that was not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRequest {
    /// Must be `client_credential`.
    pub grant_type: Option<String>,
    /// The AppID.
    pub appid: Option<String>,
    /// The AppSecret.
    pub secret: Option<String>,
}

/// The JSON body of `POST /cgi-bin/stable_token`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StableTokenRequest {
    /// The credential fields, checked as for `/cgi-bin/token`.
    pub credentials: TokenRequest,
    /// `true` replaces the current token at once (limited); `false` (the default) reuses it.
    pub force_refresh: bool,
}

/// Checks the parameters in the order WeChat's token endpoints report them: first what is missing or
/// malformed, then whether the AppID exists, then whether the secret matches.
fn check_token_params(request: &TokenRequest) -> Result<(&str, &str), WxError> {
    let appid = non_empty(&request.appid).ok_or(WxError::APPID_MISSING)?;
    if request.grant_type.as_deref() != Some(CLIENT_CREDENTIAL) {
        return Err(WxError::INVALID_GRANT_TYPE);
    }
    let secret = non_empty(&request.secret).ok_or(WxError::APPSECRET_MISSING)?;
    Ok((appid, secret))
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl MockWechat {
    /// Answers `GET /cgi-bin/token` (and counts the call): a new token every time; the previous one
    /// keeps working for the grace period (5 min), then answers `40001`.
    pub fn get_token(&self, request: &TokenRequest) -> Result<TokenGrant, WxError> {
        let mut state = self.lock();
        state.record_call(TOKEN_PATH);
        let (appid, secret) = check_token_params(request)?;
        state.authenticate_app(appid, secret)?;
        let now_ms = state.clock.now_ms();
        let rules = state.token_rules.clone();
        state.tokens.fetch_token(appid, now_ms, &rules)
    }

    /// Answers `POST /cgi-bin/stable_token` (and counts the call).
    pub fn get_stable_token(&self, request: &StableTokenRequest) -> Result<TokenGrant, WxError> {
        self.answer_stable_token(Ok(request))
    }

    /// Counts a stable_token call and answers it; `parsed` is the body, or the error it already earned.
    pub(crate) fn answer_stable_token(
        &self,
        parsed: Result<&StableTokenRequest, WxError>,
    ) -> Result<TokenGrant, WxError> {
        let mut state = self.lock();
        state.record_call(STABLE_TOKEN_PATH);
        let request = parsed?;
        let (appid, secret) = check_token_params(&request.credentials)?;
        state.authenticate_app(appid, secret)?;
        let now_ms = state.clock.now_ms();
        let rules = state.token_rules.clone();
        state.tokens.fetch_stable_token(appid, request.force_refresh, now_ms, &rules)
    }

    /// Which app an access token belongs to, or WeChat's answer to a token that does not work:
    /// `41001` for an empty one, `40001` for an unknown or superseded one, `42001` for an expired one.
    /// Later API areas call this first, as WeChat does.
    pub fn check_access_token(&self, access_token: &str) -> Result<String, WxError> {
        let state = self.lock();
        state.tokens.check(access_token, state.clock.now_ms())
    }

    /// Tokens issued by `/cgi-bin/token` for `appid` (each successful call issues one).
    pub fn token_fetch_count(&self, appid: &str) -> u64 {
        self.app_token_stats(appid).token_fetches
    }

    /// Successful `/cgi-bin/stable_token` answers for `appid`, including those that reused a token.
    pub fn stable_token_fetch_count(&self, appid: &str) -> u64 {
        self.app_token_stats(appid).stable_token_fetches
    }

    /// All token counters of `appid` (zeros for an app that never asked).
    pub fn app_token_stats(&self, appid: &str) -> AppTokenStats {
        let state = self.lock();
        state.tokens.app_stats(appid, state.clock.now_ms())
    }
}
