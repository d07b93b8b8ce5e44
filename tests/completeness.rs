//! Every call accounted for (issue 16), end to end: each completeness state and reason produced by a
//! real scenario against the daemon (native events and media, Twilio status callbacks signed by
//! Twilio's own library, an S3 outage through a gate, a call-detail CSV imported with the built
//! CLI, a SIGKILL mid-call), then reconciled, settled once with ledger and audit entries, and
//! reported by `GET /v1/completeness` and `callvault completeness` with totals equal to the calls
//! of the scenario.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use callvault::catalog::{CallSource, SegmentStatus};
use callvault::domain::{CallId, Codec, MediaFormat};
use common::Deployment;
use common::audio::tone;
use common::live::{Live, close_of, sync};
use common::s3::{Gate, S3, deployment};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const FORMAT: MediaFormat = MediaFormat {
    codec: Codec::Pcmu,
    sample_rate: 8000,
    channels: 2,
};

/// Settle after 5 min (of the manual clock); passes only at start and on request, so each test
/// decides when the reconciler looks.
const SETTLE: &str = "[completeness]\nsettle = \"5m\"\ninterval = \"1h\"\n";
const SETTLE_MS: i64 = 301_000;
/// `pci.lookback` + `pci.guard` and a little: a call ended this long ago seals.
const PAST_WINDOW_MS: i64 = 4_000;

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
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

// --- driving calls

async fn applied(live: &Live, call: &str, kind: &str, extra: Value) {
    let (status, body) = live.event(call, kind, None, extra).await;
    assert_eq!(
        (status, &body),
        (200, &json!({ "status": "applied" })),
        "{kind} for {call} is applied"
    );
}

/// Opens `call`'s media stream and streams `ms` of audio in real time on the manual clock; the
/// socket is closed cleanly after.
async fn stream(live: &Live, call: &str, ms: u64) {
    let mut ws = live.media(call).await;
    live.stream(&mut ws, &tone(FORMAT, 1000.0, ms)).await;
    sync(&mut ws).await;
    ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await
        .expect("stop frame");
    let (code, reason) = close_of(&mut ws).await.expect("the server closes");
    assert_eq!(code, 1000, "a clean close: {reason:?}");
}

/// A whole call: started, `ms` of audio, ended, sealed.
async fn whole_call(live: &Live, call: &str, ms: u64) {
    applied(
        live,
        call,
        "call.started",
        json!({ "line": "+441744676789" }),
    )
    .await;
    stream(live, call, ms).await;
    applied(live, call, "call.ended", json!({})).await;
    live.advance_ms(PAST_WINDOW_MS);
    live.wait_sealed(call).await;
}

// --- reading the verdicts

/// Runs a reconciliation pass now, through the admin listener.
async fn reconcile(live: &Live) -> Value {
    let stream = TcpStream::connect(live.admin).await.expect("connect");
    let (status, _, body) =
        common::exchange(stream, "POST", "/completeness/reconcile", &[], b"").await;
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status, 200, "reconcile: {body}");
    body["report"].clone()
}

/// Moves the manual clock past the settle time and reconciles.
async fn settle(live: &Live) -> Value {
    live.advance_ms(SETTLE_MS);
    reconcile(live).await
}

async fn report(live: &Live, query: &str, token: &str) -> (u16, Value) {
    let (status, _, body) = live.get(&format!("/v1/completeness{query}"), token).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A call's state, reason, missing milliseconds, and whether it is settled.
async fn verdict(live: &Live, call: &str) -> (String, String, Option<u64>, bool) {
    let id: CallId = call.parse().expect("call id");
    let row = live
        .catalog
        .call(&id)
        .await
        .expect("catalog")
        .unwrap_or_else(|| panic!("{call} is on the roster"));
    let a = row
        .assessment
        .unwrap_or_else(|| panic!("{call} was assessed"));
    (
        a.state.as_str().to_owned(),
        a.reason,
        a.missing_ms,
        row.settled_at.is_some(),
    )
}

fn listed(report: &Value) -> Vec<String> {
    let mut ids: Vec<String> = report["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| c["call_id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

fn totals(report: &Value) -> [u64; 7] {
    let t = &report["totals"];
    [
        "recorded",
        "partial",
        "not_recorded",
        "withheld",
        "failed",
        "pending",
        "calls",
    ]
    .map(|k| t[k].as_u64().unwrap_or_else(|| panic!("totals.{k}: {t}")))
}

/// The built CLI against a deployment's config.
fn cli(d: &Deployment, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--config")
        .arg(&d.config)
        .args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("run callvault")
}

/// The call ids of a `callvault completeness --format csv` listing, checking its header.
fn csv_ids(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "completeness: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "call_id,start,end,line,state,reason,missing_ms,detail,recording_id,sources,settled_at"
        )
    );
    let mut ids: Vec<String> = lines
        .map(|l| l.split(',').next().expect("a column").to_owned())
        .collect();
    ids.sort();
    ids
}

// --- 1. native calls: recorded, no media, half a stream, quarantined

#[tokio::test(flavor = "multi_thread")]
async fn native_calls_are_recorded_not_recorded_partial_or_failed_each_with_its_reason() {
    let live = Live::start(SETTLE).await;

    whole_call(&live, "full", 6_000).await;

    // events, no media at all
    applied(&live, "no-media", "call.started", json!({})).await;
    live.advance_ms(10_000);
    applied(&live, "no-media", "call.ended", json!({})).await;

    // the stream closes after 6 s; the call goes on 14 s more
    applied(&live, "half", "call.started", json!({})).await;
    stream(&live, "half", 6_000).await;
    live.advance_ms(14_000);
    applied(&live, "half", "call.ended", json!({})).await;

    // recorded, then quarantined. No input makes the recorder quarantine today (its seal-time
    // check is a safety net behind the pause rules), so the status is written as the seal's
    // check would write it, through the catalog the daemon uses
    whole_call(&live, "quarantined", 3_000).await;
    let mut row = live.recording("quarantined").await.expect("recorded");
    row.status = callvault::catalog::RecordingStatus::Quarantined;
    live.catalog
        .update_recording(&row)
        .await
        .expect("quarantine");

    live.advance_ms(PAST_WINDOW_MS);
    for call in ["full", "no-media", "half", "quarantined"] {
        live.wait_sealed(call).await;
    }

    // before the settle time: judged, not settled, listed as pending
    let pass = reconcile(&live).await;
    assert_eq!(
        (pass["checked"].as_u64(), pass["settled"].as_u64()),
        (Some(4), Some(0))
    );
    let (status, pending) = report(&live, "?state=pending", &live.supervisor).await;
    assert_eq!(status, 200, "{pending}");
    assert_eq!(totals(&pending), [0, 0, 0, 0, 0, 4, 4]);
    assert_eq!(
        listed(&pending),
        ["full", "half", "no-media", "quarantined"]
    );
    let (state, reason, _, settled) = verdict(&live, "half").await;
    assert_eq!(
        (state.as_str(), reason.as_str(), settled),
        ("partial", "stream_ended_early", false)
    );

    let pass = settle(&live).await;
    assert_eq!(
        (pass["settled"].as_u64(), pass["missing"].as_u64()),
        (Some(4), Some(2)),
        "{pass}"
    );
    let (state, reason, missing, settled) = verdict(&live, "full").await;
    assert_eq!(
        (state.as_str(), reason.as_str(), missing, settled),
        ("recorded", "complete", None, true)
    );
    let (state, reason, _, _) = verdict(&live, "no-media").await;
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("not_recorded", "no_media")
    );
    let (state, reason, missing, _) = verdict(&live, "half").await;
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("partial", "stream_ended_early")
    );
    let missing = missing.expect("a length");
    assert!(
        (13_000..=15_500).contains(&missing),
        "the 14 s after the stream closed are missing: {missing} ms"
    );
    let (state, reason, _, _) = verdict(&live, "quarantined").await;
    assert_eq!((state.as_str(), reason.as_str()), ("failed", "quarantined"));

    // the report: totals equal the calls of the scenario, the list is every call that is neither
    // recorded nor withheld, with its reason
    let (status, r) = report(&live, "", &live.compliance).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(totals(&r), [1, 1, 1, 0, 1, 0, 4]);
    assert_eq!(listed(&r), ["half", "no-media", "quarantined"]);
    let half = r["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .find(|c| c["call_id"] == "half")
        .expect("half listed");
    assert!(
        half["detail"]
            .as_str()
            .expect("detail")
            .starts_with("stream ended early: 1"),
        "{half}"
    );
    assert_eq!(half["sources"], json!(["recording", "events"]));
    // a period with none of them
    let (_, empty) = report(&live, "?from=2030-01-01T00:00:00Z", &live.supervisor).await;
    assert_eq!(totals(&empty), [0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(listed(&empty), Vec::<String>::new());

    // the CLI on the same catalog: the same calls, and the totals on standard error
    let out = cli(&live.deployment, &["completeness", "--format", "csv"]);
    assert_eq!(csv_ids(&out), ["half", "no-media", "quarantined"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "calls 4, recorded 1, partial 1, not_recorded 1, withheld 0, failed 1, pending 0"
        ),
        "{stderr}"
    );
    let out = cli(
        &live.deployment,
        &["completeness", "--format", "json", "--state", "recorded"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed(&doc), ["full"]);
    assert_eq!(doc["totals"]["calls"], 4);

    // evidence: the final state is on the recording's ledger and in the audit chain, once
    let full = live.recording("full").await.expect("recording");
    let ledger = live.catalog.ledger(full.id).await.expect("ledger");
    let entries: Vec<_> = ledger.iter().filter(|e| e.kind == "completeness").collect();
    assert_eq!(entries.len(), 1, "{ledger:?}");
    assert!(entries[0].details.contains("\"state\":\"recorded\""));
    let audit = live.catalog.audit_after(0, 10_000).await.expect("audit");
    let mut settled: Vec<&str> = audit
        .iter()
        .filter(|e| e.entry.action == "call.completeness")
        .map(|e| e.entry.subject.as_str())
        .collect();
    settled.sort_unstable();
    assert_eq!(settled, ["full", "half", "no-media", "quarantined"]);
    assert!(
        audit
            .iter()
            .any(|e| e.entry.action == "completeness.report"),
        "reading the report is audited"
    );
    let out = cli(&live.deployment, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "audit verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // nothing settles twice
    let pass = settle(&live).await;
    assert_eq!(pass["checked"], 0);

    // metrics
    let (_, _, metrics) = common::get(live.admin, "/metrics").await;
    assert!(
        metrics.contains("callvault_calls{state=\"partial\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("callvault_calls_missing_total{state=\"not_recorded\"}"),
        "{metrics}"
    );
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_refuses_bad_input_and_other_roles() {
    let live = Live::start(SETTLE).await;
    for (query, what) in [
        ("?from=yesterday", "from"),
        ("?state=lost", "state"),
        ("?limit=0", "limit"),
        ("?limit=100000", "limit"),
        ("?after=nonsense", "after"),
        ("?from=2026-11-22T10:00:00Z&to=2026-11-21T10:00:00Z", "to"),
    ] {
        let (status, body) = report(&live, query, &live.supervisor).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["code"], "bad_field", "{query}: {body}");
        assert!(
            body["detail"].as_str().expect("detail").starts_with(what),
            "{body}"
        );
    }
    let (status, body) = report(&live, "", &live.telephony).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, _) = report(&live, "", "not-a-token").await;
    assert_eq!(status, 401);
    // the CLI names a bad state and exits 1
    let out = cli(&live.deployment, &["completeness", "--state", "lost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--state"));
    live.stop().await;
}

// --- 2. withheld on purpose: a refusal, explicit consent never given

const EXPLICIT: &str = r#"
[policies.standard]
retention = "3 months"
[policies.explicit]
retention = "3 months"
consent = "explicit"
consent_wait = "2s"
[lines]
"+441000000002" = "explicit"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_and_consent_never_given_are_withheld() {
    let live = Live::start(&format!("{SETTLE}{EXPLICIT}")).await;

    applied(&live, "refused", "call.started", json!({})).await;
    let mut ws = live.media("refused").await;
    live.stream(&mut ws, &tone(FORMAT, 1000.0, 3_000)).await;
    sync(&mut ws).await;
    applied(&live, "refused", "consent.refused", json!({})).await;
    drop(ws);
    applied(&live, "refused", "call.ended", json!({})).await;

    applied(
        &live,
        "no-consent",
        "call.started",
        json!({ "line": "+441000000002" }),
    )
    .await;
    stream(&live, "no-consent", 5_000).await;
    applied(&live, "no-consent", "call.ended", json!({})).await;

    live.advance_ms(PAST_WINDOW_MS);
    live.wait_sealed("refused").await;
    live.wait_sealed("no-consent").await;
    settle(&live).await;
    let (state, reason, _, settled) = verdict(&live, "refused").await;
    assert_eq!(
        (state.as_str(), reason.as_str(), settled),
        ("withheld", "refused", true)
    );
    let (state, reason, _, _) = verdict(&live, "no-consent").await;
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("withheld", "consent_not_given")
    );

    let (_, r) = report(&live, "", &live.supervisor).await;
    assert_eq!(totals(&r), [0, 0, 0, 2, 0, 0, 2]);
    assert_eq!(
        listed(&r),
        Vec::<String>::new(),
        "withheld calls need nobody's attention"
    );
    let (_, r) = report(&live, "?state=withheld", &live.supervisor).await;
    assert_eq!(listed(&r), ["no-consent", "refused"]);
    // the tombstone's ledger holds the final state too
    let tomb = live.recording("refused").await.expect("tombstone");
    let ledger = live.catalog.ledger(tomb.id).await.expect("ledger");
    assert!(ledger.iter().any(|e| e.kind == "completeness"));
    live.stop().await;
}

// --- 3. Twilio: a call known only from its status callbacks

const PUBLIC_URL: &str = "https://rec.example.com";

/// Twilio's own `RequestValidator` signature of a form POST.
fn twilio_sign(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let params = json!(
        params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, json\nfrom twilio.request_validator import RequestValidator\n\
             print(RequestValidator(sys.argv[1]).compute_signature(sys.argv[2], json.loads(sys.argv[3])))",
        )
        .args([token, url, &params.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed (is `pip install twilio` done? .ci/run does it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn post_status(live: &Live, params: &[(&str, &str)]) -> u16 {
    let token = live.config.twilio.auth_token.read().expect("token");
    let token = String::from_utf8_lossy(token.expose_trimmed()).into_owned();
    let sig = twilio_sign(&token, &format!("{PUBLIC_URL}/v1/twilio/events"), params);
    let body = params
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B")))
        .collect::<Vec<_>>()
        .join("&");
    let stream = TcpStream::connect(live.public).await.expect("connect");
    let (status, _, _) = common::exchange(
        stream,
        "POST",
        "/v1/twilio/events",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", &sig),
        ],
        body.as_bytes(),
    )
    .await;
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn a_twilio_call_known_only_from_its_status_callbacks_is_not_recorded() {
    let live = Live::start(&format!(
        "{SETTLE}[twilio]\nenabled = true\npublic_url = \"{PUBLIC_URL}\"\n"
    ))
    .await;
    let started = [
        ("CallSid", "CAcompleteness1"),
        ("AccountSid", "AC1"),
        ("CallStatus", "in-progress"),
        ("From", "+447700900123"),
        ("To", "+441744676789"),
        ("Direction", "inbound"),
    ];
    assert_eq!(post_status(&live, &started).await, 200);
    live.advance_ms(42_000);
    let completed = [
        ("CallSid", "CAcompleteness1"),
        ("AccountSid", "AC1"),
        ("CallStatus", "completed"),
        ("CallDuration", "42"),
    ];
    assert_eq!(post_status(&live, &completed).await, 200);
    live.advance_ms(PAST_WINDOW_MS);
    live.wait_sealed("CAcompleteness1").await;
    settle(&live).await;
    let (state, reason, _, settled) = verdict(&live, "CAcompleteness1").await;
    assert_eq!(
        (state.as_str(), reason.as_str(), settled),
        ("not_recorded", "no_media", true)
    );
    let row = live
        .catalog
        .call(&"CAcompleteness1".parse().expect("id"))
        .await
        .expect("catalog")
        .expect("row");
    assert_eq!(row.duration_ms, Some(42_000), "Twilio's CallDuration");
    assert_eq!(row.line.as_deref(), Some("+441744676789"));
    assert!(CallSource::from_bits(row.sources).contains(&CallSource::Twilio));
    let (_, r) = report(&live, "", &live.supervisor).await;
    assert_eq!(totals(&r), [0, 0, 1, 0, 0, 0, 1]);
    assert_eq!(listed(&r), ["CAcompleteness1"]);
    live.stop().await;
}

// --- 4. a call-detail file, some of whose calls were recorded

#[tokio::test(flavor = "multi_thread")]
async fn a_call_detail_file_accounts_for_calls_with_and_without_recordings() {
    let live = Live::start(SETTLE).await;
    let start = live.now();
    whole_call(&live, "cdr-rec", 5_000).await;
    let end = live.now();
    let t = |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339();
    let file = live.deployment.path("calls.csv");
    // columns in the platform's own order and names, one row the import cannot read
    std::fs::write(
        &file,
        format!(
            "Caller,CallRef,Begin,Finish,Dialled\n\
             +447700900001,cdr-rec,{},{},+441744676789\n\
             +447700900002,cdr-lost-1,{},{},+441744676789\n\
             +447700900003,cdr-lost-2,{},{},\n\
             +447700900004,cdr-bad,half past ten,,\n",
            t(start),
            t(end),
            t(start),
            t(end),
            t(start),
            t(end),
        ),
    )
    .expect("write csv");
    let args = [
        "completeness",
        "import",
        file.to_str().expect("utf-8 path"),
        "--call-id-column",
        "CallRef",
        "--start-column",
        "Begin",
        "--end-column",
        "Finish",
        "--line-column",
        "Dialled",
        "--caller-column",
        "Caller",
    ];
    let out = cli(&live.deployment, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a skipped row fails the command: {stderr}"
    );
    assert!(stderr.contains("calls.csv:5: skipped"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("4 rows, 3 calls noted, 1 skipped"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // imported twice: nothing changes
    let again = cli(&live.deployment, &args);
    assert_eq!(again.status.code(), Some(1));

    live.advance_ms(60_000);
    settle(&live).await;
    let (state, _, _, _) = verdict(&live, "cdr-rec").await;
    assert_eq!(state, "recorded");
    for call in ["cdr-lost-1", "cdr-lost-2"] {
        let (state, reason, _, settled) = verdict(&live, call).await;
        assert_eq!(
            (state.as_str(), reason.as_str(), settled),
            ("not_recorded", "no_media", true),
            "{call}"
        );
    }
    let row = live
        .catalog
        .call(&"cdr-rec".parse().expect("id"))
        .await
        .expect("catalog")
        .expect("row");
    assert_eq!(
        CallSource::from_bits(row.sources),
        [
            CallSource::Recording,
            CallSource::Native,
            CallSource::Import
        ]
    );
    let (_, r) = report(&live, "", &live.supervisor).await;
    assert_eq!(totals(&r), [1, 0, 2, 0, 0, 0, 3]);
    let out = cli(&live.deployment, &["completeness", "--format", "csv"]);
    assert_eq!(
        csv_ids(&out),
        ["cdr-lost-1", "cdr-lost-2"],
        "exactly the calls not recorded"
    );
    let audit = live.catalog.audit_after(0, 10_000).await.expect("audit");
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.entry.action == "calls.import")
            .count(),
        2,
        "each import is audited"
    );
    live.stop().await;
}

// --- 5. an upload that fails until the store returns

async fn segments_stored(live: &Live, call: &str) -> bool {
    let Some(r) = live.recording(call).await else {
        return false;
    };
    let segs = live.catalog.segments(r.id).await.expect("segments");
    !segs.is_empty() && segs.iter().all(|s| s.status == SegmentStatus::Stored)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_that_fails_is_partial_until_the_store_returns_and_failed_if_it_never_does() {
    let s3 = S3::server().await;
    let bucket = s3.create_bucket("cv-completeness").await;
    let mut gate = Gate::open(s3.addr).await;
    let through_gate = s3.via(&gate.endpoint());
    let live = Live::start_in(deployment(&through_gate, &bucket, SETTLE)).await;

    gate.close().await;
    applied(&live, "outage", "call.started", json!({})).await;
    stream(&live, "outage", 4_000).await;
    applied(&live, "outage", "call.ended", json!({})).await;
    live.advance_ms(PAST_WINDOW_MS);
    eventually!(
        "the call is sealed with its segments spooled",
        live.recording("outage")
            .await
            .is_some_and(|r| r.status != callvault::catalog::RecordingStatus::Live)
    );
    assert!(!segments_stored(&live, "outage").await);
    reconcile(&live).await;
    let (state, reason, _, settled) = verdict(&live, "outage").await;
    assert_eq!(
        (state.as_str(), reason.as_str(), settled),
        ("partial", "upload_pending", false)
    );

    // the store returns: uploaded, and the state follows before the settle time
    gate.reopen().await;
    eventually!(
        "the segments are uploaded",
        segments_stored(&live, "outage").await
    );
    reconcile(&live).await;
    let (state, reason, _, settled) = verdict(&live, "outage").await;
    assert_eq!(
        (state.as_str(), reason.as_str(), settled),
        ("recorded", "complete", false)
    );
    settle(&live).await;
    let (state, _, _, settled) = verdict(&live, "outage").await;
    assert_eq!((state.as_str(), settled), ("recorded", true));

    // a store that never returns by the settle time: failed
    gate.close().await;
    applied(&live, "never", "call.started", json!({})).await;
    stream(&live, "never", 2_000).await;
    applied(&live, "never", "call.ended", json!({})).await;
    live.advance_ms(PAST_WINDOW_MS);
    eventually!(
        "the second call is sealed",
        live.recording("never")
            .await
            .is_some_and(|r| r.status != callvault::catalog::RecordingStatus::Live)
    );
    settle(&live).await;
    let (state, reason, _, settled) = verdict(&live, "never").await;
    assert_eq!(
        (state.as_str(), reason.as_str(), settled),
        ("failed", "upload_failed", true)
    );
    let (_, r) = report(&live, "", &live.compliance).await;
    assert_eq!(totals(&r), [1, 0, 0, 0, 1, 0, 2]);
    assert_eq!(listed(&r), ["never"]);
    gate.reopen().await;
    live.stop().await;
}

// --- 6. SIGKILL with calls streaming, and a restart: every call accounted for

mod crash {
    use std::net::SocketAddr;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use callvault::ingest::webhook::WebhookSecret;
    use chrono::Utc;
    use futures::SinkExt;
    use serde_json::{Value, json};
    use tokio::net::TcpStream;
    use tokio::time::{Instant, MissedTickBehavior};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_util::sync::CancellationToken;

    use super::common::audio::tone;
    use super::common::{Deployment, exchange, wait_for_200};
    use super::{FORMAT, cli, totals};

    const CALLS: usize = 4;
    const FRAME_BYTES: usize = 320;

    /// A running `callvault serve`, killed and reaped when dropped.
    struct Serve {
        child: Child,
        public: SocketAddr,
        admin: SocketAddr,
    }

    fn free_port() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        l.local_addr().expect("a bound listener has an address")
    }

    impl Serve {
        async fn start(d: &Deployment, log: &str) -> Serve {
            let (public, admin) = (free_port(), free_port());
            let log = std::fs::File::create(d.path(log)).expect("create the daemon's log");
            let child = Command::new(env!("CARGO_BIN_EXE_callvault"))
                .arg("--config")
                .arg(&d.config)
                .args(["--set", &format!("public.listen={public}")])
                .args(["--set", &format!("admin.listen={admin}")])
                .arg("serve")
                .env_remove("CREDENTIALS_DIRECTORY")
                .env_remove("NOTIFY_SOCKET")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start callvault serve");
            let serve = Serve {
                child,
                public,
                admin,
            };
            wait_for_200(admin, "/readyz", Duration::from_secs(30)).await;
            serve
        }

        fn kill_9(&mut self) {
            let status = Command::new("kill")
                .args(["-KILL", &self.child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -KILL failed");
            self.child.wait().expect("reap the killed daemon");
        }
    }

    impl Drop for Serve {
        fn drop(&mut self) {
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }

    fn create_token(d: &Deployment, role: &str) -> String {
        let o = cli(d, &["tokens", "create", "--role", role, "--name", role]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    async fn event(public: SocketAddr, webhook: &WebhookSecret, call: &str, kind: &str) {
        let body = json!({
            "id": format!("evt-{call}-{kind}"), "type": kind, "call_id": call,
            "at": Utc::now().to_rfc3339(),
        })
        .to_string();
        let id = format!("msg-{call}-{kind}");
        let ts = Utc::now().timestamp();
        let sig = webhook.sign(&id, ts, body.as_bytes());
        let stream = TcpStream::connect(public).await.expect("connect");
        let ts = ts.to_string();
        let (status, _, _) = exchange(
            stream,
            "POST",
            "/v1/events",
            &[
                ("Content-Type", "application/json"),
                ("webhook-id", &id),
                ("webhook-timestamp", &ts),
                ("webhook-signature", &sig),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{kind} of {call}");
    }

    async fn stream_until(public: SocketAddr, token: &str, call: &str, stop: CancellationToken) {
        let mut req = format!("ws://{public}/v1/calls/{call}/media")
            .into_client_request()
            .expect("a media request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header value"),
        );
        let tcp = TcpStream::connect(public).await.expect("connect");
        let (mut ws, _) = tokio_tungstenite::client_async(req, tcp)
            .await
            .expect("the media socket opens");
        let start = json!({ "type": "start", "codec": "PCMU", "sample_rate": 8000, "channels": 2 });
        ws.send(Message::Text(start.to_string().into()))
            .await
            .expect("start frame");
        let audio = tone(FORMAT, 700.0, 60_000);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        for frame in audio.chunks_exact(FRAME_BYTES) {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if ws
                .send(Message::Binary(frame.to_vec().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    async fn report(public: SocketAddr, token: &str) -> Value {
        let stream = TcpStream::connect(public).await.expect("connect");
        let auth = format!("Bearer {token}");
        let (status, _, body) = exchange(
            stream,
            "GET",
            "/v1/completeness?state=partial",
            &[("Authorization", &auth)],
            b"",
        )
        .await;
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(status, 200, "{body}");
        body
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn after_a_sigkill_mid_call_every_call_is_recorded_or_partial_with_the_seconds_lost() {
        let d = Deployment::new(
            "[recorder]\nidle_seal = \"4s\"\n\
             [completeness]\nsettle = \"2s\"\ninterval = \"300ms\"\n",
        );
        let mut serve = Serve::start(&d, "serve-1.log").await;
        let telephony = create_token(&d, "telephony");
        let supervisor = create_token(&d, "supervisor");
        let config = d.load(&[]);
        let webhook =
            WebhookSecret::from_secret(&config.secrets.webhook.read().expect("webhook secret"))
                .expect("whsec");
        let public = serve.public;
        let stop = CancellationToken::new();
        let mut streams = Vec::new();
        for i in 0..CALLS {
            let call = format!("kill-{i}");
            event(public, &webhook, &call, "call.started").await;
            let (telephony, stop) = (telephony.clone(), stop.clone());
            streams.push(tokio::spawn(async move {
                stream_until(public, &telephony, &call, stop).await;
            }));
        }
        // six seconds of audio each (more than the look-back window), then the daemon dies
        tokio::time::sleep(Duration::from_secs(6)).await;
        serve.kill_9();
        stop.cancel();
        for s in streams {
            s.await.expect("a stream task does not panic");
        }
        // the calls go on while the daemon is down; the platform ends them after the restart
        tokio::time::sleep(Duration::from_secs(2)).await;
        let serve = Serve::start(&d, "serve-2.log").await;
        for i in 0..CALLS {
            event(serve.public, &webhook, &format!("kill-{i}"), "call.ended").await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let r = loop {
            let r = report(serve.public, &supervisor).await;
            let [.., pending, calls] = totals(&r);
            if calls == CALLS as u64 && pending == 0 {
                break r;
            }
            assert!(
                Instant::now() < deadline,
                "the calls did not settle within a minute: {r}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let [recorded, partial, not_recorded, withheld, failed, _, calls] = totals(&r);
        assert_eq!(calls, CALLS as u64, "no call is missing from the report");
        assert_eq!(
            (recorded + partial, not_recorded, withheld, failed),
            (CALLS as u64, 0, 0, 0),
            "{r}"
        );
        // each partial call names the seconds lost and the crash: the daemon was down 2 s and
        // restarting, and the look-back window (3.5 s) was not yet committed when it died
        for c in r["calls"].as_array().expect("calls") {
            assert_eq!(c["reason"], "audio_lost", "{c}");
            let missing = c["missing_ms"].as_u64().expect("missing_ms");
            assert!((5_000..30_000).contains(&missing), "{c}");
            assert!(
                c["detail"]
                    .as_str()
                    .expect("detail")
                    .ends_with("of audio lost: crash"),
                "{c}"
            );
        }
        assert_eq!(r["calls"].as_array().map(Vec::len), Some(partial as usize));
        // the gauges agree with the report
        let (_, _, metrics) = super::common::get(serve.admin, "/metrics").await;
        let gauge = |state: &str| -> u64 {
            let prefix = format!("callvault_calls{{state=\"{state}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {prefix} in /metrics")) as u64
        };
        assert_eq!(
            (gauge("recorded"), gauge("partial")),
            (recorded, partial),
            "{metrics}"
        );
        let out = cli(&d, &["audit", "verify"]);
        assert!(
            out.status.success(),
            "audit verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// --- 7. a call the recorder could not take is still accounted for

#[tokio::test(flavor = "multi_thread")]
async fn a_call_refused_for_want_of_capacity_is_still_on_the_roster_and_not_recorded() {
    let live = Live::start(&format!("{SETTLE}[recorder]\nmax_calls = 1\n")).await;
    applied(&live, "first", "call.started", json!({})).await;
    let mut ws = live.media("first").await;
    live.stream(&mut ws, &tone(FORMAT, 1000.0, 2_000)).await;
    sync(&mut ws).await;
    // the one live call slot is taken: the second call is refused, and retried by nobody
    let (status, body) = live.event("second", "call.started", None, json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("too_many_calls")),
        "{body}"
    );
    live.stream(&mut ws, &tone(FORMAT, 1000.0, 5_000)).await;
    sync(&mut ws).await;
    let (status, _) = live.event("second", "call.ended", None, json!({})).await;
    assert_eq!(status, 503);
    assert!(live.recording("second").await.is_none(), "no recording");
    live.stream(&mut ws, &tone(FORMAT, 1000.0, 1_000)).await;
    sync(&mut ws).await;
    drop(ws);
    applied(&live, "first", "call.ended", json!({})).await;
    live.advance_ms(PAST_WINDOW_MS);
    live.wait_sealed("first").await;
    settle(&live).await;
    let (state, reason, _, settled) = verdict(&live, "second").await;
    assert_eq!(
        (state.as_str(), reason.as_str(), settled),
        ("not_recorded", "no_media", true)
    );
    let (_, r) = report(&live, "", &live.supervisor).await;
    assert_eq!(totals(&r)[6], 2, "both calls are counted: {r}");
    assert_eq!(listed(&r), ["second"]);
    live.stop().await;
}
