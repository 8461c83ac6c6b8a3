//! Registering WeChat Pay merchants: validated, their keys checked with WeChat Pay (a signed v3
//! query whose signed answer verifies, a v2 query under the APIv2 key) before anything is stored,
//! their secrets sealed. Admins of the owner's subtree only; every change audited without secrets.

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Serialize;

use crate::codes::ErrorCode;
use crate::db::accounts::merchants::{self as store, MerchantFields, MerchantRow, SealedKeys, TransferApi, VerifyKeys};
use crate::db::community::orgs::OrgRow;
use crate::db::{self, DbError, Page, PageRequest};
use crate::domain::accounts::apps::SecretShown;
use crate::domain::accounts::registry::{merchant_context, Accounts};
use crate::domain::accounts::{commit, owner_in_reach, reached_owner, sealing};
use crate::domain::operators::access::{scope_of, Actor, Role, PLATFORM_ORG_ID};
use crate::domain::{operators::audit, optional_text, required_text, DomainError, DomainResult};
use crate::sealing::SealingKeys;
use crate::wechat::pay::clients::PayClients;
use crate::wechat::pay::v2::V2Query;
use crate::wechat::pay::v3::transfer_bills::TransferOutcome;

/// What an operator sends. On an update, an absent secret keeps the stored one.
#[derive(Clone, Debug, Default)]
pub struct MerchantInput {
    pub name: String,
    pub api_key_v2: Option<String>,
    pub api_v3_key: Option<String>,
    pub private_key_pem: Option<String>,
    pub cert_serial: Option<String>,
    pub public_key_id: Option<String>,
    pub public_key_pem: Option<String>,
    pub verify_with: Option<VerifyKeys>,
    pub client_cert_pem: Option<String>,
    pub notify_url: Option<String>,
    pub transfer_scene_id: Option<String>,
    pub transfer_api: Option<TransferApi>,
    pub rate_per_sec: Option<i64>,
    pub platform_fallback: bool,
}

/// A merchant as shown: no secret, only whether each is set and its fingerprint.
#[derive(Clone, Debug, Serialize)]
pub struct MerchantShown {
    #[serde(skip)]
    pub row: MerchantRow,
    pub api_key_v2: SecretShown,
    pub api_v3_key: SecretShown,
    pub private_key: SecretShown,
    pub client_cert: SecretShown,
}

const SECRETS: [&str; 4] = ["api_key_v2", "api_v3_key", "private_key", "client_cert"];

fn sealed_of<'a>(row: &'a MerchantRow, column: &str) -> Option<&'a str> {
    match column {
        "api_key_v2" => row.api_key_v2_sealed.as_deref(),
        "api_v3_key" => row.api_v3_key_sealed.as_deref(),
        "private_key" => row.private_key_sealed.as_deref(),
        _ => row.client_cert_sealed.as_deref(),
    }
}

/// What operators see of a stored merchant.
pub fn show(accounts: &Accounts, row: MerchantRow) -> MerchantShown {
    let keys = accounts.keys();
    let shown = |column: &str| {
        let sealed = sealed_of(&row, column);
        let fingerprint = match (keys, sealed) {
            (Some(k), Some(s)) => {
                k.open(&merchant_context(&row.mch_id, column), s).ok().map(|v| k.fingerprint(v.expose()))
            }
            _ => None,
        };
        SecretShown { set: sealed.is_some(), fingerprint }
    };
    MerchantShown {
        api_key_v2: shown("api_key_v2"),
        api_v3_key: shown("api_v3_key"),
        private_key: shown("private_key"),
        client_cert: shown("client_cert"),
        row,
    }
}

/// What the audit log keeps of a merchant: never a secret.
#[derive(Serialize)]
struct Audited<'a> {
    mch_id: &'a str,
    name: &'a str,
    cert_serial: Option<&'a str>,
    public_key_id: Option<&'a str>,
    verify_with: Option<VerifyKeys>,
    notify_url: Option<&'a str>,
    transfer_scene_id: &'a str,
    transfer_api: TransferApi,
    rate_per_sec: i64,
    platform_fallback: bool,
    fingerprints: [Option<String>; 4],
}

fn audited(m: &MerchantShown) -> Audited<'_> {
    Audited {
        mch_id: &m.row.mch_id,
        name: &m.row.name,
        cert_serial: m.row.cert_serial.as_deref(),
        public_key_id: m.row.public_key_id.as_deref(),
        verify_with: m.row.verify_with,
        notify_url: m.row.notify_url.as_deref(),
        transfer_scene_id: &m.row.transfer_scene_id,
        transfer_api: m.row.transfer_api,
        rate_per_sec: m.row.rate_per_sec,
        platform_fallback: m.row.platform_fallback,
        fingerprints: [
            m.api_key_v2.fingerprint.clone(),
            m.api_v3_key.fingerprint.clone(),
            m.private_key.fingerprint.clone(),
            m.client_cert.fingerprint.clone(),
        ],
    }
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::invalid(ErrorCode::ValidationFailed, message)
}

fn valid_mch_id(mch_id: &str) -> DomainResult<String> {
    let m = mch_id.trim();
    if !(8..=16).contains(&m.len()) || !m.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("mch_id must be the merchant number: 8–16 digits"));
    }
    Ok(m.to_owned())
}

/// The values to store, checked; the secrets in clear, to check and seal.
struct Checked {
    name: String,
    secrets: [Option<String>; 4],
    cert_serial: Option<String>,
    public_key_id: Option<String>,
    public_key_pem: Option<String>,
    verify_with: Option<VerifyKeys>,
    notify_url: Option<String>,
    transfer_scene_id: String,
    transfer_api: TransferApi,
    rate_per_sec: i64,
    platform_fallback: bool,
}

fn check_input(
    owner: &OrgRow,
    mch_id: &str,
    input: &MerchantInput,
    stored: Option<(&SealingKeys, &MerchantRow)>,
) -> DomainResult<Checked> {
    let name = required_text("name", &input.name, 64)?;
    let given = [&input.api_key_v2, &input.api_v3_key, &input.private_key_pem, &input.client_cert_pem];
    let mut secrets: [Option<String>; 4] = Default::default();
    for (i, column) in SECRETS.iter().enumerate() {
        secrets[i] = match given[i].as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) => Some(v.to_owned()),
            None => match stored {
                Some((keys, row)) => sealed_of(row, column)
                    .map(|s| keys.open(&merchant_context(mch_id, column), s))
                    .transpose()
                    .map_err(|e| DomainError::Upstream(format!("the stored {column} does not open: {e}")))?
                    .map(|v| v.expose().to_owned()),
                None => None,
            },
        };
    }
    for (i, what) in [(0, "api_key_v2 (the APIv2 key)"), (1, "api_v3_key (the APIv3 key)")] {
        if secrets[i].as_ref().is_some_and(|k| k.len() != 32) {
            return Err(invalid(format!("{what} must be 32 characters")));
        }
    }
    if secrets[0].is_none() && secrets[1].is_none() {
        return Err(invalid("a merchant needs api_key_v2 or the v3 keys (api_v3_key, private_key_pem, cert_serial)"));
    }
    let cert_serial = optional_text("cert_serial", input.cert_serial.as_deref(), 64)?;
    let public_key_id = optional_text("public_key_id", input.public_key_id.as_deref(), 64)?;
    let public_key_pem = pem("public_key_pem", input.public_key_pem.as_deref())?;
    for (i, field) in [(2, "private_key_pem"), (3, "client_cert_pem")] {
        if let Some(v) = given[i].as_deref().filter(|v| !v.trim().is_empty()) {
            pem(field, Some(v))?;
        }
    }
    if public_key_id.is_some() != public_key_pem.is_some() {
        return Err(invalid("public_key_id and public_key_pem go together"));
    }
    let v3_parts = [secrets[1].is_some(), secrets[2].is_some(), cert_serial.is_some()];
    if v3_parts.iter().any(|p| *p) && !v3_parts.iter().all(|p| *p) {
        return Err(invalid("v3 needs api_v3_key, private_key_pem and cert_serial together"));
    }
    let transfer_scene_id = match optional_text("transfer_scene_id", input.transfer_scene_id.as_deref(), 8)? {
        Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => s,
        Some(_) => return Err(invalid("transfer_scene_id is a number such as 1000")),
        None => "1000".to_owned(),
    };
    let notify_url = optional_text("notify_url", input.notify_url.as_deref(), 256)?;
    if notify_url.as_deref().is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://"))) {
        return Err(invalid("notify_url must be an http(s) URL (WeChat requires https)"));
    }
    let rate_per_sec = input.rate_per_sec.unwrap_or(25);
    if !(1..=1000).contains(&rate_per_sec) {
        return Err(invalid("rate_per_sec must be 1..=1000"));
    }
    if input.platform_fallback && owner.id != PLATFORM_ORG_ID {
        return Err(invalid("only the platform's merchant can pay for owners without one (platform_fallback)"));
    }
    Ok(Checked {
        name,
        secrets,
        cert_serial,
        public_key_id,
        public_key_pem,
        verify_with: input.verify_with,
        notify_url,
        transfer_scene_id,
        transfer_api: input.transfer_api.unwrap_or(TransferApi::V3),
        rate_per_sec,
        platform_fallback: input.platform_fallback,
    })
}

/// A PEM document: trimmed, `-----BEGIN` first, nothing but printable text and line breaks.
fn pem(field: &str, value: Option<&str>) -> DomainResult<Option<String>> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
    if v.len() > 16_384 || !v.starts_with("-----BEGIN ") || v.chars().any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        return Err(invalid(format!("{field} must be a PEM document (-----BEGIN …)")));
    }
    Ok(Some(v.to_owned()))
}

fn rejected(message: String) -> DomainError {
    DomainError::invalid(ErrorCode::CredentialsRejected, message)
}

/// Builds the merchant's clients and asks WeChat Pay about a number that does not exist: the
/// v3 call is signed with the merchant key and its signed answer verified with WeChat Pay's key;
/// the v2 call is signed with the APIv2 key.
async fn check_with_wechat_pay(accounts: &Accounts, owner: &OrgRow, mch_id: &str, c: &Checked) -> DomainResult<()> {
    let row = as_row(owner.id, mch_id, c);
    let keys = accounts.merchant_keys_in_clear(&row, &c.secrets);
    let clients =
        PayClients::build(&keys).map_err(|e| rejected(format!("the merchant's keys are not usable: {e:#}")))?;
    let probe: String = rand::thread_rng().sample_iter(&Alphanumeric).take(20).map(char::from).collect();
    // Only WeChat Pay's signed "no such bill" proves the keys: any other answer names the fault.
    if let Some(v3) = &clients.v3 {
        match v3.query_transfer_bill(&format!("LCHECK{probe}")).await {
            Ok(TransferOutcome::Unknown { code, .. }) if code == "NOT_FOUND" => {}
            Ok(TransferOutcome::Unknown { code, message } | TransferOutcome::Failed { code, message, .. }) => {
                return Err(rejected(format!(
                    "WeChat Pay v3 refused the merchant's request ({code}: {message}); check the merchant private key \
                     and its serial"
                )))
            }
            Ok(other) => return Err(rejected(format!("WeChat Pay v3 answered a check unexpectedly: {other:?}"))),
            Err(e) => {
                return Err(rejected(format!(
                    "WeChat Pay v3 did not take the merchant's keys: {e}; check the merchant private key and serial \
                     and the WeChat Pay public key"
                )))
            }
        }
    }
    if let Some(v2) = &clients.v2 {
        if let (Some(appid), _) = accounts.payout_apps(&owner.path) {
            match v2.query_red_pack(&format!("LCHECK{probe}"), &appid).await {
                Ok(V2Query::Unknown { code, .. }) if code == "NOT_FOUND" => {}
                Ok(V2Query::Unknown { code, message }) => {
                    return Err(rejected(format!(
                        "WeChat Pay v2 refused the merchant's request ({code}: {message}); check the APIv2 key"
                    )))
                }
                Ok(V2Query::Found(_)) => {}
                Err(e) => return Err(rejected(format!("WeChat Pay v2 did not take the APIv2 key: {e}"))),
            }
        }
    }
    Ok(())
}

/// The row `c` would make, with clear secrets kept aside (for building clients to check).
fn as_row(org_id: i64, mch_id: &str, c: &Checked) -> MerchantRow {
    MerchantRow {
        id: 0,
        org_id,
        mch_id: mch_id.to_owned(),
        name: c.name.clone(),
        api_key_v2_sealed: None,
        api_v3_key_sealed: None,
        private_key_sealed: None,
        cert_serial: c.cert_serial.clone(),
        public_key_id: c.public_key_id.clone(),
        public_key_pem: c.public_key_pem.clone(),
        verify_with: c.verify_with,
        client_cert_sealed: None,
        notify_url: c.notify_url.clone(),
        transfer_scene_id: c.transfer_scene_id.clone(),
        transfer_api: c.transfer_api,
        rate_per_sec: c.rate_per_sec,
        platform_fallback: c.platform_fallback,
        created_at: 0,
        updated_at: 0,
    }
}

fn seal_all(keys: &SealingKeys, mch_id: &str, c: &Checked) -> [Option<String>; 4] {
    let mut out: [Option<String>; 4] = Default::default();
    for (i, column) in SECRETS.iter().enumerate() {
        out[i] = c.secrets[i].as_deref().map(|v| keys.seal(&merchant_context(mch_id, column), v));
    }
    out
}

fn fields<'a>(c: &'a Checked, sealed: &'a [Option<String>; 4]) -> MerchantFields<'a> {
    MerchantFields {
        name: &c.name,
        sealed: SealedKeys {
            api_key_v2: sealed[0].as_deref(),
            api_v3_key: sealed[1].as_deref(),
            private_key: sealed[2].as_deref(),
            client_cert: sealed[3].as_deref(),
        },
        cert_serial: c.cert_serial.as_deref(),
        public_key_id: c.public_key_id.as_deref(),
        public_key_pem: c.public_key_pem.as_deref(),
        verify_with: c.verify_with,
        notify_url: c.notify_url.as_deref(),
        transfer_scene_id: &c.transfer_scene_id,
        transfer_api: c.transfer_api,
        rate_per_sec: c.rate_per_sec,
        platform_fallback: c.platform_fallback,
    }
}

/// Registers a merchant for an org in the actor's reach. Admins only.
pub async fn create(
    accounts: &Accounts,
    actor: &Actor,
    org_id: i64,
    mch_id: &str,
    input: MerchantInput,
) -> DomainResult<MerchantShown> {
    let mch_id = valid_mch_id(mch_id)?;
    let org = owner_in_reach(accounts.db().reader(), actor, org_id, "WeChat Pay merchants").await?;
    actor.require(Role::Admin)?;
    let keys = sealing(accounts)?;
    let checked = check_input(&org, &mch_id, &input, None)?;
    check_with_wechat_pay(accounts, &org, &mch_id, &checked).await?;
    let sealed = seal_all(keys, &mch_id, &checked);
    let mut tx = accounts.db().begin().await?;
    let row = match store::insert(&mut tx, org.id, &mch_id, &fields(&checked, &sealed), db::now_ms()).await {
        Ok(row) => row,
        Err(DbError::UniqueViolation) => {
            return Err(DomainError::conflict(
                ErrorCode::MerchantExists,
                format!("the merchant {mch_id} is registered already"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let out = show(accounts, row);
    audit::record(
        &mut tx,
        actor,
        &org,
        "pay_merchant.create",
        ("pay_merchant", out.row.id),
        (None::<&()>, Some(&audited(&out))),
    )
    .await?;
    commit(tx, accounts).await?;
    Ok(out)
}

async fn load(accounts: &Accounts, actor: &Actor, id: i64) -> DomainResult<(MerchantRow, OrgRow)> {
    let row = store::get(accounts.db().reader(), id).await?.ok_or(DomainError::NotFound("merchant"))?;
    let org = reached_owner(accounts, actor, row.org_id, "merchant").await?;
    Ok((row, org))
}

pub async fn get(accounts: &Accounts, actor: &Actor, id: i64) -> DomainResult<MerchantShown> {
    Ok(show(accounts, load(accounts, actor, id).await?.0))
}

pub async fn list(
    accounts: &Accounts,
    actor: &Actor,
    org_id: Option<i64>,
    page: PageRequest,
) -> DomainResult<Page<MerchantShown>> {
    let path = scope_of(accounts.db(), actor, org_id).await?;
    let found = store::list(accounts.db().reader(), &path, page).await?;
    Ok(Page { items: found.items.into_iter().map(|r| show(accounts, r)).collect(), total: found.total })
}

/// Changes a merchant; secrets not sent are kept. The keys are checked with WeChat Pay again.
pub async fn update(accounts: &Accounts, actor: &Actor, id: i64, input: MerchantInput) -> DomainResult<MerchantShown> {
    let (row, org) = load(accounts, actor, id).await?;
    actor.require(Role::Admin)?;
    let keys = sealing(accounts)?;
    let checked = check_input(&org, &row.mch_id, &input, Some((keys, &row)))?;
    check_with_wechat_pay(accounts, &org, &row.mch_id, &checked).await?;
    let sealed = seal_all(keys, &row.mch_id, &checked);
    let mut tx = accounts.db().begin().await?;
    let before = store::get(&mut *tx, id).await?.ok_or(DomainError::NotFound("merchant"))?;
    let after = store::update(&mut tx, id, &fields(&checked, &sealed), db::now_ms().max(before.updated_at + 1)).await?;
    let (before, after) = (show(accounts, before), show(accounts, after));
    audit::record(
        &mut tx,
        actor,
        &org,
        "pay_merchant.update",
        ("pay_merchant", id),
        (Some(&audited(&before)), Some(&audited(&after))),
    )
    .await?;
    commit(tx, accounts).await?;
    Ok(after)
}

/// Removes a merchant, unless payouts are still open on it (WeChat may still answer about them).
pub async fn delete(accounts: &Accounts, actor: &Actor, id: i64) -> DomainResult<MerchantShown> {
    let (row, org) = load(accounts, actor, id).await?;
    actor.require(Role::Admin)?;
    let mut tx = accounts.db().begin().await?;
    let open = store::open_payouts(&mut tx, &row.mch_id).await?;
    if open > 0 {
        return Err(DomainError::conflict(
            ErrorCode::MerchantInUse,
            format!("{open} payouts are still open on merchant {}; it can go once they are settled", row.mch_id),
        ));
    }
    store::delete(&mut tx, id).await?;
    let gone = show(accounts, row);
    audit::record(
        &mut tx,
        actor,
        &org,
        "pay_merchant.delete",
        ("pay_merchant", id),
        (Some(&audited(&gone)), None::<&()>),
    )
    .await?;
    commit(tx, accounts).await?;
    Ok(gone)
}
