//! The merchant's WeChat Pay clients, built once from the settings.

use std::time::Duration;

use anyhow::Context;

use super::v2::{V2Client, V2Config};
use super::v3::{MerchantSigner, V3Client, V3Config, WechatPayKeys};
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
        let v3 = match (&pay.cert_serial, &pay.private_key_path, &pay.public_key_id, &pay.public_key_path) {
            (Some(serial), Some(key_path), Some(key_id), Some(pub_path)) => {
                let private = Secret::new(read(key_path, "WECHATPAY_PRIVATE_KEY_PATH")?);
                let signer = MerchantSigner::from_pem(&mch_id, serial, &private)
                    .context("WECHATPAY_PRIVATE_KEY_PATH is not a usable RSA private key")?;
                let keys = WechatPayKeys::new()
                    .with_pem(key_id, &read(pub_path, "WECHATPAY_PUBLIC_KEY_PATH")?)
                    .context("WECHATPAY_PUBLIC_KEY_PATH is not a usable RSA public key")?;
                Some(
                    V3Client::new(V3Config {
                        base_url: pay.api_base.clone(),
                        signer,
                        keys,
                        connect_timeout,
                        timeout,
                        root_ca_pem,
                    })
                    .context("building the WeChat Pay v3 client")?,
                )
            }
            (None, None, None, None) => None,
            _ => anyhow::bail!(
                "WeChat Pay v3 needs all of WECHATPAY_CERT_SERIAL, WECHATPAY_PRIVATE_KEY_PATH, WECHATPAY_PUBLIC_KEY_ID \
                 and WECHATPAY_PUBLIC_KEY_PATH"
            ),
        };
        if v3.is_some() && pay.api_v3_key.as_ref().map(|k| k.expose().len()) != Some(32) {
            anyhow::bail!("WECHATPAY_API_V3_KEY must be the 32-character APIv3 key");
        }
        Ok(Some(PayClients { mch_id, v2, v3, api_v3_key: pay.api_v3_key.clone() }))
    }
}
