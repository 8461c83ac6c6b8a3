//! `wechat-mock push` run as a process against the stand-in account server.

mod support;

use std::process::Command;

use support::{Answer, TestAccount};
use wechat_mock::{MockConfig, OA_AES_KEY_ENV, OA_APPID_ENV, OA_TOKEN_ENV};

fn run(args: Vec<String>) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wechat-mock"))
        .args(args)
        // The account server uses the defaults; empty variables mean "unset".
        .env(OA_TOKEN_ENV, "")
        .env_remove(OA_AES_KEY_ENV)
        .env_remove(OA_APPID_ENV)
        .output()
        .expect("wechat-mock runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn push_prints_the_decoded_reply_in_every_mode() {
    let mock = wechat_mock::start(MockConfig::default(), "127.0.0.1:0").await.unwrap();
    let account = TestAccount::start(mock.wechat.clone(), Answer::EncryptedText("欢迎".into())).await;
    for mode in ["plain", "compat", "safe"] {
        let answer =
            if mode == "plain" { Answer::PlainText("欢迎".into()) } else { Answer::EncryptedText("欢迎".into()) };
        account.set_answer(answer);
        let args =
            ["push", "text", "--openid", "o_cli_user", "--content", "hi", "--mode", mode, "--callback", &account.url]
                .map(str::to_owned)
                .to_vec();
        let output = tokio::task::spawn_blocking(move || run(args)).await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{mode}: {stdout} {}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("-> HTTP 200"), "{stdout}");
        assert!(stdout.contains("Content:      欢迎"), "{stdout}");
        assert_eq!(stdout.contains("MsgSignature verified"), mode != "plain", "{stdout}");
    }
    let received = account.received();
    assert_eq!(received.len(), 3);
    assert!(received
        .iter()
        .all(|got| got.accepted() && got.message.as_ref().unwrap().get("FromUserName") == Some("o_cli_user")));
}

#[tokio::test(flavor = "multi_thread")]
async fn push_kinds_and_usage_errors() {
    let mock = wechat_mock::start(MockConfig::default(), "127.0.0.1:0").await.unwrap();
    let account = TestAccount::start(mock.wechat.clone(), Answer::Success).await;
    let url = account.url.clone();
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["follow"], "subscribe", ""),
        (vec!["follow-scene", "--scene", "home_3"], "subscribe", "qrscene_home_3"),
        (vec!["unfollow"], "unsubscribe", ""),
        (vec!["scan", "--scene", "7"], "SCAN", "7"),
        (vec!["click", "--key", "CHECK_IN"], "CLICK", "CHECK_IN"),
    ];
    for (kind_args, event, event_key) in &cases {
        let mut args: Vec<String> = vec!["push".into()];
        args.extend(kind_args.iter().map(|s| s.to_string()));
        args.extend(["--openid", "o_x", "--callback", &url].map(str::to_owned));
        let output = tokio::task::spawn_blocking(move || run(args)).await.unwrap();
        assert!(output.status.success(), "{kind_args:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("reply: success"));
        let got = account.received().pop().unwrap();
        let message = got.message.unwrap();
        assert_eq!(message.get("Event"), Some(*event));
        assert_eq!(message.get("EventKey").unwrap_or_default(), *event_key);
    }

    let missing_scene = ["push", "scan", "--openid", "o_x", "--callback", &url].map(str::to_owned).to_vec();
    let output = tokio::task::spawn_blocking(move || run(missing_scene)).await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--scene"));

    let bad_mode =
        ["push", "follow", "--openid", "o", "--callback", &url, "--mode", "loud"].map(str::to_owned).to_vec();
    let output = tokio::task::spawn_blocking(move || run(bad_mode)).await.unwrap();
    assert!(!output.status.success());
}
