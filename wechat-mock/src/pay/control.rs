//! WeChat Pay's part of the control API under `/__mock/pay` (not part of WeChat): inspect a
//! merchant's ledger and keys, switch how it signs, play the user opening a red packet or
//! answering a transfer bill, drive notifications. Answers are JSON; a bad request gets HTTP 400,
//! a merchant the mock does not know 404, a state that does not allow the step 409, each with
//! `{"error": "…"}`.
//!
//! Every endpoint about one merchant takes an optional `?mch_id=`; without it, it is about the
//! default merchant, except those naming a bill number, which find the bill in the default
//! merchant or else in the first other merchant that has it (as the [`MockWechat`] methods do).
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /__mock/pay/merchants` | `[{"mch_id", "balance_fen", "signing"}]`, the default merchant first |
//! | `GET /__mock/pay[?mch_id=]` | [`PayReport`]: the merchant's balance and ledger |
//! | `GET /__mock/pay/keys[?mch_id=]` | the merchant's ids and public key material (private keys only of the embedded test merchants) |
//! | `POST /__mock/pay/signing[?mch_id=]` `{"signing": "public_key" \| "platform_certificate" \| "migration"}` | `{"signing"}` |
//! | `POST /__mock/pay/red-packets/{mch_billno}/receive[?mch_id=]` | the [`Payment`], now `RECEIVED` |
//! | `POST /__mock/pay/transfer-bills/{out_bill_no}/confirm`, `…/decline`, `…/fail` `[?mch_id=]` | the [`Payment`] in its final state, once its notification was attempted |
//! | `GET /__mock/pay/notifications[?mch_id=]` | the merchant's [`PayNotification`]s |
//! | `POST /__mock/pay/notifications/run` | `{"delivered": n}`: every merchant's due deliveries made |
//! | `POST /__mock/pay/duplicate-notifications` `{"extra": n}` | `{"extra": n}` (every merchant) |

use poem::{
    get, handler,
    http::StatusCode,
    post,
    web::{Data, Json, Path, Query},
    Body, IntoResponse, Response, Route,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::{
    PaySigning, MERCHANT_PRIVATE_KEY_PEM, MERCHANT_PUBLIC_KEY_PEM, SECOND_MERCHANT_PRIVATE_KEY_PEM,
    SECOND_MERCHANT_PUBLIC_KEY_PEM, SECOND_WECHATPAY_PRIVATE_KEY_PEM, SECOND_WECHATPAY_PUBLIC_KEY_PEM,
    WECHATPAY_PRIVATE_KEY_PEM, WECHATPAY_PUBLIC_KEY_PEM,
};
use super::{PayNotification, PayReport, Payment, UnknownMerchant};
use crate::state::MockWechat;

/// The embedded test key pairs (private, public) whose private halves the keys endpoint may show:
/// they are published anyway. A merchant configured with other keys gets an empty private key.
const MERCHANT_KEY_PAIRS: &[(&str, &str)] = &[
    (MERCHANT_PRIVATE_KEY_PEM, MERCHANT_PUBLIC_KEY_PEM),
    (SECOND_MERCHANT_PRIVATE_KEY_PEM, SECOND_MERCHANT_PUBLIC_KEY_PEM),
];
/// Likewise for WeChat Pay's keys.
const WECHATPAY_KEY_PAIRS: &[(&str, &str)] = &[
    (WECHATPAY_PRIVATE_KEY_PEM, WECHATPAY_PUBLIC_KEY_PEM),
    (SECOND_WECHATPAY_PRIVATE_KEY_PEM, SECOND_WECHATPAY_PUBLIC_KEY_PEM),
];

/// Adds the `/__mock/pay` endpoints.
pub(crate) fn routes(route: Route) -> Route {
    route
        .at("/__mock/pay", get(report))
        .at("/__mock/pay/merchants", get(merchants))
        .at("/__mock/pay/keys", get(keys))
        .at("/__mock/pay/signing", post(set_signing))
        .at("/__mock/pay/red-packets/:billno/receive", post(receive))
        .at("/__mock/pay/transfer-bills/:no/confirm", post(confirm))
        .at("/__mock/pay/transfer-bills/:no/decline", post(decline))
        .at("/__mock/pay/transfer-bills/:no/fail", post(fail))
        .at("/__mock/pay/notifications", get(notifications))
        .at("/__mock/pay/notifications/run", post(run_notifications))
        .at("/__mock/pay/duplicate-notifications", post(duplicates))
}

/// `?mch_id=…`, optional.
#[derive(Debug, Default, Deserialize)]
struct MerchantQuery {
    mch_id: Option<String>,
}

impl MerchantQuery {
    /// The merchant asked about: the one named, or the default one.
    fn merchant(&self, mock: &MockWechat) -> Result<String, UnknownMerchant> {
        match &self.mch_id {
            Some(id) if mock.merchant_ids().contains(id) => Ok(id.clone()),
            Some(id) => Err(UnknownMerchant(id.clone())),
            None => Ok(mock.pay_config().mch_id),
        }
    }
}

fn bad(status: StatusCode, message: &str) -> Response {
    Json(json!({ "error": message })).with_status(status).into_response()
}

fn unknown(error: &UnknownMerchant) -> Response {
    bad(StatusCode::NOT_FOUND, &error.to_string())
}

/// A step refused: 404 when the merchant named is unknown, 409 otherwise (no such bill, wrong state).
fn refused(mock: &MockWechat, query: &MerchantQuery, error: &str) -> Response {
    match query.merchant(mock) {
        Err(unknown_merchant) => unknown(&unknown_merchant),
        Ok(_) => bad(StatusCode::CONFLICT, error),
    }
}

#[handler]
fn report(Query(query): Query<MerchantQuery>, Data(mock): Data<&MockWechat>) -> Response {
    let report = query.merchant(mock).and_then(|mch_id| {
        Ok(PayReport { balance_fen: mock.pay_balance_fen_of(&mch_id)?, payments: mock.payments_of(&mch_id)?, mch_id })
    });
    match report {
        Ok(report) => Json(report).into_response(),
        Err(error) => unknown(&error),
    }
}

#[handler]
fn merchants(Data(mock): Data<&MockWechat>) -> Json<Value> {
    let list: Vec<Value> = mock
        .merchant_ids()
        .into_iter()
        .map(|mch_id| {
            json!({
                "balance_fen": mock.pay_balance_fen_of(&mch_id).unwrap_or_default(),
                "signing": mock.pay_signing_of(&mch_id).map(PaySigning::as_str).unwrap_or_default(),
                "mch_id": mch_id,
            })
        })
        .collect();
    Json(json!(list))
}

#[handler]
fn keys(Query(query): Query<MerchantQuery>, Data(mock): Data<&MockWechat>) -> Response {
    let found = query.merchant(mock).and_then(|id| Ok((mock.pay_config_of(&id)?, mock.pay_signing_of(&id)?)));
    let (config, signing) = match found {
        Ok(found) => found,
        Err(error) => return unknown(&error),
    };
    let merchant_private = MERCHANT_KEY_PAIRS
        .iter()
        .find(|(_, public)| *public == config.merchant_public_key_pem)
        .map_or("", |(private, _)| private);
    let wechatpay_public = WECHATPAY_KEY_PAIRS
        .iter()
        .find(|(private, _)| *private == config.wechatpay_private_key_pem)
        .map_or("", |(_, public)| public);
    Json(json!({
        "mch_id": config.mch_id,
        "merchant_cert_serial": config.merchant_cert_serial,
        "merchant_private_key_pem": merchant_private,
        "wechatpay_public_key_id": config.wechatpay_public_key_id,
        "wechatpay_public_key_pem": wechatpay_public,
        "signing": signing.as_str(),
        "platform_certificates": config.platform_certificates.iter().map(|c| json!({
            "serial_no": c.serial_no,
            "certificate_pem": c.certificate_pem,
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}

#[handler]
async fn set_signing(Query(query): Query<MerchantQuery>, body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let mch_id = match query.merchant(mock) {
        Ok(id) => id,
        Err(error) => return unknown(&error),
    };
    let bytes = body.into_bytes().await.unwrap_or_default();
    let signing = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("signing").and_then(Value::as_str).and_then(PaySigning::parse));
    match signing {
        Some(signing) => match mock.set_pay_signing_of(&mch_id, signing) {
            Ok(()) => Json(json!({ "signing": signing.as_str() })).into_response(),
            Err(error) => unknown(&error),
        },
        None => bad(
            StatusCode::BAD_REQUEST,
            "expected {\"signing\": \"public_key\" | \"platform_certificate\" | \"migration\"}",
        ),
    }
}

#[handler]
fn receive(Path(billno): Path<String>, Query(query): Query<MerchantQuery>, Data(mock): Data<&MockWechat>) -> Response {
    let result = match &query.mch_id {
        Some(mch_id) => mock.receive_red_packet_of(mch_id, &billno),
        None => mock.receive_red_packet(&billno),
    };
    match result {
        Ok(p) => Json(p).into_response(),
        Err(e) => refused(mock, &query, &e),
    }
}

/// How the user ends a waiting transfer bill.
#[derive(Clone, Copy)]
enum Ending {
    Confirm,
    Decline,
    Fail,
}

async fn end_transfer(mock: &MockWechat, query: &MerchantQuery, no: &str, ending: Ending) -> Response {
    const FAIL_REASON: &str = "ACCOUNT_FROZEN";
    let result = match (&query.mch_id, ending) {
        (None, Ending::Confirm) => mock.confirm_transfer(no),
        (None, Ending::Decline) => mock.decline_transfer(no),
        (None, Ending::Fail) => mock.fail_transfer(no, FAIL_REASON),
        (Some(id), Ending::Confirm) => mock.confirm_transfer_of(id, no),
        (Some(id), Ending::Decline) => mock.decline_transfer_of(id, no),
        (Some(id), Ending::Fail) => mock.fail_transfer_of(id, no, FAIL_REASON),
    };
    finished(mock, query, result).await
}

async fn finished(mock: &MockWechat, query: &MerchantQuery, result: Result<Payment, String>) -> Response {
    match result {
        Ok(p) => {
            mock.deliver_due_notifications().await;
            Json(p).into_response()
        }
        Err(e) => refused(mock, query, &e),
    }
}

#[handler]
async fn confirm(
    Path(no): Path<String>,
    Query(query): Query<MerchantQuery>,
    Data(mock): Data<&MockWechat>,
) -> Response {
    end_transfer(mock, &query, &no, Ending::Confirm).await
}

#[handler]
async fn decline(
    Path(no): Path<String>,
    Query(query): Query<MerchantQuery>,
    Data(mock): Data<&MockWechat>,
) -> Response {
    end_transfer(mock, &query, &no, Ending::Decline).await
}

#[handler]
async fn fail(Path(no): Path<String>, Query(query): Query<MerchantQuery>, Data(mock): Data<&MockWechat>) -> Response {
    end_transfer(mock, &query, &no, Ending::Fail).await
}

#[handler]
fn notifications(Query(query): Query<MerchantQuery>, Data(mock): Data<&MockWechat>) -> Response {
    let found: Result<Vec<PayNotification>, UnknownMerchant> =
        query.merchant(mock).and_then(|id| mock.pay_notifications_of(&id));
    match found {
        Ok(list) => Json(list).into_response(),
        Err(error) => unknown(&error),
    }
}

#[handler]
async fn run_notifications(Data(mock): Data<&MockWechat>) -> Json<Value> {
    Json(json!({ "delivered": mock.deliver_due_notifications().await }))
}

#[handler]
async fn duplicates(body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let bytes = body.into_bytes().await.unwrap_or_default();
    match serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v.get("extra").and_then(Value::as_u64)) {
        Some(extra) => {
            mock.set_duplicate_notifications(u32::try_from(extra).unwrap_or(u32::MAX));
            Json(json!({ "extra": extra })).into_response()
        }
        None => bad(StatusCode::BAD_REQUEST, "expected {\"extra\": n}"),
    }
}
