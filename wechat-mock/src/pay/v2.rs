//! APIv2 (XML) payouts: `sendredpack`, `gethbinfo`, `promotion/transfers`, `gettransferinfo`.
//!
//! Order of checks, as WeChat: unreadable XML → `XML_ERROR`; the merchant the request names
//! (`mch_id`, `mchid` for `promotion/transfers`; one the mock does not know → `PARAM_ERROR`
//! 商户号非法, see [`super::merchants`]); signature with that merchant's APIv2 key (MD5 over every
//! non-empty field except `sign` and `sign_type`, `&key=`; these APIs take MD5 only, so a request
//! signed with `sign_type` included or with HMAC-SHA256 fails) → `SIGN_ERROR`; fields → `PARAM_ERROR` /
//! `OPENID_ERROR`; bill-number re-entrancy; limits; balance → `NOTENOUGH`. Answers are
//! `return_code=SUCCESS` + `result_code`/`err_code`/`err_code_des` (the shape of WeChat's answer to
//! a bad signature, WxJava#1034). These four APIs do not sign their answers, so neither does the
//! mock. Every payment, query and limit is the named merchant's: its ledger, its balance.
//!
//! WeChat requires the merchant's client TLS certificate and, before anything else, answers
//! `CA_ERROR` to a call without a valid one. An HTTPS mock ([`crate::start_tls`]) does the same
//! for a certificate not issued by its CA ([`super::tls`]); a plain-HTTP mock has no certificate
//! to check and skips this. (The mock CA issued one merchant certificate only, so the HTTPS mock
//! accepts it from every merchant; WeChat also checks that it is the named merchant's.)

use std::collections::BTreeMap;

use poem::{handler, web::Data, Body, IntoResponse, Request, Response};

use super::merchants::PayMerchants;
use super::sign::{v2_sign, SignType};
use super::store::{beijing_time, PayChannel, PayStore, Payment, PaymentStatus};
use crate::callback::xml::parse_fields;
use crate::clock::beijing_day;
use crate::https::{ClientCert, ClientCerts};
use crate::state::{MockState, MockWechat};

/// How long an unopened red packet waits before it is refunded (WeChat: 24 h).
pub const RED_PACKET_REFUND_AFTER_SECS: i64 = 24 * 3600;

/// A v2 business error: `err_code` and `err_code_des`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V2Error {
    pub code: String,
    pub des: String,
}

fn err(code: &str, des: &str) -> V2Error {
    V2Error { code: code.to_owned(), des: des.to_owned() }
}

/// A v2 answer being built: ordered fields, strings CDATA, numbers plain.
struct Answer {
    out: String,
}

impl Answer {
    fn new() -> Self {
        Self { out: String::from("<xml>\n") }
    }
    fn text(mut self, name: &str, value: &str) -> Self {
        self.out.push_str(&format!("<{name}><![CDATA[{}]]></{name}>\n", value.replace("]]>", "]]]]><![CDATA[>")));
        self
    }
    fn num(mut self, name: &str, value: i64) -> Self {
        self.out.push_str(&format!("<{name}>{value}</{name}>\n"));
        self
    }
    fn raw(mut self, xml: &str) -> Self {
        self.out.push_str(xml);
        self
    }
    fn finish(mut self) -> String {
        self.out.push_str("</xml>");
        self.out
    }
}

/// The answer to a failed business call, echoing the fields WeChat echoes.
fn fail_xml(error: &V2Error, echo: &[(&str, &str)]) -> String {
    let mut answer = Answer::new()
        .text("return_code", "SUCCESS")
        .text("return_msg", &error.des)
        .text("result_code", "FAIL")
        .text("err_code", &error.code)
        .text("err_code_des", &error.des);
    for (name, value) in echo {
        if !value.is_empty() {
            answer = answer.text(name, value);
        }
    }
    answer.finish()
}

/// WeChat's answer to a payout call without a merchant certificate it issued, in the shape
/// merchants have logged it (`return_code` SUCCESS, `return_msg` and `err_code` CA_ERROR; the
/// message quoted in wechatpay-php#40): a business failure, so nothing was done.
fn ca_error_xml() -> String {
    Answer::new()
        .text("return_code", "SUCCESS")
        .text("return_msg", "CA_ERROR")
        .text("result_code", "FAIL")
        .text("err_code", "CA_ERROR")
        .text("err_code_des", "CA证书出错，请登录微信支付商户平台下载证书")
        .finish()
}

/// An injected pay error on a v2 path (see [`crate::Fault::pay_err_code`]).
pub(crate) fn fault_xml(code: &str) -> String {
    let des = match code {
        "SYSTEMERROR" => "系统繁忙，请稍后再试。",
        "NOT_FOUND" => "指定单号数据不存在",
        "PROCESSING" => "请求已受理，请稍后使用原单号查询发放结果",
        "FREQ_LIMIT" => "超过频率限制，请稍后再试。",
        _ => code,
    };
    fail_xml(&err(code, des), &[])
}

fn xml_response(body: String) -> Response {
    body.with_content_type("text/plain; charset=UTF-8").into_response()
}

/// The fields of a request that passed XML and signature checks.
type Fields = BTreeMap<String, String>;

/// The fields of a body, empty if it is not XML.
fn fields_of(body: &str) -> Fields {
    parse_fields(body).map(|xml| xml.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()).unwrap_or_default()
}

/// Parses a v2 request body, finds the merchant its `merchant_field` names and verifies the
/// signature with that merchant's APIv2 key.
fn read_request(merchants: &PayMerchants, body: &str, merchant_field: &str) -> Result<(usize, Fields), V2Error> {
    let xml = parse_fields(body).map_err(|_| err("XML_ERROR", "输入xml参数格式错误"))?;
    let fields: Fields = xml.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let merchant = merchants.v2_merchant(field(&fields, merchant_field))?;
    let given = fields.get("sign").map(String::as_str).unwrap_or_default();
    // sign_type is not part of the signed set of these APIs; they are MD5 only.
    let expected = v2_sign(
        fields.iter().filter(|(k, _)| k.as_str() != "sign_type").map(|(k, v)| (k.as_str(), v.as_str())),
        &merchants[merchant].config.api_key_v2,
        SignType::Md5,
    );
    if given.is_empty() || given != expected {
        return Err(err("SIGN_ERROR", "签名错误"));
    }
    Ok((merchant, fields))
}

fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields.get(name).map(String::as_str).unwrap_or_default()
}

fn require<'a>(fields: &'a Fields, name: &str) -> Result<&'a str, V2Error> {
    let value = field(fields, name);
    if value.is_empty() {
        Err(err("PARAM_ERROR", &format!("{name}字段必填,并且不能为空")))
    } else {
        Ok(value)
    }
}

fn max_chars(fields: &Fields, name: &str, max: usize) -> Result<(), V2Error> {
    if field(fields, name).chars().count() > max {
        Err(err("PARAM_ERROR", &format!("{name}字段长度不能超过{max}")))
    } else {
        Ok(())
    }
}

fn alnum_bill(value: &str, name: &str, max: usize) -> Result<(), V2Error> {
    if value.len() > max || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Err(err("PARAM_ERROR", &format!("{name}字段格式错误")))
    } else {
        Ok(())
    }
}

fn amount(fields: &Fields, name: &str) -> Result<i64, V2Error> {
    let text = require(fields, name)?;
    match text.parse::<i64>() {
        Ok(fen) if fen > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(fen),
        _ => Err(err("PARAM_ERROR", &format!("{name}字段必须为正整数(单位:分)"))),
    }
}

fn check_openid(state: &MockState, appid: &str, openid: &str) -> Result<(), V2Error> {
    if !state.apps.contains_key(appid) {
        return Err(err("PARAM_ERROR", "appid不存在或与商户号不匹配"));
    }
    if state.users.unionid_of(appid, openid).is_none() {
        return Err(err("OPENID_ERROR", "openid与appid不匹配"));
    }
    Ok(())
}

impl PayStore {
    /// Refunds red packets left unopened for 24 h (mock clock, `now` in Unix seconds).
    pub(crate) fn settle_red_packets(&mut self, now: i64) {
        let mut refunded = Vec::new();
        for payment in self.payments.values_mut() {
            if payment.channel == PayChannel::RedPacket
                && payment.status == PaymentStatus::Sent
                && now - payment.created_at >= RED_PACKET_REFUND_AFTER_SECS
            {
                payment.status = PaymentStatus::Refund;
                payment.updated_at = payment.created_at + RED_PACKET_REFUND_AFTER_SECS;
                refunded.push(payment.clone());
            }
        }
        for payment in &refunded {
            self.credit_back(payment);
        }
    }
}

impl MockState {
    fn now_secs(&self) -> i64 {
        self.clock.now_ms().div_euclid(1000)
    }

    fn sendredpack(&mut self, body: &str) -> String {
        let (merchant, fields) = match read_request(&self.pay, body, "mch_id") {
            Ok(found) => found,
            Err(error) => return fail_xml(&error, &red_packet_echo(&fields_of(body))),
        };
        match self.sendredpack_checked(merchant, &fields) {
            Ok(payment) => Answer::new()
                .text("return_code", "SUCCESS")
                .text("return_msg", "发放成功")
                .text("result_code", "SUCCESS")
                .text("err_code", "SUCCESS")
                .text("err_code_des", "发放成功")
                .text("mch_billno", &payment.bill_no)
                .text("mch_id", &payment.mch_id)
                .text("wxappid", &payment.appid)
                .text("re_openid", &payment.openid)
                .num("total_amount", payment.amount_fen)
                .text("send_listid", &payment.wechat_no)
                .finish(),
            Err(error) => fail_xml(&error, &red_packet_echo(&fields)),
        }
    }

    fn sendredpack_checked(&mut self, merchant: usize, fields: &Fields) -> Result<Payment, V2Error> {
        for name in [
            "nonce_str",
            "mch_billno",
            "mch_id",
            "wxappid",
            "send_name",
            "re_openid",
            "total_amount",
            "total_num",
            "wishing",
            "client_ip",
            "act_name",
            "remark",
        ] {
            require(fields, name)?;
        }
        max_chars(fields, "nonce_str", 32)?;
        max_chars(fields, "send_name", 32)?;
        max_chars(fields, "wishing", 128)?;
        max_chars(fields, "act_name", 32)?;
        max_chars(fields, "remark", 256)?;
        let billno = field(fields, "mch_billno");
        alnum_bill(billno, "mch_billno", 28)?;
        let total = amount(fields, "total_amount")?;
        if field(fields, "total_num") != "1" {
            return Err(err("PARAM_ERROR", "total_num必须为1"));
        }
        let appid = field(fields, "wxappid");
        let openid = field(fields, "re_openid");
        let scene = field(fields, "scene_id");
        if !scene.is_empty() && !(1..=8).any(|n| scene == format!("PRODUCT_{n}")) {
            return Err(err("PARAM_ERROR", "scene_id字段值不正确"));
        }
        // Re-entrancy: the same billno answers as the first time, never pays twice.
        if let Some(existing) = self.pay[merchant].get(PayChannel::RedPacket, billno) {
            if existing.openid != openid {
                return Err(err("FATAL_ERROR", "openid和原始单参数不一致"));
            }
            if existing.amount_fen != total {
                return Err(err("金额和原始单参数不一致", "金额和原始单参数不一致"));
            }
            return Ok(existing.clone());
        }
        check_openid(self, appid, openid)?;
        let now_ms = self.clock.now_ms();
        let store = &mut self.pay[merchant];
        let limits = &store.config.limits;
        let (min, max) = if scene.is_empty() {
            (limits.redpack_min_fen, limits.redpack_max_fen)
        } else {
            (limits.redpack_scene_min_fen, limits.redpack_scene_max_fen)
        };
        if total < min || total > max {
            return Err(err(
                "MONEY_LIMIT",
                &format!("每个红包的金额必须在{:.2}元到{:.2}元之间", min as f64 / 100.0, max as f64 / 100.0),
            ));
        }
        let (count, sum) = store.daily_usage(PayChannel::RedPacket, openid, beijing_day(now_ms));
        if count >= limits.redpack_daily_count_per_user {
            return Err(err("SENDNUM_LIMIT", "该用户今日领取红包个数超过限制"));
        }
        if sum + total > limits.redpack_daily_fen_per_user {
            return Err(err("MONEY_LIMIT", "该用户今日领取红包金额超过限制"));
        }
        if store.balance_fen < total {
            return Err(err("NOTENOUGH", "帐号余额不足，请到商户平台充值后再重试"));
        }
        let now = now_ms.div_euclid(1000);
        let serial = store.next_serial();
        let payment = Payment {
            mch_id: store.config.mch_id.clone(),
            channel: PayChannel::RedPacket,
            bill_no: billno.to_owned(),
            wechat_no: format!(
                "1000041701{}{:010}",
                crate::pay::store::beijing_time(now).get(..10).unwrap_or_default().replace('-', ""),
                serial
            ),
            appid: appid.to_owned(),
            openid: openid.to_owned(),
            amount_fen: total,
            status: PaymentStatus::Sent,
            created_at: now,
            updated_at: now,
            fail_reason: None,
            request: fields
                .iter()
                .filter(|(k, _)| matches!(k.as_str(), "wishing" | "act_name" | "remark" | "send_name"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            notify_url: None,
            package_info: None,
        };
        store.debit(&payment);
        store.insert(payment.clone());
        Ok(payment)
    }

    fn gethbinfo(&mut self, body: &str) -> String {
        let (merchant, fields) = match read_request(&self.pay, body, "mch_id") {
            Ok(found) => found,
            Err(error) => return fail_xml(&error, &[]),
        };
        let now = self.now_secs();
        let store = &mut self.pay[merchant];
        let mch_id = store.config.mch_id.clone();
        let result = (|| {
            for name in ["nonce_str", "mch_billno", "mch_id", "appid", "bill_type"] {
                require(&fields, name)?;
            }
            if field(&fields, "bill_type") != "MCHT" {
                return Err(err("PARAM_ERROR", "bill_type字段值不正确"));
            }
            store.settle_red_packets(now);
            store
                .get(PayChannel::RedPacket, field(&fields, "mch_billno"))
                .cloned()
                .ok_or_else(|| err("NOT_FOUND", "指定单号数据不存在"))
        })();
        match result {
            Ok(p) => {
                let mut answer = Answer::new()
                    .text("return_code", "SUCCESS")
                    .text("return_msg", "OK")
                    .text("result_code", "SUCCESS")
                    .text("err_code", "SUCCESS")
                    .text("err_code_des", "OK")
                    .text("mch_billno", &p.bill_no)
                    .text("mch_id", &mch_id)
                    .text("detail_id", &p.wechat_no)
                    .text("status", p.status.as_str())
                    .text("send_type", "API")
                    .text("hb_type", "NORMAL")
                    .num("total_num", 1)
                    .num("total_amount", p.amount_fen)
                    .text("send_time", &beijing_time(p.created_at))
                    .text("wishing", p.request.get("wishing").map(String::as_str).unwrap_or_default())
                    .text("act_name", p.request.get("act_name").map(String::as_str).unwrap_or_default())
                    .text("remark", p.request.get("remark").map(String::as_str).unwrap_or_default());
                if p.status == PaymentStatus::Refund {
                    answer = answer
                        .text("reason", "红包过期未领取，已退款")
                        .text("refund_time", &beijing_time(p.updated_at))
                        .num("refund_amount", p.amount_fen);
                }
                if p.status == PaymentStatus::Received {
                    answer = answer.raw(&format!(
                        "<hblist>\n<hbinfo>\n<openid><![CDATA[{}]]></openid>\n<amount>{}</amount>\n<rcv_time><![CDATA[{}]]></rcv_time>\n</hbinfo>\n</hblist>\n",
                        p.openid,
                        p.amount_fen,
                        beijing_time(p.updated_at)
                    ));
                }
                answer.finish()
            }
            Err(error) => fail_xml(&error, &[("mch_billno", field(&fields, "mch_billno")), ("mch_id", &mch_id)]),
        }
    }

    fn transfers(&mut self, body: &str) -> String {
        let (merchant, fields) = match read_request(&self.pay, body, "mchid") {
            Ok(found) => found,
            Err(error) => return fail_xml(&error, &[]),
        };
        let echo = |fields: &Fields| {
            vec![
                ("mch_appid".to_owned(), field(fields, "mch_appid").to_owned()),
                ("mchid".to_owned(), field(fields, "mchid").to_owned()),
                ("partner_trade_no".to_owned(), field(fields, "partner_trade_no").to_owned()),
            ]
        };
        match self.transfers_checked(merchant, &fields) {
            Ok(p) => Answer::new()
                .text("return_code", "SUCCESS")
                .text("return_msg", "")
                .text("mch_appid", &p.appid)
                .text("mchid", &p.mch_id)
                .text("nonce_str", &super::sign::nonce(32))
                .text("result_code", "SUCCESS")
                .text("partner_trade_no", &p.bill_no)
                .text("payment_no", &p.wechat_no)
                .text("payment_time", &beijing_time(p.created_at))
                .finish(),
            Err(error) => {
                let echo = echo(&fields);
                let pairs: Vec<(&str, &str)> = echo.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                fail_xml(&error, &pairs)
            }
        }
    }

    fn transfers_checked(&mut self, merchant: usize, fields: &Fields) -> Result<Payment, V2Error> {
        for name in ["mch_appid", "mchid", "nonce_str", "partner_trade_no", "openid", "check_name", "amount", "desc"] {
            require(fields, name)?;
        }
        max_chars(fields, "nonce_str", 32)?;
        let trade_no = field(fields, "partner_trade_no");
        alnum_bill(trade_no, "partner_trade_no", 32)?;
        match field(fields, "check_name") {
            "NO_CHECK" => {}
            "FORCE_CHECK" => {
                require(fields, "re_user_name")?;
            }
            _ => return Err(err("PARAM_ERROR", "check_name字段值不正确")),
        }
        let total = amount(fields, "amount")?;
        let appid = field(fields, "mch_appid");
        let openid = field(fields, "openid");
        if let Some(existing) = self.pay[merchant].get(PayChannel::EnterprisePayment, trade_no) {
            if existing.openid != openid || existing.amount_fen != total || existing.appid != appid {
                return Err(err("FATAL_ERROR", "已存在该单，并且订单信息不一致"));
            }
            return Ok(existing.clone());
        }
        check_openid(self, appid, openid)?;
        let now_ms = self.clock.now_ms();
        let store = &mut self.pay[merchant];
        let limits = &store.config.limits;
        if total < limits.transfer_min_fen || total > limits.transfer_max_fen {
            return Err(err(
                "AMOUNT_LIMIT",
                &format!(
                    "付款金额超出限制。低于最小金额{:.2}元或累计超过{:.2}元。",
                    limits.transfer_min_fen as f64 / 100.0,
                    limits.transfer_max_fen as f64 / 100.0
                ),
            ));
        }
        let (count, sum) = store.daily_usage(PayChannel::EnterprisePayment, openid, beijing_day(now_ms));
        if count >= limits.transfer_daily_count_per_user {
            return Err(err(
                "SENDNUM_LIMIT",
                "该用户今日付款次数超过限制,如有需要请登录微信支付商户平台更改API安全配置",
            ));
        }
        if sum + total > limits.transfer_daily_fen_per_user {
            return Err(err("MONEY_LIMIT", "已经达到今日付款总额上限/已达到付款给此用户额度上限"));
        }
        if store.balance_fen < total {
            return Err(err("NOTENOUGH", "余额不足"));
        }
        let now = now_ms.div_euclid(1000);
        let serial = store.next_serial();
        let payment = Payment {
            mch_id: store.config.mch_id.clone(),
            channel: PayChannel::EnterprisePayment,
            bill_no: trade_no.to_owned(),
            wechat_no: format!("10100000{now}{serial:08}"),
            appid: appid.to_owned(),
            openid: openid.to_owned(),
            amount_fen: total,
            status: PaymentStatus::Success,
            created_at: now,
            updated_at: now,
            fail_reason: None,
            request: fields
                .iter()
                .filter(|(k, _)| matches!(k.as_str(), "desc" | "re_user_name"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            notify_url: None,
            package_info: None,
        };
        store.debit(&payment);
        store.insert(payment.clone());
        Ok(payment)
    }

    fn gettransferinfo(&mut self, body: &str) -> String {
        let (merchant, fields) = match read_request(&self.pay, body, "mch_id") {
            Ok(found) => found,
            Err(error) => return fail_xml(&error, &[]),
        };
        let store = &self.pay[merchant];
        let result = (|| {
            for name in ["nonce_str", "partner_trade_no", "mch_id", "appid"] {
                require(&fields, name)?;
            }
            store
                .get(PayChannel::EnterprisePayment, field(&fields, "partner_trade_no"))
                .cloned()
                .ok_or_else(|| err("NOT_FOUND", "该单据不存在"))
        })();
        match result {
            Ok(p) => Answer::new()
                .text("return_code", "SUCCESS")
                .text("return_msg", "OK")
                .text("result_code", "SUCCESS")
                .text("err_code", "SUCCESS")
                .text("err_code_des", "OK")
                .text("partner_trade_no", &p.bill_no)
                .text("appid", &p.appid)
                .text("mch_id", &p.mch_id)
                .text("detail_id", &p.wechat_no)
                .text("status", if p.status == PaymentStatus::Success { "SUCCESS" } else { "FAILED" })
                .text("openid", &p.openid)
                .text("transfer_name", p.request.get("re_user_name").map(String::as_str).unwrap_or_default())
                .num("payment_amount", p.amount_fen)
                .text("transfer_time", &beijing_time(p.created_at))
                .text("payment_time", &beijing_time(p.updated_at))
                .text("desc", p.request.get("desc").map(String::as_str).unwrap_or_default())
                .finish(),
            Err(error) => fail_xml(&error, &[("partner_trade_no", field(&fields, "partner_trade_no"))]),
        }
    }
}

fn red_packet_echo(fields: &Fields) -> Vec<(&str, &str)> {
    ["mch_billno", "mch_id", "wxappid", "re_openid", "total_amount"]
        .into_iter()
        .map(|name| (name, field(fields, name)))
        .collect()
}

async fn serve(mock: &MockWechat, req: &Request, body: Body, run: fn(&mut MockState, &str) -> String) -> Response {
    let bytes = body.into_vec().await.unwrap_or_default();
    let mut state = mock.lock();
    state.record_call(req.uri().path());
    match ClientCerts::of_request(req) {
        None | Some(ClientCert::Trusted) => {}
        Some(ClientCert::Absent | ClientCert::Untrusted(_)) => return xml_response(ca_error_xml()),
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => return xml_response(fail_xml(&err("PARAM_IS_NOT_UTF8", "请使用UTF-8编码"), &[])),
    };
    xml_response(run(&mut state, &text))
}

/// `POST /mmpaymkttransfers/sendredpack`.
#[handler]
pub(crate) async fn sendredpack(req: &Request, body: Body, Data(mock): Data<&MockWechat>) -> Response {
    serve(mock, req, body, MockState::sendredpack).await
}

/// `POST /mmpaymkttransfers/gethbinfo`.
#[handler]
pub(crate) async fn gethbinfo(req: &Request, body: Body, Data(mock): Data<&MockWechat>) -> Response {
    serve(mock, req, body, MockState::gethbinfo).await
}

/// `POST /mmpaymkttransfers/promotion/transfers`.
#[handler]
pub(crate) async fn transfers(req: &Request, body: Body, Data(mock): Data<&MockWechat>) -> Response {
    serve(mock, req, body, MockState::transfers).await
}

/// `POST /mmpaymkttransfers/gettransferinfo`.
#[handler]
pub(crate) async fn gettransferinfo(req: &Request, body: Body, Data(mock): Data<&MockWechat>) -> Response {
    serve(mock, req, body, MockState::gettransferinfo).await
}
