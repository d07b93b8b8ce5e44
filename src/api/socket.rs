//! What every telephony WebSocket loop (native media, Twilio, AudioHook) waits for besides the next
//! message: the batch of audio due to its call, an idle peer, a ping to send, the daemon stopping;
//! and how such a socket is closed so that the peer sees a clean close.
//!
//! A socket whose peer sends no message for `recorder.idle_seal` is closed as idle (its call then
//! seals as it does when a stream closes). A ping goes out every third of that, so a peer that is
//! gone (no TCP reset) is found by the failed write or by the silence.
//!
//! The timers are made once per socket and re-armed only when they fire or a batch begins: a
//! message every 20 ms must not register and cancel timers each time.

use std::pin::Pin;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::SinkExt;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

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
pub(super) struct Pacer {
    idle: Duration,
    last_heard: Instant,
    idle_timer: Pin<Box<Sleep>>,
    ping_timer: Pin<Box<Sleep>>,
    /// When the sink's batch is due, as `due_timer` is armed for.
    due_at: Option<Instant>,
    due_timer: Pin<Box<Sleep>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("idle", &self.idle)
            .field("last_heard", &self.last_heard)
            .field("due_at", &self.due_at)
            .finish_non_exhaustive()
    }
}

impl Pacer {
    /// A pacer closing the socket after `idle` without a message from the peer, or when
    /// `shutdown` is cancelled.
    pub(super) fn new(idle: Duration, shutdown: &CancellationToken) -> Self {
        let now = Instant::now();
        Self {
            idle,
            last_heard: now,
            idle_timer: Box::pin(tokio::time::sleep_until(now + idle)),
            ping_timer: Box::pin(tokio::time::sleep_until(now + idle / 3)),
            due_at: None,
            due_timer: Box::pin(tokio::time::sleep_until(now + idle)),
            shutdown: Box::pin(shutdown.clone().cancelled_owned()),
        }
    }

    /// Waits for the next thing to do. A frame already read is taken at once.
    pub(super) async fn next(&mut self, socket: &mut WebSocket, sink: Option<&MediaSink>) -> Wake {
        loop {
            let due = sink.and_then(MediaSink::due);
            if due != self.due_at {
                self.due_at = due;
                if let Some(at) = due {
                    self.due_timer.as_mut().reset(at);
                }
            }
            let armed = self.due_at.is_some();
            let wake = tokio::select! {
                biased;
                () = self.shutdown.as_mut() => Wake::Shutdown,
                msg = socket.recv() => Wake::Message(msg),
                () = self.due_timer.as_mut(), if armed => {
                    self.due_at = None;
                    Wake::Flush
                }
                () = self.idle_timer.as_mut() => {
                    let idle_at = self.last_heard + self.idle;
                    if Instant::now() < idle_at {
                        // heard from since it was armed: re-armed from the last message
                        self.idle_timer.as_mut().reset(idle_at);
                        continue;
                    }
                    Wake::Idle
                }
                () = self.ping_timer.as_mut() => {
                    self.ping_timer.as_mut().reset(Instant::now() + self.idle / 3);
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
    // a peer that does not finish the handshake in time is simply dropped: nothing is lost by it
    let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
}
