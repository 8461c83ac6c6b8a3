//! Firing prepared requests at the server over a fixed pool of keep-alive connections, one worker
//! task per connection, and recording every request's latency and answer.
//!
//! Closed loop (the default): each worker sends its next request as soon as the previous answer
//! is in, so the pool's size is the concurrency. Fixed rate: request `i` is due at `i / rate`
//! seconds after the start and its latency is counted from when it was due, not from when a
//! connection became free, so a server that falls behind shows it in the latency instead of
//! slowing the client down (no coordinated omission).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::{Conn, Failure, Wire};

/// One prepared request; `label` tells the kinds of request of a blend apart.
pub struct Job {
    pub wire: Wire,
    pub label: u8,
}

pub struct Plan {
    /// Workers connect to these in turn (several instances behind an imaginary balancer).
    pub targets: Vec<SocketAddr>,
    pub connections: usize,
    pub jobs: Arc<Vec<Job>>,
    /// Open loop at this many requests per second; `None`: closed loop.
    pub rate: Option<f64>,
    /// Stop starting requests after this long.
    pub duration: Option<Duration>,
    /// Keep the answers' bodies (to check push replies after the clock has stopped).
    pub keep_bodies: bool,
    pub timeout: Duration,
}

/// One request's record. `status` 0: no answer.
#[derive(Clone, Copy)]
pub struct Sample {
    pub job: u32,
    pub latency_us: u32,
    /// When it was written to the connection, from the start (later than due when every
    /// connection was busy).
    pub sent_us: u32,
    /// When the answer arrived, from the start.
    pub end_us: u32,
    pub status: u16,
    pub label: u8,
}

/// How many answers of one kind (label, status, error code), with one body to show.
#[derive(Default)]
pub struct KindCount {
    pub count: u64,
    pub sample_body: Option<String>,
}

pub type KindKey = (u8, u16, String);

pub struct Run {
    pub samples: Vec<Sample>,
    pub kinds: HashMap<KindKey, KindCount>,
    pub bodies: Vec<(u32, Vec<u8>)>,
    pub elapsed: Duration,
    /// Prepared requests never sent (the duration ran out first).
    pub unsent: usize,
    /// Connections opened beyond the pool's own (the server closed some).
    pub reconnects: u64,
}

struct WorkerOut {
    samples: Vec<Sample>,
    kinds: HashMap<KindKey, KindCount>,
    bodies: Vec<(u32, Vec<u8>)>,
    connects: u64,
}

pub async fn fire(plan: Plan) -> anyhow::Result<Run> {
    // Open every connection before the clock starts.
    let mut conns = Vec::with_capacity(plan.connections);
    for i in 0..plan.connections {
        let mut conn = Conn::new(plan.targets[i % plan.targets.len()]);
        conn.connect().await.map_err(|f| anyhow::anyhow!("opening connection {i}: {}", f.as_str()))?;
        conns.push(conn);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for conn in conns {
        let (jobs, next) = (plan.jobs.clone(), next.clone());
        let (rate, duration, keep_bodies, timeout) = (plan.rate, plan.duration, plan.keep_bodies, plan.timeout);
        let expected = plan.jobs.len() / plan.connections.max(1) + 16;
        workers.spawn(async move {
            let mut out = WorkerOut {
                samples: Vec::with_capacity(expected),
                kinds: HashMap::new(),
                bodies: Vec::new(),
                connects: 0,
            };
            let mut conn = conn;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let due = match rate {
                    Some(r) => start + Duration::from_secs_f64(i as f64 / r),
                    None => Instant::now(),
                };
                if duration.is_some_and(|d| due.duration_since(start) >= d) {
                    break;
                }
                if rate.is_some() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                let answer = match tokio::time::timeout(timeout, conn.send(&job.wire)).await {
                    Ok(answer) => answer,
                    Err(_) => {
                        conn.reset();
                        Err(Failure::Timeout)
                    }
                };
                let end = Instant::now();
                let status = answer.as_ref().map_or(0, |a| a.status);
                out.samples.push(Sample {
                    job: i as u32,
                    latency_us: end.duration_since(due).as_micros().min(u32::MAX as u128) as u32,
                    sent_us: sent.duration_since(start).as_micros().min(u32::MAX as u128) as u32,
                    end_us: end.duration_since(start).as_micros().min(u32::MAX as u128) as u32,
                    status,
                    label: job.label,
                });
                let (code, body) = match &answer {
                    Ok(a) if a.status >= 400 => (a.error_code().unwrap_or("").to_owned(), Some(&a.body)),
                    Ok(a) => (String::new(), Some(&a.body)),
                    Err(f) => (f.as_str().to_owned(), None),
                };
                let kind = out.kinds.entry((job.label, status, code)).or_default();
                kind.count += 1;
                if kind.sample_body.is_none() {
                    kind.sample_body = body.map(|b| String::from_utf8_lossy(&b[..b.len().min(400)]).into_owned());
                }
                if keep_bodies {
                    if let Ok(a) = answer {
                        out.bodies.push((i as u32, a.body));
                    }
                }
            }
            out.connects = conn.connects;
            out
        });
    }
    let mut run = Run {
        samples: Vec::with_capacity(plan.jobs.len()),
        kinds: HashMap::new(),
        bodies: Vec::new(),
        elapsed: Duration::ZERO,
        unsent: 0,
        reconnects: 0,
    };
    while let Some(out) = workers.join_next().await {
        let out = out?;
        run.samples.extend(out.samples);
        run.bodies.extend(out.bodies);
        run.reconnects += out.connects.saturating_sub(1);
        for (key, k) in out.kinds {
            let merged = run.kinds.entry(key).or_default();
            merged.count += k.count;
            if merged.sample_body.is_none() {
                merged.sample_body = k.sample_body;
            }
        }
    }
    run.elapsed = start.elapsed();
    run.unsent = plan.jobs.len() - run.samples.len();
    Ok(run)
}

/// Throughput and latency of a set of samples.
#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    pub requests: usize,
    pub seconds: f64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl Figures {
    pub fn of(samples: impl Iterator<Item = Sample>, seconds: f64) -> Figures {
        let mut lat: Vec<u32> = samples.map(|s| s.latency_us).collect();
        lat.sort_unstable();
        let at = |q: f64| -> f64 {
            if lat.is_empty() {
                return 0.0;
            }
            let rank = ((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len());
            lat[rank - 1] as f64 / 1000.0
        };
        Figures {
            requests: lat.len(),
            seconds,
            per_sec: if seconds > 0.0 { lat.len() as f64 / seconds } else { 0.0 },
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
        }
    }
}
