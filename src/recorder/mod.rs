//! The recorder: one task per live call, which owns the call's look-back buffer, applies its
//! lifecycle (consent, card-payment pauses), and decides *what* audio may be committed; and
//! [`persist`], the persistence layer beneath it, which decides *how* committed audio becomes
//! sealed chunks on the spool, sealed segments in the object store and rows in the catalog.

pub mod persist;

mod call;
mod listen;
mod refusal;
mod registry;

pub use listen::{LISTEN_QUEUE, ListenFeed, ListenFrame};
pub use registry::{Deps, EventOutcome, MediaSink, Recorder, RecorderError};
