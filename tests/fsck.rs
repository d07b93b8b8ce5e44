//! `callvault fsck` against planted faults: a deleted object (its sealed spool file still there), a
//! truncated object, an orphan object of an erased recording, an orphan of no recording, a data key
//! kept for a deleted segment, and a stray spool file. fsck names each and exits 1; `--repair`
//! needs a reason, makes only the safe repairs (re-upload, delete the erased recording's orphan),
//! audits each, and leaves the rest reported.

mod common;

use std::process::{Command, Output};

use callvault::catalog::{
    Catalog, RecordingRow, RecordingStatus, SegmentRow, SegmentStatus, SqliteCatalog,
};
use callvault::domain::{Codec, RecordingId, SegmentNo};
use callvault::vault::object_path;
use common::Deployment;
use sha2::{Digest, Sha256};

fn callvault(d: &Deployment, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--config")
        .arg(&d.config)
        .args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("USER", "tester")
        .output()
        .expect("run callvault")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A recording with one segment whose object holds `bytes`; returns its id and object key.
async fn plant(
    d: &Deployment,
    catalog: &SqliteCatalog,
    status: RecordingStatus,
    segment_status: SegmentStatus,
    bytes: &[u8],
) -> (RecordingId, String) {
    let now = chrono::Utc::now();
    let id = RecordingId::new();
    catalog
        .insert_recording(&RecordingRow {
            id,
            call_id: format!("call-{id}").parse().expect("call id"),
            status,
            line: None,
            queue: None,
            agent: None,
            caller_tag: None,
            caller_sealed: None,
            policy: "standard".into(),
            codec: Codec::Pcmu,
            sample_rate: 8000,
            channels: 2,
            started_at: now,
            ended_at: Some(now),
            expires_at: None,
            restricted: false,
            updated_at: now,
        })
        .await
        .expect("insert recording");
    let key = object_path(now, id, SegmentNo(0)).to_string();
    catalog
        .insert_segment(&SegmentRow {
            recording_id: id,
            segment: SegmentNo(0),
            object_key: key.clone(),
            kek_id: Some("kek-20260101-0001".parse().expect("kek")),
            wrapped_key: Some(vec![7; 60]),
            media_start_ms: 0,
            media_end_ms: 1000,
            size: bytes.len() as u64,
            sha256: Some(Sha256::digest(bytes).into()),
            status: segment_status,
        })
        .await
        .expect("insert segment");
    write_object(d, &key, bytes);
    (id, key)
}

fn object_file(d: &Deployment, key: &str) -> std::path::PathBuf {
    d.path("state/objects").join(key)
}

fn write_object(d: &Deployment, key: &str, bytes: &[u8]) {
    let path = object_file(d, key);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write object");
}

#[tokio::test(flavor = "multi_thread")]
async fn fsck_finds_every_planted_fault_and_repairs_only_the_safe_ones() {
    let d = Deployment::new("");
    assert!(
        callvault(&d, &["tokens", "list"]).status.success(),
        "catalog created"
    );
    let catalog = SqliteCatalog::open(d.path("state/catalog.sqlite")).expect("catalog");
    let body = |n: u8| vec![n; 4096];

    // a healthy recording: fsck is clean
    plant(
        &d,
        &catalog,
        RecordingStatus::Sealed,
        SegmentStatus::Stored,
        &body(1),
    )
    .await;
    let o = callvault(&d, &["fsck"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("0 problems"), "{}", stdout(&o));

    // 1. deleted object, its sealed spool file left behind: repairable
    let (missing, missing_key) = plant(
        &d,
        &catalog,
        RecordingStatus::Sealed,
        SegmentStatus::Stored,
        &body(2),
    )
    .await;
    std::fs::remove_file(object_file(&d, &missing_key)).expect("rm");
    let spooled = d.path(&format!("state/spool/{missing}/0000.cva"));
    std::fs::create_dir_all(spooled.parent().expect("parent")).expect("mkdir");
    std::fs::write(&spooled, body(2)).expect("spool file");
    // 2. truncated object: reported only
    let (truncated, truncated_key) = plant(
        &d,
        &catalog,
        RecordingStatus::Sealed,
        SegmentStatus::Stored,
        &body(3),
    )
    .await;
    write_object(&d, &truncated_key, &body(3)[..1000]);
    // 3. an erased recording whose object is still there (an orphan: no stored segment names
    //    it) and whose data key was kept
    let (erased, erased_orphan) = plant(
        &d,
        &catalog,
        RecordingStatus::Erased,
        SegmentStatus::Deleted,
        &body(4),
    )
    .await;
    // 4. orphan object with no recording at all: reported, never deleted
    let stranger = object_path(chrono::Utc::now(), RecordingId::new(), SegmentNo(0)).to_string();
    write_object(&d, &stranger, &body(5));
    // 5. a stray spool file of no recording
    let stray = d.path(&format!("state/spool/{}/0000.cva.part", RecordingId::new()));
    std::fs::create_dir_all(stray.parent().expect("parent")).expect("mkdir");
    std::fs::write(&stray, b"partial").expect("stray");

    let o = callvault(&d, &["fsck"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    for (fault, place) in [
        ("missing_object", missing.to_string()),
        ("size_mismatch", truncated.to_string()),
        ("sha256_mismatch", truncated.to_string()),
        ("orphan_object", erased.to_string()),
        ("key_without_object", erased.to_string()),
        ("stray_spool", stray.display().to_string()),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("found\t") && l.contains(fault) && l.contains(&place)),
            "{fault} {place} not reported:\n{out}"
        );
    }
    assert!(out.contains(&stranger), "{out}");
    assert!(
        object_file(&d, &erased_orphan).exists(),
        "fsck alone changes nothing"
    );

    // --repair needs a reason
    let o = callvault(&d, &["fsck", "--repair"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(object_file(&d, &erased_orphan).exists());

    let o = callvault(&d, &["fsck", "--repair", "--reason", "INC-42 disk restore"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "unsafe faults remain: {out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("repaired\tmissing_object")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("repaired\torphan_object") && l.contains(&erased_orphan)),
        "{out}"
    );
    assert_eq!(
        std::fs::read(object_file(&d, &missing_key)).expect("re-uploaded"),
        body(2)
    );
    assert!(!object_file(&d, &erased_orphan).exists(), "orphan deleted");
    assert!(
        object_file(&d, &stranger).exists(),
        "an orphan of no recording is kept"
    );
    assert_eq!(
        std::fs::read(object_file(&d, &truncated_key))
            .expect("kept")
            .len(),
        1000,
        "a truncated object is not touched"
    );
    let audit = catalog.audit_after(0, 100).await.expect("audit");
    let repairs: Vec<_> = audit
        .iter()
        .filter(|e| e.entry.action.starts_with("fsck."))
        .collect();
    assert_eq!(repairs.len(), 2, "{repairs:?}");
    assert!(
        repairs
            .iter()
            .all(|e| e.entry.reason.as_deref() == Some("INC-42 disk restore"))
    );

    // what is left is still reported, and a second repair changes nothing more
    let o = callvault(&d, &["fsck", "--repair", "--reason", "again"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!stdout(&o).contains("repaired\t"), "{}", stdout(&o));
}
