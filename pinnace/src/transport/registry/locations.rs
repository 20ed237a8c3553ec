//! Where blobs are known to live, so a push can mount a blob from another repository of
//! the same registry instead of uploading it (`POST ?mount=DIGEST&from=REPO`).
//!
//! Two sources of knowledge: in this process, every manifest a registry source serves
//! names its blobs' repository; across processes, a small cache file
//! (`$XDG_CACHE_HOME/pinnace/blob-locations.json`, else `~/.cache/...`) records where
//! pinnace pushed or read blobs. The cache is advisory: a stale entry costs one refused
//! mount, after which the blob is uploaded. It is merged with the file on disk and
//! written atomically when a push commits, and bounded ([`MAX_REPOS`] repositories per
//! blob, [`MAX_BLOBS`] blobs per registry, the oldest dropped).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::blob::write_atomic;
use crate::oci::Digest;

/// Repositories remembered per blob.
pub const MAX_REPOS: usize = 4;
/// Blobs remembered per registry.
pub const MAX_BLOBS: usize = 20_000;

/// registry -> blob -> (repositories, most recent last; sequence number of the last use).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Table {
    #[serde(default)]
    registries: BTreeMap<String, BTreeMap<String, (Vec<String>, u64)>>,
    #[serde(default)]
    seq: u64,
}

impl Table {
    fn add(&mut self, registry: &str, repository: &str, digest: &Digest) {
        self.seq += 1;
        let seq = self.seq;
        let blobs = self.registries.entry(registry.to_string()).or_default();
        let e = blobs.entry(digest.to_string()).or_default();
        e.0.retain(|r| r != repository);
        e.0.push(repository.to_string());
        if e.0.len() > MAX_REPOS {
            e.0.remove(0);
        }
        e.1 = seq;
        if blobs.len() > MAX_BLOBS {
            if let Some(oldest) = blobs.iter().min_by_key(|(_, v)| v.1).map(|(k, _)| k.clone()) {
                blobs.remove(&oldest);
            }
        }
    }

    fn merge(&mut self, other: Table) {
        for (reg, blobs) in other.registries {
            for (d, (repos, _)) in blobs {
                if let Ok(d) = d.parse::<Digest>() {
                    for r in repos {
                        self.add(&reg, &r, &d);
                    }
                }
            }
        }
    }
}

fn state() -> &'static Mutex<Table> {
    static T: OnceLock<Mutex<Table>> = OnceLock::new();
    T.get_or_init(|| Mutex::new(load().unwrap_or_default()))
}

fn cache_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("pinnace/blob-locations.json"))
}

fn load() -> Option<Table> {
    serde_json::from_slice(&std::fs::read(cache_file()?).ok()?).ok()
}

/// Records that `registry`/`repository` holds these blobs (in this process).
pub fn remember(registry: &str, repository: &str, digests: &[Digest]) {
    if let Ok(mut t) = state().lock() {
        for d in digests {
            t.add(registry, repository, d);
        }
    }
}

/// Repositories of `registry` other than `except` that are known to hold `digest`,
/// most recent first.
pub fn candidates(registry: &str, digest: &Digest, except: &str) -> Vec<String> {
    let Ok(t) = state().lock() else { return Vec::new() };
    let Some(e) = t.registries.get(registry).and_then(|b| b.get(&digest.to_string())) else {
        return Vec::new();
    };
    e.0.iter().rev().filter(|r| r.as_str() != except).cloned().collect()
}

/// Writes what this process learnt to the cache file (merged with its current content).
/// Failures are ignored: the cache only saves uploads.
pub fn save() {
    let Some(path) = cache_file() else { return };
    let Ok(t) = state().lock() else { return };
    let mut merged = load().unwrap_or_default();
    merged.merge(t.clone());
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(bytes) = serde_json::to_vec(&merged) {
        let _ = write_atomic(&path, &bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keeps_recent_repositories() {
        let mut t = Table::default();
        let d = Digest::of(b"blob");
        for r in ["a", "b", "c", "d", "e", "b"] {
            t.add("reg:5000", r, &d);
        }
        let e = &t.registries["reg:5000"][&d.to_string()];
        assert_eq!(e.0, vec!["c", "d", "e", "b"]);
        let mut u = Table::default();
        u.merge(t.clone());
        assert_eq!(u.registries["reg:5000"][&d.to_string()].0.len(), MAX_REPOS);
    }
}
