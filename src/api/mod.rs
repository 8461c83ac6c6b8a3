//! The HTTP surface: poem-openapi groups (admin, mini-program, merchant), the
//! system routes (`/healthz`, `/readyz`, `/metrics`, `/docs`, `/openapi.json`) and the request
//! middleware every route goes through.

/// Maps an API enum and the stored enum it shows one to one, both ways, variant by variant, with
/// no catch-all: a variant added on either side fails to compile until it is mapped.
macro_rules! one_to_one {
    ($view:ident <=> $stored:ident { $($variant:ident),+ $(,)? }) => {
        impl From<$stored> for $view {
            fn from(s: $stored) -> Self {
                match s {
                    $($stored::$variant => $view::$variant,)+
                }
            }
        }

        impl From<$view> for $stored {
            fn from(v: $view) -> Self {
                match v {
                    $($view::$variant => $stored::$variant,)+
                }
            }
        }
    };
}

#[macro_use]
mod query;
pub mod admin;
mod allow;
mod auth;
pub(crate) mod common;
mod json_schema;
pub mod limits;
pub mod merchant;
mod middleware;
pub mod mp;
mod path_template;
mod payload;
mod request_bodies;
mod system;
pub mod views;
mod wechat_oa;
mod wechat_pay;

use poem::http::Method;
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::state::AppState;

/// The tags operations are grouped by in the docs and in generated SDKs.
#[derive(Tags)]
pub enum ApiTags {
    /// The calling operator: its key, org and role.
    Me,
    /// The org tree: platform, property companies, communities, merchants.
    Orgs,
    /// Rooms of a community: building, unit, number.
    Rooms,
    /// A community's resident roster, which bindings are verified against.
    Roster,
    /// Operator API keys.
    ApiKeys,
    /// Who changed what, when.
    Audit,
    /// A property company's points programme: earn rules, the ledger, residents' balances.
    Points,
    /// Residents' bindings to rooms: the review queue.
    Bindings,
    /// A property company's points catalogue (积分兑换) and the redemptions made of it.
    Catalogue,
    /// Mini-program: logging in and out.
    MpSession,
    /// Mini-program: my profile, points and check-in.
    MpMe,
    /// Mini-program: binding myself to my home.
    MpBindings,
    /// Coupon templates: issue, edit, end, figures.
    Coupons,
    /// Mini-program: claiming coupons and my coupons.
    MpCoupons,
    /// Merchants: orders, refunds and coupon write-offs.
    Merchant,
    /// Mini-program: spending my points on a company's catalogue, and my vouchers.
    MpRedemption,
    /// Merchant API: looking up and writing off residents' vouchers.
    MerchantRedemptions,
    /// Red-packet campaigns, payouts to WeChat Pay with their history, reconciliation.
    AdminRedPackets,
    /// Mini-program: grabbing red packets, my payouts, my balance and withdrawals.
    MpRedPackets,
    /// Invite-neighbours tasks: publish, assign, figures.
    AdminTasks,
    /// Mini-program: tasks, my progress, my invitations, accepting an invitation.
    MpTasks,
    /// The WeChat official accounts, mini-programs and Pay merchants each owner brings.
    Accounts,
}

/// The admin API, the mini-program API and the merchant API (nested: a tuple per audience).
type Operations = (
    (
        admin::MeApi,
        admin::OrgsApi,
        admin::RoomsApi,
        admin::RosterApi,
        admin::ApiKeysApi,
        admin::AuditApi,
        admin::PointsApi,
        admin::BindingsApi,
        admin::CouponsApi,
        admin::RedPacketsApi,
        admin::TasksApi,
        admin::CatalogueApi,
        admin::AccountsApi,
    ),
    (
        mp::MpSessionsApi,
        mp::MpMeApi,
        mp::MpBindingsApi,
        mp::MpCouponsApi,
        mp::MpRedemptionApi,
        mp::MpRedPacketsApi,
        mp::MpTasksApi,
    ),
    (merchant::MerchantOrdersApi, merchant::MerchantRedemptionsApi),
);

/// Every operation, with list queries documented parameter by parameter.
type Apis = query::Flattened<Operations>;

/// The OpenAPI service: the operations and the spec they generate.
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        query::Flattened((
            (
                admin::MeApi,
                admin::OrgsApi,
                admin::RoomsApi,
                admin::RosterApi,
                admin::ApiKeysApi,
                admin::AuditApi,
                admin::PointsApi,
                admin::BindingsApi,
                admin::CouponsApi,
                admin::RedPacketsApi,
                admin::TasksApi,
                admin::CatalogueApi,
                admin::AccountsApi,
            ),
            (
                mp::MpSessionsApi,
                mp::MpMeApi,
                mp::MpBindingsApi,
                mp::MpCouponsApi,
                mp::MpRedemptionApi,
                mp::MpRedPacketsApi,
                mp::MpTasksApi,
            ),
            (merchant::MerchantOrdersApi, merchant::MerchantRedemptionsApi),
        )),
        "linli",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "linli (邻里) runs the marketing and engagement side of a smart-community system on WeChat.\n\n\
         The admin API (`/admin/v1`) is for operators of property companies, communities and \
         merchants; authenticate with an API key in the `X-Api-Key` header. A key reaches its own \
         org and the orgs below it; anything else answers 404.\n\n\
         The mini-program API (`/mp/v1`) is for residents: log in with a `wx.login` code at \
         `POST /mp/v1/sessions` and send the session token as `Authorization: Bearer …`; every \
         operation acts as that resident only.\n\n\
         The merchant API (`/merchant/v1`) is for merchants' tills and shops: an API key made for a \
         merchant org, in the `X-Api-Key` header; it acts as that merchant only.\n\n\
         Every error answer has the body `{code, message, request_id}`.",
    )
}

/// The spec as YAML, exactly as committed in `openapi/openapi.yaml`.
pub fn openapi_yaml() -> String {
    openapi_service().spec_yaml()
}

/// Every route, wrapped in the request middleware, with the shared state attached.
pub fn routes(state: AppState) -> impl Endpoint {
    let service = openapi_service();
    let docs = service.swagger_ui();
    let spec = service.spec_endpoint();
    let spec_json = service.spec();
    // The routes below that are not API operations, with their methods, for the `Allow` header.
    let allowed = allow::AllowedMethods::from_spec(&spec_json)
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, "the generated spec is not JSON; 405 answers will lack Allow");
            allow::AllowedMethods::default()
        })
        .with("/openapi.json", &[Method::GET])
        .with("/healthz", &[Method::GET])
        .with("/readyz", &[Method::GET])
        .with("/metrics", &[Method::GET])
        .with("/sandbox", &[Method::GET])
        .with("/wechat/oa/callback", &[Method::GET, Method::POST])
        .with("/wechat/oa/{appid}/callback", &[Method::GET, Method::POST])
        .with("/wechat/pay/notify", &[Method::POST])
        .with("/wechat/pay/{mch_id}/notify", &[Method::POST]);
    let route = Route::new()
        .nest("/", service)
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .at("/healthz", poem::get(system::healthz))
        .at("/readyz", poem::get(system::readyz))
        .at("/metrics", poem::get(system::metrics))
        .at("/sandbox", poem::get(system::describe))
        .at("/wechat/oa/callback", poem::get(wechat_oa::verify_url).post(wechat_oa::receive_push))
        .at("/wechat/oa/:appid/callback", poem::get(wechat_oa::verify_app_url).post(wechat_oa::receive_app_push))
        .at("/wechat/pay/notify", poem::post(wechat_pay::notify))
        .at("/wechat/pay/:mch_id/notify", poem::post(wechat_pay::notify_merchant));
    // Every operation's JSON body, held to its schema before the operation parses it.
    let bodies = request_bodies::RequestBodies::from_spec(&spec_json).unwrap_or_else(|err| {
        tracing::error!(error = %err, "the generated spec is not JSON; request bodies go unchecked");
        request_bodies::RequestBodies::default()
    });
    let ctx = middleware::RequestContext::new(state.clone(), allowed, bodies);
    // A panic in a handler answers the JSON 500 like any other failure instead of dropping the
    // connection; it runs inside the middleware's scope, so the answer carries the request id.
    route.data(state).with(poem::middleware::CatchPanic::new().with_handler(panic_answer)).map_to_response().around(
        move |ep, req| {
            let ctx = ctx.clone();
            async move { ctx.handle(ep, req).await }
        },
    )
}

fn panic_answer(panic: Box<dyn std::any::Any + Send>) -> crate::error::ApiError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    crate::error::ApiError::Internal(anyhow::anyhow!("handler panicked: {what}"))
}
