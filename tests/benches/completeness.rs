//! The completeness report at scale: totals per state and the list of calls needing attention for
//! a month of 1,000,000 calls (override with `CALLVAULT_BENCH_ROWS`) on the embedded SQLite
//! catalog, and a reconciliation pass over unsettled calls; see BENCHMARKS.md.
//!
//! The roster is filled through SQL in one transaction (the daemon notes one call at a time, which
//! would take hours here), with the schema and migrations of `SqliteCatalog::open`; the report goes
//! through the trait and `completeness::report`, exactly as `GET /v1/completeness` and `callvault
//! completeness` read it.

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use callvault::catalog::{CallFilter, Catalog, SqliteCatalog};
use callvault::completeness::{Reconciler, report};
use callvault::config::Config;
use callvault::domain::ManualClock;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Calls left unsettled for the reconciliation pass (no recording: each is judged on its row).
const UNSETTLED: u64 = 10_000;

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn month() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

/// States as a contact centre's month might have them: 96.5 % recorded, 1.5 % partial, 1 %
/// withheld, 0.7 % not recorded, 0.3 % failed.
fn state(rng: &mut StdRng) -> (&'static str, &'static str, Option<i64>) {
    match rng.gen_range(0..1000) {
        0..965 => ("recorded", "complete", None),
        965..980 => (
            "partial",
            "stream_ended_early",
            Some(rng.gen_range(6_000..120_000)),
        ),
        980..990 => ("withheld", "refused", None),
        990..997 => ("not_recorded", "no_media", None),
        _ => ("failed", "upload_failed", None),
    }
}

fn fill(path: &std::path::Path, rows: u64) {
    drop(SqliteCatalog::open(path).expect("create the catalog"));
    let mut c = rusqlite::Connection::open(path).expect("open");
    c.pragma_update(None, "synchronous", "OFF").expect("pragma");
    let tx = c.transaction().expect("tx");
    {
        let mut settled = tx
            .prepare(
                "INSERT INTO calls (call_id, sources, first_seen, at, started_at, ended_at, line, \
                 state, reason, missing_ms, detail, checked_at, settled_at) VALUES \
                 (?1, 3, ?2, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
            )
            .expect("prepare");
        let mut pending = tx
            .prepare(
                "INSERT INTO calls (call_id, sources, first_seen, at, started_at, ended_at, line) \
                 VALUES (?1, 2, ?2, ?2, ?2, ?3, ?4)",
            )
            .expect("prepare");
        let mut rng = StdRng::seed_from_u64(16);
        // a month of calls, in order, 30 days
        let span = 30 * 86_400_000_i64;
        for i in 0..rows {
            let at = month() + chrono::Duration::milliseconds(i as i64 * span / rows as i64);
            let end = at + chrono::Duration::seconds(rng.gen_range(30..900));
            let line = format!("+4417440{:05}", rng.gen_range(0..50));
            if i >= rows.saturating_sub(UNSETTLED) {
                pending
                    .execute(rusqlite::params![
                        format!("CA{i:010}"),
                        ts(&at),
                        ts(&end),
                        line
                    ])
                    .expect("insert");
                continue;
            }
            let (state, reason, missing) = state(&mut rng);
            settled
                .execute(rusqlite::params![
                    format!("CA{i:010}"),
                    ts(&at),
                    ts(&end),
                    line,
                    state,
                    reason,
                    missing,
                    reason,
                    ts(&(end + chrono::Duration::hours(1))),
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    c.execute_batch("ANALYZE").expect("analyze");
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
    println!("filled {rows} calls in {:.1} s", t.elapsed().as_secs_f64());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open(&path).expect("open"));
        let (from, to) = (month(), month() + chrono::Duration::days(30));
        for run in 1..=3 {
            let t = Instant::now();
            let totals = catalog
                .call_totals(Some(from), Some(to))
                .await
                .expect("totals");
            let totals_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let whole = report::all(
                catalog.as_ref(),
                Some(from),
                Some(to),
                CallFilter::NeedsAttention,
            )
            .await
            .expect("report");
            let whole_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let page = report::page(
                catalog.as_ref(),
                Some(from),
                Some(to),
                CallFilter::NeedsAttention,
                None,
                100,
            )
            .await
            .expect("page");
            let page_s = t.elapsed().as_secs_f64();
            println!(
                "run {run}: totals of {} calls {:.3} s; whole report ({} calls listed) {:.3} s; \
                 first API page of {} {:.3} s",
                totals.calls(),
                totals_s,
                whole.calls.len(),
                whole_s,
                page.calls.len(),
                page_s
            );
        }
        // a reconciliation pass over the unsettled calls, a day after they ended: each judged and
        // settled with its audit entry
        let mut config = Config::default();
        config.completeness.settle = std::time::Duration::from_secs(3600);
        let clock = ManualClock::new(to + chrono::Duration::days(2));
        let r = Reconciler::new(Arc::clone(&catalog), Arc::new(config), Arc::new(clock));
        let t = Instant::now();
        let pass = r.pass().await.expect("pass");
        let s = t.elapsed().as_secs_f64();
        println!(
            "reconciliation pass: {} calls checked, {} settled in {:.2} s ({:.0} calls/s)",
            pass.checked,
            pass.settled,
            s,
            pass.settled as f64 / s
        );
    });
}
