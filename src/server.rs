//! The HTTP server: accepts connections and serves them over HTTP/1.1 with hyper, holding clients
//! to a deadline for a request's headers, which `poem::Server` leaves unset (a client trickling a
//! header a byte at a time would otherwise keep its connection for ever). The deadline runs from
//! the connection's start and from the end of each answer, so it also closes idle keep-alive
//! connections; a client past it is disconnected without an answer. The body's deadline is the
//! request middleware's, which can still answer 408.
//!
//! HTTP/2 and TLS belong to the load balancer in front. On shutdown the server stops accepting,
//! lets the requests in flight finish within the grace period and drops what is left.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, Request};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long to wait before accepting again after the listener failed (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `ep` on the connections `acceptor` yields until `shutdown` resolves.
pub async fn serve<A, E>(
    mut acceptor: A,
    ep: E,
    header_read_timeout: Option<Duration>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()>
where
    A: Acceptor,
    E: Endpoint + 'static,
{
    let ep = Arc::new(ep);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = acceptor.accept() => match accepted {
                Ok((io, local, remote, scheme)) => {
                    let conn = Connection { ep: Arc::clone(&ep), local, remote, scheme, header_read_timeout };
                    connections.spawn(conn.serve(io, stop_rx.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(acceptor);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = connections.len(), "requests still running after the grace period were dropped");
    }
    Ok(())
}

struct Connection<E> {
    ep: Arc<E>,
    local: LocalAddr,
    remote: RemoteAddr,
    scheme: Scheme,
    header_read_timeout: Option<Duration>,
}

impl<E: Endpoint + 'static> Connection<E> {
    async fn serve<Io>(self, io: Io, mut stop: watch::Receiver<bool>)
    where
        Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let Connection { ep, local, remote, scheme, header_read_timeout } = self;
        let peer = remote.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let ep = Arc::clone(&ep);
            let req = Request::from((req, local.clone(), remote.clone(), scheme.clone()));
            async move {
                let resp = ep.get_response(req).await;
                Ok::<_, Infallible>(hyper::Response::<BoxBody<Bytes, std::io::Error>>::from(resp))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(remote_addr = %peer, error = %e, "connection closed");
                }
                return;
            }
            _ = stop.wait_for(|stopping| *stopping) => {}
        }
        // Finish the request in flight, if any, then close.
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}
