//! The built binary as ops use it: exit codes, `check-config`, `keys`, `tokens`, `audit verify`, and
//! `serve` under a systemd-style notify socket with SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use callvault::catalog::{Catalog, SqliteCatalog};
use callvault::vault::Keyring;
use common::Deployment;

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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A deployment whose secrets exist (made by a first `serve`-free run of the dev secret creation).
fn deployment_with_secrets() -> Deployment {
    let d = Deployment::new("");
    let cfg = d.load(&[]);
    callvault::server::create_missing_secrets(&cfg, chrono::Utc::now()).expect("create secrets");
    std::fs::create_dir_all(d.path("state")).expect("state dir");
    d
}

fn catalog(d: &Deployment) -> SqliteCatalog {
    SqliteCatalog::open(d.path("state/catalog.sqlite")).expect("open catalog")
}

#[test]
fn a_bad_config_exits_64_naming_the_key() {
    let d = Deployment::new("[pci]\nlookback = \"soon\"\n");
    let o = callvault(&d, &["check-config"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(stderr(&o).contains("`pci.lookback`"), "{}", stderr(&o));
    let o = callvault(&d, &["serve"]);
    assert_eq!(o.status.code(), Some(64));

    let good = Deployment::new("");
    let o = callvault(&good, &["check-config"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = callvault(
        &good,
        &["--set", "public.listen=0.0.0.0:8443", "check-config"],
    );
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("`public.listen`"), "{}", stderr(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["check-config", "/nonexistent/callvault.toml"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("/nonexistent/callvault.toml"));
}

#[test]
fn serve_notifies_systemd_and_stops_cleanly_on_sigterm() {
    let d = Deployment::new("");
    let sock_path = d.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--config")
        .arg(&d.config)
        .arg("serve")
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 within 30s");
    assert_eq!(&buf[..n], b"READY=1\n");

    let t = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1\n");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3 + 2),
            "not stopped within the grace period"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let mut log = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("read log");
    // the log is a pipe here, as under systemd: plain lines, no ANSI colour escapes
    assert!(log.contains("created a new secret"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "colour codes in a piped log: {log:?}"
    );
    // no secret material in the log: the keyring's key bytes never appear
    let keyring = std::fs::read_to_string(d.path("keyring")).expect("keyring");
    let v: serde_json::Value = serde_json::from_str(&keyring).expect("keyring json");
    let key = v["keys"][0]["key"].as_str().expect("a key");
    assert!(!log.contains(key));
}

#[test]
fn keys_generate_rotate_and_rewrap_every_stored_data_key() {
    let d = deployment_with_secrets();
    // generate refuses to overwrite the keyring that exists
    let o = callvault(&d, &["keys", "generate"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("keys rotate"));
    let o = callvault(
        &d,
        &[
            "keys",
            "generate",
            "--out",
            d.path("second").to_str().expect("utf8"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    Keyring::from_bytes(&std::fs::read(d.path("second")).expect("read")).expect("a valid keyring");

    // store wrapped keys for 3 segments of 2 recordings under the first key
    let first =
        Keyring::from_bytes(&std::fs::read(d.path("keyring")).expect("read")).expect("keyring");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cat = catalog(&d);
    let segments = rt.block_on(common::seed_segments(&cat, &first, 2, 3));
    drop(cat);

    let o = callvault(&d, &["keys", "rotate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rotated =
        Keyring::from_bytes(&std::fs::read(d.path("keyring")).expect("read")).expect("keyring");
    assert_ne!(rotated.active(), first.active());
    assert!(
        rotated.contains(&first.active()),
        "rotation keeps the old key"
    );

    let o = callvault(&d, &["keys", "rewrap"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("rewrapped 6 data keys"),
        "{}",
        stdout(&o)
    );

    let cat = catalog(&d);
    rt.block_on(async {
        let ids = cat.key_ids_in_use().await.expect("ids");
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            vec![rotated.active().clone()]
        );
        for seeded in &segments {
            let rows = cat.segments(seeded.recording_id).await.expect("segments");
            let seg = rows
                .iter()
                .find(|s| s.segment == seeded.segment)
                .expect("segment");
            let wrapped = callvault::vault::WrappedKey {
                kek_id: seg.kek_id.clone().expect("kek"),
                bytes: seg.wrapped_key.clone().expect("key"),
            };
            let key = rotated
                .unwrap(&wrapped, seeded.recording_id, seeded.segment)
                .expect("unwraps under the new key");
            // the same data key, rewrapped: the audio sealed before rotation still opens
            let (_, plain) = callvault::vault::open(&seeded.sealed, &key).expect("opens");
            assert_eq!(plain.as_bytes(), &seeded.plaintext[..]);
        }
        let actions: Vec<String> = cat
            .audit_after(0, 100)
            .await
            .expect("audit")
            .into_iter()
            .map(|e| e.entry.action)
            .collect();
        assert_eq!(actions, ["key.rotate", "key.rewrap"]);
    });
    // a second rewrap finds nothing to do
    let o = callvault(&d, &["keys", "rewrap"]);
    let out = stdout(&o);
    assert!(
        out.contains("rewrapped 0 data keys") && out.contains("6 were already"),
        "{out}"
    );
}

#[test]
fn serve_refuses_a_keyring_that_lacks_a_key_the_catalog_uses() {
    let d = deployment_with_secrets();
    let other = Keyring::generate(chrono::Utc::now());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cat = catalog(&d);
    rt.block_on(common::seed_segments(&cat, &other, 1, 1));
    drop(cat);
    let o = callvault(&d, &["serve"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(other.active().as_str()),
        "{}",
        stderr(&o)
    );
}

#[test]
fn tokens_are_shown_once_stored_hashed_and_revocable() {
    let d = deployment_with_secrets();
    let o = callvault(
        &d,
        &[
            "tokens",
            "create",
            "--role",
            "supervisor",
            "--name",
            "Jo Bloggs",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_owned();
    assert!(token.starts_with("cvt_"), "{token}");
    let o = callvault(&d, &["tokens", "create", "--role", "admin", "--name", "x"]);
    assert_eq!(o.status.code(), Some(2), "clap refuses an unknown role");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cat = catalog(&d);
    let row = rt
        .block_on(cat.token_by_hash(&callvault::api::auth::token_hash(&token)))
        .expect("lookup")
        .expect("stored by hash");
    assert_eq!(
        (row.role.as_str(), row.name.as_str()),
        ("supervisor", "Jo Bloggs")
    );
    drop(cat);
    let db = std::fs::read(d.path("state/catalog.sqlite")).expect("db");
    assert!(
        !db.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token itself is not stored"
    );

    let o = callvault(&d, &["tokens", "list"]);
    assert!(stdout(&o).contains(&row.id) && stdout(&o).contains("active"));
    assert!(!stdout(&o).contains(&token));
    let o = callvault(&d, &["tokens", "revoke", &row.id]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = callvault(&d, &["tokens", "revoke", &row.id]);
    assert_eq!(o.status.code(), Some(1));
    let o = callvault(&d, &["tokens", "list"]);
    assert!(stdout(&o).contains("revoked"));
}

#[test]
fn audit_verify_passes_then_names_an_edited_deleted_or_reordered_entry() {
    let d = deployment_with_secrets();
    for i in 0..5 {
        let o = callvault(
            &d,
            &[
                "tokens",
                "create",
                "--role",
                "ops",
                "--name",
                &format!("t{i}"),
            ],
        );
        assert!(o.status.success());
    }
    let o = callvault(&d, &["audit", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("intact: 5 entries"), "{}", stdout(&o));

    let db = d.path("state/catalog.sqlite");
    let tamper = |sql: &str| {
        let conn = rusqlite::Connection::open(&db).expect("open raw");
        conn.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; {sql}"
        ))
        .expect("tamper");
    };
    let backup = std::fs::read(&db).expect("backup");
    let restore = || std::fs::write(&db, &backup).expect("restore");

    tamper("UPDATE audit SET actor = 'cli:mallory' WHERE seq = 3;");
    let o = callvault(&d, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("entry 3 was altered"), "{}", stdout(&o));
    restore();

    tamper("DELETE FROM audit WHERE seq = 2;");
    let o = callvault(&d, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("missing before entry 3"),
        "{}",
        stdout(&o)
    );
    restore();

    tamper(
        "UPDATE audit SET seq = 1000 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 1000;",
    );
    let o = callvault(&d, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("entry 2 is out of order"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn retention_plan_changes_nothing_and_apply_recomputes_expiry_with_an_audit_entry() {
    let d = deployment_with_secrets();
    let keyring =
        Keyring::from_bytes(&std::fs::read(d.path("keyring")).expect("read")).expect("keyring");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cat = catalog(&d);
    let seeded = rt.block_on(common::seed_segments(&cat, &keyring, 1, 1));
    let id = seeded[0].recording_id;
    // the call ended on 31 January: 3 months is 30 April, 6 months is 31 July
    let ended = chrono::DateTime::parse_from_rfc3339("2026-01-31T10:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    rt.block_on(async {
        let mut row = cat.recording(id).await.expect("read").expect("row");
        row.ended_at = Some(ended);
        row.expires_at = callvault::domain::Period::months(3).after(ended);
        cat.update_recording(&row).await.expect("update");
    });
    drop(cat);
    let expiry = || {
        let cat = catalog(&d);
        rt.block_on(cat.recording(id))
            .expect("read")
            .expect("row")
            .expires_at
            .expect("expiry")
    };
    let three = expiry();
    assert_eq!(three.to_rfc3339(), "2026-04-30T10:00:00+00:00");

    let o = callvault(
        &d,
        &[
            "retention",
            "plan",
            "--policy",
            "standard",
            "--period",
            "6 months",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&id.to_string()) && out.contains("-> 2026-07-31T10:00:00+00:00 if re-applied"),
        "{out}"
    );
    assert_eq!(expiry(), three, "a plan changes nothing");

    let o = callvault(
        &d,
        &[
            "--set",
            "policies.standard.retention=6 months",
            "retention",
            "apply",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("recomputed expiry of 1 recordings"),
        "{}",
        stdout(&o)
    );
    assert_eq!(expiry().to_rfc3339(), "2026-07-31T10:00:00+00:00");
    let cat = catalog(&d);
    let actions: Vec<String> = rt
        .block_on(cat.audit_after(0, 100))
        .expect("audit")
        .into_iter()
        .map(|e| e.entry.action)
        .collect();
    assert!(
        actions.iter().any(|a| a == "retention.apply"),
        "{actions:?}"
    );
    drop(cat);
    let o = callvault(&d, &["audit", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
}

/// A production config (no `secrets.create_missing`) before any secret exists: the commands that
/// need no secret work, `init` makes them all, and `check-config` refuses what `serve` would.
#[test]
fn init_makes_a_fresh_install_and_check_config_checks_what_serve_does() {
    let d = Deployment::new("[secrets]\ncreate_missing = false\n");
    std::fs::write(
        &d.config,
        std::fs::read_to_string(&d.config)
            .expect("config")
            .replace("[secrets]\ncreate_missing = true\n", ""),
    )
    .expect("rewrite config");
    let o = callvault(&d, &["check-config"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("`keys.keyring`"), "{}", stderr(&o));
    // commands load only the secrets they use: tokens need none
    let o = callvault(&d, &["tokens", "list"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // keys generate writes the keyring even though no other secret exists yet
    let o = callvault(&d, &["keys", "generate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let keyring = std::fs::read(d.path("keyring")).expect("keyring written");

    let o = callvault(&d, &["init"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("kept {}", d.path("keyring").display())),
        "{out}"
    );
    for name in ["webhook-secret", "signing-key", "caller-pepper"] {
        assert!(
            out.contains(&format!("created {}", d.path(name).display())),
            "{out}"
        );
    }
    assert_eq!(std::fs::read(d.path("keyring")).expect("keyring"), keyring);
    let webhook = std::fs::read_to_string(d.path("webhook-secret")).expect("webhook");
    assert!(webhook.starts_with("whsec_"), "a Standard Webhooks secret");
    let o = callvault(&d, &["check-config"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // a TLS key file that holds no key: check-config refuses it, as serve does
    let cert = rcgen::generate_simple_self_signed(vec!["callvault.test".to_owned()]).expect("cert");
    std::fs::write(d.path("cert.pem"), cert.cert.pem()).expect("write cert");
    std::fs::write(d.path("tls-key"), "not a key\n").expect("write key");
    common::chmod_600(&d.path("tls-key"));
    let tls = [
        "--set",
        "public.tls.cert=cert.pem",
        "--set",
        "public.tls.key=tls-key",
    ];
    let o = callvault(&d, &[&tls[..], &["check-config"]].concat());
    assert_eq!(o.status.code(), Some(64), "{}", stdout(&o));
    assert!(stderr(&o).contains("`public.tls.key`"), "{}", stderr(&o));
    // init names the secret it cannot make and exits 64 until it is there
    std::fs::remove_file(d.path("tls-key")).expect("rm");
    let o = callvault(&d, &[&tls[..], &["init"]].concat());
    assert_eq!(o.status.code(), Some(64));
    assert!(stdout(&o).contains("missing") && stdout(&o).contains("public.tls.key"));
    std::fs::write(d.path("tls-key"), cert.signing_key.serialize_pem()).expect("write key");
    common::chmod_600(&d.path("tls-key"));
    let o = callvault(&d, &[&tls[..], &["check-config"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
