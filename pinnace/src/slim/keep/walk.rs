//! A symlink-aware walk through an [`FsTree`] that records every node on the way: the
//! same resolution as [`FsTree::resolve`] (a chroot at the image root: absolute targets
//! restart there, `..` stops there, at most 40 links), but instead of only the end it
//! yields each directory passed through and each link followed (a link's target is
//! walked in turn, so chains of chains are recorded), and, when a component is missing,
//! the deepest directory reached.

use crate::fs::{FsTree, NodeId, NodeKind};

/// The most symbolic links one walk follows (Linux's `MAXSYMLINKS`).
const MAX_LINKS: u32 = 40;

/// What a node was to a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A directory passed through (not the end).
    Dir,
    /// A symbolic link followed.
    Link,
}

/// The nodes one path touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Walk {
    /// Directories passed through and links followed, in order (the root excluded).
    pub steps: Vec<(NodeId, Step)>,
    /// The node the path names, when it resolves.
    pub found: Option<NodeId>,
    /// The deepest directory reached: the end's parent when it resolves, else the
    /// directory in which the walk stopped (a missing name, a file used as a directory,
    /// too many links).
    pub deepest_dir: NodeId,
}

/// Walks `path` (absolute, or relative to `/`) through `tree`; `follow_last` says whether
/// a symbolic link in the last component is followed.
pub(crate) fn walk(tree: &FsTree, path: &str, follow_last: bool) -> Walk {
    let mut todo: Vec<String> = components(path);
    let mut steps = Vec::new();
    let mut cur = NodeId::ROOT;
    let mut budget = MAX_LINKS;
    let stop = |steps, cur| Walk { steps, found: None, deepest_dir: cur };
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                cur = tree.parent(cur).unwrap_or(NodeId::ROOT);
                continue;
            }
            _ => {}
        }
        let name = if cur == NodeId::ROOT { format!("/{c}") } else { format!("{}/{c}", tree.path(cur)) };
        let Some(next) = tree.lookup(&name) else { return stop(steps, cur) };
        let m = tree.meta(next);
        let last = todo.is_empty();
        if m.kind == NodeKind::Symlink && (!last || follow_last) {
            let Some(b) = budget.checked_sub(1) else { return stop(steps, cur) };
            budget = b;
            steps.push((next, Step::Link));
            let target = m.link.as_deref().unwrap_or("");
            if target.starts_with('/') {
                cur = NodeId::ROOT;
            }
            todo.extend(components(target));
            continue;
        }
        if last {
            return Walk { steps, found: Some(next), deepest_dir: cur };
        }
        if m.kind != NodeKind::Dir {
            return stop(steps, cur);
        }
        steps.push((next, Step::Dir));
        cur = next;
    }
    // Every component consumed without a last name: the path names `cur` itself (`/`,
    // `a/..`, a link to a directory followed last).
    if let Some((id, Step::Dir)) = steps.last().copied() {
        if id == cur {
            steps.pop();
        }
    }
    let parent = tree.parent(cur).unwrap_or(NodeId::ROOT);
    Walk { steps, found: Some(cur), deepest_dir: parent }
}

/// The non-empty components of `path`, last first (a stack).
fn components(path: &str) -> Vec<String> {
    path.split('/').rev().filter(|c| !c.is_empty()).map(str::to_string).collect()
}
