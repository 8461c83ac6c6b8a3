//! Abuse limits: token buckets per resident session (`/mp/v1`), per API key (`/admin/v1`,
//! `/merchant/v1`) and per client IP on the login (`POST /mp/v1/sessions`). Over a limit the answer
//! is 429 with `Retry-After`, before the request touches anything.
//!
//! Several instances sharing one PostgreSQL share the limits:
//! - resident and API-key buckets stay in memory, so the hot paths (grabs, claims) never wait on
//!   the database for them; each instance gives every bucket `1/n` of the configured rate and
//!   burst, `n` being the live instances it counts from their heartbeats
//!   (`crate::workers::instances`). With requests spread evenly over the instances the total stays
//!   at the configured rate; a balancer that pins a client to one instance gives it `1/n`.
//! - the login per client address is counted in the database, one statement per login, so the
//!   total holds exactly whatever the balancer does: each login costs a call to WeChat's
//!   `jscode2session`, whose quota is the app's, not the instance's. A bucket in memory at the full
//!   rate goes first, so a flood from one address is turned away without reaching the database.
//!
//! On SQLite there is one instance and everything stays in memory. Keys are hashes of the
//! credentials and addresses, never the credentials or addresses themselves.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use poem::Request;
use sha2::{Digest, Sha256};

pub use crate::config::Rate;
use crate::config::RateLimits;
use crate::db::limits::BucketShape;
use crate::db::Db;

/// The most buckets kept; past it, buckets idle for a minute (hence full again) are dropped.
const MAX_BUCKETS: usize = 100_000;

/// Tokens are millionths of a request, so a rate divided among instances keeps its precision.
const ONE_REQUEST: i64 = 1_000_000;

/// Which limit a bucket counts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Limit {
    LoginPerIp,
    Resident,
    ApiKey,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: i64,
    last_ms: i64,
}

#[derive(Debug)]
pub struct Limiter {
    rates: RateLimits,
    buckets: Mutex<HashMap<(Limit, u64), Bucket>>,
    /// The live instances sharing the database, this one included (1 on SQLite).
    live_instances: AtomicU32,
    /// PostgreSQL, where the login per address is counted for every instance at once.
    shared: Option<Db>,
}

fn hashed(value: &str) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// A rate as a bucket, for one of `instances` instances that share it.
fn shape(rate: Rate, instances: u32) -> BucketShape {
    let n = i64::from(instances.max(1));
    BucketShape {
        // At least one request, or a bucket shared by many instances would refuse everything.
        capacity: (i64::from(rate.burst.max(1)) * ONE_REQUEST / n).max(ONE_REQUEST),
        refill_per_ms: (i64::from(rate.per_sec) * (ONE_REQUEST / 1000) / n).max(1),
        cost: ONE_REQUEST,
    }
}

/// Whole seconds until a bucket holding `tokens` has enough for one request (at least 1).
fn retry_after_secs(shape: BucketShape, tokens: i64) -> u64 {
    let missing = (shape.cost - tokens).max(0);
    let wait_ms = (missing + shape.refill_per_ms - 1) / shape.refill_per_ms;
    ((wait_ms + 999) / 1000).max(1) as u64
}

impl Limiter {
    /// `shared`: the database the instances share (PostgreSQL), or `None` to keep every limit in
    /// this process.
    pub fn new(rates: RateLimits, shared: Option<Db>) -> Self {
        Self { rates, buckets: Mutex::new(HashMap::new()), live_instances: AtomicU32::new(1), shared }
    }

    /// How many instances the in-memory limits are divided among.
    pub fn live_instances(&self) -> u32 {
        self.live_instances.load(Ordering::Relaxed).max(1)
    }

    /// Told by the heartbeat how many instances are live.
    pub fn set_live_instances(&self, n: u32) {
        self.live_instances.store(n.max(1), Ordering::Relaxed);
    }

    /// How long a shared bucket takes to fill: rows idle longer than that can be forgotten.
    pub fn shared_fill_ms(&self) -> i64 {
        shape(self.rates.login_per_ip, 1).fill_ms()
    }

    /// Takes one request from every bucket the request falls in; `Err(seconds)` when one is empty.
    pub async fn check(&self, req: &Request, now_ms: i64) -> Result<(), u64> {
        let path = req.uri().path();
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        if path == "/mp/v1/sessions" && req.method() == poem::http::Method::POST {
            let ip = req.remote_addr().as_socket_addr().map(|a| a.ip().to_string()).unwrap_or_default();
            self.check_login(&ip, now_ms).await?;
        }
        let n = self.live_instances();
        if path.starts_with("/mp/v1/") {
            if let Some(bearer) = header("authorization") {
                self.take(Limit::Resident, bearer, self.rates.per_resident, n, now_ms)?;
            }
        } else if path.starts_with("/admin/v1/") || path.starts_with("/merchant/v1/") {
            if let Some(key) = header("x-api-key") {
                self.take(Limit::ApiKey, key, self.rates.per_key, n, now_ms)?;
            }
        }
        Ok(())
    }

    async fn check_login(&self, ip: &str, now_ms: i64) -> Result<(), u64> {
        let rate = self.rates.login_per_ip;
        let Some(db) = &self.shared else {
            return self.take(Limit::LoginPerIp, ip, rate, self.live_instances(), now_ms);
        };
        if rate.per_sec == 0 {
            return Ok(());
        }
        // No instance may pass more than the whole limit, so a flood is cut here first.
        self.take(Limit::LoginPerIp, ip, rate, 1, now_ms)?;
        let shape = shape(rate, 1);
        let bucket = format!("login_ip:{}", &hex::encode(Sha256::digest(ip.as_bytes()))[..32]);
        match crate::db::limits::take_shared(db, &bucket, shape, now_ms).await {
            Ok(taken) if taken.granted => Ok(()),
            Ok(taken) => Err(retry_after_secs(shape, taken.tokens)),
            // The login needs the database too and will answer 503 itself; the bucket in memory
            // above still holds this instance to the whole limit.
            Err(e) => {
                tracing::warn!(error = %e, "shared login limit unavailable; this instance's own limit applies");
                Ok(())
            }
        }
    }

    /// Takes one request from this process's bucket for `who`, sized for one of `instances`.
    fn take(&self, limit: Limit, who: &str, rate: Rate, instances: u32, now_ms: i64) -> Result<(), u64> {
        if rate.per_sec == 0 {
            return Ok(());
        }
        let shape = shape(rate, instances);
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, b| now_ms - b.last_ms < 60_000);
        }
        let b = buckets.entry((limit, hashed(who))).or_insert(Bucket { tokens: shape.capacity, last_ms: now_ms });
        let elapsed = (now_ms - b.last_ms).clamp(0, shape.fill_ms());
        b.tokens = (b.tokens + elapsed * shape.refill_per_ms).min(shape.capacity);
        b.last_ms = b.last_ms.max(now_ms);
        if b.tokens >= shape.cost {
            b.tokens -= shape.cost;
            Ok(())
        } else {
            Err(retry_after_secs(shape, b.tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> Limiter {
        Limiter::new(RateLimits::default(), None)
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = limiter();
        let rate = Rate { per_sec: 10, burst: 3 };
        for _ in 0..3 {
            assert_eq!(limiter.take(Limit::Resident, "a", rate, 1, 0), Ok(()));
        }
        assert_eq!(limiter.take(Limit::Resident, "a", rate, 1, 0), Err(1));
        // Another caller has a bucket of its own, and so has another limit.
        assert_eq!(limiter.take(Limit::Resident, "b", rate, 1, 0), Ok(()));
        assert_eq!(limiter.take(Limit::ApiKey, "a", rate, 1, 0), Ok(()));
        // 100 ms later one more request is allowed (10 a second), and no more.
        assert_eq!(limiter.take(Limit::Resident, "a", rate, 1, 100), Ok(()));
        assert_eq!(limiter.take(Limit::Resident, "a", rate, 1, 100), Err(1));
        // Off is off.
        for _ in 0..100 {
            assert_eq!(limiter.take(Limit::Resident, "a", Rate { per_sec: 0, burst: 0 }, 1, 0), Ok(()));
        }
    }

    #[test]
    fn a_bucket_shared_by_instances_gets_its_share_of_rate_and_burst() {
        let limiter = limiter();
        let rate = Rate { per_sec: 30, burst: 6 };
        // Three instances: a burst of two here, and one request every 100 ms.
        for _ in 0..2 {
            assert_eq!(limiter.take(Limit::Resident, "a", rate, 3, 0), Ok(()));
        }
        assert!(limiter.take(Limit::Resident, "a", rate, 3, 0).is_err());
        assert!(limiter.take(Limit::Resident, "a", rate, 3, 99).is_err());
        assert_eq!(limiter.take(Limit::Resident, "a", rate, 3, 100), Ok(()));
        // A share smaller than one request still lets one through, at the divided rate:
        // 1 a second over 4 instances is one every 4 seconds here.
        let slow = Rate { per_sec: 1, burst: 1 };
        assert_eq!(limiter.take(Limit::ApiKey, "k", slow, 4, 0), Ok(()));
        assert_eq!(limiter.take(Limit::ApiKey, "k", slow, 4, 3_999), Err(1));
        assert_eq!(limiter.take(Limit::ApiKey, "k", slow, 4, 4_000), Ok(()));
        // Retry-After says how long the share takes to refill.
        assert_eq!(limiter.take(Limit::ApiKey, "k", slow, 4, 4_000), Err(4));
    }

    #[test]
    fn fewer_instances_raise_the_share_and_more_lower_it() {
        let limiter = limiter();
        let rate = Rate { per_sec: 1, burst: 4 };
        assert_eq!(limiter.take(Limit::Resident, "a", rate, 2, 0), Ok(()));
        assert_eq!(limiter.take(Limit::Resident, "a", rate, 2, 0), Ok(()));
        assert!(limiter.take(Limit::Resident, "a", rate, 2, 0).is_err());
        // Alone now: the bucket refills to the whole burst of four; one is taken.
        assert_eq!(limiter.take(Limit::Resident, "a", rate, 1, 10_000), Ok(()));
        // Four instances: the three left are cut to the new burst of one.
        assert_eq!(limiter.take(Limit::Resident, "a", rate, 4, 10_000), Ok(()));
        assert_eq!(limiter.take(Limit::Resident, "a", rate, 4, 10_000), Err(4));
    }

    #[test]
    fn the_live_instance_count_is_never_zero() {
        let limiter = limiter();
        assert_eq!(limiter.live_instances(), 1);
        limiter.set_live_instances(0);
        assert_eq!(limiter.live_instances(), 1);
        limiter.set_live_instances(3);
        assert_eq!(limiter.live_instances(), 3);
    }
}
