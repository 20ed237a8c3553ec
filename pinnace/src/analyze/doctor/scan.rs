//! Reading the image: one parallel streaming pass over every layer into an [`FsTree`]
//! with the capture plan applied ([`read_image`]), and targeted passes that fetch files
//! the plan did not keep ([`Snapshot::fetch`]), over only the layers that hold them.
//!
//! Layers are scanned like `inspect` scans them: at most `threads` at a time, each in
//! inspect's two stages on two threads (read, verify and decompress; verify the diff_id,
//! walk the tar, hash every file and capture), merged bottom-up in order as soon as the
//! next one is ready. While merging, doctor records what the
//! final filesystem hides: files a later layer deletes or overwrites (their bytes are
//! still pulled), and the secrets seen in each layer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use super::capture::{process, Captured, Plan, Processed};
use super::{DoctorError, DoctorOptions, Stats};
use crate::analyze::AnalyzeError;
use crate::fs::scan::{scan_layer_with, LayerScan};
use crate::fs::{ChangeKind, FsTree, NodeId, NodeKind};
use crate::layer::EntryKind;
use crate::transport::{Image, Source};

/// A secret seen in a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHit {
    /// The layer that stores it.
    pub layer: usize,
    /// Normalised path (no leading `/`).
    pub path: String,
    /// What it is, e.g. `SSH private key`.
    pub kind: &'static str,
}

/// A file stored in one layer and hidden by a later one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadowed {
    /// Absolute path.
    pub path: String,
    /// The layer that stores the hidden copy.
    pub layer: usize,
    /// The layer that deleted or replaced it.
    pub by: usize,
    /// Its size.
    pub size: u64,
    /// Deleted (whiteout) rather than replaced.
    pub deleted: bool,
}

/// The image as doctor sees it: the tree, what was captured, what is hidden.
#[derive(Debug)]
pub struct Snapshot {
    /// The final filesystem, with history.
    pub tree: FsTree,
    /// Captured files by normalised path, with the layer the capture came from.
    pub files: HashMap<String, (usize, Captured)>,
    /// Secrets, in layer order.
    pub secrets: Vec<SecretHit>,
    /// Hidden files at least `deleted_threshold` bytes large, largest first.
    pub shadowed: Vec<Shadowed>,
    /// Bytes of every hidden file, whatever its size.
    pub shadowed_bytes: u64,
    layers: usize,
    layers_reread: usize,
}

impl Snapshot {
    /// An empty snapshot of an image with `layers` layers, before any is read.
    pub fn new(layers: usize) -> Snapshot {
        Snapshot {
            tree: FsTree::new(),
            files: HashMap::new(),
            secrets: Vec::new(),
            shadowed: Vec::new(),
            shadowed_bytes: 0,
            layers,
            layers_reread: 0,
        }
    }

    /// The layer whose entry holds the content of present file `id` (for a hard link:
    /// its target's); `None` for anything but a present file or hard link.
    pub fn content_layer(&self, id: NodeId) -> Option<usize> {
        let (holder, _) = self.content_holder(id)?;
        Some(self.tree.modified_in(holder).unwrap_or(self.tree.added_in(holder)))
    }

    /// The node whose content `id` has, with its normalised path.
    fn content_holder(&self, id: NodeId) -> Option<(NodeId, String)> {
        let t = &self.tree;
        if !t.is_present(id) {
            return None;
        }
        match t.meta(id).kind {
            NodeKind::File => Some((id, t.path(id)[1..].to_string())),
            NodeKind::HardLink => {
                let target = t.meta(id).link.as_deref()?;
                let tid = t.lookup(target).filter(|&n| t.meta(n).kind == NodeKind::File)?;
                Some((tid, target.to_string()))
            }
            _ => None,
        }
    }

    /// What was captured of present file `id`, if the capture is of its current content
    /// and complete enough to read (an ELF file cut at its cap is not).
    pub fn captured(&self, id: NodeId) -> Option<&Captured> {
        let (_, path) = self.content_holder(id)?;
        let layer = self.content_layer(id)?;
        match self.files.get(&path) {
            Some((l, Captured::Elf(e))) if *l == layer && e.truncated => None,
            Some((l, c)) if *l == layer => Some(c),
            _ => None,
        }
    }

    /// The captured content of the file at `path` (symbolic links followed inside the
    /// image), when the plan kept it whole.
    pub fn read_whole(&self, path: &str) -> Option<&[u8]> {
        let id = self.tree.resolve(path, true).ok()?;
        match self.captured(id)? {
            Captured::Bytes { data, complete: true } => Some(data),
            _ => None,
        }
    }

    /// The normalised path whose capture would give `id`'s content.
    pub fn content_path(&self, id: NodeId) -> Option<String> {
        self.content_holder(id).map(|(_, p)| p)
    }

    /// Streams only the layers holding `paths` (absolute or normalised, present files)
    /// and captures those files whole.
    pub fn fetch(
        &mut self,
        src: &dyn Source,
        image: &Image,
        paths: &BTreeSet<String>,
        opts: &DoctorOptions,
    ) -> Result<(), DoctorError> {
        let mut wanted: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for p in paths {
            let Some(id) = self.tree.lookup(p) else { continue };
            let (Some(layer), Some(path)) = (self.content_layer(id), self.content_path(id)) else { continue };
            wanted.entry(layer).or_default().push(path);
        }
        let layers: Vec<usize> = wanted.keys().copied().collect();
        let all: Vec<&str> = wanted.values().flatten().map(String::as_str).collect();
        let plan = Plan::exact(all);
        let results = scan_layers(src, image, &layers, &plan, opts.threads, &mut |_, _| Ok(()))?;
        self.layers_reread += layers.len();
        for (layer, collected) in results {
            for (path, p) in collected {
                let current = self.tree.lookup(&path).and_then(|n| self.content_layer(n));
                if let (Some(c), Some(layer_now)) = (p.captured, current) {
                    if layer_now == layer {
                        self.files.insert(path, (layer, c));
                    }
                }
            }
        }
        Ok(())
    }

    /// Figures for the report.
    pub fn stats(&self, programs: usize) -> Stats {
        let elf_files = self.files.values().filter(|(_, c)| matches!(c, Captured::Elf(_))).count();
        let kept_bytes = self
            .files
            .values()
            .map(|(_, c)| match c {
                Captured::Elf(e) => e.sparse.kept_bytes(),
                Captured::Bytes { data, .. } => data.len() as u64,
            })
            .sum();
        Stats { layers: self.layers, layers_reread: self.layers_reread, elf_files, kept_bytes, programs }
    }
}

type Collected = Vec<(String, Processed)>;

/// Streams every layer of `image` once with `plan` (see the module documentation).
pub fn read_image(src: &dyn Source, image: &Image, plan: &Plan, opts: &DoctorOptions) -> Result<Snapshot, DoctorError> {
    let n = image.layers.len();
    let mut snap = Snapshot::new(n);
    let threshold = opts.deleted_threshold;
    let all: Vec<usize> = (0..n).collect();
    let mut merge = |i: usize, scan: LayerScan| -> Result<(), DoctorError> {
        record_overwrites(&mut snap, i, &scan, threshold);
        snap.tree.apply_layer(i, scan);
        record_deletions(&mut snap, i, threshold);
        Ok(())
    };
    let results = scan_layers(src, image, &all, plan, opts.threads, &mut merge)?;
    for (i, collected) in results {
        for (path, p) in collected {
            if let Some(kind) = p.secret {
                snap.secrets.push(SecretHit { layer: i, path: path.clone(), kind });
            }
            if let Some(c) = p.captured {
                snap.files.insert(path, (i, c));
            }
        }
    }
    snap.shadowed.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    Ok(snap)
}

/// Files of layer `i`'s entries that replace a present file of a lower layer.
fn record_overwrites(snap: &mut Snapshot, i: usize, scan: &LayerScan, threshold: u64) {
    for e in &scan.entries {
        if matches!(e.kind, EntryKind::Whiteout | EntryKind::OpaqueWhiteout | EntryKind::Dir) {
            continue;
        }
        let Some(id) = snap.tree.lookup(&e.path) else { continue };
        if snap.tree.meta(id).kind != NodeKind::File {
            continue;
        }
        let (size, layer) = (snap.tree.meta(id).size, snap.content_layer(id).unwrap_or(0));
        if layer == i {
            continue;
        }
        snap.shadowed_bytes += size;
        if size >= threshold {
            snap.shadowed.push(Shadowed { path: format!("/{}", e.path), layer, by: i, size, deleted: false });
        }
    }
}

/// Files layer `i` removed (whiteouts, opaque directories), with their subtrees.
fn record_deletions(snap: &mut Snapshot, i: usize, threshold: u64) {
    let tree = &snap.tree;
    let mut found = Vec::new();
    for c in tree.layer_changes(i).iter().filter(|c| c.kind == ChangeKind::Removed) {
        let nodes = std::iter::once(c.node).chain(tree.walk_from(c.node, true));
        for id in nodes {
            let m = tree.meta(id);
            if m.kind != NodeKind::File || tree.removed_in(id) != Some(i) {
                continue;
            }
            let layer = tree.modified_in(id).unwrap_or(tree.added_in(id));
            found.push(Shadowed { path: tree.path(id), layer, by: i, size: m.size, deleted: true });
        }
    }
    for s in found {
        snap.shadowed_bytes += s.size;
        if s.size >= threshold {
            snap.shadowed.push(s);
        }
    }
}

/// Scans `layers` in parallel with `plan`, calling `merge` for each in order, and returns
/// what each captured.
fn scan_layers(
    src: &dyn Source,
    image: &Image,
    layers: &[usize],
    plan: &Plan,
    threads: usize,
    merge: &mut dyn FnMut(usize, LayerScan) -> Result<(), DoctorError>,
) -> Result<Vec<(usize, Collected)>, DoctorError> {
    let mut out = Vec::with_capacity(layers.len());
    crate::analyze::ordered_parallel(
        layers.len(),
        threads,
        &|k| scan_one(src, image, layers[k], plan).map_err(DoctorError::from),
        &mut |k, (scan, collected)| {
            merge(layers[k], scan)?;
            out.push((layers[k], collected));
            Ok(())
        },
    )?;
    Ok(out)
}

/// Streams layer `i` once, capturing and reducing what `plan` asks for. The layer is
/// read in inspect's two stages ([`crate::analyze::inspect::read_layer`]): one thread
/// reads, verifies the digest and decompresses; this one verifies the diff_id, walks the
/// tar, hashes and captures.
fn scan_one(src: &dyn Source, image: &Image, i: usize, plan: &Plan) -> Result<(LayerScan, Collected), AnalyzeError> {
    let collected: Mutex<Collected> = Mutex::new(Vec::new());
    let want = |p: &str| plan.want(p);
    let keep = |p: &str, bytes: Vec<u8>| -> Option<Box<[u8]>> {
        let r = process(p, bytes, plan.want(p), plan.is_exact(p));
        if r.captured.is_some() || r.secret.is_some() {
            collected.lock().unwrap_or_else(|e| e.into_inner()).push((p.to_string(), r));
        }
        None
    };
    let scan =
        crate::analyze::inspect::read_layer(src, image, i, |tar| scan_layer_with(tar, Some(&want), Some(&keep)))?;
    Ok((scan, collected.into_inner().unwrap_or_else(|e| e.into_inner())))
}

/// Building snapshots from hand-written layers, for the checks' unit tests.
#[cfg(test)]
pub(crate) mod testkit {
    use super::*;
    use crate::analyze::doctor::command::Launch;

    /// One tar entry.
    pub enum E {
        File(&'static str, Vec<u8>, u32),
        Dir(&'static str, u32),
        Link(&'static str, &'static str),
        Whiteout(&'static str),
    }

    impl E {
        pub fn file(p: &'static str, data: &[u8]) -> E {
            E::File(p, data.to_vec(), 0o644)
        }
        pub fn exe(p: &'static str, data: &[u8]) -> E {
            E::File(p, data.to_vec(), 0o755)
        }
        pub fn link(p: &'static str, target: &'static str) -> E {
            E::Link(p, target)
        }
    }

    /// The tar stream of one layer.
    pub fn tar(entries: &[E]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_ustar();
            h.set_mtime(0);
            match e {
                E::File(p, data, mode) => {
                    h.set_mode(*mode);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, p, &data[..]).unwrap();
                }
                E::Dir(p, mode) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    h.set_size(0);
                    b.append_data(&mut h, p, &[][..]).unwrap();
                }
                E::Link(p, t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, p, t).unwrap();
                }
                E::Whiteout(p) => {
                    let (dir, name) = p.rsplit_once('/').map_or(("", *p), |(d, n)| (d, n));
                    let wh = if dir.is_empty() { format!(".wh.{name}") } else { format!("{dir}/.wh.{name}") };
                    h.set_mode(0o644);
                    h.set_size(0);
                    b.append_data(&mut h, wh, &[][..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    /// A snapshot of `layers` (bottom first), read with the main plan of `launch`.
    pub fn snapshot_for(launch: &Launch, layers: &[Vec<E>]) -> Snapshot {
        let plan = Plan::new(launch);
        let mut snap = Snapshot::new(layers.len());
        for (i, entries) in layers.iter().enumerate() {
            let collected: Mutex<Collected> = Mutex::new(Vec::new());
            let keep = |p: &str, bytes: Vec<u8>| {
                collected.lock().unwrap().push((p.to_string(), process(p, bytes, plan.want(p), plan.is_exact(p))));
                None
            };
            let want = |p: &str| plan.want(p);
            let scan = scan_layer_with(&tar(entries)[..], Some(&want), Some(&keep)).unwrap();
            record_overwrites(&mut snap, i, &scan, 1 << 20);
            snap.tree.apply_layer(i, scan);
            record_deletions(&mut snap, i, 1 << 20);
            for (path, p) in collected.into_inner().unwrap() {
                if let Some(kind) = p.secret {
                    snap.secrets.push(SecretHit { layer: i, path: path.clone(), kind });
                }
                if let Some(c) = p.captured {
                    snap.files.insert(path, (i, c));
                }
            }
        }
        snap
    }

    /// A snapshot of `layers` with no entrypoint.
    pub fn snapshot(layers: &[Vec<E>]) -> Snapshot {
        snapshot_for(&Launch::default(), layers)
    }
}
