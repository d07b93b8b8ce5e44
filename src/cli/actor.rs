//! Who runs a CLI command, for the audit chain: the person logged in, never an environment
//! variable anyone can set (`$USER`, `$LOGNAME`).
//!
//! In order: the login uid (`/proc/self/loginuid`, set by `pam_loginuid` at login and kept
//! through `sudo` and `su`, which the process cannot change); else, when running as root,
//! `SUDO_USER` (only root can have been started by sudo, and root could write anything anyway);
//! else the real uid. A uid is shown as its name from `/etc/passwd`, or as `uid:N` when it has
//! none there.

/// The login uid the kernel reports for a process with none (no `pam_loginuid`, a container).
const NO_LOGIN_UID: u32 = u32::MAX;

/// What the process knows about who started it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    login_uid: Option<u32>,
    uid: u32,
    euid: u32,
    sudo_user: Option<String>,
}

/// `cli:` and the person running this process.
pub(super) fn cli_actor() -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    format!("cli:{}", person(&current(), &passwd))
}

fn current() -> Identity {
    let login_uid = std::fs::read_to_string("/proc/self/loginuid")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&u| u != NO_LOGIN_UID);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let (uid, euid) = uids(&status).unwrap_or((NO_LOGIN_UID, NO_LOGIN_UID));
    Identity {
        login_uid,
        uid,
        euid,
        sudo_user: std::env::var("SUDO_USER").ok(),
    }
}

/// The real and effective uid from `/proc/self/status` (`Uid:\treal\teffective\tsaved\tfs`).
fn uids(status: &str) -> Option<(u32, u32)> {
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let mut ids = line.split_whitespace().map(str::parse::<u32>);
    Some((ids.next()?.ok()?, ids.next()?.ok()?))
}

fn person(id: &Identity, passwd: &str) -> String {
    if let Some(uid) = id.login_uid {
        return name(uid, passwd);
    }
    if id.euid == 0
        && let Some(user) = id.sudo_user.as_deref().map(str::trim)
        && !user.is_empty()
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
    {
        return user.to_owned();
    }
    name(id.uid, passwd)
}

/// The name of `uid` in a passwd file's text, or `uid:N`.
fn name(uid: u32, passwd: &str) -> String {
    passwd
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid_field = f.nth(1)?;
            (uid_field.parse::<u32>().ok()? == uid && !name.is_empty()).then_some(name)
        })
        .next()
        .map_or_else(|| format!("uid:{uid}"), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        alice:x:1000:1000:Alice:/home/alice:/bin/bash\n\
        bob:x:1001:1001::/home/bob:/bin/sh\n";

    fn id(login_uid: Option<u32>, uid: u32, euid: u32, sudo_user: Option<&str>) -> Identity {
        Identity {
            login_uid,
            uid,
            euid,
            sudo_user: sudo_user.map(str::to_owned),
        }
    }

    #[test]
    fn the_login_uid_wins_even_under_sudo() {
        // alice logged in, ran `sudo callvault ...`, and claims to be bob
        assert_eq!(person(&id(Some(1000), 0, 0, Some("bob")), PASSWD), "alice");
        assert_eq!(person(&id(Some(1001), 1001, 1001, None), PASSWD), "bob");
    }

    #[test]
    fn sudo_user_counts_only_for_root_without_a_login_uid() {
        assert_eq!(person(&id(None, 0, 0, Some("alice")), PASSWD), "alice");
        // a user who sets SUDO_USER themselves is still themselves
        assert_eq!(person(&id(None, 1001, 1001, Some("alice")), PASSWD), "bob");
        assert_eq!(person(&id(None, 0, 0, None), PASSWD), "root");
        assert_eq!(person(&id(None, 0, 0, Some("")), PASSWD), "root");
        assert_eq!(
            person(&id(None, 0, 0, Some("x\ncli:forged")), PASSWD),
            "root",
            "a name with odd characters is not taken"
        );
    }

    #[test]
    fn a_uid_without_a_name_is_shown_as_a_number() {
        assert_eq!(person(&id(Some(4242), 0, 0, None), PASSWD), "uid:4242");
        assert_eq!(name(1000, "garbage\n::\nalice:x:notanumber"), "uid:1000");
    }

    #[test]
    fn uids_come_from_proc_status() {
        let status = "Name:\tcallvault\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(uids(status), Some((1000, 0)));
        assert_eq!(uids("Name:\tx\n"), None);
        // and the running process has one
        assert!(uids(&std::fs::read_to_string("/proc/self/status").expect("proc")).is_some());
    }
}
