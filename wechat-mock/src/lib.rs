//! linli's fake WeChat: a server that answers like WeChat's APIs do, for development, the test suite
//! and the quickstart. Use it in-process with [`start`] (port 0 works and reports the real port) or
//! run the `wechat-mock` binary.
//!
//! [`start`] serves plain HTTP. [`start_tls`] (the binary's `--tls`) serves HTTPS with the server
//! certificate of [`pay::tls`] and asks every client for a certificate without requiring one; only
//! there do the WeChat Pay v2 payout APIs refuse (`CA_ERROR`) a call whose client presented no
//! merchant certificate issued by the mock CA, as WeChat does. A plain-HTTP mock checks none.
//!
//! One module per WeChat API area, each adding its routes and its `impl MockWechat` block:
//! - [`token`]: `GET /cgi-bin/token`, `POST /cgi-bin/stable_token` and the access-token check every
//!   other API uses;
//! - [`users`]: simulated users (a unionid per Open Platform account, an openid per app, follow
//!   state, phone number) and `GET /cgi-bin/user/info`;
//! - [`mini_program`]: `wx.login` and phone codes as the user's client gets them,
//!   `GET /sns/jscode2session` and `POST /wxa/business/getuserphonenumber`;
//! - [`pay`]: WeChat Pay v2 red packets and enterprise payments, v3 transfer bills, their
//!   ledger, notifications and daily fund-flow bill, for several merchants at once (each with its
//!   own keys, balance and ledger; requests reach the merchant they name);
//! - [`messages`]: the official account's parametric QR codes and the mini-program's subscribe messages;
//! - [`faults`]: injected errors, HTTP statuses and delays on any WeChat path;
//! - [`control`]: the `/__mock/` control API (clock, counters, reset, users, codes, faults), which
//!   is not part of WeChat.
//!
//! WeChat's side of the official account's callback, played towards a URL:
//! - [`callback`]: the message-push protocol (signatures, AES, XML, passive replies), written
//!   independently of linli's so that the two implementations check each other;
//! - [`push`]: [`OaPusher`], which builds, signs, encrypts, delivers (also several times at once)
//!   and tampers with pushes, and reads replies as WeChat does.
//!
//! Shared pieces: [`MockWechat`] (the state behind one lock), [`MockClock`] (wall clock plus a
//! test-controlled offset), [`WxError`] (WeChat's error bodies and codes) and [`MockConfig`].
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let mock = wechat_mock::start(wechat_mock::MockConfig::default(), "127.0.0.1:0").await?;
//! println!("WECHAT_API_BASE={}", mock.base_url);
//! mock.advance_clock(7200); // every token issued so far has now expired
//! mock.shutdown().await
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod callback;
pub mod clock;
pub mod config;
pub mod control;
pub mod faults;
mod https;
pub mod messages;
pub mod mini_program;
pub mod pay;
pub mod push;
mod state;
pub mod token;
pub mod users;
pub mod wx_error;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Deref;
use std::time::Duration;

use poem::{
    error::NotFoundError,
    listener::{Acceptor, TcpAcceptor},
    Endpoint, EndpointExt, Response, Route, Server,
};
use tokio::{sync::oneshot, task::JoinHandle};

pub use callback::reply::{Reply, ReplyError, TextReply};
pub use callback::PushMode;
pub use clock::MockClock;
pub use config::{
    AppKind, MockApp, MockConfig, TokenRules, DEFAULT_LISTEN, LISTEN_ENV, MP_APPID, MP_SECRET, OA_AES_KEY_ENV,
    OA_APPID, OA_APPID_ENV, OA_CALLBACK_TOKEN, OA_ENCODING_AES_KEY, OA_ORIGINAL_ID, OA_SECRET, OA_TOKEN_ENV,
    SECOND_MERCHANT_ENV,
};
pub use faults::{Fault, FaultError};
pub use messages::{
    QrAction, QrCode, QrCodeRequest, QrTicket, SendRefusal, SubscribeMessage, SubscribeMessageRequest,
    SubscribeTemplate, SubscriptionError, MP_TASK_TEMPLATE_ID,
};
pub use mini_program::{Code2Session, Code2SessionRequest, MiniProgramStats, PhoneInfo, Watermark};
pub use pay::{
    BillError, PayChannel, PayConfig, PayLimits, PayNotification, PayReport, Payment, PaymentStatus, UnknownMerchant,
    MCH_ID, SECOND_MCH_ID,
};
pub use push::{
    DeliveryError, OaMessage, OaPusher, Push, PushOutcome, PusherConfig, PusherError, Tamper, TamperError, TicketError,
    UrlCheck,
};
pub use state::{AppReport, MockReport, MockWechat};
pub use token::{AppTokenStats, StableTokenRequest, TokenGrant, TokenRequest};
pub use users::{MockUser, OaFollow, SubscribeScene, UserError, UserInfo, UserOptions, UserRecord};
pub use wx_error::WxError;

/// How long a graceful shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The whole fake WeChat as one poem endpoint. Unknown paths are answered as WeChat does,
/// HTTP 200 with `40066 invalid url`. Every path outside the control API passes the fault
/// middleware first (see [`faults`]).
pub fn routes(mock: MockWechat) -> impl Endpoint<Output = Response> {
    let route = pay::routes(control::routes(mini_program::routes(users::routes(token::routes(Route::new())))));
    let route = messages::routes(route);
    let for_faults = mock.clone();
    let for_errors = mock.clone();
    let route = route.around(move |endpoint, req| faults::apply(for_faults.clone(), endpoint, req));
    route.data(mock).catch_error(move |_: NotFoundError| {
        let now_ms = for_errors.now_ms();
        async move { WxError::INVALID_URL.to_response(now_ms) }
    })
}

/// A mock serving on a socket. Dereferences to its [`MockWechat`], so tests can call
/// `running.advance_clock(…)` or `running.token_fetch_count(…)` directly. Dropping it stops the
/// server too; [`RunningMock::shutdown`] also waits until it has stopped.
#[derive(Debug)]
pub struct RunningMock {
    /// The address actually bound (the real port when asked for port 0).
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` (`https://…` from [`start_tls`]), to use as `WECHAT_API_BASE`.
    pub base_url: String,
    /// The state the server answers from.
    pub wechat: MockWechat,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<io::Result<()>>,
}

impl RunningMock {
    /// Stops accepting connections, lets requests in flight finish, and waits for the server to end.
    pub async fn shutdown(self) -> io::Result<()> {
        // The server may already have ended, in which case nobody listens: nothing to signal.
        let _ = self.shutdown.send(());
        match self.server.await {
            Ok(result) => result,
            Err(join_error) => Err(io::Error::other(join_error)),
        }
    }
}

impl Deref for RunningMock {
    type Target = MockWechat;

    fn deref(&self) -> &MockWechat {
        &self.wechat
    }
}

/// Binds `listen` (e.g. `"127.0.0.1:0"`) and serves a fresh mock built from `config` on the current
/// tokio runtime, over plain HTTP.
pub async fn start(config: MockConfig, listen: &str) -> io::Result<RunningMock> {
    let wechat = MockWechat::new(config);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let app = routes(wechat.clone());
    Ok(serve(wechat, addr, "http", acceptor, app))
}

/// Like [`start`], over HTTPS: the server certificate is [`pay::tls::SERVER_CERT_PEM`] (for
/// `127.0.0.1` and `localhost`, issued by [`pay::tls::CA_CERT_PEM`], which clients must trust), a
/// client certificate is asked for but not required, and the v2 payout APIs answer `CA_ERROR`
/// unless the client presented one issued by the mock CA ([`pay::tls::MERCHANT_CLIENT_PEM`]).
pub async fn start_tls(config: MockConfig, listen: &str) -> io::Result<RunningMock> {
    let wechat = MockWechat::new(config);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let certs = https::ClientCerts::default();
    let acceptor = https::HttpsAcceptor::new(TcpAcceptor::from_tokio(listener)?, certs.clone())?;
    let app = routes(wechat.clone()).data(certs);
    Ok(serve(wechat, addr, "https", acceptor, app))
}

fn serve(
    wechat: MockWechat,
    addr: SocketAddr,
    scheme: &str,
    acceptor: impl Acceptor + 'static,
    app: impl Endpoint + 'static,
) -> RunningMock {
    let (shutdown, shutdown_requested) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // A dropped sender (the RunningMock was dropped) also means "stop".
        let signal = async move {
            let _ = shutdown_requested.await;
        };
        Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(app, signal, Some(SHUTDOWN_GRACE)).await
    });
    tracing::info!(%addr, scheme, "wechat-mock listening");
    RunningMock { addr, base_url: base_url_for(scheme, addr), wechat, shutdown, server }
}

/// The URL clients should use: a wildcard bind address is reached through loopback.
fn base_url_for(scheme: &str, addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_uses_loopback_for_wildcard_binds() {
        assert_eq!(base_url_for("http", "0.0.0.0:9090".parse().unwrap()), "http://127.0.0.1:9090");
        assert_eq!(base_url_for("http", "[::]:80".parse().unwrap()), "http://[::1]:80");
        assert_eq!(base_url_for("https", "127.0.0.1:1234".parse().unwrap()), "https://127.0.0.1:1234");
    }
}
