//! The pusher against a stand-in account server that checks everything with this crate's own
//! protocol code: all three modes, replies plain and encrypted, follow state, concurrent deliveries,
//! tampering. Nothing sleeps; the mock clock is fixed by configuration and moved explicitly.

mod support;

use std::time::Duration;

use support::{Answer, TestAccount};
use wechat_mock::callback::crypto::CryptoError;
use wechat_mock::{
    DeliveryError, MockConfig, OaMessage, OaPusher, PushMode, PusherConfig, Reply, ReplyError, RunningMock,
    SubscribeScene, Tamper, TamperError, OA_APPID, OA_ORIGINAL_ID,
};

/// 2024-06-01 12:00 in Beijing.
const BEIJING_NOON: i64 = 1_717_214_400;

async fn mock() -> RunningMock {
    let config = MockConfig { clock_start_unix: Some(BEIJING_NOON), ..MockConfig::default() };
    wechat_mock::start(config, "127.0.0.1:0").await.expect("mock starts")
}

fn pusher_for(mock: &RunningMock, account: &TestAccount, mode: PushMode) -> OaPusher {
    OaPusher::new(PusherConfig { mode, ..PusherConfig::new(account.url.clone()) })
        .expect("pusher")
        .with_mock(mock.wechat.clone())
}

#[tokio::test]
async fn plaintext_mode_text_message_and_plain_reply() {
    let mock = mock().await;
    let account = TestAccount::start(mock.wechat.clone(), Answer::PlainText("收到".into())).await;
    let pusher = pusher_for(&mock, &account, PushMode::Plaintext);
    let user = mock.add_user();

    let push = pusher.text(&user.oa_openid, "签到 <&>");
    assert!((BEIJING_NOON..BEIJING_NOON + 60).contains(&push.create_time()));
    assert_eq!(push.timestamp(), push.create_time().to_string());
    assert!(push.encrypt().is_none() && push.msg_signature().is_none());
    let outcome = pusher.deliver(&push).await.expect("delivered");

    assert_eq!(outcome.status, 200);
    assert!(!outcome.reply_encrypted);
    let text = outcome.text().expect("a text reply");
    assert_eq!(text.to_user_name, user.oa_openid);
    assert_eq!(text.from_user_name, OA_ORIGINAL_ID);
    assert_eq!(text.content, "收到");

    let received = account.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert!(got.accepted(), "{got:?}");
    assert_eq!(got.body, push.body());
    assert_eq!(got.body, push.message_xml());
    assert!(!got.query.contains_key("encrypt_type"));
    assert!(!got.query.contains_key("msg_signature"));
    assert_eq!(got.query["openid"], user.oa_openid);
    let fields = got.message.as_ref().unwrap();
    assert_eq!(fields.get("ToUserName"), Some(OA_ORIGINAL_ID));
    assert_eq!(fields.get("FromUserName"), Some(user.oa_openid.as_str()));
    assert_eq!(fields.get("MsgType"), Some("text"));
    assert_eq!(fields.get("Content"), Some("签到 <&>"));
    let OaMessage::Text { msg_id, .. } = push.message() else { panic!("a text push") };
    assert_eq!(fields.get("MsgId"), Some(msg_id.to_string().as_str()));
    assert!(got.raw_query.starts_with("signature="), "{}", got.raw_query);
}

#[tokio::test]
async fn compatible_mode_carries_both_and_accepts_either_reply() {
    let mock = mock().await;
    let account = TestAccount::start(mock.wechat.clone(), Answer::EncryptedText("encrypted hi".into())).await;
    let pusher = pusher_for(&mock, &account, PushMode::Compatible);
    let user = mock.add_user();

    let push = pusher.click(&user.oa_openid, "CHECK_IN");
    let outcome = pusher.deliver(&push).await.unwrap();
    assert!(outcome.reply_encrypted);
    assert_eq!(outcome.text().unwrap().content, "encrypted hi");

    let got = &account.received()[0];
    assert!(got.accepted(), "{got:?}");
    assert_eq!(got.query["encrypt_type"], "aes");
    assert_eq!(got.query["msg_signature"], push.msg_signature().unwrap());
    let decrypted = got.message.as_ref().unwrap();
    assert_eq!(decrypted.get("Event"), Some("CLICK"));
    assert_eq!(decrypted.get("EventKey"), Some("CHECK_IN"));
    // The plaintext fields sit beside <Encrypt> and say the same.
    let body = wechat_mock::callback::xml::parse_fields(&got.body).unwrap();
    for (name, value) in decrypted.iter() {
        assert_eq!(body.get(name), Some(value), "{name}");
    }
    assert!(body.contains("Encrypt"));

    account.set_answer(Answer::PlainText("plain hi".into()));
    let outcome = pusher.deliver(&push).await.unwrap();
    assert!(!outcome.reply_encrypted);
    assert_eq!(outcome.text().unwrap().content, "plain hi");
}

#[tokio::test]
async fn safe_mode_only_ciphertext_and_replies_are_verified() {
    let mock = mock().await;
    let account = TestAccount::start(mock.wechat.clone(), Answer::EncryptedText("hello".into())).await;
    let pusher = pusher_for(&mock, &account, PushMode::Safe);
    let user = mock.add_user();
    let push = pusher.scan(&user.oa_openid, "home_7");

    let outcome = pusher.deliver(&push).await.unwrap();
    assert_eq!(outcome.status, 200);
    assert!(outcome.reply_encrypted);
    let text = outcome.text().unwrap();
    assert_eq!(
        (text.to_user_name.as_str(), text.from_user_name.as_str(), text.content.as_str()),
        (user.oa_openid.as_str(), OA_ORIGINAL_ID, "hello")
    );

    let got = &account.received()[0];
    assert!(got.accepted(), "{got:?}");
    let body = wechat_mock::callback::xml::parse_fields(&got.body).unwrap();
    let names: Vec<&str> = body.iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["Encrypt", "ToUserName"]);
    assert_eq!(body.get("ToUserName"), Some(OA_ORIGINAL_ID));
    let message = got.message.as_ref().unwrap();
    assert_eq!(message.get("Event"), Some("SCAN"));
    assert_eq!(message.get("EventKey"), Some("home_7"));
    assert!(message.get("Ticket").is_some_and(|t| t.starts_with("gQ")));

    // What WeChat would refuse in safe mode.
    account.set_answer(Answer::PlainText("plain".into()));
    let plain = pusher.deliver(&push).await.unwrap();
    assert_eq!(plain.reply, Err(ReplyError::NotEncrypted));
    account.set_answer(Answer::ForgedEncryptedText("forged".into()));
    let forged = pusher.deliver(&push).await.unwrap();
    assert_eq!(forged.reply, Err(ReplyError::BadMsgSignature));
    assert!(!forged.is_acknowledged());
    account.set_answer(Answer::EncryptedForOtherApp("elsewhere".into()));
    let other = pusher.deliver(&push).await.unwrap();
    assert_eq!(other.reply, Err(ReplyError::Crypto(CryptoError::AppidMismatch { found: "wx_someone_else".into() })));
    // success and empty need no encryption.
    account.set_answer(Answer::Success);
    assert_eq!(pusher.deliver(&push).await.unwrap().reply, Ok(Reply::Success));
    account.set_answer(Answer::Empty);
    assert_eq!(pusher.deliver(&push).await.unwrap().reply, Ok(Reply::Empty));
}

#[tokio::test]
async fn follow_and_unfollow_update_the_user_as_wechat_does() {
    let mock = mock().await;
    let account = TestAccount::start(mock.wechat.clone(), Answer::Success).await;
    let user = mock.add_user();
    for mode in [PushMode::Plaintext, PushMode::Compatible, PushMode::Safe] {
        let pusher = pusher_for(&mock, &account, mode);
        account.clear();

        let follow = pusher.follow_scene(&user.oa_openid, "community_12");
        let outcome = pusher.deliver(&follow).await.unwrap();
        assert_eq!(outcome.reply, Ok(Reply::Success), "{mode:?}");
        let got = &account.received()[0];
        assert!(got.accepted(), "{mode:?}: {got:?}");
        let message = got.message.as_ref().unwrap();
        assert_eq!(message.get("Event"), Some("subscribe"));
        assert_eq!(message.get("EventKey"), Some("qrscene_community_12"));
        let OaMessage::FollowScene { ticket, .. } = follow.message() else { panic!("a follow-scene push") };
        assert_eq!(message.get("Ticket"), Some(ticket.as_str()));

        let record = mock.user(&user.unionid).unwrap();
        let state = &record.follows[OA_APPID];
        assert!(state.subscribed);
        assert_eq!(state.subscribe_time, follow.create_time());
        assert_eq!(state.subscribe_scene, SubscribeScene::QrCode);
        assert_eq!(state.qr_scene_str, "community_12");

        pusher.deliver(&pusher.unfollow(&user.oa_openid)).await.unwrap();
        assert!(!mock.user(&user.unionid).unwrap().follows[OA_APPID].subscribed);

        let plain_follow = pusher.follow(&user.oa_openid);
        pusher.deliver(&plain_follow).await.unwrap();
        let message = account.received()[2].message.clone().unwrap();
        assert_eq!(message.get("EventKey"), Some(""));
        assert!(!message.contains("Ticket"));
        let state = mock.user(&user.unionid).unwrap().follows[OA_APPID].clone();
        assert!(state.subscribed);
        assert_eq!(state.subscribe_scene, SubscribeScene::Search);
        assert_eq!(state.qr_scene_str, "");

        pusher.deliver(&pusher.unfollow(&user.oa_openid)).await.unwrap();
        mock.advance_clock(60);
    }
    // A push for an openid the mock does not know is delivered all the same.
    let pusher = pusher_for(&mock, &account, PushMode::Safe);
    let stranger = pusher.follow("o_not_a_mock_user");
    assert!(pusher.deliver(&stranger).await.unwrap().is_acknowledged());
}

#[tokio::test]
async fn one_push_delivered_three_times_at_once_arrives_three_times_identically() {
    let mock = mock().await;
    let account = TestAccount::start(mock.wechat.clone(), Answer::SuccessWhenConcurrent(3)).await;
    let pusher = pusher_for(&mock, &account, PushMode::Safe);
    let user = mock.add_user();
    let push = pusher.follow(&user.oa_openid);

    let outcomes = pusher.deliver_concurrently(&push, 3).await;
    assert_eq!(outcomes.len(), 3);
    for outcome in &outcomes {
        let outcome = outcome.as_ref().expect("delivered");
        // The handler answers success only once all three requests were inside it together.
        assert_eq!(outcome.reply, Ok(Reply::Success), "{outcome:?}");
    }
    let received = account.received();
    assert_eq!(received.len(), 3);
    for got in &received {
        assert!(got.accepted());
        assert_eq!(got.body, push.body());
        assert_eq!(got.raw_query, received[0].raw_query);
    }
    assert!(mock.user(&user.unionid).unwrap().follows[OA_APPID].subscribed);

    // Sequential redeliveries of the same push are byte-identical too.
    account.set_answer(Answer::Success);
    account.clear();
    for _ in 0..3 {
        pusher.deliver(&push).await.unwrap();
    }
    let received = account.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|got| got.body == push.body() && got.raw_query == received[0].raw_query));
    assert!(pusher.deliver_concurrently(&push, 0).await.is_empty());
}

#[tokio::test]
async fn tampered_pushes_are_what_they_claim() {
    let mock = mock().await;
    let account = TestAccount::start(mock.wechat.clone(), Answer::Success).await;
    let pusher = pusher_for(&mock, &account, PushMode::Safe);
    let user = mock.add_user();
    let follow = pusher.follow(&user.oa_openid);
    assert!(follow.is_genuine());

    // Bad signature: both signatures fail, the message itself is intact.
    let bad = pusher.tampered(&follow, Tamper::BadSignature).unwrap();
    assert!(!bad.is_genuine());
    assert_ne!(bad.signature(), follow.signature());
    assert_eq!(bad.body(), follow.body());
    let outcome = pusher.deliver(&bad).await.unwrap();
    assert_eq!(outcome.reply, Err(ReplyError::HttpStatus(403)));
    let got = account.received().pop().unwrap();
    assert!(!got.signature_ok);
    assert_eq!(got.msg_signature_ok, Some(false));
    assert!(matches!(got.decrypted, Some(Ok(_))));
    assert!(!mock.user(&user.unionid).unwrap().follows[OA_APPID].subscribed, "a forged follow changes nothing");

    // Bad msg_signature only.
    let bad_msg = pusher.tampered(&follow, Tamper::BadMsgSignature).unwrap();
    assert_eq!(bad_msg.signature(), follow.signature());
    pusher.deliver(&bad_msg).await.unwrap();
    let got = account.received().pop().unwrap();
    assert!(got.signature_ok);
    assert_eq!(got.msg_signature_ok, Some(false));

    // Stale: ten minutes old, correctly signed, message unchanged but for CreateTime.
    let stale = pusher.tampered(&follow, Tamper::StaleTimestamp { seconds_ago: 600 }).unwrap();
    assert_eq!(stale.create_time(), follow.create_time() - 600);
    assert_eq!(stale.timestamp(), (follow.create_time() - 600).to_string());
    pusher.deliver(&stale).await.unwrap();
    let got = account.received().pop().unwrap();
    assert!(got.signature_ok && got.msg_signature_ok == Some(true));
    assert!(!got.fresh);
    let message = got.message.unwrap();
    assert_eq!(message.get("CreateTime"), Some(stale.timestamp()));

    // Another appid inside the ciphertext, correctly signed.
    let foreign = pusher.tampered(&follow, Tamper::WrongAppid("wx_wrong_app".into())).unwrap();
    pusher.deliver(&foreign).await.unwrap();
    let got = account.received().pop().unwrap();
    assert!(got.signature_ok && got.msg_signature_ok == Some(true));
    assert_eq!(got.decrypted, Some(Err(CryptoError::AppidMismatch { found: "wx_wrong_app".into() })));

    // Tamperings add up.
    let both = pusher.tampered(&stale, Tamper::BadSignature).unwrap();
    assert_eq!(both.timestamp(), stale.timestamp());
    assert_ne!(both.signature(), stale.signature());

    // Nothing happened to the user; the genuine push still works.
    assert!(!mock.user(&user.unionid).unwrap().follows[OA_APPID].subscribed);
    assert!(pusher.deliver(&follow).await.unwrap().is_acknowledged());
    assert!(mock.user(&user.unionid).unwrap().follows[OA_APPID].subscribed);

    // Plaintext pushes have no ciphertext to spoil.
    let plain = pusher_for(&mock, &account, PushMode::Plaintext).follow(&user.oa_openid);
    let plain_pusher = pusher_for(&mock, &account, PushMode::Plaintext);
    assert_eq!(plain_pusher.tampered(&plain, Tamper::WrongAppid("x".into())), Err(TamperError::NotEncrypted));
    assert_eq!(plain_pusher.tampered(&plain, Tamper::BadMsgSignature), Err(TamperError::NotEncrypted));
    let bad_plain = plain_pusher.tampered(&plain, Tamper::BadSignature).unwrap();
    plain_pusher.deliver(&bad_plain).await.unwrap();
    assert!(!account.received().pop().unwrap().signature_ok);
}

#[tokio::test]
async fn url_verification_and_delivery_failures() {
    let mock = mock().await;
    let account = TestAccount::start(mock.wechat.clone(), Answer::Hang).await;
    let pusher = pusher_for(&mock, &account, PushMode::Safe);
    let check = pusher.verify_url().await.unwrap();
    assert!(check.passed, "{check:?}");
    assert_eq!(check.body, check.echostr);

    // An account that never answers: WeChat gives up after its timeout.
    let impatient =
        OaPusher::new(PusherConfig { timeout: Duration::from_millis(200), ..PusherConfig::new(account.url.clone()) })
            .unwrap()
            .with_mock(mock.wechat.clone());
    let push = impatient.text("o_any", "hello?");
    assert_eq!(impatient.deliver(&push).await, Err(DeliveryError::Timeout));

    // Nobody listening.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let nowhere = OaPusher::new(PusherConfig::new(format!("http://127.0.0.1:{port}/cb"))).unwrap();
    assert!(matches!(nowhere.deliver(&nowhere.follow("o_any")).await, Err(DeliveryError::Http(_))));
}

#[test]
fn pusher_configuration_is_checked() {
    let bad_key =
        OaPusher::new(PusherConfig { encoding_aes_key: "short".into(), ..PusherConfig::new("http://127.0.0.1/cb") });
    assert!(bad_key.is_err());
    assert!(OaPusher::new(PusherConfig::new("not a url")).is_err());
    assert!(OaPusher::new(PusherConfig::new("ftp://127.0.0.1/cb")).is_err());
    let debug = format!("{:?}", PusherConfig::new("http://x/cb"));
    assert!(!debug.contains(wechat_mock::OA_CALLBACK_TOKEN));
    assert!(!debug.contains(wechat_mock::OA_ENCODING_AES_KEY));
}

#[tokio::test]
async fn callback_url_query_is_kept_and_extended() {
    let mock = mock().await;
    let account = TestAccount::start(mock.wechat.clone(), Answer::Success).await;
    let pusher =
        OaPusher::new(PusherConfig::new(format!("{}?org=7", account.url))).unwrap().with_mock(mock.wechat.clone());
    let push = pusher.text("o_with space&amp", "x");
    assert!(push.url().contains("?org=7&signature="));
    pusher.deliver(&push).await.unwrap();
    let got = account.received().pop().unwrap();
    assert_eq!(got.query["org"], "7");
    assert_eq!(got.query["openid"], "o_with space&amp");
    assert!(got.accepted());
}
