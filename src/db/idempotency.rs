//! Residents' `Idempotency-Key`s for mutating mini-program calls, with the answer each got.

use sqlx::FromRow;

use crate::db::{DbResult, Tx};

#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct IdempotencyRow {
    pub id: i64,
    pub request: String,
    pub response: Option<String>,
}

impl IdempotencyRow {
    /// The id the first request answered, when `request` is that same request and it recorded one
    /// (operations that record the id of what they made).
    pub fn replayed_id(&self, request: &str) -> Option<i64> {
        self.response.as_deref().and_then(|r| r.parse().ok()).filter(|_| self.request == request)
    }
}

/// Claims `(resident, operation, key)` for this transaction: `None` when it is new (and now
/// ours), or the earlier claim. On PostgreSQL a concurrent claim of the same key waits here until
/// the first transaction ends, then sees its committed row.
pub async fn claim(
    tx: &mut Tx,
    resident_id: i64,
    operation: &str,
    key: &str,
    request: &str,
    now: i64,
) -> DbResult<Option<IdempotencyRow>> {
    let inserted: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO mp_idempotency_keys (resident_id, operation, idem_key, request, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (resident_id, operation, idem_key) DO NOTHING RETURNING id",
    )
    .bind(resident_id)
    .bind(operation)
    .bind(key)
    .bind(request)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    if inserted.is_some() {
        return Ok(None);
    }
    let row = sqlx::query_as(
        "SELECT id, request, response FROM mp_idempotency_keys \
         WHERE resident_id = $1 AND operation = $2 AND idem_key = $3",
    )
    .bind(resident_id)
    .bind(operation)
    .bind(key)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Some(row))
}

/// Records the answer of the call that claimed the key, in that call's transaction.
/// Whether the resident has used `key` for `operation` (read without taking anything).
pub async fn seen<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(
    ex: E,
    resident_id: i64,
    operation: &str,
    key: &str,
) -> DbResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM mp_idempotency_keys WHERE resident_id = $1 AND operation = $2 AND idem_key = $3",
    )
    .bind(resident_id)
    .bind(operation)
    .bind(key)
    .fetch_optional(ex)
    .await?;
    Ok(row.is_some())
}

pub async fn record_response(
    tx: &mut Tx,
    resident_id: i64,
    operation: &str,
    key: &str,
    response: &str,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE mp_idempotency_keys SET response = $1 WHERE resident_id = $2 AND operation = $3 AND idem_key = $4",
    )
    .bind(response)
    .bind(resident_id)
    .bind(operation)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
