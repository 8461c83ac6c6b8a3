//! Abuse limits: a resident, an API key or a login IP over its rate gets 429 with `Retry-After`,
//! and nothing happens for it.

use serde_json::json;

use crate::helpers::{bearer, spawn_oa_app_with};

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
