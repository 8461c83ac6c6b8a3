//! The instance heartbeat (PostgreSQL): every instance writes its row every beat and counts the
//! instances heard from in the last three beats; the rate limits kept in memory are divided by
//! that count (see `crate::api::limits`). It also forgets shared rate buckets that have refilled.
//!
//! An instance that stops cleanly removes its row at once; one that crashes drops out of the
//! others' count within three beats. Instances' clocks must agree to well within a beat.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;

use crate::api::limits::Limiter;
use crate::db::{self, Db, DbResult};

/// Beats within which an instance counts as live.
const LIVE_BEATS: i64 = 3;
/// An instance silent this long is removed from the table.
const FORGET_AFTER_MS: i64 = 3_600_000;

#[derive(Clone)]
pub struct Heartbeat {
    db: Db,
    limiter: Arc<Limiter>,
    instance: String,
    every: Duration,
}

impl Heartbeat {
    /// A heartbeat under a fresh random instance id.
    pub fn new(db: Db, limiter: Arc<Limiter>, every: Duration) -> Self {
        let mut id = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut id);
        Self { db, limiter, instance: hex::encode(id), every }
    }

    /// One beat at `now`: writes this instance's row and tells the limiter how many are live.
    pub async fn beat(&self, now: i64) -> DbResult<u32> {
        let every_ms = self.every.as_millis() as i64;
        let live = db::limits::heartbeat(
            &self.db,
            &self.instance,
            now,
            now - LIVE_BEATS * every_ms,
            now - FORGET_AFTER_MS.max(LIVE_BEATS * every_ms),
        )
        .await?;
        let before = self.limiter.live_instances();
        self.limiter.set_live_instances(live);
        if live != before {
            tracing::info!(live, "live instances changed; rate limits divided among them");
        }
        db::limits::forget_idle_buckets(&self.db, now - self.limiter.shared_fill_ms().max(60_000)).await?;
        Ok(live)
    }

    /// Removes this instance's row, so the others stop counting it at their next beat.
    pub async fn leave(&self) {
        if let Err(e) = db::limits::leave(&self.db, &self.instance).await {
            tracing::warn!(error = %e, "could not remove this instance's heartbeat; it lapses by itself");
        }
    }

    /// Beats every interval until the task is dropped or aborted.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.beat(db::now_ms()).await {
                    tracing::warn!(error = %e, "instance heartbeat failed; will retry");
                }
            }
        })
    }
}
