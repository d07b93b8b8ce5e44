//! Refusal of consent (DESIGN.md section 2): never past a hold, never by telephony after
//! `consent.late_refusal`. The recorder decides lateness with
//! [`refusal_decision`](crate::domain::status::refusal_decision) and asks here for the rest: a
//! refusal that may destroy begins in the journal ([`Retention::begin_refusal`]), the recorder drops
//! what it holds in memory and on the spool, then [`Retention::finish_destruction`] deletes the
//! objects, the keys and the caller's number and tag, and writes the receipt. A hold turns it into
//! `refusal_held`; a late one is only ledgered and audited ([`Retention::refused_late`]).

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{info, warn};

use super::{Retention, RetentionError};
use crate::audit::NewAuditEntry;
use crate::catalog::{DeletionCause, NewLedgerEntry, PendingDeletion, StatusChange};
use crate::domain::RecordingId;

/// How a refusal began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalStart {
    /// Committed to destroying: drop what is held locally, then
    /// [`finish_destruction`](Retention::finish_destruction) this.
    Destroy(PendingDeletion),
    /// A hold covers the recording: it is now `refusal_held` and restricted, its audio kept until
    /// its last hold is released (then the sweep destroys it). Capture must stop all the same.
    Held {
        /// The references of the holds.
        references: Vec<String>,
    },
}

impl Retention {
    /// Begins a refusal of `id` that arrived at `arrival` (not late: the caller decided that).
    /// `actor` is who refused (the telephony platform), for the ledger and the receipt.
    pub async fn begin_refusal(
        &self,
        id: RecordingId,
        actor: &str,
        arrival: DateTime<Utc>,
    ) -> Result<RefusalStart, RetentionError> {
        let pending = PendingDeletion {
            recording_id: id,
            cause: DeletionCause::Refused,
            actor: actor.to_owned(),
            reason: Some("consent.refused".to_owned()),
            requested_at: arrival,
            segment: None,
        };
        if self.begin(&pending).await? {
            return Ok(RefusalStart::Destroy(pending));
        }
        // not begun: a hold covers it (the catalog checked in the same transaction), or it is
        // refused or destroyed already
        let holds = self.catalog.holds_for_recording(id).await?;
        let row = self.existing(id).await?;
        if holds.is_empty() {
            return Err(match row.status.refuse() {
                Err(error) => RetentionError::Transition {
                    recording: id,
                    error,
                },
                Ok(_) => RetentionError::InProgress(id),
            });
        }
        let references: Vec<String> = holds.into_iter().map(|h| h.reference).collect();
        let to = row
            .status
            .refuse_held()
            .map_err(|error| RetentionError::Transition {
                recording: id,
                error,
            })?;
        let now = self.clock.now();
        // its expiry is the refusal: the sweep destroys it once no hold covers it
        let change = StatusChange {
            expires_at: Some(arrival),
            restrict: true,
            ..StatusChange::new(id, row.status, to, now)
        };
        if !self.catalog.transition_recording(&change).await? {
            return Err(RetentionError::Changed(id));
        }
        let details = json!({ "holds": references, "arrived": arrival.to_rfc3339() });
        self.catalog
            .append_ledger(&NewLedgerEntry {
                recording_id: id,
                at: now,
                kind: "refusal_held".to_owned(),
                actor: actor.to_owned(),
                reason: Some("consent.refused".to_owned()),
                details: details.to_string(),
            })
            .await?;
        self.catalog
            .append_audit(
                NewAuditEntry::new(now, actor, "recording.refusal_held", id.to_string())
                    .reason("consent.refused")
                    .details(&details),
            )
            .await?;
        metrics::counter!("callvault_refusals_held_total").increment(1);
        warn!(recording = %id, holds = references.len(), "consent refused under a hold: audio kept, restricted");
        Ok(RefusalStart::Held { references })
    }

    /// A refusal later than `consent.late_refusal` after the call: nothing is destroyed; it is
    /// ledgered as `refused_late`, audited, and counted as an erasure request a compliance user
    /// acts on through the API.
    pub async fn refused_late(
        &self,
        id: RecordingId,
        actor: &str,
        at: DateTime<Utc>,
        arrival: DateTime<Utc>,
        ended: DateTime<Utc>,
    ) -> Result<(), RetentionError> {
        let now = self.clock.now();
        let details = json!({
            "at": at.to_rfc3339(), "arrived": arrival.to_rfc3339(), "call_ended": ended.to_rfc3339(),
            "erasure_request": true,
        });
        self.catalog
            .append_ledger(&NewLedgerEntry {
                recording_id: id,
                at: now,
                kind: "refused_late".to_owned(),
                actor: actor.to_owned(),
                reason: Some("consent.refused after consent.late_refusal".to_owned()),
                details: details.to_string(),
            })
            .await?;
        self.catalog
            .append_audit(
                NewAuditEntry::new(now, actor, "recording.refused_late", id.to_string())
                    .reason("erasure request: consent refused after consent.late_refusal")
                    .details(&details),
            )
            .await?;
        metrics::counter!("callvault_erasure_requests_total", "source" => "late_refusal")
            .increment(1);
        info!(recording = %id, "late refusal ledgered as an erasure request; nothing destroyed");
        Ok(())
    }
}
