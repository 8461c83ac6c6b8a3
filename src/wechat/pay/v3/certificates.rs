//! WeChat Pay platform certificates (平台证书): which key linli expects answers and notifications
//! to be signed with, and, for merchants that still have platform certificates, fetching them.
//!
//! A merchant verifies WeChat Pay with the WeChat Pay public key (`PUB_KEY_ID_…`, does not
//! expire), with platform certificates (`GET /v3/certificates`, each sealed with AES-256-GCM under
//! the APIv3 key, valid for a few years, replaced before they expire), or, while migrating from the
//! second to the first, with both. Every request names the expected key in `Wechatpay-Serial`; an
//! answer names the key that signed it the same way, and the key is chosen by that serial.
//!
//! Certificates are held in memory per process (each instance fetches its own):
//! * fetched when an answer or notification names a certificate serial not held (or expired), at
//!   most once a [`MIN_FETCH_INTERVAL_SECS`], behind one lock, so a burst of answers — or of forged
//!   notifications naming made-up serials — makes one fetch;
//! * refreshed on a schedule ([`V3Client::refresh_certificates_if_due`], called by
//!   `workers::certificates` every [`REFRESHER_TICK`] for every merchant): every refresh interval,
//!   and sooner when the newest certificate is within that interval of expiring.
//!
//! The answer of `/v3/certificates` is itself signed by one of the certificates it carries: it is
//! verified with the certificates it decrypts to (which only WeChat and the merchant could have
//! sealed) or with a key already trusted, and nothing is replaced unless it verifies.

use std::time::Duration;

use reqwest::Method;
use rsa::RsaPublicKey;
use serde::Deserialize;

use super::{
    decrypt_resource, ApiError, EncryptedResource, NotifyError, V3Client, V3Error, VerifyError, WechatPayKeys,
    PUBLIC_KEY_ID_PREFIX,
};
use crate::secret::Secret;
use crate::wechat::pay::x509::{self, X509Error};

/// The platform certificate download.
pub const CERTIFICATES_PATH: &str = "/v3/certificates";
/// Least time between two fetches asked for by verifications (unknown or expired serials).
pub const MIN_FETCH_INTERVAL_SECS: i64 = 60;
/// When the next scheduled fetch is after one that failed, or while the newest certificate is
/// about to expire.
pub const RETRY_SECS: i64 = 300;
/// Default time between scheduled refreshes (`WECHATPAY_PLATFORM_CERT_REFRESH_SECS`).
pub const DEFAULT_REFRESH_SECS: i64 = 12 * 3600;
/// How often the refresher looks whether a refresh is due.
pub const REFRESHER_TICK: Duration = Duration::from_secs(30);

/// Which keys linli expects WeChat Pay to sign with (`WECHATPAY_VERIFY_WITH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyWith {
    /// The WeChat Pay public key only (`Wechatpay-Serial: PUB_KEY_ID_…`); no certificates fetched.
    PublicKey,
    /// Platform certificates: fetched, and the newest one named in `Wechatpay-Serial`.
    PlatformCertificates,
    /// Migration: the public key is named in `Wechatpay-Serial`, and answers and notifications
    /// signed with a platform certificate are accepted too (certificates fetched when one is named).
    Both,
}

impl VerifyWith {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "public_key" => Some(Self::PublicKey),
            "platform_certificates" => Some(Self::PlatformCertificates),
            "both" => Some(Self::Both),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PublicKey => "public_key",
            Self::PlatformCertificates => "platform_certificates",
            Self::Both => "both",
        }
    }

    /// Whether platform certificates are fetched and accepted.
    pub fn uses_certificates(self) -> bool {
        !matches!(self, Self::PublicKey)
    }

    /// Whether a WeChat Pay public key must be configured.
    pub fn needs_public_key(self) -> bool {
        !matches!(self, Self::PlatformCertificates)
    }
}

/// How platform certificates are used and fetched.
#[derive(Clone, Debug)]
pub struct PlatformCertificates {
    pub verify_with: VerifyWith,
    /// The 32-byte APIv3 key the certificates are sealed with.
    pub api_v3_key: Secret,
    /// Time between scheduled refreshes, seconds.
    pub refresh_secs: i64,
}

/// One platform certificate, decrypted, read and checked against its listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformCertificate {
    pub serial: String,
    /// Unix seconds: the later of the certificate's `notBefore` and the listed `effective_time`.
    pub not_before: i64,
    /// Unix seconds: the earlier of the certificate's `notAfter` and the listed `expire_time`.
    pub not_after: i64,
    pub key: RsaPublicKey,
}

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("the /v3/certificates call failed ({code}): {message}")]
    Unknown { code: String, message: String },
    #[error("/v3/certificates answered HTTP {status} {message}")]
    Status { status: u16, message: String },
    #[error("the /v3/certificates answer is not the expected JSON: {0}")]
    Body(String),
    #[error("platform certificate {serial} could not be decrypted with the APIv3 key")]
    Decrypt {
        serial: String,
        #[source]
        source: NotifyError,
    },
    #[error("platform certificate {serial} is unreadable: {source}")]
    Certificate {
        serial: String,
        #[source]
        source: X509Error,
    },
    #[error("platform certificate listed as {listed} carries serial {actual}")]
    SerialMismatch { listed: String, actual: String },
    #[error("the /v3/certificates answer failed verification: {0}")]
    Verify(#[source] VerifyError),
    #[error(transparent)]
    Request(#[from] V3Error),
}

#[derive(Deserialize)]
struct Listing {
    data: Vec<ListedCertificate>,
}

#[derive(Deserialize)]
pub(super) struct ListedCertificate {
    serial_no: String,
    #[serde(default)]
    effective_time: Option<String>,
    #[serde(default)]
    expire_time: Option<String>,
    encrypt_certificate: EncryptedResource,
}

/// Where platform certificates come from, and when they were last fetched.
pub(super) struct CertificateSource {
    settings: PlatformCertificates,
    /// The configured WeChat Pay public keys, kept across certificate sets.
    public: WechatPayKeys,
    fetch: tokio::sync::Mutex<FetchState>,
}

#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<i64>,
    /// When the schedule fetches next (Unix s); `None`: only when a verification asks.
    next_refresh: Option<i64>,
}

impl CertificateSource {
    pub(super) fn new(settings: PlatformCertificates, public: WechatPayKeys) -> Self {
        let next_refresh = (settings.verify_with == VerifyWith::PlatformCertificates).then_some(0);
        Self { settings, public, fetch: tokio::sync::Mutex::new(FetchState { last_attempt: None, next_refresh }) }
    }

    pub(super) fn verify_with(&self) -> VerifyWith {
        self.settings.verify_with
    }

    /// Whether the expected key is a platform certificate (rather than the public key).
    pub(super) fn expects_certificates(&self) -> bool {
        self.settings.verify_with == VerifyWith::PlatformCertificates
    }

    fn refresh_secs(&self) -> i64 {
        self.settings.refresh_secs.max(RETRY_SECS)
    }

    /// The keys once `certificates` are the platform certificates: the public keys and every
    /// unexpired certificate, the expected one being the public key or the newest certificate.
    fn keys_with(&self, certificates: &[PlatformCertificate], now: i64) -> WechatPayKeys {
        let mut keys = self.public.clone();
        let live: Vec<&PlatformCertificate> = certificates.iter().filter(|c| now < c.not_after).collect();
        for c in &live {
            keys.add_certificate(&c.serial, c.key.clone(), c.not_before, c.not_after);
        }
        keys.preferred = if self.expects_certificates() {
            newest(live.iter().map(|c| (c.serial.as_str(), c.not_before, c.not_after))).map(str::to_owned)
        } else {
            self.public.preferred.clone()
        };
        keys
    }
}

/// The certificate that took effect last (the one WeChat signs with after a rotation), among those
/// already in effect if any is.
fn newest<'a>(certificates: impl Iterator<Item = (&'a str, i64, i64)>) -> Option<&'a str> {
    certificates.max_by_key(|(serial, from, to)| (*from, *to, *serial)).map(|(serial, _, _)| serial)
}

fn rfc3339_unix(value: Option<&str>) -> Option<i64> {
    let value = value?;
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok().map(|t| t.unix_timestamp())
}

/// Decrypts and reads one listed certificate.
pub(super) fn open_certificate(
    api_v3_key: &Secret,
    listed: &ListedCertificate,
) -> Result<PlatformCertificate, CertificateError> {
    let serial = listed.serial_no.clone();
    let plaintext = decrypt_resource(api_v3_key, &listed.encrypt_certificate)
        .map_err(|source| CertificateError::Decrypt { serial: serial.clone(), source })?;
    let pem = String::from_utf8(plaintext)
        .map_err(|_| CertificateError::Certificate { serial: serial.clone(), source: X509Error::Pem })?;
    let fields = x509::read_certificate_pem(&pem)
        .map_err(|source| CertificateError::Certificate { serial: serial.clone(), source })?;
    if !x509::same_serial(&fields.serial_hex, &serial) {
        return Err(CertificateError::SerialMismatch { listed: serial, actual: fields.serial_hex });
    }
    let not_before =
        rfc3339_unix(listed.effective_time.as_deref()).map_or(fields.not_before, |t| t.max(fields.not_before));
    let not_after = rfc3339_unix(listed.expire_time.as_deref()).map_or(fields.not_after, |t| t.min(fields.not_after));
    Ok(PlatformCertificate { serial, not_before, not_after, key: fields.public_key })
}

impl V3Client {
    /// Makes sure the key an answer or notification names is held, fetching the platform
    /// certificates if it names one that is not (or that expired) and certificates are used. Does
    /// nothing for `PUB_KEY_ID_…` serials, which are configured, never fetched.
    pub(super) async fn learn_serial(&self, serial: &str, now: i64) {
        let Some(source) = self.trust.certificates.as_ref() else { return };
        if serial.is_empty() || serial.starts_with(PUBLIC_KEY_ID_PREFIX) || self.keys().holds(serial, now) {
            return;
        }
        let mut state = source.fetch.lock().await;
        if self.keys().holds(serial, now) {
            return; // fetched while this one waited
        }
        if state.last_attempt.is_some_and(|at| now - at < MIN_FETCH_INTERVAL_SECS) {
            tracing::warn!(serial, "WeChat Pay key not held; platform certificates were fetched under a minute ago");
            return;
        }
        let _ = self.refresh_locked(source, &mut state, now).await;
    }

    /// The keys, with the expected one: when platform certificates are expected and none is held
    /// yet, fetches them first (at most once a [`MIN_FETCH_INTERVAL_SECS`]).
    pub(super) async fn expected_keys(&self, now: i64) -> std::sync::Arc<WechatPayKeys> {
        let keys = self.keys();
        let Some(source) = self.trust.certificates.as_ref() else { return keys };
        if keys.preferred_serial().is_some() || !source.expects_certificates() {
            return keys;
        }
        let mut state = source.fetch.lock().await;
        if self.keys().preferred_serial().is_none()
            && state.last_attempt.is_none_or(|at| now - at >= MIN_FETCH_INTERVAL_SECS)
        {
            let _ = self.refresh_locked(source, &mut state, now).await;
        }
        drop(state);
        self.keys()
    }

    /// Fetches the platform certificates if the schedule says so; answers whether it fetched.
    pub async fn refresh_certificates_if_due(&self, now: i64) -> bool {
        let Some(source) = self.trust.certificates.as_ref() else { return false };
        let mut state = source.fetch.lock().await;
        if state.next_refresh.is_none_or(|at| now < at) {
            return false;
        }
        let _ = self.refresh_locked(source, &mut state, now).await;
        true
    }

    /// One fetch, under the fetch lock: on success the certificate set is replaced.
    async fn refresh_locked(
        &self,
        source: &CertificateSource,
        state: &mut FetchState,
        now: i64,
    ) -> Result<usize, CertificateError> {
        state.last_attempt = Some(now);
        match self.fetch_certificates(source, now).await {
            Ok(certificates) => {
                let keys = source.keys_with(&certificates, now);
                let held: Vec<&str> = keys.certificates().map(|(serial, _, _)| serial).collect();
                tracing::info!(certificates = ?held, expected = ?keys.preferred_serial(), "WeChat Pay platform certificates fetched");
                let newest_expiry = keys.certificates().map(|(_, _, to)| to).max();
                let count = held.len();
                state.next_refresh = match newest_expiry {
                    Some(expiry) => {
                        let refresh = source.refresh_secs();
                        Some((now + RETRY_SECS).max((now + refresh).min(expiry - refresh)))
                    }
                    None => source.expects_certificates().then_some(now + RETRY_SECS),
                };
                self.replace_keys(keys);
                Ok(count)
            }
            Err(err) => {
                tracing::warn!(error = %err, "WeChat Pay platform certificates not fetched; keeping those held");
                let holding = self.keys().certificates().next().is_some();
                // A merchant whose certificates WeChat withdrew (404) is asked again on the
                // ordinary schedule, not every few minutes; the ones held stay until they expire.
                let wait = match &err {
                    CertificateError::Status { status: 404, .. } => source.refresh_secs(),
                    _ => RETRY_SECS,
                };
                state.next_refresh = (source.expects_certificates() || holding).then_some(now + wait);
                Err(err)
            }
        }
    }

    /// `GET /v3/certificates`: decrypts and reads every certificate, then verifies the answer with
    /// them or with a key already held. Changes nothing.
    async fn fetch_certificates(
        &self,
        source: &CertificateSource,
        now: i64,
    ) -> Result<Vec<PlatformCertificate>, CertificateError> {
        let current = self.keys();
        let raw = match self.send(Method::GET, CERTIFICATES_PATH, None, current.preferred_serial()).await? {
            Ok(raw) => raw,
            Err((code, message)) => return Err(CertificateError::Unknown { code, message }),
        };
        if raw.status != 200 {
            // Unverified, so only for the log: WeChat answers 404 to merchants without certificates.
            let message = serde_json::from_slice::<ApiError>(&raw.body)
                .map(|e| format!("{}: {}", e.code, e.message))
                .unwrap_or_default();
            return Err(CertificateError::Status { status: raw.status, message });
        }
        let listing: Listing =
            serde_json::from_slice(&raw.body).map_err(|err| CertificateError::Body(err.to_string()))?;
        let certificates = listing
            .data
            .iter()
            .map(|listed| open_certificate(&source.settings.api_v3_key, listed))
            .collect::<Result<Vec<_>, _>>()?;
        let mut check = (*current).clone();
        for c in &certificates {
            check.add_certificate(&c.serial, c.key.clone(), c.not_before, c.not_after);
        }
        let headers = raw.signed.map_err(CertificateError::Verify)?;
        check.verify(&headers, &raw.body, now).map_err(CertificateError::Verify)?;
        Ok(certificates)
    }
}
