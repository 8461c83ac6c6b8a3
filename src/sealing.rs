//! Secrets at rest: the credentials of WeChat apps and Pay merchants stored as records are sealed
//! with AES-256-GCM under a master key from the environment (`LINLI_SECRET_KEY`), never stored in
//! clear text.
//!
//! `LINLI_SECRET_KEY` holds one or more keys, comma-separated, each `<key id>:<base64 of 32
//! bytes>`; the first seals, every one opens (so a new key can be put first while values sealed
//! under the old one are still read, until `linli secrets rotate` re-seals them all). A sealed
//! value is `v1.<key id>.<nonce>.<ciphertext and tag>` (base64), with the row and column it
//! belongs to as associated data: a sealed value copied into another row or column does not open.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::secret::Secret;

/// The environment variable the master keys come from.
pub const SECRET_KEY_ENV: &str = "LINLI_SECRET_KEY";

const VERSION: &str = "v1";

/// One master key and its id.
#[derive(Clone)]
struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
    fingerprint_key: [u8; 32],
}

/// The master keys: the first seals, all open.
#[derive(Clone)]
pub struct SealingKeys {
    keys: Vec<MasterKey>,
}

impl fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("SealingKeys").field("ids", &ids).finish_non_exhaustive()
    }
}

/// Why a sealed value did not open, or a key setting was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("{SECRET_KEY_ENV} is not usable: {0}")]
    BadKeySetting(String),
    #[error("the value is not a sealed secret")]
    Malformed,
    #[error("the value was sealed under key id {0:?}, which {SECRET_KEY_ENV} does not hold")]
    UnknownKey(String),
    #[error(
        "the value does not open under key id {0:?}: {SECRET_KEY_ENV} holds another key under that id, or the value \
         was altered or moved"
    )]
    WrongKey(String),
}

fn valid_id(id: &str) -> bool {
    (1..=16).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl SealingKeys {
    /// Reads `LINLI_SECRET_KEY`'s value.
    pub fn parse(setting: &str) -> Result<SealingKeys, SealError> {
        let mut keys: Vec<MasterKey> = Vec::new();
        for entry in setting.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((id, material)) = entry.split_once(':') else {
                return Err(SealError::BadKeySetting("each key is <key id>:<base64 of 32 bytes>".into()));
            };
            let id = id.trim();
            if !valid_id(id) {
                return Err(SealError::BadKeySetting(format!(
                    "key id {id:?} must be 1–16 letters, digits, '_' or '-'"
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(SealError::BadKeySetting(format!("key id {id:?} appears twice")));
            }
            let bytes = B64
                .decode(material.trim())
                .map_err(|_| SealError::BadKeySetting(format!("the key of id {id:?} is not base64")))?;
            if bytes.len() != 32 {
                return Err(SealError::BadKeySetting(format!(
                    "the key of id {id:?} is {} bytes; AES-256 takes 32",
                    bytes.len()
                )));
            }
            keys.push(MasterKey::new(id, &bytes));
        }
        if keys.is_empty() {
            return Err(SealError::BadKeySetting("no key is given".into()));
        }
        Ok(SealingKeys { keys })
    }

    /// A fresh key setting: `<id>:<32 random bytes, base64>`.
    pub fn generate(id: &str) -> String {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        format!("{id}:{}", B64.encode(bytes))
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Seals `value` for the place `context` names (e.g. `wechat_apps.secret:wx123`).
    pub fn seal(&self, context: &str, value: &str) -> String {
        let key = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: context.as_bytes() })
            .expect("AES-GCM sealing of an in-memory value does not fail");
        format!("{VERSION}.{}.{}.{}", key.id, B64.encode(nonce), B64.encode(sealed))
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Secret, SealError> {
        let mut parts = sealed.split('.');
        let (Some(VERSION), Some(id), Some(nonce), Some(body), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Malformed);
        };
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let nonce = B64.decode(nonce).map_err(|_| SealError::Malformed)?;
        let body = B64.decode(body).map_err(|_| SealError::Malformed)?;
        if nonce.len() != 12 {
            return Err(SealError::Malformed);
        }
        let plain = key
            .cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &body, aad: context.as_bytes() })
            .map_err(|_| SealError::WrongKey(id.to_owned()))?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| SealError::Malformed)
    }

    /// The id of the key a sealed value is under (for rotation), if it is a sealed value.
    pub fn key_id_of(sealed: &str) -> Option<&str> {
        let mut parts = sealed.split('.');
        match (parts.next(), parts.next()) {
            (Some(VERSION), Some(id)) => Some(id),
            _ => None,
        }
    }

    /// What operators see of a secret: 16 hex digits of an HMAC under a key derived from the
    /// current master key, enough to tell two values apart and nothing to guess one by (a short
    /// callback token hashed plainly could be found by trying them all).
    pub fn fingerprint(&self, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.keys[0].fingerprint_key)
            .expect("HMAC takes a key of any length");
        mac.update(value.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..8])
    }
}

impl MasterKey {
    fn new(id: &str, bytes: &[u8]) -> MasterKey {
        let cipher = Aes256Gcm::new_from_slice(bytes).expect("32 bytes is an AES-256 key");
        // A separate key for fingerprints, so the sealing key itself is used for nothing else.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(bytes).expect("HMAC takes a key of any length");
        mac.update(b"linli fingerprint key");
        let fingerprint_key: [u8; 32] = mac.finalize().into_bytes().into();
        MasterKey { id: id.to_owned(), cipher, fingerprint_key }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(setting: &str) -> SealingKeys {
        SealingKeys::parse(setting).expect("a good setting")
    }

    const A: &str = "a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const B: &str = "b:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn a_sealed_value_opens_for_its_place_only() {
        let k = keys(A);
        let sealed = k.seal("wechat_apps.secret:wx1", "the secret");
        assert!(!sealed.contains("the secret"));
        assert_eq!(k.open("wechat_apps.secret:wx1", &sealed).unwrap().expose(), "the secret");
        assert_eq!(k.open("wechat_apps.secret:wx2", &sealed), Err(SealError::WrongKey("a".into())));
        assert_eq!(k.open("wechat_apps.token:wx1", &sealed), Err(SealError::WrongKey("a".into())));
        // Two seals of one value differ (fresh nonce), both open.
        let again = k.seal("wechat_apps.secret:wx1", "the secret");
        assert_ne!(sealed, again);
        assert_eq!(k.open("wechat_apps.secret:wx1", &again).unwrap().expose(), "the secret");
    }

    #[test]
    fn a_tampered_or_foreign_value_does_not_open() {
        let k = keys(A);
        let sealed = k.seal("c", "value");
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(matches!(k.open("c", &tampered), Err(SealError::WrongKey(_) | SealError::Malformed)));
        assert_eq!(k.open("c", "plain text"), Err(SealError::Malformed));
        assert_eq!(k.open("c", ""), Err(SealError::Malformed));
        // Same id, another key: the wrong master key.
        let other = keys("a:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=");
        assert_eq!(other.open("c", &sealed), Err(SealError::WrongKey("a".into())));
        assert_eq!(keys(B).open("c", &sealed), Err(SealError::UnknownKey("a".into())));
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = keys(A);
        let sealed_old = old.seal("c", "value");
        let both = keys(&format!("{B},{A}"));
        assert_eq!(both.current_id(), "b");
        assert_eq!(both.open("c", &sealed_old).unwrap().expose(), "value");
        let sealed_new = both.seal("c", "value");
        assert_eq!(SealingKeys::key_id_of(&sealed_new), Some("b"));
        assert_eq!(SealingKeys::key_id_of(&sealed_old), Some("a"));
        assert_eq!(old.open("c", &sealed_new), Err(SealError::UnknownKey("b".into())));
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        for (setting, why) in [
            ("", "no key"),
            ("nokey", "each key"),
            ("a:notbase64!!", "not base64"),
            ("a:AAAA", "3 bytes"),
            ("bad id:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "key id"),
            (&format!("{A},{A}"), "twice"),
        ] {
            let err = SealingKeys::parse(setting).unwrap_err().to_string();
            assert!(err.contains(why), "{setting:?}: {err}");
        }
        let generated = SealingKeys::generate("k2");
        assert_eq!(keys(&generated).current_id(), "k2");
    }

    #[test]
    fn fingerprints_tell_values_apart_and_do_not_show_them() {
        let k = keys(A);
        assert_eq!(k.fingerprint("x"), k.fingerprint("x"));
        assert_ne!(k.fingerprint("x"), k.fingerprint("y"));
        assert_eq!(k.fingerprint("x").len(), 16);
        assert_ne!(keys(B).fingerprint("x"), k.fingerprint("x"));
    }
}
