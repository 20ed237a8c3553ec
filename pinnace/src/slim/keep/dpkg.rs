//! The files of a Debian package, from the image's dpkg database (`--keep-package`).
//!
//! Two layouts: dpkg's own, `/var/lib/dpkg/info/NAME.list` (or `NAME:ARCH.list` for a
//! `Multi-Arch: same` package), one path per line, directories included; and the
//! distroless one, `/var/lib/dpkg/status.d/NAME` (the status stanza) next to
//! `NAME.md5sums` (`<md5>  <path without leading />` per file), which lists regular
//! files only.

use super::KeepError;
use crate::fs::{FsTree, NodeId, NodeKind};

const INFO: &str = "/var/lib/dpkg/info";
const STATUS_D: &str = "/var/lib/dpkg/status.d";

/// The absolute paths package `name` installed, as its database entry lists them.
/// `read` returns the contents of a file of the image by its tree path.
pub(super) fn package_files(
    tree: &FsTree,
    name: &str,
    read: &dyn Fn(&str) -> Result<Vec<u8>, KeepError>,
) -> Result<Vec<String>, KeepError> {
    let info = children(tree, INFO);
    let list = info.iter().find(|f| {
        f.strip_suffix(".list").is_some_and(|p| p == name || p.split_once(':').is_some_and(|(n, _)| n == name))
    });
    if let Some(list) = list {
        let text = read(&format!("{INFO}/{list}"))?;
        let lines = String::from_utf8_lossy(&text);
        return Ok(lines.lines().map(str::trim).filter(|l| !l.is_empty() && *l != "/.").map(str::to_string).collect());
    }
    let status = children(tree, STATUS_D);
    let sums = format!("{name}.md5sums");
    if status.contains(&sums) {
        let text = read(&format!("{STATUS_D}/{sums}"))?;
        let lines = String::from_utf8_lossy(&text);
        return Ok(lines
            .lines()
            .filter_map(|l| l.split_once(char::is_whitespace).map(|(_, p)| p.trim()))
            .filter(|p| !p.is_empty())
            .map(|p| format!("/{}", p.trim_start_matches('/')))
            .collect());
    }
    if status.iter().any(|f| f == name) {
        return Err(KeepError::PackageWithoutFileList { name: name.to_string(), status: format!("{STATUS_D}/{name}") });
    }
    let mut known: Vec<String> = info
        .iter()
        .filter_map(|f| f.strip_suffix(".list"))
        .map(|f| f.split_once(':').map_or(f, |(n, _)| n).to_string())
        .chain(status.iter().filter(|f| !f.contains('.')).cloned())
        .collect();
    known.sort();
    known.dedup();
    if known.is_empty() {
        return Err(KeepError::NoDpkgDatabase { name: name.to_string() });
    }
    Err(KeepError::UnknownPackage { name: name.to_string(), close: close_names(name, &known) })
}

/// The names of the entries of directory `dir` of the tree (symlinks followed), sorted.
fn children(tree: &FsTree, dir: &str) -> Vec<String> {
    let Ok(id) = tree.resolve(dir, true) else { return Vec::new() };
    if tree.meta(id).kind != NodeKind::Dir {
        return Vec::new();
    }
    let kids: Vec<NodeId> = tree.sorted_children(id).into_iter().filter(|&c| tree.is_present(c)).collect();
    kids.into_iter().map(|c| tree.name(c).to_string()).collect()
}

/// Up to five of `known` that look like `name`: sharing a substring either way, or
/// within a few edits, closest first.
fn close_names(name: &str, known: &[String]) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = known
        .iter()
        .filter_map(|k| {
            let d = distance(name, k);
            let near = d <= 2.max(name.len() / 3) || k.contains(name) || name.contains(k.as_str());
            near.then_some((d, k))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, k)| k.clone()).collect()
}

/// Levenshtein distance between two names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_close_names() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        let known: Vec<String> = ["libssl3", "openssl", "python3", "python3.11", "zlib1g"].map(String::from).to_vec();
        assert_eq!(close_names("python", &known), ["python3", "python3.11"]);
        assert_eq!(close_names("libssl", &known), ["libssl3"]);
        assert!(close_names("xyzzy-completely-different", &known).is_empty());
    }
}
