//! Genesys AudioHook v2 over a real WebSocket client: a whole session (open, audio, client pause,
//! resumed with discarded audio, close), a server-initiated pause from a native payment event, the
//! connection probe, and a bad signature.

mod common;

use std::time::Duration;

use callvault::domain::{Codec, MediaFormat};
use callvault::ingest::audiohook::{HookAuth, SignedRequest};
use common::audio::{decode_wav, goertzel, tone};
use common::live::{Live, Socket};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const CONFIG: &str = "[audiohook]\nenabled = true\n";
const ORG: &str = "d7934305-0972-4844-938e-9060eef73d05";

struct Headers(Vec<(&'static str, String)>, String);

impl SignedRequest for Headers {
    fn target(&self) -> &str {
        "/v1/audiohook"
    }
    fn authority(&self) -> &str {
        &self.1
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn secret(live: &Live, which: &callvault::config::SecretFile) -> String {
    let _ = live;
    String::from_utf8_lossy(which.read().expect("secret").expose_trimmed()).into_owned()
}

/// Connects as Genesys does, signing with `client_secret` (the right one unless a test says not).
async fn connect(live: &Live, session: &str, client_secret: Option<&str>) -> Socket {
    let key = secret(live, &live.config.audiohook.api_key);
    let right = secret(live, &live.config.audiohook.client_secret);
    let host = live.public.to_string();
    let created = live.now().timestamp();
    let params = format!(
        "(\"@request-target\" \"@authority\" \"audiohook-organization-id\" \"audiohook-session-id\" \"audiohook-correlation-id\" \"x-api-key\");keyid=\"{key}\";nonce=\"{}\";alg=\"hmac-sha256\";created={created};expires={}",
        uuid::Uuid::now_v7().simple(),
        created + 60
    );
    let mut h = Headers(
        vec![
            ("audiohook-organization-id", ORG.to_owned()),
            ("audiohook-session-id", session.to_owned()),
            ("audiohook-correlation-id", uuid::Uuid::now_v7().to_string()),
            ("x-api-key", key.clone()),
            ("signature-input", format!("sig1={params}")),
        ],
        host.clone(),
    );
    let auth = HookAuth::new(&key, client_secret.unwrap_or(&right)).expect("auth");
    let sig = auth.sign(&h, &params).expect("sign");
    h.0.push(("signature", format!("sig1=:{sig}:")));
    let mut req = format!("ws://{host}/v1/audiohook")
        .into_client_request()
        .expect("request");
    for (n, v) in &h.0 {
        req.headers_mut().insert(*n, v.parse().expect("header"));
    }
    let tcp = TcpStream::connect(live.public).await.expect("connect");
    tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("upgrade")
        .0
}

struct Client {
    ws: Socket,
    id: String,
    seq: u64,
    serverseq: u64,
}

impl Client {
    async fn send(&mut self, ty: &str, parameters: Value) {
        self.seq += 1;
        let m = json!({"version":"2","id":self.id,"type":ty,"seq":self.seq,"serverseq":self.serverseq,
            "position":"PT0S","parameters":parameters});
        self.ws
            .send(Message::Text(m.to_string().into()))
            .await
            .expect("send");
    }
    async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("a server message in time")
                .expect("open")
                .expect("ok");
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                self.serverseq = v["seq"].as_u64().expect("seq");
                return v;
            }
        }
    }
    async fn audio(&mut self, live: &Live, bytes: &[u8]) {
        for frame in bytes.chunks(3200) {
            self.ws
                .send(Message::Binary(frame.to_vec().into()))
                .await
                .expect("audio");
            live.advance_ms(200);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn open_params(conversation: &str) -> Value {
    json!({"organizationId":ORG,"conversationId":conversation,
        "participant":{"id":"p1","ani":"+447700900123","aniName":"","dnis":"+441744676789"},
        "media":[{"type":"audio","format":"PCMU","channels":["external","internal"],"rate":8000},
                 {"type":"audio","format":"PCMU","channels":["external"],"rate":8000}]})
}

async fn open(live: &Live, conversation: &str) -> Client {
    let id = uuid::Uuid::now_v7().to_string();
    let ws = connect(live, &id, None).await;
    let mut c = Client {
        ws,
        id,
        seq: 0,
        serverseq: 0,
    };
    c.send("open", open_params(conversation)).await;
    let opened = c.recv().await;
    assert_eq!(opened["type"], "opened", "{opened}");
    assert_eq!(opened["clientseq"], 1);
    assert_eq!(
        opened["parameters"]["media"][0]["channels"],
        json!(["external", "internal"])
    );
    c
}

fn pcmu() -> MediaFormat {
    MediaFormat {
        codec: Codec::Pcmu,
        sample_rate: 8000,
        channels: 2,
    }
}

async fn ledger(live: &Live, id: &str) -> Vec<Value> {
    let (status, _, body) = live
        .get(&format!("/v1/recordings/{id}"), &live.supervisor)
        .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).expect("json");
    v["ledger"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_session_with_a_client_pause() {
    let live = Live::start(CONFIG).await;
    let conv = "0f8e4a2c-1111-4222-8333-444455556666";
    let mut c = open(&live, conv).await;
    c.send("ping", json!({})).await;
    let pong = c.recv().await;
    assert_eq!(
        (pong["type"].as_str(), pong["clientseq"].as_u64()),
        (Some("pong"), Some(2))
    );
    c.audio(&live, &tone(pcmu(), 1000.0, 2000)).await;
    c.send("paused", json!({})).await;
    live.advance_ms(1_000);
    c.send("resumed", json!({"start":"PT2S","discarded":"PT1S"}))
        .await;
    c.audio(&live, &tone(pcmu(), 1000.0, 1000)).await;
    c.send("close", json!({"reason":"end"})).await;
    let closed = c.recv().await;
    assert_eq!(closed["type"], "closed");
    live.advance_ms(5_000);
    let r = live.wait_sealed(conv).await;
    assert_eq!(r.line.as_deref(), Some("+441744676789"));
    let entries = ledger(&live, &r.id.to_string()).await;
    let text = Value::Array(entries).to_string();
    assert!(
        text.contains("audiohook.discarded")
            && text.contains("discarded_ms")
            && text.contains("1000"),
        "the discarded length is in the ledger: {text}"
    );
    assert!(
        text.contains("payment"),
        "the client pause is a payment pause: {text}"
    );
    let (status, wav) = live.play(&r.id.to_string(), &live.supervisor).await;
    assert_eq!(status, 200);
    let d = decode_wav(&wav);
    assert_eq!(d.channels, 2);
    let first = &d.samples[0][..8000];
    assert!(
        goertzel(first, d.rate, 1000.0) > 0.05,
        "audio before the pause kept"
    );
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_native_payment_event_pauses_and_resumes_the_client() {
    let live = Live::start(CONFIG).await;
    let conv = "0f8e4a2c-2222-4222-8333-444455556666";
    let mut c = open(&live, conv).await;
    c.audio(&live, &tone(pcmu(), 1000.0, 1000)).await;
    let (status, body) = live.event(conv, "payment.started", None, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let pause = c.recv().await;
    assert_eq!(
        (pause["type"].as_str(), pause["clientseq"].as_u64()),
        (Some("pause"), Some(1)),
        "{pause}"
    );
    c.send("paused", json!({})).await;
    live.advance_ms(2_000);
    let (status, body) = live.event(conv, "payment.ended", None, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let resume = c.recv().await;
    assert_eq!(resume["type"], "resume", "{resume}");
    c.send("resumed", json!({"start":"PT1S","discarded":"PT2S"}))
        .await;
    c.audio(&live, &tone(pcmu(), 1000.0, 1000)).await;
    c.send("close", json!({"reason":"end"})).await;
    assert_eq!(c.recv().await["type"], "closed");
    live.advance_ms(5_000);
    let r = live.wait_sealed(conv).await;
    let entries = ledger(&live, &r.id.to_string()).await;
    let pauses = entries.iter().filter(|e| e["kind"] == "pause").count();
    let text = Value::Array(entries).to_string();
    assert_eq!(
        pauses, 1,
        "the client's answer is not a second pause: {text}"
    );
    assert!(
        text.contains("audiohook.discarded") && text.contains("server"),
        "{text}"
    );
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_probe_records_nothing_and_a_bad_signature_is_disconnected() {
    let live = Live::start(CONFIG).await;
    let probe = "00000000-0000-0000-0000-000000000000";
    let id = uuid::Uuid::now_v7().to_string();
    let ws = connect(&live, &id, None).await;
    let mut c = Client {
        ws,
        id,
        seq: 0,
        serverseq: 0,
    };
    let mut p = open_params(probe);
    p["participant"] = Value::Null;
    c.send("open", p).await;
    assert_eq!(c.recv().await["type"], "opened");
    c.send("close", json!({"reason":"end"})).await;
    assert_eq!(c.recv().await["type"], "closed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        live.recording(probe).await.is_none(),
        "the probe leaves no recording"
    );

    let id = uuid::Uuid::now_v7().to_string();
    let ws = connect(&live, &id, Some("d3Jvbmctc2VjcmV0")).await;
    let mut c = Client {
        ws,
        id,
        seq: 0,
        serverseq: 0,
    };
    let m = c.recv().await;
    assert_eq!(
        (m["type"].as_str(), m["parameters"]["reason"].as_str()),
        (Some("disconnect"), Some("unauthorized"))
    );

    // a sequence gap is a protocol error: disconnect with a reason
    let mut c = open(&live, "0f8e4a2c-3333-4222-8333-444455556666").await;
    c.seq += 1;
    c.send("ping", json!({})).await;
    let m = c.recv().await;
    assert_eq!(
        (m["type"].as_str(), m["parameters"]["reason"].as_str()),
        (Some("disconnect"), Some("error")),
        "{m}"
    );
    assert!(
        m["parameters"]["info"]
            .as_str()
            .is_some_and(|i| i.contains("seq"))
    );
    live.stop().await;
}

/// A client that sends its audio ahead of real time (the reference client reads it from a file)
/// keeps every byte up to its `close`, and the WebSocket closes cleanly (1000, never 1006).
#[tokio::test(flavor = "multi_thread")]
async fn audio_ahead_of_real_time_is_kept_to_the_close_and_the_socket_closes_cleanly() {
    let live = Live::start(CONFIG).await;
    let conv = "0f8e4a2c-3333-4222-8333-444455556666";
    let mut c = open(&live, conv).await;
    // 6 s of audio within 0.6 s of the daemon's clock: ten times real time
    for frame in tone(pcmu(), 1000.0, 6_000).chunks(3200) {
        c.ws.send(Message::Binary(frame.to_vec().into()))
            .await
            .expect("audio");
        live.advance_ms(20);
    }
    c.send("close", json!({"reason":"end"})).await;
    let closed = c.recv().await;
    assert_eq!(closed["type"], "closed", "{closed}");
    // as Genesys does after `closed`: the client closes the WebSocket and waits for the answer
    c.ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    }))
    .await
    .expect("close sent");
    let answer = loop {
        match tokio::time::timeout(Duration::from_secs(5), c.ws.next())
            .await
            .expect("the server answers the close in time")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("the server's close frame, not {other:?} (a client would see 1006)"),
        }
    };
    assert_eq!(
        answer.map(|f| u16::from(f.code)),
        Some(1000),
        "a clean close"
    );
    live.advance_ms(5_000);
    let r = live.wait_sealed(conv).await;
    let (status, wav) = live.play(&r.id.to_string(), &live.supervisor).await;
    assert_eq!(status, 200);
    let d = decode_wav(&wav);
    assert!(
        d.duration_ms().abs_diff(6_000) <= 40,
        "every byte sent before the close is kept: {} ms of 6000",
        d.duration_ms()
    );
    assert!(goertzel(&d.samples[0][d.samples[0].len() - 800..], d.rate, 1000.0) > 0.05);
    live.stop().await;
}
