//! The `linli` command line: parse, load settings and logging, call into the library.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Parser, Subcommand};
use linli::app::{connect_and_migrate, shutdown_signal, Application};
use linli::config::Settings;
use linli::domain::operators::access::{Actor, Role};
use linli::domain::operators::keys;
use linli::sandbox::Sandbox;
use linli::{telemetry, walkthrough};

#[derive(Parser)]
#[command(name = "linli", version, about = "linli (邻里): community marketing and engagement on WeChat")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI spec (YAML) to stdout.
    Openapi,
    /// Manage operator API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The master key app and merchant secrets are sealed under (LINLI_SECRET_KEY).
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// WeChat apps and Pay merchants as records.
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
    /// Reconcile one Beijing day's payouts of every merchant with its WeChat Pay fund-flow bill and
    /// print the reports.
    Reconcile {
        /// The day, YYYY-MM-DD (default: yesterday in Beijing).
        #[arg(long)]
        date: Option<String>,
    },
    /// Play an operator and a resident through the whole journey against a running sandbox
    /// server (`linli serve` with no WeChat credentials), printing each step.
    Walkthrough {
        /// The server (default: http://LINLI_LISTEN, i.e. http://127.0.0.1:8080).
        #[arg(long)]
        url: Option<String>,
        /// A platform admin key (default: the one the sandbox wrote to LINLI_SANDBOX_DIR/admin-key).
        #[arg(long)]
        admin_key: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print its secret (shown only this once).
    Create {
        /// The org the key belongs to (the platform is 1).
        #[arg(long)]
        org: i64,
        /// admin, operator or viewer.
        #[arg(long, default_value = "admin")]
        role: String,
        /// What the key is for.
        #[arg(long, default_value = "created on the command line")]
        name: String,
    },
    /// List keys (without secrets).
    List {
        /// Only keys of this org.
        #[arg(long)]
        org: Option<i64>,
    },
    /// Revoke a key by id.
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Print a fresh key for LINLI_SECRET_KEY (`<id>:<base64 of 32 random bytes>`).
    NewKey {
        /// The key's id, to tell it from the next one.
        #[arg(long, default_value = "k1")]
        id: String,
    },
    /// Re-seal every stored secret under the first key of LINLI_SECRET_KEY. Put the new key
    /// first and keep the old one after it (`new:…,old:…`) on every instance, run this, then drop
    /// the old key.
    Rotate,
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Turn the official account, mini-program and merchant configured by environment
    /// (WECHAT_OA_*, WECHAT_MP_*, WECHATPAY_*) into records; safe to run again.
    ImportEnv {
        /// The org the apps belong to (default: LINLI_OA_COMPANY_ID, else the platform).
        #[arg(long)]
        org: Option<i64>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", linli::api::openapi_yaml());
        return Ok(());
    }
    let _ = dotenvy::dotenv();
    let env = |name: &str| std::env::var(name).ok();
    if let Some(Command::Walkthrough { url, admin_key }) = cli.command {
        let url = url.unwrap_or_else(|| walkthrough::default_url(env));
        let admin_key = match admin_key {
            Some(key) => key,
            None => walkthrough::read_admin_key(env)?,
        };
        return walkthrough::run(walkthrough::Options { url, admin_key }).await;
    }
    if let Some(Command::Secrets { command: SecretsCommand::NewKey { id } }) = &cli.command {
        println!("{}", linli::sealing::SealingKeys::generate(id));
        return Ok(());
    }
    telemetry::init_logging();
    let settings = Settings::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            connect_and_migrate(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Openapi | Command::Walkthrough { .. } => unreachable!("handled above"),
        Command::Keys { command } => keys(settings, command).await,
        Command::Secrets { command: SecretsCommand::Rotate } => rotate(settings).await,
        Command::Secrets { command: SecretsCommand::NewKey { .. } } => unreachable!("handled above"),
        Command::Apps { command: AppsCommand::ImportEnv { org } } => import_env(settings, org).await,
        Command::Reconcile { date } => reconcile(settings, date).await,
    }
}

async fn serve(mut settings: Settings) -> anyhow::Result<()> {
    // No WeChat credentials at all: run against wechat-mock in this process.
    let sandbox = Sandbox::start(&mut settings, |name| std::env::var(name).ok()).await?;
    let app = Application::build(settings).await?;
    let addr = app.address();
    tracing::info!(%addr, "linli listening");
    println!("linli is listening on http://{addr}");
    println!("  API docs:     http://{addr}/docs");
    println!("  OpenAPI spec: http://{addr}/openapi.json");
    if let Some(sandbox) = &sandbox {
        tracing::warn!(
            mock = %sandbox.mock_url(),
            "SANDBOX MODE: no WeChat credentials are set; linli runs against wechat-mock, not WeChat"
        );
        println!("{}", sandbox.banner());
    }
    app.run_until(shutdown_signal()).await.context("serving HTTP")?;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await.context("stopping the sandbox's wechat-mock")?;
    }
    println!("linli stopped");
    Ok(())
}

async fn rotate(settings: Settings) -> anyhow::Result<()> {
    let keys = settings.sealing_keys.clone().context("LINLI_SECRET_KEY is not set")?;
    let db = connect_and_migrate(&settings).await?;
    let done = linli::domain::accounts::rotation::rotate(&db, &keys).await?;
    println!(
        "{} secrets re-sealed under key {} ({} moved from another key)",
        done.secrets,
        keys.current_id(),
        done.moved
    );
    db.close().await;
    Ok(())
}

async fn import_env(settings: Settings, org: Option<i64>) -> anyhow::Result<()> {
    use linli::domain::accounts::registry::Accounts;
    let db = connect_and_migrate(&settings).await?;
    let pay = linli::wechat::pay::clients::PayClients::from_settings(&settings.pay)?;
    let accounts = Accounts::load(&db, &settings, pay).await?;
    let tokens = std::sync::Arc::new(linli::db::wechat::TokenTable(db.clone()));
    let wechat = linli::wechat::api::WechatClient::new(&settings.wechat.api_base, tokens);
    for line in linli::domain::accounts::import::import_env(&accounts, &wechat, &settings, org).await? {
        println!("{line}");
    }
    db.close().await;
    Ok(())
}

async fn reconcile(settings: Settings, date: Option<String>) -> anyhow::Result<()> {
    use linli::domain::money::reconcile;
    let db = connect_and_migrate(&settings).await?;
    let pay = linli::wechat::pay::clients::PayClients::from_settings(&settings.pay)?;
    let accounts = linli::domain::accounts::registry::Accounts::load(&db, &settings, pay).await?;
    let date = match date {
        Some(d) => reconcile::parse_date(&d)?,
        None => reconcile::yesterday(),
    };
    let mut clean = true;
    let merchants = accounts.merchants();
    if merchants.is_empty() {
        println!("no WeChat Pay merchant is configured");
    }
    for m in merchants {
        let run = reconcile::run(&db, Some(&m.clients), reconcile::stored_mch_id(&m), date).await?;
        println!("merchant {} {} {}: {} merchant numbers checked", m.mch_id, run.bill_date, run.state, run.checked);
        if let Some(msg) = &run.message {
            println!("  {msg}");
        }
        let diffs: Vec<reconcile::Difference> = serde_json::from_str(&run.differences)?;
        for d in &diffs {
            println!(
                "  {} {} payout {:?}: WeChat {} fen, linli {} fen — {}",
                d.kind, d.out_no, d.payout_id, d.wechat_fen, d.linli_fen, d.detail
            );
        }
        clean &= diffs.is_empty() && run.state == linli::db::money::payouts::ReconciliationState::Matched;
    }
    db.close().await;
    if clean {
        Ok(())
    } else {
        std::process::exit(2)
    }
}

async fn keys(settings: Settings, command: KeysCommand) -> anyhow::Result<()> {
    let db = connect_and_migrate(&settings).await?;
    let actor = Actor::cli();
    match command {
        KeysCommand::Create { org, role, name } => {
            let role = Role::parse(&role).context("--role must be admin, operator or viewer")?;
            let (key, secret) = keys::create_key(&db, &actor, org, role, &name)
                .await
                .with_context(|| format!("creating a key for org {org}"))?;
            println!("created API key {} ({}) for org {} with role {}", key.id, key.prefix, key.org_id, key.role);
            println!("secret (shown only now; send it as the X-Api-Key header):");
            println!("{secret}");
        }
        KeysCommand::List { org } => {
            let page = linli::db::PageRequest { page: 1, page_size: 1000 };
            let keys = keys::list_keys(&db, &actor, org, true, page).await?;
            println!("{:>6}  {:>6}  {:<9} {:<12} {:<8} name", "id", "org", "role", "prefix", "state");
            for k in keys.items {
                let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                println!("{:>6}  {:>6}  {:<9} {:<12} {:<8} {}", k.id, k.org_id, k.role, k.prefix, state, k.name);
            }
        }
        KeysCommand::Revoke { id } => {
            let key = keys::revoke_key(&db, &actor, id).await?;
            println!("revoked API key {} ({})", key.id, key.prefix);
        }
    }
    db.close().await;
    Ok(())
}
