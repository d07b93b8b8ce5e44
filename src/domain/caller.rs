//! Caller numbers: the E.164 normalisation that every search, hold and recording agrees on, and the
//! masked form shown to roles that may not see the whole number.
//!
//! libphonenumber's rules (the `phonenumber` crate) decide what a number is; there is no hand-written
//! pattern here. A number without an international prefix is read as a UK one (the default region).

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::{Mode, PhoneNumber};

/// A caller's number in E.164 form (`+441744676789`). Parse it with [`str::parse`]; after that the
/// type is the proof that it is a valid number. Its `Debug` hides all but the last four digits, so a
/// stray `?` in a log line does not leak it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CallerNumber(String);

/// Why a caller number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerNumberError {
    /// Not a telephone number at all.
    #[error("not a telephone number")]
    Unparsable,
    /// Parsed, but not a number that can exist under its country's numbering plan.
    #[error("not a valid telephone number")]
    Invalid,
}

/// The region a number without an international prefix belongs to.
pub const DEFAULT_REGION: Id = Id::GB;

impl CallerNumber {
    /// The E.164 text, e.g. `+441744676789`. Callers must not log it.
    pub fn as_e164(&self) -> &str {
        &self.0
    }

    /// The number with its middle digits hidden, e.g. `+44 **** **6789`: the country code and the
    /// last four digits stay, so a supervisor can tell two callers apart without learning either.
    pub fn masked(&self) -> String {
        mask_e164(&self.0)
    }
}

/// [`CallerNumber::masked`] for E.164 text already checked (as unsealed from the vault).
pub fn mask_e164(e164: &str) -> String {
    let digits: Vec<char> = e164.chars().filter(char::is_ascii_digit).collect();
    let cc_len = country_code_len(&digits);
    let (cc, rest) = digits.split_at(cc_len.min(digits.len()));
    let keep = rest.len().min(4);
    let hidden = rest.len() - keep;
    let stars: String = "*".repeat(hidden);
    // group the stars as the example shows: the first four, then the rest beside the kept digits
    let (first, second) = stars.split_at(stars.len().min(4));
    let tail: String = rest[hidden..].iter().collect();
    let cc: String = cc.iter().collect();
    if second.is_empty() {
        format!("+{cc} {first}{tail}")
    } else {
        format!("+{cc} {first} {second}{tail}")
    }
}

/// Length of the country calling code at the start of `digits`, as libphonenumber reads it.
fn country_code_len(digits: &[char]) -> usize {
    let text: String = std::iter::once('+').chain(digits.iter().copied()).collect();
    phonenumber::parse(None, &text).map_or(1, |n| n.code().value().to_string().len())
}

impl FromStr for CallerNumber {
    type Err = CallerNumberError;

    fn from_str(s: &str) -> Result<Self, CallerNumberError> {
        let number: PhoneNumber = phonenumber::parse(Some(DEFAULT_REGION), s.trim())
            .map_err(|_| CallerNumberError::Unparsable)?;
        if !number.is_valid() {
            return Err(CallerNumberError::Invalid);
        }
        Ok(Self(number.format().mode(Mode::E164).to_string()))
    }
}

impl fmt::Debug for CallerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallerNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(s: &str) -> Result<String, CallerNumberError> {
        s.parse::<CallerNumber>().map(|n| n.as_e164().to_owned())
    }

    #[test]
    fn uk_forms_of_one_number_agree() {
        for form in [
            "01744 676789",
            "+44 (0)1744 676789",
            "0044 1744 676789",
            "+441744676789",
            " 01744-676-789 ",
        ] {
            assert_eq!(e164(form).as_deref(), Ok("+441744676789"), "{form}");
        }
    }

    #[test]
    fn other_countries_keep_their_code() {
        assert_eq!(e164("+33 1 42 68 53 00").as_deref(), Ok("+33142685300"));
        assert_eq!(e164("+1 202-456-1111").as_deref(), Ok("+12024561111"));
    }

    #[test]
    fn what_is_not_a_number_is_refused() {
        assert!(e164("").is_err());
        assert!(e164("not a number").is_err());
        assert!(e164("12").is_err());
        assert!(e164("+44 1").is_err());
    }

    #[test]
    fn masking_keeps_the_country_code_and_four_digits() {
        let n: CallerNumber = "01744 676789".parse().expect("valid");
        assert_eq!(n.masked(), "+44 **** **6789");
        assert_eq!(format!("{n:?}"), "CallerNumber(+44 **** **6789)");
        assert_eq!(mask_e164("+12024561111"), "+1 **** **1111");
    }
}
