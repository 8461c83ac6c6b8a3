//! Bulk imports: each bad row rejected with its reason, the rest imported, and the same file
//! imported again changing nothing.

use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

async fn community(app: &TestApp) -> i64 {
    let company = app.create_org(&app.root_key, 1, "company", "Acme").await;
    app.create_org(&app.root_key, company, "community", "Garden").await
}

const ROOMS_CSV: &str = "\u{feff}楼栋,单元,房号\n\
1,1,101\n\
1,1,102\n\
,1,103\n\
1,1,\n\
2,,201\n\
1,1,101\n\
3,1,0123456789012345678901234567890123\n";

#[tokio::test]
async fn room_csv_import_rejects_bad_rows_imports_the_rest_and_is_idempotent() {
    let app = spawn_app().await;
    let c = community(&app).await;
    let path = format!("/admin/v1/communities/{c}/rooms/import");
    let report = app.post_raw(&app.root_key, &path, "text/csv; charset=utf-8", ROOMS_CSV).await.expect(200);
    assert_eq!(report["received"], 7);
    assert_eq!(report["created"], 3);
    assert_eq!(report["unchanged"], 1, "the repeated 1-1-101 is not created twice");
    let rejected = report["rejected"].as_array().unwrap();
    let lines: Vec<i64> = rejected.iter().map(|r| r["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, [4, 5, 8]);
    assert!(rejected[0]["reason"].as_str().unwrap().contains("building"));
    assert!(rejected[1]["reason"].as_str().unwrap().contains("number"));
    assert!(rejected[2]["reason"].as_str().unwrap().contains("at most 32"));

    let rooms = app.get(&app.root_key, &format!("/admin/v1/rooms?community_id={c}")).await.expect(200);
    let labels: Vec<String> = rooms["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}-{}-{}",
                r["building"].as_str().unwrap(),
                r["unit"].as_str().unwrap(),
                r["number"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(labels, ["1-1-101", "1-1-102", "2--201"]);

    let before = app.fingerprint().await;
    let again = app.post_raw(&app.root_key, &path, "text/csv", ROOMS_CSV).await.expect(200);
    assert_eq!((again["created"].as_i64(), again["unchanged"].as_i64()), (Some(0), Some(4)));
    assert_eq!(again["rejected"].as_array().unwrap().len(), 3);
    assert_eq!(app.fingerprint().await, before, "re-importing the same file changed something");
}

#[tokio::test]
async fn room_json_import_reports_rows_by_index() {
    let app = spawn_app().await;
    let c = community(&app).await;
    let body = json!({"rows": [
        {"building": "1", "unit": "1", "number": "101"},
        {"building": "1", "number": "102"},
        {"unit": "1", "number": "103"},
        {"building": "1", "unit": "1", "number": "10\u{0007}4"},
    ]});
    let report =
        app.post(&app.root_key, &format!("/admin/v1/communities/{c}/rooms/import"), body.clone()).await.expect(200);
    assert_eq!(report["created"], 2);
    let lines: Vec<i64> = report["rejected"].as_array().unwrap().iter().map(|r| r["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, [3, 4]);
    let again = app.post(&app.root_key, &format!("/admin/v1/communities/{c}/rooms/import"), body).await.expect(200);
    assert_eq!((again["created"].as_i64(), again["unchanged"].as_i64()), (Some(0), Some(2)));
}

#[tokio::test]
async fn archived_rooms_are_not_revived_by_an_import() {
    let app = spawn_app().await;
    let c = community(&app).await;
    let room = app.create_room(&app.root_key, c, "1", "1", "101").await;
    app.delete(&app.root_key, &format!("/admin/v1/rooms/{room}")).await.expect(200);
    let report = app
        .post_raw(
            &app.root_key,
            &format!("/admin/v1/communities/{c}/rooms/import"),
            "text/csv",
            "building,unit,number\n1,1,101\n",
        )
        .await
        .expect(200);
    assert_eq!(report["created"], 0);
    assert!(report["rejected"][0]["reason"].as_str().unwrap().contains("archived"));
}

const ROSTER_CSV: &str = "name,phone,building,unit,number,role\n\
张三,13800138000,1,1,101,业主\n\
李四,+86 139 0013 9000,1,1,101,family\n\
王五,12345,1,1,101,owner\n\
赵六,13700137000,9,9,909,owner\n\
钱七,13600136000,1,1,102,landlord\n\
,13500135000,1,1,102,owner\n\
孙八,13400134000,1,1,102,\n\
张三,13800138000,1,1,101,业主\n\
张三三,13800138000,1,1,101,owner\n";

#[tokio::test]
async fn roster_import_matches_rooms_rejects_bad_rows_and_is_idempotent() {
    let app = spawn_app().await;
    let c = community(&app).await;
    app.post_raw(
        &app.root_key,
        &format!("/admin/v1/communities/{c}/rooms/import"),
        "text/csv",
        "building,unit,number\n1,1,101\n1,1,102\n",
    )
    .await
    .expect(200);
    let path = format!("/admin/v1/communities/{c}/roster/import");
    let report = app.post_raw(&app.root_key, &path, "text/csv", ROSTER_CSV).await.expect(200);
    assert_eq!(report["received"], 9);
    assert_eq!(report["created"], 3, "{report}");
    assert_eq!(report["unchanged"], 1);
    let rejected = report["rejected"].as_array().unwrap();
    let by_line: Vec<(i64, &str)> =
        rejected.iter().map(|r| (r["line"].as_i64().unwrap(), r["reason"].as_str().unwrap())).collect();
    assert_eq!(by_line.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [4, 5, 6, 7, 10]);
    assert!(by_line[0].1.contains("phone"));
    assert!(by_line[1].1.contains("9-9-909"));
    assert!(by_line[2].1.contains("role"));
    assert!(by_line[3].1.contains("name"));
    assert!(by_line[4].1.contains("conflicts with line 2"));

    let roster = app.get(&app.root_key, &format!("/admin/v1/roster?community_id={c}&page_size=50")).await.expect(200);
    let people: Vec<(String, String, String)> = roster["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["phone"].as_str().unwrap().into(),
                e["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(people.contains(&("李四".into(), "13900139000".into(), "family".into())));
    assert!(people.contains(&("孙八".into(), "13400134000".into(), "owner".into())), "role defaults to owner");

    let before = app.fingerprint().await;
    let again = app.post_raw(&app.root_key, &path, "text/csv", ROSTER_CSV).await.expect(200);
    assert_eq!((again["created"].as_i64(), again["updated"].as_i64()), (Some(0), Some(0)));
    assert_eq!(app.fingerprint().await, before, "re-importing the same roster changed something");

    // A changed name for the same room and phone updates the entry.
    let changed = app
        .post(&app.root_key, &path, json!({"rows": [{"name": "张三丰", "phone": "13800138000", "building": "1", "unit": "1", "number": "101"}]}))
        .await
        .expect(200);
    assert_eq!(changed["updated"], 1);
}

#[tokio::test]
async fn malformed_files_and_oversized_imports_are_refused_whole() {
    let app = spawn_app_with_small_imports().await;
    let c = community(&app).await;
    let path = format!("/admin/v1/communities/{c}/rooms/import");
    let before = app.fingerprint().await;
    let a = app.post_raw(&app.root_key, &path, "text/csv", "floor,door\n1,2\n").await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "invalid_csv"));
    let a = app.post_raw(&app.root_key, &path, "text/csv", vec![0xff_u8, 0xfe, 0x00, b'\n']).await;
    assert_eq!(a.status.as_u16(), 400);
    let many = format!("building,number\n{}", (0..6).map(|i| format!("1,{i}\n")).collect::<String>());
    let a = app.post_raw(&app.root_key, &path, "text/csv", many).await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "too_many_rows"));
    let rows: Vec<_> = (0..6).map(|i| json!({"building": "1", "number": i.to_string()})).collect();
    let a = app.post(&app.root_key, &path, json!({ "rows": rows })).await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "too_many_rows"));
    let a = app.post_raw(&app.root_key, &path, "application/xml", "<rows/>").await;
    assert_eq!(a.status.as_u16(), 415, "{}", a.body);
    assert_eq!(app.fingerprint().await, before);
}

async fn spawn_app_with_small_imports() -> TestApp {
    crate::helpers::spawn_app_with(|s| s.import_max_rows = 5).await
}

#[tokio::test]
async fn concurrent_imports_of_one_file_create_each_room_once() {
    let app = spawn_app().await;
    let c = community(&app).await;
    let csv: String = std::iter::once("building,unit,number\n".to_owned())
        .chain((1..=60).map(|i| format!("{},1,{}\n", i % 6, 100 + i)))
        .collect();
    let url = app.url(&format!("/admin/v1/communities/{c}/rooms/import"));
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let req = app
            .client
            .post(&url)
            .header("X-Api-Key", &app.root_key)
            .header("content-type", "text/csv")
            .body(csv.clone());
        runs.spawn(async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            resp.json::<serde_json::Value>().await.unwrap()["created"].as_i64().unwrap()
        });
    }
    let created: i64 = runs.join_all().await.into_iter().sum();
    assert_eq!(created, 60);
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM rooms WHERE community_id = $1")
        .bind(c)
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    assert_eq!(n, 60);
}
