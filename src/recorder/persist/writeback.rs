//! [`SegFile`]: the write side of one segment: its catalog row, its spool file, and the sealed
//! chunks that wait in memory while the spool cannot be written (the backlog).
//!
//! An open segment and a segment whose close waits for the spool ([`super::backlog`]) share it.
//! Writes are positional (`pwrite` at the file's known length), so a write that failed half-way is
//! simply redone at the same offset: the file never holds a chunk out of order.

use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::backlog::Cause;
use super::spool::{self, SpoolFile, blocking};
use super::{Inner, PersistError};
use crate::catalog::{CatalogError, SegmentRow};
use crate::domain::RecordingId;
use crate::vault::DataKey;
use crate::vault::container::HEADER_LEN;

/// Why the backlog could not be written.
#[derive(Debug)]
pub(super) enum WriteError {
    /// The spool (or the catalog) cannot take writes now; what is held stays held and is tried
    /// again.
    Stalled(Cause),
    /// Anything else: the segment cannot go on.
    Fatal(PersistError),
}

impl From<PersistError> for WriteError {
    fn from(e: PersistError) -> Self {
        match &e {
            PersistError::Io { source, .. } => WriteError::Stalled(Cause::from_io(source)),
            PersistError::Catalog(c @ CatalogError::Backend(_)) => {
                WriteError::Stalled(Cause::from_catalog(c))
            }
            _ => WriteError::Fatal(e),
        }
    }
}

/// The write side of a segment.
pub(super) struct SegFile {
    pub inner: Arc<Inner>,
    pub row: SegmentRow,
    /// Whether `row` is in the catalog: its insert waits, like the file, while writes fail.
    pub row_inserted: bool,
    /// The row's media start changed after it was inserted (the segment began after audio dropped
    /// at its start): the catalog is updated before the file is created.
    pub row_stale: bool,
    pub key: DataKey,
    pub header_bytes: [u8; HEADER_LEN],
    /// Bytes of one sealed whole chunk.
    pub stride: u64,
    /// The spool file, once created.
    pub file: Option<Arc<SpoolFile>>,
    /// Bytes of the spool file written without error: the header and `on_disk` whole chunks.
    pub written: u64,
    /// Whole sealed chunks in the spool file.
    pub on_disk: u64,
    /// SHA-256 of the spool file so far.
    pub hasher: Sha256,
    /// Sealed bytes not yet written, in order.
    pub backlog: VecDeque<Vec<u8>>,
    /// Sealed bytes in `backlog`.
    pub backlog_bytes: u64,
    /// Plaintext bytes this segment holds in memory, as counted in its recording's total.
    held: u64,
    /// The last time the backlog was tried.
    pub last_try: Option<Instant>,
}

impl SegFile {
    pub fn new(
        inner: Arc<Inner>,
        row: SegmentRow,
        key: DataKey,
        header_bytes: [u8; HEADER_LEN],
        stride: u64,
    ) -> Self {
        Self {
            inner,
            row,
            row_inserted: false,
            row_stale: false,
            key,
            header_bytes,
            stride,
            file: None,
            written: HEADER_LEN as u64,
            on_disk: 0,
            hasher: Sha256::new(),
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            held: 0,
            last_try: None,
        }
    }

    pub fn recording(&self) -> RecordingId {
        self.row.recording_id
    }

    /// Whether anything waits to be written (the row, the file, or sealed chunks).
    pub fn pending(&self) -> bool {
        !self.row_inserted || self.row_stale || self.file.is_none() || !self.backlog.is_empty()
    }

    /// Queues sealed bytes behind any already waiting.
    pub fn push(&mut self, sealed: Vec<u8>) {
        if !sealed.is_empty() {
            self.backlog_bytes += sealed.len() as u64;
            self.backlog.push_back(sealed);
        }
    }

    /// Sets the plaintext bytes this segment holds in memory (its recording's total follows).
    pub fn set_held(&mut self, bytes: u64) {
        if bytes != self.held {
            self.inner
                .backlog
                .adjust_held(self.recording(), self.held, bytes);
            self.held = bytes;
        }
    }

    /// Whether a write should be tried now: always while the spool is healthy, otherwise once
    /// per `spool_retry`.
    pub fn due(&self) -> bool {
        self.inner.backlog.health.is_writable()
            || self
                .last_try
                .is_none_or(|t| t.elapsed() >= self.inner.config.spool_retry)
    }

    /// Writes what waits: the row, the file with its header, then the backlog in order. The
    /// caller holds the lifecycle lock (shared) and has checked that the recording was not
    /// destroyed. A success tells the spool's health that writes work.
    pub async fn write_pending(&mut self) -> Result<(), WriteError> {
        self.last_try = Some(Instant::now());
        let inner = Arc::clone(&self.inner);
        if !self.pending() {
            return Ok(());
        }
        if !self.row_inserted {
            inner
                .catalog
                .insert_segment(&self.row)
                .await
                .map_err(PersistError::from)?;
            self.row_inserted = true;
            self.row_stale = false;
        } else if self.row_stale {
            inner
                .catalog
                .update_segment(&self.row)
                .await
                .map_err(PersistError::from)?;
            self.row_stale = false;
        }
        let file = match &self.file {
            Some(file) => Arc::clone(file),
            None => {
                let part =
                    spool::part_path(&inner.config.spool_dir, self.recording(), self.row.segment);
                let header = self.header_bytes;
                let created = {
                    let inner = Arc::clone(&inner);
                    let part = part.clone();
                    blocking(move || {
                        let _dirs = inner.dirs.lock().expect(
                            "the spool directory lock is never poisoned: no panics while held",
                        );
                        spool::create_part(&inner.config.spool_dir, &part, &header)
                    })
                    .await
                };
                let file = Arc::new(SpoolFile::new(created?, part));
                self.hasher.update(self.header_bytes);
                self.file = Some(Arc::clone(&file));
                file
            }
        };
        if !self.backlog.is_empty() {
            let bufs: Vec<Vec<u8>> = self.backlog.drain(..).collect();
            let offset = self.written;
            let (bufs, done, error) = {
                let file = Arc::clone(&file);
                blocking(move || {
                    let mut offset = offset;
                    for (i, buf) in bufs.iter().enumerate() {
                        if let Err(e) = file.file.write_all_at(buf, offset) {
                            return Ok((bufs, i, Some(PersistError::io(&file.path)(e))));
                        }
                        offset += buf.len() as u64;
                    }
                    let n = bufs.len();
                    Ok((bufs, n, None))
                })
                .await?
            };
            let stride = self.stride.max(1);
            let chunks_before = self.on_disk;
            for (i, buf) in bufs.into_iter().enumerate() {
                if i < done {
                    self.hasher.update(&buf);
                    self.written += buf.len() as u64;
                    self.backlog_bytes -= buf.len() as u64;
                    self.on_disk += buf.len() as u64 / stride;
                } else {
                    self.backlog.push_back(buf);
                }
            }
            // whole chunks wait for the group commit; a final chunk is synced by its commit
            if self.on_disk > chunks_before {
                inner.syncer.register(&file);
            }
            if let Some(e) = error {
                return Err(e.into());
            }
        }
        inner.backlog.health.writable();
        Ok(())
    }

    /// Whether the syncer found this file's data unsafe.
    pub fn sync_failed(&self) -> bool {
        self.file
            .as_ref()
            .is_some_and(|f| f.failed.load(Ordering::Acquire))
    }

    /// Syncs the complete `.part` and renames it to `.cva` (every byte, the final chunk included,
    /// is written). The caller holds the lifecycle lock.
    pub async fn commit(&mut self) -> Result<(), WriteError> {
        let file = self
            .file
            .clone()
            .expect("commit follows a successful write_pending, which created the file");
        let sealed = spool::sealed_path(
            &self.inner.config.spool_dir,
            self.recording(),
            self.row.segment,
        );
        blocking(move || spool::commit_part(&file.file, &file.path, &sealed)).await?;
        Ok(())
    }
}

impl Drop for SegFile {
    fn drop(&mut self) {
        self.set_held(0);
    }
}
