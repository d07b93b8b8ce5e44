//! Caller search latency at scale: p50/p99 of `Catalog::search_recordings` on a SQLite catalog of
//! 1,000,000 recordings (override with `CALLVAULT_BENCH_ROWS`); see BENCHMARKS.md.
//!
//! The catalog is filled through SQL in one transaction (the daemon writes one row per call, which
//! would take hours here), with the schema and migrations of `SqliteCatalog::open`; the queries go
//! through the trait, on the blocking pool, exactly as the API issues them.

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault::catalog::{Catalog, RecordingQuery, SqliteCatalog};
use callvault::domain::{Codec, RecordingId};
use chrono::{DateTime, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CALLERS: u64 = 100_000;
const LINES: u64 = 50;
const AGENTS: u64 = 500;
const QUERIES: usize = 2_000;

fn tag(n: u64) -> [u8; 32] {
    let mut t = [0u8; 32];
    t[..8].copy_from_slice(&n.to_be_bytes());
    t[8..16].copy_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes());
    t
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn fill(path: &std::path::Path, rows: u64) {
    drop(SqliteCatalog::open(path).expect("create the catalog"));
    let mut c = rusqlite::Connection::open(path).expect("open");
    c.pragma_update(None, "synchronous", "OFF").expect("pragma");
    let tx = c.transaction().expect("tx");
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO recordings (id, call_id, status, line, queue, agent, caller_tag, \
                 caller_sealed, policy, codec, sample_rate, channels, started_at, ended_at, \
                 expires_at, restricted, updated_at) VALUES \
                 (?1, ?2, 'sealed', ?3, NULL, ?4, ?5, ?6, 'standard', ?7, 8000, 2, ?8, ?9, NULL, 0, ?9)",
            )
            .expect("prepare");
        let mut rng = StdRng::seed_from_u64(5);
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let sealed = vec![0x5a_u8; 60];
        for i in 0..rows {
            // calls spread over a year, in order, as they arrive
            let at = start + chrono::Duration::milliseconds((i * 31_536_000_000 / rows) as i64);
            let caller = rng.gen_range(0..CALLERS);
            stmt.execute(rusqlite::params![
                RecordingId::new().to_string(),
                format!("CA{i:010}"),
                format!("+4417440{:05}", rng.gen_range(0..LINES)),
                format!("agent-{}", rng.gen_range(0..AGENTS)),
                &tag(caller)[..],
                &sealed,
                i64::from(Codec::Pcmu.code()),
                ts(&at),
                ts(&(at + chrono::Duration::minutes(4))),
            ])
            .expect("insert");
        }
    }
    tx.commit().expect("commit");
    c.execute_batch("ANALYZE").expect("analyze");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn measure(
    name: &str,
    catalog: &Arc<dyn Catalog>,
    mut make: impl FnMut(&mut StdRng) -> RecordingQuery,
) {
    let mut rng = StdRng::seed_from_u64(11);
    // warm the page cache as a running daemon's would be
    for _ in 0..200 {
        catalog
            .search_recordings(&make(&mut rng))
            .await
            .expect("search");
    }
    let mut times = Vec::with_capacity(QUERIES);
    let mut found = 0usize;
    for _ in 0..QUERIES {
        let q = make(&mut rng);
        let t = Instant::now();
        found += catalog.search_recordings(&q).await.expect("search").len();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{name:<36} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms  ({:.1} rows/query)",
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        found as f64 / QUERIES as f64
    );
}

fn main() {
    let rows: u64 = std::env::var("CALLVAULT_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.sqlite");
    let t = Instant::now();
    fill(&path, rows);
    println!(
        "filled {rows} recordings in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open(&path).expect("open"));
        let year = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        measure("caller, whole year, first page", &catalog, |rng| {
            RecordingQuery {
                caller_tag: Some(tag(rng.gen_range(0..CALLERS))),
                limit: 50,
                ..RecordingQuery::default()
            }
        })
        .await;
        measure("caller, 3-month range", &catalog, |rng| {
            let from = year + chrono::Duration::days(rng.gen_range(0..270));
            RecordingQuery {
                caller_tag: Some(tag(rng.gen_range(0..CALLERS))),
                from: Some(from),
                to: Some(from + chrono::Duration::days(91)),
                limit: 50,
                ..RecordingQuery::default()
            }
        })
        .await;
        measure("line + 1-day range, 50 a page", &catalog, |rng| {
            let from = year + chrono::Duration::days(rng.gen_range(0..360));
            RecordingQuery {
                line: Some(format!("+4417440{:05}", rng.gen_range(0..LINES))),
                from: Some(from),
                to: Some(from + chrono::Duration::days(1)),
                limit: 50,
                ..RecordingQuery::default()
            }
        })
        .await;
        measure("agent, page after a cursor", &catalog, |rng| {
            let at = year + chrono::Duration::days(rng.gen_range(0..360));
            RecordingQuery {
                agent: Some(format!("agent-{}", rng.gen_range(0..AGENTS))),
                after: Some((at, RecordingId::new())),
                limit: 50,
                ..RecordingQuery::default()
            }
        })
        .await;
    });
}
