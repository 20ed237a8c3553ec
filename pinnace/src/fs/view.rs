//! Views of an [`FsTree`] for `inspect --tree` (and `explore` later): which paths to
//! show, with what size and change marker, as an indented tree or a flat list. Only
//! the drawing is left to the caller ([`ViewRow::branch`] gives the tree guides).
//!
//! Sizes: a regular file or hard link shows its content size; a directory the bytes of
//! the file contents beneath it, each content counted once (a file and its hard links
//! are one content, attributed to the path [`FsTree::files`] picks). A removed path (in
//! a `--changes` view) shows what it held when it was removed.
//!
//! Filters: a path *matches* when it passes every filter given (changed in the marker
//! layer, the glob, the minimum size). The flat view lists the matching paths only; the
//! tree view also shows their ancestors, unmarked by the filters, so each match keeps
//! its place in the tree (as `tree -P` does).

use std::collections::{HashMap, HashSet};

use super::glob::Glob;
use super::{ChangeKind, FsTree, NodeId, NodeKind};

/// Order of siblings (tree) or of the whole list (flat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// By name, byte order (`find` and dive order).
    #[default]
    Name,
    /// Largest first; equal sizes by name.
    Size,
}

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct ViewOptions<'a> {
    /// The layer whose changes give the markers (usually the tree's last layer).
    pub layer: usize,
    /// Only paths that layer added, modified or removed (removed paths included).
    pub changes_only: bool,
    /// Only paths matching this glob.
    pub glob: Option<&'a Glob>,
    /// Only paths at least this large ([`ViewRow::size`]).
    pub min_size: Option<u64>,
    /// Order.
    pub sort: SortBy,
}

/// One line of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRow {
    /// The path's node.
    pub node: NodeId,
    /// Depth below the root: 0 for `/bin`, 1 for `/bin/sh` (0 for every row of a flat view).
    pub depth: usize,
    /// Size (see the module documentation).
    pub size: u64,
    /// What the marker layer did to the path.
    pub change: Option<ChangeKind>,
    /// Whether the path passes the filters itself (false: shown as an ancestor of one).
    pub matched: bool,
    /// For each level from the top down to this row: whether that ancestor (and, last,
    /// this row) is the last shown child of its directory. Drives [`ViewRow::branch`].
    pub last: Vec<bool>,
}

impl ViewRow {
    /// The tree guides before the row's name, `tree`-style: `│   ├── ` and so on (empty
    /// in a flat view).
    pub fn branch(&self) -> String {
        let mut s = String::new();
        let Some((own, above)) = self.last.split_last() else { return s };
        for &done in above {
            s.push_str(if done { "    " } else { "│   " });
        }
        s.push_str(if *own { "└── " } else { "├── " });
        s
    }
}

struct Prepared {
    nodes: Vec<NodeId>,
    size: Vec<u64>,
    change: HashMap<NodeId, ChangeKind>,
    matched: Vec<bool>,
}

fn prepare(t: &FsTree, o: &ViewOptions) -> Prepared {
    let nodes = t.walk_from(NodeId::ROOT, o.changes_only);
    let change: HashMap<NodeId, ChangeKind> = t.layer_changes(o.layer).iter().map(|c| (c.node, c.kind)).collect();
    let counted: HashSet<NodeId> = t.files().into_iter().collect();
    let mut sum = vec![0u64; t.node_count()];
    for &id in nodes.iter().rev() {
        let m = t.meta(id);
        let own = if t.is_present(id) {
            if counted.contains(&id) {
                m.size
            } else {
                0
            }
        } else if m.kind == NodeKind::File {
            m.size
        } else {
            0
        };
        sum[id.index()] += own;
        if let Some(p) = t.parent(id) {
            // A removed directory holds what was removed with it; a present one what is present.
            let same = match (t.is_present(p), t.is_present(id)) {
                (true, true) => true,
                (false, false) => t.removed_in(p) == t.removed_in(id),
                _ => false,
            };
            if same {
                sum[p.index()] += sum[id.index()];
            }
        }
    }
    let mut size = vec![0u64; t.node_count()];
    let mut matched = vec![false; t.node_count()];
    for &id in &nodes {
        let m = t.meta(id);
        size[id.index()] = match m.kind {
            NodeKind::Dir => sum[id.index()],
            NodeKind::File | NodeKind::HardLink => m.size,
            _ => 0,
        };
        matched[id.index()] = (!o.changes_only || change.contains_key(&id))
            && o.min_size.is_none_or(|min| size[id.index()] >= min)
            && o.glob.is_none_or(|g| g.matches(&t.path(id)));
    }
    Prepared { nodes, size, change, matched }
}

/// The matching paths, one row each, in walk order (or largest first), at depth 0.
pub fn flat(t: &FsTree, o: &ViewOptions) -> Vec<ViewRow> {
    let p = prepare(t, o);
    let mut rows: Vec<ViewRow> = p
        .nodes
        .iter()
        .filter(|id| p.matched[id.index()])
        .map(|&id| ViewRow {
            node: id,
            depth: 0,
            size: p.size[id.index()],
            change: p.change.get(&id).copied(),
            matched: true,
            last: Vec::new(),
        })
        .collect();
    if o.sort == SortBy::Size {
        rows.sort_by_key(|r| std::cmp::Reverse(r.size)); // stable: name order within a size
    }
    rows
}

/// The matching paths and their ancestors as a tree, parents before children, siblings
/// sorted as asked.
pub fn tree(t: &FsTree, o: &ViewOptions) -> Vec<ViewRow> {
    let p = prepare(t, o);
    let mut shown = vec![false; t.node_count()];
    for &id in &p.nodes {
        if !p.matched[id.index()] {
            continue;
        }
        let mut cur = Some(id);
        while let Some(c) = cur.filter(|c| *c != NodeId::ROOT && !shown[c.index()]) {
            shown[c.index()] = true;
            cur = t.parent(c);
        }
    }
    let kids = |id: NodeId| -> Vec<NodeId> {
        let mut v: Vec<NodeId> = t.sorted_children(id).into_iter().filter(|c| shown[c.index()]).collect();
        if o.sort == SortBy::Size {
            v.sort_by_key(|c| std::cmp::Reverse(p.size[c.index()]));
        }
        v
    };
    let mut rows = Vec::new();
    // Depth-first with an explicit stack of (node, ancestors' last flags).
    let top = kids(NodeId::ROOT);
    let n = top.len();
    let mut stack: Vec<(NodeId, Vec<bool>)> =
        top.into_iter().enumerate().rev().map(|(i, c)| (c, vec![i + 1 == n])).collect();
    while let Some((id, last)) = stack.pop() {
        let children = kids(id);
        let n = children.len();
        for (i, c) in children.into_iter().enumerate().rev() {
            let mut l = last.clone();
            l.push(i + 1 == n);
            stack.push((c, l));
        }
        rows.push(ViewRow {
            node: id,
            depth: last.len() - 1,
            size: p.size[id.index()],
            change: p.change.get(&id).copied(),
            matched: p.matched[id.index()],
            last,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::scan::scan_layer;
    use crate::fs::tests::{file, raw_tar, spec, tar_of};
    use crate::layer::SpecKind;
    use tar::EntryType::Regular;

    fn sample() -> FsTree {
        let mut t = FsTree::new();
        let l0 = tar_of(vec![
            file("bin/tool", &[1; 300], 0o755),
            spec("bin/tool2", SpecKind::HardLink("bin/tool".into())),
            spec("bin/sh", SpecKind::Symlink("tool".into())),
            file("etc/a", &[2; 100], 0o644),
            file("etc/b", &[3; 20], 0o644),
            file("d/x", &[4; 50], 0o644),
        ]);
        // No entry for etc/ itself: /etc is unchanged by layer 1.
        let l1 = raw_tar(&[("etc/a", Regular, &[5; 120]), (".wh.d", Regular, b""), ("z", Regular, b"z")]);
        t.apply_layer(0, scan_layer(&l0[..], None).unwrap());
        t.apply_layer(1, scan_layer(&l1[..], None).unwrap());
        t
    }

    fn render(t: &FsTree, rows: &[ViewRow]) -> Vec<String> {
        rows.iter()
            .map(|r| {
                let mark = match r.change {
                    Some(ChangeKind::Added) => 'A',
                    Some(ChangeKind::Modified) => 'M',
                    Some(ChangeKind::Removed) => 'R',
                    None => ' ',
                };
                format!("{mark} {}{} {}", r.branch(), t.name(r.node), r.size)
            })
            .collect()
    }

    #[test]
    fn tree_with_guides_sizes_and_markers() {
        let t = sample();
        let o = ViewOptions { layer: 1, ..Default::default() };
        assert_eq!(
            render(&t, &tree(&t, &o)),
            [
                "  ├── bin 300",
                "  │   ├── sh 0",
                "  │   ├── tool 300",
                "  │   └── tool2 300",
                "  ├── etc 140",
                "M │   ├── a 120",
                "  │   └── b 20",
                "A └── z 1",
            ]
        );
        let o = ViewOptions { layer: 1, sort: SortBy::Size, ..Default::default() };
        let top: Vec<String> = tree(&t, &o).iter().filter(|r| r.depth == 0).map(|r| t.path(r.node)).collect();
        assert_eq!(top, ["/bin", "/etc", "/z"]);
    }

    #[test]
    fn filters_keep_ancestors_in_the_tree_only() {
        let t = sample();
        let g = Glob::new("/etc/*");
        let o = ViewOptions { layer: 1, glob: Some(&g), min_size: Some(100), ..Default::default() };
        assert_eq!(render(&t, &tree(&t, &o)), ["  └── etc 140", "M     └── a 120"]);
        assert!(!tree(&t, &o)[0].matched, "/etc is shown as the parent of a match");
        let flat_rows = flat(&t, &o);
        assert_eq!(flat_rows.iter().map(|r| t.path(r.node)).collect::<Vec<_>>(), ["/etc/a"]);
        // Changes of layer 1, removed paths included with what they held.
        let o = ViewOptions { layer: 1, changes_only: true, ..Default::default() };
        assert_eq!(render(&t, &tree(&t, &o)), ["R ├── d 50", "  ├── etc 140", "M │   └── a 120", "A └── z 1"]);
        let o = ViewOptions { layer: 1, changes_only: true, sort: SortBy::Size, ..Default::default() };
        let sizes: Vec<u64> = flat(&t, &o).iter().map(|r| r.size).collect();
        assert_eq!(sizes, [120, 50, 1]);
    }
}
