//! The package set as a file tree, so `--binary` closures resolve inside the image's own
//! packages and never pick up host libraries.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use crate::elf::{self, Binary, ClosureOptions, Node, RootFs};
use crate::layer::{FileSource, LayerEntrySpec, SpecKind};

/// One path of the package set.
#[derive(Debug, Clone)]
enum Item {
    File(Arc<[u8]>),
    Dir,
    Link(String),
}

/// The files of the extracted packages, as a [`RootFs`].
#[derive(Debug, Clone, Default)]
pub struct PackageRoot {
    items: BTreeMap<String, Item>,
}

impl PackageRoot {
    /// Adds layer entries (paths without a leading `/`); hard links become copies of
    /// their target's content. The first entry at a path wins, as in the layers.
    pub fn add(&mut self, entries: &[LayerEntrySpec]) {
        for e in entries {
            let item = match &e.kind {
                SpecKind::File(FileSource::Bytes(b)) => Item::File(b.clone()),
                SpecKind::File(FileSource::Path(_)) => Item::File(Arc::from(&b""[..])),
                SpecKind::Dir => Item::Dir,
                SpecKind::Symlink(t) => Item::Link(t.clone()),
                SpecKind::HardLink(t) => match self.items.get(t) {
                    Some(Item::File(b)) => Item::File(b.clone()),
                    _ => continue,
                },
                SpecKind::Whiteout | SpecKind::OpaqueWhiteout => continue,
            };
            self.items.entry(e.path.clone()).or_insert(item);
        }
    }

    /// Whether a path (with or without leading `/`) exists.
    pub fn contains(&self, path: &str) -> bool {
        self.lookup(path).is_some()
    }

    fn lookup(&self, path: &str) -> Option<Node> {
        let key = path.trim_start_matches('/');
        if key.is_empty() {
            return Some(Node::Dir);
        }
        match self.items.get(key) {
            Some(Item::File(_)) => Some(Node::File),
            Some(Item::Dir) => Some(Node::Dir),
            Some(Item::Link(t)) => Some(Node::Symlink(t.clone())),
            // A parent implied by its children.
            None => {
                let prefix = format!("{key}/");
                self.items.range(prefix.clone()..).next().filter(|(k, _)| k.starts_with(&prefix)).map(|_| Node::Dir)
            }
        }
    }
}

impl RootFs for PackageRoot {
    fn lstat(&self, path: &str) -> io::Result<Option<Node>> {
        Ok(self.lookup(path))
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        match self.items.get(path.trim_start_matches('/')) {
            Some(Item::File(b)) => Ok(b.to_vec()),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, format!("{path}: not a file of the package set"))),
        }
    }

    fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let key = path.trim_start_matches('/');
        let prefix = if key.is_empty() { String::new() } else { format!("{key}/") };
        let mut names: Vec<String> = self
            .items
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| k[prefix.len()..].split('/').next().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// Resolves a binary's closure inside the package set and returns warnings: libraries
/// no package ships, TLS without a CA bundle, time zones without zoneinfo.
pub fn check_binary(root: &PackageRoot, binary: &Binary, name: &str) -> Vec<String> {
    let opts = ClosureOptions { allow_missing: true, ..ClosureOptions::default() };
    let closure = match elf::resolve_closure(root, binary, &opts) {
        Ok(c) => c,
        Err(e) => return vec![format!("{name}: its libraries could not be resolved in the package set: {e}")],
    };
    let mut w: Vec<String> = closure.warnings.iter().map(|x| format!("{name}: {x}")).collect();
    for m in &closure.missing {
        w.push(format!(
            "{name}: {} (needed by {}) is in no package of the image: add the package that ships it with --deb",
            m.soname,
            m.needed_by.join(", ")
        ));
    }
    if let Some(t) = &closure.facts.tls {
        if !root.contains("etc/ssl/certs/ca-certificates.crt") {
            w.push(format!("{name}: does TLS ({t}) but the image has no CA bundle: add --deb ca-certificates"));
        }
    }
    if closure.facts.zoneinfo.is_some() && !closure.facts.go_embedded_tzdata && !root.contains("usr/share/zoneinfo") {
        w.push(format!("{name}: reads time zones but the image has no zoneinfo: add --deb tzdata"));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, kind: SpecKind) -> LayerEntrySpec {
        LayerEntrySpec { path: path.into(), kind, mode: 0o644, uid: 0, gid: 0 }
    }

    #[test]
    fn tree_semantics() {
        let mut r = PackageRoot::default();
        r.add(&[
            e("usr/lib/x86_64-linux-gnu/libz.so.1.2", SpecKind::File(FileSource::Bytes(Arc::from(&b"z"[..])))),
            e("usr/lib/x86_64-linux-gnu/libz.so.1", SpecKind::Symlink("libz.so.1.2".into())),
            e("usr/lib/x86_64-linux-gnu/hard", SpecKind::HardLink("usr/lib/x86_64-linux-gnu/libz.so.1.2".into())),
            e("etc", SpecKind::Dir),
        ]);
        assert_eq!(r.lstat("/usr").unwrap(), Some(Node::Dir));
        assert_eq!(r.lstat("/").unwrap(), Some(Node::Dir));
        assert_eq!(r.lstat("/usr/lib/x86_64-linux-gnu/libz.so.1").unwrap(), Some(Node::Symlink("libz.so.1.2".into())));
        assert_eq!(r.read("/usr/lib/x86_64-linux-gnu/hard").unwrap(), b"z");
        assert_eq!(r.read_dir("/").unwrap(), ["etc", "usr"]);
        assert_eq!(r.read_dir("/usr/lib/x86_64-linux-gnu").unwrap(), ["hard", "libz.so.1", "libz.so.1.2"]);
        assert_eq!(r.lstat("/us").unwrap(), None);
        let resolved = elf::resolve_in_root(&r, "/usr/lib/x86_64-linux-gnu/libz.so.1").unwrap();
        assert_eq!(resolved.path, "/usr/lib/x86_64-linux-gnu/libz.so.1.2");
    }
}
