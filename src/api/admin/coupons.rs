//! `/admin/v1/coupon-templates`: coupons an owner issues, with their figures.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use time::OffsetDateTime;

use super::{page_request, ts, PageInfo};
use crate::api::auth::OperatorKey;
use crate::api::query::QueryParams;
use crate::api::views::offers::CouponTerms;
use crate::api::ApiTags;
use crate::db::offers::coupons::{Figures, RuleRow, TemplateFilter, TemplateRow, TemplateState};
use crate::domain::offers::coupon_rules::{self, NewRule, Trigger};
use crate::domain::offers::coupons::{self};
use crate::error::ApiError;
use crate::state::AppState;

pub struct CouponsApi;

/// Whether a template's coupons can still be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "CouponTemplateState", rename_all = "lowercase")]
pub enum TemplateStateView {
    Active,
    /// Ended by an operator: no more claims; coupons already held stay usable.
    Ended,
}

one_to_one!(TemplateStateView <=> TemplateState { Active, Ended });

/// A new coupon template.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateCouponTemplate {
    /// The issuer: a property company, a community or a merchant the key reaches.
    pub owner_org_id: i64,
    pub terms: CouponTerms,
}

/// What became of a template's coupons.
#[derive(Debug, Clone, Object)]
pub struct CouponFigures {
    pub claimed: i64,
    pub used: i64,
    pub expired: i64,
    /// Fen taken off by used coupons.
    pub discount_given: i64,
    /// Still claimable.
    pub stock_left: i64,
}

/// A coupon template.
#[derive(Debug, Clone, Object)]
pub struct CouponTemplate {
    pub id: i64,
    pub owner_org_id: i64,
    pub company_id: i64,
    pub terms: CouponTerms,
    pub state: TemplateStateView,
    #[oai(nullable)]
    pub ended_at: Option<OffsetDateTime>,
    pub figures: CouponFigures,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

fn view(t: TemplateRow, f: Figures) -> CouponTemplate {
    CouponTemplate {
        terms: CouponTerms::of(&t),
        figures: CouponFigures {
            claimed: f.claimed,
            used: f.used,
            expired: f.expired,
            discount_given: f.discount_given,
            stock_left: t.stock_left,
        },
        id: t.id,
        owner_org_id: t.owner_org_id,
        company_id: t.company_id,
        state: t.state.into(),
        ended_at: t.ended_at.map(ts),
        created_at: ts(t.created_at),
        updated_at: ts(t.updated_at),
    }
}

/// A page of templates.
#[derive(Debug, Clone, Object)]
pub struct CouponTemplatePage {
    pub items: Vec<CouponTemplate>,
    pub page: PageInfo,
}

#[derive(ApiResponse)]
pub enum TemplateCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<CouponTemplate>),
}

#[derive(ApiResponse)]
pub enum TemplateDeleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

/// What makes a rule issue a coupon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "CouponTrigger", rename_all = "snake_case")]
pub enum TriggerView {
    /// A resident's first follow of the official account (a new-customer coupon).
    FirstFollow,
    /// A resident's first verified home.
    FirstBinding,
    /// A purchase that leaves the resident with `min_purchases..=max_purchases` purchases in the
    /// last `window_days` days (this one included).
    RepeatPurchase,
}

one_to_one!(TriggerView <=> Trigger { FirstFollow, FirstBinding, RepeatPurchase });

/// A new automatic-issuance rule.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateCouponRule {
    /// The template whose coupon it gives (its stock and validity apply).
    pub template_id: i64,
    pub trigger: TriggerView,
    /// Repeat purchases only (default 1).
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub min_purchases: Option<i64>,
    /// Repeat purchases only (default 2).
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub max_purchases: Option<i64>,
    /// Repeat purchases only (default 30).
    #[oai(validator(minimum(value = "1"), maximum(value = "365")))]
    pub window_days: Option<i64>,
}

/// An automatic-issuance rule. Each trigger (a resident, an order) gets at most one coupon from it.
#[derive(Debug, Clone, Object)]
pub struct CouponRule {
    pub id: i64,
    pub template_id: i64,
    pub company_id: i64,
    pub trigger: TriggerView,
    #[oai(nullable)]
    pub min_purchases: Option<i64>,
    #[oai(nullable)]
    pub max_purchases: Option<i64>,
    #[oai(nullable)]
    pub window_days: Option<i64>,
    pub active: bool,
    pub created_at: OffsetDateTime,
}

impl From<RuleRow> for CouponRule {
    fn from(r: RuleRow) -> Self {
        Self {
            id: r.id,
            template_id: r.template_id,
            company_id: r.company_id,
            trigger: r.trigger_kind.into(),
            min_purchases: r.min_purchases,
            max_purchases: r.max_purchases,
            window_days: r.window_days,
            active: r.active,
            created_at: ts(r.created_at),
        }
    }
}

/// A company's rules.
#[derive(Debug, Clone, Object)]
pub struct CouponRuleList {
    pub items: Vec<CouponRule>,
}

#[derive(ApiResponse)]
pub enum RuleCreated {
    /// Created; it fires from now on.
    #[oai(status = 201)]
    Created(Json<CouponRule>),
}

list_query! {
    /// What `list_coupon_templates` is narrowed by.
    pub struct ListCouponTemplates {
        /// Only templates issued by this org or the orgs below it.
        pub owner_org_id: Option<i64>,
        #[oai(rename = "state")]
        pub template_state: Option<TemplateStateView>,
        #[oai(validator(max_length = 32))]
        pub category: Option<String>,
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::Coupons")]
impl CouponsApi {
    /// Add a rule that issues a template's coupon automatically: to new followers, to residents
    /// whose first home is verified, or after purchases that make a resident a repeat customer.
    #[oai(path = "/coupon-rules", method = "post", operation_id = "create_coupon_rule")]
    async fn create_coupon_rule(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        body: Json<CreateCouponRule>,
    ) -> Result<RuleCreated, ApiError> {
        let b = body.0;
        let new = NewRule {
            template_id: b.template_id,
            trigger: b.trigger.into(),
            min_purchases: b.min_purchases,
            max_purchases: b.max_purchases,
            window_days: b.window_days,
        };
        Ok(RuleCreated::Created(Json(coupon_rules::create(&state.db, &key.0, new).await?.into())))
    }

    /// A company's coupon rules.
    #[oai(path = "/companies/:company_id/coupon-rules", method = "get", operation_id = "list_coupon_rules")]
    async fn list_coupon_rules(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<CouponRuleList>, ApiError> {
        let rules = coupon_rules::list(&state.db, &key.0, company_id.0).await?;
        let items = page_request(page.0, page_size.0).slice(rules).into_iter().map(Into::into).collect();
        Ok(Json(CouponRuleList { items }))
    }

    /// Stop a rule; the coupons it issued stay.
    #[oai(path = "/coupon-rules/:rule_id/deactivate", method = "post", operation_id = "deactivate_coupon_rule")]
    async fn deactivate_coupon_rule(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        rule_id: Path<i64>,
    ) -> Result<Json<CouponRule>, ApiError> {
        Ok(Json(coupon_rules::deactivate(&state.db, &key.0, rule_id.0).await?.into()))
    }

    /// Issue a coupon template. Operators and admins of the issuer or above.
    #[oai(path = "/coupon-templates", method = "post", operation_id = "create_coupon_template")]
    async fn create_coupon_template(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        body: Json<CreateCouponTemplate>,
    ) -> Result<TemplateCreated, ApiError> {
        let b = body.0;
        let t = coupons::create(&state.db, &key.0, b.owner_org_id, b.terms.into_input()).await?;
        Ok(TemplateCreated::Created(Json(view(t, Figures::default()))))
    }

    /// Templates of the orgs the key reaches, newest first, with figures.
    #[oai(path = "/coupon-templates", method = "get", operation_id = "list_coupon_templates")]
    async fn list_coupon_templates(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        QueryParams(query): QueryParams<ListCouponTemplates>,
    ) -> Result<Json<CouponTemplatePage>, ApiError> {
        let req = query.page_request();
        let filter = TemplateFilter {
            scope_path: String::new(),
            owner_org_id: query.owner_org_id,
            state: query.template_state.map(Into::into),
            category: query.category,
        };
        let found = coupons::list(&state.db, &key.0, filter, req).await?;
        let items = found.items.into_iter().map(|(t, f)| view(t, f)).collect();
        Ok(Json(CouponTemplatePage { items, page: PageInfo::new(req, found.total) }))
    }

    /// One template with its figures.
    #[oai(path = "/coupon-templates/:template_id", method = "get", operation_id = "get_coupon_template")]
    async fn get_coupon_template(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        template_id: Path<i64>,
    ) -> Result<Json<CouponTemplate>, ApiError> {
        let (t, f) = coupons::get(&state.db, &key.0, template_id.0).await?;
        Ok(Json(view(t, f)))
    }

    /// Rewrite a template's terms. Once coupons have been claimed only the title, the category,
    /// the stock (not below what was claimed), the end of the claim window and a larger
    /// per-resident limit may change; anything else answers 409 naming the fields.
    #[oai(path = "/coupon-templates/:template_id", method = "put", operation_id = "update_coupon_template")]
    async fn update_coupon_template(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        template_id: Path<i64>,
        body: Json<CouponTerms>,
    ) -> Result<Json<CouponTemplate>, ApiError> {
        let t = coupons::update(&state.db, &key.0, template_id.0, body.0.into_input()).await?;
        let f = crate::db::offers::coupons::figures(state.db.reader(), t.id).await?;
        Ok(Json(view(t, f)))
    }

    /// Delete a template nobody has claimed from (otherwise end it).
    #[oai(path = "/coupon-templates/:template_id", method = "delete", operation_id = "delete_coupon_template")]
    async fn delete_coupon_template(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        template_id: Path<i64>,
    ) -> Result<TemplateDeleted, ApiError> {
        coupons::delete(&state.db, &key.0, template_id.0).await?;
        Ok(TemplateDeleted::Deleted)
    }

    /// End a template: no more claims; claimed coupons stay usable until they expire.
    #[oai(path = "/coupon-templates/:template_id/end", method = "post", operation_id = "end_coupon_template")]
    async fn end_coupon_template(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        template_id: Path<i64>,
    ) -> Result<Json<CouponTemplate>, ApiError> {
        let t = coupons::end(&state.db, &key.0, template_id.0).await?;
        let f = crate::db::offers::coupons::figures(state.db.reader(), t.id).await?;
        Ok(Json(view(t, f)))
    }
}
