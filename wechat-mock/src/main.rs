//! `wechat-mock`: linli's fake WeChat as a standalone server. Listens on `WECHAT_MOCK_LISTEN`
//! (default `127.0.0.1:9090`), prints its address and test apps, and stops cleanly on Ctrl-C.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wechat_mock::{MockConfig, DEFAULT_LISTEN, LISTEN_ENV};

#[tokio::main]
async fn main() -> ExitCode {
    let listen = std::env::var(LISTEN_ENV).unwrap_or_else(|_| DEFAULT_LISTEN.to_owned());
    let running = match wechat_mock::start(MockConfig::default(), &listen).await {
        Ok(running) => running,
        Err(err) => {
            eprintln!("wechat-mock: cannot listen on {listen}: {err}");
            return ExitCode::FAILURE;
        }
    };

    println!("wechat-mock listening on {}", running.base_url);
    println!("  WECHAT_API_BASE={}", running.base_url);
    for app in running.apps() {
        println!(
            "  {:?}: appid={} secret={}",
            app.kind, app.appid, app.secret
        );
    }
    println!("Ctrl-C to stop");

    if let Err(err) = tokio::signal::ctrl_c().await {
        eprintln!("wechat-mock: cannot wait for Ctrl-C ({err}); stopping");
    }
    match running.shutdown().await {
        Ok(()) => {
            println!("wechat-mock stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("wechat-mock: server error: {err}");
            ExitCode::FAILURE
        }
    }
}
