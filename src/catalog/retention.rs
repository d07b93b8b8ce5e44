//! The persisted forms of the retention worker: deletions it has committed to ([`PendingDeletion`]),
//! what finishing one writes ([`FinishedDeletion`]), and its progress ([`RetentionProgress`]); and
//! the lock that lets one node sweep at a time ([`SweepLock`]).

use std::fmt;

use chrono::{DateTime, Utc};

use super::{NewLedgerEntry, RecordingStatus};
use crate::audit::NewAuditEntry;
use crate::domain::{RecordingId, SegmentNo, TransitionError};

/// Why a recording's audio (or one segment's) is destroyed. The text forms are stored and frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeletionCause {
    /// Its retention period is over.
    Expired,
    /// A compliance user erased it on a data subject's request.
    Erased,
    /// The caller refused recording (during the call, within `consent.late_refusal` after it, or
    /// earlier under a hold since released).
    Refused,
    /// One segment is cut out (crypto-shredded) after a late card-payment pause.
    Excised,
}

impl DeletionCause {
    /// Every cause.
    pub const ALL: [DeletionCause; 4] = [Self::Expired, Self::Erased, Self::Refused, Self::Excised];

    /// The frozen text stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Erased => "erased",
            Self::Refused => "refused",
            Self::Excised => "excised",
        }
    }

    /// The status a recording in `from` has once destroyed for this cause: the status machine's
    /// transition for it (an excision that leaves a late pause in stored audio is the machine's
    /// `excise(false)`; whether the review clears is decided when the deletion finishes).
    pub fn transition(self, from: RecordingStatus) -> Result<RecordingStatus, TransitionError> {
        match self {
            Self::Expired => from.expire(),
            Self::Erased => from.erase(),
            Self::Refused => from.refuse(),
            Self::Excised => from.excise(false),
        }
    }

    /// The statuses this cause may act on: those its transition accepts.
    pub fn acts_on(self) -> Vec<RecordingStatus> {
        RecordingStatus::ALL
            .into_iter()
            .filter(|s| self.transition(*s).is_ok())
            .collect()
    }

    /// Whether a hold stops it: every cause but excision (card data must not be stored at all).
    pub const fn stopped_by_holds(self) -> bool {
        !matches!(self, Self::Excised)
    }
}

impl std::str::FromStr for DeletionCause {
    type Err = super::UnknownStatus;
    fn from_str(s: &str) -> Result<Self, super::UnknownStatus> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(super::UnknownStatus)
    }
}

/// A deletion the worker has committed to: from the moment it is stored, the recording's objects
/// may be gone, so a run that stops half-way is finished by the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDeletion {
    /// The recording.
    pub recording_id: RecordingId,
    /// Why it is deleted.
    pub cause: DeletionCause,
    /// Who asked: `system:retention`, or the compliance user's token name.
    pub actor: String,
    /// Why, as the actor gave it.
    pub reason: Option<String>,
    /// When the deletion was committed to.
    pub requested_at: DateTime<Utc>,
    /// The one segment an excision destroys; `None` for the whole recording.
    pub segment: Option<SegmentNo>,
}

/// What finishing a deletion writes, atomically: every data key of the recording shredded and its
/// segments marked `deleted` (an `excised` one stays so), or for an excision that one segment's key
/// shredded and the segment marked `excised`; its status set; the caller's sealed number and lookup
/// tag forgotten when `forget_caller`; the receipt appended to its ledger and to the audit chain;
/// and the pending row removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedDeletion {
    /// The recording.
    pub recording_id: RecordingId,
    /// Its new status.
    pub status: RecordingStatus,
    /// The one segment an excision destroys; `None` for every segment.
    pub segment: Option<SegmentNo>,
    /// Forget the caller's sealed number and lookup tag: the audio is gone (erasure, expiry,
    /// refusal, excision of the last segment), so no personal data stays in the tombstone.
    pub forget_caller: bool,
    /// When it was finished (the recording's `updated_at`).
    pub at: DateTime<Utc>,
    /// The deletion receipt, as a ledger entry.
    pub ledger: NewLedgerEntry,
    /// The deletion receipt, as an audit entry.
    pub audit: NewAuditEntry,
}

/// The retention worker's counters, kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionProgress {
    /// Sweeps finished.
    pub sweeps: u64,
    /// Recordings deleted at expiry, in all.
    pub expired: u64,
    /// Recordings erased on request, in all.
    pub erased: u64,
    /// When the last sweep started.
    pub last_started_at: Option<DateTime<Utc>>,
    /// When the last sweep finished.
    pub last_finished_at: Option<DateTime<Utc>>,
    /// Recordings the last finished sweep deleted.
    pub last_deleted: u64,
    /// Why the last sweep failed, if it did.
    pub last_error: Option<String>,
}

/// Held while this node sweeps: no other node sharing the catalog gets one from
/// [`Catalog::try_lock_sweep`](super::Catalog::try_lock_sweep) until it is dropped.
///
/// What it holds is the backend's: nothing for SQLite (one node), the database session that holds
/// the advisory lock for PostgreSQL (dropping it ends the session, and the server frees the lock; so
/// does a node that dies).
#[must_use = "the sweep lock is released when dropped"]
pub struct SweepLock {
    _held: Box<dyn Send + Sync>,
}

impl SweepLock {
    /// A lock that keeps `held` until it is dropped.
    pub(crate) fn new(held: impl Send + Sync + 'static) -> Self {
        Self {
            _held: Box::new(held),
        }
    }
}

impl fmt::Debug for SweepLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SweepLock")
    }
}
