//! Pushing images to a registry.
//!
//! Call order (the [`Sink`] contract): blobs (several at once: the sink offers
//! [`Sink::concurrent_blobs`], one upload session and connection per blob), then the
//! manifest (or, for `--all`, every child manifest and then the index), then commit.
//! Blobs are uploaded as they stream ([`super::upload`]); manifests are only `PUT` at
//! [`Sink::commit`] (children by digest, then the index or the single manifest under the
//! tag), so a failed copy leaves the tag where it was (uploaded blobs stay unreferenced
//! until the registry's garbage collection).
//!
//! [`ConcurrentBlobs::presence`] does the work that avoids uploads: `HEAD` on the blob,
//! and when the repository lacks it but another repository of the registry is known to
//! hold it ([`super::locations`]), a cross-repository mount. A mount the registry refuses
//! with 202 opens an ordinary upload session, kept by digest until the `put_blob` of that
//! digest uses it (whichever thread that runs on). Layers produced on the fly
//! (`put_blob_with`) stream through the same chunked upload and are named by
//! `PUT ?digest=` at the end, so nothing is spooled to disk.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::client::{scope, Client, Method, Request};
use super::upload::{self, StreamError, Upload};
use super::{locations, Reference, RegistryError, RegistryOptions};
use crate::layer::Encoded;
use crate::oci::{Digest, RawManifest};
use crate::transport::{BlobKind, ConcurrentBlobs, FinalImage, LayerForm, Presence, Sink, TransportError};

/// Uploads of one blob started from scratch after the registry lost the session.
pub const MAX_RESTARTS: u32 = 3;

/// What a push did, for reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushStats {
    /// Blobs the repository had already (`HEAD` hits).
    pub present: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blob bytes sent (retransmissions included).
    pub bytes_sent: u64,
}

/// A registry repository as a [`Sink`].
#[derive(Debug)]
pub struct RegistrySink {
    client: Arc<Client>,
    r: Reference,
    /// Upload sessions kept for the next `put_blob` of a digest: opened by refused mounts
    /// (offset 0), or interrupted streams (the bytes the registry holds).
    pending: Mutex<HashMap<Digest, (String, u64)>>,
    /// Manifests to put at commit, in the order given (an index's children first).
    manifests: Vec<FinalImage>,
    index: Option<RawManifest>,
    /// Blobs this push uploaded or mounted (remembered for later mounts).
    pushed: Mutex<Vec<Digest>>,
    stats: Mutex<PushStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent even if a thread panicked while holding it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RegistrySink {
    /// Prepares a push to `reference` (nothing is sent until the first blob).
    pub fn create(reference: &str, opts: &RegistryOptions) -> Result<RegistrySink, RegistryError> {
        let r: Reference = reference.parse()?;
        let client = Arc::new(Client::new(&r.registry, &opts.or(&RegistryOptions::global()))?);
        Ok(RegistrySink {
            client,
            r,
            pending: Mutex::default(),
            manifests: Vec::new(),
            index: None,
            pushed: Mutex::default(),
            stats: Mutex::default(),
        })
    }

    /// What the push did so far.
    pub fn stats(&self) -> PushStats {
        lock(&self.stats).clone()
    }

    fn push_scopes(&self) -> Vec<String> {
        vec![scope(&self.r.repository, "pull,push")]
    }

    fn exists(&self, digest: &Digest, size: u64) -> Result<bool, RegistryError> {
        let what = format!("HEAD blob {digest}");
        let url = self.client.url(&format!("{}/blobs/{digest}", self.r.repository))?;
        let resp = self.client.send(&Request::new(Method::Head, url, self.push_scopes()), &what)?;
        match resp.status().as_u16() {
            200 => {
                let len = resp.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                Ok(len.is_none_or(|l| l == size))
            }
            404 => Ok(false),
            _ => Err(self.client.status_error(resp, &self.r.repository, &what)),
        }
    }

    /// Tries `POST ?mount=&from=`: `Ok(true)` when mounted; a 202 keeps the session.
    fn mount(&self, digest: &Digest, from: &str) -> Result<bool, RegistryError> {
        let what = format!("mount blob {digest} from {from}");
        let url = self.client.url(&format!("{}/blobs/uploads/?mount={digest}&from={from}", self.r.repository))?;
        let mut scopes = self.push_scopes();
        scopes.push(scope(from, "pull"));
        let req = Request::new(Method::Post, url, scopes).header("Content-Length", "0").body(&[]);
        let resp = self.client.send(&req, &what)?;
        match resp.status().as_u16() {
            201 => Ok(true),
            202 => {
                if let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok()) {
                    let loc = self.client.resolve(loc)?;
                    if let Some((old, _)) = lock(&self.pending).insert(*digest, (loc, 0)) {
                        self.cancel_session(old);
                    }
                }
                Ok(false)
            }
            // No access to the other repository, or it is gone: upload instead.
            _ => Ok(false),
        }
    }

    /// The upload session for `digest`: one kept for it (see `pending`), or a new one.
    fn upload_for(&self, digest: Option<&Digest>) -> Result<Upload, RegistryError> {
        let held = digest.and_then(|d| lock(&self.pending).remove(d));
        match held {
            Some((loc, offset)) => {
                Ok(Upload::resume(self.client.clone(), &self.r.repository, self.push_scopes(), loc).at_offset(offset))
            }
            None => Upload::start(self.client.clone(), &self.r.repository, self.push_scopes()),
        }
    }

    /// A blob error for a failure reading `digest` from the source.
    fn source_err(&self, digest: &Digest, e: io::Error) -> TransportError {
        match e.downcast::<RegistryError>() {
            Ok(r) => r.into(),
            Err(source) => TransportError::Blob { image: self.describe(), digest: *digest, source },
        }
    }

    /// Streams a large blob (see [`Upload::stream`]), continuing a session an earlier try
    /// left with bytes in it: those are read from `data` (and so verified) but not sent.
    fn put_streamed(&self, digest: &Digest, size: u64, data: &mut dyn Read) -> Result<(), TransportError> {
        let mut up = self.upload_for(Some(digest))?;
        let offset = up.len();
        if offset > size {
            up.cancel();
            let why = format!("the session holds {offset} bytes of a {size}-byte blob");
            return Err(self.client.protocol_error(&self.r.repository, "upload blob", why).into());
        }
        let skipped = io::copy(&mut data.take(offset), &mut io::sink()).map_err(|e| self.source_err(digest, e))?;
        if skipped != offset {
            up.cancel();
            let e = io::Error::new(io::ErrorKind::UnexpectedEof, format!("the source ended after {skipped} bytes"));
            return Err(self.source_err(digest, e));
        }
        match up.stream(data, size - offset) {
            Ok(()) => {}
            Err(StreamError::Source(source)) => {
                up.cancel();
                return Err(self.source_err(digest, source));
            }
            Err(StreamError::Registry(e)) => {
                if let RegistryError::UploadInterrupted { offset, .. } = &*e {
                    lock(&self.pending).insert(*digest, (up.location().to_string(), *offset));
                }
                return Err(TransportError::Registry(e));
            }
        }
        // The source's verifier checks the digest at end of stream: reach it before the
        // blob is committed.
        let mut extra = [0u8; 1];
        let end = match data.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => {
                Err(io::Error::new(io::ErrorKind::InvalidData, format!("the source holds more than {size} bytes")))
            }
            Err(e) => Err(e),
        };
        if let Err(e) = end {
            up.cancel();
            return Err(self.source_err(digest, e));
        }
        let sent = up.finish(digest)?;
        self.uploaded(*digest, sent);
        Ok(())
    }

    fn cancel_session(&self, location: String) {
        Upload::resume(self.client.clone(), &self.r.repository, self.push_scopes(), location).cancel();
    }

    fn uploaded(&self, digest: Digest, sent: u64) {
        let mut st = lock(&self.stats);
        st.bytes_sent += sent;
        st.uploaded += 1;
        lock(&self.pushed).push(digest);
    }

    /// `PUT /v2/REPO/manifests/REFERENCE`, checking the digest the registry states.
    fn put_manifest_now(&self, m: &RawManifest, reference: &str) -> Result<(), RegistryError> {
        let what = format!("PUT manifest {reference}");
        let repo = &self.r.repository;
        let url = self.client.url(&format!("{repo}/manifests/{reference}"))?;
        let req = Request::new(Method::Put, url, self.push_scopes())
            .header("Content-Type", m.media_type.clone())
            .body(&m.bytes);
        let resp = self.client.send(&req, &what)?;
        if resp.status() != 201 && resp.status() != 200 {
            return Err(self.client.status_error(resp, repo, &what));
        }
        let stated = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()?.parse::<Digest>().ok());
        if let Some(d) = stated.filter(|d| *d != m.digest) {
            return Err(self.client.protocol_error(
                repo,
                &what,
                format!("the registry stored manifest {d}, not {}", m.digest),
            ));
        }
        Ok(())
    }

    fn io_err(&self, source: io::Error) -> TransportError {
        match source.downcast::<RegistryError>() {
            Ok(e) => e.into(),
            Err(source) => TransportError::Io { path: PathBuf::from(self.describe()), source },
        }
    }
}

impl ConcurrentBlobs for RegistrySink {
    fn presence(&self, digest: &Digest, size: u64) -> Result<Presence, TransportError> {
        if self.exists(digest, size)? {
            lock(&self.stats).present += 1;
            return Ok(Presence::Present);
        }
        for from in locations::candidates(&self.r.registry, digest, &self.r.repository) {
            if self.mount(digest, &from)? {
                lock(&self.stats).mounted += 1;
                lock(&self.pushed).push(*digest);
                return Ok(Presence::Mounted);
            }
            if lock(&self.pending).contains_key(digest) {
                break;
            }
        }
        Ok(Presence::Missing)
    }

    fn put_blob(&self, _kind: BlobKind, digest: &Digest, size: u64, data: &mut dyn Read) -> Result<(), TransportError> {
        if size >= upload::stream_min() {
            return self.put_streamed(digest, size, data);
        }
        let mut up = self.upload_for(Some(digest))?;
        if !up.is_empty() {
            // A session an interrupted stream left: small blobs start over.
            up.cancel();
            up = self.upload_for(None)?;
        }
        if let Err(e) = io::copy(data, &mut up) {
            up.cancel();
            return Err(self.source_err(digest, e));
        }
        let sent = up.finish(digest)?;
        self.uploaded(*digest, sent);
        Ok(())
    }

    fn put_blob_with(
        &self,
        produce: &mut dyn FnMut(&mut (dyn io::Write + Send)) -> io::Result<Encoded>,
    ) -> Result<Encoded, TransportError> {
        // A session the registry cannot resume is restarted by producing the layer again
        // (the producer re-reads its source; the encoding is deterministic).
        let mut tries = 0;
        loop {
            tries += 1;
            let mut up = self.upload_for(None)?;
            let result = match produce(&mut up) {
                Ok(enc) => up.finish(&enc.digest).map(|sent| (enc, sent)).map_err(TransportError::from),
                Err(e) => {
                    up.cancel();
                    Err(self.io_err(e))
                }
            };
            match result {
                Ok((enc, sent)) => {
                    self.uploaded(enc.digest, sent);
                    return Ok(enc);
                }
                Err(TransportError::Registry(e)) if e.restartable() && tries < MAX_RESTARTS => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Sink for RegistrySink {
    fn describe(&self) -> String {
        format!("docker://{}", self.r)
    }

    fn layer_form(&self) -> LayerForm {
        LayerForm::Compressed
    }

    fn keeps_docker_format(&self) -> bool {
        true
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

    fn concurrent_blobs(&self) -> Option<&dyn ConcurrentBlobs> {
        Some(self)
    }

    fn remote(&self) -> bool {
        true
    }

    fn put_manifest(&mut self, image: &FinalImage) -> Result<(), TransportError> {
        self.manifests.push(image.clone());
        Ok(())
    }

    fn put_index(&mut self, index: &RawManifest) -> Result<(), TransportError> {
        self.index = Some(index.clone());
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), TransportError> {
        for (_, (loc, _)) in lock(&self.pending).drain() {
            self.cancel_session(loc);
        }
        // What the reference will name: the index, or the one manifest.
        let top = match (&self.index, self.manifests.as_slice()) {
            (Some(idx), _) => idx.clone(),
            (None, [one]) => one.manifest.clone(),
            (None, []) => {
                return Err(TransportError::Unsupported(format!("{}: commit without a manifest", self.describe())))
            }
            (None, _) => {
                return Err(TransportError::Unsupported(format!(
                    "{}: several manifests and no index to name them",
                    self.describe()
                )))
            }
        };
        if let Some(d) = &self.r.digest {
            if *d != top.digest {
                return Err(TransportError::BadReference {
                    input: self.describe(),
                    why: format!("the manifest to push is {}, not the digest the reference names", top.digest),
                });
            }
        }
        if self.index.is_some() {
            // Children first, by digest: the index may only name manifests that exist.
            for m in &self.manifests {
                self.put_manifest_now(&m.manifest, &m.manifest.digest.to_string())?;
            }
        }
        let reference = match &self.r.tag {
            Some(t) if self.r.digest.is_none() => t.clone(),
            _ => top.digest.to_string(),
        };
        self.put_manifest_now(&top, &reference)?;
        let mut blobs = lock(&self.pushed).clone();
        for m in &self.manifests {
            blobs.push(m.config.0);
            blobs.extend(m.layers.iter().map(|l| l.0));
        }
        locations::remember(&self.r.registry, &self.r.repository, &blobs);
        locations::save();
        Ok(())
    }
}
