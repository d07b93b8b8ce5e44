//! Keypad tones never stored, end to end against the daemon (DESIGN.md section 2, "Keypad tones
//! (DTMF) are card data too"): a caller keys a 16-digit card number and a 3-digit security code at
//! random times between real speech (the espeak-ng fixtures of `fixtures/speech`), with no
//! `payment.started`, over the native media socket, Twilio Media Streams and Asterisk AudioSocket.
//! The stored recording, and what a live listener heard, are decoded by multimon-ng (Debian's
//! package, a DTMF decoder this project did not write): it must find no digit, while it finds every
//! digit in the audio that was sent, and in the recording when `pci.dtmf = "off"`. The speech before
//! the first key and after the last key's quiet time is stored. Keys the platform signals
//! (AudioSocket DTMF frames, Twilio `dtmf` messages) pause capture the same way.
//!
//! Everything runs on the daemon's manual clock: audio is sent 20 ms a frame in real time.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use callvault::audio::g711::{ULAW_TO_LINEAR, linear_to_ulaw};
use callvault::domain::{Codec, MediaFormat};
use callvault::ingest::audiosocket::{KIND_AUDIO, KIND_DTMF, KIND_HANGUP, KIND_UUID, encode};
use common::audio::{Decoded, decode_wav, goertzel};
use common::live::{Live, Socket, sync};
use futures::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const RATE: usize = 8000;
/// Peak of a 0 dBm0 sine in 16-bit PCM.
const DBM0: f64 = 22_700.0;
/// Length of every call, in seconds.
const CALL_SECS: usize = 40;
const KEYS: &[u8] = b"0123456789*#ABCD";

/// `pci.guard` and `pci.dtmf_quiet` as the daemon's defaults set them.
const GUARD_MS: u64 = 500;
const QUIET_MS: u64 = 5_000;

/// One key the caller pressed, in ms from the call's start.
#[derive(Debug, Clone, Copy)]
struct Press {
    at: u64,
    len: u64,
    key: u8,
}

/// A caller's side of a call: speech with keys, and where the keys are.
struct Script {
    caller: Vec<f64>,
    agent: Vec<f64>,
    presses: Vec<Press>,
}

fn fixture(name: &str) -> Vec<f64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/speech")
        .join(format!("{name}.ul"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run fixtures/speech/make.sh)", path.display()))
        .iter()
        .map(|&b| f64::from(ULAW_TO_LINEAR[usize::from(b)]))
        .collect()
}

/// `secs` seconds of speech from `voices`, one after another, repeated as needed.
fn speech(voices: &[&str], secs: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(secs * RATE);
    let all: Vec<Vec<f64>> = voices.iter().map(|v| fixture(v)).collect();
    'fill: loop {
        for v in &all {
            for &s in v {
                if out.len() == secs * RATE {
                    break 'fill;
                }
                out.push(s);
            }
            out.extend(std::iter::repeat_n(0.0, RATE / 4));
        }
    }
    out.truncate(secs * RATE);
    out
}

fn row_col(key: u8) -> (f64, f64) {
    const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let layout = b"123A456B789C*0#D";
    let i = layout.iter().position(|&k| k == key).expect("a key");
    (LOW[i / 4], HIGH[i % 4])
}

/// A call: 16 card digits in four groups, then a 3-digit code, at random times, each key 70 to
/// 150 ms at -4 to -10 dBm0 a tone; the caller is silent while keying (the speech under a key is
/// replaced), the agent keeps talking on the other channel.
fn script(seed: u64) -> Script {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut caller = speech(&["caller-rp", "caller-scot", "caller-high"], CALL_SECS);
    let agent = speech(&["agent-mid", "agent-low"], CALL_SECS);
    let mut presses = Vec::new();
    let mut at = rng.gen_range(6_000..9_000u64);
    let mut press = |at: &mut u64, rng: &mut StdRng| {
        let len = rng.gen_range(70..150u64);
        let key = KEYS[rng.gen_range(0..10usize)];
        presses.push(Press { at: *at, len, key });
        *at += len + rng.gen_range(120..400u64);
    };
    for _group in 0..4 {
        for _ in 0..4 {
            press(&mut at, &mut rng);
        }
        at += rng.gen_range(300..1_500u64);
    }
    at += rng.gen_range(3_000..6_000u64);
    for _ in 0..3 {
        press(&mut at, &mut rng);
    }
    for p in &presses {
        let (lo, hi) = row_col(p.key);
        let level = DBM0 * 10f64.powf(-rng.gen_range(4.0..10.0) / 20.0);
        let start = p.at as usize * RATE / 1000;
        let n = p.len as usize * RATE / 1000;
        for i in 0..n {
            let t = i as f64 / RATE as f64;
            caller[start + i] = level
                * ((std::f64::consts::TAU * lo * t).sin() + (std::f64::consts::TAU * hi * t).sin());
        }
    }
    Script {
        caller,
        agent,
        presses,
    }
}

impl Script {
    fn first_ms(&self) -> u64 {
        self.presses[0].at
    }

    fn last_end_ms(&self) -> u64 {
        self.presses.last().map_or(0, |p| p.at + p.len)
    }

    fn digits(&self) -> String {
        self.presses.iter().map(|p| p.key as char).collect()
    }

    /// Interleaved stereo PCMU (caller, agent).
    fn stereo_pcmu(&self) -> Vec<u8> {
        self.caller
            .iter()
            .zip(&self.agent)
            .flat_map(|(c, a)| [linear_to_ulaw(pcm(*c)), linear_to_ulaw(pcm(*a))])
            .collect()
    }

    /// The caller alone, PCMU.
    fn mono_pcmu(&self) -> Vec<u8> {
        self.caller
            .iter()
            .map(|c| linear_to_ulaw(pcm(*c)))
            .collect()
    }

    /// The caller alone, L16 little-endian (AudioSocket).
    fn mono_l16(&self) -> Vec<u8> {
        self.caller
            .iter()
            .flat_map(|c| pcm(*c).to_le_bytes())
            .collect()
    }
}

fn pcm(x: f64) -> i16 {
    x.round().clamp(-32768.0, 32767.0) as i16
}

/// The digits multimon-ng finds in 16-bit samples at `rate` (one channel).
fn multimon(samples: &[i16], rate: u32) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = dir.path().join("in.raw");
    let up = dir.path().join("up.raw");
    std::fs::write(
        &raw,
        samples
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .expect("write raw");
    // multimon-ng reads 22 050 Hz signed 16-bit mono; sox resamples
    let rate = rate.to_string();
    let status = Command::new("sox")
        .args([
            "-t", "raw", "-r", &rate, "-e", "signed", "-b", "16", "-c", "1",
        ])
        .arg(&raw)
        .args([
            "-t", "raw", "-r", "22050", "-e", "signed", "-b", "16", "-c", "1",
        ])
        .arg(&up)
        .status()
        .expect("sox runs (apt-get install sox; tests/run.sh installs it)");
    assert!(status.success(), "sox failed");
    let out = Command::new("multimon-ng")
        .args(["-q", "-c", "-a", "DTMF", "-t", "raw"])
        .arg(&up)
        .output()
        .expect("multimon-ng runs (apt-get install multimon-ng; tests/run.sh installs it)");
    assert!(out.status.success(), "multimon-ng failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("DTMF: "))
        .filter_map(|d| d.trim().chars().next())
        .collect()
}

fn multimon_f32(samples: &[f32], rate: u32) -> String {
    let pcm: Vec<i16> = samples
        .iter()
        .map(|s| pcm(f64::from(*s) * 32768.0))
        .collect();
    multimon(&pcm, rate)
}

/// The decoder finds every key in what the caller sent: it can hear them.
fn assert_decoder_hears(script: &Script) {
    let sent: Vec<i16> = script.caller.iter().map(|c| pcm(*c)).collect();
    assert_eq!(
        multimon(&sent, RATE as u32),
        script.digits(),
        "multimon-ng must find every key in the audio sent"
    );
}

/// Root-mean-square level of `samples`.
fn rms(samples: &[f32]) -> f32 {
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt()
}

/// The stored recording holds no key on any channel, and the caller's speech before the first key
/// and after the quiet time that follows the last is there.
fn assert_keys_gone_speech_kept(what: &str, script: &Script, d: &Decoded, ledger: &[Value]) {
    for (ch, samples) in d.samples.iter().enumerate() {
        let found = multimon_f32(samples, d.rate);
        assert!(
            found.is_empty(),
            "{what}: multimon-ng found {} keys on channel {ch} of the stored recording; ledger {ledger:#?}",
            found.len()
        );
    }
    let caller = &d.samples[0];
    let sent: Vec<f32> = script.caller.iter().map(|c| *c as f32 / 32768.0).collect();
    let before = 500..(script.first_ms() - GUARD_MS - 300);
    let after = (script.last_end_ms() + QUIET_MS + 800)..(CALL_SECS as u64 * 1000 - 500);
    for range in [before, after] {
        let span = |x: &[f32]| {
            let a = range.start as usize * d.rate as usize / 1000;
            let b = (range.end as usize * d.rate as usize / 1000).min(x.len());
            x[a.min(b)..b].to_vec()
        };
        let (got, want) = (rms(&span(caller)), rms(&span(&sent)));
        assert!(
            got > want * 0.7,
            "{what}: the caller's speech over {range:?} ms is not stored (rms {got} of {want}); ledger {ledger:#?}"
        );
    }
    let paused: Vec<&Value> = ledger
        .iter()
        .filter(|e| e["kind"] == "dtmf_pause")
        .collect();
    assert!(
        !paused.is_empty(),
        "{what}: the ledger names the keypad pauses: {ledger:#?}"
    );
    for e in &paused {
        assert_eq!(e["details"]["found"], "tones", "{what}: {e}");
        let text = e.to_string();
        for p in &script.presses {
            // the ledger says how many keys, never which
            assert!(!text.contains(&format!("\"{}\"", p.key as char)), "{text}");
        }
    }
}

async fn ledger_of(live: &Live, call: &str) -> (String, Vec<Value>) {
    let row = live.wait_sealed(call).await;
    let ledger = live
        .catalog
        .ledger(row.id)
        .await
        .expect("ledger")
        .into_iter()
        .map(|e| json!({ "kind": e.kind, "details": serde_json::from_str::<Value>(&e.details).expect("json") }))
        .collect();
    (row.id.to_string(), ledger)
}

async fn sealed(live: &Live, call: &str) -> (Decoded, Vec<Value>) {
    let (status, body) = live.event(call, "call.ended", None, json!({})).await;
    assert_eq!(status, 200, "{body}");
    live.advance_ms(6_000);
    let (id, ledger) = ledger_of(live, call).await;
    let (status, wav) = live.play(&id, &live.supervisor).await;
    assert_eq!(
        status,
        200,
        "{call} plays: {}; {ledger:#?}",
        String::from_utf8_lossy(&wav)
    );
    (decode_wav(&wav), ledger)
}

/// A supervisor listening live to `call`: everything heard, as PCMU bytes of the stream's format,
/// and the kinds of the pause markers.
fn listen(live: &Live, call: &str) -> tokio::task::JoinHandle<(Vec<u8>, Vec<String>)> {
    let url = format!("ws://{}/v1/calls/{call}/listen?reason=quality", live.public);
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", live.supervisor)
            .parse()
            .expect("header"),
    );
    let public = live.public;
    tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(public)
            .await
            .expect("connect");
        let (mut ws, _) = tokio_tungstenite::client_async(req, tcp)
            .await
            .expect("listen opens");
        let mut audio = Vec::new();
        let mut paused = Vec::new();
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await
        {
            match msg {
                Message::Binary(b) => audio.extend_from_slice(&b),
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("json");
                    if v["type"] == "paused" {
                        paused.push(v["kind"].as_str().unwrap_or_default().to_owned());
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        (audio, paused)
    })
}

async fn native_call(live: &Live, call: &str, script: &Script) -> (Decoded, Vec<Value>) {
    let (status, body) = live.event(call, "call.started", None, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let mut ws = live.media(call).await;
    sync(&mut ws).await;
    let heard = listen(live, call);
    // the listener is subscribed before any audio is committed (3.5 s after it arrives)
    tokio::time::sleep(Duration::from_millis(200)).await;
    live.stream(&mut ws, &script.stereo_pcmu()).await;
    ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await
        .expect("stop");
    common::live::close_of(&mut ws).await;
    let out = sealed(live, call).await;
    let (heard, paused) = heard.await.expect("listener");
    assert!(
        paused.iter().any(|k| k == "dtmf"),
        "the listener is told capture paused for keys: {paused:?}"
    );
    assert!(
        heard.len() > RATE * 2 * 10,
        "the listener heard the call ({} bytes)",
        heard.len()
    );
    for ch in 0..2 {
        let samples: Vec<i16> = heard
            .iter()
            .skip(ch)
            .step_by(2)
            .map(|b| ULAW_TO_LINEAR[usize::from(*b)])
            .collect();
        assert_eq!(
            multimon(&samples, RATE as u32),
            "",
            "a live listener heard keys on channel {ch}"
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_over_the_native_socket_are_not_stored_nor_heard_live() {
    let live = Live::start("").await;
    for seed in [1u64, 2] {
        let s = script(seed);
        assert_decoder_hears(&s);
        let call = format!("CA-dtmf-native-{seed}");
        let (d, ledger) = native_call(&live, &call, &s).await;
        assert_keys_gone_speech_kept(&call, &s, &d, &ledger);
    }
    live.stop().await;
}

/// The control: with `pci.dtmf = "off"` the same keys are stored and decoded, so it is the
/// detector that removes them.
#[tokio::test(flavor = "multi_thread")]
async fn with_dtmf_off_the_keys_are_stored() {
    let live = Live::start("[pci]\ndtmf = \"off\"\n").await;
    let s = script(3);
    let (d, ledger) = native_call_unheard(&live, "CA-dtmf-off", &s).await;
    assert_eq!(
        multimon_f32(&d.samples[0], d.rate),
        s.digits(),
        "with dtmf off the stored caller channel holds every key; {ledger:#?}"
    );
    assert!(!ledger.iter().any(|e| e["kind"] == "dtmf_pause"));
    live.stop().await;
}

async fn native_call_unheard(live: &Live, call: &str, script: &Script) -> (Decoded, Vec<Value>) {
    let (status, body) = live.event(call, "call.started", None, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let mut ws = live.media(call).await;
    live.stream(&mut ws, &script.stereo_pcmu()).await;
    ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await
        .expect("stop");
    common::live::close_of(&mut ws).await;
    sealed(live, call).await
}

/// Under `pci.dtmf = "mask"` only the keys' own audio goes: no key is decoded, and the speech
/// between the card number and the code (which a pause would drop for its quiet time) is kept.
#[tokio::test(flavor = "multi_thread")]
async fn under_mask_only_the_keys_go() {
    let live = Live::start("[pci]\ndtmf = \"mask\"\n").await;
    let s = script(4);
    let (d, ledger) = native_call_unheard(&live, "CA-dtmf-mask", &s).await;
    assert_eq!(multimon_f32(&d.samples[0], d.rate), "", "{ledger:#?}");
    let masked = ledger.iter().filter(|e| e["kind"] == "dtmf_masked").count();
    assert!(
        masked >= 4,
        "each key (or run of touching keys) is masked: {ledger:#?}"
    );
    // the caller's speech right after the card number's last key is kept under mask
    let card_end = s.presses[15].at + s.presses[15].len;
    let a = (card_end + 600) as usize * RATE / 1000;
    let b = (s.presses[16].at - 600) as usize * RATE / 1000;
    let sent: Vec<f32> = s.caller[a..b].iter().map(|c| *c as f32 / 32768.0).collect();
    let got = rms(&d.samples[0][a..b]);
    assert!(
        got > rms(&sent) * 0.7,
        "speech between the number and the code kept under mask: {got} vs {}",
        rms(&sent)
    );
    live.stop().await;
}

async fn twilio_socket(live: &Live, call: &str) -> Socket {
    let req = format!("ws://{}/v1/twilio/media", live.public)
        .into_client_request()
        .expect("request");
    let tcp = tokio::net::TcpStream::connect(live.public)
        .await
        .expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("upgrade");
    for m in [
        json!({"event":"connected","protocol":"Call","version":"1.0.0"}),
        json!({"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{
            "streamSid":"MZ1","accountSid":"AC1","callSid":call,"tracks":["inbound"],
            "customParameters":{},
            "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}),
    ] {
        ws.send(Message::Text(m.to_string().into()))
            .await
            .expect("send");
    }
    sync(&mut ws).await;
    ws
}

/// Streams PCMU mono over Twilio in real time, 20 ms a message, sending a `dtmf` message where
/// `signal_at` (ms) says.
async fn twilio_stream(live: &Live, ws: &mut Socket, audio: &[u8], signal_at: &[u64]) {
    for (i, chunk) in audio.chunks(160).enumerate() {
        live.advance_ms(20);
        let ts = 20 * i as u64;
        let m = json!({"event":"media","sequenceNumber":(i + 2).to_string(),"streamSid":"MZ1",
            "media":{"track":"inbound","chunk":(i + 1).to_string(),"timestamp":ts.to_string(),
            "payload":base64::engine::general_purpose::STANDARD.encode(chunk)}});
        ws.send(Message::Text(m.to_string().into()))
            .await
            .expect("media");
        if signal_at.contains(&ts) {
            let d = json!({"event":"dtmf","streamSid":"MZ1","sequenceNumber":"0",
                "dtmf":{"track":"inbound_track","digit":"5"}});
            ws.send(Message::Text(d.to_string().into()))
                .await
                .expect("dtmf");
        }
        sync(ws).await;
    }
    ws.send(Message::Text(
        json!({"event":"stop","sequenceNumber":"0","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"x"}})
            .to_string()
            .into(),
    ))
    .await
    .expect("stop");
    common::live::close_of(ws).await;
}

const TWILIO: &str = "[twilio]\nenabled = true\npublic_url = \"https://rec.example.com\"\nverify_media_signature = false\n";

#[tokio::test(flavor = "multi_thread")]
async fn keys_over_twilio_are_not_stored() {
    let live = Live::start(TWILIO).await;
    let call = "CA00000000000000000000000000000d01";
    let s = script(5);
    let mut ws = twilio_socket(&live, call).await;
    twilio_stream(&live, &mut ws, &s.mono_pcmu(), &[]).await;
    let (d, ledger) = sealed(&live, call).await;
    assert_keys_gone_speech_kept(call, &s, &d, &ledger);
    live.stop().await;
}

/// Milliseconds of 1 kHz on `samples`, in 100 ms windows.
fn spans_1k(samples: &[f32], rate: u32) -> Vec<std::ops::Range<u64>> {
    common::audio::tone_spans(samples, rate, 1000.0, 100, 0.03)
}

/// A signalled key (no tone in the audio at all): capture pauses from `guard` before its arrival
/// to `dtmf_quiet` after it; the ledger says it was signalled.
fn assert_signalled_pause(what: &str, d: &Decoded, ledger: &[Value], key_ms: u64) {
    let spans = spans_1k(&d.samples[0], d.rate);
    let hole_from = key_ms - GUARD_MS;
    let hole_to = key_ms + QUIET_MS;
    for r in &spans {
        assert!(
            // in 100 ms windows: one partly inside each edge may still hold the tone
            r.end <= hole_from + 100 || r.start + 100 >= hole_to,
            "{what}: 1 kHz stored at {r:?} ms, inside the keypad pause {hole_from}..{hole_to}; {ledger:#?}"
        );
    }
    let kept: u64 = spans.iter().map(|r| r.end - r.start).sum();
    assert!(
        kept >= (hole_from - 300) + (CALL_SECS as u64 * 1000 - hole_to - 1_200),
        "{what}: the rest of the call is stored ({kept} ms): {spans:?}"
    );
    let e = ledger
        .iter()
        .find(|e| e["kind"] == "dtmf_pause")
        .unwrap_or_else(|| panic!("{what}: no dtmf_pause in {ledger:#?}"));
    assert_eq!(e["details"]["found"], "signalled", "{what}: {e}");
    assert_eq!(e["details"]["keys"], 1, "{what}: {e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signalled_twilio_key_pauses_capture() {
    let live = Live::start(TWILIO).await;
    let call = "CA00000000000000000000000000000d02";
    let mut ws = twilio_socket(&live, call).await;
    let audio = common::audio::tone(
        MediaFormat {
            codec: Codec::Pcmu,
            sample_rate: 8000,
            channels: 1,
        },
        1000.0,
        CALL_SECS as u64 * 1000,
    );
    twilio_stream(&live, &mut ws, &audio, &[12_000]).await;
    let (d, ledger) = sealed(&live, call).await;
    // the key is read after the frame that starts at 12 000 ms, i.e. at its arrival, 12 020 ms
    assert_signalled_pause(call, &d, &ledger, 12_020);
    live.stop().await;
}

/// Streams L16 mono over AudioSocket in real time (20 ms frames), sending a DTMF frame where
/// `signal_at` (ms) says, then hangs up.
async fn audiosocket_call(live: &Live, port: u16, id: &str, audio: &[u8], signal_at: &[u64]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut s = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => break s,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "listener: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    s.set_nodelay(true).expect("nodelay");
    let uuid: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&id.replace('-', "")[i * 2..i * 2 + 2], 16).expect("hex"))
        .collect();
    s.write_all(&encode(KIND_UUID, &uuid)).await.expect("uuid");
    let call: callvault::domain::CallId = id.parse().expect("id");
    let mut frames = audio.chunks(320).enumerate();
    // the first frame opens the media, anchored at the clock's now: let that happen first
    let (_, first) = frames.next().expect("audio");
    s.write_all(&encode(KIND_AUDIO, first))
        .await
        .expect("audio");
    while live
        .catalog
        .recording_by_call(&call)
        .await
        .expect("catalog")
        .is_none()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (i, frame) in frames {
        live.advance_ms(20);
        s.write_all(&encode(KIND_AUDIO, frame))
            .await
            .expect("audio");
        if signal_at.contains(&(20 * i as u64)) {
            s.write_all(&encode(KIND_DTMF, b"7")).await.expect("dtmf");
        }
        // no ping in AudioSocket: give the server a moment to read each frame before the clock moves
        s.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_micros(1500)).await;
    }
    s.write_all(&encode(KIND_HANGUP, &[]))
        .await
        .expect("hangup");
}

async fn audiosocket_sealed(live: &Live, id: &str) -> (Decoded, Vec<Value>) {
    // the hangup ends the call: let the look-back window pass
    tokio::time::sleep(Duration::from_millis(300)).await;
    live.advance_ms(6_000);
    let (rid, ledger) = ledger_of(live, id).await;
    let (status, wav) = live.play(&rid, &live.supervisor).await;
    assert_eq!(status, 200, "{id} plays");
    (decode_wav(&wav), ledger)
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_signalled_keys_over_audiosocket_are_not_stored() {
    let port = common::free_port();
    let live = Live::start(&format!("[audiosocket]\nlisten = \"127.0.0.1:{port}\"\n")).await;
    let s = script(6);
    let tones = "6ba7b810-9dad-11d1-80b4-00c04fd43d01";
    audiosocket_call(&live, port, tones, &s.mono_l16(), &[]).await;
    let (d, ledger) = audiosocket_sealed(&live, tones).await;
    assert_keys_gone_speech_kept(tones, &s, &d, &ledger);

    let signalled = "6ba7b810-9dad-11d1-80b4-00c04fd43d02";
    let audio = common::audio::tone(
        MediaFormat {
            codec: Codec::L16,
            sample_rate: 8000,
            channels: 1,
        },
        1000.0,
        CALL_SECS as u64 * 1000,
    );
    audiosocket_call(&live, port, signalled, &audio, &[15_000]).await;
    let (d, ledger) = audiosocket_sealed(&live, signalled).await;
    assert_signalled_pause(signalled, &d, &ledger, 15_000);
    live.stop().await;
}

#[test]
fn the_script_keys_what_it_says_and_goertzel_sees_them() {
    let s = script(1);
    assert_eq!(s.presses.len(), 19);
    let p = s.presses[0];
    let (lo, hi) = row_col(p.key);
    let a = p.at as usize * RATE / 1000;
    let w: Vec<f32> = s.caller[a..a + 400]
        .iter()
        .map(|x| *x as f32 / 32768.0)
        .collect();
    assert!(goertzel(&w, RATE as u32, lo) > 0.01 && goertzel(&w, RATE as u32, hi) > 0.01);
}
