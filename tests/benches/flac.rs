//! Lossless FLAC storage (`storage_codec = "flac"`), measured on real speech: the stored size of a
//! segment against raw L16 and against G.711, and the CPU it costs per second of audio to encode
//! (once, when a segment is stored) and to decode (on every play). Prints a table for
//! BENCHMARKS.md; `FLAC_BENCH_ROUNDS` (default 20) sets how many times each input is timed.
//!
//! Inputs: `fixtures/import/speech-20s.wav` (16-bit telephone-band speech, what a platform that
//! sends L16 gives), the same as stereo (caller and agent: the speech and the same speech 7 s
//! later), and `fixtures/speech/*.ul` (74 s of G.711 mu-law speech), decoded to 16 bits: what FLAC
//! of G.711 audio would store.

#![allow(missing_docs)]

use std::path::Path;
use std::time::Instant;

use callvault::audio::flac::{FRAMES_PER_CHUNK, FlacDecoder, FlacSegmentWriter};
use callvault::audio::g711::{ULAW_TO_LINEAR, linear_to_ulaw};
use callvault::domain::{Codec, RecordingId, SegmentNo};
use callvault::vault::{DataKey, Header, SegmentWriter, open_framed};
use zeroize::Zeroizing;

fn fixture(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

fn speech16() -> Vec<i16> {
    let r = hound::WavReader::open(fixture("import/speech-20s.wav")).expect("speech-20s.wav");
    r.into_samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect()
}

fn speech_ulaw() -> Vec<u8> {
    let mut names: Vec<_> = std::fs::read_dir(fixture("speech"))
        .expect("fixtures/speech")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ul"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|p| std::fs::read(p).expect("read"))
        .collect()
}

/// A sealed version 1 container of `bytes` (raw codec bytes).
fn sealed_raw(codec: Codec, channels: u8, bytes: &[u8]) -> usize {
    let key = DataKey::generate();
    let h =
        Header::new(RecordingId::new(), SegmentNo(0), codec, channels, 8000, 0).expect("header");
    let mut w = SegmentWriter::new(h, &key);
    let mut out = w.header_bytes().to_vec();
    out.extend(w.append(bytes).expect("append"));
    out.extend(w.seal());
    out.len()
}

/// A sealed FLAC (version 2) container of interleaved samples, and its key.
fn sealed_flac(channels: u8, samples: &[i16]) -> (Vec<u8>, DataKey) {
    let key = DataKey::generate();
    let mut w = FlacSegmentWriter::new(RecordingId::new(), SegmentNo(0), channels, 8000, 0, &key)
        .expect("writer");
    let mut out = w.header_bytes().to_vec();
    w.push(samples, &mut out).expect("push");
    w.finish(&mut out).expect("finish");
    (out, key)
}

fn decode(bytes: &[u8], key: &DataKey) -> usize {
    let (layout, chunks) = open_framed(bytes, key).expect("open");
    let h = layout.header().base();
    let mut d = FlacDecoder::new(h.channels(), h.sample_rate(), FRAMES_PER_CHUNK).expect("decoder");
    let mut out = Zeroizing::new(Vec::new());
    for (i, c) in chunks.iter().enumerate() {
        let n = layout.frames_in(i as u64);
        if n > 0 {
            d.decode_into(c, n, &mut out).expect("decode");
        }
    }
    out.len()
}

fn main() {
    let rounds: usize = std::env::var("FLAC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mono = speech16();
    let shift = 7 * 8000;
    let stereo: Vec<i16> = (0..mono.len())
        .flat_map(|i| [mono[i], mono[(i + shift) % mono.len()]])
        .collect();
    let ulaw = speech_ulaw();
    let from_ulaw: Vec<i16> = ulaw
        .iter()
        .map(|b| ULAW_TO_LINEAR[usize::from(*b)])
        .collect();
    let inputs: [(&str, u8, &[i16]); 3] = [
        ("16-bit speech, mono", 1, &mono),
        ("16-bit speech, stereo", 2, &stereo),
        (
            "G.711 mu-law speech decoded to 16 bits, mono",
            1,
            &from_ulaw,
        ),
    ];
    println!(
        "| audio | seconds | raw L16 | G.711 | FLAC | FLAC / L16 | FLAC / G.711 | encode, ms per s of audio | decode, ms per s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, channels, samples) in inputs {
        let secs = samples.len() as f64 / f64::from(channels) / 8000.0;
        let l16: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let g711: Vec<u8> = samples.iter().map(|s| linear_to_ulaw(*s)).collect();
        let raw = sealed_raw(Codec::L16, channels, &l16);
        let g = sealed_raw(Codec::Pcmu, channels, &g711);
        let (flac, key) = sealed_flac(channels, samples);
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(sealed_flac(channels, samples));
        }
        let enc = t.elapsed().as_secs_f64() * 1000.0 / rounds as f64 / secs;
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(decode(&flac, &key));
        }
        let dec = t.elapsed().as_secs_f64() * 1000.0 / rounds as f64 / secs;
        println!(
            "| {name} | {secs:.1} | {raw} | {g} | {} | {:.2} | {:.2} | {enc:.2} | {dec:.2} |",
            flac.len(),
            flac.len() as f64 / raw as f64,
            flac.len() as f64 / g as f64,
        );
    }
}
