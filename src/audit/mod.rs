//! The audit chain: append-only entries (time, actor, action, subject, reason, details), each carrying
//! the SHA-256 of the one before, so that altering, removing or reordering any entry is detectable.
//!
//! This module owns the hashing rule and the verifier; the catalog stores the entries and appends them
//! under its own transaction, calling [`AuditEntry::chained`] with the current head. Architecture
//! invariant: nothing but [`AuditEntry::chained`] computes an entry's hash, so the writer and the
//! verifier cannot drift apart.
//!
//! A chain cut short is still a valid chain, so the head is also signed: a [`Checkpoint`] (sequence,
//! hash, time, Ed25519 signature with the bundle signing key), taken by the [`Checkpointer`] at an
//! interval, on request and at shutdown, logged, stored, served and put in export bundles;
//! [`ChainVerifier::against`] checks a chain against one kept elsewhere.

mod chain;
mod checkpoint;
mod checkpointer;

pub use chain::{AuditEntry, ChainBreak, ChainHead, ChainVerifier, GENESIS_HASH, NewAuditEntry};
pub use checkpoint::{CHECKPOINT_FORMAT, Checkpoint, CheckpointError};
pub use checkpointer::{Checkpointer, Trigger};
