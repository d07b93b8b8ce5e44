//! The data-subject remedies and the PCI remedy: erasure, restriction, and excision of one segment.
//! Erasure and excision destroy through the journal ([`super::destroy`]), as expiry does.

use serde_json::json;
use tracing::info;

use super::{Retention, RetentionError};
use crate::audit::NewAuditEntry;
use crate::catalog::{
    DeletionCause, NewLedgerEntry, PendingDeletion, RecordingRow, RecordingStatus, SegmentStatus,
};
use crate::domain::{RecordingId, SegmentNo};

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
    pub(super) async fn existing(&self, id: RecordingId) -> Result<RecordingRow, RetentionError> {
        self.catalog
            .recording(id)
            .await?
            .ok_or(RetentionError::UnknownRecording(id))
    }

    /// Why `p` did not begin: held (naming the holds), another deletion pending, or a status the
    /// cause cannot act on.
    async fn not_begun(&self, p: &PendingDeletion) -> RetentionError {
        let id = p.recording_id;
        if p.cause.stopped_by_holds()
            && let Err(e) = self.refuse_if_held(id).await
        {
            return e;
        }
        match self.catalog.pending_deletions(usize::MAX >> 1).await {
            Ok(pending) if pending.iter().any(|q| q.recording_id == id) => {
                return RetentionError::InProgress(id);
            }
            Ok(_) => {}
            Err(e) => return e.into(),
        }
        match self.existing(id).await {
            Ok(row) => RetentionError::NoAudio {
                recording: id,
                status: row.status,
            },
            Err(e) => e,
        }
    }

    /// Erases a recording on a data subject's request, as the sweep deletes an expired one (status
    /// `erased`, the caller's number and tag forgotten), and returns the receipt. Refused while any
    /// hold covers it, naming the holds.
    pub async fn erase(
        &self,
        id: RecordingId,
        actor: &str,
        reason: &str,
    ) -> Result<Receipt, RetentionError> {
        let row = self.existing(id).await?;
        if let Err(error) = row.status.erase() {
            return Err(RetentionError::Transition {
                recording: id,
                error,
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
            segment: None,
        };
        if !self.begin(&pending).await? {
            // a hold was placed, or the recording deleted, since the checks above
            return Err(self.not_begun(&pending).await);
        }
        let receipt = self.finish_destruction(pending).await?;
        metrics::counter!("callvault_retention_erased_total").increment(1);
        let mut progress = self.catalog.retention_progress().await?;
        progress.erased += 1;
        self.catalog.save_retention_progress(&progress).await?;
        info!(recording = %id, "recording erased");
        Ok(receipt)
    }

    pub(super) async fn refuse_if_held(&self, id: RecordingId) -> Result<(), RetentionError> {
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

    /// Restricts a recording (stored, but played, exported or listened to live only by the
    /// compliance role), or lifts the restriction, writing the flag alone (so no other write undoes
    /// it, and it undoes no other). Returns the recording as it now is.
    pub async fn set_restricted(
        &self,
        id: RecordingId,
        restricted: bool,
        actor: &str,
        reason: &str,
    ) -> Result<RecordingRow, RetentionError> {
        let row = self.existing(id).await?;
        let allowed = if restricted {
            row.status.restrict()
        } else {
            row.status.unrestrict()
        };
        if let Err(error) = allowed {
            return Err(RetentionError::Transition {
                recording: id,
                error,
            });
        }
        let now = self.clock.now();
        let changed = self.catalog.set_restricted(id, restricted, now).await?;
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
        self.existing(id).await
    }

    /// Excises one segment through the journal: deletes its object, shreds its data key, marks it
    /// `excised` (playback renders it as a gap), forgets the caller's number and tag if it was the
    /// last segment with audio, and writes a receipt to the ledger and the audit chain. Allowed
    /// under a hold: it removes card data that must not be stored at all.
    ///
    /// A `pci_review` recording returns to `sealed` once no stored segment holds the instant of any
    /// late pause its ledger names (the status machine's `excise`).
    pub async fn excise(
        &self,
        id: RecordingId,
        segment: SegmentNo,
        actor: &str,
        reason: &str,
    ) -> Result<ExciseReceipt, RetentionError> {
        let row = self.existing(id).await?;
        if let Err(error) = row.status.excise(false) {
            return Err(RetentionError::Transition {
                recording: id,
                error,
            });
        }
        let segments = self.catalog.segments(id).await?;
        let seg = segments.iter().find(|s| s.segment == segment).ok_or(
            RetentionError::UnknownSegment {
                recording: id,
                segment,
            },
        )?;
        if seg.status != SegmentStatus::Stored {
            return Err(RetentionError::SegmentNotStored {
                recording: id,
                segment,
                status: seg.status,
            });
        }
        // the late pauses must read back before anything is destroyed: a note that does not is
        // an error, never a review taken as cleared
        super::destroy::pause_offsets(&*self.catalog, &row).await?;
        let pending = PendingDeletion {
            recording_id: id,
            cause: DeletionCause::Excised,
            actor: actor.to_owned(),
            reason: Some(reason.to_owned()),
            requested_at: self.clock.now(),
            segment: Some(segment),
        };
        if !self.begin(&pending).await? {
            return Err(self.not_begun(&pending).await);
        }
        let receipt = self.finish_destruction(pending).await?;
        metrics::counter!("callvault_retention_excised_total").increment(1);
        let after = self.existing(id).await?;
        if row.status == RecordingStatus::PciReview && after.status == RecordingStatus::Sealed {
            let now = self.clock.now();
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
            status: after.status,
        })
    }

    pub(super) async fn ledger(
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
