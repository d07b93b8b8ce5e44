//! The PCI tone test of the acceptance criteria (DESIGN.md section 2, card payments).
//!
//! A call streams 6 s of a 1 kHz tone, then `payment.started`, 8 s of a 2 kHz tone standing for the
//! card digits, `payment.ended`, and 6 s of 1 kHz again. Whatever the timing and the route of the
//! payment events, no 2 kHz audio may be stored; the 1 kHz audio around the pause must be, with the
//! lengths the rules give (pause instant = min(event time, arrival) - `pci.guard`; resume at the
//! arrival of `payment.ended`); the ledger must say what happened; and nothing is stored in the
//! clear. Every case runs on a manual clock: the only real-time waits are the polls for sealing.

mod common;

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use callvault::domain::{Codec, MediaFormat};
use chrono::{DateTime, Utc};
use common::audio::{Decoded, assert_spans, decode_wav, goertzel, peak, tone, tone_spans};
use common::live::{Live, Socket, sync, t0};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// What the harness streams: PCMU, stereo, 8 kHz (16 bytes per millisecond).
const FORMAT: MediaFormat = MediaFormat {
    codec: Codec::Pcmu,
    sample_rate: 8000,
    channels: 2,
};
const BYTES_PER_MS: u64 = 16;
/// The call: 1 kHz until `CARD_START`, 2 kHz until `CARD_END`, 1 kHz until `CALL_END` (ms from t0).
const CARD_START: u64 = 6_000;
const CARD_END: u64 = 14_000;
const CALL_END: u64 = 20_000;
/// `pci.guard` and `pci.lookback` (the defaults).
const GUARD: u64 = 500;
const LOOKBACK: u64 = 3_000;
/// One sealed chunk: 16 KiB at 16 000 bytes a second.
const CHUNK_BYTES: u64 = 16_384;
const CHUNK_MS: u64 = 1_024;
/// The widest any edge of kept audio may be from the rules' figure: one chunk plus the guard.
const BOUND_MS: u64 = CHUNK_MS + GUARD;
/// How far a measured edge may be from the exact figure: the Goertzel window and a frame.
const EDGE_MS: u64 = 40;
/// `pci.max_latency`: a pause reaches this far past its resume's arrival (audio could have been
/// held up on its way that long), so capture resumes this much after `payment.ended` arrives.
const MARGIN_MS: u64 = 1_000;
/// Goertzel power of the test tones (amplitude 0.5) is 0.125 and of the pause tone 0.005.
const PRESENT: f32 = 0.03;
const PAUSE_TONE_PRESENT: f32 = 0.002;
/// Far below a tenth of a 2 kHz window's worth (0.125 / 100): leakage and quantisation only.
const ABSENT: f32 = 1e-3;

/// How a policy renders a pause on playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Render {
    Skip,
    Silence,
    Tone,
}

impl Render {
    fn config(self) -> String {
        let word = match self {
            Render::Skip => "skip",
            Render::Silence => "silence",
            Render::Tone => "tone",
        };
        format!("[policies.standard]\npause_render = \"{word}\"\n")
    }
}

/// One thing the platform does when the stream reaches a point.
#[derive(Debug, Clone)]
enum Step {
    /// A signed webhook event of this type, with `at` this many ms after t0, and extra fields.
    Webhook(&'static str, u64, Value),
    /// The same as a JSON control frame on the media socket, acknowledged before streaming on.
    Control(&'static str, u64),
    /// The media socket closes and a new one opens, its start frame saying its first sample is now.
    Reconnect,
}

/// A pause the ledger must show: its kind, instant, end (ms after t0) and lateness.
#[derive(Debug, Clone, Copy)]
struct WantPause {
    kind: &'static str,
    from: u64,
    to: Option<u64>,
    late_ms: i64,
}

/// What a case must come to.
#[derive(Debug, Clone)]
struct Want {
    /// The kept 1 kHz audio before the pause ends here (the recording starts at t0).
    before_end: u64,
    /// The kept 1 kHz audio after the pause, in call time, if any.
    after: Option<Range<u64>>,
    pauses: Vec<WantPause>,
    status: &'static str,
    /// `kept_bytes` of a `cut_back` ledger entry, if the open segment must have been cut back.
    cut_back: Option<u64>,
}

/// A case: its name, the render policy, the platform's steps by stream offset (ms), and the outcome.
struct Case {
    name: &'static str,
    render: Render,
    steps: Vec<(u64, Step)>,
    want: Want,
}

fn at(ms: u64) -> DateTime<Utc> {
    t0() + chrono::Duration::milliseconds(ms as i64)
}

fn ms_of(rfc3339: &str) -> u64 {
    let t = DateTime::parse_from_rfc3339(rfc3339)
        .expect("ledger times are RFC 3339")
        .with_timezone(&Utc);
    u64::try_from((t - t0()).num_milliseconds()).expect("after t0")
}

/// Everything the platform sends: 1 kHz, 2 kHz (the card digits), 1 kHz.
fn call_audio() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let before = tone(FORMAT, 1000.0, CARD_START);
    let card = tone(FORMAT, 2000.0, CARD_END - CARD_START);
    let after = tone(FORMAT, 1000.0, CALL_END - CARD_END);
    (before, card, after)
}

/// Sends `kind` as a control frame on the media socket and returns its ack.
async fn control(ws: &mut Socket, call: &str, kind: &str, at_ms: u64) -> Value {
    let id = format!("ctl-{call}-{kind}");
    let frame = json!({ "type": kind, "id": id, "at": at(at_ms).to_rfc3339() });
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .expect("control frame");
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an ack within 10 s")
            .expect("the socket stays open")
            .expect("a websocket message");
        if let Message::Text(t) = msg {
            let ack: Value = serde_json::from_str(t.as_str()).expect("the ack is JSON");
            assert_eq!(ack["type"], "ack", "{ack}");
            assert_eq!(ack["id"], id.as_str(), "{ack}");
            return ack;
        }
    }
}

/// The manual clock's offset from t0, in ms.
fn live_offset(live: &Live) -> u64 {
    u64::try_from((live.now() - t0()).num_milliseconds()).expect("after t0")
}

/// Opens the call's media socket with a start frame whose first sample is now.
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

/// Plays the call: `call.started`, the media socket (anchored at t0), the audio with the steps at
/// their offsets, `call.ended`; then lets the clock pass the look-back window and waits for the
/// recording to be sealed and uploaded. Returns the recording's id.
async fn play_call(live: &Live, call: &str, steps: &[(u64, Step)]) -> String {
    let (status, body) = live
        .event(
            call,
            "call.started",
            Some(t0()),
            json!({ "line": "+441744676789", "agent": "agent-7" }),
        )
        .await;
    assert_eq!(status, 200, "call.started: {body}");
    let mut ws = open_media(live, call).await;
    let (before, card, after) = call_audio();
    let audio = [before, card, after].concat();
    let mut pos = 0u64;
    for (offset, step) in steps {
        let (from, to) = (
            (pos * BYTES_PER_MS) as usize,
            (offset * BYTES_PER_MS) as usize,
        );
        live.stream(&mut ws, &audio[from..to]).await;
        pos = *offset;
        sync(&mut ws).await;
        assert_eq!(live_offset(live), *offset, "the clock follows the stream");
        match step {
            Step::Webhook(kind, at_ms, extra) => {
                let (status, body) = live
                    .event(call, kind, Some(at(*at_ms)), extra.clone())
                    .await;
                assert_eq!(status, 200, "{kind}: {body}");
                assert_eq!(body["status"], "applied", "{kind}: {body}");
            }
            Step::Control(kind, at_ms) => {
                let ack = control(&mut ws, call, kind, *at_ms).await;
                assert_eq!(ack["status"], "applied", "{kind}: {ack}");
            }
            Step::Reconnect => {
                ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
                    .await
                    .expect("stop frame");
                let closed = common::live::close_of(&mut ws).await;
                assert_eq!(closed.map(|c| c.0), Some(1000), "the stream stops cleanly");
                ws = open_media(live, call).await;
                sync(&mut ws).await;
            }
        }
    }
    live.stream(&mut ws, &audio[(pos * BYTES_PER_MS) as usize..])
        .await;
    sync(&mut ws).await;
    assert_eq!(live_offset(live), CALL_END);
    ws.send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await
        .expect("stop frame");
    let (status, body) = live
        .event(call, "call.ended", Some(at(CALL_END)), json!({}))
        .await;
    assert_eq!(status, 200, "call.ended: {body}");
    // past the look-back window: everything held may now be committed and sealed
    live.advance_ms((LOOKBACK + GUARD + 500) as i64);
    let row = live.wait_sealed(call).await;
    row.id.to_string()
}

/// Every 16-byte window of `audio`.
fn windows(audio: &[u8]) -> HashSet<[u8; 16]> {
    audio
        .windows(16)
        .map(|w| w.try_into().expect("16 bytes"))
        .collect()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read a state directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Decrypt-independent: no file of the state directory holds any 16 bytes of the audio sent, card
/// digits or not, and the object store does hold sealed segments (so the scan is not vacuous).
fn assert_nothing_in_the_clear(live: &Live) {
    let (before, card, after) = call_audio();
    let card = windows(&card);
    let speech: HashSet<[u8; 16]> = windows(&before).union(&windows(&after)).copied().collect();
    let state = &live.config.state_dir;
    let objects: Vec<_> = files(&state.join("objects"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cva"))
        .collect();
    assert!(!objects.is_empty(), "no sealed object under objects/");
    for path in files(state) {
        let bytes = std::fs::read(&path).expect("read a state file");
        for (i, w) in bytes.windows(16).enumerate() {
            let w: [u8; 16] = w.try_into().expect("16 bytes");
            let name = path.strip_prefix(state).unwrap_or(&path).display();
            assert!(
                !card.contains(&w),
                "{name} holds 2 kHz card audio in the clear at byte {i}"
            );
            assert!(
                !speech.contains(&w),
                "{name} holds 1 kHz audio in the clear at byte {i}"
            );
        }
    }
}

/// The largest 2 kHz power over 10 ms windows of any channel: a single 20 ms frame of card audio
/// fills at least one window.
fn max_2k(d: &Decoded) -> f32 {
    let len = (d.rate / 100) as usize;
    d.samples
        .iter()
        .flat_map(|ch| ch.chunks_exact(len).map(|w| goertzel(w, d.rate, 2000.0)))
        .fold(0.0, f32::max)
}

/// What one playback measured: the 1 kHz spans of channel 0, for the report.
struct Measured {
    spans: Vec<Range<u64>>,
    max_2k: f32,
    duration_ms: u64,
}

/// Checks one decoded playback against the case.
fn check_audio(what: &str, d: &Decoded, render: Render, want: &Want) -> Measured {
    assert_eq!(d.rate, 8000, "{what}: rate");
    assert_eq!(d.channels, 2, "{what}: channels");
    let m2k = max_2k(d);
    assert!(
        m2k < ABSENT,
        "{what}: 2 kHz card audio is stored (power {m2k}, a tone gives 0.125)"
    );
    // where the 1 kHz must be on the playback's timeline, where the pause is, and the length
    let (want_1k, gap, end): (Vec<Range<u64>>, Option<Range<u64>>, u64) =
        match (&want.after, render) {
            (None, _) => (
                std::iter::once(0..want.before_end).collect(),
                None,
                want.before_end,
            ),
            // the pause is cut out: the after-audio follows on directly
            (Some(after), Render::Skip) => {
                let end = want.before_end + (after.end - after.start);
                (std::iter::once(0..end).collect(), None, end)
            }
            (Some(after), Render::Silence | Render::Tone) => (
                Vec::from_iter([0..want.before_end, after.clone()]),
                Some(want.before_end..after.start),
                after.end,
            ),
        };
    assert!(
        d.duration_ms().abs_diff(end) <= EDGE_MS,
        "{what}: lasts {} ms, want {end} ms",
        d.duration_ms()
    );
    let mut spans0 = Vec::new();
    for ch in 0..d.channels {
        let spans = tone_spans(&d.samples[ch], d.rate, 1000.0, 20, PRESENT);
        assert_spans(
            &spans,
            &want_1k,
            EDGE_MS,
            &format!("{what}: 1 kHz, channel {ch}"),
        );
        // the brief's bound, which the exact figures above imply
        assert_spans(&spans, &want_1k, BOUND_MS, &format!("{what}: 1 kHz bound"));
        if let Some(gap) = &gap {
            // inside the gap (away from its edges), what the policy says and nothing else
            let inner = gap.start + EDGE_MS..gap.end - EDGE_MS;
            let samples = d.window(ch, inner.clone());
            assert!(!samples.is_empty(), "{what}: empty gap {inner:?}");
            let p1k = goertzel(samples, d.rate, 1000.0);
            assert!(p1k < ABSENT, "{what}: 1 kHz in the pause (power {p1k})");
            match render {
                Render::Silence => {
                    let pk = peak(samples);
                    assert!(pk < 1e-3, "{what}: the pause is not silent (peak {pk})");
                }
                Render::Tone => {
                    let beeps = tone_spans(
                        &d.samples[ch],
                        d.rate,
                        f64::from(callvault::audio::tone::TONE_HZ),
                        20,
                        PAUSE_TONE_PRESENT,
                    );
                    assert_spans(
                        &beeps,
                        std::slice::from_ref(gap),
                        EDGE_MS,
                        &format!("{what}: 425 Hz"),
                    );
                }
                Render::Skip => unreachable!("a skipped pause leaves no gap"),
            }
        }
        if ch == 0 {
            spans0 = spans;
        }
    }
    Measured {
        spans: spans0,
        max_2k: m2k,
        duration_ms: d.duration_ms(),
    }
}

/// Runs a case end to end and checks everything the acceptance criteria ask.
async fn run(case: Case) {
    let live = Live::start(&case.render.config()).await;
    let call = format!("call-{}", case.name);
    let id = play_call(&live, &call, &case.steps).await;
    let want = &case.want;

    // metadata, segments and ledger
    let (status, _, body) = live
        .get(&format!("/v1/recordings/{id}"), &live.supervisor)
        .await;
    assert_eq!(status, 200, "GET recording");
    let detail: Value = serde_json::from_slice(&body).expect("recording JSON");
    assert_eq!(detail["status"], want.status, "status: {detail:#}");
    let ledger = detail["ledger"].as_array().expect("a ledger");
    let of_kind = |kind: &str| -> Vec<&Value> {
        ledger
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| &e["details"])
            .collect()
    };
    let pauses = of_kind("pause");
    let resumes = of_kind("resume");
    assert_eq!(
        pauses.len(),
        want.pauses.len(),
        "pause entries: {pauses:#?}"
    );
    for wp in &want.pauses {
        let p = pauses
            .iter()
            .find(|p| p["kind"] == wp.kind)
            .unwrap_or_else(|| panic!("no {} pause in {pauses:#?}", wp.kind));
        let from = ms_of(p["from"].as_str().expect("from"));
        assert_eq!(from, wp.from, "{} pause instant: {p}", wp.kind);
        assert_eq!(p["late_ms"], wp.late_ms, "{} pause late_ms: {p}", wp.kind);
        let r: Vec<_> = resumes.iter().filter(|r| r["kind"] == wp.kind).collect();
        match wp.to {
            Some(to) => {
                assert_eq!(r.len(), 1, "one {} resume: {resumes:#?}", wp.kind);
                let got = ms_of(r[0]["at"].as_str().expect("at"));
                assert_eq!(got, to, "{} resume: {}", wp.kind, r[0]);
            }
            None => assert!(r.is_empty(), "fail closed, yet resumed: {r:#?}"),
        }
    }
    let cut_backs = of_kind("cut_back");
    match want.cut_back {
        Some(kept) => assert!(
            cut_backs.iter().any(|c| c["kept_bytes"] == kept),
            "no cut_back keeping {kept} bytes: {cut_backs:#?}"
        ),
        None => assert!(cut_backs.is_empty(), "unexpected cut_back: {cut_backs:#?}"),
    }
    // no segment holds audio inside a pause, except the sealed one a pci_review is about
    let segments = detail["segments"].as_array().expect("segments");
    assert!(!segments.is_empty(), "no segments");
    let mut overlapping = Vec::new();
    for s in segments {
        assert_eq!(s["status"], "stored", "segment not uploaded: {s}");
        let (a, b) = (
            s["media_start_ms"].as_u64().expect("start"),
            s["media_end_ms"].as_u64().expect("end"),
        );
        if a < b
            && want
                .pauses
                .iter()
                .any(|p| p.from < b && p.to.is_none_or(|to| to > a))
        {
            overlapping.push(s["segment"].as_u64().expect("number"));
        }
    }
    if want.status == "pci_review" {
        assert_eq!(overlapping, [0], "only segment 0 may hold paused audio");
        let audit = live.catalog.audit_after(0, 10_000).await.expect("audit");
        assert!(
            audit
                .iter()
                .any(|a| a.entry.action == "recording.pci_review" && a.entry.subject == id),
            "no recording.pci_review audit entry for {id}"
        );
    } else {
        assert!(
            overlapping.is_empty(),
            "segments {overlapping:?} overlap a pause: {segments:#?}"
        );
    }

    // playback, as pcm16 and in the stored codec
    let player = if want.status == "pci_review" {
        let (status, refused) = live.play(&id, &live.supervisor).await;
        assert_eq!(
            status, 409,
            "a supervisor may not play a pci_review recording"
        );
        let problem: Value = serde_json::from_slice(&refused).expect("problem JSON");
        assert_eq!(problem["code"], "compliance_only", "{problem}");
        &live.compliance
    } else {
        &live.supervisor
    };
    let (status, wav) = live.play(&id, player).await;
    assert_eq!(status, 200, "play pcm16");
    let pcm = check_audio("pcm16", &decode_wav(&wav), case.render, want);
    let (status, _, stored) = live
        .get(&format!("/v1/recordings/{id}/audio?reason=test"), player)
        .await;
    assert_eq!(status, 200, "play stored");
    assert!(
        stored.len() * 3 < wav.len() * 2,
        "the stored codec (8-bit mu-law) is about half the size of pcm16: {} vs {} bytes",
        stored.len(),
        wav.len()
    );
    let st = check_audio("stored", &decode_wav(&stored), case.render, want);

    assert_nothing_in_the_clear(&live);
    eprintln!(
        "[{}] render {:?}: 1 kHz spans {:?} (stored codec {:?}), {} ms long, max 2 kHz power {:.2e} / {:.2e}",
        case.name, case.render, pcm.spans, st.spans, pcm.duration_ms, pcm.max_2k, st.max_2k
    );
    live.stop().await;
}

fn payment(from: u64, to: Option<u64>, late_ms: i64) -> WantPause {
    WantPause {
        kind: "payment",
        from,
        to,
        late_ms,
    }
}

/// The usual outcome: 1 kHz kept up to the pause instant, and again from the resume.
fn usual(pause_from: u64, late_ms: i64) -> Want {
    Want {
        before_end: pause_from,
        after: Some(CARD_END + MARGIN_MS..CALL_END),
        pauses: vec![payment(pause_from, Some(CARD_END), late_ms)],
        status: "sealed",
        cut_back: None,
    }
}

fn webhook(kind: &'static str, at_ms: u64) -> Step {
    Step::Webhook(kind, at_ms, json!({}))
}

/// `payment.started` posted `late` ms after the 2 kHz starts, timestamped at its start.
fn late_case(name: &'static str, render: Render, late: u64) -> Case {
    Case {
        name,
        render,
        steps: vec![
            (CARD_START + late, webhook("payment.started", CARD_START)),
            (CARD_END, webhook("payment.ended", CARD_END)),
        ],
        want: usual(CARD_START - GUARD, late as i64),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_on_time() {
    run(late_case("on-time", Render::Silence, 0)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_on_time_rendered_as_skip() {
    run(late_case("skip", Render::Skip, 0)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_on_time_rendered_as_tone() {
    run(late_case("tone", Render::Tone, 0)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_one_second_late() {
    run(late_case("late-1s", Render::Silence, 1_000)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_2_9_seconds_late() {
    run(late_case("late-2900ms", Render::Silence, 2_900)).await;
}

/// The media socket drops during the card digits and the platform reconnects: the new stream
/// continues the call's timeline, so the audio before the pause stays where it was.
#[tokio::test(flavor = "multi_thread")]
async fn payment_with_a_media_reconnect_during_the_pause() {
    let mut case = late_case("reconnect", Render::Silence, 0);
    case.steps.insert(1, (10_000, Step::Reconnect));
    run(case).await;
}

/// The boundary the design promises: a webhook exactly `lookback` late still keeps the card audio
/// out of storage, with nothing to cut back.
#[tokio::test(flavor = "multi_thread")]
async fn payment_exactly_lookback_late() {
    run(late_case("late-3s", Render::Silence, LOOKBACK)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_early() {
    let early = CARD_START - 1_000;
    run(Case {
        name: "early",
        render: Render::Silence,
        steps: vec![
            (early, webhook("payment.started", early)),
            (CARD_END, webhook("payment.ended", CARD_END)),
        ],
        want: usual(early - GUARD, 0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_as_media_control_frames() {
    run(Case {
        name: "control",
        render: Render::Silence,
        steps: vec![
            (CARD_START, Step::Control("payment.started", CARD_START)),
            (CARD_END, Step::Control("payment.ended", CARD_END)),
        ],
        want: usual(CARD_START - GUARD, 0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_without_end_fails_closed() {
    run(Case {
        name: "no-end",
        render: Render::Silence,
        steps: vec![(CARD_START, webhook("payment.started", CARD_START))],
        want: Want {
            before_end: CARD_START - GUARD,
            after: None,
            pauses: vec![payment(CARD_START - GUARD, None, 0)],
            status: "sealed",
            cut_back: None,
        },
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_beyond_lookback_cuts_the_open_segment_back() {
    let late = 5_000;
    let instant = CARD_START - GUARD;
    // the last chunk boundary before the pause instant
    let kept = instant * BYTES_PER_MS / CHUNK_BYTES * CHUNK_BYTES;
    let mut case = late_case("late-5s", Render::Silence, late);
    case.want.before_end = kept / BYTES_PER_MS;
    case.want.cut_back = Some(kept);
    run(case).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_in_a_sealed_segment_goes_to_pci_review() {
    // the agent pauses briefly at 4 s, which closes segment 0 at 3.5 s; the platform's
    // payment.started says 3 s but arrives 12 s late, after segment 0 was sealed
    let reason = json!({ "reason": "caller asked for a moment" });
    let (agent_at, agent_back, pay_at, late) = (4_000, 4_500, 3_000, 12_000);
    run(Case {
        name: "pci-review",
        render: Render::Silence,
        steps: vec![
            (
                agent_at,
                Step::Webhook("recording.paused", agent_at, reason.clone()),
            ),
            (
                agent_back,
                Step::Webhook("recording.resumed", agent_back, reason),
            ),
            (pay_at + late, webhook("payment.started", pay_at)),
            (pay_at + late, webhook("payment.ended", CARD_END)),
        ],
        want: Want {
            before_end: agent_at - GUARD,
            after: Some(pay_at + late + MARGIN_MS..CALL_END),
            pauses: vec![
                WantPause {
                    kind: "agent",
                    from: agent_at - GUARD,
                    to: Some(agent_back),
                    late_ms: 0,
                },
                payment(pay_at - GUARD, Some(pay_at + late), late as i64),
            ],
            status: "pci_review",
            // the open segment 1, wholly after the pause instant, is cut back to nothing
            cut_back: Some(0),
        },
    })
    .await;
}

/// The detector itself: one 20 ms frame of card audio anywhere in silence, on either channel, is
/// far above [`ABSENT`], so "no 2 kHz energy anywhere" can fail.
#[test]
fn one_frame_of_card_audio_is_detected() {
    use callvault::audio::g711::ULAW_TO_LINEAR;
    let frame = tone(FORMAT, 2000.0, 20);
    for offset_ms in [0u64, 7, 13, 1_003] {
        for channel in 0..2 {
            let mut samples = vec![vec![0.0f32; 8 * 2_000]; 2];
            for (i, pair) in frame.chunks_exact(2).enumerate() {
                let s = f32::from(ULAW_TO_LINEAR[usize::from(pair[channel])]) / 32768.0;
                samples[channel][(offset_ms * 8) as usize + i] = s;
            }
            let d = Decoded {
                rate: 8000,
                channels: 2,
                samples,
            };
            let p = max_2k(&d);
            assert!(p > 20.0 * ABSENT, "{offset_ms} ms, channel {channel}: {p}");
        }
    }
}
