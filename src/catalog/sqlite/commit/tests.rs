//! Fault injection in the group commit: what a batch does when one operation fails, and when the
//! savepoint that isolates it fails.

use std::sync::mpsc;

use super::*;

/// A group commit over a scratch table `t (x)`, in memory.
fn scratch() -> Arc<GroupCommit> {
    let conn = Connection::open_in_memory().expect("open");
    conn.execute_batch("CREATE TABLE t (x INTEGER NOT NULL PRIMARY KEY)")
        .expect("table");
    GroupCommit::new(Arc::new(Mutex::new(conn)))
}

fn insert(conn: &mut Connection, x: i64) -> Result<(), CatalogError> {
    conn.execute("INSERT INTO t (x) VALUES (?1)", [x])?;
    Ok(())
}

fn rows(gc: &GroupCommit) -> Vec<i64> {
    let conn = gc.conn().lock().expect("not poisoned");
    let mut stmt = conn.prepare("SELECT x FROM t ORDER BY x").expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

type TestOp = Box<dyn FnOnce(&mut Connection) -> Result<(), CatalogError> + Send>;

/// Runs `ops` (each given its index) in one batch: a first operation holds the worker until all
/// of them are queued behind it, so they are taken together. Returns their results, in order.
async fn one_batch(gc: &Arc<GroupCommit>, ops: Vec<TestOp>) -> Vec<Result<(), CatalogError>> {
    let (release, wait) = mpsc::channel::<()>();
    let blocker = {
        let gc = Arc::clone(gc);
        tokio::spawn(async move {
            gc.run(move |_| {
                wait.recv().expect("released");
                Ok(())
            })
            .await
        })
    };
    while gc.batches() == 0 {
        tokio::task::yield_now().await;
    }
    // queued one after the other, so the batch runs them in this order
    let mut tasks = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        let runner = Arc::clone(gc);
        tasks.push(tokio::spawn(async move { runner.run(op).await }));
        while gc.queued() <= i {
            tokio::task::yield_now().await;
        }
    }
    let before = gc.batches();
    release.send(()).expect("release");
    blocker.await.expect("no panic").expect("blocker commits");
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("no panic"));
    }
    assert!(gc.batches() - before <= 2, "the operations shared a batch");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_operation_rolls_back_alone_and_the_others_commit() {
    let gc = scratch();
    let results = one_batch(
        &gc,
        vec![
            Box::new(|c| insert(c, 1)),
            Box::new(|c| {
                // writes, then fails: its write must not commit
                insert(c, 2)?;
                Err(CatalogError::conflict("injected"))
            }),
            Box::new(|c| insert(c, 3)),
        ],
    )
    .await;
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(CatalogError::Conflict { .. })));
    assert!(results[2].is_ok());
    assert_eq!(rows(&gc), vec![1, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_rollback_to_fails_is_aborted_whole() {
    let gc = scratch();
    let results = one_batch(
        &gc,
        vec![
            Box::new(|c| insert(c, 1)),
            Box::new(|c| {
                insert(c, 2)?;
                // the fault: its savepoint is gone, so ROLLBACK TO cannot undo its write alone
                c.execute_batch("RELEASE cv_op")?;
                Err(CatalogError::conflict("injected"))
            }),
            Box::new(|c| insert(c, 3)),
        ],
    )
    .await;
    // nothing of the batch committed, and nobody was told it had
    assert!(
        results[0].is_err(),
        "the first operation's write was rolled back with the batch"
    );
    assert!(results[1].is_err());
    assert!(
        !rows(&gc).contains(&2),
        "the failed operation's write never commits"
    );
    assert!(!rows(&gc).contains(&1));
    // the operation that had not run runs in the next batch
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert_eq!(rows(&gc), vec![3]);
    // and the catalog goes on
    gc.run(|c| insert(c, 4)).await.expect("writes again");
    assert_eq!(rows(&gc), vec![3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_release_fails_is_aborted_whole() {
    let gc = scratch();
    let results = one_batch(
        &gc,
        vec![
            Box::new(|c| insert(c, 1)),
            Box::new(|c| {
                insert(c, 2)?;
                // succeeds, but leaves no savepoint to release
                c.execute_batch("RELEASE cv_op")?;
                Ok(())
            }),
        ],
    )
    .await;
    assert!(results.iter().all(Result::is_err), "{results:?}");
    assert!(rows(&gc).is_empty());
}
