//! `/admin/v1/companies/{company_id}/…`: a property company's points programme, its ledger and
//! its members.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;

use super::{ms, page_request, ts, PageInfo};
use crate::api::auth::OperatorKey;
use crate::api::query::QueryParams;
use crate::api::views::loyalty::{KindView, LedgerEntry, LedgerPage, SourceView};
use crate::api::ApiTags;
use crate::db::loyalty::points::{LedgerFilter, ProgrammeRow};
use crate::domain::loyalty::points::{self, Posted, Rules, StreakBonus};
use crate::error::ApiError;
use crate::state::AppState;

pub struct PointsApi;

/// A streak bonus: extra points on day `day` of a check-in streak, or on every multiple of it
/// when `repeat` is set.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct StreakBonusView {
    #[oai(validator(minimum(value = "1"), maximum(value = "366")))]
    pub day: i64,
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000")))]
    pub points: i64,
    #[oai(default)]
    pub repeat: bool,
}

/// A programme's earn rules.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct PointsRules {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub name: String,
    /// The programme's time zone as a fixed offset from UTC in minutes; "today" for check-ins is
    /// computed in it. Mainland China (Asia/Shanghai) is 480.
    #[oai(validator(minimum(value = "-720"), maximum(value = "840")))]
    pub utc_offset_minutes: i64,
    /// Points for a resident's first follow of the official account, once ever (0: none).
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000")))]
    pub follow_points: i64,
    /// Points for a daily check-in.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000")))]
    pub checkin_points: i64,
    /// Extra points on days of a check-in streak.
    #[oai(validator(max_items = 20))]
    pub streak_bonuses: Vec<StreakBonusView>,
    /// Points to the inviter when a new resident follows through the inviter's QR code.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000")))]
    pub referral_points: i64,
    /// The text message that checks a resident in (e.g. 签到).
    #[oai(validator(min_length = 1, max_length = 16))]
    pub checkin_keyword: String,
    /// The EventKey of the official-account menu button that checks a resident in.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub checkin_menu_key: String,
    /// The reply to other text messages; absent: no reply.
    #[oai(nullable, validator(max_length = 600))]
    pub default_reply: Option<String>,
    /// Points per yuan paid at the company's merchants (default 1).
    #[oai(default = "one_point_per_yuan", validator(minimum(value = "0"), maximum(value = "1000")))]
    pub points_per_yuan: i64,
    /// A resident's first purchase at a merchant earns this percent of the usual points (default
    /// 200: doubled).
    #[oai(default = "double", validator(minimum(value = "100"), maximum(value = "1000")))]
    pub first_purchase_percent: i64,
}

fn one_point_per_yuan() -> i64 {
    1
}

fn double() -> i64 {
    200
}

/// A property company's points programme.
#[derive(Debug, Clone, Object)]
pub struct PointsProgramme {
    pub id: i64,
    pub company_id: i64,
    pub rules: PointsRules,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<ProgrammeRow> for PointsProgramme {
    fn from(p: ProgrammeRow) -> Self {
        let r = Rules::of(&p);
        Self {
            id: p.id,
            company_id: p.company_id,
            rules: PointsRules {
                name: r.name,
                utc_offset_minutes: r.utc_offset_minutes,
                follow_points: r.follow_points,
                checkin_points: r.checkin_points,
                streak_bonuses: r
                    .streak_bonuses
                    .into_iter()
                    .map(|b| StreakBonusView { day: b.day, points: b.points, repeat: b.repeat })
                    .collect(),
                referral_points: r.referral_points,
                checkin_keyword: r.checkin_keyword,
                checkin_menu_key: r.checkin_menu_key,
                default_reply: r.default_reply,
                points_per_yuan: r.points_per_yuan,
                first_purchase_percent: r.first_purchase_percent,
            },
            created_at: ts(p.created_at),
            updated_at: ts(p.updated_at),
        }
    }
}

/// Points granted to (positive) or taken back from (negative) a resident by an operator.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct PointsAdjustment {
    pub resident_id: i64,
    /// Positive: issue (发行积分). Negative: take back (kind `adjust`); never below zero.
    #[oai(validator(minimum(value = "-100000000"), maximum(value = "100000000")))]
    pub amount: i64,
    /// Your reference for this grant, unique in the programme: sending it again changes nothing
    /// and answers the first grant.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub reference: String,
    /// Why, for the records.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub remark: String,
}

#[derive(ApiResponse)]
pub enum AdjustmentAnswer {
    /// Posted.
    #[oai(status = 201)]
    Created(Json<LedgerEntry>),
    /// The reference was posted before: the original row, nothing changed.
    #[oai(status = 200)]
    Replayed(Json<LedgerEntry>),
}

/// A resident in a company's programme.
#[derive(Debug, Clone, Object)]
pub struct Member {
    pub resident_id: i64,
    #[oai(nullable)]
    pub unionid: Option<String>,
    /// The code the resident's invitations carry.
    pub invite_code: String,
    pub balance: i64,
    pub joined_at: OffsetDateTime,
}

/// A page of members.
#[derive(Debug, Clone, Object)]
pub struct MemberPage {
    pub items: Vec<Member>,
    pub page: PageInfo,
}

/// One of a resident's WeChat identities.
#[derive(Debug, Clone, Object)]
pub struct IdentityView {
    /// `oa` (official account) or `mp` (mini-program).
    pub app_kind: String,
    pub appid: String,
    pub openid: String,
    /// Follows the official account now.
    pub subscribed: bool,
    #[oai(nullable)]
    pub first_followed_at: Option<OffsetDateTime>,
    #[oai(nullable)]
    pub last_followed_at: Option<OffsetDateTime>,
    #[oai(nullable)]
    pub last_unfollowed_at: Option<OffsetDateTime>,
}

/// A resident, as a company's operators see them.
#[derive(Debug, Clone, Object)]
pub struct ResidentDetail {
    pub resident_id: i64,
    #[oai(nullable)]
    pub unionid: Option<String>,
    pub invite_code: String,
    pub balance: i64,
    pub identities: Vec<IdentityView>,
    pub created_at: OffsetDateTime,
}

/// A points campaign: items of a category bought in a window earn a multiple of the usual points.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewMultiplier {
    #[oai(validator(min_length = 1, max_length = 32))]
    pub category: String,
    /// Percent of the usual points: 200 doubles.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000")))]
    pub percent: i64,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
}

/// A points campaign.
#[derive(Debug, Clone, Object)]
pub struct Multiplier {
    pub id: i64,
    pub category: String,
    pub percent: i64,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
}

impl From<crate::db::retail::orders::MultiplierRow> for Multiplier {
    fn from(m: crate::db::retail::orders::MultiplierRow) -> Self {
        Self { id: m.id, category: m.category, percent: m.percent, starts_at: ts(m.starts_at), ends_at: ts(m.ends_at) }
    }
}

/// The company's points campaigns.
#[derive(Debug, Clone, Object)]
pub struct MultiplierList {
    pub items: Vec<Multiplier>,
}

#[derive(ApiResponse)]
pub enum MultiplierCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<Multiplier>),
}

#[derive(ApiResponse)]
pub enum MultiplierDeleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

list_query! {
    /// What `list_points_ledger` is narrowed by.
    pub struct ListPointsLedger {
        /// Only this resident's rows.
        pub resident_id: Option<i64>,
        /// Only rows of this kind.
        pub kind: Option<KindView>,
        /// Only rows from this source.
        pub source: Option<SourceView>,
        /// Only rows posted with this operator key.
        pub operator_key_id: Option<i64>,
        /// Only rows at or after this time (RFC 3339).
        pub since: Option<OffsetDateTime>,
        /// Only rows before this time (RFC 3339).
        pub until: Option<OffsetDateTime>,
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::Points")]
impl PointsApi {
    /// Add a points campaign (e.g. double points on fruit this week). Operators and admins.
    #[oai(
        path = "/companies/:company_id/points/multipliers",
        method = "post",
        operation_id = "create_points_multiplier"
    )]
    async fn create_points_multiplier(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        body: Json<NewMultiplier>,
    ) -> Result<MultiplierCreated, ApiError> {
        let b = body.0;
        let m = points::add_multiplier(
            &state.db,
            &key.0,
            company_id.0,
            &b.category,
            b.percent,
            ms(b.starts_at),
            ms(b.ends_at),
        )
        .await?;
        Ok(MultiplierCreated::Created(Json(m.into())))
    }

    /// The company's points campaigns.
    #[oai(path = "/companies/:company_id/points/multipliers", method = "get", operation_id = "list_points_multipliers")]
    async fn list_points_multipliers(
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
    ) -> Result<Json<MultiplierList>, ApiError> {
        let multipliers = points::multipliers(&state.db, &key.0, company_id.0).await?;
        let items = page_request(page.0, page_size.0).slice(multipliers).into_iter().map(Into::into).collect();
        Ok(Json(MultiplierList { items }))
    }

    /// Remove a points campaign. Operators and admins.
    #[oai(
        path = "/companies/:company_id/points/multipliers/:multiplier_id",
        method = "delete",
        operation_id = "delete_points_multiplier"
    )]
    async fn delete_points_multiplier(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        multiplier_id: Path<i64>,
    ) -> Result<MultiplierDeleted, ApiError> {
        points::remove_multiplier(&state.db, &key.0, company_id.0, multiplier_id.0).await?;
        Ok(MultiplierDeleted::Deleted)
    }

    /// The company's points programme and its earn rules.
    #[oai(path = "/companies/:company_id/points-programme", method = "get", operation_id = "get_points_programme")]
    async fn get_points_programme(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
    ) -> Result<Json<PointsProgramme>, ApiError> {
        Ok(Json(points::get_programme(&state.db, &key.0, company_id.0).await?.into()))
    }

    /// Set the company's earn rules (creating its programme if it has none). Admins only.
    #[oai(
        path = "/companies/:company_id/points-programme",
        method = "put",
        operation_id = "configure_points_programme"
    )]
    async fn configure_points_programme(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        body: Json<PointsRules>,
    ) -> Result<Json<PointsProgramme>, ApiError> {
        let b = body.0;
        let rules = Rules {
            name: b.name,
            utc_offset_minutes: b.utc_offset_minutes,
            follow_points: b.follow_points,
            checkin_points: b.checkin_points,
            streak_bonuses: b
                .streak_bonuses
                .into_iter()
                .map(|s| StreakBonus { day: s.day, points: s.points, repeat: s.repeat })
                .collect(),
            referral_points: b.referral_points,
            checkin_keyword: b.checkin_keyword,
            checkin_menu_key: b.checkin_menu_key,
            default_reply: b.default_reply,
            points_per_yuan: b.points_per_yuan,
            first_purchase_percent: b.first_purchase_percent,
        };
        Ok(Json(points::configure(&state.db, &key.0, company_id.0, rules).await?.into()))
    }

    /// Issue points to a resident, or take them back, with a remark; idempotent by reference.
    /// Operators and admins.
    #[oai(path = "/companies/:company_id/points/adjustments", method = "post", operation_id = "adjust_points")]
    async fn adjust_points(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        body: Json<PointsAdjustment>,
    ) -> Result<AdjustmentAnswer, ApiError> {
        let b = body.0;
        let posted =
            points::adjust(&state.db, &key.0, company_id.0, b.resident_id, b.amount, &b.reference, &b.remark).await?;
        Ok(match posted {
            Posted::New(row) => AdjustmentAnswer::Created(Json(row.into())),
            Posted::Replayed(row) => AdjustmentAnswer::Replayed(Json(row.into())),
        })
    }

    /// The ledger: issue, earn, spend, redemption and refund records, filtered, newest first,
    /// with totals over every match.
    #[oai(path = "/companies/:company_id/points/ledger", method = "get", operation_id = "list_points_ledger")]
    async fn list_points_ledger(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        QueryParams(query): QueryParams<ListPointsLedger>,
    ) -> Result<Json<LedgerPage>, ApiError> {
        let req = query.page_request();
        let filter = LedgerFilter {
            programme_id: 0,
            resident_id: query.resident_id,
            kind: query.kind.map(Into::into),
            source: query.source.map(Into::into),
            operator_key_id: query.operator_key_id,
            since: query.since.map(ms),
            until: query.until.map(ms),
        };
        let (found, totals) = points::ledger(&state.db, &key.0, company_id.0, filter, req).await?;
        Ok(Json(LedgerPage::new(found, totals, req)))
    }

    /// Residents in the company's programme, with their balances, newest first.
    #[oai(path = "/companies/:company_id/residents", method = "get", operation_id = "list_company_residents")]
    async fn list_company_residents(
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
    ) -> Result<Json<MemberPage>, ApiError> {
        let req = page_request(page.0, page_size.0);
        let found = points::members(&state.db, &key.0, company_id.0, req).await?;
        let items = found
            .items
            .into_iter()
            .map(|m| Member {
                resident_id: m.resident_id,
                unionid: m.unionid,
                invite_code: m.invite_code,
                balance: m.balance,
                joined_at: ts(m.joined_at),
            })
            .collect();
        Ok(Json(MemberPage { items, page: PageInfo::new(req, found.total) }))
    }

    /// One resident of the company's programme: balance and WeChat identities.
    #[oai(
        path = "/companies/:company_id/residents/:resident_id",
        method = "get",
        operation_id = "get_company_resident"
    )]
    async fn get_company_resident(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        company_id: Path<i64>,
        resident_id: Path<i64>,
    ) -> Result<Json<ResidentDetail>, ApiError> {
        let (resident, balance, identities) = points::member(&state.db, &key.0, company_id.0, resident_id.0).await?;
        Ok(Json(ResidentDetail {
            resident_id: resident.id,
            unionid: resident.unionid,
            invite_code: resident.invite_code,
            balance,
            identities: identities
                .into_iter()
                .map(|i| IdentityView {
                    app_kind: i.app_kind.as_str().to_owned(),
                    appid: i.appid,
                    openid: i.openid,
                    subscribed: i.subscribed,
                    first_followed_at: i.first_followed_at.map(ts),
                    last_followed_at: i.last_followed_at.map(ts),
                    last_unfollowed_at: i.last_unfollowed_at.map(ts),
                })
                .collect(),
            created_at: ts(resident.created_at),
        }))
    }
}
