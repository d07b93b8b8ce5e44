//! Imported recordings (issue 17): stored whole in one transaction, or not at all.

use std::sync::Arc;

use super::{ledger_entry, recording, segment, t};
use crate::audit::NewAuditEntry;
use crate::catalog::{Catalog, CatalogError, ImportedRecording, RecordingStatus, SegmentStatus};

fn import(call_id: &str) -> ImportedRecording {
    let mut row = recording(call_id);
    row.status = RecordingStatus::Sealed;
    let segments = (0..3)
        .map(|n| {
            let mut s = segment(row.id, n, "kek-1");
            s.status = SegmentStatus::Stored;
            s.sha256 = Some([n as u8; 32]);
            s
        })
        .collect();
    ImportedRecording {
        segments,
        ledger: vec![ledger_entry(row.id, "imported", t(400))],
        audit: NewAuditEntry::new(t(400), "alice", "recording.import", row.id.to_string()),
        row,
    }
}

pub(crate) async fn imports_are_stored_whole_or_not_at_all(c: Arc<dyn Catalog>) {
    let first = import("CA-import");
    c.insert_import(&first).await.expect("import");
    assert_eq!(
        c.recording(first.row.id).await.expect("read"),
        Some(first.row.clone())
    );
    assert_eq!(
        c.segments(first.row.id).await.expect("read"),
        first.segments
    );
    let ledger = c.ledger(first.row.id).await.expect("read");
    assert_eq!(
        ledger.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["imported"]
    );
    let head = c.audit_head().await.expect("head");
    assert_eq!(head.seq, 1);

    // the same call again (another file, or the same one twice): refused, nothing written
    let again = import("CA-import");
    assert!(matches!(
        c.insert_import(&again).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert_eq!(c.recording(again.row.id).await.expect("read"), None);
    assert!(c.segments(again.row.id).await.expect("read").is_empty());
    assert_eq!(c.audit_head().await.expect("head"), head);

    // a failure half way (a segment number twice) leaves no row, segment, ledger or audit entry
    let mut broken = import("CA-import-broken");
    let dup = broken.segments[0].clone();
    broken.segments.push(dup);
    assert!(c.insert_import(&broken).await.is_err());
    assert_eq!(c.recording(broken.row.id).await.expect("read"), None);
    assert!(c.segments(broken.row.id).await.expect("read").is_empty());
    assert!(c.ledger(broken.row.id).await.expect("read").is_empty());
    assert_eq!(c.audit_head().await.expect("head"), head);

    // a segment of another recording is refused before anything is written
    let mut stray = import("CA-import-stray");
    stray.segments[1].recording_id = first.row.id;
    assert!(matches!(
        c.insert_import(&stray).await,
        Err(CatalogError::Invalid { .. })
    ));
    assert_eq!(c.recording(stray.row.id).await.expect("read"), None);
}
