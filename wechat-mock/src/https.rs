//! Serving the mock over HTTPS ([`crate::start_tls`]), and what each connection's client
//! certificate was.
//!
//! The handshake presents the server certificate of [`crate::pay::tls`] and asks for a client
//! certificate without requiring one: v3 calls and the rest of WeChat present none, and WeChat
//! answers a v2 payout call with a missing or foreign certificate in XML (`CA_ERROR`) rather than
//! by failing the handshake. So any certificate is let through the handshake (its key is still
//! proved by the handshake signature) and its chain to the mock CA is checked afterwards.
//!
//! poem shows a request nothing of its connection's TLS state. Each connection therefore records
//! its verdict in [`ClientCerts`], keyed by the client's address, from the end of the handshake
//! (before the first request is read) until it closes; the v2 payout handlers look it up.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use poem::Request;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::pay::tls::{CA_CERT_PEM, SERVER_CERT_PEM, SERVER_KEY_PEM};

/// What the client of a connection presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientCert {
    /// No certificate.
    Absent,
    /// A certificate chaining to the mock CA, valid now, for client authentication.
    Trusted,
    /// A certificate that does not: why.
    Untrusted(String),
}

/// The client certificate of every open connection of an HTTPS mock, by client address. Present
/// as request data only on HTTPS mocks.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientCerts {
    open: Arc<Mutex<HashMap<SocketAddr, (u64, ClientCert)>>>,
    next_connection: Arc<AtomicU64>,
}

impl ClientCerts {
    /// What the client of `req` presented; `None` on a plain-HTTP mock, which has no TLS to ask.
    pub(crate) fn of_request(req: &Request) -> Option<ClientCert> {
        let certs = req.data::<ClientCerts>()?;
        let found = req.remote_addr().as_socket_addr().and_then(|addr| certs.lock().get(addr).cloned());
        Some(found.map_or(ClientCert::Absent, |(_, cert)| cert))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, (u64, ClientCert)>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a connection's certificate; the id lets only this connection remove it (the
    /// client's port may be reused by a new connection before the old one is dropped).
    fn insert(&self, peer: SocketAddr, cert: ClientCert) -> u64 {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(peer, (id, cert));
        id
    }

    fn remove(&self, peer: SocketAddr, id: u64) {
        let mut open = self.lock();
        if open.get(&peer).is_some_and(|(current, _)| *current == id) {
            open.remove(&peer);
        }
    }
}

/// Asks for a client certificate, accepts the connection whatever it is, and leaves the chain
/// check to [`HttpsStream`] (the way WeChat's front end passes the certificate on to the API).
#[derive(Debug)]
struct AskForClientCert {
    chain_check: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for AskForClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hint: a client then sends whatever certificate it has, foreign ones included.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain_check.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain_check.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain_check.supported_verify_schemes()
    }
}

fn tls_error(err: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, err)
}

/// The acceptor of an HTTPS mock: TCP, then TLS with the mock's server certificate.
pub(crate) struct HttpsAcceptor {
    tcp: TcpAcceptor,
    tls: tokio_rustls::TlsAcceptor,
    chain_check: Arc<dyn ClientCertVerifier>,
    certs: ClientCerts,
}

impl HttpsAcceptor {
    pub(crate) fn new(tcp: TcpAcceptor, certs: ClientCerts) -> io::Result<Self> {
        // The ring provider reqwest's rustls already uses: no second crypto library.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(CA_CERT_PEM.as_bytes()) {
            roots.add(ca.map_err(tls_error)?).map_err(tls_error)?;
        }
        let chain_check: Arc<dyn ClientCertVerifier> =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(tls_error)?;
        let server_chain = CertificateDer::pem_slice_iter(SERVER_CERT_PEM.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(tls_error)?;
        let server_key = PrivateKeyDer::from_pem_slice(SERVER_KEY_PEM.as_bytes()).map_err(tls_error)?;
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_client_cert_verifier(Arc::new(AskForClientCert { chain_check: chain_check.clone() }))
            .with_single_cert(server_chain, server_key)
            .map_err(tls_error)?;
        Ok(Self { tcp, tls: tokio_rustls::TlsAcceptor::from(Arc::new(config)), chain_check, certs })
    }
}

impl Acceptor for HttpsAcceptor {
    type Io = HttpsStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.tcp.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(HttpsStream, LocalAddr, RemoteAddr, Scheme)> {
        let (tcp, local_addr, remote_addr, _) = self.tcp.accept().await?;
        // The handshake runs on the connection's own task, at its first read or write (as poem's
        // TLS listeners do), so a slow client holds up nobody else.
        let stream = HttpsStream {
            state: State::Handshaking(self.tls.accept(tcp)),
            peer: remote_addr.as_socket_addr().copied(),
            chain_check: self.chain_check.clone(),
            certs: self.certs.clone(),
            registered: None,
        };
        Ok((stream, local_addr, remote_addr, Scheme::HTTPS))
    }
}

enum State {
    Handshaking(tokio_rustls::Accept<TcpStream>),
    Ready(TlsStream<TcpStream>),
    Failed,
}

/// One HTTPS connection: handshakes on first use, then records its client certificate in
/// [`ClientCerts`] until dropped.
pub(crate) struct HttpsStream {
    state: State,
    peer: Option<SocketAddr>,
    chain_check: Arc<dyn ClientCertVerifier>,
    certs: ClientCerts,
    registered: Option<u64>,
}

impl HttpsStream {
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&mut TlsStream<TcpStream>>> {
        if let State::Handshaking(accept) = &mut self.state {
            match ready!(Pin::new(accept).poll(cx)) {
                Ok(stream) => {
                    self.register(&stream);
                    self.state = State::Ready(stream);
                }
                Err(err) => {
                    self.state = State::Failed;
                    return Poll::Ready(Err(err));
                }
            }
        }
        Poll::Ready(match &mut self.state {
            State::Ready(stream) => Ok(stream),
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, "the TLS handshake failed")),
        })
    }

    fn register(&mut self, stream: &TlsStream<TcpStream>) {
        let Some(peer) = self.peer else { return };
        let cert = match stream.get_ref().1.peer_certificates() {
            None | Some([]) => ClientCert::Absent,
            Some([end_entity, intermediates @ ..]) => {
                match self.chain_check.verify_client_cert(end_entity, intermediates, UnixTime::now()) {
                    Ok(_) => ClientCert::Trusted,
                    Err(err) => ClientCert::Untrusted(err.to_string()),
                }
            }
        };
        tracing::debug!(%peer, ?cert, "TLS client certificate");
        self.registered = Some(self.certs.insert(peer, cert));
    }
}

impl Drop for HttpsStream {
    fn drop(&mut self) {
        if let (Some(peer), Some(id)) = (self.peer, self.registered) {
            self.certs.remove(peer, id);
        }
    }
}

impl AsyncRead for HttpsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().poll_handshake(cx))?;
        Pin::new(stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for HttpsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_handshake(cx))?;
        Pin::new(stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().poll_handshake(cx))?;
        Pin::new(stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().poll_handshake(cx))?;
        Pin::new(stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_connection_forgets_only_its_own_certificate() {
        let certs = ClientCerts::default();
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let old = certs.insert(peer, ClientCert::Trusted);
        // The client's port is reused by a new connection before the old one is dropped.
        let new = certs.insert(peer, ClientCert::Absent);
        certs.remove(peer, old);
        assert_eq!(certs.lock().get(&peer).map(|(_, cert)| cert.clone()), Some(ClientCert::Absent));
        certs.remove(peer, new);
        assert!(certs.lock().is_empty());
    }
}
