//! Fault injection over HTTP and through the library: WeChat errors, HTTP statuses and delays on
//! any WeChat path, consumed call by call, listed and cleared. Only the delay test waits (briefly);
//! the mock clock is not involved.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use wechat_mock::{Fault, FaultError, MockConfig, RunningMock, MP_APPID, MP_SECRET, OA_APPID, OA_SECRET};

/// 2024-06-01 12:00 in Beijing.
const BEIJING_NOON: i64 = 1_717_214_400;
const JSCODE2SESSION: &str = "/sns/jscode2session";

async fn spawn() -> (RunningMock, Client) {
    let config = MockConfig { clock_start_unix: Some(BEIJING_NOON), ..MockConfig::default() };
    let mock = wechat_mock::start(config, "127.0.0.1:0").await.expect("mock starts");
    (mock, Client::new())
}

async fn login(mock: &RunningMock, client: &Client, code: &str) -> reqwest::Response {
    client
        .get(format!(
            "{}{JSCODE2SESSION}?appid={MP_APPID}&secret={MP_SECRET}&js_code={code}&grant_type=authorization_code",
            mock.base_url
        ))
        .send()
        .await
        .expect("request")
}

async fn login_json(mock: &RunningMock, client: &Client, code: &str) -> Value {
    let resp = login(mock, client, code).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json body")
}

async fn post_fault(mock: &RunningMock, client: &Client, fault: Value) -> reqwest::Response {
    client.post(format!("{}/__mock/faults", mock.base_url)).json(&fault).send().await.expect("request")
}

fn assert_errcode(body: &Value, errcode: i64, errmsg_prefix: &str) {
    assert_eq!(body["errcode"], errcode, "{body}");
    let errmsg = body["errmsg"].as_str().unwrap();
    assert!(errmsg.starts_with(errmsg_prefix) && errmsg.contains(" rid: "), "{errmsg}");
}

#[tokio::test]
async fn an_injected_errcode_answers_the_next_calls_then_stops() {
    let (mock, client) = spawn().await;
    let user = mock.add_user();
    let code = mock.login_code(&user);
    let resp = post_fault(&mock, &client, json!({ "path": JSCODE2SESSION, "errcode": -1, "times": 1 })).await;
    assert_eq!(resp.status(), 200);
    let listed: Value = resp.json().await.unwrap();
    assert_eq!(listed, json!({ "faults": [{ "path": JSCODE2SESSION, "errcode": -1, "times": 1 }] }));

    assert_errcode(&login_json(&mock, &client, &code).await, -1, "system error");
    // The faulted call never reached WeChat's logic: the code still works.
    assert_eq!(login_json(&mock, &client, &code).await["openid"], user.mp_openid);
    assert_eq!(mock.call_count(JSCODE2SESSION), 2, "faulted calls are counted too");
    assert!(mock.faults().is_empty());

    // Several queued: oldest first, each for its number of calls, other paths untouched.
    mock.inject_fault(Fault::errcode(JSCODE2SESSION, 45011, 2)).unwrap();
    mock.inject_fault(Fault::errcode(JSCODE2SESSION, 99999, 1).with_errmsg("odd")).unwrap();
    let token = client
        .get(format!(
            "{}/cgi-bin/token?grant_type=client_credential&appid={OA_APPID}&secret={OA_SECRET}",
            mock.base_url
        ))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(token["access_token"].is_string(), "{token}");
    let code = mock.login_code(&user);
    for _ in 0..2 {
        assert_errcode(&login_json(&mock, &client, &code).await, 45011, "api minute-quota reach limit");
    }
    assert_errcode(&login_json(&mock, &client, &code).await, 99999, "odd");
    assert_eq!(login_json(&mock, &client, &code).await["openid"], user.mp_openid);
}

#[tokio::test]
async fn an_injected_http_status() {
    let (mock, client) = spawn().await;
    let user = mock.add_user();
    let code = mock.login_code(&user);
    let resp = post_fault(&mock, &client, json!({ "path": JSCODE2SESSION, "http_status": 503, "times": 1 })).await;
    assert_eq!(resp.status(), 200);
    let resp = login(&mock, &client, &code).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.text().await.unwrap(), "503 Service Unavailable");
    assert_eq!(login_json(&mock, &client, &code).await["openid"], user.mp_openid);
}

#[tokio::test]
async fn an_injected_delay_slows_the_answer_down() {
    let (mock, client) = spawn().await;
    let user = mock.add_user();
    let delay = Duration::from_millis(150);
    mock.inject_fault(Fault::delay(JSCODE2SESSION, 150, 1)).unwrap();
    let started = Instant::now();
    let body = login_json(&mock, &client, &mock.login_code(&user)).await;
    assert!(started.elapsed() >= delay, "answered after {:?}", started.elapsed());
    assert_eq!(body["openid"], user.mp_openid, "a delay alone still answers normally");

    // A delay before an error.
    let resp =
        post_fault(&mock, &client, json!({ "path": JSCODE2SESSION, "errcode": -1, "delay_ms": 150, "times": 1 })).await;
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    assert_errcode(&login_json(&mock, &client, &mock.login_code(&user)).await, -1, "system error");
    assert!(started.elapsed() >= delay);
}

#[tokio::test]
async fn faults_without_times_last_until_cleared() {
    let (mock, client) = spawn().await;
    let user = mock.add_user();
    let code = mock.login_code(&user);
    post_fault(&mock, &client, json!({ "path": JSCODE2SESSION, "errcode": -1 })).await;
    post_fault(&mock, &client, json!({ "path": "/cgi-bin/user/info", "http_status": 500 })).await;
    for _ in 0..3 {
        assert_errcode(&login_json(&mock, &client, &code).await, -1, "system error");
    }
    let listed: Value =
        client.get(format!("{}/__mock/faults", mock.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["faults"].as_array().unwrap().len(), 2);

    let cleared: Value =
        client.delete(format!("{}/__mock/faults", mock.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(cleared, json!({ "cleared": 2 }));
    assert_eq!(login_json(&mock, &client, &code).await["openid"], user.mp_openid);
    let listed: Value =
        client.get(format!("{}/__mock/faults", mock.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed, json!({ "faults": [] }));
}

#[tokio::test]
async fn every_wechat_endpoint_can_fail() {
    let (mock, client) = spawn().await;
    let user = mock.add_user();
    let base = &mock.base_url;
    mock.inject_fault(Fault::errcode("/cgi-bin/token", -1, 1)).unwrap();
    mock.inject_fault(Fault::http_status("/cgi-bin/stable_token", 502, 1)).unwrap();
    mock.inject_fault(Fault::errcode("/cgi-bin/user/info", 45009, 1)).unwrap();
    mock.inject_fault(Fault::errcode("/wxa/business/getuserphonenumber", -1, 1)).unwrap();
    // Even a path the mock does not serve (yet), e.g. a WeChat Pay one.
    mock.inject_fault(Fault::http_status("/v3/transfer/batches", 500, 1)).unwrap();

    let token_url = format!("{base}/cgi-bin/token?grant_type=client_credential&appid={OA_APPID}&secret={OA_SECRET}");
    assert_errcode(&client.get(&token_url).send().await.unwrap().json().await.unwrap(), -1, "system error");
    let oa_token = client.get(&token_url).send().await.unwrap().json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = client
        .post(format!("{base}/cgi-bin/stable_token"))
        .json(&json!({ "grant_type": "client_credential", "appid": OA_APPID, "secret": OA_SECRET }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let info_url = format!("{base}/cgi-bin/user/info?access_token={oa_token}&openid={}", user.oa_openid);
    let body: Value = client.get(&info_url).send().await.unwrap().json().await.unwrap();
    assert_errcode(&body, 45009, "reach max api daily quota limit");
    let body: Value = client.get(&info_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["subscribe"], 0);

    let mp_token = mock.get_token(&wechat_mock::TokenRequest {
        grant_type: Some("client_credential".into()),
        appid: Some(MP_APPID.into()),
        secret: Some(MP_SECRET.into()),
    });
    let phone_url = format!("{base}/wxa/business/getuserphonenumber?access_token={}", mp_token.unwrap().access_token);
    let code = mock.phone_code(&user);
    let body: Value =
        client.post(&phone_url).json(&json!({ "code": code })).send().await.unwrap().json().await.unwrap();
    assert_errcode(&body, -1, "system error");
    let body: Value =
        client.post(&phone_url).json(&json!({ "code": code })).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["errcode"], 0, "{body}");

    let resp = client.post(format!("{base}/v3/transfer/batches")).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let body: Value = client.post(format!("{base}/v3/transfer/batches")).send().await.unwrap().json().await.unwrap();
    assert_errcode(&body, 40066, "invalid url");
    assert!(mock.faults().is_empty());
}

#[tokio::test]
async fn bad_faults_are_refused() {
    let (mock, client) = spawn().await;
    for (fault, why) in [
        (json!({ "path": JSCODE2SESSION }), "needs errcode"),
        (json!({ "path": "sns/jscode2session", "errcode": -1 }), "must start with /"),
        (json!({ "path": "/__mock/reset", "errcode": -1 }), "control API"),
        (json!({ "path": JSCODE2SESSION, "errcode": 0 }), "errcode 0"),
        (json!({ "path": JSCODE2SESSION, "http_status": 302 }), "between 400 and 599"),
        (json!({ "path": JSCODE2SESSION, "delay_ms": 3_600_000 }), "exceeds"),
        (json!({ "path": JSCODE2SESSION, "errcode": -1, "times": 0 }), "at least 1"),
        (json!({ "path": JSCODE2SESSION, "errcode": "-1" }), "expected a fault"),
        (json!({ "path": JSCODE2SESSION, "status": 503 }), "expected a fault"),
    ] {
        let resp = post_fault(&mock, &client, fault.clone()).await;
        assert_eq!(resp.status(), 400, "{fault}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(why), "{fault}: {body}");
    }
    let resp = client.post(format!("{}/__mock/faults", mock.base_url)).body("not json").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(mock.faults().is_empty());
    assert_eq!(mock.inject_fault(Fault::errcode(JSCODE2SESSION, 0, 1)), Err(FaultError::ZeroErrcode));
}

#[tokio::test]
async fn clearing_and_resetting_through_the_library() {
    let (mock, client) = spawn().await;
    let user = mock.add_user();
    mock.inject_fault(Fault::errcode(JSCODE2SESSION, -1, 1).until_cleared()).unwrap();
    mock.inject_fault(Fault::http_status(JSCODE2SESSION, 503, 1).until_cleared()).unwrap();
    assert_eq!(mock.faults().len(), 2);
    assert_eq!(mock.clear_faults(), 2);
    assert_eq!(login_json(&mock, &client, &mock.login_code(&user)).await["openid"], user.mp_openid);

    mock.inject_fault(Fault::errcode(JSCODE2SESSION, -1, 1).until_cleared()).unwrap();
    let resp = client.post(format!("{}/__mock/reset", mock.base_url)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the control API is never faulted");
    assert!(mock.faults().is_empty(), "reset forgets faults");
    assert_eq!(login_json(&mock, &client, &mock.login_code(&user)).await["openid"], user.mp_openid);
}
