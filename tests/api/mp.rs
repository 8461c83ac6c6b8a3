//! The mini-program: sessions from `wx.login` codes, the resident's profile and points, and
//! bindings to rooms — by roster match, by review, by an owner's invitation.

use serde_json::{json, Value};
use wechat_mock::PushMode;

use crate::helpers::{bearer, eventually, spawn_oa_app, Answer, OaApp};

async fn as_resident(app: &OaApp, token: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
    let url = app.url(path);
    let req = match method {
        "GET" => app.client.get(url),
        "DELETE" => app.client.delete(url),
        _ => app.client.post(url),
    };
    let req = bearer(req, token);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    app.send(req).await
}

fn bind_101(community: i64, name: &str, phone: &str, role: &str) -> Value {
    json!({"community_id": community, "building": "1", "unit": "1", "number": "101", "role": role, "name": name, "phone": phone})
}

#[tokio::test]
async fn a_follower_who_logs_in_is_the_same_resident() {
    let app = spawn_oa_app(None, 300).await;
    let pusher = app.pusher(PushMode::Safe);
    let user = app.mock.add_user();
    app.say(&pusher, &pusher.follow(&user.oa_openid)).await;
    let token = app.login(&user).await;
    let me = as_resident(&app, &token, "GET", "/mp/v1/me", None).await.expect(200);
    let kinds: Vec<(&str, bool)> = me["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["app_kind"].as_str().unwrap(), i["subscribed"].as_bool().unwrap()))
        .collect();
    assert_eq!(kinds, [("oa", true), ("mp", false)]);
    assert_eq!(me["points"][0]["balance"], 10);
    assert_eq!(app.count("SELECT COUNT(*) FROM residents").await, 1);

    // Checking in on either channel counts once a day.
    let c = as_resident(&app, &token, "POST", "/mp/v1/me/checkins", Some(json!({}))).await.expect(200);
    assert_eq!(
        (c["already_checked_in"].as_bool(), c["points"].as_i64(), c["balance"].as_i64()),
        (Some(false), Some(5), Some(15))
    );
    let reply = app.say(&pusher, &pusher.text(&user.oa_openid, "签到")).await.unwrap();
    assert!(reply.contains("已经签到"), "{reply}");
    let c = as_resident(&app, &token, "POST", "/mp/v1/me/checkins", Some(json!({"company_id": app.company_id})))
        .await
        .expect(200);
    assert_eq!(c["already_checked_in"], true);

    let ledger =
        as_resident(&app, &token, "GET", &format!("/mp/v1/me/points/ledger?company_id={}", app.company_id), None)
            .await
            .expect(200);
    assert_eq!(ledger["totals"]["credited"], 15);
    assert_eq!(ledger["items"][0]["source"], "checkin");
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn login_codes_are_single_use_and_bad_ones_fail_cleanly() {
    let app = spawn_oa_app(None, 300).await;
    let user = app.mock.add_user();
    let code = app.mock.login_code(&user);
    app.post("", "/mp/v1/sessions", json!({ "code": code })).await.expect(201);
    let rows = "SELECT (SELECT COUNT(*) FROM residents) + (SELECT COUNT(*) FROM mp_sessions)";
    let before = app.count(rows).await;
    let reused = app.post("", "/mp/v1/sessions", json!({ "code": code })).await;
    assert_eq!((reused.status.as_u16(), reused.code()), (401, "unauthorized"));
    assert!(reused.body["message"].as_str().unwrap().contains("wx.login"));
    app.post("", "/mp/v1/sessions", json!({ "code": "not-a-real-code" })).await.expect(401);
    app.post("", "/mp/v1/sessions", json!({ "code": "" })).await.expect(400);
    app.post("", "/mp/v1/sessions", json!({ "code": "x", "openid": "smuggled" })).await.expect(400);
    // An expired code.
    let late = app.mock.login_code(&user);
    app.mock.advance_clock(301);
    app.post("", "/mp/v1/sessions", json!({ "code": late })).await.expect(401);
    // A user WeChat blocked.
    let risky = app.mock.add_user();
    app.mock.block_user(&risky.unionid);
    let code = app.mock.login_code(&risky);
    let a = app.post("", "/mp/v1/sessions", json!({ "code": code })).await;
    assert_eq!(a.status.as_u16(), 403);
    // WeChat busy.
    app.mock.inject_fault(wechat_mock::Fault::errcode("/sns/jscode2session", -1, 1)).expect("a valid fault");
    let code = app.mock.login_code(&user);
    let a = app.post("", "/mp/v1/sessions", json!({ "code": code })).await;
    assert_eq!((a.status.as_u16(), a.code()), (503, "upstream_unavailable"));
    assert_eq!(app.count(rows).await, before, "a failed login wrote something");
}

#[tokio::test]
async fn sessions_refresh_once_and_end_at_logout() {
    let app = spawn_oa_app(None, 300).await;
    let user = app.mock.add_user();
    let code = app.mock.login_code(&user);
    let s = app.post("", "/mp/v1/sessions", json!({ "code": code })).await.expect(201);
    let (token, refresh) = (s["access_token"].as_str().unwrap(), s["refresh_token"].as_str().unwrap());
    assert_eq!(s["token_type"], "Bearer");
    assert!(s["expires_in"].as_i64().unwrap() > 7000);
    let stored: i64 = app
        .count(&format!("SELECT COUNT(*) FROM mp_sessions WHERE token_hash = '{token}' OR refresh_hash = '{refresh}'"))
        .await;
    assert_eq!(stored, 0, "tokens are stored hashed");
    assert!(!s.to_string().contains("session_key"));

    let s2 = app.post("", "/mp/v1/sessions/refresh", json!({ "refresh_token": refresh })).await.expect(201);
    assert_eq!(s2["resident_id"], s["resident_id"]);
    as_resident(&app, token, "GET", "/mp/v1/me", None).await.expect(401);
    app.post("", "/mp/v1/sessions/refresh", json!({ "refresh_token": refresh })).await.expect(401);
    let token2 = s2["access_token"].as_str().unwrap();
    as_resident(&app, token2, "GET", "/mp/v1/me", None).await.expect(200);
    as_resident(&app, token2, "DELETE", "/mp/v1/sessions/current", None).await.expect(204);
    as_resident(&app, token2, "GET", "/mp/v1/me", None).await.expect(401);
}

#[tokio::test]
async fn a_logout_on_one_instance_ends_the_session_on_the_others_within_a_moment() {
    let app = spawn_oa_app(None, 300).await;
    let second = app.another_instance().await;
    let user = app.mock.add_user();
    let token = app.login(&user).await;
    let me_on_second = |token: String| {
        let (client, url) = (app.client.clone(), format!("{}/mp/v1/me", second.address));
        async move { client.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    // The second instance has seen (and now keeps) the session…
    assert_eq!(me_on_second(token.clone()).await, 200);
    as_resident(&app, &token, "DELETE", "/mp/v1/sessions/current", None).await.expect(204);
    // …and learns of the logout on the first without being told.
    let started = std::time::Instant::now();
    eventually("the other instance refuses the token", || {
        let status = me_on_second(token.clone());
        async move { status.await == 401 }
    })
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    // A restarted instance loads live sessions only.
    let third = app.another_instance().await;
    let url = format!("{}/mp/v1/me", third.address);
    assert_eq!(app.client.get(url).bearer_auth(&token).send().await.unwrap().status().as_u16(), 401);
}

#[tokio::test]
async fn a_roster_match_binds_at_once_and_a_mismatch_waits_for_review() {
    let app = spawn_oa_app(None, 300).await;
    let community = app.community_with_roster().await;
    let (zhang, li) = (app.mock.add_user(), app.mock.add_user());
    let (tz, tl) = (app.login(&zhang).await, app.login(&li).await);

    let b = as_resident(
        &app,
        &tz,
        "POST",
        "/mp/v1/me/bindings",
        Some(bind_101(community, "张三", "138 0013 8000", "owner")),
    )
    .await
    .expect(201);
    assert_eq!((b["state"].as_str(), b["verified_by"].as_str()), (Some("verified"), Some("roster")));
    assert_eq!(b["room_label"], "1-1-101");
    // Same room again: one open binding per resident per room.
    let a =
        as_resident(&app, &tz, "POST", "/mp/v1/me/bindings", Some(bind_101(community, "张三", "13800138000", "owner")))
            .await;
    assert_eq!((a.status.as_u16(), a.code()), (409, "binding_exists"));

    // No roster match: pending; the operator rejects it with a reason the resident sees.
    let p = as_resident(
        &app,
        &tl,
        "POST",
        "/mp/v1/me/bindings",
        Some(bind_101(community, "李四", "13900139000", "tenant")),
    )
    .await
    .expect(201);
    assert_eq!(p["state"], "pending");
    let operator = app.create_key(&app.root_key, community, "operator").await;
    let queue =
        app.get(&operator, &format!("/admin/v1/bindings?state=pending&community_id={community}")).await.expect(200);
    assert_eq!(queue["page"]["total"], 1);
    let id = p["id"].as_i64().unwrap();
    let before = app.fingerprint().await;
    app.post(&operator, &format!("/admin/v1/bindings/{id}/reject"), json!({})).await.expect(400);
    let rejected = app
        .post(&operator, &format!("/admin/v1/bindings/{id}/reject"), json!({"reason": "租户请提供租赁合同"}))
        .await
        .expect(200);
    assert_eq!(rejected["state"], "rejected");
    let after = app.fingerprint().await;
    // Only the audit log moved: rooms, roster, orgs and keys are as they were.
    assert_eq!(before[..4], after[..4]);
    assert_eq!(after[4].1, before[4].1 + 1);
    let mine = as_resident(&app, &tl, "GET", "/mp/v1/me/bindings", None).await.expect(200);
    assert_eq!(
        (mine["items"][0]["state"].as_str(), mine["items"][0]["reason"].as_str()),
        (Some("rejected"), Some("租户请提供租赁合同"))
    );
    app.post(&operator, &format!("/admin/v1/bindings/{id}/approve"), json!({})).await.expect(409);

    // Asking again, and this time approved.
    let p = as_resident(
        &app,
        &tl,
        "POST",
        "/mp/v1/me/bindings",
        Some(bind_101(community, "李四", "13900139000", "tenant")),
    )
    .await
    .expect(201);
    let id2 = p["id"].as_i64().unwrap();
    let ok = app.post(&operator, &format!("/admin/v1/bindings/{id2}/approve"), json!({})).await.expect(200);
    assert_eq!((ok["state"].as_str(), ok["verified_by"].as_str()), (Some("verified"), Some("operator")));
    let ended =
        app.post(&operator, &format!("/admin/v1/bindings/{id2}/end"), json!({"reason": "已退租"})).await.expect(200);
    assert_eq!(ended["state"], "ended");

    let log = app.get(&app.root_key, "/admin/v1/audit-log?target_type=binding").await.expect(200);
    let actions: Vec<&str> = log["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["binding.end", "binding.approve", "binding.reject"]);
    assert!(
        log["items"][2]["before"]["state"] == "pending" && log["items"][2]["after"]["reason"] == "租户请提供租赁合同"
    );

    // Another company's operator sees none of it.
    let other = app.create_org(&app.root_key, 1, "company", "Other").await;
    let outsider = app.create_key(&app.root_key, other, "admin").await;
    assert_eq!(app.get(&outsider, "/admin/v1/bindings").await.expect(200)["page"]["total"], 0);
    app.post(&outsider, &format!("/admin/v1/bindings/{id2}/approve"), json!({})).await.expect(404);
    let viewer = app.create_key(&app.root_key, community, "viewer").await;
    app.post(&viewer, &format!("/admin/v1/bindings/{id2}/end"), json!({"reason": "x"})).await.expect(403);
}

#[tokio::test]
async fn an_owner_invites_family_and_ends_their_binding() {
    let app = spawn_oa_app(None, 300).await;
    let community = app.community_with_roster().await;
    let (owner, kid, stranger) = (app.mock.add_user(), app.mock.add_user(), app.mock.add_user());
    let (to, tk, ts) = (app.login(&owner).await, app.login(&kid).await, app.login(&stranger).await);
    let ob =
        as_resident(&app, &to, "POST", "/mp/v1/me/bindings", Some(bind_101(community, "张三", "13800138000", "owner")))
            .await
            .expect(201);
    let ob_id = ob["id"].as_i64().unwrap();

    let a = as_resident(
        &app,
        &to,
        "POST",
        &format!("/mp/v1/me/bindings/{ob_id}/invitations"),
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(a.status.as_u16(), 422);
    let inv = as_resident(
        &app,
        &to,
        "POST",
        &format!("/mp/v1/me/bindings/{ob_id}/invitations"),
        Some(json!({"role": "family"})),
    )
    .await
    .expect(201);
    let code = inv["code"].as_str().unwrap();
    let redeem = json!({"code": code, "name": "张小三", "phone": "13700137000"});
    let a = as_resident(&app, &to, "POST", "/mp/v1/me/binding-invitations/redeem", Some(redeem.clone())).await;
    assert_eq!(a.status.as_u16(), 422, "an owner cannot redeem their own invitation");
    let kb =
        as_resident(&app, &tk, "POST", "/mp/v1/me/binding-invitations/redeem", Some(redeem.clone())).await.expect(201);
    assert_eq!(
        (kb["state"].as_str(), kb["role"].as_str(), kb["verified_by"].as_str()),
        (Some("verified"), Some("family"), Some("owner"))
    );
    assert_eq!(kb["invited_by"], ob_id);
    let again = as_resident(&app, &ts, "POST", "/mp/v1/me/binding-invitations/redeem", Some(redeem)).await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "invitation_used"));

    let members = as_resident(&app, &to, "GET", &format!("/mp/v1/me/bindings/{ob_id}/members"), None).await.expect(200);
    assert_eq!(members["items"].as_array().unwrap().len(), 2);
    // Only the owner manages the room.
    let kb_id = kb["id"].as_i64().unwrap();
    as_resident(&app, &tk, "GET", &format!("/mp/v1/me/bindings/{kb_id}/members"), None).await.expect(403);
    as_resident(&app, &tk, "POST", &format!("/mp/v1/me/bindings/{kb_id}/invitations"), Some(json!({"role": "tenant"})))
        .await
        .expect(403);
    as_resident(&app, &tk, "DELETE", &format!("/mp/v1/me/bindings/{kb_id}/members/{ob_id}"), None).await.expect(403);
    let ended = as_resident(&app, &to, "DELETE", &format!("/mp/v1/me/bindings/{ob_id}/members/{kb_id}"), None)
        .await
        .expect(200);
    assert_eq!(ended["state"], "ended");
    let mine = as_resident(&app, &tk, "GET", "/mp/v1/me/bindings", None).await.expect(200);
    assert_eq!(mine["items"][0]["reason"], "ended by the room's owner");
}

#[tokio::test]
async fn a_room_takes_only_so_many_bindings_even_at_once() {
    let app = spawn_oa_app(None, 300).await;
    let community = app.community_with_roster().await;
    // The cap is 3 open bindings per room (set in spawn_oa_app); eight residents ask at once.
    let mut tokens = Vec::new();
    for _ in 0..8 {
        let u = app.mock.add_user();
        tokens.push(app.login(&u).await);
    }
    let mut runs = tokio::task::JoinSet::new();
    for (i, t) in tokens.iter().enumerate() {
        let req = bearer(app.client.post(app.url("/mp/v1/me/bindings")), t).json(&json!({
            "community_id": community, "building": "1", "unit": "1", "number": "102",
            "role": "tenant", "name": format!("租客{i}"), "phone": format!("1390000000{i}")
        }));
        runs.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let mut statuses = runs.join_all().await;
    statuses.sort();
    assert_eq!(statuses, [201, 201, 201, 409, 409, 409, 409, 409]);
    // One resident pressing five times at once gets one request.
    let u = app.mock.add_user();
    let t = app.login(&u).await;
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let req = bearer(app.client.post(app.url("/mp/v1/me/bindings")), &t).json(&bind_101(
            community,
            "王五",
            "13600136000",
            "family",
        ));
        runs.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let statuses = runs.join_all().await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM bindings WHERE room_id = (SELECT id FROM rooms WHERE number = '101')").await,
        1
    );
}

#[tokio::test]
async fn a_residents_token_reaches_only_their_own_things() {
    let app = spawn_oa_app(None, 300).await;
    let community = app.community_with_roster().await;
    let (a, b) = (app.mock.add_user(), app.mock.add_user());
    let (ta, tb) = (app.login(&a).await, app.login(&b).await);
    let bb =
        as_resident(&app, &tb, "POST", "/mp/v1/me/bindings", Some(bind_101(community, "张三", "13800138000", "owner")))
            .await
            .expect(201);
    let b_id = bb["id"].as_i64().unwrap();
    let before = app.count("SELECT COUNT(*) FROM bindings WHERE state = 'verified'").await;
    for (method, path, body) in [
        ("DELETE", format!("/mp/v1/me/bindings/{b_id}"), None),
        ("POST", format!("/mp/v1/me/bindings/{b_id}/invitations"), Some(json!({"role": "family"}))),
        ("GET", format!("/mp/v1/me/bindings/{b_id}/members"), None),
        ("DELETE", format!("/mp/v1/me/bindings/{b_id}/members/{b_id}"), None),
    ] {
        let r = as_resident(&app, &ta, method, &path, body).await;
        assert_eq!(r.status.as_u16(), 404, "{method} {path}: {}", r.body);
    }
    let mine = as_resident(&app, &ta, "GET", "/mp/v1/me/bindings", None).await.expect(200);
    assert_eq!(mine["items"].as_array().unwrap().len(), 0);
    let me = as_resident(&app, &ta, "GET", "/mp/v1/me", None).await.expect(200);
    assert_ne!(me["resident_id"], bb["resident_id"]);
    // Smuggling an id in the body is refused, not obeyed.
    let smuggled = json!({"community_id": community, "building": "1", "unit": "1", "number": "102", "role": "owner",
                          "name": "x", "phone": "13800138001", "resident_id": bb["resident_id"]});
    as_resident(&app, &ta, "POST", "/mp/v1/me/bindings", Some(smuggled)).await.expect(400);
    assert_eq!(app.count("SELECT COUNT(*) FROM bindings WHERE state = 'verified'").await, before);

    // Without a session, or with an operator's key, no /mp/v1 route answers.
    let spec: Value = serde_json::from_str(&linli::api::openapi_service().spec()).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/mp/v1") || path == "/mp/v1/sessions" || path == "/mp/v1/sessions/refresh" {
            continue;
        }
        let concrete =
            path.replace("{binding_id}", &b_id.to_string()).replace("{member_binding_id}", &b_id.to_string());
        for method in item.as_object().unwrap().keys() {
            for token in
                ["", app.root_key.as_str(), "ms_0000000000000000000000000000000000000000000000000000000000000000"]
            {
                let req =
                    app.client.request(method.to_uppercase().parse().unwrap(), app.url(&concrete)).json(&json!({}));
                let r = app.send(if token.is_empty() { req } else { bearer(req, token) }).await;
                assert_eq!(r.status.as_u16(), 401, "{method} {path} with {token:?}: {}", r.body);
            }
        }
    }
}

#[tokio::test]
async fn a_phone_confirmed_through_wechat_matches_the_roster() {
    let app = spawn_oa_app(None, 300).await;
    let community = app.community_with_roster().await;
    let user = app
        .mock
        .add_user_with(&wechat_mock::UserOptions { phone: Some("13800138000".into()), ..Default::default() })
        .unwrap();
    let token = app.login(&user).await;
    let code = app.mock.phone_code(&user);
    let p = as_resident(&app, &token, "POST", "/mp/v1/me/phone", Some(json!({ "code": code }))).await.expect(200);
    assert_eq!(p["phone"], "13800138000");
    as_resident(&app, &token, "POST", "/mp/v1/me/phone", Some(json!({ "code": code }))).await.expect(422);
    let body = json!({"community_id": community, "building": "1", "unit": "1", "number": "101", "role": "owner", "name": "张三"});
    let b = as_resident(&app, &token, "POST", "/mp/v1/me/bindings", Some(body)).await.expect(201);
    assert_eq!(b["state"], "verified");
    let communities = as_resident(&app, &token, "GET", "/mp/v1/communities?q=阳光", None).await.expect(200);
    assert_eq!(communities["items"][0]["id"], community);
}
