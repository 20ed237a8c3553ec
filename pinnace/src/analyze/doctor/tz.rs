//! Time zones without zone data: glibc, musl and Go read `/usr/share/zoneinfo/<zone>` to
//! turn `TZ=Europe/Paris` (or a zone the program asks for by name) into local time. When
//! the file is missing none of them fails: they silently use UTC, which is worse.
//!
//! Reported when `TZ` names a zone whose file is missing (POSIX rules such as
//! `CET-1CEST,M3.5.0,M10.5.0/3` and UTC need no file), or when a program on the chain
//! reads zone files (the string `/usr/share/zoneinfo` or `zoneinfo` in it; Go's time
//! package) and the image has no zone data, unless it embeds it (Go's `time/tzdata`).
//! Go also honours `ZONEINFO` (a directory or zip).
//!
//! Check: `tz-no-zoneinfo`.

use super::command::Launch;
use super::elf::Analysis;
use super::scan::Snapshot;
use super::Finding;
use crate::fs::NodeKind;

/// Where zone data lives.
pub const ZONEINFO: &str = "/usr/share/zoneinfo";

/// The zone file `TZ` names, or `None` when the value needs no file.
pub fn zone_file(tz: &str) -> Option<String> {
    let tz = tz.trim();
    let name = tz.strip_prefix(':').unwrap_or(tz);
    if name.is_empty() || ["UTC", "GMT", "UCT", "Zulu", "Etc/UTC", "Etc/GMT", "Universal"].contains(&name) {
        return None;
    }
    if name.starts_with('/') {
        return Some(name.to_string());
    }
    // A POSIX rule carries its offsets (digits) and is parsed without any file.
    let rule = name.contains(',') || (name.bytes().any(|b| b.is_ascii_digit()) && !name.contains('/'));
    if !tz.starts_with(':') && rule {
        return None;
    }
    Some(format!("{ZONEINFO}/{name}"))
}

fn zone_data(snap: &Snapshot, launch: &Launch) -> bool {
    let t = &snap.tree;
    let dirs = launch.env("ZONEINFO").into_iter().chain([ZONEINFO]);
    dirs.into_iter().any(|d| {
        t.resolve(d, true).is_ok_and(|id| match t.meta(id).kind {
            NodeKind::Dir => t.children(id).any(|c| t.is_present(c)),
            NodeKind::File => t.meta(id).size > 0,
            _ => false,
        })
    })
}

/// Reports a zone that cannot be found.
pub fn check(snap: &Snapshot, launch: &Launch, analysis: &Analysis, out: &mut Vec<Finding>) {
    let embedded = analysis.elf.iter().any(|e| e.info.as_ref().is_some_and(|i| i.go_embedded_tzdata));
    if embedded {
        return;
    }
    if let Some(tz) = launch.env("TZ") {
        if let Some(file) = zone_file(tz) {
            let found = snap.tree.resolve(&file, true).is_ok_and(|id| snap.tree.meta(id).kind != NodeKind::Dir);
            let elsewhere = launch.env("ZONEINFO").is_some() && zone_data(snap, launch);
            if !(found || elsewhere) {
                out.push(
                    Finding::new(
                        "tz-no-zoneinfo",
                        format!("TZ={tz}, but {file} is not in the image: local time silently becomes UTC"),
                    )
                    .at(file),
                );
            }
        }
        return;
    }
    if zone_data(snap, launch) {
        return;
    }
    for e in &analysis.elf {
        let Some(why) = e.info.as_ref().and_then(|i| i.zoneinfo.clone()) else { continue };
        if why.starts_with("imports") {
            // localtime() without TZ and without /etc/localtime is UTC by design.
            continue;
        }
        let path = &analysis.chain.programs[e.program].path;
        out.push(
            Finding::new(
                "tz-no-zoneinfo",
                format!("{path} reads time zone data ({why}), but the image has no {ZONEINFO}: named zones silently become UTC"),
            )
            .at(path.clone()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::doctor::scan::testkit::{snapshot, E};

    #[test]
    fn zone_files_of_tz_values() {
        assert_eq!(zone_file("Europe/Paris").as_deref(), Some("/usr/share/zoneinfo/Europe/Paris"));
        assert_eq!(zone_file(":America/New_York").as_deref(), Some("/usr/share/zoneinfo/America/New_York"));
        assert_eq!(zone_file(":/etc/localtime").as_deref(), Some("/etc/localtime"));
        assert_eq!(zone_file("UTC"), None);
        assert_eq!(zone_file("CET-1CEST,M3.5.0,M10.5.0/3"), None);
        assert_eq!(zone_file("EST5EDT"), None);
        assert_eq!(zone_file(""), None);
        assert_eq!(zone_file("Etc/GMT+5").as_deref(), Some("/usr/share/zoneinfo/Etc/GMT+5"));
    }

    fn run(env: &[&str], files: Vec<E>) -> Vec<Finding> {
        let snap = snapshot(&[files]);
        let l = Launch::new(vec![], env.iter().map(|s| s.to_string()).collect(), None, None);
        let mut out = Vec::new();
        check(&snap, &l, &Analysis::default(), &mut out);
        out
    }

    #[test]
    fn tz_set_needs_its_file() {
        assert_eq!(run(&["TZ=Europe/Paris"], vec![]).len(), 1);
        assert!(run(&["TZ=Europe/Paris"], vec![E::file("usr/share/zoneinfo/Europe/Paris", b"TZif")]).is_empty());
        assert!(run(&["TZ=UTC"], vec![]).is_empty());
        assert!(run(&[], vec![]).is_empty());
        let go = run(&["TZ=Asia/Tokyo", "ZONEINFO=/zoneinfo.zip"], vec![E::file("zoneinfo.zip", b"PK")]);
        assert!(go.is_empty(), "{go:?}");
    }
}
