//! Red packets end to end against wechat-mock's WeChat Pay: campaigns, grabs under contention,
//! payouts through every fault the mock can inject and through crashes, the wallet, the
//! notification endpoint and reconciliation.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};
use wechat_mock::pay::PaymentStatus;
use wechat_mock::{Fault, PushMode};

use crate::helpers::{bearer, eventually, spawn_pay_app, Answer, OaApp};

/// A resident who follows the official account and is logged in to the mini-program.
struct Resident {
    user: wechat_mock::MockUser,
    token: String,
}

async fn residents(app: &OaApp, n: usize) -> Vec<Resident> {
    let pusher = app.pusher(PushMode::Safe);
    let mut out = Vec::with_capacity(n);
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..n {
        let user = app.mock.add_user();
        let pusher = pusher.clone();
        let code = app.mock.login_code(&user);
        let client = app.client.clone();
        let url = app.url("/mp/v1/sessions");
        pending.spawn(async move {
            let outcome = pusher.deliver(&pusher.follow(&user.oa_openid)).await.expect("follow delivered");
            assert_eq!(outcome.status, 200);
            let s: Value = client.post(url).json(&json!({ "code": code })).send().await.unwrap().json().await.unwrap();
            let token = s["access_token"].as_str().expect("logged in").to_owned();
            Resident { user, token }
        });
        if pending.len() >= 32 {
            out.push(pending.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(r) = pending.join_next().await {
        out.push(r.unwrap());
    }
    out
}

fn window() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let f = &time::format_description::well_known::Rfc3339;
    ((now - time::Duration::minutes(1)).format(f).unwrap(), (now + time::Duration::hours(2)).format(f).unwrap())
}

/// Creates and activates a followers' campaign of the OA's company; answers its id.
async fn campaign(app: &OaApp, channel: &str, mode: &str, total_fen: i64, shares: i64) -> i64 {
    let (starts, ends) = window();
    let c = app
        .post(
            &app.root_key,
            "/admin/v1/red-packets",
            json!({
                "owner_org_id": app.company_id,
                "terms": {
                    "theme": "新春红包", "channel": channel, "amount_mode": mode, "total_fen": total_fen,
                    "shares": shares, "starts_at": starts, "ends_at": ends, "audience": "followers",
                    "wishing": "新春快乐，邻里和睦"
                }
            }),
        )
        .await
        .expect(201);
    assert_eq!(c["state"], "draft");
    let id = c["id"].as_i64().unwrap();
    let active = app.post(&app.root_key, &format!("/admin/v1/red-packets/{id}/activate"), json!({})).await.expect(200);
    assert_eq!(active["state"], "active");
    id
}

async fn grab(app: &OaApp, token: &str, id: i64) -> Answer {
    app.send(bearer(app.client.post(app.url(&format!("/mp/v1/red-packets/{id}/grabs"))), token)).await
}

async fn mp_get(app: &OaApp, token: &str, path: &str) -> Value {
    app.send(bearer(app.client.get(app.url(path)), token)).await.expect(200)
}

async fn count(app: &OaApp, sql: &str) -> i64 {
    app.count(sql).await
}

/// Every payout is final; each grab is paid exactly once in WeChat's ledger or credited to the
/// balance, never both, never twice; wallets are the sums of their rows.
async fn assert_each_grab_paid_once(app: &OaApp) {
    type GrabPayout = (i64, i64, String, Option<i64>, String, Option<i64>);
    let rows: Vec<GrabPayout> = sqlx::query_as(
        "SELECT g.resident_id, g.amount_fen, p.state, p.credited_at, p.openid, p.id FROM rp_grabs g \
         JOIN payouts p ON p.id = g.payout_id",
    )
    .fetch_all(app.db.reader())
    .await
    .unwrap();
    let payments = app.mock.payments();
    let mut paid_by_openid: HashMap<String, (i64, usize)> = HashMap::new();
    for p in payments.iter().filter(|p| p.status.money_out()) {
        let e = paid_by_openid.entry(p.openid.clone()).or_default();
        e.0 += p.amount_fen;
        e.1 += 1;
    }
    for (resident, amount, state, credited, openid, payout) in rows {
        let paid = paid_by_openid.get(&openid).copied().unwrap_or_default();
        match state.as_str() {
            "succeeded" | "submitted" => {
                assert_eq!(paid, (amount, 1), "payout {payout:?} of resident {resident}: paid once, in full");
                assert!(credited.is_none());
            }
            "failed" => {
                assert_eq!(paid.1, 0, "payout {payout:?} failed here but WeChat paid it");
                assert!(credited.is_some(), "a failed payout is credited to the balance");
                let (credit,): (i64,) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM wallet_ledger WHERE payout_id = $1 AND source = 'payout_failed'",
                )
                .bind(payout.unwrap())
                .fetch_one(app.db.reader())
                .await
                .unwrap();
                assert_eq!(credit, amount);
            }
            other => panic!("payout {payout:?} still {other}"),
        }
    }
    assert_wallets_balanced(app).await;
}

async fn assert_wallets_balanced(app: &OaApp) {
    let off: Vec<(i64,)> = sqlx::query_as(
        "SELECT a.resident_id FROM wallet_accounts a WHERE a.balance_fen <> \
         (SELECT COALESCE(SUM(l.amount_fen), 0) FROM wallet_ledger l WHERE l.resident_id = a.resident_id)",
    )
    .fetch_all(app.db.reader())
    .await
    .unwrap();
    assert!(off.is_empty(), "wallets whose balance is not the sum of their rows: {off:?}");
}

async fn open_payouts(app: &OaApp) -> i64 {
    count(app, "SELECT COUNT(*) FROM payouts WHERE state IN ('pending', 'unknown')").await
}

async fn reconcile_today(app: &OaApp) -> Value {
    let today = app.mock.wechat.beijing_today();
    app.post(&app.root_key, "/admin/v1/reconciliations", json!({ "bill_date": today })).await.expect(200)
}

#[tokio::test]
async fn a_hundred_shares_among_a_thousand_residents_are_each_paid_once() {
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 1000).await;
    let id = campaign(&app, "cash_red_packet", "random", 25_000, 100).await;
    let mut grabs = tokio::task::JoinSet::new();
    for r in &people {
        let (client, url, token) =
            (app.client.clone(), app.url(&format!("/mp/v1/red-packets/{id}/grabs")), r.token.clone());
        grabs.spawn(async move {
            let resp = bearer(client.post(url), &token).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        });
    }
    let answers = grabs.join_all().await;
    let won: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
    assert_eq!(won.len(), 100);
    assert!(answers.iter().all(|(s, b)| *s == 201 || (*s == 409 && b["code"] == "sold_out")), "{answers:?}");
    assert_eq!(won.iter().map(|b| b["amount_fen"].as_i64().unwrap()).sum::<i64>(), 25_000);
    assert!(won.iter().all(|b| (100..=20_000).contains(&b["amount_fen"].as_i64().unwrap())));
    assert_eq!(count(&app, "SELECT COUNT(DISTINCT resident_id) FROM rp_grabs").await, 100);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM payouts").await, 100);

    // The dispatcher sends every share; each resident opens theirs; the payouts settle.
    eventually("every red packet is sent", || async {
        app.mock.payments().iter().filter(|p| p.status == PaymentStatus::Sent).count() == 100
    })
    .await;
    for p in app.mock.payments() {
        app.mock.receive_red_packet(&p.bill_no).unwrap();
    }
    eventually("every payout succeeded", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'succeeded'").await == 100
    })
    .await;
    let payments = app.mock.payments();
    assert_eq!(payments.len(), 100);
    assert_eq!(payments.iter().map(|p| p.amount_fen).sum::<i64>(), 25_000);
    assert_eq!(payments.iter().map(|p| &p.openid).collect::<HashSet<_>>().len(), 100);
    assert_each_grab_paid_once(&app).await;

    let c = app.get(&app.root_key, &format!("/admin/v1/red-packets/{id}")).await.expect(200);
    assert_eq!(c["figures"]["grabbed"], 100);
    assert_eq!(c["figures"]["paid_fen"], 25_000);
    assert_eq!(c["figures"]["pending"], 0);
    // The list page shows the same figures (one query for the page).
    let listed = app.get(&app.root_key, "/admin/v1/red-packets?page_size=200").await.expect(200);
    let item = listed["items"].as_array().unwrap().iter().find(|i| i["id"] == id).cloned();
    assert_eq!(item.map(|i| i["figures"].clone()), Some(c["figures"].clone()));
    let run = reconcile_today(&app).await;
    assert_eq!(run["state"], "matched", "{run}");
    assert_eq!(run["checked"], 100);

    // A late comer is turned away at once; a winner cannot grab twice.
    let late = grab(&app, &people[0].token, id).await;
    assert_eq!(late.status, 409);
    assert!(["sold_out", "already_grabbed"].contains(&late.code()));
}

#[tokio::test]
async fn grabs_are_refused_outside_the_window_the_audience_and_a_second_time() {
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 2).await;
    let id = campaign(&app, "balance", "fixed", 300, 3).await;
    let first = grab(&app, &people[0].token, id).await.expect(201);
    assert_eq!(first["amount_fen"], 100);
    assert_eq!(first["in_balance"], true);
    let before = count(&app, "SELECT COUNT(*) FROM rp_grabs").await;
    let again = grab(&app, &people[0].token, id).await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "already_grabbed"));
    // Not following: outside the audience.
    let stranger = app.mock.add_user();
    let token = app.login(&stranger).await;
    let refused = grab(&app, &token, id).await;
    assert_eq!(refused.status, 403);
    let granted = format!("SELECT granted FROM rp_campaigns WHERE id = {id}");
    assert_eq!(count(&app, &granted).await, 1, "a refused grab takes no share");
    // A draft is not there to grab; an ended campaign is closed.
    let (starts, ends) = window();
    let draft = app
        .post(
            &app.root_key,
            "/admin/v1/red-packets",
            json!({ "owner_org_id": app.company_id, "terms": {
                "theme": "草稿", "channel": "balance", "amount_mode": "fixed", "total_fen": 100, "shares": 1,
                "starts_at": starts, "ends_at": ends, "audience": "followers" } }),
        )
        .await
        .expect(201);
    assert_eq!(grab(&app, &people[1].token, draft["id"].as_i64().unwrap()).await.status, 404);
    app.post(&app.root_key, &format!("/admin/v1/red-packets/{id}/end"), json!({})).await.expect(200);
    let ended = grab(&app, &people[1].token, id).await;
    assert_eq!((ended.status.as_u16(), ended.code()), (409, "red_packet_ended"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM rp_grabs").await, before);
    // The balance channel credits the wallet at once.
    let w = mp_get(&app, &people[0].token, "/mp/v1/me/wallet").await;
    assert_eq!(w["balance_fen"], 100);
    assert_wallets_balanced(&app).await;
}

#[tokio::test]
async fn a_campaign_that_cannot_split_within_the_channel_limits_is_refused_with_the_reason() {
    let app = spawn_pay_app(|_| {}).await;
    let (starts, ends) = window();
    for (channel, mode, total, shares, code) in [
        ("cash_red_packet", "random", 299, 3, "unsplittable"),
        ("cash_red_packet", "random", 40_001, 2, "unsplittable"),
        ("transfer", "random", 9, 1, "unsplittable"),
        ("balance", "fixed", 100, 3, "unsplittable"),
    ] {
        let a = app
            .post(
                &app.root_key,
                "/admin/v1/red-packets",
                json!({ "owner_org_id": app.company_id, "terms": {
                    "theme": "t", "channel": channel, "amount_mode": mode, "total_fen": total, "shares": shares,
                    "starts_at": starts, "ends_at": ends, "audience": "followers" } }),
            )
            .await;
        assert_eq!((a.status.as_u16(), a.code()), (422, code), "{}", a.body);
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM rp_campaigns").await, 0);
}

/// One resident grabs a cash red packet while `fault` is injected on `path`; the payout must end
/// paid exactly once, and reconciliation must find nothing.
async fn cash_red_packet_through(fault: Fault, expect_unknown: bool) {
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 1).await;
    app.mock.inject_fault(fault).unwrap();
    let id = campaign(&app, "cash_red_packet", "fixed", 188, 1).await;
    grab(&app, &people[0].token, id).await.expect(201);
    eventually("the red packet is sent", || async {
        app.mock.payments().iter().any(|p| p.status == PaymentStatus::Sent)
            && count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'submitted'").await == 1
    })
    .await;
    let bill = app.mock.payments()[0].bill_no.clone();
    app.mock.receive_red_packet(&bill).unwrap();
    eventually("the payout succeeded", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'succeeded'").await == 1
    })
    .await;
    assert_eq!(app.mock.paid_total(&people[0].user.oa_openid), 188);
    assert_eq!(app.mock.payments().len(), 1);
    // The fault was met: an unknown outcome recorded, then resolved on the same number.
    let unknowns = count(&app, "SELECT COUNT(*) FROM payout_events WHERE state = 'unknown'").await;
    assert_eq!(unknowns > 0, expect_unknown, "unknown outcomes recorded: {unknowns}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM payout_numbers").await, 1, "one merchant number throughout");
    assert_each_grab_paid_once(&app).await;
    assert_eq!(reconcile_today(&app).await["state"], "matched");
}

#[tokio::test]
async fn a_system_error_is_resolved_by_query_and_the_same_number() {
    cash_red_packet_through(Fault::pay_error("/mmpaymkttransfers/sendredpack", "SYSTEMERROR", 2), true).await;
}

#[tokio::test]
async fn a_gateway_error_is_resolved_by_query_and_the_same_number() {
    cash_red_packet_through(Fault::http_status("/mmpaymkttransfers/sendredpack", 503, 2), true).await;
}

#[tokio::test]
async fn a_timeout_after_wechat_paid_is_paid_once() {
    // The mock pays, then answers after the client gave up (1.5 s).
    cash_red_packet_through(Fault::delay_after("/mmpaymkttransfers/sendredpack", 2500, 1), true).await;
}

#[tokio::test]
async fn not_found_while_processing_is_not_taken_for_a_failure() {
    // The first send times out after paying; the query then says NOT_FOUND (still processing):
    // the same number is sent again, and WeChat answers the first packet.
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 1).await;
    app.mock.inject_fault(Fault::delay_after("/mmpaymkttransfers/sendredpack", 2500, 1)).unwrap();
    app.mock.inject_fault(Fault::pay_error("/mmpaymkttransfers/gethbinfo", "NOT_FOUND", 2)).unwrap();
    let id = campaign(&app, "cash_red_packet", "fixed", 150, 1).await;
    grab(&app, &people[0].token, id).await.expect(201);
    eventually("the payout is submitted", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'submitted'").await == 1
    })
    .await;
    assert_eq!(app.mock.payments().len(), 1);
    assert_eq!(app.mock.paid_total(&people[0].user.oa_openid), 150);
    assert!(app.mock.call_count("/mmpaymkttransfers/sendredpack") >= 2, "sent again after NOT_FOUND");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM payout_numbers").await, 1);
    assert_each_grab_paid_once(&app).await;
}

#[tokio::test]
async fn slow_answers_are_waited_for() {
    cash_red_packet_through(Fault::delay("/mmpaymkttransfers/sendredpack", 800, 1), false).await;
}

#[tokio::test]
async fn an_unopened_red_packet_goes_back_to_the_balance() {
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 1).await;
    let id = campaign(&app, "cash_red_packet", "fixed", 120, 1).await;
    grab(&app, &people[0].token, id).await.expect(201);
    eventually("sent", || async { count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'submitted'").await == 1 })
        .await;
    // A day later WeChat has refunded it; the next check credits the wallet.
    app.mock.wechat.advance_clock(25 * 3600);
    eventually("credited", || async { count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'failed'").await == 1 })
        .await;
    let w = mp_get(&app, &people[0].token, "/mp/v1/me/wallet").await;
    assert_eq!(w["balance_fen"], 120);
    assert_each_grab_paid_once(&app).await;
    let mine = mp_get(&app, &people[0].token, "/mp/v1/me/red-packets").await;
    assert_eq!(mine["items"][0]["in_balance"], true);
}

#[tokio::test]
async fn a_merchant_short_of_money_is_retried_with_the_same_number_until_it_can_pay() {
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 1).await;
    app.mock.set_pay_balance_fen(50);
    let id = campaign(&app, "cash_red_packet", "fixed", 150, 1).await;
    grab(&app, &people[0].token, id).await.expect(201);
    eventually("refused for balance", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE last_code = 'NOTENOUGH' AND state = 'pending'").await == 1
    })
    .await;
    let number: (String,) = sqlx::query_as("SELECT out_no FROM payouts").fetch_one(app.db.reader()).await.unwrap();
    app.mock.set_pay_balance_fen(1_000_000);
    eventually("sent", || async { count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'submitted'").await == 1 })
        .await;
    assert_eq!(app.mock.payments()[0].bill_no, number.0, "no new number without a failed bill");
    assert_each_grab_paid_once(&app).await;
}

/// A transfer: the resident confirms it in the mini-program with `package_info`; WeChat's
/// notification (delivered three times) settles it.
#[tokio::test]
async fn a_transfer_waits_for_the_resident_and_duplicate_notifications_change_nothing() {
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 1).await;
    app.mock.wechat.set_duplicate_notifications(2);
    let id = campaign(&app, "transfer", "fixed", 66, 1).await;
    let g = grab(&app, &people[0].token, id).await.expect(201);
    let payout = g["payout_id"].as_i64().unwrap();
    eventually("waiting for the resident", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'awaiting_confirmation'").await == 1
    })
    .await;
    let mine = mp_get(&app, &people[0].token, &format!("/mp/v1/me/payouts/{payout}")).await;
    assert_eq!(mine["state"], "awaiting_confirmation");
    let package = mine["package_info"].as_str().unwrap().to_owned();
    let bill = app.mock.payments()[0].bill_no.clone();
    assert_eq!(app.mock.transfer_package_info(&bill).as_deref(), Some(package.as_str()));
    assert_eq!(mine["mch_id"], wechat_mock::pay::MCH_ID);
    // The resident confirms in WeChat; the notification arrives (three times).
    app.mock.confirm_transfer(&bill).unwrap();
    app.mock.wechat.deliver_due_notifications().await;
    eventually("succeeded", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'succeeded'").await == 1
    })
    .await;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM payout_events WHERE kind = 'notify'").await, 1);
    let notes = app.mock.wechat.pay_notifications();
    assert!(notes.iter().all(|n| n.acknowledged), "{notes:?}");
    assert_eq!(app.mock.paid_total(&people[0].user.mp_openid), 66);
    assert_each_grab_paid_once(&app).await;
    let history = app.get(&app.root_key, &format!("/admin/v1/payouts/{payout}")).await.expect(200);
    let kinds: Vec<&str> = history["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"queued"));
    assert_eq!(kinds.last(), Some(&"notify"));
    assert_eq!(reconcile_today(&app).await["state"], "matched");
}

#[tokio::test]
async fn a_declined_transfer_is_credited_and_a_failed_bill_gets_a_new_number() {
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 2).await;
    let id = campaign(&app, "transfer", "fixed", 200, 2).await;
    grab(&app, &people[0].token, id).await.expect(201);
    grab(&app, &people[1].token, id).await.expect(201);
    eventually("both waiting", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'awaiting_confirmation'").await == 2
    })
    .await;
    let bill_of = |openid: &str| app.mock.payments().into_iter().find(|p| p.openid == openid).unwrap().bill_no;
    // The first declines: cancelled, the amount goes to the balance.
    let first = bill_of(&people[0].user.mp_openid);
    app.mock.decline_transfer(&first).unwrap();
    app.mock.wechat.deliver_due_notifications().await;
    // The second's bill fails at WeChat: a new number is minted, and that one is confirmed.
    let second = bill_of(&people[1].user.mp_openid);
    app.mock.fail_transfer(&second, "ACCOUNT_FROZEN").unwrap();
    app.mock.wechat.deliver_due_notifications().await;
    eventually("renumbered and waiting", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE attempt = 2 AND state = 'awaiting_confirmation'").await == 1
    })
    .await;
    let (renumbered,): (String,) =
        sqlx::query_as("SELECT out_no FROM payouts WHERE attempt = 2").fetch_one(app.db.reader()).await.unwrap();
    assert_ne!(renumbered, second);
    app.mock.confirm_transfer(&renumbered).unwrap();
    app.mock.wechat.deliver_due_notifications().await;
    eventually("settled", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE state IN ('failed', 'succeeded')").await == 2
    })
    .await;
    let w = mp_get(&app, &people[0].token, "/mp/v1/me/wallet").await;
    assert_eq!(w["balance_fen"], 100);
    assert_eq!(app.mock.paid_total(&people[1].user.mp_openid), 100);
    assert_each_grab_paid_once(&app).await;
    assert_eq!(reconcile_today(&app).await["state"], "matched");

    // The operator sends the declined one again: the balance is taken back, a new number used.
    let (failed,): (i64,) =
        sqlx::query_as("SELECT id FROM payouts WHERE state = 'failed'").fetch_one(app.db.reader()).await.unwrap();
    let retried = app.post(&app.root_key, &format!("/admin/v1/payouts/{failed}/retry"), json!({})).await.expect(200);
    assert_eq!(retried["state"], "pending");
    let w = mp_get(&app, &people[0].token, "/mp/v1/me/wallet").await;
    assert_eq!(w["balance_fen"], 0);
    assert_wallets_balanced(&app).await;
}

#[tokio::test]
async fn forged_stale_and_foreign_notifications_are_refused_and_change_nothing() {
    let app = spawn_pay_app(|_| {}).await;
    let before = count(&app, "SELECT COUNT(*) FROM pay_notifications").await;
    // Unsigned.
    let a = app.post_raw("", "/wechat/pay/notify", "application/json", "{\"id\":\"x\"}").await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["code"], "FAIL");
    // Signed by someone else's key.
    let body = b"{\"id\":\"EV-1\",\"event_type\":\"MCHTRANSFER.BILL.FINISHED\",\"resource\":{}}".to_vec();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let forged = app
        .send(
            app.client
                .post(app.url("/wechat/pay/notify"))
                .header("Wechatpay-Timestamp", &ts)
                .header("Wechatpay-Nonce", "n")
                .header("Wechatpay-Signature", "AAAA")
                .header("Wechatpay-Serial", wechat_mock::pay::WECHATPAY_PUBLIC_KEY_ID)
                .body(body.clone()),
        )
        .await;
    assert_eq!(forged.status, 401);
    // Stale: well signed, but ten minutes old.
    let old = (time::OffsetDateTime::now_utc().unix_timestamp() - 600).to_string();
    let key = wechat_mock::pay::sign::private_key(wechat_mock::pay::config::WECHATPAY_PRIVATE_KEY_PEM).unwrap();
    let message = wechat_mock::pay::sign::v3_response_message(&old, "nonce", std::str::from_utf8(&body).unwrap());
    let signed = wechat_mock::pay::sign::rsa_sign(&key, &message);
    let stale = app
        .send(
            app.client
                .post(app.url("/wechat/pay/notify"))
                .header("Wechatpay-Timestamp", &old)
                .header("Wechatpay-Nonce", "nonce")
                .header("Wechatpay-Signature", signed)
                .header("Wechatpay-Serial", wechat_mock::pay::WECHATPAY_PUBLIC_KEY_ID)
                .body(body),
        )
        .await;
    assert_eq!(stale.status, 401, "{}", stale.body);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM pay_notifications").await, before);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM payout_events").await, 0);
}

#[tokio::test]
async fn payouts_survive_a_crash_between_any_two_steps() {
    let mut app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 6).await;
    // Every send is slow and pays before answering: the crash lands mid-call.
    app.mock.inject_fault(Fault::delay_after("/mmpaymkttransfers/sendredpack", 700, 3)).unwrap();
    let id = campaign(&app, "cash_red_packet", "random", 900, 6).await;
    for r in &people {
        grab(&app, &r.token, id).await.expect(201);
    }
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(350)).await;
        app.crash_and_restart().await;
    }
    eventually("every share sent", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'submitted'").await == 6
    })
    .await;
    assert_eq!(app.mock.payments().len(), 6, "one red packet per share");
    assert!(app.mock.call_count("/mmpaymkttransfers/sendredpack") > 6, "some sends were cut off and made again");
    for p in app.mock.payments() {
        app.mock.receive_red_packet(&p.bill_no).unwrap();
    }
    eventually("every payout succeeded", || async {
        open_payouts(&app).await == 0
            && count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'succeeded'").await == 6
    })
    .await;
    assert_eq!(app.mock.payments().iter().map(|p| p.amount_fen).sum::<i64>(), 900);
    assert_each_grab_paid_once(&app).await;
    assert_eq!(reconcile_today(&app).await["state"], "matched");
}

#[tokio::test]
async fn a_withdrawal_debits_once_and_comes_back_if_declined() {
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 1).await;
    let id = campaign(&app, "balance", "fixed", 500, 1).await;
    grab(&app, &people[0].token, id).await.expect(201);
    let token = &people[0].token;
    let withdraw = |key: &'static str, fen: i64| {
        let req = bearer(app.client.post(app.url("/mp/v1/me/wallet/withdrawals")), token)
            .header("Idempotency-Key", key)
            .json(&json!({ "amount_fen": fen }));
        app.send(req)
    };
    // Below the minimum, above the balance: refused, nothing moves.
    assert_eq!(withdraw("k0", 50).await.status, 422);
    assert_eq!(withdraw("k1", 600).await.code(), "insufficient_balance");
    let first = withdraw("k2", 300).await.expect(201);
    let again = withdraw("k2", 300).await.expect(201);
    assert_eq!(first["id"], again["id"], "the same key answers the same withdrawal");
    assert_eq!(mp_get(&app, token, "/mp/v1/me/wallet").await["balance_fen"], 200);
    eventually("waiting for the resident", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'awaiting_confirmation'").await == 1
    })
    .await;
    let bill = app.mock.payments()[0].bill_no.clone();
    app.mock.decline_transfer(&bill).unwrap();
    app.mock.wechat.deliver_due_notifications().await;
    eventually("credited back", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'failed'").await == 1
    })
    .await;
    assert_eq!(mp_get(&app, token, "/mp/v1/me/wallet").await["balance_fen"], 500);
    let entries = mp_get(&app, token, "/mp/v1/me/wallet/entries").await;
    assert_eq!(entries["page"]["total"], 3);
    assert_wallets_balanced(&app).await;
}

#[tokio::test]
async fn an_operator_of_another_company_cannot_see_or_retry_payouts() {
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 1).await;
    let id = campaign(&app, "cash_red_packet", "fixed", 100, 1).await;
    let g = grab(&app, &people[0].token, id).await.expect(201);
    let payout = g["payout_id"].as_i64().unwrap();
    let other = app.create_org(&app.root_key, 1, "company", "别家物业").await;
    let key = app.create_key(&app.root_key, other, "admin").await;
    assert_eq!(app.get(&key, &format!("/admin/v1/payouts/{payout}")).await.status, 404);
    assert_eq!(app.post(&key, &format!("/admin/v1/payouts/{payout}/retry"), json!({})).await.status, 404);
    assert_eq!(app.get(&key, &format!("/admin/v1/red-packets/{id}")).await.status, 404);
    assert_eq!(app.post(&key, &format!("/admin/v1/red-packets/{id}/end"), json!({})).await.status, 404);
    assert_eq!(app.get(&key, "/admin/v1/payouts").await.expect(200)["page"]["total"], 0);
    assert_eq!(app.post(&key, "/admin/v1/reconciliations", json!({ "bill_date": "2026-01-01" })).await.status, 403);
}

#[tokio::test]
async fn two_instances_on_one_database_dispatch_each_payout_once() {
    let app = spawn_pay_app(|s| s.pay.payouts.batch = 4).await;
    let second = app.another_instance().await;
    let people = residents(&app, 40).await;
    let id = campaign(&app, "cash_red_packet", "random", 8_000, 40).await;
    // Half the grabs through each instance; both dispatchers compete for the payouts.
    let mut grabs = tokio::task::JoinSet::new();
    for (i, r) in people.iter().enumerate() {
        let base = if i % 2 == 0 { app.address.clone() } else { second.address.clone() };
        let (client, token) = (app.client.clone(), r.token.clone());
        grabs.spawn(async move {
            let url = format!("{base}/mp/v1/red-packets/{id}/grabs");
            bearer(client.post(url), &token).send().await.unwrap().status().as_u16()
        });
    }
    assert!(grabs.join_all().await.iter().all(|s| *s == 201));
    eventually("every share sent", || async {
        count(&app, "SELECT COUNT(*) FROM payouts WHERE state = 'submitted'").await == 40
    })
    .await;
    assert_eq!(app.mock.call_count("/mmpaymkttransfers/sendredpack"), 40, "no payout was sent twice");
    assert_eq!(app.mock.payments().iter().map(|p| p.amount_fen).sum::<i64>(), 8_000);
    assert_each_grab_paid_once(&app).await;
}

#[tokio::test]
async fn two_instances_racing_for_scarce_shares_never_grant_beyond_them_or_twice() {
    let app = spawn_pay_app(|_| {}).await;
    let second = app.another_instance().await;
    let people = residents(&app, 60).await;
    // A stock of one, then a stock of seven: every resident presses on both instances at once, so
    // each instance's writer meets the other's grants of the same residents and counts.
    for (shares, total) in [(1, 100), (7, 700)] {
        let id = campaign(&app, "balance", "fixed", total, shares).await;
        let mut presses = tokio::task::JoinSet::new();
        for r in &people {
            for base in [app.address.clone(), second.address.clone()] {
                let (client, token) = (app.client.clone(), r.token.clone());
                presses.spawn(async move {
                    let url = format!("{base}/mp/v1/red-packets/{id}/grabs");
                    bearer(client.post(url), &token).send().await.unwrap().status().as_u16()
                });
            }
        }
        let statuses = presses.join_all().await;
        assert_eq!(statuses.iter().filter(|s| **s == 201).count() as i64, shares, "{statuses:?}");
        assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
        let sql = format!("SELECT COUNT(*) FROM rp_grabs WHERE campaign_id = {id}");
        assert_eq!(count(&app, &sql).await, shares);
        let sql = format!("SELECT COUNT(DISTINCT resident_id) FROM rp_grabs WHERE campaign_id = {id}");
        assert_eq!(count(&app, &sql).await, shares, "nobody twice");
        let sql = format!("SELECT granted FROM rp_campaigns WHERE id = {id}");
        assert_eq!(count(&app, &sql).await, shares, "the count matches the grabs");
        let sql = format!("SELECT CAST(SUM(amount_fen) AS BIGINT) FROM rp_grabs WHERE campaign_id = {id}");
        assert_eq!(count(&app, &sql).await, total, "the sum is exact");
    }
    assert_wallets_balanced(&app).await;
}

#[tokio::test]
async fn a_holder_pressing_again_after_the_last_share_hears_already_grabbed() {
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 3).await;
    let id = campaign(&app, "balance", "fixed", 200, 2).await;
    grab(&app, &people[0].token, id).await.expect(201);
    grab(&app, &people[1].token, id).await.expect(201);
    // Sold out now, and known so in memory after the first late press: a holder (a retry whose
    // answer was lost) still hears that they hold a share, a late comer that none is left.
    for _ in 0..2 {
        let late = grab(&app, &people[2].token, id).await;
        assert_eq!((late.status.as_u16(), late.code()), (409, "sold_out"));
        let again = grab(&app, &people[0].token, id).await;
        assert_eq!((again.status.as_u16(), again.code()), (409, "already_grabbed"));
    }
}

#[tokio::test]
async fn one_resident_pressing_ten_times_at_once_gets_one_share() {
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 1).await;
    let id = campaign(&app, "balance", "random", 1_000, 5).await;
    let mut presses = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (client, url, token) =
            (app.client.clone(), app.url(&format!("/mp/v1/red-packets/{id}/grabs")), people[0].token.clone());
        presses.spawn(async move { bearer(client.post(url), &token).send().await.unwrap().status().as_u16() });
    }
    let statuses = presses.join_all().await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM rp_grabs").await, 1);
    assert_eq!(count(&app, "SELECT granted FROM rp_campaigns").await, 1, "refused presses gave their shares back");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM wallet_ledger").await, 1);
    assert_wallets_balanced(&app).await;
}

/// Residents logged in to the mini-program who do not follow the official account: outside a
/// followers' campaign.
async fn strangers(app: &OaApp, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let user = app.mock.add_user();
        let code = app.mock.login_code(&user);
        let s = app.send(app.client.post(app.url("/mp/v1/sessions")).json(&json!({ "code": code }))).await.expect(201);
        out.push(s["access_token"].as_str().expect("logged in").to_owned());
    }
    out
}

/// Presses `times` at once as `token`, spread over `bases`; answers each (status, code).
fn hammer(
    app: &OaApp,
    presses: &mut tokio::task::JoinSet<(String, u16, String)>,
    bases: &[String],
    who: &str,
    token: &str,
    id: i64,
    times: usize,
) {
    for i in 0..times {
        let (client, token, who) = (app.client.clone(), token.to_owned(), who.to_owned());
        let url = format!("{}/mp/v1/red-packets/{id}/grabs", bases[i % bases.len()]);
        presses.spawn(async move {
            let r = bearer(client.post(url), &token).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (who, status, body["code"].as_str().unwrap_or("").to_owned())
        });
    }
}

/// A holder and an outsider pressing fifty times at once, on every instance, while fresh
/// residents press too: the refusals are theirs alone. Fresh residents keep getting shares, the
/// campaign stays listed, and only the last share closes it.
async fn hammering_by_holders_and_outsiders_closes_nothing(instances: usize) {
    let app = spawn_pay_app(|_| {}).await;
    let mut others = Vec::new();
    for _ in 1..instances {
        others.push(app.another_instance().await);
    }
    let bases: Vec<String> =
        std::iter::once(app.address.clone()).chain(others.iter().map(|o| o.address.clone())).collect();
    let people = residents(&app, 21).await;
    let outsider = strangers(&app, 1).await.remove(0);
    let shares = 30;
    let id = campaign(&app, "balance", "fixed", shares * 100, shares).await;
    let holder = &people[0];
    grab(&app, &holder.token, id).await.expect(201);

    let mut presses = tokio::task::JoinSet::new();
    for round in 0..2 {
        hammer(&app, &mut presses, &bases, "holder", &holder.token, id, 50);
        hammer(&app, &mut presses, &bases, "outsider", &outsider, id, 50);
        // Fresh residents press in the middle of it, on every instance.
        for (i, r) in people[1 + round * 5..1 + (round + 1) * 5].iter().enumerate() {
            hammer(&app, &mut presses, &bases[i % bases.len()..], "fresh", &r.token, id, 1);
        }
    }
    for (who, status, code) in presses.join_all().await {
        match who.as_str() {
            "holder" => {
                assert!((status, code.as_str()) == (409, "already_grabbed") || status == 429, "{status} {code}")
            }
            "outsider" => assert!(status == 403 || status == 429, "outsider: {status} {code}"),
            _ => assert_eq!((status, code.as_str()), (201, ""), "a fresh resident was refused"),
        }
    }
    // Afterwards, on every instance, the next fresh residents still get shares and the campaign
    // is still listed as open.
    for (i, r) in people[11..21].iter().enumerate() {
        let base = &bases[i % bases.len()];
        let url = format!("{base}/mp/v1/red-packets/{id}/grabs");
        let a = app.send(bearer(app.client.post(url), &r.token)).await;
        assert_eq!(a.status.as_u16(), 201, "fresh resident after the hammering on {base}: {}", a.body);
        let listed = app.send(bearer(app.client.get(format!("{base}/mp/v1/red-packets")), &r.token)).await.expect(200);
        assert!(listed.to_string().contains(&format!("\"id\":{id}")), "still listed on {base}: {listed}");
    }
    let sql = format!("SELECT COUNT(*) FROM rp_grabs WHERE campaign_id = {id}");
    assert_eq!(count(&app, &sql).await, 21, "the holder once and twenty fresh residents");
    let sql = format!("SELECT granted FROM rp_campaigns WHERE id = {id}");
    assert_eq!(count(&app, &sql).await, 21);
    // Only the campaign's own count closes it: the rest of the shares go, then sold out.
    let rest = residents(&app, (shares - 21) as usize + 1).await;
    for r in &rest[..(shares - 21) as usize] {
        grab(&app, &r.token, id).await.expect(201);
    }
    let late = grab(&app, &rest.last().unwrap().token, id).await;
    assert_eq!((late.status.as_u16(), late.code()), (409, "sold_out"));
    assert_wallets_balanced(&app).await;
}

#[tokio::test]
async fn a_holder_and_an_outsider_hammering_a_red_packet_close_it_for_nobody() {
    hammering_by_holders_and_outsiders_closes_nothing(1).await;
}

#[tokio::test]
async fn a_holder_and_an_outsider_hammering_two_instances_close_it_on_neither() {
    hammering_by_holders_and_outsiders_closes_nothing(2).await;
}

#[tokio::test]
async fn the_open_red_packets_list_pages_like_every_other_list() {
    let app = spawn_pay_app(|_| {}).await;
    let people = residents(&app, 1).await;
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(campaign(&app, "balance", "fixed", 100, 1).await);
    }
    let mut seen = Vec::new();
    for (n, expected) in [(1, 2), (2, 1), (3, 0)] {
        let listed = mp_get(&app, &people[0].token, &format!("/mp/v1/red-packets?page={n}&page_size=2")).await;
        let items = listed["items"].as_array().unwrap();
        assert_eq!(items.len(), expected, "page {n}: {listed}");
        seen.extend(items.iter().map(|c| c["id"].as_i64().unwrap()));
    }
    seen.sort_unstable();
    made.sort_unstable();
    assert_eq!(seen, made, "each campaign on exactly one page");
}
