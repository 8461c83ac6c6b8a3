//! Automatic coupon issuance: once per trigger, in the trigger's own transaction.

use serde_json::{json, Value};
use wechat_mock::PushMode;

use crate::helpers::{bearer, spawn_oa_app, OaApp};

async fn template(app: &OaApp) -> i64 {
    let terms = json!({
        "category": "新客", "title": "新人礼", "kind": "cash", "amount_off": 500, "valid_days": 7,
        "claim_from": "2020-01-01T00:00:00Z", "claim_until": "2021-01-01T00:00:00Z",
        "stock_total": 100, "audience": "new_customers"
    });
    app.post(&app.root_key, "/admin/v1/coupon-templates", json!({"owner_org_id": app.company_id, "terms": terms}))
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap()
}

async fn rule(app: &OaApp, body: Value) -> Value {
    app.post(&app.root_key, "/admin/v1/coupon-rules", body).await.expect(201)
}

async fn my_coupons(app: &OaApp, token: &str) -> usize {
    let mine = app.send(bearer(app.client.get(app.url("/mp/v1/me/coupons")), token)).await.expect(200);
    mine["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_first_follow_gives_the_new_customer_coupon_once() {
    let app = spawn_oa_app(None, 300).await;
    let t = template(&app).await;
    rule(&app, json!({"template_id": t, "trigger": "first_follow"})).await;
    let pusher = app.pusher(PushMode::Safe);
    let u = app.mock.add_user();
    app.say(&pusher, &pusher.follow(&u.oa_openid)).await;
    app.mock.advance_clock(5);
    app.say(&pusher, &pusher.unfollow(&u.oa_openid)).await;
    app.mock.advance_clock(5);
    app.say(&pusher, &pusher.follow(&u.oa_openid)).await;
    let token = app.login(&u).await;
    assert_eq!(my_coupons(&app, &token).await, 1, "the claim window is closed, yet the rule issues; once");
    let a = app
        .post(
            &app.root_key,
            "/admin/v1/coupon-rules",
            json!({"template_id": t, "trigger": "first_follow", "window_days": 3}),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "invalid_rule"));
}

#[tokio::test]
async fn a_first_verified_home_gives_its_coupon_once() {
    let app = spawn_oa_app(None, 300).await;
    let community = app.community_with_roster().await;
    let t = template(&app).await;
    let r = rule(&app, json!({"template_id": t, "trigger": "first_binding"})).await;
    let u = app.mock.add_user();
    let token = app.login(&u).await;
    let bind = |number: &str, name: &str, phone: &str, role: &str| json!({"community_id": community, "building": "1", "unit": "1", "number": number, "role": role, "name": name, "phone": phone});
    let b = app
        .send(bearer(app.client.post(app.url("/mp/v1/me/bindings")), &token).json(&bind(
            "101",
            "张三",
            "13800138000",
            "owner",
        )))
        .await
        .expect(201);
    assert_eq!(b["state"], "verified");
    assert_eq!(my_coupons(&app, &token).await, 1);
    // A second home (approved by an operator) is not a first.
    let p = app
        .send(bearer(app.client.post(app.url("/mp/v1/me/bindings")), &token).json(&bind(
            "102",
            "张三",
            "13800138000",
            "tenant",
        )))
        .await
        .expect(201);
    app.post(&app.root_key, &format!("/admin/v1/bindings/{}/approve", p["id"]), json!({})).await.expect(200);
    assert_eq!(my_coupons(&app, &token).await, 1);
    let rules =
        app.get(&app.root_key, &format!("/admin/v1/companies/{}/coupon-rules", app.company_id)).await.expect(200);
    assert_eq!(rules["items"][0]["trigger"], "first_binding");
    let off =
        app.post(&app.root_key, &format!("/admin/v1/coupon-rules/{}/deactivate", r["id"]), json!({})).await.expect(200);
    assert_eq!(off["active"], false);
}

#[tokio::test]
async fn purchases_that_make_a_repeat_customer_earn_a_coupon_each() {
    let app = spawn_oa_app(None, 300).await;
    let community = app.create_org(&app.root_key, app.company_id, "community", "阳光花园").await;
    let merchant = app.create_org(&app.root_key, community, "merchant", "鲜果屋").await;
    let key = app.create_key(&app.root_key, merchant, "operator").await;
    let t = template(&app).await;
    rule(&app, json!({"template_id": t, "trigger": "repeat_purchase", "min_purchases": 1, "max_purchases": 2, "window_days": 30})).await;
    let u = app.mock.add_user();
    let token = app.login(&u).await;
    let order = |no: &str, code: &str| {
        json!({"order_no": no, "member_code": code, "amount": 1000, "items": [{"name": "苹果", "category": "fruit", "amount": 1000}],
               "ordered_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap()})
    };
    let mut seen = Vec::new();
    for no in ["E-1", "E-2", "E-3"] {
        let code = app.send(bearer(app.client.post(app.url("/mp/v1/me/member-code")), &token)).await.expect(200)
            ["code"]
            .as_str()
            .unwrap()
            .to_owned();
        app.post(&key, "/merchant/v1/orders", order(no, &code)).await.expect(201);
        seen.push(my_coupons(&app, &token).await);
        // The same order reported again issues nothing more.
        app.post(&key, "/merchant/v1/orders", order(no, &code)).await.expect(200);
    }
    assert_eq!(seen, [1, 2, 2], "coupons after the 1st and 2nd purchase in 30 days, not the 3rd");
    assert_eq!(app.count("SELECT COUNT(*) FROM coupon_issuances").await, 2);
}
