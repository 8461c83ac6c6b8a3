//! Which key signs a merchant's v3 answers and notifications — its WeChat Pay public key
//! (`PUB_KEY_ID_…`) or one of its platform certificates — as the kind of merchant it is
//! ([`PaySigning`], per merchant), and `GET /v3/certificates`, which hands out the calling
//! merchant's platform certificates, each sealed with AEAD_AES_256_GCM under its APIv3 key, in an
//! answer signed like any other.

use poem::{handler, http::StatusCode, web::Data, Body, Request, Response};
use rsa::RsaPrivateKey;
use serde_json::{json, Value};

use super::config::PaySigning;
use super::merchants::{UnknownMerchant, DEFAULT_MERCHANT};
use super::sign::{aes_gcm_encrypt, nonce};
use super::store::{rfc3339_beijing, PayStore};
use super::v3::{serve, v3_err, V3Error};
use crate::state::MockWechat;

/// The path of the certificate download.
pub const CERTIFICATES_PATH: &str = "/v3/certificates";
/// What WeChat answers a merchant that has no platform certificate (protocols notes §7).
pub const NO_CERTIFICATE_MESSAGE: &str = "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥";

impl PayStore {
    /// The platform certificates in effect at `now` (Unix s), newest first.
    fn live_certificates(&self, now: i64) -> Vec<&super::config::PlatformCertificate> {
        let mut live: Vec<_> =
            self.config.platform_certificates.iter().filter(|c| c.effective_at <= now && now < c.expire_at).collect();
        live.sort_by_key(|c| std::cmp::Reverse(c.effective_at));
        live
    }

    fn certificate_key(&self, serial: &str) -> Option<(String, &RsaPrivateKey)> {
        self.platform_keys.iter().find(|(s, _)| s.eq_ignore_ascii_case(serial)).map(|(s, key)| (s.clone(), key))
    }

    /// The key (and the serial that names it) an answer to a request naming `requested` in its
    /// `Wechatpay-Serial` is signed with; a notification passes `None`.
    pub(crate) fn signing_key(&self, requested: Option<&str>, now: i64) -> Option<(String, &RsaPrivateKey)> {
        let public = || self.wechatpay_key.as_ref().map(|key| (self.config.wechatpay_public_key_id.clone(), key));
        let live = self.live_certificates(now);
        let named_certificate = |serial: &str| {
            live.iter()
                .any(|c| c.serial_no.eq_ignore_ascii_case(serial))
                .then(|| self.certificate_key(serial))
                .flatten()
        };
        let newest_certificate = || live.first().and_then(|c| self.certificate_key(&c.serial_no));
        match self.signing {
            PaySigning::PublicKey => public(),
            PaySigning::PlatformCertificate => requested.and_then(named_certificate).or_else(newest_certificate),
            PaySigning::Migration => match requested {
                Some(serial) if serial == self.config.wechatpay_public_key_id => public(),
                Some(serial) => named_certificate(serial).or_else(newest_certificate),
                None => newest_certificate(),
            },
        }
    }
}

impl PayStore {
    /// The `/v3/certificates` answer at `now` (Unix seconds): the certificates in effect, sealed
    /// under the APIv3 key.
    fn list_certificates(&self, now: i64) -> Result<Value, V3Error> {
        if self.signing == PaySigning::PublicKey {
            return Err(v3_err(StatusCode::NOT_FOUND, "NOT_FOUND", NO_CERTIFICATE_MESSAGE));
        }
        let mut data = Vec::new();
        for c in self.live_certificates(now) {
            let sealing_nonce = nonce(12);
            let associated_data = "certificate";
            let ciphertext =
                aes_gcm_encrypt(&self.config.api_v3_key, &sealing_nonce, associated_data, &c.certificate_pem)
                    .map_err(|e| v3_err(StatusCode::INTERNAL_SERVER_ERROR, "SYSTEM_ERROR", &e.0))?;
            data.push(json!({
                "serial_no": c.serial_no,
                "effective_time": rfc3339_beijing(c.effective_at),
                "expire_time": rfc3339_beijing(c.expire_at),
                "encrypt_certificate": {
                    "algorithm": "AEAD_AES_256_GCM",
                    "nonce": sealing_nonce,
                    "associated_data": associated_data,
                    "ciphertext": ciphertext,
                }
            }));
        }
        Ok(json!({ "data": data }))
    }
}

/// `GET /v3/certificates`.
#[handler]
pub(crate) async fn certificates(req: &Request, body: Body, Data(mock): Data<&MockWechat>) -> Response {
    serve(mock, req, body, |state, m| {
        let now = state.clock.now_ms().div_euclid(1000);
        state.pay[m].list_certificates(now)
    })
    .await
}

impl MockWechat {
    /// The default merchant becomes another kind of merchant from now on (see [`PaySigning`]).
    pub fn set_pay_signing(&self, signing: PaySigning) {
        self.lock().pay[DEFAULT_MERCHANT].signing = signing;
    }

    /// The kind of merchant the default merchant is.
    pub fn pay_signing(&self) -> PaySigning {
        self.lock().pay[DEFAULT_MERCHANT].signing
    }

    /// Merchant `mch_id` becomes another kind of merchant from now on (see [`PaySigning`]).
    pub fn set_pay_signing_of(&self, mch_id: &str, signing: PaySigning) -> Result<(), UnknownMerchant> {
        self.lock().pay.of_mut(mch_id)?.signing = signing;
        Ok(())
    }

    /// The kind of merchant `mch_id` is.
    pub fn pay_signing_of(&self, mch_id: &str) -> Result<PaySigning, UnknownMerchant> {
        Ok(self.lock().pay.of(mch_id)?.signing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pay::config::{PayConfig, PlatformCertificate, PLATFORM_CERT_SERIAL, WECHATPAY_PUBLIC_KEY_ID};

    const NOW: i64 = 1_800_000_000;

    fn store(signing: PaySigning) -> PayStore {
        PayStore::new(PayConfig { signing, ..PayConfig::default() })
    }

    #[test]
    fn each_merchant_kind_signs_with_its_key() {
        let serial = |s: &PayStore, requested: Option<&str>| s.signing_key(requested, NOW).map(|(serial, _)| serial);
        let public = store(PaySigning::PublicKey);
        assert_eq!(serial(&public, None).as_deref(), Some(WECHATPAY_PUBLIC_KEY_ID));
        assert_eq!(serial(&public, Some(PLATFORM_CERT_SERIAL)).as_deref(), Some(WECHATPAY_PUBLIC_KEY_ID));
        let certificate = store(PaySigning::PlatformCertificate);
        assert_eq!(serial(&certificate, None).as_deref(), Some(PLATFORM_CERT_SERIAL));
        assert_eq!(serial(&certificate, Some(WECHATPAY_PUBLIC_KEY_ID)).as_deref(), Some(PLATFORM_CERT_SERIAL));
        let migrating = store(PaySigning::Migration);
        assert_eq!(serial(&migrating, None).as_deref(), Some(PLATFORM_CERT_SERIAL));
        assert_eq!(serial(&migrating, Some(WECHATPAY_PUBLIC_KEY_ID)).as_deref(), Some(WECHATPAY_PUBLIC_KEY_ID));
        assert_eq!(serial(&migrating, Some(PLATFORM_CERT_SERIAL)).as_deref(), Some(PLATFORM_CERT_SERIAL));
        assert_eq!(serial(&migrating, Some("PUB_KEY_ID_OTHER")).as_deref(), Some(PLATFORM_CERT_SERIAL));
    }

    #[test]
    fn an_expired_certificate_signs_nothing() {
        let expired = PlatformCertificate { expire_at: NOW, ..PlatformCertificate::mock_default() };
        let s = PayStore::new(PayConfig {
            signing: PaySigning::PlatformCertificate,
            platform_certificates: vec![expired],
            ..PayConfig::default()
        });
        assert!(s.signing_key(None, NOW).is_none());
        assert!(s.signing_key(None, NOW - 1).is_some());
    }
}
