//! The daemon in-process: start-up checks, listeners, readiness, TLS, and graceful shutdown.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault::domain::{Clock, SystemClock};
use callvault::server::{Daemon, StartError};
use common::{Deployment, get, header, wait_for_200};
use tokio_util::sync::CancellationToken;

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[tokio::test]
async fn serves_health_readiness_and_metrics_then_drains_on_cancel() {
    let d = Deployment::new("");
    let daemon = Daemon::start(d.load(&[]), clock()).await.expect("starts");
    let (public, admin) = (daemon.public_addr(), daemon.admin_addr());
    assert_ne!(public.port(), 0);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(daemon.run(shutdown.clone()));

    wait_for_200(admin, "/readyz", Duration::from_secs(10)).await;
    let (status, _, body) = get(admin, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, headers, _) = get(admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").is_some_and(|v| v.starts_with("text/plain")));

    let (status, headers, body) = get(public, "/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/problem+json")
    );
    let problem: serde_json::Value = serde_json::from_str(&body).expect("problem json");
    assert_eq!(problem["code"], "not_found");
    assert_eq!(problem["status"], 404);

    // the secrets that dev mode created, and the state, are private to the service user
    for name in [
        "keyring",
        "webhook-secret",
        "signing-key",
        "caller-pepper",
        "state",
        "state/catalog.sqlite",
        "state/catalog.sqlite-wal",
        "state/objects",
        "state/spool",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path(name))
            .expect("secret created")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{name} has mode {mode:o}");
    }

    let t = Instant::now();
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops within the grace period")
        .expect("task does not panic");
    assert!(result.is_ok(), "{result:?}");
    assert!(t.elapsed() < Duration::from_secs(4));
    assert!(
        tokio::net::TcpStream::connect(public).await.is_err(),
        "public listener closed"
    );
}

#[tokio::test]
async fn an_open_connection_is_drained_within_the_grace_period() {
    let d = Deployment::new("");
    let daemon = Daemon::start(d.load(&["shutdown_grace=1s"]), clock())
        .await
        .expect("starts");
    let public = daemon.public_addr();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(daemon.run(shutdown.clone()));
    // a client that connects and never sends a request holds a connection open
    let _idle = tokio::net::TcpStream::connect(public)
        .await
        .expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(4), running)
        .await
        .expect("returns despite the idle connection")
        .expect("no panic");
    assert!(result.is_ok());
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn the_public_listener_speaks_tls_when_configured() {
    let d = Deployment::new("[public.tls]\ncert = \"cert.pem\"\nkey = \"tls-key\"\n");
    let cert = rcgen::generate_simple_self_signed(vec!["callvault.test".to_owned()]).expect("cert");
    std::fs::write(d.path("cert.pem"), cert.cert.pem()).expect("write cert");
    std::fs::write(d.path("tls-key"), cert.signing_key.serialize_pem()).expect("write key");
    common::chmod_600(&d.path("tls-key"));

    let daemon = Daemon::start(d.load(&[]), clock())
        .await
        .expect("starts with tls");
    let public = daemon.public_addr();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(daemon.run(shutdown.clone()));

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.cert.der().clone())
        .expect("trust the test cert");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(public)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("callvault.test").expect("name");
    let tls = connector.connect(name, tcp).await.expect("tls handshake");
    let (status, headers, _) = common::request(tls, "GET", "/v1/x").await;
    assert_eq!(status, 404);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/problem+json")
    );

    // a plain-HTTP client gets no answer from a TLS listener
    let (status, ..) = tokio::time::timeout(Duration::from_secs(5), async {
        let mut tcp = tokio::net::TcpStream::connect(public)
            .await
            .expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
        let mut buf = Vec::new();
        let _ = tcp.read_to_end(&mut buf).await;
        (
            String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 404"),
            (),
        )
    })
    .await
    .expect("the server closes the connection");
    assert!(!status);

    shutdown.cancel();
    running.await.expect("no panic").expect("clean exit");
}

#[tokio::test]
async fn a_tls_key_that_does_not_match_is_a_config_error() {
    let d = Deployment::new("[public.tls]\ncert = \"cert.pem\"\nkey = \"tls-key\"\n");
    let a = rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).expect("cert");
    let b = rcgen::generate_simple_self_signed(vec!["b.test".to_owned()]).expect("cert");
    std::fs::write(d.path("cert.pem"), a.cert.pem()).expect("write cert");
    std::fs::write(d.path("tls-key"), b.signing_key.serialize_pem()).expect("write key");
    common::chmod_600(&d.path("tls-key"));
    let err = Daemon::start(d.load(&[]), clock())
        .await
        .expect_err("mismatched key");
    assert_eq!(err.exit_code(), 64);
    assert!(err.to_string().contains("public.tls.key"), "{err}");
}

#[tokio::test]
async fn a_port_in_use_fails_start_with_a_retryable_code() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let d = Deployment::new("");
    let err = Daemon::start(
        d.load(&[&format!("public.listen=127.0.0.1:{port}")]),
        clock(),
    )
    .await
    .expect_err("port taken");
    assert!(matches!(err, StartError::Io(_)), "{err:?}");
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains("public"), "{err}");
}
