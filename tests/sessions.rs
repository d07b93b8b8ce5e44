//! Sessions end with their credentials (issue 12): revoking a token, from another process, closes
//! the listen and media sockets it opened within seconds; a JWT's socket closes when it expires.
//! Each closing is audited.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use callvault::api::auth::mint_token;
use callvault::catalog::TokenRow;
use callvault::domain::Role;
use common::Deployment;
use common::live::{Live, Socket, close_of, sync, t0};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn add_token(live: &Live, role: Role, name: &str) -> (String, String) {
    let (id, secret, hash) = mint_token();
    live.catalog
        .insert_token(&TokenRow {
            id: id.clone(),
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            hash,
            created_at: t0(),
            revoked_at: None,
        })
        .await
        .expect("token");
    (id, secret.to_string())
}

async fn listen(live: &Live, call: &str, token: &str) -> Socket {
    let url = format!("ws://{}/v1/calls/{call}/listen?reason=quality", live.public);
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let tcp = TcpStream::connect(live.public).await.expect("connect");
    tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("listen opens")
        .0
}

fn revoke_with_the_cli(live: &Live, id: &str) {
    let o = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--config")
        .arg(&live.deployment.config)
        .args(["tokens", "revoke", id])
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("run callvault");
    assert!(
        o.status.success(),
        "tokens revoke: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_closes_the_sockets_it_opened_within_seconds() {
    let live = Live::start("").await;
    let call = "CA-revoke-1";
    let (s, b) = live
        .event(
            call,
            "call.started",
            Some(t0()),
            json!({ "caller": "01744 676789" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (tel_id, tel) = add_token(&live, Role::Telephony, "pbx-1").await;
    let (sup_id, sup) = add_token(&live, Role::Supervisor, "jo").await;
    let mut media = live
        .media_with(call, Some(&tel))
        .await
        .expect("media opens");
    let start = json!({ "type": "start", "codec": "PCMU", "sample_rate": 8000, "channels": 2 });
    media
        .send(Message::Text(start.to_string().into()))
        .await
        .expect("start");
    live.stream(&mut media, &vec![0xFF; 3200]).await;
    sync(&mut media).await;
    let mut listener = listen(&live, call, &sup).await;
    let mut other = listen(&live, call, &live.supervisor).await;

    // revoked by another process, as an operator would
    let revoked = Instant::now();
    tokio::task::block_in_place(|| revoke_with_the_cli(&live, &sup_id));
    let close = close_of(&mut listener).await;
    assert_eq!(close, Some((1008, "credential revoked".to_owned())));
    assert!(
        revoked.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        revoked.elapsed()
    );
    eprintln!(
        "listen socket closed {:?} after `tokens revoke` was started",
        revoked.elapsed()
    );
    let (status, _, _) = live
        .get(&format!("/v1/calls/{call}/listen?reason=again"), &sup)
        .await;
    assert_eq!(status, 401, "the revoked token opens nothing new");
    // the media socket and another supervisor's listen carry on
    live.stream(&mut media, &vec![0xFF; 1600]).await;
    sync(&mut media).await;
    other
        .send(Message::Ping(b"still here".to_vec().into()))
        .await
        .expect("the other listener is open");

    // the platform's token revoked: its media socket closes too
    let revoked = Instant::now();
    assert!(
        live.catalog
            .revoke_token(&tel_id, live.now())
            .await
            .expect("revoke")
    );
    assert_eq!(
        close_of(&mut media).await,
        Some((1008, "credential revoked".to_owned()))
    );
    assert!(revoked.elapsed() < Duration::from_secs(5));
    eprintln!(
        "media socket closed {:?} after the revocation",
        revoked.elapsed()
    );

    let audit = live.catalog.audit_after(0, 1000).await.expect("audit");
    let closes: Vec<_> = audit
        .iter()
        .filter(|e| e.entry.action == "session.close")
        .collect();
    assert_eq!(closes.len(), 2, "{closes:?}");
    assert!(closes.iter().all(
        |e| e.entry.subject == call && e.entry.reason.as_deref() == Some("credential revoked")
    ));
    assert!(closes[0].entry.details.contains(&format!("token {sup_id}")));
    assert!(closes[0].entry.details.contains("\"listen\""));
    assert!(closes[1].entry.details.contains(&format!("token {tel_id}")));
    assert!(closes[1].entry.details.contains("\"media\""));
    live.stop().await;
}

fn jwt(seed: [u8; 32], claims: Value) -> String {
    // PKCS #8 v1 for Ed25519 (RFC 8410): a fixed prefix, then the 32-byte seed
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(&der),
    )
    .expect("sign")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_socket_opened_with_a_jwt_closes_when_it_expires() {
    use base64::Engine;
    let seed = [7u8; 32];
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    let jwks = json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "kid": "k1", "use": "sig", "alg": "EdDSA",
        "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public.as_bytes()),
    }]});
    let deployment = Deployment::new(
        "[auth.oidc]\njwks = \"jwks.json\"\nissuer = \"https://login.example.gov.uk\"\n\
         audience = \"callvault\"\nleeway = \"30s\"\nroles_claim = \"groups\"\n\
         [auth.oidc.roles]\n\"cv-supervisors\" = \"supervisor\"\n\
         [recorder]\nidle_seal = \"10m\"\n",
    );
    // (the call's stream sends nothing while the clock jumps: idle_seal keeps it open meanwhile)
    std::fs::write(deployment.path("jwks.json"), jwks.to_string()).expect("write jwks");
    let live = Live::start_in(deployment).await;
    let call = "CA-jwt-1";
    let (s, b) = live
        .event(
            call,
            "call.started",
            Some(t0()),
            json!({ "caller": "01744 676789" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut media = live.media(call).await;
    sync(&mut media).await;
    let now = live.now().timestamp();
    let token = jwt(
        seed,
        json!({ "sub": "alice", "iss": "https://login.example.gov.uk", "aud": "callvault",
                "exp": now + 60, "iat": now, "groups": ["cv-supervisors"] }),
    );
    let mut listener = listen(&live, call, &token).await;
    // still accepted within the leeway after expiry
    live.advance_ms(85_000);
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(2500);
    while let Ok(msg) = tokio::time::timeout_at(quiet_until, listener.next()).await {
        let msg = msg.expect("the socket stays open").expect("a message");
        assert!(!msg.is_close(), "closed within the leeway: {msg:?}");
    }
    live.advance_ms(10_000);
    let expired = Instant::now();
    assert_eq!(
        close_of(&mut listener).await,
        Some((1008, "credential expired".to_owned()))
    );
    assert!(expired.elapsed() < Duration::from_secs(5));
    let audit = live.catalog.audit_after(0, 1000).await.expect("audit");
    let close = audit
        .iter()
        .find(|e| e.entry.action == "session.close")
        .expect("audited");
    assert_eq!(close.entry.reason.as_deref(), Some("credential expired"));
    assert!(
        close.entry.details.contains("oidc:alice"),
        "{}",
        close.entry.details
    );
    live.stop().await;
}
