//! Persistence of committed audio: sealed chunks on the spool, sealed segments in the object store,
//! and their rows in the catalog, crash-safe.
//!
//! It owns the spool directory, the group-commit syncer ([`SyncStats`]), the uploader, start-up
//! recovery ([`Persistence::recover`]) and destruction ([`Persistence::destroy_recording`]). A call
//! task holds one [`OpenSegment`] at a time and feeds it plaintext it has decided may be kept. This
//! module must not decide *what* may be kept (consent, card-payment pauses: the call task and
//! `domain/`), and must not seal or open anything itself: the `CVA1` format and the keys are the
//! [`vault`]'s.
//!
//! The life of a segment:
//! 1. [`Persistence::open_segment`]: a fresh data key, wrapped, goes into the catalog (status
//!    `spooled`) before `{spool}/{recording}/{segment:04}.cva.part` is created and its header synced.
//! 2. [`OpenSegment::append`]: whole chunks are sealed in memory and appended; the syncer
//!    `fdatasync`s every dirty spool file once per `sync_interval`, across all calls. A chunk is
//!    durable at most one interval after `append` returns.
//! 3. [`OpenSegment::close`] (or [`OpenSegment::cut_back`]): the final chunk is sealed and synced, the
//!    file renamed to `.cva` (the rename is the commit point), the row updated, the upload queued.
//! 4. The uploader puts the file with [`vault::put_verified`], and only then marks the row `stored`
//!    and deletes the spool file. While the store fails the file stays and is retried with backoff.
//!
//! While the spool cannot be written (a full disk, an I/O error; see `backlog`), steps 1 to 3 wait:
//! the row, the file and the sealed chunks are held in memory, up to `spool_backlog` of audio per
//! call, and written in order once writes work again; a close that cannot be written is finished by
//! the drainer task. Past the bound audio is dropped, with an `audio_lost` ledger entry, and the
//! call continues in a new segment where its audio resumes ([`PersistError::SpoolResumed`]).
//!
//! Crash safety rests on three rules: a `.cva` in the spool is complete (it was renamed or written
//! whole and synced before any `.part` beside it was removed); a `.part` holds a synced header and
//! then chunks in order, so [`vault::recover_partial`] keeps exactly the leading chunks that
//! authenticate; and the catalog row (with the wrapped key) exists before any audio does.
//!
//! Architecture invariants: plaintext never reaches a file (only [`vault::SegmentWriter`]'s sealed
//! output is written); a data key lives in memory only inside its [`OpenSegment`], and on disk only
//! wrapped in the catalog; a destroyed recording is never uploaded again.

mod backlog;
mod closing;
mod recover;
mod segment;
mod spool;
mod uploader;
mod writeback;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::catalog::{
    Catalog, CatalogError, NewLedgerEntry, RecordingRow, SegmentRow, SegmentStatus,
};
use crate::domain::{Clock, MediaFormat, Period, RecordingId, SegmentNo};
use crate::vault::{self, DataKey, Header, Keyring, SegmentWriter, StoreKind, VaultError};

pub use backlog::{Cause, SpoolHealth};
pub use recover::{RecoveredSegment, RecoveryReport};
pub use segment::OpenSegment;
pub use spool::SyncStats;

use backlog::Backlog;
use spool::{Syncer, blocking};
use uploader::Uploads;
use writeback::SegFile;

/// The actor named in ledger entries this module writes.
const ACTOR: &str = "system";

/// Why a persistence operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Sealing, unwrapping, recovery or the object store failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A spool file operation failed.
    #[error("spool file {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Listing or deleting a recording's objects failed.
    #[error("object store: {0}")]
    Store(#[source] object_store::Error),
    /// The recording is not in the catalog.
    #[error("recording {0} not found")]
    UnknownRecording(RecordingId),
    /// The recording was destroyed (refusal, erasure) while this segment was open: its audio is
    /// dropped, nothing more of it is written.
    #[error("recording {0} was destroyed")]
    Destroyed(RecordingId),
    /// An earlier write or sync of this segment's spool file failed; the segment accepts no more
    /// audio. Close it: what reached the disk intact is kept.
    #[error(
        "segment {segment} of recording {recording} lost a spool write and takes no more audio"
    )]
    SegmentFailed {
        /// The recording.
        recording: RecordingId,
        /// The segment.
        segment: SegmentNo,
    },
    /// The spool takes writes again after this segment dropped audio it could not hold: it takes
    /// no more; close it and continue in a new segment where the audio resumes (a segment's
    /// timeline has no holes). The loss is in the ledger.
    #[error(
        "the spool takes writes again after segment {segment} of recording {recording} dropped audio; continue in a new segment"
    )]
    SpoolResumed {
        /// The recording.
        recording: RecordingId,
        /// The segment.
        segment: SegmentNo,
    },
    /// The runtime is shutting down and a blocking spool task was cancelled.
    #[error("shutting down")]
    ShuttingDown,
}

impl PersistError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
        move |source| PersistError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// How persistence is set up.
#[derive(Debug, Clone)]
pub struct PersistConfig {
    /// The spool directory (`{state_dir}/spool`); created if missing.
    pub spool_dir: PathBuf,
    /// Which store the object store handle was opened from: a local store's uploads are synced.
    pub store_kind: StoreKind,
    /// Plaintext bytes per sealed chunk.
    pub chunk_size: u32,
    /// How often the syncer syncs every dirty spool file (group commit).
    pub sync_interval: Duration,
    /// The first wait after a failed upload; it doubles on each further failure.
    pub retry_min: Duration,
    /// The longest wait between upload attempts.
    pub retry_max: Duration,
    /// How much audio one call may hold in memory while the spool cannot be written.
    pub spool_backlog: Duration,
    /// How often a spool that cannot be written is tried again.
    pub spool_retry: Duration,
    /// Retention periods by policy name: a recording that recovery seals expires at its end plus
    /// its policy's period, as one sealed by its call would.
    pub retention: BTreeMap<String, Period>,
    /// The period of a recording whose policy is not in `retention` (the default policy's); with
    /// neither, recovery leaves `expires_at` unset.
    pub default_retention: Option<Period>,
    /// Policies whose 16-bit linear segments are uploaded as lossless FLAC (`storage_codec =
    /// "flac"`); the spool keeps them as written.
    pub flac_policies: std::collections::BTreeSet<String>,
}

impl PersistConfig {
    /// The defaults: 16 KiB chunks, a sync every 200 ms, retries from 1 s doubling to 60 s, 30 s
    /// of audio held per call while the spool cannot be written, tried again every second, no
    /// retention periods.
    pub fn new(spool_dir: PathBuf, store_kind: StoreKind) -> Self {
        Self {
            spool_dir,
            store_kind,
            chunk_size: vault::container::DEFAULT_CHUNK_SIZE,
            sync_interval: Duration::from_millis(200),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            spool_backlog: Duration::from_secs(30),
            spool_retry: Duration::from_secs(1),
            retention: BTreeMap::new(),
            default_retention: None,
            flac_policies: std::collections::BTreeSet::new(),
        }
    }
}

/// What [`Persistence::destroy_recording`] destroyed, for the ledger and the caller's receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestroyReport {
    /// The recording.
    pub recording: RecordingId,
    /// Segments whose data key was shredded.
    pub segments: usize,
    /// Object keys deleted from the store.
    pub object_keys: Vec<String>,
    /// Object keys that could not be deleted: they hold only ciphertext whose key is shredded.
    pub undeleted_objects: Vec<String>,
    /// Spool files deleted.
    pub spool_files: usize,
    /// Queued uploads cancelled.
    pub cancelled_uploads: usize,
}

/// The persistence layer: a cheap `Clone` handle over the syncer and uploader tasks it started.
#[derive(Debug, Clone)]
pub struct Persistence {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    keyring: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    config: PersistConfig,
    syncer: Arc<Syncer>,
    uploads: Uploads,
    /// What calls hold in memory while the spool cannot be written, and the spool's health.
    backlog: Backlog,
    /// Taken shared by whatever creates or finishes a segment (check "destroyed", write the row,
    /// queue the upload) and exclusively by `destroy_recording`, so a destroy never interleaves with
    /// a segment's last catalog write. An async lock: it is held across catalog calls.
    lifecycle: RwLock<()>,
    /// Serialises creating a recording's spool directory with removing it when empty. A std mutex:
    /// taken only inside blocking tasks, never across an `.await`.
    dirs: std::sync::Mutex<()>,
}

impl Persistence {
    /// Starts persistence: spawns the group-commit syncer and the uploader on `tracker`, both
    /// stopping on `shutdown` (the syncer after one last sync; pending uploads stay spooled and are
    /// found by [`recover`](Self::recover) at the next start). Call `recover` before serving.
    pub fn start(
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn ObjectStore>,
        keyring: Arc<Keyring>,
        clock: Arc<dyn Clock>,
        config: PersistConfig,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Self {
        let backlog = Backlog::default();
        let syncer = Arc::new(Syncer::new(Arc::clone(&backlog.health)));
        let inner = Arc::new(Inner {
            catalog,
            store,
            keyring,
            clock,
            syncer: Arc::clone(&syncer),
            uploads: Uploads::default(),
            backlog,
            lifecycle: RwLock::new(()),
            dirs: std::sync::Mutex::new(()),
            config,
        });
        tracker.spawn(syncer.run(inner.config.sync_interval, shutdown.child_token()));
        tracker.spawn(uploader::run(Arc::clone(&inner), shutdown.child_token()));
        tracker.spawn(backlog::run(Arc::clone(&inner), shutdown.child_token()));
        metrics::gauge!("callvault_spool_writable").set(1.0);
        Self { inner }
    }

    /// Start-up recovery, before serving: every `.part` left by a crash is made whole (its whole
    /// chunks kept, the last re-sealed as final), every sealed spool file is queued for upload, and
    /// a `crash_recovery` ledger entry says what was kept and lost. Recordings still `live` get an
    /// `interrupted` ledger entry and are left live, for the recorder to take back
    /// ([`RecoveryReport::interrupted`]).
    pub async fn recover(&self) -> Result<RecoveryReport, PersistError> {
        recover::run(&self.inner).await
    }

    /// Opens segment `segment` of `recording` (whose row is in the catalog): a fresh data key,
    /// wrapped with the keyring's active key, goes into a new `spooled` segment row before the spool
    /// file is created and its header synced. While the spool (or the catalog) cannot be written,
    /// both wait, and the segment holds its audio in memory (see [`OpenSegment`]).
    pub async fn open_segment(
        &self,
        recording: &RecordingRow,
        segment: SegmentNo,
        format: MediaFormat,
        media_start_ms: u64,
    ) -> Result<OpenSegment, PersistError> {
        let inner = &self.inner;
        let id = recording.id;
        let header = Header::new(
            id,
            segment,
            format.codec,
            format.channels,
            format.sample_rate,
            media_start_ms,
        )?
        .with_chunk_size(inner.config.chunk_size)?;
        let key = DataKey::generate();
        let wrapped = inner.keyring.wrap(&key, id, segment);
        let row = SegmentRow {
            recording_id: id,
            segment,
            object_key: vault::object_path(recording.started_at, id, segment).to_string(),
            kek_id: Some(wrapped.kek_id),
            wrapped_key: Some(wrapped.bytes),
            media_start_ms,
            media_end_ms: media_start_ms,
            size: 0,
            sha256: None,
            status: SegmentStatus::Spooled,
        };
        let _life = inner.lifecycle.read().await;
        if inner.uploads.is_destroyed(id) {
            return Err(PersistError::Destroyed(id));
        }
        let writer = SegmentWriter::new(header, &key);
        let seg = SegFile::new(
            Arc::clone(inner),
            row,
            key,
            *writer.header_bytes(),
            writer.header().sealed_chunk_len(),
        );
        let mut open = OpenSegment::new(seg, writer, format);
        if let Err(e) = open.create().await {
            if open.row_inserted() {
                // No audio exists yet: retire the row so that it holds no usable key.
                shred(&inner.catalog, open.row().clone()).await?;
            }
            return Err(e);
        }
        Ok(open)
    }

    /// Crypto-shreds and deletes everything of a recording: cancels its queued uploads (and refuses
    /// any later one), deletes its spool files, deletes its objects from the store, shreds every
    /// segment's data key and marks the segments `deleted`, and writes a `destroyed` ledger entry.
    ///
    /// Objects that cannot be deleted (the store is down) are listed in the report; their keys are
    /// shredded all the same, so they can never be decrypted.
    pub async fn destroy_recording(&self, id: RecordingId) -> Result<DestroyReport, PersistError> {
        let inner = &self.inner;
        let cancelled_uploads =
            inner.uploads.cancel_recording(id) + inner.backlog.cancel_recording(id);
        let _life = inner.lifecycle.write().await;
        // Wait out an upload in flight: its object then exists, and is deleted below.
        let _gate = inner.uploads.gate.lock().await;
        let recording = inner
            .catalog
            .recording(id)
            .await?
            .ok_or(PersistError::UnknownRecording(id))?;
        let spool_files = {
            let dir = spool::recording_dir(&inner.config.spool_dir, id);
            blocking(move || spool::remove_recording_dir(&dir)).await?
        };
        let segments = inner.catalog.segments(id).await?;
        let (object_keys, undeleted_objects) =
            delete_objects(&inner.store, &recording, &segments).await;
        let count = segments.len();
        for row in segments {
            shred(&inner.catalog, row).await?;
        }
        let report = DestroyReport {
            recording: id,
            segments: count,
            object_keys,
            undeleted_objects,
            spool_files,
            cancelled_uploads,
        };
        let details = serde_json::json!({
            "segments": report.segments,
            "object_keys": report.object_keys,
            "undeleted_objects": report.undeleted_objects,
            "spool_files": report.spool_files,
        });
        ledger(inner, id, "destroyed", details).await?;
        Ok(report)
    }

    /// Segments sealed but not yet uploaded, those whose close waits for the spool included (also
    /// the gauge `callvault_spool_pending_segments`).
    pub fn pending_uploads(&self) -> usize {
        self.inner.uploads.len()
    }

    /// Whether the spool takes writes, and why not (`/readyz`).
    pub fn health(&self) -> &SpoolHealth {
        &self.inner.backlog.health
    }

    /// Waits until no upload is pending, or `timeout` passes; true if none is.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.uploads.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// How many group commits and file syncs the syncer has done.
    pub fn sync_stats(&self) -> SyncStats {
        self.inner.syncer.stats()
    }
}

/// Deletes every object of a recording: those listed under its prefix and those its rows name.
/// Returns the keys deleted and those that could not be.
async fn delete_objects(
    store: &Arc<dyn ObjectStore>,
    recording: &RecordingRow,
    segments: &[SegmentRow],
) -> (Vec<String>, Vec<String>) {
    let prefix = vault::recording_prefix(recording.started_at, recording.id);
    let named: Vec<object_store::path::Path> = segments
        .iter()
        .map(|row| object_store::path::Path::from(row.object_key.as_str()))
        .collect();
    let done = vault::delete_objects(store, Some(&prefix), &named).await;
    (done.deleted, done.failed)
}

/// Shreds a segment's data key and marks it `deleted` (an `excised` segment stays so).
async fn shred(catalog: &Arc<dyn Catalog>, mut row: SegmentRow) -> Result<(), PersistError> {
    catalog
        .shred_segment_key(row.recording_id, row.segment)
        .await?;
    if row.status != SegmentStatus::Excised && row.status != SegmentStatus::Deleted {
        row.status = SegmentStatus::Deleted;
        catalog.update_segment(&row).await?;
    }
    Ok(())
}

/// Appends a ledger entry written by this module.
async fn ledger(
    inner: &Inner,
    recording: RecordingId,
    kind: &str,
    details: serde_json::Value,
) -> Result<(), PersistError> {
    inner
        .catalog
        .append_ledger(&NewLedgerEntry {
            recording_id: recording,
            at: inner.clock.now(),
            kind: kind.to_owned(),
            actor: ACTOR.to_owned(),
            reason: None,
            details: details.to_string(),
        })
        .await?;
    Ok(())
}

/// Milliseconds of audio in `bytes` of plaintext with this header, rounded up.
fn duration_ms(header: &Header, bytes: u64) -> u64 {
    let ms = (u128::from(bytes) * 1000).div_ceil(u128::from(header.bytes_per_second().max(1)));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
