//! `/merchant/v1/redemptions/{code}`: looking up and writing off the vouchers residents got for
//! their points.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::MerchantKey;
use crate::api::views::offers::Redemption;
use crate::api::ApiTags;
use crate::domain::offers::redemption;
use crate::error::ApiError;
use crate::state::AppState;

pub struct MerchantRedemptionsApi;

#[OpenApi(prefix_path = "/merchant/v1", tag = "ApiTags::MerchantRedemptions")]
impl MerchantRedemptionsApi {
    /// A voucher of one of my items, by its code: what it is for and whether it can be written off
    /// (`state` `redeemed`). Other merchants' vouchers answer 404.
    #[oai(path = "/redemptions/:code", method = "get", operation_id = "get_voucher")]
    async fn get_voucher(
        &self,
        state: Data<&AppState>,
        me: MerchantKey,
        #[oai(validator(min_length = 1, max_length = 32))] code: Path<String>,
    ) -> Result<Json<Redemption>, ApiError> {
        Ok(Json(redemption::voucher(&state.db, &me.0, &code.0).await?.into()))
    }

    /// Write a voucher off once the goods or service are handed over. Once only: a second time,
    /// or after the resident cancelled, answers 409 and changes nothing. Operator or admin keys.
    #[oai(path = "/redemptions/:code/fulfil", method = "post", operation_id = "fulfil_voucher")]
    async fn fulfil_voucher(
        &self,
        state: Data<&AppState>,
        me: MerchantKey,
        #[oai(validator(min_length = 1, max_length = 32))] code: Path<String>,
    ) -> Result<Json<Redemption>, ApiError> {
        Ok(Json(redemption::fulfil(&state.db, &me.0, &code.0).await?.into()))
    }
}
