//! The HTTP face of the token endpoints: reading query strings and JSON bodies as leniently as WeChat
//! does, and answering with WeChat's bodies. Nothing here panics or answers 500 on bad input.

use std::collections::HashMap;

use poem::{
    get, handler,
    web::{Data, Json},
    Body, IntoResponse, Request, Response, Route,
};
use serde_json::{Map, Value};

use super::{StableTokenRequest, TokenRequest, STABLE_TOKEN_PATH, TOKEN_PATH};
use crate::state::MockWechat;
use crate::wx_error::WxError;

/// Adds the token endpoints to `route`.
pub(crate) fn routes(route: Route) -> Route {
    route
        .at(TOKEN_PATH, get(token).post(token))
        .at(STABLE_TOKEN_PATH, get(stable_token_requires_post).post(stable_token))
}

fn answer<T: serde::Serialize + Send>(mock: &MockWechat, result: Result<T, WxError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(err) => err.to_response(mock.now_ms()),
    }
}

#[handler]
fn token(req: &Request, Data(mock): Data<&MockWechat>) -> Response {
    // An undecodable query string reads as no parameters at all.
    let mut params: HashMap<String, String> = req.params().unwrap_or_default();
    let request = TokenRequest {
        grant_type: params.remove("grant_type"),
        appid: params.remove("appid"),
        secret: params.remove("secret"),
    };
    answer(mock, mock.get_token(&request))
}

#[handler]
fn stable_token_requires_post(Data(mock): Data<&MockWechat>) -> Response {
    answer(mock, mock.answer_stable_token(Err(WxError::REQUIRE_POST)))
}

#[handler]
async fn stable_token(body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let bytes = body.into_bytes().await.unwrap_or_default();
    let parsed = parse_stable_token_body(&bytes);
    answer(mock, mock.answer_stable_token(parsed.as_ref().map_err(|e| *e)))
}

/// Reads a stable_token body. WeChat only understands JSON: a form-encoded or otherwise non-JSON body
/// is read as an object without fields (WeChat then answers `41002 appid missing`).
fn parse_stable_token_body(bytes: &[u8]) -> Result<StableTokenRequest, WxError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(WxError::EMPTY_POST_DATA);
    }
    let fields = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
    let force_refresh = match fields.get("force_refresh") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(force)) => *force,
        Some(_) => return Err(WxError::DATA_FORMAT_ERROR),
    };
    Ok(StableTokenRequest {
        credentials: TokenRequest { grant_type: text("grant_type"), appid: text("appid"), secret: text("secret") },
        force_refresh,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_body_parsing() {
        assert_eq!(parse_stable_token_body(b"  \n"), Err(WxError::EMPTY_POST_DATA));
        assert_eq!(parse_stable_token_body(b"grant_type=client_credential&appid=x"), Ok(StableTokenRequest::default()));
        assert_eq!(parse_stable_token_body(br#"{"appid":"x","force_refresh":"yes"}"#), Err(WxError::DATA_FORMAT_ERROR));
        let parsed = parse_stable_token_body(
            br#"{"grant_type":"client_credential","appid":"a","secret":"s","force_refresh":true}"#,
        )
        .unwrap();
        assert!(parsed.force_refresh);
        assert_eq!(parsed.credentials.appid.as_deref(), Some("a"));
    }
}
