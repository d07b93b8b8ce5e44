//! The uploader: a queue of sealed spool files and the task that puts them in the object store.
//!
//! A segment is marked `stored` only after [`vault::put_verified`] has checked its size (and synced a
//! local store), and its spool file is deleted only after that. While the store (or the catalog)
//! fails, the file stays and the same upload is retried with exponential backoff and jitter; one
//! warning is logged per failure streak. A recording that was destroyed is never uploaded.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::backlog::chain;
use super::spool::{self, blocking};
use super::{Inner, PersistError};
use crate::catalog::{CatalogError, SegmentStatus};
use crate::domain::{RecordingId, SegmentNo};
use crate::vault;

/// The longest one upload may take (a segment of an hour of stereo G.711 is about 58 MB).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// A sealed spool file waiting for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Job {
    recording: RecordingId,
    segment: SegmentNo,
    path: PathBuf,
}

#[derive(Debug, Default)]
struct QueueState {
    /// By recording (UUIDv7: oldest first), then segment.
    queue: BTreeMap<(RecordingId, SegmentNo), PathBuf>,
    /// Recordings destroyed since start: never uploaded again, no new segment opened.
    destroyed: HashSet<RecordingId>,
}

/// The upload queue, shared by the segments that fill it and the task that empties it.
#[derive(Debug)]
pub(super) struct Uploads {
    // A std mutex: held only to read or change the queue, never across an `.await`.
    state: Mutex<QueueState>,
    wake: Notify,
    pending: watch::Sender<usize>,
    /// Segments whose close waits for the spool: pending too, not yet in the queue.
    waiting: std::sync::atomic::AtomicUsize,
    /// Wakes the uploader from a backoff wait (the spool's disk has room again).
    pub retry_now: Notify,
    /// Held by the uploader across one upload and its catalog update, and by `destroy_recording`
    /// while it destroys, so that no upload of a destroyed recording completes after it.
    pub gate: tokio::sync::Mutex<()>,
}

impl Default for Uploads {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            wake: Notify::new(),
            pending: watch::channel(0).0,
            waiting: std::sync::atomic::AtomicUsize::new(0),
            retry_now: Notify::new(),
            gate: tokio::sync::Mutex::new(()),
        }
    }
}

impl Uploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .expect("the upload queue lock is never poisoned: no panics while held")
    }

    fn publish(&self, state: &QueueState) {
        let n = state.queue.len() + self.waiting.load(std::sync::atomic::Ordering::Acquire);
        self.pending.send_replace(n);
        metrics::gauge!("callvault_spool_pending_segments").set(n as f64);
    }

    /// Queues a sealed spool file; false (and nothing queued) if its recording was destroyed.
    pub fn enqueue(&self, recording: RecordingId, segment: SegmentNo, path: PathBuf) -> bool {
        let mut state = self.lock();
        if state.destroyed.contains(&recording) {
            return false;
        }
        state.queue.insert((recording, segment), path);
        self.publish(&state);
        drop(state);
        self.wake.notify_one();
        true
    }

    /// Marks a recording destroyed and drops its queued uploads; returns how many were dropped.
    pub fn cancel_recording(&self, recording: RecordingId) -> usize {
        let mut state = self.lock();
        state.destroyed.insert(recording);
        let before = state.queue.len();
        state.queue.retain(|(r, _), _| *r != recording);
        let cancelled = before - state.queue.len();
        self.publish(&state);
        cancelled
    }

    /// Whether the recording was destroyed since start.
    pub fn is_destroyed(&self, recording: RecordingId) -> bool {
        self.lock().destroyed.contains(&recording)
    }

    /// Uploads pending, segments whose close waits for the spool included.
    pub fn len(&self) -> usize {
        self.lock().queue.len() + self.waiting.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Sets how many segments' closes wait for the spool.
    pub fn set_waiting(&self, n: usize) {
        let state = self.lock();
        self.waiting.store(n, std::sync::atomic::Ordering::Release);
        self.publish(&state);
    }

    /// A receiver of the number of uploads pending.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.pending.subscribe()
    }

    fn first(&self) -> Option<Job> {
        self.lock()
            .queue
            .iter()
            .next()
            .map(|(&(recording, segment), path)| Job {
                recording,
                segment,
                path: path.clone(),
            })
    }

    fn done(&self, job: &Job) {
        let mut state = self.lock();
        if state.queue.get(&(job.recording, job.segment)) == Some(&job.path) {
            state.queue.remove(&(job.recording, job.segment));
        }
        self.publish(&state);
    }
}

/// Why one upload did not complete.
enum Failure {
    /// The store or the catalog is unavailable: keep the file and try again later.
    Retry(PersistError),
    /// This job cannot be done now: drop it from the queue; its file stays for the next start.
    Skip(PersistError),
}

fn from_catalog(e: CatalogError) -> Failure {
    match e {
        CatalogError::Backend(_) => Failure::Retry(e.into()),
        _ => Failure::Skip(e.into()),
    }
}

/// Uploads queued files, one at a time, until `shutdown`. Uploads still pending then stay spooled.
pub(super) async fn run(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut delay = inner.config.retry_min;
    let mut streak = false;
    loop {
        let job = loop {
            if let Some(job) = inner.uploads.first() {
                break job;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = inner.uploads.wake.notified() => {}
            }
        };
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            outcome = upload(&inner, &job) => outcome,
        };
        match outcome {
            Ok(()) => {
                inner.uploads.done(&job);
                if streak {
                    info!("object store available again; spooled segments are uploading");
                }
                streak = false;
                delay = inner.config.retry_min;
            }
            Err(Failure::Skip(error)) => {
                error!(recording = %job.recording, segment = job.segment.0, error = %chain(&error), "segment not uploaded; it stays spooled until the next start");
                inner.uploads.done(&job);
            }
            Err(Failure::Retry(error)) => {
                metrics::counter!("callvault_upload_failures_total").increment(1);
                if !streak {
                    let cause = chain(&error);
                    match error {
                        PersistError::Vault(vault::VaultError::StoreAccessDenied(_)) => {
                            error!(recording = %job.recording, segment = job.segment.0, error = %cause, "object store refused the upload; segment stays spooled");
                        }
                        PersistError::Io { .. } => {
                            warn!(recording = %job.recording, segment = job.segment.0, error = %cause, "cannot read the spool file; segment stays spooled, retried");
                        }
                        PersistError::Catalog(_) => {
                            warn!(recording = %job.recording, segment = job.segment.0, error = %cause, "catalog unavailable; segment stays spooled, retried");
                        }
                        _ => {
                            warn!(recording = %job.recording, segment = job.segment.0, error = %cause, "object store unavailable; segment stays spooled");
                        }
                    }
                }
                streak = true;
                let jitter = rand::thread_rng().gen_range(0..=delay.as_millis() as u64 / 10);
                let wait = delay + Duration::from_millis(jitter);
                delay = (delay * 2).min(inner.config.retry_max);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                    () = inner.uploads.retry_now.notified() => delay = inner.config.retry_min,
                }
            }
        }
    }
}

/// Uploads one sealed spool file, marks its segment `stored`, and deletes the file.
async fn upload(inner: &Arc<Inner>, job: &Job) -> Result<(), Failure> {
    let _gate = inner.uploads.gate.lock().await;
    if inner.uploads.is_destroyed(job.recording) {
        // `destroy_recording` deletes the file.
        return Ok(());
    }
    let catalog = &inner.catalog;
    let recording = catalog
        .recording(job.recording)
        .await
        .map_err(from_catalog)?
        .ok_or(Failure::Skip(PersistError::UnknownRecording(job.recording)))?;
    let row = catalog
        .segments(job.recording)
        .await
        .map_err(from_catalog)?
        .into_iter()
        .find(|r| r.segment == job.segment);
    let Some(mut row) = row else {
        return Err(Failure::Skip(
            CatalogError::not_found(format!("segment {} of {}", job.segment, job.recording)).into(),
        ));
    };
    if row.status != SegmentStatus::Spooled || row.kek_id.is_none() {
        // Stored before a crash, or shredded since: either way the file must go, not up.
        remove(inner, job).await;
        return Ok(());
    }
    let path = job.path.clone();
    let bytes = blocking(move || std::fs::read(&path).map_err(PersistError::io(&path)))
        .await
        .map_err(|e| match &e {
            // gone: nothing to upload, ever; the next start's recovery retires the row
            PersistError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Failure::Skip(e)
            }
            // an I/O error reading the spool may pass (the disk is not full forever): keep trying
            PersistError::Io { .. } => Failure::Retry(e),
            _ => Failure::Skip(e),
        })?;
    // storage_codec = "flac" (issue 17): a 16-bit linear segment goes up as lossless FLAC; the
    // spool keeps the version crash recovery reads
    let (bytes, transcoded) = if inner.config.flac_policies.contains(&recording.policy) {
        crate::audio::flac::for_upload(&inner.keyring, &row, bytes).await
    } else {
        (bytes, false)
    };
    let key = vault::object_path(recording.started_at, job.recording, job.segment);
    let put = vault::put_verified(
        &inner.store,
        &inner.config.store_kind,
        &key,
        Bytes::from(bytes),
    );
    let (size, sha256) = match tokio::time::timeout(UPLOAD_TIMEOUT, put).await {
        Ok(result) => result.map_err(|e| Failure::Retry(e.into()))?,
        Err(_) => {
            return Err(Failure::Retry(PersistError::Store(
                object_store::Error::Generic {
                    store: "callvault",
                    source: format!("upload timed out after {}s", UPLOAD_TIMEOUT.as_secs()).into(),
                },
            )));
        }
    };
    if !transcoded && row.sha256.is_some_and(|sealed| sealed != sha256) {
        error!(recording = %job.recording, segment = job.segment.0, "spool file changed since it was sealed; uploaded as found, its chunks authenticate on read");
    }
    row.object_key = key.to_string();
    row.size = size;
    row.sha256 = Some(sha256);
    row.status = SegmentStatus::Stored;
    catalog.update_segment(&row).await.map_err(from_catalog)?;
    remove(inner, job).await;
    Ok(())
}

/// Deletes an uploaded (or unwanted) spool file and its recording directory when empty. A failure
/// is only logged: the next start's recovery finds the segment stored and deletes the file.
async fn remove(inner: &Arc<Inner>, job: &Job) {
    let path = job.path.clone();
    let inner2 = Arc::clone(inner);
    let removed = blocking(move || {
        spool::remove_file(&path)?;
        let _dirs = inner2
            .dirs
            .lock()
            .expect("the spool directory lock is never poisoned: no panics while held");
        spool::remove_dir_if_empty(spool::parent(&path))
    })
    .await;
    if let Err(error) = removed {
        warn!(recording = %job.recording, segment = job.segment.0, error = %chain(&error), "cannot delete uploaded spool file");
    }
}
