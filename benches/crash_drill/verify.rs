//! What must hold after a round of kills, read from linli's database and from WeChat Pay's ledger
//! (wechat-mock's, which no kill touched): every acknowledged grab kept as answered; no more
//! grants than shares; one payout per grab; WeChat paid each payout at most once, paid every payout
//! linli settled as succeeded, and everything it paid is settled in linli.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use sqlx::AnyPool;

use crate::checks::{scalar, Checks};
use crate::grabs::Burst;
use crate::world::{PaidBill, Resident};

pub struct Campaign {
    pub id: i64,
    pub channel: &'static str,
    pub shares: i64,
    pub total_fen: i64,
}

/// One campaign's figures, for the summary.
pub struct Figures {
    pub grants: i64,
    /// Grants whose 201 never reached the resident.
    pub unacknowledged: usize,
    pub payouts: i64,
    pub paid_by_mock: usize,
    pub succeeded: i64,
    pub failed: i64,
}

const OPEN: &str = "p.state NOT IN ('succeeded', 'failed')";

/// Polls until no payout of the campaigns is open, or the deadline; answers how many are open.
pub async fn wait_settled(pool: &AnyPool, campaigns: &[i64], deadline: Instant) -> anyhow::Result<i64> {
    loop {
        let mut open = 0;
        for id in campaigns {
            open += scalar(
                pool,
                &format!("SELECT COUNT(*) FROM payouts p JOIN rp_grabs g ON g.payout_id = p.id WHERE g.campaign_id = $1 AND {OPEN}"),
                &[*id],
            )
            .await?;
        }
        if open == 0 || Instant::now() > deadline {
            return Ok(open);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the server answered the grab requests, across the round's red packets.
pub fn grab_answers(checks: &mut Checks, round: &str, burst: &Burst) {
    checks.equal(round, "grab requests left without an answer", burst.unanswered as i64, 0);
    checks.equal(round, "5xx answers to grabs", burst.server_errors as i64, 0);
    checks.equal(round, "201 answers that did not describe the grab", burst.bad_bodies as i64, 0);
    checks.add(
        round,
        "answers other than 201 and 409",
        burst.unexpected.is_empty(),
        if burst.unexpected.is_empty() { "none".to_owned() } else { format!("{:?}", burst.unexpected) },
    );
    checks.equal(
        round,
        "already_grabbed to a resident whose earlier request was answered",
        burst.already_without_cut as i64,
        0,
    );
    println!("  refusals:    {:?}", burst.refusals);
}

/// linli's resident id of each simulated resident (by their mini-program openid).
pub async fn resident_ids(pool: &AnyPool, residents: &[Resident]) -> anyhow::Result<Vec<Option<i64>>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT openid, resident_id FROM resident_identities WHERE app_kind = 'mp'")
            .fetch_all(pool)
            .await?;
    let by_openid: HashMap<String, i64> = rows.into_iter().collect();
    Ok(residents.iter().map(|r| by_openid.get(&r.user.mp_openid).copied()).collect())
}

type GrabRow = (i64, i64, i64, Option<i64>);
type PayoutRow = (i64, i64, String, i64, String, Option<i64>);

/// The grabs and payouts of one red packet against what was acknowledged and what WeChat paid.
pub async fn campaign(
    checks: &mut Checks,
    round: &str,
    pool: &AnyPool,
    c: &Campaign,
    burst: &Burst,
    resident_ids: &[Option<i64>],
    ledger: &[PaidBill],
) -> anyhow::Result<Figures> {
    let name = format!("{round}, red packet {} ({})", c.id, c.channel);
    println!("  {name}:");
    let scenario = name.as_str();
    let grabs: Vec<GrabRow> =
        sqlx::query_as("SELECT id, resident_id, amount_fen, payout_id FROM rp_grabs WHERE campaign_id = $1")
            .bind(c.id)
            .fetch_all(pool)
            .await?;
    let by_id: HashMap<i64, &GrabRow> = grabs.iter().map(|g| (g.0, g)).collect();

    // Acknowledged grabs: each in the database, as answered.
    let acks: Vec<_> = burst.acks.iter().filter(|a| a.campaign == c.id).collect();
    let kept_as_answered = acks
        .iter()
        .filter(|a| by_id.get(&a.grab_id).is_some_and(|g| g.2 == a.amount_fen && g.3 == a.payout_id))
        .count();
    checks.equal(
        scenario,
        "acknowledged grabs kept with their amount and payout",
        kept_as_answered as i64,
        acks.len() as i64,
    );
    let acked_residents: HashSet<usize> = acks.iter().map(|a| a.resident).collect();
    checks.equal(scenario, "residents acknowledged twice", (acks.len() - acked_residents.len()) as i64, 0);

    // Shares.
    let n = grabs.len() as i64;
    let sum: i64 = grabs.iter().map(|g| g.2).sum();
    let everyone_answered = burst.unanswered == 0;
    if everyone_answered {
        // Demand exceeded the shares and every request was answered: the packet sold out.
        checks.equal(scenario, "grants = shares", n, c.shares);
        checks.equal(scenario, "granted amounts sum to the total (fen)", sum, c.total_fen);
    } else {
        checks.add(scenario, "grants ≤ shares", n <= c.shares, format!("{n} of {}", c.shares));
        checks.add(scenario, "granted amounts ≤ total (fen)", sum <= c.total_fen, format!("{sum} of {}", c.total_fen));
    }
    let distinct: HashSet<i64> = grabs.iter().map(|g| g.1).collect();
    checks.equal(scenario, "nobody twice (distinct residents = grants)", distinct.len() as i64, n);
    let counter = scalar(pool, "SELECT granted FROM rp_campaigns WHERE id = $1", &[c.id]).await?;
    checks.equal(scenario, "campaign's granted counter = grants", counter, n);
    // A grant nobody was told about is one whose answer a kill cut off.
    let acked_ids: HashSet<i64> = acks.iter().map(|a| a.grab_id).collect();
    let cut_residents: HashSet<i64> = burst
        .cut
        .iter()
        .filter(|(_, campaign)| *campaign == c.id)
        .filter_map(|(r, _)| resident_ids.get(*r).copied().flatten())
        .collect();
    let unacked: Vec<&GrabRow> = grabs.iter().filter(|g| !acked_ids.contains(&g.0)).collect();
    let unexplained: Vec<i64> = unacked.iter().filter(|g| !cut_residents.contains(&g.1)).map(|g| g.0).collect();
    // What those residents were told when they pressed again.
    let index_of: HashMap<i64, usize> =
        resident_ids.iter().enumerate().filter_map(|(i, id)| id.map(|id| (id, i))).collect();
    let mut told: BTreeMap<String, usize> = BTreeMap::new();
    for g in &unacked {
        let answer = index_of
            .get(&g.1)
            .and_then(|r| burst.refused_with.get(&(*r, c.id)))
            .map_or("no answer".to_owned(), |code| format!("409 {code}"));
        *told.entry(answer).or_default() += 1;
    }
    if !unacked.is_empty() {
        println!(
            "  note: {} grants whose 201 a kill cut off; on retry their residents were told {told:?}",
            unacked.len()
        );
    }
    checks.add(
        scenario,
        "grants never acknowledged whose request was not cut off by a kill",
        unexplained.is_empty(),
        format!(
            "{} of {} unacknowledged grants ({} requests cut off)",
            unexplained.len(),
            unacked.len(),
            cut_residents.len()
        ),
    );

    // Payouts: one per grab, the grab's amount, to the grab's resident.
    let payouts: Vec<PayoutRow> = sqlx::query_as(
        "SELECT p.id, p.amount_fen, p.state, p.resident_id, p.openid, p.credited_at FROM payouts p \
         JOIN rp_grabs g ON g.payout_id = p.id WHERE g.campaign_id = $1",
    )
    .bind(c.id)
    .fetch_all(pool)
    .await?;
    let without = grabs.iter().filter(|g| g.3.is_none()).count();
    checks.equal(scenario, "grabs without a payout", without as i64, 0);
    let payout_ids: HashSet<i64> = payouts.iter().map(|p| p.0).collect();
    checks.equal(scenario, "payouts = grants, one each", payout_ids.len() as i64, n);
    let grab_of: HashMap<i64, &GrabRow> = grabs.iter().filter_map(|g| g.3.map(|p| (p, g))).collect();
    let mismatched = payouts.iter().filter(|p| grab_of.get(&p.0).is_none_or(|g| g.2 != p.1 || g.1 != p.3)).count();
    checks.equal(scenario, "payouts with another amount or resident than their grab", mismatched as i64, 0);
    let open = payouts.iter().filter(|p| p.2 != "succeeded" && p.2 != "failed").count();
    checks.equal(scenario, "payouts not settled", open as i64, 0);

    // WeChat Pay's ledger, by the merchant numbers each payout used.
    let numbers: Vec<(String, i64)> = sqlx::query_as(
        "SELECT n.out_no, n.payout_id FROM payout_numbers n JOIN rp_grabs g ON g.payout_id = n.payout_id \
         WHERE g.campaign_id = $1",
    )
    .bind(c.id)
    .fetch_all(pool)
    .await?;
    let payout_of: HashMap<&str, i64> = numbers.iter().map(|(no, p)| (no.as_str(), *p)).collect();
    let paid: Vec<&PaidBill> =
        ledger.iter().filter(|b| b.money_out() && payout_of.contains_key(b.bill_no.as_str())).collect();
    let mut paid_per_payout: HashMap<i64, Vec<&PaidBill>> = HashMap::new();
    for b in &paid {
        paid_per_payout.entry(payout_of[b.bill_no.as_str()]).or_default().push(b);
    }
    let twice: Vec<i64> = paid_per_payout.iter().filter(|(_, v)| v.len() > 1).map(|(p, _)| *p).collect();
    checks.add(
        scenario,
        "payouts WeChat paid more than once (over all their numbers)",
        twice.is_empty(),
        if twice.is_empty() {
            "0".to_owned()
        } else {
            format!("{} payouts, e.g. {:?}", twice.len(), &twice[..twice.len().min(5)])
        },
    );
    let mut per_openid: HashMap<&str, usize> = HashMap::new();
    for b in &paid {
        *per_openid.entry(b.openid.as_str()).or_default() += 1;
    }
    checks.equal(
        scenario,
        "residents WeChat paid more than once for this red packet",
        per_openid.values().filter(|n| **n > 1).count() as i64,
        0,
    );
    let (mut succeeded, mut failed, mut unpaid_success, mut paid_not_settled, mut failed_but_paid, mut uncredited) =
        (0, 0, Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in &payouts {
        let bills = paid_per_payout.get(&p.0).map(Vec::as_slice).unwrap_or_default();
        match p.2.as_str() {
            "succeeded" => {
                succeeded += 1;
                let final_bill = bills.iter().any(|b| {
                    matches!(b.status.as_str(), "RECEIVED" | "SUCCESS") && b.amount_fen == p.1 && b.openid == p.4
                });
                if !final_bill {
                    unpaid_success.push(p.0);
                }
            }
            "failed" => {
                failed += 1;
                if !bills.is_empty() {
                    failed_but_paid.push(p.0);
                }
                if p.5.is_none() {
                    uncredited.push(p.0);
                }
            }
            _ => {}
        }
        if !bills.is_empty() && p.2 != "succeeded" {
            paid_not_settled.push(p.0);
        }
    }
    let listed = |v: &[i64]| {
        if v.is_empty() {
            "0".to_owned()
        } else {
            format!("{} payouts, e.g. {:?}", v.len(), &v[..v.len().min(5)])
        }
    };
    checks.add(
        scenario,
        "succeeded payouts WeChat did not pay in full",
        unpaid_success.is_empty(),
        listed(&unpaid_success),
    );
    checks.add(
        scenario,
        "payouts WeChat paid that linli has not settled as succeeded",
        paid_not_settled.is_empty(),
        listed(&paid_not_settled),
    );
    checks.add(scenario, "failed payouts WeChat paid anyway", failed_but_paid.is_empty(), listed(&failed_but_paid));
    checks.add(scenario, "failed payouts not credited to the wallet", uncredited.is_empty(), listed(&uncredited));
    let succeeded_fen: i64 = payouts.iter().filter(|p| p.2 == "succeeded").map(|p| p.1).sum();
    let paid_fen: i64 = paid.iter().map(|b| b.amount_fen).sum();
    checks.equal(scenario, "fen WeChat paid = fen of succeeded payouts", paid_fen, succeeded_fen);
    Ok(Figures {
        grants: n,
        unacknowledged: unacked.len(),
        payouts: payouts.len() as i64,
        paid_by_mock: paid.len(),
        succeeded,
        failed,
    })
}

/// Across the whole database and ledger: WeChat paid nothing under a number linli never issued,
/// no number twice, and no payout exists without the grab that caused it.
pub async fn whole_ledger(checks: &mut Checks, round: &str, pool: &AnyPool, ledger: &[PaidBill]) -> anyhow::Result<()> {
    let known: Vec<(String,)> = sqlx::query_as("SELECT out_no FROM payout_numbers").fetch_all(pool).await?;
    let known: HashSet<String> = known.into_iter().map(|(n,)| n).collect();
    let strangers: Vec<&str> =
        ledger.iter().filter(|b| !known.contains(&b.bill_no)).map(|b| b.bill_no.as_str()).collect();
    checks.add(
        round,
        "WeChat Pay bills under numbers linli never recorded",
        strangers.is_empty(),
        if strangers.is_empty() { format!("0 of {}", ledger.len()) } else { format!("{strangers:?}") },
    );
    let mut per_number: HashMap<&str, usize> = HashMap::new();
    for b in ledger.iter().filter(|b| b.money_out()) {
        *per_number.entry(b.bill_no.as_str()).or_default() += 1;
    }
    checks.equal(
        round,
        "merchant numbers WeChat paid more than once",
        per_number.values().filter(|n| **n > 1).count() as i64,
        0,
    );
    let orphans = scalar(
        pool,
        "SELECT COUNT(*) FROM payouts p WHERE p.source = 'red_packet' \
         AND NOT EXISTS (SELECT 1 FROM rp_grabs g WHERE g.payout_id = p.id)",
        &[],
    )
    .await?;
    checks.equal(round, "red-packet payouts without their grab", orphans, 0);
    Ok(())
}
