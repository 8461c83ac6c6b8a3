//! Several WeChat Pay merchants in one mock: the default merchant and [`PayConfig::second`], each
//! with its own keys, balance, ledger, notifications and bills; requests reach the merchant they
//! name and are checked and answered with that merchant's keys.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use poem::{handler, listener::TcpAcceptor, post, web::Data, Body, EndpointExt, Request, Route, Server};
use reqwest::Client;
use serde_json::{json, Value};
use wechat_mock::callback::xml::parse_fields;
use wechat_mock::pay::sign::{
    aes_gcm_decrypt, public_key, rsa_verify, v2_sign, v3_response_message, MerchantSigner, SignType,
};
use wechat_mock::pay::{
    PaySigning, API_KEY_V2, API_V3_KEY, MCH_ID, MERCHANT_CERT_SERIAL, MERCHANT_PRIVATE_KEY_PEM, SECOND_API_KEY_V2,
    SECOND_API_V3_KEY, SECOND_MCH_ID, SECOND_MERCHANT_CERT_SERIAL, SECOND_PLATFORM_CERT_PEM,
    SECOND_PLATFORM_CERT_SERIAL, SECOND_WECHATPAY_PUBLIC_KEY_ID, SECOND_WECHATPAY_PUBLIC_KEY_PEM,
    WECHATPAY_PUBLIC_KEY_ID, WECHATPAY_PUBLIC_KEY_PEM,
};
use wechat_mock::{Fault, MockConfig, PayChannel, PayConfig, PaymentStatus, RunningMock, UnknownMerchant, OA_APPID};

const BEIJING_NOON: i64 = 1_717_214_400;
/// 2025-06-15, when the test platform certificates (valid from 2025-01-01) are in effect.
const CERTIFICATES_IN_EFFECT: i64 = 1_750_000_000;
const BILLS: &str = "/v3/fund-app/mch-transfer/transfer-bills";
const UNKNOWN_MCH_ID: &str = "1234567890";
const DEFAULT_BALANCE: i64 = 10_000_000;

async fn spawn() -> (RunningMock, Client, String) {
    spawn_at(BEIJING_NOON).await
}

async fn spawn_at(clock_start_unix: i64) -> (RunningMock, Client, String) {
    let config = MockConfig {
        clock_start_unix: Some(clock_start_unix),
        merchants: vec![PayConfig::second()],
        ..MockConfig::default()
    };
    let mock = wechat_mock::start(config, "127.0.0.1:0").await.unwrap();
    let openid = mock.add_user().oa_openid;
    (mock, Client::new(), openid)
}

type Fields = BTreeMap<String, String>;

async fn post_v2(mock: &RunningMock, client: &Client, path: &str, params: &[(&str, &str)], key: &str) -> Fields {
    let sign = v2_sign(params.iter().copied(), key, SignType::Md5);
    let mut xml = String::from("<xml>");
    for (k, v) in params.iter().chain(std::iter::once(&("sign", sign.as_str()))) {
        xml.push_str(&format!("<{k}><![CDATA[{v}]]></{k}>"));
    }
    xml.push_str("</xml>");
    let text = client.post(format!("{}{path}", mock.base_url)).body(xml).send().await.unwrap().text().await.unwrap();
    parse_fields(&text).unwrap().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

async fn red_packet(
    mock: &RunningMock,
    client: &Client,
    mch_id: &str,
    key: &str,
    billno: &str,
    openid: &str,
) -> Fields {
    let params = [
        ("nonce_str", "n0nce"),
        ("mch_billno", billno),
        ("mch_id", mch_id),
        ("wxappid", OA_APPID),
        ("send_name", "邻里"),
        ("re_openid", openid),
        ("total_amount", "150"),
        ("total_num", "1"),
        ("wishing", "谢谢"),
        ("client_ip", "127.0.0.1"),
        ("act_name", "活动"),
        ("remark", "备注"),
    ];
    post_v2(mock, client, "/mmpaymkttransfers/sendredpack", &params, key).await
}

async fn red_packet_info(mock: &RunningMock, client: &Client, mch_id: &str, key: &str, billno: &str) -> Fields {
    let params =
        [("nonce_str", "x"), ("mch_billno", billno), ("mch_id", mch_id), ("appid", OA_APPID), ("bill_type", "MCHT")];
    post_v2(mock, client, "/mmpaymkttransfers/gethbinfo", &params, key).await
}

async fn enterprise_payment(
    mock: &RunningMock,
    client: &Client,
    mchid: &str,
    key: &str,
    no: &str,
    openid: &str,
) -> Fields {
    let params = [
        ("mch_appid", OA_APPID),
        ("mchid", mchid),
        ("nonce_str", "x"),
        ("partner_trade_no", no),
        ("openid", openid),
        ("check_name", "NO_CHECK"),
        ("amount", "30"),
        ("desc", "奖励"),
        ("spbill_create_ip", "127.0.0.1"),
    ];
    post_v2(mock, client, "/mmpaymkttransfers/promotion/transfers", &params, key).await
}

/// A v3 answer: status, body, the raw body and the `Wechatpay-*` headers.
struct V3Answer {
    status: u16,
    body: Value,
    text: String,
    headers: reqwest::header::HeaderMap,
}

impl V3Answer {
    fn header(&self, name: &str) -> String {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    }

    fn serial(&self) -> String {
        self.header("Wechatpay-Serial")
    }

    /// Whether the answer's signature verifies with the public key `pem`.
    fn verifies_with(&self, pem: &str) -> bool {
        let message =
            v3_response_message(&self.header("Wechatpay-Timestamp"), &self.header("Wechatpay-Nonce"), &self.text);
        rsa_verify(&public_key(pem).unwrap(), &message, &self.header("Wechatpay-Signature"))
    }
}

async fn v3(
    mock: &RunningMock,
    client: &Client,
    method: &str,
    url: &str,
    body: &str,
    signer: &MerchantSigner,
) -> V3Answer {
    let auth = signer.authorization(method, url, mock.now_unix(), body);
    let req = if method == "GET" {
        client.get(format!("{}{url}", mock.base_url))
    } else {
        client.post(format!("{}{url}", mock.base_url)).body(body.to_owned())
    };
    let resp = req.header("Authorization", auth).header("Content-Type", "application/json").send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    V3Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), text, headers }
}

fn bill(no: &str, openid: &str, amount: i64, notify: Option<&str>) -> String {
    let mut body = json!({
        "appid": OA_APPID, "out_bill_no": no, "transfer_scene_id": "1000", "openid": openid,
        "transfer_amount": amount, "transfer_remark": "邻里奖励", "user_recv_perception": "现金奖励",
        "transfer_scene_report_infos": [{"info_type": "活动名称", "info_content": "邻里"}]
    });
    if let Some(url) = notify {
        body["notify_url"] = json!(url);
    }
    body.to_string()
}

fn ledger(mock: &RunningMock, mch_id: &str) -> Vec<(PayChannel, String, i64)> {
    mock.payments_of(mch_id).unwrap().into_iter().map(|p| (p.channel, p.bill_no, p.amount_fen)).collect()
}

#[tokio::test]
async fn the_second_merchants_payouts_land_in_its_ledger_and_balance_only() {
    let (mock, client, openid) = spawn().await;
    assert_eq!(mock.merchant_ids(), vec![MCH_ID.to_owned(), SECOND_MCH_ID.to_owned()]);

    // v2 red packet, signed with B's APIv2 key.
    let sent = red_packet(&mock, &client, SECOND_MCH_ID, SECOND_API_KEY_V2, "RB1", &openid).await;
    assert_eq!((sent["result_code"].as_str(), sent["mch_id"].as_str()), ("SUCCESS", SECOND_MCH_ID), "{sent:?}");
    // v2 enterprise payment, routed by `mchid`.
    let paid = enterprise_payment(&mock, &client, SECOND_MCH_ID, SECOND_API_KEY_V2, "EB1", &openid).await;
    assert_eq!((paid["result_code"].as_str(), paid["mchid"].as_str()), ("SUCCESS", SECOND_MCH_ID), "{paid:?}");
    // v3 transfer bill, signed with B's merchant key.
    let b = MerchantSigner::second_merchant();
    let created = v3(&mock, &client, "POST", BILLS, &bill("TB1", &openid, 1000, None), &b).await;
    assert_eq!((created.status, created.body["state"].as_str()), (200, Some("WAIT_USER_CONFIRM")), "{}", created.text);

    assert_eq!(
        ledger(&mock, SECOND_MCH_ID),
        vec![
            (PayChannel::RedPacket, "RB1".into(), 150),
            (PayChannel::EnterprisePayment, "EB1".into(), 30),
            (PayChannel::TransferBill, "TB1".into(), 1000)
        ]
    );
    assert!(mock.payments_of(MCH_ID).unwrap().is_empty(), "nothing went through the default merchant");
    assert_eq!(mock.pay_balance_fen_of(SECOND_MCH_ID), Ok(DEFAULT_BALANCE - 1180));
    assert_eq!(mock.pay_balance_fen(), DEFAULT_BALANCE);
    // The bill waits for the user: not paid yet.
    assert_eq!(mock.paid_total_of(SECOND_MCH_ID, &openid), Ok(180));
    assert_eq!(mock.paid_total(&openid), 0, "paid_total is the default merchant's");
    // payments() shows every merchant's, each saying whose.
    let all = mock.payments();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|p| p.mch_id == SECOND_MCH_ID));
    assert_eq!(mock.payment(PayChannel::TransferBill, "TB1").unwrap().mch_id, SECOND_MCH_ID);

    // Each merchant sees its own bills only.
    assert_eq!(red_packet_info(&mock, &client, SECOND_MCH_ID, SECOND_API_KEY_V2, "RB1").await["status"], "SENT");
    assert_eq!(red_packet_info(&mock, &client, MCH_ID, API_KEY_V2, "RB1").await["err_code"], "NOT_FOUND");
    let a = MerchantSigner::default_merchant();
    assert_eq!(v3(&mock, &client, "GET", &format!("{BILLS}/out-bill-no/TB1"), "", &a).await.status, 404);
    let query = v3(&mock, &client, "GET", &format!("{BILLS}/out-bill-no/TB1"), "", &b).await;
    assert_eq!(
        (query.body["state"].as_str(), query.body["mch_id"].as_str()),
        (Some("WAIT_USER_CONFIRM"), Some(SECOND_MCH_ID))
    );

    // Bill numbers are unique per merchant: A may use B's, and gets a payment of its own.
    let same_no = red_packet(&mock, &client, MCH_ID, API_KEY_V2, "RB1", &openid).await;
    assert_eq!((same_no["result_code"].as_str(), same_no["mch_id"].as_str()), ("SUCCESS", MCH_ID));
    assert_ne!(same_no["send_listid"], sent["send_listid"]);
    assert_eq!(mock.pay_balance_fen(), DEFAULT_BALANCE - 150);
    assert_eq!(mock.payment(PayChannel::RedPacket, "RB1").unwrap().mch_id, MCH_ID, "the default merchant's first");
    assert_eq!(mock.receive_red_packet_of(SECOND_MCH_ID, "RB1").unwrap().mch_id, SECOND_MCH_ID);
    let of_b = mock.payments_of(SECOND_MCH_ID).unwrap();
    assert_eq!(of_b[0].status, PaymentStatus::Received);
    assert_eq!(mock.payments_of(MCH_ID).unwrap()[0].status, PaymentStatus::Sent, "A's packet is untouched");

    // The user ends B's bill: B's money, B's ledger.
    assert_eq!(mock.decline_transfer("TB1").unwrap().mch_id, SECOND_MCH_ID, "found in whichever merchant has it");
    assert_eq!(mock.pay_balance_fen_of(SECOND_MCH_ID), Ok(DEFAULT_BALANCE - 180));
    assert_eq!(mock.pay_balance_fen(), DEFAULT_BALANCE - 150);

    // The fund-flow bills are per merchant.
    let today = mock.beijing_today();
    let b_bill = mock.fund_flow_bill_of(SECOND_MCH_ID, &today).unwrap();
    let a_bill = mock.fund_flow_bill(&today).unwrap();
    assert!(b_bill.contains("`TB1") && b_bill.contains("`EB1") && b_bill.contains(&format!("`{SECOND_MCH_ID}")));
    assert!(!a_bill.contains("`TB1") && !a_bill.contains("`EB1"));
    assert_eq!(a_bill.lines().filter(|l| l.contains("`RB1")).count(), 1, "A's own packet only");
    let applied = v3(&mock, &client, "GET", &format!("/v3/bill/fundflowbill?bill_date={today}"), "", &b).await;
    assert!(applied.verifies_with(SECOND_WECHATPAY_PUBLIC_KEY_PEM));
    let url = applied.body["download_url"].as_str().unwrap().to_owned();
    let path = url.strip_prefix(&mock.base_url).unwrap();
    let as_a = v3(&mock, &client, "GET", path, "", &a).await;
    assert_eq!(as_a.status, 400, "another merchant's token is unknown");
    assert_eq!(v3(&mock, &client, "GET", path, "", &b).await.text, b_bill);

    // Balances are set per merchant.
    mock.set_pay_balance_fen_of(SECOND_MCH_ID, 100).unwrap();
    let poor = red_packet(&mock, &client, SECOND_MCH_ID, SECOND_API_KEY_V2, "RB2", &openid).await;
    assert_eq!(poor["err_code"], "NOTENOUGH");
    assert_eq!(red_packet(&mock, &client, MCH_ID, API_KEY_V2, "RA2", &openid).await["result_code"], "SUCCESS");
}

#[tokio::test]
async fn each_merchant_is_checked_with_its_own_keys() {
    let (mock, client, openid) = spawn().await;
    // v2: B's mch_id signed with A's key.
    let forged = red_packet(&mock, &client, SECOND_MCH_ID, API_KEY_V2, "RB1", &openid).await;
    assert_eq!(forged["err_code"], "SIGN_ERROR");
    let forged = enterprise_payment(&mock, &client, SECOND_MCH_ID, API_KEY_V2, "EB1", &openid).await;
    assert_eq!(forged["err_code"], "SIGN_ERROR");
    // And A's with B's.
    assert_eq!(red_packet(&mock, &client, MCH_ID, SECOND_API_KEY_V2, "RA1", &openid).await["err_code"], "SIGN_ERROR");

    // v3: A's key with B's mchid, with A's or B's certificate serial.
    let body = bill("TB1", &openid, 100, None);
    for serial in [MERCHANT_CERT_SERIAL, SECOND_MERCHANT_CERT_SERIAL] {
        let forger = MerchantSigner::new(SECOND_MCH_ID, serial, MERCHANT_PRIVATE_KEY_PEM).unwrap();
        let refused = v3(&mock, &client, "POST", BILLS, &body, &forger).await;
        assert_eq!((refused.status, refused.body["code"].as_str()), (401, Some("SIGN_ERROR")), "{}", refused.text);
        // The refusal is B's answer, signed with B's key.
        assert_eq!(refused.serial(), SECOND_WECHATPAY_PUBLIC_KEY_ID);
        assert!(refused.verifies_with(SECOND_WECHATPAY_PUBLIC_KEY_PEM));
    }
    assert!(mock.payments().is_empty());
    assert_eq!(
        (mock.pay_balance_fen(), mock.pay_balance_fen_of(SECOND_MCH_ID)),
        (DEFAULT_BALANCE, Ok(DEFAULT_BALANCE))
    );

    // B's answers verify with B's WeChat Pay public key and not with A's; A's the other way round.
    let b =
        v3(&mock, &client, "POST", BILLS, &bill("TB1", &openid, 100, None), &MerchantSigner::second_merchant()).await;
    assert_eq!(b.status, 200);
    assert_eq!(b.serial(), SECOND_WECHATPAY_PUBLIC_KEY_ID);
    assert!(b.verifies_with(SECOND_WECHATPAY_PUBLIC_KEY_PEM));
    assert!(!b.verifies_with(WECHATPAY_PUBLIC_KEY_PEM));
    let a =
        v3(&mock, &client, "POST", BILLS, &bill("TA1", &openid, 100, None), &MerchantSigner::default_merchant()).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.serial(), WECHATPAY_PUBLIC_KEY_ID);
    assert!(a.verifies_with(WECHATPAY_PUBLIC_KEY_PEM));
    assert!(!a.verifies_with(SECOND_WECHATPAY_PUBLIC_KEY_PEM));

    // An injected fault on B's path is answered with B's key too.
    let path = format!("{BILLS}/out-bill-no/TB1");
    mock.inject_fault(Fault::pay_error(path.clone(), "NOT_FOUND", 1)).unwrap();
    let faulted = v3(&mock, &client, "GET", &path, "", &MerchantSigner::second_merchant()).await;
    assert_eq!(faulted.status, 404);
    assert!(faulted.verifies_with(SECOND_WECHATPAY_PUBLIC_KEY_PEM));
}

#[tokio::test]
async fn platform_certificates_and_signing_modes_are_per_merchant() {
    let (mock, client, _) = spawn_at(CERTIFICATES_IN_EFFECT).await;
    let b = MerchantSigner::second_merchant();
    mock.set_pay_signing_of(SECOND_MCH_ID, PaySigning::PlatformCertificate).unwrap();
    assert_eq!(mock.pay_signing(), PaySigning::PublicKey, "the default merchant is unchanged");
    let listed = v3(&mock, &client, "GET", "/v3/certificates", "", &b).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.serial(), SECOND_PLATFORM_CERT_SERIAL);
    let data = listed.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["serial_no"], SECOND_PLATFORM_CERT_SERIAL);
    let sealed = &data[0]["encrypt_certificate"];
    let open = |key: &str| {
        aes_gcm_decrypt(
            key,
            sealed["nonce"].as_str().unwrap(),
            sealed["associated_data"].as_str().unwrap(),
            sealed["ciphertext"].as_str().unwrap(),
        )
    };
    assert_eq!(open(SECOND_API_V3_KEY).unwrap(), SECOND_PLATFORM_CERT_PEM);
    assert!(open(API_V3_KEY).is_err(), "sealed under B's APIv3 key, not A's");
    // A still has no platform certificate to hand out.
    assert_eq!(
        v3(&mock, &client, "GET", "/v3/certificates", "", &MerchantSigner::default_merchant()).await.status,
        404
    );
}

#[tokio::test]
async fn the_second_merchants_notifications_are_signed_and_sealed_with_its_keys() {
    let (mock, client, openid) = spawn().await;
    let notified = Notified::start().await;
    let b = MerchantSigner::second_merchant();
    let created = v3(&mock, &client, "POST", BILLS, &bill("TB1", &openid, 500, Some(&notified.url)), &b).await;
    assert_eq!(created.status, 200);
    mock.confirm_transfer_of(SECOND_MCH_ID, "TB1").unwrap();
    mock.deliver_due_notifications().await;

    let got = notified.received();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    assert_eq!(headers["Wechatpay-Serial"], SECOND_WECHATPAY_PUBLIC_KEY_ID);
    let message = v3_response_message(&headers["Wechatpay-Timestamp"], &headers["Wechatpay-Nonce"], body);
    let signature = &headers["Wechatpay-Signature"];
    assert!(rsa_verify(&public_key(SECOND_WECHATPAY_PUBLIC_KEY_PEM).unwrap(), &message, signature));
    assert!(!rsa_verify(&public_key(WECHATPAY_PUBLIC_KEY_PEM).unwrap(), &message, signature));
    let resource = &serde_json::from_str::<Value>(body).unwrap()["resource"];
    let open = |key: &str| {
        aes_gcm_decrypt(
            key,
            resource["nonce"].as_str().unwrap(),
            resource["associated_data"].as_str().unwrap(),
            resource["ciphertext"].as_str().unwrap(),
        )
    };
    assert!(open(API_V3_KEY).is_err(), "A's APIv3 key does not open B's notification");
    let plain: Value = serde_json::from_str(&open(SECOND_API_V3_KEY).unwrap()).unwrap();
    assert_eq!(
        (plain["mch_id"].as_str(), plain["out_bill_no"].as_str(), plain["state"].as_str()),
        (Some(SECOND_MCH_ID), Some("TB1"), Some("SUCCESS"))
    );
    assert_eq!(mock.pay_notifications_of(SECOND_MCH_ID).unwrap().len(), 1);
    assert!(mock.pay_notifications().is_empty(), "none of the default merchant's");
    assert_eq!(mock.pay_notifications_of(UNKNOWN_MCH_ID), Err(UnknownMerchant(UNKNOWN_MCH_ID.into())));
}

#[tokio::test]
async fn an_unknown_merchant_is_refused_and_changes_nothing() {
    let (mock, client, openid) = spawn().await;
    let today = mock.beijing_today();
    let bills_before = (mock.fund_flow_bill(&today).unwrap(), mock.fund_flow_bill_of(SECOND_MCH_ID, &today).unwrap());

    for answer in [
        red_packet(&mock, &client, UNKNOWN_MCH_ID, API_KEY_V2, "RX1", &openid).await,
        enterprise_payment(&mock, &client, UNKNOWN_MCH_ID, API_KEY_V2, "EX1", &openid).await,
        red_packet_info(&mock, &client, UNKNOWN_MCH_ID, API_KEY_V2, "RX1").await,
    ] {
        assert_eq!(
            (answer["return_code"].as_str(), answer["result_code"].as_str(), answer["err_code"].as_str()),
            ("SUCCESS", "FAIL", "PARAM_ERROR"),
            "{answer:?}"
        );
        assert_eq!(answer["err_code_des"], "商户号非法");
    }
    let stranger = MerchantSigner::new(UNKNOWN_MCH_ID, MERCHANT_CERT_SERIAL, MERCHANT_PRIVATE_KEY_PEM).unwrap();
    let refused = v3(&mock, &client, "POST", BILLS, &bill("TX1", &openid, 100, None), &stranger).await;
    assert_eq!((refused.status, refused.body["code"].as_str()), (400, Some("MCH_NOT_EXISTS")), "{}", refused.text);
    assert!(refused.body["message"].as_str().is_some_and(|m| !m.is_empty()));

    assert!(mock.payments().is_empty());
    assert_eq!(
        (mock.pay_balance_fen(), mock.pay_balance_fen_of(SECOND_MCH_ID)),
        (DEFAULT_BALANCE, Ok(DEFAULT_BALANCE))
    );
    assert_eq!(
        (mock.fund_flow_bill(&today).unwrap(), mock.fund_flow_bill_of(SECOND_MCH_ID, &today).unwrap()),
        bills_before
    );
    // The library and the control API say so too.
    assert_eq!(mock.pay_balance_fen_of(UNKNOWN_MCH_ID), Err(UnknownMerchant(UNKNOWN_MCH_ID.into())));
    assert!(mock.set_pay_balance_fen_of(UNKNOWN_MCH_ID, 1).is_err());
    assert!(mock.confirm_transfer_of(UNKNOWN_MCH_ID, "TX1").is_err());
    let report = client.get(format!("{}/__mock/pay?mch_id={UNKNOWN_MCH_ID}", mock.base_url)).send().await.unwrap();
    assert_eq!(report.status(), 404);
}

#[tokio::test]
async fn the_control_api_takes_a_merchant() {
    let (mock, client, openid) = spawn().await;
    let notified = Notified::start().await;
    let b = MerchantSigner::second_merchant();
    v3(&mock, &client, "POST", BILLS, &bill("TB1", &openid, 500, Some(&notified.url)), &b).await;
    red_packet(&mock, &client, SECOND_MCH_ID, SECOND_API_KEY_V2, "RB1", &openid).await;
    let base = &mock.base_url;
    let get = |path: String| {
        let client = client.clone();
        async move { client.get(path).send().await.unwrap().json::<Value>().await.unwrap() }
    };

    let report = get(format!("{base}/__mock/pay?mch_id={SECOND_MCH_ID}")).await;
    assert_eq!(
        (report["mch_id"].as_str(), report["balance_fen"].as_i64()),
        (Some(SECOND_MCH_ID), Some(DEFAULT_BALANCE - 650))
    );
    assert_eq!(report["payments"].as_array().unwrap().len(), 2);
    let default = get(format!("{base}/__mock/pay")).await;
    assert_eq!((default["mch_id"].as_str(), default["payments"].as_array().map(Vec::len)), (Some(MCH_ID), Some(0)));
    let merchants = get(format!("{base}/__mock/pay/merchants")).await;
    assert_eq!(merchants[1]["mch_id"], SECOND_MCH_ID);
    assert_eq!(merchants[1]["balance_fen"], DEFAULT_BALANCE - 650);

    let keys = get(format!("{base}/__mock/pay/keys?mch_id={SECOND_MCH_ID}")).await;
    assert_eq!(keys["wechatpay_public_key_id"], SECOND_WECHATPAY_PUBLIC_KEY_ID);
    assert_eq!(keys["wechatpay_public_key_pem"], SECOND_WECHATPAY_PUBLIC_KEY_PEM);
    assert_eq!(keys["merchant_cert_serial"], SECOND_MERCHANT_CERT_SERIAL);
    assert_eq!(keys["merchant_private_key_pem"], wechat_mock::pay::SECOND_MERCHANT_PRIVATE_KEY_PEM);

    // Steps on a bill: the named merchant's, 404 for an unknown merchant, 409 for the wrong one.
    let post = |path: String| {
        let client = client.clone();
        async move { client.post(path).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(format!("{base}/__mock/pay/transfer-bills/TB1/confirm?mch_id={UNKNOWN_MCH_ID}")).await, 404);
    assert_eq!(post(format!("{base}/__mock/pay/transfer-bills/TB1/confirm?mch_id={MCH_ID}")).await, 409);
    assert_eq!(post(format!("{base}/__mock/pay/transfer-bills/TB1/confirm?mch_id={SECOND_MCH_ID}")).await, 200);
    assert_eq!(post(format!("{base}/__mock/pay/red-packets/RB1/receive")).await, 200, "found in B without mch_id");
    assert_eq!(mock.payment(PayChannel::RedPacket, "RB1").unwrap().status, PaymentStatus::Received);
    let sent = get(format!("{base}/__mock/pay/notifications?mch_id={SECOND_MCH_ID}")).await;
    assert_eq!((sent[0]["out_bill_no"].as_str(), sent[0]["acknowledged"].as_bool()), (Some("TB1"), Some(true)));
    assert_eq!(notified.received().len(), 1);

    let signing = client
        .post(format!("{base}/__mock/pay/signing?mch_id={SECOND_MCH_ID}"))
        .body(r#"{"signing": "migration"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(signing.status(), 200);
    assert_eq!(mock.pay_signing_of(SECOND_MCH_ID), Ok(PaySigning::Migration));
    assert_eq!(mock.pay_signing(), PaySigning::PublicKey);

    // A reset puts every merchant back.
    mock.reset();
    assert_eq!(mock.pay_balance_fen_of(SECOND_MCH_ID), Ok(DEFAULT_BALANCE));
    assert_eq!(mock.pay_signing_of(SECOND_MCH_ID), Ok(PaySigning::PublicKey));
    assert!(mock.payments().is_empty());
}

/// A merchant's notify endpoint that answers 200 and records each delivery's headers and body.
struct Notified {
    url: String,
    seen: Seen,
}

type Seen = Arc<Mutex<Vec<(BTreeMap<String, String>, String)>>>;

impl Notified {
    async fn start() -> Self {
        let seen: Seen = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Route::new().at("/notify", post(record_notification)).data(Arc::clone(&seen));
        tokio::spawn(Server::new_with_acceptor(TcpAcceptor::from_tokio(listener).unwrap()).run(app));
        Self { url: format!("http://{addr}/notify"), seen }
    }

    fn received(&self) -> Vec<(BTreeMap<String, String>, String)> {
        self.seen.lock().unwrap().clone()
    }
}

#[handler]
async fn record_notification(req: &Request, body: Body, Data(seen): Data<&Seen>) -> &'static str {
    let headers = ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"]
        .into_iter()
        .map(|name| (name.to_owned(), req.header(name).unwrap_or_default().to_owned()))
        .collect();
    let body = body.into_string().await.unwrap();
    seen.lock().unwrap().push((headers, body));
    ""
}
