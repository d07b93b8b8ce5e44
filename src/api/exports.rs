//! Subject-access exports: `POST /v1/exports` starts a job (it records the SAR and plans the
//! bundle), `GET /v1/exports/{id}` shows its progress, `GET /v1/exports/{id}/bundle` streams the
//! signed ZIP, built on a blocking thread as it is sent; `GET /v1/sars` lists the open requests by
//! due date; `GET /v1/signing-key` gives the public key that verifies bundles.
//!
//! Jobs live in memory: a restart forgets them (the SAR and the audit entries stay in the catalog),
//! and the bundle is made again on each download, so no plaintext audio is ever kept on disk.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::warn;
use uuid::Uuid;

use super::auth::{Caller, READERS};
use super::search::parse_caller;
use super::{ApiError, ApiState};
use crate::audit::{NewAuditEntry, Trigger};
use crate::catalog::SarRow;
use crate::domain::{Period, Role};
use crate::export::{BundlePlan, BundleRequest, Progress, Sources, plan, write_bundle};

/// Jobs remembered at most; the oldest finished ones are forgotten first.
const MAX_JOBS: usize = 1000;
/// Pieces of a bundle queued between the ZIP writer and the HTTP body.
const BODY_QUEUE: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Planning,
    Ready,
    Writing,
    Delivered,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Planning => "planning",
            Status::Ready => "ready",
            Status::Writing => "writing",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }
}

struct Job {
    actor: String,
    sar_reference: String,
    created_at: DateTime<Utc>,
    status: Status,
    plan: Option<Arc<BundlePlan>>,
    progress: Progress,
}

/// The export jobs of this node. A cheap `Clone`; the std mutex is held only to read or update a
/// job, never across an `.await`.
#[derive(Clone, Default)]
pub struct ExportJobs(Arc<Mutex<HashMap<Uuid, Job>>>);

impl ExportJobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Job>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, id: Uuid, f: impl FnOnce(&mut Job)) {
        if let Some(job) = self.lock().get_mut(&id) {
            f(job);
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportBody {
    caller: String,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    sar_reference: String,
    reason: String,
    /// When the request reached the council; now when absent.
    received_at: Option<DateTime<Utc>>,
}

fn sources(st: &ApiState) -> Sources {
    Sources {
        config: Arc::clone(&st.config),
        catalog: Arc::clone(&st.catalog),
        store: Arc::clone(&st.store),
        keyring: Arc::clone(&st.keyring),
    }
}

fn sar_json(s: &SarRow) -> Value {
    json!({
        "reference": s.reference, "received_at": s.received_at.to_rfc3339(),
        "due_at": s.due_at.to_rfc3339(), "closed_at": s.closed_at.map(|t| t.to_rfc3339()),
        "closed_by": s.closed_by, "close_reason": s.close_reason,
    })
}

async fn audit(
    st: &ApiState,
    caller: &Caller,
    action: &str,
    subject: String,
    reason: &str,
    details: Value,
) -> Result<(), ApiError> {
    let entry = NewAuditEntry::new(st.clock.now(), &caller.actor, action, subject)
        .reason(reason)
        .details(&details);
    st.catalog
        .append_audit(entry)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(())
}

/// `POST /v1/exports`.
pub(super) async fn start(
    State(st): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    let b: ExportBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("export request: {e}")))?;
    let number = parse_caller(&b.caller)?;
    let reference = b.sar_reference.trim();
    if reference.is_empty() || reference.len() > 100 {
        return Err(ApiError::bad_request(
            "bad_field",
            "sar_reference: 1 to 100 characters",
        ));
    }
    let reason = b.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::bad_request("missing_field", "reason is required"));
    }
    if let (Some(f), Some(t)) = (b.from, b.to)
        && f >= t
    {
        return Err(ApiError::bad_request("bad_field", "from must be before to"));
    }
    let now = st.clock.now();
    let received = b.received_at.unwrap_or(now);
    let tag = st.callers.tag(&number);
    let sar = st
        .catalog
        .record_sar(&SarRow {
            reference: reference.to_owned(),
            received_at: received,
            due_at: Period::months(1).after(received).unwrap_or(received),
            caller_tag: Some(tag),
            actor: caller.actor.clone(),
            reason: reason.to_owned(),
            closed_at: None,
            closed_by: None,
            close_reason: None,
        })
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let id = Uuid::now_v7();
    audit(
        &st,
        &caller,
        "recording.export",
        reference.to_owned(),
        reason,
        json!({ "export_id": id.to_string(), "from": b.from.map(|t| t.to_rfc3339()), "to": b.to.map(|t| t.to_rfc3339()), "caller": format!("caller:{}", hex::encode(&tag[..8])) }),
    )
    .await?;
    {
        let mut jobs = st.exports.lock();
        if jobs.len() >= MAX_JOBS {
            // forget the oldest finished job
            if let Some(old) = jobs
                .iter()
                .filter(|(_, j)| matches!(j.status, Status::Delivered | Status::Failed))
                .min_by_key(|(_, j)| j.created_at)
                .map(|(k, _)| *k)
            {
                jobs.remove(&old);
            }
        }
        jobs.insert(
            id,
            Job {
                actor: caller.actor.clone(),
                sar_reference: reference.to_owned(),
                created_at: now,
                status: Status::Planning,
                plan: None,
                progress: Progress {
                    done: 0,
                    total: 0,
                    bytes: 0,
                },
            },
        );
    }
    let request = BundleRequest {
        caller_tag: tag,
        caller: if caller.role == Role::Compliance {
            number.as_e164().to_owned()
        } else {
            number.masked()
        },
        from: b.from,
        to: b.to,
        sar_reference: reference.to_owned(),
        reason: reason.to_owned(),
        actor: caller.actor.clone(),
        compliance: caller.role == Role::Compliance,
        created_at: now,
    };
    let jobs = st.exports.clone();
    let src = sources(&st);
    tokio::spawn(async move {
        match plan(&src, request).await {
            Ok(p) => jobs.update(id, |j| {
                j.progress.total = p.recordings.len();
                j.plan = Some(Arc::new(p));
                j.status = Status::Ready;
            }),
            Err(e) => {
                warn!(export_id = %id, error = %e, "planning an export failed");
                jobs.update(id, |j| j.status = Status::Failed);
            }
        }
    });
    let body =
        json!({ "id": id.to_string(), "status": Status::Planning.as_str(), "sar": sar_json(&sar) });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

fn owned_job(st: &ApiState, caller: &Caller, id: &str) -> Result<Uuid, ApiError> {
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    let jobs = st.exports.lock();
    let job = jobs.get(&id).ok_or(ApiError::NotFound)?;
    // a supervisor sees their own jobs; compliance sees all
    if job.actor != caller.actor && caller.role != Role::Compliance {
        return Err(ApiError::NotFound);
    }
    Ok(id)
}

/// `GET /v1/exports/{id}`.
pub(super) async fn status(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let id = owned_job(&st, &caller, &id)?;
    let jobs = st.exports.lock();
    let job = jobs.get(&id).ok_or(ApiError::NotFound)?;
    Ok(Json(json!({
        "id": id.to_string(),
        "status": job.status.as_str(),
        "sar_reference": job.sar_reference,
        "created_at": job.created_at.to_rfc3339(),
        "recordings_total": job.progress.total,
        "recordings_done": job.progress.done,
        "bytes_written": job.progress.bytes,
        "withheld": job.plan.as_ref().map_or(0, |p| p.withheld.len()),
    })))
}

/// Bytes written by the ZIP builder on its blocking thread, handed to the HTTP body.
struct ChannelWriter(mpsc::Sender<Result<Bytes, io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `GET /v1/exports/{id}/bundle`.
pub(super) async fn bundle(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    let id = owned_job(&st, &caller, &id)?;
    let plan = {
        let mut jobs = st.exports.lock();
        let job = jobs.get_mut(&id).ok_or(ApiError::NotFound)?;
        match (&job.plan, job.status) {
            (Some(p), Status::Ready | Status::Delivered) => {
                job.status = Status::Writing;
                Arc::clone(p)
            }
            _ => {
                return Err(ApiError::Conflict {
                    code: "export_not_ready",
                    detail: format!("the export is {}", job.status.as_str()),
                });
            }
        }
    };
    audit(
        &st,
        &caller,
        "recording.download",
        id.to_string(),
        &plan.request.reason,
        json!({
            "sar_reference": plan.request.sar_reference,
            "recordings": plan.recordings.iter().map(|r| r.row.id.to_string()).collect::<Vec<_>>(),
        }),
    )
    .await?;
    // the head, download entry included, signed into the manifest: a copy outside the database
    let checkpoint = st
        .checkpoints
        .checkpoint(Trigger::Export)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let plan = Arc::new(BundlePlan {
        checkpoint: Some(checkpoint),
        ..BundlePlan::clone(&plan)
    });
    let (tx, mut rx) = mpsc::channel(BODY_QUEUE);
    let src = sources(&st);
    let signer = Arc::clone(&st.signer);
    let jobs = st.exports.clone();
    let catalog = Arc::clone(&st.catalog);
    let clock = Arc::clone(&st.clock);
    let downloader = caller.actor.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::spawn(async move {
        let writer_jobs = jobs.clone();
        let writer_plan = Arc::clone(&plan);
        let error_tx = tx.clone();
        let written = tokio::task::spawn_blocking(move || {
            let out = io::BufWriter::with_capacity(64 * 1024, ChannelWriter(tx));
            let mut progress = |p: Progress| writer_jobs.update(id, |j| j.progress = p);
            write_bundle(&writer_plan, &src, &signer, &rt, out, &mut progress)
                .and_then(|mut w| w.flush().map_err(Into::into))
        })
        .await;
        match written {
            Ok(Ok(())) => {
                jobs.update(id, |j| j.status = Status::Delivered);
                if let Err(e) = catalog
                    .close_sar_by(
                        &plan.request.sar_reference,
                        clock.now(),
                        &downloader,
                        "bundle delivered",
                    )
                    .await
                {
                    warn!(export_id = %id, error = %e, "closing the sar failed");
                }
            }
            Ok(Err(e)) => {
                warn!(export_id = %id, error = %e, "writing a bundle failed");
                jobs.update(id, |j| j.status = Status::Ready);
                let _ = error_tx.send(Err(io::Error::other("bundle failed"))).await;
            }
            Err(e) => {
                warn!(export_id = %id, error = %e, "the bundle writer panicked");
                jobs.update(id, |j| j.status = Status::Failed);
                let _ = error_tx.send(Err(io::Error::other("bundle failed"))).await;
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"callvault-{}.zip\"",
        id.simple()
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `GET /v1/sars`: the open subject access requests, soonest due first.
pub(super) async fn sars(
    State(st): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let open = st
        .catalog
        .open_sars(1000)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(
        json!({ "sars": open.iter().map(sar_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    reason: String,
}

/// `POST /v1/sars/{reference}/close` with `{"reason": ...}`: closes an open request (answered,
/// withdrawn, or opened by an export that was never delivered), audited as `sar.close`. 404 for
/// an unknown reference, 409 `sar_closed` for one closed already.
pub(super) async fn close_sar(
    State(st): State<ApiState>,
    caller: Caller,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let b: CloseBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("close request: {e}")))?;
    let reason = b.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::bad_request("missing_field", "reason is required"));
    }
    let now = st.clock.now();
    let closed = st
        .catalog
        .close_sar_by(&reference, now, &caller.actor, reason)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let sar = st
        .catalog
        .sar(&reference)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or(ApiError::NotFound)?;
    if !closed {
        return Err(ApiError::Conflict {
            code: "sar_closed",
            detail: format!(
                "sar {reference} was closed already, at {}",
                sar.closed_at.map_or_else(String::new, |t| t.to_rfc3339())
            ),
        });
    }
    audit(
        &st,
        &caller,
        "sar.close",
        reference,
        reason,
        json!({ "via": "api" }),
    )
    .await?;
    Ok(Json(sar_json(&sar)))
}

/// `GET /v1/signing-key`: the public key that verifies bundles (base64 of 32 bytes); any role.
pub(super) async fn signing_key(State(st): State<ApiState>, _caller: Caller) -> Json<Value> {
    Json(json!({ "algorithm": "ed25519", "public_key": st.signer.public_key_b64() }))
}
