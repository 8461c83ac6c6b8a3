//! Authentication of operators: the `X-Api-Key` header, checked against the stored hashes.

use poem::Request;
use poem_openapi::auth::ApiKey;
use poem_openapi::SecurityScheme;

use crate::domain::operators::access::Actor;
use crate::domain::operators::keys;
use crate::error::{current_request_id, ApiError};
use crate::state::AppState;

/// An operator's API key (`lk_…`), sent in the `X-Api-Key` header. Create the first one with
/// `linli keys create --org 1 --role admin`.
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "X-Api-Key", key_in = "header", checker = "operator_from_key")]
pub struct OperatorKey(pub Actor);

async fn operator_from_key(req: &Request, key: ApiKey) -> poem::Result<Actor> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing from the request")))?;
    match keys::authenticate(&state.db, key.key.trim(), Some(current_request_id())).await {
        Ok(Some(actor)) => Ok(actor),
        Ok(None) => Err(ApiError::Unauthorized.into()),
        Err(err) => Err(ApiError::from(err).into()),
    }
}
