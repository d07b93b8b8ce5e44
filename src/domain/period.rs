//! Calendar periods such as `3 months`, and the calendar arithmetic of retention.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, Months, Utc};

/// A calendar period: whole months (a year is 12) plus whole days.
///
/// Months are calendar months, clamped to the end of a shorter month: 31 January + 3 months is
/// 30 April, and 29 February + 12 months is 28 February.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    months: u32,
    days: u32,
}

impl Period {
    /// A period of `n` calendar months.
    pub const fn months(n: u32) -> Self {
        Self { months: n, days: 0 }
    }

    /// A period of `n` days.
    pub const fn days(n: u32) -> Self {
        Self { months: 0, days: n }
    }

    /// `at` plus this period, or `None` past the end of representable time.
    pub fn after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        at.checked_add_months(Months::new(self.months))?
            .checked_add_days(Days::new(u64::from(self.days)))
    }

    /// Whether the period is empty.
    pub const fn is_zero(&self) -> bool {
        self.months == 0 && self.days == 0
    }
}

/// Why a text is not a calendar period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a calendar period such as \"3 months\", \"1 year\" or \"90 days\", got {0:?}")]
pub struct PeriodError(String);

impl FromStr for Period {
    type Err = PeriodError;

    /// Parses `N unit` terms, separated by spaces or commas: `3 months`, `1 year 6 months`,
    /// `90 days`, `2 weeks`.
    fn from_str(s: &str) -> Result<Self, PeriodError> {
        let err = || PeriodError(s.to_owned());
        let words: Vec<&str> = s
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() || words.len() % 2 != 0 {
            return Err(err());
        }
        let mut p = Period { months: 0, days: 0 };
        for pair in words.chunks(2) {
            let n: u32 = pair[0].parse().map_err(|_| err())?;
            let (months, days) = match pair[1].to_ascii_lowercase().as_str() {
                "month" | "months" => (n, 0),
                "year" | "years" => (n.checked_mul(12).ok_or_else(err)?, 0),
                "week" | "weeks" => (0, n.checked_mul(7).ok_or_else(err)?),
                "day" | "days" => (0, n),
                _ => return Err(err()),
            };
            p.months = p.months.checked_add(months).ok_or_else(err)?;
            p.days = p.days.checked_add(days).ok_or_else(err)?;
        }
        Ok(p)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u32| if n == 1 { "" } else { "s" };
        match (self.months, self.days) {
            (m, 0) => write!(f, "{m} month{}", plural(m)),
            (0, d) => write!(f, "{d} day{}", plural(d)),
            (m, d) => write!(f, "{m} month{} {d} day{}", plural(m), plural(d)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 10, 30, 0)
            .single()
            .expect("valid date")
    }

    #[test]
    fn parses_the_forms_ops_write() {
        assert_eq!("3 months".parse(), Ok(Period::months(3)));
        assert_eq!("1 month".parse(), Ok(Period::months(1)));
        assert_eq!("12 Months".parse(), Ok(Period::months(12)));
        assert_eq!("1 year".parse(), Ok(Period::months(12)));
        assert_eq!("90 days".parse(), Ok(Period::days(90)));
        assert_eq!("2 weeks".parse(), Ok(Period::days(14)));
        assert_eq!(
            "1 year, 6 months 3 days".parse(),
            Ok(Period {
                months: 18,
                days: 3
            })
        );
        for bad in [
            "",
            "3",
            "months",
            "3 fortnights",
            "-1 months",
            "3s",
            "3 months 2",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn months_are_calendar_months_clamped_to_month_end() {
        assert_eq!(
            Period::months(3).after(at(2026, 1, 31)),
            Some(at(2026, 4, 30))
        );
        assert_eq!(
            Period::months(1).after(at(2026, 1, 31)),
            Some(at(2026, 2, 28))
        );
        assert_eq!(
            Period::months(12).after(at(2028, 2, 29)),
            Some(at(2029, 2, 28))
        );
        assert_eq!(
            Period::months(12).after(at(2026, 3, 15)),
            Some(at(2027, 3, 15))
        );
        assert_eq!(Period::days(90).after(at(2026, 1, 1)), Some(at(2026, 4, 1)));
    }

    #[test]
    fn displays_as_it_parses() {
        for p in [
            Period::months(3),
            Period::days(1),
            Period { months: 1, days: 2 },
        ] {
            assert_eq!(p.to_string().parse(), Ok(p));
        }
    }
}
