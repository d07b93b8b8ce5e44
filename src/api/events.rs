//! `POST /v1/events`: native call events, signed the Standard Webhooks way.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::catalog::{CallNote, CallSource};
use crate::domain::EventKind;
use crate::ingest::IngestError;
use crate::ingest::native::parse_event;
use crate::ingest::webhook::WebhookHeaders;
use crate::recorder::{EventOutcome, RecorderError};

/// Verifies, parses, de-duplicates and applies one event.
pub(super) async fn post_event(
    State(st): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let arrival = st.clock.now();
    let max = st.config.public.max_body_bytes;
    if headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > max)
    {
        return Err(ApiError::PayloadTooLarge);
    }
    let bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or(""));
    let signed = WebhookHeaders {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    };
    st.webhook
        .verify(signed, &bytes, arrival)
        .map_err(|e| ingest_error(&e))?;
    let event = parse_event(&bytes).map_err(|e| ingest_error(&e))?;
    note_call(&st, &event, CallSource::Native, None, arrival).await?;
    apply(&st, event, arrival)
        .await
        .map(|status| Json(json!({ "status": status })))
}

/// Applies an event once: a repeated id is acknowledged and not applied again. Shared by the webhook
/// and the media socket's control frames. Returns `applied` or `duplicate`.
pub(super) async fn apply(
    st: &ApiState,
    event: crate::domain::CallEvent,
    arrival: chrono::DateTime<chrono::Utc>,
) -> Result<&'static str, ApiError> {
    let id = event.id.clone();
    if !st
        .catalog
        .mark_event_seen(&id, arrival)
        .await
        .map_err(|e| ApiError::internal(&e))?
    {
        metrics::counter!("callvault_events_total", "outcome" => "duplicate").increment(1);
        return Ok("duplicate");
    }
    match st.recorder.event(event, arrival).await {
        Ok(EventOutcome::Applied) => {
            metrics::counter!("callvault_events_total", "outcome" => "applied").increment(1);
            Ok("applied")
        }
        Err(e) => {
            let api = recorder_error(e);
            if matches!(api, ApiError::Internal | ApiError::Unavailable { .. }) {
                // not applied: a retry of the same id must be applied, not acknowledged as a duplicate
                if let Err(e) = st.catalog.forget_event(&id).await {
                    tracing::error!(event_id = %id, error = %e, "cannot forget a failed event id; a retry will be taken as a duplicate");
                }
            }
            metrics::counter!("callvault_events_total", "outcome" => "refused").increment(1);
            Err(api)
        }
    }
}

/// Notes the call a `call.started` or `call.ended` is about in the call roster (issue 16), before
/// the event is applied: a call the recorder cannot take (too many calls, shutting down) is still
/// accounted for. `duration_ms` is the platform's own count of the call's length, where it gives
/// one. A catalog that refuses the note fails the delivery (500), so the platform retries it.
pub(super) async fn note_call(
    st: &ApiState,
    event: &crate::domain::CallEvent,
    source: CallSource,
    duration_ms: Option<u64>,
    arrival: chrono::DateTime<chrono::Utc>,
) -> Result<(), ApiError> {
    let mut note = CallNote::seen(event.call_id.clone(), source, arrival);
    match &event.kind {
        EventKind::CallStarted { line, .. } => {
            note.started_at = Some(event.at);
            note.line.clone_from(line);
        }
        EventKind::CallEnded => note.ended_at = Some(event.at),
        _ => return Ok(()),
    }
    note.duration_ms = duration_ms;
    st.catalog
        .note_call(&note)
        .await
        .map_err(|e| ApiError::internal(&e))
}

/// How an ingest error answers.
pub(super) fn ingest_error(e: &IngestError) -> ApiError {
    match e {
        IngestError::MissingSignature { .. }
        | IngestError::BadSignature
        | IngestError::StaleTimestamp { .. } => ApiError::BadSignature {
            code: e.code(),
            detail: e.to_string(),
        },
        IngestError::BadSecret { .. } => ApiError::internal(e),
        _ => ApiError::bad_request(e.code(), e.to_string()),
    }
}

/// How a recorder error answers.
pub(super) fn recorder_error(e: RecorderError) -> ApiError {
    use crate::domain::lifecycle::Refusal;
    match e {
        RecorderError::Refused(r @ Refusal::CallEnded(..))
        | RecorderError::Refused(r @ Refusal::Refused(..)) => {
            let code = if matches!(r, Refusal::CallEnded(..)) {
                "call_ended"
            } else {
                "consent_refused"
            };
            ApiError::Conflict {
                code,
                detail: r.to_string(),
            }
        }
        RecorderError::Ended(_) => ApiError::Conflict {
            code: "call_ended",
            detail: e.to_string(),
        },
        RecorderError::StreamOpen => ApiError::Conflict {
            code: "stream_open",
            detail: e.to_string(),
        },
        RecorderError::FormatChanged { .. } => ApiError::Conflict {
            code: "format_changed",
            detail: e.to_string(),
        },
        RecorderError::Busy => ApiError::Unavailable {
            code: "too_many_calls",
            detail: e.to_string(),
        },
        RecorderError::ShuttingDown => ApiError::Unavailable {
            code: "shutting_down",
            detail: e.to_string(),
        },
        RecorderError::Catalog(e) => ApiError::internal(&e),
        RecorderError::Persist(e) => ApiError::internal(&e),
        RecorderError::Retention(e) => ApiError::from(*e),
        RecorderError::Conflict { .. } => ApiError::Conflict {
            code: "call_started_conflict",
            detail: e.to_string(),
        },
    }
}
