//! Config sections of the telephony platform adapters: `[twilio]`, `[audiohook]`, `[audiosocket]`.
//! Each is off by default; its secrets are only read (and required) when it is on.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::SecretFile;

/// Twilio Media Streams (`GET /v1/twilio/media`) and call status callbacks
/// (`POST /v1/twilio/events`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwilioConfig {
    /// Serve the Twilio routes; off, they answer 404.
    pub enabled: bool,
    /// The account Auth Token (a secret file) that signs `X-Twilio-Signature`.
    pub auth_token: SecretFile,
    /// The SharedKey secret (a secret file) for webhooks that carry
    /// `X-Twilio-Webhooks-Signature-Settings`; without it the Auth Token is the key.
    pub shared_key: Option<SecretFile>,
    /// The public base URL Twilio calls, e.g. `https://rec.example.gov.uk`, without a trailing
    /// slash: signatures cover this plus the request's path and query (`wss://` for the media
    /// socket). Required when enabled.
    pub public_url: Option<String>,
    /// Check the media socket upgrade's `X-Twilio-Signature`. Only a simulator that cannot sign
    /// needs it off.
    pub verify_media_signature: bool,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            auth_token: SecretFile::unresolved("twilio-auth-token".into()),
            shared_key: None,
            public_url: None,
            verify_media_signature: true,
        }
    }
}

/// Genesys Cloud AudioHook v2 (`GET /v1/audiohook`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioHookConfig {
    /// Serve the AudioHook route; off, it answers 404.
    pub enabled: bool,
    /// The API key Genesys sends as `X-API-KEY` and `keyid` (a secret file).
    pub api_key: SecretFile,
    /// The client secret, base64, that keys the HTTP message signature (a secret file).
    pub client_secret: SecretFile,
}

impl Default for AudioHookConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            api_key: SecretFile::unresolved("audiohook-api-key".into()),
            client_secret: SecretFile::unresolved("audiohook-client-secret".into()),
        }
    }
}

/// Asterisk AudioSocket: a plain TCP listener with no authentication, so only the networks in
/// `allow` may connect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioSocketConfig {
    /// Address and port to listen on; unset, there is no listener.
    pub listen: Option<SocketAddr>,
    /// Networks allowed to connect (CIDR); any other peer is closed at once.
    pub allow: Vec<Cidr>,
}

impl Default for AudioSocketConfig {
    fn default() -> Self {
        Self {
            listen: None,
            allow: vec![
                Cidr::from_str("127.0.0.0/8").expect("a valid literal"),
                Cidr::from_str("::1/128").expect("a valid literal"),
            ],
        }
    }
}

impl AudioSocketConfig {
    /// Whether a peer at `ip` may connect.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(ip))
    }
}

/// An IP network such as `10.20.0.0/16` or `2001:db8::/32`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address/prefix such as 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cidr_membership() {
        let net: Cidr = "10.20.0.0/16".parse().expect("cidr");
        assert!(net.contains(ip("10.20.3.4")));
        assert!(!net.contains(ip("10.21.0.1")));
        assert!(net.contains(ip("::ffff:10.20.0.9")));
        let one: Cidr = "127.0.0.2".parse().expect("cidr");
        assert!(one.contains(ip("127.0.0.2")));
        assert!(!one.contains(ip("127.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains(ip("192.0.2.1")));
        assert!(!all.contains(ip("::1")));
        let v6: Cidr = "2001:db8::/32".parse().expect("cidr");
        assert!(v6.contains(ip("2001:db8:1::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense/8".parse::<Cidr>().is_err());
    }

    #[test]
    fn default_allows_only_loopback() {
        let c = AudioSocketConfig::default();
        assert!(c.allows(ip("127.0.0.1")));
        assert!(c.allows(ip("::1")));
        assert!(!c.allows(ip("192.168.1.1")));
    }
}
