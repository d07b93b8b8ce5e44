//! Waveform peaks for the console: the lowest and highest sample of each channel in each of a fixed
//! number of buckets across a recording, from its rendered 16-bit PCM. A browser draws the
//! waveform from these few numbers; the audio itself is never sent for it.

/// The peaks of a recording: `buckets` (min, max) pairs per channel, as fractions of full scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Peaks {
    /// One list per channel (caller first, then agent), each `buckets` long.
    pub channels: Vec<Vec<(f32, f32)>>,
}

/// Accumulates interleaved 16-bit little-endian PCM, in pieces of any length, into [`Peaks`].
#[derive(Debug)]
pub struct PeaksBuilder {
    channels: usize,
    frames: u64,
    buckets: usize,
    min: Vec<i16>,
    max: Vec<i16>,
    seen: Vec<bool>,
    frame: u64,
    sample: usize,
    carry: Option<u8>,
}

impl PeaksBuilder {
    /// A builder for `frames` sample frames of `channels` channels, into `buckets` buckets (at
    /// least 1).
    pub fn new(channels: u16, frames: u64, buckets: usize) -> Self {
        let channels = usize::from(channels.max(1));
        let buckets = buckets.max(1);
        Self {
            channels,
            frames: frames.max(1),
            buckets,
            min: vec![0; channels * buckets],
            max: vec![0; channels * buckets],
            seen: vec![false; buckets],
            frame: 0,
            sample: 0,
            carry: None,
        }
    }

    /// Adds the next bytes of audio.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if let Some(lo) = self.carry.take() {
            let Some((&hi, rest)) = bytes.split_first() else {
                self.carry = Some(lo);
                return;
            };
            self.sample_in(i16::from_le_bytes([lo, hi]));
            bytes = rest;
        }
        let mut pairs = bytes.chunks_exact(2);
        for p in &mut pairs {
            self.sample_in(i16::from_le_bytes([p[0], p[1]]));
        }
        self.carry = pairs.remainder().first().copied();
    }

    fn sample_in(&mut self, s: i16) {
        let bucket = ((u128::from(self.frame) * self.buckets as u128) / u128::from(self.frames))
            .min(self.buckets as u128 - 1) as usize;
        let i = bucket * self.channels + self.sample;
        if self.seen[bucket] {
            self.min[i] = self.min[i].min(s);
            self.max[i] = self.max[i].max(s);
        } else {
            self.min[i] = s;
            self.max[i] = s;
        }
        self.sample += 1;
        if self.sample == self.channels {
            self.sample = 0;
            self.seen[bucket] = true;
            self.frame += 1;
        }
    }

    /// The peaks; buckets no audio reached are flat (0, 0).
    pub fn finish(self) -> Peaks {
        let scale = |v: i16| f32::from(v) / 32768.0;
        let channels = (0..self.channels)
            .map(|c| {
                (0..self.buckets)
                    .map(|b| {
                        let i = b * self.channels + c;
                        (scale(self.min[i]), scale(self.max[i]))
                    })
                    .collect()
            })
            .collect();
        Peaks { channels }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(frames: &[(i16, i16)]) -> Vec<u8> {
        frames
            .iter()
            .flat_map(|(a, b)| a.to_le_bytes().into_iter().chain(b.to_le_bytes()))
            .collect()
    }

    #[test]
    fn each_bucket_holds_its_frames_extremes_per_channel() {
        // 4 frames into 2 buckets: loud caller then quiet, silent agent then loud
        let bytes = pcm(&[(16384, 0), (-16384, 0), (100, 32767), (-100, -32768)]);
        let mut b = PeaksBuilder::new(2, 4, 2);
        // fed in awkward pieces: split inside a sample and inside a frame
        for piece in bytes.chunks(3) {
            b.push(piece);
        }
        let p = b.finish();
        assert_eq!(p.channels[0][0], (-0.5, 0.5));
        assert_eq!(p.channels[1][0], (0.0, 0.0));
        assert!(p.channels[0][1].1 < 0.01);
        assert_eq!(p.channels[1][1], (-1.0, 32767.0 / 32768.0));
    }

    #[test]
    fn more_buckets_than_frames_leaves_the_rest_flat() {
        let mut b = PeaksBuilder::new(1, 2, 4);
        b.push(&[0x00, 0x40, 0x00, 0xc0]);
        let p = b.finish();
        assert_eq!(p.channels[0].len(), 4);
        assert_eq!(p.channels[0][0], (0.5, 0.5));
        assert_eq!(p.channels[0][1], (0.0, 0.0));
        assert_eq!(p.channels[0][2], (-0.5, -0.5));
    }
}
