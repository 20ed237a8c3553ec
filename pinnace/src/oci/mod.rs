//! The image model: digests, media types, platforms, and the parsed form of manifests,
//! indexes and configs (on `oci-spec`'s types).
//!
//! Raw bytes are always kept next to the parsed value: a manifest's digest is the digest
//! of the bytes the source served, never of a re-serialisation, so copying without
//! changing layers keeps the digest users pinned.

pub mod digest;
pub mod media;
pub mod platform;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;

pub use digest::{Digest, DigestError, Hasher, HashingWriter};
pub use media::ManifestKind;
pub use platform::Platform;

/// Errors in image metadata: digests, manifests, indexes, configs, platforms.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A digest string was not a strict sha256 digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// A JSON document did not parse.
    #[error("{what} is not valid JSON for its kind: {source}")]
    Json {
        /// Which document (e.g. "manifest sha256:...").
        what: String,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// Docker schema1 manifests are not supported.
    #[error("{what} is a Docker schema1 manifest, which pinnace does not support; convert it first, e.g. `skopeo copy --format v2s2 docker://IMAGE docker-archive:image.tar`, or rebuild and push it with a current Docker")]
    Schema1 {
        /// Which manifest.
        what: String,
    },
    /// The document is neither an image manifest nor an index.
    #[error("{what}: media type {media_type:?} is not an image manifest or index")]
    NotAManifest {
        /// Which document.
        what: String,
        /// Its media type.
        media_type: String,
    },
    /// A `--platform` value did not parse.
    #[error("platform {0:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8")]
    Platform(String),
    /// No manifest in an index matches the requested platform.
    #[error("no image for platform {wanted} in index {index}; it has: {available}; choose one with --platform")]
    NoPlatform {
        /// The platform asked for.
        wanted: String,
        /// The index digest.
        index: Digest,
        /// The platforms it offers.
        available: String,
    },
    /// Indexes nested too deep (a loop, or a hostile index).
    #[error("index {0} nests other indexes more than 4 levels deep")]
    TooDeep(Digest),
    /// The config's diff_ids do not pair with the manifest's layers.
    #[error("config {config} lists {diff_ids} diff_ids but manifest {manifest} has {layers} layers")]
    DiffIdCount {
        /// Config digest.
        config: Digest,
        /// Manifest digest.
        manifest: Digest,
        /// diff_id count.
        diff_ids: usize,
        /// Layer count.
        layers: usize,
    },
}

/// A manifest or index exactly as served: bytes, media type and the digest of the bytes.
#[derive(Debug, Clone)]
pub struct RawManifest {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Its media type (declared in the document, or by the transport, or inferred).
    pub media_type: String,
    /// sha256 of `bytes`.
    pub digest: Digest,
}

/// A parsed manifest document.
#[derive(Debug, Clone)]
pub enum Manifest {
    /// An image manifest.
    Image(Box<ImageManifest>),
    /// An index / manifest list.
    Index(Box<ImageIndex>),
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<serde_json::Value>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
    layers: Option<serde::de::IgnoredAny>,
    #[serde(rename = "fsLayers")]
    fs_layers: Option<serde::de::IgnoredAny>,
}

impl RawManifest {
    /// Wraps served bytes, working out the media type: the document's own `mediaType`,
    /// else the transport's `declared` one, else its shape (`manifests` => index).
    pub fn new(bytes: Vec<u8>, declared: Option<&str>) -> Result<RawManifest, OciError> {
        let digest = Digest::of(&bytes);
        let what = format!("manifest {digest}");
        let probe: Probe =
            serde_json::from_slice(&bytes).map_err(|source| OciError::Json { what: what.clone(), source })?;
        if probe.fs_layers.is_some() || probe.schema_version.as_ref().and_then(|v| v.as_u64()) == Some(1) {
            return Err(OciError::Schema1 { what });
        }
        let media_type = match (probe.media_type, declared) {
            (Some(m), _) if !m.is_empty() => m,
            (_, Some(d)) if media::manifest_kind(d).is_some() => d.to_string(),
            _ if probe.manifests.is_some() => media::OCI_INDEX.to_string(),
            _ if probe.layers.is_some() => media::OCI_MANIFEST.to_string(),
            (_, d) => return Err(OciError::NotAManifest { what, media_type: d.unwrap_or("").to_string() }),
        };
        Ok(RawManifest { bytes, media_type, digest })
    }

    /// Parses the document according to its media type.
    pub fn parse(&self) -> Result<Manifest, OciError> {
        let what = format!("manifest {}", self.digest);
        let json = |source| OciError::Json { what: what.clone(), source };
        match media::manifest_kind(&self.media_type) {
            Some(ManifestKind::Image) => {
                Ok(Manifest::Image(Box::new(serde_json::from_slice(&self.bytes).map_err(json)?)))
            }
            Some(ManifestKind::Index) => {
                Ok(Manifest::Index(Box::new(serde_json::from_slice(&self.bytes).map_err(json)?)))
            }
            Some(ManifestKind::Schema1) => Err(OciError::Schema1 { what }),
            None => Err(OciError::NotAManifest { what, media_type: self.media_type.clone() }),
        }
    }
}

/// Picks the manifest for `wanted` (the host's platform when `None`) from an index.
/// An index with one entry and no platform is taken as it is.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    index_digest: &Digest,
    wanted: Option<&Platform>,
) -> Result<&'a Descriptor, OciError> {
    let host = Platform::host();
    let want = wanted.unwrap_or(&host);
    let candidates: Vec<&Descriptor> =
        index.manifests().iter().filter(|d| media::manifest_kind(d.media_type().as_ref()).is_some()).collect();
    if wanted.is_none() && candidates.len() == 1 && candidates[0].platform().is_none() {
        return Ok(candidates[0]);
    }
    for d in &candidates {
        if let Some(p) = d.platform() {
            if want.matches(&p.os().to_string(), &p.architecture().to_string(), p.variant().as_deref()) {
                return Ok(d);
            }
        }
    }
    let available: Vec<String> = candidates
        .iter()
        .map(|d| match d.platform() {
            Some(p) => {
                let mut s = format!("{}/{}", p.os(), p.architecture());
                if let Some(v) = p.variant() {
                    s.push('/');
                    s.push_str(v);
                }
                s
            }
            None => "(no platform)".into(),
        })
        .collect();
    Err(OciError::NoPlatform {
        wanted: want.to_string(),
        index: *index_digest,
        available: if available.is_empty() { "nothing".into() } else { available.join(", ") },
    })
}

/// An image config exactly as stored, with its parsed form.
#[derive(Debug, Clone)]
pub struct RawConfig {
    /// The bytes (their digest is the image ID).
    pub bytes: Vec<u8>,
    /// sha256 of `bytes`.
    pub digest: Digest,
    /// The parsed config.
    pub parsed: ImageConfiguration,
}

impl RawConfig {
    /// Parses config bytes.
    pub fn new(bytes: Vec<u8>) -> Result<RawConfig, OciError> {
        let digest = Digest::of(&bytes);
        let parsed = serde_json::from_slice(&bytes)
            .map_err(|source| OciError::Json { what: format!("config {digest}"), source })?;
        Ok(RawConfig { bytes, digest, parsed })
    }

    /// The layers' diff_ids, strictly parsed.
    pub fn diff_ids(&self) -> Result<Vec<Digest>, OciError> {
        self.parsed.rootfs().diff_ids().iter().map(|s| Ok(s.parse::<Digest>()?)).collect()
    }
}

/// Serialises any value as canonical JSON: object keys sorted, no whitespace.
///
/// oci-spec keeps annotations and labels in `HashMap`s, whose iteration order changes
/// from run to run; going through `serde_json::Value` (a sorted map) makes every
/// document pinnace writes byte-for-byte reproducible.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let v = serde_json::to_value(value).expect("image documents always serialise");
    serde_json::to_vec(&v).expect("a JSON value always serialises")
}

/// A strict digest from an oci-spec descriptor.
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest, OciError> {
    Ok(Digest::try_from(d.digest())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_inference_and_schema1() {
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;
        let raw = RawManifest::new(m.to_vec(), None).unwrap();
        assert_eq!(raw.media_type, media::OCI_MANIFEST);
        assert!(matches!(raw.parse().unwrap(), Manifest::Image(_)));
        let idx = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(RawManifest::new(idx.to_vec(), None).unwrap().media_type, media::OCI_INDEX);
        let s1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        let err = RawManifest::new(s1.to_vec(), None).unwrap_err();
        assert!(err.to_string().contains("skopeo copy --format v2s2"), "{err}");
        assert!(RawManifest::new(b"{".to_vec(), None).is_err());
        assert!(RawManifest::new(b"{}".to_vec(), None).is_err());
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let mut m = std::collections::HashMap::new();
        for k in ["z", "a", "m", "b"] {
            m.insert(k.to_string(), 1);
        }
        assert_eq!(canonical_json(&m), br#"{"a":1,"b":1,"m":1,"z":1}"#);
    }

    proptest::proptest! {
        #[test]
        fn manifest_and_config_parsers_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(raw) = RawManifest::new(bytes.clone(), Some(media::OCI_MANIFEST)) {
                let _ = raw.parse();
            }
            if let Ok(c) = RawConfig::new(bytes) {
                let _ = c.diff_ids();
            }
        }

        #[test]
        fn json_shaped_input_never_panics(s in r#"\{("[a-zA-Z]{1,12}":("[a-z0-9:./+]{0,80}"|[0-9]{1,5}|\[\]|\{\}|null),?){0,6}\}"#) {
            if let Ok(raw) = RawManifest::new(s.clone().into_bytes(), None) {
                let _ = raw.parse();
            }
            let _ = RawConfig::new(s.into_bytes());
        }
    }
}
