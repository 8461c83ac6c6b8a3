//! The mini-program's user APIs: logging in with a `wx.login` code (`GET /sns/jscode2session`) and
//! reading the user's phone number with a phone code (`POST /wxa/business/getuserphonenumber`).
//!
//! The mock plays the WeChat client too: [`MockWechat::login_code`] and [`MockWechat::phone_code`]
//! hand out the codes a user's client would get from `wx.login` and from the `getPhoneNumber`
//! button. Both kinds are single use and expire after 5 minutes of the mock clock.
//!
//! `jscode2session` answers as WeChat's code2Session doc and observed answers say: the openid, a
//! fresh session key (base64 of 16 bytes) and, when the apps are bound to Open Platform accounts,
//! the unionid on the account the mini-program is bound to (the same one `user/info` shows to an
//! official account bound to the same account, another one on another account). Errors: `41002` / `41004` /
//! `41008` for a missing `appid` / `secret` / `js_code`; `40013 invalid appid` for an AppID that is
//! not a registered mini-program; `40125 invalid appsecret`; `40029 invalid code` for a code that is
//! unknown, expired or another app's; `40163 code been used`; `40226 code blocked` for a high-risk
//! user ([`MockWechat::block_user`]); `45011` past 100 exchanges per user per minute.
//!
//! `getuserphonenumber` checks the access token as every API does (`41001`, `40001`, `42001`), then
//! `48001 api unauthorized` for a token that is not a mini-program's, then answers `40029 invalid
//! code` for a phone code that is unknown, expired, used or another app's.

mod http;
mod store;

pub(crate) use http::routes;
pub(crate) use store::CodeStore;

use serde::Serialize;

use self::store::CodeKind;
use crate::config::AppKind;
use crate::state::{MockState, MockWechat};
use crate::users::MockUser;
use crate::wx_error::WxError;

/// Path of the mini-program login endpoint (code2Session).
pub const JSCODE2SESSION_PATH: &str = "/sns/jscode2session";
/// Path of the mini-program phone-number endpoint (getPhoneNumber).
pub const PHONE_NUMBER_PATH: &str = "/wxa/business/getuserphonenumber";
/// The `grant_type` of `jscode2session`.
pub const AUTHORIZATION_CODE: &str = "authorization_code";
/// How long a `wx.login` code can be exchanged (WeChat: 5 minutes).
pub const LOGIN_CODE_TTL_SECS: i64 = 300;
/// How long a phone code can be exchanged (WeChat: 5 minutes).
pub const PHONE_CODE_TTL_SECS: i64 = 300;
/// Exchanges of one user's codes allowed per minute before `45011` (WeChat: 100).
pub const CODE2SESSION_PER_USER_PER_MINUTE: usize = 100;
/// `countryCode` of every phone number the mock serves: mainland China.
pub const MAINLAND_COUNTRY_CODE: &str = "86";

/// The query of `GET /sns/jscode2session`; `None` is a parameter that was not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Code2SessionRequest {
    /// The mini-program's AppID.
    pub appid: Option<String>,
    /// Its AppSecret.
    pub secret: Option<String>,
    /// The `wx.login` code.
    pub js_code: Option<String>,
    /// `authorization_code` (WeChat does not insist on it being sent).
    pub grant_type: Option<String>,
}

impl Code2SessionRequest {
    /// A complete request, as a server exchanging `js_code` for the given app sends it.
    pub fn new(appid: impl Into<String>, secret: impl Into<String>, js_code: impl Into<String>) -> Self {
        Self {
            appid: Some(appid.into()),
            secret: Some(secret.into()),
            js_code: Some(js_code.into()),
            grant_type: Some(AUTHORIZATION_CODE.to_owned()),
        }
    }
}

/// A successful `jscode2session` answer, serialised exactly as WeChat's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Code2Session {
    /// The user's openid in the mini-program.
    pub openid: String,
    /// The session key: base64 of 16 random bytes, new at every login.
    pub session_key: String,
    /// The user's unionid on the mini-program's Open Platform account; only when the apps are
    /// bound to Open Platform accounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
}

/// `phone_info` of a successful `getuserphonenumber` answer, field for field as WeChat sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneInfo {
    /// The phone number; with a country prefix only for numbers outside mainland China, so for
    /// the mock's numbers the same as `purePhoneNumber`.
    #[serde(rename = "phoneNumber")]
    pub phone_number: String,
    /// The number without country code.
    #[serde(rename = "purePhoneNumber")]
    pub pure_phone_number: String,
    /// The country code, a string (`"86"`).
    #[serde(rename = "countryCode")]
    pub country_code: String,
    /// Which app asked, and when the user pressed the button.
    pub watermark: Watermark,
}

/// The `watermark` of [`PhoneInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watermark {
    /// When the user got the phone code (pressed the button), Unix seconds.
    pub timestamp: i64,
    /// The mini-program's AppID.
    pub appid: String,
}

/// Counters of the mini-program area.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MiniProgramStats {
    /// `wx.login` codes handed out.
    pub login_codes_issued: u64,
    /// Successful `jscode2session` answers.
    pub sessions_issued: u64,
    /// Phone codes handed out.
    pub phone_codes_issued: u64,
    /// Successful `getuserphonenumber` answers.
    pub phone_numbers_served: u64,
}

impl MockState {
    fn is_mini_program(&self, appid: &str) -> bool {
        self.apps.get(appid).is_some_and(|app| app.kind == AppKind::MiniProgram)
    }

    /// Issues a code of `kind` for person `unionid` (on any Open Platform account) in mini-program
    /// `appid`; `None` if either is unknown.
    fn issue_code(&mut self, kind: CodeKind, appid: &str, unionid: &str) -> Option<String> {
        if !self.is_mini_program(appid) {
            return None;
        }
        // Codes remember the person by key, so that limits count one person once.
        let unionid = self.users.key_of(unionid)?.to_owned();
        let unionid = unionid.as_str();
        self.users.openid_of(unionid, appid)?;
        let now_ms = self.clock.now_ms();
        let ttl = match kind {
            CodeKind::Login => LOGIN_CODE_TTL_SECS,
            CodeKind::Phone => PHONE_CODE_TTL_SECS,
        };
        Some(self.codes.issue(kind, appid, unionid, now_ms, ttl))
    }

    fn issue_code_in_primary(&mut self, kind: CodeKind, unionid: &str) -> Option<String> {
        let appid = self.users.primary_mini_program()?.to_owned();
        self.issue_code(kind, &appid, unionid)
    }

    fn issue_code_for_openid(&mut self, kind: CodeKind, appid: &str, openid: &str) -> Option<String> {
        let unionid = self.users.unionid_of(appid, openid)?.to_owned();
        self.issue_code(kind, appid, &unionid)
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl MockWechat {
    /// A `wx.login` code for `user` in the first registered mini-program, as the user's WeChat
    /// client would get it: 32 random letters and digits, single use, valid for 5 minutes of the
    /// mock clock. A user this mock does not know (or a mock without a mini-program) gets a code
    /// WeChat does not recognise, which `jscode2session` answers with `40029`.
    pub fn login_code(&self, user: &MockUser) -> String {
        self.login_code_for_unionid(&user.unionid).unwrap_or_else(store::random_login_code)
    }

    /// A `wx.login` code for the person with this unionid in the first registered mini-program;
    /// `None` for an unknown unionid or without a mini-program.
    pub fn login_code_for_unionid(&self, unionid: &str) -> Option<String> {
        self.lock().issue_code_in_primary(CodeKind::Login, unionid)
    }

    /// A `wx.login` code for the user known to mini-program `mp_appid` as `openid`; `None` when
    /// `mp_appid` is not a registered mini-program or does not know `openid`.
    pub fn login_code_for_openid(&self, mp_appid: &str, openid: &str) -> Option<String> {
        self.lock().issue_code_for_openid(CodeKind::Login, mp_appid, openid)
    }

    /// A phone code for `user` in the first registered mini-program, as the `getPhoneNumber` button
    /// hands it out once the user agrees: single use, valid for 5 minutes of the mock clock. An
    /// unknown user gets a code WeChat does not recognise (`40029`).
    pub fn phone_code(&self, user: &MockUser) -> String {
        self.phone_code_for_unionid(&user.unionid).unwrap_or_else(store::random_phone_code)
    }

    /// A phone code for the person with this unionid in the first registered mini-program; `None`
    /// for an unknown unionid or without a mini-program.
    pub fn phone_code_for_unionid(&self, unionid: &str) -> Option<String> {
        self.lock().issue_code_in_primary(CodeKind::Phone, unionid)
    }

    /// A phone code for the user known to mini-program `mp_appid` as `openid`; `None` when
    /// `mp_appid` is not a registered mini-program or does not know `openid`.
    pub fn phone_code_for_openid(&self, mp_appid: &str, openid: &str) -> Option<String> {
        self.lock().issue_code_for_openid(CodeKind::Phone, mp_appid, openid)
    }

    /// Answers `GET /sns/jscode2session` (and counts the call). Checks in this order: missing
    /// `appid` (`41002`), `secret` (`41004`), `js_code` (`41008`); a `grant_type` other than
    /// `authorization_code` (`40002`); the AppID (`40013`, also for an official account's); the
    /// secret (`40125`); the code (`40029` unknown, expired or another app's, `40163` used); the
    /// user (`40226` high-risk, `45011` over 100 exchanges in the last minute). Only a successful
    /// exchange uses the code up.
    pub fn code2session(&self, request: &Code2SessionRequest) -> Result<Code2Session, WxError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.record_call(JSCODE2SESSION_PATH);
        let appid = non_empty(&request.appid).ok_or(WxError::APPID_MISSING)?;
        let secret = non_empty(&request.secret).ok_or(WxError::APPSECRET_MISSING)?;
        let js_code = non_empty(&request.js_code).ok_or(WxError::MISSING_CODE)?;
        if request.grant_type.as_deref().is_some_and(|grant| grant != AUTHORIZATION_CODE) {
            return Err(WxError::INVALID_GRANT_TYPE);
        }
        if !state.is_mini_program(appid) {
            return Err(WxError::INVALID_APPID);
        }
        state.authenticate_app(appid, secret)?;
        let now_ms = state.clock.now_ms();
        let unionid =
            state.codes.check(CodeKind::Login, js_code, appid, now_ms, WxError::CODE_BEEN_USED)?.unionid.clone();
        if state.users.is_blocked(&unionid) {
            return Err(WxError::CODE_BLOCKED);
        }
        // A code always names a known person of a known app; the check keeps a broken ledger from panicking.
        let openid = state.users.openid_of(&unionid, appid).ok_or(WxError::INVALID_CODE)?.to_owned();
        state.codes.note_exchange(appid, &unionid, now_ms, CODE2SESSION_PER_USER_PER_MINUTE)?;
        state.codes.consume(CodeKind::Login, js_code);
        let session_key = state.codes.new_session(appid, &openid);
        let unionid = if state.open_platform_bound {
            state.users.unionid_seen_by(&unionid, appid).map(str::to_owned)
        } else {
            None
        };
        Ok(Code2Session { openid, session_key, unionid })
    }

    /// Answers `POST /wxa/business/getuserphonenumber` with body `{"code": code}` (and counts the
    /// call); see the module documentation for the checks.
    pub fn user_phone_number(&self, access_token: &str, code: &str) -> Result<PhoneInfo, WxError> {
        self.answer_phone_number(access_token, Ok(code))
    }

    /// Counts a getuserphonenumber call and answers it; `code` is the body's code, or the error the
    /// request already earned (wrong method, empty or malformed body), reported after the token checks.
    pub(crate) fn answer_phone_number(
        &self,
        access_token: &str,
        code: Result<&str, WxError>,
    ) -> Result<PhoneInfo, WxError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.record_call(PHONE_NUMBER_PATH);
        let now_ms = state.clock.now_ms();
        let appid = state.tokens.check(access_token, now_ms)?;
        if !state.is_mini_program(&appid) {
            return Err(WxError::API_UNAUTHORIZED);
        }
        let code = code?;
        let issued = state.codes.check(CodeKind::Phone, code, &appid, now_ms, WxError::INVALID_CODE)?;
        let timestamp = issued.issued_at_ms.div_euclid(1000);
        let number = state.users.phone_number(&issued.unionid).ok_or(WxError::INVALID_CODE)?.to_owned();
        state.codes.consume(CodeKind::Phone, code);
        state.codes.stats.phone_numbers_served += 1;
        Ok(PhoneInfo {
            phone_number: number.clone(),
            pure_phone_number: number,
            country_code: MAINLAND_COUNTRY_CODE.to_owned(),
            watermark: Watermark { timestamp, appid },
        })
    }

    /// The session key of the latest successful login of `openid` in mini-program `mp_appid`.
    pub fn session_key(&self, mp_appid: &str, openid: &str) -> Option<String> {
        self.lock().codes.session_key(mp_appid, openid).map(str::to_owned)
    }

    /// Counters of the mini-program area.
    pub fn mini_program_stats(&self) -> MiniProgramStats {
        self.lock().codes.stats
    }
}
