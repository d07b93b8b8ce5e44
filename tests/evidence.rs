//! Evidence a DPO can stand behind (issue 12): one destruction path for refusal, erasure, expiry
//! and excision that leaves no caller behind; refusal under a hold and after `consent.late_refusal`;
//! a restriction no other write undoes; repeated and out-of-order call events; a crash between the
//! objects and the receipt; and a retention plan that says what the sweep does.

mod common;

use std::sync::Arc;

use callvault::catalog::{
    Catalog, RecordingRow, RecordingStatus, SegmentRow, SegmentStatus, SqliteCatalog,
};
use callvault::domain::{Codec, ManualClock, RecordingId, SegmentNo};
use callvault::retention::{RefusalStart, Retention, SweepOptions};
use callvault::vault::{self, Keyring};
use chrono::{DateTime, Utc};
use object_store::ObjectStore;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use common::live::{Live, Socket};

/// Past the look-back window (`pci.lookback` 3 s + `pci.guard` 0.5 s), with a margin.
const PAST_WINDOW_MS: i64 = 4_000;
const CALLER: &str = "+441744676789";

/// Sends one request with a bearer token and a JSON body; answers status and JSON.
async fn call(
    live: &Live,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let stream = TcpStream::connect(live.public).await.expect("connect");
    let auth = format!("Bearer {token}");
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, _, out) = common::exchange(
        stream,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        text.as_bytes(),
    )
    .await;
    (status, serde_json::from_slice(&out).unwrap_or(Value::Null))
}

async fn applied(live: &Live, call: &str, kind: &str, extra: Value) {
    let (status, body) = live.event(call, kind, None, extra).await;
    assert_eq!(
        (status, &body),
        (200, &json!({ "status": "applied" })),
        "{kind} for {call}"
    );
}

async fn sweep(live: &Live) -> Value {
    let stream = TcpStream::connect(live.admin).await.expect("connect");
    let (status, _, out) = common::exchange(stream, "POST", "/retention/sweep", &[], b"").await;
    let body: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
    assert_eq!(status, 200, "sweep: {body}");
    body["report"].clone()
}

/// PCMU stereo silence-ish audio of `ms` milliseconds.
fn audio(ms: usize) -> Vec<u8> {
    vec![0x55; 16 * ms]
}

/// Starts `call` with the caller and streams `ms` of audio, and waits until it is committed (past
/// the window, in a segment).
async fn live_call(live: &Live, call: &str, ms: usize) -> Socket {
    applied(live, call, "call.started", json!({ "caller": CALLER })).await;
    let mut ws = live.media(call).await;
    // the stream is anchored when its start frame is read: before the clock moves
    common::live::sync(&mut ws).await;
    live.stream(&mut ws, &audio(ms)).await;
    common::live::sync(&mut ws).await;
    live.advance_ms(PAST_WINDOW_MS);
    let id = live.recording(call).await.expect("row").id;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while live
        .catalog
        .segments(id)
        .await
        .expect("segments")
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{call}: audio committed in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    ws
}

/// Ends `call` and waits until it is sealed and uploaded.
async fn end_call(live: &Live, call: &str, mut ws: Socket) -> RecordingRow {
    use futures::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"type":"stop"}"#.into(),
    ))
    .await
    .expect("stop");
    let _ = common::live::close_of(&mut ws).await;
    applied(live, call, "call.ended", json!({})).await;
    live.advance_ms(PAST_WINDOW_MS);
    live.wait_sealed(call).await
}

async fn ledger_kinds(live: &Live, id: RecordingId) -> Vec<String> {
    live.catalog
        .ledger(id)
        .await
        .expect("ledger")
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn audit_actions(live: &Live, id: RecordingId) -> Vec<String> {
    live.catalog
        .audit_after(0, 10_000)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.entry.subject == id.to_string())
        .map(|e| e.entry.action)
        .collect()
}

/// The ids a compliance search by the caller's number finds.
async fn found_by_number(live: &Live) -> Vec<String> {
    let path = format!("/v1/recordings?caller={}", CALLER.replace('+', "%2B"));
    let (status, body) = call(live, "GET", &path, &live.compliance, None).await;
    assert_eq!(status, 200, "{body}");
    body["recordings"]
        .as_array()
        .expect("recordings")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

/// The tombstone is still there for compliance, with no caller, and its ledger has the receipt.
async fn tombstone(live: &Live, id: RecordingId, receipt_kind: &str) {
    let (status, body) = call(
        live,
        "GET",
        &format!("/v1/recordings/{id}"),
        &live.compliance,
        None,
    )
    .await;
    assert_eq!(status, 200, "the tombstone stays: {body}");
    assert!(
        body["caller"].is_null(),
        "no caller in the tombstone: {body}"
    );
    let row = live
        .catalog
        .recording(id)
        .await
        .expect("read")
        .expect("row");
    assert!(
        row.caller_tag.is_none() && row.caller_sealed.is_none(),
        "no caller number or tag"
    );
    let kinds = ledger_kinds(live, id).await;
    assert!(
        kinds.iter().any(|k| k == receipt_kind),
        "receipt {receipt_kind}: {kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn erasure_expiry_refusal_and_last_excision_leave_no_caller() {
    let live = Live::start("").await;
    let mut ids = Vec::new();
    for name in ["ev-erase", "ev-expire", "ev-refuse", "ev-excise"] {
        let ws = live_call(&live, name, 2_000).await;
        ids.push(end_call(&live, name, ws).await.id);
    }
    let [erase, expire, refuse, excise] = ids.clone().try_into().expect("four");
    let mut all: Vec<String> = ids.iter().map(ToString::to_string).collect();
    all.sort();
    let mut found = found_by_number(&live).await;
    found.sort();
    assert_eq!(found, all, "all four found by the caller's number before");

    let (status, body) = call(
        &live,
        "DELETE",
        &format!("/v1/recordings/{erase}?reason=subject%20request"),
        &live.compliance,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    applied(&live, "ev-refuse", "consent.refused", json!({})).await;
    let segs = live.catalog.segments(excise).await.expect("segments");
    assert_eq!(
        segs.len(),
        1,
        "one segment: excising it excises the last; ledger {:?}",
        ledger_kinds(&live, excise).await
    );
    let (status, body) = call(
        &live,
        "POST",
        &format!("/v1/recordings/{excise}/segments/0/excise"),
        &live.compliance,
        Some(json!({ "reason": "card number read out" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let found = found_by_number(&live).await;
    assert_eq!(
        found,
        vec![expire.to_string()],
        "only the one with audio is found"
    );

    live.advance_ms(100 * 86_400 * 1000);
    let report = sweep(&live).await;
    assert!(
        report["expired"].as_u64().expect("expired") >= 1,
        "{report}"
    );
    assert!(
        found_by_number(&live).await.is_empty(),
        "not found once destroyed"
    );
    tombstone(&live, erase, "deleted").await;
    tombstone(&live, expire, "deleted").await;
    tombstone(&live, refuse, "deleted").await;
    tombstone(&live, excise, "excised").await;
    assert_eq!(
        live.catalog
            .recording(refuse)
            .await
            .expect("read")
            .expect("row")
            .status,
        RecordingStatus::Refused
    );
    assert!(
        audit_actions(&live, refuse)
            .await
            .iter()
            .any(|a| a == "recording.destroyed")
    );
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusal_eleven_minutes_after_the_call_destroys_nothing() {
    let live = Live::start("").await;
    let ws = live_call(&live, "ev-late", 2_000).await;
    let sealed = end_call(&live, "ev-late", ws).await;
    live.advance_ms(11 * 60 * 1000);
    applied(&live, "ev-late", "consent.refused", json!({})).await;
    let row = live
        .catalog
        .recording(sealed.id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.status, RecordingStatus::Sealed, "nothing destroyed");
    assert!(row.caller_tag.is_some());
    assert_eq!(
        live.play(&sealed.id.to_string(), &live.supervisor).await.0,
        200
    );
    assert!(
        ledger_kinds(&live, sealed.id)
            .await
            .iter()
            .any(|k| k == "refused_late")
    );
    assert!(
        audit_actions(&live, sealed.id)
            .await
            .iter()
            .any(|a| a == "recording.refused_late"),
        "counted as an erasure request"
    );
    // nine minutes after the call a refusal still destroys
    let ws = live_call(&live, "ev-in-time", 2_000).await;
    let sealed = end_call(&live, "ev-in-time", ws).await;
    live.advance_ms(9 * 60 * 1000);
    applied(&live, "ev-in-time", "consent.refused", json!({})).await;
    let row = live
        .catalog
        .recording(sealed.id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.status, RecordingStatus::Refused);
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusal_during_a_call_on_a_held_caller_keeps_the_audio_restricted_until_released() {
    let live = Live::start("").await;
    let hold = json!({ "reference": "CMP-7", "reason": "complaint", "caller": CALLER });
    let (status, body) = call(&live, "POST", "/v1/holds", &live.supervisor, Some(hold)).await;
    assert_eq!(status, 201, "{body}");
    let mut ws = live_call(&live, "ev-held", 3_000).await;
    let id = live.recording("ev-held").await.expect("row").id;
    applied(&live, "ev-held", "consent.refused", json!({})).await;
    let row = live
        .catalog
        .recording(id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.status, RecordingStatus::RefusalHeld);
    assert!(row.restricted, "the audio kept is restricted");
    assert!(
        ledger_kinds(&live, id)
            .await
            .iter()
            .any(|k| k == "refusal_held")
    );
    // capture stops: later audio is not kept
    live.stream(&mut ws, &audio(3_000)).await;
    let sealed = end_call(&live, "ev-held", ws).await;
    assert_eq!(sealed.status, RecordingStatus::RefusalHeld);
    let kept: u64 = live
        .catalog
        .segments(id)
        .await
        .expect("segments")
        .iter()
        .map(|s| s.media_end_ms - s.media_start_ms)
        .sum();
    assert!(
        kept > 0 && kept <= 3_000,
        "what was committed before the refusal is kept, nothing after it: {kept} ms"
    );
    assert_eq!(live.play(&id.to_string(), &live.supervisor).await.0, 409);
    assert_eq!(live.play(&id.to_string(), &live.compliance).await.0, 200);
    sweep(&live).await;
    assert_eq!(
        live.catalog
            .recording(id)
            .await
            .expect("read")
            .expect("row")
            .status,
        RecordingStatus::RefusalHeld,
        "not destroyed while held"
    );
    let (status, body) = call(
        &live,
        "POST",
        "/v1/holds/CMP-7/release",
        &live.compliance,
        Some(json!({ "reason": "complaint closed" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let report = sweep(&live).await;
    assert_eq!(report["refused"], 1, "{report}");
    let row = live
        .catalog
        .recording(id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.status, RecordingStatus::Refused);
    assert!(found_by_number(&live).await.is_empty());
    tombstone(&live, id, "deleted").await;
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restriction_during_a_live_call_survives_the_seal_and_closes_live_listening() {
    let live = Live::start("").await;
    let ws = live_call(&live, "ev-restrict", 2_000).await;
    let id = live.recording("ev-restrict").await.expect("row").id;
    let listen = |token: String| {
        let url = format!(
            "ws://{}/v1/calls/ev-restrict/listen?reason=quality",
            live.public
        );
        let mut req = url.into_client_request().expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        async move {
            let tcp = TcpStream::connect(live.public).await.expect("connect");
            tokio_tungstenite::client_async(req, tcp).await
        }
    };
    // a supervisor listening when the restriction comes is cut off
    let (mut listening, _) = listen(live.supervisor.clone())
        .await
        .expect("a supervisor listens before the restriction");
    let (status, body) = call(
        &live,
        "POST",
        &format!("/v1/recordings/{id}/restrict"),
        &live.compliance,
        Some(json!({ "reason": "data subject asked" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let started = std::time::Instant::now();
    let (code, _) = common::live::close_of(&mut listening)
        .await
        .expect("the open listen is closed");
    assert_eq!(code, 1008);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // compliance may still listen; a supervisor may not start again
    assert!(listen(live.compliance.clone()).await.is_ok());
    match listen(live.supervisor.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 409),
        other => panic!(
            "a supervisor's live listen is refused: {:?}",
            other.map(|_| ())
        ),
    }
    let sealed = end_call(&live, "ev-restrict", ws).await;
    assert_eq!(sealed.status, RecordingStatus::Sealed);
    assert!(sealed.restricted, "the seal does not undo the restriction");
    assert_eq!(live.play(&id.to_string(), &live.supervisor).await.0, 409);
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_call_started_with_other_details_is_refused_naming_them() {
    let live = Live::start(
        "[policies.standard]\nretention = \"3 months\"\n\
         [policies.complaints]\nretention = \"12 months\"\n[queues]\ncomplaints = \"complaints\"\n",
    )
    .await;
    applied(
        &live,
        "ev-twice",
        "call.started",
        json!({ "caller": CALLER, "queue": "standard-q" }),
    )
    .await;
    // the same details again: acknowledged, nothing changes
    applied(
        &live,
        "ev-twice",
        "call.started",
        json!({ "caller": CALLER, "queue": "standard-q" }),
    )
    .await;
    let (status, body) = live
        .event(
            "ev-twice",
            "call.started",
            None,
            json!({ "caller": "+441744000000", "queue": "complaints" }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("call_started_conflict")),
        "{body}"
    );
    let detail = body["detail"].as_str().expect("detail");
    assert!(
        detail.contains("caller") && detail.contains("queue"),
        "{detail}"
    );
    let row = live.recording("ev-twice").await.expect("row");
    assert_eq!(row.queue.as_deref(), Some("standard-q"));
    assert_eq!(row.policy, "standard", "queue and policy agree");
    assert_eq!(
        found_by_number(&live).await,
        vec![row.id.to_string()],
        "the caller is still found"
    );

    // call.ended before call.started: the call never ends before it started
    let t = live.now();
    let (status, body) = live
        .event("ev-order", "call.ended", Some(t), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = live
        .event(
            "ev-order",
            "call.started",
            Some(t + chrono::Duration::seconds(30)),
            json!({ "queue": "complaints" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    live.advance_ms(60_000);
    let row = live.wait_sealed("ev-order").await;
    assert_eq!(row.policy, "complaints");
    let (started, ended) = (row.started_at, row.ended_at.expect("ended"));
    assert!(ended >= started, "ended {ended} before started {started}");
    live.stop().await;
}

/// A sealed recording with a caller tag and one stored segment whose object is in `store`.
async fn seed(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    keyring: &Keyring,
    ended: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> RecordingRow {
    let id = RecordingId::new();
    let started = ended - chrono::Duration::minutes(5);
    let row = RecordingRow {
        id,
        call_id: format!("call-{id}").parse().expect("call id"),
        status: RecordingStatus::Sealed,
        line: None,
        queue: None,
        agent: None,
        caller_tag: Some([7; 32]),
        caller_sealed: Some(vec![1, 2, 3]),
        policy: "standard".into(),
        codec: Codec::Pcmu,
        sample_rate: 8000,
        channels: 2,
        started_at: started,
        ended_at: Some(ended),
        expires_at: Some(expires),
        restricted: false,
        updated_at: ended,
    };
    catalog.insert_recording(&row).await.expect("recording");
    let segment = SegmentNo(0);
    let key = vault::DataKey::generate();
    let header = vault::Header::new(id, segment, Codec::Pcmu, 2, 8000, 0).expect("header");
    let mut w = vault::SegmentWriter::new(header, &key);
    let mut sealed = w.header_bytes().to_vec();
    sealed.extend(w.append(&vec![0x55u8; 16_000]).expect("append"));
    sealed.extend(w.seal());
    let path = vault::object_path(started, id, segment);
    let (size, sha) = vault::put_verified(
        store,
        &vault::StoreKind::Memory,
        &path,
        bytes::Bytes::from(sealed),
    )
    .await
    .expect("put");
    let wrapped = keyring.wrap(&key, id, segment);
    catalog
        .insert_segment(&SegmentRow {
            recording_id: id,
            segment,
            object_key: path.to_string(),
            kek_id: Some(wrapped.kek_id),
            wrapped_key: Some(wrapped.bytes),
            media_start_ms: 0,
            media_end_ms: 1_000,
            size,
            sha256: Some(sha),
            status: SegmentStatus::Stored,
        })
        .await
        .expect("segment");
    row
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_objects_and_the_receipt_is_finished_by_the_next_sweep() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog: Arc<dyn Catalog> =
        Arc::new(SqliteCatalog::open(dir.path().join("catalog.db")).expect("catalog"));
    let store = vault::open_store(&vault::StoreKind::Local {
        root: dir.path().join("objects"),
    })
    .expect("store");
    let keyring = Keyring::generate(Utc::now());
    let clock = ManualClock::new(at("2026-02-01T00:00:00Z"));
    let config = Arc::new(callvault::config::Config::default());
    let retention = Retention::new(
        Arc::clone(&catalog),
        Arc::clone(&store),
        Arc::new(clock.clone()),
        Arc::clone(&config),
    );
    let row = seed(
        catalog.as_ref(),
        &store,
        &keyring,
        at("2026-01-31T10:00:00Z"),
        at("2026-04-30T10:00:00Z"),
    )
    .await;

    // a refusal commits, its objects go, and the process dies before the receipt
    let RefusalStart::Destroy(_pending) = retention
        .begin_refusal(row.id, "telephony", clock_now(&clock))
        .await
        .expect("begin")
    else {
        panic!("not held: it begins");
    };
    let prefix = vault::recording_prefix(row.started_at, row.id);
    let done = vault::delete_objects(&store, Some(&prefix), &[]).await;
    assert_eq!(done.deleted.len(), 1);
    drop(retention);
    let stuck = catalog.recording(row.id).await.expect("read").expect("row");
    assert_eq!(
        stuck.status,
        RecordingStatus::Sealed,
        "no receipt yet, no status change"
    );
    assert!(catalog.ledger(row.id).await.expect("ledger").is_empty());

    // the next run finishes it
    let retention = Retention::new(
        Arc::clone(&catalog),
        Arc::clone(&store),
        Arc::new(clock.clone()),
        config,
    );
    let report = retention
        .sweep(&SweepOptions::default())
        .await
        .expect("sweep");
    assert_eq!((report.refused, report.resumed), (1, 1), "{report:?}");
    let done = catalog.recording(row.id).await.expect("read").expect("row");
    assert_eq!(done.status, RecordingStatus::Refused);
    assert_eq!((done.caller_tag, done.caller_sealed), (None, None));
    let segs = catalog.segments(row.id).await.expect("segments");
    assert!(segs.iter().all(|s| s.wrapped_key.is_none()));
    let ledger = catalog.ledger(row.id).await.expect("ledger");
    assert_eq!(ledger.len(), 1, "one receipt");
    let receipt: Value = serde_json::from_str(&ledger[0].details).expect("json");
    assert_eq!(receipt["cause"], "refused");
    let audit = catalog.audit_after(0, 100).await.expect("audit");
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.entry.action == "recording.destroyed")
            .count(),
        1,
        "audited once, when complete"
    );
    assert!(
        catalog
            .pending_deletions(10)
            .await
            .expect("pending")
            .is_empty()
    );
}

fn clock_now(clock: &ManualClock) -> DateTime<Utc> {
    callvault::domain::Clock::now(clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_lists_exactly_what_the_sweep_deletes() {
    let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open_in_memory().expect("catalog"));
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let keyring = Keyring::generate(Utc::now());
    let clock = ManualClock::new(at("2026-06-01T00:00:00Z"));
    let ended = at("2026-01-31T10:00:00Z");
    // due by its stored expiry
    let due = seed(
        catalog.as_ref(),
        &store,
        &keyring,
        ended,
        at("2026-04-30T10:00:00Z"),
    )
    .await;
    // stored expiry in the future, though re-applying the 3-month policy would make it past
    let kept = seed(
        catalog.as_ref(),
        &store,
        &keyring,
        ended,
        at("2027-01-31T10:00:00Z"),
    )
    .await;
    // due, but held
    let held = seed(
        catalog.as_ref(),
        &store,
        &keyring,
        ended,
        at("2026-04-30T10:00:00Z"),
    )
    .await;
    catalog
        .insert_hold(&callvault::catalog::HoldRow {
            reference: "H-1".into(),
            reason: "complaint".into(),
            actor: "alice".into(),
            created_at: ended,
            caller_tag: None,
            from: None,
            to: None,
            released_at: None,
            released_by: None,
            release_reason: None,
        })
        .await
        .expect("hold");
    catalog.link_hold("H-1", held.id).await.expect("link");
    let retention = Retention::new(
        Arc::clone(&catalog),
        Arc::clone(&store),
        Arc::new(clock.clone()),
        Arc::new(callvault::config::Config::default()),
    );
    let mut planned = Vec::new();
    let summary = retention
        .plan(None, |e| {
            if e.due {
                planned.push(e.recording_id);
            }
        })
        .await
        .expect("plan");
    assert_eq!(planned, vec![due.id]);
    assert_eq!(summary.due_now, 1);
    assert_eq!(summary.held_past_expiry, 1);
    assert_eq!(summary.changed, 1, "re-applying would change the kept one");
    assert_eq!(summary.due_if_applied, 2, "the due one and the kept one");
    let report = retention
        .sweep(&SweepOptions::default())
        .await
        .expect("sweep");
    assert_eq!(report.expired, 1);
    for (r, status) in [
        (&due, RecordingStatus::Expired),
        (&kept, RecordingStatus::Sealed),
        (&held, RecordingStatus::Sealed),
    ] {
        let row = catalog.recording(r.id).await.expect("read").expect("row");
        assert_eq!(row.status, status, "{}", r.id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_pause_after_the_call_is_reviewed_and_excision_clears_it() {
    let live = Live::start("").await;
    let ws = live_call(&live, "ev-review", 4_000).await;
    let sealed = end_call(&live, "ev-review", ws).await;
    let id = sealed.id;
    let segs = live.catalog.segments(id).await.expect("segments");
    assert_eq!(segs.len(), 1);
    // the platform says the payment started two seconds into the call, after the seal
    let at = sealed.started_at + chrono::Duration::seconds(2);
    let (status, body) = live
        .event("ev-review", "payment.started", Some(at), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let row = live
        .catalog
        .recording(id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.status, RecordingStatus::PciReview);
    assert_eq!(live.play(&id.to_string(), &live.supervisor).await.0, 409);
    // the one stored segment holds the pause: excising it clears the review (and, being the
    // last with audio, the caller goes with it)
    let (status, body) = call(
        &live,
        "POST",
        &format!("/v1/recordings/{id}/segments/0/excise"),
        &live.compliance,
        Some(json!({ "reason": "card audio after a late pause" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "sealed", "{body}");
    let kinds = ledger_kinds(&live, id).await;
    for kind in ["pci_review", "excised", "pci_review.cleared"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
    tombstone(&live, id, "excised").await;
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_review_note_fails_the_excision_rather_than_clearing_it() {
    let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open_in_memory().expect("catalog"));
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let keyring = Keyring::generate(Utc::now());
    let clock = ManualClock::new(at("2026-02-01T00:00:00Z"));
    let row = seed(
        catalog.as_ref(),
        &store,
        &keyring,
        at("2026-01-31T10:00:00Z"),
        at("2026-04-30T10:00:00Z"),
    )
    .await;
    let review = callvault::catalog::StatusChange::new(
        row.id,
        RecordingStatus::Sealed,
        RecordingStatus::PciReview,
        at("2026-01-31T11:00:00Z"),
    );
    assert!(catalog.transition_recording(&review).await.expect("review"));
    catalog
        .append_ledger(&callvault::catalog::NewLedgerEntry {
            recording_id: row.id,
            at: at("2026-01-31T11:00:00Z"),
            kind: "pci_review".into(),
            actor: "recorder".into(),
            reason: None,
            // edited behind callvault's back: the pause instant is not a time
            details: r#"{"pause_at":"soon"}"#.into(),
        })
        .await
        .expect("ledger");
    let retention = Retention::new(
        Arc::clone(&catalog),
        Arc::clone(&store),
        Arc::new(clock),
        Arc::new(callvault::config::Config::default()),
    );
    let err = retention
        .excise(row.id, SegmentNo(0), "alice", "card audio")
        .await
        .expect_err("an unreadable note is not taken as cleared");
    assert!(err.to_string().contains("corrupt"), "{err}");
    let after = catalog.recording(row.id).await.expect("read").expect("row");
    assert_eq!(
        after.status,
        RecordingStatus::PciReview,
        "still under review"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_committed_before_a_stop_is_finished_when_the_daemon_starts() {
    let live = Live::start("").await;
    let ws = live_call(&live, "ev-restart", 2_000).await;
    let row = end_call(&live, "ev-restart", ws).await;
    // the refusal's commit point is stored, and the daemon stops before anything else happens
    let pending = callvault::catalog::PendingDeletion {
        recording_id: row.id,
        cause: callvault::catalog::DeletionCause::Refused,
        actor: "telephony".into(),
        reason: Some("consent.refused".into()),
        requested_at: live.now(),
        segment: None,
    };
    assert_eq!(
        live.catalog
            .begin_deletions(std::slice::from_ref(&pending))
            .await
            .expect("begin"),
        vec![row.id]
    );
    let deployment = live.stop().await;
    let live = Live::start_in(deployment).await;
    // the daemon runs in the background: it says ready only after finishing what was pending
    common::wait_for_200(live.admin, "/readyz", std::time::Duration::from_secs(20)).await;
    let after = live
        .catalog
        .recording(row.id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(after.status, RecordingStatus::Refused, "finished at start");
    assert!(
        live.catalog
            .pending_deletions(10)
            .await
            .expect("pending")
            .is_empty()
    );
    tombstone(&live, row.id, "deleted").await;
    live.stop().await;
}
