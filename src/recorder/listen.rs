//! Live listen: what a call task hands to supervisors listening to it.
//!
//! A call forwards audio to listeners when it *commits* it, that is once the look-back window has
//! passed, not when it arrives: a payment event up to `pci.lookback` late still keeps card audio
//! from a listener, exactly as it keeps it from storage. Listeners hear the call about
//! `pci.lookback` behind real time. Audio dropped on arrival (in a pause, refused, after the end) is
//! never forwarded. A pause later than the look-back window cannot un-send what was already heard;
//! it is the same residual case as a sealed segment, and is audited as `pci_review`.

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::domain::MediaFormat;

/// Frames queued per call for its listeners; a listener that falls further behind loses frames
/// (it is told how many) rather than slowing the call.
pub const LISTEN_QUEUE: usize = 256;

/// One thing a listener receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenFrame {
    /// Committed audio in the stream's format, channels interleaved.
    Audio(Bytes),
    /// A pause is on from here: no audio follows until [`ListenFrame::Resumed`].
    Paused {
        /// `payment` or `agent`.
        kind: &'static str,
    },
    /// Capture resumed: audio follows again.
    Resumed,
    /// The stream reconnected with this format.
    Format(MediaFormat),
}

/// A listener's subscription to one live call.
#[derive(Debug)]
pub struct ListenFeed {
    /// The stream's format, once the media stream has opened.
    pub format: Option<MediaFormat>,
    /// Whether a pause is on at the moment of subscribing.
    pub paused: Option<&'static str>,
    /// The frames from now on.
    pub frames: broadcast::Receiver<ListenFrame>,
}
