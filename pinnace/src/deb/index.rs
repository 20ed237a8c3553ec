//! The archive's package index (`dists/SUITE/COMPONENT/binary-ARCH/Packages`): fetched as
//! `Packages.xz`, checked against the SHA256 that the signed `InRelease` lists, and
//! parsed into borrowed [`Package`] records.
//!
//! Cache contract: the decompressed `Packages` is stored in the content-addressed cache
//! under the SHA256 that `InRelease` lists for it, so a warm build verifies and parses it
//! without decompressing anything; a cold build downloads `Packages.xz`, verifies it,
//! decompresses it, and verifies the result against the uncompressed entry too.

use super::control::{stanzas, Stanza};
use super::fetch::Fetcher;
use super::release::Release;
use super::DebError;

/// One binary package of the index, borrowed from the index text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package<'a> {
    /// Package name.
    pub name: &'a str,
    /// Version.
    pub version: &'a str,
    /// Architecture (`amd64` or `all`).
    pub arch: &'a str,
    /// `Multi-Arch` (`same`, `foreign`, `allowed`) or "".
    pub multi_arch: &'a str,
    /// `Pre-Depends`, raw.
    pub pre_depends: &'a str,
    /// `Depends`, raw.
    pub depends: &'a str,
    /// `Provides`, raw.
    pub provides: &'a str,
    /// `Conflicts`, raw.
    pub conflicts: &'a str,
    /// `Breaks`, raw.
    pub breaks: &'a str,
    /// `Filename`: the .deb's path below the mirror.
    pub filename: &'a str,
    /// `SHA256` of the .deb.
    pub sha256: &'a str,
    /// `Size` of the .deb.
    pub size: u64,
    /// `Source` (may carry a version in parentheses), or "" when it is the package name.
    pub source: &'a str,
    /// The whole stanza, for status.d and the SBOM.
    pub stanza: Stanza<'a>,
}

impl<'a> Package<'a> {
    /// From a stanza; `None` when a required field is missing.
    pub fn from_stanza(st: Stanza<'a>) -> Option<Package<'a>> {
        let g = |n: &str| st.get(n).unwrap_or("");
        Some(Package {
            name: st.get("Package")?,
            version: st.get("Version")?,
            arch: st.get("Architecture")?,
            multi_arch: g("Multi-Arch"),
            pre_depends: g("Pre-Depends"),
            depends: g("Depends"),
            provides: g("Provides"),
            conflicts: g("Conflicts"),
            breaks: g("Breaks"),
            filename: st.get("Filename")?,
            sha256: st.get("SHA256")?,
            size: st.get("Size")?.parse().ok()?,
            source: g("Source"),
            stanza: st,
        })
    }

    /// The source package name (without a version).
    pub fn source_name(&self) -> &'a str {
        match self.source.split_whitespace().next() {
            Some(s) if !s.is_empty() => s,
            _ => self.name,
        }
    }

    /// The source package version: the one in parentheses, else the binary's.
    pub fn source_version(&self) -> &'a str {
        match (self.source.find('('), self.source.find(')')) {
            (Some(a), Some(b)) if a < b => self.source[a + 1..b].trim(),
            _ => self.version,
        }
    }
}

/// Parses a whole `Packages` text. Stanzas without the fields a package needs are
/// skipped; a syntax error is fatal and names `file` and the line.
pub fn parse<'a>(text: &'a str, file: &str) -> Result<Vec<Package<'a>>, DebError> {
    let mut out = Vec::with_capacity(text.len() / 700);
    for st in stanzas(text) {
        let st = st.map_err(|e| DebError::Index { file: file.to_string(), line: e.line, why: e.why.to_string() })?;
        if let Some(p) = Package::from_stanza(st) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Fetches (or reads from the cache) the `Packages` text of one component, verified
/// against `release`.
pub fn load(fetcher: &Fetcher, release: &Release, component: &str, arch: &str) -> Result<String, DebError> {
    let base = format!("{component}/binary-{arch}/Packages");
    let plain = release.entry(&base)?;
    if let Some(bytes) = fetcher.cached(&plain.sha256, plain.size) {
        return String::from_utf8(bytes).map_err(|_| DebError::index(&base, "not UTF-8"));
    }
    let xz_name = format!("{base}.xz");
    let xz = release.entry(&xz_name)?;
    let url = release.url(&xz_name);
    let compressed = fetcher.get(&url, &xz.sha256, xz.size)?;
    let mut out = Vec::with_capacity(plain.size as usize);
    lzma_rs::xz_decompress(&mut std::io::BufReader::new(&compressed[..]), &mut out)
        .map_err(|e| DebError::index(&xz_name, &format!("xz: {e}")))?;
    let actual = crate::oci::Digest::of(&out).hex().to_string();
    if actual != plain.sha256 || out.len() as u64 != plain.size {
        return Err(DebError::Checksum { file: url, expected: plain.sha256.clone(), actual });
    }
    fetcher.store(&plain.sha256, &out)?;
    String::from_utf8(out).map_err(|_| DebError::index(&base, "not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "Package: libc6\nSource: glibc (2.36-9)\nVersion: 2.36-9+deb12u10\nArchitecture: amd64\n\
Multi-Arch: same\nDepends: libgcc-s1\nFilename: pool/main/g/glibc/libc6.deb\nSize: 10\nSHA256: ab\n\
Description: GNU C Library\n shared libraries\n";

    #[test]
    fn fields() {
        let p = parse(ONE, "t").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].name, p[0].source_name(), p[0].source_version()), ("libc6", "glibc", "2.36-9"));
        assert_eq!(p[0].size, 10);
        assert_eq!(p[0].stanza.get("Description"), Some("GNU C Library\n shared libraries"));
    }

    /// The speed claim of `control`: 63,000 stanzas of realistic size parse in well under
    /// a second (release mode; debug builds are ~10x slower, hence the loose bound).
    #[test]
    fn parse_speed() {
        let text: String = (0..63_000).map(|i| ONE.replace("libc6\n", &format!("p{i}\n")) + "\n").collect();
        let t = std::time::Instant::now();
        assert_eq!(parse(&text, "t").unwrap().len(), 63_000);
        assert!(t.elapsed().as_secs_f64() < 5.0, "{:?}", t.elapsed());
    }
}
