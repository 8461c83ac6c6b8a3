//! The official account's parametric QR codes (生成带参数的二维码): `POST /cgi-bin/qrcode/create`
//! and `GET /cgi-bin/showqrcode`.
//!
//! WeChat's rules, as its createQRCode doc states them: four kinds (`action_name`), temporary
//! `QR_SCENE` / `QR_STR_SCENE` and permanent `QR_LIMIT_SCENE` / `QR_LIMIT_STR_SCENE`; a temporary
//! code lives `expire_seconds` (default 60, at most 2 592 000 = 30 days), a permanent one forever
//! and its answer has no `expire_seconds`; `scene_id` is a non-zero 32-bit number for temporary
//! codes and 1..=100 000 for permanent ones; `scene_str` is 1 to 64 long (counted in UTF-8 bytes
//! here, the stricter reading).
//!
//! Answers, in the order checked: the token (`41001`, `40001`, `42001`); `48001` for a token that
//! is not an official account's; `43002` for GET, `44002` for an empty body, `47001` for a body that
//! is not a JSON object or an `expire_seconds` that is not an integer; `40052 invalid action name`;
//! `40053 invalid action info` for a missing or rule-breaking scene (WeChat's global return codes).
//!
//! Not documented by WeChat, chosen here: an `expire_seconds` above the maximum is capped to it
//! (what WeChat answers for it is not published), one below 1 reads as absent (60 s); asking again
//! for a permanent code of the same kind and scene answers the same ticket, since permanent codes
//! are a scarce, fixed resource of the account.

use std::collections::HashMap;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::AppKind;
use crate::push::new_ticket;
use crate::state::MockWechat;
use crate::users::{OaFollow, SubscribeScene};
use crate::wx_error::WxError;

/// Path of the QR code creation endpoint.
pub const QRCODE_CREATE_PATH: &str = "/cgi-bin/qrcode/create";
/// Path of the endpoint exchanging a ticket for the image (served by `mp.weixin.qq.com` on WeChat).
pub const SHOW_QRCODE_PATH: &str = "/cgi-bin/showqrcode";
/// Lifetime of a temporary code created without `expire_seconds` (WeChat: 60 s).
pub const DEFAULT_QR_EXPIRE_SECS: i64 = 60;
/// The longest lifetime of a temporary code (WeChat: 30 days).
pub const MAX_QR_EXPIRE_SECS: i64 = 2_592_000;
/// The largest `scene_id` of a permanent code (WeChat: 100 000).
pub const MAX_PERMANENT_SCENE_ID: i64 = 100_000;
/// The longest `scene_str` (WeChat: 64).
pub const MAX_SCENE_STR_LEN: usize = 64;
/// What every code's `url` starts with.
pub const QR_URL_PREFIX: &str = "http://weixin.qq.com/q/";

/// A 1×1 transparent PNG: what `showqrcode` serves for a live ticket. Nobody scans the mock's codes.
pub(crate) const PLACEHOLDER_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// The four kinds of parametric QR code (`action_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QrAction {
    /// Temporary, numeric scene.
    #[serde(rename = "QR_SCENE")]
    Scene,
    /// Temporary, string scene.
    #[serde(rename = "QR_STR_SCENE")]
    StrScene,
    /// Permanent, numeric scene.
    #[serde(rename = "QR_LIMIT_SCENE")]
    LimitScene,
    /// Permanent, string scene.
    #[serde(rename = "QR_LIMIT_STR_SCENE")]
    LimitStrScene,
}

impl QrAction {
    /// The kind named `action_name`, if it is one.
    pub fn parse(action_name: &str) -> Option<Self> {
        match action_name {
            "QR_SCENE" => Some(Self::Scene),
            "QR_STR_SCENE" => Some(Self::StrScene),
            "QR_LIMIT_SCENE" => Some(Self::LimitScene),
            "QR_LIMIT_STR_SCENE" => Some(Self::LimitStrScene),
            _ => None,
        }
    }

    /// The `action_name`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scene => "QR_SCENE",
            Self::StrScene => "QR_STR_SCENE",
            Self::LimitScene => "QR_LIMIT_SCENE",
            Self::LimitStrScene => "QR_LIMIT_STR_SCENE",
        }
    }

    /// Whether codes of this kind never expire.
    pub fn is_permanent(self) -> bool {
        matches!(self, Self::LimitScene | Self::LimitStrScene)
    }

    /// Whether the scene is a `scene_id` (rather than a `scene_str`).
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Scene | Self::LimitScene)
    }
}

/// The body of `POST /cgi-bin/qrcode/create` as the mock reads it: `action_name`,
/// `expire_seconds` and `action_info.scene.{scene_id, scene_str}`. A `scene_id` that is not an
/// integer reads as 0 and a `scene_str` that is not a string as empty, both of which break the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QrCodeRequest {
    /// `QR_SCENE`, `QR_STR_SCENE`, `QR_LIMIT_SCENE` or `QR_LIMIT_STR_SCENE`.
    pub action_name: String,
    /// Lifetime of a temporary code, seconds.
    pub expire_seconds: Option<i64>,
    /// The numeric scene.
    pub scene_id: Option<i64>,
    /// The string scene.
    pub scene_str: Option<String>,
}

impl QrCodeRequest {
    /// A temporary code with a string scene (`QR_STR_SCENE`), as linli creates them.
    pub fn temporary_str(scene: impl Into<String>, expire_seconds: i64) -> Self {
        Self {
            action_name: QrAction::StrScene.as_str().to_owned(),
            expire_seconds: Some(expire_seconds),
            scene_str: Some(scene.into()),
            ..Self::default()
        }
    }

    /// A temporary code with a numeric scene (`QR_SCENE`).
    pub fn temporary_id(scene_id: i64, expire_seconds: i64) -> Self {
        Self {
            action_name: QrAction::Scene.as_str().to_owned(),
            expire_seconds: Some(expire_seconds),
            scene_id: Some(scene_id),
            ..Self::default()
        }
    }

    /// A permanent code with a string scene (`QR_LIMIT_STR_SCENE`).
    pub fn permanent_str(scene: impl Into<String>) -> Self {
        Self {
            action_name: QrAction::LimitStrScene.as_str().to_owned(),
            scene_str: Some(scene.into()),
            ..Self::default()
        }
    }

    /// A permanent code with a numeric scene (`QR_LIMIT_SCENE`).
    pub fn permanent_id(scene_id: i64) -> Self {
        Self { action_name: QrAction::LimitScene.as_str().to_owned(), scene_id: Some(scene_id), ..Self::default() }
    }

    /// Reads a request body; see [`QrCodeRequest`] for how odd field types read.
    pub(crate) fn parse_body(bytes: &[u8]) -> Result<Self, WxError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(WxError::EMPTY_POST_DATA);
        }
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(bytes) else {
            return Err(WxError::DATA_FORMAT_ERROR);
        };
        let expire_seconds = match fields.get("expire_seconds") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_i64().ok_or(WxError::DATA_FORMAT_ERROR)?),
            Some(_) => return Err(WxError::DATA_FORMAT_ERROR),
        };
        let scene = fields.get("action_info").and_then(|info| info.get("scene"));
        let scene_id = scene.and_then(|s| s.get("scene_id")).filter(|v| !v.is_null()).map(|v| v.as_i64().unwrap_or(0));
        let scene_str = scene
            .and_then(|s| s.get("scene_str"))
            .filter(|v| !v.is_null())
            .map(|v| v.as_str().unwrap_or_default().to_owned());
        let action_name = fields.get("action_name").and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(Self { action_name, expire_seconds, scene_id, scene_str })
    }

    /// The kind, the scene as a string, and the lifetime (`None`: permanent), or WeChat's error.
    fn check(&self) -> Result<(QrAction, String, Option<i64>), WxError> {
        let action = QrAction::parse(&self.action_name).ok_or(WxError::INVALID_ACTION_NAME)?;
        let scene = match action {
            QrAction::Scene => {
                self.scene_id.filter(|id| (1..=i64::from(u32::MAX)).contains(id)).map(|id| id.to_string())
            }
            QrAction::LimitScene => {
                self.scene_id.filter(|id| (1..=MAX_PERMANENT_SCENE_ID).contains(id)).map(|id| id.to_string())
            }
            QrAction::StrScene | QrAction::LimitStrScene => {
                self.scene_str.clone().filter(|s| (1..=MAX_SCENE_STR_LEN).contains(&s.len()))
            }
        }
        .ok_or(WxError::INVALID_ACTION_INFO)?;
        let expire_seconds = (!action.is_permanent()).then(|| match self.expire_seconds {
            Some(secs) if secs >= 1 => secs.min(MAX_QR_EXPIRE_SECS),
            _ => DEFAULT_QR_EXPIRE_SECS,
        });
        Ok((action, scene, expire_seconds))
    }
}

/// A successful `qrcode/create` answer, serialised exactly as WeChat's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QrTicket {
    /// Exchanged for the image at `showqrcode`; also the `Ticket` of the scan pushes.
    pub ticket: String,
    /// The code's lifetime in seconds; absent for permanent codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_seconds: Option<i64>,
    /// What the code's image encodes, `http://weixin.qq.com/q/…`.
    pub url: String,
}

/// A QR code the mock created, as served by `GET /__mock/qrcodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QrCode {
    /// The ticket.
    pub ticket: String,
    /// The official account it belongs to.
    pub appid: String,
    /// Its kind.
    pub action_name: QrAction,
    /// The scene: the `scene_str`, or the `scene_id` in decimal.
    pub scene: String,
    /// What the image encodes.
    pub url: String,
    /// When it was created, Unix seconds.
    pub created_at: i64,
    /// Its lifetime, seconds (`None`: permanent).
    pub expire_seconds: Option<i64>,
    /// Whether it had expired when this snapshot was taken.
    pub expired: bool,
}

impl QrCode {
    /// The follow state of someone who followed through this code at `at` (Unix seconds), as
    /// `user/info` shows it: `qr_scene` for a numeric scene, `qr_scene_str` for a string one.
    pub fn follow_at(&self, at: i64) -> OaFollow {
        let (qr_scene, qr_scene_str) = if self.action_name.is_numeric() {
            (self.scene.parse().unwrap_or(0), String::new())
        } else {
            (0, self.scene.clone())
        };
        OaFollow { qr_scene, qr_scene_str, ..OaFollow::via(SubscribeScene::QrCode, at) }
    }
}

#[derive(Debug, Clone)]
struct Issued {
    ticket: String,
    appid: String,
    action: QrAction,
    scene: String,
    url: String,
    created_at_ms: i64,
    expire_seconds: Option<i64>,
}

impl Issued {
    fn is_expired(&self, now_ms: i64) -> bool {
        self.expire_seconds.is_some_and(|secs| now_ms >= self.created_at_ms.saturating_add(secs.saturating_mul(1000)))
    }

    fn view(&self, now_ms: i64) -> QrCode {
        QrCode {
            ticket: self.ticket.clone(),
            appid: self.appid.clone(),
            action_name: self.action,
            scene: self.scene.clone(),
            url: self.url.clone(),
            created_at: self.created_at_ms.div_euclid(1000),
            expire_seconds: self.expire_seconds,
            expired: self.is_expired(now_ms),
        }
    }

    fn answer(&self) -> QrTicket {
        QrTicket { ticket: self.ticket.clone(), expire_seconds: self.expire_seconds, url: self.url.clone() }
    }
}

/// Every code created, in creation order, indexed by ticket.
#[derive(Debug, Default)]
pub(crate) struct QrStore {
    codes: Vec<Issued>,
    by_ticket: HashMap<String, usize>,
}

impl QrStore {
    fn create(
        &mut self,
        appid: &str,
        action: QrAction,
        scene: String,
        expire_seconds: Option<i64>,
        now_ms: i64,
    ) -> QrTicket {
        if action.is_permanent() {
            let same = self.codes.iter().find(|c| c.appid == appid && c.action == action && c.scene == scene);
            if let Some(existing) = same {
                return existing.answer();
            }
        }
        let ticket = loop {
            let candidate = new_ticket();
            if !self.by_ticket.contains_key(&candidate) {
                break candidate;
            }
        };
        let issued = Issued {
            ticket: ticket.clone(),
            appid: appid.to_owned(),
            action,
            scene,
            url: new_qr_url(),
            created_at_ms: now_ms,
            expire_seconds,
        };
        let answer = issued.answer();
        self.by_ticket.insert(ticket, self.codes.len());
        self.codes.push(issued);
        answer
    }

    fn get(&self, ticket: &str) -> Option<&Issued> {
        self.by_ticket.get(ticket).and_then(|&index| self.codes.get(index))
    }
}

/// A code URL shaped like WeChat's current ones: `http://weixin.qq.com/q/02` and 20 more characters.
fn new_qr_url() -> String {
    let bytes: [u8; 15] = rand::thread_rng().gen();
    format!("{QR_URL_PREFIX}02{}", URL_SAFE_NO_PAD.encode(bytes))
}

impl MockWechat {
    /// Answers `POST /cgi-bin/qrcode/create` (and counts the call); see the module documentation.
    pub fn create_qrcode(&self, access_token: &str, request: &QrCodeRequest) -> Result<QrTicket, WxError> {
        self.answer_create_qrcode(access_token, Ok(request))
    }

    /// Counts a qrcode/create call and answers it; `request` is the body, or the error the request
    /// already earned (wrong method, empty or malformed body), reported after the token checks.
    pub(crate) fn answer_create_qrcode(
        &self,
        access_token: &str,
        request: Result<&QrCodeRequest, WxError>,
    ) -> Result<QrTicket, WxError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.record_call(QRCODE_CREATE_PATH);
        let now_ms = state.clock.now_ms();
        let appid = state.tokens.check(access_token, now_ms)?;
        if !state.apps.get(&appid).is_some_and(|app| app.kind == AppKind::OfficialAccount) {
            return Err(WxError::API_UNAUTHORIZED);
        }
        let (action, scene, expire_seconds) = request?.check()?;
        Ok(state.messages.qrcodes.create(&appid, action, scene, expire_seconds, now_ms))
    }

    /// The scene the code with this ticket carries (the `scene_str`, or the `scene_id` in
    /// decimal); `None` if the mock never issued the ticket or the code has expired.
    pub fn qr_scene(&self, ticket: &str) -> Option<String> {
        let state = self.lock();
        let now_ms = state.clock.now_ms();
        state.messages.qrcodes.get(ticket).filter(|code| !code.is_expired(now_ms)).map(|code| code.scene.clone())
    }

    /// The code with this ticket, expired or not.
    pub fn qrcode(&self, ticket: &str) -> Option<QrCode> {
        let state = self.lock();
        let now_ms = state.clock.now_ms();
        state.messages.qrcodes.get(ticket).map(|code| code.view(now_ms))
    }

    /// Every code created (a permanent code asked for twice is listed once), oldest first.
    pub fn qrcodes(&self) -> Vec<QrCode> {
        let state = self.lock();
        let now_ms = state.clock.now_ms();
        state.messages.qrcodes.codes.iter().map(|code| code.view(now_ms)).collect()
    }

    /// Answers `GET /cgi-bin/showqrcode` (and counts the call): the image for a live ticket, `None`
    /// (HTTP 404) for an unknown or expired one. No access token: WeChat serves it to anyone.
    pub(crate) fn show_qrcode(&self, ticket: &str) -> Option<&'static [u8]> {
        let mut state = self.lock();
        state.record_call(SHOW_QRCODE_PATH);
        let now_ms = state.clock.now_ms();
        state.messages.qrcodes.get(ticket).filter(|code| !code.is_expired(now_ms)).map(|_| PLACEHOLDER_PNG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(request: QrCodeRequest) -> Result<(QrAction, String, Option<i64>), WxError> {
        request.check()
    }

    #[test]
    fn scenes_follow_the_rules_of_their_kind() {
        assert_eq!(
            checked(QrCodeRequest::temporary_str("home_7", 600)),
            Ok((QrAction::StrScene, "home_7".into(), Some(600)))
        );
        assert_eq!(
            checked(QrCodeRequest::temporary_id(4_294_967_295, 1)),
            Ok((QrAction::Scene, "4294967295".into(), Some(1)))
        );
        assert_eq!(checked(QrCodeRequest::permanent_id(100_000)), Ok((QrAction::LimitScene, "100000".into(), None)));
        assert_eq!(checked(QrCodeRequest::permanent_str("x".repeat(64))).map(|c| c.1.len()), Ok(64));
        for bad in [
            QrCodeRequest::temporary_id(0, 60),
            QrCodeRequest::temporary_id(4_294_967_296, 60),
            QrCodeRequest::temporary_id(-5, 60),
            QrCodeRequest::permanent_id(100_001),
            QrCodeRequest::temporary_str("", 60),
            QrCodeRequest::permanent_str("x".repeat(65)),
            // 22 characters, 66 bytes.
            QrCodeRequest::permanent_str("邻".repeat(22)),
            // A string kind with only a numeric scene, and the other way round.
            QrCodeRequest { scene_id: Some(5), scene_str: None, ..QrCodeRequest::temporary_str("", 60) },
            QrCodeRequest { scene_id: None, scene_str: Some("5".into()), ..QrCodeRequest::permanent_id(5) },
        ] {
            assert_eq!(checked(bad.clone()), Err(WxError::INVALID_ACTION_INFO), "{bad:?}");
        }
        let unknown = QrCodeRequest { action_name: "QR_LIMIT".into(), ..QrCodeRequest::permanent_id(1) };
        assert_eq!(checked(unknown), Err(WxError::INVALID_ACTION_NAME));
    }

    #[test]
    fn lifetimes_default_cap_and_vanish_for_permanent_codes() {
        let lifetime = |expire: Option<i64>| {
            checked(QrCodeRequest { expire_seconds: expire, ..QrCodeRequest::temporary_str("s", 0) }).unwrap().2
        };
        assert_eq!(lifetime(None), Some(DEFAULT_QR_EXPIRE_SECS));
        assert_eq!(lifetime(Some(0)), Some(DEFAULT_QR_EXPIRE_SECS));
        assert_eq!(lifetime(Some(3 * MAX_QR_EXPIRE_SECS)), Some(MAX_QR_EXPIRE_SECS));
        let permanent = QrCodeRequest { expire_seconds: Some(600), ..QrCodeRequest::permanent_str("s") };
        assert_eq!(checked(permanent).unwrap().2, None);
    }

    #[test]
    fn body_parsing() {
        assert_eq!(QrCodeRequest::parse_body(b" "), Err(WxError::EMPTY_POST_DATA));
        assert_eq!(QrCodeRequest::parse_body(b"action_name=QR_SCENE"), Err(WxError::DATA_FORMAT_ERROR));
        assert_eq!(
            QrCodeRequest::parse_body(br#"{"expire_seconds":"600","action_name":"QR_SCENE"}"#),
            Err(WxError::DATA_FORMAT_ERROR)
        );
        let parsed = QrCodeRequest::parse_body(
            br#"{"expire_seconds":600,"action_name":"QR_STR_SCENE","action_info":{"scene":{"scene_str":"t_9"}}}"#,
        )
        .unwrap();
        assert_eq!(parsed, QrCodeRequest::temporary_str("t_9", 600));
        let odd = QrCodeRequest::parse_body(
            br#"{"action_name":"QR_LIMIT_SCENE","action_info":{"scene":{"scene_id":1.5,"scene_str":7}}}"#,
        )
        .unwrap();
        assert_eq!((odd.scene_id, odd.scene_str.as_deref()), (Some(0), Some("")));
        assert_eq!(QrCodeRequest::parse_body(b"{}").unwrap(), QrCodeRequest::default());
    }

    #[test]
    fn permanent_codes_are_created_once_per_scene() {
        let mut store = QrStore::default();
        let a = store.create("wx_oa", QrAction::LimitStrScene, "s".into(), None, 0);
        let b = store.create("wx_oa", QrAction::LimitStrScene, "s".into(), None, 5_000);
        let other_kind = store.create("wx_oa", QrAction::StrScene, "s".into(), Some(60), 0);
        let other_app = store.create("wx_oa2", QrAction::LimitStrScene, "s".into(), None, 0);
        assert_eq!(a, b);
        assert_ne!(a.ticket, other_kind.ticket);
        assert_ne!(a.ticket, other_app.ticket);
        assert_eq!(store.codes.len(), 3);
        assert!(a.url.starts_with("http://weixin.qq.com/q/02") && a.url.len() == QR_URL_PREFIX.len() + 22);
        let temp = store.get(&other_kind.ticket).unwrap();
        assert!(!temp.is_expired(59_999) && temp.is_expired(60_000));
        assert!(!store.get(&a.ticket).unwrap().is_expired(i64::MAX));
    }

    #[test]
    fn follow_state_keeps_the_scene_kind() {
        let code = |action, scene: &str| QrCode {
            ticket: "t".into(),
            appid: "a".into(),
            action_name: action,
            scene: scene.into(),
            url: String::new(),
            created_at: 0,
            expire_seconds: None,
            expired: false,
        };
        let numeric = code(QrAction::LimitScene, "42").follow_at(9);
        assert_eq!((numeric.qr_scene, numeric.qr_scene_str.as_str(), numeric.subscribe_time), (42, "", 9));
        // A string scene made of digits stays a string scene.
        let digits = code(QrAction::StrScene, "42").follow_at(9);
        assert_eq!((digits.qr_scene, digits.qr_scene_str.as_str()), (0, "42"));
        assert_eq!(digits.subscribe_scene, SubscribeScene::QrCode);
    }

    #[test]
    fn the_placeholder_is_a_png() {
        assert!(PLACEHOLDER_PNG.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(PLACEHOLDER_PNG.ends_with(b"IEND\xAE\x42\x60\x82"));
    }
}
