//! `spawn_app()`: the real application on port 0 with a fresh database of its own — SQLite in
//! a temporary file, or PostgreSQL when `TEST_DATABASE_URL` names a server (a database is created
//! for each test and dropped after it).

use linli::app::Application;
use linli::config::Settings;
use linli::db::Db;
use linli::domain::operators::access::{Actor, Role};
use linli::domain::operators::keys;
use rand::RngCore;
use reqwest::StatusCode;
use serde_json::{json, Value};

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: Db,
    /// The database URL the app uses, for the command-line tests.
    pub database_url: String,
    /// A platform admin key.
    pub root_key: String,
    /// What it was started with, to start it again on the same database.
    pub settings: Settings,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _database: TestDatabase,
}

/// A test's own database, removed when the test ends.
pub enum TestDatabase {
    Sqlite(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match self {
            TestDatabase::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            TestDatabase::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime: use a thread with a runtime of its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    rt.block_on(async {
                        use sqlx::Connection;
                        if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin_url).await {
                            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

async fn fresh_database() -> (String, TestDatabase) {
    match postgres_admin_url() {
        Some(admin_url) => fresh_postgres_database(admin_url).await,
        None => fresh_sqlite_database(),
    }
}

/// The PostgreSQL server the tests run on, when `TEST_DATABASE_URL` names one.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) if url.starts_with("postgres") => Some(url),
        Some(other) => panic!("TEST_DATABASE_URL must be a postgres:// URL, got {other}"),
        None => None,
    }
}

/// A fresh SQLite database file, removed when the value is dropped.
pub fn fresh_sqlite_database() -> (String, TestDatabase) {
    sqlx::any::install_default_drivers();
    let path = std::env::temp_dir().join(format!("linli-test-{}.db", random_suffix()));
    (format!("sqlite://{}", path.display()), TestDatabase::Sqlite(path))
}

/// A fresh database on the PostgreSQL server at `admin_url`, dropped when the value is dropped.
pub async fn fresh_postgres_database(admin_url: String) -> (String, TestDatabase) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("linli_test_{}", random_suffix());
    let mut conn = sqlx::AnyConnection::connect(&admin_url).await.expect("connect to TEST_DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
    let _ = conn.close().await;
    let (base, query) = admin_url.split_once('?').map_or((admin_url.as_str(), None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("TEST_DATABASE_URL has a database path");
    let url = match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    };
    (url, TestDatabase::Postgres { admin_url, name })
}

/// The master key every test app seals app and merchant secrets under (`LINLI_SECRET_KEY`).
pub const TEST_SECRET_KEY: &str = "t1:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=";

impl TestApp {
    /// A `SELECT COUNT(*) …` on the read pool.
    pub async fn count_rows(&self, sql: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(self.db.reader()).await.unwrap();
        n
    }

    /// The SQLite database file, when the test runs on SQLite.
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        match &self._database {
            TestDatabase::Sqlite(path) => Some(path),
            TestDatabase::Postgres { .. } => None,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        linli::telemetry::init_logging();
    }
    let (database_url, database) = fresh_database().await;
    let mut settings = Settings::with_database(database_url.clone());
    settings.listen = "127.0.0.1:0".into();
    // Tests fire hundreds of logins and requests at once from one address: limits are exercised
    // by their own test (tests/api/limits.rs), not by every test.
    let off = linli::api::limits::Rate { per_sec: 0, burst: 1 };
    settings.rate_limits = linli::config::RateLimits { per_resident: off, per_key: off, login_per_ip: off };
    settings.sealing_keys = Some(linli::sealing::SealingKeys::parse(TEST_SECRET_KEY).expect("the test key"));
    configure(&mut settings);
    let (address, db, tx, server) = start(settings.clone()).await;
    let (_, root_key) = keys::create_key(&db, &Actor::cli(), 1, Role::Admin, "test root").await.expect("root key");
    TestApp {
        address,
        client: reqwest::Client::new(),
        db,
        database_url,
        root_key,
        settings,
        shutdown: Some(tx),
        server: Some(server),
        _database: database,
    }
}

type Started = (String, Db, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>);

async fn start(settings: Settings) -> Started {
    let app = Application::build(settings).await.expect("build the application");
    let address = format!("http://{}", app.address());
    let db = app.db().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    (address, db, tx, server)
}

/// A second instance of an app on the same database, stopped when dropped.
pub struct Instance {
    pub address: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    /// Starts another instance on the same database (as a second server behind a load balancer).
    pub async fn another_instance(&self) -> Instance {
        let mut settings = self.settings.clone();
        settings.listen = "127.0.0.1:0".into();
        let (address, _, tx, _) = start(settings).await;
        Instance { address, shutdown: Some(tx) }
    }

    /// Kills the server as a crash would (requests and payout calls in flight are dropped where
    /// they stand, nothing is flushed), then starts it again on the same database and address.
    pub async fn crash_and_restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
        self.shutdown = None;
        let (address, db, tx, server) = start(self.settings.clone()).await;
        self.address = address;
        self.db = db;
        self.shutdown = Some(tx);
        self.server = Some(server);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An answer: status, JSON body (`Null` when empty or not JSON) and headers.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// Asserts the status and, for errors, the `{code, message, request_id}` body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        if status >= 400 {
            assert_error_body(&self);
        }
        self.body
    }

    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

#[track_caller]
pub fn assert_error_body(a: &Answer) {
    let b = &a.body;
    assert!(b["code"].is_string() && !b["code"].as_str().unwrap().is_empty(), "error without code: {b}");
    assert!(b["message"].is_string(), "error without message: {b}");
    let rid = b["request_id"].as_str().expect("error without request_id");
    assert_eq!(
        a.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some(rid),
        "request id differs from header"
    );
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, headers }
    }

    fn with_key(&self, req: reqwest::RequestBuilder, key: &str) -> reqwest::RequestBuilder {
        if key.is_empty() {
            req
        } else {
            req.header("X-Api-Key", key)
        }
    }

    pub async fn get(&self, key: &str, path: &str) -> Answer {
        self.send(self.with_key(self.client.get(self.url(path)), key)).await
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> Answer {
        self.send(self.with_key(self.client.post(self.url(path)).json(&body), key)).await
    }

    pub async fn post_raw(&self, key: &str, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Answer {
        let req = self.client.post(self.url(path)).header("content-type", content_type).body(body);
        self.send(self.with_key(req, key)).await
    }

    pub async fn put(&self, key: &str, path: &str, body: Value) -> Answer {
        self.send(self.with_key(self.client.put(self.url(path)).json(&body), key)).await
    }

    pub async fn patch(&self, key: &str, path: &str, body: Value) -> Answer {
        self.send(self.with_key(self.client.patch(self.url(path)).json(&body), key)).await
    }

    pub async fn delete(&self, key: &str, path: &str) -> Answer {
        self.send(self.with_key(self.client.delete(self.url(path)), key)).await
    }

    pub async fn create_org(&self, key: &str, parent_id: i64, kind: &str, name: &str) -> i64 {
        let body = self
            .post(key, "/admin/v1/orgs", json!({"parent_id": parent_id, "kind": kind, "name": name}))
            .await
            .expect(201);
        body["id"].as_i64().unwrap()
    }

    pub async fn create_key(&self, key: &str, org_id: i64, role: &str) -> String {
        let body = self
            .post(
                key,
                "/admin/v1/api-keys",
                json!({"org_id": org_id, "role": role, "name": format!("{role} of {org_id}")}),
            )
            .await
            .expect(201);
        body["secret"].as_str().unwrap().to_owned()
    }

    pub async fn create_room(&self, key: &str, community_id: i64, building: &str, unit: &str, number: &str) -> i64 {
        let body = self
            .post(
                key,
                "/admin/v1/rooms",
                json!({"community_id": community_id, "building": building, "unit": unit, "number": number}),
            )
            .await
            .expect(201);
        body["id"].as_i64().unwrap()
    }

    pub async fn create_roster_entry(&self, key: &str, room_id: i64, name: &str, phone: &str) -> i64 {
        let body = self
            .post(key, "/admin/v1/roster", json!({"room_id": room_id, "name": name, "phone": phone, "role": "owner"}))
            .await
            .expect(201);
        body["id"].as_i64().unwrap()
    }

    /// A fingerprint of everything an admin call can change: row counts and the sum of update
    /// times of each table. Equal fingerprints before and after mean nothing changed.
    pub async fn fingerprint(&self) -> Vec<(String, i64, i64)> {
        let mut out = Vec::new();
        for (table, col) in [
            ("orgs", "updated_at"),
            ("rooms", "updated_at"),
            ("roster_entries", "updated_at"),
            ("api_keys", "COALESCE(revoked_at, 0)"),
            ("audit_log", "at"),
            ("wechat_apps", "updated_at"),
            ("pay_merchants", "updated_at"),
        ] {
            let (n, sum): (i64, i64) =
                sqlx::query_as(&format!("SELECT COUNT(*), CAST(COALESCE(SUM({col}), 0) AS BIGINT) FROM {table}"))
                    .fetch_one(self.db.reader())
                    .await
                    .unwrap();
            out.push((table.to_owned(), n, sum));
        }
        out
    }
}

/// Two property companies, each with a community, a room, a roster entry and keys.
pub struct TwoCompanies {
    pub a: Company,
    pub b: Company,
}

pub struct Company {
    pub id: i64,
    pub community: i64,
    pub sibling_community: i64,
    pub room: i64,
    pub roster_entry: i64,
    pub admin: String,
    pub operator: String,
    pub viewer: String,
    pub community_admin: String,
    pub key_id: i64,
    /// Its official account and its WeChat Pay merchant, as records.
    pub wechat_app: i64,
    pub pay_merchant: i64,
}

/// Stores an official account and a merchant for `company` as the admin API would (sealed under
/// the test key), without asking WeChat: for tests of reach, which need them to exist only.
pub async fn wechat_records_of(app: &TestApp, company: i64) -> (i64, i64) {
    use linli::domain::accounts::registry::{app_context, merchant_context};
    use wechat_mock::pay::config as merchant;
    let keys = linli::sealing::SealingKeys::parse(TEST_SECRET_KEY).unwrap();
    let (appid, mch_id) = (format!("wx_company_{company}"), format!("{}", 1_900_100_000 + company));
    let now = linli::db::now_ms();
    let (app_id,): (i64,) = sqlx::query_as(
        "INSERT INTO wechat_apps (org_id, kind, appid, name, secret_sealed, token_sealed, message_mode, created_at, \
         updated_at) VALUES ($1, 'oa', $2, 'OA', $3, $4, 'plain', $5, $5) RETURNING id",
    )
    .bind(company)
    .bind(&appid)
    .bind(keys.seal(&app_context(&appid, "secret"), "a_secret"))
    .bind(keys.seal(&app_context(&appid, "token"), "AToken123"))
    .bind(now)
    .fetch_one(app.db.writer())
    .await
    .unwrap();
    let (merchant_id,): (i64,) = sqlx::query_as(
        "INSERT INTO pay_merchants (org_id, mch_id, name, api_key_v2_sealed, transfer_scene_id, transfer_api, \
         rate_per_sec, created_at, updated_at) VALUES ($1, $2, 'M', $3, '1000', 'v3', 25, $4, $4) RETURNING id",
    )
    .bind(company)
    .bind(&mch_id)
    .bind(keys.seal(&merchant_context(&mch_id, "api_key_v2"), merchant::API_KEY_V2))
    .bind(now)
    .fetch_one(app.db.writer())
    .await
    .unwrap();
    (app_id, merchant_id)
}

pub async fn two_companies(app: &TestApp) -> TwoCompanies {
    let mut made = Vec::new();
    for (name, phone) in [("Acme Property", "13800000001"), ("Bright Property", "13800000002")] {
        let id = app.create_org(&app.root_key, 1, "company", name).await;
        let community = app.create_org(&app.root_key, id, "community", &format!("{name} Garden")).await;
        let sibling_community = app.create_org(&app.root_key, id, "community", &format!("{name} Court")).await;
        let room = app.create_room(&app.root_key, community, "1", "1", "101").await;
        let roster_entry = app.create_roster_entry(&app.root_key, room, "Resident", phone).await;
        let admin = app.create_key(&app.root_key, id, "admin").await;
        let operator = app.create_key(&app.root_key, id, "operator").await;
        let viewer = app.create_key(&app.root_key, id, "viewer").await;
        let community_admin = app.create_key(&app.root_key, community, "admin").await;
        let me = app.get(&admin, "/admin/v1/me").await.expect(200);
        let (wechat_app, pay_merchant) = wechat_records_of(app, id).await;
        made.push(Company {
            id,
            community,
            sibling_community,
            room,
            roster_entry,
            admin,
            operator,
            viewer,
            community_admin,
            key_id: me["key_id"].as_i64().unwrap(),
            wechat_app,
            pay_merchant,
        });
    }
    let b = made.pop().unwrap();
    let a = made.pop().unwrap();
    TwoCompanies { a, b }
}

/// An app wired to an in-process wechat-mock as its WeChat: the official account's callback
/// settings and the mini-program's credentials are the mock's, the account belongs to the
/// company with id 2, made here, and a room takes at most 3 open bindings.
pub struct OaApp {
    pub app: TestApp,
    pub mock: wechat_mock::RunningMock,
    pub company_id: i64,
}

impl std::ops::Deref for OaApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl std::ops::DerefMut for OaApp {
    fn deref_mut(&mut self) -> &mut TestApp {
        &mut self.app
    }
}

pub async fn spawn_oa_app(clock_start_unix: Option<i64>, window_secs: u64) -> OaApp {
    spawn_oa_app_configured(clock_start_unix, window_secs, |_| {}).await
}

/// [`spawn_oa_app`] with further settings.
pub async fn spawn_oa_app_with(configure: impl FnOnce(&mut Settings) + Send + 'static) -> OaApp {
    spawn_oa_app_configured(None, 300, configure).await
}

async fn spawn_oa_app_configured(
    clock_start_unix: Option<i64>,
    window_secs: u64,
    configure: impl FnOnce(&mut Settings) + Send + 'static,
) -> OaApp {
    let config = wechat_mock::MockConfig { clock_start_unix, ..Default::default() };
    spawn_oa_app_on(config, window_secs, configure).await
}

/// [`spawn_oa_app_configured`] with a mock configured as given.
pub async fn spawn_oa_app_on(
    config: wechat_mock::MockConfig,
    window_secs: u64,
    configure: impl FnOnce(&mut Settings) + Send + 'static,
) -> OaApp {
    let mock = wechat_mock::start(config, "127.0.0.1:0").await.expect("start wechat-mock");
    let base = mock.base_url.clone();
    let app = spawn_app_with(move |s| {
        s.wechat.api_base = base;
        s.wechat.oa_appid = Some(wechat_mock::OA_APPID.to_owned());
        s.wechat.oa_secret = Some(linli::config::Secret::new(wechat_mock::OA_SECRET));
        s.wechat.oa_token = Some(linli::config::Secret::new(wechat_mock::OA_CALLBACK_TOKEN));
        s.wechat.oa_aes_key = Some(linli::config::Secret::new(wechat_mock::OA_ENCODING_AES_KEY));
        s.wechat.oa_company_id = Some(2);
        s.wechat.oa_timestamp_window_secs = window_secs;
        s.wechat.mp_appid = Some(wechat_mock::MP_APPID.to_owned());
        s.wechat.mp_secret = Some(linli::config::Secret::new(wechat_mock::MP_SECRET));
        s.room_binding_cap = 3;
        configure(s);
    })
    .await;
    let company_id = app.create_org(&app.root_key, 1, "company", "阳光物业").await;
    assert_eq!(company_id, 2, "the OA's company must be the first company made");
    OaApp { app, mock, company_id }
}

impl OaApp {
    pub fn pusher(&self, mode: wechat_mock::PushMode) -> wechat_mock::OaPusher {
        let mut config = wechat_mock::PusherConfig::new(self.url("/wechat/oa/callback"));
        config.mode = mode;
        wechat_mock::OaPusher::new(config).expect("pusher").with_mock(self.mock.wechat.clone())
    }

    /// Delivers a push and returns the text reply (`None` for `success`), asserting WeChat would
    /// accept the answer.
    pub async fn say(&self, pusher: &wechat_mock::OaPusher, push: &wechat_mock::Push) -> Option<String> {
        let outcome = pusher.deliver(push).await.expect("delivered");
        assert_eq!(outcome.status, 200, "{}", outcome.body);
        assert!(outcome.is_acknowledged(), "WeChat would refuse this answer: {outcome:?}");
        outcome.text().map(|t| t.content.clone())
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(self.db.reader()).await.unwrap();
        n
    }

    /// The invariant every test ends with: each points account's balance is the sum of its rows.
    pub async fn assert_ledger_balanced(&self) {
        let off = linli::db::loyalty::points::unbalanced_accounts(self.db.reader()).await.unwrap();
        assert!(off.is_empty(), "accounts whose balance is not the sum of their rows: {off:?}");
    }
}

impl OaApp {
    /// Logs a simulated resident into the mini-program; answers the session token.
    pub async fn login(&self, user: &wechat_mock::MockUser) -> String {
        let code = self.mock.login_code(user);
        let s = self.post("", "/mp/v1/sessions", serde_json::json!({ "code": code })).await.expect(201);
        s["access_token"].as_str().unwrap().to_owned()
    }

    /// A community with rooms 1-1-101 and 1-1-102 and 张三 (13800138000) on the roster as the
    /// owner of 1-1-101.
    pub async fn community_with_roster(&self) -> i64 {
        let community = self.create_org(&self.root_key, self.company_id, "community", "阳光花园").await;
        let csv = "building,unit,number\n1,1,101\n1,1,102\n";
        self.post_raw(&self.root_key, &format!("/admin/v1/communities/{community}/rooms/import"), "text/csv", csv)
            .await
            .expect(200);
        let roster = "name,phone,building,unit,number,role\n张三,13800138000,1,1,101,owner\n";
        self.post_raw(&self.root_key, &format!("/admin/v1/communities/{community}/roster/import"), "text/csv", roster)
            .await
            .expect(200);
        community
    }
}

/// A request with a resident's bearer token.
pub fn bearer(req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    req.header("Authorization", format!("Bearer {token}"))
}

/// A free local port, for an app whose own URL must be known before it starts (WeChat Pay's
/// notification URL).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// [`spawn_oa_app_with`] plus WeChat Pay: the mock's merchant, keys and notification URL, and a
/// dispatcher tuned for tests (short ticks, backoffs and polls).
pub async fn spawn_pay_app(configure: impl FnOnce(&mut Settings) + Send + 'static) -> OaApp {
    spawn_pay_app_on(wechat_mock::PayConfig::default(), configure).await
}

/// [`spawn_pay_app`] with the mock playing the merchant `pay` (e.g. one that signs with platform
/// certificates), from before the app starts.
pub async fn spawn_pay_app_on(
    pay: wechat_mock::PayConfig,
    configure: impl FnOnce(&mut Settings) + Send + 'static,
) -> OaApp {
    use wechat_mock::pay::config as merchant;
    let dir = std::env::temp_dir().join(format!("linli-pay-{}", random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join("apiclient_key.pem");
    let public = dir.join("wechatpay_pub.pem");
    std::fs::write(&private, merchant::MERCHANT_PRIVATE_KEY_PEM).unwrap();
    std::fs::write(&public, merchant::WECHATPAY_PUBLIC_KEY_PEM).unwrap();
    let port = free_port();
    let mock_config = wechat_mock::MockConfig { pay, ..Default::default() };
    let oa = spawn_oa_app_on(mock_config, 300, move |s| {
        s.listen = format!("127.0.0.1:{port}");
        let base = s.wechat.api_base.clone();
        let pay = &mut s.pay;
        pay.api_base = base;
        pay.mch_id = Some(merchant::MCH_ID.to_owned());
        pay.api_key_v2 = Some(linli::config::Secret::new(merchant::API_KEY_V2));
        pay.api_v3_key = Some(linli::config::Secret::new(merchant::API_V3_KEY));
        pay.cert_serial = Some(merchant::MERCHANT_CERT_SERIAL.to_owned());
        pay.private_key_path = Some(private.display().to_string());
        pay.public_key_id = Some(merchant::WECHATPAY_PUBLIC_KEY_ID.to_owned());
        pay.public_key_path = Some(public.display().to_string());
        pay.notify_url = Some(format!("http://127.0.0.1:{port}/wechat/pay/notify"));
        let p = &mut pay.payouts;
        p.tick = std::time::Duration::from_millis(20);
        p.timeout = std::time::Duration::from_millis(1500);
        p.backoff_ms = 30;
        p.poll_secs = 1;
        p.receipt_check_secs = 1;
        p.rate_per_sec = 1000;
        p.lease_secs = 5;
        configure(s);
    })
    .await;
    oa
}

/// Waits (up to 30 s) until `check` holds; panics with `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
