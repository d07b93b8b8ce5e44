//! Keys that rotate live, against the built daemon: rotate, a rewrap that makes the daemon reload,
//! SIGHUP, retire, and a data key wrapped elsewhere under a key the daemon has not loaded. Every
//! recording sealed before and after plays back the same bytes throughout.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use callvault::catalog::{Catalog, RecordingStatus, SegmentStatus, SqliteCatalog, WrappedKeyRow};
use callvault::domain::RecordingId;
use callvault::vault::{Keyring, WrappedKey};
use common::Deployment;
use tokio::net::TcpStream;

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

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

struct Env {
    dir: std::path::PathBuf,
    public: SocketAddr,
    admin: SocketAddr,
    supervisor: String,
    catalog: SqliteCatalog,
}

impl Env {
    fn file_keyring(&self) -> Keyring {
        Keyring::from_bytes(&std::fs::read(self.dir.join("keyring")).expect("keyring"))
            .expect("keyring")
    }

    async fn daemon_active(&self) -> String {
        let (status, _, body) = common::get(self.admin, "/keyring").await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v["active"].as_str().expect("active").to_owned()
    }

    /// A 2 s call through the simulator, waited for until sealed and uploaded.
    async fn call(&self, call_id: &str) -> RecordingId {
        let (d, public) = (self.dir.join("telephony.token"), self.public);
        let id = call_id.to_owned();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_callvault"))
                .args(["simulate", "--url", &format!("http://{public}")])
                .arg("--token-file")
                .arg(d)
                .args(["--call-id", &id, "--duration", "2s", "--tone-hz", "700"])
                .output()
                .expect("simulate")
        })
        .await
        .expect("simulate task");
        ok(out);
        let call = call_id.parse().expect("call id");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(r) = self
                .catalog
                .recording_by_call(&call)
                .await
                .expect("catalog")
                && r.status != RecordingStatus::Live
            {
                let segs = self.catalog.segments(r.id).await.expect("segments");
                if !segs.is_empty() && segs.iter().all(|s| s.status != SegmentStatus::Spooled) {
                    return r.id;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{call_id} not sealed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn play(&self, id: RecordingId) -> Vec<u8> {
        let s = TcpStream::connect(self.public).await.expect("connect");
        let (status, _, body) = common::exchange(
            s,
            "GET",
            &format!("/v1/recordings/{id}/audio?reason=test&format=pcm16"),
            &[("Authorization", &format!("Bearer {}", self.supervisor))],
            b"",
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert!(body.len() > 44, "audio beyond the WAV header");
        body
    }

    async fn keks(&self, id: RecordingId) -> Vec<String> {
        let segs = self.catalog.segments(id).await.expect("segments");
        segs.iter()
            .filter_map(|s| s.kek_id.as_ref().map(|k| k.as_str().to_owned()))
            .collect()
    }
}

#[test]
fn rotate_sighup_rewrap_and_retire_keep_every_recording_playable() {
    let (public_port, admin_port) = (common::free_port(), common::free_port());
    let d = Deployment::new("");
    ok(callvault(&d, &["init"]));
    let telephony = ok(callvault(
        &d,
        &["tokens", "create", "--role", "telephony", "--name", "t"],
    ));
    std::fs::write(d.path("telephony.token"), telephony.trim()).expect("token");
    common::chmod_600(&d.path("telephony.token"));
    let supervisor = ok(callvault(
        &d,
        &["tokens", "create", "--role", "supervisor", "--name", "s"],
    ))
    .trim()
    .to_owned();
    let listen = [
        "--set".to_owned(),
        format!("public.listen=127.0.0.1:{public_port}"),
        "--set".to_owned(),
        format!("admin.listen=127.0.0.1:{admin_port}"),
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--config")
        .arg(&d.config)
        .args(&listen)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut child = KillOnDrop(child);
    let listen: Vec<&str> = listen.iter().map(String::as_str).collect();
    let cli = |args: &[&str]| callvault(&d, &[&listen[..], args].concat());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let env = Env {
            public: format!("127.0.0.1:{public_port}").parse().expect("addr"),
            admin: format!("127.0.0.1:{admin_port}").parse().expect("addr"),
            catalog: SqliteCatalog::open(d.path("state/catalog.sqlite")).expect("catalog"),
            supervisor,
            dir: d.path(""),
        };
        common::wait_for_200(env.admin, "/readyz", Duration::from_secs(30)).await;
        let k1 = env.daemon_active().await;

        let a = env.call("call-a").await;
        assert_eq!(env.keks(a).await, vec![k1.clone(); env.keks(a).await.len()]);
        let a0 = env.play(a).await;

        // rotate: the file has K2, the daemon still K1, and A still plays
        ok(cli(&["keys", "rotate"]));
        let k2 = env.file_keyring().active().as_str().to_owned();
        assert_ne!(k1, k2);
        assert_eq!(env.daemon_active().await, k1, "no reload yet");
        assert_eq!(env.play(a).await, a0);

        // rewrap against a daemon that has not reloaded: it is made to reload first
        let out = ok(cli(&["keys", "rewrap"]));
        assert!(out.contains("rewrapped"), "{out}");
        assert_eq!(
            env.daemon_active().await,
            k2,
            "rewrap made the daemon reload"
        );
        assert!(env.keks(a).await.iter().all(|k| *k == k2));
        assert_eq!(env.play(a).await, a0);

        // a call after the reload is wrapped under K2
        let b = env.call("call-b").await;
        assert!(env.keks(b).await.iter().all(|k| *k == k2));
        let b0 = env.play(b).await;

        // rotate again and SIGHUP, as `systemctl reload` does
        ok(cli(&["keys", "rotate"]));
        let k3 = env.file_keyring().active().as_str().to_owned();
        let kill = Command::new("kill")
            .args(["-HUP", &child.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(kill.success());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while env.daemon_active().await != k3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "SIGHUP did not reload"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(env.play(a).await, a0);
        assert_eq!(env.play(b).await, b0);

        // retire: refused for the active key and for a key data keys are still wrapped under
        let o = cli(&["keys", "retire", &k3]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("active key"));
        let o = cli(&["keys", "retire", &k2]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("keys rewrap"));
        assert!(env.file_keyring().contains(&k2.parse().expect("id")));
        // K1 has nothing under it any more: retired, and the daemon drops it
        ok(cli(&["keys", "retire", &k1]));
        assert!(!env.file_keyring().contains(&k1.parse().expect("id")));
        let (_, _, body) = common::get(env.admin, "/keyring").await;
        assert!(!body.contains(&k1), "{body}");
        assert_eq!(env.play(a).await, a0);
        assert_eq!(env.play(b).await, b0);

        // another node rotates to K4 and rewraps A under it; this daemon has not loaded K4 and
        // reads the keyring again when A's data key names it
        ok(cli(&["keys", "rotate"]));
        let ring = env.file_keyring();
        let k4 = ring.active();
        for row in env
            .catalog
            .wrapped_keys_after(None, 1000)
            .await
            .expect("keys")
        {
            if row.recording_id != a {
                continue;
            }
            let old = WrappedKey {
                kek_id: row.kek_id.clone(),
                bytes: row.wrapped_key.clone(),
            };
            let new = ring
                .rewrap(&old, row.recording_id, row.segment)
                .expect("rewrap");
            let replaced = env
                .catalog
                .replace_wrapped_key(
                    &WrappedKeyRow {
                        recording_id: row.recording_id,
                        segment: row.segment,
                        kek_id: new.kek_id,
                        wrapped_key: new.bytes,
                    },
                    &row.kek_id,
                )
                .await
                .expect("replace");
            assert!(replaced);
        }
        assert_eq!(env.daemon_active().await, k3, "not reloaded yet");
        assert_eq!(env.play(a).await, a0, "a data key under an unloaded key");
        assert_eq!(env.daemon_active().await, k4.as_str());

        // every key change is in the audit chain
        let audit = env.catalog.audit_after(0, 1000).await.expect("audit");
        let actions: Vec<&str> = audit.iter().map(|e| e.entry.action.as_str()).collect();
        for action in ["key.rotate", "key.rewrap", "key.retire"] {
            assert!(actions.contains(&action), "{actions:?}");
        }
        let retired: Vec<&str> = audit
            .iter()
            .filter(|e| e.entry.action == "key.retire")
            .map(|e| e.entry.subject.as_str())
            .collect();
        assert_eq!(retired, vec![k1.as_str()]);
    });
    ok(callvault(&d, &["audit", "verify"]));
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert_eq!(child.0.wait().expect("wait").code(), Some(0));
}
