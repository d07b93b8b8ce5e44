//! `GET /v1/calls/{call_id}/media`: the native media WebSocket (telephony role).
//!
//! A `start` text frame, then binary audio frames, with optional JSON control frames carrying the
//! same events as the webhook. A malformed frame closes this stream with a close code and a reason;
//! what the call already captured is kept, and other calls carry on.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;
use tracing::{debug, info, warn};

use super::auth::{CLOSE_CREDENTIAL_ENDED, Caller, Session, TELEPHONY};
use super::events::{apply, recorder_error};
use super::socket::{Pacer, Wake, close};
use super::{ApiError, ApiState};
use crate::domain::CallId;
use crate::domain::timeline::MediaClock;
use crate::ingest::media::{MAX_REASON_BYTES, MediaMessage, MediaSession};
use crate::recorder::MediaSink;

/// Close codes (RFC 6455).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TRY_LATER: u16 = 1013;

/// Authenticates, then upgrades.
pub(super) async fn media(
    State(st): State<ApiState>,
    caller: Caller,
    Path(call_id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    caller.require(TELEPHONY)?;
    let call_id: CallId = call_id
        .parse()
        .map_err(|e| ApiError::bad_request("bad_field", format!("call_id: {e}")))?;
    let held = st.sessions.open(&caller, "media", call_id.to_string());
    Ok(super::telephony_socket(ws).on_upgrade(move |socket| stream(st, call_id, socket, held)))
}

async fn stream(st: ApiState, call_id: CallId, mut socket: WebSocket, held: Session) {
    let mut session = MediaSession::new(call_id.clone());
    let mut sink: Option<MediaSink> = None;
    let mut frames = 0u64;
    let mut pacer = Pacer::new(st.config.recorder.idle_seal, &st.shutdown);
    // made once: a new waiter each frame would register and cancel one fifty times a second
    let ended = held.ended();
    tokio::pin!(ended);
    let (code, reason): (u16, String) = loop {
        let wake = tokio::select! {
            cause = &mut ended => break (CLOSE_CREDENTIAL_ENDED, cause.reason().into()),
            wake = pacer.next(&mut socket, sink.as_ref()) => wake,
        };
        let msg = match wake {
            Wake::Message(msg) => msg,
            Wake::Flush => {
                if let Some(s) = &mut sink
                    && s.flush().await.is_err()
                {
                    break (CLOSE_NORMAL, "call ended".into());
                }
                continue;
            }
            Wake::Idle => break (CLOSE_NORMAL, "idle".into()),
            Wake::Shutdown => break (CLOSE_GOING_AWAY, "server shutting down".into()),
        };
        let msg = match msg {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                debug!(call_id = %call_id, error = %e, "media socket error");
                break (CLOSE_POLICY, "protocol error".into());
            }
            None => break (CLOSE_NORMAL, String::new()),
        };
        // anything but audio first hands over the audio read before it: a peer that sees our
        // answer to it (an ack, a pong) knows its audio reached the call ahead of its next event
        if !matches!(msg, Message::Binary(_))
            && let Some(s) = &mut sink
            && s.flush().await.is_err()
        {
            break (CLOSE_NORMAL, "call ended".into());
        }
        match msg {
            Message::Text(text) => match session.on_text(text.as_str()) {
                Ok(MediaMessage::Start(start)) => {
                    match st
                        .recorder
                        .open_media(
                            &call_id,
                            start.format,
                            MediaClock::Counted,
                            start.media_start,
                        )
                        .await
                    {
                        Ok(s) => sink = Some(s),
                        Err(e) => {
                            let api = recorder_error(e);
                            let code = if matches!(api, ApiError::Unavailable { .. }) {
                                CLOSE_TRY_LATER
                            } else {
                                CLOSE_POLICY
                            };
                            // the stable code first, as in a problem body: `stream_open: ...`
                            let mut reason = format!("{}: {api}", api.code());
                            let mut cut = reason.len().min(MAX_REASON_BYTES);
                            while !reason.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            reason.truncate(cut);
                            break (code, reason);
                        }
                    }
                }
                Ok(MediaMessage::Control(event)) => {
                    let id = event.id.clone();
                    let reply = match apply(&st, event, st.clock.now()).await {
                        Ok(status) => json!({ "type": "ack", "id": id, "status": status }),
                        Err(e) => {
                            json!({ "type": "ack", "id": id, "status": "refused", "detail": e.to_string() })
                        }
                    };
                    if socket
                        .send(Message::Text(reply.to_string().into()))
                        .await
                        .is_err()
                    {
                        break (CLOSE_NORMAL, String::new());
                    }
                }
                Ok(MediaMessage::Stop) => break (CLOSE_NORMAL, "stop".into()),
                Err(e) => break (e.close_code(), e.reason().to_owned()),
            },
            Message::Binary(bytes) => match session.on_binary(&bytes) {
                Ok(audio) => {
                    let Some(s) = &mut sink else {
                        break (CLOSE_POLICY, "audio before start".into());
                    };
                    frames += 1;
                    if s.push(audio) && s.flush().await.is_err() {
                        break (CLOSE_NORMAL, "call ended".into());
                    }
                }
                Err(e) => break (e.close_code(), e.reason().to_owned()),
            },
            Message::Close(_) => break (CLOSE_NORMAL, String::new()),
            Message::Ping(_) | Message::Pong(_) => {}
        }
    };
    if code == CLOSE_NORMAL || code == CLOSE_GOING_AWAY || held.cause().is_some() {
        info!(call_id = %call_id, frames, %reason, "media stream closed");
    } else {
        warn!(call_id = %call_id, frames, code, %reason, "media stream closed on a bad frame");
        metrics::counter!("callvault_media_rejected_total").increment(1);
    }
    if let Some(mut s) = sink {
        if let Err(e) = s.flush().await {
            debug!(call_id = %call_id, error = %e, "the call ended before the last audio reached it");
        }
    }
    close(socket, code, reason).await;
}
