//! The persisted forms: plain structs, one per stored row, and the frozen text of their statuses.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::domain::{CallId, Codec, KeyId, RecordingId, SegmentNo};

pub use crate::domain::{RecordingStatus, UnknownStatus};

/// A segment's place in its lifecycle, as stored. The text forms are frozen like
/// [`RecordingStatus`]'s (whose changes are the [status machine](crate::domain::status)'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentStatus {
    /// Being written to the local spool; not yet in the object store.
    Spooled,
    /// Uploaded to the object store.
    Stored,
    /// Cut out after a late card-payment pause: its key is shredded and its object deleted.
    Excised,
    /// Deleted with its recording (expiry, erasure or refusal).
    Deleted,
}

impl SegmentStatus {
    /// Every status, for tests and listings.
    pub const ALL: [SegmentStatus; 4] = [Self::Spooled, Self::Stored, Self::Excised, Self::Deleted];

    /// The frozen text stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Spooled => "spooled",
            Self::Stored => "stored",
            Self::Excised => "excised",
            Self::Deleted => "deleted",
        }
    }
}

impl FromStr for SegmentStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(UnknownStatus)
    }
}

impl fmt::Display for SegmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recording: the metadata of one call's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRow {
    /// The recording's id.
    pub id: RecordingId,
    /// The telephony platform's call; one call has at most one recording.
    pub call_id: CallId,
    /// Where it is in its lifecycle.
    pub status: RecordingStatus,
    /// The dialled line (E.164), if known.
    pub line: Option<String>,
    /// The queue the call went through, if known.
    pub queue: Option<String>,
    /// The agent who took the call, if known.
    pub agent: Option<String>,
    /// Keyed HMAC of the caller's E.164 number: the only searchable form of it.
    pub caller_tag: Option<[u8; 32]>,
    /// The caller's number, sealed by the vault; the catalog never sees it in clear.
    pub caller_sealed: Option<Vec<u8>>,
    /// The name of the policy that governs it.
    pub policy: String,
    /// The audio codec of its segments.
    pub codec: Codec,
    /// Samples a second.
    pub sample_rate: u32,
    /// 1, or 2 (caller and agent).
    pub channels: u8,
    /// When the call started.
    pub started_at: DateTime<Utc>,
    /// When the call ended, once it has.
    pub ended_at: Option<DateTime<Utc>>,
    /// When retention deletes it, once known (holds aside).
    pub expires_at: Option<DateTime<Utc>>,
    /// Restricted: stored, but played or exported only by a compliance user.
    pub restricted: bool,
    /// When this row was last written.
    pub updated_at: DateTime<Utc>,
}

/// One segment: a stretch of contiguous captured audio, one object in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    /// The recording it belongs to.
    pub recording_id: RecordingId,
    /// Its position in the recording.
    pub segment: SegmentNo,
    /// Where its `CVA1` object is in the object store.
    pub object_key: String,
    /// The key-encryption key that wraps its data key; `None` once crypto-shredded.
    pub kek_id: Option<KeyId>,
    /// Its data key, wrapped by `kek_id`; `None` once crypto-shredded.
    pub wrapped_key: Option<Vec<u8>>,
    /// Where its audio starts, in milliseconds from the start of the call.
    pub media_start_ms: u64,
    /// Where its audio ends, in milliseconds from the start of the call.
    pub media_end_ms: u64,
    /// Size of the sealed object in bytes.
    pub size: u64,
    /// SHA-256 of the sealed object, once complete.
    pub sha256: Option<[u8; 32]>,
    /// Where it is in its lifecycle.
    pub status: SegmentStatus,
}

/// A finished recording imported after the call (issue 17), stored whole by
/// [`Catalog::insert_import`](super::Catalog::insert_import) in one transaction: the row, every
/// segment with its wrapped key, the ledger entries and the audit entry. Until that commits,
/// nothing of the import is visible; after it, all of it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedRecording {
    /// The recording, in the status the import enters with.
    pub row: RecordingRow,
    /// Its segments, uploaded already, in order.
    pub segments: Vec<SegmentRow>,
    /// Its first ledger entries (the import, with the original's SHA-256).
    pub ledger: Vec<NewLedgerEntry>,
    /// The audit entry of the import, with its actor.
    pub audit: crate::audit::NewAuditEntry,
}

/// A segment's wrapped data key, as the key-rotation worker reads and rewrites it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKeyRow {
    /// The recording of the segment.
    pub recording_id: RecordingId,
    /// The segment.
    pub segment: SegmentNo,
    /// The key-encryption key that wraps it.
    pub kek_id: KeyId,
    /// The wrapped data key.
    pub wrapped_key: Vec<u8>,
}

/// A ledger entry to append to a recording's ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLedgerEntry {
    /// The recording it concerns.
    pub recording_id: RecordingId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened, e.g. `pause`, `resume`, `consent.refused`, `deleted`.
    pub kind: String,
    /// Who did it: a token name, `system`, or the telephony platform.
    pub actor: String,
    /// Why, when given.
    pub reason: Option<String>,
    /// Further facts, as a JSON object text.
    pub details: String,
}

/// A ledger entry with a sealed note beside it: personal text a protocol sent about the call (a
/// SIPREC session's metadata), kept only sealed and deleted with the caller's number when the
/// audio is destroyed (the ledger entry stays, saying a note was kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSealedNote {
    /// The ledger entry (its details never hold the note's text).
    pub entry: NewLedgerEntry,
    /// The note, sealed (see [`crate::vault::CallerKeys::seal_note`]).
    pub sealed: Vec<u8>,
}

/// A kept sealed note: the seq of its ledger entry, and the sealed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedNote {
    /// The position of its ledger entry in the recording's ledger.
    pub seq: u64,
    /// The note, sealed.
    pub sealed: Vec<u8>,
}

/// A stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Its position in its recording's ledger, from 1.
    pub seq: u64,
    /// The recording it concerns.
    pub recording_id: RecordingId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: String,
    /// Who did it.
    pub actor: String,
    /// Why, when given.
    pub reason: Option<String>,
    /// Further facts, as a JSON object text.
    pub details: String,
}

/// A complaint hold: recordings under it are never deleted.
///
/// It covers the recordings linked to it, and, when `caller_tag` is set, every recording of that
/// caller that started in `[from, to)` (an absent bound is open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    /// The external reference, e.g. a complaint number; unique among active holds.
    pub reference: String,
    /// Why it was placed.
    pub reason: String,
    /// Who placed it.
    pub actor: String,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// The caller whose recordings it covers, as a keyed HMAC tag.
    pub caller_tag: Option<[u8; 32]>,
    /// Start of the covered range of call start times (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// End of the covered range of call start times (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// When it was released; `None` while active.
    pub released_at: Option<DateTime<Utc>>,
    /// Who released it.
    pub released_by: Option<String>,
    /// Why it was released.
    pub release_reason: Option<String>,
}

impl HoldRow {
    /// Whether it is still in force.
    pub fn is_active(&self) -> bool {
        self.released_at.is_none()
    }
}

/// A bearer token. The secret itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Its public id (used to revoke it).
    pub id: String,
    /// A human name, used as the actor in audit entries.
    pub name: String,
    /// Its role: `supervisor`, `compliance`, `ops` or `telephony`.
    pub role: String,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; `None` while usable.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    /// Whether it may still be used.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_texts_are_frozen_and_round_trip() {
        let texts: Vec<_> = SegmentStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(texts, ["spooled", "stored", "excised", "deleted"]);
        for s in SegmentStatus::ALL {
            assert_eq!(s.as_str().parse::<SegmentStatus>(), Ok(s));
        }
        assert_eq!("".parse::<SegmentStatus>(), Err(UnknownStatus));
    }
}

// --- supervisor access (issue 5)

/// A search of recordings: every set field must match; results come in `(started_at, id)` order,
/// after `after` when it is set (keyset paging: pass the last row's position for the next page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingQuery {
    /// The caller, as a keyed HMAC tag.
    pub caller_tag: Option<[u8; 32]>,
    /// Calls that started at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Calls that started before this time.
    pub to: Option<DateTime<Utc>>,
    /// The dialled line (E.164).
    pub line: Option<String>,
    /// The agent.
    pub agent: Option<String>,
    /// The queue (issue 15).
    pub queue: Option<String>,
    /// Only recordings after this position: the last row's `(started_at, id)`.
    pub after: Option<(DateTime<Utc>, RecordingId)>,
    /// At most this many rows.
    pub limit: usize,
}

/// A subject access request: when it was received and when the answer is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SarRow {
    /// The request's external reference (unique).
    pub reference: String,
    /// When the request was received.
    pub received_at: DateTime<Utc>,
    /// When the answer is due (one calendar month after receipt).
    pub due_at: DateTime<Utc>,
    /// The data subject, as a keyed HMAC tag of their number.
    pub caller_tag: Option<[u8; 32]>,
    /// Who recorded it.
    pub actor: String,
    /// Why, as given.
    pub reason: String,
    /// When it was answered; `None` while open.
    pub closed_at: Option<DateTime<Utc>>,
    /// Who closed it, when closed by [`Catalog::close_sar_by`](super::Catalog::close_sar_by).
    pub closed_by: Option<String>,
    /// Why it was closed, as they gave it.
    pub close_reason: Option<String>,
}

/// A search of the audit chain: every set field must match; entries come in `seq` order after
/// `after_seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// The actor, exactly.
    pub actor: Option<String>,
    /// The action, exactly (e.g. `recording.play`).
    pub action: Option<String>,
    /// The subject, exactly (e.g. a recording id or a SAR reference).
    pub subject: Option<String>,
    /// Entries at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Entries before this time.
    pub to: Option<DateTime<Utc>>,
    /// Only entries with a greater `seq`.
    pub after_seq: u64,
    /// At most this many entries.
    pub limit: usize,
}
