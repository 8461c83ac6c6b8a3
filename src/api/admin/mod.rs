//! The admin API (`/admin/v1`): the back office of property companies, communities and merchants.
//! Operations are thin: parse, call `domain/`, shape the answer.

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

pub use audit::AuditApi;
pub use bindings::BindingsApi;
pub use catalogue::CatalogueApi;
pub use coupons::CouponsApi;
pub use keys::ApiKeysApi;
pub use me::MeApi;
pub use orgs::OrgsApi;
pub use points::PointsApi;
pub(crate) use points::{kind_of as kind_of_view, source_of as source_of_view};
pub use redpackets::RedPacketsApi;
pub use rooms::RoomsApi;
pub use roster::RosterApi;
pub use tasks::TasksApi;

use poem_openapi::types::MaybeUndefined;
use poem_openapi::Object;
use time::OffsetDateTime;

use crate::db::PageRequest;
use crate::domain::import::ImportReport;

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 200;

/// A stored time (unix ms) as the API shows it: RFC 3339, UTC.
pub fn ts(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// An API time as stored.
pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

pub(crate) fn page_request(page: Option<u32>, page_size: Option<u32>) -> PageRequest {
    PageRequest {
        page: page.unwrap_or(1).max(1),
        page_size: page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE),
    }
}

/// `MaybeUndefined` as a patch: absent keeps, `null` clears, a value sets.
pub(crate) fn patch<T>(v: MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

/// Where a list page sits in the whole.
#[derive(Debug, Clone, Object)]
pub struct PageInfo {
    /// This page's number, from 1.
    pub page: u32,
    /// The most items a page holds.
    pub page_size: u32,
    /// How many items match the filters, over all pages.
    pub total: i64,
}

impl PageInfo {
    pub(crate) fn new(req: PageRequest, total: i64) -> Self {
        Self { page: req.page, page_size: req.page_size, total }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let t = ts(1_715_943_329_123);
        assert_eq!(ms(t), 1_715_943_329_123);
        assert_eq!(t.year(), 2024);
    }

    #[test]
    fn pages_are_clamped() {
        let p = page_request(Some(0), Some(10_000));
        assert_eq!((p.page, p.page_size), (1, MAX_PAGE_SIZE));
        let p = page_request(None, None);
        assert_eq!((p.page, p.page_size), (1, DEFAULT_PAGE_SIZE));
    }
}
