//! Merchants: orders with coupons and points, refunds, counter write-offs.

use serde_json::{json, Value};

use crate::helpers::{bearer, spawn_oa_app, Answer, OaApp};

struct Shop {
    merchant: i64,
    key: String,
}

async fn shop(app: &OaApp, name: &str) -> Shop {
    let community = app.create_org(&app.root_key, app.company_id, "community", &format!("{name} 小区")).await;
    let merchant = app.create_org(&app.root_key, community, "merchant", name).await;
    Shop { merchant, key: app.create_key(&app.root_key, merchant, "operator").await }
}

async fn coupon_template(app: &OaApp, owner: i64, min_spend: i64, amount_off: i64, merchants: &[i64]) -> i64 {
    let terms = json!({
        "category": "生鲜", "title": "满减", "kind": "cash", "amount_off": amount_off, "min_spend": min_spend,
        "valid_days": 7, "claim_from": "2020-01-01T00:00:00Z", "claim_until": "2099-01-01T00:00:00Z",
        "stock_total": 100, "per_resident_limit": 5, "audience": "new_customers", "merchant_ids": merchants
    });
    app.post(&app.root_key, "/admin/v1/coupon-templates", json!({"owner_org_id": owner, "terms": terms}))
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap()
}

struct Resident {
    token: String,
}

async fn resident(app: &OaApp) -> Resident {
    let u = app.mock.add_user();
    let token = app.login(&u).await;
    Resident { token }
}

async fn claim(app: &OaApp, r: &Resident, template: i64) -> String {
    let c = app
        .send(bearer(app.client.post(app.url(&format!("/mp/v1/coupons/{template}/claims"))), &r.token))
        .await
        .expect(201);
    c["code"].as_str().unwrap().to_owned()
}

async fn member_code(app: &OaApp, r: &Resident) -> String {
    let c = app.send(bearer(app.client.post(app.url("/mp/v1/me/member-code")), &r.token)).await.expect(200);
    c["code"].as_str().unwrap().to_owned()
}

fn order(no: &str, member_code: &str, coupon: Option<&str>) -> Value {
    let mut o = json!({
        "order_no": no, "member_code": member_code, "amount": 8000,
        "items": [{"name": "苹果", "category": "fruit", "amount": 5000}, {"name": "牛奶", "category": "dairy", "amount": 3000}],
        "ordered_at": "2026-11-20T10:00:00Z"
    });
    // Without a coupon the field is left out: it is not nullable.
    if let Some(code) = coupon {
        o["coupon_code"] = json!(code);
    }
    o
}

fn now_order(no: &str, member_code: &str, coupon: Option<&str>) -> Value {
    let mut o = order(no, member_code, coupon);
    o["ordered_at"] =
        json!(time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap());
    o
}

async fn report(app: &OaApp, shop: &Shop, body: Value) -> Answer {
    app.post(&shop.key, "/merchant/v1/orders", body).await
}

async fn balance(app: &OaApp, r: &Resident) -> i64 {
    let me = app.send(bearer(app.client.get(app.url("/mp/v1/me")), &r.token)).await.expect(200);
    me["points"].as_array().unwrap().first().map_or(0, |p| p["balance"].as_i64().unwrap())
}

#[tokio::test]
async fn an_order_with_a_coupon_earns_points_and_a_refund_reverses_them() {
    let app = spawn_oa_app(None, 300).await;
    let s = shop(&app, "鲜果屋").await;
    let t = coupon_template(&app, app.company_id, 5000, 1000, &[]).await;
    let r = resident(&app).await;
    let code = claim(&app, &r, t).await;
    let mc = member_code(&app, &r).await;

    let o = report(&app, &s, now_order("A-1001", &mc, Some(&code))).await.expect(201);
    assert_eq!((o["discount"].as_i64(), o["paid"].as_i64()), (Some(1000), Some(7000)));
    assert_eq!(o["points"], 140, "70 yuan paid, doubled for a first purchase here");
    assert_eq!(balance(&app, &r).await, 140);
    // Reported twice: the first answer, nothing more.
    let again = report(&app, &s, now_order("A-1001", &mc, Some(&code))).await.expect(200);
    assert_eq!(again["id"], o["id"]);
    assert_eq!(balance(&app, &r).await, 140);
    let fig = app.get(&app.root_key, &format!("/admin/v1/coupon-templates/{t}")).await.expect(200)["figures"].clone();
    assert_eq!((fig["used"].as_i64(), fig["discount_given"].as_i64()), (Some(1), Some(1000)));

    // Half back: half the points.
    let refund = |no: &str, amount: i64| {
        app.post(&s.key, "/merchant/v1/orders/A-1001/refunds", json!({"refund_no": no, "amount": amount}))
    };
    let r1 = refund("R1", 3500).await.expect(201);
    assert_eq!((r1["points_back"].as_i64(), r1["coupon_restored"].as_bool()), (Some(70), Some(false)));
    assert_eq!(refund("R1", 3500).await.expect(201), r1, "a repeated refund number answers the first");
    assert_eq!(refund("R2", 3501).await.code(), "refund_too_large");
    let r2 = refund("R2", 3500).await.expect(201);
    assert_eq!((r2["points_back"].as_i64(), r2["coupon_restored"].as_bool()), (Some(70), Some(true)));
    assert_eq!(balance(&app, &r).await, 0);
    let mine = app.send(bearer(app.client.get(app.url("/mp/v1/me/coupons?state=unused")), &r.token)).await.expect(200);
    assert_eq!(mine["items"][0]["code"], code.as_str(), "the coupon is back");
    let ledger = app
        .get(&app.root_key, &format!("/admin/v1/companies/{}/points/ledger?source=purchase", app.company_id))
        .await
        .expect(200);
    assert_eq!(ledger["totals"], json!({"credited": 140, "debited": 140, "net": 0}));
    assert_eq!(ledger["items"][0]["kind"], "refund");
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn one_coupon_on_twenty_orders_at_once_is_written_off_once() {
    let app = crate::helpers::spawn_oa_app_with(|s| s.db_acquire_timeout = std::time::Duration::from_secs(60)).await;
    let s = shop(&app, "鲜果屋").await;
    let t = coupon_template(&app, app.company_id, 0, 500, &[]).await;
    let r = resident(&app).await;
    let code = claim(&app, &r, t).await;
    let mc = member_code(&app, &r).await;
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..20 {
        let req = app.client.post(app.url("/merchant/v1/orders")).header("X-Api-Key", &s.key).json(&now_order(
            &format!("B-{i}"),
            &mc,
            Some(&code),
        ));
        runs.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let mut statuses = runs.join_all().await;
    statuses.sort();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 19);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM coupons WHERE state = 'used'").await, 1);
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn bad_orders_are_refused_with_the_reason_and_change_nothing() {
    let app = spawn_oa_app(None, 300).await;
    let (s, other) = (shop(&app, "鲜果屋").await, shop(&app, "面包房").await);
    let only_at_s = coupon_template(&app, app.company_id, 5000, 1000, &[s.merchant]).await;
    let big_spend = coupon_template(&app, app.company_id, 9000, 1000, &[]).await;
    let (a, b) = (resident(&app).await, resident(&app).await);
    let a_coupon = claim(&app, &a, only_at_s).await;
    let a_big = claim(&app, &a, big_spend).await;
    let b_coupon = claim(&app, &b, only_at_s).await;
    let mc = member_code(&app, &a).await;
    let state =
        "SELECT (SELECT COUNT(*) FROM orders) * 1000 + (SELECT COUNT(*) FROM coupons WHERE state = 'used') * 100 \
                 + (SELECT COUNT(*) FROM points_ledger)";
    let before = app.count(state).await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (now_order("C-1", &mc, Some(&a_coupon)), 0, "coupon_wrong_merchant"),
        (now_order("C-2", &mc, Some(&a_big)), 422, "below_minimum_spend"),
        (now_order("C-3", &mc, Some(&b_coupon)), 422, "coupon_not_yours"),
        (now_order("C-4", "123456789012345678", None), 422, "invalid_member_code"),
        (now_order("C-5", &mc, Some("NOSUCHCOUPON")), 404, "not_found"),
        (
            {
                let mut o = now_order("C-6", &mc, None);
                o["amount"] = json!(9000);
                o
            },
            422,
            "invalid_items",
        ),
        (
            {
                let mut o = now_order("C-7", &mc, None);
                o["amount"] = json!(0);
                o
            },
            400,
            "invalid_body",
        ),
        (
            {
                let mut o = now_order("C-8", &mc, None);
                o["ordered_at"] = json!("2020-01-01T00:00:00Z");
                o
            },
            422,
            "invalid_time",
        ),
        (
            {
                let mut o = now_order("C 9", &mc, None);
                o["extra"] = json!(1);
                o
            },
            400,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let a = report(&app, &other, body.clone()).await;
        if status != 0 {
            assert_eq!(a.status.as_u16(), status, "{body}: {}", a.body);
        }
        assert_eq!(a.code(), code, "{body}: {}", a.body);
    }
    // An expired coupon.
    linli::workers::expiry::run_once(&app.db, linli::db::now_ms() + 8 * 86_400_000).await.unwrap();
    let a2 = report(&app, &s, now_order("C-10", &mc, Some(&a_coupon))).await;
    assert_eq!((a2.status.as_u16(), a2.code()), (409, "coupon_expired"));
    assert_eq!(app.count(state).await, before, "a refused order wrote something");
    // An operator's key is not a merchant's.
    let op = app.create_key(&app.root_key, app.company_id, "admin").await;
    app.post(&op, "/merchant/v1/orders", now_order("C-11", &mc, None)).await.expect(401);
    app.post("", "/merchant/v1/orders", now_order("C-11", &mc, None)).await.expect(401);
}

#[tokio::test]
async fn coupons_are_written_off_at_the_counter_once() {
    let app = spawn_oa_app(None, 300).await;
    let s = shop(&app, "理发店").await;
    let t = coupon_template(&app, s.merchant, 0, 800, &[]).await;
    let r = resident(&app).await;
    let code = claim(&app, &r, t).await;
    let path = format!("/merchant/v1/coupons/{code}/write-off");
    let w = app.post(&s.key, &path, json!({})).await.expect(200);
    assert_eq!(w["discount"], 800);
    let again = app.post(&s.key, &path, json!({})).await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "coupon_used"));
    // A merchant's own coupon is only good at that merchant.
    let other = shop(&app, "花店").await;
    let t2 = coupon_template(&app, s.merchant, 0, 800, &[]).await;
    let code2 = claim(&app, &r, t2).await;
    let a = app.post(&other.key, &format!("/merchant/v1/coupons/{code2}/write-off"), json!({})).await;
    assert_eq!(a.code(), "coupon_wrong_merchant");
}

#[tokio::test]
async fn campaigns_multiply_points_and_only_a_first_purchase_is_doubled() {
    let app = spawn_oa_app(None, 300).await;
    let s = shop(&app, "鲜果屋").await;
    let r = resident(&app).await;
    let base = format!("/admin/v1/companies/{}/points/multipliers", app.company_id);
    let m = app
        .post(&app.root_key, &base, json!({"category": "fruit", "percent": 200, "starts_at": "2026-11-16T00:00:00Z", "ends_at": "2026-11-23T00:00:00Z"}))
        .await
        .expect(201);
    // 2026-11-20 is in the campaign: fruit 50 yuan ×2 + dairy 30 yuan = 130, first purchase ×2 = 260.
    let o = report(&app, &s, order("D-1", &member_code(&app, &r).await, None)).await.expect(201);
    assert_eq!(o["points"], 260);
    // A second purchase there is not doubled.
    let o = report(&app, &s, order("D-2", &member_code(&app, &r).await, None)).await.expect(201);
    assert_eq!(o["points"], 130);
    app.delete(&app.root_key, &format!("{base}/{}", m["id"])).await.expect(204);
    let o = report(&app, &s, order("D-3", &member_code(&app, &r).await, None)).await.expect(201);
    assert_eq!(o["points"], 80);
    assert_eq!(balance(&app, &r).await, 470);
    app.assert_ledger_balanced().await;
}

/// A coupon of another property company, at this company's merchant, is answered exactly as a
/// code that does not exist — on an order and at the counter — and nothing is written; within
/// its own company it still works.
#[tokio::test]
async fn a_coupon_of_another_company_looks_exactly_like_an_unknown_code() {
    let app = spawn_oa_app(None, 300).await;
    let here = shop(&app, "鲜果屋").await;
    let elsewhere = app.create_org(&app.root_key, 1, "company", "远方物业").await;
    let far_community = app.create_org(&app.root_key, elsewhere, "community", "远方小区").await;
    let far_merchant = app.create_org(&app.root_key, far_community, "merchant", "远方超市").await;
    let far = Shop { merchant: far_merchant, key: app.create_key(&app.root_key, far_merchant, "operator").await };
    // Good anywhere in its company, and one only at its own merchant.
    let anywhere = coupon_template(&app, elsewhere, 0, 500, &[]).await;
    let only_there = coupon_template(&app, elsewhere, 0, 500, &[far.merchant]).await;
    let r = resident(&app).await;
    let codes = [claim(&app, &r, anywhere).await, claim(&app, &r, only_there).await];
    let mc = member_code(&app, &r).await;
    let without_request_id = |a: Answer| {
        let mut body = a.body;
        body.as_object_mut().unwrap().remove("request_id");
        (a.status.as_u16(), body)
    };
    let state = "SELECT (SELECT COUNT(*) FROM orders) * 1000 + (SELECT COUNT(*) FROM coupons WHERE state = 'used') \
                 * 100 + (SELECT COUNT(*) FROM points_ledger)";
    let before = app.count(state).await;
    let unknown_order = without_request_id(report(&app, &here, now_order("F-1", &mc, Some("ABCDEFGHJKMN"))).await);
    let unknown_counter = without_request_id(
        app.post(&here.key, "/merchant/v1/coupons/ABCDEFGHJKMN/write-off", json!({"amount": 5000})).await,
    );
    assert_eq!(unknown_order.0, 404, "{unknown_order:?}");
    assert_eq!(unknown_counter, unknown_order);
    for code in &codes {
        let order = without_request_id(report(&app, &here, now_order("F-2", &mc, Some(code))).await);
        assert_eq!(order, unknown_order, "an order with another company's coupon {code}");
        let path = format!("/merchant/v1/coupons/{code}/write-off");
        let counter = without_request_id(app.post(&here.key, &path, json!({"amount": 5000})).await);
        assert_eq!(counter, unknown_counter, "a write-off of another company's coupon {code}");
    }
    assert_eq!(app.count(state).await, before, "a refused coupon wrote something");
    // At home both are good.
    let o = report(&app, &far, now_order("F-3", &mc, Some(&codes[0]))).await.expect(201);
    assert_eq!(o["discount"], 500);
    app.post(&far.key, &format!("/merchant/v1/coupons/{}/write-off", codes[1]), json!({})).await.expect(200);
}
