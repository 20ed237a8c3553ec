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
//!
//! A docker archive is written in layer order, one stream; when it needs several layers
//! decompressed, a helper thread decompresses later ones at the same time into spool
//! files beside it (`ahead`), and the archive's bytes are the same as from a serial copy.
//!
//! Blobs move [`CopyOptions::jobs`] at a time when either end is a registry and the sink
//! takes them concurrently ([`Sink::concurrent_blobs`]: registries, OCI layouts), each on
//! its own thread with its own connection, and one at a time otherwise. Every blob's report goes into the slot of
//! its layer, so the manifest is built in layer order whatever order blobs finish in.
//! With [`CopyOptions::all`], an index is copied whole: every child image, then the index.

mod ahead;

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{json, Value};

use crate::blob::VerifyReader;
use crate::layer::{self, Compression, Encoded, Encoder, EncoderOptions};
use crate::oci::{self, media, Digest, Manifest, Platform, RawManifest};
use crate::progress::{Bars, Progress};
use crate::transport::registry::sink::MAX_RESTARTS;
use crate::transport::registry::RegistryOptions;
use crate::transport::{
    self, BlobKind, ConcurrentBlobs, FinalImage, Image, ImageRef, Layer, LayerForm, Presence, Sink, Source,
    TransportError,
};

/// Blobs in flight at once when [`CopyOptions::jobs`] is 0 (skopeo's default).
pub const DEFAULT_JOBS: usize = 3;

/// Options for [`copy`].
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Platform to pick from an index (the host's when `None`).
    pub platform: Option<Platform>,
    /// Copy every image of an index and the index itself (skopeo's `--all`), instead of
    /// picking one platform.
    pub all: bool,
    /// Blobs in flight at once for sinks that take several ([`Sink::concurrent_blobs`]);
    /// 0 means [`DEFAULT_JOBS`].
    pub jobs: usize,
    /// Show progress bars (only honoured on a terminal).
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
    /// Already at the destination: not sent.
    Skipped,
    /// Not sent: the destination registry mounted it from another repository.
    Mounted,
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
    /// Manifest digest at the destination (the index's, for `--all` copies of an index).
    pub manifest_digest: Digest,
    /// Manifest media type at the destination.
    pub manifest_media_type: String,
    /// Manifest size in bytes.
    pub manifest_size: u64,
    /// Whether the source's manifest bytes (and digest) were kept.
    pub manifest_kept: bool,
    /// Config digest (the image ID; same at both ends); `None` for an index.
    pub config_digest: Option<Digest>,
    /// Sum of layer blob sizes plus config at the destination (of every image, for an index).
    pub size: u64,
    /// Layers, bottom first (empty for an index: see `images`).
    pub layers: Vec<LayerReport>,
    /// For an index: one report per image it names, in the index's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<CopyReport>,
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
    if opts.all {
        let root = src.root_manifest()?;
        let parsed = root.parse().map_err(|source| TransportError::Oci { image: src.describe(), source })?;
        if let Manifest::Index(idx) = parsed {
            let mut report = copy_index(src, sink.as_mut(), &root, &idx, opts)?;
            report.destination = sink.describe();
            sink.commit()?;
            return Ok(report);
        }
    }
    let img = Image::open(src, opts.platform.as_ref())?;
    let bars = Bars::new(opts.progress, img.compressed_size(), &format!("copying {}", src.describe()));
    let result = copy_one(src, sink.as_mut(), &img, opts, &bars);
    bars.finish();
    let mut report = result?;
    report.destination = sink.describe();
    sink.commit()?;
    Ok(report)
}

/// Every image of `idx`, then the index (kept byte for byte when every image kept its
/// manifest, else rewritten to name the new ones).
fn copy_index(
    src: &dyn Source,
    sink: &mut dyn Sink,
    root: &RawManifest,
    idx: &oci_spec::image::ImageIndex,
    opts: &CopyOptions,
) -> Result<CopyReport, TransportError> {
    let oci_err = |source| TransportError::Oci { image: src.describe(), source };
    let images =
        idx.manifests().iter().map(|d| Image::open_child(src, root, d)).collect::<Result<Vec<_>, TransportError>>()?;
    let total = images.iter().map(Image::compressed_size).sum();
    let bars = Bars::new(opts.progress, total, &format!("copying {} ({} images)", src.describe(), images.len()));
    let mut reports = Vec::new();
    for img in &images {
        match copy_one(src, sink, img, opts, &bars) {
            Ok(r) => reports.push(r),
            Err(e) => {
                bars.finish();
                return Err(e);
            }
        }
    }
    bars.finish();
    let kept = reports.iter().all(|r| r.manifest_kept);
    let index = if kept { root.clone() } else { rebuild_index(root, &reports).map_err(oci_err)? };
    sink.put_index(&index)?;
    Ok(CopyReport {
        source: src.describe(),
        destination: String::new(),
        manifest_digest: index.digest,
        manifest_media_type: index.media_type.clone(),
        manifest_size: index.bytes.len() as u64,
        manifest_kept: kept,
        config_digest: None,
        size: reports.iter().map(|r| r.size).sum(),
        layers: Vec::new(),
        images: reports,
    })
}

/// The index with each entry naming the manifest its image got at the destination.
fn rebuild_index(root: &RawManifest, reports: &[CopyReport]) -> Result<RawManifest, oci::OciError> {
    let mut v: Value = serde_json::from_slice(&root.bytes)
        .map_err(|source| oci::OciError::Json { what: format!("index {}", root.digest), source })?;
    let to_oci = reports.iter().any(|r| !media::is_docker(&r.manifest_media_type));
    if let Some(list) = v.get_mut("manifests").and_then(Value::as_array_mut) {
        for (entry, r) in list.iter_mut().zip(reports) {
            entry["digest"] = json!(r.manifest_digest.to_string());
            entry["mediaType"] = json!(r.manifest_media_type);
            entry["size"] = json!(r.manifest_size);
        }
    }
    let mt = if to_oci { media::OCI_INDEX } else { root.media_type.as_str() };
    if v.get("mediaType").is_some() || to_oci {
        v["mediaType"] = json!(mt);
    }
    RawManifest::new(oci::canonical_json(&v), Some(mt))
}

/// Everything one image needs to cross: blobs (see the module docs), config, then its
/// manifest is put. Returns the report without the destination name.
fn copy_one(
    src: &dyn Source,
    sink: &mut dyn Sink,
    img: &Image,
    opts: &CopyOptions,
    bars: &Bars,
) -> Result<CopyReport, TransportError> {
    let form = sink.layer_form();
    // Registries store Docker v2.2 manifests as they are: keep that family (and digest).
    let oci_out = sink_is_oci(form) && !(sink.keeps_docker_format() && media::is_docker(&img.manifest.media_type));
    let cx = Ctx { src, form, oci_out, enc: opts.encoder.unwrap_or_default(), bars };
    // Several blobs at once pay when round trips bound the copy; between local stores
    // disk and CPU do, and parallel copies would only add memory.
    let jobs = match opts.jobs {
        _ if !(src.remote() || sink.remote()) => 1,
        0 => DEFAULT_JOBS,
        n => n,
    };
    let out = transfer_layers(sink, &cx, &img.layers, jobs)?;
    let cfg = &img.config;
    let csize = cfg.bytes.len() as u64;
    if !sink.has_blob(&cfg.digest, csize)? {
        sink.put_blob(BlobKind::Config, &cfg.digest, csize, &mut &cfg.bytes[..])?;
    }
    bars.total().inc(csize);
    let layers_same = out.iter().zip(&img.layers).all(|(r, l)| r.digest == l.digest && r.media_type == l.media_type);
    let family_ok = !oci_out || !media::is_docker(&img.manifest.media_type);
    let (manifest, kept) = if layers_same && family_ok {
        (img.manifest.clone(), true)
    } else {
        (
            rebuild_manifest(img, &out, oci_out)
                .map_err(|source| TransportError::Oci { image: sink.describe(), source })?,
            false,
        )
    };
    let fin = FinalImage {
        manifest: manifest.clone(),
        config: (cfg.digest, csize),
        layers: out.iter().map(|r| (r.digest, r.size, r.diff_id)).collect(),
        platform: Some(img.platform()),
    };
    sink.put_manifest(&fin)?;
    Ok(CopyReport {
        source: src.describe(),
        destination: String::new(),
        manifest_digest: manifest.digest,
        manifest_media_type: manifest.media_type.clone(),
        manifest_size: manifest.bytes.len() as u64,
        manifest_kept: kept,
        config_digest: Some(cfg.digest),
        size: out.iter().map(|r| r.size).sum::<u64>() + csize,
        layers: out,
        images: Vec::new(),
    })
}

/// What every blob transfer of one image shares.
struct Ctx<'a> {
    src: &'a dyn Source,
    form: LayerForm,
    oci_out: bool,
    enc: EncoderOptions,
    bars: &'a Bars,
}

/// The blob methods a transfer uses: a sink's [`ConcurrentBlobs`], or its plain `&mut`
/// methods behind a [`RefCell`] ([`Serial`]) when blobs go one at a time.
trait Blobs {
    fn presence(&self, digest: &Digest, size: u64) -> Result<Presence, TransportError>;
    fn put(&self, digest: &Digest, size: u64, data: &mut dyn Read) -> Result<(), TransportError>;
    fn put_with(
        &self,
        produce: &mut dyn FnMut(&mut (dyn io::Write + Send)) -> io::Result<Encoded>,
    ) -> Result<Encoded, TransportError>;
}

impl<T: ConcurrentBlobs + ?Sized> Blobs for T {
    fn presence(&self, digest: &Digest, size: u64) -> Result<Presence, TransportError> {
        ConcurrentBlobs::presence(self, digest, size)
    }
    fn put(&self, digest: &Digest, size: u64, data: &mut dyn Read) -> Result<(), TransportError> {
        ConcurrentBlobs::put_blob(self, BlobKind::Layer, digest, size, data)
    }
    fn put_with(
        &self,
        produce: &mut dyn FnMut(&mut (dyn io::Write + Send)) -> io::Result<Encoded>,
    ) -> Result<Encoded, TransportError> {
        ConcurrentBlobs::put_blob_with(self, produce)
    }
}

struct Serial<'a>(RefCell<&'a mut dyn Sink>);

impl Blobs for Serial<'_> {
    fn presence(&self, digest: &Digest, size: u64) -> Result<Presence, TransportError> {
        let there = self.0.borrow_mut().has_blob(digest, size)?;
        Ok(if there { Presence::Present } else { Presence::Missing })
    }
    fn put(&self, digest: &Digest, size: u64, data: &mut dyn Read) -> Result<(), TransportError> {
        self.0.borrow_mut().put_blob(BlobKind::Layer, digest, size, data)
    }
    fn put_with(
        &self,
        produce: &mut dyn FnMut(&mut (dyn io::Write + Send)) -> io::Result<Encoded>,
    ) -> Result<Encoded, TransportError> {
        self.0.borrow_mut().put_blob_with(produce)
    }
}

/// Transfers every distinct layer blob, `jobs` at a time when the sink takes them
/// concurrently; returns the reports in layer order (a blob named twice is sent once).
fn transfer_layers(
    sink: &mut dyn Sink,
    cx: &Ctx<'_>,
    layers: &[Layer],
    jobs: usize,
) -> Result<Vec<LayerReport>, TransportError> {
    let mut seen = HashSet::new();
    let distinct: Vec<&Layer> = layers.iter().filter(|l| seen.insert(l.digest)).collect();
    let parallel = jobs > 1 && distinct.len() > 1;
    let results = match sink.concurrent_blobs() {
        Some(c) if parallel => transfer_parallel(c, cx, &distinct, jobs),
        _ => {
            // A single-stream sink (a docker archive) gets later layers decompressed ahead
            // on another core (see `ahead`); the archive's bytes stay the same.
            let to_convert: Vec<Digest> =
                distinct.iter().filter(|l| cx.converts(l) && !cx.src.remote()).map(|l| l.digest).collect();
            let ahead = match cx.form {
                LayerForm::Uncompressed => ahead::Ahead::plan(to_convert, sink.spool_dir()),
                LayerForm::Compressed => None,
            };
            let serial = Serial(RefCell::new(sink));
            std::thread::scope(|s| {
                if let Some(a) = &ahead {
                    s.spawn(|| {
                        a.help(|d, w| {
                            let l = distinct.iter().find(|l| l.digest == *d).expect("planned from these layers");
                            let bar = cx.bars.blob(&short(&l.digest), l.size);
                            let r = convert(cx, l, &bar, w);
                            bar.finish();
                            r
                        });
                    });
                }
                let mut results = Vec::new();
                for l in &distinct {
                    let r = transfer(&serial, cx, l, ahead.as_ref());
                    let failed = r.is_err();
                    results.push(Some(r));
                    if failed {
                        break;
                    }
                }
                if let Some(a) = &ahead {
                    a.stop();
                }
                results
            })
        }
    };
    let mut by_digest = std::collections::HashMap::new();
    for r in results.into_iter().flatten() {
        let r = r?;
        by_digest.insert(r.0, r.1);
    }
    layers
        .iter()
        .map(|l| {
            by_digest.get(&l.digest).cloned().ok_or_else(|| {
                TransportError::Unsupported(format!("{}: blob {} was not transferred", cx.src.describe(), l.digest))
            })
        })
        .collect()
}

type Slot = Option<Result<(Digest, LayerReport), TransportError>>;

/// Up to `jobs` threads take the next blob until none is left or one failed; the others
/// finish the blob they hold. Slot `i` holds blob `i`'s result (`None`: never started).
fn transfer_parallel(c: &dyn ConcurrentBlobs, cx: &Ctx<'_>, blobs: &[&Layer], jobs: usize) -> Vec<Slot> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let slots: Vec<Mutex<Slot>> = blobs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(blobs.len()) {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(l) = blobs.get(i) else { break };
                    let r = transfer(c, cx, l, None);
                    if r.is_err() {
                        stop.store(true, Ordering::SeqCst);
                    }
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    slots.into_iter().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).collect()
}

/// The short form of a digest for progress lines.
fn short(d: &Digest) -> String {
    let s = d.to_string();
    s.chars().take(19).collect()
}

impl Ctx<'_> {
    /// Whether layer `l` is compressed or decompressed on the way (else it passes as is).
    fn converts(&self, l: &Layer) -> bool {
        let plain = l.claimed_compression() == Some(Compression::None) && l.digest == l.diff_id;
        plain == (self.form == LayerForm::Compressed)
    }
}

/// One layer blob to the sink: skipped when the sink has it (or mounted it), else copied
/// byte for byte or converted (see the module docs); a layer that `ahead`'s helper
/// decompressed is appended from its spool. Returns the source digest and report.
fn transfer<B: Blobs + ?Sized>(
    b: &B,
    cx: &Ctx<'_>,
    l: &Layer,
    ahead: Option<&ahead::Ahead>,
) -> Result<(Digest, LayerReport), TransportError> {
    let src = cx.src;
    let claimed = l.claimed_compression();
    let blob_err = |source| TransportError::Blob { image: src.describe(), digest: l.digest, source };
    let report = match cx.converts(l) {
        false => {
            let mt = out_media_type(&l.media_type, claimed, cx.oci_out);
            let action = match b.presence(&l.digest, l.size)? {
                Presence::Present => LayerAction::Skipped,
                Presence::Mounted => LayerAction::Mounted,
                Presence::Missing => LayerAction::Copied,
            };
            if action == LayerAction::Copied {
                let bar = cx.bars.blob(&short(&l.digest), l.size);
                // A registry that lost an upload session gets the blob again from the
                // source (bounded): the stream cannot be rewound.
                let mut tries = 0;
                let put = loop {
                    tries += 1;
                    let start = bar.position();
                    let raw = src.open_blob(&l.digest, l.size)?;
                    let r = VerifyReader::new(bar.wrap(raw), l.digest, Some(l.size));
                    // Reading and verifying run on a second thread, overlapping the
                    // sink's writes or uploads.
                    let put = crate::blob::with_read_ahead(r, |ahead| b.put(&l.digest, l.size, ahead));
                    match put {
                        Err(TransportError::Registry(e)) if e.restartable() && tries < MAX_RESTARTS => {
                            bar.rewind(bar.position() - start);
                        }
                        other => break other,
                    }
                };
                bar.finish();
                put?;
            } else {
                cx.bars.total().inc(l.size);
                let why =
                    if action == LayerAction::Mounted { "mounted from another repository" } else { "already there" };
                cx.bars.note(&format!("  {} skipped: {why}", short(&l.digest)));
            }
            LayerReport { digest: l.digest, size: l.size, diff_id: l.diff_id, media_type: mt, action }
        }
        true => {
            let enc = match ahead.and_then(|a| a.claim(&l.digest)) {
                Some(spool) => b.put_with(&mut |w| spool.drain_into(w)),
                None => {
                    let bar = cx.bars.blob(&short(&l.digest), l.size);
                    let enc = b.put_with(&mut |w| convert(cx, l, &bar, w));
                    bar.finish();
                    enc
                }
            };
            let enc = enc.map_err(|e| unwrap_blob_error(e, blob_err))?;
            let action =
                if cx.form == LayerForm::Compressed { LayerAction::Compressed } else { LayerAction::Decompressed };
            let mt = media::layer_media_type(enc.compression, !cx.oci_out).to_string();
            LayerReport { digest: enc.digest, size: enc.size, diff_id: l.diff_id, media_type: mt, action }
        }
    };
    Ok((l.digest, report))
}

/// Writes layer `l` compressed (for a compressed store) or decompressed (for a docker
/// archive) into `w`, counting source bytes on `bar`; may be called again to start over.
/// Errors reading the source are marked, so they are reported against the source blob
/// rather than the file being written.
fn convert(cx: &Ctx<'_>, l: &Layer, bar: &Progress, w: &mut (dyn io::Write + Send)) -> io::Result<Encoded> {
    bar.rewind(bar.position());
    let raw = cx.src.open_blob(&l.digest, l.size).map_err(|e| SourceRead::mark(io::Error::other(e)))?;
    let raw = bar.wrap(raw);
    if cx.form == LayerForm::Uncompressed {
        // Reading and the blob digest, decompression, and the diff_id with the writes:
        // three threads, so decompression (the slowest) has one to itself.
        let eo = EncoderOptions { compression: Compression::None, ..cx.enc };
        return layer::with_verified_stages(raw, l.digest, l.size, l.diff_id, |plain| {
            let mut e = Encoder::with_diff_id(w, &eo, l.diff_id)?;
            crate::blob::copy_large(&mut MarkReads(plain), &mut e)?;
            Ok(e.finish()?.1)
        })
        .map_err(SourceRead::mark)?;
    }
    // Both digests are verified on the reading side (a plain layer's digest is its
    // diff_id), which runs on its own thread while this one feeds the compressors,
    // hashes the output and writes.
    let (_, plain) = layer::open_verified(raw, l.digest, l.size, Some(l.diff_id)).map_err(SourceRead::mark)?;
    let mut e = Encoder::with_diff_id(w, &cx.enc, l.diff_id)?;
    crate::blob::copy_pipelined(MarkReads(plain), &mut e)?;
    Ok(e.finish()?.1)
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
