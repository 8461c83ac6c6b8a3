//! Reads the few fields of an X.509 certificate that linli needs from a WeChat Pay platform
//! certificate (平台证书): its serial number, its validity and its RSA public key.
//!
//! The issuer's signature is not checked here: a platform certificate is trusted because it
//! arrives sealed (AES-256-GCM) under the merchant's APIv3 key in a signed answer, not because of
//! its chain (see `v3::certificates`). Only DER structure is walked, with the `der` crate the RSA
//! key loading already uses.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use der::asn1::{GeneralizedTime, UtcTime};
use der::{Decode, Reader, SliceReader, Tag, TagNumber};
use rsa::pkcs8::DecodePublicKey;
use rsa::RsaPublicKey;

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// What a certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFields {
    /// The serial number in upper-case hex without leading zeros (how WeChat writes `serial_no`).
    pub serial_hex: String,
    /// `notBefore`, Unix seconds.
    pub not_before: i64,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
    pub public_key: RsaPublicKey,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum X509Error {
    #[error("not a PEM certificate (-----BEGIN CERTIFICATE-----)")]
    Pem,
    #[error("certificate is not valid DER: {0}")]
    Der(String),
    #[error("the certificate's key is not an RSA public key")]
    NotRsa,
}

impl From<der::Error> for X509Error {
    fn from(err: der::Error) -> Self {
        X509Error::Der(err.to_string())
    }
}

/// Reads the first certificate of a PEM text.
pub fn read_certificate_pem(pem: &str) -> Result<CertificateFields, X509Error> {
    let start = pem.find(PEM_BEGIN).ok_or(X509Error::Pem)? + PEM_BEGIN.len();
    let end = pem[start..].find(PEM_END).ok_or(X509Error::Pem)? + start;
    let base64: String = pem[start..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(base64).map_err(|_| X509Error::Pem)?;
    read_certificate_der(&der)
}

/// Reads a DER certificate: `SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`,
/// with `tbsCertificate = SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
/// validity, subject, subjectPublicKeyInfo, … }` (RFC 5280 §4.1).
pub fn read_certificate_der(der: &[u8]) -> Result<CertificateFields, X509Error> {
    let mut reader = SliceReader::new(der)?;
    let (serial, not_before, not_after, spki) = reader.sequence(|certificate| {
        let fields = certificate.sequence(|tbs| {
            let version = Tag::ContextSpecific { constructed: true, number: TagNumber::N0 };
            if tbs.peek_tag()? == version {
                tbs.tlv_bytes()?;
            }
            let serial = der::asn1::AnyRef::decode(tbs)?;
            der::Tagged::tag(&serial).assert_eq(Tag::Integer)?;
            tbs.tlv_bytes()?; // signature algorithm
            tbs.tlv_bytes()?; // issuer
            let (not_before, not_after) = tbs.sequence(|validity| Ok((read_time(validity)?, read_time(validity)?)))?;
            tbs.tlv_bytes()?; // subject
            let spki = tbs.tlv_bytes()?;
            // issuerUniqueID, subjectUniqueID, extensions: not needed.
            while !tbs.is_finished() {
                tbs.tlv_bytes()?;
            }
            Ok((serial.value(), not_before, not_after, spki))
        })?;
        certificate.tlv_bytes()?; // signature algorithm
        certificate.tlv_bytes()?; // signature value
        Ok(fields)
    })?;
    reader.finish(())?;
    let public_key = RsaPublicKey::from_public_key_der(spki).map_err(|_| X509Error::NotRsa)?;
    let significant =
        serial.iter().position(|b| *b != 0).map_or(&serial[serial.len().saturating_sub(1)..], |i| &serial[i..]);
    Ok(CertificateFields { serial_hex: hex::encode_upper(significant), not_before, not_after, public_key })
}

/// `Time ::= CHOICE { utcTime UTCTime, generalTime GeneralizedTime }` as Unix seconds.
fn read_time<'a, R: Reader<'a>>(reader: &mut R) -> der::Result<i64> {
    let since_epoch = match reader.peek_tag()? {
        Tag::UtcTime => UtcTime::decode(reader)?.to_unix_duration(),
        Tag::GeneralizedTime => GeneralizedTime::decode(reader)?.to_unix_duration(),
        other => return Err(other.unexpected_error(Some(Tag::UtcTime))),
    };
    Ok(i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX))
}

/// Whether two hex serial numbers are the same number (case and leading zeros aside).
pub fn same_serial(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_start_matches('0').to_ascii_uppercase();
    !a.trim().is_empty() && norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wechat::pay::crypto::test_keys::*;

    /// 2025-01-01T00:00:00Z and 2125-01-01T00:00:00Z: the first is a UTCTime, the second (after
    /// 2049) a GeneralizedTime, so both encodings are read.
    const JAN_2025: i64 = 1_735_689_600;
    const JAN_2125: i64 = 4_891_363_200;

    #[test]
    fn reads_serial_validity_and_key_of_a_platform_certificate() {
        let fields = read_certificate_pem(PLATFORM_CERT_A).unwrap();
        assert_eq!(fields.serial_hex, PLATFORM_SERIAL_A);
        assert_eq!(fields.not_before, JAN_2025);
        assert_eq!(fields.not_after, JAN_2125);
        let key = crate::wechat::pay::crypto::load_private_key_pem(PLATFORM_KEY_A).unwrap();
        assert_eq!(fields.public_key, key.to_public_key());
        let b = read_certificate_pem(PLATFORM_CERT_B).unwrap();
        assert_eq!(b.serial_hex, PLATFORM_SERIAL_B);
        assert_ne!(b.public_key, fields.public_key);
    }

    #[test]
    fn refuses_what_is_not_a_certificate() {
        assert_eq!(read_certificate_pem(WECHATPAY_PUB), Err(X509Error::Pem));
        assert_eq!(
            read_certificate_pem("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"),
            Err(X509Error::Pem)
        );
        let der = {
            let body: String = PLATFORM_CERT_A.lines().filter(|l| !l.starts_with("-----")).collect();
            STANDARD.decode(body).unwrap()
        };
        assert!(read_certificate_der(&der).is_ok());
        assert!(matches!(read_certificate_der(&der[..der.len() - 1]), Err(X509Error::Der(_))));
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(matches!(read_certificate_der(&trailing), Err(X509Error::Der(_))));
        assert!(matches!(read_certificate_der(b""), Err(X509Error::Der(_))));
    }

    #[test]
    fn serials_compare_as_numbers() {
        assert!(same_serial("00ABCD", "abcd"));
        assert!(!same_serial("ABCD", "ABCE"));
        assert!(!same_serial("", ""));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = read_certificate_der(&bytes);
        }
    }
}
