//! The mini-program ledger: login codes (`wx.login`) and phone codes (`getPhoneNumber` button),
//! each single use and short-lived, the per-user minute window of `jscode2session`, and the latest
//! session key per user. Pure bookkeeping over explicit times; the clock and HTTP live elsewhere.

use std::collections::{HashMap, VecDeque};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use rand::Rng;

use super::MiniProgramStats;
use crate::wx_error::WxError;

/// Characters of `wx.login` codes (seen in the wild: `0712cDoV0cfty22AeloV0daMoV02cDog`).
const LOGIN_CODE_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Length of a `wx.login` code.
pub(crate) const LOGIN_CODE_LEN: usize = 32;
/// Length of a phone code (64 hex digits, as in WeChat's example request).
pub(crate) const PHONE_CODE_LEN: usize = 64;
/// The window of the per-user `jscode2session` limit.
const MINUTE_MS: i64 = 60_000;

/// One issued code.
#[derive(Debug, Clone)]
pub(crate) struct IssuedCode {
    /// The mini-program it was issued for.
    pub(crate) appid: String,
    /// The person it identifies.
    pub(crate) unionid: String,
    /// When the user's client got it, Unix ms.
    pub(crate) issued_at_ms: i64,
    expires_at_ms: i64,
    used: bool,
}

/// Which kind of code, for the shared bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeKind {
    /// A `wx.login` code, for `jscode2session`.
    Login,
    /// A phone code, for `getuserphonenumber`.
    Phone,
}

/// Every code issued and not yet forgotten.
#[derive(Debug, Default)]
pub(crate) struct CodeStore {
    login: HashMap<String, IssuedCode>,
    phone: HashMap<String, IssuedCode>,
    /// Successful exchanges in the last minute per (mini-program, unionid), oldest first.
    exchanges: HashMap<(String, String), VecDeque<i64>>,
    /// The latest session key per (mini-program, openid).
    session_keys: HashMap<(String, String), String>,
    pub(crate) stats: MiniProgramStats,
}

impl CodeStore {
    fn codes(&self, kind: CodeKind) -> &HashMap<String, IssuedCode> {
        match kind {
            CodeKind::Login => &self.login,
            CodeKind::Phone => &self.phone,
        }
    }

    fn codes_mut(&mut self, kind: CodeKind) -> &mut HashMap<String, IssuedCode> {
        match kind {
            CodeKind::Login => &mut self.login,
            CodeKind::Phone => &mut self.phone,
        }
    }

    /// Issues a fresh code of `kind` for `unionid` in mini-program `appid`, valid for `ttl_secs`.
    /// Codes that have expired are forgotten on the way (they answer as unknown ones do).
    pub(crate) fn issue(&mut self, kind: CodeKind, appid: &str, unionid: &str, now_ms: i64, ttl_secs: i64) -> String {
        let codes = self.codes_mut(kind);
        codes.retain(|_, code| code.expires_at_ms > now_ms);
        let code = loop {
            let candidate = match kind {
                CodeKind::Login => random_login_code(),
                CodeKind::Phone => random_phone_code(),
            };
            if !codes.contains_key(&candidate) {
                break candidate;
            }
        };
        codes.insert(
            code.clone(),
            IssuedCode {
                appid: appid.to_owned(),
                unionid: unionid.to_owned(),
                issued_at_ms: now_ms,
                expires_at_ms: now_ms.saturating_add(ttl_secs.saturating_mul(1000)),
                used: false,
            },
        );
        match kind {
            CodeKind::Login => self.stats.login_codes_issued += 1,
            CodeKind::Phone => self.stats.phone_codes_issued += 1,
        }
        code
    }

    /// The code `code` presented by mini-program `appid`, if it can still be exchanged:
    /// `40029` when unknown, expired or issued for another app, `used_error` when already used.
    pub(crate) fn check(
        &self,
        kind: CodeKind,
        code: &str,
        appid: &str,
        now_ms: i64,
        used_error: WxError,
    ) -> Result<&IssuedCode, WxError> {
        let issued = self.codes(kind).get(code).ok_or(WxError::INVALID_CODE)?;
        if issued.expires_at_ms <= now_ms || issued.appid != appid {
            return Err(WxError::INVALID_CODE);
        }
        if issued.used {
            return Err(used_error);
        }
        Ok(issued)
    }

    /// Marks a checked code as used; it stays known (answering "used") until it expires.
    pub(crate) fn consume(&mut self, kind: CodeKind, code: &str) {
        if let Some(issued) = self.codes_mut(kind).get_mut(code) {
            issued.used = true;
        }
    }

    /// Counts an exchange of `unionid`'s code in `appid` against the limit of `limit` a minute;
    /// `45011` once the user had that many in the last 60 seconds.
    pub(crate) fn note_exchange(
        &mut self,
        appid: &str,
        unionid: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<(), WxError> {
        let window = self.exchanges.entry((appid.to_owned(), unionid.to_owned())).or_default();
        while window.front().is_some_and(|&at| at <= now_ms - MINUTE_MS) {
            window.pop_front();
        }
        if window.len() >= limit {
            return Err(WxError::MINUTE_QUOTA_REACHED);
        }
        window.push_back(now_ms);
        Ok(())
    }

    /// A fresh session key for `openid` in `appid`, remembered as its latest.
    pub(crate) fn new_session(&mut self, appid: &str, openid: &str) -> String {
        let key = random_session_key();
        self.session_keys.insert((appid.to_owned(), openid.to_owned()), key.clone());
        self.stats.sessions_issued += 1;
        key
    }

    /// The latest session key of `openid` in `appid`.
    pub(crate) fn session_key(&self, appid: &str, openid: &str) -> Option<&str> {
        self.session_keys.get(&(appid.to_owned(), openid.to_owned())).map(String::as_str)
    }
}

/// A code like `wx.login`'s: 32 letters and digits.
pub(crate) fn random_login_code() -> String {
    let mut rng = rand::thread_rng();
    (0..LOGIN_CODE_LEN).map(|_| char::from(LOGIN_CODE_ALPHABET[rng.gen_range(0..LOGIN_CODE_ALPHABET.len())])).collect()
}

/// A phone code: 64 lowercase hex digits.
pub(crate) fn random_phone_code() -> String {
    hex::encode(rand::thread_rng().gen::<[u8; PHONE_CODE_LEN / 2]>())
}

/// A session key: base64 of 16 random bytes (24 characters), as WeChat's are.
fn random_session_key() -> String {
    STANDARD.encode(rand::thread_rng().gen::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 300;

    #[test]
    fn codes_look_like_wechat_ones() {
        let code = random_login_code();
        assert_eq!(code.len(), LOGIN_CODE_LEN);
        assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()));
        let phone = random_phone_code();
        assert_eq!(phone.len(), PHONE_CODE_LEN);
        assert!(phone.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let key = random_session_key();
        assert_eq!(key.len(), 24);
        assert_eq!(STANDARD.decode(&key).unwrap().len(), 16);
    }

    #[test]
    fn a_code_is_single_use_expires_and_belongs_to_its_app() {
        let mut store = CodeStore::default();
        let code = store.issue(CodeKind::Login, "wx_mp", "u1", 1_000, TTL);
        let used = WxError::CODE_BEEN_USED;
        assert_eq!(store.check(CodeKind::Login, &code, "wx_mp", 1_000, used).unwrap().unionid, "u1");
        assert_eq!(store.check(CodeKind::Login, &code, "wx_other", 1_000, used).err(), Some(WxError::INVALID_CODE));
        assert_eq!(store.check(CodeKind::Phone, &code, "wx_mp", 1_000, used).err(), Some(WxError::INVALID_CODE));
        store.consume(CodeKind::Login, &code);
        assert_eq!(store.check(CodeKind::Login, &code, "wx_mp", 2_000, used).err(), Some(used));
        // Used or not, an expired code is unknown to WeChat.
        let end = 1_000 + TTL * 1000;
        assert_eq!(store.check(CodeKind::Login, &code, "wx_mp", end, used).err(), Some(WxError::INVALID_CODE));
        let fresh = store.issue(CodeKind::Login, "wx_mp", "u1", end - 1, TTL);
        assert!(store.check(CodeKind::Login, &fresh, "wx_mp", end - 1 + TTL * 1000 - 1, used).is_ok());
        assert_eq!(store.stats.login_codes_issued, 2);
    }

    #[test]
    fn expired_codes_are_forgotten_when_new_ones_are_issued() {
        let mut store = CodeStore::default();
        for _ in 0..10 {
            store.issue(CodeKind::Phone, "wx_mp", "u1", 0, TTL);
        }
        store.issue(CodeKind::Phone, "wx_mp", "u1", TTL * 1000, TTL);
        assert_eq!(store.phone.len(), 1);
    }

    #[test]
    fn the_minute_window_slides() {
        let mut store = CodeStore::default();
        for i in 0..3 {
            assert_eq!(store.note_exchange("wx_mp", "u1", i * 10_000, 3), Ok(()));
        }
        assert_eq!(store.note_exchange("wx_mp", "u1", 30_000, 3), Err(WxError::MINUTE_QUOTA_REACHED));
        assert_eq!(store.note_exchange("wx_mp", "u2", 30_000, 3), Ok(()), "per user");
        assert_eq!(store.note_exchange("wx_mp", "u1", 59_999, 3), Err(WxError::MINUTE_QUOTA_REACHED));
        assert_eq!(store.note_exchange("wx_mp", "u1", 60_000, 3), Ok(()), "the first one left the window");
    }
}
