//! SDP offer/answer for a recording server (RFC 3264, RFC 7866 section 8): every `m=` line of the
//! offer is answered in order; an audio stream over `RTP/AVP` that offers PCMU or PCMA is accepted
//! with one codec (plus `telephone-event` when offered), `recvonly` (or `inactive` when the offer
//! pauses it), its `a=label` echoed; anything else (video, SRTP's `RTP/SAVP`, a third audio
//! stream, no G.711) is refused with port 0 and the reason kept.

use std::net::IpAddr;

use super::SipError;
use crate::domain::Codec;

/// Most audio streams one session records (caller and agent: the recording has two channels).
pub const MAX_STREAMS: usize = 2;

/// Which way media flows, as an `a=` attribute says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendonly`: the SRC sends (the normal SIPREC case).
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=sendrecv` (the default when none is given).
    SendRecv,
    /// `a=inactive`: the SRC pauses the stream.
    Inactive,
}

/// One `m=` line of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferStream {
    /// `audio`, `video`, …
    pub media: String,
    /// The port the SRC sends from/expects at.
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`, …
    pub proto: String,
    /// The formats, as listed.
    pub formats: Vec<String>,
    /// `a=rtpmap`: payload type, encoding name (upper case), clock rate.
    pub rtpmap: Vec<(u8, String, u32)>,
    /// `a=label`, which the metadata's `<stream><label>` refers to.
    pub label: Option<String>,
    /// The direction.
    pub direction: Direction,
    /// The stream's own `c=` address, if any.
    pub address: Option<IpAddr>,
    /// `a=rtcp-mux`.
    pub rtcp_mux: bool,
}

/// A parsed offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The session-level `c=` address.
    pub address: Option<IpAddr>,
    /// The `m=` lines, in order.
    pub streams: Vec<OfferStream>,
}

/// What was decided for an accepted stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The codec.
    pub codec: Codec,
    /// Its payload type.
    pub payload_type: u8,
    /// The `telephone-event/8000` payload type, when offered.
    pub events: Option<u8>,
}

/// Why a stream was refused (port 0 in the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not audio.
    NotAudio,
    /// Secure RTP (`RTP/SAVP`, `RTP/SAVPF`): this server has no SRTP.
    Srtp,
    /// A transport other than `RTP/AVP`.
    Transport,
    /// Neither PCMU nor PCMA at 8 kHz is offered.
    NoCodec,
    /// More than [`MAX_STREAMS`] audio streams.
    TooMany,
    /// The SRC itself disabled the stream (port 0).
    Disabled,
}

impl Refused {
    /// The reason, for logs and the ledger.
    pub const fn as_str(self) -> &'static str {
        match self {
            Refused::NotAudio => "not an audio stream",
            Refused::Srtp => "srtp (rtp/savp) is not supported: offer rtp/avp",
            Refused::Transport => "transport other than rtp/avp",
            Refused::NoCodec => "neither pcmu nor pcma at 8000 hz offered",
            Refused::TooMany => "more audio streams than the recording's two channels",
            Refused::Disabled => "disabled by the offer (port 0)",
        }
    }
}

fn bad(what: &'static str) -> SipError {
    SipError::BadSdp(what)
}

/// Parses an SDP offer (CRLF or LF).
pub fn parse(text: &str) -> Result<Offer, SipError> {
    let mut offer = Offer {
        address: None,
        streams: Vec::new(),
    };
    let mut session_direction = Direction::SendRecv;
    let mut seen_v = false;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let (kind, value) = line.split_once('=').ok_or(bad("line without '='"))?;
        if kind.len() != 1 {
            return Err(bad("line type is not one letter"));
        }
        match (kind, offer.streams.last_mut()) {
            ("v", _) => {
                if value != "0" {
                    return Err(bad("version is not 0"));
                }
                seen_v = true;
            }
            ("c", None) => offer.address = Some(connection(value)?),
            ("c", Some(s)) => s.address = Some(connection(value)?),
            ("m", _) => {
                if offer.streams.len() >= 16 {
                    return Err(bad("more than 16 media lines"));
                }
                let mut it = value.split_whitespace();
                let media = it.next().ok_or(bad("empty m= line"))?.to_ascii_lowercase();
                let port = it
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or(bad("bad m= port"))?;
                let proto = it
                    .next()
                    .ok_or(bad("m= line without transport"))?
                    .to_owned();
                let formats: Vec<String> = it.take(32).map(str::to_owned).collect();
                offer.streams.push(OfferStream {
                    media,
                    port,
                    proto,
                    formats,
                    rtpmap: Vec::new(),
                    label: None,
                    direction: session_direction,
                    address: None,
                    rtcp_mux: false,
                });
            }
            ("a", stream) => {
                let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                let dir = match name {
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "sendrecv" => Some(Direction::SendRecv),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                match (stream, dir) {
                    (None, Some(d)) => session_direction = d,
                    (Some(s), Some(d)) => s.direction = d,
                    (Some(s), None) => match name {
                        "label" => s.label = Some(arg.trim().chars().take(64).collect()),
                        "rtcp-mux" => s.rtcp_mux = true,
                        "rtpmap" if s.rtpmap.len() < 32 => {
                            if let Some(m) = rtpmap(arg) {
                                s.rtpmap.push(m);
                            }
                        }
                        _ => {}
                    },
                    (None, None) => {}
                }
            }
            _ => {}
        }
    }
    if !seen_v {
        return Err(bad("no v= line"));
    }
    Ok(offer)
}

fn connection(v: &str) -> Result<IpAddr, SipError> {
    let mut it = v.split_whitespace();
    let (Some("IN"), Some(_), Some(addr)) = (it.next(), it.next(), it.next()) else {
        return Err(bad("bad c= line"));
    };
    addr.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or(bad("c= address is not an ip address"))
}

fn rtpmap(arg: &str) -> Option<(u8, String, u32)> {
    let (pt, rest) = arg.trim().split_once(' ')?;
    let mut enc = rest.trim().split('/');
    let name = enc.next()?.to_ascii_uppercase();
    let rate = enc.next()?.parse().ok()?;
    Some((pt.parse().ok()?, name, rate))
}

impl OfferStream {
    /// The encoding of payload type `pt`: its `a=rtpmap`, else the static assignment (RFC 3551).
    fn encoding(&self, pt: u8) -> Option<(String, u32)> {
        if let Some((_, n, r)) = self.rtpmap.iter().find(|(p, _, _)| *p == pt) {
            return Some((n.clone(), *r));
        }
        match pt {
            0 => Some(("PCMU".to_owned(), 8000)),
            8 => Some(("PCMA".to_owned(), 8000)),
            _ => None,
        }
    }

    /// The stream's address: its own `c=`, else the session's.
    pub fn address_or(&self, session: Option<IpAddr>) -> Option<IpAddr> {
        self.address.or(session)
    }
}

/// Decides each `m=` line: the codec of an accepted audio stream, or why it is refused. The first
/// G.711 format the offer lists wins.
pub fn choose(offer: &Offer) -> Vec<Result<Choice, Refused>> {
    let mut accepted = 0;
    offer
        .streams
        .iter()
        .map(|s| {
            if s.media != "audio" {
                return Err(Refused::NotAudio);
            }
            if s.port == 0 {
                return Err(Refused::Disabled);
            }
            let proto = s.proto.to_ascii_uppercase();
            if proto.starts_with("RTP/SAVP") {
                return Err(Refused::Srtp);
            }
            if proto != "RTP/AVP" {
                return Err(Refused::Transport);
            }
            let mut codec = None;
            let mut events = None;
            for f in &s.formats {
                let Ok(pt) = f.parse::<u8>() else { continue };
                match s.encoding(pt) {
                    Some((n, 8000)) if n == "PCMU" && codec.is_none() => {
                        codec = Some((Codec::Pcmu, pt))
                    }
                    Some((n, 8000)) if n == "PCMA" && codec.is_none() => {
                        codec = Some((Codec::Pcma, pt))
                    }
                    Some((n, 8000)) if n == "TELEPHONE-EVENT" && events.is_none() => {
                        events = Some(pt)
                    }
                    _ => {}
                }
            }
            let (codec, payload_type) = codec.ok_or(Refused::NoCodec)?;
            if accepted >= MAX_STREAMS {
                return Err(Refused::TooMany);
            }
            accepted += 1;
            Ok(Choice {
                codec,
                payload_type,
                events,
            })
        })
        .collect()
}

/// The answer: one `m=` line per offered line, in order. `ports[i]` is the local RTP port of
/// stream `i` when accepted; `session` and `version` fill the `o=` line.
pub fn answer(
    offer: &Offer,
    choices: &[Result<Choice, Refused>],
    ports: &[u16],
    local: IpAddr,
    session: u64,
    version: u64,
) -> String {
    let family = if local.is_ipv4() { "IP4" } else { "IP6" };
    let mut out = format!(
        "v=0\r\no=callvault {session} {version} IN {family} {local}\r\ns=callvault\r\nc=IN {family} {local}\r\nt=0 0\r\n"
    );
    for (i, (s, c)) in offer.streams.iter().zip(choices).enumerate() {
        match (c, ports.get(i)) {
            (Ok(c), Some(port)) if *port != 0 => {
                out.push_str(&format!("m=audio {port} RTP/AVP {}", c.payload_type));
                if let Some(ev) = c.events {
                    out.push_str(&format!(" {ev}"));
                }
                out.push_str("\r\n");
                let name = match c.codec {
                    Codec::Pcma => "PCMA",
                    _ => "PCMU",
                };
                out.push_str(&format!("a=rtpmap:{} {name}/8000\r\n", c.payload_type));
                if let Some(ev) = c.events {
                    out.push_str(&format!(
                        "a=rtpmap:{ev} telephone-event/8000\r\na=fmtp:{ev} 0-15\r\n"
                    ));
                }
                if let Some(l) = &s.label {
                    out.push_str(&format!("a=label:{l}\r\n"));
                }
                if s.rtcp_mux {
                    out.push_str("a=rtcp-mux\r\n");
                }
                let dir = match s.direction {
                    Direction::SendOnly | Direction::SendRecv => "recvonly",
                    Direction::Inactive | Direction::RecvOnly => "inactive",
                };
                out.push_str(&format!("a={dir}\r\n"));
            }
            _ => {
                let fmt = s.formats.first().map_or("0", String::as_str);
                out.push_str(&format!("m={} 0 {} {fmt}\r\n", s.media, s.proto));
                if let Some(l) = &s.label {
                    out.push_str(&format!("a=label:{l}\r\n"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=SBC 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
        m=audio 7232 RTP/AVP 0 101\r\na=sendonly\r\na=label:1\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
        m=audio 7236 RTP/AVP 8\r\nc=IN IP4 10.0.0.3\r\na=sendonly\r\na=label:2\r\n\
        m=audio 7240 RTP/SAVP 0\r\na=label:3\r\n\
        m=video 7244 RTP/AVP 96\r\n";

    #[test]
    fn answers_each_line_in_order() {
        let offer = parse(OFFER).expect("parses");
        assert_eq!(offer.streams.len(), 4);
        assert_eq!(
            offer.streams[1].address_or(offer.address),
            "10.0.0.3".parse().ok()
        );
        let c = choose(&offer);
        assert_eq!(
            c[0],
            Ok(Choice {
                codec: Codec::Pcmu,
                payload_type: 0,
                events: Some(101)
            })
        );
        assert_eq!(
            c[1],
            Ok(Choice {
                codec: Codec::Pcma,
                payload_type: 8,
                events: None
            })
        );
        assert_eq!(c[2], Err(Refused::Srtp));
        assert_eq!(c[3], Err(Refused::NotAudio));
        let a = answer(
            &offer,
            &c,
            &[20000, 20002, 0, 0],
            "10.0.0.1".parse().expect("ip"),
            7,
            1,
        );
        let m: Vec<&str> = a.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m,
            [
                "m=audio 20000 RTP/AVP 0 101",
                "m=audio 20002 RTP/AVP 8",
                "m=audio 0 RTP/SAVP 0",
                "m=video 0 RTP/AVP 96"
            ]
        );
        assert!(a.contains("a=label:1\r\na=recvonly\r\n"));
        assert!(a.contains("a=rtpmap:101 telephone-event/8000\r\n"));
        assert!(a.contains("a=label:2\r\na=recvonly\r\n"));
        assert!(a.contains("c=IN IP4 10.0.0.1\r\n"));
    }

    #[test]
    fn inactive_is_answered_inactive_and_a_third_audio_stream_refused() {
        let text = "v=0\nc=IN IP4 1.2.3.4\na=inactive\nm=audio 1 RTP/AVP 0\nm=audio 3 RTP/AVP 0\nm=audio 5 RTP/AVP 0\na=sendonly\n";
        let offer = parse(text).expect("parses");
        assert_eq!(offer.streams[0].direction, Direction::Inactive);
        assert_eq!(offer.streams[2].direction, Direction::SendOnly);
        let c = choose(&offer);
        assert_eq!(c[2], Err(Refused::TooMany));
        let a = answer(&offer, &c, &[4000, 4002], "::1".parse().expect("ip"), 1, 2);
        assert_eq!(a.matches("a=inactive").count(), 2);
        assert!(a.contains("c=IN IP6 ::1"));
        assert!(a.contains("m=audio 0 RTP/AVP 0\r\n"));
    }

    #[test]
    fn bad_offers() {
        for bad in [
            "",
            "v=1\n",
            "v=0\nm=audio x RTP/AVP 0\n",
            "v=0\nc=IN IP4 nowhere\n",
            "v=0\nxx=1\n",
            "v=0\nnonsense\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let offer = parse("v=0\nm=audio 9 RTP/AVP 18\n").expect("parses");
        assert_eq!(choose(&offer), [Err(Refused::NoCodec)]);
    }
}
