//! `pinnace build`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use pinnace::build::cargo::{cargo_spec, CargoOptions, StaticMode};
use pinnace::build::{build, BuildSpec, Layering, Placement};
use pinnace::transport::ImageRef;

const AFTER: &str = "\
Extras (auto by default; --with forces, --without removes):
  passwd    /etc/passwd, /etc/group (root 0, nobody 65534, nonroot 65532), /home/nonroot
  tmp       /tmp with mode 1777
  certs     CA bundle at /etc/ssl/certs/ca-certificates.crt, when a binary does TLS
  zoneinfo  /usr/share/zoneinfo, when a binary reads time zones or TZ is set
  nsswitch  /etc/nsswitch.conf, when NSS modules are in the closure
On a base image (--from) only forced extras are added.

Layers (--layers auto): base files | shared libraries | application, so rebuilding the
application reuses the lower layers and programs with the same libraries share them.
The same inputs give the same digest: SOURCE_DATE_EPOCH sets every time stamp (default 0).

Debian packages (--deb NAME, --preset): from the host's apt mirror and suite (or --mirror,
--suite) and, for a stable release, its SUITE-updates and SUITE-security (the highest
version wins; --no-updates reads the release alone), each InRelease signature-checked,
every file SHA256-checked, cached in
$XDG_CACHE_HOME/pinnace. No maintainer scripts run; docs, man pages and locales are
dropped (copyright files kept); /var/lib/dpkg/status.d/NAME is written for scanners.
Presets (distroless equivalents; dependencies added):
  static   base-files netbase tzdata ca-certificates
  base     static + libc6 libssl3
  cc       base + libgcc-s1 libgomp1 libstdc++6
  python3  cc + python3-minimal libpython3-stdlib
  java17   base + openjdk-17-jre-headless (/usr/bin/java, JKS trust store
           /etc/ssl/certs/java/cacerts made from the CA bundle)
Always left out unless named with --deb: adduser bash coreutils dash debconf debianutils
dpkg findutils grep gzip init-system-helpers install-info login lsb-base openssl passwd
perl-base sed sensible-utils tar ucf util-linux.";

/// Arguments of `pinnace build`.
#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct BuildArgs {
    /// Build spec file (pinnace.toml); flags override it.
    #[arg(short = 'f', long = "spec")]
    pub spec: Option<PathBuf>,
    /// A program to package with its shared-library closure: SRC[:DEST] (default DEST /usr/local/bin/NAME).
    #[arg(long = "binary", value_name = "SRC[:DEST]")]
    pub binaries: Vec<String>,
    /// A file: SRC:DEST.
    #[arg(long = "file", value_name = "SRC:DEST")]
    pub files: Vec<String>,
    /// A directory tree: SRC:DEST.
    #[arg(long = "dir", value_name = "SRC:DEST")]
    pub dirs: Vec<String>,
    /// Entrypoint, exec form, comma-separated (default: the first binary).
    #[arg(long, value_delimiter = ',')]
    pub entrypoint: Option<Vec<String>>,
    /// Command (arguments to the entrypoint), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub cmd: Option<Vec<String>>,
    /// Environment variable KEY=VALUE.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// User: nonroot (default, 65532), root, nobody or UID[:GID].
    #[arg(long)]
    pub user: Option<String>,
    /// Working directory.
    #[arg(long)]
    pub workdir: Option<String>,
    /// Exposed port, e.g. 8080 or 53/udp.
    #[arg(long = "port")]
    pub ports: Vec<String>,
    /// Label KEY=VALUE.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Manifest annotation KEY=VALUE.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Stop signal, e.g. SIGTERM.
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Expected platform (os/arch); checked against the binaries.
    #[arg(long)]
    pub platform: Option<String>,
    /// Extras to force on (comma-separated): certs, zoneinfo, passwd, tmp, nsswitch.
    #[arg(long, value_delimiter = ',')]
    pub with: Vec<String>,
    /// Extras to leave out (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub without: Vec<String>,
    /// CA bundle to use instead of the host's.
    #[arg(long)]
    pub certs: Option<PathBuf>,
    /// Layering: auto (base | libraries | app) or single.
    #[arg(long)]
    pub layers: Option<String>,
    /// Base image to append to (any transport); its config is kept unless overridden.
    #[arg(long = "from")]
    pub base: Option<String>,
    /// Destination (repeatable): oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE[:NAME:TAG], ...
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Resolve libraries and extras from this root instead of /.
    #[arg(long)]
    pub sysroot: Option<PathBuf>,
    /// Also load the image into podman (or docker when podman is absent) as NAME (default localhost/BINARY:latest).
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "NAME")]
    pub load: Option<String>,
    /// Build a Cargo package and package its binary (PATH: package dir or Cargo.toml; default .).
    #[arg(long, num_args = 0..=1, default_missing_value = ".", value_name = "PATH")]
    pub cargo: Option<PathBuf>,
    /// With --cargo: the binary target.
    #[arg(long, requires = "cargo")]
    pub bin: Option<String>,
    /// With --cargo: the package.
    #[arg(long, requires = "cargo")]
    pub package: Option<String>,
    /// With --cargo: features to enable.
    #[arg(long, requires = "cargo")]
    pub features: Option<String>,
    /// With --cargo: disable default features.
    #[arg(long, requires = "cargo")]
    pub no_default_features: bool,
    /// With --cargo: the profile (default release).
    #[arg(long, requires = "cargo")]
    pub profile: Option<String>,
    /// With --cargo: link statically: auto (default: static, else dynamic), yes, no.
    #[arg(long = "static", requires = "cargo", value_name = "auto|yes|no")]
    pub static_mode: Option<String>,
    /// A Debian package to install with its dependencies (repeatable; NAME or NAME=VERSION).
    #[arg(long = "deb", value_name = "PACKAGE")]
    pub debs: Vec<String>,
    /// Debian package preset: static, base, cc, python3, java17 (see below).
    #[arg(long)]
    pub preset: Option<String>,
    /// Debian suite (default: the host's apt sources, else bookworm).
    #[arg(long)]
    pub suite: Option<String>,
    /// Debian mirror URL (default: the host's apt sources, else http://deb.debian.org/debian).
    #[arg(long)]
    pub mirror: Option<String>,
    /// Leave a Debian package out even when something depends on it (repeatable).
    #[arg(long = "exclude", value_name = "PACKAGE")]
    pub excludes: Vec<String>,
    /// At most this many layers of Debian packages (default 8).
    #[arg(long)]
    pub max_layers: Option<usize>,
    /// Write an SPDX 2.3 JSON SBOM of the Debian packages to FILE.
    #[arg(long, value_name = "FILE")]
    pub sbom: Option<PathBuf>,
    /// OpenPGP keyring to verify InRelease with (default /usr/share/keyrings/debian-archive-keyring.gpg).
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// Do not check InRelease's signature (dangerous; checksums are still verified).
    #[arg(long)]
    pub insecure_skip_signature: bool,
    /// Use only cached Debian files; fail if one is missing.
    #[arg(long)]
    pub offline: bool,
    /// Read the Debian release alone: not its SUITE-updates and SUITE-security suites.
    #[arg(long)]
    pub no_updates: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress or summary.
    #[arg(long, short)]
    pub quiet: bool,
}

fn pairs(v: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    v.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--{what} {s:?}: expected KEY=VALUE"))
        })
        .collect()
}

impl BuildArgs {
    fn spec(&self) -> anyhow::Result<BuildSpec> {
        let layers = match self.layers.as_deref() {
            None | Some("auto") => Layering::Auto,
            Some("single") => Layering::Single,
            Some(o) => anyhow::bail!("--layers {o:?}: use auto or single"),
        };
        Ok(BuildSpec {
            binaries: self.binaries.iter().map(|s| Placement::parse(s)).collect(),
            files: self.files.iter().map(|s| Placement::parse(s)).collect(),
            dirs: self.dirs.iter().map(|s| Placement::parse(s)).collect(),
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            env: pairs(&self.env, "env")?,
            user: self.user.clone(),
            workdir: self.workdir.clone(),
            ports: self.ports.clone(),
            labels: pairs(&self.labels, "label")?,
            annotations: pairs(&self.annotations, "annotation")?,
            stop_signal: self.stop_signal.clone(),
            platform: self.platform.clone(),
            with: self.with.clone(),
            without: self.without.clone(),
            certs: self.certs.clone(),
            layers,
            base: self.base.clone(),
            tags: self.tags.clone(),
            sysroot: self.sysroot.clone(),
            debian: pinnace::deb::DebSpec {
                packages: self.debs.clone(),
                preset: self.preset.clone(),
                suite: self.suite.clone(),
                mirror: self.mirror.clone(),
                exclude: self.excludes.clone(),
                max_layers: self.max_layers,
                sbom: self.sbom.clone(),
                keyring: self.keyring.clone(),
                insecure_skip_signature: self.insecure_skip_signature,
                offline: self.offline,
                no_updates: self.no_updates,
                progress: !self.quiet && !self.json,
                ..Default::default()
            },
        })
    }
}

fn podman_present() -> bool {
    std::process::Command::new("podman")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs the build and renders its report.
pub fn run(a: BuildArgs) -> anyhow::Result<()> {
    let flags = a.spec()?;
    if a.insecure_skip_signature {
        eprintln!("pinnace: WARNING: --insecure-skip-signature: Debian package signatures are NOT verified");
    }
    let mut spec = match &a.spec {
        Some(f) => BuildSpec::from_file(f)?,
        None => BuildSpec::default(),
    };
    if let Some(path) = &a.cargo {
        let static_mode = match a.static_mode.as_deref() {
            None | Some("auto") => StaticMode::Auto,
            Some("yes") => StaticMode::Yes,
            Some("no") => StaticMode::No,
            Some(o) => anyhow::bail!("--static {o:?}: use auto, yes or no"),
        };
        let opts = CargoOptions {
            path: path.clone(),
            bin: a.bin.clone(),
            package: a.package.clone(),
            features: a.features.clone(),
            no_default_features: a.no_default_features,
            profile: a.profile.clone(),
            static_mode,
        };
        let (cargo, artifact) = cargo_spec(&opts)?;
        for n in &artifact.notes {
            eprintln!("pinnace: {n}");
        }
        spec = spec.merge(cargo);
    }
    let spec = spec.merge(flags);
    let load = match a.load.as_deref() {
        None => None,
        Some(name) => {
            let name = if name.is_empty() {
                let bin = spec
                    .binaries
                    .first()
                    .and_then(|b| b.src.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "image".into());
                format!("localhost/{bin}:latest")
            } else {
                name.to_string()
            };
            let r =
                if podman_present() { format!("containers-storage:{name}") } else { format!("docker-daemon:{name}") };
            Some(r.parse::<ImageRef>()?)
        }
    };
    let report = build(&spec, load.as_ref(), !a.quiet && !a.json).context("build failed")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for w in &report.warnings {
        eprintln!("pinnace: warning: {w}");
    }
    if a.quiet {
        return Ok(());
    }
    println!("image    {}  ({})", report.digest, report.platform);
    println!("config   {}", report.config_digest);
    for l in &report.layers {
        println!(
            "  layer  {}  {:>10}  {:>4} files  {}",
            &l.digest.to_string()[..19],
            super::human(l.size),
            l.files,
            l.role
        );
    }
    println!(
        "total    {} compressed, {} uncompressed",
        super::human(report.size),
        super::human(report.uncompressed_size)
    );
    for (e, why) in &report.extras {
        println!("extra    {e}: {why}");
    }
    for d in &report.destinations {
        println!("wrote    {} ({})", d.destination, d.manifest_digest);
    }
    Ok(())
}
