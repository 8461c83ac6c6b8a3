//! What merchants report: orders (with a coupon, earning points), refunds, and coupons written
//! off at the counter. Money is integer fen; points are whole numbers, rounded down.
//!
//! An order is idempotent on (merchant, order number); a coupon is written off by a conditional
//! update on its state, so one coupon on twenty concurrent orders is used once; a refund is
//! idempotent on (order, refund number) and can never exceed what was paid.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::codes::ErrorCode;
use crate::db::retail::orders::{self as store, MultiplierRow, NewOrder, OrderRow, RefundRow};
use crate::db::{self, Db, DbError};
use crate::domain::community::sessions::ResidentActor;
use crate::domain::loyalty::points::{self, Kind, Posting, Source};
use crate::domain::money::payouts::Payer;
use crate::domain::offers::coupons;
use crate::domain::retail::merchants::MerchantActor;
use crate::domain::{DomainError, DomainResult};

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub name: String,
    pub category: String,
    /// Fen.
    pub amount: i64,
}

/// An order as a merchant reports it.
#[derive(Clone, Debug)]
pub struct OrderInput {
    pub order_no: String,
    pub member_code: String,
    pub amount: i64,
    pub items: Vec<Item>,
    pub ordered_at: i64,
    pub coupon_code: Option<String>,
}

/// Points for a purchase: each item earns `per_yuan` points a yuan times its category's
/// multiplier (the highest campaign running at `at`, 100% without one), scaled to what was paid
/// after the coupon, times `first_percent` on a first purchase at the merchant; rounded down.
pub fn purchase_points(
    items: &[Item],
    amount: i64,
    paid: i64,
    per_yuan: i64,
    multipliers: &[MultiplierRow],
    at: i64,
    first_percent: Option<i64>,
) -> i64 {
    if amount <= 0 || paid <= 0 {
        return 0;
    }
    let percent_for = |category: &str| {
        multipliers
            .iter()
            .filter(|m| m.category == category && m.starts_at <= at && at < m.ends_at)
            .map(|m| m.percent)
            .max()
            .unwrap_or(100)
    };
    let weighted: i128 =
        items.iter().map(|i| i128::from(i.amount) * i128::from(per_yuan) * i128::from(percent_for(&i.category))).sum();
    // weighted is in fen·points/yuan·percent: divide by 100 fen/yuan and 100 percent.
    let mut points = weighted * i128::from(paid) / (i128::from(amount) * 10_000);
    if let Some(p) = first_percent {
        points = points * i128::from(p) / 100;
    }
    points.clamp(0, i128::from(i64::MAX)) as i64
}

fn bad(code: ErrorCode, message: impl Into<String>) -> DomainError {
    DomainError::invalid(code, message)
}

fn check_order_no(no: &str, field: &str) -> DomainResult<()> {
    let ok = (1..=64).contains(&no.len()) && no.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(bad(ErrorCode::ValidationFailed, format!("{field} must be 1–64 of A-Z a-z 0-9 - _")))
    }
}

/// The answer to a repeated order number: the first order (`true`), unless the report differs.
fn replay(first: OrderRow, input: &OrderInput) -> DomainResult<(OrderRow, bool)> {
    if first.amount != input.amount {
        return Err(DomainError::conflict(
            ErrorCode::OrderNoReused,
            "this order number was reported with another amount",
        ));
    }
    Ok((first, true))
}

/// Records an order; a repeated order number answers the first order (`true`), also while the
/// first is still being recorded.
pub async fn report(
    db: &Db,
    payer: &Payer,
    merchant: &MerchantActor,
    input: OrderInput,
) -> DomainResult<(OrderRow, bool)> {
    check_order_no(&input.order_no, "order_no")?;
    if !(1..=100_000_000).contains(&input.amount) {
        return Err(bad(ErrorCode::InvalidAmount, "amount must be 1..=100000000 fen"));
    }
    if input.items.is_empty() || input.items.len() > 200 {
        return Err(bad(ErrorCode::InvalidItems, "an order has 1–200 items"));
    }
    if input.items.iter().any(|i| i.amount < 0 || i.name.trim().is_empty() || i.category.trim().is_empty()) {
        return Err(bad(ErrorCode::InvalidItems, "every item needs a name, a category and an amount ≥ 0"));
    }
    if input.items.iter().try_fold(0i64, |sum, i| sum.checked_add(i.amount)) != Some(input.amount) {
        return Err(bad(ErrorCode::InvalidItems, "the items do not add up to the amount"));
    }
    let now = db::now_ms();
    if input.ordered_at > now + 300_000 || input.ordered_at < now - 30 * 86_400_000 {
        return Err(bad(ErrorCode::InvalidTime, "ordered_at must be within the last 30 days"));
    }
    let mut tx = db.begin().await?;
    if let Some(o) = store::order_by_no(&mut *tx, merchant.merchant_id(), &input.order_no).await? {
        return replay(o, &input);
    }
    let resident_id =
        store::resident_of_member_code(&mut tx, input.member_code.trim(), now).await?.ok_or_else(|| {
            bad(ErrorCode::InvalidMemberCode, "the member code is unknown or has expired; ask for a fresh one")
        })?;
    // The order number is claimed before anything is checked or taken: a concurrent report of the
    // same number waits here until the first one's transaction ends (PostgreSQL holds the unique
    // key for it; SQLite runs one writer at a time), then finds the first order and answers it.
    // Checking the coupon first would let a duplicate see the coupon the first one just used.
    let items = serde_json::to_string(&input.items).unwrap_or_else(|_| "[]".into());
    let new = NewOrder {
        merchant_id: merchant.merchant_id(),
        company_id: merchant.company_id(),
        order_no: &input.order_no,
        resident_id,
        amount: input.amount,
        items: &items,
        ordered_at: input.ordered_at,
    };
    let Some(claimed) = store::insert_order(&mut tx, &new, now).await? else {
        let o = store::order_by_no(&mut *tx, merchant.merchant_id(), &input.order_no)
            .await?
            .ok_or(DbError::UniqueViolation)?;
        return replay(o, &input);
    };
    let company =
        db::community::orgs::get(&mut *tx, merchant.company_id()).await?.ok_or(DomainError::NotFound("company"))?;
    let programme = points::programme_for(&mut tx, &company, now).await?;

    let (coupon_id, discount) = match input.coupon_code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => (None, 0),
        Some(code) => {
            let c = coupons::in_reach_of(&mut tx, merchant, code).await?;
            let discount = coupons::use_at(&mut tx, merchant, &c, Some(resident_id), Some(input.amount), now).await?;
            (Some(c.id), discount)
        }
    };
    let paid = input.amount - discount;
    let first = store::other_orders_at_merchant(&mut tx, resident_id, merchant.merchant_id(), claimed.id).await? == 0;
    let (per_yuan, first_percent) = store::purchase_rates_in(&mut tx, programme.id).await?;
    let multipliers = store::multipliers(&mut *tx, programme.id).await?;
    let earned = purchase_points(
        &input.items,
        input.amount,
        paid,
        per_yuan,
        &multipliers,
        input.ordered_at,
        first.then_some(first_percent),
    );
    let order = store::settle_order(&mut tx, claimed.id, coupon_id, discount, earned).await?;
    if earned > 0 {
        let posting = Posting {
            kind: Kind::Earn,
            source: Source::Purchase,
            reference: format!("order:{}", order.id),
            amount: earned,
            operator: None,
            remark: Some(format!(
                "{} 订单 {}{}",
                merchant.name(),
                order.order_no,
                if first { "（首次消费）" } else { "" }
            )),
        };
        points::post(&mut tx, programme.id, resident_id, &posting, now).await?;
    }
    let wake = crate::domain::tasks::on_purchase(
        &mut tx,
        payer,
        resident_id,
        merchant.merchant_id(),
        merchant.company_id(),
        now,
    )
    .await?;
    let trigger = format!("order:{}", order.id);
    crate::domain::offers::coupon_rules::fire(
        &mut tx,
        order.company_id,
        crate::domain::offers::coupon_rules::Trigger::RepeatPurchase,
        resident_id,
        &trigger,
        input.ordered_at,
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    wake.send();
    Ok((order, false))
}

/// Refunds part or all of an order: the points it earned come back in proportion (all that is
/// left on a full refund, and never more than the resident still has), and a full refund puts
/// its coupon back if the coupon is still valid. A repeated refund number answers the first.
pub async fn refund(
    db: &Db,
    merchant: &MerchantActor,
    order_no: &str,
    refund_no: &str,
    amount: i64,
) -> DomainResult<RefundRow> {
    check_order_no(refund_no, "refund_no")?;
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    // The order is locked first, so refunds of one order run one after another: a retry of a
    // refund still in progress waits for it and then finds its number below, instead of measuring
    // what is left against the order as it was before that refund.
    let order = store::lock_order_by_no(&mut tx, merchant.merchant_id(), order_no)
        .await?
        .ok_or(DomainError::NotFound("order"))?;
    if let Some(r) = store::refund_by_no(&mut tx, order.id, refund_no).await? {
        if r.amount != amount {
            return Err(DomainError::conflict(
                ErrorCode::RefundNoReused,
                "this refund number was used with another amount",
            ));
        }
        return Ok(r);
    }
    let left = order.paid - order.refunded;
    if amount < 1 || amount > left {
        return Err(bad(ErrorCode::RefundTooLarge, format!("a refund must be 1..={left} fen")));
    }
    let full = amount == left;
    // points × amount can pass i64 (1e11 points on a 1e8-fen order): the share is taken in i128,
    // and it is at most the order's points, so it fits back.
    let owed = if full {
        order.points - order.points_back
    } else {
        let share = i128::from(order.points) * i128::from(amount) / i128::from(order.paid.max(1));
        i64::try_from(share).unwrap_or(i64::MAX)
    };
    let company =
        db::community::orgs::get(&mut *tx, order.company_id).await?.ok_or(DomainError::NotFound("company"))?;
    let programme = points::programme_for(&mut tx, &company, now).await?;
    let balance =
        db::loyalty::points::account(&mut *tx, programme.id, order.resident_id).await?.map_or(0, |a| a.balance);
    let taken = owed.min(balance).max(0);
    let order = store::add_refund(&mut tx, order.id, amount, taken)
        .await?
        .ok_or_else(|| bad(ErrorCode::RefundTooLarge, "the refunds would exceed what was paid"))?;
    if taken > 0 {
        let posting = Posting {
            kind: Kind::Refund,
            source: Source::Purchase,
            reference: format!("refund:{}:{refund_no}", order.id),
            amount: -taken,
            operator: None,
            remark: Some(format!("订单 {} 退款 {amount} 分", order.order_no)),
        };
        points::post(&mut tx, programme.id, order.resident_id, &posting, now).await?;
    }
    let restored = match (full, order.coupon_id) {
        (true, Some(c)) => coupons::put_back(&mut tx, c, now).await?,
        _ => false,
    };
    let r = store::insert_refund(&mut tx, order.id, refund_no, amount, taken, restored, now).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(r)
}

/// Writes a coupon off at the counter, without an order. `amount` is what it is used on, needed
/// for discounts and minimum spends. Answers the discount.
pub async fn write_off(db: &Db, merchant: &MerchantActor, code: &str, amount: Option<i64>) -> DomainResult<(i64, i64)> {
    if amount.is_some_and(|a| !(1..=100_000_000).contains(&a)) {
        return Err(bad(ErrorCode::InvalidAmount, "amount must be 1..=100000000 fen"));
    }
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let c = coupons::in_reach_of(&mut tx, merchant, code.trim()).await?;
    let discount = coupons::use_at(&mut tx, merchant, &c, None, amount, now).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok((c.id, discount))
}

/// A fresh member code (18 digits, valid ten minutes) the resident shows at the counter.
pub async fn member_code(db: &Db, me: &ResidentActor) -> DomainResult<(String, i64)> {
    let now = db::now_ms();
    let expires_at = now + 10 * 60_000;
    let mut tx = db.begin().await?;
    for _ in 0..5 {
        let code: String = {
            let mut rng = rand::thread_rng();
            std::iter::once(char::from(b'1' + rng.gen_range(0..9u8)))
                .chain((0..17).map(|_| char::from(b'0' + rng.gen_range(0..10u8))))
                .collect()
        };
        if store::insert_member_code(&mut tx, &code, me.resident_id, expires_at, now).await? {
            tx.commit().await.map_err(DbError::from)?;
            return Ok((code, expires_at));
        }
    }
    Err(DbError::UniqueViolation.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(category: &str, amount: i64) -> Item {
        Item { name: "x".into(), category: category.into(), amount }
    }

    #[test]
    fn purchase_points_follow_rate_campaigns_coupon_and_first_purchase() {
        let items = [item("fruit", 3000), item("dairy", 2000)];
        // 50 yuan at 1 point a yuan.
        assert_eq!(purchase_points(&items, 5000, 5000, 1, &[], 0, None), 50);
        // Double points on fruit this week.
        let fruit = MultiplierRow {
            id: 1,
            programme_id: 1,
            category: "fruit".into(),
            percent: 200,
            starts_at: 0,
            ends_at: 10,
            created_at: 0,
        };
        assert_eq!(purchase_points(&items, 5000, 5000, 1, std::slice::from_ref(&fruit), 5, None), 80);
        assert_eq!(purchase_points(&items, 5000, 5000, 1, &[fruit], 10, None), 50, "the campaign has ended");
        // A 10-yuan coupon: points on the 40 yuan paid.
        assert_eq!(purchase_points(&items, 5000, 4000, 1, &[], 0, None), 40);
        // First purchase doubled.
        assert_eq!(purchase_points(&items, 5000, 5000, 1, &[], 0, Some(200)), 100);
        // Fractions round down.
        assert_eq!(purchase_points(&[item("x", 199)], 199, 199, 1, &[], 0, None), 1);
        assert_eq!(purchase_points(&[item("x", 199)], 199, 0, 1, &[], 0, None), 0);
    }
}
