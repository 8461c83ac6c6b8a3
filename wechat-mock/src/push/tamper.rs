//! Pushes WeChat would never send, to test the account's checks: signatures made with a wrong
//! token, a replay with an old timestamp, a ciphertext carrying another appid. A tampered push is
//! the original rebuilt with one parameter changed, so everything else stays byte-for-byte the same.

use std::fmt;

use super::{OaPusher, Push};

/// A way to spoil a push, for testing the account's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tamper {
    /// `signature` (and `msg_signature`, when present) computed with a wrong token.
    BadSignature,
    /// Only `msg_signature` wrong; `signature` stays valid (compatible and safe modes).
    BadMsgSignature,
    /// The same message sent `seconds_ago` earlier (URL `timestamp` and `CreateTime`), correctly
    /// signed: a replay. A negative value dates it in the future.
    StaleTimestamp {
        /// How far back, in seconds.
        seconds_ago: i64,
    },
    /// The ciphertext carries this appid instead of the account's, correctly signed (compatible
    /// and safe modes).
    WrongAppid(String),
}

/// Why a tampering does not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TamperError {
    /// The tampering changes the encrypted part, and plaintext-mode pushes have none.
    NotEncrypted,
}

impl fmt::Display for TamperError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEncrypted => f.write_str("plaintext-mode pushes have no encrypted part"),
        }
    }
}

impl std::error::Error for TamperError {}

impl OaPusher {
    /// `push` spoiled by `tamper`; everything else (message, nonce, random prefix) stays, and
    /// tamperings add up when applied to an already tampered push.
    pub fn tampered(&self, push: &Push, tamper: Tamper) -> Result<Push, TamperError> {
        let mut params = push.params.clone();
        let encrypted = push.mode.encrypts();
        match tamper {
            Tamper::BadSignature => params.bad_signature = true,
            Tamper::BadMsgSignature if encrypted => params.bad_msg_signature = true,
            Tamper::StaleTimestamp { seconds_ago } => {
                params.moved_back = params.moved_back.saturating_add(seconds_ago);
            }
            Tamper::WrongAppid(appid) if encrypted => params.wrong_appid = Some(appid),
            Tamper::BadMsgSignature | Tamper::WrongAppid(_) => return Err(TamperError::NotEncrypted),
        }
        Ok(self.assemble(push.message.clone(), params))
    }
}
