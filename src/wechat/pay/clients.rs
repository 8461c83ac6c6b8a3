//! A merchant's WeChat Pay clients: built from the settings (the merchant configured by
//! environment) or from a merchant record's keys.

use std::time::Duration;

use anyhow::Context;

use super::v2::{V2Client, V2Config};
use super::v3::certificates::DEFAULT_REFRESH_SECS;
use super::v3::{MerchantSigner, PlatformCertificates, V3Client, V3Config, VerifyWith, WechatPayKeys};
use crate::config::{PaySettings, Secret};

/// The v2 client (red packets, legacy transfers) and the v3 client (transfer-bills, notifications,
/// bills) of one merchant. Either may be absent when its keys are not configured.
#[derive(Clone, Debug)]
pub struct PayClients {
    pub mch_id: String,
    pub v2: Option<V2Client>,
    pub v3: Option<V3Client>,
    pub api_v3_key: Option<Secret>,
}

fn read(path: &str, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {what} from {path}"))
}

/// A merchant's key material, read (from files or from its record) and ready to build clients.
#[derive(Clone, Debug)]
pub struct MerchantKeys {
    pub api_base: String,
    pub mch_id: String,
    pub api_key_v2: Option<Secret>,
    pub api_v3_key: Option<Secret>,
    pub cert_serial: Option<String>,
    /// The merchant API certificate's private key (PEM).
    pub private_key_pem: Option<Secret>,
    /// The WeChat Pay public key: its id and PEM.
    pub public_key: Option<(String, String)>,
    /// The client certificate and key (PEM) of the v2 payout calls.
    pub client_identity_pem: Option<Secret>,
    pub root_ca_pem: Option<String>,
    pub verify_with: Option<VerifyWith>,
    pub platform_cert_refresh_secs: Option<i64>,
    pub timeout: Duration,
}

impl PayClients {
    /// `None` when no merchant is configured (payouts then wait in the outbox).
    pub fn from_settings(pay: &PaySettings) -> anyhow::Result<Option<PayClients>> {
        let Some(mch_id) = pay.mch_id.clone() else { return Ok(None) };
        let root_ca_pem = match &pay.root_ca_path {
            Some(path) => Some(read(path, "WECHATPAY_ROOT_CA_PATH")?),
            None => None,
        };
        let client_identity_pem = match (&pay.api_key_v2, &pay.client_cert_path) {
            (Some(_), Some(path)) => Some(Secret::new(read(path, "WECHATPAY_CLIENT_CERT_PATH")?)),
            _ => None,
        };
        let public_key = match (&pay.public_key_id, &pay.public_key_path) {
            (Some(key_id), Some(pub_path)) => Some((key_id.clone(), read(pub_path, "WECHATPAY_PUBLIC_KEY_PATH")?)),
            (None, None) => None,
            _ => anyhow::bail!("WECHATPAY_PUBLIC_KEY_ID and WECHATPAY_PUBLIC_KEY_PATH go together"),
        };
        let private_key_pem = match (&pay.cert_serial, &pay.private_key_path) {
            (Some(_), Some(path)) => Some(Secret::new(read(path, "WECHATPAY_PRIVATE_KEY_PATH")?)),
            (None, None) if public_key.is_none() => None,
            _ => anyhow::bail!(
                "WeChat Pay v3 needs WECHATPAY_CERT_SERIAL and WECHATPAY_PRIVATE_KEY_PATH, and WECHATPAY_PUBLIC_KEY_ID \
                 and WECHATPAY_PUBLIC_KEY_PATH unless WECHATPAY_VERIFY_WITH=platform_certificates"
            ),
        };
        let keys = MerchantKeys {
            api_base: pay.api_base.clone(),
            mch_id,
            api_key_v2: pay.api_key_v2.clone(),
            api_v3_key: pay.api_v3_key.clone(),
            cert_serial: pay.cert_serial.clone(),
            private_key_pem,
            public_key,
            client_identity_pem,
            root_ca_pem,
            verify_with: pay.verify_with,
            platform_cert_refresh_secs: pay.platform_cert_refresh_secs,
            timeout: pay.payouts.timeout,
        };
        PayClients::build(&keys).map(Some)
    }

    /// The clients of one merchant. An error names what is missing or unusable.
    pub fn build(k: &MerchantKeys) -> anyhow::Result<PayClients> {
        let mch_id = k.mch_id.clone();
        let timeout = k.timeout;
        let connect_timeout = Duration::from_secs(5).min(timeout);
        let v2 = match &k.api_key_v2 {
            Some(key) => Some(
                V2Client::new(V2Config {
                    base_url: k.api_base.clone(),
                    mch_id: mch_id.clone(),
                    api_key: key.clone(),
                    client_identity_pem: k.client_identity_pem.clone(),
                    root_ca_pem: k.root_ca_pem.clone(),
                    connect_timeout,
                    timeout,
                    require_signed_answers: false,
                })
                .context("building the WeChat Pay v2 client")?,
            ),
            None => None,
        };
        let verify_with = k.verify_with.unwrap_or(if k.public_key.is_some() {
            VerifyWith::Both
        } else {
            VerifyWith::PlatformCertificates
        });
        let v3 = match (&k.cert_serial, &k.private_key_pem) {
            (Some(serial), Some(private)) => {
                let api_v3_key = match &k.api_v3_key {
                    Some(key) if key.expose().len() == 32 => key.clone(),
                    _ => anyhow::bail!("the APIv3 key must be the merchant's 32-character APIv3 key"),
                };
                let signer = MerchantSigner::from_pem(&mch_id, serial, private)
                    .context("the merchant private key is not a usable RSA private key")?;
                let keys = match &k.public_key {
                    Some((key_id, pem)) => WechatPayKeys::new()
                        .with_pem(key_id, pem)
                        .context("the WeChat Pay public key is not a usable RSA public key")?,
                    None if !verify_with.needs_public_key() => WechatPayKeys::new(),
                    None => anyhow::bail!(
                        "verifying with {} needs the WeChat Pay public key id and key",
                        verify_with.as_str()
                    ),
                };
                let client = V3Client::new(V3Config {
                    base_url: k.api_base.clone(),
                    signer,
                    keys,
                    connect_timeout,
                    timeout,
                    root_ca_pem: k.root_ca_pem.clone(),
                })
                .context("building the WeChat Pay v3 client")?;
                Some(if verify_with.uses_certificates() {
                    client.with_platform_certificates(PlatformCertificates {
                        verify_with,
                        api_v3_key,
                        refresh_secs: k.platform_cert_refresh_secs.unwrap_or(DEFAULT_REFRESH_SECS),
                    })
                } else {
                    client
                })
            }
            (None, None) if k.public_key.is_none() => None,
            _ => anyhow::bail!(
                "WeChat Pay v3 needs the certificate serial and the merchant private key, and the WeChat Pay public \
                 key unless it verifies with platform certificates only"
            ),
        };
        Ok(PayClients { mch_id, v2, v3, api_v3_key: k.api_v3_key.clone() })
    }
}
