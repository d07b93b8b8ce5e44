//! The load generator end to end: against the daemon on the system clock (every call streamed in
//! real time, every recording found sealed and decrypted afterwards), against the bare-receive
//! baseline, and against a server that refuses it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use callvault::domain::{Role, SystemClock};
use callvault::server::Daemon;
use callvault::simulate::load::{LoadArgs, LoadReport, baseline_on, loadgen};
use common::live::token;
use common::{Deployment, chmod_600};
use tokio_util::sync::CancellationToken;

fn secret_file(dir: &Path, name: &str, value: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, value).expect("write token");
    chmod_600(&path);
    path
}

fn args(url: String, token_file: PathBuf, calls: usize, prefix: &str) -> LoadArgs {
    LoadArgs {
        url,
        token_file,
        supervisor_token_file: None,
        webhook_secret_file: None,
        calls,
        ramp: Duration::from_millis(500),
        hold: Duration::from_secs(2),
        frames_per_write: 1,
        pid: Some(std::process::id()),
        csv: None,
        summary: None,
        label: prefix.to_owned(),
        prefix: prefix.to_owned(),
    }
}

/// Every call sent all its frames (50 a second for ramp + hold), and no faster than real time.
fn assert_real_time(report: &LoadReport, calls: usize) {
    let per_call = 125; // 2.5 s of 20 ms frames
    assert_eq!(report.frames, (calls * per_call) as u64, "{report}");
    let elapsed = report.elapsed.as_secs_f64();
    // the last call starts at the end of the ramp and lasts 2.5 s
    assert!((2.9..30.0).contains(&elapsed), "{elapsed} s: {report}");
    assert!(report.hold.is_some_and(|h| h.frames > 0), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_load_call_is_streamed_in_real_time_and_its_recording_stored_and_decrypted() {
    // 2.5 s calls: capture resumes pci.max_latency after payment.ended (1 s by default, 0.2 s here)
    let deployment = Deployment::new("[pci]\nmax_latency = \"200ms\"\n");
    let config = deployment.load(&[]);
    let daemon = Daemon::start(config, Arc::new(SystemClock))
        .await
        .expect("daemon starts");
    let url = format!("http://{}", daemon.public_addr());
    let catalog = Arc::clone(&daemon.shared().catalog);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(daemon.run(shutdown.clone()));
    let dir = deployment.dir.path();
    let tel = secret_file(dir, "tel", &token(catalog.as_ref(), Role::Telephony).await);
    let sup = secret_file(dir, "sup", &token(catalog.as_ref(), Role::Supervisor).await);

    let calls = 12;
    let mut a = args(url, tel, calls, "lt");
    a.supervisor_token_file = Some(sup);
    a.frames_per_write = 2;
    a.summary = Some(dir.join("summary.csv"));
    a.csv = Some(dir.join("samples.csv"));
    let report = loadgen(a).await.expect("load runs");
    assert_eq!(report.failed, 0, "{report}");
    assert_eq!(report.peak_calls, calls, "{report}");
    assert_eq!(report.verified, Some((calls, 0)), "{report}");
    assert_real_time(&report, calls);

    // each call kept its audio around the card payment, which it paused for: two segments, and a
    // pause and a resume in the ledger
    let rows = catalog
        .recordings_by_status(callvault::catalog::RecordingStatus::Sealed, 100)
        .await
        .expect("rows");
    assert_eq!(rows.len(), calls);
    for row in &rows {
        let segments = catalog.segments(row.id).await.expect("segments");
        assert_eq!(segments.len(), 2, "{}: {segments:?}", row.call_id);
        let kinds: Vec<String> = catalog
            .ledger(row.id)
            .await
            .expect("ledger")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert!(
            kinds.iter().any(|k| k == "pause") && kinds.iter().any(|k| k == "resume"),
            "{}: {kinds:?}",
            row.call_id
        );
    }

    let summary = std::fs::read_to_string(dir.join("summary.csv")).expect("summary");
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 2, "{summary}");
    assert!(lines[0].starts_with("label,calls,frames_per_write,"));
    assert!(lines[1].starts_with("lt,12,2,0,"), "{summary}");
    let samples = std::fs::read_to_string(dir.join("samples.csv")).expect("samples");
    assert!(samples.lines().count() >= 3, "{samples}");

    shutdown.cancel();
    running.await.expect("no panic").expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_baseline_takes_the_same_load_and_answers_every_close() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(baseline_on(listener, shutdown.clone()));
    let dir = tempfile::tempdir().expect("tempdir");
    let calls = 20;
    let report = loadgen(args(url, secret_file(dir.path(), "none", "x"), calls, "bl"))
        .await
        .expect("load runs");
    assert_eq!(report.failed, 0, "{report}");
    assert_real_time(&report, calls);
    shutdown.cancel();
    server.await.expect("no panic").expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_the_server_refuses_are_counted_and_say_why() {
    let deployment = Deployment::new("");
    let daemon = Daemon::start(deployment.load(&[]), Arc::new(SystemClock))
        .await
        .expect("daemon starts");
    let url = format!("http://{}", daemon.public_addr());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(daemon.run(shutdown.clone()));
    let bad = secret_file(deployment.dir.path(), "bad", "cv_not_a_token");
    let mut a = args(url, bad, 3, "nt");
    a.hold = Duration::from_millis(200);
    let report = loadgen(a).await.expect("load runs");
    assert_eq!(report.failed, 3, "{report}");
    assert!(
        report.errors.iter().all(|e| e.contains("was refused")),
        "{report}"
    );
    // an https url is refused before any call starts: the load streams plain ws on loopback
    let tls = args(
        "https://127.0.0.1:1".into(),
        deployment.path("bad"),
        1,
        "tls",
    );
    let e = loadgen(tls).await.expect_err("refused");
    assert!(format!("{e:#}").contains("--ca-cert"), "{e:#}");
    shutdown.cancel();
    running.await.expect("no panic").expect("clean stop");
}
