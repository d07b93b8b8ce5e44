//! Connection limits against the built daemon with a low file limit (1024): 2,000 idle connections
//! (plain TCP and upgraded media WebSockets) and 500 slowloris connections that trickle a header
//! byte at a time. While they are open a new call still records and `/readyz` answers; the idle
//! ones are closed after `limits.idle_timeout`, the slow ones after `limits.header_read_timeout`,
//! and each limit shows in `/metrics`. Loopback only: the flood comes from 127.0.0.2 to 127.0.0.4,
//! the real call from 127.0.0.1.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Deployment;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

const IDLE_TCP: usize = 1_500;
const IDLE_WS: usize = 500;
const SLOWLORIS: usize = 500;
const HEADER_TIMEOUT: Duration = Duration::from_secs(4);
const IDLE_TIMEOUT: Duration = Duration::from_secs(6);

fn callvault(d: &Deployment, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--config")
        .arg(&d.config)
        .args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("run callvault")
}

/// The test process holds every flood connection: make sure its own file limit allows them.
fn raise_own_file_limit(need: u64) {
    let soft = |kind: &str| -> u64 {
        let out = Command::new("sh")
            .args(["-c", &format!("ulimit -{kind}n")])
            .output()
            .expect("sh");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(u64::MAX)
    };
    if soft("S") >= need {
        return;
    }
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={need}:"),
        ])
        .status()
        .expect("prlimit (util-linux) raises this test's own file limit");
    assert!(
        status.success(),
        "cannot raise the test's file limit to {need}"
    );
}

async fn connect_from(source: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.parse::<IpAddr>().expect("ip"), 0))?;
    socket.connect(to).await
}

/// Waits until the server closes `stream` (EOF or reset); how long it took from `since`.
async fn until_closed(stream: &mut TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return since.elapsed(),
            Ok(_) => {}
        }
    }
}

/// As [`until_closed`] for a client that sends nothing. When the kernel's accept queue overflows,
/// a client can believe it is connected while the server dropped the half-open connection and
/// will never say so: such a client gives up (`None`) once every held connection would long be
/// closed, and the server's own count of open connections (which must then be 0) is the proof.
async fn until_closed_or_unaccepted(stream: &mut TcpStream, since: Instant) -> Option<Duration> {
    let give_up = since + IDLE_TIMEOUT + Duration::from_secs(4);
    tokio::select! {
        d = until_closed(stream, since) => Some(d),
        () = tokio::time::sleep_until(give_up) => None,
    }
}

#[derive(Debug, Default)]
struct Outcome {
    /// Closed at once (over a cap), or never accepted (the kernel dropped it from a full queue).
    refused: usize,
    /// Admitted and held, then closed after this long.
    held: Vec<Duration>,
}

fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_flood_of_idle_and_slow_connections_never_stops_new_calls_or_readyz() {
    raise_own_file_limit(8192);
    let (public_port, admin_port) = (common::free_port(), common::free_port());
    let d = Deployment::new(
        "[limits]\nheader_read_timeout = \"4s\"\nidle_timeout = \"6s\"\n\
         max_connections = 700\nmax_connections_per_peer = 200\n",
    );
    let telephony = callvault(
        &d,
        &["tokens", "create", "--role", "telephony", "--name", "sim"],
    );
    assert!(telephony.status.success(), "{:?}", telephony);
    std::fs::write(d.path("telephony.token"), &telephony.stdout).expect("token");
    common::chmod_600(&d.path("telephony.token"));
    let supervisor = callvault(
        &d,
        &["tokens", "create", "--role", "supervisor", "--name", "s"],
    );
    let supervisor = String::from_utf8(supervisor.stdout).expect("token");
    let telephony = String::from_utf8(telephony.stdout).expect("token");

    // the daemon under a low file limit: without the caps, this flood alone would use up its 1024
    let child = Command::new("sh")
        .args(["-c", "ulimit -n 1024 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_callvault"))
        .arg("--config")
        .arg(&d.config)
        .args(["--set", &format!("public.listen=127.0.0.1:{public_port}")])
        .args(["--set", &format!("admin.listen=127.0.0.1:{admin_port}")])
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut child = KillOnDrop(child);
    let public: SocketAddr = format!("127.0.0.1:{public_port}").parse().expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().expect("addr");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        common::wait_for_200(admin, "/readyz", Duration::from_secs(30)).await;
        let start = Instant::now();
        let mut tasks = Vec::new();
        // idle plain TCP: connects and says nothing
        for _ in 0..IDLE_TCP {
            tasks.push(("idle_tcp", tokio::spawn(async move {
                let mut s = connect_from("127.0.0.2", public).await.ok()?;
                let t = Instant::now();
                until_closed_or_unaccepted(&mut s, t).await
            })));
        }
        // idle media WebSockets: a valid upgrade with a telephony token, then silence
        for i in 0..IDLE_WS {
            let token = telephony.trim().to_owned();
            tasks.push(("idle_ws", tokio::spawn(async move {
                let mut s = connect_from("127.0.0.4", public).await.ok()?;
                let req = format!(
                    "GET /v1/calls/idle-{i}/media HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                     Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
                );
                s.write_all(req.as_bytes()).await.ok()?;
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).await.ok()? == 0 {
                        return None;
                    }
                    head.push(b[0]);
                }
                assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
                let t = Instant::now();
                Some(until_closed(&mut s, t).await)
            })));
        }
        // slowloris: a request line, then one header byte every 300 ms for as long as it is open
        for _ in 0..SLOWLORIS {
            tasks.push(("slowloris", tokio::spawn(async move {
                let s = connect_from("127.0.0.3", public).await.ok()?;
                let t = Instant::now();
                let (mut r, mut w) = s.into_split();
                w.write_all(b"GET /v1/recordings HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.ok()?;
                let trickle = async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        if w.write_all(b"a").await.is_err() {
                            return;
                        }
                    }
                };
                let mut buf = [0u8; 256];
                tokio::select! {
                    () = trickle => {}
                    _ = async { loop { match r.read(&mut buf).await { Ok(0) | Err(_) => break, Ok(_) => {} } } } => {}
                }
                Some(t.elapsed())
            })));
        }
        // let the flood land (600 held at most: three peers of 200), then make a real call
        let mut open = 0.0;
        while open < 500.0 && start.elapsed() < HEADER_TIMEOUT - Duration::from_millis(500) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (_, _, metrics) = common::get(admin, "/metrics").await;
            open = metric(&metrics, "callvault_connections_open", &["listener=\"public\""]);
        }
        assert!(open > 300.0, "the flood is held while the call is made: {open} open");
        let (status, _, _) = common::get(admin, "/readyz").await;
        assert_eq!(status, 200, "/readyz during the flood");
        let token_file = d.path("telephony.token");
        let sim = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_callvault"))
                .args(["simulate", "--url", &format!("http://{public}")])
                .arg("--token-file")
                .arg(token_file)
                .args(["--call-id", "during-flood", "--duration", "2s", "--tone-hz", "1000"])
                .output()
                .expect("simulate")
        })
        .await
        .expect("simulate task");
        assert!(
            sim.status.success(),
            "a new call during the flood: {}",
            String::from_utf8_lossy(&sim.stderr)
        );

        let mut outcomes: std::collections::BTreeMap<&str, Outcome> = Default::default();
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, (kind, task)) in tasks.into_iter().enumerate() {
            let o = outcomes.entry(kind).or_default();
            let closed = tokio::time::timeout_at(deadline, task).await;
            let Ok(closed) = closed else {
                panic!("{kind} connection {i} still open 30 s after the flood began: {outcomes:?}");
            };
            match closed.expect("task") {
                Some(d) if d >= Duration::from_millis(3000) => o.held.push(d),
                _ => o.refused += 1,
            }
        }
        // the server lets each go as its own timeout or the peer's close reaches it: give the
        // last of them a few seconds on a busy machine
        let release = Instant::now() + Duration::from_secs(15);
        let (open, metrics) = loop {
            let (_, _, metrics) = common::get(admin, "/metrics").await;
            let open = metric(&metrics, "callvault_connections_open", &["listener=\"public\""]);
            if open == 0.0 || Instant::now() >= release {
                break (open, metrics);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(open, 0.0, "the server still holds flood connections: {outcomes:?}");
        let (status, _, _) = common::get(admin, "/readyz").await;
        assert_eq!(status, 200, "/readyz after the flood");
        (outcomes, metrics)
    });
    let (outcomes, metrics) = result;
    eprintln!("{outcomes:#?}");
    for (kind, limit) in [
        ("idle_tcp", IDLE_TIMEOUT),
        ("idle_ws", IDLE_TIMEOUT),
        // a slow client whose connection sat in the kernel's queue is accepted late
        ("slowloris", HEADER_TIMEOUT + Duration::from_secs(2)),
    ] {
        let o = &outcomes[kind];
        assert!(!o.held.is_empty(), "{kind}: some are admitted and held");
        let longest = o.held.iter().max().copied().unwrap_or_default();
        assert!(
            longest <= limit + Duration::from_secs(2),
            "{kind}: held {longest:?}, past its {limit:?} limit"
        );
    }
    // the upgraded media sockets pass every header check: only the idle timeout closes them
    assert!(
        outcomes["idle_ws"]
            .held
            .iter()
            .all(|d| *d >= IDLE_TIMEOUT - Duration::from_secs(1)),
        "{:?}",
        outcomes["idle_ws"]
    );
    for (name, labels) in [
        (
            "callvault_connections_refused_total",
            &["reason=\"peer_cap\""][..],
        ),
        (
            "callvault_connections_closed_total",
            &["reason=\"idle\""][..],
        ),
        (
            "callvault_connections_closed_total",
            &["reason=\"header_read\""][..],
        ),
    ] {
        assert!(
            metric(&metrics, name, labels) > 0.0,
            "{name}{labels:?}\n{metrics}"
        );
    }

    // the call made during the flood was recorded
    let rt2 = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (status, body) = rt2.block_on(async {
        let s = TcpStream::connect(public).await.expect("connect");
        let (status, _, body) = common::exchange(
            s,
            "GET",
            "/v1/recordings?call_id=during-flood",
            &[("Authorization", &format!("Bearer {}", supervisor.trim()))],
            b"",
        )
        .await;
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("during-flood"), "{body}");
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert_eq!(child.0.wait().expect("wait").code(), Some(0));
}

/// The daemon, killed if the test fails before it stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
