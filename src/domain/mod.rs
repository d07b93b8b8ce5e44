//! Pure rules of the domain, with no I/O: identifiers, codecs, time, policies, the call lifecycle and
//! its two clocks ([`timeline`]), the recording status machine ([`status`]), keypad tones in the
//! payment rule ([`dtmf`]), retention and hold arithmetic, E.164 normalisation, and each call's
//! completeness state ([`completeness`]).
//!
//! Architecture invariant: nothing here reads a file, a socket, or a clock other than through the
//! [`Clock`] trait, so every rule can be unit-tested with a [`ManualClock`].

mod caller;
mod codec;
pub mod completeness;
pub mod dtmf;
mod event;
mod ids;
pub mod import;
pub mod lifecycle;
mod period;
mod policy;
mod role;
pub mod status;
mod time;
pub mod timeline;

pub use caller::{CallerNumber, CallerNumberError, DEFAULT_REGION, mask_e164};
pub use codec::Codec;
pub use dtmf::{DtmfMode, DtmfPolicy};
pub use event::{CallEvent, EventKind, MediaFormat};
pub use ids::{CallId, IdError, KeyId, RecordingId, SegmentNo};
pub use period::{Period, PeriodError};
pub use policy::{ConsentMode, PauseRender, Policy, UnknownWord};
pub use role::Role;
pub use status::{RecordingStatus, TransitionError, UnknownStatus};
pub use time::{Clock, ManualClock, SystemClock};
