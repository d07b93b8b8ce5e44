//! Sealing decoded audio into `CVA1` segments of at most `import.segment_length`, each under a
//! fresh data key, with the vault's own [`SegmentWriter`]. Segments join without a gap: segment
//! `n + 1` starts where segment `n` ends, at a whole second.

use std::sync::Arc;

use crate::audio::flac::FlacSegmentWriter;
use crate::domain::{Codec, RecordingId, SegmentNo};
use crate::vault::{DataKey, Header, Keyring, SegmentWriter, WrappedKey};

use super::ImportError;

/// One sealed segment, ready to upload.
pub struct SealedSegment {
    /// Its number in the recording.
    pub segment: SegmentNo,
    /// The whole container.
    pub bytes: Vec<u8>,
    /// Its data key, wrapped.
    pub key: WrappedKey,
    /// Where it starts, in milliseconds from the recording's start.
    pub media_start_ms: u64,
    /// Where it ends, in milliseconds from the recording's start.
    pub media_end_ms: u64,
}

impl std::fmt::Debug for SealedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSegment")
            .field("segment", &self.segment)
            .field("bytes", &self.bytes.len())
            .field("media_start_ms", &self.media_start_ms)
            .field("media_end_ms", &self.media_end_ms)
            .finish_non_exhaustive()
    }
}

/// How a segment's audio is sealed: as it is (`CVA1` version 1), or as FLAC (version 2).
enum Writer {
    Raw(Box<SegmentWriter>),
    Flac(Box<FlacSegmentWriter>),
}

struct Open {
    writer: Writer,
    key: DataKey,
    bytes: Vec<u8>,
    start_frame: u64,
    frames: u64,
}

/// Cuts audio in the stored codec into sealed segments.
pub struct Sealer {
    recording: RecordingId,
    codec: Codec,
    channels: u8,
    rate: u32,
    segment_frames: u64,
    keyring: Arc<Keyring>,
    flac: bool,
    open: Option<Open>,
    next: u32,
    frames: u64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("recording", &self.recording)
            .field("codec", &self.codec)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer of `recording`'s audio in `codec`, `channels` at `rate`, in segments of
    /// `segment_secs` seconds.
    pub fn new(
        recording: RecordingId,
        codec: Codec,
        channels: u8,
        rate: u32,
        segment_secs: u64,
        keyring: Arc<Keyring>,
    ) -> Self {
        Self {
            recording,
            codec,
            channels,
            rate,
            segment_frames: segment_secs.max(1) * u64::from(rate),
            keyring,
            flac: false,
            open: None,
            next: 0,
            frames: 0,
        }
    }

    /// The same sealer storing 16-bit linear audio as lossless FLAC (`storage_codec = "flac"`).
    pub fn with_flac(mut self) -> Self {
        self.flac = self.codec == Codec::L16;
        self
    }

    fn frame_len(&self) -> usize {
        self.codec.bytes_per_sample() as usize * usize::from(self.channels)
    }

    /// Sample frames taken so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Takes audio (whole frames) in the stored codec; hands each segment that fills to `emit`.
    pub fn push(
        &mut self,
        mut data: &[u8],
        emit: &mut impl FnMut(SealedSegment) -> Result<(), ImportError>,
    ) -> Result<(), ImportError> {
        let frame = self.frame_len();
        debug_assert_eq!(data.len() % frame, 0, "whole frames only");
        while !data.is_empty() {
            if self.open.is_none() {
                self.open = Some(self.start()?);
            }
            let open = self.open.as_mut().expect("opened above");
            let room = (self.segment_frames - open.frames) as usize * frame;
            let take = room.min(data.len());
            match &mut open.writer {
                Writer::Raw(w) => {
                    let sealed = w.append(&data[..take]).map_err(vault)?;
                    open.bytes.extend_from_slice(&sealed);
                }
                Writer::Flac(w) => {
                    let samples: Vec<i16> = data[..take]
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect();
                    w.push(&samples, &mut open.bytes).map_err(flac)?;
                }
            }
            open.frames += (take / frame) as u64;
            self.frames += (take / frame) as u64;
            data = &data[take..];
            if open.frames == self.segment_frames {
                let full = self.open.take().expect("open");
                emit(self.close(full)?)?;
            }
        }
        Ok(())
    }

    /// Seals the last segment and hands it to `emit`; returns the frames sealed in all.
    pub fn finish(
        mut self,
        emit: &mut impl FnMut(SealedSegment) -> Result<(), ImportError>,
    ) -> Result<u64, ImportError> {
        if let Some(open) = self.open.take() {
            emit(self.close(open)?)?;
        }
        Ok(self.frames)
    }

    fn start(&mut self) -> Result<Open, ImportError> {
        let start_frame = u64::from(self.next) * self.segment_frames;
        let header = Header::new(
            self.recording,
            SegmentNo(self.next),
            self.codec,
            self.channels,
            self.rate,
            self.ms(start_frame),
        )
        .map_err(vault)?;
        let key = DataKey::generate();
        let (writer, bytes) = if self.flac {
            let w = FlacSegmentWriter::new(
                self.recording,
                SegmentNo(self.next),
                self.channels,
                self.rate,
                self.ms(start_frame),
                &key,
            )
            .map_err(flac)?;
            let bytes = w.header_bytes().to_vec();
            (Writer::Flac(Box::new(w)), bytes)
        } else {
            let w = SegmentWriter::new(header, &key);
            let bytes = w.header_bytes().to_vec();
            (Writer::Raw(Box::new(w)), bytes)
        };
        Ok(Open {
            writer,
            key,
            bytes,
            start_frame,
            frames: 0,
        })
    }

    fn close(&mut self, open: Open) -> Result<SealedSegment, ImportError> {
        let Open {
            writer,
            key,
            mut bytes,
            start_frame,
            frames,
        } = open;
        match writer {
            Writer::Raw(w) => bytes.extend_from_slice(&w.seal()),
            Writer::Flac(w) => w.finish(&mut bytes).map_err(flac)?,
        }
        let segment = SegmentNo(self.next);
        self.next += 1;
        Ok(SealedSegment {
            segment,
            key: self.keyring.wrap(&key, self.recording, segment),
            bytes,
            media_start_ms: self.ms(start_frame),
            media_end_ms: self.ms(start_frame + frames),
        })
    }

    fn ms(&self, frames: u64) -> u64 {
        u64::try_from(u128::from(frames) * 1000 / u128::from(self.rate)).unwrap_or(u64::MAX)
    }
}

fn vault(e: crate::vault::VaultError) -> ImportError {
    ImportError::Vault(e.to_string())
}

fn flac(e: crate::audio::flac::FlacError) -> ImportError {
    ImportError::Vault(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_join_at_whole_seconds_and_open_with_their_keys() {
        let keyring = Arc::new(Keyring::generate(chrono::Utc::now()));
        let id = RecordingId::new();
        let mut s = Sealer::new(id, Codec::L16, 2, 8000, 2, Arc::clone(&keyring));
        let audio: Vec<u8> = (0..5 * 8000 * 4 + 4 * 3).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        for piece in audio.chunks(4 * 333) {
            s.push(piece, &mut |seg| {
                out.push(seg);
                Ok(())
            })
            .expect("push");
        }
        let frames = s
            .finish(&mut |seg| {
                out.push(seg);
                Ok(())
            })
            .expect("finish");
        assert_eq!(frames, 5 * 8000 + 3);
        let spans: Vec<_> = out
            .iter()
            .map(|s| (s.segment.0, s.media_start_ms, s.media_end_ms))
            .collect();
        assert_eq!(spans, [(0, 0, 2000), (1, 2000, 4000), (2, 4000, 5000)]);
        let mut back = Vec::new();
        for seg in &out {
            let key = keyring.unwrap(&seg.key, id, seg.segment).expect("unwrap");
            let (h, plain) = crate::vault::open(&seg.bytes, &key).expect("open");
            assert_eq!(h.media_start_ms(), seg.media_start_ms);
            back.extend_from_slice(&plain);
        }
        assert_eq!(back, audio);
    }
}
