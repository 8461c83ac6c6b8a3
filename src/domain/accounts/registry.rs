//! The accounts an instance routes by, opened once and kept in memory: official accounts by
//! appid (their callback Token, EncodingAESKey and message mode), mini-programs by appid, and
//! merchants by mch_id with their Pay clients built. Records are re-read every few seconds (and at
//! once after a change made through this instance), so every instance follows the admin API; a
//! record that no longer opens keeps its last good form and is reported, never dropped silently.
//!
//! The environment's account, mini-program and merchant (`WECHAT_OA_*`, `WECHAT_MP_*`,
//! `WECHATPAY_*`) are entries too, marked as such; a record with the same appid or mch_id wins.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::{OaMessageMode, PaySettings, Settings};
use crate::db::accounts::apps::{self as app_store, AppKind, AppRow, MessageMode};
use crate::db::accounts::merchants::{self as merchant_store, MerchantRow, TransferApi, VerifyKeys};
use crate::db::{community::orgs, Db};
use crate::domain::community::orgs::company_of_path;
use crate::domain::operators::access::PLATFORM_ORG_ID;
use crate::sealing::{SealError, SealingKeys};
use crate::secret::Secret;
use crate::wechat::api::AppCredentials;
use crate::wechat::pay::clients::{MerchantKeys, PayClients};
use crate::wechat::pay::v3::VerifyWith;

/// How often records are re-read.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// A push for an appid not known yet re-reads the records at most this often.
const MISS_REFRESH_EVERY: Duration = Duration::from_secs(1);

/// Where an account came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A record: its id.
    Record(i64),
    /// The environment.
    Environment,
}

/// An official account, opened.
#[derive(Clone, Debug)]
pub struct OfficialAccount {
    pub appid: String,
    pub source: Source,
    /// The owner (a record's org), absent for the environment's account.
    pub org_id: Option<i64>,
    /// The property company whose points programme follows and check-ins earn in.
    pub company_id: Option<i64>,
    pub secret: Option<Secret>,
    pub token: Option<Secret>,
    pub aes_key: Option<Secret>,
    pub mode: OaMessageMode,
}

impl OfficialAccount {
    pub fn credentials(&self) -> Option<AppCredentials> {
        self.secret.clone().map(|secret| AppCredentials { appid: self.appid.clone(), secret })
    }
}

/// A mini-program, opened.
#[derive(Clone, Debug)]
pub struct MiniProgram {
    pub appid: String,
    pub source: Source,
    /// The owner (a record's org), absent for the environment's.
    pub org_id: Option<i64>,
    pub secret: Secret,
    pub task_template_id: Option<String>,
}

impl MiniProgram {
    pub fn credentials(&self) -> AppCredentials {
        AppCredentials { appid: self.appid.clone(), secret: self.secret.clone() }
    }
}

/// A merchant, its clients built.
#[derive(Clone, Debug)]
pub struct Merchant {
    pub mch_id: String,
    pub source: Source,
    /// The owner (a record's org), absent for the environment's.
    pub org_id: Option<i64>,
    pub clients: PayClients,
    pub transfer_api: TransferApi,
    pub transfer_scene_id: String,
    pub rate_per_sec: u32,
    pub notify_url: Option<String>,
    /// Pays for owners without a merchant of their own.
    pub fallback: bool,
}

impl Merchant {
    /// Why this merchant cannot pay on `channel`, if it cannot.
    pub fn cannot_pay(&self, channel: crate::db::money::payouts::PayoutChannel) -> Option<String> {
        use crate::db::money::payouts::PayoutChannel;
        match channel {
            PayoutChannel::Balance => None,
            PayoutChannel::CashRedPacket if self.clients.v2.is_none() => {
                Some(format!("merchant {} has no APIv2 key, which cash red packets need", self.mch_id))
            }
            PayoutChannel::Transfer if self.transfer_api == TransferApi::V2 && self.clients.v2.is_none() => {
                Some(format!("merchant {} pays transfers through v2 and has no APIv2 key", self.mch_id))
            }
            PayoutChannel::Transfer if self.transfer_api == TransferApi::V3 && self.clients.v3.is_none() => {
                Some(format!(
                    "merchant {} has no v3 keys (APIv3 key, merchant key and serial), which transfers need",
                    self.mch_id
                ))
            }
            _ => None,
        }
    }
}

#[derive(Default)]
struct Snapshot {
    oa: HashMap<String, Arc<OfficialAccount>>,
    mp: HashMap<String, Arc<MiniProgram>>,
    merchants: HashMap<String, Arc<Merchant>>,
    /// Records' `updated_at`, so an unchanged record is not opened again.
    app_stamps: HashMap<i64, i64>,
    merchant_stamps: HashMap<i64, i64>,
}

/// The registry of one instance; cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    keys: Option<SealingKeys>,
    pay_base: String,
    pay_timeout: Duration,
    /// `LINLI_PAY_TRANSFER_SCENE_ID`: the scene when no merchant names one.
    default_scene: String,
    root_ca_pem: Option<String>,
    env_oa: Option<Arc<OfficialAccount>>,
    env_mp: Option<Arc<MiniProgram>>,
    env_merchant: Option<Arc<Merchant>>,
    snapshot: RwLock<Arc<Snapshot>>,
    last_miss: Mutex<Option<Instant>>,
    /// Org paths never change; owners' paths are looked up once.
    paths: Mutex<HashMap<i64, String>>,
}

fn mode_of(m: MessageMode) -> OaMessageMode {
    match m {
        MessageMode::Plain => OaMessageMode::Plain,
        MessageMode::Compat => OaMessageMode::Compat,
        MessageMode::Safe => OaMessageMode::Safe,
    }
}

pub(crate) fn verify_with_of(v: VerifyKeys) -> VerifyWith {
    match v {
        VerifyKeys::PublicKey => VerifyWith::PublicKey,
        VerifyKeys::PlatformCertificates => VerifyWith::PlatformCertificates,
        VerifyKeys::Both => VerifyWith::Both,
    }
}

/// The sealing contexts: each secret opens only in its own row and column.
pub fn app_context(appid: &str, column: &str) -> String {
    format!("wechat_apps.{column}:{appid}")
}

pub fn merchant_context(mch_id: &str, column: &str) -> String {
    format!("pay_merchants.{column}:{mch_id}")
}

fn open_opt(keys: &SealingKeys, context: &str, sealed: Option<&str>) -> Result<Option<Secret>, SealError> {
    sealed.map(|s| keys.open(context, s)).transpose()
}

impl Accounts {
    /// Builds the registry and opens every record: a record that does not open under
    /// `LINLI_SECRET_KEY` (or records without the key) fail start-up with the reason.
    pub async fn load(db: &Db, settings: &Settings, env_pay: Option<PayClients>) -> anyhow::Result<Accounts> {
        let w = &settings.wechat;
        let env_oa = w.oa_appid.clone().map(|appid| {
            Arc::new(OfficialAccount {
                appid,
                source: Source::Environment,
                org_id: None,
                company_id: w.oa_company_id,
                secret: w.oa_secret.clone(),
                token: w.oa_token.clone(),
                aes_key: w.oa_aes_key.clone(),
                mode: w.oa_message_mode(),
            })
        });
        let env_mp = match (&w.mp_appid, &w.mp_secret) {
            (Some(appid), Some(secret)) => Some(Arc::new(MiniProgram {
                appid: appid.clone(),
                source: Source::Environment,
                org_id: None,
                secret: secret.clone(),
                task_template_id: w.mp_task_template_id.clone(),
            })),
            _ => None,
        };
        let env_merchant = env_pay.map(|clients| Arc::new(env_merchant(clients, &settings.pay)));
        let root_ca_pem = match &settings.pay.root_ca_path {
            Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?),
            None => None,
        };
        let accounts = Accounts {
            inner: Arc::new(Inner {
                db: db.clone(),
                keys: settings.sealing_keys.clone(),
                pay_base: settings.pay.api_base.clone(),
                default_scene: settings.pay.payouts.transfer_scene_id.clone(),
                pay_timeout: settings.pay.payouts.timeout,
                root_ca_pem,
                env_oa,
                env_mp,
                env_merchant,
                snapshot: RwLock::new(Arc::new(Snapshot::default())),
                last_miss: Mutex::new(None),
                paths: Mutex::new(HashMap::new()),
            }),
        };
        accounts.refresh_strict().await?;
        Ok(accounts)
    }

    /// The transfer scene payouts use when no merchant pays for their owner.
    pub fn default_transfer_scene(&self) -> &str {
        &self.inner.default_scene
    }

    /// The sealing keys, when `LINLI_SECRET_KEY` is set.
    pub fn keys(&self) -> Option<&SealingKeys> {
        self.inner.keys.as_ref()
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.inner.snapshot.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the records; a record that does not open is an error.
    async fn refresh_strict(&self) -> anyhow::Result<()> {
        let problems = self.refresh().await?;
        if let Some(first) = problems.into_iter().next() {
            anyhow::bail!("{first}");
        }
        Ok(())
    }

    /// Re-reads the records, opening the new and changed ones. Answers what did not open (those
    /// keep their last good form).
    pub async fn refresh(&self) -> anyhow::Result<Vec<String>> {
        let db = &self.inner.db;
        let apps = app_store::all(db.reader()).await.context("reading the WeChat app records")?;
        let merchants = merchant_store::all(db.reader()).await.context("reading the merchant records")?;
        let old = self.snapshot();
        let mut next = Snapshot::default();
        let mut problems = Vec::new();
        for row in apps {
            let kept = old.app_stamps.get(&row.id) == Some(&row.updated_at);
            let placed = match row.kind {
                AppKind::Oa => {
                    let opened = match reusable(&old.oa, &row.appid, row.id, kept, |a| a.source) {
                        Some(a) => Ok(a),
                        None => self.open_oa(&row).await.map(Arc::new),
                    };
                    let what = format!("the official account {} (record {})", row.appid, row.id);
                    place(&mut next.oa, &old.oa, &row.appid, opened, what, &mut problems)
                }
                AppKind::Mp => {
                    let opened = match reusable(&old.mp, &row.appid, row.id, kept, |a| a.source) {
                        Some(a) => Ok(a),
                        None => self.open_mp(&row).map(Arc::new),
                    };
                    let what = format!("the mini-program {} (record {})", row.appid, row.id);
                    place(&mut next.mp, &old.mp, &row.appid, opened, what, &mut problems)
                }
            };
            if placed {
                next.app_stamps.insert(row.id, row.updated_at);
            }
        }
        for row in merchants {
            let kept = old.merchant_stamps.get(&row.id) == Some(&row.updated_at);
            let opened = match reusable(&old.merchants, &row.mch_id, row.id, kept, |m| m.source) {
                Some(m) => Ok(m),
                None => self.open_merchant(&row).map(Arc::new),
            };
            let what = format!("the merchant {} (record {})", row.mch_id, row.id);
            if place(&mut next.merchants, &old.merchants, &row.mch_id, opened, what, &mut problems) {
                next.merchant_stamps.insert(row.id, row.updated_at);
            }
        }
        for p in &problems {
            tracing::error!("{p}");
        }
        *self.inner.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok(problems)
    }

    fn sealing(&self) -> anyhow::Result<&SealingKeys> {
        self.inner
            .keys
            .as_ref()
            .with_context(|| format!("records hold sealed secrets and {} is not set", crate::sealing::SECRET_KEY_ENV))
    }

    /// An owner's path for opening a record: read outside any transaction.
    async fn path_of(&self, org_id: i64) -> anyhow::Result<String> {
        let mut conn = self.inner.db.reader().acquire().await?;
        self.owner_path(&mut conn, org_id).await?.with_context(|| format!("org {org_id} is gone"))
    }

    async fn open_oa(&self, row: &AppRow) -> anyhow::Result<OfficialAccount> {
        let keys = self.sealing()?;
        let ctx = |c: &str| app_context(&row.appid, c);
        // A platform account is shared: no one company's programme.
        let company_id = company_of_path(&self.path_of(row.org_id).await?);
        Ok(OfficialAccount {
            appid: row.appid.clone(),
            source: Source::Record(row.id),
            org_id: Some(row.org_id),
            company_id,
            secret: Some(keys.open(&ctx("secret"), &row.secret_sealed)?),
            token: open_opt(keys, &ctx("token"), row.token_sealed.as_deref())?,
            aes_key: open_opt(keys, &ctx("aes_key"), row.aes_key_sealed.as_deref())?,
            mode: row.message_mode.map_or(OaMessageMode::Safe, mode_of),
        })
    }

    fn open_mp(&self, row: &AppRow) -> anyhow::Result<MiniProgram> {
        let keys = self.sealing()?;
        Ok(MiniProgram {
            appid: row.appid.clone(),
            source: Source::Record(row.id),
            org_id: Some(row.org_id),
            secret: keys.open(&app_context(&row.appid, "secret"), &row.secret_sealed)?,
            task_template_id: row.task_template_id.clone(),
        })
    }

    /// The key material of a merchant record, opened.
    pub(crate) fn merchant_keys(&self, row: &MerchantRow) -> anyhow::Result<MerchantKeys> {
        let keys = self.sealing()?;
        let ctx = |c: &str| merchant_context(&row.mch_id, c);
        let clear = [
            open_opt(keys, &ctx("api_key_v2"), row.api_key_v2_sealed.as_deref())?,
            open_opt(keys, &ctx("api_v3_key"), row.api_v3_key_sealed.as_deref())?,
            open_opt(keys, &ctx("private_key"), row.private_key_sealed.as_deref())?,
            open_opt(keys, &ctx("client_cert"), row.client_cert_sealed.as_deref())?,
        ];
        Ok(self.keys_with(row, clear))
    }

    /// The key material of a merchant about to be saved, from its secrets in clear
    /// (APIv2 key, APIv3 key, private key, client certificate).
    pub(crate) fn merchant_keys_in_clear(&self, row: &MerchantRow, secrets: &[Option<String>; 4]) -> MerchantKeys {
        self.keys_with(row, secrets.clone().map(|s| s.map(Secret::new)))
    }

    fn keys_with(&self, row: &MerchantRow, [v2, v3, private, client]: [Option<Secret>; 4]) -> MerchantKeys {
        MerchantKeys {
            api_base: self.inner.pay_base.clone(),
            mch_id: row.mch_id.clone(),
            api_key_v2: v2,
            api_v3_key: v3,
            cert_serial: row.cert_serial.clone(),
            private_key_pem: private,
            public_key: row.public_key_id.clone().zip(row.public_key_pem.clone()),
            client_identity_pem: client,
            root_ca_pem: self.inner.root_ca_pem.clone(),
            verify_with: row.verify_with.map(verify_with_of),
            platform_cert_refresh_secs: None,
            timeout: self.inner.pay_timeout,
        }
    }

    fn open_merchant(&self, row: &MerchantRow) -> anyhow::Result<Merchant> {
        let clients = PayClients::build(&self.merchant_keys(row)?)?;
        Ok(Merchant {
            mch_id: row.mch_id.clone(),
            source: Source::Record(row.id),
            org_id: Some(row.org_id),
            clients,
            transfer_api: row.transfer_api,
            transfer_scene_id: row.transfer_scene_id.clone(),
            rate_per_sec: u32::try_from(row.rate_per_sec).unwrap_or(u32::MAX),
            notify_url: row.notify_url.clone(),
            fallback: row.platform_fallback,
        })
    }

    /// Re-reads the records every [`REFRESH_EVERY`], until aborted.
    pub fn spawn_refresh(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = this.refresh().await {
                    tracing::warn!(error = %e, "re-reading the WeChat accounts failed; keeping the last ones");
                }
            }
        })
    }

    // ----- lookups -------------------------------------------------------------------------

    /// The official account pushing to `/wechat/oa/{appid}/callback`. An appid not known yet
    /// re-reads the records first (at most once a second), for an account added on another
    /// instance a moment ago.
    pub async fn official_account(&self, appid: &str) -> Option<Arc<OfficialAccount>> {
        match self.cached_oa(appid) {
            Some(found) => Some(found),
            None => self.reread_official_account(appid).await,
        }
    }

    /// The official account after re-reading the records (at most once a second; otherwise as
    /// cached), for a push whose signature does not verify with the cached Token.
    pub async fn reread_official_account(&self, appid: &str) -> Option<Arc<OfficialAccount>> {
        self.reread_at_most_once_a_second().await;
        self.cached_oa(appid)
    }

    fn cached_oa(&self, appid: &str) -> Option<Arc<OfficialAccount>> {
        let snap = self.snapshot();
        snap.oa.get(appid).cloned().or_else(|| self.inner.env_oa.clone().filter(|a| a.appid == appid))
    }

    /// Re-reads the records unless this instance did so less than a second ago: what an appid
    /// not known yet, or a signature that does not verify, may cost (a flood of them, one read a
    /// second).
    async fn reread_at_most_once_a_second(&self) {
        let due = {
            let mut last = self.inner.last_miss.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let due = last.is_none_or(|t| now.duration_since(t) >= MISS_REFRESH_EVERY);
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "re-reading the WeChat accounts failed; keeping the last ones");
            }
        }
    }

    /// The environment's official account (the one `/wechat/oa/callback` serves), unless a
    /// record took its appid.
    pub fn environment_oa(&self) -> Option<Arc<OfficialAccount>> {
        let env = self.inner.env_oa.as_ref()?;
        Some(self.snapshot().oa.get(&env.appid).cloned().unwrap_or_else(|| Arc::clone(env)))
    }

    /// The mini-program a login names (`None`: the environment's). An appid not known yet
    /// re-reads the records first (at most once a second), as for pushes.
    pub async fn login_mini_program(&self, appid: Option<&str>) -> Option<Arc<MiniProgram>> {
        if let Some(found) = self.mini_program(appid) {
            return Some(found);
        }
        if appid.is_some() {
            self.reread_at_most_once_a_second().await;
        }
        self.mini_program(appid)
    }

    /// The mini-program with this appid, or the environment's when `appid` is absent.
    pub fn mini_program(&self, appid: Option<&str>) -> Option<Arc<MiniProgram>> {
        let snap = self.snapshot();
        match appid {
            Some(appid) => {
                snap.mp.get(appid).cloned().or_else(|| self.inner.env_mp.clone().filter(|m| m.appid == appid))
            }
            None => {
                let env = self.inner.env_mp.as_ref()?;
                Some(snap.mp.get(&env.appid).cloned().unwrap_or_else(|| Arc::clone(env)))
            }
        }
    }

    /// The merchant with this mch_id; `None` names the environment's.
    pub fn merchant(&self, mch_id: Option<&str>) -> Option<Arc<Merchant>> {
        match mch_id {
            Some(id) => self
                .snapshot()
                .merchants
                .get(id)
                .cloned()
                .or_else(|| self.inner.env_merchant.clone().filter(|m| m.mch_id == id)),
            None => self.inner.env_merchant.clone(),
        }
    }

    /// The merchant configured by environment's mch_id, when there is one.
    pub fn environment_mch_id(&self) -> Option<&str> {
        self.inner.env_merchant.as_deref().map(|m| m.mch_id.as_str())
    }

    /// Every merchant: the records' and the environment's.
    pub fn merchants(&self) -> Vec<Arc<Merchant>> {
        let snap = self.snapshot();
        let mut out: Vec<Arc<Merchant>> = snap.merchants.values().cloned().collect();
        if let Some(env) = &self.inner.env_merchant {
            if !snap.merchants.contains_key(&env.mch_id) {
                out.push(Arc::clone(env));
            }
        }
        out.sort_by(|a, b| a.mch_id.cmp(&b.mch_id));
        out
    }

    /// Whether any merchant can pay at all.
    pub fn any_merchant(&self) -> bool {
        self.inner.env_merchant.is_some() || !self.snapshot().merchants.is_empty()
    }

    /// What pays for an owner at `owner_path`: the merchant of the owner or of its nearest
    /// ancestor below the platform; then the platform's fallback merchant; then the
    /// environment's (which paid for everyone before records existed). `None`: nobody.
    pub fn funding_merchant(&self, owner_path: &str) -> Option<Arc<Merchant>> {
        let snap = self.snapshot();
        nearest(owner_path, |id| {
            if id == PLATFORM_ORG_ID {
                return None;
            }
            snap.merchants.values().filter(|m| m.org_id == Some(id)).min_by_key(|m| m.mch_id.clone()).cloned()
        })
        .or_else(|| {
            snap.merchants
                .values()
                .filter(|m| m.fallback && m.org_id == Some(PLATFORM_ORG_ID))
                .min_by_key(|m| m.mch_id.clone())
                .cloned()
        })
        .or_else(|| self.inner.env_merchant.clone())
    }

    /// The apps an owner's residents are paid through: the nearest official account and
    /// mini-program up the owner's path (the platform's included), then the environment's.
    pub fn payout_apps(&self, owner_path: &str) -> (Option<String>, Option<String>) {
        let snap = self.snapshot();
        let oa =
            nearest(owner_path, |id| snap.oa.values().filter(|a| a.org_id == Some(id)).map(|a| a.appid.clone()).min())
                .or_else(|| self.inner.env_oa.as_ref().map(|a| a.appid.clone()));
        let mp =
            nearest(owner_path, |id| snap.mp.values().filter(|a| a.org_id == Some(id)).map(|a| a.appid.clone()).min())
                .or_else(|| self.inner.env_mp.as_ref().map(|a| a.appid.clone()));
        (oa, mp)
    }

    /// The official account of a property company (its own, else the platform's, else the
    /// environment's): the one its followers follow.
    pub fn company_official_account(&self, company_id: i64) -> Option<String> {
        self.payout_apps(&format!("/{PLATFORM_ORG_ID}/{company_id}/")).0
    }

    /// The owner's path, looked up once, through `conn` — the caller's transaction when it is in
    /// one: a transaction that took a second connection from a PostgreSQL pool it shares could
    /// wait for itself. `None` for an org that does not exist.
    pub async fn owner_path(
        &self,
        conn: &mut sqlx::AnyConnection,
        org_id: i64,
    ) -> Result<Option<String>, crate::db::DbError> {
        if let Some(p) = self.cached_path(org_id) {
            return Ok(Some(p));
        }
        let Some(org) = orgs::get(&mut *conn, org_id).await? else { return Ok(None) };
        self.inner.paths.lock().unwrap_or_else(|e| e.into_inner()).insert(org_id, org.path.clone());
        Ok(Some(org.path))
    }

    fn cached_path(&self, org_id: i64) -> Option<String> {
        if org_id == PLATFORM_ORG_ID {
            return Some(format!("/{PLATFORM_ORG_ID}/"));
        }
        self.inner.paths.lock().unwrap_or_else(|e| e.into_inner()).get(&org_id).cloned()
    }
}

/// The last snapshot's form of record `id` under `key`, when the record is unchanged (`kept`).
fn reusable<T>(
    old: &HashMap<String, Arc<T>>,
    key: &str,
    id: i64,
    kept: bool,
    source: impl Fn(&T) -> Source,
) -> Option<Arc<T>> {
    old.get(key).filter(|a| kept && source(a) == Source::Record(id)).cloned()
}

/// Puts a record's opened form in the next snapshot; when it did not open, its last good form
/// stays and the failure is reported. Answers whether the record was opened (its stamp is kept).
fn place<T>(
    next: &mut HashMap<String, Arc<T>>,
    old: &HashMap<String, Arc<T>>,
    key: &str,
    opened: anyhow::Result<Arc<T>>,
    what: String,
    problems: &mut Vec<String>,
) -> bool {
    match opened {
        Ok(a) => {
            next.insert(key.to_owned(), a);
            true
        }
        Err(e) => {
            problems.push(format!("{what}: {e:#}"));
            if let Some(prev) = old.get(key) {
                next.insert(key.to_owned(), Arc::clone(prev));
            }
            false
        }
    }
}

/// The ids on a path, nearest first (`/1/5/12/` → 12, 5, 1), the first that `f` answers for.
fn nearest<T>(path: &str, f: impl Fn(i64) -> Option<T>) -> Option<T> {
    path.split('/').filter(|s| !s.is_empty()).rev().filter_map(|s| s.parse::<i64>().ok()).find_map(f)
}

fn env_merchant(clients: PayClients, pay: &PaySettings) -> Merchant {
    Merchant {
        mch_id: clients.mch_id.clone(),
        source: Source::Environment,
        org_id: None,
        transfer_api: if pay.payouts.transfer_api == "v2" { TransferApi::V2 } else { TransferApi::V3 },
        transfer_scene_id: pay.payouts.transfer_scene_id.clone(),
        rate_per_sec: pay.payouts.rate_per_sec,
        notify_url: pay.notify_url.clone(),
        fallback: true,
        clients,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_owner_up_the_path_answers() {
        let found = nearest("/1/5/12/", |id| (id == 5 || id == 1).then_some(id));
        assert_eq!(found, Some(5));
        assert_eq!(nearest("/1/5/12/", |id| (id == 99).then_some(id)), None);
    }
}
