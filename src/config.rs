//! Settings: read once from the environment (and `.env` in development) at start-up.
//!
//! Every setting is named in `.env.example`. Secrets are wrapped in [`Secret`], whose `Debug` and
//! `Display` are redacted, so a settings dump in a log never shows them.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};

pub use crate::wechat::pay::v3::VerifyWith;

pub use crate::secret::Secret;

/// Everything linli needs to start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `LINLI_LISTEN`: where the HTTP server binds (port 0 picks a free port).
    pub listen: String,
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…`.
    pub database_url: Secret,
    /// `LINLI_DB_MAX_CONNECTIONS`: PostgreSQL pool size, or the SQLite read pool size.
    pub db_max_connections: u32,
    /// `LINLI_DB_ACQUIRE_TIMEOUT_MS`: how long a request waits for a database connection.
    pub db_acquire_timeout: Duration,
    /// `LINLI_MAX_BODY_BYTES`: request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// `LINLI_HEADER_READ_TIMEOUT_MS`: how long a client has to send a request's headers, counted
    /// from the connection's start or the end of its last answer (so it also closes idle
    /// keep-alive connections); past it the connection is closed. `None` (0): no limit.
    pub header_read_timeout: Option<Duration>,
    /// `LINLI_BODY_READ_TIMEOUT_MS`: how long a client has to send a request's body, counted from
    /// the end of its headers; past it the answer is 408. `None` (0): no limit.
    pub body_read_timeout: Option<Duration>,
    /// `LINLI_IMPORT_MAX_ROWS`: the most rows one bulk import may carry.
    pub import_max_rows: usize,
    /// `LINLI_SHUTDOWN_GRACE_SECS`: how long in-flight requests may run after SIGTERM.
    pub shutdown_grace: Duration,
    /// `LINLI_MP_SESSION_TTL_SECS`: how long a mini-program bearer token lasts.
    pub mp_session_ttl_secs: i64,
    /// `LINLI_MP_REFRESH_TTL_SECS`: how long its refresh token lasts.
    pub mp_refresh_ttl_secs: i64,
    /// `LINLI_ROOM_BINDING_CAP`: the most open bindings (pending or verified) one room may have.
    pub room_binding_cap: i64,
    /// `LINLI_EXPIRY_INTERVAL_SECS`: how often unused coupons past their validity are expired.
    pub expiry_interval: Duration,
    /// `LINLI_MESSAGE_INTERVAL_MS`: how often queued mini-program subscribe messages are sent.
    pub message_interval: Duration,
    /// `LINLI_RATE_*`: abuse limits (see [`RateLimits`]).
    pub rate_limits: RateLimits,
    /// `LINLI_INSTANCE_HEARTBEAT_MS`: on PostgreSQL, how often an instance says it is live; the
    /// in-memory rate limits are divided among the instances heard from in the last three beats.
    pub instance_heartbeat: Duration,
    pub wechat: WechatSettings,
    pub pay: PaySettings,
    /// `LINLI_SECRET_KEY`: the master keys the secrets of app and merchant records are sealed
    /// under (see `crate::sealing`); unset, no record with secrets can be saved or opened.
    pub sealing_keys: Option<crate::sealing::SealingKeys>,
    /// The sandbox's wechat-mock URL when `linli serve` runs against it (see `crate::sandbox`);
    /// never read from the environment.
    pub sandbox_mock_url: Option<String>,
    /// The sandbox's second company, whose WeChat apps and merchant are records; never read
    /// from the environment.
    pub sandbox_second_company_id: Option<i64>,
}

/// One rate: `per_sec` requests a second on average, `burst` at once. `per_sec == 0` is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_sec: u32,
    pub burst: u32,
}

/// Abuse limits, each a rate per second and a burst; a rate of 0 turns one off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// `LINLI_RATE_RESIDENT_PER_SEC`, `LINLI_RATE_RESIDENT_BURST`: per resident session on `/mp/v1`.
    pub per_resident: Rate,
    /// `LINLI_RATE_KEY_PER_SEC`, `LINLI_RATE_KEY_BURST`: per API key on `/admin/v1` and `/merchant/v1`.
    pub per_key: Rate,
    /// `LINLI_RATE_LOGIN_PER_IP_PER_SEC`, `LINLI_RATE_LOGIN_PER_IP_BURST`: per client IP on
    /// `POST /mp/v1/sessions`.
    pub login_per_ip: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_resident: Rate { per_sec: 20, burst: 200 },
            per_key: Rate { per_sec: 50, burst: 500 },
            login_per_ip: Rate { per_sec: 20, burst: 200 },
        }
    }
}

/// The official account (OA) and mini-program (MP) credentials.
#[derive(Clone, Debug, Default)]
pub struct WechatSettings {
    pub api_base: String,
    pub oa_appid: Option<String>,
    pub oa_secret: Option<Secret>,
    pub oa_token: Option<Secret>,
    pub oa_aes_key: Option<Secret>,
    /// `WECHAT_OA_MESSAGE_MODE`: the message mode chosen in WeChat's console, when set; unset,
    /// [`WechatSettings::oa_message_mode`] derives it from whether there is an AES key.
    pub oa_message_mode: Option<OaMessageMode>,
    pub mp_appid: Option<String>,
    pub mp_secret: Option<Secret>,
    /// `LINLI_OA_COMPANY_ID`: the property company (org id) the official account belongs to;
    /// its points programme is the one follows and check-ins earn in.
    pub oa_company_id: Option<i64>,
    /// `LINLI_OA_TIMESTAMP_WINDOW_SECS`: pushes whose timestamp is further than this from now
    /// are refused as stale or replayed.
    pub oa_timestamp_window_secs: u64,
    /// `WECHAT_MP_TASK_TEMPLATE_ID`: the subscribe-message template residents are told of task
    /// rewards with (fields thing1 = task, phrase2 = state, thing3 = reward); unset: not told.
    pub mp_task_template_id: Option<String>,
}

/// How the official account's pushes are protected (WeChat's 消息加解密方式), and so what linli
/// accepts. The URL `signature` covers only the token, timestamp and nonce, never the body: a
/// plaintext push is authenticated by nothing anyone who saw one callback URL cannot reuse, so
/// only `Safe` trusts nothing but `msg_signature`, which covers the ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OaMessageMode {
    /// `plain` (明文模式): plaintext pushes, checked by the URL signature.
    Plain,
    /// `compat` (兼容模式), for the switch between the two: encrypted pushes as in safe mode (the
    /// decrypted part is used, the plaintext copy beside it ignored), and plaintext pushes as in
    /// plain mode.
    Compat,
    /// `safe` (安全模式): encrypted pushes only; a push without `encrypt_type=aes` is refused.
    Safe,
}

impl OaMessageMode {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            OaMessageMode::Plain => "plain",
            OaMessageMode::Compat => "compat",
            OaMessageMode::Safe => "safe",
        }
    }

    /// Whether a push that is not encrypted may be taken.
    pub fn takes_plaintext(self) -> bool {
        !matches!(self, OaMessageMode::Safe)
    }
}

impl WechatSettings {
    /// The official account's message mode: the one set, or `safe` when an AES key is configured
    /// and `plain` when none is.
    pub fn oa_message_mode(&self) -> OaMessageMode {
        self.oa_message_mode.unwrap_or(if self.oa_aes_key.is_some() {
            OaMessageMode::Safe
        } else {
            OaMessageMode::Plain
        })
    }

    /// What is missing or weak in the official account's callback settings, one sentence each,
    /// for start-up warnings (empty when the account is not configured at all, or is complete).
    pub fn oa_config_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.oa_appid.is_none() && self.oa_token.is_none() {
            return out;
        }
        if self.oa_appid.is_none() || self.oa_token.is_none() {
            out.push(
                "the official-account configuration is incomplete: WECHAT_OA_APPID and WECHAT_OA_TOKEN are both \
                 needed; every push is refused"
                    .to_owned(),
            );
            return out;
        }
        let mode = self.oa_message_mode();
        let key_usable = match (&self.oa_aes_key, &self.oa_appid) {
            (Some(key), Some(appid)) => crate::wechat::oa::crypto::MsgCrypt::new(key.expose(), appid).is_ok(),
            _ => false,
        };
        match (&self.oa_aes_key, key_usable) {
            (None, _) => out.push(format!(
                "the official-account configuration is incomplete: WECHAT_OA_AES_KEY is not set, so encrypted \
                 (safe or compatible mode) pushes are refused with 400{}",
                if mode == OaMessageMode::Safe {
                    ", and WECHAT_OA_MESSAGE_MODE=safe refuses every other push"
                } else {
                    ""
                }
            )),
            (Some(_), false) => out.push(
                "the official-account configuration is incomplete: WECHAT_OA_AES_KEY is not a 43-character \
                 EncodingAESKey, so encrypted pushes are refused with 400"
                    .to_owned(),
            ),
            (Some(_), true) => {}
        }
        if mode.takes_plaintext() {
            out.push(format!(
                "WECHAT_OA_MESSAGE_MODE={}: plaintext pushes are taken on the URL signature alone, which does not \
                 cover the body; set WeChat's console and WECHAT_OA_MESSAGE_MODE to safe when you can",
                mode.as_str()
            ));
        }
        out
    }
}

/// WeChat Pay merchant settings (v2 and v3).
#[derive(Clone, Debug, Default)]
pub struct PaySettings {
    pub api_base: String,
    pub mch_id: Option<String>,
    pub api_key_v2: Option<Secret>,
    pub api_v3_key: Option<Secret>,
    pub cert_serial: Option<String>,
    pub private_key_path: Option<String>,
    pub client_cert_path: Option<String>,
    /// `WECHATPAY_ROOT_CA_PATH`: an extra trust anchor (PEM) for the WeChat Pay API's server
    /// certificate, for a sandbox or an HTTPS wechat-mock; WeChat itself needs none.
    pub root_ca_path: Option<String>,
    pub public_key_id: Option<String>,
    pub public_key_path: Option<String>,
    /// `WECHATPAY_VERIFY_WITH`: the keys WeChat Pay is expected to sign with — `public_key`,
    /// `platform_certificates` or `both` (migration); unset: `both` when a public key is
    /// configured, `platform_certificates` otherwise.
    pub verify_with: Option<VerifyWith>,
    /// `WECHATPAY_PLATFORM_CERT_REFRESH_SECS`: time between scheduled fetches of the platform
    /// certificates (sooner when the newest is about to expire); unset: 12 hours.
    pub platform_cert_refresh_secs: Option<i64>,
    pub notify_url: Option<String>,
    pub payouts: PayoutSettings,
}

/// How payouts are dispatched, and the wallet's withdrawal limits.
#[derive(Clone, Debug)]
pub struct PayoutSettings {
    /// `LINLI_PAY_TRANSFER_API`: `v3` (transfer-bills, the resident confirms in the mini-program)
    /// or `v2` (the legacy enterprise payment, for merchants that still have it).
    pub transfer_api: String,
    /// `LINLI_PAY_TRANSFER_SCENE_ID`: the transfer scene the merchant registered (1000: 现金营销).
    pub transfer_scene_id: String,
    /// `LINLI_PAY_CLIENT_IP`: the server IP v2 calls report (`client_ip`, `spbill_create_ip`).
    pub client_ip: String,
    /// `LINLI_PAY_RATE_PER_SEC`: the most calls per second to WeChat Pay, per merchant.
    pub rate_per_sec: u32,
    /// `LINLI_PAY_TIMEOUT_MS`: how long one call to WeChat Pay may take.
    pub timeout: Duration,
    /// `LINLI_PAYOUT_TICK_MS`: how often the dispatcher looks for due payouts when idle.
    pub tick: Duration,
    /// `LINLI_PAYOUT_BATCH`: payouts leased at a time.
    pub batch: i64,
    /// `LINLI_PAYOUT_CONCURRENCY`: payouts in flight at once per instance.
    pub concurrency: usize,
    /// `LINLI_PAYOUT_LEASE_SECS`: how long a claimed payout is held; longer than a call can take.
    pub lease_secs: i64,
    /// `LINLI_PAYOUT_BACKOFF_MS`: the first retry delay; it doubles up to an hour.
    pub backoff_ms: i64,
    /// `LINLI_PAYOUT_POLL_SECS`: how often a payout WeChat is still processing (or a transfer
    /// waiting for the resident) is queried, in case its notification is lost.
    pub poll_secs: i64,
    /// `LINLI_RED_PACKET_RECEIPT_CHECK_SECS`: when a sent red packet is checked for receipt
    /// (WeChat refunds unopened ones after 24 h; the amount then goes to the wallet).
    pub receipt_check_secs: i64,
    /// `LINLI_PAYOUT_MAX_CALLS`: calls with one merchant number before a payout that keeps being
    /// refused for a passing reason (merchant balance, frequency) fails for good.
    pub max_calls: i64,
    /// `LINLI_PAYOUT_MAX_NUMBERS`: merchant numbers one payout may use (a new one only after a
    /// query said the last failed) before it fails for good.
    pub max_numbers: i64,
    /// `LINLI_WITHDRAW_MIN_FEN`, `LINLI_WITHDRAW_MAX_FEN`, `LINLI_WITHDRAW_DAILY_MAX_FEN`.
    pub withdraw_min_fen: i64,
    pub withdraw_max_fen: i64,
    pub withdraw_daily_max_fen: i64,
}

impl Default for PayoutSettings {
    fn default() -> Self {
        Self {
            transfer_api: "v3".to_owned(),
            transfer_scene_id: "1000".to_owned(),
            client_ip: "127.0.0.1".to_owned(),
            rate_per_sec: 25,
            timeout: Duration::from_secs(10),
            tick: Duration::from_millis(500),
            batch: 32,
            concurrency: 8,
            lease_secs: 60,
            backoff_ms: 2000,
            poll_secs: 300,
            receipt_check_secs: 25 * 3600,
            max_calls: 10,
            max_numbers: 3,
            withdraw_min_fen: 100,
            withdraw_max_fen: 20_000,
            withdraw_daily_max_fen: 50_000,
        }
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://linli.db";
pub const DEFAULT_WECHAT_API_BASE: &str = "https://api.weixin.qq.com";
pub const DEFAULT_WECHATPAY_API_BASE: &str = "https://api.mch.weixin.qq.com";

impl Settings {
    /// Settings with every default and the given database: what tests start from.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            database_url: Secret::new(database_url),
            db_max_connections: 10,
            db_acquire_timeout: Duration::from_secs(5),
            max_body_bytes: 2 * 1024 * 1024,
            header_read_timeout: Some(Duration::from_secs(30)),
            body_read_timeout: Some(Duration::from_secs(30)),
            import_max_rows: 10_000,
            shutdown_grace: Duration::from_secs(10),
            mp_session_ttl_secs: 2 * 3600,
            mp_refresh_ttl_secs: 30 * 86_400,
            room_binding_cap: 10,
            expiry_interval: Duration::from_secs(60),
            message_interval: Duration::from_millis(1000),
            rate_limits: RateLimits::default(),
            instance_heartbeat: Duration::from_secs(5),
            wechat: WechatSettings {
                api_base: DEFAULT_WECHAT_API_BASE.to_owned(),
                oa_timestamp_window_secs: 300,
                ..Default::default()
            },
            pay: PaySettings { api_base: DEFAULT_WECHATPAY_API_BASE.to_owned(), ..Default::default() },
            sealing_keys: None,
            sandbox_mock_url: None,
            sandbox_second_company_id: None,
        }
    }

    /// Reads the process environment. Call `dotenvy::dotenv()` before this to honour `.env`.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let secret = |name: &str| get(name).map(Secret::new);
        let number = |name: &str, default: u64| -> anyhow::Result<u64> {
            match get(name) {
                None => Ok(default),
                Some(v) => {
                    v.parse::<u64>().with_context(|| format!("{name} must be a non-negative integer, got {v:?}"))
                }
            }
        };

        let mut s = Self::with_database(get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()));
        s.listen = get("LINLI_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        if s.listen.parse::<SocketAddr>().is_err() {
            bail!("LINLI_LISTEN must be host:port with a numeric host, got {:?}", s.listen);
        }
        s.db_max_connections = number("LINLI_DB_MAX_CONNECTIONS", 10)?.clamp(1, 1000) as u32;
        s.db_acquire_timeout = Duration::from_millis(number("LINLI_DB_ACQUIRE_TIMEOUT_MS", 5000)?);
        s.max_body_bytes = number("LINLI_MAX_BODY_BYTES", 2 * 1024 * 1024)? as usize;
        let timeout = |name: &str, default_ms: u64| -> anyhow::Result<Option<Duration>> {
            Ok(match number(name, default_ms)? {
                0 => None,
                ms => Some(Duration::from_millis(ms.clamp(100, 3_600_000))),
            })
        };
        s.header_read_timeout = timeout("LINLI_HEADER_READ_TIMEOUT_MS", 30_000)?;
        s.body_read_timeout = timeout("LINLI_BODY_READ_TIMEOUT_MS", 30_000)?;
        s.import_max_rows = number("LINLI_IMPORT_MAX_ROWS", 10_000)? as usize;
        s.shutdown_grace = Duration::from_secs(number("LINLI_SHUTDOWN_GRACE_SECS", 10)?);
        // A lifetime out of range is refused, not quietly raised or cut: whoever set it meant it.
        let within = |name: &str, default: u64, min: u64, max: u64| -> anyhow::Result<u64> {
            let v = number(name, default)?;
            if !(min..=max).contains(&v) {
                bail!("{name} must be {min}..={max} seconds, got {v}");
            }
            Ok(v)
        };
        s.mp_session_ttl_secs = within("LINLI_MP_SESSION_TTL_SECS", 2 * 3600, 60, 30 * 86_400)? as i64;
        s.mp_refresh_ttl_secs = within("LINLI_MP_REFRESH_TTL_SECS", 30 * 86_400, 60, 365 * 86_400)? as i64;
        s.room_binding_cap = number("LINLI_ROOM_BINDING_CAP", 10)?.clamp(1, 1000) as i64;
        s.expiry_interval = Duration::from_secs(number("LINLI_EXPIRY_INTERVAL_SECS", 60)?.clamp(1, 86_400));
        s.message_interval = Duration::from_millis(number("LINLI_MESSAGE_INTERVAL_MS", 1000)?.clamp(10, 3_600_000));
        let rate = |prefix: &str, default: Rate| -> anyhow::Result<Rate> {
            Ok(Rate {
                per_sec: number(&format!("{prefix}_PER_SEC"), u64::from(default.per_sec))?.min(1_000_000) as u32,
                burst: number(&format!("{prefix}_BURST"), u64::from(default.burst))?.clamp(1, 1_000_000) as u32,
            })
        };
        let defaults = RateLimits::default();
        s.rate_limits = RateLimits {
            per_resident: rate("LINLI_RATE_RESIDENT", defaults.per_resident)?,
            per_key: rate("LINLI_RATE_KEY", defaults.per_key)?,
            login_per_ip: rate("LINLI_RATE_LOGIN_PER_IP", defaults.login_per_ip)?,
        };
        s.instance_heartbeat = Duration::from_millis(number("LINLI_INSTANCE_HEARTBEAT_MS", 5000)?.clamp(50, 60_000));

        s.sealing_keys = match lookup(crate::sealing::SECRET_KEY_ENV) {
            Some(v) if !v.trim().is_empty() => Some(crate::sealing::SealingKeys::parse(&v)?),
            _ => None,
        };
        s.wechat = WechatSettings {
            api_base: get("WECHAT_API_BASE").unwrap_or_else(|| DEFAULT_WECHAT_API_BASE.to_owned()),
            oa_appid: get("WECHAT_OA_APPID"),
            oa_secret: secret("WECHAT_OA_SECRET"),
            oa_token: secret("WECHAT_OA_TOKEN"),
            oa_aes_key: secret("WECHAT_OA_AES_KEY"),
            oa_message_mode: match get("WECHAT_OA_MESSAGE_MODE").map(|v| v.to_ascii_lowercase()).as_deref() {
                None => None,
                Some("safe") => Some(OaMessageMode::Safe),
                Some("compat") => Some(OaMessageMode::Compat),
                Some("plain") => Some(OaMessageMode::Plain),
                Some(other) => bail!("WECHAT_OA_MESSAGE_MODE must be safe, compat or plain, got {other:?}"),
            },
            mp_appid: get("WECHAT_MP_APPID"),
            mp_secret: secret("WECHAT_MP_SECRET"),
            oa_company_id: match get("LINLI_OA_COMPANY_ID") {
                None => None,
                Some(v) => Some(
                    v.parse::<i64>().with_context(|| format!("LINLI_OA_COMPANY_ID must be an org id, got {v:?}"))?,
                ),
            },
            oa_timestamp_window_secs: number("LINLI_OA_TIMESTAMP_WINDOW_SECS", 300)?,
            mp_task_template_id: get("WECHAT_MP_TASK_TEMPLATE_ID"),
        };
        s.pay = PaySettings {
            api_base: get("WECHATPAY_API_BASE").unwrap_or_else(|| DEFAULT_WECHATPAY_API_BASE.to_owned()),
            mch_id: get("WECHATPAY_MCH_ID"),
            api_key_v2: secret("WECHATPAY_API_KEY_V2"),
            api_v3_key: secret("WECHATPAY_API_V3_KEY"),
            cert_serial: get("WECHATPAY_CERT_SERIAL"),
            private_key_path: get("WECHATPAY_PRIVATE_KEY_PATH"),
            client_cert_path: get("WECHATPAY_CLIENT_CERT_PATH"),
            root_ca_path: get("WECHATPAY_ROOT_CA_PATH"),
            public_key_id: get("WECHATPAY_PUBLIC_KEY_ID"),
            public_key_path: get("WECHATPAY_PUBLIC_KEY_PATH"),
            verify_with: match get("WECHATPAY_VERIFY_WITH") {
                None => None,
                Some(v) => Some(VerifyWith::parse(&v).with_context(|| {
                    format!("WECHATPAY_VERIFY_WITH must be public_key, platform_certificates or both, got {v:?}")
                })?),
            },
            platform_cert_refresh_secs: match get("WECHATPAY_PLATFORM_CERT_REFRESH_SECS") {
                None => None,
                Some(_) => Some(number("WECHATPAY_PLATFORM_CERT_REFRESH_SECS", 0)?.clamp(300, 7 * 86_400) as i64),
            },
            notify_url: get("WECHATPAY_NOTIFY_URL"),
            payouts: PayoutSettings {
                transfer_api: match get("LINLI_PAY_TRANSFER_API").as_deref() {
                    None | Some("v3") => "v3".to_owned(),
                    Some("v2") => "v2".to_owned(),
                    Some(other) => bail!("LINLI_PAY_TRANSFER_API must be v3 or v2, got {other:?}"),
                },
                transfer_scene_id: get("LINLI_PAY_TRANSFER_SCENE_ID").unwrap_or_else(|| "1000".to_owned()),
                client_ip: get("LINLI_PAY_CLIENT_IP").unwrap_or_else(|| "127.0.0.1".to_owned()),
                rate_per_sec: number("LINLI_PAY_RATE_PER_SEC", 25)?.clamp(1, 10_000) as u32,
                timeout: Duration::from_millis(number("LINLI_PAY_TIMEOUT_MS", 10_000)?.clamp(100, 120_000)),
                tick: Duration::from_millis(number("LINLI_PAYOUT_TICK_MS", 500)?.clamp(10, 60_000)),
                batch: number("LINLI_PAYOUT_BATCH", 32)?.clamp(1, 1000) as i64,
                concurrency: number("LINLI_PAYOUT_CONCURRENCY", 8)?.clamp(1, 256) as usize,
                lease_secs: number("LINLI_PAYOUT_LEASE_SECS", 60)?.clamp(1, 3600) as i64,
                backoff_ms: number("LINLI_PAYOUT_BACKOFF_MS", 2000)?.clamp(1, 3_600_000) as i64,
                poll_secs: number("LINLI_PAYOUT_POLL_SECS", 300)?.clamp(1, 86_400) as i64,
                receipt_check_secs: number("LINLI_RED_PACKET_RECEIPT_CHECK_SECS", 25 * 3600)?.clamp(1, 30 * 86_400)
                    as i64,
                max_calls: number("LINLI_PAYOUT_MAX_CALLS", 10)?.clamp(1, 1000) as i64,
                max_numbers: number("LINLI_PAYOUT_MAX_NUMBERS", 3)?.clamp(1, 100) as i64,
                withdraw_min_fen: number("LINLI_WITHDRAW_MIN_FEN", 100)?.max(10) as i64,
                withdraw_max_fen: number("LINLI_WITHDRAW_MAX_FEN", 20_000)?.clamp(10, 10_000_000) as i64,
                withdraw_daily_max_fen: number("LINLI_WITHDRAW_DAILY_MAX_FEN", 50_000)?.clamp(10, 100_000_000) as i64,
            },
        };
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = from(&[]).unwrap();
        assert_eq!(s.listen, DEFAULT_LISTEN);
        assert_eq!(s.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(s.wechat.api_base, DEFAULT_WECHAT_API_BASE);
        assert!(s.wechat.oa_secret.is_none());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = from(&[
            ("WECHAT_OA_SECRET", "oa-secret-value"),
            ("WECHATPAY_API_V3_KEY", "v3-key-value"),
            ("DATABASE_URL", "postgres://u:db-password@h/db"),
        ])
        .unwrap();
        let dump = format!("{s:?}");
        assert!(!dump.contains("oa-secret-value"), "{dump}");
        assert!(!dump.contains("v3-key-value"), "{dump}");
        assert!(!dump.contains("db-password"), "{dump}");
        assert_eq!(s.wechat.oa_secret.unwrap().expose(), "oa-secret-value");
    }

    #[test]
    fn wechatpay_root_ca_is_read_only_when_set() {
        assert!(from(&[]).unwrap().pay.root_ca_path.is_none());
        let s = from(&[("WECHATPAY_ROOT_CA_PATH", "/etc/linli/mock-ca.pem")]).unwrap();
        assert_eq!(s.pay.root_ca_path.as_deref(), Some("/etc/linli/mock-ca.pem"));
    }

    #[test]
    fn wechatpay_verifier_settings() {
        let s = from(&[]).unwrap();
        assert_eq!((s.pay.verify_with, s.pay.platform_cert_refresh_secs), (None, None));
        let s = from(&[
            ("WECHATPAY_VERIFY_WITH", "platform_certificates"),
            ("WECHATPAY_PLATFORM_CERT_REFRESH_SECS", "3600"),
        ])
        .unwrap();
        assert_eq!(s.pay.verify_with, Some(VerifyWith::PlatformCertificates));
        assert_eq!(s.pay.platform_cert_refresh_secs, Some(3600));
        assert_eq!(from(&[("WECHATPAY_VERIFY_WITH", "both")]).unwrap().pay.verify_with, Some(VerifyWith::Both));
        let err = from(&[("WECHATPAY_VERIFY_WITH", "certificates")]).unwrap_err();
        assert!(err.to_string().contains("WECHATPAY_VERIFY_WITH"), "{err}");
        let err = from(&[("WECHATPAY_PLATFORM_CERT_REFRESH_SECS", "soon")]).unwrap_err();
        assert!(err.to_string().contains("WECHATPAY_PLATFORM_CERT_REFRESH_SECS"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        let err = from(&[("LINLI_LISTEN", "not an address")]).unwrap_err();
        assert!(err.to_string().contains("LINLI_LISTEN"));
        let err = from(&[("LINLI_MAX_BODY_BYTES", "-1")]).unwrap_err();
        assert!(err.to_string().contains("LINLI_MAX_BODY_BYTES"));
    }

    #[test]
    fn session_lifetimes_out_of_range_are_refused_not_adjusted() {
        let s = from(&[("LINLI_MP_SESSION_TTL_SECS", "60"), ("LINLI_MP_REFRESH_TTL_SECS", "31536000")]).unwrap();
        assert_eq!((s.mp_session_ttl_secs, s.mp_refresh_ttl_secs), (60, 365 * 86_400));
        for (name, value) in [
            ("LINLI_MP_SESSION_TTL_SECS", "1"),
            ("LINLI_MP_SESSION_TTL_SECS", "0"),
            ("LINLI_MP_SESSION_TTL_SECS", "2592001"),
            ("LINLI_MP_REFRESH_TTL_SECS", "59"),
            ("LINLI_MP_REFRESH_TTL_SECS", "18446744073709551615"),
        ] {
            let err = from(&[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn the_oa_message_mode_defaults_to_safe_with_a_key_and_is_warned_about_when_weak() {
        let oa = [("WECHAT_OA_APPID", "wx_a"), ("WECHAT_OA_TOKEN", "t")];
        let key = ("WECHAT_OA_AES_KEY", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG");
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = oa.to_vec();
            pairs.extend_from_slice(extra);
            from(&pairs).unwrap().wechat
        };
        let w = with(&[key]);
        assert_eq!(w.oa_message_mode(), OaMessageMode::Safe);
        assert!(w.oa_config_warnings().is_empty(), "{:?}", w.oa_config_warnings());
        assert_eq!(with(&[]).oa_message_mode(), OaMessageMode::Plain);
        assert!(with(&[]).oa_config_warnings().iter().any(|m| m.contains("incomplete") && m.contains("AES_KEY")));
        let compat = with(&[key, ("WECHAT_OA_MESSAGE_MODE", "Compat")]);
        assert_eq!(compat.oa_message_mode(), OaMessageMode::Compat);
        assert!(compat.oa_config_warnings().iter().any(|m| m.contains("plaintext pushes are taken")));
        let safe_without_key = with(&[("WECHAT_OA_MESSAGE_MODE", "safe")]);
        assert!(safe_without_key.oa_config_warnings().iter().any(|m| m.contains("refuses every other push")));
        let bad_key = with(&[("WECHAT_OA_AES_KEY", "short")]);
        assert!(bad_key.oa_config_warnings().iter().any(|m| m.contains("not a 43-character")));
        assert!(from(&[]).unwrap().wechat.oa_config_warnings().is_empty());
        let err = from(&[("WECHAT_OA_MESSAGE_MODE", "aes")]).unwrap_err();
        assert!(err.to_string().contains("WECHAT_OA_MESSAGE_MODE"));
    }

    #[test]
    fn slow_client_timeouts_default_on_and_zero_turns_them_off() {
        let s = from(&[]).unwrap();
        assert_eq!(s.header_read_timeout, Some(Duration::from_secs(30)));
        assert_eq!(s.body_read_timeout, Some(Duration::from_secs(30)));
        let s = from(&[("LINLI_HEADER_READ_TIMEOUT_MS", "0"), ("LINLI_BODY_READ_TIMEOUT_MS", "1500")]).unwrap();
        assert_eq!(s.header_read_timeout, None);
        assert_eq!(s.body_read_timeout, Some(Duration::from_millis(1500)));
        let err = from(&[("LINLI_BODY_READ_TIMEOUT_MS", "soon")]).unwrap_err();
        assert!(err.to_string().contains("LINLI_BODY_READ_TIMEOUT_MS"));
    }
}
