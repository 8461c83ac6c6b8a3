//! The system under test: a fresh database of its own (a SQLite file, or a PostgreSQL database
//! made and dropped on the server named), and linli itself as a child process — the release
//! binary, configured only through its environment, as it runs in production.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sqlx::Connection;

/// The linli binary Cargo built beside this bench.
pub fn linli_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_linli"))
}

/// The run's own database, removed when dropped.
pub enum Database {
    Sqlite { url: String, path: PathBuf },
    Postgres { url: String, admin_url: String, name: String },
}

impl Database {
    pub async fn create(admin_url: Option<&str>, dir: &Path, tag: &str) -> anyhow::Result<Database> {
        sqlx::any::install_default_drivers();
        match admin_url {
            None => {
                let path = dir.join("linli-load.db");
                Ok(Database::Sqlite { url: format!("sqlite://{}", path.display()), path })
            }
            Some(admin_url) if admin_url.starts_with("postgres") => {
                let name = format!("linli_load_{tag}");
                let mut conn = sqlx::AnyConnection::connect(admin_url)
                    .await
                    .with_context(|| format!("connecting to {}", redact(admin_url)))?;
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.context("CREATE DATABASE")?;
                let _ = conn.close().await;
                let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(b, q)| (b, Some(q)));
                let (server, _) = base.rsplit_once('/').context("--database needs a database path (…/postgres)")?;
                let url = match query {
                    Some(q) => format!("{server}/{name}?{q}"),
                    None => format!("{server}/{name}"),
                };
                Ok(Database::Postgres { url, admin_url: admin_url.to_owned(), name })
            }
            Some(other) => bail!("--database must be a postgres:// URL, got {}", redact(other)),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Database::Sqlite { url, .. } | Database::Postgres { url, .. } => url,
        }
    }

    /// A pool for reading the figures and checking invariants (not the server's).
    pub async fn pool(&self) -> anyhow::Result<sqlx::AnyPool> {
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(2).connect(self.url()).await?;
        Ok(pool)
    }

    /// What engine, which version, with what durability.
    pub async fn describe(&self, pool: &sqlx::AnyPool) -> String {
        match self {
            Database::Sqlite { path, .. } => {
                let v: Result<(String,), _> = sqlx::query_as("SELECT sqlite_version()").fetch_one(pool).await;
                format!(
                    "SQLite {} (bundled), file {} — WAL, synchronous=FULL, one writer connection (linli's settings)",
                    v.map(|v| v.0).unwrap_or_default(),
                    path.display()
                )
            }
            Database::Postgres { name, .. } => {
                let v: Result<(String,), _> = sqlx::query_as("SHOW server_version").fetch_one(pool).await;
                let fsync: Result<(String,), _> = sqlx::query_as("SHOW synchronous_commit").fetch_one(pool).await;
                format!(
                    "PostgreSQL {} on 127.0.0.1 (same machine), database {name} (made for this run), \
                     synchronous_commit={}",
                    v.map(|v| v.0).unwrap_or_default(),
                    fsync.map(|v| v.0).unwrap_or_default()
                )
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        match self {
            Database::Sqlite { path, .. } => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Database::Postgres { admin_url, name, .. } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop may run inside the runtime: a thread with a runtime of its own.
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                    rt.block_on(async {
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

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// linli's environment: the database, wechat-mock as WeChat and WeChat Pay, the official
/// account's company (org 2), warnings-only logging.
pub fn linli_env(
    db_url: &str,
    mock_base: &str,
    dir: &std::path::Path,
    port: u16,
) -> anyhow::Result<Vec<(String, String)>> {
    use wechat_mock::pay::config as merchant;
    let private = dir.join("apiclient_key.pem");
    let public = dir.join("wechatpay_pub.pem");
    std::fs::write(&private, merchant::MERCHANT_PRIVATE_KEY_PEM)?;
    std::fs::write(&public, merchant::WECHATPAY_PUBLIC_KEY_PEM)?;
    let pairs = [
        ("DATABASE_URL", db_url.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        ("WECHAT_API_BASE", mock_base.to_owned()),
        ("WECHAT_OA_APPID", wechat_mock::OA_APPID.to_owned()),
        ("WECHAT_OA_SECRET", wechat_mock::OA_SECRET.to_owned()),
        ("WECHAT_OA_TOKEN", wechat_mock::OA_CALLBACK_TOKEN.to_owned()),
        ("WECHAT_OA_AES_KEY", wechat_mock::OA_ENCODING_AES_KEY.to_owned()),
        ("LINLI_OA_COMPANY_ID", "2".to_owned()),
        ("WECHAT_MP_APPID", wechat_mock::MP_APPID.to_owned()),
        ("WECHAT_MP_SECRET", wechat_mock::MP_SECRET.to_owned()),
        ("WECHATPAY_API_BASE", mock_base.to_owned()),
        ("WECHATPAY_MCH_ID", merchant::MCH_ID.to_owned()),
        ("WECHATPAY_API_KEY_V2", merchant::API_KEY_V2.to_owned()),
        ("WECHATPAY_API_V3_KEY", merchant::API_V3_KEY.to_owned()),
        ("WECHATPAY_CERT_SERIAL", merchant::MERCHANT_CERT_SERIAL.to_owned()),
        ("WECHATPAY_PRIVATE_KEY_PATH", private.display().to_string()),
        ("WECHATPAY_PUBLIC_KEY_ID", merchant::WECHATPAY_PUBLIC_KEY_ID.to_owned()),
        ("WECHATPAY_PUBLIC_KEY_PATH", public.display().to_string()),
        ("WECHATPAY_NOTIFY_URL", format!("http://127.0.0.1:{port}/wechat/pay/notify")),
        // The mock answers at once; the default (25/s) would make draining 1,000 payouts take 40 s.
        ("LINLI_PAY_RATE_PER_SEC", "1000".to_owned()),
        // Ten thousand residents log in from this one address, and each scenario fires from
        // 64 connections: the abuse limits would measure themselves, not linli.
        ("LINLI_RATE_LOGIN_PER_IP_PER_SEC", "0".to_owned()),
        ("LINLI_RATE_RESIDENT_PER_SEC", "0".to_owned()),
        ("LINLI_RATE_KEY_PER_SEC", "0".to_owned()),
    ];
    Ok(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// How to start linli: the binary, its working directory and its whole environment.
#[derive(Clone)]
pub struct Launch {
    pub exe: PathBuf,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Launch {
    fn command(&self, listen: &str) -> Command {
        let mut cmd = Command::new(&self.exe);
        // Nothing from the shell (a DATABASE_URL, a .env in the working directory) leaks in.
        cmd.env_clear().current_dir(&self.dir).env("LINLI_LISTEN", listen);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `linli keys create --org 1 --role admin`: answers the secret it prints.
    pub fn create_admin_key(&self) -> anyhow::Result<String> {
        let out = self
            .command("127.0.0.1:0")
            .args(["keys", "create", "--org", "1", "--role", "admin", "--name", "load bench"])
            .stdin(Stdio::null())
            .output()
            .context("running linli keys create")?;
        if !out.status.success() {
            bail!("linli keys create failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let secret = stdout.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("").to_owned();
        if secret.contains(' ') || secret.is_empty() {
            bail!("no secret in the output of linli keys create: {stdout}");
        }
        Ok(secret)
    }

    /// Starts an instance listening on `port`, and waits until `/readyz` answers 200.
    pub async fn start(&self, port: u16, name: &str) -> anyhow::Result<Server> {
        let log_path = self.dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let log_offset = log.metadata()?.len();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let child = self
            .command(&addr.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        let mut server = Server { child, addr, log_path, log_offset, name: name.to_owned() };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!("linli exited at start-up ({status}); its log:\n{}", server.new_log());
            }
            let ready = client.get(format!("http://{addr}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("linli was not ready within 120 s; its log:\n{}", server.new_log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A running linli.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub name: String,
    log_path: PathBuf,
    log_offset: u64,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process's peak resident set (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        proc_status_kib(self.pid(), "VmHWM:").map(|kib| kib as f64 / 1024.0)
    }

    /// CPU time used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.pid()))
    }

    /// What the server logged since it started (or since the last call).
    pub fn new_log(&mut self) -> String {
        let text = std::fs::read(&self.log_path).unwrap_or_default();
        let start = (self.log_offset as usize).min(text.len());
        self.log_offset = text.len() as u64;
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// Kills it at once with SIGKILL, as a power cut or the OOM killer would: no grace period,
    /// nothing flushed, requests and calls to WeChat cut off wherever they are.
    pub fn kill(mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.child.kill().context("SIGKILL to linli")?;
        Ok(self.child.wait()?)
    }

    /// Stops it as an operator would (SIGTERM, then the grace period), killing it if it hangs.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("linli did not stop within 20 s of SIGTERM; killed");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// utime + stime of a `/proc/…/stat` file, in seconds.
pub fn cpu_seconds(stat_path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else { return 0.0 };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rfind(')').map(|at| &stat[at + 2..]) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / clock_ticks_per_sec()
}

/// CPU time used so far by every PostgreSQL process on this machine (the database's backends,
/// checkpointer, WAL writer), in seconds.
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "postgres"))
        .map(|e| cpu_seconds(&e.path().join("stat").display().to_string()))
        .sum()
}

/// How many cores other processes keep busy while nothing of ours runs: sampled for a second.
pub fn background_cores() -> f64 {
    let before = machine_busy_seconds();
    std::thread::sleep(Duration::from_secs(1));
    machine_busy_seconds() - before
}

/// Busy CPU time of the whole machine so far (every core; idle and I/O wait excluded), in
/// seconds: what the client and the server leave of it is the database's and the kernel's.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0.0 };
    let f: Vec<u64> = cpu.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| f.get(*i)).sum();
    busy as f64 / clock_ticks_per_sec()
}

fn clock_ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A port nobody listens on now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The machine, for the report's header.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({model}), {mem_gib:.1} GiB RAM, Linux {}", kernel.trim())
}

/// The commit measured, marked when the working tree differs from it.
pub fn commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        None => "unknown (not a git checkout)".to_owned(),
        Some(head) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{head} + uncommitted changes"),
            _ => head,
        },
    }
}
