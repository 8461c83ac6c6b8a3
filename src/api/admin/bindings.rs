//! `/admin/v1/bindings`: the review queue of residents' bindings to rooms.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::PageInfo;
use crate::api::auth::OperatorKey;
use crate::api::query::QueryParams;
use crate::api::views::community::{BindingStateView, BindingView};
use crate::api::ApiTags;
use crate::db::community::bindings::BindingFilter;
use crate::domain::community::bindings::{self, Decision};
use crate::error::ApiError;
use crate::state::AppState;

pub struct BindingsApi;

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
