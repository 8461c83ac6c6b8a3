//! What every request handler shares: the services of one instance, built once by
//! [`crate::app::Application::build`] and handed to the handlers as one value.

use std::sync::Arc;

use crate::config::Settings;
use crate::db::group::GroupCommit;
use crate::db::Db;
use crate::domain::accounts::registry::Accounts;
use crate::domain::community::sessions::SessionCache;
use crate::domain::loyalty::checkin_writer::CheckinWriter;
use crate::domain::money::gates::Gates;
use crate::domain::money::hot_campaigns::HotCampaigns;
use crate::domain::money::payouts::Payer;
use crate::telemetry::Metrics;
use crate::wechat::api::WechatClient;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub wechat: WechatClient,
    /// The WeChat apps and Pay merchants this instance routes by: records and the environment's.
    pub accounts: Accounts,
    /// Sold-out red packets, answered without touching storage.
    pub gates: Arc<Gates>,
    /// How payouts leave: the apps they go through, and the wake of the payout dispatcher.
    pub payer: Payer,
    /// Commits hot writes (coupon claims, check-ins) in groups.
    pub group: GroupCommit,
    /// The writers of red packets being grabbed, one per campaign, committing grabs in groups.
    pub hot: HotCampaigns,
    /// The writer of official-account check-ins, committing them in groups.
    pub checkins: CheckinWriter,
    /// The live residents' sessions this instance knows.
    pub sessions: Arc<SessionCache>,
    /// Abuse limits per resident, API key and login IP.
    pub limiter: Arc<crate::api::limits::Limiter>,
}
