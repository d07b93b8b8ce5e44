//! The two clocks of a call's audio (DESIGN.md section 2, "Two clocks"), and the look-back buffer
//! that holds audio until it may be committed.
//!
//! Every piece of audio has an **arrival** time (this server's clock, when it was read) and a
//! **media** time (the stream's own clock: the protocol's timestamps where it has them, otherwise
//! samples counted since the start). Neither alone can say when a sample was spoken: a platform's
//! anchor can be wrong, a stream can stop sending (a gap: nothing was spoken) or be held up (a
//! stall: it was spoken on time and arrives late). So each sample is given an interval, from its
//! **earliest possible speaking time** to its arrival, and a sample is kept only if that interval
//! is clear of every window in which nothing may be kept ([`Window`]: a pause, a refusal, consent
//! not given). Each sample also has a **place**: where it sits in the recording, in samples from the
//! recording's origin; places only grow, and a hole between two places is a gap in the recording.
//!
//! The rules, decided here and nowhere else:
//! - The media clock's anchor is clamped to at most `max_latency` before the first audio's arrival
//!   and never after it, whatever the platform claims ([`Timeline::push`]).
//! - Media ahead of arrival pulls the media clock back to arrival, and the held audio of the
//!   stream with it: nothing is spoken after it arrives.
//! - When audio starts arriving more than `max_latency` behind its media time, the arrivals of the
//!   next [`PROBE`] tell a stall from a gap: after a stall the lag closes (audio arrives faster than
//!   real time), after a gap it holds; a lag that grows again starts the watch afresh. Only a gap re-anchors the media clock, and on a stream
//!   without timestamps it is kept as a hole in the recording's places. Until it is decided, and
//!   after a stall, audio is judged by its media time before any re-anchoring.
//! - A stream with timestamps never guesses: a gap shows as a jump in its timestamps.
//! - A window that becomes known drops every held sample whose interval overlaps it
//!   ([`Timeline::drop_overlapping`]); audio is committed once it arrived `lookback + guard` ago
//!   and, while keypad tones are looked for, once the detector has heard past it
//!   ([`Timeline::commit_until`]).
//! - A segment never spans a window: [`Bounds::splits`] says when committed audio must start a new
//!   segment, and [`Bounds::overlaps`] is the seal-time check and the test of committed audio
//!   when a pause comes later than the look-back window ([`late_remedy`]).

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

/// How far the media clock must be pulled back within one second of arrivals before the ledger
/// says the stream runs ahead of real time (the clock is pulled back whenever media runs ahead of
/// arrival at all; jitter does that by a few milliseconds at a time).
pub const AHEAD_NOTED: Duration = Duration::milliseconds(200);
/// How long arrivals are watched, once audio lags, to tell a stall from a gap.
pub const PROBE: Duration = Duration::milliseconds(1500);
/// A lag that closes by this much within the probe is a stall (audio arriving faster than real
/// time); only one that holds within it is a gap. Jitter wider than this makes a gap look like a
/// stall, which costs audio near a pause, never lets card audio through.
pub const STALL_CLOSE: Duration = Duration::milliseconds(100);

/// Where a stream's media positions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaClock {
    /// Samples counted since the stream's start: a pause in sending is invisible in the positions.
    Counted,
    /// The protocol's own timestamps (Twilio `media.timestamp`, AudioHook positions with their
    /// `discarded` reports, RTP): a pause in sending is a jump in the positions.
    Stamped,
}

/// An interval of time in which no audio may be kept: `[from, to)`, open while `to` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Its start (a pause's instant).
    pub from: DateTime<Utc>,
    /// Its end (a resume's arrival), if it has ended.
    pub to: Option<DateTime<Utc>>,
}

/// The earliest speaking time and the latest arrival of some committed audio: all that is needed
/// to test it against a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The earliest possible speaking time of any of its samples.
    pub earliest: DateTime<Utc>,
    /// The latest arrival of any of its samples.
    pub arrival: DateTime<Utc>,
}

impl Bounds {
    /// Whether any sample could have been spoken inside `w`: it arrived after the window began and
    /// could have been spoken before it ended.
    pub fn overlaps(&self, w: &Window) -> bool {
        self.arrival >= w.from && w.to.is_none_or(|to| self.earliest < to)
    }

    /// Bounds covering both.
    pub fn merge(self, other: Bounds) -> Bounds {
        Bounds {
            earliest: self.earliest.min(other.earliest),
            arrival: self.arrival.max(other.arrival),
        }
    }

    /// Whether audio with bounds `next`, appended to a segment with these bounds, would make the
    /// segment span one of `windows` (audio before a pause and after its resume): it must start a
    /// new segment. Each alone is clear of them.
    pub fn splits(&self, next: Bounds, windows: &[Window]) -> bool {
        let both = self.merge(next);
        windows.iter().any(|w| both.overlaps(w))
    }
}

/// A run of contiguous samples that arrived together, as the timeline places it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The first sample's place in the recording, in samples from the recording's origin.
    pub place: u64,
    /// Samples (per channel).
    pub samples: u64,
    /// The earliest possible speaking time of the first sample; each later sample's is
    /// `1 / rate` later, never past the arrival.
    pub earliest: DateTime<Utc>,
    /// When it was read.
    pub arrival: DateTime<Utc>,
    /// Samples per second.
    pub rate: u32,
}

impl Span {
    /// The place one past its last sample.
    pub fn end(&self) -> u64 {
        self.place + self.samples
    }

    /// Its bounds.
    pub fn bounds(&self) -> Bounds {
        Bounds {
            earliest: self.earliest.min(self.arrival),
            arrival: self.arrival,
        }
    }

    /// How many of its leading samples overlap one of `windows` (always a prefix: they share one
    /// arrival, and a later sample's earliest time is later).
    pub fn overlapping_prefix(&self, windows: &[Window]) -> u64 {
        let mut cut = 0u64;
        for w in windows {
            if self.arrival < w.from {
                continue;
            }
            let Some(to) = w.to else {
                return self.samples;
            };
            // samples whose earliest time is before `to` overlap
            if self.earliest >= to {
                continue;
            }
            let n = samples_in(to - self.earliest, self.rate).min(self.samples);
            // a sample starting exactly at `to` is clear; one starting before it is not
            let n = if at(self.earliest, n, self.rate) < to {
                (n + 1).min(self.samples)
            } else {
                n
            };
            cut = cut.max(n);
        }
        cut
    }

    /// The span without its first `n` samples.
    pub fn skip(&self, n: u64) -> Span {
        let n = n.min(self.samples);
        Span {
            place: self.place + n,
            samples: self.samples - n,
            earliest: at(self.earliest, n, self.rate),
            arrival: self.arrival,
            rate: self.rate,
        }
    }
}

/// `n` samples after `t` at `rate`.
pub fn at(t: DateTime<Utc>, n: u64, rate: u32) -> DateTime<Utc> {
    t + samples_duration(n, rate)
}

/// The duration of `n` samples at `rate`.
pub fn samples_duration(n: u64, rate: u32) -> Duration {
    let micros = i128::from(n) * 1_000_000 / i128::from(rate.max(1));
    Duration::microseconds(i64::try_from(micros).unwrap_or(i64::MAX))
}

/// Whole samples in `d` at `rate` (rounded down; negative is zero).
pub fn samples_in(d: Duration, rate: u32) -> u64 {
    let micros = d.num_microseconds().unwrap_or(i64::MAX).max(0);
    (i128::from(micros) * i128::from(rate) / 1_000_000) as u64
}

/// The timing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineRules {
    /// `pci.max_latency`: how far before the first arrival the media clock may be anchored, and
    /// the lag past which a stall or gap is suspected.
    pub max_latency: Duration,
}

/// Why audio was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No stream is open.
    #[error("no media stream is open")]
    NoStream,
    /// The audio's position lies before audio already placed (a timestamp that went backwards);
    /// the samples already placed there are kept, these are not.
    #[error("{samples} samples at a position already placed were dropped")]
    Backwards {
        /// Samples dropped.
        samples: u64,
    },
}

/// What [`Timeline::push`] did with a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pushed {
    /// Samples held for the look-back window.
    pub held: u64,
    /// Samples dropped on arrival because their interval overlaps a window.
    pub dropped: u64,
    /// Samples dropped because their position went backwards.
    pub backwards: u64,
}

/// Something the timeline decided that the ledger must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The stream paused sending: its media clock moved `length` forward, and (on a counted stream
    /// whose audio after it was not yet committed) the recording has a hole of that length at
    /// `place`.
    Gap {
        /// Where the hole starts, in samples from the origin.
        place: u64,
        /// How long the stream sent nothing.
        length: Duration,
        /// Whether the recording's places moved (a hole played as silence).
        hole: bool,
    },
    /// The stream was held up: audio arrived late and then faster than real time; its media time
    /// stands.
    Stall {
        /// How far behind its media time the audio arrived, at most.
        lag: Duration,
    },
    /// The platform's anchor was moved to within the allowed latency of the first arrival.
    AnchorClamped {
        /// How far it moved (positive: later than claimed).
        by: Duration,
    },
    /// Media ran ahead of arrival and its clock was pulled back.
    AheadClamped {
        /// By how much.
        by: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
enum Run {
    /// Audio arrives within `max_latency` of its media time.
    Clear,
    /// Audio lags; watching whether the lag closes. `first` is the sequence number of its first
    /// span, `lag0` its lag then, `min_lag` the least lag seen since.
    Probing {
        first: u64,
        since: DateTime<Utc>,
        lag0: Duration,
        min_lag: Duration,
        place: u64,
    },
    /// A stall: audio keeps its media time until the lag is back within `max_latency`.
    Stalled,
}

#[derive(Debug, Clone)]
struct Stream {
    rate: u32,
    clock: MediaClock,
    claimed: Option<DateTime<Utc>>,
    /// Media time of position 0, once the first audio came.
    anchor: Option<DateTime<Utc>>,
    /// Place of position 0, in samples from the origin (may be negative before the first sample).
    place_base: i64,
    /// One past the highest position placed.
    next: u64,
    /// The least lag seen while clear: what a re-anchor restores.
    baseline: Option<Duration>,
    /// Sequence number of its first audio: held audio from here on is on its clock.
    first_seq: u64,
    /// How far the clock was pulled back since `ahead_since` (or the ledger was last told).
    ahead: Duration,
    ahead_since: DateTime<Utc>,
    run: Run,
}

#[derive(Debug)]
struct Held<T> {
    seq: u64,
    span: Span,
    payload: T,
}

/// One call's timeline: the streams' clocks, the places they give, and the look-back buffer of
/// audio not yet committed, with a payload of type `T` per span (the audio bytes).
#[derive(Debug)]
pub struct Timeline<T> {
    rules: TimelineRules,
    /// Wall time of place 0: the first stream's first sample.
    origin: Option<DateTime<Utc>>,
    stream: Option<Stream>,
    /// One past the highest place given to any audio (streams never overlap).
    place_end: u64,
    held: VecDeque<Held<T>>,
    /// Samples held.
    held_samples: u64,
    next_seq: u64,
    /// Highest sequence number committed, if any.
    committed_seq: Option<u64>,
    decisions: Vec<Decision>,
}

/// A payload can be cut: [`Timeline`] drops leading samples of held audio when a window becomes
/// known.
pub trait Payload {
    /// Drops the first `n` samples.
    fn skip(&mut self, n: u64);
}

impl<T: Payload> Timeline<T> {
    /// An empty timeline.
    pub fn new(rules: TimelineRules) -> Self {
        Self {
            rules,
            origin: None,
            stream: None,
            place_end: 0,
            held: VecDeque::new(),
            held_samples: 0,
            next_seq: 0,
            committed_seq: None,
            decisions: Vec::new(),
        }
    }

    /// Wall time of place 0, once audio came.
    pub fn origin(&self) -> Option<DateTime<Utc>> {
        self.origin
    }

    /// The wall time of a place.
    pub fn wall(&self, place: u64, rate: u32) -> Option<DateTime<Utc>> {
        self.origin.map(|o| at(o, place, rate))
    }

    /// Opens a stream at `rate` samples a second. `claimed` is the platform's instant of its first
    /// sample, if it says (it is clamped when the first audio arrives). A stream that reopens
    /// continues after every place already given.
    pub fn open(&mut self, rate: u32, clock: MediaClock, claimed: Option<DateTime<Utc>>) {
        self.stream = Some(Stream {
            rate,
            clock,
            claimed,
            anchor: None,
            place_base: 0,
            next: 0,
            baseline: None,
            first_seq: self.next_seq,
            ahead: Duration::zero(),
            ahead_since: DateTime::<Utc>::MIN_UTC,
            run: Run::Clear,
        });
    }

    /// Continues a recording whose audio before a restart ended at `place_end`, with place 0 at
    /// `origin`: the next stream is placed by its time from `origin`, after `place_end`.
    pub fn resume_at(&mut self, origin: DateTime<Utc>, place_end: u64) {
        self.origin = Some(origin);
        self.place_end = self.place_end.max(place_end);
    }

    /// One past the highest place given so far.
    pub fn place_end(&self) -> u64 {
        self.place_end
    }

    /// Closes the stream; held audio stays held.
    pub fn close(&mut self) {
        self.stream = None;
    }

    /// The earliest possible speaking time of the sample at stream `position` of the open stream,
    /// which arrived at `arrival`, as the media clock places it now (never after its arrival).
    pub fn earliest(&self, position: u64, arrival: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let s = self.stream.as_ref()?;
        Some(at(s.anchor?, position, s.rate).min(arrival))
    }

    /// Whether a stream is open.
    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// What the timeline decided since last asked.
    pub fn take_decisions(&mut self) -> Vec<Decision> {
        std::mem::take(&mut self.decisions)
    }

    /// Takes `samples` samples at stream position `position` (samples since the stream's start:
    /// counted, or the protocol's timestamp) that arrived at `arrival`. Samples whose interval
    /// overlaps one of `windows` are dropped; the rest are held.
    pub fn push(
        &mut self,
        position: u64,
        samples: u64,
        arrival: DateTime<Utc>,
        payload: T,
        windows: &[Window],
    ) -> Result<Pushed, Refused> {
        self.place(position, samples, arrival, Some(payload), windows)
    }

    /// Takes note of `samples` samples at `position` that arrived at `arrival` and were dropped
    /// before they reached the timeline (a socket drops audio on arrival while capture is off):
    /// they tell the clocks where the stream is (a lag, a gap) as audio would, and nothing is held.
    pub fn observe(
        &mut self,
        position: u64,
        samples: u64,
        arrival: DateTime<Utc>,
    ) -> Result<Pushed, Refused> {
        self.place(position, samples, arrival, None, &[])
    }

    fn place(
        &mut self,
        position: u64,
        samples: u64,
        arrival: DateTime<Utc>,
        mut payload: Option<T>,
        windows: &[Window],
    ) -> Result<Pushed, Refused> {
        let max_latency = self.rules.max_latency;
        let Some(s) = self.stream.as_mut() else {
            return Err(Refused::NoStream);
        };
        let rate = s.rate;
        let mut out = Pushed::default();
        // a position already placed is not placed again
        let (position, samples) = if position < s.next && s.anchor.is_some() {
            let back = (s.next - position).min(samples);
            out.backwards = back;
            if let Some(p) = payload.as_mut() {
                p.skip(back);
            }
            (position + back, samples - back)
        } else {
            (position, samples)
        };
        if samples == 0 {
            return if out.backwards > 0 {
                Err(Refused::Backwards {
                    samples: out.backwards,
                })
            } else {
                Ok(out)
            };
        }
        let end = position + samples;
        let anchor = match s.anchor {
            Some(a) => a,
            None => {
                // the first audio: its end was spoken at most max_latency before it arrived, and
                // not after
                let claimed_end = s.claimed.map(|c| at(c, end, rate));
                let lo = arrival - max_latency;
                let end_time = claimed_end.unwrap_or(arrival).clamp(lo, arrival);
                if let Some(c) = claimed_end
                    && c != end_time
                {
                    self.decisions
                        .push(Decision::AnchorClamped { by: end_time - c });
                }
                let anchor = end_time - samples_duration(end, rate);
                s.anchor = Some(anchor);
                let first = at(anchor, position, rate);
                let base_wall = match self.origin {
                    None => {
                        self.origin = Some(first);
                        first
                    }
                    Some(o) => o,
                };
                // the place of this stream's first sample: its time from the origin, after every
                // place already given
                let from_origin = samples_in(first - base_wall, rate).max(self.place_end);
                s.place_base = from_origin as i64 - position as i64;
                anchor
            }
        };
        // media ahead of arrival: nothing is spoken after it arrives, so the clock is pulled back,
        // and with it the earliest times of this stream's audio still held (a burst can reveal
        // that audio before it was spoken earlier than the clock said)
        let mut anchor = anchor;
        let media_end = at(anchor, end, rate);
        if media_end > arrival {
            let by = media_end - arrival;
            anchor -= by;
            s.anchor = Some(anchor);
            let first = s.first_seq;
            let mut widened = false;
            for h in self.held.iter_mut().filter(|h| h.seq >= first) {
                h.span.earliest -= by;
                widened = true;
            }
            if arrival - s.ahead_since > Duration::seconds(1) {
                s.ahead_since = arrival;
                s.ahead = Duration::zero();
            }
            s.ahead += by;
            if s.ahead > AHEAD_NOTED {
                self.decisions.push(Decision::AheadClamped { by: s.ahead });
                s.ahead = Duration::zero();
            }
            if widened {
                out.dropped += self.drop_overlapping(windows);
            }
        }
        let Some(s) = self.stream.as_mut() else {
            return Err(Refused::NoStream);
        };
        let lag = arrival - at(anchor, end, rate);
        let seq = self.next_seq;
        self.next_seq += 1;
        // tell a stall from a gap
        match s.run {
            // a stream with timestamps does not guess: a lag is audio arriving late
            Run::Clear if lag > max_latency && s.clock == MediaClock::Stamped => {
                s.run = Run::Stalled;
                self.decisions.push(Decision::Stall { lag });
            }
            Run::Clear if lag > max_latency => {
                s.run = Run::Probing {
                    first: seq,
                    since: arrival,
                    lag0: lag,
                    min_lag: lag,
                    place: (s.place_base + position as i64).max(0) as u64,
                };
            }
            Run::Clear => {
                s.baseline = Some(s.baseline.map_or(lag, |b| b.min(lag)).max(Duration::zero()));
            }
            Run::Probing {
                first,
                since,
                lag0,
                min_lag,
                place,
            } => {
                let min_lag = min_lag.min(lag);
                if lag - lag0 >= STALL_CLOSE {
                    // the lag grew again (another stall or gap): the run so far stays judged by
                    // its media time, and the arrivals are watched afresh from here
                    s.run = Run::Probing {
                        first: seq,
                        since: arrival,
                        lag0: lag,
                        min_lag: lag,
                        place: (s.place_base + position as i64).max(0) as u64,
                    };
                } else if lag0 - min_lag >= STALL_CLOSE {
                    s.run = Run::Stalled;
                    self.decisions.push(Decision::Stall { lag: lag0 });
                } else if arrival - since >= PROBE {
                    // the lag held at real-time pace: the stream paused sending
                    let shift = min_lag - s.baseline.unwrap_or(Duration::zero());
                    let shift = shift.max(Duration::zero());
                    let moved_committed = self.committed_seq.is_some_and(|c| c >= first);
                    let hole = !moved_committed;
                    let shift_samples = samples_in(shift, rate);
                    let shift = samples_duration(shift_samples, rate);
                    anchor += shift;
                    s.anchor = Some(anchor);
                    if hole {
                        s.place_base += shift_samples as i64;
                    }
                    for h in self.held.iter_mut().filter(|h| h.seq >= first) {
                        h.span.earliest += shift;
                        if hole {
                            h.span.place += shift_samples;
                        }
                    }
                    s.run = Run::Clear;
                    self.decisions.push(Decision::Gap {
                        place,
                        length: shift,
                        hole,
                    });
                } else {
                    s.run = Run::Probing {
                        first,
                        since,
                        lag0,
                        min_lag,
                        place,
                    };
                }
            }
            Run::Stalled => {
                if lag <= max_latency {
                    s.run = Run::Clear;
                }
            }
        }
        let place = (s.place_base + position as i64).max(0) as u64;
        let place = place.max(self.place_end);
        s.next = s.next.max(end);
        let span = Span {
            place,
            samples,
            earliest: at(anchor, position, rate).min(arrival),
            arrival,
            rate,
        };
        self.place_end = self.place_end.max(span.end());
        let Some(mut payload) = payload else {
            out.dropped = samples;
            return Ok(out);
        };
        let cut = span.overlapping_prefix(windows);
        out.dropped = cut;
        if cut < samples {
            payload.skip(cut);
            let span = span.skip(cut);
            out.held = span.samples;
            self.held_samples += span.samples;
            self.held.push_back(Held { seq, span, payload });
        }
        Ok(out)
    }

    /// Drops every held sample whose interval overlaps one of `windows` (a pause that became
    /// known); returns how many.
    pub fn drop_overlapping(&mut self, windows: &[Window]) -> u64 {
        let mut dropped = 0;
        let held_samples = &mut self.held_samples;
        self.held.retain_mut(|h| {
            let cut = h.span.overlapping_prefix(windows).min(h.span.samples);
            dropped += cut;
            *held_samples -= cut;
            if cut >= h.span.samples {
                return false;
            }
            if cut > 0 {
                h.payload.skip(cut);
                h.span = h.span.skip(cut);
            }
            true
        });
        dropped
    }

    /// Drops everything held; returns how many samples.
    pub fn drop_all(&mut self) -> u64 {
        let n = self.held_samples;
        self.held.clear();
        self.held_samples = 0;
        n
    }

    /// Takes, in order, the held audio that arrived before `limit` (audio arriving at a pause's
    /// instant is inside it) and, while the stream is open, lies at least `tail` samples before
    /// the newest audio: a keypad-tone detector must have heard past audio before it leaves memory,
    /// however long the stream stalls after it.
    pub fn commit_until(&mut self, limit: DateTime<Utc>, tail: u64) -> Vec<(Span, T)> {
        let tail = if self.stream.is_some() { tail } else { 0 };
        let place_end = self.place_end;
        let mut out = Vec::new();
        while self
            .held
            .front()
            .is_some_and(|h| h.span.arrival < limit && h.span.end() + tail <= place_end)
        {
            let h = self.held.pop_front().expect("front exists");
            self.held_samples -= h.span.samples;
            self.committed_seq = Some(h.seq);
            out.push((h.span, h.payload));
        }
        out
    }

    /// Samples held (per channel).
    pub fn held_samples(&self) -> u64 {
        self.held_samples
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Whether nothing is held but the last `tail` samples of an open stream, which
    /// [`Timeline::commit_until`] keeps.
    pub fn holds_only_tail(&self, tail: u64) -> bool {
        self.stream.is_some()
            && self
                .held
                .front()
                .is_none_or(|h| h.span.end() + tail > self.place_end)
    }

    /// The arrival of the oldest held audio.
    pub fn oldest_arrival(&self) -> Option<DateTime<Utc>> {
        self.held.front().map(|h| h.span.arrival)
    }

    /// The spans held, oldest first.
    pub fn held(&self) -> impl Iterator<Item = &Span> {
        self.held.iter().map(|h| &h.span)
    }
}

/// What to do about committed audio when a window becomes known after it was committed (a pause
/// later than the look-back window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// Nothing committed overlaps it.
    None,
    /// The open segment is cut back to its first `keep_chunks` sealed chunks.
    CutBack {
        /// Chunks kept.
        keep_chunks: u64,
    },
    /// A sealed segment overlaps it: the recording goes to `pci_review`, and the open segment, if
    /// it overlaps too, is cut back to nothing.
    PciReview {
        /// Whether the open segment must also be cut back to nothing.
        cut_open: bool,
    },
}

/// Decides the remedy for window `w` given the bounds of each chunk of the open segment (in order)
/// and of each sealed segment (DESIGN.md section 2: "a pause later than the look-back window").
pub fn late_remedy(w: &Window, open_chunks: &[Bounds], sealed: &[Bounds]) -> Remedy {
    let sealed_hit = sealed.iter().any(|b| b.overlaps(w));
    let first_hit = open_chunks.iter().position(|b| b.overlaps(w));
    match (sealed_hit, first_hit) {
        (true, hit) => Remedy::PciReview {
            cut_open: hit.is_some(),
        },
        (false, Some(0)) => Remedy::CutBack { keep_chunks: 0 },
        (false, Some(i)) => Remedy::CutBack {
            keep_chunks: i as u64,
        },
        (false, None) => Remedy::None,
    }
}

/// Which of `segments` overlap one of `windows`: the seal-time check. A recording with any is
/// quarantined.
pub fn overlapping(segments: &[Bounds], windows: &[Window]) -> Vec<usize> {
    segments
        .iter()
        .enumerate()
        .filter(|(_, b)| windows.iter().any(|w| b.overlaps(w)))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests;
