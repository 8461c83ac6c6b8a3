//! What a scenario measured, printed as it finishes and again as one table at the end, in a
//! shape that pastes into BENCHMARKS.md.

use crate::fire::Figures;

pub struct Row {
    pub name: String,
    pub fig: Figures,
    /// Throughput over the ceiling's; `None` for the ceiling itself.
    pub of_ceiling: Option<f64>,
    /// A fixed-rate run: its throughput is what was offered.
    pub fixed_rate: Option<f64>,
    /// Each instance's peak resident set, MiB.
    pub rss_mib: Vec<f64>,
    pub cpu_server_s: f64,
    pub cpu_client_s: f64,
    /// PostgreSQL's processes (0 on SQLite, which runs inside the server).
    pub cpu_db_s: f64,
    /// The rest of the machine's busy CPU time: the kernel, and any other process running.
    pub cpu_other_s: f64,
    /// Answers by kind: `201`, `409 sold_out`, `! 500 internal` (unexpected ones marked).
    pub answers: Vec<String>,
    /// Scenario-specific figures (durable grants per second, reply texts, per-request-kind lines).
    pub extra: Vec<String>,
    pub unexpected: u64,
}

pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn rss(row: &Row) -> String {
    row.rss_mib.iter().map(|m| format!("{m:.0}")).collect::<Vec<_>>().join(" + ")
}

impl Row {
    pub fn print(&self) {
        let f = &self.fig;
        let ceiling = match (self.of_ceiling, self.fixed_rate) {
            (_, Some(rate)) => format!("offered {rate:.0}/s"),
            (Some(c), None) => format!("{:.0}% of ceiling", c * 100.0),
            (None, None) => "the ceiling".to_owned(),
        };
        println!(
            "  {} requests in {:.2} s = {:.0}/s ({ceiling}); latency p50 {} ms, p99 {} ms, p99.9 {} ms",
            f.requests,
            f.seconds,
            f.per_sec,
            ms(f.p50_ms),
            ms(f.p99_ms),
            ms(f.p999_ms)
        );
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "  server peak RSS {} MiB; CPU during the run: server {:.2} s, client {:.2} s, PostgreSQL {:.2} s, \
             rest of the machine (kernel, other processes) {:.2} s, of {:.2} s × {cores} cores",
            rss(self),
            self.cpu_server_s,
            self.cpu_client_s,
            self.cpu_db_s,
            self.cpu_other_s,
            f.seconds
        );
        println!("  answers: {}", self.answers.join(", "));
        for line in &self.extra {
            println!("  {line}");
        }
    }
}

pub fn table(rows: &[Row]) {
    println!(
        "| scenario | requests | seconds | req/s | p50 ms | p99 ms | p99.9 ms | of ceiling | peak RSS MiB | CPU s server / client / PostgreSQL / rest | unexpected answers |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let f = &r.fig;
        let ceiling = match (r.of_ceiling, r.fixed_rate) {
            (_, Some(rate)) => format!("fixed {rate:.0}/s"),
            (Some(c), None) => format!("{:.0}%", c * 100.0),
            (None, None) => "100%".to_owned(),
        };
        println!(
            "| {} | {} | {:.2} | {:.0} | {} | {} | {} | {ceiling} | {} | {:.1} / {:.1} / {:.1} / {:.1} | {} |",
            r.name,
            f.requests,
            f.seconds,
            f.per_sec,
            ms(f.p50_ms),
            ms(f.p99_ms),
            ms(f.p999_ms),
            rss(r),
            r.cpu_server_s,
            r.cpu_client_s,
            r.cpu_db_s,
            r.cpu_other_s,
            r.unexpected
        );
    }
}
