//! WeChat's error answers: the `{"errcode":N,"errmsg":"… rid: …"}` body sent with HTTP 200, and the
//! error codes with the texts WeChat uses for them.

use poem::{http::StatusCode, web::Json, IntoResponse, Response};
use rand::Rng;
use serde_json::json;

/// One WeChat API error: the numeric code and WeChat's message for it (without the `rid:` suffix,
/// which is added per answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WxError {
    /// WeChat's `errcode`.
    pub errcode: i64,
    /// WeChat's `errmsg` text for that code.
    pub errmsg: &'static str,
}

impl WxError {
    /// `-1`: WeChat is busy; callers should retry with back-off.
    pub const SYSTEM_BUSY: Self = Self::new(-1, "system error");
    /// `40001`: the access token is unknown or was superseded; for the token endpoints this is also
    /// the documented answer to a wrong AppSecret, but WeChat now answers [`Self::INVALID_APPSECRET`].
    pub const INVALID_CREDENTIAL: Self = Self::new(
        40001,
        "invalid credential, access_token is invalid or not latest, could get access_token by getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r",
    );
    /// `40002`: `grant_type` is missing or is not `client_credential`.
    pub const INVALID_GRANT_TYPE: Self = Self::new(40002, "invalid grant_type");
    /// `40003`: the openid is not a user of the app the access token belongs to.
    pub const INVALID_OPENID: Self = Self::new(40003, "invalid openid");
    /// `40013`: no such AppID.
    pub const INVALID_APPID: Self = Self::new(40013, "invalid appid");
    /// `40029`: the `wx.login` code (or phone code) is unknown, expired, or belongs to another app.
    pub const INVALID_CODE: Self = Self::new(40029, "invalid code");
    /// `40037`: the subscribe-message template id is empty or not one of the app's templates.
    pub const INVALID_TEMPLATE_ID: Self = Self::new(40037, "invalid template_id");
    /// `40052`: `action_name` of `qrcode/create` is missing or not one of the four QR code kinds.
    pub const INVALID_ACTION_NAME: Self = Self::new(40052, "invalid action name");
    /// `40053`: `action_info` of `qrcode/create` is missing or its scene breaks the kind's rules.
    pub const INVALID_ACTION_INFO: Self = Self::new(40053, "invalid action info");
    /// `40066`: no such API.
    pub const INVALID_URL: Self = Self::new(40066, "invalid url");
    /// `40125`: the AppSecret does not belong to the AppID.
    pub const INVALID_APPSECRET: Self = Self::new(40125, "invalid appsecret");
    /// `40163`: the `wx.login` code was already exchanged (codes are single use).
    pub const CODE_BEEN_USED: Self = Self::new(40163, "code been used");
    /// `40226`: the user is rated high-risk and WeChat refuses the mini-program login.
    pub const CODE_BLOCKED: Self = Self::new(40226, "code blocked");
    /// `41001`: the `access_token` parameter is missing.
    pub const ACCESS_TOKEN_MISSING: Self = Self::new(41001, "access_token missing");
    /// `41002`: the `appid` parameter is missing.
    pub const APPID_MISSING: Self = Self::new(41002, "appid missing");
    /// `41004`: the `secret` parameter is missing.
    pub const APPSECRET_MISSING: Self = Self::new(41004, "appsecret missing");
    /// `41008`: the `js_code` parameter is missing.
    pub const MISSING_CODE: Self = Self::new(41008, "missing code");
    /// `42001`: the access token reached the end of its lifetime.
    pub const ACCESS_TOKEN_EXPIRED: Self = Self::new(42001, "access_token expired");
    /// `43002`: the API only accepts POST.
    pub const REQUIRE_POST: Self = Self::new(43002, "require POST method");
    /// `43101`: the user has not accepted (or has used up) the subscribe-message template.
    pub const USER_REFUSE_TO_ACCEPT_MSG: Self = Self::new(43101, "user refuse to accept the msg");
    /// `44002`: a POST arrived with an empty body.
    pub const EMPTY_POST_DATA: Self = Self::new(44002, "empty post data");
    /// `45009`: the daily quota of this API (or of forced refreshes) is used up.
    pub const DAILY_QUOTA_REACHED: Self = Self::new(45009, "reach max api daily quota limit");
    /// `45011`: too many calls in a minute (jscode2session: more than 100 per user per minute).
    pub const MINUTE_QUOTA_REACHED: Self =
        Self::new(45011, "api minute-quota reach limit mustslower retry next minute");
    /// `47001`: the JSON body could not be understood.
    pub const DATA_FORMAT_ERROR: Self = Self::new(47001, "data format error");
    /// `47003`: an argument breaks its rules; WeChat appends which one, e.g.
    /// `argument invalid! data.thing1.value is empty`.
    pub const ARGUMENT_INVALID: Self = Self::new(47003, "argument invalid!");
    /// `48001`: the app has no right to this API (e.g. a mini-program calling an official-account API).
    pub const API_UNAUTHORIZED: Self = Self::new(48001, "api unauthorized");

    /// Every code above, for looking a message up by its number.
    const ALL: &'static [Self] = &[
        Self::SYSTEM_BUSY,
        Self::INVALID_CREDENTIAL,
        Self::INVALID_GRANT_TYPE,
        Self::INVALID_OPENID,
        Self::INVALID_APPID,
        Self::INVALID_CODE,
        Self::INVALID_TEMPLATE_ID,
        Self::INVALID_ACTION_NAME,
        Self::INVALID_ACTION_INFO,
        Self::INVALID_URL,
        Self::INVALID_APPSECRET,
        Self::CODE_BEEN_USED,
        Self::CODE_BLOCKED,
        Self::ACCESS_TOKEN_MISSING,
        Self::APPID_MISSING,
        Self::APPSECRET_MISSING,
        Self::MISSING_CODE,
        Self::ACCESS_TOKEN_EXPIRED,
        Self::REQUIRE_POST,
        Self::USER_REFUSE_TO_ACCEPT_MSG,
        Self::EMPTY_POST_DATA,
        Self::DAILY_QUOTA_REACHED,
        Self::MINUTE_QUOTA_REACHED,
        Self::DATA_FORMAT_ERROR,
        Self::ARGUMENT_INVALID,
        Self::API_UNAUTHORIZED,
    ];

    const fn new(errcode: i64, errmsg: &'static str) -> Self {
        Self { errcode, errmsg }
    }

    /// The error this mock knows under `errcode`, e.g. `known(-1)` is [`Self::SYSTEM_BUSY`].
    pub fn known(errcode: i64) -> Option<Self> {
        Self::ALL.iter().copied().find(|err| err.errcode == errcode)
    }

    /// The `errmsg` WeChat sends: the message followed by a request id, e.g.
    /// `invalid appid rid: 66b5fb8f-5e3c0071-3d7f539a`.
    pub fn errmsg_with_rid(&self, now_ms: i64) -> String {
        format!("{} rid: {}", self.errmsg, new_rid(now_ms))
    }

    /// The HTTP answer: status 200 and the JSON error body, as WeChat sends it.
    pub fn to_response(self, now_ms: i64) -> Response {
        error_response(self.errcode, self.errmsg, now_ms)
    }
}

/// A WeChat error body for any code and message (e.g. an injected fault): HTTP 200 and
/// `{"errcode": errcode, "errmsg": "<errmsg> rid: …"}`.
pub(crate) fn error_response(errcode: i64, errmsg: &str, now_ms: i64) -> Response {
    Json(json!({ "errcode": errcode, "errmsg": format!("{errmsg} rid: {}", new_rid(now_ms)) }))
        .with_status(StatusCode::OK)
        .into_response()
}

impl From<WxError> for (i64, &'static str) {
    fn from(err: WxError) -> Self {
        (err.errcode, err.errmsg)
    }
}

impl std::fmt::Display for WxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "errcode {}: {}", self.errcode, self.errmsg)
    }
}

impl std::error::Error for WxError {}

/// WeChat's request ids are three groups of eight hex digits, the first being the Unix time.
fn new_rid(now_ms: i64) -> String {
    let mut rng = rand::thread_rng();
    let secs = u32::try_from(now_ms.div_euclid(1000)).unwrap_or(u32::MAX);
    format!("{secs:08x}-{:08x}-{:08x}", rng.gen::<u32>(), rng.gen::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errmsg_carries_a_rid_like_wechat() {
        let msg = WxError::INVALID_APPID.errmsg_with_rid(1_722_000_000_000);
        let rid = msg.strip_prefix("invalid appid rid: ").expect("prefix");
        let groups: Vec<&str> = rid.split('-').collect();
        assert_eq!(groups.len(), 3);
        assert!(groups.iter().all(|g| g.len() == 8 && g.chars().all(|c| c.is_ascii_hexdigit())));
        assert_eq!(groups[0], format!("{:08x}", 1_722_000_000u32));
    }

    #[test]
    fn known_codes_are_found_by_number() {
        assert_eq!(WxError::known(-1), Some(WxError::SYSTEM_BUSY));
        assert_eq!(WxError::known(40163), Some(WxError::CODE_BEEN_USED));
        assert_eq!(WxError::known(12345), None);
        let mut codes: Vec<i64> = WxError::ALL.iter().map(|e| e.errcode).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), WxError::ALL.len(), "one entry per code");
    }
}
