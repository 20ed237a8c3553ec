//! `oci:DIR[:TAG]`: the OCI image layout (image-spec `image-layout.md`), on a directory.
//!
//! The layout logic (index.json, tag selection, blob paths) is written once over
//! [`LayoutFiles`] and shared with `oci-archive:`, which is the same layout inside a tar.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::blob::{file_matches, read_verified, AtomicFile, DirectFile, METADATA_LIMIT};
use crate::layer::Encoded;
use crate::oci::{self, media, Digest, RawManifest};

use super::{BlobKind, ConcurrentBlobs, FinalImage, LayerForm, Presence, Sink, Source, TransportError};

/// The annotation that names a manifest in index.json.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Read access to the files of a layout, wherever they are stored.
pub trait LayoutFiles: Send + Sync {
    /// Reads a small file (index.json, oci-layout); `None` when absent.
    fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>, TransportError>;
    /// Opens a file; `None` when absent.
    fn open(&self, name: &str) -> Result<Option<Box<dyn Read + Send + '_>>, TransportError>;
}

/// A directory on disk.
pub struct DirFiles(pub PathBuf);

impl LayoutFiles for DirFiles {
    fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>, TransportError> {
        let p = self.0.join(name);
        match fs::metadata(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TransportError::Io { path: p, source: e }),
            Ok(m) if m.len() > METADATA_LIMIT => {
                return Err(TransportError::Malformed {
                    image: self.0.display().to_string(),
                    why: format!("{name} is larger than {METADATA_LIMIT} bytes"),
                })
            }
            Ok(_) => {}
        }
        fs::read(&p).map(Some).map_err(TransportError::io(p))
    }
    fn open(&self, name: &str) -> Result<Option<Box<dyn Read + Send + '_>>, TransportError> {
        let p = self.0.join(name);
        match fs::File::open(&p) {
            Ok(f) => Ok(Some(Box::new(io::BufReader::with_capacity(256 << 10, f)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TransportError::Io { path: p, source: e }),
        }
    }
}

/// The path of a blob inside a layout.
pub fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Reads an OCI layout from any [`LayoutFiles`].
pub struct LayoutReader<F: LayoutFiles> {
    files: F,
    tag: Option<String>,
    name: String,
    place: &'static str,
}

impl<F: LayoutFiles> LayoutReader<F> {
    /// Wraps `files`; checks the `oci-layout` marker.
    pub fn new(files: F, tag: Option<&str>, name: String, place: &'static str) -> Result<Self, TransportError> {
        let Some(marker) = files.read_small("oci-layout")? else {
            return Err(TransportError::NotFound {
                image: name,
                why: "not an OCI image layout (no oci-layout file)".into(),
            });
        };
        let v: Value = serde_json::from_slice(&marker)
            .map_err(|e| TransportError::Malformed { image: name.clone(), why: format!("oci-layout: {e}") })?;
        if v.get("imageLayoutVersion").and_then(Value::as_str).is_none() {
            return Err(TransportError::Malformed { image: name, why: "oci-layout has no imageLayoutVersion".into() });
        }
        Ok(LayoutReader { files, tag: tag.map(str::to_string), name, place })
    }

    /// The names (ref.name annotations) in index.json.
    pub fn tags(&self) -> Result<Vec<String>, TransportError> {
        let idx = self.index()?;
        Ok(idx.manifests().iter().filter_map(|d| d.annotations().as_ref()?.get(REF_NAME).cloned()).collect())
    }

    fn index(&self) -> Result<oci_spec::image::ImageIndex, TransportError> {
        let bytes = self.files.read_small("index.json")?.ok_or_else(|| TransportError::NotFound {
            image: self.name.clone(),
            why: "the layout has no index.json".into(),
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| TransportError::Malformed { image: self.name.clone(), why: format!("index.json: {e}") })
    }
}

impl<F: LayoutFiles> Source for LayoutReader<F> {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn root_manifest(&self) -> Result<RawManifest, TransportError> {
        let idx = self.index()?;
        let tag_of = |d: &oci_spec::image::Descriptor| d.annotations().as_ref().and_then(|a| a.get(REF_NAME)).cloned();
        let chosen = match &self.tag {
            Some(t) => idx.manifests().iter().find(|d| tag_of(d).as_deref() == Some(t.as_str())),
            None if idx.manifests().len() == 1 => idx.manifests().first(),
            None => None,
        };
        let Some(desc) = chosen else {
            let tags: Vec<String> = idx
                .manifests()
                .iter()
                .map(|d| tag_of(d).unwrap_or_else(|| format!("(untagged {})", d.digest())))
                .collect();
            let why = match &self.tag {
                Some(t) => format!(
                    "no image tagged {t:?}; the layout has: {}",
                    if tags.is_empty() { "nothing".into() } else { tags.join(", ") }
                ),
                None if tags.is_empty() => "the layout's index.json lists no images".into(),
                None => format!("the layout holds {} images; name one with :TAG ({})", tags.len(), tags.join(", ")),
            };
            return Err(TransportError::NotFound { image: self.name.clone(), why });
        };
        let image = self.name.clone();
        let digest =
            oci::descriptor_digest(desc).map_err(|source| TransportError::Oci { image: image.clone(), source })?;
        let raw = self.open_blob(&digest, desc.size())?;
        let bytes = read_verified(raw, digest, desc.size(), METADATA_LIMIT).map_err(|source| TransportError::Blob {
            image: image.clone(),
            digest,
            source,
        })?;
        RawManifest::new(bytes, Some(desc.media_type().as_ref()))
            .map_err(|source| TransportError::Oci { image, source })
    }

    fn open_blob(&self, digest: &Digest, _size: u64) -> Result<Box<dyn Read + Send + '_>, TransportError> {
        self.files.open(&blob_path(digest))?.ok_or_else(|| TransportError::MissingBlob {
            image: self.name.clone(),
            digest: *digest,
            place: self.place,
        })
    }
}

/// `oci:DIR[:TAG]` as a source.
pub type LayoutSource = LayoutReader<DirFiles>;

impl LayoutReader<DirFiles> {
    /// Opens the layout in `dir`.
    pub fn open(dir: &Path, tag: Option<&str>) -> Result<Self, TransportError> {
        let mut name = format!("oci:{}", dir.display());
        if let Some(t) = tag {
            name = format!("{name}:{t}");
        }
        if !dir.is_dir() {
            return Err(TransportError::NotFound { image: name, why: "no such directory".into() });
        }
        LayoutReader::new(DirFiles(dir.to_path_buf()), tag, name, "layout")
    }
}

/// index.json after adding `img` under `tag`: other entries are kept; an entry with the
/// same tag (or, untagged, the same digest and no tag) is replaced. Unknown fields of an
/// existing index are kept.
pub fn merged_index(existing: Option<&[u8]>, img: &FinalImage, tag: Option<&str>) -> Result<Vec<u8>, String> {
    let mut idx: Value = match existing {
        Some(b) => serde_json::from_slice(b).map_err(|e| format!("existing index.json is not valid JSON: {e}"))?,
        None => json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": []}),
    };
    let obj = idx.as_object_mut().ok_or("existing index.json is not a JSON object")?;
    let manifests = obj.entry("manifests").or_insert_with(|| json!([]));
    let list = manifests.as_array_mut().ok_or("existing index.json: manifests is not an array")?;
    let digest = img.manifest.digest.to_string();
    list.retain(|d| {
        let name = d.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1"))).and_then(Value::as_str);
        match tag {
            Some(t) => name != Some(t),
            None => !(name.is_none() && d.get("digest").and_then(Value::as_str) == Some(&digest)),
        }
    });
    let mut entry = json!({
        "mediaType": img.manifest.media_type,
        "digest": digest,
        "size": img.manifest.bytes.len(),
    });
    if let Some(t) = tag {
        entry["annotations"] = json!({ REF_NAME: t });
    }
    if let Some(p) = &img.platform {
        entry["platform"] = json!({"os": p.os, "architecture": p.architecture});
        if let Some(v) = &p.variant {
            entry["platform"]["variant"] = json!(v);
        }
    }
    list.push(entry);
    Ok(oci::canonical_json(&idx))
}

/// `oci:DIR[:TAG]` as a sink. Blobs land in `blobs/sha256` as they come (each written
/// to a temp file in the layout, fsynced and renamed, so a blob file is always complete);
/// index.json is replaced atomically at commit, so the layout only ever shows complete
/// images. A layout that does not exist yet is built in a hidden sibling directory
/// (`.DIR.*.pinnace-tmp`) renamed to DIR at commit, so a failed or killed copy never
/// leaves a half-written layout at DIR.
pub struct LayoutSink {
    dir: PathBuf,
    /// Where blobs and index.json are written: `dir` itself, or the staging directory.
    work: PathBuf,
    staging: Option<Staging>,
    tag: Option<String>,
    image: Option<FinalImage>,
}

/// A new layout's staging directory, removed unless [`Staging::publish`] renamed it.
struct Staging(Option<PathBuf>);

impl Staging {
    /// Creates `.NAME.pidPID.N.pinnace-tmp` beside `dir` (with the umask's permissions, like
    /// any directory the user creates).
    fn create(dir: &Path) -> io::Result<Staging> {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent)?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "layout".into());
        for i in 0u32.. {
            let p = parent.join(format!(".{name}.pid{}.{i}{}", std::process::id(), crate::blob::TMP_SUFFIX));
            match fs::create_dir(&p) {
                Ok(()) => return Ok(Staging(Some(p))),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && i < 1000 => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    fn path(&self) -> &Path {
        self.0.as_deref().expect("staging path present until published")
    }

    /// Renames the staging directory to `dir` and fsyncs the parent.
    fn publish(mut self, dir: &Path) -> io::Result<()> {
        let p = self.0.take().expect("published once");
        if let Err(e) = fs::rename(&p, dir) {
            let _ = fs::remove_dir_all(&p);
            return Err(e);
        }
        if let Some(parent) = dir.parent() {
            let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
            if let Ok(d) = fs::File::open(parent) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

impl LayoutSink {
    /// Prepares to write into `dir` (created at commit if missing).
    pub fn create(dir: &Path, tag: Option<String>) -> Result<LayoutSink, TransportError> {
        // Leftovers of a killed earlier run (temp blobs, staging dirs) go first.
        crate::blob::sweep_stale(dir);
        if let Some(parent) = dir.parent() {
            crate::blob::sweep_stale(if parent.as_os_str().is_empty() { Path::new(".") } else { parent });
        }
        let (work, staging) = if dir.exists() {
            if dir.join("index.json").exists() && !dir.join("oci-layout").exists() {
                return Err(TransportError::Malformed {
                    image: format!("oci:{}", dir.display()),
                    why: "has index.json but no oci-layout: refusing to write into something that is not an OCI layout"
                        .into(),
                });
            }
            (dir.to_path_buf(), None)
        } else {
            let s = Staging::create(dir).map_err(TransportError::io(dir))?;
            (s.path().to_path_buf(), Some(s))
        };
        let blobs = work.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(TransportError::io(&blobs))?;
        Ok(LayoutSink { dir: dir.to_path_buf(), work, staging, tag, image: None })
    }

    fn temp(&self) -> Result<AtomicFile, TransportError> {
        // Temp files live at the layout's root, not in blobs/sha256, so a killed copy
        // never leaves a non-digest name among the blobs.
        AtomicFile::create(&self.work.join("pending-blob")).map_err(TransportError::io(&self.dir))
    }

    fn write_blob(&self, d: &Digest, data: &[u8]) -> Result<(), TransportError> {
        let target = self.work.join(blob_path(d));
        if file_matches(&target, *d, data.len() as u64) {
            return Ok(());
        }
        let mut f = self.temp()?;
        f.set_target(target.clone());
        io::Write::write_all(&mut f, data).map_err(TransportError::io(&target))?;
        f.commit().map_err(TransportError::io(target))
    }
}

impl ConcurrentBlobs for LayoutSink {
    fn presence(&self, digest: &Digest, size: u64) -> Result<Presence, TransportError> {
        let there = file_matches(&self.work.join(blob_path(digest)), *digest, size);
        Ok(if there { Presence::Present } else { Presence::Missing })
    }

    fn put_blob(&self, _kind: BlobKind, digest: &Digest, size: u64, data: &mut dyn Read) -> Result<(), TransportError> {
        let target = self.work.join(blob_path(digest));
        // Large blobs are written with direct I/O (see `DirectFile`), read straight into
        // its buffer.
        let mut f = DirectFile::create(&self.work.join("pending-blob")).map_err(TransportError::io(&self.dir))?;
        f.set_target(target.clone());
        let n = f.fill_from(data).map_err(|source| TransportError::Blob {
            image: self.describe(),
            digest: *digest,
            source,
        })?;
        if n != size {
            return Err(TransportError::Blob {
                image: self.describe(),
                digest: *digest,
                source: io::Error::new(io::ErrorKind::InvalidData, format!("expected {size} bytes, got {n}")),
            });
        }
        f.commit().map_err(TransportError::io(target))
    }

    fn put_blob_with(
        &self,
        produce: &mut dyn FnMut(&mut (dyn io::Write + Send)) -> io::Result<Encoded>,
    ) -> Result<Encoded, TransportError> {
        let mut f = self.temp()?;
        let enc = produce(&mut f).map_err(TransportError::io(&self.dir))?;
        let target = self.work.join(blob_path(&enc.digest));
        f.set_target(target.clone());
        f.commit().map_err(TransportError::io(target))?;
        Ok(enc)
    }
}

impl Sink for LayoutSink {
    fn describe(&self) -> String {
        format!("oci:{}", self.dir.display())
    }

    fn layer_form(&self) -> LayerForm {
        LayerForm::Compressed
    }

    fn has_blob(&mut self, digest: &Digest, size: u64) -> Result<bool, TransportError> {
        Ok(ConcurrentBlobs::presence(self, digest, size)?.is_there())
    }

    fn put_blob(
        &mut self,
        kind: BlobKind,
        digest: &Digest,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), TransportError> {
        ConcurrentBlobs::put_blob(self, kind, digest, size, data)
    }

    fn put_blob_with(
        &mut self,
        produce: &mut dyn FnMut(&mut (dyn io::Write + Send)) -> io::Result<Encoded>,
    ) -> Result<Encoded, TransportError> {
        ConcurrentBlobs::put_blob_with(self, produce)
    }

    /// Each blob is its own temp file renamed into place, so several can be written at
    /// once (a pull from a registry downloads them in parallel).
    fn concurrent_blobs(&self) -> Option<&dyn ConcurrentBlobs> {
        Some(self)
    }

    fn put_manifest(&mut self, image: &FinalImage) -> Result<(), TransportError> {
        self.write_blob(&image.manifest.digest, &image.manifest.bytes)?;
        self.image = Some(image.clone());
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), TransportError> {
        let img = self.image.as_ref().ok_or_else(|| TransportError::Malformed {
            image: self.describe(),
            why: "commit before put_manifest".into(),
        })?;
        let marker = self.work.join("oci-layout");
        if !marker.exists() {
            crate::blob::write_atomic(&marker, LAYOUT_FILE).map_err(TransportError::io(&marker))?;
        }
        let index_path = self.work.join("index.json");
        let existing = match fs::read(&index_path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(TransportError::Io { path: index_path, source: e }),
        };
        let bytes = merged_index(existing.as_deref(), img, self.tag.as_deref())
            .map_err(|why| TransportError::Malformed { image: self.describe(), why })?;
        crate::blob::write_atomic(&index_path, &bytes).map_err(TransportError::io(index_path))?;
        match self.staging.take() {
            Some(s) => s.publish(&self.dir).map_err(TransportError::io(&self.dir)),
            None => Ok(()),
        }
    }
}

/// The marker file's content.
pub fn layout_marker() -> &'static [u8] {
    LAYOUT_FILE
}
