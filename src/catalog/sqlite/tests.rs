//! The conformance suite on SQLite (in memory and on file), and what only SQLite can show: reopening,
//! schema versions, undecodable rows, and tampering with stored audit rows behind callvault's back.

use std::sync::Arc;

use chrono::DateTime;

use super::*;
use crate::audit::{ChainBreak, ChainVerifier};
use crate::catalog::conformance::catalog_conformance;
use crate::catalog::{RecordingStatus, SegmentStatus};
use crate::domain::Codec;

mod in_memory {
    use super::*;

    catalog_conformance!((
        Arc::new(SqliteCatalog::open_in_memory().expect("open in memory")) as Arc<dyn Catalog>,
        ()
    ));
}

mod on_file {
    use super::*;

    catalog_conformance!({
        let dir = tempfile::tempdir().expect("temp dir");
        let catalog = SqliteCatalog::open(dir.path().join("catalog.db")).expect("open file");
        (Arc::new(catalog) as Arc<dyn Catalog>, dir)
    });
}

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_355_600 + secs, 250_000).expect("valid time")
}

/// Runs SQL straight on the connection, as someone with the database file could.
fn raw(c: &SqliteCatalog, sql: &str) {
    c.ops
        .conn()
        .lock()
        .expect("not poisoned")
        .execute_batch(sql)
        .expect("raw sql");
}

fn recording(call_id: &str) -> RecordingRow {
    RecordingRow {
        id: RecordingId::new(),
        call_id: call_id.parse().expect("valid call id"),
        status: RecordingStatus::Sealed,
        line: Some("+441234567890".into()),
        queue: None,
        agent: Some("agent-1".into()),
        caller_tag: Some([1; 32]),
        caller_sealed: Some(vec![9; 40]),
        policy: "standard".into(),
        codec: Codec::Pcma,
        sample_rate: 8000,
        channels: 2,
        started_at: t(0),
        ended_at: Some(t(60)),
        expires_at: Some(t(86_400)),
        restricted: true,
        updated_at: t(61),
    }
}

async fn chain_of(c: &SqliteCatalog, n: i64) -> Vec<AuditEntry> {
    let mut out = Vec::new();
    for i in 0..n {
        let e = NewAuditEntry::new(t(i), "alice", "recording.play", format!("rec-{i}"))
            .reason("complaint C-9");
        out.push(c.append_audit(e).await.expect("append"));
    }
    out
}

async fn verify(c: &SqliteCatalog) -> Result<(ChainHead, u64), ChainBreak> {
    let mut v = ChainVerifier::new();
    for e in c.audit_after(0, 1000).await.expect("read audit") {
        v.push(&e);
    }
    v.finish()
}

#[tokio::test]
async fn a_reopened_file_keeps_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("catalog.db");
    let r = recording("CA-keep");
    let seg = SegmentRow {
        recording_id: r.id,
        segment: SegmentNo(0),
        object_key: "v1/2026/03/01/x/0000.cva".into(),
        kek_id: Some("kek-1".parse().expect("valid key id")),
        wrapped_key: Some(vec![3; 60]),
        media_start_ms: 0,
        media_end_ms: 60_000,
        size: 480_000,
        sha256: Some([4; 32]),
        status: SegmentStatus::Stored,
    };
    let hold = HoldRow {
        reference: "C-1".into(),
        reason: "complaint".into(),
        actor: "alice".into(),
        created_at: t(100),
        caller_tag: None,
        from: None,
        to: None,
        released_at: None,
        released_by: None,
        release_reason: None,
    };
    let token = TokenRow {
        id: "tok-1".into(),
        name: "ops laptop".into(),
        role: "ops".into(),
        hash: [5; 32],
        created_at: t(0),
        revoked_at: None,
    };
    let (ledger, audit) = {
        let c = SqliteCatalog::open(&path).expect("open");
        c.insert_recording(&r).await.expect("insert");
        c.insert_segment(&seg).await.expect("insert");
        let ledger = c
            .append_ledger(&NewLedgerEntry {
                recording_id: r.id,
                at: t(30),
                kind: "pause".into(),
                actor: "system".into(),
                reason: None,
                details: "{}".into(),
            })
            .await
            .expect("append");
        c.insert_hold(&hold).await.expect("insert");
        c.link_hold("C-1", r.id).await.expect("link");
        c.insert_token(&token).await.expect("insert");
        assert!(c.mark_event_seen("evt-1", t(0)).await.expect("mark"));
        (ledger, chain_of(&c, 3).await)
    };

    let c = SqliteCatalog::open(&path).expect("reopen");
    assert_eq!(c.recording(r.id).await.expect("read"), Some(r.clone()));
    assert_eq!(c.segments(r.id).await.expect("read"), vec![seg]);
    assert_eq!(c.ledger(r.id).await.expect("read"), vec![ledger]);
    assert_eq!(c.holds_for_recording(r.id).await.expect("read"), vec![hold]);
    assert_eq!(c.tokens().await.expect("read"), vec![token]);
    assert!(!c.mark_event_seen("evt-1", t(1)).await.expect("mark"));
    assert_eq!(c.audit_after(0, 10).await.expect("read"), audit);
    assert_eq!(verify(&c).await, Ok((audit[2].head(), 3)));
    // the chain goes on from the stored head
    let next = chain_of(&c, 1).await;
    assert_eq!(next[0].seq, 4);
    assert_eq!(next[0].prev_hash, audit[2].hash);

    // migrations ran once, and the file is in WAL mode with the pragmas set
    let conn = c.ops.conn().lock().expect("not poisoned");
    let versions: i64 = conn
        .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
        .expect("count");
    assert_eq!(versions, i64::from(SqliteCatalog::schema_version()));
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(mode, "wal");
    let fk: bool = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .expect("pragma");
    assert!(fk);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("catalog.db");
    drop(SqliteCatalog::open(&path).expect("open"));
    let newer = SqliteCatalog::schema_version() + 1;
    Connection::open(&path)
        .expect("open raw")
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![newer, ts(&t(0))],
        )
        .expect("insert version");
    match SqliteCatalog::open(&path) {
        Err(CatalogError::Migration { version, .. }) => assert_eq!(version, newer),
        other => panic!("expected a migration error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_undecodable_row_is_corrupt_not_a_panic() {
    let r = recording("CA-corrupt");
    // (the schema's CHECKs and STRICT types refuse most damage; these get past them)
    for (column, value) in [
        ("status", "'paused'"),
        ("codec", "99"),
        ("started_at", "'yesterday'"),
        ("call_id", "'a/b'"),
        ("channels", "300"),
    ] {
        let c = SqliteCatalog::open_in_memory().expect("open");
        c.insert_recording(&r).await.expect("insert");
        raw(&c, &format!("UPDATE recordings SET {column} = {value}"));
        match c.recording(r.id).await {
            Err(CatalogError::Corrupt { what }) => {
                assert!(what.contains(column), "{what} names {column}")
            }
            other => panic!("{column}: expected corrupt, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn audit_rows_refuse_update_and_delete() {
    let c = SqliteCatalog::open_in_memory().expect("open");
    chain_of(&c, 2).await;
    for sql in [
        "UPDATE audit SET reason = 'none' WHERE seq = 1",
        "DELETE FROM audit WHERE seq = 2",
    ] {
        let conn = c.ops.conn().lock().expect("not poisoned");
        let err = conn.execute_batch(sql).expect_err("append-only");
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert_eq!(verify(&c).await.map(|(_, n)| n), Ok(2));
}

#[tokio::test]
async fn an_edited_audit_row_is_named() {
    let c = SqliteCatalog::open_in_memory().expect("open");
    chain_of(&c, 5).await;
    raw(
        &c,
        "DROP TRIGGER audit_no_update; UPDATE audit SET reason = 'routine' WHERE seq = 3",
    );
    assert_eq!(verify(&c).await, Err(ChainBreak::Altered { seq: 3 }));
}

#[tokio::test]
async fn a_deleted_audit_row_is_named() {
    let c = SqliteCatalog::open_in_memory().expect("open");
    chain_of(&c, 5).await;
    raw(
        &c,
        "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 3",
    );
    assert_eq!(
        verify(&c).await,
        Err(ChainBreak::Missing { seq: 4, after: 2 })
    );
}

#[tokio::test]
async fn swapped_audit_seqs_are_named() {
    let c = SqliteCatalog::open_in_memory().expect("open");
    chain_of(&c, 5).await;
    raw(
        &c,
        "DROP TRIGGER audit_no_update;
         UPDATE audit SET seq = 1000 WHERE seq = 2;
         UPDATE audit SET seq = 2 WHERE seq = 4;
         UPDATE audit SET seq = 4 WHERE seq = 1000;",
    );
    // the row now at position 2 links to the entry that is stored at position 4
    assert_eq!(verify(&c).await, Err(ChainBreak::OutOfOrder { seq: 2 }));
}

#[tokio::test]
async fn a_rehashed_audit_row_breaks_the_next_link() {
    let c = SqliteCatalog::open_in_memory().expect("open");
    let chain = chain_of(&c, 4).await;
    // a forger who recomputes the edited row's hash still cannot fix the row after it
    let mut forged = chain[1].entry.clone();
    forged.actor = "mallory".into();
    let forged = AuditEntry::chained(chain[0].head(), forged);
    raw(
        &c,
        &format!(
            "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory', hash = x'{}' WHERE seq = 2",
            hex::encode(forged.hash)
        ),
    );
    assert_eq!(
        verify(&c).await,
        Err(ChainBreak::Missing { seq: 3, after: 2 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_commits_and_a_failing_one_rolls_back_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = Arc::new(SqliteCatalog::open(dir.path().join("catalog.db")).expect("open file"));
    let taken = recording("CA-dup");
    c.insert_recording(&taken).await.expect("first insert");
    let before = c.ops.batches();
    // 200 inserts at once, every tenth a second recording for a call that has one: a conflict
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let call = if i % 10 == 0 {
                    "CA-dup".to_owned()
                } else {
                    format!("CA-{i}")
                };
                c.insert_recording(&recording(&call)).await
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        match t.await.expect("no panic") {
            Ok(()) => {}
            Err(CatalogError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(conflicts, 20);
    let batches = c.ops.batches() - before;
    assert!(
        batches < 200,
        "{batches} batches for 200 operations: nothing was shared"
    );
    // the 180 that succeeded are there, the failed ones left nothing, and all survive a reopen
    drop(c);
    let c = SqliteCatalog::open(dir.path().join("catalog.db")).expect("reopen");
    for i in (0..200).filter(|i| i % 10 != 0) {
        let call: CallId = format!("CA-{i}").parse().expect("call id");
        assert!(
            c.recording_by_call(&call).await.expect("read").is_some(),
            "CA-{i}"
        );
    }
    let dup: CallId = "CA-dup".parse().expect("call id");
    let kept = c
        .recording_by_call(&dup)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(kept.id, taken.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_operation_is_rolled_back_and_the_catalog_goes_on() {
    let c = Arc::new(SqliteCatalog::open_in_memory().expect("open"));
    let row = recording("CA-panic");
    let inner = Arc::clone(&c);
    let written = row.clone();
    let panicked = tokio::spawn(async move {
        inner
            .run(move |conn| {
                super::recordings::insert_recording(conn, &written)?;
                panic!("an operation panics after writing");
                #[allow(unreachable_code)]
                Ok(())
            })
            .await
    })
    .await;
    assert!(
        panicked
            .expect_err("the panic reaches the caller")
            .is_panic()
    );
    let call: CallId = "CA-panic".parse().expect("call id");
    assert!(c.recording_by_call(&call).await.expect("read").is_none());
    c.insert_recording(&row)
        .await
        .expect("the catalog still writes");
    assert!(c.recording_by_call(&call).await.expect("read").is_some());
}
