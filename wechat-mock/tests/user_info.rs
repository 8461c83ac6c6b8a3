//! Simulated users, `GET /cgi-bin/user/info` and the users part of the control API, over HTTP
//! against a mock on port 0.

use reqwest::Client;
use serde_json::{json, Value};
use wechat_mock::{
    MockConfig, RunningMock, SubscribeScene, UserError, UserOptions, MP_APPID, MP_SECRET, OA_APPID, OA_SECRET,
};

/// 2024-06-01 12:00 in Beijing.
const BEIJING_NOON: i64 = 1_717_214_400;

async fn spawn(config: MockConfig) -> (RunningMock, Client) {
    let config = MockConfig { clock_start_unix: Some(BEIJING_NOON), ..config };
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

async fn user_info(mock: &RunningMock, client: &Client, query: &str) -> Value {
    let resp = client.get(format!("{}/cgi-bin/user/info?{query}", mock.base_url)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "WeChat answers errors with HTTP 200");
    resp.json().await.unwrap()
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
async fn users_have_per_app_openids_and_one_unionid() {
    let (mock, _) = spawn(MockConfig::default()).await;
    let a = mock.add_user();
    let b = mock.add_user();
    for id in [&a.oa_openid, &a.mp_openid, &a.unionid, &b.oa_openid] {
        assert_eq!(id.len(), 28, "{id}");
        assert!(id.starts_with('o'), "{id}");
    }
    assert_ne!(a.oa_openid, a.mp_openid);
    assert_ne!(a.unionid, b.unionid);
    assert_ne!(a.oa_openid, b.oa_openid);
    let record = mock.user_by_openid(MP_APPID, &a.mp_openid).unwrap();
    assert_eq!(record.unionid, a.unionid);
    assert_eq!(record.openids[OA_APPID], a.oa_openid);
    assert!(!record.follows[OA_APPID].subscribed);
    assert!(!record.follows.contains_key(MP_APPID));
    assert_eq!(mock.users().len(), 2);

    let chosen = mock
        .add_user_with(&UserOptions { oa_openid: Some("any openid string".into()), ..UserOptions::default() })
        .unwrap();
    assert_eq!(chosen.oa_openid, "any openid string");
    assert_eq!(
        mock.add_user_with(&UserOptions { unionid: Some(a.unionid.clone()), ..UserOptions::default() }),
        Err(UserError::UnionidTaken(a.unionid.clone()))
    );
}

#[tokio::test]
async fn user_info_for_followers_and_others() {
    let (mock, client) = spawn(MockConfig::default()).await;
    let access_token = token(&mock, &client, OA_APPID, OA_SECRET).await;
    let stranger = mock.add_user();
    let follower = mock
        .add_user_with(&UserOptions {
            subscribed: true,
            qr_scene_str: Some("community_12".into()),
            remark: "楼长".into(),
            tagid_list: vec![128, 2],
            ..UserOptions::default()
        })
        .unwrap();
    let numeric = mock
        .add_user_with(&UserOptions {
            subscribed: true,
            subscribe_time: Some(1_382_694_957),
            qr_scene_str: Some("98765".into()),
            ..UserOptions::default()
        })
        .unwrap();

    let body =
        user_info(&mock, &client, &format!("access_token={access_token}&openid={}&lang=zh_CN", stranger.oa_openid))
            .await;
    assert_eq!(body, json!({ "subscribe": 0, "openid": stranger.oa_openid }));

    let body =
        user_info(&mock, &client, &format!("access_token={access_token}&openid={}&lang=zh_CN", follower.oa_openid))
            .await;
    assert_eq!(
        keys(&body),
        [
            "groupid",
            "language",
            "openid",
            "qr_scene",
            "qr_scene_str",
            "remark",
            "subscribe",
            "subscribe_scene",
            "subscribe_time",
            "tagid_list",
            "unionid"
        ]
    );
    assert_eq!(body["subscribe"], 1);
    assert_eq!(body["openid"], follower.oa_openid);
    assert_eq!(body["language"], "zh_CN");
    let since = body["subscribe_time"].as_i64().unwrap();
    assert!((BEIJING_NOON..BEIJING_NOON + 60).contains(&since));
    assert_eq!(body["unionid"], follower.unionid);
    assert_eq!(body["remark"], "楼长");
    assert_eq!(body["groupid"], 0);
    assert_eq!(body["tagid_list"], json!([128, 2]));
    assert_eq!(body["subscribe_scene"], "ADD_SCENE_QR_CODE");
    assert_eq!(body["qr_scene"], 0);
    assert_eq!(body["qr_scene_str"], "community_12");
    // WeChat's own field order.
    let raw = client
        .get(format!("{}/cgi-bin/user/info?access_token={access_token}&openid={}", mock.base_url, numeric.oa_openid))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.starts_with(&format!(
            r#"{{"subscribe":1,"openid":"{}","language":"zh_CN","subscribe_time":1382694957,"unionid":"{}","remark":"","groupid":0,"tagid_list":[],"subscribe_scene":"ADD_SCENE_QR_CODE","qr_scene":98765,"qr_scene_str":""}}"#,
            numeric.oa_openid, numeric.unionid
        )),
        "{raw}"
    );

    // Following and unfollowing directly.
    assert!(mock.record_follow(
        OA_APPID,
        &stranger.oa_openid,
        wechat_mock::OaFollow::via(SubscribeScene::ProfileCard, BEIJING_NOON)
    ));
    let body = user_info(&mock, &client, &format!("access_token={access_token}&openid={}", stranger.oa_openid)).await;
    assert_eq!(body["subscribe_scene"], "ADD_SCENE_PROFILE_CARD");
    assert!(mock.record_unfollow(OA_APPID, &follower.oa_openid));
    let body = user_info(&mock, &client, &format!("access_token={access_token}&openid={}", follower.oa_openid)).await;
    assert_eq!(keys(&body), ["openid", "subscribe"], "no unionid for a non-follower");
    assert_eq!(mock.call_count("/cgi-bin/user/info"), 5);
}

#[tokio::test]
async fn unbound_apps_show_no_unionid() {
    let (mock, client) = spawn(MockConfig { open_platform_bound: false, ..MockConfig::default() }).await;
    let access_token = token(&mock, &client, OA_APPID, OA_SECRET).await;
    let user = mock.add_user_with(&UserOptions { subscribed: true, ..UserOptions::default() }).unwrap();
    let body = user_info(&mock, &client, &format!("access_token={access_token}&openid={}", user.oa_openid)).await;
    assert_eq!(body["subscribe"], 1);
    assert_eq!(body["subscribe_scene"], "ADD_SCENE_SEARCH");
    assert!(body.get("unionid").is_none(), "{body}");
}

#[tokio::test]
async fn user_info_errors() {
    let (mock, client) = spawn(MockConfig::default()).await;
    let user = mock.add_user();
    let oa_token = token(&mock, &client, OA_APPID, OA_SECRET).await;
    let mp_token = token(&mock, &client, MP_APPID, MP_SECRET).await;
    let cases = [
        (format!("openid={}", user.oa_openid), 41001, "access_token missing"),
        (format!("access_token=87_nope&openid={}", user.oa_openid), 40001, "invalid credential"),
        (format!("access_token={oa_token}&openid=o_unknown"), 40003, "invalid openid"),
        (format!("access_token={oa_token}"), 40003, "invalid openid"),
        // Openids are per app: the mini-program's openid means nothing to the official account.
        (format!("access_token={oa_token}&openid={}", user.mp_openid), 40003, "invalid openid"),
        (format!("access_token={mp_token}&openid={}", user.mp_openid), 48001, "api unauthorized"),
    ];
    for (query, errcode, errmsg) in &cases {
        assert_errcode(&user_info(&mock, &client, query).await, *errcode, errmsg);
    }
    mock.advance_clock(7200);
    let expired = user_info(&mock, &client, &format!("access_token={oa_token}&openid={}", user.oa_openid)).await;
    assert_errcode(&expired, 42001, "access_token expired");
    assert_eq!(mock.call_count("/cgi-bin/user/info"), cases.len() as u64 + 1);
}

#[tokio::test]
async fn control_api_adds_and_shows_users() {
    let (mock, client) = spawn(MockConfig::default()).await;
    let users_url = format!("{}/__mock/users", mock.base_url);

    let created: Value = client.post(&users_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(keys(&created), ["mp_openid", "oa_openid", "unionid"]);
    let unionid = created["unionid"].as_str().unwrap();

    let record: Value = client.get(format!("{users_url}/{unionid}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(record["unionid"], unionid);
    assert_eq!(record["openids"][OA_APPID], created["oa_openid"]);
    assert_eq!(record["openids"][MP_APPID], created["mp_openid"]);
    assert_eq!(record["follows"][OA_APPID]["subscribed"], false);

    let following: Value = client
        .post(&users_url)
        .json(&json!({ "subscribed": true, "qr_scene_str": "42", "oa_openid": "o_chosen" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(following["oa_openid"], "o_chosen");
    let record = mock.user(following["unionid"].as_str().unwrap()).unwrap();
    assert!(record.follows[OA_APPID].subscribed);
    assert_eq!(record.follows[OA_APPID].qr_scene, 42);

    let taken = client.post(&users_url).json(&json!({ "oa_openid": "o_chosen" })).send().await.unwrap();
    assert_eq!(taken.status(), 409);
    let bad = client.post(&users_url).json(&json!({ "subscribed": "yes please" })).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let unknown_field = client.post(&users_url).json(&json!({ "nickname": "Band" })).send().await.unwrap();
    assert_eq!(unknown_field.status(), 400);
    let missing = client.get(format!("{users_url}/o_nobody")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    let all: Value = client.get(&users_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    // Users outlive a reset: people exist outside WeChat's caches.
    client.post(format!("{}/__mock/reset", mock.base_url)).send().await.unwrap();
    assert_eq!(mock.users().len(), 2);
}
