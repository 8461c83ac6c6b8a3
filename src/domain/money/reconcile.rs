//! Reconciliation: one Beijing day's payouts of one merchant against that merchant's WeChat Pay
//! fund-flow bill (资金账单); the daily job runs it for every merchant.
//!
//! For every merchant number linli created that day, what linli believes left the merchant account
//! (net of money that came back) is compared with what WeChat's bills show for that number, from
//! that day's bill up to the latest one available — a red packet sent on Monday and refunded on
//! Tuesday nets to zero, as linli expects of a payout that failed. Bill lines whose merchant number
//! linli never issued are reported too. Every run is stored with its differences.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

use crate::codes::ErrorCode;
use crate::db::money::payouts::{
    self as store, NumberOutcome, NumberRow, PayoutState, ReconciliationRow, ReconciliationState,
};
use crate::db::{self, Db, DbError, PageRequest};
use crate::domain::accounts::registry::{Accounts, Merchant, Source};
use crate::domain::operators::access::{Actor, Role, PLATFORM_ORG_ID};
use crate::domain::{DomainError, DomainResult};
use crate::wechat::pay::clients::PayClients;
use crate::wechat::pay::v3::bill::{FundDirection, FundFlowBillOutcome};

/// The most days of bills one run reads after the day it reconciles.
const MAX_FOLLOWING_DAYS: i64 = 31;
const BEIJING: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// One difference found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub kind: String,
    pub out_no: String,
    pub payout_id: Option<i64>,
    pub wechat_fen: i64,
    pub linli_fen: i64,
    pub detail: String,
}

fn platform_admin(actor: &Actor) -> DomainResult<()> {
    actor.require(Role::Admin)?;
    if actor.org_id != PLATFORM_ORG_ID {
        return Err(DomainError::Forbidden("reconciliation is for platform admins".into()));
    }
    Ok(())
}

pub fn parse_date(s: &str) -> DomainResult<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]"))
        .map_err(|_| DomainError::invalid(ErrorCode::InvalidDate, "bill_date must be a date, YYYY-MM-DD"))
}

/// The Beijing day `at_ms` falls on.
pub fn beijing_day(at_ms: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(BEIJING)
        .date()
}

/// Yesterday in Beijing: the last day whose bill is complete.
pub fn yesterday() -> Date {
    let today = beijing_day(db::now_ms());
    today.previous_day().unwrap_or(today)
}

/// Whether a run for `date` of one merchant (`None`: the environment's) is stored already.
pub async fn has_run(db: &Db, date: Date, mch_id: Option<&str>) -> DomainResult<bool> {
    let page = PageRequest { page: 1, page_size: 1 };
    Ok(!store::reconciliations(db.reader(), Some(&date.to_string()), Some(mch_id), page).await?.is_empty())
}

/// How a merchant's runs and payouts are stored: by its mch_id, or without one for the
/// merchant configured by environment.
pub fn stored_mch_id(m: &Merchant) -> Option<&str> {
    (m.source != Source::Environment).then_some(m.mch_id.as_str())
}

/// Reconciles `date` for every merchant not reconciled for it yet (the daily job).
pub async fn run_all(db: &Db, accounts: &Accounts, date: Date) -> Vec<DomainResult<ReconciliationRow>> {
    let mut out = Vec::new();
    for m in accounts.merchants() {
        let mch = stored_mch_id(&m);
        match has_run(db, date, mch).await {
            Ok(true) => continue,
            Ok(false) => out.push(run(db, Some(&m.clients), mch, date).await),
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

fn day_start_ms(d: Date) -> i64 {
    d.midnight().assume_offset(BEIJING).unix_timestamp() * 1000
}

/// What linli expects to have left the merchant account for a number, net; `None` when linli
/// cannot know yet (the last call's outcome is unknown).
fn expected(n: &NumberRow) -> Option<i64> {
    match n.outcome {
        NumberOutcome::Succeeded => Some(n.amount_fen),
        NumberOutcome::Failed => Some(0),
        NumberOutcome::Open if n.out_no != n.current_out_no => Some(0),
        NumberOutcome::Open => match n.state {
            PayoutState::Submitted | PayoutState::AwaitingConfirmation | PayoutState::Succeeded => Some(n.amount_fen),
            PayoutState::Unknown => None,
            PayoutState::Pending | PayoutState::Failed => Some(0),
        },
    }
}

/// Compares `ours` (numbers created that day) with the nets WeChat's bills show per number, and
/// with the numbers of the day's own bill.
pub fn compare(ours: &[NumberRow], nets: &BTreeMap<String, i64>, day_vouchers: &[String]) -> Vec<Difference> {
    let mut out = Vec::new();
    let known: std::collections::HashSet<&str> = ours.iter().map(|n| n.out_no.as_str()).collect();
    for n in ours {
        let wechat = nets.get(&n.out_no).copied().unwrap_or(0);
        let diff = |kind: &str, linli: i64, detail: String| Difference {
            kind: kind.into(),
            out_no: n.out_no.clone(),
            payout_id: Some(n.payout_id),
            wechat_fen: wechat,
            linli_fen: linli,
            detail,
        };
        match expected(n) {
            None => out.push(diff("unresolved", n.amount_fen, format!("payout {} is still unknown", n.payout_id))),
            Some(linli) if linli == wechat => {}
            Some(0) => out.push(diff(
                "paid_but_failed_here",
                0,
                format!("WeChat shows {wechat} fen paid; linli has payout {} as {}", n.payout_id, n.state),
            )),
            Some(linli) if wechat == 0 => {
                out.push(diff("missing_at_wechat", linli, format!("linli has payout {} as {}", n.payout_id, n.state)))
            }
            Some(linli) => out.push(diff("amount_mismatch", linli, format!("WeChat {wechat} fen, linli {linli} fen"))),
        }
    }
    for v in day_vouchers {
        if !known.contains(v.as_str()) {
            out.push(Difference {
                kind: "unknown_number".into(),
                out_no: v.clone(),
                payout_id: None,
                wechat_fen: nets.get(v).copied().unwrap_or(0),
                linli_fen: 0,
                detail: "WeChat's bill shows money moving under a number linli did not issue that day".into(),
            });
        }
    }
    out
}

/// Reconciles `bill_date` (a Beijing day) for one merchant (`None`: the one configured by
/// environment) and stores the run. Platform admins only.
pub async fn run_for(
    db: &Db,
    actor: &Actor,
    accounts: &Accounts,
    mch_id: Option<&str>,
    bill_date: &str,
) -> DomainResult<ReconciliationRow> {
    platform_admin(actor)?;
    let date = parse_date(bill_date)?;
    match accounts.merchant(mch_id) {
        Some(m) => run(db, Some(&m.clients), stored_mch_id(&m), date).await,
        None if mch_id.is_some() => Err(DomainError::NotFound("merchant")),
        None => run(db, None, None, date).await,
    }
}

/// Reconciles `date` for one merchant and stores the run (the daily job and the command line
/// call this).
pub async fn run(
    db: &Db,
    pay: Option<&PayClients>,
    mch_id: Option<&str>,
    date: Date,
) -> DomainResult<ReconciliationRow> {
    let today = beijing_day(db::now_ms());
    if date > today {
        return Err(DomainError::invalid(ErrorCode::InvalidDate, "that day has not happened yet"));
    }
    let Some(v3) = pay.and_then(|p| p.v3.as_ref()) else {
        return store_run(
            db,
            mch_id,
            date,
            ReconciliationState::Unavailable,
            0,
            &[],
            Some("WeChat Pay v3 is not configured".into()),
        )
        .await;
    };
    let mut nets: BTreeMap<String, i64> = BTreeMap::new();
    let mut day_vouchers = Vec::new();
    let mut note = None;
    let mut d = date;
    while d <= today && d - date <= Duration::days(MAX_FOLLOWING_DAYS) {
        let outcome = v3.fund_flow_bill(d).await.map_err(|e| DomainError::Upstream(e.to_string()))?;
        match outcome {
            FundFlowBillOutcome::Ready(bill) => {
                for e in bill.entries.iter().filter(|e| !e.voucher_no.is_empty()) {
                    // The bill's figures are WeChat's text: saturate, so an absurd one shows up
                    // as a difference instead of wrapping into a match or panicking.
                    let signed = match e.direction {
                        FundDirection::Expense => e.amount_fen,
                        FundDirection::Income => e.amount_fen.saturating_neg(),
                    };
                    let net = nets.entry(e.voucher_no.clone()).or_default();
                    *net = net.saturating_add(signed);
                    if d == date && !day_vouchers.contains(&e.voucher_no) {
                        day_vouchers.push(e.voucher_no.clone());
                    }
                }
            }
            // No money moved that day.
            FundFlowBillOutcome::NoStatement { .. } => {}
            other if d == date => {
                let message = format!("no bill for {date}: {other:?}");
                return store_run(db, mch_id, date, ReconciliationState::Unavailable, 0, &[], Some(message)).await;
            }
            other => {
                note = Some(format!("bills read up to the day before {d} ({other:?})"));
                break;
            }
        }
        d = d.next_day().unwrap_or(d);
        if d == date {
            break;
        }
    }
    let from = day_start_ms(date);
    let ours = store::numbers_between(db.reader(), from, from + 86_400_000, mch_id).await?;
    let diffs = compare(&ours, &nets, &day_vouchers);
    let state = if diffs.is_empty() { ReconciliationState::Matched } else { ReconciliationState::Differences };
    let checked = (ours.len() + day_vouchers.iter().filter(|v| !ours.iter().any(|n| &n.out_no == *v)).count()) as i64;
    store_run(db, mch_id, date, state, checked, &diffs, note).await
}

async fn store_run(
    db: &Db,
    mch_id: Option<&str>,
    date: Date,
    state: ReconciliationState,
    checked: i64,
    diffs: &[Difference],
    message: Option<String>,
) -> DomainResult<ReconciliationRow> {
    let now = db::now_ms();
    let json = serde_json::to_string(diffs).unwrap_or_else(|_| "[]".into());
    let bill_date = date.to_string();
    let mut tx = db.begin().await?;
    let run = store::NewReconciliation {
        mch_id,
        bill_date: &bill_date,
        state,
        checked,
        differences: &json,
        message: message.as_deref(),
    };
    let id = store::insert_reconciliation(&mut tx, &run, now).await?;
    tx.commit().await.map_err(DbError::from)?;
    if !diffs.is_empty() {
        tracing::warn!(bill_date = %bill_date, differences = diffs.len(), "reconciliation found differences");
    }
    Ok(ReconciliationRow {
        id,
        bill_date,
        state,
        checked,
        differences: json,
        message,
        created_at: now,
        mch_id: mch_id.map(str::to_owned),
    })
}

/// Stored runs, of every merchant or of one.
pub async fn list(
    db: &Db,
    actor: &Actor,
    accounts: &Accounts,
    bill_date: Option<&str>,
    mch_id: Option<&str>,
    page: PageRequest,
) -> DomainResult<Vec<ReconciliationRow>> {
    platform_admin(actor)?;
    let merchant = match mch_id {
        Some(id) => Some(accounts.merchant(Some(id)).ok_or(DomainError::NotFound("merchant"))?),
        None => None,
    };
    let only = merchant.as_deref().map(stored_mch_id);
    Ok(store::reconciliations(db.reader(), bill_date, only, page).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(out_no: &str, outcome: &str, state: &str, amount: i64) -> NumberRow {
        NumberRow {
            out_no: out_no.into(),
            outcome: NumberOutcome::parse(outcome).expect("a number outcome"),
            payout_id: 1,
            channel: crate::db::money::payouts::PayoutChannel::CashRedPacket,
            amount_fen: amount,
            state: crate::db::money::payouts::PayoutState::parse(state).expect("a payout state"),
            current_out_no: out_no.into(),
            calls: 1,
            created_at: 0,
        }
    }

    #[test]
    fn differences_are_named() {
        let ours = vec![
            n("A", "succeeded", "succeeded", 100),
            n("B", "failed", "failed", 200),
            n("C", "open", "submitted", 300),
            n("D", "succeeded", "succeeded", 400),
            n("E", "failed", "failed", 500),
            n("F", "open", "unknown", 600),
        ];
        let nets = BTreeMap::from([
            ("A".to_owned(), 100),
            ("B".to_owned(), 0),
            ("C".to_owned(), 300),
            ("E".to_owned(), 500),
            ("X".to_owned(), 50),
        ]);
        let day: Vec<String> = ["A", "B", "C", "E", "X"].iter().map(|s| s.to_string()).collect();
        let kinds: Vec<(String, String)> =
            compare(&ours, &nets, &day).into_iter().map(|d| (d.out_no, d.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("D".into(), "missing_at_wechat".into()),
                ("E".into(), "paid_but_failed_here".into()),
                ("F".into(), "unresolved".into()),
                ("X".into(), "unknown_number".into()),
            ]
        );
    }

    #[test]
    fn beijing_days() {
        // 2026-11-21 16:30 UTC is 2026-11-22 00:30 in Beijing.
        assert_eq!(beijing_day(1_795_278_600_000).to_string(), "2026-11-22");
        assert_eq!(day_start_ms(parse_date("2026-11-22").unwrap()), 1_795_276_800_000);
        assert!(parse_date("2026-13-01").is_err());
    }
}
