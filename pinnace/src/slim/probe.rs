//! Probes: what slim runs against the original and the slim image, and compares.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

/// What an exec probe printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code (128 + signal number when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Killed because it ran past its timeout.
    pub timed_out: bool,
}

/// A running image that probes can reach: the sandbox (original image, traced) or a
/// container of docker or podman (the slim image, verified).
pub trait ProbeTarget {
    /// Connects to the app's TCP `port` on the container's loopback (or its published
    /// port), failing after `timeout` for that one attempt.
    fn connect(&self, port: u16, timeout: Duration) -> io::Result<TcpStream>;
    /// Runs `argv` inside the running container (same filesystem, env, user and
    /// workdir as the app; `argv[0]` looked up in the image's `PATH`), waits at most
    /// `timeout`, then kills it.
    fn exec(&self, argv: &[String], timeout: Duration) -> io::Result<ExecOutput>;
    /// `Some(code)` once the app (the entrypoint) has exited.
    fn app_exited(&self) -> Option<i32>;
    /// The last `lines` lines the app wrote to stdout and stderr.
    fn log_tail(&self, lines: usize) -> String;
    /// What this target is, for messages ("sandbox", "docker container 3f2a...").
    fn describe(&self) -> String;
}
