use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

const SECRETS: [&str; 4] = ["keyring", "webhook-secret", "signing-key", "caller-pepper"];

/// A credentials directory holding every default secret, mode 0600.
fn creds() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in SECRETS {
        let p = dir.path().join(name);
        fs::write(&p, b"secret material").expect("write secret");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    dir
}

fn load(text: &str, creds: &Path, overrides: &[&str]) -> Result<Config, ConfigError> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Config::from_toml(
        text,
        Path::new("test.toml"),
        Path::new("/etc/callvault"),
        Some(creds),
        &overrides,
    )
}

fn err(text: &str, overrides: &[&str]) -> String {
    let c = creds();
    load(text, c.path(), overrides)
        .expect_err("should be refused")
        .to_string()
}

fn repo_file(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name);
    fs::read_to_string(&p).expect("example config exists")
}

#[test]
fn the_reference_file_states_exactly_the_defaults() {
    let c = creds();
    let reference = load(&repo_file("callvault.toml"), c.path(), &[]).expect("reference parses");
    let empty = load("", c.path(), &[]).expect("empty file parses");
    assert_eq!(format!("{reference:?}"), format!("{empty:?}"));
}

#[test]
fn every_example_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in fs::read_dir(&dir).expect("config dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let c = creds();
            let text = fs::read_to_string(&path).expect("read example");
            Config::from_toml(&text, &path, &dir, Some(c.path()), &[])
                .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected callvault.toml and dev.toml");
}

#[test]
fn an_unknown_key_is_named() {
    let e = err("[public]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", &[]);
    assert!(
        e.contains("`public.lisen`") && e.contains("unknown field"),
        "{e}"
    );
    let e = err("colour = \"blue\"\n", &[]);
    assert!(e.contains("`colour`"), "{e}");
}

#[test]
fn a_bad_duration_or_period_is_named() {
    let e = err("[pci]\nlookback = \"three seconds\"\n", &[]);
    assert!(
        e.contains("`pci.lookback`") && e.contains("duration"),
        "{e}"
    );
    let e = err("[policies.standard]\nretention = \"3 fortnights\"\n", &[]);
    assert!(
        e.contains("`policies.standard.retention`") && e.contains("calendar period"),
        "{e}"
    );
    let e = err("[policies.standard]\npause_render = \"beep\"\n", &[]);
    assert!(e.contains("`policies.standard.pause_render`"), "{e}");
}

#[test]
fn a_world_readable_secret_is_refused_and_named() {
    let c = creds();
    fs::set_permissions(
        c.path().join("webhook-secret"),
        fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let config = load("", c.path(), &[]).expect("secrets are not read at load");
    let e = config.check_secrets().expect_err("refused").to_string();
    assert!(e.contains("`secrets.webhook`") && e.contains("644"), "{e}");
}

#[test]
fn a_missing_secret_is_refused_unless_dev_creates_it() {
    let c = creds();
    fs::remove_file(c.path().join("signing-key")).expect("rm");
    let config = load("", c.path(), &[]).expect("secrets are not read at load");
    let e = config.check_secrets().expect_err("refused").to_string();
    assert!(e.contains("`secrets.signing_key`"), "{e}");
    load("[secrets]\ncreate_missing = true\n", c.path(), &[])
        .and_then(|c| c.check_secrets())
        .expect("dev mode allows it");
}

#[test]
fn a_public_address_without_tls_is_refused() {
    let e = err("[public]\nlisten = \"0.0.0.0:8443\"\n", &[]);
    assert!(
        e.contains("`public.listen`") && e.contains("public.tls"),
        "{e}"
    );
    let e = err("", &["public.listen=10.1.2.3:443"]);
    assert!(e.contains("`public.listen`"), "{e}");
    let e = err("[admin]\nlisten = \"0.0.0.0:9464\"\n", &[]);
    assert!(e.contains("`admin.listen`"), "{e}");
    let c = creds();
    load("[public]\nlisten = \"[::1]:8443\"\n", c.path(), &[]).expect("ipv6 loopback is fine");
}

#[test]
fn cross_field_checks_name_the_key() {
    let e = err("default_policy = \"gold\"\n", &[]);
    assert!(e.contains("`default_policy`"), "{e}");
    let e = err("[queues]\ncomplaints = \"gold\"\n", &[]);
    assert!(e.contains("`queues.complaints`"), "{e}");
    let e = err("[lines]\n\"01744676789\" = \"standard\"\n", &[]);
    assert!(
        e.contains("`lines.01744676789`") && e.contains("e.164"),
        "{e}"
    );
    let e = err("[pci]\nlookback = \"1s\"\nguard = \"2s\"\n", &[]);
    assert!(e.contains("`pci.guard`"), "{e}");
    let e = err("[recorder]\nidle_seal = \"1s\"\n", &[]);
    assert!(e.contains("`recorder.idle_seal`"), "{e}");
    let e = err("[recorder]\nchunk_size = 12\n", &[]);
    assert!(e.contains("`recorder.chunk_size`"), "{e}");
    let e = err(
        "[storage]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9000\"\naccess_key_id = \"keyring\"\nsecret_access_key = \"keyring\"\n",
        &[],
    );
    assert!(
        e.contains("`storage.endpoint`") && e.contains("allow_http"),
        "{e}"
    );
    let e = err(
        "[storage]\nkind = \"s3\"\nbucket = \"b\"\naccess_key_id = \"keyring\"\nsecret_access_key = \"keyring\"\nrequest_timeout = \"0s\"\n",
        &[],
    );
    assert!(e.contains("`storage.request_timeout`"), "{e}");
    let e = err("[catalog]\nkind = \"oracle\"\n", &[]);
    assert!(e.contains("`catalog"), "{e}");
}

#[test]
fn overrides_change_values_and_are_validated_like_the_file() {
    let c = creds();
    let cfg = load(
        "",
        c.path(),
        &[
            "public.listen=127.0.0.1:0",
            "admin.listen = 127.0.0.1:0",
            "pci.lookback=5s",
            "state_dir=/srv/cv",
            "lines.\"+441744676789\"=standard",
            "recorder.max_calls=7",
        ],
    )
    .expect("overrides apply");
    assert_eq!(cfg.public.listen.port(), 0);
    assert_eq!(cfg.pci.lookback, Duration::from_secs(5));
    assert_eq!(cfg.state_dir, Path::new("/srv/cv"));
    assert_eq!(cfg.recorder.max_calls, 7);
    assert_eq!(cfg.policy_for(Some("+441744676789"), None).name, "standard");

    let e = err("", &["pci.lookback=forever"]);
    assert!(e.contains("`pci.lookback`"), "{e}");
    let e = err("", &["recorder.max_calls=many"]);
    assert!(e.contains("`recorder.max_calls`"), "{e}");
    let e = err("", &["no-equals-sign"]);
    assert!(e.contains("no-equals-sign"), "{e}");
    let e = err("", &["public.nope=1"]);
    assert!(e.contains("`public.nope`"), "{e}");
}

#[test]
fn paths_resolve_against_the_config_dir_and_credentials() {
    let c = creds();
    let cfg = load("state_dir = \"state\"\n", c.path(), &[]).expect("loads");
    assert_eq!(cfg.state_dir, Path::new("/etc/callvault/state"));
    assert_eq!(
        cfg.sqlite_path(),
        Some(Path::new("/etc/callvault/state/catalog.sqlite").to_owned())
    );
    assert_eq!(cfg.keys.keyring.path(), c.path().join("keyring"));
    assert_eq!(cfg.keys.keyring.key(), "keys.keyring");
}

#[test]
fn policies_map_by_queue_then_line_then_default() {
    let c = creds();
    let cfg = load(
        "[policies.standard]\n[policies.long]\nretention = \"12 months\"\n[policies.short]\nretention = \"1 month\"\n\
         [lines]\n\"+441744676789\" = \"long\"\n[queues]\npay = \"short\"\n",
        c.path(),
        &[],
    )
    .expect("loads");
    assert_eq!(cfg.policy_for(Some("+441744676789"), None).name, "long");
    assert_eq!(
        cfg.policy_for(Some("+441744676789"), Some("pay")).name,
        "short"
    );
    assert_eq!(
        cfg.policy_for(Some("+442000000000"), Some("other")).name,
        "standard"
    );
    assert_eq!(
        cfg.policy_for(None, None).retention,
        crate::domain::Period::months(3)
    );
    let e = err("[policies.long]\nretention = \"12 months\"\n", &[]);
    assert!(
        e.contains("`default_policy`") && e.contains("standard"),
        "{e}"
    );
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let e = err("[public\nlisten = 1\n", &[]);
    assert!(e.contains("test.toml") && e.contains("line 1"), "{e}");
}

#[test]
fn keypad_tones_pause_by_default_and_a_policy_may_choose_its_own() {
    use crate::domain::{DtmfMode, DtmfPolicy};
    use std::time::Duration;
    let c = creds();
    let cfg = load("", c.path(), &[]).expect("loads");
    assert_eq!(cfg.policy_for(None, None).dtmf, DtmfPolicy::default());
    assert_eq!(cfg.pci.dtmf, DtmfMode::Pause);
    assert_eq!(cfg.pci.dtmf_quiet, Duration::from_secs(5));
    let cfg = load(
        "[pci]\ndtmf = \"mask\"\ndtmf_quiet = \"8s\"\ndtmf_sensitivity = -40\n\
         [policies.standard]\n[policies.ivr]\ndtmf = \"off\"\n[policies.strict]\ndtmf = \"pause\"\ndtmf_quiet = \"10s\"\n\
         [queues]\nivr = \"ivr\"\nstrict = \"strict\"\n",
        c.path(),
        &["policies.strict.dtmf_sensitivity=-30"],
    )
    .expect("loads");
    let standard = cfg.policy_for(None, None).dtmf;
    assert_eq!(
        (standard.mode, standard.quiet, standard.sensitivity_dbm0),
        (DtmfMode::Mask, Duration::from_secs(8), -40)
    );
    assert_eq!(cfg.policy_for(None, Some("ivr")).dtmf.mode, DtmfMode::Off);
    let strict = cfg.policy_for(None, Some("strict")).dtmf;
    assert_eq!(
        (strict.mode, strict.quiet, strict.sensitivity_dbm0),
        (DtmfMode::Pause, Duration::from_secs(10), -30)
    );
    let e = err("[pci]\ndtmf = \"mute\"\n", &[]);
    assert!(
        e.contains("pci.dtmf") && e.contains("pause, mask, off"),
        "{e}"
    );
    let e = err("[pci]\ndtmf_sensitivity = -5\n", &[]);
    assert!(e.contains("`pci.dtmf_sensitivity`"), "{e}");
    let e = err("[policies.standard]\ndtmf_sensitivity = -60\n", &[]);
    assert!(e.contains("`policies.standard.dtmf_sensitivity`"), "{e}");
    let e = err("[pci]\ndtmf_quiet = \"1h\"\n", &[]);
    assert!(e.contains("`pci.dtmf_quiet`"), "{e}");
}
