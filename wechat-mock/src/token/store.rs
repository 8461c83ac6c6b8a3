//! The access-token ledger: which tokens exist, which app and endpoint issued them, until when they
//! work, and the per-app quotas of the two token endpoints. Pure bookkeeping over explicit times; the
//! HTTP layer and the clock live elsewhere.

use std::collections::HashMap;

use rand::Rng;
use serde::Serialize;

use crate::clock::beijing_day;
use crate::config::TokenRules;
use crate::wx_error::WxError;

/// Characters WeChat access tokens are made of.
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
/// Random characters after the numeric prefix; real tokens are about 130–160 characters long.
const TOKEN_RANDOM_LEN: usize = 132;

/// A successful token answer, serialised exactly as WeChat's body `{"access_token":…,"expires_in":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenGrant {
    /// The access token.
    pub access_token: String,
    /// Seconds the token has left.
    pub expires_in: i64,
}

/// Which endpoint issued a token. The two sets are isolated: neither endpoint affects the other's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenSource {
    /// `GET /cgi-bin/token`.
    Token,
    /// `POST /cgi-bin/stable_token`.
    StableToken,
}

#[derive(Debug)]
struct IssuedToken {
    appid: String,
    source: TokenSource,
    expires_at_ms: i64,
    /// When a newer token made this one stop working before `expires_at_ms`.
    superseded_at_ms: Option<i64>,
}

enum TokenStatus {
    Live { remaining_ms: i64 },
    Superseded,
    Expired,
}

impl IssuedToken {
    fn status(&self, now_ms: i64) -> TokenStatus {
        let cut_off_early = self.superseded_at_ms.filter(|&cut| cut < self.expires_at_ms);
        match cut_off_early {
            Some(cut) if now_ms >= cut => TokenStatus::Superseded,
            _ if now_ms >= self.expires_at_ms => TokenStatus::Expired,
            cut => TokenStatus::Live { remaining_ms: cut.unwrap_or(self.expires_at_ms) - now_ms },
        }
    }

    /// Makes the token stop working at `at_ms` unless it already stops earlier.
    fn supersede_at(&mut self, at_ms: i64) {
        let at = self.superseded_at_ms.map_or(at_ms, |earlier| earlier.min(at_ms));
        self.superseded_at_ms = Some(at);
    }
}

/// A count that starts again every Beijing day.
#[derive(Debug, Default, Clone, Copy)]
struct DailyCount {
    day: i64,
    count: u32,
}

impl DailyCount {
    fn on(&self, day: i64) -> u32 {
        if self.day == day {
            self.count
        } else {
            0
        }
    }

    fn bump(&mut self, day: i64) {
        *self = Self { day, count: self.on(day).saturating_add(1) };
    }
}

#[derive(Debug, Default)]
struct AppTokens {
    latest_token: Option<String>,
    latest_stable: Option<String>,
    token_fetches: u64,
    token_fetches_daily: DailyCount,
    stable_fetches: u64,
    stable_issued: u64,
    force_refreshes_daily: DailyCount,
    last_force_refresh_ms: Option<i64>,
}

/// Token counters of one app, as reported by `GET /__mock/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppTokenStats {
    /// Successful `/cgi-bin/token` answers; each one issued a new token.
    pub token_fetches: u64,
    /// Successful `/cgi-bin/token` answers today (Beijing day), against the daily quota.
    pub token_fetches_today: u32,
    /// `/cgi-bin/token` tokens that still work now (at most two: the latest and one in its grace period).
    pub live_tokens: usize,
    /// Successful `/cgi-bin/stable_token` answers, whether or not they issued a new token.
    pub stable_token_fetches: u64,
    /// Distinct tokens issued by `/cgi-bin/stable_token`.
    pub stable_tokens_issued: u64,
    /// Forced refreshes today (Beijing day), against the limit of 20.
    pub force_refreshes_today: u32,
    /// `/cgi-bin/stable_token` tokens that still work now.
    pub live_stable_tokens: usize,
}

/// Every token the mock ever issued, and the per-app state of both token endpoints.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    tokens: HashMap<String, IssuedToken>,
    apps: HashMap<String, AppTokens>,
}

impl TokenStore {
    /// `/cgi-bin/token`: always a new token; the previous one keeps working for the grace period.
    /// The caller has checked the credentials.
    pub(crate) fn fetch_token(&mut self, appid: &str, now_ms: i64, rules: &TokenRules) -> Result<TokenGrant, WxError> {
        let day = beijing_day(now_ms);
        let app = self.apps.entry(appid.to_owned()).or_default();
        if app.token_fetches_daily.on(day) >= rules.token_daily_limit {
            return Err(WxError::DAILY_QUOTA_REACHED);
        }
        if let Some(previous) = app.latest_token.take() {
            if let Some(token) = self.tokens.get_mut(&previous) {
                token.supersede_at(now_ms.saturating_add(rules.grace_secs.saturating_mul(1000)));
            }
        }
        let access_token = mint(&mut self.tokens, appid, TokenSource::Token, now_ms, rules.ttl_secs);
        app.latest_token = Some(access_token.clone());
        app.token_fetches += 1;
        app.token_fetches_daily.bump(day);
        Ok(TokenGrant { access_token, expires_in: rules.ttl_secs })
    }

    /// `/cgi-bin/stable_token`. Normal mode returns the current token until its last minutes, then a
    /// new one (the old one lives out its lifetime). Forced mode replaces the current token at once,
    /// unless the previous forced refresh was too recent, in which case nothing is refreshed.
    /// The caller has checked the credentials.
    pub(crate) fn fetch_stable_token(
        &mut self,
        appid: &str,
        force_refresh: bool,
        now_ms: i64,
        rules: &TokenRules,
    ) -> Result<TokenGrant, WxError> {
        let day = beijing_day(now_ms);
        let app = self.apps.entry(appid.to_owned()).or_default();
        let current =
            app.latest_stable.as_ref().and_then(|token| match self.tokens.get(token).map(|t| t.status(now_ms)) {
                Some(TokenStatus::Live { remaining_ms }) => Some((token.clone(), remaining_ms)),
                _ => None,
            });

        if force_refresh {
            let too_soon = app
                .last_force_refresh_ms
                .is_some_and(|last| now_ms - last < rules.force_refresh_min_interval_secs.saturating_mul(1000));
            if let (true, Some((access_token, remaining_ms))) = (too_soon, &current) {
                app.stable_fetches += 1;
                return Ok(TokenGrant { access_token: access_token.clone(), expires_in: remaining_ms / 1000 });
            }
            if app.force_refreshes_daily.on(day) >= rules.force_refresh_daily_limit {
                return Err(WxError::DAILY_QUOTA_REACHED);
            }
            if let Some(token) = current.and_then(|(token, _)| self.tokens.get_mut(&token)) {
                token.supersede_at(now_ms);
            }
            app.force_refreshes_daily.bump(day);
            app.last_force_refresh_ms = Some(now_ms);
        } else if let Some((access_token, remaining_ms)) = current {
            if remaining_ms > rules.stable_renew_before_secs.saturating_mul(1000) {
                app.stable_fetches += 1;
                return Ok(TokenGrant { access_token, expires_in: remaining_ms / 1000 });
            }
        }

        let access_token = mint(&mut self.tokens, appid, TokenSource::StableToken, now_ms, rules.ttl_secs);
        app.latest_stable = Some(access_token.clone());
        app.stable_fetches += 1;
        app.stable_issued += 1;
        Ok(TokenGrant { access_token, expires_in: rules.ttl_secs })
    }

    /// Which app a token belongs to, or WeChat's error for a token that does not work.
    pub(crate) fn check(&self, access_token: &str, now_ms: i64) -> Result<String, WxError> {
        if access_token.is_empty() {
            return Err(WxError::ACCESS_TOKEN_MISSING);
        }
        let token = self.tokens.get(access_token).ok_or(WxError::INVALID_CREDENTIAL)?;
        match token.status(now_ms) {
            TokenStatus::Live { .. } => Ok(token.appid.clone()),
            TokenStatus::Superseded => Err(WxError::INVALID_CREDENTIAL),
            TokenStatus::Expired => Err(WxError::ACCESS_TOKEN_EXPIRED),
        }
    }

    /// Counters of one app (all zero for an app that never asked for a token).
    pub(crate) fn app_stats(&self, appid: &str, now_ms: i64) -> AppTokenStats {
        let day = beijing_day(now_ms);
        let live = |source: TokenSource| {
            self.tokens
                .values()
                .filter(|t| t.appid == appid && t.source == source)
                .filter(|t| matches!(t.status(now_ms), TokenStatus::Live { .. }))
                .count()
        };
        let app = self.apps.get(appid);
        AppTokenStats {
            token_fetches: app.map_or(0, |a| a.token_fetches),
            token_fetches_today: app.map_or(0, |a| a.token_fetches_daily.on(day)),
            live_tokens: live(TokenSource::Token),
            stable_token_fetches: app.map_or(0, |a| a.stable_fetches),
            stable_tokens_issued: app.map_or(0, |a| a.stable_issued),
            force_refreshes_today: app.map_or(0, |a| a.force_refreshes_daily.on(day)),
            live_stable_tokens: live(TokenSource::StableToken),
        }
    }
}

fn mint(
    tokens: &mut HashMap<String, IssuedToken>,
    appid: &str,
    source: TokenSource,
    now_ms: i64,
    ttl_secs: i64,
) -> String {
    let access_token = loop {
        let candidate = random_token();
        if !tokens.contains_key(&candidate) {
            break candidate;
        }
    };
    tokens.insert(
        access_token.clone(),
        IssuedToken {
            appid: appid.to_owned(),
            source,
            expires_at_ms: now_ms.saturating_add(ttl_secs.saturating_mul(1000)),
            superseded_at_ms: None,
        },
    );
    access_token
}

/// A token shaped like WeChat's: a small number, `_`, then URL-safe characters, e.g. `87_Xk3…`.
fn random_token() -> String {
    let mut rng = rand::thread_rng();
    let prefix: u8 = rng.gen_range(80..100);
    let body: String =
        (0..TOKEN_RANDOM_LEN).map(|_| char::from(TOKEN_ALPHABET[rng.gen_range(0..TOKEN_ALPHABET.len())])).collect();
    format!("{prefix}_{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "wx_app";
    const T0: i64 = 1_700_000_000_000;
    const SEC: i64 = 1000;

    fn rules() -> TokenRules {
        TokenRules::default()
    }

    #[test]
    fn tokens_look_like_wechat_tokens() {
        let token = random_token();
        assert!(token.len() > 100);
        let (prefix, body) = token.split_once('_').expect("numeric prefix");
        assert!(prefix.chars().all(|c| c.is_ascii_digit()));
        assert!(body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    }

    #[test]
    fn fetch_token_keeps_the_previous_token_for_the_grace_period_only() {
        let mut store = TokenStore::default();
        let first = store.fetch_token(APP, T0, &rules()).unwrap();
        assert_eq!(first.expires_in, 7200);
        let second = store.fetch_token(APP, T0 + 1000 * SEC, &rules()).unwrap();
        assert_ne!(first.access_token, second.access_token);

        let end_of_grace = T0 + 1300 * SEC;
        assert_eq!(store.check(&first.access_token, end_of_grace - 1).as_deref(), Ok(APP));
        assert_eq!(store.check(&first.access_token, end_of_grace), Err(WxError::INVALID_CREDENTIAL));
        assert_eq!(store.check(&second.access_token, end_of_grace).as_deref(), Ok(APP));
        assert_eq!(store.app_stats(APP, end_of_grace).live_tokens, 1);
    }

    #[test]
    fn a_token_at_the_end_of_its_life_is_expired_not_superseded() {
        let mut store = TokenStore::default();
        let first = store.fetch_token(APP, T0, &rules()).unwrap();
        // Re-fetched 100 s before it would expire anyway: the grace cut-off is its natural end.
        store.fetch_token(APP, T0 + 7100 * SEC, &rules()).unwrap();
        assert_eq!(store.check(&first.access_token, T0 + 7200 * SEC), Err(WxError::ACCESS_TOKEN_EXPIRED));
    }

    #[test]
    fn fetch_token_daily_quota_resets_at_beijing_midnight() {
        let tight = TokenRules { token_daily_limit: 2, ..rules() };
        let mut store = TokenStore::default();
        store.fetch_token(APP, T0, &tight).unwrap();
        store.fetch_token(APP, T0, &tight).unwrap();
        assert_eq!(store.fetch_token(APP, T0, &tight), Err(WxError::DAILY_QUOTA_REACHED));
        let next_day = T0 + 24 * 3600 * SEC;
        assert!(store.fetch_token(APP, next_day, &tight).is_ok());
    }

    #[test]
    fn stable_token_is_stable_then_renewed_in_its_last_five_minutes() {
        let mut store = TokenStore::default();
        let first = store.fetch_stable_token(APP, false, T0, &rules()).unwrap();
        let again = store.fetch_stable_token(APP, false, T0 + 6000 * SEC, &rules()).unwrap();
        assert_eq!(again.access_token, first.access_token);
        assert_eq!(again.expires_in, 1200);

        let renewed = store.fetch_stable_token(APP, false, T0 + 6900 * SEC, &rules()).unwrap();
        assert_ne!(renewed.access_token, first.access_token);
        assert_eq!(renewed.expires_in, 7200);
        // The old one lives out its lifetime, then expires.
        assert!(store.check(&first.access_token, T0 + 7199 * SEC).is_ok());
        assert_eq!(store.check(&first.access_token, T0 + 7200 * SEC), Err(WxError::ACCESS_TOKEN_EXPIRED));
    }

    #[test]
    fn force_refresh_replaces_at_once_but_not_twice_within_30_seconds() {
        let mut store = TokenStore::default();
        let first = store.fetch_stable_token(APP, false, T0, &rules()).unwrap();
        let forced = store.fetch_stable_token(APP, true, T0 + SEC, &rules()).unwrap();
        assert_ne!(forced.access_token, first.access_token);
        assert_eq!(store.check(&first.access_token, T0 + SEC), Err(WxError::INVALID_CREDENTIAL));

        let too_soon = store.fetch_stable_token(APP, true, T0 + 30 * SEC, &rules()).unwrap();
        assert_eq!(too_soon.access_token, forced.access_token);

        let later = store.fetch_stable_token(APP, true, T0 + 31 * SEC, &rules()).unwrap();
        assert_ne!(later.access_token, forced.access_token);
        assert_eq!(store.app_stats(APP, T0 + 31 * SEC).force_refreshes_today, 2);
    }

    #[test]
    fn force_refresh_is_limited_per_day() {
        let mut store = TokenStore::default();
        let mut now = T0;
        for _ in 0..20 {
            store.fetch_stable_token(APP, true, now, &rules()).unwrap();
            now += 30 * SEC;
        }
        assert_eq!(store.fetch_stable_token(APP, true, now, &rules()), Err(WxError::DAILY_QUOTA_REACHED));
        // Normal mode still answers.
        assert!(store.fetch_stable_token(APP, false, now, &rules()).is_ok());
    }

    #[test]
    fn the_two_token_sets_are_isolated() {
        let mut store = TokenStore::default();
        let basic = store.fetch_token(APP, T0, &rules()).unwrap();
        let stable = store.fetch_stable_token(APP, false, T0, &rules()).unwrap();
        store.fetch_stable_token(APP, true, T0, &rules()).unwrap();
        store.fetch_token(APP, T0, &rules()).unwrap();
        // A forced stable refresh does not touch /cgi-bin/token tokens, and vice versa.
        assert!(store.check(&basic.access_token, T0).is_ok());
        assert_eq!(store.check(&stable.access_token, T0), Err(WxError::INVALID_CREDENTIAL));
        let stats = store.app_stats(APP, T0);
        assert_eq!((stats.live_tokens, stats.live_stable_tokens), (2, 1));
    }

    #[test]
    fn check_rejects_unknown_and_empty_tokens() {
        let store = TokenStore::default();
        assert_eq!(store.check("87_nope", T0), Err(WxError::INVALID_CREDENTIAL));
        assert_eq!(store.check("", T0), Err(WxError::ACCESS_TOKEN_MISSING));
    }
}
