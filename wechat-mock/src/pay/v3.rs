//! APIv3 merchant transfer (商家转账, 2025): create, query by `out_bill_no`, cancel. Requests must
//! carry a valid `Authorization: WECHATPAY2-SHA256-RSA2048 …` whose `mchid` names the merchant
//! (one the mock does not know: 400 `MCH_NOT_EXISTS`, see [`super::merchants`]), signed with that
//! merchant's key and naming its certificate serial (else 401 `SIGN_ERROR`); every answer is
//! signed (`Wechatpay-*` headers over the raw body) with that merchant's WeChat Pay public key or
//! platform certificate, as it signs ([`super::PaySigning`]). Bills are the merchant's: another
//! merchant's `out_bill_no` is 404 `NOT_FOUND`.

use std::collections::BTreeMap;

use poem::{
    handler,
    http::StatusCode,
    web::{Data, Path},
    Body, IntoResponse, Request, Response,
};
use serde_json::{json, Value};

use super::merchants::DEFAULT_MERCHANT;
use super::sign::{nonce, rsa_sign, rsa_verify, v3_request_message, v3_response_message, Authorization};
use super::store::{rfc3339_beijing, PayChannel, PayStore, Payment, PaymentStatus};
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
pub(crate) fn sign_error(method: &str, url: &str, message: &str, issue: &str) -> V3Error {
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

impl PayStore {
    /// Checks a v3 request's `Authorization` (already found to name this merchant) against this
    /// merchant's certificate serial and public key, at `now` (Unix seconds).
    pub(crate) fn verify_v3(
        &self,
        now: i64,
        method: &str,
        url: &str,
        auth: &Authorization,
        body: &str,
    ) -> Result<(), V3Error> {
        if auth.mch_id != self.config.mch_id {
            return Err(sign_error(method, url, "商户号与签名信息不匹配", "mchid mismatch"));
        }
        if !auth.serial_no.eq_ignore_ascii_case(&self.config.merchant_cert_serial) {
            return Err(sign_error(
                method,
                url,
                "商户证书序列号有误。请使用签名私钥匹配的证书序列号",
                "serial_no mismatch",
            ));
        }
        match auth.timestamp.parse::<i64>() {
            Ok(ts) if (now - ts).abs() <= TIMESTAMP_WINDOW_SECS => {}
            _ => return Err(sign_error(method, url, "错误的签名，验签失败", "timestamp expired")),
        }
        let message = v3_request_message(method, url, &auth.timestamp, &auth.nonce_str, body);
        let ok = self.merchant_key.as_ref().is_some_and(|key| rsa_verify(key, &message, &auth.signature));
        if ok {
            Ok(())
        } else {
            Err(sign_error(method, url, "错误的签名，验签失败", "sign not match"))
        }
    }

    /// Cancels bills that waited too long for the user (mock clock, `now_ms` in Unix ms).
    pub(crate) fn expire_transfer_bills(&mut self, now_ms: i64) {
        let now = now_ms.div_euclid(1000);
        let due: Vec<String> = self
            .payments
            .values()
            .filter(|p| p.channel == PayChannel::TransferBill && p.status == PaymentStatus::WaitUserConfirm)
            .filter(|p| now - p.created_at >= USER_CONFIRM_TIMEOUT_SECS)
            .map(|p| p.bill_no.clone())
            .collect();
        for bill in due {
            let _ = self.finish_transfer(now_ms, &bill, PaymentStatus::Cancelled, None);
        }
    }

    /// Moves a waiting bill to a final state, returns the money if it was not paid, and queues the
    /// notification.
    pub(crate) fn finish_transfer(
        &mut self,
        now_ms: i64,
        out_bill_no: &str,
        to: PaymentStatus,
        fail_reason: Option<String>,
    ) -> Result<Payment, String> {
        let now = now_ms.div_euclid(1000);
        let payment = self
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
            self.credit_back(&payment);
        }
        self.queue_notification(now_ms, &payment);
        Ok(payment)
    }

    /// Signs a v3 answer with the key this merchant signs with at `now` (Unix seconds), given the
    /// request's `Wechatpay-Serial` (see [`super::PaySigning`]).
    pub(crate) fn signed_v3_answer(
        &self,
        now: i64,
        status: StatusCode,
        body: &Value,
        requested_serial: Option<&str>,
    ) -> Response {
        let text = body.to_string();
        let timestamp = now.to_string();
        let nonce = nonce(32);
        let (serial, signature) = match self.signing_key(requested_serial, now) {
            Some((serial, key)) => (serial, rsa_sign(key, &v3_response_message(&timestamp, &nonce, &text))),
            None => (self.config.wechatpay_public_key_id.clone(), String::new()),
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

impl MockState {
    /// Signs a v3 answer to a request with this `Authorization` header, as though the request named
    /// no key in `Wechatpay-Serial`: with the key of the merchant it names, or the default
    /// merchant's (see [`super::merchants`]).
    pub(crate) fn signed_v3_response(&self, authorization: Option<&str>, status: StatusCode, body: &Value) -> Response {
        let now = self.clock.now_ms().div_euclid(1000);
        self.pay[self.pay.answering(authorization)].signed_v3_answer(now, status, body, None)
    }

    fn create_transfer(&mut self, merchant: usize, body: &str) -> Result<Value, V3Error> {
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
        let limits = self.pay[merchant].config.limits.clone();
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
        if let Some(existing) = self.pay[merchant].get(PayChannel::TransferBill, &out_bill_no) {
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
        let now = self.clock.now_ms().div_euclid(1000);
        let store = &mut self.pay[merchant];
        if store.balance_fen < amount {
            return Err(v3_err(StatusCode::FORBIDDEN, "NOT_ENOUGH", "商户运营账户资金不足"));
        }
        let serial = store.next_serial();
        let notify_url =
            Some(text("notify_url")).filter(|url| !url.is_empty()).or_else(|| store.config.notify_url.clone());
        let payment = Payment {
            mch_id: store.config.mch_id.clone(),
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
        store.debit(&payment);
        store.insert(payment);
        Ok(answer)
    }
}

impl PayStore {
    fn query_transfer(&mut self, now_ms: i64, out_bill_no: &str) -> Result<Value, V3Error> {
        self.expire_transfer_bills(now_ms);
        let p = self
            .get(PayChannel::TransferBill, out_bill_no)
            .ok_or_else(|| v3_err(StatusCode::NOT_FOUND, "NOT_FOUND", "记录不存在"))?;
        let mut answer = json!({
            "mch_id": p.mch_id,
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

    fn cancel_transfer(&mut self, now_ms: i64, out_bill_no: &str) -> Result<Value, V3Error> {
        self.expire_transfer_bills(now_ms);
        let p = self
            .get(PayChannel::TransferBill, out_bill_no)
            .ok_or_else(|| v3_err(StatusCode::NOT_FOUND, "NOT_FOUND", "记录不存在"))?;
        if p.status != PaymentStatus::WaitUserConfirm {
            return Err(v3_err(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "当前单据状态不支持撤销"));
        }
        // WeChat answers CANCELING; the mock completes the cancellation at once.
        let p = self
            .finish_transfer(now_ms, out_bill_no, PaymentStatus::Cancelled, None)
            .map_err(|e| v3_err(StatusCode::BAD_REQUEST, "INVALID_REQUEST", &e))?;
        Ok(json!({
            "out_bill_no": p.bill_no,
            "transfer_bill_no": p.wechat_no,
            "state": "CANCELING",
            "update_time": rfc3339_beijing(p.updated_at),
        }))
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

/// Answers a v3 request: finds the merchant its `Authorization` names, verifies the request with
/// that merchant's keys, runs `run` for that merchant (its index among [`super::merchants`]) and
/// signs the answer with the merchant's WeChat Pay key.
pub(crate) async fn serve(
    mock: &MockWechat,
    req: &Request,
    body: Body,
    run: impl FnOnce(&mut MockState, usize) -> Result<Value, V3Error>,
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
        let now = state.clock.now_ms().div_euclid(1000);
        let method = req.method().as_str();
        let merchant = state.pay.v3_merchant(method, &url, authorization.as_deref());
        let answering = merchant.as_ref().map_or(DEFAULT_MERCHANT, |(m, _)| *m);
        let result = merchant.and_then(|(m, auth)| {
            state.pay[m].verify_v3(now, method, &url, &auth, &text)?;
            run(&mut state, m)
        });
        let requested = requested_serial.as_deref();
        let store = &state.pay[answering];
        let response = match result {
            Ok(body) => store.signed_v3_answer(now, StatusCode::OK, &body, requested),
            Err(error) => store.signed_v3_answer(now, error.status, &error.body, requested),
        };
        let notify =
            state.pay.iter().flat_map(|s| &s.notifications).any(|n| n.attempts == 0 && n.next_attempt_ms.is_some());
        (response, notify)
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
    serve(mock, req, Body::from(text_body), move |state, m| state.create_transfer(m, &body_text)).await
}

/// `GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}`.
#[handler]
pub(crate) async fn query(
    req: &Request,
    Path(out_bill_no): Path<String>,
    body: Body,
    Data(mock): Data<&MockWechat>,
) -> Response {
    serve(mock, req, body, move |state, m| {
        let now_ms = state.clock.now_ms();
        state.pay[m].query_transfer(now_ms, &out_bill_no)
    })
    .await
}

/// `POST /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}/cancel`.
#[handler]
pub(crate) async fn cancel(
    req: &Request,
    Path(out_bill_no): Path<String>,
    body: Body,
    Data(mock): Data<&MockWechat>,
) -> Response {
    serve(mock, req, body, move |state, m| {
        let now_ms = state.clock.now_ms();
        state.pay[m].cancel_transfer(now_ms, &out_bill_no)
    })
    .await
}
