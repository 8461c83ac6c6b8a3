//! `POST /wechat/pay/{mch_id}/notify`: WeChat Pay's notifications about one merchant's transfer
//! bills, verified with that merchant's keys; `POST /wechat/pay/notify` serves the merchant
//! configured by environment. A notification moves only payouts of the merchant it was verified
//! for: one about another merchant's number is acknowledged and changes nothing.
//!
//! The signature is checked over the raw body with the key `Wechatpay-Serial` names — the WeChat
//! Pay public key or a platform certificate, fetched if not held yet — and the 5-minute timestamp
//! window, the resource is decrypted with the APIv3 key, and the bill's state is applied
//! to its payout like any answer: conditionally, so a duplicate, a late or a replayed notification
//! changes nothing. WeChat expects 200/204 without a body for "received", and a 4xx/5xx with
//! `{"code": "FAIL", "message": …}` for "send again".

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, IntoResponse, Request, Response};
use serde_json::json;

use crate::domain::accounts::registry::Merchant;
use crate::domain::money::payouts::{self, Notification, Notified};
use crate::state::AppState;
use crate::wechat::pay::v3::transfer_bills::{classify_state, TransferBillFinished, EVENT_BILL_FINISHED};
use crate::wechat::pay::v3::{unix_now, SignedHeaders};

/// Notification bodies are a few hundred bytes.
const MAX_NOTIFY_BYTES: usize = 64 * 1024;

fn fail(status: StatusCode, message: &str) -> Response {
    poem::web::Json(json!({ "code": "FAIL", "message": message })).with_status(status).into_response()
}

/// A notification for the merchant configured by environment (its record's keys, once
/// `linli apps import-env` has made one: transfers created before still notify this URL).
#[handler]
pub async fn notify(req: &Request, body: Body, state: Data<&AppState>) -> Response {
    let Some(mch_id) = state.accounts.environment_mch_id().map(str::to_owned) else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "WeChat Pay is not configured");
    };
    notify_as(req, body, &state, &mch_id).await
}

/// A notification for one merchant; 404 for a merchant that is not one of ours.
#[handler]
pub async fn notify_merchant(
    req: &Request,
    Path(mch_id): Path<String>,
    body: Body,
    state: Data<&AppState>,
) -> Response {
    notify_as(req, body, &state, &mch_id).await
}

async fn notify_as(req: &Request, body: Body, state: &AppState, mch_id: &str) -> Response {
    let Some(merchant) = state.accounts.merchant(Some(mch_id)) else {
        return fail(StatusCode::NOT_FOUND, "no such merchant");
    };
    // Payouts queued before records existed are stored without a merchant: the environment's.
    let pays_unassigned = state.accounts.environment_mch_id() == Some(mch_id);
    receive(req, body, state, &merchant, pays_unassigned).await
}

async fn receive(req: &Request, body: Body, state: &AppState, merchant: &Merchant, pays_unassigned: bool) -> Response {
    let pay = &merchant.clients;
    let (Some(v3), Some(api_v3_key)) = (pay.v3.as_ref(), pay.api_v3_key.as_ref()) else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "WeChat Pay v3 is not configured");
    };
    let body = match body.into_bytes_limit(MAX_NOTIFY_BYTES).await {
        Ok(b) => b,
        Err(_) => return fail(StatusCode::PAYLOAD_TOO_LARGE, "notification too large"),
    };
    let headers = match SignedHeaders::from_header_map(req.headers()) {
        Ok(h) => h,
        Err(e) => return fail(StatusCode::UNAUTHORIZED, &e.to_string()),
    };
    let (notification, plaintext) = match v3.open_notification(api_v3_key, &headers, &body, unix_now()).await {
        Ok(opened) => opened,
        Err(e) => {
            tracing::warn!(error = %e, "WeChat Pay notification refused");
            return fail(StatusCode::UNAUTHORIZED, &e.to_string());
        }
    };
    if notification.event_type != EVENT_BILL_FINISHED {
        // Nothing linli asked for: acknowledge so WeChat stops sending it.
        tracing::info!(event_type = %notification.event_type, "WeChat Pay notification ignored");
        return StatusCode::NO_CONTENT.into_response();
    }
    let bill: TransferBillFinished = match serde_json::from_slice(&plaintext) {
        Ok(b) => b,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &format!("resource is not a transfer bill: {e}")),
    };
    if bill.mch_id.as_deref().is_some_and(|m| m != pay.mch_id) {
        return fail(StatusCode::BAD_REQUEST, "the notification is for another merchant");
    }
    // WeChat sends an unsigned number; one past i64 is no amount any payout of ours can have, and
    // a cast would wrap it to a negative "amount" in the payout's history.
    let amount = match bill.transfer_amount.map(i64::try_from).transpose() {
        Ok(a) => a,
        Err(_) => return fail(StatusCode::BAD_REQUEST, "transfer_amount is out of range"),
    };
    let out_no = bill.out_bill_no.clone();
    let settings = &state.settings.pay.payouts;
    let step = payouts::transfer_bill_step(
        classify_state(bill.into()),
        payouts::Recheck::after(settings, crate::db::now_ms()),
    );
    let about = Notification {
        id: &notification.id,
        event_type: &notification.event_type,
        mch_id: &merchant.mch_id,
        pays_unassigned,
        out_no: &out_no,
        amount_fen: amount,
    };
    match payouts::apply_notification(&state.db, settings, about, step).await {
        Ok(Notified::Applied(p)) => {
            tracing::info!(payout = p.id, state = %p.state, "WeChat Pay notification applied");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Notified::NoChange) => StatusCode::NO_CONTENT.into_response(),
        Ok(Notified::UnknownNumber) => {
            tracing::warn!(out_no = %out_no, "WeChat Pay notification about a number linli did not issue");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "WeChat Pay notification not applied; WeChat will send it again");
            fail(StatusCode::INTERNAL_SERVER_ERROR, "not applied; send again")
        }
    }
}
