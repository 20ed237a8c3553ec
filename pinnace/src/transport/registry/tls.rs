//! TLS settings as skopeo and containers/image spell them.
//!
//! Trusted roots: the system bundle (`$SSL_CERT_FILE`, else the usual Debian/Fedora/Alpine
//! paths), plus every `*.crt` of the cert dir. The cert dir is `--cert-dir DIR` when given,
//! else `/etc/containers/certs.d/HOST[:PORT]` or `/etc/docker/certs.d/HOST[:PORT]` when
//! one exists. A `*.cert` + `*.key` pair in the cert dir is the client certificate. With
//! no system bundle and no cert dir, Mozilla's roots (webpki-roots, built in) are used, so
//! a static binary on a bare system still reaches public registries.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ureq::tls::{parse_pem, Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use super::RegistryError;

const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The cert dir for `registry`: the explicit one, else the per-host default if present.
pub fn cert_dir_for(registry: &str, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(d) = explicit {
        return Some(d.to_path_buf());
    }
    ["/etc/containers/certs.d", "/etc/docker/certs.d"].iter().map(|b| Path::new(b).join(registry)).find(|p| p.is_dir())
}

fn tls_err(path: &Path, why: impl ToString) -> RegistryError {
    RegistryError::Tls { path: path.to_path_buf(), why: why.to_string() }
}

fn certs_in(path: &Path) -> Result<Vec<Certificate<'static>>, RegistryError> {
    let pem = fs::read(path).map_err(|e| tls_err(path, e))?;
    let mut out = Vec::new();
    for item in parse_pem(&pem) {
        if let PemItem::Certificate(c) = item.map_err(|e| tls_err(path, e))? {
            out.push(c);
        }
    }
    Ok(out)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let mut v: Vec<PathBuf> =
        fs::read_dir(dir).map_err(|e| tls_err(dir, e))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

/// Builds the TLS configuration: `verify` false accepts any certificate (skopeo's
/// `--tls-verify=false`).
pub fn tls_config(registry: &str, verify: bool, cert_dir: Option<&Path>) -> Result<TlsConfig, RegistryError> {
    let mut b = TlsConfig::builder().disable_verification(!verify);
    let dir = cert_dir_for(registry, cert_dir);
    let mut roots = Vec::new();
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .or_else(|| SYSTEM_BUNDLES.iter().map(PathBuf::from).find(|p| p.is_file()));
    if let Some(s) = &system {
        roots.extend(certs_in(s)?);
    }
    if let Some(d) = &dir {
        if !d.is_dir() {
            return Err(tls_err(d, "the cert dir does not exist"));
        }
        let entries = sorted_entries(d)?;
        let ext = |p: &Path, e: &str| p.extension().is_some_and(|x| x == e);
        for p in entries.iter().filter(|p| ext(p, "crt")) {
            roots.extend(certs_in(p)?);
        }
        if let Some(cert) = entries.iter().find(|p| ext(p, "cert")) {
            let key = cert.with_extension("key");
            let chain = certs_in(cert)?;
            let kpem = fs::read(&key).map_err(|e| tls_err(&key, format!("client certificate without its key: {e}")))?;
            let pk = PrivateKey::from_pem(&kpem).map_err(|e| tls_err(&key, e))?;
            b = b.client_cert(Some(ClientCert::new_with_certs(&chain, pk)));
        }
    }
    if !roots.is_empty() {
        b = b.root_certs(RootCerts::Specific(Arc::new(roots)));
    }
    Ok(b.build())
}
