//! `/wechat/oa/{appid}/callback`: where WeChat pushes each official account's events and
//! messages; `/wechat/oa/callback` serves the account configured by environment (`WECHAT_OA_*`).
//! Each account's callback Token, EncodingAESKey and message mode are its own (a record's, or the
//! environment's), and so is the company its pushes earn in.
//!
//! `GET` is WeChat's URL check. `POST` takes pushes in the account's message mode
//! (`message_mode`, or `WECHAT_OA_MESSAGE_MODE`): safe mode takes encrypted pushes only; compatible and plaintext
//! mode also take plaintext ones. The signature and the timestamp window are checked, encrypted
//! bodies are authenticated by `msg_signature` and decrypted (the appid inside must be ours), and
//! anything that fails is refused before it can change anything. The URL signature does not
//! cover the body, so the URL's (timestamp, nonce) is bound to the first body taken under it
//! ([`crate::domain::loyalty::oa`]): a captured URL cannot carry another body. Replies are encrypted when
//! the push was. WeChat gives up after five seconds, so a push that takes longer is answered
//! `success` while its handling finishes in the background: its effect is never lost, and
//! WeChat does not retry it.

use std::time::Duration;

use poem::http::StatusCode;
use std::sync::Arc;

use poem::web::{Data, Path, Query};
use poem::{handler, IntoResponse, Response};
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::codes::ErrorCode;
use crate::db;
use crate::domain::accounts::registry::OfficialAccount as Account;
use crate::domain::loyalty::oa::{handle_push, OfficialAccount, PushServices};
use crate::domain::loyalty::pushes::SignedPush;
use crate::error::ApiError;
use crate::state::AppState;
use crate::wechat::oa::crypto::{verify_signature, within_window, MsgCrypt};
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

/// The environment's account, or 503 when none is configured.
fn environment_account(state: &AppState) -> Result<Arc<Account>, ApiError> {
    state
        .accounts
        .environment_oa()
        .filter(|a| a.token.is_some())
        .ok_or(ApiError::NotConfigured("the official-account callback (WECHAT_OA_APPID, WECHAT_OA_TOKEN)"))
}

/// The account of `/wechat/oa/{appid}/callback`: 404 for an appid that is no official account
/// here, the same as a path that does not exist.
async fn app_account(state: &AppState, appid: &str, q: &CallbackQuery) -> Result<Arc<Account>, ApiError> {
    let found = match state.accounts.official_account(appid).await {
        // A URL signature that does not verify may be under a Token changed on another instance a
        // moment ago: the records are re-read (at most once a second) and the account looked up
        // again; the signature is then checked with whatever Token the account has.
        Some(a) if a.token.as_ref().is_some_and(|t| !url_signed_with(t.expose(), q)) => {
            Some(state.accounts.reread_official_account(appid).await.unwrap_or(a))
        }
        other => other,
    };
    match found {
        Some(a) if a.token.is_some() => Ok(a),
        _ => Err(ApiError::NotFound("official account")),
    }
}

/// Whether the URL's signature is made with `token` (the window is checked later).
fn url_signed_with(token: &str, q: &CallbackQuery) -> bool {
    match (&q.signature, &q.timestamp, &q.nonce) {
        (Some(signature), Some(timestamp), Some(nonce)) => verify_signature(signature, &[token, timestamp, nonce]),
        _ => false,
    }
}

/// A push URL that checked out: its timestamp as sent and as a number, and its nonce.
struct SignedUrl {
    timestamp: String,
    at: i64,
    nonce: String,
}

/// Checks the URL signature and that the timestamp is within the window.
fn check_signed(state: &AppState, token: &str, q: &CallbackQuery) -> Result<SignedUrl, ApiError> {
    let (Some(signature), Some(timestamp), Some(nonce)) = (&q.signature, &q.timestamp, &q.nonce) else {
        return Err(rejected("signature, timestamp and nonce are required"));
    };
    let at: i64 = timestamp.parse().map_err(|_| rejected("timestamp is not a number"))?;
    if !within_window(db::now_ms() / 1000, at, state.settings.wechat.oa_timestamp_window_secs) {
        return Err(rejected("timestamp is outside the allowed window"));
    }
    if !verify_signature(signature, &[token, timestamp, nonce]) {
        return Err(rejected("bad signature"));
    }
    Ok(SignedUrl { timestamp: timestamp.clone(), at, nonce: nonce.clone() })
}

/// The refusal of an encrypted push the account cannot read: its key is missing or unusable.
/// The start-up warnings name the setting; this is the operator's to fix, not WeChat's.
fn cannot_decrypt(appid: &str) -> ApiError {
    tracing::warn!(appid, "an encrypted push arrived and the account's EncodingAESKey is missing or unusable; refused");
    ApiError::BadRequest {
        code: ErrorCode::EncryptionNotConfigured,
        message: "the push is encrypted and the official account has no usable EncodingAESKey (aes_key, or \
                  WECHAT_OA_AES_KEY)"
            .into(),
    }
}

/// WeChat's URL check for the environment's account: answer `echostr` when the signature is ours.
#[handler]
pub async fn verify_url(state: Data<&AppState>, Query(q): Query<CallbackQuery>) -> Result<Response, ApiError> {
    let account = environment_account(&state)?;
    echo(&state, &account, &q)
}

/// WeChat's URL check for one account.
#[handler]
pub async fn verify_app_url(
    state: Data<&AppState>,
    Path(appid): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let account = app_account(&state, &appid, &q).await?;
    echo(&state, &account, &q)
}

fn echo(state: &AppState, account: &Account, q: &CallbackQuery) -> Result<Response, ApiError> {
    check_signed(state, token_of(account)?, q)?;
    let echo = q.echostr.clone().ok_or_else(|| rejected("echostr is required"))?;
    Ok(Response::builder().content_type("text/plain; charset=utf-8").body(echo))
}

fn token_of(account: &Account) -> Result<&str, ApiError> {
    account.token.as_ref().map(|t| t.expose()).ok_or(ApiError::NotFound("official account"))
}

/// A push from WeChat for the environment's account.
#[handler]
pub async fn receive_push(
    state: Data<&AppState>,
    Query(q): Query<CallbackQuery>,
    body: Vec<u8>,
) -> Result<Response, ApiError> {
    let account = environment_account(&state)?;
    receive(&state, &account, q, body).await
}

/// A push from WeChat for one account.
#[handler]
pub async fn receive_app_push(
    state: Data<&AppState>,
    Path(appid): Path<String>,
    Query(q): Query<CallbackQuery>,
    body: Vec<u8>,
) -> Result<Response, ApiError> {
    let account = app_account(&state, &appid, &q).await?;
    receive(&state, &account, q, body).await
}

async fn receive(state: &AppState, account: &Account, q: CallbackQuery, body: Vec<u8>) -> Result<Response, ApiError> {
    let appid = account.appid.clone();
    let token = token_of(account)?.to_owned();
    let mode = account.mode;
    let url = check_signed(state, &token, &q)?;
    let (timestamp, nonce) = (url.timestamp.as_str(), url.nonce.as_str());
    if body.len() > MAX_XML_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let body = String::from_utf8(body)
        .map_err(|_| ApiError::BadRequest { code: ErrorCode::InvalidXml, message: "the body is not UTF-8".into() })?;
    let bad_xml = |e: crate::wechat::oa::message::XmlError| ApiError::BadRequest {
        code: ErrorCode::InvalidXml,
        message: e.to_string(),
    };

    let encrypted = q.encrypt_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("aes"));
    if !encrypted && !mode.takes_plaintext() {
        // The URL signature covers no body: in safe mode only msg_signature authenticates one.
        return Err(ApiError::EncryptionRequired(
            "this official account takes encrypted pushes only (encrypt_type=aes; message mode safe)",
        ));
    }
    let (crypt, inner) = if encrypted {
        let key = account.aes_key.as_ref().ok_or_else(|| cannot_decrypt(&appid))?;
        let crypt = MsgCrypt::new(key.expose(), &appid).map_err(|_| cannot_decrypt(&appid))?;
        let envelope = parse_envelope(&body).map_err(bad_xml)?;
        let encrypt = envelope.encrypt.ok_or_else(|| rejected("an encrypted push carries no Encrypt"))?;
        let msg_signature = q.msg_signature.as_deref().ok_or_else(|| rejected("msg_signature is required"))?;
        if !verify_signature(msg_signature, &[&token, timestamp, nonce, &encrypt]) {
            return Err(rejected("bad msg_signature"));
        }
        let inner = crypt.decrypt(&encrypt).map_err(|e| rejected(&format!("cannot decrypt the push: {e}")))?;
        (Some(crypt), inner)
    } else {
        (None, body)
    };
    // What the URL is bound to: the message acted on. For a plaintext push that is the raw body;
    // for an encrypted one the decrypted message, which msg_signature already ties to this URL,
    // so a redelivery that WeChat encrypted afresh is still the same body.
    let body_sha256 = hex::encode(Sha256::digest(inner.as_bytes()));
    let msg = parse_message(&inner).map_err(bad_xml)?;
    // The message's own time dates its effects; it must be as fresh as the URL's timestamp.
    if !within_window(db::now_ms() / 1000, msg.create_time, state.settings.wechat.oa_timestamp_window_secs) {
        return Err(rejected("CreateTime is outside the allowed window"));
    }
    let at_ms = msg.create_time.saturating_mul(1000);
    // In safe mode an encrypted push is sealed: msg_signature ties its body to the URL, and no
    // unsigned body is taken, so its URL needs no binding (the check-in path's costliest write).
    let sealed = crypt.is_some() && !mode.takes_plaintext();
    let signed = SignedPush { url_timestamp: url.at, nonce: url.nonce.clone(), body_sha256, sealed };

    let oa =
        OfficialAccount { appid: appid.clone(), credentials: account.credentials(), company_id: account.company_id };
    let services = PushServices {
        db: state.db.clone(),
        group: state.group.clone(),
        checkins: state.checkins.clone(),
        wechat: state.wechat.clone(),
    };
    let work_msg = msg.clone();
    let work = tokio::spawn(async move { handle_push(&services, &oa, &signed, &work_msg, at_ms).await });
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
