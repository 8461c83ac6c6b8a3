//! Points redemption: catalogue items (with their stock) and redemptions (vouchers).

use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Executor};

use crate::db::{DbResult, Page, PageRequest, Tx};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ItemRow {
    pub id: i64,
    pub programme_id: i64,
    pub company_id: i64,
    pub merchant_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub points_price: i64,
    pub stock_total: i64,
    pub stock_left: i64,
    pub per_resident_limit: i64,
    pub available_from: Option<i64>,
    pub available_until: Option<i64>,
    #[sqlx(try_from = "crate::db::Flag")]
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived_at: Option<i64>,
}

const ITEM: &str = "id, programme_id, company_id, merchant_id, title, description, points_price, stock_total, \
                    stock_left, per_resident_limit, available_from, available_until, active, created_at, updated_at, \
                    archived_at";

/// What an operator sets on an item; the stock left follows the total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemFields {
    pub title: String,
    pub description: Option<String>,
    pub points_price: i64,
    pub stock_total: i64,
    pub per_resident_limit: i64,
    pub available_from: Option<i64>,
    pub available_until: Option<i64>,
    pub active: bool,
}

pub async fn insert_item(
    tx: &mut Tx,
    programme_id: i64,
    company_id: i64,
    merchant_id: i64,
    f: &ItemFields,
    now: i64,
) -> DbResult<ItemRow> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO catalogue_items (programme_id, company_id, merchant_id, title, description, points_price, \
             stock_total, stock_left, per_resident_limit, available_from, available_until, active, created_at, \
             updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, $12, $12) RETURNING {ITEM}"
    ))
    .bind(programme_id)
    .bind(company_id)
    .bind(merchant_id)
    .bind(&f.title)
    .bind(&f.description)
    .bind(f.points_price)
    .bind(f.stock_total)
    .bind(f.per_resident_limit)
    .bind(f.available_from)
    .bind(f.available_until)
    .bind(i64::from(f.active))
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn get_item<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<ItemRow>> {
    let row = sqlx::query_as(&format!("SELECT {ITEM} FROM catalogue_items WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?;
    Ok(row)
}

/// Rewrites an item; the stock left moves by as much as the total. `None` when the new total is
/// below what is already taken.
pub async fn update_item(tx: &mut Tx, id: i64, f: &ItemFields, now: i64) -> DbResult<Option<ItemRow>> {
    let row = sqlx::query_as(&format!(
        "UPDATE catalogue_items SET title = $1, description = $2, points_price = $3, \
             stock_left = stock_left + ($4 - stock_total), stock_total = $4, per_resident_limit = $5, \
             available_from = $6, available_until = $7, active = $8, updated_at = $9 \
         WHERE id = $10 AND stock_total - stock_left <= $4 RETURNING {ITEM}"
    ))
    .bind(&f.title)
    .bind(&f.description)
    .bind(f.points_price)
    .bind(f.stock_total)
    .bind(f.per_resident_limit)
    .bind(f.available_from)
    .bind(f.available_until)
    .bind(i64::from(f.active))
    .bind(now)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn archive_item(tx: &mut Tx, id: i64, now: i64) -> DbResult<ItemRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE catalogue_items SET archived_at = $1, updated_at = $1 WHERE id = $2 RETURNING {ITEM}"
    ))
    .bind(now)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

/// Takes one unit of stock if the item is on offer now and has any left: the durable guard
/// against overselling. The update also locks the item row until the transaction ends, so
/// redemptions of one item are serialized from here on.
pub async fn take_stock(tx: &mut Tx, id: i64, now: i64) -> DbResult<Option<ItemRow>> {
    let row = sqlx::query_as(&format!(
        "UPDATE catalogue_items SET stock_left = stock_left - 1, updated_at = $1 \
         WHERE id = $2 AND stock_left > 0 AND active = 1 AND archived_at IS NULL \
             AND (available_from IS NULL OR available_from <= $1) \
             AND (available_until IS NULL OR available_until > $1) \
         RETURNING {ITEM}"
    ))
    .bind(now)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

/// Gives one unit of stock back (a cancelled redemption).
pub async fn return_stock(tx: &mut Tx, id: i64, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE catalogue_items SET stock_left = stock_left + 1, updated_at = $1 \
         WHERE id = $2 AND stock_left < stock_total",
    )
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An item with what became of its redemptions.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemFigures {
    #[sqlx(flatten)]
    pub item: ItemRow,
    /// Redemptions ever made, whatever became of them.
    pub redeemed: i64,
    /// Redeemed and not yet fulfilled or cancelled.
    pub outstanding: i64,
    pub fulfilled: i64,
    pub cancelled: i64,
}

const FIGURES: &str = "(SELECT COUNT(*) FROM redemptions r WHERE r.item_id = i.id) AS redeemed, \
     (SELECT COUNT(*) FROM redemptions r WHERE r.item_id = i.id AND r.state = 'redeemed') AS outstanding, \
     (SELECT COUNT(*) FROM redemptions r WHERE r.item_id = i.id AND r.state = 'fulfilled') AS fulfilled, \
     (SELECT COUNT(*) FROM redemptions r WHERE r.item_id = i.id AND r.state = 'cancelled') AS cancelled";

#[derive(Clone, Debug, Default)]
pub struct ItemFilter {
    pub programme_id: i64,
    pub merchant_id: Option<i64>,
    pub include_archived: bool,
    /// Only items on offer at this time: active, not archived, inside their window.
    pub on_offer_at: Option<i64>,
}

const ITEM_FILTER: &str = "i.programme_id = $1 AND ($2 IS NULL OR i.merchant_id = $2) \
     AND ($3 = 1 OR i.archived_at IS NULL) \
     AND ($4 IS NULL OR (i.active = 1 AND i.archived_at IS NULL \
         AND (i.available_from IS NULL OR i.available_from <= $4) \
         AND (i.available_until IS NULL OR i.available_until > $4)))";

/// Newest first, with figures.
pub async fn list_items(pool: &AnyPool, f: &ItemFilter, page: PageRequest) -> DbResult<Page<ItemFigures>> {
    let items = sqlx::query_as(&format!(
        "SELECT {ITEM}, {FIGURES} FROM catalogue_items i WHERE {ITEM_FILTER} ORDER BY i.id DESC LIMIT $5 OFFSET $6"
    ))
    .bind(f.programme_id)
    .bind(f.merchant_id)
    .bind(i64::from(f.include_archived))
    .bind(f.on_offer_at)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM catalogue_items i WHERE {ITEM_FILTER}"))
        .bind(f.programme_id)
        .bind(f.merchant_id)
        .bind(i64::from(f.include_archived))
        .bind(f.on_offer_at)
        .fetch_one(pool)
        .await?;
    Ok(Page { items, total })
}

pub async fn item_figures<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<ItemFigures>> {
    let row = sqlx::query_as(&format!("SELECT {ITEM}, {FIGURES} FROM catalogue_items i WHERE i.id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?;
    Ok(row)
}

stored_enum! {
    /// Where a redemption is: redeemed (a voucher waiting), fulfilled (written off by the
    /// merchant) or cancelled (points refunded).
    pub enum RedemptionState ("redemption state") {
        Redeemed = "redeemed",
        Fulfilled = "fulfilled",
        Cancelled = "cancelled",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct RedemptionRow {
    pub id: i64,
    pub item_id: i64,
    pub programme_id: i64,
    pub resident_id: i64,
    pub merchant_id: i64,
    pub title: String,
    pub points: i64,
    pub code: String,
    pub state: RedemptionState,
    pub fulfilled_at: Option<i64>,
    pub fulfilled_by: Option<String>,
    pub cancelled_at: Option<i64>,
    pub cancelled_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const REDEMPTION: &str = "id, item_id, programme_id, resident_id, merchant_id, title, points, code, state, \
                          fulfilled_at, fulfilled_by, cancelled_at, cancelled_by, created_at, updated_at";

/// Redemptions of the item the resident holds that are not cancelled.
pub async fn count_open_of_resident(tx: &mut Tx, item_id: i64, resident_id: i64) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM redemptions WHERE item_id = $1 AND resident_id = $2 AND state <> 'cancelled'",
    )
    .bind(item_id)
    .bind(resident_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n)
}

/// Inserts a redemption of `item` by the resident; `None` when the code is taken.
pub async fn insert_redemption(
    tx: &mut Tx,
    item: &ItemRow,
    resident_id: i64,
    code: &str,
    now: i64,
) -> DbResult<Option<RedemptionRow>> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO redemptions (item_id, programme_id, resident_id, merchant_id, title, points, code, state, \
             created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'redeemed', $8, $8) ON CONFLICT (code) DO NOTHING RETURNING {REDEMPTION}"
    ))
    .bind(item.id)
    .bind(item.programme_id)
    .bind(resident_id)
    .bind(item.merchant_id)
    .bind(&item.title)
    .bind(item.points_price)
    .bind(code)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn redemption<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<RedemptionRow>> {
    let row = sqlx::query_as(&format!("SELECT {REDEMPTION} FROM redemptions WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?;
    Ok(row)
}

pub async fn redemption_by_code<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    code: &str,
) -> DbResult<Option<RedemptionRow>> {
    let row = sqlx::query_as(&format!("SELECT {REDEMPTION} FROM redemptions WHERE code = $1"))
        .bind(code)
        .fetch_optional(ex)
        .await?;
    Ok(row)
}

/// Moves a redemption from `redeemed` to `fulfilled`; `None` when it is no longer `redeemed`.
pub async fn mark_fulfilled(tx: &mut Tx, id: i64, by: &str, now: i64) -> DbResult<Option<RedemptionRow>> {
    let row = sqlx::query_as(&format!(
        "UPDATE redemptions SET state = 'fulfilled', fulfilled_at = $1, fulfilled_by = $2, updated_at = $1 \
         WHERE id = $3 AND state = 'redeemed' RETURNING {REDEMPTION}"
    ))
    .bind(now)
    .bind(by)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

/// Moves a redemption from `redeemed` to `cancelled`; `None` when it is no longer `redeemed`.
pub async fn mark_cancelled(tx: &mut Tx, id: i64, by: &str, now: i64) -> DbResult<Option<RedemptionRow>> {
    let row = sqlx::query_as(&format!(
        "UPDATE redemptions SET state = 'cancelled', cancelled_at = $1, cancelled_by = $2, updated_at = $1 \
         WHERE id = $3 AND state = 'redeemed' RETURNING {REDEMPTION}"
    ))
    .bind(now)
    .bind(by)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

#[derive(Clone, Debug, Default)]
pub struct RedemptionFilter {
    pub programme_id: Option<i64>,
    pub resident_id: Option<i64>,
    pub item_id: Option<i64>,
    pub merchant_id: Option<i64>,
    pub state: Option<RedemptionState>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

const REDEMPTION_FILTER: &str = "($1 IS NULL OR programme_id = $1) AND ($2 IS NULL OR resident_id = $2) \
     AND ($3 IS NULL OR item_id = $3) AND ($4 IS NULL OR merchant_id = $4) AND ($5 IS NULL OR state = $5) \
     AND ($6 IS NULL OR created_at >= $6) AND ($7 IS NULL OR created_at < $7)";

/// Newest first.
pub async fn list_redemptions(
    pool: &AnyPool,
    f: &RedemptionFilter,
    page: PageRequest,
) -> DbResult<Page<RedemptionRow>> {
    let items = sqlx::query_as(&format!(
        "SELECT {REDEMPTION} FROM redemptions WHERE {REDEMPTION_FILTER} ORDER BY id DESC LIMIT $8 OFFSET $9"
    ))
    .bind(f.programme_id)
    .bind(f.resident_id)
    .bind(f.item_id)
    .bind(f.merchant_id)
    .bind(f.state)
    .bind(f.since)
    .bind(f.until)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM redemptions WHERE {REDEMPTION_FILTER}"))
        .bind(f.programme_id)
        .bind(f.resident_id)
        .bind(f.item_id)
        .bind(f.merchant_id)
        .bind(f.state)
        .bind(f.since)
        .bind(f.until)
        .fetch_one(pool)
        .await?;
    Ok(Page { items, total })
}
