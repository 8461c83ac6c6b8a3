//! Payouts: the transactional outbox of cash movements to WeChat Pay, their merchant numbers and
//! history, and the notifications applied to them.

use serde::Serialize;
use sqlx::{Any, AnyPool, Executor};

use crate::db::{subtree_pattern, DbResult, Engine, Page, PageRequest, Tx};

stored_enum! {
    /// Where a payout is in its state machine (see `crate::domain::money::payouts`).
    pub enum PayoutState ("payout state") {
        /// Queued, or to be sent again with its number.
        Pending = "pending",
        /// Accepted by WeChat Pay, not final.
        Submitted = "submitted",
        /// The last call's outcome is unknown: queried, then resent with the same number.
        Unknown = "unknown",
        /// A v3 transfer waiting for the resident to confirm.
        AwaitingConfirmation = "awaiting_confirmation",
        Succeeded = "succeeded",
        /// Failed for good; the amount went to the resident's wallet.
        Failed = "failed",
    }
}

stored_enum! {
    /// Where a payout's money goes; each channel has its own per-payment limits.
    pub enum PayoutChannel ("payout channel") {
        /// A v2 cash red packet (现金红包) to the official account's openid: 1–200 yuan each.
        CashRedPacket = "cash_red_packet",
        /// A merchant transfer (商家转账) to the mini-program's openid: at least 0.1 yuan.
        Transfer = "transfer",
        /// The resident's in-app wallet: at least 0.01 yuan.
        Balance = "balance",
    }
}

stored_enum! {
    /// What became of one merchant number: still open, or known to have failed or succeeded.
    pub enum NumberOutcome ("payout number outcome") {
        Open = "open",
        Failed = "failed",
        Succeeded = "succeeded",
    }
}

stored_enum! {
    /// What a reconciliation run of one day found.
    pub enum ReconciliationState ("reconciliation state") {
        /// Every number matched WeChat Pay's bill.
        Matched = "matched",
        /// Some did not (see the run's differences).
        Differences = "differences",
        /// No bill could be had.
        Unavailable = "unavailable",
    }
}

impl PayoutState {
    /// Whether the payout can still move ([`OPEN_STATES`] in SQL).
    pub fn is_open(self) -> bool {
        !matches!(self, PayoutState::Succeeded | PayoutState::Failed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PayoutRow {
    pub id: i64,
    pub company_id: Option<i64>,
    pub owner_org_id: Option<i64>,
    pub resident_id: i64,
    pub channel: PayoutChannel,
    pub source: String,
    pub source_ref: String,
    pub amount_fen: i64,
    pub appid: String,
    pub openid: String,
    pub out_no: String,
    pub attempt: i64,
    pub state: PayoutState,
    pub display: String,
    pub wechat_no: Option<String>,
    pub package_info: Option<String>,
    pub last_code: Option<String>,
    pub last_message: Option<String>,
    pub calls: i64,
    pub next_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
    pub credited_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The merchant it is paid through; absent, the one configured by environment.
    pub mch_id: Option<String>,
}

const PAYOUT: &str = "id, company_id, owner_org_id, resident_id, channel, source, source_ref, amount_fen, appid, openid, \
                      out_no, attempt, state, display, wechat_no, package_info, last_code, last_message, calls, next_at, \
                      lease_owner, lease_until, credited_at, finished_at, created_at, updated_at, mch_id";

/// States a payout can still leave.
pub const OPEN_STATES: &str = "('pending', 'submitted', 'unknown', 'awaiting_confirmation')";

/// A payout to queue.
#[derive(Clone, Debug)]
pub struct NewPayout<'a> {
    pub company_id: Option<i64>,
    pub owner_org_id: Option<i64>,
    pub resident_id: i64,
    pub channel: PayoutChannel,
    pub source: &'a str,
    pub source_ref: &'a str,
    pub amount_fen: i64,
    pub appid: &'a str,
    pub openid: &'a str,
    pub out_no: &'a str,
    pub display: &'a str,
    /// The merchant it goes through; `None`: the one configured by environment.
    pub mch_id: Option<&'a str>,
}

/// Queues many payouts in three statements (payouts, their first numbers, their `queued`
/// events), in the caller's transaction. Answers the rows in no particular order: match them by
/// `source_ref`, which is unique.
pub async fn insert_many(tx: &mut Tx, payouts: &[NewPayout<'_>], now: i64) -> DbResult<Vec<PayoutRow>> {
    let mut rows = Vec::with_capacity(payouts.len());
    for chunk in payouts.chunks(crate::db::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO payouts (company_id, owner_org_id, resident_id, channel, source, source_ref, amount_fen, \
                 appid, openid, out_no, attempt, state, display, calls, next_at, lease_until, created_at, updated_at, \
                 mch_id) \
             SELECT column1, column2, column3, column4, column5, column6, column7, column8, column9, column10, 1, \
                 'pending', column11, 0, column12, 0, column12, column12, column13 \
             FROM (VALUES {}) AS v \
             RETURNING {PAYOUT}",
            crate::db::values_list(chunk.len(), 13, 1)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query_as::<_, PayoutRow>(&sql);
        for p in chunk {
            q = q
                .bind(p.company_id)
                .bind(p.owner_org_id)
                .bind(p.resident_id)
                .bind(p.channel)
                .bind(p.source)
                .bind(p.source_ref)
                .bind(p.amount_fen)
                .bind(p.appid)
                .bind(p.openid)
                .bind(p.out_no)
                .bind(p.display)
                .bind(now)
                .bind(p.mch_id);
        }
        let made = q.fetch_all(&mut **tx).await?;
        let numbers = format!(
            "INSERT INTO payout_numbers (out_no, payout_id, attempt, outcome, created_at) VALUES {}",
            crate::db::values_list(made.len(), 5, 1)
        );
        let numbers = crate::db::positional(tx, numbers);
        let mut q = sqlx::query(&numbers);
        for p in &made {
            q = q.bind(&p.out_no).bind(p.id).bind(1i64).bind("open").bind(now);
        }
        q.execute(&mut **tx).await?;
        let events = format!(
            "INSERT INTO payout_events (payout_id, kind, out_no, state, at) VALUES {}",
            crate::db::values_list(made.len(), 5, 1)
        );
        let events = crate::db::positional(tx, events);
        let mut q = sqlx::query(&events);
        for p in &made {
            q = q.bind(p.id).bind("queued").bind(&p.out_no).bind("pending").bind(now);
        }
        q.execute(&mut **tx).await?;
        rows.extend(made);
    }
    Ok(rows)
}

async fn insert_number(tx: &mut Tx, payout_id: i64, out_no: &str, attempt: i64, now: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO payout_numbers (out_no, payout_id, attempt, outcome, created_at) VALUES ($1, $2, $3, 'open', $4)",
    )
    .bind(out_no)
    .bind(payout_id)
    .bind(attempt)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves the payouts queued for the merchant configured by environment onto its record, once
/// the environment's merchant has become one; answers how many.
pub async fn adopt_environment_payouts(db: &crate::db::Db, mch_id: &str) -> DbResult<u64> {
    let done =
        sqlx::query("UPDATE payouts SET mch_id = $1 WHERE mch_id IS NULL").bind(mch_id).execute(db.writer()).await?;
    Ok(done.rows_affected())
}

/// A line of a payout's history.
#[derive(Clone, Copy, Debug)]
pub struct NewEvent<'a> {
    pub payout_id: i64,
    /// What happened: `send`, `query`, `notification`, `renumbered`, `operator_retry`…
    pub kind: &'a str,
    pub out_no: &'a str,
    /// The payout's state after it.
    pub state: PayoutState,
    pub code: Option<&'a str>,
    pub message: Option<&'a str>,
    /// The operator, for an operator's action.
    pub actor: Option<&'a str>,
}

pub async fn insert_event(tx: &mut Tx, e: &NewEvent<'_>, now: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO payout_events (payout_id, kind, out_no, state, code, message, actor, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(e.payout_id)
    .bind(e.kind)
    .bind(e.out_no)
    .bind(e.state)
    .bind(e.code)
    .bind(e.message)
    .bind(e.actor)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<PayoutRow>> {
    let row =
        sqlx::query_as(&format!("SELECT {PAYOUT} FROM payouts WHERE id = $1")).bind(id).fetch_optional(ex).await?;
    Ok(row)
}

/// The payout a merchant number belongs to (current or earlier), with whether it is current.
pub async fn by_number<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    out_no: &str,
) -> DbResult<Option<(i64, NumberOutcome)>> {
    let row = sqlx::query_as("SELECT payout_id, outcome FROM payout_numbers WHERE out_no = $1")
        .bind(out_no)
        .fetch_optional(ex)
        .await?;
    Ok(row)
}

/// Leases up to `limit` due payouts to `owner` until `lease_until`. On PostgreSQL the candidates
/// are picked with `FOR UPDATE SKIP LOCKED`, so instances claiming at once take different rows;
/// the lease condition is repeated in the update, so a row is never leased twice either way.
pub async fn claim_due(
    pool: &AnyPool,
    engine: Engine,
    owner: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> DbResult<Vec<PayoutRow>> {
    let pick = match engine {
        Engine::Postgres => format!(
            "SELECT id FROM payouts WHERE state IN {OPEN_STATES} AND next_at <= $1 AND lease_until <= $1 \
             ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        ),
        Engine::Sqlite => format!(
            "SELECT id FROM payouts WHERE state IN {OPEN_STATES} AND next_at <= $1 AND lease_until <= $1 \
             ORDER BY next_at LIMIT $2"
        ),
    };
    let rows = sqlx::query_as(&format!(
        "UPDATE payouts SET lease_owner = $3, lease_until = $4 \
         WHERE id IN ({pick}) AND state IN {OPEN_STATES} AND lease_until <= $1 RETURNING {PAYOUT}"
    ))
    .bind(now)
    .bind(limit)
    .bind(owner)
    .bind(lease_until)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// A change to a payout, applied only while it is still open and still on `out_no`.
#[derive(Clone, Debug)]
pub struct Transition<'a> {
    pub state: PayoutState,
    pub wechat_no: Option<&'a str>,
    pub package_info: Option<&'a str>,
    pub code: Option<&'a str>,
    pub message: Option<&'a str>,
    /// Count one more call with the current number.
    pub called: bool,
    pub next_at: i64,
    /// Release the lease (`true` when the holder is done with it for now).
    pub release: bool,
}

/// Applies `t` if the payout is open and its current number is `out_no`; the answer is the
/// updated row, `None` when something else settled it first.
pub async fn transition(
    tx: &mut Tx,
    id: i64,
    out_no: &str,
    t: &Transition<'_>,
    now: i64,
) -> DbResult<Option<PayoutRow>> {
    let finished = !t.state.is_open();
    let row = sqlx::query_as(&format!(
        "UPDATE payouts SET state = $1, wechat_no = COALESCE($2, wechat_no), \
             package_info = CASE WHEN $1 = 'awaiting_confirmation' THEN COALESCE($3, package_info) ELSE NULL END, \
             last_code = $4, last_message = $5, calls = calls + $6, next_at = $7, \
             lease_owner = CASE WHEN $8 = 1 THEN NULL ELSE lease_owner END, \
             lease_until = CASE WHEN $8 = 1 THEN 0 ELSE lease_until END, \
             finished_at = CASE WHEN $9 = 1 THEN $10 ELSE NULL END, updated_at = $10 \
         WHERE id = $11 AND out_no = $12 AND state IN {OPEN_STATES} RETURNING {PAYOUT}"
    ))
    .bind(t.state.as_str())
    .bind(t.wechat_no)
    .bind(t.package_info)
    .bind(t.code)
    .bind(t.message)
    .bind(i64::from(t.called))
    .bind(t.next_at)
    .bind(i64::from(t.release))
    .bind(i64::from(finished))
    .bind(now)
    .bind(id)
    .bind(out_no)
    .fetch_optional(&mut **tx)
    .await?;
    if row.is_some() && finished {
        let outcome = match t.state {
            PayoutState::Succeeded => NumberOutcome::Succeeded,
            PayoutState::Failed => NumberOutcome::Failed,
            PayoutState::Pending
            | PayoutState::Submitted
            | PayoutState::Unknown
            | PayoutState::AwaitingConfirmation => NumberOutcome::Open,
        };
        set_number_outcome(tx, out_no, outcome).await?;
    }
    Ok(row)
}

pub async fn set_number_outcome(tx: &mut Tx, out_no: &str, outcome: NumberOutcome) -> DbResult<()> {
    sqlx::query("UPDATE payout_numbers SET outcome = $1 WHERE out_no = $2")
        .bind(outcome)
        .bind(out_no)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Replaces the merchant number after a query said the old one certainly paid nothing: the old
/// number is marked failed, the new one recorded, and the payout is pending again.
/// `from_failed`: an operator's retry of a failed payout; otherwise the payout must be open.
pub async fn renumber(
    tx: &mut Tx,
    id: i64,
    old: &str,
    new: &str,
    next_at: i64,
    now: i64,
    from_failed: bool,
) -> DbResult<Option<PayoutRow>> {
    let states = if from_failed { "('failed')" } else { OPEN_STATES };
    let row: Option<PayoutRow> = sqlx::query_as(&format!(
        "UPDATE payouts SET out_no = $1, attempt = attempt + 1, state = 'pending', calls = 0, wechat_no = NULL, \
             package_info = NULL, next_at = $2, lease_owner = NULL, lease_until = 0, finished_at = NULL, \
             credited_at = NULL, updated_at = $3 \
         WHERE id = $4 AND out_no = $5 AND state IN {states} RETURNING {PAYOUT}"
    ))
    .bind(new)
    .bind(next_at)
    .bind(now)
    .bind(id)
    .bind(old)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = &row {
        set_number_outcome(tx, old, NumberOutcome::Failed).await?;
        insert_number(tx, id, new, row.attempt, now).await?;
    }
    Ok(row)
}

pub async fn mark_credited(tx: &mut Tx, id: i64, now: i64) -> DbResult<bool> {
    let done =
        sqlx::query("UPDATE payouts SET credited_at = $1 WHERE id = $2 AND state = 'failed' AND credited_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Releases a lease without changing anything else (the holder gave up early).
pub async fn release<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64, owner: &str, next_at: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE payouts SET lease_owner = NULL, lease_until = 0, next_at = $1 WHERE id = $2 AND lease_owner = $3",
    )
    .bind(next_at)
    .bind(id)
    .bind(owner)
    .execute(ex)
    .await?;
    Ok(())
}

/// Makes an open payout of the resident due now; `None` when it is not open (or not theirs).
pub async fn poke(tx: &mut Tx, id: i64, resident_id: i64, now: i64) -> DbResult<Option<PayoutRow>> {
    let row = sqlx::query_as(&format!(
        "UPDATE payouts SET next_at = $1 WHERE id = $2 AND resident_id = $3 AND state IN {OPEN_STATES} \
         RETURNING {PAYOUT}"
    ))
    .bind(now)
    .bind(id)
    .bind(resident_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub payout_id: i64,
    pub kind: String,
    pub out_no: String,
    pub state: PayoutState,
    pub code: Option<String>,
    pub message: Option<String>,
    pub actor: Option<String>,
    pub at: i64,
}

pub async fn events<'c, E: Executor<'c, Database = Any>>(ex: E, payout_id: i64) -> DbResult<Vec<EventRow>> {
    let rows = sqlx::query_as(
        "SELECT id, payout_id, kind, out_no, state, code, message, actor, at FROM payout_events \
         WHERE payout_id = $1 ORDER BY id",
    )
    .bind(payout_id)
    .fetch_all(ex)
    .await?;
    Ok(rows)
}

#[derive(Clone, Debug, Default)]
pub struct PayoutFilter {
    pub scope_path: String,
    pub state: Option<PayoutState>,
    pub channel: Option<PayoutChannel>,
    pub source: Option<String>,
    pub resident_id: Option<i64>,
}

const FILTER: &str = "o.path LIKE $1 AND ($2 IS NULL OR p.state = $2) AND ($3 IS NULL OR p.channel = $3) \
     AND ($4 IS NULL OR p.source = $4) AND ($5 IS NULL OR p.resident_id = $5)";

/// Payouts funded by orgs in the scope, newest first.
pub async fn list(pool: &AnyPool, f: &PayoutFilter, page: PageRequest) -> DbResult<Page<PayoutRow>> {
    let scope = subtree_pattern(&f.scope_path);
    let cols = PAYOUT.split(", ").map(|c| format!("p.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let items = sqlx::query_as(&format!(
        "SELECT {cols} FROM payouts p JOIN orgs o ON o.id = p.owner_org_id WHERE {FILTER} \
         ORDER BY p.id DESC LIMIT $6 OFFSET $7"
    ))
    .bind(&scope)
    .bind(f.state)
    .bind(f.channel)
    .bind(&f.source)
    .bind(f.resident_id)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let (total,): (i64,) =
        sqlx::query_as(&format!("SELECT COUNT(*) FROM payouts p JOIN orgs o ON o.id = p.owner_org_id WHERE {FILTER}"))
            .bind(&scope)
            .bind(f.state)
            .bind(f.channel)
            .bind(&f.source)
            .bind(f.resident_id)
            .fetch_one(pool)
            .await?;
    Ok(Page { items, total })
}

pub async fn mine(pool: &AnyPool, resident_id: i64, page: PageRequest) -> DbResult<Vec<PayoutRow>> {
    let rows = sqlx::query_as(&format!(
        "SELECT {PAYOUT} FROM payouts WHERE resident_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(resident_id)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Every merchant number that may have moved money, with its payout, for reconciliation.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct NumberRow {
    pub out_no: String,
    pub outcome: NumberOutcome,
    pub payout_id: i64,
    pub channel: PayoutChannel,
    pub amount_fen: i64,
    pub state: PayoutState,
    pub current_out_no: String,
    pub calls: i64,
    pub created_at: i64,
}

/// Numbers created in `[from, to)` (unix ms).
/// The numbers one merchant's payouts took between `from` and `to` (`mch_id` `None`: the
/// merchant configured by environment).
pub async fn numbers_between(pool: &AnyPool, from: i64, to: i64, mch_id: Option<&str>) -> DbResult<Vec<NumberRow>> {
    let rows = sqlx::query_as(
        "SELECT n.out_no, n.outcome, n.payout_id, p.channel, p.amount_fen, p.state, p.out_no AS current_out_no, \
             p.calls, n.created_at \
         FROM payout_numbers n JOIN payouts p ON p.id = n.payout_id WHERE n.created_at >= $1 AND n.created_at < $2 \
             AND (p.mch_id = $3 OR (p.mch_id IS NULL AND $3 IS NULL)) \
         ORDER BY n.created_at",
    )
    .bind(from)
    .bind(to)
    .bind(mch_id)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Records a WeChat Pay notification's id; false when it was seen before.
pub async fn claim_notification(
    tx: &mut Tx,
    id: &str,
    event_type: &str,
    out_no: Option<&str>,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "INSERT INTO pay_notifications (id, event_type, out_no, received_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(event_type)
    .bind(out_no)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores a reconciliation run.
/// A reconciliation run to store.
#[derive(Clone, Copy, Debug)]
pub struct NewReconciliation<'a> {
    /// Absent: the merchant configured by environment.
    pub mch_id: Option<&'a str>,
    pub bill_date: &'a str,
    pub state: ReconciliationState,
    pub checked: i64,
    /// JSON array of differences.
    pub differences: &'a str,
    pub message: Option<&'a str>,
}

pub async fn insert_reconciliation(tx: &mut Tx, run: &NewReconciliation<'_>, now: i64) -> DbResult<i64> {
    let NewReconciliation { mch_id, bill_date, state, checked, differences, message } = *run;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO reconciliation_runs (bill_date, state, checked, differences, message, created_at, mch_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(bill_date)
    .bind(state)
    .bind(checked)
    .bind(differences)
    .bind(message)
    .bind(now)
    .bind(mch_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ReconciliationRow {
    pub id: i64,
    pub bill_date: String,
    pub state: ReconciliationState,
    pub checked: i64,
    pub differences: String,
    pub message: Option<String>,
    pub created_at: i64,
    /// The merchant reconciled; absent, the one configured by environment.
    pub mch_id: Option<String>,
}

/// Stored runs, newest first: of one day, of one merchant (`Some(None)`: the environment's), or all.
pub async fn reconciliations(
    pool: &AnyPool,
    bill_date: Option<&str>,
    mch_id: Option<Option<&str>>,
    page: PageRequest,
) -> DbResult<Vec<ReconciliationRow>> {
    let rows = sqlx::query_as(
        "SELECT id, bill_date, state, checked, differences, message, created_at, mch_id FROM reconciliation_runs \
         WHERE ($1 IS NULL OR bill_date = $1) \
             AND ($2 = 0 OR mch_id = $3 OR (mch_id IS NULL AND $3 IS NULL)) ORDER BY id DESC LIMIT $4 OFFSET $5",
    )
    .bind(bill_date)
    .bind(i64::from(mch_id.is_some()))
    .bind(mch_id.flatten())
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, DbOptions};

    #[tokio::test]
    async fn a_stored_state_that_names_no_variant_is_a_decode_error_not_a_default() {
        let db = Db::connect("sqlite::memory:", &DbOptions::default()).await.unwrap();
        let (s,): (PayoutState,) =
            sqlx::query_as("SELECT 'awaiting_confirmation'").fetch_one(db.reader()).await.unwrap();
        assert_eq!(s, PayoutState::AwaitingConfirmation);
        // Before, an unknown stored state showed as `failed` to operators and residents.
        for bad in ["paid", "", "Pending"] {
            let read = sqlx::query_as::<_, (PayoutState,)>(&format!("SELECT '{bad}'")).fetch_one(db.reader()).await;
            assert!(matches!(read, Err(sqlx::Error::ColumnDecode { .. })), "{bad:?}: {read:?}");
        }
        for s in PayoutState::ALL {
            assert_eq!(PayoutState::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let open: Vec<&str> = PayoutState::ALL.iter().filter(|s| s.is_open()).map(|s| s.as_str()).collect();
        assert_eq!(format!("('{}')", open.join("', '")), OPEN_STATES, "is_open and OPEN_STATES agree");
    }
}
