//! Registry flags shared by every command (`--tls-verify`, `--cert-dir`, `--authfile`),
//! and `pinnace login` / `pinnace logout`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use pinnace::transport::registry::{self, Credentials, RegistryOptions};

/// Global registry flags (skopeo's spelling).
#[derive(Debug, Args, Default)]
pub struct RegistryFlags {
    /// Require HTTPS and verify certificates (default true); `--tls-verify=false` also allows plain HTTP.
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Directory with extra CA certificates (*.crt) and a client certificate (*.cert, *.key).
    #[arg(long, global = true, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Credentials file to read first (and the one login/logout write).
    #[arg(long, global = true, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

impl RegistryFlags {
    /// The options these flags give.
    pub fn options(&self) -> RegistryOptions {
        RegistryOptions {
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            auth_file: self.authfile.clone(),
            credentials: None,
        }
    }
}

/// Arguments of `pinnace login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (HOST[:PORT]).
    pub registry: String,
    /// User name.
    #[arg(long, short)]
    pub username: String,
    /// Read the password from standard input (the only way: a password in argv leaks to `ps`).
    #[arg(long)]
    pub password_stdin: bool,
}

/// Arguments of `pinnace logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (HOST[:PORT]).
    pub registry: String,
}

/// Checks the credentials against the registry and stores them.
pub fn login(a: LoginArgs) -> anyhow::Result<()> {
    if !a.password_stdin {
        anyhow::bail!("pass the password on standard input with --password-stdin (e.g. `printf %s \"$PW\" | pinnace login {} -u {} --password-stdin`)", a.registry, a.username);
    }
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        anyhow::bail!("the password read from standard input is empty");
    }
    let creds = Credentials { username: a.username, password };
    let file = registry::login(&a.registry, creds, &RegistryOptions::default())
        .with_context(|| format!("logging in to {}", a.registry))?;
    println!("Login Succeeded ({})", file.display());
    Ok(())
}

/// Removes the stored credentials.
pub fn logout(a: LogoutArgs) -> anyhow::Result<()> {
    let (file, had) = registry::logout(&a.registry, &RegistryOptions::default())
        .with_context(|| format!("logging out of {}", a.registry))?;
    if had {
        println!("Removed login credentials for {} ({})", a.registry, file.display());
        Ok(())
    } else {
        anyhow::bail!("not logged in to {} ({} has no entry for it)", a.registry, file.display())
    }
}
