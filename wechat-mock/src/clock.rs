//! The mock's own notion of "now": the wall clock plus an offset that tests move forward, so tokens
//! and quotas can expire without sleeping. Time never goes backwards.

use std::time::{SystemTime, UNIX_EPOCH};

/// China Standard Time is UTC+8 all year; WeChat's daily quotas roll over at Beijing midnight.
const BEIJING_OFFSET_MS: i64 = 8 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Wall clock plus a forward-only offset, in Unix milliseconds.
#[derive(Debug, Clone, Default)]
pub struct MockClock {
    offset_ms: i64,
}

impl MockClock {
    /// A clock that reads `start_unix_ms` now and runs at wall-clock speed from there; tests use it
    /// to start at a known instant (e.g. away from the daily quota rollover at Beijing midnight).
    pub fn starting_at(start_unix_ms: i64) -> Self {
        Self { offset_ms: start_unix_ms.saturating_sub(wall_clock_ms()) }
    }

    /// The mock's current time in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        wall_clock_ms().saturating_add(self.offset_ms)
    }

    /// Moves the clock forward by `seconds` (negative values are ignored: time never goes back).
    pub fn advance_secs(&mut self, seconds: i64) {
        self.offset_ms = self.offset_ms.saturating_add(seconds.max(0).saturating_mul(1000));
    }

    /// How far the clock is ahead of the wall clock (negative when started in the past), in whole seconds.
    pub fn offset_secs(&self) -> i64 {
        self.offset_ms / 1000
    }
}

/// The Beijing calendar day (days since 1970-01-01 CST) a Unix-millisecond instant falls on.
pub fn beijing_day(unix_ms: i64) -> i64 {
    (unix_ms + BEIJING_OFFSET_MS).div_euclid(DAY_MS)
}

fn wall_clock_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(elapsed) => i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        // A system clock before 1970 is a broken host; treat it as the epoch rather than panicking.
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward_and_never_back() {
        let mut clock = MockClock::default();
        let before = clock.now_ms();
        clock.advance_secs(7200);
        assert!(clock.now_ms() >= before + 7_200_000);
        clock.advance_secs(-100);
        assert_eq!(clock.offset_secs(), 7200);
    }

    #[test]
    fn a_clock_can_start_at_a_chosen_instant() {
        let clock = MockClock::starting_at(1_717_214_400_000);
        let now = clock.now_ms();
        assert!((1_717_214_400_000..1_717_214_460_000).contains(&now));
    }

    #[test]
    fn beijing_day_rolls_over_at_16_00_utc() {
        // 1970-01-01 15:59:59.999 UTC is 23:59:59.999 in Beijing; one millisecond later is the next day.
        let last_ms_of_day_zero = 16 * 3600 * 1000 - 1;
        assert_eq!(beijing_day(last_ms_of_day_zero), 0);
        assert_eq!(beijing_day(last_ms_of_day_zero + 1), 1);
    }
}
