//! Slow clients: a client that sends its headers or its body too slowly loses its connection
//! (with a 408 when an answer is still possible), and a client at normal speed does not notice.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app_with, TestApp};

const DEADLINE: Duration = Duration::from_millis(600);

async fn spawn_strict_app() -> TestApp {
    spawn_app_with(|s| {
        s.header_read_timeout = Some(DEADLINE);
        s.body_read_timeout = Some(DEADLINE);
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://")).await.expect("connect")
}

/// Reads until the server closes the connection (or resets it); answers what arrived and when
/// the connection ended. Panics if it stays open for 10 s.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Instant) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept a stalled connection open; got so far: {:?}", received),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into_owned(), Instant::now()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_disconnected() {
    let app = spawn_strict_app().await;
    let mut stream = connect(&app).await;
    let sent = Instant::now();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: linli\r\nUser-Agent: slow").await.unwrap();
    let (answer, closed) = read_until_closed(&mut stream).await;
    let held = closed - sent;
    assert!(answer.is_empty(), "no answer to half a request: {answer}");
    assert!(held >= DEADLINE - Duration::from_millis(100), "closed too soon: {held:?}");
    assert!(held < DEADLINE * 5, "held for {held:?}");
}

/// A client that keeps trickling header bytes keeps no connection past the deadline: the
/// deadline is for the whole head, not between bytes.
#[tokio::test]
async fn a_client_that_trickles_its_headers_is_disconnected_at_the_deadline() {
    let app = spawn_strict_app().await;
    let stream = connect(&app).await;
    let (mut reader, mut writer) = stream.into_split();
    let sent = Instant::now();
    let trickle = tokio::spawn(async move {
        writer.write_all(b"GET /healthz HTTP/1.1\r\nHost: linli\r\n").await?;
        // A byte every 50 ms, for up to ten deadlines.
        for _ in 0..120 {
            writer.write_all(b"X").await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut buf = [0u8; 1024];
    let ended = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf)).await;
    let held = sent.elapsed();
    assert!(matches!(ended, Ok(Ok(0)) | Ok(Err(_))), "the connection stayed open: {ended:?}");
    assert!(held < DEADLINE * 3, "a trickling client held its connection for {held:?}");
    trickle.abort();
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_and_the_connection_closed() {
    let app = spawn_strict_app().await;
    let orgs_before = app.get(&app.root_key, "/admin/v1/orgs").await.expect(200)["page"]["total"].clone();
    let mut stream = connect(&app).await;
    let head = format!(
        "POST /admin/v1/orgs HTTP/1.1\r\nHost: linli\r\nX-Api-Key: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 200\r\n\r\n{{\"parent_id\": 1, \"kind\": \"com",
        app.root_key
    );
    let sent = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (answer, closed) = read_until_closed(&mut stream).await;
    let held = closed - sent;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("connection: close"), "{answer}");
    assert!(lower.contains("x-request-id"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").expect("a body") + 4..];
    let error: serde_json::Value = serde_json::from_str(body).expect("a JSON error body");
    assert_eq!(error["code"], "request_timeout");
    assert!(error["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(held >= DEADLINE - Duration::from_millis(100) && held < DEADLINE * 5, "answered after {held:?}");
    let orgs_after = app.get(&app.root_key, "/admin/v1/orgs").await.expect(200)["page"]["total"].clone();
    assert_eq!(orgs_before, orgs_after, "the stalled request made nothing");
}

/// Requests at normal speed, one after another on a kept-alive connection, pass untouched.
#[tokio::test]
async fn clients_at_normal_speed_are_not_affected() {
    let app = spawn_strict_app().await;
    for i in 0..3 {
        app.get("", "/healthz").await.expect(200);
        let name = format!("物业{i}");
        app.post(&app.root_key, "/admin/v1/orgs", json!({ "parent_id": 1, "kind": "company", "name": name }))
            .await
            .expect(201);
    }
    // A client that waits between requests on one connection (shorter than the deadline) is
    // served each time.
    let mut stream = connect(&app).await;
    for _ in 0..2 {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: linli\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(DEADLINE / 3).await;
    }
}
