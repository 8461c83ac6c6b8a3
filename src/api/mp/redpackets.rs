//! `/mp/v1/red-packets` and the resident's wallet and payouts: grab a share, see my shares and
//! their payouts, confirm a transfer, see and withdraw my balance.

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use time::OffsetDateTime;

use super::ResidentSession;
use crate::api::common::{page_request, ts, PageInfo};
use crate::api::views::money::{PayoutChannelView as PayoutChannel, PayoutState};
use crate::api::ApiTags;
use crate::codes::ErrorCode;
use crate::db::money::payouts::PayoutRow;
use crate::db::money::payouts::PayoutState as StoredPayoutState;
use crate::db::money::redpackets::MyGrab;
use crate::db::money::wallet::WalletEntry;
use crate::domain::{money::payouts, money::redpackets, money::wallet};
use crate::error::ApiError;
use crate::state::AppState;

pub struct MpRedPacketsApi;

/// A red packet I can grab from now.
#[derive(Debug, Clone, Object)]
pub struct OpenRedPacket {
    pub id: i64,
    pub theme: String,
    pub channel: PayoutChannel,
    pub shares: i64,
    /// Shares still to be had.
    pub shares_left: i64,
    pub ends_at: OffsetDateTime,
    /// My share, if I took one.
    #[oai(nullable)]
    pub my_amount_fen: Option<i64>,
}

#[derive(Debug, Clone, Object)]
pub struct OpenRedPacketList {
    pub items: Vec<OpenRedPacket>,
}

/// Where the money of my share is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ShareState {
    /// In my balance at once (the balance channel).
    Credited,
    /// Its payout is queued.
    Pending,
    /// WeChat accepted it (a red packet not yet opened, a transfer in progress).
    Submitted,
    /// Its payout's last outcome is being checked.
    Unknown,
    /// A transfer waiting for me to confirm it in the mini-program.
    AwaitingConfirmation,
    /// Received.
    Succeeded,
    /// The payout failed for good; the amount went to my balance.
    Failed,
}

fn share_state(state: Option<StoredPayoutState>) -> ShareState {
    match state {
        None => ShareState::Credited,
        Some(StoredPayoutState::Pending) => ShareState::Pending,
        Some(StoredPayoutState::Submitted) => ShareState::Submitted,
        Some(StoredPayoutState::Unknown) => ShareState::Unknown,
        Some(StoredPayoutState::AwaitingConfirmation) => ShareState::AwaitingConfirmation,
        Some(StoredPayoutState::Succeeded) => ShareState::Succeeded,
        Some(StoredPayoutState::Failed) => ShareState::Failed,
    }
}

/// My share of a red packet, and where its money is.
#[derive(Debug, Clone, Object)]
pub struct MyRedPacket {
    pub id: i64,
    pub red_packet_id: i64,
    pub theme: String,
    pub channel: PayoutChannel,
    pub amount_fen: i64,
    /// The payout carrying it to WeChat (absent for the balance channel: credited at once).
    #[oai(nullable)]
    pub payout_id: Option<i64>,
    pub state: ShareState,
    /// Whether the amount is in my balance (the balance channel, or a payout that failed).
    pub in_balance: bool,
    pub grabbed_at: OffsetDateTime,
}

impl From<MyGrab> for MyRedPacket {
    fn from(g: MyGrab) -> Self {
        Self {
            id: g.id,
            red_packet_id: g.campaign_id,
            theme: g.theme,
            channel: g.channel.into(),
            amount_fen: g.amount_fen,
            payout_id: g.payout_id,
            state: share_state(g.payout_state),
            in_balance: g.payout_id.is_none() || g.credited_at.is_some(),
            grabbed_at: ts(g.created_at),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct MyRedPacketList {
    pub items: Vec<MyRedPacket>,
}

#[derive(ApiResponse)]
pub enum Grabbed {
    /// A share is mine.
    #[oai(status = 201)]
    Created(Json<MyRedPacket>),
}

/// A payout to me, with what the mini-program needs to confirm a transfer.
#[derive(Debug, Clone, Object)]
pub struct MyPayout {
    pub id: i64,
    pub channel: String,
    pub source: String,
    pub amount_fen: i64,
    pub state: PayoutState,
    /// For a transfer waiting for me: pass `mch_id`, `appid` and this as `package` to
    /// `wx.requestMerchantTransfer`.
    #[oai(nullable)]
    pub package_info: Option<String>,
    #[oai(nullable)]
    pub mch_id: Option<String>,
    pub appid: String,
    /// Whether its amount went to my balance (it failed for good).
    pub in_balance: bool,
    pub created_at: OffsetDateTime,
    #[oai(nullable)]
    pub finished_at: Option<OffsetDateTime>,
}

fn env_mch_id(state: &AppState) -> Option<String> {
    state.accounts.merchant(None).map(|m| m.mch_id.clone())
}

/// The payout as its resident sees it; `env_mch_id` is the merchant configured by environment,
/// which pays the payouts stored without a merchant of their own.
fn my_payout(p: PayoutRow, env_mch_id: Option<&str>) -> MyPayout {
    let waiting = p.state == StoredPayoutState::AwaitingConfirmation;
    let mch_id = p.mch_id.clone().or_else(|| env_mch_id.map(str::to_owned));
    MyPayout {
        id: p.id,
        channel: p.channel.as_str().to_owned(),
        source: p.source,
        amount_fen: p.amount_fen,
        state: p.state.into(),
        package_info: if waiting { p.package_info } else { None },
        mch_id,
        appid: p.appid,
        in_balance: p.credited_at.is_some(),
        created_at: ts(p.created_at),
        finished_at: p.finished_at.map(ts),
    }
}

#[derive(Debug, Clone, Object)]
pub struct MyPayoutList {
    pub items: Vec<MyPayout>,
}

#[derive(Debug, Clone, Object)]
pub struct Wallet {
    /// Fen.
    pub balance_fen: i64,
}

#[derive(Debug, Clone, Object)]
pub struct WalletEntryView {
    pub id: i64,
    /// `credit`, `withdraw`, `refund` or `adjust`.
    pub kind: String,
    /// `red_packet`, `task`, `payout_failed`, `withdrawal`, `payout_retry` or `operator`.
    pub source: String,
    /// Signed fen.
    pub amount_fen: i64,
    pub balance_after: i64,
    #[oai(nullable)]
    pub payout_id: Option<i64>,
    #[oai(nullable)]
    pub remark: Option<String>,
    pub at: OffsetDateTime,
}

impl From<WalletEntry> for WalletEntryView {
    fn from(e: WalletEntry) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            source: e.source,
            amount_fen: e.amount_fen,
            balance_after: e.balance_after,
            payout_id: e.payout_id,
            remark: e.remark,
            at: ts(e.created_at),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct WalletEntryList {
    pub items: Vec<WalletEntryView>,
    pub page: PageInfo,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct Withdraw {
    /// Fen, within the configured limits.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000000")))]
    pub amount_fen: i64,
}

#[derive(ApiResponse)]
pub enum Withdrawn {
    /// The withdrawal is on its way (or, for a repeated `Idempotency-Key`, the first one).
    #[oai(status = 201)]
    Created(Json<MyPayout>),
}

#[OpenApi(prefix_path = "/mp/v1", tag = "ApiTags::MpRedPackets")]
impl MpRedPacketsApi {
    /// Red packets of a property company I can grab from now.
    #[oai(path = "/red-packets", method = "get", operation_id = "list_open_red_packets")]
    async fn list_open_red_packets(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        /// The property company; absent: the official account's.
        company_id: Query<Option<i64>>,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<OpenRedPacketList>, ApiError> {
        let company = company_id.0.or(state.settings.wechat.oa_company_id).ok_or(ApiError::Unprocessable {
            code: ErrorCode::CompanyRequired,
            message: "name the property company".into(),
        })?;
        let open =
            redpackets::open_for_me(&state.db, &state.payer, &me.0, company, page_request(page.0, page_size.0)).await?;
        let items = open
            .into_iter()
            .map(|o| OpenRedPacket {
                id: o.campaign.id,
                theme: o.campaign.theme,
                channel: o.campaign.channel.into(),
                shares: o.campaign.shares,
                shares_left: o.campaign.shares - o.campaign.granted,
                ends_at: ts(o.campaign.ends_at),
                my_amount_fen: o.mine.map(|g| g.amount_fen),
            })
            .collect();
        Ok(Json(OpenRedPacketList { items }))
    }

    /// Grab one share. One per resident per red packet, only inside its window and audience;
    /// never more grants than shares however many press at once; a sold-out red packet answers
    /// 409 `sold_out` at once. The share and its payout are recorded together.
    #[oai(path = "/red-packets/:red_packet_id/grabs", method = "post", operation_id = "grab_red_packet")]
    async fn grab_red_packet(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        red_packet_id: Path<i64>,
    ) -> Result<Grabbed, ApiError> {
        let g = redpackets::grab(&state.db, &state.hot, &state.gates, &me.0, red_packet_id.0).await?;
        let view = MyRedPacket {
            id: g.grab.id,
            red_packet_id: g.campaign.id,
            theme: g.campaign.theme,
            channel: g.campaign.channel.into(),
            amount_fen: g.grab.amount_fen,
            payout_id: g.payout.as_ref().map(|p| p.id),
            state: share_state(g.payout.as_ref().map(|p| p.state)),
            in_balance: g.payout.is_none(),
            grabbed_at: ts(g.grab.created_at),
        };
        Ok(Grabbed::Created(Json(view)))
    }

    /// My red-packet shares, newest first, with their payouts' states.
    #[oai(path = "/me/red-packets", method = "get", operation_id = "list_my_red_packets")]
    async fn list_my_red_packets(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<MyRedPacketList>, ApiError> {
        let req = page_request(page.0, page_size.0);
        let items = redpackets::my_grabs(&state.db, &me.0, req).await?.into_iter().map(Into::into).collect();
        Ok(Json(MyRedPacketList { items }))
    }

    /// My payouts, newest first.
    #[oai(path = "/me/payouts", method = "get", operation_id = "list_my_payouts")]
    async fn list_my_payouts(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<MyPayoutList>, ApiError> {
        let req = page_request(page.0, page_size.0);
        let mch = env_mch_id(&state);
        let mch = mch.as_deref();
        let items = payouts::mine(&state.db, &me.0, req).await?.into_iter().map(|p| my_payout(p, mch)).collect();
        Ok(Json(MyPayoutList { items }))
    }

    /// One payout of mine. A transfer in `awaiting_confirmation` carries `package_info` for
    /// `wx.requestMerchantTransfer`.
    #[oai(path = "/me/payouts/:payout_id", method = "get", operation_id = "get_my_payout")]
    async fn get_my_payout(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        payout_id: Path<i64>,
    ) -> Result<Json<MyPayout>, ApiError> {
        let p = payouts::my_payout(&state.db, &me.0, payout_id.0).await?;
        Ok(Json(my_payout(p, env_mch_id(&state).as_deref())))
    }

    /// Tell linli I have confirmed (or declined) a transfer in WeChat: it asks WeChat Pay now
    /// instead of waiting for the notification.
    #[oai(path = "/me/payouts/:payout_id/check", method = "post", operation_id = "check_my_payout")]
    async fn check_my_payout(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        payout_id: Path<i64>,
    ) -> Result<Json<MyPayout>, ApiError> {
        let p = payouts::check_now(&state.db, &state.payer, &me.0, payout_id.0).await?;
        Ok(Json(my_payout(p, env_mch_id(&state).as_deref())))
    }

    /// My balance, fen.
    #[oai(path = "/me/wallet", method = "get", operation_id = "get_my_wallet")]
    async fn get_my_wallet(&self, state: Data<&AppState>, me: ResidentSession) -> Result<Json<Wallet>, ApiError> {
        Ok(Json(Wallet { balance_fen: wallet::balance(&state.db, &me.0).await? }))
    }

    /// My balance's history, newest first.
    #[oai(path = "/me/wallet/entries", method = "get", operation_id = "list_my_wallet_entries")]
    async fn list_my_wallet_entries(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<WalletEntryList>, ApiError> {
        let req = page_request(page.0, page_size.0);
        let found = wallet::history(&state.db, &me.0, req).await?;
        Ok(Json(WalletEntryList {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    /// Withdraw from my balance to WeChat change (a merchant transfer I confirm in the
    /// mini-program). The `Idempotency-Key` makes a retried request return the first withdrawal.
    #[oai(path = "/me/wallet/withdrawals", method = "post", operation_id = "withdraw_from_wallet")]
    async fn withdraw_from_wallet(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        /// A key unique to this withdrawal (e.g. a UUID); retries send the same key.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 128))]
        idempotency_key: Header<String>,
        body: Json<Withdraw>,
    ) -> Result<Withdrawn, ApiError> {
        let done = wallet::withdraw(
            &state.db,
            &state.settings.pay.payouts,
            &state.payer,
            &me.0,
            body.0.amount_fen,
            &idempotency_key.0,
        )
        .await?;
        let (wallet::Withdrawn::New(p) | wallet::Withdrawn::Replayed(p)) = done;
        Ok(Withdrawn::Created(Json(my_payout(p, env_mch_id(&state).as_deref()))))
    }
}
