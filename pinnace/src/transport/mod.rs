//! Transports: where images come from and go to, in skopeo's reference syntax.
//!
//! Each transport is one module with a reader ([`Source`]) and a writer ([`Sink`]) of
//! the same shape (go-containerregistry's design): a source serves raw manifests and raw
//! blobs by digest; everything else (platform selection, config parsing, verification,
//! decompression) is derived once, here and in [`crate::layer`]. A sink receives, in this
//! order: the blobs (layers and config, in any order; several at once from several
//! threads when the sink offers [`Sink::concurrent_blobs`]), then the manifest(s), then
//! `commit`. Nothing is visible at the destination before `commit`, and an error (or a
//! kill) before it leaves the previous destination as it was.

pub mod archive;
pub mod daemon;
pub mod docker_archive;
pub mod layout;
pub mod oci_archive;
mod reference;
pub mod registry;

use std::io::{self, Read};
use std::path::PathBuf;

use oci_spec::image::{Descriptor, ImageManifest};

use crate::blob::{read_verified, METADATA_LIMIT};
use crate::layer::{self, Compression, Encoded};
use crate::oci::{self, media, Digest, Manifest, OciError, Platform, RawConfig, RawManifest};

pub use reference::ImageRef;

/// Errors of transports and of opening images through them.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The reference string did not parse.
    #[error("image reference {input:?}: {why}")]
    BadReference {
        /// The input.
        input: String,
        /// What is wrong and what forms are accepted.
        why: String,
    },
    /// Image metadata was invalid.
    #[error("{image}: {source}")]
    Oci {
        /// The image reference.
        image: String,
        /// The problem.
        source: OciError,
    },
    /// A blob could not be read or failed verification.
    #[error("{image}: blob {digest}: {source}")]
    Blob {
        /// The image reference.
        image: String,
        /// The blob.
        digest: Digest,
        /// The problem (a [`crate::blob::BlobError`] inside for digest/size mismatches).
        source: io::Error,
    },
    /// A blob named by a manifest is not in the source.
    #[error("{image}: blob {digest} is missing (the manifest names it but the {place} does not hold it)")]
    MissingBlob {
        /// The image reference.
        image: String,
        /// The blob.
        digest: Digest,
        /// "layout", "archive", ...
        place: &'static str,
    },
    /// The source holds no image under that name or tag.
    #[error("{image}: {why}")]
    NotFound {
        /// The image reference.
        image: String,
        /// What was looked for and what exists.
        why: String,
    },
    /// The source's own files are malformed (index.json, manifest.json, the archive).
    #[error("{image}: {why}")]
    Malformed {
        /// The image reference.
        image: String,
        /// What is wrong.
        why: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An external tool (podman, docker) failed or is missing.
    #[error("{tool}: {why}")]
    Tool {
        /// The command.
        tool: String,
        /// What happened, with its stderr.
        why: String,
    },
    /// The transport exists in the syntax but not yet in pinnace.
    #[error("{0}")]
    Unsupported(String),
    /// A registry operation failed (boxed: registry errors carry several names).
    #[error(transparent)]
    Registry(Box<registry::RegistryError>),
}

impl From<registry::RegistryError> for TransportError {
    fn from(e: registry::RegistryError) -> TransportError {
        TransportError::Registry(Box::new(e))
    }
}

impl TransportError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> TransportError {
        let path = path.into();
        move |source| TransportError::Io { path, source }
    }
}

/// A readable image store: serves raw manifests and raw blobs by digest.
pub trait Source: Send + Sync {
    /// The reference, for messages.
    fn describe(&self) -> String;
    /// The manifest (or index) the reference names, as stored.
    fn root_manifest(&self) -> Result<RawManifest, TransportError>;
    /// A blob's raw bytes (not yet verified: callers go through [`Image`] helpers).
    /// May be called from several threads at once.
    fn open_blob(&self, digest: &Digest, size: u64) -> Result<Box<dyn Read + Send + '_>, TransportError>;
    /// Whether reads go over the network (a registry), so that reading several blobs at
    /// once pays; local stores are bound by disk and CPU instead (default: local).
    fn remote(&self) -> bool {
        false
    }
}

/// Which layer form a sink stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerForm {
    /// Compressed blobs (OCI layouts and archives): uncompressed layers get compressed.
    Compressed,
    /// Uncompressed tars (docker archives): compressed layers get decompressed.
    Uncompressed,
}

/// What a blob is, for sinks that name files by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// A layer.
    Layer,
    /// The image config.
    Config,
}

/// The final image a sink records at the end: manifest bytes and what they reference.
#[derive(Debug, Clone)]
pub struct FinalImage {
    /// The manifest, exactly as it will be stored.
    pub manifest: RawManifest,
    /// Config digest and size.
    pub config: (Digest, u64),
    /// Layers: blob digest, blob size, diff_id.
    pub layers: Vec<(Digest, u64, Digest)>,
    /// The platform, for index entries.
    pub platform: Option<Platform>,
}

/// Whether a sink holds a blob before it is sent, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Not there: it must be sent.
    Missing,
    /// Already there.
    Present,
    /// Not there, but the sink linked it from elsewhere without sending it (a registry's
    /// cross-repository mount).
    Mounted,
}

impl Presence {
    /// Whether the blob need not be sent.
    pub fn is_there(self) -> bool {
        self != Presence::Missing
    }
}

/// The blob half of a [`Sink`] for sinks that take several blobs at once from several
/// threads (a registry: one connection per blob). Each method has the contract of the
/// [`Sink`] method of the same name, with `&self`: the sink keeps its own bookkeeping
/// behind locks. Kept apart from [`Sink`] so that sinks writing one stream (archives,
/// daemons) keep their plain `&mut self` methods and need no locks.
pub trait ConcurrentBlobs: Sync {
    /// Whether the blob is there already, or was mounted just now (see [`Sink::has_blob`]).
    fn presence(&self, digest: &Digest, size: u64) -> Result<Presence, TransportError>;
    /// See [`Sink::put_blob`].
    fn put_blob(&self, kind: BlobKind, digest: &Digest, size: u64, data: &mut dyn Read) -> Result<(), TransportError>;
    /// See [`Sink::put_blob_with`].
    fn put_blob_with(
        &self,
        produce: &mut dyn FnMut(&mut (dyn io::Write + Send)) -> io::Result<Encoded>,
    ) -> Result<Encoded, TransportError>;
}

/// An image store to write to. Call order: [`Sink::put_blob`] / [`Sink::put_blob_with`]
/// (or the same through [`Sink::concurrent_blobs`]) for every layer and for the config,
/// in any order and, through `concurrent_blobs`, several at once; then
/// [`Sink::put_manifest`] (once per image; sinks that store indexes take every child
/// image's manifest and then [`Sink::put_index`]); then [`Sink::commit`]. Nothing
/// becomes visible before `commit`. The copy decides everything that goes into a
/// manifest before it is put, so the manifest never depends on the order in which
/// blobs finished.
pub trait Sink {
    /// The reference, for messages.
    fn describe(&self) -> String;
    /// The layer form this sink stores.
    fn layer_form(&self) -> LayerForm;
    /// Whether a Docker v2.2 manifest is stored as it is (registries) rather than
    /// rewritten as OCI (layouts and OCI archives).
    fn keeps_docker_format(&self) -> bool {
        false
    }
    /// Whether the sink already holds this blob, valid (content-addressed blobs are never
    /// rewritten).
    fn has_blob(&mut self, _digest: &Digest, _size: u64) -> Result<bool, TransportError> {
        Ok(false)
    }
    /// Stores a blob whose digest and size are known; `data` yields exactly its bytes
    /// (the caller verifies them while they pass).
    fn put_blob(
        &mut self,
        kind: BlobKind,
        digest: &Digest,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), TransportError>;
    /// Stores a layer produced on the fly (compressed or decompressed while copied): `produce`
    /// writes it and returns its digests; the sink names it after the fact.
    fn put_blob_with(
        &mut self,
        produce: &mut dyn FnMut(&mut (dyn io::Write + Send)) -> io::Result<Encoded>,
    ) -> Result<Encoded, TransportError>;
    /// The blob methods for use from several threads at once, when the sink offers them
    /// (default: it does not, and blobs go one at a time through `&mut self`). The copy
    /// uses them when either end is [`Sink::remote`] / [`Source::remote`].
    fn concurrent_blobs(&self) -> Option<&dyn ConcurrentBlobs> {
        None
    }
    /// Whether writes go over the network (a registry; default: local).
    fn remote(&self) -> bool {
        false
    }
    /// A directory on the destination's filesystem for the copy's temporary files, offered
    /// by sinks that write one stream (docker archives): layers decompressed ahead on
    /// another core wait there until the stream reaches them (default: none, no spooling).
    fn spool_dir(&self) -> Option<PathBuf> {
        None
    }
    /// Records the manifest.
    fn put_manifest(&mut self, image: &FinalImage) -> Result<(), TransportError>;
    /// Records an index (manifest list) over the manifests put before, which becomes
    /// what the reference names at `commit` (default: the sink stores single images only).
    fn put_index(&mut self, _index: &RawManifest) -> Result<(), TransportError> {
        Err(TransportError::Unsupported(format!(
            "{} stores single images, not a multi-platform index: copy one platform (leave out --all, pick one with --platform) or copy to a registry",
            self.describe()
        )))
    }
    /// Makes everything visible atomically.
    fn commit(self: Box<Self>) -> Result<(), TransportError>;
}

/// A layer of an opened image: its descriptor and diff_id, paired.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The manifest's descriptor (annotations and urls kept for re-serialisation).
    pub descriptor: Descriptor,
    /// Blob digest.
    pub digest: Digest,
    /// Blob size.
    pub size: u64,
    /// Media type as declared.
    pub media_type: String,
    /// The config's diff_id for this layer.
    pub diff_id: Digest,
}

impl Layer {
    /// The compression the media type claims (the bytes decide when read).
    pub fn claimed_compression(&self) -> Option<Compression> {
        media::claimed_compression(&self.media_type)
    }
}

/// One image, resolved from a source: manifest and config read and verified, layers
/// paired with their diff_ids and opened on demand.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image manifest as stored.
    pub manifest: RawManifest,
    /// Parsed manifest.
    pub parsed: ImageManifest,
    /// The index it was selected from, if any.
    pub index: Option<RawManifest>,
    /// Config.
    pub config: RawConfig,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
}

impl Image {
    /// Resolves the image a source names, choosing from indexes by `platform` (the
    /// host's when `None`). Manifests and config are verified by digest.
    pub fn open(src: &dyn Source, platform: Option<&Platform>) -> Result<Image, TransportError> {
        let name = src.describe();
        let oci_err = |source| TransportError::Oci { image: name.clone(), source };
        let mut raw = src.root_manifest()?;
        let mut index = None;
        let mut depth = 0;
        let parsed = loop {
            match raw.parse().map_err(oci_err)? {
                Manifest::Image(m) => break *m,
                Manifest::Index(idx) => {
                    depth += 1;
                    if depth > 4 {
                        return Err(oci_err(OciError::TooDeep(raw.digest)));
                    }
                    let d = oci::select_platform(&idx, &raw.digest, platform).map_err(oci_err)?;
                    let digest = oci::descriptor_digest(d).map_err(oci_err)?;
                    let bytes = read_small(src, &digest, d.size())?;
                    let child = RawManifest::new(bytes, Some(d.media_type().as_ref())).map_err(oci_err)?;
                    index.get_or_insert(raw);
                    raw = child;
                }
            }
        };
        Image::with_manifest(src, raw, parsed, index)
    }

    /// The image an index entry names (`--all` copies every child this way). The child
    /// must be an image manifest, not another index.
    pub fn open_child(src: &dyn Source, index: &RawManifest, entry: &Descriptor) -> Result<Image, TransportError> {
        let name = src.describe();
        let oci_err = |source| TransportError::Oci { image: name.clone(), source };
        let digest = oci::descriptor_digest(entry).map_err(oci_err)?;
        let bytes = read_small(src, &digest, entry.size())?;
        let raw = RawManifest::new(bytes, Some(entry.media_type().as_ref())).map_err(oci_err)?;
        match raw.parse().map_err(oci_err)? {
            Manifest::Image(m) => Image::with_manifest(src, raw, *m, Some(index.clone())),
            Manifest::Index(_) => Err(TransportError::Unsupported(format!(
                "{name}: index {} names another index ({digest}); nested indexes cannot be copied with --all",
                index.digest
            ))),
        }
    }

    fn with_manifest(
        src: &dyn Source,
        raw: RawManifest,
        parsed: ImageManifest,
        index: Option<RawManifest>,
    ) -> Result<Image, TransportError> {
        let name = src.describe();
        let oci_err = |source| TransportError::Oci { image: name.clone(), source };
        let cdesc = parsed.config();
        let cdigest = oci::descriptor_digest(cdesc).map_err(oci_err)?;
        let config = RawConfig::new(read_small(src, &cdigest, cdesc.size())?).map_err(oci_err)?;
        let diff_ids = config.diff_ids().map_err(oci_err)?;
        if diff_ids.len() != parsed.layers().len() {
            return Err(oci_err(OciError::DiffIdCount {
                config: config.digest,
                manifest: raw.digest,
                diff_ids: diff_ids.len(),
                layers: parsed.layers().len(),
            }));
        }
        let layers = parsed
            .layers()
            .iter()
            .zip(diff_ids)
            .map(|(d, diff_id)| {
                Ok(Layer {
                    digest: oci::descriptor_digest(d).map_err(oci_err)?,
                    size: d.size(),
                    media_type: d.media_type().to_string(),
                    descriptor: d.clone(),
                    diff_id,
                })
            })
            .collect::<Result<Vec<_>, TransportError>>()?;
        Ok(Image { manifest: raw, parsed, index, config, layers })
    }

    /// The image's platform, from its config.
    pub fn platform(&self) -> Platform {
        let c = &self.config.parsed;
        Platform { os: c.os().to_string(), architecture: c.architecture().to_string(), variant: c.variant().clone() }
    }

    /// Total compressed size: manifest's layers plus config.
    pub fn compressed_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum::<u64>() + self.config.bytes.len() as u64
    }

    /// Opens layer `i`'s tar stream: raw bytes verified against the digest, decompressed
    /// by magic, and the result verified against the diff_id (see [`layer::open_verified`]).
    pub fn open_layer<'a>(
        &self,
        src: &'a dyn Source,
        i: usize,
    ) -> Result<(Compression, Box<dyn Read + Send + 'a>), TransportError> {
        let l = &self.layers[i];
        let raw = src.open_blob(&l.digest, l.size)?;
        layer::open_verified(raw, l.digest, l.size, Some(l.diff_id)).map_err(|source| TransportError::Blob {
            image: src.describe(),
            digest: l.digest,
            source,
        })
    }
}

fn read_small(src: &dyn Source, digest: &Digest, size: u64) -> Result<Vec<u8>, TransportError> {
    let raw = src.open_blob(digest, size)?;
    read_verified(raw, *digest, size, METADATA_LIMIT).map_err(|source| TransportError::Blob {
        image: src.describe(),
        digest: *digest,
        source,
    })
}

/// Opens the source a reference names (registries with the process-wide
/// [`registry::RegistryOptions::global`]).
pub fn open_source(r: &ImageRef) -> Result<Box<dyn Source>, TransportError> {
    open_source_with(r, &registry::RegistryOptions::default())
}

/// Opens the source a reference names, registries with `opts`.
pub fn open_source_with(r: &ImageRef, opts: &registry::RegistryOptions) -> Result<Box<dyn Source>, TransportError> {
    Ok(match r {
        ImageRef::Oci { dir, tag } => Box::new(layout::LayoutSource::open(dir, tag.as_deref())?),
        ImageRef::OciArchive { file, tag } => Box::new(oci_archive::OciArchiveSource::open(file, tag.as_deref())?),
        ImageRef::DockerArchive { file, name } => {
            Box::new(docker_archive::DockerArchiveSource::open(file, name.as_deref())?)
        }
        ImageRef::ContainersStorage { name } => Box::new(daemon::DaemonSource::open(daemon::Daemon::Podman, name)?),
        ImageRef::DockerDaemon { name } => Box::new(daemon::DaemonSource::open(daemon::Daemon::Docker, name)?),
        ImageRef::Registry { reference } => Box::new(registry::RegistrySource::open(reference, opts)?),
    })
}

/// Opens the sink a reference names (registries with the process-wide
/// [`registry::RegistryOptions::global`]).
pub fn open_sink(r: &ImageRef) -> Result<Box<dyn Sink>, TransportError> {
    open_sink_with(r, &registry::RegistryOptions::default())
}

/// Opens the sink a reference names, registries with `opts`.
pub fn open_sink_with(r: &ImageRef, opts: &registry::RegistryOptions) -> Result<Box<dyn Sink>, TransportError> {
    Ok(match r {
        ImageRef::Oci { dir, tag } => Box::new(layout::LayoutSink::create(dir, tag.clone())?),
        ImageRef::OciArchive { file, tag } => Box::new(oci_archive::OciArchiveSink::create(file, tag.clone())?),
        ImageRef::DockerArchive { file, name } => {
            Box::new(docker_archive::DockerArchiveSink::create(file, name.clone())?)
        }
        ImageRef::ContainersStorage { name } => Box::new(daemon::DaemonSink::create(daemon::Daemon::Podman, name)?),
        ImageRef::DockerDaemon { name } => Box::new(daemon::DaemonSink::create(daemon::Daemon::Docker, name)?),
        ImageRef::Registry { reference } => Box::new(registry::RegistrySink::create(reference, opts)?),
    })
}
