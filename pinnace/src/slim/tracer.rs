//! The tracer: a seccomp filter on every process the sandbox starts that stops only the
//! file-related syscalls of [`trace::syscalls`](super::trace), so the traced app runs at
//! near native speed, and a supervisor in the sandbox's outer process (see
//! [`init`](super::init)) that reads each stopped syscall's path. Two ways to stop:
//!
//! - [`Mode::Notify`] (Linux >= 5.5, the default): the filter answers
//!   `SECCOMP_RET_USER_NOTIF`; each worker hands its filter's listener descriptor to the
//!   supervisor (`SCM_RIGHTS` over a socket pair) before its `execve`, and the filter,
//!   inherited by every child and thread and kept across exec, covers the whole tree.
//!   The supervisor reads the path and lets the syscall continue
//!   (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`). One stop is two context switches and three
//!   syscalls in the supervisor (receive, read the tracee's memory, reply), against
//!   ptrace's stop, wait, register read, memory read and resume: about half the cost per
//!   stop on the machine of bench/trace-overhead.sh. On Linux >= 6.6 the listener asks
//!   for synchronous wake-ups, so the supervisor runs on the stopped task's CPU.
//! - [`Mode::Ptrace`] (older kernels, or `PINNACE_TRACER=ptrace`): the filter answers
//!   `SECCOMP_RET_TRACE`; the outer process is the tracer of the init process and,
//!   through `PTRACE_O_TRACEFORK/VFORK/CLONE`, of every process and thread below it.
//!
//! Either way each stop is read at syscall entry (the arguments, then the path from the
//! tracee's memory with `process_vm_readv`); a relative path is joined to
//! `/proc/PID/cwd` or `/proc/PID/fd/DIRFD`, which the kernel prints as the tracee sees
//! them (inside its pivoted root). The result of the syscall is not needed: whether a
//! path exists is decided against the image's own tree, not by what the app managed to
//! create at run time.
//!
//! x86_64 only (syscall numbers and registers); other architectures get a clear error.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::trace::{join_path, syscalls, Access, AccessKind, Trace};

/// seccomp's "stop for the tracer" action.
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6; not in the libc crate).
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// How the traced syscalls stop (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// seccomp user notifications to a supervisor (Linux >= 5.5).
    Notify,
    /// ptrace of the whole tree.
    Ptrace,
}

impl Mode {
    /// `PINNACE_TRACER=notify|ptrace` when set, else user notifications when the kernel
    /// has `SECCOMP_USER_NOTIF_FLAG_CONTINUE` (5.5), else ptrace.
    pub(crate) fn detect() -> Mode {
        match std::env::var("PINNACE_TRACER").as_deref() {
            Ok("ptrace") => return Mode::Ptrace,
            Ok("notify") => return Mode::Notify,
            _ => {}
        }
        if kernel_at_least(5, 5) {
            Mode::Notify
        } else {
            Mode::Ptrace
        }
    }

    fn action(self) -> u32 {
        match self {
            Mode::Notify => libc::SECCOMP_RET_USER_NOTIF,
            Mode::Ptrace => SECCOMP_RET_TRACE,
        }
    }
}

/// Whether the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    // SAFETY: uname fills a struct we own.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return false;
    }
    // SAFETY: uname NUL-terminates the release.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy();
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

/// Installs the seccomp filter in the calling process (inherited by its children and
/// kept across exec): `mode`'s stop for the traced syscalls, allow for the rest. In
/// [`Mode::Notify`] it returns the filter's listener, which the supervisor must get.
///
/// One exception keeps the common case cheap: `newfstatat` and `statx` with
/// `AT_EMPTY_PATH` are glibc's `fstat` on an open descriptor (a third of a Python
/// start-up's file syscalls); the file was opened, and traced, before. They are allowed
/// without a stop.
///
/// Written by hand: the program is a few dozen BPF instructions (check the arch, the two
/// flag tests, compare the number against the table, return), less than a dependency's
/// worth of code.
pub(crate) fn install_filter(mode: Mode) -> io::Result<Option<OwnedFd>> {
    let mut prog = filter_program(mode.action());
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_mut_ptr() };
    let flags = match mode {
        Mode::Notify => libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        Mode::Ptrace => 0,
    };
    // SAFETY: fprog points at a valid program that outlives the call.
    let r = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &fprog as *const libc::sock_fprog)
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: with NEW_LISTENER the result is a new descriptor, ours to own.
    Ok((mode == Mode::Notify).then(|| unsafe { OwnedFd::from_raw_fd(r as RawFd) }))
}

/// A one-byte message over `iov`'s byte with room for one descriptor in `control`
/// (u64s keep the buffer aligned for cmsghdr; CMSG_SPACE of one int is 24 bytes).
fn fd_message(iov: &mut libc::iovec, control: &mut [u64; 4]) -> libc::msghdr {
    // SAFETY: msghdr is plain data; zeroed is its empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(control);
    msg
}

/// Sends `fd` over the unix socket `sock` (one byte with `SCM_RIGHTS`).
pub(crate) fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    let mut control = [0u64; 4];
    let mut msg = fd_message(&mut iov, &mut control);
    // SAFETY: CMSG_* stay inside `control`, which outlives the call.
    unsafe {
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receives a descriptor sent by [`send_fd`]; `None` at end of stream.
fn recv_fd(sock: RawFd) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    let mut control = [0u64; 4];
    let mut msg = fd_message(&mut iov, &mut control);
    // SAFETY: as in send_fd; a received descriptor is new and ours to own.
    unsafe {
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(None);
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_level != libc::SOL_SOCKET || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Err(io::Error::other("a message without a descriptor on the tracer's socket"));
        }
        Ok(Some(OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>()))))
    }
}

/// The BPF program of [`install_filter`].
fn filter_program(stop: u32) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
                             // struct seccomp_data: nr at 0, arch at 4, args[i] at 16 + 8 i (low word first).
    const NEWFSTATAT: u32 = 262;
    const STATX: u32 = 332;
    let others: Vec<u32> =
        syscalls::TRACED.iter().map(|t| t.0 as u32).filter(|&n| n != NEWFSTATAT && n != STATX).collect();
    // Instruction indexes (see the layout below); jumps are relative to the next one.
    let allow = 9 + others.len();
    let trace = allow + 1;
    let to = |from: usize, target: usize| (target - from - 1) as u8;
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut p = vec![
        /* 0 */ ins(LD_W_ABS, 0, 0, 4),
        /* 1 */ ins(JEQ_K, 0, to(1, allow), AUDIT_ARCH_X86_64),
        /* 2 */ ins(LD_W_ABS, 0, 0, 0),
        /* 3 */ ins(JEQ_K, 0, to(3, 6), NEWFSTATAT),
        /* 4 */ ins(LD_W_ABS, 0, 0, 16 + 8 * 3),
        /* 5 */ ins(JSET_K, to(5, allow), to(5, trace), AT_EMPTY_PATH as u32),
        /* 6 */ ins(JEQ_K, 0, to(6, 9), STATX),
        /* 7 */ ins(LD_W_ABS, 0, 0, 16 + 8 * 2),
        /* 8 */ ins(JSET_K, to(8, allow), to(8, trace), AT_EMPTY_PATH as u32),
    ];
    for (i, nr) in others.iter().enumerate() {
        p.push(ins(JEQ_K, to(9 + i, trace), 0, *nr));
    }
    p.push(ins(RET_K, 0, 0, SECCOMP_RET_ALLOW));
    p.push(ins(RET_K, 0, 0, stop));
    debug_assert_eq!(p.len(), trace + 1);
    p
}

/// How the traced tree ended.
#[derive(Debug)]
pub(crate) struct Traced {
    /// What was recorded.
    pub trace: Trace,
    /// The root process's wait status.
    pub root_status: i32,
}

/// Traces `root` (a child of this process that called `PTRACE_TRACEME` and stopped
/// itself with SIGSTOP) and everything it starts, until `root` is gone and no traced
/// process is left.
pub(crate) fn run(root: libc::pid_t, work: &std::path::Path) -> io::Result<Traced> {
    let mut status = 0;
    // SAFETY: plain syscalls on our own child.
    unsafe {
        if libc::waitpid(root, &mut status, libc::__WALL) != root {
            return Err(io::Error::last_os_error());
        }
        if !libc::WIFSTOPPED(status) {
            return Err(io::Error::other(format!("the sandbox init did not stop for the tracer (status {status:#x})")));
        }
        let opts = libc::PTRACE_O_TRACESYSGOOD
            | libc::PTRACE_O_TRACEFORK
            | libc::PTRACE_O_TRACEVFORK
            | libc::PTRACE_O_TRACECLONE
            | libc::PTRACE_O_TRACEEXEC
            | libc::PTRACE_O_TRACESECCOMP
            | libc::PTRACE_O_EXITKILL;
        if libc::ptrace(libc::PTRACE_SETOPTIONS, root, 0, opts as libc::c_ulong) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::ptrace(libc::PTRACE_CONT, root, 0, 0);
    }
    let mut t = Tracer {
        trace: Trace { tasks: 1, ..Trace::default() },
        seen: HashSet::from([root]),
        fresh: HashSet::new(),
        work: format!("{}/", work.display()),
    };
    let mut root_status = 0;
    loop {
        // SAFETY: waitpid on our (traced) children.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if pid < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ECHILD) {
                break;
            }
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            if pid == root {
                root_status = status;
            }
            t.seen.remove(&pid);
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        let event = (status >> 16) & 0xffff;
        let mut inject = 0;
        if sig == libc::SIGTRAP && event == libc::PTRACE_EVENT_SECCOMP {
            t.trace.events += 1;
            t.on_syscall(pid);
        } else if sig == libc::SIGTRAP
            && matches!(event, libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE)
        {
            let mut child: libc::c_ulong = 0;
            // SAFETY: reads the new task's id into `child`.
            unsafe { libc::ptrace(libc::PTRACE_GETEVENTMSG, pid, 0, &mut child as *mut libc::c_ulong) };
            let child = child as libc::pid_t;
            t.trace.tasks += 1;
            // Its initial SIGSTOP may already have been seen (then it is known).
            if t.seen.insert(child) {
                t.fresh.insert(child);
            }
        } else if sig == libc::SIGSTOP && event == 0 && (t.fresh.remove(&pid) || t.seen.insert(pid)) {
            // The initial stop of an auto-attached task (before or after its creation
            // event): swallowed, it is ptrace's, not the app's.
        } else if sig != libc::SIGTRAP && sig != (libc::SIGTRAP | 0x80) {
            // A real signal for the app: delivered.
            inject = sig;
        }
        // SAFETY: resumes a stopped tracee, delivering `inject` if it is a real signal.
        unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, inject as libc::c_ulong) };
    }
    Ok(Traced { trace: t.trace, root_status })
}

struct Tracer {
    trace: Trace,
    /// Tasks known to be traced.
    seen: HashSet<libc::pid_t>,
    /// Tasks announced by a creation event whose initial SIGSTOP has not come yet.
    fresh: HashSet<libc::pid_t>,
    /// The sandbox's work directory on the host, with a trailing `/`: the app's
    /// stdout and stderr are files there, and `/proc/PID/fd` shows them by host path.
    work: String,
}

impl Tracer {
    fn on_syscall(&mut self, pid: libc::pid_t) {
        // SAFETY: user_regs_struct is plain data; GETREGS fills it for a stopped tracee.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        if unsafe { libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &mut regs as *mut _) } != 0 {
            return;
        }
        let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
        if let Some(a) = access_of(pid, regs.orig_rax as i64, &args, &self.work) {
            self.trace.accesses.insert(a);
        }
    }
}

/// What syscall `nr` of `pid`, stopped at its entry with `args`, asks of the file
/// system; `None` for a syscall that names no path, or one in the sandbox's own work
/// directory (`work`, with a trailing `/`).
fn access_of(pid: libc::pid_t, nr: i64, args: &[u64; 6], work: &str) -> Option<Access> {
    let (kind, follow_default, shape) = syscalls::find(nr)?;
    let (path, follow_last, creates) = decode(pid, args, follow_default, shape)?;
    if path.starts_with(work) {
        return None;
    }
    let kind = if creates { AccessKind::Create } else { kind };
    Some(Access { path, kind, follow_last })
}

/// [`Mode::Notify`]'s supervisor: receives the listener of every worker's filter on
/// `sock` (the other end is the init's, inherited by the workers it forks) and serves
/// them all (receive, read the path, reply) until `root` (the init) ends. When the init
/// ends, the kernel has already killed every other process of its pid namespace, so
/// every stop has been answered and recorded.
///
/// One thread with `poll`: the outer process has unshared its pid namespace, and such a
/// process cannot start threads (`clone(CLONE_THREAD)` fails with EINVAL).
pub(crate) fn supervise(root: libc::pid_t, sock: OwnedFd, work: &std::path::Path) -> io::Result<Traced> {
    // SAFETY: pidfd_open of our child; the descriptor is ours.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, root, 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just opened.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    let work = format!("{}/", work.display());
    let mut trace = Trace::default();
    let mut tasks: HashSet<u32> = HashSet::new();
    let mut sock = Some(sock);
    let mut listeners: Vec<OwnedFd> = Vec::new();
    loop {
        let mut fds: Vec<libc::pollfd> = [pidfd.as_raw_fd(), sock.as_ref().map_or(-1, |s| s.as_raw_fd())]
            .into_iter()
            .chain(listeners.iter().map(|l| l.as_raw_fd()))
            .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
            .collect();
        // SAFETY: polls descriptors we own (-1 is ignored).
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut gone = Vec::new();
        for (i, p) in fds.iter().enumerate().skip(2) {
            if p.revents & libc::POLLIN != 0 {
                answer(p.fd, &work, &mut trace, &mut tasks);
            } else if p.revents != 0 {
                // POLLHUP: no task uses the filter any more.
                gone.push(i - 2);
            }
        }
        for i in gone.into_iter().rev() {
            listeners.swap_remove(i);
        }
        if fds[1].revents != 0 {
            match sock.as_ref().map(|s| recv_fd(s.as_raw_fd())) {
                Some(Ok(Some(listener))) => {
                    // SAFETY: an ioctl with a plain value on our listener. Best effort:
                    // Linux < 6.6 answers EINVAL and wake-ups stay asynchronous.
                    unsafe {
                        libc::ioctl(
                            listener.as_raw_fd(),
                            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
                        )
                    };
                    listeners.push(listener);
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                // End of stream (the init and its workers are gone), or a broken socket.
                _ => sock = None,
            }
        }
        if fds[0].revents != 0 {
            break;
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: reaps our child, which has exited (its pidfd said so).
        if unsafe { libc::waitpid(root, &mut status, 0) } == root {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    trace.tasks = tasks.len() as u32;
    Ok(Traced { trace, root_status: status })
}

/// Receives one stop on `listener`, records it and lets the syscall go on.
fn answer(listener: RawFd, work: &str, trace: &mut Trace, tasks: &mut HashSet<u32>) {
    // SAFETY: the kernel wants a zeroed seccomp_notif and fills it.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) } != 0 {
        // Interrupted, or the task died before it was received: nothing to answer.
        return;
    }
    trace.events += 1;
    tasks.insert(n.pid);
    if let Some(a) = access_of(n.pid as libc::pid_t, n.data.nr as i64, &n.data.args, work) {
        trace.accesses.insert(a);
    }
    let resp =
        libc::seccomp_notif_resp { id: n.id, val: 0, error: 0, flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32 };
    // SAFETY: replies with a struct we own. ENOENT (the task died meanwhile) is fine.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
}

const AT_FDCWD: i64 = -100;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_EMPTY_PATH: u64 = 0x1000;

/// The absolute path a syscall names, whether it follows a symlink in the last
/// component, and whether it may create the path (`O_CREAT`); `None` when it names no
/// path (a bad pointer, a socket, an abstract unix address...).
fn decode(
    pid: libc::pid_t,
    a: &[u64; 6],
    follow_default: bool,
    shape: syscalls::Shape,
) -> Option<(String, bool, bool)> {
    let (path, follow, flags) = decode_path(pid, a, follow_default, shape)?;
    Some((path, follow, flags & libc::O_CREAT as u64 != 0))
}

/// [`decode`]'s path and follow flag, with the open flags (0 when the syscall has none).
fn decode_path(
    pid: libc::pid_t,
    a: &[u64; 6],
    follow_default: bool,
    shape: syscalls::Shape,
) -> Option<(String, bool, u64)> {
    use syscalls::Shape::*;
    let open_follow = |flags: u64| flags & libc::O_NOFOLLOW as u64 == 0;
    match shape {
        Path { p, open_flags } => {
            let name = read_str(pid, a[p])?;
            let follow = open_flags.map_or(follow_default, |f| open_follow(a[f]));
            let b = if name.starts_with('/') { String::new() } else { base(pid, AT_FDCWD)? };
            Some((join_path(&b, &name), follow, open_flags.map_or(0, |f| a[f])))
        }
        At { d, p, at_flags, open_flags } => {
            let name = read_str(pid, a[p]).unwrap_or_default();
            let flags = at_flags.map_or(0, |f| a[f]);
            if name.is_empty() {
                // AT_EMPTY_PATH (fstatat on an fd, fexecve): the fd itself.
                return if flags & AT_EMPTY_PATH != 0 {
                    Some((fd_path(pid, a[d] as i64)?, follow_default, 0))
                } else {
                    None
                };
            }
            let follow = match (at_flags, open_flags) {
                (_, Some(f)) => open_follow(a[f]),
                (Some(_), None) => follow_default && flags & AT_SYMLINK_NOFOLLOW == 0,
                (None, None) => follow_default,
            };
            let b = if name.starts_with('/') { String::new() } else { base(pid, a[d] as i32 as i64)? };
            Some((join_path(&b, &name), follow, open_flags.map_or(0, |f| a[f])))
        }
        OpenAt2 => {
            let name = read_str(pid, a[1])?;
            let how = read_mem(pid, a[2], 8)?;
            let flags = u64::from_ne_bytes(how[..8].try_into().ok()?);
            let b = if name.starts_with('/') { String::new() } else { base(pid, a[0] as i32 as i64)? };
            Some((join_path(&b, &name), open_follow(flags), flags))
        }
        Fd => Some((fd_path(pid, a[0] as i32 as i64)?, true, 0)),
        Connect => {
            let len = (a[2] as usize).min(110);
            let addr = read_mem(pid, a[1], len)?;
            if addr.len() < 3 || u16::from_ne_bytes([addr[0], addr[1]]) != libc::AF_UNIX as u16 || addr[2] == 0 {
                return None;
            }
            let raw = &addr[2..];
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            let name = String::from_utf8_lossy(&raw[..end]).into_owned();
            let b = if name.starts_with('/') { String::new() } else { base(pid, AT_FDCWD)? };
            Some((join_path(&b, &name), true, 0))
        }
    }
}

/// The directory a relative name starts from: the cwd for `AT_FDCWD`, else the fd's path.
fn base(pid: libc::pid_t, dirfd: i64) -> Option<String> {
    if dirfd == AT_FDCWD {
        link(&format!("/proc/{pid}/cwd"))
    } else {
        fd_path(pid, dirfd)
    }
}

fn fd_path(pid: libc::pid_t, fd: i64) -> Option<String> {
    if fd < 0 {
        return None;
    }
    link(&format!("/proc/{pid}/fd/{fd}"))
}

/// A `/proc` magic link's text when it names a path (not `pipe:[..]`, not deleted).
fn link(p: &str) -> Option<String> {
    let t = std::fs::read_link(p).ok()?;
    let s = t.to_str()?;
    (s.starts_with('/') && !s.ends_with(" (deleted)")).then(|| s.to_string())
}

/// Reads `len` bytes of the tracee's memory at `addr` (fewer if the mapping ends).
fn read_mem(pid: libc::pid_t, addr: u64, len: usize) -> Option<Vec<u8>> {
    if addr == 0 {
        return None;
    }
    let mut buf = vec![0u8; len];
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: len };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
    // SAFETY: `local` points at `buf`, which is `len` bytes long.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// Reads a NUL-terminated string (at most PATH_MAX bytes), page by page so a string
/// that ends just before an unmapped page is still read.
fn read_str(pid: libc::pid_t, addr: u64) -> Option<String> {
    const PAGE: u64 = 4096;
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < 4096 {
        let chunk = (PAGE - at % PAGE) as usize;
        let part = read_mem(pid, at, chunk)?;
        if let Some(end) = part.iter().position(|&b| b == 0) {
            out.extend_from_slice(&part[..end]);
            return String::from_utf8(out).ok();
        }
        out.extend_from_slice(&part);
        at += part.len() as u64;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter program on a seccomp_data (a tiny classic-BPF interpreter for the
    /// four instructions the program uses).
    fn verdict(nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let p = filter_program(SECCOMP_RET_TRACE);
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let f = p[pc];
            pc += 1;
            match f.code {
                0x20 => acc = u32::from_ne_bytes(data[f.k as usize..f.k as usize + 4].try_into().unwrap()),
                0x15 => pc += if acc == f.k { f.jt } else { f.jf } as usize,
                0x45 => pc += if acc & f.k != 0 { f.jt } else { f.jf } as usize,
                0x06 => return f.k,
                c => panic!("unexpected BPF code {c:#x}"),
            }
        }
    }

    #[test]
    fn filter_stops_file_syscalls_only() {
        for t in syscalls::TRACED {
            assert_eq!(verdict(t.0 as u32, [0; 6]), SECCOMP_RET_TRACE, "syscall {}", t.0);
        }
        for nr in [0u32, 1, 3, 5, 9, 60, 231] {
            assert_eq!(verdict(nr, [0; 6]), SECCOMP_RET_ALLOW, "syscall {nr}");
        }
        // fstat through newfstatat/statx with AT_EMPTY_PATH runs without a stop.
        assert_eq!(verdict(262, [3, 0, 0, AT_EMPTY_PATH, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(262, [3, 0, 0, AT_SYMLINK_NOFOLLOW, 0, 0]), SECCOMP_RET_TRACE);
        assert_eq!(verdict(332, [3, 0, AT_EMPTY_PATH, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(332, [3, 0, 0, AT_EMPTY_PATH, 0, 0]), SECCOMP_RET_TRACE);
        // The notify mode's program is the same but for the stop it returns.
        let (t, n) = (filter_program(SECCOMP_RET_TRACE), filter_program(Mode::Notify.action()));
        assert_eq!(t.len(), n.len());
        assert_eq!(n.last().unwrap().k, libc::SECCOMP_RET_USER_NOTIF);
        assert!(t.iter().zip(&n).rev().skip(1).all(|(a, b)| (a.code, a.jt, a.jf, a.k) == (b.code, b.jt, b.jf, b.k)));
    }
}
