//! Waste: bytes every pull downloads that the application never uses.
//!
//! - Package manager caches and index lists left in the final filesystem (apt lists and
//!   archives, apk, yum/dnf, pip, npm, yarn, Go and Cargo caches), with their bytes.
//! - Compilers and build tools in the final filesystem (gcc, clang, rustc, cargo, go,
//!   javac, make, cmake, ninja), with the bytes of the tools and their toolchain
//!   directories: a sign that the build stage and the runtime stage are one.
//! - Files stored in one layer and deleted or replaced by a later one, each from
//!   [`DoctorOptions::deleted_threshold`](super::DoctorOptions) bytes on (the bytes stay
//!   in the lower layer's blob).
//!
//! Checks: `waste-package-cache`, `waste-build-tools`, `waste-deleted-bytes`.

use std::collections::BTreeMap;

use super::command::{lookup, Launch};
use super::scan::Snapshot;
use super::{human, Finding};
use crate::fs::{FsTree, NodeId, NodeKind};

/// Caches smaller than this are not worth a line.
const MIN_CACHE: u64 = 1024;
/// Deleted files reported one by one, at most.
const MAX_DELETED_LINES: usize = 20;

/// Cache directories: path (a `*` component matches any one name) and what fills it.
const CACHES: &[(&str, &str)] = &[
    ("/var/lib/apt/lists", "apt package lists"),
    ("/var/cache/apt", "apt's package cache"),
    ("/var/cache/apk", "apk's package cache"),
    ("/var/cache/yum", "yum's cache"),
    ("/var/cache/dnf", "dnf's cache"),
    ("/root/.cache/pip", "pip's cache"),
    ("/home/*/.cache/pip", "pip's cache"),
    ("/root/.npm/_cacache", "npm's cache"),
    ("/home/*/.npm/_cacache", "npm's cache"),
    ("/usr/local/share/.cache/yarn", "yarn's cache"),
    ("/root/.cache/yarn", "yarn's cache"),
    ("/root/.cache/go-build", "Go's build cache"),
    ("/root/go/pkg/mod", "Go's module cache"),
    ("/go/pkg/mod", "Go's module cache"),
    ("/root/.cargo/registry", "Cargo's registry cache"),
    ("/usr/local/cargo/registry", "Cargo's registry cache"),
];

/// Build tools, looked up on the image's `PATH`.
const TOOLS: &[&str] =
    &["gcc", "g++", "cc", "c++", "clang", "clang++", "rustc", "cargo", "go", "javac", "make", "cmake", "ninja"];

/// Toolchain directories counted with the tools.
const TOOLCHAIN_DIRS: &[&str] =
    &["/usr/lib/gcc", "/usr/libexec/gcc", "/usr/include", "/usr/local/go", "/usr/local/rustup", "/root/.rustup"];

/// The present directories matching `pattern` (components may be `*`).
fn expand(tree: &FsTree, pattern: &str) -> Vec<NodeId> {
    let mut cur = vec![NodeId::ROOT];
    for c in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for id in cur {
            for k in tree.sorted_children(id) {
                if tree.is_present(k) && tree.meta(k).kind == NodeKind::Dir && (c == "*" || tree.name(k) == c) {
                    next.push(k);
                }
            }
        }
        cur = next;
    }
    cur
}

/// Regular-file bytes and count under `dir`, and the layer that stored most of them.
fn subtree(tree: &FsTree, dir: NodeId) -> (u64, usize, Option<usize>) {
    let mut per_layer: BTreeMap<usize, u64> = BTreeMap::new();
    let (mut bytes, mut files) = (0, 0);
    for id in tree.walk_from(dir, false) {
        let m = tree.meta(id);
        if m.kind == NodeKind::File {
            bytes += m.size;
            files += 1;
            *per_layer.entry(tree.modified_in(id).unwrap_or(tree.added_in(id))).or_default() += m.size;
        }
    }
    (bytes, files, per_layer.into_iter().max_by_key(|(_, b)| *b).map(|(l, _)| l))
}

/// Reports caches, build tools and deleted bytes.
pub fn check(snap: &Snapshot, launch: &Launch, out: &mut Vec<Finding>) {
    let tree = &snap.tree;
    for (pattern, what) in CACHES {
        for dir in expand(tree, pattern) {
            let (bytes, files, layer) = subtree(tree, dir);
            if bytes < MIN_CACHE {
                continue;
            }
            let path = tree.path(dir);
            let mut f =
                Finding::new("waste-package-cache", format!("{path} holds {} of {what} ({files} files)", human(bytes)))
                    .at(path);
            if let Some(l) = layer {
                f = f.in_layer(l);
            }
            out.push(f);
        }
    }
    build_tools(snap, launch, out);
    for s in snap.shadowed.iter().take(MAX_DELETED_LINES) {
        let how = if s.deleted { "deleted" } else { "replaced" };
        out.push(
            Finding::new(
                "waste-deleted-bytes",
                format!(
                    "{} ({}) is stored in layer {} and {how} by layer {}: every pull still downloads it",
                    s.path,
                    human(s.size),
                    s.layer,
                    s.by
                ),
            )
            .at(s.path.clone())
            .in_layer(s.layer),
        );
    }
    if snap.shadowed.len() > MAX_DELETED_LINES {
        let rest = &snap.shadowed[MAX_DELETED_LINES..];
        out.push(Finding::new(
            "waste-deleted-bytes",
            format!(
                "{} more large files are deleted or replaced by later layers ({}); all hidden files take {}",
                rest.len(),
                human(rest.iter().map(|s| s.size).sum()),
                human(snap.shadowed_bytes)
            ),
        ));
    }
}

fn build_tools(snap: &Snapshot, launch: &Launch, out: &mut Vec<Finding>) {
    let tree = &snap.tree;
    let mut found = Vec::new();
    let mut bytes = 0;
    let mut seen = std::collections::HashSet::new();
    for tool in TOOLS {
        let Ok((path, id)) = lookup(tree, launch, tool) else { continue };
        if !matches!(tree.meta(id).kind, NodeKind::File | NodeKind::HardLink) || tree.meta(id).mode & 0o111 == 0 {
            continue;
        }
        if seen.insert(id) {
            bytes += tree.meta(id).size;
        }
        found.push(path);
    }
    if found.is_empty() {
        return;
    }
    let mut dirs = Vec::new();
    for d in TOOLCHAIN_DIRS {
        if let Some(id) = tree.lookup(d).filter(|&id| tree.meta(id).kind == NodeKind::Dir) {
            bytes += subtree(tree, id).0;
            dirs.push(*d);
        }
    }
    let with = if dirs.is_empty() { String::new() } else { format!(" (with {})", dirs.join(", ")) };
    out.push(
        Finding::new(
            "waste-build-tools",
            format!("build tools in the image: {}; they take {}{with}", found.join(", "), human(bytes)),
        )
        .at(found[0].clone()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::doctor::scan::testkit::{snapshot, E};

    fn run(layers: &[Vec<E>]) -> Vec<Finding> {
        let snap = snapshot(layers);
        let mut out = Vec::new();
        check(&snap, &Launch::new(vec![], vec![], None, None), &mut out);
        out
    }

    #[test]
    fn caches_with_their_bytes() {
        let f = run(&[vec![
            E::file("var/lib/apt/lists/deb_Packages", &[b'x'; 5000]),
            E::file("var/lib/apt/lists/lock", b""),
            E::file("home/app/.cache/pip/wheels/a.whl", &[0; 3000]),
            E::file("var/cache/apt/tiny", b"x"),
        ]]);
        let ids: Vec<_> = f.iter().map(|f| (f.id, f.path.clone().unwrap())).collect();
        assert_eq!(
            ids,
            vec![
                ("waste-package-cache", "/var/lib/apt/lists".to_string()),
                ("waste-package-cache", "/home/app/.cache/pip".to_string())
            ]
        );
        assert!(f[0].message.contains("4.9 KiB of apt package lists (2 files)"), "{}", f[0].message);
        assert_eq!(f[0].layer, Some(0));
        assert!(run(&[vec![E::Dir("var/lib/apt/lists", 0o755)]]).is_empty());
    }

    #[test]
    fn build_tools_on_path() {
        let f = run(&[vec![
            E::exe("usr/bin/gcc-12", &[0; 100]),
            E::link("usr/bin/gcc", "gcc-12"),
            E::exe("usr/bin/make", &[0; 50]),
        ]]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].id, "waste-build-tools");
        assert!(
            f[0].message.contains("/usr/bin/gcc, /usr/bin/make") && f[0].message.contains("150 B"),
            "{}",
            f[0].message
        );
        assert!(run(&[vec![E::exe("usr/bin/app", b"x")]]).is_empty());
    }

    #[test]
    fn deleted_and_replaced_files_from_the_threshold_on() {
        let big = vec![7u8; 2 << 20];
        let f = run(&[
            vec![E::file("big.tar", &big), E::file("small", b"x"), E::file("conf", &big)],
            vec![E::Whiteout("big.tar"), E::Whiteout("small"), E::file("conf", b"new")],
        ]);
        let msgs: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(f.len(), 2, "{msgs:?}");
        assert!(
            msgs.iter().any(|m| m.starts_with("/big.tar (2.0 MiB) is stored in layer 0 and deleted by layer 1")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.starts_with("/conf (2.0 MiB) is stored in layer 0 and replaced by layer 1")),
            "{msgs:?}"
        );
    }
}
