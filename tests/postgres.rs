//! The PostgreSQL catalog end to end: the daemon records a call into it and finds the call through
//! the API, the CLI works on it, and of two nodes sharing it one sweeps at a time.
//!
//! Needs the test PostgreSQL server (see `common/postgres.rs`); fails, naming it, without one.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use callvault::audit::ChainVerifier;
use callvault::catalog::{Catalog, RecordingRow, RecordingStatus};
use callvault::config::Config;
use callvault::domain::{Codec, ManualClock, MediaFormat, RecordingId};
use callvault::retention::{Retention, SweepOptions};
use chrono::{DateTime, Utc};
use common::audio::{decode_wav, tone};
use common::live::{Live, close_of};
use common::postgres::Scratch;
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const CALLER: &str = "+441744676789";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid time")
        .with_timezone(&Utc)
}

async fn get_json(live: &Live, path: &str) -> (u16, Value) {
    let (status, _, body) = live.get(path, &live.supervisor).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn applied(live: &Live, call: &str, kind: &str, extra: Value) {
    let (status, body) = live.event(call, kind, None, extra).await;
    assert_eq!(status, 200, "{kind} for {call}: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_records_a_call_into_postgres_and_finds_it() {
    let scratch = Scratch::new().await;
    let live = Live::start(&scratch.config()).await;
    let call = "pg-call-1";
    applied(
        &live,
        call,
        "call.started",
        json!({ "line": "+441744000111", "agent": "agent-7", "caller": CALLER }),
    )
    .await;
    let mut ws = live.media(call).await;
    let format = MediaFormat {
        codec: Codec::Pcmu,
        sample_rate: 8000,
        channels: 2,
    };
    let audio = tone(format, 1000.0, 3_000);
    live.stream(&mut ws, &audio).await;
    ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await
        .expect("stop frame");
    let (code, reason) = close_of(&mut ws).await.expect("the server closes");
    assert_eq!(code, 1000, "a clean close: {reason:?}");
    applied(&live, call, "call.ended", json!({})).await;
    live.advance_ms(4_000);
    let row = live.wait_sealed(call).await;
    assert_eq!(row.status, RecordingStatus::Sealed);

    // found through the API, by call and by caller
    let (status, body) = get_json(&live, &format!("/v1/recordings?call_id={call}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recordings"][0]["id"], row.id.to_string(), "{body}");
    assert_eq!(body["recordings"][0]["status"], "sealed", "{body}");
    let (status, body) = get_json(&live, "/v1/recordings?caller=%2B441744676789").await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["recordings"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [row.id.to_string()], "{body}");
    let (status, wav) = live.play(&row.id.to_string(), &live.supervisor).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&wav));
    let played = decode_wav(&wav);
    assert!(
        played.duration_ms().abs_diff(3_000) <= 60,
        "plays the 3 s recorded: {} ms",
        played.duration_ms()
    );

    // the rows are in PostgreSQL, where another node sees them; no SQLite file was made
    let other = scratch.open().await;
    let seen = other
        .recording(row.id)
        .await
        .expect("read")
        .expect("another node sees the recording");
    assert_eq!(seen, row_now(&live, row.id).await);
    assert!(!other.segments(row.id).await.expect("segments").is_empty());
    let audit = other.audit_after(0, 10_000).await.expect("audit");
    assert!(
        audit.iter().any(|e| e.entry.action == "recording.search"),
        "the searches are audited"
    );
    let mut v = ChainVerifier::new();
    audit.iter().for_each(|e| v.push(e));
    v.finish().expect("the chain verifies");
    assert!(!live.deployment.path("state/catalog.sqlite").exists());

    // the CLI on the same config
    let deployment = live.stop().await;
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_callvault"))
            .arg("--config")
            .arg(&deployment.config)
            .args(args)
            .env_remove("CREDENTIALS_DIRECTORY")
            .env("USER", "tester")
            .output()
            .expect("run callvault")
    };
    let o = cli(&["audit", "verify"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("audit chain intact"), "{out}");
    let o = cli(&["retention", "sweep"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

async fn row_now(live: &Live, id: RecordingId) -> RecordingRow {
    live.catalog
        .recording(id)
        .await
        .expect("read")
        .expect("present")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_catalog_stops_the_start_with_a_clear_error() {
    let d = common::Deployment::new(
        "[catalog]\nkind = \"postgres\"\nurl = \"host=127.0.0.1 port=1 user=callvault dbname=callvault\"\n",
    );
    let o = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--config")
        .arg(&d.config)
        .arg("serve")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run callvault");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "may pass once the server is up: {err}"
    );
    assert!(
        err.contains("cannot open the postgres catalog `host=127.0.0.1 port=1"),
        "{err}"
    );

    // a password in the url is a config error (64), and is not echoed
    let d = common::Deployment::new(
        "[catalog]\nkind = \"postgres\"\nurl = \"host=db user=callvault password=hunter2\"\n",
    );
    let o = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--config")
        .arg(&d.config)
        .arg("check-config")
        .output()
        .expect("run callvault");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(
        err.contains("catalog.url") && !err.contains("hunter2"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_skips_the_sweep_while_another_node_sweeps() {
    let scratch = Scratch::new().await;
    let a: Arc<dyn Catalog> = Arc::new(scratch.open().await);
    let b: Arc<dyn Catalog> = Arc::new(scratch.open().await);
    let ended = at("2026-01-31T10:00:00Z");
    let row = RecordingRow {
        id: RecordingId::new(),
        call_id: "pg-expired".parse().expect("call id"),
        status: RecordingStatus::Sealed,
        line: None,
        queue: None,
        agent: None,
        caller_tag: None,
        caller_sealed: None,
        policy: "standard".into(),
        codec: Codec::Pcmu,
        sample_rate: 8000,
        channels: 2,
        started_at: ended,
        ended_at: Some(ended),
        expires_at: Some(at("2026-04-30T10:00:00Z")),
        restricted: false,
        updated_at: ended,
    };
    a.insert_recording(&row).await.expect("insert");
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let clock = ManualClock::new(at("2026-06-01T00:00:00Z"));
    let node_b = Retention::new(
        Arc::clone(&b),
        store,
        Arc::new(clock),
        Arc::new(Config::default()),
    );

    // node a is sweeping (holds the lock): node b's sweep does nothing
    let held = a.try_lock_sweep().await.expect("lock").expect("a takes it");
    let report = node_b.sweep(&SweepOptions::default()).await.expect("sweep");
    assert!(report.skipped, "{report:?}");
    assert_eq!(report.expired, 0);
    assert!(report.to_string().contains("another node"), "{report}");
    let status = b
        .recording(row.id)
        .await
        .expect("read")
        .expect("row")
        .status;
    assert_eq!(status, RecordingStatus::Sealed, "nothing deleted");
    assert_eq!(
        b.retention_progress()
            .await
            .expect("progress")
            .last_started_at,
        None,
        "a skipped sweep leaves no trace in the counters"
    );

    // once a is done, b sweeps
    drop(held);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let report = loop {
        let r = node_b.sweep(&SweepOptions::default()).await.expect("sweep");
        if !r.skipped {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b still skips after a released the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(report.expired, 1, "{report:?}");
    let status = a
        .recording(row.id)
        .await
        .expect("read")
        .expect("row")
        .status;
    assert_eq!(status, RecordingStatus::Expired);
}
