//! The audit chain.
