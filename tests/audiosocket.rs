//! Asterisk AudioSocket: a client harness streams calls over TCP (Asterisk itself is not packaged
//! here); a bad frame ends only its own call, with the reason in the log; a peer outside
//! `audiosocket.allow` is refused.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callvault::domain::{Codec, MediaFormat};
use callvault::ingest::audiosocket::{KIND_AUDIO, KIND_HANGUP, KIND_UUID, encode};
use common::audio::{decode_wav, goertzel, tone};
use common::live::Live;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Log lines of the daemon, captured for the "logged reason" checks.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn install() -> Logs {
        static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let w = logs.clone();
            let _ = tracing_subscriber::fmt()
                .with_env_filter("callvault=info")
                .with_ansi(false)
                .with_writer(move || w.clone())
                .try_init();
            logs
        })
        .clone()
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

async fn connect(port: u16, from: &str) -> TcpStream {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{from}:0").parse().expect("addr"))
            .expect("bind source");
        match socket
            .connect(format!("127.0.0.1:{port}").parse().expect("addr"))
            .await
        {
            Ok(s) => return s,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("audiosocket listener not up: {e}"),
        }
    }
}

fn uuid_bytes(s: &str) -> Vec<u8> {
    uuid::Uuid::parse_str(s).expect("uuid").as_bytes().to_vec()
}

fn l16() -> MediaFormat {
    MediaFormat {
        codec: Codec::L16,
        sample_rate: 8000,
        channels: 1,
    }
}

/// Whether the server closed the connection (read returns end of file) within a few seconds.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_stream_and_a_bad_frame_ends_only_its_call() {
    let logs = Logs::install();
    let port = common::free_port();
    let live = Live::start(&format!("[audiosocket]\nlisten = \"127.0.0.1:{port}\"\n")).await;
    let good = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
    let bad = "6ba7b811-9dad-11d1-80b4-00c04fd430c8";
    let bad2 = "6ba7b812-9dad-11d1-80b4-00c04fd430c8";
    let mut a = connect(port, "127.0.0.1").await;
    let mut b = connect(port, "127.0.0.1").await;
    let mut c = connect(port, "127.0.0.1").await;
    for (s, id) in [(&mut a, good), (&mut b, bad), (&mut c, bad2)] {
        s.write_all(&encode(KIND_UUID, &uuid_bytes(id)))
            .await
            .expect("uuid");
    }
    let audio = tone(l16(), 1000.0, 2000);
    // the first frame opens each call's media, anchored at the manual clock's now: let that happen
    // before the clock moves
    for s in [&mut a, &mut b, &mut c] {
        s.write_all(&encode(KIND_AUDIO, &audio[..320]))
            .await
            .expect("audio");
    }
    for id in [good, bad, bad2] {
        while live.recording(id).await.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    live.advance_ms(20);
    for (i, frame) in audio.chunks(320).enumerate().skip(1) {
        a.write_all(&encode(KIND_AUDIO, frame))
            .await
            .expect("audio");
        if i < 10 {
            b.write_all(&encode(KIND_AUDIO, frame))
                .await
                .expect("audio");
            c.write_all(&encode(KIND_AUDIO, frame))
                .await
                .expect("audio");
        }
        if i == 10 {
            // an unknown kind on b; a length beyond the payload on c
            b.write_all(&[0x42, 0, 2, 0, 0]).await.expect("bad frame");
            c.write_all(&[KIND_AUDIO, 0x10, 0x00, 1, 2, 3, 4])
                .await
                .expect("short frame");
            c.shutdown().await.expect("eof");
        }
        live.advance_ms(20);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        closed_by_server(&mut b).await,
        "unknown kind ends that stream"
    );
    assert!(
        closed_by_server(&mut c).await,
        "truncated frame ends that stream"
    );
    a.write_all(&encode(KIND_HANGUP, &[]))
        .await
        .expect("hangup");
    assert!(closed_by_server(&mut a).await);
    live.advance_ms(5_000);
    let r = live.wait_sealed(good).await;
    let (status, wav) = live.play(&r.id.to_string(), &live.supervisor).await;
    assert_eq!(status, 200);
    let d = decode_wav(&wav);
    let secs = d.samples[0].len() as f64 / f64::from(d.rate);
    assert!((1.9..=2.1).contains(&secs), "2 s recorded, got {secs}");
    assert!(goertzel(&d.samples[0], d.rate, 1000.0) > 0.05);
    let text = logs.text();
    assert!(
        text.contains("audiosocket stream ended on a bad frame")
            && text.contains(bad)
            && text.contains("0x42"),
        "{text}"
    );
    assert!(
        text.contains(bad2) && text.contains("length is beyond the payload"),
        "{text}"
    );
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_outside_allow_is_refused() {
    let logs = Logs::install();
    let port = common::free_port();
    let live = Live::start(&format!(
        "[audiosocket]\nlisten = \"127.0.0.1:{port}\"\nallow = [\"127.0.0.2/32\"]\n"
    ))
    .await;
    let mut outsider = connect(port, "127.0.0.1").await;
    let _ = outsider
        .write_all(&encode(
            KIND_UUID,
            &uuid_bytes("6ba7b813-9dad-11d1-80b4-00c04fd430c8"),
        ))
        .await;
    assert!(
        closed_by_server(&mut outsider).await,
        "127.0.0.1 is not allowed"
    );
    let mut insider = connect(port, "127.0.0.2").await;
    insider
        .write_all(&encode(
            KIND_UUID,
            &uuid_bytes("6ba7b814-9dad-11d1-80b4-00c04fd430c8"),
        ))
        .await
        .expect("uuid");
    insider
        .write_all(&encode(KIND_AUDIO, &[0; 320]))
        .await
        .expect("audio");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        live.recording("6ba7b814-9dad-11d1-80b4-00c04fd430c8")
            .await
            .is_some(),
        "127.0.0.2 is allowed"
    );
    assert!(
        live.recording("6ba7b813-9dad-11d1-80b4-00c04fd430c8")
            .await
            .is_none()
    );
    assert!(logs.text().contains("outside audiosocket.allow refused"));
    drop(insider);
    live.stop().await;
}
