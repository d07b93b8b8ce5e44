//! The `CVA1` audio container: one sealed object per segment, the same bytes in the spool.
//!
//! This module owns the byte format, the streaming [`SegmentWriter`], and whole and ranged decryption
//! from bytes ([`open`], [`open_range`]). It must not do I/O (the object-store reader is
//! [`ObjectReader`](super::ObjectReader), spool recovery [`recover_partial`](super::recover_partial)),
//! and it never lets plaintext out except inside a [`Plaintext`].
//!
//! # Format (frozen; a new layout gets a new version number)
//!
//! Header, all integers big-endian, [`HEADER_LEN`] = 53 bytes:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | magic `CVA1` ([`MAGIC`]) |
//! | 4 | 2 | format version, u16 = 1 ([`FORMAT_VERSION`]) |
//! | 6 | 2 | header length, u16 = 53 |
//! | 8 | 16 | recording id (UUIDv7 bytes) |
//! | 24 | 4 | segment number, u32 |
//! | 28 | 1 | codec, u8 ([`Codec::code`]) |
//! | 29 | 1 | channels, u8 (1, or 2: caller and agent) |
//! | 30 | 4 | sample rate, u32 (Hz) |
//! | 34 | 4 | chunk size, u32: plaintext bytes per chunk, 1 ..= [`MAX_CHUNK_SIZE`] |
//! | 38 | 8 | media start offset, u64: milliseconds from recording start |
//! | 46 | 7 | nonce prefix: random |
//!
//! Body: the plaintext cut into chunks of `chunk size` bytes, each sealed with AES-256-GCM under the
//! segment's data key (ciphertext followed by its 16-byte tag). Every chunk but the last holds exactly
//! `chunk size` bytes; the last holds 0 ..= `chunk size` (an empty segment is the header and one
//! empty final chunk). Chunk `i` sits at `HEADER_LEN + i * (chunk size + 16)`.
//!
//! Nonce of chunk `i` (the STREAM construction, written here over `aes-gcm`): nonce prefix (7) ‖ `i`
//! as u32 big-endian ‖ last-chunk flag u8 (1 for the final chunk, else 0). The associated data of
//! every chunk is the full 53 header bytes. So altering any byte, dropping, reordering or truncating
//! chunks, and swapping headers or chunks between objects all fail authentication.

use std::ops::Range;

use rand::RngCore;
use rand::rngs::OsRng;

use super::VaultError;
use crate::domain::{Codec, RecordingId, SegmentNo};

pub mod framed;
mod open;
mod writer;

pub use open::{Plaintext, open, open_range};
pub(crate) use open::{decrypt_span, open_chunk, plaintext};
pub use writer::SegmentWriter;
pub(crate) use writer::seal_chunk;

/// The first four bytes of every container.
pub const MAGIC: [u8; 4] = *b"CVA1";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of a version 1 header.
pub const HEADER_LEN: usize = 53;
/// Length of the random nonce prefix in the header.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Length of the AES-GCM tag that ends every sealed chunk.
pub const TAG_LEN: usize = 16;
/// Default plaintext bytes per chunk: 16 KiB, about one second of stereo G.711.
pub const DEFAULT_CHUNK_SIZE: u32 = 16 * 1024;
/// Largest accepted chunk size (1 MiB).
pub const MAX_CHUNK_SIZE: u32 = 1024 * 1024;
/// Highest accepted sample rate (Hz).
pub const MAX_SAMPLE_RATE: u32 = 192_000;

const fn bad(reason: &'static str) -> VaultError {
    VaultError::BadHeader { reason }
}

/// A container header: what the segment is and how it is sealed. Fields are checked on construction
/// and on decode, so a `Header` always encodes to a valid one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    recording_id: RecordingId,
    segment: SegmentNo,
    codec: Codec,
    channels: u8,
    sample_rate: u32,
    chunk_size: u32,
    media_start_ms: u64,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl Header {
    /// A header with the default chunk size and a fresh random nonce prefix. Fails unless channels
    /// is 1 or 2 and the sample rate is 1 ..= [`MAX_SAMPLE_RATE`].
    pub fn new(
        recording_id: RecordingId,
        segment: SegmentNo,
        codec: Codec,
        channels: u8,
        sample_rate: u32,
        media_start_ms: u64,
    ) -> Result<Self, VaultError> {
        check_audio(channels, sample_rate)?;
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        OsRng.fill_bytes(&mut nonce_prefix);
        Ok(Self {
            recording_id,
            segment,
            codec,
            channels,
            sample_rate,
            chunk_size: DEFAULT_CHUNK_SIZE,
            media_start_ms,
            nonce_prefix,
        })
    }

    /// The same header with another chunk size (1 ..= [`MAX_CHUNK_SIZE`]).
    pub fn with_chunk_size(mut self, chunk_size: u32) -> Result<Self, VaultError> {
        check_chunk_size(chunk_size)?;
        self.chunk_size = chunk_size;
        Ok(self)
    }

    /// The header's 53 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        b[6..8].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
        b[8..24].copy_from_slice(self.recording_id.as_bytes());
        b[24..28].copy_from_slice(&self.segment.0.to_be_bytes());
        b[28] = self.codec.code();
        b[29] = self.channels;
        b[30..34].copy_from_slice(&self.sample_rate.to_be_bytes());
        b[34..38].copy_from_slice(&self.chunk_size.to_be_bytes());
        b[38..46].copy_from_slice(&self.media_start_ms.to_be_bytes());
        b[46..53].copy_from_slice(&self.nonce_prefix);
        b
    }

    /// Reads a header from the start of `bytes` (which may go on into the body).
    pub fn decode(bytes: &[u8]) -> Result<Self, VaultError> {
        if bytes.len() < 8 {
            return Err(bad("shorter than the fixed header fields"));
        }
        if bytes[0..4] != MAGIC {
            return Err(bad("not a CVA1 container (bad magic)"));
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if version != FORMAT_VERSION {
            return Err(VaultError::UnsupportedVersion(version));
        }
        if usize::from(u16::from_be_bytes([bytes[6], bytes[7]])) != HEADER_LEN {
            return Err(bad("header length is not 53 for format version 1"));
        }
        let Some(b) = bytes.get(..HEADER_LEN) else {
            return Err(bad("header is cut short"));
        };
        Self::fields(b)
    }

    /// The fields after magic, version and length (bytes 8..53), shared by every version.
    pub(crate) fn fields(b: &[u8]) -> Result<Self, VaultError> {
        let b = b.get(..HEADER_LEN).ok_or(bad("header is cut short"))?;
        let be32 = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[8..24]);
        let codec = Codec::from_code(b[28]).ok_or(bad("unknown codec code"))?;
        let (channels, sample_rate, chunk_size) = (b[29], be32(30), be32(34));
        check_audio(channels, sample_rate)?;
        check_chunk_size(chunk_size)?;
        let mut start = [0u8; 8];
        start.copy_from_slice(&b[38..46]);
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&b[46..53]);
        Ok(Self {
            recording_id: RecordingId::from_uuid(uuid::Uuid::from_bytes(id)),
            segment: SegmentNo(be32(24)),
            codec,
            channels,
            sample_rate,
            chunk_size,
            media_start_ms: u64::from_be_bytes(start),
            nonce_prefix,
        })
    }

    /// The recording this segment belongs to.
    pub fn recording_id(&self) -> RecordingId {
        self.recording_id
    }
    /// The segment's number within its recording.
    pub fn segment(&self) -> SegmentNo {
        self.segment
    }
    /// The audio codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }
    /// 1 or 2 channels.
    pub fn channels(&self) -> u8 {
        self.channels
    }
    /// Samples per second per channel.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }
    /// Plaintext bytes per chunk.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }
    /// Where the segment starts, in milliseconds from the recording's start.
    pub fn media_start_ms(&self) -> u64 {
        self.media_start_ms
    }

    /// Bytes of one sample on all channels.
    pub fn frame_len(&self) -> u64 {
        u64::from(self.codec.bytes_per_sample()) * u64::from(self.channels)
    }

    /// Plaintext bytes per second of audio: codec sample size × sample rate × channels.
    pub fn bytes_per_second(&self) -> u64 {
        self.frame_len() * u64::from(self.sample_rate)
    }

    /// Bytes a whole sealed chunk takes: chunk size plus the tag.
    pub fn sealed_chunk_len(&self) -> u64 {
        u64::from(self.chunk_size) + TAG_LEN as u64
    }

    /// Object offset of chunk `index`.
    pub fn chunk_offset(&self, index: u64) -> u64 {
        HEADER_LEN as u64 + index * self.sealed_chunk_len()
    }

    /// Indices of the chunks holding the plaintext bytes `range` (empty for an empty range).
    pub fn chunks_for_bytes(&self, range: Range<u64>) -> Range<u64> {
        let cs = u64::from(self.chunk_size);
        if range.start >= range.end {
            return range.start / cs..range.start / cs;
        }
        range.start / cs..(range.end - 1) / cs + 1
    }

    /// Object bytes spanned by the chunks `chunks`, assuming each is whole (the final chunk may be
    /// shorter: [`Layout::object_range`] clamps to the object).
    pub fn object_range(&self, chunks: Range<u64>) -> Range<u64> {
        self.chunk_offset(chunks.start)..self.chunk_offset(chunks.end)
    }

    /// Plaintext bytes of the segment holding the recording-time range `ms` (milliseconds from the
    /// recording's start), aligned outward to whole frames; not clamped to the segment's length.
    pub fn time_to_bytes(&self, ms: Range<u64>) -> Range<u64> {
        let frame = u128::from(self.frame_len());
        let rate = u128::from(self.sample_rate);
        let frames_at = |t: u64, round_up: bool| {
            let local = u128::from(t.saturating_sub(self.media_start_ms));
            let num = local * rate;
            let frames = if round_up {
                num.div_ceil(1000)
            } else {
                num / 1000
            };
            u64::try_from(frames * frame).unwrap_or(u64::MAX)
        };
        let start = frames_at(ms.start, false);
        start..frames_at(ms.end, true).max(start)
    }
}

fn check_audio(channels: u8, sample_rate: u32) -> Result<(), VaultError> {
    if !matches!(channels, 1 | 2) {
        return Err(bad("channels must be 1 or 2"));
    }
    if sample_rate == 0 || sample_rate > MAX_SAMPLE_RATE {
        return Err(bad("sample rate must be 1 to 192000 hz"));
    }
    Ok(())
}

fn check_chunk_size(chunk_size: u32) -> Result<(), VaultError> {
    if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
        return Err(bad("chunk size must be 1 byte to 1 mib"));
    }
    Ok(())
}

/// Where everything is in one complete container of known length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    header: Header,
    object_len: u64,
    chunks: u64,
    plaintext_len: u64,
}

impl Layout {
    /// The layout of a container with this header and total object length. Fails with
    /// [`VaultError::Truncated`] if the length cannot hold a final chunk.
    pub fn new(header: Header, object_len: u64) -> Result<Self, VaultError> {
        let body = object_len
            .checked_sub(HEADER_LEN as u64)
            .ok_or(VaultError::Truncated)?;
        let stride = header.sealed_chunk_len();
        let chunks = body.div_ceil(stride);
        let last = body
            .checked_sub(chunks.saturating_sub(1) * stride)
            .filter(|l| *l >= TAG_LEN as u64)
            .ok_or(VaultError::Truncated)?;
        if chunks > u64::from(u32::MAX) + 1 {
            return Err(VaultError::TooLarge);
        }
        let plaintext_len = (chunks - 1) * u64::from(header.chunk_size) + last - TAG_LEN as u64;
        Ok(Self {
            header,
            object_len,
            chunks,
            plaintext_len,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// Total object length in bytes.
    pub fn object_len(&self) -> u64 {
        self.object_len
    }
    /// Number of chunks, the final one included (at least 1).
    pub fn chunk_count(&self) -> u64 {
        self.chunks
    }
    /// Plaintext length of the segment in bytes.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }
    /// Length of the segment's audio in milliseconds (rounded down).
    pub fn duration_ms(&self) -> u64 {
        let ms = u128::from(self.plaintext_len) * 1000 / u128::from(self.header.bytes_per_second());
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// Chunk indices holding the plaintext `range`; fails unless `start <= end <= plaintext_len`.
    pub fn chunks_for(&self, range: Range<u64>) -> Result<Range<u64>, VaultError> {
        if range.start > range.end || range.end > self.plaintext_len {
            return Err(VaultError::Range {
                start: range.start,
                end: range.end,
                len: self.plaintext_len,
            });
        }
        Ok(self.header.chunks_for_bytes(range))
    }

    /// Object bytes of the chunks `chunks`, clamped to the object.
    pub fn object_range(&self, chunks: Range<u64>) -> Range<u64> {
        let r = self.header.object_range(chunks);
        r.start.min(self.object_len)..r.end.min(self.object_len)
    }

    /// Plaintext bytes for the recording-time range `ms`, aligned to frames and clamped to the
    /// segment (empty when the range misses it).
    pub fn time_range(&self, ms: Range<u64>) -> Range<u64> {
        let r = self.header.time_to_bytes(ms);
        r.start.min(self.plaintext_len)..r.end.min(self.plaintext_len)
    }

    /// Whether chunk `index` is the final one.
    pub(crate) fn is_final(&self, index: u64) -> bool {
        index + 1 == self.chunks
    }
}

/// The nonce prefix of a header, for the crate's own sealing code.
pub(crate) fn nonce_prefix(header: &Header) -> &[u8; NONCE_PREFIX_LEN] {
    &header.nonce_prefix
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
