//! callvault: a call-recording controller and vault for contact centres.
//!
//! (Architecture notes are filled in as the modules land.)

pub mod audit;
pub mod catalog;
pub mod config;
pub mod domain;
pub mod vault;
