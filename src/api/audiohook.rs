//! `GET /v1/audiohook`: Genesys Cloud AudioHook v2.
//!
//! The upgrade's HTTP message signature is checked; as the reference server does, a bad one is
//! answered on the socket (`disconnect{reason:"unauthorized"}` after 500 ms), not with a 401.
//!
//! Pauses: a client `paused` that the server did not ask for (a Genesys secure pause) starts a PCI
//! payment pause, and its `resumed` ends it. A payment pause is the right kind, not an agent pause:
//! the recorder keeps it fail-closed (no resume, no capture until the call ends), and a native
//! `payment.started` for the same conversation is the same pause. When a native payment event
//! arrives for the conversation, the recorder's pause watch makes this socket send `pause` or
//! `resume`; the client's answering `paused`/`resumed` is then only an acknowledgement. Every
//! `resumed` or `discarded` puts the discarded length in the recording's ledger, and that much
//! silence is fed to the recorder so later audio keeps its place in time (audio inside the pause is
//! dropped by the recorder as usual).

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::events::{apply, note_call, recorder_error};
use super::socket::{Pacer, Wake, close};
use super::{ApiError, ApiState};
use crate::catalog::CallSource;
use crate::domain::timeline::MediaClock;
use crate::domain::{CallEvent, CallId, EventKind, MediaFormat};
use crate::ingest::audiohook::{HookOutput, HookSession, SignedRequest};
use crate::recorder::MediaSink;

const CLOSE_NORMAL: u16 = 1000;
const UNAUTHORIZED_DELAY: Duration = Duration::from_millis(500);

struct Upgrade {
    target: String,
    authority: String,
    headers: HeaderMap,
}

impl SignedRequest for Upgrade {
    fn target(&self) -> &str {
        &self.target
    }
    fn authority(&self) -> &str {
        &self.authority
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Checks the signature and upgrades (answering a bad signature on the socket).
pub(super) async fn audiohook(
    State(st): State<ApiState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let auth = st.platforms.audiohook.as_ref().ok_or(ApiError::NotFound)?;
    let req = Upgrade {
        target: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        authority: headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .unwrap_or_default()
            .to_owned(),
        headers,
    };
    let verdict = auth.verify(&req, st.clock.now());
    let session_id = req
        .header("audiohook-session-id")
        .unwrap_or_default()
        .chars()
        .take(64)
        .collect::<String>();
    Ok(
        super::telephony_socket(ws).on_upgrade(move |socket| async move {
            match verdict {
                Ok(()) => session(st, socket).await,
                Err(e) => unauthorized(socket, &session_id, &e).await,
            }
        }),
    )
}

async fn unauthorized(mut socket: WebSocket, session_id: &str, e: &crate::ingest::IngestError) {
    warn!(code = e.code(), reason = %e, "audiohook upgrade refused");
    metrics::counter!("callvault_media_rejected_total").increment(1);
    tokio::time::sleep(UNAUTHORIZED_DELAY).await;
    let msg = json!({"version":"2","id":session_id,"type":"disconnect","seq":1,"clientseq":0,
        "parameters":{"reason":"unauthorized"}});
    let _ = socket.send(Message::Text(msg.to_string().into())).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: CLOSE_NORMAL,
            reason: "unauthorized".into(),
        })))
        .await;
}

/// One session's state beside the protocol's: the call, its sink, and who paused.
struct Live {
    call: Option<CallId>,
    format: Option<MediaFormat>,
    sink: Option<MediaSink>,
    pauses: Option<watch::Receiver<bool>>,
    /// We sent `pause` and have not sent `resume`.
    pause_sent: bool,
    /// The client paused on its own; its `resumed` ends the payment pause.
    client_pause: bool,
    /// The `seq` of the last `resume` sent: a `paused` from a client that had not seen it yet
    /// answers the earlier `pause`.
    resume_seq: u64,
    events: u64,
}

async fn session(st: ApiState, mut socket: WebSocket) {
    let mut hook = HookSession::new();
    let mut live = Live {
        call: None,
        format: None,
        sink: None,
        pauses: None,
        pause_sent: false,
        client_pause: false,
        resume_seq: 0,
        events: 0,
    };
    let mut pacer = Pacer::new(st.config.recorder.idle_seal, &st.shutdown);
    let outcome: Result<(), String> = loop {
        let changed = async {
            match &mut live.pauses {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let msg = tokio::select! {
            open = changed => {
                if !open {
                    live.pauses = None;
                }
                if let Err(()) = sync_pause(&mut hook, &mut live, &mut socket).await {
                    break Ok(());
                }
                continue;
            }
            wake = pacer.next(&mut socket, live.sink.as_ref()) => match wake {
                Wake::Message(msg) => msg,
                Wake::Flush => {
                    flush(&mut live).await;
                    continue;
                }
                Wake::Idle => {
                    let m = hook.disconnect("error", Some("no message within the idle limit"));
                    // the peer is silent or gone: telling it why is a courtesy, the close follows
                    let _ = socket.send(Message::Text(m.into())).await;
                    break Ok(());
                }
                Wake::Shutdown => {
                    let m = hook.disconnect("completed", Some("server shutting down"));
                    // as above: what was received is the call's already; the close follows
                    let _ = socket.send(Message::Text(m.into())).await;
                    break Ok(());
                }
            },
        };
        if !matches!(msg, Some(Ok(Message::Binary(_)))) {
            // audio read before a control message reaches the call first
            flush(&mut live).await;
        }
        match msg {
            Some(Ok(Message::Text(text))) => {
                let outputs = match hook.on_text(text.as_str(), st.clock.now()) {
                    Ok(o) => o,
                    Err(e) => break Err(e.to_string()),
                };
                for out in outputs {
                    if let Err(()) = on_output(&st, &mut hook, &mut live, &mut socket, out).await {
                        break;
                    }
                }
                if sync_pause(&mut hook, &mut live, &mut socket).await.is_err() {
                    break Ok(());
                }
            }
            Some(Ok(Message::Binary(bytes))) => match hook.on_binary(&bytes) {
                Ok(audio) => {
                    if let Some(s) = &mut live.sink
                        && s.push(audio)
                    {
                        flush(&mut live).await;
                    }
                }
                Err(e) => break Err(e.to_string()),
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_))) | None => break Ok(()),
            Some(Err(e)) => {
                debug!(error = %e, "audiohook socket error");
                break Ok(());
            }
        }
    };
    flush(&mut live).await;
    let call = live
        .call
        .as_ref()
        .map_or_else(String::new, ToString::to_string);
    let reason = match outcome {
        Ok(()) => {
            info!(call_id = %call, "audiohook session ended");
            String::new()
        }
        Err(reason) => {
            warn!(call_id = %call, %reason, "audiohook protocol error; disconnecting");
            metrics::counter!("callvault_media_rejected_total").increment(1);
            let m = hook.disconnect("error", Some(&reason));
            let _ = socket.send(Message::Text(m.into())).await;
            "protocol error".to_owned()
        }
    };
    drop(live.sink);
    close(socket, CLOSE_NORMAL, reason).await;
}

/// Hands the audio read so far to the call; a call that is over takes no more.
async fn flush(live: &mut Live) {
    if let Some(s) = &mut live.sink
        && s.flush().await.is_err()
    {
        live.sink = None;
    }
}

/// Sends `pause` or `resume` when the recorder's payment pause and the client's state disagree.
async fn sync_pause(
    hook: &mut HookSession,
    live: &mut Live,
    socket: &mut WebSocket,
) -> Result<(), ()> {
    if !hook.is_open() {
        return Ok(());
    }
    let want = live
        .pauses
        .as_mut()
        .is_some_and(|rx| *rx.borrow_and_update());
    let msg = if want && !hook.is_paused() && !live.pause_sent {
        live.pause_sent = true;
        hook.pause()
    } else if !want && live.pause_sent {
        live.pause_sent = false;
        let m = hook.resume();
        live.resume_seq = hook.server_seq();
        m
    } else {
        return Ok(());
    };
    socket.send(Message::Text(msg.into())).await.map_err(|_| ())
}

async fn on_output(
    st: &ApiState,
    hook: &mut HookSession,
    live: &mut Live,
    socket: &mut WebSocket,
    out: HookOutput,
) -> Result<(), ()> {
    match out {
        HookOutput::Send(text) => socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| ())?,
        HookOutput::Opened {
            call_id,
            format,
            probe,
            started,
        } => {
            if probe {
                info!("audiohook connection probe answered");
                return Ok(());
            }
            info!(call_id = %call_id, "audiohook session opened");
            let now = st.clock.now();
            if let Err(e) = note_call(st, &started, CallSource::AudioHook, None, now).await {
                // the recording, once its media opens, notes the call too
                tracing::error!(call_id = %call_id, code = e.code(), "audiohook session not noted in the call roster");
                metrics::counter!("callvault_call_notes_failed_total").increment(1);
            }
            if let Err(e) = apply(st, started, now).await {
                warn!(call_id = %call_id, error = %e, "call.started from audiohook refused");
            }
            if let Some(format) = format {
                match st
                    .recorder
                    .open_media(&call_id, format, MediaClock::Stamped, None)
                    .await
                {
                    Ok(s) => live.sink = Some(s),
                    Err(e) => {
                        let api = recorder_error(e);
                        warn!(call_id = %call_id, code = api.code(), "audiohook media not recorded");
                    }
                }
            }
            live.pauses = st.recorder.watch_pauses(&call_id);
            live.format = format;
            live.call = Some(call_id);
        }
        HookOutput::Paused => {
            let answers_our_pause = live.pause_sent || hook.acked() < live.resume_seq;
            if !answers_our_pause && !live.client_pause {
                live.client_pause = true;
                event(st, live, EventKind::PaymentStarted).await;
            }
        }
        HookOutput::Resumed { start, discarded } | HookOutput::Discarded { start, discarded } => {
            let by_client = live.client_pause;
            let was_pause = matches!(out, HookOutput::Resumed { .. });
            if let Some(call) = &live.call {
                let details = json!({
                    "start_ms": start.as_millis() as u64,
                    "discarded_ms": discarded.as_millis() as u64,
                    "pause": if !was_pause { "none" } else if by_client { "client" } else { "server" },
                });
                if let Err(e) = st.recorder.note(call, "audiohook.discarded", details).await {
                    warn!(call_id = %call, error = %e, "cannot note discarded audio in the ledger");
                }
            }
            skip_gap(live, start, discarded);
            if was_pause && live.client_pause {
                live.client_pause = false;
                event(st, live, EventKind::PaymentEnded).await;
            }
        }
        HookOutput::Closed { reason } => {
            info!(call_id = ?live.call.as_ref().map(CallId::as_str), %reason, "audiohook close");
            if reason == "end" && live.sink.is_some() {
                event(st, live, EventKind::CallEnded).await;
            }
            live.sink = None;
            live.pauses = None;
        }
        HookOutput::ClientError { code } => {
            warn!(call_id = ?live.call.as_ref().map(CallId::as_str), code, "audiohook client reported an error");
        }
    }
    Ok(())
}

/// Moves the stream position past a gap the client reports, so audio after it keeps its place on
/// the call's timeline (a hole, played as silence), never shifted back into the gap.
fn skip_gap(live: &mut Live, start: Duration, gap: Duration) {
    let (Some(sink), Some(format)) = (&mut live.sink, live.format) else {
        return;
    };
    let rate = u128::from(format.sample_rate);
    let samples = |d: Duration| u64::try_from(d.as_micros() * rate / 1_000_000).unwrap_or(u64::MAX);
    sink.advance_to(samples(start).saturating_add(samples(gap)));
}

async fn event(st: &ApiState, live: &mut Live, kind: EventKind) {
    let Some(call) = live.call.clone() else {
        return;
    };
    live.events += 1;
    let name = kind.name();
    let event = CallEvent {
        id: if matches!(kind, EventKind::CallEnded) {
            format!("audiohook:{call}:call.ended")
        } else {
            format!("audiohook:{call}:{}:{}", uuid::Uuid::now_v7(), live.events)
        },
        call_id: call.clone(),
        at: st.clock.now(),
        kind,
    };
    if let Err(e) = apply(st, event, st.clock.now()).await {
        warn!(call_id = %call, event = name, error = %e, "audiohook event refused");
    }
    // our own event moved the pause watch: that change is not a request to send pause/resume
    if let Some(rx) = &mut live.pauses {
        rx.borrow_and_update();
    }
}
