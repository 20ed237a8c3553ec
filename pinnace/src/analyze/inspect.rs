//! `inspect`: what is in an image and what is wasted, with dive's figures alongside.
//!
//! Every layer is streamed once. Layers are scanned in parallel (at most
//! `available_parallelism` at a time), each in two stages on two threads (see `pipe.rs`): one
//! reads the blob, verifies its digest and decompresses; the other verifies the diff_id,
//! walks the tar and hashes every file with sha256. The scans are merged bottom-up, in
//! order, into one [`FsTree`] and one [`DiveModel`] as soon as each next layer is ready,
//! so memory is bounded by the tree, not by layer sizes. Nothing is written to disk.
//!
//! Figures (JSON field names in brackets):
//! - dive's: efficiency, wasted bytes, user wasted percent, layer size as the sum of tar
//!   header sizes ([`super::dive`] documents the definitions and quirks).
//! - pinnace's own reclaimable bytes ([`Inspection::reclaimable_bytes`]): bytes of
//!   regular files stored in the layers that the final filesystem does not show
//!   (overwritten, or deleted by a whiteout): what squashing or rebuilding the image would
//!   save. It is the sum of every regular-file entry of every layer minus
//!   [`FsTree::file_bytes`], which counts each content once by inode: the content of a
//!   path deleted or rewritten is not reclaimable while a hard link still shows it.
//!   Unlike dive's wasted bytes it never counts the copy that is kept.
//! - duplicates: stored contents with the same sha256 under different paths (a file and
//!   its hard links are one content and do not count).

mod pipe;

use std::collections::HashMap;
use std::io::Read;

use serde::Serialize;

use super::dive::{go_file_mode, DiveEntry, DiveFigures, DiveFileInfo, DiveModel};
use super::AnalyzeError;
use crate::blob::{BlobError, VerifyReader};
use crate::fs::scan::{scan_layer, CaptureFn, LayerScan};
use crate::fs::{ChangeKind, FsTree, TreeWarning};
use crate::layer::{open_verified, Compression, EntryKind, LayerError, Warning};
use crate::oci::{Digest, Platform};
use crate::transport::{Image, Source, TransportError};

/// The version of the `--json` schema ([`Inspection`]); bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Options of [`inspect`].
#[derive(Default)]
pub struct InspectOptions<'a> {
    /// How many rows to keep in the top-N lists (wasted paths, duplicates, largest files); 0 means 20.
    pub top: usize,
    /// Keep dive's per-layer file lists (for `--format dive-json`).
    pub dive_file_lists: bool,
    /// Prefix capture hook (see [`crate::fs::scan::CaptureFn`]).
    pub capture: Option<&'a CaptureFn>,
    /// Parallel layer scans; 0 means `available_parallelism`.
    pub threads: usize,
}

/// One layer's row.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    /// Index, bottom first.
    pub index: usize,
    /// Blob digest.
    pub digest: Digest,
    /// Uncompressed digest (from the config, verified).
    pub diff_id: Digest,
    /// Blob size.
    pub compressed_size: u64,
    /// Tar stream size.
    pub uncompressed_size: u64,
    /// Sum of tar header sizes (dive's layer size).
    pub tar_size: u64,
    /// Paths this layer added.
    pub added: usize,
    /// Paths this layer rewrote.
    pub modified: usize,
    /// Paths this layer removed (each removed subtree counts once).
    pub removed: usize,
    /// `created_by` of the matching non-empty history entry.
    pub created_by: Option<String>,
    /// Reader warnings (escaping paths, duplicates, unsupported entries).
    pub warnings: Vec<Warning>,
}

/// A path seen in several layers (dive's inefficient file).
#[derive(Debug, Clone, Serialize)]
pub struct WastedPath {
    /// Absolute path.
    pub path: String,
    /// Layers it appears in.
    pub occurrences: u32,
    /// Bytes over all its copies (dive's cumulative size).
    pub bytes: u64,
}

/// The same content under different paths.
#[derive(Debug, Clone, Serialize)]
pub struct DuplicateGroup {
    /// sha256 of the content.
    pub hash: Digest,
    /// Size of one copy.
    pub size: u64,
    /// Paths, sorted.
    pub paths: Vec<String>,
    /// `(paths - 1) * size`.
    pub wasted: u64,
}

/// A file of the final filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    /// Absolute path.
    pub path: String,
    /// Size.
    pub size: u64,
    /// Layer that last wrote it.
    pub layer: usize,
}

/// The report of [`inspect`] (the `--json` schema, version [`SCHEMA_VERSION`]).
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The image reference.
    pub image: String,
    /// Manifest digest.
    pub manifest_digest: Digest,
    /// Config digest (the image ID).
    pub config_digest: Digest,
    /// Platform from the config.
    pub platform: Platform,
    /// Layer blobs plus config.
    pub compressed_size: u64,
    /// Sum of the layers' tar stream sizes.
    pub uncompressed_size: u64,
    /// Number of layers.
    pub layer_count: usize,
    /// dive's efficiency score (0..1).
    pub efficiency: f64,
    /// dive's wasted bytes.
    pub wasted_bytes: u64,
    /// dive's user wasted percent, as a ratio (`null` when undefined: one layer).
    pub user_wasted_percent: Option<f64>,
    /// dive's image size (sum of tar header sizes).
    pub dive_size_bytes: u64,
    /// Bytes stored in layers that the final filesystem does not show.
    pub reclaimable_bytes: u64,
    /// Files, directories and links in the final filesystem.
    pub final_paths: usize,
    /// Bytes of regular files in the final filesystem.
    pub final_file_bytes: u64,
    /// Per-layer rows.
    pub layers: Vec<LayerRow>,
    /// Paths seen in several layers, most bytes first.
    pub top_wasted: Vec<WastedPath>,
    /// Same content under different paths, most wasted first.
    pub duplicates: Vec<DuplicateGroup>,
    /// Largest files of the final filesystem.
    pub largest_files: Vec<FileRow>,
    /// Tree warnings (whiteouts of missing paths, dangling hard links).
    pub warnings: Vec<TreeWarning>,
    /// The final filesystem.
    #[serde(skip)]
    pub tree: FsTree,
    /// dive's full figures (all inefficient paths).
    #[serde(skip)]
    pub dive: DiveFigures,
    /// dive's per-layer file lists (when asked for).
    #[serde(skip)]
    pub dive_file_lists: Vec<Vec<DiveFileInfo>>,
}

/// Streams every layer of `image` once and builds the report (see the module docs).
pub fn inspect(src: &dyn Source, image: &Image, opts: &InspectOptions) -> Result<Inspection, AnalyzeError> {
    let n = image.layers.len();
    let mut tree = FsTree::new();
    let mut dive = DiveModel::new(opts.dive_file_lists);
    let mut rows: Vec<LayerRow> = Vec::with_capacity(n);
    let mut stored_file_bytes = 0u64;
    let history = created_by(image);
    super::ordered_parallel(n, opts.threads, &|i| scan_one(src, image, i, opts.capture), &mut |i, scan| {
        let keep = opts.dive_file_lists;
        dive.push_layer(scan.entries.iter().filter_map(|e| dive_entry(e, keep)).collect(), scan.tar_size);
        stored_file_bytes += scan.entries.iter().filter(|e| e.kind == EntryKind::File).map(|e| e.size).sum::<u64>();
        let l = &image.layers[i];
        let mut row = LayerRow {
            index: i,
            digest: l.digest,
            diff_id: l.diff_id,
            compressed_size: l.size,
            uncompressed_size: scan.stream_bytes,
            tar_size: scan.tar_size,
            added: 0,
            modified: 0,
            removed: 0,
            created_by: history.get(i).cloned().flatten(),
            warnings: scan.warnings.clone(),
        };
        tree.apply_layer(i, scan);
        for c in tree.layer_changes(i) {
            match c.kind {
                ChangeKind::Added => row.added += 1,
                ChangeKind::Modified => row.modified += 1,
                ChangeKind::Removed => row.removed += 1,
            }
        }
        rows.push(row);
        Ok(())
    })?;
    let top = if opts.top == 0 { 20 } else { opts.top };
    let figures = dive.figures();
    let final_file_bytes = tree.file_bytes();
    Ok(Inspection {
        schema_version: SCHEMA_VERSION,
        image: src.describe(),
        manifest_digest: image.manifest.digest,
        config_digest: image.config.digest,
        platform: image.platform(),
        compressed_size: image.compressed_size(),
        uncompressed_size: rows.iter().map(|r| r.uncompressed_size).sum(),
        layer_count: n,
        efficiency: figures.efficiency,
        wasted_bytes: figures.wasted_bytes,
        user_wasted_percent: Some(figures.user_wasted_percent).filter(|p| p.is_finite()),
        dive_size_bytes: figures.size_bytes,
        reclaimable_bytes: stored_file_bytes.saturating_sub(final_file_bytes),
        final_paths: tree.walk().len(),
        final_file_bytes,
        layers: rows,
        top_wasted: figures
            .inefficiencies
            .iter()
            .take(top)
            .map(|i| WastedPath { path: i.path.clone(), occurrences: i.count, bytes: i.cumulative_size.max(0) as u64 })
            .collect(),
        duplicates: duplicates(&tree, top),
        largest_files: largest(&tree, top),
        warnings: tree.warnings().to_vec(),
        dive_file_lists: dive.file_lists().to_vec(),
        dive: figures,
        tree,
    })
}

fn scan_one(src: &dyn Source, image: &Image, i: usize, capture: Option<&CaptureFn>) -> Result<LayerScan, AnalyzeError> {
    read_layer(src, image, i, |tar| scan_layer(tar, capture))
}

/// Reads layer `i` in two stages and hands its verified tar stream to `walk`. Stage 1
/// (own thread): size and digest check, decompression, bomb bound. Stage 2 (`walk`, on
/// this thread): the diff_id check (unless the layer is uncompressed and its digest is its
/// diff_id: one hash is enough), the tar walk and whatever `walk` does per entry.
pub(crate) fn read_layer<T>(
    src: &dyn Source,
    image: &Image,
    i: usize,
    walk: impl FnOnce(Box<dyn Read + '_>) -> Result<T, LayerError>,
) -> Result<T, AnalyzeError> {
    let l = &image.layers[i];
    let open_err = |source| AnalyzeError::LayerOpen { index: i, digest: l.digest, source: Box::new(source) };
    let raw = src.open_blob(&l.digest, l.size).map_err(open_err)?;
    let (compression, plain) = open_verified(raw, l.digest, l.size, None)
        .map_err(|source| open_err(TransportError::Blob { image: src.describe(), digest: l.digest, source }))?;
    let scanned = std::thread::scope(|s| {
        let (tx, piped) = pipe::pipe();
        s.spawn(move || pipe::produce(plain, tx));
        let tar: Box<dyn Read> = if compression == Compression::None && l.diff_id == l.digest {
            Box::new(piped)
        } else {
            Box::new(VerifyReader::new(piped, l.diff_id, None))
        };
        walk(tar)
    });
    scanned.map_err(|source| layer_error(i, l, source))
}

/// The error for layer `i` failing to read: a diff_id mismatch (the compressed blob was
/// fine, its content is not what the config says) is told apart from other failures.
pub(crate) fn layer_error(i: usize, l: &crate::transport::Layer, source: LayerError) -> AnalyzeError {
    if let LayerError::Io(e) = &source {
        if let Some(BlobError::Digest { expected, actual }) = BlobError::from_io(e) {
            if *expected == l.diff_id && l.diff_id != l.digest {
                return AnalyzeError::DiffIdMismatch {
                    index: i,
                    digest: l.digest,
                    diff_id: l.diff_id,
                    actual: *actual,
                };
            }
        }
    }
    AnalyzeError::Layer { index: i, digest: l.digest, source }
}

/// `created_by` per layer: history entries paired with layers in order, skipping
/// `empty_layer` entries (as dive and docker history do).
fn created_by(image: &Image) -> Vec<Option<String>> {
    let history = image.config.parsed.history().clone().unwrap_or_default();
    history.iter().filter(|h| h.empty_layer() != Some(true)).map(|h| h.created_by().clone()).collect()
}

/// The entry as dive's tree sees it (`None` for the root entry, which dive skips).
///
/// The entries come from [`crate::layer::LayerReader`], not from Go's `archive/tar` as in
/// dive, so a few odd inputs are counted differently (none occurs in layers that docker,
/// podman, buildah or pinnace write; the skipped ones show up as layer warnings):
/// - Entries the reader skips, which dive would count under their literal name, header
///   size included (in the layer size too, [`LayerScan::tar_size`]): a path or hard-link
///   target with a `..` component ([`Warning::Escapes`]), a whiteout of `.`, `..` or of
///   nothing (`dir/.wh.`), and entry types pinnace does not model
///   ([`Warning::Unsupported`]: GNU sparse files, volume labels, multi-volume parts).
/// - Non-file entries (directories, symlinks, hard links, devices, fifos) have size 0
///   here; dive takes the header's size field as written, which tar writers leave at 0
///   for these types (a hand-made tar may not).
/// - Whiteouts and opaque markers are exported with type flag `0` (regular file), with
///   the mode and owner of their header; dive keeps the header's type flag, which is `0`
///   too for every whiteout docker, podman and buildah write (overlay's character-device
///   whiteouts are converted to `.wh.` files on export).
fn dive_entry(e: &crate::fs::scan::ScannedEntry, keep: bool) -> Option<DiveEntry> {
    let join = |dir: &str, name: &str| if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
    let (path, type_flag, link) = match &e.kind {
        EntryKind::Whiteout => {
            let (dir, name) = e.path.rsplit_once('/').unwrap_or(("", &e.path));
            (join(dir, &format!(".wh.{name}")), b'0', "")
        }
        EntryKind::OpaqueWhiteout => (join(&e.path, ".wh..wh..opq"), b'0', ""),
        _ if e.path.is_empty() => return None,
        EntryKind::File => (e.path.clone(), b'0', ""),
        EntryKind::Dir => (e.path.clone(), b'5', ""),
        EntryKind::Symlink(t) => (e.path.clone(), b'2', t.as_str()),
        EntryKind::HardLink(t) => (e.path.clone(), b'1', t.as_str()),
        EntryKind::CharDevice => (e.path.clone(), b'3', ""),
        EntryKind::BlockDevice => (e.path.clone(), b'4', ""),
        EntryKind::Fifo => (e.path.clone(), b'6', ""),
    };
    let is_dir = e.kind == EntryKind::Dir;
    let info = keep.then(|| DiveFileInfo {
        path: path.clone(),
        type_flag,
        link_name: link.to_string(),
        size: e.size as i64,
        file_mode: go_file_mode(e.mode, type_flag),
        uid: e.uid as i64,
        gid: e.gid as i64,
        is_dir,
    });
    Some(DiveEntry { path, size: e.size as i64, is_dir, info })
}

/// Same content under different paths: one path per stored copy ([`FsTree::files`]), so
/// a file and its hard links are one copy, not a duplicate.
fn duplicates(tree: &FsTree, top: usize) -> Vec<DuplicateGroup> {
    let mut by_hash: HashMap<Digest, (u64, Vec<String>)> = HashMap::new();
    for id in tree.files() {
        let m = tree.meta(id);
        if let (Some(h), true) = (m.hash, m.size > 0) {
            by_hash.entry(h).or_insert_with(|| (m.size, Vec::new())).1.push(tree.path(id));
        }
    }
    let mut groups: Vec<DuplicateGroup> = by_hash
        .into_iter()
        .filter(|(_, (_, p))| p.len() > 1)
        .map(|(hash, (size, mut paths))| {
            paths.sort();
            DuplicateGroup { hash, size, wasted: (paths.len() as u64 - 1) * size, paths }
        })
        .collect();
    groups.sort_by(|a, b| b.wasted.cmp(&a.wasted).then_with(|| a.paths.cmp(&b.paths)));
    groups.truncate(top);
    groups
}

fn largest(tree: &FsTree, top: usize) -> Vec<FileRow> {
    let mut files: Vec<FileRow> = tree
        .files()
        .into_iter()
        .map(|id| FileRow {
            path: tree.path(id),
            size: tree.meta(id).size,
            layer: tree.modified_in(id).unwrap_or(tree.added_in(id)),
        })
        .collect();
    files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    files.truncate(top);
    files
}
