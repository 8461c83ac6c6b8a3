//! Answers the spec must describe, as the API fuzzer (`sdk/schemathesis/run.sh`) holds them:
//! each test here sends what it once found answered outside the spec.

use serde_json::{json, Value};

use crate::helpers::{assert_error_body, bearer, spawn_app, spawn_oa_app, Answer, OaApp, TestApp};

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

/// A body its schema refuses: 400 `invalid_body`, with the message naming the field.
#[track_caller]
fn assert_refused(a: &Answer, message: &str) {
    assert_eq!((a.status.as_u16(), a.code()), (400, "invalid_body"), "{}", a.body);
    assert_eq!(a.body["message"], message);
    assert_error_body(a);
}

/// Everything a refused body could have changed, admin side and resident side.
async fn state(app: &OaApp) -> (Vec<(String, i64, i64)>, i64) {
    let mp = "SELECT (SELECT COUNT(*) FROM residents) * 1000000 + (SELECT COUNT(*) FROM mp_sessions) * 1000 \
              + (SELECT COUNT(*) FROM bindings)";
    (app.fingerprint().await, app.count(mp).await)
}

async fn as_resident(app: &OaApp, token: &str, path: &str, body: Value) -> Answer {
    let req = app.client.post(app.url(path)).json(&body);
    app.send(if token.is_empty() { req } else { bearer(req, token) }).await
}

#[tokio::test]
async fn schema_violating_bodies_are_refused_typed_and_change_nothing() {
    let app = spawn_oa_app(None, 300).await;
    let community = app.community_with_roster().await;
    let token = app.login(&app.mock.add_user()).await;
    let key = app.root_key.clone();
    let room =
        |building: Value, number: Value| json!({"community_id": community, "building": building, "number": number});
    let before = state(&app).await;

    // What the fuzzer found stored: a boolean or a number as a string's text, null as absent.
    let a = app.post(&key, "/admin/v1/rooms", room(json!("2"), json!(false))).await;
    assert_refused(&a, "`number` must be a string, not a boolean");
    let a = app.post(&key, "/admin/v1/rooms", room(json!(2), json!("201"))).await;
    assert_refused(&a, "`building` must be a string, not a number");
    let a = app
        .post(&key, "/admin/v1/rooms", json!({"community_id": community.to_string(), "building": "2", "number": "201"}))
        .await;
    assert_refused(&a, "`community_id` must be an integer, not a string");
    let a = app.patch(&key, &format!("/admin/v1/orgs/{}", app.company_id), json!({"name": null})).await;
    assert_refused(&a, "`name` must be a string, not null");
    let a = app
        .post(&key, &format!("/admin/v1/communities/{community}/rooms/import"), json!({"rows": {"building": "3"}}))
        .await;
    assert_refused(&a, "`rows` must be an array, not an object");
    let row =
        json!({"name": "李四", "phone": "13800138002", "building": "1", "unit": "1", "number": "102", "role": null});
    let a = app.post(&key, &format!("/admin/v1/communities/{community}/roster/import"), json!({"rows": [row]})).await;
    assert_refused(&a, "`rows[0].role` must be a string, not null");

    // The mini-program: logging in, and binding myself to my home.
    let a = as_resident(&app, "", "/mp/v1/sessions", json!({"code": 12345})).await;
    assert_refused(&a, "`code` must be a string, not a number");
    let bind = json!({"community_id": community, "building": "1", "unit": "1", "number": 101, "role": "owner",
                      "name": "张三", "phone": "13800138000"});
    let a = as_resident(&app, &token, "/mp/v1/me/bindings", bind.clone()).await;
    assert_refused(&a, "`number` must be a string, not a number");
    let mut no_role = bind.clone();
    no_role["number"] = json!("101");
    no_role["role"] = Value::Null;
    assert_refused(
        &as_resident(&app, &token, "/mp/v1/me/bindings", no_role).await,
        "`role` must be a string, not null",
    );

    // Authentication still comes first: a stranger learns nothing about the body.
    let a = app.post("", "/admin/v1/rooms", room(json!("2"), json!(false))).await;
    assert_eq!((a.status.as_u16(), a.code()), (401, "unauthorized"), "{}", a.body);
    let a = as_resident(&app, "ms_nosuchsession", "/mp/v1/me/bindings", bind.clone()).await;
    assert_eq!(a.status.as_u16(), 401, "{}", a.body);

    assert_eq!(state(&app).await, before, "a refused body changed something");

    // Bodies that fit their schemas are taken as before, and null still clears what is nullable.
    let created = app.post(&key, "/admin/v1/rooms", room(json!("2"), json!("201"))).await.expect(201);
    assert_eq!(created["number"], "201");
    let org = format!("/admin/v1/orgs/{}", app.company_id);
    app.patch(&key, &org, json!({"address": "1 Road", "contact_phone": "021-5555"})).await.expect(200);
    let cleared = app.patch(&key, &org, json!({"address": null, "contact_phone": null})).await.expect(200);
    assert_eq!((&cleared["address"], &cleared["contact_phone"]), (&Value::Null, &Value::Null));
    let mut ok = bind.clone();
    ok["number"] = json!("101");
    let bound = as_resident(&app, &token, "/mp/v1/me/bindings", ok).await.expect(201);
    assert_eq!(bound["number"], "101");
}

/// A value of another JSON type than a field's schema says (a number for a string, a string for
/// an integer or a boolean, an object for an array, an array for an object).
fn wrong_type_for(schema: &Value, schemas: &Value) -> Value {
    let resolved = match schema["$ref"].as_str() {
        Some(r) => &schemas[r.trim_start_matches("#/components/schemas/")],
        None => schema,
    };
    match resolved["type"].as_str() {
        Some("string") => json!(7),
        Some("integer") | Some("boolean") => json!("7"),
        Some("array") => json!({}),
        _ => json!([]),
    }
}

#[tokio::test]
async fn every_operation_refuses_a_wrong_type_and_null_in_any_field_of_its_body() {
    let app = spawn_oa_app(None, 300).await;
    let token = app.login(&app.mock.add_user()).await;
    let merchant = app.create_org(&app.root_key, app.company_id, "merchant", "鲜果屋").await;
    let merchant_key = app.create_key(&app.root_key, merchant, "admin").await;
    let spec = spec();
    let schemas = &spec["components"]["schemas"];
    let before = state(&app).await;
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(body_schema) =
                op["requestBody"]["content"]["application/json; charset=utf-8"]["schema"]["$ref"].as_str()
            else {
                continue;
            };
            let schema = &schemas[body_schema.trim_start_matches("#/components/schemas/")];
            for (field, field_schema) in schema["properties"].as_object().unwrap() {
                let mut bodies = vec![json!({ field: wrong_type_for(field_schema, schemas) })];
                if field_schema["nullable"] != true {
                    bodies.push(json!({ field: null }));
                }
                for body in bodies {
                    let mut req = app.client.request(method.to_uppercase().parse().unwrap(), app.url(&concrete(path)));
                    req = match op["security"][0].as_object().and_then(|s| s.keys().next()).map(String::as_str) {
                        Some("OperatorKey") => req.header("X-Api-Key", &app.root_key),
                        Some("MerchantKey") => req.header("X-Api-Key", &merchant_key),
                        Some("ResidentSession") => bearer(req, &token),
                        _ => req,
                    };
                    for p in op["parameters"].as_array().into_iter().flatten() {
                        if p["in"] == "header" && p["required"] == true {
                            req = req.header(p["name"].as_str().unwrap(), "conformance-1");
                        }
                    }
                    let a = app.send(req.json(&body)).await;
                    assert_eq!(
                        (a.status.as_u16(), a.code()),
                        (400, "invalid_body"),
                        "{method} {path} {body}: {}",
                        a.body
                    );
                    let message = a.body["message"].as_str().unwrap();
                    assert!(message.starts_with(&format!("`{field}` must be ")), "{method} {path} {body}: {message}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} bodies were sent");
    assert_eq!(state(&app).await, before, "a refused body changed something");
}
