//! `--run`: start the image and watch it, with podman (docker when podman is missing).
//!
//! The image is loaded through pinnace's own `containers-storage:` (or `docker-daemon:`)
//! sink under a private name, unless it already is in that store. Then:
//!
//! 1. `run -d --pull never`: a failure to start is `run-start-failed` (with the
//!    engine's message, e.g. "executable file not found in $PATH").
//! 2. Watched for [`DoctorOptions::run_wait`](super::DoctorOptions): an exit with status
//!    0 is `run-exited-0` (a job), any other status `run-exited-nonzero` (with the last
//!    lines of its output); still running is `run-stays-up`.
//! 3. A running container is stopped with `stop -t <stop_timeout>`, which sends SIGTERM
//!    (or the image's StopSignal) to PID 1 and SIGKILL when the timeout passes. Exit code
//!    137 (128 + SIGKILL) or a stop that took the whole timeout is `run-ignores-sigterm`:
//!    as PID 1 a program gets no default signal action, so one that installs no handler
//!    ignores SIGTERM, the classic "my container ignores Ctrl-C". Otherwise
//!    `run-stops-on-sigterm`.
//!
//! The container and the loaded image are removed afterwards, also on failure.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{DoctorError, DoctorOptions, Finding};
use crate::copy::{copy_image, CopyOptions};
use crate::transport::daemon::{Daemon, DaemonSink};
use crate::transport::{Image, Source};

/// Longest any single engine command may take (a load of a big image included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// What `--run` saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// `podman` or `docker`.
    pub engine: String,
    /// The image name it ran.
    pub image: String,
    /// The container started.
    pub started: bool,
    /// `running` (at the end of the wait), `exited`, or `failed` (did not start).
    pub state: String,
    /// Exit status when it exited by itself.
    pub exit_code: Option<i32>,
    /// Seconds `stop` took.
    pub stop_seconds: Option<f64>,
    /// Exit status after `stop` (137: killed).
    pub stop_exit_code: Option<i32>,
    /// The last lines of its output (on failure).
    pub output: String,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `tool args` with stdin closed, killing it after `COMMAND_TIMEOUT`.
fn exec(tool: &str, args: &[&str]) -> Result<Out, DoctorError> {
    let command = format!("{tool} {}", args.join(" "));
    let engine = |why: String| DoctorError::Engine { command: command.clone(), why };
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| engine(format!("cannot run it: {e}")))?;
    let (mut so, mut se) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = so.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let mut stderr = String::new();
    let err_reader = std::thread::spawn(move || {
        if let Some(e) = se.as_mut() {
            let _ = e.read_to_string(&mut stderr);
        }
        stderr
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| engine(e.to_string()))? {
            break s;
        }
        if start.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(engine(format!("still running after {}s; killed", COMMAND_TIMEOUT.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Out { ok: status.success(), stdout, stderr })
}

/// podman, else docker, whichever answers `--version`.
fn engine() -> Result<(&'static str, Daemon), DoctorError> {
    let works = |t: &str| {
        Command::new(t).arg("--version").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status()
    };
    match works("podman") {
        Ok(s) if s.success() => return Ok(("podman", Daemon::Podman)),
        _ => {}
    }
    match works("docker") {
        Ok(s) if s.success() => Ok(("docker", Daemon::Docker)),
        Ok(s) => Err(DoctorError::NoEngine(format!("podman is missing and docker --version exited with {s}"))),
        Err(e) => Err(DoctorError::NoEngine(format!("podman and docker cannot be run: {e}"))),
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Starts the image and watches it (see the module documentation).
pub fn run(src: &dyn Source, image: &Image, opts: &DoctorOptions) -> Result<(RunReport, Vec<Finding>), DoctorError> {
    let (tool, daemon) = engine()?;
    let described = src.describe();
    let store_prefix = match daemon {
        Daemon::Podman => "containers-storage:",
        Daemon::Docker => "docker-daemon:",
    };
    let (name, loaded) = match described.strip_prefix(store_prefix) {
        Some(n) => (n.to_string(), false),
        None => {
            let name = format!("localhost/{}:latest", unique("pinnace-doctor"));
            let sink = DaemonSink::create(daemon, &name)
                .map_err(|e| DoctorError::Load { engine: tool, source: Box::new(e) })?;
            let copy = CopyOptions { platform: Some(image.platform()), ..CopyOptions::default() };
            copy_image(src, Box::new(sink), &copy)
                .map_err(|e| DoctorError::Load { engine: tool, source: Box::new(e) })?;
            (name, true)
        }
    };
    let container = unique("pinnace-doctor");
    let result = watch(tool, &name, &container, opts);
    let _ = exec(tool, &["rm", "-f", &container]);
    if loaded {
        let _ = exec(tool, &["rmi", &name]);
    }
    let (mut report, findings) = result?;
    report.engine = tool.to_string();
    report.image = name;
    Ok((report, findings))
}

fn inspect_state(tool: &str, container: &str) -> Result<(bool, i32), DoctorError> {
    let o = exec(tool, &["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", container])?;
    if !o.ok {
        return Err(DoctorError::Engine {
            command: format!("{tool} inspect {container}"),
            why: o.stderr.trim().to_string(),
        });
    }
    let mut it = o.stdout.split_whitespace();
    let running = it.next() == Some("true");
    let code = it.next().and_then(|c| c.parse().ok()).unwrap_or(-1);
    Ok((running, code))
}

fn logs(tool: &str, container: &str) -> String {
    exec(tool, &["logs", "--tail", "20", container])
        .map(|o| format!("{}{}", o.stdout, o.stderr).trim().to_string())
        .unwrap_or_default()
}

fn watch(
    tool: &str,
    image: &str,
    container: &str,
    opts: &DoctorOptions,
) -> Result<(RunReport, Vec<Finding>), DoctorError> {
    let mut report = RunReport::default();
    let mut found = Vec::new();
    let o = exec(tool, &["run", "-d", "--pull", "never", "--name", container, image])?;
    if !o.ok {
        report.state = "failed".into();
        report.output = o.stderr.trim().to_string();
        let msg = format!("{tool} run {image} failed: {}", report.output);
        found.push(Finding::new("run-start-failed", msg));
        return Ok((report, found));
    }
    report.started = true;
    let deadline = Instant::now() + opts.run_wait;
    let (mut running, mut code) = inspect_state(tool, container)?;
    while running && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        (running, code) = inspect_state(tool, container)?;
    }
    if !running {
        report.state = "exited".into();
        report.exit_code = Some(code);
        if code == 0 {
            found.push(Finding::new(
                "run-exited-0",
                format!("it ran to completion with status 0 within {:?}", opts.run_wait),
            ));
        } else {
            report.output = logs(tool, container);
            let tail = report
                .output
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" | ");
            found.push(Finding::new(
                "run-exited-nonzero",
                format!("it exited with status {code}; its last output: {tail}"),
            ));
        }
        return Ok((report, found));
    }
    report.state = "running".into();
    found.push(Finding::new("run-stays-up", format!("it was still running after {:?}", opts.run_wait)));
    let t = opts.stop_timeout.as_secs().max(1).to_string();
    let start = Instant::now();
    let stop = exec(tool, &["stop", "-t", &t, container])?;
    let took = start.elapsed();
    if !stop.ok {
        return Err(DoctorError::Engine {
            command: format!("{tool} stop -t {t} {container}"),
            why: stop.stderr.trim().to_string(),
        });
    }
    let (_, code) = inspect_state(tool, container)?;
    report.stop_seconds = Some((took.as_secs_f64() * 10.0).round() / 10.0);
    report.stop_exit_code = Some(code);
    let grace = opts.stop_timeout.saturating_sub(Duration::from_millis(500));
    if code == 137 || took >= grace {
        found.push(Finding::new(
            "run-ignores-sigterm",
            format!(
                "after SIGTERM it was still running {}s later and was killed (exit status {code}, stop took {:.1}s)",
                opts.stop_timeout.as_secs(),
                took.as_secs_f64()
            ),
        ));
    } else {
        found.push(Finding::new(
            "run-stops-on-sigterm",
            format!("it exited {:.1}s after SIGTERM with status {code}", took.as_secs_f64()),
        ));
    }
    Ok((report, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_captures_output_and_status() {
        let o = exec("sh", &["-c", "echo out; echo err >&2; exit 3"]).unwrap();
        assert!(!o.ok);
        assert_eq!(o.stdout.trim(), "out");
        assert_eq!(o.stderr.trim(), "err");
        assert!(exec("sh", &["-c", "true"]).unwrap().ok);
        assert!(matches!(exec("/nonexistent/tool", &[]), Err(DoctorError::Engine { .. })));
    }

    #[test]
    fn names_are_unique_and_lowercase() {
        let (a, b) = (unique("x"), unique("x"));
        assert!(a.starts_with("x-") && a.chars().all(|c| !c.is_ascii_uppercase()));
        assert!(a != b || a.len() > 2);
    }
}
