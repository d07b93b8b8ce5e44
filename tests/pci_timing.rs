//! No card audio, whatever the timing of the audio itself (DESIGN.md section 2, "Two clocks"):
//! streams that stop sending before a payment, a network stall whose burst arrives after
//! `payment.ended`, start frames claiming a time 10 s in the past or in 1970, audio delivered in
//! one-second bursts, and Twilio media whose timestamps jump. Each call speaks a 1 kHz tone, then
//! the card digits as a 2 kHz tone while the payment is open, then 1 kHz again; the stored audio
//! is decoded and must hold no 2 kHz anywhere, and the 1 kHz after the payment must be there.
//! Everything runs on the daemon's manual clock, so "late" and "a burst" are exact.

mod common;

use base64::Engine;
use callvault::domain::{Codec, MediaFormat};
use common::audio::{Decoded, decode_wav, goertzel, tone, tone_spans};
use common::live::{Live, Socket, sync};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const STEREO: MediaFormat = MediaFormat {
    codec: Codec::Pcmu,
    sample_rate: 8000,
    channels: 2,
};
const MONO: MediaFormat = MediaFormat {
    codec: Codec::Pcmu,
    sample_rate: 8000,
    channels: 1,
};
/// One 20 ms frame of stereo PCMU.
const FRAME: usize = 320;
/// Goertzel power of a tone at amplitude 0.5 is 0.125; leakage and quantisation stay far below.
const ABSENT: f32 = 1e-3;
const PRESENT: f32 = 0.03;

/// The loudest 2 kHz in any 100 ms window of either channel.
fn max_2k(d: &Decoded) -> f32 {
    let win = (d.rate / 10) as usize;
    d.samples
        .iter()
        .flat_map(|ch| ch.chunks(win).map(|w| goertzel(w, d.rate, 2000.0)))
        .fold(0.0, f32::max)
}

/// Milliseconds of 1 kHz on the caller's channel.
fn ms_of_1k(d: &Decoded) -> u64 {
    tone_spans(&d.samples[0], d.rate, 1000.0, 100, PRESENT)
        .iter()
        .map(|r| r.end - r.start)
        .sum()
}

/// Sends `audio` at once, as one burst of frames read together, then waits until the server has
/// read it.
async fn burst(ws: &mut Socket, audio: &[u8]) {
    for frame in audio.chunks(FRAME) {
        ws.send(Message::Binary(frame.to_vec().into()))
            .await
            .expect("frame");
    }
    sync(ws).await;
}

async fn open(live: &Live, call: &str, media_start: Option<&str>) -> Socket {
    let (status, body) = live.event(call, "call.started", None, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let mut ws = live
        .media_with(call, Some(&live.telephony))
        .await
        .expect("media socket");
    let mut start = json!({ "type": "start", "codec": "PCMU", "sample_rate": 8000, "channels": 2 });
    if let Some(t) = media_start {
        start["media_start"] = json!(t);
    }
    ws.send(Message::Text(start.to_string().into()))
        .await
        .expect("start");
    sync(&mut ws).await;
    ws
}

async fn webhook(live: &Live, call: &str, kind: &str) {
    let (status, body) = live.event(call, kind, None, json!({})).await;
    assert_eq!(status, 200, "{kind}: {body}");
    assert_eq!(body["status"], "applied", "{kind}: {body}");
}

/// Stops the stream, then [`sealed`].
async fn finish(live: &Live, call: &str, mut ws: Socket) -> (Decoded, Vec<Value>) {
    ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await
        .expect("stop");
    common::live::close_of(&mut ws).await;
    sealed(live, call).await
}

/// Ends the call, lets the look-back window pass, and returns the decoded recording and its
/// ledger.
async fn sealed(live: &Live, call: &str) -> (Decoded, Vec<Value>) {
    webhook(live, call, "call.ended").await;
    live.advance_ms(5_000);
    let row = live.wait_sealed(call).await;
    let (status, wav) = live.play(&row.id.to_string(), &live.supervisor).await;
    assert_eq!(status, 200, "{call} plays");
    let ledger = live
        .catalog
        .ledger(row.id)
        .await
        .expect("ledger")
        .into_iter()
        .map(|e| json!({ "kind": e.kind, "details": serde_json::from_str::<Value>(&e.details).expect("json") }))
        .collect();
    (decode_wav(&wav), ledger)
}

fn assert_no_card_audio(call: &str, d: &Decoded, ledger: &[Value]) {
    let worst = max_2k(d);
    assert!(
        worst < ABSENT,
        "{call}: card audio (2 kHz) stored, power {worst}; ledger {ledger:#?}"
    );
}

/// A call that speaks 1 kHz, stops sending for 8 s (silence suppression: nothing spoken), then
/// pays by card (2 kHz) and speaks 1 kHz again. Once a byte count was the only clock, the card
/// digits were placed 8 s early, outside the pause, and stored.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_stops_for_8_s_before_the_payment_stores_no_card_audio() {
    let live = Live::start("").await;
    let call = "gap-before-payment";
    let mut ws = open(&live, call, Some(&live.now().to_rfc3339())).await;
    live.stream(&mut ws, &tone(STEREO, 1000.0, 4_000)).await;
    live.advance_ms(8_000);
    webhook(&live, call, "payment.started").await;
    live.stream(&mut ws, &tone(STEREO, 2000.0, 5_000)).await;
    webhook(&live, call, "payment.ended").await;
    live.stream(&mut ws, &tone(STEREO, 1000.0, 5_000)).await;
    let (d, ledger) = finish(&live, call, ws).await;
    assert_no_card_audio(call, &d, &ledger);
    let kept = ms_of_1k(&d);
    assert!(
        kept >= 4_000 + 3_500,
        "{call}: the 1 kHz before and after the payment is kept: {kept} ms; {ledger:#?}"
    );
    assert!(
        ledger.iter().any(|e| e["kind"] == "gap"
            && e["details"]["cause"] == "stream_paused"
            && e["details"]["length_ms"].as_i64().unwrap_or(0) >= 7_500),
        "{call}: the ledger names the 8 s gap: {ledger:#?}"
    );
    // the gap plays as silence (nothing was spoken), the payment as the policy's pause tone
    let beep = f64::from(callvault::audio::tone::TONE_HZ);
    let beeps = tone_spans(&d.samples[0], d.rate, beep, 100, 0.002);
    assert!(
        beeps.iter().all(|r| r.end <= 4_100 || r.start >= 11_400),
        "{call}: the pause tone sounds in the gap: {beeps:?}; {ledger:#?}"
    );
    let in_pause: u64 = beeps
        .iter()
        .map(|r| r.end.min(17_000).saturating_sub(r.start.max(12_000)))
        .sum();
    assert!(
        in_pause >= 4_500,
        "{call}: the payment pause sounds its tone: {beeps:?}"
    );
    live.stop().await;
}

/// The card digits are spoken while the payment is open, but the network holds them up: they
/// arrive in one burst after `payment.ended`. They must not slip through.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_held_up_across_the_payment_stores_no_card_audio() {
    let live = Live::start("").await;
    let call = "stall-across-payment";
    let mut ws = open(&live, call, Some(&live.now().to_rfc3339())).await;
    live.stream(&mut ws, &tone(STEREO, 1000.0, 4_000)).await;
    webhook(&live, call, "payment.started").await;
    // spoken from now for 3 s, none of it arrives yet
    live.advance_ms(3_000);
    webhook(&live, call, "payment.ended").await;
    // 500 ms later the held-up audio arrives at once: the card digits, then 1 kHz spoken after
    live.advance_ms(500);
    let mut held = tone(STEREO, 2000.0, 3_000);
    held.extend(tone(STEREO, 1000.0, 500));
    burst(&mut ws, &held).await;
    live.stream(&mut ws, &tone(STEREO, 1000.0, 5_000)).await;
    let (d, ledger) = finish(&live, call, ws).await;
    assert_no_card_audio(call, &d, &ledger);
    let kept = ms_of_1k(&d);
    assert!(
        kept >= 4_000 + 4_000,
        "{call}: 1 kHz around the payment kept: {kept} ms; {ledger:#?}"
    );
    live.stop().await;
}

/// A start frame whose first sample lies 10 s in the past, or in 1970: the media clock is
/// anchored no more than `pci.max_latency` before the first audio arrives.
#[tokio::test(flavor = "multi_thread")]
async fn a_start_time_in_the_past_or_in_1970_stores_no_card_audio() {
    let live = Live::start("").await;
    for (call, claim) in [
        (
            "start-10s-ago",
            (live.now() - chrono::Duration::seconds(10)).to_rfc3339(),
        ),
        ("start-in-1970", "1970-01-01T00:00:00Z".to_owned()),
    ] {
        let mut ws = open(&live, call, Some(&claim)).await;
        live.stream(&mut ws, &tone(STEREO, 1000.0, 4_000)).await;
        webhook(&live, call, "payment.started").await;
        live.stream(&mut ws, &tone(STEREO, 2000.0, 5_000)).await;
        webhook(&live, call, "payment.ended").await;
        live.stream(&mut ws, &tone(STEREO, 1000.0, 5_000)).await;
        let (d, ledger) = finish(&live, call, ws).await;
        assert_no_card_audio(call, &d, &ledger);
        let kept = ms_of_1k(&d);
        assert!(
            kept >= 3_000 + 3_500,
            "{call}: 1 kHz kept: {kept} ms; {ledger:#?}"
        );
        assert!(
            ledger.iter().any(|e| e["kind"] == "anchor_clamped"),
            "{call}: the ledger says the anchor was moved: {ledger:#?}"
        );
    }
    live.stop().await;
}

/// The whole call arrives in one-second bursts (a platform or proxy that batches), with the
/// payment events on time.
#[tokio::test(flavor = "multi_thread")]
async fn one_second_bursts_store_no_card_audio() {
    let live = Live::start("").await;
    let call = "one-second-bursts";
    let mut ws = open(&live, call, None).await;
    let mut audio = tone(STEREO, 1000.0, 5_000);
    audio.extend(tone(STEREO, 2000.0, 5_000));
    audio.extend(tone(STEREO, 1000.0, 6_000));
    for (i, second) in audio.chunks(16_000).enumerate() {
        // the second just spoken arrives at its end
        live.advance_ms(1_000);
        if i == 5 {
            // the payment starts as the card digits begin: on time, before they arrive
            live.advance_ms(-1_000);
            webhook(&live, call, "payment.started").await;
            live.advance_ms(1_000);
        }
        if i == 10 {
            live.advance_ms(-1_000);
            webhook(&live, call, "payment.ended").await;
            live.advance_ms(1_000);
        }
        burst(&mut ws, second).await;
    }
    let (d, ledger) = finish(&live, call, ws).await;
    assert_no_card_audio(call, &d, &ledger);
    let kept = ms_of_1k(&d);
    assert!(
        kept >= 3_000 + 4_000,
        "{call}: 1 kHz kept: {kept} ms; {ledger:#?}"
    );
    live.stop().await;
}

/// Twilio media with gaps in `media.timestamp` (a track that skipped silence), with the card
/// digits after a jump: the timestamps place them, and the payment drops them.
#[tokio::test(flavor = "multi_thread")]
async fn twilio_media_with_timestamp_gaps_stores_no_card_audio() {
    let live = Live::start(
        "[twilio]\nenabled = true\npublic_url = \"https://rec.example.com\"\nverify_media_signature = false\n",
    )
    .await;
    let call = "CA00000000000000000000000000000001";
    let req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/v1/twilio/media", live.public),
    )
    .expect("request");
    let tcp = tokio::net::TcpStream::connect(live.public)
        .await
        .expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("upgrade");
    let text = |v: Value| Message::Text(v.to_string().into());
    ws.send(text(
        json!({"event":"connected","protocol":"Call","version":"1.0.0"}),
    ))
    .await
    .expect("connected");
    ws.send(text(
        json!({"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{
        "streamSid":"MZ1","accountSid":"AC1","callSid":call,"tracks":["inbound"],
        "customParameters":{},
        "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}),
    ))
    .await
    .expect("start");
    sync(&mut ws).await;
    let mut seq = 2u64;
    // media of `audio` starting at stream time `ts_ms`, 20 ms a message, in real time
    async fn media(live: &Live, ws: &mut Socket, seq: &mut u64, ts_ms: u64, audio: &[u8]) {
        for (i, chunk) in audio.chunks(160).enumerate() {
            live.advance_ms(20);
            let m = json!({"event":"media","sequenceNumber":seq.to_string(),"streamSid":"MZ1",
                "media":{"track":"inbound","chunk":seq.to_string(),
                "timestamp":(ts_ms + 20 * i as u64).to_string(),
                "payload":base64::engine::general_purpose::STANDARD.encode(chunk)}});
            *seq += 1;
            ws.send(Message::Text(m.to_string().into()))
                .await
                .expect("media");
            sync(ws).await;
        }
    }
    media(&live, &mut ws, &mut seq, 0, &tone(MONO, 1000.0, 4_000)).await;
    // the track skips 6 s: nothing is sent, the timestamps jump
    live.advance_ms(6_000);
    webhook(&live, call, "payment.started").await;
    media(&live, &mut ws, &mut seq, 10_000, &tone(MONO, 2000.0, 4_000)).await;
    webhook(&live, call, "payment.ended").await;
    media(&live, &mut ws, &mut seq, 14_000, &tone(MONO, 1000.0, 5_000)).await;
    ws.send(text(
        json!({"event":"stop","sequenceNumber":seq.to_string(),"streamSid":"MZ1",
        "stop":{"accountSid":"AC1","callSid":call}}),
    ))
    .await
    .expect("stop");
    common::live::close_of(&mut ws).await;
    let (d, ledger) = sealed(&live, call).await;
    assert_no_card_audio(call, &d, &ledger);
    let kept = ms_of_1k(&d);
    assert!(
        kept >= 4_000 + 4_000,
        "{call}: 1 kHz kept: {kept} ms; {ledger:#?}"
    );
    live.stop().await;
}
