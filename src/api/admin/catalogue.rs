//! `/admin/v1/companies/{company_id}/catalogue` and `…/redemptions`: a company's points
//! catalogue (积分兑换) and the redemptions residents made of it.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;

use super::{ms, patch, ts, PageInfo};
use crate::api::auth::OperatorKey;
use crate::api::query::QueryParams;
use crate::api::views::offers::{RedemptionPage, RedemptionStateView};
use crate::api::ApiTags;
use crate::db::offers::redemption::{ItemFigures, ItemFilter, RedemptionFilter};
use crate::domain::offers::redemption::{self, ItemDraft, ItemPatch};
use crate::error::ApiError;
use crate::state::AppState;

pub struct CatalogueApi;

/// An item of a company's points catalogue, with what became of its redemptions.
#[derive(Debug, Clone, Object)]
pub struct CatalogueItem {
    pub id: i64,
    pub company_id: i64,
    /// The merchant who fulfils redemptions of this item.
    pub merchant_id: i64,
    pub title: String,
    #[oai(nullable)]
    pub description: Option<String>,
    /// What one unit costs, in points.
    pub points_price: i64,
    /// Units offered in all.
    pub stock_total: i64,
    /// Units not yet redeemed (cancelled redemptions give theirs back).
    pub stock_left: i64,
    /// Redemptions one resident may hold at once (cancelled ones do not count).
    pub per_resident_limit: i64,
    /// On offer from this time; absent: at once.
    #[oai(nullable)]
    pub available_from: Option<OffsetDateTime>,
    /// On offer until this time; absent: until archived.
    #[oai(nullable)]
    pub available_until: Option<OffsetDateTime>,
    /// Inactive items are not on offer, but can be switched back on.
    pub active: bool,
    /// Redemptions ever made, whatever became of them.
    pub redeemed: i64,
    /// Redeemed, waiting for the merchant.
    pub outstanding: i64,
    /// Written off by the merchant.
    pub fulfilled: i64,
    /// Cancelled by the resident (points refunded, stock returned).
    pub cancelled: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When it was taken off the catalogue for good; its vouchers stay valid.
    #[oai(nullable)]
    pub archived_at: Option<OffsetDateTime>,
}

impl From<ItemFigures> for CatalogueItem {
    fn from(f: ItemFigures) -> Self {
        let i = f.item;
        Self {
            id: i.id,
            company_id: i.company_id,
            merchant_id: i.merchant_id,
            title: i.title,
            description: i.description,
            points_price: i.points_price,
            stock_total: i.stock_total,
            stock_left: i.stock_left,
            per_resident_limit: i.per_resident_limit,
            available_from: i.available_from.map(ts),
            available_until: i.available_until.map(ts),
            active: i.active,
            redeemed: f.redeemed,
            outstanding: f.outstanding,
            fulfilled: f.fulfilled,
            cancelled: f.cancelled,
            created_at: ts(i.created_at),
            updated_at: ts(i.updated_at),
            archived_at: i.archived_at.map(ts),
        }
    }
}

/// A page of catalogue items.
#[derive(Debug, Clone, Object)]
pub struct CatalogueItemPage {
    pub items: Vec<CatalogueItem>,
    pub page: PageInfo,
}

/// A new catalogue item.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateCatalogueItem {
    /// A merchant org under the company, who fulfils the redemptions.
    pub merchant_id: i64,
    #[oai(validator(min_length = 1, max_length = 64))]
    pub title: String,
    #[oai(validator(max_length = 1000))]
    pub description: Option<String>,
    #[oai(validator(minimum(value = "1"), maximum(value = "100000000")))]
    pub points_price: i64,
    /// Units offered.
    #[oai(validator(minimum(value = "0"), maximum(value = "10000000")))]
    pub stock_total: i64,
    /// Redemptions one resident may hold at once (default 1).
    #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
    pub per_resident_limit: Option<i64>,
    pub available_from: Option<OffsetDateTime>,
    pub available_until: Option<OffsetDateTime>,
    /// On offer at once (default true).
    pub active: Option<bool>,
}

/// Changes to an item: absent fields keep their value, `null` clears an optional one. The stock
/// total may not go below what is already redeemed; the stock left moves with it.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateCatalogueItem {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub title: Option<String>,
    #[oai(nullable, validator(max_length = 1000))]
    pub description: MaybeUndefined<String>,
    #[oai(validator(minimum(value = "1"), maximum(value = "100000000")))]
    pub points_price: Option<i64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "10000000")))]
    pub stock_total: Option<i64>,
    #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
    pub per_resident_limit: Option<i64>,
    #[oai(nullable)]
    pub available_from: MaybeUndefined<OffsetDateTime>,
    #[oai(nullable)]
    pub available_until: MaybeUndefined<OffsetDateTime>,
    pub active: Option<bool>,
}

#[derive(ApiResponse)]
pub enum CatalogueItemCreated {
    /// The item is in the catalogue.
    #[oai(status = 201)]
    Created(Json<CatalogueItem>),
}

list_query! {
    /// What `list_catalogue_items` is narrowed by.
    pub struct ListCatalogueItems {
        /// Only items this merchant fulfils.
        pub merchant_id: Option<i64>,
        /// Include archived items.
        #[oai(default)]
        pub include_archived: bool,
    }
}

list_query! {
    /// What `list_redemptions` is narrowed by.
    pub struct ListRedemptions {
        /// Only redemptions of this item.
        pub item_id: Option<i64>,
        /// Only this resident's redemptions.
        pub resident_id: Option<i64>,
        /// Only redemptions this merchant fulfils.
        pub merchant_id: Option<i64>,
        /// Only redemptions in this state.
        #[oai(rename = "state")]
        pub state_filter: Option<RedemptionStateView>,
        /// Only redemptions made at or after this time (RFC 3339).
        pub since: Option<OffsetDateTime>,
        /// Only redemptions made before this time (RFC 3339).
        pub until: Option<OffsetDateTime>,
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::Catalogue")]
impl CatalogueApi {
    /// Add an item to the company's points catalogue. Operators and admins.
    #[oai(path = "/companies/:company_id/catalogue", method = "post", operation_id = "create_catalogue_item")]
    async fn create_catalogue_item(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        body: Json<CreateCatalogueItem>,
    ) -> Result<CatalogueItemCreated, ApiError> {
        let b = body.0;
        let draft = ItemDraft {
            merchant_id: b.merchant_id,
            title: b.title,
            description: b.description,
            points_price: b.points_price,
            stock_total: b.stock_total,
            per_resident_limit: b.per_resident_limit.unwrap_or(1),
            available_from: b.available_from.map(ms),
            available_until: b.available_until.map(ms),
            active: b.active.unwrap_or(true),
        };
        let item = redemption::create_item(&state.db, &key.0, company_id.0, draft).await?;
        Ok(CatalogueItemCreated::Created(Json(item.into())))
    }

    /// The company's catalogue with figures (redeemed, outstanding, fulfilled, cancelled, stock
    /// left), newest first.
    #[oai(path = "/companies/:company_id/catalogue", method = "get", operation_id = "list_catalogue_items")]
    async fn list_catalogue_items(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        QueryParams(query): QueryParams<ListCatalogueItems>,
    ) -> Result<Json<CatalogueItemPage>, ApiError> {
        let req = query.page_request();
        let filter = ItemFilter {
            merchant_id: query.merchant_id,
            include_archived: query.include_archived,
            ..Default::default()
        };
        let found = redemption::list_items(&state.db, &key.0, company_id.0, filter, req).await?;
        Ok(Json(CatalogueItemPage {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    /// One catalogue item, with figures.
    #[oai(path = "/companies/:company_id/catalogue/:item_id", method = "get", operation_id = "get_catalogue_item")]
    async fn get_catalogue_item(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        item_id: Path<i64>,
    ) -> Result<Json<CatalogueItem>, ApiError> {
        Ok(Json(redemption::get_item(&state.db, &key.0, company_id.0, item_id.0).await?.into()))
    }

    /// Edit a catalogue item. Operators and admins.
    #[oai(path = "/companies/:company_id/catalogue/:item_id", method = "patch", operation_id = "update_catalogue_item")]
    async fn update_catalogue_item(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        item_id: Path<i64>,
        body: Json<UpdateCatalogueItem>,
    ) -> Result<Json<CatalogueItem>, ApiError> {
        let b = body.0;
        let p = ItemPatch {
            title: b.title,
            description: patch(b.description),
            points_price: b.points_price,
            stock_total: b.stock_total,
            per_resident_limit: b.per_resident_limit,
            available_from: patch(b.available_from).map(|t| t.map(ms)),
            available_until: patch(b.available_until).map(|t| t.map(ms)),
            active: b.active,
        };
        Ok(Json(redemption::update_item(&state.db, &key.0, company_id.0, item_id.0, p).await?.into()))
    }

    /// Archive a catalogue item: no more redemptions; vouchers already issued stay valid.
    /// Operators and admins.
    #[oai(
        path = "/companies/:company_id/catalogue/:item_id",
        method = "delete",
        operation_id = "archive_catalogue_item"
    )]
    async fn archive_catalogue_item(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        item_id: Path<i64>,
    ) -> Result<Json<CatalogueItem>, ApiError> {
        Ok(Json(redemption::archive_item(&state.db, &key.0, company_id.0, item_id.0).await?.into()))
    }

    /// The company's redemptions (兑换记录), filtered, newest first.
    #[oai(path = "/companies/:company_id/redemptions", method = "get", operation_id = "list_redemptions")]
    async fn list_redemptions(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        QueryParams(query): QueryParams<ListRedemptions>,
    ) -> Result<Json<RedemptionPage>, ApiError> {
        let req = query.page_request();
        let filter = RedemptionFilter {
            programme_id: None,
            resident_id: query.resident_id,
            item_id: query.item_id,
            merchant_id: query.merchant_id,
            state: query.state_filter.map(Into::into),
            since: query.since.map(ms),
            until: query.until.map(ms),
        };
        let found = redemption::list_redemptions(&state.db, &key.0, company_id.0, filter, req).await?;
        Ok(Json(RedemptionPage {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }
}
