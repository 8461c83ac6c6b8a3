//! The fake WeChat's memory: registered apps, the clock, per-area stores (tokens, users) and call
//! counters, shared behind one lock by the HTTP handlers and the library handle. API areas add their
//! own `impl MockWechat` blocks in their modules; this module holds what they all share.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::clock::MockClock;
use crate::config::{AppKind, MockApp, MockConfig, TokenRules};
use crate::faults::FaultStore;
use crate::messages::MessageStore;
use crate::mini_program::CodeStore;
use crate::pay::merchants::PayMerchants;
use crate::token::{AppTokenStats, TokenStore};
use crate::users::UserStore;
use crate::wx_error::WxError;

/// A handle on the fake WeChat; cheap to clone, all clones see the same state.
#[derive(Clone)]
pub struct MockWechat {
    inner: Arc<Mutex<MockState>>,
}

/// Everything the mock remembers. Only reachable through [`MockWechat::lock`].
pub(crate) struct MockState {
    pub(crate) apps: BTreeMap<String, MockApp>,
    pub(crate) token_rules: TokenRules,
    pub(crate) clock: MockClock,
    pub(crate) tokens: TokenStore,
    /// Requests per API path, failed ones included.
    pub(crate) calls: BTreeMap<String, u64>,
    /// Simulated users and their follow state.
    pub(crate) users: UserStore,
    /// Whether the apps share an Open Platform account (unionids are visible).
    pub(crate) open_platform_bound: bool,
    /// Mini-program login and phone codes, session keys, per-user login rates.
    pub(crate) codes: CodeStore,
    /// Injected faults waiting to happen.
    pub(crate) faults: FaultStore,
    /// WeChat Pay: every merchant with its balance, ledger, notifications.
    pub(crate) pay: PayMerchants,
    /// QR codes, subscribe templates, acceptances and delivered subscribe messages.
    pub(crate) messages: MessageStore,
}

impl MockState {
    pub(crate) fn record_call(&mut self, path: &str) {
        *self.calls.entry(path.to_owned()).or_default() += 1;
    }

    /// Checks an AppID/AppSecret pair the way WeChat's credential APIs do.
    pub(crate) fn authenticate_app(&self, appid: &str, secret: &str) -> Result<&MockApp, WxError> {
        let app = self.apps.get(appid).ok_or(WxError::INVALID_APPID)?;
        if app.secret == secret {
            Ok(app)
        } else {
            Err(WxError::INVALID_APPSECRET)
        }
    }
}

/// What the mock has seen and issued, as served by `GET /__mock/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MockReport {
    /// The mock's current time, Unix seconds.
    pub now: i64,
    /// How far the mock clock is ahead of the wall clock, seconds (negative if it started in the past).
    pub clock_offset_secs: i64,
    /// Requests per API path (e.g. `/cgi-bin/token`), failed ones included.
    pub calls: BTreeMap<String, u64>,
    /// One entry per registered app.
    pub apps: Vec<AppReport>,
}

/// Per-app part of [`MockReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppReport {
    /// The AppID.
    pub appid: String,
    /// Official account or mini-program.
    pub kind: AppKind,
    /// Access-token counters of this app.
    #[serde(flatten)]
    pub tokens: AppTokenStats,
}

impl MockWechat {
    /// A fresh mock knowing the apps and merchants of `config`.
    ///
    /// # Panics
    ///
    /// If two merchants of `config` (`pay` and `merchants`) have the same `mch_id`.
    pub fn new(config: MockConfig) -> Self {
        let users = UserStore::new(&config.apps);
        let messages = MessageStore::new(users.primary_mini_program());
        let apps = config.apps.into_iter().map(|app| (app.appid.clone(), app)).collect();
        Self {
            inner: Arc::new(Mutex::new(MockState {
                apps,
                token_rules: config.token_rules,
                clock: config
                    .clock_start_unix
                    .map_or_else(MockClock::default, |start| MockClock::starting_at(start.saturating_mul(1000))),
                tokens: TokenStore::default(),
                calls: BTreeMap::new(),
                users,
                open_platform_bound: config.open_platform_bound,
                codes: CodeStore::default(),
                faults: FaultStore::default(),
                pay: PayMerchants::new(config.pay, config.merchants),
                messages,
            })),
        }
    }

    /// Locks the state. A handler that panicked while holding the lock leaves consistent-enough
    /// counters behind, so a poisoned lock is recovered rather than propagated.
    pub(crate) fn lock(&self) -> MutexGuard<'_, MockState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The registered apps, ordered by AppID.
    pub fn apps(&self) -> Vec<MockApp> {
        self.lock().apps.values().cloned().collect()
    }

    /// The mock's current time in Unix milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        self.lock().clock.now_ms()
    }

    /// The mock's current time in Unix seconds.
    pub fn now_unix(&self) -> i64 {
        self.lock().clock.now_ms().div_euclid(1000)
    }

    /// Moves the mock's clock forward by `seconds` (negative values are ignored) and returns the new
    /// time in Unix seconds. Tokens and daily quotas expire as if that time had passed.
    pub fn advance_clock(&self, seconds: i64) -> i64 {
        let mut state = self.lock();
        state.clock.advance_secs(seconds);
        state.clock.now_ms().div_euclid(1000)
    }

    /// How many requests reached `path` (e.g. `"/cgi-bin/token"`), failed ones included.
    pub fn call_count(&self, path: &str) -> u64 {
        self.lock().calls.get(path).copied().unwrap_or(0)
    }

    /// Forgets every token, code, session key, quota, counter, injected fault and payment (every
    /// merchant's balance and signing return to their configured values), QR code, subscribe-message acceptance and
    /// delivered message, as if WeChat had just started. The apps, the users (people exist outside
    /// WeChat's caches) and the subscribe templates stay, and so does the clock: time never goes
    /// backwards.
    pub fn reset(&self) {
        let mut state = self.lock();
        state.tokens = TokenStore::default();
        state.codes = CodeStore::default();
        state.faults = FaultStore::default();
        state.pay.reset();
        state.messages.reset();
        state.calls.clear();
    }

    /// A snapshot of calls and issued tokens.
    pub fn report(&self) -> MockReport {
        let state = self.lock();
        let now_ms = state.clock.now_ms();
        MockReport {
            now: now_ms.div_euclid(1000),
            clock_offset_secs: state.clock.offset_secs(),
            calls: state.calls.clone(),
            apps: state
                .apps
                .values()
                .map(|app| AppReport {
                    appid: app.appid.clone(),
                    kind: app.kind,
                    tokens: state.tokens.app_stats(&app.appid, now_ms),
                })
                .collect(),
        }
    }
}

impl std::fmt::Debug for MockWechat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets and tokens stay out of debug output.
        let state = self.lock();
        f.debug_struct("MockWechat")
            .field("apps", &state.apps.keys().collect::<Vec<_>>())
            .field("clock_offset_secs", &state.clock.offset_secs())
            .finish_non_exhaustive()
    }
}
