//! `--sbom FILE`: an SPDX 2.3 JSON document listing every Debian package in the image.
//!
//! Each package carries name, version, architecture, a purl (`pkg:deb/debian/NAME@VERSION
//! ?arch=ARCH&distro=SUITE`), its source package, the .deb's SHA256 and download URL, and
//! a declared licence when the package's copyright file is machine-readable (DEP-5):
//! the `License:` names of its `Files:` stanzas, mapped to SPDX identifiers; when one
//! does not map, the declared licence is `NOASSERTION` and the Debian names are kept in
//! `licenseComments`. The document is deterministic: packages sorted by name, `created`
//! from `SOURCE_DATE_EPOCH` (or the epoch), `documentNamespace` derived from the hash of
//! the package list.

use serde_json::{json, Value};

use super::control::stanzas;

/// What the SBOM says about one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomPackage {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// Source package name.
    pub source: String,
    /// Source package version.
    pub source_version: String,
    /// The .deb's SHA256.
    pub sha256: String,
    /// Where the .deb came from.
    pub url: String,
    /// Maintainer field.
    pub maintainer: String,
    /// Names of the packages it depends on (within the image).
    pub depends: Vec<String>,
    /// `/usr/share/doc/NAME/copyright`, when shipped.
    pub copyright: Option<String>,
}

/// Percent-encodes a purl version (`+` and `:` and `~` are not allowed bare).
fn purl_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c.to_string()
            } else {
                format!("%{:02X}", c as u32)
            }
        })
        .collect()
}

/// The purl of a Debian package.
pub fn purl(name: &str, version: &str, arch: &str, suite: &str) -> String {
    format!("pkg:deb/debian/{name}@{}?arch={arch}&distro={suite}", purl_escape(version))
}

fn spdx_id(name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
    format!("SPDXRef-Package-deb-{clean}")
}

/// Maps one Debian licence short name to an SPDX identifier.
fn spdx_license(name: &str) -> Option<&'static str> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "gpl-2" => "GPL-2.0-only",
        "gpl-2+" | "gpl-2.0+" => "GPL-2.0-or-later",
        "gpl-3" => "GPL-3.0-only",
        "gpl-3+" => "GPL-3.0-or-later",
        "lgpl-2" => "LGPL-2.0-only",
        "lgpl-2+" => "LGPL-2.0-or-later",
        "lgpl-2.1" => "LGPL-2.1-only",
        "lgpl-2.1+" => "LGPL-2.1-or-later",
        "lgpl-3" => "LGPL-3.0-only",
        "lgpl-3+" => "LGPL-3.0-or-later",
        "mit" | "expat" => "MIT",
        "bsd-2-clause" => "BSD-2-Clause",
        "bsd-3-clause" => "BSD-3-Clause",
        "bsd-4-clause" => "BSD-4-Clause",
        "isc" => "ISC",
        "apache-2.0" => "Apache-2.0",
        "zlib" => "Zlib",
        "public-domain" | "public domain" => return None,
        "mpl-2.0" => "MPL-2.0",
        "psf-2" | "python" | "psf-2.0" => "PSF-2.0",
        "openssl" => "OpenSSL",
        "artistic" => "Artistic-1.0",
        "curl" => "curl",
        "x11" => "X11",
        "cc0-1.0" | "cc0" => "CC0-1.0",
        "gfdl-1.3+" => "GFDL-1.3-or-later",
        "bsl-1.0" => "BSL-1.0",
        _ => return None,
    })
}

/// The licence names of a DEP-5 copyright file (`None` when it is not machine-readable).
pub fn dep5_licenses(copyright: &str) -> Option<Vec<String>> {
    let mut all = stanzas(copyright).filter_map(Result::ok);
    let header = all.next()?;
    header.get("Format").filter(|f| f.contains("copyright-format"))?;
    let mut out: Vec<String> = all
        .filter(|s| s.get("Files").is_some())
        .filter_map(|s| s.get("License").and_then(|l| l.lines().next()).map(|l| l.trim().to_string()))
        .filter(|l| !l.is_empty())
        .collect();
    out.sort();
    out.dedup();
    Some(out)
}

/// An SPDX expression for the names, when every one maps.
fn expression(names: &[String]) -> Option<String> {
    let terms: Option<Vec<String>> = names
        .iter()
        .map(|n| {
            let alts: Option<Vec<&str>> = n.split(" or ").map(spdx_license).collect();
            let alts = alts?;
            Some(if alts.len() > 1 { format!("({})", alts.join(" OR ")) } else { alts[0].to_string() })
        })
        .collect();
    let mut terms = terms?;
    terms.sort();
    terms.dedup();
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

/// The SPDX 2.3 document for `pkgs` built from `suite`; `created` is RFC 3339.
pub fn document(image_name: &str, pkgs: &[SbomPackage], suite: &str, created: &str) -> Value {
    let mut pkgs: Vec<&SbomPackage> = pkgs.iter().collect();
    pkgs.sort_by(|a, b| a.name.cmp(&b.name));
    let list: String = pkgs.iter().map(|p| format!("{}={}:{}\n", p.name, p.version, p.sha256)).collect();
    let hash = crate::oci::Digest::of(list.as_bytes()).hex();
    let packages: Vec<Value> = pkgs
        .iter()
        .map(|p| {
            let names = p.copyright.as_deref().and_then(dep5_licenses);
            let declared = names.as_deref().and_then(expression).unwrap_or_else(|| "NOASSERTION".into());
            let mut v = json!({
                "SPDXID": spdx_id(&p.name),
                "name": p.name,
                "versionInfo": p.version,
                "supplier": if p.maintainer.is_empty() { "NOASSERTION".to_string() } else { format!("Organization: {}", p.maintainer) },
                "downloadLocation": p.url,
                "filesAnalyzed": false,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": declared,
                "copyrightText": "NOASSERTION",
                "sourceInfo": format!("built package from: {} {}", p.source, p.source_version),
                "checksums": [{"algorithm": "SHA256", "checksumValue": p.sha256}],
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": purl(&p.name, &p.version, &p.arch, suite),
                }],
            });
            if let Some(n) = names.filter(|n| !n.is_empty()) {
                v["licenseComments"] = json!(format!("Debian copyright file (DEP-5) licences: {}", n.join(", ")));
            }
            v
        })
        .collect();
    let mut rels: Vec<Value> = pkgs
        .iter()
        .map(|p| json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": spdx_id(&p.name)}))
        .collect();
    for p in &pkgs {
        let mut deps = p.depends.clone();
        deps.sort();
        deps.dedup();
        for d in deps {
            rels.push(json!({"spdxElementId": spdx_id(&p.name), "relationshipType": "DEPENDS_ON", "relatedSpdxElement": spdx_id(&d)}));
        }
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image_name,
        "documentNamespace": format!("https://pinnace.invalid/spdx/{image_name}-{hash}"),
        "creationInfo": {"created": created, "creators": [concat!("Tool: pinnace-", env!("CARGO_PKG_VERSION"))]},
        "packages": packages,
        "relationships": rels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_and_licences() {
        assert_eq!(
            purl("libc6", "2.36-9+deb12u10", "amd64", "bookworm"),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=bookworm"
        );
        assert_eq!(purl("x", "1:2.0~rc1", "all", "s"), "pkg:deb/debian/x@1%3A2.0%7Erc1?arch=all&distro=s");
        let c = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n\
Files: *\nLicense: GPL-2+\n\nFiles: a\nLicense: MIT or Apache-2.0\n\nLicense: GPL-2+\n full text\n";
        let n = dep5_licenses(c).unwrap();
        assert_eq!(n, ["GPL-2+", "MIT or Apache-2.0"]);
        assert_eq!(expression(&n).unwrap(), "(MIT OR Apache-2.0) AND GPL-2.0-or-later");
        assert!(dep5_licenses("This is free software.\n").is_none());
        assert!(expression(&["Weird".into()]).is_none());
    }

    #[test]
    fn deterministic_document() {
        let p = |n: &str| SbomPackage {
            name: n.into(),
            version: "1".into(),
            arch: "amd64".into(),
            source: n.into(),
            source_version: "1".into(),
            sha256: "00".into(),
            url: "http://x".into(),
            maintainer: "M".into(),
            depends: vec!["a".into()],
            copyright: None,
        };
        let a = document("img", &[p("b"), p("a")], "bookworm", "1970-01-01T00:00:00Z");
        let b = document("img", &[p("a"), p("b")], "bookworm", "1970-01-01T00:00:00Z");
        assert_eq!(a, b);
        assert_eq!(a["packages"][0]["name"], "a");
        assert_eq!(a["spdxVersion"], "SPDX-2.3");
        assert_eq!(spdx_id("libstdc++6"), "SPDXRef-Package-deb-libstdc--6");
    }
}
