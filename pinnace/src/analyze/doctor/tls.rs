//! TLS without CA certificates: a program that speaks TLS (links libssl, libgnutls,
//! libnss3…, or is a Go program with `crypto/tls`, or Rust with rustls/openssl) verifies
//! servers against the system's CA bundle; on an image without one, every HTTPS request
//! fails with "certificate signed by unknown authority" (Go) or "unable to get local
//! issuer certificate" (OpenSSL). Programs that carry their own roots (Rust
//! `webpki-roots`, Go `x509roots/fallback`) are not reported.
//!
//! A bundle counts when a non-empty file is at one of the paths Go's `crypto/x509` and
//! the distributions use, at `SSL_CERT_FILE`, or in a certificate directory
//! (`/etc/ssl/certs`, `/etc/pki/tls/certs`, `SSL_CERT_DIR`).
//!
//! Check: `tls-no-ca-bundle`.

use super::command::Launch;
use super::elf::Analysis;
use super::scan::Snapshot;
use super::Finding;
use crate::fs::NodeKind;

/// CA bundle files (Go's `crypto/x509` list for Linux).
pub const CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Certificate directories (hashed links or PEM files).
pub const CA_DIRS: &[&str] = &["/etc/ssl/certs", "/etc/pki/tls/certs"];

/// A non-empty regular file at `path` (links followed inside the image).
fn non_empty_file(snap: &Snapshot, path: &str) -> bool {
    let t = &snap.tree;
    t.resolve(path, true)
        .is_ok_and(|id| matches!(t.meta(id).kind, NodeKind::File | NodeKind::HardLink) && t.meta(id).size > 0)
}

/// A directory holding at least one non-empty certificate file.
fn cert_dir(snap: &Snapshot, path: &str) -> bool {
    let t = &snap.tree;
    let Ok(dir) = t.resolve(path, true) else { return false };
    t.meta(dir).kind == NodeKind::Dir
        && t.children(dir).filter(|&c| t.is_present(c)).any(|c| {
            let p = t.path(c);
            (p.ends_with(".pem") || p.ends_with(".crt") || p.ends_with(".0")) && non_empty_file(snap, &p)
        })
}

/// Where the image keeps its CA certificates, if anywhere.
pub fn ca_bundle(snap: &Snapshot, launch: &Launch) -> Option<String> {
    let file = launch.env("SSL_CERT_FILE").filter(|f| !f.is_empty());
    let dirs: Vec<&str> = launch.env("SSL_CERT_DIR").map(|d| d.split(':').collect()).unwrap_or_default();
    file.into_iter()
        .chain(CA_FILES.iter().copied())
        .find(|f| non_empty_file(snap, f))
        .or_else(|| dirs.into_iter().chain(CA_DIRS.iter().copied()).find(|d| cert_dir(snap, d)))
        .map(str::to_string)
}

/// Reports TLS programs on an image without CA certificates.
pub fn check(snap: &Snapshot, launch: &Launch, analysis: &Analysis, out: &mut Vec<Finding>) {
    let users: Vec<(String, String)> = analysis
        .elf
        .iter()
        .filter(|e| !e.embedded_roots)
        .filter_map(|e| {
            let own = e.info.as_ref().and_then(|i| i.tls.clone());
            let libs = e.closure.as_ref().ok().and_then(|c| c.facts.tls.clone());
            Some((analysis.chain.programs[e.program].path.clone(), own.or(libs)?))
        })
        .collect();
    if users.is_empty() || ca_bundle(snap, launch).is_some() {
        return;
    }
    for (path, why) in users {
        out.push(
            Finding::new(
                "tls-no-ca-bundle",
                format!(
                    "{path} speaks TLS ({why}) but the image has no CA certificates ({} or a certificate directory): every certificate check will fail",
                    CA_FILES[0]
                ),
            )
            .at(path),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::doctor::scan::testkit::{snapshot, E};

    fn launch(env: &[&str]) -> Launch {
        Launch::new(vec![], env.iter().map(|s| s.to_string()).collect(), None, None)
    }

    #[test]
    fn finds_bundles_files_dirs_and_env() {
        let l = launch(&[]);
        assert_eq!(ca_bundle(&snapshot(&[vec![]]), &l), None);
        let deb = snapshot(&[vec![E::file("etc/ssl/certs/ca-certificates.crt", b"-----BEGIN CERTIFICATE-----")]]);
        assert_eq!(ca_bundle(&deb, &l).as_deref(), Some("/etc/ssl/certs/ca-certificates.crt"));
        let empty = snapshot(&[vec![E::file("etc/ssl/certs/ca-certificates.crt", b"")]]);
        assert_eq!(ca_bundle(&empty, &l), None);
        let alpine =
            snapshot(&[vec![E::file("etc/ssl/cert.pem", b"x"), E::link("etc/ssl/certs/x.pem", "../cert.pem")]]);
        assert_eq!(ca_bundle(&alpine, &l).as_deref(), Some("/etc/ssl/cert.pem"));
        let dir = snapshot(&[vec![
            E::file("usr/share/ca/a.crt", b"x"),
            E::link("etc/pki/tls/certs/1a2b.0", "/usr/share/ca/a.crt"),
        ]]);
        assert_eq!(ca_bundle(&dir, &l).as_deref(), Some("/etc/pki/tls/certs"));
        let custom = snapshot(&[vec![E::file("opt/ca.pem", b"x")]]);
        assert_eq!(ca_bundle(&custom, &launch(&["SSL_CERT_FILE=/opt/ca.pem"])).as_deref(), Some("/opt/ca.pem"));
        assert_eq!(ca_bundle(&custom, &l), None);
    }
}
