//! `/mp/v1/me`: the resident's profile, points and check-in.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use super::{session_mini_program, ResidentSession};
use crate::api::common::{ms, ts};
use crate::api::query::QueryParams;
use crate::api::views::loyalty::{KindView, LedgerPage, SourceView};
use crate::api::ApiTags;
use crate::codes::ErrorCode;
use crate::db;
use crate::db::loyalty::points::LedgerFilter;
use crate::domain::community::sessions;
use crate::domain::loyalty::points;
use crate::error::ApiError;
use crate::state::AppState;

pub struct MpMeApi;

/// One of my WeChat identities.
#[derive(Debug, Clone, Object)]
pub struct MyIdentity {
    /// `oa` (official account) or `mp` (mini-program).
    pub app_kind: String,
    /// Whether I follow the official account now (always false for `mp`).
    pub subscribed: bool,
}

/// My points in one property company's programme.
#[derive(Debug, Clone, Object)]
pub struct MyPoints {
    pub company_id: i64,
    pub company_name: String,
    pub programme_name: String,
    pub balance: i64,
}

/// Me.
#[derive(Debug, Clone, Object)]
pub struct Profile {
    pub resident_id: i64,
    /// The code my invitations carry (QR scene `inv_<code>`).
    pub invite_code: String,
    /// The phone number WeChat confirmed for me, if I shared it.
    #[oai(nullable)]
    pub phone: Option<String>,
    pub identities: Vec<MyIdentity>,
    pub points: Vec<MyPoints>,
    pub created_at: OffsetDateTime,
}

/// Where to check in.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CheckinRequest {
    /// The property company whose programme to check in to; absent: the official account's.
    pub company_id: Option<i64>,
}

/// What checking in did.
#[derive(Debug, Clone, Object)]
pub struct CheckinResult {
    /// I had already checked in today; nothing was credited.
    pub already_checked_in: bool,
    /// Consecutive days, today included.
    pub streak: i64,
    /// Points credited now, streak bonus included.
    pub points: i64,
    /// Of which the streak bonus.
    pub bonus: i64,
    pub balance: i64,
    /// What to show me, as the official account would say it.
    pub message: String,
}

/// A phone-number code from the mini-program's phone-number button.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct PhoneCode {
    #[oai(validator(min_length = 1, max_length = 128))]
    pub code: String,
}

/// A code that names me at a merchant's counter.
#[derive(Debug, Clone, Object)]
pub struct MemberCode {
    /// 18 digits; show it as a barcode or QR code.
    pub code: String,
    pub expires_at: OffsetDateTime,
}

/// The phone number WeChat confirmed.
#[derive(Debug, Clone, Object)]
pub struct ConfirmedPhone {
    pub phone: String,
}

list_query! {
    /// What `list_my_points_ledger` is narrowed by.
    pub struct ListMyPointsLedger {
        /// The property company whose programme to read.
        pub company_id: i64,
        /// Only rows of this kind.
        pub kind: Option<KindView>,
        /// Only rows from this source.
        pub source: Option<SourceView>,
        /// Only rows at or after this time (RFC 3339).
        pub since: Option<OffsetDateTime>,
        /// Only rows before this time (RFC 3339).
        pub until: Option<OffsetDateTime>,
    }
}

#[OpenApi(prefix_path = "/mp/v1", tag = "ApiTags::MpMe")]
impl MpMeApi {
    /// My profile: identities, confirmed phone, and points in every programme I belong to.
    #[oai(path = "/me", method = "get", operation_id = "get_my_profile")]
    async fn get_my_profile(&self, state: Data<&AppState>, me: ResidentSession) -> Result<Json<Profile>, ApiError> {
        let id = me.0.resident_id;
        let resident =
            db::community::residents::get(state.db.reader(), id).await?.ok_or(ApiError::NotFound("resident"))?;
        let identities = db::community::residents::identities_of(state.db.reader(), id).await?;
        let holdings = db::loyalty::points::holdings(state.db.reader(), id).await?;
        let phone = db::community::residents::phone_of(state.db.reader(), id).await?;
        Ok(Json(Profile {
            resident_id: id,
            invite_code: resident.invite_code,
            phone,
            identities: identities
                .into_iter()
                .map(|i| MyIdentity { app_kind: i.app_kind.as_str().to_owned(), subscribed: i.subscribed })
                .collect(),
            points: holdings
                .into_iter()
                .map(|h| MyPoints {
                    company_id: h.company_id,
                    company_name: h.company_name,
                    programme_name: h.programme_name,
                    balance: h.balance,
                })
                .collect(),
            created_at: ts(resident.created_at),
        }))
    }

    /// My points ledger in a company's programme, newest first, with totals.
    #[oai(path = "/me/points/ledger", method = "get", operation_id = "list_my_points_ledger")]
    async fn list_my_points_ledger(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        QueryParams(query): QueryParams<ListMyPointsLedger>,
    ) -> Result<Json<LedgerPage>, ApiError> {
        let req = query.page_request();
        let filter = LedgerFilter {
            kind: query.kind.map(Into::into),
            source: query.source.map(Into::into),
            since: query.since.map(ms),
            until: query.until.map(ms),
            ..Default::default()
        };
        let (found, totals) = points::my_ledger(&state.db, me.0.resident_id, query.company_id, filter, req).await?;
        Ok(Json(LedgerPage::new(found, totals, req)))
    }

    /// Check in for today: the same rules and the same once a day as on the official account.
    #[oai(path = "/me/checkins", method = "post", operation_id = "check_in")]
    async fn check_in(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        body: Json<CheckinRequest>,
    ) -> Result<Json<CheckinResult>, ApiError> {
        let company_id = body.0.company_id.or(state.settings.wechat.oa_company_id).ok_or(ApiError::Unprocessable {
            code: ErrorCode::CompanyRequired,
            message: "name the property company to check in to".into(),
        })?;
        let c = points::check_in_resident(&state.db, me.0.resident_id, company_id).await?;
        Ok(Json(CheckinResult {
            message: c.message(),
            already_checked_in: c.already,
            streak: c.streak,
            points: c.points,
            bonus: c.bonus,
            balance: c.balance,
        }))
    }

    /// A fresh member code to show at a merchant's counter (valid ten minutes), so my purchase
    /// earns points and my coupons can be used.
    #[oai(path = "/me/member-code", method = "post", operation_id = "create_member_code")]
    async fn create_member_code(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
    ) -> Result<Json<MemberCode>, ApiError> {
        let (code, expires_at) = crate::domain::retail::orders::member_code(&state.db, &me.0).await?;
        Ok(Json(MemberCode { code, expires_at: ts(expires_at) }))
    }

    /// Confirm my phone number with the code from the mini-program's phone-number button; the
    /// number is fetched from WeChat, never taken from the client, and lets bindings match the
    /// roster.
    #[oai(path = "/me/phone", method = "post", operation_id = "confirm_my_phone")]
    async fn confirm_my_phone(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        body: Json<PhoneCode>,
    ) -> Result<Json<ConfirmedPhone>, ApiError> {
        let mp = session_mini_program(&state, &me.0).await?;
        let phone = sessions::confirm_phone(&state.db, &state.wechat, &mp, &me.0, &body.0.code).await?;
        Ok(Json(ConfirmedPhone { phone }))
    }
}
