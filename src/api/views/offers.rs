//! Offer views more than one surface shows: coupons' terms and states, redemptions.

use poem_openapi::{Enum, Object};
use time::OffsetDateTime;

use crate::api::common::{ms, ts, PageInfo};
use crate::db::offers::coupons::{CouponAudience, CouponKind, CouponState, TemplateRow};
use crate::db::offers::redemption::{RedemptionRow, RedemptionState};
use crate::domain::offers::coupons::TemplateInput;

/// What a coupon takes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "CouponKind", rename_all = "lowercase")]
pub enum CouponKindView {
    /// A fixed amount off (代金券).
    Cash,
    /// A percentage off, optionally capped (折扣券).
    Discount,
}

one_to_one!(CouponKindView <=> CouponKind { Cash, Discount });

/// Where a claimed coupon is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "CouponState", rename_all = "lowercase")]
pub enum CouponStateView {
    /// Held, usable within its validity.
    Unused,
    /// Used at a merchant or on an order.
    Used,
    /// Its validity ended unused.
    Expired,
    /// Taken back by an operator.
    Revoked,
}

one_to_one!(CouponStateView <=> CouponState { Unused, Used, Expired, Revoked });

/// Who may claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "CouponAudience", rename_all = "snake_case")]
pub enum AudienceView {
    /// Followers of the official account.
    Followers,
    /// Verified residents of the issuer's communities.
    VerifiedResidents,
    /// Residents who have not bought from the issuer's property company before.
    NewCustomers,
}

one_to_one!(AudienceView <=> CouponAudience { Followers, VerifiedResidents, NewCustomers });

/// A coupon's terms. Money is integer fen (1 yuan = 100).
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CouponTerms {
    #[oai(validator(min_length = 1, max_length = 32))]
    pub category: String,
    #[oai(validator(min_length = 1, max_length = 64))]
    pub title: String,
    pub kind: CouponKindView,
    /// For `cash`: fen off.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "10000000")))]
    pub amount_off: Option<i64>,
    /// For `discount`: percent off, 1–99.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "99")))]
    pub percent_off: Option<i64>,
    /// For `discount`: the most it takes off, in fen.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "10000000")))]
    pub discount_cap: Option<i64>,
    /// The least an order must come to, in fen (0: none).
    #[oai(default, validator(minimum(value = "0"), maximum(value = "100000000")))]
    pub min_spend: i64,
    /// A fixed validity window (with `valid_until`)…
    #[oai(nullable)]
    pub valid_from: Option<OffsetDateTime>,
    #[oai(nullable)]
    pub valid_until: Option<OffsetDateTime>,
    /// …or valid for this many days from the claim.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "3650")))]
    pub valid_days: Option<i64>,
    /// When residents may claim it.
    pub claim_from: OffsetDateTime,
    pub claim_until: OffsetDateTime,
    /// How many can be claimed in all.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000000")))]
    pub stock_total: i64,
    /// How many one resident may claim.
    #[oai(default = "one", validator(minimum(value = "1"), maximum(value = "100")))]
    pub per_resident_limit: i64,
    /// How many one household (room) may claim; the claimant needs a verified home.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "100")))]
    pub per_household_limit: Option<i64>,
    pub audience: AudienceView,
    /// Merchants (org ids) where it may be used; empty: any merchant of the property company.
    #[oai(default, validator(max_items = 100))]
    pub merchant_ids: Vec<i64>,
}

fn one() -> i64 {
    1
}

impl CouponTerms {
    pub(crate) fn into_input(self) -> TemplateInput {
        TemplateInput {
            category: self.category,
            title: self.title,
            kind: self.kind.into(),
            amount_off: self.amount_off,
            percent_off: self.percent_off,
            discount_cap: self.discount_cap,
            min_spend: self.min_spend,
            valid_from: self.valid_from.map(ms),
            valid_until: self.valid_until.map(ms),
            valid_days: self.valid_days,
            claim_from: ms(self.claim_from),
            claim_until: ms(self.claim_until),
            stock_total: self.stock_total,
            per_resident_limit: self.per_resident_limit,
            per_household_limit: self.per_household_limit,
            audience: CouponAudience::from(self.audience).as_str().into(),
            merchant_ids: self.merchant_ids,
        }
    }

    pub(crate) fn of(t: &TemplateRow) -> Self {
        Self {
            category: t.category.clone(),
            title: t.title.clone(),
            kind: t.kind.into(),
            amount_off: t.amount_off,
            percent_off: t.percent_off,
            discount_cap: t.discount_cap,
            min_spend: t.min_spend,
            valid_from: t.valid_from.map(ts),
            valid_until: t.valid_until.map(ts),
            valid_days: t.valid_days,
            claim_from: ts(t.claim_from),
            claim_until: ts(t.claim_until),
            stock_total: t.stock_total,
            per_resident_limit: t.per_resident_limit,
            per_household_limit: t.per_household_limit,
            audience: t.audience.into(),
            merchant_ids: serde_json::from_str(&t.merchant_ids).unwrap_or_default(),
        }
    }
}

/// Where a redemption is: `redeemed` (a voucher waiting for the merchant), `fulfilled` (written
/// off) or `cancelled` (points refunded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "RedemptionState", rename_all = "lowercase")]
pub enum RedemptionStateView {
    Redeemed,
    Fulfilled,
    Cancelled,
}

one_to_one!(RedemptionStateView <=> RedemptionState { Redeemed, Fulfilled, Cancelled });

/// A redemption: points exchanged for one unit of an item, and the voucher the merchant writes off.
#[derive(Debug, Clone, Object)]
pub struct Redemption {
    pub id: i64,
    pub item_id: i64,
    pub resident_id: i64,
    pub merchant_id: i64,
    /// The item's title when it was redeemed.
    pub title: String,
    /// Points spent.
    pub points: i64,
    /// The voucher code the resident shows the merchant.
    pub code: String,
    pub state: RedemptionStateView,
    pub created_at: OffsetDateTime,
    #[oai(nullable)]
    pub fulfilled_at: Option<OffsetDateTime>,
    /// The merchant key that wrote it off.
    #[oai(nullable)]
    pub fulfilled_by: Option<String>,
    #[oai(nullable)]
    pub cancelled_at: Option<OffsetDateTime>,
    /// Who cancelled it (`resident`).
    #[oai(nullable)]
    pub cancelled_by: Option<String>,
}

impl From<RedemptionRow> for Redemption {
    fn from(r: RedemptionRow) -> Self {
        Self {
            id: r.id,
            item_id: r.item_id,
            resident_id: r.resident_id,
            merchant_id: r.merchant_id,
            title: r.title,
            points: r.points,
            code: r.code,
            state: r.state.into(),
            created_at: ts(r.created_at),
            fulfilled_at: r.fulfilled_at.map(ts),
            fulfilled_by: r.fulfilled_by,
            cancelled_at: r.cancelled_at.map(ts),
            cancelled_by: r.cancelled_by,
        }
    }
}

/// A page of redemptions.
#[derive(Debug, Clone, Object)]
pub struct RedemptionPage {
    pub items: Vec<Redemption>,
    pub page: PageInfo,
}
