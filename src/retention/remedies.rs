//! The data-subject remedies and the PCI remedy: erasure, restriction, and excision of one segment.

use serde_json::json;
use tracing::info;

use super::{Retention, RetentionError, has_audio};
use crate::audit::NewAuditEntry;
use crate::catalog::{
    DeletionCause, NewLedgerEntry, PendingDeletion, RecordingRow, RecordingStatus, SegmentStatus,
};
use crate::domain::{RecordingId, SegmentNo};
use crate::vault;

/// The receipt of a deletion: the same JSON object that went to the ledger and the audit chain.
pub type Receipt = serde_json::Value;

/// What an excision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExciseReceipt {
    /// The receipt written to the ledger and the audit chain.
    pub receipt: serde_json::Value,
    /// The recording's status afterwards (`sealed` once no stored segment holds a late pause).
    pub status: RecordingStatus,
}

impl Retention {
    async fn existing(&self, id: RecordingId) -> Result<RecordingRow, RetentionError> {
        self.catalog
            .recording(id)
            .await?
            .ok_or(RetentionError::UnknownRecording(id))
    }

    /// Erases a recording on a data subject's request, as the sweep deletes an expired one (status
    /// `erased`), and returns the receipt. Refused while any hold covers it, naming the holds.
    pub async fn erase(
        &self,
        id: RecordingId,
        actor: &str,
        reason: &str,
    ) -> Result<Receipt, RetentionError> {
        let row = self.existing(id).await?;
        if !has_audio(row.status) {
            return Err(RetentionError::NoAudio {
                recording: id,
                status: row.status,
            });
        }
        self.refuse_if_held(id).await?;
        let segments = self.catalog.segments(id).await?;
        if segments.iter().any(|s| s.status == SegmentStatus::Spooled) {
            return Err(RetentionError::NotUploaded(id));
        }
        let pending = PendingDeletion {
            recording_id: id,
            cause: DeletionCause::Erased,
            actor: actor.to_owned(),
            reason: Some(reason.to_owned()),
            requested_at: self.clock.now(),
        };
        if self
            .catalog
            .begin_deletions(std::slice::from_ref(&pending))
            .await?
            .is_empty()
        {
            // a hold was placed, or the recording deleted, since the checks above
            self.refuse_if_held(id).await?;
            let row = self.existing(id).await?;
            return Err(RetentionError::NoAudio {
                recording: id,
                status: row.status,
            });
        }
        let Some(deleted) = self.delete_objects_of(pending, Some(row)).await? else {
            return Err(RetentionError::UnknownRecording(id));
        };
        self.catalog
            .finish_deletions(std::slice::from_ref(&deleted.finished))
            .await?;
        metrics::counter!("callvault_retention_erased_total").increment(1);
        let mut progress = self.catalog.retention_progress().await?;
        progress.erased += 1;
        self.catalog.save_retention_progress(&progress).await?;
        info!(recording = %id, "recording erased");
        Ok(deleted.receipt)
    }

    async fn refuse_if_held(&self, id: RecordingId) -> Result<(), RetentionError> {
        let holds = self.catalog.holds_for_recording(id).await?;
        if holds.is_empty() {
            Ok(())
        } else {
            Err(RetentionError::Held {
                recording: id,
                references: holds.into_iter().map(|h| h.reference).collect(),
            })
        }
    }

    /// Restricts a recording (stored, but played or exported only by the compliance role), or lifts
    /// the restriction. Returns the recording as it now is.
    pub async fn set_restricted(
        &self,
        id: RecordingId,
        restricted: bool,
        actor: &str,
        reason: &str,
    ) -> Result<RecordingRow, RetentionError> {
        let mut row = self.existing(id).await?;
        let now = self.clock.now();
        let changed = row.restricted != restricted;
        if changed {
            row.restricted = restricted;
            row.updated_at = now;
            self.catalog.update_recording(&row).await?;
        }
        let kind = if restricted {
            "restricted"
        } else {
            "unrestricted"
        };
        let details = json!({ "changed": changed });
        self.ledger(id, kind, actor, reason, &details).await?;
        let action = if restricted {
            "recording.restrict"
        } else {
            "recording.unrestrict"
        };
        self.catalog
            .append_audit(
                NewAuditEntry::new(now, actor, action, id.to_string())
                    .reason(reason)
                    .details(&details),
            )
            .await?;
        Ok(row)
    }

    /// Excises one segment: deletes its object, shreds its data key, marks it `excised` (playback
    /// renders it as a gap), and writes a receipt to the ledger and the audit chain. Allowed under a
    /// hold: it removes card data that must not be stored at all.
    ///
    /// A `pci_review` recording returns to `sealed` once no stored segment holds the instant of any
    /// late pause its ledger names.
    pub async fn excise(
        &self,
        id: RecordingId,
        segment: SegmentNo,
        actor: &str,
        reason: &str,
    ) -> Result<ExciseReceipt, RetentionError> {
        let mut row = self.existing(id).await?;
        if !has_audio(row.status) {
            return Err(RetentionError::NoAudio {
                recording: id,
                status: row.status,
            });
        }
        let segments = self.catalog.segments(id).await?;
        let mut seg = segments
            .iter()
            .find(|s| s.segment == segment)
            .cloned()
            .ok_or(RetentionError::UnknownSegment {
                recording: id,
                segment,
            })?;
        if seg.status != SegmentStatus::Stored {
            return Err(RetentionError::SegmentNotStored {
                recording: id,
                segment,
                status: seg.status,
            });
        }
        // the object first, then the key: a crash in between leaves a segment that is retried
        let key = object_store::path::Path::from(seg.object_key.as_str());
        let done = vault::delete_objects(&self.store, None, std::slice::from_ref(&key)).await;
        self.catalog.shred_segment_key(id, segment).await?;
        seg.status = SegmentStatus::Excised;
        self.catalog.update_segment(&seg).await?;
        let now = self.clock.now();
        let receipt = json!({
            "receipt": "excision",
            "recording_id": id.to_string(),
            "segment": segment.0,
            "key": seg.object_key,
            "sha256": seg.sha256.map(hex::encode),
            "size": seg.size,
            "media_start_ms": seg.media_start_ms,
            "media_end_ms": seg.media_end_ms,
            "policy": row.policy,
            "excised_at": now.to_rfc3339(),
            "undeleted_objects": done.failed,
        });
        self.ledger(id, "excised", actor, reason, &receipt).await?;
        self.catalog
            .append_audit(
                NewAuditEntry::new(now, actor, "segment.excise", id.to_string())
                    .reason(reason)
                    .details(&receipt),
            )
            .await?;
        metrics::counter!("callvault_retention_excised_total").increment(1);
        if row.status == RecordingStatus::PciReview && self.pci_review_cleared(&row).await? {
            row.status = RecordingStatus::Sealed;
            row.updated_at = now;
            self.catalog.update_recording(&row).await?;
            let details = json!({ "after_excising": segment.0 });
            self.ledger(id, "pci_review.cleared", actor, reason, &details)
                .await?;
            self.catalog
                .append_audit(
                    NewAuditEntry::new(now, actor, "recording.pci_review_cleared", id.to_string())
                        .reason(reason)
                        .details(&details),
                )
                .await?;
        }
        Ok(ExciseReceipt {
            receipt,
            status: row.status,
        })
    }

    /// Whether no stored segment of `row` holds the instant of a late pause (`pci_review` ledger
    /// entries name it as `pause_at`).
    async fn pci_review_cleared(&self, row: &RecordingRow) -> Result<bool, RetentionError> {
        let ledger = self.catalog.ledger(row.id).await?;
        let segments = self.catalog.segments(row.id).await?;
        let pauses = ledger
            .iter()
            .filter(|e| e.kind == "pci_review")
            .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.details).ok())
            .filter_map(|d| {
                let at = d.get("pause_at")?.as_str()?;
                chrono::DateTime::parse_from_rfc3339(at).ok()
            })
            .map(|at| (at.with_timezone(&chrono::Utc) - row.started_at).num_milliseconds());
        let mut cleared = true;
        for offset in pauses {
            let Ok(offset) = u64::try_from(offset) else {
                continue;
            };
            if segments.iter().any(|s| {
                s.status == SegmentStatus::Stored
                    && s.media_start_ms <= offset
                    && offset < s.media_end_ms
            }) {
                cleared = false;
            }
        }
        Ok(cleared)
    }

    async fn ledger(
        &self,
        id: RecordingId,
        kind: &str,
        actor: &str,
        reason: &str,
        details: &serde_json::Value,
    ) -> Result<(), RetentionError> {
        self.catalog
            .append_ledger(&NewLedgerEntry {
                recording_id: id,
                at: self.clock.now(),
                kind: kind.to_owned(),
                actor: actor.to_owned(),
                reason: Some(reason.to_owned()),
                details: details.to_string(),
            })
            .await?;
        Ok(())
    }
}
