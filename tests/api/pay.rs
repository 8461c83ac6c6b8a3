//! linli's WeChat Pay client against wechat-mock's WeChat Pay: two independent implementations
//! of the v2 and v3 protocols (signatures, XML, RSA, bill-number re-entrancy) must agree.

use std::time::Duration;

use linli::config::Secret;
use linli::wechat::pay::v2::{SendRedPack, V2Client, V2Config, V2Outcome};
use linli::wechat::pay::v3::transfer_bills::{CreateTransferBill, TransferOutcome, TransferSceneReportInfo};
use linli::wechat::pay::v3::{MerchantSigner, V3Client, V3Config, WechatPayKeys};
use wechat_mock::pay::config as merchant;

async fn mock() -> wechat_mock::RunningMock {
    wechat_mock::start(wechat_mock::MockConfig::default(), "127.0.0.1:0").await.expect("start wechat-mock")
}

fn v2(mock: &wechat_mock::RunningMock, timeout: Duration) -> V2Client {
    V2Client::new(V2Config {
        base_url: mock.base_url.clone(),
        mch_id: merchant::MCH_ID.to_owned(),
        api_key: Secret::new(merchant::API_KEY_V2),
        client_identity_pem: None,
        connect_timeout: Duration::from_secs(2),
        timeout,
        require_signed_answers: false,
    })
    .expect("v2 client")
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
