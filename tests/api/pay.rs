//! linli's WeChat Pay client against wechat-mock's WeChat Pay: two independent implementations
//! of the v2 and v3 protocols (signatures, XML, RSA, bill-number re-entrancy) must agree; over
//! HTTPS, v2 payouts must present the merchant's client certificate, as WeChat requires.

use std::time::Duration;

use linli::config::{PaySettings, Secret};
use linli::wechat::pay::clients::PayClients;
use linli::wechat::pay::v2::{CheckName, RedPackStatus, SendRedPack, Transfer, V2Client, V2Config, V2Outcome, V2Query};
use linli::wechat::pay::v3::transfer_bills::{CreateTransferBill, TransferOutcome, TransferSceneReportInfo};
use linli::wechat::pay::v3::{MerchantSigner, V3Client, V3Config, WechatPayKeys};
use wechat_mock::pay::config as merchant;
use wechat_mock::pay::tls;
use wechat_mock::PayChannel;

async fn mock() -> wechat_mock::RunningMock {
    wechat_mock::start(wechat_mock::MockConfig::default(), "127.0.0.1:0").await.expect("start wechat-mock")
}

fn v2(mock: &wechat_mock::RunningMock, timeout: Duration) -> V2Client {
    V2Client::new(V2Config {
        base_url: mock.base_url.clone(),
        mch_id: merchant::MCH_ID.to_owned(),
        api_key: Secret::new(merchant::API_KEY_V2),
        client_identity_pem: None,
        root_ca_pem: None,
        connect_timeout: Duration::from_secs(2),
        timeout,
        require_signed_answers: false,
    })
    .expect("v2 client")
}

async fn https_mock() -> wechat_mock::RunningMock {
    wechat_mock::start_tls(wechat_mock::MockConfig::default(), "127.0.0.1:0").await.expect("start wechat-mock over TLS")
}

/// A v2 client of an HTTPS mock: presenting `identity` (certificate and key PEM), trusting the
/// mock CA when `trust_mock_ca`.
fn v2_over_https(mock: &wechat_mock::RunningMock, identity: Option<&str>, trust_mock_ca: bool) -> V2Client {
    V2Client::new(V2Config {
        base_url: mock.base_url.clone(),
        mch_id: merchant::MCH_ID.to_owned(),
        api_key: Secret::new(merchant::API_KEY_V2),
        client_identity_pem: identity.map(Secret::new),
        root_ca_pem: trust_mock_ca.then(|| tls::CA_CERT_PEM.to_owned()),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(3),
        require_signed_answers: false,
    })
    .expect("v2 client")
}

fn enterprise_payment(no: &str, openid: &str) -> Transfer {
    Transfer {
        partner_trade_no: no.to_owned(),
        mch_appid: wechat_mock::OA_APPID.to_owned(),
        openid: openid.to_owned(),
        check_name: CheckName::NoCheck,
        amount: 300,
        desc: "邻里奖励".to_owned(),
        spbill_create_ip: "127.0.0.1".to_owned(),
        device_info: None,
    }
}

fn red_packet(billno: &str, openid: &str, fen: u64) -> SendRedPack {
    SendRedPack {
        mch_billno: billno.to_owned(),
        wxappid: wechat_mock::OA_APPID.to_owned(),
        send_name: "阳光物业".to_owned(),
        re_openid: openid.to_owned(),
        total_amount: fen,
        wishing: "新春快乐，邻里和睦".to_owned(),
        client_ip: "127.0.0.1".to_owned(),
        act_name: "春节红包".to_owned(),
        remark: "邻里".to_owned(),
        scene_id: None,
        risk_info: None,
        consume_mch_id: None,
    }
}

#[tokio::test]
async fn a_red_packet_is_paid_once_however_often_its_number_is_sent() {
    let mock = mock().await;
    let user = mock.add_user();
    let client = v2(&mock, Duration::from_secs(3));
    let first = client.send_red_pack(&red_packet("LINLI20261122000001", &user.oa_openid, 188)).await.unwrap();
    let V2Outcome::Success(sent) = first else { panic!("not paid: {first:?}") };
    let again = client.send_red_pack(&red_packet("LINLI20261122000001", &user.oa_openid, 188)).await.unwrap();
    let V2Outcome::Success(again) = again else { panic!("re-entry refused: {again:?}") };
    assert_eq!(again.send_listid, sent.send_listid);
    assert_eq!(mock.paid_total(&user.oa_openid), 188);
    // Below WeChat's 1-yuan floor without a scene: refused for good, nothing paid.
    let small = client.send_red_pack(&red_packet("LINLI20261122000002", &user.oa_openid, 50)).await.unwrap();
    assert!(matches!(small, V2Outcome::Failed { .. }), "{small:?}");
    assert_eq!(mock.paid_total(&user.oa_openid), 188);
}

#[tokio::test]
async fn a_timeout_after_payment_is_unknown_and_the_retry_with_the_same_number_pays_nothing_more() {
    let mock = mock().await;
    let user = mock.add_user();
    mock.inject_fault(wechat_mock::Fault::delay_after("/mmpaymkttransfers/sendredpack", 1500, 1)).unwrap();
    let impatient = v2(&mock, Duration::from_millis(300));
    let lost = impatient.send_red_pack(&red_packet("LINLI20261122000003", &user.oa_openid, 666)).await.unwrap();
    assert!(matches!(lost, V2Outcome::Unknown { .. }), "a lost answer must not read as failed: {lost:?}");
    assert_eq!(mock.paid_total(&user.oa_openid), 666, "WeChat paid");
    let retry = v2(&mock, Duration::from_secs(3))
        .send_red_pack(&red_packet("LINLI20261122000003", &user.oa_openid, 666))
        .await
        .unwrap();
    assert!(matches!(retry, V2Outcome::Success(_)), "{retry:?}");
    assert_eq!(mock.paid_total(&user.oa_openid), 666, "the retry paid nothing more");
}

fn v3(mock: &wechat_mock::RunningMock, wechatpay_key_pem: &str) -> V3Client {
    let signer = MerchantSigner::from_pem(
        merchant::MCH_ID,
        merchant::MERCHANT_CERT_SERIAL,
        &Secret::new(merchant::MERCHANT_PRIVATE_KEY_PEM),
    )
    .expect("merchant key");
    let keys =
        WechatPayKeys::new().with_pem(merchant::WECHATPAY_PUBLIC_KEY_ID, wechatpay_key_pem).expect("WeChat Pay key");
    V3Client::new(V3Config {
        base_url: mock.base_url.clone(),
        signer,
        keys,
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(3),
        root_ca_pem: mock.base_url.starts_with("https:").then(|| tls::CA_CERT_PEM.to_owned()),
    })
    .expect("v3 client")
}

fn bill(no: &str, openid: &str) -> CreateTransferBill {
    CreateTransferBill {
        appid: wechat_mock::MP_APPID.to_owned(),
        out_bill_no: no.to_owned(),
        transfer_scene_id: "1000".to_owned(),
        openid: openid.to_owned(),
        user_name: None,
        transfer_amount: 520,
        transfer_remark: "邻里红包".to_owned(),
        notify_url: None,
        user_recv_perception: Some("现金奖励".to_owned()),
        transfer_scene_report_infos: vec![
            TransferSceneReportInfo { info_type: "活动名称".to_owned(), info_content: "春节红包".to_owned() },
            TransferSceneReportInfo {
                info_type: "奖励说明".to_owned(), info_content: "抢到的红包".to_owned()
            },
        ],
    }
}

#[tokio::test]
async fn a_transfer_bill_waits_for_the_resident_then_succeeds_and_answers_are_verified() {
    let mock = mock().await;
    let user = mock.add_user();
    let client = v3(&mock, merchant::WECHATPAY_PUBLIC_KEY_PEM);
    let created = client.create_transfer_bill(&bill("LINLIT0001", &user.mp_openid)).await.unwrap();
    let TransferOutcome::AwaitingConfirmation(snapshot) = created else { panic!("{created:?}") };
    assert!(snapshot.package_info.is_some_and(|p| !p.is_empty()));
    // The same number again is the same bill, not a second transfer.
    let again = client.create_transfer_bill(&bill("LINLIT0001", &user.mp_openid)).await.unwrap();
    assert!(matches!(again, TransferOutcome::AwaitingConfirmation(_)), "{again:?}");
    mock.confirm_transfer("LINLIT0001").unwrap();
    let done = client.query_transfer_bill("LINLIT0001").await.unwrap();
    assert!(matches!(done, TransferOutcome::Succeeded(_)), "{done:?}");
    assert_eq!(mock.paid_total(&user.mp_openid), 520);

    // An answer signed by someone else is never taken for success.
    let other_key = include_str!("../../wechat-mock/tests/other_key.pem");
    let public = rsa::RsaPublicKey::from(
        <rsa::RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_pem(other_key)
            .or_else(|_| <rsa::RsaPrivateKey as rsa::pkcs1::DecodeRsaPrivateKey>::from_pkcs1_pem(other_key))
            .expect("a test key"),
    );
    let pem = rsa::pkcs8::EncodePublicKey::to_public_key_pem(&public, rsa::pkcs8::LineEnding::LF).unwrap();
    let suspicious = v3(&mock, &pem).query_transfer_bill("LINLIT0001").await.unwrap();
    assert!(matches!(suspicious, TransferOutcome::Unknown { .. }), "{suspicious:?}");
}

const SENDREDPACK: &str = "/mmpaymkttransfers/sendredpack";

#[tokio::test]
async fn over_https_a_red_packet_with_the_merchant_certificate_is_paid() {
    let mock = https_mock().await;
    assert!(mock.base_url.starts_with("https://127.0.0.1:"), "{}", mock.base_url);
    let user = mock.add_user();
    // Not trusting the mock CA, linli cannot even connect: unknown, and nothing reached WeChat.
    let distrustful = v2_over_https(&mock, Some(tls::MERCHANT_CLIENT_PEM), false);
    let refused = distrustful.send_red_pack(&red_packet("LINLI20261122000101", &user.oa_openid, 188)).await.unwrap();
    assert!(matches!(refused, V2Outcome::Unknown { .. }), "{refused:?}");
    assert_eq!(mock.call_count(SENDREDPACK), 0);

    let client = v2_over_https(&mock, Some(tls::MERCHANT_CLIENT_PEM), true);
    let sent = client.send_red_pack(&red_packet("LINLI20261122000101", &user.oa_openid, 188)).await.unwrap();
    assert!(matches!(sent, V2Outcome::Success(_)), "{sent:?}");
    assert_eq!(mock.paid_total(&user.oa_openid), 188);
    let info = client.query_red_pack("LINLI20261122000101", wechat_mock::OA_APPID).await.unwrap();
    assert!(matches!(&info, V2Query::Found(info) if info.status == RedPackStatus::Sent), "{info:?}");
    let paid = client.transfer(&enterprise_payment("LINLIE0101", &user.oa_openid)).await.unwrap();
    assert!(matches!(paid, V2Outcome::Success(_)), "{paid:?}");
    assert_eq!(mock.paid_total(&user.oa_openid), 488);
}

/// WeChat answers `CA_ERROR` (`result_code` FAIL) to a payout without its certificate: linli reads
/// it as `Failed`, a definite refusal — CA_ERROR is one of the documented codes after which nothing
/// was paid, and the request was refused before it was read. A query refused so says nothing about
/// the payout, so it is `Unknown`.
#[tokio::test]
async fn over_https_payouts_without_a_client_certificate_are_refused_and_nothing_is_paid() {
    let mock = https_mock().await;
    let user = mock.add_user();
    let anonymous = v2_over_https(&mock, None, true);
    let outcome = anonymous.send_red_pack(&red_packet("LINLI20261122000102", &user.oa_openid, 188)).await.unwrap();
    assert!(matches!(&outcome, V2Outcome::Failed { code, .. } if code == "CA_ERROR"), "{outcome:?}");
    assert_eq!(mock.call_count(SENDREDPACK), 1, "refused by WeChat, not by the handshake");
    let outcome = anonymous.transfer(&enterprise_payment("LINLIE0102", &user.oa_openid)).await.unwrap();
    assert!(matches!(&outcome, V2Outcome::Failed { code, .. } if code == "CA_ERROR"), "{outcome:?}");
    let query = anonymous.query_red_pack("LINLI20261122000102", wechat_mock::OA_APPID).await.unwrap();
    assert!(matches!(&query, V2Query::Unknown { code, .. } if code == "CA_ERROR"), "{query:?}");
    let query = anonymous.query_transfer("LINLIE0102", wechat_mock::OA_APPID).await.unwrap();
    assert!(matches!(&query, V2Query::Unknown { code, .. } if code == "CA_ERROR"), "{query:?}");
    assert_eq!(mock.paid_total(&user.oa_openid), 0);
    assert!(mock.payments().is_empty(), "{:?}", mock.payments());
}

#[tokio::test]
async fn over_https_a_certificate_another_ca_issued_is_refused_and_nothing_is_paid() {
    let mock = https_mock().await;
    let user = mock.add_user();
    let impostor = v2_over_https(&mock, Some(tls::FOREIGN_CLIENT_PEM), true);
    let outcome = impostor.send_red_pack(&red_packet("LINLI20261122000103", &user.oa_openid, 188)).await.unwrap();
    assert!(matches!(&outcome, V2Outcome::Failed { code, .. } if code == "CA_ERROR"), "{outcome:?}");
    let outcome = impostor.transfer(&enterprise_payment("LINLIE0103", &user.oa_openid)).await.unwrap();
    assert!(matches!(&outcome, V2Outcome::Failed { code, .. } if code == "CA_ERROR"), "{outcome:?}");
    assert_eq!(mock.paid_total(&user.oa_openid), 0);
    assert!(mock.payment(PayChannel::RedPacket, "LINLI20261122000103").is_none());
}

#[tokio::test]
async fn over_https_v3_transfer_bills_need_no_client_certificate() {
    let mock = https_mock().await;
    let user = mock.add_user();
    let client = v3(&mock, merchant::WECHATPAY_PUBLIC_KEY_PEM);
    let created = client.create_transfer_bill(&bill("LINLIT0101", &user.mp_openid)).await.unwrap();
    assert!(matches!(created, TransferOutcome::AwaitingConfirmation(_)), "{created:?}");
    mock.confirm_transfer("LINLIT0101").unwrap();
    let done = client.query_transfer_bill("LINLIT0101").await.unwrap();
    assert!(matches!(done, TransferOutcome::Succeeded(_)), "{done:?}");
}

/// The settings path: `WECHATPAY_CLIENT_CERT_PATH` and `WECHATPAY_ROOT_CA_PATH` files, read by
/// `PayClients::from_settings`, are what makes v2 and v3 work against an HTTPS WeChat Pay.
#[tokio::test]
async fn clients_built_from_settings_present_the_certificate_and_trust_the_extra_root() {
    let mock = https_mock().await;
    let user = mock.add_user();
    let dir = std::env::temp_dir().join(format!("linli-pay-tls-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        Some(path.display().to_string())
    };
    let mut settings = PaySettings {
        api_base: mock.base_url.clone(),
        mch_id: Some(merchant::MCH_ID.to_owned()),
        api_key_v2: Some(Secret::new(merchant::API_KEY_V2)),
        api_v3_key: Some(Secret::new(merchant::API_V3_KEY)),
        cert_serial: Some(merchant::MERCHANT_CERT_SERIAL.to_owned()),
        private_key_path: file("apiclient_key.pem", merchant::MERCHANT_PRIVATE_KEY_PEM),
        client_cert_path: file("client.pem", tls::MERCHANT_CLIENT_PEM),
        root_ca_path: file("mock-ca.pem", tls::CA_CERT_PEM),
        public_key_id: Some(merchant::WECHATPAY_PUBLIC_KEY_ID.to_owned()),
        public_key_path: file("wechatpay_pub.pem", merchant::WECHATPAY_PUBLIC_KEY_PEM),
        ..PaySettings::default()
    };
    settings.payouts.timeout = Duration::from_secs(3);
    let clients = PayClients::from_settings(&settings).unwrap().expect("a merchant is configured");
    let v2 = clients.v2.expect("v2 client");
    let sent = v2.send_red_pack(&red_packet("LINLI20261122000104", &user.oa_openid, 166)).await.unwrap();
    assert!(matches!(sent, V2Outcome::Success(_)), "{sent:?}");
    let v3 = clients.v3.expect("v3 client");
    let created = v3.create_transfer_bill(&bill("LINLIT0104", &user.mp_openid)).await.unwrap();
    assert!(matches!(created, TransferOutcome::AwaitingConfirmation(_)), "{created:?}");

    settings.root_ca_path = file("not-a-cert.pem", "no certificate here");
    assert!(PayClients::from_settings(&settings).is_err(), "an unusable root CA file is refused at start-up");
    std::fs::remove_dir_all(&dir).unwrap();
}
