//! Applying one layer to an [`FsTree`] (the semantics are in the module documentation
//! of [`crate::fs`]).

use std::collections::HashMap;

use super::scan::{LayerScan, ScannedEntry};
use super::{Change, ChangeKind, FsTree, LayerRecord, Meta, Node, NodeId, NodeKind, Op, TreeWarning, NONE};
use crate::layer::EntryKind;

/// A layer operation by path, before the paths are interned.
pub(super) enum PathOp {
    Set(String, Meta),
    SetFile(String, Meta, Option<Box<[u8]>>),
    Whiteout(String),
    Opaque(String),
}

fn meta_of(e: &ScannedEntry) -> Meta {
    let (kind, link) = match &e.kind {
        EntryKind::File => (NodeKind::File, None),
        EntryKind::Dir => (NodeKind::Dir, None),
        EntryKind::Symlink(t) => (NodeKind::Symlink, Some(t.as_str().into())),
        EntryKind::HardLink(t) => (NodeKind::HardLink, Some(t.as_str().into())),
        EntryKind::CharDevice => (NodeKind::CharDevice, None),
        EntryKind::BlockDevice => (NodeKind::BlockDevice, None),
        EntryKind::Fifo => (NodeKind::Fifo, None),
        EntryKind::Whiteout | EntryKind::OpaqueWhiteout => unreachable!("whiteouts are not metadata"),
    };
    Meta { kind, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, hash: e.hash, link }
}

impl FsTree {
    /// Applies layer `layer` (must be the next one: `layer == self.layer_count()`).
    pub fn apply_layer(&mut self, layer: usize, scan: LayerScan) {
        let ops = scan
            .entries
            .into_iter()
            .map(|e| match e.kind {
                EntryKind::Whiteout => PathOp::Whiteout(e.path),
                EntryKind::OpaqueWhiteout => PathOp::Opaque(e.path),
                EntryKind::File => {
                    let m = meta_of(&e);
                    PathOp::SetFile(e.path, m, e.prefix)
                }
                _ => {
                    let m = meta_of(&e);
                    PathOp::Set(e.path, m)
                }
            })
            .collect();
        self.apply_ops(layer, ops);
    }

    pub(super) fn apply_ops(&mut self, layer: usize, ops: Vec<PathOp>) {
        assert_eq!(layer, self.layers.len(), "layers are applied in order");
        self.layers.push(LayerRecord::default());
        let l = layer as u32;
        let mut removed_at: HashMap<NodeId, usize> = HashMap::new();
        // Phase 1: whiteouts and opaque directories act on the lower layers only.
        for op in &ops {
            match op {
                PathOp::Whiteout(p) => match self.lookup(p) {
                    Some(id) if id != NodeId::ROOT => {
                        self.remove_subtree(id, l);
                        removed_at.insert(id, self.layers[layer].changes.len());
                        self.record(layer, Op::Whiteout(id), Change { node: id, kind: ChangeKind::Removed });
                    }
                    _ => self.warnings.push(TreeWarning::WhiteoutMissing { layer, path: format!("/{p}") }),
                },
                PathOp::Opaque(p) => {
                    let dir = self.ensure_dir(layer, p);
                    self.layers[layer].ops.push(Op::Opaque(dir));
                    let kids: Vec<NodeId> = self.children(dir).filter(|&c| self.is_present(c)).collect();
                    for c in kids {
                        self.remove_subtree(c, l);
                        removed_at.insert(c, self.layers[layer].changes.len());
                        self.layers[layer].changes.push(Change { node: c, kind: ChangeKind::Removed });
                    }
                }
                _ => {}
            }
        }
        // Phase 2: entries in stream order; a later entry for one path wins.
        for op in ops {
            let (path, mut meta, prefix) = match op {
                PathOp::Set(p, m) => (p, m, None),
                PathOp::SetFile(p, m, pre) => (p, m, pre),
                _ => continue,
            };
            if path.is_empty() {
                self.nodes[0].meta = Meta { kind: NodeKind::Dir, ..meta };
                continue;
            }
            let mut inode = NONE;
            if meta.kind == NodeKind::HardLink {
                let target = meta.link.as_deref().unwrap_or("").to_string();
                match self.lookup(&target) {
                    Some(t) => {
                        let tm = self.meta(t).clone();
                        inode = self.nodes[t.ix()].inode;
                        meta = Meta { kind: NodeKind::HardLink, link: meta.link, size: tm.size, hash: tm.hash, ..tm };
                    }
                    None => {
                        self.warnings.push(TreeWarning::HardLinkMissing { layer, path: format!("/{path}"), target })
                    }
                }
            }
            if inode == NONE && matches!(meta.kind, NodeKind::File | NodeKind::HardLink) {
                inode = self.next_inode;
                self.next_inode += 1;
            }
            let (parent, name) = match path.rsplit_once('/') {
                Some((d, n)) => (self.ensure_dir(layer, d), n),
                None => (NodeId::ROOT, path.as_str()),
            };
            let id = self.node_at(parent, name);
            let n = &self.nodes[id.ix()];
            let change = if n.present && n.touched_in == l && n.removed_in == NONE {
                None // the same path twice in one layer: the later entry wins, one change
            } else if n.present {
                if n.meta.kind == NodeKind::Dir && meta.kind != NodeKind::Dir {
                    let kids: Vec<NodeId> = self.children(id).collect();
                    for c in kids {
                        self.remove_subtree(c, l);
                    }
                }
                self.nodes[id.ix()].modified_in = l;
                Some(ChangeKind::Modified)
            } else {
                let n = &mut self.nodes[id.ix()];
                let replaced = n.removed_in == l;
                n.present = true;
                n.added_in = if replaced { n.added_in } else { l };
                n.modified_in = if replaced { l } else { NONE };
                n.removed_in = NONE;
                if replaced {
                    // Whiteout then entry in one layer: a replacement, shown as modified.
                    match removed_at.get(&id) {
                        Some(&ix) => {
                            self.layers[layer].changes[ix].kind = ChangeKind::Modified;
                            None
                        }
                        None => Some(ChangeKind::Modified),
                    }
                } else {
                    Some(ChangeKind::Added)
                }
            };
            let n = &mut self.nodes[id.ix()];
            n.touched_in = l;
            n.meta = meta.clone();
            n.inode = inode;
            n.prefix = prefix;
            self.layers[layer].ops.push(Op::Set(id, meta));
            if let Some(kind) = change {
                self.layers[layer].changes.push(Change { node: id, kind });
            }
        }
    }

    fn record(&mut self, layer: usize, op: Op, change: Change) {
        self.layers[layer].ops.push(op);
        self.layers[layer].changes.push(change);
    }

    /// The node `name` under `parent`, created (absent) when new.
    fn node_at(&mut self, parent: NodeId, name: &str) -> NodeId {
        let name_id = self.intern(name);
        if let Some(&i) = self.lookup.get(&(parent.0, name_id)) {
            return NodeId(i);
        }
        let id = self.nodes.len() as u32;
        let p = &mut self.nodes[parent.ix()];
        let next = p.first_child;
        p.first_child = id;
        self.nodes.push(Node {
            parent: parent.0,
            name: name_id,
            first_child: NONE,
            next_sibling: next,
            present: false,
            meta: Meta::implicit_dir(),
            added_in: 0,
            modified_in: NONE,
            removed_in: NONE,
            touched_in: NONE,
            inode: NONE,
            prefix: None,
        });
        self.lookup.insert((parent.0, name_id), id);
        NodeId(id)
    }

    /// Makes `path` a present directory, creating implicit ones (recorded as added).
    fn ensure_dir(&mut self, layer: usize, path: &str) -> NodeId {
        let l = layer as u32;
        let mut cur = NodeId::ROOT;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            let id = self.node_at(cur, c);
            let n = &self.nodes[id.ix()];
            if !n.present {
                let n = &mut self.nodes[id.ix()];
                n.present = true;
                n.meta = Meta::implicit_dir();
                n.inode = NONE;
                n.added_in = l;
                n.modified_in = NONE;
                n.removed_in = NONE;
                n.touched_in = l;
                self.layers[layer].changes.push(Change { node: id, kind: ChangeKind::Added });
                self.layers[layer].ops.push(Op::Set(id, Meta::implicit_dir()));
            } else if n.meta.kind != NodeKind::Dir {
                self.warnings.push(TreeWarning::ParentNotDir { layer, path: self.path(id) });
                let n = &mut self.nodes[id.ix()];
                n.meta = Meta::implicit_dir();
                n.inode = NONE;
                n.modified_in = l;
                n.touched_in = l;
                self.layers[layer].changes.push(Change { node: id, kind: ChangeKind::Modified });
                self.layers[layer].ops.push(Op::Set(id, Meta::implicit_dir()));
            }
            cur = id;
        }
        cur
    }

    /// Marks `id` and everything under it absent, removed by layer `l`.
    fn remove_subtree(&mut self, id: NodeId, l: u32) {
        let mut stack = vec![id];
        while let Some(cur) = stack.pop() {
            let n = &mut self.nodes[cur.ix()];
            if !n.present {
                continue;
            }
            n.present = false;
            n.removed_in = l;
            n.touched_in = l;
            n.prefix = None;
            stack.extend(self.children(cur));
        }
    }
}
