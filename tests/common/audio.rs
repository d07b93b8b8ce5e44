//! Audio helpers for the integration tests: encoded test tones, WAV decoding with symphonia (what a
//! player would hear), and Goertzel tone detection for assertions such as "no 2 kHz energy
//! anywhere; 1 kHz present for 5 s before the pause and 5 s after".

use std::f64::consts::TAU;
use std::ops::Range;

use callvault::audio::g711::{linear_to_alaw, linear_to_ulaw};
use callvault::domain::{Codec, MediaFormat};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Peak amplitude of [`tone`] as a fraction of full scale (-6 dBFS).
pub const TONE_AMPLITUDE: f64 = 0.5;

/// `ms` milliseconds of a `hz` sine in `format`, the same on every channel.
pub fn tone(format: MediaFormat, hz: f64, ms: u64) -> Vec<u8> {
    tones(format, hz, hz, ms)
}

/// `ms` milliseconds of encoded audio in `format`: a `caller_hz` sine on the caller's channel and
/// an `agent_hz` sine on the agent's (a mono format carries only the caller's tone). A frequency of
/// 0 gives silence on that channel.
pub fn tones(format: MediaFormat, caller_hz: f64, agent_hz: f64, ms: u64) -> Vec<u8> {
    let rate = f64::from(format.sample_rate);
    let frames = u64::from(format.sample_rate) * ms / 1000;
    let mut out = Vec::with_capacity(frames as usize * format.frame_bytes() as usize);
    for n in 0..frames {
        let t = n as f64 / rate;
        for hz in [caller_hz, agent_hz]
            .into_iter()
            .take(usize::from(format.channels))
        {
            let s = (TONE_AMPLITUDE * (TAU * hz * t).sin() * 32767.0).round() as i16;
            encode(format.codec, s, &mut out);
        }
    }
    out
}

fn encode(codec: Codec, s: i16, out: &mut Vec<u8>) {
    match codec {
        Codec::Pcmu => out.push(linear_to_ulaw(s)),
        Codec::Pcma => out.push(linear_to_alaw(s)),
        Codec::L16 => out.extend_from_slice(&s.to_le_bytes()),
    }
}

/// A decoded WAV file: its rate, and every channel's samples in -1.0 ..= 1.0.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub rate: u32,
    pub channels: usize,
    /// One vector per channel.
    pub samples: Vec<Vec<f32>>,
}

impl Decoded {
    /// Sample frames per channel.
    pub fn frames(&self) -> usize {
        self.samples.first().map_or(0, Vec::len)
    }

    /// Duration in milliseconds, rounded down.
    pub fn duration_ms(&self) -> u64 {
        self.frames() as u64 * 1000 / u64::from(self.rate)
    }

    /// The samples of `channel` in the time range `ms`.
    pub fn window(&self, channel: usize, ms: Range<u64>) -> &[f32] {
        let at = |t: u64| ((t * u64::from(self.rate) / 1000) as usize).min(self.frames());
        &self.samples[channel][at(ms.start)..at(ms.end)]
    }
}

/// Decodes a whole WAV file with symphonia (probe, then every packet), as a player would; panics
/// on anything symphonia rejects. Handles mu-law, A-law and 16-bit PCM.
pub fn decode_wav(bytes: &[u8]) -> Decoded {
    let source = std::io::Cursor::new(bytes.to_vec());
    let stream = MediaSourceStream::new(Box::new(source), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("wav");
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .expect("symphonia probes the wav");
    let mut reader = probed.format;
    let track = reader.default_track().expect("a track");
    let track_id = track.id;
    let params = track.codec_params.clone();
    let rate = params.sample_rate.expect("a sample rate");
    let channels = params.channels.expect("a channel layout").count();
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .expect("symphonia has a decoder for it");
    let mut samples = vec![Vec::new(); channels];
    loop {
        let packet = match reader.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(e) => panic!("reading a packet: {e}"),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = decoder.decode(&packet).expect("decode a packet");
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, *decoded.spec());
        buf.copy_interleaved_ref(decoded);
        for frame in buf.samples().chunks_exact(channels) {
            for (ch, s) in frame.iter().enumerate() {
                samples[ch].push(*s);
            }
        }
    }
    Decoded {
        rate,
        channels,
        samples,
    }
}

/// Power of the `hz` component of `samples`, normalised so that a sine of amplitude `a` at `hz`
/// gives about `a² / 2` whatever the window length (0.125 for [`tone`], 0.005 for the pause tone).
pub fn goertzel(samples: &[f32], rate: u32, hz: f64) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = TAU * hz / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in samples {
        let s0 = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    (2.0 * power / (n * n)) as f32
}

/// Where `hz` is present: the time ranges (ms) of consecutive `window_ms` windows whose
/// [`goertzel`] power is at least `threshold`. A trailing partial window is ignored.
pub fn tone_spans(
    samples: &[f32],
    rate: u32,
    hz: f64,
    window_ms: u64,
    threshold: f32,
) -> Vec<Range<u64>> {
    let len = (u64::from(rate) * window_ms / 1000).max(1) as usize;
    let mut spans: Vec<Range<u64>> = Vec::new();
    for (i, window) in samples.chunks_exact(len).enumerate() {
        if goertzel(window, rate, hz) < threshold {
            continue;
        }
        let start = i as u64 * window_ms;
        match spans.last_mut() {
            Some(last) if last.end == start => last.end = start + window_ms,
            _ => spans.push(start..start + window_ms),
        }
    }
    spans
}

/// The largest absolute sample.
pub fn peak(samples: &[f32]) -> f32 {
    samples.iter().fold(0.0, |m, s| m.max(s.abs()))
}

/// Asserts that `spans` is exactly `want`, each edge within `tolerance_ms`.
pub fn assert_spans(spans: &[Range<u64>], want: &[Range<u64>], tolerance_ms: u64, what: &str) {
    let close = |a: u64, b: u64| a.abs_diff(b) <= tolerance_ms;
    assert!(
        spans.len() == want.len()
            && spans
                .iter()
                .zip(want)
                .all(|(s, w)| close(s.start, w.start) && close(s.end, w.end)),
        "{what}: found {spans:?}, want {want:?} (± {tolerance_ms} ms)"
    );
}
