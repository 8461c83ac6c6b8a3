//! WeChat Pay payouts as linli uses them, written independently of linli's client:
//! - [`v2`]: `POST /mmpaymkttransfers/sendredpack`, `/gethbinfo`, `/promotion/transfers`,
//!   `/gettransferinfo` (XML, MD5-signed with the merchant's APIv2 key);
//! - [`v3`]: `POST /v3/fund-app/mch-transfer/transfer-bills`, `GET …/out-bill-no/{no}`,
//!   `POST …/out-bill-no/{no}/cancel` (JSON, SHA256withRSA both ways);
//! - [`notify`]: transfer notifications, encrypted, signed, retried on the mock clock;
//! - [`certificates`]: `GET /v3/certificates` (the platform certificates, sealed under the APIv3
//!   key) and which key signs answers and notifications: the mock plays a merchant with the WeChat
//!   Pay public key, with platform certificates, or migrating between them ([`PaySigning`]);
//! - [`bill`]: `GET /v3/bill/fundflowbill` and `GET /v3/billdownload/file`, the daily fund-flow bill
//!   (资金账单) of the merchant's balance movements (JSON answer signed, file not, as WeChat).
//!
//! The merchant and the keys come from [`PayConfig`] (default: [`MCH_ID`] with the test keys under
//! `src/pay/testdata/`, which are public). WeChat requires the merchant's client TLS certificate
//! on the four v2 calls: an HTTPS mock ([`crate::start_tls`]) checks it against the mock CA of
//! [`tls`] and answers `CA_ERROR` without one; a plain-HTTP mock ([`crate::start`]) cannot, and
//! does not.
//!
//! Control API: `GET /__mock/pay` (balance and ledger), `GET /__mock/pay/keys` (public key
//! material and ids), `POST /__mock/pay/signing {"signing": "public_key" | "platform_certificate" |
//! "migration"}`, `POST /__mock/pay/red-packets/{mch_billno}/receive`,
//! `POST /__mock/pay/transfer-bills/{out_bill_no}/confirm`, `…/decline`, `…/fail`,
//! `GET /__mock/pay/notifications`, `POST /__mock/pay/notifications/run`,
//! `POST /__mock/pay/duplicate-notifications {"extra": n}`.

pub mod bill;
pub mod certificates;
pub mod config;
pub mod notify;
pub mod sign;
pub(crate) mod store;
pub mod tls;
pub mod v2;
pub mod v3;

use poem::{
    get, handler,
    http::StatusCode,
    post,
    web::{Data, Json, Path},
    Body, IntoResponse, Response, Route,
};
use serde::Serialize;
use serde_json::json;

pub use bill::BillError;
pub use config::{
    PayConfig, PayLimits, PaySigning, PlatformCertificate, API_KEY_V2, API_V3_KEY, MCH_ID, MERCHANT_CERT_SERIAL,
    MERCHANT_PRIVATE_KEY_PEM, MERCHANT_PUBLIC_KEY_PEM, PLATFORM_CERT_PEM, PLATFORM_CERT_SERIAL, SECOND_API_KEY_V2,
    SECOND_API_V3_KEY, SECOND_MCH_ID, SECOND_MERCHANT_CERT_SERIAL, SECOND_MERCHANT_PRIVATE_KEY_PEM,
    SECOND_MERCHANT_PUBLIC_KEY_PEM, SECOND_PLATFORM_CERT_PEM, SECOND_PLATFORM_CERT_SERIAL,
    SECOND_WECHATPAY_PUBLIC_KEY_ID, SECOND_WECHATPAY_PUBLIC_KEY_PEM, WECHATPAY_PUBLIC_KEY_ID, WECHATPAY_PUBLIC_KEY_PEM,
};
pub use store::{PayChannel, PayNotification, Payment, PaymentStatus};

use crate::state::MockWechat;

/// What `GET /__mock/pay` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayReport {
    /// Merchant balance, fen.
    pub balance_fen: i64,
    /// Every payment, oldest first.
    pub payments: Vec<Payment>,
}

/// Adds the WeChat Pay endpoints and their control API.
pub(crate) fn routes(route: Route) -> Route {
    route
        .at("/mmpaymkttransfers/sendredpack", post(v2::sendredpack))
        .at("/mmpaymkttransfers/gethbinfo", post(v2::gethbinfo))
        .at("/mmpaymkttransfers/promotion/transfers", post(v2::transfers))
        .at("/mmpaymkttransfers/gettransferinfo", post(v2::gettransferinfo))
        .at(v3::TRANSFER_BILLS_PATH, post(v3::create))
        .at("/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/:out_bill_no", get(v3::query))
        .at("/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/:out_bill_no/cancel", post(v3::cancel))
        .at(certificates::CERTIFICATES_PATH, get(certificates::certificates))
        .at(bill::FUND_FLOW_BILL_PATH, get(bill::fund_flow_bill))
        .at(bill::BILL_DOWNLOAD_PATH, get(bill::download))
        .at("/__mock/pay", get(report))
        .at("/__mock/pay/keys", get(keys))
        .at("/__mock/pay/signing", post(certificates::set_signing))
        .at("/__mock/pay/red-packets/:billno/receive", post(receive))
        .at("/__mock/pay/transfer-bills/:no/confirm", post(confirm))
        .at("/__mock/pay/transfer-bills/:no/decline", post(decline))
        .at("/__mock/pay/transfer-bills/:no/fail", post(fail))
        .at("/__mock/pay/notifications", get(notifications))
        .at("/__mock/pay/notifications/run", post(run_notifications))
        .at("/__mock/pay/duplicate-notifications", post(duplicates))
}

impl MockWechat {
    /// The merchant configuration.
    pub fn pay_config(&self) -> PayConfig {
        self.lock().pay.config.clone()
    }

    /// The merchant's available balance, fen.
    pub fn pay_balance_fen(&self) -> i64 {
        self.lock().pay.balance_fen
    }

    /// Sets the merchant's balance (e.g. to provoke `NOTENOUGH`). The fund-flow bill shows the
    /// difference as a 收入 `充值` line (raised) or a 支出 `提现` line (lowered), with no 业务凭证号.
    pub fn set_pay_balance_fen(&self, fen: i64) {
        let mut state = self.lock();
        let now = state.clock.now_ms().div_euclid(1000);
        state.pay.set_balance(now, fen);
    }

    /// The ledger, oldest first (unopened red packets older than 24 h shown refunded, waiting
    /// transfer bills older than 24 h cancelled).
    pub fn payments(&self) -> Vec<Payment> {
        let mut state = self.lock();
        state.settle_red_packets();
        state.expire_transfer_bills();
        state.pay.in_order()
    }

    /// One payment by channel and merchant number.
    pub fn payment(&self, channel: PayChannel, bill_no: &str) -> Option<Payment> {
        self.payments().into_iter().find(|p| p.channel == channel && p.bill_no == bill_no)
    }

    /// Fen paid (and not returned) to `openid` over every channel.
    pub fn paid_total(&self, openid: &str) -> i64 {
        self.payments().iter().filter(|p| p.openid == openid && p.status.money_out()).map(|p| p.amount_fen).sum()
    }

    /// The user opens a red packet: `SENT` → `RECEIVED`.
    pub fn receive_red_packet(&self, mch_billno: &str) -> Result<Payment, String> {
        let mut state = self.lock();
        state.settle_red_packets();
        let now = state.clock.now_ms().div_euclid(1000);
        let p = state
            .pay
            .get_mut(PayChannel::RedPacket, mch_billno)
            .ok_or_else(|| format!("no red packet {mch_billno}"))?;
        if p.status != PaymentStatus::Sent {
            return Err(format!("red packet {mch_billno} is {}", p.status.as_str()));
        }
        p.status = PaymentStatus::Received;
        p.updated_at = now;
        Ok(p.clone())
    }

    /// `package_info` of a waiting transfer bill (what the mini-program passes to
    /// `wx.requestMerchantTransfer`).
    pub fn transfer_package_info(&self, out_bill_no: &str) -> Option<String> {
        self.lock().pay.get(PayChannel::TransferBill, out_bill_no).and_then(|p| p.package_info.clone())
    }

    /// The resident confirms in WeChat: `WAIT_USER_CONFIRM` → `SUCCESS`, notification queued (and
    /// a first delivery attempted if a runtime is present — call [`Self::deliver_due_notifications`]
    /// to wait for it).
    pub fn confirm_transfer(&self, out_bill_no: &str) -> Result<Payment, String> {
        self.finish(out_bill_no, PaymentStatus::Success, None)
    }

    /// The resident declines (or lets the page lapse): `WAIT_USER_CONFIRM` → `CANCELLED`, money back.
    pub fn decline_transfer(&self, out_bill_no: &str) -> Result<Payment, String> {
        self.finish(out_bill_no, PaymentStatus::Cancelled, None)
    }

    /// WeChat fails the bill (e.g. `reason` = "ACCOUNT_FROZEN"): → `FAIL`, money back.
    pub fn fail_transfer(&self, out_bill_no: &str, reason: &str) -> Result<Payment, String> {
        self.finish(out_bill_no, PaymentStatus::Fail, Some(reason.to_owned()))
    }

    fn finish(&self, out_bill_no: &str, to: PaymentStatus, reason: Option<String>) -> Result<Payment, String> {
        let mut state = self.lock();
        state.expire_transfer_bills();
        state.finish_transfer(out_bill_no, to, reason)
    }
}

fn bad(status: StatusCode, message: &str) -> Response {
    Json(json!({ "error": message })).with_status(status).into_response()
}

#[handler]
fn report(Data(mock): Data<&MockWechat>) -> Json<PayReport> {
    let payments = mock.payments();
    Json(PayReport { balance_fen: mock.pay_balance_fen(), payments })
}

#[handler]
fn keys(Data(mock): Data<&MockWechat>) -> Json<serde_json::Value> {
    let config = mock.pay_config();
    Json(json!({
        "mch_id": config.mch_id,
        "merchant_cert_serial": config.merchant_cert_serial,
        "merchant_private_key_pem": if config.merchant_public_key_pem == MERCHANT_PUBLIC_KEY_PEM { MERCHANT_PRIVATE_KEY_PEM } else { "" },
        "wechatpay_public_key_id": config.wechatpay_public_key_id,
        "wechatpay_public_key_pem": if config.wechatpay_private_key_pem == config::WECHATPAY_PRIVATE_KEY_PEM { WECHATPAY_PUBLIC_KEY_PEM } else { "" },
        "signing": mock.pay_signing().as_str(),
        "platform_certificates": config.platform_certificates.iter().map(|c| json!({
            "serial_no": c.serial_no,
            "certificate_pem": c.certificate_pem,
        })).collect::<Vec<_>>(),
    }))
}

#[handler]
fn receive(Path(billno): Path<String>, Data(mock): Data<&MockWechat>) -> Response {
    match mock.receive_red_packet(&billno) {
        Ok(p) => Json(p).into_response(),
        Err(e) => bad(StatusCode::CONFLICT, &e),
    }
}

async fn finished(mock: &MockWechat, result: Result<Payment, String>) -> Response {
    match result {
        Ok(p) => {
            mock.deliver_due_notifications().await;
            Json(p).into_response()
        }
        Err(e) => bad(StatusCode::CONFLICT, &e),
    }
}

#[handler]
async fn confirm(Path(no): Path<String>, Data(mock): Data<&MockWechat>) -> Response {
    finished(mock, mock.confirm_transfer(&no)).await
}

#[handler]
async fn decline(Path(no): Path<String>, Data(mock): Data<&MockWechat>) -> Response {
    finished(mock, mock.decline_transfer(&no)).await
}

#[handler]
async fn fail(Path(no): Path<String>, Data(mock): Data<&MockWechat>) -> Response {
    finished(mock, mock.fail_transfer(&no, "ACCOUNT_FROZEN")).await
}

#[handler]
fn notifications(Data(mock): Data<&MockWechat>) -> Json<Vec<PayNotification>> {
    Json(mock.pay_notifications())
}

#[handler]
async fn run_notifications(Data(mock): Data<&MockWechat>) -> Json<serde_json::Value> {
    Json(json!({ "delivered": mock.deliver_due_notifications().await }))
}

#[handler]
async fn duplicates(body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let bytes = body.into_bytes().await.unwrap_or_default();
    match serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("extra").and_then(serde_json::Value::as_u64))
    {
        Some(extra) => {
            mock.set_duplicate_notifications(u32::try_from(extra).unwrap_or(u32::MAX));
            Json(json!({ "extra": extra })).into_response()
        }
        None => bad(StatusCode::BAD_REQUEST, "expected {\"extra\": n}"),
    }
}
