//! Reading images from a registry: manifests by tag or digest, blobs streamed.
//!
//! Manifests named by an index are served from the manifests endpoint, not the blobs one
//! (a registry stores them apart); the source remembers which digests are manifests.
//! Blob downloads that break off are resumed with `Range: bytes=N-` (up to
//! [`MAX_RESUMES`] times); verification stays with the caller's [`crate::blob::VerifyReader`].

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use ureq::http::Response;
use ureq::Body;

use super::client::{scope, sleep_backoff, Client, Method, Request, MAX_ATTEMPTS};
use super::{locations, Reference, RegistryError, RegistryOptions};
use crate::blob::METADATA_LIMIT;
use crate::oci::{media, Digest, Manifest, RawManifest};
use crate::transport::{Source, TransportError};

/// Resumptions of one blob download.
pub const MAX_RESUMES: u32 = 4;

/// What the manifests endpoint is asked to serve.
pub const MANIFEST_ACCEPT: &str = concat!(
    "application/vnd.oci.image.manifest.v1+json, ",
    "application/vnd.oci.image.index.v1+json, ",
    "application/vnd.docker.distribution.manifest.v2+json, ",
    "application/vnd.docker.distribution.manifest.list.v2+json"
);

/// A registry image as a [`Source`].
#[derive(Debug)]
pub struct RegistrySource {
    client: Arc<Client>,
    r: Reference,
    manifests: Mutex<HashSet<Digest>>,
}

impl RegistrySource {
    /// Opens `reference` (nothing is fetched until the first read).
    pub fn open(reference: &str, opts: &RegistryOptions) -> Result<RegistrySource, RegistryError> {
        let r: Reference = reference.parse()?;
        let client = Arc::new(Client::new(&r.registry, &opts.or(&RegistryOptions::global()))?);
        Ok(RegistrySource { client, r, manifests: Mutex::new(HashSet::new()) })
    }

    fn scopes(&self) -> Vec<String> {
        vec![scope(&self.r.repository, "pull")]
    }

    /// Fetches a manifest by tag or digest, checking it against `expect` and against the
    /// registry's `Docker-Content-Digest`.
    fn manifest(&self, reference: &str, expect: Option<&Digest>) -> Result<RawManifest, RegistryError> {
        let what = format!("GET manifest {reference}");
        let repo = &self.r.repository;
        let url = self.client.url(&format!("{repo}/manifests/{reference}"))?;
        let req = Request::new(Method::Get, url, self.scopes()).header("Accept", MANIFEST_ACCEPT);
        // A body that breaks off is fetched again, like a failed connection.
        let mut attempt = 0;
        let (declared, stated, bytes) = loop {
            attempt += 1;
            let resp = self.client.send(&req, &what)?;
            if resp.status() != 200 {
                return Err(self.client.status_error(resp, repo, &what));
            }
            let declared = header(&resp, "content-type").map(|c| c.split(';').next().unwrap_or("").trim().to_string());
            let stated = header(&resp, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
            match resp.into_body().into_with_config().limit(METADATA_LIMIT).read_to_vec() {
                Ok(bytes) => break (declared, stated, bytes),
                Err(e) if attempt >= MAX_ATTEMPTS => {
                    return Err(self.client.protocol_error(repo, &what, format!("reading the manifest: {e}")))
                }
                Err(_) => sleep_backoff(attempt, None),
            }
        };
        let actual = Digest::of(&bytes);
        for d in expect.into_iter().chain(stated.as_ref()) {
            if *d != actual {
                return Err(self.client.protocol_error(
                    repo,
                    &what,
                    format!("the manifest's bytes hash to {actual}, not {d} (truncated or altered on the way)"),
                ));
            }
        }
        let raw = RawManifest::new(bytes, declared.as_deref())
            .map_err(|e| self.client.protocol_error(repo, &what, e.to_string()))?;
        self.learn(&raw);
        Ok(raw)
    }

    /// Records the manifests an index names, and (for mounts) the blobs a manifest names.
    fn learn(&self, raw: &RawManifest) {
        match raw.parse() {
            Ok(Manifest::Index(idx)) => {
                if let Ok(mut m) = self.manifests.lock() {
                    m.extend(idx.manifests().iter().filter_map(|d| Digest::try_from(d.digest()).ok()));
                }
            }
            Ok(Manifest::Image(m)) => {
                let mut blobs: Vec<Digest> =
                    m.layers().iter().filter_map(|d| Digest::try_from(d.digest()).ok()).collect();
                blobs.extend(Digest::try_from(m.config().digest()).ok());
                locations::remember(&self.r.registry, &self.r.repository, &blobs);
            }
            Err(_) => {}
        }
    }

    fn open_blob_stream(&self, digest: &Digest, size: u64) -> Result<BlobReader, RegistryError> {
        let mut r = BlobReader {
            client: self.client.clone(),
            repository: self.r.repository.clone(),
            scopes: self.scopes(),
            digest: *digest,
            size,
            pos: 0,
            resumes: 0,
            body: None,
        };
        r.body = Some(r.request()?);
        Ok(r)
    }
}

fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn to_transport(e: RegistryError) -> TransportError {
    e.into()
}

impl Source for RegistrySource {
    fn describe(&self) -> String {
        format!("docker://{}", self.r)
    }

    fn remote(&self) -> bool {
        true
    }

    fn root_manifest(&self) -> Result<RawManifest, TransportError> {
        self.manifest(&self.r.manifest_ref(), self.r.digest.as_ref()).map_err(to_transport)
    }

    fn open_blob(&self, digest: &Digest, size: u64) -> Result<Box<dyn Read + Send + '_>, TransportError> {
        let is_manifest = self.manifests.lock().map(|m| m.contains(digest)).unwrap_or(false);
        if is_manifest {
            let raw = self.manifest(&digest.to_string(), Some(digest)).map_err(to_transport)?;
            return Ok(Box::new(io::Cursor::new(raw.bytes)));
        }
        match self.open_blob_stream(digest, size) {
            Ok(r) => Ok(Box::new(r)),
            // A manifest the source did not know as one (nested indexes).
            Err(e) if e.status() == Some(404) && size <= METADATA_LIMIT => {
                match self.manifest(&digest.to_string(), Some(digest)) {
                    Ok(raw) if media::manifest_kind(&raw.media_type).is_some() => {
                        Ok(Box::new(io::Cursor::new(raw.bytes)))
                    }
                    _ => Err(to_transport(e)),
                }
            }
            Err(e) => Err(to_transport(e)),
        }
    }
}

/// A blob download that resumes where it broke off (see the module docs).
struct BlobReader {
    client: Arc<Client>,
    repository: String,
    scopes: Vec<String>,
    digest: Digest,
    size: u64,
    pos: u64,
    resumes: u32,
    body: Option<ureq::BodyReader<'static>>,
}

impl BlobReader {
    fn request(&mut self) -> Result<ureq::BodyReader<'static>, RegistryError> {
        let what = format!("GET blob {}", self.digest);
        let url = self.client.url(&format!("{}/blobs/{}", self.repository, self.digest))?;
        let mut req = Request::new(Method::Get, url, self.scopes.clone());
        if self.pos > 0 {
            req = req.header("Range", format!("bytes={}-", self.pos));
        }
        let resp = self.client.send(&req, &what)?;
        let status = resp.status().as_u16();
        let mut body = match status {
            200 | 206 => resp.into_body().into_reader(),
            _ => return Err(self.client.status_error(resp, &self.repository, &what)),
        };
        if self.pos > 0 && status == 200 {
            // The registry ignored the range: skip what was already read.
            io::copy(&mut (&mut body).take(self.pos), &mut io::sink())
                .map_err(|e| self.client.protocol_error(&self.repository, &what, e.to_string()))?;
        }
        Ok(body)
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let body = match &mut self.body {
                Some(b) => b,
                None => {
                    let b = self.request().map_err(io::Error::other)?;
                    self.body.insert(b)
                }
            };
            let failed = match body.read(buf) {
                Ok(0) if self.pos < self.size => {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed early")
                }
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) => e,
            };
            if self.resumes >= MAX_RESUMES || self.pos >= self.size {
                // Let the verifier report the truncation with both sizes.
                return if failed.kind() == io::ErrorKind::UnexpectedEof { Ok(0) } else { Err(failed) };
            }
            self.resumes += 1;
            self.body = None;
            sleep_backoff(self.resumes, None);
        }
    }
}
