//! The control API under `/__mock/`, for tests and developers (not part of WeChat): move the clock,
//! read what was called and issued, reset, add and inspect simulated users, play their WeChat client
//! (login and phone codes), block them, and inject faults. Answers are JSON; bad requests get HTTP
//! 400 with `{"error": "…"}`, unknown users 404.
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /__mock/clock` | `{"now", "clock_offset_secs"}` |
//! | `POST /__mock/clock/advance` `{"seconds": n}` | the new clock |
//! | `GET /__mock/tokens` | [`crate::MockReport`] |
//! | `POST /__mock/reset` | `{"ok": true}` |
//! | `POST /__mock/users` [`UserOptions`]? / `GET /__mock/users` | the new user's ids / every record |
//! | `GET /__mock/users/{unionid}` | [`crate::UserRecord`] |
//! | `POST /__mock/users/{unionid}/follow?appid=` | the record, now following that official account |
//! | `POST /__mock/users/{unionid}/login-code[?appid=]` | `{"code"}`: a `wx.login` code of that (or the first) mini-program |
//! | `POST /__mock/users/{unionid}/phone-code` | `{"code"}`: a phone code of the first mini-program |
//! | `POST /__mock/users/{unionid}/block`, `…/unblock` | the user's record, high-risk flag set or cleared |
//! | `POST /__mock/faults` [`Fault`] | `{"faults": [...]}`, every pending fault |
//! | `GET /__mock/faults` / `DELETE /__mock/faults` | `{"faults": [...]}` / `{"cleared": n}` |
//!
//! WeChat Pay's control endpoints (`/__mock/pay…`, each about one merchant, `?mch_id=`) are listed
//! in [`crate::pay::control`], those of QR codes and subscribe messages in [`crate::messages`].

use poem::{
    get, handler,
    http::StatusCode,
    post,
    web::{Data, Json, Path, Query},
    Body, IntoResponse, Response, Route,
};
use serde::Deserialize;
use serde_json::json;

use crate::faults::Fault;
use crate::state::MockWechat;
use crate::users::{OaFollow, SubscribeScene, UserError, UserOptions};

/// Adds the control endpoints to `route`.
pub(crate) fn routes(route: Route) -> Route {
    route
        .at("/__mock/clock", get(clock))
        .at("/__mock/clock/advance", post(advance_clock))
        .at("/__mock/tokens", get(tokens))
        .at("/__mock/reset", post(reset))
        .at("/__mock/users", post(add_user).get(list_users))
        .at("/__mock/users/:unionid", get(user_record))
        .at("/__mock/users/:unionid/login-code", post(login_code))
        .at("/__mock/users/:unionid/follow", post(follow))
        .at("/__mock/users/:unionid/phone-code", post(phone_code))
        .at("/__mock/users/:unionid/block", post(block_user))
        .at("/__mock/users/:unionid/unblock", post(unblock_user))
        .at("/__mock/faults", post(add_fault).get(list_faults).delete(clear_faults))
}

fn clock_body(mock: &MockWechat) -> Json<serde_json::Value> {
    let report = mock.report();
    Json(json!({ "now": report.now, "clock_offset_secs": report.clock_offset_secs }))
}

/// `GET /__mock/clock` → `{"now": unix_secs, "clock_offset_secs": n}`.
#[handler]
fn clock(Data(mock): Data<&MockWechat>) -> Json<serde_json::Value> {
    clock_body(mock)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceClock {
    seconds: i64,
}

/// `POST /__mock/clock/advance {"seconds": n}` with `n ≥ 0` → the new clock, as `GET /__mock/clock`.
#[handler]
async fn advance_clock(body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let bytes = body.into_bytes().await.unwrap_or_default();
    match serde_json::from_slice::<AdvanceClock>(&bytes) {
        Ok(AdvanceClock { seconds }) if seconds >= 0 => {
            mock.advance_clock(seconds);
            clock_body(mock).into_response()
        }
        Ok(_) => bad_request("seconds must not be negative: the clock only moves forward"),
        Err(err) => bad_request(&format!("expected {{\"seconds\": n}}: {err}")),
    }
}

/// `GET /__mock/tokens` → [`crate::MockReport`] as JSON.
#[handler]
fn tokens(Data(mock): Data<&MockWechat>) -> Json<crate::MockReport> {
    Json(mock.report())
}

/// `POST /__mock/reset` → `{"ok": true}`; see [`MockWechat::reset`].
#[handler]
fn reset(Data(mock): Data<&MockWechat>) -> Json<serde_json::Value> {
    mock.reset();
    Json(json!({ "ok": true }))
}

/// `POST /__mock/users` with no body or a JSON [`UserOptions`] → the new user's ids
/// (`{"oa_openid", "mp_openid", "unionid"}`); 409 when a chosen id is taken.
#[handler]
async fn add_user(body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let bytes = body.into_bytes().await.unwrap_or_default();
    let options = if bytes.iter().all(u8::is_ascii_whitespace) {
        UserOptions::default()
    } else {
        match serde_json::from_slice::<UserOptions>(&bytes) {
            Ok(options) => options,
            Err(err) => return bad_request(&format!("expected user options: {err}")),
        }
    };
    match mock.add_user_with(&options) {
        Ok(user) => Json(user).into_response(),
        Err(err @ (UserError::EmptyId | UserError::InvalidPhoneNumber(_))) => bad_request(&err.to_string()),
        Err(err) => Json(json!({ "error": err.to_string() })).with_status(StatusCode::CONFLICT).into_response(),
    }
}

/// `GET /__mock/users` → every user's record.
#[handler]
fn list_users(Data(mock): Data<&MockWechat>) -> Json<Vec<crate::UserRecord>> {
    Json(mock.users())
}

/// `GET /__mock/users/{unionid}` → [`crate::UserRecord`], or 404.
#[handler]
fn user_record(Path(unionid): Path<String>, Data(mock): Data<&MockWechat>) -> Response {
    match mock.user(&unionid) {
        Some(record) => Json(record).into_response(),
        None => no_such_user(&unionid),
    }
}

fn no_such_user(unionid: &str) -> Response {
    Json(json!({ "error": format!("no user with unionid {unionid}") }))
        .with_status(StatusCode::NOT_FOUND)
        .into_response()
}

fn code_answer(unionid: &str, code: Option<String>) -> Response {
    match code {
        Some(code) => Json(json!({ "code": code })).into_response(),
        None => no_such_user(unionid),
    }
}

/// `POST /__mock/users/{unionid}/follow?appid=…` → the user's record, now following that official
/// account (by search, now), as WeChat knows once the user taps 关注; 404 for an unknown user or an
/// account the user has no openid in. The follow push itself is the caller's to send.
#[handler]
fn follow(Path(unionid): Path<String>, Query(at): Query<CodeFor>, Data(mock): Data<&MockWechat>) -> Response {
    let Some(appid) = at.appid else {
        return Json(json!({ "error": "appid is required" })).with_status(StatusCode::BAD_REQUEST).into_response();
    };
    let openid = mock.user(&unionid).and_then(|u| u.openids.get(&appid).cloned());
    let followed =
        openid.is_some_and(|o| mock.record_follow(&appid, &o, OaFollow::via(SubscribeScene::Search, mock.now_unix())));
    match mock.user(&unionid) {
        Some(record) if followed => Json(record).into_response(),
        _ => no_such_user(&unionid),
    }
}

/// Which app a control call is about: `?appid=…` (for a code: default, the first mini-program).
#[derive(Debug, serde::Deserialize)]
struct CodeFor {
    appid: Option<String>,
}

/// `POST /__mock/users/{unionid}/login-code[?appid=…]` → `{"code": "…"}`, a `wx.login` code of the
/// mini-program `appid` (default: the first one), single use, 5 minutes; 404 for an unknown user
/// or a mini-program the user has no openid in.
#[handler]
fn login_code(Path(unionid): Path<String>, Query(at): Query<CodeFor>, Data(mock): Data<&MockWechat>) -> Response {
    let code = match at.appid {
        None => mock.login_code_for_unionid(&unionid),
        Some(appid) => mock
            .user(&unionid)
            .and_then(|u| u.openids.get(&appid).cloned())
            .and_then(|openid| mock.login_code_for_openid(&appid, &openid)),
    };
    code_answer(&unionid, code)
}

/// `POST /__mock/users/{unionid}/phone-code` → `{"code": "…"}`, a phone code of the first
/// mini-program (single use, 5 minutes); 404 for an unknown user.
#[handler]
fn phone_code(Path(unionid): Path<String>, Data(mock): Data<&MockWechat>) -> Response {
    code_answer(&unionid, mock.phone_code_for_unionid(&unionid))
}

fn set_blocked(mock: &MockWechat, unionid: &str, blocked: bool) -> Response {
    let known = if blocked { mock.block_user(unionid) } else { mock.unblock_user(unionid) };
    match mock.user(unionid) {
        Some(record) if known => Json(record).into_response(),
        _ => no_such_user(unionid),
    }
}

/// `POST /__mock/users/{unionid}/block` → the user's record, now high-risk (`40226` at login).
#[handler]
fn block_user(Path(unionid): Path<String>, Data(mock): Data<&MockWechat>) -> Response {
    set_blocked(mock, &unionid, true)
}

/// `POST /__mock/users/{unionid}/unblock` → the user's record, no longer high-risk.
#[handler]
fn unblock_user(Path(unionid): Path<String>, Data(mock): Data<&MockWechat>) -> Response {
    set_blocked(mock, &unionid, false)
}

fn faults_body(mock: &MockWechat) -> Response {
    Json(json!({ "faults": mock.faults() })).into_response()
}

/// `POST /__mock/faults` with a [`Fault`], e.g. `{"path": "/sns/jscode2session", "errcode": -1,
/// "times": 1}` → `{"faults": [...]}` (every pending fault); 400 for a fault that makes no sense.
#[handler]
async fn add_fault(body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let bytes = body.into_bytes().await.unwrap_or_default();
    let fault = match serde_json::from_slice::<Fault>(&bytes) {
        Ok(fault) => fault,
        Err(err) => return bad_request(&format!("expected a fault: {err}")),
    };
    match mock.inject_fault(fault) {
        Ok(()) => faults_body(mock),
        Err(err) => bad_request(&err.to_string()),
    }
}

/// `GET /__mock/faults` → `{"faults": [...]}`, each with the calls it still applies to as `times`.
#[handler]
fn list_faults(Data(mock): Data<&MockWechat>) -> Response {
    faults_body(mock)
}

/// `DELETE /__mock/faults` → `{"cleared": n}`.
#[handler]
fn clear_faults(Data(mock): Data<&MockWechat>) -> Json<serde_json::Value> {
    Json(json!({ "cleared": mock.clear_faults() }))
}

fn bad_request(message: &str) -> Response {
    Json(json!({ "error": message })).with_status(StatusCode::BAD_REQUEST).into_response()
}
