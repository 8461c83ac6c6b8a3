//! The official-account webhook end to end: wechat-mock plays WeChat (pushes signed and, in safe
//! mode, encrypted with its own implementation of the protocol) against the real app.

use std::sync::atomic::{AtomicUsize, Ordering};

use linli::config::OaMessageMode;
use linli::wechat::oa::crypto::{signature, MsgCrypt};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use wechat_mock::{PushMode, Tamper};

use crate::helpers::{spawn_oa_app, spawn_oa_app_with, Answer, OaApp};

const WINDOW: u64 = 300;
/// Monday 2026-11-16 23:59:00 in Asia/Shanghai (15:59:00 UTC).
const LATE_EVENING: i64 = 1_794_844_740;

async fn balance(app: &OaApp, resident_id: i64) -> i64 {
    let r = app
        .get(&app.root_key, &format!("/admin/v1/companies/{}/residents/{resident_id}", app.company_id))
        .await
        .expect(200);
    r["balance"].as_i64().unwrap()
}

async fn resident_of(app: &OaApp, openid: &str) -> i64 {
    let (id,): (i64,) = sqlx::query_as("SELECT resident_id FROM resident_identities WHERE openid = $1")
        .bind(openid)
        .fetch_one(app.db.reader())
        .await
        .expect("a resident for this openid");
    id
}

/// What a refused push must leave as it was.
const FINGERPRINT: &str = "SELECT (SELECT COUNT(*) FROM wechat_pushes) + (SELECT COUNT(*) FROM residents) \
                           + (SELECT COUNT(*) FROM points_ledger) + (SELECT COUNT(*) FROM follow_events) \
                           + (SELECT COUNT(*) FROM checkins)";

#[tokio::test]
async fn a_resident_follows_checks_in_and_sees_the_result_in_every_mode() {
    // Compatible mode, chosen explicitly, takes all three (an account with a key is safe-only by default).
    let app = spawn_oa_app_with(|s| s.wechat.oa_message_mode = Some(OaMessageMode::Compat)).await;
    for mode in [PushMode::Plaintext, PushMode::Compatible, PushMode::Safe] {
        let pusher = app.pusher(mode);
        let user = app.mock.add_user();
        let reply = app.say(&pusher, &pusher.follow(&user.oa_openid)).await.unwrap();
        assert!(reply.contains("关注奖励 10 积分") && reply.contains("当前积分 10"), "{mode:?}: {reply}");
        let reply = app.say(&pusher, &pusher.text(&user.oa_openid, "签到")).await.unwrap();
        assert!(
            reply.contains("签到成功") && reply.contains("获得 5 积分") && reply.contains("当前积分 15"),
            "{reply}"
        );
        let reply = app.say(&pusher, &pusher.click(&user.oa_openid, "CHECKIN")).await.unwrap();
        assert!(reply.contains("已经签到"), "{reply}");
        // Other text and other clicks are acknowledged without a reply.
        assert_eq!(app.say(&pusher, &pusher.text(&user.oa_openid, "你好")).await, None);
        assert_eq!(app.say(&pusher, &pusher.click(&user.oa_openid, "MENU_ABOUT")).await, None);

        let resident = resident_of(&app, &user.oa_openid).await;
        assert_eq!(balance(&app, resident).await, 15);
        // The unionid came from /cgi-bin/user/info.
        let detail = app
            .get(&app.root_key, &format!("/admin/v1/companies/{}/residents/{resident}", app.company_id))
            .await
            .expect(200);
        assert_eq!(detail["unionid"], user.unionid.as_str());
        assert_eq!(detail["identities"][0]["subscribed"], true);
    }
    // One token fetch served every user/info call.
    assert_eq!(app.mock.stable_token_fetch_count(wechat_mock::OA_APPID), 1);
    assert!(app.pusher(PushMode::Safe).verify_url().await.is_ok());
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn the_same_push_delivered_three_times_at_once_has_one_effect_and_three_answers() {
    let app = spawn_oa_app(None, WINDOW).await;
    let pusher = app.pusher(PushMode::Safe);
    let user = app.mock.add_user();
    let follow = pusher.follow(&user.oa_openid);
    let outcomes = pusher.deliver_concurrently(&follow, 3).await;
    let replies: Vec<String> = outcomes.into_iter().map(|o| o.unwrap().text().unwrap().content.clone()).collect();
    assert!(replies.iter().all(|r| r == &replies[0] && r.contains("关注奖励")), "{replies:?}");
    // …and seconds later, once more.
    app.mock.advance_clock(3);
    assert_eq!(app.say(&pusher, &follow).await.unwrap(), replies[0]);

    let checkin = pusher.text(&user.oa_openid, "签到");
    let outcomes = pusher.deliver_concurrently(&checkin, 3).await;
    let replies: Vec<String> = outcomes.into_iter().map(|o| o.unwrap().text().unwrap().content.clone()).collect();
    assert!(replies.iter().all(|r| r.contains("签到成功")), "every delivery gets the first answer: {replies:?}");

    assert_eq!(app.count("SELECT COUNT(*) FROM follow_events").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM points_ledger").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM wechat_pushes").await, 2);
    assert_eq!(balance(&app, resident_of(&app, &user.oa_openid).await).await, 15);
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn a_burst_of_check_ins_by_one_resident_credits_once() {
    let app = spawn_oa_app(None, WINDOW).await;
    let pusher = app.pusher(PushMode::Safe);
    let user = app.mock.add_user();
    app.say(&pusher, &pusher.follow(&user.oa_openid)).await;
    // Twelve distinct pushes at once: keywords (distinct MsgIds) and menu clicks (events are told
    // apart by CreateTime, so each click carries its own second; same-second clicks are, by
    // WeChat's dedupe rule, one push).
    let now = app.mock.now_unix();
    let pushes: Vec<_> = (0..12)
        .map(|i| {
            if i % 2 == 0 {
                pusher.text(&user.oa_openid, "签到")
            } else {
                let click = wechat_mock::OaMessage::Click { openid: user.oa_openid.clone(), key: "CHECKIN".into() };
                pusher.build_at(click, now - i)
            }
        })
        .collect();
    let mut runs = tokio::task::JoinSet::new();
    for push in pushes {
        let pusher = pusher.clone();
        runs.spawn(async move { pusher.deliver(&push).await.unwrap().text().unwrap().content.clone() });
    }
    let replies = runs.join_all().await;
    let credited = replies.iter().filter(|r| r.contains("签到成功")).count();
    assert_eq!(credited, 1, "{replies:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM points_ledger WHERE source = 'checkin'").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM checkins").await, 1);
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn many_residents_checking_in_at_once_through_two_instances_are_each_credited_once() {
    let app = spawn_oa_app(None, WINDOW).await;
    let second = app.another_instance().await;
    let pusher = app.pusher(PushMode::Safe);
    let mut config = wechat_mock::PusherConfig::new(format!("{}/wechat/oa/callback", second.address));
    config.mode = PushMode::Safe;
    let other = wechat_mock::OaPusher::new(config).expect("pusher").with_mock(app.mock.wechat.clone());
    let users: Vec<_> = (0..60).map(|_| app.mock.add_user()).collect();
    for user in &users {
        app.say(&pusher, &pusher.follow(&user.oa_openid)).await;
    }
    // Each resident: a keyword and a menu click (two pushes), each delivered through both
    // instances at once, so both instances' check-in writers meet the same residents and pushes.
    let mut runs = tokio::task::JoinSet::new();
    for user in &users {
        let click = wechat_mock::OaMessage::Click { openid: user.oa_openid.clone(), key: "CHECKIN".into() };
        for push in [pusher.text(&user.oa_openid, "签到"), pusher.build(click)] {
            for via in [pusher.clone(), other.clone()] {
                let (push, openid) = (push.clone(), user.oa_openid.clone());
                runs.spawn(async move { (openid, via.deliver(&push).await.unwrap().text().unwrap().content.clone()) });
            }
        }
    }
    let replies = runs.join_all().await;
    for user in &users {
        let mine: Vec<&String> = replies.iter().filter(|(o, _)| *o == user.oa_openid).map(|(_, r)| r).collect();
        assert_eq!(mine.len(), 4);
        assert!(mine.iter().all(|r| r.contains("当前积分 15")), "{mine:?}");
        // Both deliveries of the push that counted say so; the other push's two say "already".
        assert_eq!(mine.iter().filter(|r| r.contains("签到成功")).count(), 2, "{mine:?}");
        assert_eq!(balance(&app, resident_of(&app, &user.oa_openid).await).await, 15);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM checkins").await, 60);
    assert_eq!(app.count("SELECT COUNT(*) FROM points_ledger WHERE source = 'checkin'").await, 60);
    assert_eq!(app.count("SELECT COUNT(*) FROM wechat_pushes").await, 60 * 3, "a follow and two check-ins each");
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn bad_stale_or_foreign_pushes_are_refused_and_change_nothing() {
    // Compatible mode, so that plaintext bodies reach the XML parser.
    let app = spawn_oa_app_with(|s| s.wechat.oa_message_mode = Some(OaMessageMode::Compat)).await;
    let safe = app.pusher(PushMode::Safe);
    let plain = app.pusher(PushMode::Plaintext);
    let user = app.mock.add_user();
    let tables = "SELECT (SELECT COUNT(*) FROM wechat_pushes) + (SELECT COUNT(*) FROM residents) \
                  + (SELECT COUNT(*) FROM points_ledger) + (SELECT COUNT(*) FROM follow_events)";
    let cases = [
        safe.tampered(&safe.follow(&user.oa_openid), Tamper::BadSignature).unwrap(),
        safe.tampered(&safe.follow(&user.oa_openid), Tamper::BadMsgSignature).unwrap(),
        safe.tampered(&safe.follow(&user.oa_openid), Tamper::StaleTimestamp { seconds_ago: 301 }).unwrap(),
        safe.tampered(&safe.follow(&user.oa_openid), Tamper::StaleTimestamp { seconds_ago: -301 }).unwrap(),
        safe.tampered(&safe.follow(&user.oa_openid), Tamper::WrongAppid("wx_someone_else".into())).unwrap(),
        plain.tampered(&plain.follow(&user.oa_openid), Tamper::BadSignature).unwrap(),
        plain.tampered(&plain.text(&user.oa_openid, "签到"), Tamper::StaleTimestamp { seconds_ago: 3600 }).unwrap(),
    ];
    for push in &cases {
        let outcome = safe.deliver(push).await.unwrap();
        assert_eq!(outcome.status, 401, "{}", outcome.body);
        let body: serde_json::Value = serde_json::from_str(&outcome.body).unwrap();
        assert_eq!(body["code"], "bad_signature");
    }
    assert_eq!(app.count(tables).await, 0);

    // Well signed but malformed, hostile or oversized XML.
    let signed = |body: &str| {
        let ts = (linli::db::now_ms() / 1000).to_string();
        let sig = linli::wechat::oa::crypto::signature(&[wechat_mock::OA_CALLBACK_TOKEN, &ts, "42"]);
        let url = app.url(&format!("/wechat/oa/callback?signature={sig}&timestamp={ts}&nonce=42&openid=x"));
        app.client.post(url).body(body.to_owned())
    };
    let hostile = [
        ("<xml><ToUserName>gh</ToUserName>", 400),
        ("<!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><xml><ToUserName>&x;</ToUserName></xml>", 400),
        ("<xml><ToUserName>gh</ToUserName><MsgType>text</MsgType></xml>", 400),
    ];
    for (body, status) in hostile {
        let a = app.send(signed(body)).await;
        assert_eq!(a.status.as_u16(), status, "{body}: {}", a.body);
    }
    let huge = format!("<xml><Content>{}</Content></xml>", "x".repeat(70 * 1024));
    assert_eq!(app.send(signed(&huge)).await.status.as_u16(), 413);
    assert_eq!(app.count(tables).await, 0);
}

#[tokio::test]
async fn unknown_messages_and_events_are_acknowledged() {
    let app = spawn_oa_app(None, WINDOW).await;
    let pusher = app.pusher(PushMode::Compatible);
    let user = app.mock.add_user();
    let location = wechat_mock::OaMessage::Raw {
        openid: user.oa_openid.clone(),
        fields: vec![
            ("MsgType".into(), "event".into()),
            ("Event".into(), "LOCATION".into()),
            ("Latitude".into(), "31.2".into()),
        ],
    };
    let push = pusher.build(location);
    assert_eq!(app.say(&pusher, &push).await, None);
    let image = wechat_mock::OaMessage::Raw {
        openid: user.oa_openid.clone(),
        fields: vec![
            ("MsgType".into(), "image".into()),
            ("PicUrl".into(), "http://x/y.jpg".into()),
            ("MsgId".into(), "77".into()),
        ],
    };
    assert_eq!(app.say(&pusher, &pusher.build(image)).await, None);
}

#[tokio::test]
async fn unfollow_and_refollow_are_recorded_but_earn_nothing_more() {
    let app = spawn_oa_app(None, WINDOW).await;
    let pusher = app.pusher(PushMode::Safe);
    let user = app.mock.add_user();
    let first = app.say(&pusher, &pusher.follow(&user.oa_openid)).await.unwrap();
    assert!(first.contains("关注奖励 10"));
    app.mock.advance_clock(60);
    assert_eq!(app.say(&pusher, &pusher.unfollow(&user.oa_openid)).await, None);
    app.mock.advance_clock(60);
    let again = app.say(&pusher, &pusher.follow(&user.oa_openid)).await.unwrap();
    assert!(again.contains("欢迎回来") && again.contains("当前积分 10"), "{again}");
    assert_eq!(app.count("SELECT COUNT(*) FROM follow_events").await, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM points_ledger WHERE source = 'follow'").await, 1);
    let resident = resident_of(&app, &user.oa_openid).await;
    let detail = app
        .get(&app.root_key, &format!("/admin/v1/companies/{}/residents/{resident}", app.company_id))
        .await
        .expect(200);
    let identity = &detail["identities"][0];
    assert_eq!(identity["subscribed"], true);
    assert!(identity["last_unfollowed_at"].is_string());
    app.assert_ledger_balanced().await;
}

async fn check_in(app: &OaApp, pusher: &wechat_mock::OaPusher, openid: &str) -> String {
    app.say(pusher, &pusher.text(openid, "签到")).await.unwrap()
}

#[tokio::test]
async fn streaks_follow_the_programme_time_zone_across_midnight() {
    // A wide window: the mock's clock, which dates the pushes, runs in 2026-11.
    let app = spawn_oa_app(Some(LATE_EVENING), 10 * 365 * 86_400).await;
    let pusher = app.pusher(PushMode::Safe);
    let user = app.mock.add_user();
    app.say(&pusher, &pusher.follow(&user.oa_openid)).await;
    let checkin = |app| check_in(app, &pusher, &user.oa_openid);
    // 23:59 on Monday, then 00:01 on Tuesday (two minutes later, the next day in Shanghai).
    assert!(checkin(&app).await.contains("已连续签到 1 天"));
    app.mock.advance_clock(120);
    assert!(checkin(&app).await.contains("已连续签到 2 天"));
    // Later the same Tuesday: already done.
    app.mock.advance_clock(12 * 3600);
    assert!(checkin(&app).await.contains("已经签到"));
    // Days 3 to 7: the 7th consecutive day earns the +20 bonus.
    for day in 3..=7 {
        app.mock.advance_clock(86_400);
        let reply = checkin(&app).await;
        if day == 7 {
            assert!(reply.contains("获得 25 积分") && reply.contains("连续签到 7 天奖励 20"), "{reply}");
        } else {
            assert!(reply.contains(&format!("已连续签到 {day} 天")), "{reply}");
        }
    }
    // A day missed: the streak starts again.
    app.mock.advance_clock(2 * 86_400);
    assert!(checkin(&app).await.contains("已连续签到 1 天"));
    let resident = resident_of(&app, &user.oa_openid).await;
    assert_eq!(balance(&app, resident).await, 10 + 6 * 5 + 25 + 5);

    // In UTC, the same two pushes at 23:59 and 00:01 Shanghai time are on one day.
    let rules =
        app.get(&app.root_key, &format!("/admin/v1/companies/{}/points-programme", app.company_id)).await.expect(200)
            ["rules"]
            .clone();
    let mut utc = rules.clone();
    utc["utc_offset_minutes"] = json!(0);
    app.send(
        app.client
            .put(app.url(&format!("/admin/v1/companies/{}/points-programme", app.company_id)))
            .header("X-Api-Key", &app.root_key)
            .json(&utc),
    )
    .await
    .expect(200);
    let other = app.mock.add_user();
    app.say(&pusher, &pusher.follow(&other.oa_openid)).await;
    let until_local_midnight = 86_400 - (app.mock.now_unix() + 8 * 3600).rem_euclid(86_400);
    app.mock.advance_clock(until_local_midnight - 60);
    assert!(app.say(&pusher, &pusher.text(&other.oa_openid, "签到")).await.unwrap().contains("签到成功"));
    app.mock.advance_clock(120);
    assert!(app.say(&pusher, &pusher.text(&other.oa_openid, "签到")).await.unwrap().contains("已经签到"));
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn a_new_follower_through_an_invitation_rewards_the_inviter_once() {
    let app = spawn_oa_app(None, WINDOW).await;
    let pusher = app.pusher(PushMode::Safe);
    let (inviter, invitee, returning) = (app.mock.add_user(), app.mock.add_user(), app.mock.add_user());
    app.say(&pusher, &pusher.follow(&inviter.oa_openid)).await;
    app.say(&pusher, &pusher.follow(&returning.oa_openid)).await;
    let inviter_id = resident_of(&app, &inviter.oa_openid).await;
    let path = format!("/admin/v1/companies/{}/residents/{inviter_id}", app.company_id);
    let code = app.get(&app.root_key, &path).await.expect(200)["invite_code"].as_str().unwrap().to_owned();
    let scene = format!("inv_{code}");

    app.say(&pusher, &pusher.follow_scene(&invitee.oa_openid, &scene)).await;
    assert_eq!(balance(&app, inviter_id).await, 10 + 20);
    // Unfollowing and following through the code again, an existing follower scanning it, and the
    // inviter scanning their own code earn nothing more.
    app.mock.advance_clock(5);
    app.say(&pusher, &pusher.unfollow(&invitee.oa_openid)).await;
    app.mock.advance_clock(5);
    app.say(&pusher, &pusher.follow_scene(&invitee.oa_openid, &scene)).await;
    app.say(&pusher, &pusher.scan(&returning.oa_openid, &scene)).await;
    app.mock.advance_clock(5);
    app.say(&pusher, &pusher.unfollow(&inviter.oa_openid)).await;
    app.mock.advance_clock(5);
    app.say(&pusher, &pusher.follow_scene(&inviter.oa_openid, &scene)).await;
    assert_eq!(balance(&app, inviter_id).await, 30);
    assert_eq!(app.count("SELECT COUNT(*) FROM points_ledger WHERE source = 'referral'").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM referrals").await, 1);
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn access_tokens_are_shared_refreshed_once_and_renewed_when_rejected() {
    // A wide window: the mock's clock, which dates the pushes, will run two hours ahead.
    let app = spawn_oa_app(None, 10 * 365 * 86_400).await;
    let pusher = app.pusher(PushMode::Safe);
    // Twenty new followers at once, with no token cached: one refresh, not a storm.
    let users: Vec<_> = (0..20).map(|_| app.mock.add_user()).collect();
    let mut runs = tokio::task::JoinSet::new();
    for u in &users {
        let push = pusher.follow(&u.oa_openid);
        let pusher = pusher.clone();
        runs.spawn(async move { pusher.deliver(&push).await.unwrap().status });
    }
    assert!(runs.join_all().await.iter().all(|s| *s == 200));
    assert_eq!(app.mock.stable_token_fetch_count(wechat_mock::OA_APPID), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM residents WHERE unionid IS NOT NULL").await, 20);

    // WeChat's clock moves past the token's life: the next call gets 42001, the token is renewed
    // and the call retried, and the unionid still arrives.
    app.mock.advance_clock(7300);
    let late = app.mock.add_user();
    app.say(&pusher, &pusher.follow(&late.oa_openid)).await;
    assert_eq!(app.mock.stable_token_fetch_count(wechat_mock::OA_APPID), 2);
    let id = resident_of(&app, &late.oa_openid).await;
    let (unionid,): (Option<String>,) = sqlx::query_as("SELECT unionid FROM residents WHERE id = $1")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    assert_eq!(unionid.as_deref(), Some(late.unionid.as_str()));
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn operators_configure_rules_issue_points_and_read_the_ledger() {
    let app = spawn_oa_app(None, WINDOW).await;
    let pusher = app.pusher(PushMode::Safe);
    let user = app.mock.add_user();
    app.say(&pusher, &pusher.follow(&user.oa_openid)).await;
    let resident = resident_of(&app, &user.oa_openid).await;
    let company = app.company_id;
    let operator = app.create_key(&app.root_key, company, "operator").await;
    let viewer = app.create_key(&app.root_key, company, "viewer").await;
    let base = format!("/admin/v1/companies/{company}");

    // Rules: admins only; the new check-in points apply at once.
    let mut rules = app.get(&viewer, &format!("{base}/points-programme")).await.expect(200)["rules"].clone();
    rules["checkin_points"] = json!(8);
    rules["checkin_keyword"] = json!("打卡");
    let put = |key: &str, body: serde_json::Value| {
        app.client.put(app.url(&format!("{base}/points-programme"))).header("X-Api-Key", key).json(&body)
    };
    app.send(put(&operator, rules.clone())).await.expect(403);
    let mut bad = rules.clone();
    bad["checkin_points"] = json!(-5);
    app.send(put(&app.root_key, bad)).await.expect(400);
    app.send(put(&app.root_key, rules)).await.expect(200);
    let reply = app.say(&pusher, &pusher.text(&user.oa_openid, "打卡")).await.unwrap();
    assert!(reply.contains("获得 8 积分"), "{reply}");

    // Issue points with a remark, idempotently by reference.
    let grant = json!({"resident_id": resident, "amount": 100, "reference": "spring-2027", "remark": "春节活动"});
    let first = app.post(&operator, &format!("{base}/points/adjustments"), grant.clone()).await.expect(201);
    assert_eq!((first["kind"].as_str(), first["balance_after"].as_i64()), (Some("issue"), Some(118)));
    let again = app.post(&operator, &format!("{base}/points/adjustments"), grant).await.expect(200);
    assert_eq!(again["id"], first["id"]);
    let reused = json!({"resident_id": resident, "amount": 5, "reference": "spring-2027", "remark": "x"});
    assert_eq!(app.post(&operator, &format!("{base}/points/adjustments"), reused).await.code(), "reference_used");
    // Take some back; never below zero.
    let back = json!({"resident_id": resident, "amount": -18, "reference": "fix-1", "remark": "重复发放"});
    let row = app.post(&operator, &format!("{base}/points/adjustments"), back).await.expect(201);
    assert_eq!((row["kind"].as_str(), row["balance_after"].as_i64()), (Some("adjust"), Some(100)));
    let too_much = json!({"resident_id": resident, "amount": -101, "reference": "fix-2", "remark": "x"});
    let a = app.post(&operator, &format!("{base}/points/adjustments"), too_much).await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "insufficient_points"));
    let view = json!({"resident_id": resident, "amount": 1, "reference": "v", "remark": "x"});
    app.post(&viewer, &format!("{base}/points/adjustments"), view).await.expect(403);
    let nobody = json!({"resident_id": 999_999, "amount": 1, "reference": "n", "remark": "x"});
    app.post(&operator, &format!("{base}/points/adjustments"), nobody).await.expect(404);

    // The ledger: filters and totals over all pages.
    let all = app.get(&viewer, &format!("{base}/points/ledger?page_size=2")).await.expect(200);
    assert_eq!(all["page"]["total"], 4);
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert_eq!(all["totals"], json!({"credited": 118, "debited": 18, "net": 100}));
    let issued = app.get(&viewer, &format!("{base}/points/ledger?kind=issue")).await.expect(200);
    assert_eq!(issued["items"][0]["remark"], "春节活动");
    assert!(issued["items"][0]["operator"].as_str().unwrap().starts_with("key:lk_"));
    let by_source =
        app.get(&viewer, &format!("{base}/points/ledger?source=checkin&resident_id={resident}")).await.expect(200);
    assert_eq!(by_source["totals"]["credited"], 8);
    let future = app.get(&viewer, &format!("{base}/points/ledger?since=2999-01-01T00:00:00Z")).await.expect(200);
    assert_eq!(future["page"]["total"], 0);
    let members = app.get(&viewer, &format!("{base}/residents")).await.expect(200);
    assert_eq!(members["items"][0]["balance"], 100);

    // Another company's keys reach none of it.
    let other = app.create_org(&app.root_key, 1, "company", "Other Property").await;
    let outsider = app.create_key(&app.root_key, other, "admin").await;
    for path in ["points-programme", "points/ledger", "residents", &format!("residents/{resident}")] {
        app.get(&outsider, &format!("{base}/{path}")).await.expect(404);
    }
    let steal = json!({"resident_id": resident, "amount": -100, "reference": "steal", "remark": "x"});
    app.post(&outsider, &format!("{base}/points/adjustments"), steal).await.expect(404);
    // …nor does another company's programme know this resident.
    let grant = json!({"resident_id": resident, "amount": 1, "reference": "x", "remark": "x"});
    let other_rules = app.get(&app.root_key, &format!("{base}/points-programme")).await.expect(200)["rules"].clone();
    app.send(
        app.client
            .put(app.url(&format!("/admin/v1/companies/{other}/points-programme")))
            .header("X-Api-Key", &outsider)
            .json(&other_rules),
    )
    .await
    .expect(200);
    app.post(&outsider, &format!("/admin/v1/companies/{other}/points/adjustments"), grant).await.expect(404);
    app.assert_ledger_balanced().await;
}

// ---- Captured callback URLs, message modes and numbers at the edges of i64 ----------------------

/// A captured push's URL (as a proxy or an access log shows it) without the parameters in `drop`.
fn captured_url(push: &wechat_mock::Push, drop: &[&str]) -> reqwest::Url {
    let url = reqwest::Url::parse(push.url()).unwrap();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !drop.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(kept);
    out
}

/// Posts `body` under a captured push's URL, as whoever saw the URL can.
async fn post_under(app: &OaApp, url: reqwest::Url, body: &str) -> Answer {
    app.send(app.client.post(url).body(body.to_owned())).await
}

#[tokio::test]
async fn a_plaintext_push_under_a_captured_safe_mode_url_is_refused_and_credits_nothing() {
    // The account has an AES key and no mode set: safe mode, encrypted pushes only.
    let app = spawn_oa_app(None, WINDOW).await;
    let (safe, plain) = (app.pusher(PushMode::Safe), app.pusher(PushMode::Plaintext));
    let (victim, someone) = (app.mock.add_user(), app.mock.add_user());
    app.say(&safe, &safe.follow(&victim.oa_openid)).await;
    let seen = safe.text(&someone.oa_openid, "你好");
    app.say(&safe, &seen).await;
    let before = app.count(FINGERPRINT).await;

    // A plaintext check-in posted under the seen URL, without its encryption parameters, and with.
    let forged = plain.text(&victim.oa_openid, "签到");
    let a = post_under(&app, captured_url(&seen, &["encrypt_type", "msg_signature"]), forged.body()).await;
    assert_eq!((a.status.as_u16(), a.code()), (401, "encryption_required"), "{}", a.body);
    let a = post_under(&app, captured_url(&seen, &[]), forged.body()).await;
    assert_eq!((a.status.as_u16(), a.code()), (401, "bad_signature"), "{}", a.body);
    // A plaintext push signed exactly as WeChat signs one: still not taken.
    let outcome = plain.deliver(&forged).await.unwrap();
    assert_eq!(outcome.status, 401, "{}", outcome.body);
    assert!(outcome.body.contains("encryption_required"), "{}", outcome.body);

    assert_eq!(app.count(FINGERPRINT).await, before);
    assert_eq!(balance(&app, resident_of(&app, &victim.oa_openid).await).await, 10);
    // The resident's own check-in, encrypted, still counts.
    let reply = app.say(&safe, &safe.text(&victim.oa_openid, "签到")).await.unwrap();
    assert!(reply.contains("签到成功"), "{reply}");
}

/// In safe mode an encrypted push's `msg_signature` ties its body to its URL and no unsigned body
/// is taken, so its URL is not bound (the binding's write was most of a check-in's cost). In
/// compatible mode the same encrypted push still binds its URL: its `signature` alone would carry
/// a plaintext body, and a captured URL must not.
#[tokio::test]
async fn only_pushes_a_plaintext_body_could_follow_bind_their_url() {
    const BOUND: &str = "SELECT COUNT(*) FROM wechat_push_nonces";
    let safe_app = spawn_oa_app(None, WINDOW).await;
    let safe = safe_app.pusher(PushMode::Safe);
    let user = safe_app.mock.add_user();
    safe_app.say(&safe, &safe.follow(&user.oa_openid)).await;
    let checkin = safe.text(&user.oa_openid, "签到");
    let first = safe_app.say(&safe, &checkin).await.unwrap();
    assert!(first.contains("签到成功"), "{first}");
    assert_eq!(safe_app.count(BOUND).await, 0, "a safe-mode push bound its URL");
    // What stands in for the binding: another encrypted body (a genuine one, for another
    // resident) under the check-in's captured URL fails its msg_signature and writes nothing.
    let victim = safe_app.mock.add_user();
    safe_app.say(&safe, &safe.follow(&victim.oa_openid)).await;
    let before = safe_app.count(FINGERPRINT).await;
    let other = safe.text(&victim.oa_openid, "签到");
    let a = post_under(&safe_app, captured_url(&checkin, &[]), other.body()).await;
    assert_eq!((a.status.as_u16(), a.code()), (401, "bad_signature"), "{}", a.body);
    assert_eq!(safe_app.count(FINGERPRINT).await, before);
    assert_eq!(balance(&safe_app, resident_of(&safe_app, &victim.oa_openid).await).await, 10);
    // A redelivery still gets the first answer and credits nothing more.
    assert_eq!(safe_app.say(&safe, &checkin).await.unwrap(), first);
    assert_eq!(balance(&safe_app, resident_of(&safe_app, &user.oa_openid).await).await, 15);

    let app = spawn_oa_app_with(|s| s.wechat.oa_message_mode = Some(OaMessageMode::Compat)).await;
    let (safe, plain) = (app.pusher(PushMode::Safe), app.pusher(PushMode::Plaintext));
    let (resident, other) = (app.mock.add_user(), app.mock.add_user());
    app.say(&safe, &safe.follow(&resident.oa_openid)).await;
    app.say(&safe, &safe.follow(&other.oa_openid)).await;
    let checkin = safe.text(&resident.oa_openid, "签到");
    let first = app.say(&safe, &checkin).await.unwrap();
    assert!(first.contains("签到成功"), "{first}");
    assert_eq!(app.count(BOUND).await, 3, "every compatible-mode push binds its URL");
    let before = app.count(FINGERPRINT).await;
    // Under the check-in's URL, stripped of its encryption: another resident's plaintext check-in
    // and a new user's follow.
    for forged in [plain.text(&other.oa_openid, "签到"), plain.follow(&app.mock.add_user().oa_openid)] {
        let a = post_under(&app, captured_url(&checkin, &["encrypt_type", "msg_signature"]), forged.body()).await;
        assert_eq!((a.status.as_u16(), a.code()), (409, "push_nonce_reused"), "{}", a.body);
    }
    assert_eq!(app.count(FINGERPRINT).await, before);
    assert_eq!(balance(&app, resident_of(&app, &other.oa_openid).await).await, 10);
    assert_eq!(app.say(&safe, &checkin).await.unwrap(), first);
}

#[tokio::test]
async fn a_captured_url_carries_one_body_only() {
    // No AES key: plaintext mode, where the URL signature is all there is.
    let app = spawn_oa_app_with(|s| s.wechat.oa_aes_key = None).await;
    let plain = app.pusher(PushMode::Plaintext);
    let (resident, other) = (app.mock.add_user(), app.mock.add_user());
    app.say(&plain, &plain.follow(&resident.oa_openid)).await;
    app.say(&plain, &plain.follow(&other.oa_openid)).await;
    // URLs seen in a log: a follow (the general path) and a check-in (the check-in writer's).
    let follow = plain.follow(&app.mock.add_user().oa_openid);
    let followed = app.say(&plain, &follow).await.unwrap();
    let checkin = plain.text(&resident.oa_openid, "签到");
    let checked_in = app.say(&plain, &checkin).await.unwrap();
    assert!(checked_in.contains("签到成功"), "{checked_in}");
    let before = app.count(FINGERPRINT).await;

    // Under each: another resident's check-in, and five follows of new users (each +10).
    let mut forged = vec![plain.text(&other.oa_openid, "签到")];
    forged.extend((0..5).map(|_| plain.follow(&app.mock.add_user().oa_openid)));
    for seen in [&follow, &checkin] {
        for f in &forged {
            let a = post_under(&app, captured_url(seen, &[]), f.body()).await;
            assert_eq!((a.status.as_u16(), a.code()), (409, "push_nonce_reused"), "{}", a.body);
        }
    }
    assert_eq!(app.count(FINGERPRINT).await, before);
    assert_eq!(balance(&app, resident_of(&app, &other.oa_openid).await).await, 10);
    assert_eq!(balance(&app, resident_of(&app, &resident.oa_openid).await).await, 15);
    // The URLs' own bodies again are redeliveries: the first answers.
    assert_eq!(app.say(&plain, &follow).await.unwrap(), followed);
    assert_eq!(app.say(&plain, &checkin).await.unwrap(), checked_in);
    // Each forged body under its own genuine URL is a push like any other.
    let reply = app.say(&plain, &forged[0]).await.unwrap();
    assert!(reply.contains("签到成功"), "{reply}");
    app.assert_ledger_balanced().await;

    // The bindings go once no push dated like them can pass the window any more.
    let bound = app.count("SELECT COUNT(*) FROM wechat_push_nonces").await;
    assert_eq!(bound, 5, "three follows and two check-ins");
    let now = linli::db::now_ms();
    assert_eq!(linli::workers::expiry::prune_push_nonces(&app.db, now, WINDOW).await.unwrap(), 0);
    let later = now + 2 * (WINDOW as i64 + 60) * 1000;
    assert_eq!(linli::workers::expiry::prune_push_nonces(&app.db, later, WINDOW).await.unwrap(), 5);
}

/// Delivers `genuine` `n` times and posts `forged`'s body under its URL `m` times, all at once:
/// (genuine answers, forged statuses).
async fn genuine_and_forged_at_once(
    app: &OaApp,
    pusher: &wechat_mock::OaPusher,
    genuine: &wechat_mock::Push,
    forged: &wechat_mock::Push,
    n: usize,
    m: usize,
) -> (Vec<(u16, Option<String>)>, Vec<u16>) {
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (pusher, push) = (pusher.clone(), genuine.clone());
        runs.spawn(async move {
            let o = pusher.deliver(&push).await.unwrap();
            (true, o.status, o.text().map(|t| t.content.clone()))
        });
    }
    for _ in 0..m {
        let (client, url, body) = (app.client.clone(), captured_url(genuine, &[]), forged.body().to_owned());
        runs.spawn(async move { (false, client.post(url).body(body).send().await.unwrap().status().as_u16(), None) });
    }
    let mut out = (Vec::new(), Vec::new());
    for (is_genuine, status, text) in runs.join_all().await {
        if is_genuine {
            out.0.push((status, text));
        } else {
            out.1.push(status);
        }
    }
    out
}

#[tokio::test]
async fn redeliveries_at_once_get_the_first_answer_and_a_forgery_among_them_is_refused() {
    let app = spawn_oa_app_with(|s| s.wechat.oa_aes_key = None).await;
    let plain = app.pusher(PushMode::Plaintext);
    let users: Vec<_> = (0..3).map(|_| app.mock.add_user()).collect();
    for u in &users {
        app.say(&plain, &plain.follow(&u.oa_openid)).await;
    }
    let (a, b, c) = (&users[0].oa_openid, &users[1].oa_openid, &users[2].oa_openid);

    // Delivered once, then three times at once with two forged bodies under its URL among them.
    let genuine = plain.text(a, "签到");
    let first = app.say(&plain, &genuine).await.unwrap();
    let (answers, forged) = genuine_and_forged_at_once(&app, &plain, &genuine, &plain.text(b, "签到"), 3, 2).await;
    assert!(answers.iter().all(|(s, t)| *s == 200 && t.as_deref() == Some(first.as_str())), "{answers:?}");
    assert_eq!(forged, [409, 409]);

    // From cold, all at once: whichever body is bound first is the one the URL carries.
    let genuine = plain.text(c, "签到");
    let (answers, forged) = genuine_and_forged_at_once(&app, &plain, &genuine, &plain.text(b, "签到"), 3, 1).await;
    if answers[0].0 == 200 {
        let text = answers[0].1.clone().unwrap();
        assert!(text.contains("签到成功"), "{text}");
        assert!(answers.iter().all(|(s, t)| *s == 200 && *t == Some(text.clone())), "{answers:?}");
        assert_eq!(forged, [409]);
    } else {
        assert!(answers.iter().all(|(s, _)| *s == 409), "{answers:?}");
        assert_eq!(forged, [200]);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM checkins").await, 2, "a's, and one of b's and c's");
    assert_eq!(app.count("SELECT COUNT(*) FROM points_ledger WHERE source = 'checkin'").await, 2);
    assert_eq!(balance(&app, resident_of(&app, a).await).await, 15);
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn an_encrypted_push_to_an_account_without_an_aes_key_is_refused_with_a_4xx() {
    let app = spawn_oa_app_with(|s| s.wechat.oa_aes_key = None).await;
    let user = app.mock.add_user();
    for mode in [PushMode::Safe, PushMode::Compatible] {
        let pusher = app.pusher(mode);
        let outcome = pusher.deliver(&pusher.follow(&user.oa_openid)).await.unwrap();
        assert_eq!(outcome.status, 400, "{mode:?}: {}", outcome.body);
        let body: serde_json::Value = serde_json::from_str(&outcome.body).unwrap();
        assert_eq!(body["code"], "encryption_not_configured");
    }
    assert_eq!(app.count(FINGERPRINT).await, 0);
    // Plaintext pushes are this account's mode, and are taken.
    let plain = app.pusher(PushMode::Plaintext);
    assert!(app.say(&plain, &plain.follow(&user.oa_openid)).await.unwrap().contains("关注奖励"));
}

#[tokio::test]
async fn plaintext_mode_chosen_with_a_key_takes_plaintext_and_encrypted_pushes() {
    let app = spawn_oa_app_with(|s| s.wechat.oa_message_mode = Some(OaMessageMode::Plain)).await;
    let (plain, safe) = (app.pusher(PushMode::Plaintext), app.pusher(PushMode::Safe));
    let user = app.mock.add_user();
    assert!(app.say(&plain, &plain.follow(&user.oa_openid)).await.unwrap().contains("关注奖励 10"));
    assert!(app.say(&safe, &safe.text(&user.oa_openid, "签到")).await.unwrap().contains("当前积分 15"));
    app.assert_ledger_balanced().await;
}

/// A number a push carries, at a chosen value.
#[derive(Clone, Copy, Debug)]
enum Carried {
    /// The URL's `timestamp` (and the GET URL check's).
    UrlTimestamp(i64),
    CreateTime(i64),
    MsgId(i64),
    /// The task id in a follow's `qrscene_t<task>_<code>`.
    TaskScene(i64),
    /// A SCAN's numeric scene id.
    ScanScene(i64),
}

const EDGES: [i64; 6] = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX];
const CARRIERS: [fn(i64) -> Carried; 5] =
    [Carried::UrlTimestamp, Carried::CreateTime, Carried::MsgId, Carried::TaskScene, Carried::ScanScene];

/// Posts a safe-mode push (encrypted and signed by hand) carrying `carried`, and checks the
/// answer: taken (200) when its times are within the window, else a typed 401 that wrote nothing;
/// never a 5xx.
async fn push_carrying(app: &OaApp, carried: Carried, n: usize) -> Result<(), String> {
    let now = linli::db::now_ms() / 1000;
    let user = app.mock.add_user();
    let (url_ts, create_time) = match carried {
        Carried::UrlTimestamp(v) => (v, now),
        Carried::CreateTime(v) => (now, v),
        _ => (now, now),
    };
    let fields = match carried {
        Carried::MsgId(v) => format!("<MsgType>text</MsgType><Content>你好</Content><MsgId>{v}</MsgId>"),
        Carried::TaskScene(v) => {
            format!("<MsgType>event</MsgType><Event>subscribe</Event><EventKey>qrscene_t{v}_ABCDEFGH</EventKey>")
        }
        Carried::ScanScene(v) => format!("<MsgType>event</MsgType><Event>SCAN</Event><EventKey>{v}</EventKey>"),
        _ => format!("<MsgType>text</MsgType><Content>你好</Content><MsgId>{}</MsgId>", 7_000_000 + n),
    };
    let xml = format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{create_time}</CreateTime>\
         {fields}</xml>",
        wechat_mock::OA_ORIGINAL_ID,
        user.oa_openid
    );
    let (token, ts, nonce) = (wechat_mock::OA_CALLBACK_TOKEN, url_ts.to_string(), format!("{}", 900_000 + n));
    let encrypt = MsgCrypt::new(wechat_mock::OA_ENCODING_AES_KEY, wechat_mock::OA_APPID).unwrap().encrypt(&xml);
    let query = format!(
        "signature={}&timestamp={ts}&nonce={nonce}&openid={}&encrypt_type=aes&msg_signature={}",
        signature(&[token, &ts, &nonce]),
        user.oa_openid,
        signature(&[token, &ts, &nonce, &encrypt])
    );
    let body = format!(
        "<xml><ToUserName>{}</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>",
        wechat_mock::OA_ORIGINAL_ID
    );
    // Within the window but for a second or two of clock between here and the server: taken;
    // beyond it: refused; in between, either.
    let distance = (i128::from(now) - i128::from(url_ts)).abs().max((i128::from(now) - i128::from(create_time)).abs());
    let window = i128::from(WINDOW);
    let expected = match distance {
        d if d <= window - 2 => Some(200),
        d if d > window + 2 => Some(401),
        _ => None,
    };
    let before = app.count(FINGERPRINT).await;
    let a = app.send(app.client.post(app.url(&format!("/wechat/oa/callback?{query}"))).body(body)).await;
    let status = a.status.as_u16();
    let what = format!("{carried:?}: {status} {}", a.body);
    if status >= 500 || expected.is_some_and(|e| e != status) || !(status == 200 || status == 401) {
        return Err(what);
    }
    if status == 401 {
        if a.code() != "bad_signature" {
            return Err(what);
        }
        if app.count(FINGERPRINT).await != before {
            return Err(format!("{what}: a refused push wrote something"));
        }
    }
    if let (Carried::UrlTimestamp(_), Some(_)) = (carried, expected) {
        // WeChat's URL check under the same timestamp.
        let q = format!("signature={}&timestamp={ts}&nonce={nonce}&echostr=e{n}", signature(&[token, &ts, &nonce]));
        let check = app.send(app.client.get(app.url(&format!("/wechat/oa/callback?{q}")))).await;
        if check.status.as_u16() != status {
            return Err(format!("{what}: the URL check answered {}", check.status));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_number_a_push_carries_is_refused_or_taken_at_every_edge_of_i64_never_a_panic() {
    let app = spawn_oa_app(None, WINDOW).await;
    let now = linli::db::now_ms() / 1000;
    let w = WINDOW as i64;
    let near = [now - w - 5, now - w + 5, now - 1, now, now + 1, now + w - 5, now + w + 5];
    let mut n = 0;
    for carrier in CARRIERS {
        for v in EDGES.iter().chain(&near) {
            push_carrying(&app, carrier(*v), n).await.unwrap();
            n += 1;
        }
    }
    // And values drawn around the edges and the window, shrunk to the smallest failing one.
    let values = prop_oneof![
        proptest::sample::select(EDGES.to_vec()),
        (now - w - 10)..=(now + w + 10),
        any::<i64>(),
        (i64::MIN..i64::MIN + 1000),
        (i64::MAX - 1000..=i64::MAX),
    ];
    let counter = AtomicUsize::new(n);
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config { cases: 48, failure_persistence: None, ..Config::default() });
    runner
        .run(&(0..CARRIERS.len(), values), |(carrier, v)| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            tokio::task::block_in_place(|| handle.block_on(push_carrying(&app, CARRIERS[carrier](v), n)))
                .map_err(TestCaseError::fail)
        })
        .unwrap();
    app.assert_ledger_balanced().await;
}
