//! Logs and metrics. Logs go to stderr through `tracing` (filter with `RUST_LOG`); metrics are
//! kept in process and rendered in Prometheus' text format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::db::PoolStats;

/// Installs the log subscriber once; later calls do nothing (tests start many apps).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(std::io::stderr).try_init();
}

/// Latency bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Default)]
struct Latency {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum_secs: f64,
}

#[derive(Default)]
struct Series {
    /// Requests by (method, route, status).
    requests: BTreeMap<(String, String, u16), u64>,
    /// Latency by (method, route).
    latency: BTreeMap<(String, String), Latency>,
}

/// Request counters and latency histograms by route. `route` is the operation id for API
/// operations and a fixed name for everything else, so label cardinality stays bounded.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<Series>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let mut s = self.series.lock().unwrap_or_else(|p| p.into_inner());
        *s.requests.entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
        let lat = s.latency.entry((method.to_owned(), route.to_owned())).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                lat.counts[i] += 1;
            }
        }
        lat.count += 1;
        lat.sum_secs += secs;
    }

    /// The Prometheus text exposition of everything, with the database pools' occupancy.
    pub fn render(&self, pools: &[PoolStats]) -> String {
        let s = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP linli_http_requests_total HTTP requests served, by route and status.\n");
        out.push_str("# TYPE linli_http_requests_total counter\n");
        for ((method, route, status), n) in &s.requests {
            let _ = writeln!(
                out,
                "linli_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP linli_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE linli_http_request_duration_seconds histogram\n");
        for ((method, route), lat) in &s.latency {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (bound, n) in BUCKETS.iter().zip(lat.counts) {
                let _ = writeln!(out, "linli_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "linli_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", lat.count);
            let _ = writeln!(out, "linli_http_request_duration_seconds_sum{{{labels}}} {}", lat.sum_secs);
            let _ = writeln!(out, "linli_http_request_duration_seconds_count{{{labels}}} {}", lat.count);
        }
        out.push_str("# HELP linli_db_pool_connections Database pool connections by state.\n");
        out.push_str("# TYPE linli_db_pool_connections gauge\n");
        for p in pools {
            let in_use = p.size.saturating_sub(p.idle);
            let _ = writeln!(out, "linli_db_pool_connections{{pool=\"{}\",state=\"in_use\"}} {in_use}", p.name);
            let _ = writeln!(out, "linli_db_pool_connections{{pool=\"{}\",state=\"idle\"}} {}", p.name, p.idle);
            let _ = writeln!(out, "linli_db_pool_connections{{pool=\"{}\",state=\"max\"}} {}", p.name, p.max);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_pools() {
        let m = Metrics::default();
        m.observe("GET", "list_orgs", 200, Duration::from_millis(3));
        m.observe("GET", "list_orgs", 200, Duration::from_millis(30));
        m.observe("GET", "list_orgs", 404, Duration::from_millis(1));
        let text = m.render(&[PoolStats { name: "main", size: 3, idle: 1, max: 10 }]);
        assert!(text.contains("linli_http_requests_total{method=\"GET\",route=\"list_orgs\",status=\"200\"} 2"));
        assert!(text.contains("linli_http_requests_total{method=\"GET\",route=\"list_orgs\",status=\"404\"} 1"));
        assert!(text.contains("le=\"0.005\"} 2"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 3"));
        assert!(text.contains("linli_db_pool_connections{pool=\"main\",state=\"in_use\"} 2"));
    }
}
