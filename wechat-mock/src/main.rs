//! `wechat-mock`: linli's fake WeChat as a standalone server, and WeChat's pushes on demand.
//!
//! - `wechat-mock` (or `wechat-mock serve`) listens on `WECHAT_MOCK_LISTEN` (default
//!   `127.0.0.1:9090`), prints its address and test apps, and stops cleanly on Ctrl-C. With
//!   `--tls` it serves HTTPS and checks the merchant's client certificate on WeChat Pay v2 payouts
//!   (see `wechat_mock::start_tls`), and prints where the mock CA and the merchant certificate are.
//!   WeChat Pay serves the default test merchant, and also the second one
//!   (`wechat_mock::PayConfig::second`) when `WECHAT_MOCK_SECOND_MERCHANT=1`.
//! - `wechat-mock push <follow|follow-scene|unfollow|scan|click|text> --openid … --callback URL`
//!   plays WeChat once towards an official account's callback URL, with the Token, EncodingAESKey
//!   and AppID from `WECHAT_OA_TOKEN`, `WECHAT_OA_AES_KEY` and `WECHAT_OA_APPID` (as linli reads
//!   them; the mock's defaults when unset), and prints the reply as WeChat reads it.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use wechat_mock::{
    MockConfig, OaMessage, OaPusher, PayConfig, PushMode, PusherConfig, Reply, DEFAULT_LISTEN, LISTEN_ENV,
    OA_AES_KEY_ENV, OA_APPID, OA_APPID_ENV, OA_CALLBACK_TOKEN, OA_ENCODING_AES_KEY, OA_ORIGINAL_ID, OA_TOKEN_ENV,
    SECOND_MERCHANT_ENV,
};

/// linli's fake WeChat.
#[derive(Parser)]
#[command(name = "wechat-mock", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the fake WeChat APIs (the default).
    Serve(ServeArgs),
    /// Push one message or event to an official account's callback URL, as WeChat does.
    Push(PushArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Serve HTTPS (certificate for 127.0.0.1 and localhost from the mock CA) and require the
    /// merchant's client certificate on WeChat Pay v2 payouts, as WeChat does.
    #[arg(long)]
    tls: bool,
}

#[derive(Args)]
struct PushArgs {
    /// What the user did.
    #[arg(value_enum)]
    kind: PushKind,
    /// The user's openid under the official account (any string).
    #[arg(long)]
    openid: String,
    /// The parametric QR code's scene (follow-scene, scan).
    #[arg(long)]
    scene: Option<String>,
    /// The menu button's key (click).
    #[arg(long)]
    key: Option<String>,
    /// The message text (text).
    #[arg(long)]
    content: Option<String>,
    /// The callback URL, e.g. http://127.0.0.1:8080/wechat/oa/callback.
    #[arg(long)]
    callback: String,
    /// The account's message encryption mode.
    #[arg(long, value_enum, default_value_t = ModeArg::Safe)]
    mode: ModeArg,
    /// The account's original id (ToUserName).
    #[arg(long, default_value = OA_ORIGINAL_ID)]
    original_id: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum PushKind {
    /// Plain follow.
    Follow,
    /// Follow through a parametric QR code (needs --scene).
    FollowScene,
    /// Unfollow.
    Unfollow,
    /// A follower scans a parametric QR code (needs --scene).
    Scan,
    /// A menu click (needs --key).
    Click,
    /// A text message (needs --content).
    Text,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// 明文模式.
    Plain,
    /// 兼容模式.
    Compat,
    /// 安全模式.
    Safe,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Push(args)) => push(args).await,
    }
}

/// Where the TLS test PKI sits in the source tree (the binary prints it for linli's settings).
const TLS_TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pay/testdata/tls");

async fn serve(args: ServeArgs) -> ExitCode {
    let listen = std::env::var(LISTEN_ENV).unwrap_or_else(|_| DEFAULT_LISTEN.to_owned());
    let second_merchant = std::env::var(SECOND_MERCHANT_ENV).is_ok_and(|value| value == "1");
    let config = MockConfig {
        merchants: if second_merchant { vec![PayConfig::second()] } else { Vec::new() },
        ..MockConfig::default()
    };
    let started = if args.tls {
        wechat_mock::start_tls(config, &listen).await
    } else {
        wechat_mock::start(config, &listen).await
    };
    let running = match started {
        Ok(running) => running,
        Err(err) => {
            eprintln!("wechat-mock: cannot listen on {listen}: {err}");
            return ExitCode::FAILURE;
        }
    };

    println!("wechat-mock listening on {}", running.base_url);
    println!("  WECHAT_API_BASE={}", running.base_url);
    for app in running.apps() {
        println!("  {:?}: appid={} secret={}", app.kind, app.appid, app.secret);
    }
    for mch_id in running.merchant_ids() {
        println!("  WeChat Pay merchant: mch_id={mch_id}");
    }
    if args.tls {
        println!("  WECHATPAY_API_BASE={}", running.base_url);
        println!("  WECHATPAY_ROOT_CA_PATH={TLS_TESTDATA}/ca.pem");
        println!("  WECHATPAY_CLIENT_CERT_PATH={TLS_TESTDATA}/merchant_client.pem");
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

/// An environment variable, or `default` when it is unset or empty.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|value| !value.is_empty()).unwrap_or_else(|| default.to_owned())
}

fn message_of(args: &PushArgs) -> Result<OaMessage, String> {
    let openid = args.openid.clone();
    let needed = |value: &Option<String>, flag: &str| value.clone().ok_or_else(|| format!("this push needs {flag}"));
    Ok(match args.kind {
        PushKind::Follow => OaMessage::Follow { openid },
        PushKind::FollowScene => OaMessage::FollowScene {
            openid,
            scene: needed(&args.scene, "--scene")?,
            ticket: wechat_mock::push::new_ticket(),
        },
        PushKind::Unfollow => OaMessage::Unfollow { openid },
        PushKind::Scan => {
            OaMessage::Scan { openid, scene: needed(&args.scene, "--scene")?, ticket: wechat_mock::push::new_ticket() }
        }
        PushKind::Click => OaMessage::Click { openid, key: needed(&args.key, "--key")? },
        PushKind::Text => OaMessage::Text {
            openid,
            content: needed(&args.content, "--content")?,
            msg_id: wechat_mock::push::new_msg_id(),
        },
    })
}

async fn push(args: PushArgs) -> ExitCode {
    let message = match message_of(&args) {
        Ok(message) => message,
        Err(why) => {
            eprintln!("wechat-mock push: {why}");
            return ExitCode::from(2);
        }
    };
    let config = PusherConfig {
        token: env_or(OA_TOKEN_ENV, OA_CALLBACK_TOKEN),
        encoding_aes_key: env_or(OA_AES_KEY_ENV, OA_ENCODING_AES_KEY),
        appid: env_or(OA_APPID_ENV, OA_APPID),
        original_id: args.original_id.clone(),
        mode: match args.mode {
            ModeArg::Plain => PushMode::Plaintext,
            ModeArg::Compat => PushMode::Compatible,
            ModeArg::Safe => PushMode::Safe,
        },
        ..PusherConfig::new(args.callback.clone())
    };
    let pusher = match OaPusher::new(config) {
        Ok(pusher) => pusher,
        Err(err) => {
            eprintln!("wechat-mock push: {err}");
            return ExitCode::from(2);
        }
    };
    let push = pusher.build(message);
    println!("POST {}", push.url());
    println!("{}", push.body());
    let outcome = match pusher.deliver(&push).await {
        Ok(outcome) => outcome,
        Err(err) => {
            eprintln!("wechat-mock push: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("-> HTTP {}", outcome.status);
    let encrypted = if outcome.reply_encrypted { " (encrypted, MsgSignature verified)" } else { "" };
    match &outcome.reply {
        Ok(Reply::Success) => println!("reply: success{encrypted}"),
        Ok(Reply::Empty) => println!("reply: empty body{encrypted}"),
        Ok(Reply::Text(text)) => {
            println!("reply: text{encrypted}");
            println!("  ToUserName:   {}", text.to_user_name);
            println!("  FromUserName: {}", text.from_user_name);
            println!("  CreateTime:   {}", text.create_time);
            println!("  Content:      {}", text.content);
        }
        Ok(Reply::Other { msg_type, fields }) => {
            println!("reply: {msg_type}{encrypted}");
            for (name, value) in fields.iter() {
                println!("  {name}: {value}");
            }
        }
        Err(err) => {
            println!("reply refused: {err}");
            println!("raw body: {}", outcome.body);
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
