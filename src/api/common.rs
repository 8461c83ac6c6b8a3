//! What every API group shares: times as the API shows them, paging, patches.

use poem_openapi::types::MaybeUndefined;
use poem_openapi::Object;
use time::OffsetDateTime;

use crate::db::PageRequest;

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
