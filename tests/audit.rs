//! Evidence a DPO can stand behind (issue 12, part B): signed audit checkpoints that catch the newest
//! entries cut off, CLI actors, offline exports audited once complete, SARs closed with a reason.
//! The sockets that end with their credentials are in `tests/sessions.rs`.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use callvault::audit::Checkpoint;
use callvault::catalog::{Catalog, SarRow, SqliteCatalog};
use common::Deployment;
use common::live::{Live, t0};
use serde_json::{Value, json};
use tokio::net::TcpStream;

// --- the built binary

fn callvault(d: &Deployment, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callvault"));
    cmd.arg("--config")
        .arg(&d.config)
        .args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("SUDO_USER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run callvault")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn failed(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn deployment_with_secrets() -> Deployment {
    let d = Deployment::new("");
    let cfg = d.load(&[]);
    callvault::server::create_missing_secrets(&cfg, chrono::Utc::now()).expect("create secrets");
    std::fs::create_dir_all(d.path("state")).expect("state dir");
    d
}

fn catalog(path: &Path) -> SqliteCatalog {
    SqliteCatalog::open(path).expect("open catalog")
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().expect("runtime").block_on(f)
}

/// Runs SQL on the catalog file as someone with database access would, triggers dropped first.
fn tamper(db: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(db).expect("open raw");
    conn.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; \
         DROP TRIGGER IF EXISTS audit_checkpoints_no_update; DROP TRIGGER IF EXISTS audit_checkpoints_no_delete; {sql}"
    ))
    .expect("tamper");
}

#[test]
fn cutting_off_the_newest_audit_entries_is_caught_by_a_checkpoint_kept_elsewhere() {
    let d = deployment_with_secrets();
    for i in 0..6 {
        ok(&callvault(
            &d,
            &[
                "tokens",
                "create",
                "--role",
                "ops",
                "--name",
                &format!("t{i}"),
            ],
            &[],
        ));
    }
    let doc = ok(&callvault(&d, &["audit", "checkpoint"], &[]));
    let head = d.path("head.json");
    std::fs::write(&head, &doc).expect("write checkpoint");
    // the same checkpoint as the daemon's journal line would carry it
    let journal = d.path("journal.txt");
    std::fs::write(
        &journal,
        format!(
            "Dec 02 07:30:00 host callvault[812]: INFO callvault::audit::checkpointer: audit checkpoint seq=6 trigger=\"interval\" checkpoint={}\n\
             Dec 02 07:30:05 host callvault[812]: INFO callvault::server: serving\n",
            doc.trim()
        ),
    )
    .expect("write journal");
    let head = head.to_str().expect("utf-8 path");
    let journal = journal.to_str().expect("utf-8 path");

    let out = ok(&callvault(
        &d,
        &["audit", "verify", "--checkpoint", head],
        &[],
    ));
    assert!(out.contains("intact: 6 entries"), "{out}");
    assert!(out.contains("reaches the checkpoint of entry 6"), "{out}");

    let db = d.path("state/catalog.sqlite");
    let backup = std::fs::read(&db).expect("backup");
    let restore = || std::fs::write(&db, &backup).expect("restore");

    // the last three entries deleted, and the checkpoints stored beside them
    tamper(
        &db,
        "DELETE FROM audit WHERE seq > 3; DELETE FROM audit_checkpoints;",
    );
    let out = ok(&callvault(&d, &["audit", "verify"], &[]));
    assert!(
        out.contains("intact: 3 entries") && out.contains("no checkpoint to check against"),
        "without a checkpoint from elsewhere nothing can tell: {out}"
    );
    for file in [head, journal] {
        let out = failed(&callvault(
            &d,
            &["audit", "verify", "--checkpoint", file],
            &[],
        ));
        assert!(
            out.contains("audit entries 4 to 6 are missing"),
            "{file}: {out}"
        );
    }
    // written again past the checkpoint: the entry at its position is another one
    for i in 0..4 {
        ok(&callvault(
            &d,
            &[
                "tokens",
                "create",
                "--role",
                "ops",
                "--name",
                &format!("new{i}"),
            ],
            &[],
        ));
    }
    let out = failed(&callvault(
        &d,
        &["audit", "verify", "--checkpoint", head],
        &[],
    ));
    assert!(
        out.contains("audit entry 6 differs from the signed checkpoint"),
        "{out}"
    );
    restore();

    // only the entries deleted: the checkpoint stored in the catalog is enough
    tamper(&db, "DELETE FROM audit WHERE seq > 3;");
    let out = failed(&callvault(&d, &["audit", "verify"], &[]));
    assert!(out.contains("audit entries 4 to 6 are missing"), "{out}");
    restore();

    // a checkpoint edited to vouch for less does not verify
    let mut edited: Value = serde_json::from_str(&doc).expect("a json document");
    edited["seq"] = json!(3);
    std::fs::write(d.path("edited.json"), edited.to_string()).expect("write");
    let out = failed(&callvault(
        &d,
        &[
            "audit",
            "verify",
            "--checkpoint",
            d.path("edited.json").to_str().expect("utf-8"),
        ],
        &[],
    ));
    assert!(out.contains("signature does not verify"), "{out}");
}

#[test]
fn the_cli_actor_is_the_person_logged_in_never_user() {
    let d = deployment_with_secrets();
    ok(&callvault(
        &d,
        &["tokens", "create", "--role", "ops", "--name", "x"],
        &[
            ("SUDO_USER", "alice"),
            ("USER", "mallory"),
            ("LOGNAME", "mallory"),
        ],
    ));
    let entries =
        block(catalog(&d.path("state/catalog.sqlite")).audit_after(0, 10)).expect("audit");
    let actor = &entries[0].entry.actor;
    assert_ne!(actor, "cli:mallory");
    let login_uid = std::fs::read_to_string("/proc/self/loginuid").unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    let root = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if login_uid.trim() == "4294967295" && root {
        // as under `sudo callvault ...` where no login uid is kept (a container, no pam_loginuid)
        assert_eq!(actor, "cli:alice");
    } else {
        assert!(actor.starts_with("cli:"), "{actor}");
    }
}

#[test]
fn an_offline_export_is_audited_only_once_its_file_is_complete_and_sars_close_with_a_reason() {
    let d = deployment_with_secrets();
    let db = d.path("state/catalog.sqlite");
    let existing = d.path("exists.zip");
    std::fs::write(&existing, b"someone else's file").expect("write");
    let export = |out: &Path, sar: &str| {
        callvault(
            &d,
            &[
                "export",
                "--caller",
                "01744 676789",
                "--sar-reference",
                sar,
                "--reason",
                "subject access request",
                "--out",
                out.to_str().expect("utf-8"),
            ],
            &[("SUDO_USER", "alice")],
        )
    };
    let out = failed(&export(&existing, "SAR-1"));
    assert!(out.contains("exists.zip"), "{out}");
    assert_eq!(
        std::fs::read(&existing).expect("read"),
        b"someone else's file",
        "left as it was"
    );
    let c = catalog(&db);
    assert!(
        block(c.audit_after(0, 100)).expect("audit").is_empty(),
        "nothing audited, nothing recorded"
    );
    assert_eq!(block(c.sar("SAR-1")).expect("sar"), None);
    drop(c);

    let bundle = d.path("bundle.zip");
    let out = ok(&export(&bundle, "SAR-1"));
    assert!(out.contains("closed subject access request SAR-1"), "{out}");
    let c = catalog(&db);
    let entries = block(c.audit_after(0, 100)).expect("audit");
    let exports: Vec<_> = entries
        .iter()
        .filter(|e| e.entry.action == "recording.export")
        .collect();
    assert_eq!(exports.len(), 1, "audited once");
    let sar = block(c.sar("SAR-1")).expect("sar").expect("recorded");
    assert!(
        sar.closed_at.is_some()
            && sar.closed_by.as_deref() == Some(exports[0].entry.actor.as_str())
    );
    drop(c);

    // the bundle carries the checkpoint of the head before its own entry, and verify shows it
    let manifest: Value = {
        let mut zip =
            zip::ZipArchive::new(std::fs::File::open(&bundle).expect("open")).expect("zip");
        let f = zip.by_name("manifest.json").expect("manifest");
        serde_json::from_reader(f).expect("json")
    };
    let cp = Checkpoint::from_json(&manifest["audit_checkpoint"]).expect("a checkpoint");
    assert_eq!(cp.seq, exports[0].seq - 1);
    assert_eq!(cp.verify_carried(), Ok(()));
    let v = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("verify")
        .arg(&bundle)
        .output()
        .expect("verify");
    let text = ok(&v);
    assert!(
        text.contains(&format!("audit checkpoint: entry {}", cp.seq)),
        "{text}"
    );
    ok(&callvault(
        &d,
        &[
            "audit",
            "verify",
            "--checkpoint",
            bundle.to_str().expect("utf-8"),
        ],
        &[],
    ));

    // closing: a request an export opened but never delivered, as the API leaves one
    let c = catalog(&db);
    block(c.record_sar(&SarRow {
        reference: "SAR-2".into(),
        received_at: t0(),
        due_at: t0() + chrono::Duration::days(30),
        caller_tag: None,
        actor: "token:jo".into(),
        reason: "subject access request".into(),
        closed_at: None,
        closed_by: None,
        close_reason: None,
    }))
    .expect("record");
    drop(c);
    assert!(ok(&callvault(&d, &["sars", "list"], &[])).contains("SAR-2"));
    let out = failed(&callvault(
        &d,
        &["sars", "close", "SAR-2", "--reason", " "],
        &[],
    ));
    assert!(out.contains("--reason"), "{out}");
    ok(&callvault(
        &d,
        &[
            "sars",
            "close",
            "SAR-2",
            "--reason",
            "withdrawn by the caller",
        ],
        &[("SUDO_USER", "alice")],
    ));
    let out = failed(&callvault(
        &d,
        &["sars", "close", "SAR-2", "--reason", "again"],
        &[],
    ));
    assert!(out.contains("closed already"), "{out}");
    let out = failed(&callvault(
        &d,
        &["sars", "close", "SAR-9", "--reason", "x"],
        &[],
    ));
    assert!(out.contains("no subject access request SAR-9"), "{out}");
    let c = catalog(&db);
    let sar = block(c.sar("SAR-2")).expect("sar").expect("recorded");
    assert_eq!(sar.close_reason.as_deref(), Some("withdrawn by the caller"));
    let closes: Vec<_> = block(c.audit_after(0, 100))
        .expect("audit")
        .into_iter()
        .filter(|e| e.entry.action == "sar.close")
        .collect();
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].entry.subject, "SAR-2");
    assert_eq!(
        closes[0].entry.reason.as_deref(),
        Some("withdrawn by the caller")
    );
    assert_eq!(
        Some(closes[0].entry.actor.as_str()),
        sar.closed_by.as_deref()
    );
}

#[test]
fn the_daemons_log_lines_are_a_checkpoint_kept_outside_the_database() {
    use std::io::Read;
    use std::os::unix::net::UnixDatagram;
    let d = deployment_with_secrets();
    for i in 0..3 {
        ok(&callvault(
            &d,
            &[
                "tokens",
                "create",
                "--role",
                "ops",
                "--name",
                &format!("t{i}"),
            ],
            &[],
        ));
    }
    let sock_path = d.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    // log.level is "warn" in this deployment: the checkpoint lines are written all the same
    let mut child = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--config")
        .arg(&d.config)
        .arg("serve")
        .env("NOTIFY_SOCKET", &sock_path)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 within 30s");
    assert_eq!(&buf[..n], b"READY=1\n");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    assert!(child.wait().expect("wait").success());
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("read log");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("audit checkpoint"))
        .collect();
    assert!(
        lines.len() >= 2 && lines.last().is_some_and(|l| l.contains("\"shutdown\"")),
        "one at start, one at shutdown: {log}"
    );
    let journal = d.path("journal.txt");
    std::fs::write(&journal, &log).expect("write");

    tamper(
        &d.path("state/catalog.sqlite"),
        "DELETE FROM audit WHERE seq > 1; DELETE FROM audit_checkpoints;",
    );
    let out = failed(&callvault(
        &d,
        &[
            "audit",
            "verify",
            "--checkpoint",
            journal.to_str().expect("utf-8"),
        ],
        &[],
    ));
    assert!(
        out.contains("audit entries 2 to 3 are missing"),
        "{out}\n{log}"
    );
}

// --- the daemon in-process

async fn call_api(live: &Live, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, Value) {
    let stream = TcpStream::connect(live.public).await.expect("connect");
    let auth = format!("Bearer {token}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let (status, _, body) = common::exchange(stream, method, path, &headers, body).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_head_is_signed_served_stored_and_carried_by_bundles() {
    let live = Live::start("[audit]\ncheckpoint_interval = \"1s\"\n").await;
    let (s, _) = call_api(&live, "GET", "/v1/audit/head", &live.supervisor, b"").await;
    assert_eq!(s, 403, "compliance only");
    // something to sign: an audit search is itself audited
    let (s, _) = call_api(&live, "GET", "/v1/audit", &live.compliance, b"").await;
    assert_eq!(s, 200);
    let (s, body) = call_api(&live, "GET", "/v1/audit/head", &live.compliance, b"").await;
    assert_eq!(s, 200, "{body}");
    let cp = Checkpoint::from_json(&body).expect("a checkpoint document");
    let head = live.catalog.audit_head().await.expect("head");
    assert_eq!(cp.head(), head);
    let (_, key) = call_api(&live, "GET", "/v1/signing-key", &live.supervisor, b"").await;
    let key =
        callvault::export::parse_public_key(key["public_key"].as_str().expect("a key").as_bytes())
            .expect("an ed25519 key");
    // checked with the published key, over the documented bytes
    key.verify_strict(
        &Checkpoint::signed_message(cp.seq, &cp.hash, &cp.at),
        &ed25519_dalek::Signature::from_bytes(&cp.signature),
    )
    .expect("the signature verifies with the public key");
    assert_eq!(cp.verify(&key), Ok(()));

    // the interval signs what moved since, without being asked
    let (s, _) = call_api(&live, "GET", "/v1/audit?limit=1", &live.compliance, b"").await;
    assert_eq!(s, 200);
    let moved = live.catalog.audit_head().await.expect("head");
    let deadline = Instant::now() + Duration::from_secs(5);
    while live
        .catalog
        .latest_checkpoint()
        .await
        .expect("read")
        .is_none_or(|c| c.seq < moved.seq)
    {
        assert!(Instant::now() < deadline, "no interval checkpoint");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // an API export bundle carries the head, its own download entry included
    let body = json!({ "caller": "01744 676789", "sar_reference": "SAR-A", "reason": "subject access request" });
    let (s, job) = call_api(
        &live,
        "POST",
        "/v1/exports",
        &live.supervisor,
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().expect("an id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, st) = call_api(
            &live,
            "GET",
            &format!("/v1/exports/{id}"),
            &live.supervisor,
            b"",
        )
        .await;
        if st["status"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "{st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stream = TcpStream::connect(live.public).await.expect("connect");
    let auth = format!("Bearer {}", live.supervisor);
    let (s, _, zip) = common::exchange(
        stream,
        "GET",
        &format!("/v1/exports/{id}/bundle"),
        &[("Authorization", auth.as_str())],
        b"",
    )
    .await;
    assert_eq!(s, 200);
    let manifest: Value = {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(&zip)).expect("zip");
        serde_json::from_reader(z.by_name("manifest.json").expect("manifest")).expect("json")
    };
    let carried = Checkpoint::from_json(&manifest["audit_checkpoint"]).expect("carried");
    assert_eq!(carried.verify(&key), Ok(()));
    let download = live
        .catalog
        .audit_after(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .rfind(|e| e.entry.action == "recording.download")
        .expect("the download is audited");
    assert_eq!(
        carried.head(),
        download.head(),
        "the head right after the download entry"
    );
    // delivered: the request is closed, saying by whom
    let deadline = Instant::now() + Duration::from_secs(5);
    let sar = loop {
        let sar = live
            .catalog
            .sar("SAR-A")
            .await
            .expect("sar")
            .expect("recorded");
        if sar.closed_at.is_some() || Instant::now() > deadline {
            break sar;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (sar.closed_by.as_deref(), sar.close_reason.as_deref()),
        (Some("token:test-supervisor"), Some("bundle delivered"))
    );

    // SARs close through the API with a reason: an export started and never downloaded
    let body = json!({ "caller": "01744 676789", "sar_reference": "SAR-B", "reason": "subject access request" });
    let (s, _) = call_api(
        &live,
        "POST",
        "/v1/exports",
        &live.supervisor,
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(s, 202);
    let close = |reason: &str| json!({ "reason": reason }).to_string();
    let (s, b) = call_api(
        &live,
        "POST",
        "/v1/sars/SAR-B/close",
        &live.supervisor,
        close(" ").as_bytes(),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("missing_field")), "{b}");
    let (s, b) = call_api(
        &live,
        "POST",
        "/v1/sars/SAR-B/close",
        &live.supervisor,
        close("answered by post").as_bytes(),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["close_reason"], "answered by post");
    assert_eq!(b["closed_by"], "token:test-supervisor");
    let (s, b) = call_api(
        &live,
        "POST",
        "/v1/sars/SAR-B/close",
        &live.supervisor,
        close("again").as_bytes(),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("sar_closed")), "{b}");
    let (s, _) = call_api(
        &live,
        "POST",
        "/v1/sars/SAR-none/close",
        &live.supervisor,
        close("x").as_bytes(),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call_api(
        &live,
        "POST",
        "/v1/sars/SAR-B/close",
        &live.telephony,
        close("x").as_bytes(),
    )
    .await;
    assert_eq!(s, 403);
    let (_, open) = call_api(&live, "GET", "/v1/sars", &live.supervisor, b"").await;
    assert!(!open.to_string().contains("SAR-B"), "{open}");
    let audit = live.catalog.audit_after(0, 1000).await.expect("audit");
    let closed = audit
        .iter()
        .find(|e| e.entry.action == "sar.close")
        .expect("the close is audited");
    assert_eq!(
        (
            closed.entry.subject.as_str(),
            closed.entry.reason.as_deref()
        ),
        ("SAR-B", Some("answered by post"))
    );

    // at shutdown the final head is signed and stored
    let catalog = std::sync::Arc::clone(&live.catalog);
    live.stop().await;
    let head = catalog.audit_head().await.expect("head");
    let last = catalog
        .latest_checkpoint()
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(last.head(), head);
    assert_eq!(last.verify(&key), Ok(()));
}

#[test]
fn an_offline_export_that_fails_midway_leaves_no_file_no_audit_and_a_sar_that_can_be_closed() {
    let d = deployment_with_secrets();
    let cfg = d.load(&[]);
    let keyring = std::sync::Arc::new(
        callvault::vault::Keyring::from_bytes(cfg.keys.keyring.read().expect("keyring").expose())
            .expect("keyring"),
    );
    let callers = callvault::server::supervisor_access(&cfg, &keyring)
        .expect("access")
        .callers;
    let number: callvault::domain::CallerNumber = "01744 676789".parse().expect("number");
    let c = catalog(&d.path("state/catalog.sqlite"));
    // a stored segment whose object is not in the store: the bundle cannot be completed
    block(async {
        let seeded = common::seed_segments(&c, &keyring, 1, 1).await;
        let mut row = c
            .recording(seeded[0].recording_id)
            .await
            .expect("read")
            .expect("seeded");
        row.caller_tag = Some(callers.tag(&number));
        c.update_recording(&row).await.expect("tag the caller");
    });
    drop(c);
    let bundle = d.path("bundle.zip");
    let out = failed(&callvault(
        &d,
        &[
            "export",
            "--caller",
            "01744 676789",
            "--sar-reference",
            "SAR-3",
            "--reason",
            "subject access request",
            "--out",
            bundle.to_str().expect("utf-8"),
        ],
        &[],
    ));
    assert!(
        out.contains("recording "),
        "failed writing the recording: {out}"
    );
    assert!(!bundle.exists(), "the unfinished bundle is removed: {out}");
    let c = catalog(&d.path("state/catalog.sqlite"));
    let audit = block(c.audit_after(0, 100)).expect("audit");
    assert!(
        audit.iter().all(|e| e.entry.action != "recording.export"),
        "nothing disclosed, nothing audited as disclosed: {audit:?}"
    );
    let sar = block(c.sar("SAR-3"))
        .expect("sar")
        .expect("the request is recorded");
    assert_eq!(sar.closed_at, None);
    drop(c);
    ok(&callvault(
        &d,
        &[
            "sars",
            "close",
            "SAR-3",
            "--reason",
            "answered from the paper file",
        ],
        &[],
    ));
    let c = catalog(&d.path("state/catalog.sqlite"));
    let sar = block(c.sar("SAR-3")).expect("sar").expect("recorded");
    assert_eq!(
        sar.close_reason.as_deref(),
        Some("answered from the paper file")
    );
}
