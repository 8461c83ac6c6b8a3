//! Money: red packets (campaigns, shares, grabs and their writers), payouts to WeChat Pay (queue,
//! state machine, what each answer means), the wallet and the daily reconciliation.

pub mod gates;
pub mod grabs;
pub mod hot_campaigns;
pub mod payouts;
pub mod reconcile;
pub mod redpackets;
pub mod split;
pub mod wallet;
