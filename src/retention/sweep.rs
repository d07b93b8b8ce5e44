//! The sweep: finishes what the journal holds (any cause: an interrupted erasure, refusal or
//! excision too), then deletes what expired and the refusals whose last hold was released, through
//! the one destruction path ([`super::destroy`]).

use futures::StreamExt;
use tracing::info;

use super::destroy::Deleted;
use super::{Retention, RetentionError, SYSTEM_ACTOR};
use crate::catalog::{DeletionCause, PendingDeletion, RecordingRow, RecordingStatus};

/// Recordings whose objects are deleted at the same time.
const CONCURRENT_DELETES: usize = 16;

/// How a sweep runs.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// Recordings taken per batch (`retention.batch_size` when zero).
    pub batch_size: usize,
    /// Only finish the deletions an earlier run left pending (at start-up, before the spool is
    /// recovered, so no spool file of a refused call is uploaded again); not counted as a sweep.
    pub pending_only: bool,
    /// Test hook: stop, as a crash would, once this many recordings have had their objects deleted,
    /// before their batch is finished in the catalog. The next sweep finishes them.
    #[doc(hidden)]
    pub stop_after: Option<usize>,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Recordings deleted at expiry.
    pub expired: u64,
    /// Erasures left unfinished by an earlier run and finished by this one.
    pub erased: u64,
    /// Refusals destroyed: kept under a hold since released, or left unfinished by an earlier run.
    pub refused: u64,
    /// Excisions left unfinished by an earlier run and finished by this one.
    pub excised: u64,
    /// Of those deleted, how many an earlier, interrupted run had begun.
    pub resumed: u64,
    /// Objects deleted from the store.
    pub objects_deleted: u64,
    /// Objects the store failed to delete (their keys are shredded all the same).
    pub objects_failed: u64,
    /// Batches done.
    pub batches: u64,
    /// Stopped by the test hook before finishing.
    pub stopped: bool,
    /// Not run: another node sharing the catalog holds the sweep lock (and is sweeping).
    pub skipped: bool,
}

impl std::fmt::Display for SweepReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.skipped {
            return f.write_str("skipped: another node is sweeping (it holds the sweep lock)");
        }
        write!(
            f,
            "deleted {} expired, {} erased and {} refused recordings and {} excised segments ({} resumed from an earlier run); {} objects deleted, {} failed",
            self.expired,
            self.erased,
            self.refused,
            self.excised,
            self.resumed,
            self.objects_deleted,
            self.objects_failed
        )
    }
}

impl SweepReport {
    /// Recordings (and segments) destroyed.
    fn done(&self) -> u64 {
        self.expired + self.erased + self.refused + self.excised
    }
}

impl Retention {
    /// Runs one sweep: finishes the deletions an earlier run left pending, then deletes every
    /// expired, unheld recording, a batch at a time, and saves the worker's counters.
    ///
    /// Only while holding the catalog's sweep lock, so that of the nodes sharing a catalog one
    /// sweeps at a time; if another holds it, returns at once a report marked
    /// [`skipped`](SweepReport::skipped) (that node's sweep does the work).
    pub async fn sweep(&self, options: &SweepOptions) -> Result<SweepReport, RetentionError> {
        let Some(_lock) = self.catalog.try_lock_sweep().await? else {
            info!("another node is sweeping; this sweep is skipped");
            metrics::counter!("callvault_retention_sweeps_skipped_total").increment(1);
            return Ok(SweepReport {
                skipped: true,
                ..SweepReport::default()
            });
        };
        let batch = match options.batch_size {
            0 => self.config.retention.batch_size.max(1),
            n => n,
        };
        let started = self.clock.now();
        let mut progress = self.catalog.retention_progress().await?;
        progress.last_started_at = Some(started);
        self.catalog.save_retention_progress(&progress).await?;
        let result = self
            .sweep_batches(batch, options.stop_after, options.pending_only)
            .await;
        let mut progress = self.catalog.retention_progress().await?;
        match &result {
            Ok(report) => {
                progress.expired += report.expired;
                progress.erased += report.erased;
                if !report.stopped && !options.pending_only {
                    progress.sweeps += 1;
                    progress.last_finished_at = Some(self.clock.now());
                    progress.last_deleted = report.done();
                    progress.last_error = None;
                }
                metrics::counter!("callvault_retention_sweeps_total").increment(1);
                if report.done() > 0 {
                    info!(
                        expired = report.expired,
                        erased = report.erased,
                        refused = report.refused,
                        excised = report.excised,
                        resumed = report.resumed,
                        "retention sweep deleted recordings"
                    );
                }
            }
            Err(e) => {
                progress.last_error = Some(e.to_string());
                metrics::counter!("callvault_retention_sweep_failures_total").increment(1);
            }
        }
        self.catalog.save_retention_progress(&progress).await?;
        result
    }

    async fn sweep_batches(
        &self,
        batch: usize,
        stop_after: Option<usize>,
        pending_only: bool,
    ) -> Result<SweepReport, RetentionError> {
        let mut report = SweepReport::default();
        let mut budget = stop_after;
        // first what an earlier run committed to and did not finish
        loop {
            let pending = self.catalog.pending_deletions(batch).await?;
            if pending.is_empty() {
                break;
            }
            let before = report.done();
            let pending = pending.into_iter().map(|p| (p, None)).collect();
            if !self.delete_batch(pending, &mut report, &mut budget).await? {
                return Ok(report);
            }
            report.resumed += report.done() - before;
        }
        if pending_only {
            return Ok(report);
        }
        let now = self.clock.now();
        loop {
            let due = self.catalog.expired_recordings(now, batch).await?;
            if due.is_empty() {
                break;
            }
            let pending: Vec<PendingDeletion> = due
                .iter()
                .map(|r| {
                    let (cause, reason) = if r.status == RecordingStatus::RefusalHeld {
                        (
                            DeletionCause::Refused,
                            "consent refused under a hold; its last hold was released".to_owned(),
                        )
                    } else {
                        (
                            DeletionCause::Expired,
                            format!("retention period of policy {} ended", r.policy),
                        )
                    };
                    PendingDeletion {
                        recording_id: r.id,
                        cause,
                        actor: SYSTEM_ACTOR.to_owned(),
                        reason: Some(reason),
                        requested_at: now,
                        segment: None,
                    }
                })
                .collect();
            let begun = self.catalog.begin_deletions(&pending).await?;
            let mut rows: std::collections::HashMap<_, _> =
                due.into_iter().map(|r| (r.id, r)).collect();
            let pending: Vec<(PendingDeletion, Option<RecordingRow>)> = pending
                .into_iter()
                .filter(|p| begun.contains(&p.recording_id))
                .map(|p| {
                    let row = rows.remove(&p.recording_id);
                    (p, row)
                })
                .collect();
            if pending.is_empty() {
                // everything selected was held or deleted meanwhile; the query will not return it
                continue;
            }
            if !self.delete_batch(pending, &mut report, &mut budget).await? {
                return Ok(report);
            }
        }
        Ok(report)
    }

    /// Deletes the objects of a batch of pending deletions, then finishes them in one transaction.
    /// False if the test hook stopped it first.
    async fn delete_batch(
        &self,
        pending: Vec<(PendingDeletion, Option<RecordingRow>)>,
        report: &mut SweepReport,
        budget: &mut Option<usize>,
    ) -> Result<bool, RetentionError> {
        let take = match budget {
            Some(left) => pending.len().min(*left),
            None => pending.len(),
        };
        let stop = take < pending.len();
        let results: Vec<Result<Option<Deleted>, RetentionError>> =
            futures::stream::iter(pending.into_iter().take(take))
                .map(|(p, row)| self.delete_objects_of(p, row))
                .buffered(CONCURRENT_DELETES)
                .collect()
                .await;
        if let Some(left) = budget {
            *left -= take;
        }
        if stop {
            report.stopped = true;
            return Ok(false);
        }
        let mut finished = Vec::with_capacity(results.len());
        for r in results {
            let Some(d) = r? else { continue };
            report.objects_deleted += d.objects_deleted;
            report.objects_failed += d.objects_failed;
            match (d.finished.segment, d.finished.status) {
                (Some(_), _) => report.excised += 1,
                (None, RecordingStatus::Erased) => report.erased += 1,
                (None, RecordingStatus::Refused) => report.refused += 1,
                (None, _) => report.expired += 1,
            }
            finished.push(d.finished);
        }
        let n = self.catalog.finish_deletions(&finished).await?;
        report.batches += 1;
        metrics::counter!("callvault_retention_deleted_total").increment(n as u64);
        Ok(true)
    }
}
