//! The SIPREC recording server's listeners (RFC 7866): SIP over UDP, TCP and TLS, the RTP port
//! pool, and the limits on sessions.
//!
//! Each message is parsed by [`crate::ingest::siprec`]; one outside `siprec.allow` is dropped
//! unanswered. `OPTIONS` is answered here; a new INVITE is checked (`Require`, limits, body, SDP)
//! and, if it can be recorded, becomes a session task ([`session`]) that owns its RTP sockets,
//! its dialog and the call's [`MediaSink`](crate::recorder::MediaSink). Every later request of the
//! dialog goes to that task by `Call-ID`. A malformed message gets its 4xx and touches no
//! session; an INVITE over `siprec.max_sessions` or `siprec.max_new_per_second` gets `503` with
//! `Retry-After`.

mod session;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::limits::{Gate, IdleIo};
use crate::catalog::Catalog;
use crate::config::{LimitsConfig, SiprecConfig, TlsConfig};
use crate::domain::Clock;
use crate::ingest::siprec::sip::{self, Message, Method, Response, StartLine};
use crate::ingest::siprec::{SipError, body, sdp, unsupported};
use crate::recorder::Recorder;
use crate::vault::CallerKeys;

/// Methods this server answers.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE";
/// Requests queued per session before the listener answers `503` for it.
const SESSION_QUEUE: usize = 64;
/// Largest buffered input on a stream connection.
const MAX_STREAM_BUFFER: usize = sip::MAX_MESSAGE + 16 * 1024;

/// Where a message came from, and how to answer it.
#[derive(Debug, Clone)]
pub enum Transport {
    /// A UDP datagram: answered from the listening socket to the source address.
    Udp {
        /// The listening socket.
        socket: Arc<UdpSocket>,
        /// The sender.
        peer: SocketAddr,
    },
    /// A TCP or TLS connection: answered on it.
    Stream {
        /// The connection's writer.
        tx: mpsc::Sender<Vec<u8>>,
        /// The peer.
        peer: SocketAddr,
        /// `TCP` or `TLS`.
        name: &'static str,
    },
}

impl Transport {
    /// Sends bytes; false when the connection is gone or its queue is full.
    pub async fn send(&self, bytes: Vec<u8>) -> bool {
        match self {
            Transport::Udp { socket, peer } => socket.send_to(&bytes, peer).await.is_ok(),
            Transport::Stream { tx, .. } => tx.try_send(bytes).is_ok(),
        }
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        match self {
            Transport::Udp { peer, .. } | Transport::Stream { peer, .. } => *peer,
        }
    }

    /// `UDP`, `TCP` or `TLS`.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Udp { .. } => "UDP",
            Transport::Stream { name, .. } => name,
        }
    }

    /// Whether retransmissions are this server's job (RFC 3261 section 17.2.1: unreliable only).
    pub fn unreliable(&self) -> bool {
        matches!(self, Transport::Udp { .. })
    }
}

/// One request for a session task.
#[derive(Debug)]
pub(crate) struct Inbound {
    msg: Message,
    transport: Transport,
}

/// A block of four RTP ports (two streams, each with its RTCP port above it).
#[derive(Debug)]
pub(crate) struct PortBlock {
    base: u16,
    pool: Arc<PortPool>,
}

impl PortBlock {
    /// The first port.
    pub(crate) fn base(&self) -> u16 {
        self.base
    }
}

impl Drop for PortBlock {
    fn drop(&mut self) {
        self.pool
            .free
            .lock()
            .expect("port pool lock is never poisoned")
            .push_back(self.base);
    }
}

/// The free blocks of `siprec.rtp_ports`, reused oldest first so a late packet of an old session
/// rarely reaches a new one. Held only to pop or push, never across an `.await`.
#[derive(Debug)]
pub(crate) struct PortPool {
    free: Mutex<VecDeque<u16>>,
}

impl PortPool {
    fn new((first, last): (u16, u16)) -> Arc<Self> {
        let start = first.div_ceil(4) * 4;
        let free = (0..)
            .map(|i: u32| u32::from(start) + 4 * i)
            .take_while(|p| p + 3 <= u32::from(last))
            .map(|p| p as u16)
            .collect();
        Arc::new(Self {
            free: Mutex::new(free),
        })
    }

    fn acquire(self: &Arc<Self>) -> Option<PortBlock> {
        let base = self
            .free
            .lock()
            .expect("port pool lock is never poisoned")
            .pop_front()?;
        Some(PortBlock {
            base,
            pool: Arc::clone(self),
        })
    }
}

/// What every session needs from the daemon.
#[derive(Clone)]
pub(crate) struct Server {
    pub(crate) config: Arc<SiprecConfig>,
    pub(crate) media_ip: IpAddr,
    pub(crate) recorder: Recorder,
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) callers: CallerKeys,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ports: Arc<PortPool>,
    /// Live sessions by SIP `Call-ID`. Held only to look up, insert or remove, never across an
    /// `.await`: a std mutex is enough.
    sessions: Arc<Mutex<HashMap<String, mpsc::Sender<Inbound>>>>,
    /// New sessions in the current second: (second, count).
    admitted: Arc<Mutex<(u64, u32)>>,
    tags: Arc<AtomicU64>,
    pub(crate) shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Server {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Inbound>>> {
        self.sessions
            .lock()
            .expect("the session map lock is never poisoned: no panics while held")
    }

    /// A fresh tag or branch suffix.
    pub(crate) fn token(&self) -> String {
        let n = self.tags.fetch_add(1, Ordering::Relaxed);
        format!("{:x}{n:x}", rand::random::<u32>())
    }

    pub(crate) fn finished(&self, call_id: &str) {
        let mut s = self.sessions();
        s.remove(call_id);
        metrics::gauge!("callvault_siprec_sessions").set(s.len() as f64);
    }

    /// Whether a new session may start now: under `max_sessions` and this second's
    /// `max_new_per_second`.
    fn admit(&self, live: usize) -> bool {
        if live >= self.config.max_sessions {
            return false;
        }
        let second = self.clock.now().timestamp() as u64;
        let mut a = self
            .admitted
            .lock()
            .expect("the rate lock is never poisoned");
        if a.0 != second {
            *a = (second, 0);
        }
        if a.1 >= self.config.max_new_per_second {
            return false;
        }
        a.1 += 1;
        true
    }
}

/// Starts the configured SIP listeners and serves until `shutdown`; a bind failure is logged.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    config: SiprecConfig,
    limits: LimitsConfig,
    recorder: Recorder,
    catalog: Arc<dyn Catalog>,
    callers: CallerKeys,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    if !config.enabled() {
        return;
    }
    let Some(media_ip) = config.media_ip() else {
        warn!("siprec has no media address; not listening");
        return;
    };
    let tracker = TaskTracker::new();
    let server = Server {
        ports: PortPool::new(config.rtp_ports),
        config: Arc::new(config.clone()),
        media_ip,
        recorder,
        catalog,
        callers,
        clock,
        sessions: Arc::new(Mutex::new(HashMap::new())),
        admitted: Arc::new(Mutex::new((0, 0))),
        tags: Arc::new(AtomicU64::new(1)),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    };
    if let Some(addr) = config.udp {
        match UdpSocket::bind(addr).await {
            Ok(s) => {
                info!(%addr, "siprec listening on udp");
                tracker.spawn(udp(server.clone(), Arc::new(s)));
            }
            Err(e) => warn!(%addr, error = %e, "cannot bind the siprec udp listener"),
        }
    }
    if let Some(addr) = config.tcp {
        match TcpListener::bind(addr).await {
            Ok(l) => {
                info!(%addr, "siprec listening on tcp");
                tracker.spawn(stream_listener(server.clone(), l, None, limits.clone()));
            }
            Err(e) => warn!(%addr, error = %e, "cannot bind the siprec tcp listener"),
        }
    }
    if let Some(tls) = &config.tls {
        let acceptor = super::tls::acceptor(&TlsConfig {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
        });
        match (acceptor, TcpListener::bind(tls.listen).await) {
            (Ok(a), Ok(l)) => {
                info!(addr = %tls.listen, "siprec listening on tls");
                tracker.spawn(stream_listener(server.clone(), l, Some(a), limits.clone()));
            }
            (Err(e), _) => warn!(error = %e, "siprec tls is misconfigured; not listening"),
            (_, Err(e)) => {
                warn!(addr = %tls.listen, error = %e, "cannot bind the siprec tls listener")
            }
        }
    }
    shutdown.cancelled().await;
    tracker.close();
    tracker.wait().await;
}

async fn udp(server: Server, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; sip::MAX_MESSAGE];
    loop {
        let (n, peer) = tokio::select! {
            () = server.shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "siprec udp receive failed");
                    continue;
                }
            },
        };
        if !server.config.allows(peer.ip()) {
            debug!(%peer, "sip from outside siprec.allow dropped");
            metrics::counter!("callvault_siprec_rejected_total", "reason" => "not_allowed")
                .increment(1);
            continue;
        }
        let data = &buf[..n];
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            continue; // a keep-alive
        }
        let transport = Transport::Udp {
            socket: Arc::clone(&socket),
            peer,
        };
        match sip::parse_datagram(data) {
            Ok(msg) => dispatch(&server, msg, transport).await,
            Err(e) => refuse_raw(data, &e, &transport).await,
        }
    }
}

async fn stream_listener(
    server: Server,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: LimitsConfig,
) {
    let name = if tls.is_some() {
        "siprec-tls"
    } else {
        "siprec-tcp"
    };
    let gate = Gate::new(name, &limits);
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = server.shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "siprec accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if !server.config.allows(peer.ip()) {
            warn!(%peer, "sip connection from outside siprec.allow refused");
            metrics::counter!("callvault_siprec_rejected_total", "reason" => "not_allowed")
                .increment(1);
            continue;
        }
        let Ok(permit) = gate.admit(peer.ip()) else {
            warn!(%peer, "sip connection over limits.max_connections refused");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        let tls = tls.clone();
        let handshake = limits.tls_handshake_timeout;
        let idle = limits.idle_timeout;
        connections.spawn(async move {
            let _permit = permit;
            let io = IdleIo::new(stream, idle, name);
            match tls {
                None => connection(server, io, peer, "TCP").await,
                Some(a) => match tokio::time::timeout(handshake, a.accept(io)).await {
                    Ok(Ok(s)) => connection(server, s, peer, "TLS").await,
                    Ok(Err(e)) => debug!(%peer, error = %e, "siprec tls handshake failed"),
                    Err(_) => debug!(%peer, "siprec tls handshake timed out"),
                },
            }
        });
    }
    connections.close();
    connections.wait().await;
}

async fn connection<S>(server: Server, stream: S, peer: SocketAddr, name: &'static str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let transport = Transport::Stream { tx, peer, name };
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16 * 1024];
    'conn: loop {
        let n = tokio::select! {
            () = server.shutdown.cancelled() => break,
            r = rd.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match sip::parse_stream(&buf) {
                Ok(Some((msg, used))) => {
                    buf.drain(..used);
                    dispatch(&server, msg, transport.clone()).await;
                }
                Ok(None) => break,
                Err(e) => {
                    // the stream cannot be framed past this: answer, then close
                    refuse_raw(&buf, &e, &transport).await;
                    break 'conn;
                }
            }
        }
        if buf.len() > MAX_STREAM_BUFFER {
            refuse_raw(&buf, &SipError::TooLarge, &transport).await;
            break;
        }
    }
    drop(transport);
    let _ = writer.await;
}

/// Answers a message that did not parse, when enough of it is readable to address a response.
async fn refuse_raw(data: &[u8], e: &SipError, transport: &Transport) {
    metrics::counter!("callvault_siprec_rejected_total", "reason" => "malformed").increment(1);
    warn!(peer = %transport.peer(), error = %e, "malformed sip message");
    // keep what headers can be read, to build a response the sender can match
    let head_end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(data.len().min(sip::MAX_MESSAGE));
    let head = String::from_utf8_lossy(&data[..head_end]);
    let Some(first) = head.lines().next() else {
        return;
    };
    if first.starts_with("SIP/") {
        return; // never answer a response
    }
    let kept: String = head
        .lines()
        .skip(1)
        .filter(|l| {
            let n = l
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(
                n.as_str(),
                "via" | "v" | "from" | "f" | "to" | "t" | "call-id" | "i" | "cseq"
            )
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    let text = format!("OPTIONS sip:x SIP/2.0\r\n{kept}\r\n");
    let Ok(stub) = sip::parse_datagram(text.as_bytes()) else {
        return;
    };
    if stub.header("via").is_none() {
        return;
    }
    let (code, reason) = e.status();
    let r = Response::to(&stub, code, reason, None);
    transport.send(r.encode()).await;
}

async fn reply(transport: &Transport, r: Response) {
    if !transport.send(r.encode()).await {
        debug!(peer = %transport.peer(), "a sip response could not be sent");
    }
}

fn options_response(msg: &Message) -> Response {
    Response::to(msg, 200, "OK", Some("srs"))
        .header("Allow", ALLOW)
        .header("Accept", "application/sdp, application/rs-metadata+xml, application/rs-metadata, multipart/mixed")
        .header("Supported", "siprec")
}

async fn dispatch(server: &Server, msg: Message, transport: Transport) {
    let method = match &msg.start {
        StartLine::Response { .. } => {
            // answers to our BYE: the session is gone or going; nothing waits for them
            return;
        }
        StartLine::Request { method, .. } => method.clone(),
    };
    if let Err(e) = msg.check_request() {
        if method != Method::Ack {
            let (code, reason) = e.status();
            warn!(peer = %transport.peer(), error = %e, "malformed sip request");
            metrics::counter!("callvault_siprec_rejected_total", "reason" => "malformed")
                .increment(1);
            reply(&transport, Response::to(&msg, code, reason, None)).await;
        }
        return;
    }
    let call_id = msg.call_id().expect("checked").to_owned();
    let existing = server.sessions().get(&call_id).cloned();
    if let Some(tx) = existing {
        if method == Method::Options {
            reply(&transport, options_response(&msg)).await;
            return;
        }
        let busy = Response::to(&msg, 503, "Service Unavailable", None).header("Retry-After", "1");
        if let Err(e) = tx.try_send(Inbound {
            msg,
            transport: transport.clone(),
        }) {
            let msg = match e {
                mpsc::error::TrySendError::Full(i) | mpsc::error::TrySendError::Closed(i) => i.msg,
            };
            if msg.method() != Some(&Method::Ack) {
                reply(&transport, busy).await;
            }
        }
        return;
    }
    match method {
        Method::Options => reply(&transport, options_response(&msg)).await,
        Method::Invite if msg.to_tag().is_none() => new_session(server, msg, transport).await,
        Method::Ack => {}
        Method::Invite | Method::Bye | Method::Cancel | Method::Update => {
            reply(
                &transport,
                Response::to(&msg, 481, "Call/Transaction Does Not Exist", None),
            )
            .await;
        }
        Method::Other(_) => {
            reply(
                &transport,
                Response::to(&msg, 405, "Method Not Allowed", None).header("Allow", ALLOW),
            )
            .await;
        }
    }
}

/// What a new INVITE's checks found.
pub(crate) struct Offered {
    pub(crate) offer: sdp::Offer,
    pub(crate) choices: Vec<Result<sdp::Choice, sdp::Refused>>,
    pub(crate) metadata: Option<String>,
}

/// Reads an INVITE's body: its SDP (required) and metadata (optional).
pub(crate) fn read_offer(msg: &Message) -> Result<Offered, SipError> {
    let parts = body::split(msg.header("content-type"), &msg.body)?;
    let text = parts
        .sdp
        .ok_or(SipError::NotAcceptable("an sdp offer is required"))?;
    let offer = sdp::parse(&text)?;
    let choices = sdp::choose(&offer);
    Ok(Offered {
        offer,
        choices,
        metadata: parts.metadata,
    })
}

async fn new_session(server: &Server, msg: Message, transport: Transport) {
    let bad = unsupported(&msg);
    if !bad.is_empty() {
        let list = bad.join(", ");
        info!(peer = %transport.peer(), unsupported = %list, "invite requires extensions we lack");
        reply(
            &transport,
            Response::to(&msg, 420, "Bad Extension", None).header("Unsupported", list),
        )
        .await;
        return;
    }
    let offered = match read_offer(&msg) {
        Ok(o) if o.choices.iter().any(Result::is_ok) => o,
        Ok(o) => {
            let why = o
                .choices
                .iter()
                .find_map(|c| c.err())
                .map_or("no media lines", sdp::Refused::as_str);
            info!(peer = %transport.peer(), reason = why, "invite with no stream to record");
            reply(
                &transport,
                Response::to(&msg, 488, "Not Acceptable Here", None)
                    .header("Warning", format!("399 callvault \"{why}\"")),
            )
            .await;
            return;
        }
        Err(e) => {
            let (code, reason) = e.status();
            warn!(peer = %transport.peer(), error = %e, "invite refused");
            metrics::counter!("callvault_siprec_rejected_total", "reason" => "bad_invite")
                .increment(1);
            reply(&transport, Response::to(&msg, code, reason, None)).await;
            return;
        }
    };
    let call_id = msg.call_id().expect("checked").to_owned();
    let (tx, rx) = mpsc::channel(SESSION_QUEUE);
    let admitted = {
        let mut sessions = server.sessions();
        let ok = !server.shutdown.is_cancelled() && server.admit(sessions.len());
        if ok {
            sessions.insert(call_id.clone(), tx);
            metrics::gauge!("callvault_siprec_sessions").set(sessions.len() as f64);
        }
        ok
    };
    if !admitted {
        metrics::counter!("callvault_siprec_rejected_total", "reason" => "busy").increment(1);
        reply(
            &transport,
            Response::to(&msg, 503, "Service Unavailable", None).header("Retry-After", "5"),
        )
        .await;
        return;
    }
    reply(&transport, Response::to(&msg, 100, "Trying", None)).await;
    let s = server.clone();
    server
        .tracker
        .spawn(session::run(s, msg, transport, offered, rx));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_hands_out_aligned_blocks_and_reuses_oldest_first() {
        let pool = PortPool::new((20001, 20012));
        let a = pool.acquire().expect("block");
        let b = pool.acquire().expect("block");
        assert_eq!((a.base(), b.base()), (20004, 20008));
        assert!(pool.acquire().is_none(), "20012 has no room for four ports");
        drop(a);
        assert_eq!(pool.acquire().expect("reused").base(), 20004);
    }
}
