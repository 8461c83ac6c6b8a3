//! `/wechat/oa/callback`: where WeChat pushes the official account's events and messages.
//!
//! `GET` is WeChat's URL check. `POST` takes pushes in plaintext, compatible or safe (AES) mode:
//! the signature and the timestamp window are checked, encrypted bodies are authenticated by
//! `msg_signature` and decrypted (the appid inside must be ours), and anything that fails is
//! refused before it can change anything. Replies are encrypted when the push was. WeChat gives
//! up after five seconds, so a push that takes longer is answered `success` while its handling
//! finishes in the background: its effect is never lost, and WeChat does not retry it.

use std::time::Duration;

use poem::http::StatusCode;
use poem::web::{Data, Query};
use poem::{handler, IntoResponse, Response};
use rand::Rng;
use serde::Deserialize;

use crate::app::AppState;
use crate::db;
use crate::domain::oa::{handle_push, OfficialAccount};
use crate::error::ApiError;
use crate::wechat::api::AppCredentials;
use crate::wechat::oa::crypto::{verify_signature, MsgCrypt};
use crate::wechat::oa::message::{parse_envelope, parse_message, MAX_XML_BYTES};
use crate::wechat::oa::reply::{encrypted_reply, text_reply};

/// How long a push may take before it is answered `success` (WeChat waits five seconds).
const ANSWER_WITHIN: Duration = Duration::from_millis(4_000);

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    echostr: Option<String>,
    encrypt_type: Option<String>,
    msg_signature: Option<String>,
}

fn rejected(message: &str) -> ApiError {
    ApiError::SignatureRejected(message.to_owned())
}

/// The callback's settings, or 503 when the official account is not configured.
fn configured(state: &AppState) -> Result<(String, String), ApiError> {
    let w = &state.settings.wechat;
    match (&w.oa_appid, &w.oa_token) {
        (Some(appid), Some(token)) => Ok((appid.clone(), token.expose().to_owned())),
        _ => Err(ApiError::NotConfigured("the official-account callback (WECHAT_OA_APPID, WECHAT_OA_TOKEN)")),
    }
}

/// Checks the URL signature and that the timestamp is within the window.
fn check_signed(state: &AppState, token: &str, q: &CallbackQuery) -> Result<(String, String), ApiError> {
    let (Some(signature), Some(timestamp), Some(nonce)) = (&q.signature, &q.timestamp, &q.nonce) else {
        return Err(rejected("signature, timestamp and nonce are required"));
    };
    let ts: i64 = timestamp.parse().map_err(|_| rejected("timestamp is not a number"))?;
    let now = db::now_ms() / 1000;
    if (now - ts).unsigned_abs() > state.settings.wechat.oa_timestamp_window_secs {
        return Err(rejected("timestamp is outside the allowed window"));
    }
    if !verify_signature(signature, &[token, timestamp, nonce]) {
        return Err(rejected("bad signature"));
    }
    Ok((timestamp.clone(), nonce.clone()))
}

/// WeChat's URL check: answer `echostr` when the signature is ours.
#[handler]
pub async fn verify_url(state: Data<&AppState>, Query(q): Query<CallbackQuery>) -> Result<Response, ApiError> {
    let (_, token) = configured(&state)?;
    check_signed(&state, &token, &q)?;
    let echo = q.echostr.clone().ok_or_else(|| rejected("echostr is required"))?;
    Ok(Response::builder().content_type("text/plain; charset=utf-8").body(echo))
}

/// A push from WeChat.
#[handler]
pub async fn receive_push(
    state: Data<&AppState>,
    Query(q): Query<CallbackQuery>,
    body: Vec<u8>,
) -> Result<Response, ApiError> {
    let (appid, token) = configured(&state)?;
    let (timestamp, nonce) = check_signed(&state, &token, &q)?;
    if body.len() > MAX_XML_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let body = String::from_utf8(body)
        .map_err(|_| ApiError::BadRequest { code: "invalid_xml", message: "the body is not UTF-8".into() })?;
    let bad_xml =
        |e: crate::wechat::oa::message::XmlError| ApiError::BadRequest { code: "invalid_xml", message: e.to_string() };

    let encrypted = q.encrypt_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("aes"));
    let (crypt, inner) = if encrypted {
        let key = state
            .settings
            .wechat
            .oa_aes_key
            .as_ref()
            .ok_or(ApiError::NotConfigured("the official account's EncodingAESKey (WECHAT_OA_AES_KEY)"))?;
        let crypt = MsgCrypt::new(key.expose(), &appid)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("WECHAT_OA_AES_KEY is unusable: {e}")))?;
        let envelope = parse_envelope(&body).map_err(bad_xml)?;
        let encrypt = envelope.encrypt.ok_or_else(|| rejected("an encrypted push carries no Encrypt"))?;
        let msg_signature = q.msg_signature.as_deref().ok_or_else(|| rejected("msg_signature is required"))?;
        if !verify_signature(msg_signature, &[&token, &timestamp, &nonce, &encrypt]) {
            return Err(rejected("bad msg_signature"));
        }
        let inner = crypt.decrypt(&encrypt).map_err(|e| rejected(&format!("cannot decrypt the push: {e}")))?;
        (Some(crypt), inner)
    } else {
        (None, body)
    };
    let msg = parse_message(&inner).map_err(bad_xml)?;
    // The message's own time dates its effects; it must be as fresh as the URL's timestamp.
    let now = db::now_ms() / 1000;
    if (now - msg.create_time).unsigned_abs() > state.settings.wechat.oa_timestamp_window_secs {
        return Err(rejected("CreateTime is outside the allowed window"));
    }
    let at_ms = msg.create_time.saturating_mul(1000);

    let oa = OfficialAccount {
        appid: appid.clone(),
        credentials: state
            .settings
            .wechat
            .oa_secret
            .clone()
            .map(|secret| AppCredentials { appid: appid.clone(), secret }),
        company_id: state.settings.wechat.oa_company_id,
    };
    let (db, group, checkins, wechat) =
        (state.db.clone(), state.group.clone(), state.checkins.clone(), state.wechat.clone());
    let work_msg = msg.clone();
    let work = tokio::spawn(async move { handle_push(&db, &group, &checkins, &wechat, &oa, &work_msg, at_ms).await });
    let reply = match tokio::time::timeout(ANSWER_WITHIN, work).await {
        Ok(Ok(Ok(reply))) => reply,
        Ok(Ok(Err(e))) => return Err(e.into()),
        Ok(Err(join)) => return Err(ApiError::Internal(anyhow::anyhow!("push handling failed: {join}"))),
        Err(_) => {
            tracing::warn!(from = %msg.from_user, "push took too long; answered success, handling continues");
            None
        }
    };

    let Some(text) = reply else {
        return Ok(Response::builder().content_type("text/plain; charset=utf-8").body("success"));
    };
    let now = db::now_ms() / 1000;
    let xml = text_reply(&msg.from_user, &msg.to_user, now, &text);
    let xml = match crypt {
        Some(crypt) => {
            let reply_nonce = rand::thread_rng().gen_range(100_000_000u32..1_000_000_000).to_string();
            encrypted_reply(&crypt, &token, &xml, &now.to_string(), &reply_nonce)
        }
        None => xml,
    };
    Ok((StatusCode::OK, Response::builder().content_type("application/xml; charset=utf-8").body(xml)).into_response())
}
