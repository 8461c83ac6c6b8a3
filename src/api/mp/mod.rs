//! The mini-program API (`/mp/v1`): what residents do, through an SDK generated from the spec.
//! Every operation but login acts as the resident of the bearer session, and only as them: no
//! resident id or openid for "me" is ever read from a request.

mod bindings;
mod coupons;
mod me;
mod redemption;
mod redpackets;
mod sessions;
mod tasks;

pub use bindings::MpBindingsApi;
pub use coupons::MpCouponsApi;
pub use me::MpMeApi;
pub use redemption::MpRedemptionApi;
pub use redpackets::MpRedPacketsApi;
pub use sessions::MpSessionsApi;
pub use tasks::MpTasksApi;

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

use crate::domain::community::sessions::{authenticate, ResidentActor};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wechat::api::AppCredentials;

/// A resident's session token (`ms_…`), from `POST /mp/v1/sessions`, as `Authorization: Bearer …`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "resident_from_token")]
pub struct ResidentSession(pub ResidentActor);

async fn resident_from_token(req: &Request, bearer: Bearer) -> poem::Result<ResidentActor> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing from the request")))?;
    match authenticate(&state.db, &state.sessions, bearer.token.trim()).await {
        Ok(Some(actor)) => Ok(actor),
        Ok(None) => Err(ApiError::Unauthenticated("the session is invalid or has expired; log in again".into()).into()),
        Err(err) => Err(ApiError::from(err).into()),
    }
}

/// A mini-program's credentials: the one with `appid` (a record, or the environment's), or the
/// environment's when none is named. 503 when the environment has none; 404 for an appid that is
/// no mini-program here.
pub(crate) async fn mini_program(state: &AppState, appid: Option<&str>) -> Result<AppCredentials, ApiError> {
    match (state.accounts.login_mini_program(appid).await, appid) {
        (Some(mp), _) => Ok(mp.credentials()),
        (None, Some(_)) => Err(ApiError::NotFound("mini-program")),
        (None, None) => Err(ApiError::NotConfigured("the mini-program (WECHAT_MP_APPID, WECHAT_MP_SECRET)")),
    }
}

/// The mini-program a resident's session was opened through.
pub(crate) async fn session_mini_program(state: &AppState, me: &ResidentActor) -> Result<AppCredentials, ApiError> {
    let identities = crate::db::community::residents::identities_of(state.db.reader(), me.resident_id)
        .await
        .map_err(crate::domain::DomainError::from)?;
    let appid = identities.iter().find(|i| i.id == me.identity_id).map(|i| i.appid.clone());
    mini_program(state, appid.as_deref()).await
}
