//! The HTTP API: routes, authentication, and the one place where errors become status codes.
//!
//! Architecture invariant: status codes and JSON DTOs never leave this module; handlers call the
//! catalog, vault and recorder through their own types.

mod admin;
pub mod auth;
mod problem;
pub mod range;

pub use admin::{Readiness, admin_router};
pub use problem::{ApiError, public_router};
