//! The simulator against a fake callvault built from `ingest`'s own checks: both sides of the
//! native protocol agree.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{any, post};

use super::*;
use crate::ingest::media::{MediaMessage, MediaSession};
use crate::ingest::native::parse_event;
use crate::ingest::webhook::WebhookHeaders;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN: &str = "cv_test_token";

/// What the fake server saw. A std mutex: it is held only to push, never across an await.
#[derive(Default)]
struct Seen {
    posted: Vec<CallEvent>,
    controls: Vec<CallEvent>,
    audio_bytes: u64,
    started: bool,
    stopped: bool,
    errors: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    s.lock()
        .expect("a test thread panicked while holding the lock")
}

async fn events(State(seen): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let secret = WebhookSecret::from_secret(&Secret::new(SECRET.into())).expect("valid secret");
    let checked = secret
        .verify(
            WebhookHeaders {
                id: h("webhook-id"),
                timestamp: h("webhook-timestamp"),
                signature: h("webhook-signature"),
            },
            &body,
            Utc::now(),
        )
        .and_then(|()| parse_event(&body));
    match checked {
        Ok(e) => {
            lock(&seen).posted.push(e);
            StatusCode::NO_CONTENT
        }
        Err(e) => {
            lock(&seen).errors.push(e.to_string());
            StatusCode::UNAUTHORIZED
        }
    }
}

async fn media(
    State(seen): State<Shared>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, StatusCode> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let call_id: CallId = call_id.parse().map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok(ws.on_upgrade(move |socket| run_media(socket, MediaSession::new(call_id), seen)))
}

async fn run_media(mut socket: WebSocket, mut session: MediaSession, seen: Shared) {
    while let Some(Ok(msg)) = socket.recv().await {
        let result = match msg {
            WsMessage::Text(t) => session.on_text(t.as_str()).map(|m| {
                let mut s = lock(&seen);
                match m {
                    MediaMessage::Start(_) => s.started = true,
                    MediaMessage::Control(e) => s.controls.push(e),
                    MediaMessage::Stop => s.stopped = true,
                }
            }),
            WsMessage::Binary(b) => session
                .on_binary(&b)
                .map(|a| lock(&seen).audio_bytes += a.len() as u64),
            WsMessage::Close(_) => return,
            _ => Ok(()),
        };
        if let Err(e) = result {
            lock(&seen).errors.push(e.to_string());
            break;
        }
        if session.is_stopped() {
            break;
        }
    }
    // close first, as callvault does on `stop`, then wait for the client's reply
    let bye = axum::extract::ws::CloseFrame {
        code: 1000,
        reason: "bye".into(),
    };
    let _ = socket.send(WsMessage::Close(Some(bye))).await;
    while let Some(Ok(_)) = socket.recv().await {}
}

async fn fake_callvault() -> (String, Shared) {
    let seen = Shared::default();
    let app = Router::new()
        .route("/v1/events", post(events))
        .route("/v1/calls/{call_id}/media", any(media))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn options(url: String) -> SimulateOptions {
    let mut o = SimulateOptions::new(
        url,
        Secret::new(TOKEN.into()),
        "CA-sim-1".parse().expect("valid"),
    );
    o.duration = Duration::from_millis(1000);
    o.realtime = false;
    o.events = vec![
        (Duration::from_millis(200), EventKind::PaymentStarted),
        (Duration::from_millis(600), EventKind::PaymentEnded),
        (Duration::from_secs(5), EventKind::ConsentGiven),
    ];
    o.line = Some("+441632960000".into());
    o
}

fn names(events: &[CallEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.name()).collect()
}

const SCRIPT: [&str; 5] = [
    "call.started",
    "payment.started",
    "payment.ended",
    "consent.given",
    "call.ended",
];

#[tokio::test]
async fn control_frames_over_the_socket() {
    let (url, seen) = fake_callvault().await;
    let report = simulate(options(url)).await.expect("simulated call");
    assert_eq!(report.frames, 50);
    assert_eq!(report.audio_bytes, 50 * 320);
    assert_eq!(report.close, Some((1000, "bye".into())));
    assert_eq!(names(&report.events), SCRIPT);
    let s = lock(&seen);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert!(s.started && s.stopped && s.posted.is_empty());
    assert_eq!(s.audio_bytes, report.audio_bytes);
    assert_eq!(s.controls, report.events);
    // times are on the media clock
    let pay = &s.controls[1];
    assert_eq!(
        pay.at - s.controls[0].at,
        chrono::Duration::milliseconds(200)
    );
}

#[tokio::test]
async fn signed_webhooks_and_l16() {
    let (url, seen) = fake_callvault().await;
    let mut o = options(url);
    o.webhook_secret =
        Some(WebhookSecret::from_secret(&Secret::new(SECRET.into())).expect("valid secret"));
    o.codec = Codec::L16;
    let report = simulate(o).await.expect("simulated call");
    assert_eq!(report.audio_bytes, 50 * 640);
    let s = lock(&seen);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert!(s.controls.is_empty());
    assert_eq!(names(&s.posted), SCRIPT);
    let CallEvent {
        kind: EventKind::CallStarted { line, .. },
        ..
    } = &s.posted[0]
    else {
        panic!("call.started first");
    };
    assert_eq!(line.as_deref(), Some("+441632960000"));
}

#[tokio::test]
async fn refusals_are_reported() {
    let (url, _) = fake_callvault().await;
    let mut o = options(url.clone());
    o.token = Secret::new(b"wrong".to_vec());
    let e = simulate(o).await.expect_err("bad token");
    assert!(format!("{e:#}").contains("401"), "{e:#}");

    let mut o = options(url);
    o.webhook_secret = Some(
        WebhookSecret::from_secret(&Secret::new(b"whsec_d3Jvbmc=".to_vec())).expect("valid secret"),
    );
    let e = simulate(o).await.expect_err("bad signature");
    assert!(format!("{e:#}").contains("401"), "{e:#}");
}

#[tokio::test]
async fn real_time_pacing_takes_as_long_as_the_audio() {
    let (url, _) = fake_callvault().await;
    let mut o = options(url);
    o.realtime = true;
    o.duration = Duration::from_millis(300);
    o.events.clear();
    let began = std::time::Instant::now();
    let report = simulate(o).await.expect("simulated call");
    assert_eq!(report.frames, 15);
    // the first tick is immediate, so 15 frames span 14 intervals
    assert!(began.elapsed() >= FRAME * 14, "{:?}", began.elapsed());
}
