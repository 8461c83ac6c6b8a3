//! The cryptography of WeChat Pay v3 (and the RSA part of v2's bank payouts): RSA key loading from
//! PEM, SHA256withRSA (PKCS#1 v1.5) signatures, RSA-OAEP (SHA-1, MGF1-SHA-1) for sensitive fields,
//! and AES-GCM for notification resources.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

/// GCM nonce length WeChat uses (and the only one the AEAD types here accept).
pub const GCM_NONCE_LEN: usize = 12;
/// GCM tag length, appended to the ciphertext.
pub const GCM_TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("not a PEM RSA private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`)")]
    PrivateKeyPem,
    #[error("not a PEM RSA public key (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`)")]
    PublicKeyPem,
    #[error("RSA signing failed")]
    Sign,
    #[error("signature is not valid base64")]
    SignatureEncoding,
    #[error("signature does not verify")]
    BadSignature,
    #[error("RSA-OAEP encryption failed (plaintext too long for the key?)")]
    Encrypt,
    #[error("RSA-OAEP decryption failed")]
    Decrypt,
    #[error("AES-GCM key must be 16 or 32 bytes, got {0}")]
    AesKeyLength(usize),
    #[error("AES-GCM nonce must be {GCM_NONCE_LEN} bytes, got {0}")]
    NonceLength(usize),
    #[error("ciphertext is not valid base64")]
    CiphertextEncoding,
    #[error("AES-GCM authentication failed (wrong key, nonce, associated data or tampered ciphertext)")]
    Aead,
}

/// Loads an RSA private key from PEM, PKCS#8 (what the merchant portal's tool writes as
/// `apiclient_key.pem`) or PKCS#1 (what older `openssl genrsa` writes).
pub fn load_private_key_pem(pem: &str) -> Result<RsaPrivateKey, CryptoError> {
    let pem = pem.trim();
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| CryptoError::PrivateKeyPem)
}

/// Loads an RSA public key from PEM: SPKI (the WeChat Pay public key `pub_key.pem`) or PKCS#1
/// (v2 `getpublickey` answers).
pub fn load_public_key_pem(pem: &str) -> Result<RsaPublicKey, CryptoError> {
    let pem = pem.trim();
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|_| CryptoError::PublicKeyPem)
}

/// SHA256withRSA (PKCS#1 v1.5) over `message`, standard base64. Deterministic.
pub fn sign_sha256_rsa(key: &SigningKey<Sha256>, message: &[u8]) -> Result<String, CryptoError> {
    let signature = key.try_sign(message).map_err(|_| CryptoError::Sign)?;
    Ok(STANDARD.encode(signature.to_bytes()))
}

/// Checks a base64 SHA256withRSA signature. Never panics on malformed input: a wrong length or a
/// non-base64 string (such as a `WECHATPAY/SIGNTEST/` probe) simply fails.
pub fn verify_sha256_rsa(key: &VerifyingKey<Sha256>, message: &[u8], signature_b64: &str) -> Result<(), CryptoError> {
    let raw = STANDARD.decode(signature_b64.trim()).map_err(|_| CryptoError::SignatureEncoding)?;
    let signature = Signature::try_from(raw.as_slice()).map_err(|_| CryptoError::BadSignature)?;
    key.verify(message, &signature).map_err(|_| CryptoError::BadSignature)
}

/// RSAES-OAEP with SHA-1 and MGF1-SHA-1, base64: how WeChat Pay wants sensitive fields (a payee's
/// real name) encrypted with its public key.
pub fn oaep_encrypt(key: &RsaPublicKey, plaintext: &[u8]) -> Result<String, CryptoError> {
    let ciphertext =
        key.encrypt(&mut rand::thread_rng(), Oaep::new::<sha1::Sha1>(), plaintext).map_err(|_| CryptoError::Encrypt)?;
    Ok(STANDARD.encode(ciphertext))
}

/// The inverse of [`oaep_encrypt`]; WeChat Pay does this on its side, we need it for tests and mocks.
pub fn oaep_decrypt(key: &RsaPrivateKey, ciphertext_b64: &str) -> Result<Vec<u8>, CryptoError> {
    let raw = STANDARD.decode(ciphertext_b64.trim()).map_err(|_| CryptoError::CiphertextEncoding)?;
    key.decrypt(Oaep::new::<sha1::Sha1>(), &raw).map_err(|_| CryptoError::Decrypt)
}

/// AES-GCM decryption of `ciphertext ‖ tag`, with AES-128 or AES-256 chosen by the key length.
/// Production notifications use a 32-byte APIv3 key (see `v3::decrypt_resource`, which insists on
/// it); AES-128 is accepted here because the SDKs' published vector uses a 16-byte key.
pub fn aes_gcm_decrypt(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if nonce.len() != GCM_NONCE_LEN {
        return Err(CryptoError::NonceLength(nonce.len()));
    }
    let nonce = Nonce::from_slice(nonce);
    let payload = Payload { msg: ciphertext_and_tag, aad };
    match key.len() {
        16 => Aes128Gcm::new_from_slice(key).map_err(|_| CryptoError::AesKeyLength(key.len()))?.decrypt(nonce, payload),
        32 => Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::AesKeyLength(key.len()))?.decrypt(nonce, payload),
        other => return Err(CryptoError::AesKeyLength(other)),
    }
    .map_err(|_| CryptoError::Aead)
}

/// AES-GCM encryption producing `ciphertext ‖ tag`, for tests and mocks that play WeChat.
pub fn aes_gcm_encrypt(key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if nonce.len() != GCM_NONCE_LEN {
        return Err(CryptoError::NonceLength(nonce.len()));
    }
    let nonce = Nonce::from_slice(nonce);
    let payload = Payload { msg: plaintext, aad };
    match key.len() {
        16 => Aes128Gcm::new_from_slice(key).map_err(|_| CryptoError::AesKeyLength(key.len()))?.encrypt(nonce, payload),
        32 => Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::AesKeyLength(key.len()))?.encrypt(nonce, payload),
        other => return Err(CryptoError::AesKeyLength(other)),
    }
    .map_err(|_| CryptoError::Aead)
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! Test-only keys from `testdata/` (see its README).
    pub const MERCHANT_KEY_PKCS8: &str = include_str!("testdata/merchant_key_pkcs8.pem");
    pub const MERCHANT_KEY_PKCS1: &str = include_str!("testdata/merchant_key_pkcs1.pem");
    pub const MERCHANT_PUB: &str = include_str!("testdata/merchant_pub.pem");
    pub const WECHATPAY_KEY: &str = include_str!("testdata/wechatpay_key.pem");
    pub const WECHATPAY_PUB: &str = include_str!("testdata/wechatpay_pub.pem");
    pub const WECHATPAY_PUB_PKCS1: &str = include_str!("testdata/wechatpay_pub_pkcs1.pem");
    /// Two self-signed stand-ins for WeChat Pay platform certificates and their keys.
    pub const PLATFORM_CERT_A: &str = include_str!("testdata/platform_cert_a.pem");
    pub const PLATFORM_KEY_A: &str = include_str!("testdata/platform_key_a.pem");
    pub const PLATFORM_SERIAL_A: &str = "1D5F0A3C2B7E4D6F8A9B0C1D2E3F4A5B6C7D8E9F";
    pub const PLATFORM_CERT_B: &str = include_str!("testdata/platform_cert_b.pem");
    pub const PLATFORM_KEY_B: &str = include_str!("testdata/platform_key_b.pem");
    pub const PLATFORM_SERIAL_B: &str = "2E6A1B4D3C8F5E7A9B0C1D2E3F4A5B6C7D8E9FA0";
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::*;

    #[test]
    fn loads_both_private_key_forms_as_the_same_key() {
        let pkcs8 = load_private_key_pem(MERCHANT_KEY_PKCS8).unwrap();
        let pkcs1 = load_private_key_pem(MERCHANT_KEY_PKCS1).unwrap();
        assert_eq!(pkcs8, pkcs1);
        assert_eq!(pkcs8.to_public_key(), load_public_key_pem(MERCHANT_PUB).unwrap());
        assert!(load_private_key_pem("not a key").is_err());
        assert!(load_private_key_pem(MERCHANT_PUB).is_err());
    }

    #[test]
    fn loads_both_public_key_forms() {
        assert_eq!(load_public_key_pem(WECHATPAY_PUB).unwrap(), load_public_key_pem(WECHATPAY_PUB_PKCS1).unwrap());
        assert!(load_public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err());
    }

    #[test]
    fn sha256_rsa_sign_then_verify() {
        let private = load_private_key_pem(MERCHANT_KEY_PKCS8).unwrap();
        let signer = SigningKey::<Sha256>::new(private);
        let verifier = VerifyingKey::<Sha256>::new(load_public_key_pem(MERCHANT_PUB).unwrap());
        let signature = sign_sha256_rsa(&signer, b"source").unwrap();
        assert_eq!(STANDARD.decode(&signature).unwrap().len(), 256);
        verify_sha256_rsa(&verifier, b"source", &signature).unwrap();
        assert!(matches!(verify_sha256_rsa(&verifier, b"sourcE", &signature), Err(CryptoError::BadSignature)));
        assert!(verify_sha256_rsa(&verifier, b"source", "WECHATPAY/SIGNTEST/abc").is_err());
        assert!(verify_sha256_rsa(&verifier, b"source", "").is_err());
    }

    /// wechatpay-go `utils/aes_test.go` (protocols §7): a 16-byte key, so AES-128-GCM.
    #[test]
    fn wechatpay_go_aes_gcm_vector_decrypts_to_hello_world() {
        let ciphertext = STANDARD.decode("FsdXzxryWfKwvLJKf8LG/ToRPTRh8RN9wROC").unwrap();
        let plaintext =
            aes_gcm_decrypt(b"testAPIv3Key0000", b"wCq51qZv4Yfg", b"Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8", &ciphertext)
                .unwrap();
        assert_eq!(plaintext, b"Hello World");
        // Any change to the associated data or ciphertext fails authentication.
        assert!(aes_gcm_decrypt(b"testAPIv3Key0000", b"wCq51qZv4Yfg", b"", &ciphertext).is_err());
        let mut tampered = ciphertext.clone();
        tampered[0] ^= 1;
        assert!(aes_gcm_decrypt(b"testAPIv3Key0000", b"wCq51qZv4Yfg", b"Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8", &tampered)
            .is_err());
    }

    #[test]
    fn aes_gcm_rejects_bad_lengths() {
        assert!(matches!(aes_gcm_decrypt(&[0; 24], &[0; 12], b"", &[0; 20]), Err(CryptoError::AesKeyLength(24))));
        assert!(matches!(aes_gcm_decrypt(&[0; 32], &[0; 8], b"", &[0; 20]), Err(CryptoError::NonceLength(8))));
        assert!(matches!(aes_gcm_decrypt(&[0; 32], &[0; 12], b"", &[0; 3]), Err(CryptoError::Aead)));
    }

    #[test]
    fn oaep_round_trip() {
        let public = load_public_key_pem(WECHATPAY_PUB).unwrap();
        let private = load_private_key_pem(WECHATPAY_KEY).unwrap();
        let ciphertext = oaep_encrypt(&public, "张三".as_bytes()).unwrap();
        assert_ne!(ciphertext, oaep_encrypt(&public, "张三".as_bytes()).unwrap(), "OAEP is randomised");
        assert_eq!(oaep_decrypt(&private, &ciphertext).unwrap(), "张三".as_bytes());
        assert!(oaep_decrypt(&load_private_key_pem(MERCHANT_KEY_PKCS8).unwrap(), &ciphertext).is_err());
    }
}
