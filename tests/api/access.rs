//! Operator access: a key reaches its own org subtree and nothing else (404, so ids don't
//! leak), and its role bounds what it may change (403).

use serde_json::{json, Value};

use crate::helpers::{spawn_app, two_companies, TestApp};

/// Every way of reading or changing company B's things, tried with `key`: all must answer 404
/// and leave the database as it was.
async fn assert_cannot_reach_b(app: &TestApp, key: &str, b: &crate::helpers::Company, b_key_id: i64) {
    let before = app.fingerprint().await;
    let reads = [
        format!("/admin/v1/orgs/{}", b.id),
        format!("/admin/v1/orgs/{}", b.community),
        format!("/admin/v1/orgs?parent_id={}", b.id),
        format!("/admin/v1/rooms/{}", b.room),
        format!("/admin/v1/rooms?community_id={}", b.community),
        format!("/admin/v1/roster/{}", b.roster_entry),
        format!("/admin/v1/roster?community_id={}", b.community),
        format!("/admin/v1/audit-log?org_id={}", b.id),
        format!("/admin/v1/api-keys?org_id={}", b.id),
        format!("/admin/v1/wechat-apps/{}", b.wechat_app),
        format!("/admin/v1/wechat-apps?org_id={}", b.id),
        format!("/admin/v1/pay-merchants/{}", b.pay_merchant),
        format!("/admin/v1/pay-merchants?org_id={}", b.id),
    ];
    for path in &reads {
        let a = app.get(key, path).await;
        assert_eq!(a.status.as_u16(), 404, "GET {path} reached another company: {}", a.body);
        assert_eq!(a.code(), "not_found");
    }
    let writes: Vec<(&str, String, serde_json::Value)> = vec![
        ("PATCH", format!("/admin/v1/orgs/{}", b.id), json!({"name": "taken over"})),
        ("PATCH", format!("/admin/v1/orgs/{}", b.community), json!({"name": "taken over"})),
        ("DELETE", format!("/admin/v1/orgs/{}", b.sibling_community), json!(null)),
        ("POST", "/admin/v1/orgs".into(), json!({"parent_id": b.id, "kind": "community", "name": "intruder"})),
        ("POST", "/admin/v1/rooms".into(), json!({"community_id": b.community, "building": "9", "number": "901"})),
        ("PATCH", format!("/admin/v1/rooms/{}", b.room), json!({"number": "999"})),
        ("DELETE", format!("/admin/v1/rooms/{}", b.room), json!(null)),
        (
            "POST",
            format!("/admin/v1/communities/{}/rooms/import", b.community),
            json!({"rows": [{"building": "9", "number": "902"}]}),
        ),
        (
            "POST",
            "/admin/v1/roster".into(),
            json!({"room_id": b.room, "name": "Intruder", "phone": "13900000009", "role": "owner"}),
        ),
        ("PATCH", format!("/admin/v1/roster/{}", b.roster_entry), json!({"name": "Changed"})),
        ("DELETE", format!("/admin/v1/roster/{}", b.roster_entry), json!(null)),
        (
            "POST",
            format!("/admin/v1/communities/{}/roster/import", b.community),
            json!({"rows": [{"name": "X", "phone": "13900000008", "building": "1", "unit": "1", "number": "101"}]}),
        ),
        ("POST", "/admin/v1/api-keys".into(), json!({"org_id": b.id, "role": "admin", "name": "backdoor"})),
        ("DELETE", format!("/admin/v1/api-keys/{b_key_id}"), json!(null)),
        ("PUT", format!("/admin/v1/wechat-apps/{}", b.wechat_app), json!({"name": "taken over"})),
        ("DELETE", format!("/admin/v1/wechat-apps/{}", b.wechat_app), json!(null)),
        (
            "POST",
            "/admin/v1/wechat-apps".into(),
            json!({"org_id": b.id, "kind": "mp", "appid": "wx_intruder", "name": "x", "secret": "s"}),
        ),
        ("PUT", format!("/admin/v1/pay-merchants/{}", b.pay_merchant), json!({"name": "taken over"})),
        ("DELETE", format!("/admin/v1/pay-merchants/{}", b.pay_merchant), json!(null)),
        (
            "POST",
            "/admin/v1/pay-merchants".into(),
            json!({"org_id": b.id, "mch_id": "1900999999", "settings": {"name": "x", "api_key_v2": "k".repeat(32)}}),
        ),
    ];
    for (method, path, body) in &writes {
        let a = match *method {
            "POST" => app.post(key, path, body.clone()).await,
            "PATCH" => app.patch(key, path, body.clone()).await,
            "PUT" => app.put(key, path, body.clone()).await,
            _ => app.delete(key, path).await,
        };
        assert_eq!(a.status.as_u16(), 404, "{method} {path} reached another company: {}", a.body);
    }
    // CSV imports too.
    let a = app
        .post_raw(
            key,
            &format!("/admin/v1/communities/{}/rooms/import", b.community),
            "text/csv",
            "building,number\n9,903\n",
        )
        .await;
    assert_eq!(a.status.as_u16(), 404);
    assert_eq!(app.fingerprint().await, before, "a refused request changed the database");
}

#[tokio::test]
async fn a_company_key_cannot_read_or_change_another_company() {
    let app = spawn_app().await;
    let t = two_companies(&app).await;
    for key in [&t.a.admin, &t.a.operator, &t.a.viewer, &t.a.community_admin] {
        assert_cannot_reach_b(&app, key, &t.b, t.b.key_id).await;
    }
    for key in [&t.b.admin, &t.b.operator, &t.b.viewer] {
        assert_cannot_reach_b(&app, key, &t.a, t.a.key_id).await;
    }
}

#[tokio::test]
async fn lists_show_only_the_subtree() {
    let app = spawn_app().await;
    let t = two_companies(&app).await;
    let orgs = app.get(&t.a.admin, "/admin/v1/orgs?page_size=200").await.expect(200);
    let ids: Vec<i64> = orgs["items"].as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![t.a.id, t.a.community, t.a.sibling_community]);
    assert_eq!(orgs["page"]["total"], 3);

    let rooms = app.get(&t.a.admin, "/admin/v1/rooms").await.expect(200);
    assert_eq!(rooms["items"].as_array().unwrap().len(), 1);
    assert_eq!(rooms["items"][0]["id"], t.a.room);

    let roster = app.get(&t.a.viewer, "/admin/v1/roster").await.expect(200);
    assert_eq!(roster["items"].as_array().unwrap().len(), 1);
    assert_eq!(roster["items"][0]["id"], t.a.roster_entry);

    let keys = app.get(&t.a.admin, "/admin/v1/api-keys").await.expect(200);
    for k in keys["items"].as_array().unwrap() {
        assert!([t.a.id, t.a.community].contains(&k["org_id"].as_i64().unwrap()), "foreign key listed: {k}");
        assert!(k.get("secret").is_none() && k.get("key_hash").is_none());
    }

    let audit = app.get(&t.a.admin, "/admin/v1/audit-log?page_size=200").await.expect(200);
    for e in audit["items"].as_array().unwrap() {
        let org = e["org_id"].as_i64().unwrap();
        assert!([t.a.id, t.a.community, t.a.sibling_community].contains(&org), "foreign audit entry: {e}");
    }

    // The platform sees everything.
    let all = app.get(&app.root_key, "/admin/v1/orgs?page_size=200").await.expect(200);
    assert_eq!(all["page"]["total"], 7);
}

#[tokio::test]
async fn a_community_key_cannot_reach_its_parent_or_siblings() {
    let app = spawn_app().await;
    let t = two_companies(&app).await;
    let key = &t.a.community_admin;
    app.get(key, &format!("/admin/v1/orgs/{}", t.a.community)).await.expect(200);
    app.get(key, &format!("/admin/v1/orgs/{}", t.a.id)).await.expect(404);
    app.get(key, &format!("/admin/v1/orgs/{}", t.a.sibling_community)).await.expect(404);
    app.patch(key, &format!("/admin/v1/orgs/{}", t.a.id), json!({"name": "mine now"})).await.expect(404);
    app.post(key, "/admin/v1/rooms", json!({"community_id": t.a.sibling_community, "building": "1", "number": "1"}))
        .await
        .expect(404);
    app.post(key, "/admin/v1/api-keys", json!({"org_id": t.a.id, "role": "admin", "name": "escalate"}))
        .await
        .expect(404);
    // …but it runs its own community.
    app.post(key, "/admin/v1/rooms", json!({"community_id": t.a.community, "building": "2", "number": "201"}))
        .await
        .expect(201);
    app.post(key, "/admin/v1/orgs", json!({"parent_id": t.a.community, "kind": "merchant", "name": "Corner Shop"}))
        .await
        .expect(201);
}

#[tokio::test]
async fn roles_bound_what_a_key_may_change() {
    let app = spawn_app().await;
    let t = two_companies(&app).await;
    let before = app.fingerprint().await;
    // Viewers read, and change nothing.
    app.get(&t.a.viewer, &format!("/admin/v1/rooms/{}", t.a.room)).await.expect(200);
    for a in [
        app.post(
            &t.a.viewer,
            "/admin/v1/rooms",
            json!({"community_id": t.a.community, "building": "5", "number": "501"}),
        )
        .await,
        app.patch(&t.a.viewer, &format!("/admin/v1/rooms/{}", t.a.room), json!({"number": "102"})).await,
        app.delete(&t.a.viewer, &format!("/admin/v1/roster/{}", t.a.roster_entry)).await,
        app.post_raw(
            &t.a.viewer,
            &format!("/admin/v1/communities/{}/rooms/import", t.a.community),
            "text/csv",
            "building,number\n5,502\n",
        )
        .await,
        // Operators run rooms and rosters, not orgs, keys or the audit log.
        app.post(&t.a.operator, "/admin/v1/orgs", json!({"parent_id": t.a.id, "kind": "community", "name": "New"}))
            .await,
        app.patch(&t.a.operator, &format!("/admin/v1/orgs/{}", t.a.community), json!({"name": "Renamed"})).await,
        app.delete(&t.a.operator, &format!("/admin/v1/orgs/{}", t.a.sibling_community)).await,
        app.post(&t.a.operator, "/admin/v1/api-keys", json!({"org_id": t.a.id, "role": "admin", "name": "escalate"}))
            .await,
        app.get(&t.a.operator, "/admin/v1/audit-log").await,
        app.get(&t.a.operator, "/admin/v1/api-keys").await,
    ] {
        assert_eq!(a.status.as_u16(), 403, "{}", a.body);
        assert_eq!(a.code(), "forbidden");
    }
    assert_eq!(app.fingerprint().await, before);
    // Viewers see phones masked; operators see them whole.
    let v = app.get(&t.a.viewer, &format!("/admin/v1/roster/{}", t.a.roster_entry)).await.expect(200);
    assert_eq!(v["phone"], "138****0001");
    let o = app.get(&t.a.operator, &format!("/admin/v1/roster/{}", t.a.roster_entry)).await.expect(200);
    assert_eq!(o["phone"], "13800000001");
    app.post(
        &t.a.operator,
        "/admin/v1/rooms",
        json!({"community_id": t.a.community, "building": "5", "number": "501"}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn missing_wrong_revoked_and_archived_keys_are_refused() {
    let app = spawn_app().await;
    let t = two_companies(&app).await;
    let before = app.fingerprint().await;
    for key in ["", "nonsense", "lk_0000000000000000000000000000000000000000000000000000000000000000"] {
        let a = app.post(key, "/admin/v1/orgs", json!({"parent_id": 1, "kind": "company", "name": "X"})).await;
        assert_eq!(a.status.as_u16(), 401, "{key:?}: {}", a.body);
        assert_eq!(a.code(), "unauthorized");
        crate::helpers::assert_error_body(&a);
    }
    assert_eq!(app.fingerprint().await, before);

    // Revoked: stops at once.
    let key = app.create_key(&t.a.admin, t.a.community, "operator").await;
    let me = app.get(&key, "/admin/v1/me").await.expect(200);
    assert_eq!(me["role"], "operator");
    assert_eq!(me["org"]["id"], t.a.community);
    app.delete(&t.a.admin, &format!("/admin/v1/api-keys/{}", me["key_id"])).await.expect(200);
    app.get(&key, "/admin/v1/me").await.expect(401);

    // Archived org: its keys stop working.
    let key = app.create_key(&t.a.admin, t.a.sibling_community, "admin").await;
    app.get(&key, "/admin/v1/me").await.expect(200);
    app.delete(&t.a.admin, &format!("/admin/v1/orgs/{}", t.a.sibling_community)).await.expect(200);
    app.get(&key, "/admin/v1/me").await.expect(401);
}

#[tokio::test]
async fn keys_are_stored_hashed_and_shown_once() {
    let app = spawn_app().await;
    let t = two_companies(&app).await;
    let created = app
        .post(&t.a.admin, "/admin/v1/api-keys", json!({"org_id": t.a.id, "role": "viewer", "name": "dashboard"}))
        .await
        .expect(201);
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("lk_"));
    let (stored,): (String,) = sqlx::query_as("SELECT key_hash FROM api_keys WHERE id = $1")
        .bind(created["key"]["id"].as_i64().unwrap())
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    assert!(!stored.contains(&secret[3..]), "the secret is stored in clear");
    let listed = app.get(&t.a.admin, &format!("/admin/v1/api-keys?org_id={}", t.a.id)).await.expect(200);
    assert!(!listed.to_string().contains(secret));
}

/// Merchant keys: every `/merchant/v1` operation in the spec, with a request that an operator's
/// key gets through. A viewer's key reads, and is refused every write with 403 and nothing
/// changed; the same request with an operator's key then succeeds, so the refusal was the role's.
#[tokio::test]
async fn a_merchant_viewer_key_reads_and_every_merchant_write_needs_an_operator() {
    use crate::helpers::{bearer, spawn_oa_app};
    let app = spawn_oa_app(None, 300).await;
    let merchant = app.create_org(&app.root_key, app.company_id, "merchant", "鲜果屋").await;
    let viewer = app.create_key(&app.root_key, merchant, "viewer").await;
    let operator = app.create_key(&app.root_key, merchant, "operator").await;

    // A resident with points, a member code, a coupon and a voucher of this merchant, and an
    // order to refund.
    let token = app.login(&app.mock.add_user()).await;
    let me = app.send(bearer(app.client.get(app.url("/mp/v1/me")), &token)).await.expect(200);
    let resident = me["resident_id"].as_i64().unwrap();
    let checkin =
        bearer(app.client.post(app.url("/mp/v1/me/checkins")), &token).json(&json!({"company_id": app.company_id}));
    app.send(checkin).await.expect(200);
    app.post(
        &app.root_key,
        &format!("/admin/v1/companies/{}/points/adjustments", app.company_id),
        json!({"resident_id": resident, "amount": 100, "reference": "grant", "remark": "测试积分"}),
    )
    .await
    .expect(201);
    let member_code = app.send(bearer(app.client.post(app.url("/mp/v1/me/member-code")), &token)).await.expect(200)
        ["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let terms = json!({
        "category": "生鲜", "title": "立减", "kind": "cash", "amount_off": 500, "min_spend": 0, "valid_days": 7,
        "claim_from": "2020-01-01T00:00:00Z", "claim_until": "2099-01-01T00:00:00Z", "stock_total": 10,
        "per_resident_limit": 1, "audience": "new_customers"
    });
    let template = app
        .post(&app.root_key, "/admin/v1/coupon-templates", json!({"owner_org_id": merchant, "terms": terms}))
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    let claim = bearer(app.client.post(app.url(&format!("/mp/v1/coupons/{template}/claims"))), &token);
    let coupon = app.send(claim).await.expect(201)["code"].as_str().unwrap().to_owned();
    let item = app
        .post(
            &app.root_key,
            &format!("/admin/v1/companies/{}/catalogue", app.company_id),
            json!({"merchant_id": merchant, "title": "洗车券", "description": "一次", "points_price": 10,
                   "stock_total": 5, "per_resident_limit": 1}),
        )
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    let redeem = bearer(app.client.post(app.url("/mp/v1/me/redemptions")), &token)
        .header("Idempotency-Key", "voucher")
        .json(&json!({ "item_id": item }));
    let voucher = app.send(redeem).await.expect(201)["code"].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let order = |no: &str| {
        json!({"order_no": no, "member_code": member_code, "amount": 5000, "ordered_at": now,
               "items": [{"name": "苹果", "category": "fruit", "amount": 5000}]})
    };
    app.post(&operator, "/merchant/v1/orders", order("M-1")).await.expect(201);

    // What each operation is sent: its concrete path and body. An operation missing here fails
    // the test, so a new merchant operation must say how it is tried.
    let cases: std::collections::HashMap<&str, (String, Value)> = [
        ("report_order", ("/merchant/v1/orders".to_owned(), order("M-2"))),
        ("refund_order", ("/merchant/v1/orders/M-1/refunds".to_owned(), json!({"refund_no": "RF-1", "amount": 1000}))),
        ("write_off_coupon", (format!("/merchant/v1/coupons/{coupon}/write-off"), json!({}))),
        ("get_voucher", (format!("/merchant/v1/redemptions/{voucher}"), Value::Null)),
        ("fulfil_voucher", (format!("/merchant/v1/redemptions/{voucher}/fulfil"), Value::Null)),
    ]
    .into_iter()
    .collect();
    let state = "SELECT (SELECT COUNT(*) FROM orders) * 100000 + (SELECT COUNT(*) FROM order_refunds) * 10000 \
                 + (SELECT COUNT(*) FROM coupons WHERE state = 'used') * 1000 \
                 + (SELECT COUNT(*) FROM redemptions WHERE state = 'fulfilled') * 100 \
                 + (SELECT COUNT(*) FROM points_ledger) + (SELECT COUNT(*) FROM audit_log) * 1000000";
    let send = |key: &str, method: &str, path: &str, body: &Value| {
        let mut req = app.client.request(method.parse().unwrap(), app.url(path)).header("X-Api-Key", key);
        if !body.is_null() {
            req = req.json(body);
        }
        app.send(req)
    };
    let spec: Value = serde_json::from_str(&linli::api::openapi_service().spec()).unwrap();
    let (mut reads, mut writes) = (0, 0);
    for (template, item) in spec["paths"].as_object().unwrap() {
        if !template.starts_with("/merchant/v1") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            let (path, body) = cases.get(id).unwrap_or_else(|| panic!("no case for {method} {template} ({id})"));
            let method = method.to_uppercase();
            if method == "GET" {
                send(&viewer, &method, path, body).await.expect(200);
                reads += 1;
                continue;
            }
            let before = app.count(state).await;
            let refused = send(&viewer, &method, path, body).await;
            assert_eq!(refused.status.as_u16(), 403, "a viewer key did {method} {path}: {}", refused.body);
            assert_eq!(refused.code(), "forbidden");
            crate::helpers::assert_error_body(&refused);
            assert_eq!(app.count(state).await, before, "{method} {path} by a viewer changed something");
            let done = send(&operator, &method, path, body).await;
            assert!(done.status.is_success(), "an operator key could not {method} {path}: {}", done.body);
            writes += 1;
        }
    }
    assert!(reads >= 1 && writes >= 4, "the spec lists too few merchant operations: {reads} reads, {writes} writes");
    app.assert_ledger_balanced().await;
}
