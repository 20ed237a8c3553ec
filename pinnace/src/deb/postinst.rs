//! What maintainer scripts would have made, generated from the extracted packages
//! (nothing of a package runs). Each file belongs to the package whose script makes it,
//! so it lands in that package's layer and changes only when that package set does.
//!
//! | package | its script | what is generated here |
//! |---|---|---|
//! | any shipping `usr/share/ca-certificates/**.crt` (`ca-certificates`) | `update-ca-certificates` | `/etc/ssl/certs/ca-certificates.crt` ([`super::extract::ca_bundle`]) |
//! | `ca-certificates-java` | its postinst, through the `jks-keystore` hook | `/etc/ssl/certs/java/cacerts`: a JKS trust store ([`super::jks`]) of every certificate of the bundle, alias `debian:NAME.pem` |
//! | `openjdk-N-*` | `update-alternatives` for the JRE/JDK tools | `/usr/bin/TOOL` -> `/usr/lib/jvm/DIR/bin/TOOL` (the highest N wins, as its alternatives priority does) |

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::layer::{FileSource, LayerEntrySpec, SpecKind};

use super::extract::{self, DebContents};
use super::jks::{self, TrustedCert};
use super::DebError;

/// Where `ca-certificates-java` keeps the JDK's trust store (`lib/security/cacerts` of
/// every Debian JRE links here).
pub const JAVA_CACERTS: &str = "etc/ssl/certs/java/cacerts";

/// A regular file made of `bytes`, mode 0644, owned by root.
pub fn bytes_entry(path: &str, bytes: Vec<u8>) -> LayerEntrySpec {
    LayerEntrySpec {
        path: path.into(),
        kind: SpecKind::File(FileSource::Bytes(Arc::from(bytes))),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

/// The files to generate, as (index of the owning package in `names`, entry).
/// `names[k]` is the package whose contents are `contents[k]`; `time_ms` dates keystore
/// entries (`SOURCE_DATE_EPOCH`).
pub fn generate(
    names: &[&str],
    contents: &[DebContents],
    time_ms: u64,
) -> Result<Vec<(usize, LayerEntrySpec)>, DebError> {
    let mut out = Vec::new();
    for (k, c) in contents.iter().enumerate() {
        if let Some(bundle) = extract::ca_bundle(&c.entries) {
            out.push((k, bytes_entry("etc/ssl/certs/ca-certificates.crt", bundle)));
        }
    }
    if let Some(k) = names.iter().position(|n| *n == "ca-certificates-java") {
        let all: Vec<&LayerEntrySpec> = contents.iter().flat_map(|c| &c.entries).collect();
        let certs = trusted_certs(&all).map_err(|why| DebError::Deb { file: JAVA_CACERTS.into(), why })?;
        if !certs.is_empty() {
            let ks = jks::write(&certs, jks::CACERTS_PASSWORD, time_ms)
                .map_err(|why| DebError::Deb { file: JAVA_CACERTS.into(), why })?;
            out.push((k, bytes_entry(JAVA_CACERTS, ks)));
        }
    }
    out.extend(java_alternatives(names, contents));
    Ok(out)
}

/// Every certificate under `usr/share/ca-certificates/` (the ones `update-ca-certificates`
/// enables by default), aliased as `ca-certificates-java` does: `debian:` + the name of
/// its `/etc/ssl/certs/*.pem` link, lower-cased. Sorted by alias; a file with several
/// certificates gives `NAME.pem`, `NAME.pem_2`, ...
pub fn trusted_certs(entries: &[&LayerEntrySpec]) -> Result<Vec<TrustedCert>, String> {
    let mut by_alias: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut files = super::extract::ca_certificate_files(entries.iter().copied());
    files.sort();
    for (path, pem) in files {
        let base = path.rsplit('/').next().unwrap_or(path);
        let alias = format!("debian:{}.pem", base.trim_end_matches(".crt")).to_lowercase();
        for (n, der) in pem_certificates(pem).map_err(|why| format!("/{path}: {why}"))?.into_iter().enumerate() {
            let a = if n == 0 { alias.clone() } else { format!("{alias}_{}", n + 1) };
            // Two files with one name in different directories: the first (by path) wins.
            by_alias.entry(a).or_insert(der);
        }
    }
    Ok(by_alias.into_iter().map(|(alias, der)| TrustedCert { alias, der }).collect())
}

/// The DER bytes of every `CERTIFICATE` block of a PEM file.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not PEM text (not UTF-8)".to_string())?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let body = &rest[start + "-----BEGIN CERTIFICATE-----".len()..];
        let end = body.find("-----END CERTIFICATE-----").ok_or("a certificate without its END line")?;
        let der = crate::transport::registry::auth::base64_decode(&body[..end])
            .filter(|d| d.first() == Some(&0x30))
            .ok_or("a certificate that is not base64 DER")?;
        out.push(der);
        rest = &body[end..];
    }
    Ok(out)
}

/// `/usr/bin/TOOL` links for the tools of every `openjdk-N-*` package, as its postinst
/// registers them with `update-alternatives` (here without `/etc/alternatives`: the link
/// points at the tool itself). A path a package ships is never replaced.
fn java_alternatives(names: &[&str], contents: &[DebContents]) -> Vec<(usize, LayerEntrySpec)> {
    let shipped: std::collections::HashSet<&str> =
        contents.iter().flat_map(|c| &c.entries).map(|e| e.path.as_str()).collect();
    // tool -> (feature release, owner, target); the highest release wins.
    let mut best: BTreeMap<&str, (u32, usize, String)> = BTreeMap::new();
    for (k, name) in names.iter().enumerate() {
        let Some(release) = name.strip_prefix("openjdk-").and_then(|r| r.split('-').next()?.parse::<u32>().ok()) else {
            continue;
        };
        for e in &contents[k].entries {
            let Some((dir, tool)) = e.path.strip_prefix("usr/lib/jvm/").and_then(|p| p.split_once("/bin/")) else {
                continue;
            };
            if dir.contains('/') || tool.contains('/') || !matches!(e.kind, SpecKind::File(_) | SpecKind::Symlink(_)) {
                continue;
            }
            if shipped.contains(format!("usr/bin/{tool}").as_str()) {
                continue;
            }
            let cand = (release, k, format!("/{}", e.path));
            match best.get(tool) {
                Some(old) if old.0 >= release => {}
                _ => {
                    best.insert(tool, cand);
                }
            }
        }
    }
    best.into_iter()
        .map(|(tool, (_, k, target))| {
            let e = LayerEntrySpec {
                path: format!("usr/bin/{tool}"),
                kind: SpecKind::Symlink(target),
                mode: 0o777,
                uid: 0,
                gid: 0,
            };
            (k, e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, b: &[u8]) -> LayerEntrySpec {
        bytes_entry(path, b.to_vec())
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

    #[test]
    fn cacerts_for_ca_certificates_java() {
        let certs = DebContents {
            control: String::new(),
            entries: vec![
                file("usr/share/ca-certificates/mozilla/Zeta_Root.crt", PEM.as_bytes()),
                file("usr/share/ca-certificates/mozilla/Alpha_Root.crt", format!("{PEM}{PEM}").as_bytes()),
            ],
        };
        let java = DebContents { control: String::new(), entries: vec![] };
        let g = generate(&["ca-certificates", "ca-certificates-java"], &[certs.clone(), java.clone()], 0).unwrap();
        let paths: Vec<(usize, &str)> = g.iter().map(|(k, e)| (*k, e.path.as_str())).collect();
        assert_eq!(paths, [(0, "etc/ssl/certs/ca-certificates.crt"), (1, JAVA_CACERTS)]);
        let SpecKind::File(FileSource::Bytes(ks)) = &g[1].1.kind else { panic!() };
        let read = jks::read(ks, jks::CACERTS_PASSWORD).unwrap();
        let aliases: Vec<&str> = read.iter().map(|c| c.alias.as_str()).collect();
        assert_eq!(aliases, ["debian:alpha_root.pem", "debian:alpha_root.pem_2", "debian:zeta_root.pem"]);
        assert_eq!(read[0].der, [0x30, 0x03, 0x02, 0x01, 0x01]);
        // Deterministic: the same packages give the same bytes.
        let again = generate(&["ca-certificates", "ca-certificates-java"], &[certs.clone(), java], 0).unwrap();
        assert_eq!(format!("{:?}", again), format!("{g:?}"));
        // Without ca-certificates-java, no keystore.
        assert_eq!(generate(&["ca-certificates"], &[certs], 0).unwrap().len(), 1);
        assert!(pem_certificates(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").is_err());
    }

    #[test]
    fn java_tools_link_to_the_highest_release() {
        let jre = |v: &str, tools: &[&str]| DebContents {
            control: String::new(),
            entries: tools.iter().map(|t| file(&format!("usr/lib/jvm/java-{v}-openjdk-amd64/bin/{t}"), b"")).collect(),
        };
        let other = DebContents { control: String::new(), entries: vec![file("usr/bin/keytool", b"")] };
        let g = generate(
            &["openjdk-17-jre-headless", "openjdk-8-jre-headless", "tool"],
            &[jre("17", &["java", "keytool"]), jre("8", &["java", "rmid"]), other],
            0,
        )
        .unwrap();
        let links: Vec<(usize, &str, String)> = g
            .iter()
            .map(|(k, e)| match &e.kind {
                SpecKind::Symlink(t) => (*k, e.path.as_str(), t.clone()),
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            links,
            [
                (0, "usr/bin/java", "/usr/lib/jvm/java-17-openjdk-amd64/bin/java".to_string()),
                (1, "usr/bin/rmid", "/usr/lib/jvm/java-8-openjdk-amd64/bin/rmid".to_string()),
            ]
        );
    }
}
