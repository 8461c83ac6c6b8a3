//! Coupons: templates, claims with no oversell under concurrency, idempotent retries, household
//! limits, locked terms, expiry.

use serde_json::{json, Value};
use wechat_mock::PushMode;

use crate::helpers::{bearer, spawn_oa_app, OaApp};

fn terms(stock: i64, audience: &str) -> Value {
    json!({
        "category": "水果", "title": "满50减10", "kind": "cash", "amount_off": 1000, "min_spend": 5000,
        "valid_days": 7, "claim_from": "2020-01-01T00:00:00Z", "claim_until": "2099-01-01T00:00:00Z",
        "stock_total": stock, "per_resident_limit": 1, "audience": audience
    })
}

async fn template(app: &OaApp, owner: i64, terms: Value) -> i64 {
    let t = app
        .post(&app.root_key, "/admin/v1/coupon-templates", json!({"owner_org_id": owner, "terms": terms}))
        .await
        .expect(201);
    t["id"].as_i64().unwrap()
}

async fn residents(app: &OaApp, n: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        let u = app.mock.add_user();
        tokens.push(app.login(&u).await);
    }
    tokens
}

async fn claim(app: &OaApp, token: &str, template: i64, key: Option<&str>) -> crate::helpers::Answer {
    let mut req = bearer(app.client.post(app.url(&format!("/mp/v1/coupons/{template}/claims"))), token);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    app.send(req).await
}

/// Sends every claim at once; answers the statuses, sorted.
async fn claim_all_at_once(app: &OaApp, tokens: &[String], template: i64) -> Vec<u16> {
    let mut runs = tokio::task::JoinSet::new();
    for t in tokens {
        let req = bearer(app.client.post(app.url(&format!("/mp/v1/coupons/{template}/claims"))), t);
        runs.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let mut statuses = runs.join_all().await;
    statuses.sort();
    statuses
}

async fn figures(app: &OaApp, template: i64) -> Value {
    app.get(&app.root_key, &format!("/admin/v1/coupon-templates/{template}")).await.expect(200)["figures"].clone()
}

#[tokio::test]
async fn an_operator_issues_followers_claim_and_the_figures_move() {
    let app = spawn_oa_app(None, 300).await;
    let pusher = app.pusher(PushMode::Safe);
    let t = template(&app, app.company_id, terms(2, "followers")).await;
    let (a, b, c) = (app.mock.add_user(), app.mock.add_user(), app.mock.add_user());
    for u in [&a, &b, &c] {
        app.say(&pusher, &pusher.follow(&u.oa_openid)).await;
    }
    let (ta, tb, tc) = (app.login(&a).await, app.login(&b).await, app.login(&c).await);
    let listed = app.send(bearer(app.client.get(app.url("/mp/v1/coupons")), &ta)).await.expect(200);
    assert_eq!(listed["items"][0]["template_id"], t);
    assert_eq!(listed["items"][0]["my_remaining"], 1);

    let coupon = claim(&app, &ta, t, None).await.expect(201);
    assert_eq!(coupon["state"], "unused");
    assert_eq!(coupon["code"].as_str().unwrap().len(), 12);
    claim(&app, &tb, t, None).await.expect(201);
    let sold_out = claim(&app, &tc, t, None).await;
    assert_eq!((sold_out.status.as_u16(), sold_out.code()), (409, "sold_out"));
    let again = claim(&app, &ta, t, None).await;
    assert_eq!(again.status.as_u16(), 409);
    assert_eq!(
        figures(&app, t).await,
        json!({"claimed": 2, "used": 0, "expired": 0, "discount_given": 0, "stock_left": 0})
    );

    // A resident who only uses the mini-program is not a follower.
    let stranger = app.mock.add_user();
    let ts = app.login(&stranger).await;
    let t2 = template(&app, app.company_id, terms(5, "followers")).await;
    // A list page shows each template's figures as its own page does (one query for the page):
    // t2 has none yet.
    let listed = app.get(&app.root_key, "/admin/v1/coupon-templates?page_size=200").await.expect(200);
    let of = |id: i64| listed["items"].as_array().unwrap().iter().find(|i| i["id"] == id).map(|i| i["figures"].clone());
    assert_eq!(of(t), Some(figures(&app, t).await));
    assert_eq!(of(t2), Some(figures(&app, t2).await));
    let refused = claim(&app, &ts, t2, None).await;
    assert_eq!((refused.status.as_u16(), refused.code()), (403, "forbidden"));
    let mine = app.send(bearer(app.client.get(app.url("/mp/v1/me/coupons?state=unused")), &ta)).await.expect(200);
    assert_eq!(mine["items"][0]["title"], "满50减10");
    assert_eq!(mine["items"][0]["amount_off"], 1000);
}

#[tokio::test]
async fn five_hundred_claims_at_once_against_a_stock_of_fifty_take_exactly_fifty() {
    let app = crate::helpers::spawn_oa_app_with(|s| s.db_acquire_timeout = std::time::Duration::from_secs(60)).await;
    let t = template(&app, app.company_id, terms(50, "new_customers")).await;
    let tokens = residents(&app, 500).await;
    let statuses = claim_all_at_once(&app, &tokens, t).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 50, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 450);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM coupons WHERE template_id = {t}")).await, 50);
    assert_eq!(figures(&app, t).await["stock_left"], 0);
}

#[tokio::test]
async fn one_resident_pressing_a_hundred_times_at_once_gets_one() {
    let app = crate::helpers::spawn_oa_app_with(|s| s.db_acquire_timeout = std::time::Duration::from_secs(60)).await;
    let t = template(&app, app.company_id, terms(1000, "new_customers")).await;
    let token = residents(&app, 1).await.remove(0);
    let tokens = vec![token; 100];
    let statuses = claim_all_at_once(&app, &tokens, t).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM coupons WHERE template_id = {t}")).await, 1);
    assert_eq!(figures(&app, t).await["stock_left"], 999, "refused claims give their stock back");
}

#[tokio::test]
async fn a_retried_claim_with_the_same_idempotency_key_gets_the_first_coupon() {
    let app = spawn_oa_app(None, 300).await;
    let mut t3 = terms(100, "new_customers");
    t3["per_resident_limit"] = json!(3);
    let t = template(&app, app.company_id, t3).await;
    let token = residents(&app, 1).await.remove(0);
    let first = claim(&app, &token, t, Some("claim-7f3a")).await.expect(201);
    let again = claim(&app, &token, t, Some("claim-7f3a")).await.expect(201);
    assert_eq!(first, again);
    // Ten retries at once: still one coupon.
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let req = bearer(app.client.post(app.url(&format!("/mp/v1/coupons/{t}/claims"))), &token)
            .header("Idempotency-Key", "claim-9c1d");
        runs.spawn(async move { req.send().await.unwrap().json::<Value>().await.unwrap()["id"].clone() });
    }
    let ids = runs.join_all().await;
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM coupons WHERE template_id = {t}")).await, 2);
    // The same key for another template is refused, not answered with the wrong coupon.
    let other = template(&app, app.company_id, terms(5, "new_customers")).await;
    let reused = claim(&app, &token, other, Some("claim-7f3a")).await;
    assert_eq!((reused.status.as_u16(), reused.code()), (422, "idempotency_key_reused"));
}

#[tokio::test]
async fn a_household_limit_holds_across_the_residents_of_one_room() {
    let app = spawn_oa_app(None, 300).await;
    let community = app.community_with_roster().await;
    let (owner, kid, outsider) = (app.mock.add_user(), app.mock.add_user(), app.mock.add_user());
    let (to, tk, tx) = (app.login(&owner).await, app.login(&kid).await, app.login(&outsider).await);
    let bind = json!({"community_id": community, "building": "1", "unit": "1", "number": "101", "role": "owner", "name": "张三", "phone": "13800138000"});
    let ob = app.send(bearer(app.client.post(app.url("/mp/v1/me/bindings")), &to).json(&bind)).await.expect(201);
    let inv = app
        .send(
            bearer(app.client.post(app.url(&format!("/mp/v1/me/bindings/{}/invitations", ob["id"]))), &to)
                .json(&json!({"role": "family"})),
        )
        .await
        .expect(201);
    let redeem = json!({"code": inv["code"], "name": "张小三", "phone": "13700137000"});
    app.send(bearer(app.client.post(app.url("/mp/v1/me/binding-invitations/redeem")), &tk).json(&redeem))
        .await
        .expect(201);

    let mut t = terms(100, "verified_residents");
    t["per_household_limit"] = json!(1);
    let t = template(&app, community, t).await;
    claim(&app, &to, t, None).await.expect(201);
    let second = claim(&app, &tk, t, None).await;
    assert_eq!((second.status.as_u16(), second.code()), (409, "household_limit_reached"));
    let homeless = claim(&app, &tx, t, None).await;
    assert_eq!(homeless.status.as_u16(), 403);
}

#[tokio::test]
async fn terms_lock_once_claimed_and_ended_templates_take_no_claims() {
    let app = spawn_oa_app(None, 300).await;
    let t = template(&app, app.company_id, terms(10, "new_customers")).await;
    let path = format!("/admin/v1/coupon-templates/{t}");
    let put = |body: Value| app.client.put(app.url(&path)).header("X-Api-Key", &app.root_key).json(&body);
    // Before any claim, anything may change.
    let mut changed = terms(10, "new_customers");
    changed["amount_off"] = json!(800);
    app.send(put(changed.clone())).await.expect(200);
    let token = residents(&app, 1).await.remove(0);
    claim(&app, &token, t, None).await.expect(201);

    changed["amount_off"] = json!(500);
    let locked = app.send(put(changed.clone())).await;
    assert_eq!((locked.status.as_u16(), locked.code()), (409, "coupon_terms_locked"));
    assert!(locked.body["message"].as_str().unwrap().contains("amount_off"));
    changed["amount_off"] = json!(800);
    changed["title"] = json!("满50减8");
    changed["stock_total"] = json!(20);
    let ok = app.send(put(changed.clone())).await.expect(200);
    assert_eq!((ok["terms"]["title"].as_str(), ok["figures"]["stock_left"].as_i64()), (Some("满50减8"), Some(19)));
    changed["stock_total"] = json!(0);
    app.send(put(changed.clone())).await.expect(400);
    let a = app.delete(&app.root_key, &path).await;
    assert_eq!((a.status.as_u16(), a.code()), (409, "coupon_has_claims"));
    app.post(&app.root_key, &format!("{path}/end"), json!({})).await.expect(200);
    let other = residents(&app, 1).await.remove(0);
    let ended = claim(&app, &other, t, None).await;
    assert_eq!((ended.status.as_u16(), ended.code()), (409, "coupon_ended"));

    // Bad terms are refused with the reason, and nothing is written.
    let before = app.count("SELECT COUNT(*) FROM coupon_templates").await;
    let mut bad = terms(10, "new_customers");
    bad["amount_off"] = Value::Null;
    let a = app
        .post(&app.root_key, "/admin/v1/coupon-templates", json!({"owner_org_id": app.company_id, "terms": bad}))
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "invalid_coupon"));
    let mut closed = terms(10, "new_customers");
    closed["claim_until"] = json!("2021-01-01T00:00:00Z");
    let closed = template(&app, app.company_id, closed).await;
    assert_eq!(claim(&app, &other, closed, None).await.code(), "claim_window_closed");
    let a = app
        .post(&app.root_key, "/admin/v1/coupon-templates", json!({"owner_org_id": 1, "terms": terms(1, "followers")}))
        .await;
    assert_eq!(a.status.as_u16(), 422);
    assert_eq!(app.count("SELECT COUNT(*) FROM coupon_templates").await, before + 1);

    // Another company reaches none of it.
    let rival = app.create_org(&app.root_key, 1, "company", "Rival").await;
    let key = app.create_key(&app.root_key, rival, "admin").await;
    app.get(&key, &path).await.expect(404);
    app.post(&key, &format!("{path}/end"), json!({})).await.expect(404);
    app.delete(&key, &path).await.expect(404);
    let a = app
        .post(
            &key,
            "/admin/v1/coupon-templates",
            json!({"owner_org_id": app.company_id, "terms": terms(1, "followers")}),
        )
        .await;
    assert_eq!(a.status.as_u16(), 404);
    assert_eq!(app.get(&key, "/admin/v1/coupon-templates").await.expect(200)["page"]["total"], 0);
}

#[tokio::test]
async fn unused_coupons_expire_on_time_and_show_in_the_figures() {
    let app = spawn_oa_app(None, 300).await;
    let mut one_day = terms(10, "new_customers");
    one_day["valid_days"] = json!(1);
    let t = template(&app, app.company_id, one_day).await;
    let token = residents(&app, 1).await.remove(0);
    claim(&app, &token, t, None).await.expect(201);
    let now = linli::db::now_ms();
    assert_eq!(linli::workers::expiry::run_once(&app.db, now).await.unwrap(), 0);
    assert_eq!(linli::workers::expiry::run_once(&app.db, now + 86_400_000 + 1000).await.unwrap(), 1);
    assert_eq!(
        linli::workers::expiry::run_once(&app.db, now + 86_400_000 + 2000).await.unwrap(),
        0,
        "each coupon expires once"
    );
    assert_eq!(figures(&app, t).await["expired"], 1);
    let mine = app.send(bearer(app.client.get(app.url("/mp/v1/me/coupons?state=expired")), &token)).await.expect(200);
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_sold_out_coupon_still_answers_the_retry_of_a_claim_that_was_made() {
    let app = spawn_oa_app(None, 300).await;
    let t = template(&app, app.company_id, terms(1, "new_customers")).await;
    let mut people = residents(&app, 2).await;
    let (late, first) = (people.remove(1), people.remove(0));
    let coupon = claim(&app, &first, t, Some("k-first")).await.expect(201);
    // The second resident finds it sold out: from now on new claims are turned away from memory.
    let refused = claim(&app, &late, t, Some("k-late")).await;
    assert_eq!((refused.status.as_u16(), refused.code()), (409, "sold_out"));
    let again = claim(&app, &late, t, Some("k-late-2")).await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "sold_out"));
    // The first resident's retry (its answer was lost) still gets the coupon it claimed.
    let retried = claim(&app, &first, t, Some("k-first")).await.expect(201);
    assert_eq!(retried, coupon);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM coupons WHERE template_id = {t}")).await, 1);
}

#[tokio::test]
async fn the_claimable_list_pages_like_every_other_list() {
    let app = spawn_oa_app(None, 300).await;
    let pusher = app.pusher(PushMode::Safe);
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(template(&app, app.company_id, terms(5, "followers")).await);
    }
    let u = app.mock.add_user();
    app.say(&pusher, &pusher.follow(&u.oa_openid)).await;
    let token = app.login(&u).await;
    let mut pages = Vec::new();
    for n in 1..=3 {
        let url = app.url(&format!("/mp/v1/coupons?page={n}&page_size=2"));
        pages
            .push(app.send(bearer(app.client.get(url), &token)).await.expect(200)["items"].as_array().unwrap().clone());
    }
    let (first, second, third) = (&pages[0], &pages[1], &pages[2]);
    assert_eq!((first.len(), second.len(), third.len()), (2, 1, 0));
    let mut seen: Vec<i64> = first.iter().chain(second).map(|c| c["template_id"].as_i64().unwrap()).collect();
    seen.sort_unstable();
    made.sort_unstable();
    assert_eq!(seen, made, "each template on exactly one page");
    let too_big = app.send(bearer(app.client.get(app.url("/mp/v1/coupons?page_size=201")), &token)).await;
    assert_eq!(too_big.status.as_u16(), 400);
}
