//! `doctor`: will this image run, and is it clean? Read from the image's own bytes, with
//! no daemon (only `--run` starts it, under podman or docker).
//!
//! How the image is read ([`scan`]): every layer is streamed once, in parallel, into an
//! [`FsTree`](crate::fs::FsTree), exactly as `inspect` does. While the bytes pass, a
//! capture plan ([`capture`]) keeps what the checks need and nothing else: small
//! configuration files whole (`/etc/passwd`, `/etc/group`, `/etc/ld.so.cache`), the first
//! bytes of scripts, candidate secrets (up to 64 KiB), and for every ELF file in a `bin`
//! directory or named like a shared library, only its headers and dynamic tables
//! ([`sparse`]), plus the facts of executables computed from their whole bytes before
//! those are dropped. The entrypoint's shared-library closure is then resolved the way
//! ld.so would inside the image ([`crate::elf::resolve_closure`] over [`rootfs`]). A file
//! the analysis needs that the plan did not keep (an entrypoint reached through a symbolic
//! link to an odd place, a library outside the usual directories) is fetched by a second,
//! targeted pass over only the layers that hold it.
//!
//! The checks, one module per family, each finding with an id from [`checks::CHECKS`]:
//! [`command`] (entrypoint, shell form), [`elf`] and [`versions`] (interpreter,
//! libraries, architecture, C library, symbol versions), [`scripts`] (shebangs), [`user`],
//! [`tls`], [`tz`], [`secrets`], [`waste`], [`hygiene`] (UPX, symbols, setuid,
//! world-writable directories, `/tmp`, root) and [`run`] (`--run`).
//!
//! ```no_run
//! use pinnace::analyze::doctor::{doctor, DoctorOptions, Severity};
//! use pinnace::transport::{open_source, Image, ImageRef};
//!
//! let r: ImageRef = "oci-archive:app.tar".parse()?;
//! let src = open_source(&r)?;
//! let image = Image::open(src.as_ref(), None)?;
//! let report = doctor(src.as_ref(), &image, &DoctorOptions::default())?;
//! for f in &report.findings {
//!     println!("{} {} {}", f.severity, f.id, f.message);
//! }
//! assert!(!report.fails(Severity::Error) || report.summary.errors > 0);
//! # Ok::<(), pinnace::Error>(())
//! ```

pub mod capture;
pub mod checks;
pub mod command;
pub mod elf;
pub mod hygiene;
pub mod rootfs;
pub mod run;
pub mod scan;
pub mod scripts;
pub mod secrets;
pub mod sparse;
pub mod tls;
pub mod tz;
pub mod user;
pub mod versions;
pub mod waste;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::AnalyzeError;
use crate::oci::{Digest, Platform};
use crate::transport::{Image, Source, TransportError};

pub use checks::{Check, CHECKS};

/// The version of the `--json` schema ([`Report`]); bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// How bad a finding is. Ordered: `Info < Warn < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing is wrong.
    Info,
    /// Works, but is wasteful, fragile or unsafe.
    Warn,
    /// The image will not run as configured (or leaks a secret).
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        })
    }
}

impl FromStr for Severity {
    type Err = DoctorError;
    fn from_str(s: &str) -> Result<Severity, DoctorError> {
        match s {
            "info" => Ok(Severity::Info),
            "warn" | "warning" => Ok(Severity::Warn),
            "error" => Ok(Severity::Error),
            _ => Err(DoctorError::BadSeverity(s.to_string())),
        }
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check's id, e.g. `elf-missing-library` (see [`CHECKS`]).
    pub id: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// The path in the image it is about, if any.
    pub path: Option<String>,
    /// The layer it is about (index, bottom first), if any.
    pub layer: Option<usize>,
    /// What is wrong, specifically.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl Finding {
    /// A finding of check `id` with the check's severity and fix.
    ///
    /// # Panics
    /// When `id` is not in [`CHECKS`] (a bug: every id is declared there).
    pub fn new(id: &'static str, message: impl Into<String>) -> Finding {
        let c = checks::check(id).unwrap_or_else(|| panic!("undeclared doctor check id {id}"));
        Finding { id: c.id, severity: c.severity, path: None, layer: None, message: message.into(), fix: c.fix.into() }
    }

    /// The same finding about `path`.
    pub fn at(mut self, path: impl Into<String>) -> Finding {
        self.path = Some(path.into());
        self
    }

    /// The same finding about layer `layer`.
    pub fn in_layer(mut self, layer: usize) -> Finding {
        self.layer = Some(layer);
        self
    }

    /// The same finding with a more specific fix.
    pub fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = fix.into();
        self
    }
}

/// Counts of findings by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Findings of severity error.
    pub errors: usize,
    /// Findings of severity warn.
    pub warnings: usize,
    /// Findings of severity info.
    pub infos: usize,
}

/// How much of the image was read, for `--json` readers and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Layers streamed by the main pass.
    pub layers: usize,
    /// Layers streamed again by targeted passes (files the plan did not keep).
    pub layers_reread: usize,
    /// ELF files whose headers were kept.
    pub elf_files: usize,
    /// Bytes kept of all captured files (ELF headers and tables, scripts' first lines,
    /// configuration files).
    pub kept_bytes: u64,
    /// ELF files whose closure was resolved (entrypoint programs and interpreters).
    pub programs: usize,
}

/// The result of [`doctor`] (the `--json` schema, version [`SCHEMA_VERSION`]).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The image reference.
    pub image: String,
    /// Manifest digest.
    pub manifest_digest: Digest,
    /// Config digest (the image ID).
    pub config_digest: Digest,
    /// Platform from the config.
    pub platform: Platform,
    /// The command the image runs: entrypoint then cmd.
    pub command: Vec<String>,
    /// The config's user (`None`: root).
    pub user: Option<String>,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Counts by severity.
    pub summary: Summary,
    /// What `--run` saw.
    pub run: Option<run::RunReport>,
    /// How much was read.
    pub stats: Stats,
}

impl Report {
    /// Whether any finding is at least as severe as `level` (the exit-1 rule of `--fail-on`).
    pub fn fails(&self, level: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= level)
    }
}

/// Options of [`doctor`].
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// Parallel layer scans; 0 means `available_parallelism`.
    pub threads: usize,
    /// Also start the image (podman, else docker) and watch it ([`run`]).
    pub run: bool,
    /// With `run`: how long the container must stay up to count as "stays up".
    pub run_wait: Duration,
    /// With `run`: the grace period `stop` gives after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
    /// Files deleted or overwritten by a later layer are reported from this size on.
    pub deleted_threshold: u64,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        DoctorOptions {
            threads: 0,
            run: false,
            run_wait: Duration::from_secs(3),
            stop_timeout: Duration::from_secs(10),
            deleted_threshold: 1 << 20,
        }
    }
}

/// Errors of [`doctor`]: the image could not be read, or `--run` could not run it.
/// Problems *of* the image are findings, never errors.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// A layer could not be read.
    #[error(transparent)]
    Read(#[from] AnalyzeError),
    /// Loading the image into podman or docker for `--run` failed.
    #[error("loading the image into {engine} for --run: {source}")]
    Load {
        /// `podman` or `docker`.
        engine: &'static str,
        /// What failed.
        source: Box<TransportError>,
    },
    /// Neither podman nor docker can be run.
    #[error("--run needs podman or docker, and neither works here ({0}); run doctor without --run")]
    NoEngine(String),
    /// podman or docker failed in a way that says nothing about the image.
    #[error("{command}: {why}")]
    Engine {
        /// The command line.
        command: String,
        /// What happened, with its stderr.
        why: String,
    },
    /// A severity name did not parse.
    #[error("severity {0:?}: expected error, warn or info")]
    BadSeverity(String),
}

/// Examines `image` (see the module documentation) and reports every finding.
pub fn doctor(src: &dyn Source, image: &Image, opts: &DoctorOptions) -> Result<Report, DoctorError> {
    let launch = command::Launch::from_image(image);
    let plan = capture::Plan::new(&launch);
    let mut snap = scan::read_image(src, image, &plan, opts)?;
    let mut findings = Vec::new();
    let analysis = elf::analyze_until_complete(src, image, &mut snap, &launch, opts)?;
    command::check(&snap, &launch, &analysis.chain, &mut findings);
    scripts::check(&snap, &launch, &analysis.chain, &mut findings);
    elf::check(&snap, image, &analysis, &mut findings);
    user::check(&snap, &launch, &mut findings);
    tls::check(&snap, &launch, &analysis, &mut findings);
    tz::check(&snap, &launch, &analysis, &mut findings);
    secrets::check(&snap, &mut findings);
    waste::check(&snap, &launch, &mut findings);
    hygiene::check(&snap, &analysis, &mut findings);
    let run = if opts.run {
        let (report, found) = run::run(src, image, opts)?;
        findings.extend(found);
        Some(report)
    } else {
        None
    };
    Ok(finish(src, image, &launch, findings, run, snap.stats(analysis.elf.len())))
}

/// Deduplicates and sorts the findings (most severe first, then by id and path) and counts them.
fn finish(
    src: &dyn Source,
    image: &Image,
    launch: &command::Launch,
    mut findings: Vec<Finding>,
    run: Option<run::RunReport>,
    stats: Stats,
) -> Report {
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(b.id)).then_with(|| a.path.cmp(&b.path)));
    findings.dedup_by(|a, b| a.id == b.id && a.path == b.path && a.message == b.message);
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let summary =
        Summary { errors: count(Severity::Error), warnings: count(Severity::Warn), infos: count(Severity::Info) };
    Report {
        schema_version: SCHEMA_VERSION,
        image: src.describe(),
        manifest_digest: image.manifest.digest,
        config_digest: image.config.digest,
        platform: image.platform(),
        command: launch.argv.clone(),
        user: launch.user.clone(),
        findings,
        summary,
        run,
        stats,
    }
}

pub(crate) use crate::progress::human_bytes as human;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Error > Severity::Warn && Severity::Warn > Severity::Info);
        assert_eq!("warn".parse::<Severity>().unwrap(), Severity::Warn);
        assert_eq!("error".parse::<Severity>().unwrap(), Severity::Error);
        assert!("fatal".parse::<Severity>().is_err());
        assert_eq!(serde_json::to_string(&Severity::Warn).unwrap(), "\"warn\"");
    }

    #[test]
    fn findings_take_the_table_severity_and_fix() {
        let f = Finding::new("entrypoint-missing", "gone").at("/app").in_layer(2);
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.path.as_deref(), Some("/app"));
        assert_eq!(f.layer, Some(2));
        assert!(!f.fix.is_empty());
        assert_eq!(Finding::new("runs-as-root", "x").severity, Severity::Info);
    }

    #[test]
    fn fail_on_levels() {
        let mk = |s: Severity| Report {
            schema_version: SCHEMA_VERSION,
            image: String::new(),
            manifest_digest: Digest::of(b""),
            config_digest: Digest::of(b""),
            platform: Platform::host(),
            command: vec![],
            user: None,
            findings: vec![Finding { severity: s, ..Finding::new("runs-as-root", "") }],
            summary: Summary::default(),
            run: None,
            stats: Stats::default(),
        };
        assert!(!mk(Severity::Warn).fails(Severity::Error));
        assert!(mk(Severity::Warn).fails(Severity::Warn));
        assert!(mk(Severity::Warn).fails(Severity::Info));
        assert!(mk(Severity::Error).fails(Severity::Warn));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(10), "10 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
