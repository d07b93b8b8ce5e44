//! The persisted forms of the call roster (issue 16): one [`CallRow`] per call the platform
//! reported, with or without a recording, and its completeness state.
//!
//! A row is created or merged by [`Catalog::note_call`](super::Catalog::note_call) (an event, a
//! status callback, a protocol's session, an imported call-detail line) and, for every recording,
//! by the catalog itself in the transaction that stores the recording. Which state a call is in is
//! the [domain](crate::domain::completeness)'s to say; the catalog keeps what it is given, and
//! keeps a settled state for good.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::NewLedgerEntry;
use crate::audit::NewAuditEntry;
use crate::domain::completeness::CompletenessState;
use crate::domain::{CallId, RecordingId};

/// Where callvault heard of a call. Stored as bits of a set, frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallSource {
    /// A recording was stored for it (noted by the catalog itself).
    Recording,
    /// Native call events (`POST /v1/events`).
    Native,
    /// Twilio status callbacks.
    Twilio,
    /// A Genesys AudioHook session.
    AudioHook,
    /// An Asterisk AudioSocket connection.
    AudioSocket,
    /// An imported call-detail file.
    Import,
}

impl CallSource {
    /// Every source, in bit order.
    pub const ALL: [CallSource; 6] = [
        Self::Recording,
        Self::Native,
        Self::Twilio,
        Self::AudioHook,
        Self::AudioSocket,
        Self::Import,
    ];

    /// Its bit in the stored set.
    pub const fn bit(self) -> u32 {
        match self {
            Self::Recording => 1,
            Self::Native => 2,
            Self::Twilio => 4,
            Self::AudioHook => 8,
            Self::AudioSocket => 16,
            Self::Import => 32,
        }
    }

    /// Its name in reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Recording => "recording",
            Self::Native => "events",
            Self::Twilio => "twilio",
            Self::AudioHook => "audiohook",
            Self::AudioSocket => "audiosocket",
            Self::Import => "import",
        }
    }

    /// The sources in a stored set.
    pub fn from_bits(bits: u32) -> Vec<CallSource> {
        Self::ALL
            .into_iter()
            .filter(|s| bits & s.bit() != 0)
            .collect()
    }
}

/// What one source says of a call: merged into its row, never overwriting a fact already known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallNote {
    /// The call.
    pub call_id: CallId,
    /// Who said it.
    pub source: CallSource,
    /// When it was heard.
    pub seen_at: DateTime<Utc>,
    /// When the platform says the call started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the platform says it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Its length as the platform counted it.
    pub duration_ms: Option<u64>,
    /// The dialled line.
    pub line: Option<String>,
}

impl CallNote {
    /// A note that says only that the call exists.
    pub fn seen(call_id: CallId, source: CallSource, seen_at: DateTime<Utc>) -> Self {
        Self {
            call_id,
            source,
            seen_at,
            started_at: None,
            ended_at: None,
            duration_ms: None,
            line: None,
        }
    }
}

/// One call, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    /// The platform's call id.
    pub call_id: CallId,
    /// Where callvault heard of it (bits of [`CallSource`]).
    pub sources: u32,
    /// When callvault first heard of it.
    pub first_seen: DateTime<Utc>,
    /// When it started, as best known: the time reports select by.
    pub at: DateTime<Utc>,
    /// When the platform says it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the platform says it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Its length as the platform counted it.
    pub duration_ms: Option<u64>,
    /// The dialled line, as the platform gave it.
    pub line: Option<String>,
    /// Its recording, if it has one.
    pub recording_id: Option<RecordingId>,
    /// Its latest assessment, `None` before the first; final once `settled_at` is set.
    pub assessment: Option<CallAssessment>,
    /// When its state became final.
    pub settled_at: Option<DateTime<Utc>>,
}

/// A call's state as the reconciler judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAssessment {
    /// The state.
    pub state: CompletenessState,
    /// The reason's frozen code.
    pub reason: String,
    /// The audio missing, where the reason is a length.
    pub missing_ms: Option<u64>,
    /// The reason in words.
    pub detail: String,
    /// When it was judged.
    pub checked_at: DateTime<Utc>,
}

/// A call's final state, with its evidence: written once, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSettlement {
    /// The call.
    pub call_id: CallId,
    /// Its final state (its `checked_at` is the settle time).
    pub assessment: CallAssessment,
    /// The entry for its recording's ledger, when it has a recording.
    pub ledger: Option<NewLedgerEntry>,
    /// The audit entry that puts it in the chain.
    pub audit: NewAuditEntry,
}

/// Which calls a listing wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFilter {
    /// Settled calls in this state.
    State(CompletenessState),
    /// Settled calls that are neither recorded nor withheld.
    NeedsAttention,
    /// Calls not settled yet.
    Pending,
}

/// A listing of calls in `(at, call_id)` order, after `after` when set (keyset paging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallQuery {
    /// Calls that started at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Calls that started before this time.
    pub to: Option<DateTime<Utc>>,
    /// Which.
    pub filter: CallFilter,
    /// Only calls after this position: the last row's `(at, call_id)`.
    pub after: Option<(DateTime<Utc>, CallId)>,
    /// At most this many.
    pub limit: usize,
}

/// How many calls of a period are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallTotals {
    /// Settled calls by state (states with none are absent).
    pub settled: BTreeMap<CompletenessState, u64>,
    /// Calls not settled yet.
    pub pending: u64,
}

impl CallTotals {
    /// Every call counted.
    pub fn calls(&self) -> u64 {
        self.settled.values().sum::<u64>() + self.pending
    }

    /// Settled calls in `state`.
    pub fn of(&self, state: CompletenessState) -> u64 {
        self.settled.get(&state).copied().unwrap_or(0)
    }
}
