//! `CVA1` format version 2: chunks of compressed audio (FLAC frames), one per fixed number of
//! sample frames, sealed like version 1's but of varying length, with an index at the end.
//!
//! Version 1 (fixed chunks of raw codec bytes) is unchanged and still read: a reader tells the two
//! apart by the version field. This module owns the version 2 byte format and its sealing; what is
//! inside a chunk (a FLAC frame) is the [`audio`](crate::audio) module's to encode and decode.
//!
//! # Format (frozen; a new layout gets a new version number)
//!
//! Header, [`FRAMED_HEADER_LEN`] = 58 bytes: the 53 bytes of version 1 (magic `CVA1`, version = 2,
//! header length = 58, then the same fields: recording, segment, codec, channels, rate, chunk size,
//! media start, nonce prefix), then:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 53 | 1 | storage, u8: 1 = FLAC ([`Storage::Flac`]) |
//! | 54 | 4 | frames per chunk, u32 (sample frames each chunk holds; the last may hold fewer) |
//!
//! The codec is the audio's as played (L16 for FLAC), and `chunk size` bounds a chunk's plaintext
//! (a FLAC frame of `frames per chunk` frames never needs more than the raw audio plus its frame
//! header). Body: chunk `i`, sealed with AES-256-GCM as in version 1 (nonce prefix ‖ `i` ‖
//! last-chunk flag, the whole 58-byte header as associated data), one after the other, each of its
//! own length. Trailer, in clear: the chunk count (u32), each sealed chunk's length (u32 each), the
//! total sample frames (u64), the trailer's length up to here (u32), and the magic `CVAX`.
//!
//! The trailer only says where the chunks are: a changed length or count makes a chunk fail
//! authentication, a chunk cut off or swapped fails as in version 1, a final chunk missing fails
//! (the last chunk must open with the last-chunk flag), and a decoded chunk whose frame count is
//! not what the trailer says is refused by the reader. It does show each chunk's compressed
//! length, so how much sound (not what sound) each half second held.

use std::ops::Range;

use aes_gcm::Aes256Gcm;
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::open::{open_chunk, plaintext};
use super::writer::seal_chunk;
use super::{HEADER_LEN, Header, MAGIC, NONCE_PREFIX_LEN, Plaintext, TAG_LEN, nonce_prefix};
use crate::vault::VaultError;
use crate::vault::keys::DataKey;

/// The format version of framed containers.
pub const FORMAT_VERSION_FRAMED: u16 = 2;
/// Length of a version 2 header.
pub const FRAMED_HEADER_LEN: usize = 58;
/// The last four bytes of a version 2 container.
pub const TRAILER_MAGIC: [u8; 4] = *b"CVAX";
/// Bytes at the very end that say where the trailer starts: its length (u32) and the magic.
pub const TRAILER_TAIL: usize = 8;

const fn bad(reason: &'static str) -> VaultError {
    VaultError::BadHeader { reason }
}

/// What a version 2 container's chunks hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// One FLAC frame of 16-bit linear audio per chunk.
    Flac,
}

impl Storage {
    /// The frozen code of this storage in a version 2 header.
    pub const fn code(self) -> u8 {
        match self {
            Storage::Flac => 1,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Storage::Flac),
            _ => None,
        }
    }
}

/// A version 2 header: the version 1 fields, the storage and the frames each chunk holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedHeader {
    base: Header,
    storage: Storage,
    frames_per_chunk: u32,
}

impl FramedHeader {
    /// A header over `base` (whose chunk size is the most plaintext a chunk may hold).
    pub fn new(base: Header, storage: Storage, frames_per_chunk: u32) -> Result<Self, VaultError> {
        if frames_per_chunk == 0 || frames_per_chunk > 65_535 {
            return Err(bad("frames per chunk must be 1 to 65535"));
        }
        Ok(Self {
            base,
            storage,
            frames_per_chunk,
        })
    }

    /// The fields shared with version 1.
    pub fn base(&self) -> &Header {
        &self.base
    }
    /// What the chunks hold.
    pub fn storage(&self) -> Storage {
        self.storage
    }
    /// Sample frames per chunk (the last may hold fewer).
    pub fn frames_per_chunk(&self) -> u32 {
        self.frames_per_chunk
    }

    /// The header's 58 bytes.
    pub fn encode(&self) -> [u8; FRAMED_HEADER_LEN] {
        let mut b = [0u8; FRAMED_HEADER_LEN];
        b[..HEADER_LEN].copy_from_slice(&self.base.encode());
        b[4..6].copy_from_slice(&FORMAT_VERSION_FRAMED.to_be_bytes());
        b[6..8].copy_from_slice(&(FRAMED_HEADER_LEN as u16).to_be_bytes());
        b[53] = self.storage.code();
        b[54..58].copy_from_slice(&self.frames_per_chunk.to_be_bytes());
        b
    }

    /// Reads a version 2 header from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, VaultError> {
        let b = bytes
            .get(..FRAMED_HEADER_LEN)
            .ok_or(bad("header is cut short"))?;
        if b[0..4] != MAGIC {
            return Err(bad("not a CVA1 container (bad magic)"));
        }
        let version = u16::from_be_bytes([b[4], b[5]]);
        if version != FORMAT_VERSION_FRAMED {
            return Err(VaultError::UnsupportedVersion(version));
        }
        if usize::from(u16::from_be_bytes([b[6], b[7]])) != FRAMED_HEADER_LEN {
            return Err(bad("header length is not 58 for format version 2"));
        }
        let base = Header::fields(b)?;
        let storage = Storage::from_code(b[53]).ok_or(bad("unknown storage code"))?;
        let frames = u32::from_be_bytes([b[54], b[55], b[56], b[57]]);
        Self::new(base, storage, frames)
    }
}

/// The format version of the container starting with `bytes` (at least 6 bytes).
pub fn version_of(bytes: &[u8]) -> Result<u16, VaultError> {
    if bytes.len() < 6 || bytes[0..4] != MAGIC {
        return Err(bad("not a CVA1 container (bad magic)"));
    }
    Ok(u16::from_be_bytes([bytes[4], bytes[5]]))
}

/// Seals a version 2 container a chunk at a time: [`push`](Self::push) each chunk's plaintext
/// (holding back the newest, which may be the last), then [`finish`](Self::finish).
pub struct FramedWriter {
    header: FramedHeader,
    header_bytes: [u8; FRAMED_HEADER_LEN],
    cipher: Aes256Gcm,
    lengths: Vec<u32>,
    held: Option<(Zeroizing<Vec<u8>>, u32)>,
    frames: u64,
}

impl std::fmt::Debug for FramedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramedWriter")
            .field("header", &self.header)
            .field("chunks", &self.lengths.len())
            .finish_non_exhaustive()
    }
}

impl FramedWriter {
    /// A writer of a container with this header, sealing under `key`.
    pub fn new(header: FramedHeader, key: &DataKey) -> Self {
        Self {
            header_bytes: header.encode(),
            header,
            cipher: key.cipher(),
            lengths: Vec::new(),
            held: None,
            frames: 0,
        }
    }

    /// The header's bytes: the first thing to write.
    pub fn header_bytes(&self) -> &[u8; FRAMED_HEADER_LEN] {
        &self.header_bytes
    }

    /// Sample frames taken so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Adds one chunk's plaintext holding `frames` sample frames (exactly `frames per chunk`,
    /// except the last); appends the chunk before it, now sealed, to `out`.
    pub fn push(&mut self, plain: &[u8], frames: u32, out: &mut Vec<u8>) -> Result<(), VaultError> {
        if plain.len() > self.header.base.chunk_size() as usize {
            return Err(bad("a chunk's plaintext is larger than the chunk size"));
        }
        if frames == 0 || frames > self.header.frames_per_chunk {
            return Err(bad("a chunk holds 1 to frames-per-chunk frames"));
        }
        if let Some((prev, prev_frames)) = self.held.take() {
            if prev_frames != self.header.frames_per_chunk {
                self.held = Some((prev, prev_frames));
                return Err(bad("only the last chunk may hold fewer frames"));
            }
            self.seal(&prev, false, out)?;
        }
        self.held = Some((Zeroizing::new(plain.to_vec()), frames));
        self.frames += u64::from(frames);
        Ok(())
    }

    fn seal(&mut self, plain: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), VaultError> {
        let counter = u32::try_from(self.lengths.len()).map_err(|_| VaultError::TooLarge)?;
        let start = out.len();
        seal_chunk(
            &self.cipher,
            &self.header_bytes,
            nonce_prefix(&self.header.base),
            counter,
            last,
            plain,
            out,
        );
        self.lengths.push((out.len() - start) as u32);
        Ok(())
    }

    /// Seals the held chunk as the last (an empty one if none was pushed) and appends it and the
    /// trailer to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), VaultError> {
        let (last, _) = self
            .held
            .take()
            .unwrap_or_else(|| (Zeroizing::new(Vec::new()), 0));
        self.seal(&last, true, out)?;
        let start = out.len();
        let count = u32::try_from(self.lengths.len()).map_err(|_| VaultError::TooLarge)?;
        out.extend_from_slice(&count.to_be_bytes());
        for l in &self.lengths {
            out.extend_from_slice(&l.to_be_bytes());
        }
        out.extend_from_slice(&self.frames.to_be_bytes());
        let len = u32::try_from(out.len() - start).map_err(|_| VaultError::TooLarge)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&TRAILER_MAGIC);
        Ok(())
    }
}

/// Where everything is in a version 2 container of known length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedLayout {
    header: FramedHeader,
    /// Object offset of each chunk, and of the end of the last.
    offsets: Vec<u64>,
    frames: u64,
}

impl FramedLayout {
    /// How many bytes at the end of an object hold the trailer, from its last [`TRAILER_TAIL`].
    pub fn trailer_len(tail: &[u8]) -> Result<u64, VaultError> {
        let t = tail
            .get(tail.len().saturating_sub(TRAILER_TAIL)..)
            .filter(|t| t.len() == TRAILER_TAIL)
            .ok_or(VaultError::Truncated)?;
        if t[4..8] != TRAILER_MAGIC {
            return Err(VaultError::Truncated);
        }
        Ok(u64::from(u32::from_be_bytes([t[0], t[1], t[2], t[3]])) + TRAILER_TAIL as u64)
    }

    /// The layout of an object of `object_len` bytes with this header, from its trailer (the
    /// object's last [`trailer_len`](Self::trailer_len) bytes).
    pub fn new(header: FramedHeader, object_len: u64, trailer: &[u8]) -> Result<Self, VaultError> {
        let body = trailer
            .len()
            .checked_sub(TRAILER_TAIL)
            .map(|n| &trailer[..n])
            .ok_or(VaultError::Truncated)?;
        if body.len() < 12 || (body.len() - 12) % 4 != 0 {
            return Err(VaultError::Truncated);
        }
        let count = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
        if count == 0 || body.len() != 12 + 4 * count {
            return Err(VaultError::Truncated);
        }
        let mut offsets = Vec::with_capacity(count + 1);
        let mut at = FRAMED_HEADER_LEN as u64;
        offsets.push(at);
        for i in 0..count {
            let b = &body[4 + 4 * i..8 + 4 * i];
            let len = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            if len < TAG_LEN as u64 || len > u64::from(header.base.chunk_size()) + TAG_LEN as u64 {
                return Err(VaultError::Truncated);
            }
            at += len;
            offsets.push(at);
        }
        if at + trailer.len() as u64 != object_len {
            return Err(VaultError::Truncated);
        }
        let mut f = [0u8; 8];
        f.copy_from_slice(&body[4 + 4 * count..12 + 4 * count]);
        let frames = u64::from_be_bytes(f);
        let per = u64::from(header.frames_per_chunk);
        // every chunk but the last is full; the last holds the rest (an empty segment: one chunk)
        let expect = if frames == 0 { 1 } else { frames.div_ceil(per) };
        if expect != count as u64 {
            return Err(VaultError::Truncated);
        }
        Ok(Self {
            header,
            offsets,
            frames,
        })
    }

    /// The header.
    pub fn header(&self) -> &FramedHeader {
        &self.header
    }
    /// Number of chunks.
    pub fn chunk_count(&self) -> u64 {
        (self.offsets.len() - 1) as u64
    }
    /// Sample frames in the segment.
    pub fn frames(&self) -> u64 {
        self.frames
    }
    /// Sample frames chunk `index` holds.
    pub fn frames_in(&self, index: u64) -> u64 {
        let per = u64::from(self.header.frames_per_chunk);
        self.frames.saturating_sub(index * per).min(per)
    }
    /// Bytes of the decoded audio (16-bit linear for FLAC).
    pub fn decoded_len(&self) -> u64 {
        self.frames * self.header.base.frame_len()
    }
    /// Chunk indices holding the decoded bytes `range` (within `0..decoded_len()`).
    pub fn chunks_for(&self, range: Range<u64>) -> Result<Range<u64>, VaultError> {
        let len = self.decoded_len();
        if range.start > range.end || range.end > len {
            return Err(VaultError::Range {
                start: range.start,
                end: range.end,
                len,
            });
        }
        let per = u64::from(self.header.frames_per_chunk) * self.header.base.frame_len();
        if range.is_empty() {
            return Ok(range.start / per..range.start / per);
        }
        Ok(range.start / per..(range.end - 1) / per + 1)
    }
    /// Object bytes of the chunks `chunks`.
    pub fn object_range(&self, chunks: Range<u64>) -> Range<u64> {
        self.offsets[chunks.start as usize]..self.offsets[chunks.end as usize]
    }
}

/// Decrypts chunks `first..` from `sealed` (their concatenated object bytes): each chunk's
/// plaintext, in order.
pub(crate) fn open_chunks(
    layout: &FramedLayout,
    cipher: &Aes256Gcm,
    header: &[u8],
    first: u64,
    sealed: &[u8],
) -> Result<Vec<Plaintext>, VaultError> {
    let prefix: &[u8; NONCE_PREFIX_LEN] = nonce_prefix(&layout.header.base);
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut index = first;
    while at < sealed.len() {
        let len = (layout.offsets[index as usize + 1] - layout.offsets[index as usize]) as usize;
        let piece = sealed.get(at..at + len).ok_or(VaultError::Truncated)?;
        let counter = u32::try_from(index).map_err(|_| VaultError::TooLarge)?;
        let last = index + 1 == layout.chunk_count();
        let mut buf = Zeroizing::new(Vec::with_capacity(len));
        if !open_chunk(cipher, header, prefix, counter, last, piece, &mut buf) {
            if last && open_chunk(cipher, header, prefix, counter, false, piece, &mut buf) {
                return Err(VaultError::Truncated);
            }
            return Err(VaultError::Authentication { chunk: counter });
        }
        out.push(plaintext(buf));
        at += len;
        index += 1;
    }
    Ok(out)
}

/// Decrypts a whole version 2 container held in memory: its header and every chunk's plaintext.
pub fn open_framed(
    bytes: &[u8],
    key: &DataKey,
) -> Result<(FramedLayout, Vec<Plaintext>), VaultError> {
    let header = FramedHeader::decode(bytes)?;
    let trailer = FramedLayout::trailer_len(bytes)?;
    let start = (bytes.len() as u64)
        .checked_sub(trailer)
        .ok_or(VaultError::Truncated)? as usize;
    let layout = FramedLayout::new(header, bytes.len() as u64, &bytes[start..])?;
    let span = layout.object_range(0..layout.chunk_count());
    let chunks = open_chunks(
        &layout,
        &key.cipher(),
        &bytes[..FRAMED_HEADER_LEN],
        0,
        &bytes[span.start as usize..span.end as usize],
    )?;
    Ok((layout, chunks))
}

/// A fresh random nonce prefix (for a header made again from another's fields).
pub fn fresh_nonce_prefix() -> [u8; NONCE_PREFIX_LEN] {
    let mut p = [0u8; NONCE_PREFIX_LEN];
    OsRng.fill_bytes(&mut p);
    p
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{Codec, RecordingId, SegmentNo};

    fn container(chunks: &[(Vec<u8>, u32)], per: u32) -> (Vec<u8>, DataKey) {
        let key = DataKey::generate();
        let base = Header::new(RecordingId::new(), SegmentNo(3), Codec::L16, 1, 8000, 500)
            .unwrap()
            .with_chunk_size(per * 2)
            .unwrap();
        let mut w = FramedWriter::new(FramedHeader::new(base, Storage::Flac, per).unwrap(), &key);
        let mut out = w.header_bytes().to_vec();
        for (c, f) in chunks {
            w.push(c, *f, &mut out).unwrap();
        }
        w.finish(&mut out).unwrap();
        (out, key)
    }

    #[test]
    fn round_trips_chunks_of_any_length() {
        let chunks = vec![
            (vec![1u8; 10], 100),
            (vec![2u8; 150], 100),
            (vec![], 100),
            (vec![4u8; 7], 3),
        ];
        let (bytes, key) = container(&chunks, 100);
        let (layout, plain) = open_framed(&bytes, &key).unwrap();
        assert_eq!(layout.frames(), 303);
        assert_eq!(layout.chunk_count(), 4);
        assert_eq!(layout.frames_in(3), 3);
        assert_eq!(layout.header().base().media_start_ms(), 500);
        let got: Vec<Vec<u8>> = plain.iter().map(|p| p.to_vec()).collect();
        let want: Vec<Vec<u8>> = chunks.iter().map(|c| c.0.clone()).collect();
        assert_eq!(got, want);
        // decoded bytes 250..450 (frames 125..225) are in chunks 1 and 2
        assert_eq!(layout.chunks_for(250..450).unwrap(), 1..3);
        assert!(layout.chunks_for(0..607).is_err());
    }

    #[test]
    fn tampering_truncation_and_a_short_chunk_before_the_last_fail() {
        let chunks = vec![
            (vec![1u8; 10], 100),
            (vec![2u8; 20], 100),
            (vec![3u8; 5], 50),
        ];
        let (bytes, key) = container(&chunks, 100);
        for at in [5, 30, 60, 70, 90, bytes.len() - 20] {
            let mut b = bytes.clone();
            b[at] ^= 1;
            assert!(open_framed(&b, &key).is_err(), "byte {at} altered");
        }
        // the last chunk and its trailer cut off, a trailer for two chunks forged
        let mut w_short = container(&chunks[..2], 100).0;
        let cut = bytes.len() - (bytes.len() - w_short.len());
        assert!(open_framed(&bytes[..cut], &key).is_err());
        w_short.truncate(w_short.len() - 1);
        assert!(open_framed(&w_short, &key).is_err());
        // another key
        assert!(matches!(
            open_framed(&bytes, &DataKey::generate()),
            Err(VaultError::Authentication { chunk: 0 })
        ));
        // only the last chunk may be short
        let key = DataKey::generate();
        let base = Header::new(RecordingId::new(), SegmentNo(0), Codec::L16, 1, 8000, 0).unwrap();
        let mut w = FramedWriter::new(FramedHeader::new(base, Storage::Flac, 100).unwrap(), &key);
        let mut out = Vec::new();
        w.push(&[1], 50, &mut out).unwrap();
        assert!(w.push(&[2], 100, &mut out).is_err());
    }

    #[test]
    fn an_empty_segment_is_one_empty_chunk() {
        let (bytes, key) = container(&[], 100);
        let (layout, plain) = open_framed(&bytes, &key).unwrap();
        assert_eq!((layout.frames(), layout.chunk_count()), (0, 1));
        assert!(plain[0].is_empty());
    }
}
