//! Every call accounted for (DESIGN.md section 2): the one rule that says, from what is known of a
//! call and of its recording, which completeness state it is in, why, and whether that can still
//! change.
//!
//! Each call the platform reported ends in exactly one [`CompletenessState`]:
//! - `recorded`: its audio covers the call, pauses and the look-back around them aside;
//! - `partial`: audio is missing beyond that allowance (the stream opened late or ended early, the
//!   daemon crashed, audio was lost), or its segments are still waiting to be uploaded;
//! - `not_recorded`: no audio at all (no stream opened, or one opened and stored nothing);
//! - `withheld`: nothing, or only part, kept on purpose (the caller refused; explicit consent was
//!   never given);
//! - `failed`: the recording is quarantined, or its audio never reached the store.
//!
//! The state is judged by [`assess`], which also says whether the call is settled: a state may
//! still change until `completeness.settle` after the call ended (late media, uploads that retry,
//! events that come after the stream, a refusal up to `consent.late_refusal` after the call). The
//! reconciler stores the settled state once, as evidence; nothing else decides a state.
//!
//! Architecture invariant: no I/O here. The caller reads the catalog and hands over [`CallFacts`];
//! the arithmetic of what counts as missing is this module's alone.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use super::RecordingStatus;

/// How a call ended up, as far as its recording goes.
///
/// The text forms ([`CompletenessState::as_str`]) are stored and shown in reports: they are
/// frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CompletenessState {
    /// The audio covers the call.
    Recorded,
    /// Audio is missing beyond pauses and the look-back window.
    Partial,
    /// No audio at all.
    NotRecorded,
    /// Nothing, or only part, kept on purpose.
    Withheld,
    /// The recording failed: quarantined, or never uploaded.
    Failed,
}

impl CompletenessState {
    /// Every state, in report order.
    pub const ALL: [CompletenessState; 5] = [
        Self::Recorded,
        Self::Partial,
        Self::NotRecorded,
        Self::Withheld,
        Self::Failed,
    ];

    /// The frozen text stored in the catalog and shown in reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Recorded => "recorded",
            Self::Partial => "partial",
            Self::NotRecorded => "not_recorded",
            Self::Withheld => "withheld",
            Self::Failed => "failed",
        }
    }

    /// Whether a report lists the call: every call that is neither recorded nor withheld on
    /// purpose needs someone to look at it.
    pub const fn needs_attention(self) -> bool {
        !matches!(self, Self::Recorded | Self::Withheld)
    }
}

impl fmt::Display for CompletenessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored state text that no [`CompletenessState`] has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown completeness state")]
pub struct UnknownState;

impl FromStr for CompletenessState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, UnknownState> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(UnknownState)
    }
}

/// Why a call is in its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `recorded`: the audio covers the call.
    Complete,
    /// `not_recorded`: no media stream opened for the call.
    NoMedia,
    /// `not_recorded`: a media stream opened but no audio was stored.
    NoAudio,
    /// `partial`: the stream ended this long before the call did.
    StreamEndedEarly {
        /// Audio missing, beyond pauses and the look-back allowance.
        missing_ms: u64,
    },
    /// `partial`: the audio is shorter than the call by this much beyond pauses and look-back.
    ShortAudio {
        /// Audio missing.
        missing_ms: u64,
    },
    /// `partial`: the ledger names audio lost (a crash, a restart, a reconnect, a full spool).
    AudioLost {
        /// Audio missing.
        missing_ms: u64,
        /// The first cause the ledger names, e.g. `crash`.
        cause: String,
    },
    /// `partial` until settled: segments are still waiting to be uploaded.
    UploadPending {
        /// How many.
        segments: u32,
    },
    /// `withheld`: the caller refused recording.
    Refused,
    /// `withheld`: the policy asks for explicit consent and it was never given.
    ConsentNotGiven,
    /// `failed`: the seal-time check quarantined the recording.
    Quarantined,
    /// `failed`: segments never reached the object store by the settle time.
    UploadFailed {
        /// How many.
        segments: u32,
    },
}

impl Reason {
    /// The frozen code stored beside the state.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::NoMedia => "no_media",
            Self::NoAudio => "no_audio",
            Self::StreamEndedEarly { .. } => "stream_ended_early",
            Self::ShortAudio { .. } => "short_audio",
            Self::AudioLost { .. } => "audio_lost",
            Self::UploadPending { .. } => "upload_pending",
            Self::Refused => "refused",
            Self::ConsentNotGiven => "consent_not_given",
            Self::Quarantined => "quarantined",
            Self::UploadFailed { .. } => "upload_failed",
        }
    }

    /// The audio missing, where the reason is a length.
    pub const fn missing_ms(&self) -> Option<u64> {
        match self {
            Self::StreamEndedEarly { missing_ms }
            | Self::ShortAudio { missing_ms }
            | Self::AudioLost { missing_ms, .. } => Some(*missing_ms),
            _ => None,
        }
    }
}

/// Seconds with one decimal, as people read them in a report.
fn seconds(ms: u64) -> String {
    format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Complete => f.write_str("audio covers the call"),
            Self::NoMedia => f.write_str("no media stream opened"),
            Self::NoAudio => f.write_str("a media stream opened but no audio was stored"),
            Self::StreamEndedEarly { missing_ms } => write!(
                f,
                "stream ended early: {} before the call ended, beyond pauses and look-back",
                seconds(*missing_ms)
            ),
            Self::ShortAudio { missing_ms } => write!(
                f,
                "audio shorter than the call by {} beyond pauses and look-back",
                seconds(*missing_ms)
            ),
            Self::AudioLost { missing_ms, cause } => {
                write!(f, "{} of audio lost: {cause}", seconds(*missing_ms))
            }
            Self::UploadPending { segments } => {
                write!(f, "{segments} segment(s) waiting to be uploaded")
            }
            Self::Refused => f.write_str("the caller refused recording"),
            Self::ConsentNotGiven => f.write_str("explicit consent was never given"),
            Self::Quarantined => f.write_str("recording quarantined at seal"),
            Self::UploadFailed { segments } => write!(
                f,
                "upload failed: {segments} segment(s) never reached the store"
            ),
        }
    }
}

/// A stretch of time: `to` is `None` while it is still open (a pause never resumed runs to the end
/// of the call: fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Its start.
    pub from: DateTime<Utc>,
    /// Its end, if it has one.
    pub to: Option<DateTime<Utc>>,
}

/// One segment of a recording, as far as completeness goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    /// Where its audio starts, in milliseconds from the recording's start.
    pub start_ms: u64,
    /// Where it ends.
    pub end_ms: u64,
    /// Whether it reached the object store (uploaded, or since excised or deleted).
    pub uploaded: bool,
}

/// Audio the recording's ledger says was lost, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// The cause as the ledger names it (`crash`, `restart`, `reconnect`, `spool_full`...).
    pub cause: String,
    /// How long, when the ledger says.
    pub ms: u64,
}

/// What the catalog knows of a call's recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFacts {
    /// Its status.
    pub status: RecordingStatus,
    /// Where its media times count from.
    pub started_at: DateTime<Utc>,
    /// When it ended, once sealed.
    pub ended_at: Option<DateTime<Utc>>,
    /// Its policy asks for explicit consent.
    pub explicit_consent: bool,
    /// Consent was given during the call.
    pub consent_given: bool,
    /// The caller refused (applied: the audio was destroyed or is kept under a hold).
    pub refused: bool,
    /// A media stream opened for it.
    pub media_opened: bool,
    /// Its segments.
    pub segments: Vec<SegmentSpan>,
    /// Its pauses (payment, agent, keypad tones), each of which the policy kept out on purpose.
    pub pauses: Vec<Window>,
    /// Stretches in which the stream sent nothing because nothing was said (silence suppression):
    /// not missing audio.
    pub silences: Vec<Window>,
    /// Audio the ledger names as lost.
    pub losses: Vec<Loss>,
}

/// What is known of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    /// When callvault first heard of it.
    pub first_seen: DateTime<Utc>,
    /// When the platform says it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the platform says it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// The call's length as the platform counted it (Twilio's `CallDuration`, a call-detail file).
    pub duration_ms: Option<u64>,
    /// Its recording, if it has one.
    pub recording: Option<RecordingFacts>,
}

/// The tolerances of the rule, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How long after a call ends its state may still change.
    pub settle: Duration,
    /// Audio missing up to this much (stream set-up, clock skew) is not counted.
    pub tolerance: Duration,
    /// What each pause may cost beside its own length: `pci.lookback` plus `pci.guard`.
    pub lookback: Duration,
}

/// Longest a call may stay unsettled when no end is ever known for it (a recording left live, a
/// call known only from a `call.started`): it is settled on what is known then.
pub const LONGEST_CALL: Duration = Duration::days(1);

/// A call's state, its reason, and whether it is final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The state.
    pub state: CompletenessState,
    /// Why.
    pub reason: Reason,
    /// Whether it can no longer change: its settle time has passed.
    pub settled: bool,
}

impl CallFacts {
    /// When the call started, as best known: the platform's word, else its recording's start, else
    /// when callvault heard of it.
    pub fn start(&self) -> DateTime<Utc> {
        self.started_at
            .or(self.recording.as_ref().map(|r| r.started_at))
            .unwrap_or(self.first_seen)
    }

    /// When the call ended, as best known: the platform's end, else its start plus its length as
    /// the platform counted it, else its recording's end.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.ended_at
            .or_else(|| {
                let d = i64::try_from(self.duration_ms?).ok()?;
                Some(self.start() + Duration::milliseconds(d))
            })
            .or(self.recording.as_ref().and_then(|r| r.ended_at))
    }

    /// When its state stops changing: `settle` after the call ended and its recording was sealed.
    /// A call whose recording is still live, or with no end ever known, settles [`LONGEST_CALL`]
    /// (plus `settle`) after it was first seen, on what is known then.
    pub fn settles_at(&self, rules: &Rules) -> DateTime<Utc> {
        let longest = self.first_seen + LONGEST_CALL + rules.settle;
        let rec = self.recording.as_ref();
        if rec.is_some_and(|r| r.status == RecordingStatus::Live) {
            return longest;
        }
        [self.end(), rec.and_then(|r| r.ended_at)]
            .into_iter()
            .flatten()
            .max()
            .map_or(longest, |end| end + rules.settle)
    }
}

/// Judges a call at `now`: its state, its reason, and whether it is settled.
pub fn assess(facts: &CallFacts, rules: &Rules, now: DateTime<Utc>) -> Verdict {
    let settled = now >= facts.settles_at(rules);
    let (state, reason) = judge(facts, rules, settled);
    Verdict {
        state,
        reason,
        settled,
    }
}

fn judge(facts: &CallFacts, rules: &Rules, settled: bool) -> (CompletenessState, Reason) {
    use CompletenessState as S;
    let Some(rec) = &facts.recording else {
        return (S::NotRecorded, Reason::NoMedia);
    };
    if rec.refused
        || matches!(
            rec.status,
            RecordingStatus::Refused | RecordingStatus::RefusalHeld
        )
    {
        return (S::Withheld, Reason::Refused);
    }
    if rec.explicit_consent && !rec.consent_given {
        return (S::Withheld, Reason::ConsentNotGiven);
    }
    if rec.status == RecordingStatus::Quarantined {
        return (S::Failed, Reason::Quarantined);
    }
    let audio: Vec<&SegmentSpan> = rec
        .segments
        .iter()
        .filter(|s| s.end_ms > s.start_ms)
        .collect();
    if audio.is_empty() {
        return if rec.media_opened {
            (S::NotRecorded, Reason::NoAudio)
        } else {
            (S::NotRecorded, Reason::NoMedia)
        };
    }
    let waiting =
        u32::try_from(rec.segments.iter().filter(|s| !s.uploaded).count()).unwrap_or(u32::MAX);
    if waiting > 0 {
        return if settled {
            (S::Failed, Reason::UploadFailed { segments: waiting })
        } else {
            (S::Partial, Reason::UploadPending { segments: waiting })
        };
    }
    let start = facts.start();
    let Some(end) = facts.end().filter(|e| *e > start) else {
        // no length to compare with: the audio is all there is to know
        return (S::Recorded, Reason::Complete);
    };
    let at = |ms: u64| rec.started_at + Duration::milliseconds(i64::try_from(ms).unwrap_or(0));
    let mut covered: Vec<(DateTime<Utc>, DateTime<Utc>)> = audio
        .iter()
        .map(|s| (at(s.start_ms), at(s.end_ms)))
        .collect();
    let close = |w: &Window| (w.from, w.to.unwrap_or(end));
    covered.extend(rec.pauses.iter().map(close));
    covered.extend(rec.silences.iter().map(close));
    let missing = (end - start) - measure(&mut covered, start, end);
    let pauses = i32::try_from(rec.pauses.len()).unwrap_or(i32::MAX);
    let allowance = rules.tolerance + rules.lookback * pauses;
    if missing <= allowance {
        return (S::Recorded, Reason::Complete);
    }
    let missing_ms = u64::try_from(missing.num_milliseconds()).unwrap_or(0);
    if let Some(loss) = rec.losses.first() {
        return (
            S::Partial,
            Reason::AudioLost {
                missing_ms,
                cause: loss.cause.clone(),
            },
        );
    }
    // what is missing at the end, after the last audio (or pause) up to the call's end
    let last = covered
        .iter()
        .map(|(_, to)| *to)
        .max()
        .unwrap_or(start)
        .min(end);
    let tail = end - last;
    if tail > rules.tolerance && tail * 2 >= missing {
        (S::Partial, Reason::StreamEndedEarly { missing_ms })
    } else {
        (S::Partial, Reason::ShortAudio { missing_ms })
    }
}

/// The length of the union of `spans` within `[from, to)`.
fn measure(
    spans: &mut [(DateTime<Utc>, DateTime<Utc>)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Duration {
    spans.sort();
    let mut total = Duration::zero();
    let mut reached = from;
    for &(a, b) in spans.iter() {
        let (a, b) = (a.max(reached), b.min(to));
        if b > a {
            total += b - a;
            reached = b;
        }
    }
    total
}

#[cfg(test)]
mod tests;
