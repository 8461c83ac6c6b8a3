//! Mini-program login (`wx.login` codes, `/sns/jscode2session`), the phone-number API and their
//! control endpoints, over HTTP against a mock on port 0. Time moves only through the mock clock.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use reqwest::Client;
use serde_json::{json, Value};
use wechat_mock::{
    Code2SessionRequest, MockApp, MockConfig, MockUser, RunningMock, UserError, UserOptions, WxError, MP_APPID,
    MP_SECRET, OA_APPID, OA_SECRET,
};

/// 2024-06-01 12:00 in Beijing.
const BEIJING_NOON: i64 = 1_717_214_400;

async fn spawn(config: MockConfig) -> (RunningMock, Client) {
    let config = MockConfig { clock_start_unix: Some(BEIJING_NOON), ..config };
    let mock = wechat_mock::start(config, "127.0.0.1:0").await.expect("mock starts");
    (mock, Client::new())
}

async fn get_json(client: &Client, url: String) -> Value {
    let resp = client.get(url).send().await.expect("request");
    assert_eq!(resp.status(), 200, "WeChat answers errors with HTTP 200");
    resp.json().await.expect("json body")
}

async fn jscode2session_raw(mock: &RunningMock, client: &Client, query: &str) -> Value {
    get_json(client, format!("{}/sns/jscode2session?{query}", mock.base_url)).await
}

async fn login(mock: &RunningMock, client: &Client, code: &str) -> Value {
    let query = format!("appid={MP_APPID}&secret={MP_SECRET}&js_code={code}&grant_type=authorization_code");
    jscode2session_raw(mock, client, &query).await
}

async fn token(mock: &RunningMock, client: &Client, appid: &str, secret: &str) -> String {
    let body = get_json(
        client,
        format!("{}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}", mock.base_url),
    )
    .await;
    body["access_token"].as_str().expect("token").to_owned()
}

async fn phone(mock: &RunningMock, client: &Client, access_token: &str, body: Value) -> Value {
    let resp = client
        .post(format!("{}/wxa/business/getuserphonenumber?access_token={access_token}", mock.base_url))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json body")
}

fn keys(body: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = body.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

fn assert_errcode(body: &Value, errcode: i64, errmsg_prefix: &str) {
    assert_eq!(body["errcode"], errcode, "{body}");
    let errmsg = body["errmsg"].as_str().unwrap();
    assert!(errmsg.starts_with(errmsg_prefix) && errmsg.contains(" rid: "), "{errmsg}");
}

#[tokio::test]
async fn login_answers_openid_session_key_and_the_unionid_the_oa_sees() {
    let (mock, client) = spawn(MockConfig::default()).await;
    // One person who follows the official account and opens the mini-program.
    let user = mock.add_user_with(&UserOptions { subscribed: true, ..UserOptions::default() }).unwrap();
    let code = mock.login_code(&user);
    assert_eq!(code.len(), 32, "{code}");
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()), "{code}");

    let body = login(&mock, &client, &code).await;
    assert_eq!(keys(&body), ["openid", "session_key", "unionid"], "{body}");
    assert_eq!(body["openid"], user.mp_openid);
    assert_eq!(body["unionid"], user.unionid);
    let session_key = body["session_key"].as_str().unwrap();
    assert_eq!(STANDARD.decode(session_key).expect("base64").len(), 16);
    assert_eq!(mock.session_key(MP_APPID, &user.mp_openid).as_deref(), Some(session_key));

    // The official account's user/info shows the same unionid for its own openid.
    let oa_token = token(&mock, &client, OA_APPID, OA_SECRET).await;
    let info = get_json(
        &client,
        format!("{}/cgi-bin/user/info?access_token={oa_token}&openid={}", mock.base_url, user.oa_openid),
    )
    .await;
    assert_eq!(info["unionid"], body["unionid"]);
    assert_ne!(info["openid"], body["openid"], "openids are per app");

    // Every login brings a new session key.
    let again = login(&mock, &client, &mock.login_code(&user)).await;
    assert_ne!(again["session_key"], body["session_key"]);
    assert_eq!(mock.call_count("/sns/jscode2session"), 2);
    let stats = mock.mini_program_stats();
    assert_eq!((stats.login_codes_issued, stats.sessions_issued), (2, 2));
}

#[tokio::test]
async fn unbound_apps_get_no_unionid() {
    let (mock, client) = spawn(MockConfig { open_platform_bound: false, ..MockConfig::default() }).await;
    let user = mock.add_user();
    let body = login(&mock, &client, &mock.login_code(&user)).await;
    assert_eq!(keys(&body), ["openid", "session_key"], "{body}");
    assert_eq!(body["openid"], user.mp_openid);
}

#[tokio::test]
async fn codes_are_single_use() {
    let (mock, client) = spawn(MockConfig::default()).await;
    let user = mock.add_user();
    let code = mock.login_code(&user);
    assert_eq!(login(&mock, &client, &code).await["openid"], user.mp_openid);
    assert_errcode(&login(&mock, &client, &code).await, 40163, "code been used");
    // Still "used" just before it expires, unknown afterwards.
    mock.advance_clock(290);
    assert_errcode(&login(&mock, &client, &code).await, 40163, "code been used");
    mock.advance_clock(11);
    assert_errcode(&login(&mock, &client, &code).await, 40029, "invalid code");
    assert_eq!(mock.call_count("/sns/jscode2session"), 4);
}

#[tokio::test]
async fn codes_expire_after_five_minutes() {
    let (mock, client) = spawn(MockConfig::default()).await;
    let user = mock.add_user();
    let late = mock.login_code(&user);
    let in_time = mock.login_code(&user);
    mock.advance_clock(290);
    assert_eq!(login(&mock, &client, &in_time).await["openid"], user.mp_openid);
    mock.advance_clock(11);
    assert_errcode(&login(&mock, &client, &late).await, 40029, "invalid code");
}

#[tokio::test]
async fn login_code_variants() {
    let (mock, client) = spawn(MockConfig::default()).await;
    let user = mock.add_user();
    let by_openid = mock.login_code_for_openid(MP_APPID, &user.mp_openid).expect("a code");
    assert_eq!(login(&mock, &client, &by_openid).await["openid"], user.mp_openid);
    let by_unionid = mock.login_code_for_unionid(&user.unionid).expect("a code");
    assert_eq!(login(&mock, &client, &by_unionid).await["openid"], user.mp_openid);
    assert_eq!(mock.login_code_for_openid(OA_APPID, &user.oa_openid), None, "not a mini-program");
    assert_eq!(mock.login_code_for_openid(MP_APPID, &user.oa_openid), None, "another app's openid");
    assert_eq!(mock.login_code_for_unionid("o_nobody"), None);
    // A person the mock does not know gets a code WeChat does not recognise.
    let stranger = MockUser { oa_openid: "x".into(), mp_openid: "y".into(), unionid: "o_nobody".into() };
    let code = mock.login_code(&stranger);
    assert_eq!(code.len(), 32);
    assert_errcode(&login(&mock, &client, &code).await, 40029, "invalid code");

    // Phone codes come the same ways.
    assert_eq!(mock.phone_code(&stranger).len(), 64);
    assert!(mock.phone_code_for_openid(MP_APPID, &user.mp_openid).is_some());
    assert_eq!(mock.phone_code_for_openid(OA_APPID, &user.oa_openid), None);
    assert_eq!(mock.phone_code_for_unionid("o_nobody"), None);
    let mp_token = token(&mock, &client, MP_APPID, MP_SECRET).await;
    let unknown = mock.phone_code(&stranger);
    assert_errcode(&phone(&mock, &client, &mp_token, json!({ "code": unknown })).await, 40029, "invalid code");
}

#[tokio::test]
async fn high_risk_users_are_refused() {
    let (mock, client) = spawn(MockConfig::default()).await;
    let user = mock.add_user();
    let code = mock.login_code(&user);
    assert!(mock.block_user(&user.unionid));
    assert!(mock.user(&user.unionid).unwrap().blocked);
    assert_errcode(&login(&mock, &client, &code).await, 40226, "code blocked");
    // The refusal did not use the code up.
    assert!(mock.unblock_user(&user.unionid));
    assert_eq!(login(&mock, &client, &code).await["openid"], user.mp_openid);
    assert!(!mock.block_user("o_nobody"));

    let risky = mock.add_user_with(&UserOptions { blocked: true, ..UserOptions::default() }).unwrap();
    assert_errcode(&login(&mock, &client, &mock.login_code(&risky)).await, 40226, "code blocked");
}

#[tokio::test]
async fn more_than_100_logins_a_minute_are_refused() {
    let (mock, client) = spawn(MockConfig::default()).await;
    let user = mock.add_user();
    let other = mock.add_user();
    for _ in 0..100 {
        let code = mock.login_code(&user);
        mock.code2session(&Code2SessionRequest::new(MP_APPID, MP_SECRET, code)).expect("within the limit");
    }
    let code = mock.login_code(&user);
    assert_errcode(
        &login(&mock, &client, &code).await,
        45011,
        "api minute-quota reach limit mustslower retry next minute",
    );
    // Per user: someone else logs in fine.
    assert_eq!(login(&mock, &client, &mock.login_code(&other)).await["openid"], other.mp_openid);
    // The refused code was not used up; a minute later it works.
    mock.advance_clock(61);
    assert_eq!(login(&mock, &client, &code).await["openid"], user.mp_openid);
    assert_eq!(mock.call_count("/sns/jscode2session"), 103);
}

#[tokio::test]
async fn bad_requests_and_credentials() {
    let config = MockConfig {
        apps: vec![
            MockApp::official_account(OA_APPID, OA_SECRET),
            MockApp::mini_program(MP_APPID, MP_SECRET),
            MockApp::mini_program("wx_mock_mp2", "mp2_secret"),
        ],
        ..MockConfig::default()
    };
    let (mock, client) = spawn(config).await;
    let user = mock.add_user();
    let code = mock.login_code(&user);
    let cases = [
        (format!("secret={MP_SECRET}&js_code={code}&grant_type=authorization_code"), 41002, "appid missing"),
        (format!("appid={MP_APPID}&js_code={code}&grant_type=authorization_code"), 41004, "appsecret missing"),
        (format!("appid={MP_APPID}&secret={MP_SECRET}&grant_type=authorization_code"), 41008, "missing code"),
        (format!("appid={MP_APPID}&secret={MP_SECRET}&js_code=&grant_type=authorization_code"), 41008, "missing code"),
        (
            format!("appid={MP_APPID}&secret={MP_SECRET}&js_code={code}&grant_type=client_credential"),
            40002,
            "invalid grant_type",
        ),
        (
            format!("appid=wx_unknown&secret={MP_SECRET}&js_code={code}&grant_type=authorization_code"),
            40013,
            "invalid appid",
        ),
        // jscode2session is the mini-program's: an official account is not a valid appid there.
        (
            format!("appid={OA_APPID}&secret={OA_SECRET}&js_code={code}&grant_type=authorization_code"),
            40013,
            "invalid appid",
        ),
        (
            format!("appid={MP_APPID}&secret=wrong&js_code={code}&grant_type=authorization_code"),
            40125,
            "invalid appsecret",
        ),
        (
            // One character changed (to one it certainly was not).
            format!(
                "appid={MP_APPID}&secret={MP_SECRET}&js_code={}{}&grant_type=authorization_code",
                if code.starts_with('0') { '1' } else { '0' },
                &code[1..]
            ),
            40029,
            "invalid code",
        ),
        // A code belongs to the mini-program it was issued for.
        (
            format!("appid=wx_mock_mp2&secret=mp2_secret&js_code={code}&grant_type=authorization_code"),
            40029,
            "invalid code",
        ),
    ];
    for (query, errcode, errmsg) in &cases {
        let body = jscode2session_raw(&mock, &client, query).await;
        assert_errcode(&body, *errcode, errmsg);
    }
    // None of that used the code; grant_type may be left out, as WeChat tolerates.
    let body = jscode2session_raw(&mock, &client, &format!("appid={MP_APPID}&secret={MP_SECRET}&js_code={code}")).await;
    assert_eq!(body["openid"], user.mp_openid, "{body}");
    // Parameters in a POST body are not read: WeChat answers appid missing.
    let resp = client
        .post(format!("{}/sns/jscode2session", mock.base_url))
        .form(&[("appid", MP_APPID), ("secret", MP_SECRET), ("js_code", "x")])
        .send()
        .await
        .unwrap();
    assert_errcode(&resp.json().await.unwrap(), 41002, "appid missing");
    assert_eq!(mock.call_count("/sns/jscode2session"), cases.len() as u64 + 2);

    // The second mini-program has its own openids and codes.
    let record = mock.user(&user.unionid).unwrap();
    let code2 = mock.login_code_for_openid("wx_mock_mp2", &record.openids["wx_mock_mp2"]).unwrap();
    let body = jscode2session_raw(
        &mock,
        &client,
        &format!("appid=wx_mock_mp2&secret=mp2_secret&js_code={code2}&grant_type=authorization_code"),
    )
    .await;
    assert_eq!(body["openid"], record.openids["wx_mock_mp2"]);
    assert_eq!(body["unionid"], user.unionid);
}

#[tokio::test]
async fn the_library_answers_like_the_endpoint() {
    let (mock, _) = spawn(MockConfig::default()).await;
    let user = mock.add_user();
    let code = mock.login_code(&user);
    let session = mock.code2session(&Code2SessionRequest::new(MP_APPID, MP_SECRET, code.clone())).unwrap();
    assert_eq!(session.openid, user.mp_openid);
    assert_eq!(session.unionid.as_deref(), Some(user.unionid.as_str()));
    assert_eq!(mock.code2session(&Code2SessionRequest::new(MP_APPID, MP_SECRET, code)), Err(WxError::CODE_BEEN_USED));
    assert_eq!(mock.code2session(&Code2SessionRequest::default()), Err(WxError::APPID_MISSING));
}

#[tokio::test]
async fn phone_number_flow() {
    let (mock, client) = spawn(MockConfig::default()).await;
    let user =
        mock.add_user_with(&UserOptions { phone: Some("13800138000".into()), ..UserOptions::default() }).unwrap();
    let mp_token = token(&mock, &client, MP_APPID, MP_SECRET).await;
    let pressed_at = mock.now_unix();
    let code = mock.phone_code(&user);
    assert_eq!(code.len(), 64);
    mock.advance_clock(30);

    let body = phone(&mock, &client, &mp_token, json!({ "code": code })).await;
    assert_eq!(
        body,
        json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": "13800138000",
                "purePhoneNumber": "13800138000",
                "countryCode": "86",
                "watermark": { "timestamp": body["phone_info"]["watermark"]["timestamp"], "appid": MP_APPID }
            }
        })
    );
    let timestamp = body["phone_info"]["watermark"]["timestamp"].as_i64().unwrap();
    assert!((pressed_at..pressed_at + 2).contains(&timestamp), "the time the user pressed the button");

    // Single use: WeChat answers a used phone code as an invalid one.
    assert_errcode(&phone(&mock, &client, &mp_token, json!({ "code": code })).await, 40029, "invalid code");
    let expired = mock.phone_code(&user);
    mock.advance_clock(301);
    let mp_token = token(&mock, &client, MP_APPID, MP_SECRET).await;
    assert_errcode(&phone(&mock, &client, &mp_token, json!({ "code": expired })).await, 40029, "invalid code");
    assert_eq!(mock.mini_program_stats().phone_numbers_served, 1);

    // A default user has a random mainland mobile number.
    let other = mock.add_user();
    let body = phone(&mock, &client, &mp_token, json!({ "code": mock.phone_code(&other) })).await;
    let number = body["phone_info"]["purePhoneNumber"].as_str().unwrap();
    assert_eq!(number.len(), 11);
    assert!(number.starts_with('1') && (b'3'..=b'9').contains(&number.as_bytes()[1]), "{number}");
    assert!(number.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(body["phone_info"]["phoneNumber"], number);
    assert_eq!(mock.user(&other.unionid).unwrap().phone, number);
    // The library answers alike.
    let info = mock.user_phone_number(&mp_token, &mock.phone_code(&user)).unwrap();
    assert_eq!(info.pure_phone_number, "13800138000");
    assert_eq!(info.watermark.appid, MP_APPID);
}

#[tokio::test]
async fn phone_number_errors() {
    let (mock, client) = spawn(MockConfig::default()).await;
    let user = mock.add_user();
    let mp_token = token(&mock, &client, MP_APPID, MP_SECRET).await;
    let oa_token = token(&mock, &client, OA_APPID, OA_SECRET).await;
    let code = mock.phone_code(&user);

    assert_errcode(&phone(&mock, &client, "", json!({ "code": code })).await, 41001, "access_token missing");
    assert_errcode(&phone(&mock, &client, "87_nope", json!({ "code": code })).await, 40001, "invalid credential");
    // An official account's token: WeChat answers 48001.
    assert_errcode(&phone(&mock, &client, &oa_token, json!({ "code": code })).await, 48001, "api unauthorized");
    assert_errcode(&phone(&mock, &client, &mp_token, json!({ "code": "nope" })).await, 40029, "invalid code");
    assert_errcode(&phone(&mock, &client, &mp_token, json!({})).await, 40029, "invalid code");
    assert_errcode(&phone(&mock, &client, &mp_token, json!({ "code": 7 })).await, 47001, "data format error");
    // A login code is not a phone code.
    let login_code = mock.login_code(&user);
    assert_errcode(&phone(&mock, &client, &mp_token, json!({ "code": login_code })).await, 40029, "invalid code");
    let url = format!("{}/wxa/business/getuserphonenumber?access_token={mp_token}", mock.base_url);
    let empty: Value = client.post(&url).send().await.unwrap().json().await.unwrap();
    assert_errcode(&empty, 44002, "empty post data");
    let get: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_errcode(&get, 43002, "require POST method");
    // None of that used the code up.
    let body = phone(&mock, &client, &mp_token, json!({ "code": code })).await;
    assert_eq!(body["errcode"], 0, "{body}");
    assert_eq!(mock.call_count("/wxa/business/getuserphonenumber"), 10);
    // Expired tokens too.
    mock.advance_clock(7200);
    assert_errcode(&phone(&mock, &client, &mp_token, json!({ "code": "x" })).await, 42001, "access_token expired");
}

#[tokio::test]
async fn chosen_phone_numbers_must_be_digits() {
    let (mock, _) = spawn(MockConfig::default()).await;
    for bad in ["", "+86 13800138000", "138-0013-8000"] {
        let options = UserOptions { phone: Some(bad.into()), ..UserOptions::default() };
        assert_eq!(mock.add_user_with(&options), Err(UserError::InvalidPhoneNumber(bad.into())));
    }
    assert!(mock.users().is_empty());
}

#[tokio::test]
async fn control_api_codes_and_blocking() {
    let (mock, client) = spawn(MockConfig::default()).await;
    let base = &mock.base_url;
    let user: Value = client
        .post(format!("{base}/__mock/users"))
        .json(&json!({ "phone": "13912345678" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let unionid = user["unionid"].as_str().unwrap();
    let record: Value =
        client.get(format!("{base}/__mock/users/{unionid}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(record["phone"], "13912345678");
    assert_eq!(record["blocked"], false);

    // A login code, exchanged by the mini-program's server.
    let resp = client.post(format!("{base}/__mock/users/{unionid}/login-code")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(keys(&body), ["code"]);
    let code = body["code"].as_str().unwrap();
    assert_eq!(login(&mock, &client, code).await["openid"], user["mp_openid"]);

    // A phone code.
    let body: Value =
        client.post(format!("{base}/__mock/users/{unionid}/phone-code")).send().await.unwrap().json().await.unwrap();
    let mp_token = token(&mock, &client, MP_APPID, MP_SECRET).await;
    let answer = phone(&mock, &client, &mp_token, json!({ "code": body["code"] })).await;
    assert_eq!(answer["phone_info"]["purePhoneNumber"], "13912345678");

    // Blocking and unblocking.
    let resp = client.post(format!("{base}/__mock/users/{unionid}/block")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["blocked"], true);
    let code = mock.login_code_for_unionid(unionid).unwrap();
    assert_errcode(&login(&mock, &client, &code).await, 40226, "code blocked");
    let resp = client.post(format!("{base}/__mock/users/{unionid}/unblock")).send().await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["blocked"], false);
    assert_eq!(login(&mock, &client, &code).await["openid"], user["mp_openid"]);

    // Unknown users are 404; impossible phone numbers 400.
    for action in ["login-code", "phone-code", "block", "unblock"] {
        let resp = client.post(format!("{base}/__mock/users/o_nobody/{action}")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{action}");
        assert!(resp.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("o_nobody"));
    }
    let resp = client.post(format!("{base}/__mock/users")).json(&json!({ "phone": "call me" })).send().await;
    assert_eq!(resp.unwrap().status(), 400);
    let resp = client.post(format!("{base}/__mock/users")).json(&json!({ "blocked": true })).send().await.unwrap();
    let risky: Value = resp.json().await.unwrap();
    let code = mock.login_code_for_unionid(risky["unionid"].as_str().unwrap()).unwrap();
    assert_errcode(&login(&mock, &client, &code).await, 40226, "code blocked");
}

#[tokio::test]
async fn reset_forgets_codes() {
    let (mock, client) = spawn(MockConfig::default()).await;
    let user = mock.add_user();
    let code = mock.login_code(&user);
    mock.reset();
    assert_errcode(&login(&mock, &client, &code).await, 40029, "invalid code");
    assert_eq!(mock.session_key(MP_APPID, &user.mp_openid), None);
    assert_eq!(login(&mock, &client, &mock.login_code(&user)).await["openid"], user.mp_openid);
}
