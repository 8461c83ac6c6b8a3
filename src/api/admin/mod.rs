//! The admin API (`/admin/v1`): the back office of property companies, communities and merchants.
//! Operations are thin: parse, call `domain/`, shape the answer.

mod accounts;
mod audit;
pub(crate) mod bindings;
pub(crate) mod catalogue;
pub(crate) mod coupons;
mod keys;
mod me;
mod orgs;
pub(crate) mod points;
pub(crate) mod redpackets;
mod rooms;
pub(crate) mod roster;
pub(crate) mod tasks;

pub use accounts::AccountsApi;
pub use audit::AuditApi;
pub use bindings::BindingsApi;
pub use catalogue::CatalogueApi;
pub use coupons::CouponsApi;
pub use keys::ApiKeysApi;
pub use me::MeApi;
pub use orgs::OrgsApi;
pub use points::PointsApi;
pub use redpackets::RedPacketsApi;
pub use rooms::RoomsApi;
pub use roster::RosterApi;
pub use tasks::TasksApi;

use poem_openapi::Object;

pub(crate) use crate::api::common::{ms, page_request, patch, ts, PageInfo};
use crate::domain::community::import::ImportReport;

/// A row an import did not take, and why.
#[derive(Debug, Clone, Object)]
pub struct RejectedRowView {
    /// The row's number in what was sent: its 1-based index in the JSON array, or its line in the
    /// CSV file (the header is line 1).
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
}

/// What an import did. Importing the same rows again reports them all unchanged.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ImportReport")]
pub struct ImportReportView {
    /// Rows received.
    pub received: u64,
    /// Rows that created something new.
    pub created: u64,
    /// Rows that changed an existing entry.
    pub updated: u64,
    /// Rows that matched what was already there.
    pub unchanged: u64,
    /// Rows not imported, each with its reason.
    pub rejected: Vec<RejectedRowView>,
}

impl From<ImportReport> for ImportReportView {
    fn from(r: ImportReport) -> Self {
        Self {
            received: r.received as u64,
            created: r.created as u64,
            updated: r.updated as u64,
            unchanged: r.unchanged as u64,
            rejected: r
                .rejected
                .into_iter()
                .map(|x| RejectedRowView { line: x.line as u64, reason: x.reason })
                .collect(),
        }
    }
}
