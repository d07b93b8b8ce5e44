//! Crash recovery, end to end with the built binary: 50 calls stream in real time, the daemon is
//! killed with SIGKILL mid-call, and a restart on the same state directory must lose no recording.
//! Every call's committed audio comes back sealed, uploaded, playable and accounted for in its
//! ledger; calls that had not committed anything yet are not left `live` for ever either.

mod common;

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use callvault::domain::{Codec, MediaFormat};
use callvault::ingest::webhook::WebhookSecret;
use chrono::{DateTime, Months, Utc};
use common::audio::{decode_wav, goertzel, tone_spans, tones};
use common::{Deployment, exchange, wait_for_200};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

/// Concurrent calls streaming when the daemon is killed.
const CALLS: usize = 50;
/// Audio each call streams before the kill.
const STREAM: Duration = Duration::from_secs(8);
/// One 20 ms frame of PCMU stereo at 8 kHz.
const FRAME_BYTES: usize = 320;
const FRAME_MS: u64 = 20;
/// The look-back window: `pci.lookback` (3 s) plus `pci.guard` (0.5 s), the defaults.
const LOOKBACK_MS: u64 = 3500;
/// `recorder.spool_sync`, the default.
const SPOOL_SYNC_MS: u64 = 200;
/// How long audio may wait in its socket's batch and for its call's next step before the look-back
/// window starts counting for it (the sink's 100 ms batch, the call's 100 ms tick).
const BATCH_MS: u64 = 200;
/// One sealed chunk: 16 KiB of PCMU stereo (16 000 bytes a second).
const CHUNK_MS: u64 = 16_384 * 1000 / 16_000;
/// The agent's channel carries this tone in every call.
const AGENT_HZ: f64 = 2500.0;

const FORMAT: MediaFormat = MediaFormat {
    codec: Codec::Pcmu,
    sample_rate: 8000,
    channels: 2,
};

/// The caller's tone of call `i`: distinct per call.
fn caller_hz(i: usize) -> f64 {
    300.0 + 20.0 * i as f64
}

fn call_id(i: usize) -> String {
    format!("crash-{i:02}")
}

/// A running `callvault serve`, killed (SIGKILL) and reaped when dropped, so that a failed
/// assertion never leaves a daemon behind.
struct Serve {
    child: Child,
    public: SocketAddr,
    admin: SocketAddr,
}

impl Serve {
    /// Starts `serve` on two free loopback ports and waits for `/readyz`.
    async fn start(d: &Deployment, log: &str) -> Serve {
        Self::start_with(d, log, &[]).await
    }

    /// Starts `serve` with `--set` overrides.
    async fn start_with(d: &Deployment, log: &str, sets: &[&str]) -> Serve {
        let (public, admin) = (free_port(), free_port());
        let log = std::fs::File::create(d.path(log)).expect("create the daemon's log file");
        let child = Command::new(env!("CARGO_BIN_EXE_callvault"))
            .arg("--config")
            .arg(&d.config)
            .arg("--set")
            .arg(format!("public.listen={public}"))
            .arg("--set")
            .arg(format!("admin.listen={admin}"))
            .args(sets.iter().flat_map(|s| ["--set", s]))
            .arg("serve")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn callvault serve");
        let serve = Serve {
            child,
            public,
            admin,
        };
        wait_for_200(serve.admin, "/readyz", Duration::from_secs(30)).await;
        serve
    }

    /// SIGTERM: a graceful stop, waited for.
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let exit = self.child.wait().expect("reap the stopped daemon");
        assert!(
            exit.success(),
            "the daemon stops cleanly on SIGTERM: {exit:?}"
        );
    }

    /// SIGKILL: no shutdown, no drain, no last sync.
    fn kill_9(&mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL failed");
        let exit = self.child.wait().expect("reap the killed daemon");
        assert_eq!(
            exit.signal(),
            Some(9),
            "the daemon died of SIGKILL: {exit:?}"
        );
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

/// A loopback port free now: bound to port 0, then released.
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("a bound listener has an address")
}

fn cli(d: &Deployment, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--config")
        .arg(&d.config)
        .args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("USER", "tester")
        .output()
        .expect("run callvault")
}

fn create_token(d: &Deployment, role: &str) -> String {
    let o = cli(d, &["tokens", "create", "--role", role, "--name", role]);
    assert!(
        o.status.success(),
        "tokens create --role {role}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let token = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(token.starts_with("cvt_"), "a token is printed: {token}");
    token
}

/// Posts a signed native event.
async fn post_event(public: SocketAddr, webhook: &WebhookSecret, body: &Value) -> u16 {
    let id = format!("msg_{}", body["id"].as_str().expect("an event id"));
    let body = body.to_string();
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
    status
}

async fn call_started(public: SocketAddr, webhook: &WebhookSecret, call: &str) {
    let event = json!({
        "id": format!("evt-{call}-started"),
        "type": "call.started",
        "call_id": call,
        "at": Utc::now().to_rfc3339(),
        "line": "+441744676000",
        "caller": "+447700900123",
        "agent": "agent-7",
    });
    let status = post_event(public, webhook, &event).await;
    assert_eq!(status, 200, "call.started of {call} accepted");
}

type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens `call`'s media socket and sends the PCMU stereo start frame.
async fn open_media(public: SocketAddr, token: &str, call: &str) -> Socket {
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
        .expect("send the start frame");
    ws
}

/// Streams `audio` in real time (20 ms frames on a tokio interval) until `stop`; returns the
/// socket, still open, and how many frames were sent.
async fn stream_until(mut ws: Socket, audio: Vec<u8>, stop: CancellationToken) -> (Socket, u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(FRAME_MS));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut sent = 0u64;
    for frame in audio.chunks_exact(FRAME_BYTES) {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if stop.is_cancelled() {
            break;
        }
        ws.send(Message::Binary(frame.to_vec().into()))
            .await
            .expect("send an audio frame while the daemon runs");
        sent += 1;
    }
    (ws, sent)
}

async fn get(public: SocketAddr, path: &str, token: &str) -> (u16, Vec<u8>) {
    let stream = TcpStream::connect(public).await.expect("connect");
    let auth = format!("Bearer {token}");
    let (status, _, body) = exchange(stream, "GET", path, &[("Authorization", &auth)], b"").await;
    (status, body)
}

async fn get_json(public: SocketAddr, path: &str, token: &str) -> Value {
    let (status, body) = get(public, path, token).await;
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).expect("a JSON body")
}

/// The id of `call`'s recording.
async fn recording_id(public: SocketAddr, token: &str, call: &str) -> String {
    let found = get_json(public, &format!("/v1/recordings?call_id={call}"), token).await;
    found["recordings"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{call} has a recording: {found}"))
        .to_owned()
}

/// Whether a recording is sealed with every segment stored (uploaded, its digest known).
fn settled(detail: &Value) -> bool {
    detail["status"] == "sealed"
        && detail["segments"].as_array().is_some_and(|segs| {
            segs.iter()
                .all(|s| s["status"] == "stored" && s["sha256"].is_string())
        })
}

/// Every file left under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.expect("read a spool entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn time(v: &Value, what: &str) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("{what} is a timestamp, got {v}"))
        .with_timezone(&Utc)
}

fn ledger_of<'a>(detail: &'a Value, kind: &str) -> Vec<&'a Value> {
    detail["ledger"]
        .as_array()
        .expect("a ledger")
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

fn stats(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[0], xs[xs.len() / 2], xs[xs.len() - 1])
}

/// Checks that the recording is no longer live and has its end and expiry.
fn assert_closed(detail: &Value, call: &str) {
    assert_eq!(detail["status"], "sealed", "{call} is sealed: {detail}");
    let ended = time(&detail["ended_at"], "ended_at");
    let expires = time(&detail["expires_at"], "expires_at");
    let want = ended
        .checked_add_months(Months::new(3))
        .expect("representable");
    assert_eq!(
        expires, want,
        "{call} expires at its end plus the standard policy's 3 months"
    );
    let interrupted = ledger_of(detail, "interrupted");
    assert_eq!(
        interrupted.len(),
        1,
        "{call}: one `interrupted` ledger entry: {}",
        detail["ledger"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_call_loses_no_recording() {
    let t0 = Instant::now();
    // the restart takes every live call back for idle_seal, for its platform to reconnect; these
    // do not, and are sealed then
    let d = Deployment::new("[recorder]\nidle_seal = \"5s\"\n");
    let mut serve = Serve::start(&d, "serve-1.log").await;
    let public = serve.public;
    let telephony = create_token(&d, "telephony");
    let supervisor = create_token(&d, "supervisor");
    let config = d.load(&[]);
    let webhook = WebhookSecret::from_secret(
        &config
            .secrets
            .webhook
            .read()
            .expect("serve created the webhook secret"),
    )
    .expect("a whsec_ secret");

    // 50 calls: call.started, then the media socket, then real-time audio until stopped
    let stop = CancellationToken::new();
    let (began_tx, mut began_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut streams = Vec::new();
    for i in 0..CALLS {
        let (webhook, telephony, stop) = (webhook.clone(), telephony.clone(), stop.clone());
        let began_tx = began_tx.clone();
        let audio = tones(
            FORMAT,
            caller_hz(i),
            AGENT_HZ,
            STREAM.as_millis() as u64 + 4000,
        );
        streams.push(tokio::spawn(async move {
            let call = call_id(i);
            call_started(public, &webhook, &call).await;
            let ws = open_media(public, &telephony, &call).await;
            began_tx
                .send(Instant::now())
                .expect("the test waits for every start");
            stream_until(ws, audio, stop).await
        }));
    }
    // two calls that had committed nothing when the daemon died: one without any media, one that
    // streamed for less than the look-back window
    call_started(public, &webhook, "crash-idle").await;
    let mut latest = None;
    for _ in 0..CALLS {
        let began = began_rx.recv().await.expect("every call starts streaming");
        latest = latest.max(Some(began));
    }
    let latest = latest.expect("calls started");
    tokio::time::sleep_until(latest + STREAM - Duration::from_secs(1)).await;
    call_started(public, &webhook, "crash-young").await;
    let young_ws = open_media(public, &telephony, "crash-young").await;
    let young = tokio::spawn(stream_until(
        young_ws,
        tones(FORMAT, 3000.0, AGENT_HZ, 5000),
        stop.clone(),
    ));

    // every call has streamed STREAM: stop them all and kill the daemon at once
    tokio::time::sleep_until(latest + STREAM).await;
    stop.cancel();
    serve.kill_9();
    let mut sockets = Vec::new();
    let mut sent_ms = Vec::new();
    for s in streams {
        let (ws, frames) = s.await.expect("a stream task does not panic");
        sent_ms.push(frames * FRAME_MS);
        sockets.push(ws);
    }
    let (young_ws, young_frames) = young.await.expect("the young stream does not panic");
    assert!(
        young_frames * FRAME_MS < LOOKBACK_MS,
        "the young call streamed less than the look-back window"
    );
    drop(young_ws);
    drop(sockets);
    let min_sent = *sent_ms.iter().min().expect("calls");
    assert!(
        min_sent >= STREAM.as_millis() as u64 - 200,
        "every call streamed about {STREAM:?} before the kill; the least was {min_sent} ms"
    );

    // the crash left open segments behind: a `.part` per call, nothing sealed
    let spool = d.path("state/spool");
    let parts = files_under(&spool)
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".cva.part"))
        .count();
    assert_eq!(
        parts, CALLS,
        "one open segment per call was left on the spool"
    );

    // restart on the same state directory
    let serve = Serve::start(&d, "serve-2.log").await;
    let public = serve.public;
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..CALLS {
            ids.push(recording_id(public, &supervisor, &call_id(i)).await);
        }
        ids
    };
    // every recording sealed and every segment uploaded within a few seconds
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut details: Vec<Value> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        loop {
            let detail = get_json(public, &format!("/v1/recordings/{id}"), &supervisor).await;
            if settled(&detail) {
                details.push(detail);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} sealed and uploaded within a few seconds of the restart: {detail}",
                call_id(i)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let left = files_under(&spool);
    assert!(
        left.iter().all(|p| {
            let name = p.to_string_lossy();
            !name.ends_with(".part") && !name.ends_with(".cva")
        }),
        "no spool file is left after the uploads: {left:?}"
    );

    let floor = |sent: u64| sent.saturating_sub(LOOKBACK_MS + SPOOL_SYNC_MS + CHUNK_MS + BATCH_MS);
    let (mut recovered_s, mut lost_s, mut torn) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (id, detail)) in ids.iter().zip(&details).enumerate() {
        let call = call_id(i);
        assert_closed(detail, &call);
        let segments = detail["segments"].as_array().expect("segments");
        assert!(!segments.is_empty(), "{call} kept a segment");
        // the ledger names the gap: what each torn segment kept and what it lost
        let crash = ledger_of(detail, "crash_recovery");
        assert_eq!(crash.len(), 1, "{call}: one segment was open at the crash");
        let c = &crash[0]["details"];
        let recovered_ms = c["recovered_ms"].as_u64().expect("recovered_ms");
        let torn_bytes = c["torn_bytes"].as_u64().expect("torn_bytes");
        let seg = segments
            .iter()
            .find(|s| s["segment"] == c["segment"])
            .expect("the recovered segment is listed");
        let seg_ms = seg["media_end_ms"].as_u64().expect("end")
            - seg["media_start_ms"].as_u64().expect("start");
        assert_eq!(
            seg_ms, recovered_ms,
            "{call}: the segment spans what was recovered"
        );
        let interrupted = &ledger_of(detail, "interrupted")[0]["details"];
        assert_eq!(
            interrupted["media_end_ms"], seg["media_end_ms"],
            "{call}: `interrupted` says where the audio stops"
        );
        assert_eq!(detail["duration_ms"].as_u64(), Some(recovered_ms));

        // playback: decodes, as long as the guarantee says, with this call's tone in it
        let (status, wav) = get(
            public,
            &format!("/v1/recordings/{id}/audio?reason=test&format=pcm16"),
            &supervisor,
        )
        .await;
        assert_eq!(
            status,
            200,
            "{call} plays: {}",
            String::from_utf8_lossy(&wav)
        );
        let decoded = decode_wav(&wav);
        assert_eq!((decoded.rate, decoded.channels), (8000, 2));
        let sent = sent_ms[i];
        let played = decoded.duration_ms();
        assert!(
            played >= floor(sent),
            "{call}: {played} ms played of {sent} ms sent; at least {} ms must survive a crash",
            floor(sent)
        );
        assert!(played <= sent, "{call}: no more audio than was sent");
        assert!(
            played.abs_diff(recovered_ms) <= FRAME_MS,
            "{call}: playback is the recovered audio"
        );
        let hz = caller_hz(i);
        let heard: u64 = tone_spans(&decoded.samples[0], decoded.rate, hz, 100, 0.06)
            .iter()
            .map(|r| r.end - r.start)
            .sum();
        assert!(
            heard + 100 >= played,
            "{call}: its {hz} Hz tone throughout its {played} ms (heard for {heard} ms)"
        );
        let neighbour = if i == 0 { hz + 20.0 } else { hz - 20.0 };
        assert!(
            goertzel(&decoded.samples[0], decoded.rate, neighbour) < 0.005,
            "{call}: no other call's tone in it"
        );
        assert!(
            goertzel(&decoded.samples[1], decoded.rate, AGENT_HZ) > 0.06
                && goertzel(&decoded.samples[1], decoded.rate, hz) < 0.005,
            "{call}: the agent's channel is the agent's"
        );
        recovered_s.push(recovered_ms as f64 / 1000.0);
        lost_s.push(sent.saturating_sub(recovered_ms) as f64 / 1000.0);
        torn.push(torn_bytes as f64);
    }

    // calls that had committed nothing are not left live
    for call in ["crash-idle", "crash-young"] {
        let id = recording_id(public, &supervisor, call).await;
        let detail = get_json(public, &format!("/v1/recordings/{id}"), &supervisor).await;
        assert_closed(&detail, call);
        assert_eq!(detail["duration_ms"], 0, "{call} had no committed audio");
    }

    let o = cli(&d, &["audit", "verify"]);
    assert!(
        o.status.success(),
        "audit verify after the crash: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    let (rmin, rmed, rmax) = stats(recovered_s);
    let (lmin, lmed, lmax) = stats(lost_s);
    let (tmin, tmed, tmax) = stats(torn);
    let (smin, smed, smax) = stats(sent_ms.iter().map(|ms| *ms as f64 / 1000.0).collect());
    println!(
        "crash recovery of {CALLS} calls killed with SIGKILL mid-call:\n  \
         sent s:      min {smin:.3} / median {smed:.3} / max {smax:.3}\n  \
         recovered s: min {rmin:.3} / median {rmed:.3} / max {rmax:.3}\n  \
         lost s:      min {lmin:.3} / median {lmed:.3} / max {lmax:.3}\n  \
         torn bytes:  min {tmin} / median {tmed} / max {tmax}\n  \
         guaranteed:  sent - {LOOKBACK_MS} ms look-back - {SPOOL_SYNC_MS} ms sync - {CHUNK_MS} ms chunk - {BATCH_MS} ms batch\n  \
         test took {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    drop(serve);
}

/// How the daemon goes away mid-call in [`a_restart_or_a_crash_mid_call_is_continued_by_the_reconnect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Term,
    Kill,
}

/// Streams the second part of a call after the restart: its own tone on the caller's channel.
fn second_hz(i: usize) -> f64 {
    caller_hz(i) + 1500.0
}

/// 50 calls stream; the daemon is stopped (SIGTERM) or killed (SIGKILL) and started again; every
/// platform reconnects its call and streams on. Each recording continues: one recording per call,
/// sealed, with the audio before and after, and one `gap` in its ledger naming the cause and its
/// length, which playback renders in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_or_a_crash_mid_call_is_continued_by_the_reconnect() {
    for how in [Stop::Term, Stop::Kill] {
        restart_and_reconnect(how).await;
    }
}

async fn restart_and_reconnect(how: Stop) {
    const BEFORE: Duration = Duration::from_secs(5);
    const AFTER: Duration = Duration::from_secs(4);
    let d = Deployment::new("[recorder]\nidle_seal = \"30s\"\n");
    let grace = ["shutdown_grace=15s"];
    let mut serve = Serve::start_with(&d, "serve-1.log", &grace).await;
    let telephony = create_token(&d, "telephony");
    let supervisor = create_token(&d, "supervisor");
    let webhook = WebhookSecret::from_secret(
        &d.load(&[])
            .secrets
            .webhook
            .read()
            .expect("serve created the webhook secret"),
    )
    .expect("a whsec_ secret");
    let call = |i: usize| format!("restart-{how:?}-{i:02}");

    // the first part of every call
    let stop = CancellationToken::new();
    let mut streams = Vec::new();
    for i in 0..CALLS {
        let (webhook, telephony, stop, call) =
            (webhook.clone(), telephony.clone(), stop.clone(), call(i));
        let public = serve.public;
        let audio = tones(
            FORMAT,
            caller_hz(i),
            AGENT_HZ,
            BEFORE.as_millis() as u64 + 4000,
        );
        streams.push(tokio::spawn(async move {
            call_started(public, &webhook, &call).await;
            let ws = open_media(public, &telephony, &call).await;
            stream_until(ws, audio, stop).await
        }));
    }
    tokio::time::sleep(BEFORE).await;
    stop.cancel();
    let down = Instant::now();
    match how {
        Stop::Term => serve.terminate(),
        Stop::Kill => serve.kill_9(),
    }
    let mut before_ms = Vec::new();
    for s in streams {
        let (ws, frames) = s.await.expect("a stream task does not panic");
        before_ms.push(frames * FRAME_MS);
        drop(ws);
    }

    // the restart, and every platform reconnecting its call
    let serve = Serve::start_with(&d, "serve-2.log", &grace).await;
    let public = serve.public;
    let downtime_ms = down.elapsed().as_millis() as u64;
    let stop = CancellationToken::new();
    let mut streams = Vec::new();
    for i in 0..CALLS {
        let (telephony, stop, call) = (telephony.clone(), stop.clone(), call(i));
        let audio = tones(
            FORMAT,
            second_hz(i),
            AGENT_HZ,
            AFTER.as_millis() as u64 + 4000,
        );
        streams.push(tokio::spawn(async move {
            let ws = open_media(public, &telephony, &call).await;
            stream_until(ws, audio, stop).await
        }));
    }
    tokio::time::sleep(AFTER).await;
    stop.cancel();
    let mut after_ms = Vec::new();
    for (i, s) in streams.into_iter().enumerate() {
        let (mut ws, frames) = s.await.expect("a stream task does not panic");
        after_ms.push(frames * FRAME_MS);
        ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
            .await
            .expect("stop");
        let ended = json!({
            "id": format!("evt-{}-ended", call(i)), "type": "call.ended", "call_id": call(i),
            "at": Utc::now().to_rfc3339(),
        });
        assert_eq!(post_event(public, &webhook, &ended).await, 200);
    }

    // every recording continued, sealed, and plays end to end with one named gap
    let deadline = Instant::now() + Duration::from_secs(30);
    let cause = match how {
        Stop::Term => "restart",
        Stop::Kill => "crash",
    };
    for i in 0..CALLS {
        let call = call(i);
        let found = get_json(
            public,
            &format!("/v1/recordings?call_id={call}"),
            &supervisor,
        )
        .await;
        assert_eq!(
            found["recordings"].as_array().map(Vec::len),
            Some(1),
            "{call}: one call, one recording: {found}"
        );
        let id = recording_id(public, &supervisor, &call).await;
        let detail = loop {
            let detail = get_json(public, &format!("/v1/recordings/{id}"), &supervisor).await;
            if settled(&detail) {
                break detail;
            }
            assert!(Instant::now() < deadline, "{call} sealed in time: {detail}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let gaps = ledger_of(&detail, "gap");
        assert_eq!(gaps.len(), 1, "{call}: one gap: {}", detail["ledger"]);
        let gap = &gaps[0]["details"];
        assert_eq!(gap["cause"], cause, "{call}: {gap}");
        let gap_ms = gap["length_ms"].as_u64().expect("length");
        let gap_at = gap["at_ms"].as_u64().expect("at");
        // the gap runs from the last audio kept to the first after the reconnect
        assert!(
            gap_ms <= downtime_ms + LOOKBACK_MS + SPOOL_SYNC_MS + CHUNK_MS + BATCH_MS + 1000,
            "{call}: gap {gap_ms} ms for {downtime_ms} ms down"
        );
        let (status, wav) = get(
            public,
            &format!("/v1/recordings/{id}/audio?reason=test&format=pcm16"),
            &supervisor,
        )
        .await;
        assert_eq!(status, 200, "{call} plays");
        let decoded = decode_wav(&wav);
        let first = tone_spans(&decoded.samples[0], decoded.rate, caller_hz(i), 100, 0.05);
        let second = tone_spans(&decoded.samples[0], decoded.rate, second_hz(i), 100, 0.05);
        let kept =
            |spans: &[std::ops::Range<u64>]| spans.iter().map(|r| r.end - r.start).sum::<u64>();
        let floor = match how {
            // a graceful stop commits everything it received
            Stop::Term => before_ms[i].saturating_sub(300),
            // a crash loses at most the look-back window, the last sync and the open chunk
            Stop::Kill => {
                before_ms[i].saturating_sub(LOOKBACK_MS + SPOOL_SYNC_MS + CHUNK_MS + BATCH_MS)
            }
        };
        assert!(
            kept(&first) >= floor.saturating_sub(200),
            "{call}: {} ms of the first part kept, want at least {floor}: {first:?}",
            kept(&first)
        );
        assert!(
            kept(&second) + 400 >= after_ms[i],
            "{call}: {} ms of the second part kept of {}: {second:?}",
            kept(&second),
            after_ms[i]
        );
        // in order: the first part, the gap where the ledger says, the second part (playback
        // starts at the first segment; the ledger counts from the start of the call)
        let origin = detail["segments"][0]["media_start_ms"]
            .as_u64()
            .expect("start");
        let gap_at = gap_at - origin;
        let first_end = first.last().map_or(0, |r| r.end);
        let second_start = second.first().map_or(u64::MAX, |r| r.start);
        assert!(
            first_end <= gap_at + 100 && second_start + 100 >= gap_at + gap_ms,
            "{call}: first part ends {first_end}, gap {gap_at}+{gap_ms}, second starts {second_start}: {} {}",
            detail["segments"],
            detail["ledger"]
        );
    }
    drop(serve);
}
