//! callvault: a call-recording controller and vault for contact centres.
//!
//! (Architecture notes are filled in as the modules land.)

pub mod api;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod domain;
pub mod server;
pub mod telemetry;
pub mod vault;
