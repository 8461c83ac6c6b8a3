//! The pusher: the mock playing WeChat towards an official account's callback URL. It builds pushes
//! as WeChat does (follow, follow through a parametric QR code, unfollow, SCAN, CLICK, text), signs
//! and (in compatible and safe mode) encrypts them with [`crate::callback`], delivers them as many
//! times as a test wants, sequentially or all at once, and reads the reply as WeChat would.
//!
//! A [`Push`] is built once and is immutable: every delivery of it sends the same URL and the same
//! bytes, like WeChat's retries. [`OaPusher::tampered`] derives pushes that WeChat would never send
//! (bad signatures, a stale timestamp, another appid in the ciphertext) to test the account's checks.
//!
//! Attached to a [`MockWechat`] ([`OaPusher::with_mock`]) the pusher takes `CreateTime` from the
//! mock clock and, like WeChat, updates the user's follow state before telling the account about a
//! follow or unfollow. Tampered pushes change nothing: they do not come from WeChat. It can also
//! play a scan of a QR code the account created ([`OaPusher::follow_via_ticket`],
//! [`OaPusher::scan_via_ticket`]), reading the code's scene from the mock.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use wechat_mock::{MockConfig, OaPusher, PushMode, PusherConfig};
//! let mock = wechat_mock::start(MockConfig::default(), "127.0.0.1:0").await?;
//! let user = mock.add_user();
//! let pusher = OaPusher::new(PusherConfig {
//!     mode: PushMode::Safe,
//!     ..PusherConfig::new("http://127.0.0.1:8080/wechat/oa/callback")
//! })?
//! .with_mock(mock.wechat.clone());
//! let push = pusher.follow_scene(&user.oa_openid, "home_42");
//! let outcome = pusher.deliver(&push).await?;
//! println!("{} {:?}", outcome.status, outcome.reply);
//! for again in pusher.deliver_concurrently(&push, 3).await {
//!     again?;
//! }
//! # Ok(()) }
//! ```

mod deliver;
mod message;
mod tamper;

pub use deliver::{DeliveryError, PushOutcome, UrlCheck};
pub use message::{new_msg_id, new_ticket, OaMessage, QR_SCENE_PREFIX};
pub use tamper::{Tamper, TamperError};

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::callback::crypto::{self, AesKey, CryptoError, RANDOM_LEN};
use crate::callback::signature::{msg_signature, signature};
use crate::callback::xml::XmlWriter;
use crate::callback::PushMode;
use crate::config::{OA_APPID, OA_CALLBACK_TOKEN, OA_ENCODING_AES_KEY, OA_ORIGINAL_ID};
use crate::state::MockWechat;
use crate::users::{OaFollow, SubscribeScene};

/// How long WeChat waits for the account's answer before giving up on a delivery.
pub const WECHAT_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to push: the account's callback settings as entered in WeChat's console.
#[derive(Clone, PartialEq, Eq)]
pub struct PusherConfig {
    /// The callback URL; WeChat appends its query parameters to it.
    pub callback_url: String,
    /// The callback Token.
    pub token: String,
    /// The 43-character EncodingAESKey.
    pub encoding_aes_key: String,
    /// The official account's AppID (the last part of every encrypted plaintext).
    pub appid: String,
    /// The official account's original id `gh_…` (`ToUserName` of every push).
    pub original_id: String,
    /// The message encryption mode.
    pub mode: PushMode,
    /// How long to wait for the answer (WeChat: 5 s).
    pub timeout: Duration,
}

impl PusherConfig {
    /// The default account ([`OA_APPID`], [`OA_ORIGINAL_ID`], [`OA_CALLBACK_TOKEN`],
    /// [`OA_ENCODING_AES_KEY`]) in safe mode, pushing to `callback_url`.
    pub fn new(callback_url: impl Into<String>) -> Self {
        Self {
            callback_url: callback_url.into(),
            token: OA_CALLBACK_TOKEN.to_owned(),
            encoding_aes_key: OA_ENCODING_AES_KEY.to_owned(),
            appid: OA_APPID.to_owned(),
            original_id: OA_ORIGINAL_ID.to_owned(),
            mode: PushMode::Safe,
            timeout: WECHAT_REPLY_TIMEOUT,
        }
    }
}

impl fmt::Debug for PusherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The Token and the key are secrets of the account.
        f.debug_struct("PusherConfig")
            .field("callback_url", &self.callback_url)
            .field("appid", &self.appid)
            .field("original_id", &self.original_id)
            .field("mode", &self.mode)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why a pusher could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PusherError {
    /// The EncodingAESKey does not decode to a 32-byte key.
    InvalidEncodingAesKey(CryptoError),
    /// The callback URL is not an absolute http(s) URL.
    InvalidCallbackUrl(String),
    /// The HTTP client could not be built.
    HttpClient(String),
}

impl fmt::Display for PusherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidEncodingAesKey(err) => write!(f, "invalid EncodingAESKey: {err}"),
            Self::InvalidCallbackUrl(why) => write!(f, "invalid callback URL: {why}"),
            Self::HttpClient(why) => write!(f, "cannot build the HTTP client: {why}"),
        }
    }
}

impl std::error::Error for PusherError {}

/// Why a scan of a QR code could not be played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketError {
    /// The pusher is not attached to a mock ([`OaPusher::with_mock`]), so it cannot know the scene.
    NoMock,
    /// The mock created no code with this ticket for the pusher's official account.
    UnknownTicket(String),
    /// The temporary code has expired: WeChat no longer recognises it, nobody can scan it.
    Expired(String),
}

impl fmt::Display for TicketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoMock => f.write_str("the pusher is not attached to a mock, which knows the QR codes"),
            Self::UnknownTicket(ticket) => write!(f, "no QR code of this official account has ticket {ticket}"),
            Self::Expired(ticket) => write!(f, "the QR code with ticket {ticket} has expired"),
        }
    }
}

impl std::error::Error for TicketError {}

/// Everything that decides a push's bytes, so that a push can be rebuilt with one thing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PushParams {
    create_time: i64,
    nonce: String,
    random: [u8; RANDOM_LEN],
    /// Seconds moved back by [`Tamper::StaleTimestamp`].
    moved_back: i64,
    wrong_appid: Option<String>,
    bad_signature: bool,
    bad_msg_signature: bool,
}

impl PushParams {
    fn is_genuine(&self) -> bool {
        self.moved_back == 0 && self.wrong_appid.is_none() && !self.bad_signature && !self.bad_msg_signature
    }
}

/// One push, ready to be delivered any number of times with identical URL and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    message: OaMessage,
    mode: PushMode,
    params: PushParams,
    timestamp: String,
    signature: String,
    msg_signature: Option<String>,
    encrypt: Option<String>,
    message_xml: String,
    body: String,
    url: String,
}

impl Push {
    /// What the user did.
    pub fn message(&self) -> &OaMessage {
        &self.message
    }

    /// The user's openid (also the `openid` query parameter).
    pub fn openid(&self) -> &str {
        self.message.openid()
    }

    /// The mode it was built for.
    pub fn mode(&self) -> PushMode {
        self.mode
    }

    /// `CreateTime`, Unix seconds.
    pub fn create_time(&self) -> i64 {
        self.params.create_time.saturating_sub(self.params.moved_back)
    }

    /// The `timestamp` query parameter.
    pub fn timestamp(&self) -> &str {
        &self.timestamp
    }

    /// The `nonce` query parameter.
    pub fn nonce(&self) -> &str {
        &self.params.nonce
    }

    /// The `signature` query parameter.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// The `msg_signature` query parameter (compatible and safe modes).
    pub fn msg_signature(&self) -> Option<&str> {
        self.msg_signature.as_deref()
    }

    /// The `<Encrypt>` text (compatible and safe modes).
    pub fn encrypt(&self) -> Option<&str> {
        self.encrypt.as_deref()
    }

    /// The message XML before encryption (the whole body in plaintext mode).
    pub fn message_xml(&self) -> &str {
        &self.message_xml
    }

    /// The body as POSTed.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The full URL as POSTed to: the callback URL plus WeChat's query parameters.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether WeChat could have sent this push (not tampered with).
    pub fn is_genuine(&self) -> bool {
        self.params.is_genuine()
    }
}

/// Plays WeChat towards one callback URL. Cheap to clone; clones share the HTTP connection pool.
#[derive(Clone)]
pub struct OaPusher {
    config: PusherConfig,
    key: AesKey,
    callback: reqwest::Url,
    client: reqwest::Client,
    mock: Option<MockWechat>,
}

impl fmt::Debug for OaPusher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OaPusher")
            .field("config", &self.config)
            .field("attached_to_mock", &self.mock.is_some())
            .finish_non_exhaustive()
    }
}

impl OaPusher {
    /// A pusher for `config`, on the wall clock and attached to no mock.
    pub fn new(config: PusherConfig) -> Result<Self, PusherError> {
        let key =
            AesKey::from_encoding_aes_key(&config.encoding_aes_key).map_err(PusherError::InvalidEncodingAesKey)?;
        let callback = reqwest::Url::parse(&config.callback_url)
            .map_err(|err| PusherError::InvalidCallbackUrl(err.to_string()))?;
        if !matches!(callback.scheme(), "http" | "https") {
            return Err(PusherError::InvalidCallbackUrl(format!("scheme {} is not http or https", callback.scheme())));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|err| PusherError::HttpClient(err.to_string()))?;
        Ok(Self { config, key, callback, client, mock: None })
    }

    /// Takes time from `mock`'s clock and records follows and unfollows in it.
    pub fn with_mock(mut self, mock: MockWechat) -> Self {
        self.mock = Some(mock);
        self
    }

    /// The settings.
    pub fn config(&self) -> &PusherConfig {
        &self.config
    }

    /// The account's AES key.
    pub fn aes_key(&self) -> &AesKey {
        &self.key
    }

    /// Now, Unix seconds: the mock's clock when attached, the wall clock otherwise.
    pub fn now_unix(&self) -> i64 {
        match &self.mock {
            Some(mock) => mock.now_unix(),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)),
        }
    }

    /// A push of `message` created now.
    pub fn build(&self, message: OaMessage) -> Push {
        self.build_at(message, self.now_unix())
    }

    /// A push of `message` with `CreateTime` (and `timestamp`) `create_time`.
    pub fn build_at(&self, message: OaMessage, create_time: i64) -> Push {
        let params = PushParams {
            create_time,
            nonce: message::new_nonce(),
            random: crypto::random_prefix(),
            moved_back: 0,
            wrong_appid: None,
            bad_signature: false,
            bad_msg_signature: false,
        };
        self.assemble(message, params)
    }

    /// The user followed the account (plain follow).
    pub fn follow(&self, openid: &str) -> Push {
        self.build(OaMessage::Follow { openid: openid.to_owned() })
    }

    /// The user followed by scanning a parametric QR code with scene `scene` (new ticket).
    pub fn follow_scene(&self, openid: &str, scene: &str) -> Push {
        self.build(OaMessage::FollowScene { openid: openid.to_owned(), scene: scene.to_owned(), ticket: new_ticket() })
    }

    /// The user scanned the account's QR code with `ticket` and followed: `subscribe` with
    /// `EventKey=qrscene_<scene>` and `Ticket=<ticket>`, the scene read from the attached mock.
    pub fn follow_via_ticket(&self, openid: &str, ticket: &str) -> Result<Push, TicketError> {
        let scene = self.scene_of(ticket)?;
        Ok(self.build(OaMessage::FollowScene { openid: openid.to_owned(), scene, ticket: ticket.to_owned() }))
    }

    /// A follower scanned the account's QR code with `ticket`: `SCAN` with `EventKey=<scene>` and
    /// `Ticket=<ticket>`, the scene read from the attached mock.
    pub fn scan_via_ticket(&self, openid: &str, ticket: &str) -> Result<Push, TicketError> {
        let scene = self.scene_of(ticket)?;
        Ok(self.build(OaMessage::Scan { openid: openid.to_owned(), scene, ticket: ticket.to_owned() }))
    }

    /// The scene of the live code `ticket` of this pusher's account.
    fn scene_of(&self, ticket: &str) -> Result<String, TicketError> {
        let mock = self.mock.as_ref().ok_or(TicketError::NoMock)?;
        match mock.qrcode(ticket) {
            Some(code) if code.appid == self.config.appid && !code.expired => Ok(code.scene),
            Some(code) if code.appid == self.config.appid => Err(TicketError::Expired(ticket.to_owned())),
            _ => Err(TicketError::UnknownTicket(ticket.to_owned())),
        }
    }

    /// The user stopped following.
    pub fn unfollow(&self, openid: &str) -> Push {
        self.build(OaMessage::Unfollow { openid: openid.to_owned() })
    }

    /// A follower scanned a parametric QR code with scene `scene` (new ticket).
    pub fn scan(&self, openid: &str, scene: &str) -> Push {
        self.build(OaMessage::Scan { openid: openid.to_owned(), scene: scene.to_owned(), ticket: new_ticket() })
    }

    /// The user tapped the menu button with key `key`.
    pub fn click(&self, openid: &str, key: &str) -> Push {
        self.build(OaMessage::Click { openid: openid.to_owned(), key: key.to_owned() })
    }

    /// The user sent `content` (new MsgId).
    pub fn text(&self, openid: &str, content: &str) -> Push {
        self.build(OaMessage::Text { openid: openid.to_owned(), content: content.to_owned(), msg_id: new_msg_id() })
    }

    fn assemble(&self, message: OaMessage, params: PushParams) -> Push {
        let config = &self.config;
        let create_time = params.create_time.saturating_sub(params.moved_back);
        let timestamp = create_time.to_string();
        let nonce = params.nonce.as_str();
        let message_xml = message.to_xml(&config.original_id, create_time);
        // A wrong token yields a well-formed signature that does not verify.
        let wrong_token = format!("{}-not-the-token", config.token);
        let signing_token = |bad: bool| {
            if bad {
                wrong_token.as_str()
            } else {
                config.token.as_str()
            }
        };
        let sig = signature(signing_token(params.bad_signature), &timestamp, nonce);
        let mut url = self.callback.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("signature", &sig)
                .append_pair("timestamp", &timestamp)
                .append_pair("nonce", nonce)
                .append_pair("openid", message.openid());
        }
        let (body, encrypt, msg_sig) = if config.mode.encrypts() {
            let appid = params.wrong_appid.as_deref().unwrap_or(&config.appid);
            let encrypt = crypto::encrypt_with_random(&self.key, &params.random, appid, &message_xml);
            let msg_sig = msg_signature(
                signing_token(params.bad_signature || params.bad_msg_signature),
                &timestamp,
                nonce,
                &encrypt,
            );
            url.query_pairs_mut().append_pair("encrypt_type", "aes").append_pair("msg_signature", &msg_sig);
            let body = match config.mode {
                PushMode::Compatible => {
                    message.write(&config.original_id, create_time).text("Encrypt", &encrypt).finish()
                }
                _ => XmlWriter::new().text("ToUserName", &config.original_id).text("Encrypt", &encrypt).finish(),
            };
            (body, Some(encrypt), Some(msg_sig))
        } else {
            (message_xml.clone(), None, None)
        };
        Push {
            message,
            mode: config.mode,
            params,
            timestamp,
            signature: sig,
            msg_signature: msg_sig,
            encrypt,
            message_xml,
            body,
            url: url.into(),
        }
    }

    /// What WeChat's state does before it pushes: a genuine follow or unfollow changes the user's
    /// follow state in the attached mock.
    fn apply_to_mock(&self, push: &Push) {
        let Some(mock) = &self.mock else { return };
        if !push.is_genuine() {
            return;
        }
        let appid = &self.config.appid;
        let at = push.create_time();
        match &push.message {
            OaMessage::Follow { openid } => {
                mock.record_follow(appid, openid, OaFollow::via(SubscribeScene::Search, at));
            }
            OaMessage::FollowScene { openid, scene, ticket } => {
                // A code the mock created says whether its scene is a scene_id or a scene_str.
                let follow = match mock.qrcode(ticket).filter(|code| code.appid == *appid) {
                    Some(code) => code.follow_at(at),
                    None => OaFollow::via_qr(scene, at),
                };
                mock.record_follow(appid, openid, follow);
            }
            OaMessage::Unfollow { openid } => {
                mock.record_unfollow(appid, openid);
            }
            OaMessage::Scan { .. } | OaMessage::Click { .. } | OaMessage::Text { .. } | OaMessage::Raw { .. } => {}
        }
    }
}
