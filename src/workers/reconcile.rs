//! The daily reconciliation: once WeChat Pay's bill for yesterday is out (WeChat produces it in the
//! morning, Beijing time), yesterday's payouts are compared with it and the report stored. Checked
//! every hour; a day already reconciled is not run again by the job (operators can, from the API).

use std::time::Duration;

use time::UtcOffset;

use crate::db::{self, Db};
use crate::domain::money::reconcile;
use crate::wechat::pay::clients::PayClients;

/// Bills are complete by this hour (Beijing time).
const BILL_READY_HOUR: u8 = 10;

pub fn spawn(db: Db, pay: PayClients) -> tokio::task::JoinHandle<()> {
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
            match reconcile::has_run(&db, day).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reconciliation check failed; will retry");
                    continue;
                }
            }
            match reconcile::run(&db, Some(&pay), day).await {
                Ok(run) => {
                    tracing::info!(bill_date = %run.bill_date, state = %run.state, checked = run.checked, at = db::now_ms(), "reconciliation stored")
                }
                Err(e) => tracing::warn!(error = %e, "reconciliation failed; will retry"),
            }
        }
    })
}
