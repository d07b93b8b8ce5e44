//! The accept loop shared by both listeners: TLS when configured, HTTP/1.1 and HTTP/2 with upgrades
//! (WebSocket), one task per connection, and a graceful drain bounded by the grace period. Every
//! connection is held to `[limits]` (see [`super::limits`]): the caps at accept, then the TLS
//! handshake bound, the header-read timeout and the idle timeout.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::limits::{Gate, IdleIo, count_closed};
use crate::config::LimitsConfig;

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and waits up to
/// `grace` for open connections to finish. Returns whether every connection drained in time.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: LimitsConfig,
    shutdown: CancellationToken,
    grace: Duration,
) -> bool {
    let graceful = GracefulShutdown::new();
    let gate = Gate::new(name, &limits);
    let service = TowerToHyperService::new(router);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // out of file descriptors and the like: back off rather than spin
                    warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match gate.admit(peer.ip()) {
            Ok(p) => p,
            Err(refusal) => {
                debug!(listener = name, %peer, reason = refusal.as_str(), "connection refused");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = IdleIo::new(stream, limits.idle_timeout, name);
        let (handshake_timeout, header_timeout) =
            (limits.tls_handshake_timeout, limits.header_read_timeout);
        let service = service.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let cancelled = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let result = match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                    let stream = tokio::select! {
                        () = cancelled.cancelled() => return,
                        r = handshake => match r {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => return debug!(%peer, error = %e, "tls handshake failed"),
                            Err(_) => {
                                count_closed(name, "tls_handshake");
                                return debug!(%peer, "tls handshake timed out");
                            }
                        },
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                let header_timeout = e
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_timeout);
                if header_timeout {
                    count_closed(name, "header_read");
                }
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_ok();
    if drained {
        info!(listener = name, "connections drained");
    } else {
        warn!(
            listener = name,
            grace_ms = grace.as_millis() as u64,
            "connections still open after the grace period"
        );
    }
    drained
}

/// Binds `addr`, or says which listener could not.
pub async fn bind(name: &'static str, addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind the {name} listener on {addr}: {e}"),
        )
    })
}
