//! Callback signatures and safe-mode (AES) message crypto for linli's official-account webhook.
//!
//! * [`signature`] / [`verify_signature`]: the SHA-1 signature WeChat puts in the callback URL
//!   (`signature` over token, timestamp, nonce; `msg_signature` also over the `Encrypt` value).
//! * [`within_window`]: whether a timestamp or `CreateTime` from a push is fresh, without
//!   arithmetic that any value could overflow.
//! * [`MsgCrypt`]: decrypts the `Encrypt` value of safe/compatible-mode pushes and encrypts passive replies.
//!
//! Wire format of an `Encrypt` value: standard base64 (with `=`) of AES-256-CBC ciphertext, key =
//! `base64_decode(EncodingAESKey + "=")` (32 bytes), IV = the key's first 16 bytes, no cipher-level
//! padding; the plaintext is `random(16) ‖ u32_be(len(msg)) ‖ msg ‖ appid`, padded PKCS#7-style to a
//! multiple of **32** bytes (1..=32 pad bytes, each equal to the pad length).

use std::fmt;

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::Engine;
use sha1::{Digest, Sha1};

use super::message::MAX_XML_BYTES;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// Length in characters of an EncodingAESKey as shown in the WeChat console.
pub const ENCODING_AES_KEY_LEN: usize = 43;
/// Bytes of random prefix in the encrypted plaintext.
const RANDOM_LEN: usize = 16;
/// Bytes of the big-endian message-length field after the random prefix.
const LEN_FIELD_LEN: usize = 4;
/// Header = random prefix + length field.
const HEADER_LEN: usize = RANDOM_LEN + LEN_FIELD_LEN;
/// WeChat pads the plaintext to a multiple of 32 bytes (not the AES block size).
const PAD_MULTIPLE: usize = 32;
/// AES block size.
const AES_BLOCK: usize = 16;

/// Decodes the EncodingAESKey leniently: WeChat-generated keys do not always have the two
/// discarded trailing bits of the 43rd character set to zero, so a strict decoder rejects them.
const KEY_ENGINE: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true));

/// Why a key could not be loaded or an `Encrypt` value could not be decrypted.
///
/// Messages never contain key material or plaintext.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The EncodingAESKey is not 43 base64 characters decoding to 32 bytes.
    #[error("EncodingAESKey must be 43 base64 characters decoding to a 32-byte AES key")]
    BadKey,
    /// The configured appid is empty.
    #[error("appid must not be empty")]
    EmptyAppId,
    /// The `Encrypt` value is not valid standard base64.
    #[error("Encrypt value is not valid base64")]
    Base64,
    /// The ciphertext, or the decrypted plaintext's length field, has an impossible length.
    #[error("ciphertext or embedded message length is invalid")]
    BadLength,
    /// The decrypted plaintext does not end with valid 1..=32-byte padding.
    #[error("decrypted data has invalid padding")]
    BadPadding,
    /// The appid at the end of the decrypted plaintext is not ours.
    #[error("decrypted message is addressed to a different appid")]
    AppIdMismatch,
    /// The decrypted message is not UTF-8.
    #[error("decrypted message is not valid UTF-8")]
    NotUtf8,
    /// `msg_signature` does not match (only from [`MsgCrypt::decrypt_verified`]).
    #[error("msg_signature does not match")]
    BadSignature,
}

/// WeChat callback signature: `hex_lower(sha1(concat(sort_ascii(parts))))`.
///
/// The URL `signature` uses `[token, timestamp, nonce]`; `msg_signature` adds the `Encrypt` value
/// (of the request, or of an encrypted reply). Order of `parts` does not matter.
pub fn signature(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    // `str`'s `Ord` is byte-wise, i.e. ASCII order for the ASCII inputs WeChat uses.
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Constant-time comparison of a received hex signature (either hex case) with [`signature`] of
/// `parts`. Only the (public) length can short-circuit.
pub fn verify_signature(received: &str, parts: &[&str]) -> bool {
    let expected = signature(parts);
    let (received, expected) = (received.as_bytes(), expected.as_bytes());
    if received.len() != expected.len() {
        return false;
    }
    let diff = received.iter().zip(expected).fold(0u8, |acc, (r, e)| acc | (r.to_ascii_lowercase() ^ e));
    diff == 0
}

/// Whether `at` (unix seconds, as a push says) is at most `window_secs` from `now`. `at` is
/// whatever the sender wrote, `i64::MIN` included: the difference is checked, and one that does
/// not fit in an `i64` is as stale as it gets.
pub fn within_window(now: i64, at: i64, window_secs: u64) -> bool {
    now.checked_sub(at).is_some_and(|d| d.unsigned_abs() <= window_secs)
}

/// Safe-mode crypto for one official account: its 32-byte AES key and its appid.
///
/// `Debug` shows the appid only, never the key.
#[derive(Clone)]
pub struct MsgCrypt {
    key: [u8; 32],
    appid: String,
}

impl fmt::Debug for MsgCrypt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsgCrypt").field("appid", &self.appid).field("key", &"<redacted>").finish()
    }
}

impl MsgCrypt {
    /// Loads the account's 43-character EncodingAESKey (AESKey = `base64_decode(key + "=")`,
    /// IV = AESKey[..16]) and its appid (`wx…`), which decrypted messages must end with.
    pub fn new(encoding_aes_key: &str, appid: &str) -> Result<Self, CryptoError> {
        if encoding_aes_key.len() != ENCODING_AES_KEY_LEN {
            return Err(CryptoError::BadKey);
        }
        if appid.is_empty() {
            return Err(CryptoError::EmptyAppId);
        }
        let mut padded = String::with_capacity(ENCODING_AES_KEY_LEN + 1);
        padded.push_str(encoding_aes_key);
        padded.push('=');
        let decoded = KEY_ENGINE.decode(padded.as_bytes()).map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = decoded.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self { key, appid: appid.to_owned() })
    }

    /// The appid this instance accepts and writes.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    fn iv(&self) -> [u8; AES_BLOCK] {
        let mut iv = [0u8; AES_BLOCK];
        iv.copy_from_slice(&self.key[..AES_BLOCK]);
        iv
    }

    /// Decrypts an `Encrypt` value and returns the inner XML.
    ///
    /// Checks, without panicking on any input: a length of at most [`MAX_XML_BYTES`] (the largest
    /// push), base64, a non-empty whole number of AES blocks,
    /// 1..=32 bytes of consistent padding, the length field against the buffer, the trailing
    /// appid equal to ours ([`CryptoError::AppIdMismatch`]) and UTF-8.
    /// Authenticate the push with `msg_signature` first (see [`MsgCrypt::decrypt_verified`]):
    /// CBC alone does not authenticate.
    pub fn decrypt(&self, encrypt_b64: &str) -> Result<String, CryptoError> {
        // An `Encrypt` value comes out of a push of at most MAX_XML_BYTES: refuse anything longer
        // before decoding, so memory stays bounded whoever calls this.
        if encrypt_b64.len() > MAX_XML_BYTES {
            return Err(CryptoError::BadLength);
        }
        let mut buf = STANDARD
            .decode(encrypt_b64.trim_matches(|c: char| c.is_ascii_whitespace()))
            .map_err(|_| CryptoError::Base64)?;
        if buf.is_empty() || buf.len() % AES_BLOCK != 0 {
            return Err(CryptoError::BadLength);
        }
        let mut dec = Aes256CbcDec::new(&self.key.into(), &self.iv().into());
        for chunk in buf.chunks_exact_mut(AES_BLOCK) {
            dec.decrypt_block_mut(aes::Block::from_mut_slice(chunk));
        }
        let content = unpad(&buf)?;
        if content.len() < HEADER_LEN {
            return Err(CryptoError::BadLength);
        }
        let (header, rest) = content.split_at(HEADER_LEN);
        let mut len_bytes = [0u8; LEN_FIELD_LEN];
        len_bytes.copy_from_slice(&header[RANDOM_LEN..]);
        let msg_len = usize::try_from(u32::from_be_bytes(len_bytes)).map_err(|_| CryptoError::BadLength)?;
        if msg_len > rest.len() {
            return Err(CryptoError::BadLength);
        }
        let (msg, appid) = rest.split_at(msg_len);
        if appid != self.appid.as_bytes() {
            return Err(CryptoError::AppIdMismatch);
        }
        String::from_utf8(msg.to_vec()).map_err(|_| CryptoError::NotUtf8)
    }

    /// Verifies `msg_signature` over `[token, timestamp, nonce, encrypt_b64]` (constant time),
    /// then [`MsgCrypt::decrypt`]s. The usual entry point for a safe-mode POST.
    pub fn decrypt_verified(
        &self,
        token: &str,
        timestamp: &str,
        nonce: &str,
        msg_signature: &str,
        encrypt_b64: &str,
    ) -> Result<String, CryptoError> {
        if !verify_signature(msg_signature, &[token, timestamp, nonce, encrypt_b64]) {
            return Err(CryptoError::BadSignature);
        }
        self.decrypt(encrypt_b64)
    }

    /// Encrypts a reply (or any message) with 16 random bytes from the OS RNG.
    ///
    /// # Panics
    /// If `msg` is 4 GiB or longer (its length does not fit the 32-bit length field).
    pub fn encrypt(&self, msg: &str) -> String {
        let mut random = [0u8; RANDOM_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        self.encrypt_with_random(msg, &random)
    }

    /// Encrypts with a caller-chosen 16-byte random prefix (deterministic; for tests and vectors).
    ///
    /// # Panics
    /// If `msg` is 4 GiB or longer (its length does not fit the 32-bit length field).
    pub fn encrypt_with_random(&self, msg: &str, random: &[u8; 16]) -> String {
        let msg_len = u32::try_from(msg.len()).expect("message length must fit in 32 bits");
        let unpadded = HEADER_LEN + msg.len() + self.appid.len();
        let pad = PAD_MULTIPLE - unpadded % PAD_MULTIPLE; // 1..=32
        let mut buf = Vec::with_capacity(unpadded + pad);
        buf.extend_from_slice(random);
        buf.extend_from_slice(&msg_len.to_be_bytes());
        buf.extend_from_slice(msg.as_bytes());
        buf.extend_from_slice(self.appid.as_bytes());
        // `pad` is at most 32, so the cast is lossless.
        buf.resize(unpadded + pad, pad as u8);
        let mut enc = Aes256CbcEnc::new(&self.key.into(), &self.iv().into());
        for chunk in buf.chunks_exact_mut(AES_BLOCK) {
            enc.encrypt_block_mut(aes::Block::from_mut_slice(chunk));
        }
        STANDARD.encode(&buf)
    }
}

/// Strips WeChat's 1..=32-byte PKCS#7-style padding after checking every pad byte.
fn unpad(buf: &[u8]) -> Result<&[u8], CryptoError> {
    let Some(&last) = buf.last() else {
        return Err(CryptoError::BadPadding);
    };
    let pad = usize::from(last);
    if pad == 0 || pad > PAD_MULTIPLE || pad > buf.len() {
        return Err(CryptoError::BadPadding);
    }
    let (content, padding) = buf.split_at(buf.len() - pad);
    if padding.iter().any(|&b| b != last) {
        return Err(CryptoError::BadPadding);
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Official open-platform "消息推送" worked example (protocol notes §2, vector E).
    const E_TOKEN: &str = "AAAAA";
    const E_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const E_APPID: &str = "wx134c8103faa5a59e";
    const E_TIMESTAMP: &str = "1715943329";
    const E_NONCE: &str = "1590219412";
    const E_SIGNATURE: &str = "cc0c594499c1634947d5b502f158ee518947db27";
    const E_MSG_SIGNATURE: &str = "6c12a4205838198b8fa631b3220723bb07f1015c";
    const E_ENCRYPT: &str = "D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg==";
    /// The request's inner XML (as decrypted; same ids as the doc's plaintext-mode example).
    pub(super) const E_PLAINTEXT: &str = "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName>\n\
<FromUserName><![CDATA[o9AgO5Kd5ggOC-bXrbNODIiE3bGY]]></FromUserName>\n\
<CreateTime>1715943329</CreateTime>\n\
<MsgType><![CDATA[event]]></MsgType>\n\
<Event><![CDATA[debug_demo]]></Event>\n\
<debug_str><![CDATA[hello world]]></debug_str>\n\
</xml>";
    // The reply half of the example: random is 16 ASCII characters (FullStr 16+4+52+18 = 90 B).
    const E_REPLY_RANDOM: &[u8; 16] = b"999951349e8ee746";
    const E_REPLY_MSG: &str = "<xml><demo_resp>[CDATA[good luck]]</demo_resp></xml>";
    const E_REPLY_ENCRYPT: &str = "hE8R6mGXHkJJjU72KxzKUd1GEkKJaEZq7vRL8XgK3o+00k8JGq6+pZJUIlTSyhsX+bxIBQ72g3GyvDdIZcr6+3HAZbSvPT9t/o11MI7d6WELwqrGd7jMnV0zv3Zc9Nq7";
    const E_REPLY_TIMESTAMP: &str = "1713424427";
    const E_REPLY_NONCE: &str = "415670741";
    const E_REPLY_MSG_SIGNATURE: &str = "03e0812039325c2712ef5f0f980fd14c70d6e307";

    fn e_crypt() -> MsgCrypt {
        MsgCrypt::new(E_KEY, E_APPID).unwrap()
    }

    /// Decrypts without the appid/utf-8 checks, to look at the raw plaintext layout.
    fn raw_plaintext(crypt: &MsgCrypt, encrypt: &str) -> Vec<u8> {
        let mut buf = STANDARD.decode(encrypt).unwrap();
        let mut dec = Aes256CbcDec::new(&crypt.key.into(), &crypt.iv().into());
        for chunk in buf.chunks_exact_mut(AES_BLOCK) {
            dec.decrypt_block_mut(aes::Block::from_mut_slice(chunk));
        }
        buf
    }

    #[test]
    fn e_url_signature() {
        assert_eq!(signature(&[E_TOKEN, E_TIMESTAMP, E_NONCE]), E_SIGNATURE);
        assert!(verify_signature(E_SIGNATURE, &[E_TOKEN, E_TIMESTAMP, E_NONCE]));
        // Order of parts is irrelevant.
        assert!(verify_signature(E_SIGNATURE, &[E_NONCE, E_TOKEN, E_TIMESTAMP]));
    }

    #[test]
    fn e_request_msg_signature() {
        assert_eq!(signature(&[E_TOKEN, E_TIMESTAMP, E_NONCE, E_ENCRYPT]), E_MSG_SIGNATURE);
        assert!(verify_signature(E_MSG_SIGNATURE, &[E_TOKEN, E_TIMESTAMP, E_NONCE, E_ENCRYPT]));
    }

    #[test]
    fn e_decrypt_request() {
        let crypt = e_crypt();
        let raw = raw_plaintext(&crypt, E_ENCRYPT);
        assert_eq!(raw.len(), 352);
        let content = unpad(&raw).unwrap();
        assert_eq!(content.len(), 330, "FullStr length");
        assert_eq!(&content[..16], b"1205899eaf019bbd");
        assert_eq!(u32::from_be_bytes(content[16..20].try_into().unwrap()), 292);
        assert!(content.ends_with(E_APPID.as_bytes()));

        let xml = crypt.decrypt(E_ENCRYPT).unwrap();
        assert_eq!(xml.len(), 292);
        assert_eq!(xml, E_PLAINTEXT);

        let via_verified = crypt.decrypt_verified(E_TOKEN, E_TIMESTAMP, E_NONCE, E_MSG_SIGNATURE, E_ENCRYPT).unwrap();
        assert_eq!(via_verified, xml);
        assert_eq!(
            crypt.decrypt_verified(E_TOKEN, E_TIMESTAMP, "1", E_MSG_SIGNATURE, E_ENCRYPT),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn e_encrypt_reply_exact() {
        let crypt = e_crypt();
        assert_eq!(E_REPLY_MSG.len(), 52);
        let encrypt = crypt.encrypt_with_random(E_REPLY_MSG, E_REPLY_RANDOM);
        assert_eq!(STANDARD.decode(&encrypt).unwrap().len(), 96);
        assert_eq!(encrypt, E_REPLY_ENCRYPT);
        assert_eq!(crypt.decrypt(&encrypt).unwrap(), E_REPLY_MSG);
        assert_eq!(signature(&[E_TOKEN, E_REPLY_TIMESTAMP, E_REPLY_NONCE, &encrypt]), E_REPLY_MSG_SIGNATURE);
    }

    #[test]
    fn verify_signature_accepts_uppercase_and_rejects_others() {
        let parts = [E_TOKEN, E_TIMESTAMP, E_NONCE];
        assert!(verify_signature(&E_SIGNATURE.to_ascii_uppercase(), &parts));
        assert!(!verify_signature("", &parts));
        assert!(!verify_signature(&E_SIGNATURE[..39], &parts));
        assert!(!verify_signature(&format!("{E_SIGNATURE}0"), &parts));
        let mut flipped = E_SIGNATURE.to_owned();
        flipped.replace_range(0..1, "d");
        assert!(!verify_signature(&flipped, &parts));
        // Non-hex characters never match, even case-folded.
        let weird = E_SIGNATURE.replace('c', "C").replace('0', "O");
        assert!(!verify_signature(&weird, &parts));
    }

    #[test]
    fn new_validates_key_and_appid() {
        assert_eq!(MsgCrypt::new("short", E_APPID).unwrap_err(), CryptoError::BadKey);
        assert_eq!(MsgCrypt::new(&format!("{E_KEY}A"), E_APPID).unwrap_err(), CryptoError::BadKey);
        let bad_char = format!("{}!", &E_KEY[..42]);
        assert_eq!(MsgCrypt::new(&bad_char, E_APPID).unwrap_err(), CryptoError::BadKey);
        // 43 chars but multibyte: byte length differs.
        assert!(MsgCrypt::new(&"é".repeat(43), E_APPID).is_err());
        assert_eq!(MsgCrypt::new(E_KEY, "").unwrap_err(), CryptoError::EmptyAppId);
        // Non-zero discarded trailing bits (as in some WeChat-generated keys) are accepted.
        let trailing = format!("{}B", &E_KEY[..42]);
        let crypt = MsgCrypt::new(&trailing, E_APPID).unwrap();
        assert_eq!(crypt.key, [0u8; 32]);
        assert_eq!(crypt.appid(), E_APPID);
    }

    #[test]
    fn debug_hides_key() {
        let crypt = MsgCrypt::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", E_APPID).unwrap();
        let shown = format!("{crypt:?}");
        assert!(shown.contains(E_APPID));
        assert!(shown.contains("redacted"));
        assert!(!shown.contains("105, 183")); // no byte list
        assert!(!shown.contains('['));
    }

    #[test]
    fn decrypt_rejects_bad_inputs() {
        let crypt = e_crypt();
        assert_eq!(crypt.decrypt("not base64!"), Err(CryptoError::Base64));
        assert_eq!(crypt.decrypt(""), Err(CryptoError::BadLength));
        assert_eq!(crypt.decrypt(&STANDARD.encode([0u8; 15])), Err(CryptoError::BadLength));
        let other = MsgCrypt::new(E_KEY, "wx0000000000000000").unwrap();
        assert_eq!(other.decrypt(E_ENCRYPT), Err(CryptoError::AppIdMismatch));
        // Surrounding whitespace (pretty-printed XML) is tolerated.
        assert!(crypt.decrypt(&format!("\n  {E_ENCRYPT}\n")).is_ok());
    }

    /// Encrypts an arbitrary raw plaintext (already padded by the caller) with the E key.
    fn encrypt_raw(crypt: &MsgCrypt, plain: &[u8]) -> String {
        let mut buf = plain.to_vec();
        let mut enc = Aes256CbcEnc::new(&crypt.key.into(), &crypt.iv().into());
        for chunk in buf.chunks_exact_mut(AES_BLOCK) {
            enc.encrypt_block_mut(aes::Block::from_mut_slice(chunk));
        }
        STANDARD.encode(buf)
    }

    #[test]
    fn padding_rules() {
        let crypt = e_crypt();
        // Valid 32-byte pad (a full extra block pair when the content is aligned).
        let mut plain = vec![0u8; 16];
        plain.extend_from_slice(&2u32.to_be_bytes());
        plain.extend_from_slice(b"hi");
        plain.extend_from_slice(b"0123456789"); // appid of 10 bytes → 32 bytes, aligned
        let appid_crypt = MsgCrypt::new(E_KEY, "0123456789").unwrap();
        plain.extend_from_slice(&[32u8; 32]);
        assert_eq!(appid_crypt.decrypt(&encrypt_raw(&crypt, &plain)).unwrap(), "hi");
        // The encoder adds a full 32-byte pad when aligned.
        let enc = appid_crypt.encrypt_with_random("hi", &[0u8; 16]);
        assert_eq!(STANDARD.decode(enc).unwrap().len(), 64);

        // Pad value 0, 33, inconsistent pad bytes: rejected.
        for tail in [vec![0u8; 32], vec![33u8; 32]] {
            let mut p = plain[..32].to_vec();
            p.extend_from_slice(&tail);
            assert_eq!(appid_crypt.decrypt(&encrypt_raw(&crypt, &p)), Err(CryptoError::BadPadding));
        }
        let mut p = plain[..32].to_vec();
        let mut tail = [32u8; 32];
        tail[0] = 31;
        p.extend_from_slice(&tail);
        assert_eq!(appid_crypt.decrypt(&encrypt_raw(&crypt, &p)), Err(CryptoError::BadPadding));
        // A pad longer than the whole buffer.
        assert_eq!(appid_crypt.decrypt(&encrypt_raw(&crypt, &[17u8; 16])), Err(CryptoError::BadPadding));
    }

    #[test]
    fn length_field_is_bounded() {
        let crypt = e_crypt();
        let appid_crypt = MsgCrypt::new(E_KEY, "0123456789").unwrap();
        // Content shorter than the 20-byte header.
        let mut p = vec![0u8; 16];
        p.extend_from_slice(&[16u8; 16]);
        assert_eq!(appid_crypt.decrypt(&encrypt_raw(&crypt, &p)), Err(CryptoError::BadLength));
        // Length field larger than what follows, including u32::MAX.
        for len in [3u32, 100, u32::MAX] {
            let mut p = vec![0u8; 16];
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(b"hi0123456789");
            p.extend_from_slice(&[32u8; 32]);
            let r = appid_crypt.decrypt(&encrypt_raw(&crypt, &p));
            if len == 3 {
                // Consumes one appid byte → trailing appid no longer matches.
                assert_eq!(r, Err(CryptoError::AppIdMismatch));
            } else {
                assert_eq!(r, Err(CryptoError::BadLength));
            }
        }
        // Non-UTF-8 message.
        let mut p = vec![0u8; 16];
        p.extend_from_slice(&2u32.to_be_bytes());
        p.extend_from_slice(&[0xff, 0xfe]);
        p.extend_from_slice(b"0123456789");
        p.extend_from_slice(&[32u8; 32]);
        assert_eq!(appid_crypt.decrypt(&encrypt_raw(&crypt, &p)), Err(CryptoError::NotUtf8));
    }

    #[test]
    fn encrypt_uses_fresh_randomness() {
        let crypt = e_crypt();
        let a = crypt.encrypt("same");
        let b = crypt.encrypt("same");
        assert_ne!(a, b);
        assert_eq!(crypt.decrypt(&a).unwrap(), "same");
        assert_eq!(crypt.decrypt(&b).unwrap(), "same");
    }

    fn arb_key() -> impl Strategy<Value = String> {
        // 32 random bytes → 43-char EncodingAESKey (standard base64 without the final '=').
        proptest::array::uniform32(any::<u8>()).prop_map(|k| {
            let s = STANDARD.encode(k);
            s.trim_end_matches('=').to_owned()
        })
    }

    #[test]
    fn the_window_holds_at_every_edge_of_i64() {
        let now = 1_794_844_740;
        for at in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX, i64::MAX - 1, now - 301, now + 301] {
            assert!(!within_window(now, at, 300), "{at}");
        }
        for at in [now - 300, now, now + 300] {
            assert!(within_window(now, at, 300), "{at}");
        }
        assert!(within_window(i64::MIN, i64::MIN, 0) && within_window(i64::MAX, i64::MAX, 0));
        assert!(within_window(0, i64::MIN + 1, u64::MAX) && !within_window(1, i64::MIN, u64::MAX));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn the_window_is_the_exact_distance_and_never_overflows(now in any::<i64>(), at in any::<i64>(), w in any::<u64>()) {
            let exact = (i128::from(now) - i128::from(at)).unsigned_abs();
            let fits = i128::from(now) - i128::from(at) >= i128::from(i64::MIN)
                && i128::from(now) - i128::from(at) <= i128::from(i64::MAX);
            prop_assert_eq!(within_window(now, at, w), fits && exact <= u128::from(w));
        }

        #[test]
        fn roundtrip(key in arb_key(), appid in "\\PC{1,40}", msg in any::<String>(), random in any::<[u8; 16]>()) {
            let crypt = MsgCrypt::new(&key, &appid).unwrap();
            let enc = crypt.encrypt_with_random(&msg, &random);
            let raw = STANDARD.decode(&enc).unwrap();
            prop_assert_eq!(raw.len() % PAD_MULTIPLE, 0);
            prop_assert_eq!(crypt.decrypt(&enc).unwrap(), msg);
        }

        #[test]
        fn decrypt_never_panics_on_strings(s in any::<String>()) {
            let _ = e_crypt().decrypt(&s);
        }

        #[test]
        fn decrypt_never_panics_on_ciphertext(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = e_crypt().decrypt(&STANDARD.encode(&bytes));
        }

        #[test]
        fn decrypt_never_panics_on_block_aligned(blocks in 1usize..8, seed in any::<[u8; 16]>()) {
            let bytes: Vec<u8> = (0..blocks * 16).map(|i| seed[i % 16].wrapping_add(i as u8)).collect();
            let _ = e_crypt().decrypt(&STANDARD.encode(&bytes));
        }

        /// Flipping bits anywhere in the ciphertext never yields a message "from" another appid:
        /// it either fails or (rarely) still checks our appid.
        #[test]
        fn tampering_never_switches_appid(msg in "\\PC{0,80}", pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
            let crypt = e_crypt();
            let enc = crypt.encrypt_with_random(&msg, b"0123456789abcdef");
            let mut raw = STANDARD.decode(&enc).unwrap();
            let i = pos.index(raw.len());
            raw[i] ^= mask;
            let tampered = STANDARD.encode(&raw);
            match crypt.decrypt(&tampered) {
                Ok(_) => {
                    // Only possible when the appid and padding survived: check it really is ours.
                    let plain = raw_plaintext(&crypt, &tampered);
                    let content = unpad(&plain).unwrap();
                    prop_assert!(content.ends_with(E_APPID.as_bytes()));
                }
                Err(e) => prop_assert!(matches!(
                    e,
                    CryptoError::BadPadding | CryptoError::BadLength | CryptoError::AppIdMismatch | CryptoError::NotUtf8
                )),
            }
            // A second account never accepts it.
            let other = MsgCrypt::new(E_KEY, "wx0000000000000000").unwrap();
            prop_assert!(other.decrypt(&tampered).is_err());
        }
    }
}
