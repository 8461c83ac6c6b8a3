//! `/admin/v1/wechat-apps` and `/admin/v1/pay-merchants`: the official accounts, mini-programs
//! and WeChat Pay merchants an owner brings. Secrets go in and never come out: answers say only
//! whether each is set, with a fingerprint to tell values apart.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use time::OffsetDateTime;

use super::{ts, PageInfo};
use crate::api::auth::OperatorKey;
use crate::api::query::QueryParams;
use crate::api::ApiTags;
use crate::db::accounts::apps::{AppKind, MessageMode};
use crate::db::accounts::merchants::{TransferApi, VerifyKeys};
use crate::domain::accounts::apps::{self, AppInput, AppShown, SecretShown};
use crate::domain::accounts::merchants::{self, MerchantInput, MerchantShown};
use crate::error::ApiError;
use crate::state::AppState;

pub struct AccountsApi;

/// Which kind of WeChat app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "WechatAppKind", rename_all = "lowercase")]
pub enum AppKindView {
    /// An official account (公众号).
    Oa,
    /// A mini-program (小程序).
    Mp,
}

one_to_one!(AppKindView <=> AppKind { Oa, Mp });

/// How an official account's pushes are protected (消息加解密方式, as chosen in WeChat's console).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "MessageMode", rename_all = "lowercase")]
pub enum MessageModeView {
    /// 明文模式: plaintext pushes, taken on the URL signature alone.
    Plain,
    /// 兼容模式: encrypted and plaintext pushes, for the switch between the two.
    Compat,
    /// 安全模式: encrypted pushes only (the default, and the one to use).
    Safe,
}

one_to_one!(MessageModeView <=> MessageMode { Plain, Compat, Safe });

/// Which API pays transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "TransferApi", rename_all = "lowercase")]
pub enum TransferApiView {
    /// v3 transfer-bills (商家转账): the resident confirms in the mini-program.
    V3,
    /// The legacy v2 enterprise payment (企业付款到零钱), for merchants that still have it.
    V2,
}

one_to_one!(TransferApiView <=> TransferApi { V3, V2 });

/// Which keys WeChat Pay's answers and notifications are verified with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "VerifyWith", rename_all = "snake_case")]
pub enum VerifyWithView {
    /// The WeChat Pay public key (微信支付公钥) only.
    PublicKey,
    /// Platform certificates (平台证书), fetched from WeChat Pay.
    PlatformCertificates,
    /// Both, while a merchant moves from certificates to the public key.
    Both,
}

one_to_one!(VerifyWithView <=> VerifyKeys { PublicKey, PlatformCertificates, Both });

/// A secret as shown: never its value.
#[derive(Debug, Clone, Object)]
#[oai(rename = "SecretState")]
pub struct SecretStateView {
    /// Whether a value is stored.
    pub set: bool,
    /// 16 hex digits that differ between values and reveal nothing of one (an HMAC under the
    /// deployment's master key: it changes when the key is rotated).
    #[oai(nullable)]
    pub fingerprint: Option<String>,
}

impl From<SecretShown> for SecretStateView {
    fn from(s: SecretShown) -> Self {
        Self { set: s.set, fingerprint: s.fingerprint }
    }
}

/// An official account or mini-program.
#[derive(Debug, Clone, Object)]
#[oai(rename = "WechatApp")]
pub struct WechatAppView {
    pub id: i64,
    /// The owner: a property company, or the platform for shared use.
    pub org_id: i64,
    pub kind: AppKindView,
    pub appid: String,
    pub name: String,
    /// The AppSecret.
    pub secret: SecretStateView,
    /// Official accounts: the callback Token.
    pub token: SecretStateView,
    /// Official accounts: the EncodingAESKey.
    pub aes_key: SecretStateView,
    /// Official accounts: `plain`, `compat` or `safe` (as `MessageMode`); null for mini-programs.
    /// A string, not the enum, because a nullable enum reaches SDK generators as `allOf`.
    #[oai(nullable)]
    pub message_mode: Option<String>,
    /// Mini-programs: the subscribe-message template residents are told of task rewards with.
    #[oai(nullable)]
    pub task_template_id: Option<String>,
    /// Official accounts: the path to enter as the server URL (服务器地址) in WeChat's console,
    /// after this deployment's public origin.
    #[oai(nullable)]
    pub callback_path: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<AppShown> for WechatAppView {
    fn from(a: AppShown) -> Self {
        let r = a.row;
        Self {
            callback_path: (r.kind == AppKind::Oa).then(|| format!("/wechat/oa/{}/callback", r.appid)),
            id: r.id,
            org_id: r.org_id,
            kind: r.kind.into(),
            appid: r.appid,
            name: r.name,
            secret: a.secret.into(),
            token: a.token.into(),
            aes_key: a.aes_key.into(),
            message_mode: r.message_mode.map(|m| m.as_str().to_owned()),
            task_template_id: r.task_template_id,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

/// A new app. Its AppSecret is checked with WeChat (a token is fetched) before it is stored.
/// `message_mode` (official accounts) is the mode chosen in WeChat's console; default safe.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateWechatApp {
    pub org_id: i64,
    pub kind: AppKindView,
    #[oai(validator(min_length = 1, max_length = 32))]
    pub appid: String,
    #[oai(validator(min_length = 1, max_length = 64))]
    pub name: String,
    /// The AppSecret.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub secret: String,
    /// Official accounts: the callback Token (3–32 letters and digits).
    #[oai(validator(max_length = 32))]
    pub token: Option<String>,
    /// Official accounts: the 43-character EncodingAESKey (needed in safe and compatible mode).
    #[oai(validator(max_length = 43))]
    pub aes_key: Option<String>,
    pub message_mode: Option<MessageModeView>,
    /// Mini-programs: the task-reward subscribe-message template.
    #[oai(validator(max_length = 64))]
    pub task_template_id: Option<String>,
}

/// An app's new settings. A secret left out keeps the stored one; the others are replaced.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateWechatApp {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub name: String,
    #[oai(validator(min_length = 1, max_length = 128))]
    pub secret: Option<String>,
    #[oai(validator(max_length = 32))]
    pub token: Option<String>,
    #[oai(validator(max_length = 43))]
    pub aes_key: Option<String>,
    pub message_mode: Option<MessageModeView>,
    #[oai(validator(max_length = 64))]
    pub task_template_id: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct WechatAppPage {
    pub items: Vec<WechatAppView>,
    pub page: PageInfo,
}

#[derive(ApiResponse)]
pub enum WechatAppCreated {
    /// Registered: pushes to its callback path and logins through it are taken from now on.
    #[oai(status = 201)]
    Created(Json<WechatAppView>),
}

list_query! {
    /// What `list_wechat_apps` is narrowed by.
    pub struct ListWechatApps {
        /// Only apps of this org (in the caller's reach).
        pub org_id: Option<i64>,
        /// Only apps of this kind.
        pub kind: Option<AppKindView>,
    }
}

list_query! {
    /// What `list_pay_merchants` is narrowed by.
    pub struct ListPayMerchants {
        /// Only merchants of this org (in the caller's reach).
        pub org_id: Option<i64>,
    }
}

/// A WeChat Pay merchant. `verify_with` is the keys in use: the one set, or the default (`both`
/// with a public key, `platform_certificates` without).
#[derive(Debug, Clone, Object)]
#[oai(rename = "PayMerchant")]
pub struct PayMerchantView {
    pub id: i64,
    /// The owner: a property company, or the platform.
    pub org_id: i64,
    pub mch_id: String,
    pub name: String,
    pub api_key_v2: SecretStateView,
    pub api_v3_key: SecretStateView,
    /// The merchant API certificate's private key.
    pub private_key: SecretStateView,
    /// The client certificate (and its key) of v2 payout calls.
    pub client_cert: SecretStateView,
    #[oai(nullable)]
    pub cert_serial: Option<String>,
    #[oai(nullable)]
    pub public_key_id: Option<String>,
    pub verify_with: VerifyWithView,
    /// Where WeChat Pay sends this merchant's notifications; when unset, payouts are queried.
    #[oai(nullable)]
    pub notify_url: Option<String>,
    /// The path `notify_url` should end with: `/wechat/pay/{mch_id}/notify`.
    pub notify_path: String,
    pub transfer_scene_id: String,
    pub transfer_api: TransferApiView,
    /// The most calls a second this deployment makes to WeChat Pay for this merchant.
    pub rate_per_sec: i64,
    /// The platform's merchant that pays for owners without one of their own.
    pub platform_fallback: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<MerchantShown> for PayMerchantView {
    fn from(m: MerchantShown) -> Self {
        let r = m.row;
        let default = if r.public_key_id.is_some() { VerifyKeys::Both } else { VerifyKeys::PlatformCertificates };
        let verify_with = r.verify_with.unwrap_or(default);
        Self {
            notify_path: format!("/wechat/pay/{}/notify", r.mch_id),
            id: r.id,
            org_id: r.org_id,
            mch_id: r.mch_id,
            name: r.name,
            api_key_v2: m.api_key_v2.into(),
            api_v3_key: m.api_v3_key.into(),
            private_key: m.private_key.into(),
            client_cert: m.client_cert.into(),
            cert_serial: r.cert_serial,
            public_key_id: r.public_key_id,
            verify_with: verify_with.into(),
            notify_url: r.notify_url,
            transfer_scene_id: r.transfer_scene_id,
            transfer_api: r.transfer_api.into(),
            rate_per_sec: r.rate_per_sec,
            platform_fallback: r.platform_fallback,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

/// A merchant's settings. On create every key given is checked with WeChat Pay (a v3 query
/// signed with the merchant key, its signed answer verified; a v2 query under the APIv2 key)
/// before anything is stored. On update a secret left out keeps the stored one. `verify_with`
/// defaults to `both` with a public key and `platform_certificates` without; `transfer_api` to
/// `v3`.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct PayMerchantInput {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub name: String,
    /// The APIv2 key (32 characters): cash red packets and legacy transfers.
    #[oai(validator(max_length = 32))]
    pub api_key_v2: Option<String>,
    /// The APIv3 key (32 characters): notifications and platform certificates.
    #[oai(validator(max_length = 32))]
    pub api_v3_key: Option<String>,
    /// The merchant API certificate's private key (PKCS#8 PEM, apiclient_key.pem).
    #[oai(validator(max_length = 8192))]
    pub private_key_pem: Option<String>,
    /// The merchant API certificate's serial number.
    #[oai(validator(max_length = 64))]
    pub cert_serial: Option<String>,
    /// The WeChat Pay public key id (PUB_KEY_ID_…).
    #[oai(validator(max_length = 64))]
    pub public_key_id: Option<String>,
    /// The WeChat Pay public key (PEM).
    #[oai(validator(max_length = 4096))]
    pub public_key_pem: Option<String>,
    pub verify_with: Option<VerifyWithView>,
    /// The client certificate and its key (PEM) the v2 payout calls present.
    #[oai(validator(max_length = 16384))]
    pub client_cert_pem: Option<String>,
    #[oai(validator(max_length = 256))]
    pub notify_url: Option<String>,
    /// The transfer scene registered with WeChat Pay (default 1000, 现金营销).
    #[oai(validator(max_length = 8))]
    pub transfer_scene_id: Option<String>,
    pub transfer_api: Option<TransferApiView>,
    /// Default 25.
    pub rate_per_sec: Option<i64>,
    /// Only for a merchant of the platform: pay for owners without one of their own.
    #[oai(default)]
    pub platform_fallback: bool,
}

impl From<PayMerchantInput> for MerchantInput {
    fn from(b: PayMerchantInput) -> Self {
        MerchantInput {
            name: b.name,
            api_key_v2: b.api_key_v2,
            api_v3_key: b.api_v3_key,
            private_key_pem: b.private_key_pem,
            cert_serial: b.cert_serial,
            public_key_id: b.public_key_id,
            public_key_pem: b.public_key_pem,
            verify_with: b.verify_with.map(Into::into),
            client_cert_pem: b.client_cert_pem,
            notify_url: b.notify_url,
            transfer_scene_id: b.transfer_scene_id,
            transfer_api: b.transfer_api.map(Into::into),
            rate_per_sec: b.rate_per_sec,
            platform_fallback: b.platform_fallback,
        }
    }
}

/// A new merchant for an org.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CreatePayMerchant {
    pub org_id: i64,
    /// The merchant number (商户号).
    #[oai(validator(min_length = 8, max_length = 16))]
    pub mch_id: String,
    pub settings: PayMerchantInput,
}

#[derive(Debug, Clone, Object)]
pub struct PayMerchantPage {
    pub items: Vec<PayMerchantView>,
    pub page: PageInfo,
}

#[derive(ApiResponse)]
pub enum PayMerchantCreated {
    /// Registered: payouts of the owners it funds go through it from now on.
    #[oai(status = 201)]
    Created(Json<PayMerchantView>),
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::Accounts")]
impl AccountsApi {
    /// Register an official account or mini-program for an org the key reaches. Its secret is
    /// checked with WeChat first (422 `credentials_rejected` with WeChat's answer when wrong).
    /// Admins only.
    #[oai(path = "/wechat-apps", method = "post", operation_id = "create_wechat_app")]
    async fn create_wechat_app(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        body: Json<CreateWechatApp>,
    ) -> Result<WechatAppCreated, ApiError> {
        let b = body.0;
        let input = AppInput {
            name: b.name,
            secret: Some(b.secret),
            token: b.token,
            aes_key: b.aes_key,
            message_mode: b.message_mode.map(Into::into),
            task_template_id: b.task_template_id,
        };
        let made =
            apps::create(&state.accounts, &state.wechat, &key.0, b.org_id, b.kind.into(), &b.appid, input).await?;
        Ok(WechatAppCreated::Created(Json(made.into())))
    }

    /// The apps of the orgs the key reaches.
    #[oai(path = "/wechat-apps", method = "get", operation_id = "list_wechat_apps")]
    async fn list_wechat_apps(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        QueryParams(query): QueryParams<ListWechatApps>,
    ) -> Result<Json<WechatAppPage>, ApiError> {
        let req = query.page_request();
        let found = apps::list(&state.accounts, &key.0, query.org_id, query.kind.map(Into::into), req).await?;
        Ok(Json(WechatAppPage {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    /// One app.
    #[oai(path = "/wechat-apps/:app_id", method = "get", operation_id = "get_wechat_app")]
    async fn get_wechat_app(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        app_id: Path<i64>,
    ) -> Result<Json<WechatAppView>, ApiError> {
        Ok(Json(apps::get(&state.accounts, &key.0, app_id.0).await?.into()))
    }

    /// Change an app. A new secret is checked with WeChat first. Admins only.
    #[oai(path = "/wechat-apps/:app_id", method = "put", operation_id = "update_wechat_app")]
    async fn update_wechat_app(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        app_id: Path<i64>,
        body: Json<UpdateWechatApp>,
    ) -> Result<Json<WechatAppView>, ApiError> {
        let b = body.0;
        let input = AppInput {
            name: b.name,
            secret: b.secret,
            token: b.token,
            aes_key: b.aes_key,
            message_mode: b.message_mode.map(Into::into),
            task_template_id: b.task_template_id,
        };
        Ok(Json(apps::update(&state.accounts, &state.wechat, &key.0, app_id.0, input).await?.into()))
    }

    /// Remove an app: its pushes are refused from then on; residents' identities in it stay.
    /// Admins only.
    #[oai(path = "/wechat-apps/:app_id", method = "delete", operation_id = "delete_wechat_app")]
    async fn delete_wechat_app(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        app_id: Path<i64>,
    ) -> Result<Json<WechatAppView>, ApiError> {
        Ok(Json(apps::delete(&state.accounts, &key.0, app_id.0).await?.into()))
    }

    /// Register a WeChat Pay merchant for an org the key reaches. Its keys are checked with
    /// WeChat Pay first (422 `credentials_rejected` saying which did not work). Admins only.
    #[oai(path = "/pay-merchants", method = "post", operation_id = "create_pay_merchant")]
    async fn create_pay_merchant(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        body: Json<CreatePayMerchant>,
    ) -> Result<PayMerchantCreated, ApiError> {
        let b = body.0;
        let made = merchants::create(&state.accounts, &key.0, b.org_id, &b.mch_id, b.settings.into()).await?;
        Ok(PayMerchantCreated::Created(Json(made.into())))
    }

    /// The merchants of the orgs the key reaches.
    #[oai(path = "/pay-merchants", method = "get", operation_id = "list_pay_merchants")]
    async fn list_pay_merchants(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        QueryParams(query): QueryParams<ListPayMerchants>,
    ) -> Result<Json<PayMerchantPage>, ApiError> {
        let req = query.page_request();
        let found = merchants::list(&state.accounts, &key.0, query.org_id, req).await?;
        Ok(Json(PayMerchantPage {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    /// One merchant.
    #[oai(path = "/pay-merchants/:merchant_id", method = "get", operation_id = "get_pay_merchant")]
    async fn get_pay_merchant(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        merchant_id: Path<i64>,
    ) -> Result<Json<PayMerchantView>, ApiError> {
        Ok(Json(merchants::get(&state.accounts, &key.0, merchant_id.0).await?.into()))
    }

    /// Change a merchant; its keys are checked with WeChat Pay again. Admins only.
    #[oai(path = "/pay-merchants/:merchant_id", method = "put", operation_id = "update_pay_merchant")]
    async fn update_pay_merchant(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        merchant_id: Path<i64>,
        body: Json<PayMerchantInput>,
    ) -> Result<Json<PayMerchantView>, ApiError> {
        Ok(Json(merchants::update(&state.accounts, &key.0, merchant_id.0, body.0.into()).await?.into()))
    }

    /// Remove a merchant; refused (409 `merchant_in_use`) while payouts are open on it. Admins only.
    #[oai(path = "/pay-merchants/:merchant_id", method = "delete", operation_id = "delete_pay_merchant")]
    async fn delete_pay_merchant(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        merchant_id: Path<i64>,
    ) -> Result<Json<PayMerchantView>, ApiError> {
        Ok(Json(merchants::delete(&state.accounts, &key.0, merchant_id.0).await?.into()))
    }
}
