//! Storage behind the abuse limits when several instances share one database: the instances'
//! heartbeat rows, and token buckets kept in the database for the limits that must hold exactly
//! across instances. Times are the calling instance's unix milliseconds.

use crate::db::{Db, DbResult};

/// Writes this instance's heartbeat, forgets instances silent since `forget_before`, and answers
/// how many instances (this one included) were seen at or after `live_since`.
pub async fn heartbeat(db: &Db, instance: &str, now: i64, live_since: i64, forget_before: i64) -> DbResult<u32> {
    sqlx::query(
        "INSERT INTO instances (id, seen_ms) VALUES ($1, $2) \
         ON CONFLICT (id) DO UPDATE SET seen_ms = excluded.seen_ms",
    )
    .bind(instance)
    .bind(now)
    .execute(db.writer())
    .await?;
    sqlx::query("DELETE FROM instances WHERE seen_ms < $1").bind(forget_before).execute(db.writer()).await?;
    let (live,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM instances WHERE seen_ms >= $1")
        .bind(live_since)
        .fetch_one(db.reader())
        .await?;
    Ok(live.clamp(1, i64::from(u32::MAX)) as u32)
}

/// Removes this instance's heartbeat (a clean shutdown), so the others count one fewer at once.
pub async fn leave(db: &Db, instance: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM instances WHERE id = $1").bind(instance).execute(db.writer()).await?;
    Ok(())
}

/// One token bucket's shape, in millionths of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketShape {
    /// The most tokens the bucket holds (the burst).
    pub capacity: i64,
    /// Tokens added each millisecond.
    pub refill_per_ms: i64,
    /// Tokens one request takes.
    pub cost: i64,
}

impl BucketShape {
    /// How long an empty bucket takes to fill; a bucket idle that long is full, whatever it held.
    pub fn fill_ms(&self) -> i64 {
        (self.capacity + self.refill_per_ms - 1) / self.refill_per_ms.max(1) + 1
    }
}

/// What one take from a shared bucket found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    pub granted: bool,
    /// Tokens left after the take.
    pub tokens: i64,
}

/// Takes one request from the bucket `bucket` in a single statement: refills it for the time
/// since its last use (capped at a full bucket), takes `cost` when that much is there, and says
/// which. Concurrent takes of one bucket serialize on its row, so the limit holds across every
/// instance sharing the database. A clock behind the last writer's refills nothing.
pub async fn take_shared(db: &Db, bucket: &str, shape: BucketShape, now: i64) -> DbResult<Taken> {
    // The time since the last take ($6): never negative and never more than filling takes, so
    // its product with the refill rate cannot overflow. Then the refilled tokens, capped.
    let elapsed = "(CASE WHEN $2 <= rate_buckets.updated_ms THEN 0 \
         WHEN $2 - rate_buckets.updated_ms > $6 THEN $6 ELSE $2 - rate_buckets.updated_ms END)";
    let refilled = format!(
        "(CASE WHEN rate_buckets.tokens + {elapsed} * $4 > $3 THEN $3 ELSE rate_buckets.tokens + {elapsed} * $4 END)"
    );
    let sql = format!(
        "INSERT INTO rate_buckets (bucket, tokens, updated_ms, granted) VALUES ($1, $3 - $5, $2, 1) \
         ON CONFLICT (bucket) DO UPDATE SET \
           tokens = CASE WHEN {refilled} >= $5 THEN {refilled} - $5 ELSE {refilled} END, \
           granted = CASE WHEN {refilled} >= $5 THEN 1 ELSE 0 END, \
           updated_ms = CASE WHEN $2 > rate_buckets.updated_ms THEN $2 ELSE rate_buckets.updated_ms END \
         RETURNING tokens, granted"
    );
    let (tokens, granted): (i64, i64) = sqlx::query_as(&sql)
        .bind(bucket)
        .bind(now)
        .bind(shape.capacity)
        .bind(shape.refill_per_ms)
        .bind(shape.cost)
        .bind(shape.fill_ms())
        .fetch_one(db.writer())
        .await?;
    Ok(Taken { granted: granted == 1, tokens })
}

/// Forgets shared buckets unused since `before`: a bucket idle longer than it takes to fill is
/// full, the same as no row.
pub async fn forget_idle_buckets(db: &Db, before: i64) -> DbResult<u64> {
    let done = sqlx::query("DELETE FROM rate_buckets WHERE updated_ms < $1").bind(before).execute(db.writer()).await?;
    Ok(done.rows_affected())
}
