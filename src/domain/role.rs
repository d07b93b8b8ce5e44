//! Who may do what: the roles of people and platforms.

use std::fmt;
use std::str::FromStr;

use super::UnknownWord;

/// A role, carried by a bearer token or mapped from an OIDC claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Finds, plays and exports recordings; places complaint holds; listens live.
    Supervisor,
    /// Everything a supervisor does, plus erasure, restriction, hold release and the audit trail.
    Compliance,
    /// Operates the service: health, metrics, keys.
    Ops,
    /// A telephony platform: posts events and streams media.
    Telephony,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [
        Role::Supervisor,
        Role::Compliance,
        Role::Ops,
        Role::Telephony,
    ];

    /// The role's name in tokens, config and storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Supervisor => "supervisor",
            Role::Compliance => "compliance",
            Role::Ops => "ops",
            Role::Telephony => "telephony",
        }
    }
}

impl FromStr for Role {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, UnknownWord> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownWord::new("supervisor, compliance, ops, telephony", s))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse(), Ok(r));
        }
        assert!("admin".parse::<Role>().is_err());
    }
}
