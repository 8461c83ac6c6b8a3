//! Rooms and roster entries one at a time.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn rooms_are_unique_per_community_and_editable() {
    let app = spawn_app().await;
    let key = &app.root_key;
    let company = app.create_org(key, 1, "company", "Acme").await;
    let community = app.create_org(key, company, "community", "Garden").await;
    let room = app.create_room(key, community, "3", "2", "301").await;
    let a = app
        .post(
            key,
            "/admin/v1/rooms",
            json!({"community_id": community, "building": " 3 ", "unit": "2", "number": "301"}),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (409, "room_exists"));
    // Rooms hang under communities only.
    app.post(key, "/admin/v1/rooms", json!({"community_id": company, "building": "1", "number": "1"}))
        .await
        .expect(404);
    let other = app.create_room(key, community, "3", "2", "302").await;
    app.patch(key, &format!("/admin/v1/rooms/{other}"), json!({"number": "301"})).await.expect(409);
    let moved = app.patch(key, &format!("/admin/v1/rooms/{other}"), json!({"number": "303"})).await.expect(200);
    assert_eq!(moved["number"], "303");
    let no_unit = app
        .post(key, "/admin/v1/rooms", json!({"community_id": community, "building": "Villa 8", "number": "1"}))
        .await
        .expect(201);
    assert_eq!(no_unit["unit"], "");

    let list = app.get(key, &format!("/admin/v1/rooms?community_id={community}&building=3")).await.expect(200);
    assert_eq!(list["page"]["total"], 2);
    app.delete(key, &format!("/admin/v1/rooms/{room}")).await.expect(200);
    let list = app.get(key, &format!("/admin/v1/rooms?community_id={community}&building=3")).await.expect(200);
    assert_eq!(list["page"]["total"], 1);
    app.patch(key, &format!("/admin/v1/rooms/{room}"), json!({"number": "305"})).await.expect(409);
}

#[tokio::test]
async fn roster_entries_validate_phones_and_rooms() {
    let app = spawn_app().await;
    let key = &app.root_key;
    let company = app.create_org(key, 1, "company", "Acme").await;
    let community = app.create_org(key, company, "community", "Garden").await;
    let other_community = app.create_org(key, company, "community", "Court").await;
    let room = app.create_room(key, community, "1", "1", "101").await;
    let far_room = app.create_room(key, other_community, "1", "1", "101").await;

    let e = app
        .post(
            key,
            "/admin/v1/roster",
            json!({"room_id": room, "name": "张三", "phone": "+86 138-0013-8000", "role": "owner"}),
        )
        .await
        .expect(201);
    assert_eq!(e["phone"], "13800138000");
    assert_eq!(e["building"], "1");
    let before = app.fingerprint().await;
    let a = app
        .post(
            key,
            "/admin/v1/roster",
            json!({"room_id": room, "name": "Dup", "phone": "13800138000", "role": "family"}),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (409, "roster_entry_exists"));
    let a = app
        .post(key, "/admin/v1/roster", json!({"room_id": room, "name": "Bad", "phone": "12345678901", "role": "owner"}))
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "invalid_phone"));
    let a = app
        .post(
            key,
            "/admin/v1/roster",
            json!({"room_id": room, "name": "Bad", "phone": "13800138001", "role": "landlord"}),
        )
        .await;
    assert_eq!(a.status.as_u16(), 400);
    app.post(
        key,
        "/admin/v1/roster",
        json!({"room_id": 99_999, "name": "Bad", "phone": "13800138001", "role": "owner"}),
    )
    .await
    .expect(404);
    let id = e["id"].as_i64().unwrap();
    let a = app.patch(key, &format!("/admin/v1/roster/{id}"), json!({"room_id": far_room})).await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "room_in_other_community"));
    assert_eq!(app.fingerprint().await, before);

    let e = app
        .patch(key, &format!("/admin/v1/roster/{id}"), json!({"role": "tenant", "name": "张三丰"}))
        .await
        .expect(200);
    assert_eq!((e["role"].as_str(), e["name"].as_str()), (Some("tenant"), Some("张三丰")));
    let found = app.get(key, "/admin/v1/roster?phone=138%200013%208000").await.expect(200);
    assert_eq!(found["page"]["total"], 1);
    app.delete(key, &format!("/admin/v1/roster/{id}")).await.expect(204);
    app.get(key, &format!("/admin/v1/roster/{id}")).await.expect(404);
    let log = app.get(key, &format!("/admin/v1/audit-log?target_type=roster_entry&target_id={id}")).await.expect(200);
    let deleted = &log["items"][0];
    assert_eq!(deleted["action"], "roster.delete");
    assert_eq!(deleted["before"]["name"], "张三丰");
}
