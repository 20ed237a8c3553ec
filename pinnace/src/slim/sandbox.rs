//! Running an unpacked image without a daemon: the pinnace side of the sandbox.
//!
//! [`Sandbox::start`] writes the run's spec into a private work directory and starts
//! `pinnace __sandbox WORK` (see [`init`](super::init) for what happens inside: new
//! namespaces, overlayfs over the unpacked root so it stays pristine, `pivot_root`, the
//! tracer). The app's output goes to `WORK/out/app.log`. Probes reach the app through
//! [`ProbeTarget`]: TCP connections are made from a thread that joined the sandbox's
//! network namespace (the socket stays in it), exec probes are started by the sandbox's
//! init next to the app. [`Sandbox::stop`] signals the app, waits, and returns the
//! [`Trace`]. Dropping a sandbox kills whatever is left and removes the work directory.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::init::{Command, Event};
use super::probe::{ExecOutput, ProbeTarget};
use super::trace::Trace;

/// How to run an unpacked image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The unpacked root (overlayfs's lower layer: never written).
    pub lower: PathBuf,
    /// The environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// User id the app runs as.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Working directory inside the image.
    pub cwd: String,
    /// Hostname.
    pub hostname: String,
    /// Trace file accesses (seccomp user notifications, or ptrace; see `tracer`).
    pub trace: bool,
    /// With `trace`: also watch opens with fanotify (the second witness).
    pub witness: bool,
}

/// Why a sandbox failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Preparing the work directory or talking to the sandbox failed.
    #[error("sandbox {path}: {source}")]
    Io {
        /// The path or channel.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The sandbox could not be set up (namespaces, mounts, tracer).
    #[error("the sandbox could not start: {0}")]
    Setup(String),
    /// The sandbox ended without the trace it owed.
    #[error("the sandbox ended without a trace: {0}")]
    NoTrace(String),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted")]
    Interrupted,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set a flag instead of killing pinnace, so a slim run can
/// stop its sandboxes and remove its directories (see [`interrupted`]).
pub fn catch_interrupts() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Whether SIGINT or SIGTERM arrived since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[derive(Default)]
struct State {
    ready: bool,
    closed: bool,
    exited: HashMap<u32, i32>,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

/// A running sandbox (see the module docs).
pub struct Sandbox {
    work: PathBuf,
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    shared: Arc<Shared>,
    stderr: Arc<Mutex<Vec<u8>>>,
    netns: File,
    next_id: AtomicU32,
    describe: String,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SandboxError + '_ {
    move |source| SandboxError::Io { path: path.to_path_buf(), source }
}

impl Sandbox {
    /// Starts `app` (entrypoint + cmd) from `spec` in a new sandbox whose work
    /// directory is `work` (created here, removed when the sandbox is dropped).
    pub fn start(spec: &SandboxSpec, work: &Path, app: &[String]) -> Result<Sandbox, SandboxError> {
        if app.is_empty() {
            return Err(SandboxError::Setup("the image has no entrypoint and no cmd: nothing to run".into()));
        }
        for d in ["upper", "ovlwork", "merged", "out"] {
            fs::create_dir_all(work.join(d)).map_err(io_err(work))?;
        }
        let write = |name: &str, data: &[u8]| fs::write(work.join(name), data).map_err(io_err(work));
        write("spec.json", &serde_json::to_vec(spec).map_err(|e| SandboxError::Setup(e.to_string()))?)?;
        write(
            "hosts",
            format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n", spec.hostname)
                .as_bytes(),
        )?;
        write("hostname", format!("{}\n", spec.hostname).as_bytes())?;
        // No network leaves the sandbox; an empty resolver config makes lookups fail fast.
        write("resolv.conf", b"")?;
        // The running binary itself, even when its file was replaced or removed since it
        // started (an upgrade, a rebuild): /proc/self/exe names the inode, not the path.
        let mut child = std::process::Command::new("/proc/self/exe")
            .arg("__sandbox")
            .arg(work)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err(work))?;
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), cv: Condvar::new() });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        {
            let out = child.stdout.take().expect("piped");
            let shared = shared.clone();
            std::thread::spawn(move || read_events(out, &shared));
            let mut err = child.stderr.take().expect("piped");
            let buf = stderr.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = err.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.lock().expect("stderr buffer").extend_from_slice(&chunk[..n]);
                }
            });
        }
        let stdin = child.stdin.take();
        let netns_path = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
        let mut sb = Sandbox {
            work: work.to_path_buf(),
            netns: File::open("/proc/self/ns/net").map_err(io_err(&netns_path))?,
            child,
            stdin: Mutex::new(stdin),
            shared,
            stderr,
            next_id: AtomicU32::new(1),
            describe: "sandbox".into(),
        };
        let ready = sb.wait_for(Duration::from_secs(60), |s| s.ready || s.closed);
        if !ready || sb.shared.state.lock().expect("state").closed {
            return Err(SandboxError::Setup(sb.stderr_text()));
        }
        sb.netns = File::open(&netns_path).map_err(io_err(&netns_path))?;
        sb.send(&Command::Run { id: 0, argv: app.to_vec() })?;
        Ok(sb)
    }

    /// What the sandbox's own processes wrote on stderr (setup errors).
    fn stderr_text(&self) -> String {
        let b = self.stderr.lock().expect("stderr buffer");
        let t = String::from_utf8_lossy(&b).trim().to_string();
        if t.is_empty() {
            "the sandbox process ended without a message".into()
        } else {
            t
        }
    }

    fn send(&self, c: &Command) -> Result<(), SandboxError> {
        let mut line = serde_json::to_vec(c).expect("commands serialise");
        line.push(b'\n');
        let mut g = self.stdin.lock().expect("stdin");
        let w = g.as_mut().ok_or_else(|| SandboxError::Setup("the sandbox is stopping".into()))?;
        w.write_all(&line).and_then(|()| w.flush()).map_err(io_err(&self.work))
    }

    /// Waits until `done` holds for the state or `timeout` passes; returns `done`'s value.
    fn wait_for(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.state.lock().expect("state");
        loop {
            if done(&s) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || interrupted() {
                return false;
            }
            // Short waits, so an interrupt is noticed.
            let step = (deadline - now).min(Duration::from_millis(200));
            s = self.shared.cv.wait_timeout(s, step).expect("state").0;
        }
    }

    /// Waits (without polling: a timed sleep would compete with the app for the CPU) until
    /// the app exits or `timeout` passes; the app's exit code, as
    /// [`ProbeTarget::app_exited`] gives it.
    pub fn wait_app_exit(&self, timeout: Duration) -> Option<i32> {
        self.wait_for(timeout, |s| s.exited.contains_key(&0) || s.closed);
        self.app_exited()
    }

    /// Stops the app with `signal` (SIGKILL after `grace`), ends the sandbox and returns
    /// what the tracer recorded.
    pub fn stop(mut self, signal: i32, grace: Duration) -> Result<Trace, SandboxError> {
        let _ = self.send(&Command::Stop { signal, grace_ms: grace.as_millis() as u64 });
        self.stdin.lock().expect("stdin").take();
        let deadline = Instant::now() + grace + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        if interrupted() {
            return Err(SandboxError::Interrupted);
        }
        let path = self.work.join("trace.json");
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| SandboxError::NoTrace(format!("{}: {e}", path.display()))),
            Err(_) => Err(SandboxError::NoTrace(self.stderr_text())),
        }
    }
}

fn read_events(out: impl Read, shared: &Shared) {
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        let Ok(e) = serde_json::from_str::<Event>(&line) else { continue };
        let mut s = shared.state.lock().expect("state");
        match e {
            Event::Ready => s.ready = true,
            Event::Exited { id, code } => {
                s.exited.insert(id, code);
            }
        }
        shared.cv.notify_all();
    }
    shared.state.lock().expect("state").closed = true;
    shared.cv.notify_all();
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = fs::remove_dir_all(&self.work);
    }
}

/// The last `lines` lines of a file (lossy UTF-8).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let data = fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&data);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl ProbeTarget for Sandbox {
    fn connect(&self, port: u16, timeout: Duration) -> io::Result<TcpStream> {
        let ns = self.netns.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: moves only this short-lived thread into the sandbox's network
                // namespace; a socket keeps the namespace it was created in.
                if unsafe { libc::setns(ns, libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), timeout)
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("connect thread panicked")))
        })
    }

    fn exec(&self, argv: &[String], timeout: Duration) -> io::Result<ExecOutput> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.send(&Command::Run { id, argv: argv.to_vec() }).map_err(io::Error::other)?;
        let mut timed_out = false;
        if !self.wait_for(timeout, |s| s.exited.contains_key(&id) || s.closed) {
            timed_out = true;
            let _ = self.send(&Command::Kill { id });
            self.wait_for(Duration::from_secs(10), |s| s.exited.contains_key(&id) || s.closed);
        }
        let code = self.shared.state.lock().expect("state").exited.get(&id).copied();
        let Some(code) = code else {
            return Err(io::Error::other(format!(
                "the sandbox ended before `{}` finished: {}",
                argv.join(" "),
                self.stderr_text()
            )));
        };
        let out = self.work.join("out");
        Ok(ExecOutput {
            code,
            stdout: fs::read(out.join(format!("{id}.out"))).unwrap_or_default(),
            stderr: fs::read(out.join(format!("{id}.err"))).unwrap_or_default(),
            timed_out,
        })
    }

    fn app_exited(&self) -> Option<i32> {
        if interrupted() {
            return Some(130);
        }
        let s = self.shared.state.lock().expect("state");
        s.exited.get(&0).copied().or(if s.closed { Some(125) } else { None })
    }

    fn log_tail(&self, lines: usize) -> String {
        let app = tail(&self.work.join("out/app.log"), lines);
        let own = self.stderr_text();
        if self.shared.state.lock().expect("state").closed && !own.is_empty() {
            format!("{app}\n{own}")
        } else {
            app
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
