//! Rules and invariants, one module per concept, grouped by bounded context: community, loyalty,
//! money, offers, operators, retail and tasks (each context's head says what it holds). No HTTP
//! here: callers get typed results and [`DomainError`]s, and `api/` decides how they look on the
//! wire. Contexts call each other's modules by full path (`crate::domain::money::payouts`);
//! tests/api/layout.rs fails on a cycle between modules.

pub mod accounts;
pub mod community;
pub mod loyalty;
pub mod money;
pub mod offers;
pub mod operators;
pub mod retail;
pub mod tasks;

use crate::codes::ErrorCode;
use crate::db::DbError;

/// Why a domain operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Missing, or outside the caller's org subtree: the two look the same so ids don't leak.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Inside the caller's subtree, but its role does not allow the action.
    #[error("{0}")]
    Forbidden(String),
    /// The action clashes with the current state (a duplicate, an archived org…).
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    /// The input is well-formed but breaks a rule.
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    /// The caller's credentials (a login code, a refresh token) are not good.
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many attempts; try again after this many seconds.
    #[error("too many attempts; retry in {0} s")]
    RateLimited(u64),
    /// WeChat did not give an answer we can use; retrying may help.
    #[error("{0}")]
    Upstream(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl DomainError {
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;

/// An `Idempotency-Key` sent again with another request.
pub(crate) fn idempotency_key_reused() -> DomainError {
    DomainError::invalid(
        ErrorCode::IdempotencyKeyReused,
        "this Idempotency-Key was used for another request; use a new key for a new request",
    )
}

/// The start of the Beijing (UTC+8) day `at_ms` falls in, unix ms: daily limits are Beijing days.
pub(crate) fn beijing_day_start(at_ms: i64) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    const OFFSET_MS: i64 = 8 * 3_600_000;
    (at_ms + OFFSET_MS).div_euclid(DAY_MS) * DAY_MS - OFFSET_MS
}

/// Reports a thing as not found when what it hangs under is not found (or not in reach), so
/// the answer names what the caller asked for; other errors pass through.
pub(crate) fn not_found_as(what: &'static str) -> impl Fn(DomainError) -> DomainError {
    move |e| match e {
        DomainError::NotFound(_) => DomainError::NotFound(what),
        other => other,
    }
}

/// The earliest instant a window may name: 2000-01-01T00:00:00Z, unix ms.
pub(crate) const EARLIEST_MS: i64 = 946_684_800_000;
/// The latest instant a window may name: 2100-01-01T00:00:00Z, unix ms. Windows beyond a lifetime
/// are mistakes, and bounding them keeps every sum of a time and a duration far from overflow.
pub(crate) const LATEST_MS: i64 = 4_102_444_800_000;

/// Why a window `from`..`until` is refused, naming the fields: an end outside
/// [`EARLIEST_MS`]..=[`LATEST_MS`], or a start that does not come first. `None` when it is sane.
pub(crate) fn window_refusal(from_field: &str, from: i64, until_field: &str, until: i64) -> Option<String> {
    for (field, at) in [(from_field, from), (until_field, until)] {
        if !(EARLIEST_MS..=LATEST_MS).contains(&at) {
            return Some(format!("{field} must be between 2000-01-01 and 2100-01-01"));
        }
    }
    (from >= until).then(|| format!("{from_field} must be before {until_field}"))
}

/// Trims `value` and checks it is 1..=`max` characters without control characters.
pub(crate) fn required_text(field: &str, value: &str, max: usize) -> DomainResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(DomainError::invalid(ErrorCode::ValidationFailed, format!("{field} must not be blank")));
    }
    bounded_text(field, v, max)
}

/// Trims `value`; blank becomes `None`; otherwise as [`required_text`].
pub(crate) fn optional_text(field: &str, value: Option<&str>, max: usize) -> DomainResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => bounded_text(field, v, max).map(Some),
    }
}

fn bounded_text(field: &str, v: &str, max: usize) -> DomainResult<String> {
    if v.chars().count() > max {
        return Err(DomainError::invalid(
            ErrorCode::ValidationFailed,
            format!("{field} must be at most {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            ErrorCode::ValidationFailed,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::{window_refusal, EARLIEST_MS, LATEST_MS};

    #[test]
    fn windows_lie_within_the_century_and_run_forwards() {
        assert_eq!(window_refusal("a", EARLIEST_MS, "b", LATEST_MS), None);
        for (from, until) in [
            (i64::MIN, 1_800_000_000_000),
            (1_700_000_000_000, i64::MAX),
            (EARLIEST_MS - 1, 1_800_000_000_000),
            (1_700_000_000_000, LATEST_MS + 1),
            (0, 1),
            (-1, 1_800_000_000_000),
            (1_800_000_000_000, 1_800_000_000_000),
            (1_800_000_000_001, 1_800_000_000_000),
        ] {
            let refused = window_refusal("claim_from", from, "claim_until", until);
            assert!(refused.is_some_and(|why| why.starts_with("claim_")), "{from}..{until}");
        }
    }

    #[test]
    fn beijing_days_start_at_16_utc() {
        // 2026-11-21 16:30 UTC is 00:30 on the 22nd in Beijing: the day began at 16:00 UTC.
        assert_eq!(super::beijing_day_start(1_795_278_600_000), 1_795_276_800_000);
    }
}
