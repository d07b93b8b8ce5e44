//! Recordings: find a call's recording, read its metadata, segments and ledger, and play it.

use crate::audio::playback::{LayoutError, layout, stream_gaps};
use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::auth::{Caller, READERS};
use super::range::{ByteRange, content_range, parse_range};
use super::{ApiError, ApiState};
use crate::audio::render::{OutputFormat, Timeline};
use crate::audit::NewAuditEntry;
use crate::catalog::{LedgerEntry, RecordingRow, RecordingStatus, SegmentRow};
use crate::domain::{CallId, PauseRender, RecordingId, Role};

/// One recording, as a listing shows it.
#[derive(Serialize)]
struct Summary {
    id: String,
    call_id: String,
    status: &'static str,
    policy: String,
    line: Option<String>,
    queue: Option<String>,
    agent: Option<String>,
    codec: &'static str,
    sample_rate: u32,
    channels: u8,
    started_at: String,
    ended_at: Option<String>,
    expires_at: Option<String>,
    restricted: bool,
}

impl Summary {
    fn of(r: &RecordingRow) -> Self {
        Self {
            id: r.id.to_string(),
            call_id: r.call_id.to_string(),
            status: r.status.as_str(),
            policy: r.policy.clone(),
            line: r.line.clone(),
            queue: r.queue.clone(),
            agent: r.agent.clone(),
            codec: r.codec.name(),
            sample_rate: r.sample_rate,
            channels: r.channels,
            started_at: r.started_at.to_rfc3339(),
            ended_at: r.ended_at.map(|t| t.to_rfc3339()),
            expires_at: r.expires_at.map(|t| t.to_rfc3339()),
            restricted: r.restricted,
        }
    }
}

#[derive(Serialize)]
struct Segment {
    segment: u32,
    media_start_ms: u64,
    media_end_ms: u64,
    size: u64,
    sha256: Option<String>,
    status: &'static str,
}

#[derive(Serialize)]
struct Ledger {
    seq: u64,
    at: String,
    kind: String,
    actor: String,
    reason: Option<String>,
    details: Value,
}

#[derive(Serialize)]
struct Hold {
    reference: String,
    reason: String,
    created_at: String,
}

#[derive(Serialize)]
pub(super) struct Detail {
    #[serde(flatten)]
    summary: Summary,
    duration_ms: u64,
    segments: Vec<Segment>,
    holds: Vec<Hold>,
    ledger: Vec<Ledger>,
}

pub(super) fn parse_id(id: &str) -> Result<RecordingId, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

async fn audit(
    st: &ApiState,
    caller: &Caller,
    action: &str,
    subject: String,
    reason: Option<&str>,
    details: Value,
) -> Result<(), ApiError> {
    let mut entry =
        NewAuditEntry::new(st.clock.now(), &caller.actor, action, subject).details(&details);
    entry.reason = reason.map(str::to_owned);
    st.catalog
        .append_audit(entry)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(())
}

/// `GET /v1/recordings?call_id=`: the recording of one call.
pub(super) async fn find(
    State(st): State<ApiState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Some(call_id) = q.get("call_id") else {
        return Err(ApiError::bad_request(
            "missing_field",
            "call_id is required",
        ));
    };
    let call_id: CallId = call_id
        .parse()
        .map_err(|e| ApiError::bad_request("bad_field", format!("call_id: {e}")))?;
    let found = st
        .catalog
        .recording_by_call(&call_id)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    audit(
        &st,
        &caller,
        "recording.search",
        call_id.to_string(),
        q.get("reason").map(String::as_str),
        serde_json::json!({ "call_id": call_id.as_str(), "found": found.is_some() }),
    )
    .await?;
    let list: Vec<Summary> = found.iter().map(Summary::of).collect();
    Ok(Json(serde_json::json!({ "recordings": list })))
}

/// `GET /v1/recordings/{id}`: metadata, segments, active holds and ledger.
pub(super) async fn get_one(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Detail>, ApiError> {
    caller.require(READERS)?;
    let id = parse_id(&id)?;
    let row = st
        .catalog
        .recording(id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or(ApiError::NotFound)?;
    let segments = st
        .catalog
        .segments(id)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let ledger = st
        .catalog
        .ledger(id)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let holds = st
        .catalog
        .holds_for_recording(id)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    audit(
        &st,
        &caller,
        "recording.view",
        id.to_string(),
        None,
        serde_json::json!({}),
    )
    .await?;
    let duration_ms = segments
        .iter()
        .map(|s| s.media_end_ms.saturating_sub(s.media_start_ms))
        .sum();
    Ok(Json(Detail {
        summary: Summary::of(&row),
        duration_ms,
        segments: segments.iter().map(segment_dto).collect(),
        holds: holds
            .into_iter()
            .map(|h| Hold {
                reference: h.reference,
                reason: h.reason,
                created_at: h.created_at.to_rfc3339(),
            })
            .collect(),
        ledger: ledger.into_iter().map(ledger_dto).collect(),
    }))
}

fn segment_dto(s: &SegmentRow) -> Segment {
    Segment {
        segment: s.segment.0,
        media_start_ms: s.media_start_ms,
        media_end_ms: s.media_end_ms,
        size: s.size,
        sha256: s.sha256.map(hex::encode),
        status: s.status.as_str(),
    }
}

fn ledger_dto(e: LedgerEntry) -> Ledger {
    Ledger {
        seq: e.seq,
        at: e.at.to_rfc3339(),
        kind: e.kind,
        actor: e.actor,
        reason: e.reason,
        details: serde_json::from_str(&e.details).unwrap_or(Value::Null),
    }
}

/// `GET /v1/recordings/{id}/audio?reason=...[&format=pcm16]`: a decrypted WAV, pauses rendered as
/// the recording's policy says, `Range` supported, streamed chunk by chunk.
pub(super) async fn audio(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    let reason = super::query_reason(&q, "play a recording")?;
    let output = match q.get("format").map(String::as_str) {
        None | Some("stored") => OutputFormat::Stored,
        Some("pcm16") => OutputFormat::Pcm16,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_field",
                format!("format: expected stored or pcm16, got {other:?}"),
            ));
        }
    };
    let id = parse_id(&id)?;
    let row = st
        .catalog
        .recording(id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or(ApiError::NotFound)?;
    check_playable(&row, &caller)?;
    let timeline = timeline(&st, &row, output).await?;
    let len = timeline.file_len();
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    let (status, span) = match range {
        ByteRange::Full => (StatusCode::OK, 0..len),
        ByteRange::Partial(r) => (StatusCode::PARTIAL_CONTENT, r),
        ByteRange::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { len }),
    };
    audit(
        &st,
        &caller,
        "recording.play",
        id.to_string(),
        Some(&reason),
        serde_json::json!({ "range": [span.start, span.end], "format": if output == OutputFormat::Pcm16 { "pcm16" } else { "stored" } }),
    )
    .await?;
    let body = Body::from_stream(timeline.stream(span.clone()));
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(span.end - span.start),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&content_range(&span, len))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

/// Whether `caller` may hear `row` now (status and restriction); the console's waveform asks too.
pub(super) fn check_playable(row: &RecordingRow, caller: &Caller) -> Result<(), ApiError> {
    let compliance_only = |what: &str| {
        if caller.role == Role::Compliance {
            Ok(())
        } else {
            Err(ApiError::Conflict {
                code: "compliance_only",
                detail: format!("the recording is {what}: only the compliance role may play it"),
            })
        }
    };
    match row.status {
        RecordingStatus::Sealed => {}
        RecordingStatus::Live => {
            return Err(ApiError::Conflict {
                code: "recording_live",
                detail: "the call is still being recorded".into(),
            });
        }
        RecordingStatus::PciReview => compliance_only("under pci review")?,
        RecordingStatus::Quarantined => compliance_only("quarantined")?,
        RecordingStatus::RefusalHeld => compliance_only("refused and kept under a hold")?,
        RecordingStatus::Refused | RecordingStatus::Expired | RecordingStatus::Erased => {
            return Err(ApiError::Conflict {
                code: "audio_destroyed",
                detail: format!(
                    "the recording's audio was destroyed ({})",
                    row.status.as_str()
                ),
            });
        }
    }
    if row.restricted {
        compliance_only("restricted")?;
    }
    Ok(())
}

/// Lays out the recording for playback ([`crate::audio::playback::layout`]).
pub(super) async fn timeline(
    st: &ApiState,
    row: &RecordingRow,
    output: OutputFormat,
) -> Result<Timeline, ApiError> {
    let render = st
        .config
        .policy(&row.policy)
        .map_or(PauseRender::Tone, |p| p.pause_render);
    let segments = st
        .catalog
        .segments(row.id)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let ledger = st
        .catalog
        .ledger(row.id)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let quiet = stream_gaps(&ledger);
    layout(row, &segments, &quiet, render, &st.keyring, &st.store, output)
        .await
        .map_err(|e| match e {
            LayoutError::NotUploaded => ApiError::Unavailable {
                code: "not_uploaded",
                detail: "a segment is still waiting for upload; try again shortly".into(),
            },
            // the store is down or slow, not the object gone: worth retrying
            LayoutError::Vault(crate::vault::VaultError::Store(e))
                if !matches!(e, object_store::Error::NotFound { .. }) =>
            {
                tracing::warn!(recording_id = %row.id, error = %e, "playback: object store unavailable");
                ApiError::Unavailable {
                    code: "store_unavailable",
                    detail: "the object store is not answering; try again shortly".into(),
                }
            }
            e => ApiError::internal(&e),
        })
}
