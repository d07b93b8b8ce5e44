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

use base64::Engine;
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

/// A range of 200 RTP ports no other test of this binary uses at the same time.
fn rtp_range() -> (u16, u16) {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = 40_000 + (std::process::id() % 40) as u16 * 400 + n * 200 % 400;
    (base, base + 199)
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
    let r = srs.sealed("00001002161640012345").await;
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
    assert!(!md.details.contains("441632960001") && !md.details.contains("Agent 42"));
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(m["sealed"].as_str().expect("sealed"))
        .expect("base64");
    let xml = srs.callers.unseal_note(r.id, &sealed).expect("opens");
    let xml = String::from_utf8(xml.to_vec()).expect("utf-8");
    assert!(
        xml.contains("sip:+441744676789@pstn.example.gov.uk")
            && xml.contains("<avaya:ucid>00001002161640012345</avaya:ucid>")
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
