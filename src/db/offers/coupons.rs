//! Coupon templates, claimed coupons, and coupons used and put back.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::{Any, AnyPool, Executor};

use crate::db::{subtree_pattern, DbResult, Page, PageRequest, Tx};

stored_enum! {
    /// Who may claim a template's coupons.
    pub enum CouponAudience ("coupon audience") {
        /// Residents who follow the official account now.
        Followers = "followers",
        /// Verified residents of the issuer's communities.
        VerifiedResidents = "verified_residents",
        /// Residents who have not bought from the company's merchants yet.
        NewCustomers = "new_customers",
    }
}

stored_enum! {
    /// What a coupon takes off: a fixed amount (代金券) or a percentage (折扣券).
    pub enum CouponKind ("coupon kind") {
        Cash = "cash",
        Discount = "discount",
    }
}

stored_enum! {
    /// Whether a template's coupons can still be claimed.
    pub enum TemplateState ("coupon template state") {
        Active = "active",
        Ended = "ended",
    }
}

stored_enum! {
    /// Where a claimed coupon is.
    pub enum CouponState ("coupon state") {
        Unused = "unused",
        Used = "used",
        Expired = "expired",
        Revoked = "revoked",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TemplateRow {
    pub id: i64,
    pub owner_org_id: i64,
    pub company_id: i64,
    pub category: String,
    pub title: String,
    pub kind: CouponKind,
    pub amount_off: Option<i64>,
    pub percent_off: Option<i64>,
    pub discount_cap: Option<i64>,
    pub min_spend: i64,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    pub valid_days: Option<i64>,
    pub claim_from: i64,
    pub claim_until: i64,
    pub stock_total: i64,
    pub stock_left: i64,
    pub per_resident_limit: i64,
    pub per_household_limit: Option<i64>,
    pub audience: CouponAudience,
    pub merchant_ids: String,
    pub state: TemplateState,
    pub ended_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const TEMPLATE: &str = "id, owner_org_id, company_id, category, title, kind, amount_off, percent_off, discount_cap, \
                        min_spend, valid_from, valid_until, valid_days, claim_from, claim_until, stock_total, stock_left, \
                        per_resident_limit, per_household_limit, audience, merchant_ids, state, ended_at, created_at, \
                        updated_at";

/// A template's terms, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateFields {
    pub category: String,
    pub title: String,
    pub kind: CouponKind,
    pub amount_off: Option<i64>,
    pub percent_off: Option<i64>,
    pub discount_cap: Option<i64>,
    pub min_spend: i64,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    pub valid_days: Option<i64>,
    pub claim_from: i64,
    pub claim_until: i64,
    pub stock_total: i64,
    pub per_resident_limit: i64,
    pub per_household_limit: Option<i64>,
    pub audience: String,
    pub merchant_ids: String,
}

pub async fn insert(
    tx: &mut Tx,
    owner_org_id: i64,
    company_id: i64,
    f: &TemplateFields,
    now: i64,
) -> DbResult<TemplateRow> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO coupon_templates (owner_org_id, company_id, category, title, kind, amount_off, percent_off, \
             discount_cap, min_spend, valid_from, valid_until, valid_days, claim_from, claim_until, stock_total, \
             stock_left, per_resident_limit, per_household_limit, audience, merchant_ids, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16, $17, $18, $19, 'active', \
                 $20, $20) RETURNING {TEMPLATE}"
    ))
    .bind(owner_org_id)
    .bind(company_id)
    .bind(&f.category)
    .bind(&f.title)
    .bind(f.kind)
    .bind(f.amount_off)
    .bind(f.percent_off)
    .bind(f.discount_cap)
    .bind(f.min_spend)
    .bind(f.valid_from)
    .bind(f.valid_until)
    .bind(f.valid_days)
    .bind(f.claim_from)
    .bind(f.claim_until)
    .bind(f.stock_total)
    .bind(f.per_resident_limit)
    .bind(f.per_household_limit)
    .bind(&f.audience)
    .bind(&f.merchant_ids)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

/// Rewrites a template's terms; `stock_left` moves by the change in `stock_total`.
pub async fn update(tx: &mut Tx, id: i64, f: &TemplateFields, now: i64) -> DbResult<TemplateRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE coupon_templates SET category = $1, title = $2, kind = $3, amount_off = $4, percent_off = $5, \
             discount_cap = $6, min_spend = $7, valid_from = $8, valid_until = $9, valid_days = $10, claim_from = $11, \
             claim_until = $12, stock_left = stock_left + ($13 - stock_total), stock_total = $13, \
             per_resident_limit = $14, per_household_limit = $15, audience = $16, merchant_ids = $17, updated_at = $18 \
         WHERE id = $19 RETURNING {TEMPLATE}"
    ))
    .bind(&f.category)
    .bind(&f.title)
    .bind(f.kind)
    .bind(f.amount_off)
    .bind(f.percent_off)
    .bind(f.discount_cap)
    .bind(f.min_spend)
    .bind(f.valid_from)
    .bind(f.valid_until)
    .bind(f.valid_days)
    .bind(f.claim_from)
    .bind(f.claim_until)
    .bind(f.stock_total)
    .bind(f.per_resident_limit)
    .bind(f.per_household_limit)
    .bind(&f.audience)
    .bind(&f.merchant_ids)
    .bind(now)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<TemplateRow>> {
    let row = sqlx::query_as(&format!("SELECT {TEMPLATE} FROM coupon_templates WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?;
    Ok(row)
}

pub async fn end(tx: &mut Tx, id: i64, now: i64) -> DbResult<TemplateRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE coupon_templates SET state = 'ended', ended_at = COALESCE(ended_at, $1), updated_at = $1 \
         WHERE id = $2 RETURNING {TEMPLATE}"
    ))
    .bind(now)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn delete(tx: &mut Tx, id: i64) -> DbResult<()> {
    sqlx::query("DELETE FROM coupon_templates WHERE id = $1").bind(id).execute(&mut **tx).await?;
    Ok(())
}

/// Takes one from the template's stock if it is active, inside its claim window and not sold out.
/// The conditional update is the guard against overselling, and it locks the template row until
/// the transaction ends, so the limits checked after it are checked one claim at a time.
pub async fn take_one(tx: &mut Tx, id: i64, now: i64) -> DbResult<bool> {
    let r = sqlx::query(
        "UPDATE coupon_templates SET stock_left = stock_left - 1 \
         WHERE id = $1 AND state = 'active' AND stock_left > 0 AND claim_from <= $2 AND claim_until > $2",
    )
    .bind(id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Clone, Debug, Default)]
pub struct TemplateFilter {
    pub scope_path: String,
    pub owner_org_id: Option<i64>,
    pub state: Option<TemplateState>,
    pub category: Option<String>,
}

const FILTER: &str = "o.path LIKE $1 AND ($2 IS NULL OR t.owner_org_id = $2) AND ($3 IS NULL OR t.state = $3) \
     AND ($4 IS NULL OR t.category = $4)";

pub async fn list(pool: &AnyPool, f: &TemplateFilter, page: PageRequest) -> DbResult<Page<TemplateRow>> {
    let scope = subtree_pattern(&f.scope_path);
    let cols = TEMPLATE.split(", ").map(|c| format!("t.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let items = sqlx::query_as(&format!(
        "SELECT {cols} FROM coupon_templates t JOIN orgs o ON o.id = t.owner_org_id WHERE {FILTER} \
         ORDER BY t.id DESC LIMIT $5 OFFSET $6"
    ))
    .bind(&scope)
    .bind(f.owner_org_id)
    .bind(f.state)
    .bind(&f.category)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let (total,): (i64,) = sqlx::query_as(&format!(
        "SELECT COUNT(*) FROM coupon_templates t JOIN orgs o ON o.id = t.owner_org_id WHERE {FILTER}"
    ))
    .bind(&scope)
    .bind(f.owner_org_id)
    .bind(f.state)
    .bind(&f.category)
    .fetch_one(pool)
    .await?;
    Ok(Page { items, total })
}

/// Active templates of a company whose claim window is open now.
pub async fn open_in_company(pool: &AnyPool, company_id: i64, now: i64) -> DbResult<Vec<TemplateRow>> {
    let rows = sqlx::query_as(&format!(
        "SELECT {TEMPLATE} FROM coupon_templates WHERE company_id = $1 AND state = 'active' AND claim_from <= $2 \
         AND claim_until > $2 ORDER BY id DESC"
    ))
    .bind(company_id)
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// What became of a template's coupons.
#[derive(Clone, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Figures {
    pub claimed: i64,
    pub used: i64,
    pub expired: i64,
    pub discount_given: i64,
}

pub async fn figures<'c, E: Executor<'c, Database = Any>>(ex: E, template_id: i64) -> DbResult<Figures> {
    let f = sqlx::query_as(
        "SELECT COUNT(*) AS claimed, \
                CAST(COALESCE(SUM(CASE WHEN state = 'used' THEN 1 ELSE 0 END), 0) AS BIGINT) AS used, \
                CAST(COALESCE(SUM(CASE WHEN state = 'expired' THEN 1 ELSE 0 END), 0) AS BIGINT) AS expired, \
                CAST(COALESCE(SUM(CASE WHEN state = 'used' THEN discount ELSE 0 END), 0) AS BIGINT) AS discount_given \
         FROM coupons WHERE template_id = $1",
    )
    .bind(template_id)
    .fetch_one(ex)
    .await?;
    Ok(f)
}

/// The figures of many templates in one statement (a list page), by template id; a template
/// nobody claimed from has none.
pub async fn figures_of_many(pool: &AnyPool, template_ids: &[i64]) -> DbResult<HashMap<i64, Figures>> {
    if template_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT template_id, COUNT(*), \
                CAST(COALESCE(SUM(CASE WHEN state = 'used' THEN 1 ELSE 0 END), 0) AS BIGINT), \
                CAST(COALESCE(SUM(CASE WHEN state = 'expired' THEN 1 ELSE 0 END), 0) AS BIGINT), \
                CAST(COALESCE(SUM(CASE WHEN state = 'used' THEN discount ELSE 0 END), 0) AS BIGINT) \
         FROM coupons WHERE template_id IN ({}) GROUP BY template_id",
        crate::db::in_list(template_ids.len(), 1)
    );
    let mut q = sqlx::query_as::<_, (i64, i64, i64, i64, i64)>(&sql);
    for id in template_ids {
        q = q.bind(id);
    }
    Ok(q.fetch_all(pool)
        .await?
        .into_iter()
        .map(|(id, claimed, used, expired, discount_given)| (id, Figures { claimed, used, expired, discount_given }))
        .collect())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CouponRow {
    pub id: i64,
    pub template_id: i64,
    pub resident_id: i64,
    pub room_id: Option<i64>,
    pub code: String,
    pub state: CouponState,
    pub valid_from: i64,
    pub valid_until: i64,
    pub discount: Option<i64>,
    pub used_at: Option<i64>,
    pub expired_at: Option<i64>,
    pub claimed_at: i64,
}

const COUPON: &str =
    "id, template_id, resident_id, room_id, code, state, valid_from, valid_until, discount, used_at, expired_at, claimed_at";

/// A coupon as it is issued.
#[derive(Clone, Copy, Debug)]
pub struct NewCoupon<'a> {
    pub template_id: i64,
    pub resident_id: i64,
    /// The home it counts against, for a per-household limit.
    pub room_id: Option<i64>,
    pub code: &'a str,
    pub valid_from: i64,
    pub valid_until: i64,
}

/// Issues a coupon; `None` when its code is taken (make another and try again).
pub async fn insert_coupon(tx: &mut Tx, c: &NewCoupon<'_>, now: i64) -> DbResult<Option<CouponRow>> {
    let NewCoupon { template_id, resident_id, room_id, code, valid_from, valid_until } = *c;
    let row = sqlx::query_as(&format!(
        "INSERT INTO coupons (template_id, resident_id, room_id, code, state, valid_from, valid_until, claimed_at) \
         VALUES ($1, $2, $3, $4, 'unused', $5, $6, $7) ON CONFLICT (code) DO NOTHING RETURNING {COUPON}"
    ))
    .bind(template_id)
    .bind(resident_id)
    .bind(room_id)
    .bind(code)
    .bind(valid_from)
    .bind(valid_until)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn get_coupon(tx: &mut Tx, id: i64) -> DbResult<Option<CouponRow>> {
    let row = sqlx::query_as(&format!("SELECT {COUPON} FROM coupons WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row)
}

/// How many coupons of a template a resident holds (in any state).
pub async fn count_for_resident<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    template_id: i64,
    resident_id: i64,
) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM coupons WHERE template_id = $1 AND resident_id = $2")
        .bind(template_id)
        .bind(resident_id)
        .fetch_one(ex)
        .await?;
    Ok(n)
}

/// How many coupons of a template a household (room) holds.
pub async fn count_for_room(tx: &mut Tx, template_id: i64, room_id: i64) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM coupons WHERE template_id = $1 AND room_id = $2")
        .bind(template_id)
        .bind(room_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(n)
}

/// A resident's coupons with their templates' titles, newest first.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct HeldCoupon {
    pub id: i64,
    pub template_id: i64,
    pub title: String,
    pub category: String,
    pub kind: CouponKind,
    pub amount_off: Option<i64>,
    pub percent_off: Option<i64>,
    pub discount_cap: Option<i64>,
    pub min_spend: i64,
    pub code: String,
    pub state: CouponState,
    pub valid_from: i64,
    pub valid_until: i64,
    pub used_at: Option<i64>,
    pub claimed_at: i64,
}

pub async fn held<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    resident_id: i64,
    state: Option<CouponState>,
    page: PageRequest,
) -> DbResult<Vec<HeldCoupon>> {
    let rows = sqlx::query_as(
        "SELECT c.id, c.template_id, t.title, t.category, t.kind, t.amount_off, t.percent_off, t.discount_cap, \
                t.min_spend, c.code, c.state, c.valid_from, c.valid_until, c.used_at, c.claimed_at \
         FROM coupons c JOIN coupon_templates t ON t.id = c.template_id \
         WHERE c.resident_id = $1 AND ($2 IS NULL OR c.state = $2) ORDER BY c.id DESC LIMIT $3 OFFSET $4",
    )
    .bind(resident_id)
    .bind(state)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(ex)
    .await?;
    Ok(rows)
}

/// Marks unused coupons whose validity has ended as expired; answers how many. Safe to run on
/// several instances at once: each row moves once.
pub async fn expire_due(pool: &AnyPool, now: i64) -> DbResult<u64> {
    let r = sqlx::query(
        "UPDATE coupons SET state = 'expired', expired_at = $1 WHERE state = 'unused' AND valid_until <= $1",
    )
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}

/// Takes one from the stock for an automatic issuance: the template must be active and in
/// stock, whatever its claim window.
pub async fn take_one_for_rule(tx: &mut Tx, id: i64) -> DbResult<bool> {
    let r = sqlx::query(
        "UPDATE coupon_templates SET stock_left = stock_left - 1 WHERE id = $1 AND state = 'active' AND stock_left > 0",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

stored_enum! {
    /// What makes an issuance rule fire.
    pub enum RuleTrigger ("coupon rule trigger") {
        /// A resident's first follow of the official account.
        FirstFollow = "first_follow",
        /// A resident's first verified home.
        FirstBinding = "first_binding",
        /// A purchase at one of the company's merchants.
        RepeatPurchase = "repeat_purchase",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RuleRow {
    pub id: i64,
    pub template_id: i64,
    pub company_id: i64,
    pub trigger_kind: RuleTrigger,
    pub min_purchases: Option<i64>,
    pub max_purchases: Option<i64>,
    pub window_days: Option<i64>,
    #[sqlx(try_from = "crate::db::Flag")]
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

const RULE: &str =
    "id, template_id, company_id, trigger_kind, min_purchases, max_purchases, window_days, active, created_at, updated_at";

/// A rule as an operator makes it.
#[derive(Clone, Copy, Debug)]
pub struct NewRuleRow<'a> {
    pub template_id: i64,
    pub company_id: i64,
    pub trigger_kind: &'a str,
    pub min_purchases: Option<i64>,
    pub max_purchases: Option<i64>,
    pub window_days: Option<i64>,
}

pub async fn insert_rule(tx: &mut Tx, r: &NewRuleRow<'_>, now: i64) -> DbResult<RuleRow> {
    let NewRuleRow { template_id, company_id, trigger_kind, min_purchases, max_purchases, window_days } = *r;
    let row = sqlx::query_as(&format!(
        "INSERT INTO coupon_rules (template_id, company_id, trigger_kind, min_purchases, max_purchases, window_days, active, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7) RETURNING {RULE}"
    ))
    .bind(template_id)
    .bind(company_id)
    .bind(trigger_kind)
    .bind(min_purchases)
    .bind(max_purchases)
    .bind(window_days)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn rule<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<RuleRow>> {
    let row =
        sqlx::query_as(&format!("SELECT {RULE} FROM coupon_rules WHERE id = $1")).bind(id).fetch_optional(ex).await?;
    Ok(row)
}

pub async fn deactivate_rule(tx: &mut Tx, id: i64, now: i64) -> DbResult<RuleRow> {
    let row =
        sqlx::query_as(&format!("UPDATE coupon_rules SET active = 0, updated_at = $1 WHERE id = $2 RETURNING {RULE}"))
            .bind(now)
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(row)
}

/// A company's rules (active ones only, or all).
pub async fn rules_of<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    company_id: i64,
    trigger_kind: Option<&str>,
    active_only: bool,
) -> DbResult<Vec<RuleRow>> {
    let rows = sqlx::query_as(&format!(
        "SELECT {RULE} FROM coupon_rules WHERE company_id = $1 AND ($2 IS NULL OR trigger_kind = $2) \
         AND ($3 = 0 OR active = 1) ORDER BY id"
    ))
    .bind(company_id)
    .bind(trigger_kind)
    .bind(i64::from(active_only))
    .fetch_all(ex)
    .await?;
    Ok(rows)
}

/// Records that a rule fired for a trigger; `false` when it already had.
pub async fn claim_issuance(tx: &mut Tx, rule_id: i64, trigger_ref: &str, now: i64) -> DbResult<bool> {
    let r = sqlx::query(
        "INSERT INTO coupon_issuances (rule_id, trigger_ref, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (rule_id, trigger_ref) DO NOTHING",
    )
    .bind(rule_id)
    .bind(trigger_ref)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_issuance_coupon(tx: &mut Tx, rule_id: i64, trigger_ref: &str, coupon_id: i64) -> DbResult<()> {
    sqlx::query("UPDATE coupon_issuances SET coupon_id = $1 WHERE rule_id = $2 AND trigger_ref = $3")
        .bind(coupon_id)
        .bind(rule_id)
        .bind(trigger_ref)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A coupon and the terms it was issued on, found by its code.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CouponWithTerms {
    pub id: i64,
    pub resident_id: i64,
    pub state: CouponState,
    pub valid_from: i64,
    pub valid_until: i64,
    pub template_id: i64,
    pub owner_org_id: i64,
    pub company_id: i64,
    pub kind: CouponKind,
    pub amount_off: Option<i64>,
    pub percent_off: Option<i64>,
    pub discount_cap: Option<i64>,
    pub min_spend: i64,
    pub merchant_ids: String,
}

pub async fn by_code(tx: &mut Tx, code: &str) -> DbResult<Option<CouponWithTerms>> {
    let row = sqlx::query_as(
        "SELECT c.id, c.resident_id, c.state, c.valid_from, c.valid_until, c.template_id, t.owner_org_id, t.company_id, \
                t.kind, t.amount_off, t.percent_off, t.discount_cap, t.min_spend, t.merchant_ids \
         FROM coupons c JOIN coupon_templates t ON t.id = c.template_id WHERE c.code = $1",
    )
    .bind(code)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

/// Writes a coupon off if it is still unused: the guard against one coupon on two orders.
pub async fn mark_used(tx: &mut Tx, id: i64, discount: i64, merchant_id: i64, now: i64) -> DbResult<bool> {
    let r = sqlx::query(
        "UPDATE coupons SET state = 'used', used_at = $1, discount = $2, used_by_merchant = $3 \
         WHERE id = $4 AND state = 'unused'",
    )
    .bind(now)
    .bind(discount)
    .bind(merchant_id)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Puts a used coupon back, if it is still within its validity.
pub async fn mark_unused(tx: &mut Tx, id: i64, now: i64) -> DbResult<bool> {
    let r = sqlx::query(
        "UPDATE coupons SET state = 'unused', used_at = NULL, discount = NULL, used_by_merchant = NULL \
         WHERE id = $1 AND state = 'used' AND valid_until > $2",
    )
    .bind(id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}
