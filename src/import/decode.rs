//! Decoding an imported file with `symphonia`, on a blocking thread: the file's bytes are read once,
//! hashed (SHA-256 of every byte, the original's fingerprint in the ledger) and counted against the
//! size limit as they are read, and its audio is handed on a packet at a time, either as the G.711
//! bytes it holds (kept as they are) or as interleaved 16-bit samples.
//!
//! It must not store anything: [`super::seal`] seals what it hands on.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{
    CODEC_TYPE_NULL, CODEC_TYPE_PCM_ALAW, CODEC_TYPE_PCM_MULAW, CodecType, DecoderOptions,
};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::ImportError;
use crate::domain::Codec;

/// Bytes of the file's start kept to name a format symphonia refuses.
const PREFIX: usize = 4096;

/// What was read of the file: its hash and length once the whole file has been read.
#[derive(Debug, Default)]
struct Fingerprint {
    hash: Sha256,
    bytes: u64,
    prefix: Vec<u8>,
    too_large: bool,
}

/// A reader that hashes and counts what passes through it and refuses more than `limit` bytes.
struct Hashing<R> {
    inner: R,
    seen: Arc<Mutex<Fingerprint>>,
    limit: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        // a std mutex: only this reader and the thread that finishes the decode ever take it, one
        // after the other
        let mut seen = self
            .seen
            .lock()
            .expect("the fingerprint lock is never poisoned");
        seen.bytes += n as u64;
        if seen.bytes > self.limit {
            seen.too_large = true;
            return Err(io::Error::other("the file is larger than import.max_bytes"));
        }
        seen.hash.update(&buf[..n]);
        if seen.prefix.len() < PREFIX {
            let take = (PREFIX - seen.prefix.len()).min(n);
            seen.prefix.extend_from_slice(&buf[..take]);
        }
        Ok(n)
    }
}

/// The original file as decoded: its container and codec as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFormat {
    /// The container, e.g. `wav`, `mp3`, `flac`, `ogg`.
    pub container: String,
    /// The codec inside, e.g. `pcm_s16le`, `pcm_mulaw`, `adpcm_ima_wav`, `mp3`, `vorbis`.
    pub codec: String,
    /// Channels (1, or 2: caller and agent).
    pub channels: u8,
    /// Samples a second.
    pub sample_rate: u32,
}

/// A piece of decoded audio, in order.
pub enum Audio<'a> {
    /// G.711 bytes exactly as the file held them (interleaved when stereo).
    G711(&'a [u8]),
    /// Interleaved 16-bit samples.
    Linear(&'a [i16]),
}

/// The whole file's fingerprint, once it has been read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// SHA-256 of every byte of the file.
    pub sha256: [u8; 32],
    /// Its length in bytes.
    pub bytes: u64,
}

/// Reads `source` to its end (nothing decoded) and returns its digest: what an import that is
/// already stored is compared with.
pub fn digest(source: impl Read, limit: u64) -> Result<FileDigest, ImportError> {
    let seen = Arc::new(Mutex::new(Fingerprint::default()));
    let mut r = Hashing {
        inner: source,
        seen: Arc::clone(&seen),
        limit,
    };
    io::copy(&mut r, &mut io::sink()).map_err(|e| read_error(&seen, e))?;
    Ok(finish(&seen))
}

fn finish(seen: &Mutex<Fingerprint>) -> FileDigest {
    let seen = seen.lock().expect("the fingerprint lock is never poisoned");
    FileDigest {
        sha256: seen.hash.clone().finalize().into(),
        bytes: seen.bytes,
    }
}

fn read_error(seen: &Mutex<Fingerprint>, e: io::Error) -> ImportError {
    if seen.lock().is_ok_and(|s| s.too_large) {
        ImportError::TooLarge
    } else {
        ImportError::Read(e.to_string())
    }
}

/// Decodes `source` (whose name may hint at its format), handing each piece of audio to `sink` in
/// order, and reads the file to its end. Returns the format, the digest, and the sample frames
/// decoded (at the source's rate).
pub fn decode(
    source: Box<dyn Read + Send + Sync>,
    extension: Option<&str>,
    limit: u64,
    mut sink: impl FnMut(&SourceFormat, Audio<'_>) -> Result<(), ImportError>,
) -> Result<(SourceFormat, FileDigest, u64), ImportError> {
    let seen = Arc::new(Mutex::new(Fingerprint::default()));
    let reader = Hashing {
        inner: source,
        seen: Arc::clone(&seen),
        limit,
    };
    let mss = MediaSourceStream::new(Box::new(ReadOnlySource::new(reader)), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions {
                enable_gapless: true,
                ..FormatOptions::default()
            },
            &MetadataOptions::default(),
        )
        .map_err(|e| probe_error(&seen, e))?;
    let mut format = probed.format;
    let (track_id, params) = {
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| ImportError::Unsupported("the file holds no audio track".into()))?;
        (track.id, track.codec_params.clone())
    };
    let codec_name = codec_name(params.codec);
    let channels = params.channels.map_or(0, |c| c.count());
    if !(1..=2).contains(&channels) {
        return Err(ImportError::Unsupported(format!(
            "{channels} channels: callvault keeps mono or stereo (caller and agent)"
        )));
    }
    let sample_rate = params
        .sample_rate
        .filter(|r| (1..=crate::vault::container::MAX_SAMPLE_RATE).contains(r))
        .ok_or_else(|| ImportError::Corrupt("the file gives no usable sample rate".into()))?;
    let fmt = SourceFormat {
        container: container_name(format.as_ref(), extension),
        codec: codec_name.to_owned(),
        channels: channels as u8,
        sample_rate,
    };
    let passthrough = g711(params.codec);
    // an ADPCM WAV file's `fact` chunk says how many frames its blocks hold (the last block is
    // padded); symphonia counts whole blocks
    let cap = if fmt.container == "wav" {
        let seen = seen.lock().expect("the fingerprint lock is never poisoned");
        match wav_format_tag(&seen.prefix) {
            Some(0x0002 | 0x0011) => wav_chunk(&seen.prefix, b"fact")
                .and_then(|b| b.get(0..4))
                .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            _ => None,
        }
    } else {
        None
    };
    let ch = usize::from(fmt.channels);
    let room = |frames: u64, have: usize| -> usize {
        cap.map_or(have, |c| have.min(c.saturating_sub(frames) as usize))
    };
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => ImportError::Unsupported(format!(
                "{codec_name} audio cannot be decoded by this build"
            )),
            e => ImportError::Corrupt(e.to_string()),
        })?;
    let mut frames = 0u64;
    let mut samples: Option<SampleBuffer<i16>> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(SymError::IoError(e)) => return Err(read_error(&seen, e)),
            Err(e) => return Err(ImportError::Corrupt(e.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        if passthrough.is_some() {
            let data = packet.buf();
            let n = room(frames, data.len() / ch);
            frames += n as u64;
            if n > 0 {
                sink(&fmt, Audio::G711(&data[..n * ch]))?;
            }
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(ImportError::Corrupt(e.to_string())),
        };
        if decoded.frames() == 0 {
            continue;
        }
        let spec = *decoded.spec();
        if spec.channels.count() != usize::from(fmt.channels) || spec.rate != fmt.sample_rate {
            return Err(ImportError::Corrupt(
                "the audio changes its channels or rate part way".into(),
            ));
        }
        let buf = match &mut samples {
            Some(b) if b.capacity() >= decoded.capacity() * spec.channels.count() => b,
            slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        let n = room(frames, buf.samples().len() / ch);
        frames += n as u64;
        if n > 0 {
            sink(&fmt, Audio::Linear(&buf.samples()[..n * ch]))?;
        }
    }
    // the rest of the file (trailing chunks, tags) counts in its hash too
    let mut rest = format.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| read_error(&seen, e))?;
    Ok((fmt, finish(&seen), frames))
}

/// The G.711 codec of a codec type, when its bytes are kept as they are.
pub fn g711(codec: CodecType) -> Option<Codec> {
    match codec {
        CODEC_TYPE_PCM_MULAW => Some(Codec::Pcmu),
        CODEC_TYPE_PCM_ALAW => Some(Codec::Pcma),
        _ => None,
    }
}

fn codec_name(codec: CodecType) -> &'static str {
    symphonia::default::get_codecs()
        .get_codec(codec)
        .map_or("unknown", |d| d.short_name)
}

fn container_name(format: &dyn FormatReader, extension: Option<&str>) -> String {
    // symphonia does not name its readers; the reader's type name says which one decoded the file
    let ty = std::any::type_name_of_val(format).to_ascii_lowercase();
    for name in ["wav", "mp3", "flac", "ogg", "mpa"] {
        if ty.contains(name) {
            return if name == "mpa" {
                "mp3".into()
            } else {
                name.into()
            };
        }
    }
    extension.unwrap_or("unknown").to_ascii_lowercase()
}

fn probe_error(seen: &Mutex<Fingerprint>, e: SymError) -> ImportError {
    let named = seen
        .lock()
        .ok()
        .and_then(|s| wav_format_tag(&s.prefix))
        .and_then(unsupported_wav_codec);
    match (e, named) {
        (_, Some(name)) => ImportError::Unsupported(format!(
            "{name} audio is not supported: convert it to PCM, G.711 or ADPCM WAV first"
        )),
        (SymError::IoError(e), None) => {
            if seen.lock().is_ok_and(|s| s.too_large) {
                ImportError::TooLarge
            } else if e.kind() == io::ErrorKind::UnexpectedEof {
                ImportError::Corrupt("the file ends before its audio starts".into())
            } else {
                ImportError::Read(e.to_string())
            }
        }
        (SymError::Unsupported(what), None) if what.contains("no suitable format reader") => {
            ImportError::Unsupported(
                "not an audio file callvault reads (WAV, MP3, FLAC, Ogg Vorbis)".into(),
            )
        }
        (SymError::Unsupported(what), None) => ImportError::Unsupported(what.to_owned()),
        (e, None) => ImportError::Corrupt(e.to_string()),
    }
}

/// The start (up to 40 bytes) of the chunk `id` of a RIFF/WAVE file's first bytes.
fn wav_chunk<'a>(prefix: &'a [u8], want: &[u8; 4]) -> Option<&'a [u8]> {
    if prefix.len() < 12 || &prefix[0..4] != b"RIFF" || &prefix[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    while at + 8 <= prefix.len() {
        let id = &prefix[at..at + 4];
        let len = u32::from_le_bytes(prefix[at + 4..at + 8].try_into().ok()?) as usize;
        if id == want {
            return prefix.get(at + 8..(at + 8 + len.min(40)).min(prefix.len()));
        }
        at = at.checked_add(8 + len + len % 2)?;
    }
    None
}

/// The `fmt ` chunk's format tag of a RIFF/WAVE file's first bytes (the sub-format's for
/// `WAVE_FORMAT_EXTENSIBLE`).
fn wav_format_tag(prefix: &[u8]) -> Option<u16> {
    let body = wav_chunk(prefix, b"fmt ")?;
    let tag = u16::from_le_bytes(body.get(0..2)?.try_into().ok()?);
    if tag == 0xfffe {
        return Some(u16::from_le_bytes(body.get(24..26)?.try_into().ok()?));
    }
    Some(tag)
}

/// The name of a WAV codec that callvault cannot decode, by its format tag.
fn unsupported_wav_codec(tag: u16) -> Option<&'static str> {
    Some(match tag {
        0x0031 => "GSM 6.10",
        0x0032 => "MSN Audio (GSM 6.10)",
        0x0014 => "G.723 ADPCM",
        0x0040 => "G.721 ADPCM",
        0x0042 => "G.723.1",
        0x0045 | 0x0064 => "G.726 ADPCM",
        0x0065 => "G.722 ADPCM",
        0x0083 => "G.729 Annex A",
        0x0133 => "G.729",
        0x0022 => "TrueSpeech",
        0x0055 => "MP3 in WAV",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_header(tag: u16) -> Vec<u8> {
        let mut h = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        h.extend_from_slice(&20u32.to_le_bytes());
        h.extend_from_slice(&tag.to_le_bytes());
        h.extend_from_slice(&[
            1, 0, 0x40, 0x1f, 0, 0, 0x59, 0x06, 0, 0, 65, 0, 0, 0, 2, 0, 0x40, 1,
        ]);
        h
    }

    #[test]
    fn names_the_wav_codecs_it_cannot_decode() {
        assert_eq!(wav_format_tag(&wav_header(0x31)), Some(0x31));
        assert_eq!(unsupported_wav_codec(0x31), Some("GSM 6.10"));
        assert_eq!(unsupported_wav_codec(0x01), None);
        assert_eq!(wav_format_tag(b"ID3\x04garbage"), None);
        let err = decode(
            Box::new(io::Cursor::new(wav_header(0x31))),
            Some("wav"),
            1 << 20,
            |_, _| Ok(()),
        )
        .expect_err("refused");
        assert!(
            matches!(&err, ImportError::Unsupported(m) if m.contains("GSM 6.10")),
            "{err}"
        );
    }

    #[test]
    fn not_audio_is_refused_and_the_limit_holds() {
        let err = decode(
            Box::new(io::Cursor::new(vec![7u8; 10_000])),
            None,
            1 << 20,
            |_, _| Ok(()),
        )
        .expect_err("refused");
        assert!(matches!(err, ImportError::Unsupported(_)), "{err}");
        let err = digest(io::Cursor::new(vec![0u8; 2000]), 1000).expect_err("too large");
        assert!(matches!(err, ImportError::TooLarge));
        let d = digest(io::Cursor::new(b"abc".to_vec()), 1000).expect("small");
        assert_eq!(d.bytes, 3);
        assert_eq!(
            hex::encode(d.sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
