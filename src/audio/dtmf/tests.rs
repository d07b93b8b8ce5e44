//! The detector against synthetic keypad tones: every key, codec and level, the shortest tones and
//! pauses, twist limits, noise, frames of any length, and the redaction of the digit.

use std::f64::consts::TAU;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::analysis::DBM0_PEAK;
use super::*;
use crate::audio::g711::{linear_to_alaw, linear_to_ulaw};

const RATE: u32 = 8000;

fn format(codec: Codec, channels: u8) -> MediaFormat {
    MediaFormat {
        codec,
        sample_rate: RATE,
        channels,
    }
}

fn peak(dbm0: f64) -> f64 {
    f64::from(DBM0_PEAK) * 10f64.powf(dbm0 / 20.0)
}

/// One channel's samples, as floats until encoded.
struct Track(Vec<f64>);

impl Track {
    fn silence(ms: u64) -> Self {
        Self(vec![0.0; (ms * u64::from(RATE) / 1000) as usize])
    }

    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    /// Appends `ms` of `digit`: the low tone at `low_dbm0`, the high one `twist_db` above it.
    fn key(mut self, digit: char, low_dbm0: f64, twist_db: f64, ms: u64, rng: &mut StdRng) -> Self {
        let (lo, hi) = Digit::from_char(digit).expect("a key").frequencies();
        let (a_lo, a_hi) = (peak(low_dbm0), peak(low_dbm0 + twist_db));
        let (p_lo, p_hi) = (rng.r#gen::<f64>() * TAU, rng.r#gen::<f64>() * TAU);
        let n = ms * u64::from(RATE) / 1000;
        for i in 0..n {
            let t = i as f64 / f64::from(RATE);
            self.0.push(
                a_lo * (TAU * f64::from(lo) * t + p_lo).sin()
                    + a_hi * (TAU * f64::from(hi) * t + p_hi).sin(),
            );
        }
        self
    }

    fn then(mut self, other: Track) -> Self {
        self.0.extend(other.0);
        self
    }

    /// Adds white noise at `dbm0` over the whole track.
    fn noise(mut self, dbm0: f64, rng: &mut StdRng) -> Self {
        // uniform noise of half-width w has power w^2 / 3; a 0 dBm0 sine has DBM0_PEAK^2 / 2
        let w = peak(dbm0) * (3.0f64 / 2.0).sqrt();
        for s in &mut self.0 {
            *s += rng.gen_range(-w..w);
        }
        self
    }

    fn pcm(&self) -> Vec<i16> {
        self.0
            .iter()
            .map(|s| s.round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }
}

/// Interleaves tracks (padding the shorter with silence) and encodes them.
fn encode(codec: Codec, tracks: &[&Track]) -> Vec<u8> {
    let len = tracks.iter().map(|t| t.0.len()).max().unwrap_or(0);
    let pcm: Vec<Vec<i16>> = tracks.iter().map(|t| t.pcm()).collect();
    let mut out = Vec::new();
    for i in 0..len {
        for t in &pcm {
            let s = t.get(i).copied().unwrap_or(0);
            match codec {
                Codec::Pcmu => out.push(linear_to_ulaw(s)),
                Codec::Pcma => out.push(linear_to_alaw(s)),
                Codec::L16 => out.extend_from_slice(&s.to_le_bytes()),
            }
        }
    }
    out
}

/// Every span found in `bytes`, fed at once then finished, with the events in order.
fn spans(f: MediaFormat, config: DetectorConfig, bytes: &[u8]) -> Vec<ToneSpan> {
    let mut d = DtmfDetector::new(f, config).expect("a supported format");
    let mut events = Vec::new();
    d.feed(bytes, &mut events);
    d.finish(&mut events);
    ended(&events)
}

fn ended(events: &[ToneEvent]) -> Vec<ToneSpan> {
    events
        .iter()
        .filter_map(|e| match e {
            ToneEvent::Ended(s) => Some(*s),
            ToneEvent::Started { .. } => None,
        })
        .collect()
}

fn keys(spans: &[ToneSpan]) -> String {
    spans.iter().map(|s| s.digit().reveal()).collect()
}

/// The most a span may reach past its tone at either end: the padding block and the partial one.
const SLACK: u64 = 2 * 102;

fn assert_covers(span: &ToneSpan, tone: std::ops::Range<u64>) {
    assert!(
        span.start <= tone.start && span.end >= tone.end,
        "span {}..{} does not cover tone {tone:?}",
        span.start,
        span.end
    );
    assert!(
        tone.start - span.start <= SLACK && span.end - tone.end <= SLACK,
        "span {}..{} too wide for tone {tone:?}",
        span.start,
        span.end
    );
}

#[test]
fn every_key_on_every_codec_from_minus_3_to_minus_30_dbm0() {
    let mut rng = StdRng::seed_from_u64(1);
    for codec in [Codec::Pcmu, Codec::Pcma, Codec::L16] {
        for level in [-3.0, -10.0, -20.0, -30.0] {
            for (i, digit) in Digit::all().enumerate() {
                let key = digit.reveal();
                // the key on one channel, noise 25 dB below it on both
                let lead = Track::silence(37 + (i as u64 * 7) % 50);
                let start = lead.len();
                let keyed = lead.key(key, level, 0.0, 60, &mut rng);
                let end = keyed.len();
                let keyed = keyed.then(Track::silence(60)).noise(level - 25.0, &mut rng);
                let quiet = Track::silence(157).noise(level - 25.0, &mut rng);
                let channel = (i % 2) as u8;
                let tracks = if channel == 0 {
                    [&keyed, &quiet]
                } else {
                    [&quiet, &keyed]
                };
                let found = spans(
                    format(codec, 2),
                    DetectorConfig::default(),
                    &encode(codec, &tracks),
                );
                assert_eq!(
                    keys(&found),
                    key.to_string(),
                    "{codec} {level} dBm0 key {key}"
                );
                assert_eq!(found[0].channel, channel);
                assert_covers(&found[0], start..end);
            }
        }
    }
}

#[test]
fn a_40_ms_tone_is_found_wherever_it_falls_on_the_blocks() {
    let mut rng = StdRng::seed_from_u64(2);
    for offset in 0..102 {
        for level in [-30.0, -10.0] {
            let lead = Track::silence(0).then(Track(vec![0.0; offset]));
            let start = lead.len();
            let t = lead.key('7', level, 0.0, 40, &mut rng);
            let end = t.len();
            let t = t.then(Track::silence(40)).noise(level - 25.0, &mut rng);
            let found = spans(
                format(Codec::Pcmu, 1),
                DetectorConfig::default(),
                &encode(Codec::Pcmu, &[&t]),
            );
            assert_eq!(keys(&found), "7", "offset {offset} level {level}");
            assert_covers(&found[0], start..end);
        }
    }
}

#[test]
fn tones_under_a_block_never_count() {
    let mut rng = StdRng::seed_from_u64(3);
    for offset in (0..102).step_by(5) {
        for ms in [5, 10, 12] {
            let t = Track(vec![0.0; offset])
                .key('5', -10.0, 0.0, ms, &mut rng)
                .then(Track::silence(50));
            let found = spans(
                format(Codec::L16, 1),
                DetectorConfig::default(),
                &encode(Codec::L16, &[&t]),
            );
            assert!(found.is_empty(), "{ms} ms at offset {offset}");
        }
    }
}

#[test]
fn a_40_ms_pause_separates_two_presses_of_one_key_and_10_ms_does_not() {
    let mut rng = StdRng::seed_from_u64(4);
    for offset in (0..102).step_by(7) {
        let t = Track(vec![0.0; offset])
            .key('1', -20.0, -2.0, 40, &mut rng)
            .then(Track::silence(40))
            .key('1', -20.0, -2.0, 40, &mut rng)
            .then(Track::silence(40))
            .key('2', -20.0, -2.0, 40, &mut rng)
            .then(Track::silence(40))
            .noise(-45.0, &mut rng);
        let found = spans(
            format(Codec::Pcma, 1),
            DetectorConfig::default(),
            &encode(Codec::Pcma, &[&t]),
        );
        assert_eq!(keys(&found), "112", "offset {offset}");

        // a 10 ms drop-out inside one press
        let t = Track(vec![0.0; offset])
            .key('9', -20.0, 0.0, 60, &mut rng)
            .then(Track::silence(10))
            .key('9', -20.0, 0.0, 60, &mut rng)
            .then(Track::silence(40));
        let found = spans(
            format(Codec::Pcma, 1),
            DetectorConfig::default(),
            &encode(Codec::Pcma, &[&t]),
        );
        assert_eq!(keys(&found), "9", "drop-out at offset {offset}");
    }
}

#[test]
fn twist_from_plus_4_to_minus_8_db_is_accepted_and_beyond_is_not() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut run = |low: f64, twist: f64| {
        let t = Track::silence(30)
            .key('8', low, twist, 80, &mut rng)
            .then(Track::silence(40))
            .noise(low - 30.0, &mut rng);
        keys(&spans(
            format(Codec::L16, 1),
            DetectorConfig::default(),
            &encode(Codec::L16, &[&t]),
        ))
    };
    for low in [-8.0, -20.0, -27.0] {
        for twist in [4.0, 2.0, 0.0, -4.0, -8.0] {
            assert_eq!(run(low, twist), "8", "low {low} dBm0, twist {twist} dB");
        }
        for twist in [6.0, 8.0, -10.0, -12.0] {
            assert_eq!(run(low, twist), "", "low {low} dBm0, twist {twist} dB");
        }
    }
}

#[test]
fn off_frequency_tones_within_1_5_percent_count_and_beyond_3_5_percent_do_not() {
    let mut rng = StdRng::seed_from_u64(13);
    let run = |digit: char, shift: (f64, f64), rng: &mut StdRng| {
        let (lo, hi) = Digit::from_char(digit).expect("key").frequencies();
        let (lo, hi) = (
            f64::from(lo) * (1.0 + shift.0),
            f64::from(hi) * (1.0 + shift.1),
        );
        let mut t = Track::silence(30);
        let p = rng.r#gen::<f64>() * TAU;
        for i in 0..640 {
            let x = i as f64 / f64::from(RATE);
            t.0.push(peak(-15.0) * ((TAU * lo * x).sin() + (TAU * hi * x + p).sin()));
        }
        let t = t.then(Track::silence(40)).noise(-45.0, rng);
        keys(&spans(
            format(Codec::Pcmu, 1),
            DetectorConfig::default(),
            &encode(Codec::Pcmu, &[&t]),
        ))
    };
    for digit in Digit::all().map(Digit::reveal) {
        for shift in [
            (0.015, 0.015),
            (-0.015, -0.015),
            (0.015, -0.015),
            (-0.015, 0.015),
        ] {
            assert_eq!(
                run(digit, shift, &mut rng),
                digit.to_string(),
                "{digit} {shift:?}"
            );
        }
        for shift in [(0.035, 0.0), (-0.035, 0.0), (0.0, 0.035), (0.0, -0.035)] {
            assert_eq!(run(digit, shift, &mut rng), "", "{digit} {shift:?}");
        }
    }
}

#[test]
fn tones_in_noise_are_found_and_noise_alone_is_not() {
    let mut rng = StdRng::seed_from_u64(6);
    // noise 15 dB below each tone
    for digit in Digit::all() {
        let t = Track::silence(20)
            .key(digit.reveal(), -20.0, 0.0, 50, &mut rng)
            .then(Track::silence(30))
            .noise(-35.0, &mut rng);
        let found = spans(
            format(Codec::Pcmu, 1),
            DetectorConfig::default(),
            &encode(Codec::Pcmu, &[&t]),
        );
        assert_eq!(keys(&found), digit.reveal().to_string());
    }
    // loud noise alone, and silence, for a minute each
    let t = Track::silence(60_000).noise(-10.0, &mut rng);
    let s = Track::silence(60_000);
    let found = spans(
        format(Codec::Pcmu, 2),
        DetectorConfig::default(),
        &encode(Codec::Pcmu, &[&t, &s]),
    );
    assert!(found.is_empty());
}

#[test]
fn the_default_policy_gives_the_default_detector() {
    assert_eq!(
        DetectorConfig::for_policy(&DtmfPolicy::default()),
        DetectorConfig::default()
    );
}

#[test]
fn sensitivity_sets_the_weakest_tone() {
    let mut rng = StdRng::seed_from_u64(7);
    let t = Track::silence(20)
        .key('0', -42.0, 0.0, 80, &mut rng)
        .then(Track::silence(40));
    let bytes = encode(Codec::L16, &[&t]);
    let f = format(Codec::L16, 1);
    assert!(spans(f, DetectorConfig::default(), &bytes).is_empty());
    let sensitive = DetectorConfig {
        min_level_dbm0: -48.0,
    };
    assert_eq!(keys(&spans(f, sensitive, &bytes)), "0");
    let deaf = DetectorConfig {
        min_level_dbm0: -20.0,
    };
    let t = Track::silence(20)
        .key('0', -25.0, 0.0, 80, &mut rng)
        .then(Track::silence(40));
    assert!(spans(f, deaf, &encode(Codec::L16, &[&t])).is_empty());
    assert!(
        DtmfDetector::new(
            f,
            DetectorConfig {
                min_level_dbm0: -5.0
            }
        )
        .is_err()
    );
}

#[test]
fn frames_of_any_length_give_the_same_events() {
    let mut rng = StdRng::seed_from_u64(8);
    let caller = Track::silence(30)
        .key('3', -15.0, 0.0, 70, &mut rng)
        .then(Track::silence(50))
        .key('#', -15.0, 0.0, 45, &mut rng)
        .then(Track::silence(80));
    let agent = Track::silence(100)
        .key('D', -12.0, -3.0, 90, &mut rng)
        .then(Track::silence(60));
    for codec in [Codec::Pcmu, Codec::L16] {
        let bytes = encode(codec, &[&caller, &agent]);
        let f = format(codec, 2);
        let mut whole = DtmfDetector::new(f, DetectorConfig::default()).expect("format");
        let mut expected = Vec::new();
        whole.feed(&bytes, &mut expected);
        whole.finish(&mut expected);
        assert_eq!(ended(&expected).len(), 3);
        let mut pieces = DtmfDetector::new(f, DetectorConfig::default()).expect("format");
        let mut got = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            // odd lengths split sample frames, and L16 samples, across calls
            let n = rng.gen_range(0..=333).min(rest.len());
            pieces.feed(&rest[..n], &mut got);
            rest = &rest[n..];
        }
        pieces.finish(&mut got);
        // events of one channel in order; the two channels' may interleave differently
        let by_channel = |events: &[ToneEvent]| {
            let mut v = events.to_vec();
            v.sort_by_key(|e| match e {
                ToneEvent::Started { channel, .. } => *channel,
                ToneEvent::Ended(s) => s.channel,
            });
            v
        };
        assert_eq!(by_channel(&got), by_channel(&expected), "{codec}");
        assert_eq!(pieces.position(0), caller.len());
        assert_eq!(pieces.position(1), caller.len());
    }
}

#[test]
fn a_tone_is_reported_while_it_sounds_and_ended_by_finish() {
    let mut rng = StdRng::seed_from_u64(9);
    let f = format(Codec::L16, 2);
    let mut d = DtmfDetector::new(f, DetectorConfig::default()).expect("format");
    let quiet = Track::silence(500);
    let keyed = Track::silence(100).key('4', -20.0, 0.0, 400, &mut rng);
    let mut events = Vec::new();
    d.feed(&encode(Codec::L16, &[&quiet, &keyed]), &mut events);
    // started within 3 blocks of the onset, on the agent's channel, and still sounding
    let [ToneEvent::Started { channel, start }] = events[..] else {
        panic!("expected one start, got {events:?}")
    };
    assert_eq!(channel, 1);
    assert!((800 - SLACK..=800).contains(&start), "{start}");
    assert_eq!(d.sounding(1), Some(start));
    assert_eq!(d.sounding(0), None);
    d.finish(&mut events);
    let spans = ended(&events);
    assert_eq!(keys(&spans), "4");
    assert_eq!(spans[0].end, 4000);
    assert_eq!(d.sounding(1), None);
}

#[test]
fn both_channels_at_once_are_told_apart() {
    let mut rng = StdRng::seed_from_u64(10);
    let caller = Track::silence(50).key('6', -18.0, 0.0, 100, &mut rng);
    let agent = Track::silence(50).key('C', -18.0, 0.0, 100, &mut rng);
    let found = spans(
        format(Codec::Pcma, 2),
        DetectorConfig::default(),
        &encode(Codec::Pcma, &[&caller, &agent]),
    );
    let by: Vec<(u8, char)> = found
        .iter()
        .map(|s| (s.channel, s.digit().reveal()))
        .collect();
    assert_eq!(by.len(), 2);
    assert!(by.contains(&(0, '6')) && by.contains(&(1, 'C')), "{by:?}");
}

#[test]
fn wideband_l16_is_analysed_at_its_own_rate() {
    let mut rng = StdRng::seed_from_u64(11);
    // a 16 kHz tone, built directly
    let (lo, hi) = Digit::from_char('*').expect("key").frequencies();
    let mut pcm = vec![0i16; 1600];
    for i in 0..960 {
        let t = f64::from(i) / 16_000.0;
        let s = peak(-20.0) * ((TAU * f64::from(lo) * t).sin() + (TAU * f64::from(hi) * t).sin());
        pcm.push((s + rng.gen_range(-30.0..30.0)) as i16);
    }
    pcm.extend([0; 1600]);
    let f = MediaFormat {
        codec: Codec::L16,
        sample_rate: 16_000,
        channels: 1,
    };
    let mut d = DtmfDetector::new(f, DetectorConfig::default()).expect("format");
    let mut events = Vec::new();
    d.feed_linear(0, &pcm, &mut events);
    d.finish(&mut events);
    let found = ended(&events);
    assert_eq!(keys(&found), "*");
    assert!(found[0].start <= 1600 && found[0].end >= 2560);
}

#[test]
fn unsupported_streams_are_refused() {
    let mut f = format(Codec::L16, 2);
    f.sample_rate = 4000;
    assert_eq!(
        DtmfDetector::new(f, DetectorConfig::default()).err(),
        Some(DtmfError::SampleRate(4000))
    );
    let f = format(Codec::Pcmu, 3);
    assert_eq!(
        DtmfDetector::new(f, DetectorConfig::default()).err(),
        Some(DtmfError::Channels(3))
    );
}

#[test]
fn the_digit_never_shows_in_debug_output() {
    let mut rng = StdRng::seed_from_u64(12);
    let mut printed = Vec::new();
    for key in ['1', '9'] {
        let t = Track::silence(20)
            .key(key, -10.0, 0.0, 60, &mut rng)
            .then(Track::silence(40));
        let mut d =
            DtmfDetector::new(format(Codec::L16, 1), DetectorConfig::default()).expect("format");
        let mut events = Vec::new();
        d.feed(&encode(Codec::L16, &[&t]), &mut events);
        d.finish(&mut events);
        assert_eq!(keys(&ended(&events)), key.to_string());
        printed.push(format!("{events:?} {d:?}"));
    }
    // the same tones at the same places, different keys: the printed forms are identical
    assert_eq!(printed[0], printed[1]);
    assert!(printed[0].contains("Digit([redacted])"));
    assert_eq!(
        format!("{:?}", Digit::from_char('7')),
        "Some(Digit([redacted]))"
    );
}

#[test]
fn signalled_keys_name_the_same_digits() {
    for (code, c) in (0u8..16).zip("0123456789*#ABCD".chars()) {
        let d = Digit::from_event_code(code).expect("a telephone-event code");
        assert_eq!(d.reveal(), c);
        assert_eq!(Digit::from_char(c), Some(d));
        assert_eq!(Digit::from_char(c.to_ascii_lowercase()), Some(d));
    }
    assert_eq!(Digit::from_event_code(16), None);
    assert_eq!(Digit::from_char('E'), None);
    assert_eq!(Digit::all().count(), 16);
}
