//! `/admin/v1/bindings`: the review queue of residents' bindings to rooms.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use time::OffsetDateTime;

use super::roster::ResidentRoleView;
use super::{ts, PageInfo};
use crate::api::auth::OperatorKey;
use crate::api::query::QueryParams;
use crate::api::ApiTags;
use crate::db::community::bindings::{BindingFilter, BindingRow, BindingState};
use crate::domain::community::bindings::{self, Decision};
use crate::error::ApiError;
use crate::state::AppState;

pub struct BindingsApi;

/// Where a binding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "BindingState", rename_all = "lowercase")]
pub enum BindingStateView {
    /// Waiting for an operator's review.
    Pending,
    /// The resident is bound to the room.
    Verified,
    /// An operator refused it (see `reason`).
    Rejected,
    /// It was ended or withdrawn (see `reason`).
    Ended,
}

one_to_one!(BindingStateView <=> BindingState { Pending, Verified, Rejected, Ended });

/// A resident's binding to a room.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Binding")]
pub struct BindingView {
    pub id: i64,
    pub resident_id: i64,
    pub community_id: i64,
    pub community_name: String,
    pub room_id: i64,
    pub building: String,
    pub unit: String,
    pub number: String,
    /// The room as residents write it, e.g. `3-2-301`.
    pub room_label: String,
    pub role: ResidentRoleView,
    pub state: BindingStateView,
    pub name: String,
    pub phone: String,
    /// How it was verified: `roster`, `owner` (an invitation) or `operator`.
    #[oai(nullable)]
    pub verified_by: Option<String>,
    /// Why it was rejected or ended.
    #[oai(nullable)]
    pub reason: Option<String>,
    /// Who decided: an operator key, the room's owner, the resident, or the roster.
    #[oai(nullable)]
    pub decided_by: Option<String>,
    #[oai(nullable)]
    pub decided_at: Option<OffsetDateTime>,
    /// The owner binding whose invitation this came from.
    #[oai(nullable)]
    pub invited_by: Option<i64>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<BindingRow> for BindingView {
    fn from(b: BindingRow) -> Self {
        Self {
            room_label: bindings::room_label(&b),
            id: b.id,
            resident_id: b.resident_id,
            community_id: b.community_id,
            community_name: b.community_name,
            room_id: b.room_id,
            building: b.building,
            unit: b.unit,
            number: b.number,
            role: b.role.into(),
            state: b.state.into(),
            name: b.name,
            phone: b.phone,
            verified_by: b.verified_by,
            reason: b.reason,
            decided_by: b.decided_by,
            decided_at: b.decided_at.map(ts),
            invited_by: b.invited_by,
            created_at: ts(b.created_at),
            updated_at: ts(b.updated_at),
        }
    }
}

/// A page of bindings.
#[derive(Debug, Clone, Object)]
pub struct BindingPage {
    pub items: Vec<BindingView>,
    pub page: PageInfo,
}

/// Why, shown to the resident.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct DecisionReason {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub reason: String,
}

/// An optional note on an approval.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct ApprovalNote {
    #[oai(validator(max_length = 200))]
    pub reason: Option<String>,
}

list_query! {
    /// What `list_bindings` is narrowed by.
    pub struct ListBindings {
        /// Only bindings of this community.
        pub community_id: Option<i64>,
        /// Only bindings of this room.
        pub room_id: Option<i64>,
        /// Only this resident's bindings.
        pub resident_id: Option<i64>,
        /// Only bindings in this state.
        pub state: Option<BindingStateView>,
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::Bindings")]
impl BindingsApi {
    /// Bindings of the communities the key reaches, oldest first (the review queue with
    /// `state=pending`).
    #[oai(path = "/bindings", method = "get", operation_id = "list_bindings")]
    async fn list_bindings(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        query: QueryParams<ListBindings>,
    ) -> Result<Json<BindingPage>, ApiError> {
        let req = query.page_request();
        let filter = BindingFilter {
            scope_path: String::new(),
            community_id: query.community_id,
            room_id: query.room_id,
            resident_id: query.resident_id,
            state: query.state.map(Into::into),
        };
        let found = bindings::list(&state.db, &key.0, filter, req).await?;
        Ok(Json(BindingPage {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    /// Approve a pending binding. Operators and admins of the community or above; audited.
    #[oai(path = "/bindings/:binding_id/approve", method = "post", operation_id = "approve_binding")]
    async fn approve_binding(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        binding_id: Path<i64>,
        body: Json<ApprovalNote>,
    ) -> Result<Json<BindingView>, ApiError> {
        let b = bindings::decide(
            &state.db,
            &state.payer,
            &key.0,
            binding_id.0,
            Decision::Approve,
            body.0.reason.as_deref(),
        )
        .await?;
        Ok(Json(b.into()))
    }

    /// Reject a pending binding with a reason the resident sees. Audited.
    #[oai(path = "/bindings/:binding_id/reject", method = "post", operation_id = "reject_binding")]
    async fn reject_binding(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        binding_id: Path<i64>,
        body: Json<DecisionReason>,
    ) -> Result<Json<BindingView>, ApiError> {
        let b = bindings::decide(&state.db, &state.payer, &key.0, binding_id.0, Decision::Reject, Some(&body.0.reason))
            .await?;
        Ok(Json(b.into()))
    }

    /// End a binding (or a pending request) with a reason the resident sees. Audited.
    #[oai(path = "/bindings/:binding_id/end", method = "post", operation_id = "end_binding")]
    async fn end_binding(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        binding_id: Path<i64>,
        body: Json<DecisionReason>,
    ) -> Result<Json<BindingView>, ApiError> {
        let b = bindings::decide(&state.db, &state.payer, &key.0, binding_id.0, Decision::End, Some(&body.0.reason))
            .await?;
        Ok(Json(b.into()))
    }
}
