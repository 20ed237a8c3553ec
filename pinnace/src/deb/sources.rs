//! Which archive to use: `--mirror`/`--suite` (or `pinnace.toml`), else the host's apt
//! sources, else Debian's own mirror.
//!
//! From the host, the first `deb` entry wins: deb822 files
//! (`/etc/apt/sources.list.d/*.sources`, sorted) are read before the one-line format
//! (`/etc/apt/sources.list`, then `sources.list.d/*.list`), matching modern Debian, whose
//! default is `debian.sources`. Of that entry the first suite is taken (the release
//! itself, not `-updates` or `-security`) with its components.
//!
//! A stable release is read with its companions (see `pipeline`): `CODENAME-updates`
//! from the same mirror, and `CODENAME-security` from the host source that lists that
//! suite, else from [`DEFAULT_SECURITY_MIRROR`].

use std::path::Path;

use super::control::stanzas;

/// Debian's redirector, used when neither flags nor the host name a mirror.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Debian's security archive, used when the host lists no `CODENAME-security` source.
pub const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
/// The suite used when nothing names one.
pub const DEFAULT_SUITE: &str = "bookworm";

/// An archive to read packages from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// Mirror URL without a trailing slash, e.g. `http://deb.debian.org/debian`.
    pub mirror: String,
    /// Suite or codename, e.g. `bookworm`.
    pub suite: String,
    /// Components, e.g. `["main"]`.
    pub components: Vec<String>,
    /// Debian architecture, e.g. `amd64`.
    pub arch: String,
}

/// One `deb` line or stanza of an apt sources file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    /// The first URI.
    pub uri: String,
    /// Suites in order.
    pub suites: Vec<String>,
    /// Components.
    pub components: Vec<String>,
}

/// Parses deb822 `.sources` text: stanzas with `Types: deb` (and `Enabled` not `no`).
pub fn parse_deb822(text: &str) -> Vec<AptSource> {
    stanzas(text)
        .filter_map(Result::ok)
        .filter(|s| s.get("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb")))
        .filter(|s| !s.get("Enabled").is_some_and(|e| e.eq_ignore_ascii_case("no")))
        .filter_map(|s| {
            let words = |f: &str| s.get(f).unwrap_or("").split_whitespace().map(str::to_string).collect::<Vec<_>>();
            Some(AptSource {
                uri: words("URIs").into_iter().next()?,
                suites: words("Suites"),
                components: words("Components"),
            })
        })
        .filter(|s| !s.suites.is_empty())
        .collect()
}

/// Parses one-line `sources.list` text: `deb [options] URI SUITE COMPONENT...`.
pub fn parse_one_line(text: &str) -> Vec<AptSource> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| {
            let rest = l.strip_prefix("deb ")?.trim_start();
            // Options in brackets, e.g. [arch=amd64 signed-by=...].
            let rest = match rest.strip_prefix('[') {
                Some(r) => r.split_once(']')?.1,
                None => rest,
            };
            let mut w = rest.split_whitespace();
            let uri = w.next()?.to_string();
            let suite = w.next()?.to_string();
            Some(AptSource { uri, suites: vec![suite], components: w.map(str::to_string).collect() })
        })
        .collect()
}

/// The host's apt sources under `etc_apt` (normally `/etc/apt`), in apt's reading order.
pub fn host_sources(etc_apt: &Path) -> Vec<AptSource> {
    let mut out = Vec::new();
    let list_d = etc_apt.join("sources.list.d");
    let mut files: Vec<_> =
        std::fs::read_dir(&list_d).map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "sources")) {
        out.extend(parse_deb822(&std::fs::read_to_string(f).unwrap_or_default()));
    }
    out.extend(parse_one_line(&std::fs::read_to_string(etc_apt.join("sources.list")).unwrap_or_default()));
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "list")) {
        out.extend(parse_one_line(&std::fs::read_to_string(f).unwrap_or_default()));
    }
    out
}

/// The archive from explicit values, falling back to the first host source for the
/// missing ones, and to Debian's defaults after that.
pub fn choose(mirror: Option<&str>, suite: Option<&str>, arch: Option<&str>, etc_apt: &Path) -> Archive {
    let host = host_sources(etc_apt).into_iter().find(|s| s.uri.starts_with("http"));
    let host_ok =
        host.as_ref().filter(|h| mirror.is_none_or(|m| m.trim_end_matches('/') == h.uri.trim_end_matches('/')));
    let mirror = mirror.map(str::to_string).or_else(|| host.as_ref().map(|h| h.uri.clone()));
    let suite = suite.map(str::to_string).or_else(|| host_ok.and_then(|h| h.suites.first().cloned()));
    Archive {
        mirror: mirror.unwrap_or_else(|| DEFAULT_MIRROR.into()).trim_end_matches('/').to_string(),
        suite: suite.unwrap_or_else(|| DEFAULT_SUITE.into()),
        // Packages come from main (what the presets and distroless use); the host's other
        // components (contrib, non-free-firmware) are not read.
        components: vec!["main".into()],
        arch: arch.unwrap_or("amd64").to_string(),
    }
}

/// The mirror of `CODENAME-security`: the first host source (under `etc_apt`) listing
/// that suite, else [`DEFAULT_SECURITY_MIRROR`].
pub fn security_mirror(codename: &str, etc_apt: &Path) -> String {
    let suite = format!("{codename}-security");
    host_sources(etc_apt)
        .into_iter()
        .find(|s| s.uri.starts_with("http") && s.suites.contains(&suite))
        .map_or_else(|| DEFAULT_SECURITY_MIRROR.to_string(), |s| s.uri.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_and_one_line() {
        let s = parse_deb822(
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
Types: deb-src\nURIs: http://x\nSuites: y\n\nTypes: deb\nEnabled: no\nURIs: http://z\nSuites: z\n",
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
        let l = parse_one_line(
            "# c\ndeb [arch=amd64 signed-by=/k.gpg] http://m/debian trixie main contrib\ndeb-src http://m x y\n",
        );
        assert_eq!(
            l,
            vec![AptSource {
                uri: "http://m/debian".into(),
                suites: vec!["trixie".into()],
                components: vec!["main".into(), "contrib".into()]
            }]
        );
    }

    #[test]
    fn host_then_defaults() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sources.list.d")).unwrap();
        let a = choose(None, None, None, d.path());
        assert_eq!((a.mirror.as_str(), a.suite.as_str(), a.arch.as_str()), (DEFAULT_MIRROR, DEFAULT_SUITE, "amd64"));
        std::fs::write(d.path().join("sources.list"), "deb http://mirror.example/debian/ trixie main\n").unwrap();
        let a = choose(None, None, None, d.path());
        assert_eq!((a.mirror.as_str(), a.suite.as_str()), ("http://mirror.example/debian", "trixie"));
        let a = choose(None, Some("bookworm"), None, d.path());
        assert_eq!(a.suite, "bookworm");
        let a = choose(Some("http://other/debian"), None, None, d.path());
        assert_eq!((a.mirror.as_str(), a.suite.as_str()), ("http://other/debian", DEFAULT_SUITE));
        assert_eq!(security_mirror("trixie", d.path()), DEFAULT_SECURITY_MIRROR);
        std::fs::write(
            d.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://m/debian\nSuites: trixie trixie-updates\n\n\
Types: deb\nURIs: http://sec.example/debian-security/\nSuites: trixie-security\nComponents: main\n",
        )
        .unwrap();
        assert_eq!(security_mirror("trixie", d.path()), "http://sec.example/debian-security");
        assert_eq!(security_mirror("bookworm", d.path()), DEFAULT_SECURITY_MIRROR);
    }
}
