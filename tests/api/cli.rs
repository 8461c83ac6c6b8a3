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

fn linli_with(database_url: &str, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_linli"));
    cmd.args(args).env("DATABASE_URL", database_url).env("RUST_LOG", "warn").env_remove("LINLI_SECRET_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run linli");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn secrets_new_key_and_rotate_reseal_every_record() {
    let app = spawn_app().await;
    let company = app.create_org(&app.root_key, 1, "company", "Acme").await;
    crate::helpers::wechat_records_of(&app, company).await;
    let url = app.database_url.clone();
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || linli_with(&url, &[], &["secrets", "new-key", "--id", "k9"]))
            .await
            .unwrap();
    assert!(ok, "{out}{err}");
    let new = out.trim().to_owned();
    assert!(new.starts_with("k9:") && linli::sealing::SealingKeys::parse(&new).is_ok(), "{new}");

    let url = app.database_url.clone();
    let (ok, _, err) =
        tokio::task::spawn_blocking(move || linli_with(&url, &[], &["secrets", "rotate"])).await.unwrap();
    assert!(!ok && err.contains("LINLI_SECRET_KEY is not set"), "{err}");
    // The new key alone cannot open what the old one sealed: nothing moves.
    let (url, only_new) = (app.database_url.clone(), new.clone());
    let (ok, _, err) = tokio::task::spawn_blocking(move || {
        linli_with(&url, &[("LINLI_SECRET_KEY", &only_new)], &["secrets", "rotate"])
    })
    .await
    .unwrap();
    assert!(!ok && err.contains("\"t1\""), "{err}");
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM wechat_apps WHERE secret_sealed LIKE 'v1.t1.%'").await, 1);

    let (url, both) = (app.database_url.clone(), format!("{new},{}", crate::helpers::TEST_SECRET_KEY));
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || linli_with(&url, &[("LINLI_SECRET_KEY", &both)], &["secrets", "rotate"]))
            .await
            .unwrap();
    assert!(ok, "{out}{err}");
    assert!(out.contains("3 secrets re-sealed under key k9 (3 moved"), "{out}");
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM wechat_apps WHERE secret_sealed LIKE 'v1.k9.%'").await, 1);
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM pay_merchants WHERE api_key_v2_sealed LIKE 'v1.k9.%'").await, 1);
}
