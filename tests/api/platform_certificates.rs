//! WeChat Pay merchants that verify with platform certificates, or are migrating from them to the
//! WeChat Pay public key: transfers still complete, the notifications WeChat signs with a platform
//! certificate are accepted, and forged ones are still refused.

use serde_json::{json, Value};
use wechat_mock::pay::config::{PaySigning, PLATFORM_CERT_SERIAL, PLATFORM_PRIVATE_KEY_PEM};
use wechat_mock::pay::sign;
use wechat_mock::{PayConfig, PushMode};

use crate::helpers::{bearer, eventually, spawn_pay_app, spawn_pay_app_on, OaApp};

fn merchant(signing: PaySigning) -> PayConfig {
    PayConfig { signing, ..PayConfig::default() }
}

async fn count(app: &OaApp, sql: &str) -> i64 {
    app.count(sql).await
}

/// A follower grabs the one share of a transfer campaign; the dispatcher creates the bill (WeChat
/// answers), the resident confirms, WeChat notifies. Answers the bill number.
async fn transfer_is_paid(app: &OaApp) -> String {
    let user = app.mock.add_user();
    let pusher = app.pusher(PushMode::Safe);
    app.say(&pusher, &pusher.follow(&user.oa_openid)).await;
    let token = app.login(&user).await;
    let now = time::OffsetDateTime::now_utc();
    let f = &time::format_description::well_known::Rfc3339;
    let c = app
        .post(
            &app.root_key,
            "/admin/v1/red-packets",
            json!({
                "owner_org_id": app.company_id,
                "terms": {
                    "theme": "迁移红包", "channel": "transfer", "amount_mode": "fixed", "total_fen": 88,
                    "shares": 1, "starts_at": (now - time::Duration::minutes(1)).format(f).unwrap(),
                    "ends_at": (now + time::Duration::hours(1)).format(f).unwrap(), "audience": "followers",
                    "wishing": "邻里和睦"
                }
            }),
        )
        .await
        .expect(201);
    let id = c["id"].as_i64().unwrap();
    app.post(&app.root_key, &format!("/admin/v1/red-packets/{id}/activate"), json!({})).await.expect(200);
    app.send(bearer(app.client.post(app.url(&format!("/mp/v1/red-packets/{id}/grabs"))), &token)).await.expect(201);
    eventually("the bill is created and waits for the resident", || async {
        count(app, "SELECT COUNT(*) FROM payouts WHERE state = 'awaiting_confirmation'").await == 1
    })
    .await;
    let bill = app.mock.payments()[0].bill_no.clone();
    app.mock.confirm_transfer(&bill).unwrap();
    app.mock.wechat.deliver_due_notifications().await;
    eventually("the payout succeeds", || async {
        count(app, "SELECT COUNT(*) FROM payouts WHERE state = 'succeeded'").await == 1
    })
    .await;
    assert_eq!(app.mock.paid_total(&user.mp_openid), 88);
    bill
}

/// The notification of `bill` was signed with the platform certificate and acknowledged.
fn notification_accepted(app: &OaApp, bill: &str) {
    let notes: Vec<_> = app.mock.wechat.pay_notifications().into_iter().filter(|n| n.out_bill_no == bill).collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].signed_with.first().map(String::as_str), Some(PLATFORM_CERT_SERIAL), "{notes:?}");
    assert!(notes[0].acknowledged, "linli refused WeChat's notification: {notes:?}");
}

/// The regression: a merchant migrating to the public key with the settings linli documents
/// (public key configured). WeChat signs an answer with the key the request names in
/// `Wechatpay-Serial` and with the platform certificate when it names none, and signs
/// notifications with the platform certificate.
#[tokio::test]
async fn transfers_complete_for_a_merchant_migrating_to_the_public_key() {
    let app = spawn_pay_app_on(merchant(PaySigning::Migration), |_| {}).await;
    let bill = transfer_is_paid(&app).await;
    notification_accepted(&app, &bill);
    // The answers named the public key, so only the notification needed the certificates.
    assert_eq!(app.mock.call_count("/v3/certificates"), 1);
}

#[tokio::test]
async fn transfers_complete_for_a_merchant_that_signs_with_platform_certificates() {
    // With the public key configured (the default, both)...
    let app = spawn_pay_app_on(merchant(PaySigning::PlatformCertificate), |_| {}).await;
    let bill = transfer_is_paid(&app).await;
    notification_accepted(&app, &bill);
    // ...and with platform certificates only.
    let app = spawn_pay_app_on(merchant(PaySigning::PlatformCertificate), |s| {
        s.pay.verify_with = Some(linli::config::VerifyWith::PlatformCertificates);
        s.pay.public_key_id = None;
        s.pay.public_key_path = None;
    })
    .await;
    let bill = transfer_is_paid(&app).await;
    notification_accepted(&app, &bill);
    assert_eq!(app.mock.call_count("/v3/certificates"), 1, "fetched once, at start-up");
}

/// A notification signed as WeChat signs it, by `key_pem` under `serial`.
fn signed_notification(app: &OaApp, key_pem: &str, serial: &str) -> reqwest::RequestBuilder {
    let plaintext = json!({
        "out_bill_no": "LINLINEVERISSUED1", "transfer_bill_no": "1330000071100999991182020050700000000000001",
        "state": "SUCCESS", "mch_id": wechat_mock::pay::MCH_ID, "transfer_amount": 100, "openid": "o-nobody",
        "create_time": "2026-12-02T10:00:00+08:00", "update_time": "2026-12-02T10:01:00+08:00"
    })
    .to_string();
    let resource_nonce = sign::nonce(12);
    let ciphertext =
        sign::aes_gcm_encrypt(wechat_mock::pay::API_V3_KEY, &resource_nonce, "mch_payment", &plaintext).unwrap();
    let body = json!({
        "id": format!("EV-{}", sign::nonce(10)), "create_time": "2026-12-02T10:01:00+08:00",
        "resource_type": "encrypt-resource", "event_type": "MCHTRANSFER.BILL.FINISHED", "summary": "商家转账单据终态通知",
        "resource": {
            "original_type": "mch_payment", "algorithm": "AEAD_AES_256_GCM", "ciphertext": ciphertext,
            "associated_data": "mch_payment", "nonce": resource_nonce
        }
    })
    .to_string();
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let nonce = sign::nonce(32);
    let key = sign::private_key(key_pem).unwrap();
    let signature = sign::rsa_sign(&key, &sign::v3_response_message(&timestamp, &nonce, &body));
    app.client
        .post(app.url("/wechat/pay/notify"))
        .header("Content-Type", "application/json")
        .header("Wechatpay-Timestamp", timestamp)
        .header("Wechatpay-Nonce", nonce)
        .header("Wechatpay-Signature", signature)
        .header("Wechatpay-Serial", serial)
        .header("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048")
        .body(body)
}

#[tokio::test]
async fn a_notification_signed_by_the_platform_certificate_is_accepted_and_forged_ones_are_not() {
    let app = spawn_pay_app_on(merchant(PaySigning::Migration), |_| {}).await;
    let other_key = include_str!("../../wechat-mock/tests/other_key.pem");
    let written = "SELECT COUNT(*) FROM pay_notifications";

    // Signed by the platform certificate's key: verified (after one fetch) and acknowledged.
    let genuine = app.send(signed_notification(&app, PLATFORM_PRIVATE_KEY_PEM, PLATFORM_CERT_SERIAL)).await;
    assert_eq!(genuine.status, 204, "{:?}", genuine.body);
    assert_eq!(app.mock.call_count("/v3/certificates"), 1);

    let before = count(&app, written).await;
    // Someone else's key under the certificate's serial.
    let forged = app.send(signed_notification(&app, other_key, PLATFORM_CERT_SERIAL)).await;
    assert_eq!(forged.status, 401, "{:?}", forged.body);
    assert_eq!(forged.body["code"], "FAIL");
    // Made-up certificate serials: refused, and they make linli fetch nothing more.
    for serial in ["5E5E5E5E5E5E5E5E5E5E5E5E5E5E5E5E5E5E5E5E", "0123", "PUB_KEY_ID_0000000000"] {
        let forged = app.send(signed_notification(&app, other_key, serial)).await;
        assert_eq!(forged.status, 401, "{serial}: {:?}", forged.body);
    }
    assert_eq!(app.mock.call_count("/v3/certificates"), 1);
    assert_eq!(count(&app, written).await, before, "a refused notification writes nothing");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM payout_events").await, 0);
}

/// Expecting the public key only, a notification signed by a platform certificate is refused
/// (WeChat sends it again) and no certificate is fetched.
#[tokio::test]
async fn expecting_the_public_key_only_fetches_no_certificate() {
    let app = spawn_pay_app(|s| s.pay.verify_with = Some(linli::config::VerifyWith::PublicKey)).await;
    app.mock.wechat.set_pay_signing(PaySigning::Migration);
    let refused = app.send(signed_notification(&app, PLATFORM_PRIVATE_KEY_PEM, PLATFORM_CERT_SERIAL)).await;
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    assert_eq!(app.mock.call_count("/v3/certificates"), 0);
    let keys: Value =
        app.client.get(format!("{}/__mock/pay/keys", app.mock.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(keys["signing"], "migration");
}
