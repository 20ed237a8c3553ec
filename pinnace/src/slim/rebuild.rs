//! The slim image: the kept paths of the unpacked image written with the one layer
//! writer, the source's config with new layers and history, and a manifest that names
//! the source.
//!
//! Each kept path is written with the tree's metadata (kind, mode, owner): directories
//! as directories, symbolic links with their target verbatim, regular files with the
//! unpacked file's content. Paths of one content (hard links) are written once as a
//! regular file (the first kept one in walk order, a regular file before a hard link)
//! and as hard links to it after; a hard link whose target is not kept thus becomes a
//! regular file. One layer by default; with [`RebuildOptions::split_by_source_layers`],
//! one per source layer that still contributes a file, link or empty directory, each
//! path in the layer its final version came from (a hard-link group in its first
//! path's layer), every layer carrying the directories above its paths with their real
//! metadata.
//!
//! Reproducible: layers are deterministic (the layer writer's contract, mtime
//! `SOURCE_DATE_EPOCH` or 0), documents are canonical JSON, and `created` is
//! `SOURCE_DATE_EPOCH` when set, else the source's; so the same image and keep-set give
//! the same manifest digest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

use serde_json::{json, Value};

use super::keep::KeepSet;
use super::unpack::Unpacked;
use crate::build::plan::file_count;
use crate::build::rfc3339;
use crate::build::store::{BlobStore, StoreError, StoreSource};
use crate::fs::{NodeId, NodeKind};
use crate::layer::{Compression, EncoderOptions, FileSource, LayerBuilder, LayerEntrySpec, SpecKind, WriterError};
use crate::oci::{self, media, Digest, OciError, RawManifest};
use crate::transport::{Image, Source, TransportError};

/// Manifest annotation naming the source image's manifest digest.
pub const SOURCE_ANNOTATION: &str = "org.pinnace.slim.source";
/// Manifest annotation naming the source image as the user gave it.
pub const SOURCE_REF_ANNOTATION: &str = "org.pinnace.slim.source-ref";

/// How to write the slim image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildOptions {
    /// One layer per source layer that still contributes paths, instead of one layer.
    pub split_by_source_layers: bool,
    /// Layer compression (gzip by default, as OCI stores and registries keep layers).
    pub compression: Compression,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        RebuildOptions { split_by_source_layers: false, compression: Compression::Gzip }
    }
}

/// Why the slim image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The layer writer refused an entry or could not read a kept file.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// The private store could not be written.
    #[error("{}: writing the slim image's layer", path.display())]
    Store {
        /// The store file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The source config is not a JSON object.
    #[error("config {digest} of the source image is not a JSON object")]
    Config {
        /// Its digest.
        digest: Digest,
    },
    /// An owner does not fit the 32 bits a layer entry has.
    #[error("{path}: owner {uid}:{gid} is out of range")]
    Owner {
        /// The path.
        path: String,
        /// User id.
        uid: u64,
        /// Group id.
        gid: u64,
    },
    /// The manifest could not be assembled.
    #[error("slim manifest: {0}")]
    Manifest(#[from] OciError),
}

impl From<StoreError> for RebuildError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io { path, source } => RebuildError::Store { path, source },
            StoreError::Writer(w) => RebuildError::Writer(w),
        }
    }
}

/// One layer of the slim image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlimLayer {
    /// Blob digest.
    pub digest: Digest,
    /// Blob size.
    pub size: u64,
    /// Uncompressed digest.
    pub diff_id: Digest,
    /// Uncompressed size.
    pub uncompressed_size: u64,
    /// Regular files in it (hard links not counted).
    pub files: usize,
    /// The source layer its paths came from (when split by source layers).
    pub source_layer: Option<usize>,
}

/// The slim image, held in a private store until dropped; a [`Source`], so
/// [`crate::copy::copy_image`] writes it to any sink, as often as needed.
pub struct SlimImage {
    /// Manifest digest (OCI manifest, layers compressed as asked).
    pub manifest_digest: Digest,
    /// Config digest (the image ID).
    pub config_digest: Digest,
    /// Layers plus config, compressed.
    pub compressed_size: u64,
    /// Sum of the layers' tar sizes.
    pub uncompressed_size: u64,
    /// Regular files in the image.
    pub files: usize,
    /// Layers, bottom first.
    pub layers: Vec<SlimLayer>,
    store: StoreSource,
}

impl std::fmt::Debug for SlimImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlimImage")
            .field("manifest_digest", &self.manifest_digest)
            .field("layers", &self.layers)
            .finish_non_exhaustive()
    }
}

impl Source for SlimImage {
    fn describe(&self) -> String {
        self.store.describe()
    }
    fn root_manifest(&self) -> Result<RawManifest, TransportError> {
        self.store.root_manifest()
    }
    fn open_blob(&self, digest: &Digest, size: u64) -> Result<Box<dyn Read + Send + '_>, TransportError> {
        self.store.open_blob(digest, size)
    }
}

/// Writes the slim image of `image` (read from `src`, unpacked as `unpacked`) holding the
/// paths of `keep` (see the module documentation).
pub fn rebuild(
    src: &dyn Source,
    image: &Image,
    unpacked: &Unpacked,
    keep: &KeepSet,
    opts: &RebuildOptions,
) -> Result<SlimImage, RebuildError> {
    let builders = layer_builders(unpacked, keep, opts.split_by_source_layers)?;
    let mut store = BlobStore::new("pinnace-slim-")?;
    let enc = EncoderOptions { compression: opts.compression, ..Default::default() };
    let mtime = crate::layer::writer::source_date_epoch();
    let mut layers = Vec::new();
    for (source_layer, b) in &builders {
        let e = store.write_layer(b, &enc, mtime)?;
        layers.push(SlimLayer {
            digest: e.digest,
            size: e.size,
            diff_id: e.diff_id,
            uncompressed_size: e.uncompressed_size,
            files: file_count(b),
            source_layer: opts.split_by_source_layers.then_some(*source_layer),
        });
    }
    let config = oci::canonical_json(&config_json(image, &layers)?);
    let config_len = config.len() as u64;
    let config_digest = store.insert_bytes(config);
    let mut annotations: BTreeMap<String, Value> = serde_json::from_slice::<Value>(&image.manifest.bytes)
        .ok()
        .and_then(|m| m.get("annotations")?.as_object().cloned())
        .map(|a| a.into_iter().collect())
        .unwrap_or_default();
    annotations.insert(SOURCE_ANNOTATION.into(), json!(image.manifest.digest.to_string()));
    annotations.insert(SOURCE_REF_ANNOTATION.into(), json!(src.describe()));
    let layer_type = media::layer_media_type(opts.compression, false);
    let descriptors: Vec<Value> = layers
        .iter()
        .map(|l| json!({"mediaType": layer_type, "digest": l.digest.to_string(), "size": l.size}))
        .collect();
    let m = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_len},
        "layers": descriptors,
        "annotations": annotations,
    });
    let manifest = RawManifest::new(oci::canonical_json(&m), Some(media::OCI_MANIFEST))?;
    Ok(SlimImage {
        manifest_digest: manifest.digest,
        config_digest,
        compressed_size: layers.iter().map(|l| l.size).sum::<u64>() + config_len,
        uncompressed_size: layers.iter().map(|l| l.uncompressed_size).sum(),
        files: layers.iter().map(|l| l.files).sum(),
        layers,
        store: store.into_source(manifest, None, &format!("slim image of {}", src.describe())),
    })
}

/// The kept paths as layer entries, grouped by layer (source layer index, or 0).
fn layer_builders(u: &Unpacked, keep: &KeepSet, split: bool) -> Result<BTreeMap<usize, LayerBuilder>, RebuildError> {
    let t = &u.tree;
    let kept: Vec<NodeId> = t.walk().into_iter().filter(|&id| keep.contains(id)).collect();
    let is_content = |id: NodeId| matches!(t.meta(id).kind, NodeKind::File | NodeKind::HardLink);
    // The path each kept content is written at: a regular file first, else a hard link.
    let mut first: HashMap<u32, NodeId> = HashMap::new();
    for pass in [NodeKind::File, NodeKind::HardLink] {
        for &id in kept.iter().filter(|&&id| t.meta(id).kind == pass) {
            first.entry(t.inode(id).expect("files have inodes")).or_insert(id);
        }
    }
    let layer_of = |id: NodeId| if split { t.modified_in(id).unwrap_or(t.added_in(id)) } else { 0 };
    let mut builders: BTreeMap<usize, LayerBuilder> = BTreeMap::new();
    let mut placed: HashSet<NodeId> = HashSet::new();
    for &id in kept.iter().filter(|&&id| t.meta(id).kind != NodeKind::Dir) {
        let m = t.meta(id);
        let (layer, kind) = if is_content(id) {
            let rep = first[&t.inode(id).expect("files have inodes")];
            let kind = if rep == id {
                SpecKind::File(FileSource::Path(u.root.join(t.path(id).trim_start_matches('/'))))
            } else {
                SpecKind::HardLink(t.path(rep))
            };
            (layer_of(rep), kind)
        } else {
            (layer_of(id), SpecKind::Symlink(m.link.as_deref().unwrap_or("").to_string()))
        };
        add(u, builders.entry(layer).or_default(), &mut placed, id, kind)?;
    }
    // Directories not above any kept file: in their own layer when it is written, else
    // in the lowest one.
    for &id in kept.iter().filter(|&&id| t.meta(id).kind == NodeKind::Dir) {
        if !placed.contains(&id) {
            let own = layer_of(id);
            let layer = if builders.contains_key(&own) { own } else { builders.keys().next().copied().unwrap_or(own) };
            add(u, builders.entry(layer).or_default(), &mut placed, id, SpecKind::Dir)?;
        }
    }
    if builders.is_empty() {
        builders.insert(0, LayerBuilder::new());
    }
    Ok(builders)
}

/// Adds `id` as `kind` to `b`, with the directories above it (with their own metadata:
/// the writer would make missing ones `0755` root), and notes them in `placed`.
fn add(
    u: &Unpacked,
    b: &mut LayerBuilder,
    placed: &mut HashSet<NodeId>,
    id: NodeId,
    kind: SpecKind,
) -> Result<(), RebuildError> {
    let t = &u.tree;
    let entry = |id: NodeId, kind: SpecKind| {
        let m = t.meta(id);
        match (u32::try_from(m.uid), u32::try_from(m.gid)) {
            (Ok(uid), Ok(gid)) => Ok(LayerEntrySpec { path: t.path(id), kind, mode: m.mode, uid, gid }),
            _ => Err(RebuildError::Owner { path: t.path(id), uid: m.uid, gid: m.gid }),
        }
    };
    let mut cur = t.parent(id);
    while let Some(p) = cur.filter(|&p| p != NodeId::ROOT) {
        // The same entry twice is one entry (the writer's contract).
        b.add(entry(p, SpecKind::Dir)?)?;
        placed.insert(p);
        cur = t.parent(p);
    }
    b.add(entry(id, kind)?)?;
    placed.insert(id);
    Ok(())
}

/// The source config with the new layers' diff_ids and one history entry per layer;
/// every other field (entrypoint, env, user, workdir, ports, labels, unknown ones) as is.
fn config_json(image: &Image, layers: &[SlimLayer]) -> Result<Value, RebuildError> {
    let mut c: Value = serde_json::from_slice(&image.config.bytes).unwrap_or(Value::Null);
    if !c.is_object() {
        return Err(RebuildError::Config { digest: image.config.digest });
    }
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse::<i64>().ok());
    let created = match epoch {
        Some(secs) => Some(json!(rfc3339(secs))),
        None => c.get("created").cloned(),
    };
    if let Some(cr) = &created {
        c["created"] = cr.clone();
    }
    c["rootfs"] =
        json!({"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()});
    c["history"] = layers
        .iter()
        .map(|l| {
            let mut h = json!({"created_by": "pinnace slim", "comment": format!("{} files", l.files)});
            if let Some(cr) = &created {
                h["created"] = cr.clone();
            }
            h
        })
        .collect();
    Ok(c)
}

#[cfg(test)]
#[path = "rebuild_tests.rs"]
mod tests;
