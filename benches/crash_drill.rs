//! linli's crash drill: hot red packets whose shares are paid through WeChat Pay, with linli
//! killed by SIGKILL at random moments — during the grab burst and while the payout dispatcher is
//! sending — and restarted on the same database each time. Afterwards it checks that no
//! acknowledged grab was lost, no payout was paid twice or lost, and the ledgers hold, and exits
//! non-zero if anything failed.
//!
//! wechat-mock runs as a process of its own (this executable with `--serve-mock`): WeChat's
//! memory of what it paid outlives every linli that dies, and is the truth the database is held to.
//!
//! ```sh
//! cargo bench --bench crash_drill                                  # SQLite, 3 rounds
//! cargo bench --bench crash_drill -- --database postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench --bench crash_drill -- --rounds 5 --seed 42 --burst-kills 3 --dispatch-kills 3
//! ```

#![forbid(unsafe_code)]

// The load generator's modules, shared: this drill uses only part of each.
#[path = "load/checks.rs"]
#[allow(dead_code)]
mod checks;
#[path = "load/fire.rs"]
#[allow(dead_code)]
mod fire;
#[path = "crash_drill/grabs.rs"]
mod grabs;
#[path = "load/http.rs"]
mod http;
#[path = "crash_drill/outage.rs"]
mod outage;
#[path = "crash_drill/payers.rs"]
mod payers;
#[path = "load/server.rs"]
#[allow(dead_code)]
mod server;
#[path = "crash_drill/verify.rs"]
mod verify;
#[path = "load/world.rs"]
#[allow(dead_code)]
mod world;

use std::io::BufRead;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use checks::Checks;
use outage::Outage;
use server::{Database, Launch};
use world::{MockLink, World};

#[derive(Parser, Debug)]
#[command(name = "crash_drill", about = "linli's crash drill: SIGKILL during grabs and payouts, then check")]
struct Options {
    /// A PostgreSQL server (a database is made for the run and dropped after), e.g.
    /// postgres://postgres@127.0.0.1:5432/postgres. Default: a SQLite file of the run's own.
    #[arg(long)]
    database: Option<String>,
    /// Rounds: each makes two new red packets (cash red packet and transfer), fires, kills, settles
    /// and checks.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Kills per round during the grab burst.
    #[arg(long, default_value_t = 2)]
    burst_kills: usize,
    /// Kills per round after the burst, while the dispatcher sends and polls.
    #[arg(long, default_value_t = 2)]
    dispatch_kills: usize,
    /// Residents with sessions, each grabbing both red packets of every round.
    #[arg(long, default_value_t = 300)]
    residents: usize,
    /// Shares of each red packet.
    #[arg(long, default_value_t = 80)]
    shares: i64,
    /// The seed of the kill schedule, the faults and the order of grabs (random when absent; the
    /// run prints it). It fixes the schedule, not the machine's timing.
    #[arg(long)]
    seed: Option<u64>,
    /// linli's calls to WeChat Pay per second (`LINLI_PAY_RATE_PER_SEC`): low enough that the
    /// dispatcher is still sending when the dispatch kills come.
    #[arg(long, default_value_t = 30)]
    pay_rate: u32,
    /// No injected WeChat Pay faults (by default some calls pay and then answer too late, some
    /// answer 503 or SYSTEM_ERROR).
    #[arg(long)]
    no_faults: bool,
    /// How long every payout may take to settle after the last restart of a round, seconds.
    #[arg(long, default_value_t = 180)]
    settle_secs: u64,
    /// Client connections firing grabs.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Keep the working directory (linli's log, the SQLite file) and print where it is.
    #[arg(long)]
    keep: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// Internal: serve wechat-mock in this process and print its address.
    #[arg(long, hide = true)]
    serve_mock: bool,
}

fn main() -> ExitCode {
    let options = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crash_drill: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if options.serve_mock {
        return match runtime.block_on(serve_mock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("crash_drill --serve-mock: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(run(options)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("crash_drill: {failed} check(s) FAILED");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("crash_drill: {e:#}");
            ExitCode::FAILURE
        }
    }
}

const MOCK_READY: &str = "wechat-mock listening on ";

/// The mock's own process: serves until killed, or until its parent (the drill) goes away.
async fn serve_mock() -> anyhow::Result<()> {
    let mock = wechat_mock::start(wechat_mock::MockConfig::default(), "127.0.0.1:0").await?;
    println!("{MOCK_READY}{}", mock.base_url);
    // The drill reads the address, then holds stdin open; when it ends, stdin closes.
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    })
    .await?;
    mock.shutdown().await?;
    Ok(())
}

/// wechat-mock in a child process of the drill's (not of linli's).
struct MockProcess {
    child: Child,
    base_url: String,
}

impl MockProcess {
    fn start() -> anyhow::Result<MockProcess> {
        let exe = std::env::current_exe().context("the drill's own executable")?;
        let mut child = Command::new(exe)
            .arg("--serve-mock")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting wechat-mock")?;
        let stdout = child.stdout.take().context("wechat-mock's stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).context("reading wechat-mock's address")?;
        let Some(base_url) = line.trim().strip_prefix(MOCK_READY).map(str::to_owned) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("wechat-mock did not start: {line:?}");
        };
        Ok(MockProcess { child, base_url })
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the drill sets beyond the load generator's environment, and why.
fn drill_env(pay_rate: u32) -> Vec<(String, String)> {
    [
        // Slow enough that the dispatcher is mid-send when the dispatch kills come.
        ("LINLI_PAY_RATE_PER_SEC", pay_rate.to_string()),
        // A payout leased by a killed instance waits for its lease to run out: keep that short.
        ("LINLI_PAYOUT_LEASE_SECS", "3".to_owned()),
        ("LINLI_PAYOUT_BACKOFF_MS", "100".to_owned()),
        // Sent red packets and waiting transfers are looked at again after a second, not hours.
        ("LINLI_PAYOUT_POLL_SECS", "1".to_owned()),
        ("LINLI_RED_PACKET_RECEIPT_CHECK_SECS", "1".to_owned()),
        // Shorter than the injected "answer after paying" delay, so those calls time out.
        ("LINLI_PAY_TIMEOUT_MS", "1000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn random_tag() -> String {
    let mut b = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn run(o: Options) -> anyhow::Result<usize> {
    if o.rounds == 0 || o.residents == 0 || o.shares <= 0 || o.connections == 0 {
        bail!("--rounds, --residents, --shares and --connections must be at least 1");
    }
    let seed = o.seed.unwrap_or_else(|| rand::thread_rng().next_u64());
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let redacted: Vec<String> = args.iter().map(|a| server::redact(a)).collect();
    println!("# linli crash drill");
    println!("machine:   {}", server::machine());
    println!("commit:    {}", server::commit());
    println!(
        "command:   cargo bench --bench crash_drill{}",
        if args.is_empty() { String::new() } else { format!(" -- {}", redacted.join(" ")) }
    );
    println!("seed:      {seed} (repeat with --seed {seed})");

    let tag = random_tag();
    let dir = std::env::temp_dir().join(format!("linli-crash-{tag}"));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&o, seed, &dir, &tag).await;
    if o.keep {
        println!("working directory kept: {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// One round's figures, for the summary.
struct RoundSummary {
    kills_burst: usize,
    kills_dispatch: usize,
    grab_requests: usize,
    acknowledged: usize,
    grants: i64,
    cut_in_flight: u64,
    /// Grants whose 201 never reached the resident.
    answers_lost: usize,
    payouts: i64,
    paid_by_mock: usize,
    succeeded: i64,
    failed: i64,
    settle_secs: f64,
    failed_checks: usize,
}

async fn run_in(o: &Options, seed: u64, dir: &std::path::Path, tag: &str) -> anyhow::Result<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mock = MockProcess::start()?;
    let database = Database::create(o.database.as_deref(), dir, &format!("crash_{tag}")).await?;
    let port = server::free_port()?;
    let mut env = server::linli_env(database.url(), &mock.base_url, dir, port)?;
    for (k, v) in drill_env(o.pay_rate) {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    }
    let launch = Launch { exe: server::linli_exe(), dir: dir.to_owned(), env };
    // linli makes the database (and its SQLite file) on its first start.
    let admin_key = launch.create_admin_key()?;
    let server = launch.start(port, "linli").await?;
    let pool = database.pool().await?;
    println!("engine:    {}", database.describe(&pool).await);
    println!(
        "server:    {} (one instance, port {port}), killed with SIGKILL and restarted on the same database; \
         LINLI_PAY_RATE_PER_SEC={}, LINLI_PAYOUT_LEASE_SECS=3, LINLI_PAYOUT_POLL_SECS=1, \
         LINLI_RED_PACKET_RECEIPT_CHECK_SECS=1, LINLI_PAY_TIMEOUT_MS=1000",
        launch.exe.display(),
        o.pay_rate
    );
    println!("wechat-mock: {} (pid {}, its own process)", mock.base_url, mock.child.id());
    println!(
        "sizes:     {} rounds; each: 2 red packets (cash_red_packet, transfer) of {} shares, {} residents \
         grabbing both, {} kills during the burst, {} while the dispatcher works; faults {}",
        o.rounds,
        o.shares,
        o.residents,
        o.burst_kills,
        o.dispatch_kills,
        if o.no_faults { "off" } else { "on" }
    );

    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let mut world = World {
        mock: MockLink::Process { base_url: mock.base_url.clone() },
        http: http.clone(),
        base: server.base_url(),
        admin_key,
        company_id: 0,
    };
    println!("\nsetup:");
    world.create_company().await?;
    let residents = world.residents(o.residents, true).await?;
    let mut outage = Outage::new(launch, port, server, pool.clone());
    let mut checks = Checks::default();
    let mut summaries = Vec::new();
    for round in 1..=o.rounds {
        let failed_before = checks.failures();
        let summary = drill_round(o, round, &mut rng, &world, &residents, &mut outage, &mut checks).await;
        match summary {
            Ok(mut s) => {
                s.failed_checks = checks.failures() - failed_before;
                summaries.push(s);
            }
            Err(e) => {
                println!("  ! round {round} could not run to the end: {e:#}");
                checks.add(&format!("round {round}"), "round ran to the end", false, format!("{e:#}"));
                break;
            }
        }
    }
    println!("\n## After the last round");
    checks::ledgers(&mut checks, "end", &pool).await?;
    let panics = outage.log_lines_matching("panicked");
    checks.add(
        "end",
        "no panic in linli's log (every start)",
        panics.is_empty(),
        if panics.is_empty() { "none".to_owned() } else { panics.join(" | ") },
    );
    outage.stop().await?;

    println!("\n## Summary (seed {seed})\n");
    println!(
        "| round | kills (burst + dispatch) | grab requests | cut off in flight | acknowledged | grants | grants never acknowledged | \
         payouts | paid by WeChat | succeeded | failed | settled in s | failed checks |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, s) in summaries.iter().enumerate() {
        println!(
            "| {} | {} + {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
            i + 1,
            s.kills_burst,
            s.kills_dispatch,
            s.grab_requests,
            s.cut_in_flight,
            s.acknowledged,
            s.grants,
            s.answers_lost,
            s.payouts,
            s.paid_by_mock,
            s.succeeded,
            s.failed,
            s.settle_secs,
            s.failed_checks
        );
    }
    let kills: usize = summaries.iter().map(|s| s.kills_burst + s.kills_dispatch).sum();
    let acked: usize = summaries.iter().map(|s| s.acknowledged).sum();
    let payouts: i64 = summaries.iter().map(|s| s.payouts).sum();
    let failed = checks.failures();
    println!(
        "\ntotal: {} rounds, {kills} kills (SIGKILL), {acked} grabs acknowledged, {payouts} payouts; \
         checks: {} run, {failed} failed — {}",
        summaries.len(),
        checks.all.len(),
        if failed == 0 { "PASS" } else { "FAIL" }
    );
    for c in checks.all.iter().filter(|c| !c.pass) {
        println!("  FAIL {}: {}: {}", c.scenario, c.name, c.detail);
    }
    pool.close().await;
    drop(database);
    drop(mock);
    Ok(failed)
}

async fn drill_round(
    o: &Options,
    round: usize,
    rng: &mut StdRng,
    world: &World,
    residents: &[world::Resident],
    outage: &mut Outage,
    checks: &mut Checks,
) -> anyhow::Result<RoundSummary> {
    let name = format!("round {round}");
    println!("\n## Round {round}");
    let cash_total = o.shares * 150;
    let transfer_total = o.shares * 120;
    let campaigns = vec![
        verify::Campaign {
            id: world.red_packet("cash_red_packet", cash_total, o.shares).await?,
            channel: "cash_red_packet",
            shares: o.shares,
            total_fen: cash_total,
        },
        verify::Campaign {
            id: world.red_packet("transfer", transfer_total, o.shares).await?,
            channel: "transfer",
            shares: o.shares,
            total_fen: transfer_total,
        },
    ];
    println!(
        "  red packets: {} (cash_red_packet, {} fen) and {} (transfer, {} fen), {} shares each",
        campaigns[0].id, cash_total, campaigns[1].id, transfer_total, o.shares
    );
    if !o.no_faults {
        let faults = payers::inject_faults(&world.http, world.mock.base_url(), rng).await?;
        println!("  faults:      {faults}");
    }
    let payer = payers::Payers::start(world.http.clone(), world.mock.base_url().to_owned());
    let started = Instant::now();
    outage.begin_round(round, started);

    // The burst, with kills at random moments inside it.
    let burst_kills: Vec<(Duration, Duration)> = (0..o.burst_kills)
        .map(|_| (Duration::from_millis(rng.gen_range(10..=200)), Duration::from_millis(rng.gen_range(0..=300))))
        .collect();
    let order_seed = rng.next_u64();
    let ids: Vec<i64> = campaigns.iter().map(|c| c.id).collect();
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let target = outage.addr();
    let burst = async {
        let result = grabs::burst(target, residents, &ids, o.connections, order_seed, Duration::from_secs(300)).await;
        let _ = done_tx.send(true);
        result
    };
    let kills = outage.kill_during("burst", &burst_kills, done_rx);
    let (burst, kills) = tokio::join!(burst, kills);
    let burst = burst?;
    let kills_burst = kills?;
    println!(
        "  grabs:       {} requests in {} waves over {:.2} s, {} kills during the burst; {} acknowledged (201); \
         without an answer: {} cut off in flight, {} refused at connect (retried); answered already_grabbed \
         after a cut-off request: {}",
        burst.requests,
        burst.waves,
        started.elapsed().as_secs_f64(),
        kills_burst,
        burst.acks.len(),
        burst.cut_mid_request,
        burst.refused_connect,
        burst.already_after_cut.len()
    );

    // The dispatcher at work: more kills while it sends, queries and takes notifications.
    let mut kills_dispatch = 0;
    for _ in 0..o.dispatch_kills {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..=1500))).await;
        outage.kill_and_restart("dispatch", Duration::from_millis(rng.gen_range(0..=300))).await?;
        kills_dispatch += 1;
    }
    outage.print_round_kills();

    // Settle: every payout of the round succeeded or failed, with the residents opening their
    // red packets and confirming their transfers all along.
    let settle_started = Instant::now();
    let deadline = settle_started + Duration::from_secs(o.settle_secs);
    let open_left = verify::wait_settled(outage.pool(), &ids, deadline).await?;
    let settle_secs = settle_started.elapsed().as_secs_f64();
    let paid = payer.stop().await;
    println!(
        "  settle:      {} s after the last restart ({} open payouts left); residents opened {} red packets and \
         confirmed {} transfers",
        (settle_secs * 10.0).round() / 10.0,
        open_left,
        paid.received,
        paid.confirmed
    );
    world::control::<serde_json::Value>(world.http.delete(format!("{}/__mock/faults", world.mock.base_url()))).await?;

    println!("  checks:");
    let ledger = world.mock.payments(&world.http).await?;
    let calls = payers::pay_calls(&world.http, world.mock.base_url()).await?;
    let mut summary = RoundSummary {
        kills_burst,
        kills_dispatch,
        grab_requests: burst.requests,
        acknowledged: burst.acks.len(),
        grants: 0,
        cut_in_flight: burst.cut_mid_request,
        answers_lost: 0,
        payouts: 0,
        paid_by_mock: 0,
        succeeded: 0,
        failed: 0,
        settle_secs,
        failed_checks: 0,
    };
    checks.equal(&name, "payouts still open after settling", open_left, 0);
    verify::grab_answers(checks, &name, &burst);
    let resident_ids = verify::resident_ids(outage.pool(), residents).await?;
    for c in &campaigns {
        let figures = verify::campaign(checks, &name, outage.pool(), c, &burst, &resident_ids, &ledger).await?;
        summary.grants += figures.grants;
        summary.answers_lost += figures.unacknowledged;
        summary.payouts += figures.payouts;
        summary.paid_by_mock += figures.paid_by_mock;
        summary.succeeded += figures.succeeded;
        summary.failed += figures.failed;
    }
    verify::whole_ledger(checks, &name, outage.pool(), &ledger).await?;
    println!("  calls to WeChat Pay so far: {calls}");
    Ok(summary)
}
