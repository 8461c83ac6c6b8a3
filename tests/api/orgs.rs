//! The org tree through the admin API.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_tree_is_built_top_down_and_its_shape_enforced() {
    let app = spawn_app().await;
    let key = &app.root_key;
    let company = app.create_org(key, 1, "company", "Acme Property").await;
    let community = app.create_org(key, company, "community", "Sunshine Garden").await;
    let shop = app.create_org(key, community, "merchant", "Corner Shop").await;
    app.create_org(key, company, "merchant", "Acme Laundry").await;

    let got = app.get(key, &format!("/admin/v1/orgs/{shop}")).await.expect(200);
    assert_eq!(got["kind"], "merchant");
    assert_eq!(got["parent_id"], community);
    assert!(got["created_at"].as_str().unwrap().ends_with('Z'));

    let before = app.fingerprint().await;
    for (parent, kind) in [
        (1, "community"),
        (1, "merchant"),
        (company, "company"),
        (community, "community"),
        (shop, "merchant"),
        (company, "platform"),
    ] {
        let a = app.post(key, "/admin/v1/orgs", json!({"parent_id": parent, "kind": kind, "name": "Misplaced"})).await;
        assert_eq!(a.status.as_u16(), 422, "{kind} under {parent}: {}", a.body);
        assert_eq!(a.code(), "invalid_parent");
    }
    // A name is unique among active siblings.
    let a = app
        .post(key, "/admin/v1/orgs", json!({"parent_id": company, "kind": "community", "name": "Sunshine Garden"}))
        .await;
    assert_eq!(a.status.as_u16(), 409);
    assert_eq!(a.code(), "org_name_taken");
    app.post(key, "/admin/v1/orgs", json!({"parent_id": 999_999, "kind": "company", "name": "Nowhere"}))
        .await
        .expect(404);
    assert_eq!(app.fingerprint().await, before);
}

#[tokio::test]
async fn orgs_are_filtered_and_paginated() {
    let app = spawn_app().await;
    let key = &app.root_key;
    let company = app.create_org(key, 1, "company", "Acme Property").await;
    for i in 0..5 {
        app.create_org(key, company, "community", &format!("Garden {i}")).await;
    }
    app.create_org(key, company, "merchant", "Shop").await;

    let page = app
        .get(key, &format!("/admin/v1/orgs?kind=community&parent_id={company}&page=2&page_size=2"))
        .await
        .expect(200);
    let names: Vec<&str> = page["items"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Garden 2", "Garden 3"]);
    assert_eq!(page["page"], json!({"page": 2, "page_size": 2, "total": 5}));

    let q = app.get(key, "/admin/v1/orgs?q=den%204").await.expect(200);
    assert_eq!(q["page"]["total"], 1);
    // Wildcards in the search text are literal.
    let q = app.get(key, "/admin/v1/orgs?q=%25").await.expect(200);
    assert_eq!(q["page"]["total"], 0);

    for bad in ["page=0", "page_size=0", "page_size=201", "kind=castle", "parent_id=abc", "include_archived=maybe"] {
        let a = app.get(key, &format!("/admin/v1/orgs?{bad}")).await;
        assert_eq!(a.status.as_u16(), 400, "{bad}: {}", a.body);
        let field = bad.split('=').next().unwrap();
        assert!(a.body["message"].as_str().unwrap().contains(field), "the error does not name {field}: {}", a.body);
    }
}

#[tokio::test]
async fn orgs_are_edited_and_archived_not_deleted() {
    let app = spawn_app().await;
    let key = &app.root_key;
    let company = app.create_org(key, 1, "company", "Acme Property").await;
    let community = app.create_org(key, company, "community", "Sunshine Garden").await;

    let edited = app
        .patch(
            key,
            &format!("/admin/v1/orgs/{community}"),
            json!({"name": "Sunshine Gardens", "address": "1 Sun Rd", "contact_phone": "021-5555"}),
        )
        .await
        .expect(200);
    assert_eq!(edited["name"], "Sunshine Gardens");
    assert_eq!(edited["address"], "1 Sun Rd");
    let cleared = app.patch(key, &format!("/admin/v1/orgs/{community}"), json!({"address": null})).await.expect(200);
    assert_eq!(cleared["address"], serde_json::Value::Null);
    assert_eq!(cleared["contact_phone"], "021-5555");
    app.patch(key, &format!("/admin/v1/orgs/{community}"), json!({"name": "   "})).await.expect(422);

    // A company with an active community cannot be archived.
    let a = app.delete(key, &format!("/admin/v1/orgs/{company}")).await;
    assert_eq!((a.status.as_u16(), a.code()), (409, "org_has_children"));
    let archived = app.delete(key, &format!("/admin/v1/orgs/{community}")).await.expect(200);
    assert!(archived["archived_at"].is_string());
    // Twice is fine, and changes nothing more.
    let again = app.delete(key, &format!("/admin/v1/orgs/{community}")).await.expect(200);
    assert_eq!(again["archived_at"], archived["archived_at"]);
    // Archived orgs keep their history but take no changes and leave lists.
    app.get(key, &format!("/admin/v1/orgs/{community}")).await.expect(200);
    app.patch(key, &format!("/admin/v1/orgs/{community}"), json!({"name": "Back"})).await.expect(409);
    app.post(key, "/admin/v1/rooms", json!({"community_id": community, "building": "1", "number": "101"}))
        .await
        .expect(409);
    let list = app.get(key, &format!("/admin/v1/orgs?parent_id={company}")).await.expect(200);
    assert_eq!(list["page"]["total"], 0);
    let list = app.get(key, &format!("/admin/v1/orgs?parent_id={company}&include_archived=true")).await.expect(200);
    assert_eq!(list["page"]["total"], 1);
    // Its name is free again for a new community.
    app.create_org(key, company, "community", "Sunshine Gardens").await;
    app.delete(key, "/admin/v1/orgs/1").await.expect(422);
}

#[tokio::test]
async fn every_change_is_in_the_audit_log() {
    let app = spawn_app().await;
    let key = &app.root_key;
    let company = app.create_org(key, 1, "company", "Acme Property").await;
    let admin = app.create_key(key, company, "admin").await;
    let community = app.create_org(&admin, company, "community", "Garden").await;
    app.patch(&admin, &format!("/admin/v1/orgs/{community}"), json!({"name": "Garden Court"})).await.expect(200);
    let room = app.create_room(&admin, community, "1", "1", "101").await;
    app.delete(&admin, &format!("/admin/v1/rooms/{room}")).await.expect(200);

    let log = app.get(&admin, "/admin/v1/audit-log").await.expect(200);
    let actions: Vec<&str> = log["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    // The company's own creation and its admin key belong to its subtree too.
    assert_eq!(actions, ["room.archive", "room.create", "org.update", "org.create", "api_key.create", "org.create"]);
    let update = &log["items"][2];
    assert_eq!(update["before"]["name"], "Garden");
    assert_eq!(update["after"]["name"], "Garden Court");
    assert!(update["actor"].as_str().unwrap().starts_with("key:lk_"));
    assert!(update["request_id"].as_str().unwrap().len() >= 16);
    assert!(update["at"].is_string());

    let filtered =
        app.get(&admin, &format!("/admin/v1/audit-log?target_type=org&target_id={community}")).await.expect(200);
    assert_eq!(filtered["page"]["total"], 2);
    let none = app.get(&admin, "/admin/v1/audit-log?since=2999-01-01T00:00:00Z").await.expect(200);
    assert_eq!(none["page"]["total"], 0);
    // The platform sees the key's creation, which the company's admin does not own.
    let root_log = app.get(key, "/admin/v1/audit-log?action=api_key.create").await.expect(200);
    assert_eq!(root_log["page"]["total"], 2); // the test root key and the company admin key
}
