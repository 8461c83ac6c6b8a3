//! Points redemption (积分兑换): each company's programme has a catalogue of goods and services,
//! each with a points price, a stock, a per-resident limit and the merchant who fulfils it.
//!
//! Redeeming takes one unit of stock with a conditional update (the durable guard: never more
//! redemptions than stock, under any concurrency), checks the resident's limit while that update
//! holds the item row, spends the points (ledger kind `redeem`) and issues a voucher code, all in
//! one transaction: any refusal — sold out, over the limit, too few points — changes nothing.
//! The merchant writes the voucher off once; the resident may cancel before that, which refunds
//! the points (kind `refund`) and returns the stock.

use rand::Rng;

use crate::codes::ErrorCode;
use crate::db::community::orgs::OrgKind;
use crate::db::community::orgs::OrgRow;
use crate::db::offers::redemption::{
    self as store, ItemFields, ItemFigures, ItemFilter, ItemRow, RedemptionFilter, RedemptionRow, RedemptionState,
};
use crate::db::{self, idempotency, Db, DbError, Page, PageRequest, Tx};
use crate::domain::community::sessions::ResidentActor;
use crate::domain::loyalty::points::{self, company_in_reach, Kind, Posting, Source};
use crate::domain::operators::access::{Actor, Role};
use crate::domain::retail::merchants::MerchantActor;
use crate::domain::{not_found_as, operators::audit, optional_text, required_text, DomainError, DomainResult};

/// The operation name residents' idempotency keys are stored under.
const REDEEM_OPERATION: &str = "redeem";

/// The most points an item may cost, and the most stock it may have.
pub const MAX_POINTS_PRICE: i64 = 100_000_000;
pub const MAX_STOCK: i64 = 10_000_000;
pub const MAX_PER_RESIDENT_LIMIT: i64 = 1_000;

/// An item as an operator describes it.
#[derive(Clone, Debug)]
pub struct ItemDraft {
    pub merchant_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub points_price: i64,
    pub stock_total: i64,
    pub per_resident_limit: i64,
    pub available_from: Option<i64>,
    pub available_until: Option<i64>,
    pub active: bool,
}

/// Changes to an item: `None` keeps a value; `Some(None)` clears an optional one.
#[derive(Clone, Debug, Default)]
pub struct ItemPatch {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub points_price: Option<i64>,
    pub stock_total: Option<i64>,
    pub per_resident_limit: Option<i64>,
    pub available_from: Option<Option<i64>>,
    pub available_until: Option<Option<i64>>,
    pub active: Option<bool>,
}

fn validated(f: ItemFields) -> DomainResult<ItemFields> {
    let invalid = |m: String| DomainError::invalid(ErrorCode::InvalidItem, m);
    if !(1..=MAX_POINTS_PRICE).contains(&f.points_price) {
        return Err(invalid(format!("points_price must be between 1 and {MAX_POINTS_PRICE}")));
    }
    if !(0..=MAX_STOCK).contains(&f.stock_total) {
        return Err(invalid(format!("stock must be between 0 and {MAX_STOCK}")));
    }
    if !(1..=MAX_PER_RESIDENT_LIMIT).contains(&f.per_resident_limit) {
        return Err(invalid(format!("per_resident_limit must be between 1 and {MAX_PER_RESIDENT_LIMIT}")));
    }
    if let (Some(from), Some(until)) = (f.available_from, f.available_until) {
        if from >= until {
            return Err(invalid("available_from must be before available_until".to_owned()));
        }
    }
    Ok(ItemFields {
        title: required_text("title", &f.title, 64)?,
        description: optional_text("description", f.description.as_deref(), 1000)?,
        ..f
    })
}

fn fields_of(item: &ItemRow) -> ItemFields {
    ItemFields {
        title: item.title.clone(),
        description: item.description.clone(),
        points_price: item.points_price,
        stock_total: item.stock_total,
        per_resident_limit: item.per_resident_limit,
        available_from: item.available_from,
        available_until: item.available_until,
        active: item.active,
    }
}

fn new_voucher_code() -> String {
    // No 0/O, 1/I/L: the code is read aloud and typed at a till.
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..12).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

// ----- the operator side -------------------------------------------------------------------

/// A merchant that may fulfil the company's items: an active merchant org under the company.
async fn merchant_of_company(tx: &mut Tx, company: &OrgRow, merchant_id: i64) -> DomainResult<OrgRow> {
    db::community::orgs::get(&mut **tx, merchant_id)
        .await?
        .filter(|m| m.kind == OrgKind::Merchant && m.archived_at.is_none() && m.path.starts_with(&company.path))
        .ok_or_else(|| {
            DomainError::invalid(ErrorCode::InvalidMerchant, "merchant_id must be an active merchant of this company")
        })
}

/// An item of the company, which the actor reaches.
async fn item_in_reach(tx: &mut Tx, actor: &Actor, company_id: i64, item_id: i64) -> DomainResult<(OrgRow, ItemRow)> {
    let company = company_in_reach(&mut **tx, actor, company_id).await.map_err(not_found_as("catalogue item"))?;
    let item = store::get_item(&mut **tx, item_id)
        .await?
        .filter(|i| i.company_id == company.id)
        .ok_or(DomainError::NotFound("catalogue item"))?;
    Ok((company, item))
}

/// Adds an item to the company's catalogue (creating its points programme if needed).
/// Operators and admins; audited.
pub async fn create_item(db: &Db, actor: &Actor, company_id: i64, draft: ItemDraft) -> DomainResult<ItemFigures> {
    let fields = validated(ItemFields {
        title: draft.title,
        description: draft.description,
        points_price: draft.points_price,
        stock_total: draft.stock_total,
        per_resident_limit: draft.per_resident_limit,
        available_from: draft.available_from,
        available_until: draft.available_until,
        active: draft.active,
    })?;
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let company = company_in_reach(&mut *tx, actor, company_id).await?;
    actor.require(Role::Operator)?;
    if company.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::OrgArchived, "the company is archived"));
    }
    let merchant = merchant_of_company(&mut tx, &company, draft.merchant_id).await?;
    let programme = points::programme_for(&mut tx, &company, now).await?;
    let item = store::insert_item(&mut tx, programme.id, company.id, merchant.id, &fields, now).await?;
    audit::record(
        &mut tx,
        actor,
        &company,
        "catalogue.create",
        ("catalogue_item", item.id),
        (None::<&()>, Some(&item)),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(ItemFigures { item, redeemed: 0, outstanding: 0, fulfilled: 0, cancelled: 0 })
}

/// Edits an item. The stock total may not go below what is already redeemed; the stock left
/// moves with it. Operators and admins; audited.
pub async fn update_item(
    db: &Db,
    actor: &Actor,
    company_id: i64,
    item_id: i64,
    patch: ItemPatch,
) -> DomainResult<ItemFigures> {
    let mut tx = db.begin().await?;
    let (company, before) = item_in_reach(&mut tx, actor, company_id, item_id).await?;
    actor.require(Role::Operator)?;
    if before.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::ItemArchived, "the item is archived"));
    }
    let old = fields_of(&before);
    let fields = validated(ItemFields {
        title: patch.title.unwrap_or(old.title),
        description: patch.description.unwrap_or(old.description),
        points_price: patch.points_price.unwrap_or(old.points_price),
        stock_total: patch.stock_total.unwrap_or(old.stock_total),
        per_resident_limit: patch.per_resident_limit.unwrap_or(old.per_resident_limit),
        available_from: patch.available_from.unwrap_or(old.available_from),
        available_until: patch.available_until.unwrap_or(old.available_until),
        active: patch.active.unwrap_or(old.active),
    })?;
    let after = store::update_item(&mut tx, item_id, &fields, db::now_ms()).await?.ok_or_else(|| {
        DomainError::invalid(
            ErrorCode::StockBelowRedeemed,
            format!("{} units are already redeemed; the stock cannot be less", before.stock_total - before.stock_left),
        )
    })?;
    audit::record(
        &mut tx,
        actor,
        &company,
        "catalogue.update",
        ("catalogue_item", item_id),
        (Some(&before), Some(&after)),
    )
    .await?;
    let figures = store::item_figures(&mut *tx, item_id).await?.ok_or(DomainError::NotFound("catalogue item"))?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(figures)
}

/// Takes an item off the catalogue for good; its vouchers stay valid. Operators and admins;
/// audited.
pub async fn archive_item(db: &Db, actor: &Actor, company_id: i64, item_id: i64) -> DomainResult<ItemFigures> {
    let mut tx = db.begin().await?;
    let (company, before) = item_in_reach(&mut tx, actor, company_id, item_id).await?;
    actor.require(Role::Operator)?;
    if before.archived_at.is_none() {
        let after = store::archive_item(&mut tx, item_id, db::now_ms()).await?;
        audit::record(
            &mut tx,
            actor,
            &company,
            "catalogue.archive",
            ("catalogue_item", item_id),
            (Some(&before), Some(&after)),
        )
        .await?;
    }
    let figures = store::item_figures(&mut *tx, item_id).await?.ok_or(DomainError::NotFound("catalogue item"))?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(figures)
}

/// The company's programme, or `None` when it has none yet; the company must be in reach.
async fn programme_id_in_reach(db: &Db, actor: &Actor, company_id: i64) -> DomainResult<Option<i64>> {
    company_in_reach(db.reader(), actor, company_id).await?;
    Ok(db::loyalty::points::programme_of(db.reader(), company_id).await?.map(|p| p.id))
}

/// The company's catalogue with figures, newest first. Any role.
pub async fn list_items(
    db: &Db,
    actor: &Actor,
    company_id: i64,
    mut filter: ItemFilter,
    page: PageRequest,
) -> DomainResult<Page<ItemFigures>> {
    let Some(programme_id) = programme_id_in_reach(db, actor, company_id).await? else {
        return Ok(Page { items: vec![], total: 0 });
    };
    filter.programme_id = programme_id;
    Ok(store::list_items(db.reader(), &filter, page).await?)
}

/// One item with figures. Any role.
pub async fn get_item(db: &Db, actor: &Actor, company_id: i64, item_id: i64) -> DomainResult<ItemFigures> {
    company_in_reach(db.reader(), actor, company_id).await.map_err(not_found_as("catalogue item"))?;
    store::item_figures(db.reader(), item_id)
        .await?
        .filter(|f| f.item.company_id == company_id)
        .ok_or(DomainError::NotFound("catalogue item"))
}

/// The company's redemptions, filtered, newest first. Any role.
pub async fn list_redemptions(
    db: &Db,
    actor: &Actor,
    company_id: i64,
    mut filter: RedemptionFilter,
    page: PageRequest,
) -> DomainResult<Page<RedemptionRow>> {
    let Some(programme_id) = programme_id_in_reach(db, actor, company_id).await? else {
        return Ok(Page { items: vec![], total: 0 });
    };
    filter.programme_id = Some(programme_id);
    Ok(store::list_redemptions(db.reader(), &filter, page).await?)
}

// ----- the resident side ---------------------------------------------------------------------

/// The items a company offers now (active, not archived, inside their window), sold out or not.
pub async fn catalogue_on_offer(db: &Db, company_id: i64, page: PageRequest) -> DomainResult<Page<ItemFigures>> {
    db::community::orgs::get(db.reader(), company_id)
        .await?
        .filter(|o| o.kind == OrgKind::Company && o.archived_at.is_none())
        .ok_or(DomainError::NotFound("company"))?;
    let Some(programme) = db::loyalty::points::programme_of(db.reader(), company_id).await? else {
        return Ok(Page { items: vec![], total: 0 });
    };
    let filter = ItemFilter { programme_id: programme.id, on_offer_at: Some(db::now_ms()), ..Default::default() };
    Ok(store::list_items(db.reader(), &filter, page).await?)
}

/// What a redemption request did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// A new redemption.
    New(RedemptionRow),
    /// The idempotency key was used before by this resident for this request: the first answer.
    Replayed(RedemptionRow),
}

/// Redeems one unit of an item for the resident, spending its price in points. `idempotency_key`
/// makes a retry safe: the same key again answers the first redemption and changes nothing.
pub async fn redeem(db: &Db, me: &ResidentActor, item_id: i64, idempotency_key: &str) -> DomainResult<Redeemed> {
    let key = required_text("Idempotency-Key", idempotency_key, 64)?;
    let request = format!("item:{item_id}");
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    if let Some(earlier) = idempotency::claim(&mut tx, me.resident_id, REDEEM_OPERATION, &key, &request, now).await? {
        if earlier.request != request {
            return Err(DomainError::invalid(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request",
            ));
        }
        let first: Option<RedemptionRow> = earlier.response.as_deref().and_then(|r| serde_json::from_str(r).ok());
        return first.map(Redeemed::Replayed).ok_or_else(|| {
            DomainError::conflict(ErrorCode::RequestInProgress, "a request with this Idempotency-Key is in progress")
        });
    }
    let Some(item) = store::take_stock(&mut tx, item_id, now).await? else {
        return Err(why_not_on_offer(&mut tx, item_id, now).await);
    };
    // The item row is locked by the update above until commit: redemptions of this item by this
    // resident cannot interleave between the count and the insert.
    let held = store::count_open_of_resident(&mut tx, item.id, me.resident_id).await?;
    if held >= item.per_resident_limit {
        return Err(DomainError::conflict(
            ErrorCode::LimitReached,
            format!("you may hold at most {} of this item", item.per_resident_limit),
        ));
    }
    let mut redemption = None;
    for _ in 0..5 {
        redemption = store::insert_redemption(&mut tx, &item, me.resident_id, &new_voucher_code(), now).await?;
        if redemption.is_some() {
            break;
        }
    }
    let redemption = redemption.ok_or(DbError::UniqueViolation)?;
    let posting = Posting {
        kind: Kind::Redeem,
        source: Source::Redemption,
        reference: format!("redemption:{}", redemption.id),
        amount: -item.points_price,
        operator: None,
        remark: Some(format!("兑换 {}", item.title)),
    };
    points::post(&mut tx, item.programme_id, me.resident_id, &posting, now).await?;
    // A plain row of numbers and strings: serialising it cannot fail.
    let response = serde_json::to_string(&redemption).unwrap_or_else(|_| "null".to_owned());
    idempotency::record_response(&mut tx, me.resident_id, REDEEM_OPERATION, &key, &response).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(Redeemed::New(redemption))
}

/// Why stock could not be taken: no such item, not on offer, or sold out.
async fn why_not_on_offer(tx: &mut Tx, item_id: i64, now: i64) -> DomainError {
    let item = match store::get_item(&mut **tx, item_id).await {
        Ok(Some(item)) => item,
        Ok(None) => return DomainError::NotFound("catalogue item"),
        Err(e) => return e.into(),
    };
    let on_offer = item.active
        && item.archived_at.is_none()
        && item.available_from.is_none_or(|from| from <= now)
        && item.available_until.is_none_or(|until| until > now);
    if on_offer {
        DomainError::conflict(ErrorCode::SoldOut, "this item is sold out")
    } else {
        DomainError::conflict(ErrorCode::ItemUnavailable, "this item is not on offer now")
    }
}

/// My redemptions, newest first, optionally in one company's programme.
pub async fn mine(
    db: &Db,
    me: &ResidentActor,
    company_id: Option<i64>,
    state: Option<RedemptionState>,
    page: PageRequest,
) -> DomainResult<Page<RedemptionRow>> {
    let programme_id = match company_id {
        None => None,
        Some(c) => match db::loyalty::points::programme_of(db.reader(), c).await? {
            Some(p) => Some(p.id),
            None => return Ok(Page { items: vec![], total: 0 }),
        },
    };
    let filter = RedemptionFilter { programme_id, resident_id: Some(me.resident_id), state, ..Default::default() };
    Ok(store::list_redemptions(db.reader(), &filter, page).await?)
}

/// One of my redemptions; anyone else's is "not found".
pub async fn my_redemption(db: &Db, me: &ResidentActor, id: i64) -> DomainResult<RedemptionRow> {
    store::redemption(db.reader(), id)
        .await?
        .filter(|r| r.resident_id == me.resident_id)
        .ok_or(DomainError::NotFound("redemption"))
}

fn closed(r: &RedemptionRow) -> DomainError {
    match r.state {
        RedemptionState::Fulfilled => {
            DomainError::conflict(ErrorCode::RedemptionFulfilled, "the voucher was already written off")
        }
        RedemptionState::Cancelled => {
            DomainError::conflict(ErrorCode::RedemptionCancelled, "the redemption was cancelled")
        }
        RedemptionState::Redeemed => {
            DomainError::conflict(ErrorCode::RedemptionChanged, "the redemption changed meanwhile; reload it")
        }
    }
}

/// Cancels my redemption before the merchant fulfils it: the points come back (kind `refund`)
/// and so does the stock.
pub async fn cancel_mine(db: &Db, me: &ResidentActor, id: i64) -> DomainResult<RedemptionRow> {
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let current = store::redemption(&mut *tx, id)
        .await?
        .filter(|r| r.resident_id == me.resident_id)
        .ok_or(DomainError::NotFound("redemption"))?;
    let Some(cancelled) = store::mark_cancelled(&mut tx, id, "resident", now).await? else {
        let latest = store::redemption(&mut *tx, id).await?.unwrap_or(current);
        return Err(closed(&latest));
    };
    store::return_stock(&mut tx, cancelled.item_id, now).await?;
    let posting = Posting {
        kind: Kind::Refund,
        source: Source::Redemption,
        reference: format!("redemption:{}:refund", cancelled.id),
        amount: cancelled.points,
        operator: None,
        remark: Some(format!("取消兑换 {}", cancelled.title)),
    };
    points::post(&mut tx, cancelled.programme_id, me.resident_id, &posting, now).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(cancelled)
}

// ----- the merchant side ---------------------------------------------------------------------

/// A voucher of this merchant's items, by its code; anyone else's is "not found".
pub async fn voucher(db: &Db, m: &MerchantActor, code: &str) -> DomainResult<RedemptionRow> {
    store::redemption_by_code(db.reader(), code.trim())
        .await?
        .filter(|r| r.merchant_id == m.merchant.id)
        .ok_or(DomainError::NotFound("redemption"))
}

/// Writes a voucher off: once, by the item's merchant, while it is neither fulfilled nor
/// cancelled. Audited. Only operator and admin keys of the merchant get here (see
/// [`crate::domain::retail::merchants::authenticate`]).
pub async fn fulfil(db: &Db, m: &MerchantActor, code: &str) -> DomainResult<RedemptionRow> {
    let mut tx = db.begin().await?;
    let current = store::redemption_by_code(&mut *tx, code.trim())
        .await?
        .filter(|r| r.merchant_id == m.merchant.id)
        .ok_or(DomainError::NotFound("redemption"))?;
    let Some(done) = store::mark_fulfilled(&mut tx, current.id, &m.actor.label, db::now_ms()).await? else {
        let latest = store::redemption(&mut *tx, current.id).await?.unwrap_or(current);
        return Err(closed(&latest));
    };
    audit::record(
        &mut tx,
        &m.actor,
        &m.merchant,
        "redemption.fulfil",
        ("redemption", done.id),
        (Some(&current), Some(&done)),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(done)
}
