//! SIPREC (RFC 7866): sipp (Debian's `sip-tester`) plays the recording client, an SBC that forks
//! each call to callvault as a SIP session with two RTP streams and RFC 7865 metadata; the
//! scenarios are in `tests/siprec/`, the RTP captures in `fixtures/siprec/` (made by its script).
//! The daemon runs in-process on the system clock (RTP is real time), and each test checks what a
//! user depends on: the stored audio (both channels, the right length, gaps and pauses where they
//! belong), the ledger (metadata kept sealed), and the SIP answers.
//!
//! sipp replays RTP through a raw socket, so these tests need root or CAP_NET_RAW; under
//! `tests/run.sh` (CI=true) a missing sipp fails them rather than skipping.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use callvault::catalog::{Catalog, LedgerEntry, RecordingRow, RecordingStatus, SegmentStatus};
use callvault::domain::{CallId, Role, SystemClock};
use callvault::server::Daemon;
use callvault::vault::CallerKeys;
use common::Deployment;
use common::audio::{Decoded, decode_wav, goertzel};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A daemon with the SIPREC server on, on the system clock.
struct Srs {
    _deployment: Deployment,
    sip: u16,
    public: SocketAddr,
    catalog: Arc<dyn Catalog>,
    callers: CallerKeys,
    supervisor: String,
    webhook: callvault::ingest::webhook::WebhookSecret,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<Result<(), callvault::server::StartError>>,
}

/// A port free on both UDP and TCP on loopback.
fn free_sip_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A range of 400 RTP ports (100 sessions) no other test of this binary uses.
fn rtp_range() -> (u16, u16) {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 16;
    let base = 20_000 + ((std::process::id() % 5) as u16 * 16 + n) * 400;
    (base, base + 399)
}

fn sipp_installed() -> bool {
    let found = Command::new("sipp").arg("-v").output().is_ok();
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("sipp (Debian's sip-tester) is missing: tests/run.sh installs it");
    }
    if !found {
        eprintln!("sipp is not installed: skipping (tests/run.sh installs it)");
    }
    found
}

impl Srs {
    async fn start(extra: &str) -> Srs {
        let sip = free_sip_port();
        let (a, b) = rtp_range();
        let deployment = Deployment::new(&format!(
            "[siprec]\nudp = \"127.0.0.1:{sip}\"\ntcp = \"127.0.0.1:{sip}\"\nrtp_ports = \"{a}-{b}\"\n\
             call_id = [\"element:ucid\", \"session\", \"call-id\"]\n{extra}"
        ));
        let config = deployment.load(&[]);
        let daemon = Daemon::start(config, Arc::new(SystemClock))
            .await
            .expect("daemon starts");
        let webhook = callvault::ingest::webhook::WebhookSecret::from_secret(
            &daemon
                .shared()
                .config
                .secrets
                .webhook
                .read()
                .expect("secret"),
        )
        .expect("whsec");
        let public = daemon.public_addr();
        let catalog = Arc::clone(&daemon.shared().catalog);
        let callers = daemon.shared().callers.clone();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(daemon.run(shutdown.clone()));
        let supervisor = common::live::token(catalog.as_ref(), Role::Supervisor).await;
        // the sip listener binds as the daemon starts running
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", sip)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "siprec tcp listener not up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Srs {
            _deployment: deployment,
            sip,
            public,
            catalog,
            callers,
            supervisor,
            webhook,
            shutdown,
            running,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.await.expect("no panic").expect("clean stop");
    }

    /// Runs a sipp scenario against the server; returns its exit status and output.
    async fn sipp(&self, scenario: &str, args: &[&str]) -> (bool, String) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let local = free_sip_port();
        let mut cmd = Command::new("sipp");
        cmd.current_dir(&root)
            .arg("-sf")
            .arg(root.join("tests/siprec").join(scenario))
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin"])
            .args(["-p", &local.to_string()])
            .args(["-timeout", "60s", "-timeout_error", "-max_retrans", "3"])
            .args(args)
            .arg(format!("127.0.0.1:{}", self.sip));
        // sipp's own -timeout bounds it; the blocking wait runs off the runtime's workers
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("sipp task")
            .expect("sipp runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Posts a signed native event of `kind` for `call`, at now.
    async fn event(&self, call: &str, kind: &str) -> u16 {
        let now = chrono::Utc::now();
        let id = format!("evt-{call}-{kind}-{}", now.timestamp_micros());
        let body =
            serde_json::json!({ "id": id, "type": kind, "call_id": call, "at": now.to_rfc3339() })
                .to_string();
        let sig = self.webhook.sign(&id, now.timestamp(), body.as_bytes());
        let stream = TcpStream::connect(self.public).await.expect("connect");
        let ts = now.timestamp().to_string();
        let headers = [
            ("Content-Type", "application/json"),
            ("webhook-id", id.as_str()),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", sig.as_str()),
        ];
        common::exchange(stream, "POST", "/v1/events", &headers, body.as_bytes())
            .await
            .0
    }

    async fn recording(&self, call: &str) -> Option<RecordingRow> {
        let id: CallId = call.parse().expect("call id");
        self.catalog.recording_by_call(&id).await.expect("catalog")
    }

    /// Waits until `call`'s recording is sealed and uploaded.
    async fn sealed(&self, call: &str) -> RecordingRow {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(r) = self.recording(call).await
                && r.status != RecordingStatus::Live
            {
                let segs = self.catalog.segments(r.id).await.expect("segments");
                if segs.iter().all(|s| s.status != SegmentStatus::Spooled) {
                    return r;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{call} not sealed and uploaded in time"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn play(&self, r: &RecordingRow) -> Decoded {
        let stream = TcpStream::connect(self.public).await.expect("connect");
        let auth = format!("Bearer {}", self.supervisor);
        let (status, _, body) = common::exchange(
            stream,
            "GET",
            &format!("/v1/recordings/{}/audio?reason=test&format=pcm16", r.id),
            &[("Authorization", &auth)],
            b"",
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        decode_wav(&body)
    }

    async fn ledger(&self, r: &RecordingRow) -> Vec<LedgerEntry> {
        self.catalog.ledger(r.id).await.expect("ledger")
    }
}

fn details(e: &LedgerEntry) -> Value {
    serde_json::from_str(&e.details).expect("details are json")
}

/// Power of `hz` in channel `ch` over `[from, to)` ms: about 0.03 for the fixtures' tones
/// (amplitude 8000 of 32768).
fn energy(d: &Decoded, ch: usize, hz: f64, from: u64, to: u64) -> f32 {
    goertzel(d.window(ch, from..to), d.rate, hz)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_udp_session_records_both_channels_and_keeps_its_metadata_sealed() {
    if !sipp_installed() {
        return;
    }
    let srs = Srs::start("").await;
    let (ok, out) = srs
        .sipp(
            "record.xml",
            &["-key", "ucid", "00001002161640012345", "-m", "1"],
        )
        .await;
    assert!(ok, "sipp failed:\n{out}");
    let r = srs.sealed("00001002161640012345-1").await;
    // the caller's number from the metadata is kept only sealed and tagged
    assert!(r.caller_tag.is_some() && r.caller_sealed.is_some());
    let d = srs.play(&r).await;
    assert_eq!(d.channels, 2);
    let secs = d.duration_ms() as f64 / 1000.0;
    assert!((1.8..=2.3).contains(&secs), "2 s recorded, got {secs}");
    // caller (label 1) on the first channel at 1000 Hz, agent (label 2) on the second at 1500 Hz
    assert!(energy(&d, 0, 1000.0, 100, 1800) > 0.02, "caller tone");
    assert!(energy(&d, 1, 1500.0, 100, 1800) > 0.02, "agent tone");
    assert!(
        energy(&d, 0, 1500.0, 100, 1800) < 0.001,
        "no agent on the caller's channel"
    );
    assert!(
        energy(&d, 1, 1000.0, 100, 1800) < 0.001,
        "no caller on the agent's channel"
    );
    let ledger = srs.ledger(&r).await;
    let session = ledger
        .iter()
        .find(|e| e.kind == "siprec.session")
        .expect("session noted");
    let s = details(session);
    assert_eq!(s["call_id_from"], "metadata element");
    assert_eq!(s["metadata"], "present");
    assert_eq!(s["streams"][0]["label"], "1");
    assert_eq!(s["streams"][0]["channel"], "caller");
    let md = ledger
        .iter()
        .find(|e| e.kind == "siprec.metadata")
        .expect("metadata kept");
    let m = details(md);
    assert!(!md.details.contains("441744676789") && !md.details.contains("Agent 42"));
    let notes = srs.catalog.sealed_notes(r.id).await.expect("notes");
    let note = notes
        .iter()
        .find(|n| n.seq == md.seq)
        .expect("sealed beside its entry");
    let xml = srs.callers.unseal_note(r.id, &note.sealed).expect("opens");
    let xml = String::from_utf8(xml.to_vec()).expect("utf-8");
    assert!(
        xml.contains("sip:+441744676789@pstn.example.gov.uk")
            && xml.contains("<avaya:ucid>00001002161640012345-1</avaya:ucid>")
    );
    assert_eq!(m["participants"], 2);
    srs.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn options_pings_are_answered_over_udp_and_tcp() {
    if !sipp_installed() {
        return;
    }
    let srs = Srs::start("").await;
    for transport in ["u1", "t1"] {
        let (ok, out) = srs.sipp("options.xml", &["-t", transport, "-m", "3"]).await;
        assert!(ok, "sipp {transport} failed:\n{out}");
    }
    srs.stop().await;
}

/// Checks a recording of `record.xml`: both channels, each its own tone, `secs` long.
async fn check_two_tones(
    srs: &Srs,
    r: &RecordingRow,
    secs: std::ops::RangeInclusive<f64>,
) -> Decoded {
    let d = srs.play(r).await;
    assert_eq!(d.channels, 2);
    let got = d.duration_ms() as f64 / 1000.0;
    assert!(secs.contains(&got), "{secs:?} s recorded, got {got}");
    assert!(energy(&d, 0, 1000.0, 100, 1500) > 0.02, "caller tone");
    assert!(energy(&d, 1, 1500.0, 100, 1500) > 0.02, "agent tone");
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_invite_over_tcp_records() {
    if !sipp_installed() {
        return;
    }
    let srs = Srs::start("").await;
    let size = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/siprec/record.xml"),
    )
    .expect("scenario")
    .len();
    assert!(size > 3000, "the invite is well over 1,300 bytes");
    let (ok, out) = srs
        .sipp(
            "record.xml",
            &["-t", "t1", "-key", "ucid", "tcp-call", "-m", "1"],
        )
        .await;
    assert!(ok, "sipp failed:\n{out}");
    let r = srs.sealed("tcp-call-1").await;
    check_two_tones(&srs, &r, 1.8..=2.3).await;
    let ledger = srs.ledger(&r).await;
    let s = details(
        ledger
            .iter()
            .find(|e| e.kind == "siprec.session")
            .expect("noted"),
    );
    assert_eq!(s["transport"], "TCP");
    srs.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_re_invite_with_a_inactive_pauses_and_resumes_and_a_metadata_update_is_kept() {
    if !sipp_installed() {
        return;
    }
    // a short call: capture resumes pci.max_latency (1 s by default, 0.2 s here) after the resume
    let srs = Srs::start("[pci]\nmax_latency = \"200ms\"\n").await;
    let (ok, out) = srs
        .sipp("pause.xml", &["-key", "ucid", "paused-call", "-m", "1"])
        .await;
    assert!(ok, "sipp failed:\n{out}");
    let r = srs.sealed("paused-call-1").await;
    let d = srs.play(&r).await;
    let total = d.duration_ms();
    let ledger = srs.ledger(&r).await;
    let kinds: Vec<&str> = ledger.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"pause") && kinds.contains(&"resume"),
        "{kinds:?}"
    );

    // 2 s of tones (the last half second cut by the pause's guard), the pause rendered, 2 s more
    assert!((4300..=5800).contains(&total), "{total} ms");
    for ch in 0..2 {
        let hz = [1000.0, 1500.0][ch];
        assert!(
            energy(&d, ch, hz, 100, 1300) > 0.02,
            "channel {ch} before the pause"
        );
        assert!(
            energy(&d, ch, hz, total - 1700, total - 200) > 0.02,
            "channel {ch} after the resume"
        );
        assert!(
            energy(&d, ch, hz, 2000, 2900) < 0.001,
            "channel {ch} silent in the pause"
        );
    }
    let docs: Vec<Value> = ledger
        .iter()
        .filter(|e| e.kind == "siprec.metadata")
        .map(details)
        .collect();
    assert_eq!(docs.len(), 2, "the first metadata and its update");
    assert_eq!(docs[1]["datamode"], "partial");
    assert_eq!(docs[1]["document"], 2);
    let notes = srs.catalog.sealed_notes(r.id).await.expect("notes");
    assert_eq!(notes.len(), 2);
    let xml = srs
        .callers
        .unseal_note(r.id, &notes[1].sealed)
        .expect("opens");
    assert!(String::from_utf8_lossy(&xml).contains("sip:supervisor7@cc.example.gov.uk"));
    srs.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_before_the_answer_records_nothing() {
    if !sipp_installed() {
        return;
    }
    let srs = Srs::start("answer_delay = \"3s\"\n").await;
    let (ok, out) = srs
        .sipp("cancel.xml", &["-key", "ucid", "cancelled", "-m", "1"])
        .await;
    assert!(ok, "sipp failed:\n{out}");
    assert!(
        srs.recording("cancelled-1").await.is_none(),
        "no recording for a cancelled session"
    );
    srs.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rtp_inactivity_ends_the_session_with_a_bye() {
    if !sipp_installed() {
        return;
    }
    let srs = Srs::start("rtp_timeout = \"2s\"\n").await;
    let (ok, out) = srs
        .sipp("timeout.xml", &["-key", "ucid", "silent", "-m", "1"])
        .await;
    assert!(ok, "sipp failed (no bye from the server?):\n{out}");
    let r = srs.sealed("silent-1").await;
    check_two_tones(&srs, &r, 1.8..=2.3).await;
    let ledger = srs.ledger(&r).await;
    assert!(ledger.iter().any(|e| e.kind == "siprec.timeout"));
    srs.stop().await;
}

/// A raw SIP client on UDP, for what sipp cannot send (malformed messages, floods).
struct Raw {
    socket: tokio::net::UdpSocket,
    server: SocketAddr,
}

impl Raw {
    async fn new(srs: &Srs) -> Raw {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Raw {
            socket,
            server: SocketAddr::from(([127, 0, 0, 1], srs.sip)),
        }
    }

    async fn send(&self, text: &str) {
        self.socket
            .send_to(text.as_bytes(), self.server)
            .await
            .expect("send");
    }

    /// The next message, or `None` after 3 s.
    async fn recv(&self) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(Duration::from_secs(3), self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// The first final (non-1xx) response.
    async fn final_response(&self) -> String {
        loop {
            let r = self.recv().await.expect("a response within 3 s");
            if !r.starts_with("SIP/2.0 1") {
                return r;
            }
        }
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().expect("addr").port()
    }
}

fn request(
    method: &str,
    call: &str,
    port: u16,
    extra: &str,
    content_type: &str,
    body: &str,
) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Type: {content_type}\r\n")
    };
    format!(
        "{method} sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call}\r\n\
         From: <sip:src@127.0.0.1>;tag=src1\r\nTo: <sip:srs@127.0.0.1>\r\nCall-ID: {call}\r\n\
         CSeq: 1 {method}\r\nContact: <sip:src@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n{extra}{ct}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
    m=audio 7000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\nm=audio 7002 RTP/AVP 8\r\na=label:2\r\na=sendonly\r\n";

fn status(r: &str) -> u16 {
    r.get(8..11).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_their_4xx_and_leave_other_sessions_alone() {
    let srs = Srs::start("").await;
    let c = Raw::new(&srs).await;
    let port = c.port();
    // a session that stays up through everything below, with no metadata at all (tolerated)
    c.send(&request(
        "INVITE",
        "good-1",
        port,
        "Require: siprec\r\n",
        "application/sdp",
        SDP,
    ))
    .await;
    let ok = c.final_response().await;
    assert_eq!(status(&ok), 200, "{ok}");
    assert!(
        ok.contains("a=recvonly") && ok.contains("a=label:2") && ok.contains("RTP/AVP 8"),
        "{ok}"
    );
    let to_tag = ok
        .lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split("tag=").nth(1))
        .expect("to-tag")
        .trim()
        .to_owned();
    let in_dialog = |method: &str, cseq: u32| {
        request(method, "good-1", port, "", "", "")
            .replace(
                "To: <sip:srs@127.0.0.1>",
                &format!("To: <sip:srs@127.0.0.1>;tag={to_tag}"),
            )
            .replace(
                &format!("CSeq: 1 {method}"),
                &format!("CSeq: {cseq} {method}"),
            )
    };
    // the 200 is sent again until the ack comes (udp)
    assert_eq!(status(&c.recv().await.expect("retransmitted")), 200);
    c.send(&in_dialog("ACK", 1)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    while let Ok(Ok(_)) = tokio::time::timeout(
        Duration::from_millis(10),
        c.socket.recv_from(&mut [0u8; 4096]),
    )
    .await
    {}
    let cases: Vec<(String, u16, &str)> = vec![
        (
            request(
                "INVITE",
                "bad-1",
                port,
                "Require: siprec, foo\r\n",
                "application/sdp",
                SDP,
            ),
            420,
            "Unsupported: foo",
        ),
        (
            request("INVITE", "bad-2", port, "", "text/html", "<p>hi</p>"),
            415,
            "",
        ),
        (
            request(
                "INVITE",
                "bad-3",
                port,
                "",
                "application/sdp",
                &SDP.replace("RTP/AVP", "RTP/SAVP"),
            ),
            488,
            "srtp",
        ),
        (
            request(
                "INVITE",
                "bad-4",
                port,
                "",
                "application/sdp",
                "v=0\r\nm=audio x\r\n",
            ),
            400,
            "",
        ),
        (
            request(
                "INVITE",
                "bad-5",
                port,
                "",
                "multipart/mixed;boundary=zz",
                "no parts here",
            ),
            400,
            "",
        ),
        (request("BYE", "unknown-1", port, "", "", ""), 481, ""),
        (
            request("MESSAGE", "bad-6", port, "", "", ""),
            405,
            "Allow: INVITE",
        ),
        (
            request("INVITE", "bad-7", port, "", "", "")
                .replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"),
            505,
            "",
        ),
        (
            request("INVITE", "bad-8", port, "", "", "").replace("CSeq: 1 INVITE\r\n", ""),
            400,
            "",
        ),
        (
            request("INVITE", "bad-9", port, "", "", "")
                .replace("Content-Length: 0", "Content-Length: 99"),
            400,
            "",
        ),
        // a request line that does not parse: answered from the headers that do
        (
            request("INVITE", "bad-10", port, "", "", "")
                .replace("INVITE sip:srs@127.0.0.1 SIP/2.0", "INVITE"),
            400,
            "",
        ),
    ];
    for (text, want, contains) in &cases {
        c.send(text).await;
        let r = c.final_response().await;
        assert_eq!(status(&r), *want, "{text}\n---\n{r}");
        assert!(r.contains(contains), "{r}");
        assert!(r.contains("Call-ID: "), "the response names its call: {r}");
    }
    // garbage with no headers to answer is dropped unanswered
    c.send("\u{1}\u{2} not sip at all").await;
    assert!(c.recv().await.is_none());
    // none of that touched the live session
    c.send(&request("OPTIONS", "ping-1", port, "", "", ""))
        .await;
    assert_eq!(status(&c.final_response().await), 200);
    c.send(&in_dialog("BYE", 2)).await;
    assert_eq!(status(&c.final_response().await), 200);
    let r = srs.sealed("good-1").await;
    let ledger = srs.ledger(&r).await;
    let s = details(
        ledger
            .iter()
            .find(|e| e.kind == "siprec.session")
            .expect("noted"),
    );
    assert_eq!(s["metadata"], "absent");
    assert_eq!(s["call_id_from"], "call-id");
    srs.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_invites_beyond_the_limit_gets_503() {
    let srs = Srs::start("max_sessions = 3\n").await;
    let c = Raw::new(&srs).await;
    let port = c.port();
    for i in 0..10 {
        c.send(&request(
            "INVITE",
            &format!("flood-{i}"),
            port,
            "",
            "application/sdp",
            SDP,
        ))
        .await;
    }
    let mut codes = std::collections::HashMap::<String, u16>::new();
    while codes.len() < 10 {
        let r = c.recv().await.expect("every invite is answered");
        if r.starts_with("SIP/2.0 1") {
            continue;
        }
        let call = r
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .expect("call-id")
            .trim()
            .to_owned();
        if status(&r) == 503 {
            assert!(r.contains("Retry-After: "), "{r}");
        }
        codes.insert(call, status(&r));
    }
    let accepted = codes.values().filter(|c| **c == 200).count();
    let refused = codes.values().filter(|c| **c == 503).count();
    assert_eq!((accepted, refused), (3, 7), "{codes:?}");
    srs.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_webhook_for_the_correlated_call_id_pauses_the_session() {
    if !sipp_installed() {
        return;
    }
    // a short call: capture resumes pci.max_latency (1 s by default, 0.2 s here) after the resume
    let srs = Arc::new(Srs::start("[pci]\nmax_latency = \"200ms\"\n").await);
    // the platform knows the call by its UCID, which the SBC put in the metadata
    let ucid = "00001002161640099999-1";
    let runner = Arc::clone(&srs);
    let sipp = tokio::spawn(async move {
        runner
            .sipp(
                "record.xml",
                &["-key", "ucid", "00001002161640099999", "-m", "1"],
            )
            .await
    });
    // answered once the session is in the ledger; the RTP follows the ack at once
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(r) = srs.recording(ucid).await
            && srs
                .ledger(&r)
                .await
                .iter()
                .any(|e| e.kind == "siprec.session")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "session not answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(srs.event(ucid, "payment.started").await, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(srs.event(ucid, "payment.ended").await, 200);
    let (ok, out) = sipp.await.expect("sipp task");
    assert!(ok, "sipp failed:\n{out}");
    let r = srs.sealed(ucid).await;
    let ledger = srs.ledger(&r).await;
    let pause = ledger
        .iter()
        .find(|e| e.kind == "pause")
        .expect("paused by the webhook");
    assert_eq!(details(pause)["kind"], "payment");
    assert!(ledger.iter().any(|e| e.kind == "resume"));
    // the card-payment stretch holds none of the caller's or agent's audio
    let d = srs.play(&r).await;
    for (ch, hz) in [(0, 1000.0), (1, 1500.0)] {
        let spans = common::audio::tone_spans(&d.samples[ch], d.rate, hz, 50, 0.02);
        assert!(
            spans.len() >= 2,
            "audio on both sides of the pause: {spans:?}"
        );
        let hole = spans
            .windows(2)
            .map(|w| w[1].start - w[0].end)
            .max()
            .unwrap_or(0);
        assert!(
            hole >= 800,
            "a pause of at least the payment's 0.5 s and the 0.5 s guard: {spans:?}"
        );
    }
    Arc::into_inner(srs).expect("one owner").stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_sessions_record_completely() {
    if !sipp_installed() {
        return;
    }
    let srs = Srs::start("").await;
    // 50 calls started within a second, all live at once (each plays 2 s and hangs up at 2.3 s)
    let (ok, out) = srs
        .sipp(
            "record.xml",
            &["-key", "ucid", "conc", "-m", "50", "-l", "50", "-r", "50"],
        )
        .await;
    assert!(ok, "sipp failed:\n{out}");
    for i in 1..=50 {
        let r = srs.sealed(&format!("conc-{i}")).await;
        let d = srs.play(&r).await;
        assert_eq!(d.channels, 2, "call {i}");
        let got = d.duration_ms();
        assert!((1800..=2300).contains(&got), "call {i}: {got} ms");
        assert!(energy(&d, 0, 1000.0, 100, 1700) > 0.02, "call {i}: caller");
        assert!(energy(&d, 1, 1500.0, 100, 1700) > 0.02, "call {i}: agent");
    }
    srs.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silence_suppressed_stretch_is_a_gap_in_place_not_a_shift() {
    if !sipp_installed() {
        return;
    }
    let srs = Srs::start("").await;
    let (ok, out) = srs
        .sipp("gap.xml", &["-key", "ucid", "gap", "-m", "1"])
        .await;
    assert!(ok, "sipp failed:\n{out}");
    let r = srs.sealed("gap-1").await;
    let d = srs.play(&r).await;
    // 1 s, the 1 s neither stream sent, 1 s: the second second of audio is where its timestamps
    // put it (with a counted clock it would follow the first at once, and the call be 2 s long)
    let total = d.duration_ms();
    assert!((2800..=3300).contains(&total), "{total} ms");
    for (ch, hz) in [(0, 1000.0), (1, 1500.0)] {
        assert!(
            energy(&d, ch, hz, 100, 900) > 0.02,
            "channel {ch} first second"
        );
        assert!(energy(&d, ch, hz, 1150, 1850) < 0.001, "channel {ch} gap");
        assert!(
            energy(&d, ch, hz, 2150, 2850) > 0.02,
            "channel {ch} last second"
        );
    }
    srs.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sip_over_tls_opens_and_ends_a_session() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["srs.test".to_owned()]).expect("cert");
    let (cert_path, key_path) = (certs.path().join("cert.pem"), certs.path().join("tls-key"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    common::chmod_600(&key_path);
    let tls_port = free_sip_port();
    let srs = Srs::start(&format!(
        "[siprec.tls]\nlisten = \"127.0.0.1:{tls_port}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    ))
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.cert.der().clone())
        .expect("trust the test cert");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(("127.0.0.1", tls_port))
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("srs.test").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("tls handshake");
    let invite = request(
        "INVITE",
        "tls-1",
        5061,
        "Require: siprec\r\n",
        "application/sdp",
        SDP,
    )
    .replace("SIP/2.0/UDP", "SIP/2.0/TLS");
    tls.write_all(invite.as_bytes()).await.expect("send");
    // read until the 200 (after the 100)
    let mut got = String::new();
    let mut buf = vec![0u8; 8192];
    while !got.contains("SIP/2.0 200 OK") || !got.ends_with("a=recvonly\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(n > 0, "closed: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains(";transport=tls>"), "{got}");
    let tag = got
        .lines()
        .filter(|l| l.starts_with("To:"))
        .find_map(|l| l.split("tag=").nth(1))
        .expect("to-tag")
        .trim()
        .to_owned();
    let with_tag = |m: &str, cseq: u32| {
        request(m, "tls-1", 5061, "", "", "")
            .replace("SIP/2.0/UDP", "SIP/2.0/TLS")
            .replace(
                "To: <sip:srs@127.0.0.1>",
                &format!("To: <sip:srs@127.0.0.1>;tag={tag}"),
            )
            .replace(&format!("CSeq: 1 {m}"), &format!("CSeq: {cseq} {m}"))
    };
    tls.write_all(with_tag("ACK", 1).as_bytes())
        .await
        .expect("ack");
    tls.write_all(with_tag("BYE", 2).as_bytes())
        .await
        .expect("bye");
    let mut rest = String::new();
    while !rest.contains("CSeq: 2 BYE") {
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
            .await
            .expect("a bye answer within 10 s")
            .expect("read");
        assert!(n > 0);
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(rest.starts_with("SIP/2.0 200 OK"), "{rest}");
    let r = srs.sealed("tls-1").await;
    let s = details(
        srs.ledger(&r)
            .await
            .iter()
            .find(|e| e.kind == "siprec.session")
            .expect("noted"),
    );
    assert_eq!(s["transport"], "TLS");
    srs.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_destroys_the_sealed_metadata_with_the_audio() {
    if !sipp_installed() {
        return;
    }
    let srs = Srs::start("").await;
    let (ok, out) = srs
        .sipp("record.xml", &["-key", "ucid", "refused", "-m", "1"])
        .await;
    assert!(ok, "sipp failed:\n{out}");
    let r = srs.sealed("refused-1").await;
    assert_eq!(
        srs.catalog.sealed_notes(r.id).await.expect("notes").len(),
        1
    );
    // the caller refuses within consent.late_refusal of the end: everything personal goes
    assert_eq!(srs.event("refused-1", "consent.refused").await, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let row = srs.recording("refused-1").await.expect("tombstone");
        let notes = srs.catalog.sealed_notes(r.id).await.expect("notes");
        if row.status == RecordingStatus::Refused && notes.is_empty() {
            assert_eq!((row.caller_tag, row.caller_sealed), (None, None));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not destroyed: {:?}, {} notes",
            row.status,
            notes.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // the tombstone's ledger still says metadata was kept, and holds none of it
    let ledger = srs.ledger(&r).await;
    let md = ledger
        .iter()
        .find(|e| e.kind == "siprec.metadata")
        .expect("still ledgered");
    assert!(!md.details.contains("441744676789") && !md.details.contains("Caller Example"));
    srs.stop().await;
}
