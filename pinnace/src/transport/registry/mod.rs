//! `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`: registries, per the OCI distribution spec
//! 1.1, on a blocking HTTP client ([`ureq`] with rustls; no async runtime).
//!
//! - [`reference`]: parsing and docker.io normalisation.
//! - [`client`]: the agent, scheme choice, authentication on each request, retries.
//! - [`auth`] and [`credentials`]: challenges, tokens, docker/podman credential files,
//!   credential helpers, `login`/`logout`.
//! - [`tls`]: `--tls-verify`, `--cert-dir`, `SSL_CERT_FILE`.
//! - [`source`] / [`sink`]: the [`Source`](super::Source) and [`Sink`](super::Sink).
//! - [`upload`]: chunked, resumable blob uploads.
//! - [`locations`]: where blobs are known to live, for cross-repository mounts.
//!
//! Who verifies what: the source serves bytes; [`super::Image`] verifies manifests,
//! config and layers by digest (a manifest fetched by digest, and one whose
//! `Docker-Content-Digest` the registry states, are checked here as well, since tag
//! fetches have no digest to check against later). The sink trusts the digests the
//! copy verified while streaming, and the registry verifies them again on `PUT ?digest=`.

pub mod auth;
pub mod client;
pub mod credentials;
mod error;
pub mod locations;
pub mod reference;
pub mod sink;
pub mod source;
pub mod tls;
pub mod upload;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

pub use auth::Credentials;
pub use error::{ErrorCode, RegistryError};
pub use reference::Reference;
pub use sink::RegistrySink;
pub use source::RegistrySource;

/// How to reach registries: skopeo's `--tls-verify`, `--cert-dir`, `--authfile`,
/// `--creds`. Unset fields fall back to the process-wide defaults ([`RegistryOptions::global`]).
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `Some(false)`: accept any certificate, and fall back to plain HTTP.
    pub tls_verify: Option<bool>,
    /// Extra CA certificates (`*.crt`) and a client certificate (`*.cert` + `*.key`).
    pub cert_dir: Option<PathBuf>,
    /// The credentials file to read first.
    pub auth_file: Option<PathBuf>,
    /// Credentials to use instead of any file.
    pub credentials: Option<Credentials>,
}

fn global_slot() -> &'static Mutex<RegistryOptions> {
    static G: OnceLock<Mutex<RegistryOptions>> = OnceLock::new();
    G.get_or_init(Default::default)
}

impl RegistryOptions {
    /// Sets the process-wide defaults (the CLI's global flags).
    pub fn set_global(o: RegistryOptions) {
        if let Ok(mut g) = global_slot().lock() {
            *g = o;
        }
    }

    /// The process-wide defaults.
    pub fn global() -> RegistryOptions {
        global_slot().lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// These options, with unset fields taken from `base`.
    pub fn or(&self, base: &RegistryOptions) -> RegistryOptions {
        RegistryOptions {
            tls_verify: self.tls_verify.or(base.tls_verify),
            cert_dir: self.cert_dir.clone().or_else(|| base.cert_dir.clone()),
            auth_file: self.auth_file.clone().or_else(|| base.auth_file.clone()),
            credentials: self.credentials.clone().or_else(|| base.credentials.clone()),
        }
    }
}

/// Logs in: checks `creds` against the registry, then stores them (see
/// [`credentials::login`]). Returns the file written.
pub fn login(registry: &str, creds: Credentials, opts: &RegistryOptions) -> Result<PathBuf, RegistryError> {
    let registry = reference::normalize_registry(registry);
    let o = RegistryOptions { credentials: Some(creds.clone()), ..opts.or(&RegistryOptions::global()) };
    client::Client::new(&registry, &o)?.check_login()?;
    credentials::login(&registry, &creds, o.auth_file.as_deref())
}

/// Logs out: removes the registry's entry. Returns the file and whether it had one.
pub fn logout(registry: &str, opts: &RegistryOptions) -> Result<(PathBuf, bool), RegistryError> {
    let o = opts.or(&RegistryOptions::global());
    credentials::logout(&reference::normalize_registry(registry), o.auth_file.as_deref())
}
