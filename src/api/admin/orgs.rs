//! `/admin/v1/orgs`: the org tree.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use time::OffsetDateTime;

use super::{patch, ts, PageInfo};
use crate::api::auth::OperatorKey;
use crate::api::query::QueryParams;
use crate::api::ApiTags;
use crate::db::community::orgs::{OrgFilter, OrgRow};
use crate::domain::community::orgs::{self, NewOrg, OrgKind, OrgPatch};
use crate::error::ApiError;
use crate::state::AppState;

pub struct OrgsApi;

/// What an org is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "OrgKind", rename_all = "lowercase")]
pub enum OrgKindView {
    /// The root; there is one.
    Platform,
    /// A property company (物业公司), under the platform.
    Company,
    /// A residential community (小区), under a company.
    Community,
    /// A merchant, under a community or a company.
    Merchant,
}

one_to_one!(OrgKindView <=> OrgKind { Platform, Company, Community, Merchant });

/// An org of the tree.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Org")]
pub struct OrgView {
    pub id: i64,
    /// The org above; absent for the platform.
    #[oai(nullable)]
    pub parent_id: Option<i64>,
    pub kind: OrgKindView,
    pub name: String,
    #[oai(nullable)]
    pub address: Option<String>,
    #[oai(nullable)]
    pub contact_name: Option<String>,
    #[oai(nullable)]
    pub contact_phone: Option<String>,
    /// When it was archived; archived orgs take no changes and their keys stop working.
    #[oai(nullable)]
    pub archived_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<OrgRow> for OrgView {
    fn from(o: OrgRow) -> Self {
        Self {
            id: o.id,
            parent_id: o.parent_id,
            kind: o.kind.into(),
            name: o.name,
            address: o.address,
            contact_name: o.contact_name,
            contact_phone: o.contact_phone,
            archived_at: o.archived_at.map(ts),
            created_at: ts(o.created_at),
            updated_at: ts(o.updated_at),
        }
    }
}

/// A new org. Companies go under the platform, communities under a company, merchants under a
/// community or a company.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateOrg {
    pub parent_id: i64,
    pub kind: OrgKindView,
    /// Unique among the parent's active orgs.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub name: String,
    #[oai(validator(max_length = 200))]
    pub address: Option<String>,
    #[oai(validator(max_length = 32))]
    pub contact_name: Option<String>,
    #[oai(validator(max_length = 20))]
    pub contact_phone: Option<String>,
}

/// Changes to an org: absent fields keep their value, `null` clears an optional one.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateOrg {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub name: Option<String>,
    #[oai(nullable, validator(max_length = 200))]
    pub address: MaybeUndefined<String>,
    #[oai(nullable, validator(max_length = 32))]
    pub contact_name: MaybeUndefined<String>,
    #[oai(nullable, validator(max_length = 20))]
    pub contact_phone: MaybeUndefined<String>,
}

/// A page of orgs.
#[derive(Debug, Clone, Object)]
pub struct OrgPage {
    pub items: Vec<OrgView>,
    pub page: PageInfo,
}

#[derive(ApiResponse)]
pub enum OrgCreated {
    /// The org was created.
    #[oai(status = 201)]
    Created(Json<OrgView>),
}

list_query! {
    /// What `list_orgs` is narrowed by.
    pub struct ListOrgs {
        /// Only orgs of this kind.
        pub kind: Option<OrgKindView>,
        /// Only the direct children of this org.
        pub parent_id: Option<i64>,
        /// Only orgs whose name contains this text.
        #[oai(validator(max_length = 64))]
        pub q: Option<String>,
        /// Include archived orgs.
        #[oai(default)]
        pub include_archived: bool,
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::Orgs")]
impl OrgsApi {
    /// Create an org under one the key reaches. Admins only.
    #[oai(path = "/orgs", method = "post", operation_id = "create_org")]
    async fn create_org(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        body: Json<CreateOrg>,
    ) -> Result<OrgCreated, ApiError> {
        let b = body.0;
        let new = NewOrg {
            parent_id: b.parent_id,
            kind: b.kind.into(),
            name: b.name,
            address: b.address,
            contact_name: b.contact_name,
            contact_phone: b.contact_phone,
        };
        let org = orgs::create(&state.db, &key.0, new).await?;
        Ok(OrgCreated::Created(Json(org.into())))
    }

    /// List the orgs the key reaches (its own and those below), filtered and paginated.
    #[oai(path = "/orgs", method = "get", operation_id = "list_orgs")]
    async fn list_orgs(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        QueryParams(query): QueryParams<ListOrgs>,
    ) -> Result<Json<OrgPage>, ApiError> {
        let req = query.page_request();
        let filter = OrgFilter {
            scope_path: String::new(),
            kind: query.kind.map(Into::into),
            parent_id: query.parent_id,
            name_contains: query.q.filter(|s| !s.is_empty()),
            include_archived: query.include_archived,
        };
        let found = orgs::list(&state.db, &key.0, filter, req).await?;
        Ok(Json(OrgPage {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    /// One org.
    #[oai(path = "/orgs/:org_id", method = "get", operation_id = "get_org")]
    async fn get_org(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        org_id: Path<i64>,
    ) -> Result<Json<OrgView>, ApiError> {
        Ok(Json(orgs::get(&state.db, &key.0, org_id.0).await?.into()))
    }

    /// Edit an org's name and contact details. Admins only.
    #[oai(path = "/orgs/:org_id", method = "patch", operation_id = "update_org")]
    async fn update_org(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        org_id: Path<i64>,
        body: Json<UpdateOrg>,
    ) -> Result<Json<OrgView>, ApiError> {
        let b = body.0;
        let p = OrgPatch {
            name: b.name,
            address: patch(b.address),
            contact_name: patch(b.contact_name),
            contact_phone: patch(b.contact_phone),
        };
        Ok(Json(orgs::update(&state.db, &key.0, org_id.0, p).await?.into()))
    }

    /// Archive an org (orgs are never deleted: their history stays). Refused while active orgs
    /// remain below it. Admins only.
    #[oai(path = "/orgs/:org_id", method = "delete", operation_id = "archive_org")]
    async fn archive_org(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        org_id: Path<i64>,
    ) -> Result<Json<OrgView>, ApiError> {
        Ok(Json(orgs::archive(&state.db, &key.0, org_id.0).await?.into()))
    }
}
