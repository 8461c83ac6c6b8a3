//! `/mp/v1/coupons`: coupons I can claim, claiming, and my coupons.

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;

use super::ResidentSession;
use crate::api::common::{page_request, ts};
use crate::api::views::offers::{CouponKindView, CouponStateView, CouponTerms};
use crate::api::ApiTags;
use crate::codes::ErrorCode;
use crate::db::offers::coupons::{CouponRow, HeldCoupon};
use crate::domain::offers::coupons::{self, Claimed};
use crate::error::ApiError;
use crate::state::AppState;

pub struct MpCouponsApi;

/// A coupon I can claim now.
#[derive(Debug, Clone, Object)]
pub struct ClaimableCoupon {
    pub template_id: i64,
    pub terms: CouponTerms,
    /// How many I may still claim.
    pub my_remaining: i64,
    /// How many are left for everyone.
    pub stock_left: i64,
}

/// A coupon I hold.
#[derive(Debug, Clone, Object)]
pub struct MyCoupon {
    pub id: i64,
    pub template_id: i64,
    pub title: String,
    pub category: String,
    pub kind: CouponKindView,
    #[oai(nullable)]
    pub amount_off: Option<i64>,
    #[oai(nullable)]
    pub percent_off: Option<i64>,
    #[oai(nullable)]
    pub discount_cap: Option<i64>,
    pub min_spend: i64,
    /// Show it at the counter to use it.
    pub code: String,
    pub state: CouponStateView,
    pub valid_from: OffsetDateTime,
    pub valid_until: OffsetDateTime,
    #[oai(nullable)]
    pub used_at: Option<OffsetDateTime>,
    pub claimed_at: OffsetDateTime,
}

impl From<HeldCoupon> for MyCoupon {
    fn from(c: HeldCoupon) -> Self {
        Self {
            id: c.id,
            template_id: c.template_id,
            title: c.title,
            category: c.category,
            kind: c.kind.into(),
            amount_off: c.amount_off,
            percent_off: c.percent_off,
            discount_cap: c.discount_cap,
            min_spend: c.min_spend,
            code: c.code,
            state: c.state.into(),
            valid_from: ts(c.valid_from),
            valid_until: ts(c.valid_until),
            used_at: c.used_at.map(ts),
            claimed_at: ts(c.claimed_at),
        }
    }
}

/// The coupon a claim gave.
#[derive(Debug, Clone, Object)]
pub struct ClaimedCoupon {
    pub id: i64,
    pub template_id: i64,
    pub code: String,
    pub state: CouponStateView,
    pub valid_from: OffsetDateTime,
    pub valid_until: OffsetDateTime,
    pub claimed_at: OffsetDateTime,
}

impl From<CouponRow> for ClaimedCoupon {
    fn from(c: CouponRow) -> Self {
        Self {
            id: c.id,
            template_id: c.template_id,
            code: c.code,
            state: c.state.into(),
            valid_from: ts(c.valid_from),
            valid_until: ts(c.valid_until),
            claimed_at: ts(c.claimed_at),
        }
    }
}

/// Lists of coupons.
#[derive(Debug, Clone, Object)]
pub struct ClaimableList {
    pub items: Vec<ClaimableCoupon>,
}

#[derive(Debug, Clone, Object)]
pub struct MyCouponList {
    pub items: Vec<MyCoupon>,
}

#[derive(ApiResponse)]
pub enum CouponClaimed {
    /// Claimed (or, for a repeated `Idempotency-Key`, the coupon the first request claimed).
    #[oai(status = 201)]
    Created(Json<ClaimedCoupon>),
}

#[OpenApi(prefix_path = "/mp/v1", tag = "ApiTags::MpCoupons")]
impl MpCouponsApi {
    /// Coupons of a property company I can claim now: open, in stock, for me, under my limits.
    #[oai(path = "/coupons", method = "get", operation_id = "list_claimable_coupons")]
    async fn list_claimable_coupons(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        /// The property company; absent: the official account's.
        company_id: Query<Option<i64>>,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<ClaimableList>, ApiError> {
        let company = company_id.0.or(state.settings.wechat.oa_company_id).ok_or(ApiError::Unprocessable {
            code: ErrorCode::CompanyRequired,
            message: "name the property company".into(),
        })?;
        let found =
            coupons::claimable(&state.db, &state.accounts, &me.0, company, page_request(page.0, page_size.0)).await?;
        let items = found
            .into_iter()
            .map(|c| ClaimableCoupon {
                template_id: c.template.id,
                terms: CouponTerms::of(&c.template),
                my_remaining: c.my_remaining,
                stock_left: c.template.stock_left,
            })
            .collect();
        Ok(Json(ClaimableList { items }))
    }

    /// Claim one coupon. Never more than the stock, never past my or my household's limit, however
    /// many requests arrive at once. Send an `Idempotency-Key` so a retried request gets the first
    /// answer instead of a second coupon.
    #[oai(path = "/coupons/:template_id/claims", method = "post", operation_id = "claim_coupon")]
    async fn claim_coupon(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        template_id: Path<i64>,
        /// A key unique to this claim (e.g. a UUID); retries send the same key.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 128))]
        idempotency_key: Header<Option<String>>,
    ) -> Result<CouponClaimed, ApiError> {
        let claimed = coupons::claim(
            &state.db,
            &state.group,
            &state.gates,
            &state.accounts,
            &me.0,
            template_id.0,
            idempotency_key.0.as_deref(),
        )
        .await?;
        let coupon = match claimed {
            Claimed::New(c) | Claimed::Replayed(c) => c,
        };
        Ok(CouponClaimed::Created(Json(coupon.into())))
    }

    /// My coupons, newest first: all, or `unused`, `used`, `expired`.
    #[oai(path = "/me/coupons", method = "get", operation_id = "list_my_coupons")]
    async fn list_my_coupons(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        #[oai(name = "state")] coupon_state: Query<Option<CouponStateView>>,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<MyCouponList>, ApiError> {
        let req = page_request(page.0, page_size.0);
        let held = coupons::mine(&state.db, &me.0, coupon_state.0.map(Into::into), req).await?;
        Ok(Json(MyCouponList { items: held.into_iter().map(Into::into).collect() }))
    }
}
