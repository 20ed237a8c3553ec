//! Downloads from the archive with a content-addressed cache.
//!
//! Cache layout (under `$XDG_CACHE_HOME/pinnace/deb`, else `~/.cache/pinnace/deb`):
//! `sha256/HEX` holds files whose SHA256 the signed chain names (`Packages`, `.deb`s);
//! `url/HEX` holds the last `InRelease` fetched from a URL (HEX = SHA256 of the URL), which
//! is verified by signature on every use, not by name. Every write is atomic (temp file,
//! fsync, rename) so an interrupted download never leaves a partial file under a digest
//! name, and every read of `sha256/` re-hashes the file before it is used: a damaged or
//! tampered cache entry is re-downloaded, or is an error naming it with `--offline`.
//!
//! `derived/KIND/HEX` holds what pinnace computed from the verified file `sha256/HEX`
//! (today `repacked-v1`: a .deb with zstd instead of xz, see `extract::repack`). It is
//! written only after that file was verified, and used only when that file verifies on
//! the same build; its own integrity is its format's (zstd checksums), since no signature
//! covers bytes pinnace made. A derived entry that does not read is ignored and remade.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::oci::Digest;
use crate::progress::Progress;

use super::DebError;

/// At most this many downloads run at once (polite to mirrors, enough to fill a link).
pub const PARALLEL: usize = 4;

/// The largest single file accepted (a .deb or an index), as a guard against endless bodies.
const MAX_BYTES: u64 = 2 << 30;

/// One file to fetch and the checksum the signed chain gives for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Full URL.
    pub url: String,
    /// Expected SHA256, lowercase hex.
    pub sha256: String,
    /// Expected size.
    pub size: u64,
}

/// HTTP access plus the cache.
#[derive(Debug)]
pub struct Fetcher {
    dir: PathBuf,
    offline: bool,
    progress: bool,
    agent: ureq::Agent,
}

/// The cache directory: `$XDG_CACHE_HOME/pinnace/deb` or `~/.cache/pinnace/deb`.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("pinnace").join("deb")
}

impl Fetcher {
    /// A fetcher caching under `dir`; `offline` serves only from the cache; `progress`
    /// draws a bar on a terminal.
    pub fn new(dir: PathBuf, offline: bool, progress: bool) -> Fetcher {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_global(Some(Duration::from_secs(600)))
            .user_agent(concat!("pinnace/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Fetcher { dir, offline, progress, agent }
    }

    fn by_digest(&self, sha256: &str) -> PathBuf {
        self.dir.join("sha256").join(sha256)
    }

    /// The cached file with this checksum, re-verified; `None` if absent or damaged.
    pub fn cached(&self, sha256: &str, size: u64) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.by_digest(sha256)).ok()?;
        (bytes.len() as u64 == size && Digest::of(&bytes).hex() == sha256).then_some(bytes)
    }

    /// The entry of `kind` derived from the verified file `sha256`, if present.
    pub fn derived(&self, kind: &str, sha256: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join("derived").join(kind).join(sha256)).ok()
    }

    /// Stores the entry of `kind` derived from the verified file `sha256` (atomically).
    pub fn store_derived(&self, kind: &str, sha256: &str, bytes: &[u8]) -> Result<(), DebError> {
        write(&self.dir.join("derived").join(kind).join(sha256), bytes)
    }

    /// Stores `bytes` under their checksum (atomically).
    pub fn store(&self, sha256: &str, bytes: &[u8]) -> Result<(), DebError> {
        write(&self.by_digest(sha256), bytes)
    }

    /// The file at `url` whose SHA256 must be `sha256`: from the cache, or downloaded,
    /// verified and stored. A mismatch is an error naming the URL and both checksums.
    pub fn get(&self, url: &str, sha256: &str, size: u64) -> Result<Vec<u8>, DebError> {
        self.get_counted(url, sha256, size, &Progress::bytes(false, 0, ""))
    }

    fn get_counted(&self, url: &str, sha256: &str, size: u64, bar: &Progress) -> Result<Vec<u8>, DebError> {
        if let Some(b) = self.cached(sha256, size) {
            bar.inc(size);
            return Ok(b);
        }
        let path = self.by_digest(sha256);
        if self.offline {
            if path.exists() {
                let actual = std::fs::read(&path).map(|b| Digest::of(&b).hex()).unwrap_or_default();
                return Err(DebError::Checksum { file: path.display().to_string(), expected: sha256.into(), actual });
            }
            return Err(DebError::Offline { url: url.to_string() });
        }
        let bytes = self.download(url, Some(size), bar)?;
        let actual = Digest::of(&bytes).hex();
        if actual != sha256 || bytes.len() as u64 != size {
            return Err(DebError::Checksum { file: url.to_string(), expected: sha256.into(), actual });
        }
        self.store(sha256, &bytes)?;
        Ok(bytes)
    }

    /// A file that is verified by other means (InRelease: by signature). Online it is
    /// always downloaded fresh and cached by URL; offline the cached copy is returned.
    pub fn get_unverified(&self, url: &str) -> Result<Vec<u8>, DebError> {
        let path = self.dir.join("url").join(Digest::of(url.as_bytes()).hex());
        if self.offline {
            return std::fs::read(&path).map_err(|_| DebError::Offline { url: url.to_string() });
        }
        let bytes = self.download(url, None, &Progress::bytes(false, 0, ""))?;
        write(&path, &bytes)?;
        Ok(bytes)
    }

    fn download(&self, url: &str, size: Option<u64>, bar: &Progress) -> Result<Vec<u8>, DebError> {
        let http = |why: String| DebError::Http { url: url.to_string(), why };
        let mut resp = self.agent.get(url).call().map_err(|e| http(e.to_string()))?;
        let limit = size.map_or(MAX_BYTES, |s| s.saturating_add(1));
        let mut out = Vec::with_capacity(size.unwrap_or(1 << 16) as usize);
        let mut reader = resp.body_mut().with_config().limit(limit).reader();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = reader.read(&mut buf).map_err(|e| http(e.to_string()))?;
            if n == 0 {
                break;
            }
            bar.inc(n as u64);
            out.extend_from_slice(&buf[..n]);
        }
        Ok(out)
    }

    /// Fetches every file (cached ones are only re-verified), at most [`PARALLEL`] at a
    /// time, with one progress bar over the total size. Results keep the input order.
    pub fn get_all(&self, wanted: &[Wanted]) -> Result<Vec<Vec<u8>>, DebError> {
        let missing: u64 = wanted.iter().filter(|w| !self.by_digest(&w.sha256).exists()).map(|w| w.size).sum();
        let bar = Progress::bytes(self.progress && missing > 0, wanted.iter().map(|w| w.size).sum(), "packages");
        let next = AtomicUsize::new(0);
        type Slot = Option<Result<Vec<u8>, DebError>>;
        let results: Mutex<Vec<Slot>> = Mutex::new((0..wanted.len()).map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..PARALLEL.min(wanted.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(w) = wanted.get(i) else { break };
                    let r = self.get_counted(&w.url, &w.sha256, w.size, &bar);
                    let failed = r.is_err();
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                    if failed {
                        // Stop handing out work; the first error is reported.
                        next.store(wanted.len(), Ordering::Relaxed);
                    }
                });
            }
        });
        bar.finish();
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(wanted.len());
        for r in results {
            match r {
                Some(r) => out.push(r?),
                None => unreachable!("every index is fetched unless an earlier one failed"),
            }
        }
        Ok(out)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), DebError> {
    let io = |source| DebError::Io { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    crate::blob::write_atomic(path, bytes).map_err(|source| DebError::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_verified_on_read_and_offline_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = Fetcher::new(dir.path().to_path_buf(), true, false);
        let data = b"hello".to_vec();
        let sha = Digest::of(&data).hex();
        f.store(&sha, &data).unwrap();
        assert_eq!(f.get("http://x/y", &sha, 5).unwrap(), data);
        std::fs::write(dir.path().join("sha256").join(&sha), b"hellO").unwrap();
        assert!(f.cached(&sha, 5).is_none());
        let e = f.get("http://x/y", &sha, 5).unwrap_err();
        assert!(matches!(e, DebError::Checksum { .. }), "{e}");
        let e = f.get("http://x/z", &"0".repeat(64), 1).unwrap_err();
        assert!(matches!(e, DebError::Offline { .. }), "{e}");
    }
}
