//! FsTree: an image's filesystem, layers applied in order, with each path's history.
//!
//! Built by streaming every layer once ([`scan::scan_layer`], which hashes file content
//! with sha256 as it passes) and applying the scans bottom-up ([`FsTree::apply_layer`]).
//! The tree keeps metadata only, never content (apart from prefixes a caller asked for
//! through the capture hook, e.g. ELF headers for doctor).
//!
//! Layout: a node arena. Each node is `(parent index, name id)` with the name interned
//! once for the whole tree, a first-child/next-sibling chain, its current [`Meta`], and
//! its history (layer that added it, last layer that modified it, layer that removed
//! it). Removed nodes stay in the arena, marked absent, so diff and `--tree` can show
//! them. Each layer's operations are kept (metadata only) so the tree as of any layer
//! can be replayed ([`FsTree::as_of`]).
//!
//! Semantics of applying one layer (OCI image spec, "Applying changesets"): whiteouts and
//! opaque whiteouts act on the lower layers only, so they are applied first; then the
//! layer's entries in stream order (a later entry for the same path wins). Replacing a
//! directory with a non-directory drops its subtree. Missing parents are created as
//! implicit `0755 0:0` directories. Hard links take the size, hash and owner of their
//! target (same inode). Whiteouts of paths that do not exist are recorded as
//! [`TreeWarning::WhiteoutMissing`], never fatal.
//!
//! ```
//! use pinnace::fs::{FsTree, scan::scan_layer};
//! # let tar: &[u8] = &[0u8; 1024];
//! let mut tree = FsTree::new();
//! tree.apply_layer(0, scan_layer(tar, None)?);
//! for id in tree.walk() {
//!     println!("{} {}", tree.path(id), tree.meta(id).size);
//! }
//! # Ok::<(), pinnace::layer::LayerError>(())
//! ```

mod apply;
pub mod glob;
pub mod scan;
pub mod view;

use std::collections::HashMap;

use crate::oci::Digest;

/// Index of a node in a tree's arena (stable for the tree's lifetime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// The root directory.
    pub const ROOT: NodeId = NodeId(0);
    const NONE: u32 = u32::MAX;
    /// The arena index (dense, `0..FsTree::node_count()`), for side tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
    fn ix(self) -> usize {
        self.0 as usize
    }
}

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link ([`Meta::link`] is the target, verbatim).
    Symlink,
    /// Hard link ([`Meta::link`] is the target path; size and hash are the target's).
    HardLink,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
}

/// A path's metadata as of the layer that last set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Kind.
    pub kind: NodeKind,
    /// Permission bits and setuid/setgid/sticky (07777).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Content size (regular files and hard links; 0 otherwise).
    pub size: u64,
    /// sha256 of the content (regular files and hard links).
    pub hash: Option<Digest>,
    /// Symlink target (verbatim) or hard-link target (normalised, no leading `/`).
    pub link: Option<Box<str>>,
}

impl Meta {
    /// An implicit directory (a parent no entry described): `0755`, owned by root.
    pub fn implicit_dir() -> Meta {
        Meta { kind: NodeKind::Dir, mode: 0o755, uid: 0, gid: 0, size: 0, hash: None, link: None }
    }
}

/// What a layer did to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The path did not exist below this layer.
    Added,
    /// The path existed below and this layer rewrote it (content or metadata).
    Modified,
    /// A whiteout or an opaque directory removed it (and its subtree).
    Removed,
}

/// One change a layer made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The node.
    pub node: NodeId,
    /// What happened.
    pub kind: ChangeKind,
}

/// Something odd but survivable while applying layers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TreeWarning {
    /// A whiteout names a path no lower layer has.
    WhiteoutMissing {
        /// Layer index.
        layer: usize,
        /// The path (with a leading `/`).
        path: String,
    },
    /// A hard link names a path that does not exist; it was kept as an empty file.
    HardLinkMissing {
        /// Layer index.
        layer: usize,
        /// The link.
        path: String,
        /// Its target.
        target: String,
    },
    /// An entry's parent was a non-directory; it was replaced by a directory.
    ParentNotDir {
        /// Layer index.
        layer: usize,
        /// The parent replaced.
        path: String,
    },
}

/// An operation a layer applies, kept so the tree can be replayed to any layer.
#[derive(Debug, Clone)]
enum Op {
    Set(NodeId, Meta),
    Whiteout(NodeId),
    Opaque(NodeId),
}

#[derive(Debug, Clone)]
struct Node {
    parent: u32,
    name: u32,
    first_child: u32,
    next_sibling: u32,
    present: bool,
    meta: Meta,
    added_in: u32,
    modified_in: u32,
    removed_in: u32,
    touched_in: u32,
    /// Content identity: one per regular-file entry, shared by its hard links (NONE for
    /// other kinds).
    inode: u32,
    prefix: Option<Box<[u8]>>,
}

#[derive(Debug, Clone, Default)]
struct LayerRecord {
    ops: Vec<Op>,
    changes: Vec<Change>,
}

/// The filesystem of an image (see the module documentation).
#[derive(Debug, Clone)]
pub struct FsTree {
    names: Vec<Box<str>>,
    name_ids: HashMap<Box<str>, u32>,
    nodes: Vec<Node>,
    lookup: HashMap<(u32, u32), u32>,
    layers: Vec<LayerRecord>,
    warnings: Vec<TreeWarning>,
    next_inode: u32,
}

impl Default for FsTree {
    fn default() -> Self {
        Self::new()
    }
}

const NONE: u32 = NodeId::NONE;

fn opt(v: u32) -> Option<usize> {
    (v != NONE).then_some(v as usize)
}

impl FsTree {
    /// An empty filesystem: only the root directory.
    pub fn new() -> FsTree {
        let root = Node {
            parent: NONE,
            name: 0,
            first_child: NONE,
            next_sibling: NONE,
            present: true,
            meta: Meta::implicit_dir(),
            added_in: 0,
            modified_in: NONE,
            removed_in: NONE,
            touched_in: NONE,
            inode: NONE,
            prefix: None,
        };
        let mut t = FsTree {
            names: Vec::new(),
            name_ids: HashMap::new(),
            nodes: vec![root],
            lookup: HashMap::new(),
            layers: Vec::new(),
            warnings: Vec::new(),
            next_inode: 0,
        };
        t.intern("");
        t
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.name_ids.insert(name.into(), id);
        id
    }

    fn child(&self, parent: NodeId, name: &str) -> Option<NodeId> {
        let n = *self.name_ids.get(name)?;
        self.lookup.get(&(parent.0, n)).map(|&i| NodeId(i))
    }

    /// Number of layers applied.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Number of nodes in the arena (present or removed, the root included).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Warnings collected while applying layers.
    pub fn warnings(&self) -> &[TreeWarning] {
        &self.warnings
    }

    /// The node at `path` (leading `/` optional), present or removed; symlinks are not followed.
    pub fn lookup_any(&self, path: &str) -> Option<NodeId> {
        let mut cur = NodeId::ROOT;
        for c in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            cur = self.child(cur, c)?;
        }
        Some(cur)
    }

    /// The present node at `path`; symlinks are not followed (see [`FsTree::resolve`]).
    pub fn lookup(&self, path: &str) -> Option<NodeId> {
        self.lookup_any(path).filter(|&id| self.is_present(id))
    }

    /// The node's name (`""` for the root).
    pub fn name(&self, id: NodeId) -> &str {
        &self.names[self.nodes[id.ix()].name as usize]
    }

    /// The node's absolute path, e.g. `/usr/bin/env` (`/` for the root).
    pub fn path(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != NodeId::ROOT {
            parts.push(self.name(cur));
            cur = NodeId(self.nodes[cur.ix()].parent);
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// The node's parent (`None` for the root).
    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        opt(self.nodes[id.ix()].parent).map(|p| NodeId(p as u32))
    }

    /// The node's metadata (for a removed node: as it was before removal).
    pub fn meta(&self, id: NodeId) -> &Meta {
        &self.nodes[id.ix()].meta
    }

    /// Whether the path exists in the final filesystem.
    pub fn is_present(&self, id: NodeId) -> bool {
        self.nodes[id.ix()].present
    }

    /// The layer that (last) created the path.
    pub fn added_in(&self, id: NodeId) -> usize {
        self.nodes[id.ix()].added_in as usize
    }

    /// The last layer that rewrote the path after it was added, if any.
    pub fn modified_in(&self, id: NodeId) -> Option<usize> {
        opt(self.nodes[id.ix()].modified_in)
    }

    /// The layer that removed the path, when it is absent from the final filesystem.
    pub fn removed_in(&self, id: NodeId) -> Option<usize> {
        opt(self.nodes[id.ix()].removed_in)
    }

    /// The node's content identity: the same for a regular file and every hard link to
    /// it (as an inode number would be), different for each regular-file entry of any
    /// layer (rewriting a path, even with the same bytes, makes a new one). `None` for
    /// directories, symlinks, devices and fifos.
    pub fn inode(&self, id: NodeId) -> Option<u32> {
        let i = self.nodes[id.ix()].inode;
        (i != NONE).then_some(i)
    }

    /// The leading content bytes the capture hook kept for this file, if any.
    pub fn prefix(&self, id: NodeId) -> Option<&[u8]> {
        self.nodes[id.ix()].prefix.as_deref()
    }

    /// The node's children, present or removed, in arena order (unsorted).
    pub fn children(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let mut next = self.nodes[id.ix()].first_child;
        std::iter::from_fn(move || {
            let cur = opt(next)?;
            next = self.nodes[cur].next_sibling;
            Some(NodeId(cur as u32))
        })
    }

    /// The node's children sorted by name (byte order), present or removed.
    pub fn sorted_children(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.children(id).collect();
        v.sort_by(|a, b| self.name(*a).cmp(self.name(*b)));
        v
    }

    /// Every present node except the root, depth-first, parents before children, siblings
    /// sorted by name: the final filesystem in `find` order.
    pub fn walk(&self) -> Vec<NodeId> {
        self.walk_from(NodeId::ROOT, false)
    }

    /// Like [`FsTree::walk`] from `start` (excluded), optionally including removed nodes.
    pub fn walk_from(&self, start: NodeId, include_removed: bool) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack: Vec<NodeId> = self.sorted_children(start).into_iter().rev().collect();
        while let Some(id) = stack.pop() {
            if !include_removed && !self.is_present(id) {
                continue;
            }
            out.push(id);
            stack.extend(self.sorted_children(id).into_iter().rev());
        }
        out
    }

    /// The changes layer `layer` made, in application order (whiteouts first).
    pub fn layer_changes(&self, layer: usize) -> &[Change] {
        self.layers.get(layer).map_or(&[], |l| &l.changes)
    }

    /// One present node per file content ([`FsTree::inode`]), in [`FsTree::walk`] order:
    /// the regular file, or, when no path of that content is a regular file any more (a
    /// hard link's target was deleted or replaced), the first hard link that still
    /// shows it. These are the bytes the final filesystem stores, each counted once.
    pub fn files(&self) -> Vec<NodeId> {
        let mut chosen: Vec<Option<(usize, NodeId)>> = vec![None; self.next_inode as usize];
        for (pos, id) in self.walk().into_iter().enumerate() {
            let Some(ino) = self.inode(id) else { continue };
            let slot = &mut chosen[ino as usize];
            match slot {
                None => *slot = Some((pos, id)),
                Some((_, prev))
                    if self.meta(*prev).kind == NodeKind::HardLink && self.meta(id).kind == NodeKind::File =>
                {
                    *slot = Some((pos, id))
                }
                Some(_) => {}
            }
        }
        let mut out: Vec<(usize, NodeId)> = chosen.into_iter().flatten().collect();
        out.sort_unstable();
        out.into_iter().map(|(_, id)| id).collect()
    }

    /// Total size of the file contents the final filesystem shows ([`FsTree::files`]):
    /// a file and its hard links count once; a hard link whose target was deleted keeps
    /// its content counted.
    pub fn file_bytes(&self) -> u64 {
        self.files().into_iter().map(|id| self.meta(id).size).sum()
    }

    /// Resolves `path` inside the image root, following symlinks in every component
    /// (and in the last one when `follow_last`): absolute targets start at the image
    /// root and `..` stops at it, as a chroot would. Nothing on the host is consulted.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<NodeId, ResolveError> {
        let mut budget = 40u32;
        let mut todo: Vec<String> = path.split('/').rev().filter(|c| !c.is_empty()).map(str::to_string).collect();
        let mut cur = NodeId::ROOT;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    cur = self.parent(cur).unwrap_or(NodeId::ROOT);
                    continue;
                }
                _ => {}
            }
            let Some(next) = self.child(cur, &c).filter(|&n| self.is_present(n)) else {
                return Err(ResolveError::NotFound(format!("{}/{c}", self.path(cur).trim_end_matches('/'))));
            };
            let m = self.meta(next);
            let last = todo.is_empty();
            if m.kind == NodeKind::Symlink && (!last || follow_last) {
                budget = budget.checked_sub(1).ok_or_else(|| ResolveError::Loop(path.to_string()))?;
                let target = m.link.as_deref().unwrap_or("");
                if target.starts_with('/') {
                    cur = NodeId::ROOT;
                }
                todo.extend(target.split('/').rev().filter(|c| !c.is_empty()).map(str::to_string));
                continue;
            }
            if !last && m.kind != NodeKind::Dir {
                return Err(ResolveError::NotADirectory(self.path(next)));
            }
            cur = next;
        }
        Ok(cur)
    }

    /// The filesystem as it was after layer `layer` (replayed from the recorded
    /// operations; captured prefixes are not carried over).
    pub fn as_of(&self, layer: usize) -> FsTree {
        let mut t = FsTree::new();
        for (i, rec) in self.layers.iter().enumerate().take(layer + 1) {
            let ops = rec
                .ops
                .iter()
                .map(|op| match op {
                    Op::Set(id, m) => apply::PathOp::Set(self.path(*id), m.clone()),
                    Op::Whiteout(id) => apply::PathOp::Whiteout(self.path(*id)),
                    Op::Opaque(id) => apply::PathOp::Opaque(self.path(*id)),
                })
                .collect();
            t.apply_ops(i, ops);
        }
        t
    }
}

/// A path could not be resolved inside the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A component does not exist.
    #[error("{0}: no such file or directory in the image")]
    NotFound(String),
    /// A non-final component is not a directory.
    #[error("{0}: not a directory")]
    NotADirectory(String),
    /// Too many symlinks (a loop).
    #[error("{0}: too many levels of symbolic links")]
    Loop(String),
}

#[cfg(test)]
pub(crate) mod tests;
