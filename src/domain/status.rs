//! The recording status machine (DESIGN.md section 2): every change of a recording's status is one
//! function here, from the status it leaves to the status it enters, or a typed refusal. No other
//! code assigns a status or computes an expiry; the catalog only stores what these functions return
//! (and stores it compare-and-set on the status they started from).
//!
//! ```text
//!            seal                   expire / erase / refuse
//!   live ───────────► sealed ─────────────────────────────► expired / erased / refused
//!    │  quarantine      ▲ clear_review
//!    ├──────────► quarantined ──┐ review
//!    │ review                   ▼
//!    ├──────────────────► pci_review
//!    │ refuse (no hold)
//!    ├──────────────────► refused
//!    │ refuse_held (a hold covers it)   refuse (its last hold released)
//!    └──────────────────► refusal_held ─────────────────────► refused
//! ```
//!
//! Restriction is not a status: it is a flag beside it ([`RecordingStatus::restrict`], [`RecordingStatus::unrestrict`])
//! that no status change clears. The rules for a refusal ([`refusal_decision`]), the retention expiry
//! ([`expires_at`]), the end written at seal ([`seal_end`]) and a repeated `call.started`
//! ([`CallDetails::conflicts`]) are decided here too.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use super::Period;

/// A recording's place in its lifecycle.
///
/// The text forms ([`RecordingStatus::as_str`]) are stored in the database and are frozen: a new
/// status gets a new text, an old text is never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordingStatus {
    /// The call is in progress and audio is being captured.
    Live,
    /// The call ended and every segment is stored.
    Sealed,
    /// A card payment pause arrived after a segment was sealed: a compliance user must review it.
    PciReview,
    /// Seal-time verification failed (a segment overlaps a pause): not playable until reviewed.
    Quarantined,
    /// A tombstone: the caller refused recording, every byte of audio was destroyed.
    Refused,
    /// Deleted by the retention worker at the end of its retention period.
    Expired,
    /// Deleted on a data subject's request.
    Erased,
    /// The caller refused while a complaint hold covered the recording: capture stopped, the audio
    /// kept so far is restricted, and it is destroyed when its last hold is released.
    RefusalHeld,
}

impl RecordingStatus {
    /// Every status, for tests and listings.
    pub const ALL: [RecordingStatus; 8] = [
        Self::Live,
        Self::Sealed,
        Self::PciReview,
        Self::Quarantined,
        Self::Refused,
        Self::Expired,
        Self::Erased,
        Self::RefusalHeld,
    ];

    /// The frozen text stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Sealed => "sealed",
            Self::PciReview => "pci_review",
            Self::Quarantined => "quarantined",
            Self::Refused => "refused",
            Self::Expired => "expired",
            Self::Erased => "erased",
            Self::RefusalHeld => "refusal_held",
        }
    }

    /// Whether the recording still has audio that may be played (by whom is another rule).
    pub const fn has_audio(self) -> bool {
        matches!(
            self,
            Self::Live | Self::Sealed | Self::PciReview | Self::Quarantined | Self::RefusalHeld
        )
    }

    /// Whether its audio is destroyed: a tombstone with no personal data.
    pub const fn is_destroyed(self) -> bool {
        matches!(self, Self::Refused | Self::Expired | Self::Erased)
    }

    /// The call ended and no segment overlaps a pause. A recording marked `pci_review` during the
    /// call stays so; a refused one stays a tombstone (or held).
    pub fn seal(self) -> Result<Self, TransitionError> {
        match self {
            Self::Live => Ok(Self::Sealed),
            Self::PciReview | Self::Refused | Self::RefusalHeld => Ok(self),
            _ => Err(TransitionError::NotLive(self)),
        }
    }

    /// The call ended and the seal-time check found a segment overlapping a pause. A `pci_review`
    /// recording stays so (the same remedy, excision, applies); a refused one stays as it is.
    pub fn quarantine(self) -> Result<Self, TransitionError> {
        match self {
            Self::Live => Ok(Self::Quarantined),
            Self::PciReview | Self::Refused | Self::RefusalHeld => Ok(self),
            _ => Err(TransitionError::NotLive(self)),
        }
    }

    /// A late pause falls in stored audio: the recording needs a compliance review.
    pub fn review(self) -> Result<Self, TransitionError> {
        match self {
            Self::Live | Self::Sealed | Self::Quarantined | Self::PciReview => Ok(Self::PciReview),
            _ => Err(TransitionError::NoAudio(self)),
        }
    }

    /// No stored segment holds a late pause any more (one rule: [`review_cleared`]).
    pub fn clear_review(self) -> Result<Self, TransitionError> {
        match self {
            Self::PciReview => Ok(Self::Sealed),
            _ => Err(TransitionError::NotUnderReview(self)),
        }
    }

    /// The caller refused and no hold covers the recording: its audio is destroyed (live, or after
    /// the call within `consent.late_refusal`), or a refusal kept under a hold is destroyed once its
    /// last hold is released.
    pub fn refuse(self) -> Result<Self, TransitionError> {
        match self {
            Self::Live | Self::Sealed | Self::PciReview | Self::Quarantined | Self::RefusalHeld => {
                Ok(Self::Refused)
            }
            Self::Refused => Err(TransitionError::AlreadyRefused),
            Self::Expired | Self::Erased => Err(TransitionError::Destroyed(self)),
        }
    }

    /// The caller refused while a hold covers the recording: capture stops, the audio is kept
    /// (restricted) until the last hold is released.
    pub fn refuse_held(self) -> Result<Self, TransitionError> {
        match self {
            Self::Live | Self::Sealed | Self::PciReview | Self::Quarantined => {
                Ok(Self::RefusalHeld)
            }
            Self::Refused | Self::RefusalHeld => Err(TransitionError::AlreadyRefused),
            Self::Expired | Self::Erased => Err(TransitionError::Destroyed(self)),
        }
    }

    /// Its retention period is over (holds are the caller's to check).
    pub fn expire(self) -> Result<Self, TransitionError> {
        match self {
            Self::Sealed | Self::PciReview | Self::Quarantined => Ok(Self::Expired),
            Self::Live => Err(TransitionError::Live),
            // a refusal under a hold goes when its hold does, as a refusal, not at its expiry
            Self::RefusalHeld => Err(TransitionError::RefusalHeld),
            _ => Err(TransitionError::Destroyed(self)),
        }
    }

    /// A compliance user erases it on a data subject's request (holds are the caller's to check).
    pub fn erase(self) -> Result<Self, TransitionError> {
        match self {
            Self::Sealed | Self::PciReview | Self::Quarantined | Self::RefusalHeld => {
                Ok(Self::Erased)
            }
            Self::Live => Err(TransitionError::Live),
            _ => Err(TransitionError::Destroyed(self)),
        }
    }

    /// One segment is excised (crypto-shredded). `review_cleared`: no stored segment left holds a
    /// late pause ([`review_cleared`]), so a `pci_review` recording returns to `sealed`. The status
    /// is otherwise unchanged, also when the last segment goes (the caller's data go with it, but
    /// the recording stays what it was: a recording whose audio was cut out).
    pub fn excise(self, review_cleared: bool) -> Result<Self, TransitionError> {
        match self {
            Self::PciReview if review_cleared => Ok(Self::Sealed),
            Self::Sealed | Self::PciReview | Self::Quarantined | Self::RefusalHeld => Ok(self),
            Self::Live => Err(TransitionError::Live),
            _ => Err(TransitionError::Destroyed(self)),
        }
    }

    /// A compliance user restricts it: stored, played or exported only by compliance, no live
    /// listening. Not a status: a flag beside it that no status change clears. The status is
    /// unchanged; a tombstone has nothing to restrict.
    pub fn restrict(self) -> Result<Self, TransitionError> {
        if self.is_destroyed() {
            return Err(TransitionError::Destroyed(self));
        }
        Ok(self)
    }

    /// A compliance user lifts a restriction. A refusal kept under a hold stays restricted.
    pub fn unrestrict(self) -> Result<Self, TransitionError> {
        match self {
            Self::RefusalHeld => Err(TransitionError::RefusalHeld),
            s if s.is_destroyed() => Err(TransitionError::Destroyed(s)),
            s => Ok(s),
        }
    }
}

/// A stored status text that no [`RecordingStatus`] has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown status")]
pub struct UnknownStatus;

impl FromStr for RecordingStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(UnknownStatus)
    }
}

impl fmt::Display for RecordingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a status change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// Sealing applies to a live recording only.
    #[error("the recording is {0}, not live")]
    NotLive(RecordingStatus),
    /// The call is in progress; its audio cannot be deleted by retention or erasure.
    #[error("the recording is live")]
    Live,
    /// No late pause is under review.
    #[error("the recording is {0}, not under pci review")]
    NotUnderReview(RecordingStatus),
    /// The recording has no audio the change could act on.
    #[error("the recording is {0} and has no audio")]
    NoAudio(RecordingStatus),
    /// The caller refused already.
    #[error("the caller refused already")]
    AlreadyRefused,
    /// The audio is destroyed already.
    #[error("the recording is {0}: its audio is destroyed")]
    Destroyed(RecordingStatus),
    /// A refusal kept under a hold stays restricted and goes when its last hold is released, not
    /// at its expiry.
    #[error("the recording is refusal_held: restricted until its last hold is released")]
    RefusalHeld,
}

/// When retention deletes a recording: its end plus its policy's period, in calendar months (31 Jan
/// + 3 months = 30 Apr). `None` when the period runs past the calendar (never, in practice).
pub fn expires_at(end: DateTime<Utc>, retention: Period) -> Option<DateTime<Utc>> {
    retention.after(end)
}

/// The status a finished recording imported after the call enters with: `sealed`, or
/// `pci_review` when it must be reviewed for card data first (see [`super::import`]). An import is
/// complete when it is stored, so it never passes through `live`.
pub fn imported(review: bool) -> RecordingStatus {
    if review {
        RecordingStatus::PciReview
    } else {
        RecordingStatus::Sealed
    }
}

/// The end written at seal: a call never ends before it started, whatever order its events came in
/// (a `call.ended` before `call.started`, or a `call.started` with a later time).
pub fn seal_end(started: DateTime<Utc>, ended: DateTime<Utc>) -> DateTime<Utc> {
    ended.max(started)
}

/// The instant a pause takes effect: the earlier of the event's time and its arrival, minus
/// `pci.guard` (DESIGN.md section 2). The one place it is computed, during and after a call.
pub fn pause_instant(at: DateTime<Utc>, arrival: DateTime<Utc>, guard: Duration) -> DateTime<Utc> {
    at.min(arrival) - guard
}

/// Who asks for a refusal: the telephony platform (`consent.refused`), whose credential alone can
/// never destroy an old recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalSource {
    /// The call is in progress.
    DuringCall,
    /// The call ended at this instant.
    AfterCall {
        /// When the call ended.
        ended: DateTime<Utc>,
    },
}

/// What a refusal does (DESIGN.md section 2, consent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalDecision {
    /// Destroy every byte now: [`RecordingStatus::refuse`].
    Destroy,
    /// A hold covers it: stop capture, keep the audio restricted ([`RecordingStatus::refuse_held`]).
    Hold,
    /// Later than `consent.late_refusal` after the call: nothing is destroyed; it is ledgered as
    /// `refused_late` and counted as an erasure request for a compliance user.
    Late,
}

/// Decides a refusal that arrived at `arrival` (the server's clock: a platform's own timestamp
/// cannot make an old refusal look timely). Lateness is judged first: a late refusal is never
/// applied, held or not.
pub fn refusal_decision(
    source: RefusalSource,
    arrival: DateTime<Utc>,
    late_refusal: Duration,
    held: bool,
) -> RefusalDecision {
    if let RefusalSource::AfterCall { ended } = source
        && arrival > ended + late_refusal
    {
        return RefusalDecision::Late;
    }
    if held {
        RefusalDecision::Hold
    } else {
        RefusalDecision::Destroy
    }
}

/// Whether a `pci_review` can be cleared: no stored segment (`[start, end)` in milliseconds from
/// the recording's start) holds any late pause's instant (in the same milliseconds). The one rule
/// for entering and leaving `pci_review`: a pause at or past a stored segment's end does not hold it.
pub fn review_cleared(pauses_ms: &[u64], stored_segments_ms: &[(u64, u64)]) -> bool {
    !pauses_ms.iter().any(|p| {
        stored_segments_ms
            .iter()
            .any(|(start, end)| start <= p && p < end)
    })
}

/// Whether a late pause at `pause_ms` hits a stored segment: which segments (by their
/// `[start, end)` in milliseconds) end after the pause instant, so may hold audio after it.
pub fn segments_after_pause(pause_ms: u64, segments_ms: &[(u32, u64)]) -> Vec<u32> {
    segments_ms
        .iter()
        .filter(|(_, end)| *end > pause_ms)
        .map(|(n, _)| *n)
        .collect()
}

/// The details `call.started` gives, as the recording keeps them (the caller only as its keyed
/// tag, so comparing two never needs the number in clear).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallDetails {
    /// The dialled line.
    pub line: Option<String>,
    /// The caller's lookup tag.
    pub caller_tag: Option<[u8; 32]>,
    /// The agent.
    pub agent: Option<String>,
    /// The queue.
    pub queue: Option<String>,
}

impl CallDetails {
    /// The fields in which a repeated `call.started` differs from the first one applied (empty:
    /// the same event again, acknowledged and not applied twice). A field the first left out and
    /// the second gives is a difference too: the first fixed the policy and the caller a
    /// subject-access search finds, and a later event may not move them silently.
    pub fn conflicts(&self, again: &CallDetails) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.line != again.line {
            out.push("line");
        }
        if self.caller_tag != again.caller_tag {
            out.push("caller");
        }
        if self.agent != again.agent {
            out.push("agent");
        }
        if self.queue != again.queue {
            out.push("queue");
        }
        out
    }
}

#[cfg(test)]
mod tests;
