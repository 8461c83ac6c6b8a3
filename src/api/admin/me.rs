//! `GET /admin/v1/me`: who the key belongs to.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::orgs::OrgView;
use crate::api::auth::OperatorKey;
use crate::api::ApiTags;
use crate::domain::community::orgs;
use crate::error::ApiError;
use crate::state::AppState;

pub struct MeApi;

/// The calling key and what it reaches.
#[derive(Debug, Clone, Object)]
pub struct Me {
    /// The key's id.
    #[oai(nullable)]
    pub key_id: Option<i64>,
    /// The key's role: `admin`, `operator` or `viewer`.
    pub role: String,
    /// The org the key belongs to; it reaches this org and every org below it.
    pub org: OrgView,
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::Me")]
impl MeApi {
    /// The calling key: its role and its org.
    #[oai(path = "/me", method = "get", operation_id = "get_me")]
    async fn get_me(&self, state: poem::web::Data<&AppState>, key: OperatorKey) -> Result<Json<Me>, ApiError> {
        let actor = key.0;
        let org = orgs::get(&state.db, &actor, actor.org_id).await?;
        Ok(Json(Me { key_id: actor.key_id, role: actor.role.as_str().to_owned(), org: org.into() }))
    }
}
