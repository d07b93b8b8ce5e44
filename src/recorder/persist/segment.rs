//! [`OpenSegment`]: the segment a call task is writing, from its first chunk to its close (which
//! [`super::closing`] finishes, at once or once the spool takes writes again).

use std::fmt;
use std::sync::Arc;

use super::backlog::{Cause, LossRun};
use super::closing::{Deferred, How, finish_or_defer};
use super::spool::{self, blocking};
use super::writeback::{SegFile, WriteError};
use super::{Inner, PersistError, shred};
use crate::catalog::SegmentRow;
use crate::domain::{MediaFormat, RecordingId, SegmentNo};
use crate::vault::{Header, SegmentWriter};

/// Whether a segment is taking audio, and what it dropped while the spool could not be written.
#[derive(Debug)]
enum Mode {
    /// Taking audio (written at once, or held in memory within the call's bound).
    Normal,
    /// Dropping audio before any was taken: the segment begins where dropping ends.
    Leading(LossRun),
    /// Dropping audio after some was taken.
    Tail(LossRun),
    /// The spool took writes again after `Tail`: the segment takes no more audio, and what follows
    /// goes into a new one (the media timeline of a segment has no holes).
    Ended(LossRun),
}

/// A segment being written, owned by one call task.
///
/// While the spool cannot be written (a full disk, an I/O error), its sealed chunks wait in memory,
/// up to `recorder.spool_backlog` of audio for the whole call, and are written in order when writes
/// work again; `append` keeps returning `Ok` meanwhile. Past the bound its audio is dropped, and the
/// ledger gets an `audio_lost` entry (start, length, cause). When the spool takes writes again after
/// audio was dropped, `append` returns [`PersistError::SpoolResumed`] once: close this segment and
/// open the next where the audio continues.
///
/// Dropping it without [`close`](Self::close), [`cut_back`](Self::cut_back) or
/// [`destroy`](Self::destroy) is like a crash: the `.part` stays on the spool, and the next
/// [`Persistence::recover`](super::Persistence::recover) keeps its synced whole chunks.
pub struct OpenSegment {
    seg: SegFile,
    writer: SegmentWriter,
    format: MediaFormat,
    mode: Mode,
    /// A write of this segment failed in a way retrying cannot mend (the syncer lost data, or an
    /// error other than the spool's): the segment accepts no more audio.
    failed: bool,
}

impl fmt::Debug for OpenSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenSegment")
            .field("recording", &self.seg.row.recording_id)
            .field("segment", &self.seg.row.segment)
            .field("format", &self.format)
            .field("plaintext_len", &self.writer.plaintext_len())
            .field("sealed_chunks", &self.seg.on_disk)
            .field("held_bytes", &self.seg.backlog_bytes)
            .field("mode", &self.mode)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl OpenSegment {
    pub(super) fn new(seg: SegFile, writer: SegmentWriter, format: MediaFormat) -> Self {
        Self {
            seg,
            writer,
            format,
            mode: Mode::Normal,
            failed: false,
        }
    }

    /// The row and file created now, if the spool takes writes; otherwise with the first audio.
    pub(super) async fn create(&mut self) -> Result<(), PersistError> {
        let inner = Arc::clone(&self.seg.inner);
        if !inner.backlog.health.is_writable() {
            return Ok(());
        }
        match self.seg.write_pending().await {
            Ok(()) => Ok(()),
            Err(WriteError::Stalled(cause)) => {
                inner.backlog.health.failed(&cause);
                Ok(())
            }
            Err(WriteError::Fatal(e)) => Err(e),
        }
    }

    /// Whether the row is in the catalog.
    pub(super) fn row_inserted(&self) -> bool {
        self.seg.row_inserted
    }

    /// The row, for retiring it when creation failed.
    pub(super) fn row(&self) -> &SegmentRow {
        &self.seg.row
    }

    /// The recording.
    pub fn recording(&self) -> RecordingId {
        self.seg.row.recording_id
    }

    /// The segment number.
    pub fn segment(&self) -> SegmentNo {
        self.seg.row.segment
    }

    /// Plaintext bytes accepted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.writer.plaintext_len()
    }

    /// Whole chunks written to the spool.
    pub fn sealed_chunks(&self) -> u64 {
        self.seg.on_disk
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.seg.inner
    }

    /// Milliseconds of `bytes` of this segment's audio, rounded down (a position, not a length to
    /// round up).
    fn ms(&self, bytes: u64) -> u64 {
        let bps = self.writer.header().bytes_per_second().max(1);
        u64::try_from(u128::from(bytes) * 1000 / u128::from(bps)).unwrap_or(u64::MAX)
    }

    /// Where the accepted audio ends, in milliseconds from the recording's start.
    fn accepted_end_ms(&self) -> u64 {
        self.seg.row.media_start_ms + self.ms(self.writer.plaintext_len())
    }

    /// Appends plaintext: every chunk it fills is sealed and appended to the spool file, and the
    /// file is registered with the group-commit syncer (durable within one sync interval). The
    /// rest waits in memory, wiped on drop. Plaintext never touches the disk.
    ///
    /// While the spool cannot be written, sealed chunks wait in memory (see the type's docs);
    /// past the call's bound the audio is dropped and ledgered. After
    /// [`PersistError::SegmentFailed`], [`PersistError::Destroyed`] or
    /// [`PersistError::SpoolResumed`] the segment takes no more audio; close (or drop) it.
    pub async fn append(&mut self, plaintext: &[u8]) -> Result<(), PersistError> {
        self.check()?;
        if plaintext.is_empty() {
            return Ok(());
        }
        if !matches!(self.mode, Mode::Leading(_)) {
            // (a segment still dropping its start creates nothing: its header is not final)
            self.flush().await?;
        }
        let len = plaintext.len() as u64;
        let dur = self.ms(len);
        let over = self.over(len);
        let writable = self.inner().backlog.health.is_writable() && !self.seg.pending();
        match &mut self.mode {
            Mode::Ended(_) => unreachable!("check() refuses an ended segment"),
            Mode::Tail(run) => {
                run.end_ms += dur;
                if writable {
                    let run = run.clone();
                    self.mode = Mode::Ended(run);
                    return Err(PersistError::SpoolResumed {
                        recording: self.recording(),
                        segment: self.segment(),
                    });
                }
                return Ok(());
            }
            Mode::Leading(run) => {
                if over {
                    run.end_ms += dur;
                    return Ok(());
                }
                let run = run.clone();
                self.begin_at(run).await?;
            }
            Mode::Normal if over => {
                // what still fits (whole frames) is kept; the rest, and what follows, is dropped
                let room = self.room();
                if room > 0 {
                    let sealed = self.writer.append(&plaintext[..room as usize])?;
                    self.seg.push(sealed);
                    self.update_held();
                }
                let start = self.accepted_end_ms();
                let run = LossRun {
                    segment: self.segment(),
                    start_ms: start,
                    end_ms: start + self.ms(len - room),
                    cause: self.cause(),
                };
                self.mode = if self.writer.plaintext_len() == 0 && self.seg.file.is_none() {
                    Mode::Leading(run)
                } else {
                    Mode::Tail(run)
                };
                return Ok(());
            }
            Mode::Normal => {}
        }
        let sealed = self.writer.append(plaintext)?;
        self.seg.push(sealed);
        self.update_held();
        self.flush().await
    }

    /// The most plaintext the call may hold in memory.
    fn bound(&self) -> u64 {
        self.inner().backlog_bound(
            self.writer.header().bytes_per_second(),
            self.writer.header().chunk_size(),
        )
    }

    /// Whether taking `len` more bytes would pass the call's bound while the spool cannot take them.
    /// (Once it can, what the call holds is being written: nothing is dropped for it.)
    fn over(&self, len: u64) -> bool {
        !self.inner().backlog.health.is_writable()
            && self.inner().backlog.held(self.recording()) + len > self.bound()
    }

    /// Whole frames the call may still hold.
    fn room(&self) -> u64 {
        let room = self
            .bound()
            .saturating_sub(self.inner().backlog.held(self.recording()));
        let frame = self.writer.header().frame_len().max(1);
        room / frame * frame
    }

    fn cause(&self) -> Cause {
        self.inner().backlog.health.cause().unwrap_or(Cause {
            code: "spool_full",
            error: "the spool's backlog bound was reached".to_owned(),
        })
    }

    /// Counts what this segment holds in memory: accepted audio not yet on disk.
    fn update_held(&mut self) {
        let on_disk = self.seg.on_disk * u64::from(self.writer.header().chunk_size());
        let held = self.writer.plaintext_len().saturating_sub(on_disk);
        self.seg.set_held(held);
    }

    /// Writes what waits, if a try is due. A stall is not an error: the audio stays held.
    async fn flush(&mut self) -> Result<(), PersistError> {
        if !self.seg.pending() || !self.seg.due() {
            return Ok(());
        }
        let inner = Arc::clone(self.inner());
        let result = {
            let _life = inner.lifecycle.read().await;
            if inner.uploads.is_destroyed(self.recording()) {
                return Err(PersistError::Destroyed(self.recording()));
            }
            self.seg.write_pending().await
        };
        self.update_held();
        match result {
            Ok(()) => Ok(()),
            Err(WriteError::Stalled(cause)) => {
                inner.backlog.health.failed(&cause);
                Ok(())
            }
            Err(WriteError::Fatal(e)) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Leaves `Leading`: the segment begins where the dropped audio ends (a new header; nothing
    /// was sealed under the old one), and the loss is recorded.
    async fn begin_at(&mut self, run: LossRun) -> Result<(), PersistError> {
        let start = run.end_ms;
        debug_assert!(self.seg.file.is_none(), "a leading drop never has a file");
        let old = self.writer.header();
        let header = Header::new(
            self.recording(),
            self.segment(),
            old.codec(),
            old.channels(),
            old.sample_rate(),
            start,
        )?
        .with_chunk_size(old.chunk_size())?;
        self.writer = SegmentWriter::new(header, &self.seg.key);
        self.seg.header_bytes = *self.writer.header_bytes();
        self.seg.row.media_start_ms = start;
        self.seg.row.media_end_ms = start;
        if self.seg.row_inserted {
            self.seg.row_stale = true;
        }
        self.mode = Mode::Normal;
        let inner = Arc::clone(self.inner());
        inner.record_loss(self.recording(), run).await;
        Ok(())
    }

    fn check(&self) -> Result<(), PersistError> {
        let id = self.recording();
        if self.inner().uploads.is_destroyed(id) {
            return Err(PersistError::Destroyed(id));
        }
        if self.is_failed() {
            return Err(PersistError::SegmentFailed {
                recording: id,
                segment: self.segment(),
            });
        }
        if matches!(self.mode, Mode::Ended(_)) {
            return Err(PersistError::SpoolResumed {
                recording: id,
                segment: self.segment(),
            });
        }
        Ok(())
    }

    fn is_failed(&self) -> bool {
        self.failed || self.seg.sync_failed()
    }

    /// Seals the final chunk, syncs the file and renames `.part` to `.cva`, updates the segment row
    /// (media end, size, SHA-256) and queues the upload.
    ///
    /// If a write or sync of this segment failed before, what reached the disk intact is kept
    /// instead (as [`Persistence::recover`](super::Persistence::recover) would), with a
    /// `spool_fault` ledger entry. If the spool cannot be written now, the close waits in memory
    /// and is finished (and the segment uploaded) once it can; it counts as a pending segment
    /// meanwhile. Audio dropped at the end is ledgered (`audio_lost`).
    pub async fn close(mut self, media_end_ms: u64) -> Result<(), PersistError> {
        let inner = Arc::clone(self.inner());
        let id = self.recording();
        if inner.uploads.is_destroyed(id) {
            return Err(PersistError::Destroyed(id));
        }
        let mut end = media_end_ms;
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => {}
            Mode::Leading(mut run) => {
                // nothing was taken: the whole segment was dropped
                run.end_ms = run.end_ms.max(media_end_ms);
                inner.record_loss(id, run).await;
                return self.discard().await;
            }
            Mode::Tail(mut run) | Mode::Ended(mut run) => {
                run.end_ms = run.end_ms.max(media_end_ms);
                inner.record_loss(id, run).await;
                end = self.accepted_end_ms();
            }
        }
        if self.is_failed() {
            return self.salvage(end).await;
        }
        let OpenSegment {
            mut seg, writer, ..
        } = self;
        seg.push(writer.seal());
        finish_or_defer(Deferred::new(seg, end, How::Commit { committed: false })).await
    }

    /// Drops a segment that took no audio: nothing of it is on the spool; its row, if written,
    /// is retired.
    async fn discard(self) -> Result<(), PersistError> {
        let OpenSegment { seg, .. } = self;
        if seg.row_inserted {
            let _life = seg.inner.lifecycle.read().await;
            shred(&seg.inner.catalog, seg.row.clone()).await?;
        }
        Ok(())
    }

    /// Cuts the segment back for a card-payment pause found too late: drops the buffered partial
    /// chunk, truncates the spool file to the header and `keep_chunks` whole chunks (synced first,
    /// so the cut audio leaves the disk before anything else), re-seals the last kept chunk as final,
    /// then finishes as [`close`](Self::close), with a `cut_back` ledger entry (chunks kept, bytes
    /// dropped). `media_end_ms` is clamped to the end of the kept audio.
    ///
    /// No nonce is reused: the re-sealed chunk carries the last-chunk flag, which no chunk of this
    /// segment used before, and the segment takes no more audio. `keep_chunks` past the chunks on
    /// the spool keeps them all (chunks still held in memory because the spool cannot be written
    /// are dropped, and counted as dropped). `keep_chunks = 0` leaves an empty segment (the header
    /// and an empty final chunk), stored like any other: the segment numbers stay dense and the
    /// ledger and the media range say that nothing of it was kept.
    pub async fn cut_back(
        mut self,
        keep_chunks: u64,
        media_end_ms: u64,
    ) -> Result<(), PersistError> {
        let inner = Arc::clone(self.inner());
        let id = self.recording();
        if inner.uploads.is_destroyed(id) {
            return Err(PersistError::Destroyed(id));
        }
        // held chunks before the cut belong on disk (as they would be had the spool taken them)
        self.flush().await?;
        if let Mode::Tail(run) | Mode::Ended(run) | Mode::Leading(run) =
            std::mem::replace(&mut self.mode, Mode::Normal)
        {
            inner.record_loss(id, run).await;
        }
        let keep = keep_chunks.min(self.seg.on_disk);
        let reseal = How::Reseal {
            keep_len: self.writer.header().chunk_offset(keep),
            kind: "cut_back",
            details: serde_json::json!({
                "segment": self.segment().0,
                "requested_chunks": keep_chunks,
                "kept_chunks": keep,
            }),
            accepted: self.writer.plaintext_len(),
            dropped_key: "dropped_bytes",
            resealed: None,
            ledgered: false,
        };
        self.reseal_later(reseal, media_end_ms).await
    }

    /// Closes a segment whose spool writes failed: keeps the whole chunks on disk that authenticate.
    async fn salvage(self, media_end_ms: u64) -> Result<(), PersistError> {
        let keep = self.seg.on_disk;
        let reseal = How::Reseal {
            keep_len: self.writer.header().chunk_offset(keep),
            kind: "spool_fault",
            details: serde_json::json!({ "segment": self.segment().0 }),
            accepted: self.writer.plaintext_len(),
            dropped_key: "lost_bytes",
            resealed: None,
            ledgered: false,
        };
        self.reseal_later(reseal, media_end_ms).await
    }

    /// Truncates the `.part` to the chunks kept and re-seals it as the `.cva`, now or, while the
    /// spool cannot be written, later. Held chunks and the buffered partial chunk are wiped now.
    async fn reseal_later(self, how: How, media_end_ms: u64) -> Result<(), PersistError> {
        let OpenSegment {
            mut seg, writer, ..
        } = self;
        drop(writer);
        seg.backlog.clear();
        seg.backlog_bytes = 0;
        seg.set_held(0);
        finish_or_defer(Deferred::new(seg, media_end_ms, how)).await
    }

    /// Drops everything of this segment (the caller refused recording): deletes the spool file and
    /// shreds the data key; the row is marked `deleted`.
    pub async fn destroy(self) -> Result<(), PersistError> {
        let OpenSegment { mut seg, .. } = self;
        seg.backlog.clear();
        seg.backlog_bytes = 0;
        seg.set_held(0);
        let inner = Arc::clone(&seg.inner);
        let _life = inner.lifecycle.read().await;
        if let Some(file) = seg.file.take() {
            let part = file.path.clone();
            drop(file);
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
        if seg.row_inserted {
            shred(&inner.catalog, seg.row.clone()).await?;
        }
        Ok(())
    }
}
