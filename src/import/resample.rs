//! Resampling imported audio to its policy's rate, with `rubato`'s synchronous FFT resampler (a
//! fixed ratio, band-limited, so 44.1 kHz music-on-hold does not alias into an 8 kHz recording).
//!
//! The output is exactly as long as the input at the new rate (the resampler's delay is dropped at
//! the start and made up with its tail at the end), so the duration of the stored audio is the
//! duration of the file.

use rubato::{FftFixedIn, Resampler};

use super::ImportError;

/// Input frames a step: 20 ms at 48 kHz, a few ms of work.
const CHUNK_IN: usize = 1024;

/// A streaming resampler of interleaved 16-bit audio.
pub struct Resample {
    inner: FftFixedIn<f32>,
    channels: usize,
    from: u64,
    to: u64,
    pending: Vec<Vec<f32>>,
    skip: usize,
    frames_in: u64,
    frames_out: u64,
}

impl std::fmt::Debug for Resample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resample")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Resample {
    /// A resampler of `channels` channels from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32, channels: usize) -> Result<Self, ImportError> {
        let inner = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK_IN, 2, channels)
            .map_err(|e| ImportError::Unsupported(format!("cannot resample {from} hz: {e}")))?;
        let skip = inner.output_delay();
        Ok(Self {
            inner,
            channels,
            from: u64::from(from),
            to: u64::from(to),
            pending: vec![Vec::new(); channels],
            skip,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Adds interleaved samples; appends to `out` the interleaved samples now ready.
    pub fn push(&mut self, interleaved: &[i16], out: &mut Vec<i16>) -> Result<(), ImportError> {
        for frame in interleaved.chunks_exact(self.channels) {
            for (c, s) in frame.iter().enumerate() {
                self.pending[c].push(f32::from(*s) / 32768.0);
            }
        }
        self.frames_in += (interleaved.len() / self.channels) as u64;
        loop {
            let need = self.inner.input_frames_next();
            if self.pending[0].len() < need {
                return Ok(());
            }
            let chunk: Vec<Vec<f32>> = self
                .pending
                .iter_mut()
                .map(|p| p.drain(..need).collect())
                .collect();
            let done = self
                .inner
                .process(&chunk, None)
                .map_err(|e| ImportError::Corrupt(format!("resampling failed: {e}")))?;
            self.emit(&done, u64::MAX, out);
        }
    }

    /// Flushes what is left; the total output is the input's length at the new rate.
    pub fn finish(mut self, out: &mut Vec<i16>) -> Result<(), ImportError> {
        let total = (u128::from(self.frames_in) * u128::from(self.to) + u128::from(self.from) / 2)
            / u128::from(self.from);
        let total = u64::try_from(total).unwrap_or(u64::MAX);
        let mut first = true;
        while self.frames_out < total {
            let done = if first && self.pending.first().is_some_and(|p| !p.is_empty()) {
                first = false;
                let rest = std::mem::take(&mut self.pending);
                self.inner.process_partial(Some(&rest), None)
            } else {
                self.inner.process_partial::<Vec<f32>>(None, None)
            }
            .map_err(|e| ImportError::Corrupt(format!("resampling failed: {e}")))?;
            if done.first().is_none_or(Vec::is_empty) {
                break;
            }
            self.emit(&done, total, out);
        }
        Ok(())
    }

    fn emit(&mut self, done: &[Vec<f32>], limit: u64, out: &mut Vec<i16>) {
        let frames = done.first().map_or(0, Vec::len);
        let start = self.skip.min(frames);
        self.skip -= start;
        for i in start..frames {
            if self.frames_out >= limit {
                return;
            }
            for ch in done {
                let v = (ch[i] * 32768.0).round().clamp(-32768.0, 32767.0);
                out.push(v as i16);
            }
            self.frames_out += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, frames: usize, channels: usize) -> Vec<i16> {
        (0..frames)
            .flat_map(|i| {
                let v = (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 8000.0;
                std::iter::repeat_n(v as i16, channels)
            })
            .collect()
    }

    #[test]
    fn keeps_the_length_and_the_tone() {
        for (from, to, channels) in [(44_100, 8000, 2), (16_000, 8000, 1), (8000, 16_000, 1)] {
            let input = tone(from, 440.0, from as usize * 3, channels);
            let mut r = Resample::new(from, to, channels).expect("resampler");
            let mut out = Vec::new();
            // fed in odd-sized pieces, as packets come
            for piece in input.chunks(channels * 777) {
                r.push(piece, &mut out).expect("push");
            }
            r.finish(&mut out).expect("finish");
            assert_eq!(out.len(), to as usize * 3 * channels, "{from} -> {to}");
            // the same tone at the new rate, once past the edges
            let expect = tone(to, 440.0, to as usize * 3, channels);
            let mid = to as usize * channels;
            let err: f64 = out[mid..2 * mid]
                .iter()
                .zip(&expect[mid..2 * mid])
                .map(|(a, b)| f64::from(a - b).abs())
                .sum::<f64>()
                / mid as f64;
            assert!(err < 40.0, "{from} -> {to}: mean error {err}");
        }
    }
}
