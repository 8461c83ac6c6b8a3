//! `/mp/v1/communities` and `/mp/v1/me/bindings`: binding myself to my home.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;

use super::ResidentSession;
use crate::api::common::{page_request, ts, PageInfo};
use crate::api::views::community::{BindingView, ResidentRoleView};
use crate::api::ApiTags;
use crate::db::community::bindings::InvitationRow;
use crate::db::community::orgs::OrgFilter;
use crate::domain::community::bindings::{self, BindingRequest};
use crate::error::ApiError;
use crate::state::AppState;

pub struct MpBindingsApi;

/// A community residents can bind to.
#[derive(Debug, Clone, Object)]
pub struct Community {
    pub id: i64,
    pub name: String,
    #[oai(nullable)]
    pub address: Option<String>,
}

/// A page of communities.
#[derive(Debug, Clone, Object)]
pub struct CommunityPage {
    pub items: Vec<Community>,
    pub page: PageInfo,
}

/// My request to bind to a room.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RequestBinding {
    pub community_id: i64,
    #[oai(validator(min_length = 1, max_length = 32))]
    pub building: String,
    /// Omit or leave empty when the building has no units.
    #[oai(default, validator(max_length = 32))]
    pub unit: String,
    #[oai(validator(min_length = 1, max_length = 32))]
    pub number: String,
    pub role: ResidentRoleView,
    /// My name, as the property company knows it.
    #[oai(validator(min_length = 1, max_length = 32))]
    pub name: String,
    /// My mobile number; absent: the one I confirmed through WeChat (`POST /mp/v1/me/phone`).
    #[oai(validator(min_length = 11, max_length = 20))]
    pub phone: Option<String>,
}

/// An invitation for family or a tenant: `role` is `family` or `tenant`.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct InviteToRoom {
    // Deliberately no doc comment: poem-openapi would emit a described enum `$ref` as
    // `allOf: [$ref, {description}]`, which SDK generators reject (openapi-python-client drops
    // the whole operation). The struct's doc says what `role` may be.
    pub role: ResidentRoleView,
}

/// An owner's invitation to their room: share the code with the invitee.
#[derive(Debug, Clone, Object)]
pub struct Invitation {
    pub code: String,
    pub role: ResidentRoleView,
    pub expires_at: OffsetDateTime,
}

impl From<InvitationRow> for Invitation {
    fn from(i: InvitationRow) -> Self {
        Self { code: i.code, role: i.role.into(), expires_at: ts(i.expires_at) }
    }
}

/// Redeeming an owner's invitation.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RedeemInvitation {
    #[oai(validator(min_length = 1, max_length = 32))]
    pub code: String,
    #[oai(validator(min_length = 1, max_length = 32))]
    pub name: String,
    /// My mobile number; absent: the one I confirmed through WeChat.
    #[oai(validator(min_length = 11, max_length = 20))]
    pub phone: Option<String>,
}

/// My bindings.
#[derive(Debug, Clone, Object)]
pub struct BindingList {
    pub items: Vec<BindingView>,
}

#[derive(ApiResponse)]
pub enum BindingCreated {
    /// Created: `state` says whether it is verified (a roster match, an invitation) or pending
    /// review.
    #[oai(status = 201)]
    Created(Json<BindingView>),
}

#[derive(ApiResponse)]
pub enum InvitationCreated {
    /// The invitation; it works once, for seven days.
    #[oai(status = 201)]
    Created(Json<Invitation>),
}

fn cap(state: &AppState) -> i64 {
    state.settings.room_binding_cap
}

#[OpenApi(prefix_path = "/mp/v1", tag = "ApiTags::MpBindings")]
impl MpBindingsApi {
    /// Communities I can bind to, by name.
    #[oai(path = "/communities", method = "get", operation_id = "list_communities")]
    async fn list_communities(
        &self,
        state: Data<&AppState>,
        _me: ResidentSession,
        /// Only communities whose name contains this text.
        #[oai(validator(max_length = 64))]
        q: Query<Option<String>>,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<CommunityPage>, ApiError> {
        let req = page_request(page.0, page_size.0);
        let filter = OrgFilter {
            scope_path: "/".into(),
            kind: Some(crate::db::community::orgs::OrgKind::Community),
            name_contains: q.0.filter(|s| !s.is_empty()),
            ..Default::default()
        };
        let found = crate::db::community::orgs::list(state.db.reader(), &filter, req).await?;
        let items = found.items.into_iter().map(|o| Community { id: o.id, name: o.name, address: o.address }).collect();
        Ok(Json(CommunityPage { items, page: PageInfo::new(req, found.total) }))
    }

    /// Ask to bind to my room. Verified at once when the community's roster lists my name and
    /// phone for it in that role; otherwise pending until an operator reviews it.
    #[oai(path = "/me/bindings", method = "post", operation_id = "request_binding")]
    async fn request_binding(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        body: Json<RequestBinding>,
    ) -> Result<BindingCreated, ApiError> {
        let b = body.0;
        let req = BindingRequest {
            community_id: b.community_id,
            building: b.building,
            unit: b.unit,
            number: b.number,
            role: b.role.into(),
            name: b.name,
            phone: b.phone,
        };
        let binding = bindings::request(&state.db, &state.payer, &me.0, req, cap(&state)).await?;
        Ok(BindingCreated::Created(Json(binding.into())))
    }

    /// My bindings and requests, newest first, with their state and any reason given.
    #[oai(path = "/me/bindings", method = "get", operation_id = "list_my_bindings")]
    async fn list_my_bindings(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<BindingList>, ApiError> {
        let mine = bindings::mine(&state.db, &me.0).await?;
        let items = page_request(page.0, page_size.0).slice(mine).into_iter().map(Into::into).collect();
        Ok(Json(BindingList { items }))
    }

    /// End my binding, or withdraw my pending request.
    #[oai(path = "/me/bindings/:binding_id", method = "delete", operation_id = "end_my_binding")]
    async fn end_my_binding(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        binding_id: Path<i64>,
    ) -> Result<Json<BindingView>, ApiError> {
        Ok(Json(bindings::end_mine(&state.db, &me.0, binding_id.0).await?.into()))
    }

    /// Invite family or a tenant to the room of my verified owner binding.
    #[oai(path = "/me/bindings/:binding_id/invitations", method = "post", operation_id = "invite_to_room")]
    async fn invite_to_room(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        binding_id: Path<i64>,
        body: Json<InviteToRoom>,
    ) -> Result<InvitationCreated, ApiError> {
        let inv = bindings::invite(&state.db, &me.0, binding_id.0, body.0.role.into()).await?;
        Ok(InvitationCreated::Created(Json(inv.into())))
    }

    /// Everyone bound (or asking to be) to the room of my verified owner binding.
    #[oai(path = "/me/bindings/:binding_id/members", method = "get", operation_id = "list_room_members")]
    async fn list_room_members(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        binding_id: Path<i64>,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<BindingList>, ApiError> {
        let members = bindings::room_members(&state.db, &me.0, binding_id.0).await?;
        let items = page_request(page.0, page_size.0).slice(members).into_iter().map(Into::into).collect();
        Ok(Json(BindingList { items }))
    }

    /// As the room's verified owner, end a family member's or tenant's binding.
    #[oai(
        path = "/me/bindings/:binding_id/members/:member_binding_id",
        method = "delete",
        operation_id = "end_room_member"
    )]
    async fn end_room_member(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        binding_id: Path<i64>,
        member_binding_id: Path<i64>,
    ) -> Result<Json<BindingView>, ApiError> {
        Ok(Json(bindings::end_member(&state.db, &me.0, binding_id.0, member_binding_id.0).await?.into()))
    }

    /// Redeem an owner's invitation: a verified binding to their room.
    #[oai(path = "/me/binding-invitations/redeem", method = "post", operation_id = "redeem_binding_invitation")]
    async fn redeem_binding_invitation(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        body: Json<RedeemInvitation>,
    ) -> Result<BindingCreated, ApiError> {
        let b = body.0;
        let binding =
            bindings::redeem(&state.db, &state.payer, &me.0, &b.code, &b.name, b.phone.as_deref(), cap(&state)).await?;
        Ok(BindingCreated::Created(Json(binding.into())))
    }
}
