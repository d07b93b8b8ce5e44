//! The retention worker: one task that sweeps on `retention.sweep_interval` and on demand, and a
//! cheap handle to ask it for a sweep and read its status.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info_span, warn};

use super::{Retention, RetentionError, SweepOptions, SweepReport};
use crate::catalog::RetentionProgress;

/// Sweep requests waiting for the worker; more are refused as busy (a sweep is coming anyway).
const QUEUE: usize = 4;

type Reply = oneshot::Sender<Result<SweepReport, String>>;

/// What the worker is doing and has done, for `/metrics` and the admin listener.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WorkerStatus {
    /// A sweep is running now.
    pub running: bool,
    /// When the running (or last) sweep started.
    pub started_at: Option<DateTime<Utc>>,
    /// What the last sweep of this process did.
    pub last_report: Option<SweepReport>,
    /// Why the last sweep of this process failed, if it did.
    pub last_error: Option<String>,
    /// Seconds between timed sweeps.
    pub sweep_interval_secs: u64,
    /// Recordings per batch.
    pub batch_size: usize,
}

/// A handle to the running worker: ask for a sweep, read its status. A cheap `Clone`.
#[derive(Debug, Clone)]
pub struct RetentionHandle {
    requests: mpsc::Sender<Reply>,
    // A std mutex: held only to copy or update the status, never across an `.await`.
    status: Arc<Mutex<WorkerStatus>>,
    retention: Retention,
}

/// Why an on-demand sweep did not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepRequestError {
    /// The worker is stopping.
    #[error("the retention worker is stopped")]
    Stopped,
    /// Enough sweeps are queued already.
    #[error("sweeps are queued already")]
    Busy,
    /// The sweep failed.
    #[error("sweep failed: {0}")]
    Failed(String),
}

impl RetentionHandle {
    /// Runs a sweep now (after the one running, if any) and returns what it did.
    pub async fn sweep_now(&self) -> Result<SweepReport, SweepRequestError> {
        let (tx, rx) = oneshot::channel();
        self.requests.try_send(tx).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SweepRequestError::Busy,
            mpsc::error::TrySendError::Closed(_) => SweepRequestError::Stopped,
        })?;
        rx.await
            .map_err(|_| SweepRequestError::Stopped)?
            .map_err(SweepRequestError::Failed)
    }

    /// The worker's status in this process.
    pub fn status(&self) -> WorkerStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The counters kept in the catalog across restarts.
    pub async fn progress(&self) -> Result<RetentionProgress, RetentionError> {
        Ok(self.retention.catalog.retention_progress().await?)
    }
}

/// Starts the worker on `tracker`: a sweep at start, then one every `retention.sweep_interval` and
/// one per [`RetentionHandle::sweep_now`]; it stops on `shutdown` (a sweep in progress stops between
/// batches at the next start, finished by the next run).
pub fn spawn(
    retention: Retention,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> RetentionHandle {
    let interval = retention.config.retention.sweep_interval;
    let (tx, rx) = mpsc::channel(QUEUE);
    let status = Arc::new(Mutex::new(WorkerStatus {
        sweep_interval_secs: interval.as_secs(),
        batch_size: retention.config.retention.batch_size,
        ..WorkerStatus::default()
    }));
    let handle = RetentionHandle {
        requests: tx,
        status: Arc::clone(&status),
        retention: retention.clone(),
    };
    tracker
        .spawn(run(retention, interval, rx, status, shutdown).instrument(info_span!("retention")));
    handle
}

async fn run(
    retention: Retention,
    interval: Duration,
    mut requests: mpsc::Receiver<Reply>,
    status: Arc<Mutex<WorkerStatus>>,
    shutdown: CancellationToken,
) {
    let mut next = tokio::time::Instant::now();
    loop {
        let reply = tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(next) => None,
            r = requests.recv() => match r {
                Some(r) => Some(r),
                None => return,
            },
        };
        if reply.is_none() {
            next = tokio::time::Instant::now() + interval.max(Duration::from_secs(1));
        }
        set(&status, |s| {
            s.running = true;
            s.started_at = Some(retention.clock.now());
        });
        let options = SweepOptions::default();
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            r = retention.sweep(&options) => r,
        };
        let result = result.map_err(|e| {
            warn!(error = %e, "retention sweep failed");
            e.to_string()
        });
        set(&status, |s| {
            s.running = false;
            match &result {
                Ok(report) => {
                    s.last_report = Some(report.clone());
                    s.last_error = None;
                }
                Err(e) => s.last_error = Some(e.clone()),
            }
        });
        metrics::gauge!("callvault_retention_last_sweep_timestamp_seconds")
            .set(retention.clock.now().timestamp() as f64);
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
}

fn set(status: &Mutex<WorkerStatus>, f: impl FnOnce(&mut WorkerStatus)) {
    f(&mut status.lock().unwrap_or_else(PoisonError::into_inner));
}
