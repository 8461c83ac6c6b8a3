//! `/admin/v1/api-keys`: operator keys. The secret is shown once, at creation.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use time::OffsetDateTime;

use super::{page_request, ts, PageInfo};
use crate::api::auth::OperatorKey;
use crate::api::ApiTags;
use crate::db::operators::api_keys::ApiKeyRow;
use crate::domain::operators::access::Role;
use crate::domain::operators::keys;
use crate::error::ApiError;
use crate::state::AppState;

pub struct ApiKeysApi;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "KeyRole", rename_all = "lowercase")]
pub enum KeyRoleView {
    /// Everything in its subtree, including orgs, keys and the audit log.
    Admin,
    /// Reads and day-to-day changes (rooms, rosters).
    Operator,
    /// Reads only.
    Viewer,
}

one_to_one!(KeyRoleView <=> Role { Admin, Operator, Viewer });

/// An API key, without its secret.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ApiKey")]
pub struct ApiKeyView {
    pub id: i64,
    pub org_id: i64,
    pub role: KeyRoleView,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    /// The key that created this one; absent for keys made on the command line.
    #[oai(nullable)]
    pub created_by: Option<i64>,
    pub created_at: OffsetDateTime,
    #[oai(nullable)]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<ApiKeyRow> for ApiKeyView {
    fn from(k: ApiKeyRow) -> Self {
        Self {
            id: k.id,
            org_id: k.org_id,
            role: k.role.into(),
            name: k.name,
            prefix: k.prefix,
            created_by: k.created_by,
            created_at: ts(k.created_at),
            revoked_at: k.revoked_at.map(ts),
        }
    }
}

/// A new key for an org the caller reaches.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateApiKey {
    pub org_id: i64,
    pub role: KeyRoleView,
    /// What the key is for, e.g. "front desk tablet".
    #[oai(validator(min_length = 1, max_length = 64))]
    pub name: String,
}

/// A new key and its secret. The secret is not stored and cannot be shown again.
#[derive(Debug, Clone, Object)]
pub struct CreatedApiKey {
    pub key: ApiKeyView,
    /// Send it in the `X-Api-Key` header.
    pub secret: String,
}

/// A page of keys.
#[derive(Debug, Clone, Object)]
pub struct ApiKeyPage {
    pub items: Vec<ApiKeyView>,
    pub page: PageInfo,
}

#[derive(ApiResponse)]
pub enum ApiKeyCreated {
    /// The key was created; its secret is in this answer only.
    #[oai(status = 201)]
    Created(Json<CreatedApiKey>),
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// Create an API key for an org the caller reaches. Admins only.
    #[oai(path = "/api-keys", method = "post", operation_id = "create_api_key")]
    async fn create_api_key(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        body: Json<CreateApiKey>,
    ) -> Result<ApiKeyCreated, ApiError> {
        let b = body.0;
        let (row, secret) = keys::create_key(&state.db, &key.0, b.org_id, b.role.into(), &b.name).await?;
        Ok(ApiKeyCreated::Created(Json(CreatedApiKey { key: row.into(), secret })))
    }

    /// List the keys of the orgs the caller reaches. Admins only.
    #[oai(path = "/api-keys", method = "get", operation_id = "list_api_keys")]
    async fn list_api_keys(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        /// Only keys of this org.
        org_id: Query<Option<i64>>,
        /// Include revoked keys.
        #[oai(default)]
        include_revoked: Query<bool>,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<ApiKeyPage>, ApiError> {
        let req = page_request(page.0, page_size.0);
        let found = keys::list_keys(&state.db, &key.0, org_id.0, include_revoked.0, req).await?;
        Ok(Json(ApiKeyPage {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    /// Revoke a key; it stops working at once. Admins only.
    #[oai(path = "/api-keys/:key_id", method = "delete", operation_id = "revoke_api_key")]
    async fn revoke_api_key(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        key_id: Path<i64>,
    ) -> Result<Json<ApiKeyView>, ApiError> {
        Ok(Json(keys::revoke_key(&state.db, &key.0, key_id.0).await?.into()))
    }
}
