//! The keypad-tone detector against what is not a keypad: real speech (espeak-ng voices from
//! `fixtures/speech`, made by its `make.sh`), music (chords and melodies of instruments with
//! overtones, pure-sine triads, glides and sweeps), noise and silence, over more than ten minutes
//! of stereo audio, with no digit found; and keypad tones mixed into that audio, every one found.

use std::f64::consts::TAU;
use std::fs;
use std::path::Path;

use callvault::audio::dtmf::{DetectorConfig, Digit, DtmfDetector, ToneEvent, ToneSpan};
use callvault::audio::g711::{ULAW_TO_LINEAR, linear_to_alaw, linear_to_ulaw};
use callvault::domain::{Codec, MediaFormat};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const RATE: usize = 8000;
/// Peak of a 0 dBm0 sine in 16-bit PCM (as the detector counts it).
const DBM0: f64 = 22_700.0;

/// Every speech fixture, decoded to linear samples.
fn speech() -> Vec<(String, Vec<f64>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/speech");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).expect("fixtures/speech exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "ul") {
            let bytes = fs::read(&path).expect("read fixture");
            let name = path
                .file_stem()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            out.push((
                name,
                bytes
                    .iter()
                    .map(|&b| f64::from(ULAW_TO_LINEAR[usize::from(b)]))
                    .collect(),
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 8, "run fixtures/speech/make.sh");
    out
}

fn encode(codec: Codec, channels: &[&[f64]]) -> Vec<u8> {
    let len = channels.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut out = Vec::with_capacity(len * channels.len() * 2);
    for i in 0..len {
        for c in channels {
            let s = c
                .get(i)
                .copied()
                .unwrap_or(0.0)
                .round()
                .clamp(-32768.0, 32767.0) as i16;
            match codec {
                Codec::Pcmu => out.push(linear_to_ulaw(s)),
                Codec::Pcma => out.push(linear_to_alaw(s)),
                Codec::L16 => out.extend_from_slice(&s.to_le_bytes()),
            }
        }
    }
    out
}

/// The spans found in `bytes`, fed in 20 ms frames as a live call sends them.
fn detect(codec: Codec, channels: u8, bytes: &[u8]) -> Vec<ToneSpan> {
    let format = MediaFormat {
        codec,
        sample_rate: RATE as u32,
        channels,
    };
    let mut d = DtmfDetector::new(format, DetectorConfig::default()).expect("format");
    let mut events = Vec::new();
    let frame = 160 * usize::from(channels) * codec.bytes_per_sample() as usize;
    for f in bytes.chunks(frame) {
        d.feed(f, &mut events);
    }
    d.finish(&mut events);
    events
        .into_iter()
        .filter_map(|e| match e {
            ToneEvent::Ended(s) => Some(s),
            ToneEvent::Started { .. } => None,
        })
        .collect()
}

fn gain(x: &[f64], db: f64) -> Vec<f64> {
    let g = 10f64.powf(db / 20.0);
    x.iter().map(|s| s * g).collect()
}

/// `x` played `factor` times faster (pitch and formants up by `factor`), by linear interpolation.
fn resample(x: &[f64], factor: f64) -> Vec<f64> {
    let n = ((x.len() - 1) as f64 / factor) as usize;
    (0..n)
        .map(|i| {
            let p = i as f64 * factor;
            let j = p as usize;
            let f = p - j as f64;
            x[j] * (1.0 - f) + x[(j + 1).min(x.len() - 1)] * f
        })
        .collect()
}

#[test]
fn speech_alone_has_no_keypad_tones_at_any_level_or_codec() {
    for (name, x) in speech() {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::L16] {
            for db in [0.0, -12.0, -24.0] {
                let loud = gain(&x, db);
                let found = detect(codec, 2, &encode(codec, &[&loud, &[]]));
                assert!(found.is_empty(), "{name} at {db} dB in {codec}: {found:?}");
            }
        }
    }
}

/// A band-limited harmonic tone of MIDI note `note` with overtones falling as `1 / k^rolloff`.
struct Instrument {
    table: Vec<f64>,
    hz: f64,
}

const TABLE: usize = 2048;

impl Instrument {
    fn new(note: i32, rolloff: f64) -> Self {
        let hz = 440.0 * 2f64.powf(f64::from(note - 69) / 12.0);
        let mut table = vec![0.0; TABLE];
        let mut k = 1;
        while hz * f64::from(k) < 3400.0 {
            let a = 1.0 / f64::from(k).powf(rolloff);
            for (i, t) in table.iter_mut().enumerate() {
                *t += a * (TAU * f64::from(k) * i as f64 / TABLE as f64).sin();
            }
            k += 1;
        }
        let peak = table.iter().fold(0f64, |m, v| m.max(v.abs()));
        table.iter_mut().for_each(|t| *t /= peak);
        Self { table, hz }
    }

    /// Adds `secs` of the note at peak `amp` from sample `at`, with a short attack and decay and a
    /// slight vibrato.
    fn play(&self, out: &mut [f64], at: usize, secs: f64, amp: f64, vibrato: f64) {
        let n = (secs * RATE as f64) as usize;
        let mut phase = 0.0;
        for i in 0..n.min(out.len().saturating_sub(at)) {
            let t = i as f64 / RATE as f64;
            let env = (t / 0.02).min(1.0) * (1.0 - i as f64 / n as f64).powf(0.5);
            let hz = self.hz * (1.0 + vibrato * (TAU * 5.5 * t).sin());
            phase = (phase + hz / RATE as f64).fract();
            out[at + i] += amp * env * self.table[(phase * TABLE as f64) as usize % TABLE];
        }
    }
}

/// `secs` of music-like sound: chords and melodies of harmonic instruments, pure-sine triads
/// (including notes within 0.2 % of keypad frequencies), glides, and sine sweeps.
fn music(rng: &mut StdRng, secs: f64, bank: &[Vec<Instrument>]) -> Vec<f64> {
    let n = (secs * RATE as f64) as usize;
    let mut out = vec![0.0; n];
    let amp = DBM0 * 10f64.powf(rng.gen_range(-30.0..-8.0) / 20.0);
    let kind = rng.gen_range(0..5);
    match kind {
        // chords: three or four notes at once, changing every half second or so
        0 => {
            let timbre = &bank[rng.gen_range(0..bank.len())];
            let mut at = 0;
            while at < n {
                let len = rng.gen_range(0.3..1.2);
                for _ in 0..rng.gen_range(3..=4) {
                    let note = &timbre[rng.gen_range(0..timbre.len())];
                    note.play(&mut out, at, len, amp / 3.0, 0.0);
                }
                at += (len * RATE as f64) as usize;
            }
        }
        // a melody with vibrato over a bass note
        1 => {
            let timbre = &bank[rng.gen_range(0..bank.len())];
            let mut at = 0;
            while at < n {
                let len = rng.gen_range(0.1..0.5);
                let note = &timbre[rng.gen_range(12..timbre.len())];
                note.play(&mut out, at, len, amp, 0.006);
                timbre[rng.gen_range(0..12)].play(&mut out, at, len, amp / 2.0, 0.0);
                at += (len * RATE as f64) as usize;
            }
        }
        // pure-sine triads: F5 and F#6 are within 0.2 % of 697 and 1477 Hz; a third note keeps it
        // a chord (doubling F5 would make it two pure tones of a key: a keypad tone to any decoder)
        2 => {
            let mut at = 0;
            while at < n {
                let len = rng.gen_range(0.2..0.8);
                let third = [rng.gen_range(60..77), rng.gen_range(78..96)][rng.gen_range(0..2)];
                let base = [77, 90, third];
                for note in base {
                    let hz = 440.0 * 2f64.powf(f64::from(note - 69) / 12.0);
                    let end = (at + (len * RATE as f64) as usize).min(n);
                    for (i, s) in out[at..end].iter_mut().enumerate() {
                        *s += amp / 3.0 * (TAU * hz * i as f64 / RATE as f64).sin();
                    }
                }
                at += (len * RATE as f64) as usize;
            }
        }
        // a glide of a harmonic tone (slide whistle, siren, trombone)
        3 => {
            let (f0, f1) = (rng.gen_range(150.0..900.0), rng.gen_range(150.0..900.0));
            let mut phase = 0.0f64;
            for (i, s) in out.iter_mut().enumerate() {
                let hz = f0 + (f1 - f0) * i as f64 / n as f64;
                phase += hz / RATE as f64;
                let mut v = 0.0;
                let mut k = 1.0;
                while hz * k < 3400.0 {
                    v += (TAU * k * phase).sin() / k;
                    k += 1.0;
                }
                *s = amp / 2.0 * v;
            }
        }
        // sine sweeps up and down the telephone band, alone and as an octave pair
        _ => {
            let pair = rng.r#gen::<bool>();
            let (mut p1, mut p2) = (0.0f64, 0.0f64);
            for (i, s) in out.iter_mut().enumerate() {
                let u = i as f64 / n as f64;
                let hz =
                    300.0 * (3400.0f64 / 300.0).powf(if u < 0.5 { 2.0 * u } else { 2.0 - 2.0 * u });
                p1 += hz / RATE as f64;
                p2 += 2.0 * hz / RATE as f64;
                *s = amp * ((TAU * p1).sin() + if pair { (TAU * p2).sin() } else { 0.0 });
            }
        }
    }
    out
}

/// One channel of a long call: speech (every voice, at several levels and pitches), music,
/// silence and noise, in random order, at least `secs` long.
fn call_channel(rng: &mut StdRng, secs: usize, voices: &[(String, Vec<f64>)]) -> Vec<f64> {
    let bank: Vec<Vec<Instrument>> = [0.6, 1.0, 2.0]
        .iter()
        .map(|&rolloff| (48..96).map(|n| Instrument::new(n, rolloff)).collect())
        .collect();
    let mut out = Vec::with_capacity(secs * RATE);
    while out.len() < secs * RATE {
        match rng.gen_range(0..10) {
            0..=4 => {
                let (_, x) = &voices[rng.gen_range(0..voices.len())];
                let x = resample(x, rng.gen_range(0.85..1.25));
                out.extend(gain(&x, rng.gen_range(-24.0..0.0)));
            }
            5..=7 => {
                let secs = rng.gen_range(2.0..8.0);
                out.extend(music(rng, secs, &bank));
            }
            8 => out.extend(vec![0.0; rng.gen_range(RATE / 2..3 * RATE)]),
            _ => {
                let w = DBM0 * 10f64.powf(rng.gen_range(-50.0..-20.0) / 20.0);
                out.extend((0..rng.gen_range(RATE..3 * RATE)).map(|_| rng.gen_range(-w..w)));
            }
        }
    }
    out
}

/// Ten and a half minutes on each channel of a stereo PCMU call: no keypad tone anywhere.
#[test]
fn ten_minutes_of_speech_music_noise_and_silence_give_no_digit() {
    let started = std::time::Instant::now();
    let voices = speech();
    let mut rng = StdRng::seed_from_u64(14);
    let caller = call_channel(&mut rng, 630, &voices);
    let agent = call_channel(&mut rng, 630, &voices);
    let bytes = encode(Codec::Pcmu, &[&caller, &agent]);
    let built = started.elapsed();
    let found = detect(Codec::Pcmu, 2, &bytes);
    let minutes = caller.len().min(agent.len()) as f64 / RATE as f64 / 60.0;
    eprintln!(
        "{minutes:.1} min of stereo audio: built in {built:?}, detected in {:?}",
        started.elapsed() - built
    );
    assert!(minutes >= 10.0);
    assert!(found.is_empty(), "false digits: {found:?}");
}

/// Keypad tones keyed into a call: the caller keys while the agent talks, and over their own
/// background speech 15 dB down; every key is found, on the right channel, and nothing else.
#[test]
fn keys_mixed_into_speech_are_all_found() {
    let voices = speech();
    let mut rng = StdRng::seed_from_u64(15);
    let mut caller = vec![0.0; 60 * RATE];
    let mut agent: Vec<f64> = Vec::new();
    while agent.len() < caller.len() {
        let (_, x) = &voices[rng.gen_range(0..voices.len())];
        agent.extend(gain(x, -6.0));
    }
    // quiet speech under the caller's keys
    let mut at = 0;
    while at < caller.len() {
        let (_, x) = &voices[rng.gen_range(0..voices.len())];
        for (i, s) in gain(x, -28.0).into_iter().enumerate() {
            if let Some(c) = caller.get_mut(at + i) {
                *c += s;
            }
        }
        at += x.len();
    }
    // 19 keys, 60 to 120 ms each, 60 to 400 ms apart, at -8 to -25 dBm0, twist 0 to -4 dB
    let keys: Vec<Digit> = (0..19)
        .map(|_| Digit::all().nth(rng.gen_range(0..16)).expect("16 keys"))
        .collect();
    let mut at = 2 * RATE;
    let mut placed = Vec::new();
    for k in &keys {
        let (lo, hi) = k.frequencies();
        let len = rng.gen_range(480..960);
        let level = rng.gen_range(-25.0..-8.0);
        let (a_lo, a_hi) = (
            DBM0 * 10f64.powf(level / 20.0),
            DBM0 * 10f64.powf((level + rng.gen_range(-4.0..0.0)) / 20.0),
        );
        for i in 0..len {
            let t = i as f64 / RATE as f64;
            caller[at + i] +=
                a_lo * (TAU * f64::from(lo) * t).sin() + a_hi * (TAU * f64::from(hi) * t).sin();
        }
        placed.push(at..at + len);
        at += len + rng.gen_range(480..3200);
    }
    let found = detect(Codec::Pcmu, 2, &encode(Codec::Pcmu, &[&caller, &agent]));
    assert_eq!(found.len(), keys.len(), "{found:?}");
    for ((span, key), tone) in found.iter().zip(&keys).zip(&placed) {
        assert_eq!(span.channel, 0);
        assert_eq!(span.digit(), *key);
        assert!(span.start <= tone.start as u64 && span.end >= tone.end as u64);
    }
}

/// F5 and F#6 (within 0.2 % of the `3` key's 697 and 1477 Hz) as pure sines, with any third note
/// from C3 to D#7, even a semitone away (E5, G5, F6, G6: two notes in one filter): a chord, not a
/// key. Only doubling F5 makes two pure tones of the key, which is a keypad tone.
#[test]
fn pure_sine_chords_around_a_key_pair_are_not_a_key() {
    for third in 48..100 {
        let mut out = vec![0.0; RATE];
        for note in [77, 90, third] {
            let hz = 440.0 * 2f64.powf(f64::from(note - 69) / 12.0);
            for (i, s) in out.iter_mut().enumerate() {
                *s += 3000.0 * (TAU * hz * i as f64 / RATE as f64).sin();
            }
        }
        let found = detect(Codec::L16, 1, &encode(Codec::L16, &[&out]));
        assert_eq!(found.len(), usize::from(third == 77), "third note {third}");
    }
}
