//! `linli apps import-env`: turns a deployment configured by environment into records. The
//! official account and mini-program become apps of the account's company (`LINLI_OA_COMPANY_ID`,
//! or the org given), the merchant a merchant of the platform that pays for owners without one
//! (as it paid for everyone before); payouts queued before records existed are moved onto it, so
//! the environment's settings can then be removed. Each record goes through the same checks as
//! the admin API (credentials asked of WeChat, secrets sealed, audited as `cli`); what is a record
//! already is left as it is, so the command can be run again.

use anyhow::Context;

use crate::config::Settings;
use crate::db::accounts::apps::{AppKind, MessageMode};
use crate::db::accounts::merchants::{TransferApi, VerifyKeys};
use crate::db::accounts::{apps as app_store, merchants as merchant_store};
use crate::domain::accounts::apps::{self, AppInput};
use crate::domain::accounts::merchants::{self, MerchantInput};
use crate::domain::accounts::registry::Accounts;
use crate::domain::operators::access::{Actor, PLATFORM_ORG_ID};
use crate::domain::DomainError;
use crate::wechat::api::WechatClient;

fn read(path: &Option<String>, what: &str) -> anyhow::Result<Option<String>> {
    path.as_ref().map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {what} from {p}"))).transpose()
}

/// What was done, a line each.
pub async fn import_env(
    accounts: &Accounts,
    wechat: &WechatClient,
    settings: &Settings,
    apps_org: Option<i64>,
) -> anyhow::Result<Vec<String>> {
    let actor = Actor::cli();
    let w = &settings.wechat;
    let owner = apps_org.or(w.oa_company_id).unwrap_or(PLATFORM_ORG_ID);
    let existing = app_store::all(accounts.db().reader()).await?;
    let mut done = Vec::new();
    if let (Some(appid), Some(secret)) = (&w.oa_appid, &w.oa_secret) {
        if existing.iter().any(|a| &a.appid == appid) {
            done.push(format!("official account {appid}: a record already"));
        } else {
            let input = AppInput {
                name: format!("official account {appid}"),
                secret: Some(secret.expose().to_owned()),
                token: w.oa_token.as_ref().map(|t| t.expose().to_owned()),
                aes_key: w.oa_aes_key.as_ref().map(|k| k.expose().to_owned()),
                message_mode: Some(match w.oa_message_mode() {
                    crate::config::OaMessageMode::Plain => MessageMode::Plain,
                    crate::config::OaMessageMode::Compat => MessageMode::Compat,
                    crate::config::OaMessageMode::Safe => MessageMode::Safe,
                }),
                task_template_id: None,
            };
            let made = apps::create(accounts, wechat, &actor, owner, AppKind::Oa, appid, input)
                .await
                .map_err(explain)
                .with_context(|| format!("importing the official account {appid}"))?;
            done.push(format!("official account {appid}: record {} of org {owner}", made.row.id));
        }
    }
    if let (Some(appid), Some(secret)) = (&w.mp_appid, &w.mp_secret) {
        if existing.iter().any(|a| &a.appid == appid) {
            done.push(format!("mini-program {appid}: a record already"));
        } else {
            let input = AppInput {
                name: format!("mini-program {appid}"),
                secret: Some(secret.expose().to_owned()),
                task_template_id: w.mp_task_template_id.clone(),
                ..AppInput::default()
            };
            let made = apps::create(accounts, wechat, &actor, owner, AppKind::Mp, appid, input)
                .await
                .map_err(explain)
                .with_context(|| format!("importing the mini-program {appid}"))?;
            done.push(format!("mini-program {appid}: record {} of org {owner}", made.row.id));
        }
    }
    let p = &settings.pay;
    if let Some(mch_id) = &p.mch_id {
        let known = merchant_store::all(accounts.db().reader()).await?;
        if known.iter().any(|m| &m.mch_id == mch_id) {
            done.push(format!("merchant {mch_id}: a record already"));
        } else {
            let input = MerchantInput {
                name: format!("merchant {mch_id}"),
                api_key_v2: p.api_key_v2.as_ref().map(|k| k.expose().to_owned()),
                api_v3_key: p.api_v3_key.as_ref().map(|k| k.expose().to_owned()),
                private_key_pem: read(&p.private_key_path, "WECHATPAY_PRIVATE_KEY_PATH")?,
                cert_serial: p.cert_serial.clone(),
                public_key_id: p.public_key_id.clone(),
                public_key_pem: read(&p.public_key_path, "WECHATPAY_PUBLIC_KEY_PATH")?,
                verify_with: p.verify_with.map(|v| match v {
                    crate::wechat::pay::v3::VerifyWith::PublicKey => VerifyKeys::PublicKey,
                    crate::wechat::pay::v3::VerifyWith::PlatformCertificates => VerifyKeys::PlatformCertificates,
                    crate::wechat::pay::v3::VerifyWith::Both => VerifyKeys::Both,
                }),
                client_cert_pem: read(&p.client_cert_path, "WECHATPAY_CLIENT_CERT_PATH")?,
                // New transfers notify the record's own path; those made before keep the old URL,
                // which serves the record too.
                notify_url: p.notify_url.as_deref().map(|u| match u.strip_suffix("/wechat/pay/notify") {
                    Some(origin) => format!("{origin}/wechat/pay/{mch_id}/notify"),
                    None => u.to_owned(),
                }),
                transfer_scene_id: Some(p.payouts.transfer_scene_id.clone()),
                transfer_api: Some(if p.payouts.transfer_api == "v2" { TransferApi::V2 } else { TransferApi::V3 }),
                rate_per_sec: Some(i64::from(p.payouts.rate_per_sec)),
                platform_fallback: true,
            };
            let made = merchants::create(accounts, &actor, PLATFORM_ORG_ID, mch_id, input)
                .await
                .map_err(explain)
                .with_context(|| format!("importing the merchant {mch_id}"))?;
            done.push(format!(
                "merchant {mch_id}: record {} of the platform, paying for owners without one",
                made.row.id
            ));
        }
        let moved = crate::db::money::payouts::adopt_environment_payouts(accounts.db(), mch_id).await?;
        if moved > 0 {
            done.push(format!("{moved} payouts queued before records now go through merchant {mch_id}"));
        }
    }
    if done.is_empty() {
        done.push("nothing to import: no WECHAT_OA_*, WECHAT_MP_* or WECHATPAY_* settings".to_owned());
    }
    Ok(done)
}

fn explain(e: DomainError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}
