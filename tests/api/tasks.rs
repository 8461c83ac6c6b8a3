//! Tasks end to end: an operator publishes, residents accept and invite through WeChat QR codes
//! and mini-program links, neighbours bind or shop, and the reward arrives exactly once.

use serde_json::{json, Value};
use wechat_mock::PushMode;

use crate::helpers::{bearer, eventually, spawn_oa_app_with, Answer, OaApp};

/// A resident who follows the account (optionally through a QR ticket) and is logged in.
struct Person {
    user: wechat_mock::MockUser,
    token: String,
    id: i64,
}

async fn person(app: &OaApp, ticket: Option<&str>) -> Person {
    let pusher = app.pusher(PushMode::Safe);
    let user = app.mock.add_user();
    let push = match ticket {
        Some(t) => pusher.follow_via_ticket(&user.oa_openid, t).expect("a ticket the mock made"),
        None => pusher.follow(&user.oa_openid),
    };
    app.say(&pusher, &push).await;
    let token = app.login(&user).await;
    let me = mp(app, &token, "GET", "/mp/v1/me", None).await.expect(200);
    Person { id: me["resident_id"].as_i64().or_else(|| me["id"].as_i64()).unwrap(), user, token }
}

async fn mp(app: &OaApp, token: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
    let req = match method {
        "GET" => app.client.get(app.url(path)),
        _ => app.client.post(app.url(path)),
    };
    let req = bearer(req, token);
    app.send(match body {
        Some(b) => req.json(&b),
        None => req,
    })
    .await
}

/// A community with rooms 1-1-101 … 1-1-110, and 住户N (1380000000N) on the roster as the owner
/// of room 10N.
async fn community(app: &OaApp) -> i64 {
    let community = app.create_org(&app.root_key, app.company_id, "community", "阳光花园").await;
    let mut rooms = String::from("building,unit,number\n");
    let mut roster = String::from("name,phone,building,unit,number,role\n");
    for n in 1..=10 {
        rooms.push_str(&format!("1,1,{}\n", 100 + n));
        roster.push_str(&format!("住户{n},138000000{n:02},1,1,{},owner\n", 100 + n));
    }
    app.post_raw(&app.root_key, &format!("/admin/v1/communities/{community}/rooms/import"), "text/csv", rooms)
        .await
        .expect(200);
    app.post_raw(&app.root_key, &format!("/admin/v1/communities/{community}/roster/import"), "text/csv", roster)
        .await
        .expect(200);
    community
}

/// Binds the person to room 10`n` as the roster's owner: verified at once.
async fn bind(app: &OaApp, p: &Person, community: i64, n: u32) -> Answer {
    let body = json!({
        "community_id": community, "building": "1", "unit": "1", "number": format!("{}", 100 + n),
        "role": "owner", "name": format!("住户{n}"), "phone": format!("138000000{n:02}")
    });
    mp(app, &p.token, "POST", "/mp/v1/me/bindings", Some(body)).await
}

fn window() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let f = &time::format_description::well_known::Rfc3339;
    ((now - time::Duration::minutes(1)).format(f).unwrap(), (now + time::Duration::days(7)).format(f).unwrap())
}

async fn publish(app: &OaApp, owner: i64, terms: Value) -> i64 {
    let (starts, ends) = window();
    let mut t = json!({ "theme": "邀请邻居绑定房产", "mode": "open", "category": "invite_bind", "target": 3,
        "reward_kind": "points", "reward_amount": 50, "starts_at": starts, "ends_at": ends });
    for (k, v) in terms.as_object().unwrap() {
        t[k] = v.clone();
    }
    let a = app.post(&app.root_key, "/admin/v1/tasks", json!({ "owner_org_id": owner, "terms": t })).await.expect(201);
    a["id"].as_i64().unwrap()
}

async fn task_points(app: &OaApp, resident: i64) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM points_ledger WHERE resident_id = $1 AND source = 'task'",
    )
    .bind(resident)
    .fetch_one(app.db.reader())
    .await
    .unwrap();
    n
}

async fn spawn() -> OaApp {
    spawn_oa_app_with(|s| {
        s.wechat.mp_task_template_id = Some(wechat_mock::MP_TASK_TEMPLATE_ID.to_owned());
        s.message_interval = std::time::Duration::from_millis(20);
    })
    .await
}

#[tokio::test]
async fn three_neighbours_through_a_qr_code_bring_the_reward_once() {
    let app = spawn().await;
    let community = community(&app).await;
    let inviter = person(&app, None).await;
    bind(&app, &inviter, community, 1).await.expect(201);
    app.mock.accept_subscription(&inviter.user.mp_openid, wechat_mock::MP_TASK_TEMPLATE_ID, 5).unwrap();
    let task = publish(&app, app.company_id, json!({})).await;

    let open = mp(&app, &inviter.token, "GET", "/mp/v1/tasks", None).await.expect(200);
    assert!(open["items"].as_array().unwrap().iter().any(|t| t["task"]["id"] == task && t["mine"] == false));
    mp(&app, &inviter.token, "POST", &format!("/mp/v1/tasks/{task}/accept"), None).await.expect(200);
    let inv = mp(&app, &inviter.token, "GET", &format!("/mp/v1/me/tasks/{task}/invitation"), None).await.expect(200);
    let ticket = inv["qr_code"]["ticket"].as_str().unwrap().to_owned();
    assert_eq!(app.mock.qr_scene(&ticket).as_deref(), inv["scene"].as_str());
    // Asking again gives the same code: WeChat is not asked twice.
    let again = mp(&app, &inviter.token, "GET", &format!("/mp/v1/me/tasks/{task}/invitation"), None).await.expect(200);
    assert_eq!(again["qr_code"]["ticket"], ticket.as_str());

    // Three neighbours scan it, follow, log in and bind to their own homes.
    let mut neighbours = Vec::new();
    for n in 2..=4 {
        let p = person(&app, Some(&ticket)).await;
        bind(&app, &p, community, n).await.expect(201);
        neighbours.push(p);
    }
    assert_eq!(task_points(&app, inviter.id).await, 50);
    let mine = mp(&app, &inviter.token, "GET", "/mp/v1/me/tasks", None).await.expect(200);
    assert_eq!(mine["items"][0]["counted"], 3);
    assert_eq!(mine["items"][0]["rounds"], 1);
    assert_eq!(mine["items"][0]["to_next_reward"], 0);
    let t = app.get(&app.root_key, &format!("/admin/v1/tasks/{task}")).await.expect(200);
    assert_eq!(t["figures"]["accepted"], 1);
    assert_eq!(t["figures"]["invitations"], 3);
    assert_eq!(t["figures"]["completed"], 1);
    assert_eq!(t["figures"]["rewards_paid"], 50);
    // The list page shows the same figures (one query for the page).
    let listed = app.get(&app.root_key, "/admin/v1/tasks?page_size=200").await.expect(200);
    let item = listed["items"].as_array().unwrap().iter().find(|i| i["id"] == task).cloned();
    assert_eq!(item.map(|i| i["figures"].clone()), Some(t["figures"].clone()));
    // A fourth neighbour after the only round: counted, no second reward.
    let fourth = person(&app, Some(&ticket)).await;
    bind(&app, &fourth, community, 5).await.expect(201);
    assert_eq!(task_points(&app, inviter.id).await, 50);
    // The inviter is told once, through the mini-program.
    eventually("the reward message is sent", || async {
        app.mock.subscribe_messages().iter().any(|m| m.touser == inviter.user.mp_openid)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(app.mock.subscribe_messages().len(), 1);
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn self_invites_old_neighbours_and_second_attributions_are_refused() {
    let app = spawn().await;
    let community = community(&app).await;
    let inviter = person(&app, None).await;
    let other_inviter = person(&app, None).await;
    let task = publish(&app, app.company_id, json!({ "target": 1 })).await;
    for p in [&inviter, &other_inviter] {
        mp(&app, &p.token, "POST", &format!("/mp/v1/tasks/{task}/accept"), None).await.expect(200);
    }
    let scene_of = |p: &Person| {
        let app = &app;
        let token = p.token.clone();
        async move {
            let inv = mp(app, &token, "GET", &format!("/mp/v1/me/tasks/{task}/invitation"), None).await.expect(200);
            inv["scene"].as_str().unwrap().to_owned()
        }
    };
    let scene = scene_of(&inviter).await;
    let other_scene = scene_of(&other_inviter).await;
    async fn claim(app: &OaApp, p: &Person, scene: &str) -> Answer {
        mp(app, &p.token, "POST", "/mp/v1/invitations", Some(json!({ "scene": scene }))).await
    }

    let me_again = claim(&app, &inviter, &scene).await;
    assert_eq!((me_again.status.as_u16(), me_again.code()), (409, "self_invite"));
    let old = person(&app, None).await;
    bind(&app, &old, community, 2).await.expect(201);
    let refused = claim(&app, &old, &scene).await;
    assert_eq!((refused.status.as_u16(), refused.code()), (409, "already_bound"));
    let new = person(&app, None).await;
    claim(&app, &new, &scene).await.expect(201);
    let twice = claim(&app, &new, &scene).await;
    assert_eq!((twice.status.as_u16(), twice.code()), (409, "already_attributed"));
    let stolen = claim(&app, &new, &other_scene).await;
    assert_eq!((stolen.status.as_u16(), stolen.code()), (409, "already_attributed"));
    let forged = claim(&app, &new, &format!("t{task}_ZZZZZZZZ")).await;
    assert_eq!(forged.status, 404);
    assert_eq!(app.count("SELECT COUNT(*) FROM task_invitations").await, 1);

    // The same household does not count: a neighbour joining the inviter's own room as family.
    bind(&app, &inviter, community, 3).await.expect(201);
    let family = person(&app, None).await;
    let fam_scene = scene;
    claim(&app, &family, &fam_scene).await;
    let invite = mp(&app, &inviter.token, "GET", "/mp/v1/me/bindings", None).await.expect(200);
    let binding = invite["items"][0]["id"].as_i64().unwrap();
    let code = mp(
        &app,
        &inviter.token,
        "POST",
        &format!("/mp/v1/me/bindings/{binding}/invitations"),
        Some(json!({ "role": "family" })),
    )
    .await
    .expect(201);
    mp(
        &app,
        &family.token,
        "POST",
        "/mp/v1/me/binding-invitations/redeem",
        Some(json!({ "code": code["code"], "name": "家人", "phone": "13900000001" })),
    )
    .await
    .expect(201);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM task_invitations WHERE state = 'rejected' AND reason = 'same_household'").await,
        1
    );
    // The genuinely new neighbour binds their own home: counted, rewarded.
    bind(&app, &new, community, 4).await.expect(201);
    assert_eq!(task_points(&app, inviter.id).await, 50);
    assert_eq!(task_points(&app, other_inviter.id).await, 0);
}

#[tokio::test]
async fn concurrent_completions_pay_each_round_once_and_the_daily_cap_holds() {
    let app = spawn().await;
    let community = community(&app).await;
    let inviter = person(&app, None).await;
    let task = publish(&app, app.company_id, json!({ "target": 2, "max_rounds": 2, "daily_cap": 5 })).await;
    mp(&app, &inviter.token, "POST", &format!("/mp/v1/tasks/{task}/accept"), None).await.expect(200);
    let inv = mp(&app, &inviter.token, "GET", &format!("/mp/v1/me/tasks/{task}/invitation"), None).await.expect(200);
    let scene = inv["scene"].as_str().unwrap().to_owned();
    let mut invitees = Vec::new();
    for _ in 0..6 {
        let p = person(&app, None).await;
        mp(&app, &p.token, "POST", "/mp/v1/invitations", Some(json!({ "scene": scene }))).await.expect(201);
        invitees.push(p);
    }
    // All six verify at once: two rounds of two, capped at five counted today.
    let mut binds = tokio::task::JoinSet::new();
    for (i, p) in invitees.iter().enumerate() {
        let (client, url, token) = (app.client.clone(), app.url("/mp/v1/me/bindings"), p.token.clone());
        let n = i as u32 + 2;
        binds.spawn(async move {
            let body = json!({ "community_id": community, "building": "1", "unit": "1", "number": format!("{}", 100 + n),
                "role": "owner", "name": format!("住户{n}"), "phone": format!("138000000{n:02}") });
            bearer(client.post(url), &token).json(&body).send().await.unwrap().status().as_u16()
        });
    }
    assert!(binds.join_all().await.iter().all(|s| *s == 201));
    assert_eq!(app.count("SELECT COUNT(*) FROM task_invitations WHERE state = 'counted'").await, 5);
    assert_eq!(app.count("SELECT COUNT(*) FROM task_invitations WHERE reason = 'daily_cap'").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM task_rewards").await, 2);
    assert_eq!(task_points(&app, inviter.id).await, 100);
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn an_assigned_task_reaches_only_its_assignees() {
    let app = spawn().await;
    let community = community(&app).await;
    let chosen = person(&app, None).await;
    let bystander = person(&app, None).await;
    bind(&app, &chosen, community, 1).await.expect(201);
    bind(&app, &bystander, community, 2).await.expect(201);
    let task = publish(&app, app.company_id, json!({ "mode": "assigned" })).await;
    // Only verified residents under the owner can be assigned; a stranger is refused.
    let stranger = person(&app, None).await;
    let bad = app
        .post(&app.root_key, &format!("/admin/v1/tasks/{task}/assignments"), json!({ "resident_ids": [stranger.id] }))
        .await;
    assert_eq!(bad.status, 422);
    let a = app
        .post(&app.root_key, &format!("/admin/v1/tasks/{task}/assignments"), json!({ "resident_ids": [chosen.id] }))
        .await
        .expect(200);
    assert_eq!(a["assigned"], 1);
    let seen = mp(&app, &chosen.token, "GET", "/mp/v1/tasks", None).await.expect(200);
    assert!(seen["items"].as_array().unwrap().iter().any(|t| t["task"]["id"] == task && t["mine"] == true));
    let unseen = mp(&app, &bystander.token, "GET", "/mp/v1/tasks", None).await.expect(200);
    assert!(!unseen["items"].as_array().unwrap().iter().any(|t| t["task"]["id"] == task));
    assert_eq!(mp(&app, &bystander.token, "POST", &format!("/mp/v1/tasks/{task}/accept"), None).await.status, 404);
    assert_eq!(
        mp(&app, &bystander.token, "GET", &format!("/mp/v1/me/tasks/{task}/invitation"), None).await.status,
        404
    );
    mp(&app, &chosen.token, "GET", &format!("/mp/v1/me/tasks/{task}/invitation"), None).await.expect(200);
    // Assigning a whole community reaches its other verified residents too.
    let all = app
        .post(&app.root_key, &format!("/admin/v1/tasks/{task}/assignments"), json!({ "community_id": community }))
        .await
        .expect(200);
    assert_eq!(all["assigned"], 1);
    // Once held, the terms are locked, and the task cannot be deleted.
    let (starts, ends) = window();
    let locked = app
        .send(app.client.put(app.url(&format!("/admin/v1/tasks/{task}"))).header("X-Api-Key", &app.root_key).json(
            &json!({
            "theme": "改", "mode": "assigned", "category": "invite_bind", "target": 5, "reward_kind": "points",
            "reward_amount": 50, "starts_at": starts, "ends_at": ends }),
        ))
        .await;
    assert_eq!((locked.status.as_u16(), locked.code()), (409, "task_terms_locked"));
    assert!(locked.body["message"].as_str().unwrap().contains("target"));
    assert_eq!(app.delete(&app.root_key, &format!("/admin/v1/tasks/{task}")).await.status, 409);
}

#[tokio::test]
async fn a_shop_task_counts_first_purchases_at_its_merchant() {
    let app = spawn().await;
    let community = community(&app).await;
    let shop = app.create_org(&app.root_key, community, "merchant", "邻里果蔬").await;
    let shop_key = app.create_key(&app.root_key, shop, "operator").await;
    let inviter = person(&app, None).await;
    let task = publish(
        &app,
        app.company_id,
        json!({ "category": "invite_shop", "merchant_id": shop, "target": 1, "reward_kind": "balance", "reward_amount": 500 }),
    )
    .await;
    mp(&app, &inviter.token, "POST", &format!("/mp/v1/tasks/{task}/accept"), None).await.expect(200);
    let inv = mp(&app, &inviter.token, "GET", &format!("/mp/v1/me/tasks/{task}/invitation"), None).await.expect(200);
    let scene = inv["scene"].as_str().unwrap().to_owned();
    let buy = |p: &Person, no: &'static str| {
        let (app, token, key) = (&app, p.token.clone(), shop_key.clone());
        async move {
            let code = mp(app, &token, "POST", "/mp/v1/me/member-code", None).await.expect(200);
            let at = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
            app.post(
                &key,
                "/merchant/v1/orders",
                json!({ "order_no": no, "member_code": code["code"], "amount": 3000,
                "items": [{"name": "苹果", "category": "fruit", "amount": 3000}], "ordered_at": at }),
            )
            .await
            .expect(201);
        }
    };
    // An old customer is refused; a new one counts on their first purchase.
    let old = person(&app, None).await;
    buy(&old, "S-1").await;
    let refused = mp(&app, &old.token, "POST", "/mp/v1/invitations", Some(json!({ "scene": scene }))).await;
    assert_eq!((refused.status.as_u16(), refused.code()), (409, "already_customer"));
    let new = person(&app, None).await;
    mp(&app, &new.token, "POST", "/mp/v1/invitations", Some(json!({ "scene": scene }))).await.expect(201);
    buy(&new, "S-2").await;
    buy(&new, "S-3").await;
    let wallet = mp(&app, &inviter.token, "GET", "/mp/v1/me/wallet", None).await.expect(200);
    assert_eq!(wallet["balance_fen"], 500);
    assert_eq!(app.count("SELECT COUNT(*) FROM task_rewards").await, 1);
}

#[tokio::test]
async fn an_operator_of_another_company_cannot_reach_a_task() {
    let app = spawn().await;
    let task = publish(&app, app.company_id, json!({})).await;
    let other = app.create_org(&app.root_key, 1, "company", "别家物业").await;
    let key = app.create_key(&app.root_key, other, "admin").await;
    assert_eq!(app.get(&key, &format!("/admin/v1/tasks/{task}")).await.status, 404);
    assert_eq!(app.post(&key, &format!("/admin/v1/tasks/{task}/end"), json!({})).await.status, 404);
    assert_eq!(app.delete(&key, &format!("/admin/v1/tasks/{task}")).await.status, 404);
    assert_eq!(app.get(&key, "/admin/v1/tasks").await.expect(200)["page"]["total"], 0);
    let t = app.get(&app.root_key, &format!("/admin/v1/tasks/{task}")).await.expect(200);
    assert_eq!(t["state"], "active");
}

#[tokio::test]
async fn a_red_packet_reward_goes_through_the_payout_outbox() {
    let app = crate::helpers::spawn_pay_app(|_| {}).await;
    let community = community(&app).await;
    let inviter = person(&app, None).await;
    let task = publish(
        &app,
        app.company_id,
        json!({ "target": 1, "reward_kind": "red_packet", "reward_channel": "cash_red_packet", "reward_amount": 188 }),
    )
    .await;
    mp(&app, &inviter.token, "POST", &format!("/mp/v1/tasks/{task}/accept"), None).await.expect(200);
    let inv = mp(&app, &inviter.token, "GET", &format!("/mp/v1/me/tasks/{task}/invitation"), None).await.expect(200);
    let invitee = person(&app, Some(inv["qr_code"]["ticket"].as_str().unwrap())).await;
    bind(&app, &invitee, community, 2).await.expect(201);
    eventually("the reward red packet is sent", || async { app.mock.paid_total(&inviter.user.oa_openid) == 188 }).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payouts WHERE source = 'task'").await, 1);
    assert_eq!(app.mock.payments().len(), 1);
}

/// A transfer reward is queued like every other payout: with the deployment's transfer scene
/// (`LINLI_PAY_TRANSFER_SCENE_ID`), to the configured mini-program's openid, and the dispatcher
/// is woken to send it.
#[tokio::test]
async fn a_transfer_reward_takes_the_configured_scene_like_every_payout() {
    let app = crate::helpers::spawn_pay_app(|s| s.pay.payouts.transfer_scene_id = "1005".into()).await;
    let community = community(&app).await;
    let inviter = person(&app, None).await;
    let task = publish(
        &app,
        app.company_id,
        json!({ "target": 1, "reward_kind": "red_packet", "reward_channel": "transfer", "reward_amount": 166 }),
    )
    .await;
    mp(&app, &inviter.token, "POST", &format!("/mp/v1/tasks/{task}/accept"), None).await.expect(200);
    let inv = mp(&app, &inviter.token, "GET", &format!("/mp/v1/me/tasks/{task}/invitation"), None).await.expect(200);
    let invitee = person(&app, Some(inv["qr_code"]["ticket"].as_str().unwrap())).await;
    bind(&app, &invitee, community, 2).await.expect(201);
    let (display, appid, openid): (String, String, String) =
        sqlx::query_as("SELECT display, appid, openid FROM payouts WHERE source = 'task'")
            .fetch_one(app.db.reader())
            .await
            .unwrap();
    let display: Value = serde_json::from_str(&display).unwrap();
    assert_eq!(display["transfer_scene_id"], "1005", "{display}");
    assert_eq!(openid, inviter.user.mp_openid);
    assert_eq!(Some(appid.as_str()), app.settings.wechat.mp_appid.as_deref());
    eventually("the reward transfer reaches WeChat", || async {
        app.count("SELECT COUNT(*) FROM payouts WHERE source = 'task' AND state = 'awaiting_confirmation'").await == 1
    })
    .await;
}
