//! Abuse limits: a resident, an API key or a login IP over its rate gets 429 with `Retry-After`,
//! and nothing happens for it.

use serde_json::json;

use crate::helpers::{bearer, eventually, spawn_app, spawn_oa_app_with};

#[tokio::test]
async fn residents_keys_and_login_addresses_over_their_rate_get_429_with_retry_after() {
    use linli::api::limits::Rate;
    let app = spawn_oa_app_with(|s| {
        s.rate_limits = linli::config::RateLimits {
            per_resident: Rate { per_sec: 1, burst: 5 },
            per_key: Rate { per_sec: 1, burst: 5 },
            login_per_ip: Rate { per_sec: 1, burst: 3 },
        };
    })
    .await;
    // Logins from one address: three pass, the fourth waits.
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(app.login(&app.mock.add_user()).await);
    }
    let user = app.mock.add_user();
    let code = app.mock.login_code(&user);
    let refused = app.post("", "/mp/v1/sessions", json!({ "code": code })).await;
    assert_eq!((refused.status.as_u16(), refused.code()), (429, "too_many_requests"));
    assert!(refused.headers.get("retry-after").is_some());
    assert_eq!(app.count("SELECT COUNT(*) FROM mp_sessions").await, 3, "the refused login made no session");
    // One resident: five requests pass, the sixth is refused; another resident is not affected.
    for _ in 0..5 {
        app.send(bearer(app.client.get(app.url("/mp/v1/me")), &tokens[0])).await.expect(200);
    }
    let over = app.send(bearer(app.client.get(app.url("/mp/v1/me")), &tokens[0])).await;
    assert_eq!(over.status, 429);
    app.send(bearer(app.client.get(app.url("/mp/v1/me")), &tokens[1])).await.expect(200);
    // One API key: the same.
    let key = app.create_key(&app.root_key, app.company_id, "operator").await;
    for _ in 0..5 {
        app.get(&key, "/admin/v1/me").await.expect(200);
    }
    assert_eq!(app.get(&key, "/admin/v1/me").await.status, 429);
    // The OA webhook is not limited here: WeChat retries, and pushes are deduplicated.
}

/// The shared buckets' one statement: a burst, then the rate, never past the burst however long
/// the bucket rests, and nothing refilled for a clock behind the last take. Runs on both engines.
#[tokio::test]
async fn a_bucket_in_the_database_allows_its_burst_then_its_rate() {
    use linli::db::limits::{take_shared, BucketShape};
    let app = spawn_app().await;
    // From now on (the app's heartbeat forgets buckets idle for a minute of real time).
    let t = linli::db::now_ms();
    // A burst of three, one request a second.
    let shape = BucketShape { capacity: 3_000_000, refill_per_ms: 1_000, cost: 1_000_000 };
    let take = |now: i64| take_shared(&app.db, "test:a", shape, now);
    for left in [2_000_000, 1_000_000, 0] {
        let taken = take(t).await.unwrap();
        assert_eq!((taken.granted, taken.tokens), (true, left));
    }
    let refused = take(t).await.unwrap();
    assert_eq!((refused.granted, refused.tokens), (false, 0));
    assert_eq!(take(t + 500).await.unwrap().tokens, 500_000, "half a second refills half a request");
    assert!(take(t + 1_000).await.unwrap().granted);
    assert!(!take(t + 1_000).await.unwrap().granted);
    // Another bucket is another count.
    assert!(take_shared(&app.db, "test:b", shape, t + 1_000).await.unwrap().granted);
    // A day's rest fills the bucket to its burst and no further.
    let day = t + 86_401_000;
    let rested = take(day).await.unwrap();
    assert_eq!((rested.granted, rested.tokens), (true, 2_000_000));
    // A clock behind the last take refills nothing.
    assert_eq!(take(t + 50_000).await.unwrap().tokens, 1_000_000);
    // Idle buckets are forgotten; a forgotten bucket starts full.
    let forgotten = linli::db::limits::forget_idle_buckets(&app.db, day).await.unwrap();
    assert_eq!(forgotten, 1, "test:b rested since t + 1 s");
    let fresh = take_shared(&app.db, "test:b", shape, day).await.unwrap();
    assert_eq!((fresh.granted, fresh.tokens), (true, 2_000_000));
}

/// The heartbeat table counts the instances heard from recently and forgets the silent ones.
#[tokio::test]
async fn instances_count_as_live_while_they_beat() {
    use linli::db::limits::{heartbeat, leave};
    let app = spawn_app().await;
    // spawn_app's own instance beats too on PostgreSQL; these run far in its future.
    let t = 10_000_000_000_000;
    assert_eq!(heartbeat(&app.db, "a", t, t - 300, 0).await.unwrap(), 1);
    assert_eq!(heartbeat(&app.db, "b", t + 100, t - 200, 0).await.unwrap(), 2);
    // `a` has not beaten since t: past the window it no longer counts.
    assert_eq!(heartbeat(&app.db, "b", t + 400, t + 100, 0).await.unwrap(), 1);
    assert_eq!(heartbeat(&app.db, "a", t + 450, t + 100, 0).await.unwrap(), 2);
    leave(&app.db, "a").await.unwrap();
    assert_eq!(heartbeat(&app.db, "b", t + 500, t + 100, 0).await.unwrap(), 1);
    // Rows silent since before `forget_before` are deleted.
    heartbeat(&app.db, "a", t + 550, t + 100, 0).await.unwrap();
    heartbeat(&app.db, "b", t + 600, t + 100, t + 560).await.unwrap();
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM instances WHERE id IN ('a', 'b')")
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

/// The live-instance count an instance's `/metrics` shows.
async fn live_instances(client: &reqwest::Client, address: &str) -> u32 {
    let text = client.get(format!("{address}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("linli_instances_live "))
        .and_then(|n| n.trim().parse().ok())
        .expect("linli_instances_live in /metrics")
}

/// Two instances sharing one PostgreSQL: a client that spreads its requests over both gets no
/// more than the configured limit in total, for logins per address, residents and API keys.
#[tokio::test]
async fn two_instances_on_one_postgres_hold_a_client_to_one_limit() {
    use linli::api::limits::Rate;
    let limited = Rate { per_sec: 1, burst: 4 };
    let app = spawn_oa_app_with(move |s| {
        s.rate_limits = linli::config::RateLimits { per_resident: limited, per_key: limited, login_per_ip: limited };
        s.instance_heartbeat = std::time::Duration::from_millis(100);
    })
    .await;
    if app.db.engine() != linli::db::Engine::Postgres {
        eprintln!("skipped: instances share limits through PostgreSQL only (set TEST_DATABASE_URL)");
        return;
    }
    let other = app.another_instance().await;
    let addresses = [app.address.clone(), other.address.clone()];
    for address in &addresses {
        eventually("both instances count two live instances", || async {
            live_instances(&app.client, address).await == 2
        })
        .await;
    }
    let started = std::time::Instant::now();
    // Each instance alone would allow a burst of four: eight in all. Together they allow four,
    // plus one a second while the test runs.
    let bound = |started: std::time::Instant| 4 + started.elapsed().as_secs() as usize + 1;

    // Logins from one address, alternating between the instances.
    let mut tokens = Vec::new();
    let mut refused = 0;
    for i in 0..12 {
        let code = app.mock.login_code(&app.mock.add_user());
        let url = format!("{}/mp/v1/sessions", addresses[i % 2]);
        let answer = app.send(app.client.post(url).json(&json!({ "code": code }))).await;
        match answer.status.as_u16() {
            201 => tokens.push(answer.body["access_token"].as_str().unwrap().to_owned()),
            429 => {
                assert!(answer.headers.get("retry-after").is_some());
                refused += 1;
            }
            other => panic!("login answered {other}: {}", answer.body),
        }
    }
    assert!(tokens.len() >= 4 && tokens.len() < bound(started), "{} logins passed", tokens.len());
    assert_eq!(tokens.len() + refused, 12);

    // One resident, alternating: each instance holds half the burst and half the rate.
    let started = std::time::Instant::now();
    let mut passed = 0;
    for i in 0..12 {
        let req = bearer(app.client.get(format!("{}/mp/v1/me", addresses[i % 2])), &tokens[0]);
        match app.send(req).await.status.as_u16() {
            200 => passed += 1,
            429 => {}
            other => panic!("GET /mp/v1/me answered {other}"),
        }
    }
    assert!(passed >= 4 && passed < bound(started), "{passed} of the resident's requests passed");

    // One API key, alternating.
    let key = app.create_key(&app.root_key, app.company_id, "operator").await;
    let started = std::time::Instant::now();
    let mut passed = 0;
    for i in 0..12 {
        let req = app.client.get(format!("{}/admin/v1/me", addresses[i % 2])).header("X-Api-Key", &key);
        match app.send(req).await.status.as_u16() {
            200 => passed += 1,
            429 => {}
            other => panic!("GET /admin/v1/me answered {other}"),
        }
    }
    assert!(passed >= 4 && passed < bound(started), "{passed} of the key's requests passed");

    // An instance that stops leaves at once: the other counts itself alone again.
    drop(other);
    eventually("the remaining instance counts itself alone", || async {
        live_instances(&app.client, &app.address).await == 1
    })
    .await;
}
