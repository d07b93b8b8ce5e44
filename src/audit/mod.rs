//! The audit chain: append-only entries (time, actor, action, subject, reason, details), each carrying
//! the SHA-256 of the one before, so that altering, removing or reordering any entry is detectable.
//!
//! This module owns the hashing rule and the verifier; the catalog stores the entries and appends them
//! under its own transaction, calling [`AuditEntry::chained`] with the current head. Architecture
//! invariant: nothing but [`AuditEntry::chained`] computes an entry's hash, so the writer and the
//! verifier cannot drift apart.

mod chain;
mod checkpoint;

pub use chain::{AuditEntry, ChainBreak, ChainHead, ChainVerifier, GENESIS_HASH, NewAuditEntry};
pub use checkpoint::{CHECKPOINT_FORMAT, Checkpoint, CheckpointError};
