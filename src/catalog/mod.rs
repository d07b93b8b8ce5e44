//! The catalog: recording metadata behind one trait, [`Catalog`].
//!
//! It owns the persisted forms of everything callvault knows about its recordings and users:
//! recordings ([`RecordingRow`]) and their segments ([`SegmentRow`]) with the wrapped data keys
//! ([`WrappedKeyRow`]), each recording's ledger ([`LedgerEntry`]), complaint holds ([`HoldRow`]), the
//! audit chain ([`AuditEntry`]) and its signed [`Checkpoint`]s, the webhook replay guard, bearer
//! tokens ([`TokenRow`]), subject access requests ([`SarRow`]), and the roster of every call the
//! platform reported with its completeness state ([`CallRow`]). Two
//! backends share the trait and run the same conformance suite (`catalog/conformance.rs`):
//! [`SqliteCatalog`], the embedded default for one node, and [`PostgresCatalog`], one database that
//! several nodes share. Each keeps its own migrations (`migrations/sqlite/`, `migrations/postgres/`),
//! numbered alike, with the same schema meaning.
//!
//! Architecture invariants:
//! - no HTTP, no crypto, no audio: the catalog stores bytes the [vault](crate::vault) sealed
//!   (wrapped keys, sealed caller numbers) and hashes others computed; it never wraps, unwraps,
//!   encrypts or hashes anything itself, except through [`AuditEntry::chained`], the one place an
//!   audit hash is computed.
//! - no domain rule is decided here: which status follows which, when a recording expires, who may
//!   see it, are the [domain](crate::domain)'s. The catalog only keeps what it is given, atomically.
//! - a wrapped key, once shredded, cannot come back: [`Catalog::update_segment`] does not write the
//!   key columns, only [`Catalog::shred_segment_key`] and [`Catalog::replace_wrapped_key`] do.
//! - times are kept to the microsecond (what PostgreSQL keeps); finer parts are cut off on write.
//! - what two writers must not interleave is serialised by the backend, across processes and, for
//!   PostgreSQL, across nodes: audit appends never fork the chain, ledger positions are never
//!   taken twice, no deletion starts on a recording a simultaneous hold covers, and
//!   [`Catalog::try_lock_sweep`] lets one sweep run at a time.

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::{AuditEntry, ChainHead, Checkpoint, NewAuditEntry};
use crate::domain::{CallId, KeyId, RecordingId, SegmentNo};

mod calls;
mod changes;
mod notes;
mod postgres;
mod retention;
mod rows;
mod sqlite;

#[cfg(test)]
pub(crate) mod conformance;

pub use calls::{
    CallAssessment, CallFilter, CallNote, CallQuery, CallRow, CallSettlement, CallSource,
    CallTotals,
};
pub use changes::{CallDetailsUpdate, StatusChange};
pub use notes::{PCI_REVIEW, PciReviewNote};
pub use postgres::{
    POOL_SIZE as POSTGRES_POOL_SIZE, PostgresCatalog, parse_url as parse_postgres_url,
};
pub use retention::{
    DeletionCause, FinishedDeletion, PendingDeletion, RetentionProgress, SweepLock,
};
pub use rows::{AuditQuery, RecordingQuery, SarRow};
pub use rows::{
    HoldRow, ImportedRecording, LedgerEntry, NewLedgerEntry, RecordingRow, RecordingStatus,
    SegmentRow, SegmentStatus, TokenRow, UnknownStatus, WrappedKeyRow,
};
pub use rows::{NewSealedNote, SealedNote};
pub use sqlite::SqliteCatalog;

/// A driver's error, kept as the source of [`CatalogError::Backend`].
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The thing operated on does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `recording 0190...`.
        what: String,
    },
    /// The operation clashes with what is stored: a duplicate, or a state that forbids it.
    #[error("conflict: {what}")]
    Conflict {
        /// What clashed, e.g. `call CA123 already has a recording`.
        what: String,
    },
    /// A value cannot be stored as given (a number past the backend's range, a key id without a key).
    #[error("invalid {what}")]
    Invalid {
        /// What was wrong with it.
        what: String,
    },
    /// The schema cannot be brought to this build's version.
    #[error("catalog schema version {version}: {reason}")]
    Migration {
        /// The version concerned: the database's, or the migration that failed.
        version: u32,
        /// Why it cannot be used.
        reason: String,
    },
    /// A stored row cannot be decoded: the database was edited or damaged outside callvault.
    #[error("corrupt catalog row: {what}")]
    Corrupt {
        /// Which row and field.
        what: String,
    },
    /// The database failed (I/O, locking, a lost connection); retrying later may succeed.
    #[error("catalog backend failed: {0}")]
    Backend(#[source] BackendError),
}

impl CatalogError {
    pub(crate) fn not_found(what: impl fmt::Display) -> Self {
        Self::NotFound {
            what: what.to_string(),
        }
    }

    pub(crate) fn conflict(what: impl fmt::Display) -> Self {
        Self::Conflict {
            what: what.to_string(),
        }
    }

    pub(crate) fn corrupt(what: impl fmt::Display) -> Self {
        Self::Corrupt {
            what: what.to_string(),
        }
    }

    pub(crate) fn invalid(what: impl fmt::Display) -> Self {
        Self::Invalid {
            what: what.to_string(),
        }
    }
}

/// Recording metadata storage. Every method is one atomic operation.
///
/// Object-safe, so the daemon holds an `Arc<dyn Catalog>` and does not know the backend. Every
/// implementation passes the same conformance suite (`catalog/conformance.rs`).
#[async_trait]
pub trait Catalog: Send + Sync + fmt::Debug {
    /// A cheap query that succeeds when the database answers (for `/readyz`).
    async fn check(&self) -> Result<(), CatalogError>;

    // --- recordings

    /// Stores a new recording. [`CatalogError::Conflict`] if its id or its call id is taken.
    async fn insert_recording(&self, row: &RecordingRow) -> Result<(), CatalogError>;

    /// Stores an imported recording whole, in one transaction: its row, segments, ledger entries
    /// and audit entry, or nothing. [`CatalogError::Conflict`] if its id or its call id is taken
    /// (nothing is written then); [`CatalogError::Invalid`] if a segment or ledger entry names
    /// another recording.
    async fn insert_import(&self, import: &ImportedRecording) -> Result<(), CatalogError>;

    /// The recording with this id.
    async fn recording(&self, id: RecordingId) -> Result<Option<RecordingRow>, CatalogError>;

    /// The recording of this call.
    async fn recording_by_call(
        &self,
        call_id: &CallId,
    ) -> Result<Option<RecordingRow>, CatalogError>;

    /// Up to `limit` recordings with this status, oldest first (in id order). Start-up recovery
    /// finds with it the recordings a crash left `live`.
    async fn recordings_by_status(
        &self,
        status: RecordingStatus,
        limit: usize,
    ) -> Result<Vec<RecordingRow>, CatalogError>;

    /// Overwrites a recording's fields with `row`'s, found by `row.id`, except `restricted`, which
    /// only [`Catalog::set_restricted`] and [`Catalog::transition_recording`] write.
    /// [`CatalogError::NotFound`] if absent; [`CatalogError::Conflict`] if `row.call_id` belongs to
    /// another recording. The daemon itself uses the narrow writes below; this is for imports,
    /// repairs and tests.
    async fn update_recording(&self, row: &RecordingRow) -> Result<(), CatalogError>;

    /// Changes a recording's status compare-and-set: writes `change.to` (with the end, expiry and
    /// restriction it carries) only if the recording is still in `change.from`. False (nothing
    /// written) if it is not; [`CatalogError::NotFound`] if absent.
    async fn transition_recording(&self, change: &StatusChange) -> Result<bool, CatalogError>;

    /// Writes what a live call learns about itself (line, queue, agent, caller, policy, format,
    /// start) only if the recording is still in `update.expected`. False (nothing written) if it is
    /// not; [`CatalogError::NotFound`] if absent.
    async fn update_call_details(&self, update: &CallDetailsUpdate) -> Result<bool, CatalogError>;

    /// Sets or lifts a recording's restriction, touching nothing else: true if the flag changed.
    /// [`CatalogError::NotFound`] if absent.
    async fn set_restricted(
        &self,
        id: RecordingId,
        restricted: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, CatalogError>;

    /// Writes a recording's policy and expiry (a policy change re-applied) only if it is still in
    /// `expected`. False (nothing written) if it is not; [`CatalogError::NotFound`] if absent.
    async fn set_retention(
        &self,
        id: RecordingId,
        expected: RecordingStatus,
        policy: &str,
        expires_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<bool, CatalogError>;

    // --- segments

    /// Stores a new segment, with its wrapped data key. [`CatalogError::NotFound`] if the recording
    /// is absent; [`CatalogError::Conflict`] if the segment number is taken.
    async fn insert_segment(&self, row: &SegmentRow) -> Result<(), CatalogError>;

    /// A recording's segments, by segment number (empty for an unknown recording).
    async fn segments(&self, recording: RecordingId) -> Result<Vec<SegmentRow>, CatalogError>;

    /// Overwrites a segment's object key, media range, size, digest and status.
    ///
    /// The key columns (`kek_id`, `wrapped_key`) are not written: a data key changes only through
    /// [`Catalog::shred_segment_key`] and [`Catalog::replace_wrapped_key`], so a stale row can never
    /// bring back a shredded key or undo a rewrap. [`CatalogError::NotFound`] if absent.
    async fn update_segment(&self, row: &SegmentRow) -> Result<(), CatalogError>;

    /// Crypto-shreds a segment: forgets its wrapped data key and key id. Idempotent;
    /// [`CatalogError::NotFound`] if the segment is absent.
    async fn shred_segment_key(
        &self,
        recording: RecordingId,
        segment: SegmentNo,
    ) -> Result<(), CatalogError>;

    // --- data keys

    /// Every key-encryption key id that still wraps at least one data key.
    async fn key_ids_in_use(&self) -> Result<BTreeSet<KeyId>, CatalogError>;

    /// Up to `limit` wrapped keys after `after` in `(recording, segment)` order (from the start when
    /// `None`); shredded segments are skipped. Pass the last row's position to get the next page.
    async fn wrapped_keys_after(
        &self,
        after: Option<(RecordingId, SegmentNo)>,
        limit: usize,
    ) -> Result<Vec<WrappedKeyRow>, CatalogError>;

    /// How many segments still hold a wrapped key.
    async fn count_wrapped_keys(&self) -> Result<u64, CatalogError>;

    /// Compare-and-swap of a segment's wrapped key: stores `new` only if the segment's key is still
    /// wrapped by `expected_kek`. False (and nothing written) if it was rewrapped, shredded or
    /// deleted meanwhile.
    async fn replace_wrapped_key(
        &self,
        new: &WrappedKeyRow,
        expected_kek: &KeyId,
    ) -> Result<bool, CatalogError>;

    // --- ledger

    /// Appends to a recording's ledger at the next position (from 1), atomically.
    /// [`CatalogError::NotFound`] if the recording is absent.
    async fn append_ledger(&self, entry: &NewLedgerEntry) -> Result<LedgerEntry, CatalogError>;

    /// A recording's ledger, in order.
    async fn ledger(&self, recording: RecordingId) -> Result<Vec<LedgerEntry>, CatalogError>;

    /// Appends a ledger entry and keeps its sealed note beside it (same seq), atomically.
    /// [`CatalogError::NotFound`] if the recording is absent. Finishing a deletion that forgets
    /// the caller deletes the recording's notes with the number.
    async fn append_sealed_note(&self, note: &NewSealedNote) -> Result<LedgerEntry, CatalogError>;

    /// A recording's sealed notes, in ledger order (none once its audio was destroyed).
    async fn sealed_notes(&self, recording: RecordingId) -> Result<Vec<SealedNote>, CatalogError>;

    // --- holds

    /// Places a hold. [`CatalogError::Conflict`] if an active hold has the same reference (a
    /// released reference may be used again).
    async fn insert_hold(&self, hold: &HoldRow) -> Result<(), CatalogError>;

    /// The active hold with this reference, or else the last released one.
    async fn hold(&self, reference: &str) -> Result<Option<HoldRow>, CatalogError>;

    /// Puts a recording under the active hold with this reference. Idempotent.
    /// [`CatalogError::NotFound`] if the recording or the hold is absent; [`CatalogError::Conflict`]
    /// if the hold was released.
    async fn link_hold(&self, reference: &str, recording: RecordingId) -> Result<(), CatalogError>;

    /// Releases the active hold with this reference and returns it as released.
    /// [`CatalogError::NotFound`] if there is no such hold; [`CatalogError::Conflict`] if it was
    /// released already.
    async fn release_hold(
        &self,
        reference: &str,
        at: DateTime<Utc>,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<HoldRow, CatalogError>;

    /// Every hold (or only the active ones), in the order they were placed.
    async fn holds(&self, active_only: bool) -> Result<Vec<HoldRow>, CatalogError>;

    /// The active holds that cover a recording, in the order they were placed: those linked to it
    /// with [`Catalog::link_hold`], and those placed on its caller ([`HoldRow::caller_tag`] equal to
    /// the recording's) whose range holds its `started_at`. [`CatalogError::NotFound`] if the
    /// recording is absent.
    async fn holds_for_recording(
        &self,
        recording: RecordingId,
    ) -> Result<Vec<HoldRow>, CatalogError>;

    // --- audit

    /// Appends to the audit chain: reads the head and stores [`AuditEntry::chained`] in one
    /// transaction, so concurrent appends never fork the chain. Returns the entry as stored.
    async fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry, CatalogError>;

    /// The last entry of the audit chain ([`ChainHead::EMPTY`] when there is none).
    async fn audit_head(&self) -> Result<ChainHead, CatalogError>;

    /// Up to `limit` audit entries with `seq > after_seq`, by seq, exactly as stored (so that a
    /// [`ChainVerifier`](crate::audit::ChainVerifier) can judge them).
    async fn audit_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, CatalogError>;

    /// Stores a signed checkpoint of the audit chain (append-only; the signature is the
    /// caller's to check).
    async fn store_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), CatalogError>;

    /// The stored checkpoint of the furthest head (highest `seq`; of equals, the last stored).
    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, CatalogError>;

    // --- webhook replay protection

    /// Records that an event id was seen: true the first time, false if it was seen before.
    /// Atomic, so of two concurrent deliveries exactly one gets true.
    async fn mark_event_seen(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, CatalogError>;

    /// Forgets one event id, so that a delivery which failed to apply is applied when it is retried.
    async fn forget_event(&self, event_id: &str) -> Result<(), CatalogError>;

    /// Forgets event ids seen before `before`; returns how many.
    async fn prune_seen_events(&self, before: DateTime<Utc>) -> Result<u64, CatalogError>;

    // --- bearer tokens

    /// Stores a token. [`CatalogError::Conflict`] if its id or hash is taken.
    async fn insert_token(&self, token: &TokenRow) -> Result<(), CatalogError>;

    /// The token whose secret hashes to `hash`, revoked or not: check [`TokenRow::is_active`].
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRow>, CatalogError>;

    /// Revokes a token at `at`: true if it was active, false if it is unknown or was revoked
    /// already (the first revocation time is kept).
    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool, CatalogError>;

    /// Every token, revoked ones included, in the order they were created.
    async fn tokens(&self) -> Result<Vec<TokenRow>, CatalogError>;

    // --- supervisor access (issue 5)

    /// Recordings matching `query`, in `(started_at, id)` order, at most `query.limit`.
    async fn search_recordings(
        &self,
        query: &RecordingQuery,
    ) -> Result<Vec<RecordingRow>, CatalogError>;

    /// Records a subject access request, or returns the one already recorded under its reference
    /// (the first receipt and due date are kept).
    async fn record_sar(&self, sar: &SarRow) -> Result<SarRow, CatalogError>;

    /// The subject access request with this reference.
    async fn sar(&self, reference: &str) -> Result<Option<SarRow>, CatalogError>;

    /// Up to `limit` open subject access requests, soonest due first.
    async fn open_sars(&self, limit: usize) -> Result<Vec<SarRow>, CatalogError>;

    /// Closes an open request at `at`: true if it was open, false if unknown or closed already.
    async fn close_sar(&self, reference: &str, at: DateTime<Utc>) -> Result<bool, CatalogError>;

    /// Closes an open request at `at`, saying who closed it and why: true if it was open, false if
    /// unknown or closed already (the first closing is kept).
    async fn close_sar_by(
        &self,
        reference: &str,
        at: DateTime<Utc>,
        actor: &str,
        reason: &str,
    ) -> Result<bool, CatalogError>;

    /// Audit entries matching `query`, by seq, exactly as stored.
    async fn search_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, CatalogError>;

    // --- retention (issue 4)

    /// Up to `limit` recordings whose audio is due for deletion at `now`: status `sealed`,
    /// `pci_review` or `quarantined` (or `refusal_held`, whose expiry is its refusal: it goes once
    /// its last hold is released), `expires_at <= now`, no segment still spooled, not pending
    /// deletion already, and under no active hold (linked, or on its caller as
    /// [`Catalog::holds_for_recording`] finds). Earliest expiry first.
    async fn expired_recordings(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RecordingRow>, CatalogError>;

    /// Commits to deleting recordings, in one transaction: stores a pending row for each whose
    /// status its cause may act on ([`DeletionCause::acts_on`]) and that is not held (an excision
    /// is allowed under a hold), and returns their ids, in the order given, with those already
    /// pending for the same cause (and segment). A held recording is left out, so no deletion of it
    /// can start; so is one pending for another cause.
    async fn begin_deletions(
        &self,
        pending: &[PendingDeletion],
    ) -> Result<Vec<RecordingId>, CatalogError>;

    /// Up to `limit` deletions committed to and not finished, oldest first.
    async fn pending_deletions(&self, limit: usize) -> Result<Vec<PendingDeletion>, CatalogError>;

    /// Finishes deletions, all in one transaction (see [`FinishedDeletion`]). A recording that is no
    /// longer pending is skipped (finished already). Returns how many were finished.
    async fn finish_deletions(&self, done: &[FinishedDeletion]) -> Result<usize, CatalogError>;

    /// The retention worker's counters (all zero before its first sweep).
    async fn retention_progress(&self) -> Result<RetentionProgress, CatalogError>;

    /// Stores the retention worker's counters.
    async fn save_retention_progress(
        &self,
        progress: &RetentionProgress,
    ) -> Result<(), CatalogError>;

    /// Up to `limit` recordings after `after` in id order (from the start when `None`), whatever
    /// their status: retention planning pages through them.
    async fn recordings_after(
        &self,
        after: Option<RecordingId>,
        limit: usize,
    ) -> Result<Vec<RecordingRow>, CatalogError>;

    /// Takes the sweep lock without waiting: `None` while another holder (another node sharing
    /// this catalog) has it. A sweep runs only while it holds the lock, so one node sweeps at a time.
    async fn try_lock_sweep(&self) -> Result<Option<SweepLock>, CatalogError>;

    // --- every call accounted for (issue 16)

    /// Notes a call the platform reported: creates its row, or merges `note` into it (adds the
    /// source; a start, end, length or line is written only where none is known yet). Never
    /// touches its state. Storing a recording notes its call too, in the same transaction.
    async fn note_call(&self, note: &CallNote) -> Result<(), CatalogError>;

    /// The call with this id.
    async fn call(&self, call_id: &CallId) -> Result<Option<CallRow>, CatalogError>;

    /// Up to `limit` calls not settled yet, after `after` in call id order (from the start when
    /// `None`).
    async fn unsettled_calls(
        &self,
        after: Option<&CallId>,
        limit: usize,
    ) -> Result<Vec<CallRow>, CatalogError>;

    /// Stores a call's latest assessment, only if it is not settled: false (nothing written) if it
    /// is; [`CatalogError::NotFound`] if absent.
    async fn assess_call(
        &self,
        call_id: &CallId,
        assessment: &CallAssessment,
    ) -> Result<bool, CatalogError>;

    /// Settles a call, once: in one transaction, writes its final state (only if not settled
    /// yet), appends `settlement.ledger` to its recording's ledger and `settlement.audit` to the
    /// audit chain. False (nothing written) if it was settled already; [`CatalogError::NotFound`]
    /// if the call (or the ledger's recording) is absent.
    async fn settle_call(&self, settlement: &CallSettlement) -> Result<bool, CatalogError>;

    /// How many calls that started in `[from, to)` (open bounds when `None`) are in each state.
    async fn call_totals(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<CallTotals, CatalogError>;

    /// Calls matching `query`, in `(at, call_id)` order, at most `query.limit`.
    async fn calls(&self, query: &CallQuery) -> Result<Vec<CallRow>, CatalogError>;
}
