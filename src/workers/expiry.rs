//! Expiry: unused coupons whose validity has ended become `expired`, on a timer, so figures and
//! residents' lists show it without waiting for someone to try to use them.

use std::time::Duration;

use crate::db::{self, Db, DbResult};

/// One round: expires every coupon due at `now`; answers how many.
pub async fn run_once(db: &Db, now: i64) -> DbResult<u64> {
    db::coupons::expire_due(db.writer(), now).await
}

/// Runs a round every `every` until the task is dropped or aborted.
pub fn spawn(db: Db, every: Duration) -> tokio::task::JoinHandle<()> {
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
        }
    })
}
