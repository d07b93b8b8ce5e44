//! The reconciler's task: a pass at start, then one every `completeness.interval` and one per
//! [`ReconcileHandle::reconcile_now`]; after each, the gauges `callvault_calls{state}` and
//! `callvault_calls_pending` (calls that started in the last 24 hours) from the catalog, and once a
//! day (UTC) a summary line of the day before in the log.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use super::{PassReport, Reconciler};
use crate::domain::completeness::CompletenessState;

/// The calls the gauges count: those that started this recently.
const GAUGE_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// Requests waiting for the task; more are refused as busy (a pass is coming anyway).
const QUEUE: usize = 4;

type Reply = oneshot::Sender<Result<PassReport, String>>;

/// A handle to the running reconciler: a cheap `Clone`.
#[derive(Debug, Clone)]
pub struct ReconcileHandle {
    requests: mpsc::Sender<Reply>,
}

/// Why an on-demand pass did not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The task is stopped.
    #[error("the completeness reconciler is stopped")]
    Stopped,
    /// Enough passes are queued already.
    #[error("passes are queued already")]
    Busy,
    /// The pass failed.
    #[error("reconciliation failed: {0}")]
    Failed(String),
}

impl ReconcileHandle {
    /// Runs a pass now (after the one running, if any) and returns what it did.
    pub async fn reconcile_now(&self) -> Result<PassReport, ReconcileError> {
        let (tx, rx) = oneshot::channel();
        self.requests.try_send(tx).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ReconcileError::Busy,
            mpsc::error::TrySendError::Closed(_) => ReconcileError::Stopped,
        })?;
        rx.await
            .map_err(|_| ReconcileError::Stopped)?
            .map_err(ReconcileError::Failed)
    }
}

/// Starts the reconciler on `tracker`; it stops on `shutdown` (between calls: a call is settled in
/// one transaction or not at all).
pub fn spawn(
    reconciler: Reconciler,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> ReconcileHandle {
    let (tx, rx) = mpsc::channel(QUEUE);
    tracker.spawn(run(reconciler, rx, shutdown).instrument(info_span!("completeness")));
    ReconcileHandle { requests: tx }
}

async fn run(
    reconciler: Reconciler,
    mut requests: mpsc::Receiver<Reply>,
    shutdown: CancellationToken,
) {
    let interval = reconciler.config.completeness.interval;
    let mut next = tokio::time::Instant::now();
    let mut summarised: Option<NaiveDate> = None;
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
            next = tokio::time::Instant::now() + interval.max(Duration::from_millis(100));
        }
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            r = reconciler.pass() => r,
        };
        let result = result.map_err(|e| {
            warn!(error = %e, "completeness pass failed; the next one retries");
            e.to_string()
        });
        if let Err(e) = gauges(&reconciler).await {
            warn!(error = %e, "cannot count calls by completeness state");
        }
        let today = reconciler.clock.now().date_naive();
        if summarised != Some(today) {
            match summary(&reconciler, today).await {
                Ok(()) => summarised = Some(today),
                Err(e) => warn!(error = %e, "cannot write the daily completeness summary"),
            }
        }
        if let Some(reply) = reply {
            // the asker may have given up waiting: nothing to tell then
            let _ = reply.send(result);
        }
    }
}

/// Sets `callvault_calls{state}` and `callvault_calls_pending`: the calls that started in the last
/// [`GAUGE_WINDOW`], by state (a range of the catalog's time index, so a pass stays cheap however
/// many calls the catalog holds).
async fn gauges(r: &Reconciler) -> Result<(), crate::catalog::CatalogError> {
    let now = r.clock.now();
    let totals = r
        .catalog
        .call_totals(Some(now - GAUGE_WINDOW), None)
        .await?;
    for state in CompletenessState::ALL {
        metrics::gauge!("callvault_calls", "state" => state.as_str()).set(totals.of(state) as f64);
    }
    metrics::gauge!("callvault_calls_pending").set(totals.pending as f64);
    Ok(())
}

/// One log line with the totals of the UTC day before `today`.
async fn summary(r: &Reconciler, today: NaiveDate) -> Result<(), crate::catalog::CatalogError> {
    let day_start =
        |d: NaiveDate| -> Option<DateTime<Utc>> { Some(d.and_hms_opt(0, 0, 0)?.and_utc()) };
    let (Some(yesterday), Some(to)) = (today.pred_opt(), day_start(today)) else {
        return Ok(());
    };
    let from = day_start(yesterday);
    let t = r.catalog.call_totals(from, Some(to)).await?;
    let of = |s| t.of(s);
    info!(
        day = %yesterday,
        calls = t.calls(),
        recorded = of(CompletenessState::Recorded),
        partial = of(CompletenessState::Partial),
        not_recorded = of(CompletenessState::NotRecorded),
        withheld = of(CompletenessState::Withheld),
        failed = of(CompletenessState::Failed),
        pending = t.pending,
        "completeness summary"
    );
    Ok(())
}
