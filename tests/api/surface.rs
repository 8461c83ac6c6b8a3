//! The HTTP surface shared by every route: errors, request ids, body caps, health, metrics, docs.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn health_readiness_metrics_and_docs_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("", "/healthz").await.expect(200)["status"], "ok");
    assert_eq!(app.get("", "/readyz").await.expect(200)["status"], "ready");
    let spec = app.get("", "/openapi.json").await.expect(200);
    assert!(spec["paths"]["/admin/v1/orgs"]["post"]["operationId"] == "create_org");
    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.text().await.unwrap().to_lowercase().contains("swagger"));

    app.get(&app.root_key, "/admin/v1/orgs").await.expect(200);
    app.get(&app.root_key, "/admin/v1/orgs/424242").await.expect(404);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"linli_http_requests_total{method="GET",route="list_orgs",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"linli_http_requests_total{method="GET",route="get_org",status="404"} 1"#), "{metrics}");
    assert!(metrics
        .contains("linli_http_request_duration_seconds_bucket{method=\"GET\",route=\"list_orgs\",le=\"+Inf\"} 1"));
    assert!(metrics.contains("linli_db_pool_connections{pool="), "{metrics}");
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.db.close().await;
    let a = app.get("", "/readyz").await;
    assert_eq!(a.status.as_u16(), 503);
    let a = app.get(&app.root_key, "/admin/v1/orgs").await;
    assert!(a.status.is_server_error(), "{}", a.body);
    assert!(!a.body.to_string().to_lowercase().contains("pool"), "internal details leaked: {}", a.body);
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/healthz")).header("X-Request-Id", "trace-abc.123").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-abc.123");
    let resp = app.client.get(app.url("/healthz")).header("X-Request-Id", "bad id with spaces").send().await.unwrap();
    let made = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 32);
    let a = app.get(&app.root_key, "/admin/v1/rooms/777").await;
    assert_eq!(a.status.as_u16(), 404);
    crate::helpers::assert_error_body(&a);
}

#[tokio::test]
async fn bad_input_gets_a_typed_error_and_changes_nothing() {
    let app = spawn_app().await;
    let company = app.create_org(&app.root_key, 1, "company", "Acme").await;
    let before = app.fingerprint().await;
    let key = &app.root_key;
    let cases = [
        ("malformed JSON", app.post_raw(key, "/admin/v1/orgs", "application/json", "{\"parent_id\": 1,").await, 400),
        (
            "unknown field",
            app.post(key, "/admin/v1/orgs", json!({"parent_id": 1, "kind": "company", "name": "X", "owner": "me"}))
                .await,
            400,
        ),
        (
            "wrong type",
            app.post(key, "/admin/v1/orgs", json!({"parent_id": "one", "kind": "company", "name": "X"})).await,
            400,
        ),
        (
            "unknown enum",
            app.post(key, "/admin/v1/orgs", json!({"parent_id": 1, "kind": "castle", "name": "X"})).await,
            400,
        ),
        (
            "too long",
            app.post(key, "/admin/v1/orgs", json!({"parent_id": 1, "kind": "company", "name": "x".repeat(65)})).await,
            400,
        ),
        ("blank", app.post(key, "/admin/v1/orgs", json!({"parent_id": 1, "kind": "company", "name": "  "})).await, 422),
        (
            "missing field",
            app.post(key, "/admin/v1/rooms", json!({"community_id": company, "building": "1"})).await,
            400,
        ),
        ("id out of range", app.get(key, "/admin/v1/orgs/99999999999999999999").await, 400),
        ("no body", app.post_raw(key, "/admin/v1/orgs", "application/json", "").await, 400),
        ("wrong media type", app.post_raw(key, "/admin/v1/orgs", "text/plain", "hello").await, 415),
        ("unknown route", app.get(key, "/admin/v1/castles").await, 404),
        (
            "wrong method",
            app.send(app.client.put(app.url("/admin/v1/orgs")).header("X-Api-Key", key.as_str())).await,
            405,
        ),
    ];
    for (what, answer, status) in cases {
        assert_eq!(answer.status.as_u16(), status, "{what}: {}", answer.body);
        crate::helpers::assert_error_body(&answer);
    }
    let named =
        app.post(key, "/admin/v1/orgs", json!({"parent_id": 1, "kind": "company", "name": "x".repeat(65)})).await;
    assert!(named.body["message"].as_str().unwrap().contains("name"), "{}", named.body);
    let named =
        app.post(key, "/admin/v1/orgs", json!({"parent_id": 1, "kind": "company", "name": "X", "owner": "me"})).await;
    assert!(named.body["message"].as_str().unwrap().contains("owner"), "{}", named.body);
    assert_eq!(app.fingerprint().await, before);
}

#[tokio::test]
async fn request_bodies_are_capped() {
    let app = spawn_app_with(|s| s.max_body_bytes = 1024).await;
    let before = app.fingerprint().await;
    let big = format!("building,number\n{}", "1,101\n".repeat(400));
    let a = app.post_raw(&app.root_key, "/admin/v1/communities/1/rooms/import", "text/csv", big.clone()).await;
    assert_eq!((a.status.as_u16(), a.code()), (413, "payload_too_large"));
    // Without a declared length (chunked), the cap still holds.
    assert_eq!(post_chunked(&app, "/admin/v1/communities/1/rooms/import", &big).await, 413);
    assert_eq!(app.fingerprint().await, before);
}

/// Sends a chunked POST (no Content-Length) over a raw socket; returns the status code.
async fn post_chunked(app: &crate::helpers::TestApp, path: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nX-Api-Key: {}\r\nContent-Type: text/csv\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.root_key
    );
    let _ = sock.write_all(head.as_bytes()).await;
    for chunk in body.as_bytes().chunks(100) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The server may answer and close before the whole body is sent.
        if sock.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}
