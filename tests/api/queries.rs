//! List operations take their query parameters as one struct each (`QueryParams`): on the wire and
//! in the spec they are the separate parameters they always were, a value that does not parse is
//! refused by its parameter's name, and names that are no parameter are ignored.

use serde_json::Value;

use crate::helpers::{assert_error_body, spawn_app};

fn spec() -> Value {
    serde_json::from_str(&linli::api::openapi_service().spec()).unwrap()
}

#[test]
fn list_filters_are_documented_parameter_by_parameter() {
    let spec = spec();
    let mut lists = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let schema = &p["schema"];
                assert!(
                    schema["type"] != "object" && schema.get("properties").is_none() && schema.get("title").is_none(),
                    "{method} {path}: parameter {} is documented as one object: {p}",
                    p["name"]
                );
            }
            let names: Vec<&str> =
                op["parameters"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
            if names.ends_with(&["page", "page_size"]) {
                lists += 1;
            }
        }
    }
    assert!(lists >= 13, "only {lists} paged lists found");

    let audit = &spec["paths"]["/admin/v1/audit-log"]["get"]["parameters"];
    let names: Vec<&str> = audit.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["org_id", "action", "target_type", "target_id", "actor_key_id", "since", "until", "page", "page_size"]
    );
    let action = &audit[1];
    assert_eq!(action["in"], "query");
    assert_eq!(action["required"], false);
    assert_eq!(action["description"], "Only this action, e.g. `room.create`.");
    assert_eq!(action["schema"], serde_json::json!({"type": "string", "maxLength": 64}));
    // An enum filter is a plain reference, a required one says so.
    let bindings = &spec["paths"]["/admin/v1/bindings"]["get"]["parameters"];
    let state = bindings.as_array().unwrap().iter().find(|p| p["name"] == "state").unwrap();
    assert_eq!(state["schema"], serde_json::json!({"$ref": "#/components/schemas/BindingState"}));
    let ledger = &spec["paths"]["/mp/v1/me/points/ledger"]["get"]["parameters"];
    let company = ledger.as_array().unwrap().iter().find(|p| p["name"] == "company_id").unwrap();
    assert_eq!(company["required"], true);
    // The structs themselves are not schemas of the document.
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    assert!(!schemas.keys().any(|k| k.starts_with("List")), "a query struct leaked into the schemas");
}

#[tokio::test]
async fn query_values_are_parsed_and_refused_by_name() {
    let app = spawn_app().await;
    let key = &app.root_key;
    let company = app.create_org(key, 1, "company", "Acme Property").await;
    for i in 0..3 {
        app.create_org(key, company, "community", &format!("Garden {i}")).await;
    }

    // Each value refused names its parameter and changes nothing.
    for (path, field) in [
        ("/admin/v1/bindings?state=limbo", "state"),
        ("/admin/v1/bindings?community_id=1.5", "community_id"),
        ("/admin/v1/payouts?channel=bank", "channel"),
        ("/admin/v1/audit-log?since=yesterday", "since"),
        ("/admin/v1/rooms?include_archived=yes", "include_archived"),
        ("/admin/v1/tasks?state=paused&page=2", "state"),
        ("/admin/v1/orgs?page=2&page_size=0", "page_size"),
    ] {
        let answer = app.get(key, path).await;
        assert_eq!(answer.status.as_u16(), 400, "{path}: {}", answer.body);
        assert_error_body(&answer);
        assert_eq!(answer.body["code"], "bad_request", "{path}");
        let message = answer.body["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{field}`")), "{path}: the error does not name {field}: {message}");
    }

    // An empty text is a text: a filter that matches nothing.
    let none = app.get(key, "/admin/v1/audit-log?action=").await.expect(200);
    assert_eq!(none["page"]["total"], 0);

    // Names that are no parameter are ignored; of a repeated name, the first counts.
    let page = app.get(key, &format!("/admin/v1/orgs?kind=community&parent_id={company}&colour=red")).await.expect(200);
    assert_eq!(page["page"]["total"], 3);
    let first = app.get(key, &format!("/admin/v1/orgs?parent_id={company}&parent_id=1&page_size=2")).await.expect(200);
    assert_eq!(first["page"]["total"], 3);
    assert_eq!(first["page"]["page_size"], 2);
    // `+` and percent escapes decode as in any query.
    let found = app.get(key, "/admin/v1/orgs?q=Garden+1").await.expect(200);
    assert_eq!(found["page"]["total"], 1);
    let found = app.get(key, "/admin/v1/orgs?q=Garden%202").await.expect(200);
    assert_eq!(found["page"]["total"], 1);
}
