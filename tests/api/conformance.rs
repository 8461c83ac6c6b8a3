//! Answers the spec must describe, as the API fuzzer (`sdk/schemathesis/run.sh`) holds them:
//! each test here sends what it once found answered outside the spec.

use crate::helpers::{assert_error_body, spawn_app, TestApp};

fn spec() -> serde_json::Value {
    serde_json::from_str(&linli::api::openapi_service().spec()).unwrap()
}

/// A request path for a spec path: each `{parameter}` becomes `1`.
fn concrete(path: &str) -> String {
    path.split('/').map(|s| if s.starts_with('{') { "1" } else { s }).collect::<Vec<_>>().join("/")
}

async fn allow_of(app: &TestApp, method: reqwest::Method, path: &str) -> (u16, Option<String>, serde_json::Value) {
    let resp = app.client.request(method, app.url(path)).header("X-Api-Key", &app.root_key).send().await.unwrap();
    let status = resp.status().as_u16();
    let allow = resp.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
    (status, allow, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_body_without_a_content_type_is_a_documented_415() {
    let app = spawn_app().await;
    let before = app.fingerprint().await;
    // The fuzzer's request: a PATCH with no body and so no Content-Type.
    let a = app.send(app.client.patch(app.url("/admin/v1/orgs/1")).header("X-Api-Key", &app.root_key)).await;
    assert_eq!((a.status.as_u16(), a.code()), (415, "unsupported_media_type"), "{}", a.body);
    assert_error_body(&a);
    let a = app
        .send(app.client.post(app.url("/admin/v1/orgs")).header("X-Api-Key", &app.root_key).body(r#"{"name":"X"}"#))
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (415, "unsupported_media_type"), "{}", a.body);
    assert_error_body(&a);
    assert_eq!(app.fingerprint().await, before);

    // Every operation that takes a body says it may answer so.
    for (path, item) in spec()["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_some() {
                let answer = &op["responses"]["415"];
                assert!(answer.is_object(), "{method} {path} takes a body but does not document 415");
                assert!(answer["content"]["application/json; charset=utf-8"].is_object(), "{method} {path}: {answer}");
            }
        }
    }
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_405_with_allow() {
    let app = spawn_app().await;
    // What the fuzzer sent: TRACE to an operation's path.
    let (status, allow, body) = allow_of(&app, reqwest::Method::TRACE, "/admin/v1/audit-log").await;
    assert_eq!((status, allow.as_deref()), (405, Some("GET, HEAD")));
    assert_eq!(body["code"], "method_not_allowed");
    let (status, allow, _) = allow_of(&app, reqwest::Method::PUT, "/admin/v1/orgs").await;
    assert_eq!((status, allow.as_deref()), (405, Some("GET, HEAD, POST")));
    let (status, allow, _) = allow_of(&app, reqwest::Method::POST, "/admin/v1/orgs/2").await;
    assert_eq!((status, allow.as_deref()), (405, Some("GET, HEAD, PATCH, DELETE")));
    // Routes outside the spec too.
    let (status, allow, _) = allow_of(&app, reqwest::Method::POST, "/healthz").await;
    assert_eq!((status, allow.as_deref()), (405, Some("GET, HEAD")));
    let (status, allow, _) = allow_of(&app, reqwest::Method::GET, "/wechat/pay/notify").await;
    assert_eq!((status, allow.as_deref()), (405, Some("POST")));

    // Every path of the spec lists exactly the methods the spec gives it.
    for (path, item) in spec()["paths"].as_object().unwrap() {
        let methods: Vec<String> = item.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect();
        let (status, allow, _) = allow_of(&app, reqwest::Method::TRACE, &concrete(path)).await;
        assert_eq!(status, 405, "TRACE {path}");
        let mut listed: Vec<String> = allow.unwrap_or_default().split(", ").map(str::to_owned).collect();
        listed.retain(|m| !(m == "HEAD" && methods.iter().any(|x| x == "GET")));
        listed.sort();
        let mut want = methods.clone();
        want.sort();
        assert_eq!(listed, want, "Allow of {path}");
    }
}

#[tokio::test]
async fn fields_that_null_clears_are_nullable_in_the_spec() {
    let app = spawn_app().await;
    let company = app.create_org(&app.root_key, 1, "company", "Acme").await;
    let path = format!("/admin/v1/orgs/{company}");
    app.patch(&app.root_key, &path, serde_json::json!({"contact_phone": "021-5555"})).await.expect(200);
    // The fuzzer's request: `null` where the spec said only a string would do, and it was taken.
    let cleared = app
        .patch(&app.root_key, &path, serde_json::json!({"name": "0", "contact_name": "", "contact_phone": null}))
        .await
        .expect(200);
    assert_eq!(cleared["contact_phone"], serde_json::Value::Null);

    let schemas = &spec()["components"]["schemas"];
    for (schema, field) in [
        ("UpdateOrg", "address"),
        ("UpdateOrg", "contact_name"),
        ("UpdateOrg", "contact_phone"),
        ("UpdateCatalogueItem", "description"),
        ("UpdateCatalogueItem", "available_from"),
        ("UpdateCatalogueItem", "available_until"),
    ] {
        let prop = &schemas[schema]["properties"][field];
        assert_eq!(prop["nullable"], true, "{schema}.{field} is cleared by null but not nullable: {prop}");
    }
}
