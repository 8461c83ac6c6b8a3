//! Abuse limits: token buckets per resident session (`/mp/v1`), per API key (`/admin/v1`,
//! `/merchant/v1`) and per client IP on the login (`POST /mp/v1/sessions`). Over a limit the answer
//! is 429 with `Retry-After`, before the request touches anything.
//!
//! Buckets live in this instance's memory: with several instances behind a load balancer each
//! enforces its own share. Keys are hashes of the credentials, never the credentials themselves.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use poem::Request;

pub use crate::config::Rate;
use crate::config::RateLimits;

/// The most buckets kept; past it, buckets idle for a minute (hence full again) are dropped.
const MAX_BUCKETS: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Thousandths of a request.
    tokens: i64,
    last_ms: i64,
}

#[derive(Debug, Default)]
pub struct Limiter {
    rates: RateLimits,
    buckets: Mutex<HashMap<(u8, u64), Bucket>>,
}

fn hashed(value: &str) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

impl Limiter {
    pub fn new(rates: RateLimits) -> Self {
        Self { rates, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from every bucket the request falls in; `Err(seconds)` when one is empty.
    pub fn check(&self, req: &Request, now_ms: i64) -> Result<(), u64> {
        let path = req.uri().path();
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        if path == "/mp/v1/sessions" && req.method() == poem::http::Method::POST {
            let ip = req.remote_addr().as_socket_addr().map(|a| a.ip().to_string()).unwrap_or_default();
            self.take(0, &ip, self.rates.login_per_ip, now_ms)?;
        }
        if path.starts_with("/mp/v1/") {
            if let Some(bearer) = header("authorization") {
                self.take(1, &bearer, self.rates.per_resident, now_ms)?;
            }
        } else if path.starts_with("/admin/v1/") || path.starts_with("/merchant/v1/") {
            if let Some(key) = header("x-api-key") {
                self.take(2, &key, self.rates.per_key, now_ms)?;
            }
        }
        Ok(())
    }

    fn take(&self, kind: u8, who: &str, rate: Rate, now_ms: i64) -> Result<(), u64> {
        if rate.per_sec == 0 {
            return Ok(());
        }
        let capacity = i64::from(rate.burst.max(1)) * 1000;
        let per_ms = i64::from(rate.per_sec); // thousandths of a request per millisecond
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, b| now_ms - b.last_ms < 60_000);
        }
        let b = buckets.entry((kind, hashed(who))).or_insert(Bucket { tokens: capacity, last_ms: now_ms });
        let elapsed = (now_ms - b.last_ms).max(0);
        b.tokens = (b.tokens + elapsed.saturating_mul(per_ms)).min(capacity);
        b.last_ms = now_ms;
        if b.tokens >= 1000 {
            b.tokens -= 1000;
            Ok(())
        } else {
            let wait_ms = (1000 - b.tokens + per_ms - 1) / per_ms;
            Err(((wait_ms + 999) / 1000).max(1) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = Limiter::new(RateLimits::default());
        let rate = Rate { per_sec: 10, burst: 3 };
        for _ in 0..3 {
            assert_eq!(limiter.take(1, "a", rate, 0), Ok(()));
        }
        assert_eq!(limiter.take(1, "a", rate, 0), Err(1));
        // Another caller has a bucket of its own.
        assert_eq!(limiter.take(1, "b", rate, 0), Ok(()));
        // 100 ms later one more request is allowed (10 a second), and no more.
        assert_eq!(limiter.take(1, "a", rate, 100), Ok(()));
        assert_eq!(limiter.take(1, "a", rate, 100), Err(1));
        // Off is off.
        for _ in 0..100 {
            assert_eq!(limiter.take(1, "a", Rate { per_sec: 0, burst: 0 }, 0), Ok(()));
        }
    }
}
