//! Playback rendering: one WAV file of a whole recording, its segments joined and its pauses
//! rendered as the policy says ([`PauseRender`]), streamed a bounded step at a time.
//!
//! This module owns the mapping from a byte range of that WAV file to the segments and gaps it
//! covers. The file's length is computed in advance from the segments' plaintext lengths, so the
//! header is written first and any range (HTTP `Range`) can be served without rendering what
//! precedes it. It never holds a whole recording: each step reads at most [`READ_STEP`] bytes of
//! plaintext from one [`SegmentSource`], and only the segments a range touches are read.
//!
//! It must not fetch or decrypt by itself: a [`SegmentSource`] hands it plaintext
//! ([`VaultSegmentSource`] over the vault's [`ObjectReader`]). It must not write anything anywhere.
//! Decrypted and decoded audio is handed out in buffers that are wiped when the last reference
//! to them drops.
//!
//! G.711 decoding and tone synthesis run inline, not on the blocking pool: one step is at most
//! [`READ_STEP`] bytes of table look-ups or sines, well under a millisecond.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use zeroize::Zeroizing;

use super::g711::{ALAW_TO_LINEAR, ULAW_TO_LINEAR};
use super::tone::{GapSound, GapSynth};
use super::wav::{TooLong, WavFormat, WavSpec};
use crate::domain::{Codec, MediaFormat, PauseRender};
use crate::vault::{DataKey, ObjectReader, Plaintext, VaultError};

/// Most plaintext bytes read from a segment in one step of a stream (64 KiB: four chunks of the
/// default container chunk size, about four seconds of stereo G.711).
pub const READ_STEP: u64 = 64 * 1024;

/// How the rendered WAV encodes its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// The stored codec as is: mu-law or A-law WAV for G.711, 16-bit PCM for L16.
    Stored,
    /// 16-bit linear PCM: G.711 is decoded (doubling its size), L16 stays as it is.
    Pcm16,
}

/// Why a recording could not be rendered, with variants a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A segment could not be read: missing object, failed authentication, store error.
    #[error("segment source: {source}")]
    Source {
        /// The vault's error.
        #[source]
        source: VaultError,
    },
    /// A segment source returned another number of bytes than was asked for.
    #[error("segment source returned {got} bytes for a range of {expected}")]
    ShortRead {
        /// Bytes asked for.
        expected: u64,
        /// Bytes returned.
        got: u64,
    },
    /// The rendered file would be over the 4 GiB a WAV file can describe.
    #[error("recording too long for one wav file: {0}")]
    TooLong(#[from] TooLong),
    /// A byte range outside the rendered file was asked for.
    #[error("range {start}..{end} is outside the {len} bytes of the rendered file")]
    Range {
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// Length of the rendered file.
        len: u64,
    },
    /// The recording's media format cannot be rendered.
    #[error("bad media format: {reason}")]
    BadFormat {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A segment is not in the recording's media format.
    #[error("piece {index} is not in the recording's media format")]
    FormatMismatch {
        /// Index of the piece in the timeline.
        index: usize,
    },
    /// A compressed (FLAC) segment did not decode.
    #[error("segment audio: {0}")]
    Decode(#[from] super::flac::FlacError),
}

impl From<VaultError> for RenderError {
    fn from(source: VaultError) -> Self {
        RenderError::Source { source }
    }
}

/// The plaintext audio of one segment, read by byte range.
#[async_trait]
pub trait SegmentSource: Send + Sync {
    /// Length of the segment's plaintext audio in bytes.
    fn plaintext_len(&self) -> u64;

    /// Exactly the plaintext bytes `range` (within `0..plaintext_len()`).
    async fn read(&self, range: Range<u64>) -> Result<Bytes, RenderError>;

    /// The segment's media format, if the source knows it; a timeline refuses a segment whose
    /// format differs from the recording's.
    fn format(&self) -> Option<MediaFormat> {
        None
    }
}

/// A sealed segment in the vault, read through its [`ObjectReader`] with its data key.
#[derive(Debug)]
pub struct VaultSegmentSource {
    reader: ObjectReader,
    key: DataKey,
}

impl VaultSegmentSource {
    /// A source over an opened object and the segment's unwrapped data key.
    pub fn new(reader: ObjectReader, key: DataKey) -> Self {
        Self { reader, key }
    }

    /// The segment's media format, from its container header (16-bit linear for FLAC storage).
    pub fn media_format(&self) -> MediaFormat {
        let h = self.reader.header();
        MediaFormat {
            codec: h.codec(),
            sample_rate: h.sample_rate(),
            channels: h.channels(),
        }
    }
}

/// Decrypted or decoded audio handed out as [`Bytes`], wiped when the last reference drops.
struct Wiped(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for Wiped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn wiped(plain: Plaintext) -> Bytes {
    Bytes::from_owner(Wiped(plain.into_inner()))
}

#[async_trait]
impl SegmentSource for VaultSegmentSource {
    fn plaintext_len(&self) -> u64 {
        self.reader.audio_len()
    }

    async fn read(&self, range: Range<u64>) -> Result<Bytes, RenderError> {
        if let Some(layout) = self.reader.framed() {
            return self.read_flac(layout, range).await;
        }
        let plain = self.reader.read_range(&self.key, range).await?;
        Ok(wiped(plain))
    }

    fn format(&self) -> Option<MediaFormat> {
        Some(self.media_format())
    }
}

impl VaultSegmentSource {
    /// Decoded bytes `range` of a version 2 (FLAC) segment: only the chunks that hold them are
    /// fetched, decrypted and decoded.
    async fn read_flac(
        &self,
        layout: &crate::vault::FramedLayout,
        range: Range<u64>,
    ) -> Result<Bytes, RenderError> {
        let chunks = layout.chunks_for(range.clone())?;
        if chunks.is_empty() {
            return Ok(Bytes::new());
        }
        let plains = self.reader.read_chunks(&self.key, chunks.clone()).await?;
        let h = layout.header();
        let base = h.base();
        let mut decoder = super::flac::FlacDecoder::new(
            base.channels(),
            base.sample_rate(),
            h.frames_per_chunk(),
        )?;
        let per = u64::from(h.frames_per_chunk()) * base.frame_len();
        let mut out = Zeroizing::new(Vec::with_capacity(
            ((chunks.end - chunks.start) * per) as usize,
        ));
        for (index, chunk) in chunks.clone().zip(plains) {
            let frames = layout.frames_in(index);
            if frames > 0 {
                decoder.decode_into(&chunk, frames, &mut out)?;
            }
        }
        let from = (range.start - chunks.start * per) as usize;
        let to = (range.end - chunks.start * per) as usize;
        if to > out.len() {
            return Err(RenderError::ShortRead {
                expected: range.end - range.start,
                got: out.len().saturating_sub(from) as u64,
            });
        }
        Ok(Bytes::from_owner(Wiped(out)).slice(from..to))
    }
}

/// One piece of a recording's timeline, in order.
#[derive(Clone)]
pub enum Piece {
    /// A segment of recorded audio.
    Audio(Arc<dyn SegmentSource>),
    /// A pause between segments, `frames` sample frames long, rendered as the policy says.
    Gap {
        /// Length of the pause in sample frames (see [`Piece::gap_ms`]).
        frames: u64,
        /// How it sounds, if at all.
        render: PauseRender,
    },
}

impl Piece {
    /// A gap of `ms` milliseconds at the format's sample rate (rounded to the nearest frame).
    pub fn gap_ms(format: &MediaFormat, ms: u64, render: PauseRender) -> Self {
        let frames = (u128::from(ms) * u128::from(format.sample_rate) + 500) / 1000;
        Piece::Gap {
            frames: u64::try_from(frames).unwrap_or(u64::MAX),
            render,
        }
    }
}

impl fmt::Debug for Piece {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Piece::Audio(src) => f
                .debug_struct("Audio")
                .field("plaintext_len", &src.plaintext_len())
                .finish(),
            Piece::Gap { frames, render } => f
                .debug_struct("Gap")
                .field("frames", frames)
                .field("render", render)
                .finish(),
        }
    }
}

/// A piece that contributes bytes to the data chunk, at `start..end` of it.
#[derive(Clone)]
struct Span {
    start: u64,
    end: u64,
    kind: SpanKind,
}

#[derive(Clone)]
enum SpanKind {
    /// Output byte `i` of the span comes from plaintext byte `i / factor`.
    Audio(Arc<dyn SegmentSource>),
    Gap(GapSynth),
}

/// A recording laid out as one WAV file: header, then every segment and rendered gap in order,
/// then a pad byte if the data length is odd.
///
/// Cheap to clone; [`stream`](Self::stream) serves any byte range of the file.
#[derive(Clone)]
pub struct Timeline {
    inner: Arc<Inner>,
    read_step: u64,
}

struct Inner {
    header: Vec<u8>,
    spec: WavSpec,
    out: MediaFormat,
    /// The G.711 decoding table when G.711 is rendered as PCM (each stored byte becomes two).
    widen: Option<&'static [i16; 256]>,
    data_len: u64,
    file_len: u64,
    spans: Vec<Span>,
}

impl fmt::Debug for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeline")
            .field("spec", &self.inner.spec)
            .field("data_len", &self.inner.data_len)
            .field("file_len", &self.inner.file_len)
            .field("spans", &self.inner.spans.len())
            .finish_non_exhaustive()
    }
}

impl Timeline {
    /// Lays out `pieces` of a recording in `format`, rendered as `output`. Segments whose length is
    /// not a whole number of frames are cut to whole frames, so channels never swap.
    pub fn new(
        format: MediaFormat,
        output: OutputFormat,
        pieces: Vec<Piece>,
    ) -> Result<Self, RenderError> {
        if !matches!(format.channels, 1 | 2) {
            return Err(RenderError::BadFormat {
                reason: "channels must be 1 or 2",
            });
        }
        if format.sample_rate == 0 {
            return Err(RenderError::BadFormat {
                reason: "sample rate must be above zero",
            });
        }
        let out_codec = match output {
            OutputFormat::Stored => format.codec,
            OutputFormat::Pcm16 => Codec::L16,
        };
        let out = MediaFormat {
            codec: out_codec,
            ..format
        };
        let spec = WavSpec {
            format: match out_codec {
                Codec::Pcmu => WavFormat::MuLaw,
                Codec::Pcma => WavFormat::ALaw,
                Codec::L16 => WavFormat::Pcm16,
            },
            channels: u16::from(format.channels),
            sample_rate: format.sample_rate,
        };
        let in_frame = u64::from(format.frame_bytes());
        let out_frame = u64::from(out.frame_bytes());
        let mut spans = Vec::new();
        let mut at = 0u64;
        for (index, piece) in pieces.into_iter().enumerate() {
            let (len, kind) = match piece {
                Piece::Audio(src) => {
                    if src.format().is_some_and(|f| f != format) {
                        return Err(RenderError::FormatMismatch { index });
                    }
                    let frames = src.plaintext_len() / in_frame;
                    (frames.checked_mul(out_frame), SpanKind::Audio(src))
                }
                Piece::Gap { frames, render } => {
                    let sound = match render {
                        PauseRender::Skip => continue,
                        PauseRender::Silence => GapSound::Silence,
                        PauseRender::Tone => GapSound::Tone,
                    };
                    let synth = GapSynth::new(sound, out, frames);
                    (frames.checked_mul(out_frame), SpanKind::Gap(synth))
                }
            };
            let end = len
                .and_then(|l| at.checked_add(l))
                .ok_or(TooLong { data_len: u64::MAX })?;
            if end > at {
                spans.push(Span {
                    start: at,
                    end,
                    kind,
                });
            }
            at = end;
        }
        let data_len = at;
        let header = spec.header(data_len)?;
        let file_len = spec.file_len(data_len)?;
        Ok(Self {
            inner: Arc::new(Inner {
                header,
                spec,
                out,
                widen: match (format.codec, out_codec) {
                    (Codec::Pcmu, Codec::L16) => Some(&ULAW_TO_LINEAR),
                    (Codec::Pcma, Codec::L16) => Some(&ALAW_TO_LINEAR),
                    _ => None,
                },
                data_len,
                file_len,
                spans,
            }),
            read_step: READ_STEP,
        })
    }

    /// The same timeline reading at most `bytes` of plaintext a step (at least 1; default
    /// [`READ_STEP`]). Smaller steps send the first bytes sooner; larger ones make fewer reads.
    pub fn with_read_step(mut self, bytes: u64) -> Self {
        self.read_step = bytes.max(1);
        self
    }

    /// Length of the whole WAV file in bytes: header, audio and pad byte.
    pub fn file_len(&self) -> u64 {
        self.inner.file_len
    }

    /// Length of the WAV header in bytes (44 for PCM, 58 for G.711).
    pub fn header_len(&self) -> u64 {
        self.inner.header.len() as u64
    }

    /// Length of the audio (the `data` chunk) in bytes.
    pub fn data_len(&self) -> u64 {
        self.inner.data_len
    }

    /// The WAV file's sample encoding, channels and rate.
    pub fn wav_spec(&self) -> WavSpec {
        self.inner.spec
    }

    /// Sample frames in the rendered file.
    pub fn frames(&self) -> u64 {
        self.inner.data_len / u64::from(self.inner.out.frame_bytes())
    }

    /// Exactly the bytes `range` of the WAV file, in pieces of at most one read step of audio
    /// (twice that when G.711 is decoded to PCM). An empty range yields nothing; a range outside the
    /// file yields one [`RenderError::Range`].
    pub fn stream(
        &self,
        range: Range<u64>,
    ) -> impl Stream<Item = Result<Bytes, RenderError>> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        let step = self.read_step;
        let checked = if range.start > range.end || range.end > inner.file_len {
            Err(RenderError::Range {
                start: range.start,
                end: range.end,
                len: inner.file_len,
            })
        } else {
            Ok(range)
        };
        futures::stream::try_unfold((inner, checked), move |(inner, checked)| async move {
            let range = checked?;
            if range.is_empty() {
                return Ok(None);
            }
            let bytes = inner.next_piece(range.clone(), step).await?;
            debug_assert!(!bytes.is_empty(), "every step makes progress");
            let next = range.start + bytes.len() as u64..range.end;
            Ok(Some((bytes, (inner, Ok(next)))))
        })
    }
}

impl Inner {
    /// Output bytes per stored byte: 2 when G.711 is decoded to PCM, else 1.
    fn factor(&self) -> u64 {
        if self.widen.is_some() { 2 } else { 1 }
    }

    /// The first bytes of the non-empty `range` (of the file), up to the end of the header, of a
    /// piece, or of a read step.
    async fn next_piece(&self, range: Range<u64>, step: u64) -> Result<Bytes, RenderError> {
        let header_len = self.header.len() as u64;
        if range.start < header_len {
            let end = range.end.min(header_len);
            return Ok(Bytes::copy_from_slice(
                &self.header[range.start as usize..end as usize],
            ));
        }
        let start = range.start - header_len;
        if start >= self.data_len {
            // the pad byte after odd-length data
            return Ok(Bytes::from_static(&[0]));
        }
        let end = (range.end - header_len).min(self.data_len);
        let i = self.spans.partition_point(|s| s.end <= start);
        let span = &self.spans[i];
        let local = start - span.start;
        let out_step = step.saturating_mul(self.factor());
        let step_end = (local / out_step)
            .saturating_add(1)
            .saturating_mul(out_step);
        let local_end = (end.min(span.end) - span.start).min(step_end);
        match &span.kind {
            SpanKind::Audio(src) => self.audio(src.as_ref(), local..local_end).await,
            SpanKind::Gap(synth) => {
                let frame = u64::from(self.out.frame_bytes());
                let first = local / frame;
                let bytes = synth.render(first..local_end.div_ceil(frame));
                let skip = (local - first * frame) as usize;
                let take = (local_end - local) as usize;
                Ok(Bytes::from(bytes).slice(skip..skip + take))
            }
        }
    }

    /// Output bytes `out` (relative to the start of a segment's span) of that segment.
    async fn audio(&self, src: &dyn SegmentSource, out: Range<u64>) -> Result<Bytes, RenderError> {
        let factor = self.factor();
        let want = out.start / factor..out.end.div_ceil(factor);
        let plain = src.read(want.clone()).await?;
        let expected = want.end - want.start;
        if plain.len() as u64 != expected {
            return Err(RenderError::ShortRead {
                expected,
                got: plain.len() as u64,
            });
        }
        let Some(table) = self.widen else {
            return Ok(plain);
        };
        let mut pcm = Zeroizing::new(Vec::with_capacity(plain.len() * 2));
        for b in plain.iter() {
            pcm.extend_from_slice(&table[usize::from(*b)].to_le_bytes());
        }
        let skip = (out.start - want.start * factor) as usize;
        let take = (out.end - out.start) as usize;
        Ok(Bytes::from_owner(Wiped(pcm)).slice(skip..skip + take))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
