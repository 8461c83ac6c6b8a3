//! The control API under `/__mock/`, for tests and developers (not part of WeChat): move the clock,
//! read what was called and issued, reset. Answers are JSON; bad requests get HTTP 400 with
//! `{"error": "…"}`.

use poem::{
    get, handler,
    http::StatusCode,
    post,
    web::{Data, Json},
    Body, IntoResponse, Response, Route,
};
use serde::Deserialize;
use serde_json::json;

use crate::state::MockWechat;

/// Adds the control endpoints to `route`.
pub(crate) fn routes(route: Route) -> Route {
    route
        .at("/__mock/clock", get(clock))
        .at("/__mock/clock/advance", post(advance_clock))
        .at("/__mock/tokens", get(tokens))
        .at("/__mock/reset", post(reset))
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

fn bad_request(message: &str) -> Response {
    Json(json!({ "error": message }))
        .with_status(StatusCode::BAD_REQUEST)
        .into_response()
}
