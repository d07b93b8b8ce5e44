//! Keypad tones in the look-back buffer (DESIGN.md section 2, "Keypad tones (DTMF) are card data
//! too"): every piece of audio a call takes is fed to its [`DtmfDetector`] as it is placed, so a
//! tone is found while the audio that holds it is still in memory. A tone's onset and end become a
//! key in the call's [`Lifecycle`](crate::domain::lifecycle::Lifecycle), whose windows the timeline
//! then drops, exactly as it drops a pause; keys the platform signals are placed at their arrival.
//!
//! This module only maps the detector's sample counts back to the pieces they came in (for their
//! stream position and arrival): the timeline says when a position could have been spoken, the
//! lifecycle what the keys cost, and [`key_windows`](crate::domain::dtmf::key_windows) is the rule.
//! No digit is ever known here: the detector's events carry none that leave it.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use tracing::warn;

use super::Call;
use crate::audio::dtmf::{DetectorConfig, DtmfDetector, ToneEvent};
use crate::domain::DtmfMode;
use crate::domain::lifecycle::KeyDown;

/// How much of a stream's newest audio stays in memory, however old, while tones are looked for
/// (ms): the detector confirms a tone 25 to 38 ms after its onset, so nothing leaves memory before
/// the detector has heard far enough past it, even when the stream stalls right after.
const TAIL_MS: u64 = 50;

/// How much audio, in seconds, the map from detector samples to pieces keeps: a tone is reported
/// within a few blocks of its onset and of its end.
const TRAIL_SECS: u64 = 2;

/// One piece as the detector took it.
#[derive(Debug, Clone, Copy)]
struct Fed {
    /// The detector's sample count at its first sample.
    det: u64,
    /// Its stream position.
    position: u64,
    samples: u64,
    arrival: DateTime<Utc>,
}

/// A call's keypad-tone state.
#[derive(Debug)]
pub(super) struct Keys {
    detector: DtmfDetector,
    trail: VecDeque<Fed>,
    /// The stream position the next piece continues from; a jump (a gap) ends a sounding tone.
    next_position: Option<u64>,
    /// The key down on each channel.
    down: [Option<KeyDown>; 2],
    events: Vec<ToneEvent>,
    rate: u32,
    /// Whether a tone came while no payment pause was on (counted once per call).
    pub(super) unannounced: bool,
}

impl Keys {
    fn trail_at(&self, det: u64) -> Option<&Fed> {
        self.trail
            .iter()
            .rev()
            .find(|f| f.det <= det && det < f.det + f.samples.max(1))
    }
}

impl Call {
    /// Starts the detector for the stream's format, unless the policy keeps tones.
    pub(super) async fn start_keys(&mut self) {
        let Some(format) = self.format else { return };
        if self.keys.is_some() {
            return;
        }
        let dtmf = self.life.dtmf();
        if self.life.policy().is_some() && dtmf.mode == DtmfMode::Off {
            return;
        }
        match DtmfDetector::new(format, DetectorConfig::for_policy(&dtmf)) {
            Ok(detector) => {
                self.keys = Some(Keys {
                    detector,
                    trail: VecDeque::new(),
                    next_position: None,
                    down: [None, None],
                    events: Vec::new(),
                    rate: format.sample_rate,
                    unannounced: false,
                })
            }
            Err(e) => {
                // the stream's format is one the detector cannot take: said once, loudly
                warn!(call_id = %self.id, error = %e, "keypad tones cannot be detected in this stream");
                self.note_now(
                    "dtmf.unavailable",
                    serde_json::json!({ "error": e.to_string() }),
                )
                .await;
            }
        }
    }

    /// Feeds a piece just placed to the detector; true when a key went down or up (the windows
    /// changed).
    pub(super) fn feed_keys(
        &mut self,
        position: u64,
        samples: u64,
        arrival: DateTime<Utc>,
        bytes: &[u8],
    ) -> bool {
        let Some(k) = self.keys.as_mut() else {
            return false;
        };
        if self.life.policy().is_some() && self.life.dtmf().mode == DtmfMode::Off {
            // the call's policy keeps tones: the detector is not needed any more
            self.keys = None;
            return false;
        }
        let mut events = std::mem::take(&mut k.events);
        if k.next_position.is_some_and(|n| n != position) {
            // a gap in the stream: a tone cannot span it
            k.detector.finish(&mut events);
        }
        k.next_position = Some(position + samples);
        let det = k.detector.position(0);
        k.trail.push_back(Fed {
            det,
            position,
            samples,
            arrival,
        });
        let keep = TRAIL_SECS * u64::from(k.rate);
        while k
            .trail
            .front()
            .is_some_and(|f| f.det + f.samples + keep < det)
        {
            k.trail.pop_front();
        }
        k.detector.feed(bytes, &mut events);
        let changed = !events.is_empty();
        for e in events.drain(..) {
            self.on_tone(e, arrival);
        }
        if let Some(k) = self.keys.as_mut() {
            k.events = events;
        }
        changed
    }

    /// The earliest speaking time of detector sample `det`, by the timeline, from the piece that
    /// holds it (or, were it gone from the map, the nearest piece, counting samples from it).
    fn key_time(&self, det: u64) -> Option<DateTime<Utc>> {
        let k = self.keys.as_ref()?;
        let f = k.trail_at(det).or_else(|| {
            if k.trail.front().is_some_and(|f| det < f.det) {
                k.trail.front()
            } else {
                k.trail.back()
            }
        })?;
        let position = (f.position as i64 + det as i64 - f.det as i64).max(0) as u64;
        self.timeline.earliest(position, f.arrival)
    }

    fn on_tone(&mut self, event: ToneEvent, arrival: DateTime<Utc>) {
        match event {
            ToneEvent::Started { channel, start } => {
                let from = self.key_time(start).unwrap_or(arrival);
                let unannounced = !self.life.payment_paused_at(from);
                let key = self.life.key_down(from);
                let Some(k) = self.keys.as_mut() else { return };
                if unannounced && !k.unannounced {
                    k.unannounced = true;
                    metrics::counter!("callvault_dtmf_unannounced_calls_total").increment(1);
                }
                if let Some(slot) = k.down.get_mut(usize::from(channel)) {
                    *slot = Some(key);
                }
            }
            ToneEvent::Ended(span) => {
                let Some(k) = self.keys.as_mut() else { return };
                // the key's audio ends at the arrival of the piece holding its last sample
                let to = k
                    .trail_at(span.end.saturating_sub(1))
                    .map_or(arrival, |f| f.arrival);
                let down = k
                    .down
                    .get_mut(usize::from(span.channel))
                    .and_then(Option::take);
                let key = match down {
                    Some(key) => key,
                    None => {
                        let from = self.key_time(span.start).unwrap_or(to);
                        self.life.key_down(from)
                    }
                };
                self.life.key_up(key, to);
            }
        }
    }

    /// The stream closed: a tone still sounding ends with it.
    pub(super) fn close_keys(&mut self, at: DateTime<Utc>) {
        let Some(k) = self.keys.as_mut() else { return };
        let mut events = std::mem::take(&mut k.events);
        k.detector.finish(&mut events);
        k.next_position = None;
        for e in events.drain(..) {
            self.on_tone(e, at);
        }
        if let Some(k) = self.keys.as_mut() {
            k.events = events;
        }
    }

    /// A key the platform signalled, arriving at `arrival`.
    pub(super) fn signalled_key(&mut self, arrival: DateTime<Utc>) {
        self.life.key_signalled(arrival);
    }

    /// Ledgers the key windows that can no longer grow (ended a look-back window before `now`),
    /// or every one (`all`, when the call is sealed): `dtmf_pause` or `dtmf_masked`, with where
    /// it starts, its length, how its keys were found and how many; never what they were.
    pub(super) async fn note_keys(&mut self, now: DateTime<Utc>, all: bool) {
        let window = self.life_window();
        let noted_to = self.keys_noted_to;
        for w in self.life.key_windows() {
            if noted_to.is_some_and(|n| w.from < n) {
                continue;
            }
            let to = match w.to {
                Some(to) if all || to + window <= now => to,
                None if all => now,
                _ => break,
            };
            self.keys_noted_to = Some(to);
            self.key_windows_noted += 1;
            metrics::counter!("callvault_dtmf_windows_total", "action" => w.action.ledger_action())
                .increment(1);
            let at_ms = self.media_ms(w.from);
            self.note_now(
                w.action.ledger_action(),
                serde_json::json!({
                    "at_ms": at_ms, "length_ms": (to - w.from).num_milliseconds().max(0),
                    "found": w.source.as_str(), "keys": w.keys,
                }),
            )
            .await;
        }
    }

    /// Samples at the end of the stream that must stay held (see [`TAIL_MS`]).
    pub(super) fn key_tail(&self) -> u64 {
        self.keys
            .as_ref()
            .map_or(0, |k| TAIL_MS * u64::from(k.rate) / 1000)
    }

    /// `pci.lookback + pci.guard`.
    pub(super) fn life_window(&self) -> Duration {
        Duration::from_std(self.deps.config.pci.lookback + self.deps.config.pci.guard)
            .unwrap_or(Duration::seconds(4))
    }
}
