//! Retries and duplicates: every idempotent operation — a merchant's order (its order number) and
//! refund (its refund number), a resident's coupon claim, redemption and withdrawal (their
//! `Idempotency-Key`) — answers twenty identical requests sent at once with the first one's
//! answer and has its effect once, through one instance or spread over two on one database. The
//! same key with a different request keeps its typed refusal.

use serde_json::{json, Value};
use wechat_mock::PushMode;

use crate::helpers::{bearer, spawn_pay_app, OaApp};

const N: usize = 20;

/// Sends `N` copies of one request at once, alternating between the instances at `bases`, and
/// answers each one's status and body (less its request id).
async fn at_once(bases: &[String], request: impl Fn(&str) -> reqwest::RequestBuilder) -> Vec<(u16, Value)> {
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..N {
        let req = request(&bases[i % bases.len()]);
        runs.spawn(async move {
            let resp = req.send().await.expect("request sent");
            let status = resp.status().as_u16();
            let mut body: Value = resp.json().await.unwrap_or(Value::Null);
            if let Some(b) = body.as_object_mut() {
                b.remove("request_id");
            }
            (status, body)
        });
    }
    runs.join_all().await
}

/// Asserts the duplicates were answered as the first: one `created`, every other `replayed`
/// (the same status where the operation does not tell them apart), and one body for all.
#[track_caller]
fn one_answer(answers: &[(u16, Value)], created: u16, replayed: u16) -> Value {
    one_answer_in(answers, created, replayed, |b| b.clone())
}

/// [`one_answer`], comparing only what `same` picks of each body (for answers that show the
/// current state of what the first request made, which moves on its own).
#[track_caller]
fn one_answer_in(answers: &[(u16, Value)], created: u16, replayed: u16, same: impl Fn(&Value) -> Value) -> Value {
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    let firsts = statuses.iter().filter(|s| **s == created).count();
    if created == replayed {
        assert_eq!(firsts, N, "every duplicate must get the first answer: {answers:?}");
    } else {
        assert_eq!(firsts, 1, "one request is the first: {answers:?}");
        assert_eq!(statuses.iter().filter(|s| **s == replayed).count(), N - 1, "{answers:?}");
    }
    let body = answers[0].1.clone();
    assert!(body["id"].is_i64() || body["refund_no"].is_string(), "not an answer of the operation: {body}");
    assert!(answers.iter().all(|(_, b)| same(b) == same(&body)), "the duplicates got different answers: {answers:?}");
    body
}

/// Both ways of sending the duplicates: to one instance, and spread over two on one database.
async fn instances(app: &OaApp) -> (crate::helpers::Instance, [Vec<String>; 2]) {
    let second = app.another_instance().await;
    let one = vec![app.address.clone()];
    let two = vec![app.address.clone(), second.address.clone()];
    (second, [one, two])
}

fn db_acquire_timeout(s: &mut linli::config::Settings) {
    // Twenty requests wait on one key at once: give them time to get a connection.
    s.db_acquire_timeout = std::time::Duration::from_secs(60);
}

/// A merchant under the OA's company with an operator key, and a resident with a member code.
async fn merchant_and_resident(app: &OaApp) -> (String, String, String) {
    let community = app.create_org(&app.root_key, app.company_id, "community", "阳光花园").await;
    let merchant = app.create_org(&app.root_key, community, "merchant", "鲜果屋").await;
    let key = app.create_key(&app.root_key, merchant, "operator").await;
    let token = app.login(&app.mock.add_user()).await;
    let code = app.send(bearer(app.client.post(app.url("/mp/v1/me/member-code")), &token)).await.expect(200);
    (key, token, code["code"].as_str().unwrap().to_owned())
}

async fn coupon_template(app: &OaApp, amount_off: i64, per_resident_limit: i64) -> i64 {
    let terms = json!({
        "category": "生鲜", "title": "立减", "kind": "cash", "amount_off": amount_off, "min_spend": 0,
        "valid_days": 7, "claim_from": "2020-01-01T00:00:00Z", "claim_until": "2099-01-01T00:00:00Z",
        "stock_total": 100, "per_resident_limit": per_resident_limit, "audience": "new_customers"
    });
    let t = app
        .post(&app.root_key, "/admin/v1/coupon-templates", json!({"owner_org_id": app.company_id, "terms": terms}))
        .await
        .expect(201);
    t["id"].as_i64().unwrap()
}

async fn claim_coupon(app: &OaApp, token: &str, template: i64) -> String {
    let url = app.url(&format!("/mp/v1/coupons/{template}/claims"));
    let c = app.send(bearer(app.client.post(url), token)).await.expect(201);
    c["code"].as_str().unwrap().to_owned()
}

fn order(no: &str, member_code: &str, coupon: &str, amount: i64) -> Value {
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    json!({
        "order_no": no, "member_code": member_code, "amount": amount, "coupon_code": coupon, "ordered_at": now,
        "items": [{"name": "苹果", "category": "fruit", "amount": amount}]
    })
}

#[tokio::test]
async fn twenty_reports_of_one_order_at_once_record_it_once_and_answer_the_first() {
    let app = crate::helpers::spawn_oa_app_with(db_acquire_timeout).await;
    let (key, token, member_code) = merchant_and_resident(&app).await;
    let (_second, ways) = instances(&app).await;
    let template = coupon_template(&app, 500, 5).await;
    // Claimed before any purchase: the coupons are for new customers.
    let mut coupons = Vec::new();
    for _ in 0..3 {
        coupons.push(claim_coupon(&app, &token, template).await);
    }
    for (round, bases) in ways.iter().enumerate() {
        // A coupon on the order: the first report uses it, and a duplicate must not be told so.
        let coupon = &coupons[round];
        let body = order(&format!("DUP-{round}"), &member_code, coupon, 8000);
        let answers = at_once(bases, |base| {
            app.client.post(format!("{base}/merchant/v1/orders")).header("X-Api-Key", &key).json(&body)
        })
        .await;
        let first = one_answer(&answers, 201, 200);
        assert_eq!((first["discount"].as_i64(), first["paid"].as_i64()), (Some(500), Some(7500)));
        let no = format!("order_no = 'DUP-{round}'");
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM orders WHERE {no}")).await, 1);
        let used = format!("SELECT COUNT(*) FROM coupons WHERE code = '{coupon}' AND state = 'used'");
        assert_eq!(app.count(&used).await, 1);
        let earned = format!("SELECT COUNT(*) FROM points_ledger WHERE reference = 'order:{}'", first["id"]);
        assert_eq!(app.count(&earned).await, 1, "the points were earned once");
    }
    // The same number with another amount is a different order: refused, nothing changes.
    let state = "SELECT (SELECT COUNT(*) FROM orders) * 1000 + (SELECT COUNT(*) FROM points_ledger)";
    let before = app.count(state).await;
    let other = app.post(&key, "/merchant/v1/orders", order("DUP-0", &member_code, &coupons[2], 9000)).await;
    assert_eq!((other.status.as_u16(), other.code()), (409, "order_no_reused"));
    assert_eq!(app.count(state).await, before);
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn twenty_identical_refunds_at_once_refund_once_and_all_answer_the_first() {
    let app = crate::helpers::spawn_oa_app_with(db_acquire_timeout).await;
    let (key, token, member_code) = merchant_and_resident(&app).await;
    let (_second, ways) = instances(&app).await;
    let template = coupon_template(&app, 1000, 5).await;
    let coupon = claim_coupon(&app, &token, template).await;
    // 100 yuan less a 10-yuan coupon: 90 yuan paid, 180 points for a first purchase.
    let o = app.post(&key, "/merchant/v1/orders", order("R-1", &member_code, &coupon, 10_000)).await.expect(201);
    assert_eq!(o["paid"], 9000);
    for (round, bases) in ways.iter().enumerate() {
        let body = json!({"refund_no": format!("RF-{round}"), "amount": 3000});
        let answers = at_once(bases, |base| {
            app.client.post(format!("{base}/merchant/v1/orders/R-1/refunds")).header("X-Api-Key", &key).json(&body)
        })
        .await;
        let first = one_answer(&answers, 201, 201);
        assert_eq!((first["amount"].as_i64(), first["points_back"].as_i64()), (Some(3000), Some(60)));
        let refunds = format!("SELECT COUNT(*) FROM order_refunds WHERE refund_no = 'RF-{round}'");
        assert_eq!(app.count(&refunds).await, 1);
        let refunded = app.count("SELECT refunded FROM orders WHERE order_no = 'R-1'").await;
        assert_eq!(refunded, 3000 * (round as i64 + 1), "refunded once per refund number");
    }
    // The same refund number for another amount is refused and changes nothing.
    let state = "SELECT (SELECT refunded FROM orders WHERE order_no = 'R-1') * 1000 \
                 + (SELECT COUNT(*) FROM order_refunds) * 100 + (SELECT COUNT(*) FROM points_ledger)";
    let before = app.count(state).await;
    let reused = app.post(&key, "/merchant/v1/orders/R-1/refunds", json!({"refund_no": "RF-0", "amount": 1000})).await;
    assert_eq!((reused.status.as_u16(), reused.code()), (409, "refund_no_reused"));
    assert_eq!(app.count(state).await, before);
    // The last 30 yuan, sent twenty times at once: a full refund, once, the coupon given back.
    let body = json!({"refund_no": "RF-LAST", "amount": 3000});
    let answers = at_once(&ways[1], |base| {
        app.client.post(format!("{base}/merchant/v1/orders/R-1/refunds")).header("X-Api-Key", &key).json(&body)
    })
    .await;
    let last = one_answer(&answers, 201, 201);
    assert_eq!((last["points_back"].as_i64(), last["coupon_restored"].as_bool()), (Some(60), Some(true)));
    assert_eq!(app.count("SELECT points_back FROM orders WHERE order_no = 'R-1'").await, 180);
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn twenty_coupon_claims_with_one_key_at_once_claim_one_coupon() {
    let app = crate::helpers::spawn_oa_app_with(db_acquire_timeout).await;
    let (_second, ways) = instances(&app).await;
    let token = app.login(&app.mock.add_user()).await;
    // A resident may hold five: only the key keeps the duplicates from taking more.
    let template = coupon_template(&app, 500, 5).await;
    for (round, bases) in ways.iter().enumerate() {
        let answers = at_once(bases, |base| {
            bearer(app.client.post(format!("{base}/mp/v1/coupons/{template}/claims")), &token)
                .header("Idempotency-Key", format!("claim-{round}"))
        })
        .await;
        one_answer(&answers, 201, 201);
        let claimed = format!("SELECT COUNT(*) FROM coupons WHERE template_id = {template}");
        assert_eq!(app.count(&claimed).await, round as i64 + 1);
    }
    let other = coupon_template(&app, 500, 5).await;
    let url = app.url(&format!("/mp/v1/coupons/{other}/claims"));
    let reused = app.send(bearer(app.client.post(url), &token).header("Idempotency-Key", "claim-0")).await;
    assert_eq!((reused.status.as_u16(), reused.code()), (422, "idempotency_key_reused"));
    assert_eq!(app.count("SELECT COUNT(*) FROM coupons").await, 2);
}

#[tokio::test]
async fn twenty_redemptions_with_one_key_at_once_redeem_once() {
    let app = crate::helpers::spawn_oa_app_with(db_acquire_timeout).await;
    let (_second, ways) = instances(&app).await;
    let merchant = app.create_org(&app.root_key, app.company_id, "merchant", "邻里便利店").await;
    let catalogue = format!("/admin/v1/companies/{}/catalogue", app.company_id);
    let item = |title: &str| {
        json!({"merchant_id": merchant, "title": title, "description": "一次", "points_price": 10,
               "stock_total": 50, "per_resident_limit": 10})
    };
    let item_id = app.post(&app.root_key, &catalogue, item("洗车券")).await.expect(201)["id"].as_i64().unwrap();
    let token = app.login(&app.mock.add_user()).await;
    let me = app.send(bearer(app.client.get(app.url("/mp/v1/me")), &token)).await.expect(200);
    let resident = me["resident_id"].as_i64().unwrap();
    // The check-in opens the points account; an adjustment makes it 100.
    let checkin =
        bearer(app.client.post(app.url("/mp/v1/me/checkins")), &token).json(&json!({"company_id": app.company_id}));
    let opened = app.send(checkin).await.expect(200)["balance"].as_i64().unwrap();
    let adjust = format!("/admin/v1/companies/{}/points/adjustments", app.company_id);
    let grant = json!({"resident_id": resident, "amount": 100 - opened, "reference": "grant", "remark": "测试积分"});
    app.post(&app.root_key, &adjust, grant).await.expect(201);
    let balance = format!("SELECT balance FROM points_accounts WHERE resident_id = {resident}");
    for (round, bases) in ways.iter().enumerate() {
        let answers = at_once(bases, |base| {
            bearer(app.client.post(format!("{base}/mp/v1/me/redemptions")), &token)
                .header("Idempotency-Key", format!("redeem-{round}"))
                .json(&json!({ "item_id": item_id }))
        })
        .await;
        one_answer(&answers, 201, 200);
        assert_eq!(app.count("SELECT COUNT(*) FROM redemptions").await, round as i64 + 1);
        assert_eq!(app.count(&balance).await, 100 - 10 * (round as i64 + 1), "the points were spent once");
    }
    let other = app.post(&app.root_key, &catalogue, item("理发券")).await.expect(201)["id"].as_i64().unwrap();
    let reused = app
        .send(
            bearer(app.client.post(app.url("/mp/v1/me/redemptions")), &token)
                .header("Idempotency-Key", "redeem-0")
                .json(&json!({ "item_id": other })),
        )
        .await;
    assert_eq!((reused.status.as_u16(), reused.code()), (422, "idempotency_key_reused"));
    assert_eq!(app.count("SELECT COUNT(*) FROM redemptions").await, 2);
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn twenty_withdrawals_with_one_key_at_once_withdraw_once() {
    let app = spawn_pay_app(db_acquire_timeout).await;
    let (_second, ways) = instances(&app).await;
    // A follower grabs a 10-yuan balance red packet: money in the wallet.
    let user = app.mock.add_user();
    let pusher = app.pusher(PushMode::Safe);
    assert_eq!(pusher.deliver(&pusher.follow(&user.oa_openid)).await.unwrap().status, 200);
    let token = app.login(&user).await;
    let now = time::OffsetDateTime::now_utc();
    let f = &time::format_description::well_known::Rfc3339;
    let terms = json!({
        "theme": "红包", "channel": "balance", "amount_mode": "fixed", "total_fen": 1000, "shares": 1,
        "starts_at": (now - time::Duration::minutes(1)).format(f).unwrap(),
        "ends_at": (now + time::Duration::hours(1)).format(f).unwrap(),
        "audience": "followers", "wishing": "邻里和睦"
    });
    let c = app
        .post(&app.root_key, "/admin/v1/red-packets", json!({"owner_org_id": app.company_id, "terms": terms}))
        .await
        .expect(201);
    let id = c["id"].as_i64().unwrap();
    app.post(&app.root_key, &format!("/admin/v1/red-packets/{id}/activate"), json!({})).await.expect(200);
    app.send(bearer(app.client.post(app.url(&format!("/mp/v1/red-packets/{id}/grabs"))), &token)).await.expect(201);
    let withdraw = |base: &str, key: &str, fen: i64| {
        bearer(app.client.post(format!("{base}/mp/v1/me/wallet/withdrawals")), &token)
            .header("Idempotency-Key", key)
            .json(&json!({ "amount_fen": fen }))
    };
    for (round, bases) in ways.iter().enumerate() {
        let answers = at_once(bases, |base| withdraw(base, &format!("withdraw-{round}"), 300)).await;
        // The payout moves on (the dispatcher sends it) while the duplicates are answered.
        one_answer_in(&answers, 201, 201, |b| json!([b["id"], b["amount_fen"]]));
        assert_eq!(app.count("SELECT COUNT(*) FROM payouts WHERE source = 'withdrawal'").await, round as i64 + 1);
        let wallet = app.send(bearer(app.client.get(app.url("/mp/v1/me/wallet")), &token)).await.expect(200);
        assert_eq!(wallet["balance_fen"], 1000 - 300 * (round as i64 + 1), "debited once");
    }
    let reused = app.send(withdraw(&app.address, "withdraw-0", 200)).await;
    assert_eq!((reused.status.as_u16(), reused.code()), (422, "idempotency_key_reused"));
    assert_eq!(app.count("SELECT COUNT(*) FROM payouts WHERE source = 'withdrawal'").await, 2);
}
