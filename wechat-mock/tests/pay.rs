//! WeChat Pay v2 and v3 against a merchant signing with the embedded test keys.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::{
    handler, http::StatusCode, listener::TcpAcceptor, post, web::Data, Body, EndpointExt, IntoResponse, Request,
    Response, Route, Server,
};
use reqwest::Client;
use serde_json::{json, Value};
use wechat_mock::callback::xml::parse_fields;
use wechat_mock::pay::sign::{
    aes_gcm_decrypt, public_key, rsa_verify, v2_sign, v3_response_message, MerchantSigner, SignType,
};
use wechat_mock::pay::{API_KEY_V2, API_V3_KEY, MCH_ID, WECHATPAY_PUBLIC_KEY_ID, WECHATPAY_PUBLIC_KEY_PEM};
use wechat_mock::{Fault, MockConfig, PayChannel, PaymentStatus, RunningMock, OA_APPID};

const BEIJING_NOON: i64 = 1_717_214_400;
const BILLS: &str = "/v3/fund-app/mch-transfer/transfer-bills";

async fn spawn_with(config: MockConfig) -> (RunningMock, Client, String) {
    let config = MockConfig { clock_start_unix: Some(BEIJING_NOON), ..config };
    let mock = wechat_mock::start(config, "127.0.0.1:0").await.unwrap();
    let openid = mock.add_user().oa_openid;
    (mock, Client::new(), openid)
}

async fn spawn() -> (RunningMock, Client, String) {
    spawn_with(MockConfig::default()).await
}

fn signed_xml(params: &[(&str, &str)], key: &str) -> String {
    let sign = v2_sign(params.iter().copied(), key, SignType::Md5);
    let mut xml = String::from("<xml>");
    for (k, v) in params.iter().chain(std::iter::once(&("sign", sign.as_str()))) {
        xml.push_str(&format!("<{k}><![CDATA[{v}]]></{k}>"));
    }
    xml + "</xml>"
}

async fn post_xml(
    mock: &RunningMock,
    client: &Client,
    path: &str,
    xml: String,
) -> std::collections::BTreeMap<String, String> {
    let text = client.post(format!("{}{path}", mock.base_url)).body(xml).send().await.unwrap().text().await.unwrap();
    parse_fields(&text).unwrap().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn redpack(billno: &str, openid: &str, amount: &str) -> Vec<(&'static str, String)> {
    vec![
        ("nonce_str", "n0nce".into()),
        ("mch_billno", billno.into()),
        ("mch_id", MCH_ID.into()),
        ("wxappid", OA_APPID.into()),
        ("send_name", "邻里".into()),
        ("re_openid", openid.into()),
        ("total_amount", amount.into()),
        ("total_num", "1".into()),
        ("wishing", "谢谢".into()),
        ("client_ip", "127.0.0.1".into()),
        ("act_name", "活动".into()),
        ("remark", "备注".into()),
    ]
}

async fn send(
    mock: &RunningMock,
    client: &Client,
    params: &[(&'static str, String)],
) -> std::collections::BTreeMap<String, String> {
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post_xml(mock, client, "/mmpaymkttransfers/sendredpack", signed_xml(&pairs, API_KEY_V2)).await
}

#[tokio::test]
async fn v2_red_packet_signature_reentrancy_limits_ledger() {
    let (mock, client, openid) = spawn().await;
    // Bad key → SIGN_ERROR in WeChat's shape.
    let params = redpack("B1", &openid, "100");
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bad = post_xml(&mock, &client, "/mmpaymkttransfers/sendredpack", signed_xml(&pairs, "wrongkey")).await;
    assert_eq!(
        (bad["return_code"].as_str(), bad["result_code"].as_str(), bad["err_code"].as_str()),
        ("SUCCESS", "FAIL", "SIGN_ERROR")
    );
    // sign_type signed in → SIGN_ERROR (these APIs exclude it).
    let mut with_type = pairs.clone();
    with_type.push(("sign_type", "MD5"));
    let bad = post_xml(&mock, &client, "/mmpaymkttransfers/sendredpack", signed_xml(&with_type, API_KEY_V2)).await;
    assert_eq!(bad["err_code"], "SIGN_ERROR");
    let xml_err = post_xml(&mock, &client, "/mmpaymkttransfers/sendredpack", "<xml><a>".into()).await;
    assert_eq!(xml_err["err_code"], "XML_ERROR");
    assert!(mock.payments().is_empty());

    let ok = send(&mock, &client, &params).await;
    assert_eq!(ok["result_code"], "SUCCESS", "{ok:?}");
    let again = send(&mock, &client, &params).await;
    assert_eq!(again["send_listid"], ok["send_listid"], "re-entrant");
    assert_eq!(mock.payments().len(), 1);
    assert_eq!(mock.paid_total(&openid), 100);
    assert_eq!(send(&mock, &client, &redpack("B1", &openid, "200")).await["err_code"], "金额和原始单参数不一致");
    let other = mock.add_user().oa_openid;
    assert_eq!(send(&mock, &client, &redpack("B1", &other, "100")).await["err_code"], "FATAL_ERROR");
    // Limits.
    assert_eq!(send(&mock, &client, &redpack("B2", &openid, "99")).await["err_code"], "MONEY_LIMIT");
    assert_eq!(send(&mock, &client, &redpack("B2", &openid, "20001")).await["err_code"], "MONEY_LIMIT");
    let mut scene = redpack("B2", &openid, "50");
    scene.push(("scene_id", "PRODUCT_1".into()));
    assert_eq!(send(&mock, &client, &scene).await["result_code"], "SUCCESS");
    for n in 3..=10 {
        assert_eq!(send(&mock, &client, &redpack(&format!("B{n}"), &openid, "100")).await["result_code"], "SUCCESS");
    }
    assert_eq!(send(&mock, &client, &redpack("B11", &openid, "100")).await["err_code"], "SENDNUM_LIMIT");
    assert_eq!(send(&mock, &client, &redpack("B11", "o_nobody", "100")).await["err_code"], "OPENID_ERROR");
    // Balance.
    mock.set_pay_balance_fen(150);
    assert_eq!(send(&mock, &client, &redpack("C1", &other, "200")).await["err_code"], "NOTENOUGH");

    // gethbinfo from the ledger; refund after 24 h.
    let query = |billno: &str| {
        signed_xml(
            &[
                ("nonce_str", "x"),
                ("mch_billno", billno),
                ("mch_id", MCH_ID),
                ("appid", OA_APPID),
                ("bill_type", "MCHT"),
            ],
            API_KEY_V2,
        )
    };
    let info = post_xml(&mock, &client, "/mmpaymkttransfers/gethbinfo", query("B1")).await;
    assert_eq!((info["status"].as_str(), info["total_amount"].as_str()), ("SENT", "100"));
    mock.receive_red_packet("B1").unwrap();
    assert_eq!(post_xml(&mock, &client, "/mmpaymkttransfers/gethbinfo", query("B1")).await["status"], "RECEIVED");
    assert_eq!(post_xml(&mock, &client, "/mmpaymkttransfers/gethbinfo", query("NOPE")).await["err_code"], "NOT_FOUND");
    mock.advance_clock(24 * 3600);
    assert_eq!(post_xml(&mock, &client, "/mmpaymkttransfers/gethbinfo", query("B2")).await["status"], "REFUND");
    assert_eq!(mock.paid_total(&openid), 100, "only the opened packet stays paid");
    let report: Value = client.get(format!("{}/__mock/pay", mock.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(report["payments"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn v2_enterprise_payment_and_query() {
    let (mock, client, openid) = spawn().await;
    let pay = |no: &str, amount: &str, openid: &str| {
        signed_xml(
            &[
                ("mch_appid", OA_APPID),
                ("mchid", MCH_ID),
                ("nonce_str", "x"),
                ("partner_trade_no", no),
                ("openid", openid),
                ("check_name", "NO_CHECK"),
                ("amount", amount),
                ("desc", "奖励"),
                ("spbill_create_ip", "127.0.0.1"),
            ],
            API_KEY_V2,
        )
    };
    const PATH: &str = "/mmpaymkttransfers/promotion/transfers";
    assert_eq!(post_xml(&mock, &client, PATH, pay("T1", "9", &openid)).await["err_code"], "AMOUNT_LIMIT");
    let ok = post_xml(&mock, &client, PATH, pay("T1", "10", &openid)).await;
    assert_eq!(ok["result_code"], "SUCCESS");
    assert_eq!(post_xml(&mock, &client, PATH, pay("T1", "10", &openid)).await["payment_no"], ok["payment_no"]);
    assert_eq!(post_xml(&mock, &client, PATH, pay("T1", "11", &openid)).await["err_code"], "FATAL_ERROR");
    let q = |no: &str| {
        signed_xml(&[("nonce_str", "x"), ("partner_trade_no", no), ("mch_id", MCH_ID), ("appid", OA_APPID)], API_KEY_V2)
    };
    let info = post_xml(&mock, &client, "/mmpaymkttransfers/gettransferinfo", q("T1")).await;
    assert_eq!((info["status"].as_str(), info["payment_amount"].as_str()), ("SUCCESS", "10"));
    assert_eq!(post_xml(&mock, &client, "/mmpaymkttransfers/gettransferinfo", q("T2")).await["err_code"], "NOT_FOUND");
    assert_eq!(mock.payment(PayChannel::EnterprisePayment, "T1").unwrap().amount_fen, 10);
}

async fn v3(
    mock: &RunningMock,
    client: &Client,
    method: &str,
    url: &str,
    body: &str,
    signer: &MerchantSigner,
) -> (u16, Value, reqwest::header::HeaderMap) {
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
    // Every answer verifies with the exposed WeChat Pay public key.
    let key = public_key(WECHATPAY_PUBLIC_KEY_PEM).unwrap();
    let h = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h("Wechatpay-Serial"), WECHATPAY_PUBLIC_KEY_ID);
    assert!(rsa_verify(
        &key,
        &v3_response_message(&h("Wechatpay-Timestamp"), &h("Wechatpay-Nonce"), &text),
        &h("Wechatpay-Signature")
    ));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), headers)
}

fn bill(no: &str, openid: &str, amount: i64, notify: Option<&str>) -> String {
    let mut body = json!({
        "appid": OA_APPID, "out_bill_no": no, "transfer_scene_id": "1000", "openid": openid,
        "transfer_amount": amount, "transfer_remark": "邻里奖励", "user_recv_perception": "现金奖励",
        "transfer_scene_report_infos": [{"info_type": "活动名称", "info_content": "邻里"}, {"info_type": "奖品说明", "info_content": "奖励"}]
    });
    if let Some(url) = notify {
        body["notify_url"] = json!(url);
    }
    body.to_string()
}

#[tokio::test]
async fn v3_signature_checks() {
    let (mock, client, openid) = spawn().await;
    let signer = MerchantSigner::default_merchant();
    let body = bill("V1", &openid, 100, None);
    let other = MerchantSigner::new(MCH_ID, &signer.serial_no, include_str!("other_key.pem")).unwrap();
    let (status, err, _) = v3(&mock, &client, "POST", BILLS, &body, &other).await;
    assert_eq!((status, err["code"].as_str()), (401, Some("SIGN_ERROR")));
    let wrong_serial = MerchantSigner::new(MCH_ID, "DEADBEEF", wechat_mock::pay::MERCHANT_PRIVATE_KEY_PEM).unwrap();
    assert_eq!(v3(&mock, &client, "POST", BILLS, &body, &wrong_serial).await.0, 401);
    // Signed over another body.
    let auth = signer.authorization("POST", BILLS, mock.now_unix(), "{}");
    let resp = client
        .post(format!("{}{BILLS}", mock.base_url))
        .header("Authorization", auth)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Stale timestamp.
    let auth = signer.authorization("POST", BILLS, mock.now_unix() - 301, &body);
    let resp = client
        .post(format!("{}{BILLS}", mock.base_url))
        .header("Authorization", auth)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(mock.payments().is_empty());
    let (status, ok, _) = v3(&mock, &client, "POST", BILLS, &body, &signer).await;
    assert_eq!((status, ok["state"].as_str()), (200, Some("WAIT_USER_CONFIRM")));
    assert!(ok["package_info"].as_str().is_some_and(|p| !p.is_empty()));
}

#[tokio::test]
async fn v3_params_reentrancy_states_and_notifications() {
    let (mock, client, openid) = spawn().await;
    let merchant = Merchant::start(vec![500, 200]).await;
    let signer = MerchantSigner::default_merchant();
    assert_eq!(
        v3(&mock, &client, "POST", BILLS, &bill("V1", &openid, 9, None), &signer).await.1["code"],
        "PARAM_ERROR"
    );
    let mut long = serde_json::from_str::<Value>(&bill("V1", &openid, 10, None)).unwrap();
    long["transfer_remark"] = json!("长".repeat(33));
    assert_eq!(v3(&mock, &client, "POST", BILLS, &long.to_string(), &signer).await.0, 400);

    let body = bill("V1", &openid, 1000, Some(&merchant.url));
    let (_, first, _) = v3(&mock, &client, "POST", BILLS, &body, &signer).await;
    let (_, again, _) = v3(&mock, &client, "POST", BILLS, &body, &signer).await;
    assert_eq!(first["transfer_bill_no"], again["transfer_bill_no"]);
    let (status, diff, _) =
        v3(&mock, &client, "POST", BILLS, &bill("V1", &openid, 1001, Some(&merchant.url)), &signer).await;
    assert_eq!((status, diff["code"].as_str()), (400, Some("INVALID_REQUEST")));
    let balance = mock.pay_balance_fen();

    let q = format!("{BILLS}/out-bill-no/V1");
    assert_eq!(v3(&mock, &client, "GET", &q, "", &signer).await.1["state"], "WAIT_USER_CONFIRM");
    assert_eq!(v3(&mock, &client, "GET", &format!("{BILLS}/out-bill-no/NOPE"), "", &signer).await.0, 404);
    mock.confirm_transfer("V1").unwrap();
    mock.deliver_due_notifications().await;
    assert_eq!(v3(&mock, &client, "GET", &q, "", &signer).await.1["state"], "SUCCESS");
    assert_eq!(mock.paid_total(&openid), 1000);
    assert_eq!(mock.pay_balance_fen(), balance);

    // First delivery answered 500 → retry due 15 s later on the mock clock.
    assert_eq!(merchant.received().len(), 1);
    assert_eq!(mock.deliver_due_notifications().await, 0, "not due yet");
    mock.advance_clock(15);
    assert_eq!(mock.deliver_due_notifications().await, 1);
    mock.advance_clock(3600);
    assert_eq!(mock.deliver_due_notifications().await, 0, "acknowledged with 200: done");
    let got = merchant.received();
    assert_eq!(got.len(), 2);
    let n = &mock.pay_notifications()[0];
    assert_eq!((n.attempts, n.acknowledged, n.results.clone()), (2, true, vec![Some(500), Some(200)]));
    // The merchant's view: signature verifies, resource decrypts with the APIv3 key.
    let (headers, body) = &got[1];
    let key = public_key(WECHATPAY_PUBLIC_KEY_PEM).unwrap();
    assert!(rsa_verify(&key, &v3_response_message(&headers[0], &headers[1], body), &headers[2]));
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["event_type"], "MCHTRANSFER.BILL.FINISHED");
    let r = &v["resource"];
    let plain = aes_gcm_decrypt(
        API_V3_KEY,
        r["nonce"].as_str().unwrap(),
        r["associated_data"].as_str().unwrap(),
        r["ciphertext"].as_str().unwrap(),
    )
    .unwrap();
    let plain: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(
        (plain["out_bill_no"].as_str(), plain["state"].as_str(), plain["transfer_amount"].as_i64()),
        (Some("V1"), Some("SUCCESS"), Some(1000))
    );

    // Cancel while waiting; cancel again refused; decline and timeout.
    v3(&mock, &client, "POST", BILLS, &bill("V2", &openid, 100, None), &signer).await;
    let (status, c, _) = v3(&mock, &client, "POST", &format!("{BILLS}/out-bill-no/V2/cancel"), "", &signer).await;
    assert_eq!((status, c["state"].as_str()), (200, Some("CANCELING")));
    assert_eq!(
        v3(&mock, &client, "GET", &format!("{BILLS}/out-bill-no/V2"), "", &signer).await.1["state"],
        "CANCELLED"
    );
    assert_eq!(v3(&mock, &client, "POST", &format!("{BILLS}/out-bill-no/V2/cancel"), "", &signer).await.0, 400);
    v3(&mock, &client, "POST", BILLS, &bill("V3", &openid, 100, None), &signer).await;
    assert_eq!(mock.decline_transfer("V3").unwrap().status, PaymentStatus::Cancelled);
    v3(&mock, &client, "POST", BILLS, &bill("V4", &openid, 100, None), &signer).await;
    mock.advance_clock(24 * 3600);
    assert_eq!(
        v3(&mock, &client, "GET", &format!("{BILLS}/out-bill-no/V4"), "", &signer).await.1["state"],
        "CANCELLED"
    );
    assert_eq!(mock.pay_balance_fen(), balance, "cancelled bills returned their money");
}

#[tokio::test]
async fn faults_systemerror_not_found_timeout_after_payment_duplicates() {
    let (mock, client, openid) = spawn().await;
    mock.inject_fault(Fault::pay_error("/mmpaymkttransfers/sendredpack", "SYSTEMERROR", 2)).unwrap();
    let params = redpack("F1", &openid, "100");
    assert_eq!(send(&mock, &client, &params).await["err_code"], "SYSTEMERROR");
    assert_eq!(send(&mock, &client, &params).await["err_code"], "SYSTEMERROR");
    assert!(mock.payments().is_empty());
    assert_eq!(send(&mock, &client, &params).await["result_code"], "SUCCESS");

    mock.inject_fault(Fault::pay_error("/mmpaymkttransfers/gethbinfo", "NOT_FOUND", 1)).unwrap();
    let q = signed_xml(
        &[("nonce_str", "x"), ("mch_billno", "F1"), ("mch_id", MCH_ID), ("appid", OA_APPID), ("bill_type", "MCHT")],
        API_KEY_V2,
    );
    assert_eq!(post_xml(&mock, &client, "/mmpaymkttransfers/gethbinfo", q.clone()).await["err_code"], "NOT_FOUND");
    assert_eq!(post_xml(&mock, &client, "/mmpaymkttransfers/gethbinfo", q).await["status"], "SENT");

    // Timeout after the payment was made: the client gives up, the ledger has it, a retry with the
    // same billno returns the same packet.
    mock.inject_fault(Fault::delay_after("/mmpaymkttransfers/sendredpack", 300, 1)).unwrap();
    let params = redpack("F2", &openid, "100");
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let timed_out = client
        .post(format!("{}/mmpaymkttransfers/sendredpack", mock.base_url))
        .timeout(Duration::from_millis(50))
        .body(signed_xml(&pairs, API_KEY_V2))
        .send()
        .await;
    assert!(timed_out.is_err());
    assert!(mock.payment(PayChannel::RedPacket, "F2").is_some());
    let retry = send(&mock, &client, &params).await;
    assert_eq!(retry["result_code"], "SUCCESS");
    assert_eq!(mock.paid_total(&openid), 200);

    // v3 NOT_FOUND while processing, signed.
    let signer = MerchantSigner::default_merchant();
    v3(&mock, &client, "POST", BILLS, &bill("W1", &openid, 100, None), &signer).await;
    let path = format!("{BILLS}/out-bill-no/W1");
    mock.inject_fault(Fault::pay_error(path.clone(), "NOT_FOUND", 1)).unwrap();
    assert_eq!(v3(&mock, &client, "GET", &path, "", &signer).await.0, 404);
    assert_eq!(v3(&mock, &client, "GET", &path, "", &signer).await.0, 200);

    // Duplicate notifications.
    let merchant = Merchant::start(vec![]).await;
    v3(&mock, &client, "POST", BILLS, &bill("W2", &openid, 100, Some(&merchant.url)), &signer).await;
    mock.set_duplicate_notifications(2);
    mock.confirm_transfer("W2").unwrap();
    mock.deliver_due_notifications().await;
    let got = merchant.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|(_, body)| body == &got[0].1), "same notification id and body");
}

/// A tiny merchant notify endpoint: answers the queued statuses in order, then 200.
struct Merchant {
    url: String,
    state: MerchantState,
}

impl Merchant {
    async fn start(mut statuses: Vec<u16>) -> Self {
        statuses.reverse();
        let state: MerchantState = Arc::new(Mutex::new((statuses, Vec::new())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Route::new().at("/notify", post(notify_endpoint)).data(Arc::clone(&state));
        tokio::spawn(Server::new_with_acceptor(TcpAcceptor::from_tokio(listener).unwrap()).run(app));
        Self { url: format!("http://{addr}/notify"), state }
    }

    fn received(&self) -> Vec<(Vec<String>, String)> {
        self.state.lock().unwrap().1.clone()
    }
}

type MerchantState = Arc<Mutex<(Vec<u16>, Vec<(Vec<String>, String)>)>>;

#[handler]
async fn notify_endpoint(req: &Request, body: Body, Data(state): Data<&MerchantState>) -> Response {
    let body = body.into_string().await.unwrap();
    let h = |n: &str| req.header(n).unwrap_or_default().to_owned();
    let mut state = state.lock().unwrap();
    state.1.push((vec![h("Wechatpay-Timestamp"), h("Wechatpay-Nonce"), h("Wechatpay-Signature")], body));
    let status = state.0.pop().unwrap_or(200);
    StatusCode::from_u16(status).unwrap().into_response()
}
