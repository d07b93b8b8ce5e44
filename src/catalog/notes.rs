//! Ledger entries whose facts a later decision reads back: written from a typed form and read back
//! into it, never picked out of the JSON text field by field. An entry that does not read back is
//! [`CatalogError::Corrupt`], so a decision that depends on it fails rather than guesses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CatalogError, LedgerEntry, NewLedgerEntry};
use crate::domain::RecordingId;

/// The ledger kind of [`PciReviewNote`].
pub const PCI_REVIEW: &str = "pci_review";

/// A late pause fell in stored audio: the recording went to `pci_review`. Excision reads every one
/// back to decide whether the review clears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciReviewNote {
    /// The pause instant (event time or arrival, whichever is earlier, minus `pci.guard`).
    pub pause_at: DateTime<Utc>,
    /// The event that paused (`payment.started`, `recording.paused`), when it came after the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// When that event arrived, when it came after the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrived: Option<DateTime<Utc>>,
    /// The segments that may hold audio after the pause instant.
    #[serde(default)]
    pub segments_after_pause: Vec<u32>,
    /// The call, when noted during it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

impl PciReviewNote {
    /// The ledger entry that records it.
    pub fn entry(&self, recording: RecordingId, at: DateTime<Utc>, actor: &str) -> NewLedgerEntry {
        NewLedgerEntry {
            recording_id: recording,
            at,
            kind: PCI_REVIEW.to_owned(),
            actor: actor.to_owned(),
            reason: None,
            details: serde_json::to_string(self).expect("a note of plain fields always serialises"),
        }
    }

    /// Every `pci_review` note of a ledger, in order; `Corrupt` if one does not read back.
    pub fn all(ledger: &[LedgerEntry]) -> Result<Vec<PciReviewNote>, CatalogError> {
        ledger
            .iter()
            .filter(|e| e.kind == PCI_REVIEW)
            .map(|e| {
                serde_json::from_str(&e.details).map_err(|err| {
                    CatalogError::corrupt(format!(
                        "ledger {} #{}: pci_review details: {err}",
                        e.recording_id, e.seq
                    ))
                })
            })
            .collect()
    }
}
