//! The `linli` command line against a test database: the first admin key, and the spec.

use std::process::Command;

use crate::helpers::spawn_app;

fn linli(database_url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_linli"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run linli");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn keys_create_makes_a_working_admin_key_shown_once() {
    let app = spawn_app().await;
    let url = app.database_url.clone();
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || linli(&url, &["keys", "create", "--org", "1", "--role", "admin"]))
            .await
            .unwrap();
    assert!(ok, "{out}{err}");
    let secret = out.lines().last().unwrap().trim().to_owned();
    assert!(secret.starts_with("lk_"), "{out}");
    let me = app.get(&secret, "/admin/v1/me").await.expect(200);
    assert_eq!((me["role"].as_str(), me["org"]["kind"].as_str()), (Some("admin"), Some("platform")));

    let url = app.database_url.clone();
    let (ok, listed, _) = tokio::task::spawn_blocking(move || linli(&url, &["keys", "list"])).await.unwrap();
    assert!(ok);
    assert!(!listed.contains(&secret), "a listing shows a secret");
    assert!(listed.contains(&secret[..11]), "the listing lacks the key's prefix: {listed}");

    let log = app.get(&secret, "/admin/v1/audit-log?action=api_key.create").await.expect(200);
    assert!(log["items"].as_array().unwrap().iter().any(|e| e["actor"] == "cli"));

    let url = app.database_url.clone();
    let (ok, _, err) =
        tokio::task::spawn_blocking(move || linli(&url, &["keys", "create", "--org", "424242", "--role", "admin"]))
            .await
            .unwrap();
    assert!(!ok, "a key for a missing org was made");
    assert!(err.contains("424242"), "{err}");
    let url = app.database_url.clone();
    let (ok, _, _) =
        tokio::task::spawn_blocking(move || linli(&url, &["keys", "create", "--org", "1", "--role", "root"]))
            .await
            .unwrap();
    assert!(!ok);
}
