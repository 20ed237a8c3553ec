//! The build spec: what `pinnace build` flags and `pinnace.toml` both fill.
//!
//! A file is read first; flags then override single values and extend lists. Paths in a
//! file are relative to the file's directory; paths in flags to the working directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::BuildError;

/// A source on the host and where it goes in the image, with optional overrides.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Host path.
    pub src: PathBuf,
    /// Image path (absolute). For binaries `None` means `/usr/local/bin/NAME`.
    #[serde(default)]
    pub dest: Option<String>,
    /// Permission bits (octal in TOML strings like "0644", or a number).
    #[serde(default, deserialize_with = "de_mode")]
    pub mode: Option<u32>,
    /// Owner, `UID[:GID]`.
    #[serde(default)]
    pub owner: Option<String>,
}

fn de_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum M {
        N(u32),
        S(String),
    }
    Ok(match Option::<M>::deserialize(d)? {
        None => None,
        Some(M::N(n)) => Some(n),
        Some(M::S(s)) => Some(parse_mode(&s).map_err(serde::de::Error::custom)?),
    })
}

/// Parses an octal mode such as `0644` or `755`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("mode {s:?}: expected octal permission bits like 0644"))
}

impl Placement {
    /// Parses `SRC[:DEST]` (flag form).
    pub fn parse(s: &str) -> Placement {
        match s.split_once(':') {
            Some((src, dest)) if !dest.is_empty() => {
                Placement { src: src.into(), dest: Some(dest.to_string()), mode: None, owner: None }
            }
            _ => Placement { src: s.trim_end_matches(':').into(), dest: None, mode: None, owner: None },
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PlacementDe {
    Short(String),
    Full(Placement),
}

fn de_placements<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Placement>, D::Error> {
    Ok(Vec::<PlacementDe>::deserialize(d)?
        .into_iter()
        .map(|p| match p {
            PlacementDe::Short(s) => Placement::parse(&s),
            PlacementDe::Full(p) => p,
        })
        .collect())
}

/// How to split the image into layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layering {
    /// base files | shared libraries | application.
    #[default]
    Auto,
    /// Everything in one layer.
    Single,
}

/// Everything a build needs to know. Flags and `pinnace.toml` fill the same struct.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BuildSpec {
    /// Programs to package, with their ELF closure.
    #[serde(default, deserialize_with = "de_placements")]
    pub binaries: Vec<Placement>,
    /// Single files (`SRC:DEST`).
    #[serde(default, deserialize_with = "de_placements")]
    pub files: Vec<Placement>,
    /// Directory trees (`SRC:DEST`).
    #[serde(default, deserialize_with = "de_placements")]
    pub dirs: Vec<Placement>,
    /// Exec-form entrypoint; default: the first binary.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Exec-form command (arguments to the entrypoint).
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Environment (`PATH` is set unless given).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `nonroot` (default, 65532:65532), `root`, `nobody` or `UID[:GID]`.
    #[serde(default)]
    pub user: Option<String>,
    /// Working directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Exposed ports (`8080`, `8080/tcp`, `53/udp`).
    #[serde(default)]
    pub ports: Vec<String>,
    /// Config labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Stop signal, e.g. `SIGTERM`.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Expected platform (`linux/amd64`); checked against the binaries.
    #[serde(default)]
    pub platform: Option<String>,
    /// Extras forced on (`certs`, `zoneinfo`, `passwd`, `tmp`, `nsswitch`).
    #[serde(default)]
    pub with: Vec<String>,
    /// Extras forced off.
    #[serde(default)]
    pub without: Vec<String>,
    /// CA bundle to use instead of the host's.
    #[serde(default)]
    pub certs: Option<PathBuf>,
    /// Layering.
    #[serde(default)]
    pub layers: Layering,
    /// Image to build on (any transport).
    #[serde(default)]
    pub base: Option<String>,
    /// Destinations.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Root to resolve libraries (and extras) from instead of `/`.
    #[serde(default)]
    pub sysroot: Option<PathBuf>,
    /// Debian packages (`--deb`, `--preset`; the `[debian]` table).
    #[serde(default)]
    pub debian: crate::deb::DebSpec,
}

impl BuildSpec {
    /// Reads `pinnace.toml`, resolving its relative paths against its directory.
    pub fn from_file(path: &Path) -> Result<BuildSpec, BuildError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| BuildError::Io { path: path.to_path_buf(), source })?;
        let bad = |e: toml::de::Error| BuildError::Spec(format!("{}: {}", path.display(), e.message()));
        let mut table: toml::Table = text.parse().map_err(bad)?;
        // `[inspect]` is `pinnace inspect`'s (CI rules): one pinnace.toml serves both.
        table.remove("inspect");
        let mut spec: BuildSpec = table.try_into().map_err(bad)?;
        let base = path.parent().unwrap_or(Path::new(""));
        spec.rebase(base);
        Ok(spec)
    }

    /// Makes relative host paths relative to `dir`.
    pub fn rebase(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        for p in self.binaries.iter_mut().chain(self.files.iter_mut()).chain(self.dirs.iter_mut()) {
            fix(&mut p.src);
        }
        if let Some(c) = self.certs.as_mut() {
            fix(c);
        }
        if let Some(s) = self.sysroot.as_mut() {
            fix(s);
        }
        self.debian.rebase(dir);
    }

    /// Overlays `other` (the flags) on `self` (the file): values replace, lists extend.
    pub fn merge(mut self, other: BuildSpec) -> BuildSpec {
        self.binaries.extend(other.binaries);
        self.files.extend(other.files);
        self.dirs.extend(other.dirs);
        self.env.extend(other.env);
        self.ports.extend(other.ports);
        self.labels.extend(other.labels);
        self.annotations.extend(other.annotations);
        self.with.extend(other.with);
        self.without.extend(other.without);
        self.tags.extend(other.tags);
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(entrypoint, cmd, user, workdir, stop_signal, platform, certs, base, sysroot);
        if other.layers != Layering::Auto {
            self.layers = other.layers;
        }
        self.debian = self.debian.merge(other.debian);
        self
    }
}

/// A user as the config records it, from `nonroot`, `root`, `nobody` or `UID[:GID]`.
pub fn parse_user(u: &str) -> Result<(u32, u32), BuildError> {
    match u {
        "nonroot" => Ok((65532, 65532)),
        "root" => Ok((0, 0)),
        "nobody" => Ok((65534, 65534)),
        _ => {
            let bad = || BuildError::Spec(format!("user {u:?}: use nonroot, root, nobody or UID[:GID]"));
            let (uid, gid) = match u.split_once(':') {
                Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                None => {
                    let id: u32 = u.parse().map_err(|_| bad())?;
                    (id, id)
                }
            };
            Ok((uid, gid))
        }
    }
}

/// An exposed port as the config key (`8080/tcp`).
pub fn parse_port(p: &str) -> Result<String, BuildError> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let ok = num.parse::<u16>().map(|n| n > 0).unwrap_or(false) && matches!(proto, "tcp" | "udp" | "sctp");
    if !ok {
        return Err(BuildError::Spec(format!("port {p:?}: expected PORT[/tcp|udp|sctp], e.g. 8080")));
    }
    Ok(format!("{num}/{proto}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_flags_merge() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pinnace.toml");
        std::fs::write(
            &f,
            r#"
binaries = ["bin/server"]
files = ["config.toml:/etc/app/config.toml", { src = "x", dest = "/x", mode = "0600", owner = "1:2" }]
user = "root"
ports = ["8080"]
env = { RUST_LOG = "info" }
layers = "single"
"#,
        )
        .unwrap();
        let file = BuildSpec::from_file(&f).unwrap();
        assert_eq!(file.binaries[0].src, dir.path().join("bin/server"));
        assert_eq!(file.files[1].mode, Some(0o600));
        assert_eq!(file.layers, Layering::Single);
        let flags = BuildSpec { user: Some("nonroot".into()), ports: vec!["9090/udp".into()], ..Default::default() };
        let m = file.merge(flags);
        assert_eq!(m.user.as_deref(), Some("nonroot"));
        assert_eq!(m.ports, vec!["8080", "9090/udp"]);
        assert_eq!(m.env["RUST_LOG"], "info");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "binaryz = []").unwrap();
        assert!(BuildSpec::from_file(&bad).unwrap_err().to_string().contains("binaryz"));
    }

    #[test]
    fn users_ports_modes() {
        assert_eq!(parse_user("nonroot").unwrap(), (65532, 65532));
        assert_eq!(parse_user("1000:100").unwrap(), (1000, 100));
        assert!(parse_user("bob").is_err());
        assert_eq!(parse_port("8080").unwrap(), "8080/tcp");
        assert!(parse_port("0").is_err() && parse_port("80/xyz").is_err());
        assert_eq!(parse_mode("0755").unwrap(), 0o755);
        assert!(parse_mode("999").is_err());
    }
}
