//! The SHA-1 signatures of WeChat's message push: `signature` over the sorted `[token, timestamp,
//! nonce]` on every push and URL check, and `msg_signature`, which adds the `Encrypt` text, on
//! encrypted pushes and encrypted replies.

use sha1::{Digest, Sha1};

/// `signature`: lower-case hex SHA-1 of the ASCII-sorted concatenation of token, timestamp and nonce.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    sorted_sha1(&mut [token, timestamp, nonce])
}

/// `msg_signature`: as [`signature`], with the base64 `Encrypt` text as a fourth part.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    sorted_sha1(&mut [token, timestamp, nonce, encrypt])
}

/// Whether `candidate` is the `signature` of these parameters (compared in constant time, any case).
pub fn verify_signature(token: &str, timestamp: &str, nonce: &str, candidate: &str) -> bool {
    equal_hex(&signature(token, timestamp, nonce), candidate)
}

/// Whether `candidate` is the `msg_signature` of these parameters (constant time, any case).
pub fn verify_msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str, candidate: &str) -> bool {
    equal_hex(&msg_signature(token, timestamp, nonce, encrypt), candidate)
}

fn sorted_sha1(parts: &mut [&str]) -> String {
    // Byte-wise order is what WeChat's sample code means by dictionary order.
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts.iter() {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn equal_hex(expected_lower: &str, candidate: &str) -> bool {
    let candidate = candidate.as_bytes();
    let expected = expected_lower.as_bytes();
    if candidate.len() != expected.len() {
        return false;
    }
    expected.iter().zip(candidate).fold(0u8, |diff, (a, b)| diff | (a ^ b.to_ascii_lowercase())) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_url_check_example() {
        // WeChat's message-push guide: Token "AAAAA", GET verification.
        let sig = signature("AAAAA", "1714036504", "1514711492");
        assert_eq!(sig, "f464b24fc39322e44b38aa78f5edd27bd1441696");
        assert!(verify_signature("AAAAA", "1714036504", "1514711492", "F464B24FC39322E44B38AA78F5EDD27BD1441696"));
        assert!(!verify_signature("AAAAA", "1714036504", "1514711493", &sig));
        assert!(!verify_signature("AAAAA", "1714036504", "1514711492", ""));
    }

    #[test]
    fn official_plaintext_push_example() {
        assert_eq!(signature("AAAAA", "1714037059", "486452656"), "899cf89e464efb63f54ddac96b0a0a235f53aa78");
    }
}
