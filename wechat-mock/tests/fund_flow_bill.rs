//! The daily fund-flow bill (资金账单) over HTTP: payouts and money coming back on one Beijing day,
//! the signed application, the unsigned download and its SHA-1, and the ways both calls fail.

use reqwest::Client;
use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};
use wechat_mock::callback::xml::parse_fields;
use wechat_mock::pay::bill::{BILL_DOWNLOAD_PATH, FUND_FLOW_BILL_PATH, FUND_FLOW_HEADER, FUND_FLOW_SUMMARY_HEADER};
use wechat_mock::pay::sign::{public_key, rsa_verify, v2_sign, v3_response_message, MerchantSigner, SignType};
use wechat_mock::pay::{API_KEY_V2, MCH_ID, WECHATPAY_PUBLIC_KEY_PEM};
use wechat_mock::{BillError, Fault, MockConfig, PayChannel, RunningMock, OA_APPID};

/// 2024-06-01 00:30:00 in Beijing (2024-05-31 16:30 UTC).
const DAY_ONE_0030: i64 = 1_717_173_000;
const BILLS: &str = "/v3/fund-app/mch-transfer/transfer-bills";

async fn spawn() -> (RunningMock, Client, String) {
    let config = MockConfig { clock_start_unix: Some(DAY_ONE_0030), ..MockConfig::default() };
    let mock = wechat_mock::start(config, "127.0.0.1:0").await.unwrap();
    let openid = mock.add_user().oa_openid;
    (mock, Client::new(), openid)
}

async fn post_v2(mock: &RunningMock, client: &Client, path: &str, params: &[(&str, &str)]) {
    let sign = v2_sign(params.iter().copied(), API_KEY_V2, SignType::Md5);
    let mut xml = String::from("<xml>");
    for (k, v) in params.iter().chain(std::iter::once(&("sign", sign.as_str()))) {
        xml.push_str(&format!("<{k}><![CDATA[{v}]]></{k}>"));
    }
    xml.push_str("</xml>");
    let text = client.post(format!("{}{path}", mock.base_url)).body(xml).send().await.unwrap().text().await.unwrap();
    let answer = parse_fields(&text).unwrap();
    assert_eq!(answer.get("result_code"), Some("SUCCESS"), "{text}");
}

async fn send_red_packet(mock: &RunningMock, client: &Client, billno: &str, openid: &str, fen: &str) {
    let params = [
        ("nonce_str", "n0nce"),
        ("mch_billno", billno),
        ("mch_id", MCH_ID),
        ("wxappid", OA_APPID),
        ("send_name", "邻里"),
        ("re_openid", openid),
        ("total_amount", fen),
        ("total_num", "1"),
        ("wishing", "谢谢"),
        ("client_ip", "127.0.0.1"),
        ("act_name", "活动"),
        ("remark", "备注"),
    ];
    post_v2(mock, client, "/mmpaymkttransfers/sendredpack", &params).await;
}

async fn pay_enterprise(mock: &RunningMock, client: &Client, trade_no: &str, openid: &str, fen: &str, desc: &str) {
    let params = [
        ("mch_appid", OA_APPID),
        ("mchid", MCH_ID),
        ("nonce_str", "x"),
        ("partner_trade_no", trade_no),
        ("openid", openid),
        ("check_name", "NO_CHECK"),
        ("amount", fen),
        ("desc", desc),
        ("spbill_create_ip", "127.0.0.1"),
    ];
    post_v2(mock, client, "/mmpaymkttransfers/promotion/transfers", &params).await;
}

/// A v3 call; every JSON answer must verify with the mock's WeChat Pay public key.
async fn v3(
    mock: &RunningMock,
    client: &Client,
    method: &str,
    url: &str,
    body: &str,
    signer: &MerchantSigner,
) -> (u16, Value) {
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
    let h = |n: &str| headers.get(n).unwrap_or_else(|| panic!("{n} missing")).to_str().unwrap().to_owned();
    let key = public_key(WECHATPAY_PUBLIC_KEY_PEM).unwrap();
    assert!(
        rsa_verify(
            &key,
            &v3_response_message(&h("Wechatpay-Timestamp"), &h("Wechatpay-Nonce"), &text),
            &h("Wechatpay-Signature")
        ),
        "answer signed"
    );
    (status, serde_json::from_str(&text).unwrap())
}

async fn create_transfer(mock: &RunningMock, client: &Client, no: &str, openid: &str, fen: i64) {
    let body = json!({
        "appid": OA_APPID, "out_bill_no": no, "transfer_scene_id": "1000", "openid": openid,
        "transfer_amount": fen, "transfer_remark": "邻里奖励", "user_recv_perception": "现金奖励",
    })
    .to_string();
    let (status, answer) = v3(mock, client, "POST", BILLS, &body, &MerchantSigner::default_merchant()).await;
    assert_eq!((status, answer["state"].as_str()), (200, Some("WAIT_USER_CONFIRM")), "{answer}");
}

/// `(status, content type, whether signed, body)` of a signed download.
async fn download(mock: &RunningMock, client: &Client, url: &str) -> (u16, String, bool, String) {
    let auth = MerchantSigner::default_merchant().authorization("GET", url, mock.now_unix(), "");
    let resp = client.get(format!("{}{url}", mock.base_url)).header("Authorization", auth).send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp.headers().get("Content-Type").unwrap().to_str().unwrap().to_owned();
    let signed = resp.headers().contains_key("Wechatpay-Signature");
    (status, content_type, signed, resp.text().await.unwrap())
}

/// The lines of a bill between the two headers, split into fields without their backticks.
fn lines_of(file: &str) -> (Vec<Vec<String>>, Vec<String>) {
    assert!(file.ends_with("\r\n"));
    let lines: Vec<&str> = file.trim_end_matches("\r\n").split("\r\n").collect();
    assert_eq!(lines[0], FUND_FLOW_HEADER);
    assert_eq!(lines[lines.len() - 2], FUND_FLOW_SUMMARY_HEADER);
    let fields = |line: &str| -> Vec<String> {
        line.split(',')
            .map(|field| field.strip_prefix('`').unwrap_or_else(|| panic!("{field:?} has no backtick")).to_owned())
            .collect()
    };
    let movements = lines[1..lines.len() - 2].iter().map(|line| fields(line)).collect();
    (movements, fields(lines[lines.len() - 1]))
}

#[tokio::test]
async fn a_day_of_payouts_and_returns_is_billed_downloaded_and_hashed() {
    let (mock, client, openid) = spawn().await;
    let signer = MerchantSigner::default_merchant();
    send_red_packet(&mock, &client, "R0", &openid, "100").await;
    // The next day, one minute after R0 was sent: R0 is refunded at exactly +24 h, but the mock
    // only books it when something looks (here: the bill), after the payouts below.
    mock.advance_clock(24 * 3600 + 60);
    send_red_packet(&mock, &client, "R1", &openid, "200").await;
    pay_enterprise(&mock, &client, "E1", &openid, "300", "奖励,第1名").await;
    create_transfer(&mock, &client, "V1", &openid, 400).await;
    mock.confirm_transfer("V1").unwrap();
    create_transfer(&mock, &client, "V2", &openid, 500).await;
    mock.decline_transfer("V2").unwrap();
    create_transfer(&mock, &client, "V3", &openid, 600).await;
    mock.fail_transfer("V3", "ACCOUNT_FROZEN").unwrap();

    let (status, answer) = v3(
        &mock,
        &client,
        "GET",
        &format!("{FUND_FLOW_BILL_PATH}?bill_date=2024-06-02&account_type=BASIC"),
        "",
        &signer,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["hash_type"], "SHA1");
    let download_url = answer["download_url"].as_str().unwrap();
    let prefix = format!("{}{BILL_DOWNLOAD_PATH}?token=", mock.base_url);
    assert!(download_url.starts_with(&prefix), "{download_url} is the mock's own URL");
    let path = download_url.strip_prefix(&mock.base_url).unwrap();

    let (status, content_type, signed, file) = download(&mock, &client, path).await;
    assert_eq!((status, content_type.as_str(), signed), (200, "text/plain; charset=utf-8", false));
    assert_eq!(answer["hash_value"].as_str().unwrap(), hex::encode(Sha1::digest(file.as_bytes())));
    assert_eq!(mock.fund_flow_bill("2024-06-02").unwrap(), file, "in-process and downloaded bills agree");

    let (lines, summary) = lines_of(&file);
    let wechat_no = |channel, no| mock.payment(channel, no).unwrap().wechat_no;
    let expected = [
        (
            wechat_no(PayChannel::RedPacket, "R0"),
            "现金红包",
            "退款",
            "收入",
            "1.00",
            "100000.00",
            "红包过期未领取退款",
            "R0",
        ),
        (wechat_no(PayChannel::RedPacket, "R1"), "现金红包", "企业红包", "支出", "2.00", "99998.00", "备注", "R1"),
        (
            wechat_no(PayChannel::EnterprisePayment, "E1"),
            "企业付款",
            "企业付款到零钱",
            "支出",
            "3.00",
            "99995.00",
            "奖励，第1名",
            "E1",
        ),
        (
            wechat_no(PayChannel::TransferBill, "V1"),
            "商家转账",
            "商家转账",
            "支出",
            "4.00",
            "99991.00",
            "邻里奖励",
            "V1",
        ),
        (
            wechat_no(PayChannel::TransferBill, "V2"),
            "商家转账",
            "商家转账",
            "支出",
            "5.00",
            "99986.00",
            "邻里奖励",
            "V2",
        ),
        (
            wechat_no(PayChannel::TransferBill, "V2"),
            "商家转账",
            "退款",
            "收入",
            "5.00",
            "99991.00",
            "转账撤销退回",
            "V2",
        ),
        (
            wechat_no(PayChannel::TransferBill, "V3"),
            "商家转账",
            "商家转账",
            "支出",
            "6.00",
            "99985.00",
            "邻里奖励",
            "V3",
        ),
        (
            wechat_no(PayChannel::TransferBill, "V3"),
            "商家转账",
            "退款",
            "收入",
            "6.00",
            "99991.00",
            "转账失败退回:ACCOUNT_FROZEN",
            "V3",
        ),
    ];
    assert_eq!(lines.len(), expected.len(), "{file}");
    for (line, (wx_no, name, kind, direction, amount, balance, remark, bill_no)) in lines.iter().zip(&expected) {
        assert_eq!(line.len(), 11, "{line:?}");
        assert_eq!(
            (&line[1], &line[3], &line[4], &line[5], &line[6], &line[7], &line[8], &line[9], &line[10]),
            (
                wx_no,
                &name.to_string(),
                &kind.to_string(),
                &direction.to_string(),
                &amount.to_string(),
                &balance.to_string(),
                &MCH_ID.to_string(),
                &remark.to_string(),
                &bill_no.to_string()
            ),
            "{file}"
        );
        assert!(line[0].starts_with("2024-06-02 00:3"), "{line:?}");
        assert_eq!(line[0].len(), "2024-06-02 00:30:00".len());
    }
    assert!(lines.windows(2).all(|pair| pair[0][0] <= pair[1][0]), "oldest first");
    let mut flow_nos: Vec<&str> = lines.iter().map(|line| line[2].as_str()).collect();
    flow_nos.sort_unstable();
    flow_nos.dedup();
    assert_eq!(flow_nos.len(), lines.len(), "flow numbers are unique");
    assert_eq!(summary, ["8", "3", "12.00", "5", "20.00"]);
    assert_eq!(mock.pay_balance_fen(), 9_999_100, "the last balance is the merchant's");

    // The day before: R0 going out, at the time of day its refund is booked the next day.
    let (day_one, summary) = lines_of(&mock.fund_flow_bill("2024-06-01").unwrap());
    assert_eq!(day_one.len(), 1);
    assert_eq!((day_one[0][5].as_str(), day_one[0][6].as_str(), day_one[0][7].as_str()), ("支出", "1.00", "99999.00"));
    assert_eq!(day_one[0][0].replace("2024-06-01", "2024-06-02"), lines[0][0], "refunded 24 h after sending");
    assert_eq!(summary, ["1", "0", "0.00", "1", "1.00"]);

    // A token keeps the bytes it was hashed over; a new application sees the new movement.
    pay_enterprise(&mock, &client, "E2", &openid, "10", "奖励").await;
    assert_eq!(download(&mock, &client, path).await.3, file);
    let (_, again) =
        v3(&mock, &client, "GET", &format!("{FUND_FLOW_BILL_PATH}?bill_date=2024-06-02"), "", &signer).await;
    assert_ne!(again["hash_value"], answer["hash_value"]);
    let again_path = again["download_url"].as_str().unwrap().strip_prefix(&mock.base_url).unwrap().to_owned();
    let (_, summary) = lines_of(&download(&mock, &client, &again_path).await.3);
    assert_eq!(summary, ["9", "3", "12.00", "6", "20.10"]);
}

#[tokio::test]
async fn bad_signatures_dates_accounts_tokens_and_faults() {
    let (mock, client, _) = spawn().await;
    let signer = MerchantSigner::default_merchant();
    let other = MerchantSigner::new(MCH_ID, &signer.serial_no, include_str!("other_key.pem")).unwrap();
    let today = format!("{FUND_FLOW_BILL_PATH}?bill_date=2024-06-01");

    let (status, err) = v3(&mock, &client, "GET", &today, "", &other).await;
    assert_eq!((status, err["code"].as_str()), (401, Some("SIGN_ERROR")));
    // Signed for another query.
    let auth = signer.authorization("GET", &format!("{FUND_FLOW_BILL_PATH}?bill_date=2024-05-31"), mock.now_unix(), "");
    let resp = client.get(format!("{}{today}", mock.base_url)).header("Authorization", auth).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client.get(format!("{}{today}", mock.base_url)).send().await.unwrap();
    assert_eq!(resp.status(), 401, "no Authorization");

    let (status, answer) = v3(&mock, &client, "GET", &today, "", &signer).await;
    assert_eq!(status, 200, "today's bill, so far");
    let path = answer["download_url"].as_str().unwrap().strip_prefix(&mock.base_url).unwrap().to_owned();
    let (status, _, _, file) = download(&mock, &client, &path).await;
    assert_eq!(status, 200);
    assert_eq!(file, format!("{FUND_FLOW_HEADER}\r\n{FUND_FLOW_SUMMARY_HEADER}\r\n`0,`0,`0.00,`0,`0.00\r\n"));
    let auth = other.authorization("GET", &path, mock.now_unix(), "");
    let resp = client.get(format!("{}{path}", mock.base_url)).header("Authorization", auth).send().await.unwrap();
    assert_eq!(resp.status(), 401, "the download needs the merchant's signature too");
    let (status, err) = v3(&mock, &client, "GET", &format!("{BILL_DOWNLOAD_PATH}?token=nope"), "", &signer).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("PARAM_ERROR")));

    let (status, err) =
        v3(&mock, &client, "GET", &format!("{FUND_FLOW_BILL_PATH}?bill_date=2024-06-02"), "", &signer).await;
    assert_eq!((status, err), (400, json!({"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"})));
    for query in ["bill_date=2024-02-30", "bill_date=20240601", "", "bill_date=2024-06-01&account_type=OPERATION"] {
        let (status, err) = v3(&mock, &client, "GET", &format!("{FUND_FLOW_BILL_PATH}?{query}"), "", &signer).await;
        assert_eq!((status, err["code"].as_str()), (400, Some("PARAM_ERROR")), "{query}");
    }

    // Injected pay errors, signed like every v3 answer.
    mock.inject_fault(Fault::pay_error(FUND_FLOW_BILL_PATH, "SYSTEM_ERROR", 1)).unwrap();
    let (status, err) = v3(&mock, &client, "GET", &today, "", &signer).await;
    assert_eq!((status, err["code"].as_str()), (500, Some("SYSTEM_ERROR")));
    assert_eq!(v3(&mock, &client, "GET", &today, "", &signer).await.0, 200);
    mock.inject_fault(Fault::pay_error(BILL_DOWNLOAD_PATH, "NOT_FOUND", 1)).unwrap();
    let (status, err) = v3(&mock, &client, "GET", &path, "", &signer).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")));
    assert_eq!(download(&mock, &client, &path).await.0, 200);
    assert_eq!(mock.call_count(FUND_FLOW_BILL_PATH), 11);
}

#[tokio::test]
async fn in_process_bills_show_balance_changes_of_the_test_control() {
    let (mock, _client, _) = spawn().await;
    assert_eq!(mock.beijing_today(), "2024-06-01");
    mock.set_pay_balance_fen(150);
    mock.set_pay_balance_fen(150);
    mock.set_pay_balance_fen(1_000_050);
    let (lines, summary) = lines_of(&mock.fund_flow_bill("2024-06-01").unwrap());
    let view: Vec<[&str; 6]> = lines
        .iter()
        .map(|l| [l[3].as_str(), l[4].as_str(), l[5].as_str(), l[6].as_str(), l[7].as_str(), l[10].as_str()])
        .collect();
    assert_eq!(
        view,
        [["提现", "提现", "支出", "99998.50", "1.50", ""], ["充值", "充值", "收入", "9999.00", "10000.50", ""]]
    );
    assert_eq!(summary, ["2", "1", "9999.00", "1", "99998.50"]);
    assert_eq!(mock.fund_flow_bill("2024-06-02"), Err(BillError::NoStatementExist("2024-06-02".into())));
    assert_eq!(mock.fund_flow_bill("2024-6-1"), Err(BillError::InvalidDate("2024-6-1".into())));
    mock.reset();
    assert_eq!(lines_of(&mock.fund_flow_bill("2024-06-01").unwrap()).0.len(), 0, "a reset forgets the journal");
}
