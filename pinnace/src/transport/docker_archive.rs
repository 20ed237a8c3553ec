//! `docker-archive:FILE[:NAME:TAG]`: the format of `docker save` / `podman save`.
//!
//! The archive holds `manifest.json` (a list of `{Config, RepoTags, Layers}`), the config
//! file and one tar per layer, uncompressed. It has no registry manifest: the source
//! synthesises a Docker v2.2 manifest whose layer digests are the diff_ids (or, for the
//! rare compressed layer file, the digest of the file), so layers and config keep their
//! identity through every conversion while the manifest digest is necessarily new.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::blob::METADATA_LIMIT;
use crate::layer::{Compression, Encoded};
use crate::oci::{self, media, Digest, Hasher, RawConfig, RawManifest};

use super::archive::{TarFileWriter, TarIndex};
use super::{BlobKind, FinalImage, LayerForm, Sink, Source, TransportError};

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// `docker-archive:` as a source.
pub struct DockerArchiveSource {
    name: String,
    index: TarIndex,
    manifest: RawManifest,
    members: HashMap<Digest, String>,
}

impl DockerArchiveSource {
    /// Indexes the archive and synthesises the manifest of the image `name` names (or of
    /// the only image in it).
    pub fn open(file: &Path, name: Option<&str>) -> Result<Self, TransportError> {
        let mut image = format!("docker-archive:{}", file.display());
        if let Some(n) = name {
            image = format!("{image}:{n}");
        }
        let malformed = |why: String| TransportError::Malformed { image: image.clone(), why };
        let index = TarIndex::scan(file)?;
        let bytes = index.read_small("manifest.json", METADATA_LIMIT)?.ok_or_else(|| {
            malformed("no manifest.json: not a docker archive (an OCI archive? use oci-archive:)".into())
        })?;
        let entries: Vec<Entry> =
            serde_json::from_slice(&bytes).map_err(|e| malformed(format!("manifest.json: {e}")))?;
        let entry = match name {
            Some(n) => {
                let want = with_tag(n);
                entries.iter().find(|e| e.repo_tags.iter().flatten().any(|t| *t == want || t == n))
            }
            None if entries.len() == 1 => entries.first(),
            None => None,
        };
        let Some(entry) = entry else {
            let tags: Vec<&String> = entries.iter().flat_map(|e| e.repo_tags.iter().flatten()).collect();
            return Err(TransportError::NotFound {
                image,
                why: format!(
                    "the archive holds {} images{}; name one as docker-archive:FILE:NAME:TAG (tags: {:?})",
                    entries.len(),
                    if name.is_some() { ", none with that tag" } else { "" },
                    tags
                ),
            });
        };
        let config_bytes = index
            .read_small(&entry.config, METADATA_LIMIT)?
            .ok_or_else(|| malformed(format!("config {} named by manifest.json is missing", entry.config)))?;
        let config =
            RawConfig::new(config_bytes).map_err(|source| TransportError::Oci { image: image.clone(), source })?;
        let diff_ids = config.diff_ids().map_err(|source| TransportError::Oci { image: image.clone(), source })?;
        if diff_ids.len() != entry.layers.len() {
            return Err(malformed(format!(
                "config lists {} diff_ids but manifest.json {} layers",
                diff_ids.len(),
                entry.layers.len()
            )));
        }
        let mut members = HashMap::new();
        members.insert(config.digest, entry.config.clone());
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
            let (size, mut r) = index
                .open(path)
                .map_err(TransportError::io(file))?
                .ok_or_else(|| malformed(format!("layer {path} named by manifest.json is missing")))?;
            let mut head = [0u8; 4];
            let n = read_up_to(&mut r, &mut head).map_err(TransportError::io(file))?;
            let compression = Compression::detect(&head[..n]);
            let digest = if compression == Compression::None {
                *diff_id
            } else {
                // A compressed layer file: its blob digest is not recorded anywhere.
                let mut h = Hasher::new();
                h.update(&head[..n]);
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let k = r.read(&mut buf).map_err(TransportError::io(file))?;
                    if k == 0 {
                        break;
                    }
                    h.update(&buf[..k]);
                }
                h.finish().0
            };
            members.insert(digest, path.clone());
            let mt = match compression {
                Compression::None => media::DOCKER_LAYER,
                Compression::Gzip => media::DOCKER_LAYER_GZIP,
                Compression::Zstd => media::OCI_LAYER_ZSTD,
            };
            layers.push(json!({"mediaType": mt, "size": size, "digest": digest.to_string()}));
        }
        let m = json!({
            "schemaVersion": 2,
            "mediaType": media::DOCKER_MANIFEST,
            "config": {"mediaType": media::DOCKER_CONFIG, "size": config.bytes.len(), "digest": config.digest.to_string()},
            "layers": layers,
        });
        let manifest = RawManifest::new(oci::canonical_json(&m), Some(media::DOCKER_MANIFEST))
            .map_err(|source| TransportError::Oci { image: image.clone(), source })?;
        Ok(DockerArchiveSource { name: image, index, manifest, members })
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// `NAME` with `:latest` added when it has no tag (docker load wants `name:tag`).
fn with_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

impl Source for DockerArchiveSource {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn root_manifest(&self) -> Result<RawManifest, TransportError> {
        Ok(self.manifest.clone())
    }
    fn open_blob(&self, digest: &Digest, _size: u64) -> Result<Box<dyn Read + Send + '_>, TransportError> {
        let missing = || TransportError::MissingBlob { image: self.name.clone(), digest: *digest, place: "archive" };
        let path = self.members.get(digest).ok_or_else(missing)?;
        let (_, r) = self.index.open(path).map_err(TransportError::io(self.index.path()))?.ok_or_else(missing)?;
        Ok(Box::new(io::BufReader::with_capacity(256 << 10, r)))
    }
}

/// `docker-archive:` as a sink: what `docker load` and `podman load` read.
pub struct DockerArchiveSink {
    name: String,
    /// The archive's directory (for spool files).
    dir: PathBuf,
    repo_tag: Option<String>,
    tar: TarFileWriter,
    written: HashSet<String>,
    manifest: Option<Vec<u8>>,
}

impl DockerArchiveSink {
    /// Starts the archive that will replace `file`; `repo_tag` is recorded in RepoTags.
    pub fn create(file: &Path, repo_tag: Option<String>) -> Result<Self, TransportError> {
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(DockerArchiveSink {
            name: format!("docker-archive:{}", file.display()),
            dir,
            repo_tag: repo_tag.map(|t| with_tag(&t)),
            tar: TarFileWriter::create(file)?,
            written: HashSet::new(),
            manifest: None,
        })
    }
}

fn member(kind: BlobKind, d: &Digest) -> String {
    match kind {
        BlobKind::Layer => format!("{}.tar", d.hex()),
        BlobKind::Config => format!("{}.json", d.hex()),
    }
}

impl Sink for DockerArchiveSink {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn layer_form(&self) -> LayerForm {
        LayerForm::Uncompressed
    }
    fn spool_dir(&self) -> Option<PathBuf> {
        Some(self.dir.clone())
    }
    fn has_blob(&mut self, digest: &Digest, _size: u64) -> Result<bool, TransportError> {
        Ok(self.written.contains(&member(BlobKind::Layer, digest))
            || self.written.contains(&member(BlobKind::Config, digest)))
    }
    fn put_blob(
        &mut self,
        kind: BlobKind,
        digest: &Digest,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), TransportError> {
        let m = member(kind, digest);
        if self.written.insert(m.clone()) {
            self.tar.add_reader(&m, size, data)?;
        }
        Ok(())
    }
    fn put_blob_with(
        &mut self,
        produce: &mut dyn FnMut(&mut (dyn io::Write + Send)) -> io::Result<Encoded>,
    ) -> Result<Encoded, TransportError> {
        let (enc, m) = self.tar.add_produced(produce, |e: &Encoded| member(BlobKind::Layer, &e.diff_id))?;
        self.written.insert(m);
        Ok(enc)
    }
    fn put_manifest(&mut self, image: &FinalImage) -> Result<(), TransportError> {
        let entry = Entry {
            config: member(BlobKind::Config, &image.config.0),
            repo_tags: Some(self.repo_tag.iter().cloned().collect()),
            layers: image.layers.iter().map(|(_, _, diff_id)| member(BlobKind::Layer, diff_id)).collect(),
        };
        self.manifest = Some(serde_json::to_vec(&[entry]).expect("manifest.json serialises"));
        Ok(())
    }
    fn commit(mut self: Box<Self>) -> Result<(), TransportError> {
        let m = self.manifest.take().ok_or_else(|| TransportError::Malformed {
            image: self.name.clone(),
            why: "commit before put_manifest".into(),
        })?;
        self.tar.add_bytes("manifest.json", &m)?;
        self.tar.finish()
    }
}
