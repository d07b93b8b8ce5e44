//! What a rendered pause sounds like: silence, or a quiet 425 Hz tone so a listener hears that
//! something was removed (DESIGN.md section 2, card payments).
//!
//! This module owns the synthesis of gap audio in an output encoding. It holds no recorded audio.
//!
//! Every sample is a pure function of its frame's index within the gap, so any slice of a gap can be
//! rendered on its own (a ranged request in the middle of a long pause) and still join its
//! neighbours without a phase jump: the tone is phase continuous across the whole gap. It fades in
//! and out over [`RAMP_MS`] so the joins with the recorded audio do not click.

use std::f64::consts::TAU;
use std::ops::Range;

use crate::audio::g711::{linear_to_alaw, linear_to_ulaw};
use crate::domain::{Codec, MediaFormat};

/// Frequency of the pause tone in hertz (the European busy-tone pitch, familiar from telephones).
pub const TONE_HZ: u32 = 425;
/// Peak amplitude of the pause tone as a fraction of full scale: 0.1 is -20 dBFS.
pub const TONE_AMPLITUDE: f64 = 0.1;
/// Fade-in and fade-out of the pause tone, in milliseconds.
pub const RAMP_MS: u64 = 10;

/// The sound of a gap that is rendered at all (a skipped gap has no sound and no length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapSound {
    /// Digital silence: the encoding's zero.
    Silence,
    /// The quiet [`TONE_HZ`] tone, the same on every channel.
    Tone,
}

/// The byte an 8-bit G.711 codec uses for a zero sample (`None` for L16, whose zero is two 0 bytes).
pub const fn silence_byte(codec: Codec) -> Option<u8> {
    match codec {
        Codec::Pcmu => Some(0xFF),
        Codec::Pcma => Some(0xD5),
        Codec::L16 => None,
    }
}

/// One gap of `len` frames of [`GapSound`] in an output format, rendered a slice at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapSynth {
    sound: GapSound,
    format: MediaFormat,
    len: u64,
}

impl GapSynth {
    /// A gap of `len` frames of `sound`, encoded as `format` says (its codec is the output encoding:
    /// the stored G.711 codec, or L16 for linear output).
    pub const fn new(sound: GapSound, format: MediaFormat, len: u64) -> Self {
        Self { sound, format, len }
    }

    /// Length of the gap in frames.
    pub const fn len(&self) -> u64 {
        self.len
    }

    /// Whether the gap has no frames.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded frames `frames` of the gap (clamped to its length), channels interleaved.
    pub fn render(&self, frames: Range<u64>) -> Vec<u8> {
        let end = frames.end.min(self.len);
        let start = frames.start.min(end);
        let channels = usize::from(self.format.channels);
        let count = usize::try_from(end - start).expect("a slice of a gap fits in memory");
        let bytes = count * self.format.frame_bytes() as usize;
        match (self.sound, silence_byte(self.format.codec)) {
            (GapSound::Silence, Some(zero)) => vec![zero; bytes],
            (GapSound::Silence, None) => vec![0; bytes],
            (GapSound::Tone, _) => {
                let mut out = Vec::with_capacity(bytes);
                for n in start..end {
                    let s = self.tone_sample(n);
                    for _ in 0..channels {
                        match self.format.codec {
                            Codec::Pcmu => out.push(linear_to_ulaw(s)),
                            Codec::Pcma => out.push(linear_to_alaw(s)),
                            Codec::L16 => out.extend_from_slice(&s.to_le_bytes()),
                        }
                    }
                }
                out
            }
        }
    }

    /// The linear tone sample of frame `n`.
    fn tone_sample(&self, n: u64) -> i16 {
        let rate = u64::from(self.format.sample_rate.max(1));
        // Reduce the phase exactly in integers, so precision does not drift over an hour-long gap.
        let cycle = (u128::from(n) * u128::from(TONE_HZ) % u128::from(rate)) as f64;
        let phase = TAU * cycle / rate as f64;
        let ramp = (rate * RAMP_MS / 1000).max(1);
        let edge = n.min(self.len.saturating_sub(1 + n));
        let envelope = if edge < ramp {
            edge as f64 / ramp as f64
        } else {
            1.0
        };
        let s = TONE_AMPLITUDE * envelope * phase.sin() * f64::from(i16::MAX);
        // |s| <= 0.1 * 32767, well inside i16
        s.round() as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::g711::{ALAW_TO_LINEAR, ULAW_TO_LINEAR};

    fn format(codec: Codec, channels: u8) -> MediaFormat {
        MediaFormat {
            codec,
            sample_rate: 8000,
            channels,
        }
    }

    #[test]
    fn silence_is_the_codec_zero() {
        let g = GapSynth::new(GapSound::Silence, format(Codec::Pcmu, 2), 100);
        assert_eq!(g.render(0..10), vec![0xFF; 20]);
        let g = GapSynth::new(GapSound::Silence, format(Codec::Pcma, 1), 100);
        assert_eq!(g.render(5..15), vec![0xD5; 10]);
        let g = GapSynth::new(GapSound::Silence, format(Codec::L16, 2), 100);
        assert_eq!(g.render(0..3), vec![0; 12]);
        assert_eq!(g.render(90..200).len(), 40, "clamped to the gap");
        assert!(g.render(200..300).is_empty());
    }

    #[test]
    fn slices_join_without_a_phase_jump() {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::L16] {
            let g = GapSynth::new(GapSound::Tone, format(codec, 2), 4000);
            let whole = g.render(0..4000);
            let mut parts = g.render(0..1234);
            parts.extend(g.render(1234..1235));
            parts.extend(g.render(1235..4000));
            assert_eq!(whole, parts, "{codec}");
        }
    }

    #[test]
    fn tone_is_quiet_425_hz_on_both_channels() {
        let g = GapSynth::new(GapSound::Tone, format(Codec::L16, 2), 8000);
        let bytes = g.render(0..8000);
        let samples: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
        let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(left, right);
        let peak = left
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .expect("samples");
        assert!((3200..=3277).contains(&peak), "peak {peak}");
        // 425 whole cycles in one second: count rising zero crossings
        let rising = left.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        assert!((424..=426).contains(&rising), "{rising} cycles");
        // it fades in from zero and out to zero
        assert_eq!(left[0], 0);
        assert!(left[..8].iter().all(|s| s.unsigned_abs() < 400));
        assert!(left[7990..].iter().all(|s| s.unsigned_abs() < 400));
    }

    #[test]
    fn g711_tone_decodes_close_to_linear() {
        let lin = GapSynth::new(GapSound::Tone, format(Codec::L16, 1), 800).render(0..800);
        let mu = GapSynth::new(GapSound::Tone, format(Codec::Pcmu, 1), 800).render(0..800);
        let a = GapSynth::new(GapSound::Tone, format(Codec::Pcma, 1), 800).render(0..800);
        for (i, pair) in lin.chunks_exact(2).enumerate() {
            let s = i32::from(i16::from_le_bytes([pair[0], pair[1]]));
            assert!((i32::from(ULAW_TO_LINEAR[usize::from(mu[i])]) - s).abs() <= 64);
            assert!((i32::from(ALAW_TO_LINEAR[usize::from(a[i])]) - s).abs() <= 64);
        }
    }
}
