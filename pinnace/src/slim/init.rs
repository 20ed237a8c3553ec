//! The processes inside a sandbox, started by [`Sandbox`](super::sandbox::Sandbox) as
//! `pinnace __sandbox WORK` (a fresh single-threaded process, so forking is safe):
//!
//! - **outer** (this process): dies with pinnace (`PR_SET_PDEATHSIG`), unshares the
//!   mount, pid, network, uts and ipc namespaces, brings up loopback, mounts overlayfs
//!   (lower: the unpacked image, never written; upper: `WORK/upper`) on `WORK/merged`,
//!   forks the init and traces it and everything below it ([`tracer`](super::tracer)),
//!   then writes `WORK/trace.json`.
//! - **init** (pid 1 of the new pid namespace): a private mount namespace, `pivot_root`
//!   into the overlay, `/proc`, a minimal `/dev` (null, zero, full, random, urandom, tty
//!   bound from the host; shm), read-only `/sys`, and `/etc/hosts`, `/etc/hostname`,
//!   `/etc/resolv.conf` bound as container runtimes do. Then it serves the commands
//!   pinnace writes on its stdin (one JSON [`Command`] per line) and reports each
//!   [`Event`] on its stdout, reaps orphans, and on `Stop` signals everything, waits
//!   the grace period and kills what is left.
//! - **workers** (the app and each exec probe): a session of their own, stdout and
//!   stderr to files in `WORK/out`, the image's workdir, user and groups, the seccomp
//!   filter when tracing, then `execve` of `argv[0]` looked up in the image's `PATH`.

use std::ffi::CString;
use std::fs;
use std::io::{self, BufRead, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::sandbox::SandboxSpec;

/// A command pinnace sends the sandbox's init.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Command {
    /// Start `argv` (the app when `app`, else an exec probe); output to `out/<id>.out|err`.
    Run { id: u32, argv: Vec<String> },
    /// SIGKILL the process group of `id` (an exec probe past its timeout).
    Kill { id: u32 },
    /// Send `signal` to everything, SIGKILL what is left after `grace_ms`, exit.
    Stop { signal: i32, grace_ms: u64 },
}

/// What the sandbox's init reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Event {
    /// Set up; commands are served.
    Ready,
    /// `id` ended with `code` (128 + signal when killed).
    Exited { id: u32, code: i32 },
}

/// pinnace's nice value before the tracer raised its own priority: the app gets it back.
static ORIG_NICE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// How workers are traced ([`tracer::Mode`](super::tracer::Mode)), set by the outer
/// process before it forks the init: `None` untraced.
static TRACER: std::sync::OnceLock<Option<super::tracer::Mode>> = std::sync::OnceLock::new();

/// In [`Mode::Notify`](super::tracer::Mode::Notify), the init's end of the socket each
/// worker sends its filter's listener on (-1 otherwise).
static LISTENER_SOCK: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

fn tracer_mode() -> Option<super::tracer::Mode> {
    TRACER.get().copied().flatten()
}

/// Entry point of `pinnace __sandbox WORK`; returns the process's exit code.
pub fn outer_main(work: &Path) -> i32 {
    match outer(work) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pinnace sandbox: {e}");
            125
        }
    }
}

fn err(what: &str) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| {
        let hint = match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => {
                " (slim's sandbox needs CAP_SYS_ADMIN for namespaces and mounts and CAP_SYS_PTRACE for the tracer: run pinnace slim as root, or in a container with those capabilities)"
            }
            _ => "",
        };
        io::Error::new(e.kind(), format!("{what}: {e}{hint}"))
    }
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn cstr(p: impl AsRef<std::ffi::OsStr>) -> CString {
    CString::new(p.as_ref().as_bytes()).unwrap_or_default()
}

fn mount(src: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) -> io::Result<()> {
    let (s, t, f, d) = (cstr(src), cstr(target), cstr(fstype), cstr(data));
    // SAFETY: valid NUL-terminated strings for the duration of the call.
    check(unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            if fstype.is_empty() { std::ptr::null() } else { f.as_ptr() },
            flags,
            if data.is_empty() { std::ptr::null() } else { d.as_ptr().cast() },
        )
    })
}

fn outer(work: &Path) -> io::Result<i32> {
    let spec: SandboxSpec = serde_json::from_slice(&fs::read(work.join("spec.json"))?).map_err(io::Error::other)?;
    #[cfg(not(target_arch = "x86_64"))]
    if spec.trace {
        return Err(io::Error::other("the slim tracer supports x86_64 only"));
    }
    // SAFETY: prctl/signal/unshare with constant arguments.
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        // Ctrl-C is pinnace's to handle (it stops the sandbox and cleans up).
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        // The tracer sits on the app's critical path (every traced syscall waits for it):
        // a session of its own (so its scheduler autogroup is its own, not the user's
        // shell's) at a higher priority keeps its wake-ups prompt on a busy machine.
        // Best effort: without CAP_SYS_NICE it runs at the normal priority.
        ORIG_NICE.store(libc::getpriority(libc::PRIO_PROCESS, 0), std::sync::atomic::Ordering::Relaxed);
        libc::setsid();
        let _ = fs::write("/proc/self/autogroup", "-10");
        libc::setpriority(libc::PRIO_PROCESS, 0, -10);
        check(libc::unshare(
            libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC,
        ))
        .map_err(err("creating the sandbox's namespaces"))?;
    }
    mount("none", Path::new("/"), "", libc::MS_REC | libc::MS_PRIVATE, "").map_err(err("making mounts private"))?;
    let merged = work.join("merged");
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        spec.lower.display(),
        work.join("upper").display(),
        work.join("ovlwork").display()
    );
    mount("overlay", &merged, "overlay", 0, &data).map_err(err("mounting overlayfs over the unpacked image"))?;
    loopback_up().map_err(err("bringing up loopback"))?;
    let host = cstr(&spec.hostname);
    // SAFETY: valid buffer and length.
    check(unsafe { libc::sethostname(host.as_ptr(), spec.hostname.len()) }).map_err(err("setting the hostname"))?;

    let mode = spec.trace.then(super::tracer::Mode::detect);
    let _ = TRACER.set(mode);
    let socks = if mode == Some(super::tracer::Mode::Notify) {
        let mut sv = [-1; 2];
        // SAFETY: socketpair fills two descriptors we then own.
        check(unsafe {
            libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr())
        })
        .map_err(err("the tracer's socket"))?;
        // SAFETY: both were just created.
        Some(unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) })
    } else {
        None
    };
    if let Some((_, theirs)) = &socks {
        LISTENER_SOCK.store(theirs.as_raw_fd(), std::sync::atomic::Ordering::Relaxed);
    }
    // SAFETY: this process is single-threaded (a fresh exec of pinnace).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(err("fork")(io::Error::last_os_error()));
    }
    if pid == 0 {
        // The supervisor's end belongs to the outer process only.
        if let Some((ours, theirs)) = socks {
            drop(ours);
            // Kept open (its number is in LISTENER_SOCK) for the workers.
            std::mem::forget(theirs);
        }
        let code = match init(&spec, work, &merged) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("pinnace sandbox: {e}");
                125
            }
        };
        // SAFETY: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let status = if let Some(mode) = mode {
        let mut traced = match socks {
            Some((ours, theirs)) => {
                // Only the init and its workers hold the other end: when they are gone
                // the supervisor's socket reads end of stream.
                drop(theirs);
                super::tracer::supervise(pid, ours, work)
            }
            None => {
                debug_assert_eq!(mode, super::tracer::Mode::Ptrace);
                super::tracer::run(pid, work)
            }
        }
        .map_err(err("tracing"))?;
        traced.trace.witness = fs::read(work.join("out/witness.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| super::trace::Witnessed {
                unavailable: Some("the sandbox's init left no witness record".into()),
                ..Default::default()
            });
        let tmp = work.join("trace.json.tmp");
        fs::write(&tmp, serde_json::to_vec(&traced.trace).map_err(io::Error::other)?)?;
        fs::rename(&tmp, work.join("trace.json"))?;
        traced.root_status
    } else {
        let mut status = 0;
        // SAFETY: waits for our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        status
    };
    Ok(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) })
}

/// `ip link set lo up` with the two ioctls it takes.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a socket for ioctls, an ifreq we own, closed by OwnedFd.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        check(s)?;
        let s = OwnedFd::from_raw_fd(s);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, c) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *c as libc::c_char;
        }
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &req))
    }
}

fn open_path(p: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstr(p);
    // SAFETY: valid path; the fd is owned by the result.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    check(fd).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
    // SAFETY: fd was just opened.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The init: set up the root, then serve commands. Returns its exit code.
fn init(spec: &SandboxSpec, work: &Path, merged: &Path) -> io::Result<i32> {
    // The init never outlives the outer process (ptrace's EXITKILL does it too in ptrace
    // mode; with user notifications nothing else would).
    // SAFETY: prctl with constant arguments.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) })?;
    if tracer_mode() == Some(super::tracer::Mode::Ptrace) {
        // SAFETY: make this process the tracee of its parent, then wait for it.
        unsafe {
            check(libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) as libc::c_int).map_err(err("PTRACE_TRACEME"))?;
            libc::raise(libc::SIGSTOP);
        }
    }
    // SAFETY: unshare with a constant flag; this process is single-threaded.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) }).map_err(err("a private mount namespace"))?;
    mount("none", Path::new("/"), "", libc::MS_REC | libc::MS_PRIVATE, "").map_err(err("making mounts private"))?;
    // /dev and the /etc files runtimes provide are bound from the host before the host
    // root goes away (a bind needs its source in this mount namespace). Every target
    // is checked with lstat first, so a symlink in the image cannot redirect a mount
    // outside the root.
    let real_dir = |p: &Path| fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false);
    let dev = merged.join("dev");
    if !real_dir(&dev) {
        let _ = fs::remove_file(&dev);
        fs::create_dir(&dev).map_err(err("creating /dev"))?;
    }
    mount("tmpfs", &dev, "tmpfs", libc::MS_NOSUID | libc::MS_NOEXEC, "mode=755,size=65536k")
        .map_err(err("mounting /dev"))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(name);
        fs::File::create(&target)?;
        mount(&format!("/dev/{name}"), &target, "", libc::MS_BIND, "").map_err(err(&format!("binding /dev/{name}")))?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))?;
    }
    fs::create_dir(dev.join("shm"))?;
    let _ = mount("shm", &dev.join("shm"), "tmpfs", libc::MS_NOSUID | libc::MS_NODEV, "mode=1777,size=65536k");
    let etc = merged.join("etc");
    if real_dir(&etc) {
        for name in ["hosts", "hostname", "resolv.conf"] {
            let target = etc.join(name);
            if fs::symlink_metadata(&target).map(|m| !m.is_file()).unwrap_or(false) {
                // A symlink (or anything else) in the image: runtimes replace it too.
                let _ = fs::remove_file(&target);
            }
            if fs::OpenOptions::new().create(true).append(true).open(&target).is_ok() {
                mount(&work.join(name).to_string_lossy(), &target, "", libc::MS_BIND, "")
                    .map_err(err(&format!("binding /etc/{name}")))?;
            }
        }
    }
    let out = open_path(&work.join("out"), libc::O_DIRECTORY | libc::O_RDONLY)?;
    let witness = (spec.trace && spec.witness).then(|| super::witness::Witness::new(merged));
    if !real_dir(&merged.join("proc")) {
        let _ = fs::remove_file(merged.join("proc"));
        fs::create_dir(merged.join("proc")).map_err(err("creating /proc"))?;
    }

    std::env::set_current_dir(merged).map_err(err("entering the root"))?;
    let dot = cstr(".");
    // SAFETY: pivot_root(".", ".") stacks the old root on the new one; detaching it
    // leaves only the new root (the documented idiom of pivot_root(2)).
    unsafe {
        check(libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) as libc::c_int)
            .map_err(err("pivot_root into the image"))?;
        check(libc::umount2(dot.as_ptr(), libc::MNT_DETACH)).map_err(err("detaching the host root"))?;
    }
    std::env::set_current_dir("/")?;
    // From here on every path is inside the image's root.
    mount("proc", Path::new("/proc"), "proc", libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, "")
        .map_err(err("mounting /proc"))?;
    if real_dir(Path::new("/sys")) {
        let _ = mount(
            "sysfs",
            Path::new("/sys"),
            "sysfs",
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            "",
        );
    }
    let (witness, unavailable) = match witness {
        Some(Ok(w)) => (Some(w), None),
        Some(Err(e)) => (None, Some(format!("fanotify: {e}"))),
        None => (None, None),
    };
    let mut opened = std::collections::BTreeSet::new();
    let code = serve(spec, &out, witness.as_ref(), &mut opened)?;
    if spec.trace {
        let record = super::trace::Witnessed { available: witness.is_some(), unavailable, opened };
        let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
        let name = cstr("witness.json");
        // SAFETY: creates a file in the work directory through the fd opened before the pivot.
        let fd = unsafe {
            libc::openat(
                out.as_raw_fd(),
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                0o600,
            )
        };
        check(fd)?;
        // SAFETY: just opened.
        let mut f = unsafe { fs::File::from_raw_fd(fd) };
        f.write_all(&bytes)?;
    }
    Ok(code)
}

/// A process the init started.
struct Worker {
    id: u32,
    pid: libc::pid_t,
}

fn emit(e: &Event) {
    let mut line = serde_json::to_vec(e).unwrap_or_default();
    line.push(b'\n');
    // One write per event: lines from the init never interleave.
    let _ = io::stdout().lock().write_all(&line);
    let _ = io::stdout().lock().flush();
}

fn serve(
    spec: &SandboxSpec,
    out: &OwnedFd,
    witness: Option<&super::witness::Witness>,
    opened: &mut std::collections::BTreeSet<String>,
) -> io::Result<i32> {
    // SAFETY: signal mask and signalfd for SIGCHLD; dispositions back to default.
    let sfd = unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        check(fd)?;
        OwnedFd::from_raw_fd(fd)
    };
    emit(&Event::Ready);
    let mut workers: Vec<Worker> = Vec::new();
    let mut stdin = io::BufReader::new(io::stdin().lock());
    let mut stop_deadline: Option<Instant> = None;
    let mut stdin_open = true;
    loop {
        let timeout = match stop_deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).as_millis().min(i32::MAX as u128) as i32,
            None => -1,
        };
        let mut fds = [
            libc::pollfd { fd: if stdin_open { 0 } else { -1 }, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: sfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: witness.map_or(-1, |w| w.fd()), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: polls fds we own (-1 entries are ignored).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout) };
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::last_os_error());
        }
        if let Some(w) = witness {
            w.drain(opened);
        }
        if fds[1].revents != 0 {
            let mut buf = [0u8; 128 * 8];
            // SAFETY: drains the signalfd into a local buffer.
            while unsafe { libc::read(sfd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
            reap(&mut workers);
        }
        // Every complete line read: one read() may bring several commands, and poll
        // says nothing about what the BufReader already holds.
        while stdin_open && (fds[0].revents != 0 || stdin.buffer().contains(&b'\n')) {
            fds[0].revents = 0;
            let mut line = String::new();
            if stdin.read_line(&mut line)? == 0 {
                // pinnace went away: stop at once.
                stdin_open = false;
                stop_deadline = Some(Instant::now());
                break;
            }
            match serde_json::from_str::<Command>(&line) {
                Ok(Command::Run { id, argv }) => match spawn(spec, out, id, &argv) {
                    Ok(pid) => workers.push(Worker { id, pid }),
                    Err(e) => {
                        eprintln!("pinnace sandbox: starting {argv:?}: {e}");
                        emit(&Event::Exited { id, code: 127 });
                    }
                },
                Ok(Command::Kill { id }) => {
                    for w in workers.iter().filter(|w| w.id == id) {
                        // SAFETY: signals a process group of ours.
                        unsafe { libc::kill(-w.pid, libc::SIGKILL) };
                    }
                }
                Ok(Command::Stop { signal, grace_ms }) => {
                    for w in &workers {
                        // SAFETY: signals our workers' process groups.
                        unsafe { libc::kill(-w.pid, signal) };
                    }
                    stop_deadline = Some(Instant::now() + Duration::from_millis(grace_ms));
                }
                Err(e) => eprintln!("pinnace sandbox: bad command {line:?}: {e}"),
            }
        }
        if let Some(d) = stop_deadline {
            if workers.is_empty() || Instant::now() >= d {
                // SAFETY: in a pid namespace, kill(-1) reaches every process but init.
                unsafe { libc::kill(-1, libc::SIGKILL) };
                loop {
                    let mut st = 0;
                    // SAFETY: reaps everything left.
                    if unsafe { libc::waitpid(-1, &mut st, 0) } < 0 {
                        break;
                    }
                }
                if let Some(w) = witness {
                    w.drain(opened);
                }
                return Ok(0);
            }
        }
    }
}

/// Reaps every exited child; reports the workers among them.
fn reap(workers: &mut Vec<Worker>) {
    loop {
        let mut st = 0;
        // SAFETY: non-blocking reap of any child.
        let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        if let Some(i) = workers.iter().position(|w| w.pid == pid) {
            let w = workers.remove(i);
            let code = if libc::WIFEXITED(st) { libc::WEXITSTATUS(st) } else { 128 + libc::WTERMSIG(st) };
            emit(&Event::Exited { id: w.id, code });
        }
    }
}

/// `argv[0]` as execve needs it: a path, or the first executable match in `PATH`.
fn lookup(argv0: &str, env: &[String]) -> Option<String> {
    if argv0.contains('/') {
        return Some(argv0.to_string());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':').map(|d| format!("{}/{argv0}", if d.is_empty() { "." } else { d })).find(|p| {
        let c = cstr(p);
        // SAFETY: valid path string.
        fs::metadata(p).map(|m| m.is_file()).unwrap_or(false) && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
    })
}

/// Forks a worker for `argv`; the child never returns.
fn spawn(spec: &SandboxSpec, out: &OwnedFd, id: u32, argv: &[String]) -> io::Result<libc::pid_t> {
    if argv.is_empty() {
        return Err(io::Error::other("empty command"));
    }
    let c_argv: Vec<CString> = argv.iter().map(cstr).collect();
    let c_env: Vec<CString> = spec.env.iter().map(cstr).collect();
    let name = |ext: &str| cstr(if id == 0 { "app.log".to_string() } else { format!("{id}.{ext}") });
    let (out_name, err_name) = (name("out"), name("err"));
    // SAFETY: the init is single-threaded; the child only runs the code below and execs.
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        return check(pid).map(|()| pid);
    }
    // The tracer's socket in notify mode (-1 otherwise): kept open, then sent on.
    let sock = LISTENER_SOCK.load(std::sync::atomic::Ordering::Relaxed);
    let fail = |what: &str, e: io::Error| -> ! {
        eprintln!("pinnace sandbox: {what}: {e}");
        // SAFETY: ends the forked child.
        unsafe { libc::_exit(127) }
    };
    // SAFETY: plain process setup calls in the forked child.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::setsid();
        libc::setpriority(libc::PRIO_PROCESS, 0, ORIG_NICE.load(std::sync::atomic::Ordering::Relaxed));
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND;
        let o = libc::openat(out.as_raw_fd(), out_name.as_ptr(), flags, 0o600);
        let e = if id == 0 { libc::dup(o) } else { libc::openat(out.as_raw_fd(), err_name.as_ptr(), flags, 0o600) };
        if null < 0 || o < 0 || e < 0 {
            fail("opening the output files", io::Error::last_os_error());
        }
        libc::dup2(null, 0);
        libc::dup2(o, 1);
        libc::dup2(e, 2);
        // Everything else closed, but for the tracer's socket (sent on below).
        if sock >= 3 {
            libc::syscall(libc::SYS_close_range, 3u32, sock as u32 - 1, 0u32);
            libc::syscall(libc::SYS_close_range, sock as u32 + 1, u32::MAX, 0u32);
        } else {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        }
    }
    if std::env::set_current_dir(&spec.cwd).is_err() {
        // Runtimes create a missing working directory.
        let _ = fs::create_dir_all(&spec.cwd);
        if let Err(e) = std::env::set_current_dir(&spec.cwd) {
            fail(&format!("working directory {}", spec.cwd), e);
        }
    }
    let Some(path) = lookup(&argv[0], &spec.env) else {
        fail(&format!("{}: executable file not found in $PATH", argv[0]), io::Error::from_raw_os_error(libc::ENOENT));
    };
    let c_path = cstr(&path);
    let mut p_argv: Vec<*const libc::c_char> = c_argv.iter().map(|c| c.as_ptr()).collect();
    p_argv.push(std::ptr::null());
    let mut p_env: Vec<*const libc::c_char> = c_env.iter().map(|c| c.as_ptr()).collect();
    p_env.push(std::ptr::null());
    // SAFETY: credentials, the filter and execve with NULL-terminated arrays of valid strings.
    unsafe {
        if libc::setgroups(spec.groups.len(), spec.groups.as_ptr()) != 0 || libc::setgid(spec.gid) != 0 {
            fail("setting the image's groups", io::Error::last_os_error());
        }
        // The filter goes in while still privileged (no NO_NEW_PRIVS needed, so
        // setuid programs in the image behave as they would in a runtime).
        if let Some(mode) = tracer_mode() {
            match super::tracer::install_filter(mode) {
                // Notify: the listener goes to the supervisor before the first traced
                // syscall (the execve below), which waits for it.
                Ok(Some(listener)) => {
                    if let Err(e) = super::tracer::send_fd(sock, listener.as_raw_fd()) {
                        fail("handing the seccomp listener to the tracer", e);
                    }
                }
                Ok(None) => {}
                Err(e) => fail("installing the seccomp filter", e),
            }
        }
        if sock >= 0 {
            libc::close(sock);
        }
        if libc::setuid(spec.uid) != 0 {
            fail("setting the image's user", io::Error::last_os_error());
        }
        libc::execve(c_path.as_ptr(), p_argv.as_ptr(), p_env.as_ptr());
    }
    let e = io::Error::last_os_error();
    fail(&format!("exec {path}"), e)
}
