//! Pushing images to a registry.
//!
//! Call order (the [`Sink`] contract): blobs, config, manifest, commit. Blobs are uploaded
//! as they stream ([`super::upload`]); the manifest is only `PUT` at [`Sink::commit`], so
//! a failed copy leaves the tag where it was (uploaded blobs stay unreferenced until the
//! registry's garbage collection).
//!
//! [`Sink::has_blob`] does the work that avoids uploads: `HEAD` on the blob, and when the
//! repository lacks it but another repository of the registry is known to hold it
//! ([`super::locations`]), a cross-repository mount. A mount the registry refuses with
//! 202 opens an ordinary upload session, which the next `put_blob` of that digest uses.
//! Layers produced on the fly (`put_blob_with`) stream through the same chunked upload and
//! are named by `PUT ?digest=` at the end, so nothing is spooled to disk.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use super::client::{scope, Client, Method, Request};
use super::upload::Upload;
use super::{locations, Reference, RegistryError, RegistryOptions};
use crate::layer::Encoded;
use crate::oci::Digest;
use crate::transport::{BlobKind, FinalImage, LayerForm, Sink, TransportError};

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
    pending: Option<(Digest, String)>,
    manifest: Option<FinalImage>,
    pushed: Vec<Digest>,
    /// What the push did so far.
    pub stats: PushStats,
}

impl RegistrySink {
    /// Prepares a push to `reference` (nothing is sent until the first blob).
    pub fn create(reference: &str, opts: &RegistryOptions) -> Result<RegistrySink, RegistryError> {
        let r: Reference = reference.parse()?;
        let client = Arc::new(Client::new(&r.registry, &opts.or(&RegistryOptions::global()))?);
        Ok(RegistrySink { client, r, pending: None, manifest: None, pushed: Vec::new(), stats: PushStats::default() })
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
    fn mount(&mut self, digest: &Digest, from: &str) -> Result<bool, RegistryError> {
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
                    self.pending = Some((*digest, self.client.resolve(loc)?));
                }
                Ok(false)
            }
            // No access to the other repository, or it is gone: upload instead.
            _ => Ok(false),
        }
    }

    fn upload_for(&mut self, digest: Option<&Digest>) -> Result<Upload, RegistryError> {
        match self.pending.take() {
            Some((d, loc)) if Some(&d) == digest => {
                Ok(Upload::resume(self.client.clone(), &self.r.repository, self.push_scopes(), loc))
            }
            other => {
                if let Some((_, loc)) = other {
                    Upload::resume(self.client.clone(), &self.r.repository, self.push_scopes(), loc).cancel();
                }
                Upload::start(self.client.clone(), &self.r.repository, self.push_scopes())
            }
        }
    }

    fn io_err(&self, source: io::Error) -> TransportError {
        match source.downcast::<RegistryError>() {
            Ok(e) => e.into(),
            Err(source) => TransportError::Io { path: PathBuf::from(self.describe()), source },
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
        if self.exists(digest, size)? {
            self.stats.present += 1;
            return Ok(true);
        }
        for from in locations::candidates(&self.r.registry, digest, &self.r.repository) {
            if self.mount(digest, &from)? {
                self.stats.mounted += 1;
                self.pushed.push(*digest);
                return Ok(true);
            }
            if self.pending.is_some() {
                break;
            }
        }
        Ok(false)
    }

    fn put_blob(
        &mut self,
        _kind: BlobKind,
        digest: &Digest,
        _size: u64,
        data: &mut dyn Read,
    ) -> Result<(), TransportError> {
        let mut up = self.upload_for(Some(digest))?;
        if let Err(e) = io::copy(data, &mut up) {
            up.cancel();
            return Err(match e.downcast::<RegistryError>() {
                Ok(r) => r.into(),
                Err(source) => TransportError::Blob { image: self.describe(), digest: *digest, source },
            });
        }
        self.stats.bytes_sent += up.finish(digest)?;
        self.stats.uploaded += 1;
        self.pushed.push(*digest);
        Ok(())
    }

    fn put_blob_with(
        &mut self,
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
                    self.stats.bytes_sent += sent;
                    self.stats.uploaded += 1;
                    self.pushed.push(enc.digest);
                    return Ok(enc);
                }
                Err(TransportError::Registry(e)) if e.restartable() && tries < MAX_RESTARTS => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn put_manifest(&mut self, image: &FinalImage) -> Result<(), TransportError> {
        if let Some(d) = &self.r.digest {
            if *d != image.manifest.digest {
                return Err(TransportError::BadReference {
                    input: self.describe(),
                    why: format!(
                        "the manifest to push is {}, not the digest the reference names",
                        image.manifest.digest
                    ),
                });
            }
        }
        self.manifest = Some(image.clone());
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), TransportError> {
        if let Some((_, loc)) = self.pending.take() {
            Upload::resume(self.client.clone(), &self.r.repository, self.push_scopes(), loc).cancel();
        }
        let Some(img) = self.manifest.take() else {
            return Err(TransportError::Unsupported(format!("{}: commit without a manifest", self.describe())));
        };
        let reference = match &self.r.tag {
            Some(t) if self.r.digest.is_none() => t.clone(),
            _ => img.manifest.digest.to_string(),
        };
        let what = format!("PUT manifest {reference}");
        let repo = self.r.repository.clone();
        let url = self.client.url(&format!("{repo}/manifests/{reference}"))?;
        let req = Request::new(Method::Put, url, self.push_scopes())
            .header("Content-Type", img.manifest.media_type.clone())
            .body(&img.manifest.bytes);
        let resp = self.client.send(&req, &what)?;
        if resp.status() != 201 && resp.status() != 200 {
            return Err(self.client.status_error(resp, &repo, &what).into());
        }
        let stated = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()?.parse::<Digest>().ok());
        if let Some(d) = stated.filter(|d| *d != img.manifest.digest) {
            return Err(self
                .client
                .protocol_error(&repo, &what, format!("the registry stored manifest {d}, not {}", img.manifest.digest))
                .into());
        }
        let mut blobs = self.pushed.clone();
        blobs.push(img.config.0);
        blobs.extend(img.layers.iter().map(|l| l.0));
        locations::remember(&self.r.registry, &repo, &blobs);
        locations::save();
        Ok(())
    }
}
