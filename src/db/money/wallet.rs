//! The in-app wallet: one balance per resident and its append-only ledger.

use serde::Serialize;
use sqlx::{Any, AnyPool, Executor};

use crate::db::{DbResult, Page, PageRequest, Tx};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct WalletEntry {
    pub id: i64,
    pub resident_id: i64,
    pub kind: String,
    pub source: String,
    pub reference: String,
    pub amount_fen: i64,
    pub balance_after: i64,
    pub owner_org_id: Option<i64>,
    pub payout_id: Option<i64>,
    pub remark: Option<String>,
    pub created_at: i64,
}

const ENTRY: &str = "id, resident_id, kind, source, reference, amount_fen, balance_after, owner_org_id, payout_id, \
                     remark, created_at";

/// One posting to the ledger.
#[derive(Clone, Debug)]
pub struct NewEntry<'a> {
    pub kind: &'a str,
    pub source: &'a str,
    pub reference: &'a str,
    pub amount_fen: i64,
    pub owner_org_id: Option<i64>,
    pub payout_id: Option<i64>,
    pub remark: Option<&'a str>,
}

pub async fn entry_by_reference(tx: &mut Tx, reference: &str) -> DbResult<Option<WalletEntry>> {
    let row = sqlx::query_as(&format!("SELECT {ENTRY} FROM wallet_ledger WHERE reference = $1"))
        .bind(reference)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row)
}

/// Moves the balance by `amount_fen` (never below zero) and appends the row, in the caller's
/// transaction. `None` when the balance would go negative.
pub async fn post(tx: &mut Tx, resident_id: i64, e: &NewEntry<'_>, now: i64) -> DbResult<Option<WalletEntry>> {
    sqlx::query(
        "INSERT INTO wallet_accounts (resident_id, balance_fen, created_at, updated_at) VALUES ($1, 0, $2, $2) \
         ON CONFLICT (resident_id) DO NOTHING",
    )
    .bind(resident_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let balance: Option<(i64,)> = sqlx::query_as(
        "UPDATE wallet_accounts SET balance_fen = balance_fen + $1, updated_at = $2 \
         WHERE resident_id = $3 AND balance_fen + $1 >= 0 RETURNING balance_fen",
    )
    .bind(e.amount_fen)
    .bind(now)
    .bind(resident_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((balance_after,)) = balance else { return Ok(None) };
    let row = sqlx::query_as(&format!(
        "INSERT INTO wallet_ledger (resident_id, kind, source, reference, amount_fen, balance_after, owner_org_id, \
             payout_id, remark, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {ENTRY}"
    ))
    .bind(resident_id)
    .bind(e.kind)
    .bind(e.source)
    .bind(e.reference)
    .bind(e.amount_fen)
    .bind(balance_after)
    .bind(e.owner_org_id)
    .bind(e.payout_id)
    .bind(e.remark)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Some(row))
}

/// Credits many residents (each at most once) in two statements, in the caller's transaction:
/// the balances move up (accounts made as needed) and one ledger row each records the new balance.
pub async fn credit_many(tx: &mut Tx, credits: &[(i64, NewEntry<'_>)], now: i64) -> DbResult<()> {
    for chunk in credits.chunks(crate::db::ROWS_PER_STATEMENT) {
        debug_assert!(chunk.iter().all(|(_, e)| e.amount_fen >= 0), "credits only");
        let sql = format!(
            "INSERT INTO wallet_accounts (resident_id, balance_fen, created_at, updated_at) VALUES {} \
             ON CONFLICT (resident_id) DO UPDATE SET balance_fen = wallet_accounts.balance_fen + excluded.balance_fen, \
                 updated_at = excluded.updated_at \
             RETURNING resident_id, balance_fen",
            crate::db::values_list(chunk.len(), 4, 1)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query_as::<_, (i64, i64)>(&sql);
        for (resident_id, e) in chunk {
            q = q.bind(*resident_id).bind(e.amount_fen).bind(now).bind(now);
        }
        let balances: std::collections::HashMap<i64, i64> = q.fetch_all(&mut **tx).await?.into_iter().collect();
        let sql = format!(
            "INSERT INTO wallet_ledger (resident_id, kind, source, reference, amount_fen, balance_after, owner_org_id, \
                 payout_id, remark, created_at) VALUES {}",
            crate::db::values_list(chunk.len(), 10, 1)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query(&sql);
        for (resident_id, e) in chunk {
            q = q
                .bind(*resident_id)
                .bind(e.kind)
                .bind(e.source)
                .bind(e.reference)
                .bind(e.amount_fen)
                .bind(balances.get(resident_id).copied().unwrap_or(e.amount_fen))
                .bind(e.owner_org_id)
                .bind(e.payout_id)
                .bind(e.remark)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

pub async fn balance<'c, E: Executor<'c, Database = Any>>(ex: E, resident_id: i64) -> DbResult<i64> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT balance_fen FROM wallet_accounts WHERE resident_id = $1")
        .bind(resident_id)
        .fetch_optional(ex)
        .await?;
    Ok(row.map(|(b,)| b).unwrap_or(0))
}

pub async fn history(pool: &AnyPool, resident_id: i64, page: PageRequest) -> DbResult<Page<WalletEntry>> {
    let items = sqlx::query_as(&format!(
        "SELECT {ENTRY} FROM wallet_ledger WHERE resident_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(resident_id)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM wallet_ledger WHERE resident_id = $1")
        .bind(resident_id)
        .fetch_one(pool)
        .await?;
    Ok(Page { items, total })
}

/// Fen withdrawn by the resident since `since` (for the daily limit).
pub async fn withdrawn_since(tx: &mut Tx, resident_id: i64, since: i64) -> DbResult<i64> {
    let (sum,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM wallet_withdrawals WHERE resident_id = $1 AND created_at >= $2",
    )
    .bind(resident_id)
    .bind(since)
    .fetch_one(&mut **tx)
    .await?;
    Ok(sum)
}

pub async fn insert_withdrawal(
    tx: &mut Tx,
    resident_id: i64,
    amount_fen: i64,
    payout_id: i64,
    now: i64,
) -> DbResult<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO wallet_withdrawals (resident_id, amount_fen, payout_id, created_at) VALUES ($1, $2, $3, $4) \
         RETURNING id",
    )
    .bind(resident_id)
    .bind(amount_fen)
    .bind(payout_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}
