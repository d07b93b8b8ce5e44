//! The SQLite catalog: the embedded default, one database file under the state directory.
//!
//! Writes are group-committed ([`commit`]): operations queued while a batch runs share the next
//! batch's transaction, each in a savepoint of its own, and hear their result only once that commit
//! is durable; so a burst of calls costs a WAL sync a batch, not one a write.
//!
//! Storage choices, fixed by migration `0001` and read by every query here:
//! - times are RFC 3339 UTC text with exactly six fractional digits and a `Z`
//!   (`2026-03-01T09:30:00.123456Z`): fixed width, so text order is time order and range queries
//!   use the indexes; readable in the `sqlite3` shell during an incident; the same text the audit
//!   hash covers; and the microsecond precision PostgreSQL keeps, so both backends agree.
//! - recording ids are lowercase hyphenated UUID text (text order is UUID order), hashes and sealed
//!   bytes are BLOBs, unsigned numbers are INTEGERs checked to fit on the way in and out.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};

use super::{AuditQuery, RecordingQuery, SarRow};
use super::{CallAssessment, CallNote, CallQuery, CallRow, CallSettlement, CallTotals};
use super::{CallDetailsUpdate, StatusChange};
use super::{
    Catalog, CatalogError, FinishedDeletion, HoldRow, ImportedRecording, LedgerEntry,
    NewLedgerEntry, PendingDeletion, RecordingRow, RecordingStatus, RetentionProgress, SegmentRow,
    SweepLock, TokenRow, WrappedKeyRow,
};
use super::{NewSealedNote, SealedNote};
use crate::audit::{AuditEntry, ChainHead, Checkpoint, NewAuditEntry};
use crate::domain::{CallId, KeyId, RecordingId, SegmentNo};

mod access;
mod access_sar;
mod calls;
mod changes;
mod checkpoints;
mod commit;
mod convert;
mod holds;
mod recordings;
mod retention;
mod trails;

use commit::GroupCommit;
use convert::ts;

/// The schema migrations, in order: migration `i` (from 0) brings the schema to version `i + 1`.
/// Released migrations are frozen; a change is a new file.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_init.sql"),
    include_str!("migrations/sqlite/0002_retention.sql"),
    include_str!("migrations/sqlite/0003_supervisor.sql"),
    include_str!("migrations/sqlite/0004_checkpoints.sql"),
    include_str!("migrations/sqlite/0005_destruction.sql"),
    include_str!("migrations/sqlite/0006_queue_search.sql"),
    include_str!("migrations/sqlite/0007_completeness.sql"),
    include_str!("migrations/sqlite/0008_sealed_notes.sql"),
];

/// How long a statement waits for another process (the CLI, say) to release the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite [`Catalog`]: a cheap `Clone` handle over one connection.
#[derive(Clone)]
pub struct SqliteCatalog {
    // One connection rather than a pool: SQLite serialises writers anyway, so more connections
    // would only trade waiting here for SQLITE_BUSY retries. Every operation goes through the group
    // commit in front of it, which takes the connection's std mutex only inside `spawn_blocking`.
    ops: Arc<GroupCommit>,
    path: Option<Arc<Path>>,
}

impl fmt::Debug for SqliteCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteCatalog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog file at `path` and brings its schema up to date.
    ///
    /// Blocking: call it at start-up or inside `spawn_blocking`. [`CatalogError::Migration`] if the
    /// file was written by a newer callvault.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CatalogError> {
        let path = path.as_ref();
        let mut conn = Connection::open(path)?;
        configure(&conn, true)?;
        migrate(&mut conn)?;
        let conn = Arc::new(Mutex::new(conn));
        Ok(Self {
            ops: GroupCommit::new(conn),
            path: Some(Arc::from(path)),
        })
    }

    /// A catalog in memory, gone when the last handle is dropped (tests and dry runs).
    pub fn open_in_memory() -> Result<Self, CatalogError> {
        let mut conn = Connection::open_in_memory()?;
        configure(&conn, false)?;
        migrate(&mut conn)?;
        let conn = Arc::new(Mutex::new(conn));
        Ok(Self {
            ops: GroupCommit::new(conn),
            path: None,
        })
    }

    /// The schema version this build writes.
    pub const fn schema_version() -> u32 {
        MIGRATIONS.len() as u32
    }

    /// Runs `f` with the connection on the blocking pool, in the next group commit (see
    /// [`commit`]); its result comes once that is durable.
    async fn run<T, F>(&self, f: F) -> Result<T, CatalogError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, CatalogError> + Send + 'static,
    {
        self.ops.run(f).await
    }
}

fn configure(conn: &Connection, file: bool) -> Result<(), CatalogError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if file {
        // readers never block the writer, and a commit is one append to the log
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))?;
    }
    // a committed row survives a power cut: recordings and the audit chain are evidence
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), CatalogError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER NOT NULL PRIMARY KEY,
             applied_at TEXT    NOT NULL
         ) STRICT",
    )?;
    let current: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let current = u32::try_from(current)
        .map_err(|_| CatalogError::corrupt(format!("schema_migrations: version {current}")))?;
    let known = SqliteCatalog::schema_version();
    if current > known {
        return Err(CatalogError::Migration {
            version: current,
            reason: format!("the database is newer than this build, which knows up to {known}"),
        });
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(current as usize) {
        tx.execute_batch(sql).map_err(|e| CatalogError::Migration {
            version,
            reason: format!("cannot apply: {e}"),
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, ts(&Utc::now())],
        )?;
    }
    tx.commit()?;
    Ok(())
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn check(&self) -> Result<(), CatalogError> {
        self.run(|c| {
            c.query_row("SELECT max(version) FROM schema_migrations", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    async fn insert_recording(&self, row: &RecordingRow) -> Result<(), CatalogError> {
        let row = row.clone();
        self.run(move |c| recordings::insert_recording(c, &row))
            .await
    }

    async fn insert_import(&self, import: &ImportedRecording) -> Result<(), CatalogError> {
        let import = import.clone();
        self.run(move |c| recordings::insert_import(c, import))
            .await
    }

    async fn recording(&self, id: RecordingId) -> Result<Option<RecordingRow>, CatalogError> {
        self.run(move |c| recordings::recording(c, id)).await
    }

    async fn recording_by_call(
        &self,
        call_id: &CallId,
    ) -> Result<Option<RecordingRow>, CatalogError> {
        let call_id = call_id.clone();
        self.run(move |c| recordings::recording_by_call(c, &call_id))
            .await
    }

    async fn recordings_by_status(
        &self,
        status: RecordingStatus,
        limit: usize,
    ) -> Result<Vec<RecordingRow>, CatalogError> {
        self.run(move |c| recordings::recordings_by_status(c, status, limit))
            .await
    }

    async fn update_recording(&self, row: &RecordingRow) -> Result<(), CatalogError> {
        let row = row.clone();
        self.run(move |c| recordings::update_recording(c, &row))
            .await
    }

    async fn transition_recording(&self, change: &StatusChange) -> Result<bool, CatalogError> {
        let change = change.clone();
        self.run(move |c| changes::transition_recording(c, &change))
            .await
    }

    async fn update_call_details(&self, update: &CallDetailsUpdate) -> Result<bool, CatalogError> {
        let update = update.clone();
        self.run(move |c| changes::update_call_details(c, &update))
            .await
    }

    async fn set_restricted(
        &self,
        id: RecordingId,
        restricted: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, CatalogError> {
        self.run(move |c| changes::set_restricted(c, id, restricted, at))
            .await
    }

    async fn set_retention(
        &self,
        id: RecordingId,
        expected: RecordingStatus,
        policy: &str,
        expires_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<bool, CatalogError> {
        let policy = policy.to_owned();
        self.run(move |c| changes::set_retention(c, id, expected, &policy, expires_at, at))
            .await
    }

    async fn insert_segment(&self, row: &SegmentRow) -> Result<(), CatalogError> {
        let row = row.clone();
        self.run(move |c| recordings::insert_segment(c, &row)).await
    }

    async fn segments(&self, recording: RecordingId) -> Result<Vec<SegmentRow>, CatalogError> {
        self.run(move |c| recordings::segments(c, recording)).await
    }

    async fn update_segment(&self, row: &SegmentRow) -> Result<(), CatalogError> {
        let row = row.clone();
        self.run(move |c| recordings::update_segment(c, &row)).await
    }

    async fn shred_segment_key(
        &self,
        recording: RecordingId,
        segment: SegmentNo,
    ) -> Result<(), CatalogError> {
        self.run(move |c| recordings::shred_segment_key(c, recording, segment))
            .await
    }

    async fn key_ids_in_use(&self) -> Result<BTreeSet<KeyId>, CatalogError> {
        self.run(|c| recordings::key_ids_in_use(c)).await
    }

    async fn wrapped_keys_after(
        &self,
        after: Option<(RecordingId, SegmentNo)>,
        limit: usize,
    ) -> Result<Vec<WrappedKeyRow>, CatalogError> {
        self.run(move |c| recordings::wrapped_keys_after(c, after, limit))
            .await
    }

    async fn count_wrapped_keys(&self) -> Result<u64, CatalogError> {
        self.run(|c| recordings::count_wrapped_keys(c)).await
    }

    async fn replace_wrapped_key(
        &self,
        new: &WrappedKeyRow,
        expected_kek: &KeyId,
    ) -> Result<bool, CatalogError> {
        let new = new.clone();
        let expected = expected_kek.clone();
        self.run(move |c| recordings::replace_wrapped_key(c, &new, &expected))
            .await
    }

    async fn append_ledger(&self, entry: &NewLedgerEntry) -> Result<LedgerEntry, CatalogError> {
        let entry = entry.clone();
        self.run(move |c| trails::append_ledger(c, entry)).await
    }

    async fn ledger(&self, recording: RecordingId) -> Result<Vec<LedgerEntry>, CatalogError> {
        self.run(move |c| trails::ledger(c, recording)).await
    }

    async fn append_sealed_note(&self, note: &NewSealedNote) -> Result<LedgerEntry, CatalogError> {
        let note = note.clone();
        self.run(move |c| trails::append_sealed_note(c, note)).await
    }

    async fn sealed_notes(&self, recording: RecordingId) -> Result<Vec<SealedNote>, CatalogError> {
        self.run(move |c| trails::sealed_notes(c, recording)).await
    }

    async fn insert_hold(&self, hold: &HoldRow) -> Result<(), CatalogError> {
        let hold = hold.clone();
        self.run(move |c| holds::insert_hold(c, &hold)).await
    }

    async fn hold(&self, reference: &str) -> Result<Option<HoldRow>, CatalogError> {
        let reference = reference.to_owned();
        self.run(move |c| holds::hold(c, &reference)).await
    }

    async fn link_hold(&self, reference: &str, recording: RecordingId) -> Result<(), CatalogError> {
        let reference = reference.to_owned();
        self.run(move |c| holds::link_hold(c, &reference, recording))
            .await
    }

    async fn release_hold(
        &self,
        reference: &str,
        at: DateTime<Utc>,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<HoldRow, CatalogError> {
        let reference = reference.to_owned();
        let actor = actor.to_owned();
        let reason = reason.map(str::to_owned);
        self.run(move |c| holds::release_hold(c, &reference, at, &actor, reason.as_deref()))
            .await
    }

    async fn holds(&self, active_only: bool) -> Result<Vec<HoldRow>, CatalogError> {
        self.run(move |c| holds::holds(c, active_only)).await
    }

    async fn holds_for_recording(
        &self,
        recording: RecordingId,
    ) -> Result<Vec<HoldRow>, CatalogError> {
        self.run(move |c| holds::holds_for_recording(c, recording))
            .await
    }

    async fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry, CatalogError> {
        self.run(move |c| trails::append_audit(c, entry)).await
    }

    async fn audit_head(&self) -> Result<ChainHead, CatalogError> {
        self.run(|c| trails::audit_head(c)).await
    }

    async fn audit_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, CatalogError> {
        self.run(move |c| trails::audit_after(c, after_seq, limit))
            .await
    }

    async fn store_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), CatalogError> {
        let checkpoint = checkpoint.clone();
        self.run(move |c| checkpoints::store_checkpoint(c, &checkpoint))
            .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, CatalogError> {
        self.run(|c| checkpoints::latest_checkpoint(c)).await
    }

    async fn mark_event_seen(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, CatalogError> {
        let event_id = event_id.to_owned();
        self.run(move |c| access::mark_event_seen(c, &event_id, at))
            .await
    }

    async fn forget_event(&self, event_id: &str) -> Result<(), CatalogError> {
        let event_id = event_id.to_owned();
        self.run(move |c| access::forget_event(c, &event_id)).await
    }

    async fn prune_seen_events(&self, before: DateTime<Utc>) -> Result<u64, CatalogError> {
        self.run(move |c| access::prune_seen_events(c, before))
            .await
    }

    async fn insert_token(&self, token: &TokenRow) -> Result<(), CatalogError> {
        let token = token.clone();
        self.run(move |c| access::insert_token(c, &token)).await
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRow>, CatalogError> {
        let hash = *hash;
        self.run(move |c| access::token_by_hash(c, &hash)).await
    }

    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool, CatalogError> {
        let id = id.to_owned();
        self.run(move |c| access::revoke_token(c, &id, at)).await
    }

    async fn tokens(&self) -> Result<Vec<TokenRow>, CatalogError> {
        self.run(|c| access::tokens(c)).await
    }

    // --- supervisor access (issue 5)

    async fn search_recordings(
        &self,
        query: &RecordingQuery,
    ) -> Result<Vec<RecordingRow>, CatalogError> {
        let query = query.clone();
        self.run(move |c| access_sar::search_recordings(c, &query))
            .await
    }

    async fn record_sar(&self, sar: &SarRow) -> Result<SarRow, CatalogError> {
        let sar = sar.clone();
        self.run(move |c| access_sar::record_sar(c, &sar)).await
    }

    async fn sar(&self, reference: &str) -> Result<Option<SarRow>, CatalogError> {
        let reference = reference.to_owned();
        self.run(move |c| access_sar::sar(c, &reference)).await
    }

    async fn open_sars(&self, limit: usize) -> Result<Vec<SarRow>, CatalogError> {
        self.run(move |c| access_sar::open_sars(c, limit)).await
    }

    async fn close_sar(&self, reference: &str, at: DateTime<Utc>) -> Result<bool, CatalogError> {
        let reference = reference.to_owned();
        self.run(move |c| access_sar::close_sar(c, &reference, at))
            .await
    }

    async fn close_sar_by(
        &self,
        reference: &str,
        at: DateTime<Utc>,
        actor: &str,
        reason: &str,
    ) -> Result<bool, CatalogError> {
        let (reference, actor, reason) =
            (reference.to_owned(), actor.to_owned(), reason.to_owned());
        self.run(move |c| access_sar::close_sar_by(c, &reference, at, &actor, &reason))
            .await
    }

    async fn search_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, CatalogError> {
        let query = query.clone();
        self.run(move |c| access_sar::search_audit(c, &query)).await
    }

    // --- retention (issue 4)

    async fn expired_recordings(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RecordingRow>, CatalogError> {
        self.run(move |c| retention::expired_recordings(c, now, limit))
            .await
    }

    async fn begin_deletions(
        &self,
        pending: &[PendingDeletion],
    ) -> Result<Vec<RecordingId>, CatalogError> {
        let pending = pending.to_vec();
        self.run(move |c| retention::begin_deletions(c, &pending))
            .await
    }

    async fn pending_deletions(&self, limit: usize) -> Result<Vec<PendingDeletion>, CatalogError> {
        self.run(move |c| retention::pending_deletions(c, limit))
            .await
    }

    async fn finish_deletions(&self, done: &[FinishedDeletion]) -> Result<usize, CatalogError> {
        let done = done.to_vec();
        self.run(move |c| retention::finish_deletions(c, done))
            .await
    }

    async fn retention_progress(&self) -> Result<RetentionProgress, CatalogError> {
        self.run(|c| retention::retention_progress(c)).await
    }

    async fn save_retention_progress(
        &self,
        progress: &RetentionProgress,
    ) -> Result<(), CatalogError> {
        let progress = progress.clone();
        self.run(move |c| retention::save_retention_progress(c, &progress))
            .await
    }

    async fn recordings_after(
        &self,
        after: Option<RecordingId>,
        limit: usize,
    ) -> Result<Vec<RecordingRow>, CatalogError> {
        self.run(move |c| retention::recordings_after(c, after, limit))
            .await
    }

    async fn try_lock_sweep(&self) -> Result<Option<SweepLock>, CatalogError> {
        // a SQLite catalog belongs to one node, and that node's worker sweeps one sweep at a time
        Ok(Some(SweepLock::new(())))
    }

    async fn note_call(&self, note: &CallNote) -> Result<(), CatalogError> {
        let note = note.clone();
        self.run(move |c| calls::note_call(c, &note)).await
    }

    async fn call(&self, call_id: &CallId) -> Result<Option<CallRow>, CatalogError> {
        let id = call_id.clone();
        self.run(move |c| calls::call(c, &id)).await
    }

    async fn unsettled_calls(
        &self,
        after: Option<&CallId>,
        limit: usize,
    ) -> Result<Vec<CallRow>, CatalogError> {
        let after = after.cloned();
        self.run(move |c| calls::unsettled_calls(c, after.as_ref(), limit))
            .await
    }

    async fn assess_call(
        &self,
        call_id: &CallId,
        assessment: &CallAssessment,
    ) -> Result<bool, CatalogError> {
        let (id, a) = (call_id.clone(), assessment.clone());
        self.run(move |c| calls::assess_call(c, &id, &a)).await
    }

    async fn settle_call(&self, settlement: &CallSettlement) -> Result<bool, CatalogError> {
        let s = settlement.clone();
        self.run(move |c| calls::settle_call(c, &s)).await
    }

    async fn call_totals(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<CallTotals, CatalogError> {
        self.run(move |c| calls::call_totals(c, from, to)).await
    }

    async fn calls(&self, query: &CallQuery) -> Result<Vec<CallRow>, CatalogError> {
        let q = query.clone();
        self.run(move |c| calls::calls(c, &q)).await
    }
}

#[cfg(test)]
mod tests;
