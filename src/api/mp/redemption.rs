//! `/mp/v1/companies/{company_id}/catalogue` and `/mp/v1/me/redemptions`: spending my points on
//! a company's catalogue, my vouchers, and cancelling one before the merchant writes it off.

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;

use super::ResidentSession;
use crate::api::common::{page_request, ts, PageInfo};
use crate::api::views::offers::{Redemption, RedemptionPage, RedemptionStateView};
use crate::api::ApiTags;
use crate::db::offers::redemption::ItemFigures;
use crate::domain::offers::redemption::{self, Redeemed};
use crate::error::ApiError;
use crate::state::AppState;

pub struct MpRedemptionApi;

/// An item I can spend points on.
#[derive(Debug, Clone, Object)]
pub struct OfferedItem {
    pub id: i64,
    /// The merchant who hands it over.
    pub merchant_id: i64,
    pub title: String,
    #[oai(nullable)]
    pub description: Option<String>,
    /// What one unit costs, in points.
    pub points_price: i64,
    /// Units left; 0: sold out.
    pub stock_left: i64,
    /// How many of it one resident may hold at once.
    pub per_resident_limit: i64,
    /// On offer until this time; absent: no end set.
    #[oai(nullable)]
    pub available_until: Option<OffsetDateTime>,
}

impl From<ItemFigures> for OfferedItem {
    fn from(f: ItemFigures) -> Self {
        let i = f.item;
        Self {
            id: i.id,
            merchant_id: i.merchant_id,
            title: i.title,
            description: i.description,
            points_price: i.points_price,
            stock_left: i.stock_left,
            per_resident_limit: i.per_resident_limit,
            available_until: i.available_until.map(ts),
        }
    }
}

/// A page of a company's catalogue.
#[derive(Debug, Clone, Object)]
pub struct OfferedItemPage {
    pub items: Vec<OfferedItem>,
    pub page: PageInfo,
}

/// What I redeem.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RedeemItem {
    /// A catalogue item's id.
    pub item_id: i64,
}

#[derive(ApiResponse)]
pub enum RedeemAnswer {
    /// Redeemed: the points are spent and `code` is the voucher to show the merchant.
    #[oai(status = 201)]
    Created(Json<Redemption>),
    /// This Idempotency-Key was used before: the first redemption, nothing changed.
    #[oai(status = 200)]
    Replayed(Json<Redemption>),
}

#[OpenApi(prefix_path = "/mp/v1", tag = "ApiTags::MpRedemption")]
impl MpRedemptionApi {
    /// What a property company's points buy now, sold-out items included (stock_left 0).
    #[oai(path = "/companies/:company_id/catalogue", method = "get", operation_id = "list_catalogue")]
    async fn list_catalogue(
        &self,
        state: Data<&AppState>,
        _me: ResidentSession,
        company_id: Path<i64>,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<OfferedItemPage>, ApiError> {
        let req = page_request(page.0, page_size.0);
        let found = redemption::catalogue_on_offer(&state.db, company_id.0, req).await?;
        Ok(Json(OfferedItemPage {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    /// Redeem one unit of an item with my points. Send a fresh `Idempotency-Key` per redemption
    /// and the same one on a retry: a retry answers the first redemption and spends nothing more.
    /// Sold out, over my limit or not on offer: 409; too few points: 422; either way nothing
    /// changes.
    #[oai(path = "/me/redemptions", method = "post", operation_id = "redeem_item")]
    async fn redeem_item(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        /// A key unique to this redemption (a UUID, say), 1–64 characters.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 64))]
        idempotency_key: Header<String>,
        body: Json<RedeemItem>,
    ) -> Result<RedeemAnswer, ApiError> {
        Ok(match redemption::redeem(&state.db, &me.0, body.0.item_id, &idempotency_key.0).await? {
            Redeemed::New(r) => RedeemAnswer::Created(Json(r.into())),
            Redeemed::Replayed(r) => RedeemAnswer::Replayed(Json(r.into())),
        })
    }

    /// My redemptions and their vouchers, newest first.
    #[oai(path = "/me/redemptions", method = "get", operation_id = "list_my_redemptions")]
    async fn list_my_redemptions(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        /// Only redemptions in this property company's programme.
        company_id: Query<Option<i64>>,
        /// Only redemptions in this state.
        #[oai(name = "state")]
        state_filter: Query<Option<RedemptionStateView>>,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<RedemptionPage>, ApiError> {
        let req = page_request(page.0, page_size.0);
        let wanted = state_filter.0.map(Into::into);
        let found = redemption::mine(&state.db, &me.0, company_id.0, wanted, req).await?;
        Ok(Json(RedemptionPage {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    /// One of my redemptions.
    #[oai(path = "/me/redemptions/:redemption_id", method = "get", operation_id = "get_my_redemption")]
    async fn get_my_redemption(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        redemption_id: Path<i64>,
    ) -> Result<Json<Redemption>, ApiError> {
        Ok(Json(redemption::my_redemption(&state.db, &me.0, redemption_id.0).await?.into()))
    }

    /// Cancel my redemption before the merchant writes the voucher off: the points come back.
    /// Already fulfilled or cancelled: 409.
    #[oai(path = "/me/redemptions/:redemption_id/cancel", method = "post", operation_id = "cancel_my_redemption")]
    async fn cancel_my_redemption(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        redemption_id: Path<i64>,
    ) -> Result<Json<Redemption>, ApiError> {
        Ok(Json(redemption::cancel_mine(&state.db, &me.0, redemption_id.0).await?.into()))
    }
}
