//! The HTTPS mock: its server certificate, and the merchant client certificate WeChat Pay's v2
//! payout APIs require (`CA_ERROR` without one), while everything else needs none.

use std::collections::BTreeMap;

use reqwest::{tls::Version, Certificate, Client, Identity};
use wechat_mock::callback::xml::parse_fields;
use wechat_mock::pay::sign::{v2_sign, SignType};
use wechat_mock::pay::tls::{CA_CERT_PEM, FOREIGN_CLIENT_PEM, MERCHANT_CLIENT_PEM};
use wechat_mock::pay::{API_KEY_V2, MCH_ID};
use wechat_mock::{MockConfig, PayChannel, RunningMock, OA_APPID, OA_SECRET};

const SENDREDPACK: &str = "/mmpaymkttransfers/sendredpack";
const V2_PAYOUT_PATHS: [&str; 4] = [
    SENDREDPACK,
    "/mmpaymkttransfers/gethbinfo",
    "/mmpaymkttransfers/promotion/transfers",
    "/mmpaymkttransfers/gettransferinfo",
];

async fn https_mock() -> RunningMock {
    wechat_mock::start_tls(MockConfig::default(), "127.0.0.1:0").await.unwrap()
}

/// A client trusting the mock CA and presenting `identity` (certificate and key PEM).
fn client(identity: Option<&str>) -> Client {
    let mut builder =
        Client::builder().use_rustls_tls().add_root_certificate(Certificate::from_pem(CA_CERT_PEM.as_bytes()).unwrap());
    if let Some(pem) = identity {
        builder = builder.identity(Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

fn red_packet_xml(billno: &str, openid: &str) -> String {
    let params = [
        ("nonce_str", "n0nce"),
        ("mch_billno", billno),
        ("mch_id", MCH_ID),
        ("wxappid", OA_APPID),
        ("send_name", "邻里"),
        ("re_openid", openid),
        ("total_amount", "100"),
        ("total_num", "1"),
        ("wishing", "谢谢"),
        ("client_ip", "127.0.0.1"),
        ("act_name", "活动"),
        ("remark", "备注"),
    ];
    let sign = v2_sign(params.iter().copied(), API_KEY_V2, SignType::Md5);
    let mut xml = String::from("<xml>");
    for (k, v) in params.iter().chain(std::iter::once(&("sign", sign.as_str()))) {
        xml.push_str(&format!("<{k}><![CDATA[{v}]]></{k}>"));
    }
    xml + "</xml>"
}

async fn post(client: &Client, mock: &RunningMock, path: &str, xml: String) -> BTreeMap<String, String> {
    let text = client.post(format!("{}{path}", mock.base_url)).body(xml).send().await.unwrap().text().await.unwrap();
    parse_fields(&text).unwrap().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn assert_ca_error(answer: &BTreeMap<String, String>) {
    assert_eq!(answer["return_code"], "SUCCESS", "{answer:?}");
    assert_eq!(answer["result_code"], "FAIL", "{answer:?}");
    assert_eq!(answer["err_code"], "CA_ERROR", "{answer:?}");
}

#[tokio::test]
async fn the_merchant_certificate_pays_over_tls_1_3_and_1_2() {
    let mock = https_mock().await;
    assert!(mock.base_url.starts_with("https://127.0.0.1:"), "{}", mock.base_url);
    let openid = mock.add_user().oa_openid;
    let answer = post(&client(Some(MERCHANT_CLIENT_PEM)), &mock, SENDREDPACK, red_packet_xml("TLS13", &openid)).await;
    assert_eq!(answer["result_code"], "SUCCESS", "{answer:?}");
    // TLS 1.2 proves the client's key with another handshake message; it must pass too.
    let tls12 = Client::builder()
        .use_rustls_tls()
        .max_tls_version(Version::TLS_1_2)
        .add_root_certificate(Certificate::from_pem(CA_CERT_PEM.as_bytes()).unwrap())
        .identity(Identity::from_pem(MERCHANT_CLIENT_PEM.as_bytes()).unwrap())
        .build()
        .unwrap();
    let answer = post(&tls12, &mock, SENDREDPACK, red_packet_xml("TLS12", &openid)).await;
    assert_eq!(answer["result_code"], "SUCCESS", "{answer:?}");
    assert_eq!(mock.paid_total(&openid), 200);
}

#[tokio::test]
async fn v2_payouts_without_the_merchant_certificate_are_ca_errors_and_pay_nothing() {
    let mock = https_mock().await;
    let openid = mock.add_user().oa_openid;
    for (who, client) in [("no certificate", client(None)), ("a foreign CA's", client(Some(FOREIGN_CLIENT_PEM)))] {
        for path in V2_PAYOUT_PATHS {
            // Refused before the body is read: even a well-signed red packet.
            let answer = post(&client, &mock, path, red_packet_xml("REFUSED1", &openid)).await;
            assert_ca_error(&answer);
            assert!(mock.call_count(path) > 0, "{who}: {path} was answered by WeChat, not the handshake");
        }
    }
    assert_eq!(mock.paid_total(&openid), 0);
    assert!(mock.payment(PayChannel::RedPacket, "REFUSED1").is_none());
}

#[tokio::test]
async fn everything_else_needs_no_client_certificate_but_the_server_must_be_trusted() {
    let mock = https_mock().await;
    let anonymous = client(None);
    let token: serde_json::Value = anonymous
        .get(format!(
            "{}/cgi-bin/token?grant_type=client_credential&appid={OA_APPID}&secret={OA_SECRET}",
            mock.base_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(token["access_token"].is_string(), "{token}");
    assert!(anonymous.get(format!("{}/__mock/pay", mock.base_url)).send().await.unwrap().status().is_success());
    // A client that does not trust the mock CA cannot connect at all.
    let distrustful = Client::builder().use_rustls_tls().build().unwrap();
    assert!(distrustful.get(format!("{}/__mock/pay", mock.base_url)).send().await.is_err());
    mock.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_plain_http_mock_checks_no_client_certificate() {
    let mock = wechat_mock::start(MockConfig::default(), "127.0.0.1:0").await.unwrap();
    assert!(mock.base_url.starts_with("http://"), "{}", mock.base_url);
    let openid = mock.add_user().oa_openid;
    let answer = post(&Client::new(), &mock, SENDREDPACK, red_packet_xml("PLAIN1", &openid)).await;
    assert_eq!(answer["result_code"], "SUCCESS", "{answer:?}");
}
