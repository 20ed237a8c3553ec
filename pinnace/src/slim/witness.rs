//! The second witness: fanotify on the sandbox's overlay filesystem.
//!
//! The tracer sees every path a process names; fanotify sees every file actually opened
//! on the overlay, including the opens the kernel makes itself without a syscall the
//! tracer could stop (a script's `#!` interpreter, a program's ELF interpreter). The
//! witness belongs to the sandbox's init: it marks the overlay's whole superblock
//! (`FAN_MARK_FILESYSTEM`) before the pivot, and drains events from the init's poll loop
//! (a process that unshared its pid namespace cannot start threads, and the init is
//! idle anyway). Where fanotify is not available (an old kernel, no CAP_SYS_ADMIN) the
//! run says so and goes on.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// A fanotify group watching one overlay.
pub(crate) struct Witness {
    fd: OwnedFd,
    prefix: String,
}

impl Witness {
    /// Marks the filesystem mounted at `merged` for opens (files and directories).
    pub(crate) fn new(merged: &Path) -> io::Result<Witness> {
        // SAFETY: fanotify_init with constant flags; the fd is owned below.
        let fd = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
                (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just opened.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = std::ffi::CString::new(merged.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
        // SAFETY: valid fd and path.
        let r = unsafe {
            libc::fanotify_mark(
                fd.as_raw_fd(),
                libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
                libc::FAN_OPEN | libc::FAN_OPEN_EXEC | libc::FAN_ONDIR,
                libc::AT_FDCWD,
                path.as_ptr(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Witness { fd, prefix: merged.display().to_string() })
    }

    /// The fanotify fd, for poll.
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads every pending event into `seen` (paths inside the image).
    pub(crate) fn drain(&self, seen: &mut BTreeSet<String>) {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            // SAFETY: reads into our buffer.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            let mut off = 0usize;
            let meta_len = std::mem::size_of::<libc::fanotify_event_metadata>();
            while off + meta_len <= n as usize {
                // SAFETY: the kernel wrote whole records; read_unaligned copes with any offset.
                let m: libc::fanotify_event_metadata = unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
                if m.event_len == 0 {
                    break;
                }
                if m.fd >= 0 {
                    if let Some(p) = self.in_image(&format!("/proc/self/fd/{}", m.fd)) {
                        seen.insert(p);
                    }
                    // SAFETY: the event's fd is ours to close.
                    unsafe { libc::close(m.fd) };
                }
                off += m.event_len as usize;
            }
        }
    }

    /// The path inside the image of the file an event's fd refers to. The kernel prints
    /// it from the reader's root: inside the pivoted root the overlay's root is `/`,
    /// before the pivot it is the host path of the mount point.
    fn in_image(&self, link: &str) -> Option<String> {
        let t = std::fs::read_link(link).ok()?;
        let s = t.to_str()?;
        let p = match s.strip_prefix(&self.prefix) {
            Some("") => "/",
            Some(rest) if rest.starts_with('/') => rest,
            _ if s.starts_with('/') => s,
            _ => return None,
        };
        // The files runtimes provide are bound over the image's (and opened by the init).
        (!matches!(p, "/etc/hosts" | "/etc/hostname" | "/etc/resolv.conf") && !p.ends_with(" (deleted)"))
            .then(|| p.to_string())
    }
}
