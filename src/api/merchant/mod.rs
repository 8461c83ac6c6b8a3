//! The merchant API (`/merchant/v1`): what merchants' tills and shops do, each acting as the
//! merchant its API key belongs to and only as it: orders, refunds, coupon write-offs, and
//! points-redemption vouchers.

mod orders;
mod redemptions;

pub use orders::MerchantOrdersApi;
pub use redemptions::MerchantRedemptionsApi;

use poem::Request;
use poem_openapi::auth::ApiKey;
use poem_openapi::SecurityScheme;

use crate::domain::retail::merchants::{self, Intent, MerchantActor};
use crate::error::{current_request_id, ApiError};
use crate::state::AppState;

/// A merchant's API key (`lk_…`) in the `X-Api-Key` header: an ordinary API key made for an org
/// of kind `merchant` (`POST /admin/v1/api-keys`). Keys of other orgs answer 401 here. Viewer keys
/// read; every operation that changes something needs an operator or admin key (403 otherwise).
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "X-Api-Key", key_in = "header", checker = "merchant_from_key")]
pub struct MerchantKey(pub MerchantActor);

async fn merchant_from_key(req: &Request, key: ApiKey) -> poem::Result<MerchantActor> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing from the request")))?;
    // Whether the request writes is told by its method, so a new operation is covered by being
    // what it is: anything but GET/HEAD/OPTIONS needs a key that may write.
    let intent = if req.method().is_safe() { Intent::Read } else { Intent::Write };
    match merchants::authenticate(&state.db, key.key.trim(), Some(current_request_id()), intent).await {
        Ok(Some(merchant)) => Ok(merchant),
        Ok(None) => Err(ApiError::Unauthenticated("a valid API key of a merchant is required".into()).into()),
        Err(err) => Err(ApiError::from(err).into()),
    }
}
