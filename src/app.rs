//! Building and running the service: one start-up path for production and tests.
//! [`Application::build`] connects, migrates and binds (port 0 picks a free port), and reports
//! the real address; [`Application::run_until`] serves until the shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};

use tokio::sync::Notify;

use crate::config::Settings;
use crate::db::group::GroupCommit;
use crate::db::wechat::TokenTable;
use crate::db::{Db, DbOptions, Engine};
use crate::domain::accounts::registry::Accounts;
use crate::domain::community::sessions::SessionCache;
use crate::domain::loyalty::checkin_writer::CheckinWriter;
use crate::domain::money::gates::Gates;
use crate::domain::money::hot_campaigns::HotCampaigns;
use crate::domain::money::payouts::Payer;
use crate::state::AppState;
use crate::telemetry::Metrics;
use crate::wechat::api::WechatClient;
use crate::wechat::pay::clients::PayClients;
use crate::workers::instances::Heartbeat;
use crate::workers::payouts::Dispatcher;

/// Group-commit writers on PostgreSQL (SQLite has one writer connection, so one).
const GROUP_LANES: usize = 4;
/// The most writes one group commit takes.
const GROUP_MAX_BATCH: usize = 256;

pub struct Application {
    addr: SocketAddr,
    acceptor: TcpAcceptor,
    state: AppState,
    /// On PostgreSQL: this instance's heartbeat, which shares the rate limits among instances.
    heartbeat: Option<Heartbeat>,
}

/// Connects to the configured database and applies pending migrations.
pub async fn connect_and_migrate(settings: &Settings) -> anyhow::Result<Db> {
    let options =
        DbOptions { max_connections: settings.db_max_connections, acquire_timeout: settings.db_acquire_timeout };
    let db = Db::connect(settings.database_url.expose(), &options)
        .await
        .context("connecting to the database (DATABASE_URL)")?;
    db.migrate().await.context("applying database migrations")?;
    Ok(db)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let db = connect_and_migrate(&settings).await?;
        for warning in settings.wechat.oa_config_warnings() {
            tracing::warn!("{warning}");
        }
        let acceptor = TcpListener::bind(settings.listen.clone())
            .into_acceptor()
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("the listener has no socket address")?;
        let wechat = WechatClient::new(&settings.wechat.api_base, Arc::new(TokenTable(db.clone())));
        let pay = PayClients::from_settings(&settings.pay).context("configuring WeChat Pay (WECHATPAY_*)")?;
        let accounts = Accounts::load(&db, &settings, pay.clone())
            .await
            .context("opening the WeChat app and merchant records (LINLI_SECRET_KEY)")?;
        let group = GroupCommit::start(&db, GROUP_LANES, GROUP_MAX_BATCH);
        let payer = Payer::new(accounts.clone(), Arc::new(Notify::new()));
        let hot = HotCampaigns::new(db.clone(), payer.clone());
        let checkins = CheckinWriter::start(&db);
        let sessions = Arc::new(SessionCache::default());
        let known = sessions.preload(&db).await.context("loading live sessions")?;
        tracing::debug!(sessions = known, "live sessions loaded");
        let shared = (db.engine() == Engine::Postgres).then(|| db.clone());
        let limiter = Arc::new(crate::api::limits::Limiter::new(settings.rate_limits, shared));
        let heartbeat = match db.engine() {
            Engine::Postgres => {
                let heartbeat = Heartbeat::new(db.clone(), Arc::clone(&limiter), settings.instance_heartbeat);
                // Count the others before the first request, so this one never takes a whole limit.
                heartbeat.beat(crate::db::now_ms()).await.context("writing this instance's heartbeat")?;
                Some(heartbeat)
            }
            Engine::Sqlite => None,
        };
        let state = AppState {
            db,
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::default()),
            wechat,
            accounts,
            gates: Arc::new(Gates::default()),
            payer,
            group,
            hot,
            checkins,
            sessions,
            limiter,
        };
        Ok(Application { addr, acceptor, state, heartbeat })
    }

    /// The address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish within the grace
    /// period and closes the database pools.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let grace = self.state.settings.shutdown_grace;
        let db = self.state.db.clone();
        // Background jobs end with the server, also when this future is dropped mid-way.
        let _expiry = AbortOnDrop(crate::workers::expiry::spawn(
            db.clone(),
            self.state.settings.expiry_interval,
            self.state.settings.wechat.oa_timestamp_window_secs,
        ));
        let _accounts = AbortOnDrop(self.state.accounts.spawn_refresh());
        let _revocations = AbortOnDrop(Arc::clone(&self.state.sessions).spawn_sync(db.clone()));
        // Every payout goes through its merchant; records can be added at any time, so the
        // dispatcher always runs (a payout whose merchant is not configured waits).
        let settings = &self.state.settings.pay;
        let dispatcher = Dispatcher::new(db.clone(), self.state.accounts.clone(), settings.payouts.clone());
        let dispatcher = AbortOnDrop(Arc::new(dispatcher).spawn(self.state.payer.notifier()));
        let _reconciler = AbortOnDrop(crate::workers::reconcile::spawn(db.clone(), self.state.accounts.clone()));
        let _certificates = AbortOnDrop(crate::workers::certificates::spawn(self.state.accounts.clone()));
        if !self.state.accounts.any_merchant() {
            tracing::warn!(
                "no WeChat Pay merchant is configured (records or WECHATPAY_MCH_ID): payouts wait in the outbox"
            );
        }
        let sender = crate::workers::messages::Sender {
            db: db.clone(),
            wechat: self.state.wechat.clone(),
            accounts: self.state.accounts.clone(),
        };
        let _messages = AbortOnDrop(sender.spawn(self.state.settings.message_interval));
        let beating = self.heartbeat.clone().map(|h| AbortOnDrop(h.spawn()));
        let header_read_timeout = self.state.settings.header_read_timeout;
        let app = crate::api::routes(self.state);
        let result = crate::server::serve(self.acceptor, app, header_read_timeout, shutdown, grace).await;
        drop(dispatcher);
        // Stop beating before leaving, so no late beat writes the row back.
        drop(beating);
        if let Some(heartbeat) = &self.heartbeat {
            heartbeat.leave().await;
        }
        db.close().await;
        result
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
