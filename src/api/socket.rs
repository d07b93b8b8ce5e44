//! What every telephony WebSocket loop (native media, Twilio, AudioHook) waits for besides the next
//! message: the batch of audio due to its call, an idle peer, a ping to send, the daemon stopping;
//! and how such a socket is closed so that the peer sees a clean close.
//!
//! A socket whose peer sends no message for `recorder.idle_seal` is closed as idle (its call then
//! seals as it does when a stream closes). A ping goes out every third of that, so a peer that is
//! gone (no TCP reset) is found by the failed write or by the silence.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::SinkExt;
use tokio::time::Instant;

use crate::recorder::MediaSink;

/// How long a closing socket waits for the peer's side of the close handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What woke a socket loop.
#[derive(Debug)]
pub(super) enum Wake {
    /// A message, an error, or the end of the stream.
    Message(Option<Result<Message, axum::Error>>),
    /// The sink's batch is due at its call.
    Flush,
    /// Nothing came from the peer for the idle limit.
    Idle,
    /// The daemon is stopping.
    Shutdown,
}

/// The timers of one telephony socket.
#[derive(Debug)]
pub(super) struct Pacer {
    idle: Duration,
    last_heard: Instant,
    next_ping: Instant,
}

impl Pacer {
    /// A pacer closing the socket after `idle` without a message from the peer.
    pub(super) fn new(idle: Duration) -> Self {
        let now = Instant::now();
        Self {
            idle,
            last_heard: now,
            next_ping: now + idle / 3,
        }
    }

    /// Waits for the next thing to do. A frame already read is taken at once.
    pub(super) async fn next(
        &mut self,
        socket: &mut WebSocket,
        sink: Option<&MediaSink>,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Wake {
        loop {
            let due = sink.and_then(MediaSink::due);
            let idle_at = self.last_heard + self.idle;
            let wake = tokio::select! {
                biased;
                () = shutdown.cancelled() => Wake::Shutdown,
                msg = socket.recv() => Wake::Message(msg),
                () = sleep_until(due), if due.is_some() => Wake::Flush,
                () = tokio::time::sleep_until(idle_at) => Wake::Idle,
                () = tokio::time::sleep_until(self.next_ping) => {
                    self.next_ping = Instant::now() + self.idle / 3;
                    if socket.send(Message::Ping(bytes::Bytes::from_static(b"cv"))).await.is_err() {
                        return Wake::Message(None);
                    }
                    continue;
                }
            };
            if let Wake::Message(Some(Ok(m))) = &wake
                && !matches!(m, Message::Pong(_))
            {
                self.last_heard = Instant::now();
            }
            return wake;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Closes a telephony socket cleanly: our close frame with `code` and `reason` (or, if the peer
/// closed first, the echo of its own), then the peer's side of the handshake, waited for briefly.
pub(super) async fn close(mut socket: WebSocket, code: u16, reason: String) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    // after the peer's close this fails (the echo is queued already), and the flush sends the echo
    if socket.send(frame).await.is_err() {
        let _ = socket.flush().await;
    }
    let drain = async { while let Some(Ok(_)) = socket.recv().await {} };
    let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
}
