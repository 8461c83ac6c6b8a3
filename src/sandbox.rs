//! The sandbox: with no WeChat credentials at all, `linli serve` runs against wechat-mock started
//! in this process, so a newcomer's `cargo run` gives a working service end to end (official
//! account, mini-program, WeChat Pay) without an account at WeChat. Real credentials switch it off.
//!
//! This module owns deciding whether the sandbox applies, starting the mock, pointing the settings
//! at it (the mock's official account, mini-program and merchant, WeChat Pay keys written to files,
//! quick payout checks), and bootstrapping what the walkthrough needs in the database: the property
//! company the official account belongs to and a platform admin key in a file. It also makes a
//! second property company that brings its own WeChat as records — its own official account and
//! mini-program (on another open platform) and its own merchant, registered through the same
//! checks as the admin API and sealed under a master key kept in the sandbox directory — so both
//! ways of configuring WeChat run side by side. It is idempotent across restarts: the same
//! database gives the same companies and records, and a key file that still works is kept. The
//! `/sandbox` route ([`describe`]) tells the walkthrough where the mock is.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use wechat_mock::pay::config as merchant;
use wechat_mock::{MockApp, RunningMock};

use crate::app::connect_and_migrate;
use crate::config::{Secret, Settings};
use crate::db::community::orgs::OrgFilter;
use crate::db::{Db, PageRequest};
use crate::domain::community::orgs::{self, NewOrg, OrgKind};
use crate::domain::operators::access::{Actor, Role, PLATFORM_ORG_ID};
use crate::domain::operators::keys;

/// Where the sandbox's wechat-mock listens.
pub const MOCK_LISTEN_ENV: &str = "LINLI_SANDBOX_MOCK_LISTEN";
pub const DEFAULT_MOCK_LISTEN: &str = "127.0.0.1:9090";
/// The sandbox's files (admin key, WeChat Pay keys); default `.linli-sandbox` beside the SQLite
/// database file (in the working directory for PostgreSQL).
pub const DIR_ENV: &str = "LINLI_SANDBOX_DIR";
pub const DEFAULT_DIR_NAME: &str = ".linli-sandbox";
/// The platform admin key's file in the sandbox directory.
pub const ADMIN_KEY_FILE: &str = "admin-key";
/// The property company the sandbox's official account belongs to, made on first start.
pub const COMPANY_NAME: &str = "沙箱物业";
const ADMIN_KEY_NAME: &str = "sandbox walkthrough";
/// The second property company, whose WeChat apps and merchant are records.
pub const SECOND_COMPANY_NAME: &str = "沙箱二号物业";
/// The second company's official account and mini-program, as the sandbox's mock knows them.
pub const SECOND_OA_APPID: &str = "wx_sandbox_b_oa";
pub const SECOND_OA_SECRET: &str = "sandbox_b_oa_secret_0123456789ab";
pub const SECOND_OA_TOKEN: &str = "SandboxSecondToken2026";
pub const SECOND_OA_AES_KEY: &str = "BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSY";
pub const SECOND_MP_APPID: &str = "wx_sandbox_b_mp";
pub const SECOND_MP_SECRET: &str = "sandbox_b_mp_secret_0123456789ab";
/// The open-platform account of the second company's apps: its residents are other persons.
const SECOND_OPEN_PLATFORM: &str = "sandbox-second";
/// The sandbox's master key file (`LINLI_SECRET_KEY` when none is set).
pub const SECRET_KEY_FILE: &str = "secret-key";

/// Any of these set means real WeChat: no sandbox.
pub const CREDENTIAL_ENVS: [&str; 3] = ["WECHAT_OA_APPID", "WECHAT_MP_APPID", "WECHATPAY_MCH_ID"];

/// Payout timings the sandbox shortens (unless set explicitly) so that the walkthrough sees a
/// red packet paid in seconds rather than after WeChat's 24 hours.
const RECEIPT_CHECK_ENV: &str = "LINLI_RED_PACKET_RECEIPT_CHECK_SECS";
const POLL_ENV: &str = "LINLI_PAYOUT_POLL_SECS";
const SANDBOX_RECEIPT_CHECK_SECS: i64 = 5;
const SANDBOX_POLL_SECS: i64 = 5;

/// A setting's value as [`Settings::from_lookup`] reads it: trimmed, empty meaning unset.
fn setting(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Whether the sandbox applies: none of [`CREDENTIAL_ENVS`] is set.
pub fn applies(lookup: &impl Fn(&str) -> Option<String>) -> bool {
    CREDENTIAL_ENVS.iter().all(|name| setting(lookup, name).is_none())
}

/// The sandbox directory: `LINLI_SANDBOX_DIR`, or `.linli-sandbox` beside the SQLite database
/// file named by `DATABASE_URL` (the working directory for PostgreSQL or an in-memory database).
pub fn dir(lookup: &impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = setting(lookup, DIR_ENV) {
        return PathBuf::from(dir);
    }
    let url = setting(lookup, "DATABASE_URL").unwrap_or_else(|| crate::config::DEFAULT_DATABASE_URL.to_owned());
    let file = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or_default())
        .filter(|path| !path.is_empty() && !path.contains(":memory:"));
    let parent = file.and_then(|f| Path::new(f).parent()).filter(|p| !p.as_os_str().is_empty());
    parent.unwrap_or(Path::new(".")).join(DEFAULT_DIR_NAME)
}

/// The admin key file of the sandbox directory.
pub fn admin_key_path(lookup: &impl Fn(&str) -> Option<String>) -> PathBuf {
    dir(lookup).join(ADMIN_KEY_FILE)
}

/// A running sandbox: the mock, and what was set up for it.
pub struct Sandbox {
    mock: RunningMock,
    /// The address asked for, when it was taken and the mock went elsewhere.
    wanted_listen_taken: Option<String>,
    pub dir: PathBuf,
    pub admin_key_path: PathBuf,
    /// Whether the admin key was made on this start (otherwise the file's key was still valid).
    pub admin_key_created: bool,
    pub company_id: i64,
    /// The second company, whose WeChat apps and merchant are records.
    pub second_company_id: i64,
}

impl Sandbox {
    /// Starts the sandbox when no real credentials are set (`None` otherwise): wechat-mock on
    /// `LINLI_SANDBOX_MOCK_LISTEN`, the settings pointed at it, and the company and admin key in
    /// the database.
    pub async fn start(
        settings: &mut Settings,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<Self>> {
        if !applies(&lookup) {
            return Ok(None);
        }
        let dir = dir(&lookup);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating the sandbox directory {}", dir.display()))?;

        let listen = setting(&lookup, MOCK_LISTEN_ENV).unwrap_or_else(|| DEFAULT_MOCK_LISTEN.to_owned());
        let (mock, wanted_listen_taken) = start_mock(&listen).await?;
        configure(settings, &lookup, &dir, &mock.base_url)?;

        if settings.sealing_keys.is_none() {
            settings.sealing_keys = Some(sandbox_secret_key(&dir)?);
        }
        let db = connect_and_migrate(settings).await?;
        let bootstrapped = bootstrap(&db, settings.wechat.oa_company_id, &dir).await;
        let second = match &bootstrapped {
            Ok(_) => Some(second_company(&db, settings).await),
            Err(_) => None,
        };
        db.close().await;
        let (company_id, admin_key_path, admin_key_created) = bootstrapped?;
        let second_company_id = second.context("the second company")??;
        settings.wechat.oa_company_id = Some(company_id);
        settings.sandbox_second_company_id = Some(second_company_id);
        Ok(Some(Self {
            mock,
            wanted_listen_taken,
            dir,
            admin_key_path,
            admin_key_created,
            company_id,
            second_company_id,
        }))
    }

    pub fn mock_url(&self) -> &str {
        &self.mock.base_url
    }

    /// The loud notice that this is not WeChat, with where everything is.
    pub fn banner(&self) -> String {
        let rule = "=".repeat(86);
        let mut b = String::new();
        let _ = writeln!(b, "{rule}");
        let _ = writeln!(b, "  SANDBOX MODE: this is NOT real WeChat, and no real money moves.");
        let _ = writeln!(b, "  No WeChat credentials are set ({}),", CREDENTIAL_ENVS.join(", "));
        let _ = writeln!(b, "  so linli runs against wechat-mock, a fake WeChat inside this process.");
        let _ = writeln!(b);
        let _ = writeln!(b, "  fake WeChat         {}   (control API under /__mock/)", self.mock_url());
        if let Some(taken) = &self.wanted_listen_taken {
            let _ = writeln!(b, "                      ({taken} was taken, so it listens here instead)");
        }
        let _ = writeln!(
            b,
            "  official account    {}, owned by company {COMPANY_NAME} (org {})",
            wechat_mock::OA_APPID,
            self.company_id
        );
        let _ = writeln!(b, "  mini-program        {}", wechat_mock::MP_APPID);
        let _ = writeln!(b, "  WeChat Pay          merchant {} (fake money)", merchant::MCH_ID);
        let _ = writeln!(
            b,
            "  second company      {SECOND_COMPANY_NAME} (org {}), its own WeChat as records:",
            self.second_company_id
        );
        let _ = writeln!(
            b,
            "                      official account {SECOND_OA_APPID}, mini-program {SECOND_MP_APPID}, merchant {}",
            merchant::SECOND_MCH_ID
        );
        let made = if self.admin_key_created { "made now" } else { "kept from an earlier start" };
        let _ = writeln!(b, "  platform admin key  {} ({made})", self.admin_key_path.display());
        let _ = writeln!(b);
        let _ = writeln!(b, "  Play a resident and an operator through everything, in another terminal:");
        let _ = writeln!(b, "      cargo run -- walkthrough");
        let _ = writeln!(b, "  Set real WeChat credentials (see .env.example) to leave the sandbox.");
        let _ = write!(b, "{rule}");
        b
    }

    /// Stops the mock.
    pub async fn shutdown(self) -> io::Result<()> {
        self.mock.shutdown().await
    }
}

/// Starts the mock on `listen`, or on a free port of the same host when that address is taken
/// (answering the address that was taken).
async fn start_mock(listen: &str) -> anyhow::Result<(RunningMock, Option<String>)> {
    let config = || {
        let mut c = wechat_mock::MockConfig::default();
        c.apps.push(MockApp::official_account(SECOND_OA_APPID, SECOND_OA_SECRET).bound_to(SECOND_OPEN_PLATFORM));
        c.apps.push(MockApp::mini_program(SECOND_MP_APPID, SECOND_MP_SECRET).bound_to(SECOND_OPEN_PLATFORM));
        c.merchants.push(wechat_mock::PayConfig::second());
        c
    };
    match wechat_mock::start(config(), listen).await {
        Ok(mock) => Ok((mock, None)),
        Err(err) if err.kind() == io::ErrorKind::AddrInUse => {
            let host = listen.rsplit_once(':').map_or("127.0.0.1", |(host, _)| host);
            let mock = wechat_mock::start(config(), &format!("{host}:0"))
                .await
                .with_context(|| format!("starting the sandbox's wechat-mock on {host}:0"))?;
            Ok((mock, Some(listen.to_owned())))
        }
        Err(err) => {
            Err(err).with_context(|| format!("starting the sandbox's wechat-mock on {listen} ({MOCK_LISTEN_ENV})"))
        }
    }
}

/// Points `settings` at the mock: its official account, mini-program and merchant (keys written
/// to `dir`), the notification URL of this server, the subscribe-message template and quick
/// payout checks unless they were set explicitly.
fn configure(
    settings: &mut Settings,
    lookup: &impl Fn(&str) -> Option<String>,
    dir: &Path,
    mock_url: &str,
) -> anyhow::Result<()> {
    let private_key = dir.join("apiclient_key.pem");
    let public_key = dir.join("wechatpay_pub.pem");
    write_private(&private_key, merchant::MERCHANT_PRIVATE_KEY_PEM)?;
    std::fs::write(&public_key, merchant::WECHATPAY_PUBLIC_KEY_PEM)
        .with_context(|| format!("writing {}", public_key.display()))?;

    let w = &mut settings.wechat;
    w.api_base = mock_url.to_owned();
    w.oa_appid = Some(wechat_mock::OA_APPID.to_owned());
    w.oa_secret = Some(Secret::new(wechat_mock::OA_SECRET));
    w.oa_token = Some(Secret::new(wechat_mock::OA_CALLBACK_TOKEN));
    w.oa_aes_key = Some(Secret::new(wechat_mock::OA_ENCODING_AES_KEY));
    w.mp_appid = Some(wechat_mock::MP_APPID.to_owned());
    w.mp_secret = Some(Secret::new(wechat_mock::MP_SECRET));
    if w.mp_task_template_id.is_none() {
        w.mp_task_template_id = Some(wechat_mock::MP_TASK_TEMPLATE_ID.to_owned());
    }

    // This server's own notification endpoint. With LINLI_LISTEN on port 0 the real port is not
    // known yet; transfers then settle by polling, which the sandbox makes quick.
    let listen: SocketAddr = settings.listen.parse().context("LINLI_LISTEN")?;
    let p = &mut settings.pay;
    p.api_base = mock_url.to_owned();
    p.mch_id = Some(merchant::MCH_ID.to_owned());
    p.api_key_v2 = Some(Secret::new(merchant::API_KEY_V2));
    p.api_v3_key = Some(Secret::new(merchant::API_V3_KEY));
    p.cert_serial = Some(merchant::MERCHANT_CERT_SERIAL.to_owned());
    p.private_key_path = Some(private_key.display().to_string());
    p.public_key_id = Some(merchant::WECHATPAY_PUBLIC_KEY_ID.to_owned());
    p.public_key_path = Some(public_key.display().to_string());
    // The mock serves plain HTTP and checks no client certificate there.
    p.client_cert_path = None;
    p.root_ca_path = None;
    p.notify_url = Some(format!("http://{}/wechat/pay/notify", loopback_for(listen)));
    if setting(lookup, RECEIPT_CHECK_ENV).is_none() {
        p.payouts.receipt_check_secs = SANDBOX_RECEIPT_CHECK_SECS;
    }
    if setting(lookup, POLL_ENV).is_none() {
        p.payouts.poll_secs = SANDBOX_POLL_SECS;
    }
    settings.sandbox_mock_url = Some(mock_url.to_owned());
    Ok(())
}

/// The address a local client reaches a server bound to `addr` at.
pub fn loopback_for(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// The company (the configured one, or [`COMPANY_NAME`], made when missing) and the admin key
/// file (kept while its key works, otherwise a new key). Answers the company id, the key file and
/// whether the key was made now.
async fn bootstrap(db: &Db, configured_company: Option<i64>, dir: &Path) -> anyhow::Result<(i64, PathBuf, bool)> {
    let cli = Actor::cli();
    let company_id = match configured_company {
        Some(id) => {
            let org = orgs::get(db, &cli, id).await.ok().filter(|o| o.kind == OrgKind::Company);
            org.with_context(|| format!("LINLI_OA_COMPANY_ID={id} names no property company"))?.id
        }
        None => sandbox_company(db, &cli).await?,
    };
    let path = dir.join(ADMIN_KEY_FILE);
    let existing = std::fs::read_to_string(&path).ok().map(|s| s.trim().to_owned());
    if let Some(secret) = existing {
        let actor = keys::authenticate(db, &secret, None).await.context("checking the sandbox admin key")?;
        if actor.is_some_and(|a| a.org_id == PLATFORM_ORG_ID && a.role == Role::Admin) {
            return Ok((company_id, path, false));
        }
    }
    let (_, secret) = keys::create_key(db, &cli, PLATFORM_ORG_ID, Role::Admin, ADMIN_KEY_NAME)
        .await
        .context("creating the sandbox admin key")?;
    write_private(&path, &format!("{secret}\n"))?;
    Ok((company_id, path, true))
}

/// The sandbox's master key: the one in its directory, made on the first start.
fn sandbox_secret_key(dir: &Path) -> anyhow::Result<crate::sealing::SealingKeys> {
    let path = dir.join(SECRET_KEY_FILE);
    let setting = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().to_owned(),
        Err(_) => {
            let made = crate::sealing::SealingKeys::generate("sandbox");
            write_private(&path, &format!("{made}\n"))?;
            made
        }
    };
    crate::sealing::SealingKeys::parse(&setting).with_context(|| format!("the sandbox's key in {}", path.display()))
}

/// The second company and its WeChat records (official account, mini-program, merchant), made
/// through the admin API's checks when missing. Answers the company's id.
async fn second_company(db: &Db, settings: &Settings) -> anyhow::Result<i64> {
    use crate::db::accounts::{apps as app_store, merchants as merchant_store};
    use crate::domain::accounts::{apps, merchants, registry::Accounts};
    let cli = Actor::cli();
    let company = company_named(db, &cli, SECOND_COMPANY_NAME).await?;
    let accounts = Accounts::load(db, settings, None).await?;
    let tokens = std::sync::Arc::new(crate::db::wechat::TokenTable(db.clone()));
    let wechat = crate::wechat::api::WechatClient::new(&settings.wechat.api_base, tokens);
    let known = app_store::all(db.reader()).await?;
    let oa = apps::AppInput {
        name: "沙箱二号服务号".into(),
        secret: Some(SECOND_OA_SECRET.into()),
        token: Some(SECOND_OA_TOKEN.into()),
        aes_key: Some(SECOND_OA_AES_KEY.into()),
        message_mode: Some(crate::db::accounts::apps::MessageMode::Safe),
        task_template_id: None,
    };
    let mp = apps::AppInput {
        name: "沙箱二号小程序".into(),
        secret: Some(SECOND_MP_SECRET.into()),
        task_template_id: Some(wechat_mock::MP_TASK_TEMPLATE_ID.into()),
        ..apps::AppInput::default()
    };
    for (kind, appid, input) in [
        (crate::db::accounts::apps::AppKind::Oa, SECOND_OA_APPID, oa),
        (crate::db::accounts::apps::AppKind::Mp, SECOND_MP_APPID, mp),
    ] {
        if !known.iter().any(|a| a.appid == appid) {
            apps::create(&accounts, &wechat, &cli, company, kind, appid, input)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("registering the second company's {appid}"))?;
        }
    }
    if !merchant_store::all(db.reader()).await?.iter().any(|m| m.mch_id == merchant::SECOND_MCH_ID) {
        let listen: SocketAddr = settings.listen.parse().context("LINLI_LISTEN")?;
        let input = merchants::MerchantInput {
            name: "沙箱二号商户".into(),
            api_key_v2: Some(merchant::SECOND_API_KEY_V2.into()),
            api_v3_key: Some(merchant::SECOND_API_V3_KEY.into()),
            private_key_pem: Some(merchant::SECOND_MERCHANT_PRIVATE_KEY_PEM.into()),
            cert_serial: Some(merchant::SECOND_MERCHANT_CERT_SERIAL.into()),
            public_key_id: Some(merchant::SECOND_WECHATPAY_PUBLIC_KEY_ID.into()),
            public_key_pem: Some(merchant::SECOND_WECHATPAY_PUBLIC_KEY_PEM.into()),
            notify_url: Some(format!("http://{}/wechat/pay/{}/notify", loopback_for(listen), merchant::SECOND_MCH_ID)),
            ..merchants::MerchantInput::default()
        };
        merchants::create(&accounts, &cli, company, merchant::SECOND_MCH_ID, input)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("registering the second company's merchant")?;
    }
    Ok(company)
}

/// The active company named [`COMPANY_NAME`] under the platform, made when there is none.
async fn sandbox_company(db: &Db, cli: &Actor) -> anyhow::Result<i64> {
    company_named(db, cli, COMPANY_NAME).await
}

/// The active company called `name` under the platform, made when there is none.
async fn company_named(db: &Db, cli: &Actor, name: &str) -> anyhow::Result<i64> {
    let filter = OrgFilter {
        scope_path: String::new(),
        kind: Some(OrgKind::Company),
        parent_id: Some(PLATFORM_ORG_ID),
        name_contains: Some(name.to_owned()),
        include_archived: false,
    };
    let found = orgs::list(db, cli, filter, PageRequest { page: 1, page_size: 200 })
        .await
        .context("looking for a sandbox company")?;
    if let Some(org) = found.items.into_iter().find(|o| o.name == name) {
        return Ok(org.id);
    }
    let new = NewOrg {
        parent_id: PLATFORM_ORG_ID,
        kind: OrgKind::Company,
        name: name.to_owned(),
        address: None,
        contact_name: None,
        contact_phone: None,
    };
    let org = orgs::create(db, cli, new).await.context("creating a sandbox company")?;
    Ok(org.id)
}

/// Writes a file only its owner may read (a key).
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // A file made earlier with wider permissions is narrowed too.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {}", path.display()))?;
        }
    }
    let mut file = options.open(path).with_context(|| format!("writing {}", path.display()))?;
    io::Write::write_all(&mut file, contents.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn any_real_credential_switches_the_sandbox_off() {
        assert!(applies(&env(&[])));
        assert!(applies(&env(&[("WECHAT_OA_APPID", "  "), ("WECHAT_API_BASE", "http://x")])));
        for name in CREDENTIAL_ENVS {
            assert!(!applies(&env(&[(name, "wx123")])), "{name}");
        }
    }

    #[test]
    fn the_directory_sits_beside_the_sqlite_file() {
        assert_eq!(dir(&env(&[])), Path::new(".").join(DEFAULT_DIR_NAME));
        assert_eq!(dir(&env(&[("DATABASE_URL", "sqlite:///var/lib/linli/linli.db?mode=rwc")])), {
            Path::new("/var/lib/linli").join(DEFAULT_DIR_NAME)
        });
        assert_eq!(dir(&env(&[("DATABASE_URL", "sqlite::memory:")])), Path::new(".").join(DEFAULT_DIR_NAME));
        assert_eq!(dir(&env(&[("DATABASE_URL", "postgres://u@h/db")])), Path::new(".").join(DEFAULT_DIR_NAME));
        assert_eq!(dir(&env(&[(DIR_ENV, "/tmp/sb"), ("DATABASE_URL", "sqlite://a/b.db")])), Path::new("/tmp/sb"));
    }

    #[test]
    fn the_notification_url_uses_loopback_for_wildcard_binds() {
        assert_eq!(loopback_for("0.0.0.0:8080".parse().unwrap()).to_string(), "127.0.0.1:8080");
        assert_eq!(loopback_for("10.0.0.2:80".parse().unwrap()).to_string(), "10.0.0.2:80");
    }
}
