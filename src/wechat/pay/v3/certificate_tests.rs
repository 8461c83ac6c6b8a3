//! The key linli expects and the platform certificates, against a local server playing WeChat
//! Pay: the serial every request names, verification by public key id and by certificate serial,
//! one fetch for a burst of unknown serials, refresh before expiry.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::certificates::{CertificateError, MIN_FETCH_INTERVAL_SECS, RETRY_SECS};
use super::test_support::*;
use super::*;
use crate::wechat::pay::crypto::test_keys::*;

const API_V3_KEY: &str = "0123456789abcdef0123456789ABCDEF";
/// 2027-01-15: inside both test certificates' validity.
const NOW: i64 = 1_800_000_000;
const REFRESH_SECS: i64 = 3600;

/// A platform certificate as the fake lists it.
#[derive(Clone)]
struct Listed {
    serial: &'static str,
    pem: &'static str,
    expire: i64,
}

fn cert_a(expire: i64) -> Listed {
    Listed { serial: PLATFORM_SERIAL_A, pem: PLATFORM_CERT_A, expire }
}

fn cert_b(expire: i64) -> Listed {
    Listed { serial: PLATFORM_SERIAL_B, pem: PLATFORM_CERT_B, expire }
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    wechatpay_serial: Option<String>,
    body: String,
}

struct FakeState {
    listed: Vec<Listed>,
    /// `None`: `/v3/certificates` answers 404 (a merchant with the public key only).
    has_certificates: bool,
    /// Serial of the key answers are signed with (`PUB_KEY_ID_…` or a listed certificate).
    sign_with: String,
    /// The timestamp answers carry; `None`: the real clock.
    clock: Option<i64>,
    seen: Vec<Seen>,
}

#[derive(Clone)]
struct FakePay {
    base_url: String,
    state: Arc<Mutex<FakeState>>,
}

fn private_key_of(serial: &str) -> &'static str {
    match serial {
        PLATFORM_SERIAL_A => PLATFORM_KEY_A,
        PLATFORM_SERIAL_B => PLATFORM_KEY_B,
        _ => WECHATPAY_KEY,
    }
}

/// Headers signed with the key of `serial` at `timestamp`.
fn signed_by(serial: &str, body: &[u8], timestamp: i64) -> SignedHeaders {
    let key = SigningKey::<Sha256>::new(crypto::load_private_key_pem(private_key_of(serial)).unwrap());
    let nonce = "0BEC0C930BF1AFEB40B4A08C8FB242";
    let message = signed_message(&[timestamp.to_string().as_bytes(), nonce.as_bytes(), body]);
    SignedHeaders {
        timestamp: timestamp.to_string(),
        nonce: nonce.into(),
        signature: crypto::sign_sha256_rsa(&key, &message).unwrap(),
        serial: serial.into(),
        signature_type: Some(AUTH_SCHEME.into()),
    }
}

fn beijing(unix: i64) -> String {
    let offset = time::UtcOffset::from_hms(8, 0, 0).unwrap();
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .to_offset(offset)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn listing(listed: &[Listed]) -> String {
    let data: Vec<serde_json::Value> = listed
        .iter()
        .map(|c| {
            let nonce = "a1b2c3d4e5f6";
            let sealed =
                crypto::aes_gcm_encrypt(API_V3_KEY.as_bytes(), nonce.as_bytes(), b"certificate", c.pem.as_bytes())
                    .unwrap();
            serde_json::json!({
                "serial_no": c.serial,
                "effective_time": "2025-01-01T08:00:00+08:00",
                "expire_time": beijing(c.expire),
                "encrypt_certificate": {
                    "algorithm": RESOURCE_ALGORITHM, "nonce": nonce, "associated_data": "certificate",
                    "ciphertext": STANDARD.encode(sealed)
                }
            })
        })
        .collect();
    serde_json::json!({ "data": data }).to_string()
}

impl FakePay {
    async fn start(listed: Vec<Listed>, sign_with: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(FakeState {
            listed,
            has_certificates: true,
            sign_with: sign_with.to_owned(),
            clock: None,
            seen: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                tokio::spawn(answer(socket, Arc::clone(&shared)));
            }
        });
        Self { base_url, state }
    }

    fn set(&self, change: impl FnOnce(&mut FakeState)) {
        change(&mut self.state.lock().unwrap());
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn fetches(&self) -> usize {
        self.seen().iter().filter(|s| s.path == "/v3/certificates").count()
    }

    /// A client of this fake: public keys `keys`, certificates as `verify_with` says.
    fn client(&self, keys: WechatPayKeys, verify_with: VerifyWith) -> V3Client {
        let client = V3Client::new(V3Config {
            base_url: self.base_url.clone(),
            signer: signer(),
            keys,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            root_ca_pem: None,
        })
        .unwrap();
        if verify_with.uses_certificates() {
            client.with_platform_certificates(PlatformCertificates {
                verify_with,
                api_v3_key: Secret::new(API_V3_KEY),
                refresh_secs: REFRESH_SECS,
            })
        } else {
            client
        }
    }
}

/// Serves one request (the connection closes after it).
async fn answer(mut socket: tokio::net::TcpStream, state: Arc<Mutex<FakeState>>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while request.len() < head_end + length {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let body_in = String::from_utf8_lossy(&request[head_end..]).into_owned();
    let is_listing = path == "/v3/certificates";
    let (status, body, sign_with, timestamp) = {
        let mut s = state.lock().unwrap();
        s.seen.push(Seen { path: path.clone(), wechatpay_serial: header("wechatpay-serial"), body: body_in });
        let (status, body) = match (is_listing, s.has_certificates) {
            (true, true) => (200, listing(&s.listed)),
            (true, false) => (404, r#"{"code":"NOT_FOUND","message":"无可用的平台证书"}"#.to_owned()),
            (false, _) => (200, r#"{"ok":true}"#.to_owned()),
        };
        (status, body, s.sign_with.clone(), s.clock.unwrap_or_else(unix_now))
    };
    if is_listing {
        // Slow enough that a burst of verifications all arrive while the fetch is in flight.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let headers = signed_by(&sign_with, body.as_bytes(), timestamp);
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nWechatpay-Timestamp: {}\r\nWechatpay-Nonce: {}\r\nWechatpay-Signature: {}\r\nWechatpay-Serial: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        headers.timestamp,
        headers.nonce,
        headers.signature,
        headers.serial
    );
    let _ = socket.write_all(response.as_bytes()).await;
}

fn bill_with_name() -> transfer_bills::CreateTransferBill {
    transfer_bills::CreateTransferBill {
        appid: "wx8888888888888888".into(),
        out_bill_no: "LINLIT0009".into(),
        transfer_scene_id: "1000".into(),
        openid: "o-MYE42l80oelYMDE34nYD456Xoy".into(),
        user_name: Some(Secret::new("张三")),
        transfer_amount: 300_000,
        transfer_remark: "邻里奖励".into(),
        notify_url: None,
        user_recv_perception: Some("现金奖励".into()),
        transfer_scene_report_infos: vec![],
    }
}

#[tokio::test]
async fn every_request_names_the_public_key_it_expects() {
    let fake = FakePay::start(vec![], SERIAL).await;
    let client = fake.client(keys(), VerifyWith::PublicKey);
    let answer = client.execute(Method::GET, "/v3/q?a=1", None, None).await.unwrap();
    assert!(matches!(answer, V3Answer::Ok { .. }), "{answer:?}");
    client.execute(Method::POST, "/v3/p", Some(b"{}".to_vec()), None).await.unwrap();
    let _ = client.create_transfer_bill(&bill_with_name()).await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|s| s.wechatpay_serial.as_deref() == Some(SERIAL)), "{seen:?}");
    // Migration settings expect the public key too, and fetch nothing while answers name it.
    let both = fake.client(keys(), VerifyWith::Both);
    both.execute(Method::GET, "/v3/q", None, None).await.unwrap();
    assert_eq!(fake.seen().last().unwrap().wechatpay_serial.as_deref(), Some(SERIAL));
    assert_eq!(fake.fetches(), 0);
}

#[tokio::test]
async fn with_platform_certificates_requests_name_the_newest_and_sensitive_fields_use_it() {
    let fake = FakePay::start(vec![cert_a(NOW * 2), cert_b(NOW * 2)], PLATFORM_SERIAL_B).await;
    let client = fake.client(WechatPayKeys::new(), VerifyWith::PlatformCertificates);
    let answer = client.execute(Method::GET, "/v3/q", None, None).await.unwrap();
    assert!(matches!(answer, V3Answer::Ok { .. }), "{answer:?}");
    let _ = client.create_transfer_bill(&bill_with_name()).await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen[0].path, "/v3/certificates", "the first request waits for the certificates: {seen:?}");
    assert_eq!(seen[0].wechatpay_serial, None);
    assert_eq!(seen.len(), 3);
    assert!(seen[1..].iter().all(|s| s.wechatpay_serial.as_deref() == Some(PLATFORM_SERIAL_B)), "{seen:?}");
    // The real name is sealed for the certificate the request names.
    let sent: serde_json::Value = serde_json::from_str(&seen[2].body).unwrap();
    let private_b = crypto::load_private_key_pem(PLATFORM_KEY_B).unwrap();
    assert_eq!(crypto::oaep_decrypt(&private_b, sent["user_name"].as_str().unwrap()).unwrap(), "张三".as_bytes());
    assert_eq!(client.keys().preferred_serial(), Some(PLATFORM_SERIAL_B));
}

#[tokio::test]
async fn answers_verify_by_public_key_id_and_by_certificate_serial() {
    let fake = FakePay::start(vec![cert_a(NOW * 2)], PLATFORM_SERIAL_A).await;
    let client = fake.client(keys(), VerifyWith::Both);
    // Signed by the platform certificate, though the request named the public key: fetched, kept.
    let answer = client.execute(Method::GET, "/v3/q", None, None).await.unwrap();
    assert!(matches!(answer, V3Answer::Ok { .. }), "{answer:?}");
    assert_eq!(fake.fetches(), 1);
    assert!(client.keys().holds(PLATFORM_SERIAL_A, unix_now()));
    assert_eq!(client.keys().preferred_serial(), Some(SERIAL), "migration still expects the public key");
    fake.set(|s| s.sign_with = SERIAL.into());
    let answer = client.execute(Method::GET, "/v3/q", None, None).await.unwrap();
    assert!(matches!(answer, V3Answer::Ok { .. }), "{answer:?}");
    fake.set(|s| s.sign_with = PLATFORM_SERIAL_A.into());
    client.execute(Method::GET, "/v3/q", None, None).await.unwrap();
    assert_eq!(fake.fetches(), 1, "a held certificate is not fetched again");

    // A certificate serial over another key's signature is still a bad signature.
    let body = br#"{"state":"SUCCESS"}"#;
    let mut forged = signed_by(SERIAL, body, NOW);
    forged.serial = PLATFORM_SERIAL_A.into();
    assert_eq!(client.keys().verify(&forged, body, NOW), Err(VerifyError::BadSignature));
    assert_eq!(client.keys().verify(&signed_by(PLATFORM_SERIAL_A, body, NOW), body, NOW), Ok(()));

    // Expecting the public key only, an answer signed by a certificate is refused, nothing fetched.
    let strict = fake.client(keys(), VerifyWith::PublicKey);
    let refused = strict.execute(Method::GET, "/v3/q", None, None).await.unwrap();
    assert!(matches!(refused, V3Answer::Unknown { ref code, .. } if code == CODE_BAD_SIGNATURE), "{refused:?}");
    assert_eq!(fake.fetches(), 1);
}

#[tokio::test]
async fn a_burst_of_unknown_serials_makes_one_fetch() {
    let fake = FakePay::start(vec![cert_a(NOW * 2)], PLATFORM_SERIAL_A).await;
    fake.set(|s| s.clock = Some(NOW));
    let client = fake.client(keys(), VerifyWith::Both);
    let body = notification_body(API_V3_KEY, "MCHTRANSFER.BILL.FINISHED", r#"{"state":"SUCCESS"}"#);
    let headers = signed_by(PLATFORM_SERIAL_A, &body, NOW);
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (client, headers, body) = (client.clone(), headers.clone(), body.clone());
        burst.spawn(async move { client.open_notification(&Secret::new(API_V3_KEY), &headers, &body, NOW).await });
    }
    while let Some(opened) = burst.join_next().await {
        let (notification, _) = opened.unwrap().expect("signed by a platform certificate WeChat lists");
        assert_eq!(notification.event_type, "MCHTRANSFER.BILL.FINISHED");
    }
    assert_eq!(fake.fetches(), 1);

    // Forgeries naming made-up serials: refused, and at most one fetch a minute on their account.
    let mut forged = headers.clone();
    forged.serial = "5E5E5E5E5E5E5E5E5E5E5E5E5E5E5E5E5E5E5E5E".into();
    for later in [1, 2, MIN_FETCH_INTERVAL_SECS - 1] {
        let refused = client.open_notification(&Secret::new(API_V3_KEY), &forged, &body, NOW + later).await;
        assert!(matches!(refused, Err(NotifyError::Verify(VerifyError::UnknownSerial(_)))), "{refused:?}");
    }
    assert_eq!(fake.fetches(), 1);
    fake.set(|s| s.clock = Some(NOW + MIN_FETCH_INTERVAL_SECS));
    let refused =
        client.open_notification(&Secret::new(API_V3_KEY), &forged, &body, NOW + MIN_FETCH_INTERVAL_SECS).await;
    assert!(refused.is_err());
    assert_eq!(fake.fetches(), 2);
    // PUB_KEY_ID serials are configured, never fetched.
    let mut other_key = headers.clone();
    other_key.serial = "PUB_KEY_ID_0000".into();
    let refused = client.open_notification(&Secret::new(API_V3_KEY), &other_key, &body, NOW + 600).await;
    assert!(matches!(refused, Err(NotifyError::Verify(VerifyError::UnknownSerial(_)))), "{refused:?}");
    assert_eq!(fake.fetches(), 2);
}

#[tokio::test]
async fn certificates_are_refreshed_before_they_expire_and_not_trusted_after() {
    // A alone, expiring soon; then WeChat adds B.
    let expire_a = NOW + 2 * REFRESH_SECS;
    let fake = FakePay::start(vec![cert_a(expire_a)], PLATFORM_SERIAL_A).await;
    fake.set(|s| s.clock = Some(NOW));
    let client = fake.client(WechatPayKeys::new(), VerifyWith::PlatformCertificates);
    assert!(client.refresh_certificates_if_due(NOW).await, "platform certificates are fetched at once");
    assert_eq!(client.keys().preferred_serial(), Some(PLATFORM_SERIAL_A));
    // Next due: within the refresh interval of A's expiry, here one interval from now.
    assert!(!client.refresh_certificates_if_due(NOW + REFRESH_SECS - 1).await);
    assert_eq!(fake.fetches(), 1);
    fake.set(|s| {
        s.listed = vec![cert_a(expire_a), cert_b(NOW * 2)];
        s.clock = Some(NOW + REFRESH_SECS);
        s.sign_with = PLATFORM_SERIAL_B.into();
    });
    assert!(client.refresh_certificates_if_due(NOW + REFRESH_SECS).await);
    assert_eq!(fake.fetches(), 2);
    assert_eq!(client.keys().preferred_serial(), Some(PLATFORM_SERIAL_B), "the newer certificate is expected");
    assert!(client.keys().holds(PLATFORM_SERIAL_A, NOW + REFRESH_SECS));

    // Past its expiry A verifies nothing, even while still held.
    let body = b"{}";
    let late = expire_a + 10;
    assert_eq!(
        client.keys().verify(&signed_by(PLATFORM_SERIAL_A, body, late), body, late),
        Err(VerifyError::ExpiredCertificate(PLATFORM_SERIAL_A.into()))
    );
    // An answer naming it asks for a fetch; WeChat no longer lists it and it is dropped.
    fake.set(|s| {
        s.listed = vec![cert_b(NOW * 2)];
        s.clock = Some(late);
    });
    let refused =
        client.open_notification(&Secret::new(API_V3_KEY), &signed_by(PLATFORM_SERIAL_A, body, late), body, late).await;
    assert!(refused.is_err());
    assert_eq!(fake.fetches(), 3);
    assert!(!client.keys().holds(PLATFORM_SERIAL_A, late) && client.keys().holds(PLATFORM_SERIAL_B, late));
}

#[tokio::test]
async fn a_listing_that_does_not_verify_or_decrypt_replaces_nothing() {
    let fake = FakePay::start(vec![cert_a(NOW * 2)], PLATFORM_SERIAL_A).await;
    fake.set(|s| s.clock = Some(NOW));
    let client = fake.client(WechatPayKeys::new(), VerifyWith::PlatformCertificates);
    // Signed by a key neither configured nor listed (B's, while only A is listed).
    fake.set(|s| s.sign_with = PLATFORM_SERIAL_B.into());
    assert!(client.refresh_certificates_if_due(NOW).await);
    assert_eq!(client.keys().preferred_serial(), None);
    // A failed fetch is retried after RETRY_SECS, not before.
    assert!(!client.refresh_certificates_if_due(NOW + RETRY_SECS - 1).await);
    fake.set(|s| {
        s.sign_with = PLATFORM_SERIAL_A.into();
        s.clock = Some(NOW + RETRY_SECS);
    });
    assert!(client.refresh_certificates_if_due(NOW + RETRY_SECS).await);
    assert_eq!(client.keys().preferred_serial(), Some(PLATFORM_SERIAL_A));

    // Sealed under another APIv3 key: refused, the held set kept.
    let other = V3Client::new(V3Config {
        base_url: fake.base_url.clone(),
        signer: signer(),
        keys: WechatPayKeys::new(),
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
        root_ca_pem: None,
    })
    .unwrap()
    .with_platform_certificates(PlatformCertificates {
        verify_with: VerifyWith::PlatformCertificates,
        api_v3_key: Secret::new("X".repeat(32)),
        refresh_secs: REFRESH_SECS,
    });
    assert!(other.refresh_certificates_if_due(NOW + RETRY_SECS).await);
    assert_eq!(other.keys().preferred_serial(), None);

    // A merchant without platform certificates: 404, nothing held.
    fake.set(|s| s.has_certificates = false);
    let fresh = fake.client(keys(), VerifyWith::Both);
    fresh.learn_serial(PLATFORM_SERIAL_A, NOW + RETRY_SECS).await;
    assert!(!fresh.keys().holds(PLATFORM_SERIAL_A, NOW + RETRY_SECS));
    assert_eq!(fresh.keys().preferred_serial(), Some(SERIAL));
    assert!(!fresh.refresh_certificates_if_due(NOW + 10 * REFRESH_SECS).await, "no schedule without certificates");
    // Expecting certificates WeChat has none of: asked again on the refresh schedule, not sooner.
    let withdrawn = fake.client(WechatPayKeys::new(), VerifyWith::PlatformCertificates);
    assert!(withdrawn.refresh_certificates_if_due(NOW).await);
    assert!(!withdrawn.refresh_certificates_if_due(NOW + RETRY_SECS).await);
    assert!(withdrawn.refresh_certificates_if_due(NOW + REFRESH_SECS).await);
    assert_eq!(withdrawn.keys().preferred_serial(), None);
}

#[test]
fn a_listed_certificate_must_carry_its_listed_serial() {
    let listed: serde_json::Value = serde_json::from_str(&listing(&[cert_a(NOW * 2)])).unwrap();
    let mut item = listed["data"][0].clone();
    item["serial_no"] = serde_json::json!(PLATFORM_SERIAL_B);
    let item: certificates::ListedCertificate = serde_json::from_value(item).unwrap();
    assert!(matches!(
        certificates::open_certificate(&Secret::new(API_V3_KEY), &item),
        Err(CertificateError::SerialMismatch { .. })
    ));
}
