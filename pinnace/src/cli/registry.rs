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

/// `--src-creds` / `--dest-creds USER[:PASS]` (skopeo's flags). Its `Debug` hides the
/// value, so the password never reaches a log or an error message.
#[derive(Clone)]
pub struct CredsArg(String);

impl std::fmt::Debug for CredsArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredsArg(<redacted>)")
    }
}

impl std::str::FromStr for CredsArg {
    type Err = String;
    fn from_str(s: &str) -> Result<CredsArg, String> {
        if s.is_empty() || s.starts_with(':') {
            return Err("expected USER[:PASS] with a user name".into());
        }
        Ok(CredsArg(s.to_string()))
    }
}

impl CredsArg {
    /// The credentials: `USER:PASS` as given (the password may hold colons), or for a bare
    /// `USER` the password typed on the terminal without echo.
    pub fn resolve(self, flag: &str) -> anyhow::Result<Credentials> {
        match self.0.split_once(':') {
            Some((user, pass)) => Ok(Credentials { username: user.to_string(), password: pass.to_string() }),
            None => {
                let password = read_password(&format!("Password for {} ({flag}): ", self.0))
                    .with_context(|| format!("{flag} {}: reading the password (or pass USER:PASS)", self.0))?;
                Ok(Credentials { username: self.0, password })
            }
        }
    }
}

/// Reads one line from the terminal with echo off.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, Write};
    use std::os::fd::AsRawFd;
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").context("no terminal")?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data, filled by tcgetattr on an open fd.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open for the lifetime of `tty`; the pointer is to a live termios.
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        anyhow::bail!("not a terminal");
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    // SAFETY: as above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut out = &tty;
    let _ = out.write_all(prompt.as_bytes());
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    // SAFETY: as above; restores the settings read before.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    let _ = out.write_all(b"\n");
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
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
