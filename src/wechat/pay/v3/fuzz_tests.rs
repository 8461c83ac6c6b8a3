//! Property tests of v3 notification handling over generated, signed `MCHTRANSFER.BILL.FINISHED`
//! notifications and structured mutations of them: headers, RSA signature over the raw body,
//! notification JSON, AES-256-GCM resource and its JSON. Each fault must give its own
//! [`NotifyError`] / [`VerifyError`]; a genuine notification must read back.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::test_support::{keys, wechat_headers};
use super::transfer_bills::{read_bill_finished, TransferBillFinished, TransferBillState, EVENT_BILL_FINISHED};
use super::*;
use crate::wechat::fuzz::{self, byte_mutations, mutate};

const NOW: i64 = 1_700_000_000;
const API_V3_KEY: &str = "a7cde1ef41f5e6b8e8c1d2b3a4f5e6d7";

fn bill() -> impl Strategy<Value = TransferBillFinished> {
    let state = prop_oneof![
        Just(TransferBillState::Success),
        Just(TransferBillState::Fail),
        Just(TransferBillState::Cancelled),
        "[A-Z_]{1,12}".prop_map(|s| TransferBillState::parse(&s)),
    ];
    (
        proptest::option::of("[0-9]{10}"),
        "[A-Za-z0-9]{1,32}",
        proptest::option::of("[0-9]{20,30}"),
        state,
        proptest::option::of(any::<u64>()),
        proptest::option::of("o[A-Za-z0-9_-]{27}"),
        proptest::option::of("\\PC{0,20}"),
    )
        .prop_map(|(mch_id, out_bill_no, transfer_bill_no, state, transfer_amount, openid, fail_reason)| {
            TransferBillFinished {
                mch_id,
                out_bill_no,
                transfer_bill_no,
                state,
                transfer_amount,
                openid,
                fail_reason,
                create_time: Some("2025-01-15T10:00:00+08:00".into()),
                update_time: None,
            }
        })
}

/// A notification whose resource is `plaintext`, as a JSON value (to be mutated, then signed).
fn notification(plaintext: &[u8], nonce: &str, aad: &str) -> Value {
    let ciphertext =
        crypto::aes_gcm_encrypt(API_V3_KEY.as_bytes(), nonce.as_bytes(), aad.as_bytes(), plaintext).unwrap();
    json!({
        "id": "EV-2018022511223320873",
        "create_time": "2025-01-15T10:00:05+08:00",
        "resource_type": "encrypt-resource",
        "event_type": EVENT_BILL_FINISHED,
        "summary": "商家转账单据终态通知",
        "resource": {
            "original_type": "mch_payment",
            "algorithm": RESOURCE_ALGORITHM,
            "ciphertext": STANDARD.encode(ciphertext),
            "associated_data": aad,
            "nonce": nonce
        }
    })
}

fn read(body: &[u8]) -> Result<TransferBillFinished, String> {
    let headers = wechat_headers(body, NOW);
    read_bill_finished(&keys(), &Secret::new(API_V3_KEY), &headers, body, NOW).map_err(|e| format!("{e:?}"))
}

/// A change to a notification that WeChat Pay signed, and the error it must give.
#[derive(Clone, Debug)]
enum Fault {
    /// A required string field removed, or given another JSON type.
    Field {
        path: (&'static str, Option<&'static str>),
        with: Option<Value>,
    },
    Algorithm(String),
    /// Same length, other bytes.
    Nonce(String),
    NonceLength(String),
    AssociatedData(String),
    /// A ciphertext byte (tag included) flipped, or the ciphertext cut.
    CiphertextFlip {
        at: prop::sample::Index,
        mask: u8,
    },
    CiphertextCut {
        at: prop::sample::Index,
    },
    CiphertextNotBase64,
    EventType(String),
    /// The resource decrypts, but to something that is not a bill.
    Plaintext(Vec<u8>),
}

const REQUIRED: &[(&str, Option<&str>)] = &[
    ("id", None),
    ("event_type", None),
    ("resource", None),
    ("resource", Some("algorithm")),
    ("resource", Some("ciphertext")),
    ("resource", Some("nonce")),
];

fn fault() -> impl Strategy<Value = Fault> {
    let other_type = prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        any::<i64>().prop_map(|n| Some(json!(n))),
        Just(Some(json!([]))),
        Just(Some(json!({"a": 1}))),
        Just(Some(json!(true))),
    ];
    prop_oneof![
        (proptest::sample::select(REQUIRED), other_type).prop_map(|(path, with)| Fault::Field { path, with }),
        "[A-Z_0-9]{0,20}".prop_filter("other", |a| a != RESOURCE_ALGORITHM).prop_map(Fault::Algorithm),
        "[A-Za-z0-9]{12}".prop_map(Fault::Nonce),
        "[A-Za-z0-9]{0,11}|[A-Za-z0-9]{13,40}".prop_map(Fault::NonceLength),
        "[a-z_]{0,20}".prop_map(Fault::AssociatedData),
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(at, mask)| Fault::CiphertextFlip { at, mask }),
        any::<prop::sample::Index>().prop_map(|at| Fault::CiphertextCut { at }),
        Just(Fault::CiphertextNotBase64),
        "[A-Z.]{0,30}".prop_filter("other", |e| e != EVENT_BILL_FINISHED).prop_map(Fault::EventType),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            Just(b"{}".to_vec()),
            Just(br#"{"out_bill_no": 1, "state": "SUCCESS"}"#.to_vec()),
            Just(br#"{"out_bill_no": "A", "state": "SUCCESS", "transfer_amount": -1}"#.to_vec()),
            Just(br#"{"out_bill_no": "A", "out_bill_no": "B", "state": "SUCCESS"}"#.to_vec()),
            Just(format!("{}1{}", "[".repeat(4096), "]".repeat(4096)).into_bytes()),
        ]
        .prop_map(Fault::Plaintext),
    ]
}

proptest! {
    #![proptest_config(fuzz::config(64))]

    /// A genuine notification reads back as the bill it carries.
    #[test]
    fn genuine_notifications_read_back(bill in bill(), nonce in "[A-Za-z0-9]{12}", aad in "[a-z_]{0,16}") {
        let body = serde_json::to_vec(&notification(&serde_json::to_vec(&bill).unwrap(), &nonce, &aad)).unwrap();
        prop_assert_eq!(read(&body), Ok(bill));
    }

    /// Any change to the body after WeChat Pay signed it is a bad signature, whatever it breaks.
    #[test]
    fn unsigned_changes_are_bad_signatures(
        bill in bill(),
        mutations in byte_mutations(&["{", "}", "\"", ":", ",", "null", "[", "\\u0000"], 3),
    ) {
        let body = serde_json::to_vec(&notification(&serde_json::to_vec(&bill).unwrap(), "fdasflkja484", "")).unwrap();
        let headers = wechat_headers(&body, NOW);
        let changed = mutate(&body, &mutations);
        prop_assume!(changed != body);
        let result = read_bill_finished(&keys(), &Secret::new(API_V3_KEY), &headers, &changed, NOW);
        prop_assert!(matches!(result, Err(NotifyError::Verify(VerifyError::BadSignature))), "{:?}", result);
    }

    /// Signed but faulty notifications: each fault gives its own error.
    #[test]
    fn signed_faults_give_their_error(bill in bill(), fault in fault()) {
        let nonce = "fdasflkja484";
        let aad = "mch_payment";
        let plaintext = match &fault {
            Fault::Plaintext(p) => p.clone(),
            _ => serde_json::to_vec(&bill).unwrap(),
        };
        let mut value = notification(&plaintext, nonce, aad);
        let resource = |v: &mut Value, name: &str, new: Value| v["resource"][name] = new;
        let ciphertext = STANDARD.decode(value["resource"]["ciphertext"].as_str().unwrap()).unwrap();
        let expected: fn(&NotifyError) -> bool = match &fault {
            Fault::Field { path: (outer, inner), with } => {
                let object = match inner {
                    None => value.as_object_mut().unwrap(),
                    Some(_) => value["resource"].as_object_mut().unwrap(),
                };
                let name = inner.unwrap_or(outer);
                match with {
                    None => { object.remove(name); }
                    Some(other) => { object.insert(name.to_owned(), other.clone()); }
                }
                |e| matches!(e, NotifyError::Body(_))
            }
            Fault::Algorithm(a) => { resource(&mut value, "algorithm", json!(a)); |e| matches!(e, NotifyError::Algorithm(_)) }
            Fault::Nonce(n) => {
                prop_assume!(n != nonce);
                resource(&mut value, "nonce", json!(n));
                |e| matches!(e, NotifyError::Decrypt(CryptoError::Aead))
            }
            Fault::NonceLength(n) => {
                resource(&mut value, "nonce", json!(n));
                |e| matches!(e, NotifyError::Decrypt(CryptoError::NonceLength(_)))
            }
            Fault::AssociatedData(a) => {
                prop_assume!(a != aad);
                resource(&mut value, "associated_data", json!(a));
                |e| matches!(e, NotifyError::Decrypt(CryptoError::Aead))
            }
            Fault::CiphertextFlip { at, mask } => {
                let mut c = ciphertext.clone();
                let i = at.index(c.len());
                c[i] ^= mask;
                resource(&mut value, "ciphertext", json!(STANDARD.encode(c)));
                |e| matches!(e, NotifyError::Decrypt(CryptoError::Aead))
            }
            Fault::CiphertextCut { at } => {
                let c = &ciphertext[..at.index(ciphertext.len())];
                resource(&mut value, "ciphertext", json!(STANDARD.encode(c)));
                |e| matches!(e, NotifyError::Decrypt(CryptoError::Aead))
            }
            Fault::CiphertextNotBase64 => {
                let c = format!("{}*", STANDARD.encode(&ciphertext));
                resource(&mut value, "ciphertext", json!(c));
                |e| matches!(e, NotifyError::Decrypt(CryptoError::CiphertextEncoding))
            }
            Fault::EventType(t) => { value["event_type"] = json!(t); |e| matches!(e, NotifyError::EventType(_)) }
            Fault::Plaintext(_) => |e| matches!(e, NotifyError::Payload(_)),
        };
        let body = serde_json::to_vec(&value).unwrap();
        let headers = wechat_headers(&body, NOW);
        match read_bill_finished(&keys(), &Secret::new(API_V3_KEY), &headers, &body, NOW) {
            Ok(read) => prop_assert!(false, "{:?} was accepted as {:?}", fault, read),
            Err(err) => prop_assert!(expected(&err), "{:?} gave {:?}", fault, err),
        }
    }

    /// Faulty headers around a genuine body: each gives its own error, before anything is parsed.
    #[test]
    fn header_faults_give_their_error(
        bill in bill(),
        missing in proptest::sample::select(&["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"][..]),
        skew in prop_oneof![MAX_CLOCK_SKEW_SECS..100_000i64, -100_000i64..=-MAX_CLOCK_SKEW_SECS],
        garbage_time in "[0-9]{0,3}[^0-9][0-9]{0,3}|[0-9]{13,20}|",
        serial in "PUB_KEY_ID_[0-9]{1,10}",
        kind in "[A-Z0-9-]{1,20}",
        how in 0u8..7,
    ) {
        let body = serde_json::to_vec(&notification(&serde_json::to_vec(&bill).unwrap(), "fdasflkja484", "")).unwrap();
        let genuine = wechat_headers(&body, NOW);
        let key = Secret::new(API_V3_KEY);
        let open = |h: &SignedHeaders, now: i64| open_notification(&keys(), &key, h, &body, now).map(|_| ());
        let err = |r: Result<(), NotifyError>| match r { Err(NotifyError::Verify(e)) => Some(e), _ => None };
        match how {
            0 => {
                let lookup = |name: &str| -> Option<&str> {
                    if name == missing { return None; }
                    match name {
                        "Wechatpay-Timestamp" => Some(genuine.timestamp.as_str()),
                        "Wechatpay-Nonce" => Some(genuine.nonce.as_str()),
                        "Wechatpay-Signature" => Some(genuine.signature.as_str()),
                        "Wechatpay-Serial" => Some(genuine.serial.as_str()),
                        _ => None,
                    }
                };
                prop_assert_eq!(SignedHeaders::from_lookup(lookup), Err(VerifyError::MissingHeader(missing)));
            }
            1 => prop_assert!(matches!(err(open(&genuine, NOW + skew)), Some(VerifyError::Stale(_)))),
            2 => {
                let headers = SignedHeaders { timestamp: garbage_time, ..genuine.clone() };
                prop_assert_eq!(err(open(&headers, NOW)), Some(VerifyError::BadTimestamp));
            }
            3 => {
                let headers = SignedHeaders { serial: serial.clone(), ..genuine.clone() };
                prop_assert_eq!(err(open(&headers, NOW)), Some(VerifyError::UnknownSerial(serial)));
            }
            4 => {
                prop_assume!(kind != AUTH_SCHEME);
                let headers = SignedHeaders { signature_type: Some(kind.clone()), ..genuine.clone() };
                prop_assert_eq!(err(open(&headers, NOW)), Some(VerifyError::UnsupportedSignatureType(kind)));
            }
            5 => {
                let headers = SignedHeaders { signature: format!("WECHATPAY/SIGNTEST/{kind}"), ..genuine.clone() };
                prop_assert_eq!(err(open(&headers, NOW)), Some(VerifyError::BadSignature));
            }
            _ => {
                // The right signature over another nonce.
                let headers = SignedHeaders { nonce: format!("{}x", genuine.nonce), ..genuine.clone() };
                prop_assert_eq!(err(open(&headers, NOW)), Some(VerifyError::BadSignature));
            }
        }
        // The genuine headers still open it, with the right key only.
        prop_assert!(open(&genuine, NOW).is_ok());
        let short_key = Secret::new(&API_V3_KEY[..31]);
        prop_assert!(matches!(open_notification(&keys(), &short_key, &genuine, &body, NOW), Err(NotifyError::ApiV3KeyLength)));
        let other_key = Secret::new(API_V3_KEY.replace('a', "b"));
        prop_assert!(matches!(
            open_notification(&keys(), &other_key, &genuine, &body, NOW),
            Err(NotifyError::Decrypt(CryptoError::Aead))
        ));
    }
}

/// A body nested past serde_json's recursion limit is a typed body error, not a stack overflow.
#[test]
fn deeply_nested_body_is_a_body_error() {
    let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let headers = wechat_headers(&body, NOW);
    let result = open_notification(&keys(), &Secret::new(API_V3_KEY), &headers, &body, NOW);
    assert!(matches!(result, Err(NotifyError::Body(_))), "{result:?}");
}
