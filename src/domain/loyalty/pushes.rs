//! A push as it arrived at the official account's callback: the URL it came under (its
//! signature checked) and what it carried. The URL signature covers token, timestamp and nonce,
//! not the body, so each URL's (timestamp, nonce) is bound to the first body taken under it
//! ([`crate::db::wechat::bind_nonces`]); both the general push path ([`crate::domain::loyalty::oa`]) and the grouped
//! check-in writer ([`crate::domain::loyalty::checkin_writer`]) refuse another body under a bound URL.

use crate::codes::ErrorCode;
use crate::db;
use crate::domain::DomainError;

/// The URL a push came under (its signature checked) and the SHA-256 (hex) of the message it
/// carries: the raw body of a plaintext push, the decrypted message of an encrypted one.
#[derive(Clone, Debug)]
pub struct SignedPush {
    pub url_timestamp: i64,
    pub nonce: String,
    pub body_sha256: String,
}

impl SignedPush {
    pub fn claim(&self) -> db::wechat::NonceClaim<'_> {
        db::wechat::NonceClaim { url_timestamp: self.url_timestamp, nonce: &self.nonce, body_sha256: &self.body_sha256 }
    }
}

/// The refusal of a body under a URL already bound to another body.
pub fn nonce_reused() -> DomainError {
    DomainError::conflict(
        ErrorCode::PushNonceReused,
        "this timestamp and nonce already came with another body: a signed URL carries one push only",
    )
}
