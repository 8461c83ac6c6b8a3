//! What the mock is started with: the registered test apps (official account and mini-program, each with
//! its AppID and AppSecret, and the Open Platform account it is bound to), the WeChat Pay merchants
//! (a default one and any number of others, each with its own keys and balance) and the token rules,
//! with defaults equal to WeChat's published limits; and the default callback settings of the
//! official account, which the pusher uses.

use serde::Serialize;

/// AppID of the default official account (公众号).
pub const OA_APPID: &str = "wx_mock_oa_appid";
/// AppSecret of the default official account.
pub const OA_SECRET: &str = "mock_oa_secret_0123456789abcdef";
/// AppID of the default mini-program (小程序).
pub const MP_APPID: &str = "wx_mock_mp_appid";
/// AppSecret of the default mini-program.
pub const MP_SECRET: &str = "mock_mp_secret_0123456789abcdef";

/// Original id (原始ID) of the default official account: `ToUserName` of every push.
pub const OA_ORIGINAL_ID: &str = "gh_6d6f636b6f61";
/// Callback Token (令牌) of the default official account (3–32 letters and digits, as WeChat requires).
pub const OA_CALLBACK_TOKEN: &str = "LinliMockOaToken2024";
/// EncodingAESKey of the default official account: 43 characters of the base64 alphabet that decode
/// (after appending `=`) to a 32-byte AES key.
pub const OA_ENCODING_AES_KEY: &str = "LinliWechatMockEncodingAesKey0123456789abcE";

/// Environment variable `wechat-mock push` reads the callback Token from (as linli does).
pub const OA_TOKEN_ENV: &str = "WECHAT_OA_TOKEN";
/// Environment variable `wechat-mock push` reads the EncodingAESKey from (as linli does).
pub const OA_AES_KEY_ENV: &str = "WECHAT_OA_AES_KEY";
/// Environment variable `wechat-mock push` reads the OA AppID from (as linli does).
pub const OA_APPID_ENV: &str = "WECHAT_OA_APPID";

/// Environment variable the binary reads its listen address from.
pub const LISTEN_ENV: &str = "WECHAT_MOCK_LISTEN";
/// Listen address of the binary when [`LISTEN_ENV`] is not set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9090";
/// Environment variable that, set to `1`, makes the binary serve the second test merchant
/// ([`crate::pay::PayConfig::second`]) besides the default one.
pub const SECOND_MERCHANT_ENV: &str = "WECHAT_MOCK_SECOND_MERCHANT";

/// Which kind of WeChat account an app is; later APIs (jscode2session, OA user info) depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    /// An official account (公众号 / 服务号).
    OfficialAccount,
    /// A mini-program (小程序).
    MiniProgram,
}

/// One app registered with the mock: WeChat answers only for these AppIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockApp {
    /// The AppID, as passed in `appid=`.
    pub appid: String,
    /// The AppSecret, as passed in `secret=`.
    pub secret: String,
    /// Official account or mini-program.
    pub kind: AppKind,
    /// The Open Platform account (开放平台) the app is bound to, by a name of the test's choosing;
    /// `None` is the default account. A person has one unionid per account: apps bound to the same
    /// account see the same unionid for them, apps bound to different accounts different ones
    /// (see [`MockConfig::open_platform_bound`]).
    pub open_platform: Option<String>,
}

impl MockApp {
    /// An official account with the given credentials, bound to the default Open Platform account.
    pub fn official_account(appid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self { appid: appid.into(), secret: secret.into(), kind: AppKind::OfficialAccount, open_platform: None }
    }

    /// A mini-program with the given credentials, bound to the default Open Platform account.
    pub fn mini_program(appid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self { appid: appid.into(), secret: secret.into(), kind: AppKind::MiniProgram, open_platform: None }
    }

    /// The same app bound to the Open Platform account named `open_platform` instead (e.g. another
    /// company's): `MockApp::mini_program("wx_b", "secret").bound_to("platform-b")`.
    pub fn bound_to(self, open_platform: impl Into<String>) -> Self {
        Self { open_platform: Some(open_platform.into()), ..self }
    }
}

/// Lifetimes and limits of access tokens. The defaults are WeChat's documented values; tests may
/// shrink them, but most tests should keep them and move the mock clock instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRules {
    /// Lifetime of a fresh token, returned as `expires_in` (WeChat: 7200 s).
    pub ttl_secs: i64,
    /// How long a `/cgi-bin/token` token keeps working after a newer one was fetched (WeChat: 5 min).
    pub grace_secs: i64,
    /// In its last this-many seconds a stable token is renewed by a normal-mode call (WeChat: 5 min).
    pub stable_renew_before_secs: i64,
    /// A `force_refresh` within this many seconds of the previous one does not refresh (WeChat: 30 s).
    pub force_refresh_min_interval_secs: i64,
    /// Forced refreshes allowed per app per day (WeChat: 20).
    pub force_refresh_daily_limit: u32,
    /// `/cgi-bin/token` calls allowed per app per day (WeChat: 2000).
    pub token_daily_limit: u32,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self {
            ttl_secs: 7200,
            grace_secs: 300,
            stable_renew_before_secs: 300,
            force_refresh_min_interval_secs: 30,
            force_refresh_daily_limit: 20,
            token_daily_limit: 2000,
        }
    }
}

/// Everything [`crate::start`] needs besides the listen address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockConfig {
    /// The apps WeChat knows; any other AppID is answered with `40013 invalid appid`.
    pub apps: Vec<MockApp>,
    /// Token lifetimes and limits.
    pub token_rules: TokenRules,
    /// Where the mock clock starts, Unix seconds; `None` starts at the wall clock. Tests that count
    /// daily quotas set it so that Beijing midnight does not fall inside the test.
    pub clock_start_unix: Option<i64>,
    /// Whether the apps are bound to Open Platform accounts (开放平台): then `jscode2session` and
    /// `/cgi-bin/user/info` return a user's unionid, the one of the account the app is bound to
    /// ([`MockApp::open_platform`]; apps of one account share it). `false`: no app sees a unionid.
    /// Default `true`.
    pub open_platform_bound: bool,
    /// The default WeChat Pay merchant (keys, balance, limits): the one every call and control
    /// that names no merchant is about.
    pub pay: crate::pay::PayConfig,
    /// Further WeChat Pay merchants, each with its own keys, balance, ledger, notifications and
    /// bills (e.g. [`crate::pay::PayConfig::second`]); requests reach the merchant they name.
    /// Merchant ids must differ from each other and from `pay`'s. Default: none.
    pub merchants: Vec<crate::pay::PayConfig>,
}

impl Default for MockConfig {
    /// One official account ([`OA_APPID`]) and one mini-program ([`MP_APPID`]) on the default Open
    /// Platform account, WeChat's token rules, the default merchant only.
    fn default() -> Self {
        Self {
            apps: vec![MockApp::official_account(OA_APPID, OA_SECRET), MockApp::mini_program(MP_APPID, MP_SECRET)],
            token_rules: TokenRules::default(),
            clock_start_unix: None,
            open_platform_bound: true,
            pay: crate::pay::PayConfig::default(),
            merchants: Vec::new(),
        }
    }
}
