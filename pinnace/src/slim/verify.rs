//! Verify: the slim image run by a real runtime (docker, else podman), as a [`ProbeTarget`].
//!
//! [`RuntimeContainer::start`] loads the image under a unique temporary name
//! (`localhost/pinnace-slim-verify:<8 hex>`) through pinnace's own daemon sink, runs it
//! detached with every probed port published on 127.0.0.1 (a random host port, read back
//! with `docker port`), and serves probes through the runtime's CLI (`exec`, `inspect`,
//! `logs`). Dropping it removes the container and the temporary name, always: also when
//! a probe failed or the caller panicked. The image itself is removed with the name
//! unless another name or container still uses it (no `--force`: a concurrent run of the
//! same image must not lose its container).
//!
//! podman on hosts like the test machines needs runc, the cgroupfs manager and explicit
//! ulimits (see `scripts/setup-test-tools.sh`); when `containers.conf` does not say so,
//! the flags are passed on the command line.

use std::io::{self, Read, Seek};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::copy::{copy_image, CopyOptions};
use crate::transport::{open_sink, ImageRef, Source, TransportError};

use super::probe::{ExecOutput, ProbeTarget};

/// The environment variable that picks the runtime (`docker` or `podman`).
pub const RUNTIME_ENV: &str = "PINNACE_SLIM_RUNTIME";

/// Errors of verification runs.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No container runtime is usable.
    #[error("no container runtime to verify the slim image with: {0}")]
    NoRuntime(String),
    /// Loading the image into the runtime failed.
    #[error("loading the slim image into {runtime} as {name}: {source}")]
    Load {
        /// docker or podman.
        runtime: &'static str,
        /// The temporary name.
        name: String,
        /// The cause.
        source: Box<TransportError>,
    },
    /// A runtime command failed.
    #[error("`{command}` failed: {why}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr.
        why: String,
    },
}

/// A container runtime's CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// The Docker Engine, through `docker`.
    Docker,
    /// podman (daemonless).
    Podman,
}

impl Runtime {
    /// The CLI's name.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
        }
    }

    /// The runtime to use: [`RUNTIME_ENV`] when it names one, else docker if `docker info`
    /// works (the engine runs), else podman if `podman info` works. `None` when nothing
    /// is usable or the variable holds another value (see [`Runtime::detect_checked`]
    /// for the reason).
    pub fn detect() -> Option<Runtime> {
        Runtime::detect_checked().ok()
    }

    /// Like [`Runtime::detect`], with the reason when there is none.
    pub fn detect_checked() -> Result<Runtime, VerifyError> {
        match std::env::var(RUNTIME_ENV).ok().as_deref().map(str::trim) {
            Some("docker") => return Ok(Runtime::Docker),
            Some("podman") => return Ok(Runtime::Podman),
            Some("") | None => {}
            Some(other) => {
                return Err(VerifyError::NoRuntime(format!("{RUNTIME_ENV}={other:?}: expected `docker` or `podman`")))
            }
        }
        for rt in [Runtime::Docker, Runtime::Podman] {
            if rt.works() {
                return Ok(rt);
            }
        }
        Err(VerifyError::NoRuntime(
            "`docker info` and `podman info` both fail: start the Docker Engine or install podman, or skip \
             verification with --force"
                .into(),
        ))
    }

    /// Whether the runtime answers `info` (for docker: the engine is up).
    pub fn works(self) -> bool {
        let format = match self {
            Runtime::Docker => "{{.ServerVersion}}",
            Runtime::Podman => "{{.Host.Arch}}",
        };
        self.command()
            .args(["info", "--format", format])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Flags before the subcommand: podman's runtime and cgroup manager when
    /// `containers.conf` does not set them.
    fn global_args(self) -> Vec<&'static str> {
        let conf = podman_conf();
        let mut a = Vec::new();
        if self == Runtime::Podman {
            if !conf_sets(&conf, "cgroup_manager") {
                a.push("--cgroup-manager=cgroupfs");
            }
            if !conf_sets(&conf, "runtime") {
                a.extend(["--runtime", "runc"]);
            }
        }
        a
    }

    /// Flags of `run`: podman's ulimits when `containers.conf` sets none.
    fn run_args(self) -> Vec<&'static str> {
        if self == Runtime::Podman && !conf_sets(&podman_conf(), "default_ulimits") {
            vec!["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
        } else {
            Vec::new()
        }
    }

    fn command(self) -> Command {
        let mut c = Command::new(self.name());
        c.args(self.global_args()).stdin(Stdio::null());
        c
    }

    /// Runs `args` and returns stdout, or the error with stderr.
    fn run(self, args: &[&str]) -> Result<String, VerifyError> {
        let cmdline = || format!("{} {}", self.name(), args.join(" "));
        let out = self
            .command()
            .args(args)
            .output()
            .map_err(|e| VerifyError::Command { command: cmdline(), why: format!("cannot run it: {e}") })?;
        if !out.status.success() {
            return Err(VerifyError::Command {
                command: cmdline(),
                why: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `args`, ignoring the outcome (cleanup).
    fn quiet(self, args: &[&str]) {
        let _ = self.command().args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// The text of podman's containers.conf files (`$CONTAINERS_CONF` or the system ones);
/// only checked for the presence of keys.
fn podman_conf() -> String {
    let mut paths =
        vec!["/usr/share/containers/containers.conf".to_string(), "/etc/containers/containers.conf".to_string()];
    if let Ok(p) = std::env::var("CONTAINERS_CONF") {
        paths.push(p);
    }
    paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| t.lines().map(|l| l.split('#').next().unwrap_or_default().to_string()).collect::<Vec<_>>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a containers.conf text sets `key` (a line `key = ...`).
fn conf_sets(conf: &str, key: &str) -> bool {
    conf.lines().any(|l| {
        let l = l.trim_start();
        l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
    })
}

/// What the verification container needs besides the image's own config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// TCP ports to publish on 127.0.0.1 (every port an HTTP probe uses).
    pub ports: Vec<u16>,
    /// Signal to stop the app with (`--stop-signal`), when not the image's.
    pub stop_signal: Option<String>,
}

/// The slim image running in docker or podman, reachable by probes. Dropping it removes
/// the container and the temporary image name.
#[derive(Debug)]
pub struct RuntimeContainer {
    runtime: Runtime,
    image: String,
    container: Option<String>,
    ports: Vec<(u16, u16)>,
}

/// Eight random hex digits (from the kernel), for names nobody else uses.
fn random_hex() -> String {
    let mut b = [0u8; 4];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
    if !ok {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = (t.subsec_nanos() ^ std::process::id().rotate_left(16)).to_le_bytes();
    }
    hex::encode(b)
}

impl RuntimeContainer {
    /// Loads `image` into `rt` under a temporary name and starts it detached, with
    /// `spec.ports` published on 127.0.0.1.
    pub fn start(rt: Runtime, image: &dyn Source, spec: &ContainerSpec) -> Result<RuntimeContainer, VerifyError> {
        let hex = random_hex();
        let name = format!("localhost/pinnace-slim-verify:{hex}");
        let r = match rt {
            Runtime::Docker => ImageRef::DockerDaemon { name: name.clone() },
            Runtime::Podman => ImageRef::ContainersStorage { name: name.clone() },
        };
        let load = |e| VerifyError::Load { runtime: rt.name(), name: name.clone(), source: Box::new(e) };
        let sink = open_sink(&r).map_err(load)?;
        // From here on, Drop removes whatever exists (a failed load leaves no name).
        let mut c = RuntimeContainer { runtime: rt, image: name.clone(), container: None, ports: Vec::new() };
        copy_image(image, sink, &CopyOptions::default()).map_err(load)?;

        let cname = format!("pinnace-slim-verify-{hex}");
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), cname.clone()];
        args.extend(rt.run_args().into_iter().map(String::from));
        let mut ports = spec.ports.clone();
        ports.sort_unstable();
        ports.dedup();
        for p in &ports {
            args.extend(["-p".into(), format!("127.0.0.1::{p}")]);
        }
        if let Some(s) = &spec.stop_signal {
            args.extend(["--stop-signal".into(), s.clone()]);
        }
        args.push(name.clone());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        match rt.run(&argv) {
            Ok(_) => c.container = Some(cname),
            Err(e) => {
                // `run` may have created the container before failing to start it.
                rt.quiet(&["rm", "-f", &cname]);
                return Err(e);
            }
        }
        for p in ports {
            match c.host_port(p) {
                Ok(host) => c.ports.push((p, host)),
                // An app that already exited has no ports; probes report its exit and log.
                Err(_) if c.app_exited().is_some() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(c)
    }

    /// The host port published for container port `port` (`docker port C PORT/tcp`).
    fn host_port(&self, port: u16) -> Result<u16, VerifyError> {
        let c = self.container.as_deref().unwrap_or_default();
        let spec = format!("{port}/tcp");
        let out = self.runtime.run(&["port", c, &spec])?;
        // "127.0.0.1:49153" (one line per binding).
        out.lines().filter_map(|l| l.trim().rsplit_once(':')).find_map(|(_, p)| p.parse::<u16>().ok()).ok_or_else(
            || VerifyError::Command {
                command: format!("{} port {c} {spec}", self.runtime.name()),
                why: format!("no host port in {:?}", out.trim()),
            },
        )
    }

    /// The runtime.
    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    /// The temporary image name.
    pub fn image_name(&self) -> &str {
        &self.image
    }
}

impl ProbeTarget for RuntimeContainer {
    fn connect(&self, port: u16, timeout: Duration) -> io::Result<TcpStream> {
        let host = self.ports.iter().find(|(p, _)| *p == port).map(|(_, h)| *h).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("port {port} was not published for verification"))
        })?;
        TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, host)), timeout)
    }

    fn exec(&self, argv: &[String], timeout: Duration) -> io::Result<ExecOutput> {
        let c = self.container.as_deref().ok_or_else(|| io::Error::other("no container"))?;
        // stdout and stderr go to files: pipes could fill up while we wait for the timeout.
        let mut out = tempfile::tempfile()?;
        let mut err = tempfile::tempfile()?;
        let mut child = self
            .runtime
            .command()
            .arg("exec")
            .arg(c)
            .args(argv)
            .stdout(out.try_clone()?)
            .stderr(err.try_clone()?)
            .spawn()?;
        let end = Instant::now() + timeout;
        let (status, timed_out) = loop {
            if let Some(s) = child.try_wait()? {
                break (Some(s), false);
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                break (None, true);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let read_all = |f: &mut std::fs::File| -> io::Result<Vec<u8>> {
            let mut v = Vec::new();
            f.rewind()?;
            f.read_to_end(&mut v)?;
            Ok(v)
        };
        let code = match status {
            Some(s) => {
                use std::os::unix::process::ExitStatusExt;
                s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
            }
            None => 128 + libc::SIGKILL,
        };
        Ok(ExecOutput { code, stdout: read_all(&mut out)?, stderr: read_all(&mut err)?, timed_out })
    }

    fn app_exited(&self) -> Option<i32> {
        let c = self.container.as_deref()?;
        let out = self.runtime.run(&["inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", c]).ok()?;
        let mut w = out.split_whitespace();
        match (w.next(), w.next().and_then(|s| s.parse().ok())) {
            (Some("false"), Some(code)) => Some(code),
            _ => None,
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let Some(c) = self.container.as_deref() else { return String::new() };
        // One file for both streams keeps their lines roughly in order.
        let Ok(mut f) = tempfile::tempfile() else { return String::new() };
        let (Ok(o), Ok(e)) = (f.try_clone(), f.try_clone()) else { return String::new() };
        let n = lines.to_string();
        let _ = self.runtime.command().args(["logs", "--tail", &n, c]).stdout(o).stderr(e).status();
        let mut s = String::new();
        let _ = f.rewind().and_then(|_| f.read_to_string(&mut s));
        s
    }

    fn describe(&self) -> String {
        match &self.container {
            Some(c) => format!("{} container {c} (image {})", self.runtime.name(), self.image),
            None => format!("{} image {}", self.runtime.name(), self.image),
        }
    }
}

impl Drop for RuntimeContainer {
    fn drop(&mut self) {
        if let Some(c) = self.container.take() {
            self.runtime.quiet(&["rm", "-f", "-v", &c]);
        }
        // Untags, and deletes the image when nothing else names or runs it.
        self.runtime.quiet(&["rmi", &self.image]);
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
