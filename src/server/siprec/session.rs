//! One SIPREC session: its dialog, its RTP sockets, and the call it records.
//!
//! The task owns everything of the session: the sockets of each accepted stream (RTP on an even
//! port, RTCP above it), the [`Mixer`] that places packets by their RTP timestamps, and the call's
//! [`MediaSink`]. The listener hands it every request of its dialog. A re-INVITE or UPDATE whose
//! streams are all `a=inactive` pauses the call (`recording.paused`), and one that sends again
//! resumes it; new metadata is sealed into the ledger. BYE ends the call; so does a stretch of
//! `siprec.rtp_timeout` with no RTP while not paused, after which the server sends the BYE.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::{Inbound, Offered, PortBlock, Server, Transport, read_offer};
use crate::catalog::{NewLedgerEntry, NewSealedNote};
use crate::domain::timeline::MediaClock;
use crate::domain::{CallEvent, CallId, EventKind, MediaFormat};
use crate::ingest::siprec::metadata::{self, Metadata, aor_user};
use crate::ingest::siprec::mixer::{Mixer, Pushed, Skip, StreamFormat};
use crate::ingest::siprec::sdp::{self, Direction};
use crate::ingest::siprec::sip::{self, Message, Method, Response};
use crate::ingest::siprec::{correlate, rtp};
use crate::recorder::{MediaSink, RecorderError};

/// Tries at binding a port block before the INVITE is refused.
const BIND_TRIES: usize = 8;
/// RFC 3261 timer T1 and T2, and how long a 2xx is retransmitted without an ACK (64·T1).
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const ACK_WAIT: Duration = Duration::from_secs(32);

struct Stream {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// The m-line it answers.
    mline: usize,
    channel: usize,
    format: StreamFormat,
    label: Option<String>,
    /// Where the SDP says media comes from.
    expect: Option<IpAddr>,
    /// The source latched from the first packet (symmetric RTP).
    latched: Option<SocketAddr>,
    direction: Direction,
}

struct Retransmit {
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    until: Instant,
}

struct Session {
    server: Server,
    sip_call_id: String,
    call: CallId,
    to_tag: String,
    transport: Transport,
    /// The INVITE that opened the dialog (its `From`, `To` and `Contact` address the BYE).
    invite: Message,
    offer: sdp::Offer,
    choices: Vec<Result<sdp::Choice, sdp::Refused>>,
    streams: Vec<Stream>,
    _ports: PortBlock,
    mixer: Mixer,
    sink: Option<MediaSink>,
    metadata: Option<Metadata>,
    metadata_docs: u32,
    sdp_version: u64,
    /// The last INVITE's CSeq and the final response sent to it, for retransmissions.
    last: Option<(u32, Vec<u8>)>,
    retransmit: Option<Retransmit>,
    paused: bool,
    first_packet: Option<Instant>,
    last_activity: Instant,
    keys: u64,
    foreign: u64,
    malformed: u64,
}

enum End {
    Bye,
    Timeout,
    Shutdown,
    CallOver(String),
}

/// Runs a session from its first INVITE to its end.
pub(super) async fn run(
    server: Server,
    invite: Message,
    transport: Transport,
    offered: Offered,
    mut rx: mpsc::Receiver<Inbound>,
) {
    let sip_call_id = invite.call_id().expect("checked").to_owned();
    match setup(server.clone(), invite, transport, offered, &mut rx).await {
        Some(mut s) => {
            let end = s.serve(&mut rx).await;
            s.finish(end).await;
        }
        None => debug!(sip_call_id = %sip_call_id, "siprec session not set up"),
    }
    server.finished(&sip_call_id);
}

async fn bind(
    server: &Server,
    accepted: usize,
) -> Option<(PortBlock, Vec<(UdpSocket, UdpSocket)>)> {
    for _ in 0..BIND_TRIES {
        let block = server.ports.acquire()?;
        let mut sockets = Vec::with_capacity(accepted);
        for k in 0..accepted {
            let port = block.base() + 2 * k as u16;
            let rtp = UdpSocket::bind((server.media_ip, port)).await;
            let rtcp = UdpSocket::bind((server.media_ip, port + 1)).await;
            match (rtp, rtcp) {
                (Ok(a), Ok(b)) => sockets.push((a, b)),
                _ => break,
            }
        }
        if sockets.len() == accepted {
            return Some((block, sockets));
        }
        // ports held by another process: this block is put back at the end
    }
    None
}

async fn setup(
    server: Server,
    invite: Message,
    transport: Transport,
    offered: Offered,
    rx: &mut mpsc::Receiver<Inbound>,
) -> Option<Session> {
    let peer = transport.peer();
    let invite_copy = invite.clone();
    let refuse = |code: u16, reason: &'static str| Response::to(&invite_copy, code, reason, None);
    let accepted: Vec<usize> = offered
        .choices
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.is_ok().then_some(i))
        .collect();
    let Some((block, sockets)) = bind(&server, accepted.len()).await else {
        warn!(%peer, "no free rtp ports in siprec.rtp_ports");
        transport
            .send(
                refuse(503, "Service Unavailable")
                    .header("Retry-After", "5")
                    .encode(),
            )
            .await;
        return None;
    };
    let (md, md_error) = match offered.metadata.as_deref().map(metadata::parse) {
        Some(Ok(m)) => (Some(m), None),
        Some(Err(e)) => (None, Some(e.to_string())),
        None => (None, None),
    };
    let (call, source) = correlate(&server.config.call_id, &invite, md.as_ref());
    // the caller's stream is channel 0: the one labelled siprec.caller_label, else the first
    let caller_at = server
        .config
        .caller_label
        .as_ref()
        .and_then(|l| {
            accepted
                .iter()
                .position(|&i| offered.offer.streams[i].label.as_ref() == Some(l))
        })
        .unwrap_or(0);
    let mut streams = Vec::with_capacity(accepted.len());
    for (k, ((rtp, rtcp), &mline)) in sockets.into_iter().zip(&accepted).enumerate() {
        let o = &offered.offer.streams[mline];
        let c = offered.choices[mline].expect("accepted");
        let channel = match (k, caller_at) {
            (k, c) if k == c => 0,
            (k, c) if k < c => k + 1,
            (k, _) => k,
        };
        streams.push(Stream {
            rtp,
            rtcp,
            mline,
            channel,
            format: StreamFormat {
                codec: c.codec,
                payload_type: c.payload_type,
                events: c.events,
            },
            label: o.label.clone(),
            expect: o.address_or(offered.offer.address),
            latched: None,
            direction: o.direction,
        });
    }
    streams.sort_by_key(|s| s.channel);
    let codec = streams[0].format.codec;
    let channels = streams.len();
    let to_tag = server.token();
    let mut s = Session {
        mixer: Mixer::new(codec, channels),
        sip_call_id: invite.call_id().expect("checked").to_owned(),
        call: call.clone(),
        to_tag,
        transport,
        offer: offered.offer,
        choices: offered.choices,
        streams,
        _ports: block,
        sink: None,
        metadata: None,
        metadata_docs: 0,
        sdp_version: 1,
        last: None,
        retransmit: None,
        paused: false,
        first_packet: None,
        last_activity: Instant::now(),
        keys: 0,
        foreign: 0,
        malformed: 0,
        invite,
        server,
    };
    // a ringing phase, if configured, in which the SRC may still CANCEL
    if !s.server.config.answer_delay.is_zero() {
        let until = Instant::now() + s.server.config.answer_delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                () = s.server.shutdown.cancelled() => {
                    s.transport.send(refuse(503, "Service Unavailable").encode()).await;
                    return None;
                }
                inbound = rx.recv() => {
                    let Inbound { msg, transport } = inbound?;
                    match msg.method() {
                        Some(Method::Cancel) => {
                            transport.send(Response::to(&msg, 200, "OK", Some(&s.to_tag)).encode()).await;
                            let terminated = Response::to(&s.invite, 487, "Request Terminated", Some(&s.to_tag));
                            s.transport.send(terminated.encode()).await;
                            info!(call_id = %call, "siprec invite cancelled before the answer");
                            return None;
                        }
                        Some(Method::Invite) => {
                            transport.send(Response::to(&msg, 100, "Trying", None).encode()).await;
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    // call.started from the metadata: the caller's number (sealed by the recorder) and the agent
    let sender = |ch: usize| {
        let label = s.streams.get(ch)?.label.as_deref()?;
        md.as_ref()?.sender_of(label)
    };
    let caller = sender(0)
        .and_then(|p| p.aors.iter().find_map(|a| aor_user(a)))
        .map(str::to_owned);
    let agent = sender(1).and_then(|p| {
        p.names
            .first()
            .cloned()
            .or_else(|| p.aors.iter().find_map(|a| aor_user(a)).map(str::to_owned))
    });
    let now = s.server.clock.now();
    if caller.is_some() || agent.is_some() {
        let kind = EventKind::CallStarted {
            line: None,
            caller,
            agent,
            queue: None,
        };
        let event = CallEvent {
            id: format!("siprec:{call}:call.started"),
            call_id: call.clone(),
            at: now,
            kind,
        };
        if let Err(e) = s.server.recorder.event(event, now).await {
            warn!(call_id = %call, error = %e, "call.started from siprec metadata refused");
        }
    }
    let format = MediaFormat {
        codec,
        sample_rate: 8000,
        channels: channels as u8,
    };
    match s
        .server
        .recorder
        .open_media(&call, format, MediaClock::Stamped, None)
        .await
    {
        Ok(sink) => s.sink = Some(sink),
        Err(e) => {
            let (code, reason) = match e {
                RecorderError::Busy | RecorderError::ShuttingDown => (503, "Service Unavailable"),
                RecorderError::Ended(_) | RecorderError::Refused(_) | RecorderError::StreamOpen => {
                    (603, "Decline")
                }
                _ => (500, "Server Internal Error"),
            };
            warn!(call_id = %call, error = %e, code, "siprec session refused by the recorder");
            s.transport
                .send(refuse(code, reason).header("Retry-After", "5").encode())
                .await;
            return None;
        }
    }
    // what the SRC sent, in the ledger before the answer: a session that cannot keep its
    // metadata is not accepted
    let refused: Vec<Value> = s
        .offer
        .streams
        .iter()
        .zip(&s.choices)
        .filter_map(|(o, c)| {
            c.err()
                .map(|r| json!({"label": o.label, "media": o.media, "reason": r.as_str()}))
        })
        .collect();
    let details = json!({
        "transport": s.transport.name(),
        "call_id_from": source,
        "src_feature_tag": s.invite.header("contact").is_some_and(|c| c.contains("+sip.src")),
        "streams": s.streams.iter().map(|st| json!({
            "label": st.label, "channel": if st.channel == 0 { "caller" } else { "agent" },
            "codec": st.format.codec.name(),
        })).collect::<Vec<_>>(),
        "refused_streams": refused,
        "metadata": match (&offered.metadata, &md_error) {
            (None, _) => "absent",
            (Some(_), None) => "present",
            (Some(_), Some(_)) => "unreadable",
        },
        "metadata_error": md_error,
        "unlabelled_streams": s.streams.iter().filter(|st| st.label.is_none()).count(),
    });
    let mut ok = s.note("siprec.session", details).await;
    if let Some(xml) = &offered.metadata {
        ok = ok && s.keep_metadata(xml, md.clone()).await;
    }
    s.metadata = md;
    if !ok {
        s.transport
            .send(refuse(500, "Server Internal Error").encode())
            .await;
        if let Some(sink) = s.sink.take() {
            drop(sink);
        }
        return None;
    }
    s.answer_invite(&s.invite.clone()).await;
    info!(
        call_id = %call, sip_call_id = %s.sip_call_id, peer = %peer, transport = s.transport.name(),
        streams = s.streams.len(), call_id_from = source, "siprec session answered"
    );
    metrics::counter!("callvault_siprec_sessions_total").increment(1);
    Some(s)
}

async fn recv(sock: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Session {
    /// Appends a ledger entry to the call's recording; false (logged) when it could not be kept.
    async fn note(&self, kind: &str, details: Value) -> bool {
        match self.server.recorder.note(&self.call, kind, details).await {
            Ok(()) => true,
            Err(e) => {
                error!(call_id = %self.call, kind, error = %e, "cannot ledger siprec session details");
                false
            }
        }
    }

    /// Keeps one metadata document sealed beside its ledger entry (it names the participants:
    /// personal data, destroyed with the caller's number).
    async fn keep_metadata(&mut self, xml: &str, parsed: Option<Metadata>) -> bool {
        let row = match self.server.catalog.recording_by_call(&self.call).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                error!(call_id = %self.call, "no recording to keep siprec metadata in");
                return false;
            }
            Err(e) => {
                error!(call_id = %self.call, error = %e, "cannot keep siprec metadata");
                return false;
            }
        };
        let sealed = self.server.callers.seal_note(row.id, xml.as_bytes());
        self.metadata_docs += 1;
        let details = json!({
            "document": self.metadata_docs,
            "bytes": xml.len(),
            "sealed_note": true,
            "datamode": parsed.as_ref().map(|m| match m.datamode {
                Some(metadata::DataMode::Partial) => "partial",
                _ => "complete",
            }),
            "participants": parsed.as_ref().map(|m| m.participants.len()),
            "streams": parsed.as_ref().map(|m| m.streams.len()),
        });
        let note = NewSealedNote {
            entry: NewLedgerEntry {
                recording_id: row.id,
                at: self.server.clock.now(),
                kind: "siprec.metadata".to_owned(),
                actor: "siprec".to_owned(),
                reason: None,
                details: details.to_string(),
            },
            sealed,
        };
        match self.server.catalog.append_sealed_note(&note).await {
            Ok(_) => true,
            Err(e) => {
                error!(call_id = %self.call, error = %e, "cannot keep siprec metadata");
                false
            }
        }
    }

    fn answer_sdp(&mut self) -> String {
        let mut ports = vec![0u16; self.offer.streams.len()];
        for st in &self.streams {
            if let Ok(a) = st.rtp.local_addr() {
                ports[st.mline] = a.port();
            }
        }
        let session = u64::from(self.streams[0].rtp.local_addr().map_or(0, |a| a.port()));
        sdp::answer(
            &self.offer,
            &self.choices,
            &ports,
            self.server.media_ip,
            session,
            self.sdp_version,
        )
    }

    fn contact(&self) -> String {
        let port = match self.transport.name() {
            "UDP" => self.server.config.udp.map(|a| a.port()),
            "TLS" => self.server.config.tls.as_ref().map(|t| t.listen.port()),
            _ => self.server.config.tcp.map(|a| a.port()),
        }
        .unwrap_or(5060);
        let transport = self.transport.name().to_ascii_lowercase();
        format!(
            "<sip:srs@{}:{port};transport={transport}>;+sip.srs",
            fmt_host(self.server.media_ip)
        )
    }

    /// Answers an INVITE (or re-INVITE) with 200 and the SDP answer, retransmitted until the ACK
    /// over UDP.
    async fn answer_invite(&mut self, req: &Message) {
        let sdp = self.answer_sdp();
        let r = Response::to(req, 200, "OK", Some(&self.to_tag))
            .header("Contact", self.contact())
            .header("Allow", super::ALLOW)
            .header("Supported", "siprec")
            .body("application/sdp", sdp.into_bytes());
        let bytes = r.encode();
        let cseq = req.cseq().map_or(0, |c| c.0);
        self.last = Some((cseq, bytes.clone()));
        if self.transport.unreliable() {
            let now = Instant::now();
            self.retransmit = Some(Retransmit {
                bytes: bytes.clone(),
                next: now + T1,
                interval: T1,
                until: now + ACK_WAIT,
            });
        }
        self.transport.send(bytes).await;
    }

    async fn serve(&mut self, rx: &mut mpsc::Receiver<Inbound>) -> End {
        let mut buf0 = vec![0u8; 2048];
        let mut buf1 = vec![0u8; 2048];
        let mut rtcp0 = vec![0u8; 2048];
        let mut rtcp1 = vec![0u8; 2048];
        let timeout = self.server.config.rtp_timeout;
        loop {
            let due = self.sink.as_ref().and_then(MediaSink::due);
            let resend = self.retransmit.as_ref().map(|r| r.next);
            let idle = (!self.paused).then_some(self.last_activity + timeout);
            let (a, b) = (self.streams.first(), self.streams.get(1));
            tokio::select! {
                () = self.server.shutdown.cancelled() => return End::Shutdown,
                inbound = rx.recv() => {
                    let Some(Inbound { msg, transport }) = inbound else { return End::Shutdown };
                    if let Some(end) = self.on_request(msg, transport).await {
                        return end;
                    }
                }
                r = recv(a.map(|s| &s.rtp), &mut buf0) => {
                    if let Ok((n, from)) = r && let Some(end) = self.on_rtp(0, &buf0[..n], from).await {
                        return end;
                    }
                }
                r = recv(b.map(|s| &s.rtp), &mut buf1) => {
                    if let Ok((n, from)) = r && let Some(end) = self.on_rtp(1, &buf1[..n], from).await {
                        return end;
                    }
                }
                // RTCP is read and dropped: this server sends no reports
                _ = recv(a.map(|s| &s.rtcp), &mut rtcp0) => {}
                _ = recv(b.map(|s| &s.rtcp), &mut rtcp1) => {}
                () = sleep_until(due) => {
                    if let Some(end) = self.flush().await {
                        return end;
                    }
                }
                () = sleep_until(resend) => self.resend().await,
                () = sleep_until(idle) => return End::Timeout,
            }
        }
    }

    async fn resend(&mut self) {
        let Some(r) = &mut self.retransmit else {
            return;
        };
        let now = Instant::now();
        if now >= r.until {
            warn!(call_id = %self.call, "no ack for the 200 ok within 32 s");
            self.retransmit = None;
            return;
        }
        r.interval = (r.interval * 2).min(T2);
        r.next = now + r.interval;
        let bytes = r.bytes.clone();
        self.transport.send(bytes).await;
    }

    async fn flush(&mut self) -> Option<End> {
        let sink = self.sink.as_mut()?;
        match sink.flush().await {
            Ok(()) => None,
            Err(e) => Some(End::CallOver(e.to_string())),
        }
    }

    async fn on_rtp(&mut self, k: usize, data: &[u8], from: SocketAddr) -> Option<End> {
        let allowed_src = self.server.config.allows(from.ip());
        let st = self.streams.get_mut(k)?;
        match st.latched {
            Some(l) if l != from => {
                self.foreign += 1;
                metrics::counter!("callvault_siprec_rtp_dropped_total", "reason" => "foreign_source").increment(1);
                return None;
            }
            Some(_) => {}
            None => {
                // the first packet from the SDP's address, or from an allowed SRC network behind
                // NAT, is latched; anyone else's is dropped
                if st.expect != Some(from.ip()) && !allowed_src {
                    self.foreign += 1;
                    metrics::counter!("callvault_siprec_rtp_dropped_total", "reason" => "foreign_source").increment(1);
                    return None;
                }
                st.latched = Some(from);
            }
        }
        if rtp::is_rtcp(data) {
            return None;
        }
        let p = match rtp::parse(data) {
            Ok(p) => p,
            Err(_) => {
                self.malformed += 1;
                metrics::counter!("callvault_siprec_rtp_dropped_total", "reason" => "malformed")
                    .increment(1);
                return None;
            }
        };
        let now = Instant::now();
        self.last_activity = now;
        let first = *self.first_packet.get_or_insert(now);
        let arrival = (now - first).as_micros() as u64 * 8 / 1000;
        let (channel, format) = (st.channel, st.format);
        match self.mixer.push(channel, format, &p, arrival) {
            Pushed::Audio => {}
            Pushed::Event(ev, _position) if ev.is_key() => {
                // a keypad key signalled in the RTP (RFC 4733), once per event: the call's DTMF
                // rule takes it at its arrival, as AudioSocket's DTMF frames; its value is never
                // kept or logged
                self.keys += 1;
                metrics::counter!("callvault_siprec_telephone_events_total").increment(1);
                if let Some(sink) = self.sink.as_mut() {
                    sink.key();
                    if let Some(end) = self.push_ready(false).await {
                        return Some(end);
                    }
                    return self.flush().await;
                }
            }
            Pushed::Event(..) => {}
            Pushed::Skipped(Skip::Late) => {
                metrics::counter!("callvault_siprec_rtp_dropped_total", "reason" => "late")
                    .increment(1);
            }
            Pushed::Skipped(_) => {}
        }
        self.push_ready(false).await
    }

    async fn push_ready(&mut self, all: bool) -> Option<End> {
        let pieces = self.mixer.drain(all);
        let sink = self.sink.as_mut()?;
        let mut due = false;
        for (position, bytes) in pieces {
            due |= sink.push_at(position, &bytes);
        }
        if due {
            return self.flush().await;
        }
        None
    }

    async fn on_request(&mut self, msg: Message, transport: Transport) -> Option<End> {
        let method = msg.method().cloned()?;
        let cseq = msg.cseq().map_or(0, |c| c.0);
        match method {
            Method::Ack => {
                if self.last.as_ref().is_some_and(|(c, _)| *c == cseq) {
                    self.retransmit = None;
                }
                None
            }
            Method::Bye => {
                transport
                    .send(Response::to(&msg, 200, "OK", Some(&self.to_tag)).encode())
                    .await;
                Some(End::Bye)
            }
            Method::Cancel => {
                // the INVITE was answered already: the CANCEL has no effect (RFC 3261 9.2)
                transport
                    .send(Response::to(&msg, 200, "OK", Some(&self.to_tag)).encode())
                    .await;
                None
            }
            Method::Invite if self.last.as_ref().is_some_and(|(c, _)| *c == cseq) => {
                // a retransmission: the same answer again
                if let Some((_, bytes)) = &self.last {
                    transport.send(bytes.clone()).await;
                }
                None
            }
            Method::Invite | Method::Update => {
                self.transport = transport;
                self.reoffer(msg, method == Method::Invite).await;
                None
            }
            Method::Options => {
                transport.send(super::options_response(&msg).encode()).await;
                None
            }
            Method::Other(_) => {
                let r = Response::to(&msg, 405, "Method Not Allowed", Some(&self.to_tag))
                    .header("Allow", super::ALLOW);
                transport.send(r.encode()).await;
                None
            }
        }
    }

    /// A re-INVITE or UPDATE: new directions (pause or resume), new metadata, or both.
    async fn reoffer(&mut self, msg: Message, invite: bool) {
        let fail = |code: u16, reason: &'static str, tag: &str| {
            Response::to(&msg, code, reason, Some(tag)).encode()
        };
        let parts = match crate::ingest::siprec::body::split(msg.header("content-type"), &msg.body)
        {
            Ok(p) => p,
            Err(e) => {
                let (code, reason) = e.status();
                warn!(call_id = %self.call, error = %e, "re-offer refused");
                self.transport.send(fail(code, reason, &self.to_tag)).await;
                return;
            }
        };
        if parts.sdp.is_some() {
            match read_offer(&msg) {
                Ok(o) => {
                    if o.offer.streams.len() < self.offer.streams.len() {
                        // RFC 3264 8: m-lines are never removed
                        self.transport
                            .send(fail(488, "Not Acceptable Here", &self.to_tag))
                            .await;
                        return;
                    }
                    // streams keep their ports; a new m-line is refused
                    let mut choices = o.choices;
                    for (i, c) in choices.iter_mut().enumerate() {
                        if !self.streams.iter().any(|s| s.mline == i) && c.is_ok() {
                            *c = Err(sdp::Refused::TooMany);
                        }
                    }
                    for st in &mut self.streams {
                        if let Some(os) = o.offer.streams.get(st.mline) {
                            st.direction = os.direction;
                            if let Some(ip) = os.address_or(o.offer.address) {
                                st.expect = Some(ip);
                            }
                        }
                    }
                    self.offer = o.offer;
                    self.choices = choices;
                }
                Err(e) => {
                    let (code, reason) = e.status();
                    warn!(call_id = %self.call, error = %e, "re-offer refused");
                    self.transport.send(fail(code, reason, &self.to_tag)).await;
                    return;
                }
            }
        }
        if let Some(xml) = &parts.metadata {
            let parsed = metadata::parse(xml);
            if let Err(e) = &parsed {
                warn!(call_id = %self.call, error = %e, "unreadable metadata update kept sealed as sent");
            }
            let parsed = parsed.ok();
            if !self.keep_metadata(xml, parsed.clone()).await {
                self.transport
                    .send(fail(500, "Server Internal Error", &self.to_tag))
                    .await;
                return;
            }
            if let Some(p) = parsed {
                match &mut self.metadata {
                    Some(m) => m.merge(p),
                    None => self.metadata = Some(p),
                }
            }
        }
        let inactive = self
            .streams
            .iter()
            .all(|s| matches!(s.direction, Direction::Inactive | Direction::RecvOnly));
        let cseq = msg.cseq().map_or(0, |c| c.0);
        if inactive != self.paused {
            let kind = if inactive {
                EventKind::RecordingPaused {
                    reason: Some("siprec: the recording client set a=inactive".into()),
                }
            } else {
                EventKind::RecordingResumed {
                    reason: Some("siprec: the recording client sends again".into()),
                }
            };
            let now = self.server.clock.now();
            let event = CallEvent {
                id: format!("siprec:{}:{cseq}:{}", self.call, kind.name()),
                call_id: self.call.clone(),
                at: now,
                kind,
            };
            // audio read before the change goes to the call first
            if self.push_ready(inactive).await.is_some() {
                return;
            }
            match self.server.recorder.event(event, now).await {
                Ok(_) => {
                    self.paused = inactive;
                    self.last_activity = Instant::now();
                    info!(call_id = %self.call, paused = inactive, "siprec session direction changed");
                }
                Err(e) => {
                    error!(call_id = %self.call, error = %e, "siprec pause or resume refused by the recorder");
                    self.transport
                        .send(fail(500, "Server Internal Error", &self.to_tag))
                        .await;
                    return;
                }
            }
        }
        self.sdp_version += 1;
        if invite {
            self.answer_invite(&msg).await;
        } else {
            let sdp = self.answer_sdp();
            let r = Response::to(&msg, 200, "OK", Some(&self.to_tag))
                .header("Contact", self.contact())
                .body("application/sdp", sdp.into_bytes());
            self.transport.send(r.encode()).await;
        }
    }

    async fn finish(mut self, end: End) {
        let _ = self.push_ready(true).await;
        if let Some(mut sink) = self.sink.take() {
            if let Err(e) = sink.flush().await {
                debug!(call_id = %self.call, error = %e, "the call ended before the last audio reached it");
            }
            drop(sink);
        }
        let reason = match &end {
            End::Bye => "bye",
            End::Timeout => "rtp inactivity",
            End::Shutdown => "shutdown",
            End::CallOver(why) => {
                debug!(call_id = %self.call, %why, "the call's task ended the session");
                "call over"
            }
        };
        if matches!(end, End::Timeout | End::Shutdown | End::CallOver(_)) {
            self.send_bye().await;
        }
        if matches!(end, End::Timeout) {
            let details = json!({ "reason": "rtp inactivity", "timeout_ms": self.server.config.rtp_timeout.as_millis() as u64 });
            self.note("siprec.timeout", details).await;
        }
        if !matches!(end, End::Shutdown) {
            let now = self.server.clock.now();
            let event = CallEvent {
                id: format!("siprec:{}:call.ended", self.call),
                call_id: self.call.clone(),
                at: now,
                kind: EventKind::CallEnded,
            };
            if let Err(e) = self.server.recorder.event(event, now).await {
                warn!(call_id = %self.call, error = %e, "call.ended from siprec refused");
            }
        }
        info!(
            call_id = %self.call, reason, late = self.mixer.late(), foreign = self.foreign,
            malformed = self.malformed, telephone_events = self.keys, "siprec session ended"
        );
    }

    /// Ends the dialog from this side (RTP inactivity, shutdown).
    async fn send_bye(&mut self) {
        let inv = &self.invite;
        let uri = inv.contact_uri().unwrap_or("sip:src@invalid").to_owned();
        let from = format!(
            "{};tag={}",
            inv.header("to").unwrap_or("<sip:srs@invalid>"),
            self.to_tag
        );
        let to = inv.header("from").unwrap_or("<sip:src@invalid>").to_owned();
        let via = format!(
            "SIP/2.0/{} {}:{};branch=z9hG4bK{}",
            self.transport.name(),
            fmt_host(self.server.media_ip),
            self.server.config.udp.map_or(5060, |a| a.port()),
            self.server.token()
        );
        let contact = self.contact();
        let bytes = sip::request(
            "BYE",
            &uri,
            &via,
            &from,
            &to,
            &self.sip_call_id,
            1,
            &contact,
        );
        if !self.transport.send(bytes).await {
            warn!(call_id = %self.call, "cannot send bye to the recording client");
        }
    }
}

fn fmt_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}
