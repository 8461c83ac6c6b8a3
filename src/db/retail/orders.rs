//! Merchants' orders and refunds, residents' member codes and purchase-points multipliers.

use serde::Serialize;
use sqlx::{Any, Executor};

use crate::db::{DbResult, Tx};

/// Stores a member code for a resident.
pub async fn insert_member_code(
    tx: &mut Tx,
    code: &str,
    resident_id: i64,
    expires_at: i64,
    now: i64,
) -> DbResult<bool> {
    let r = sqlx::query(
        "INSERT INTO member_codes (code, resident_id, expires_at, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(code)
    .bind(resident_id)
    .bind(expires_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The resident a live member code names.
pub async fn resident_of_member_code(tx: &mut Tx, code: &str, now: i64) -> DbResult<Option<i64>> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT resident_id FROM member_codes WHERE code = $1 AND expires_at > $2")
            .bind(code)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|(r,)| r))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OrderRow {
    pub id: i64,
    pub merchant_id: i64,
    pub company_id: i64,
    pub order_no: String,
    pub resident_id: i64,
    pub amount: i64,
    pub discount: i64,
    pub paid: i64,
    pub refunded: i64,
    pub coupon_id: Option<i64>,
    pub items: String,
    pub points: i64,
    pub points_back: i64,
    pub ordered_at: i64,
    pub created_at: i64,
}

const ORDER: &str =
    "id, merchant_id, company_id, order_no, resident_id, amount, discount, paid, refunded, coupon_id, items, \
                     points, points_back, ordered_at, created_at";

pub async fn order_by_no<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    merchant_id: i64,
    order_no: &str,
) -> DbResult<Option<OrderRow>> {
    let row = sqlx::query_as(&format!("SELECT {ORDER} FROM orders WHERE merchant_id = $1 AND order_no = $2"))
        .bind(merchant_id)
        .bind(order_no)
        .fetch_optional(ex)
        .await?;
    Ok(row)
}

/// An order as first recorded: what the merchant reported, before its coupon and points.
pub struct NewOrder<'a> {
    pub merchant_id: i64,
    pub company_id: i64,
    pub order_no: &'a str,
    pub resident_id: i64,
    pub amount: i64,
    pub items: &'a str,
    pub ordered_at: i64,
}

/// Inserts an order unless the merchant has one with this number; `None` when it has. This is
/// the claim of the number: on PostgreSQL a concurrent insert of the same number waits until the
/// first transaction ends, and does nothing if it committed. The order starts without coupon or
/// points; [`settle_order`] sets them in the same transaction.
pub async fn insert_order(tx: &mut Tx, o: &NewOrder<'_>, now: i64) -> DbResult<Option<OrderRow>> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO orders (merchant_id, company_id, order_no, resident_id, amount, discount, paid, items, \
             points, ordered_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $5, $6, 0, $7, $8) \
         ON CONFLICT (merchant_id, order_no) DO NOTHING RETURNING {ORDER}"
    ))
    .bind(o.merchant_id)
    .bind(o.company_id)
    .bind(o.order_no)
    .bind(o.resident_id)
    .bind(o.amount)
    .bind(o.items)
    .bind(o.ordered_at)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

/// Sets the coupon, its discount (and so what was paid) and the points of an order just claimed.
pub async fn settle_order(
    tx: &mut Tx,
    id: i64,
    coupon_id: Option<i64>,
    discount: i64,
    points: i64,
) -> DbResult<OrderRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE orders SET coupon_id = $1, discount = $2, paid = amount - $2, points = $3 WHERE id = $4 \
         RETURNING {ORDER}"
    ))
    .bind(coupon_id)
    .bind(discount)
    .bind(points)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

/// How many orders other than `order_id` a resident has at a merchant (to tell a first purchase).
pub async fn other_orders_at_merchant(tx: &mut Tx, resident_id: i64, merchant_id: i64, order_id: i64) -> DbResult<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM orders WHERE resident_id = $1 AND merchant_id = $2 AND id <> $3")
            .bind(resident_id)
            .bind(merchant_id)
            .bind(order_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(n)
}

/// The merchant's order with this number, locked until the transaction ends (a write that
/// changes nothing: one statement for both engines; SQLite's writer holds everything anyway).
/// On PostgreSQL a second locker waits, then gets the row as the first left it.
pub async fn lock_order_by_no(tx: &mut Tx, merchant_id: i64, order_no: &str) -> DbResult<Option<OrderRow>> {
    let row = sqlx::query_as(&format!(
        "UPDATE orders SET refunded = refunded WHERE merchant_id = $1 AND order_no = $2 RETURNING {ORDER}"
    ))
    .bind(merchant_id)
    .bind(order_no)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

/// Records a refund on an order, if its number is new and the amount fits what is left;
/// `None` otherwise. The order row is locked until the transaction ends.
pub async fn add_refund(tx: &mut Tx, order_id: i64, amount: i64, points_back: i64) -> DbResult<Option<OrderRow>> {
    let row = sqlx::query_as(&format!(
        "UPDATE orders SET refunded = refunded + $1, points_back = points_back + $2 \
         WHERE id = $3 AND refunded + $1 <= paid RETURNING {ORDER}"
    ))
    .bind(amount)
    .bind(points_back)
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RefundRow {
    pub id: i64,
    pub order_id: i64,
    pub refund_no: String,
    pub amount: i64,
    pub points_back: i64,
    pub coupon_restored: i64,
    pub created_at: i64,
}

pub async fn refund_by_no(tx: &mut Tx, order_id: i64, refund_no: &str) -> DbResult<Option<RefundRow>> {
    let row = sqlx::query_as(
        "SELECT id, order_id, refund_no, amount, points_back, coupon_restored, created_at FROM order_refunds \
         WHERE order_id = $1 AND refund_no = $2",
    )
    .bind(order_id)
    .bind(refund_no)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn insert_refund(
    tx: &mut Tx,
    order_id: i64,
    refund_no: &str,
    amount: i64,
    points_back: i64,
    coupon_restored: bool,
    now: i64,
) -> DbResult<RefundRow> {
    let row = sqlx::query_as(
        "INSERT INTO order_refunds (order_id, refund_no, amount, points_back, coupon_restored, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING id, order_id, refund_no, amount, points_back, coupon_restored, created_at",
    )
    .bind(order_id)
    .bind(refund_no)
    .bind(amount)
    .bind(points_back)
    .bind(i64::from(coupon_restored))
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

/// A multiplier campaign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MultiplierRow {
    pub id: i64,
    pub programme_id: i64,
    pub category: String,
    pub percent: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_at: i64,
}

const MULTIPLIER: &str = "id, programme_id, category, percent, starts_at, ends_at, created_at";

pub async fn insert_multiplier(
    tx: &mut Tx,
    programme_id: i64,
    category: &str,
    percent: i64,
    starts_at: i64,
    ends_at: i64,
    now: i64,
) -> DbResult<MultiplierRow> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO points_multipliers (programme_id, category, percent, starts_at, ends_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {MULTIPLIER}"
    ))
    .bind(programme_id)
    .bind(category)
    .bind(percent)
    .bind(starts_at)
    .bind(ends_at)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn multipliers<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    programme_id: i64,
) -> DbResult<Vec<MultiplierRow>> {
    let rows =
        sqlx::query_as(&format!("SELECT {MULTIPLIER} FROM points_multipliers WHERE programme_id = $1 ORDER BY id"))
            .bind(programme_id)
            .fetch_all(ex)
            .await?;
    Ok(rows)
}

pub async fn delete_multiplier(tx: &mut Tx, programme_id: i64, id: i64) -> DbResult<bool> {
    let r = sqlx::query("DELETE FROM points_multipliers WHERE id = $1 AND programme_id = $2")
        .bind(id)
        .bind(programme_id)
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn purchase_rates_in(tx: &mut Tx, programme_id: i64) -> DbResult<(i64, i64)> {
    let row = sqlx::query_as("SELECT points_per_yuan, first_purchase_percent FROM points_programmes WHERE id = $1")
        .bind(programme_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row)
}

pub async fn set_purchase_rates(tx: &mut Tx, programme_id: i64, per_yuan: i64, first_percent: i64) -> DbResult<()> {
    sqlx::query("UPDATE points_programmes SET points_per_yuan = $1, first_purchase_percent = $2 WHERE id = $3")
        .bind(per_yuan)
        .bind(first_percent)
        .bind(programme_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// How many orders a resident has placed at the company's merchants since `since`.
pub async fn orders_in_company_since(tx: &mut Tx, resident_id: i64, company_id: i64, since: i64) -> DbResult<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM orders WHERE resident_id = $1 AND company_id = $2 AND ordered_at >= $3")
            .bind(resident_id)
            .bind(company_id)
            .bind(since)
            .fetch_one(&mut **tx)
            .await?;
    Ok(n)
}
