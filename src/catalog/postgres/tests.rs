//! The conformance suite on a real PostgreSQL, and what only a shared server can show: two nodes on
//! one chain, the sweep lock between nodes, nodes migrating together, a newer schema, an
//! unreachable server, and tampering with stored audit rows.
//!
//! The server is `$CALLVAULT_TEST_POSTGRES` (a connection string), by default the CI's: trust auth
//! on 127.0.0.1:5432, user `postgres`, database `test`. Each test works in a schema of its own,
//! created for it and dropped after it, so the tests run in parallel in one database. A server that
//! cannot be reached fails the tests, naming it: CI has one, so a skip would hide a broken setup.

use std::sync::Arc;

use chrono::DateTime;

use super::*;
use crate::audit::ChainVerifier;
use crate::catalog::conformance::catalog_conformance;

/// The test server's connection string.
pub(crate) fn server_url() -> String {
    std::env::var("CALLVAULT_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_owned())
}

/// A plain connection to the test server, for setting up and inspecting; panics, naming the
/// server, if it cannot be reached.
async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => panic!(
            "PostgreSQL is not reachable at `{url}`: {e}. The postgres catalog tests need a \
             server: .ci/run starts one; or set CALLVAULT_TEST_POSTGRES to a connection string"
        ),
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A schema of one test's own, dropped when this is dropped.
pub(crate) struct Scratch {
    server: String,
    schema: String,
    /// A connection string whose `search_path` is the schema.
    pub(crate) url: String,
}

impl Scratch {
    pub(crate) async fn new() -> Scratch {
        let server = server_url();
        let schema = format!("cv_t_{}", uuid::Uuid::now_v7().simple());
        admin(&server)
            .await
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create the test schema");
        let url = format!("{server} options='-c search_path={schema}'");
        Scratch {
            server,
            schema,
            url,
        }
    }

    /// A node's catalog on the schema.
    pub(crate) async fn open(&self) -> PostgresCatalog {
        PostgresCatalog::open(&self.url, None)
            .await
            .expect("open the postgres catalog")
    }

    /// Runs SQL straight on the schema, as someone with database access could.
    async fn raw(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        let c = admin(&self.server).await;
        c.batch_execute(&format!("SET search_path = {}; {sql}", self.schema))
            .await
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Drop cannot await: a thread with a runtime of its own drops the schema, and is waited for
        let (server, schema) = (self.server.clone(), self.schema.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let c = admin(&server).await;
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
            })
        })
        .join();
    }
}

async fn scratch_catalog() -> (Arc<dyn Catalog>, Scratch) {
    let scratch = Scratch::new().await;
    let catalog = scratch.open().await;
    (Arc::new(catalog) as Arc<dyn Catalog>, scratch)
}

catalog_conformance!(scratch_catalog().await);

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_355_600 + secs, 250_000).expect("valid time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_appending_at_once_make_one_chain() {
    let scratch = Scratch::new().await;
    let nodes: [Arc<dyn Catalog>; 2] = [
        Arc::new(scratch.open().await),
        Arc::new(scratch.open().await),
    ];
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let node = Arc::clone(&nodes[i % 2]);
            tokio::spawn(async move {
                node.append_audit(NewAuditEntry::new(
                    t(i as i64),
                    format!("node-{}", i % 2),
                    "recording.play",
                    format!("rec-{i}"),
                ))
                .await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.expect("task").expect("append").seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=60).collect::<Vec<u64>>(), "no seq taken twice");
    // each node reads the same chain, and it verifies
    for node in &nodes {
        let entries = node.audit_after(0, 1000).await.expect("read");
        let mut v = ChainVerifier::new();
        entries.iter().for_each(|e| v.push(e));
        let head = node.audit_head().await.expect("head");
        assert_eq!(v.finish(), Ok((head, 60)));
        let by: Vec<_> = entries
            .iter()
            .filter(|e| e.entry.actor == "node-1")
            .collect();
        assert_eq!(by.len(), 30, "both nodes' entries are in it");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_at_a_time_holds_the_sweep_lock() {
    let scratch = Scratch::new().await;
    let (a, b) = (scratch.open().await, scratch.open().await);
    let held = a.try_lock_sweep().await.expect("lock").expect("a takes it");
    for _ in 0..3 {
        assert!(
            b.try_lock_sweep().await.expect("lock").is_none(),
            "b cannot take it while a holds it"
        );
    }
    assert!(
        a.try_lock_sweep().await.expect("lock").is_none(),
        "nor can a second sweep on a itself"
    );
    // another catalog in the same database has a lock of its own
    let other = Scratch::new().await;
    let other = other.open().await;
    assert!(other.try_lock_sweep().await.expect("lock").is_some());
    b.check().await.expect("b still answers");

    drop(held);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let taken = loop {
        if let Some(l) = b.try_lock_sweep().await.expect("lock") {
            break l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never got the lock a released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(a.try_lock_sweep().await.expect("lock").is_none());
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let scratch = Scratch::new().await;
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = scratch.url.clone();
            tokio::spawn(async move { PostgresCatalog::open(&url, None).await })
        })
        .collect();
    for o in opens {
        o.await.expect("task").expect("every node opens");
    }
    let c = scratch.open().await.client().await.expect("client");
    let versions: Vec<i32> = c
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("read")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(PostgresCatalog::schema_version(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let scratch = Scratch::new().await;
    drop(scratch.open().await);
    scratch
        .raw("INSERT INTO schema_migrations (version, applied_at) VALUES (99, now())")
        .await
        .expect("raw sql");
    match PostgresCatalog::open(&scratch.url, None).await {
        Err(CatalogError::Migration { version: 99, .. }) => {}
        other => panic!("a newer schema must be refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_without_a_schema_is_refused() {
    let url = format!("{} options='-c search_path=cv_t_absent'", server_url());
    match PostgresCatalog::open(&url, None).await {
        Err(CatalogError::Migration { version: 0, reason }) => {
            assert!(reason.contains("search_path"), "{reason}");
        }
        other => panic!("no schema, no catalog: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_backend_error_soon() {
    // nothing listens on port 1 of the loopback address
    let started = std::time::Instant::now();
    match PostgresCatalog::open("host=127.0.0.1 port=1 user=postgres dbname=test", None).await {
        Err(CatalogError::Backend(e)) => {
            let text = format!("{e}");
            assert!(!text.is_empty());
        }
        other => panic!("an unreachable server must fail the open: {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

#[test]
fn connection_strings_without_secrets_or_tls_are_taken() {
    let ok = parse_url("host=db.internal port=5433 user=callvault dbname=callvault").expect("ok");
    assert_eq!(ok.get_dbname(), Some("callvault"));
    parse_url("postgresql://callvault@db.internal/callvault").expect("url form");
    let refused = [
        ("host=db user=callvault password=hunter2", "password"),
        ("postgresql://callvault:hunter2@db/callvault", "password"),
        ("host=db user=callvault sslmode=require", "sslmode"),
        ("host=db user=callvault nonsense=1", "nonsense"),
    ];
    for (url, why) in refused {
        let e = parse_url(url).expect_err(url);
        assert!(e.contains(why), "{url}: {e}");
        assert!(
            !e.contains("hunter2"),
            "the refusal does not repeat the password: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_audit_rows_cannot_be_changed_or_removed() {
    let scratch = Scratch::new().await;
    let c = scratch.open().await;
    for i in 0..3 {
        c.append_audit(NewAuditEntry::new(t(i), "alice", "recording.play", "r"))
            .await
            .expect("append");
    }
    for sql in [
        "UPDATE audit SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 3",
        "TRUNCATE audit",
    ] {
        let e = scratch.raw(sql).await.expect_err(sql);
        assert!(
            format!("{e:?}").contains("append-only"),
            "{sql} is refused by the trigger: {e:?}"
        );
    }
    let mut v = ChainVerifier::new();
    c.audit_after(0, 10)
        .await
        .expect("read")
        .iter()
        .for_each(|e| v.push(e));
    assert_eq!(v.finish().map(|(_, n)| n), Ok(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_edited_outside_callvault_is_corrupt_not_a_panic() {
    let scratch = Scratch::new().await;
    let c = scratch.open().await;
    let id = RecordingId::new();
    scratch
        .raw(&format!(
            "INSERT INTO recordings (id, call_id, status, policy, codec, sample_rate, channels, \
             started_at, restricted, updated_at) VALUES ('{id}', 'CA-x', 'bogus', 'standard', 0, \
             8000, 2, now(), false, now())"
        ))
        .await
        .expect("raw sql");
    assert!(matches!(
        c.recording(id).await,
        Err(CatalogError::Corrupt { .. })
    ));
}
