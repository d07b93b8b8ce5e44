//! Supervisor access (issue 5): caller search, subject-access bundles verified offline, live listen
//! during a card payment, the authorisation matrix of DESIGN.md section 5, and OIDC JWTs.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use callvault::api::auth::mint_token;
use callvault::catalog::TokenRow;
use callvault::domain::{Codec, MediaFormat, Role};
use common::Deployment;
use common::audio::{decode_wav, goertzel, tone};
use common::live::{Live, Socket, sync, t0};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const FORMAT: MediaFormat = MediaFormat {
    codec: Codec::Pcmu,
    sample_rate: 8000,
    channels: 2,
};
const LOOKBACK_AND_GUARD_MS: i64 = 3_500;
/// Goertzel power of a test tone (amplitude 0.5) is about 0.125; leakage stays far below this.
const ABSENT: f32 = 1e-3;
const PRESENT: f32 = 0.03;

/// A request with an optional bearer token and a body; status and body.
async fn call_api(
    live: &Live,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let stream = TcpStream::connect(live.public).await.expect("connect");
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let (status, _, body) = common::exchange(stream, method, path, &headers, body).await;
    (status, body)
}

async fn get_json(live: &Live, path: &str, token: &str) -> (u16, Value) {
    let (s, b) = call_api(live, "GET", path, Some(token), b"").await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

async fn add_token(live: &Live, role: Role, name: &str) -> (String, String) {
    let (id, secret, hash) = mint_token();
    live.catalog
        .insert_token(&TokenRow {
            id: id.clone(),
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            hash,
            created_at: t0(),
            revoked_at: None,
        })
        .await
        .expect("token");
    (id, secret.to_string())
}

async fn open_media(live: &Live, call: &str) -> Socket {
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
    ws
}

/// A call from `caller`: 2 s of 1 kHz, then (with `pay`) `payment.started`, 2 s of 2 kHz and
/// `payment.ended`, then 2 s of 1 kHz; sealed and uploaded. `during` runs once the media is open.
async fn play(live: &Live, call: &str, caller: &str, pay: bool) -> String {
    let started = live.now();
    let (s, b) = live
        .event(
            call,
            "call.started",
            Some(started),
            json!({ "line": "+441744000111", "agent": "agent-7", "caller": caller }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut ws = open_media(live, call).await;
    live.stream(&mut ws, &tone(FORMAT, 1000.0, 2000)).await;
    sync(&mut ws).await;
    if pay {
        let (s, b) = live.event(call, "payment.started", None, json!({})).await;
        assert_eq!(s, 200, "{b}");
        live.stream(&mut ws, &tone(FORMAT, 2000.0, 2000)).await;
        sync(&mut ws).await;
        let (s, b) = live.event(call, "payment.ended", None, json!({})).await;
        assert_eq!(s, 200, "{b}");
    }
    live.stream(&mut ws, &tone(FORMAT, 1000.0, 2000)).await;
    sync(&mut ws).await;
    ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await
        .expect("stop");
    let (s, b) = live.event(call, "call.ended", None, json!({})).await;
    assert_eq!(s, 200, "{b}");
    live.advance_ms(LOOKBACK_AND_GUARD_MS + 500);
    live.wait_sealed(call).await.id.to_string()
}

async fn export(live: &Live, token: &str, sar: &str) -> Vec<u8> {
    let body = json!({
        "caller": "+44 (0)1744 676789", "sar_reference": sar, "reason": "subject access request",
        "from": (t0() - chrono::Duration::days(1)).to_rfc3339(),
        "to": (t0() + chrono::Duration::days(1)).to_rfc3339(),
    });
    let (s, b) = call_api(
        live,
        "POST",
        "/v1/exports",
        Some(token),
        body.to_string().as_bytes(),
    )
    .await;
    let b: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(s, 202, "{b}");
    let id = b["id"].as_str().expect("an id").to_owned();
    let due = b["sar"]["due_at"].as_str().expect("due");
    assert!(
        due.starts_with("2026-12-22"),
        "one calendar month after receipt: {b}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (s, st) = get_json(live, &format!("/v1/exports/{id}"), token).await;
        assert_eq!(s, 200, "{st}");
        if st["status"] == "ready" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "export not ready: {st}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, zip) = call_api(
        live,
        "GET",
        &format!("/v1/exports/{id}/bundle"),
        Some(token),
        b"",
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&zip));
    let (_, st) = get_json(live, &format!("/v1/exports/{id}"), token).await;
    assert_eq!(st["status"], "delivered", "{st}");
    zip
}

fn verify(path: &std::path::Path, key: Option<&std::path::Path>) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"));
    cmd.arg("verify").arg(path);
    if let Some(k) = key {
        cmd.arg("--key").arg(k);
    }
    let out = cmd.output().expect("run callvault verify");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn wav_names(zip: &[u8]) -> Vec<String> {
    let archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
    archive
        .file_names()
        .filter(|n| n.ends_with(".wav"))
        .map(str::to_owned)
        .collect()
}

/// Flips one byte in the middle of `name`'s data.
fn tamper(zip: &[u8], name: &str) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
    let f = archive.by_name(name).expect("the file");
    let at = (f.data_start().expect("an offset") + f.compressed_size() / 2) as usize;
    drop(f);
    let mut out = zip.to_vec();
    out[at] ^= 0x01;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_bundle_verifies_and_names_what_was_altered() {
    let live = Live::start("").await;
    let first = play(&live, "CA-sar-1", "01744 676789", false).await;
    let paid = play(&live, "CA-sar-2", "0044 1744 676789", true).await;
    let restricted = play(&live, "CA-sar-3", "+441744676789", false).await;
    let other = play(&live, "CA-sar-4", "01744 000000", false).await;
    live.catalog
        .set_restricted(restricted.parse().expect("id"), true, live.now())
        .await
        .expect("restrict");

    // search: three recordings, the number masked for a supervisor and whole for compliance
    let (s, found) = get_json(
        &live,
        "/v1/recordings?caller=01744%20676789",
        &live.supervisor,
    )
    .await;
    assert_eq!(s, 200, "{found}");
    let ids: Vec<&str> = found["recordings"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec![first.as_str(), paid.as_str(), restricted.as_str()]
    );
    assert!(!ids.contains(&other.as_str()));
    assert_eq!(found["recordings"][0]["caller"], "+44 **** **6789");
    let (_, found) = get_json(
        &live,
        "/v1/recordings?caller=%2B441744676789&limit=2",
        &live.compliance,
    )
    .await;
    assert_eq!(found["recordings"][0]["caller"], "+441744676789");
    let cursor = found["next_cursor"].as_str().expect("a second page");
    let (_, page2) = get_json(
        &live,
        &format!("/v1/recordings?caller=%2B441744676789&limit=2&cursor={cursor}"),
        &live.compliance,
    )
    .await;
    assert_eq!(page2["recordings"][0]["id"], restricted.as_str(), "{page2}");
    let (s, bad) = get_json(&live, "/v1/recordings?caller=banana", &live.supervisor).await;
    assert_eq!((s, bad["code"].as_str()), (400, Some("bad_caller")));

    // bundles: the supervisor's lacks the restricted recording, compliance's has it
    let sup = export(&live, &live.supervisor, "SAR-2026-001").await;
    let (_, sars) = get_json(&live, "/v1/sars", &live.supervisor).await;
    assert!(
        sars["sars"]
            .as_array()
            .expect("list")
            .iter()
            .all(|s| s["reference"] != "SAR-2026-001"),
        "a delivered SAR is closed: {sars}"
    );
    let comp = export(&live, &live.compliance, "SAR-2026-002").await;
    let sup_wavs = wav_names(&sup);
    let comp_wavs = wav_names(&comp);
    assert_eq!(sup_wavs.len(), 2, "{sup_wavs:?}");
    assert!(sup_wavs.iter().all(|n| !n.contains(&restricted)));
    assert_eq!(comp_wavs.len(), 3, "{comp_wavs:?}");
    assert!(comp_wavs.iter().any(|n| n.contains(&restricted)));

    // the paid call's audio holds no 2 kHz, and the pause is in the manifest
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&comp[..])).expect("zip");
    let paid_name = comp_wavs
        .iter()
        .find(|n| n.contains(&paid))
        .expect("paid wav")
        .clone();
    let mut wav = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name(&paid_name).expect("wav"), &mut wav)
        .expect("read");
    let decoded = decode_wav(&wav);
    let win = (decoded.rate / 100) as usize;
    let max_2k = decoded.samples[0]
        .chunks_exact(win)
        .map(|w| goertzel(w, decoded.rate, 2000.0))
        .fold(0.0, f32::max);
    assert!(max_2k < ABSENT, "2 kHz in the bundle: {max_2k}");
    let mut manifest = Vec::new();
    std::io::Read::read_to_end(
        &mut archive.by_name("manifest.json").expect("manifest"),
        &mut manifest,
    )
    .expect("read");
    let manifest: Value = serde_json::from_slice(&manifest).expect("json");
    let entry = manifest["recordings"]
        .as_array()
        .expect("recordings")
        .iter()
        .find(|r| r["id"] == paid.as_str())
        .expect("the paid call");
    assert!(
        !entry["pauses"].as_array().expect("pauses").is_empty(),
        "{entry}"
    );
    assert!(!entry["ledger"].as_array().expect("ledger").is_empty());

    // verify: whole bundles pass, with the served key pinned too
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, key) = get_json(&live, "/v1/signing-key", &live.supervisor).await;
    let key_file = dir.path().join("signing-key.pub");
    std::fs::write(&key_file, key["public_key"].as_str().expect("key")).expect("write");
    for (name, bytes) in [("sup.zip", &sup), ("comp.zip", &comp)] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let (ok, out) = verify(&path, Some(&key_file));
        assert!(ok, "{name}: {out}");
        let (ok, out) = verify(&path, None);
        assert!(ok, "{name}: {out}");
    }
    // one byte of a WAV, or of the manifest, changed: verify fails and names the file
    for name in [comp_wavs[1].as_str(), "manifest.json"] {
        let path = dir.path().join("tampered.zip");
        std::fs::write(&path, tamper(&comp, name)).expect("write");
        let (ok, out) = verify(&path, Some(&key_file));
        assert!(!ok, "{name}: {out}");
        assert!(out.contains(&format!("FAILED {name}")), "{name}: {out}");
    }
    // a bundle signed by another key fails when the key is pinned
    let other_key = dir.path().join("other.pub");
    std::fs::write(
        &other_key,
        STANDARD.encode(
            ed25519_dalek::SigningKey::from_bytes(&[9; 32])
                .verifying_key()
                .as_bytes(),
        ),
    )
    .expect("write");
    let (ok, out) = verify(&dir.path().join("comp.zip"), Some(&other_key));
    assert!(!ok && out.contains("FAILED manifest.json"), "{out}");

    // every access is audited with its actor and reason
    let (s, audit) = get_json(&live, "/v1/audit?action=recording.export", &live.compliance).await;
    assert_eq!(s, 200, "{audit}");
    let entries = audit["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{audit}");
    assert_eq!(entries[0]["subject"], "SAR-2026-001");
    assert_eq!(entries[0]["actor"], "token:test-supervisor");
    assert_eq!(entries[0]["reason"], "subject access request");
    for action in ["recording.search", "recording.download"] {
        let (_, a) = get_json(
            &live,
            &format!("/v1/audit?action={action}"),
            &live.compliance,
        )
        .await;
        assert!(
            !a["entries"].as_array().expect("entries").is_empty(),
            "{action}: {a}"
        );
    }
    let (_, all) = get_json(&live, "/v1/audit?limit=1000", &live.compliance).await;
    assert!(
        !all.to_string().contains("676789"),
        "a caller number reached the audit trail"
    );
    live.stop().await;
}

/// μ-law bytes, channels interleaved, to one channel of samples in [-1, 1].
fn channel(bytes: &[u8], ch: usize) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|f| f32::from(callvault::audio::g711::ulaw_to_linear(f[ch])) / 32768.0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_listen_during_a_card_payment_hears_no_card_audio() {
    let live = Live::start("").await;
    let call = "CA-listen-1";
    let (s, b) = live
        .event(
            call,
            "call.started",
            Some(t0()),
            json!({ "line": "+441744000111", "caller": "01744 676789" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut media = open_media(&live, call).await;
    sync(&mut media).await;

    let url = format!(
        "ws://{}/v1/calls/{call}/listen?reason=quality%20check",
        live.public
    );
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", live.supervisor)
            .parse()
            .expect("header"),
    );
    let tcp = TcpStream::connect(live.public).await.expect("connect");
    let (mut listener, _) = tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("listen opens");
    let heard = tokio::spawn(async move {
        let mut audio = Vec::new();
        let mut markers = Vec::new();
        while let Ok(Some(Ok(msg))) =
            tokio::time::timeout(Duration::from_secs(30), listener.next()).await
        {
            match msg {
                Message::Binary(b) => audio.extend_from_slice(&b),
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("json");
                    // where in the audio each marker came
                    markers.push((v["type"].as_str().unwrap_or("").to_owned(), audio.len()));
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        (audio, markers)
    });

    // the PCI tone test: 1 kHz, payment.started, 2 kHz, payment.ended, 1 kHz
    live.stream(&mut media, &tone(FORMAT, 1000.0, 6000)).await;
    sync(&mut media).await;
    let (s, b) = live.event(call, "payment.started", None, json!({})).await;
    assert_eq!(s, 200, "{b}");
    live.stream(&mut media, &tone(FORMAT, 2000.0, 8000)).await;
    sync(&mut media).await;
    let (s, b) = live.event(call, "payment.ended", None, json!({})).await;
    assert_eq!(s, 200, "{b}");
    live.stream(&mut media, &tone(FORMAT, 1000.0, 6000)).await;
    sync(&mut media).await;
    media
        .send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await
        .expect("stop");
    let (s, b) = live.event(call, "call.ended", None, json!({})).await;
    assert_eq!(s, 200, "{b}");
    live.advance_ms(LOOKBACK_AND_GUARD_MS + 500);
    live.wait_sealed(call).await;

    let (audio, markers) = heard.await.expect("listener task");
    let kinds: Vec<&str> = markers.iter().map(|(k, _)| k.as_str()).collect();
    assert!(kinds.contains(&"start"), "{kinds:?}");
    let paused_at = markers
        .iter()
        .find(|(k, _)| k == "paused")
        .map(|m| m.1)
        .expect("a pause marker");
    let resumed_at = markers
        .iter()
        .find(|(k, _)| k == "resumed")
        .map(|m| m.1)
        .expect("a resume marker");
    assert_eq!(
        paused_at, resumed_at,
        "no audio between the pause and resume markers"
    );
    // both channels, 1 kHz before and after, no 2 kHz anywhere
    assert!(audio.len() > 16 * 8000, "heard {} bytes", audio.len());
    for ch in 0..2 {
        let samples = channel(&audio, ch);
        let powers: Vec<f32> = samples
            .chunks_exact(80)
            .map(|w| goertzel(w, 8000, 2000.0))
            .collect();
        let max_2k = powers.iter().copied().fold(0.0, f32::max);
        assert!(
            max_2k < ABSENT,
            "channel {ch}: 2 kHz power {max_2k} reached a listener"
        );
        let k1 = samples
            .chunks_exact(80)
            .map(|w| goertzel(w, 8000, 1000.0))
            .fold(0.0, f32::max);
        assert!(k1 > PRESENT, "channel {ch}: no 1 kHz heard");
    }
    let (_, audit) = get_json(&live, "/v1/audit?action=call.listen", &live.compliance).await;
    let e = &audit["entries"][0];
    assert_eq!(
        (e["subject"].as_str(), e["reason"].as_str()),
        (Some(call), Some("quality check")),
        "{audit}"
    );
    live.stop().await;
}

/// Who may call what: `None` is no credentials. Every route of DESIGN.md section 5 that exists;
/// a new route is one line.
#[derive(Clone, Copy)]
enum Access {
    /// Bearer roles allowed.
    Roles(&'static [Role]),
    /// Any authenticated role.
    AnyRole,
    /// A webhook signature, not a bearer token: every bearer is refused.
    Signature,
}

const SUP_COMP: &[Role] = &[Role::Supervisor, Role::Compliance];
/// A WebSocket route is asked with a real handshake (`WS`), the others with plain HTTP.
const WS: &str = "WS";
const ROUTES: &[(&str, &str, Access)] = &[
    ("POST", "/v1/events", Access::Signature),
    (
        WS,
        "/v1/calls/CA-matrix/media",
        Access::Roles(&[Role::Telephony]),
    ),
    (
        "GET",
        "/v1/recordings?call_id=CA-matrix",
        Access::Roles(SUP_COMP),
    ),
    (
        "GET",
        "/v1/recordings?caller=01744676789",
        Access::Roles(SUP_COMP),
    ),
    (
        "GET",
        "/v1/recordings/0190f0c4-0000-7000-8000-000000000000",
        Access::Roles(SUP_COMP),
    ),
    (
        "GET",
        "/v1/recordings/0190f0c4-0000-7000-8000-000000000000/audio?reason=x",
        Access::Roles(SUP_COMP),
    ),
    ("POST", "/v1/exports", Access::Roles(SUP_COMP)),
    (
        "GET",
        "/v1/exports/0190f0c4-0000-7000-8000-000000000000",
        Access::Roles(SUP_COMP),
    ),
    (
        "GET",
        "/v1/exports/0190f0c4-0000-7000-8000-000000000000/bundle",
        Access::Roles(SUP_COMP),
    ),
    ("GET", "/v1/sars", Access::Roles(SUP_COMP)),
    ("POST", "/v1/sars/SAR-matrix/close", Access::Roles(SUP_COMP)),
    ("GET", "/v1/signing-key", Access::AnyRole),
    ("GET", "/v1/audit", Access::Roles(&[Role::Compliance])),
    ("GET", "/v1/audit/head", Access::Roles(&[Role::Compliance])),
    (
        WS,
        "/v1/calls/CA-matrix/listen?reason=x",
        Access::Roles(SUP_COMP),
    ),
    ("POST", "/v1/holds", Access::Roles(SUP_COMP)),
    ("GET", "/v1/holds", Access::Roles(SUP_COMP)),
    (
        "POST",
        "/v1/holds/CMP-matrix/release",
        Access::Roles(&[Role::Compliance]),
    ),
    (
        "DELETE",
        "/v1/recordings/0190f0c4-0000-7000-8000-000000000000?reason=x",
        Access::Roles(&[Role::Compliance]),
    ),
    (
        "POST",
        "/v1/recordings/0190f0c4-0000-7000-8000-000000000000/restrict",
        Access::Roles(&[Role::Compliance]),
    ),
    (
        "POST",
        "/v1/recordings/0190f0c4-0000-7000-8000-000000000000/unrestrict",
        Access::Roles(&[Role::Compliance]),
    ),
    (
        "POST",
        "/v1/recordings/0190f0c4-0000-7000-8000-000000000000/segments/0/excise",
        Access::Roles(&[Role::Compliance]),
    ),
    // the Twilio and AudioHook routes authenticate with the platforms' own signatures and are
    // covered by tests/twilio.rs and tests/audiohook.rs
];

/// One matrix request: plain HTTP with a `{}` body, or a WebSocket handshake (101 when upgraded).
async fn request(live: &Live, method: &str, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    if method != WS {
        return call_api(live, method, path, token, b"{}").await;
    }
    let mut req = format!("ws://{}{path}", live.public)
        .into_client_request()
        .expect("request");
    if let Some(t) = token {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    let tcp = TcpStream::connect(live.public).await.expect("connect");
    match tokio_tungstenite::client_async(req, tcp).await {
        Ok(_) => (101, Vec::new()),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            (r.status().as_u16(), r.body().clone().unwrap_or_default())
        }
        Err(e) => panic!("{path}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorisation_matrix_holds_for_every_route_and_role() {
    let live = Live::start("").await;
    let (_, ops) = add_token(&live, Role::Ops, "test-ops").await;
    let tokens = [
        (Role::Supervisor, live.supervisor.clone()),
        (Role::Compliance, live.compliance.clone()),
        (Role::Ops, ops),
        (Role::Telephony, live.telephony.clone()),
    ];
    let mut failures = Vec::new();
    for (method, path, access) in ROUTES {
        let (s, _) = request(&live, method, path, None).await;
        if s != 401 {
            failures.push(format!("{method} {path} without credentials: {s}"));
        }
        for (role, token) in &tokens {
            let (s, body) = request(&live, method, path, Some(token)).await;
            let ok = match access {
                Access::Signature => s == 401,
                Access::AnyRole => s != 401 && s != 403,
                Access::Roles(allowed) if allowed.contains(role) => s != 401 && s != 403,
                Access::Roles(_) => s == 403,
            };
            if !ok {
                failures.push(format!(
                    "{method} {path} as {role}: {s} {}",
                    String::from_utf8_lossy(&body)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // a revoked token is refused
    let (id, revoked) = add_token(&live, Role::Compliance, "test-revoked").await;
    let (s, _) = get_json(&live, "/v1/sars", &revoked).await;
    assert_eq!(s, 200);
    assert!(
        live.catalog
            .revoke_token(&id, live.now())
            .await
            .expect("revoke")
    );
    let (s, b) = get_json(&live, "/v1/sars", &revoked).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")));
    let (s, b) = get_json(&live, "/v1/sars", "cvt_not-a-token").await;
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")));
    live.stop().await;
}

// --- OIDC

const ISSUER: &str = "https://login.example.gov.uk";
const AUDIENCE: &str = "callvault";

fn pkcs8(seed: [u8; 32]) -> Vec<u8> {
    // PKCS #8 v1 for Ed25519 (RFC 8410): a fixed prefix, then the 32-byte seed
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    der
}

fn jwt(seed: [u8; 32], claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(&pkcs8(seed)),
    )
    .expect("sign")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_jwts_are_checked_for_signature_issuer_audience_and_time() {
    let seed = [7u8; 32];
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    let jwks = json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "kid": "k1", "use": "sig", "alg": "EdDSA",
        "x": URL_SAFE_NO_PAD.encode(public.as_bytes()),
    }]});
    let deployment = Deployment::new(&format!(
        "[auth.oidc]\njwks = \"jwks.json\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
         leeway = \"30s\"\nroles_claim = \"groups\"\n\
         [auth.oidc.roles]\n\"cv-supervisors\" = \"supervisor\"\n\"cv-dpo\" = \"compliance\"\n"
    ));
    std::fs::write(deployment.path("jwks.json"), jwks.to_string()).expect("write jwks");
    let live = Live::start_in(deployment).await;
    let now = live.now().timestamp();
    let claims = |groups: Value, exp: i64, iss: &str, aud: &str| json!({ "sub": "alice", "iss": iss, "aud": aud, "exp": exp, "iat": now, "groups": groups });
    let sup = jwt(
        seed,
        claims(
            json!(["cv-supervisors", "staff"]),
            now + 300,
            ISSUER,
            AUDIENCE,
        ),
    );
    let dpo = jwt(seed, claims(json!("cv-dpo"), now + 300, ISSUER, AUDIENCE));
    assert_eq!(get_json(&live, "/v1/sars", &sup).await.0, 200);
    assert_eq!(
        get_json(&live, "/v1/audit", &sup).await.0,
        403,
        "a supervisor may not read the audit"
    );
    let (s, audit) = get_json(&live, "/v1/audit", &dpo).await;
    assert_eq!(s, 200, "{audit}");
    // within the leeway an expired token still passes; past it, it does not
    let skewed = jwt(
        seed,
        claims(json!(["cv-supervisors"]), now - 10, ISSUER, AUDIENCE),
    );
    assert_eq!(get_json(&live, "/v1/sars", &skewed).await.0, 200);
    let refused = [
        (
            "expired",
            jwt(
                seed,
                claims(json!(["cv-supervisors"]), now - 120, ISSUER, AUDIENCE),
            ),
        ),
        (
            "wrongly signed",
            jwt(
                [8; 32],
                claims(json!(["cv-supervisors"]), now + 300, ISSUER, AUDIENCE),
            ),
        ),
        (
            "wrong audience",
            jwt(
                seed,
                claims(json!(["cv-supervisors"]), now + 300, ISSUER, "other"),
            ),
        ),
        (
            "wrong issuer",
            jwt(
                seed,
                claims(
                    json!(["cv-supervisors"]),
                    now + 300,
                    "https://evil",
                    AUDIENCE,
                ),
            ),
        ),
        (
            "no mapped role",
            jwt(seed, claims(json!(["staff"]), now + 300, ISSUER, AUDIENCE)),
        ),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (what, token) in refused {
        let (s, b) = get_json(&live, "/v1/sars", &token).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (401, Some("invalid_token")),
            "{what}: {b}"
        );
    }
    // a JWT's actor is its subject
    let (_, audit) = get_json(&live, "/v1/audit?actor=oidc:alice", &dpo).await;
    assert!(
        !audit["entries"].as_array().expect("entries").is_empty(),
        "{audit}"
    );
    live.stop().await;
}
