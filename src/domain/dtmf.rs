//! Keypad tones (DTMF) in the card-payment rule (DESIGN.md section 2): keys a caller presses are
//! card data, found as tones in the audio or signalled by the platform, and the policy's
//! `pci.dtmf` decides what capture loses for them.
//!
//! The rule, in one place ([`key_windows`]):
//! - `pause` (the default): capture pauses from the first key's onset minus `pci.guard` until
//!   `pci.dtmf_quiet` after the last key ends; a key that starts before that window closes extends
//!   it. Capture then resumes in a new segment, like after a payment pause.
//! - `mask`: only the keys themselves are dropped: a tone's exact span, or a signalled key's instant
//!   (or span) widened by `pci.guard` each side, since a platform's clock is not the audio's.
//! - `off`: nothing is dropped (the tones are stored).
//!
//! Times are wall-clock (UTC), as in [`lifecycle`](super::lifecycle): the recorder converts a
//! tone's sample span to time with the stream's anchor, and places a signalled key at the earlier
//! of its timestamp and its arrival. A key's value never enters this module.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::UnknownWord;

/// What a policy does when keys are pressed during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfMode {
    /// Pause capture around the keys, like a payment pause.
    Pause,
    /// Drop only the keys' own audio.
    Mask,
    /// Keep everything, tones included.
    Off,
}

impl DtmfMode {
    /// The word that names this mode in config.
    pub const fn as_str(self) -> &'static str {
        match self {
            DtmfMode::Pause => "pause",
            DtmfMode::Mask => "mask",
            DtmfMode::Off => "off",
        }
    }
}

impl FromStr for DtmfMode {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, UnknownWord> {
        match s {
            "pause" => Ok(DtmfMode::Pause),
            "mask" => Ok(DtmfMode::Mask),
            "off" => Ok(DtmfMode::Off),
            _ => Err(UnknownWord::new("pause, mask, off", s)),
        }
    }
}

impl fmt::Display for DtmfMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy's handling of keypad tones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPolicy {
    /// `pause`, `mask` or `off`.
    pub mode: DtmfMode,
    /// Under `pause`, how long capture stays paused after the last key.
    pub quiet: Duration,
    /// The detector's sensitivity: the weakest tone that counts, in dBm0 for each of its two
    /// frequencies (see [`crate::audio::dtmf::DetectorConfig`]).
    pub sensitivity_dbm0: i8,
}

impl Default for DtmfPolicy {
    fn default() -> Self {
        Self {
            mode: DtmfMode::Pause,
            quiet: Duration::from_secs(5),
            sensitivity_dbm0: -36,
        }
    }
}

/// How keys were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// As tones in the audio, by the detector.
    Tones,
    /// Signalled by the platform (AudioSocket DTMF frames, Twilio `dtmf` messages, RFC 4733
    /// events).
    Signalled,
    /// Both, within one window.
    Both,
}

impl KeySource {
    /// The word the ledger uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeySource::Tones => "tones",
            KeySource::Signalled => "signalled",
            KeySource::Both => "tones and signalled",
        }
    }

    fn with(self, other: KeySource) -> KeySource {
        if self == other { self } else { KeySource::Both }
    }
}

/// One key press, without its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keypress {
    /// When it began: a tone's onset, or a signalled key's instant.
    pub from: DateTime<Utc>,
    /// When it ended; `None` while a tone still sounds. A signalled key with no length ends where
    /// it began.
    pub to: Option<DateTime<Utc>>,
    /// Found as a tone ([`KeySource::Tones`]) or signalled (anything else).
    pub source: KeySource,
}

/// What capture loses for keys: audio over `[from, to)` is dropped (`to` is `None` while the window
/// is still open: a tone still sounds, or under `pause`, until its quiet time has been seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyWindow {
    /// A pause or a mask.
    pub action: KeyAction,
    /// Where dropping starts.
    pub from: DateTime<Utc>,
    /// Where capture may resume, once known.
    pub to: Option<DateTime<Utc>>,
    /// How its keys were found.
    pub source: KeySource,
    /// How many key presses it covers.
    pub keys: usize,
}

/// The two things keys can cost capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAction {
    /// A pause: a new segment follows it.
    Pause,
    /// The keys' audio alone was dropped.
    Mask,
}

impl KeyAction {
    /// The ledger's word for it.
    pub const fn ledger_action(self) -> &'static str {
        match self {
            KeyAction::Pause => "dtmf_pause",
            KeyAction::Mask => "dtmf_masked",
        }
    }
}

impl KeyWindow {
    /// Whether the window covers instant `t`.
    pub fn covers(&self, t: DateTime<Utc>) -> bool {
        t >= self.from && self.to.is_none_or(|to| t < to)
    }
}

/// The windows of audio `policy` drops for `keys` (in any order), merged where they touch, in time
/// order. `guard` is `pci.guard`.
pub fn key_windows(policy: &DtmfPolicy, guard: Duration, keys: &[Keypress]) -> Vec<KeyWindow> {
    let (action, widen) = match policy.mode {
        DtmfMode::Off => return Vec::new(),
        DtmfMode::Pause => (KeyAction::Pause, None),
        DtmfMode::Mask => (KeyAction::Mask, Some(guard)),
    };
    let mut spans: Vec<KeyWindow> = keys
        .iter()
        .map(|k| {
            // a tone's span is exact; a signalled key's time is the platform's, so it is widened
            let slack = match (k.source, widen) {
                (KeySource::Tones, _) | (_, None) => Duration::ZERO,
                (_, Some(g)) => g,
            };
            let (from, to) = match action {
                KeyAction::Pause => (k.from - guard, k.to.map(|t| t + policy.quiet)),
                KeyAction::Mask => (k.from - slack, k.to.map(|t| t + slack)),
            };
            KeyWindow {
                action,
                from,
                to,
                source: k.source,
                keys: 1,
            }
        })
        .collect();
    spans.sort_by_key(|w| w.from);
    let mut out: Vec<KeyWindow> = Vec::with_capacity(spans.len());
    for w in spans {
        match out.last_mut() {
            Some(last) if last.to.is_none_or(|to| w.from <= to) => {
                last.to = match (last.to, w.to) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                last.source = last.source.with(w.source);
                last.keys += 1;
            }
            _ => out.push(w),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{Duration as Span, TimeZone};

    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0)
            .single()
            .expect("valid time")
            + Span::milliseconds(ms)
    }

    fn tone(from: i64, to: i64) -> Keypress {
        Keypress {
            from: t(from),
            to: Some(t(to)),
            source: KeySource::Tones,
        }
    }

    fn signalled(at: i64) -> Keypress {
        Keypress {
            from: t(at),
            to: Some(t(at)),
            source: KeySource::Signalled,
        }
    }

    const GUARD: Duration = Duration::from_millis(500);

    fn policy(mode: DtmfMode) -> DtmfPolicy {
        DtmfPolicy {
            mode,
            ..DtmfPolicy::default()
        }
    }

    #[test]
    fn a_pause_runs_from_the_first_onset_less_the_guard_to_the_quiet_time_after_the_last_key() {
        // sixteen keys, 100 ms each, 300 ms apart: one window
        let keys: Vec<Keypress> = (0..16)
            .map(|i| tone(10_000 + i * 300, 10_100 + i * 300))
            .collect();
        let w = key_windows(&policy(DtmfMode::Pause), GUARD, &keys);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].action, KeyAction::Pause);
        assert_eq!(w[0].action.ledger_action(), "dtmf_pause");
        assert_eq!(w[0].from, t(9_500));
        assert_eq!(w[0].to, Some(t(10_100 + 15 * 300 + 5_000)));
        assert_eq!(w[0].keys, 16);
        assert_eq!(w[0].source, KeySource::Tones);
        assert!(w[0].covers(t(9_500)) && !w[0].covers(t(19_600)) && !w[0].covers(t(9_499)));
    }

    #[test]
    fn a_key_after_the_quiet_time_opens_a_new_pause_and_one_within_it_extends_the_pause() {
        let p = policy(DtmfMode::Pause);
        // the second key starts (less the guard) exactly where the first window ends: one window
        let w = key_windows(&p, GUARD, &[tone(0, 100), tone(5_600, 5_700)]);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].to, Some(t(10_700)));
        // a millisecond later: two
        let w = key_windows(&p, GUARD, &[tone(5_601, 5_701), tone(0, 100)]);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].from, w[0].to), (t(-500), Some(t(5_100))));
        assert_eq!((w[1].from, w[1].to), (t(5_101), Some(t(10_701))));
    }

    #[test]
    fn a_tone_still_sounding_keeps_the_window_open() {
        let sounding = Keypress {
            from: t(2_000),
            to: None,
            source: KeySource::Tones,
        };
        for mode in [DtmfMode::Pause, DtmfMode::Mask] {
            let w = key_windows(&policy(mode), GUARD, &[tone(0, 100), sounding]);
            assert_eq!(w.last().expect("a window").to, None, "{mode}");
        }
        // and a later key cannot close it
        let w = key_windows(
            &policy(DtmfMode::Pause),
            GUARD,
            &[sounding, tone(3_000, 3_100)],
        );
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].from, w[0].to), (t(1_500), None));
    }

    #[test]
    fn mask_drops_only_the_tones_and_widens_signalled_keys_by_the_guard() {
        let p = policy(DtmfMode::Mask);
        let w = key_windows(&p, GUARD, &[tone(1_000, 1_100), tone(1_400, 1_480)]);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].action.ledger_action(), "dtmf_masked");
        assert_eq!((w[0].from, w[0].to), (t(1_000), Some(t(1_100))));
        assert_eq!((w[1].from, w[1].to), (t(1_400), Some(t(1_480))));
        let w = key_windows(&p, GUARD, &[signalled(3_000), tone(3_200, 3_300)]);
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].from, w[0].to), (t(2_500), Some(t(3_500))));
        assert_eq!(w[0].source, KeySource::Both);
        assert_eq!(w[0].keys, 2);
    }

    #[test]
    fn signalled_keys_pause_the_same_way() {
        let w = key_windows(
            &policy(DtmfMode::Pause),
            GUARD,
            &[signalled(1_000), signalled(1_400)],
        );
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].from, w[0].to), (t(500), Some(t(6_400))));
        assert_eq!(w[0].source.as_str(), "signalled");
    }

    #[test]
    fn off_drops_nothing() {
        assert!(key_windows(&policy(DtmfMode::Off), GUARD, &[tone(0, 100)]).is_empty());
        assert!(key_windows(&policy(DtmfMode::Pause), GUARD, &[]).is_empty());
    }

    #[test]
    fn modes_round_trip_as_words() {
        for m in [DtmfMode::Pause, DtmfMode::Mask, DtmfMode::Off] {
            assert_eq!(m.as_str().parse(), Ok(m));
        }
        let e = "mute".parse::<DtmfMode>().expect_err("not a mode");
        assert_eq!(
            e.to_string(),
            "expected one of pause, mask, off, got \"mute\""
        );
    }
}
