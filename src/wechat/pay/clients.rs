//! The merchant's WeChat Pay clients, built once from the settings.

use std::time::Duration;

use anyhow::Context;

use super::v2::{V2Client, V2Config};
use super::v3::certificates::DEFAULT_REFRESH_SECS;
use super::v3::{MerchantSigner, PlatformCertificates, V3Client, V3Config, VerifyWith, WechatPayKeys};
use crate::config::{PaySettings, Secret};

/// The v2 client (red packets, legacy transfers) and the v3 client (transfer-bills, notifications,
/// bills) of the one configured merchant. Either may be absent when its keys are not configured.
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

impl PayClients {
    /// `None` when no merchant is configured (payouts then wait in the outbox).
    pub fn from_settings(pay: &PaySettings) -> anyhow::Result<Option<PayClients>> {
        let Some(mch_id) = pay.mch_id.clone() else { return Ok(None) };
        let timeout = pay.payouts.timeout;
        let connect_timeout = Duration::from_secs(5).min(timeout);
        let root_ca_pem = match &pay.root_ca_path {
            Some(path) => Some(read(path, "WECHATPAY_ROOT_CA_PATH")?),
            None => None,
        };
        let v2 = match &pay.api_key_v2 {
            Some(key) => {
                let identity = match &pay.client_cert_path {
                    Some(path) => Some(Secret::new(read(path, "WECHATPAY_CLIENT_CERT_PATH")?)),
                    None => None,
                };
                Some(
                    V2Client::new(V2Config {
                        base_url: pay.api_base.clone(),
                        mch_id: mch_id.clone(),
                        api_key: key.clone(),
                        client_identity_pem: identity,
                        root_ca_pem: root_ca_pem.clone(),
                        connect_timeout,
                        timeout,
                        require_signed_answers: false,
                    })
                    .context("building the WeChat Pay v2 client")?,
                )
            }
            None => None,
        };
        let verify_with = pay.verify_with.unwrap_or(if pay.public_key_id.is_some() {
            VerifyWith::Both
        } else {
            VerifyWith::PlatformCertificates
        });
        let v3 = match (&pay.cert_serial, &pay.private_key_path) {
            (Some(serial), Some(key_path)) => {
                let api_v3_key = match &pay.api_v3_key {
                    Some(key) if key.expose().len() == 32 => key.clone(),
                    _ => anyhow::bail!("WECHATPAY_API_V3_KEY must be the 32-character APIv3 key"),
                };
                let private = Secret::new(read(key_path, "WECHATPAY_PRIVATE_KEY_PATH")?);
                let signer = MerchantSigner::from_pem(&mch_id, serial, &private)
                    .context("WECHATPAY_PRIVATE_KEY_PATH is not a usable RSA private key")?;
                let keys = match (&pay.public_key_id, &pay.public_key_path) {
                    (Some(key_id), Some(pub_path)) => WechatPayKeys::new()
                        .with_pem(key_id, &read(pub_path, "WECHATPAY_PUBLIC_KEY_PATH")?)
                        .context("WECHATPAY_PUBLIC_KEY_PATH is not a usable RSA public key")?,
                    (None, None) if !verify_with.needs_public_key() => WechatPayKeys::new(),
                    (None, None) => anyhow::bail!(
                        "WECHATPAY_VERIFY_WITH={} needs WECHATPAY_PUBLIC_KEY_ID and WECHATPAY_PUBLIC_KEY_PATH",
                        verify_with.as_str()
                    ),
                    _ => anyhow::bail!("WECHATPAY_PUBLIC_KEY_ID and WECHATPAY_PUBLIC_KEY_PATH go together"),
                };
                let client = V3Client::new(V3Config {
                    base_url: pay.api_base.clone(),
                    signer,
                    keys,
                    connect_timeout,
                    timeout,
                    root_ca_pem,
                })
                .context("building the WeChat Pay v3 client")?;
                Some(if verify_with.uses_certificates() {
                    client.with_platform_certificates(PlatformCertificates {
                        verify_with,
                        api_v3_key,
                        refresh_secs: pay.platform_cert_refresh_secs.unwrap_or(DEFAULT_REFRESH_SECS),
                    })
                } else {
                    client
                })
            }
            (None, None) if pay.public_key_id.is_none() && pay.public_key_path.is_none() => None,
            _ => anyhow::bail!(
                "WeChat Pay v3 needs WECHATPAY_CERT_SERIAL and WECHATPAY_PRIVATE_KEY_PATH, and WECHATPAY_PUBLIC_KEY_ID \
                 and WECHATPAY_PUBLIC_KEY_PATH unless WECHATPAY_VERIFY_WITH=platform_certificates"
            ),
        };
        Ok(Some(PayClients { mch_id, v2, v3, api_v3_key: pay.api_v3_key.clone() }))
    }
}
