//! Retention, complaint holds, erasure, restriction and excision, against a live daemon with a
//! manual clock (and, for the interrupted sweep, the retention API over a catalog on disk).

mod common;

use std::sync::Arc;

use callvault::catalog::{Catalog, RecordingRow, RecordingStatus, SegmentRow, SegmentStatus};
use callvault::domain::{Clock, Codec, ManualClock, RecordingId, SegmentNo};
use callvault::retention::{Retention, SweepOptions};
use callvault::vault::{self, Keyring};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStore;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use common::live::Live;

const POLICIES: &str = r#"
[policies.standard]
retention = "3 months"
[policies.complaints]
retention = "12 months"
[lines]
"+441744000012" = "complaints"
"#;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid time")
        .with_timezone(&Utc)
}

/// Sends one request with a bearer token and a JSON body; answers status and JSON.
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let stream = TcpStream::connect(addr).await.expect("connect");
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

/// Asks the admin listener for a sweep now and returns its report.
async fn sweep(live: &Live) -> Value {
    let (status, body) = call(live.admin, "POST", "/retention/sweep", "none", None).await;
    assert_eq!(status, 200, "sweep: {body}");
    body["report"].clone()
}

/// Catalogues a sealed recording of a call on `line` that ended at `ended`, with one stored segment
/// whose object is in the store; its expiry is what the recorder sets at seal (end + the policy's
/// period, the policy found from the line).
async fn seed(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    keyring: &Keyring,
    config: &callvault::config::Config,
    line: &str,
    ended: DateTime<Utc>,
) -> RecordingRow {
    let id = RecordingId::new();
    let policy = config.policy_for(Some(line), None);
    let started = ended - chrono::Duration::minutes(5);
    let row = RecordingRow {
        id,
        call_id: format!("call-{id}").parse().expect("call id"),
        status: RecordingStatus::Sealed,
        line: Some(line.to_owned()),
        queue: None,
        agent: None,
        caller_tag: None,
        caller_sealed: None,
        policy: policy.name.clone(),
        codec: Codec::Pcmu,
        sample_rate: 8000,
        channels: 2,
        started_at: started,
        ended_at: Some(ended),
        expires_at: policy.retention.after(ended),
        restricted: false,
        updated_at: ended,
    };
    catalog.insert_recording(&row).await.expect("recording");
    for n in 0..2u32 {
        let segment = SegmentNo(n);
        let key = vault::DataKey::generate();
        let header = vault::Header::new(id, segment, Codec::Pcmu, 2, 8000, u64::from(n) * 10_000)
            .expect("header");
        let mut w = vault::SegmentWriter::new(header, &key);
        let mut sealed = w.header_bytes().to_vec();
        sealed.extend(w.append(&vec![0x55u8; 16_000 * 5]).expect("append"));
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
                media_start_ms: u64::from(n) * 10_000,
                media_end_ms: u64::from(n) * 10_000 + 5_000,
                size,
                sha256: Some(sha),
                status: SegmentStatus::Stored,
            })
            .await
            .expect("segment");
    }
    row
}

async fn objects_of(store: &Arc<dyn ObjectStore>, row: &RecordingRow) -> usize {
    let prefix = vault::recording_prefix(row.started_at, row.id);
    let list: Vec<_> = store.list(Some(&prefix)).try_collect().await.expect("list");
    list.len()
}

async fn status(catalog: &dyn Catalog, id: RecordingId) -> RecordingStatus {
    catalog
        .recording(id)
        .await
        .expect("read")
        .expect("present")
        .status
}

/// Asserts a recording is fully deleted: no object, no data key, one receipt in the ledger.
async fn assert_deleted(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    row: &RecordingRow,
    expected: RecordingStatus,
) {
    assert_eq!(status(catalog, row.id).await, expected);
    assert_eq!(objects_of(store, row).await, 0, "no object remains");
    for s in catalog.segments(row.id).await.expect("segments") {
        assert!(
            s.wrapped_key.is_none() && s.kek_id.is_none(),
            "key shredded"
        );
        assert_eq!(s.status, SegmentStatus::Deleted);
    }
    let receipts: Vec<_> = catalog
        .ledger(row.id)
        .await
        .expect("ledger")
        .into_iter()
        .filter(|e| e.kind == "deleted")
        .collect();
    assert_eq!(receipts.len(), 1, "one receipt");
    let r: Value = serde_json::from_str(&receipts[0].details).expect("json");
    assert_eq!(r["recording_id"], row.id.to_string());
    assert_eq!(r["policy"], row.policy);
    assert_eq!(r["objects"].as_array().expect("objects").len(), 2);
    assert_eq!(r["objects"][0]["sha256"].as_str().expect("sha").len(), 64);
}

struct Env {
    live: Live,
    store: Arc<dyn ObjectStore>,
    keyring: Keyring,
}

async fn start() -> Env {
    let live = Live::start(&format!(
        "[storage]\nkind = \"local\"\nroot = \"objects\"\n{POLICIES}"
    ))
    .await;
    // the worker sweeps once at start-up, reading the clock as it begins: let that sweep finish
    // before a test moves the clock and seeds, or it may judge new rows by the start-up time
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while live
        .catalog
        .retention_progress()
        .await
        .expect("progress")
        .sweeps
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the start-up sweep did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let store = vault::open_store(&callvault::server::store_kind(&live.config).expect("kind"))
        .expect("store");
    let keyring = Keyring::from_bytes(
        live.config
            .keys
            .keyring
            .read()
            .expect("keyring file")
            .expose(),
    )
    .expect("keyring");
    Env {
        live,
        store,
        keyring,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_and_twelve_month_lines_expire_on_their_day_including_31_january() {
    let Env {
        live,
        store,
        keyring,
    } = start().await;
    let c = live.catalog.as_ref();
    // before the calls' expiry, so the worker's own sweep at start-up has nothing to do
    live.clock.set(at("2026-02-01T00:00:00Z"));
    let ended = at("2026-01-31T10:00:00Z");
    let short = seed(c, &store, &keyring, &live.config, "+441744000003", ended).await;
    let long = seed(c, &store, &keyring, &live.config, "+441744000012", ended).await;
    assert_eq!(short.policy, "standard");
    assert_eq!(long.policy, "complaints");
    assert_eq!(
        short.expires_at,
        Some(at("2026-04-30T10:00:00Z")),
        "31 Jan + 3 months"
    );
    assert_eq!(long.expires_at, Some(at("2027-01-31T10:00:00Z")));

    live.clock.set(at("2026-04-29T10:00:00Z"));
    assert_eq!(sweep(&live).await["expired"], 0);
    assert_eq!(status(c, short.id).await, RecordingStatus::Sealed);
    assert_eq!(objects_of(&store, &short).await, 2);

    live.clock.set(at("2026-05-01T10:00:00Z"));
    assert_eq!(sweep(&live).await["expired"], 1);
    assert_deleted(c, &store, &short, RecordingStatus::Expired).await;
    assert_eq!(status(c, long.id).await, RecordingStatus::Sealed);

    live.clock.set(at("2027-01-30T10:00:00Z"));
    assert_eq!(sweep(&live).await["expired"], 0);
    assert_eq!(objects_of(&store, &long).await, 2);
    live.clock.set(at("2027-02-01T10:00:00Z"));
    assert_eq!(sweep(&live).await["expired"], 1);
    assert_deleted(c, &store, &long, RecordingStatus::Expired).await;

    // the status is on the admin listener; playback of an expired recording is refused
    let (code, body) = call(live.admin, "GET", "/retention", "none", None).await;
    assert_eq!(code, 200);
    assert!(
        body["totals"]["expired"].as_u64().expect("count") >= 2,
        "{body}"
    );
    let (code, _) = live.play(&short.id.to_string(), &live.compliance).await;
    assert_eq!(code, 409);
    let metrics = common::get(live.admin, "/metrics").await.2;
    assert!(
        metrics.contains("callvault_retention_deleted_total"),
        "{metrics}"
    );
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_keep_recordings_past_expiry_until_the_last_is_released() {
    let Env {
        live,
        store,
        keyring,
    } = start().await;
    let c = live.catalog.as_ref();
    let ended = live.now() - chrono::Duration::days(1);
    let a = seed(c, &store, &keyring, &live.config, "+441744000003", ended).await;
    let b = seed(c, &store, &keyring, &live.config, "+441744000003", ended).await;
    let p = live.public;

    // a complaint by reference from the telephony platform holds a
    let (code, body) = live
        .event(
            a.call_id.as_str(),
            "complaint.opened",
            None,
            json!({ "reference": "CMP-1" }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    // and a supervisor's hold by API holds a and b
    let hold = json!({ "reference": "CMP-2", "reason": "stage 2 complaint",
                       "recording_ids": [a.id.to_string(), b.id.to_string()] });
    let (code, body) = call(p, "POST", "/v1/holds", &live.supervisor, Some(hold)).await;
    assert_eq!(code, 201, "{body}");
    // a caller that is not a phone number is refused
    let caller = json!({ "reference": "CMP-3", "reason": "x", "caller": "not a number" });
    let (code, body) = call(p, "POST", "/v1/holds", &live.supervisor, Some(caller)).await;
    assert_eq!((code, body["code"].as_str()), (400, Some("bad_caller")));
    let (code, body) = call(p, "GET", "/v1/holds", &live.supervisor, None).await;
    assert_eq!(code, 200);
    assert_eq!(body["holds"].as_array().expect("holds").len(), 2);
    let (_, body) = call(
        p,
        "GET",
        &format!("/v1/recordings/{}", a.id),
        &live.supervisor,
        None,
    )
    .await;
    assert_eq!(body["holds"].as_array().expect("holds").len(), 2, "{body}");

    // past expiry: kept
    live.clock.set(live.now() + chrono::Duration::days(120));
    assert_eq!(sweep(&live).await["expired"], 0);
    assert_eq!(status(c, a.id).await, RecordingStatus::Sealed);
    assert_eq!(objects_of(&store, &b).await, 2);

    // erasure of a held recording: 409 naming the holds
    let (code, body) = call(
        p,
        "DELETE",
        &format!("/v1/recordings/{}?reason=subject%20request", a.id),
        &live.compliance,
        None,
    )
    .await;
    assert_eq!((code, body["code"].as_str()), (409, Some("held")));
    let detail = body["detail"].as_str().expect("detail");
    assert!(
        detail.contains("CMP-1") && detail.contains("CMP-2"),
        "{detail}"
    );

    // a supervisor may not release; compliance may, with a reason
    let release = json!({ "reason": "complaint closed" });
    let (code, _) = call(
        p,
        "POST",
        "/v1/holds/CMP-2/release",
        &live.supervisor,
        Some(release.clone()),
    )
    .await;
    assert_eq!(code, 403);
    let (code, _) = call(
        p,
        "POST",
        "/v1/holds/CMP-2/release",
        &live.compliance,
        Some(json!({})),
    )
    .await;
    assert_eq!(code, 400);
    let (code, body) = call(
        p,
        "POST",
        "/v1/holds/CMP-2/release",
        &live.compliance,
        Some(release.clone()),
    )
    .await;
    assert_eq!(code, 200, "{body}");

    // one hold left on a: a stays, b goes
    assert_eq!(sweep(&live).await["expired"], 1);
    assert_eq!(status(c, a.id).await, RecordingStatus::Sealed);
    assert_deleted(c, &store, &b, RecordingStatus::Expired).await;

    // the complaint resolves: a goes at the next sweep
    let (code, _) = live
        .event(
            a.call_id.as_str(),
            "complaint.resolved",
            None,
            json!({ "reference": "CMP-1" }),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(sweep(&live).await["expired"], 1);
    assert_deleted(c, &store, &a, RecordingStatus::Expired).await;

    let deployment = live.stop().await;
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--config")
        .arg(&deployment.config)
        .args(["audit", "verify"])
        .output()
        .expect("run callvault");
    assert!(verify.status.success(), "{verify:?}");
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(out.contains("audit chain intact"), "{out}");
    audit_has(
        &deployment,
        &["hold.place", "hold.release", "recording.expire"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_on_a_caller_keeps_all_their_recordings_made_before_and_while_it_is_open() {
    let Env {
        live,
        store,
        keyring,
    } = start().await;
    let c = live.catalog.as_ref();
    let pepper = live.config.secrets.caller_pepper.read().expect("pepper");
    let keyring_file = live.config.keys.keyring.read().expect("keyring file");
    let shared = Arc::new(Keyring::from_bytes(keyring_file.expose()).expect("keyring"));
    let keys = callvault::vault::CallerKeys::new(pepper, shared);
    let tag = keys.tag(&"+441744676789".parse().expect("a number"));
    let with_caller = |mut r: RecordingRow, t: [u8; 32]| {
        r.caller_tag = Some(t);
        r
    };
    let ended = live.now() - chrono::Duration::days(1);
    let before = seed(c, &store, &keyring, &live.config, "+441744000003", ended).await;
    let before = with_caller(before, tag);
    c.update_recording(&before).await.expect("tag");
    let other = seed(c, &store, &keyring, &live.config, "+441744000003", ended).await;
    let other = with_caller(other, [7; 32]);
    c.update_recording(&other).await.expect("tag");

    // the platform opens a complaint on the caller (a national-format number)
    let (code, body) = live
        .event(
            "complaint-call-1",
            "complaint.opened",
            None,
            json!({ "reference": "CMP-C", "caller": "01744 676789" }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    // a month later the caller calls again, while the hold is open
    live.clock.set(live.now() + chrono::Duration::days(30));
    let later_end = live.now() - chrono::Duration::hours(1);
    let later = seed(
        c,
        &store,
        &keyring,
        &live.config,
        "+441744000003",
        later_end,
    )
    .await;
    let later = with_caller(later, tag);
    c.update_recording(&later).await.expect("tag");
    // and a supervisor places a second hold on the same caller by API, written another way
    let hold =
        json!({ "reference": "CMP-D", "reason": "ombudsman", "caller": "+44 (0)1744 676789" });
    let (code, body) = call(
        live.public,
        "POST",
        "/v1/holds",
        &live.supervisor,
        Some(hold),
    )
    .await;
    assert_eq!(code, 201, "{body}");

    // long past every expiry: the other caller's recording goes, this caller's stay
    live.clock.set(live.now() + chrono::Duration::days(200));
    assert_eq!(sweep(&live).await["expired"], 1);
    assert_deleted(c, &store, &other, RecordingStatus::Expired).await;
    assert_eq!(status(c, before.id).await, RecordingStatus::Sealed);
    assert_eq!(status(c, later.id).await, RecordingStatus::Sealed);
    let (_, body) = call(
        live.public,
        "GET",
        &format!("/v1/recordings/{}", later.id),
        &live.supervisor,
        None,
    )
    .await;
    assert_eq!(body["holds"].as_array().expect("holds").len(), 2, "{body}");

    // one released: still held by the other
    let (code, _) = live
        .event(
            "complaint-call-1",
            "complaint.resolved",
            None,
            json!({ "reference": "CMP-C" }),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(sweep(&live).await["expired"], 0);
    // both released: both go at the next sweep
    let release = json!({ "reason": "ombudsman closed the case" });
    let (code, body) = call(
        live.public,
        "POST",
        "/v1/holds/CMP-D/release",
        &live.compliance,
        Some(release),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(sweep(&live).await["expired"], 2);
    assert_deleted(c, &store, &before, RecordingStatus::Expired).await;
    assert_deleted(c, &store, &later, RecordingStatus::Expired).await;
    // the number itself is in no audit entry
    let entries = c.audit_after(0, 1000).await.expect("audit");
    assert!(
        entries
            .iter()
            .all(|e| !e.entry.details.contains("1744") && !e.entry.subject.contains("1744"))
    );
}

/// Asserts the deployment's audit chain has an entry for each action.
async fn audit_has(deployment: &common::Deployment, actions: &[&str]) {
    let catalog = callvault::server::open_catalog(&deployment.load(&[]))
        .await
        .expect("catalog");
    let entries = catalog.audit_after(0, 10_000).await.expect("audit");
    for action in actions {
        assert!(
            entries.iter().any(|e| e.entry.action == *action),
            "no {action} in the audit chain"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_restriction_and_excision_by_compliance() {
    let Env {
        live,
        store,
        keyring,
    } = start().await;
    let c = live.catalog.as_ref();
    let ended = live.now() - chrono::Duration::hours(1);
    let a = seed(c, &store, &keyring, &live.config, "+441744000003", ended).await;
    let b = seed(c, &store, &keyring, &live.config, "+441744000003", ended).await;
    let p = live.public;
    let reason = json!({ "reason": "data subject asked" });

    // restriction: only compliance may play
    let path = format!("/v1/recordings/{}/restrict", a.id);
    let (code, _) = call(p, "POST", &path, &live.supervisor, Some(reason.clone())).await;
    assert_eq!(code, 403);
    let (code, _) = call(p, "POST", &path, &live.compliance, Some(reason.clone())).await;
    assert_eq!(code, 200);
    assert_eq!(live.play(&a.id.to_string(), &live.supervisor).await.0, 409);
    assert_eq!(live.play(&a.id.to_string(), &live.compliance).await.0, 200);
    let path = format!("/v1/recordings/{}/unrestrict", a.id);
    let (code, _) = call(p, "POST", &path, &live.compliance, Some(reason.clone())).await;
    assert_eq!(code, 200);
    assert_eq!(live.play(&a.id.to_string(), &live.supervisor).await.0, 200);

    // excision: segment 1 becomes a gap; its object and key are gone
    let path = format!("/v1/recordings/{}/segments/1/excise", a.id);
    let (code, body) = call(p, "POST", &path, &live.compliance, Some(reason.clone())).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["receipt"]["sha256"].as_str().expect("sha").len(), 64);
    let (code, _) = call(p, "POST", &path, &live.compliance, Some(reason.clone())).await;
    assert_eq!(code, 409, "excised already");
    let segs = c.segments(a.id).await.expect("segments");
    assert_eq!(segs[1].status, SegmentStatus::Excised);
    assert!(segs[1].wrapped_key.is_none());
    assert!(
        store
            .head(&segs[1].object_key.as_str().into())
            .await
            .is_err()
    );
    assert_eq!(objects_of(&store, &a).await, 1);
    let (code, wav) = live.play(&a.id.to_string(), &live.supervisor).await;
    assert_eq!(code, 200, "plays with a gap");
    assert!(wav.len() > 44);

    // erasure: a reason is required; only compliance; then deleted with a receipt
    let path = format!("/v1/recordings/{}", b.id);
    assert_eq!(
        call(p, "DELETE", &path, &live.compliance, None).await.0,
        400
    );
    let path = format!("/v1/recordings/{}?reason=subject%20request", b.id);
    assert_eq!(
        call(p, "DELETE", &path, &live.supervisor, None).await.0,
        403
    );
    let (code, body) = call(p, "DELETE", &path, &live.compliance, None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["receipt"]["cause"], "erased");
    assert_deleted(c, &store, &b, RecordingStatus::Erased).await;
    let (code, body) = call(p, "DELETE", &path, &live.compliance, None).await;
    assert_eq!((code, body["code"].as_str()), (409, Some("no_audio")));

    let deployment = live.stop().await;
    audit_has(
        &deployment,
        &[
            "recording.restrict",
            "recording.unrestrict",
            "segment.excise",
            "recording.erase",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_stopped_mid_batch_is_finished_by_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog: Arc<dyn Catalog> = Arc::new(
        callvault::catalog::SqliteCatalog::open(dir.path().join("catalog.db")).expect("catalog"),
    );
    let kind = vault::StoreKind::Local {
        root: dir.path().join("objects"),
    };
    let store = vault::open_store(&kind).expect("store");
    let keyring = Keyring::generate(Utc::now());
    let config = callvault::config::Config::default();
    let ended = at("2026-01-31T10:00:00Z");
    let mut rows = Vec::new();
    for _ in 0..10 {
        rows.push(
            seed(
                catalog.as_ref(),
                &store,
                &keyring,
                &config,
                "+441744000003",
                ended,
            )
            .await,
        );
    }
    let clock = ManualClock::new(at("2026-06-01T00:00:00Z"));
    let retention = Retention::new(
        Arc::clone(&catalog),
        Arc::clone(&store),
        Arc::new(clock.clone()),
        Arc::new(config),
    );
    let stopped = retention
        .sweep(&SweepOptions {
            batch_size: 4,
            stop_after: Some(6),
            ..SweepOptions::default()
        })
        .await
        .expect("sweep");
    assert!(stopped.stopped);
    assert_eq!(stopped.expired, 4, "the first batch was finished");
    assert_eq!(
        catalog.pending_deletions(100).await.expect("pending").len(),
        4,
        "the second batch is pending, two of its recordings without objects"
    );
    let mut gone = 0;
    for r in &rows {
        if status(catalog.as_ref(), r.id).await == RecordingStatus::Sealed
            && objects_of(&store, r).await == 0
        {
            gone += 1;
        }
    }
    assert_eq!(gone, 2, "objects deleted, keys not yet shredded");

    clock.advance(chrono::Duration::minutes(1));
    let done = retention
        .sweep(&SweepOptions::default())
        .await
        .expect("sweep");
    assert!(!done.stopped);
    assert_eq!(done.expired, 6);
    assert_eq!(done.resumed, 4);
    for r in &rows {
        assert_deleted(catalog.as_ref(), &store, r, RecordingStatus::Expired).await;
    }
    assert_eq!(catalog.count_wrapped_keys().await.expect("count"), 0);
    assert!(
        catalog
            .pending_deletions(100)
            .await
            .expect("pending")
            .is_empty()
    );
    let audit = catalog.audit_after(0, 1000).await.expect("audit");
    let receipts = audit
        .iter()
        .filter(|e| e.entry.action == "recording.expire")
        .count();
    assert_eq!(receipts, 10, "every receipt is in the audit chain");
    let mut verifier = callvault::audit::ChainVerifier::new();
    audit.iter().for_each(|e| verifier.push(e));
    verifier.finish().expect("the chain verifies");
    let progress = catalog.retention_progress().await.expect("progress");
    assert_eq!(progress.expired, 10);
    assert_eq!(progress.sweeps, 1);
    let _ = clock.now();
}
