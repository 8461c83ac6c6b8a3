//! Parametric QR codes and subscribe messages over HTTP against a mock on port 0, with real access
//! tokens; QR expiry on the mock clock; the pusher playing scans of created codes towards a
//! stand-in account. Nothing sleeps: the clock is fixed by configuration and moved explicitly.

mod support;

use reqwest::Client;
use serde_json::{json, Value};
use support::{Answer, TestAccount};
use wechat_mock::{
    MockConfig, OaPusher, PushMode, PusherConfig, QrAction, QrCodeRequest, RunningMock, SubscribeMessageRequest,
    SubscriptionError, TicketError, MP_APPID, MP_SECRET, MP_TASK_TEMPLATE_ID, OA_APPID, OA_SECRET,
};

/// 2024-06-01 12:00 in Beijing.
const BEIJING_NOON: i64 = 1_717_214_400;

async fn spawn() -> (RunningMock, Client) {
    let config = MockConfig { clock_start_unix: Some(BEIJING_NOON), ..MockConfig::default() };
    let mock = wechat_mock::start(config, "127.0.0.1:0").await.expect("mock starts");
    (mock, Client::new())
}

async fn token(mock: &RunningMock, client: &Client, appid: &str, secret: &str) -> String {
    let body: Value = client
        .get(format!("{}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}", mock.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().expect("token").to_owned()
}

async fn post_json(mock: &RunningMock, client: &Client, path_and_query: &str, body: &Value) -> Value {
    let resp = client.post(format!("{}{path_and_query}", mock.base_url)).json(body).send().await.unwrap();
    assert_eq!(resp.status(), 200, "WeChat answers errors with HTTP 200");
    resp.json().await.unwrap()
}

async fn create_qr(mock: &RunningMock, client: &Client, token: &str, body: Value) -> Value {
    post_json(mock, client, &format!("/cgi-bin/qrcode/create?access_token={token}"), &body).await
}

async fn send(mock: &RunningMock, client: &Client, token: &str, body: Value) -> Value {
    post_json(mock, client, &format!("/cgi-bin/message/subscribe/send?access_token={token}"), &body).await
}

fn assert_errcode(body: &Value, errcode: i64, errmsg_prefix: &str) {
    assert_eq!(body["errcode"], errcode, "{body}");
    let errmsg = body["errmsg"].as_str().unwrap();
    assert!(errmsg.starts_with(errmsg_prefix) && errmsg.contains(" rid: "), "{errmsg}");
}

fn keys(body: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = body.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn temporary_codes_carry_their_scene_until_they_expire() {
    let (mock, client) = spawn().await;
    let oa = token(&mock, &client, OA_APPID, OA_SECRET).await;
    let body = json!({"expire_seconds": 600, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "task_7_inviter_42"}}});
    let answer = create_qr(&mock, &client, &oa, body).await;

    assert_eq!(keys(&answer), ["expire_seconds", "ticket", "url"]);
    assert_eq!(answer["expire_seconds"], 600);
    let ticket = answer["ticket"].as_str().unwrap();
    assert!(ticket.starts_with("gQ"), "{ticket}");
    assert!(answer["url"].as_str().unwrap().starts_with("http://weixin.qq.com/q/"), "{answer}");
    assert_eq!(mock.qr_scene(ticket).as_deref(), Some("task_7_inviter_42"));
    let code = mock.qrcode(ticket).unwrap();
    assert_eq!((code.appid.as_str(), code.action_name, code.expire_seconds), (OA_APPID, QrAction::StrScene, Some(600)));
    assert!((BEIJING_NOON..BEIJING_NOON + 60).contains(&code.created_at));
    assert_eq!(mock.call_count("/cgi-bin/qrcode/create"), 1);

    let show = format!("{}/cgi-bin/showqrcode?ticket={}", mock.base_url, urlencode(ticket));
    let image = client.get(&show).send().await.unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");
    assert!(image.bytes().await.unwrap().starts_with(b"\x89PNG"));

    // Alive one second before the end of its 600 s, gone at the end.
    mock.advance_clock(599);
    assert!(mock.qr_scene(ticket).is_some());
    mock.advance_clock(1);
    assert_eq!(mock.qr_scene(ticket), None);
    assert!(mock.qrcode(ticket).unwrap().expired);
    assert_eq!(client.get(&show).send().await.unwrap().status(), 404);
    assert_eq!(mock.qr_scene("gQnever-issued"), None);

    // Without expire_seconds a temporary code lives 60 s; longer than 30 days is capped.
    let short = create_qr(
        &mock,
        &client,
        &oa,
        json!({"action_name": "QR_SCENE", "action_info": {"scene": {"scene_id": 4_294_967_295u64}}}),
    )
    .await;
    assert_eq!(short["expire_seconds"], 60);
    assert_eq!(mock.qr_scene(short["ticket"].as_str().unwrap()).as_deref(), Some("4294967295"));
    let long = create_qr(
        &mock,
        &client,
        &oa,
        json!({"expire_seconds": 9_999_999, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "x"}}}),
    )
    .await;
    assert_eq!(long["expire_seconds"], 2_592_000);

    let listed: Value =
        client.get(format!("{}/__mock/qrcodes", mock.base_url)).send().await.unwrap().json().await.unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0]["scene"], "task_7_inviter_42");
    assert_eq!(listed[0]["expired"], true);
    assert_eq!(listed[1]["action_name"], "QR_SCENE");
    assert_eq!(mock.qrcodes().len(), 3);
}

#[tokio::test]
async fn permanent_codes_never_expire_and_are_made_once_per_scene() {
    let (mock, client) = spawn().await;
    let oa = token(&mock, &client, OA_APPID, OA_SECRET).await;
    let body = json!({"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "building_3"}}});
    let first = create_qr(&mock, &client, &oa, body.clone()).await;
    assert_eq!(keys(&first), ["ticket", "url"], "no expire_seconds for a permanent code");
    let again = create_qr(&mock, &client, &oa, body).await;
    assert_eq!(first, again);
    let numeric = create_qr(
        &mock,
        &client,
        &oa,
        json!({"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 100_000}}}),
    )
    .await;
    assert_eq!(keys(&numeric), ["ticket", "url"]);

    mock.advance_clock(400 * 24 * 3600);
    assert_eq!(mock.qr_scene(first["ticket"].as_str().unwrap()).as_deref(), Some("building_3"));
    assert_eq!(mock.qr_scene(numeric["ticket"].as_str().unwrap()).as_deref(), Some("100000"));
    assert_eq!(mock.qrcodes().len(), 2);

    // The library call answers the same as HTTP.
    let oa = token(&mock, &client, OA_APPID, OA_SECRET).await;
    let direct = mock.create_qrcode(&oa, &QrCodeRequest::permanent_str("building_3")).unwrap();
    assert_eq!(direct.ticket, first["ticket"].as_str().unwrap());
    assert_eq!(direct.expire_seconds, None);
}

#[tokio::test]
async fn bad_qr_requests_get_wechats_errors() {
    let (mock, client) = spawn().await;
    let oa = token(&mock, &client, OA_APPID, OA_SECRET).await;
    let scene = |action: &str, scene: Value| json!({"action_name": action, "action_info": {"scene": scene}});

    let cases = [
        (scene("QR_FOREVER", json!({"scene_str": "x"})), 40052, "invalid action name"),
        (json!({"action_info": {"scene": {"scene_str": "x"}}}), 40052, "invalid action name"),
        (json!({"action_name": "QR_STR_SCENE"}), 40053, "invalid action info"),
        (scene("QR_STR_SCENE", json!({"scene_str": ""})), 40053, "invalid action info"),
        (scene("QR_STR_SCENE", json!({"scene_str": "s".repeat(65)})), 40053, "invalid action info"),
        (scene("QR_STR_SCENE", json!({"scene_id": 5})), 40053, "invalid action info"),
        (scene("QR_SCENE", json!({"scene_id": 0})), 40053, "invalid action info"),
        (scene("QR_SCENE", json!({"scene_id": 4_294_967_296u64})), 40053, "invalid action info"),
        (scene("QR_LIMIT_SCENE", json!({"scene_id": 100_001})), 40053, "invalid action info"),
        (json!({"expire_seconds": "600", "action_name": "QR_SCENE"}), 47001, "data format error"),
    ];
    for (body, errcode, errmsg) in cases {
        let answer = create_qr(&mock, &client, &oa, body.clone()).await;
        assert_errcode(&answer, errcode, errmsg);
    }
    assert!(mock.qrcodes().is_empty());

    let raw = |query: String, body: &'static str| {
        let client = client.clone();
        let url = format!("{}/cgi-bin/qrcode/create?{query}", mock.base_url);
        async move { client.post(url).body(body).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_errcode(&raw(format!("access_token={oa}"), "").await, 44002, "empty post data");
    assert_errcode(&raw(format!("access_token={oa}"), "not json").await, 47001, "data format error");
    let get: Value = client
        .get(format!("{}/cgi-bin/qrcode/create?access_token={oa}", mock.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_errcode(&get, 43002, "require POST method");

    // The shared token check comes first.
    let valid = scene("QR_STR_SCENE", json!({"scene_str": "x"}));
    assert_errcode(&create_qr(&mock, &client, "", valid.clone()).await, 41001, "access_token missing");
    assert_errcode(&create_qr(&mock, &client, "not-a-token", valid.clone()).await, 40001, "invalid credential");
    let mp = token(&mock, &client, MP_APPID, MP_SECRET).await;
    assert_errcode(&create_qr(&mock, &client, &mp, valid.clone()).await, 48001, "api unauthorized");
    mock.advance_clock(7200);
    assert_errcode(&create_qr(&mock, &client, &oa, valid).await, 42001, "access_token expired");
    assert!(mock.qrcodes().is_empty());
}

#[tokio::test]
async fn the_pusher_plays_scans_of_created_codes() {
    let (mock, client) = spawn().await;
    let account = TestAccount::start(mock.wechat.clone(), Answer::Success).await;
    let pusher = OaPusher::new(PusherConfig { mode: PushMode::Safe, ..PusherConfig::new(account.url.clone()) })
        .expect("pusher")
        .with_mock(mock.wechat.clone());
    let oa = token(&mock, &client, OA_APPID, OA_SECRET).await;
    // A string scene made of digits: user/info must show it as qr_scene_str, not qr_scene.
    let body =
        json!({"expire_seconds": 300, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "2024"}}});
    let ticket = create_qr(&mock, &client, &oa, body).await["ticket"].as_str().unwrap().to_owned();
    let user = mock.add_user();

    let follow = pusher.follow_via_ticket(&user.oa_openid, &ticket).expect("a live ticket");
    let outcome = pusher.deliver(&follow).await.unwrap();
    assert!(outcome.is_acknowledged());
    let got = account.received();
    let message = got[0].message.as_ref().unwrap();
    assert!(got[0].accepted(), "{:?}", got[0]);
    assert_eq!(message.get("Event"), Some("subscribe"));
    assert_eq!(message.get("EventKey"), Some("qrscene_2024"));
    assert_eq!(message.get("Ticket"), Some(ticket.as_str()));
    let state = mock.user(&user.unionid).unwrap().follows[OA_APPID].clone();
    assert!(state.subscribed);
    assert_eq!((state.qr_scene, state.qr_scene_str.as_str()), (0, "2024"));

    let scan = pusher.scan_via_ticket(&user.oa_openid, &ticket).unwrap();
    pusher.deliver(&scan).await.unwrap();
    let message = account.received()[1].message.clone().unwrap();
    assert_eq!(message.get("Event"), Some("SCAN"));
    assert_eq!(message.get("EventKey"), Some("2024"));
    assert_eq!(message.get("Ticket"), Some(ticket.as_str()));

    assert_eq!(
        pusher.follow_via_ticket(&user.oa_openid, "gQunknown"),
        Err(TicketError::UnknownTicket("gQunknown".into()))
    );
    let detached = OaPusher::new(PusherConfig::new(account.url.clone())).unwrap();
    assert_eq!(detached.scan_via_ticket(&user.oa_openid, &ticket), Err(TicketError::NoMock));
    mock.advance_clock(300);
    assert_eq!(pusher.follow_via_ticket(&user.oa_openid, &ticket), Err(TicketError::Expired(ticket.clone())));
}

#[tokio::test]
async fn subscribe_messages_need_an_acceptance_each() {
    let (mock, client) = spawn().await;
    let mp = token(&mock, &client, MP_APPID, MP_SECRET).await;
    let user = mock.add_user();
    let message = json!({
        "touser": user.mp_openid,
        "template_id": MP_TASK_TEMPLATE_ID,
        "page": "pages/tasks/detail?id=7",
        "miniprogram_state": "trial",
        "data": {"thing1": {"value": "邀请3位邻居"}, "number2": {"value": "2"}, "time3": {"value": "2024-06-01 12:00"}},
    });

    // A new user has accepted nothing.
    assert_errcode(&send(&mock, &client, &mp, message.clone()).await, 43101, "user refuse to accept the msg");
    assert_eq!(mock.subscription_quota(&user.unionid, MP_TASK_TEMPLATE_ID), 0);

    assert_eq!(mock.accept_subscription(&user.mp_openid, MP_TASK_TEMPLATE_ID, 1), Ok(1));
    let accepted: Value = client
        .post(format!("{}/__mock/subscriptions", mock.base_url))
        .json(&json!({"user": user.unionid}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accepted["remaining"], 2, "{accepted}");

    let ok = send(&mock, &client, &mp, message.clone()).await;
    assert_eq!(ok, json!({"errcode": 0, "errmsg": "ok"}));
    assert_eq!(mock.subscription_quota(&user.mp_openid, MP_TASK_TEMPLATE_ID), 1);
    assert_eq!(send(&mock, &client, &mp, message.clone()).await["errcode"], 0);
    assert_errcode(&send(&mock, &client, &mp, message.clone()).await, 43101, "user refuse to accept the msg");

    let delivered = mock.subscribe_messages();
    assert_eq!(delivered.len(), 2);
    let first = &delivered[0];
    assert_eq!((first.appid.as_str(), first.touser.as_str()), (MP_APPID, user.mp_openid.as_str()));
    assert_eq!(first.unionid, user.unionid);
    assert_eq!(first.template_id, MP_TASK_TEMPLATE_ID);
    assert_eq!(first.page.as_deref(), Some("pages/tasks/detail?id=7"));
    assert_eq!(first.data["thing1"], "邀请3位邻居");
    assert_eq!((first.miniprogram_state.as_str(), first.lang.as_str()), ("trial", "zh_CN"));
    assert!((BEIJING_NOON..BEIJING_NOON + 60).contains(&first.sent_at));
    let listed: Value =
        client.get(format!("{}/__mock/subscribe-messages", mock.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[1]["data"]["time3"], "2024-06-01 12:00");
    assert_eq!(mock.call_count("/cgi-bin/message/subscribe/send"), 4);

    // The library call goes through the same checks.
    mock.accept_subscription(&user.unionid, MP_TASK_TEMPLATE_ID, 1).unwrap();
    let request = SubscribeMessageRequest::new(&user.mp_openid, MP_TASK_TEMPLATE_ID, &[("phrase1", "已完成")]);
    mock.send_subscribe_message(&mp, &request).unwrap();
    let refused = mock.send_subscribe_message(&mp, &request).unwrap_err();
    assert_eq!(refused.error.errcode, 43101);

    mock.reset();
    assert!(mock.subscribe_messages().is_empty());
    assert_eq!(mock.subscription_quota(&user.unionid, MP_TASK_TEMPLATE_ID), 0);
}

#[tokio::test]
async fn bad_subscribe_messages_get_wechats_errors() {
    let (mock, client) = spawn().await;
    let mp = token(&mock, &client, MP_APPID, MP_SECRET).await;
    let user = mock.add_user();
    mock.accept_subscription(&user.unionid, MP_TASK_TEMPLATE_ID, 10).unwrap();
    let with = |touser: &str, template_id: &str, data: Value| json!({"touser": touser, "template_id": template_id, "data": data});
    let good_data = json!({"thing1": {"value": "ok"}});

    // 40003: not a user of this mini-program (the official-account openid is another app's).
    let wrong_openid = send(&mock, &client, &mp, with(&user.oa_openid, MP_TASK_TEMPLATE_ID, good_data.clone())).await;
    assert_errcode(&wrong_openid, 40003, "invalid openid");
    assert_errcode(
        &send(&mock, &client, &mp, json!({"template_id": MP_TASK_TEMPLATE_ID})).await,
        40003,
        "invalid openid",
    );
    // 40037: a template the mini-program does not have.
    let unknown = send(&mock, &client, &mp, with(&user.mp_openid, "NoSuchTemplate", good_data.clone())).await;
    assert_errcode(&unknown, 40037, "invalid template_id");
    // 47003: data that breaks WeChat's rules, naming the field.
    let bad_data = [
        (json!(null), "argument invalid! data is empty"),
        (json!({"thing1": {"value": ""}}), "argument invalid! data.thing1.value is empty"),
        (
            json!({"thing1": {"value": "这是一段超过二十个字的任务说明文字，微信会拒绝它"}}),
            "argument invalid! data.thing1.value invalid",
        ),
        (json!({"number2": {"value": "三"}}), "argument invalid! data.number2.value invalid"),
        (json!({"amount3": {"value": "¥12345678901.00"}}), "argument invalid! data.amount3.value invalid"),
        (json!({"phrase4": {"value": "已经全部完成"}}), "argument invalid! data.phrase4.value invalid"),
        (json!({"character_string5": {"value": "编号42"}}), "argument invalid! data.character_string5.value invalid"),
        (json!({"time6": {"value": "明天"}}), "argument invalid! data.time6.value invalid"),
    ];
    for (data, errmsg) in bad_data {
        let answer = send(&mock, &client, &mp, with(&user.mp_openid, MP_TASK_TEMPLATE_ID, data)).await;
        assert_errcode(&answer, 47003, errmsg);
    }
    let bad_state = json!({"touser": user.mp_openid, "template_id": MP_TASK_TEMPLATE_ID, "data": good_data, "miniprogram_state": "release"});
    assert_errcode(&send(&mock, &client, &mp, bad_state).await, 47003, "argument invalid! miniprogram_state invalid");

    // A registered template with keywords requires them.
    let registered: Value = client
        .post(format!("{}/__mock/subscribe-templates", mock.base_url))
        .json(&json!({"template_id": "RewardTemplate", "keywords": ["thing1", "amount2"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(registered["appid"], MP_APPID);
    mock.accept_subscription(&user.mp_openid, "RewardTemplate", 1).unwrap();
    let missing = send(&mock, &client, &mp, with(&user.mp_openid, "RewardTemplate", good_data.clone())).await;
    assert_errcode(&missing, 47003, "argument invalid! data.amount2.value is empty");
    let complete = json!({"thing1": {"value": "任务奖励"}, "amount2": {"value": "¥5.00"}});
    assert_eq!(send(&mock, &client, &mp, with(&user.mp_openid, "RewardTemplate", complete)).await["errcode"], 0);

    // Refused sends used no acceptance.
    assert_eq!(mock.subscription_quota(&user.unionid, MP_TASK_TEMPLATE_ID), 10);
    assert_eq!(mock.subscribe_messages().len(), 1);

    // The shared token check comes first; an official account's token is refused.
    let valid = with(&user.mp_openid, MP_TASK_TEMPLATE_ID, good_data);
    assert_errcode(&send(&mock, &client, "", valid.clone()).await, 41001, "access_token missing");
    assert_errcode(&send(&mock, &client, "not-a-token", valid.clone()).await, 40001, "invalid credential");
    let oa = token(&mock, &client, OA_APPID, OA_SECRET).await;
    assert_errcode(&send(&mock, &client, &oa, valid.clone()).await, 48001, "api unauthorized");
    mock.advance_clock(7200);
    assert_errcode(&send(&mock, &client, &mp, valid).await, 42001, "access_token expired");
}

#[tokio::test]
async fn acceptances_and_templates_are_checked() {
    let (mock, client) = spawn().await;
    let user = mock.add_user();
    assert_eq!(
        mock.accept_subscription(&user.unionid, "NoSuchTemplate", 1),
        Err(SubscriptionError::UnknownTemplate("NoSuchTemplate".into()))
    );
    // An official-account openid is not a user of the template's mini-program.
    assert_eq!(
        mock.accept_subscription(&user.oa_openid, MP_TASK_TEMPLATE_ID, 1),
        Err(SubscriptionError::UnknownUser(user.oa_openid.clone()))
    );
    assert_eq!(
        mock.register_subscribe_template(OA_APPID, "T", &[]),
        Err(SubscriptionError::NotAMiniProgram(OA_APPID.into()))
    );
    assert_eq!(
        mock.register_subscribe_template(MP_APPID, "T", &["keyword1"]),
        Err(SubscriptionError::BadKeyword("keyword1".into()))
    );
    assert_eq!(mock.subscribe_templates().len(), 1, "only the default template");

    let post = |path: &'static str, body: Value| {
        let client = client.clone();
        let url = format!("{}{path}", mock.base_url);
        async move { client.post(url).json(&body).send().await.unwrap().status() }
    };
    assert_eq!(post("/__mock/subscriptions", json!({"user": "o_nobody"})).await, 404);
    assert_eq!(post("/__mock/subscriptions", json!({"user": user.unionid, "times": 0})).await, 400);
    assert_eq!(post("/__mock/subscriptions", json!({"who": user.unionid})).await, 400);
    assert_eq!(post("/__mock/subscribe-templates", json!({"template_id": "T", "keywords": ["x"]})).await, 400);
    let templates: Value =
        client.get(format!("{}/__mock/subscribe-templates", mock.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(templates, json!([{"template_id": MP_TASK_TEMPLATE_ID, "appid": MP_APPID, "keywords": []}]));
}

/// Percent-encodes a ticket for a query string (tickets are standard base64: `+`, `/`, `=`).
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
