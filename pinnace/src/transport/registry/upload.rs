//! Blob uploads (distribution spec "Pushing blobs"): a session opened with `POST`, data
//! sent in chunks with `PATCH` + `Content-Range`, closed with `PUT ?digest=`.
//!
//! [`Upload`] is an `io::Write`, so both kinds of blob push the same way: a blob whose
//! digest is known streams in from its reader, and a layer compressed on the fly streams
//! in from the encoder, its digest passed to [`Upload::finish`] once known. Nothing is
//! spooled to disk. Data is buffered in memory one chunk ([`CHUNK`]) at a time, which is
//! what makes resuming possible: when a `PATCH` fails (dropped connection, 5xx, 429),
//! the session's status (`GET` on its URL, `Range: 0-N`) says how much the registry kept,
//! and the rest of the chunk is sent from there. A blob smaller than one chunk goes as one
//! monolithic `PUT ?digest=` with its bytes (one round trip fewer, and replayable).
//!
//! A blob whose size is known and larger than [`stream_min`] is not buffered at all: it
//! goes as one `PATCH` streamed from its reader ([`Upload::stream`], like skopeo and
//! crane), so the registry ingests at its own pace while the source is read, and memory
//! stays at the copy's read-ahead per blob. Its bytes cannot be replayed from here, so
//! when that `PATCH` fails the session's status is asked, and
//! [`RegistryError::UploadInterrupted`] tells the caller how much the registry kept; the
//! sink keeps the session, and the copy sends the blob again from its source, skipping
//! what the registry holds.
//!
//! Some registries cannot resume: distribution 2.8 keeps the bytes of a broken `PATCH`
//! but refuses the session afterwards (`BLOB_UPLOAD_INVALID`, "start over"). Then the
//! upload fails with [`RegistryError::UploadLost`], and the caller uploads the blob again
//! from its source (the copy re-opens the source blob; the sink re-runs the producer).

use std::io::{self, Write};
use std::sync::Arc;

use super::client::{retry_after, sleep_backoff, Client, Method, Request, MAX_ATTEMPTS};
use super::RegistryError;
use crate::oci::Digest;

/// Bytes per `PATCH` by default.
pub const CHUNK: usize = 32 << 20;

/// Bytes per `PATCH`: [`CHUNK`], or `$PINNACE_REGISTRY_CHUNK_SIZE` (bytes, at least 64 KiB),
/// a knob for tuning against a particular registry and for tests that exercise chunking
/// with small blobs.
pub fn chunk_size() -> usize {
    static C: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *C.get_or_init(|| {
        std::env::var("PINNACE_REGISTRY_CHUNK_SIZE")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(CHUNK, |n| n.max(64 << 10))
    })
}

/// Blobs at least this large (and larger than one chunk) are streamed in one `PATCH`;
/// smaller ones go as one `PUT` with their bytes.
pub const STREAM_MIN: u64 = 1 << 20;

/// The size from which [`Upload::stream`] is used: [`STREAM_MIN`], or one chunk when
/// [`chunk_size`] is set lower (tests exercise streaming with small blobs that way).
pub fn stream_min() -> u64 {
    STREAM_MIN.min(chunk_size() as u64)
}

/// An open upload session (see the module docs).
#[derive(Debug)]
pub struct Upload {
    client: Arc<Client>,
    repository: String,
    scopes: Vec<String>,
    location: String,
    /// Bytes the registry has acknowledged.
    offset: u64,
    /// Bytes after `offset` not yet acknowledged.
    buf: Vec<u8>,
    chunk: usize,
    /// Bytes sent in PATCH bodies, retransmissions included (for reports and tests).
    pub sent: u64,
}

fn location_of(client: &Client, resp: &ureq::http::Response<ureq::Body>) -> Option<Result<String, RegistryError>> {
    let loc = resp.headers().get("location")?.to_str().ok()?;
    Some(client.resolve(loc))
}

/// The end of a `Range: 0-N` header as the next offset (`N + 1`). distribution answers
/// `0-0` for an empty session as well as for one byte; it is read as empty (a resend of
/// one byte is harmless, skipping one is not).
fn range_end(resp: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    let v = resp.headers().get("range")?.to_str().ok()?;
    let v = v.trim().trim_start_matches("bytes=");
    let (_, end) = v.split_once('-')?;
    let end = end.trim().parse::<u64>().ok()?;
    Some(if end == 0 { 0 } else { end + 1 })
}

impl Upload {
    /// Opens a session with `POST /v2/REPO/blobs/uploads/`.
    pub fn start(client: Arc<Client>, repository: &str, scopes: Vec<String>) -> Result<Upload, RegistryError> {
        let what = "start blob upload";
        let url = client.url(&format!("{repository}/blobs/uploads/"))?;
        let req = Request::new(Method::Post, url, scopes.clone()).header("Content-Length", "0").body(&[]);
        let resp = client.send(&req, what)?;
        if resp.status() != 202 {
            return Err(client.status_error(resp, repository, what));
        }
        let location = location_of(&client, &resp)
            .ok_or_else(|| client.protocol_error(repository, what, "202 without a Location header"))??;
        Ok(Upload::resume(client, repository, scopes, location))
    }

    /// Continues a session the registry opened already (a mount answered with 202).
    pub fn resume(client: Arc<Client>, repository: &str, scopes: Vec<String>, location: String) -> Upload {
        let chunk = chunk_size();
        Upload {
            client,
            repository: repository.to_string(),
            scopes,
            location,
            offset: 0,
            buf: Vec::new(),
            chunk,
            sent: 0,
        }
    }

    /// Continues a session of which the registry holds `offset` bytes already.
    pub fn at_offset(mut self, offset: u64) -> Upload {
        self.offset = offset;
        self
    }

    /// The session's URL.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Sends the next `len` bytes of the blob from `data` as one streamed `PATCH` (see the
    /// module docs); nothing may be buffered before. On failure, the session's status
    /// decides: [`RegistryError::UploadInterrupted`] with the bytes the registry kept, or
    /// [`RegistryError::UploadLost`] when it dropped the session. Errors reading `data`
    /// come back as they are ([`StreamError::Source`]), never as registry errors, so a
    /// corrupt source is not taken for a broken connection.
    pub fn stream(&mut self, data: &mut dyn io::Read, len: u64) -> Result<(), StreamError> {
        debug_assert!(self.buf.is_empty());
        let what = "upload blob";
        if len == 0 {
            return Ok(());
        }
        let end = self.offset + len - 1;
        let mut req = Request::new(Method::Patch, self.location.clone(), self.scopes.clone())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{}-{end}", self.offset));
        req.retry = false;
        let mut src = Catch { inner: data, err: None };
        let result = self.client.send_streamed(&req, &mut src, len, what);
        if let Some(e) = src.err {
            return Err(StreamError::Source(e));
        }
        self.sent += len;
        let why = match result {
            Ok(resp) if resp.status() == 202 => {
                if let Some(l) = location_of(&self.client, &resp) {
                    self.location = l.map_err(StreamError::from)?;
                }
                self.offset = end + 1;
                return Ok(());
            }
            Ok(resp) => self.client.status_error(resp, &self.repository, what).to_string(),
            Err(e) => e.to_string(),
        };
        let offset = match self.status() {
            Ok(o) => o,
            Err(e) => {
                return Err(StreamError::from(RegistryError::UploadLost {
                    registry: self.client.registry().to_string(),
                    repository: self.repository.clone(),
                    why: format!("{why}; then {e}"),
                }))
            }
        };
        Err(StreamError::from(RegistryError::UploadInterrupted {
            registry: self.client.registry().to_string(),
            repository: self.repository.clone(),
            offset,
            why,
        }))
    }

    /// The session's status: how many bytes the registry holds (`GET` on its URL).
    fn status(&mut self) -> Result<u64, RegistryError> {
        let what = "upload status";
        let req = Request::new(Method::Get, self.location.clone(), self.scopes.clone());
        let resp = self.client.send(&req, what)?;
        if resp.status() != 204 && resp.status() != 200 {
            return Err(self.client.status_error(resp, &self.repository, what));
        }
        if let Some(l) = location_of(&self.client, &resp) {
            self.location = l?;
        }
        Ok(range_end(&resp).unwrap_or(0))
    }

    fn with_query(&self, q: &str) -> String {
        let sep = if self.location.contains('?') { '&' } else { '?' };
        format!("{}{sep}{q}", self.location)
    }

    /// Sends the buffered bytes with one `PATCH`, resuming after failures.
    fn flush_chunk(&mut self) -> Result<(), RegistryError> {
        let what = "upload blob chunk";
        let mut failures = 0;
        while !self.buf.is_empty() {
            let end = self.offset + self.buf.len() as u64 - 1;
            let mut req = Request::new(Method::Patch, self.location.clone(), self.scopes.clone())
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{}-{end}", self.offset))
                .body(&self.buf);
            req.retry = false;
            self.sent += self.buf.len() as u64;
            let failure = match self.client.send(&req, what) {
                Ok(resp) if resp.status() == 202 => {
                    let next = range_end(&resp).filter(|n| *n > 0).unwrap_or(end + 1);
                    if let Some(l) = location_of(&self.client, &resp) {
                        self.location = l?;
                    }
                    self.advance_to(next)?;
                    failures = 0;
                    continue;
                }
                Ok(resp) if resp.status() == 416 || resp.status() == 429 || resp.status().as_u16() >= 500 => {
                    let wait = retry_after(&resp);
                    (self.client.status_error(resp, &self.repository, what), wait)
                }
                Ok(resp) => return Err(self.client.status_error(resp, &self.repository, what)),
                Err(e) => (e, None),
            };
            failures += 1;
            if failures >= MAX_ATTEMPTS {
                return Err(failure.0);
            }
            sleep_backoff(failures, failure.1);
            if let Err(e) = self.recover() {
                return Err(RegistryError::UploadLost {
                    registry: self.client.registry().to_string(),
                    repository: self.repository.clone(),
                    why: format!("{}; then {e}", failure.0),
                });
            }
        }
        Ok(())
    }

    /// Asks the registry how much of the session it holds and continues from there.
    fn recover(&mut self) -> Result<(), RegistryError> {
        let next = self.status()?;
        self.advance_to(next)
    }

    fn advance_to(&mut self, next: u64) -> Result<(), RegistryError> {
        let have = self.offset + self.buf.len() as u64;
        if next < self.offset || next > have {
            return Err(self.client.protocol_error(
                &self.repository,
                "upload blob chunk",
                format!(
                    "the registry reports {next} bytes received; {} were acknowledged and {have} sent, so the upload cannot resume",
                    self.offset
                ),
            ));
        }
        self.buf.drain(..(next - self.offset) as usize);
        self.offset = next;
        Ok(())
    }

    /// Completes the upload as blob `digest` (`PUT ?digest=`, with the remaining bytes
    /// when the whole blob fits in one chunk). Returns the bytes sent.
    pub fn finish(mut self, digest: &Digest) -> Result<u64, RegistryError> {
        let what = format!("finish upload of blob {digest}");
        if self.offset > 0 {
            self.flush_chunk()?;
        }
        let url = self.with_query(&format!("digest={digest}"));
        let req = Request::new(Method::Put, url, self.scopes.clone())
            .header("Content-Type", "application/octet-stream")
            .body(&self.buf);
        self.sent += self.buf.len() as u64;
        let resp = self.client.send(&req, &what)?;
        match resp.status().as_u16() {
            201 | 204 => Ok(self.sent),
            _ => Err(self.client.status_error(resp, &self.repository, &what)),
        }
    }

    /// Abandons the session (`DELETE`, best effort).
    pub fn cancel(self) {
        let mut req = Request::new(Method::Delete, self.location.clone(), self.scopes.clone());
        req.retry = false;
        let _ = self.client.send(&req, "cancel upload");
    }

    /// Bytes accepted so far (acknowledged plus buffered).
    pub fn len(&self) -> u64 {
        self.offset + self.buf.len() as u64
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why [`Upload::stream`] failed.
#[derive(Debug)]
pub enum StreamError {
    /// Reading the blob failed: the reader's own error (a digest mismatch, a truncation).
    Source(io::Error),
    /// The request or the session failed ([`RegistryError::UploadInterrupted`] when the
    /// registry kept the session).
    Registry(Box<RegistryError>),
}

impl From<RegistryError> for StreamError {
    fn from(e: RegistryError) -> StreamError {
        StreamError::Registry(Box::new(e))
    }
}

/// A reader that keeps the first error it returned, so that a failed request can tell a
/// source that failed (digest mismatch, truncation) from a connection that did.
struct Catch<'a> {
    inner: &'a mut dyn io::Read,
    err: Option<io::Error>,
}

impl io::Read for Catch<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) => {
                // The original goes to the caller; the HTTP client gets a stand-in.
                let stand_in = io::Error::new(e.kind(), "reading the blob failed");
                self.err.get_or_insert(e);
                Err(stand_in)
            }
            ok => ok,
        }
    }
}

impl Write for Upload {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= self.chunk {
            self.flush_chunk().map_err(io::Error::other)?;
        }
        let n = data.len().min(self.chunk - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_range_headers() {
        let r = ureq::http::Response::builder().header("Range", "0-1023").body(ureq::Body::builder().data("")).unwrap();
        assert_eq!(range_end(&r), Some(1024));
        let r =
            ureq::http::Response::builder().header("Range", "bytes=0-9").body(ureq::Body::builder().data("")).unwrap();
        assert_eq!(range_end(&r), Some(10));
        let r = ureq::http::Response::builder().header("Range", "0-0").body(ureq::Body::builder().data("")).unwrap();
        assert_eq!(range_end(&r), Some(0));
    }
}
