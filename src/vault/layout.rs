//! Where sealed segments live: object keys in the store and spool files on local disk.
//!
//! This module owns the naming scheme (frozen for `v1`) and its parser. It must not touch the store
//! or the disk.
//!
//! - object key: `v1/{yyyy}/{mm}/{dd}/{recording_id}/{segment:04}.cva`, dated by the UTC day the
//!   call started;
//! - spool file: `{state_dir}/spool/{recording_id}/{segment:04}.cva.part`.

use std::path::PathBuf;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use object_store::path::Path;

use super::VaultError;
use crate::domain::{RecordingId, SegmentNo};

/// First part of every object key of this layout.
pub const LAYOUT_PREFIX: &str = "v1";
/// Extension of a sealed segment object.
pub const OBJECT_EXT: &str = ".cva";
/// Extension of a spool file still being written.
pub const SPOOL_EXT: &str = ".cva.part";

/// The object key of a segment of a recording whose call started at `started`.
pub fn object_path(started: DateTime<Utc>, recording: RecordingId, segment: SegmentNo) -> Path {
    Path::from(format!(
        "{}/{segment}{OBJECT_EXT}",
        recording_prefix(started, recording)
    ))
}

/// The prefix under which all segments of a recording live (to list or delete them all).
pub fn recording_prefix(started: DateTime<Utc>, recording: RecordingId) -> Path {
    let d = started.date_naive();
    Path::from(format!(
        "{LAYOUT_PREFIX}/{:04}/{:02}/{:02}/{recording}",
        d.year(),
        d.month(),
        d.day()
    ))
}

/// Reads an object key back into the call's start date, the recording and the segment. Only the
/// exact form [`object_path`] writes is accepted.
pub fn parse_object_path(path: &Path) -> Result<(NaiveDate, RecordingId, SegmentNo), VaultError> {
    let text = path.as_ref();
    let fail = |reason| VaultError::BadPath {
        path: text.to_owned(),
        reason,
    };
    let parts: Vec<&str> = text.split('/').collect();
    let [prefix, y, m, d, rid, file] = parts[..] else {
        return Err(fail("expected v1/yyyy/mm/dd/recording/segment.cva"));
    };
    if prefix != LAYOUT_PREFIX {
        return Err(fail("not under v1/"));
    }
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
        return Err(fail("date is not yyyy/mm/dd"));
    }
    let date = NaiveDate::parse_from_str(&format!("{y}-{m}-{d}"), "%Y-%m-%d")
        .map_err(|_| fail("not a calendar date"))?;
    let recording: RecordingId = rid.parse().map_err(|_| fail("not a recording id"))?;
    if recording.to_string() != rid {
        return Err(fail("recording id is not in canonical form"));
    }
    let seg = file
        .strip_suffix(OBJECT_EXT)
        .ok_or_else(|| fail("not a .cva object"))?;
    let n: u32 = seg
        .parse()
        .ok()
        .filter(|_| seg.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| fail("segment number is not a number"))?;
    if SegmentNo(n).to_string() != seg {
        return Err(fail("segment number is not zero-padded to four digits"));
    }
    Ok((date, recording, SegmentNo(n)))
}

/// The spool file of a segment being recorded.
pub fn spool_path(
    state_dir: &std::path::Path,
    recording: RecordingId,
    segment: SegmentNo,
) -> PathBuf {
    state_dir
        .join("spool")
        .join(recording.to_string())
        .join(format!("{segment}{SPOOL_EXT}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rid() -> RecordingId {
        "01936a4e-7b2c-7d3e-8f40-123456789abc".parse().unwrap()
    }

    #[test]
    fn object_paths_are_dated_by_utc_start() {
        // 23:30 on 31 Dec in UTC is the date used, whatever the local zone.
        let started = Utc.with_ymd_and_hms(2026, 12, 31, 23, 30, 0).unwrap();
        let p = object_path(started, rid(), SegmentNo(7));
        assert_eq!(
            p.as_ref(),
            "v1/2026/12/31/01936a4e-7b2c-7d3e-8f40-123456789abc/0007.cva"
        );
        assert_eq!(
            recording_prefix(started, rid()).as_ref(),
            "v1/2026/12/31/01936a4e-7b2c-7d3e-8f40-123456789abc"
        );
        let (date, r, s) = parse_object_path(&p).unwrap();
        assert_eq!(date, NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
        assert_eq!((r, s), (rid(), SegmentNo(7)));
        let big = object_path(started, rid(), SegmentNo(12345));
        assert!(big.as_ref().ends_with("/12345.cva"));
        assert_eq!(parse_object_path(&big).unwrap().2, SegmentNo(12345));
    }

    #[test]
    fn malformed_object_paths_are_refused() {
        let r = "01936a4e-7b2c-7d3e-8f40-123456789abc";
        for bad in [
            format!("v2/2026/01/02/{r}/0001.cva"),
            format!("v1/2026/1/02/{r}/0001.cva"),
            format!("v1/2026/02/30/{r}/0001.cva"),
            format!("v1/2026/01/02/{r}/1.cva"),
            format!("v1/2026/01/02/{r}/00001.cva"),
            format!("v1/2026/01/02/{r}/+001.cva"),
            format!("v1/2026/01/02/{r}/0001.cva.part"),
            format!("v1/2026/01/02/{}/0001.cva", r.to_uppercase()),
            "v1/2026/01/02/not-a-uuid/0001.cva".to_owned(),
            format!("v1/2026/01/02/{r}"),
        ] {
            match parse_object_path(&Path::from(bad.as_str())) {
                Err(VaultError::BadPath { .. }) => {}
                other => panic!("{bad} gave {other:?}"),
            }
        }
    }

    #[test]
    fn spool_paths_sit_under_the_state_dir() {
        let p = spool_path(std::path::Path::new("state"), rid(), SegmentNo(3));
        assert_eq!(
            p,
            std::path::Path::new("state/spool/01936a4e-7b2c-7d3e-8f40-123456789abc/0003.cva.part")
        );
    }
}
