//! `GET /v1/calls/{call_id}/listen?reason=` (WebSocket, supervisor or compliance): a live call's
//! audio, both channels, as the recorder commits it (about `pci.lookback` behind real time, so a
//! late payment event still keeps card audio out; see [`crate::recorder::ListenFeed`]).
//!
//! Frames sent: a JSON `{"type":"start","codec","sample_rate","channels"}` text frame once the
//! stream's format is known; binary frames of audio in that format; `{"type":"paused","kind"}` when
//! a pause is on (no audio follows until) `{"type":"resumed"}`; `{"type":"lagged","frames"}` when
//! this listener fell behind and lost frames; and a close frame when the call ends (1000), the
//! daemon stops (1001), or the listener's credential is revoked or expires (1008, `credential
//! revoked` / `credential expired`, within a few seconds; see [`super::auth::Sessions`]).
//!
//! A restricted recording (or a refusal kept under a hold) is heard live by compliance only: a
//! supervisor's listen is refused (409 `compliance_only`), and one already open is closed (1008)
//! within a few seconds of the restriction.

use std::collections::HashMap;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::auth::{CLOSE_CREDENTIAL_ENDED, Caller, READERS, Session};
use super::{ApiError, ApiState};
use crate::audit::NewAuditEntry;
use crate::catalog::RecordingStatus;
use crate::domain::{CallId, MediaFormat, Role};
use crate::recorder::{ListenFeed, ListenFrame};

fn start_frame(f: &MediaFormat) -> Message {
    Message::Text(
        json!({ "type": "start", "codec": f.codec.name(), "sample_rate": f.sample_rate, "channels": f.channels })
            .to_string()
            .into(),
    )
}

/// Authenticates, checks the call is live, audits, then upgrades.
pub(super) async fn listen(
    State(st): State<ApiState>,
    caller: Caller,
    Path(call_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    let reason = super::query_reason(&q, "listen")?;
    let call_id: CallId = call_id
        .parse()
        .map_err(|e| ApiError::bad_request("bad_field", format!("call_id: {e}")))?;
    // a restricted recording is heard by compliance only, live as afterwards
    if caller.role != Role::Compliance
        && let Some(row) = st
            .catalog
            .recording_by_call(&call_id)
            .await
            .map_err(|e| ApiError::internal(&e))?
        && (row.restricted || row.status == RecordingStatus::RefusalHeld)
    {
        return Err(ApiError::Conflict {
            code: "compliance_only",
            detail: "the recording is restricted: only the compliance role may listen".into(),
        });
    }
    let feed = st
        .recorder
        .listen(&call_id)
        .await
        .ok_or(ApiError::NotFound)?;
    let entry = NewAuditEntry::new(
        st.clock.now(),
        &caller.actor,
        "call.listen",
        call_id.to_string(),
    )
    .reason(reason)
    .details(&json!({ "reference": q.get("reference") }));
    st.catalog
        .append_audit(entry)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let session = st.sessions.open(&caller, "listen", call_id.to_string());
    // a restriction placed while a supervisor listens closes the listen
    let watch = (caller.role != Role::Compliance).then_some(call_id);
    Ok(ws.on_upgrade(move |socket| send(st, feed, socket, session, watch)))
}

/// How often an open listen checks that its recording was not restricted meanwhile.
const RESTRICTION_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the recording of `call_id` is restricted now (a catalog failure counts as restricted:
/// the listen closes rather than go on unchecked).
async fn restricted(st: &ApiState, call_id: &CallId) -> bool {
    match st.catalog.recording_by_call(call_id).await {
        Ok(Some(row)) => row.restricted || row.status == RecordingStatus::RefusalHeld,
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check a live listen's restriction; closing it");
            true
        }
    }
}

async fn send(
    st: ApiState,
    mut feed: ListenFeed,
    mut socket: WebSocket,
    session: Session,
    watch: Option<CallId>,
) {
    let mut check = tokio::time::interval_at(
        tokio::time::Instant::now() + RESTRICTION_CHECK,
        RESTRICTION_CHECK,
    );
    if let Some(f) = &feed.format
        && socket.send(start_frame(f)).await.is_err()
    {
        return;
    }
    if let Some(kind) = feed.paused {
        let m = json!({ "type": "paused", "kind": kind }).to_string();
        if socket.send(Message::Text(m.into())).await.is_err() {
            return;
        }
    }
    let (code, reason) = loop {
        let frame = tokio::select! {
            () = st.shutdown.cancelled() => break (1001, "server shutting down"),
            cause = session.ended() => break (CLOSE_CREDENTIAL_ENDED, cause.reason()),
            f = feed.frames.recv() => f,
            // the listener closing (or anything it sends) ends the listen
            m = socket.recv() => match m {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return,
            },
            _ = check.tick(), if watch.is_some() => {
                if let Some(call_id) = &watch
                    && restricted(&st, call_id).await
                {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: 1008,
                            reason: "the recording was restricted".into(),
                        })))
                        .await;
                    return;
                }
                continue;
            }
        };
        let msg = match frame {
            Ok(ListenFrame::Audio(b)) => Message::Binary(b),
            Ok(ListenFrame::Paused { kind }) => {
                Message::Text(json!({ "type": "paused", "kind": kind }).to_string().into())
            }
            Ok(ListenFrame::Resumed) => {
                Message::Text(json!({ "type": "resumed" }).to_string().into())
            }
            Ok(ListenFrame::Format(f)) => start_frame(&f),
            Err(RecvError::Lagged(n)) => {
                Message::Text(json!({ "type": "lagged", "frames": n }).to_string().into())
            }
            Err(RecvError::Closed) => break (1000, "call ended"),
        };
        if socket.send(msg).await.is_err() {
            return;
        }
    };
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}
