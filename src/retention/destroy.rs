//! The one destruction path: refusal, erasure, expiry and excision all go through the retention
//! journal, in this order, so a crash at any step is finished by the next sweep and the receipt is
//! written only once destruction is complete:
//!
//! 1. a pending row is stored ([`Catalog::begin_deletions`]): the commit point, refused while a
//!    hold covers the recording (except for an excision);
//! 2. the objects are deleted from the store (the recorder first drops what it holds in memory and
//!    on the spool, for a refusal);
//! 3. in one catalog transaction ([`Catalog::finish_deletions`]): the data keys are shredded, the
//!    caller's sealed number and lookup tag are forgotten (the audio is gone), the status becomes
//!    what the [status machine](crate::domain::status) says, the receipt goes to the ledger and
//!    the audit chain, and the pending row is removed.

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{error, warn};

use super::{Retention, RetentionError};
use crate::audit::NewAuditEntry;
use crate::catalog::{
    Catalog, DeletionCause, FinishedDeletion, NewLedgerEntry, PciReviewNote, PendingDeletion,
    RecordingRow, RecordingStatus, SegmentRow, SegmentStatus,
};
use crate::domain::status::review_cleared;
use crate::vault;

/// One deletion whose objects are gone, ready to finish in the catalog.
pub(super) struct Deleted {
    pub(super) finished: FinishedDeletion,
    pub(super) receipt: serde_json::Value,
    pub(super) objects_deleted: u64,
    pub(super) objects_failed: u64,
}

impl Retention {
    /// Step 1: commits to `p`. False if it could not begin: the recording is held (and the cause
    /// is stopped by holds), is in a status the cause cannot act on, or another deletion of it is
    /// pending.
    pub(super) async fn begin(&self, p: &PendingDeletion) -> Result<bool, RetentionError> {
        Ok(!self
            .catalog
            .begin_deletions(std::slice::from_ref(p))
            .await?
            .is_empty())
    }

    /// Steps 2 and 3 for one begun deletion: deletes its objects, then finishes it in the catalog.
    /// Returns the receipt. Whatever fails leaves the pending row, and the next sweep finishes it.
    pub async fn finish_destruction(
        &self,
        p: PendingDeletion,
    ) -> Result<serde_json::Value, RetentionError> {
        let id = p.recording_id;
        let Some(deleted) = self.delete_objects_of(p, None).await? else {
            return Err(RetentionError::UnknownRecording(id));
        };
        self.catalog
            .finish_deletions(std::slice::from_ref(&deleted.finished))
            .await?;
        Ok(deleted.receipt)
    }

    /// Step 2 of one pending deletion: deletes the recording's objects (or the one segment's) and
    /// builds what finishing it writes; `row` is the recording's row when the caller has just read
    /// it. `None` if the recording is gone from the catalog.
    pub(super) async fn delete_objects_of(
        &self,
        p: PendingDeletion,
        row: Option<RecordingRow>,
    ) -> Result<Option<Deleted>, RetentionError> {
        let row = match row {
            Some(row) => Some(row),
            None => self.catalog.recording(p.recording_id).await?,
        };
        let Some(row) = row else {
            warn!(recording = %p.recording_id, "pending deletion of an unknown recording");
            return Ok(None);
        };
        let segments = self.catalog.segments(row.id).await?;
        let targets: Vec<&SegmentRow> = segments
            .iter()
            .filter(|s| p.segment.is_none_or(|n| s.segment == n))
            .collect();
        let named: Vec<object_store::path::Path> = targets
            .iter()
            .map(|s| object_store::path::Path::from(s.object_key.as_str()))
            .collect();
        // the whole recording's prefix too (an object whose row a crash lost); never for one segment
        let prefix = p
            .segment
            .is_none()
            .then(|| vault::recording_prefix(row.started_at, row.id));
        let done = vault::delete_objects(&self.store, prefix.as_ref(), &named).await;
        metrics::counter!("callvault_retention_objects_deleted_total")
            .increment(done.deleted.len() as u64);
        if !done.failed.is_empty() {
            metrics::counter!("callvault_retention_object_delete_failures_total")
                .increment(done.failed.len() as u64);
        }
        let at = self.clock.now();
        let (status, forget_caller, receipt) = match p.segment {
            None => {
                let status = whole_status(p.cause, row.status);
                let receipt = receipt(&row, &segments, &p, at, &done.failed);
                (status, true, receipt)
            }
            Some(n) => {
                // what stays stored once this segment is gone
                let left: Vec<(u64, u64)> = segments
                    .iter()
                    .filter(|s| s.segment != n && s.status == SegmentStatus::Stored)
                    .map(|s| (s.media_start_ms, s.media_end_ms))
                    .collect();
                let spooled = segments
                    .iter()
                    .any(|s| s.segment != n && s.status == SegmentStatus::Spooled);
                // an unreadable note never clears a review (excise() refuses one up front; a
                // note damaged since is logged, and the review stays for a person to look at)
                let cleared = match pause_offsets(&*self.catalog, &row).await {
                    Ok(pauses) => review_cleared(&pauses, &left),
                    Err(e) => {
                        error!(recording = %row.id, error = %e, "late pauses unreadable; the review stays");
                        false
                    }
                };
                let status = row.status.excise(cleared).unwrap_or(row.status);
                let receipt = excision_receipt(&row, &targets, at, &done.failed, status);
                (status, left.is_empty() && !spooled, receipt)
            }
        };
        Ok(Some(Deleted {
            finished: finished(&row, &p, at, status, forget_caller, &receipt),
            receipt,
            objects_deleted: done.deleted.len() as u64,
            objects_failed: done.failed.len() as u64,
        }))
    }
}

/// The status a whole-recording destruction leaves: the status machine's transition for its cause.
/// The objects are gone whatever the status said meanwhile, so if the machine refuses the change
/// from where the recording now is (a concurrent change), the recording becomes what the cause makes
/// of a stored one, and the refusal is logged.
fn whole_status(cause: DeletionCause, from: RecordingStatus) -> RecordingStatus {
    match cause.transition(from) {
        Ok(to) => to,
        Err(e) if from.is_destroyed() => {
            warn!(cause = cause.as_str(), error = %e, "destroyed already; status kept");
            from
        }
        Err(e) => {
            warn!(cause = cause.as_str(), error = %e, "status changed during its destruction");
            cause
                .transition(RecordingStatus::Sealed)
                .expect("every whole-recording cause acts on a sealed recording")
        }
    }
}

/// The late pauses of `row`'s ledger, in milliseconds from its start (those before it count as 0).
pub(super) async fn pause_offsets(
    catalog: &dyn Catalog,
    row: &RecordingRow,
) -> Result<Vec<u64>, RetentionError> {
    let ledger = catalog.ledger(row.id).await?;
    Ok(PciReviewNote::all(&ledger)?
        .into_iter()
        .map(|n| u64::try_from((n.pause_at - row.started_at).num_milliseconds()).unwrap_or(0))
        .collect())
}

/// The deletion receipt: what was deleted, with the SHA-256 each object had when stored.
fn receipt(
    row: &RecordingRow,
    segments: &[SegmentRow],
    p: &PendingDeletion,
    at: DateTime<Utc>,
    failed: &[String],
) -> serde_json::Value {
    let objects: Vec<_> = segments
        .iter()
        .map(|s| {
            json!({
                "segment": s.segment.0,
                "key": s.object_key,
                "sha256": s.sha256.map(hex::encode),
                "size": s.size,
                "status_before": s.status.as_str(),
            })
        })
        .collect();
    json!({
        "receipt": "deletion",
        "recording_id": row.id.to_string(),
        "cause": p.cause.as_str(),
        "policy": row.policy,
        "expires_at": row.expires_at.map(|t| t.to_rfc3339()),
        "requested_at": p.requested_at.to_rfc3339(),
        "deleted_at": at.to_rfc3339(),
        "objects": objects,
        "undeleted_objects": failed,
        "data_keys_shredded": segments.iter().filter(|s| s.wrapped_key.is_some()).count(),
        "caller_forgotten": true,
    })
}

fn excision_receipt(
    row: &RecordingRow,
    targets: &[&SegmentRow],
    at: DateTime<Utc>,
    failed: &[String],
    status: RecordingStatus,
) -> serde_json::Value {
    let seg = targets.first();
    json!({
        "receipt": "excision",
        "recording_id": row.id.to_string(),
        "segment": seg.map(|s| s.segment.0),
        "key": seg.map(|s| s.object_key.clone()),
        "sha256": seg.and_then(|s| s.sha256.map(hex::encode)),
        "size": seg.map(|s| s.size),
        "media_start_ms": seg.map(|s| s.media_start_ms),
        "media_end_ms": seg.map(|s| s.media_end_ms),
        "policy": row.policy,
        "excised_at": at.to_rfc3339(),
        "undeleted_objects": failed,
        "status": status.as_str(),
    })
}

fn finished(
    row: &RecordingRow,
    p: &PendingDeletion,
    at: DateTime<Utc>,
    status: RecordingStatus,
    forget_caller: bool,
    receipt: &serde_json::Value,
) -> FinishedDeletion {
    let (action, kind) = match p.cause {
        DeletionCause::Expired => ("recording.expire", "deleted"),
        DeletionCause::Erased => ("recording.erase", "deleted"),
        DeletionCause::Refused => ("recording.destroyed", "deleted"),
        DeletionCause::Excised => ("segment.excise", "excised"),
    };
    let mut receipt = receipt.clone();
    if forget_caller && let Some(o) = receipt.as_object_mut() {
        o.insert("caller_forgotten".into(), true.into());
    }
    let mut audit = NewAuditEntry::new(at, &p.actor, action, row.id.to_string()).details(&receipt);
    audit.reason = p.reason.clone();
    FinishedDeletion {
        recording_id: row.id,
        status,
        segment: p.segment,
        forget_caller,
        at,
        ledger: NewLedgerEntry {
            recording_id: row.id,
            at,
            kind: kind.to_owned(),
            actor: p.actor.clone(),
            reason: p.reason.clone(),
            details: receipt.to_string(),
        },
        audit,
    }
}
