//! The config's `User`: `user`, `uid`, `user:group`, `uid:gid` and the mixed forms. A name
//! must be in the image's `/etc/passwd` (a group name in `/etc/group`): the runtime looks
//! it up there before starting the process and refuses to start when it is not found
//! ("unable to find user app: no matching entries in passwd file"). Numeric ids need no
//! entry. Running as root is reported for information.
//!
//! Checks: `user-unknown`, `runs-as-root`.

use super::command::Launch;
use super::scan::Snapshot;
use super::Finding;

/// One `name:x:id:...` line of `/etc/passwd` or `/etc/group`: name and id.
fn entries(text: &str) -> impl Iterator<Item = (&str, Option<u64>)> {
    text.lines().filter(|l| !l.trim_start().starts_with('#')).filter_map(|l| {
        let mut f = l.split(':');
        let name = f.next().filter(|n| !n.is_empty())?;
        let id = f.nth(1).and_then(|s| s.trim().parse().ok());
        Some((name, id))
    })
}

/// The id `name` has in `text` (a passwd or group file).
pub fn id_of(text: &str, name: &str) -> Option<u64> {
    entries(text).find(|(n, _)| *n == name).and_then(|(_, id)| id)
}

/// Reports an unknown user or group, or a root user.
pub fn check(snap: &Snapshot, launch: &Launch, out: &mut Vec<Finding>) {
    let spec = launch.user.as_deref().unwrap_or("");
    let (user, group) = spec.split_once(':').map_or((spec, None), |(u, g)| (u, Some(g)));
    let passwd = snap.read_whole("/etc/passwd").map(|b| String::from_utf8_lossy(b).into_owned());
    let groups = snap.read_whole("/etc/group").map(|b| String::from_utf8_lossy(b).into_owned());
    let mut uid = None;
    if user.is_empty() {
        uid = Some(0);
    } else if let Ok(n) = user.parse::<u64>() {
        uid = Some(n);
    } else {
        match &passwd {
            None => out.push(
                Finding::new(
                    "user-unknown",
                    format!("User is {spec:?}, but the image has no /etc/passwd to look {user:?} up in: the container will not start"),
                )
                .at("/etc/passwd"),
            ),
            Some(text) => match id_of(text, user) {
                Some(id) => uid = Some(id),
                None => out.push(
                    Finding::new(
                        "user-unknown",
                        format!("User is {spec:?}, but /etc/passwd has no user {user:?}: the container will not start"),
                    )
                    .at("/etc/passwd"),
                ),
            },
        }
    }
    if let Some(g) = group.filter(|g| !g.is_empty() && g.parse::<u64>().is_err()) {
        let known = groups.as_deref().is_some_and(|t| id_of(t, g).is_some());
        if !known {
            let why = if groups.is_none() {
                "the image has no /etc/group".to_string()
            } else {
                format!("/etc/group has no group {g:?}")
            };
            out.push(
                Finding::new("user-unknown", format!("User is {spec:?}, but {why}: the container will not start"))
                    .at("/etc/group"),
            );
        }
    }
    if uid == Some(0) {
        let how = if spec.is_empty() { "the config sets no User".to_string() } else { format!("User is {spec:?}") };
        out.push(Finding::new("runs-as-root", format!("{how}: the program runs as root (uid 0)")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::doctor::scan::testkit::{snapshot, E};

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &[u8] = b"root:x:0:\napp:x:1000:\n";

    fn run(user: Option<&str>, files: Vec<E>) -> Vec<&'static str> {
        let snap = snapshot(&[files]);
        let l = Launch::new(vec!["/x".into()], vec![], None, user);
        let mut out = Vec::new();
        check(&snap, &l, &mut out);
        out.iter().map(|f| f.id).collect()
    }

    #[test]
    fn parses_passwd() {
        let t = std::str::from_utf8(PASSWD).unwrap();
        assert_eq!(id_of(t, "app"), Some(1000));
        assert_eq!(id_of(t, "root"), Some(0));
        assert_eq!(id_of(t, "nobody"), None);
    }

    #[test]
    fn users_and_groups() {
        let both = || vec![E::file("etc/passwd", PASSWD), E::file("etc/group", GROUP)];
        assert!(run(Some("app"), both()).is_empty());
        assert!(run(Some("app:app"), both()).is_empty());
        assert!(run(Some("1000:1000"), vec![]).is_empty());
        assert_eq!(run(Some("app"), vec![]), vec!["user-unknown"]);
        assert_eq!(run(Some("web"), both()), vec!["user-unknown"]);
        assert_eq!(run(Some("app:staff"), both()), vec!["user-unknown"]);
        assert_eq!(run(Some("1000:staff"), vec![E::file("etc/passwd", PASSWD)]), vec!["user-unknown"]);
    }

    #[test]
    fn root_is_reported_for_information() {
        assert_eq!(run(None, vec![]), vec!["runs-as-root"]);
        assert_eq!(run(Some("0"), vec![]), vec!["runs-as-root"]);
        assert_eq!(run(Some("root"), vec![E::file("etc/passwd", PASSWD)]), vec!["runs-as-root"]);
        assert!(run(Some("65532:65532"), vec![]).is_empty());
    }
}
