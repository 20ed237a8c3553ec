//! The image's final filesystem as a [`RootFs`], so the ELF resolver can run inside it
//! exactly as it runs on a host directory for `build`.
//!
//! `lstat` and `read_dir` answer from the [`FsTree`](crate::fs::FsTree); `read` answers
//! from what the capture plan kept (an ELF file's sparse form, materialised to its
//! original length). A read of a file that was not kept fails, and the path is recorded
//! in [`TreeRoot::missing`], so the caller can fetch those files with a targeted pass
//! and run the analysis again. The resolver swallows some read errors on purpose (an
//! unreadable `ld.so.cache` only draws a warning, as ld.so ignores it), which is why the
//! caller checks [`TreeRoot::missing`] rather than only the resolver's result.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io;

use super::capture::Captured;
use super::scan::Snapshot;
use crate::elf::{Node, RootFs};
use crate::fs::{NodeId, NodeKind};

/// A [`RootFs`] over a [`Snapshot`].
#[derive(Debug)]
pub struct TreeRoot<'a> {
    snap: &'a Snapshot,
    missing: RefCell<BTreeSet<String>>,
}

impl<'a> TreeRoot<'a> {
    /// The snapshot's final filesystem.
    pub fn new(snap: &'a Snapshot) -> TreeRoot<'a> {
        TreeRoot { snap, missing: RefCell::new(BTreeSet::new()) }
    }

    /// Paths read but not captured, since the root was made.
    pub fn missing(&self) -> BTreeSet<String> {
        self.missing.borrow().clone()
    }

    /// Records that the content of `path` is needed but was not captured.
    pub fn want(&self, path: &str) {
        self.missing.borrow_mut().insert(path.to_string());
    }

    /// The bytes of the file at `path` (no symbolic link followed), as far as captured:
    /// `Ok(None)` when the file exists but its content was not kept.
    pub fn bytes(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        let id = self.node(path).ok_or_else(|| not_found(path))?;
        Ok(match self.snap.captured(id) {
            Some(Captured::Elf(e)) => Some(e.sparse.materialize()),
            Some(Captured::Bytes { data, .. }) => Some(data.to_vec()),
            None => None,
        })
    }

    fn node(&self, path: &str) -> Option<NodeId> {
        self.snap.tree.lookup(path)
    }
}

fn not_found(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{path}: not in the image"))
}

impl RootFs for TreeRoot<'_> {
    fn lstat(&self, path: &str) -> io::Result<Option<Node>> {
        let Some(id) = self.node(path) else { return Ok(None) };
        let m = self.snap.tree.meta(id);
        Ok(Some(match m.kind {
            NodeKind::File | NodeKind::HardLink => Node::File,
            NodeKind::Dir => Node::Dir,
            NodeKind::Symlink => Node::Symlink(m.link.as_deref().unwrap_or("").to_string()),
            _ => Node::Other,
        }))
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        match self.bytes(path)? {
            Some(b) => Ok(b),
            None => {
                self.want(path);
                Err(io::Error::other(format!("{path}: content not captured yet")))
            }
        }
    }

    fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let t = &self.snap.tree;
        let id = self.node(path).ok_or_else(|| not_found(path))?;
        let mut names: Vec<String> =
            t.children(id).filter(|&c| t.is_present(c)).map(|c| t.name(c).to_string()).collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::doctor::scan::testkit::{snapshot, E};

    #[test]
    fn answers_from_the_tree_and_the_captures() {
        let snap = snapshot(&[vec![
            E::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            E::exe("usr/bin/tool", b"#!/bin/sh\n"),
            E::file("usr/share/big", b"not kept"),
            E::link("bin", "usr/bin"),
        ]]);
        let root = TreeRoot::new(&snap);
        assert_eq!(root.lstat("/bin").unwrap(), Some(Node::Symlink("usr/bin".into())));
        assert_eq!(root.lstat("/usr").unwrap(), Some(Node::Dir));
        assert_eq!(root.lstat("/nope").unwrap(), None);
        assert_eq!(root.read("/etc/passwd").unwrap(), b"root:x:0:0::/root:/bin/sh\n");
        assert_eq!(root.read("/usr/bin/tool").unwrap(), b"#!/bin/sh\n");
        assert!(root.read("/usr/share/big").is_err());
        assert_eq!(root.missing(), BTreeSet::from(["/usr/share/big".to_string()]));
        assert_eq!(root.read_dir("/usr").unwrap(), vec!["bin", "share"]);
        let resolved = crate::elf::resolve_in_root(&root, "/bin/tool").unwrap();
        assert_eq!(resolved.path, "/usr/bin/tool");
    }
}
