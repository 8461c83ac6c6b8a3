//! The HTTP face of the mini-program endpoints. `jscode2session` reads its query string (a POST
//! with the parameters in the body finds none, as on WeChat, where that answers `41002 appid
//! missing`); `getuserphonenumber` reads `access_token` from the query and `code` from a JSON
//! body. Nothing here panics or answers 500 on bad input.

use std::collections::HashMap;

use poem::{
    get, handler,
    web::{Data, Json},
    Body, IntoResponse, Request, Response, Route,
};
use serde_json::{json, Value};

use super::{Code2SessionRequest, PhoneInfo, JSCODE2SESSION_PATH, PHONE_NUMBER_PATH};
use crate::state::MockWechat;
use crate::wx_error::WxError;

/// Adds the mini-program endpoints to `route`.
pub(crate) fn routes(route: Route) -> Route {
    route
        .at(JSCODE2SESSION_PATH, get(jscode2session).post(jscode2session))
        .at(PHONE_NUMBER_PATH, get(phone_number_requires_post).post(phone_number))
}

fn query(req: &Request) -> HashMap<String, String> {
    // An undecodable query string reads as no parameters at all.
    req.params().unwrap_or_default()
}

#[handler]
fn jscode2session(req: &Request, Data(mock): Data<&MockWechat>) -> Response {
    let mut params = query(req);
    let request = Code2SessionRequest {
        appid: params.remove("appid"),
        secret: params.remove("secret"),
        js_code: params.remove("js_code"),
        grant_type: params.remove("grant_type"),
    };
    match mock.code2session(&request) {
        Ok(session) => Json(session).into_response(),
        Err(err) => err.to_response(mock.now_ms()),
    }
}

fn phone_answer(mock: &MockWechat, result: Result<PhoneInfo, WxError>) -> Response {
    match result {
        Ok(phone_info) => Json(json!({ "errcode": 0, "errmsg": "ok", "phone_info": phone_info })).into_response(),
        Err(err) => err.to_response(mock.now_ms()),
    }
}

fn access_token(req: &Request) -> String {
    query(req).remove("access_token").unwrap_or_default()
}

#[handler]
fn phone_number_requires_post(req: &Request, Data(mock): Data<&MockWechat>) -> Response {
    phone_answer(mock, mock.answer_phone_number(&access_token(req), Err(WxError::REQUIRE_POST)))
}

#[handler]
async fn phone_number(req: &Request, body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let bytes = body.into_bytes().await.unwrap_or_default();
    let code = parse_phone_body(&bytes);
    phone_answer(mock, mock.answer_phone_number(&access_token(req), code.as_deref().map_err(|e| *e)))
}

/// Reads `{"code": "…"}`. An empty body is `44002 empty post data`, a `code` that is not a string
/// `47001 data format error`; a body that is not a JSON object reads as one without fields, and a
/// missing code as an empty one, which no code matches (`40029`).
fn parse_phone_body(bytes: &[u8]) -> Result<String, WxError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(WxError::EMPTY_POST_DATA);
    }
    let fields = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(fields)) => fields,
        _ => return Ok(String::new()),
    };
    match fields.get("code") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(code)) => Ok(code.clone()),
        Some(_) => Err(WxError::DATA_FORMAT_ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_body_parsing() {
        assert_eq!(parse_phone_body(b" \n"), Err(WxError::EMPTY_POST_DATA));
        assert_eq!(parse_phone_body(br#"{"code":"abc"}"#), Ok("abc".into()));
        assert_eq!(parse_phone_body(br#"{"code":"abc","openid":"o1"}"#), Ok("abc".into()));
        assert_eq!(parse_phone_body(br#"{"code":42}"#), Err(WxError::DATA_FORMAT_ERROR));
        assert_eq!(parse_phone_body(br#"{}"#), Ok(String::new()));
        assert_eq!(parse_phone_body(b"code=abc"), Ok(String::new()));
        assert_eq!(parse_phone_body(br#"["abc"]"#), Ok(String::new()));
    }
}
