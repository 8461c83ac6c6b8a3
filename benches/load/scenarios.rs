//! The scenarios: each starts the server(s) afresh (so the peak RSS is the scenario's own),
//! prepares its campaign or coupon, builds every request before the clock starts, fires them,
//! and checks the invariants in the database.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sqlx::AnyPool;
use wechat_mock::callback::reply::{decode_reply, Reply, ReplyKeys};
use wechat_mock::{OaPusher, Push, PushMode};

use crate::checks::{self, Checks, Expect};
use crate::fire::{fire, Figures, Job, Plan, Run, Sample};
use crate::http::{request, Wire};
use crate::report::{ms, Row};
use crate::server::{background_cores, cpu_seconds, machine_busy_seconds, postgres_cpu_seconds, Launch, Server};
use crate::world::{Resident, World};

/// Every scenario, in the order a full run takes them.
pub const ALL: &[&str] =
    &["checkin", "checkin-fixed-rate", "hot-red-packet", "hot-red-packet-cash", "hot-coupon", "mixed-day"];

pub struct Sizes {
    pub residents: usize,
    pub shares: i64,
    pub stock: i64,
    pub ceiling_requests: usize,
    pub checkin_rate: f64,
    pub mixed_duration: Duration,
    pub connections: usize,
    /// Before each scenario, wait up to this long for other processes to leave the CPUs alone.
    pub wait_quiet: Duration,
}

pub struct Bench {
    pub sizes: Sizes,
    pub launch: Launch,
    pub ports: Vec<u16>,
    pub servers: Vec<Server>,
    pub world: World,
    pub pool: AnyPool,
    /// Followers logged in to the mini-program.
    pub cohort: Vec<Resident>,
    /// Followers only, who have not checked in: the fixed-rate check-ins.
    pub spare: Vec<Resident>,
    pub ceiling: Option<f64>,
    pub rows: Vec<Row>,
    pub checks: Checks,
    /// PostgreSQL runs on this machine: its processes' CPU time is counted apart.
    pub postgres: bool,
}

/// What one timed run is.
struct Measure {
    name: String,
    jobs: Vec<Job>,
    rate: Option<f64>,
    duration: Option<Duration>,
    keep_bodies: bool,
    /// Answers that are outcomes of the scenario rather than errors.
    expected: fn(u16, &str) -> bool,
    labels: &'static [&'static str],
}

fn ok_only(status: u16, _: &str) -> bool {
    status == 200
}

fn granted_or_sold_out(status: u16, code: &str) -> bool {
    status == 201 || (status == 409 && code == "sold_out")
}

fn mixed_outcome(status: u16, code: &str) -> bool {
    matches!(status, 200 | 201) || (status == 409 && ["sold_out", "already_grabbed", "limit_reached"].contains(&code))
}

/// When the last of the 201 answers arrived, from the start: shares (or stock) ran out then.
fn last_grant_secs(run: &Run) -> Option<(usize, f64)> {
    let granted: Vec<u32> = run.samples.iter().filter(|s| s.status == 201).map(|s| s.end_us).collect();
    let last = granted.iter().max()?;
    Some((granted.len(), *last as f64 / 1e6))
}

impl Bench {
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }

    fn targets(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.addr).collect()
    }

    /// Stops every instance and starts them again on the same database and ports.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        for mut server in std::mem::take(&mut self.servers) {
            let mut logged = Vec::new();
            log_lines(&server.name.clone(), &server.new_log(), &mut logged);
            for line in logged {
                println!("  {line}");
            }
            server.stop().await?;
        }
        for (i, port) in self.ports.clone().into_iter().enumerate() {
            self.servers.push(self.launch.start(port, &format!("linli-{}", i + 1)).await?);
        }
        Ok(())
    }

    /// Other processes (a build, another test suite) take CPU from both sides and skew every
    /// figure: wait a while for them to finish, and say so if they do not.
    async fn wait_until_quiet(&mut self) {
        let started = Instant::now();
        loop {
            let busy = tokio::task::spawn_blocking(background_cores).await.unwrap_or(0.0);
            if busy < 0.2 {
                return;
            }
            if started.elapsed() >= self.sizes.wait_quiet {
                println!(
                    "  ! other processes keep {busy:.2} cores busy: this scenario's figures are depressed by them"
                );
                return;
            }
        }
    }

    fn push_job(&self, push: &Push, label: u8) -> Job {
        let url = push.url();
        let path = url.find("/wechat/oa/callback").map_or(url, |at| &url[at..]);
        Job {
            wire: request("POST", &self.host(), path, &[("Content-Type", "text/xml")], push.body().as_bytes()),
            label,
        }
    }

    fn mp_job(&self, method: &str, path: &str, token: &str, extra: Option<(&str, &str)>, label: u8) -> Job {
        let bearer = format!("Bearer {token}");
        let mut headers = vec![("Authorization", bearer.as_str())];
        headers.extend(extra);
        Job { wire: request(method, &self.host(), path, &headers, b""), label }
    }

    async fn measure(&mut self, m: Measure) -> anyhow::Result<(Run, Row)> {
        println!("\n== {} ({} requests prepared, {} connections)", m.name, m.jobs.len(), self.sizes.connections);
        let cpu_server: Vec<f64> = self.servers.iter().map(Server::cpu_seconds).collect();
        let cpu_client = cpu_seconds("/proc/self/stat");
        let cpu_machine = machine_busy_seconds();
        let db_cpu = || if self.postgres { postgres_cpu_seconds() } else { 0.0 };
        let cpu_db = db_cpu();
        let run = fire(Plan {
            targets: self.targets(),
            connections: self.sizes.connections,
            jobs: Arc::new(m.jobs),
            rate: m.rate,
            duration: m.duration,
            keep_bodies: m.keep_bodies,
            timeout: Duration::from_secs(30),
        })
        .await?;
        let cpu_server_s: f64 = self.servers.iter().zip(&cpu_server).map(|(s, before)| s.cpu_seconds() - before).sum();
        let cpu_client_s = cpu_seconds("/proc/self/stat") - cpu_client;
        let cpu_db_s = (db_cpu() - cpu_db).max(0.0);
        let cpu_other_s = (machine_busy_seconds() - cpu_machine - cpu_server_s - cpu_client_s - cpu_db_s).max(0.0);
        let rss_mib: Vec<f64> = self.servers.iter().map(|s| s.peak_rss_mib().unwrap_or(0.0)).collect();

        let fig = Figures::of(run.samples.iter().copied(), run.elapsed.as_secs_f64());
        let mut kinds: Vec<_> = run.kinds.iter().collect();
        kinds.sort_by(|a, b| a.0 .0.cmp(&b.0 .0).then(b.1.count.cmp(&a.1.count)));
        let mut answers = Vec::new();
        let mut extra = Vec::new();
        let mut unexpected = 0;
        for ((label, status, code), k) in kinds {
            let prefix = if m.labels.len() > 1 { format!("{} ", m.labels[*label as usize]) } else { String::new() };
            let what = if *status == 0 { format!("no answer ({code})") } else { format!("{status} {code}") };
            let ok = *status != 0 && (m.expected)(*status, code);
            if !ok {
                unexpected += k.count;
                extra.push(format!(
                    "! unexpected {prefix}{}: ×{}, e.g. {}",
                    what.trim(),
                    k.count,
                    k.sample_body.as_deref().unwrap_or("-")
                ));
            }
            answers.push(format!("{}{prefix}{} ×{}", if ok { "" } else { "! " }, what.trim(), k.count));
        }
        if run.unsent > 0 {
            extra.push(format!("{} prepared requests were not sent: the duration ran out first", run.unsent));
        }
        if run.reconnects > 0 {
            extra.push(format!(
                "! {} connections had to be opened again (the server closed or broke them)",
                run.reconnects
            ));
        }
        if m.labels.len() > 1 {
            for (i, label) in m.labels.iter().enumerate() {
                let f = Figures::of(
                    run.samples.iter().copied().filter(|s| s.label as usize == i),
                    run.elapsed.as_secs_f64(),
                );
                extra.push(format!(
                    "{label}: {} requests, {:.0}/s, p50 {} ms, p99 {} ms, p99.9 {} ms",
                    f.requests,
                    f.per_sec,
                    ms(f.p50_ms),
                    ms(f.p99_ms),
                    ms(f.p999_ms)
                ));
            }
        }
        let mut logged = Vec::new();
        for s in &mut self.servers {
            let name = s.name.clone();
            log_lines(&name, &s.new_log(), &mut logged);
        }
        extra.extend(logged);
        let row = Row {
            name: m.name,
            fig,
            of_ceiling: self.ceiling.map(|c| fig.per_sec / c),
            fixed_rate: m.rate,
            rss_mib,
            cpu_server_s,
            cpu_client_s,
            cpu_db_s,
            cpu_other_s,
            answers,
            extra,
            unexpected,
        };
        row.print();
        Ok((run, row))
    }

    fn finish(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub async fn run(&mut self, name: &str) -> anyhow::Result<()> {
        self.restart().await?;
        self.wait_until_quiet().await;
        match name {
            "ceiling" => self.ceiling().await,
            "checkin" => self.checkin(false).await,
            "checkin-fixed-rate" => self.checkin(true).await,
            "hot-red-packet" => self.hot_red_packet("balance").await,
            "hot-red-packet-cash" => self.hot_red_packet("cash_red_packet").await,
            "hot-coupon" => self.hot_coupon().await,
            "mixed-day" => self.mixed_day().await,
            other => anyhow::bail!("unknown scenario {other}; one of {}", ALL.join(", ")),
        }
    }

    /// The cheapest endpoint, same client, same connections: what the server and client can
    /// do at all on this machine.
    async fn ceiling(&mut self) -> anyhow::Result<()> {
        let wire: Wire = request("GET", &self.host(), "/healthz", &[], b"");
        let jobs = (0..self.sizes.ceiling_requests).map(|_| Job { wire: wire.clone(), label: 0 }).collect();
        let (_, row) = self
            .measure(Measure {
                name: "ceiling: GET /healthz".into(),
                jobs,
                rate: None,
                duration: None,
                keep_bodies: false,
                expected: ok_only,
                labels: &["healthz"],
            })
            .await?;
        self.ceiling = Some(row.fig.per_sec);
        self.finish(row);
        Ok(())
    }

    /// Each resident sends 签到 once, encrypted (safe mode): signature, decryption, dedupe,
    /// check-in and ledger write, encrypted reply.
    async fn checkin(&mut self, fixed_rate: bool) -> anyhow::Result<()> {
        let scenario = if fixed_rate { "checkin-fixed-rate" } else { "checkin" };
        let who = if fixed_rate { &self.spare } else { &self.cohort };
        let pusher = self.world.pusher(PushMode::Safe)?;
        let before = checks::checkin_counts(&self.pool).await?;
        let jobs: Vec<Job> = who.iter().map(|r| self.push_job(&pusher.text(&r.user.oa_openid, "签到"), 0)).collect();
        let n = jobs.len() as i64;
        let rate = fixed_rate.then_some(self.sizes.checkin_rate);
        let name = match rate {
            Some(r) => format!("check-in pushes at a fixed {r:.0}/s"),
            None => "check-in pushes (encrypted, closed loop)".to_owned(),
        };
        let (run, mut row) = self
            .measure(Measure {
                name,
                jobs,
                rate,
                duration: None,
                keep_bodies: true,
                expected: ok_only,
                labels: &["push"],
            })
            .await?;
        if rate.is_some() {
            let served = Figures::of(
                run.samples.iter().map(|s| Sample { latency_us: s.end_us.saturating_sub(s.sent_us), ..*s }),
                run.elapsed.as_secs_f64(),
            );
            let line = format!(
                "latency from the moment each push was written (leaving out its wait for a free connection): \
                 p50 {} ms, p99 {} ms, p99.9 {} ms",
                ms(served.p50_ms),
                ms(served.p99_ms),
                ms(served.p999_ms)
            );
            println!("  {line}");
            row.extra.push(line);
        }
        let replies = read_replies(&pusher, &run);
        row.extra.push(format!(
            "replies: {} encrypted and verified as WeChat would, {} 签到成功, {} already checked in, {} other{}",
            replies.encrypted,
            replies.checked_in,
            replies.already,
            replies.other,
            replies.sample_other.as_deref().map(|s| format!(" (e.g. {s})")).unwrap_or_default()
        ));
        println!("  {}", row.extra.last().map(String::as_str).unwrap_or(""));
        println!("  invariants:");
        let c = &mut self.checks;
        c.equal(scenario, "replies WeChat accepts (encrypted, signed)", replies.encrypted, n);
        c.equal(scenario, "replies saying 签到成功", replies.checked_in, n);
        checks::checkins(c, scenario, &self.pool, &before, Some(n), n).await?;
        checks::ledgers(c, scenario, &self.pool).await?;
        self.finish(row);
        Ok(())
    }

    /// One hot red packet: every resident grabs at once for a tenth as many shares.
    async fn hot_red_packet(&mut self, channel: &str) -> anyhow::Result<()> {
        let scenario = if channel == "balance" { "hot-red-packet" } else { "hot-red-packet-cash" };
        let shares = self.sizes.shares;
        let total = shares * if channel == "balance" { 88 } else { 150 };
        let payments_before = self.world.mock.payments(&self.world.http).await?.len();
        let id = self.world.red_packet(channel, total, shares).await?;
        let path = format!("/mp/v1/red-packets/{id}/grabs");
        let mut order: Vec<&Resident> = self.cohort.iter().collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
        let jobs: Vec<Job> = order.iter().map(|r| self.mp_job("POST", &path, &r.token, None, 0)).collect();
        let demand = jobs.len() as i64;
        let name = if channel == "balance" {
            format!("hot red packet, balance: {demand} residents, {shares} shares")
        } else {
            format!("hot red packet, cash_red_packet: {demand} residents, {shares} shares")
        };
        let (run, mut row) = self
            .measure(Measure {
                name,
                jobs,
                rate: None,
                duration: None,
                keep_bodies: false,
                expected: granted_or_sold_out,
                labels: &["grab"],
            })
            .await?;
        let answered_201 = run.samples.iter().filter(|s| s.status == 201).count() as i64;
        if let Some((n, secs)) = last_grant_secs(&run) {
            let line = format!(
                "durable grants while shares lasted: {n} in {} ms = {:.0} grants/s; grab attempts {:.0}/s",
                ms(secs * 1000.0),
                n as f64 / secs,
                row.fig.per_sec
            );
            println!("  {line}");
            row.extra.push(line);
        }
        let sold_out = Figures::of(run.samples.iter().copied().filter(|s| s.status == 409), 1.0);
        if sold_out.requests > 0 {
            let line = format!(
                "sold-out answers: p50 {} ms, p99 {} ms; grants: {}",
                ms(sold_out.p50_ms),
                ms(sold_out.p99_ms),
                {
                    let g = Figures::of(run.samples.iter().copied().filter(|s| s.status == 201), 1.0);
                    format!("p50 {} ms, p99 {} ms", ms(g.p50_ms), ms(g.p99_ms))
                }
            );
            println!("  {line}");
            row.extra.push(line);
        }
        if channel != "balance" {
            let line = self.drain_payouts(id, shares, total, payments_before).await?;
            println!("  {line}");
            row.extra.push(line);
            // The dispatcher's work counts towards the peak.
            row.rss_mib = self.servers.iter().map(|s| s.peak_rss_mib().unwrap_or(0.0)).collect();
        }
        println!("  invariants:");
        let expect = Expect { id, supply: shares, demand, answered_201 };
        checks::red_packet(&mut self.checks, scenario, &self.pool, &expect, total).await?;
        if channel == "balance" {
            let credited = checks::scalar(
                &self.pool,
                "SELECT CAST(COALESCE(SUM(l.amount_fen), 0) AS BIGINT) FROM wallet_ledger l \
                 JOIN rp_grabs g ON l.reference = 'rp:' || CAST(g.campaign_id AS TEXT) || ':' || CAST(g.resident_id AS TEXT) \
                 WHERE g.campaign_id = $1 AND l.source = 'red_packet'",
                &[id],
            )
            .await?;
            self.checks.equal(scenario, "wallet credits for the grabs (fen) = total", credited, total);
        }
        checks::ledgers(&mut self.checks, scenario, &self.pool).await?;
        self.finish(row);
        Ok(())
    }

    /// Waits until the dispatcher has sent every share to WeChat Pay, and checks WeChat paid
    /// each exactly once.
    async fn drain_payouts(&mut self, id: i64, shares: i64, total: i64, before: usize) -> anyhow::Result<String> {
        let started = Instant::now();
        let open_sql = "SELECT COUNT(*) FROM payouts p JOIN rp_grabs g ON g.payout_id = p.id \
                        WHERE g.campaign_id = $1 AND p.state IN ('pending', 'unknown')";
        let deadline = started + Duration::from_secs(300);
        while checks::scalar(&self.pool, open_sql, &[id]).await? > 0 {
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let drained = started.elapsed().as_secs_f64();
        let scenario = "hot-red-packet-cash";
        println!("  payouts:");
        let payouts = checks::scalar(
            &self.pool,
            "SELECT COUNT(*) FROM payouts p JOIN rp_grabs g ON g.payout_id = p.id WHERE g.campaign_id = $1",
            &[id],
        )
        .await?;
        self.checks.equal(scenario, "payout rows = grants", payouts, shares);
        let open = checks::scalar(&self.pool, open_sql, &[id]).await?;
        self.checks.equal(scenario, "payouts not yet sent after draining", open, 0);
        let paid: Vec<_> = self.world.mock.payments(&self.world.http).await?.into_iter().skip(before).collect();
        let openids: HashSet<&str> = paid.iter().map(|p| p.openid.as_str()).collect();
        self.checks.equal(scenario, "red packets WeChat Pay sent", paid.len() as i64, shares);
        self.checks.equal(scenario, "residents paid (each once)", openids.len() as i64, shares);
        self.checks.equal(
            scenario,
            "WeChat Pay's amounts sum to the total (fen)",
            paid.iter().map(|p| p.amount_fen).sum(),
            total,
        );
        if drained < 0.1 {
            return Ok(format!(
                "payouts: all {} sent to wechat-mock's WeChat Pay by the time the grabs ended (the dispatcher \
                 kept up; LINLI_PAY_RATE_PER_SEC=1000)",
                paid.len()
            ));
        }
        Ok(format!(
            "payouts: {} sent to wechat-mock's WeChat Pay, the last {drained:.1} s after the grabs ended \
             (LINLI_PAY_RATE_PER_SEC=1000)",
            paid.len()
        ))
    }

    /// One hot coupon: every resident claims at once (with an Idempotency-Key) for a tenth as
    /// much stock.
    async fn hot_coupon(&mut self) -> anyhow::Result<()> {
        let scenario = "hot-coupon";
        let stock = self.sizes.stock;
        let id = self.world.coupon_template(stock, 1).await?;
        let path = format!("/mp/v1/coupons/{id}/claims");
        let mut order: Vec<(usize, &Resident)> = self.cohort.iter().enumerate().collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(11));
        let jobs: Vec<Job> = order
            .iter()
            .map(|(i, r)| {
                let key = format!("bench-claim-{id}-{i}");
                self.mp_job("POST", &path, &r.token, Some(("Idempotency-Key", &key)), 0)
            })
            .collect();
        let demand = jobs.len() as i64;
        let (run, mut row) = self
            .measure(Measure {
                name: format!("hot coupon: {demand} residents, stock {stock}"),
                jobs,
                rate: None,
                duration: None,
                keep_bodies: false,
                expected: granted_or_sold_out,
                labels: &["claim"],
            })
            .await?;
        let answered_201 = run.samples.iter().filter(|s| s.status == 201).count() as i64;
        if let Some((n, secs)) = last_grant_secs(&run) {
            let line = format!(
                "claims while stock lasted: {n} in {} ms = {:.0} claims/s; claim attempts {:.0}/s",
                ms(secs * 1000.0),
                n as f64 / secs,
                row.fig.per_sec
            );
            println!("  {line}");
            row.extra.push(line);
        }
        println!("  invariants:");
        let expect = Expect { id, supply: stock, demand, answered_201 };
        checks::coupon(&mut self.checks, scenario, &self.pool, &expect, 1).await?;
        checks::ledgers(&mut self.checks, scenario, &self.pool).await?;
        self.finish(row);
        Ok(())
    }

    /// A day's blend from the logged-in residents, closed loop for a fixed duration: profile
    /// reads, coupon lists, check-in pushes, coupon claims, red-packet grabs.
    async fn mixed_day(&mut self) -> anyhow::Result<()> {
        const LABELS: &[&str] = &["GET /mp/v1/me", "GET /mp/v1/coupons", "check-in push", "coupon claim", "grab"];
        const WEIGHTS: [u32; 5] = [35, 20, 15, 15, 15];
        let scenario = "mixed-day";
        let n = self.cohort.len();
        let shares = (n as i64 / 4).max(1);
        let total = shares * 88;
        let rp = self.world.red_packet("balance", total, shares).await?;
        let limit = 100;
        let template = self.world.coupon_template(10_000_000, limit).await?;
        // Enough requests for the duration at 30% of the ceiling, several times what a blend reaches here.
        let secs = self.sizes.mixed_duration.as_secs_f64();
        let count = ((self.ceiling.unwrap_or(20_000.0) * 0.3 * secs) as usize).max(1000);
        let pusher = self.world.pusher(PushMode::Safe)?;
        let (me, list): (Vec<Wire>, Vec<Wire>) = self
            .cohort
            .iter()
            .map(|r| {
                (
                    self.mp_job("GET", "/mp/v1/me", &r.token, None, 0).wire,
                    self.mp_job("GET", "/mp/v1/coupons", &r.token, None, 1).wire,
                )
            })
            .unzip();
        let grab_path = format!("/mp/v1/red-packets/{rp}/grabs");
        let grabs: Vec<Wire> =
            self.cohort.iter().map(|r| self.mp_job("POST", &grab_path, &r.token, None, 4).wire).collect();
        let claim_path = format!("/mp/v1/coupons/{template}/claims");
        let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
        let weight_total: u32 = WEIGHTS.iter().sum();
        let mut jobs = Vec::with_capacity(count);
        let mut who = Vec::with_capacity(count);
        let build_started = Instant::now();
        for i in 0..count {
            let r = rng.gen_range(0..n);
            let mut pick = rng.gen_range(0..weight_total);
            let label = WEIGHTS
                .iter()
                .position(|w| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(0);
            let resident = &self.cohort[r];
            let job = match label {
                0 => Job { wire: me[r].clone(), label: 0 },
                1 => Job { wire: list[r].clone(), label: 1 },
                2 => self.push_job(&pusher.text(&resident.user.oa_openid, "签到"), 2),
                3 => {
                    let key = format!("bench-mix-{template}-{i}");
                    self.mp_job("POST", &claim_path, &resident.token, Some(("Idempotency-Key", &key)), 3)
                }
                _ => Job { wire: grabs[r].clone(), label: 4 },
            };
            jobs.push(job);
            who.push(r);
        }
        println!("  {count} mixed requests prepared in {:.1} s", build_started.elapsed().as_secs_f64());
        let before = checks::checkin_counts(&self.pool).await?;
        let (run, row) = self
            .measure(Measure {
                name: format!("mixed day: {n} residents, {:.0} s", secs),
                jobs,
                rate: None,
                duration: Some(self.sizes.mixed_duration),
                keep_bodies: false,
                expected: mixed_outcome,
                labels: LABELS,
            })
            .await?;
        println!("  invariants:");
        let labelled = |label: u8| run.samples.iter().filter(move |s| s.label == label);
        let pushes_sent = labelled(2).filter(|s| s.status != 0).count() as i64;
        let grab_demand = labelled(4).map(|s| who[s.job as usize]).collect::<HashSet<_>>().len() as i64;
        let grabs_201 = labelled(4).filter(|s| s.status == 201).count() as i64;
        let claims_201 = labelled(3).filter(|s| s.status == 201).count() as i64;
        let claim_demand = labelled(3).count() as i64;
        let c = &mut self.checks;
        checks::checkins(c, scenario, &self.pool, &before, None, pushes_sent).await?;
        let expect = Expect { id: rp, supply: shares, demand: grab_demand, answered_201: grabs_201 };
        checks::red_packet(c, scenario, &self.pool, &expect, total).await?;
        let expect = Expect { id: template, supply: 10_000_000, demand: claim_demand, answered_201: claims_201 };
        checks::coupon(c, scenario, &self.pool, &expect, limit).await?;
        checks::ledgers(c, scenario, &self.pool).await?;
        self.finish(row);
        Ok(())
    }
}

#[derive(Default)]
struct Replies {
    encrypted: i64,
    checked_in: i64,
    already: i64,
    other: i64,
    sample_other: Option<String>,
}

/// Reads every push reply as WeChat would (verify, decrypt), after the clock has stopped.
fn read_replies(pusher: &OaPusher, run: &Run) -> Replies {
    let config = pusher.config();
    let keys = ReplyKeys { token: &config.token, key: pusher.aes_key(), appid: &config.appid };
    let mut out = Replies::default();
    for (_, body) in &run.bodies {
        let text = String::from_utf8_lossy(body);
        match decode_reply(&text, PushMode::Safe, &keys) {
            Ok((Reply::Text(t), encrypted)) => {
                out.encrypted += i64::from(encrypted);
                if t.content.contains("签到成功") {
                    out.checked_in += 1;
                } else if t.content.contains("已经签到") {
                    out.already += 1;
                } else {
                    out.other += 1;
                    out.sample_other.get_or_insert(t.content.clone());
                }
            }
            Ok((other, encrypted)) => {
                out.encrypted += i64::from(encrypted);
                out.other += 1;
                out.sample_other.get_or_insert(format!("{other:?}"));
            }
            Err(e) => {
                out.other += 1;
                out.sample_other.get_or_insert(format!("refused by WeChat: {e:?}"));
            }
        }
    }
    out
}

/// Warnings and errors the server logged, a few of each kind.
fn log_lines(name: &str, log: &str, out: &mut Vec<String>) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")) {
        // Group by the message, without the timestamp.
        let key: String = line.split_whitespace().skip(1).take(6).collect::<Vec<_>>().join(" ");
        let n = seen.entry(key).or_insert(0);
        *n += 1;
        if *n <= 2 {
            let short: String = line.chars().take(400).collect();
            out.push(format!("! {name} logged: {short}"));
        }
    }
    let total: usize = seen.values().sum();
    if total > out.len() {
        out.push(format!("! {name} logged {total} warnings/errors in all"));
    }
}
