//! `pinnace build`: the smallest runnable image from binaries and files.
//!
//! [`spec`] is what the user asks for; [`plan`] turns it into layers (ELF closures via
//! [`crate::elf`], extras via [`extras`]); [`build`] writes the layers with the one layer
//! writer into a private blob store, assembles config and manifest, and copies the
//! result to every destination through the generic [`crate::copy`], so every transport
//! works for builds too. The same inputs give the same manifest digest: layers are
//! deterministic, `created` is `SOURCE_DATE_EPOCH` or the epoch, documents are canonical
//! JSON, and nothing of the build machine (paths, mtimes, owners) is recorded.

pub mod cargo;
pub mod extras;
pub mod plan;
pub mod spec;
pub(crate) mod store;

use std::io;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::{json, Value};

use crate::copy::{copy_image, CopyOptions, CopyReport};
use crate::layer::{EncoderOptions, WriterError};
use crate::oci::{self, media, Digest, Platform, RawManifest};
use crate::transport::{self, Image, ImageRef, TransportError};
use store::{BlobStore, StoreError};

pub use plan::{Plan, PlannedLayer};
pub use spec::{BuildSpec, Layering, Placement};

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec is inconsistent or a value is malformed.
    #[error("{0}")]
    Spec(String),
    /// A host file could not be read. (The cause is the error's source, printed after
    /// the path by `{:#}`, not repeated in the message.)
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An extra could not be provided.
    #[error("extra {extra}: {why}")]
    Extra {
        /// Which extra.
        extra: &'static str,
        /// What is missing and what to do.
        why: String,
    },
    /// Libraries the binaries need are neither in the root nor supplied with `--file`.
    #[error("{missing}\nor supply each one with --file HOST_FILE:DIR/SONAME, DIR being a directory searched for it (e.g. /usr/lib)")]
    MissingLibraries {
        /// The resolver's list (sonames, who needs them, where they were looked for).
        missing: crate::elf::ElfError,
    },
    /// ELF analysis or closure resolution failed.
    #[error(transparent)]
    Elf(#[from] crate::elf::ElfError),
    /// Writing a layer failed.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// Reading the base or writing a destination failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Debian packages (`--deb`, `--preset`).
    #[error(transparent)]
    Deb(#[from] crate::deb::DebError),
}

impl From<StoreError> for BuildError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io { path, source } => BuildError::Io { path, source },
            StoreError::Writer(w) => BuildError::Writer(w),
        }
    }
}

/// One layer of the built image.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltLayer {
    /// What it holds.
    pub role: String,
    /// Blob digest.
    pub digest: Digest,
    /// Compressed size.
    pub size: u64,
    /// diff_id.
    pub diff_id: Digest,
    /// Uncompressed size.
    pub uncompressed_size: u64,
    /// Regular files in it (0 for base layers).
    pub files: usize,
}

/// What a build produced.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// Manifest digest of the image as built: OCI, gzip layers (plain layers when every
    /// destination stores plain layers). Docker archives and daemons record no manifest;
    /// each destination's own digest is in `destinations`.
    pub digest: Digest,
    /// Config digest (the image ID).
    pub config_digest: Digest,
    /// Platform.
    pub platform: String,
    /// Layers, bottom first, base image layers included (role "base image").
    pub layers: Vec<BuiltLayer>,
    /// Compressed size of layers and config.
    pub size: u64,
    /// Uncompressed size of the layers.
    pub uncompressed_size: u64,
    /// Extras added and why.
    pub extras: Vec<(String, String)>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// One copy report per destination.
    pub destinations: Vec<CopyReport>,
}

/// RFC 3339 time of `SOURCE_DATE_EPOCH` (or the epoch).
fn created() -> String {
    rfc3339(crate::layer::writer::source_date_epoch() as i64)
}

pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds the image `spec` describes and writes it to every destination in
/// `spec.tags` (and `load`, when given, into podman or docker under that name).
pub fn build(spec: &BuildSpec, load: Option<&ImageRef>, progress: bool) -> Result<BuildReport, BuildError> {
    let mut dests: Vec<ImageRef> = Vec::new();
    for t in &spec.tags {
        let r: ImageRef = t.parse()?;
        if dests.contains(&r) {
            return Err(BuildError::Spec(format!("destination {r} is given twice")));
        }
        dests.push(r);
    }
    dests.extend(load.cloned());
    if dests.is_empty() {
        return Err(BuildError::Spec("no destination: give -t REF (e.g. -t oci:out/app:1) or --load".into()));
    }
    if spec.binaries.is_empty() && spec.files.is_empty() && spec.dirs.is_empty() && spec.debian.is_empty() {
        return Err(BuildError::Spec("nothing to package: give --binary, --file, --dir, --deb or --preset".into()));
    }
    let plan = plan::plan(spec)?;
    let base_src = spec
        .base
        .as_deref()
        .map(|b| b.parse::<ImageRef>().map_err(BuildError::from).and_then(|r| Ok(transport::open_source(&r)?)))
        .transpose()?;
    let want_platform = spec
        .platform
        .as_deref()
        .map(str::parse::<Platform>)
        .transpose()
        .map_err(|e| BuildError::Spec(e.to_string()))?;
    if let (Some(w), Some(p)) = (&want_platform, &plan.platform) {
        if w.os != p.os || w.architecture != p.architecture {
            return Err(BuildError::Spec(format!("--platform {w} but the binaries are {p}")));
        }
    }
    let base_img = match &base_src {
        Some(s) => Some(Image::open(s.as_ref(), want_platform.as_ref().or(plan.platform.as_ref()))?),
        None => None,
    };

    let mut store = BlobStore::new("pinnace-build-")?;
    let mtime = crate::layer::writer::source_date_epoch();
    // Layers are stored gzipped, as OCI stores and registries keep them; when every
    // destination keeps plain layers (docker archives, podman, docker), they are stored
    // plain instead, rather than compressed here and decompressed again by the copy.
    let all_plain = dests.iter().all(|d| {
        matches!(d, ImageRef::DockerArchive { .. } | ImageRef::ContainersStorage { .. } | ImageRef::DockerDaemon { .. })
    });
    let layer_compression = if all_plain { crate::layer::Compression::None } else { crate::layer::Compression::Gzip };
    let enc = EncoderOptions { compression: layer_compression, ..Default::default() };
    let mut layers: Vec<BuiltLayer> = Vec::new();
    if let Some(b) = &base_img {
        for l in &b.layers {
            store.insert_base(l.digest);
            layers.push(BuiltLayer {
                role: "base image".into(),
                digest: l.digest,
                size: l.size,
                diff_id: l.diff_id,
                uncompressed_size: 0,
                files: 0,
            });
        }
        store.insert_base(b.config.digest);
    }
    let n_base = layers.len();
    for pl in &plan.layers {
        let e = store.write_layer(&pl.builder, &enc, mtime)?;
        layers.push(BuiltLayer {
            role: pl.role.clone(),
            digest: e.digest,
            size: e.size,
            diff_id: e.diff_id,
            uncompressed_size: e.uncompressed_size,
            files: plan::file_count(&pl.builder),
        });
    }

    let platform = base_img
        .as_ref()
        .map(|b| b.platform())
        .or(plan.platform.clone())
        .or(want_platform)
        .unwrap_or_else(Platform::host);
    let config = config_json(spec, &plan, base_img.as_ref(), &layers[n_base..], &platform)?;
    let config_bytes = oci::canonical_json(&config);
    let config_len = config_bytes.len();
    let config_digest = store.insert_bytes(config_bytes);
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_len},
        "layers": layers.iter().enumerate().map(|(i, l)| {
            let mt = match &base_img {
                Some(b) if i < n_base => b.layers[i].media_type.clone(),
                _ => media::layer_media_type(layer_compression, false).to_string(),
            };
            let mt = if media::is_docker(&mt) { media::layer_media_type(media::claimed_compression(&mt).unwrap_or(crate::layer::Compression::Gzip), false).to_string() } else { mt };
            json!({"mediaType": mt, "digest": l.digest.to_string(), "size": l.size})
        }).collect::<Vec<_>>(),
    });
    if !spec.annotations.is_empty() {
        m["annotations"] = json!(spec.annotations);
    }
    let manifest = RawManifest::new(oci::canonical_json(&m), Some(media::OCI_MANIFEST))
        .map_err(|e| BuildError::Spec(e.to_string()))?;
    let size = layers.iter().map(|l| l.size).sum::<u64>() + config_len as u64;
    let src = store.into_source(manifest.clone(), base_src, "pinnace build");
    let mut reports = Vec::new();
    for d in &dests {
        let sink = transport::open_sink(d)?;
        reports.push(copy_image(&src, sink, &CopyOptions { progress, ..Default::default() })?);
    }
    if let (Some(path), Some(sbom)) = (&spec.debian.sbom, &plan.sbom) {
        crate::blob::write_atomic(path, sbom).map_err(|source| BuildError::Io { path: path.clone(), source })?;
    }
    Ok(BuildReport {
        digest: manifest.digest,
        config_digest,
        platform: platform.to_string(),
        uncompressed_size: layers.iter().map(|l| l.uncompressed_size).sum(),
        layers,
        size,
        extras: plan.extras.clone(),
        warnings: plan.warnings.clone(),
        destinations: reports,
    })
}

fn config_json(
    spec: &BuildSpec,
    plan: &Plan,
    base: Option<&Image>,
    new: &[BuiltLayer],
    platform: &Platform,
) -> Result<Value, BuildError> {
    let time = created();
    let mut c: Value = match base {
        Some(b) => {
            serde_json::from_slice(&b.config.bytes).map_err(|e| BuildError::Spec(format!("base config: {e}")))?
        }
        None => {
            json!({"architecture": platform.architecture, "os": platform.os, "config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []})
        }
    };
    c["created"] = json!(time);
    if !c["config"].is_object() {
        c["config"] = json!({});
    }
    let cfg = c["config"].as_object_mut().expect("object");
    // Env: the base's (or PATH), then the spec's, later keys replacing earlier ones.
    let mut env: Vec<(String, String)> = cfg
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter().filter_map(|v| v.as_str()?.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
        })
        .unwrap_or_else(|| vec![("PATH".into(), DEFAULT_PATH.into())]);
    for (k, v) in &spec.env {
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(e) => e.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    cfg.insert("Env".into(), json!(env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()));
    let entrypoint = spec.entrypoint.clone().or_else(|| plan.default_entrypoint.clone().map(|e| vec![e]));
    if let Some(e) = entrypoint {
        cfg.insert("Entrypoint".into(), json!(e));
        if spec.cmd.is_none() && base.is_some() {
            cfg.remove("Cmd");
        }
    }
    if let Some(cmd) = &spec.cmd {
        cfg.insert("Cmd".into(), json!(cmd));
    }
    match (&spec.user, base) {
        (Some(u), _) => {
            let (uid, gid) = spec::parse_user(u)?;
            cfg.insert("User".into(), json!(format!("{uid}:{gid}")));
        }
        (None, None) => {
            cfg.insert("User".into(), json!("65532:65532"));
        }
        (None, Some(_)) => {}
    }
    if let Some(w) = &spec.workdir {
        cfg.insert("WorkingDir".into(), json!(w));
    }
    if !spec.ports.is_empty() {
        let mut ports = cfg.get("ExposedPorts").cloned().unwrap_or_else(|| json!({}));
        for p in &spec.ports {
            ports[spec::parse_port(p)?] = json!({});
        }
        cfg.insert("ExposedPorts".into(), ports);
    }
    if !spec.labels.is_empty() {
        let mut labels = cfg.get("Labels").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
        for (k, v) in &spec.labels {
            labels[k] = json!(v);
        }
        cfg.insert("Labels".into(), labels);
    }
    if let Some(s) = &spec.stop_signal {
        cfg.insert("StopSignal".into(), json!(s));
    }
    let ids = c["rootfs"]["diff_ids"]
        .as_array_mut()
        .ok_or_else(|| BuildError::Spec("base config has no rootfs.diff_ids".into()))?;
    ids.extend(new.iter().map(|l| json!(l.diff_id.to_string())));
    if !c["history"].is_array() {
        c["history"] = json!([]);
    }
    let hist = c["history"].as_array_mut().expect("array");
    for l in new {
        hist.push(json!({"created": time, "created_by": format!("pinnace build: {}", l.role), "comment": format!("{} files", l.files)}));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_is_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
