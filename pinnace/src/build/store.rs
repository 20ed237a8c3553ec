//! The private blob store of images pinnace assembles itself (`build`, `slim`): layers
//! written by the one layer writer into a temp directory, small documents (config) in
//! memory, and optionally blobs served by a base image's source. [`StoreSource`] turns
//! the store and a manifest into a [`Source`], so the generic [`crate::copy::copy_image`]
//! writes the image to any sink, as many times as asked. The temp directory lives as
//! long as the source and is removed with it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::PathBuf;

use crate::layer::{Encoded, EncoderOptions, LayerBuilder, WriterError};
use crate::oci::{Digest, RawManifest};
use crate::transport::{Source, TransportError};

/// Writing a layer into the store failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// Creating or flushing the store's file failed. (The cause is the source.)
    #[error("{}", path.display())]
    Io {
        /// The store file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The layer writer failed (a source file unreadable, a path conflict).
    #[error(transparent)]
    Writer(#[from] WriterError),
}

enum Blob {
    Bytes(Vec<u8>),
    File(PathBuf),
    Base,
}

/// Blobs being collected for one image (see the module documentation).
pub(crate) struct BlobStore {
    dir: tempfile::TempDir,
    blobs: HashMap<Digest, Blob>,
    layers: usize,
}

impl BlobStore {
    /// An empty store in a new temp directory named `PREFIX...`.
    pub(crate) fn new(prefix: &str) -> Result<BlobStore, StoreError> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|source| StoreError::Io { path: std::env::temp_dir(), source })?;
        Ok(BlobStore { dir, blobs: HashMap::new(), layers: 0 })
    }

    /// Writes `layer` (compressed as `enc` says, every mtime `mtime`) into the store and
    /// returns its digests and sizes.
    pub(crate) fn write_layer(
        &mut self,
        layer: &LayerBuilder,
        enc: &EncoderOptions,
        mtime: u64,
    ) -> Result<Encoded, StoreError> {
        let path = self.dir.path().join(format!("layer{}", self.layers));
        self.layers += 1;
        let f = File::create(&path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
        let (w, e) = layer.write(BufWriter::with_capacity(1 << 20, f), enc, mtime)?;
        w.into_inner().map_err(|e| StoreError::Io { path: path.clone(), source: e.into_error() })?;
        self.blobs.insert(e.digest, Blob::File(path));
        Ok(e)
    }

    /// Keeps a small document (a config) in memory; returns its digest.
    pub(crate) fn insert_bytes(&mut self, bytes: Vec<u8>) -> Digest {
        let d = Digest::of(&bytes);
        self.blobs.insert(d, Blob::Bytes(bytes));
        d
    }

    /// Records that `digest` is served by the base image's source.
    pub(crate) fn insert_base(&mut self, digest: Digest) {
        self.blobs.insert(digest, Blob::Base);
    }

    /// The image `manifest` as a [`Source`] named `name`, reading base blobs from `base`
    /// (which must be given when [`BlobStore::insert_base`] was used).
    pub(crate) fn into_source(self, manifest: RawManifest, base: Option<Box<dyn Source>>, name: &str) -> StoreSource {
        StoreSource { manifest, blobs: self.blobs, base, name: name.to_string(), _dir: self.dir }
    }
}

/// An assembled image as a [`Source`]: new blobs from the private store, base blobs from
/// the base image's source.
pub(crate) struct StoreSource {
    manifest: RawManifest,
    blobs: HashMap<Digest, Blob>,
    base: Option<Box<dyn Source>>,
    name: String,
    /// Owns the layer files; removed when the source is dropped.
    _dir: tempfile::TempDir,
}

impl Source for StoreSource {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn root_manifest(&self) -> Result<RawManifest, TransportError> {
        Ok(self.manifest.clone())
    }
    fn open_blob(&self, digest: &Digest, size: u64) -> Result<Box<dyn Read + Send + '_>, TransportError> {
        match self.blobs.get(digest) {
            Some(Blob::Bytes(b)) => Ok(Box::new(&b[..])),
            Some(Blob::File(p)) => {
                Ok(Box::new(io::BufReader::with_capacity(256 << 10, File::open(p).map_err(TransportError::io(p))?)))
            }
            Some(Blob::Base) => self.base.as_ref().expect("base blobs imply a base").open_blob(digest, size),
            None => Err(TransportError::MissingBlob {
                image: self.describe(),
                digest: *digest,
                place: "private blob store",
            }),
        }
    }
}
