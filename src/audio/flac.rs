//! Lossless FLAC storage of 16-bit linear audio (`storage_codec = "flac"`): one FLAC frame per
//! sealed chunk of a `CVA1` version 2 container ([`crate::vault::FramedWriter`]), so a ranged read
//! decrypts and decodes only the chunks it needs.
//!
//! This module owns the codec: [`FlacEncoder`] (the pure-Rust `flacenc`) turns a block of
//! interleaved samples into one frame, [`FlacDecoder`] (`symphonia`'s FLAC decoder) turns it back,
//! sample for sample; [`FlacSegmentWriter`] seals audio into a version 2 container, and
//! [`transcode`] turns a sealed version 1 L16 segment into one (the recorder's uploads for FLAC
//! policies). Sealing itself is the vault's.

use flacenc::component::{BitRepr, StreamInfo};
use flacenc::error::Verify;
use flacenc::source::{Fill, FrameBuf};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_FLAC, CodecParameters, Decoder, DecoderOptions};
use symphonia::core::formats::Packet;
use zeroize::Zeroizing;

use crate::domain::{Codec, RecordingId, SegmentNo};
use crate::vault::{
    DataKey, FramedHeader, FramedWriter, Header, Storage, VaultError, open as open_sealed,
};

/// Sample frames per FLAC frame, and so per sealed chunk: FLAC's usual block, half a second at
/// 8 kHz.
pub const FRAMES_PER_CHUNK: u32 = 4096;
/// The smallest block `flacenc` encodes; a shorter last block is padded with silence, and the
/// padding is cut off on decoding (the container says how many frames the segment holds).
const MIN_BLOCK: usize = 32;
/// What a FLAC frame of a chunk may take beyond the raw audio (frame and subframe headers of a
/// verbatim frame, footer): the chunk size bound of a version 2 container.
const FRAME_OVERHEAD: u32 = 64;

/// Why FLAC encoding or decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum FlacError {
    /// The encoder refused its input or settings.
    #[error("flac encoding: {0}")]
    Encode(String),
    /// A frame did not decode, or decoded to another number of samples than expected.
    #[error("flac decoding: {0}")]
    Decode(String),
    /// Sealing or opening the container failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Encodes blocks of interleaved 16-bit samples into FLAC frames.
pub struct FlacEncoder {
    config: flacenc::error::Verified<flacenc::config::Encoder>,
    info: StreamInfo,
    channels: usize,
}

impl std::fmt::Debug for FlacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlacEncoder")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl FlacEncoder {
    /// An encoder of `channels` channels at `rate` Hz.
    pub fn new(channels: u8, rate: u32) -> Result<Self, FlacError> {
        let config = flacenc::config::Encoder::default()
            .into_verified()
            .map_err(|(_, e)| FlacError::Encode(e.to_string()))?;
        let info = StreamInfo::new(rate as usize, usize::from(channels), 16)
            .map_err(|e| FlacError::Encode(e.to_string()))?;
        Ok(Self {
            config,
            info,
            channels: usize::from(channels),
        })
    }

    /// One FLAC frame (number `index`) of the interleaved `samples` (at most 65535 frames).
    pub fn encode(&self, index: u32, samples: &[i16]) -> Result<Vec<u8>, FlacError> {
        let frames = samples.len() / self.channels;
        let size = frames.max(MIN_BLOCK);
        let mut block: Vec<i32> = samples.iter().map(|s| i32::from(*s)).collect();
        block.resize(size * self.channels, 0);
        let mut fb = FrameBuf::with_size(self.channels, size)
            .map_err(|e| FlacError::Encode(e.to_string()))?;
        fb.fill_interleaved(&block)
            .map_err(|e| FlacError::Encode(e.to_string()))?;
        let frame = flacenc::encode_fixed_size_frame(&self.config, &fb, index as usize, &self.info)
            .map_err(|e| FlacError::Encode(e.to_string()))?;
        let mut sink = flacenc::bitsink::ByteSink::new();
        frame
            .write(&mut sink)
            .map_err(|e| FlacError::Encode(format!("{e:?}")))?;
        Ok(sink.into_inner())
    }
}

/// Decodes FLAC frames back into interleaved 16-bit samples.
pub struct FlacDecoder {
    inner: Box<dyn Decoder>,
    channels: usize,
}

impl std::fmt::Debug for FlacDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlacDecoder")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

/// A FLAC STREAMINFO block (34 bytes) for 16-bit audio in frames of up to `max_block` samples.
fn stream_info(channels: u8, rate: u32, max_block: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(34);
    b.extend_from_slice(&16u16.to_be_bytes());
    b.extend_from_slice(&(max_block.clamp(16, 65_535) as u16).to_be_bytes());
    b.extend_from_slice(&[0; 6]); // frame sizes unknown
    // rate (20 bits) | channels - 1 (3) | bits - 1 (5) | total samples (36, unknown)
    let packed: u64 = (u64::from(rate) << 44) | (u64::from(channels - 1) << 41) | (15u64 << 36);
    b.extend_from_slice(&packed.to_be_bytes());
    b.extend_from_slice(&[0; 16]); // no MD5
    b
}

impl FlacDecoder {
    /// A decoder of frames of `channels` channels at `rate` Hz, of up to `max_block` samples.
    pub fn new(channels: u8, rate: u32, max_block: u32) -> Result<Self, FlacError> {
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_FLAC)
            .with_extra_data(stream_info(channels, rate, max_block).into_boxed_slice());
        let inner = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| FlacError::Decode(e.to_string()))?;
        Ok(Self {
            inner,
            channels: usize::from(channels),
        })
    }

    /// Decodes one frame, appending its first `frames` sample frames to `out` as little-endian
    /// bytes; the frame must hold exactly `frames`, or, for a short last block, the padded
    /// minimum.
    pub fn decode_into(
        &mut self,
        frame: &[u8],
        frames: u64,
        out: &mut Zeroizing<Vec<u8>>,
    ) -> Result<(), FlacError> {
        let packet = Packet::new_from_slice(0, 0, 0, frame);
        let decoded = self
            .inner
            .decode(&packet)
            .map_err(|e| FlacError::Decode(e.to_string()))?;
        let got = decoded.frames() as u64;
        if got != frames && !(frames < MIN_BLOCK as u64 && got == MIN_BLOCK as u64) {
            return Err(FlacError::Decode(format!(
                "a chunk decoded to {got} frames, the container says {frames}"
            )));
        }
        let mut buf = SampleBuffer::<i16>::new(decoded.capacity() as u64, *decoded.spec());
        buf.copy_interleaved_ref(decoded);
        let take = frames as usize * self.channels;
        for s in &buf.samples()[..take] {
            out.extend_from_slice(&s.to_le_bytes());
        }
        Ok(())
    }
}

/// Seals 16-bit linear audio into a `CVA1` version 2 container of FLAC frames.
pub struct FlacSegmentWriter {
    encoder: FlacEncoder,
    writer: FramedWriter,
    channels: usize,
    pending: Vec<i16>,
    index: u32,
}

impl std::fmt::Debug for FlacSegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlacSegmentWriter")
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl FlacSegmentWriter {
    /// A writer of segment `segment` of `recording` (L16, `channels` at `rate`), starting at
    /// `media_start_ms`, sealed under `key`.
    pub fn new(
        recording: RecordingId,
        segment: SegmentNo,
        channels: u8,
        rate: u32,
        media_start_ms: u64,
        key: &DataKey,
    ) -> Result<Self, FlacError> {
        let bound = FRAMES_PER_CHUNK * 2 * u32::from(channels) + FRAME_OVERHEAD;
        let base = Header::new(
            recording,
            segment,
            Codec::L16,
            channels,
            rate,
            media_start_ms,
        )?
        .with_chunk_size(bound)?;
        let header = FramedHeader::new(base, Storage::Flac, FRAMES_PER_CHUNK)?;
        Ok(Self {
            encoder: FlacEncoder::new(channels, rate)?,
            writer: FramedWriter::new(header, key),
            channels: usize::from(channels),
            pending: Vec::new(),
            index: 0,
        })
    }

    /// The header's bytes: the first thing to write.
    pub fn header_bytes(&self) -> &[u8] {
        self.writer.header_bytes()
    }

    /// Adds interleaved samples; appends the chunks sealed meanwhile to `out`.
    pub fn push(&mut self, samples: &[i16], out: &mut Vec<u8>) -> Result<(), FlacError> {
        self.pending.extend_from_slice(samples);
        let block = FRAMES_PER_CHUNK as usize * self.channels;
        let mut at = 0;
        while self.pending.len() - at >= block {
            let frame = self
                .encoder
                .encode(self.index, &self.pending[at..at + block])?;
            self.writer.push(&frame, FRAMES_PER_CHUNK, out)?;
            self.index += 1;
            at += block;
        }
        self.pending.drain(..at);
        Ok(())
    }

    /// Encodes what is left, seals the last chunk and the trailer, and appends them to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), FlacError> {
        if !self.pending.is_empty() {
            let frames = (self.pending.len() / self.channels) as u32;
            let frame = self.encoder.encode(self.index, &self.pending)?;
            self.writer.push(&frame, frames, out)?;
        }
        self.writer.finish(out)?;
        Ok(())
    }
}

/// A sealed version 1 L16 segment as a version 2 FLAC one, under the same data key (with a fresh
/// nonce prefix): the same audio, sample for sample. Other codecs are returned as they are.
pub fn transcode(sealed: &[u8], key: &DataKey) -> Result<Option<Vec<u8>>, FlacError> {
    let (header, plain) = open_sealed(sealed, key)?;
    if header.codec() != Codec::L16 {
        return Ok(None);
    }
    let samples: Vec<i16> = plain
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut w = FlacSegmentWriter::new(
        header.recording_id(),
        header.segment(),
        header.channels(),
        header.sample_rate(),
        header.media_start_ms(),
        key,
    )?;
    let mut out = w.header_bytes().to_vec();
    let whole = samples.len() - samples.len() % usize::from(header.channels());
    w.push(&samples[..whole], &mut out)?;
    w.finish(&mut out)?;
    Ok(Some(out))
}

/// A sealed segment as it goes to the object store under a FLAC policy: a version 2 FLAC
/// container when it is 16-bit linear audio, else (G.711, or a segment that cannot be opened or
/// encoded: logged) the bytes as they are, which play as they always did. True when transcoded.
pub async fn for_upload(
    keyring: &crate::vault::Keyring,
    row: &crate::catalog::SegmentRow,
    sealed: Vec<u8>,
) -> (Vec<u8>, bool) {
    let (Some(kek_id), Some(bytes)) = (row.kek_id.clone(), row.wrapped_key.clone()) else {
        return (sealed, false);
    };
    let key = match keyring.unwrap(
        &crate::vault::WrappedKey { kek_id, bytes },
        row.recording_id,
        row.segment,
    ) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(recording = %row.recording_id, segment = row.segment.0, error = %e, "cannot unwrap the key to store the segment as flac; stored as written");
            return (sealed, false);
        }
    };
    let sealed = std::sync::Arc::new(sealed);
    let input = std::sync::Arc::clone(&sealed);
    let done = tokio::task::spawn_blocking(move || transcode(&input, &key)).await;
    let sealed = std::sync::Arc::try_unwrap(sealed).unwrap_or_else(|a| a.to_vec());
    match done {
        Ok(Ok(Some(flac))) => (flac, true),
        Ok(Ok(None)) => (sealed, false),
        Ok(Err(e)) => {
            tracing::warn!(recording = %row.recording_id, segment = row.segment.0, error = %e, "flac encoding failed; stored as written");
            (sealed, false)
        }
        Err(e) => {
            tracing::warn!(recording = %row.recording_id, segment = row.segment.0, error = %e, "flac encoding failed; stored as written");
            (sealed, false)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::vault::open_framed;

    fn speechlike(frames: usize, channels: usize) -> Vec<i16> {
        (0..frames * channels)
            .map(|i| {
                let t = (i / channels) as f64 / 8000.0;
                let v = (t * 2.0 * std::f64::consts::PI * 220.0).sin() * 6000.0
                    + (t * 2.0 * std::f64::consts::PI * 1330.0).sin() * 1500.0
                    + ((i * 7919 % 257) as f64 - 128.0) * 4.0;
                v as i16 + (i % channels) as i16 * 3
            })
            .collect()
    }

    fn decode_all(bytes: &[u8], key: &DataKey) -> Vec<i16> {
        let (layout, chunks) = open_framed(bytes, key).unwrap();
        let h = layout.header().base();
        let mut dec = FlacDecoder::new(h.channels(), h.sample_rate(), FRAMES_PER_CHUNK).unwrap();
        let mut out = Zeroizing::new(Vec::new());
        for (i, c) in chunks.iter().enumerate() {
            if layout.frames_in(i as u64) > 0 {
                dec.decode_into(c, layout.frames_in(i as u64), &mut out)
                    .unwrap();
            }
        }
        out.chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    #[test]
    fn round_trips_sample_exact_and_smaller() {
        for (frames, channels) in [(10_000, 1), (4096 * 3, 2), (4096 + 5, 1), (7, 2), (0, 1)] {
            let audio = speechlike(frames, channels);
            let key = DataKey::generate();
            let mut w = FlacSegmentWriter::new(
                RecordingId::new(),
                SegmentNo(0),
                channels as u8,
                8000,
                0,
                &key,
            )
            .unwrap();
            let mut out = w.header_bytes().to_vec();
            for piece in audio.chunks(333 * channels) {
                w.push(piece, &mut out).unwrap();
            }
            w.finish(&mut out).unwrap();
            assert_eq!(
                decode_all(&out, &key),
                audio,
                "{frames} frames x {channels}"
            );
            if frames > 4096 {
                assert!(
                    out.len() < audio.len() * 2,
                    "compressed: {} of {}",
                    out.len(),
                    audio.len() * 2
                );
            }
        }
    }

    #[test]
    fn transcodes_a_sealed_l16_segment() {
        let audio = speechlike(9000, 2);
        let bytes: Vec<u8> = audio.iter().flat_map(|s| s.to_le_bytes()).collect();
        let key = DataKey::generate();
        let id = RecordingId::new();
        let h = Header::new(id, SegmentNo(2), Codec::L16, 2, 8000, 1500).unwrap();
        let mut w = crate::vault::SegmentWriter::new(h, &key);
        let mut v1 = w.header_bytes().to_vec();
        v1.extend(w.append(&bytes).unwrap());
        v1.extend(w.seal());
        let v2 = transcode(&v1, &key).unwrap().expect("l16 is transcoded");
        let (layout, _) = open_framed(&v2, &key).unwrap();
        assert_eq!(layout.header().base().recording_id(), id);
        assert_eq!(layout.header().base().media_start_ms(), 1500);
        assert_eq!(decode_all(&v2, &key), audio);
        // G.711 stays as it is
        let h = Header::new(id, SegmentNo(0), Codec::Pcmu, 1, 8000, 0).unwrap();
        let mut w = crate::vault::SegmentWriter::new(h, &key);
        let mut pcmu = w.header_bytes().to_vec();
        pcmu.extend(w.append(&[0x55; 100]).unwrap());
        pcmu.extend(w.seal());
        assert!(transcode(&pcmu, &key).unwrap().is_none());
    }
}
