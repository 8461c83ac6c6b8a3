//! Points redemption: operators stock a catalogue, residents spend points on it and get
//! vouchers, merchants write them off, residents cancel before that and get their points back —
//! never more redemptions than stock or than a resident's limit, under any concurrency.

use serde_json::{json, Value};

use crate::helpers::{bearer, spawn_oa_app, Answer, OaApp};

/// The OA app with a company operator, a merchant under the company and the merchant's key.
struct Shop {
    app: OaApp,
    operator: String,
    merchant: i64,
    merchant_key: String,
}

impl std::ops::Deref for Shop {
    type Target = OaApp;
    fn deref(&self) -> &OaApp {
        &self.app
    }
}

async fn shop() -> Shop {
    let app = spawn_oa_app(None, 300).await;
    let operator = app.create_key(&app.root_key, app.company_id, "operator").await;
    let merchant = app.create_org(&app.root_key, app.company_id, "merchant", "邻里便利店").await;
    let merchant_key = app.create_key(&app.root_key, merchant, "operator").await;
    Shop { app, operator, merchant, merchant_key }
}

/// A resident logged into the mini-program.
struct Resident {
    token: String,
    id: i64,
}

impl Shop {
    /// A new resident holding exactly `points` in the company's programme: the check-in opens the
    /// account (+5), an operator's adjustment makes up the rest.
    async fn resident(&self, points: i64) -> Resident {
        let user = self.mock.add_user();
        let token = self.login(&user).await;
        let me = self.as_resident(&token, "GET", "/mp/v1/me", None).await.expect(200);
        let id = me["resident_id"].as_i64().unwrap();
        let c = self
            .as_resident(&token, "POST", "/mp/v1/me/checkins", Some(json!({"company_id": self.company_id})))
            .await
            .expect(200);
        let rest = points - c["balance"].as_i64().unwrap();
        if rest != 0 {
            self.post(
                &self.operator,
                &format!("/admin/v1/companies/{}/points/adjustments", self.company_id),
                json!({"resident_id": id, "amount": rest, "reference": format!("grant-{id}"), "remark": "测试积分"}),
            )
            .await
            .expect(201);
        }
        assert_eq!(self.balance(id).await, points);
        Resident { token, id }
    }

    async fn as_resident(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
        let url = self.url(path);
        let req = match method {
            "GET" => self.client.get(url),
            _ => self.client.post(url),
        };
        let req = bearer(req, token);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        self.send(req).await
    }

    async fn redeem(&self, who: &Resident, item: i64, key: &str) -> Answer {
        let req = bearer(self.client.post(self.url("/mp/v1/me/redemptions")), &who.token)
            .header("Idempotency-Key", key)
            .json(&json!({ "item_id": item }));
        self.send(req).await
    }

    async fn create_item(&self, body: Value) -> Value {
        self.post(&self.operator, &format!("/admin/v1/companies/{}/catalogue", self.company_id), body).await.expect(201)
    }

    async fn item(&self, id: i64) -> Value {
        self.get(&self.operator, &format!("/admin/v1/companies/{}/catalogue/{id}", self.company_id)).await.expect(200)
    }

    async fn balance(&self, resident_id: i64) -> i64 {
        self.count(&format!("SELECT balance FROM points_accounts WHERE resident_id = {resident_id}")).await
    }

    /// Everything a redemption can change: redemptions, stock, balances, ledger rows.
    async fn state(&self) -> Vec<i64> {
        vec![
            self.count("SELECT COUNT(*) FROM redemptions").await,
            self.count("SELECT CAST(COALESCE(SUM(stock_left), 0) AS BIGINT) FROM catalogue_items").await,
            self.count("SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM points_accounts").await,
            self.count("SELECT COUNT(*) FROM points_ledger").await,
            self.count("SELECT COUNT(*) FROM redemptions WHERE state = 'fulfilled'").await,
            self.count("SELECT COUNT(*) FROM redemptions WHERE state = 'cancelled'").await,
        ]
    }
}

fn item_body(merchant: i64, price: i64, stock: i64, limit: i64) -> Value {
    json!({"merchant_id": merchant, "title": "洗车券", "description": "小区门口洗车一次", "points_price": price,
           "stock_total": stock, "per_resident_limit": limit})
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_resident_redeems_the_merchant_fulfils_another_cancels_and_is_refunded() {
    let shop = shop().await;
    let item = shop.create_item(item_body(shop.merchant, 30, 5, 2)).await;
    assert_eq!((item["stock_left"].as_i64(), item["redeemed"].as_i64()), (Some(5), Some(0)));
    let item_id = id(&item);
    let (alice, bob) = (shop.resident(100).await, shop.resident(50).await);

    let offered = shop
        .as_resident(&alice.token, "GET", &format!("/mp/v1/companies/{}/catalogue", shop.company_id), None)
        .await
        .expect(200);
    assert_eq!(
        (offered["items"][0]["id"].as_i64(), offered["items"][0]["points_price"].as_i64()),
        (Some(item_id), Some(30))
    );

    let r = shop.redeem(&alice, item_id, "alice-1").await.expect(201);
    assert_eq!(
        (r["state"].as_str(), r["points"].as_i64(), r["title"].as_str()),
        (Some("redeemed"), Some(30), Some("洗车券"))
    );
    let code = r["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 12);
    assert_eq!(shop.balance(alice.id).await, 70);
    let ledger = shop
        .get(
            &shop.operator,
            &format!("/admin/v1/companies/{}/points/ledger?resident_id={}&kind=redeem", shop.company_id, alice.id),
        )
        .await
        .expect(200);
    assert_eq!(
        (
            ledger["items"][0]["source"].as_str(),
            ledger["items"][0]["amount"].as_i64(),
            ledger["items"][0]["reference"].as_str()
        ),
        (Some("redemption"), Some(-30), Some(format!("redemption:{}", id(&r)).as_str()))
    );

    // The merchant looks the voucher up and writes it off, once.
    let seen = shop.get(&shop.merchant_key, &format!("/merchant/v1/redemptions/{code}")).await.expect(200);
    assert_eq!(seen["state"], "redeemed");
    let done =
        shop.post(&shop.merchant_key, &format!("/merchant/v1/redemptions/{code}/fulfil"), json!({})).await.expect(200);
    assert_eq!(done["state"], "fulfilled");
    assert!(done["fulfilled_by"].as_str().unwrap().starts_with("key:"));
    let before = shop.state().await;
    let again = shop.post(&shop.merchant_key, &format!("/merchant/v1/redemptions/{code}/fulfil"), json!({})).await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "redemption_fulfilled"));
    // Too late to cancel a fulfilled one.
    let late = shop.as_resident(&alice.token, "POST", &format!("/mp/v1/me/redemptions/{}/cancel", id(&r)), None).await;
    assert_eq!((late.status.as_u16(), late.code()), (409, "redemption_fulfilled"));
    assert_eq!(shop.state().await, before);

    // Bob redeems and cancels: points and stock come back.
    let rb = shop.redeem(&bob, item_id, "bob-1").await.expect(201);
    assert_eq!(shop.balance(bob.id).await, 20);
    let cancelled = shop
        .as_resident(&bob.token, "POST", &format!("/mp/v1/me/redemptions/{}/cancel", id(&rb)), None)
        .await
        .expect(200);
    assert_eq!(
        (cancelled["state"].as_str(), cancelled["cancelled_by"].as_str()),
        (Some("cancelled"), Some("resident"))
    );
    assert_eq!(shop.balance(bob.id).await, 50);
    let twice = shop.as_resident(&bob.token, "POST", &format!("/mp/v1/me/redemptions/{}/cancel", id(&rb)), None).await;
    assert_eq!((twice.status.as_u16(), twice.code()), (409, "redemption_cancelled"));
    assert_eq!(shop.balance(bob.id).await, 50);
    let voucher = rb["code"].as_str().unwrap();
    let void = shop.post(&shop.merchant_key, &format!("/merchant/v1/redemptions/{voucher}/fulfil"), json!({})).await;
    assert_eq!((void.status.as_u16(), void.code()), (409, "redemption_cancelled"));
    let refund = shop
        .get(
            &shop.operator,
            &format!("/admin/v1/companies/{}/points/ledger?resident_id={}&kind=refund", shop.company_id, bob.id),
        )
        .await
        .expect(200);
    assert_eq!(
        (refund["items"][0]["amount"].as_i64(), refund["items"][0]["source"].as_str()),
        (Some(30), Some("redemption"))
    );

    // The operator's figures and records.
    let figures = shop.item(item_id).await;
    let got: Vec<i64> = ["redeemed", "outstanding", "fulfilled", "cancelled", "stock_left"]
        .iter()
        .map(|k| figures[k].as_i64().unwrap())
        .collect();
    assert_eq!(got, [2, 0, 1, 1, 4]);
    let list =
        shop.get(&shop.operator, &format!("/admin/v1/companies/{}/catalogue", shop.company_id)).await.expect(200);
    assert_eq!((list["page"]["total"].as_i64(), list["items"][0]["fulfilled"].as_i64()), (Some(1), Some(1)));
    let fulfilled = shop
        .get(&shop.operator, &format!("/admin/v1/companies/{}/redemptions?state=fulfilled", shop.company_id))
        .await
        .expect(200);
    assert_eq!(
        (fulfilled["page"]["total"].as_i64(), fulfilled["items"][0]["code"].as_str()),
        (Some(1), Some(code.as_str()))
    );
    let of_bob = shop
        .get(&shop.operator, &format!("/admin/v1/companies/{}/redemptions?resident_id={}", shop.company_id, bob.id))
        .await
        .expect(200);
    assert_eq!(of_bob["page"]["total"], 1);
    let mine = shop.as_resident(&alice.token, "GET", "/mp/v1/me/redemptions", None).await.expect(200);
    assert_eq!((mine["page"]["total"].as_i64(), mine["items"][0]["state"].as_str()), (Some(1), Some("fulfilled")));

    // Editing and archiving are audited; the stock cannot go below what is redeemed.
    let path = format!("/admin/v1/companies/{}/catalogue/{item_id}", shop.company_id);
    let low = shop.patch(&shop.operator, &path, json!({"stock_total": 0})).await;
    assert_eq!((low.status.as_u16(), low.code()), (422, "stock_below_redeemed"));
    let edited = shop.patch(&shop.operator, &path, json!({"stock_total": 10, "points_price": 40})).await.expect(200);
    assert_eq!((edited["stock_total"].as_i64(), edited["stock_left"].as_i64()), (Some(10), Some(9)));
    shop.delete(&shop.operator, &path).await.expect(200);
    let log = shop.get(&shop.root_key, "/admin/v1/audit-log?page_size=50").await.expect(200);
    let actions: Vec<&str> = log["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["catalogue.create", "catalogue.update", "catalogue.archive", "redemption.fulfil"] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }
    shop.assert_ledger_balanced().await;
}

#[tokio::test]
async fn two_hundred_residents_at_once_get_exactly_the_stock() {
    let shop = shop().await;
    let item_id = id(&shop.create_item(item_body(shop.merchant, 10, 20, 1)).await);
    let mut residents = Vec::new();
    for _ in 0..200 {
        residents.push(shop.resident(10).await);
    }
    let mut runs = tokio::task::JoinSet::new();
    for (i, r) in residents.iter().enumerate() {
        let req = bearer(shop.client.post(shop.url("/mp/v1/me/redemptions")), &r.token)
            .header("Idempotency-Key", format!("press-{i}"))
            .json(&json!({ "item_id": item_id }));
        runs.spawn(async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body["code"].as_str().unwrap_or("").to_owned())
        });
    }
    let answers = runs.join_all().await;
    let won = answers.iter().filter(|(s, _)| *s == 201).count();
    let sold_out = answers.iter().filter(|(s, c)| *s == 409 && c == "sold_out").count();
    assert_eq!((won, sold_out), (20, 180), "{answers:?}");
    assert_eq!(shop.count("SELECT COUNT(*) FROM redemptions").await, 20);
    assert_eq!(shop.count("SELECT COUNT(DISTINCT resident_id) FROM redemptions").await, 20);
    assert_eq!(shop.count(&format!("SELECT stock_left FROM catalogue_items WHERE id = {item_id}")).await, 0);
    assert_eq!(shop.count("SELECT COUNT(*) FROM points_ledger WHERE kind = 'redeem'").await, 20);
    assert_eq!(shop.count("SELECT COUNT(*) FROM points_accounts WHERE balance = 0").await, 20);
    shop.assert_ledger_balanced().await;
}

#[tokio::test]
async fn one_resident_pressing_fifty_times_gets_their_limit() {
    let shop = shop().await;
    let item_id = id(&shop.create_item(item_body(shop.merchant, 10, 100, 1)).await);
    let r = shop.resident(1000).await;
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..50 {
        let req = bearer(shop.client.post(shop.url("/mp/v1/me/redemptions")), &r.token)
            .header("Idempotency-Key", format!("press-{i}"))
            .json(&json!({ "item_id": item_id }));
        runs.spawn(async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body["code"].as_str().unwrap_or("").to_owned())
        });
    }
    let answers = runs.join_all().await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 201).count(), 1, "{answers:?}");
    assert_eq!(answers.iter().filter(|(s, c)| *s == 409 && c == "limit_reached").count(), 49, "{answers:?}");
    assert_eq!(shop.count("SELECT COUNT(*) FROM redemptions").await, 1);
    assert_eq!(shop.balance(r.id).await, 990);
    assert_eq!(shop.item(item_id).await["stock_left"], 99);
    // Cancelling gives the allowance back.
    let mine = shop.as_resident(&r.token, "GET", "/mp/v1/me/redemptions", None).await.expect(200);
    let first = mine["items"][0]["id"].as_i64().unwrap();
    shop.as_resident(&r.token, "POST", &format!("/mp/v1/me/redemptions/{first}/cancel"), None).await.expect(200);
    shop.redeem(&r, item_id, "after-cancel").await.expect(201);
    assert_eq!(shop.balance(r.id).await, 990);
    shop.assert_ledger_balanced().await;
}

#[tokio::test]
async fn twenty_fulfils_of_one_voucher_at_once_write_it_off_once() {
    let shop = shop().await;
    let item_id = id(&shop.create_item(item_body(shop.merchant, 10, 5, 1)).await);
    let r = shop.resident(10).await;
    let code = shop.redeem(&r, item_id, "k").await.expect(201)["code"].as_str().unwrap().to_owned();
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let req = shop
            .client
            .post(shop.url(&format!("/merchant/v1/redemptions/{code}/fulfil")))
            .header("X-Api-Key", &shop.merchant_key);
        runs.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let mut statuses = runs.join_all().await;
    statuses.sort();
    assert_eq!(statuses, [vec![200], vec![409; 19]].concat());
    assert_eq!(shop.count("SELECT COUNT(*) FROM audit_log WHERE action = 'redemption.fulfil'").await, 1);
    assert_eq!(shop.count("SELECT COUNT(*) FROM redemptions WHERE state = 'fulfilled'").await, 1);
    shop.assert_ledger_balanced().await;
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let shop = shop().await;
    let item_id = id(&shop.create_item(item_body(shop.merchant, 10, 5, 3)).await);
    let other_item = id(&shop.create_item(item_body(shop.merchant, 10, 5, 3)).await);
    let r = shop.resident(100).await;
    let first = shop.redeem(&r, item_id, "once").await.expect(201);
    let again = shop.redeem(&r, item_id, "once").await.expect(200);
    assert_eq!((id(&again), &again["code"]), (id(&first), &first["code"]));
    assert_eq!(shop.balance(r.id).await, 90);

    // The same key for something else is refused; a missing key is a bad request.
    let before = shop.state().await;
    let reused = shop.redeem(&r, other_item, "once").await;
    assert_eq!((reused.status.as_u16(), reused.code()), (422, "idempotency_key_reused"));
    let no_key =
        bearer(shop.client.post(shop.url("/mp/v1/me/redemptions")), &r.token).json(&json!({"item_id": item_id}));
    shop.send(no_key).await.expect(400);
    // Another resident's use of the same key is theirs alone.
    let s = shop.resident(100).await;
    let theirs = shop.redeem(&s, item_id, "once").await.expect(201);
    assert_ne!(id(&theirs), id(&first));
    let after_s = shop.state().await;
    assert_eq!(after_s[0], before[0] + 1);

    // Ten retries at once with a fresh key: one redemption, every answer the same.
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let req = bearer(shop.client.post(shop.url("/mp/v1/me/redemptions")), &r.token)
            .header("Idempotency-Key", "storm")
            .json(&json!({ "item_id": item_id }));
        runs.spawn(async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap())
        });
    }
    let answers = runs.join_all().await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 201).count(), 1, "{answers:?}");
    assert!(answers.iter().all(|(s, i)| (*s == 201 || *s == 200) && *i == answers[0].1), "{answers:?}");
    assert_eq!(shop.count(&format!("SELECT COUNT(*) FROM redemptions WHERE resident_id = {}", r.id)).await, 2);
    assert_eq!(shop.balance(r.id).await, 80);
    shop.assert_ledger_balanced().await;
}

#[tokio::test]
async fn refusals_are_typed_and_change_nothing() {
    let shop = shop().await;
    let item_id = id(&shop.create_item(item_body(shop.merchant, 50, 5, 1)).await);
    let archived = id(&shop.create_item(item_body(shop.merchant, 5, 5, 1)).await);
    shop.delete(&shop.operator, &format!("/admin/v1/companies/{}/catalogue/{archived}", shop.company_id))
        .await
        .expect(200);
    let (poor, rich) = (shop.resident(49).await, shop.resident(100).await);
    let voucher = shop.redeem(&rich, item_id, "rich").await.expect(201);
    let (code, vid) = (voucher["code"].as_str().unwrap().to_owned(), id(&voucher));
    let other_merchant = shop.create_org(&shop.root_key, shop.company_id, "merchant", "隔壁花店").await;
    let other_key = shop.create_key(&shop.root_key, other_merchant, "operator").await;
    let merchant_viewer = shop.create_key(&shop.root_key, shop.merchant, "viewer").await;
    let before = shop.state().await;

    let cases: Vec<(&str, Answer, u16, &str)> = vec![
        ("too few points", shop.redeem(&poor, item_id, "p1").await, 422, "insufficient_points"),
        ("archived item", shop.redeem(&rich, archived, "r2").await, 409, "item_unavailable"),
        ("over the limit", shop.redeem(&rich, item_id, "r3").await, 409, "limit_reached"),
        ("no such item", shop.redeem(&rich, 424242, "r4").await, 404, "not_found"),
        (
            "another merchant reads",
            shop.get(&other_key, &format!("/merchant/v1/redemptions/{code}")).await,
            404,
            "not_found",
        ),
        (
            "another merchant fulfils",
            shop.post(&other_key, &format!("/merchant/v1/redemptions/{code}/fulfil"), json!({})).await,
            404,
            "not_found",
        ),
        (
            "a viewer key of the merchant fulfils",
            shop.post(&merchant_viewer, &format!("/merchant/v1/redemptions/{code}/fulfil"), json!({})).await,
            403,
            "forbidden",
        ),
        (
            "a company key on the merchant API",
            shop.post(&shop.operator, &format!("/merchant/v1/redemptions/{code}/fulfil"), json!({})).await,
            401,
            "unauthorized",
        ),
        (
            "no key on the merchant API",
            shop.get("", &format!("/merchant/v1/redemptions/{code}")).await,
            401,
            "unauthorized",
        ),
        (
            "another resident reads",
            shop.as_resident(&poor.token, "GET", &format!("/mp/v1/me/redemptions/{vid}"), None).await,
            404,
            "not_found",
        ),
        (
            "another resident cancels",
            shop.as_resident(&poor.token, "POST", &format!("/mp/v1/me/redemptions/{vid}/cancel"), None).await,
            404,
            "not_found",
        ),
        (
            "not a merchant of the company",
            shop.post(
                &shop.operator,
                &format!("/admin/v1/companies/{}/catalogue", shop.company_id),
                item_body(shop.company_id, 10, 1, 1),
            )
            .await,
            422,
            "invalid_merchant",
        ),
        (
            "a price of zero",
            shop.post(
                &shop.operator,
                &format!("/admin/v1/companies/{}/catalogue", shop.company_id),
                item_body(shop.merchant, 0, 1, 1),
            )
            .await,
            400,
            "invalid_body",
        ),
        (
            "the resident field is not taken from the body",
            {
                let req = bearer(shop.client.post(shop.url("/mp/v1/me/redemptions")), &poor.token)
                    .header("Idempotency-Key", "smuggle")
                    .json(&json!({"item_id": item_id, "resident_id": rich.id}));
                shop.send(req).await
            },
            400,
            "invalid_body",
        ),
    ];
    for (what, answer, status, code) in cases {
        assert_eq!((answer.status.as_u16(), answer.code()), (status, code), "{what}: {}", answer.body);
        crate::helpers::assert_error_body(&answer);
    }
    assert_eq!(shop.state().await, before, "a refused request changed something");
    assert_eq!(shop.count("SELECT COUNT(*) FROM mp_idempotency_keys WHERE idem_key = 'p1'").await, 0);
    shop.assert_ledger_balanced().await;
}

#[tokio::test]
async fn operators_reach_only_their_own_company_catalogue() {
    let shop = shop().await;
    let item_id = id(&shop.create_item(item_body(shop.merchant, 10, 5, 1)).await);
    let other = shop.create_org(&shop.root_key, 1, "company", "别家物业").await;
    let stranger = shop.create_key(&shop.root_key, other, "admin").await;
    let viewer = shop.create_key(&shop.root_key, shop.company_id, "viewer").await;
    let base = format!("/admin/v1/companies/{}/catalogue", shop.company_id);
    let before = shop.fingerprint().await;
    shop.get(&stranger, &base).await.expect(404);
    shop.get(&stranger, &format!("{base}/{item_id}")).await.expect(404);
    shop.patch(&stranger, &format!("{base}/{item_id}"), json!({"title": "x"})).await.expect(404);
    shop.get(&stranger, &format!("/admin/v1/companies/{}/redemptions", shop.company_id)).await.expect(404);
    // The item is not under the other company either.
    shop.get(&stranger, &format!("/admin/v1/companies/{other}/catalogue/{item_id}")).await.expect(404);
    shop.post(&viewer, &base, item_body(shop.merchant, 10, 5, 1)).await.expect(403);
    shop.delete(&viewer, &format!("{base}/{item_id}")).await.expect(403);
    assert_eq!(shop.fingerprint().await, before);
    assert_eq!(shop.get(&viewer, &base).await.expect(200)["page"]["total"], 1);
    shop.assert_ledger_balanced().await;
}
