//! Automatic coupon issuance: a rule gives one coupon of its template when its trigger happens —
//! a resident's first follow, a resident's first verified home, or a purchase that leaves the
//! resident with a few (configurable) purchases in a recent window, to lift repeat purchases.
//!
//! Rules fire inside the transaction of the event that triggers them, and record each issuance
//! under (rule, trigger), so an event handled twice issues once. Issuance takes template stock
//! (never below zero) but ignores the claim window and the per-resident limit: the rule decides.

use crate::codes::ErrorCode;
use crate::db::offers::coupons::{self as store, CouponRow, NewCoupon, NewRuleRow, RuleRow};
use crate::db::{self, Db, DbError, Tx};
use crate::domain::operators::access::{Actor, Role};
use crate::domain::{operators::audit, DomainError, DomainResult};

const DAY_MS: i64 = 86_400_000;

/// What makes a rule fire: stored with the rule, decoded in db/.
pub use crate::db::offers::coupons::RuleTrigger as Trigger;

/// A rule as an operator writes it.
#[derive(Clone, Debug)]
pub struct NewRule {
    pub template_id: i64,
    pub trigger: Trigger,
    /// For repeat purchases: fire when the resident's purchases in the window (this one included)
    /// are within `min..=max`.
    pub min_purchases: Option<i64>,
    pub max_purchases: Option<i64>,
    pub window_days: Option<i64>,
}

async fn template_owner(
    tx: &mut Tx,
    actor: &Actor,
    template_id: i64,
) -> DomainResult<(store::TemplateRow, crate::db::community::orgs::OrgRow)> {
    let t = store::get(&mut **tx, template_id).await?.ok_or(DomainError::NotFound("coupon template"))?;
    let owner = db::community::orgs::get(&mut **tx, t.owner_org_id)
        .await?
        .filter(|o| actor.reaches(&o.path))
        .ok_or(DomainError::NotFound("coupon template"))?;
    Ok((t, owner))
}

pub async fn create(db: &Db, actor: &Actor, new: NewRule) -> DomainResult<RuleRow> {
    let (min, max, window) = match new.trigger {
        Trigger::RepeatPurchase => {
            let (min, max, window) =
                (new.min_purchases.unwrap_or(1), new.max_purchases.unwrap_or(2), new.window_days.unwrap_or(30));
            if !(1..=100).contains(&min) || !(min..=100).contains(&max) || !(1..=365).contains(&window) {
                return Err(DomainError::invalid(
                    ErrorCode::InvalidRule,
                    "a repeat-purchase rule needs 1 <= min_purchases <= max_purchases <= 100 and window_days of 1..=365",
                ));
            }
            (Some(min), Some(max), Some(window))
        }
        _ => {
            if new.min_purchases.is_some() || new.max_purchases.is_some() || new.window_days.is_some() {
                return Err(DomainError::invalid(
                    ErrorCode::InvalidRule,
                    "purchase counts apply to repeat-purchase rules only",
                ));
            }
            (None, None, None)
        }
    };
    let mut tx = db.begin().await?;
    let (t, owner) = template_owner(&mut tx, actor, new.template_id).await?;
    actor.require(Role::Operator)?;
    if t.state != crate::db::offers::coupons::TemplateState::Active {
        return Err(DomainError::conflict(ErrorCode::CouponEnded, "the template has ended"));
    }
    let rule = store::insert_rule(
        &mut tx,
        &NewRuleRow {
            template_id: t.id,
            company_id: t.company_id,
            trigger_kind: new.trigger.as_str(),
            min_purchases: min,
            max_purchases: max,
            window_days: window,
        },
        db::now_ms(),
    )
    .await?;
    audit::record(&mut tx, actor, &owner, "coupon_rule.create", ("coupon_rule", rule.id), (None::<&()>, Some(&rule)))
        .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(rule)
}

/// The rules of a company the actor reaches.
pub async fn list(db: &Db, actor: &Actor, company_id: i64) -> DomainResult<Vec<RuleRow>> {
    crate::domain::operators::access::scope_of(db, actor, Some(company_id)).await?;
    Ok(store::rules_of(db.reader(), company_id, None, false).await?)
}

/// Stops a rule firing; what it issued stays.
pub async fn deactivate(db: &Db, actor: &Actor, id: i64) -> DomainResult<RuleRow> {
    let mut tx = db.begin().await?;
    let rule = store::rule(&mut *tx, id).await?.ok_or(DomainError::NotFound("coupon rule"))?;
    let (_, owner) =
        template_owner(&mut tx, actor, rule.template_id).await.map_err(crate::domain::not_found_as("coupon rule"))?;
    actor.require(Role::Operator)?;
    let after = store::deactivate_rule(&mut tx, id, db::now_ms()).await?;
    audit::record(&mut tx, actor, &owner, "coupon_rule.deactivate", ("coupon_rule", id), (Some(&rule), Some(&after)))
        .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

/// Fires the company's active rules for `trigger` in the caller's transaction; answers the
/// coupons issued. `trigger_ref` names the event (`resident:<id>`, `order:<id>`); `at` is when it
/// happened.
pub async fn fire(
    tx: &mut Tx,
    company_id: i64,
    trigger: Trigger,
    resident_id: i64,
    trigger_ref: &str,
    at: i64,
) -> DomainResult<Vec<CouponRow>> {
    let mut issued = Vec::new();
    for rule in store::rules_of(&mut **tx, company_id, Some(trigger.as_str()), true).await? {
        if trigger == Trigger::RepeatPurchase {
            let since = at - rule.window_days.unwrap_or(30) * DAY_MS;
            let n = db::retail::orders::orders_in_company_since(tx, resident_id, company_id, since).await?;
            if n < rule.min_purchases.unwrap_or(1) || n > rule.max_purchases.unwrap_or(2) {
                continue;
            }
        }
        if !store::claim_issuance(tx, rule.id, trigger_ref, at).await? {
            continue;
        }
        let Some(t) = store::get(&mut **tx, rule.template_id).await? else { continue };
        let (from, until) = match (t.valid_from, t.valid_until, t.valid_days) {
            (Some(f), Some(u), _) => (f, u),
            (_, _, Some(d)) => (at, at + d * DAY_MS),
            _ => continue,
        };
        if until <= at || !store::take_one_for_rule(tx, t.id).await? {
            tracing::info!(
                rule = rule.id,
                template = t.id,
                "coupon rule did not issue: template expired or out of stock"
            );
            continue;
        }
        for _ in 0..5 {
            let code = crate::domain::offers::coupons::new_code();
            let new = NewCoupon {
                template_id: t.id,
                resident_id,
                room_id: None,
                code: &code,
                valid_from: from,
                valid_until: until,
            };
            if let Some(c) = store::insert_coupon(tx, &new, at).await? {
                store::set_issuance_coupon(tx, rule.id, trigger_ref, c.id).await?;
                issued.push(c);
                break;
            }
        }
    }
    Ok(issued)
}
