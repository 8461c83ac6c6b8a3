//! Sends the mini-program subscribe messages queued in `mp_messages` (task rewards), outside any
//! transaction. A message is taken by one instance at a time (its due time is pushed ahead as it
//! is taken); a refusal WeChat will not change its mind about (the resident has no subscription
//! left, 43101; a bad openid or template) fails it for good; anything else is retried with
//! backoff, five times at most.

use std::time::Duration;

use crate::db::tasks::{self as store, MessageRow};
use crate::db::{self, Db, DbResult};
use crate::domain::accounts::registry::Accounts;
use crate::domain::tasks::REWARD_MESSAGE;
use crate::wechat::api::{WechatClient, WechatError};

const MAX_ATTEMPTS: i64 = 5;
const LEASE_MS: i64 = 60_000;

/// Where messages go: each through the mini-program its resident is in (a record's or the
/// environment's), with that mini-program's template of the message kind.
#[derive(Clone)]
pub struct Sender {
    pub db: Db,
    pub wechat: WechatClient,
    pub accounts: Accounts,
}

impl Sender {
    /// One round: sends every due message; answers how many were taken.
    pub async fn run_once(&self) -> DbResult<usize> {
        let now = db::now_ms();
        let due = store::claim_messages(self.db.writer(), now, LEASE_MS, 50).await?;
        for m in &due {
            self.send(m).await?;
        }
        Ok(due.len())
    }

    async fn send(&self, m: &MessageRow) -> DbResult<()> {
        let now = db::now_ms();
        let Some(mp) = self.accounts.mini_program(Some(&m.appid)) else {
            // Not configured (yet: a record made on another instance arrives within seconds).
            let state = if m.attempts >= MAX_ATTEMPTS { "failed" } else { "pending" };
            let why = "the resident's mini-program is not configured here";
            let next_at = now + 1000 * (1 << m.attempts.clamp(0, 10));
            return store::message_done(self.db.writer(), m.id, state, Some(why), next_at, now).await;
        };
        let template = match m.template_id.as_str() {
            REWARD_MESSAGE => mp.task_template_id.clone(),
            other => Some(other.to_owned()),
        };
        let Some(template) = template else {
            let why = "the resident's mini-program has no template for this message";
            return store::message_done(self.db.writer(), m.id, "failed", Some(why), now, now).await;
        };
        let data: serde_json::Value = serde_json::from_str(&m.data).unwrap_or_default();
        let app = mp.credentials();
        match self.wechat.send_subscribe_message(&app, &m.openid, &template, m.page.as_deref(), &data).await {
            Ok(()) => store::message_done(self.db.writer(), m.id, "sent", None, now, now).await,
            Err(e) => {
                let final_refusal = matches!(e.errcode(), Some(43101 | 40003 | 40037 | 47003));
                let state = if final_refusal || m.attempts >= MAX_ATTEMPTS { "failed" } else { "pending" };
                let next_at = now + 1000 * (1 << m.attempts.clamp(0, 10));
                tracing::info!(message = m.id, error = %e, state, "subscribe message not sent");
                store::message_done(self.db.writer(), m.id, state, Some(&short(&e)), next_at, now).await
            }
        }
    }

    pub fn spawn(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.run_once().await {
                    tracing::warn!(error = %e, "subscribe messages round failed; will retry");
                }
            }
        })
    }
}

fn short(e: &WechatError) -> String {
    e.to_string().chars().take(200).collect()
}
