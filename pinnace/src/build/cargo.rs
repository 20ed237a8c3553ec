//! `pinnace build --cargo`: "ko for Rust". Runs cargo, takes the artifact's path from
//! cargo's JSON messages (never guesses `target/`), and fills the build spec from the
//! package: `[package.metadata.pinnace]` settings and OCI labels from its metadata.
//!
//! Static by default where it works: on `*-linux-gnu` hosts the binary is built with
//! `-C target-feature=+crt-static` and an explicit `--target`, so the flag reaches only
//! the final artifacts (not build scripts or proc macros). If that build fails, pinnace
//! says so and builds dynamically; the ELF closure then brings glibc.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

use super::spec::{BuildSpec, Placement};
use super::BuildError;

/// When to link statically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StaticMode {
    /// Static, falling back to dynamic when the static build fails.
    #[default]
    Auto,
    /// Static or fail.
    Yes,
    /// Dynamic.
    No,
}

/// What to ask cargo for.
#[derive(Debug, Clone, Default)]
pub struct CargoOptions {
    /// The package directory or Cargo.toml.
    pub path: PathBuf,
    /// `--bin`.
    pub bin: Option<String>,
    /// `--package`.
    pub package: Option<String>,
    /// `--features`.
    pub features: Option<String>,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// `--profile` (default `release`).
    pub profile: Option<String>,
    /// Static linking.
    pub static_mode: StaticMode,
}

/// What cargo built.
#[derive(Debug, Clone)]
pub struct CargoArtifact {
    /// The executable cargo reported.
    pub executable: PathBuf,
    /// The binary target's name.
    pub name: String,
    /// Whether it was linked statically.
    pub static_linked: bool,
    /// Messages for the user (fallbacks).
    pub notes: Vec<String>,
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    repository: Option<String>,
    manifest_path: PathBuf,
    targets: Vec<Target>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

fn manifest_of(path: &Path) -> PathBuf {
    if path.file_name().map(|n| n == "Cargo.toml").unwrap_or(false) {
        path.to_path_buf()
    } else {
        path.join("Cargo.toml")
    }
}

fn host_triple() -> Result<String, BuildError> {
    let out =
        Command::new("rustc").arg("-vV").output().map_err(|e| BuildError::Spec(format!("cannot run rustc: {e}")))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| BuildError::Spec("rustc -vV printed no host triple".into()))
}

/// Reads the package's metadata and returns the spec it implies (binary not yet set).
fn package_spec(opts: &CargoOptions) -> Result<(BuildSpec, String), BuildError> {
    let manifest = manifest_of(&opts.path);
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| BuildError::Spec(format!("cannot run cargo: {e}; install Rust (rustup.rs)")))?;
    if !out.status.success() {
        return Err(BuildError::Spec(format!("cargo metadata failed for {}", manifest.display())));
    }
    let meta: Metadata =
        serde_json::from_slice(&out.stdout).map_err(|e| BuildError::Spec(format!("cargo metadata: {e}")))?;
    let canon = std::fs::canonicalize(&manifest).unwrap_or(manifest.clone());
    let has_bin = |p: &&Package| p.targets.iter().any(|t| t.kind.iter().any(|k| k == "bin"));
    let pkg = match &opts.package {
        Some(n) => meta.packages.iter().find(|p| &p.name == n),
        None => meta.packages.iter().find(|p| p.manifest_path == canon).filter(has_bin).or_else(|| {
            let bins: Vec<&Package> = meta.packages.iter().filter(has_bin).collect();
            (bins.len() == 1).then(|| bins[0])
        }),
    }
    .ok_or_else(|| {
        BuildError::Spec(format!("{}: no package with a binary found; name one with --package", manifest.display()))
    })?;
    let bin = match &opts.bin {
        Some(b) => b.clone(),
        None => {
            let bins: Vec<&Target> = pkg.targets.iter().filter(|t| t.kind.iter().any(|k| k == "bin")).collect();
            match bins.as_slice() {
                [one] => one.name.clone(),
                [] => return Err(BuildError::Spec(format!("package {} has no binary target", pkg.name))),
                many => {
                    return Err(BuildError::Spec(format!(
                        "package {} has several binaries ({}); choose one with --bin",
                        pkg.name,
                        many.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
                    )))
                }
            }
        }
    };
    let mut spec = match pkg.metadata.as_ref().and_then(|m| m.get("pinnace")) {
        Some(v) => serde_json::from_value::<BuildSpec>(v.clone())
            .map_err(|e| BuildError::Spec(format!("[package.metadata.pinnace] of {}: {e}", pkg.name)))?,
        None => BuildSpec::default(),
    };
    if let Some(dir) = pkg.manifest_path.parent() {
        spec.rebase(dir);
    }
    let mut label = |k: &str, v: Option<&String>| {
        if let Some(v) = v {
            spec.labels.entry(format!("org.opencontainers.image.{k}")).or_insert_with(|| v.clone());
        }
    };
    label("title", Some(&bin));
    label("version", Some(&pkg.version));
    label("description", pkg.description.as_ref());
    label("licenses", pkg.license.as_ref());
    label("source", pkg.repository.as_ref());
    Ok((spec, pkg.name.clone()))
}

fn run_cargo(
    opts: &CargoOptions,
    package: &str,
    bin: &str,
    target: Option<&str>,
) -> Result<Option<PathBuf>, BuildError> {
    let mut cmd = Command::new("cargo");
    cmd.args(["build", "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(manifest_of(&opts.path))
        .args(["--package", package, "--bin", bin])
        .args(["--profile", opts.profile.as_deref().unwrap_or("release")]);
    if let Some(f) = &opts.features {
        cmd.args(["--features", f]);
    }
    if opts.no_default_features {
        cmd.arg("--no-default-features");
    }
    if let Some(t) = target {
        cmd.args(["--target", t]);
        let mut flags = std::env::var("RUSTFLAGS").unwrap_or_default();
        flags.push_str(" -C target-feature=+crt-static");
        cmd.env("RUSTFLAGS", flags.trim());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|e| BuildError::Spec(format!("cannot run cargo: {e}")))?;
    let mut exe = None;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.map_err(|e| BuildError::Spec(format!("reading cargo's output: {e}")))?;
        let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
        if v["reason"] == "compiler-artifact" && v["target"]["name"] == bin {
            if let Some(e) = v["executable"].as_str() {
                exe = Some(PathBuf::from(e));
            }
        }
    }
    let status = child.wait().map_err(|e| BuildError::Spec(format!("waiting for cargo: {e}")))?;
    Ok(if status.success() { exe } else { None })
}

/// Builds the package with cargo and returns the spec to package it (binary placed at
/// `/usr/local/bin/NAME`, package settings and labels filled in).
pub fn cargo_spec(opts: &CargoOptions) -> Result<(BuildSpec, CargoArtifact), BuildError> {
    let (mut spec, package) = package_spec(opts)?;
    let bin = opts.bin.clone().unwrap_or_else(|| spec.labels["org.opencontainers.image.title"].clone());
    let triple = host_triple()?;
    let mut notes = Vec::new();
    let can_static = triple.ends_with("-linux-gnu");
    let mut built = None;
    if opts.static_mode != StaticMode::No {
        if can_static {
            built = run_cargo(opts, &package, &bin, Some(&triple))?.map(|e| (e, true));
            if built.is_none() {
                if opts.static_mode == StaticMode::Yes {
                    return Err(BuildError::Spec(format!(
                        "static build of {bin} failed (see cargo's output above); try --static no"
                    )));
                }
                notes.push(format!("static linking of {bin} failed; building it dynamically (glibc and its libraries go into the image)"));
            }
        } else if opts.static_mode == StaticMode::Yes {
            return Err(BuildError::Spec(format!(
                "--static yes: static glibc linking is only done on *-linux-gnu hosts, this is {triple}"
            )));
        }
    }
    let (executable, static_linked) = match built {
        Some(b) => b,
        None => (
            run_cargo(opts, &package, &bin, None)?
                .ok_or_else(|| BuildError::Spec(format!("cargo build of {bin} failed (see cargo's output above)")))?,
            false,
        ),
    };
    spec.binaries.insert(0, Placement { src: executable.clone(), dest: None, mode: None, owner: None });
    Ok((spec, CargoArtifact { executable, name: bin, static_linked, notes }))
}
