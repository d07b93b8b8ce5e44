//! The S3 object store against a real S3-compatible server (moto's, started by `tests/s3/start.sh`,
//! with SigV4 authentication on): the daemon in-process with `storage.kind = "s3"` records calls, and
//! the tests look into the bucket with a plain S3 client. Each test has a bucket of its own.
//!
//! Covered: the `v1/{yyyy}/{mm}/{dd}/{recording_id}/{segment:04}.cva` layout with sizes and hashes
//! as catalogued, playback (whole and ranged), erasure and the retention sweep emptying the bucket,
//! an outage (the server taken away mid-run and brought back: nothing lost), wrong credentials
//! (start-up refused, exit 64, spool kept), the short retry budget, and multipart uploads.
//!
//! Without the server these tests fail, naming the start script; they never skip.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callvault::catalog::{RecordingStatus, SegmentRow, SegmentStatus};
use callvault::domain::{Codec, MediaFormat, RecordingId};
use callvault::server::Daemon;
use callvault::vault::{self, StoreKind, VaultError};
use common::audio::{Decoded, decode_wav, goertzel, tone, tone_spans};
use common::live::{Live, close_of, sync, t0};
use common::s3::{Gate, S3, deployment, objects};
use futures::SinkExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use zeroize::Zeroizing;

const FORMAT: MediaFormat = MediaFormat {
    codec: Codec::Pcmu,
    sample_rate: 8000,
    channels: 2,
};
/// Past the look-back window (`pci.lookback` 3 s + `pci.guard` 0.5 s), with a margin.
const PAST_WINDOW_MS: i64 = 4_000;

/// Polls `$cond` (which may `.await`) in real time until it holds, or fails naming `$what`.
macro_rules! eventually {
    ($what:expr, $cond:expr) => {{
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if $cond {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {}",
                $what
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}

// --- driving calls

async fn applied(live: &Live, call: &str, kind: &str) {
    let (status, body) = live.event(call, kind, None, json!({})).await;
    assert_eq!(
        (status, &body),
        (200, &json!({ "status": "applied" })),
        "{kind} for {call} is applied"
    );
}

/// Starts `call`, streams its parts (a payment pause between the first and second when `paid`),
/// ends it and lets the look-back window pass. Returns everything that was sent.
async fn record(live: &Live, call: &str, parts: &[Vec<u8>], paid: bool) -> Vec<u8> {
    let (status, body) = live
        .event(
            call,
            "call.started",
            None,
            json!({ "line": "+441744676789", "agent": "agent-7" }),
        )
        .await;
    assert_eq!(status, 200, "call.started: {body}");
    // the start frame anchors the stream's first sample at now, as the clock follows the stream
    let mut ws = live
        .media_with(call, Some(&live.telephony))
        .await
        .expect("media socket opens");
    let start = json!({
        "type": "start", "codec": "PCMU", "sample_rate": 8000, "channels": 2,
        "media_start": live.now().to_rfc3339(),
    });
    ws.send(Message::Text(start.to_string().into()))
        .await
        .expect("start frame");
    sync(&mut ws).await;
    for (i, part) in parts.iter().enumerate() {
        if paid && i == 1 {
            sync(&mut ws).await;
            applied(live, call, "payment.started").await;
        }
        if paid && i == 2 {
            sync(&mut ws).await;
            applied(live, call, "payment.ended").await;
        }
        live.stream(&mut ws, part).await;
    }
    sync(&mut ws).await;
    ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await
        .expect("stop frame");
    let (code, reason) = close_of(&mut ws).await.expect("the server closes");
    assert_eq!(code, 1000, "a clean close: {reason:?}");
    applied(live, call, "call.ended").await;
    live.advance_ms(PAST_WINDOW_MS);
    parts.concat()
}

async fn id_of(live: &Live, call: &str) -> RecordingId {
    eventually!(
        format!("{call} is sealed"),
        live.recording(call)
            .await
            .is_some_and(|r| r.status == RecordingStatus::Sealed)
    );
    live.recording(call).await.expect("a recording").id
}

async fn segments(live: &Live, id: RecordingId) -> Vec<SegmentRow> {
    live.catalog.segments(id).await.expect("segments")
}

/// Plays a recording as 16-bit PCM WAV and decodes it.
async fn play(live: &Live, id: RecordingId) -> (Vec<u8>, Decoded) {
    let (status, wav) = live.play(&id.to_string(), &live.supervisor).await;
    assert_eq!(
        status,
        200,
        "playback of {id}: {}",
        String::from_utf8_lossy(&wav)
    );
    let decoded = decode_wav(&wav);
    (wav, decoded)
}

/// Sends one request with a bearer token; answers status and JSON.
async fn call(addr: std::net::SocketAddr, method: &str, path: &str, token: &str) -> (u16, Value) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let auth = format!("Bearer {token}");
    let (status, _, out) =
        common::exchange(stream, method, path, &[("Authorization", &auth)], b"").await;
    (status, serde_json::from_slice(&out).unwrap_or(Value::Null))
}

/// The keys the recording's segments must have: `v1/2026/11/22/{id}/{segment:04}.cva` (the manual
/// clock starts on 22 November 2026).
fn layout_keys(id: RecordingId, segments: &[SegmentRow]) -> Vec<String> {
    segments
        .iter()
        .map(|s| format!("v1/2026/11/22/{id}/{:04}.cva", s.segment.0))
        .collect()
}

fn prefix_of(id: RecordingId) -> String {
    format!("v1/2026/11/22/{id}/")
}

/// Every regular file under `dir` whose path names `id`.
fn files_of(dir: &Path, id: RecordingId) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_of(&path, id));
        } else if path.to_string_lossy().contains(&id.to_string()) {
            out.push(path);
        }
    }
    out
}

fn spool_of(live: &Live, id: RecordingId) -> Vec<PathBuf> {
    files_of(&live.deployment.path("state/spool"), id)
}

fn power(d: &Decoded, hz: f64) -> f32 {
    let len = (d.rate / 100) as usize;
    d.samples
        .iter()
        .flat_map(|ch| ch.chunks_exact(len).map(|w| goertzel(w, d.rate, hz)))
        .fold(0.0, f32::max)
}

fn assert_about(ms: u64, want: u64, within: u64, what: &str) {
    assert!(
        ms.abs_diff(want) <= within,
        "{what}: {ms} ms, want {want} ms ± {within}"
    );
}

async fn upload_failures(live: &Live) -> f64 {
    let (status, _, text) = common::get(live.admin, "/metrics").await;
    assert_eq!(status, 200, "metrics answer");
    text.lines()
        .find_map(|l| l.strip_prefix("callvault_upload_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

// --- 1. layout, hashes, playback

#[tokio::test(flavor = "multi_thread")]
async fn a_paid_call_lands_in_the_bucket_under_the_v1_layout_and_plays_back_whole_and_ranged() {
    let s3 = S3::server().await;
    let bucket = s3.create_bucket("cv-layout").await;
    let live = Live::start_in(deployment(&s3, &bucket, "")).await;
    let parts = [
        tone(FORMAT, 1000.0, 3_000),
        tone(FORMAT, 2000.0, 2_000), // the card digits, paused
        tone(FORMAT, 1000.0, 3_000),
    ];
    let sent = record(&live, "s3-paid-1", &parts, true).await;
    let id = id_of(&live, "s3-paid-1").await;
    let row = live.wait_sealed("s3-paid-1").await;
    assert_eq!(row.id, id);

    let segs = segments(&live, id).await;
    assert!(
        segs.len() >= 2,
        "the payment ends one segment and resumes in another: {segs:?}"
    );
    assert!(segs.iter().all(|s| s.status == SegmentStatus::Stored));
    let client = s3.client(&bucket);
    let listed = objects(&client, None).await;
    let want: Vec<String> = layout_keys(id, &segs);
    assert_eq!(
        listed.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        want,
        "the bucket holds exactly the recording's segments, at their v1 keys"
    );
    let card: HashSet<&[u8]> = parts[1].windows(16).step_by(97).collect();
    let clear: HashSet<&[u8]> = sent.windows(16).step_by(97).collect();
    for (seg, (key, size)) in segs.iter().zip(&listed) {
        assert_eq!(&seg.object_key, key, "the catalog names the object");
        assert_eq!(seg.size, *size, "{key}: catalogued size");
        let body = client
            .get(&ObjectPath::from(key.as_str()))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body");
        assert_eq!(&body[..4], b"CVA1", "{key} is a sealed container");
        let sha: [u8; 32] = Sha256::digest(&body).into();
        assert_eq!(seg.sha256, Some(sha), "{key}: catalogued SHA-256");
        assert!(
            !body
                .windows(16)
                .any(|w| clear.contains(w) || card.contains(w)),
            "{key} holds no audio in the clear"
        );
    }
    assert!(
        spool_of(&live, id).is_empty(),
        "the spool is emptied once uploaded"
    );

    let (wav, played) = play(&live, id).await;
    assert_eq!((played.rate, played.channels), (8000, 2));
    assert!(
        power(&played, 2000.0) < 1e-3,
        "no card audio is played back: 2 kHz power {}",
        power(&played, 2000.0)
    );
    let spans = tone_spans(&played.samples[0], played.rate, 1000.0, 10, 0.03);
    assert!(
        spans.len() >= 2,
        "the call before and after the payment: {spans:?}"
    );
    // 2.5 s kept before the pause (its instant is 0.5 s early), the pause rendered as a tone, 3 s
    assert_about(played.duration_ms(), 8_000, 1_100, "playback");

    let auth = format!("Bearer {}", live.supervisor);
    let path = format!("/v1/recordings/{id}/audio?reason=test&format=pcm16");
    let (from, to) = (1_000usize, 40_999usize);
    let range = format!("bytes={from}-{to}");
    let stream = TcpStream::connect(live.public).await.expect("connect");
    let (status, headers, body) = common::exchange(
        stream,
        "GET",
        &path,
        &[("Authorization", &auth), ("Range", &range)],
        b"",
    )
    .await;
    assert_eq!(status, 206, "a ranged read");
    assert_eq!(
        common::header(&headers, "content-range"),
        Some(format!("bytes {from}-{to}/{}", wav.len()).as_str())
    );
    assert_eq!(
        body,
        wav[from..=to],
        "the range is the same bytes as the whole"
    );
}

// --- 2. deletion

#[tokio::test(flavor = "multi_thread")]
async fn erasure_and_the_retention_sweep_delete_the_objects_from_the_bucket() {
    let s3 = S3::server().await;
    let bucket = s3.create_bucket("cv-delete").await;
    let live = Live::start_in(deployment(&s3, &bucket, "")).await;
    let client = s3.client(&bucket);
    let mut ids = Vec::new();
    for call in ["s3-erase-1", "s3-expire-1"] {
        record(&live, call, &[tone(FORMAT, 1000.0, 3_000)], false).await;
        ids.push(id_of(&live, call).await);
        live.wait_sealed(call).await;
    }
    let [erased, expired] = ids[..] else {
        unreachable!("two calls")
    };
    for id in [erased, expired] {
        let segs = segments(&live, id).await;
        let keys: Vec<String> = objects(&client, Some(&prefix_of(id)))
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, layout_keys(id, &segs), "{id} is in the bucket");
    }

    let (status, body) = call(
        live.public,
        "DELETE",
        &format!("/v1/recordings/{erased}?reason=subject%20request"),
        &live.compliance,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["receipt"]["cause"], "erased", "{body}");
    assert_eq!(
        body["receipt"]["undeleted_objects"],
        json!([]),
        "every object deleted: {body}"
    );
    assert!(
        objects(&client, Some(&prefix_of(erased))).await.is_empty(),
        "the erased recording's objects are gone from the bucket"
    );
    assert!(
        !objects(&client, Some(&prefix_of(expired))).await.is_empty(),
        "the other recording's stay"
    );
    let (status, _) = live.play(&erased.to_string(), &live.compliance).await;
    assert_ne!(status, 200, "an erased recording does not play");

    // the default policy keeps 3 months: a year on, the sweep deletes the other
    live.clock.set(t0() + chrono::Duration::days(366));
    let (status, report) = call(live.admin, "POST", "/retention/sweep", "none").await;
    assert_eq!(status, 200, "sweep: {report}");
    assert_eq!(report["report"]["expired"], 1, "{report}");
    let row = live
        .recording("s3-expire-1")
        .await
        .expect("the tombstone stays");
    assert_eq!(row.status, RecordingStatus::Expired);
    assert_eq!(
        objects(&client, None).await,
        Vec::new(),
        "the bucket is empty"
    );
}

// --- 3. outage

#[tokio::test(flavor = "multi_thread")]
async fn calls_during_an_s3_outage_stay_spooled_retry_and_upload_when_it_returns() {
    let s3 = S3::server().await;
    let bucket = s3.create_bucket("cv-outage").await;
    let mut gate = Gate::open(s3.addr).await;
    let through_gate = s3.via(&gate.endpoint());
    let live = Live::start_in(deployment(&through_gate, &bucket, "")).await;
    let client = s3.client(&bucket);

    // the store answers: the first call goes straight up
    record(&live, "s3-before", &[tone(FORMAT, 1000.0, 2_000)], false).await;
    let before = id_of(&live, "s3-before").await;
    live.wait_sealed("s3-before").await;
    assert!(!objects(&client, Some(&prefix_of(before))).await.is_empty());

    // the server goes away mid-run: port closed, open connections cut
    gate.close().await;
    let failures = upload_failures(&live).await;
    record(&live, "s3-during", &[tone(FORMAT, 1000.0, 5_000)], false).await;
    let during = id_of(&live, "s3-during").await;
    eventually!(
        "the uploader has failed and retried twice",
        upload_failures(&live).await >= failures + 2.0
    );
    let segs = segments(&live, during).await;
    assert!(
        !segs.is_empty() && segs.iter().all(|s| s.status == SegmentStatus::Spooled),
        "segments stay spooled: {segs:?}"
    );
    let spooled = spool_of(&live, during);
    assert!(
        !spooled.is_empty()
            && spooled
                .iter()
                .all(|p| p.to_string_lossy().ends_with(".cva")),
        "sealed spool files wait for the store: {spooled:?}"
    );
    let (status, _) = live.play(&during.to_string(), &live.supervisor).await;
    assert_eq!(status, 503, "not playable before upload");
    // a stored recording during the outage: 503 store_unavailable with Retry-After, not 500
    let (status, headers, body) = live
        .get(
            &format!("/v1/recordings/{before}/audio?reason=test"),
            &live.supervisor,
        )
        .await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"store_unavailable\""), "{body}");
    assert_eq!(common::header(&headers, "retry-after"), Some("5"));
    assert_eq!(
        common::header(&headers, "content-type"),
        Some("application/problem+json")
    );

    // a refusal destroys at once, not after the outage: object_store's own retries are bounded, so
    // the upload in flight (which holds the upload gate) gives up within seconds
    record(&live, "s3-refused", &[tone(FORMAT, 1000.0, 2_000)], false).await;
    let refused = id_of(&live, "s3-refused").await;
    assert!(!spool_of(&live, refused).is_empty(), "spooled");
    let started = Instant::now();
    applied(&live, "s3-refused", "consent.refused").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a refusal during an outage took {:?}",
        started.elapsed()
    );
    let row = live.recording("s3-refused").await.expect("a tombstone");
    assert_eq!(row.status, RecordingStatus::Refused);
    assert!(
        spool_of(&live, refused).is_empty(),
        "its spool is destroyed"
    );

    // the server is back on the same port: the spooled call is uploaded, complete and decrypting
    gate.reopen().await;
    let row = live.wait_sealed("s3-during").await;
    assert_eq!(row.id, during);
    let segs = segments(&live, during).await;
    assert!(segs.iter().all(|s| s.status == SegmentStatus::Stored));
    let keys: Vec<String> = objects(&client, Some(&prefix_of(during)))
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, layout_keys(during, &segs));
    eventually!("the spool is emptied", spool_of(&live, during).is_empty());
    let (_, played) = play(&live, during).await;
    assert_about(played.duration_ms(), 5_000, 60, "the whole call");
    assert!(
        objects(&client, Some(&prefix_of(refused))).await.is_empty(),
        "the erased call never reaches the bucket"
    );
    let (status, _) = live.play(&before.to_string(), &live.supervisor).await;
    assert_eq!(status, 200, "the call before the outage still plays");
}

// --- 4. credentials

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_refuses_start_up_with_exit_64_and_loses_no_spooled_audio() {
    let s3 = S3::server().await;
    let bucket = s3.create_bucket("cv-creds").await;
    // a call recorded while the store is unreachable is left on the spool at shutdown
    let mut gate = Gate::closed(s3.addr).await;
    let through_gate = s3.via(&gate.endpoint());
    let live = Live::start_in(deployment(&through_gate, &bucket, "")).await;
    record(&live, "s3-creds-1", &[tone(FORMAT, 1000.0, 3_000)], false).await;
    let id = id_of(&live, "s3-creds-1").await;
    let deployment = live.stop().await;
    let spool = files_of(&deployment.path("state/spool"), id);
    assert!(!spool.is_empty(), "the call is spooled");

    // the store answers now, but the secret is wrong: start-up refuses, naming the keys
    gate.reopen().await;
    through_gate.write_secrets(&deployment, "not-the-secret");
    let config = deployment.load(&[]);
    let clock = callvault::domain::ManualClock::new(t0());
    let refused = Daemon::start(config, Arc::new(clock))
        .await
        .expect_err("a wrong secret refuses start-up");
    let message = refused.to_string();
    assert!(
        message.contains("refused the credentials")
            && message.contains("storage.secret_access_key")
            && message.contains("403"),
        "{message}"
    );
    assert_eq!(refused.exit_code(), 64, "ops must fix it: no restart loop");
    assert_eq!(
        files_of(&deployment.path("state/spool"), id),
        spool,
        "nothing lost: the spool is as it was"
    );
    let client = s3.client(&bucket);
    assert!(objects(&client, None).await.is_empty(), "nothing uploaded");

    // the right secret: the spool is recovered, uploaded and plays in full
    through_gate.write_secrets(&deployment, &s3.secret_access_key);
    let live = Live::start_in(deployment).await;
    let row = live.wait_sealed("s3-creds-1").await;
    assert_eq!(row.id, id);
    let segs = segments(&live, id).await;
    let keys: Vec<String> = objects(&client, None)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, layout_keys(id, &segs));
    let (_, played) = play(&live, id).await;
    assert_about(played.duration_ms(), 3_000, 60, "the whole call");
}

// --- 5. the store module against the server

fn kind(s3: &S3, bucket: &str, secret: &str) -> StoreKind {
    StoreKind::S3 {
        bucket: bucket.to_owned(),
        region: common::s3::REGION.to_owned(),
        endpoint: Some(s3.endpoint.clone()),
        access_key_id: s3.access_key_id.clone(),
        secret_access_key: Zeroizing::new(secret.to_owned()),
        allow_http: true,
        request_timeout: Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_check_tells_a_refusal_from_an_outage_and_gives_up_within_seconds() {
    let s3 = S3::server().await;
    let bucket = s3.create_bucket("cv-access").await;
    let good = kind(&s3, &bucket, &s3.secret_access_key);
    let store = vault::open_store(&good).expect("open");
    vault::check_access(&store)
        .await
        .expect("the right key is accepted");

    let wrong = vault::open_store(&kind(&s3, &bucket, "not-the-secret")).expect("open");
    let e = vault::check_access(&wrong)
        .await
        .expect_err("a wrong secret");
    assert!(matches!(e, VaultError::StoreAccessDenied(_)), "{e}");
    let e = vault::put_verified(
        &wrong,
        &kind(&s3, &bucket, "not-the-secret"),
        &ObjectPath::from("v1/x.cva"),
        Bytes::from_static(b"x"),
    )
    .await
    .expect_err("an upload with a wrong secret");
    assert!(matches!(e, VaultError::StoreAccessDenied(_)), "{e}");

    // a server that is down: a plain store error, after the short retry budget, not minutes
    let gate = Gate::closed(s3.addr).await;
    let down = kind(&s3.via(&gate.endpoint()), &bucket, &s3.secret_access_key);
    let store = vault::open_store(&down).expect("open");
    let started = Instant::now();
    let e = vault::check_access(&store).await.expect_err("down");
    assert!(matches!(e, VaultError::Store(_)), "{e}");
    let e = vault::put_verified(
        &store,
        &down,
        &ObjectPath::from("v1/x.cva"),
        Bytes::from_static(b"x"),
    )
    .await
    .expect_err("an upload to a store that is down");
    assert!(matches!(e, VaultError::Store(_)), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "two requests to a closed port took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_store_fails_a_request_within_its_deadline_and_a_short_retry_budget() {
    let s3 = S3::server().await;
    let (addr, hung) = common::s3::hung_server().await;
    let mut kind = kind(
        &s3.via(&format!("http://{addr}")),
        "cv-hung",
        &s3.secret_access_key,
    );
    if let StoreKind::S3 {
        request_timeout, ..
    } = &mut kind
    {
        *request_timeout = Duration::from_secs(1);
    }
    let store = vault::open_store(&kind).expect("open");
    let started = Instant::now();
    // object_store's default budget (10 more tries within 3 minutes) takes over 10 s here
    let e = vault::check_access(&store)
        .await
        .expect_err("a store that never answers");
    assert!(matches!(e, VaultError::Store(_)), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a HEAD to a hung store took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let e = vault::put_verified(
        &store,
        &kind,
        &ObjectPath::from("v1/x.cva"),
        Bytes::from_static(b"x"),
    )
    .await
    .expect_err("an upload to a store that never answers");
    assert!(matches!(e, VaultError::Store(_)), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a PUT to a hung store took {:?}",
        started.elapsed()
    );
    hung.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segment_over_the_multipart_threshold_goes_up_in_parts_and_is_verified() {
    let s3 = S3::server().await;
    let bucket = s3.create_bucket("cv-multipart").await;
    let kind = kind(&s3, &bucket, &s3.secret_access_key);
    let store = vault::open_store(&kind).expect("open");
    let client = s3.client(&bucket);

    let big: Vec<u8> = (0..vault::store::MULTIPART_THRESHOLD + 3 * 1024 * 1024)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let path = ObjectPath::from("v1/2026/11/22/big/0000.cva");
    let (size, sha) = vault::put_verified(&store, &kind, &path, Bytes::from(big.clone()))
        .await
        .expect("a big upload");
    assert_eq!(size, big.len() as u64);
    assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&big)));
    let meta = client.head(&path).await.expect("head");
    let parts = big.len().div_ceil(vault::store::PART_SIZE);
    assert!(
        meta.e_tag
            .as_deref()
            .is_some_and(|t| t.trim_matches('"').ends_with(&format!("-{parts}"))),
        "a multipart ETag of {parts} parts: {:?}",
        meta.e_tag
    );
    let back = client
        .get(&path)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert!(back == big, "the object is what was sent");

    let small = ObjectPath::from("v1/2026/11/22/small/0000.cva");
    vault::put_verified(&store, &kind, &small, Bytes::from_static(b"small"))
        .await
        .expect("a small upload");
    let meta = client.head(&small).await.expect("head");
    assert!(
        meta.e_tag.as_deref().is_some_and(|t| !t.contains('-')),
        "a small segment is one PUT: {:?}",
        meta.e_tag
    );
    assert_eq!(
        objects(&client, None).await.len(),
        2,
        "no part is left over as an object"
    );
}

// --- 6. no server, no pass

#[tokio::test]
#[should_panic(expected = "tests/s3/start.sh")]
async fn without_the_server_the_tests_fail_naming_the_start_script() {
    let dir = tempfile::tempdir().expect("tempdir");
    // a port that was just free: nothing listens there
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    std::fs::write(
        dir.path().join("endpoint"),
        format!("http://127.0.0.1:{port}\n"),
    )
    .expect("write");
    S3::at(dir.path()).await;
}
