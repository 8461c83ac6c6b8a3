//! `/admin/v1/red-packets` and `/admin/v1/payouts`: red-packet campaigns with their figures, and
//! every payout to WeChat Pay with its history.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use time::OffsetDateTime;

use super::{ms, page_request, ts, PageInfo};
use crate::api::auth::OperatorKey;
use crate::api::query::QueryParams;
use crate::api::views::money::{PayoutChannelView, PayoutState};
use crate::api::ApiTags;
use crate::db::money::payouts::{EventRow, PayoutFilter, PayoutRow, ReconciliationRow, ReconciliationState};
use crate::db::money::redpackets::{
    AmountMode, CampaignFilter, CampaignRow, CampaignState, Figures, RedPacketAudience,
};
use crate::domain::money::redpackets::{self, CampaignInput};
use crate::domain::{money::payouts, money::reconcile};
use crate::error::ApiError;
use crate::state::AppState;

pub struct RedPacketsApi;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "AmountMode", rename_all = "lowercase")]
pub enum AmountModeView {
    /// Every share the same (the total must divide evenly).
    Fixed,
    /// Random shares (double mean), each within the channel's limits.
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "RedPacketAudience", rename_all = "snake_case")]
pub enum RedPacketAudienceView {
    /// Followers of the official account.
    Followers,
    /// Verified residents of the listed communities.
    VerifiedResidents,
}

one_to_one!(AmountModeView <=> AmountMode { Fixed, Random });
one_to_one!(RedPacketAudienceView <=> RedPacketAudience { Followers, VerifiedResidents });

/// A campaign's terms. Money is integer fen (1 yuan = 100).
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RedPacketTerms {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub theme: String,
    pub channel: PayoutChannelView,
    pub amount_mode: AmountModeView,
    /// The whole amount, fen.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000000000")))]
    pub total_fen: i64,
    /// How many shares.
    #[oai(validator(minimum(value = "1"), maximum(value = "100000")))]
    pub shares: i64,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub audience: RedPacketAudienceView,
    /// For `verified_residents`: the communities (org ids) whose verified residents may grab.
    #[oai(default, validator(max_items = 200))]
    pub audience_communities: Vec<i64>,
    /// Cash red packet: the sender's name shown (≤ 32); default: the owner's name.
    #[oai(validator(max_length = 32))]
    pub send_name: Option<String>,
    /// Cash red packet: the blessing (≤ 128).
    #[oai(validator(max_length = 128))]
    pub wishing: Option<String>,
    /// Cash red packet: the activity name (≤ 32); default: the theme.
    #[oai(validator(max_length = 32))]
    pub act_name: Option<String>,
    /// Cash red packet: the remark (≤ 256).
    #[oai(validator(max_length = 256))]
    pub remark: Option<String>,
    /// Transfer: the note the resident sees (≤ 32); default: the theme.
    #[oai(validator(max_length = 32))]
    pub transfer_remark: Option<String>,
    /// Transfer: the scene registered with WeChat Pay (default: the configured one, 1000 现金营销).
    #[oai(validator(max_length = 8))]
    pub transfer_scene_id: Option<String>,
}

impl RedPacketTerms {
    fn into_input(self) -> CampaignInput {
        CampaignInput {
            theme: self.theme,
            channel: self.channel.into(),
            amount_mode: self.amount_mode.into(),
            total_fen: self.total_fen,
            shares: self.shares,
            starts_at: ms(self.starts_at),
            ends_at: ms(self.ends_at),
            audience: self.audience.into(),
            audience_communities: self.audience_communities,
            send_name: self.send_name,
            wishing: self.wishing,
            act_name: self.act_name,
            remark: self.remark,
            transfer_remark: self.transfer_remark,
            transfer_scene_id: self.transfer_scene_id,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateRedPacket {
    /// The funding org: a property company or a community the key reaches.
    pub owner_org_id: i64,
    pub terms: RedPacketTerms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "RedPacketState", rename_all = "lowercase")]
pub enum RedPacketStateView {
    /// Being written; not visible to residents.
    Draft,
    /// Split and open for grabbing within its window.
    Active,
    /// Closed.
    Ended,
}

one_to_one!(RedPacketStateView <=> CampaignState { Draft, Active, Ended });

/// What became of a campaign's shares.
#[derive(Debug, Clone, Object)]
pub struct RedPacketFigures {
    pub grabbed: i64,
    pub grabbed_fen: i64,
    /// Received by residents (or credited to their balance).
    pub paid: i64,
    pub paid_fen: i64,
    /// On their way.
    pub pending: i64,
    /// Failed for good; their amounts went to the residents' balance.
    pub failed: i64,
}

#[derive(Debug, Clone, Object)]
pub struct RedPacket {
    pub id: i64,
    pub owner_org_id: i64,
    pub company_id: i64,
    pub theme: String,
    pub channel: PayoutChannelView,
    pub amount_mode: AmountModeView,
    pub total_fen: i64,
    pub shares: i64,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub audience: RedPacketAudienceView,
    pub audience_communities: Vec<i64>,
    pub send_name: String,
    pub wishing: String,
    pub act_name: String,
    pub remark: String,
    pub transfer_remark: String,
    pub transfer_scene_id: String,
    pub state: RedPacketStateView,
    #[oai(nullable)]
    pub activated_at: Option<OffsetDateTime>,
    #[oai(nullable)]
    pub ended_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub figures: RedPacketFigures,
}

pub(crate) fn view(c: CampaignRow, f: Figures) -> RedPacket {
    RedPacket {
        id: c.id,
        owner_org_id: c.owner_org_id,
        company_id: c.company_id,
        theme: c.theme,
        channel: c.channel.into(),
        amount_mode: c.amount_mode.into(),
        total_fen: c.total_fen,
        shares: c.shares,
        starts_at: ts(c.starts_at),
        ends_at: ts(c.ends_at),
        audience: c.audience.into(),
        audience_communities: serde_json::from_str(&c.audience_communities).unwrap_or_default(),
        send_name: c.send_name,
        wishing: c.wishing,
        act_name: c.act_name,
        remark: c.remark,
        transfer_remark: c.transfer_remark,
        transfer_scene_id: c.transfer_scene_id,
        state: c.state.into(),
        activated_at: c.activated_at.map(ts),
        ended_at: c.ended_at.map(ts),
        created_at: ts(c.created_at),
        figures: RedPacketFigures {
            grabbed: f.grabbed,
            grabbed_fen: f.grabbed_fen,
            paid: f.paid,
            paid_fen: f.paid_fen,
            pending: f.pending,
            failed: f.failed,
        },
    }
}

#[derive(Debug, Clone, Object)]
pub struct RedPacketList {
    pub items: Vec<RedPacket>,
    pub page: PageInfo,
}

#[derive(ApiResponse)]
pub enum RedPacketCreated {
    #[oai(status = 201)]
    Created(Json<RedPacket>),
}

#[derive(ApiResponse)]
pub enum RedPacketDeleted {
    #[oai(status = 204)]
    Deleted,
}

/// What a reconciliation run of one day found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "ReconciliationState", rename_all = "lowercase")]
pub enum ReconciliationStateView {
    /// Every merchant number matched WeChat Pay's bill.
    Matched,
    /// Some did not: see `differences`.
    Differences,
    /// No bill could be had (see `message`).
    Unavailable,
}

one_to_one!(ReconciliationStateView <=> ReconciliationState { Matched, Differences, Unavailable });

/// One payout as operators see it.
#[derive(Debug, Clone, Object)]
pub struct Payout {
    pub id: i64,
    #[oai(nullable)]
    pub owner_org_id: Option<i64>,
    pub resident_id: i64,
    pub channel: PayoutChannelView,
    /// `red_packet`, `withdrawal` or `task`.
    pub source: String,
    pub source_ref: String,
    pub amount_fen: i64,
    pub appid: String,
    pub openid: String,
    /// The merchant number in use (`mch_billno` / `out_bill_no` / `partner_trade_no`).
    pub out_no: String,
    /// How many merchant numbers this payout has used.
    pub attempt: i64,
    pub state: PayoutState,
    /// WeChat Pay's own number, once known.
    #[oai(nullable)]
    pub wechat_no: Option<String>,
    #[oai(nullable)]
    pub last_code: Option<String>,
    #[oai(nullable)]
    pub last_message: Option<String>,
    /// Calls made with the current number.
    pub calls: i64,
    /// When the dispatcher looks at it next.
    pub next_at: OffsetDateTime,
    /// When a failed payout's amount was credited to the resident's balance.
    #[oai(nullable)]
    pub credited_at: Option<OffsetDateTime>,
    #[oai(nullable)]
    pub finished_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<PayoutRow> for Payout {
    fn from(p: PayoutRow) -> Self {
        Self {
            id: p.id,
            owner_org_id: p.owner_org_id,
            resident_id: p.resident_id,
            channel: p.channel.into(),
            source: p.source,
            source_ref: p.source_ref,
            amount_fen: p.amount_fen,
            appid: p.appid,
            openid: p.openid,
            out_no: p.out_no,
            attempt: p.attempt,
            state: p.state.into(),
            wechat_no: p.wechat_no,
            last_code: p.last_code,
            last_message: p.last_message,
            calls: p.calls,
            next_at: ts(p.next_at),
            credited_at: p.credited_at.map(ts),
            finished_at: p.finished_at.map(ts),
            created_at: ts(p.created_at),
            updated_at: ts(p.updated_at),
        }
    }
}

/// One step in a payout's history.
#[derive(Debug, Clone, Object)]
pub struct PayoutEvent {
    /// `queued`, `send`, `query`, `notify`, `renumbered`, `operator_retry`.
    pub kind: String,
    pub out_no: String,
    // No doc comment (a described enum `$ref` becomes `allOf`): the payout's state after it.
    pub state: PayoutState,
    #[oai(nullable)]
    pub code: Option<String>,
    #[oai(nullable)]
    pub message: Option<String>,
    #[oai(nullable)]
    pub actor: Option<String>,
    pub at: OffsetDateTime,
}

impl From<EventRow> for PayoutEvent {
    fn from(e: EventRow) -> Self {
        Self {
            kind: e.kind,
            out_no: e.out_no,
            state: e.state.into(),
            code: e.code,
            message: e.message,
            actor: e.actor,
            at: ts(e.at),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct PayoutDetail {
    pub payout: Payout,
    pub history: Vec<PayoutEvent>,
}

#[derive(Debug, Clone, Object)]
pub struct PayoutList {
    pub items: Vec<Payout>,
    pub page: PageInfo,
}

/// One difference between linli's payouts and WeChat Pay's bill.
#[derive(Debug, Clone, Object)]
pub struct ReconciliationDifference {
    /// `missing_at_wechat`, `unexpected_at_wechat`, `amount_mismatch`, `paid_but_failed_here`,
    /// `unknown_number`.
    pub kind: String,
    pub out_no: String,
    #[oai(nullable)]
    pub payout_id: Option<i64>,
    /// Net fen WeChat's bill shows leaving for this number that day.
    pub wechat_fen: i64,
    /// Net fen linli expects.
    pub linli_fen: i64,
    pub detail: String,
}

#[derive(Debug, Clone, Object)]
pub struct Reconciliation {
    pub id: i64,
    /// The Beijing day, `YYYY-MM-DD`.
    pub bill_date: String,
    pub state: ReconciliationStateView,
    /// Merchant numbers compared.
    pub checked: i64,
    pub differences: Vec<ReconciliationDifference>,
    #[oai(nullable)]
    pub message: Option<String>,
    pub created_at: OffsetDateTime,
    /// The merchant reconciled; null for the one configured by environment.
    #[oai(nullable)]
    pub mch_id: Option<String>,
}

impl From<ReconciliationRow> for Reconciliation {
    fn from(r: ReconciliationRow) -> Self {
        let diffs: Vec<reconcile::Difference> = serde_json::from_str(&r.differences).unwrap_or_default();
        Self {
            id: r.id,
            bill_date: r.bill_date,
            state: r.state.into(),
            checked: r.checked,
            differences: diffs
                .into_iter()
                .map(|d| ReconciliationDifference {
                    kind: d.kind,
                    out_no: d.out_no,
                    payout_id: d.payout_id,
                    wechat_fen: d.wechat_fen,
                    linli_fen: d.linli_fen,
                    detail: d.detail,
                })
                .collect(),
            message: r.message,
            created_at: ts(r.created_at),
            mch_id: r.mch_id,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct ReconciliationList {
    pub items: Vec<Reconciliation>,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RunReconciliation {
    /// The Beijing day to reconcile, `YYYY-MM-DD`.
    #[oai(validator(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub bill_date: String,
    /// The merchant to reconcile (a record's mch_id); absent, the one configured by environment.
    #[oai(validator(max_length = 16))]
    pub mch_id: Option<String>,
}

list_query! {
    /// What `list_red_packets` is narrowed by.
    pub struct ListRedPackets {
        /// Only campaigns funded by this org or the orgs below it.
        pub owner_org_id: Option<i64>,
        #[oai(rename = "state")]
        pub campaign_state: Option<RedPacketStateView>,
        pub channel: Option<PayoutChannelView>,
    }
}

list_query! {
    /// What `list_payouts` is narrowed by.
    pub struct ListPayouts {
        #[oai(rename = "state")]
        pub payout_state: Option<PayoutState>,
        pub channel: Option<PayoutChannelView>,
        /// `red_packet`, `withdrawal` or `task`.
        #[oai(validator(max_length = 32))]
        pub source: Option<String>,
        pub resident_id: Option<i64>,
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::AdminRedPackets")]
impl RedPacketsApi {
    /// Write a red-packet campaign as a draft. The total must split into the shares within the
    /// channel's limits; the answer says why not.
    #[oai(path = "/red-packets", method = "post", operation_id = "create_red_packet")]
    async fn create_red_packet(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        body: Json<CreateRedPacket>,
    ) -> Result<RedPacketCreated, ApiError> {
        let b = body.0;
        let c = redpackets::create(&state.db, &key.0, &state.payer, b.owner_org_id, b.terms.into_input()).await?;
        Ok(RedPacketCreated::Created(Json(view(c, Figures::default()))))
    }

    /// Campaigns of the orgs the key reaches, newest first, with figures.
    #[oai(path = "/red-packets", method = "get", operation_id = "list_red_packets")]
    async fn list_red_packets(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        QueryParams(query): QueryParams<ListRedPackets>,
    ) -> Result<Json<RedPacketList>, ApiError> {
        let req = query.page_request();
        let filter = CampaignFilter {
            scope_path: String::new(),
            owner_org_id: query.owner_org_id,
            state: query.campaign_state.map(Into::into),
            channel: query.channel.map(Into::into),
        };
        let found = redpackets::list(&state.db, &key.0, filter, req).await?;
        Ok(Json(RedPacketList {
            items: found.items.into_iter().map(|(c, f)| view(c, f)).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    #[oai(path = "/red-packets/:red_packet_id", method = "get", operation_id = "get_red_packet")]
    async fn get_red_packet(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        red_packet_id: Path<i64>,
    ) -> Result<Json<RedPacket>, ApiError> {
        let (c, f) = redpackets::get(&state.db, &key.0, red_packet_id.0).await?;
        Ok(Json(view(c, f)))
    }

    /// Rewrite a draft's terms.
    #[oai(path = "/red-packets/:red_packet_id", method = "put", operation_id = "update_red_packet")]
    async fn update_red_packet(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        red_packet_id: Path<i64>,
        body: Json<RedPacketTerms>,
    ) -> Result<Json<RedPacket>, ApiError> {
        let c = redpackets::update(&state.db, &key.0, &state.payer, red_packet_id.0, body.0.into_input()).await?;
        Ok(Json(view(c, Figures::default())))
    }

    /// Delete a draft.
    #[oai(path = "/red-packets/:red_packet_id", method = "delete", operation_id = "delete_red_packet")]
    async fn delete_red_packet(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        red_packet_id: Path<i64>,
    ) -> Result<RedPacketDeleted, ApiError> {
        redpackets::delete(&state.db, &key.0, red_packet_id.0).await?;
        Ok(RedPacketDeleted::Deleted)
    }

    /// Split the total into its shares (proved: exact sum, every share within the channel's
    /// limits) and open the campaign.
    #[oai(path = "/red-packets/:red_packet_id/activate", method = "post", operation_id = "activate_red_packet")]
    async fn activate_red_packet(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        red_packet_id: Path<i64>,
    ) -> Result<Json<RedPacket>, ApiError> {
        let c = redpackets::activate(&state.db, &key.0, &state.payer, red_packet_id.0).await?;
        Ok(Json(view(c, Figures::default())))
    }

    /// End a campaign: no more grabs; what was granted is still paid.
    #[oai(path = "/red-packets/:red_packet_id/end", method = "post", operation_id = "end_red_packet")]
    async fn end_red_packet(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        red_packet_id: Path<i64>,
    ) -> Result<Json<RedPacket>, ApiError> {
        let c = redpackets::end(&state.db, &state.hot, &key.0, red_packet_id.0).await?;
        let f = crate::db::money::redpackets::figures(state.db.reader(), c.id).await?;
        Ok(Json(view(c, f)))
    }

    /// Payouts funded by the orgs the key reaches, newest first.
    #[oai(path = "/payouts", method = "get", operation_id = "list_payouts")]
    async fn list_payouts(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        QueryParams(query): QueryParams<ListPayouts>,
    ) -> Result<Json<PayoutList>, ApiError> {
        let req = query.page_request();
        let filter = PayoutFilter {
            scope_path: String::new(),
            state: query.payout_state.map(Into::into),
            channel: query.channel.map(Into::into),
            source: query.source,
            resident_id: query.resident_id,
        };
        let found = payouts::list(&state.db, &key.0, filter, req).await?;
        Ok(Json(PayoutList {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    /// One payout with its whole history: every call, answer, notification and retry.
    #[oai(path = "/payouts/:payout_id", method = "get", operation_id = "get_payout")]
    async fn get_payout(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        payout_id: Path<i64>,
    ) -> Result<Json<PayoutDetail>, ApiError> {
        let (p, events) = payouts::get(&state.db, &key.0, payout_id.0).await?;
        Ok(Json(PayoutDetail { payout: p.into(), history: events.into_iter().map(Into::into).collect() }))
    }

    /// Send a failed payout again under a new merchant number. The balance it credited is taken
    /// back first; if the resident already used it, the retry is refused (409).
    #[oai(path = "/payouts/:payout_id/retry", method = "post", operation_id = "retry_payout")]
    async fn retry_payout(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        payout_id: Path<i64>,
    ) -> Result<Json<Payout>, ApiError> {
        let p = payouts::retry(&state.db, &state.payer, &key.0, payout_id.0).await?;
        Ok(Json(p.into()))
    }

    /// Compare one Beijing day's payouts with WeChat Pay's fund-flow bill and store the report.
    /// Platform admins only.
    #[oai(path = "/reconciliations", method = "post", operation_id = "run_reconciliation")]
    async fn run_reconciliation(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        body: Json<RunReconciliation>,
    ) -> Result<Json<Reconciliation>, ApiError> {
        let b = body.0;
        let row = reconcile::run_for(&state.db, &key.0, &state.accounts, b.mch_id.as_deref(), &b.bill_date).await?;
        Ok(Json(row.into()))
    }

    /// Stored reconciliation reports, newest first. Platform admins only.
    #[oai(path = "/reconciliations", method = "get", operation_id = "list_reconciliations")]
    async fn list_reconciliations(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        #[oai(validator(pattern = r"^\d{4}-\d{2}-\d{2}$"))] bill_date: Query<Option<String>>,
        /// Only runs of this merchant.
        #[oai(validator(max_length = 16))]
        mch_id: Query<Option<String>>,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<ReconciliationList>, ApiError> {
        let req = page_request(page.0, page_size.0);
        let rows =
            reconcile::list(&state.db, &key.0, &state.accounts, bill_date.0.as_deref(), mch_id.0.as_deref(), req)
                .await?;
        Ok(Json(ReconciliationList { items: rows.into_iter().map(Into::into).collect() }))
    }
}
