//! The one generic copy: any [`Source`] to any [`Sink`].
//!
//! Per layer, the sink's [`LayerForm`] decides: a compressed layer going to a compressed
//! store, or a plain one going to a plain store, passes through byte for byte (verified
//! against its digest while it streams); a plain layer going to an OCI store is gzipped
//! (deterministic parallel gzip) and a compressed one going to a docker archive is
//! decompressed, in one pass that also verifies the diff_id. The config is always copied
//! as is, so the image ID and diff_ids never change. The manifest is copied as is when
//! no layer changed and the sink takes its format, which keeps the digest users pinned;
//! otherwise a new manifest is written (in the sink's format) and the report says so.

use std::collections::HashMap;
use std::io::{self, Read};

use serde::Serialize;
use serde_json::{json, Value};

use crate::blob::VerifyReader;
use crate::layer::{self, Compression, Encoded, Encoder, EncoderOptions};
use crate::oci::{self, media, Digest, Platform, RawManifest};
use crate::progress::Progress;
use crate::transport::registry::RegistryOptions;
use crate::transport::{self, BlobKind, FinalImage, Image, ImageRef, LayerForm, Sink, Source, TransportError};

/// Options for [`copy`].
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Platform to pick from an index (the host's when `None`).
    pub platform: Option<Platform>,
    /// Show a progress bar (only honoured on a terminal).
    pub progress: bool,
    /// How to compress plain layers for compressed stores.
    pub encoder: Option<EncoderOptions>,
    /// Registry settings for the source (TLS, credentials).
    pub source_registry: RegistryOptions,
    /// Registry settings for the destination.
    pub destination_registry: RegistryOptions,
}

/// What happened to a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerAction {
    /// Copied byte for byte.
    Copied,
    /// Already at the destination.
    Skipped,
    /// Compressed on the way.
    Compressed,
    /// Decompressed on the way.
    Decompressed,
}

/// One layer of the result.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// Blob digest at the destination.
    pub digest: Digest,
    /// Blob size at the destination.
    pub size: u64,
    /// diff_id (unchanged by any conversion).
    pub diff_id: Digest,
    /// Media type at the destination.
    pub media_type: String,
    /// What was done.
    pub action: LayerAction,
}

/// The result of a copy.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// Source reference.
    pub source: String,
    /// Destination reference.
    pub destination: String,
    /// Manifest digest at the destination.
    pub manifest_digest: Digest,
    /// Manifest media type at the destination.
    pub manifest_media_type: String,
    /// Whether the source's manifest bytes (and digest) were kept.
    pub manifest_kept: bool,
    /// Config digest (the image ID; same at both ends).
    pub config_digest: Digest,
    /// Sum of layer blob sizes plus config at the destination.
    pub size: u64,
    /// Layers, bottom first.
    pub layers: Vec<LayerReport>,
}

/// Copies the image `src` names to `dst`.
pub fn copy(src: &ImageRef, dst: &ImageRef, opts: &CopyOptions) -> Result<CopyReport, TransportError> {
    if src == dst {
        return Err(TransportError::BadReference {
            input: dst.to_string(),
            why: "source and destination are the same".into(),
        });
    }
    let source = transport::open_source_with(src, &opts.source_registry)?;
    let sink = transport::open_sink_with(dst, &opts.destination_registry)?;
    copy_image(source.as_ref(), sink, opts)
}

/// Copies from an open source into a sink (see the module docs for what changes).
pub fn copy_image(src: &dyn Source, mut sink: Box<dyn Sink>, opts: &CopyOptions) -> Result<CopyReport, TransportError> {
    let img = Image::open(src, opts.platform.as_ref())?;
    let form = sink.layer_form();
    // Registries store Docker v2.2 manifests as they are: keep that family (and digest).
    let oci_out = sink_is_oci(form) && !(sink.keeps_docker_format() && media::is_docker(&img.manifest.media_type));
    let enc_opts = opts.encoder.unwrap_or_default();
    let total: u64 = img.layers.iter().map(|l| l.size).sum();
    let progress = Progress::bytes(opts.progress, total, &format!("copying {}", src.describe()));
    let mut done: HashMap<Digest, LayerReport> = HashMap::new();
    let mut out = Vec::new();
    for (i, l) in img.layers.iter().enumerate() {
        if let Some(r) = done.get(&l.digest) {
            out.push(r.clone());
            continue;
        }
        let claimed = l.claimed_compression();
        let plain = claimed == Some(Compression::None) && l.digest == l.diff_id;
        let blob_err = |source| TransportError::Blob { image: src.describe(), digest: l.digest, source };
        let report = match (form, plain) {
            (LayerForm::Compressed, false) | (LayerForm::Uncompressed, true) => {
                let mt = out_media_type(&l.media_type, claimed, oci_out);
                let action = if sink.has_blob(&l.digest, l.size)? {
                    progress.inc(l.size);
                    LayerAction::Skipped
                } else {
                    // A registry that lost an upload session gets the blob again from the
                    // source (bounded): the stream cannot be rewound.
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        let raw = src.open_blob(&l.digest, l.size)?;
                        let r = VerifyReader::new(progress.wrap(raw), l.digest, Some(l.size));
                        // Reading and verifying run on a second thread, overlapping the
                        // sink's writes or uploads.
                        let put = crate::blob::with_read_ahead(r, |ahead| {
                            sink.put_blob(BlobKind::Layer, &l.digest, l.size, ahead)
                        });
                        match put {
                            Err(TransportError::Registry(e)) if e.restartable() && tries < 3 => continue,
                            other => break other?,
                        }
                    }
                    LayerAction::Copied
                };
                LayerReport { digest: l.digest, size: l.size, diff_id: l.diff_id, media_type: mt, action }
            }
            (LayerForm::Compressed, true) | (LayerForm::Uncompressed, false) => {
                let target = if form == LayerForm::Compressed { enc_opts.compression } else { Compression::None };
                let eo = EncoderOptions { compression: target, ..enc_opts };
                let mut produce = |w: &mut (dyn io::Write + Send)| -> io::Result<Encoded> {
                    // Errors reading the source are marked, so they are reported against
                    // the source blob rather than the file being written.
                    let raw = src.open_blob(&l.digest, l.size).map_err(|e| SourceRead::mark(io::Error::other(e)))?;
                    // Both digests are verified on the reading side (the blob's, then the
                    // diff_id after decompression), which runs on its own thread while this
                    // one compresses, hashes the output and writes.
                    let (_, plain) = layer::open_verified(progress.wrap(raw), l.digest, l.size, Some(l.diff_id))
                        .map_err(SourceRead::mark)?;
                    let mut e = Encoder::with_diff_id(w, &eo, l.diff_id)?;
                    crate::blob::copy_pipelined(MarkReads(plain), &mut e)?;
                    Ok(e.finish()?.1)
                };
                let enc = sink.put_blob_with(&mut produce).map_err(|e| unwrap_blob_error(e, blob_err))?;
                let action =
                    if form == LayerForm::Compressed { LayerAction::Compressed } else { LayerAction::Decompressed };
                let mt = media::layer_media_type(enc.compression, !oci_out).to_string();
                LayerReport { digest: enc.digest, size: enc.size, diff_id: l.diff_id, media_type: mt, action }
            }
        };
        let _ = i;
        done.insert(l.digest, report.clone());
        out.push(report);
    }
    progress.finish();
    let cfg = &img.config;
    if !sink.has_blob(&cfg.digest, cfg.bytes.len() as u64)? {
        sink.put_blob(BlobKind::Config, &cfg.digest, cfg.bytes.len() as u64, &mut &cfg.bytes[..])?;
    }
    let layers_same = out.iter().zip(&img.layers).all(|(r, l)| r.digest == l.digest && r.media_type == l.media_type);
    let family_ok = !oci_out || !media::is_docker(&img.manifest.media_type);
    let (manifest, kept) = if layers_same && family_ok {
        (img.manifest.clone(), true)
    } else {
        (
            rebuild_manifest(&img, &out, oci_out)
                .map_err(|source| TransportError::Oci { image: sink.describe(), source })?,
            false,
        )
    };
    let fin = FinalImage {
        manifest: manifest.clone(),
        config: (cfg.digest, cfg.bytes.len() as u64),
        layers: out.iter().map(|r| (r.digest, r.size, r.diff_id)).collect(),
        platform: Some(img.platform()),
    };
    sink.put_manifest(&fin)?;
    let destination = sink.describe();
    sink.commit()?;
    Ok(CopyReport {
        source: src.describe(),
        destination,
        manifest_digest: manifest.digest,
        manifest_media_type: manifest.media_type,
        manifest_kept: kept,
        config_digest: cfg.digest,
        size: out.iter().map(|r| r.size).sum::<u64>() + cfg.bytes.len() as u64,
        layers: out,
    })
}

fn sink_is_oci(form: LayerForm) -> bool {
    form == LayerForm::Compressed
}

fn unwrap_blob_error(e: TransportError, wrap: impl FnOnce(io::Error) -> TransportError) -> TransportError {
    match e {
        TransportError::Io { source, .. } if crate::blob::BlobError::from_io(&source).is_some() => wrap(source),
        TransportError::Io { source, .. } if SourceRead::is(&source) => wrap(SourceRead::unmark(source)),
        other => other,
    }
}

/// Marks an error as coming from reading the source layer (a corrupt gzip or zstd stream,
/// a truncated blob), so that [`unwrap_blob_error`] names the source blob instead of the
/// destination file being written.
#[derive(Debug)]
struct SourceRead(io::Error);

impl std::fmt::Display for SourceRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SourceRead {}

impl SourceRead {
    fn mark(e: io::Error) -> io::Error {
        if crate::blob::BlobError::from_io(&e).is_some() || SourceRead::is(&e) {
            return e;
        }
        io::Error::new(e.kind(), SourceRead(e))
    }
    fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|i| i.is::<SourceRead>())
    }
    fn unmark(e: io::Error) -> io::Error {
        if !SourceRead::is(&e) {
            return e;
        }
        match e.into_inner().map(|i| i.downcast::<SourceRead>()) {
            Some(Ok(s)) => s.0,
            _ => unreachable!("checked by SourceRead::is"),
        }
    }
}

/// A reader whose errors are marked as [`SourceRead`].
struct MarkReads<R>(R);

impl<R: Read> Read for MarkReads<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(SourceRead::mark)
    }
}

/// The media type a passed-through layer gets at the destination.
fn out_media_type(mt: &str, claimed: Option<Compression>, oci: bool) -> String {
    if !oci || !media::is_docker(mt) {
        return mt.to_string();
    }
    if mt == media::DOCKER_LAYER_FOREIGN {
        return "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".into();
    }
    match claimed {
        Some(c) => media::layer_media_type(c, false).into(),
        None => mt.to_string(),
    }
}

/// A new manifest for the copied layers, in the OCI format (or Docker v2.2 for docker
/// stores), keeping layer annotations and urls and the manifest's annotations.
fn rebuild_manifest(img: &Image, layers: &[LayerReport], oci_format: bool) -> Result<RawManifest, oci::OciError> {
    let (mt, cmt) = if oci_format {
        (media::OCI_MANIFEST, media::OCI_CONFIG)
    } else {
        (media::DOCKER_MANIFEST, media::DOCKER_CONFIG)
    };
    let ls: Vec<Value> = layers
        .iter()
        .zip(&img.layers)
        .map(|(r, l)| {
            let mut d = json!({"mediaType": r.media_type, "digest": r.digest.to_string(), "size": r.size});
            if let Some(a) = l.descriptor.annotations() {
                d["annotations"] = json!(a);
            }
            if let Some(u) = l.descriptor.urls() {
                d["urls"] = json!(u);
            }
            d
        })
        .collect();
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": {"mediaType": cmt, "digest": img.config.digest.to_string(), "size": img.config.bytes.len()},
        "layers": ls,
    });
    if let Some(a) = img.parsed.annotations() {
        m["annotations"] = json!(a);
    }
    RawManifest::new(oci::canonical_json(&m), Some(mt))
}

/// Reads a whole layer through verification and discards it (used by `validate`).
pub fn drain<R: Read>(mut r: R) -> io::Result<u64> {
    io::copy(&mut r, &mut io::sink())
}

/// Recomputes every digest of an image: manifest, config, each layer's digest and
/// diff_id. The check every round-trip test runs on what pinnace wrote.
pub fn validate(r: &ImageRef, platform: Option<&Platform>) -> Result<Image, TransportError> {
    let src = transport::open_source(r)?;
    let img = Image::open(src.as_ref(), platform)?;
    for i in 0..img.layers.len() {
        let (_, rd) = img.open_layer(src.as_ref(), i)?;
        drain(rd).map_err(|source| TransportError::Blob {
            image: src.describe(),
            digest: img.layers[i].digest,
            source,
        })?;
    }
    Ok(img)
}
