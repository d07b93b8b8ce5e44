//! Start-up recovery of the spool after a crash.
//!
//! For each recording directory in the spool: a `.part` is made whole (its whole chunks that
//! authenticate kept, the last re-sealed as final) and becomes a `.cva`, with a `crash_recovery`
//! ledger entry saying how much audio was kept and how much was torn; a `.cva` beside a `.part` is
//! an interrupted re-seal and is redone; every `.cva` is queued for upload; a recording still `live`
//! gets an `interrupted` ledger entry (where its audio stops) and is left live, and so is every
//! other recording still `live` in the catalog (its call died before any of its audio reached the
//! spool): the recorder takes them back ([`Recorder::adopt`](crate::recorder::Recorder::adopt)), so
//! a platform that reconnects continues the same recording, and seals each one no stream returns
//! to. Files of segments whose key was shredded are deleted, never uploaded. A recording whose
//! files cannot be made whole because the disk is full waits, and the drainer recovers it once the
//! disk has room.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::spool::{self, blocking};
use super::writeback::WriteError;
use super::{Inner, PersistError, duration_ms, ledger, shred};
use crate::catalog::{RecordingStatus, SegmentRow, SegmentStatus};
use crate::domain::{RecordingId, SegmentNo};
use crate::vault::layout::{OBJECT_EXT, SPOOL_EXT};
use crate::vault::{Header, Layout, WrappedKey};

/// Most live recordings read when looking for those with nothing on the spool: far more calls than
/// one node holds at once (`recorder.max_calls`).
const LIVE_MAX: usize = 1_000_000;

/// One `.part` made whole at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredSegment {
    /// The recording.
    pub recording: RecordingId,
    /// The segment.
    pub segment: SegmentNo,
    /// Milliseconds of audio kept.
    pub recovered_ms: u64,
    /// Plaintext bytes kept.
    pub recovered_bytes: u64,
    /// Plaintext bytes whose ciphertext reached the spool but could not be kept (the torn tail,
    /// and any chunk after the first that failed to authenticate).
    pub torn_bytes: u64,
}

/// What [`Persistence::recover`](super::Persistence::recover) found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments recovered from `.part` files.
    pub recovered: Vec<RecoveredSegment>,
    /// Sealed spool files queued for upload (recovered ones included).
    pub queued: usize,
    /// Recordings that were `live`: left live for the recorder to take back.
    pub interrupted: Vec<RecordingId>,
    /// Spool files deleted unuploaded: their key was shredded, they were uploaded already, or they
    /// held no audio.
    pub discarded: usize,
    /// Recordings whose spool files could not be recovered yet (the disk is full): recovered by the
    /// drainer once the spool takes writes, without a restart.
    pub waiting: Vec<RecordingId>,
}

/// The spool's files of one recording, by segment.
#[derive(Debug, Default)]
struct Files {
    parts: BTreeMap<SegmentNo, PathBuf>,
    sealed: BTreeMap<SegmentNo, PathBuf>,
}

fn list_spool(spool_dir: &Path) -> Result<Vec<(RecordingId, Files)>, PersistError> {
    std::fs::create_dir_all(spool_dir).map_err(PersistError::io(spool_dir))?;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(spool_dir).map_err(PersistError::io(spool_dir))? {
        let dir = entry.map_err(PersistError::io(spool_dir))?.path();
        if dir.file_name().is_some_and(|n| n == super::backlog::PROBE) {
            // a write probe a crash left behind
            spool::remove_file(&dir)?;
            continue;
        }
        let id = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<RecordingId>().ok());
        let (Some(id), true) = (id, dir.is_dir()) else {
            warn!(path = %dir.display(), "not a recording's spool directory; left alone");
            continue;
        };
        out.push((id, list_recording(&dir)?));
    }
    out.sort_by_key(|(id, _)| *id);
    Ok(out)
}

/// The spool files of one recording (none if its directory is gone).
fn list_recording(dir: &Path) -> Result<Files, PersistError> {
    let mut files = Files::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(PersistError::io(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(PersistError::io(dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(seg) = name.strip_suffix(SPOOL_EXT).and_then(parse_segment) {
            files.parts.insert(seg, path);
        } else if let Some(seg) = name.strip_suffix(OBJECT_EXT).and_then(parse_segment) {
            files.sealed.insert(seg, path);
        } else {
            warn!(path = %path.display(), "not a spool file; left alone");
        }
    }
    Ok(files)
}

fn parse_segment(s: &str) -> Option<SegmentNo> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().map(SegmentNo)
}

async fn remove(path: PathBuf) -> Result<(), PersistError> {
    blocking(move || spool::remove_file(&path)).await
}

/// Whether a row still holds a key and waits for upload.
fn usable(row: Option<&SegmentRow>) -> bool {
    row.is_some_and(|r| r.status == SegmentStatus::Spooled && r.kek_id.is_some())
}

pub(super) async fn run(inner: &Arc<Inner>) -> Result<RecoveryReport, PersistError> {
    let spool_dir = inner.config.spool_dir.clone();
    let listing = blocking(move || list_spool(&spool_dir)).await?;
    let mut report = RecoveryReport::default();
    let on_spool: BTreeSet<RecordingId> = listing.iter().map(|(id, _)| *id).collect();
    for (id, files) in listing {
        let Some(recording) = inner.catalog.recording(id).await? else {
            warn!(recording = %id, "spool files of a recording the catalog does not know; left alone");
            continue;
        };
        match recover_recording(inner, &recording, files, &mut report).await {
            Ok(()) => {}
            Err(e) => match WriteError::from(e) {
                // a full disk at start-up: serve, not ready, and finish this once it has room
                WriteError::Stalled(cause) => {
                    inner.backlog.health.failed(&cause);
                    inner.backlog.unrecovered(id);
                    report.waiting.push(id);
                    continue;
                }
                WriteError::Fatal(e) => return Err(e),
            },
        }
        let dir = spool::recording_dir(&inner.config.spool_dir, id);
        blocking(move || spool::remove_dir_if_empty(&dir)).await?;
    }
    // Recordings still `live` with nothing on the spool: the crash came before their first segment
    // was opened (all their audio was still in the look-back window, or none had come), or after
    // their last spool file was uploaded. They are left live for the recorder too. (Live
    // recordings are as many as the calls that were going on, so one read finds them all; the
    // catalog is this node's alone: a shared catalog would need to know which node owns a call.)
    let live = inner
        .catalog
        .recordings_by_status(RecordingStatus::Live, LIVE_MAX)
        .await?;
    for recording in live {
        // (those whose files wait for room are not among them: their files are still to come)
        if !on_spool.contains(&recording.id) && !report.waiting.contains(&recording.id) {
            recover_recording(inner, &recording, Files::default(), &mut report).await?;
        }
    }
    info!(
        recovered = report.recovered.len(),
        queued = report.queued,
        interrupted = report.interrupted.len(),
        discarded = report.discarded,
        "spool recovered"
    );
    Ok(report)
}

/// Recovers one recording's spool files again (after recovery at start-up stalled on the disk).
pub(super) async fn retry(inner: &Arc<Inner>, id: RecordingId) -> Result<(), PersistError> {
    let Some(recording) = inner.catalog.recording(id).await? else {
        return Ok(());
    };
    let dir = spool::recording_dir(&inner.config.spool_dir, id);
    let files = {
        let dir = dir.clone();
        blocking(move || list_recording(&dir)).await?
    };
    let mut report = RecoveryReport::default();
    recover_recording(inner, &recording, files, &mut report).await?;
    blocking(move || spool::remove_dir_if_empty(&dir)).await?;
    info!(recording = %id, recovered = report.recovered.len(), queued = report.queued, "spool files recovered once the disk had room");
    Ok(())
}

async fn recover_recording(
    inner: &Arc<Inner>,
    recording: &crate::catalog::RecordingRow,
    mut files: Files,
    report: &mut RecoveryReport,
) -> Result<(), PersistError> {
    let id = recording.id;
    let mut rows: BTreeMap<SegmentNo, SegmentRow> = inner
        .catalog
        .segments(id)
        .await?
        .into_iter()
        .map(|r| (r.segment, r))
        .collect();

    for (seg, part) in std::mem::take(&mut files.parts) {
        let sealed = spool::sealed_path(&inner.config.spool_dir, id, seg);
        if files.sealed.remove(&seg).is_some() {
            // A re-seal that did not finish: the `.part` is the truth.
            remove(sealed.clone()).await?;
        }
        let row = rows.get(&seg);
        if !usable(row) {
            remove(part).await?;
            report.discarded += 1;
            continue;
        }
        let Some(mut row) = row.cloned() else {
            continue;
        };
        let (Some(kek_id), Some(bytes)) = (row.kek_id.clone(), row.wrapped_key.clone()) else {
            continue;
        };
        let key = inner
            .keyring
            .unwrap(&WrappedKey { kek_id, bytes }, id, seg)?;
        let (resealed, file_len) = {
            let (part, sealed) = (part.clone(), sealed.clone());
            blocking(move || {
                let len = std::fs::metadata(&part)
                    .map_err(PersistError::io(&part))?
                    .len();
                Ok((spool::reseal(&part, &sealed, &key, None)?, len))
            })
            .await?
        };
        let Some(resealed) = resealed else {
            // The header never reached the disk: no audio did either.
            remove(part).await?;
            shred(&inner.catalog, row.clone()).await?;
            rows.remove(&seg);
            report.discarded += 1;
            let details = serde_json::json!({
                "segment": seg.0, "recovered_ms": 0, "recovered_bytes": 0, "torn_bytes": file_len,
            });
            ledger(inner, id, "crash_recovery", details).await?;
            continue;
        };
        let r = &resealed.recovered;
        let recovered_ms = duration_ms(&r.header, r.plaintext_len);
        row.media_end_ms = row.media_start_ms + recovered_ms;
        row.size = r.bytes.len() as u64;
        row.sha256 = Some(resealed.sha256);
        inner.catalog.update_segment(&row).await?;
        let details = serde_json::json!({
            "segment": seg.0,
            "recovered_ms": recovered_ms,
            "recovered_bytes": r.plaintext_len,
            "torn_bytes": r.lost_bytes,
        });
        ledger(inner, id, "crash_recovery", details).await?;
        warn!(recording = %id, segment = seg.0, recovered_ms, torn_bytes = r.lost_bytes, "segment recovered after a crash");
        report.recovered.push(RecoveredSegment {
            recording: id,
            segment: seg,
            recovered_ms,
            recovered_bytes: r.plaintext_len,
            torn_bytes: r.lost_bytes,
        });
        rows.insert(seg, row);
        files.sealed.insert(seg, sealed);
    }

    let mut on_spool = BTreeSet::new();
    for (seg, path) in files.sealed {
        let row = rows.get(&seg);
        if !usable(row) {
            remove(path).await?;
            report.discarded += 1;
            continue;
        }
        let Some(row) = rows.get_mut(&seg) else {
            continue;
        };
        if row.sha256.is_none() {
            // Sealed, but the crash came before its row was updated.
            let p = path.clone();
            let (size, sha256, plaintext_len, header) = blocking(move || {
                let bytes = std::fs::read(&p).map_err(PersistError::io(&p))?;
                let header = Header::decode(&bytes)?;
                let layout = Layout::new(header.clone(), bytes.len() as u64)?;
                let sha: [u8; 32] = Sha256::digest(&bytes).into();
                Ok((bytes.len() as u64, sha, layout.plaintext_len(), header))
            })
            .await?;
            row.media_end_ms = row.media_start_ms + duration_ms(&header, plaintext_len);
            row.size = size;
            row.sha256 = Some(sha256);
            inner.catalog.update_segment(row).await?;
        }
        on_spool.insert(seg);
        if inner.uploads.enqueue(id, seg, path) {
            report.queued += 1;
        }
    }

    // Spooled rows with no spool file: the crash came between the row and its file.
    let orphans: Vec<SegmentRow> = rows
        .values()
        .filter(|r| r.status == SegmentStatus::Spooled && !on_spool.contains(&r.segment))
        .cloned()
        .collect();
    for row in orphans {
        rows.remove(&row.segment);
        shred(&inner.catalog, row).await?;
    }

    if recording.status == RecordingStatus::Live {
        // the call may still be going on: it is left live, and the recorder takes it back for
        // `recorder.idle_seal` so that the platform's reconnect continues the same recording; it
        // is sealed then if no stream returns
        let last_ms = rows.values().map(|r| r.media_end_ms).max().unwrap_or(0);
        let details = serde_json::json!({ "segments": rows.len(), "media_end_ms": last_ms });
        ledger(inner, id, "interrupted", details).await?;
        report.interrupted.push(id);
    }
    Ok(())
}
