//! The payout dispatcher: leases due payouts, calls WeChat Pay outside any transaction, and
//! records what came back through [`payouts::record`]. What an answer means for the payout is
//! decided in [`crate::domain::money::payouts`] (`red_packet_found`, `transfer_bill_step`, …); this
//! module only chooses the next call.
//!
//! Several instances may run it against one PostgreSQL database: a payout is leased to one of them
//! at a time (`FOR UPDATE SKIP LOCKED` and a lease time), and even a call made twice — a lease that
//! ran out mid-call — is harmless, because every call with one merchant number is re-entrant at
//! WeChat and every record is conditional on the payout still being open on that number.
//!
//! What each state does:
//! * `pending`: send (sendredpack, transfer-bills create, or the legacy transfer) with the stored
//!   number — also after a crash between a call and its record: the resend gets the same answer.
//! * `submitted`, `unknown`, `awaiting_confirmation`: query by the number. A bill WeChat does not
//!   know (`NOT_FOUND`) is sent again with the same number; one it reports failed gets a new
//!   number ([`Step::BillFailed`]); a waiting transfer whose `package_info` we never received is
//!   created again with the same number, which answers it again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify, Semaphore};

use crate::config::PayoutSettings;
use crate::db::accounts::merchants::TransferApi;
use crate::db::money::payouts::{self as store, PayoutChannel, PayoutRow, PayoutState};
use crate::db::{self, Db, DbResult};
use crate::domain::accounts::registry::{Accounts, Merchant};
use crate::domain::money::payouts::{self, Display, Recheck, Recorded, Report, Step};
use crate::wechat::pay::v2::{CheckName, SendRedPack, Transfer, V2Client, V2Query};
use crate::wechat::pay::v3::transfer_bills::{CreateTransferBill, TransferOutcome, TransferSceneReportInfo};
use crate::wechat::pay::v3::{V3Client, V3Error};

/// Spaces calls to WeChat Pay so they stay under a rate (one per merchant).
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    pub fn per_second(rate: u32) -> Self {
        Self { interval: Duration::from_secs(1) / rate.max(1), next: Mutex::new(Instant::now()) }
    }

    /// Waits for this call's turn.
    pub async fn acquire(&self) {
        let wait = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// One instance's dispatcher: each payout goes through the merchant it was queued for.
pub struct Dispatcher {
    db: Db,
    accounts: Accounts,
    settings: PayoutSettings,
    owner: String,
    /// One rate per merchant, with the calls a second it was made for (a record's rate can change).
    limiters: std::sync::Mutex<HashMap<String, (u32, Arc<RateLimiter>)>>,
}

/// The merchant a payout goes through, and its rate.
struct Through {
    merchant: Arc<Merchant>,
    limiter: Arc<RateLimiter>,
}

/// What a decision came to: the step, whether a call with the number was made, the event name.
type Decision = (Step, bool, &'static str);

fn now_ms() -> i64 {
    db::now_ms()
}

impl Dispatcher {
    pub fn new(db: Db, accounts: Accounts, settings: PayoutSettings) -> Self {
        let owner = format!("{}-{}", std::process::id(), payouts::new_out_no());
        Self { db, accounts, settings, owner, limiters: std::sync::Mutex::new(HashMap::new()) }
    }

    fn through(&self, p: &PayoutRow) -> Option<Through> {
        let merchant = self.accounts.merchant(p.mch_id.as_deref())?;
        let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        let entry = limiters
            .entry(merchant.mch_id.clone())
            .or_insert_with(|| (merchant.rate_per_sec, Arc::new(RateLimiter::per_second(merchant.rate_per_sec))));
        if entry.0 != merchant.rate_per_sec {
            *entry = (merchant.rate_per_sec, Arc::new(RateLimiter::per_second(merchant.rate_per_sec)));
        }
        let limiter = Arc::clone(&entry.1);
        Some(Through { merchant, limiter })
    }

    /// Runs until the task is aborted: a round whenever woken, or every tick.
    pub fn spawn(self: Arc<Self>, wake: Arc<Notify>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let busy = match self.run_once().await {
                    Ok(n) => n as i64 >= self.settings.batch,
                    Err(e) => {
                        tracing::warn!(error = %e, "payout round failed; will retry");
                        false
                    }
                };
                if !busy {
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(self.settings.tick) => {}
                    }
                }
            }
        })
    }

    /// Leases the due payouts (one batch) and works them, a few at a time. Answers how many.
    pub async fn run_once(self: &Arc<Self>) -> DbResult<usize> {
        let now = now_ms();
        let lease_until = now + self.settings.lease_secs * 1000;
        let due =
            store::claim_due(self.db.writer(), self.db.engine(), &self.owner, now, lease_until, self.settings.batch)
                .await?;
        let n = due.len();
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut set = tokio::task::JoinSet::new();
        for payout in due {
            let this = Arc::clone(self);
            let permit = Arc::clone(&permits).acquire_owned().await.expect("semaphore is never closed");
            set.spawn(async move {
                this.work(payout).await;
                drop(permit);
            });
        }
        while set.join_next().await.is_some() {}
        Ok(n)
    }

    /// Decides one leased payout's next step and records it.
    async fn work(&self, p: PayoutRow) {
        let Some((step, called, kind)) = self.decide(&p).await else {
            let _ =
                store::release(self.db.writer(), p.id, &self.owner, now_ms() + self.settings.poll_secs * 1000).await;
            return;
        };
        let report = Report { out_no: &p.out_no, step: &step, called, kind };
        match payouts::record(&self.db, &self.settings, &p, report).await {
            Ok(Recorded::Applied(row)) => {
                tracing::info!(payout = p.id, out_no = %p.out_no, state = %row.state, "payout step recorded");
            }
            Ok(Recorded::Stale) => {
                let _ = store::release(self.db.writer(), p.id, &self.owner, now_ms()).await;
            }
            // The lease runs out and the payout is worked again: the call is re-entrant.
            Err(e) => tracing::warn!(payout = p.id, error = %e, "payout step not recorded; will redo"),
        }
    }

    async fn decide(&self, p: &PayoutRow) -> Option<Decision> {
        let Some(t) = self.through(p) else {
            tracing::warn!(payout = p.id, mch_id = ?p.mch_id, "the payout's merchant is not configured; payout waits");
            return None;
        };
        let pay = &t.merchant.clients;
        let limiter = &t.limiter;
        match p.channel {
            PayoutChannel::Balance => {
                // The balance channel credits the wallet in the grab's own transaction and never
                // queues a payout; a row that says otherwise is left alone, loudly.
                tracing::error!(payout = p.id, "a payout on the balance channel; nothing to send");
                None
            }
            PayoutChannel::CashRedPacket => match &pay.v2 {
                Some(v2) => Some(self.red_packet(v2, limiter, p).await),
                None => {
                    tracing::warn!(payout = p.id, "cash red packets need the WeChat Pay v2 key; payout waits");
                    None
                }
            },
            PayoutChannel::Transfer if t.merchant.transfer_api == TransferApi::V2 => match &pay.v2 {
                Some(v2) => Some(self.legacy_transfer(v2, limiter, p).await),
                None => {
                    tracing::warn!(payout = p.id, "legacy transfers need the WeChat Pay v2 key; payout waits");
                    None
                }
            },
            PayoutChannel::Transfer => match &pay.v3 {
                Some(v3) => Some(self.transfer_bill(v3, limiter, t.merchant.notify_url.clone(), p).await),
                None => {
                    tracing::warn!(payout = p.id, "transfers need the WeChat Pay v3 keys; payout waits");
                    None
                }
            },
        }
    }

    fn display(p: &PayoutRow) -> Display {
        serde_json::from_str(&p.display).unwrap_or_default()
    }

    // ----- cash red packets (v2) -----------------------------------------------------------

    async fn red_packet(&self, v2: &V2Client, limiter: &RateLimiter, p: &PayoutRow) -> Decision {
        if p.state == PayoutState::Pending {
            return self.send_red_packet(v2, limiter, p).await;
        }
        limiter.acquire().await;
        match v2.query_red_pack(&p.out_no, &p.appid).await {
            Err(e) => (payouts::query_not_made(&e.to_string()), false, "query"),
            Ok(V2Query::Found(info)) => (payouts::red_packet_found(info, self.recheck()), false, "query"),
            // Not created (or not visible yet): sending again with the same number is safe.
            Ok(V2Query::Unknown { code, .. }) if code == "NOT_FOUND" && p.state != PayoutState::Submitted => {
                self.send_red_packet(v2, limiter, p).await
            }
            Ok(V2Query::Unknown { code, message }) => (Step::Unknown { code, message }, false, "query"),
        }
    }

    async fn send_red_packet(&self, v2: &V2Client, limiter: &RateLimiter, p: &PayoutRow) -> Decision {
        let d = Self::display(p);
        let request = SendRedPack {
            mch_billno: p.out_no.clone(),
            wxappid: p.appid.clone(),
            send_name: d.send_name,
            re_openid: p.openid.clone(),
            total_amount: p.amount_fen.max(0) as u64,
            wishing: d.wishing,
            client_ip: self.settings.client_ip.clone(),
            act_name: d.act_name,
            remark: d.remark,
            scene_id: None,
            risk_info: None,
            consume_mch_id: None,
        };
        limiter.acquire().await;
        let step = match v2.send_red_pack(&request).await {
            Err(e) => payouts::not_sent(&e.to_string(), is_invalid_v2(&e)),
            Ok(outcome) => payouts::red_packet_sent(outcome, self.recheck()),
        };
        (step, true, "send")
    }

    // ----- legacy enterprise payment (v2) --------------------------------------------------

    async fn legacy_transfer(&self, v2: &V2Client, limiter: &RateLimiter, p: &PayoutRow) -> Decision {
        if p.state == PayoutState::Pending {
            return self.send_legacy_transfer(v2, limiter, p).await;
        }
        limiter.acquire().await;
        match v2.query_transfer(&p.out_no, &p.appid).await {
            Err(e) => (payouts::query_not_made(&e.to_string()), false, "query"),
            Ok(V2Query::Found(info)) => (payouts::legacy_transfer_found(info, self.recheck()), false, "query"),
            Ok(V2Query::Unknown { code, .. }) if code == "NOT_FOUND" => self.send_legacy_transfer(v2, limiter, p).await,
            Ok(V2Query::Unknown { code, message }) => (Step::Unknown { code, message }, false, "query"),
        }
    }

    async fn send_legacy_transfer(&self, v2: &V2Client, limiter: &RateLimiter, p: &PayoutRow) -> Decision {
        let d = Self::display(p);
        let request = Transfer {
            partner_trade_no: p.out_no.clone(),
            mch_appid: p.appid.clone(),
            openid: p.openid.clone(),
            check_name: CheckName::NoCheck,
            amount: p.amount_fen.max(0) as u64,
            desc: if d.transfer_remark.is_empty() { d.act_name } else { d.transfer_remark },
            spbill_create_ip: self.settings.client_ip.clone(),
            device_info: None,
        };
        limiter.acquire().await;
        let step = match v2.transfer(&request).await {
            Err(e) => payouts::not_sent(&e.to_string(), is_invalid_v2(&e)),
            Ok(outcome) => payouts::legacy_transfer_sent(outcome),
        };
        (step, true, "send")
    }

    // ----- transfer bills (v3) -------------------------------------------------------------

    async fn transfer_bill(
        &self,
        v3: &V3Client,
        limiter: &RateLimiter,
        notify: Option<String>,
        p: &PayoutRow,
    ) -> Decision {
        if p.state == PayoutState::Pending {
            return self.create_bill(v3, limiter, notify, p).await;
        }
        limiter.acquire().await;
        match v3.query_transfer_bill(&p.out_no).await {
            Err(e) => (payouts::query_not_made(&e.to_string()), false, "query"),
            Ok(TransferOutcome::AwaitingConfirmation(_)) if p.package_info.is_none() => {
                self.create_bill(v3, limiter, notify, p).await
            }
            Ok(TransferOutcome::Unknown { code, .. }) if code == "NOT_FOUND" => {
                self.create_bill(v3, limiter, notify, p).await
            }
            Ok(outcome) => (payouts::transfer_bill_step(outcome, self.recheck()), false, "query"),
        }
    }

    async fn create_bill(
        &self,
        v3: &V3Client,
        limiter: &RateLimiter,
        notify: Option<String>,
        p: &PayoutRow,
    ) -> Decision {
        let d = Self::display(p);
        let remark = if d.transfer_remark.is_empty() { d.act_name.clone() } else { d.transfer_remark.clone() };
        let request = CreateTransferBill {
            appid: p.appid.clone(),
            out_bill_no: p.out_no.clone(),
            transfer_scene_id: d.transfer_scene_id.clone(),
            openid: p.openid.clone(),
            user_name: None,
            transfer_amount: p.amount_fen.max(0) as u64,
            transfer_remark: remark.chars().take(32).collect(),
            notify_url: notify,
            user_recv_perception: Some("现金奖励".into()),
            transfer_scene_report_infos: vec![
                TransferSceneReportInfo { info_type: "活动名称".into(), info_content: d.act_name.clone() },
                TransferSceneReportInfo { info_type: "奖励说明".into(), info_content: remark },
            ],
        };
        limiter.acquire().await;
        match v3.create_transfer_bill(&request).await {
            Err(e) => (payouts::not_sent(&e.to_string(), matches!(e, V3Error::InvalidRequest(_))), true, "send"),
            Ok(outcome) => (payouts::transfer_bill_step(outcome, self.recheck()), true, "send"),
        }
    }

    fn recheck(&self) -> Recheck {
        Recheck::after(&self.settings, now_ms())
    }
}

fn is_invalid_v2(e: &crate::wechat::pay::v2::V2Error) -> bool {
    matches!(e, crate::wechat::pay::v2::V2Error::InvalidRequest(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_rate_limiter_spaces_calls() {
        let limiter = RateLimiter::per_second(100);
        let start = Instant::now();
        for _ in 0..11 {
            limiter.acquire().await;
        }
        // Ten gaps of 10 ms at least; the first call goes at once.
        assert!(start.elapsed() >= Duration::from_millis(100), "{:?}", start.elapsed());
    }
}
