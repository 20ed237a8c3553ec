//! Debian packages as an image source: archive access, verification, resolution,
//! extraction, dpkg metadata and SBOM — without dpkg, apt or a daemon.
//!
//! [`prepare`] runs the whole pipeline for a [`DebSpec`]:
//! 1. [`sources`]: the mirror and suite (flags, `pinnace.toml`, the host's apt sources);
//! 2. [`release`]: `InRelease`, its OpenPGP signature checked against the archive keyring,
//!    for the release and, when stable, its `-updates` and `-security` [`suites`];
//! 3. [`index`]: `Packages`, checked against the SHA256 in `InRelease`, parsed by
//!    [`control`], versions compared by [`version`];
//! 4. [`resolve`]: the package set (presets from [`presets`], `--exclude`);
//! 5. [`fetch`]: every `.deb`, checked against the SHA256 in `Packages`, through the
//!    content-addressed cache, in parallel;
//! 6. [`extract`]: `data.tar` into layer entries; [`postinst`]: what maintainer scripts
//!    would have made (CA bundle, Java trust store in [`jks`], `/usr/bin/java`), and
//!    [`status`] entries for scanners;
//! 7. [`layers`]: one layer per popularity group; [`root`] lets `--binary` closures
//!    resolve inside the package set; [`sbom`] describes it all in SPDX.

pub mod control;
pub mod extract;
pub mod fetch;
pub mod index;
pub mod jks;
pub mod layers;
pub mod ldconfig;
pub mod postinst;
pub mod presets;
pub mod release;
pub mod resolve;
pub mod root;
pub mod sbom;
pub mod sources;
pub mod status;
pub mod suites;
pub mod version;

mod pipeline;

use std::path::PathBuf;

use serde::Deserialize;

pub use pipeline::{prepare, DebImage, InstalledPackage};
pub use root::PackageRoot;

/// Why reading packages failed.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// The request is malformed (unknown preset, ...).
    #[error("{0}")]
    Spec(String),
    /// An HTTP request failed.
    #[error("downloading {url}: {why} (check --mirror and the network, or use --offline with a warm cache)")]
    Http {
        /// The URL.
        url: String,
        /// The failure.
        why: String,
    },
    /// `--offline` and the file is not cached.
    #[error("{url} is not in the cache and --offline is set: run once without --offline")]
    Offline {
        /// The URL.
        url: String,
    },
    /// A local file could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The signature of InRelease (or the keyring) is not acceptable.
    #[error("{file}: OpenPGP signature check failed: {why} (--keyring FILE names another keyring)")]
    Signature {
        /// The file.
        file: String,
        /// Why.
        why: String,
    },
    /// A file's SHA256 differs from what the signed chain says.
    #[error("{file}: SHA256 mismatch: expected {expected}, got {actual}; the file was altered or damaged in transit")]
    Checksum {
        /// URL or cache path.
        file: String,
        /// Expected checksum.
        expected: String,
        /// Computed checksum.
        actual: String,
    },
    /// A file the build needs is not listed in InRelease.
    #[error("{file} is not listed in {release} (wrong --suite or architecture?)")]
    NotInRelease {
        /// The file.
        file: String,
        /// The release file's URL.
        release: String,
    },
    /// An index or release file is malformed.
    #[error("{file}: line {line}: {why}")]
    Index {
        /// The file.
        file: String,
        /// Line (0 when unknown).
        line: usize,
        /// Why.
        why: String,
    },
    /// Dependencies cannot be satisfied.
    #[error("cannot install {}: {why}", chain.join(" -> "))]
    Unsatisfiable {
        /// From the package asked for down to the one that fails.
        chain: Vec<String>,
        /// What is missing or conflicting.
        why: String,
    },
    /// A .deb is malformed.
    #[error("{file}: {why}")]
    Deb {
        /// The package file.
        file: String,
        /// Why.
        why: String,
    },
    /// Building a layer failed.
    #[error(transparent)]
    Writer(#[from] crate::layer::WriterError),
}

impl DebError {
    /// An [`DebError::Index`] without a line.
    pub fn index(file: &str, why: &str) -> DebError {
        DebError::Index { file: file.into(), line: 0, why: why.into() }
    }
}

/// What to take from Debian: the `[debian]` table of `pinnace.toml` and the package flags
/// of `pinnace build`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DebSpec {
    /// Packages to install (`NAME` or `NAME=VERSION`), with their dependencies.
    #[serde(default)]
    pub packages: Vec<String>,
    /// A preset (`static`, `base`, `cc`, `python3`, `java17`).
    #[serde(default)]
    pub preset: Option<String>,
    /// Suite or codename (default: the host's, else bookworm).
    #[serde(default)]
    pub suite: Option<String>,
    /// Mirror URL (default: the host's, else deb.debian.org).
    #[serde(default)]
    pub mirror: Option<String>,
    /// Debian architecture (default amd64).
    #[serde(default)]
    pub arch: Option<String>,
    /// Packages to leave out (added to [`presets::DEFAULT_EXCLUDE`]).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Most package layers (default [`layers::DEFAULT_MAX_LAYERS`]).
    #[serde(default)]
    pub max_layers: Option<usize>,
    /// Where to write the SPDX SBOM.
    #[serde(default)]
    pub sbom: Option<PathBuf>,
    /// Keyring to verify InRelease with (default the Debian archive keyring).
    #[serde(default)]
    pub keyring: Option<PathBuf>,
    /// Skip the signature check of InRelease (checksums are still verified).
    #[serde(default)]
    pub insecure_skip_signature: bool,
    /// Use only the cache.
    #[serde(default)]
    pub offline: bool,
    /// Read the release alone, without its `-updates` and `-security` suites.
    #[serde(default)]
    pub no_updates: bool,
    /// Draw progress bars on a terminal (set by the CLI, not by files).
    #[serde(skip)]
    pub progress: bool,
}

impl DebSpec {
    /// Whether no package is asked for.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty() && self.preset.is_none()
    }

    /// Overlays `other` (flags) on `self` (file): values replace, lists extend, switches or.
    pub fn merge(mut self, other: DebSpec) -> DebSpec {
        self.packages.extend(other.packages);
        self.exclude.extend(other.exclude);
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(preset, suite, mirror, arch, max_layers, sbom, keyring);
        self.insecure_skip_signature |= other.insecure_skip_signature;
        self.offline |= other.offline;
        self.no_updates |= other.no_updates;
        self.progress |= other.progress;
        self
    }

    /// Makes relative paths relative to `dir` (for `pinnace.toml`).
    pub fn rebase(&mut self, dir: &std::path::Path) {
        for p in [self.sbom.as_mut(), self.keyring.as_mut()].into_iter().flatten() {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }
}
