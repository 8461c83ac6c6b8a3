//! `/mp/v1/sessions`: log in with a `wx.login` code, refresh, log out.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;

use super::{mini_program, ResidentSession};
use crate::api::common::ts;
use crate::api::ApiTags;
use crate::domain::community::sessions::{self, IssuedSession, Lifetimes};
use crate::error::ApiError;
use crate::state::AppState;

pub struct MpSessionsApi;

/// A `wx.login` code.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct Login {
    /// The code `wx.login()` gave the mini-program; single use, valid for five minutes.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub code: String,
    /// The mini-program the code is from (`wx.getAccountInfoSync().miniProgram.appId`), when a
    /// property company brings its own; absent, the deployment's mini-program.
    #[oai(validator(min_length = 1, max_length = 32))]
    pub appid: Option<String>,
}

/// A refresh token.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct Refresh {
    #[oai(validator(min_length = 1, max_length = 128))]
    pub refresh_token: String,
}

/// A session: send `access_token` as `Authorization: Bearer …`; trade `refresh_token` (once) for a
/// new session before it expires.
#[derive(Debug, Clone, Object)]
pub struct Session {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until `access_token` expires.
    pub expires_in: i64,
    pub expires_at: OffsetDateTime,
    pub refresh_token: String,
    pub refresh_expires_at: OffsetDateTime,
    /// The resident this session acts as.
    pub resident_id: i64,
}

impl From<IssuedSession> for Session {
    fn from(s: IssuedSession) -> Self {
        Self {
            expires_in: (s.expires_at - crate::db::now_ms()).max(0) / 1000,
            access_token: s.access_token,
            token_type: "Bearer".to_owned(),
            expires_at: ts(s.expires_at),
            refresh_token: s.refresh_token,
            refresh_expires_at: ts(s.refresh_expires_at),
            resident_id: s.resident_id,
        }
    }
}

#[derive(ApiResponse)]
pub enum SessionCreated {
    /// Logged in.
    #[oai(status = 201)]
    Created(Json<Session>),
}

#[derive(ApiResponse)]
pub enum LoggedOut {
    /// The session has ended.
    #[oai(status = 204)]
    Done,
}

fn lifetimes(state: &AppState) -> Lifetimes {
    Lifetimes { session_secs: state.settings.mp_session_ttl_secs, refresh_secs: state.settings.mp_refresh_ttl_secs }
}

#[OpenApi(prefix_path = "/mp/v1", tag = "ApiTags::MpSession")]
impl MpSessionsApi {
    /// Log in with the code from `wx.login()`. The resident is the same person who follows the
    /// official account when WeChat links the two (unionid). An invalid, expired or reused code
    /// answers 401; WeChat's rate limit 429; a user WeChat blocked 403.
    #[oai(path = "/sessions", method = "post", operation_id = "create_session")]
    async fn create_session(&self, state: Data<&AppState>, body: Json<Login>) -> Result<SessionCreated, ApiError> {
        let mp = mini_program(&state, body.0.appid.as_deref()).await?;
        let issued = sessions::login(&state.db, &state.wechat, &mp, &body.0.code, lifetimes(&state)).await?;
        Ok(SessionCreated::Created(Json(issued.into())))
    }

    /// Trade a refresh token for a new session; the old one ends. Each refresh token works once.
    #[oai(path = "/sessions/refresh", method = "post", operation_id = "refresh_session")]
    async fn refresh_session(&self, state: Data<&AppState>, body: Json<Refresh>) -> Result<SessionCreated, ApiError> {
        let issued = sessions::refresh(&state.db, &state.sessions, &body.0.refresh_token, lifetimes(&state)).await?;
        Ok(SessionCreated::Created(Json(issued.into())))
    }

    /// Log out: the session's tokens stop working at once.
    #[oai(path = "/sessions/current", method = "delete", operation_id = "delete_session")]
    async fn delete_session(&self, state: Data<&AppState>, me: ResidentSession) -> Result<LoggedOut, ApiError> {
        sessions::logout(&state.db, &state.sessions, &me.0).await?;
        Ok(LoggedOut::Done)
    }
}
