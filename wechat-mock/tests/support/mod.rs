//! A stand-in for an official account's server, written against this crate's own protocol code: it
//! verifies `signature` (and `msg_signature`), decrypts, checks the timestamp window, records what
//! it got, and answers as told (success, a plain or encrypted text reply, a forged reply…).

#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::{
    get, handler, http::StatusCode, listener::TcpAcceptor, web::Data, Body, EndpointExt, IntoResponse, Request,
    Response, Route, Server,
};
use tokio::sync::Barrier;
use wechat_mock::callback::crypto::{decrypt_for, AesKey, CryptoError};
use wechat_mock::callback::reply::{encrypted_reply_xml, envelope, ReplyKeys, TextReply};
use wechat_mock::callback::signature::{verify_msg_signature, verify_signature};
use wechat_mock::callback::xml::{parse_fields, XmlFields};
use wechat_mock::{MockWechat, OA_APPID, OA_CALLBACK_TOKEN, OA_ENCODING_AES_KEY, OA_ORIGINAL_ID};

/// How far a push's timestamp may be from the account's clock (linli's window is its own business;
/// five minutes is what WeChat Pay uses and what SDKs copy).
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;

/// What the account answers to a push that passed its checks.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `success`.
    Success,
    /// A 0-byte body.
    Empty,
    /// A plaintext text reply with this content.
    PlainText(String),
    /// An encrypted text reply with this content.
    EncryptedText(String),
    /// An encrypted text reply whose MsgSignature is signed with the wrong token.
    ForgedEncryptedText(String),
    /// An encrypted text reply encrypted for another appid.
    EncryptedForOtherApp(String),
    /// Wait until this many requests are in the handler at once, then answer `success`; a
    /// handler still waiting after 5 s answers 500, so a lack of concurrency fails the test.
    SuccessWhenConcurrent(usize),
    /// Never answer.
    Hang,
}

/// One request as the account saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST` or `GET`.
    pub method: String,
    /// The raw query string.
    pub raw_query: String,
    /// Decoded query parameters.
    pub query: HashMap<String, String>,
    /// The raw body.
    pub body: String,
    /// Whether `signature` verified.
    pub signature_ok: bool,
    /// Whether `msg_signature` verified (`None` without `encrypt_type=aes`).
    pub msg_signature_ok: Option<bool>,
    /// The decryption result (`None` without `encrypt_type=aes`).
    pub decrypted: Option<Result<String, CryptoError>>,
    /// The message's fields: decrypted in aes mode, the body in plaintext mode.
    pub message: Option<XmlFields>,
    /// Whether the timestamp was within the window of the account's clock.
    pub fresh: bool,
}

impl Received {
    /// Whether everything checked out.
    pub fn accepted(&self) -> bool {
        self.signature_ok
            && self.msg_signature_ok != Some(false)
            && !matches!(self.decrypted, Some(Err(_)))
            && self.message.is_some()
            && self.fresh
    }
}

/// The account's settings and state.
pub struct AccountState {
    pub token: String,
    pub key: AesKey,
    pub appid: String,
    pub original_id: String,
    pub answer: Mutex<Answer>,
    pub received: Mutex<Vec<Received>>,
    pub barrier: Mutex<Option<Arc<Barrier>>>,
    /// The clock the account checks timestamps against: the mock's.
    pub clock: MockWechat,
}

/// A running test account server.
pub struct TestAccount {
    pub url: String,
    pub state: Arc<AccountState>,
    _server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestAccount {
    /// Serves the default account (the mock's default Token, key, appid) on port 0.
    pub async fn start(clock: MockWechat, answer: Answer) -> Self {
        let state = Arc::new(AccountState {
            token: OA_CALLBACK_TOKEN.to_owned(),
            key: AesKey::from_encoding_aes_key(OA_ENCODING_AES_KEY).expect("default key"),
            appid: OA_APPID.to_owned(),
            original_id: OA_ORIGINAL_ID.to_owned(),
            answer: Mutex::new(answer),
            received: Mutex::new(Vec::new()),
            barrier: Mutex::new(None),
            clock,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let acceptor = TcpAcceptor::from_tokio(listener).expect("acceptor");
        let app = Route::new().at("/wechat/oa/callback", get(url_check).post(push)).data(Arc::clone(&state));
        let server = tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Self { url: format!("http://{addr}/wechat/oa/callback"), state, _server: server }
    }

    pub fn set_answer(&self, answer: Answer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.state.received.lock().unwrap().clear();
    }
}

fn query_of(req: &Request) -> HashMap<String, String> {
    req.params().unwrap_or_default()
}

#[handler]
fn url_check(req: &Request, Data(state): Data<&Arc<AccountState>>) -> Response {
    let q = query_of(req);
    let p = |name: &str| q.get(name).cloned().unwrap_or_default();
    let ok = verify_signature(&state.token, &p("timestamp"), &p("nonce"), &p("signature"));
    state.received.lock().unwrap().push(Received {
        method: "GET".into(),
        raw_query: req.uri().query().unwrap_or_default().to_owned(),
        query: q.clone(),
        body: String::new(),
        signature_ok: ok,
        msg_signature_ok: None,
        decrypted: None,
        message: None,
        fresh: true,
    });
    if ok {
        p("echostr").into_response()
    } else {
        StatusCode::FORBIDDEN.into_response()
    }
}

#[handler]
async fn push(req: &Request, body: Body, Data(state): Data<&Arc<AccountState>>) -> Response {
    let q = query_of(req);
    let p = |name: &str| q.get(name).cloned().unwrap_or_default();
    let body = body.into_string().await.unwrap_or_default();
    let (timestamp, nonce) = (p("timestamp"), p("nonce"));
    let signature_ok = verify_signature(&state.token, &timestamp, &nonce, &p("signature"));
    let fresh = timestamp.parse::<i64>().is_ok_and(|ts| (state.clock.now_unix() - ts).abs() <= TIMESTAMP_WINDOW_SECS);
    let body_fields = parse_fields(&body).ok();
    let (msg_signature_ok, decrypted, message) = if p("encrypt_type") == "aes" {
        let encrypt = body_fields.as_ref().and_then(|f| f.get("Encrypt")).unwrap_or_default().to_owned();
        let msg_ok = verify_msg_signature(&state.token, &timestamp, &nonce, &encrypt, &p("msg_signature"));
        let decrypted = decrypt_for(&state.key, &state.appid, &encrypt);
        let message = decrypted.as_ref().ok().and_then(|xml| parse_fields(xml).ok());
        (Some(msg_ok), Some(decrypted), message)
    } else {
        (None, None, body_fields)
    };
    let received = Received {
        method: "POST".into(),
        raw_query: req.uri().query().unwrap_or_default().to_owned(),
        query: q.clone(),
        body,
        signature_ok,
        msg_signature_ok,
        decrypted,
        message,
        fresh,
    };
    let accepted = received.accepted();
    let message = received.message.clone();
    state.received.lock().unwrap().push(received);
    if !accepted {
        return (StatusCode::FORBIDDEN, "rejected").into_response();
    }
    let Some(message) = message else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let answer = state.answer.lock().unwrap().clone();
    let text_reply = |content: &str| TextReply {
        to_user_name: message.get("FromUserName").unwrap_or_default().to_owned(),
        from_user_name: message.get("ToUserName").unwrap_or_default().to_owned(),
        create_time: state.clock.now_unix(),
        content: content.to_owned(),
    };
    let keys = ReplyKeys { token: &state.token, key: &state.key, appid: &state.appid };
    let reply_ts = state.clock.now_unix().to_string();
    match answer {
        Answer::Success => "success".into_response(),
        Answer::Empty => "".into_response(),
        Answer::PlainText(content) => text_reply(&content).to_xml().into_response(),
        Answer::EncryptedText(content) => {
            encrypted_reply_xml(&keys, &text_reply(&content).to_xml(), &reply_ts, &nonce).into_response()
        }
        Answer::ForgedEncryptedText(content) => {
            let encrypt =
                wechat_mock::callback::crypto::encrypt(&state.key, &state.appid, &text_reply(&content).to_xml());
            envelope("not-the-token", &encrypt, &reply_ts, &nonce).into_response()
        }
        Answer::EncryptedForOtherApp(content) => {
            let other = ReplyKeys { appid: "wx_someone_else", ..keys };
            encrypted_reply_xml(&other, &text_reply(&content).to_xml(), &reply_ts, &nonce).into_response()
        }
        Answer::SuccessWhenConcurrent(n) => {
            let barrier = {
                let mut slot = state.barrier.lock().unwrap();
                Arc::clone(slot.get_or_insert_with(|| Arc::new(Barrier::new(n))))
            };
            match tokio::time::timeout(Duration::from_secs(5), barrier.wait()).await {
                Ok(_) => "success".into_response(),
                Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "peers never came").into_response(),
            }
        }
        Answer::Hang => {
            std::future::pending::<()>().await;
            "unreachable".into_response()
        }
    }
}
