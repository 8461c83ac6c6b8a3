//! WeChat Pay protocol client for payouts: protocol code only, no business rules.
//!
//! * [`v2`]: the XML API with MD5/HMAC-SHA256 signatures and a client TLS certificate — cash red
//!   packets (`sendredpack`, `gethbinfo`) and the legacy enterprise payment (`promotion/transfers`,
//!   `gettransferinfo`).
//! * [`v3`]: the JSON API with RSA request signatures and answer verification by the WeChat Pay
//!   public key or the platform certificates — merchant transfers (`transfer-bills`) and their
//!   notifications.
//! * [`crypto`]: key loading, SHA256withRSA, RSA-OAEP and AES-GCM shared by the above; [`x509`]:
//!   the serial, validity and key of a platform certificate.
//!
//! Every call answers with an outcome that tells the payout dispatcher one of: succeeded, definitely
//! failed, or unknown (query, or retry with the **same** merchant number). Anything that cannot be
//! verified or understood is unknown, never success and never failure.

pub mod clients;
pub mod crypto;
pub mod v2;
pub mod v3;
pub mod x509;
mod xml;

use rand::distributions::Alphanumeric;
use rand::Rng;

pub use xml::XmlError;

/// Code in an `Unknown` outcome when the call timed out (the payout may or may not have happened).
pub const CODE_TIMEOUT: &str = "LINLI_TIMEOUT";
/// Code in an `Unknown` outcome when the connection failed or broke mid-call.
pub const CODE_TRANSPORT: &str = "LINLI_TRANSPORT";
/// Code in an `Unknown` outcome when the answer could not be parsed or lacked required fields.
pub const CODE_BAD_ANSWER: &str = "LINLI_BAD_ANSWER";
/// Code in an `Unknown` outcome when the answer's signature did not verify.
pub const CODE_BAD_SIGNATURE: &str = "LINLI_BAD_SIGNATURE";

/// Largest answer body read from WeChat Pay; payout answers are a few hundred bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A 32-character alphanumeric nonce, the most `nonce_str` allows.
pub fn nonce_str() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}

/// Compares two byte strings in time independent of where they differ, so a signature check does
/// not leak how much of a forged signature was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads an answer body, giving up past `MAX_ANSWER_BYTES` so a broken or hostile peer cannot make
/// us buffer without bound.
pub(crate) async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug)]
pub(crate) enum ReadError {
    Transport(reqwest::Error),
    TooLarge,
}

/// Maps a transport error to the `(code, message)` of an `Unknown` outcome. The message is
/// reqwest's, which names the URL but never carries keys or bodies.
pub(crate) fn transport_unknown(err: &reqwest::Error) -> (String, String) {
    let code = if err.is_timeout() { CODE_TIMEOUT } else { CODE_TRANSPORT };
    (code.to_owned(), err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_32_alphanumeric() {
        let nonce = nonce_str();
        assert_eq!(nonce.len(), 32);
        assert!(nonce.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(nonce, nonce_str());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
