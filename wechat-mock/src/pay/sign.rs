//! WeChat Pay's signatures, written independently: v2 MD5 / HMAC-SHA256 over sorted parameters,
//! v3 SHA256withRSA over the request (merchant → WeChat) or the answer (WeChat → merchant), and
//! the AES-256-GCM of v3 notification resources. Public so tests and tools can act as the merchant.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use rand::{distributions::Alphanumeric, Rng};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

/// The v2 signature algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignType {
    /// `MD5` (the default, and the only one the red-packet and transfer APIs take).
    Md5,
    /// `HMAC-SHA256`.
    HmacSha256,
}

/// The v2 string to sign: every non-empty parameter except `sign`, sorted by name (byte order),
/// `k=v` joined with `&`, then `&key=` and the API key.
pub fn v2_string_to_sign<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>, api_key: &str) -> String {
    let sorted: BTreeMap<&str, &str> =
        params.into_iter().filter(|(name, value)| *name != "sign" && !value.is_empty()).collect();
    let mut out = String::new();
    for (name, value) in sorted {
        out.push_str(name);
        out.push('=');
        out.push_str(value);
        out.push('&');
    }
    out.push_str("key=");
    out.push_str(api_key);
    out
}

/// The v2 `sign` of `params` (upper-case hex).
pub fn v2_sign<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>, api_key: &str, sign_type: SignType) -> String {
    let text = v2_string_to_sign(params, api_key);
    match sign_type {
        SignType::Md5 => hex::encode_upper(Md5::digest(text.as_bytes())),
        SignType::HmacSha256 => {
            // HMAC accepts keys of any length, so this cannot fail.
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(api_key.as_bytes()).expect("any key length");
            mac.update(text.as_bytes());
            hex::encode_upper(mac.finalize().into_bytes())
        }
    }
}

/// The message a v3 request is signed over: `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`, URL being the
/// path and query as sent.
pub fn v3_request_message(method: &str, url: &str, timestamp: &str, nonce: &str, body: &str) -> String {
    format!("{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n")
}

/// The message a v3 answer or notification is signed over: `TIMESTAMP\nNONCE\nBODY\n`.
pub fn v3_response_message(timestamp: &str, nonce: &str, body: &str) -> String {
    format!("{timestamp}\n{nonce}\n{body}\n")
}

/// Why a key or signature could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
pub fn private_key(pem: &str) -> Result<RsaPrivateKey, KeyError> {
    RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| KeyError(format!("bad private key: {e}")))
}

/// Reads an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`).
pub fn public_key(pem: &str) -> Result<RsaPublicKey, KeyError> {
    RsaPublicKey::from_public_key_pem(pem).map_err(|e| KeyError(format!("bad public key: {e}")))
}

/// SHA256withRSA (PKCS#1 v1.5) of `message`, base64.
pub fn rsa_sign(key: &RsaPrivateKey, message: &str) -> String {
    let signature = SigningKey::<Sha256>::new(key.clone()).sign(message.as_bytes());
    B64.encode(signature.to_bytes())
}

/// Whether `signature_b64` is a SHA256withRSA signature of `message` by `key`.
pub fn rsa_verify(key: &RsaPublicKey, message: &str, signature_b64: &str) -> bool {
    let Ok(bytes) = B64.decode(signature_b64.trim()) else { return false };
    let Ok(signature) = Signature::try_from(bytes.as_slice()) else { return false };
    VerifyingKey::<Sha256>::new(key.clone()).verify(message.as_bytes(), &signature).is_ok()
}

/// A random string of letters and digits, as nonces are.
pub fn nonce(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// Signs v3 requests as a merchant: builds `Authorization` headers.
#[derive(Clone)]
pub struct MerchantSigner {
    /// `mchid` in the header.
    pub mch_id: String,
    /// `serial_no` in the header.
    pub serial_no: String,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for MerchantSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerchantSigner").field("mch_id", &self.mch_id).field("serial_no", &self.serial_no).finish()
    }
}

impl MerchantSigner {
    /// A signer with the given identity and PKCS#8 PEM private key.
    pub fn new(mch_id: &str, serial_no: &str, private_key_pem: &str) -> Result<Self, KeyError> {
        Ok(Self { mch_id: mch_id.to_owned(), serial_no: serial_no.to_owned(), key: private_key(private_key_pem)? })
    }

    /// The default merchant of the mock ([`crate::pay::MCH_ID`], its serial and embedded key).
    pub fn default_merchant() -> Self {
        Self::new(
            crate::pay::config::MCH_ID,
            crate::pay::config::MERCHANT_CERT_SERIAL,
            crate::pay::config::MERCHANT_PRIVATE_KEY_PEM,
        )
        .expect("the embedded merchant key parses")
    }

    /// The second test merchant of the mock ([`crate::pay::SECOND_MCH_ID`], its serial and
    /// embedded key).
    pub fn second_merchant() -> Self {
        Self::new(
            crate::pay::config::SECOND_MCH_ID,
            crate::pay::config::SECOND_MERCHANT_CERT_SERIAL,
            crate::pay::config::SECOND_MERCHANT_PRIVATE_KEY_PEM,
        )
        .expect("the embedded second merchant key parses")
    }

    /// The signature (base64) of one request.
    pub fn signature(&self, method: &str, url: &str, timestamp: i64, nonce: &str, body: &str) -> String {
        rsa_sign(&self.key, &v3_request_message(method, url, &timestamp.to_string(), nonce, body))
    }

    /// The full `Authorization` header value for a request with a fresh nonce.
    pub fn authorization(&self, method: &str, url: &str, timestamp: i64, body: &str) -> String {
        let nonce = nonce(32);
        let signature = self.signature(method, url, timestamp, &nonce, body);
        format!(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"{}\",nonce_str=\"{nonce}\",timestamp=\"{timestamp}\",serial_no=\"{}\",signature=\"{signature}\"",
            self.mch_id, self.serial_no
        )
    }
}

/// The parts of a v3 `Authorization` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorization {
    /// `mchid`.
    pub mch_id: String,
    /// `nonce_str`.
    pub nonce_str: String,
    /// `timestamp`.
    pub timestamp: String,
    /// `serial_no`.
    pub serial_no: String,
    /// `signature`.
    pub signature: String,
}

/// Parses `WECHATPAY2-SHA256-RSA2048 k="v",…` (parameters in any order); `None` if the scheme is
/// wrong or a parameter is missing.
pub fn parse_authorization(header: &str) -> Option<Authorization> {
    let rest = header.trim().strip_prefix("WECHATPAY2-SHA256-RSA2048")?;
    if !rest.starts_with(' ') {
        return None;
    }
    let mut auth = Authorization::default();
    let (mut mch, mut non, mut ts, mut ser, mut sig) = (false, false, false, false, false);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        let value = value.trim().strip_prefix('"')?.strip_suffix('"')?.to_owned();
        match name.trim() {
            "mchid" => (auth.mch_id, mch) = (value, true),
            "nonce_str" => (auth.nonce_str, non) = (value, true),
            "timestamp" => (auth.timestamp, ts) = (value, true),
            "serial_no" => (auth.serial_no, ser) = (value, true),
            "signature" => (auth.signature, sig) = (value, true),
            _ => {}
        }
    }
    (mch && non && ts && ser && sig).then_some(auth)
}

/// AEAD_AES_256_GCM encryption as in v3 notifications: base64(ciphertext ‖ tag).
pub fn aes_gcm_encrypt(
    api_v3_key: &str,
    nonce: &str,
    associated_data: &str,
    plaintext: &str,
) -> Result<String, KeyError> {
    let cipher =
        Aes256Gcm::new_from_slice(api_v3_key.as_bytes()).map_err(|_| KeyError("APIv3 key must be 32 bytes".into()))?;
    if nonce.len() != 12 {
        return Err(KeyError("nonce must be 12 bytes".into()));
    }
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(nonce.as_bytes()),
            Payload { msg: plaintext.as_bytes(), aad: associated_data.as_bytes() },
        )
        .map_err(|_| KeyError("encryption failed".into()))?;
    Ok(B64.encode(sealed))
}

/// Decrypts a v3 notification resource (what the merchant does).
pub fn aes_gcm_decrypt(
    api_v3_key: &str,
    nonce: &str,
    associated_data: &str,
    ciphertext_b64: &str,
) -> Result<String, KeyError> {
    let cipher =
        Aes256Gcm::new_from_slice(api_v3_key.as_bytes()).map_err(|_| KeyError("APIv3 key must be 32 bytes".into()))?;
    if nonce.len() != 12 {
        return Err(KeyError("nonce must be 12 bytes".into()));
    }
    let sealed = B64.decode(ciphertext_b64).map_err(|_| KeyError("ciphertext is not base64".into()))?;
    let plain = cipher
        .decrypt(Nonce::from_slice(nonce.as_bytes()), Payload { msg: &sealed, aad: associated_data.as_bytes() })
        .map_err(|_| KeyError("decryption failed (key, nonce, associated data or tag)".into()))?;
    String::from_utf8(plain).map_err(|_| KeyError("plaintext is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wechat_v2_example_signature() {
        // pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=4_3 (protocols notes §6).
        let params = [
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("device_info", "1000"),
            ("body", "test"),
            ("nonce_str", "ibuaiVcKdpRxkhJA"),
            ("sign", "ignored"),
            ("empty", ""),
        ];
        let key = "192006250b4c09247ec02edce69f6a2d";
        assert_eq!(
            v2_string_to_sign(params, key),
            "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d"
        );
        assert_eq!(v2_sign(params, key, SignType::Md5), "9A0A8659F005D6984697E2CA0A9CF3B7");
        assert_eq!(v2_sign(params, key, SignType::HmacSha256).len(), 64);
    }

    #[test]
    fn aes_gcm_round_trip_and_tamper() {
        let key = crate::pay::config::API_V3_KEY;
        let ct = aes_gcm_encrypt(key, "0123456789ab", "transfer", "{\"a\":1}").unwrap();
        assert_eq!(aes_gcm_decrypt(key, "0123456789ab", "transfer", &ct).unwrap(), "{\"a\":1}");
        assert!(aes_gcm_decrypt(key, "0123456789ab", "other", &ct).is_err());
    }

    #[test]
    fn authorization_round_trip() {
        let signer = MerchantSigner::default_merchant();
        let header = signer.authorization("GET", "/v3/x?y=1", 1_700_000_000, "");
        let auth = parse_authorization(&header).unwrap();
        assert_eq!(auth.mch_id, crate::pay::config::MCH_ID);
        let key = public_key(crate::pay::config::MERCHANT_PUBLIC_KEY_PEM).unwrap();
        let msg = v3_request_message("GET", "/v3/x?y=1", &auth.timestamp, &auth.nonce_str, "");
        assert!(rsa_verify(&key, &msg, &auth.signature));
        assert!(!rsa_verify(&key, &msg.replace("y=1", "y=2"), &auth.signature));
        assert!(parse_authorization("Bearer x").is_none());
    }
}
