//! The control API under `/__mock/`, for tests and developers (not part of WeChat): move the clock,
//! read what was called and issued, reset, add and inspect simulated users. Answers are JSON; bad
//! requests get HTTP 400 with `{"error": "…"}`.

use poem::{
    get, handler,
    http::StatusCode,
    post,
    web::{Data, Json, Path},
    Body, IntoResponse, Response, Route,
};
use serde::Deserialize;
use serde_json::json;

use crate::state::MockWechat;
use crate::users::UserOptions;

/// Adds the control endpoints to `route`.
pub(crate) fn routes(route: Route) -> Route {
    route
        .at("/__mock/clock", get(clock))
        .at("/__mock/clock/advance", post(advance_clock))
        .at("/__mock/tokens", get(tokens))
        .at("/__mock/reset", post(reset))
        .at("/__mock/users", post(add_user).get(list_users))
        .at("/__mock/users/:unionid", get(user_record))
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
        None => Json(json!({ "error": format!("no user with unionid {unionid}") }))
            .with_status(StatusCode::NOT_FOUND)
            .into_response(),
    }
}

fn bad_request(message: &str) -> Response {
    Json(json!({ "error": message })).with_status(StatusCode::BAD_REQUEST).into_response()
}
