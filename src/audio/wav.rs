//! The RIFF/WAVE header of a rendered recording, written whole before any audio because the data
//! length is known in advance (no placeholder to patch afterwards, so the file can be streamed).
//!
//! This module owns the header bytes only; the audio that follows is the renderer's. It must not
//! hold audio.
//!
//! Layout, all integers little-endian:
//! - linear PCM ([`WavFormat::Pcm16`], tag 1): `RIFF` size `WAVE`, a 16-byte `fmt ` chunk, `data`:
//!   44 bytes in all;
//! - G.711 ([`WavFormat::MuLaw`] tag 7, [`WavFormat::ALaw`] tag 6): non-PCM formats need an 18-byte
//!   `fmt ` chunk (ending in `cbSize` = 0) and a `fact` chunk holding the number of sample frames
//!   (Microsoft's RIFF rules, which `symphonia` enforces for both), then `data`: 58 bytes in all.
//!
//! An odd-length `data` chunk is followed by one pad byte (RIFF chunks are word-aligned); the RIFF
//! size counts it, the `data` size does not. [`WavSpec::file_len`] gives the whole file's length.

/// The largest value of a RIFF size field: a WAV file cannot describe more than 4 GiB.
const RIFF_MAX: u64 = u32::MAX as u64;

/// How the samples in the `data` chunk are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WavFormat {
    /// 16-bit signed little-endian linear PCM (format tag 1).
    Pcm16,
    /// G.711 mu-law, 8 bits a sample (format tag 7).
    MuLaw,
    /// G.711 A-law, 8 bits a sample (format tag 6).
    ALaw,
}

impl WavFormat {
    /// The `wFormatTag` value.
    pub const fn tag(self) -> u16 {
        match self {
            WavFormat::Pcm16 => 1,
            WavFormat::ALaw => 6,
            WavFormat::MuLaw => 7,
        }
    }

    /// Bits of one sample of one channel.
    pub const fn bits_per_sample(self) -> u16 {
        match self {
            WavFormat::Pcm16 => 16,
            WavFormat::MuLaw | WavFormat::ALaw => 8,
        }
    }

    /// Length of the header (everything before the audio) in bytes: 44 for PCM, 58 for G.711.
    pub const fn header_len(self) -> u64 {
        match self {
            WavFormat::Pcm16 => 44,
            WavFormat::MuLaw | WavFormat::ALaw => 58,
        }
    }

    const fn is_pcm(self) -> bool {
        matches!(self, WavFormat::Pcm16)
    }
}

/// What a WAV file holds: sample encoding, channels and rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WavSpec {
    /// Sample encoding.
    pub format: WavFormat,
    /// Interleaved channels (1 or 2 for callvault).
    pub channels: u16,
    /// Sample frames per second.
    pub sample_rate: u32,
}

/// A `data` chunk too long for a RIFF file (over 4 GiB with its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("wav data of {data_len} bytes is over the 4 gib riff limit")]
pub struct TooLong {
    /// The data length that was asked for.
    pub data_len: u64,
}

impl WavSpec {
    /// Bytes of one sample frame (one sample of every channel): the `nBlockAlign` value.
    pub const fn frame_len(&self) -> u16 {
        self.channels * (self.format.bits_per_sample() / 8)
    }

    /// Length of the header in bytes.
    pub const fn header_len(&self) -> u64 {
        self.format.header_len()
    }

    /// Length of the whole file for `data_len` bytes of audio: header, data and pad byte.
    pub fn file_len(&self, data_len: u64) -> Result<u64, TooLong> {
        let riff = self.riff_size(data_len)?;
        Ok(u64::from(riff) + 8)
    }

    fn riff_size(&self, data_len: u64) -> Result<u32, TooLong> {
        let pad = data_len % 2;
        let riff = (self.header_len() - 8)
            .checked_add(data_len)
            .and_then(|n| n.checked_add(pad))
            .filter(|n| *n <= RIFF_MAX)
            .ok_or(TooLong { data_len })?;
        Ok(u32::try_from(riff).expect("checked against the riff maximum"))
    }

    /// The header for `data_len` bytes of audio (exactly [`header_len`](Self::header_len) bytes).
    pub fn header(&self, data_len: u64) -> Result<Vec<u8>, TooLong> {
        let riff = self.riff_size(data_len)?;
        // riff_size bounds data_len below 4 GiB, so this cannot truncate.
        let data = u32::try_from(data_len).map_err(|_| TooLong { data_len })?;
        let frame = self.frame_len();
        let mut h = Vec::with_capacity(self.format.header_len() as usize);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&riff.to_le_bytes());
        h.extend_from_slice(b"WAVE");
        h.extend_from_slice(b"fmt ");
        let fmt_len: u32 = if self.format.is_pcm() { 16 } else { 18 };
        h.extend_from_slice(&fmt_len.to_le_bytes());
        h.extend_from_slice(&self.format.tag().to_le_bytes());
        h.extend_from_slice(&self.channels.to_le_bytes());
        h.extend_from_slice(&self.sample_rate.to_le_bytes());
        let byte_rate = self.sample_rate.saturating_mul(u32::from(frame));
        h.extend_from_slice(&byte_rate.to_le_bytes());
        h.extend_from_slice(&frame.to_le_bytes());
        h.extend_from_slice(&self.format.bits_per_sample().to_le_bytes());
        if !self.format.is_pcm() {
            // cbSize: no extra format bytes
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(b"fact");
            h.extend_from_slice(&4u32.to_le_bytes());
            let frames = data / u32::from(frame.max(1));
            h.extend_from_slice(&frames.to_le_bytes());
        }
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data.to_le_bytes());
        debug_assert_eq!(h.len() as u64, self.format.header_len());
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: WavFormat, channels: u16) -> WavSpec {
        WavSpec {
            format,
            channels,
            sample_rate: 8000,
        }
    }

    #[test]
    fn pcm_header_matches_hound() {
        let s = spec(WavFormat::Pcm16, 2);
        let mut cursor = std::io::Cursor::new(Vec::new());
        let hs = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut cursor, hs).expect("hound writer");
        for i in 0..100i16 {
            w.write_sample(i).expect("sample");
            w.write_sample(-i).expect("sample");
        }
        w.finalize().expect("finalize");
        let file = cursor.into_inner();
        let ours = s.header(400).expect("short data");
        assert_eq!(ours.len(), 44);
        assert_eq!(ours[..], file[..44]);
        assert_eq!(s.file_len(400), Ok(file.len() as u64));
    }

    #[test]
    fn g711_header_has_extended_fmt_and_fact() {
        for (format, tag) in [(WavFormat::MuLaw, 7u16), (WavFormat::ALaw, 6)] {
            let h = spec(format, 2).header(8000).expect("short data");
            assert_eq!(h.len(), 58);
            assert_eq!(&h[0..4], b"RIFF");
            assert_eq!(u32::from_le_bytes([h[4], h[5], h[6], h[7]]), 50 + 8000);
            assert_eq!(&h[12..16], b"fmt ");
            assert_eq!(u32::from_le_bytes([h[16], h[17], h[18], h[19]]), 18);
            assert_eq!(u16::from_le_bytes([h[20], h[21]]), tag);
            assert_eq!(u16::from_le_bytes([h[22], h[23]]), 2);
            assert_eq!(u32::from_le_bytes([h[28], h[29], h[30], h[31]]), 16000);
            assert_eq!(u16::from_le_bytes([h[32], h[33]]), 2);
            assert_eq!(u16::from_le_bytes([h[34], h[35]]), 8);
            assert_eq!(u16::from_le_bytes([h[36], h[37]]), 0);
            assert_eq!(&h[38..42], b"fact");
            assert_eq!(u32::from_le_bytes([h[46], h[47], h[48], h[49]]), 4000);
            assert_eq!(&h[50..54], b"data");
            assert_eq!(u32::from_le_bytes([h[54], h[55], h[56], h[57]]), 8000);
        }
    }

    #[test]
    fn odd_data_is_padded() {
        let s = spec(WavFormat::MuLaw, 1);
        let h = s.header(7).expect("short data");
        assert_eq!(u32::from_le_bytes([h[4], h[5], h[6], h[7]]), 50 + 7 + 1);
        assert_eq!(s.file_len(7), Ok(58 + 8));
    }

    #[test]
    fn over_four_gib_is_refused() {
        let s = spec(WavFormat::Pcm16, 2);
        // the longest even data length whose riff size still fits (odd lengths add a pad byte)
        let max = u64::from(u32::MAX) - 37;
        assert_eq!(s.file_len(max), Ok(u64::from(u32::MAX) - 1 + 8));
        assert!(s.header(max).is_ok());
        assert_eq!(s.header(max + 1), Err(TooLong { data_len: max + 1 }));
        assert_eq!(s.file_len(u64::MAX), Err(TooLong { data_len: u64::MAX }));
        let e = s.file_len(u64::MAX).expect_err("too long").to_string();
        assert_eq!(
            e,
            "wav data of 18446744073709551615 bytes is over the 4 gib riff limit"
        );
    }
}
