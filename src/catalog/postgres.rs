//! The PostgreSQL catalog: one database that several callvault nodes share.
//!
//! Storage choices, fixed by migration `0001` and read by every query here:
//! - the same tables, columns and meaning as SQLite's, in native types: recording ids are `uuid`
//!   (byte order, which is the order of their text), times `timestamptz` (microseconds, cut on write
//!   so a time reads back as it was hashed), hashes and sealed bytes `bytea`, unsigned numbers
//!   `bigint` checked to fit on the way in and out. Listing orders on text use the "C" collation.
//! - the tables live in the first schema of the connection's `search_path`: `public` unless the
//!   connection string says otherwise (`options='-c search_path=callvault'`). Nodes that share a
//!   catalog share its schema.
//!
//! Concurrency: statements run under READ COMMITTED, and every read-then-write that must not
//! interleave with another node's takes a lock first (PostgreSQL advisory locks, keyed by the
//! schema so two catalogs in one database never contend): the audit chain (one append at a time,
//! so no two nodes fork it), holds against the start of a deletion, the migrations, and the
//! retention sweep (session-scoped: one node sweeps at a time). A ledger append locks its
//! recording's row.
//!
//! Connections come from a pool ([`POOL_SIZE`] per node), each with a connect timeout and a
//! statement timeout, so a stalled server fails a request instead of hanging it. The connection is
//! plain TCP (or a Unix socket): TLS to the database is not in this build, so the catalog must be
//! reached over a trusted network, and `sslmode=require` is refused.

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Pool};

use super::{AuditQuery, CallDetailsUpdate, RecordingQuery, SarRow, StatusChange};
use super::{CallAssessment, CallNote, CallQuery, CallRow, CallSettlement, CallTotals};
use super::{
    Catalog, CatalogError, FinishedDeletion, HoldRow, ImportedRecording, LedgerEntry,
    NewLedgerEntry, PendingDeletion, RecordingRow, RecordingStatus, RetentionProgress, SegmentRow,
    SweepLock, TokenRow, WrappedKeyRow,
};
use super::{NewSealedNote, SealedNote};
use crate::audit::{AuditEntry, ChainHead, Checkpoint, NewAuditEntry};
use crate::config::Secret;
use crate::domain::{CallId, KeyId, RecordingId, SegmentNo};

mod access;
mod access_sar;
mod calls;
mod changes;
mod checkpoints;
mod connect;
mod convert;
mod holds;
mod recordings;
mod retention;
mod trails;

use connect::Locks;
pub use connect::parse_url;

/// Connections per node. Each live call writes a few rows a second at most, so this serves
/// thousands of calls; the server's `max_connections` must allow it times the number of nodes.
pub const POOL_SIZE: usize = 16;

/// The PostgreSQL [`Catalog`]: a cheap `Clone` handle over a pool of connections.
#[derive(Clone)]
pub struct PostgresCatalog {
    pool: Pool,
    locks: Locks,
    /// Where it connects, for logs: hosts, ports, database and user, never the password.
    target: String,
}

impl fmt::Debug for PostgresCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresCatalog")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PostgresCatalog {
    /// Connects to the database `url` names (see [`parse_url`]), with `password` if given, and
    /// brings its schema up to date.
    ///
    /// [`CatalogError::Invalid`] for a connection string [`parse_url`] refuses;
    /// [`CatalogError::Backend`] if the server cannot be reached or refuses the login;
    /// [`CatalogError::Migration`] if the schema was written by a newer callvault or the
    /// `search_path` names no schema that exists.
    pub async fn open(url: &str, password: Option<&Secret>) -> Result<Self, CatalogError> {
        let (pool, target) = connect::pool(url, password)?;
        let mut client = pool.get().await?;
        let locks = connect::schema_locks(&client).await?;
        connect::migrate(&mut client, locks).await?;
        Ok(Self {
            pool,
            locks,
            target,
        })
    }

    /// The schema version this build writes.
    pub const fn schema_version() -> u32 {
        connect::MIGRATIONS.len() as u32
    }

    /// Where it connects: hosts, ports, database and user (never the password).
    pub fn target(&self) -> &str {
        &self.target
    }

    async fn client(&self) -> Result<Object, CatalogError> {
        Ok(self.pool.get().await?)
    }
}

#[async_trait]
impl Catalog for PostgresCatalog {
    async fn check(&self) -> Result<(), CatalogError> {
        let c = self.client().await?;
        let _: Option<i32> =
            convert::scalar(&c, "SELECT max(version) FROM schema_migrations", &[]).await?;
        Ok(())
    }

    async fn insert_recording(&self, row: &RecordingRow) -> Result<(), CatalogError> {
        recordings::insert_recording(&self.client().await?, row).await
    }

    async fn insert_import(&self, import: &ImportedRecording) -> Result<(), CatalogError> {
        recordings::insert_import(&mut self.client().await?, self.locks, import.clone()).await
    }

    async fn recording(&self, id: RecordingId) -> Result<Option<RecordingRow>, CatalogError> {
        recordings::recording(&self.client().await?, id).await
    }

    async fn recording_by_call(
        &self,
        call_id: &CallId,
    ) -> Result<Option<RecordingRow>, CatalogError> {
        recordings::recording_by_call(&self.client().await?, call_id).await
    }

    async fn recordings_by_status(
        &self,
        status: RecordingStatus,
        limit: usize,
    ) -> Result<Vec<RecordingRow>, CatalogError> {
        recordings::recordings_by_status(&self.client().await?, status, limit).await
    }

    async fn update_recording(&self, row: &RecordingRow) -> Result<(), CatalogError> {
        recordings::update_recording(&self.client().await?, row).await
    }

    async fn transition_recording(&self, change: &StatusChange) -> Result<bool, CatalogError> {
        changes::transition_recording(&self.client().await?, change).await
    }

    async fn update_call_details(&self, update: &CallDetailsUpdate) -> Result<bool, CatalogError> {
        changes::update_call_details(&self.client().await?, update).await
    }

    async fn set_restricted(
        &self,
        id: RecordingId,
        restricted: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, CatalogError> {
        changes::set_restricted(&self.client().await?, id, restricted, at).await
    }

    async fn set_retention(
        &self,
        id: RecordingId,
        expected: RecordingStatus,
        policy: &str,
        expires_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<bool, CatalogError> {
        changes::set_retention(&self.client().await?, id, expected, policy, expires_at, at).await
    }

    async fn insert_segment(&self, row: &SegmentRow) -> Result<(), CatalogError> {
        recordings::insert_segment(&self.client().await?, row).await
    }

    async fn segments(&self, recording: RecordingId) -> Result<Vec<SegmentRow>, CatalogError> {
        recordings::segments(&self.client().await?, recording).await
    }

    async fn update_segment(&self, row: &SegmentRow) -> Result<(), CatalogError> {
        recordings::update_segment(&self.client().await?, row).await
    }

    async fn shred_segment_key(
        &self,
        recording: RecordingId,
        segment: SegmentNo,
    ) -> Result<(), CatalogError> {
        recordings::shred_segment_key(&self.client().await?, recording, segment).await
    }

    async fn key_ids_in_use(&self) -> Result<BTreeSet<KeyId>, CatalogError> {
        recordings::key_ids_in_use(&self.client().await?).await
    }

    async fn wrapped_keys_after(
        &self,
        after: Option<(RecordingId, SegmentNo)>,
        limit: usize,
    ) -> Result<Vec<WrappedKeyRow>, CatalogError> {
        recordings::wrapped_keys_after(&self.client().await?, after, limit).await
    }

    async fn count_wrapped_keys(&self) -> Result<u64, CatalogError> {
        recordings::count_wrapped_keys(&self.client().await?).await
    }

    async fn replace_wrapped_key(
        &self,
        new: &WrappedKeyRow,
        expected_kek: &KeyId,
    ) -> Result<bool, CatalogError> {
        recordings::replace_wrapped_key(&self.client().await?, new, expected_kek).await
    }

    async fn append_ledger(&self, entry: &NewLedgerEntry) -> Result<LedgerEntry, CatalogError> {
        trails::append_ledger(&mut self.client().await?, entry.clone()).await
    }

    async fn ledger(&self, recording: RecordingId) -> Result<Vec<LedgerEntry>, CatalogError> {
        trails::ledger(&self.client().await?, recording).await
    }

    async fn append_sealed_note(&self, note: &NewSealedNote) -> Result<LedgerEntry, CatalogError> {
        trails::append_sealed_note(&mut self.client().await?, note.clone()).await
    }

    async fn sealed_notes(&self, recording: RecordingId) -> Result<Vec<SealedNote>, CatalogError> {
        trails::sealed_notes(&self.client().await?, recording).await
    }

    async fn insert_hold(&self, hold: &HoldRow) -> Result<(), CatalogError> {
        holds::insert_hold(&mut self.client().await?, self.locks, hold).await
    }

    async fn hold(&self, reference: &str) -> Result<Option<HoldRow>, CatalogError> {
        holds::hold(&self.client().await?, reference).await
    }

    async fn link_hold(&self, reference: &str, recording: RecordingId) -> Result<(), CatalogError> {
        holds::link_hold(&mut self.client().await?, self.locks, reference, recording).await
    }

    async fn release_hold(
        &self,
        reference: &str,
        at: DateTime<Utc>,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<HoldRow, CatalogError> {
        holds::release_hold(&self.client().await?, reference, at, actor, reason).await
    }

    async fn holds(&self, active_only: bool) -> Result<Vec<HoldRow>, CatalogError> {
        holds::holds(&self.client().await?, active_only).await
    }

    async fn holds_for_recording(
        &self,
        recording: RecordingId,
    ) -> Result<Vec<HoldRow>, CatalogError> {
        holds::holds_for_recording(&self.client().await?, recording).await
    }

    async fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry, CatalogError> {
        trails::append_audit(&mut self.client().await?, self.locks, entry).await
    }

    async fn audit_head(&self) -> Result<ChainHead, CatalogError> {
        trails::audit_head(&self.client().await?).await
    }

    async fn audit_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, CatalogError> {
        trails::audit_after(&self.client().await?, after_seq, limit).await
    }

    async fn store_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), CatalogError> {
        checkpoints::store_checkpoint(&self.client().await?, checkpoint).await
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, CatalogError> {
        checkpoints::latest_checkpoint(&self.client().await?).await
    }

    async fn mark_event_seen(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, CatalogError> {
        access::mark_event_seen(&self.client().await?, event_id, at).await
    }

    async fn forget_event(&self, event_id: &str) -> Result<(), CatalogError> {
        access::forget_event(&self.client().await?, event_id).await
    }

    async fn prune_seen_events(&self, before: DateTime<Utc>) -> Result<u64, CatalogError> {
        access::prune_seen_events(&self.client().await?, before).await
    }

    async fn insert_token(&self, token: &TokenRow) -> Result<(), CatalogError> {
        access::insert_token(&self.client().await?, token).await
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRow>, CatalogError> {
        access::token_by_hash(&self.client().await?, hash).await
    }

    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool, CatalogError> {
        access::revoke_token(&self.client().await?, id, at).await
    }

    async fn tokens(&self) -> Result<Vec<TokenRow>, CatalogError> {
        access::tokens(&self.client().await?).await
    }

    async fn search_recordings(
        &self,
        query: &RecordingQuery,
    ) -> Result<Vec<RecordingRow>, CatalogError> {
        access_sar::search_recordings(&self.client().await?, query).await
    }

    async fn record_sar(&self, sar: &SarRow) -> Result<SarRow, CatalogError> {
        access_sar::record_sar(&self.client().await?, sar).await
    }

    async fn sar(&self, reference: &str) -> Result<Option<SarRow>, CatalogError> {
        access_sar::sar(&self.client().await?, reference).await
    }

    async fn open_sars(&self, limit: usize) -> Result<Vec<SarRow>, CatalogError> {
        access_sar::open_sars(&self.client().await?, limit).await
    }

    async fn close_sar(&self, reference: &str, at: DateTime<Utc>) -> Result<bool, CatalogError> {
        access_sar::close_sar(&self.client().await?, reference, at).await
    }

    async fn close_sar_by(
        &self,
        reference: &str,
        at: DateTime<Utc>,
        actor: &str,
        reason: &str,
    ) -> Result<bool, CatalogError> {
        access_sar::close_sar_by(&self.client().await?, reference, at, actor, reason).await
    }

    async fn search_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, CatalogError> {
        access_sar::search_audit(&self.client().await?, query).await
    }

    async fn expired_recordings(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RecordingRow>, CatalogError> {
        retention::expired_recordings(&self.client().await?, now, limit).await
    }

    async fn begin_deletions(
        &self,
        pending: &[PendingDeletion],
    ) -> Result<Vec<RecordingId>, CatalogError> {
        retention::begin_deletions(&mut self.client().await?, self.locks, pending).await
    }

    async fn pending_deletions(&self, limit: usize) -> Result<Vec<PendingDeletion>, CatalogError> {
        retention::pending_deletions(&self.client().await?, limit).await
    }

    async fn finish_deletions(&self, done: &[FinishedDeletion]) -> Result<usize, CatalogError> {
        retention::finish_deletions(&mut self.client().await?, self.locks, done.to_vec()).await
    }

    async fn retention_progress(&self) -> Result<RetentionProgress, CatalogError> {
        retention::retention_progress(&self.client().await?).await
    }

    async fn save_retention_progress(
        &self,
        progress: &RetentionProgress,
    ) -> Result<(), CatalogError> {
        retention::save_retention_progress(&self.client().await?, progress).await
    }

    async fn recordings_after(
        &self,
        after: Option<RecordingId>,
        limit: usize,
    ) -> Result<Vec<RecordingRow>, CatalogError> {
        retention::recordings_after(&self.client().await?, after, limit).await
    }

    async fn try_lock_sweep(&self) -> Result<Option<SweepLock>, CatalogError> {
        retention::try_lock_sweep(&self.pool, self.locks).await
    }

    async fn note_call(&self, note: &CallNote) -> Result<(), CatalogError> {
        calls::note_call(&self.client().await?, note).await
    }

    async fn call(&self, call_id: &CallId) -> Result<Option<CallRow>, CatalogError> {
        calls::call(&self.client().await?, call_id).await
    }

    async fn unsettled_calls(
        &self,
        after: Option<&CallId>,
        limit: usize,
    ) -> Result<Vec<CallRow>, CatalogError> {
        calls::unsettled_calls(&self.client().await?, after, limit).await
    }

    async fn assess_call(
        &self,
        call_id: &CallId,
        assessment: &CallAssessment,
    ) -> Result<bool, CatalogError> {
        calls::assess_call(&self.client().await?, call_id, assessment).await
    }

    async fn settle_call(&self, settlement: &CallSettlement) -> Result<bool, CatalogError> {
        calls::settle_call(&mut self.client().await?, self.locks, settlement).await
    }

    async fn call_totals(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<CallTotals, CatalogError> {
        calls::call_totals(&self.client().await?, from, to).await
    }

    async fn calls(&self, query: &CallQuery) -> Result<Vec<CallRow>, CatalogError> {
        calls::calls(&self.client().await?, query).await
    }
}

#[cfg(test)]
mod tests;
