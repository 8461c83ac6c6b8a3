//! The grab burst under kills: every resident grabs every red packet of the round, over the load
//! generator's keep-alive connections, in waves. A request the server never answered (it died
//! first) goes into the next wave, sent once the restarted server is ready, as a resident's app
//! would retry; every 2xx answer is recorded, since what the server acknowledged it must keep.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Deserialize;

use crate::fire::{fire, Job, Plan};
use crate::http::request;
use crate::world::Resident;

/// A grab the server acknowledged with 201.
#[derive(Clone, Debug)]
pub struct Ack {
    pub campaign: i64,
    /// Index into the residents.
    pub resident: usize,
    pub grab_id: i64,
    pub amount_fen: i64,
    pub payout_id: Option<i64>,
}

/// The body of a 201 (`MyRedPacket`), as far as the checks need it.
#[derive(Deserialize)]
struct Granted {
    id: i64,
    red_packet_id: i64,
    amount_fen: i64,
    payout_id: Option<i64>,
}

#[derive(Default)]
pub struct Burst {
    pub acks: Vec<Ack>,
    /// (resident, campaign) pairs whose request was cut off at least once (no answer).
    pub cut: HashSet<(usize, i64)>,
    /// Final refusals by `status code`, e.g. `409 sold_out`.
    pub refusals: BTreeMap<String, usize>,
    /// `already_grabbed` answers to a pair whose earlier request was never cut off: a resident
    /// refused a share they never got an answer for.
    pub already_without_cut: usize,
    /// Pairs answered `already_grabbed` after an earlier request had been cut off.
    pub already_after_cut: HashSet<(usize, i64)>,
    /// The final 409 code of each pair refused.
    pub refused_with: std::collections::HashMap<(usize, i64), String>,
    /// 5xx answers (retried).
    pub server_errors: usize,
    /// 201 bodies that did not parse, or named another red packet.
    pub bad_bodies: usize,
    /// Answers other than 201, 409 and 5xx, by `status code`.
    pub unexpected: BTreeMap<String, usize>,
    /// Requests that got no answer because the server died while handling them (or before their
    /// connection could be used).
    pub cut_mid_request: u64,
    /// Requests that found nobody listening (the server was dead): they never reached it.
    pub refused_connect: u64,
    /// Requests sent in all, retries included.
    pub requests: usize,
    pub waves: usize,
    /// Pairs still without an answer when the deadline came.
    pub unanswered: usize,
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Waits until the server at `addr` answers `/readyz` with 200.
pub async fn wait_ready(addr: SocketAddr, deadline: Instant) -> anyhow::Result<()> {
    let wire = request("GET", &addr.to_string(), "/readyz", &[], b"");
    loop {
        let mut conn = crate::http::Conn::new(addr);
        if conn.send(&wire).await.is_ok_and(|a| a.status == 200) {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("linli at {addr} was not ready in time");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Fires every (resident, campaign) grab in a seeded order until each is answered, or until
/// `limit` has passed.
pub async fn burst(
    addr: SocketAddr,
    residents: &[Resident],
    campaigns: &[i64],
    connections: usize,
    order_seed: u64,
    limit: Duration,
) -> anyhow::Result<Burst> {
    let deadline = Instant::now() + limit;
    let host = addr.to_string();
    let mut pending: Vec<(usize, i64)> =
        (0..residents.len()).flat_map(|r| campaigns.iter().map(move |c| (r, *c))).collect();
    pending.shuffle(&mut rand::rngs::StdRng::seed_from_u64(order_seed));
    let mut out = Burst::default();
    while !pending.is_empty() && Instant::now() < deadline {
        wait_ready(addr, deadline).await?;
        let jobs: Vec<Job> = pending
            .iter()
            .map(|(r, c)| {
                let bearer = format!("Bearer {}", residents[*r].token);
                let path = format!("/mp/v1/red-packets/{c}/grabs");
                Job { wire: request("POST", &host, &path, &[("Authorization", &bearer)], b""), label: 0 }
            })
            .collect();
        let plan = Plan {
            targets: vec![addr],
            connections: connections.min(pending.len()),
            jobs: Arc::new(jobs),
            rate: None,
            duration: None,
            keep_bodies: true,
            timeout: Duration::from_secs(30),
        };
        // The server may die while the connections are being opened: try again once it is back.
        let Ok(run) = fire(plan).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        out.waves += 1;
        out.requests += run.samples.len();
        for ((_, status, code), kind) in &run.kinds {
            if *status == 0 {
                if code == crate::http::Failure::Connect.as_str() {
                    out.refused_connect += kind.count;
                } else {
                    out.cut_mid_request += kind.count;
                }
            }
        }
        let bodies: std::collections::HashMap<u32, Vec<u8>> = run.bodies.into_iter().collect();
        let mut next = Vec::new();
        for s in &run.samples {
            let pair = pending[s.job as usize];
            let body = bodies.get(&s.job).map(Vec::as_slice).unwrap_or_default();
            match s.status {
                0 => {
                    out.cut.insert(pair);
                    next.push(pair);
                }
                201 => match serde_json::from_slice::<Granted>(body) {
                    Ok(g) if g.red_packet_id == pair.1 => out.acks.push(Ack {
                        campaign: pair.1,
                        resident: pair.0,
                        grab_id: g.id,
                        amount_fen: g.amount_fen,
                        payout_id: g.payout_id,
                    }),
                    _ => out.bad_bodies += 1,
                },
                409 => {
                    let code = error_code(body);
                    if code == "already_grabbed" {
                        if out.cut.contains(&pair) {
                            out.already_after_cut.insert(pair);
                        } else {
                            out.already_without_cut += 1;
                        }
                    }
                    *out.refusals.entry(format!("409 {code}")).or_default() += 1;
                    out.refused_with.insert(pair, code);
                }
                status if status >= 500 => {
                    out.server_errors += 1;
                    next.push(pair);
                }
                status => *out.unexpected.entry(format!("{status} {}", error_code(body))).or_default() += 1,
            }
        }
        pending = next;
    }
    out.unanswered = pending.len();
    Ok(out)
}
