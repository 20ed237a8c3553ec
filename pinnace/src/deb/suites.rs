//! The suites a build reads: the release asked for and, when it is a stable release
//! (its `InRelease` says `Suite: stable`, `oldstable`, ...), the two suites Debian
//! updates it through, as a default apt configuration does:
//!
//! - `CODENAME-updates` from the same mirror (stable-updates: time zones, certificates,
//!   fixes that cannot wait for a point release);
//! - `CODENAME-security` from the host's security source, else
//!   [`sources::DEFAULT_SECURITY_MIRROR`].
//!
//! Each `InRelease` is verified the same way (signature against the keyring, then the
//! SHA256 chain to `Packages` and each `.deb`) and must name the suite it was fetched
//! for, so a mirror cannot answer one suite's request with another suite's signed file.
//! Packages of all suites form one universe, in which the resolver takes the highest
//! version of a name (so an update or security fix wins over the release's version, as
//! with apt's equal default priorities); each package remembers its suite, for its
//! download URL. `--no-updates` reads the release alone. The companion suites are read
//! in parallel, after the release (whose `InRelease` gives the codename).

use std::path::Path;

use pgp::composed::SignedPublicKey;

use super::fetch::Fetcher;
use super::release::{self, Release};
use super::sources::{self, Archive};
use super::{index, DebError};

/// One suite: where it is, its verified `InRelease`, and its `Packages` texts.
#[derive(Debug)]
pub struct Suite {
    /// Mirror URL (the .debs' `Filename`s are relative to it).
    pub mirror: String,
    /// Suite name as fetched (`bookworm`, `bookworm-security`).
    pub name: String,
    /// Its `InRelease`.
    pub release: Release,
    /// (URL, text) of each component's `Packages`.
    pub indexes: Vec<(String, String)>,
}

/// Reads the release of `archive` and, for a stable release unless `no_updates`, its
/// `-updates` and `-security` suites. `keys` is `None` with `--insecure-skip-signature`.
pub fn read(
    fetcher: &Fetcher,
    archive: &Archive,
    keys: Option<&[SignedPublicKey]>,
    no_updates: bool,
    etc_apt: &Path,
) -> Result<Vec<Suite>, DebError> {
    let main = read_one(fetcher, archive, &archive.mirror, &archive.suite, keys, false)?;
    if no_updates || !main.release.is_stable_release() || main.release.suite.is_empty() {
        return Ok(vec![main]);
    }
    let code = main.release.suite.clone();
    let companions = [
        (archive.mirror.clone(), format!("{code}-updates")),
        (sources::security_mirror(&code, etc_apt), format!("{code}-security")),
    ];
    let read: Vec<Result<Suite, DebError>> = std::thread::scope(|s| {
        let handles: Vec<_> = companions
            .iter()
            .map(|(mirror, suite)| s.spawn(move || read_one(fetcher, archive, mirror, suite, keys, true)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(DebError::Spec("reading a suite panicked".into()))))
            .collect()
    });
    let mut out = vec![main];
    for r in read {
        out.push(r.map_err(with_hint)?);
    }
    Ok(out)
}

/// A companion suite that cannot be read is an error (silently building without
/// security fixes would be worse); the message says how to build without it.
fn with_hint(e: DebError) -> DebError {
    match e {
        DebError::Http { url, why } => {
            DebError::Http { url, why: format!("{why}; --no-updates builds from the release alone") }
        }
        other => other,
    }
}

fn read_one(
    fetcher: &Fetcher,
    archive: &Archive,
    mirror: &str,
    suite: &str,
    keys: Option<&[SignedPublicKey]>,
    companion: bool,
) -> Result<Suite, DebError> {
    let base_url = format!("{mirror}/dists/{suite}/");
    let url = format!("{base_url}InRelease");
    let bytes = fetcher.get_unverified(&url)?;
    let text = match keys {
        Some(k) => release::verify(&bytes, k, &url)?,
        None => release::unverified_text(&bytes),
    };
    let rel = Release::parse(&text, &base_url)?;
    if !rel.suite.is_empty() && rel.suite != suite && rel.suite_class != suite {
        return Err(DebError::index(
            &url,
            &format!(
                "signed for suite {} ({}), not {suite}: the mirror answered with another suite's file",
                rel.suite, rel.suite_class
            ),
        ));
    }
    let mut indexes = Vec::new();
    for c in &archive.components {
        let file = format!("{c}/binary-{}/Packages", archive.arch);
        match index::load(fetcher, &rel, c, &archive.arch) {
            Ok(text) => indexes.push((rel.url(&file), text)),
            // The security archive carries fewer architectures than the release: a
            // companion without this one has no updates for it.
            Err(DebError::NotInRelease { .. }) if companion => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Suite { mirror: mirror.to_string(), name: suite.to_string(), release: rel, indexes })
}
