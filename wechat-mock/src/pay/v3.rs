//! APIv3 merchant transfer (商家转账, 2025): create, query by `out_bill_no`, cancel. Requests must
//! carry a valid `Authorization: WECHATPAY2-SHA256-RSA2048 …` (else 401 `SIGN_ERROR`); every
//! answer is signed (`Wechatpay-*` headers over the raw body) with the WeChat Pay public key or a
//! platform certificate, as the merchant played signs ([`super::PaySigning`]).

use std::collections::BTreeMap;

use poem::{
    handler,
    http::StatusCode,
    web::{Data, Path},
    Body, IntoResponse, Request, Response,
};
use serde_json::{json, Value};

use super::sign::{nonce, parse_authorization, rsa_sign, rsa_verify, v3_request_message, v3_response_message};
use super::store::{rfc3339_beijing, PayChannel, Payment, PaymentStatus};
use crate::state::{MockState, MockWechat};

/// How far a request's timestamp may be from the mock clock (WeChat: 5 minutes).
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;
/// How long a bill waits for the user before it is cancelled (mock choice; WeChat's is undocumented).
pub const USER_CONFIRM_TIMEOUT_SECS: i64 = 24 * 3600;
/// The create path.
pub const TRANSFER_BILLS_PATH: &str = "/v3/fund-app/mch-transfer/transfer-bills";
/// Scene ids the mock accepts.
pub const TRANSFER_SCENE_IDS: &[&str] = &["1000", "1002", "1004", "1005", "1009", "1010", "1011", "1013"];

/// A v3 error answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct V3Error {
    pub status: StatusCode,
    pub body: Value,
}

pub(crate) fn v3_err(status: StatusCode, code: &str, message: &str) -> V3Error {
    V3Error { status, body: json!({ "code": code, "message": message }) }
}

pub(crate) fn param_error(message: &str) -> V3Error {
    v3_err(StatusCode::BAD_REQUEST, "PARAM_ERROR", message)
}

/// The shape of WeChat's 401 for a bad signature (wechatpay-go#235).
fn sign_error(method: &str, url: &str, message: &str, issue: &str) -> V3Error {
    V3Error {
        status: StatusCode::UNAUTHORIZED,
        body: json!({
            "code": "SIGN_ERROR",
            "message": message,
            "detail": {
                "detail": { "issue": issue },
                "field": "signature",
                "location": "authorization",
                "sign_information": { "method": method, "url": url }
            }
        }),
    }
}

/// An injected pay error on a v3 path.
pub(crate) fn fault_error(code: &str) -> (StatusCode, Value) {
    let (status, message) = match code {
        "NOT_FOUND" => (StatusCode::NOT_FOUND, "记录不存在"),
        "SYSTEM_ERROR" | "SYSTEMERROR" => (StatusCode::INTERNAL_SERVER_ERROR, "系统错误"),
        "FREQUENCY_LIMITED" => (StatusCode::TOO_MANY_REQUESTS, "频率超限"),
        "NOT_ENOUGH" => (StatusCode::FORBIDDEN, "资金不足"),
        _ => (StatusCode::BAD_REQUEST, code),
    };
    (status, json!({ "code": code, "message": message }))
}

impl MockState {
    /// Checks the `Authorization` header of a v3 request.
    pub(crate) fn verify_v3(
        &self,
        method: &str,
        url: &str,
        authorization: Option<&str>,
        body: &str,
    ) -> Result<(), V3Error> {
        let config = &self.pay.config;
        let Some(auth) = authorization.and_then(parse_authorization) else {
            return Err(sign_error(
                method,
                url,
                "Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》",
                "authorization malformed",
            ));
        };
        if auth.mch_id != config.mch_id {
            return Err(sign_error(method, url, "商户号与签名信息不匹配", "mchid mismatch"));
        }
        if !auth.serial_no.eq_ignore_ascii_case(&config.merchant_cert_serial) {
            return Err(sign_error(
                method,
                url,
                "商户证书序列号有误。请使用签名私钥匹配的证书序列号",
                "serial_no mismatch",
            ));
        }
        let now = self.clock.now_ms().div_euclid(1000);
        match auth.timestamp.parse::<i64>() {
            Ok(ts) if (now - ts).abs() <= TIMESTAMP_WINDOW_SECS => {}
            _ => return Err(sign_error(method, url, "错误的签名，验签失败", "timestamp expired")),
        }
        let message = v3_request_message(method, url, &auth.timestamp, &auth.nonce_str, body);
        let ok = self.pay.merchant_key.as_ref().is_some_and(|key| rsa_verify(key, &message, &auth.signature));
        if ok {
            Ok(())
        } else {
            Err(sign_error(method, url, "错误的签名，验签失败", "sign not match"))
        }
    }

    /// Cancels bills that waited too long for the user (mock clock).
    pub(crate) fn expire_transfer_bills(&mut self) {
        let now = self.clock.now_ms().div_euclid(1000);
        let due: Vec<String> = self
            .pay
            .payments
            .values()
            .filter(|p| p.channel == PayChannel::TransferBill && p.status == PaymentStatus::WaitUserConfirm)
            .filter(|p| now - p.created_at >= USER_CONFIRM_TIMEOUT_SECS)
            .map(|p| p.bill_no.clone())
            .collect();
        for bill in due {
            let _ = self.finish_transfer(&bill, PaymentStatus::Cancelled, None);
        }
    }

    /// Moves a waiting bill to a final state, returns the money if it was not paid, and queues the
    /// notification.
    pub(crate) fn finish_transfer(
        &mut self,
        out_bill_no: &str,
        to: PaymentStatus,
        fail_reason: Option<String>,
    ) -> Result<Payment, String> {
        let now = self.clock.now_ms().div_euclid(1000);
        let payment = self
            .pay
            .get_mut(PayChannel::TransferBill, out_bill_no)
            .ok_or_else(|| format!("no transfer bill {out_bill_no}"))?;
        if payment.status != PaymentStatus::WaitUserConfirm {
            return Err(format!("transfer bill {out_bill_no} is {}, not WAIT_USER_CONFIRM", payment.status.as_str()));
        }
        payment.status = to;
        payment.updated_at = now;
        payment.fail_reason = fail_reason;
        let payment = payment.clone();
        if !to.money_out() {
            self.pay.credit_back(&payment);
        }
        self.queue_notification(&payment);
        Ok(payment)
    }

    fn create_transfer(&mut self, body: &str) -> Result<Value, V3Error> {
        let req: Value = serde_json::from_str(body).map_err(|_| param_error("请求体格式错误，应为JSON"))?;
        let text = |name: &str| req.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        for name in ["appid", "out_bill_no", "transfer_scene_id", "openid", "transfer_remark", "user_recv_perception"] {
            if text(name).is_empty() {
                return Err(param_error(&format!(
                    "输入源“/body/{name}”映射到值字段“{name}”字符串规则校验失败，字段必填"
                )));
            }
        }
        let Some(amount) = req.get("transfer_amount").and_then(Value::as_i64) else {
            return Err(param_error("transfer_amount字段必填，且为整数（单位：分）"));
        };
        let out_bill_no = text("out_bill_no");
        if out_bill_no.len() > 32 || !out_bill_no.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(param_error("out_bill_no只能由数字、大小写字母组成，长度不超过32"));
        }
        if !TRANSFER_SCENE_IDS.contains(&text("transfer_scene_id").as_str()) {
            return Err(param_error("transfer_scene_id不正确"));
        }
        if text("transfer_remark").chars().count() > 32 {
            return Err(param_error("transfer_remark长度不能超过32个字符"));
        }
        let limits = self.pay.config.limits.clone();
        if amount < limits.transfer_min_fen {
            return Err(param_error(&format!("转账金额不能小于{:.1}元", limits.transfer_min_fen as f64 / 100.0)));
        }
        if amount >= limits.transfer_user_name_from_fen && text("user_name").is_empty() {
            return Err(param_error("转账金额大于等于2000元时，收款用户姓名必填"));
        }
        let appid = text("appid");
        let openid = text("openid");
        let mut request = BTreeMap::new();
        for name in ["appid", "openid", "transfer_scene_id", "transfer_remark", "user_name", "user_recv_perception"] {
            request.insert(name.to_owned(), text(name));
        }
        request.insert("transfer_amount".to_owned(), amount.to_string());
        request.insert(
            "transfer_scene_report_infos".to_owned(),
            req.get("transfer_scene_report_infos").map(Value::to_string).unwrap_or_default(),
        );
        if let Some(existing) = self.pay.get(PayChannel::TransferBill, &out_bill_no) {
            if existing.request != request {
                return Err(v3_err(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    "商户单号已存在，且请求参数与原单不一致",
                ));
            }
            return Ok(create_answer(existing));
        }
        if !self.apps.contains_key(&appid) {
            return Err(v3_err(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "appid与商户号不匹配"));
        }
        if self.users.unionid_of(&appid, &openid).is_none() {
            return Err(param_error("openid与appid不匹配"));
        }
        if self.pay.balance_fen < amount {
            return Err(v3_err(StatusCode::FORBIDDEN, "NOT_ENOUGH", "商户运营账户资金不足"));
        }
        let now = self.clock.now_ms().div_euclid(1000);
        let serial = self.pay.next_serial();
        let notify_url =
            Some(text("notify_url")).filter(|url| !url.is_empty()).or_else(|| self.pay.config.notify_url.clone());
        let payment = Payment {
            channel: PayChannel::TransferBill,
            bill_no: out_bill_no,
            wechat_no: format!("1330000071100999991182020050700{serial:012}"),
            appid,
            openid,
            amount_fen: amount,
            status: PaymentStatus::WaitUserConfirm,
            created_at: now,
            updated_at: now,
            fail_reason: None,
            request,
            notify_url,
            package_info: Some(format!("ABBQO+oYAAABAAAAAAAk+yPr{}", nonce(40))),
        };
        let answer = create_answer(&payment);
        self.pay.debit(&payment);
        self.pay.insert(payment);
        Ok(answer)
    }

    fn query_transfer(&mut self, out_bill_no: &str) -> Result<Value, V3Error> {
        self.expire_transfer_bills();
        let p = self
            .pay
            .get(PayChannel::TransferBill, out_bill_no)
            .ok_or_else(|| v3_err(StatusCode::NOT_FOUND, "NOT_FOUND", "记录不存在"))?;
        let mut answer = json!({
            "mch_id": self.pay.config.mch_id,
            "out_bill_no": p.bill_no,
            "transfer_bill_no": p.wechat_no,
            "appid": p.appid,
            "state": p.status.as_str(),
            "transfer_amount": p.amount_fen,
            "transfer_remark": p.request.get("transfer_remark").cloned().unwrap_or_default(),
            "openid": p.openid,
            "create_time": rfc3339_beijing(p.created_at),
            "update_time": rfc3339_beijing(p.updated_at),
        });
        if let Some(reason) = &p.fail_reason {
            answer["fail_reason"] = json!(reason);
        }
        Ok(answer)
    }

    fn cancel_transfer(&mut self, out_bill_no: &str) -> Result<Value, V3Error> {
        self.expire_transfer_bills();
        let p = self
            .pay
            .get(PayChannel::TransferBill, out_bill_no)
            .ok_or_else(|| v3_err(StatusCode::NOT_FOUND, "NOT_FOUND", "记录不存在"))?;
        if p.status != PaymentStatus::WaitUserConfirm {
            return Err(v3_err(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "当前单据状态不支持撤销"));
        }
        // WeChat answers CANCELING; the mock completes the cancellation at once.
        let p = self
            .finish_transfer(out_bill_no, PaymentStatus::Cancelled, None)
            .map_err(|e| v3_err(StatusCode::BAD_REQUEST, "INVALID_REQUEST", &e))?;
        Ok(json!({
            "out_bill_no": p.bill_no,
            "transfer_bill_no": p.wechat_no,
            "state": "CANCELING",
            "update_time": rfc3339_beijing(p.updated_at),
        }))
    }

    /// Signs a v3 answer as though its request named no key in `Wechatpay-Serial`.
    pub(crate) fn signed_v3_response(&self, status: StatusCode, body: &Value) -> Response {
        self.signed_v3_answer(status, body, None)
    }

    /// Signs a v3 answer with the key the merchant played signs with, given the request's
    /// `Wechatpay-Serial` (see [`super::PaySigning`]).
    pub(crate) fn signed_v3_answer(
        &self,
        status: StatusCode,
        body: &Value,
        requested_serial: Option<&str>,
    ) -> Response {
        let text = body.to_string();
        let now = self.clock.now_ms().div_euclid(1000);
        let timestamp = now.to_string();
        let nonce = nonce(32);
        let (serial, signature) = match self.pay.signing_key(requested_serial, now) {
            Some((serial, key)) => (serial, rsa_sign(key, &v3_response_message(&timestamp, &nonce, &text))),
            None => (self.pay.config.wechatpay_public_key_id.clone(), String::new()),
        };
        Response::builder()
            .status(status)
            .content_type("application/json")
            .header("Wechatpay-Timestamp", timestamp)
            .header("Wechatpay-Nonce", nonce)
            .header("Wechatpay-Signature", signature)
            .header("Wechatpay-Serial", serial)
            .header("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048")
            .header("Request-ID", format!("08{}", super::sign::nonce(30)))
            .body(text)
    }
}

fn create_answer(p: &Payment) -> Value {
    let mut answer = json!({
        "out_bill_no": p.bill_no,
        "transfer_bill_no": p.wechat_no,
        "create_time": rfc3339_beijing(p.created_at),
        "state": p.status.as_str(),
    });
    if p.status == PaymentStatus::WaitUserConfirm {
        answer["package_info"] = json!(p.package_info.clone().unwrap_or_default());
    }
    if let Some(reason) = &p.fail_reason {
        answer["fail_reason"] = json!(reason);
    }
    answer
}

pub(crate) async fn serve(
    mock: &MockWechat,
    req: &Request,
    body: Body,
    run: impl FnOnce(&mut MockState) -> Result<Value, V3Error>,
) -> Response {
    let bytes = body.into_vec().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let url =
        req.uri().path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_else(|| req.uri().path().to_owned());
    let authorization = req.header("Authorization").map(str::to_owned);
    let requested_serial = req.header("Wechatpay-Serial").map(str::to_owned);
    let (response, notify) = {
        let mut state = mock.lock();
        state.record_call(req.uri().path());
        let result = state
            .verify_v3(req.method().as_str(), &url, authorization.as_deref(), &text)
            .and_then(|()| run(&mut state));
        let requested = requested_serial.as_deref();
        let response = match result {
            Ok(body) => state.signed_v3_answer(StatusCode::OK, &body, requested),
            Err(error) => state.signed_v3_answer(error.status, &error.body, requested),
        };
        (response, state.pay.notifications.iter().any(|n| n.attempts == 0 && n.next_attempt_ms.is_some()))
    };
    if notify {
        // A cancellation's notification goes out like WeChat's first attempt: right away.
        let mock = mock.clone();
        tokio::spawn(async move {
            mock.deliver_due_notifications().await;
        });
    }
    response.into_response()
}

/// `POST /v3/fund-app/mch-transfer/transfer-bills`.
#[handler]
pub(crate) async fn create(req: &Request, body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let text_body = body.into_vec().await.unwrap_or_default();
    let body_text = String::from_utf8_lossy(&text_body).into_owned();
    serve(mock, req, Body::from(text_body), move |state| state.create_transfer(&body_text)).await
}

/// `GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}`.
#[handler]
pub(crate) async fn query(
    req: &Request,
    Path(out_bill_no): Path<String>,
    body: Body,
    Data(mock): Data<&MockWechat>,
) -> Response {
    serve(mock, req, body, move |state| state.query_transfer(&out_bill_no)).await
}

/// `POST /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}/cancel`.
#[handler]
pub(crate) async fn cancel(
    req: &Request,
    Path(out_bill_no): Path<String>,
    body: Body,
    Data(mock): Data<&MockWechat>,
) -> Response {
    serve(mock, req, body, move |state| state.cancel_transfer(&out_bill_no)).await
}
