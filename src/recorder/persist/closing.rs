//! Finishing a closing segment: its last writes, the commit (or re-seal) of its spool file, its row
//! and its upload, each step done once, at its close or, while the spool cannot be written, by the
//! drainer ([`super::backlog`]).

use std::sync::Arc;

use sha2::Digest;

use super::backlog::{Cause, LossRun};
use super::spool::{self, Resealed, blocking};
use super::writeback::{SegFile, WriteError};
use super::{Inner, PersistError, duration_ms, ledger};
use crate::catalog::SegmentRow;
use crate::domain::{RecordingId, SegmentNo};
use crate::vault::{Header, VaultError};

/// Finishes a closing segment now, or hands it to the drainer while the spool cannot be written.
pub(super) async fn finish_or_defer(mut d: Deferred) -> Result<(), PersistError> {
    let inner = Arc::clone(&d.seg.inner);
    match d.complete().await {
        Ok(()) => Ok(()),
        Err(WriteError::Stalled(cause)) => {
            inner.backlog.health.failed(&cause);
            inner.defer(d);
            Ok(())
        }
        Err(WriteError::Fatal(e)) => Err(e),
    }
}

/// How a closing segment is finished.
pub(super) enum How {
    /// Everything accepted is written (the final chunk last), then the `.part` is committed.
    Commit { committed: bool },
    /// The `.part` is cut to `keep_len` bytes and re-sealed, with a ledger entry `kind`.
    Reseal {
        keep_len: u64,
        kind: &'static str,
        details: serde_json::Value,
        accepted: u64,
        dropped_key: &'static str,
        resealed: Option<Box<Resealed>>,
        ledgered: bool,
    },
}

/// A segment being finished: by its close at once, or later by the drainer. Each step is done
/// once, so a retry after a stall picks up where it stopped.
pub(super) struct Deferred {
    seg: SegFile,
    media_end_ms: u64,
    how: How,
}

impl Deferred {
    pub fn new(seg: SegFile, media_end_ms: u64, how: How) -> Self {
        Self {
            seg,
            media_end_ms,
            how,
        }
    }

    pub fn recording(&self) -> RecordingId {
        self.seg.recording()
    }

    pub fn segment(&self) -> SegmentNo {
        self.seg.row.segment
    }

    /// Sealed bytes still held in memory.
    pub fn backlog_bytes(&self) -> u64 {
        self.seg.backlog_bytes
    }

    /// The audio this closing segment holds only in memory, as a loss (for a shutdown that comes
    /// before the spool takes writes again: what is on disk is recovered at the next start).
    pub fn unwritten(&self, cause: Cause) -> Option<LossRun> {
        if !matches!(self.how, How::Commit { committed: false }) {
            return None;
        }
        let header = Header::decode(&self.seg.header_bytes).ok()?;
        let on_disk = self.seg.on_disk * u64::from(header.chunk_size());
        let ms = u128::from(on_disk) * 1000 / u128::from(header.bytes_per_second().max(1));
        let start = self.seg.row.media_start_ms + u64::try_from(ms).unwrap_or(u64::MAX);
        (self.media_end_ms > start).then(|| LossRun {
            segment: self.segment(),
            start_ms: start,
            end_ms: self.media_end_ms,
            cause,
        })
    }

    /// Writes, commits (or re-seals), records the row and queues the upload.
    pub async fn complete(&mut self) -> Result<(), WriteError> {
        let inner = Arc::clone(&self.seg.inner);
        let _life = inner.lifecycle.read().await;
        let id = self.recording();
        if inner.uploads.is_destroyed(id) {
            return Err(WriteError::Fatal(PersistError::Destroyed(id)));
        }
        let seg = &mut self.seg;
        let (end, size, sha256) = match &mut self.how {
            How::Commit { committed } => {
                if !*committed {
                    seg.write_pending().await?;
                    seg.commit().await?;
                    *committed = true;
                }
                let sha = seg.hasher.clone().finalize().into();
                (self.media_end_ms, seg.written, sha)
            }
            How::Reseal {
                keep_len,
                kind,
                details,
                accepted,
                dropped_key,
                resealed,
                ledgered,
            } => {
                if resealed.is_none() {
                    // a segment whose file was never created gets one now, empty
                    seg.write_pending().await?;
                    let part = seg
                        .file
                        .as_ref()
                        .map(|f| f.path.clone())
                        .expect("write_pending created the file");
                    let sealed = spool::sealed_path(&inner.config.spool_dir, id, seg.row.segment);
                    let key = seg.key.clone();
                    let keep = Some(*keep_len);
                    let done = blocking(move || spool::reseal(&part, &sealed, &key, keep))
                        .await?
                        .ok_or(PersistError::Vault(VaultError::BadHeader {
                            reason: "spool file header is unreadable",
                        }))?;
                    *resealed = Some(Box::new(done));
                }
                let r = resealed.as_ref().expect("resealed above");
                let kept = r.recovered.plaintext_len;
                if !*ledgered {
                    let mut details = details.clone();
                    details["kept_bytes"] = kept.into();
                    details[*dropped_key] = accepted.saturating_sub(kept).into();
                    ledger(&inner, id, kind, details)
                        .await
                        .map_err(WriteError::from)?;
                    *ledgered = true;
                }
                let end = self
                    .media_end_ms
                    .min(seg.row.media_start_ms + duration_ms(&r.recovered.header, kept));
                (end, r.recovered.bytes.len() as u64, r.sha256)
            }
        };
        finish(&inner, seg.row.clone(), end, size, sha256)
            .await
            .map_err(WriteError::from)?;
        seg.set_held(0);
        Ok(())
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
