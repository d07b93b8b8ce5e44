//! The README's "Install as a service", run as written against the built binary, with every path
//! moved into a temporary directory: `init` makes the secrets, `check-config` passes, and the
//! systemd unit's own `ExecStartPre=` and `ExecStart=` lines (with its `LoadCredential=` secrets in
//! a credentials directory) bring the daemon to `READY=1` and `/readyz` ready.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The commands of the README's install block, one per line.
fn readme_install_block() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).expect("README.md");
    let section = readme
        .split("### Install as a service")
        .nth(1)
        .expect("the README has an \"Install as a service\" section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section opens with a sh block");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The machine's paths, moved under `root`.
struct Root {
    root: PathBuf,
    public_port: u16,
    admin_port: u16,
}

impl Root {
    fn map(&self, text: &str) -> String {
        let r = self.root.display();
        text.replace("/etc/callvault", &format!("{r}/etc/callvault"))
            .replace("/usr/local/bin", &format!("{r}/usr/local/bin"))
            .replace("/var/lib/callvault", &format!("{r}/var/lib/callvault"))
            .replace("/etc/systemd/system", &format!("{r}/etc/systemd/system"))
            .replace("127.0.0.1:8443", &format!("127.0.0.1:{}", self.public_port))
            .replace("127.0.0.1:9464", &format!("127.0.0.1:{}", self.admin_port))
    }

    fn sh(&self, line: &str) -> std::process::Output {
        let path = format!(
            "{}/usr/local/bin:{}",
            self.root.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(REPO)
            .env("PATH", path)
            // the binary's default, /etc/callvault/callvault.toml, moved like every other path
            .env(
                "CALLVAULT_CONFIG",
                self.map("/etc/callvault/callvault.toml"),
            )
            .env_remove("CREDENTIALS_DIRECTORY")
            .output()
            .expect("run sh")
    }
}

/// `Key=value` lines of the unit, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_install_sequence_ends_with_check_config_ok_and_serve_ready() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = Root {
        root: tmp.path().to_owned(),
        public_port: common::free_port(),
        admin_port: common::free_port(),
    };
    for dir in ["usr/local/bin", "etc/systemd/system"] {
        std::fs::create_dir_all(tmp.path().join(dir)).expect("mkdir");
    }
    let lines = readme_install_block();
    let mut ran = Vec::new();
    let mut unit_installed = None;
    for line in &lines {
        let (command, _comment) = line.split_once("  # ").unwrap_or((line, ""));
        if command.starts_with("cargo build") {
            // the test harness built it: put that binary where the README's `install` takes it from
            let built = tmp.path().join("target/release");
            std::fs::create_dir_all(&built).expect("mkdir");
            std::fs::copy(env!("CARGO_BIN_EXE_callvault"), built.join("callvault"))
                .expect("copy the built binary");
            ran.push("build");
            continue;
        }
        if command.starts_with("useradd ") {
            // no root here: the current user stands in for the `callvault` system user
            ran.push("useradd");
            continue;
        }
        if command.starts_with("systemctl ") {
            ran.push("systemctl");
            continue;
        }
        let mut command = root
            .map(command)
            .replace("sudo -u callvault ", "")
            .replace("-o callvault -g callvault ", "");
        if command.contains("target/release/callvault") {
            command = command.replace(
                "target/release/callvault",
                &tmp.path()
                    .join("target/release/callvault")
                    .display()
                    .to_string(),
            );
        }
        let out = root.sh(&command);
        assert!(
            out.status.success(),
            "`{line}` failed ({:?}):\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if line.ends_with("# then edit") {
            // the edit: state, listeners and nothing else, as an operator would
            let config = tmp.path().join("etc/callvault/callvault.toml");
            let text = std::fs::read_to_string(&config).expect("read config");
            std::fs::write(&config, root.map(&text)).expect("edit config");
            ran.push("config");
        } else if command.ends_with("callvault init") {
            for name in ["keyring", "webhook-secret", "signing-key", "caller-pepper"] {
                let p = tmp.path().join("etc/callvault").join(name);
                let mode = std::fs::metadata(&p).expect(name).permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{name}");
                assert!(
                    stdout.contains(&format!("created {}", p.display())),
                    "{stdout}"
                );
            }
            assert!(stdout.contains("webhook-secret"), "{stdout}");
            assert!(stdout.contains("ed25519 public key"), "{stdout}");
            // a second init refuses to overwrite: every secret is kept, byte for byte
            let keyring = tmp.path().join("etc/callvault/keyring");
            let before = std::fs::read(&keyring).expect("keyring");
            let again = root.sh(&command);
            assert!(again.status.success());
            assert!(String::from_utf8_lossy(&again.stdout).contains("kept"));
            assert_eq!(std::fs::read(&keyring).expect("keyring"), before);
            ran.push("init");
        } else if command.ends_with("callvault check-config") {
            assert!(stdout.trim_end().ends_with(": ok"), "{stdout}");
            ran.push("check-config");
        } else if command.contains("callvault.service") {
            unit_installed = Some(tmp.path().join("etc/systemd/system/callvault.service"));
        }
    }
    for step in [
        "build",
        "useradd",
        "config",
        "init",
        "check-config",
        "systemctl",
    ] {
        assert!(
            ran.contains(&step),
            "the README block has no {step} step: {lines:#?}"
        );
    }

    // `systemctl enable --now callvault`: run the installed unit's ExecStartPre and ExecStart the
    // way systemd would, with its LoadCredential= files in a credentials directory
    let unit = std::fs::read_to_string(unit_installed.expect("the README installs the unit"))
        .expect("read unit");
    let creds = tmp.path().join("run/credentials/callvault.service");
    std::fs::create_dir_all(&creds).expect("mkdir creds");
    for cred in unit_values(&unit, "LoadCredential") {
        let (name, from) = cred.split_once(':').expect("name:path");
        let to = creds.join(name);
        std::fs::copy(root.map(from), &to).expect("a LoadCredential= file exists");
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    }
    let state = tmp.path().join("var/lib/callvault");
    std::fs::create_dir_all(&state).expect("StateDirectory=");
    let exec = |line: &str| {
        let argv: Vec<String> = root
            .map(line)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .env("CREDENTIALS_DIRECTORY", &creds)
            .env_remove("CALLVAULT_CONFIG")
            .current_dir(&state);
        c
    };
    for pre in unit_values(&unit, "ExecStartPre") {
        let out = exec(&pre).output().expect("ExecStartPre");
        assert!(
            out.status.success(),
            "ExecStartPre={pre}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let start = unit_values(&unit, "ExecStart");
    assert_eq!(start.len(), 1, "{start:?}");
    let notify = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut child = exec(&start[0])
        .env("NOTIFY_SOCKET", &notify)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ExecStart");
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 within 60s");
    assert_eq!(&buf[..n], b"READY=1\n");

    // `curl -s 127.0.0.1:9464/readyz`
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", root.admin_port)
        .parse()
        .expect("addr");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(common::wait_for_200(
            admin,
            "/readyz",
            Duration::from_secs(30),
        ));

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    // the state the unit's StateDirectory= holds: the catalog and objects, and no secret
    assert!(state.join("catalog.sqlite").exists());
}
