//! WeChat Pay v2 (XML) for payouts: cash red packets (`sendredpack`, `gethbinfo`) and the legacy
//! enterprise payment (`promotion/transfers`, `gettransferinfo`).
//!
//! Signature (protocols §6): every non-empty field except `sign`, sorted by name (bytes,
//! ascending), joined as `k=v` with `&` using raw UTF-8 values, then `&key=API_KEY`; MD5 or
//! HMAC-SHA256 (keyed with the API key), upper-case hex. These four calls are signed with MD5 and
//! send no `sign_type`: red-packet calls do not sign it (WxJava PR#1127), and leaving it out keeps
//! the signed set exactly the sent set.
//!
//! Outcomes follow WeChat's rules for money (§4–5): only an answer that says so is a success or a
//! definite failure; SYSTEMERROR, PROCESSING, codes we do not know, unparsable or unverifiable
//! answers and timeouts are unknown — query, or resend with the **same** merchant number, because a
//! new number would be a second payout.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

use super::xml::{parse_xml, to_xml, XmlError};
use super::{constant_time_eq, nonce_str, read_capped, transport_unknown, ReadError};
use super::{CODE_BAD_ANSWER, CODE_BAD_SIGNATURE};
use crate::secret::Secret;

/// Production base URL of the v2 API.
pub const DEFAULT_BASE_URL: &str = "https://api.mch.weixin.qq.com";

/// The two v2 signature algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignType {
    Md5,
    HmacSha256,
}

impl SignType {
    /// The `sign_type` value naming this algorithm.
    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::HmacSha256 => "HMAC-SHA256",
        }
    }
}

/// The string that is hashed: sorted non-empty fields except `sign`, then `&key=`.
fn string_to_sign(fields: &BTreeMap<String, String>, key: &Secret) -> String {
    let mut out = String::new();
    for (name, value) in fields {
        if name == "sign" || value.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out.push_str("&key=");
    out.push_str(key.expose());
    out
}

/// The v2 signature of `fields` (a `sign` field among them is ignored).
pub fn sign(fields: &BTreeMap<String, String>, key: &Secret, sign_type: SignType) -> String {
    let message = string_to_sign(fields, key);
    let digest = match sign_type {
        SignType::Md5 => Md5::digest(message.as_bytes()).to_vec(),
        SignType::HmacSha256 => {
            // HMAC accepts keys of any length, so this cannot fail; an error would only mean a
            // broken hmac crate, and then an empty digest makes every signature fail safely.
            match Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()) {
                Ok(mut mac) => {
                    mac.update(message.as_bytes());
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
    };
    hex::encode_upper(digest)
}

/// Checks the `sign` field of `fields` over every other field, whatever its name (new fields
/// WeChat adds are signed too). The algorithm is the answer's own `sign_type` when it names one,
/// else `default`.
pub fn verify(fields: &BTreeMap<String, String>, key: &Secret, default: SignType) -> Result<(), SignatureError> {
    let given = fields.get("sign").ok_or(SignatureError::Missing)?;
    let sign_type = match fields.get("sign_type").map(String::as_str) {
        None | Some("") => default,
        Some("MD5") => SignType::Md5,
        Some("HMAC-SHA256") => SignType::HmacSha256,
        Some(_) => return Err(SignatureError::UnknownSignType),
    };
    let expected = sign(fields, key, sign_type);
    if constant_time_eq(expected.as_bytes(), given.trim().to_ascii_uppercase().as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the answer carries no sign")]
    Missing,
    #[error("the answer names a sign_type we do not know")]
    UnknownSignType,
    #[error("the answer's sign does not match")]
    Mismatch,
}

/// A problem found before anything was sent: the payout certainly did not happen.
#[derive(Debug, thiserror::Error)]
pub enum V2Error {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("request could not be written as XML")]
    Xml(#[from] XmlError),
    #[error("merchant client certificate or key is unusable")]
    Identity(#[source] reqwest::Error),
    #[error("extra root CA certificate is unusable: {0}")]
    RootCa(String),
    #[error("HTTP client could not be built")]
    Client(#[source] reqwest::Error),
}

/// What a payout call (`sendredpack`, `promotion/transfers`) came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum V2Outcome<T> {
    /// WeChat says the payout was made (or accepted, for red packets: see `gethbinfo` for receipt).
    Success(T),
    /// WeChat says this request failed and nothing was paid for it. A new merchant number may be
    /// used — unless an earlier attempt with this number ended unknown: resolve that by query first.
    Failed { code: String, message: String },
    /// Nobody can tell yet: query, or resend with the same merchant number. Never use a new one.
    Unknown { code: String, message: String },
}

/// What a query (`gethbinfo`, `gettransferinfo`) came to. A query that fails says nothing about
/// the payout, so there is no "failed": `NOT_FOUND` may mean still processing (§4–5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum V2Query<T> {
    Found(T),
    Unknown { code: String, message: String },
}

/// Which payout API an error code came from: the two share most codes but not their meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayoutApi {
    RedPack,
    Transfer,
}

/// Whether `err_code` from a payout call means "certainly not paid". Anything not listed —
/// SYSTEMERROR, PROCESSING, FATAL_ERROR (the number was already used with other parameters, so an
/// earlier payout may exist), new codes — is unknown.
pub fn is_definite_failure(api: PayoutApi, err_code: &str) -> bool {
    const COMMON: &[&str] = &[
        "NOTENOUGH",
        "SENDNUM_LIMIT",
        "FREQ_LIMIT",
        "MONEY_LIMIT",
        "NO_AUTH",
        "SEND_FAILED",
        "OPENID_ERROR",
        "CA_ERROR",
        "SIGN_ERROR",
        "XML_ERROR",
        "PARAM_ERROR",
    ];
    const RED_PACK: &[&str] = &["ILLEGAL_APPID", "MSGAPPID_ERROR", "ACCEPTMODE_ERROR"];
    const TRANSFER: &[&str] = &["AMOUNT_LIMIT", "NAME_MISMATCH", "V2_ACCOUNT_SIMPLE_BAN", "PARAM_IS_NOT_UTF8"];
    COMMON.contains(&err_code)
        || match api {
            PayoutApi::RedPack => RED_PACK.contains(&err_code),
            PayoutApi::Transfer => TRANSFER.contains(&err_code),
        }
}

fn field<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    fields.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn is_success(fields: &BTreeMap<String, String>) -> bool {
    field(fields, "return_code") == Some("SUCCESS") && field(fields, "result_code") == Some("SUCCESS")
}

/// The code and message of a non-success answer: `err_code`/`err_code_des`, else the transport
/// level `return_code`/`return_msg`.
fn error_of(fields: &BTreeMap<String, String>) -> (Option<String>, String) {
    let code = field(fields, "err_code").map(str::to_owned);
    let message = field(fields, "err_code_des").or_else(|| field(fields, "return_msg")).unwrap_or_default();
    (code, message.to_owned())
}

fn bad_answer<T>(message: impl Into<String>) -> V2Outcome<T> {
    V2Outcome::Unknown { code: CODE_BAD_ANSWER.to_owned(), message: message.into() }
}

/// Classifies the parsed, signature-checked fields of a payout answer. `success` reads the typed
/// answer and returns `None` when required fields are missing or do not echo the request.
pub fn classify_payout<T>(
    api: PayoutApi,
    fields: &BTreeMap<String, String>,
    success: impl FnOnce(&BTreeMap<String, String>) -> Option<T>,
) -> V2Outcome<T> {
    if is_success(fields) {
        return match success(fields) {
            Some(answer) => V2Outcome::Success(answer),
            None => bad_answer("success answer lacks required fields or does not match the request"),
        };
    }
    match error_of(fields) {
        (Some(code), message) if is_definite_failure(api, &code) => V2Outcome::Failed { code, message },
        (Some(code), message) => V2Outcome::Unknown { code, message },
        // FAIL without err_code (e.g. return_code FAIL): not a documented failure, so unknown.
        (None, message) => {
            let code = field(fields, "return_code").unwrap_or(CODE_BAD_ANSWER).to_owned();
            V2Outcome::Unknown { code, message }
        }
    }
}

/// Classifies the parsed, signature-checked fields of a query answer.
pub fn classify_query<T>(
    fields: &BTreeMap<String, String>,
    found: impl FnOnce(&BTreeMap<String, String>) -> Option<T>,
) -> V2Query<T> {
    if is_success(fields) {
        return match found(fields) {
            Some(answer) => V2Query::Found(answer),
            None => V2Query::Unknown {
                code: CODE_BAD_ANSWER.to_owned(),
                message: "query answer lacks required fields or does not match the request".to_owned(),
            },
        };
    }
    let (code, message) = error_of(fields);
    let code = code.or_else(|| field(fields, "return_code").map(str::to_owned)).unwrap_or(CODE_BAD_ANSWER.to_owned());
    V2Query::Unknown { code, message }
}

fn parse_amount(value: Option<&str>) -> Option<u64> {
    value.and_then(|v| v.parse().ok())
}

fn owned(fields: &BTreeMap<String, String>, name: &str) -> Option<String> {
    field(fields, name).map(str::to_owned)
}

fn check_merchant_number(name: &str, value: &str, max: usize) -> Result<(), V2Error> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(V2Error::InvalidRequest(format!("{name} must be 1..={max} ASCII letters or digits")));
    }
    Ok(())
}

fn check_len(name: &str, value: &str, max_chars: usize) -> Result<(), V2Error> {
    if value.chars().count() > max_chars {
        return Err(V2Error::InvalidRequest(format!("{name} longer than {max_chars} characters")));
    }
    Ok(())
}

fn check_required(name: &str, value: &str) -> Result<(), V2Error> {
    if value.trim().is_empty() {
        return Err(V2Error::InvalidRequest(format!("{name} is required")));
    }
    Ok(())
}

/// `sendredpack`: one normal cash red packet (§4). `mch_id` comes from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendRedPack {
    /// Merchant number, `[0-9a-zA-Z]{1,28}`; the call is re-entrant by it.
    pub mch_billno: String,
    /// Official-account appid the openid belongs to.
    pub wxappid: String,
    pub send_name: String,
    pub re_openid: String,
    /// Fen.
    pub total_amount: u64,
    pub wishing: String,
    pub client_ip: String,
    pub act_name: String,
    pub remark: String,
    /// `PRODUCT_1`..`PRODUCT_8`; WeChat requires it below 1 or above 200 yuan.
    pub scene_id: Option<String>,
    /// Already URL-encoded `posttime=..&mobile=..&…`.
    pub risk_info: Option<String>,
    pub consume_mch_id: Option<String>,
}

impl SendRedPack {
    fn validate(&self) -> Result<(), V2Error> {
        check_merchant_number("mch_billno", &self.mch_billno, 28)?;
        for (name, value) in [
            ("wxappid", &self.wxappid),
            ("send_name", &self.send_name),
            ("re_openid", &self.re_openid),
            ("wishing", &self.wishing),
            ("client_ip", &self.client_ip),
            ("act_name", &self.act_name),
            ("remark", &self.remark),
        ] {
            check_required(name, value)?;
        }
        check_len("send_name", &self.send_name, 32)?;
        check_len("wishing", &self.wishing, 128)?;
        check_len("act_name", &self.act_name, 32)?;
        check_len("remark", &self.remark, 256)?;
        if self.total_amount == 0 {
            return Err(V2Error::InvalidRequest("total_amount must be positive".into()));
        }
        Ok(())
    }

    fn fields(&self, mch_id: &str) -> BTreeMap<String, String> {
        let mut fields = BTreeMap::new();
        let mut put = |name: &str, value: &str| {
            fields.insert(name.to_owned(), value.to_owned());
        };
        put("mch_billno", &self.mch_billno);
        put("mch_id", mch_id);
        put("wxappid", &self.wxappid);
        put("send_name", &self.send_name);
        put("re_openid", &self.re_openid);
        put("total_amount", &self.total_amount.to_string());
        put("total_num", "1");
        put("wishing", &self.wishing);
        put("client_ip", &self.client_ip);
        put("act_name", &self.act_name);
        put("remark", &self.remark);
        for (name, value) in
            [("scene_id", &self.scene_id), ("risk_info", &self.risk_info), ("consume_mch_id", &self.consume_mch_id)]
        {
            if let Some(value) = value {
                put(name, value);
            }
        }
        fields
    }
}

/// A red packet WeChat accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedPackSent {
    pub mch_billno: String,
    /// WeChat's number for the packet.
    pub send_listid: Option<String>,
    pub total_amount: Option<u64>,
    pub re_openid: Option<String>,
    pub send_time: Option<String>,
}

/// Reads a `sendredpack` success; the echoed `mch_billno` must be ours.
pub fn read_red_pack_sent(fields: &BTreeMap<String, String>, mch_billno: &str) -> Option<RedPackSent> {
    match field(fields, "mch_billno") {
        Some(echoed) if echoed != mch_billno => return None,
        _ => {}
    }
    Some(RedPackSent {
        mch_billno: mch_billno.to_owned(),
        send_listid: owned(fields, "send_listid"),
        total_amount: parse_amount(field(fields, "total_amount")),
        re_openid: owned(fields, "re_openid"),
        send_time: owned(fields, "send_time"),
    })
}

/// `gethbinfo` status of a red packet (§4; `RFUND_ING` is WeChat's spelling).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedPackStatus {
    Sending,
    Sent,
    Failed,
    Received,
    Refunding,
    Refunded,
    Unknown(String),
}

impl RedPackStatus {
    pub fn parse(value: &str) -> Self {
        match value {
            "SENDING" => Self::Sending,
            "SENT" => Self::Sent,
            "FAILED" => Self::Failed,
            "RECEIVED" => Self::Received,
            "RFUND_ING" => Self::Refunding,
            "REFUND" => Self::Refunded,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

/// A red packet as `gethbinfo` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedPackInfo {
    pub mch_billno: String,
    pub detail_id: Option<String>,
    pub status: RedPackStatus,
    pub send_type: Option<String>,
    pub hb_type: Option<String>,
    pub total_num: Option<u64>,
    pub total_amount: Option<u64>,
    pub reason: Option<String>,
    pub send_time: Option<String>,
    pub refund_time: Option<String>,
    pub refund_amount: Option<u64>,
    pub wishing: Option<String>,
}

/// Reads a `gethbinfo` success; `status` is required and the echoed `mch_billno` must be ours.
pub fn read_red_pack_info(fields: &BTreeMap<String, String>, mch_billno: &str) -> Option<RedPackInfo> {
    match field(fields, "mch_billno") {
        Some(echoed) if echoed != mch_billno => return None,
        _ => {}
    }
    Some(RedPackInfo {
        mch_billno: mch_billno.to_owned(),
        detail_id: owned(fields, "detail_id"),
        status: RedPackStatus::parse(field(fields, "status")?),
        send_type: owned(fields, "send_type"),
        hb_type: owned(fields, "hb_type"),
        total_num: parse_amount(field(fields, "total_num")),
        total_amount: parse_amount(field(fields, "total_amount")),
        reason: owned(fields, "reason"),
        send_time: owned(fields, "send_time"),
        refund_time: owned(fields, "refund_time"),
        refund_amount: parse_amount(field(fields, "refund_amount")),
        wishing: owned(fields, "wishing"),
    })
}

/// `check_name` of an enterprise payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckName {
    NoCheck,
    /// Check the payee's real name against `re_user_name`.
    ForceCheck {
        re_user_name: String,
    },
}

/// `promotion/transfers`: the legacy enterprise payment to a user's balance (§5). `mchid` comes
/// from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Merchant number, 1..=32 ASCII letters or digits; retries must reuse it.
    pub partner_trade_no: String,
    pub mch_appid: String,
    pub openid: String,
    pub check_name: CheckName,
    /// Fen.
    pub amount: u64,
    pub desc: String,
    pub spbill_create_ip: String,
    pub device_info: Option<String>,
}

impl Transfer {
    fn validate(&self) -> Result<(), V2Error> {
        check_merchant_number("partner_trade_no", &self.partner_trade_no, 32)?;
        for (name, value) in [
            ("mch_appid", &self.mch_appid),
            ("openid", &self.openid),
            ("desc", &self.desc),
            ("spbill_create_ip", &self.spbill_create_ip),
        ] {
            check_required(name, value)?;
        }
        if let CheckName::ForceCheck { re_user_name } = &self.check_name {
            check_required("re_user_name", re_user_name)?;
        }
        if self.amount == 0 {
            return Err(V2Error::InvalidRequest("amount must be positive".into()));
        }
        Ok(())
    }

    fn fields(&self, mch_id: &str) -> BTreeMap<String, String> {
        let mut fields = BTreeMap::new();
        let mut put = |name: &str, value: &str| {
            fields.insert(name.to_owned(), value.to_owned());
        };
        put("mch_appid", &self.mch_appid);
        put("mchid", mch_id);
        put("partner_trade_no", &self.partner_trade_no);
        put("openid", &self.openid);
        match &self.check_name {
            CheckName::NoCheck => put("check_name", "NO_CHECK"),
            CheckName::ForceCheck { re_user_name } => {
                put("check_name", "FORCE_CHECK");
                put("re_user_name", re_user_name);
            }
        }
        put("amount", &self.amount.to_string());
        put("desc", &self.desc);
        put("spbill_create_ip", &self.spbill_create_ip);
        if let Some(device_info) = &self.device_info {
            put("device_info", device_info);
        }
        fields
    }
}

/// An enterprise payment WeChat made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferDone {
    pub partner_trade_no: String,
    /// WeChat's number for the payment.
    pub payment_no: Option<String>,
    pub payment_time: Option<String>,
}

/// Reads a `promotion/transfers` success; the echoed `partner_trade_no` must be ours.
pub fn read_transfer_done(fields: &BTreeMap<String, String>, partner_trade_no: &str) -> Option<TransferDone> {
    match field(fields, "partner_trade_no") {
        Some(echoed) if echoed != partner_trade_no => return None,
        _ => {}
    }
    Some(TransferDone {
        partner_trade_no: partner_trade_no.to_owned(),
        payment_no: owned(fields, "payment_no"),
        payment_time: owned(fields, "payment_time"),
    })
}

/// `gettransferinfo` status of an enterprise payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferStatus {
    Success,
    Failed,
    Processing,
    Unknown(String),
}

impl TransferStatus {
    pub fn parse(value: &str) -> Self {
        match value {
            "SUCCESS" => Self::Success,
            "FAILED" => Self::Failed,
            "PROCESSING" => Self::Processing,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

/// An enterprise payment as `gettransferinfo` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferInfo {
    pub partner_trade_no: String,
    pub detail_id: Option<String>,
    pub status: TransferStatus,
    pub reason: Option<String>,
    pub openid: Option<String>,
    pub transfer_name: Option<String>,
    pub payment_amount: Option<u64>,
    pub transfer_time: Option<String>,
    pub payment_time: Option<String>,
    pub desc: Option<String>,
}

/// Reads a `gettransferinfo` success; `status` is required and the echoed number must be ours.
pub fn read_transfer_info(fields: &BTreeMap<String, String>, partner_trade_no: &str) -> Option<TransferInfo> {
    match field(fields, "partner_trade_no") {
        Some(echoed) if echoed != partner_trade_no => return None,
        _ => {}
    }
    Some(TransferInfo {
        partner_trade_no: partner_trade_no.to_owned(),
        detail_id: owned(fields, "detail_id"),
        status: TransferStatus::parse(field(fields, "status")?),
        reason: owned(fields, "reason"),
        openid: owned(fields, "openid"),
        transfer_name: owned(fields, "transfer_name"),
        payment_amount: parse_amount(field(fields, "payment_amount")),
        transfer_time: owned(fields, "transfer_time"),
        payment_time: owned(fields, "payment_time"),
        desc: owned(fields, "desc"),
    })
}

/// The certificates of a PEM bundle of extra trusted roots; at least one, or why not.
pub(crate) fn extra_roots(pem: &str) -> Result<Vec<reqwest::Certificate>, String> {
    let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|err| err.to_string())?;
    if roots.is_empty() {
        return Err("no CERTIFICATE in the PEM".to_owned());
    }
    Ok(roots)
}

/// Settings of a [`V2Client`].
#[derive(Clone, Debug)]
pub struct V2Config {
    /// `https://api.mch.weixin.qq.com`, or a mock's address.
    pub base_url: String,
    pub mch_id: String,
    /// The 32-character v2 API key.
    pub api_key: Secret,
    /// PEM holding the merchant API certificate (`apiclient_cert.pem`) and its private key
    /// (`apiclient_key.pem`), concatenated; `None` only for a mock without TLS.
    pub client_identity_pem: Option<Secret>,
    /// An extra trusted root (PEM) for the API's server certificate, e.g. an HTTPS mock's CA;
    /// `None` for WeChat, whose certificate chains to the built-in roots.
    pub root_ca_pem: Option<String>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Treat an answer without `sign` as unknown. WeChat's payout answers are not documented to
    /// carry one consistently, so by default an unsigned answer is accepted (the mutual-TLS
    /// connection vouches for it) and a signed one must verify.
    pub require_signed_answers: bool,
}

/// The v2 payout API client. One per merchant, built once (it holds the TLS identity).
#[derive(Clone)]
pub struct V2Client {
    http: reqwest::Client,
    base_url: String,
    mch_id: String,
    api_key: Secret,
    require_signed_answers: bool,
}

impl std::fmt::Debug for V2Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V2Client").field("base_url", &self.base_url).field("mch_id", &self.mch_id).finish()
    }
}

impl V2Client {
    pub fn new(config: V2Config) -> Result<Self, V2Error> {
        let mut builder =
            reqwest::Client::builder().connect_timeout(config.connect_timeout).timeout(config.timeout).use_rustls_tls();
        if let Some(pem) = &config.client_identity_pem {
            let identity = reqwest::Identity::from_pem(pem.expose().as_bytes()).map_err(V2Error::Identity)?;
            builder = builder.identity(identity);
        }
        if let Some(pem) = &config.root_ca_pem {
            for root in extra_roots(pem).map_err(V2Error::RootCa)? {
                builder = builder.add_root_certificate(root);
            }
        }
        Ok(Self {
            http: builder.build().map_err(V2Error::Client)?,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            mch_id: config.mch_id,
            api_key: config.api_key,
            require_signed_answers: config.require_signed_answers,
        })
    }

    /// Sends one cash red packet. `Err` only when nothing was sent.
    pub async fn send_red_pack(&self, request: &SendRedPack) -> Result<V2Outcome<RedPackSent>, V2Error> {
        request.validate()?;
        let answer = self.post("/mmpaymkttransfers/sendredpack", request.fields(&self.mch_id)).await?;
        Ok(match answer {
            Ok(fields) => classify_payout(PayoutApi::RedPack, &fields, |f| read_red_pack_sent(f, &request.mch_billno)),
            Err((code, message)) => V2Outcome::Unknown { code, message },
        })
    }

    /// Queries a red packet by its merchant number (`bill_type=MCHT`).
    pub async fn query_red_pack(&self, mch_billno: &str, appid: &str) -> Result<V2Query<RedPackInfo>, V2Error> {
        check_merchant_number("mch_billno", mch_billno, 28)?;
        check_required("appid", appid)?;
        let fields = BTreeMap::from([
            ("mch_billno".to_owned(), mch_billno.to_owned()),
            ("mch_id".to_owned(), self.mch_id.clone()),
            ("appid".to_owned(), appid.to_owned()),
            ("bill_type".to_owned(), "MCHT".to_owned()),
        ]);
        let answer = self.post("/mmpaymkttransfers/gethbinfo", fields).await?;
        Ok(match answer {
            Ok(fields) => classify_query(&fields, |f| read_red_pack_info(f, mch_billno)),
            Err((code, message)) => V2Query::Unknown { code, message },
        })
    }

    /// Makes one enterprise payment. `Err` only when nothing was sent.
    pub async fn transfer(&self, request: &Transfer) -> Result<V2Outcome<TransferDone>, V2Error> {
        request.validate()?;
        let answer = self.post("/mmpaymkttransfers/promotion/transfers", request.fields(&self.mch_id)).await?;
        Ok(match answer {
            Ok(fields) => {
                classify_payout(PayoutApi::Transfer, &fields, |f| read_transfer_done(f, &request.partner_trade_no))
            }
            Err((code, message)) => V2Outcome::Unknown { code, message },
        })
    }

    /// Queries an enterprise payment by its merchant number.
    pub async fn query_transfer(&self, partner_trade_no: &str, appid: &str) -> Result<V2Query<TransferInfo>, V2Error> {
        check_merchant_number("partner_trade_no", partner_trade_no, 32)?;
        check_required("appid", appid)?;
        let fields = BTreeMap::from([
            ("partner_trade_no".to_owned(), partner_trade_no.to_owned()),
            ("mch_id".to_owned(), self.mch_id.clone()),
            ("appid".to_owned(), appid.to_owned()),
        ]);
        let answer = self.post("/mmpaymkttransfers/gettransferinfo", fields).await?;
        Ok(match answer {
            Ok(fields) => classify_query(&fields, |f| read_transfer_info(f, partner_trade_no)),
            Err((code, message)) => V2Query::Unknown { code, message },
        })
    }

    /// Signs and posts `fields`; the inner result is the answer's fields once parsed and verified,
    /// or the `(code, message)` of an unknown outcome.
    async fn post(
        &self,
        path: &str,
        mut fields: BTreeMap<String, String>,
    ) -> Result<Result<BTreeMap<String, String>, (String, String)>, V2Error> {
        fields.insert("nonce_str".to_owned(), nonce_str());
        let signature = sign(&fields, &self.api_key, SignType::Md5);
        fields.insert("sign".to_owned(), signature);
        let body = to_xml(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;

        let url = format!("{}{}", self.base_url, path);
        let response = match self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=UTF-8")
            .body(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(err) => {
                tracing::warn!(path, error = %err, "WeChat Pay v2 call failed; outcome unknown");
                return Ok(Err(transport_unknown(&err)));
            }
        };
        let status = response.status();
        let bytes = match read_capped(response).await {
            Ok(bytes) => bytes,
            Err(ReadError::Transport(err)) => return Ok(Err(transport_unknown(&err))),
            Err(ReadError::TooLarge) => return Ok(Err((CODE_BAD_ANSWER.to_owned(), "answer too large".to_owned()))),
        };
        if !status.is_success() {
            return Ok(Err((format!("HTTP_{}", status.as_u16()), "WeChat Pay answered with an HTTP error".to_owned())));
        }
        Ok(self.check_answer(&bytes))
    }

    /// Parses and verifies an answer body.
    fn check_answer(&self, bytes: &[u8]) -> Result<BTreeMap<String, String>, (String, String)> {
        let fields = parse_xml(bytes).map_err(|err| (CODE_BAD_ANSWER.to_owned(), err.to_string()))?;
        match verify(&fields, &self.api_key, SignType::Md5) {
            Ok(()) => Ok(fields),
            Err(SignatureError::Missing) if !self.require_signed_answers => Ok(fields),
            Err(err) => {
                tracing::warn!(error = %err, "WeChat Pay v2 answer failed signature verification");
                Err((CODE_BAD_SIGNATURE.to_owned(), err.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn official_example() -> (BTreeMap<String, String>, Secret) {
        let fields = map(&[
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("device_info", "1000"),
            ("body", "test"),
            ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ]);
        (fields, Secret::new("192006250b4c09247ec02edce69f6a2d"))
    }

    /// pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=4_3 (protocols §6).
    #[test]
    fn official_md5_vector() {
        let (fields, key) = official_example();
        assert_eq!(
            string_to_sign(&fields, &key),
            "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA\
             &key=192006250b4c09247ec02edce69f6a2d"
        );
        assert_eq!(sign(&fields, &key, SignType::Md5), "9A0A8659F005D6984697E2CA0A9CF3B7");
    }

    /// The protocol file gives no HMAC value for the example. This one was computed independently
    /// with `printf '%s' "$stringSignTemp" | openssl dgst -sha256 -hmac "$KEY"` (upper-cased).
    #[test]
    fn official_example_hmac_sha256() {
        let (fields, key) = official_example();
        assert_eq!(
            sign(&fields, &key, SignType::HmacSha256),
            "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
        );
    }

    #[test]
    fn empty_values_and_sign_are_not_signed() {
        let (mut fields, key) = official_example();
        let expected = sign(&fields, &key, SignType::Md5);
        fields.insert("scene_id".into(), String::new());
        fields.insert("sign".into(), "whatever".into());
        assert_eq!(sign(&fields, &key, SignType::Md5), expected);
    }

    #[test]
    fn verify_uses_every_field_and_sign_type() {
        let key = Secret::new("k".repeat(32));
        let mut answer = map(&[("return_code", "SUCCESS"), ("new_field", "新"), ("sign_type", "HMAC-SHA256")]);
        let signature = sign(&answer, &key, SignType::HmacSha256);
        answer.insert("sign".into(), signature.to_lowercase());
        assert_eq!(verify(&answer, &key, SignType::Md5), Ok(()));
        answer.insert("new_field".into(), "旧".into());
        assert_eq!(verify(&answer, &key, SignType::Md5), Err(SignatureError::Mismatch));
        answer.remove("sign");
        assert_eq!(verify(&answer, &key, SignType::Md5), Err(SignatureError::Missing));
        let odd = map(&[("sign_type", "SHA1"), ("sign", "X")]);
        assert_eq!(verify(&odd, &key, SignType::Md5), Err(SignatureError::UnknownSignType));
    }

    fn answer(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        map(pairs)
    }

    fn red_pack(fields: &BTreeMap<String, String>) -> V2Outcome<RedPackSent> {
        classify_payout(PayoutApi::RedPack, fields, |f| read_red_pack_sent(f, "B1"))
    }

    fn transfer(fields: &BTreeMap<String, String>) -> V2Outcome<TransferDone> {
        classify_payout(PayoutApi::Transfer, fields, |f| read_transfer_done(f, "T1"))
    }

    fn failure(code: &str) -> BTreeMap<String, String> {
        answer(&[("return_code", "SUCCESS"), ("result_code", "FAIL"), ("err_code", code), ("err_code_des", "描述")])
    }

    #[test]
    fn red_pack_success() {
        let ok = answer(&[
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("err_code", "SUCCESS"),
            ("mch_billno", "B1"),
            ("send_listid", "100000000020150520314766074200"),
            ("total_amount", "100"),
        ]);
        match red_pack(&ok) {
            V2Outcome::Success(sent) => {
                assert_eq!(sent.send_listid.as_deref(), Some("100000000020150520314766074200"));
                assert_eq!(sent.total_amount, Some(100));
            }
            other => panic!("{other:?}"),
        }
        // A success echoing another number is not ours to trust.
        let mut other = ok.clone();
        other.insert("mch_billno".into(), "B2".into());
        assert!(matches!(red_pack(&other), V2Outcome::Unknown { .. }));
    }

    #[test]
    fn red_pack_error_table() {
        let failed = [
            "SEND_FAILED",
            "NOTENOUGH",
            "SENDNUM_LIMIT",
            "FREQ_LIMIT",
            "MONEY_LIMIT",
            "NO_AUTH",
            "OPENID_ERROR",
            "ILLEGAL_APPID",
            "CA_ERROR",
            "SIGN_ERROR",
            "XML_ERROR",
            "PARAM_ERROR",
            "MSGAPPID_ERROR",
            "ACCEPTMODE_ERROR",
        ];
        for code in failed {
            assert_eq!(
                red_pack(&failure(code)),
                V2Outcome::Failed { code: code.into(), message: "描述".into() },
                "{code}"
            );
        }
        for code in ["SYSTEMERROR", "PROCESSING", "FATAL_ERROR", "SOMETHING_NEW", "AMOUNT_LIMIT", "NAME_MISMATCH"] {
            assert!(matches!(red_pack(&failure(code)), V2Outcome::Unknown { code: c, .. } if c == code), "{code}");
        }
        // return_code FAIL with a code is still classified by the code; without one it is unknown.
        let mut fail = failure("NOTENOUGH");
        fail.insert("return_code".into(), "FAIL".into());
        assert!(matches!(red_pack(&fail), V2Outcome::Failed { .. }));
        let bare = answer(&[("return_code", "FAIL"), ("return_msg", "签名错误")]);
        assert_eq!(red_pack(&bare), V2Outcome::Unknown { code: "FAIL".into(), message: "签名错误".into() });
        assert!(matches!(red_pack(&BTreeMap::new()), V2Outcome::Unknown { .. }));
    }

    #[test]
    fn transfer_error_table() {
        for code in [
            "NO_AUTH",
            "AMOUNT_LIMIT",
            "PARAM_ERROR",
            "OPENID_ERROR",
            "SEND_FAILED",
            "NOTENOUGH",
            "NAME_MISMATCH",
            "SIGN_ERROR",
            "XML_ERROR",
            "FREQ_LIMIT",
            "MONEY_LIMIT",
            "CA_ERROR",
            "V2_ACCOUNT_SIMPLE_BAN",
            "PARAM_IS_NOT_UTF8",
            "SENDNUM_LIMIT",
        ] {
            assert!(matches!(transfer(&failure(code)), V2Outcome::Failed { .. }), "{code}");
        }
        for code in ["SYSTEMERROR", "FATAL_ERROR", "PROCESSING", "ILLEGAL_APPID", "NEW_CODE"] {
            assert!(matches!(transfer(&failure(code)), V2Outcome::Unknown { .. }), "{code}");
        }
        let ok = answer(&[
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("partner_trade_no", "T1"),
            ("payment_no", "P"),
        ]);
        assert!(matches!(transfer(&ok), V2Outcome::Success(TransferDone { payment_no: Some(p), .. }) if p == "P"));
    }

    #[test]
    fn query_classification() {
        let found = answer(&[
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("mch_billno", "B1"),
            ("status", "RFUND_ING"),
            ("refund_amount", "100"),
        ]);
        match classify_query(&found, |f| read_red_pack_info(f, "B1")) {
            V2Query::Found(info) => {
                assert_eq!(info.status, RedPackStatus::Refunding);
                assert_eq!(info.refund_amount, Some(100));
            }
            other => panic!("{other:?}"),
        }
        for code in ["NOT_FOUND", "SYSTEMERROR", "PARAM_ERROR"] {
            let query = classify_query(&failure(code), |f| read_red_pack_info(f, "B1"));
            assert!(matches!(query, V2Query::Unknown { code: c, .. } if c == code), "{code}");
        }
        let no_status = answer(&[("return_code", "SUCCESS"), ("result_code", "SUCCESS")]);
        assert!(matches!(classify_query(&no_status, |f| read_transfer_info(f, "T1")), V2Query::Unknown { .. }));
        assert_eq!(TransferStatus::parse("PROCESSING"), TransferStatus::Processing);
        assert_eq!(TransferStatus::parse("NEW"), TransferStatus::Unknown("NEW".into()));
        assert_eq!(RedPackStatus::parse("REFUND"), RedPackStatus::Refunded);
    }

    fn sample_red_pack() -> SendRedPack {
        SendRedPack {
            mch_billno: "10000098201411111234567890".into(),
            wxappid: "wx8888888888888888".into(),
            send_name: "邻里".into(),
            re_openid: "oxTWIuGaIt6gTKsQRLau2M0yL16E".into(),
            total_amount: 100,
            wishing: "恭喜发财]]>".into(),
            client_ip: "192.168.0.1".into(),
            act_name: "新春".into(),
            remark: "备注".into(),
            scene_id: None,
            risk_info: None,
            consume_mch_id: None,
        }
    }

    #[test]
    fn red_pack_request_fields_and_validation() {
        let request = sample_red_pack();
        request.validate().unwrap();
        let fields = request.fields("10000098");
        assert_eq!(fields["total_num"], "1");
        assert_eq!(fields["mch_id"], "10000098");
        assert!(!fields.contains_key("scene_id") && !fields.contains_key("sign_type"));
        let xml = to_xml(fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(parse_xml(xml.as_bytes()).unwrap(), fields);

        let mut bad = request.clone();
        bad.mch_billno = "has-dash".into();
        assert!(bad.validate().is_err());
        let mut bad = request.clone();
        bad.mch_billno = "1".repeat(29);
        assert!(bad.validate().is_err());
        let mut bad = request;
        bad.send_name = "长".repeat(33);
        assert!(bad.validate().is_err());
    }

    #[test]
    fn transfer_request_fields() {
        let request = Transfer {
            partner_trade_no: "T1".into(),
            mch_appid: "wxapp".into(),
            openid: "o".into(),
            check_name: CheckName::ForceCheck { re_user_name: "张三".into() },
            amount: 30,
            desc: "奖励".into(),
            spbill_create_ip: "10.0.0.1".into(),
            device_info: None,
        };
        request.validate().unwrap();
        let fields = request.fields("1900000001");
        assert_eq!(fields["mchid"], "1900000001");
        assert!(!fields.contains_key("mch_id"));
        assert_eq!(fields["check_name"], "FORCE_CHECK");
        assert_eq!(fields["re_user_name"], "张三");
    }

    fn client(require_signed_answers: bool) -> V2Client {
        V2Client::new(client_config(require_signed_answers)).unwrap()
    }

    fn client_config(require_signed_answers: bool) -> V2Config {
        V2Config {
            base_url: "http://127.0.0.1:9".into(),
            mch_id: "10000098".into(),
            api_key: Secret::new("k".repeat(32)),
            client_identity_pem: None,
            root_ca_pem: None,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            require_signed_answers,
        }
    }

    #[test]
    fn answers_are_verified_before_use() {
        let key = Secret::new("k".repeat(32));
        let mut fields = map(&[("return_code", "SUCCESS"), ("result_code", "SUCCESS"), ("mch_billno", "B1")]);
        let unsigned = to_xml(fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert!(client(false).check_answer(unsigned.as_bytes()).is_ok());
        assert_eq!(client(true).check_answer(unsigned.as_bytes()).unwrap_err().0, CODE_BAD_SIGNATURE);

        fields.insert("sign".into(), sign(&fields, &key, SignType::Md5));
        let signed = to_xml(fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert!(client(true).check_answer(signed.as_bytes()).is_ok());
        let forged = signed.replace("B1", "B2");
        assert_eq!(client(false).check_answer(forged.as_bytes()).unwrap_err().0, CODE_BAD_SIGNATURE);
        assert_eq!(client(false).check_answer(b"<html>").unwrap_err().0, CODE_BAD_ANSWER);
    }

    #[test]
    fn extra_roots_must_hold_a_certificate() {
        assert_eq!(extra_roots(wechat_mock::pay::tls::CA_CERT_PEM).unwrap().len(), 1);
        assert!(extra_roots("").is_err());
        let key_only = wechat_mock::pay::tls::SERVER_KEY_PEM;
        assert!(extra_roots(key_only).is_err());
        let mut config = client_config(false);
        config.root_ca_pem = Some("not PEM".into());
        assert!(matches!(V2Client::new(config), Err(V2Error::RootCa(_))));
    }

    #[test]
    fn client_debug_hides_the_key() {
        let shown = format!("{:?}", client(false));
        assert!(!shown.contains("kkkk"), "{shown}");
    }

    #[tokio::test]
    async fn unreachable_server_is_unknown_not_failed() {
        let outcome = client(false).send_red_pack(&sample_red_pack()).await.unwrap();
        assert!(matches!(outcome, V2Outcome::Unknown { .. }), "{outcome:?}");
        let mut invalid = sample_red_pack();
        invalid.total_amount = 0;
        assert!(client(false).send_red_pack(&invalid).await.is_err());
    }

    proptest! {
        #[test]
        fn sign_verify_round_trip(
            fields in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,10}", "\\PC{0,16}", 0..10),
            key in "[a-zA-Z0-9]{32}",
            hmac in any::<bool>(),
        ) {
            let key = Secret::new(key);
            let sign_type = if hmac { SignType::HmacSha256 } else { SignType::Md5 };
            let mut fields = fields;
            fields.remove("sign");
            fields.remove("sign_type");
            let signature = sign(&fields, &key, sign_type);
            prop_assert_eq!(signature.len(), if hmac { 64 } else { 32 });
            let mut signed = fields.clone();
            signed.insert("sign".into(), signature);
            prop_assert_eq!(verify(&signed, &key, sign_type), Ok(()));
            let other_key = Secret::new(format!("{}x", key.expose()));
            prop_assert_eq!(verify(&signed, &other_key, sign_type), Err(SignatureError::Mismatch));
        }
    }
}
