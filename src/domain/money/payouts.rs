//! Payouts: every cash movement to WeChat Pay, with its own state machine.
//!
//! ```text
//! pending ──call──▶ submitted ──▶ succeeded
//!    │  ▲             │   ▲
//!    │  └──(passing refusal, same number)
//!    ├──▶ awaiting_confirmation (v3 transfer: the resident confirms with package_info)
//!    ├──▶ unknown (timeout, unreadable answer: query, then resend with the same number)
//!    └──▶ failed (for good; the amount goes to the resident's wallet)
//! ```
//!
//! A payout row is written in the same transaction as its cause (a grab, a withdrawal, a reward)
//! with its first merchant number; the dispatcher (`workers::payouts`) calls WeChat outside any
//! transaction and reports back through [`record`]. Every change is conditional on the payout
//! still being open and still on the number the answer is about, so a late answer, a duplicate
//! notification or a second instance can never move a settled payout. A new number is minted only
//! after WeChat reports the old one's bill as failed ([`Step::BillFailed`]).

use std::sync::Arc;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::codes::ErrorCode;
use crate::config::PayoutSettings;
use crate::db::community::residents::{AppKind, IdentityRow};
use crate::db::money::payouts::{
    self as store, EventRow, NewEvent, NewPayout, PayoutChannel, PayoutFilter, PayoutRow, PayoutState, Transition,
};
use crate::db::money::wallet::{self, NewEntry};
use crate::db::{self, Db, DbError, Page, PageRequest, Tx};
use crate::domain::accounts::registry::{Accounts, Source};
use crate::domain::community::sessions::ResidentActor;
use crate::domain::operators::access::{scope_of, Actor, Role, PLATFORM_ORG_ID};
use crate::domain::{operators::audit, DomainError, DomainResult};
use crate::wechat::pay::v2::{
    RedPackInfo, RedPackSent, RedPackStatus, TransferDone, TransferInfo, TransferStatus, V2Outcome,
};
use crate::wechat::pay::v3::transfer_bills::{TransferBillState, TransferOutcome};

/// What a payout shows WeChat (and the resident).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Display {
    pub send_name: String,
    pub wishing: String,
    pub act_name: String,
    pub remark: String,
    pub transfer_remark: String,
    pub transfer_scene_id: String,
}

/// A fresh merchant number: `L` and 27 letters or digits, within every channel's limit
/// (`mch_billno` ≤ 28, `partner_trade_no` and `out_bill_no` ≤ 32).
pub fn new_out_no() -> String {
    let tail: String = rand::thread_rng().sample_iter(&Alphanumeric).take(27).map(char::from).collect();
    format!("L{tail}")
}

/// What an owner's payouts go through: the apps its residents are paid in, the transfer scene
/// used when a cause names none, and the merchant that pays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Apps {
    pub oa_appid: Option<String>,
    pub mp_appid: Option<String>,
    pub transfer_scene_id: String,
    /// The merchant record that pays; `None`: the merchant configured by environment.
    pub mch_id: Option<String>,
}

/// How money leaves this deployment: the apps and merchant of each funding owner (from the
/// registry of records and the environment), and the dispatcher to wake once a payout is
/// committed. Built once when the app starts; cheap to clone.
#[derive(Clone)]
pub struct Payer {
    accounts: Accounts,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Payer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payer").finish_non_exhaustive()
    }
}

impl Payer {
    pub fn new(accounts: Accounts, wake: Arc<Notify>) -> Self {
        Self { accounts, wake }
    }

    /// What payouts funded by `owner_org_id` go through: the owner's (or its nearest
    /// ancestor's) apps and merchant, else the platform's fallback, else the environment's.
    /// `None` owner: the platform (withdrawals from the wallet). `conn` reads the owner's path
    /// the first time: the caller's transaction when it is in one.
    pub async fn apps_for(&self, conn: &mut sqlx::AnyConnection, owner_org_id: Option<i64>) -> DomainResult<Apps> {
        let accounts = &self.accounts;
        let path = match owner_org_id {
            Some(id) => accounts.owner_path(conn, id).await?.ok_or(DomainError::NotFound("org"))?,
            None => format!("/{PLATFORM_ORG_ID}/"),
        };
        let (oa_appid, mp_appid) = accounts.payout_apps(&path);
        let merchant = accounts.funding_merchant(&path);
        Ok(Apps {
            oa_appid,
            mp_appid,
            transfer_scene_id: merchant
                .as_ref()
                .map_or_else(|| accounts.default_transfer_scene().to_owned(), |m| m.transfer_scene_id.clone()),
            mch_id: merchant.filter(|m| m.source != Source::Environment).map(|m| m.mch_id.clone()),
        })
    }

    /// Refuses (409 `merchant_cannot_pay`, with the reason) when the merchant funding
    /// `owner_org_id` cannot pay on `channel` — or, while merchants exist, none pays for it. `what`
    /// names what would be paid ("the campaign", "the task's reward"). `conn` as for [`Self::apps_for`].
    pub async fn require_payable(
        &self,
        conn: &mut sqlx::AnyConnection,
        owner_org_id: i64,
        channel: PayoutChannel,
        what: &str,
    ) -> DomainResult<()> {
        let accounts = &self.accounts;
        if channel == PayoutChannel::Balance {
            return Ok(());
        }
        let path = accounts.owner_path(conn, owner_org_id).await?.ok_or(DomainError::NotFound("org"))?;
        let why = match accounts.funding_merchant(&path) {
            Some(m) => m.cannot_pay(channel),
            None if accounts.any_merchant() => Some(
                "no WeChat Pay merchant pays for this owner: register one for its property company, or a platform \
                 merchant with platform_fallback"
                    .to_owned(),
            ),
            // Nothing configured at all: payouts wait in the outbox, as they always have.
            None => None,
        };
        match why {
            Some(why) => Err(DomainError::conflict(
                ErrorCode::MerchantCannotPay,
                format!("{what} cannot be paid on {channel}: {why}"),
            )),
            None => Ok(()),
        }
    }

    /// Wakes the dispatcher now, for a payout made due again (a retry, a resident's check).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// What the dispatcher waits on.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }
}

/// A wake owed to the payout dispatcher by a transaction that queued payouts: sent only after
/// that transaction commits, so the dispatcher never looks before the rows are there.
#[must_use = "send the wake after the transaction commits"]
#[derive(Debug, Default)]
pub struct Wake(Option<Arc<Notify>>);

impl Wake {
    /// Both wakes in one.
    pub fn and(self, other: Wake) -> Wake {
        Wake(self.0.or(other.0))
    }

    /// Call after the commit.
    pub fn send(self) {
        if let Some(wake) = self.0 {
            wake.notify_one();
        }
    }
}

/// The identity a payout on `channel` is paid to, among a resident's WeChat identities: the
/// official account's openid for cash red packets, the mini-program's for transfers (each of the
/// configured app, when one is configured), nobody for the balance channel. `Err` with the
/// resident's way out when the channel needs an identity the resident does not have.
pub fn payee<'a>(
    apps: &Apps,
    channel: PayoutChannel,
    identities: &'a [IdentityRow],
) -> DomainResult<Option<&'a IdentityRow>> {
    let (kind, appid, hint) = match channel {
        PayoutChannel::Balance => return Ok(None),
        PayoutChannel::CashRedPacket => {
            (AppKind::Oa, apps.oa_appid.as_deref(), "follow the official account to receive cash red packets")
        }
        PayoutChannel::Transfer => {
            (AppKind::Mp, apps.mp_appid.as_deref(), "log in through the mini-program to receive transfers")
        }
    };
    identities
        .iter()
        .find(|i| i.app_kind == kind && appid.is_none_or(|a| a == i.appid))
        .map(Some)
        .ok_or_else(|| DomainError::conflict(ErrorCode::NoWechatIdentity, hint))
}

/// A payout to queue in the caller's transaction.
pub struct Queue<'a> {
    pub company_id: Option<i64>,
    pub owner_org_id: Option<i64>,
    pub resident_id: i64,
    pub channel: PayoutChannel,
    pub source: &'a str,
    pub source_ref: &'a str,
    pub amount_fen: i64,
    /// From [`payee`].
    pub payee: &'a IdentityRow,
    /// An empty `transfer_scene_id` takes the deployment's (`LINLI_PAY_TRANSFER_SCENE_ID`).
    pub display: &'a Display,
}

/// Queues payouts in the caller's transaction — every payout linli makes (grabs, task rewards,
/// withdrawals) is queued here: each gets its display texts, its first merchant number (stored
/// before any call to WeChat) and its row; the wake for the dispatcher is answered, to be sent
/// once the transaction has committed.
pub async fn queue(tx: &mut Tx, payer: &Payer, items: &[Queue<'_>], now: i64) -> DomainResult<(Vec<PayoutRow>, Wake)> {
    if items.is_empty() {
        return Ok((Vec::new(), Wake::default()));
    }
    // Each owner's route, looked up once per distinct owner.
    let mut routes: Vec<(Option<i64>, Apps)> = Vec::new();
    for q in items {
        if !routes.iter().any(|(o, _)| *o == q.owner_org_id) {
            routes.push((q.owner_org_id, payer.apps_for(tx, q.owner_org_id).await?));
        }
    }
    let route_of = |owner: Option<i64>| &routes.iter().find(|(o, _)| *o == owner).expect("every owner routed").1;
    let displays: Vec<String> = items
        .iter()
        .map(|q| {
            let scene = if q.display.transfer_scene_id.is_empty() {
                &route_of(q.owner_org_id).transfer_scene_id
            } else {
                &q.display.transfer_scene_id
            };
            let display = Display { transfer_scene_id: scene.clone(), ..q.display.clone() };
            serde_json::to_string(&display).unwrap_or_else(|_| "{}".into())
        })
        .collect();
    let numbers: Vec<String> = items.iter().map(|_| new_out_no()).collect();
    let rows: Vec<NewPayout<'_>> = items
        .iter()
        .zip(&displays)
        .zip(&numbers)
        .map(|((q, display), out_no)| NewPayout {
            company_id: q.company_id,
            owner_org_id: q.owner_org_id,
            resident_id: q.resident_id,
            channel: q.channel,
            source: q.source,
            source_ref: q.source_ref,
            amount_fen: q.amount_fen,
            appid: &q.payee.appid,
            openid: &q.payee.openid,
            out_no,
            display,
            mch_id: route_of(q.owner_org_id).mch_id.as_deref(),
        })
        .collect();
    let made = store::insert_many(tx, &rows, now).await?;
    Ok((made, Wake(Some(payer.wake.clone()))))
}

/// What one call (or query, or notification) about a payout's current number came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The money reached the resident.
    Succeeded { wechat_no: Option<String> },
    /// WeChat accepted it and is not done (a red packet not yet opened, a transfer in progress):
    /// query again at `recheck_at`.
    Submitted { wechat_no: Option<String>, recheck_at: i64 },
    /// A v3 transfer waits for the resident to confirm with `package_info`.
    Awaiting { wechat_no: Option<String>, package_info: Option<String> },
    /// Refused for a passing reason before anything was created (merchant balance, frequency):
    /// call again later with the same number.
    Refused { code: String, message: String },
    /// Refused for good before anything was created (bad openid, no permission…).
    Rejected { code: String, message: String },
    /// WeChat holds a bill under this number and reports it failed: a new number may be used.
    BillFailed { code: String, message: String },
    /// WeChat holds a bill under this number that ended without paying and will not be retried
    /// (an unopened red packet refunded, a transfer the resident declined or let lapse).
    Returned { code: String, message: String },
    /// Nobody can tell: query, then resend with the same number.
    Unknown { code: String, message: String },
}

impl Step {
    /// The code and message of a step that did not succeed.
    fn problem(&self) -> Option<(&str, &str)> {
        match self {
            Step::Refused { code, message }
            | Step::Rejected { code, message }
            | Step::BillFailed { code, message }
            | Step::Returned { code, message }
            | Step::Unknown { code, message } => Some((code, message)),
            Step::Succeeded { .. } | Step::Submitted { .. } | Step::Awaiting { .. } => None,
        }
    }
}

/// Refusals worth another call with the same number: nothing was created, and waiting helps.
pub fn is_passing(code: &str) -> bool {
    matches!(code, "NOTENOUGH" | "NOT_ENOUGH" | "FREQ_LIMIT" | "FREQUENCY_LIMITED" | "SYSTEMERROR" | "SYSTEM_ERROR")
}

fn backoff_ms(settings: &PayoutSettings, calls: i64) -> i64 {
    let exp = calls.clamp(0, 20) as u32;
    settings.backoff_ms.saturating_mul(1i64 << exp.min(20)).min(3_600_000)
}

/// The wait before looking again at a payout whose outcome is open: the backoff of its calls, or a
/// tenth of its age (queries do not count as calls, so a payout that stays unknown is looked at
/// less and less often), at most an hour.
fn retry_delay_ms(settings: &PayoutSettings, calls: i64, age_ms: i64) -> i64 {
    backoff_ms(settings, calls).max((age_ms / 10).min(3_600_000))
}

// ---------------------------------------------------------------------------------------------
// What WeChat Pay's answers mean for a payout. The dispatcher makes the calls and the
// notification endpoint reads the pushes; both hand what came back to these, and nothing else
// decides what an answer means.

/// When to look again at a payout WeChat accepted and has not finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recheck {
    /// A transfer in progress, a red packet still being sent or refunded.
    pub poll_at: i64,
    /// A red packet sent and not yet opened.
    pub receipt_at: i64,
}

impl Recheck {
    pub fn after(settings: &PayoutSettings, now: i64) -> Self {
        Self {
            poll_at: now.saturating_add(settings.poll_secs.saturating_mul(1000)),
            receipt_at: now.saturating_add(settings.receipt_check_secs.saturating_mul(1000)),
        }
    }
}

/// A cash red packet's send (`sendredpack`).
pub fn red_packet_sent(outcome: V2Outcome<RedPackSent>, at: Recheck) -> Step {
    match outcome {
        V2Outcome::Success(sent) => Step::Submitted { wechat_no: sent.send_listid, recheck_at: at.receipt_at },
        V2Outcome::Failed { code, message } => refusal(code, message),
        V2Outcome::Unknown { code, message } => Step::Unknown { code, message },
    }
}

/// A cash red packet WeChat found under the payout's number (`gethbinfo`).
pub fn red_packet_found(info: RedPackInfo, at: Recheck) -> Step {
    let wechat_no = info.detail_id;
    match info.status {
        RedPackStatus::Received => Step::Succeeded { wechat_no },
        RedPackStatus::Sent => Step::Submitted { wechat_no, recheck_at: at.receipt_at },
        RedPackStatus::Sending | RedPackStatus::Refunding => Step::Submitted { wechat_no, recheck_at: at.poll_at },
        RedPackStatus::Refunded => Step::Returned {
            code: "REFUND".into(),
            message: "the red packet was not opened in time and went back to the merchant".into(),
        },
        RedPackStatus::Failed => Step::BillFailed { code: "FAILED".into(), message: info.reason.unwrap_or_default() },
        RedPackStatus::Unknown(status) => {
            Step::Unknown { code: format!("STATUS_{status}"), message: "status not known to linli".into() }
        }
    }
}

/// A legacy enterprise payment's call (`promotion/transfers`): it pays at once or not at all.
pub fn legacy_transfer_sent(outcome: V2Outcome<TransferDone>) -> Step {
    match outcome {
        V2Outcome::Success(done) => Step::Succeeded { wechat_no: done.payment_no },
        V2Outcome::Failed { code, message } => refusal(code, message),
        V2Outcome::Unknown { code, message } => Step::Unknown { code, message },
    }
}

/// A legacy enterprise payment WeChat found under the payout's number (`gettransferinfo`).
pub fn legacy_transfer_found(info: TransferInfo, at: Recheck) -> Step {
    match info.status {
        TransferStatus::Success => Step::Succeeded { wechat_no: info.detail_id },
        TransferStatus::Processing => Step::Submitted { wechat_no: info.detail_id, recheck_at: at.poll_at },
        TransferStatus::Failed => Step::BillFailed { code: "FAILED".into(), message: info.reason.unwrap_or_default() },
        TransferStatus::Unknown(status) => {
            Step::Unknown { code: format!("STATUS_{status}"), message: "status not known to linli".into() }
        }
    }
}

/// A transfer bill's outcome (an answer to its creation, a query or a notification).
pub fn transfer_bill_step(outcome: TransferOutcome, at: Recheck) -> Step {
    match outcome {
        TransferOutcome::Succeeded(s) => Step::Succeeded { wechat_no: s.transfer_bill_no },
        TransferOutcome::AwaitingConfirmation(s) => {
            Step::Awaiting { wechat_no: s.transfer_bill_no, package_info: s.package_info }
        }
        TransferOutcome::InProgress(s) => Step::Submitted { wechat_no: s.transfer_bill_no, recheck_at: at.poll_at },
        TransferOutcome::Failed { code, message, snapshot: Some(s) } => {
            if s.state == TransferBillState::Cancelled {
                Step::Returned { code, message }
            } else {
                Step::BillFailed { code, message }
            }
        }
        TransferOutcome::Failed { code, message, snapshot: None } => refusal(code, message),
        TransferOutcome::Unknown { code, message } => Step::Unknown { code, message },
    }
}

/// A definite refusal of a call (nothing created): worth another call later, or final.
fn refusal(code: String, message: String) -> Step {
    if is_passing(&code) {
        Step::Refused { code, message }
    } else {
        Step::Rejected { code, message }
    }
}

/// A send that linli could not make: the request itself was unusable (final, nothing can have
/// been created under it), or the client could not be used this time (try again later).
pub fn not_sent(message: &str, invalid: bool) -> Step {
    if invalid {
        Step::Rejected { code: "LINLI_INVALID_REQUEST".into(), message: message.to_owned() }
    } else {
        Step::Refused { code: "LINLI_CLIENT".into(), message: message.to_owned() }
    }
}

/// A query that linli could not make. It says nothing about the payout — an earlier send under
/// the number may have paid — so the payout stays open and is looked at again; it never fails
/// (which would credit the amount to the wallet a second time).
pub fn query_not_made(message: &str) -> Step {
    Step::Unknown { code: "LINLI_QUERY_NOT_MADE".into(), message: message.to_owned() }
}

/// Where a payout ended up after [`record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    Applied(Box<PayoutRow>),
    /// Already settled, or on another number: nothing changed.
    Stale,
}

/// What came back about one of a payout's numbers, to be recorded.
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    /// The number the answer is about.
    pub out_no: &'a str,
    pub step: &'a Step,
    /// Whether a call to WeChat was made with the number (counted toward `max_calls`).
    pub called: bool,
    /// The event's name in the history: `send`, `query`, `notify`.
    pub kind: &'a str,
}

/// Applies a report about one of the payout's numbers.
pub async fn record(
    db: &Db,
    settings: &PayoutSettings,
    payout: &PayoutRow,
    report: Report<'_>,
) -> DomainResult<Recorded> {
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let recorded = record_in(&mut tx, settings, payout, report, now).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(recorded)
}

pub(crate) async fn record_in(
    tx: &mut Tx,
    settings: &PayoutSettings,
    payout: &PayoutRow,
    report: Report<'_>,
    now: i64,
) -> DomainResult<Recorded> {
    let Report { out_no, step, called, kind } = report;
    let calls = payout.calls + i64::from(called);
    let (code, message) = step.problem().unzip();
    let retry_at = now + retry_delay_ms(settings, calls, now - payout.created_at);
    let (state, next_at, wechat_no, package_info) = match step {
        Step::Succeeded { wechat_no } => (PayoutState::Succeeded, now, wechat_no.as_deref(), None),
        Step::Submitted { wechat_no, recheck_at } => (PayoutState::Submitted, *recheck_at, wechat_no.as_deref(), None),
        Step::Awaiting { wechat_no, package_info } => (
            PayoutState::AwaitingConfirmation,
            now + settings.poll_secs * 1000,
            wechat_no.as_deref(),
            package_info.as_deref(),
        ),
        Step::Refused { .. } if calls < settings.max_calls => (PayoutState::Pending, retry_at, None, None),
        Step::Unknown { .. } => (PayoutState::Unknown, retry_at, None, None),
        Step::BillFailed { .. } if payout.attempt < settings.max_numbers => {
            // WeChat says this number's bill failed: only now may a new number be used.
            let next_at = now + backoff_ms(settings, 0);
            let Some(row) = store::renumber(tx, payout.id, out_no, &new_out_no(), next_at, now, false).await? else {
                return Ok(Recorded::Stale);
            };
            let failed =
                NewEvent { payout_id: payout.id, kind, out_no, state: PayoutState::Failed, code, message, actor: None };
            store::insert_event(tx, &failed, now).await?;
            let renumbered = NewEvent {
                kind: "renumbered",
                out_no: &row.out_no,
                state: PayoutState::Pending,
                code: None,
                message: None,
                ..failed
            };
            store::insert_event(tx, &renumbered, now).await?;
            return Ok(Recorded::Applied(Box::new(row)));
        }
        Step::Refused { .. } | Step::Rejected { .. } | Step::BillFailed { .. } | Step::Returned { .. } => {
            (PayoutState::Failed, now, None, None)
        }
    };
    let transition = Transition { state, wechat_no, package_info, code, message, called, next_at, release: true };
    let Some(mut row) = store::transition(tx, payout.id, out_no, &transition, now).await? else {
        return Ok(Recorded::Stale);
    };
    if row.state == PayoutState::Failed {
        row = credit_failed(tx, row, now).await?;
    }
    let event = NewEvent { payout_id: payout.id, kind, out_no, state: row.state, code, message, actor: None };
    store::insert_event(tx, &event, now).await?;
    Ok(Recorded::Applied(Box::new(row)))
}

/// A payout that failed for good: its amount goes to the resident's wallet, once.
async fn credit_failed(tx: &mut Tx, row: PayoutRow, now: i64) -> DomainResult<PayoutRow> {
    let reference = format!("payout:{}:{}", row.id, row.attempt);
    let entry = NewEntry {
        kind: "refund",
        source: "payout_failed",
        reference: &reference,
        amount_fen: row.amount_fen,
        owner_org_id: row.owner_org_id,
        payout_id: Some(row.id),
        remark: Some("payout did not go through; credited to your balance"),
    };
    if wallet::entry_by_reference(tx, &reference).await?.is_none() {
        wallet::post(tx, row.resident_id, &entry, now).await?;
    }
    store::mark_credited(tx, row.id, now).await?;
    Ok(store::get(&mut **tx, row.id).await?.unwrap_or(row))
}

// ----- operators ---------------------------------------------------------------------------

async fn in_reach(db: &Db, actor: &Actor, payout: &PayoutRow) -> DomainResult<()> {
    // Withdrawals are owned by the platform org.
    let owner = payout.owner_org_id.unwrap_or(PLATFORM_ORG_ID);
    scope_of(db, actor, Some(owner)).await.map(|_| ()).map_err(crate::domain::not_found_as("payout"))
}

pub async fn get(db: &Db, actor: &Actor, id: i64) -> DomainResult<(PayoutRow, Vec<EventRow>)> {
    let p = store::get(db.reader(), id).await?.ok_or(DomainError::NotFound("payout"))?;
    in_reach(db, actor, &p).await?;
    let events = store::events(db.reader(), id).await?;
    Ok((p, events))
}

pub async fn list(
    db: &Db,
    actor: &Actor,
    mut filter: PayoutFilter,
    page: PageRequest,
) -> DomainResult<Page<PayoutRow>> {
    filter.scope_path = scope_of(db, actor, None).await?;
    Ok(store::list(db.reader(), &filter, page).await?)
}

/// An operator sends a failed payout again, under a new number. The amount it credited to the
/// resident's wallet is taken back first, so the money moves once; if the resident has already
/// spent or withdrawn it, the retry is refused.
pub async fn retry(db: &Db, payer: &Payer, actor: &Actor, id: i64) -> DomainResult<PayoutRow> {
    let before = store::get(db.reader(), id).await?.ok_or(DomainError::NotFound("payout"))?;
    in_reach(db, actor, &before).await?;
    actor.require(Role::Operator)?;
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let p = store::get(&mut *tx, id).await?.ok_or(DomainError::NotFound("payout"))?;
    if p.state != PayoutState::Failed {
        return Err(DomainError::conflict(
            ErrorCode::PayoutNotFailed,
            format!("the payout is {}; only a failed one can be retried", p.state),
        ));
    }
    if p.credited_at.is_some() {
        let reference = format!("payout_retry:{}:{}", p.id, p.attempt);
        let entry = NewEntry {
            kind: "adjust",
            source: "payout_retry",
            reference: &reference,
            amount_fen: -p.amount_fen,
            owner_org_id: p.owner_org_id,
            payout_id: Some(p.id),
            remark: Some("payout sent again; the balance credited for it is taken back"),
        };
        if wallet::post(&mut tx, p.resident_id, &entry, now).await?.is_none() {
            return Err(DomainError::conflict(
                ErrorCode::BalanceSpent,
                "the resident has already used the balance this payout credited; it cannot be sent again",
            ));
        }
    }
    let row = store::renumber(&mut tx, p.id, &p.out_no, &new_out_no(), now, now, true)
        .await?
        .ok_or(DomainError::NotFound("payout"))?;
    let event = NewEvent {
        payout_id: p.id,
        kind: "operator_retry",
        out_no: &row.out_no,
        state: PayoutState::Pending,
        code: None,
        message: None,
        actor: Some(&actor.label),
    };
    store::insert_event(&mut tx, &event, now).await?;
    let org = db::community::orgs::get(&mut *tx, p.owner_org_id.unwrap_or(PLATFORM_ORG_ID))
        .await?
        .ok_or(DomainError::NotFound("payout"))?;
    audit::record(&mut tx, actor, &org, "payout.retry", ("payout", p.id), (Some(&p), Some(&row))).await?;
    tx.commit().await.map_err(DbError::from)?;
    payer.wake();
    Ok(row)
}

// ----- residents ---------------------------------------------------------------------------

pub async fn mine(db: &Db, me: &ResidentActor, page: PageRequest) -> DomainResult<Vec<PayoutRow>> {
    Ok(store::mine(db.reader(), me.resident_id, page).await?)
}

pub async fn my_payout(db: &Db, me: &ResidentActor, id: i64) -> DomainResult<PayoutRow> {
    store::get(db.reader(), id)
        .await?
        .filter(|p| p.resident_id == me.resident_id)
        .ok_or(DomainError::NotFound("payout"))
}

/// Asks for a payout of mine to be looked at now (I confirmed a transfer in WeChat).
pub async fn check_now(db: &Db, payer: &Payer, me: &ResidentActor, id: i64) -> DomainResult<PayoutRow> {
    let mut tx = db.begin().await?;
    let p = store::poke(&mut tx, id, me.resident_id, db::now_ms()).await?;
    tx.commit().await.map_err(DbError::from)?;
    match p {
        Some(p) => {
            payer.wake();
            Ok(p)
        }
        None => my_payout(db, me, id).await,
    }
}

// ----- WeChat Pay notifications --------------------------------------------------------------

/// What applying a notification came to: WeChat gets 200 for all of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notified {
    Applied(Box<PayoutRow>),
    /// Seen before, or about a payout already settled or on another number.
    NoChange,
    /// About a merchant number linli never issued.
    UnknownNumber,
}

/// A verified, decrypted notification about a payout.
pub struct Notification<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    /// The merchant whose keys verified it.
    pub mch_id: &'a str,
    /// Whether that merchant is the one configured by environment, whose payouts are stored
    /// without a merchant (those queued before records existed).
    pub pays_unassigned: bool,
    pub out_no: &'a str,
    /// What WeChat says was moved.
    pub amount_fen: Option<i64>,
}

/// Applies a verified, decrypted notification: conditional like every record, so duplicates and
/// late arrivals change nothing. A notification verified with one merchant's keys never moves a
/// payout of another: to that merchant the number is unknown.
pub async fn apply_notification(
    db: &Db,
    settings: &PayoutSettings,
    n: Notification<'_>,
    step: Step,
) -> DomainResult<Notified> {
    let Notification { id: notification_id, event_type, mch_id, pays_unassigned, out_no, amount_fen } = n;
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let payout = match store::by_number(&mut *tx, out_no).await? {
        Some((payout_id, _)) => store::get(&mut *tx, payout_id).await?.filter(|p| match p.mch_id.as_deref() {
            Some(m) => m == mch_id,
            None => pays_unassigned,
        }),
        None => None,
    };
    // Claimed only once it is known to be this merchant's: a notification that arrived at the
    // wrong merchant's path does not use up its id for the right one.
    let Some(payout) = payout else {
        return Ok(Notified::UnknownNumber);
    };
    let first = store::claim_notification(&mut tx, notification_id, event_type, Some(out_no), now).await?;
    if !first {
        return Ok(Notified::NoChange);
    }
    let step = match amount_fen {
        Some(a) if a != payout.amount_fen => Step::Unknown {
            code: "AMOUNT_MISMATCH".into(),
            message: format!("the notification says {a} fen; the payout is {} fen", payout.amount_fen),
        },
        _ => step,
    };
    let report = Report { out_no, step: &step, called: false, kind: "notify" };
    let recorded = record_in(&mut tx, settings, &payout, report, now).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(match recorded {
        Recorded::Applied(row) => Notified::Applied(row),
        Recorded::Stale => Notified::NoChange,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_numbers_fit_every_channel() {
        let n = new_out_no();
        assert_eq!(n.len(), 28);
        assert!(n.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(n, new_out_no());
    }

    #[test]
    fn backoff_doubles_to_an_hour() {
        let s = PayoutSettings::default();
        assert_eq!(backoff_ms(&s, 0), 2000);
        assert_eq!(backoff_ms(&s, 3), 16_000);
        assert_eq!(backoff_ms(&s, 40), 3_600_000);
        // An unknown payout a day old is looked at hourly, not every two seconds.
        assert_eq!(retry_delay_ms(&s, 0, 86_400_000), 3_600_000);
        assert_eq!(retry_delay_ms(&s, 0, 10_000), 2000);
    }

    /// Which steps end a payout for good; a failed one credits the wallet.
    fn is_final(step: &Step) -> bool {
        matches!(step, Step::Succeeded { .. } | Step::Rejected { .. } | Step::BillFailed { .. } | Step::Returned { .. })
    }

    #[test]
    fn a_query_that_could_not_be_made_leaves_the_payout_open() {
        // Before, a red packet query that errored inside linli was "rejected": the payout failed
        // and its amount went to the wallet, although the packet sent earlier may have paid.
        let step = query_not_made("request could not be written as XML");
        assert!(!is_final(&step), "{step:?}");
        assert!(matches!(step, Step::Unknown { .. }));
    }

    #[test]
    fn answers_mean_one_thing_wherever_they_arrive() {
        let at = Recheck { poll_at: 10, receipt_at: 20 };
        let packet = |status: RedPackStatus| {
            red_packet_found(
                RedPackInfo {
                    mch_billno: "n".into(),
                    detail_id: Some("w".into()),
                    status,
                    send_type: None,
                    hb_type: None,
                    total_num: None,
                    total_amount: None,
                    reason: None,
                    send_time: None,
                    refund_time: None,
                    refund_amount: None,
                    wishing: None,
                },
                at,
            )
        };
        let w = Some("w".to_owned());
        assert_eq!(packet(RedPackStatus::Received), Step::Succeeded { wechat_no: w.clone() });
        assert_eq!(packet(RedPackStatus::Sent), Step::Submitted { wechat_no: w.clone(), recheck_at: 20 });
        assert_eq!(packet(RedPackStatus::Sending), Step::Submitted { wechat_no: w.clone(), recheck_at: 10 });
        assert!(matches!(packet(RedPackStatus::Refunded), Step::Returned { .. }));
        assert!(matches!(packet(RedPackStatus::Failed), Step::BillFailed { .. }));
        assert!(!is_final(&packet(RedPackStatus::Unknown("NEW".into()))));
        // A passing refusal is tried again with the same number; others are final.
        let refused = |code: &str| V2Outcome::<TransferDone>::Failed { code: code.into(), message: String::new() };
        assert!(matches!(legacy_transfer_sent(refused("NOTENOUGH")), Step::Refused { .. }));
        assert!(matches!(legacy_transfer_sent(refused("OPENID_ERROR")), Step::Rejected { .. }));
        let unknown = V2Outcome::<TransferDone>::Unknown { code: "SYSTEMERROR".into(), message: String::new() };
        assert!(!is_final(&legacy_transfer_sent(unknown)));
        let bill = TransferOutcome::Unknown { code: "NOT_FOUND".into(), message: String::new() };
        assert!(!is_final(&transfer_bill_step(bill, at)));
        // At i64's edge a recheck time saturates instead of wrapping into the past.
        let far = Recheck::after(&PayoutSettings { poll_secs: i64::MAX, ..PayoutSettings::default() }, i64::MAX);
        assert_eq!(far.poll_at, i64::MAX);
    }
}
