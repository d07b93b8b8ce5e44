//! Audio: codecs (G.711 mu-law and A-law), and, as later work lands, WAV rendering of decrypted
//! segments and `symphonia` probing of uploaded files.
//!
//! Architecture invariant: this module works on plaintext in memory only; it never writes audio to
//! disk and never sees a key. Sealing is the [`vault`](crate::vault)'s job.

pub mod g711;
