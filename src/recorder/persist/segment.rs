//! [`OpenSegment`]: the segment a call task is writing, from its first chunk to its sealed file.

use std::fmt;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};

use super::spool::{self, Resealed, SpoolFile, blocking};
use super::{Inner, PersistError, duration_ms, ledger, shred};
use crate::catalog::SegmentRow;
use crate::domain::{MediaFormat, RecordingId, SegmentNo};
use crate::vault::container::HEADER_LEN;
use crate::vault::{DataKey, SegmentWriter, VaultError};

/// A segment being written, owned by one call task.
///
/// Dropping it without [`close`](Self::close), [`cut_back`](Self::cut_back) or
/// [`destroy`](Self::destroy) is like a crash: the `.part` stays on the spool, and the next
/// [`Persistence::recover`](super::Persistence::recover) keeps its synced whole chunks.
pub struct OpenSegment {
    inner: Arc<Inner>,
    row: SegmentRow,
    writer: SegmentWriter,
    key: DataKey,
    file: Arc<SpoolFile>,
    format: MediaFormat,
    /// Bytes of the spool file written without error: the header and `on_disk` whole chunks.
    written: u64,
    /// Whole sealed chunks written to the spool file.
    on_disk: u64,
    /// SHA-256 of the spool file so far.
    hasher: Sha256,
    /// A write failed: the writer's chunk counter is ahead of the file.
    failed: bool,
}

impl fmt::Debug for OpenSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenSegment")
            .field("recording", &self.row.recording_id)
            .field("segment", &self.row.segment)
            .field("format", &self.format)
            .field("plaintext_len", &self.writer.plaintext_len())
            .field("sealed_chunks", &self.on_disk)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl OpenSegment {
    pub(super) fn new(
        inner: Arc<Inner>,
        row: SegmentRow,
        writer: SegmentWriter,
        key: DataKey,
        file: Arc<SpoolFile>,
        format: MediaFormat,
    ) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(writer.header_bytes());
        Self {
            inner,
            row,
            writer,
            key,
            file,
            format,
            written: HEADER_LEN as u64,
            on_disk: 0,
            hasher,
            failed: false,
        }
    }

    /// The recording.
    pub fn recording(&self) -> RecordingId {
        self.row.recording_id
    }

    /// The segment number.
    pub fn segment(&self) -> SegmentNo {
        self.row.segment
    }

    /// Plaintext bytes accepted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.writer.plaintext_len()
    }

    /// Whole chunks written to the spool.
    pub fn sealed_chunks(&self) -> u64 {
        self.on_disk
    }

    /// Appends plaintext: every chunk it fills is sealed and appended to the spool file, and the
    /// file is registered with the group-commit syncer (durable within one sync interval). The
    /// rest waits in memory, wiped on drop. Plaintext never touches the disk.
    ///
    /// After [`PersistError::SegmentFailed`] or [`PersistError::Destroyed`] the segment takes no
    /// more audio; close (or drop) it.
    pub async fn append(&mut self, plaintext: &[u8]) -> Result<(), PersistError> {
        self.check()?;
        let sealed = self.writer.append(plaintext)?;
        if sealed.is_empty() {
            return Ok(());
        }
        let stride = self.writer.header().sealed_chunk_len();
        let chunks = sealed.len() as u64 / stride;
        let file = Arc::clone(&self.file);
        let offset = self.written;
        let written = blocking(move || {
            file.file
                .write_all_at(&sealed, offset)
                .map_err(PersistError::io(&file.path))?;
            Ok(sealed)
        })
        .await;
        match written {
            Ok(sealed) => {
                self.hasher.update(&sealed);
                self.written += sealed.len() as u64;
                self.on_disk += chunks;
                self.inner.syncer.register(&self.file);
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    fn check(&self) -> Result<(), PersistError> {
        if self.inner.uploads.is_destroyed(self.row.recording_id) {
            return Err(PersistError::Destroyed(self.row.recording_id));
        }
        if self.is_failed() {
            return Err(PersistError::SegmentFailed {
                recording: self.row.recording_id,
                segment: self.row.segment,
            });
        }
        Ok(())
    }

    fn is_failed(&self) -> bool {
        self.failed || self.file.failed.load(Ordering::Acquire)
    }

    /// Seals the final chunk, syncs the file and renames `.part` to `.cva`, updates the segment row
    /// (media end, size, SHA-256) and queues the upload.
    ///
    /// If a write or sync of this segment failed before, what reached the disk intact is kept
    /// instead (as [`Persistence::recover`](super::Persistence::recover) would), with a
    /// `spool_fault` ledger entry.
    pub async fn close(self, media_end_ms: u64) -> Result<(), PersistError> {
        let inner = Arc::clone(&self.inner);
        let _life = inner.lifecycle.read().await;
        let id = self.row.recording_id;
        if inner.uploads.is_destroyed(id) {
            return Err(PersistError::Destroyed(id));
        }
        if self.is_failed() {
            return self.salvage(media_end_ms).await;
        }
        let OpenSegment {
            row,
            writer,
            file,
            mut hasher,
            written,
            ..
        } = self;
        let last = writer.seal();
        hasher.update(&last);
        let size = written + last.len() as u64;
        let sealed = spool::sealed_path(&inner.config.spool_dir, id, row.segment);
        let committed = {
            let (file, sealed) = (Arc::clone(&file), sealed.clone());
            blocking(move || {
                file.file
                    .write_all_at(&last, written)
                    .map_err(PersistError::io(&file.path))?;
                spool::commit_part(&file.file, &file.path, &sealed)
            })
            .await
        };
        if let Err(e) = committed {
            // Nothing was renamed: the `.part` is left for the next start's recovery.
            file.failed.store(true, Ordering::Release);
            return Err(e);
        }
        finish(&inner, row, media_end_ms, size, hasher.finalize().into()).await
    }

    /// Cuts the segment back for a card-payment pause found too late: drops the buffered partial
    /// chunk, truncates the spool file to the header and `keep_chunks` whole chunks (synced first,
    /// so the cut audio leaves the disk before anything else), re-seals the last kept chunk as final,
    /// then finishes as [`close`](Self::close), with a `cut_back` ledger entry (chunks kept, bytes
    /// dropped). `media_end_ms` is clamped to the end of the kept audio.
    ///
    /// No nonce is reused: the re-sealed chunk carries the last-chunk flag, which no chunk of this
    /// segment used before, and the segment takes no more audio. `keep_chunks` past the chunks on
    /// the spool keeps them all. `keep_chunks = 0` leaves an empty segment (the header and an empty
    /// final chunk), stored like any other: the segment numbers stay dense and the ledger and the
    /// media range say that nothing of it was kept.
    pub async fn cut_back(self, keep_chunks: u64, media_end_ms: u64) -> Result<(), PersistError> {
        let inner = Arc::clone(&self.inner);
        let _life = inner.lifecycle.read().await;
        let id = self.row.recording_id;
        if inner.uploads.is_destroyed(id) {
            return Err(PersistError::Destroyed(id));
        }
        let keep = keep_chunks.min(self.on_disk);
        let accepted = self.writer.plaintext_len();
        let (row, resealed) = self.reseal(keep).await?;
        let kept = resealed.recovered.plaintext_len;
        let details = serde_json::json!({
            "segment": row.segment.0,
            "requested_chunks": keep_chunks,
            "kept_chunks": keep,
            "kept_bytes": kept,
            "dropped_bytes": accepted.saturating_sub(kept),
        });
        ledger(&inner, id, "cut_back", details).await?;
        let end =
            media_end_ms.min(row.media_start_ms + duration_ms(&resealed.recovered.header, kept));
        let size = resealed.recovered.bytes.len() as u64;
        finish(&inner, row, end, size, resealed.sha256).await
    }

    /// Closes a segment whose spool writes failed: keeps the whole chunks on disk that authenticate.
    async fn salvage(self, media_end_ms: u64) -> Result<(), PersistError> {
        let inner = Arc::clone(&self.inner);
        let id = self.row.recording_id;
        let accepted = self.writer.plaintext_len();
        let keep = self.on_disk;
        let (row, resealed) = self.reseal(keep).await?;
        let kept = resealed.recovered.plaintext_len;
        let details = serde_json::json!({
            "segment": row.segment.0,
            "kept_bytes": kept,
            "lost_bytes": accepted.saturating_sub(kept),
        });
        ledger(&inner, id, "spool_fault", details).await?;
        let end =
            media_end_ms.min(row.media_start_ms + duration_ms(&resealed.recovered.header, kept));
        let size = resealed.recovered.bytes.len() as u64;
        finish(&inner, row, end, size, resealed.sha256).await
    }

    /// Truncates the `.part` to `keep` whole chunks and re-seals it as the `.cva`.
    async fn reseal(self, keep: u64) -> Result<(SegmentRow, Resealed), PersistError> {
        let OpenSegment {
            inner,
            row,
            writer,
            key,
            file,
            ..
        } = self;
        let keep_len = writer.header().chunk_offset(keep);
        // Wipes the buffered partial chunk now.
        drop(writer);
        let part = file.path.clone();
        drop(file);
        let sealed = spool::sealed_path(&inner.config.spool_dir, row.recording_id, row.segment);
        let resealed =
            blocking(move || spool::reseal(&part, &sealed, &key, Some(keep_len))).await?;
        let resealed = resealed.ok_or(PersistError::Vault(VaultError::BadHeader {
            reason: "spool file header is unreadable",
        }))?;
        Ok((row, resealed))
    }

    /// Drops everything of this segment (the caller refused recording): deletes the spool file and
    /// shreds the data key; the row is marked `deleted`.
    pub async fn destroy(self) -> Result<(), PersistError> {
        let OpenSegment {
            inner, row, file, ..
        } = self;
        let _life = inner.lifecycle.read().await;
        let part = file.path.clone();
        drop(file);
        {
            let inner = Arc::clone(&inner);
            blocking(move || {
                spool::remove_file(&part)?;
                let _dirs = inner
                    .dirs
                    .lock()
                    .expect("the spool directory lock is never poisoned: no panics while held");
                spool::remove_dir_if_empty(spool::parent(&part))
            })
            .await?;
        }
        shred(&inner.catalog, row).await
    }
}

/// Records a sealed segment in its row and queues its upload. The caller holds the lifecycle lock.
async fn finish(
    inner: &Arc<Inner>,
    mut row: SegmentRow,
    media_end_ms: u64,
    size: u64,
    sha256: [u8; 32],
) -> Result<(), PersistError> {
    row.media_end_ms = media_end_ms.max(row.media_start_ms);
    row.size = size;
    row.sha256 = Some(sha256);
    inner.catalog.update_segment(&row).await?;
    let sealed = spool::sealed_path(&inner.config.spool_dir, row.recording_id, row.segment);
    inner.uploads.enqueue(row.recording_id, row.segment, sealed);
    Ok(())
}
