//! A live daemon in-process with a manual clock, tokens for every role, signed events and media
//! sockets: the harness of the recording tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use callvault::api::auth::mint_token;
use callvault::catalog::{Catalog, RecordingRow, TokenRow};
use callvault::config::Config;
use callvault::domain::{CallId, ManualClock, Role};
use callvault::ingest::webhook::WebhookSecret;
use callvault::server::Daemon;
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

use super::Deployment;

pub type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

/// A daemon serving on loopback, driven by a manual clock.
pub struct Live {
    pub deployment: Deployment,
    pub config: Config,
    pub public: SocketAddr,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`).
    pub admin: SocketAddr,
    pub clock: ManualClock,
    pub catalog: Arc<dyn Catalog>,
    pub telephony: String,
    pub supervisor: String,
    pub compliance: String,
    pub webhook: WebhookSecret,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<Result<(), callvault::server::StartError>>,
    events: std::sync::atomic::AtomicU64,
}

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
        .expect("valid")
        .with_timezone(&Utc)
}

/// A new bearer token of `role`, stored hashed in `catalog`.
pub async fn token(catalog: &dyn Catalog, role: Role) -> String {
    let (id, secret, hash) = mint_token();
    catalog
        .insert_token(&TokenRow {
            id,
            name: format!("test-{role}"),
            role: role.as_str().to_owned(),
            hash,
            created_at: t0(),
            revoked_at: None,
        })
        .await
        .expect("token");
    secret.to_string()
}

impl Live {
    /// Starts a daemon on a fresh state directory with `extra` config lines.
    pub async fn start(extra: &str) -> Live {
        Self::start_in(Deployment::new(extra)).await
    }

    /// Starts a daemon on `deployment` (again, after a stop: the state survives).
    pub async fn start_in(deployment: Deployment) -> Live {
        let config = deployment.load(&[]);
        let clock = ManualClock::new(t0());
        let daemon = Daemon::start(config.clone(), Arc::new(clock.clone()))
            .await
            .expect("daemon starts");
        let public = daemon.public_addr();
        let admin = daemon.admin_addr();
        let catalog = Arc::clone(&daemon.shared().catalog);
        let webhook = WebhookSecret::from_secret(&config.secrets.webhook.read().expect("secret"))
            .expect("whsec");
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(daemon.run(shutdown.clone()));
        let mut tokens = Vec::new();
        for role in [Role::Telephony, Role::Supervisor, Role::Compliance] {
            tokens.push(token(catalog.as_ref(), role).await);
        }
        let [telephony, supervisor, compliance] = tokens.try_into().expect("three tokens");
        Live {
            deployment,
            config,
            public,
            admin,
            clock,
            catalog,
            telephony,
            supervisor,
            compliance,
            webhook,
            shutdown,
            running,
            events: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        callvault::domain::Clock::now(&self.clock)
    }

    /// Advances the manual clock.
    pub fn advance_ms(&self, ms: i64) {
        self.clock.advance(chrono::Duration::milliseconds(ms));
    }

    /// Stops the daemon and waits for it.
    pub async fn stop(self) -> Deployment {
        self.shutdown.cancel();
        self.running.await.expect("no panic").expect("clean stop");
        self.deployment
    }

    /// Posts a raw body to `/v1/events` with the given signature headers.
    pub async fn post_raw(&self, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
        let stream = TcpStream::connect(self.public).await.expect("connect");
        let mut h = vec![("Content-Type", "application/json")];
        h.extend_from_slice(headers);
        let (status, _, body) = super::exchange(stream, "POST", "/v1/events", &h, body).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Posts an event signed with the deployment's secret, timestamped by the manual clock.
    pub async fn post_signed(&self, body: &[u8]) -> (u16, Value) {
        let n = self
            .events
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("msg_{n}");
        let ts = self.now().timestamp();
        let sig = self.webhook.sign(&id, ts, body);
        self.post_raw(
            body,
            &[
                ("webhook-id", &id),
                ("webhook-timestamp", &ts.to_string()),
                ("webhook-signature", &sig),
            ],
        )
        .await
    }

    /// Posts a native event of `kind` for `call` with the time `at` (default: now).
    pub async fn event(
        &self,
        call: &str,
        kind: &str,
        at: Option<DateTime<Utc>>,
        extra: Value,
    ) -> (u16, Value) {
        let n = self
            .events
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut body = json!({
            "id": format!("evt-{call}-{kind}-{n}"),
            "type": kind,
            "call_id": call,
            "at": at.unwrap_or_else(|| self.now()).to_rfc3339(),
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        self.post_signed(body.to_string().as_bytes()).await
    }

    /// Opens the media socket of `call` with `token`.
    pub async fn media_with(
        &self,
        call: &str,
        token: Option<&str>,
    ) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://{}/v1/calls/{call}/media", self.public);
        let mut req = url.into_client_request()?;
        if let Some(t) = token {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header"),
            );
        }
        let tcp = TcpStream::connect(self.public).await.expect("connect");
        // a frame and the ping after it go at once, as a platform's media would
        tcp.set_nodelay(true).expect("nodelay");
        let (ws, _) = tokio_tungstenite::client_async(req, tcp).await?;
        Ok(ws)
    }

    /// Opens the media socket of `call` and sends a PCMU stereo 8 kHz start frame.
    pub async fn media(&self, call: &str) -> Socket {
        let mut ws = self
            .media_with(call, Some(&self.telephony))
            .await
            .expect("media socket opens");
        let start = json!({ "type": "start", "codec": "PCMU", "sample_rate": 8000, "channels": 2 });
        ws.send(Message::Text(start.to_string().into()))
            .await
            .expect("start frame");
        ws
    }

    /// Streams `audio` in 20 ms frames in real time on the manual clock: each frame is sent once
    /// its 20 ms have passed and read by the server (a ping answered after it) before the clock
    /// moves on, so the server sees it arrive exactly when it was spoken.
    pub async fn stream(&self, ws: &mut Socket, audio: &[u8]) {
        for frame in audio.chunks(320) {
            self.advance_ms(20);
            ws.send(Message::Binary(frame.to_vec().into()))
                .await
                .expect("audio frame");
            sync(ws).await;
        }
    }

    /// GETs `path` with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let stream = TcpStream::connect(self.public).await.expect("connect");
        let auth = format!("Bearer {token}");
        super::exchange(stream, "GET", path, &[("Authorization", &auth)], b"").await
    }

    /// The recording of `call`, once it exists.
    pub async fn recording(&self, call: &str) -> Option<RecordingRow> {
        let id: CallId = call.parse().expect("call id");
        self.catalog.recording_by_call(&id).await.expect("catalog")
    }

    /// Waits (in real time, while the clock stands still) until `call`'s recording is no longer live
    /// and every segment is uploaded.
    pub async fn wait_sealed(&self, call: &str) -> RecordingRow {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(r) = self.recording(call).await
                && r.status != callvault::catalog::RecordingStatus::Live
            {
                let segs = self.catalog.segments(r.id).await.expect("segments");
                if segs
                    .iter()
                    .all(|s| s.status != callvault::catalog::SegmentStatus::Spooled)
                {
                    return r;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{call} not sealed and uploaded in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Plays a recording as 16-bit PCM WAV.
    pub async fn play(&self, id: &str, token: &str) -> (u16, Vec<u8>) {
        let (status, _, body) = self
            .get(
                &format!("/v1/recordings/{id}/audio?reason=test&format=pcm16"),
                token,
            )
            .await;
        (status, body)
    }
}

/// Reads the next close frame (skipping acks), returning its code and reason.
pub async fn close_of(ws: &mut Socket) -> Option<(u16, String)> {
    let deadline = Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout(deadline, ws.next()).await.ok()??;
        match msg {
            Ok(Message::Close(Some(f))) => return Some((f.code.into(), f.reason.to_string())),
            Ok(Message::Close(None)) => return Some((1005, String::new())),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// Waits until the server has handed every frame sent so far to the call: a ping is answered only
/// once the socket loop has read past everything before it, so an event posted after the pong is
/// queued behind that audio.
pub async fn sync(ws: &mut Socket) {
    ws.send(Message::Ping(b"sync".to_vec().into()))
        .await
        .expect("ping");
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a pong within 10 s")
            .expect("the socket stays open")
            .expect("a websocket message");
        if let Message::Pong(p) = msg
            && &p[..] == b"sync"
        {
            return;
        }
    }
}
