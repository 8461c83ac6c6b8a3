//! The token endpoints and the control API over HTTP, against a mock on port 0. Time moves only through
//! the mock clock; nothing sleeps.

use reqwest::Client;
use serde_json::{json, Value};
use wechat_mock::{MockConfig, RunningMock, MP_APPID, MP_SECRET, OA_APPID, OA_SECRET};

/// 2024-06-01 12:00 in Beijing: far from the midnight rollover of daily quotas.
const BEIJING_NOON: i64 = 1_717_214_400;

async fn spawn_mock() -> (RunningMock, Client) {
    let config = MockConfig { clock_start_unix: Some(BEIJING_NOON), ..MockConfig::default() };
    let mock = wechat_mock::start(config, "127.0.0.1:0").await.expect("mock starts");
    (mock, Client::new())
}

async fn get_token(mock: &RunningMock, client: &Client, query: &str) -> Value {
    let resp = client.get(format!("{}/cgi-bin/token?{query}", mock.base_url)).send().await.expect("request");
    assert_eq!(resp.status(), 200, "WeChat answers errors with HTTP 200");
    resp.json().await.expect("json body")
}

async fn token_for(mock: &RunningMock, client: &Client, appid: &str, secret: &str) -> String {
    let body = get_token(mock, client, &format!("grant_type=client_credential&appid={appid}&secret={secret}")).await;
    body["access_token"].as_str().expect("token").to_owned()
}

async fn post_stable_raw(mock: &RunningMock, client: &Client, body: &'static str) -> Value {
    let resp = client
        .post(format!("{}/cgi-bin/stable_token", mock.base_url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json body")
}

async fn post_stable(mock: &RunningMock, client: &Client, force_refresh: bool) -> Value {
    let resp = client
        .post(format!("{}/cgi-bin/stable_token", mock.base_url))
        .json(&json!({
            "grant_type": "client_credential",
            "appid": OA_APPID,
            "secret": OA_SECRET,
            "force_refresh": force_refresh,
        }))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json body")
}

fn stable_token(body: &Value) -> String {
    body["access_token"].as_str().unwrap_or_else(|| panic!("no token in {body}")).to_owned()
}

fn assert_errcode(body: &Value, errcode: i64, errmsg_prefix: &str) {
    assert_eq!(body["errcode"], errcode, "{body}");
    let errmsg = body["errmsg"].as_str().expect("errmsg");
    assert!(
        errmsg.starts_with(errmsg_prefix) && errmsg.contains(" rid: "),
        "{errmsg:?} should start with {errmsg_prefix:?} and carry a rid"
    );
    assert!(body.get("access_token").is_none());
}

async fn advance(mock: &RunningMock, client: &Client, seconds: i64) {
    let resp = client
        .post(format!("{}/__mock/clock/advance", mock.base_url))
        .json(&json!({ "seconds": seconds }))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn token_success_shape() {
    let (mock, client) = spawn_mock().await;
    assert_ne!(mock.addr.port(), 0, "the real port is reported");
    let body =
        get_token(&mock, &client, &format!("grant_type=client_credential&appid={OA_APPID}&secret={OA_SECRET}")).await;
    let fields: Vec<&String> = body.as_object().expect("object").keys().collect();
    assert_eq!(fields, ["access_token", "expires_in"]);
    assert_eq!(body["expires_in"], 7200);
    let token = body["access_token"].as_str().unwrap();
    assert!(token.len() >= 100);
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    assert_eq!(mock.check_access_token(token).as_deref(), Ok(OA_APPID));
    mock.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn token_error_codes() {
    let (mock, client) = spawn_mock().await;
    let cases = [
        ("", 41002, "appid missing"),
        ("grant_type=client_credential&secret=x", 41002, "appid missing"),
        ("appid=wx_mock_oa_appid&secret=x", 40002, "invalid grant_type"),
        ("grant_type=authorization_code&appid=wx_mock_oa_appid&secret=x", 40002, "invalid grant_type"),
        ("grant_type=client_credential&appid=wx_mock_oa_appid", 41004, "appsecret missing"),
        ("grant_type=client_credential&appid=wx_mock_oa_appid&secret=", 41004, "appsecret missing"),
        ("grant_type=client_credential&appid=wx_nobody&secret=x", 40013, "invalid appid"),
        (
            "grant_type=client_credential&appid=wx_mock_oa_appid&secret=mock_mp_secret_0123456789abcdef",
            40125,
            "invalid appsecret",
        ),
        // A malformed escape is kept literally, as form decoding does.
        ("grant_type=client_credential&appid=%ZZ&secret=x", 40013, "invalid appid"),
    ];
    for (query, errcode, errmsg) in cases {
        let body = get_token(&mock, &client, query).await;
        assert_errcode(&body, errcode, errmsg);
    }
    assert_eq!(mock.call_count("/cgi-bin/token"), cases.len() as u64);
    assert_eq!(mock.token_fetch_count(OA_APPID), 0);
}

#[tokio::test]
async fn token_refetch_keeps_the_old_token_for_five_minutes() {
    let (mock, client) = spawn_mock().await;
    let first = token_for(&mock, &client, OA_APPID, OA_SECRET).await;
    let second = token_for(&mock, &client, OA_APPID, OA_SECRET).await;
    assert_ne!(first, second);

    advance(&mock, &client, 299).await;
    assert!(mock.check_access_token(&first).is_ok(), "old token in grace");
    advance(&mock, &client, 1).await;
    let err = mock.check_access_token(&first).unwrap_err();
    assert_eq!(err.errcode, 40001);
    assert_eq!(
        <(i64, &str)>::from(err),
        (
            40001,
            "invalid credential, access_token is invalid or not latest, could get access_token by getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r"
        )
    );
    assert_eq!(mock.check_access_token(&second).as_deref(), Ok(OA_APPID));
    assert_eq!(mock.token_fetch_count(OA_APPID), 2);
}

#[tokio::test]
async fn check_access_token_reports_expiry_unknown_and_missing() {
    let (mock, client) = spawn_mock().await;
    let token = token_for(&mock, &client, MP_APPID, MP_SECRET).await;
    assert_eq!(mock.check_access_token(&token).as_deref(), Ok(MP_APPID));
    mock.advance_clock(7199);
    assert!(mock.check_access_token(&token).is_ok());
    mock.advance_clock(1);
    assert_eq!(mock.check_access_token(&token).unwrap_err().errcode, 42001);
    assert_eq!(mock.check_access_token("87_not_a_token").unwrap_err().errcode, 40001);
    assert_eq!(mock.check_access_token("").unwrap_err().errcode, 41001);
}

#[tokio::test]
async fn stable_token_is_the_same_until_its_last_five_minutes() {
    let (mock, client) = spawn_mock().await;
    let first = post_stable(&mock, &client, false).await;
    assert_eq!(first["expires_in"], 7200);
    let again = post_stable(&mock, &client, false).await;
    assert_eq!(stable_token(&again), stable_token(&first));

    advance(&mock, &client, 6000).await;
    let later = post_stable(&mock, &client, false).await;
    assert_eq!(stable_token(&later), stable_token(&first));
    let left = later["expires_in"].as_i64().unwrap();
    assert!((1199..=1200).contains(&left), "remaining lifetime, got {left}");

    advance(&mock, &client, 901).await; // 299 s left: inside the renewal window
    let renewed = post_stable(&mock, &client, false).await;
    assert_ne!(stable_token(&renewed), stable_token(&first));
    assert_eq!(renewed["expires_in"], 7200);
    assert!(mock.check_access_token(&stable_token(&first)).is_ok(), "the old stable token lives out its lifetime");
    assert_eq!(mock.stable_token_fetch_count(OA_APPID), 4);
    assert_eq!(mock.app_token_stats(OA_APPID).stable_tokens_issued, 2);
}

#[tokio::test]
async fn stable_token_force_refresh_rules() {
    let (mock, client) = spawn_mock().await;
    let first = stable_token(&post_stable(&mock, &client, false).await);
    let forced = stable_token(&post_stable(&mock, &client, true).await);
    assert_ne!(forced, first);
    assert_eq!(
        mock.check_access_token(&first).unwrap_err().errcode,
        40001,
        "force_refresh invalidates the previous token at once"
    );

    // Within 30 s of the previous forced refresh nothing is refreshed.
    advance(&mock, &client, 29).await;
    let too_soon = stable_token(&post_stable(&mock, &client, true).await);
    assert_eq!(too_soon, forced);

    advance(&mock, &client, 1).await;
    let second_forced = stable_token(&post_stable(&mock, &client, true).await);
    assert_ne!(second_forced, forced);

    // 20 forced refreshes a day, then 45009.
    for _ in 2..20 {
        advance(&mock, &client, 30).await;
        post_stable(&mock, &client, true).await;
    }
    assert_eq!(mock.app_token_stats(OA_APPID).force_refreshes_today, 20);
    advance(&mock, &client, 30).await;
    let refused = post_stable(&mock, &client, true).await;
    assert_errcode(&refused, 45009, "reach max api daily quota limit");
    // Normal mode is unaffected, and the quota comes back the next day.
    assert!(post_stable(&mock, &client, false).await["access_token"].is_string());
    advance(&mock, &client, 24 * 3600).await;
    assert!(post_stable(&mock, &client, true).await["access_token"].is_string());
}

#[tokio::test]
async fn stable_token_error_codes() {
    let (mock, client) = spawn_mock().await;
    let cases: [(&'static str, i64, &str); 9] = [
        ("", 44002, "empty post data"),
        // WeChat reads only JSON: a form body has no appid.
        ("grant_type=client_credential&appid=wx_mock_oa_appid&secret=x", 41002, "appid missing"),
        ("{\"appid\": ", 41002, "appid missing"),
        ("[1,2,3]", 41002, "appid missing"),
        (r#"{"appid":"wx_mock_oa_appid","secret":"x"}"#, 40002, "invalid grant_type"),
        (r#"{"grant_type":"client_credential","appid":"wx_mock_oa_appid"}"#, 41004, "appsecret missing"),
        (r#"{"grant_type":"client_credential","appid":"wx_nobody","secret":"x"}"#, 40013, "invalid appid"),
        (
            r#"{"grant_type":"client_credential","appid":"wx_mock_oa_appid","secret":"wrong"}"#,
            40125,
            "invalid appsecret",
        ),
        (
            r#"{"grant_type":"client_credential","appid":"wx_mock_oa_appid","secret":"mock_oa_secret_0123456789abcdef","force_refresh":"yes"}"#,
            47001,
            "data format error",
        ),
    ];
    for (body, errcode, errmsg) in cases {
        assert_errcode(&post_stable_raw(&mock, &client, body).await, errcode, errmsg);
    }

    let get: Value =
        client.get(format!("{}/cgi-bin/stable_token", mock.base_url)).send().await.unwrap().json().await.unwrap();
    assert_errcode(&get, 43002, "require POST method");
    assert_eq!(mock.call_count("/cgi-bin/stable_token"), 10);
    assert_eq!(mock.stable_token_fetch_count(OA_APPID), 0);
}

#[tokio::test]
async fn the_two_token_sets_are_isolated() {
    let (mock, client) = spawn_mock().await;
    let basic = token_for(&mock, &client, OA_APPID, OA_SECRET).await;
    let stable = stable_token(&post_stable(&mock, &client, false).await);
    assert_ne!(basic, stable);

    // A forced stable refresh leaves /cgi-bin/token tokens alone...
    post_stable(&mock, &client, true).await;
    assert!(mock.check_access_token(&basic).is_ok());
    // ...and new /cgi-bin/token tokens leave the stable one alone, even after the grace period.
    let stable_now = stable_token(&post_stable(&mock, &client, false).await);
    token_for(&mock, &client, OA_APPID, OA_SECRET).await;
    token_for(&mock, &client, OA_APPID, OA_SECRET).await;
    advance(&mock, &client, 301).await;
    assert!(mock.check_access_token(&stable_now).is_ok());
    assert_eq!(stable_token(&post_stable(&mock, &client, false).await), stable_now);
    assert_eq!(mock.check_access_token(&basic).unwrap_err().errcode, 40001);
}

#[tokio::test]
async fn control_api_reports_counts_and_resets() {
    let (mock, client) = spawn_mock().await;
    token_for(&mock, &client, OA_APPID, OA_SECRET).await;
    token_for(&mock, &client, OA_APPID, OA_SECRET).await;
    post_stable(&mock, &client, false).await;
    get_token(&mock, &client, "grant_type=client_credential&appid=wx_nobody&secret=x").await;

    let report: Value =
        client.get(format!("{}/__mock/tokens", mock.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(report["calls"]["/cgi-bin/token"], 3);
    assert_eq!(report["calls"]["/cgi-bin/stable_token"], 1);
    let apps = report["apps"].as_array().unwrap();
    let oa = apps.iter().find(|a| a["appid"] == OA_APPID).unwrap();
    assert_eq!(oa["kind"], "official_account");
    assert_eq!(oa["token_fetches"], 2);
    assert_eq!(oa["live_tokens"], 2);
    assert_eq!(oa["stable_token_fetches"], 1);
    assert_eq!(oa["live_stable_tokens"], 1);
    let mp = apps.iter().find(|a| a["appid"] == MP_APPID).unwrap();
    assert_eq!(mp["kind"], "mini_program");
    assert_eq!(mp["token_fetches"], 0);

    let clock: Value = client
        .post(format!("{}/__mock/clock/advance", mock.base_url))
        .json(&json!({ "seconds": 60 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let offset = clock["clock_offset_secs"].as_i64().unwrap();
    let moved = clock["now"].as_i64().unwrap() - BEIJING_NOON;
    assert!((60..=61).contains(&moved), "clock moved {moved} s");
    for bad in [json!({ "seconds": -1 }), json!({ "secs": 1 }), json!("soon")] {
        let resp = client.post(format!("{}/__mock/clock/advance", mock.base_url)).json(&bad).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }

    let reset = client.post(format!("{}/__mock/reset", mock.base_url)).send().await.unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(mock.token_fetch_count(OA_APPID), 0);
    assert_eq!(mock.call_count("/cgi-bin/token"), 0);
    assert_eq!(mock.report().clock_offset_secs, offset, "time never goes back");
}

#[tokio::test]
async fn unknown_paths_answer_invalid_url() {
    let (mock, client) = spawn_mock().await;
    let resp = client.get(format!("{}/cgi-bin/nothing-here", mock.base_url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_errcode(&body, 40066, "invalid url");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let mock = wechat_mock::start(MockConfig::default(), "127.0.0.1:0").await.expect("mock starts");
    let client = Client::new();
    let url = format!("{}/__mock/tokens", mock.base_url);
    assert!(client.get(&url).send().await.is_ok());
    let stopped = mock.shutdown();
    stopped.await.expect("clean shutdown");
    let fresh = Client::new();
    assert!(fresh.get(&url).send().await.is_err(), "nobody listens any more");
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let mock = wechat_mock::start(MockConfig::default(), "127.0.0.1:0").await.expect("mock starts");
    let addr = mock.addr;
    drop(mock);
    // The server stops on its own task; give it turns until the port refuses connections.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "still listening");
        tokio::task::yield_now().await;
    }
}
