//! The audio path of one call: audio handed over by a socket, placed and judged by the call's
//! [`Timeline`], held for the look-back window, then committed to segments and live listeners.
//!
//! Nothing here computes a frame's time: the timeline gives every span its place and its interval
//! (earliest speaking time, arrival), and the lifecycle its windows. This module only moves bytes:
//! into the look-back buffer, out of it into the open segment (a new one whenever the places are
//! not contiguous or the segment would span a window), and back out of the open segment when a
//! pause later than the look-back window cuts it back.

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use super::{Call, Open};
use crate::domain::SegmentNo;
use crate::domain::timeline::{self, Bounds, Decision, Payload, Remedy, Span, Window};
use crate::recorder::RecorderError;
use crate::recorder::listen::ListenFrame;
use crate::recorder::persist::PersistError;

/// A segment is closed and a new one opened after this many seconds of audio, so an upload is
/// never huge.
const SEGMENT_MAX_SECS: u64 = 300;
/// Most audio a call holds in its look-back buffer, in seconds: a stream sending far faster than
/// real time has the rest dropped on arrival (and ledgered) rather than filling memory.
const HELD_MAX_SECS: u64 = 60;

/// Audio handed over by a socket: pieces of `bytes`, each at a stream position with its arrival.
#[derive(Debug, Default)]
pub(in crate::recorder) struct AudioBatch {
    /// The audio of every piece, one after the other.
    pub bytes: bytes::BytesMut,
    /// The pieces, in the order they were read.
    pub pieces: Vec<Piece>,
    /// Samples the socket dropped on arrival (nothing could be captured then).
    pub dropped: u64,
    /// When the socket last read audio, kept or not: the stream is alive.
    pub seen: Option<DateTime<Utc>>,
    /// Arrivals of keys the platform signalled (never their values).
    pub keys: Vec<DateTime<Utc>>,
}

/// One piece of an [`AudioBatch`].
#[derive(Debug, Clone, Copy)]
pub(in crate::recorder) struct Piece {
    /// Its first sample's stream position (samples per channel since the stream's start).
    pub position: u64,
    /// Its length in bytes (whole sample frames).
    pub len: usize,
    /// Samples the socket dropped on arrival (capture was off) in place of bytes (`len` is 0):
    /// they still tell the timeline where the stream is.
    pub gated: u64,
    /// When it was read.
    pub arrival: DateTime<Utc>,
}

/// Audio held in the look-back buffer: wiped when dropped or cut.
#[derive(Debug)]
pub(super) struct Held {
    bytes: Vec<u8>,
    start: usize,
    frame: usize,
}

impl Held {
    fn bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

impl Payload for Held {
    fn skip(&mut self, n: u64) {
        let k = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .saturating_mul(self.frame)
            .min(self.bytes.len() - self.start);
        zeroize::Zeroize::zeroize(&mut self.bytes[self.start..self.start + k]);
        self.start += k;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.bytes);
    }
}

impl Call {
    /// Places and judges each piece of a batch; what may be kept is held for the look-back window.
    pub(super) async fn on_audio(&mut self, batch: AudioBatch) {
        let Some(format) = self.format else {
            return;
        };
        if !self.timeline.is_open() {
            return;
        }
        let frame = format.frame_bytes() as usize;
        self.dropped_on_arrival += batch.dropped;
        if let Some(seen) = batch.seen {
            self.last_audio = Some(self.last_audio.map_or(seen, |l| l.max(seen)));
        }
        for &arrival in &batch.keys {
            self.signalled_key(arrival);
        }
        let mut windows = self.life.windows();
        let mut keys_changed = !batch.keys.is_empty();
        let mut off = 0usize;
        for piece in &batch.pieces {
            let bytes = &batch.bytes[off..off + piece.len];
            off += piece.len;
            let samples = (piece.len / frame) as u64;
            self.last_audio = Some(piece.arrival);
            if piece.gated > 0 {
                // counted in `batch.dropped` already
                if let Err(timeline::Refused::NoStream) =
                    self.timeline
                        .observe(piece.position, piece.gated, piece.arrival)
                {
                    return;
                }
                continue;
            }
            if self.timeline.held_samples() > HELD_MAX_SECS * u64::from(format.sample_rate) {
                self.overrun += samples;
            } else {
                let held = Held {
                    bytes: bytes.to_vec(),
                    start: 0,
                    frame,
                };
                match self
                    .timeline
                    .push(piece.position, samples, piece.arrival, held, &windows)
                {
                    Ok(p) => {
                        self.dropped_on_arrival += p.dropped;
                        self.backwards += p.backwards;
                    }
                    Err(timeline::Refused::Backwards { samples }) => self.backwards += samples,
                    Err(timeline::Refused::NoStream) => return,
                }
            }
            // tones are looked for in everything that arrived, kept or not, so a key is seen
            // whole; a key that went down or up drops what it covers while it is still held
            if self.feed_keys(piece.position, samples, piece.arrival, bytes) {
                keys_changed = true;
                windows = self.life.windows();
            }
        }
        if keys_changed {
            let windows = self.life.windows();
            let dropped = self.timeline.drop_overlapping(&windows);
            if dropped > 0 {
                debug!(call_id = %self.id, samples = dropped, "held audio dropped for keys");
            }
        }
        self.note_decisions().await;
    }

    /// Writes what the timeline decided to the ledger.
    pub(super) async fn note_decisions(&mut self) {
        let rate = self.format.map_or(8000, |f| f.sample_rate);
        for d in self.timeline.take_decisions() {
            let (kind, details) = match d {
                Decision::Gap {
                    place,
                    length,
                    hole,
                } => (
                    "gap",
                    serde_json::json!({
                        "cause": "stream_paused", "at_ms": self.place_ms(place, rate),
                        "length_ms": length.num_milliseconds(), "in_recording": hole,
                    }),
                ),
                Decision::Stall { lag } => (
                    "stall",
                    serde_json::json!({ "lag_ms": lag.num_milliseconds() }),
                ),
                Decision::AnchorClamped { by } => (
                    "anchor_clamped",
                    serde_json::json!({ "moved_ms": by.num_milliseconds() }),
                ),
                Decision::AheadClamped { by } => {
                    if self.ahead_noted {
                        continue;
                    }
                    self.ahead_noted = true;
                    (
                        "ahead_clamped",
                        serde_json::json!({ "ahead_ms": by.num_milliseconds() }),
                    )
                }
            };
            debug!(call_id = %self.id, kind, "timeline decision");
            self.note_now(kind, details).await;
        }
    }

    /// Milliseconds from the recording's start of a place.
    pub(super) fn place_ms(&self, place: u64, rate: u32) -> u64 {
        self.timeline
            .wall(place, rate)
            .map_or(0, |t| self.media_ms(t))
    }

    /// Drops held audio that overlaps a window which became known at `instant`, and remedies
    /// committed audio that does.
    pub(super) async fn drop_from(&mut self, instant: DateTime<Utc>) -> Result<(), RecorderError> {
        let windows = self.life.windows();
        let dropped = self.timeline.drop_overlapping(&windows);
        if dropped > 0 {
            debug!(call_id = %self.id, samples = dropped, "held audio dropped by a pause");
        }
        let w = windows
            .iter()
            .find(|w| w.from == instant)
            .copied()
            .unwrap_or(Window {
                from: instant,
                to: None,
            });
        let open_chunks = self.open.as_ref().map_or(&[][..], |o| &o.chunks[..]);
        match timeline::late_remedy(&w, open_chunks, &self.sealed) {
            Remedy::None => {}
            Remedy::CutBack { keep_chunks } => {
                let open = self
                    .open
                    .take()
                    .expect("a cut-back implies an open segment");
                self.cut_back(open, keep_chunks).await?;
            }
            Remedy::PciReview { cut_open } => {
                if cut_open && let Some(open) = self.open.take() {
                    self.cut_back(open, 0).await?;
                }
                self.pci_review(instant).await;
            }
        }
        Ok(())
    }

    async fn cut_back(&mut self, open: Open, keep_chunks: u64) -> Result<(), RecorderError> {
        let format = self.format.expect("committed audio implies a format");
        let chunk = u64::from(self.deps.config.recorder.chunk_size);
        let keep_bytes = (keep_chunks * chunk).min(open.len);
        let keep_samples = keep_bytes / u64::from(format.frame_bytes());
        let end_ms = self.place_ms(open.place + keep_samples, format.sample_rate);
        let dropped = open.len - keep_bytes;
        open.segment.cut_back(keep_chunks, end_ms).await?;
        if keep_chunks > 0 {
            let kept = open.chunks[..keep_chunks as usize]
                .iter()
                .copied()
                .reduce(Bounds::merge)
                .expect("at least one chunk kept");
            self.sealed.push(kept);
        }
        warn!(call_id = %self.id, segment = %open.number, dropped_bytes = dropped, "pause arrived after the look-back window; open segment cut back");
        metrics::counter!("callvault_pci_cutbacks_total").increment(1);
        self.note_now(
            "cut_back",
            serde_json::json!({ "segment": open.number.0, "kept_bytes": keep_bytes, "dropped_bytes": dropped }),
        )
        .await;
        Ok(())
    }

    /// Commits the held audio that arrived at or before `limit`.
    pub(super) async fn commit_until(&mut self, limit: DateTime<Utc>) -> Result<(), RecorderError> {
        let ready = self.timeline.commit_until(limit, self.key_tail());
        if ready.is_empty() {
            return Ok(());
        }
        let windows = self.life.windows();
        for (span, held) in ready {
            // judged once more against every window known now: a pause known since it was held
            // dropped it already, so this only ever confirms
            let cut = span.overlapping_prefix(&windows);
            if cut >= span.samples {
                continue;
            }
            let mut held = held;
            held.skip(cut);
            self.commit(span.skip(cut), held.bytes(), &windows).await?;
        }
        Ok(())
    }

    async fn commit(
        &mut self,
        span: Span,
        bytes: &[u8],
        windows: &[Window],
    ) -> Result<(), RecorderError> {
        self.forward(bytes);
        let format = self.format.expect("held audio implies a format");
        let frame = u64::from(format.frame_bytes());
        let max_samples = SEGMENT_MAX_SECS * u64::from(format.sample_rate);
        let mut span = span;
        let mut rest = bytes;
        while span.samples > 0 {
            let continues = self.open.as_ref().is_some_and(|o| {
                o.place + o.samples == span.place
                    && o.samples < max_samples
                    && !o.bounds.splits(span.bounds(), windows)
            });
            if !continues {
                self.close_open().await?;
                self.open_segment(span).await?;
            }
            let chunk = u64::from(self.deps.config.recorder.chunk_size);
            let open = self.open.as_mut().expect("just opened");
            let n = (max_samples - open.samples).min(span.samples);
            let nbytes = (n * frame) as usize;
            match open.segment.append(&rest[..nbytes]).await {
                Ok(()) => {}
                Err(PersistError::SpoolResumed { .. }) => {
                    // the segment lost audio to a full spool (persist ledgered it): what follows
                    // goes in a new segment, where the audio resumes
                    self.close_open().await?;
                    self.open_segment(span).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let open = self.open.as_mut().expect("appended to it");
            let b = span.bounds();
            let first_chunk = open.len / chunk;
            let last_chunk = (open.len + nbytes as u64 - 1) / chunk;
            for c in first_chunk..=last_chunk {
                match open.chunks.get_mut(c as usize) {
                    Some(cb) => *cb = cb.merge(b),
                    None => open.chunks.push(b),
                }
            }
            open.bounds = open.bounds.merge(b);
            open.len += nbytes as u64;
            open.samples += n;
            span = span.skip(n);
            rest = &rest[nbytes..];
        }
        Ok(())
    }

    async fn open_segment(&mut self, span: Span) -> Result<(), RecorderError> {
        let format = self.format.expect("committed audio implies a format");
        let number = SegmentNo(self.next_segment);
        let start_ms = self.place_ms(span.place, format.sample_rate);
        let segment = self
            .deps
            .persistence
            .open_segment(&self.recording, number, format, start_ms)
            .await?;
        self.next_segment += 1;
        if let Some(gap) = self.pending_gap.take() {
            // the first audio after a reconnect: the ledger names the time the call went unheard
            let from_ms = self.place_ms(gap.place_end, format.sample_rate);
            self.note_now(
                "gap",
                serde_json::json!({
                    "cause": gap.cause, "at_ms": from_ms,
                    "length_ms": start_ms.saturating_sub(from_ms),
                }),
            )
            .await;
        }
        self.open = Some(Open {
            segment,
            number,
            place: span.place,
            samples: 0,
            len: 0,
            bounds: span.bounds(),
            chunks: Vec::new(),
        });
        Ok(())
    }

    pub(super) async fn close_open(&mut self) -> Result<(), RecorderError> {
        if let Some(open) = self.open.take() {
            let rate = self.format.map_or(8000, |f| f.sample_rate);
            let end_ms = self.place_ms(open.place + open.samples, rate);
            self.sealed.push(open.bounds);
            open.segment.close(end_ms).await?;
        }
        Ok(())
    }

    /// Hands committed audio to live listeners, saying first that capture resumed if they were
    /// told of a pause.
    fn forward(&mut self, bytes: &[u8]) {
        let Some(tx) = &self.listeners else {
            return;
        };
        if tx.receiver_count() == 0 {
            return;
        }
        if self.listen_paused.take().is_some() {
            // a listener gone between the check and the send is no error
            let _ = tx.send(ListenFrame::Resumed);
        }
        let _ = tx.send(ListenFrame::Audio(bytes::Bytes::copy_from_slice(bytes)));
    }

    /// Tells listeners of a pause once every byte that arrived before it was forwarded (so the
    /// marker sits where the pause is in what they hear).
    pub(super) fn mark_pause(&mut self) {
        let Some(tx) = &self.listeners else {
            return;
        };
        if self.listen_paused.is_some() {
            return;
        }
        // an open pause, else a key window still open (a key sounding, or its quiet time)
        let now = self.deps.clock.now();
        let open = self
            .life
            .pauses()
            .iter()
            .rev()
            .find(|p| p.to.is_none())
            .map(|p| (p.kind.as_str(), p.from))
            .or_else(|| {
                self.life
                    .key_windows()
                    .iter()
                    .rev()
                    .find(|w| w.from <= now && w.to.is_none_or(|to| to > now))
                    .map(|w| ("dtmf", w.from))
            });
        let Some((kind, from)) = open else {
            return;
        };
        let before_pause = self.timeline.oldest_arrival().is_some_and(|a| a < from);
        if !before_pause {
            self.listen_paused = Some(kind);
            let _ = tx.send(ListenFrame::Paused { kind });
        }
    }
}
