//! `POST /v1/imports`: upload a finished recording with its call's metadata (issue 17).
//!
//! The body is `multipart/form-data`: first a part named `metadata` (JSON: `call_id`, `started_at`,
//! `ended_at` or `duration_seconds`, and optionally `line`, `caller`, `agent`, `queue`), then a part
//! named `file` with the audio. The file is decoded as it arrives (the importer reads it on a
//! blocking thread through a bounded channel, so a slow or huge upload holds a few chunks in
//! memory, never the file). Answers 201 with the recording, 200 when the same file was imported
//! for the call before, or problem+json naming what is wrong.
//!
//! Who may import: the compliance role, or a telephony token named in `import.telephony_tokens`
//! (the import scope).

use std::io::{self, Read};

use axum::Json;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::auth::Caller;
use super::{ApiError, ApiState};
use crate::catalog::RecordingRow;
use crate::domain::Role;
use crate::import::{ImportError, Outcome, RawMeta, ReviewError, Upload};

/// Largest `metadata` part.
const MAX_METADATA: usize = 64 * 1024;
/// Chunks of the file waiting for the decoder.
const QUEUED_CHUNKS: usize = 8;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaBody {
    call_id: Option<String>,
    started_at: Option<String>,
    ended_at: Option<String>,
    duration_seconds: Option<f64>,
    line: Option<String>,
    caller: Option<String>,
    agent: Option<String>,
    queue: Option<String>,
}

#[derive(Serialize)]
pub(super) struct Imported {
    already_imported: bool,
    recording: RecordingDto,
}

#[derive(Serialize)]
pub(super) struct RecordingDto {
    id: String,
    call_id: String,
    status: &'static str,
    policy: String,
    codec: &'static str,
    sample_rate: u32,
    channels: u8,
    started_at: String,
    ended_at: Option<String>,
    expires_at: Option<String>,
}

fn dto(r: &RecordingRow) -> RecordingDto {
    RecordingDto {
        id: r.id.to_string(),
        call_id: r.call_id.to_string(),
        status: r.status.as_str(),
        policy: r.policy.clone(),
        codec: r.codec.name(),
        sample_rate: r.sample_rate,
        channels: r.channels,
        started_at: r.started_at.to_rfc3339(),
        ended_at: r.ended_at.map(|t| t.to_rfc3339()),
        expires_at: r.expires_at.map(|t| t.to_rfc3339()),
    }
}

/// Whether `caller` may import: compliance, or a telephony token given the import scope.
fn may_import(st: &ApiState, caller: &Caller) -> Result<(), ApiError> {
    let allowed = match caller.role {
        Role::Compliance => true,
        Role::Telephony => caller
            .actor
            .strip_prefix("token:")
            .is_some_and(|name| st.config.import.telephony_tokens.iter().any(|t| t == name)),
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

fn multipart_error(e: &axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::bad_request("bad_multipart", e.body_text())
    }
}

/// `POST /v1/imports`.
pub(super) async fn create(
    State(st): State<ApiState>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Imported>), ApiError> {
    may_import(&st, &caller)?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(
            "bad_multipart",
            format!("expected multipart/form-data with a metadata part and a file part: {e}"),
        )
    })?;
    let first = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e))?
        .ok_or_else(|| ApiError::bad_request("metadata_missing", "the metadata part is missing"))?;
    if first.name() != Some("metadata") {
        return Err(ApiError::bad_request(
            "metadata_missing",
            "the first part must be the metadata (JSON), named \"metadata\"",
        ));
    }
    let raw = read_metadata(first).await?;
    let meta = raw.parse().map_err(ApiError::from)?;
    let file = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e))?
        .ok_or_else(|| ApiError::bad_request("file_missing", "the file part is missing"))?;
    if file.name() != Some("file") {
        return Err(ApiError::bad_request(
            "file_missing",
            "the second part must be the audio, named \"file\"",
        ));
    }
    let file_name = file.file_name().map(str::to_owned);
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    let upload = Upload {
        reader: Box::new(ChannelReader {
            rx,
            cur: Bytes::new(),
        }),
        file_name,
        sha256: None,
    };
    let importer = st.importer.clone();
    let actor = caller.actor.clone();
    let (outcome, pumped) = tokio::join!(importer.import(&meta, upload, &actor), pump(file, tx));
    let outcome = match (outcome, pumped) {
        (Ok(o), _) => o,
        // the upload broke off: say why, rather than the decoder's view of a short file
        (Err(ImportError::Read(_) | ImportError::Corrupt(_)), Err(e)) => return Err(e),
        (Err(e), _) => return Err(e.into()),
    };
    let (status, already) = match &outcome {
        Outcome::Imported(_) => (StatusCode::CREATED, false),
        Outcome::AlreadyImported(_) => (StatusCode::OK, true),
    };
    Ok((
        status,
        Json(Imported {
            already_imported: already,
            recording: dto(outcome.recording()),
        }),
    ))
}

async fn read_metadata(mut field: Field<'_>) -> Result<RawMeta, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_METADATA {
            return Err(ApiError::bad_request(
                "bad_metadata",
                "the metadata part is larger than 64 KiB",
            ));
        }
    }
    let m: MetaBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_metadata", format!("metadata: {e}")))?;
    Ok(RawMeta {
        call_id: m.call_id,
        started_at: m.started_at,
        ended_at: m.ended_at,
        duration: m.duration_seconds.map(|d| d.to_string()),
        line: m.line,
        caller: m.caller,
        agent: m.agent,
        queue: m.queue,
    })
}

/// Feeds the file part to the importer's reader until it ends, the reader stops taking it (the
/// import finished or failed), or the upload breaks off (which the reader then sees as an error).
async fn pump(mut field: Field<'_>, tx: mpsc::Sender<io::Result<Bytes>>) -> Result<(), ApiError> {
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if tx.send(Ok(chunk)).await.is_err() {
                    return Ok(());
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                let answer = multipart_error(&e);
                let told = tx
                    .send(Err(io::Error::other(format!("the upload broke off: {e}"))))
                    .await;
                tracing::debug!(told = told.is_ok(), "import upload broke off");
                return Err(answer);
            }
        }
    }
}

/// A blocking reader over the chunks [`pump`] sends.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Option<String>,
}

/// `POST /v1/imports/{id}/clear-review` (compliance): an imported recording under review was
/// listened to and holds no card data; it returns to `sealed`.
pub(super) async fn clear_review(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<RecordingDto>, ApiError> {
    caller.require(&[Role::Compliance])?;
    let id = id.parse().map_err(|_| ApiError::NotFound)?;
    let body: ReasonBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", e.to_string()))?;
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing_field", "reason is required"))?;
    match st.importer.clear_review(id, &caller.actor, reason).await {
        Ok(row) => Ok(Json(dto(&row))),
        Err(ReviewError::NotFound) => Err(ApiError::NotFound),
        Err(e @ ReviewError::NotImportReview) => Err(ApiError::Conflict {
            code: "not_under_review",
            detail: e.to_string(),
        }),
        Err(e @ ReviewError::Changed) => Err(ApiError::Conflict {
            code: "changed",
            detail: e.to_string(),
        }),
        Err(ReviewError::Catalog(e)) => Err(ApiError::internal(&e)),
    }
}
