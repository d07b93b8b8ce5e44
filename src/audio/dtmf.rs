//! Keypad tone (DTMF) detection on each channel of a live stream, before anything is committed
//! (DESIGN.md section 2: keypad tones are card data too).
//!
//! [`DtmfDetector`] takes a stream's audio as it arrives, in frames of any length, in the stream's
//! own codec (PCMU, PCMA or L16; one or two interleaved channels, caller then agent) or as linear
//! samples per channel, and reports each keypad tone as a [`ToneEvent`]: [`ToneEvent::Started`] as
//! soon as a tone is certain (about 25 ms after its onset), then [`ToneEvent::Ended`] with its
//! [`ToneSpan`]: the channel and the sample range, in samples of that channel since the detector
//! began. A span is padded by one analysis block (12.75 ms) each side, so it covers the tone's
//! partial first and last blocks: dropping the span leaves nothing a decoder can read.
//!
//! The test, in the spirit of ITU-T Q.23 and Q.24, on blocks of 12.75 ms (102 samples at 8 kHz),
//! runs in [`analysis`]: Goertzel filters at the eight frequencies, each tone at least the
//! configured level ([`DetectorConfig::min_level_dbm0`]), twist from +4 dB (high group stronger)
//! to -8 dB, each tone the clear peak of its group, the two tones holding at least 80 % of the
//! block's energy, and the high tone without a strong second harmonic. A digit counts after two
//! consecutive blocks agree, which every tone of 40 ms or more gives, however it falls on the
//! blocks, and which no tone under 12.75 ms can give (most under 25 ms do not); it ends after
//! three blocks without it. A block the tone covers less than four fifths of fails the energy
//! test, so a 40 ms pause always gives three such blocks in a row and separates two presses, while
//! a drop-out of 10 ms touches at most two blocks and never splits one.
//!
//! Events of one channel come in order; events of the two channels found in one call to
//! [`DtmfDetector::feed`] come channel by channel.
//!
//! Architecture invariant: a [`Digit`]'s value never leaves the type by accident. Its `Debug` prints
//! `Digit([redacted])`, it has no `Display`, and nothing here logs. Only [`Digit::reveal`] (and
//! [`Digit::frequencies`]) return it, for a decoder's own tests; the recorder needs only that a
//! tone occurred and where.

pub mod analysis;

use std::fmt;

use crate::audio::g711::{ALAW_TO_LINEAR, ULAW_TO_LINEAR};
use crate::domain::{Codec, DtmfPolicy, MediaFormat};
use analysis::{Analysis, Hit};

/// The sixteen keys, row by row, as the tone pairs map to them.
const KEYS: [char; 16] = [
    '1', '2', '3', 'A', '4', '5', '6', 'B', '7', '8', '9', 'C', '*', '0', '#', 'D',
];

/// One keypad key. Its value is card data: `Debug` never shows it, and there is no `Display`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(u8);

impl Digit {
    /// Every key, in keypad order (`1 2 3 A 4 5 6 B 7 8 9 C * 0 # D`).
    pub fn all() -> impl Iterator<Item = Digit> {
        (0..16).map(Digit)
    }

    fn from_position(row: usize, col: usize) -> Self {
        Digit((row * 4 + col) as u8)
    }

    /// The key a character names (`0`-`9`, `*`, `#`, `A`-`D`, either case), as signalled digits
    /// spell them (Twilio `dtmf`, AudioSocket DTMF frames).
    pub fn from_char(c: char) -> Option<Self> {
        let c = c.to_ascii_uppercase();
        KEYS.iter().position(|&k| k == c).map(|i| Digit(i as u8))
    }

    /// The key of an RFC 4733 `telephone-event` code (0-9, `*` = 10, `#` = 11, A-D = 12-15).
    pub fn from_event_code(code: u8) -> Option<Self> {
        let c = match code {
            0..=9 => char::from(b'0' + code),
            10 => '*',
            11 => '#',
            12..=15 => char::from(b'A' + code - 12),
            _ => return None,
        };
        Self::from_char(c)
    }

    /// The key's character. Card data: for a decoder's tests only, never for a log, a ledger or
    /// anything stored.
    pub fn reveal(self) -> char {
        KEYS[usize::from(self.0)]
    }

    /// The key's low and high frequencies, in Hz. As telling as [`Digit::reveal`]: for tone
    /// generators and tests only.
    pub fn frequencies(self) -> (f32, f32) {
        let i = usize::from(self.0);
        (analysis::LOW_GROUP[i / 4], analysis::HIGH_GROUP[i % 4])
    }
}

impl fmt::Debug for Digit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digit([redacted])")
    }
}

/// One keypad tone on one channel, as samples of that channel since the detector began:
/// `[start, end)`, padded as the module says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToneSpan {
    /// The channel: 0 the caller (or the mix), 1 the agent.
    pub channel: u8,
    /// The first sample of the span.
    pub start: u64,
    /// One past the last sample of the span.
    pub end: u64,
    digit: Digit,
}

impl ToneSpan {
    /// The key that was pressed (its `Debug` is redacted).
    pub fn digit(&self) -> Digit {
        self.digit
    }
}

/// What the detector found in the audio just fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToneEvent {
    /// A tone is certain on `channel`; it began at sample `start` (padded) and is still sounding.
    Started {
        /// The channel.
        channel: u8,
        /// The span's first sample.
        start: u64,
    },
    /// A tone ended (or the stream did): its whole span.
    Ended(ToneSpan),
}

/// How sensitive the detector is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// The weakest tone that counts, in dBm0 for each of the two frequencies: -36 by default, with
    /// 6 dB of margin below the quietest level a keypad tone must be found at (-30 dBm0). Lower
    /// finds quieter tones; higher ignores more of what is not a keypad.
    pub min_level_dbm0: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            min_level_dbm0: DEFAULT_MIN_LEVEL_DBM0,
        }
    }
}

impl DetectorConfig {
    /// The detector a policy asks for (its `dtmf_sensitivity`).
    pub fn for_policy(policy: &DtmfPolicy) -> Self {
        Self {
            min_level_dbm0: f32::from(policy.sensitivity_dbm0),
        }
    }
}

/// The default of [`DetectorConfig::min_level_dbm0`].
pub const DEFAULT_MIN_LEVEL_DBM0: f32 = -36.0;

/// The least and most [`DetectorConfig::min_level_dbm0`] accepted.
pub const MIN_LEVEL_RANGE: std::ops::RangeInclusive<f32> = -50.0..=-10.0;

/// A stream the detector cannot analyse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DtmfError {
    /// Keypad tones reach 1633 Hz and their test needs harmonics up to 3266 Hz.
    #[error("dtmf detection needs 8000 to 48000 samples per second, got {0}")]
    SampleRate(u32),
    /// A stream must have one or two channels.
    #[error("dtmf detection needs 1 or 2 channels, got {0}")]
    Channels(u8),
    /// The sensitivity is outside [`MIN_LEVEL_RANGE`].
    #[error("dtmf sensitivity must be between -50 and -10 dBm0, got {0}")]
    Sensitivity(f32),
}

/// Blocks in a row without the digit that end it.
const MISSES_TO_END: u8 = 3;

/// The keypad-tone detector of one stream. Pure computation: no I/O, no clock, no logging.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    codec: Codec,
    analysis: Analysis,
    channels: Vec<Channel>,
    /// Bytes of an incomplete sample frame, kept for the next call to [`DtmfDetector::feed`].
    partial: Vec<u8>,
}

/// One channel's analysis state.
#[derive(Debug, Clone)]
struct Channel {
    /// The block being filled, `fill` samples of it so far.
    block: Vec<f32>,
    fill: usize,
    /// Samples of this channel in blocks already analysed, so the current block starts here.
    base: u64,
    /// The last block, if it passed the tests of one block.
    last: Option<Hit>,
    /// The tone sounding now.
    active: Option<Active>,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    digit: Digit,
    start: u64,
    last_hit_end: u64,
    misses: u8,
}

impl DtmfDetector {
    /// A detector for a stream in `format`.
    pub fn new(format: MediaFormat, config: DetectorConfig) -> Result<Self, DtmfError> {
        if !(8000..=48_000).contains(&format.sample_rate) {
            return Err(DtmfError::SampleRate(format.sample_rate));
        }
        if !(1..=2).contains(&format.channels) {
            return Err(DtmfError::Channels(format.channels));
        }
        if !MIN_LEVEL_RANGE.contains(&config.min_level_dbm0) {
            return Err(DtmfError::Sensitivity(config.min_level_dbm0));
        }
        let analysis = Analysis::new(format.sample_rate, config.min_level_dbm0);
        let channel = Channel {
            block: vec![0.0; analysis.block],
            fill: 0,
            base: 0,
            last: None,
            active: None,
        };
        Ok(Self {
            codec: format.codec,
            channels: vec![channel; usize::from(format.channels)],
            analysis,
            partial: Vec::new(),
        })
    }

    /// Feeds encoded audio in the stream's format (channels interleaved sample by sample), in
    /// pieces of any length: a sample frame split across two calls is joined. Events found are
    /// appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<ToneEvent>) {
        let frame = self.codec.bytes_per_sample() as usize * self.channels.len();
        let mut bytes = bytes;
        if !self.partial.is_empty() {
            let need = (frame - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..need]);
            bytes = &bytes[need..];
            if self.partial.len() < frame {
                return;
            }
            let whole = std::mem::take(&mut self.partial);
            self.feed_frames(&whole, out);
        }
        let whole = bytes.len() - bytes.len() % frame;
        self.feed_frames(&bytes[..whole], out);
        self.partial.extend_from_slice(&bytes[whole..]);
    }

    /// Feeds linear samples of one channel (for audio already decoded, or a platform that sends
    /// each channel apart). Positions count per channel, so use either this or
    /// [`DtmfDetector::feed`] for a stream, not both.
    ///
    /// # Panics
    /// If `channel` is not one of the stream's channels.
    pub fn feed_linear(&mut self, channel: u8, samples: &[i16], out: &mut Vec<ToneEvent>) {
        let analysis = &self.analysis;
        self.channels[usize::from(channel)].push(
            channel,
            samples.iter().map(|&s| f32::from(s)),
            analysis,
            out,
        );
    }

    /// Ends the stream (or marks a gap in it): a tone still sounding ends at the last sample fed,
    /// and a block not yet full is dropped (positions still count its samples).
    pub fn finish(&mut self, out: &mut Vec<ToneEvent>) {
        self.partial.clear();
        let n = self.analysis.block as u64;
        for (i, ch) in self.channels.iter_mut().enumerate() {
            let fed = ch.base + ch.fill as u64;
            if let Some(a) = ch.active.take() {
                out.push(ToneEvent::Ended(ToneSpan {
                    channel: i as u8,
                    start: a.start,
                    end: (a.last_hit_end + n).min(fed),
                    digit: a.digit,
                }));
            }
            ch.last = None;
            ch.base = fed;
            ch.fill = 0;
        }
    }

    /// Samples of `channel` fed so far.
    pub fn position(&self, channel: u8) -> u64 {
        let ch = &self.channels[usize::from(channel)];
        ch.base + ch.fill as u64
    }

    /// Where the tone sounding now on `channel` began, if one is.
    pub fn sounding(&self, channel: u8) -> Option<u64> {
        self.channels[usize::from(channel)].active.map(|a| a.start)
    }

    fn feed_frames(&mut self, bytes: &[u8], out: &mut Vec<ToneEvent>) {
        let width = self.codec.bytes_per_sample() as usize;
        let stride = width * self.channels.len();
        let analysis = &self.analysis;
        for (i, ch) in self.channels.iter_mut().enumerate() {
            let channel = i as u8;
            let mine = bytes.chunks_exact(stride).map(|f| &f[i * width..]);
            match self.codec {
                Codec::Pcmu => ch.push(
                    channel,
                    mine.map(|s| f32::from(ULAW_TO_LINEAR[usize::from(s[0])])),
                    analysis,
                    out,
                ),
                Codec::Pcma => ch.push(
                    channel,
                    mine.map(|s| f32::from(ALAW_TO_LINEAR[usize::from(s[0])])),
                    analysis,
                    out,
                ),
                Codec::L16 => ch.push(
                    channel,
                    mine.map(|s| f32::from(i16::from_le_bytes([s[0], s[1]]))),
                    analysis,
                    out,
                ),
            }
        }
    }
}

impl Channel {
    fn push(
        &mut self,
        channel: u8,
        samples: impl Iterator<Item = f32>,
        analysis: &Analysis,
        out: &mut Vec<ToneEvent>,
    ) {
        let n = analysis.block;
        for s in samples {
            self.block[self.fill] = s;
            self.fill += 1;
            if self.fill == n {
                let hit = analysis.hit(&self.block);
                self.fill = 0;
                let start = self.base;
                self.base += n as u64;
                // a tone begins on two blocks that agree, and goes on while blocks carry it
                let begins = match (&self.last, &hit) {
                    (Some(prev), Some(next)) => analysis.continues(prev, next),
                    _ => false,
                };
                self.last = hit;
                self.step(channel, hit.map(|h| h.digit), begins, start, n as u64, out);
            }
        }
    }

    /// Moves the tone tracking on by one block `[start, start + n)` that carried `hit`, and, if
    /// `begins`, continued the block before it.
    fn step(
        &mut self,
        channel: u8,
        hit: Option<Digit>,
        begins: bool,
        start: u64,
        n: u64,
        out: &mut Vec<ToneEvent>,
    ) {
        let end = start + n;
        if let Some(a) = &mut self.active {
            if hit == Some(a.digit) {
                a.last_hit_end = end;
                a.misses = 0;
                return;
            }
            a.misses += 1;
            if a.misses < MISSES_TO_END {
                return;
            }
            out.push(ToneEvent::Ended(ToneSpan {
                channel,
                start: a.start,
                end: a.last_hit_end + n,
                digit: a.digit,
            }));
            self.active = None;
        }
        if let Some(digit) = hit
            && begins
        {
            // the tone covered the block before this one, and perhaps part of the one before it
            let start = start.saturating_sub(2 * n);
            self.active = Some(Active {
                digit,
                start,
                last_hit_end: end,
                misses: 0,
            });
            out.push(ToneEvent::Started { channel, start });
        }
    }
}

#[cfg(test)]
mod tests;
