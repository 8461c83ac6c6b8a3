//! Expiry: unused coupons whose validity has ended become `expired`, on a timer, so figures and
//! residents' lists show it without waiting for someone to try to use them. The same round
//! forgets the official account's push URLs that are too old to be accepted again.

use std::time::Duration;

use crate::db::{self, Db, DbResult};

/// One round: expires every coupon due at `now`; answers how many.
pub async fn run_once(db: &Db, now: i64) -> DbResult<u64> {
    db::offers::coupons::expire_due(db.writer(), now).await
}

/// Forgets the (timestamp, nonce) bindings of push URLs dated more than twice the timestamp
/// window before `now_ms`: the window alone refuses any push under them (the second window
/// leaves room for instances whose clocks differ). Answers how many went.
pub async fn prune_push_nonces(db: &Db, now_ms: i64, window_secs: u64) -> DbResult<u64> {
    let window = i64::try_from(window_secs).unwrap_or(i64::MAX);
    let before = (now_ms / 1000).saturating_sub(window.saturating_mul(2));
    db::wechat::prune_nonces(db.writer(), before).await
}

/// Runs a round every `every` until the task is dropped or aborted; `push_window_secs` is the
/// official account's timestamp window.
pub fn spawn(db: Db, every: Duration, push_window_secs: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match run_once(&db, db::now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "coupons expired"),
                Err(e) => tracing::warn!(error = %e, "coupon expiry round failed; will retry"),
            }
            match prune_push_nonces(&db, db::now_ms(), push_window_secs).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(pruned = n, "old push URLs forgotten"),
                Err(e) => tracing::warn!(error = %e, "pruning old push URLs failed; will retry"),
            }
        }
    })
}
