//! Images the registry tests need and the shared fixture lacks: several gzip layers (so
//! that a push has blobs to move at once) and multi-platform indexes. Layers are tars of
//! one file of pseudo-random bytes ([`crate::util::Rng`]), gzipped with flate2, written
//! into an OCI layout; everything is computed here, nothing is read back with pinnace.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use crate::tarcraft::Tar;
use crate::util::{sha256_hex, Rng};

/// A descriptor: media type, digest, size.
#[derive(Debug, Clone)]
pub struct Desc {
    pub media_type: &'static str,
    pub digest: String,
    pub size: usize,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn put(dir: &Path, bytes: &[u8], media_type: &'static str) -> Desc {
    let hex = sha256_hex(bytes);
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    Desc { media_type, digest: format!("sha256:{hex}"), size: bytes.len() }
}

fn desc_json(d: &Desc) -> Value {
    json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size})
}

/// An image of `layers` gzip layers of `layer_bytes` random bytes each (seeded by
/// `seed`) for `linux/ARCH`, written into the layout at `dir`. Returns its manifest.
pub fn image(dir: &Path, seed: u64, layers: usize, layer_bytes: usize, arch: &str) -> Desc {
    let mut rng = Rng::new(seed);
    let mut blobs = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..layers {
        let mut data = vec![0u8; layer_bytes];
        rng.fill(&mut data);
        let tar = Tar::new().file(format!("data/{seed}-{i}").as_bytes(), &data).end().bytes();
        diff_ids.push(format!("sha256:{}", sha256_hex(&tar)));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        blobs.push(put(dir, &gz.finish().unwrap(), "application/vnd.oci.image.layer.v1.tar+gzip"));
    }
    let config = json!({
        "architecture": arch, "os": "linux",
        "config": {"Entrypoint": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = put(dir, &serde_json::to_vec(&config).unwrap(), "application/vnd.oci.image.config.v1+json");
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc_json(&config),
        "layers": blobs.iter().map(desc_json).collect::<Vec<_>>(),
    });
    put(dir, &serde_json::to_vec(&manifest).unwrap(), OCI_MANIFEST)
}

/// An index over `(manifest, arch)` pairs, written into the layout at `dir`.
pub fn index(dir: &Path, images: &[(Desc, &str)]) -> Desc {
    let manifests: Vec<Value> = images
        .iter()
        .map(|(d, arch)| {
            let mut v = desc_json(d);
            v["platform"] = json!({"architecture": arch, "os": "linux"});
            v
        })
        .collect();
    let idx = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    put(dir, &serde_json::to_vec(&idx).unwrap(), OCI_INDEX)
}

/// Tags `d` as `tag` in the layout's index.json (the only entry) and marks the layout.
/// Returns the reference `oci:DIR:TAG`.
pub fn tag(dir: &Path, d: &Desc, tag: &str) -> String {
    let mut v = desc_json(d);
    v["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let index = json!({"schemaVersion": 2, "manifests": [v]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    format!("oci:{}:{tag}", dir.display())
}
