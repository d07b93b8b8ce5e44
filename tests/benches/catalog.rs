//! Catalog writes on a SQLite file (WAL, `synchronous = FULL`): recording inserts and ledger appends
//! through the `Catalog` trait, one at a time (every write waits for its own durable commit) and
//! 64 at once (the group commit shares one commit between the writes queued while one runs), and,
//! as the floor, the same insert in plain rusqlite with a transaction and commit of its own. See
//! BENCHMARKS.md.

// criterion's group and main macros generate public functions without doc comments.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault::catalog::{Catalog, NewLedgerEntry, RecordingRow, RecordingStatus, SqliteCatalog};
use callvault::domain::{Codec, RecordingId};
use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn row(n: u64) -> RecordingRow {
    let now = Utc::now();
    RecordingRow {
        id: RecordingId::new(),
        call_id: format!("bench-{n}-{}", uuid::Uuid::now_v7().simple())
            .parse()
            .expect("call id"),
        status: RecordingStatus::Live,
        line: Some("+441632960001".into()),
        queue: None,
        agent: Some("agent-1".into()),
        caller_tag: Some([7; 32]),
        caller_sealed: None,
        policy: "standard".into(),
        codec: Codec::Pcmu,
        sample_rate: 8000,
        channels: 2,
        started_at: now,
        ended_at: None,
        expires_at: None,
        restricted: false,
        updated_at: now,
    }
}

/// One call's first writes: its recording row and a ledger entry.
async fn write_one(c: &SqliteCatalog, n: u64) {
    let r = row(n);
    c.insert_recording(&r).await.expect("insert");
    c.append_ledger(&NewLedgerEntry {
        recording_id: r.id,
        at: Utc::now(),
        kind: "media.opened".into(),
        actor: "bench".into(),
        reason: None,
        details: r#"{"codec":"PCMU"}"#.into(),
    })
    .await
    .expect("ledger");
}

fn bench_writes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Arc::new(SqliteCatalog::open(dir.path().join("catalog.sqlite")).expect("open"));
    let mut group = c.benchmark_group("catalog_writes");
    // a call's two writes per element
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_at_a_time", |b| {
        let mut n = 0;
        b.iter(|| {
            n += 1;
            rt.block_on(write_one(&catalog, n));
        });
    });
    group.bench_function("64_at_once", |b| {
        b.iter_custom(|iters| {
            let catalog = Arc::clone(&catalog);
            rt.block_on(async move {
                let started = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for w in 0..64u64 {
                    let catalog = Arc::clone(&catalog);
                    tasks.spawn(async move {
                        let mut i = w;
                        while i < iters {
                            write_one(&catalog, i).await;
                            i += 64;
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
                started.elapsed()
            })
        });
    });
    // the floor: what one durable SQLite commit of one small row costs on this disk
    let raw = rusqlite::Connection::open(dir.path().join("raw.sqlite")).expect("raw db");
    raw.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
    )
    .expect("raw schema");
    group.bench_function("plain_rusqlite_commit_per_row", |b| {
        b.iter(|| {
            raw.execute_batch("BEGIN IMMEDIATE; INSERT INTO t (v) VALUES ('x'); COMMIT")
                .expect("raw insert");
        });
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_writes
}
criterion_main!(benches);
