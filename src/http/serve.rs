//! The listener's accept loop: what a connection may cost before it reaches the router.
//!
//! `axum::serve` has no header timeout, no connection limit and no TLS, so connections are served
//! here with hyper directly:
//! - at most `server.max_connections` at once; one over the limit is closed as soon as accepted;
//! - a new connection must send its first bytes (or finish its TLS handshake) within
//!   `server.header_read_timeout`, and every HTTP/1.1 request its headers within the same time
//!   (hyper's `header_read_timeout`, which also closes keep-alive connections left idle that long);
//! - HTTP/2 (ALPN `h2` over TLS, prior knowledge in plain text) or HTTP/1.1; HTTP/2 connections
//!   are pinged and closed when the peer stops answering;
//! - graceful shutdown: stop accepting, let requests in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::telemetry::metrics::{CONNECTIONS_OPEN, CONNECTIONS_REFUSED_TOTAL};

/// The first bytes of every HTTP/2 connection without TLS (RFC 9113, 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How the listener treats connections.
#[derive(Clone)]
pub struct ServeOptions {
    /// Time for a connection's first bytes or TLS handshake, and for each request's headers.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// TLS, when the listener terminates it.
    pub tls: Option<TlsAcceptor>,
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for open connections to
/// finish their requests (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let builders = Arc::new(Builders::new(options.header_read_timeout));
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!(CONNECTIONS_REFUSED_TOTAL, "reason" => "max_connections")
                .increment(1);
            tracing::debug!(%peer, "connection closed: server.max_connections reached");
            continue;
        };
        let connection = Connection {
            peer,
            router: router.clone(),
            builders: builders.clone(),
            options: options.clone(),
        };
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
            connection.run(stream, watcher).await;
            metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// hyper's connection settings, one per protocol.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new(header_read_timeout: Duration) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(20)))
            .keep_alive_timeout(Duration::from_secs(10))
            .max_concurrent_streams(100);
        Self { http1, http2 }
    }
}

/// One accepted connection.
struct Connection {
    peer: SocketAddr,
    router: Router,
    builders: Arc<Builders>,
    options: ServeOptions,
}

impl Connection {
    async fn run(self, stream: TcpStream, watcher: hyper_util::server::graceful::Watcher) {
        let deadline = self.options.header_read_timeout;
        match self.options.tls.clone() {
            Some(acceptor) => {
                let Ok(Ok(tls)) = tokio::time::timeout(deadline, acceptor.accept(stream)).await
                else {
                    metrics::counter!(CONNECTIONS_REFUSED_TOTAL, "reason" => "tls_handshake")
                        .increment(1);
                    tracing::debug!(peer = %self.peer, "connection closed: no TLS handshake within server.header_read_timeout");
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                self.serve_http(TokioIo::new(tls), h2, watcher).await;
            }
            None => {
                let Ok(Ok(h2)) =
                    tokio::time::timeout(deadline, starts_with_h2_preface(&stream)).await
                else {
                    metrics::counter!(CONNECTIONS_REFUSED_TOTAL, "reason" => "header_read_timeout")
                        .increment(1);
                    tracing::debug!(peer = %self.peer, "connection closed: nothing sent within server.header_read_timeout");
                    return;
                };
                self.serve_http(TokioIo::new(stream), h2, watcher).await;
            }
        }
    }

    async fn serve_http<I>(self, io: I, h2: bool, watcher: hyper_util::server::graceful::Watcher)
    where
        I: Read + Write + Unpin + Send + 'static,
    {
        let peer = self.peer;
        // Handlers read the TCP peer as axum's `ConnectInfo`, as with `axum::serve`.
        let service = TowerToHyperService::new(self.router.map_request(
            move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        ));
        let result = if h2 {
            watcher
                .watch(self.builders.http2.serve_connection(io, service))
                .await
        } else {
            watcher
                .watch(self.builders.http1.serve_connection(io, service))
                .await
        };
        if let Err(err) = result {
            tracing::debug!(%peer, error = %err, "connection ended with an error");
        }
    }
}

/// Waits for enough of a plain-text connection's first bytes to tell HTTP/2 prior knowledge from
/// HTTP/1.1, without consuming them.
async fn starts_with_h2_preface(stream: &TcpStream) -> std::io::Result<bool> {
    let mut start = [0u8; H2_PREFACE.len()];
    loop {
        let read = stream.peek(&mut start).await?;
        if read == 0 || start[..read] != H2_PREFACE[..read] {
            return Ok(false);
        }
        if read == H2_PREFACE.len() {
            return Ok(true);
        }
        // Part of the preface so far: peek would return the same bytes at once, so wait a little
        // for the rest (the caller's timeout bounds this).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
