//! `[siprec]`: the SIPREC recording server (RFC 7866): its SIP listeners, RTP ports, limits, and
//! where each session's call id comes from.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::SecretFile;
use super::platforms::Cidr;
use crate::ingest::siprec::IdSource;

/// The SIPREC recording server (off by default: no listener is set).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiprecConfig {
    /// SIP over UDP (e.g. `0.0.0.0:5060`); unset, none.
    pub udp: Option<SocketAddr>,
    /// SIP over TCP (usually the same port as UDP); unset, none.
    pub tcp: Option<SocketAddr>,
    /// SIP over TLS (usually port 5061); unset, none.
    pub tls: Option<SiprecTls>,
    /// Networks of the SRCs (SBCs, PBXs) allowed to send SIP; anything else is dropped unanswered.
    pub allow: Vec<Cidr>,
    /// The address put in SDP answers and on which RTP ports are bound; unset, the SIP listener's
    /// address (which then must not be a wildcard).
    pub media_address: Option<IpAddr>,
    /// The RTP port range, `"first-last"`: each session takes a block of four (two streams, each
    /// an RTP port and its RTCP port above it).
    #[serde(deserialize_with = "port_range")]
    pub rtp_ports: (u16, u16),
    /// Most sessions at once; an INVITE over it is answered `503` with `Retry-After`.
    pub max_sessions: usize,
    /// Most new sessions accepted per second (a flood of INVITEs is answered `503`).
    pub max_new_per_second: u32,
    /// A session whose streams send no RTP for this long (while not paused by `a=inactive`) is
    /// ended with a BYE.
    #[serde(deserialize_with = "super::tree::duration_de")]
    pub rtp_timeout: Duration,
    /// Where a session's call id comes from, first match wins: `"element:NAME"` (a metadata
    /// element by local name, e.g. `"element:ucid"`), `"header:NAME"` (an INVITE header),
    /// `"session"` (the metadata's session id), `"call-id"` (SIP `Call-ID`, always the last resort).
    #[serde(deserialize_with = "id_sources")]
    pub call_id: Vec<IdSource>,
    /// The `a=label` of the caller's stream; unset, the first `m=` line is the caller's and the
    /// second the agent's.
    pub caller_label: Option<String>,
    /// How long the server waits before answering a new INVITE (`100 Trying` goes at once): zero
    /// normally; an SRC that needs a ringing phase, or a test of CANCEL, may set it.
    #[serde(deserialize_with = "super::tree::duration_de")]
    pub answer_delay: Duration,
}

/// SIP over TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiprecTls {
    /// Address and port.
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (a secret file).
    pub key: SecretFile,
}

impl Default for SiprecConfig {
    fn default() -> Self {
        Self {
            udp: None,
            tcp: None,
            tls: None,
            allow: vec![
                Cidr::from_str("127.0.0.0/8").expect("a valid literal"),
                Cidr::from_str("::1/128").expect("a valid literal"),
            ],
            media_address: None,
            rtp_ports: (20000, 29999),
            max_sessions: 1000,
            max_new_per_second: 100,
            rtp_timeout: Duration::from_secs(30),
            call_id: vec![IdSource::Session, IdSource::CallId],
            caller_label: None,
            answer_delay: Duration::ZERO,
        }
    }
}

impl SiprecConfig {
    /// Whether any SIP listener is configured.
    pub fn enabled(&self) -> bool {
        self.udp.is_some() || self.tcp.is_some() || self.tls.is_some()
    }

    /// Whether a peer at `ip` may send SIP.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(ip))
    }

    /// The media address: `media_address`, else the first listener's address when it is not a
    /// wildcard.
    pub fn media_ip(&self) -> Option<IpAddr> {
        self.media_address.or_else(|| {
            [self.udp, self.tcp, self.tls.as_ref().map(|t| t.listen)]
                .into_iter()
                .flatten()
                .map(|a| a.ip())
                .find(|ip| !ip.is_unspecified())
        })
    }

    /// The cross-field checks of `Config::load`: `(key, reason)` of the first failure.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !self.enabled() {
            return Ok(());
        }
        if self.media_ip().is_none() {
            return Err((
                "siprec.media_address",
                "required when the sip listeners bind a wildcard address".into(),
            ));
        }
        let (a, b) = self.rtp_ports;
        if a < 1024 || b < a || b - a < 3 {
            return Err((
                "siprec.rtp_ports",
                "must be \"first-last\" above 1023 with room for at least four ports".into(),
            ));
        }
        if self.max_sessions == 0 || self.max_new_per_second == 0 {
            return Err((
                "siprec.max_sessions",
                "max_sessions and max_new_per_second must be at least 1".into(),
            ));
        }
        if self.rtp_timeout < Duration::from_secs(1) || self.answer_delay > Duration::from_secs(30)
        {
            return Err((
                "siprec.rtp_timeout",
                "rtp_timeout must be at least 1s and answer_delay at most 30s".into(),
            ));
        }
        Ok(())
    }
}

fn port_range<'de, D: Deserializer<'de>>(d: D) -> Result<(u16, u16), D::Error> {
    let s = String::deserialize(d)?;
    let bad = || serde::de::Error::custom(format!("expected \"first-last\" ports, got {s:?}"));
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

fn id_sources<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IdSource>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let c: SiprecConfig = toml::from_str(
            "udp = \"127.0.0.1:5060\"\nrtp_ports = \"30000-30099\"\ncall_id = [\"element:ucid\", \"call-id\"]\nrtp_timeout = \"5s\"\n",
        )
        .expect("parses");
        assert_eq!(c.rtp_ports, (30000, 30099));
        assert_eq!(c.call_id[0], IdSource::Element("ucid".into()));
        assert!(c.check().is_ok());
        assert_eq!(c.media_ip(), "127.0.0.1".parse().ok());
        let wild: SiprecConfig = toml::from_str("udp = \"0.0.0.0:5060\"").expect("parses");
        assert_eq!(wild.check().map_err(|e| e.0), Err("siprec.media_address"));
        let narrow: SiprecConfig =
            toml::from_str("udp = \"127.0.0.1:5060\"\nrtp_ports = \"30000-30001\"")
                .expect("parses");
        assert_eq!(narrow.check().map_err(|e| e.0), Err("siprec.rtp_ports"));
        assert!(toml::from_str::<SiprecConfig>("call_id = [\"bogus\"]").is_err());
        assert!(toml::from_str::<SiprecConfig>("rtp_ports = \"1\"").is_err());
        assert!(!SiprecConfig::default().enabled());
    }
}
