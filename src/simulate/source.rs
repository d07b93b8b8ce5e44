//! The simulated call's audio: a WAV file or a generated tone, cut into 20 ms frames and encoded.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::audio::g711::{linear_to_alaw, linear_to_ulaw};
use crate::domain::Codec;

/// Sample rate of everything the simulator sends.
pub(super) const RATE: u32 = 8000;
/// Milliseconds of audio in one frame.
pub(super) const FRAME_MS: u64 = 20;

/// Samples of one channel in one frame at `rate`.
pub(super) const fn samples_per_frame(rate: u32) -> usize {
    (rate as u64 * FRAME_MS / 1000) as usize
}

/// Where frame `n` starts on the call's media clock.
pub(super) const fn frame_offset(n: u64) -> Duration {
    Duration::from_millis(n.saturating_mul(FRAME_MS))
}

/// Frames needed to cover `d` (a partial last frame counts).
pub(super) fn frames_for(d: Duration) -> u64 {
    u64::try_from(d.as_millis().div_ceil(u128::from(FRAME_MS))).unwrap_or(u64::MAX)
}

/// Amplitude of generated tones: about -10 dBFS.
const TONE_AMPLITUDE: f64 = 0.3 * i16::MAX as f64;

/// A source of 20 ms frames of interleaved 16-bit samples.
pub(super) enum Source {
    /// Frames read from a WAV file.
    Wav(WavFrames<BufReader<File>>),
    /// A generated tone.
    Tone(Tone),
}

impl Source {
    /// Opens a WAV file as a source.
    pub(super) fn wav(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let frames = WavFrames::new(BufReader::new(file))
            .with_context(|| format!("cannot use {}", path.display()))?;
        Ok(Source::Wav(frames))
    }

    /// Channels per frame.
    pub(super) fn channels(&self) -> u8 {
        match self {
            Source::Wav(w) => w.channels,
            Source::Tone(_) => 2,
        }
    }

    /// Fills `out` with the next frame; false when the audio is over.
    pub(super) fn next_frame(&mut self, out: &mut Vec<i16>) -> anyhow::Result<bool> {
        match self {
            Source::Wav(w) => w.next_frame(out),
            Source::Tone(t) => Ok(t.next_frame(out)),
        }
    }
}

/// 20 ms frames of a 16-bit PCM WAV at 8000 Hz, mono or stereo. The last frame is padded with
/// silence.
pub(super) struct WavFrames<R: Read> {
    reader: hound::WavReader<R>,
    channels: u8,
}

impl<R: Read> WavFrames<R> {
    /// Reads and checks the WAV header.
    pub(super) fn new(reader: R) -> anyhow::Result<Self> {
        let reader = hound::WavReader::new(reader).context("not a wav file")?;
        let spec = reader.spec();
        if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
            bail!(
                "expected 16-bit integer pcm, got {} bits {:?}",
                spec.bits_per_sample,
                spec.sample_format
            );
        }
        if spec.sample_rate != RATE {
            bail!(
                "expected {RATE} hz, got {} hz (resample with: sox in.wav -r 8000 -b 16 out.wav)",
                spec.sample_rate
            );
        }
        let channels = match spec.channels {
            1 => 1,
            2 => 2,
            n => bail!("expected 1 or 2 channels, got {n}"),
        };
        Ok(Self { reader, channels })
    }

    fn next_frame(&mut self, out: &mut Vec<i16>) -> anyhow::Result<bool> {
        out.clear();
        let want = samples_per_frame(RATE) * usize::from(self.channels);
        for s in self.reader.samples::<i16>().take(want) {
            out.push(s.context("cannot read a wav sample")?);
        }
        if out.is_empty() {
            return Ok(false);
        }
        out.resize(want, 0);
        Ok(true)
    }
}

/// A stereo tone: one frequency on the caller's channel, another on the agent's.
pub(super) struct Tone {
    hz: [f64; 2],
    frames_left: u64,
    sample: u64,
}

impl Tone {
    /// `hz` for the caller and agent channels, lasting `duration` (rounded up to whole frames).
    pub(super) fn new(hz: (f32, f32), duration: Duration) -> Self {
        Self {
            hz: [f64::from(hz.0), f64::from(hz.1)],
            frames_left: frames_for(duration),
            sample: 0,
        }
    }

    pub(super) fn next_frame(&mut self, out: &mut Vec<i16>) -> bool {
        out.clear();
        if self.frames_left == 0 {
            return false;
        }
        self.frames_left -= 1;
        for _ in 0..samples_per_frame(RATE) {
            let t = self.sample as f64 / f64::from(RATE);
            for hz in self.hz {
                let v = TONE_AMPLITUDE * (std::f64::consts::TAU * hz * t).sin();
                // the amplitude is below full scale, so the cast cannot saturate
                out.push(v.round() as i16);
            }
            self.sample += 1;
        }
        true
    }
}

/// Encodes interleaved samples as `codec` puts them on the wire.
pub(super) fn encode(codec: Codec, samples: &[i16], out: &mut Vec<u8>) {
    out.clear();
    match codec {
        Codec::Pcmu => out.extend(samples.iter().map(|&s| linear_to_ulaw(s))),
        Codec::Pcma => out.extend(samples.iter().map(|&s| linear_to_alaw(s))),
        Codec::L16 => {
            for s in samples {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::audio::g711::ulaw_to_linear;

    fn wav(channels: u16, rate: u32, bits: u16, samples: &[i16]) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut buf = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut buf, spec).expect("wav writer");
        for &s in samples {
            if bits == 8 {
                w.write_sample(s as i8).expect("write sample");
            } else {
                w.write_sample(s).expect("write sample");
            }
        }
        w.finalize().expect("finalize wav");
        buf.into_inner()
    }

    fn frames<R: Read>(mut w: WavFrames<R>) -> Vec<Vec<i16>> {
        let mut all = Vec::new();
        let mut f = Vec::new();
        while w.next_frame(&mut f).expect("read frame") {
            all.push(f.clone());
        }
        all
    }

    #[test]
    fn pacing_math() {
        assert_eq!(samples_per_frame(8000), 160);
        assert_eq!(samples_per_frame(16000), 320);
        assert_eq!(samples_per_frame(44100), 882);
        assert_eq!(frame_offset(0), Duration::ZERO);
        assert_eq!(frame_offset(500), Duration::from_secs(10));
        assert_eq!(frames_for(Duration::from_secs(30)), 1500);
        assert_eq!(frames_for(Duration::from_millis(30)), 2);
        assert_eq!(frames_for(Duration::ZERO), 0);
    }

    #[test]
    fn mono_wav_is_cut_into_padded_frames() {
        let samples: Vec<i16> = (0..400).map(|i| i as i16).collect();
        let w = WavFrames::new(Cursor::new(wav(1, 8000, 16, &samples))).expect("valid wav");
        assert_eq!(w.channels, 1);
        let fs = frames(w);
        assert_eq!(fs.len(), 3);
        assert!(fs.iter().all(|f| f.len() == 160));
        assert_eq!(fs[1][0], 160);
        assert_eq!(fs[2][79], 399);
        assert_eq!(fs[2][80..], [0; 80]);
    }

    #[test]
    fn stereo_wav_frames_interleave_caller_then_agent() {
        let samples: Vec<i16> = (0..320).flat_map(|i| [i as i16, -(i as i16)]).collect();
        let w = WavFrames::new(Cursor::new(wav(2, 8000, 16, &samples))).expect("valid wav");
        assert_eq!(w.channels, 2);
        let fs = frames(w);
        assert_eq!(fs.len(), 2);
        assert_eq!(fs[0].len(), 320);
        assert_eq!(fs[1][..4], [160, -160, 161, -161]);
    }

    #[test]
    fn unsuitable_wavs_are_refused() {
        for (bytes, why) in [
            (wav(1, 16000, 16, &[0; 10]), "8000 hz"),
            (wav(1, 8000, 8, &[0; 10]), "16-bit"),
            (wav(3, 8000, 16, &[0; 9]), "channels"),
            (b"RIFF nope".to_vec(), "not a wav"),
        ] {
            let e = WavFrames::new(Cursor::new(bytes)).err().expect(why);
            assert!(format!("{e:#}").contains(why), "{e:#}");
        }
    }

    #[test]
    fn tones_fill_whole_stereo_frames() {
        let mut t = Tone::new((440.0, 660.0), Duration::from_millis(50));
        let mut f = Vec::new();
        let mut n = 0;
        while t.next_frame(&mut f) {
            assert_eq!(f.len(), 320);
            // both channels carry a tone near the chosen amplitude
            let peak = |ch: usize| f.iter().skip(ch).step_by(2).map(|s| s.unsigned_abs()).max();
            assert!(peak(0) > Some(9000) && peak(1) > Some(9000));
            n += 1;
        }
        assert_eq!(n, 3);
        assert!(f.is_empty());
    }

    #[test]
    fn frames_are_encoded_per_codec() {
        let samples = [0i16, 1000, -1000, i16::MAX];
        let mut out = Vec::new();
        encode(Codec::Pcmu, &samples, &mut out);
        assert_eq!(out.len(), 4);
        assert!((ulaw_to_linear(out[1]) - 1000).abs() < 40);
        encode(Codec::Pcma, &samples, &mut out);
        assert_eq!(out.len(), 4);
        encode(Codec::L16, &samples, &mut out);
        assert_eq!(out, [0, 0, 0xe8, 0x03, 0x18, 0xfc, 0xff, 0x7f]);
    }
}
