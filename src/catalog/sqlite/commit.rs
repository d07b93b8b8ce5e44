//! Group commit: operations queued while a batch runs go together in the next batch, in one
//! transaction, so a burst of writes (thousands of calls starting, pausing and ending) costs one
//! WAL sync per batch rather than one per operation.
//!
//! Each operation runs in its own savepoint inside the batch's `BEGIN IMMEDIATE` transaction: one
//! that fails or panics is rolled back to its savepoint alone, as its own transaction would have
//! been, and the others still commit. If the savepoint itself cannot be taken, rolled back to or
//! released, that promise cannot be kept, so the whole batch is rolled back: every operation that
//! ran hears an error, and those that had not run go first in the next batch. No caller hears of its result before the batch's `COMMIT`
//! returned, which with `synchronous = FULL` means it is on disk: "done" still survives a power cut.
//! One blocking-pool thread at most works for the catalog; a waiting operation costs a queued
//! closure, not a thread parked on the connection's mutex (which the spool and the local object
//! store, on the same pool, would otherwise queue behind).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::catalog::CatalogError;

/// Most operations in one transaction; the rest wait for the next.
const BATCH_MAX: usize = 256;

/// An operation, run against the connection; what it gives back is told to its caller once the
/// batch's commit is known.
type Op = Box<dyn FnOnce(&mut Connection) -> Ran + Send>;
/// Tells an operation's caller its result, given the batch commit's error if it failed.
type Tell = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

struct Ran {
    /// It failed or panicked: its savepoint is rolled back.
    failed: bool,
    tell: Tell,
}

struct Queue {
    ops: Vec<Op>,
    /// A blocking task is draining the queue.
    draining: bool,
}

/// The queue of catalog operations in front of one connection.
pub(super) struct GroupCommit {
    conn: Arc<Mutex<Connection>>,
    // A std mutex: held only to push or take operations, never across an `.await`.
    queue: Mutex<Queue>,
    /// Batches committed (or tried), for tests and the metric.
    batches: AtomicU64,
}

/// The commit of a batch failed, so the operation's changes were rolled back.
#[derive(Debug, thiserror::Error)]
#[error("the catalog transaction did not commit: {0}")]
struct CommitFailed(String);

impl GroupCommit {
    pub(super) fn new(conn: Arc<Mutex<Connection>>) -> Arc<Self> {
        Arc::new(Self {
            conn,
            queue: Mutex::new(Queue {
                ops: Vec::new(),
                draining: false,
            }),
            batches: AtomicU64::new(0),
        })
    }

    /// Batches run so far.
    #[cfg(test)]
    pub(super) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Operations waiting for a batch.
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ops
            .len()
    }

    /// The connection itself, for tests that edit the database behind the catalog's back.
    #[cfg(test)]
    pub(super) fn conn(&self) -> &Mutex<Connection> {
        &self.conn
    }

    /// Runs `f` in the next batch and returns its result once the batch committed.
    pub(super) async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, CatalogError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, CatalogError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<std::thread::Result<Result<T, CatalogError>>>();
        let op: Op = Box::new(move |conn| {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)));
            Ran {
                failed: !matches!(result, Ok(Ok(_))),
                tell: Box::new(move |commit_error| {
                    let result = match (result, commit_error) {
                        (Ok(Ok(_)), Some(e)) => Ok(Err(CatalogError::Backend(Box::new(
                            CommitFailed(e.to_string()),
                        )))),
                        (result, _) => result,
                    };
                    let _ = tx.send(result);
                }),
            }
        });
        let lead = {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            q.ops.push(op);
            !std::mem::replace(&mut q.draining, true)
        };
        if lead {
            let me = Arc::clone(self);
            tokio::task::spawn_blocking(move || me.drain());
        }
        match rx.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(CatalogError::Backend(Box::new(CommitFailed(
                "the catalog worker stopped".into(),
            )))),
        }
    }

    /// Runs batches until the queue is empty.
    fn drain(&self) {
        loop {
            let ops: Vec<Op> = {
                let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if q.ops.is_empty() {
                    q.draining = false;
                    return;
                }
                let n = q.ops.len().min(BATCH_MAX);
                q.ops.drain(..n).collect()
            };
            // A panic cannot poison this lock while held: every operation runs in catch_unwind.
            let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
            self.batches.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("callvault_catalog_batches_total").increment(1);
            metrics::counter!("callvault_catalog_ops_total").increment(ops.len() as u64);
            let unrun = batch(&mut conn, ops);
            if !unrun.is_empty() {
                // an aborted batch's operations that did not run go first in the next one
                let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                q.ops.splice(0..0, unrun);
            }
        }
    }
}

/// Runs one batch; returns the operations it did not run (an aborted batch's rest), to run next.
fn batch(conn: &mut Connection, ops: Vec<Op>) -> Vec<Op> {
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        // left open by something that failed half-way: start from a clean state
        tracing::error!(error = %e, "catalog: a transaction left open cannot be rolled back");
    }
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // no transaction to share (another process held the write lock past the busy timeout):
        // each operation runs on its own, as it would without batching
        tracing::warn!(error = %e, ops = ops.len(), "catalog batch could not begin; running one by one");
        for op in ops {
            (op(conn).tell)(None);
        }
        return Vec::new();
    }
    let mut ran = Vec::with_capacity(ops.len());
    let mut ops = ops.into_iter();
    let mut aborted = None;
    for op in ops.by_ref() {
        // without its savepoint an operation's writes could not be undone alone: the batch stops
        if let Err(e) = conn.execute_batch("SAVEPOINT cv_op") {
            aborted = Some((e, Some(op)));
            break;
        }
        let r = op(conn);
        let end = if r.failed {
            "ROLLBACK TO cv_op; RELEASE cv_op"
        } else {
            "RELEASE cv_op"
        };
        ran.push(r.tell);
        // a failed operation whose writes cannot be rolled back alone (or a savepoint that cannot
        // be released) must not commit with the others: the whole batch is rolled back
        if let Err(e) = conn.execute_batch(end) {
            aborted = Some((e, None));
            break;
        }
    }
    if let Some((e, unrun)) = aborted {
        tracing::error!(error = %e, "catalog savepoint failed; the batch is rolled back");
        metrics::counter!("callvault_catalog_batches_aborted_total").increment(1);
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "catalog: rolling back an aborted batch failed");
        }
        // every operation that ran is told its writes are gone; those that did not run wait for
        // the next batch
        for tell in ran {
            tell(Some(&e));
        }
        return unrun.into_iter().chain(ops).collect();
    }
    let commit = conn.execute_batch("COMMIT");
    if commit.is_err()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(error = %e, "catalog: rolling back a failed commit failed");
    }
    let error = commit.err();
    for tell in ran {
        tell(error.as_ref());
    }
    Vec::new()
}

#[cfg(test)]
mod tests;
