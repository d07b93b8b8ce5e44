//! When the spool cannot be written (a full disk, an I/O error, a catalog that cannot take the
//! segment's row): the spool's health, the audio calls hold in memory meanwhile, the segments whose
//! close waits, the loss entries that wait for the catalog, and the task that drains them all once
//! writes work again.
//!
//! An *episode* runs from the first failed write to the first good one. It is logged twice (when it
//! begins, with the system's words, e.g. `no space left on device`, and when it ends), counted in
//! `callvault_spool_full_episodes_total`, and makes `/readyz` not ready while it lasts
//! ([`SpoolHealth::problem`]). During it each call keeps its sealed chunks in memory up to
//! `recorder.spool_backlog` of audio; past that its audio is dropped, and an `audio_lost` ledger
//! entry names the segment, the start, the length and the cause (the metric
//! `callvault_audio_lost_milliseconds_total` adds the length).
//!
//! The drainer tries a probe write every `spool_retry` while the spool is unwritable, finishes the
//! segments whose close had to wait (they count in `callvault_spool_pending_segments` meanwhile),
//! and writes the loss entries the catalog refused.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::closing::Deferred;
use super::spool::blocking;
use super::writeback::WriteError;
use super::{ACTOR, Inner, PersistError};
use crate::catalog::{CatalogError, NewLedgerEntry};
use crate::domain::{RecordingId, SegmentNo};

/// Why the spool could not be written, in the ledger's words (`code`) and the system's (`error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `spool_full` (no space, or over quota), `spool_io_error` or `catalog_unavailable`.
    pub code: &'static str,
    /// What the system said, lowercase: `no space left on device`, `input/output error`, ...
    pub error: String,
}

impl Cause {
    /// The cause of a failed file operation.
    pub fn from_io(e: &std::io::Error) -> Self {
        let (code, error) = match e.raw_os_error() {
            Some(28) => ("spool_full", "no space left on device".to_owned()),
            Some(122) => ("spool_full", "disk quota exceeded".to_owned()),
            Some(5) => ("spool_io_error", "input/output error".to_owned()),
            Some(30) => ("spool_io_error", "read-only file system".to_owned()),
            _ => ("spool_io_error", e.to_string().to_lowercase()),
        };
        Self { code, error }
    }

    /// The cause of a catalog that could not take a segment's row: its whole error chain.
    pub fn from_catalog(e: &CatalogError) -> Self {
        Self {
            code: "catalog_unavailable",
            error: chain(e),
        }
    }
}

/// An error and its sources, `: `-separated (a source its error already quotes is not repeated),
/// lowercase.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out.to_lowercase()
}

#[derive(Debug)]
struct Episode {
    since: Instant,
    cause: Cause,
    failures: u64,
}

/// Whether the spool takes writes, and the current episode if it does not.
#[derive(Debug, Default)]
pub struct SpoolHealth {
    unwritable: AtomicBool,
    episode: Mutex<Option<Episode>>,
    episodes: AtomicU64,
}

impl SpoolHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Episode>> {
        self.episode
            .lock()
            .expect("the episode lock is never poisoned: no panics while held")
    }

    /// Whether the last write worked.
    pub fn is_writable(&self) -> bool {
        !self.unwritable.load(Ordering::Acquire)
    }

    /// Why the spool cannot be written, while it cannot (for `/readyz`).
    pub fn problem(&self) -> Option<String> {
        if self.is_writable() {
            return None;
        }
        self.lock()
            .as_ref()
            .map(|e| format!("the spool cannot be written: {}", e.cause.error))
    }

    /// Episodes since start.
    pub fn episodes(&self) -> u64 {
        self.episodes.load(Ordering::Relaxed)
    }

    /// The current episode's cause.
    pub fn cause(&self) -> Option<Cause> {
        self.lock().as_ref().map(|e| e.cause.clone())
    }

    /// A write failed: begins an episode (logged once, counted) or counts into the current one.
    pub(super) fn failed(&self, cause: &Cause) {
        let mut episode = self.lock();
        match episode.as_mut() {
            Some(e) => e.failures += 1,
            None => {
                *episode = Some(Episode {
                    since: Instant::now(),
                    cause: cause.clone(),
                    failures: 1,
                });
                self.unwritable.store(true, Ordering::Release);
                self.episodes.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("callvault_spool_full_episodes_total", "cause" => cause.code)
                    .increment(1);
                metrics::gauge!("callvault_spool_writable").set(0.0);
                error!(
                    cause = cause.code,
                    error = %cause.error,
                    "spool cannot be written: {}; live calls hold their audio in memory up to recorder.spool_backlog, then drop it with a ledger entry",
                    cause.error
                );
            }
        }
    }

    /// A write worked: ends the episode, if one is on.
    pub(super) fn writable(&self) {
        if self.is_writable() {
            return;
        }
        let ended = self.lock().take();
        self.unwritable.store(false, Ordering::Release);
        metrics::gauge!("callvault_spool_writable").set(1.0);
        if let Some(e) = ended {
            info!(
                cause = e.cause.code,
                error = %e.cause.error,
                seconds = e.since.elapsed().as_secs_f64(),
                failed_writes = e.failures,
                "spool writable again; held audio is being written"
            );
        }
    }
}

/// Audio a segment dropped while the spool could not be written: a contiguous media range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LossRun {
    pub segment: SegmentNo,
    /// Milliseconds from the recording's start.
    pub start_ms: u64,
    /// Where the dropped audio ends, so far.
    pub end_ms: u64,
    pub cause: Cause,
}

/// The state of every call's backlog, shared by the segments and the drainer.
#[derive(Default)]
pub(super) struct Backlog {
    pub health: Arc<SpoolHealth>,
    /// Plaintext bytes each recording holds in memory.
    held: Mutex<HashMap<RecordingId, u64>>,
    held_total: AtomicU64,
    /// Segments whose close waits for the spool.
    deferred: Mutex<Vec<Deferred>>,
    /// Loss entries the catalog refused, oldest first.
    ledger: Mutex<VecDeque<NewLedgerEntry>>,
    /// Recordings whose start-up recovery stalled on the disk.
    unrecovered: Mutex<Vec<RecordingId>>,
}

impl std::fmt::Debug for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backlog")
            .field("health", &self.health)
            .field("held_bytes", &self.held_total.load(Ordering::Relaxed))
            .field("deferred", &self.deferred_len())
            .finish_non_exhaustive()
    }
}

impl Backlog {
    /// Plaintext bytes `recording` holds in memory.
    pub fn held(&self, recording: RecordingId) -> u64 {
        self.held
            .lock()
            .expect("the held map lock is never poisoned: no panics while held")
            .get(&recording)
            .copied()
            .unwrap_or(0)
    }

    /// One segment of `recording` now holds `new` bytes instead of `old`.
    pub fn adjust_held(&self, recording: RecordingId, old: u64, new: u64) {
        let mut held = self
            .held
            .lock()
            .expect("the held map lock is never poisoned: no panics while held");
        let entry = held.entry(recording).or_insert(0);
        *entry = (*entry + new).saturating_sub(old);
        if *entry == 0 {
            held.remove(&recording);
        }
        drop(held);
        let total = if new >= old {
            self.held_total.fetch_add(new - old, Ordering::Relaxed) + (new - old)
        } else {
            self.held_total
                .fetch_sub(old - new, Ordering::Relaxed)
                .saturating_sub(old - new)
        };
        metrics::gauge!("callvault_spool_backlog_bytes").set(total as f64);
    }

    fn deferred(&self) -> std::sync::MutexGuard<'_, Vec<Deferred>> {
        self.deferred
            .lock()
            .expect("the deferred list lock is never poisoned: no panics while held")
    }

    /// Segments whose close waits for the spool.
    pub fn deferred_len(&self) -> usize {
        self.deferred().len()
    }

    /// Marks a recording's spool files for recovery once the disk has room.
    pub fn unrecovered(&self, recording: RecordingId) {
        self.unrecovered
            .lock()
            .expect("the unrecovered list lock is never poisoned: no panics while held")
            .push(recording);
    }

    /// Drops the waiting closes of a destroyed recording; returns how many.
    pub fn cancel_recording(&self, recording: RecordingId) -> usize {
        let mut list = self.deferred();
        let before = list.len();
        list.retain(|d| d.recording() != recording);
        before - list.len()
    }
}

impl Inner {
    /// Hands a segment whose close cannot be written now to the drainer.
    pub(super) fn defer(&self, deferred: Deferred) {
        let n = {
            let mut list = self.backlog.deferred();
            list.push(deferred);
            list.len()
        };
        self.uploads.set_waiting(n);
    }

    /// Records audio dropped while the spool could not be written: the metric now, the ledger
    /// entry now or, while the catalog refuses it, from the drainer.
    pub(super) async fn record_loss(&self, recording: RecordingId, run: LossRun) {
        let length_ms = run.end_ms.saturating_sub(run.start_ms);
        if length_ms == 0 {
            return;
        }
        let seconds = length_ms as f64 / 1000.0;
        metrics::counter!("callvault_audio_lost_milliseconds_total", "cause" => run.cause.code)
            .increment(length_ms);
        info!(%recording, segment = run.segment.0, start_ms = run.start_ms, length_ms, cause = run.cause.code, "audio dropped while the spool could not be written");
        let entry = NewLedgerEntry {
            recording_id: recording,
            at: self.clock.now(),
            kind: "audio_lost".to_owned(),
            actor: ACTOR.to_owned(),
            reason: None,
            details: serde_json::json!({
                "cause": run.cause.code,
                "error": run.cause.error,
                "segment": run.segment.0,
                "start_ms": run.start_ms,
                "length_ms": length_ms,
                "seconds": seconds,
            })
            .to_string(),
        };
        // behind any entry already waiting, so the ledger keeps their order
        if !self.queue_ledger_if_waiting(&entry) {
            if let Err(e) = self.catalog.append_ledger(&entry).await {
                warn!(%recording, error = %chain(&e), "loss entry not written yet; retried until the catalog takes it");
                self.queue_ledger(entry);
            }
        }
    }

    fn ledger_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<NewLedgerEntry>> {
        self.backlog
            .ledger
            .lock()
            .expect("the ledger queue lock is never poisoned: no panics while held")
    }

    /// Queues `entry` if entries already wait; false if none does.
    fn queue_ledger_if_waiting(&self, entry: &NewLedgerEntry) -> bool {
        let mut queue = self.ledger_queue();
        if queue.is_empty() {
            return false;
        }
        queue.push_back(entry.clone());
        true
    }

    fn queue_ledger(&self, entry: NewLedgerEntry) {
        self.ledger_queue().push_back(entry);
    }

    /// Plaintext bytes one call may hold in memory: `spool_backlog` of audio at `bytes_per_second`,
    /// and never less than two chunks.
    pub(super) fn backlog_bound(&self, bytes_per_second: u64, chunk_size: u32) -> u64 {
        let bound =
            (self.config.spool_backlog.as_millis() as u64).saturating_mul(bytes_per_second) / 1000;
        bound.max(2 * u64::from(chunk_size))
    }
}

/// Drains until `shutdown`, then tries once more; a close still waiting then is logged with what
/// it loses (its `.part` stays for the next start's recovery).
pub(super) async fn run(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(inner.config.spool_retry);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut was_writable = true;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => round(&inner).await,
        }
        let writable = inner.backlog.health.is_writable();
        if writable && !was_writable {
            // an upload waiting out a backoff (a local store on the same full disk) goes now
            inner.uploads.retry_now.notify_one();
        }
        was_writable = writable;
    }
    round(&inner).await;
    let left: Vec<Deferred> = std::mem::take(&mut *inner.backlog.deferred());
    for d in &left {
        error!(recording = %d.recording(), segment = d.segment().0, held_bytes = d.backlog_bytes(), "segment still waiting for the spool at shutdown: its held audio is lost, its spool file is recovered at the next start");
        let cause = inner.backlog.health.cause().unwrap_or(Cause {
            code: "spool_io_error",
            error: "the daemon stopped before the spool took writes again".to_owned(),
        });
        if let Some(run) = d.unwritten(cause) {
            inner.record_loss(d.recording(), run).await;
        }
    }
    drop(left);
    inner.uploads.set_waiting(0);
    // a last try for the loss entries; what the catalog still refuses is named in the log
    round(&inner).await;
    let unwritten = inner.ledger_queue().len();
    if unwritten > 0 {
        error!(
            entries = unwritten,
            "loss entries not written at shutdown: the catalog refused them"
        );
    }
}

/// One pass: probe the spool if it is unwritable, finish waiting closes, write waiting entries.
async fn round(inner: &Arc<Inner>) {
    if !inner.backlog.health.is_writable() {
        match probe(inner).await {
            Ok(()) => inner.backlog.health.writable(),
            Err(WriteError::Stalled(cause)) => inner.backlog.health.failed(&cause),
            Err(WriteError::Fatal(e)) => error!(error = %chain(&e), "spool probe failed"),
        }
    }
    if inner.backlog.health.is_writable() {
        let waiting: Vec<Deferred> = std::mem::take(&mut *inner.backlog.deferred());
        let mut kept = Vec::new();
        for mut d in waiting {
            if inner.uploads.is_destroyed(d.recording()) {
                continue;
            }
            match d.complete().await {
                Ok(()) => {}
                Err(WriteError::Stalled(cause)) => {
                    inner.backlog.health.failed(&cause);
                    kept.push(d);
                }
                Err(WriteError::Fatal(PersistError::Destroyed(_))) => {}
                Err(WriteError::Fatal(e)) => {
                    error!(recording = %d.recording(), segment = d.segment().0, error = %chain(&e), "segment cannot be finished; its spool file is recovered at the next start");
                }
            }
        }
        let n = {
            let mut list = inner.backlog.deferred();
            list.extend(kept);
            list.len()
        };
        inner.uploads.set_waiting(n);
        let waiting: Vec<RecordingId> = std::mem::take(
            &mut *inner
                .backlog
                .unrecovered
                .lock()
                .expect("the unrecovered list lock is never poisoned: no panics while held"),
        );
        for id in waiting {
            let retried = super::recover::retry(inner, id).await;
            if let Err(e) = retried {
                match WriteError::from(e) {
                    WriteError::Stalled(cause) => {
                        inner.backlog.health.failed(&cause);
                        inner.backlog.unrecovered(id);
                    }
                    WriteError::Fatal(e) => {
                        error!(recording = %id, error = %chain(&e), "spool files cannot be recovered; left for the next start");
                    }
                }
            }
        }
    }
    loop {
        let next = inner.ledger_queue().front().cloned();
        let Some(entry) = next else { break };
        if inner.catalog.append_ledger(&entry).await.is_err() {
            break;
        }
        inner.ledger_queue().pop_front();
    }
}

/// The name of the write probe in the spool directory.
pub(super) const PROBE: &str = ".probe";

/// Writes, syncs and removes a chunk-sized probe file in the spool directory.
async fn probe(inner: &Arc<Inner>) -> Result<(), WriteError> {
    let dir = inner.config.spool_dir.clone();
    let len = inner.config.chunk_size as usize;
    blocking(move || {
        let path = dir.join(PROBE);
        let written = std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&vec![0u8; len]).and_then(|()| f.sync_data()));
        let removed = super::spool::remove_file(&path);
        written.map_err(PersistError::io(&path))?;
        removed
    })
    .await
    .map_err(WriteError::from)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn causes_use_the_systems_words() {
        let full = Cause::from_io(&std::io::Error::from_raw_os_error(28));
        assert_eq!(
            (full.code, full.error.as_str()),
            ("spool_full", "no space left on device")
        );
        let eio = Cause::from_io(&std::io::Error::from_raw_os_error(5));
        assert_eq!(
            (eio.code, eio.error.as_str()),
            ("spool_io_error", "input/output error")
        );
        let backend = CatalogError::Backend("database or disk is full".into());
        let cause = Cause::from_catalog(&backend);
        assert_eq!(cause.code, "catalog_unavailable");
        assert_eq!(
            cause.error,
            "catalog backend failed: database or disk is full"
        );
    }

    #[test]
    fn an_episode_begins_once_and_ends_on_a_good_write() {
        let health = SpoolHealth::default();
        assert!(health.is_writable() && health.problem().is_none());
        let full = Cause::from_io(&std::io::Error::from_raw_os_error(28));
        for _ in 0..1000 {
            health.failed(&full);
        }
        assert_eq!(health.episodes(), 1);
        assert_eq!(
            health.problem().unwrap(),
            "the spool cannot be written: no space left on device"
        );
        health.writable();
        assert!(health.problem().is_none());
        health.failed(&full);
        assert_eq!(health.episodes(), 2);
    }
}
