//! Start-up recovery of the spool after a crash.
//!
//! For each recording directory in the spool: a `.part` is made whole (its whole chunks that
//! authenticate kept, the last re-sealed as final) and becomes a `.cva`, with a `crash_recovery`
//! ledger entry saying how much audio was kept and how much was torn; a `.cva` beside a `.part` is
//! an interrupted re-seal and is redone; every `.cva` is queued for upload; a recording still `live`
//! is marked `sealed` with an `interrupted` ledger entry, and so is every other recording still
//! `live` in the catalog (its call died before any of its audio reached the spool). Files of
//! segments whose key was shredded are deleted, never uploaded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::spool::{self, blocking};
use super::{Inner, PersistError, duration_ms, ended_at, ledger, shred};
use crate::catalog::{RecordingStatus, SegmentRow, SegmentStatus, StatusChange};
use crate::domain::status::{expires_at, seal_end};
use crate::domain::{RecordingId, SegmentNo};
use crate::vault::layout::{OBJECT_EXT, SPOOL_EXT};
use crate::vault::{Header, Layout, WrappedKey};

/// Live recordings read per catalog page when looking for those with nothing on the spool.
const LIVE_PAGE: usize = 500;

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
    /// Recordings that were `live` and are now `sealed`.
    pub interrupted: Vec<RecordingId>,
    /// Spool files deleted unuploaded: their key was shredded, they were uploaded already, or they
    /// held no audio.
    pub discarded: usize,
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
        let id = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<RecordingId>().ok());
        let (Some(id), true) = (id, dir.is_dir()) else {
            warn!(path = %dir.display(), "not a recording's spool directory; left alone");
            continue;
        };
        let mut files = Files::default();
        for entry in std::fs::read_dir(&dir).map_err(PersistError::io(&dir))? {
            let path = entry.map_err(PersistError::io(&dir))?.path();
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
        out.push((id, files));
    }
    out.sort_by_key(|(id, _)| *id);
    Ok(out)
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
    for (id, files) in listing {
        let Some(recording) = inner.catalog.recording(id).await? else {
            warn!(recording = %id, "spool files of a recording the catalog does not know; left alone");
            continue;
        };
        recover_recording(inner, &recording, files, &mut report).await?;
        let dir = spool::recording_dir(&inner.config.spool_dir, id);
        blocking(move || spool::remove_dir_if_empty(&dir)).await?;
    }
    // Recordings still `live` with nothing on the spool: the crash came before their first segment
    // was opened (all their audio was still in the look-back window, or none had come), or after
    // their last spool file was uploaded. Their calls died with the process: seal them too. (The
    // catalog is this node's alone; a shared catalog would need to know which node owns a call.)
    let mut seen = BTreeSet::new();
    loop {
        let page = inner
            .catalog
            .recordings_by_status(RecordingStatus::Live, LIVE_PAGE)
            .await?;
        let fresh: Vec<_> = page.into_iter().filter(|r| seen.insert(r.id)).collect();
        if fresh.is_empty() {
            break;
        }
        for recording in fresh {
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
        let last_ms = rows.values().map(|r| r.media_end_ms).max().unwrap_or(0);
        let end = recording
            .ended_at
            .unwrap_or_else(|| ended_at(recording.started_at, last_ms));
        let end = seal_end(recording.started_at, end);
        let retention = inner
            .config
            .retention
            .get(&recording.policy)
            .or(inner.config.default_retention.as_ref());
        let to = recording
            .status
            .seal()
            .expect("the status machine seals a live recording");
        let change = StatusChange {
            ended_at: Some(end),
            expires_at: recording
                .expires_at
                .or_else(|| retention.and_then(|p| expires_at(end, *p))),
            ..StatusChange::new(id, recording.status, to, inner.clock.now())
        };
        // compare-and-set: a refusal or restriction that came meanwhile is not undone
        inner.catalog.transition_recording(&change).await?;
        let details = serde_json::json!({ "segments": rows.len(), "media_end_ms": last_ms });
        ledger(inner, id, "interrupted", details).await?;
        report.interrupted.push(id);
    }
    Ok(())
}
