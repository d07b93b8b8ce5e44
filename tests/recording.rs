//! Acceptance tests of the recorder against a live in-process daemon: refusal, explicit consent, an
//! object store outage, bad input on the webhook and the media socket, events before the stream,
//! no plaintext at rest, and the simulator end to end.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use callvault::catalog::{RecordingRow, RecordingStatus, SegmentRow, SegmentStatus};
use callvault::domain::{Codec, MediaFormat, RecordingId};
use chrono::Utc;
use common::audio::{Decoded, assert_spans, decode_wav, tone, tone_spans};
use common::live::{Live, Socket, close_of};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The metrics registry is process-wide: the test that reads a gauge runs alone (write), the others
/// together (read).
static EXCLUSIVE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Bytes of one second of stereo 8 kHz PCMU.
const SECOND: usize = 16_000;
/// Past the look-back window (`pci.lookback` 3 s + `pci.guard` 0.5 s), with a margin.
const PAST_WINDOW_MS: i64 = 4_000;

fn stereo() -> MediaFormat {
    MediaFormat {
        codec: Codec::Pcmu,
        sample_rate: 8000,
        channels: 2,
    }
}

/// Polls `$cond` (which may `.await`) in real time until it holds, or fails naming `$what`.
macro_rules! eventually {
    ($what:expr, $cond:expr) => {{
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if $cond {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {}",
                $what
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

// --- state directory

fn state(live: &Live) -> PathBuf {
    live.deployment.path("state")
}

/// Every regular file under `dir` (none if it is missing or not a directory).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

fn mentioning(files: Vec<PathBuf>, id: RecordingId) -> Vec<PathBuf> {
    let id = id.to_string();
    files
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&id))
        .collect()
}

/// The recording's objects in the local object store.
fn objects_of(live: &Live, id: RecordingId) -> Vec<PathBuf> {
    mentioning(files_under(&state(live).join("objects")), id)
}

/// The recording's spool files (`.cva.part` while open, `.cva` once sealed).
fn spool_of(live: &Live, id: RecordingId) -> Vec<PathBuf> {
    mentioning(files_under(&state(live).join("spool")), id)
}

/// Asserts that no 16-byte window of any of `audio` appears in any file under the state directory
/// (catalog, WAL, spool, objects).
fn assert_no_plaintext(live: &Live, audio: &[&[u8]]) {
    let windows: HashSet<&[u8]> = audio.iter().flat_map(|a| a.windows(16)).collect();
    assert!(!windows.is_empty(), "some audio to look for");
    let files = files_under(&state(live));
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("catalog")),
        "the catalog is among the files scanned: {files:?}"
    );
    for file in files {
        // a spool file may be renamed or removed while we walk
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        if let Some(at) = bytes.windows(16).position(|w| windows.contains(w)) {
            panic!("plaintext audio found in {} at byte {at}", file.display());
        }
    }
}

// --- catalog

async fn row(live: &Live, call: &str) -> RecordingRow {
    live.recording(call)
        .await
        .expect("the call has a recording row")
}

async fn segments(live: &Live, id: RecordingId) -> Vec<SegmentRow> {
    live.catalog.segments(id).await.expect("segments")
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

/// Audit actions about `subject`.
async fn audit_actions(live: &Live, subject: &str) -> Vec<String> {
    live.catalog
        .audit_after(0, 100_000)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.entry.subject == subject)
        .map(|e| e.entry.action)
        .collect()
}

// --- calls

/// Posts an event and asserts it was applied.
async fn applied(live: &Live, call: &str, kind: &str, extra: Value) {
    let (status, body) = live.event(call, kind, None, extra).await;
    assert_eq!(
        (status, &body),
        (200, &json!({ "status": "applied" })),
        "{kind} for {call} is applied"
    );
}

/// Sends `stop` and waits for the server's close: every frame sent has then been handed to the call.
async fn stop(ws: &mut Socket) {
    ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await
        .expect("stop frame");
    let (code, reason) = close_of(ws).await.expect("the server closes");
    assert_eq!(code, 1000, "a clean close: {reason:?}");
}

/// Closes the media socket (waiting for the server's close, so every frame sent has been handed
/// to the call), posts `call.ended`, lets the look-back window pass and waits until the recording
/// is sealed and uploaded.
async fn end_call(live: &Live, call: &str, mut ws: Socket) -> RecordingRow {
    stop(&mut ws).await;
    applied(live, call, "call.ended", json!({})).await;
    live.advance_ms(PAST_WINDOW_MS);
    live.wait_sealed(call).await
}

/// Plays a recording (16-bit PCM WAV) and decodes it as a player would.
async fn play(live: &Live, id: RecordingId) -> Decoded {
    let (status, wav) = live.play(&id.to_string(), &live.supervisor).await;
    assert_eq!(
        status,
        200,
        "playback of {id}: {}",
        String::from_utf8_lossy(&wav)
    );
    decode_wav(&wav)
}

fn assert_about(ms: u64, want: u64, what: &str) {
    assert!(
        ms.abs_diff(want) <= 60,
        "{what}: {ms} ms, want {want} ms ± 60"
    );
}

// --- 1. opt-out

#[tokio::test(flavor = "multi_thread")]
async fn refusal_destroys_every_byte_and_drops_later_audio() {
    let _shared = EXCLUSIVE.read().await;
    let live = Live::start("").await;
    let call = "optout-live";
    applied(
        &live,
        call,
        "call.started",
        json!({ "line": "+441000000001", "caller": "+447700900123" }),
    )
    .await;
    let mut ws = live.media(call).await;
    let audio = tone(stereo(), 1000.0, 10_000);
    // 5 s, a card payment (so segment 0 is sealed and uploaded), then 4 s more in segment 1
    live.stream(&mut ws, &audio[..5 * SECOND]).await;
    applied(&live, call, "payment.started", json!({})).await;
    live.stream(&mut ws, &audio[5 * SECOND..6 * SECOND]).await;
    applied(&live, call, "payment.ended", json!({})).await;
    live.stream(&mut ws, &audio[6 * SECOND..]).await;
    live.advance_ms(PAST_WINDOW_MS);
    let id = row(&live, call).await.id;
    eventually!(
        "segment 0 is uploaded and segment 1 is spooled",
        !objects_of(&live, id).is_empty() && !spool_of(&live, id).is_empty()
    );
    let before = segments(&live, id).await;
    assert_eq!(before.len(), 2, "two segments before the refusal");
    assert!(
        before.iter().all(|s| s.wrapped_key.is_some()),
        "segments have keys before the refusal"
    );

    applied(&live, call, "consent.refused", json!({})).await;

    let assert_destroyed = |when: &'static str| {
        let live = &live;
        async move {
            assert!(
                objects_of(live, id).is_empty(),
                "{when}: no object left: {:?}",
                objects_of(live, id)
            );
            assert!(
                spool_of(live, id).is_empty(),
                "{when}: no spool file left: {:?}",
                spool_of(live, id)
            );
            let segs = segments(live, id).await;
            assert_eq!(segs.len(), 2, "{when}: no segment opened after the refusal");
            assert!(
                segs.iter()
                    .all(|s| s.kek_id.is_none() && s.wrapped_key.is_none()),
                "{when}: every data key is shredded: {segs:?}"
            );
            let r = live.recording(call).await.expect("the tombstone stays");
            assert_eq!(r.status, RecordingStatus::Refused, "{when}: a tombstone");
            assert!(r.caller_sealed.is_none(), "{when}: no caller data");
            assert!(
                !format!("{r:?}").contains("7700900123"),
                "{when}: no caller number in the row"
            );
        }
    };
    assert_destroyed("right after the refusal").await;
    let kinds = ledger_kinds(&live, id).await;
    assert!(
        kinds.iter().any(|k| k == "consent.refused") && kinds.iter().any(|k| k == "destroyed"),
        "the ledger proves the refusal was honoured: {kinds:?}"
    );
    assert!(
        audit_actions(&live, &id.to_string())
            .await
            .iter()
            .any(|a| a == "recording.destroyed"),
        "the destruction is audited"
    );

    // later audio is dropped on arrival
    let later = tone(stereo(), 1000.0, 5_000);
    live.stream(&mut ws, &later).await;
    live.advance_ms(PAST_WINDOW_MS);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_destroyed("after 5 s more audio").await;

    let r = end_call(&live, call, ws).await;
    assert_eq!(r.status, RecordingStatus::Refused, "still a tombstone");
    assert_destroyed("after the call ended").await;
    let (status, body) = live.play(&id.to_string(), &live.supervisor).await;
    let problem: Value = serde_json::from_slice(&body).expect("a problem body");
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("audio_destroyed"))
    );
    assert_no_plaintext(&live, &[&audio, &later]);
    for file in files_under(&state(&live)) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(13).any(|w| w == b"+447700900123"),
            "the caller's number is not stored in plain in {}",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refusal_after_the_call_ended_destroys_the_sealed_recording() {
    let _shared = EXCLUSIVE.read().await;
    let live = Live::start("").await;
    let call = "optout-late";
    applied(&live, call, "call.started", json!({})).await;
    let mut ws = live.media(call).await;
    let audio = tone(stereo(), 1000.0, 6_000);
    live.stream(&mut ws, &audio).await;
    let sealed = end_call(&live, call, ws).await;
    assert_eq!(sealed.status, RecordingStatus::Sealed);
    let id = sealed.id;
    assert!(!objects_of(&live, id).is_empty(), "uploaded before");
    assert_about(
        play(&live, id).await.duration_ms(),
        6_000,
        "playable before",
    );

    // the platform's webhook comes late
    applied(&live, call, "consent.refused", json!({})).await;

    assert!(objects_of(&live, id).is_empty(), "no object left");
    assert!(spool_of(&live, id).is_empty(), "no spool file left");
    let segs = segments(&live, id).await;
    assert!(!segs.is_empty(), "the segment rows stay, as tombstones");
    assert!(
        segs.iter()
            .all(|s| s.kek_id.is_none() && s.wrapped_key.is_none()),
        "every data key is shredded: {segs:?}"
    );
    let r = row(&live, call).await;
    assert_eq!(r.status, RecordingStatus::Refused);
    assert!(r.caller_sealed.is_none(), "no caller data");
    let kinds = ledger_kinds(&live, id).await;
    assert!(
        kinds.iter().any(|k| k == "consent.refused") && kinds.iter().any(|k| k == "destroyed"),
        "ledger: {kinds:?}"
    );
    assert!(
        audit_actions(&live, &id.to_string())
            .await
            .iter()
            .any(|a| a == "recording.destroyed"),
        "the destruction is audited"
    );
    let (status, body) = live.play(&id.to_string(), &live.supervisor).await;
    let problem: Value = serde_json::from_slice(&body).expect("a problem body");
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("audio_destroyed"))
    );
    assert_no_plaintext(&live, &[&audio]);
}

// --- 2. explicit consent

const EXPLICIT: &str = r#"
[policies.standard]
retention = "3 months"
[policies.explicit]
retention = "3 months"
consent = "explicit"
consent_wait = "20s"
pause_render = "skip"
[lines]
"+441000000002" = "explicit"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn explicit_consent_keeps_audio_only_once_given() {
    let _shared = EXCLUSIVE.read().await;
    let live = Live::start(EXPLICIT).await;
    let line = json!({ "line": "+441000000002" });
    let mut sent = Vec::new();

    // (a) consent within the wait: everything from the start is kept
    let call = "consent-in-time";
    applied(&live, call, "call.started", line.clone()).await;
    let mut ws = live.media(call).await;
    let audio = tone(stereo(), 1000.0, 10_000);
    live.stream(&mut ws, &audio[..5 * SECOND]).await;
    applied(&live, call, "consent.given", json!({})).await;
    live.stream(&mut ws, &audio[5 * SECOND..]).await;
    let r = end_call(&live, call, ws).await;
    assert_eq!(r.policy, "explicit", "the line's policy applies");
    assert_eq!(r.status, RecordingStatus::Sealed);
    assert_about(
        play(&live, r.id).await.duration_ms(),
        10_000,
        "the whole call",
    );
    sent.push(audio);

    // (b) no consent: nothing is kept
    let call = "consent-never";
    applied(&live, call, "call.started", line.clone()).await;
    let mut ws = live.media(call).await;
    let audio = tone(stereo(), 1000.0, 25_000);
    live.stream(&mut ws, &audio).await;
    let r = end_call(&live, call, ws).await;
    assert!(
        segments(&live, r.id).await.is_empty(),
        "no segment without consent"
    );
    assert!(objects_of(&live, r.id).is_empty(), "no object");
    assert!(spool_of(&live, r.id).is_empty(), "no spool file");
    let kinds = ledger_kinds(&live, r.id).await;
    assert!(
        kinds.iter().any(|k| k == "consent.lapsed"),
        "the ledger says consent lapsed: {kinds:?}"
    );
    sent.push(audio);

    // (c) consent after the wait: only what follows its arrival is kept
    let call = "consent-late";
    applied(&live, call, "call.started", line.clone()).await;
    let mut ws = live.media(call).await;
    let audio = tone(stereo(), 1000.0, 30_000);
    live.stream(&mut ws, &audio[..25 * SECOND]).await;
    applied(&live, call, "consent.given", json!({})).await;
    live.stream(&mut ws, &audio[25 * SECOND..]).await;
    let r = end_call(&live, call, ws).await;
    let segs = segments(&live, r.id).await;
    let first = segs.first().expect("audio after the consent is kept");
    assert_about(
        first.media_start_ms,
        25_000,
        "kept from the consent's arrival",
    );
    assert_about(
        play(&live, r.id).await.duration_ms(),
        5_000,
        "only after consent",
    );
    let kinds = ledger_kinds(&live, r.id).await;
    assert!(
        kinds.iter().any(|k| k == "consent.lapsed") && kinds.iter().any(|k| k == "consent.given"),
        "ledger: {kinds:?}"
    );
    sent.push(audio);

    let sent: Vec<&[u8]> = sent.iter().map(Vec::as_slice).collect();
    assert_no_plaintext(&live, &sent);
}

// --- 3. object store down

async fn pending_gauge(live: &Live) -> f64 {
    let (status, _, text) = common::get(live.admin, "/metrics").await;
    assert_eq!(status, 200, "metrics answer");
    text.lines()
        .find_map(|l| l.strip_prefix("callvault_spool_pending_segments "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the pending-segments gauge is exported")
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_seal_while_the_store_is_down_and_upload_when_it_returns() {
    let _alone = EXCLUSIVE.write().await;
    let live = Live::start("").await;
    let objects = state(&live).join("objects");
    let away = state(&live).join("objects.away");
    assert!(objects.is_dir(), "the local store root exists");
    std::fs::rename(&objects, &away).expect("move the store away");
    std::fs::write(&objects, b"not a directory").expect("a file where the store was");

    let calls = [("store-down-1", 6_000u64), ("store-down-2", 4_000)];
    let mut sent = Vec::new();
    let mut ids = Vec::new();
    for (call, ms) in calls {
        applied(&live, call, "call.started", json!({})).await;
        let mut ws = live.media(call).await;
        let audio = tone(stereo(), 1000.0, ms);
        live.stream(&mut ws, &audio).await;
        stop(&mut ws).await;
        applied(&live, call, "call.ended", json!({})).await;
        sent.push(audio);
    }
    live.advance_ms(PAST_WINDOW_MS);
    for (call, _) in calls {
        eventually!(
            format!("{call} is sealed"),
            row(&live, call).await.status == RecordingStatus::Sealed
        );
        ids.push(row(&live, call).await.id);
    }
    for id in &ids {
        let segs = segments(&live, *id).await;
        assert!(
            !segs.is_empty() && segs.iter().all(|s| s.status == SegmentStatus::Spooled),
            "segments stay spooled: {segs:?}"
        );
        let spooled = spool_of(&live, *id);
        assert!(
            !spooled.is_empty()
                && spooled
                    .iter()
                    .all(|p| p.to_string_lossy().ends_with(".cva")),
            "sealed spool files wait: {spooled:?}"
        );
        let (status, _) = live.play(&id.to_string(), &live.supervisor).await;
        assert_eq!(status, 503, "not playable before upload");
    }
    eventually!(
        "the gauge counts both pending segments",
        pending_gauge(&live).await >= 2.0
    );

    std::fs::remove_file(&objects).expect("remove the file");
    std::fs::rename(&away, &objects).expect("the store is back");

    for ((call, ms), id) in calls.iter().zip(&ids) {
        let r = live.wait_sealed(call).await;
        assert_eq!(r.status, RecordingStatus::Sealed);
        let segs = segments(&live, *id).await;
        assert!(
            segs.iter().all(|s| s.status == SegmentStatus::Stored),
            "uploaded: {segs:?}"
        );
        assert!(spool_of(&live, *id).is_empty(), "spool emptied");
        assert!(!objects_of(&live, *id).is_empty(), "objects stored");
        assert_about(play(&live, *id).await.duration_ms(), *ms, call);
    }
    eventually!("the gauge drops to zero", pending_gauge(&live).await == 0.0);
    let sent: Vec<&[u8]> = sent.iter().map(Vec::as_slice).collect();
    assert_no_plaintext(&live, &sent);
}

// --- 4. bad input

/// A call that streams half a second at a time between the bad inputs.
struct Steady {
    ws: Socket,
    audio: Vec<u8>,
    sent: usize,
}

impl Steady {
    const STEP: usize = SECOND / 2;

    async fn step(&mut self, live: &Live) {
        let chunk = &self.audio[self.sent..self.sent + Self::STEP];
        live.stream(&mut self.ws, chunk).await;
        self.sent += Self::STEP;
    }
}

/// Posts `body` to `/v1/events` with `headers`; status, content type and JSON body.
async fn post(live: &Live, body: &[u8], headers: &[(&str, &str)]) -> (u16, String, Value) {
    let stream = tokio::net::TcpStream::connect(live.public)
        .await
        .expect("connect");
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    let (status, head, body) = common::exchange(stream, "POST", "/v1/events", &h, body).await;
    let ctype = common::header(&head, "content-type")
        .unwrap_or_default()
        .to_owned();
    (
        status,
        ctype,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// Posts `body` signed with the deployment's secret and timestamp `ts`.
async fn post_signed_at(live: &Live, body: &[u8], ts: i64) -> (u16, String, Value) {
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let sig = live.webhook.sign(&id, ts, body);
    let ts = ts.to_string();
    post(
        live,
        body,
        &[
            ("webhook-id", &id),
            ("webhook-timestamp", &ts),
            ("webhook-signature", &sig),
        ],
    )
    .await
}

fn assert_problem(got: (u16, String, Value), status: u16, code: &str, what: &str) -> Value {
    let (s, ctype, body) = got;
    assert_eq!(
        (s, body["code"].as_str()),
        (status, Some(code)),
        "{what}: {body}"
    );
    assert_eq!(ctype, "application/problem+json", "{what}: content type");
    body
}

async fn ws_close(live: &Live, call: &str, frames: Vec<Message>) -> (u16, String) {
    let mut ws = live
        .media_with(call, Some(&live.telephony))
        .await
        .expect("socket opens");
    for f in frames {
        // the server may already have closed after an earlier frame
        if ws.send(f).await.is_err() {
            break;
        }
    }
    close_of(&mut ws).await.expect("the server closes")
}

fn start_frame() -> Message {
    let start = json!({ "type": "start", "codec": "PCMU", "sample_rate": 8000, "channels": 2 });
    Message::Text(start.to_string().into())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_while_another_call_records_in_full() {
    let _shared = EXCLUSIVE.read().await;
    let live = Live::start("").await;
    applied(&live, "steady", "call.started", json!({})).await;
    let mut steady = Steady {
        ws: live.media("steady").await,
        audio: tone(stereo(), 1000.0, 60_000),
        sent: 0,
    };
    steady.step(&live).await;

    let event = |call: &str, kind: &str| json!({ "id": format!("evt-{}", uuid::Uuid::now_v7()), "type": kind, "call_id": call, "at": live.now().to_rfc3339() });
    let now = || live.now().timestamp();
    let good = event("bad-events", "call.started").to_string();

    // signatures
    assert_problem(
        post(&live, good.as_bytes(), &[]).await,
        401,
        "missing_signature",
        "no signature headers",
    );
    steady.step(&live).await;
    let ts = now().to_string();
    let forged = format!("v1,{}", "A".repeat(44));
    assert_problem(
        post(
            &live,
            good.as_bytes(),
            &[
                ("webhook-id", "msg_forged"),
                ("webhook-timestamp", &ts),
                ("webhook-signature", &forged),
            ],
        )
        .await,
        401,
        "bad_signature",
        "wrong signature",
    );
    steady.step(&live).await;
    for skew in [-360, 360] {
        assert_problem(
            post_signed_at(&live, good.as_bytes(), now() + skew).await,
            401,
            "stale_timestamp",
            &format!("timestamp {skew} s away"),
        );
        steady.step(&live).await;
    }

    // bodies
    assert_problem(
        post_signed_at(&live, br#"{"id": "evt-x", "type": "#, now()).await,
        400,
        "malformed_json",
        "malformed json",
    );
    steady.step(&live).await;
    let mut missing = event("bad-events", "call.started");
    missing
        .as_object_mut()
        .expect("object")
        .remove("call_id")
        .expect("had one");
    let p = assert_problem(
        post_signed_at(&live, missing.to_string().as_bytes(), now()).await,
        400,
        "missing_field",
        "no call_id",
    );
    assert!(
        p["detail"].as_str().is_some_and(|d| d.contains("call_id")),
        "the detail names call_id: {p}"
    );
    steady.step(&live).await;
    assert_problem(
        post_signed_at(
            &live,
            event("bad-events", "call.exploded").to_string().as_bytes(),
            now(),
        )
        .await,
        400,
        "unknown_type",
        "unknown type",
    );
    steady.step(&live).await;
    let mut bad_at = event("bad-events", "call.started");
    bad_at["at"] = json!("yesterday at noon");
    let p = assert_problem(
        post_signed_at(&live, bad_at.to_string().as_bytes(), now()).await,
        400,
        "bad_field",
        "bad at",
    );
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("at") && d.starts_with("bad field at")),
        "the detail names at: {p}"
    );
    steady.step(&live).await;
    let mut huge = event("bad-events", "call.started");
    huge["padding"] = json!("x".repeat(70 * 1024));
    assert_problem(
        post_signed_at(&live, huge.to_string().as_bytes(), now()).await,
        413,
        "payload_too_large",
        "a body over 64 KiB",
    );
    steady.step(&live).await;

    // the same event id twice: acknowledged, applied once
    let dup = event("dup-call", "payment.started").to_string();
    let first = post_signed_at(&live, dup.as_bytes(), now()).await;
    assert_eq!(
        (first.0, &first.2),
        (200, &json!({ "status": "applied" })),
        "first delivery"
    );
    let second = post_signed_at(&live, dup.as_bytes(), now()).await;
    assert_eq!(
        (second.0, &second.2),
        (200, &json!({ "status": "duplicate" })),
        "second delivery"
    );
    let dup_id = row(&live, "dup-call").await.id;
    let kinds = ledger_kinds(&live, dup_id).await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| k.as_str() == "pause" || k.as_str() == "pause.repeated")
            .count(),
        1,
        "one pause applied: {kinds:?}"
    );
    // a different id is applied, and the ledger shows it: the count above would have seen a replay
    applied(&live, "dup-call", "payment.started", json!({})).await;
    let kinds = ledger_kinds(&live, dup_id).await;
    assert!(
        kinds.iter().any(|k| k == "pause.repeated"),
        "a second application shows in the ledger: {kinds:?}"
    );
    steady.step(&live).await;

    // a pause for a call that ended
    applied(&live, "ended-call", "call.started", json!({})).await;
    applied(&live, "ended-call", "call.ended", json!({})).await;
    live.advance_ms(PAST_WINDOW_MS);
    eventually!(
        "ended-call is sealed",
        row(&live, "ended-call").await.status != RecordingStatus::Live
    );
    steady.step(&live).await;
    assert_problem(
        post_signed_at(
            &live,
            event("ended-call", "payment.started")
                .to_string()
                .as_bytes(),
            now(),
        )
        .await,
        409,
        "call_ended",
        "a pause after the end",
    );
    steady.step(&live).await;

    // the media socket
    match live.media_with("bad-ws-0", None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status().as_u16(), 401, "no token")
        }
        other => panic!("no token must be refused before the upgrade: {other:?}"),
    }
    steady.step(&live).await;
    match live.media_with("bad-ws-0", Some(&live.supervisor)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status().as_u16(), 403, "a supervisor token")
        }
        other => panic!("a supervisor may not stream: {other:?}"),
    }
    steady.step(&live).await;
    let cases: Vec<(&str, Vec<Message>, u16)> = vec![
        (
            "binary before start",
            vec![Message::Binary(vec![0xFF; 320].into())],
            1008,
        ),
        (
            "malformed json",
            vec![Message::Text("{\"type\": ".into())],
            1007,
        ),
        (
            "unknown control type",
            vec![start_frame(), Message::Text(r#"{"type":"bogus"}"#.into())],
            1007,
        ),
        (
            "odd-length audio",
            vec![start_frame(), Message::Binary(vec![0xFF; 321].into())],
            1007,
        ),
        (
            "a frame over 64 KiB",
            vec![
                start_frame(),
                Message::Binary(vec![0xFF; 64 * 1024 + 2].into()),
            ],
            1009,
        ),
        ("a second start", vec![start_frame(), start_frame()], 1008),
    ];
    for (n, (what, frames, want)) in cases.into_iter().enumerate() {
        let (code, reason) = ws_close(&live, &format!("bad-ws-{}", n + 1), frames).await;
        assert_eq!(code, want, "{what}: closed with {code} {reason:?}");
        steady.step(&live).await;
    }
    let (code, reason) = ws_close(&live, "steady", vec![start_frame()]).await;
    assert_eq!(code, 1008, "a second socket for a live call: {reason:?}");
    assert!(
        reason.contains("stream_open"),
        "the close names stream_open: {reason:?}"
    );
    steady.step(&live).await;

    // the steady call kept every frame
    let sent = steady.sent;
    let r = end_call(&live, "steady", steady.ws).await;
    assert_eq!(r.status, RecordingStatus::Sealed);
    let played = play(&live, r.id).await;
    // the clock moved 4 s while the steady stream sent nothing (the ended call above): from the
    // server's side the stream paused sending, and the recording keeps that as a named gap
    let gaps: Vec<Value> = live
        .catalog
        .ledger(r.id)
        .await
        .expect("ledger")
        .iter()
        .filter(|e| e.kind == "gap")
        .map(|e| serde_json::from_str(&e.details).expect("json"))
        .collect();
    assert_eq!(gaps.len(), 1, "one gap: {gaps:?}");
    assert_eq!(gaps[0]["cause"], "stream_paused");
    let gap_ms = gaps[0]["length_ms"].as_u64().expect("length");
    let gap_at = gaps[0]["at_ms"].as_u64().expect("at");
    assert_about(gap_ms, PAST_WINDOW_MS as u64, "the gap");
    let want = (sent / (SECOND / 1000)) as u64;
    assert_about(played.duration_ms(), want + gap_ms, "the steady call");
    let spans = tone_spans(&played.samples[0], played.rate, 1000.0, 100, 0.05);
    assert_spans(
        &spans,
        &[0..gap_at, gap_at + gap_ms..(want + gap_ms) / 100 * 100],
        100,
        "1 kHz throughout, but for the gap",
    );
    assert_no_plaintext(&live, &[&steady.audio[..sent]]);
}

// --- 5. events before the stream

#[tokio::test(flavor = "multi_thread")]
async fn events_before_the_stream_apply_when_it_opens() {
    let _shared = EXCLUSIVE.read().await;
    let live = Live::start("").await;
    let call = "early-events";
    applied(&live, call, "call.started", json!({})).await;
    applied(&live, call, "payment.started", json!({})).await;
    let mut ws = live.media(call).await;
    let card = tone(stereo(), 1000.0, 3_000);
    let after = tone(stereo(), 1500.0, 3_000);
    live.stream(&mut ws, &card).await;
    applied(&live, call, "payment.ended", json!({})).await;
    live.stream(&mut ws, &after).await;
    let r = end_call(&live, call, ws).await;
    assert_eq!(r.status, RecordingStatus::Sealed);
    let segs = segments(&live, r.id).await;
    assert_eq!(segs.len(), 1, "one segment, after the payment: {segs:?}");
    // capture resumes `pci.max_latency` (1 s) after payment.ended arrives
    assert_about(
        segs[0].media_start_ms,
        4_000,
        "the segment starts a second after payment.ended",
    );
    let played = play(&live, r.id).await;
    assert_about(played.duration_ms(), 2_000, "only after the payment");
    for ch in 0..2 {
        let card_spans = tone_spans(&played.samples[ch], played.rate, 1000.0, 100, 0.01);
        assert!(
            card_spans.is_empty(),
            "no card audio on channel {ch}: {card_spans:?}"
        );
        let kept = tone_spans(&played.samples[ch], played.rate, 1500.0, 100, 0.05);
        assert_spans(
            &kept,
            std::slice::from_ref(&(0..2_000)),
            100,
            "the audio after the payment",
        );
    }
    let kinds = ledger_kinds(&live, r.id).await;
    assert!(
        kinds.iter().any(|k| k == "pause") && kinds.iter().any(|k| k == "resume"),
        "ledger: {kinds:?}"
    );
    assert_no_plaintext(&live, &[&card, &after]);
}

// --- 7. the simulator end to end

/// Runs a simulated 6 s call (card payment from 2 s to 4 s) in real time, the manual clock
/// following the wall clock, and checks what plays back.
async fn simulated_call(live: &Live, call: &str, webhooks: bool) {
    use callvault::domain::EventKind;
    use callvault::simulate::{SimulateOptions, simulate};
    let mut opts = SimulateOptions::new(
        format!("http://{}", live.public),
        callvault::config::Secret::new(live.telephony.clone().into_bytes()),
        call.parse().expect("call id"),
    );
    opts.duration = Duration::from_secs(6);
    opts.events = vec![
        (Duration::from_secs(2), EventKind::PaymentStarted),
        (Duration::from_secs(4), EventKind::PaymentEnded),
    ];
    opts.webhook_secret = webhooks.then(|| live.webhook.clone());
    let report = simulate(opts).await.expect("the simulated call runs");
    assert_eq!(
        report.close.as_ref().map(|c| c.0),
        Some(1000),
        "a clean close: {report}"
    );
    let r = live.wait_sealed(call).await;
    assert_eq!(r.status, RecordingStatus::Sealed);
    let kinds = ledger_kinds(live, r.id).await;
    assert!(
        kinds.iter().any(|k| k == "pause") && kinds.iter().any(|k| k == "resume"),
        "ledger: {kinds:?}"
    );
    let played = play(live, r.id).await;
    assert!(
        played.duration_ms().abs_diff(6_000) <= 150,
        "{call}: {} ms, want the 6 s call",
        played.duration_ms()
    );
    // the pause takes effect `guard` (0.5 s) before the event; capture resumes `pci.max_latency`
    // (1 s) after payment.ended arrives (audio could have been held up that long on its way)
    // the simulator's tone is at 0.3 of full scale: power 0.045 (the pause tone gives 0.005)
    let caller = tone_spans(&played.samples[0], played.rate, 440.0, 100, 0.02);
    assert_spans(&caller, &[0..1_500, 5_000..6_000], 200, "caller tone");
    let agent = tone_spans(&played.samples[1], played.rate, 660.0, 100, 0.02);
    assert_spans(&agent, &[0..1_500, 5_000..6_000], 200, "agent tone");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_records_end_to_end() {
    let _shared = EXCLUSIVE.read().await;
    let live = Live::start("").await;
    // the simulator stamps events and webhooks with the real time: the daemon's clock follows it
    live.clock.set(Utc::now());
    let clock = live.clock.clone();
    let follower = tokio::spawn(async move {
        loop {
            clock.set(Utc::now());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    simulated_call(&live, "sim-webhooks", true).await;
    simulated_call(&live, "sim-control-frames", false).await;
    follower.abort();
}

/// `--fast` sends a call's audio as fast as the daemon takes it: all of it is stored, at its
/// place (with scripted events the command refuses to run, saying why: see `simulate::args`).
#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_fast_stores_all_its_audio() {
    use callvault::simulate::{SimulateOptions, simulate};
    let live = Live::start("").await;
    let opts = |call: &str| {
        let mut o = SimulateOptions::new(
            format!("http://{}", live.public),
            callvault::config::Secret::new(live.telephony.clone().into_bytes()),
            call.parse().expect("call id"),
        );
        o.duration = Duration::from_secs(6);
        o.realtime = false;
        o
    };
    let report = simulate(opts("sim-fast")).await.expect("runs");
    assert_eq!(report.close.as_ref().map(|c| c.0), Some(1000), "{report}");
    live.advance_ms(PAST_WINDOW_MS + 1_000);
    let r = live.wait_sealed("sim-fast").await;
    let played = play(&live, r.id).await;
    assert_about(
        played.duration_ms(),
        6_000,
        "every second the fast simulator sent",
    );
    let caller = tone_spans(&played.samples[0], played.rate, 440.0, 100, 0.02);
    assert_spans(
        &caller,
        std::slice::from_ref(&(0..6_000)),
        100,
        "the caller's tone throughout",
    );
    live.stop().await;
}

/// A call with no `call.started` whose every frame comes after its `call.ended` still seals.
#[tokio::test(flavor = "multi_thread")]
async fn audio_after_call_ended_is_kept_until_its_stream_closes() {
    let live = Live::start("").await;
    // the stream opens first (a stream cannot open for a call that has ended), then the call ends
    let mut ws = live.media("late-audio").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, body) = live
        .event("late-audio", "call.ended", None, json!({}))
        .await;
    assert_eq!(code, 200, "{body}");
    // audio that arrives before the stream closes is kept, though the call ended first (a
    // platform's webhook can overtake the last of its media)
    live.stream(&mut ws, &vec![0x55u8; 320 * 50]).await;
    stop(&mut ws).await;
    live.advance_ms(5_000);
    let row = live.wait_sealed("late-audio").await;
    assert_eq!(row.status, callvault::catalog::RecordingStatus::Sealed);
    let segments = live.catalog.segments(row.id).await.expect("segments");
    let kept: u64 = segments
        .iter()
        .map(|s| s.media_end_ms - s.media_start_ms)
        .sum();
    assert_about(kept, 1_000, "audio after call.ended, before the close");
    live.stop().await;
}

/// A media socket that sends its start frame and then nothing is closed after
/// `recorder.idle_seal` (close reason `idle`), and its call seals.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_media_socket_is_closed_and_its_call_sealed() {
    let live = Live::start("[recorder]\nidle_seal = \"4s\"\n").await;
    let mut ws = live.media("idle-socket").await;
    let began = std::time::Instant::now();
    let (code, reason) = tokio::time::timeout(Duration::from_secs(10), close_of(&mut ws))
        .await
        .expect("the server closes an idle socket")
        .expect("with a close frame");
    assert_eq!((code, reason.as_str()), (1000, "idle"));
    assert!(
        began.elapsed() >= Duration::from_millis(3_900),
        "not before idle_seal: {:?}",
        began.elapsed()
    );
    live.advance_ms(5_000);
    let r = live.wait_sealed("idle-socket").await;
    assert_eq!(r.status, RecordingStatus::Sealed);
    live.stop().await;
}
