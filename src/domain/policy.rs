//! Recording policies: what a line or queue keeps, for how long, and how its pauses sound.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::{DtmfPolicy, Period};

/// How a line asks for consent (DESIGN.md section 2, consent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentMode {
    /// Record from the start; the caller may refuse at any time.
    Implied,
    /// Hold audio in memory and commit it only once consent is given.
    Explicit,
}

/// How a payment pause is rendered on playback and export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PauseRender {
    /// Cut out: the audio either side is joined.
    Skip,
    /// Silence as long as the pause.
    Silence,
    /// A quiet 425 Hz beep as long as the pause, so a listener hears that something was removed.
    Tone,
}

/// A named policy, as one or more lines or queues use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The policy's name, stored with every recording made under it.
    pub name: String,
    /// How long a recording is kept after the call ends.
    pub retention: Period,
    /// How consent is obtained.
    pub consent: ConsentMode,
    /// How long audio waits in memory for explicit consent before it is discarded.
    pub consent_wait: Duration,
    /// How pauses are rendered.
    pub pause_render: PauseRender,
    /// A payment pause longer than this resumes by itself; `None` stays paused until the call ends.
    pub max_pause: Option<Duration>,
    /// What keypad tones cost capture (`pci.dtmf`, `pci.dtmf_quiet`, `pci.dtmf_sensitivity`, or
    /// this policy's own).
    pub dtmf: DtmfPolicy,
}

/// A word that names no variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected one of {expected}, got {got:?}")]
pub struct UnknownWord {
    expected: &'static str,
    got: String,
}

impl UnknownWord {
    pub(crate) fn new(expected: &'static str, got: &str) -> Self {
        Self {
            expected,
            got: got.to_owned(),
        }
    }
}

macro_rules! words {
    ($ty:ident, $expected:literal, $($word:literal => $variant:ident),+) => {
        impl FromStr for $ty {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($word => Ok($ty::$variant),)+
                    _ => Err(UnknownWord { expected: $expected, got: s.to_owned() }),
                }
            }
        }
        impl $ty {
            /// The word that names this variant in config and storage.
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $word,)+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(ConsentMode, "implied, explicit", "implied" => Implied, "explicit" => Explicit);
words!(PauseRender, "skip, silence, tone", "skip" => Skip, "silence" => Silence, "tone" => Tone);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for m in [ConsentMode::Implied, ConsentMode::Explicit] {
            assert_eq!(m.as_str().parse(), Ok(m));
        }
        for r in [PauseRender::Skip, PauseRender::Silence, PauseRender::Tone] {
            assert_eq!(r.as_str().parse(), Ok(r));
        }
        let e = "beep".parse::<PauseRender>().expect_err("not a rendering");
        assert_eq!(
            e.to_string(),
            "expected one of skip, silence, tone, got \"beep\""
        );
    }
}
