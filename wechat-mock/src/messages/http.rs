//! The HTTP face of QR codes and subscribe messages: `access_token` from the query, JSON bodies in,
//! WeChat's JSON out; and this area's part of the `/__mock/` control API. Nothing here panics or
//! answers 500 on bad input.

use std::collections::HashMap;

use poem::{
    get, handler,
    http::StatusCode,
    post,
    web::{Data, Json},
    Body, IntoResponse, Request, Response, Route,
};
use serde::Deserialize;
use serde_json::json;

use super::qrcode::{QrCodeRequest, QRCODE_CREATE_PATH, SHOW_QRCODE_PATH};
use super::subscribe::{SubscribeMessageRequest, SubscriptionError, MP_TASK_TEMPLATE_ID, SUBSCRIBE_SEND_PATH};
use crate::state::MockWechat;
use crate::wx_error::WxError;

/// Adds the QR code and subscribe-message endpoints and their control API to `route`.
pub(crate) fn routes(route: Route) -> Route {
    route
        .at(QRCODE_CREATE_PATH, get(create_qrcode_requires_post).post(create_qrcode))
        .at(SHOW_QRCODE_PATH, get(show_qrcode))
        .at(SUBSCRIBE_SEND_PATH, get(subscribe_send_requires_post).post(subscribe_send))
        .at("/__mock/qrcodes", get(list_qrcodes))
        .at("/__mock/subscribe-messages", get(list_subscribe_messages))
        .at("/__mock/subscriptions", post(accept_subscription))
        .at("/__mock/subscribe-templates", get(list_templates).post(register_template))
}

fn query(req: &Request) -> HashMap<String, String> {
    // An undecodable query string reads as no parameters at all.
    req.params().unwrap_or_default()
}

fn access_token(req: &Request) -> String {
    query(req).remove("access_token").unwrap_or_default()
}

async fn read_body(body: Body) -> Vec<u8> {
    body.into_bytes().await.map(|bytes| bytes.to_vec()).unwrap_or_default()
}

fn qrcode_answer(mock: &MockWechat, result: Result<super::QrTicket, WxError>) -> Response {
    match result {
        Ok(ticket) => Json(ticket).into_response(),
        Err(err) => err.to_response(mock.now_ms()),
    }
}

#[handler]
fn create_qrcode_requires_post(req: &Request, Data(mock): Data<&MockWechat>) -> Response {
    qrcode_answer(mock, mock.answer_create_qrcode(&access_token(req), Err(WxError::REQUIRE_POST)))
}

#[handler]
async fn create_qrcode(req: &Request, body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let parsed = QrCodeRequest::parse_body(&read_body(body).await);
    qrcode_answer(mock, mock.answer_create_qrcode(&access_token(req), parsed.as_ref().map_err(|e| *e)))
}

/// `GET /cgi-bin/showqrcode?ticket=…` → a PNG, or 404 for an unknown or expired ticket.
#[handler]
fn show_qrcode(req: &Request, Data(mock): Data<&MockWechat>) -> Response {
    let ticket = query(req).remove("ticket").unwrap_or_default();
    match mock.show_qrcode(&ticket) {
        Some(png) => Response::builder().content_type("image/png").body(png),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn send_answer(mock: &MockWechat, result: Result<(), super::SendRefusal>) -> Response {
    match result {
        Ok(()) => Json(json!({ "errcode": 0, "errmsg": "ok" })).into_response(),
        Err(refusal) => refusal.to_response(mock.now_ms()),
    }
}

#[handler]
fn subscribe_send_requires_post(req: &Request, Data(mock): Data<&MockWechat>) -> Response {
    send_answer(mock, mock.answer_subscribe_send(&access_token(req), Err(WxError::REQUIRE_POST)))
}

#[handler]
async fn subscribe_send(req: &Request, body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let parsed = SubscribeMessageRequest::parse_body(&read_body(body).await);
    send_answer(mock, mock.answer_subscribe_send(&access_token(req), parsed.as_ref().map_err(|e| *e)))
}

/// `GET /__mock/qrcodes` → every QR code created, oldest first.
#[handler]
fn list_qrcodes(Data(mock): Data<&MockWechat>) -> Json<Vec<super::QrCode>> {
    Json(mock.qrcodes())
}

/// `GET /__mock/subscribe-messages` → every subscribe message delivered, oldest first.
#[handler]
fn list_subscribe_messages(Data(mock): Data<&MockWechat>) -> Json<Vec<super::SubscribeMessage>> {
    Json(mock.subscribe_messages())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Acceptance {
    user: String,
    #[serde(default = "default_template")]
    template_id: String,
    #[serde(default = "one")]
    times: u32,
}

fn default_template() -> String {
    MP_TASK_TEMPLATE_ID.to_owned()
}

fn one() -> u32 {
    1
}

/// `POST /__mock/subscriptions {"user", "template_id"?, "times"?}` → `{"user", "template_id",
/// "remaining"}`; 404 for an unknown user or template, 400 for a bad body or `times` 0.
#[handler]
async fn accept_subscription(body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let acceptance = match serde_json::from_slice::<Acceptance>(&read_body(body).await) {
        Ok(acceptance) if acceptance.times > 0 => acceptance,
        Ok(_) => return bad_request("times must be at least 1"),
        Err(err) => return bad_request(&format!("expected {{\"user\", \"template_id\"?, \"times\"?}}: {err}")),
    };
    match mock.accept_subscription(&acceptance.user, &acceptance.template_id, acceptance.times) {
        Ok(remaining) => {
            Json(json!({ "user": acceptance.user, "template_id": acceptance.template_id, "remaining": remaining }))
                .into_response()
        }
        Err(err) => subscription_error(&err),
    }
}

/// `GET /__mock/subscribe-templates` → every registered template.
#[handler]
fn list_templates(Data(mock): Data<&MockWechat>) -> Json<Vec<super::SubscribeTemplate>> {
    Json(mock.subscribe_templates())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateRegistration {
    template_id: String,
    appid: Option<String>,
    #[serde(default)]
    keywords: Vec<String>,
}

/// `POST /__mock/subscribe-templates {"template_id", "appid"?, "keywords"?}` → the template,
/// registered for `appid` (default: the first mini-program); 400 for a bad body or keyword.
#[handler]
async fn register_template(body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let registration = match serde_json::from_slice::<TemplateRegistration>(&read_body(body).await) {
        Ok(registration) => registration,
        Err(err) => return bad_request(&format!("expected {{\"template_id\", \"appid\"?, \"keywords\"?}}: {err}")),
    };
    let appid = registration.appid.or_else(|| mock.primary_mini_program()).unwrap_or_default();
    let keywords: Vec<&str> = registration.keywords.iter().map(String::as_str).collect();
    match mock.register_subscribe_template(&appid, &registration.template_id, &keywords) {
        Ok(template) => Json(template).into_response(),
        Err(err) => subscription_error(&err),
    }
}

fn subscription_error(err: &SubscriptionError) -> Response {
    let status = match err {
        SubscriptionError::UnknownTemplate(_) | SubscriptionError::UnknownUser(_) => StatusCode::NOT_FOUND,
        SubscriptionError::EmptyTemplateId
        | SubscriptionError::NotAMiniProgram(_)
        | SubscriptionError::BadKeyword(_) => StatusCode::BAD_REQUEST,
    };
    Json(json!({ "error": err.to_string() })).with_status(status).into_response()
}

fn bad_request(message: &str) -> Response {
    Json(json!({ "error": message })).with_status(StatusCode::BAD_REQUEST).into_response()
}
