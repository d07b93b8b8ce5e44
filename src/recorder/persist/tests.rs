//! Persistence against real components: a SQLite catalog and a keyring in a temp dir, and an
//! in-memory or local-filesystem object store (or one that fails on demand).

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use futures::TryStreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::catalog::{RecordingStatus, SqliteCatalog};

mod full_disk;
use crate::domain::{CallId, Codec, ManualClock};
use crate::vault::container::HEADER_LEN;
use crate::vault::{WrappedKey, open_store};

const CHUNK: u32 = 1024;
const SECOND: Duration = Duration::from_secs(1);

/// An object store that fails every call while `down` is set, and otherwise is an [`InMemory`].
#[derive(Debug, Default)]
struct FlakyStore {
    inner: InMemory,
    down: AtomicBool,
}

impl fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FlakyStore")
    }
}

impl FlakyStore {
    fn check(&self) -> object_store::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(object_store::Error::Generic {
                store: "flaky",
                source: "store is down".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for FlakyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check()?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check()?;
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check()?;
        self.inner.get_opts(location, options).await
    }
    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.check()?;
        self.inner.delete(location).await
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if let Err(e) = self.check() {
            return Box::pin(futures::stream::once(async move { Err(e) }));
        }
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.check()?;
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy_if_not_exists(from, to).await
    }
}

/// A temp state dir with a catalog, a keyring, a store and a running [`Persistence`].
struct Env {
    dir: TempDir,
    catalog: Arc<SqliteCatalog>,
    keyring: Arc<Keyring>,
    store: Arc<dyn ObjectStore>,
    kind: StoreKind,
    sync_interval: Duration,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    p: Persistence,
}

fn format() -> MediaFormat {
    MediaFormat {
        codec: Codec::Pcmu,
        sample_rate: 8000,
        channels: 2,
    }
}

impl Env {
    fn memory() -> Self {
        Self::with_store(Arc::new(InMemory::new()), StoreKind::Memory, None)
    }

    fn local() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kind = StoreKind::Local {
            root: dir.path().join("objects"),
        };
        Self::with_store(open_store(&kind).unwrap(), kind, Some(dir))
    }

    fn with_store(store: Arc<dyn ObjectStore>, kind: StoreKind, dir: Option<TempDir>) -> Self {
        Self::with_sync(store, kind, dir, Duration::from_millis(20))
    }

    fn with_sync(
        store: Arc<dyn ObjectStore>,
        kind: StoreKind,
        dir: Option<TempDir>,
        sync_interval: Duration,
    ) -> Self {
        let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let catalog = Arc::new(SqliteCatalog::open(dir.path().join("catalog.db")).unwrap());
        let keyring = Arc::new(Keyring::generate(Utc::now()));
        Self::start(dir, catalog, keyring, store, kind, sync_interval)
    }

    fn start(
        dir: TempDir,
        catalog: Arc<SqliteCatalog>,
        keyring: Arc<Keyring>,
        store: Arc<dyn ObjectStore>,
        kind: StoreKind,
        sync_interval: Duration,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut config = PersistConfig::new(dir.path().join("spool"), kind.clone());
        config.chunk_size = CHUNK;
        config.sync_interval = sync_interval;
        config.retry_min = Duration::from_millis(20);
        config.retry_max = Duration::from_millis(100);
        config.spool_backlog = SECOND;
        config.spool_retry = Duration::from_millis(20);
        config
            .retention
            .insert("standard".into(), Period::months(3));
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap(),
        ));
        let p = Persistence::start(
            catalog.clone(),
            Arc::clone(&store),
            Arc::clone(&keyring),
            clock,
            config,
            shutdown.clone(),
            &tracker,
        );
        Self {
            dir,
            catalog,
            keyring,
            store,
            kind,
            sync_interval,
            shutdown,
            tracker,
            p,
        }
    }

    /// Stops this daemon (as a crash would, for what was not closed) and starts another over the
    /// same state.
    async fn restart(self) -> Self {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        let Env {
            dir,
            catalog,
            keyring,
            store,
            kind,
            sync_interval,
            ..
        } = self;
        Self::start(dir, catalog, keyring, store, kind, sync_interval)
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    async fn recording(&self) -> RecordingRow {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap();
        let id = RecordingId::new();
        let row = RecordingRow {
            id,
            call_id: format!("CA{}", id.as_uuid().simple())
                .parse::<CallId>()
                .unwrap(),
            status: RecordingStatus::Live,
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
            ended_at: None,
            expires_at: None,
            restricted: false,
            updated_at: now,
        };
        self.catalog.insert_recording(&row).await.unwrap();
        row
    }

    async fn row(&self, id: RecordingId, seg: u32) -> SegmentRow {
        self.catalog
            .segments(id)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.segment == SegmentNo(seg))
            .unwrap()
    }

    /// The stored object of a segment, decrypted with its unwrapped key.
    async fn decrypt(&self, id: RecordingId, seg: u32) -> Vec<u8> {
        let row = self.row(id, seg).await;
        assert_eq!(row.status, SegmentStatus::Stored);
        let bytes = self
            .store
            .get(&Path::from(row.object_key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(bytes.len() as u64, row.size);
        let sha: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        assert_eq!(Some(sha), row.sha256);
        let wrapped = WrappedKey {
            kek_id: row.kek_id.unwrap(),
            bytes: row.wrapped_key.unwrap(),
        };
        let key = self.keyring.unwrap(&wrapped, id, SegmentNo(seg)).unwrap();
        vault::open(&bytes, &key).unwrap().1.to_vec()
    }

    async fn kinds(&self, id: RecordingId) -> Vec<String> {
        let ledger = self.catalog.ledger(id).await.unwrap();
        ledger.into_iter().map(|e| e.kind).collect()
    }
}

use sha2::Digest;

/// Audio that is easy to tell apart at any offset.
fn audio(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

async fn append_in_pieces(seg: &mut OpenSegment, data: &[u8], piece: usize) {
    for part in data.chunks(piece) {
        seg.append(part).await.unwrap();
    }
}

fn files_under(dir: &FsPath) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_audio_is_uploaded_stored_and_decrypts() {
    let env = Env::memory();
    let rec = env.recording().await;
    let mut seg = env
        .p
        .open_segment(&rec, SegmentNo(0), format(), 0)
        .await
        .unwrap();
    // Spooled before any audio, with a wrapped key.
    let row = env.row(rec.id, 0).await;
    assert_eq!(row.status, SegmentStatus::Spooled);
    assert!(row.kek_id.is_some());
    let data = audio(10 * CHUNK as usize + 123);
    append_in_pieces(&mut seg, &data, 333).await;
    assert_eq!(seg.plaintext_len(), data.len() as u64);
    assert_eq!(seg.sealed_chunks(), 10);
    assert!(!format!("{seg:?}").contains("key"));
    seg.close(650).await.unwrap();
    assert!(env.p.drain(5 * SECOND).await);
    assert_eq!(env.p.pending_uploads(), 0);

    assert_eq!(env.decrypt(rec.id, 0).await, data);
    let row = env.row(rec.id, 0).await;
    assert_eq!(row.media_end_ms, 650);
    assert_eq!(
        row.object_key,
        vault::object_path(rec.started_at, rec.id, SegmentNo(0)).to_string()
    );
    assert!(files_under(&env.spool()).is_empty());
    assert!(!env.spool().join(rec.id.to_string()).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_group_commits() {
    // 50 calls appending a chunk at a time as fast as they can: each file is synced at most once
    // per round however often it was written, and a round is one blocking task for all of them.
    let env = Env::with_sync(
        Arc::new(InMemory::new()),
        StoreKind::Memory,
        None,
        Duration::from_millis(100),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let rec = env.recording().await;
        let mut seg = env
            .p
            .open_segment(&rec, SegmentNo(0), format(), 0)
            .await
            .unwrap();
        tasks.spawn(async move {
            let data = audio(CHUNK as usize);
            for _ in 0..40 {
                seg.append(&data).await.unwrap();
                tokio::task::yield_now().await;
            }
            seg.close(5000).await.unwrap();
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert!(env.p.drain(20 * SECOND).await);
    let stats = env.p.sync_stats();
    eprintln!(
        "group commit: {} appends, {} fdatasyncs in {} rounds ({:.1} appends per fdatasync)",
        stats.appends,
        stats.file_syncs,
        stats.rounds,
        stats.appends as f64 / stats.file_syncs.max(1) as f64
    );
    assert_eq!(stats.appends, 50 * 40);
    assert!(stats.rounds > 0);
    assert!(
        stats.file_syncs * 4 < stats.appends,
        "{} syncs for {} appends",
        stats.file_syncs,
        stats.appends
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_keeps_exactly_the_whole_synced_chunks() {
    let env = Env::memory();
    let rec = env.recording().await;
    let data = audio(6 * CHUNK as usize + 100);
    let mut seg = env
        .p
        .open_segment(&rec, SegmentNo(0), format(), 0)
        .await
        .unwrap();
    append_in_pieces(&mut seg, &data, 500).await;
    assert_eq!(seg.sealed_chunks(), 6);
    // A second segment, torn by hand in the middle of its fifth chunk.
    let mut torn = env
        .p
        .open_segment(&rec, SegmentNo(1), format(), 1000)
        .await
        .unwrap();
    append_in_pieces(&mut torn, &data, 700).await;
    // Let a group commit pass, then crash: the handles are dropped, never closed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(seg);
    drop(torn);
    let env = env.restart().await;
    let stride = u64::from(CHUNK) + 16;
    let torn_part = env
        .spool()
        .join(rec.id.to_string())
        .join(format!("0001{}", vault::layout::SPOOL_EXT));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&torn_part)
        .unwrap();
    f.set_len(HEADER_LEN as u64 + 4 * stride + 100).unwrap();
    drop(f);

    let report = env.p.recover().await.unwrap();
    assert_eq!(report.recovered.len(), 2);
    assert_eq!(report.queued, 2);
    assert_eq!(report.interrupted, vec![rec.id]);
    let (r0, r1) = (&report.recovered[0], &report.recovered[1]);
    assert_eq!(r0.recovered_bytes, 6 * u64::from(CHUNK));
    assert_eq!(r0.torn_bytes, 0);
    assert_eq!(r1.recovered_bytes, 4 * u64::from(CHUNK));
    assert_eq!(r1.torn_bytes, 100);
    // 4 KiB of stereo G.711 at 8 kHz is 256 ms.
    assert_eq!(r1.recovered_ms, 256);

    assert!(env.p.drain(5 * SECOND).await);
    assert_eq!(env.decrypt(rec.id, 0).await, data[..6 * CHUNK as usize]);
    assert_eq!(env.decrypt(rec.id, 1).await, data[..4 * CHUNK as usize]);
    assert_eq!(env.row(rec.id, 1).await.media_end_ms, 1256);
    let ledger = env.catalog.ledger(rec.id).await.unwrap();
    let recovery: Vec<serde_json::Value> = ledger
        .iter()
        .filter(|e| e.kind == "crash_recovery")
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(recovery.len(), 2);
    assert_eq!(recovery[1]["segment"], 1);
    assert_eq!(recovery[1]["torn_bytes"], 100);
    assert_eq!(recovery[1]["recovered_ms"], 256);
    assert!(env.kinds(rec.id).await.contains(&"interrupted".to_owned()));
    // left live for the platform's reconnect: the recorder seals it if none comes
    let after = env.catalog.recording(rec.id).await.unwrap().unwrap();
    assert_eq!(after.status, RecordingStatus::Live);
    assert!(files_under(&env.spool()).is_empty());

    // A second recovery finds no spool file left; the recording is still waiting for its call.
    let again = env.p.recover().await.unwrap();
    assert_eq!((again.recovered.len(), again.queued), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_any_spool_file_leaves_the_recording_for_its_call() {
    let env = Env::memory();
    // One call whose audio was all in the look-back window, one whose segment row was written but
    // not its file, and one sealed normally.
    let early = env.recording().await;
    let torn = env.recording().await;
    env.catalog
        .insert_segment(&SegmentRow {
            recording_id: torn.id,
            segment: SegmentNo(0),
            object_key: String::new(),
            kek_id: Some(env.keyring.active().clone()),
            wrapped_key: Some(vec![1; 60]),
            media_start_ms: 0,
            media_end_ms: 0,
            size: 0,
            sha256: None,
            status: SegmentStatus::Spooled,
        })
        .await
        .unwrap();
    let done = RecordingRow {
        status: RecordingStatus::Sealed,
        ..env.recording().await
    };
    env.catalog.update_recording(&done).await.unwrap();
    let env = env.restart().await;

    let report = env.p.recover().await.unwrap();
    let mut want = vec![early.id, torn.id];
    want.sort();
    assert_eq!(report.interrupted, want);
    for id in want {
        let after = env.catalog.recording(id).await.unwrap().unwrap();
        assert_eq!(after.status, RecordingStatus::Live, "left for a reconnect");
        assert_eq!(env.kinds(id).await, ["interrupted"]);
    }
    // the orphan row's key is shredded
    assert_eq!(env.catalog.segments(torn.id).await.unwrap()[0].kek_id, None);
    assert_eq!(env.kinds(done.id).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_keeps_segments_spooled_until_it_ends() {
    let flaky = Arc::new(FlakyStore::default());
    flaky.down.store(true, Ordering::SeqCst);
    let env = Env::with_store(flaky.clone(), StoreKind::Memory, None);
    let rec = env.recording().await;
    let data = audio(3 * CHUNK as usize + 10);
    let mut seg = env
        .p
        .open_segment(&rec, SegmentNo(0), format(), 0)
        .await
        .unwrap();
    seg.append(&data).await.unwrap();
    seg.close(200).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.p.pending_uploads(), 1);
    assert!(!env.p.drain(Duration::from_millis(50)).await);
    assert_eq!(env.row(rec.id, 0).await.status, SegmentStatus::Spooled);
    let sealed = spool::sealed_path(&env.spool(), rec.id, SegmentNo(0));
    assert!(sealed.exists());

    flaky.down.store(false, Ordering::SeqCst);
    assert!(env.p.drain(5 * SECOND).await);
    assert_eq!(env.decrypt(rec.id, 0).await, data);
    assert!(!sealed.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_back_keeps_only_whole_chunks_before_the_pause() {
    let env = Env::memory();
    let rec = env.recording().await;
    let data = audio(5 * CHUNK as usize + 300);
    let mut seg = env
        .p
        .open_segment(&rec, SegmentNo(0), format(), 0)
        .await
        .unwrap();
    append_in_pieces(&mut seg, &data, 1000).await;
    seg.cut_back(3, 10_000).await.unwrap();
    // keep_chunks = 0 leaves an empty segment.
    let mut empty = env
        .p
        .open_segment(&rec, SegmentNo(1), format(), 400)
        .await
        .unwrap();
    empty.append(&data).await.unwrap();
    empty.cut_back(0, 10_000).await.unwrap();
    assert!(env.p.drain(5 * SECOND).await);

    assert_eq!(env.decrypt(rec.id, 0).await, data[..3 * CHUNK as usize]);
    assert_eq!(env.row(rec.id, 0).await.media_end_ms, 192);
    assert!(env.decrypt(rec.id, 1).await.is_empty());
    assert_eq!(env.row(rec.id, 1).await.media_end_ms, 400);
    let cuts: Vec<serde_json::Value> = env
        .catalog
        .ledger(rec.id)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == "cut_back")
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(cuts[0]["kept_chunks"], 3);
    assert_eq!(cuts[0]["dropped_bytes"], 2 * CHUNK + 300);
    assert_eq!(cuts[1]["kept_chunks"], 0);
    assert_eq!(cuts[1]["dropped_bytes"], data.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_a_recording_leaves_nothing_of_it() {
    let env = Env::local();
    let rec = env.recording().await;
    let data = audio(2 * CHUNK as usize + 5);
    for n in 0..2 {
        let mut seg = env
            .p
            .open_segment(&rec, SegmentNo(n), format(), 0)
            .await
            .unwrap();
        seg.append(&data).await.unwrap();
        seg.close(100).await.unwrap();
    }
    assert!(env.p.drain(5 * SECOND).await);
    let mut open = env
        .p
        .open_segment(&rec, SegmentNo(2), format(), 0)
        .await
        .unwrap();
    open.append(&data).await.unwrap();

    let report = env.p.destroy_recording(rec.id).await.unwrap();
    assert_eq!(report.segments, 3);
    assert_eq!(report.object_keys.len(), 2);
    assert_eq!(report.spool_files, 1);
    assert!(report.undeleted_objects.is_empty());

    let prefix = vault::recording_prefix(rec.started_at, rec.id);
    let left: Vec<ObjectMeta> = env.store.list(Some(&prefix)).try_collect().await.unwrap();
    assert!(left.is_empty());
    assert!(files_under(&env.dir.path().join("objects")).is_empty());
    assert!(files_under(&env.spool()).is_empty());
    for row in env.catalog.segments(rec.id).await.unwrap() {
        assert_eq!(row.kek_id, None);
        assert_eq!(row.wrapped_key, None);
        assert_eq!(row.status, SegmentStatus::Deleted);
    }
    let ledger = env.catalog.ledger(rec.id).await.unwrap();
    let destroyed = ledger.iter().find(|e| e.kind == "destroyed").unwrap();
    let details: serde_json::Value = serde_json::from_str(&destroyed.details).unwrap();
    assert_eq!(details["segments"], 3);
    assert_eq!(details["object_keys"].as_array().unwrap().len(), 2);

    // The call task's open segment takes no more audio, and nothing more is opened.
    assert!(matches!(
        open.append(&data).await,
        Err(PersistError::Destroyed(_))
    ));
    assert!(matches!(
        open.close(100).await,
        Err(PersistError::Destroyed(_))
    ));
    assert!(matches!(
        env.p.open_segment(&rec, SegmentNo(3), format(), 0).await,
        Err(PersistError::Destroyed(_))
    ));
    assert!(files_under(&env.spool()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_an_open_segment_shreds_its_key() {
    let env = Env::memory();
    let rec = env.recording().await;
    let mut seg = env
        .p
        .open_segment(&rec, SegmentNo(0), format(), 0)
        .await
        .unwrap();
    seg.append(&audio(3 * CHUNK as usize)).await.unwrap();
    seg.destroy().await.unwrap();
    let row = env.row(rec.id, 0).await;
    assert_eq!((row.kek_id, row.status), (None, SegmentStatus::Deleted));
    assert!(files_under(&env.spool()).is_empty());
    assert_eq!(env.p.pending_uploads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_reaches_the_disk() {
    let env = Env::local();
    const PATTERN: &[u8; 16] = b"callvault-audio!";
    let data: Vec<u8> = PATTERN.iter().copied().cycle().take(9000).collect();
    let rec = env.recording().await;
    let mut closed = env
        .p
        .open_segment(&rec, SegmentNo(0), format(), 0)
        .await
        .unwrap();
    append_in_pieces(&mut closed, &data, 777).await;
    closed.close(500).await.unwrap();
    let mut cut = env
        .p
        .open_segment(&rec, SegmentNo(1), format(), 500)
        .await
        .unwrap();
    append_in_pieces(&mut cut, &data, 777).await;
    cut.cut_back(2, 900).await.unwrap();
    let mut crashed = env
        .p
        .open_segment(&rec, SegmentNo(2), format(), 900)
        .await
        .unwrap();
    append_in_pieces(&mut crashed, &data, 777).await;
    assert!(env.p.drain(5 * SECOND).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(crashed);
    let env = env.restart().await;
    env.p.recover().await.unwrap();
    assert!(env.p.drain(5 * SECOND).await);

    let windows: Vec<Vec<u8>> = (0..16)
        .map(|r| PATTERN.iter().cycle().skip(r).take(16).copied().collect())
        .collect();
    let files = files_under(env.dir.path());
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for w in &windows {
            assert!(
                !bytes.windows(16).any(|b| b == w.as_slice()),
                "plaintext in {}",
                file.display()
            );
        }
    }
    assert_eq!(env.decrypt(rec.id, 0).await, data);
    assert_eq!(env.decrypt(rec.id, 2).await, data[..8 * CHUNK as usize]);
}
