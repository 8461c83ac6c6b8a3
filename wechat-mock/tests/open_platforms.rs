//! Apps bound to different Open Platform accounts (开放平台): one unionid per person and account,
//! over HTTP (`jscode2session`, `/cgi-bin/user/info`) against a mock on port 0.

use reqwest::Client;
use serde_json::Value;
use wechat_mock::{
    MockApp, MockConfig, OaFollow, RunningMock, SubscribeScene, MP_APPID, MP_SECRET, OA_APPID, OA_SECRET,
};

const MP_B: &str = "wx_mock_mp_b";
const OA_B: &str = "wx_mock_oa_b";
const MP_C: &str = "wx_mock_mp_c";
const SECRET_B: &str = "mock_b_secret_0123456789abcdef";

fn config(open_platform_bound: bool) -> MockConfig {
    MockConfig {
        apps: vec![
            MockApp::official_account(OA_APPID, OA_SECRET),
            MockApp::mini_program(MP_APPID, MP_SECRET),
            MockApp::mini_program(MP_B, SECRET_B).bound_to("platform-b"),
            MockApp::official_account(OA_B, SECRET_B).bound_to("platform-b"),
            MockApp::mini_program(MP_C, SECRET_B).bound_to("platform-c"),
        ],
        open_platform_bound,
        ..MockConfig::default()
    }
}

async fn get_json(client: &Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// The user's unionid as mini-program `appid` sees it at login (`None`: absent from the answer).
async fn login_unionid(mock: &RunningMock, client: &Client, appid: &str, secret: &str, openid: &str) -> Option<String> {
    let code = mock.login_code_for_openid(appid, openid).expect("a known user of a known mini-program");
    let url = format!(
        "{}/sns/jscode2session?appid={appid}&secret={secret}&js_code={code}&grant_type=authorization_code",
        mock.base_url
    );
    let body = get_json(client, url).await;
    assert_eq!(body["openid"].as_str(), Some(openid), "{body}");
    body.get("unionid").map(|id| id.as_str().unwrap().to_owned())
}

/// The follower's unionid as official account `appid` sees it in `user/info`.
async fn info_unionid(mock: &RunningMock, client: &Client, appid: &str, secret: &str, openid: &str) -> Option<String> {
    let token = get_json(
        client,
        format!("{}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}", mock.base_url),
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body =
        get_json(client, format!("{}/cgi-bin/user/info?access_token={token}&openid={openid}", mock.base_url)).await;
    assert_eq!(body["subscribe"], 1, "{body}");
    body.get("unionid").map(|id| id.as_str().unwrap().to_owned())
}

#[tokio::test]
async fn unionids_match_within_an_open_platform_account_and_differ_across() {
    let mock = wechat_mock::start(config(true), "127.0.0.1:0").await.unwrap();
    let client = Client::new();
    let user = mock.add_user();
    let record = mock.user(&user.unionid).unwrap();
    let openid = |appid: &str| record.openids[appid].clone();
    for oa in [OA_APPID, OA_B] {
        assert!(mock.record_follow(oa, &openid(oa), OaFollow::via(SubscribeScene::Search, mock.now_unix())));
    }

    // The default account: the same unionid for the mini-program and the official account.
    let default_mp = login_unionid(&mock, &client, MP_APPID, MP_SECRET, &user.mp_openid).await.unwrap();
    let default_oa = info_unionid(&mock, &client, OA_APPID, OA_SECRET, &user.oa_openid).await.unwrap();
    assert_eq!(default_mp, user.unionid);
    assert_eq!(default_oa, user.unionid);

    // Account B: one unionid of its own, shared by its two apps.
    let b_mp = login_unionid(&mock, &client, MP_B, SECRET_B, &openid(MP_B)).await.unwrap();
    let b_oa = info_unionid(&mock, &client, OA_B, SECRET_B, &openid(OA_B)).await.unwrap();
    assert_eq!(b_mp, b_oa, "apps of one Open Platform account share the unionid");
    assert_ne!(b_mp, user.unionid, "another account, another unionid");
    assert_eq!(record.open_platform_unionids["platform-b"], b_mp);

    // Account C: yet another.
    let c_mp = login_unionid(&mock, &client, MP_C, SECRET_B, &openid(MP_C)).await.unwrap();
    assert_ne!(c_mp, user.unionid);
    assert_ne!(c_mp, b_mp);

    // Any of the person's unionids names them in the control API.
    let by_b: Value = get_json(&client, format!("{}/__mock/users/{b_mp}", mock.base_url)).await;
    assert_eq!(by_b["unionid"].as_str(), Some(user.unionid.as_str()));
    assert_eq!(mock.user(&c_mp).unwrap().unionid, user.unionid);

    // Another person has other unionids on every account.
    let other = mock.add_user();
    let other_b =
        login_unionid(&mock, &client, MP_B, SECRET_B, &mock.user(&other.unionid).unwrap().openids[MP_B]).await;
    assert_ne!(other_b.as_deref(), Some(b_mp.as_str()));
    assert_ne!(other.unionid, user.unionid);
}

#[tokio::test]
async fn unbound_apps_see_no_unionid_on_any_account() {
    let mock = wechat_mock::start(config(false), "127.0.0.1:0").await.unwrap();
    let client = Client::new();
    let user = mock.add_user();
    let record = mock.user(&user.unionid).unwrap();
    assert!(mock.record_follow(OA_B, &record.openids[OA_B], OaFollow::via(SubscribeScene::Search, mock.now_unix())));
    assert_eq!(login_unionid(&mock, &client, MP_APPID, MP_SECRET, &user.mp_openid).await, None);
    assert_eq!(login_unionid(&mock, &client, MP_B, SECRET_B, &record.openids[MP_B]).await, None);
    assert_eq!(info_unionid(&mock, &client, OA_B, SECRET_B, &record.openids[OA_B]).await, None);
}
