//! The accept loop shared by both listeners: TLS when configured, HTTP/1.1 and HTTP/2 with upgrades
//! (WebSocket), one task per connection, and a graceful drain bounded by the grace period.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and waits up to
/// `grace` for open connections to finish. Returns whether every connection drained in time.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> bool {
    let graceful = GracefulShutdown::new();
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
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let cancelled = shutdown.clone();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let result = match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = tokio::select! {
                        () = cancelled.cancelled() => return,
                        r = handshake => match r {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => return debug!(%peer, error = %e, "tls handshake failed"),
                            Err(_) => return debug!(%peer, "tls handshake timed out"),
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
