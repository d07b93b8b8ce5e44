//! The session's RTP streams as one recording: each stream's packets placed by their RTP
//! timestamps (the media clock: a silence-suppressed stretch is a jump in the positions, never a
//! shift of what follows), reordered within a jitter window, and interleaved sample by sample into
//! the recording's channels (caller, agent).
//!
//! Positions are samples (per channel) since the session's first packet. A stream's first packet
//! is placed at its arrival (relative to that first packet), and every later one by its
//! timestamp's distance from the first; a new SSRC, or a timestamp that strays more than
//! [`REBASE_SAMPLES`] from arrival or [`RESTART_SAMPLES`] behind what was emitted (an SRC that
//! restarted its clock), is placed afresh at arrival.
//! Where one stream has audio and the other not, the other's channel is silence; where no stream
//! has any, nothing is emitted, and the next audio comes at its own later position.

use std::collections::BTreeMap;

use super::rtp::{Packet, TelephoneEvent, telephone_event};
use crate::audio::g711;
use crate::domain::Codec;

/// How long audio waits for a late packet of any stream before it is emitted: 100 ms of samples.
pub const JITTER_SAMPLES: u64 = 800;
/// A timestamp this far from its arrival (10 s) is taken as a restarted clock.
pub const REBASE_SAMPLES: u64 = 80_000;
/// A timestamp this far behind what was already emitted (1 s) is taken as a restarted clock too
/// (an SRC that replays its media from the start after a re-INVITE), not as late audio.
pub const RESTART_SAMPLES: u64 = 8_000;
/// Payload type of comfort noise (RFC 3389): skipped, so the stretch it stands for is a gap.
pub const PT_COMFORT_NOISE: u8 = 13;

/// One stream's codec and payload types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFormat {
    /// The codec answered.
    pub codec: Codec,
    /// Its payload type.
    pub payload_type: u8,
    /// The telephone-event payload type, if answered.
    pub events: Option<u8>,
}

#[derive(Debug, Clone)]
struct Track {
    format: StreamFormat,
    ssrc: Option<u32>,
    /// Extended timestamp of the first packet since the last (re)base.
    base: u64,
    /// Position of `base`.
    offset: u64,
    /// Last extended timestamp (for wrap-around).
    last: u64,
    chunks: BTreeMap<u64, Vec<u8>>,
    end: u64,
    /// The start of the last telephone event reported (its timestamp), so retransmitted event
    /// packets are reported once.
    last_event: Option<u64>,
}

impl Track {
    fn contiguous(&self, from: u64) -> u64 {
        let mut at = from;
        for (pos, bytes) in &self.chunks {
            if *pos > at {
                break;
            }
            at = at.max(pos + bytes.len() as u64);
        }
        at
    }
}

/// What a packet was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Audio, buffered.
    Audio,
    /// The start of a telephone event (a keypad key, when [`TelephoneEvent::is_key`]) at this
    /// position.
    Event(TelephoneEvent, u64),
    /// Nothing to record: comfort noise, a repeated event, an unknown payload type, an empty
    /// payload, or audio whose span was already emitted.
    Skipped(Skip),
}

/// Why a packet was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Comfort noise.
    ComfortNoise,
    /// A later packet of an event already reported.
    EventContinues,
    /// A payload type the answer did not name.
    UnknownPayload,
    /// Arrived after its span was emitted.
    Late,
    /// No payload.
    Empty,
}

/// The session's streams and their reorder buffers.
#[derive(Debug, Clone)]
pub struct Mixer {
    codec: Codec,
    tracks: Vec<Option<Track>>,
    emitted: u64,
    late: u64,
}

impl Mixer {
    /// A mixer for `channels` streams (1 or 2), recording in `codec`.
    pub fn new(codec: Codec, channels: usize) -> Self {
        Self {
            codec,
            tracks: vec![None; channels.clamp(1, 2)],
            emitted: 0,
            late: 0,
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.tracks.len()
    }

    /// Packets dropped because they came after their span was emitted.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// The silence byte of the recording's codec.
    pub fn silence(&self) -> u8 {
        match self.codec {
            Codec::Pcma => 0xD5,
            _ => 0xFF,
        }
    }

    /// Takes a packet of channel `channel` in `format`, which arrived `arrival` samples after the
    /// session's first packet.
    pub fn push(
        &mut self,
        channel: usize,
        format: StreamFormat,
        p: &Packet<'_>,
        arrival: u64,
    ) -> Pushed {
        let Some(slot) = self.tracks.get_mut(channel) else {
            return Pushed::Skipped(Skip::UnknownPayload);
        };
        let is_event = format.events == Some(p.payload_type);
        if p.payload_type == PT_COMFORT_NOISE {
            return Pushed::Skipped(Skip::ComfortNoise);
        }
        let codec = if is_event {
            None
        } else if p.payload_type == format.payload_type {
            Some(format.codec)
        } else {
            match p.payload_type {
                0 => Some(Codec::Pcmu),
                8 => Some(Codec::Pcma),
                _ => return Pushed::Skipped(Skip::UnknownPayload),
            }
        };
        if p.payload.is_empty() {
            return Pushed::Skipped(Skip::Empty);
        }
        let ts = u64::from(p.timestamp);
        let track = match slot {
            Some(t) if t.ssrc == Some(p.ssrc) => {
                // extend the 32-bit timestamp across wrap-around, either way
                let last32 = t.last & 0xffff_ffff;
                let delta = (ts as i64 - last32 as i64) as i32 as i64;
                let ext = (t.last as i64 + delta).max(0) as u64;
                let pos = t.offset as i64 + (ext as i64 - t.base as i64);
                if pos < 0
                    || (pos as u64).abs_diff(arrival) > REBASE_SAMPLES
                    || (pos as u64) + RESTART_SAMPLES < self.emitted
                {
                    t.base = ext;
                    t.offset = arrival.max(t.end);
                }
                t.last = ext;
                t.format = format;
                t
            }
            Some(t) => {
                // a new source: placed at its arrival, after what the old one sent
                t.ssrc = Some(p.ssrc);
                t.base = (1 << 32) + ts;
                t.last = t.base;
                t.offset = arrival.max(t.end);
                t.last_event = None;
                t
            }
            None => slot.insert(Track {
                format,
                ssrc: Some(p.ssrc),
                base: (1 << 32) + ts,
                offset: arrival,
                last: (1 << 32) + ts,
                chunks: BTreeMap::new(),
                end: 0,
                last_event: None,
            }),
        };
        let pos = track.offset + (track.last - track.base);
        if is_event {
            let Some(ev) = telephone_event(p.payload) else {
                return Pushed::Skipped(Skip::Empty);
            };
            if track.last_event == Some(track.last) {
                return Pushed::Skipped(Skip::EventContinues);
            }
            track.last_event = Some(track.last);
            return Pushed::Event(ev, pos);
        }
        let codec = codec.expect("audio has a codec");
        let bytes: Vec<u8> = if codec == self.codec {
            p.payload.to_vec()
        } else {
            p.payload
                .iter()
                .map(|b| transcode(codec, self.codec, *b))
                .collect()
        };
        let end = pos + bytes.len() as u64;
        if end <= self.emitted {
            self.late += 1;
            return Pushed::Skipped(Skip::Late);
        }
        track.end = track.end.max(end);
        track.chunks.insert(pos, bytes);
        Pushed::Audio
    }

    /// Audio ready for the recorder: `(position, interleaved bytes)` pieces; with `flush`,
    /// everything buffered.
    pub fn drain(&mut self, flush: bool) -> Vec<(u64, Vec<u8>)> {
        let ends: Vec<u64> = self.tracks.iter().flatten().map(|t| t.end).collect();
        let Some(&max_end) = ends.iter().max() else {
            return Vec::new();
        };
        let target = if flush {
            max_end
        } else {
            let ready = self
                .tracks
                .iter()
                .map(|t| {
                    t.as_ref()
                        .map_or(self.emitted, |t| t.contiguous(self.emitted))
                })
                .min()
                .unwrap_or(self.emitted);
            ready.max(max_end.saturating_sub(JITTER_SAMPLES))
        };
        if target <= self.emitted {
            return Vec::new();
        }
        // the stretches before `target` that some stream covers
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for t in self.tracks.iter().flatten() {
            for (pos, bytes) in t.chunks.range(..target) {
                let a = (*pos).max(self.emitted);
                let b = (pos + bytes.len() as u64).min(target);
                if a < b {
                    spans.push((a, b));
                }
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (a, b) in spans {
            match merged.last_mut() {
                Some((_, e)) if a <= *e => *e = (*e).max(b),
                _ => merged.push((a, b)),
            }
        }
        let channels = self.tracks.len();
        let silence = self.silence();
        let mut out = Vec::with_capacity(merged.len());
        for (a, b) in merged {
            let mut buf = vec![silence; (b - a) as usize * channels];
            for (ch, t) in self.tracks.iter().enumerate() {
                let Some(t) = t else { continue };
                for (pos, bytes) in t.chunks.range(..b) {
                    let end = pos + bytes.len() as u64;
                    let lo = (*pos).max(a);
                    let hi = end.min(b);
                    for s in lo..hi {
                        buf[(s - a) as usize * channels + ch] = bytes[(s - pos) as usize];
                    }
                }
            }
            out.push((a, buf));
        }
        for t in self.tracks.iter_mut().flatten() {
            let mut rest = t.chunks.split_off(&target);
            // a chunk that straddles the target keeps its tail
            if let Some((pos, bytes)) = t.chunks.iter().next_back()
                && pos + bytes.len() as u64 > target
            {
                rest.insert(target, bytes[(target - pos) as usize..].to_vec());
            }
            t.chunks = rest;
        }
        self.emitted = target;
        out
    }
}

fn transcode(from: Codec, to: Codec, b: u8) -> u8 {
    let linear = match from {
        Codec::Pcma => g711::alaw_to_linear(b),
        _ => g711::ulaw_to_linear(b),
    };
    match to {
        Codec::Pcma => g711::linear_to_alaw(linear),
        _ => g711::linear_to_ulaw(linear),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::siprec::rtp::{build, parse};

    const PCMU: StreamFormat = StreamFormat {
        codec: Codec::Pcmu,
        payload_type: 0,
        events: Some(101),
    };

    fn push(
        m: &mut Mixer,
        ch: usize,
        seq: u16,
        ts: u32,
        ssrc: u32,
        byte: u8,
        arrival: u64,
    ) -> Pushed {
        let b = build(0, false, seq, ts, ssrc, &[byte; 160]);
        m.push(ch, PCMU, &parse(&b).expect("rtp"), arrival)
    }

    fn all(m: &mut Mixer) -> Vec<(u64, Vec<u8>)> {
        m.drain(true)
    }

    #[test]
    fn two_streams_interleave_by_timestamp() {
        let mut m = Mixer::new(Codec::Pcmu, 2);
        // different random bases; the second starts 40 samples after the first
        for i in 0..5u32 {
            push(
                &mut m,
                0,
                i as u16,
                1000 + 160 * i,
                1,
                0x11,
                u64::from(160 * i),
            );
            push(
                &mut m,
                1,
                i as u16,
                4_294_967_000u32.wrapping_add(160 * i),
                2,
                0x22,
                40 + u64::from(160 * i),
            );
        }
        let out = all(&mut m);
        assert_eq!(out.len(), 1);
        let (pos, bytes) = &out[0];
        assert_eq!(*pos, 0);
        assert_eq!(bytes.len(), (800 + 40) * 2);
        assert_eq!(&bytes[..4], &[0x11, 0xFF, 0x11, 0xFF]);
        assert_eq!(&bytes[80..84], &[0x11, 0x22, 0x11, 0x22]);
        assert_eq!(&bytes[bytes.len() - 2..], &[0xFF, 0x22]);
    }

    #[test]
    fn a_gap_in_every_stream_is_a_jump_not_a_shift() {
        let mut m = Mixer::new(Codec::Pcmu, 2);
        push(&mut m, 0, 1, 0, 1, 0x11, 0);
        push(&mut m, 1, 1, 0, 2, 0x22, 0);
        // both silent for 2 s (16,000 samples), timestamps jump
        push(&mut m, 0, 2, 16_160, 1, 0x11, 16_160);
        push(&mut m, 1, 2, 16_160, 2, 0x22, 16_160);
        let out = all(&mut m);
        assert_eq!(
            out.iter().map(|(p, b)| (*p, b.len())).collect::<Vec<_>>(),
            [(0, 320), (16_160, 320)]
        );
    }

    #[test]
    fn reordered_packets_are_placed_and_late_ones_dropped() {
        let mut m = Mixer::new(Codec::Pcmu, 1);
        push(&mut m, 0, 1, 0, 1, 1, 0);
        push(&mut m, 0, 3, 320, 1, 3, 320);
        push(&mut m, 0, 2, 160, 1, 2, 330);
        let mut out = m.drain(false);
        out.extend(all(&mut m));
        assert_eq!(out[0].0, 0);
        let joined: Vec<u8> = out.into_iter().flat_map(|(_, b)| b).collect();
        assert_eq!(joined.len(), 480);
        assert_eq!((joined[0], joined[200], joined[400]), (1, 2, 3));
        assert_eq!(
            push(&mut m, 0, 1, 0, 1, 1, 500),
            Pushed::Skipped(Skip::Late)
        );
        assert_eq!(m.late(), 1);
    }

    #[test]
    fn timestamps_wrap_and_a_new_ssrc_starts_at_arrival() {
        let mut m = Mixer::new(Codec::Pcmu, 1);
        push(&mut m, 0, 1, u32::MAX - 79, 1, 1, 0);
        push(&mut m, 0, 2, 80, 1, 2, 160);
        push(&mut m, 0, 3, 999_999, 9, 3, 8_000);
        let out = all(&mut m);
        assert_eq!(
            out.iter().map(|(p, b)| (*p, b.len())).collect::<Vec<_>>(),
            [(0, 320), (8_000, 160)]
        );
        // a restarted clock on the same ssrc far from arrival is rebased at arrival
        push(&mut m, 0, 4, 5, 9, 4, 9_000);
        let out = all(&mut m);
        assert_eq!(out[0].0, 9_000);
    }

    #[test]
    fn events_comfort_noise_and_codecs() {
        let mut m = Mixer::new(Codec::Pcmu, 1);
        let ev = build(101, true, 1, 800, 1, &[7, 10, 0, 160]);
        let p = parse(&ev).expect("rtp");
        assert!(matches!(m.push(0, PCMU, &p, 800), Pushed::Event(e, 800) if e.is_key()));
        assert_eq!(
            m.push(0, PCMU, &p, 820),
            Pushed::Skipped(Skip::EventContinues)
        );
        let cn = build(13, false, 2, 960, 1, &[40]);
        assert_eq!(
            m.push(0, PCMU, &parse(&cn).expect("rtp"), 960),
            Pushed::Skipped(Skip::ComfortNoise)
        );
        let odd = build(18, false, 3, 1120, 1, &[1; 20]);
        assert_eq!(
            m.push(0, PCMU, &parse(&odd).expect("rtp"), 1120),
            Pushed::Skipped(Skip::UnknownPayload)
        );
        // a PCMA stream in a PCMU recording is transcoded: A-law silence becomes µ-law silence
        let a = StreamFormat {
            codec: Codec::Pcma,
            payload_type: 8,
            events: None,
        };
        let pa = build(8, false, 4, 1280, 1, &[0xD5; 160]);
        assert_eq!(m.push(0, a, &parse(&pa).expect("rtp"), 1280), Pushed::Audio);
        let out = all(&mut m);
        assert!(out[0].1.iter().all(|b| g711::ulaw_to_linear(*b).abs() < 16));
    }
}
