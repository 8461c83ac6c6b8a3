//! Answers to requests sent with an `Idempotency-Key`, per resident.

use super::{DbResult, Tx};

/// Claims the key for this request in the transaction that does the work: `None` for the first
/// request (carry on, then [`store`] the answer), or the stored answer of an earlier one (a
/// concurrent request with the same key waits for the first to commit). An earlier request for
/// another operation under the same key answers `Some((0, operation))`.
pub async fn claim(
    tx: &mut Tx,
    resident_id: i64,
    key: &str,
    operation: &str,
    now: i64,
) -> DbResult<Option<(i64, String)>> {
    let inserted: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO idempotent_requests (resident_id, idem_key, operation, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (resident_id, idem_key) DO NOTHING RETURNING resident_id",
    )
    .bind(resident_id)
    .bind(key)
    .bind(operation)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    if inserted.is_some() {
        return Ok(None);
    }
    let (op, status, body): (String, Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT operation, status, body FROM idempotent_requests WHERE resident_id = $1 AND idem_key = $2",
    )
    .bind(resident_id)
    .bind(key)
    .fetch_one(&mut **tx)
    .await?;
    if op != operation {
        return Ok(Some((0, op)));
    }
    Ok(Some((status.unwrap_or(0), body.unwrap_or_default())))
}

/// Stores the answer of the request that claimed the key.
pub async fn store(tx: &mut Tx, resident_id: i64, key: &str, status: i64, body: &str) -> DbResult<()> {
    sqlx::query("UPDATE idempotent_requests SET status = $1, body = $2 WHERE resident_id = $3 AND idem_key = $4")
        .bind(status)
        .bind(body)
        .bind(resident_id)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
