//! The quickstart: the real `linli` binary with no WeChat credentials starts a sandbox (wechat-mock
//! in-process), and `linli walkthrough` plays the whole journey against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{free_port, spawn_app};

/// The server process, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A command for the linli binary with no WeChat settings: those of the test's own environment
/// are removed, and the credentials are set empty so that no `.env` can fill them in.
fn linli(dir: &Path, database_url: &str, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_linli"));
    for (name, _) in std::env::vars() {
        if name.starts_with("WECHAT_") || name.starts_with("WECHATPAY_") || name.starts_with("LINLI_") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(dir)
        .env("WECHAT_OA_APPID", "")
        .env("WECHAT_MP_APPID", "")
        .env("WECHATPAY_MCH_ID", "")
        .env("DATABASE_URL", database_url)
        .env("LINLI_LISTEN", format!("127.0.0.1:{port}"))
        .env("LINLI_SANDBOX_DIR", dir.join("sandbox"))
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0");
    cmd
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn with_no_credentials_linli_runs_a_sandbox_and_the_walkthrough_goes_through_it() {
    // The app gives this test its own database (SQLite or PostgreSQL) and shows that an app with no
    // sandbox answers /sandbox with 404.
    let app = spawn_app().await;
    let outside = app.get("", "/sandbox").await.expect(404);
    assert_eq!(outside["code"], "not_found");

    let dir: PathBuf = std::env::temp_dir().join(format!("linli-sandbox-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let (out, err) = (dir.join("serve.out"), dir.join("serve.err"));
    let child = linli(&dir, &app.database_url, port)
        .env("LINLI_SANDBOX_MOCK_LISTEN", "127.0.0.1:0")
        .env("LINLI_RED_PACKET_RECEIPT_CHECK_SECS", "1")
        .env("LINLI_PAYOUT_POLL_SECS", "1")
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .expect("start linli");
    let mut server = Server(child);

    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("linli exited ({status}):\n{}\n{}", read(&out), read(&err));
        }
        let ready = app.client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "linli never got ready:\n{}\n{}", read(&out), read(&err));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The banner is printed once the server listens; give stdout a moment to reach the file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read(&out).contains("SANDBOX MODE") {
        assert!(Instant::now() < deadline, "no sandbox banner:\n{}\n{}", read(&out), read(&err));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let banner = read(&out);
    assert!(banner.contains("NOT real WeChat"), "{banner}");
    let key_file = dir.join("sandbox").join("admin-key");
    assert!(banner.contains(&key_file.display().to_string()), "{banner}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the admin key file is readable by others");
    }
    let sandbox: serde_json::Value =
        app.client.get(format!("{base}/sandbox")).send().await.unwrap().json().await.unwrap();
    assert!(sandbox["mock_url"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{sandbox}");

    let walk = |dir: PathBuf, url: String, db: String| {
        tokio::task::spawn_blocking(move || {
            linli(&dir, &db, port).args(["walkthrough", "--url", &url]).output().expect("run the walkthrough")
        })
    };
    let done = walk(dir.clone(), base.clone(), app.database_url.clone()).await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&done.stdout), String::from_utf8_lossy(&done.stderr));
    assert!(done.status.success(), "the walkthrough failed:\n{stdout}\n{stderr}\nserver:\n{}", read(&err));
    for step in [
        "operator key",
        "community",
        "coupon",
        "merchant",
        "task",
        "red packet",
        "WeChat user",
        "follow",
        "check in",
        "log in",
        "bind home",
        "claim coupon",
        "member code",
        "order",
        "accept task",
        "scan and follow",
        "task reward",
        "grab red packet",
        "payout sent",
        "open red packet",
        "payout paid",
    ] {
        assert!(stdout.lines().any(|l| l.contains(step)), "no step {step:?} in:\n{stdout}");
    }
    for figure in ["当前积分 15", ": verified", "paid 70.00, +140 points", "submitted", "RECEIVED", "succeeded"] {
        assert!(stdout.contains(figure), "no {figure:?} in:\n{stdout}");
    }
    // The neighbour came through the task's QR code, was welcomed as a new follower and bound the
    // other room; the inviter's reward is the task's 50 points on top of the 155 from before.
    let line = |who: &str, step: &str| {
        let found = stdout.lines().find(|l| l.contains(who) && l.contains(step));
        found.unwrap_or_else(|| panic!("no step {who} {step:?} in:\n{stdout}")).to_owned()
    };
    let follow = line("neighbour", "scan and follow");
    assert!(follow.contains("李四 scans the QR code (scene t") && follow.contains("关注奖励 10 积分"), "{follow}");
    let bound = line("neighbour", "bind home");
    assert!(bound.contains("1-1-102") && bound.contains(": verified"), "{bound}");
    let reward = line("resident", "task reward");
    assert!(reward.contains("round 1 done: +50 points (balance 205)"), "{reward}");
    // The second company brings its own WeChat as records: its resident earns with it, sees only
    // its red packets, and is paid by its own merchant.
    let own = line("operator", "own WeChat");
    assert!(own.contains("wx_sandbox_b_oa") && own.contains("merchant 1900000110"), "{own}");
    let logged = stdout.lines().rfind(|l| l.contains("log in")).unwrap_or_default();
    assert!(logged.contains("points balance 15"), "{logged}");
    let seen = line("resident", "red packets");
    assert!(seen.contains("none of the first company's"), "{seen}");
    let paid = stdout.lines().rfind(|l| l.contains("payout sent")).unwrap_or_default();
    assert!(paid.contains("own merchant 1900000110"), "{paid}");
    // Nothing of the second company's secrets is in the database file.
    let db_file = std::fs::read(app.database_url.trim_start_matches("sqlite://")).unwrap_or_default();
    for secret in [linli::sandbox::SECOND_OA_SECRET, linli::sandbox::SECOND_OA_TOKEN, linli::sandbox::SECOND_MP_SECRET]
    {
        assert!(!db_file.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in the database");
    }
    assert!(stdout.contains("done: the whole journey works"), "{stdout}");

    // Again, against the same server: fresh names and a new WeChat user.
    let again = walk(dir.clone(), base, app.database_url.clone()).await.unwrap();
    assert!(again.status.success(), "a second walkthrough failed:\n{}", String::from_utf8_lossy(&again.stdout));

    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
