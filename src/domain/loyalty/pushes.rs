//! A push as it arrived at the official account's callback: the URL it came under (its
//! signature checked) and what it carried. The URL signature covers token, timestamp and nonce,
//! not the body, so each URL's (timestamp, nonce) is bound to the first body taken under it
//! ([`crate::db::wechat::bind_nonces`]); both the general push path ([`crate::domain::loyalty::oa`]) and the grouped
//! check-in writer ([`crate::domain::loyalty::checkin_writer`]) refuse another body under a bound URL.
//!
//! One kind of push needs no binding: an encrypted push to an account that takes no plaintext
//! (safe mode). Its `msg_signature` covers the ciphertext, so no other body can come under its
//! URL without the token, and no unsigned body is taken at all. In compatible and plaintext mode
//! an encrypted push's URL is still bound: its `signature` alone would carry a plaintext body.

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
    /// Whether the body is tied to the URL by a checked `msg_signature` and the account takes
    /// no unsigned body: then the URL needs no binding.
    pub sealed: bool,
}

impl SignedPush {
    /// The binding of the URL to the body this push asks for; none for a sealed push.
    pub fn claim(&self) -> Option<db::wechat::NonceClaim<'_>> {
        (!self.sealed).then(|| db::wechat::NonceClaim {
            url_timestamp: self.url_timestamp,
            nonce: &self.nonce,
            body_sha256: &self.body_sha256,
        })
    }
}

/// The refusal of a body under a URL already bound to another body.
pub fn nonce_reused() -> DomainError {
    DomainError::conflict(
        ErrorCode::PushNonceReused,
        "this timestamp and nonce already came with another body: a signed URL carries one push only",
    )
}
