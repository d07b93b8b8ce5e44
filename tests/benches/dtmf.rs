//! Keypad-tone detection per 20 ms stereo frame (the recorder's unit of audio) against G.711
//! decoding of the same frame: on speech (the espeak-ng fixtures, both channels talking), on
//! silence (most of a channel's time: the block-energy gate stops there), and on a keypad tone on
//! both channels (every test runs on every block: the worst case).

// criterion's group and main macros generate public functions without doc comments.
#![allow(missing_docs)]

use std::f64::consts::TAU;
use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use callvault::audio::dtmf::{DetectorConfig, DtmfDetector};
use callvault::audio::g711::{ULAW_TO_LINEAR, linear_to_ulaw};
use callvault::domain::{Codec, MediaFormat};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// One 20 ms frame of stereo PCMU: 160 samples a channel, interleaved.
const FRAME: usize = 320;

fn format(codec: Codec) -> MediaFormat {
    MediaFormat {
        codec,
        sample_rate: 8000,
        channels: 2,
    }
}

/// Stereo PCMU: the speech fixtures one after another, the agent's channel shifted by half.
fn speech() -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/speech");
    let mut mono = Vec::new();
    let mut names: Vec<_> = fs::read_dir(&dir)
        .expect("fixtures/speech")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ul"))
        .collect();
    names.sort();
    for p in names {
        mono.extend(fs::read(p).expect("fixture"));
    }
    let half = mono.len() / 2;
    (0..mono.len())
        .flat_map(|i| [mono[i], mono[(i + half) % mono.len()]])
        .collect()
}

/// Stereo PCMU of a `5` key at -10 dBm0 on both channels.
fn tone(secs: usize) -> Vec<u8> {
    (0..secs * 8000)
        .flat_map(|i| {
            let t = i as f64 / 8000.0;
            let s = 7180.0 * ((TAU * 770.0 * t).sin() + (TAU * 1336.0 * t).sin());
            let b = linear_to_ulaw(s as i16);
            [b, b]
        })
        .collect()
}

fn bench_frame(c: &mut Criterion) {
    let inputs = [
        ("speech", speech()),
        ("silence", vec![0xff; 10 * 16_000]),
        ("tone", tone(10)),
    ];
    let mut group = c.benchmark_group("per_20ms_stereo_frame");
    group.throughput(Throughput::Bytes(FRAME as u64));
    for (name, audio) in &inputs {
        let frames: Vec<&[u8]> = audio.chunks_exact(FRAME).collect();
        group.bench_function(format!("g711_decode_{name}"), |b| {
            let mut out = Vec::with_capacity(FRAME);
            let mut i = 0;
            b.iter(|| {
                out.clear();
                out.extend(
                    frames[i % frames.len()]
                        .iter()
                        .map(|&u| ULAW_TO_LINEAR[usize::from(u)]),
                );
                i += 1;
                black_box(out.len())
            })
        });
        group.bench_function(format!("dtmf_detect_{name}"), |b| {
            let mut d =
                DtmfDetector::new(format(Codec::Pcmu), DetectorConfig::default()).expect("format");
            let mut events = Vec::new();
            let mut i = 0;
            b.iter(|| {
                d.feed(frames[i % frames.len()], &mut events);
                i += 1;
                let n = events.len();
                events.clear();
                black_box(n)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench_frame
}
criterion_main!(benches);
