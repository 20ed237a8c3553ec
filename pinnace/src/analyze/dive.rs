//! dive 0.13.1's efficiency and wasted-bytes figures, reproduced exactly.
//!
//! dive (`filetree/efficiency.go`, `image/analysis.go`) builds one tree per layer from the
//! tar headers, then visits each layer's leaves (children first, siblings in byte
//! order), keyed by path. Each visit adds the leaf's tar size to that path's cumulative
//! size; a whiteout adds 0, unless the lower tree holds a directory there (from its own
//! tar entry), in which case it adds the size of that directory's whole subtree. The
//! "lower tree" is `StackTreeRange(trees, 0, i-1)`: a copy of layer 0 with layers
//! `0..i-1` stacked on it (so for layer 0 it is layer 0 itself). dive re-stacks it for
//! every whiteout; here it is kept and stacked once per layer (same result, linear time).
//!
//! Quirks kept on purpose, because these are the numbers users compare:
//! - A whiteout of a path the lower tree lacks aborts the rest of that layer's visit,
//!   and the path's entry, created just before, keeps its initial minimum of -1.
//! - Stacking keeps the children of a node replaced by a non-directory, ignores opaque
//!   whiteouts, and gives a directory that an upper layer only implies (no own tar
//!   entry) an empty file info (so a later whiteout of it counts 0).
//! - Directories without children in a layer are leaves (of size 0).
//! - User wasted percent divides by the bytes of every layer but the first: NaN or
//!   infinity for a one-layer image.
//!
//! One difference is not reproducible: dive sorts the inefficient paths with Go's
//! unstable sort, so paths of equal cumulative size may come out in another order.
//!
//! The entries fed to this model come from pinnace's layer reader, which skips a few
//! kinds of entries dive would count (`..` paths, unsupported entry types) and gives
//! non-file entries size 0; `dive_entry` in [`super::inspect`] lists each case.

use std::collections::HashMap;

use serde::Serialize;

/// dive's per-file record in `--json` exports (`filetree.FileInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiveFileInfo {
    /// The cleaned tar name (empty for directories only implied by a path).
    pub path: String,
    /// Tar type flag, as a number (`48` file, `53` directory, ...).
    #[serde(rename = "typeFlag")]
    pub type_flag: u8,
    /// Link target.
    #[serde(rename = "linkName")]
    pub link_name: String,
    /// Tar header size.
    pub size: i64,
    /// Go's `os.FileMode` bits (permissions plus type bits, e.g. `1<<31` for directories).
    #[serde(rename = "fileMode")]
    pub file_mode: u32,
    /// Owner.
    pub uid: i64,
    /// Group.
    pub gid: i64,
    /// Whether the tar entry is a directory.
    #[serde(rename = "isDir")]
    pub is_dir: bool,
}

/// One tar entry as dive sees it.
#[derive(Debug, Clone)]
pub struct DiveEntry {
    /// The cleaned tar name: whiteouts keep their `.wh.` name (`dir/.wh.file`), opaque
    /// whiteouts are `dir/.wh..wh..opq`.
    pub path: String,
    /// Header size.
    pub size: i64,
    /// Whether it is a directory entry.
    pub is_dir: bool,
    /// The full record, kept only when exporting dive's JSON.
    pub info: Option<DiveFileInfo>,
}

/// A path seen in two or more layers (dive's `EfficiencyData` with `len(Nodes) >= 2`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inefficiency {
    /// Absolute path.
    pub path: String,
    /// Number of layers it was seen in.
    pub count: u32,
    /// Sum of its sizes in every layer (all copies).
    pub cumulative_size: i64,
}

/// dive's image-level figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiveFigures {
    /// Sum over paths of the smallest size seen, over the sum of all sizes seen.
    pub efficiency: f64,
    /// Sum of the cumulative sizes of every path seen two or more times.
    pub wasted_bytes: u64,
    /// Sum of the layer sizes.
    pub size_bytes: u64,
    /// Sum of the layer sizes except the first.
    pub user_size_bytes: u64,
    /// `wasted_bytes / user_size_bytes` (NaN or infinity when that is 0, as in dive).
    pub user_wasted_percent: f64,
    /// Inefficient paths, largest cumulative size first.
    pub inefficiencies: Vec<Inefficiency>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Info {
    size: i64,
    is_dir: bool,
}

#[derive(Debug, Clone)]
struct DNode {
    parent: u32,
    name: u32,
    children: Vec<u32>,
    info: Info,
    full: Option<usize>,
}

/// A dive file tree: nodes by (parent, name), children kept for ordered visits.
#[derive(Debug, Clone)]
struct DTree {
    nodes: Vec<DNode>,
    lookup: HashMap<(u32, u32), u32>,
}

impl DTree {
    fn new() -> DTree {
        let root = DNode { parent: u32::MAX, name: 0, children: Vec::new(), info: Info::default(), full: None };
        DTree { nodes: vec![root], lookup: HashMap::new() }
    }

    /// `FileTree.AddPath`: creates missing intermediate nodes with an empty file info,
    /// stops silently at a new `.wh..wh..` name, sets `info` on the last node.
    fn add_path(&mut self, names: &mut Names, path: &str, info: Info, full: Option<usize>) {
        let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let mut cur = 0u32;
        for (i, part) in parts.iter().enumerate() {
            let name = names.id(part);
            cur = match self.lookup.get(&(cur, name)) {
                Some(&n) => n,
                None => {
                    if part.starts_with(".wh..wh..") {
                        return;
                    }
                    let id = self.nodes.len() as u32;
                    self.nodes.push(DNode {
                        parent: cur,
                        name,
                        children: Vec::new(),
                        info: Info::default(),
                        full: None,
                    });
                    self.nodes[cur as usize].children.push(id);
                    self.lookup.insert((cur, name), id);
                    id
                }
            };
            if i == parts.len() - 1 {
                self.nodes[cur as usize].info = info;
                self.nodes[cur as usize].full = full;
            }
        }
    }

    fn get(&self, names: &Names, path: &str) -> Option<u32> {
        let mut cur = 0u32;
        for part in path.split('/').filter(|c| !c.is_empty()) {
            cur = *self.lookup.get(&(cur, names.get(part)?))?;
        }
        Some(cur)
    }

    fn remove(&mut self, id: u32) {
        let parent = self.nodes[id as usize].parent;
        self.nodes[parent as usize].children.retain(|&c| c != id);
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            let node = &mut self.nodes[n as usize];
            self.lookup.remove(&(node.parent, node.name));
            stack.append(&mut node.children);
        }
    }

    /// Non-root nodes, children first, siblings in byte order of their names.
    fn child_first(&self, names: &Names, from: u32) -> Vec<u32> {
        fn go(t: &DTree, names: &Names, n: u32, out: &mut Vec<u32>) {
            let mut kids = t.nodes[n as usize].children.clone();
            kids.sort_by(|a, b| names.name(t.nodes[*a as usize].name).cmp(names.name(t.nodes[*b as usize].name)));
            for k in kids {
                go(t, names, k, out);
            }
            out.push(n);
        }
        let mut out = Vec::new();
        go(self, names, from, &mut out);
        if from == 0 {
            out.pop();
        }
        out
    }

    /// `FileNode.Path()`: the leaf's own `.wh.` prefix is dropped.
    fn path(&self, names: &Names, id: u32) -> String {
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != 0 {
            let n = names.name(self.nodes[cur as usize].name);
            parts.push(if cur == id { n.strip_prefix(".wh.").unwrap_or(n) } else { n });
            cur = self.nodes[cur as usize].parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/")).replace("//", "/")
    }

    fn is_whiteout(&self, names: &Names, id: u32) -> bool {
        names.name(self.nodes[id as usize].name).starts_with(".wh.")
    }
}

#[derive(Debug, Default)]
struct Names {
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, u32>,
}

impl Names {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.into());
        self.ids.insert(s.into(), i);
        i
    }
    fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }
    fn name(&self, i: u32) -> &str {
        &self.names[i as usize]
    }
}

#[derive(Debug)]
struct PathData {
    cumulative: i64,
    min: i64,
    count: u32,
}

/// Feeds layers bottom-up and yields dive's figures (see the module documentation).
#[derive(Debug, Default)]
pub struct DiveModel {
    names: Names,
    stacked: Option<DTree>,
    paths: HashMap<String, PathData>,
    order: Vec<String>,
    layer_sizes: Vec<u64>,
    keep_files: bool,
    file_lists: Vec<Vec<DiveFileInfo>>,
}

impl DiveModel {
    /// An empty model; `keep_files` keeps each layer's file list for dive's JSON export
    /// (entries must then carry their [`DiveEntry::info`]).
    pub fn new(keep_files: bool) -> DiveModel {
        DiveModel { names: Names { names: vec!["".into()], ids: HashMap::new() }, keep_files, ..Default::default() }
    }

    /// Adds the next layer: its entries in tar order and its size (sum of header sizes).
    pub fn push_layer(&mut self, entries: Vec<DiveEntry>, tar_size: u64) {
        let mut tree = DTree::new();
        let mut infos = Vec::new();
        for e in entries {
            let full = e.info.map(|i| {
                infos.push(i);
                infos.len() - 1
            });
            tree.add_path(&mut self.names, &e.path, Info { size: e.size, is_dir: e.is_dir }, full);
        }
        let stacked = self.stacked.get_or_insert_with(|| tree.clone());
        // Efficiency visit of this layer's leaves against the lower (stacked) tree.
        for id in tree.child_first(&self.names, 0) {
            if !tree.nodes[id as usize].children.is_empty() {
                continue;
            }
            let path = tree.path(&self.names, id);
            let data = self.paths.entry(path.clone()).or_insert(PathData { cumulative: 0, min: -1, count: 0 });
            let size = if tree.is_whiteout(&self.names, id) {
                let Some(lower) = stacked.get(&self.names, &path) else {
                    break; // dive: "path does not exist" aborts the rest of this layer
                };
                if stacked.nodes[lower as usize].info.is_dir {
                    stacked.child_first(&self.names, lower).iter().map(|&n| stacked.nodes[n as usize].info.size).sum()
                } else {
                    0
                }
            } else {
                tree.nodes[id as usize].info.size
            };
            data.cumulative += size;
            if data.min < 0 || size < data.min {
                data.min = size;
            }
            data.count += 1;
            if data.count == 2 {
                self.order.push(path);
            }
        }
        // Stack this layer onto the lower tree (dive's FileTree.Stack).
        for id in tree.child_first(&self.names, 0) {
            let path = tree.path(&self.names, id);
            if tree.is_whiteout(&self.names, id) {
                if let Some(n) = stacked.get(&self.names, &path).filter(|&n| n != 0) {
                    stacked.remove(n);
                }
            } else {
                stacked.add_path(&mut self.names, &path, tree.nodes[id as usize].info, None);
            }
        }
        if self.keep_files {
            let list = tree
                .child_first(&self.names, 0)
                .into_iter()
                .map(|id| tree.nodes[id as usize].full.map(|i| infos[i].clone()).unwrap_or_default())
                .collect();
            self.file_lists.push(list);
        }
        self.layer_sizes.push(tar_size);
    }

    /// Each layer's file list in dive's export order (only for entries pushed with `info`).
    pub fn file_lists(&self) -> &[Vec<DiveFileInfo>] {
        &self.file_lists
    }

    /// The figures over every layer pushed so far.
    pub fn figures(&self) -> DiveFigures {
        let (mut min_sum, mut all_sum) = (0i64, 0i64);
        for d in self.paths.values() {
            min_sum += d.min;
            all_sum += d.cumulative;
        }
        let efficiency = if all_sum == 0 { 1.0 } else { min_sum as f64 / all_sum as f64 };
        let mut inefficiencies: Vec<Inefficiency> = self
            .order
            .iter()
            .map(|p| {
                let d = &self.paths[p];
                Inefficiency { path: p.clone(), count: d.count, cumulative_size: d.cumulative }
            })
            .collect();
        inefficiencies.sort_by_key(|i| std::cmp::Reverse(i.cumulative_size));
        let wasted_bytes: u64 = inefficiencies.iter().map(|i| i.cumulative_size as u64).sum();
        let size_bytes: u64 = self.layer_sizes.iter().sum();
        let user_size_bytes: u64 = self.layer_sizes.iter().skip(1).sum();
        DiveFigures {
            efficiency,
            wasted_bytes,
            size_bytes,
            user_size_bytes,
            user_wasted_percent: wasted_bytes as f64 / user_size_bytes as f64,
            inefficiencies,
        }
    }
}

/// Go's `os.FileMode` for a tar entry (`archive/tar`'s `headerFileInfo.Mode`).
pub fn go_file_mode(mode: u32, type_flag: u8) -> u32 {
    let mut m = mode & 0o777;
    if mode & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if mode & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if mode & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m | match type_flag {
        b'2' => 1 << 27,
        b'3' => (1 << 26) | (1 << 21),
        b'4' => 1 << 26,
        b'5' => 1 << 31,
        b'6' => 1 << 25,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
