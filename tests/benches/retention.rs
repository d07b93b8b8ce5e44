//! Sweep throughput: 100,000 expired recordings (one 1 KiB object each) on local disk, a SQLite
//! catalog on file, deleted by one `Retention::sweep`; prints recordings per second.
//!
//! `cargo bench --bench retention` (set `RETENTION_BENCH_N` for another count). The catalog is
//! seeded with plain SQL in one transaction, because seeding 100,000 rows through the catalog (one
//! durable commit each) would take far longer than the sweep being measured.

use std::sync::Arc;
use std::time::Instant;

use callvault::catalog::{Catalog, SqliteCatalog};
use callvault::config::Config;
use callvault::domain::{ManualClock, RecordingId, SegmentNo};
use callvault::retention::{Retention, SweepOptions};
use callvault::vault::{self, StoreKind};
use chrono::{DateTime, SecondsFormat, Utc};

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn seed(dir: &std::path::Path, n: usize) -> Vec<RecordingId> {
    let db = dir.join("catalog.db");
    drop(SqliteCatalog::open(&db).expect("create the catalog"));
    let mut conn = rusqlite::Connection::open(&db).expect("open");
    let tx = conn.transaction().expect("tx");
    let started = DateTime::parse_from_rfc3339("2026-01-31T10:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let ended = started + chrono::Duration::minutes(5);
    let expires = DateTime::parse_from_rfc3339("2026-04-30T10:05:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let root = dir.join("objects");
    let body = vec![0xA5u8; 1024];
    let mut ids = Vec::with_capacity(n);
    {
        let mut rec = tx
            .prepare(
                "INSERT INTO recordings (id, call_id, status, policy, codec, sample_rate, channels, \
                 started_at, ended_at, expires_at, restricted, updated_at) \
                 VALUES (?1, ?2, 'sealed', 'standard', 0, 8000, 2, ?3, ?4, ?5, 0, ?4)",
            )
            .expect("prepare");
        let mut seg = tx
            .prepare(
                "INSERT INTO segments (recording_id, segment, object_key, kek_id, wrapped_key, \
                 media_start_ms, media_end_ms, size, sha256, status) \
                 VALUES (?1, 0, ?2, 'k1', ?3, 0, 300000, 1024, ?4, 'stored')",
            )
            .expect("prepare");
        for i in 0..n {
            let id = RecordingId::new();
            let key = vault::object_path(started, id, SegmentNo(0)).to_string();
            rec.execute(rusqlite::params![
                id.to_string(),
                format!("bench-{i}"),
                ts(started),
                ts(ended),
                ts(expires)
            ])
            .expect("recording");
            seg.execute(rusqlite::params![
                id.to_string(),
                key,
                vec![7u8; 60],
                vec![9u8; 32]
            ])
            .expect("segment");
            let path = root.join(&key);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            std::fs::write(&path, &body).expect("object");
            ids.push(id);
        }
    }
    tx.commit().expect("commit");
    ids
}

fn main() {
    let n: usize = std::env::var("RETENTION_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    seed(dir.path(), n);
    eprintln!("seeded {n} recordings in {:.1?}", t.elapsed());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let catalog: Arc<dyn Catalog> =
            Arc::new(SqliteCatalog::open(dir.path().join("catalog.db")).expect("catalog"));
        let store = vault::open_store(&StoreKind::Local {
            root: dir.path().join("objects"),
        })
        .expect("store");
        let now = DateTime::parse_from_rfc3339("2026-05-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let retention = Retention::new(
            Arc::clone(&catalog),
            store,
            Arc::new(ManualClock::new(now)),
            Arc::new(Config::default()),
        );
        let t = Instant::now();
        let report = retention
            .sweep(&SweepOptions::default())
            .await
            .expect("sweep");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(report.expired, n as u64, "every recording deleted");
        assert_eq!(catalog.count_wrapped_keys().await.expect("count"), 0);
        println!(
            "retention sweep: {n} recordings in {secs:.2} s = {:.0} recordings/s ({} batches of {}, {} objects deleted)",
            n as f64 / secs,
            report.batches,
            Config::default().retention.batch_size,
            report.objects_deleted
        );
    });
}
