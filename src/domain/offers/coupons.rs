//! Coupons: templates an owner (property company, community or merchant) issues, and the coupons
//! residents claim from them.
//!
//! A claim takes one from the template's stock with a conditional update (never below zero) that
//! also locks the template row, then checks the per-resident and per-household limits inside the
//! same transaction, so neither stock nor limits can be exceeded by concurrent claims. A claim
//! sent with an `Idempotency-Key` answers the first claim's coupon when repeated.

use rand::Rng;
use sqlx::AnyConnection;

use crate::codes::ErrorCode;
use crate::db::community::orgs::{OrgKind, OrgRow};
use crate::db::group::GroupCommit;
use crate::db::offers::coupons::{
    self as store, CouponAudience, CouponRow, CouponWithTerms, Figures, HeldCoupon, NewCoupon, TemplateFields,
    TemplateFilter, TemplateRow,
};
pub use crate::db::offers::coupons::{CouponKind, CouponState, TemplateState};
use crate::db::{self, Db, DbError, Page, PageRequest, Tx};
use crate::domain::accounts::registry::Accounts;
use crate::domain::community::orgs::company_of;
use crate::domain::community::sessions::ResidentActor;
use crate::domain::money::gates::Gates;
use crate::domain::operators::access::{scope_of, Actor, Role};
use crate::domain::retail::merchants::MerchantActor;
use crate::domain::{operators::audit, required_text, DomainError, DomainResult};

const DAY_MS: i64 = 86_400_000;
/// The operation name claims are recorded under in the idempotency store.
const CLAIM: &str = "coupon.claim";

/// A template's terms as an operator writes them. Money is fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateInput {
    pub category: String,
    pub title: String,
    /// `cash` (amount off) or `discount` (percent off, optionally capped).
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
    /// `followers`, `verified_residents` or `new_customers`.
    pub audience: String,
    pub merchant_ids: Vec<i64>,
}

fn invalid_as(code: ErrorCode, message: impl Into<String>) -> DomainError {
    DomainError::invalid(code, message)
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::invalid(ErrorCode::InvalidCoupon, message)
}

impl TemplateInput {
    /// Checks the terms on their own (the merchants are checked against the owner separately).
    pub fn validated(&self) -> DomainResult<TemplateFields> {
        let (amount_off, percent_off, discount_cap) = match self.kind {
            CouponKind::Cash => {
                let a = self.amount_off.ok_or_else(|| invalid("a cash voucher needs amount_off (fen)"))?;
                if !(1..=10_000_000).contains(&a) || self.percent_off.is_some() || self.discount_cap.is_some() {
                    return Err(invalid(
                        "a cash voucher takes amount_off of 1..=10000000 fen and no percent_off or cap",
                    ));
                }
                (Some(a), None, None)
            }
            CouponKind::Discount => {
                let p = self.percent_off.ok_or_else(|| invalid("a discount needs percent_off"))?;
                if !(1..=99).contains(&p) || self.amount_off.is_some() {
                    return Err(invalid("a discount takes percent_off of 1..=99 and no amount_off"));
                }
                if self.discount_cap.is_some_and(|c| !(1..=10_000_000).contains(&c)) {
                    return Err(invalid("discount_cap must be 1..=10000000 fen"));
                }
                (None, Some(p), self.discount_cap)
            }
        };
        if !(0..=100_000_000).contains(&self.min_spend) {
            return Err(invalid("min_spend must be 0..=100000000 fen"));
        }
        if let Some(a) = amount_off {
            if self.min_spend > 0 && a > self.min_spend {
                return Err(invalid("amount_off cannot exceed min_spend"));
            }
        }
        match (self.valid_from, self.valid_until, self.valid_days) {
            (Some(f), Some(u), None) if f < u => {
                if let Some(why) = crate::domain::window_refusal("valid_from", f, "valid_until", u) {
                    return Err(invalid(why));
                }
            }
            (None, None, Some(d)) if (1..=3650).contains(&d) => {}
            _ => return Err(invalid("give either valid_from < valid_until, or valid_days of 1..=3650")),
        }
        if let Some(why) = crate::domain::window_refusal("claim_from", self.claim_from, "claim_until", self.claim_until)
        {
            return Err(invalid(why));
        }
        if !(1..=10_000_000).contains(&self.stock_total) {
            return Err(invalid("stock_total must be 1..=10000000"));
        }
        if !(1..=100).contains(&self.per_resident_limit)
            || self.per_household_limit.is_some_and(|h| !(1..=100).contains(&h))
        {
            return Err(invalid("limits must be 1..=100"));
        }
        if CouponAudience::parse(&self.audience).is_none() {
            return Err(invalid("audience must be followers, verified_residents or new_customers"));
        }
        let mut merchants = self.merchant_ids.clone();
        merchants.sort_unstable();
        merchants.dedup();
        Ok(TemplateFields {
            category: required_text("category", &self.category, 32)?,
            title: required_text("title", &self.title, 64)?,
            kind: self.kind,
            amount_off,
            percent_off,
            discount_cap,
            min_spend: self.min_spend,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            valid_days: self.valid_days,
            claim_from: self.claim_from,
            claim_until: self.claim_until,
            stock_total: self.stock_total,
            per_resident_limit: self.per_resident_limit,
            per_household_limit: self.per_household_limit,
            audience: self.audience.clone(),
            merchant_ids: serde_json::to_string(&merchants).unwrap_or_else(|_| "[]".into()),
        })
    }
}

/// The owner, in reach, able to issue coupons.
async fn owner_in_reach(tx: &mut Tx, actor: &Actor, owner_org_id: i64) -> DomainResult<(OrgRow, i64)> {
    let owner = db::community::orgs::get(&mut **tx, owner_org_id)
        .await?
        .filter(|o| actor.reaches(&o.path))
        .ok_or(DomainError::NotFound("org"))?;
    let company = company_of(&owner).filter(|_| owner.kind != OrgKind::Platform).ok_or_else(|| {
        DomainError::invalid(
            ErrorCode::InvalidOwner,
            "coupons are issued by a property company, a community or a merchant",
        )
    })?;
    if owner.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::OrgArchived, "the owner org is archived"));
    }
    Ok((owner, company))
}

/// The merchants a template is restricted to, as stored (empty: no restriction). A list that
/// does not decode refuses the coupon's use — it is never read as "any merchant".
pub(crate) fn restricted_merchants(stored: &str) -> DomainResult<Vec<i64>> {
    serde_json::from_str(stored).map_err(|_| {
        DomainError::conflict(
            ErrorCode::CouponTemplateBroken,
            "the coupon's list of merchants cannot be read; the operator must save the template again",
        )
    })
}

/// Every listed merchant must be a merchant of the owner's company.
async fn check_merchants(tx: &mut Tx, company_id: i64, fields: &TemplateFields) -> DomainResult<()> {
    let ids = restricted_merchants(&fields.merchant_ids)?;
    for id in ids {
        let ok = db::community::orgs::get(&mut **tx, id).await?.is_some_and(|m| {
            m.kind == OrgKind::Merchant && m.archived_at.is_none() && company_of(&m) == Some(company_id)
        });
        if !ok {
            return Err(invalid(format!("org {id} is not an active merchant of this property company")));
        }
    }
    Ok(())
}

pub async fn create(db: &Db, actor: &Actor, owner_org_id: i64, input: TemplateInput) -> DomainResult<TemplateRow> {
    let fields = input.validated()?;
    let mut tx = db.begin().await?;
    let (owner, company_id) = owner_in_reach(&mut tx, actor, owner_org_id).await?;
    actor.require(Role::Operator)?;
    check_merchants(&mut tx, company_id, &fields).await?;
    let t = store::insert(&mut tx, owner.id, company_id, &fields, db::now_ms()).await?;
    audit::record(&mut tx, actor, &owner, "coupon_template.create", ("coupon_template", t.id), (None::<&()>, Some(&t)))
        .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(t)
}

async fn template_in_reach(tx: &mut Tx, actor: &Actor, id: i64) -> DomainResult<(TemplateRow, OrgRow)> {
    let t = store::get(&mut **tx, id).await?.ok_or(DomainError::NotFound("coupon template"))?;
    let owner = db::community::orgs::get(&mut **tx, t.owner_org_id)
        .await?
        .filter(|o| actor.reaches(&o.path))
        .ok_or(DomainError::NotFound("coupon template"))?;
    Ok((t, owner))
}

pub async fn get(db: &Db, actor: &Actor, id: i64) -> DomainResult<(TemplateRow, Figures)> {
    let t = store::get(db.reader(), id).await?.ok_or(DomainError::NotFound("coupon template"))?;
    scope_of(db, actor, Some(t.owner_org_id)).await.map_err(crate::domain::not_found_as("coupon template"))?;
    let f = store::figures(db.reader(), id).await?;
    Ok((t, f))
}

pub async fn list(
    db: &Db,
    actor: &Actor,
    mut filter: TemplateFilter,
    page: PageRequest,
) -> DomainResult<Page<(TemplateRow, Figures)>> {
    filter.scope_path = scope_of(db, actor, filter.owner_org_id).await?;
    let found = store::list(db.reader(), &filter, page).await?;
    let ids: Vec<i64> = found.items.iter().map(|t| t.id).collect();
    let mut figures = store::figures_of_many(db.reader(), &ids).await?;
    let items = found
        .items
        .into_iter()
        .map(|t| {
            let f = figures.remove(&t.id).unwrap_or_default();
            (t, f)
        })
        .collect();
    Ok(Page { items, total: found.total })
}

/// Rewrites a template's terms. Once claims have started only the title, the category, the
/// stock (not below what was claimed), the end of the claim window and a larger per-resident
/// limit may change: residents hold coupons on the other terms.
pub async fn update(db: &Db, actor: &Actor, id: i64, input: TemplateInput) -> DomainResult<TemplateRow> {
    let fields = input.validated()?;
    let mut tx = db.begin().await?;
    let (before, owner) = template_in_reach(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    if before.state != TemplateState::Active {
        return Err(DomainError::conflict(ErrorCode::CouponEnded, "the template has ended"));
    }
    check_merchants(&mut tx, before.company_id, &fields).await?;
    let claimed = before.stock_total - before.stock_left;
    if claimed > 0 {
        let locked = [
            ("kind", before.kind != fields.kind),
            ("amount_off", before.amount_off != fields.amount_off),
            ("percent_off", before.percent_off != fields.percent_off),
            ("discount_cap", before.discount_cap != fields.discount_cap),
            ("min_spend", before.min_spend != fields.min_spend),
            ("valid_from", before.valid_from != fields.valid_from),
            ("valid_until", before.valid_until != fields.valid_until),
            ("valid_days", before.valid_days != fields.valid_days),
            ("claim_from", before.claim_from != fields.claim_from),
            ("per_household_limit", before.per_household_limit != fields.per_household_limit),
            ("audience", before.audience.as_str() != fields.audience),
            ("merchant_ids", before.merchant_ids != fields.merchant_ids),
            ("per_resident_limit", fields.per_resident_limit < before.per_resident_limit),
        ];
        let changed: Vec<&str> = locked.iter().filter(|(_, c)| *c).map(|(n, _)| *n).collect();
        if !changed.is_empty() {
            return Err(DomainError::conflict(
                ErrorCode::CouponTermsLocked,
                format!(
                    "{claimed} coupons have been claimed, so these can no longer change: {}; only title, category, \
                     stock_total, claim_until and a larger per_resident_limit can",
                    changed.join(", ")
                ),
            ));
        }
        if fields.stock_total < claimed {
            return Err(DomainError::conflict(
                ErrorCode::StockBelowClaimed,
                format!("stock_total cannot go below the {claimed} already claimed"),
            ));
        }
    }
    let after = store::update(&mut tx, id, &fields, db::now_ms()).await?;
    audit::record(
        &mut tx,
        actor,
        &owner,
        "coupon_template.update",
        ("coupon_template", id),
        (Some(&before), Some(&after)),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

/// Ends a template: no more claims; claimed coupons stay usable. Twice answers the ended one.
pub async fn end(db: &Db, actor: &Actor, id: i64) -> DomainResult<TemplateRow> {
    let mut tx = db.begin().await?;
    let (before, owner) = template_in_reach(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    if before.state == TemplateState::Ended {
        return Ok(before);
    }
    let after = store::end(&mut tx, id, db::now_ms()).await?;
    audit::record(
        &mut tx,
        actor,
        &owner,
        "coupon_template.end",
        ("coupon_template", id),
        (Some(&before), Some(&after)),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

/// Deletes a template nobody has claimed from; one with claims must be ended instead.
pub async fn delete(db: &Db, actor: &Actor, id: i64) -> DomainResult<()> {
    let mut tx = db.begin().await?;
    let (before, owner) = template_in_reach(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    if before.stock_left < before.stock_total {
        return Err(DomainError::conflict(
            ErrorCode::CouponHasClaims,
            "coupons were claimed from this template; end it instead",
        ));
    }
    store::delete(&mut tx, id).await?;
    audit::record(
        &mut tx,
        actor,
        &owner,
        "coupon_template.delete",
        ("coupon_template", id),
        (Some(&before), None::<&()>),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(())
}

// ----- residents ---------------------------------------------------------------------------

/// Whether the resident is in the template's audience; `Err` says why not.
/// Takes a plain connection: a claim's transaction, or a read-pool connection when listing.
/// `oa_appid` is the issuing company's official account, which followers must follow.
async fn check_audience(
    conn: &mut AnyConnection,
    t: &TemplateRow,
    resident_id: i64,
    oa_appid: Option<&str>,
) -> DomainResult<()> {
    let refuse = |m: &str| DomainError::Forbidden(m.to_owned());
    match t.audience {
        CouponAudience::Followers => {
            let identities = db::community::residents::identities_of(&mut *conn, resident_id).await?;
            if !crate::domain::community::residents::follows_account(&identities, oa_appid) {
                return Err(refuse("this coupon is for followers of the official account"));
            }
        }
        CouponAudience::VerifiedResidents => {
            if household_scope_rooms(conn, t, resident_id).await?.is_empty() {
                return Err(refuse("this coupon is for verified residents of the issuer's communities"));
            }
        }
        CouponAudience::NewCustomers => {
            if db::loyalty::points::purchase_count(&mut *conn, t.company_id, resident_id).await? > 0 {
                return Err(refuse("this coupon is for new customers"));
            }
        }
    }
    Ok(())
}

/// The rooms of the resident's verified homes in the issuer's communities (for a merchant, those
/// of the org it hangs under).
async fn household_scope_rooms(conn: &mut AnyConnection, t: &TemplateRow, resident_id: i64) -> DomainResult<Vec<i64>> {
    let owner =
        db::community::orgs::get(&mut *conn, t.owner_org_id).await?.ok_or(DomainError::NotFound("coupon template"))?;
    let scope = if owner.kind == OrgKind::Merchant {
        match owner.parent_id {
            Some(p) => db::community::orgs::get(&mut *conn, p).await?.map(|o| o.path).unwrap_or(owner.path),
            None => owner.path,
        }
    } else {
        owner.path
    };
    Ok(db::community::bindings::verified_rooms_in_scope(conn, resident_id, &scope).await?)
}

pub(crate) fn new_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..12).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// A claim's outcome: a new coupon, or the coupon an earlier request with the same
/// `Idempotency-Key` got.
#[derive(Clone, Debug)]
pub enum Claimed {
    New(CouponRow),
    Replayed(CouponRow),
}

/// Claims one coupon of a template for me. A template found sold out moments ago is answered
/// from memory; otherwise the claim is written through the group writer, many claims to one
/// commit, and answered only once committed.
pub async fn claim(
    db: &Db,
    group: &GroupCommit,
    gates: &Gates,
    accounts: &Accounts,
    me: &ResidentActor,
    template_id: i64,
    idempotency_key: Option<&str>,
) -> DomainResult<Claimed> {
    let now = db::now_ms();
    if gates.coupon_sold_out(template_id, now) {
        // A retry of a claim that was made must still get its coupon: only new keys are turned
        // away from memory (the key is looked up on the read pool, not the writer).
        let retry = match idempotency_key {
            Some(key) => db::idempotency::seen(db.reader(), me.resident_id, CLAIM, key).await?,
            None => false,
        };
        if !retry {
            return Err(DomainError::conflict(ErrorCode::SoldOut, "all coupons have been claimed"));
        }
    }
    let me = me.clone();
    let key = idempotency_key.map(str::to_owned);
    let accounts = accounts.clone();
    let claimed = group
        .run(template_id, move |tx| {
            Box::pin(async move { claim_in(tx, &accounts, &me, template_id, key.as_deref()).await })
        })
        .await
        .map_err(|e| DomainError::Upstream(e.to_string()))?;
    if matches!(&claimed, Err(DomainError::Conflict { code: ErrorCode::SoldOut, .. })) {
        gates.mark_coupon_sold_out(template_id, now);
    }
    claimed
}

/// The claim itself, in the caller's transaction.
async fn claim_in(
    tx: &mut Tx,
    accounts: &Accounts,
    me: &ResidentActor,
    template_id: i64,
    idempotency_key: Option<&str>,
) -> DomainResult<Claimed> {
    let now = db::now_ms();
    let request = template_id.to_string();
    if let Some(key) = idempotency_key {
        if let Some(earlier) = db::idempotency::claim(tx, me.resident_id, CLAIM, key, &request, now).await? {
            let coupon = match earlier.replayed_id(&request) {
                Some(id) => store::get_coupon(tx, id).await?,
                None => None,
            };
            return coupon.map(Claimed::Replayed).ok_or_else(crate::domain::idempotency_key_reused);
        }
    }
    let t = store::get(&mut **tx, template_id).await?.ok_or(DomainError::NotFound("coupon"))?;
    let oa = accounts.company_official_account(t.company_id);
    check_audience(tx, &t, me.resident_id, oa.as_deref()).await?;
    let room = match t.per_household_limit {
        Some(_) => Some(*household_scope_rooms(tx, &t, me.resident_id).await?.first().ok_or_else(|| {
            DomainError::Forbidden("this coupon is limited per household: bind your home first".into())
        })?),
        None => None,
    };
    let (valid_from, valid_until) = match (t.valid_from, t.valid_until, t.valid_days) {
        (Some(f), Some(u), _) => (f, u),
        (_, _, Some(days)) => (now, now + days * DAY_MS),
        _ => return Err(invalid("the template has no validity")),
    };
    if valid_until <= now {
        return Err(DomainError::conflict(ErrorCode::CouponExpired, "coupons of this template are no longer valid"));
    }
    if !store::take_one(tx, t.id, now).await? {
        let (code, message) = if t.state != TemplateState::Active {
            (ErrorCode::CouponEnded, "the coupon campaign has ended")
        } else if now < t.claim_from || now >= t.claim_until {
            (ErrorCode::ClaimWindowClosed, "the coupon cannot be claimed at this time")
        } else {
            (ErrorCode::SoldOut, "all coupons have been claimed")
        };
        return Err(DomainError::conflict(code, message));
    }
    // The template row is locked from here on: the counts below cannot move under us.
    if store::count_for_resident(&mut **tx, t.id, me.resident_id).await? >= t.per_resident_limit {
        return Err(DomainError::conflict(
            ErrorCode::LimitReached,
            format!("at most {} per resident", t.per_resident_limit),
        ));
    }
    if let (Some(limit), Some(room)) = (t.per_household_limit, room) {
        if store::count_for_room(tx, t.id, room).await? >= limit {
            return Err(DomainError::conflict(
                ErrorCode::HouseholdLimitReached,
                format!("at most {limit} per household"),
            ));
        }
    }
    let mut coupon = None;
    for _ in 0..5 {
        let code = new_code();
        let new = NewCoupon {
            template_id: t.id,
            resident_id: me.resident_id,
            room_id: room,
            code: &code,
            valid_from,
            valid_until,
        };
        coupon = store::insert_coupon(tx, &new, now).await?;
        if coupon.is_some() {
            break;
        }
    }
    let coupon = coupon.ok_or(DbError::UniqueViolation)?;
    if let Some(key) = idempotency_key {
        db::idempotency::record_response(tx, me.resident_id, CLAIM, key, &coupon.id.to_string()).await?;
    }
    Ok(Claimed::New(coupon))
}

/// A template I could claim now, and how many more I may take.
#[derive(Clone, Debug)]
pub struct Claimable {
    pub template: TemplateRow,
    pub my_remaining: i64,
}

/// The company's coupons I can claim now: open, in stock, my audience, under my limits.
pub async fn claimable(
    db: &Db,
    accounts: &Accounts,
    me: &ResidentActor,
    company_id: i64,
    page: PageRequest,
) -> DomainResult<Vec<Claimable>> {
    let now = db::now_ms();
    let open = store::open_in_company(db.reader(), company_id, now).await?;
    // Reads only, on the read pool: listing never waits for the writer that claims go through.
    let mut conn = db.reader().acquire().await.map_err(DbError::from)?;
    let mut out = Vec::new();
    for t in open {
        if t.stock_left == 0 {
            continue;
        }
        let oa = accounts.company_official_account(t.company_id);
        match check_audience(&mut conn, &t, me.resident_id, oa.as_deref()).await {
            Ok(()) => {}
            Err(DomainError::Forbidden(_)) => continue,
            Err(e) => return Err(e),
        }
        let mine = store::count_for_resident(&mut *conn, t.id, me.resident_id).await?;
        if mine < t.per_resident_limit {
            out.push(Claimable { my_remaining: t.per_resident_limit - mine, template: t });
        }
    }
    Ok(page.slice(out))
}

/// My coupons, newest first, optionally by state.
pub async fn mine(
    db: &Db,
    me: &ResidentActor,
    state: Option<CouponState>,
    page: PageRequest,
) -> DomainResult<Vec<HeldCoupon>> {
    Ok(store::held(db.reader(), me.resident_id, state, page).await?)
}

// ---------------------------------------------------------------------------------------------
// Using a coupon: at a merchant's counter, on an order, and putting it back on a full refund.
// Orders and the counter call these; nothing else decides whether a coupon may be used or what
// it takes off.

/// What a coupon takes off an amount: a cash voucher its face value (at most the amount), a
/// discount its percentage rounded down, at most its cap.
pub fn discount_for(c: &CouponWithTerms, amount: i64) -> i64 {
    match c.kind {
        CouponKind::Cash => c.amount_off.unwrap_or(0).clamp(0, amount.max(0)),
        CouponKind::Discount => {
            // In i128: an amount near i64::MAX times a percentage would not fit in i64.
            let off = i128::from(amount) * i128::from(c.percent_off.unwrap_or(0)) / 100;
            let off = i64::try_from(off.max(0)).unwrap_or(i64::MAX);
            c.discount_cap.map_or(off, |cap| off.min(cap)).clamp(0, amount.max(0))
        }
    }
}

/// The coupon with this code, when it is within the merchant's reach: a coupon of the merchant's
/// own property company. A code of another company answers exactly as a code that does not
/// exist, so a till cannot learn which codes are real elsewhere. Within the company the reasons
/// stay typed (another merchant's, another resident's, used): templates only ever name merchants
/// of their own company, and the company's operators see its coupons anyway.
pub(crate) async fn in_reach_of(tx: &mut Tx, merchant: &MerchantActor, code: &str) -> DomainResult<CouponWithTerms> {
    store::by_code(tx, code)
        .await?
        .filter(|c| c.company_id == merchant.company_id())
        .ok_or(DomainError::NotFound("coupon"))
}

/// Whether the coupon can be used by `resident_id` (when the order names one) at the merchant
/// now, on `amount` (when known); answers the discount.
async fn usable_at(
    tx: &mut Tx,
    merchant: &MerchantActor,
    c: &CouponWithTerms,
    resident_id: Option<i64>,
    amount: Option<i64>,
    now: i64,
) -> DomainResult<i64> {
    if resident_id.is_some_and(|r| r != c.resident_id) {
        return Err(invalid_as(ErrorCode::CouponNotYours, "the coupon belongs to another resident"));
    }
    let listed = restricted_merchants(&c.merchant_ids)?;
    let owner_is_merchant =
        db::community::orgs::get(&mut **tx, c.owner_org_id).await?.is_some_and(|o| o.kind == OrgKind::Merchant);
    let here = if !listed.is_empty() {
        listed.contains(&merchant.merchant_id())
    } else if owner_is_merchant {
        c.owner_org_id == merchant.merchant_id()
    } else {
        c.company_id == merchant.company_id()
    };
    if !here || c.company_id != merchant.company_id() {
        return Err(invalid_as(ErrorCode::CouponWrongMerchant, "the coupon cannot be used at this merchant"));
    }
    match c.state {
        CouponState::Unused => {}
        CouponState::Used => {
            return Err(DomainError::conflict(ErrorCode::CouponUsed, "the coupon has already been used"))
        }
        CouponState::Expired => return Err(DomainError::conflict(ErrorCode::CouponExpired, "the coupon has expired")),
        CouponState::Revoked => return Err(DomainError::conflict(ErrorCode::CouponRevoked, "the coupon was revoked")),
    }
    if now < c.valid_from {
        return Err(DomainError::conflict(ErrorCode::CouponNotYetValid, "the coupon is not valid yet"));
    }
    if now >= c.valid_until {
        return Err(DomainError::conflict(ErrorCode::CouponExpired, "the coupon has expired"));
    }
    match amount {
        Some(a) if a < c.min_spend => Err(invalid_as(
            ErrorCode::BelowMinimumSpend,
            format!("the coupon needs a spend of at least {} fen; the order is {a} fen", c.min_spend),
        )),
        Some(a) => Ok(discount_for(c, a)),
        None if c.kind == CouponKind::Cash && c.min_spend == 0 => Ok(c.amount_off.unwrap_or(0)),
        None => Err(invalid_as(ErrorCode::AmountRequired, "this coupon needs the amount it is used on")),
    }
}

/// Uses the coupon at the merchant, inside the caller's transaction, if it may be used there now;
/// answers the discount. The conditional update on its state is the guard: one coupon on twenty
/// concurrent orders is used once, and the others are refused `coupon_used`.
pub(crate) async fn use_at(
    tx: &mut Tx,
    merchant: &MerchantActor,
    c: &CouponWithTerms,
    resident_id: Option<i64>,
    amount: Option<i64>,
    now: i64,
) -> DomainResult<i64> {
    let discount = usable_at(tx, merchant, c, resident_id, amount, now).await?;
    if !store::mark_used(tx, c.id, discount, merchant.merchant_id(), now).await? {
        return Err(DomainError::conflict(ErrorCode::CouponUsed, "the coupon has already been used"));
    }
    Ok(discount)
}

/// Puts a used coupon back (a full refund of its order), if it is still within its validity;
/// answers whether it went back.
pub(crate) async fn put_back(tx: &mut Tx, coupon_id: i64, now: i64) -> DomainResult<bool> {
    Ok(store::mark_unused(tx, coupon_id, now).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_terms(
        kind: CouponKind,
        amount_off: Option<i64>,
        percent: Option<i64>,
        cap: Option<i64>,
    ) -> CouponWithTerms {
        CouponWithTerms {
            id: 1,
            resident_id: 1,
            state: CouponState::Unused,
            valid_from: 0,
            valid_until: 1,
            template_id: 1,
            owner_org_id: 1,
            company_id: 1,
            kind,
            amount_off,
            percent_off: percent,
            discount_cap: cap,
            min_spend: 0,
            merchant_ids: "[]".into(),
        }
    }

    #[test]
    fn discounts_are_whole_fen_and_capped() {
        assert_eq!(discount_for(&with_terms(CouponKind::Cash, Some(1000), None, None), 5000), 1000);
        assert_eq!(discount_for(&with_terms(CouponKind::Cash, Some(1000), None, None), 600), 600);
        assert_eq!(discount_for(&with_terms(CouponKind::Discount, None, Some(15), None), 999), 149);
        assert_eq!(discount_for(&with_terms(CouponKind::Discount, None, Some(20), Some(300)), 5000), 300);
        // At the edges of i64 a discount neither overflows nor takes off more than the amount.
        assert_eq!(discount_for(&with_terms(CouponKind::Discount, None, Some(100), None), i64::MAX), i64::MAX);
        assert_eq!(discount_for(&with_terms(CouponKind::Cash, Some(i64::MAX), None, None), 0), 0);
        assert_eq!(discount_for(&with_terms(CouponKind::Discount, None, Some(50), None), i64::MIN), 0);
    }

    fn input() -> TemplateInput {
        TemplateInput {
            category: "水果".into(),
            title: "满50减10".into(),
            kind: CouponKind::Cash,
            amount_off: Some(1000),
            percent_off: None,
            discount_cap: None,
            min_spend: 5000,
            valid_from: None,
            valid_until: None,
            valid_days: Some(7),
            claim_from: 1_800_000_000_000,
            claim_until: 1_800_086_400_000,
            stock_total: 50,
            per_resident_limit: 1,
            per_household_limit: None,
            audience: "followers".into(),
            merchant_ids: vec![9, 7, 9],
        }
    }

    #[test]
    fn a_merchant_list_that_does_not_decode_is_refused_not_read_as_any_merchant() {
        assert_eq!(restricted_merchants("[]").unwrap(), Vec::<i64>::new());
        assert_eq!(restricted_merchants("[7,9]").unwrap(), vec![7, 9]);
        for broken in ["", "[7,", "{}", "\"7\"", "[\"x\"]", "null"] {
            let refused = restricted_merchants(broken);
            assert!(
                matches!(refused, Err(DomainError::Conflict { code: ErrorCode::CouponTemplateBroken, .. })),
                "{broken:?}"
            );
        }
    }

    #[test]
    fn terms_are_checked() {
        let f = input().validated().unwrap();
        assert_eq!(f.merchant_ids, "[7,9]");
        for bad in [
            TemplateInput { amount_off: Some(0), ..input() },
            TemplateInput { amount_off: Some(6000), ..input() },
            TemplateInput { percent_off: Some(10), ..input() },
            TemplateInput { kind: CouponKind::Discount, amount_off: None, percent_off: Some(100), ..input() },
            TemplateInput { valid_from: Some(5), valid_until: Some(5), valid_days: None, ..input() },
            TemplateInput { valid_from: Some(1), valid_until: Some(5), ..input() },
            TemplateInput { claim_from: 2, claim_until: 2, ..input() },
            TemplateInput { claim_from: 0, claim_until: 1, ..input() },
            TemplateInput { claim_from: i64::MIN, ..input() },
            TemplateInput { claim_until: i64::MAX, ..input() },
            TemplateInput { valid_from: Some(i64::MIN), valid_until: Some(i64::MAX), valid_days: None, ..input() },
            TemplateInput { stock_total: 0, ..input() },
            TemplateInput { audience: "everyone".into(), ..input() },
        ] {
            assert!(bad.validated().is_err(), "{bad:?}");
        }
        let d = TemplateInput {
            kind: CouponKind::Discount,
            amount_off: None,
            percent_off: Some(20),
            discount_cap: Some(3000),
            ..input()
        };
        assert!(d.validated().is_ok());
    }
}
