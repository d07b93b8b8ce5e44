//! The persisted forms of the retention worker: deletions it has committed to ([`PendingDeletion`]),
//! what finishing one writes ([`FinishedDeletion`]), and its progress ([`RetentionProgress`]); and
//! the lock that lets one node sweep at a time ([`SweepLock`]).

use std::fmt;

use chrono::{DateTime, Utc};

use super::{NewLedgerEntry, RecordingStatus};
use crate::audit::NewAuditEntry;
use crate::domain::RecordingId;

/// Why a recording's audio is deleted. The text forms are stored and frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeletionCause {
    /// Its retention period is over.
    Expired,
    /// A compliance user erased it on a data subject's request.
    Erased,
}

impl DeletionCause {
    /// The frozen text stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Erased => "erased",
        }
    }

    /// The status a recording has once deleted for this cause.
    pub const fn status(self) -> RecordingStatus {
        match self {
            Self::Expired => RecordingStatus::Expired,
            Self::Erased => RecordingStatus::Erased,
        }
    }
}

impl std::str::FromStr for DeletionCause {
    type Err = super::UnknownStatus;
    fn from_str(s: &str) -> Result<Self, super::UnknownStatus> {
        match s {
            "expired" => Ok(Self::Expired),
            "erased" => Ok(Self::Erased),
            _ => Err(super::UnknownStatus),
        }
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
}

/// What finishing a deletion writes, atomically: every data key of the recording shredded and its
/// segments marked `deleted` (an `excised` one stays so), its status set, the receipt appended to its
/// ledger and to the audit chain, and the pending row removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedDeletion {
    /// The recording.
    pub recording_id: RecordingId,
    /// Its new status (`expired` or `erased`).
    pub status: RecordingStatus,
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
