//! Imported recordings (issue 17): `POST /v1/imports` and `callvault import` against the built
//! daemon, with the files `fixtures/import/make.sh` made (real speech in every format), played back
//! and compared with their source; bad input answered with problem+json and nothing stored; holds,
//! subject access, review and retention applied to imports as to live recordings; a 200-file
//! migration killed half way and run again.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use callvault::catalog::{Catalog, RecordingStatus};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use common::live::{Live, t0};

const CALLER: &str = "+441744676789";
const REVIEW_LINE: &str = "+441744676000";
const CONFIG: &str = "[import]\ntelephony_tokens = [\"uploader\"]\n\
                      [policies.standard]\nretention = \"3 months\"\n\
                      [policies.review]\nimport_review = true\n\
                      [lines]\n\"+441744676000\" = \"review\"\n";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/import")
        .join(name)
}

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name))
        .unwrap_or_else(|e| panic!("fixtures/import/{name}: {e} (made by fixtures/import/make.sh)"))
}

/// A multipart body: the metadata part, then the file part (either may be left out).
fn multipart(meta: Option<&Value>, file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "callvault-test-boundary-7d1f";
    let mut body = Vec::new();
    if let Some(m) = meta {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\
                 Content-Type: application/json\r\n\r\n{m}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_import(
    live: &Live,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Value) {
    let stream = TcpStream::connect(live.public).await.expect("connect");
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", content_type)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let (status, h, out) = common::exchange(stream, "POST", "/v1/imports", &headers, body).await;
    (
        status,
        h,
        serde_json::from_slice(&out).unwrap_or_else(|_| json!(String::from_utf8_lossy(&out))),
    )
}

fn meta(call: &str, start: DateTime<Utc>, ms: i64) -> Value {
    json!({
        "call_id": call,
        "started_at": start.to_rfc3339(),
        "ended_at": (start + chrono::Duration::milliseconds(ms)).to_rfc3339(),
        "caller": CALLER,
        "agent": "agent-7",
        "queue": "council-tax",
    })
}

async fn import(live: &Live, token: &str, meta: &Value, name: &str, bytes: &[u8]) -> (u16, Value) {
    let (ct, body) = multipart(Some(meta), Some((name, bytes)));
    let (s, _, b) = post_import(live, Some(token), &ct, &body).await;
    (s, b)
}

/// Interleaved samples of a 16-bit WAV, with its channels and rate.
fn wav_samples(bytes: &[u8]) -> (Vec<i16>, u16, u32) {
    let r = hound::WavReader::new(std::io::Cursor::new(bytes)).expect("a wav file");
    let spec = r.spec();
    assert_eq!(spec.bits_per_sample, 16, "16-bit pcm");
    let s: Vec<i16> = r
        .into_samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    (s, spec.channels, spec.sample_rate)
}

fn channel(interleaved: &[i16], channels: usize, which: usize) -> Vec<i16> {
    interleaved
        .iter()
        .skip(which)
        .step_by(channels)
        .copied()
        .collect()
}

/// Signal-to-error ratio in dB of `got` against `want`, at the lag within `max_lag` samples that
/// suits `got` best (lossy codecs may shift the audio by a few samples).
fn snr_db(want: &[i16], got: &[i16], max_lag: i64) -> f64 {
    let mut best = f64::MIN;
    for lag in -max_lag..=max_lag {
        let (mut sig, mut err) = (0f64, 0f64);
        for (i, w) in want.iter().enumerate() {
            let j = i as i64 + lag;
            if j < 0 || j as usize >= got.len() {
                continue;
            }
            let w = f64::from(*w);
            sig += w * w;
            let d = w - f64::from(got[j as usize]);
            err += d * d;
        }
        best = best.max(10.0 * (sig / err.max(1.0)).log10());
    }
    best
}

async fn play(live: &Live, id: &str, token: &str) -> (Vec<i16>, u16, u32) {
    let (status, body) = live.play(id, token).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    wav_samples(&body)
}

/// Each format, what it is stored as, and the least signal-to-error ratio (dB) its playback keeps
/// against the source (`None`: sample-exact).
const FORMATS: &[(&str, &str, Option<f64>)] = &[
    ("pcm16.wav", "L16", None),
    ("speech.flac", "L16", None),
    ("pcm8.wav", "L16", Some(20.0)),
    ("mulaw.wav", "PCMU", Some(34.0)),
    ("alaw.wav", "PCMA", Some(34.0)),
    ("ima-adpcm.wav", "L16", Some(17.0)),
    ("ms-adpcm.wav", "L16", Some(18.0)),
    ("speech.mp3", "L16", Some(20.0)),
    ("speech.ogg", "L16", Some(18.0)),
];

/// Checks a played-back import of `name` against the source.
fn check_against_source(
    name: &str,
    codec: &str,
    min_snr: Option<f64>,
    row_codec: &str,
    got: &[i16],
) {
    let (source, _, _) = wav_samples(&read_fixture("source.wav"));
    assert_eq!(row_codec, codec, "{name}: stored codec");
    // same duration within 20 ms (160 samples at 8 kHz)
    let diff = (got.len() as i64 - source.len() as i64).abs();
    assert!(
        diff <= 160,
        "{name}: {} samples, source {}",
        got.len(),
        source.len()
    );
    if name == "pcm8.wav" {
        // 8-bit is exact against its own samples, widened to 16 bits
        let r = hound::WavReader::new(std::io::Cursor::new(read_fixture(name))).expect("wav");
        let own: Vec<i16> = r
            .into_samples::<i8>()
            .map(|s| i16::from(s.expect("sample")) << 8)
            .collect();
        assert!(
            got == own.as_slice(),
            "{name}: not sample-exact against its 8-bit samples"
        );
    }
    match min_snr {
        None => assert!(got == source.as_slice(), "{name}: not sample-exact"),
        Some(min) => {
            let snr = snr_db(&source, got, 80);
            eprintln!("{name}: {snr:.1} dB against the source");
            assert!(snr >= min, "{name}: {snr:.1} dB < {min} dB");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_imports_through_the_api_and_plays_back_as_its_source() {
    let live = Live::start(CONFIG).await;
    let start = t0() - chrono::Duration::days(1);
    for (i, (name, codec, min_snr)) in FORMATS.iter().enumerate() {
        let bytes = read_fixture(name);
        let call = format!("api-{name}");
        let (s, b) = import(
            &live,
            &live.compliance,
            &meta(&call, start + chrono::Duration::minutes(i as i64), 3000),
            name,
            &bytes,
        )
        .await;
        assert_eq!(s, 201, "{name}: {b}");
        assert_eq!(b["already_imported"], false);
        let id = b["recording"]["id"].as_str().expect("id").to_owned();
        assert_eq!(b["recording"]["status"], "sealed", "{b}");
        let (got, channels, rate) = play(&live, &id, &live.compliance).await;
        assert_eq!((channels, rate), (1, 8000), "{name}");
        check_against_source(
            name,
            codec,
            *min_snr,
            b["recording"]["codec"].as_str().expect("codec"),
            &got,
        );
        // the ledger keeps the original's SHA-256 and format; the audit chain the import and its actor
        let row = live.recording(&call).await.expect("stored");
        let ledger = live.catalog.ledger(row.id).await.expect("ledger");
        let note: Value = serde_json::from_str(&ledger[0].details).expect("json");
        assert_eq!(ledger[0].kind, "imported");
        assert_eq!(
            note["sha256"],
            hex::encode(Sha256::digest(&bytes)),
            "{name}"
        );
        assert!(
            note["duration_ms"].as_u64().expect("ms").abs_diff(3000) <= 20,
            "{note}"
        );
        assert_eq!(ledger[0].actor, "token:test-compliance");
        let audit = live
            .catalog
            .search_audit(&callvault::catalog::AuditQuery {
                action: Some("recording.import".into()),
                subject: Some(id.clone()),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("audit");
        assert_eq!(audit.len(), 1, "{name}: one audit entry");
        assert_eq!(audit[0].entry.actor, "token:test-compliance");
    }

    // stereo at 16 kHz: resampled to 8 kHz, the caller stays left and the agent right
    let bytes = read_fixture("stereo-16k.wav");
    let (s, b) = import(
        &live,
        &live.compliance,
        &meta("api-stereo", start, 2000),
        "stereo-16k.wav",
        &bytes,
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["recording"]["channels"], 2);
    let (got, channels, rate) = play(
        &live,
        b["recording"]["id"].as_str().expect("id"),
        &live.compliance,
    )
    .await;
    assert_eq!((channels, rate), (2, 8000));
    assert_eq!(got.len(), 2 * 16_000, "two seconds of stereo at 8 kHz");
    let (source, _, _) = wav_samples(&read_fixture("source.wav"));
    let left = channel(&got, 2, 0);
    let right = channel(&got, 2, 1);
    let caller_snr = snr_db(&source[..16_000], &left, 8);
    let swapped = snr_db(&source[..16_000], &right, 8);
    eprintln!("stereo: caller {caller_snr:.1} dB, agent against the caller {swapped:.1} dB");
    assert!(
        caller_snr >= 20.0,
        "the caller's channel: {caller_snr:.1} dB"
    );
    assert!(
        swapped < 3.0,
        "the agent's channel is not the caller's: {swapped:.1} dB"
    );
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_problem_json_and_nothing_is_stored() {
    let live = Live::start(CONFIG).await;
    let start = t0() - chrono::Duration::days(1);
    let pcm = read_fixture("pcm16.wav");
    let problem = |s: u16, h: &[(String, String)], b: &Value, status: u16, code: &str| {
        assert_eq!(s, status, "{code}: {b}");
        assert_eq!(
            common::header(h, "content-type"),
            Some("application/problem+json"),
            "{code}"
        );
        assert_eq!(b["code"], code, "{b}");
    };
    let send = |m: Option<Value>, f: Option<(&'static str, Vec<u8>)>, token: Option<String>| {
        let live = &live;
        async move {
            let (ct, body) = multipart(m.as_ref(), f.as_ref().map(|(n, b)| (*n, b.as_slice())));
            post_import(live, token.as_deref(), &ct, &body).await
        }
    };
    let comp = Some(live.compliance.clone());

    // formats callvault cannot decode are named
    let (s, h, b) = send(
        Some(meta("bad-gsm", start, 3000)),
        Some(("gsm.wav", read_fixture("gsm.wav"))),
        comp.clone(),
    )
    .await;
    problem(s, &h, &b, 415, "unsupported_format");
    assert!(
        b["detail"].as_str().expect("detail").contains("GSM 6.10"),
        "{b}"
    );
    let (s, h, b) = send(
        Some(meta("bad-text", start, 3000)),
        Some(("notes.wav", b"these are my notes, not audio".repeat(100))),
        comp.clone(),
    )
    .await;
    problem(s, &h, &b, 415, "unsupported_format");
    // a file cut off inside its header
    let (s, h, b) = send(
        Some(meta("bad-cut", start, 3000)),
        Some(("cut.wav", pcm[..30].to_vec())),
        comp.clone(),
    )
    .await;
    problem(s, &h, &b, 422, "corrupt_file");
    // metadata missing or incomplete
    let (s, h, b) = send(None, Some(("pcm16.wav", pcm.clone())), comp.clone()).await;
    problem(s, &h, &b, 400, "metadata_missing");
    let (s, h, b) = send(
        Some(json!({ "started_at": start.to_rfc3339(), "duration_seconds": 3 })),
        Some(("pcm16.wav", pcm.clone())),
        comp.clone(),
    )
    .await;
    problem(s, &h, &b, 400, "metadata_missing");
    assert!(
        b["detail"].as_str().expect("detail").contains("call_id"),
        "{b}"
    );
    let (s, h, b) = send(
        Some(json!({ "call_id": "bad-field", "started_at": "yesterday", "duration_seconds": 3 })),
        Some(("pcm16.wav", pcm.clone())),
        comp.clone(),
    )
    .await;
    problem(s, &h, &b, 400, "bad_metadata");
    let (s, h, b) = send(Some(meta("bad-nofile", start, 3000)), None, comp.clone()).await;
    problem(s, &h, &b, 400, "file_missing");
    // the audio is 3 s, the metadata says 10 s
    let (s, h, b) = send(
        Some(meta("bad-length", start, 10_000)),
        Some(("pcm16.wav", pcm.clone())),
        comp.clone(),
    )
    .await;
    problem(s, &h, &b, 422, "duration_mismatch");
    // past its retention (3 months from the call's end): refused, audited, not stored
    let old = t0() - chrono::Duration::days(200);
    let (s, h, b) = send(
        Some(meta("bad-expired", old, 3000)),
        Some(("pcm16.wav", pcm.clone())),
        comp.clone(),
    )
    .await;
    problem(s, &h, &b, 422, "expired");
    let refused = live
        .catalog
        .search_audit(&callvault::catalog::AuditQuery {
            action: Some("recording.import_refused".into()),
            subject: Some("bad-expired".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(refused.len(), 1, "the refusal is audited");
    // not multipart at all
    let (s, h, b) = post_import(&live, Some(&live.compliance), "application/json", b"{}").await;
    problem(s, &h, &b, 400, "bad_multipart");
    // who may import: compliance, or a telephony token with the import scope
    let (s, h, b) = send(
        Some(meta("bad-anon", start, 3000)),
        Some(("pcm16.wav", pcm.clone())),
        None,
    )
    .await;
    problem(s, &h, &b, 401, "unauthenticated");
    let (s, h, b) = send(
        Some(meta("bad-sup", start, 3000)),
        Some(("pcm16.wav", pcm.clone())),
        Some(live.supervisor.clone()),
    )
    .await;
    problem(s, &h, &b, 403, "forbidden");
    let (s, h, b) = send(
        Some(meta("bad-tel", start, 3000)),
        Some(("pcm16.wav", pcm.clone())),
        Some(live.telephony.clone()),
    )
    .await;
    problem(s, &h, &b, 403, "forbidden");

    for call in [
        "bad-gsm",
        "bad-text",
        "bad-cut",
        "bad-field",
        "bad-nofile",
        "bad-length",
        "bad-expired",
        "bad-anon",
        "bad-sup",
        "bad-tel",
    ] {
        assert!(
            live.recording(call).await.is_none(),
            "{call} stored nothing"
        );
    }
    // and no object was left behind by the refusals that had started storing
    let objects = count_objects(&live.deployment.path("state"));
    assert_eq!(objects, 0, "no audio object left by a refused import");

    // a telephony token with the import scope may upload; the same file again is the same
    // recording (200), another file for that call is refused (409)
    let uploader = named_token(&live, "uploader").await;
    let m = meta("twice", start, 3000);
    let (s, first) = import(&live, &uploader, &m, "pcm16.wav", &pcm).await;
    assert_eq!(s, 201, "{first}");
    let (s, again) = import(&live, &uploader, &m, "pcm16.wav", &pcm).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["already_imported"], true);
    assert_eq!(again["recording"]["id"], first["recording"]["id"]);
    let (s, other) = import(
        &live,
        &live.compliance,
        &m,
        "alaw.wav",
        &read_fixture("alaw.wav"),
    )
    .await;
    assert_eq!(s, 409, "{other}");
    assert_eq!(other["code"], "call_has_recording");
    assert_eq!(
        count_objects(&live.deployment.path("state")),
        1,
        "one recording, one object"
    );
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_size_limit_is_refused_and_nothing_is_stored() {
    let live = Live::start("[import]\nmax_bytes = 20000\n").await;
    let start = t0() - chrono::Duration::days(1);
    let (s, b) = import(
        &live,
        &live.compliance,
        &meta("too-big", start, 3000),
        "pcm16.wav",
        &read_fixture("pcm16.wav"),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (413, Some("payload_too_large")),
        "{b}"
    );
    assert!(live.recording("too-big").await.is_none());
    assert_eq!(count_objects(&live.deployment.path("state")), 0);
    // a file under the limit goes in
    let (s, b) = import(
        &live,
        &live.compliance,
        &meta("small", start, 3000),
        "alaw.wav",
        &read_fixture("ima-adpcm.wav"),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    live.stop().await;
}

/// `.cva` objects under the local store.
fn count_objects(state: &Path) -> usize {
    fn walk(p: &Path, n: &mut usize) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else if p.extension().is_some_and(|x| x == "cva")
                && !p.to_string_lossy().contains("spool")
            {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(state, &mut n);
    n
}

async fn named_token(live: &Live, name: &str) -> String {
    let (id, secret, hash) = callvault::api::auth::mint_token();
    live.catalog
        .insert_token(&callvault::catalog::TokenRow {
            id,
            name: name.into(),
            role: "telephony".into(),
            hash,
            created_at: t0(),
            revoked_at: None,
        })
        .await
        .expect("token");
    secret.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_follow_holds_subject_access_review_and_retention() {
    let live = Live::start(CONFIG).await;
    let pcm = read_fixture("pcm16.wav");
    // a complaint hold on the caller, placed before the import
    let stream = TcpStream::connect(live.public).await.expect("connect");
    let auth = format!("Bearer {}", live.supervisor);
    let hold = json!({ "reference": "CMP-17", "reason": "complaint", "caller": CALLER });
    let (s, _, b) = common::exchange(
        stream,
        "POST",
        "/v1/holds",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        hold.to_string().as_bytes(),
    )
    .await;
    assert!(s == 200 || s == 201, "{}", String::from_utf8_lossy(&b));
    // both end so that their retention (3 months) runs out 10 days after t0
    let start = t0() - chrono::Duration::days(82) - chrono::Duration::seconds(3);
    let (s, held) = import(
        &live,
        &live.compliance,
        &meta("held", start, 3000),
        "pcm16.wav",
        &pcm,
    )
    .await;
    assert_eq!(s, 201, "{held}");
    let mut free_meta = meta("free", start, 3000);
    free_meta["caller"] = json!("+441744676111");
    let (s, free) = import(&live, &live.compliance, &free_meta, "pcm16.wav", &pcm).await;
    assert_eq!(s, 201, "{free}");
    let held_id = held["recording"]["id"].as_str().expect("id").to_owned();
    let holds = live
        .catalog
        .holds_for_recording(held_id.parse().expect("id"))
        .await
        .expect("holds");
    assert_eq!(
        holds.len(),
        1,
        "the caller's hold covers the imported recording"
    );

    // a subject-access export finds the imported recording by its caller
    let body = json!({
        "caller": "01744 676789", "sar_reference": "SAR-17", "reason": "subject access request",
        "from": (start - chrono::Duration::days(1)).to_rfc3339(),
        "to": (t0()).to_rfc3339(),
    });
    let stream = TcpStream::connect(live.public).await.expect("connect");
    let (s, _, b) = common::exchange(
        stream,
        "POST",
        "/v1/exports",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await;
    let b: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(s, 202, "{b}");
    let export = b["id"].as_str().expect("export id").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, st) = live
            .get(&format!("/v1/exports/{export}"), &live.supervisor)
            .await;
        let st: Value = serde_json::from_slice(&st).expect("json");
        if st["status"] == "ready" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "export not ready: {st}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, _, zip) = live
        .get(&format!("/v1/exports/{export}/bundle"), &live.supervisor)
        .await;
    assert_eq!(s, 200);
    let archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("zip");
    let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    assert!(
        names
            .iter()
            .any(|n| n.contains(&held_id) && n.ends_with(".wav")),
        "the bundle holds the imported recording: {names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains(free["recording"]["id"].as_str().expect("id"))),
        "and not another caller's: {names:?}"
    );

    // a line whose policy reviews imports: pci_review, compliance only until cleared
    let mut review = meta("review", t0() - chrono::Duration::days(1), 3000);
    review["line"] = json!(REVIEW_LINE);
    let (s, b) = import(&live, &live.compliance, &review, "pcm16.wav", &pcm).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["recording"]["status"], "pci_review");
    assert_eq!(b["recording"]["policy"], "review");
    let id = b["recording"]["id"].as_str().expect("id");
    let (s, body) = live.play(id, &live.supervisor).await;
    assert_eq!(s, 409, "{}", String::from_utf8_lossy(&body));
    let (s, _) = live.play(id, &live.compliance).await;
    assert_eq!(s, 200);
    // a compliance user clears it (with a reason); a supervisor may not
    let clear = |token: String, body: Value| {
        let live = &live;
        let path = format!("/v1/imports/{id}/clear-review");
        async move {
            let stream = TcpStream::connect(live.public).await.expect("connect");
            let auth = format!("Bearer {token}");
            let (s, _, b) = common::exchange(
                stream,
                "POST",
                &path,
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                body.to_string().as_bytes(),
            )
            .await;
            (
                s,
                serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
            )
        }
    };
    let (s, b) = clear(live.supervisor.clone(), json!({ "reason": "listened" })).await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = clear(live.compliance.clone(), json!({})).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("missing_field")), "{b}");
    let (s, b) = clear(
        live.compliance.clone(),
        json!({ "reason": "listened: no card details" }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "sealed");
    let (s, b) = clear(live.compliance.clone(), json!({ "reason": "again" })).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("not_under_review")),
        "{b}"
    );
    let (s, _) = live.play(id, &live.supervisor).await;
    assert_eq!(s, 200, "a supervisor plays it once cleared");

    // keypad tones in imported audio (a card number keyed while the old recorder kept recording):
    // pci_review whatever the policy says, and the ledger says tones were heard, not which
    let (source, _, _) = wav_samples(&pcm);
    let mut keyed = source.clone();
    for (k, (lo, hi)) in [
        (770.0, 1336.0),
        (697.0, 1209.0),
        (852.0, 1477.0),
        (941.0, 1336.0),
    ]
    .into_iter()
    .enumerate()
    {
        let at = 4000 + k * 1600;
        for n in 0..800 {
            let t = n as f64 / 8000.0;
            let v = ((2.0 * std::f64::consts::PI * lo * t).sin()
                + (2.0 * std::f64::consts::PI * hi * t).sin())
                * 5000.0;
            keyed[at + n] = v as i16;
        }
    }
    let mut wav = std::io::Cursor::new(Vec::new());
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut wav, spec).expect("wav");
        for s in &keyed {
            w.write_sample(*s).expect("sample");
        }
        w.finalize().expect("wav");
    }
    let (s, b) = import(
        &live,
        &live.compliance,
        &meta("keyed", t0() - chrono::Duration::days(1), 3000),
        "keyed.wav",
        wav.get_ref(),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["recording"]["status"], "pci_review", "{b}");
    let row = live.recording("keyed").await.expect("row");
    let ledger = live.catalog.ledger(row.id).await.expect("ledger");
    let review = ledger
        .iter()
        .find(|e| e.kind == "import.pci_review")
        .expect("a review entry");
    assert!(
        review
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("keypad")),
        "{review:?}"
    );
    assert!(
        review.details.contains("\"keypad_tones\":4"),
        "{}",
        review.details
    );

    // retention: past the expiry counted from the original end, the sweep deletes the free one
    // and keeps the held one
    live.advance_ms(11 * 86_400_000);
    let stream = TcpStream::connect(live.admin).await.expect("connect");
    let (s, _, b) = common::exchange(stream, "POST", "/retention/sweep", &[], b"").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        live.recording("free").await.expect("row").status,
        RecordingStatus::Expired
    );
    assert_eq!(
        live.recording("held").await.expect("row").status,
        RecordingStatus::Sealed
    );
    live.stop().await;
}

// --- the CLI

fn cli(config: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"));
    cmd.arg("--config").arg(config).arg("import").args(args);
    cmd
}

/// Writes a CSV manifest in an old recorder's own column names.
fn write_manifest(path: &Path, rows: &[(String, String, DateTime<Utc>, f64)]) {
    let mut text = String::from("INUM,Start Time,Duration,ANI,Agent ID,FileName\n");
    for (call, file, start, secs) in rows {
        text.push_str(&format!(
            "{call},{},{secs},{CALLER},a7,{file}\n",
            start.format("%Y-%m-%d %H:%M:%S")
        ));
    }
    std::fs::write(path, text).expect("manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_imports_through_the_cli_and_plays_back_as_its_source() {
    let live = Live::start(CONFIG).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // the CLI judges expiry by the real clock
    let start = Utc::now() - chrono::Duration::hours(2);
    let rows: Vec<_> = FORMATS
        .iter()
        .map(|(name, _, _)| (format!("cli-{name}"), name.to_string(), start, 3.0))
        .collect();
    let manifest = dir.path().join("export.csv");
    write_manifest(&manifest, &rows);
    let out = cli(
        &live.deployment.config,
        &[
            "--manifest",
            manifest.to_str().expect("utf-8"),
            "--dir",
            fixture("").to_str().expect("utf-8"),
        ],
    )
    .output()
    .expect("run callvault import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report =
        std::fs::read_to_string(dir.path().join("export.csv.report.json")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{stdout}{}{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{} imported", FORMATS.len())),
        "{stdout}"
    );
    for (name, codec, min_snr) in FORMATS {
        let row = live
            .recording(&format!("cli-{name}"))
            .await
            .expect("imported");
        let (got, _, _) = play(&live, &row.id.to_string(), &live.compliance).await;
        check_against_source(name, codec, *min_snr, row.codec.name(), &got);
        let ledger = live.catalog.ledger(row.id).await.expect("ledger");
        assert!(ledger[0].actor.starts_with("cli:"), "{:?}", ledger[0]);
    }
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_killed_half_way_finishes_on_a_second_run_with_each_file_once() {
    let live = Live::start(CONFIG).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let files = dir.path().join("files");
    std::fs::create_dir(&files).expect("mkdir");
    let now = Utc::now();
    let mut rows = Vec::new();
    let (mut corrupt, mut expired) = (Vec::new(), Vec::new());
    for i in 0..200u32 {
        let call = format!("mig-{i:03}");
        let file = format!("{i:03}.wav");
        let path = files.join(&file);
        let mut start = now - chrono::Duration::hours(1) - chrono::Duration::seconds(i64::from(i));
        if i % 50 == 7 {
            // planted: not a WAV file at all, though named like one
            std::fs::write(&path, vec![i as u8; 20_000]).expect("write");
            corrupt.push(call.clone());
        } else {
            // 5 s of a tone of its own, so every file hashes differently
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: 8000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&path, spec).expect("wav");
            let hz = 300.0 + f64::from(i) * 7.0;
            for n in 0..40_000 {
                let v = (2.0 * std::f64::consts::PI * hz * f64::from(n) / 8000.0).sin() * 6000.0;
                w.write_sample(v as i16).expect("sample");
            }
            w.finalize().expect("wav");
            if i % 50 == 23 {
                // planted: a call whose retention ran out long ago
                start = now - chrono::Duration::days(400);
                expired.push(call.clone());
            }
        }
        rows.push((call, file, start, 5.0));
    }
    let manifest = dir.path().join("export.csv");
    write_manifest(&manifest, &rows);
    let report = dir.path().join("report.json");
    let args = [
        "--manifest",
        manifest.to_str().expect("utf-8"),
        "--dir",
        files.to_str().expect("utf-8"),
        "--report",
        report.to_str().expect("utf-8"),
        "--jobs",
        "2",
    ];
    let imported = |catalog: std::sync::Arc<dyn Catalog>| async move {
        let mut n = 0;
        let mut after = None;
        loop {
            let page = catalog.recordings_after(after, 500).await.expect("page");
            let Some(last) = page.last() else { return n };
            after = Some(last.id);
            n += page
                .iter()
                .filter(|r| r.call_id.as_str().starts_with("mig-"))
                .count();
        }
    };
    // the first run, killed (SIGKILL) once some files are in
    let mut child = cli(&live.deployment.config, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn callvault import");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = imported(live.catalog.clone()).await;
        if n >= 40 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {n} imported in 60 s"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the first run ended by itself after {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let good = 200 - corrupt.len() - expired.len();
    let at_kill = imported(live.catalog.clone()).await;
    assert!(
        at_kill < good,
        "killed half way: {at_kill} of {good} were in"
    );

    // the second run finishes the job
    let out = cli(&live.deployment.config, &args)
        .output()
        .expect("run again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "failures make the exit code 1: {stdout}"
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert_eq!(r["total"], 200);
    assert_eq!(
        r["imported"].as_u64().expect("n") + r["already_imported"].as_u64().expect("n"),
        good as u64,
        "{stdout}{r}"
    );
    assert!(
        r["already_imported"].as_u64().expect("n") >= at_kill as u64,
        "{r}"
    );
    let failed: Vec<(String, String)> = r["failed"]
        .as_array()
        .expect("failed")
        .iter()
        .map(|f| {
            (
                f["call_id"].as_str().expect("call").to_owned(),
                f["code"].as_str().expect("code").to_owned(),
            )
        })
        .collect();
    let mut want: Vec<(String, String)> = corrupt
        .iter()
        .map(|c| (c.clone(), "unsupported_format".to_owned()))
        .chain(expired.iter().map(|c| (c.clone(), "expired".to_owned())))
        .collect();
    want.sort();
    let mut failed_sorted = failed.clone();
    failed_sorted.sort();
    assert_eq!(
        failed_sorted, want,
        "the report lists exactly the planted files"
    );

    // every good file exactly once: one recording, one import in its ledger, one audit entry
    assert_eq!(imported(live.catalog.clone()).await, good);
    let mut subjects = std::collections::BTreeSet::new();
    let mut after = 0;
    loop {
        let page = live
            .catalog
            .search_audit(&callvault::catalog::AuditQuery {
                action: Some("recording.import".into()),
                after_seq: after,
                limit: 500,
                ..Default::default()
            })
            .await
            .expect("audit");
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page {
            assert!(
                subjects.insert(e.entry.subject.clone()),
                "imported twice: {}",
                e.entry.subject
            );
        }
    }
    assert_eq!(subjects.len(), good);
    for (call, file, _, _) in &rows {
        if corrupt.contains(call) || expired.contains(call) {
            assert!(live.recording(call).await.is_none(), "{call} not stored");
            continue;
        }
        let row = live
            .recording(call)
            .await
            .unwrap_or_else(|| panic!("{call} imported"));
        let ledger = live.catalog.ledger(row.id).await.expect("ledger");
        let notes: Vec<_> = ledger.iter().filter(|e| e.kind == "imported").collect();
        assert_eq!(notes.len(), 1, "{call}");
        let sha = hex::encode(Sha256::digest(
            std::fs::read(files.join(file)).expect("file"),
        ));
        assert!(
            notes[0].details.contains(&sha),
            "{call}: the ledger holds the file's hash"
        );
    }

    // a third run changes nothing
    let out = cli(&live.deployment.config, &args)
        .output()
        .expect("run a third time");
    let r: Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert_eq!(
        r["already_imported"],
        good,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(r["imported"], 0);
    live.stop().await;
}

// --- lossless FLAC storage (storage_codec = "flac")

const FLAC_LINE: &str = "+441744676001";
const RAW_LINE: &str = "+441744676002";
const FLAC_CONFIG: &str = "[import]\nsegment_length = \"2s\"\n\
                           [policies.standard]\nretention = \"3 months\"\n\
                           [policies.flac]\nstorage_codec = \"flac\"\n\
                           [lines]\n\"+441744676001\" = \"flac\"\n\"+441744676002\" = \"standard\"\n";

/// The stored object of a segment, read from the local store.
fn object(live: &Live, key: &str) -> Vec<u8> {
    std::fs::read(live.deployment.path("state/objects").join(key)).expect("the object")
}

/// The format version of a stored segment and its size.
async fn stored_versions(live: &Live, id: &str) -> Vec<(u16, usize)> {
    let segs = live
        .catalog
        .segments(id.parse().expect("id"))
        .await
        .expect("segments");
    segs.iter()
        .map(|s| {
            let b = object(live, &s.object_key);
            (u16::from_be_bytes([b[4], b[5]]), b.len())
        })
        .collect()
}

async fn play_range(live: &Live, id: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    let stream = TcpStream::connect(live.public).await.expect("connect");
    let auth = format!("Bearer {}", live.compliance);
    let r = format!("bytes={}-{}", range.start, range.end - 1);
    let (s, _, body) = common::exchange(
        stream,
        "GET",
        &format!("/v1/recordings/{id}/audio?reason=test&format=pcm16"),
        &[("Authorization", &auth), ("Range", &r)],
        b"",
    )
    .await;
    assert_eq!(s, 206, "{}", String::from_utf8_lossy(&body));
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_stored_as_flac_plays_back_sample_exact_and_serves_ranges() {
    let live = Live::start(FLAC_CONFIG).await;
    let start = t0() - chrono::Duration::days(1);
    let (source, _, _) = wav_samples(&read_fixture("source.wav"));
    let mut ids = Vec::new();
    for (call, line, name) in [
        ("flac-pcm", FLAC_LINE, "pcm16.wav"),
        ("raw-pcm", RAW_LINE, "pcm16.wav"),
        ("flac-flac", FLAC_LINE, "speech.flac"),
    ] {
        let mut m = meta(call, start, 3000);
        m["line"] = json!(line);
        let (s, b) = import(&live, &live.compliance, &m, name, &read_fixture(name)).await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(b["recording"]["codec"], "L16", "played as 16-bit linear");
        let id = b["recording"]["id"].as_str().expect("id").to_owned();
        let (got, _, _) = play(&live, &id, &live.compliance).await;
        assert!(got == source, "{call}: sample-exact");
        ids.push(id);
    }
    // two segments (2 s + 1 s); FLAC ones are version 2 and smaller than the raw ones
    let flac = stored_versions(&live, &ids[0]).await;
    let raw = stored_versions(&live, &ids[1]).await;
    assert_eq!(
        flac.iter().map(|v| v.0).collect::<Vec<_>>(),
        [2, 2],
        "{flac:?}"
    );
    assert_eq!(
        raw.iter().map(|v| v.0).collect::<Vec<_>>(),
        [1, 1],
        "{raw:?}"
    );
    let (f, r): (usize, usize) = (
        flac.iter().map(|v| v.1).sum(),
        raw.iter().map(|v| v.1).sum(),
    );
    eprintln!("3 s of speech: flac {f} bytes, raw {r} bytes");
    assert!(f * 10 < r * 8, "flac {f} is smaller than raw {r}");
    let row = live.recording("flac-pcm").await.expect("row");
    let note: Value =
        serde_json::from_str(&live.catalog.ledger(row.id).await.expect("ledger")[0].details)
            .expect("json");
    assert_eq!(note["stored_codec"], "FLAC");

    // ranged reads in the middle: across a chunk boundary (4096 frames), across the segment
    // boundary (2 s), odd offsets; the same bytes as the raw recording and as the source
    let whole: Vec<u8> = source.iter().flat_map(|s| s.to_le_bytes()).collect();
    for (from, to) in [
        (44 + 8000, 44 + 8400),
        (44 + 8191, 44 + 8193),
        (44 + 31_000, 44 + 33_001),
        (44 + 47_990, 44 + 48_000),
    ] {
        let a = play_range(&live, &ids[0], from..to).await;
        let b = play_range(&live, &ids[1], from..to).await;
        assert_eq!(a, b, "{from}..{to}: flac and raw agree");
        assert_eq!(
            a,
            whole[(from - 44) as usize..(to - 44) as usize],
            "{from}..{to}: the source's bytes"
        );
    }
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_stored_as_flac_plays_back_as_the_same_call_stored_raw() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let live = Live::start(FLAC_CONFIG).await;
    let (source, _, _) = wav_samples(&read_fixture("source.wav"));
    let audio: Vec<u8> = source.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut played = Vec::new();
    for (call, line) in [("live-flac", FLAC_LINE), ("live-raw", RAW_LINE)] {
        let (s, b) = live
            .event(
                call,
                "call.started",
                None,
                json!({ "line": line, "caller": CALLER }),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let mut ws = live
            .media_with(call, Some(&live.telephony))
            .await
            .expect("socket");
        let start = json!({ "type": "start", "codec": "L16", "sample_rate": 8000, "channels": 1 });
        ws.send(Message::Text(start.to_string().into()))
            .await
            .expect("start");
        common::live::sync(&mut ws).await;
        live.stream(&mut ws, &audio).await;
        common::live::sync(&mut ws).await;
        ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
            .await
            .expect("stop");
        let _close = common::live::close_of(&mut ws).await;
        let (s, b) = live.event(call, "call.ended", None, json!({})).await;
        assert_eq!(s, 200, "{b}");
        live.advance_ms(4000);
        let row = live.wait_sealed(call).await;
        let id = row.id.to_string();
        let (got, channels, rate) = play(&live, &id, &live.compliance).await;
        assert_eq!((channels, rate), (1, 8000));
        assert!(got.len() > 20_000, "{call}: {} samples kept", got.len());
        let versions = stored_versions(&live, &id).await;
        eprintln!("{call}: {versions:?}");
        played.push((got, versions));
    }
    let (flac, raw) = (&played[0], &played[1]);
    assert!(
        flac.0 == raw.0,
        "the flac call plays back sample-exact as the raw one"
    );
    assert!(
        flac.1.iter().all(|v| v.0 == 2),
        "stored as flac: {:?}",
        flac.1
    );
    assert!(raw.1.iter().all(|v| v.0 == 1), "stored raw: {:?}", raw.1);
    let sizes = |v: &[(u16, usize)]| v.iter().map(|x| x.1).sum::<usize>();
    assert!(
        sizes(&flac.1) < sizes(&raw.1),
        "{:?} vs {:?}",
        flac.1,
        raw.1
    );
    live.stop().await;
}
