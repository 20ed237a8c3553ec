//! `oci-archive:FILE[:TAG]`: an OCI image layout inside a tar file.
//!
//! Read: the archive is indexed once (headers only) and blobs are read in place by
//! offset: nothing is unpacked. Write: `oci-layout`, then blobs as they come, then the
//! manifest and `index.json`, into a temp file renamed over FILE at commit.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::Path;

use crate::layer::Encoded;
use crate::oci::{Digest, RawManifest};

use super::archive::{TarFileWriter, TarIndex};
use super::layout::{blob_path, layout_marker, merged_index, LayoutFiles, LayoutReader};
use super::{BlobKind, FinalImage, LayerForm, Sink, Source, TransportError};

impl LayoutFiles for TarIndex {
    fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>, TransportError> {
        TarIndex::read_small(self, name, crate::blob::METADATA_LIMIT)
    }
    fn open(&self, name: &str) -> Result<Option<Box<dyn Read + Send + '_>>, TransportError> {
        Ok(TarIndex::open(self, name)
            .map_err(TransportError::io(self.path()))?
            .map(|(_, r)| Box::new(io::BufReader::with_capacity(256 << 10, r)) as Box<dyn Read + Send>))
    }
}

/// `oci-archive:` as a source.
pub struct OciArchiveSource(LayoutReader<TarIndex>);

impl OciArchiveSource {
    /// Indexes the archive at `file`.
    pub fn open(file: &Path, tag: Option<&str>) -> Result<Self, TransportError> {
        let mut name = format!("oci-archive:{}", file.display());
        if let Some(t) = tag {
            name = format!("{name}:{t}");
        }
        let idx = TarIndex::scan(file)?;
        Ok(OciArchiveSource(LayoutReader::new(idx, tag, name, "archive")?))
    }
}

impl Source for OciArchiveSource {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn root_manifest(&self) -> Result<RawManifest, TransportError> {
        self.0.root_manifest()
    }
    fn open_blob(&self, digest: &Digest, size: u64) -> Result<Box<dyn Read + Send + '_>, TransportError> {
        self.0.open_blob(digest, size)
    }
}

/// `oci-archive:` as a sink.
pub struct OciArchiveSink {
    name: String,
    tar: TarFileWriter,
    written: HashSet<Digest>,
    tag: Option<String>,
    index: Option<Vec<u8>>,
}

impl OciArchiveSink {
    /// Starts the archive that will replace `file`.
    pub fn create(file: &Path, tag: Option<String>) -> Result<Self, TransportError> {
        let mut tar = TarFileWriter::create(file)?;
        tar.add_bytes("oci-layout", layout_marker())?;
        tar.add_dir("blobs")?;
        tar.add_dir("blobs/sha256")?;
        Ok(OciArchiveSink {
            name: format!("oci-archive:{}", file.display()),
            tar,
            written: HashSet::new(),
            tag,
            index: None,
        })
    }
}

impl Sink for OciArchiveSink {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn layer_form(&self) -> LayerForm {
        LayerForm::Compressed
    }
    fn has_blob(&mut self, digest: &Digest, _size: u64) -> Result<bool, TransportError> {
        Ok(self.written.contains(digest))
    }
    fn put_blob(
        &mut self,
        _kind: BlobKind,
        digest: &Digest,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), TransportError> {
        if self.written.insert(*digest) {
            self.tar.add_reader(&blob_path(digest), size, data)?;
        }
        Ok(())
    }
    fn put_blob_with(
        &mut self,
        produce: &mut dyn FnMut(&mut (dyn io::Write + Send)) -> io::Result<Encoded>,
    ) -> Result<Encoded, TransportError> {
        // A produced blob that turns out to exist already stays as a harmless duplicate
        // member with the same content; readers take either copy.
        let (enc, _) = self.tar.add_produced(produce, |e: &Encoded| blob_path(&e.digest))?;
        self.written.insert(enc.digest);
        Ok(enc)
    }
    fn put_manifest(&mut self, image: &FinalImage) -> Result<(), TransportError> {
        let m = &image.manifest;
        self.put_blob(BlobKind::Config, &m.digest, m.bytes.len() as u64, &mut &m.bytes[..])?;
        let idx = merged_index(None, image, self.tag.as_deref())
            .map_err(|why| TransportError::Malformed { image: self.name.clone(), why })?;
        self.index = Some(idx);
        Ok(())
    }
    fn commit(mut self: Box<Self>) -> Result<(), TransportError> {
        let idx = self.index.take().ok_or_else(|| TransportError::Malformed {
            image: self.name.clone(),
            why: "commit before put_manifest".into(),
        })?;
        self.tar.add_bytes("index.json", &idx)?;
        self.tar.finish()
    }
}
