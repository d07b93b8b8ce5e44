//! A spool on a real small filesystem (a tmpfs these tests mount; they need root) filled with a
//! filler file mid-segment: held audio, the bound, the loss entries, waiting closes, refusal while
//! audio is held, and the drain once space returns.

use std::io::Write;
use std::process::Command;

use super::*;

/// A tmpfs mounted over a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &FsPath) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "THESE TESTS NEED TO MOUNT A TMPFS (run them as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _unmounted = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `path` until it says `no space left on device`.
fn fill(path: &FsPath) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0x5a_u8; 64 * 1024];
    for size in [block.len(), 512] {
        loop {
            match f.write(&block[..size]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(28), "{e}");
                    break;
                }
            }
        }
    }
}

/// Bytes of 100 ms of stereo 8 kHz PCMU.
const TENTH: usize = 1_600;

async fn writable_again(env: &Env) {
    let deadline = tokio::time::Instant::now() + 5 * SECOND;
    while env.p.health().problem().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the spool never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn losses(env: &Env, id: RecordingId) -> Vec<serde_json::Value> {
    env.catalog
        .ledger(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "audio_lost")
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_bound_a_call_drops_ledgers_and_resumes_in_a_new_segment() {
    let env = Env::memory();
    let _tmpfs = Tmpfs::mount(&env.spool());
    let rec = env.recording().await;
    let data = audio(TENTH * 40);
    let mut seg = env
        .p
        .open_segment(&rec, SegmentNo(0), format(), 0)
        .await
        .unwrap();
    seg.append(&data[..8_000]).await.unwrap();
    let filler = env.spool().join("filler");
    fill(&filler);

    // held in memory: 832 bytes of a partial chunk, then nine tenths, within the 1 s bound
    let mut off = 8_000;
    for _ in 0..9 {
        seg.append(&data[off..off + TENTH]).await.unwrap();
        off += TENTH;
    }
    let problem = env.p.health().problem().expect("the spool is unwritable");
    assert!(problem.contains("no space left on device"), "{problem}");
    assert_eq!(env.p.health().episodes(), 1);
    // past the bound (768 bytes of the tenth still fit): dropped, and the call is not disturbed
    for _ in 0..6 {
        seg.append(&data[off..off + TENTH]).await.unwrap();
        off += TENTH;
    }
    assert_eq!(
        env.p.health().episodes(),
        1,
        "one episode, however many writes failed"
    );

    std::fs::remove_file(&filler).unwrap();
    writable_again(&env).await;
    let err = seg.append(&data[off..off + TENTH]).await.unwrap_err();
    assert!(matches!(err, PersistError::SpoolResumed { .. }), "{err}");
    // what the call task counted: everything it appended with Ok
    seg.close(2_000).await.unwrap();
    assert!(env.p.drain(5 * SECOND).await);

    // the kept audio: all that was accepted before the bound, whole and in order
    assert_eq!(env.decrypt(rec.id, 0).await, &data[..23_168]);
    assert_eq!(env.row(rec.id, 0).await.media_end_ms, 1_448);
    let lost = losses(&env, rec.id).await;
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["cause"], "spool_full");
    assert_eq!(lost[0]["error"], "no space left on device");
    assert_eq!(lost[0]["segment"], 0);
    assert_eq!(lost[0]["start_ms"], 1_448);
    assert_eq!(
        lost[0]["length_ms"], 652,
        "six tenths dropped (but what fit), and the one refused"
    );

    // the call continues where the audio resumes
    let mut next = env
        .p
        .open_segment(&rec, SegmentNo(1), format(), 2_100)
        .await
        .unwrap();
    next.append(&data[..TENTH]).await.unwrap();
    next.close(2_200).await.unwrap();
    assert!(env.p.drain(5 * SECOND).await);
    assert_eq!(env.decrypt(rec.id, 1).await, &data[..TENTH]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_that_cannot_be_written_waits_counts_as_pending_and_uploads_later() {
    let env = Env::memory();
    let _tmpfs = Tmpfs::mount(&env.spool());
    let rec = env.recording().await;
    let data = audio(TENTH * 6);
    let mut seg = env
        .p
        .open_segment(&rec, SegmentNo(0), format(), 0)
        .await
        .unwrap();
    seg.append(&data[..8_000]).await.unwrap();
    let filler = env.spool().join("filler");
    fill(&filler);
    seg.append(&data[8_000..]).await.unwrap();
    seg.close(600).await.unwrap();
    assert_eq!(env.p.pending_uploads(), 1, "the waiting close is pending");
    assert_eq!(env.row(rec.id, 0).await.status, SegmentStatus::Spooled);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        env.p.pending_uploads(),
        1,
        "still waiting while the disk is full"
    );

    std::fs::remove_file(&filler).unwrap();
    assert!(env.p.drain(5 * SECOND).await, "drained without a restart");
    assert_eq!(env.decrypt(rec.id, 0).await, data, "nothing lost");
    assert!(losses(&env, rec.id).await.is_empty());
    assert!(env.p.health().problem().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_opened_while_the_call_is_past_its_bound_begins_where_audio_resumes() {
    let env = Env::memory();
    let _tmpfs = Tmpfs::mount(&env.spool());
    let rec = env.recording().await;
    let data = audio(TENTH * 40);
    let mut seg = env
        .p
        .open_segment(&rec, SegmentNo(0), format(), 0)
        .await
        .unwrap();
    seg.append(&data[..8_000]).await.unwrap();
    let filler = env.spool().join("filler");
    fill(&filler);
    let mut off = 8_000;
    for _ in 0..10 {
        seg.append(&data[off..off + TENTH]).await.unwrap();
        off += TENTH;
    }
    // a roll (a payment pause, say) while the disk is full: the first segment's close waits with
    // its held audio, and the next one, past the call's bound, drops its start
    seg.close(2_000).await.unwrap();
    let mut next = env
        .p
        .open_segment(&rec, SegmentNo(1), format(), 5_000)
        .await
        .unwrap();
    for i in 0..3 {
        next.append(&data[i * TENTH..(i + 1) * TENTH])
            .await
            .unwrap();
    }
    std::fs::remove_file(&filler).unwrap();
    writable_again(&env).await;
    assert!(
        env.p.drain(5 * SECOND).await,
        "the waiting close is finished"
    );
    // room again: the segment begins here
    next.append(&data[..TENTH]).await.unwrap();
    next.close(5_400).await.unwrap();
    assert!(env.p.drain(5 * SECOND).await);

    assert_eq!(env.decrypt(rec.id, 0).await, &data[..23_168]);
    let row = env.row(rec.id, 1).await;
    assert_eq!((row.media_start_ms, row.media_end_ms), (5_300, 5_400));
    assert_eq!(env.decrypt(rec.id, 1).await, &data[..TENTH]);
    let lost = losses(&env, rec.id).await;
    let ranges: Vec<(u64, u64, u64)> = lost
        .iter()
        .map(|l| {
            (
                l["segment"].as_u64().unwrap(),
                l["start_ms"].as_u64().unwrap(),
                l["length_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ranges, [(0, 1_448, 552), (1, 5_000, 300)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_while_audio_is_held_leaves_nothing_to_write_later() {
    let env = Env::memory();
    let _tmpfs = Tmpfs::mount(&env.spool());
    let rec = env.recording().await;
    let data = audio(TENTH * 10);
    let mut seg = env
        .p
        .open_segment(&rec, SegmentNo(0), format(), 0)
        .await
        .unwrap();
    seg.append(&data[..8_000]).await.unwrap();
    let filler = env.spool().join("filler");
    fill(&filler);
    seg.append(&data[8_000..]).await.unwrap();
    // the call task's order on refusal: its open segment, then the recording
    seg.destroy().await.unwrap();
    env.p.destroy_recording(rec.id).await.unwrap();
    std::fs::remove_file(&filler).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        files_under(&env.spool()).is_empty(),
        "nothing written once space returned"
    );
    let rows = env.catalog.segments(rec.id).await.unwrap();
    assert!(
        rows.iter()
            .all(|r| r.status == SegmentStatus::Deleted && r.kek_id.is_none())
    );
    assert_eq!(env.p.pending_uploads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_before_space_returns_ledgers_the_held_audio_and_recovers_the_rest() {
    let env = Env::memory();
    let tmpfs = Tmpfs::mount(&env.spool());
    let rec = env.recording().await;
    let data = audio(TENTH * 6);
    let mut seg = env
        .p
        .open_segment(&rec, SegmentNo(0), format(), 0)
        .await
        .unwrap();
    seg.append(&data[..8_000]).await.unwrap();
    let filler = env.spool().join("filler");
    fill(&filler);
    seg.append(&data[8_000..]).await.unwrap();
    seg.close(600).await.unwrap();
    assert_eq!(env.p.pending_uploads(), 1);

    // the daemon stops while the disk is still full
    env.shutdown.cancel();
    env.tracker.close();
    env.tracker.wait().await;
    let lost = losses(&env, rec.id).await;
    assert_eq!(lost.len(), 1, "{lost:?}");
    // seven whole chunks (448 ms) reached the disk; the rest was only in memory
    assert_eq!(
        (lost[0]["start_ms"].as_u64(), lost[0]["length_ms"].as_u64()),
        (Some(448), Some(152))
    );

    std::fs::remove_file(&filler).unwrap();
    let env = env.restart().await;
    let report = env.p.recover().await.unwrap();
    assert_eq!(report.recovered.len(), 1);
    assert!(env.p.drain(5 * SECOND).await);
    assert_eq!(env.decrypt(rec.id, 0).await, &data[..7 * CHUNK as usize]);
    drop(tmpfs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_full_disk_serves_and_recovers_the_spool_once_there_is_room() {
    let env = Env::memory();
    let tmpfs = Tmpfs::mount(&env.spool());
    let rec = env.recording().await;
    let data = audio(8_000);
    let mut seg = env
        .p
        .open_segment(&rec, SegmentNo(0), format(), 0)
        .await
        .unwrap();
    seg.append(&data).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(seg); // a crash

    let filler = env.spool().join("filler");
    fill(&filler);
    let env = env.restart().await;
    let report = env
        .p
        .recover()
        .await
        .expect("recovery does not stop the start");
    assert_eq!(report.waiting, [rec.id]);
    assert!(
        env.p.health().problem().is_some(),
        "not ready while it waits"
    );
    let row = env.row(rec.id, 0).await;
    assert_eq!(row.status, SegmentStatus::Spooled);
    assert!(
        row.kek_id.is_some(),
        "its key is kept: its file is still to be recovered"
    );

    std::fs::remove_file(&filler).unwrap();
    writable_again(&env).await;
    let deadline = tokio::time::Instant::now() + 5 * SECOND;
    while env.row(rec.id, 0).await.status != SegmentStatus::Stored {
        assert!(
            tokio::time::Instant::now() < deadline,
            "recovered and uploaded without a restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.decrypt(rec.id, 0).await, &data[..7 * CHUNK as usize]);
    let kinds = env.kinds(rec.id).await;
    assert!(kinds.contains(&"crash_recovery".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"interrupted".to_owned()), "{kinds:?}");
    drop(tmpfs);
}
