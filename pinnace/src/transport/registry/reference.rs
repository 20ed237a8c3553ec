//! Registry references: `HOST[:PORT]/REPO[:TAG|@DIGEST]`, normalised the way docker and
//! containers/image normalise them.
//!
//! The first path component is the registry when it contains a `.` or a `:`, or is
//! `localhost`; otherwise the registry is `docker.io` and a one-component repository gets
//! the `library/` prefix (`alpine` is `docker.io/library/alpine:latest`). Without a tag or
//! digest the tag is `latest`. Repository names follow the distribution spec's grammar
//! (lowercase components separated by `/`, each `[a-z0-9]+([._]|__|-+)[a-z0-9]+...`); tags
//! are `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.

use std::fmt;
use std::str::FromStr;

use crate::oci::Digest;

use super::RegistryError;

/// The registry `docker.io` names.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves `docker.io`'s API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed registry reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `HOST[:PORT]`, normalised (`index.docker.io` becomes `docker.io`).
    pub registry: String,
    /// The repository path (`library/alpine`, `team/app`).
    pub repository: String,
    /// The tag (`latest` when neither tag nor digest was given).
    pub tag: Option<String>,
    /// The digest, when given (it wins over the tag for reads).
    pub digest: Option<Digest>,
}

impl Reference {
    /// What the manifest endpoint is asked for: the digest when known, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// The host the HTTP API is served from (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }
}

/// The host serving `registry`'s API.
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        registry
    }
}

/// Normalises a registry host as users write it (`https://index.docker.io/v1/` and
/// `index.docker.io` are `docker.io`; schemes and paths are dropped).
pub fn normalize_registry(input: &str) -> String {
    let s = input.trim();
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB.into(),
        h => h.to_ascii_lowercase(),
    }
}

fn is_registry_component(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // Separators: `.`, `_`, `__`, or one or more `-`.
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok || start == i {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl FromStr for Reference {
    type Err = RegistryError;
    fn from_str(input: &str) -> Result<Reference, RegistryError> {
        let bad = |why: String| RegistryError::Reference { input: input.to_string(), why };
        let s = input.strip_prefix("docker://").unwrap_or(input);
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>().map_err(|e| bad(format!("bad digest {d:?}: {e}")))?)),
            None => (s, None),
        };
        // The tag is after the last `:` that follows the last `/` (a `:` before it is a port).
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(name[last_slash + i + 1..].to_string())),
            None => (name, None),
        };
        if path.is_empty() {
            return Err(bad("no repository name; use HOST[:PORT]/REPO[:TAG] or REPO[:TAG]".into()));
        }
        let (registry, mut repository) = match path.split_once('/') {
            Some((first, rest)) if is_registry_component(first) => (normalize_registry(first), rest.to_string()),
            _ => (DOCKER_HUB.to_string(), path.to_string()),
        };
        if registry.is_empty() {
            return Err(bad("empty registry host".into()));
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if repository.len() > 255 || !repository.split('/').all(valid_component) {
            return Err(bad(format!(
                "invalid repository name {repository:?}: lowercase letters, digits and separators (. _ __ -) between path components"
            )));
        }
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad(format!("invalid tag {t:?}: up to 128 of [A-Za-z0-9_.-], not starting with . or -")));
            }
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(Reference { registry, repository, tag, digest })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn normalises_like_docker() {
        let r = p("alpine");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/alpine", Some("latest"))
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = p("team/app:1.2");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "team/app", Some("1.2"))
        );
        let r = p("localhost:5000/app");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "app", Some("latest"))
        );
        let r = p("docker://127.0.0.1:5000/a/b/c:v1");
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("127.0.0.1:5000", "a/b/c"));
        assert_eq!(r.to_string(), "127.0.0.1:5000/a/b/c:v1");
        let d = Digest::of(b"x");
        let r = p(&format!("registry.example/app@{d}"));
        assert_eq!((r.tag.clone(), r.digest), (None, Some(d)));
        assert_eq!(r.manifest_ref(), d.to_string());
        let r = p("index.docker.io/library/busybox:1");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(normalize_registry("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_registry("http://LocalHost:5000"), "localhost:5000");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "UPPER/app", "host:5000/", "app:bad tag", "a//b", "app@sha256:12", "x/-a", "x/a:.t"] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} should not parse");
        }
        assert!("a/b__c/d-e/f.g".parse::<Reference>().is_ok());
    }
}
