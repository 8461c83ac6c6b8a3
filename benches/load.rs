//! linli's load benchmark: drives a running linli (the release binary, as a child process) over
//! HTTP with many simulated residents — real follows and real mini-program sessions through
//! wechat-mock — and prints, per scenario, throughput, latency percentiles, answers by kind, the
//! server's peak memory and CPU, and the throughput as a fraction of a ceiling measured in the
//! same run (`GET /healthz`, same client, same connections). Then it checks the invariants in
//! the database and exits non-zero if any fails.
//!
//! ```sh
//! cargo bench --bench load                        # everything, SQLite, full sizes
//! cargo bench --bench load -- --quick             # small sizes (CI)
//! cargo bench --bench load -- --database postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench --bench load -- --database postgres://… --instances 2   # two instances, one database
//! cargo bench --bench load -- --scenario hot-red-packet --connections 128
//! ```

#![forbid(unsafe_code)]

#[path = "load/checks.rs"]
mod checks;
#[path = "load/fire.rs"]
mod fire;
#[path = "load/http.rs"]
mod http;
#[path = "load/report.rs"]
mod report;
#[path = "load/scenarios.rs"]
mod scenarios;
// server.rs and world.rs are shared with the crash drill, which uses parts this bench does not.
#[path = "load/server.rs"]
#[allow(dead_code)]
mod server;
#[path = "load/world.rs"]
#[allow(dead_code)]
mod world;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use rand::RngCore;
use report::ms;

use scenarios::{Bench, Sizes, ALL};
use server::{Database, Launch};
use world::{MockLink, World};

#[derive(Parser, Debug)]
#[command(name = "load", about = "linli's load benchmark")]
struct Options {
    /// A PostgreSQL server to run against (a database is made for the run and dropped after),
    /// e.g. postgres://postgres@127.0.0.1:5432/postgres. Default: a temporary SQLite file.
    #[arg(long)]
    database: Option<String>,
    /// Run only these scenarios (repeat or separate with commas): checkin, checkin-fixed-rate,
    /// hot-red-packet, hot-red-packet-cash, hot-coupon, mixed-day. The ceiling always runs.
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<String>,
    /// linli instances sharing the database (PostgreSQL only); with more than one the default
    /// scenario is hot-red-packet.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Keep-alive connections (one worker each) the client keeps open.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Small sizes CI can afford: 500 residents, 50 shares, stock 50, a 3 s mixed day.
    #[arg(long)]
    quick: bool,
    /// Residents (default 10000; quick 500).
    #[arg(long)]
    residents: Option<usize>,
    /// Red-packet shares (default 1000; quick 50).
    #[arg(long)]
    shares: Option<i64>,
    /// Coupon stock (default 1000; quick 50).
    #[arg(long)]
    stock: Option<i64>,
    /// Rate of the fixed-rate check-in run, per second.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Seconds of the mixed day (default 20; quick 3).
    #[arg(long)]
    duration: Option<u64>,
    /// Another setting for linli, KEY=VALUE (repeatable), e.g. --env LINLI_DB_MAX_CONNECTIONS=20.
    #[arg(long = "env")]
    env: Vec<String>,
    /// Before each scenario, wait up to this many seconds for other processes (builds, other
    /// test suites) to leave the CPUs idle; the run says when they did not.
    #[arg(long, default_value_t = 0)]
    wait_quiet: u64,
    /// Keep the working directory (server logs, SQLite file) and print where it is.
    #[arg(long)]
    keep: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    let options = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("load: {failed} invariant(s) FAILED");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn random_tag() -> String {
    let mut b = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn run(o: Options) -> anyhow::Result<usize> {
    if o.instances == 0 || o.connections == 0 {
        bail!("--instances and --connections must be at least 1");
    }
    if o.instances > 1 && o.database.is_none() {
        bail!("--instances above 1 needs PostgreSQL (--database postgres://…): SQLite is one process's database");
    }
    let scenarios: Vec<String> = if !o.scenario.is_empty() {
        o.scenario.clone()
    } else if o.instances > 1 {
        vec!["hot-red-packet".into()]
    } else {
        ALL.iter().map(|s| s.to_string()).collect()
    };
    if let Some(bad) = scenarios.iter().find(|s| !ALL.contains(&s.as_str())) {
        bail!("unknown scenario {bad}; one of {}", ALL.join(", "));
    }
    let sizes = Sizes {
        residents: o.residents.unwrap_or(if o.quick { 500 } else { 10_000 }),
        shares: o.shares.unwrap_or(if o.quick { 50 } else { 1_000 }),
        stock: o.stock.unwrap_or(if o.quick { 50 } else { 1_000 }),
        ceiling_requests: if o.quick { 5_000 } else { 100_000 },
        checkin_rate: o.rate,
        mixed_duration: Duration::from_secs(o.duration.unwrap_or(if o.quick { 3 } else { 20 })),
        connections: o.connections,
        wait_quiet: Duration::from_secs(o.wait_quiet),
    };

    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let redacted: Vec<String> = args.iter().map(|a| server::redact(a)).collect();
    println!("# linli load benchmark");
    println!("machine:   {}", server::machine());
    println!("commit:    {}", server::commit());
    let background = server::background_cores();
    println!(
        "quiet:     other processes kept {background:.2} cores busy in the second before the run{}",
        if background > 0.2 { " — NOT a quiet machine: the figures below are depressed by it" } else { "" }
    );
    println!(
        "command:   cargo bench --bench load{}",
        if args.is_empty() { String::new() } else { format!(" -- {}", redacted.join(" ")) }
    );

    let tag = random_tag();
    let dir = std::env::temp_dir().join(format!("linli-load-{tag}"));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&o, sizes, scenarios, &dir, &tag).await;
    if o.keep {
        println!("working directory kept: {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run_in(
    o: &Options,
    sizes: Sizes,
    scenarios: Vec<String>,
    dir: &std::path::Path,
    tag: &str,
) -> anyhow::Result<usize> {
    let mock = wechat_mock::start(wechat_mock::MockConfig::default(), "127.0.0.1:0").await?;
    let database = Database::create(o.database.as_deref(), dir, tag).await?;
    let ports: Vec<u16> = (0..o.instances).map(|_| server::free_port()).collect::<anyhow::Result<_>>()?;
    let mut env = server::linli_env(database.url(), &mock.base_url, dir, ports[0])?;
    for pair in &o.env {
        let (k, v) = pair.split_once('=').with_context(|| format!("--env {pair}: expected KEY=VALUE"))?;
        env.retain(|(name, _)| name != k);
        env.push((k.to_owned(), v.to_owned()));
    }
    let launch = Launch { exe: server::linli_exe(), dir: dir.to_owned(), env };
    let mut servers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        servers.push(launch.start(*port, &format!("linli-{}", i + 1)).await?);
    }
    let pool = database.pool().await?;
    println!("engine:    {}", database.describe(&pool).await);
    println!(
        "server:    {} ×{} instance(s), RUST_LOG=warn, LINLI_PAY_RATE_PER_SEC=1000, LINLI_RATE_*_PER_SEC=0 (abuse limits off){}; other settings default \
         (LINLI_DB_MAX_CONNECTIONS=10); restarted before each scenario, so each peak RSS (VmHWM) is that \
         scenario's own",
        launch.exe.display(),
        o.instances,
        o.env.iter().map(|e| format!(", {e}")).collect::<String>()
    );
    println!(
        "client:    {} keep-alive connections, one worker each, prepared request bytes over HTTP/1.1 \
         (this process also hosts wechat-mock)",
        sizes.connections
    );
    println!(
        "sizes:     {} residents, {} red-packet shares, coupon stock {}, check-ins at {:.0}/s for the fixed-rate run, \
         mixed day {} s",
        sizes.residents,
        sizes.shares,
        sizes.stock,
        sizes.checkin_rate,
        sizes.mixed_duration.as_secs()
    );
    println!("scenarios: ceiling, {}", scenarios.join(", "));

    println!("\nsetup (not timed):");
    let admin_key = launch.create_admin_key()?;
    let mut world = World {
        mock: MockLink::InProcess(mock),
        http: reqwest::Client::new(),
        base: servers[0].base_url(),
        admin_key,
        company_id: 0,
    };
    world.create_company().await?;
    let cohort = world.residents(sizes.residents, true).await?;
    let spare = if scenarios.iter().any(|s| s == "checkin-fixed-rate") {
        world.residents(sizes.residents, false).await?
    } else {
        Vec::new()
    };
    let mut bench = Bench {
        sizes,
        launch,
        ports,
        servers,
        world,
        pool,
        cohort,
        spare,
        ceiling: None,
        rows: Vec::new(),
        checks: checks::Checks::default(),
        postgres: o.database.is_some(),
    };
    let mut failed_scenarios = Vec::new();
    for name in std::iter::once("ceiling".to_owned()).chain(scenarios) {
        if let Err(e) = bench.run(&name).await {
            println!("  ! scenario {name} could not run: {e:#}");
            bench.checks.add(&name, "scenario ran to the end", false, format!("{e:#}"));
            failed_scenarios.push(name);
        }
    }
    for s in std::mem::take(&mut bench.servers) {
        s.stop().await?;
    }

    let background = server::background_cores();
    println!("\nother processes kept {background:.2} cores busy in the second after the run");
    println!("\n## Summary\n");
    report::table(&bench.rows);
    println!();
    for r in &bench.rows {
        println!("- {}: {}", r.name, r.answers.join(", "));
        for line in r.extra.iter().filter(|l| !l.starts_with("! ") || l.contains("unexpected")) {
            println!("  - {line}");
        }
    }
    print_targets(&bench, o);
    let failed = bench.checks.failures();
    println!("\ninvariants: {} checked, {} failed", bench.checks.all.len(), failed);
    for c in bench.checks.all.iter().filter(|c| !c.pass) {
        println!("  FAIL {}: {}: {}", c.scenario, c.name, c.detail);
    }
    bench.pool.close().await;
    drop(database);
    Ok(failed)
}

/// The figures the issue asks for, against its targets (2 cores, SQLite; PostgreSQL grants).
fn print_targets(bench: &Bench, o: &Options) {
    let find = |prefix: &str| bench.rows.iter().find(|r| r.name.starts_with(prefix));
    let grants = |r: &report::Row| {
        r.extra.iter().filter(|l| l.starts_with("durable grants")).find_map(|l| {
            let (_, rest) = l.split_once(" = ")?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
    };
    let mut lines = Vec::new();
    let mut target = |what: String, met: bool| lines.push(format!("{} {what}", if met { "met   " } else { "missed" }));
    let pg = o.database.is_some();
    if let Some(r) = find("check-in pushes (") {
        target(format!("check-in pushes ≥ 10000/s: {:.0}/s", r.fig.per_sec), r.fig.per_sec >= 10_000.0);
    }
    if let Some(r) = find("check-in pushes at") {
        target(format!("check-in p99 ≤ 20 ms at a fixed rate: {} ms", ms(r.fig.p99_ms)), r.fig.p99_ms <= 20.0);
    }
    if let Some(r) = find("hot red packet, balance") {
        target(format!("grab attempts ≥ 20000/s: {:.0}/s", r.fig.per_sec), r.fig.per_sec >= 20_000.0);
        if let Some(g) = grants(r) {
            let want = if pg { 5_000.0 } else { 10_000.0 };
            target(format!("durable grants ≥ {want:.0}/s while shares last: {g:.0}/s"), g >= want);
        }
        target(format!("grab p99 ≤ 100 ms: {} ms", ms(r.fig.p99_ms)), r.fig.p99_ms <= 100.0);
    }
    if let Some(r) = find("hot coupon") {
        target(format!("coupon claims ≥ 10000/s: {:.0}/s", r.fig.per_sec), r.fig.per_sec >= 10_000.0);
    }
    for r in &bench.rows {
        let peak = r.rss_mib.iter().copied().fold(0.0, f64::max);
        target(format!("peak RSS ≤ 150 MB in {}: {peak:.0} MiB", r.name), peak * 1.048_576 <= 150.0);
    }
    println!(
        "\ntargets (set for 2 cores; grants ≥ 10000/s on SQLite, ≥ 5000/s on PostgreSQL; {}):",
        if o.quick { "quick sizes, indicative only" } else { "full sizes" }
    );
    for l in lines {
        println!("  {l}");
    }
}
