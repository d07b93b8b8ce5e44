//! Imported recordings (DESIGN.md section 2, "Imported recordings"): the rules a finished recording
//! brought in after the call obeys, decided once for the upload API and `callvault import` alike.
//!
//! - retention is counted from the original call's end, by the status machine's
//!   [`expires_at`](super::status::expires_at); an import already past its expiry is refused and
//!   never stored ([`plan`]);
//! - the audio must be as long as the call's metadata says, within a tolerance
//!   ([`duration_agrees`]);
//! - an import enters the status machine `sealed`, or `pci_review` when its policy says imported
//!   audio must be reviewed for card data or keypad tones were found in it
//!   ([`status::imported`]).
//!
//! No I/O: times come in as arguments.

use chrono::{DateTime, Utc};

use super::Period;
use super::status::{self, RecordingStatus};

/// Why an import is refused before any audio is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ImportRefusal {
    /// The call ends before it starts.
    #[error("the call ends ({ended}) before it starts ({started})")]
    EndsBeforeStart {
        /// The declared start.
        started: DateTime<Utc>,
        /// The declared end.
        ended: DateTime<Utc>,
    },
    /// The call's retention ran out before the import: it is not stored.
    #[error("the recording expired at {expired_at} (retention from the call's end)")]
    Expired {
        /// When retention ended, counted from the call's end.
        expired_at: DateTime<Utc>,
    },
    /// The retention period runs past the calendar.
    #[error("the retention period cannot be applied to this call's end")]
    NoExpiry,
}

/// What an accepted import will be stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportPlan {
    /// When retention deletes it (holds aside): the call's end plus the policy's period.
    pub expires_at: DateTime<Utc>,
}

/// Decides whether a call that ran `started..ended` may be imported `now` under a policy keeping
/// recordings for `retention`: refused if it ends before it starts or its retention, counted from
/// the original end, has run out (an expiry at or before `now` is out, as the retention sweep
/// deletes it at that instant).
pub fn plan(
    now: DateTime<Utc>,
    started: DateTime<Utc>,
    ended: DateTime<Utc>,
    retention: Period,
) -> Result<ImportPlan, ImportRefusal> {
    if ended < started {
        return Err(ImportRefusal::EndsBeforeStart { started, ended });
    }
    let expires_at = status::expires_at(ended, retention).ok_or(ImportRefusal::NoExpiry)?;
    if expires_at <= now {
        return Err(ImportRefusal::Expired {
            expired_at: expires_at,
        });
    }
    Ok(ImportPlan { expires_at })
}

/// Whether `decoded_ms` of audio agrees with a call that ran `started..ended`, within
/// `tolerance_ms` either way.
pub fn duration_agrees(
    decoded_ms: u64,
    started: DateTime<Utc>,
    ended: DateTime<Utc>,
    tolerance_ms: u64,
) -> bool {
    let declared = u64::try_from((ended - started).num_milliseconds()).unwrap_or(0);
    decoded_ms.abs_diff(declared) <= tolerance_ms
}

/// The status an import enters with: `pci_review` when its policy marks imports for review or
/// keypad tones were heard in it, else `sealed`.
pub fn initial_status(review_by_policy: bool, tones_heard: bool) -> RecordingStatus {
    status::imported(review_by_policy || tones_heard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn retention_counts_from_the_original_end() {
        let p = plan(
            t("2026-11-22T10:00:00Z"),
            t("2026-08-31T09:00:00Z"),
            t("2026-08-31T09:05:00Z"),
            Period::months(3),
        )
        .expect("not expired");
        // 31 Aug + 3 months = 30 Nov (calendar months, clamped)
        assert_eq!(p.expires_at, t("2026-11-30T09:05:00Z"));
    }

    #[test]
    fn an_import_past_its_expiry_is_refused() {
        let r = plan(
            t("2026-11-22T10:00:00Z"),
            t("2026-08-01T09:00:00Z"),
            t("2026-08-01T09:05:00Z"),
            Period::months(3),
        );
        assert_eq!(
            r,
            Err(ImportRefusal::Expired {
                expired_at: t("2026-11-01T09:05:00Z")
            })
        );
        // expiring exactly now is expired: the sweep would delete it at this instant
        let r = plan(
            t("2026-11-01T09:05:00Z"),
            t("2026-08-01T09:00:00Z"),
            t("2026-08-01T09:05:00Z"),
            Period::months(3),
        );
        assert!(matches!(r, Err(ImportRefusal::Expired { .. })));
    }

    #[test]
    fn a_call_ending_before_it_starts_is_refused() {
        let r = plan(
            t("2026-11-22T10:00:00Z"),
            t("2026-11-01T09:05:00Z"),
            t("2026-11-01T09:00:00Z"),
            Period::months(3),
        );
        assert!(matches!(r, Err(ImportRefusal::EndsBeforeStart { .. })));
    }

    #[test]
    fn duration_within_tolerance_either_way() {
        let (s, e) = (t("2026-11-01T09:00:00Z"), t("2026-11-01T09:00:10Z"));
        assert!(duration_agrees(10_000, s, e, 0));
        assert!(duration_agrees(8_000, s, e, 2_000));
        assert!(duration_agrees(12_000, s, e, 2_000));
        assert!(!duration_agrees(7_999, s, e, 2_000));
        assert!(!duration_agrees(12_001, s, e, 2_000));
    }

    #[test]
    fn review_by_policy_or_tones() {
        assert_eq!(initial_status(false, false), RecordingStatus::Sealed);
        assert_eq!(initial_status(true, false), RecordingStatus::PciReview);
        assert_eq!(initial_status(false, true), RecordingStatus::PciReview);
        // the review is cleared by the one transition out of it
        assert_eq!(
            initial_status(true, true).clear_review(),
            Ok(RecordingStatus::Sealed)
        );
    }
}
