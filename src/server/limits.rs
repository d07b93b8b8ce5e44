//! Limits on every connection of every listener, so that idle, slow or many connections cannot use
//! up the daemon's file descriptors and stop new calls or `/readyz`:
//!
//! - [`Gate`]: a cap on the connections a listener holds at once, and on those one peer address
//!   holds; a connection over either is closed as soon as it is accepted.
//! - [`IdleIo`]: a connection that moves no byte in either direction for `limits.idle_timeout` is
//!   closed (HTTP keep-alive, upgraded WebSockets, TLS, AudioSocket alike).
//! - the HTTP header-read timeout and the TLS handshake bound are applied by the accept loop in
//!   `listener.rs`.
//!
//! Each limit counts in `callvault_connections_refused_total{listener,reason}` or
//! `callvault_connections_closed_total{listener,reason}` when it bites, and
//! `callvault_connections_open{listener}` is the number held.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::config::LimitsConfig;

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener holds `limits.max_connections`.
    ListenerFull,
    /// The peer address holds `limits.max_connections_per_peer`.
    PeerFull,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ListenerFull => "listener_cap",
            Refusal::PeerFull => "peer_cap",
        }
    }
}

/// Counts the connections one listener holds, in all and per peer address.
#[derive(Debug)]
pub struct Gate {
    listener: &'static str,
    max: usize,
    per_peer: usize,
    held: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl Gate {
    /// A gate for `listener` with the caps of `limits`.
    pub fn new(listener: &'static str, limits: &LimitsConfig) -> Arc<Self> {
        Arc::new(Self {
            listener,
            max: limits.max_connections,
            per_peer: limits.max_connections_per_peer,
            held: Mutex::new((0, HashMap::new())),
        })
    }

    /// Admits a connection from `peer`, or says which cap it is over (and counts the refusal).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refusal> {
        let mut held = self.held.lock().expect("gate lock is never poisoned");
        let refusal = if held.0 >= self.max {
            Some(Refusal::ListenerFull)
        } else if held.1.get(&peer).copied().unwrap_or(0) >= self.per_peer {
            Some(Refusal::PeerFull)
        } else {
            None
        };
        if let Some(r) = refusal {
            metrics::counter!("callvault_connections_refused_total", "listener" => self.listener, "reason" => r.as_str())
                .increment(1);
            return Err(r);
        }
        held.0 += 1;
        *held.1.entry(peer).or_insert(0) += 1;
        metrics::gauge!("callvault_connections_open", "listener" => self.listener)
            .set(held.0 as f64);
        Ok(Permit {
            gate: Arc::clone(self),
            peer,
        })
    }

    /// The connections held now.
    pub fn held(&self) -> usize {
        self.held.lock().expect("gate lock is never poisoned").0
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<Gate>,
    peer: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = self.gate.held.lock().expect("gate lock is never poisoned");
        held.0 -= 1;
        if let Some(n) = held.1.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                held.1.remove(&self.peer);
            }
        }
        metrics::gauge!("callvault_connections_open", "listener" => self.gate.listener)
            .set(held.0 as f64);
    }
}

/// Counts a connection closed by a limit (`idle`, `header_read`, `tls_handshake`).
pub fn count_closed(listener: &'static str, reason: &'static str) {
    metrics::counter!("callvault_connections_closed_total", "listener" => listener, "reason" => reason)
        .increment(1);
}

/// A stream that fails with `TimedOut` once no byte has moved either way for `idle`.
///
/// The timer is checked whenever the stream is polled and would wait, so an idle connection (whose
/// reader waits for the next request or frame) and a stalled writer (a peer that stops reading)
/// are both closed; progress only moves a timestamp, and the timer is re-armed lazily.
#[derive(Debug)]
pub struct IdleIo<S> {
    inner: S,
    listener: &'static str,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    expired: bool,
}

impl<S> IdleIo<S> {
    /// Wraps `inner`, closing it after `idle` without traffic.
    pub fn new(inner: S, idle: Duration, listener: &'static str) -> Self {
        let now = Instant::now();
        Self {
            inner,
            listener,
            idle,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
            expired: false,
        }
    }

    fn moved(&mut self) {
        self.last = Instant::now();
    }

    /// On a stream that would wait: `Ready(TimedOut)` once idle too long, else arms the timer.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.expired {
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "idle timeout"));
            }
            let due = self.last + self.idle;
            if self.timer.deadline() != due {
                self.timer.as_mut().reset(due);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() >= self.last + self.idle => {
                    self.expired = true;
                    count_closed(self.listener, "idle");
                }
                // progress since the timer was armed: re-arm at the new deadline
                Poll::Ready(()) => {}
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check(cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.check(cx).map(Err),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.check(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(max: usize, per_peer: usize) -> LimitsConfig {
        LimitsConfig {
            max_connections: max,
            max_connections_per_peer: per_peer,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn the_gate_caps_the_listener_and_each_peer_and_frees_on_drop() {
        let gate = Gate::new("test", &limits(3, 2));
        let a: IpAddr = "127.0.0.2".parse().expect("ip");
        let b: IpAddr = "127.0.0.3".parse().expect("ip");
        let a1 = gate.admit(a).expect("first");
        let _a2 = gate.admit(a).expect("second");
        assert_eq!(gate.admit(a).expect_err("peer cap"), Refusal::PeerFull);
        let _b1 = gate.admit(b).expect("another peer");
        assert_eq!(gate.admit(b).expect_err("cap"), Refusal::ListenerFull);
        drop(a1);
        assert_eq!(gate.held(), 2);
        let _b2 = gate.admit(b).expect("room again");
    }

    #[tokio::test]
    async fn a_silent_stream_times_out_and_traffic_keeps_it_open() {
        let idle = Duration::from_millis(300);
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = IdleIo::new(server, idle, "test");
        let mut buf = [0u8; 8];
        // traffic every 150 ms keeps it open well past 300 ms
        let t = Instant::now();
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            client.write_all(b"x").await.expect("write");
            assert_eq!(io.read(&mut buf).await.expect("read"), 1);
        }
        assert!(t.elapsed() > 2 * idle);
        let t = Instant::now();
        let e = io.read(&mut buf).await.expect_err("idle");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(
            t.elapsed() >= idle && t.elapsed() < 3 * idle,
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_times_out_the_writer() {
        let (_client, server) = tokio::io::duplex(16);
        let mut io = IdleIo::new(server, Duration::from_millis(200), "test");
        let e = io.write_all(&[0u8; 1024]).await.expect_err("stalled");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
