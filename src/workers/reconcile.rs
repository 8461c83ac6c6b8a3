//! The daily reconciliation: once WeChat Pay's bills for yesterday are out (WeChat produces them in
//! the morning, Beijing time), each merchant's payouts of yesterday are compared with its bill and
//! the report stored. Checked every hour; a merchant's day already reconciled is not run again by
//! the job (operators can, from the API).

use std::time::Duration;

use time::UtcOffset;

use crate::db::{self, Db};
use crate::domain::accounts::registry::Accounts;
use crate::domain::money::reconcile;

/// Bills are complete by this hour (Beijing time).
const BILL_READY_HOUR: u8 = 10;

pub fn spawn(db: Db, accounts: Accounts) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let hour = time::OffsetDateTime::now_utc()
                .to_offset(UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC))
                .hour();
            if hour < BILL_READY_HOUR {
                continue;
            }
            let day = reconcile::yesterday();
            for result in reconcile::run_all(&db, &accounts, day).await {
                match result {
                    Ok(run) => tracing::info!(
                        mch_id = ?run.mch_id, bill_date = %run.bill_date, state = %run.state, checked = run.checked,
                        at = db::now_ms(), "reconciliation stored"
                    ),
                    Err(e) => tracing::warn!(error = %e, "reconciliation failed; will retry"),
                }
            }
        }
    })
}
