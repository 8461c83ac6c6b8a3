//! Keeps every merchant's WeChat Pay platform certificates fresh on their schedule: the merchant
//! configured by environment and every merchant record that verifies with certificates (a
//! merchant on the WeChat Pay public key alone has nothing to refresh). One loop for all of them,
//! so a record added or changed is looked after from the next tick on.

use crate::domain::accounts::registry::Accounts;
use crate::wechat::pay::v3::certificates::REFRESHER_TICK;
use crate::wechat::pay::v3::unix_now;

pub fn spawn(accounts: Accounts) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for m in accounts.merchants() {
                if let Some(v3) = &m.clients.v3 {
                    if v3.verify_with().uses_certificates() {
                        v3.refresh_certificates_if_due(unix_now()).await;
                    }
                }
            }
            tokio::time::sleep(REFRESHER_TICK).await;
        }
    })
}
