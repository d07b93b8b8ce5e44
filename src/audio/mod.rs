//! Audio: codecs (G.711 mu-law and A-law, [`g711`]), keypad-tone detection ([`dtmf`]), playback
//! rendering of a recording as one streamed WAV file ([`render`], with its [`wav`] header and the
//! [`tone`] of rendered pauses), waveform [`peaks`] for the console, and, as later work lands, `symphonia` probing of uploaded files.
//!
//! Architecture invariant: this module works on plaintext in memory only; it never writes audio to
//! disk and never reads key material (a [`VaultSegmentSource`] carries a segment's data key only
//! to hand it back to the vault's reader). Sealing and unsealing are the [`vault`](crate::vault)'s
//! job.

pub mod dtmf;
pub mod flac;
pub mod g711;
pub mod peaks;
pub mod playback;
pub mod render;
pub mod tone;
pub mod wav;

pub use render::{OutputFormat, Piece, RenderError, SegmentSource, Timeline, VaultSegmentSource};
