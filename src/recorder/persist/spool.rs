//! The spool on local disk: its file names, the blocking file operations on it, and the
//! group-commit [`Syncer`].
//!
//! Every function here but [`blocking`] and the syncer's loop blocks: call them inside
//! [`blocking`]. Only sealed bytes are written; nothing here sees plaintext or a key, except
//! [`reseal`], which hands the data key to [`vault::recover_partial`].

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::PersistError;
use super::backlog::{Cause, SpoolHealth};
use crate::domain::{RecordingId, SegmentNo};
use crate::vault::container::HEADER_LEN;
use crate::vault::layout::{OBJECT_EXT, SPOOL_EXT};
use crate::vault::{self, DataKey, Recovered, VaultError};

/// Runs blocking file work on tokio's blocking pool. A panic in it resumes here.
pub(super) async fn blocking<T, F>(f: F) -> Result<T, PersistError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, PersistError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(PersistError::ShuttingDown),
    }
}

/// The spool directory of a recording.
pub(super) fn recording_dir(spool_dir: &Path, recording: RecordingId) -> PathBuf {
    spool_dir.join(recording.to_string())
}

/// The file of a segment being written.
pub(super) fn part_path(spool_dir: &Path, recording: RecordingId, segment: SegmentNo) -> PathBuf {
    recording_dir(spool_dir, recording).join(format!("{segment}{SPOOL_EXT}"))
}

/// The file of a sealed segment waiting for upload.
pub(super) fn sealed_path(spool_dir: &Path, recording: RecordingId, segment: SegmentNo) -> PathBuf {
    recording_dir(spool_dir, recording).join(format!("{segment}{OBJECT_EXT}"))
}

/// Syncs a directory, so that entries created, renamed or removed in it survive a power cut.
pub(super) fn sync_dir(dir: &Path) -> Result<(), PersistError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(PersistError::io(dir))
}

pub(super) fn parent(path: &Path) -> &Path {
    path.parent()
        .expect("a spool file path always has its recording directory as parent")
}

/// Creates a segment's `.part` file with its header, synced, and syncs the directory entries. A
/// file whose header could not be written is removed again.
pub(super) fn create_part(
    spool_dir: &Path,
    part: &Path,
    header: &[u8],
) -> Result<File, PersistError> {
    let dir = parent(part);
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(PersistError::io(dir))?;
        sync_dir(spool_dir)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(part)
        .map_err(PersistError::io(part))?;
    let written = file
        .write_all_at(header, 0)
        .and_then(|()| file.sync_data())
        .map_err(PersistError::io(part))
        .and_then(|()| sync_dir(dir));
    if let Err(e) = written {
        // a disk too full for the header: the next try creates the file afresh
        drop(file);
        if let Err(removed) = std::fs::remove_file(part) {
            debug!(path = %part.display(), error = %removed, "cannot remove a spool file whose header failed");
        }
        return Err(e);
    }
    Ok(file)
}

/// Commits a complete `.part` file: syncs it and renames it to `.cva` (the commit point).
pub(super) fn commit_part(file: &File, part: &Path, sealed: &Path) -> Result<(), PersistError> {
    file.sync_data().map_err(PersistError::io(part))?;
    std::fs::rename(part, sealed).map_err(PersistError::io(part))?;
    sync_dir(parent(part))
}

/// A `.part` made whole as a `.cva`, with what was lost.
#[derive(Debug)]
pub(super) struct Resealed {
    /// What the vault recovered (the container bytes, plaintext length, bytes lost).
    pub recovered: Recovered,
    /// SHA-256 of the `.cva` file.
    pub sha256: [u8; 32],
}

/// Makes a `.part` file whole: cuts it to `keep_len` bytes first if asked (synced, so that what is
/// cut is gone from the disk before anything else happens), keeps its whole chunks, re-seals the
/// last as final ([`vault::recover_partial`]), writes the result as the `.cva` beside it (synced),
/// and only then removes the `.part`. A crash at any point leaves the `.part`, and a `.cva` beside a
/// `.part` is incomplete by this rule (see `recover`).
///
/// A `.part` whose first chunk does not authenticate (torn in the first write) keeps only its
/// header: an empty segment. `None` if the header itself is unreadable: the file holds no audio.
pub(super) fn reseal(
    part: &Path,
    sealed: &Path,
    key: &DataKey,
    keep_len: Option<u64>,
) -> Result<Option<Resealed>, PersistError> {
    if let Some(len) = keep_len {
        let file = OpenOptions::new()
            .write(true)
            .open(part)
            .map_err(PersistError::io(part))?;
        // Never lengthen: that would append zeros, not audio.
        file.metadata()
            .and_then(|m| file.set_len(len.min(m.len())))
            .and_then(|()| file.sync_data())
            .map_err(PersistError::io(part))?;
    }
    let bytes = std::fs::read(part).map_err(PersistError::io(part))?;
    let recovered = match vault::recover_partial(&bytes, key) {
        Ok(r) => r,
        Err(VaultError::Authentication { chunk: 0 }) => {
            let mut r = vault::recover_partial(&bytes[..HEADER_LEN], key)?;
            r.lost_bytes = (bytes.len() - HEADER_LEN) as u64;
            r
        }
        Err(VaultError::BadHeader { .. } | VaultError::UnsupportedVersion(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut out = File::create(sealed).map_err(PersistError::io(sealed))?;
    out.write_all(&recovered.bytes)
        .and_then(|()| out.sync_all())
        .map_err(PersistError::io(sealed))?;
    sync_dir(parent(sealed))?;
    std::fs::remove_file(part).map_err(PersistError::io(part))?;
    sync_dir(parent(part))?;
    let sha256 = Sha256::digest(&recovered.bytes).into();
    Ok(Some(Resealed { recovered, sha256 }))
}

/// Removes a spool file; one already gone is fine.
pub(super) fn remove_file(path: &Path) -> Result<(), PersistError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PersistError::io(path)(e)),
    }
}

/// Removes a recording's spool directory if it is empty. The caller holds the directory lock.
pub(super) fn remove_dir_if_empty(dir: &Path) -> Result<(), PersistError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(PersistError::io(dir)(e)),
    }
}

/// Removes a recording's spool directory and everything in it; returns how many files it held.
pub(super) fn remove_recording_dir(dir: &Path) -> Result<usize, PersistError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(PersistError::io(dir)(e)),
    };
    let mut files = 0;
    for entry in entries {
        let path = entry.map_err(PersistError::io(dir))?.path();
        remove_file(&path)?;
        files += 1;
    }
    remove_dir_if_empty(dir)?;
    if let Some(spool) = dir.parent() {
        sync_dir(spool)?;
    }
    Ok(files)
}

/// An open spool file, shared by its segment and the syncer.
#[derive(Debug)]
pub(super) struct SpoolFile {
    pub file: File,
    pub path: PathBuf,
    /// Set when a sync of this file failed: what was written since the last good sync may be lost.
    pub failed: AtomicBool,
}

impl SpoolFile {
    pub fn new(file: File, path: PathBuf) -> Self {
        Self {
            file,
            path,
            failed: AtomicBool::new(false),
        }
    }

    fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }
}

/// How many group commits the syncer has done, and how many file syncs they took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncStats {
    /// Rounds that synced at least one file.
    pub rounds: u64,
    /// Files synced (each by `fdatasync`, or together by one `syncfs`), over all rounds.
    pub file_syncs: u64,
    /// Appends registered with the syncer (each one is a write of one or more sealed chunks).
    pub appends: u64,
}

/// Dirty files in a round from which the syncer syncs the whole filesystem instead of each file.
const SYNCFS_FROM: usize = 16;

/// The group-commit syncer: spool writes register their file, and every interval one blocking task
/// syncs each dirty file once, however many calls and appends dirtied it; past [`SYNCFS_FROM`] files
/// it syncs their filesystem once instead (`syncfs`), so thousands of live calls cost one journal
/// commit a round rather than thousands.
#[derive(Debug)]
pub(super) struct Syncer {
    /// Told of a failed sync: it logs the episode once, not every file of every round.
    pub health: Arc<SpoolHealth>,
    // A std mutex: held only to insert or take the set, never across an `.await`.
    dirty: Mutex<HashMap<usize, Arc<SpoolFile>>>,
    rounds: AtomicU64,
    file_syncs: AtomicU64,
    appends: AtomicU64,
}

impl Syncer {
    pub fn new(health: Arc<SpoolHealth>) -> Self {
        Self {
            health,
            dirty: Mutex::default(),
            rounds: AtomicU64::new(0),
            file_syncs: AtomicU64::new(0),
            appends: AtomicU64::new(0),
        }
    }

    /// Marks a file as written since its last sync.
    pub fn register(&self, file: &Arc<SpoolFile>) {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.dirty
            .lock()
            .expect("the dirty set lock is never poisoned: no panics while held")
            .insert(file.key(), Arc::clone(file));
    }

    pub fn stats(&self) -> SyncStats {
        SyncStats {
            rounds: self.rounds.load(Ordering::Relaxed),
            file_syncs: self.file_syncs.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
        }
    }

    /// Syncs every `interval` until `shutdown`, then once more.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => self.round().await,
            }
        }
        self.round().await;
    }

    /// One group commit.
    async fn round(&self) {
        let files: Vec<Arc<SpoolFile>> = {
            let mut dirty = self
                .dirty
                .lock()
                .expect("the dirty set lock is never poisoned: no panics while held");
            dirty.drain().map(|(_, f)| f).collect()
        };
        if files.is_empty() {
            return;
        }
        let n = files.len() as u64;
        let synced = blocking(move || {
            if files.len() >= SYNCFS_FROM {
                // one sync of the spool's filesystem, one journal commit, instead of one per file;
                // it reports writeback errors of the whole filesystem (Linux 5.8 and later), so a
                // failure marks every file of the round
                if let Err(error) = rustix::fs::syncfs(&files[0].file) {
                    for f in &files {
                        f.failed.store(true, Ordering::Release);
                    }
                    debug!(%error, files = files.len(), "spool filesystem sync failed; its segments are salvaged at close");
                    return Ok(Some(Cause::from_io(&error.into())));
                }
                return Ok(None);
            }
            let mut cause = None;
            for f in &files {
                if let Err(error) = f.file.sync_data() {
                    // Linux may drop the dirty pages after a failed fdatasync: the segment must not
                    // go on as if its audio were safe. Its next append or close sees the flag.
                    f.failed.store(true, Ordering::Release);
                    debug!(path = %f.path.display(), %error, "spool sync failed; segment is salvaged at close");
                    cause = Some(Cause::from_io(&error));
                }
            }
            Ok(cause)
        })
        .await;
        if let Ok(Some(cause)) = &synced {
            // salvaged segments write a `spool_fault` ledger entry each; the log says it once
            self.health.failed(cause);
        }
        if synced.is_ok() {
            self.rounds.fetch_add(1, Ordering::Relaxed);
            self.file_syncs.fetch_add(n, Ordering::Relaxed);
            metrics::counter!("callvault_spool_syncs_total").increment(n);
        }
    }
}
