//! The merchant API (`/merchant/v1`): merchants' tills and shops report orders and refunds and
//! write coupons off. A merchant authenticates with an API key of its own org (kind `merchant`).

mod orders;

pub use orders::MerchantOrdersApi;

use poem::Request;
use poem_openapi::auth::ApiKey;
use poem_openapi::SecurityScheme;

use crate::app::AppState;
use crate::domain::access;
use crate::domain::orders::MerchantActor;
use crate::error::{current_request_id, ApiError};

/// A merchant's API key (`lk_…` of a key whose org is a merchant), in the `X-Api-Key` header.
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "X-Api-Key", key_in = "header", checker = "merchant_from_key")]
pub struct MerchantKey(pub MerchantActor);

async fn merchant_from_key(req: &Request, key: ApiKey) -> poem::Result<MerchantActor> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing from the request")))?;
    let refuse = || ApiError::Unauthenticated("a merchant's API key is required".into());
    let actor = match access::authenticate(&state.db, key.key.trim(), Some(current_request_id())).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err(refuse().into()),
        Err(e) => return Err(ApiError::from(e).into()),
    };
    let org = crate::db::orgs::get(state.db.reader(), actor.org_id).await.map_err(ApiError::from)?;
    let company_id = actor.org_path.split('/').filter(|s| !s.is_empty()).nth(1).and_then(|s| s.parse().ok());
    match (org, company_id, actor.key_id) {
        (Some(org), Some(company_id), Some(key_id)) if org.kind == "merchant" => {
            Ok(MerchantActor { key_id, merchant_id: org.id, company_id, label: org.name })
        }
        _ => Err(refuse().into()),
    }
}
