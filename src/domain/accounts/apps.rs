//! Registering official accounts and mini-programs: validated, their credentials checked with
//! WeChat before anything is stored, their secrets sealed. Admins of the owner's subtree only;
//! every change is audited without its secrets.

use serde::Serialize;

use crate::codes::ErrorCode;
use crate::db::accounts::apps::{self as store, AppFields, AppKind, AppRow, MessageMode};
use crate::db::community::orgs::{self, OrgRow};
use crate::db::{self, DbError, Page, PageRequest};
use crate::domain::accounts::registry::{app_context, Accounts};
use crate::domain::accounts::{commit, owner_in_reach, reached_owner, sealing};
use crate::domain::operators::access::{scope_of, Actor, Role};
use crate::domain::{operators::audit, optional_text, required_text, DomainError, DomainResult};
use crate::sealing::SealingKeys;
use crate::wechat::api::{AppCredentials, WechatClient, WechatError};
use crate::wechat::oa::crypto::MsgCrypt;

/// What an operator sends. On an update, an absent secret keeps the stored one.
#[derive(Clone, Debug, Default)]
pub struct AppInput {
    pub name: String,
    pub secret: Option<String>,
    pub token: Option<String>,
    pub aes_key: Option<String>,
    pub message_mode: Option<MessageMode>,
    pub task_template_id: Option<String>,
}

/// A secret as shown: whether it is set, and its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecretShown {
    pub set: bool,
    pub fingerprint: Option<String>,
}

/// An app as shown: no secret, only whether each is set and its fingerprint.
#[derive(Clone, Debug, Serialize)]
pub struct AppShown {
    #[serde(skip)]
    pub row: AppRow,
    pub secret: SecretShown,
    pub token: SecretShown,
    pub aes_key: SecretShown,
}

fn shown(keys: Option<&SealingKeys>, context: &str, sealed: Option<&str>) -> SecretShown {
    let fingerprint = match (keys, sealed) {
        (Some(k), Some(s)) => k.open(context, s).ok().map(|v| k.fingerprint(v.expose())),
        _ => None,
    };
    SecretShown { set: sealed.is_some(), fingerprint }
}

/// What operators see of a stored app.
pub fn show(accounts: &Accounts, row: AppRow) -> AppShown {
    let keys = accounts.keys();
    let ctx = |c: &str| app_context(&row.appid, c);
    AppShown {
        secret: shown(keys, &ctx("secret"), Some(&row.secret_sealed)),
        token: shown(keys, &ctx("token"), row.token_sealed.as_deref()),
        aes_key: shown(keys, &ctx("aes_key"), row.aes_key_sealed.as_deref()),
        row,
    }
}

/// What the audit log keeps of an app: never a secret.
#[derive(Serialize)]
struct Audited<'a> {
    kind: AppKind,
    appid: &'a str,
    name: &'a str,
    message_mode: Option<MessageMode>,
    task_template_id: Option<&'a str>,
    secret_fingerprint: Option<String>,
    token_fingerprint: Option<String>,
    aes_key_fingerprint: Option<String>,
}

fn audited<'a>(shown: &'a AppShown) -> Audited<'a> {
    Audited {
        kind: shown.row.kind,
        appid: &shown.row.appid,
        name: &shown.row.name,
        message_mode: shown.row.message_mode,
        task_template_id: shown.row.task_template_id.as_deref(),
        secret_fingerprint: shown.secret.fingerprint.clone(),
        token_fingerprint: shown.token.fingerprint.clone(),
        aes_key_fingerprint: shown.aes_key.fingerprint.clone(),
    }
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::invalid(ErrorCode::ValidationFailed, message)
}

fn valid_appid(appid: &str) -> DomainResult<String> {
    let a = appid.trim();
    if a.is_empty() || a.len() > 32 || !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(invalid("appid must be 1–32 letters, digits or '_' (as wx1234567890abcdef)"));
    }
    Ok(a.to_owned())
}

/// The values to store, checked: the secrets in clear (to check and seal), the rest as stored.
struct Checked {
    name: String,
    secret: String,
    token: Option<String>,
    aes_key: Option<String>,
    message_mode: Option<MessageMode>,
    task_template_id: Option<String>,
}

fn check_input(
    kind: AppKind,
    appid: &str,
    input: &AppInput,
    stored: Option<(&SealingKeys, &AppRow)>,
) -> DomainResult<Checked> {
    let name = required_text("name", &input.name, 64)?;
    let open = |column: &str, sealed: Option<&str>| -> DomainResult<Option<String>> {
        match (stored, sealed) {
            (Some((keys, row)), Some(s)) => keys
                .open(&app_context(&row.appid, column), s)
                .map(|v| Some(v.expose().to_owned()))
                .map_err(|e| DomainError::Upstream(format!("the stored {column} does not open: {e}"))),
            _ => Ok(None),
        }
    };
    let secret = match input.secret.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => {
            if s.len() > 128 {
                return Err(invalid("secret must be at most 128 characters"));
            }
            s.to_owned()
        }
        _ => match open("secret", stored.map(|(_, r)| r.secret_sealed.as_str()))? {
            Some(s) => s,
            None => return Err(invalid("secret (the AppSecret) is required")),
        },
    };
    match kind {
        AppKind::Oa => {
            let token = match optional_text("token", input.token.as_deref(), 32)? {
                Some(t) => Some(t),
                None => open("token", stored.and_then(|(_, r)| r.token_sealed.as_deref()))?,
            };
            let Some(token) = token else {
                return Err(invalid("token (the callback Token of the official account) is required"));
            };
            if token.len() < 3 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(invalid("token must be 3–32 letters or digits, as WeChat's console requires"));
            }
            let aes_key = match optional_text("aes_key", input.aes_key.as_deref(), 43)? {
                Some(k) => Some(k),
                None => open("aes_key", stored.and_then(|(_, r)| r.aes_key_sealed.as_deref()))?,
            };
            if let Some(k) = &aes_key {
                if MsgCrypt::new(k, appid).is_err() {
                    return Err(invalid("aes_key must be the 43-character EncodingAESKey"));
                }
            }
            let mode = input.message_mode.unwrap_or(MessageMode::Safe);
            if mode != MessageMode::Plain && aes_key.is_none() {
                return Err(invalid(format!("message_mode {mode} needs aes_key (the EncodingAESKey)")));
            }
            if input.task_template_id.is_some() {
                return Err(invalid("task_template_id belongs to mini-programs"));
            }
            Ok(Checked { name, secret, token: Some(token), aes_key, message_mode: Some(mode), task_template_id: None })
        }
        AppKind::Mp => {
            if input.token.is_some() || input.aes_key.is_some() || input.message_mode.is_some() {
                return Err(invalid("token, aes_key and message_mode belong to official accounts"));
            }
            let task_template_id = optional_text("task_template_id", input.task_template_id.as_deref(), 64)?;
            Ok(Checked { name, secret, token: None, aes_key: None, message_mode: None, task_template_id })
        }
    }
}

/// Asks WeChat for a token with the credentials; a refusal is the operator's to fix.
async fn check_with_wechat(wechat: &WechatClient, appid: &str, secret: &str) -> DomainResult<()> {
    let app = AppCredentials { appid: appid.to_owned(), secret: crate::secret::Secret::new(secret) };
    match wechat.check_credentials(&app).await {
        Ok(()) => Ok(()),
        Err(WechatError::Api { errcode, errmsg }) => Err(DomainError::invalid(
            ErrorCode::CredentialsRejected,
            format!(
                "WeChat refused the appid and secret (errcode {errcode}: {errmsg}); check both in WeChat's console, \
                 and that this server's IP is on the app's IP allow-list"
            ),
        )),
        Err(e) => Err(DomainError::Upstream(format!("WeChat could not be asked to check the credentials: {e}"))),
    }
}

fn seal_fields<'a>(
    keys: &SealingKeys,
    appid: &str,
    c: &'a Checked,
    sealed: &'a mut [Option<String>; 3],
) -> AppFields<'a> {
    sealed[0] = Some(keys.seal(&app_context(appid, "secret"), &c.secret));
    sealed[1] = c.token.as_deref().map(|t| keys.seal(&app_context(appid, "token"), t));
    sealed[2] = c.aes_key.as_deref().map(|k| keys.seal(&app_context(appid, "aes_key"), k));
    AppFields {
        name: &c.name,
        secret_sealed: sealed[0].as_deref().unwrap_or_default(),
        token_sealed: sealed[1].as_deref(),
        aes_key_sealed: sealed[2].as_deref(),
        message_mode: c.message_mode,
        task_template_id: c.task_template_id.as_deref(),
    }
}

/// Registers an app for an org in the actor's reach. Admins only.
pub async fn create(
    accounts: &Accounts,
    wechat: &WechatClient,
    actor: &Actor,
    org_id: i64,
    kind: AppKind,
    appid: &str,
    input: AppInput,
) -> DomainResult<AppShown> {
    let appid = valid_appid(appid)?;
    // The owner first (404 outside the reach, then the role), so nobody learns of an org outside
    // their reach through WeChat's answer.
    owner_in_reach(accounts.db().reader(), actor, org_id, "WeChat apps").await?;
    actor.require(Role::Admin)?;
    let keys = sealing(accounts)?;
    let checked = check_input(kind, &appid, &input, None)?;
    check_with_wechat(wechat, &appid, &checked.secret).await?;
    let mut tx = accounts.db().begin().await?;
    let org = owner_in_reach(&mut *tx, actor, org_id, "WeChat apps").await?;
    let mut sealed = Default::default();
    let fields = seal_fields(keys, &appid, &checked, &mut sealed);
    let row = match store::insert(&mut tx, org.id, kind, &appid, &fields, db::now_ms()).await {
        Ok(row) => row,
        Err(DbError::UniqueViolation) => {
            return Err(DomainError::conflict(ErrorCode::AppExists, format!("the app {appid} is registered already")))
        }
        Err(e) => return Err(e.into()),
    };
    let out = show(accounts, row);
    audit::record(
        &mut tx,
        actor,
        &org,
        "wechat_app.create",
        ("wechat_app", out.row.id),
        (None::<&()>, Some(&audited(&out))),
    )
    .await?;
    commit(tx, accounts).await?;
    Ok(out)
}

async fn load(accounts: &Accounts, actor: &Actor, id: i64) -> DomainResult<(AppRow, OrgRow)> {
    let row = store::get(accounts.db().reader(), id).await?.ok_or(DomainError::NotFound("app"))?;
    let org = reached_owner(accounts, actor, row.org_id, "app").await?;
    Ok((row, org))
}

pub async fn get(accounts: &Accounts, actor: &Actor, id: i64) -> DomainResult<AppShown> {
    Ok(show(accounts, load(accounts, actor, id).await?.0))
}

pub async fn list(
    accounts: &Accounts,
    actor: &Actor,
    org_id: Option<i64>,
    kind: Option<AppKind>,
    page: PageRequest,
) -> DomainResult<Page<AppShown>> {
    let path = scope_of(accounts.db(), actor, org_id).await?;
    let found = store::list(accounts.db().reader(), &path, kind, page).await?;
    Ok(Page { items: found.items.into_iter().map(|r| show(accounts, r)).collect(), total: found.total })
}

/// Changes an app; secrets not sent are kept. The credentials are checked again when the secret
/// changes.
pub async fn update(
    accounts: &Accounts,
    wechat: &WechatClient,
    actor: &Actor,
    id: i64,
    input: AppInput,
) -> DomainResult<AppShown> {
    let (row, _) = load(accounts, actor, id).await?;
    actor.require(Role::Admin)?;
    let keys = sealing(accounts)?;
    let checked = check_input(row.kind, &row.appid, &input, Some((keys, &row)))?;
    if input.secret.as_deref().is_some_and(|s| !s.trim().is_empty()) {
        check_with_wechat(wechat, &row.appid, &checked.secret).await?;
    }
    let mut tx = accounts.db().begin().await?;
    let before = store::get(&mut *tx, id).await?.ok_or(DomainError::NotFound("app"))?;
    let org = orgs::get(&mut *tx, before.org_id).await?.ok_or(DomainError::NotFound("app"))?;
    let mut sealed = Default::default();
    let fields = seal_fields(keys, &row.appid, &checked, &mut sealed);
    let after = store::update(&mut tx, id, &fields, db::now_ms().max(before.updated_at + 1)).await?;
    let (before, after) = (show(accounts, before), show(accounts, after));
    audit::record(
        &mut tx,
        actor,
        &org,
        "wechat_app.update",
        ("wechat_app", id),
        (Some(&audited(&before)), Some(&audited(&after))),
    )
    .await?;
    commit(tx, accounts).await?;
    Ok(after)
}

/// Removes an app: its pushes are refused from then on. Residents' identities in it stay.
pub async fn delete(accounts: &Accounts, actor: &Actor, id: i64) -> DomainResult<AppShown> {
    let (row, org) = load(accounts, actor, id).await?;
    actor.require(Role::Admin)?;
    let mut tx = accounts.db().begin().await?;
    store::delete(&mut tx, id).await?;
    let gone = show(accounts, row);
    audit::record(&mut tx, actor, &org, "wechat_app.delete", ("wechat_app", id), (Some(&audited(&gone)), None::<&()>))
        .await?;
    commit(tx, accounts).await?;
    Ok(gone)
}
