//! What the tracer records: every path a traced process named in a file-related syscall.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// What a syscall did with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    /// open/openat/openat2 without `O_CREAT`, uselib.
    Open,
    /// open with `O_CREAT`, creat, mkdir: the path may not exist yet (its parent must).
    Create,
    /// execve/execveat (the program; the kernel opens a shebang's interpreter and the ELF
    /// interpreter itself, without a syscall the tracer sees).
    Exec,
    /// stat family (stat, lstat, newfstatat, statx).
    Stat,
    /// access, faccessat, faccessat2.
    Access,
    /// readlink, readlinkat.
    Readlink,
    /// getdents64 on a directory fd (the directory; entries are not recorded).
    ListDir,
    /// chdir.
    Chdir,
    /// connect on a unix socket path.
    Connect,
}

/// One path named by a traced syscall.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Access {
    /// Absolute path inside the sandbox as the process named it: a relative name is
    /// joined to the process's cwd or to the directory fd's path. Duplicate slashes are
    /// folded, but `.` and `..` are kept: folding `..` is only right after the symlinks
    /// before it are resolved, so resolve with a symlink-aware walk through the tree.
    pub path: String,
    /// What the syscall did.
    pub kind: AccessKind,
    /// Whether a symlink in the last component is followed (stat, open without
    /// `O_NOFOLLOW`, exec) or not (lstat, readlink, `AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`).
    pub follow_last: bool,
}

/// Everything a sandbox run recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// Distinct accesses, sorted.
    pub accesses: BTreeSet<Access>,
    /// Tasks traced: the sandbox's init, and every process and thread created below it.
    pub tasks: u32,
    /// Syscall stops handled.
    pub events: u64,
    /// What the fanotify witness saw (see [`witness`](super::witness)).
    pub witness: Witnessed,
}

/// The fanotify witness's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witnessed {
    /// Whether fanotify could watch the sandbox's filesystem.
    pub available: bool,
    /// Why not, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Paths inside the image (symlinks resolved: the files themselves) opened during the run.
    pub opened: BTreeSet<String>,
}

/// The file-related syscalls the seccomp filter stops (x86_64 numbers), and how each
/// names its path. Everything else runs untraced at native speed.
#[cfg(target_arch = "x86_64")]
pub(crate) mod syscalls {
    /// How a syscall's arguments name a path.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Shape {
        /// `path` is argument `p`; `flags` (open flags) at `f` when given.
        Path { p: usize, open_flags: Option<usize> },
        /// `dirfd` at `d`, `path` at `p`; `at_flags` (AT_*) at `f` or open flags at `o`.
        At { d: usize, p: usize, at_flags: Option<usize>, open_flags: Option<usize> },
        /// openat2: dirfd, path, `struct open_how *`.
        OpenAt2,
        /// The path of the fd in argument 0.
        Fd,
        /// connect(fd, sockaddr, len): a unix socket's path.
        Connect,
    }
    use super::AccessKind::{self, *};
    use Shape::{At, Fd, OpenAt2, Path};

    /// (number, kind, follows the last symlink by default, shape).
    pub(crate) const TRACED: &[(i64, AccessKind, bool, Shape)] = &[
        (2, Open, true, Path { p: 0, open_flags: Some(1) }), // open
        (257, Open, true, At { d: 0, p: 1, at_flags: None, open_flags: Some(2) }), // openat
        (437, Open, true, OpenAt2),                          // openat2
        (85, Create, true, Path { p: 0, open_flags: None }), // creat
        (59, Exec, true, Path { p: 0, open_flags: None }),   // execve
        (322, Exec, true, At { d: 0, p: 1, at_flags: Some(4), open_flags: None }), // execveat
        (4, Stat, true, Path { p: 0, open_flags: None }),    // stat
        (6, Stat, false, Path { p: 0, open_flags: None }),   // lstat
        (262, Stat, true, At { d: 0, p: 1, at_flags: Some(3), open_flags: None }), // newfstatat
        (332, Stat, true, At { d: 0, p: 1, at_flags: Some(2), open_flags: None }), // statx
        (137, Stat, true, Path { p: 0, open_flags: None }),  // statfs
        (21, Access, true, Path { p: 0, open_flags: None }), // access
        (269, Access, true, At { d: 0, p: 1, at_flags: None, open_flags: None }), // faccessat
        (439, Access, true, At { d: 0, p: 1, at_flags: Some(3), open_flags: None }), // faccessat2
        (89, Readlink, false, Path { p: 0, open_flags: None }), // readlink
        (267, Readlink, false, At { d: 0, p: 1, at_flags: None, open_flags: None }), // readlinkat
        (217, ListDir, true, Fd),                            // getdents64
        (78, ListDir, true, Fd),                             // getdents
        (83, Create, false, Path { p: 0, open_flags: None }), // mkdir
        (258, Create, false, At { d: 0, p: 1, at_flags: None, open_flags: None }), // mkdirat
        (80, Chdir, true, Path { p: 0, open_flags: None }),  // chdir
        (42, Connect, true, Shape::Connect),                 // connect
        (134, Open, true, Path { p: 0, open_flags: None }),  // uselib
    ];

    /// Looks a syscall number up.
    pub(crate) fn find(nr: i64) -> Option<(AccessKind, bool, Shape)> {
        TRACED.iter().find(|t| t.0 == nr).map(|t| (t.1, t.2, t.3))
    }
}

/// Joins `name` (as a process gave it) to `base` (its cwd or directory fd's path), folds
/// duplicate slashes, and keeps `.`/`..` (see [`Access::path`]).
pub fn join_path(base: &str, name: &str) -> String {
    let joined = if name.starts_with('/') { name.to_string() } else { format!("{base}/{name}") };
    let mut out = String::with_capacity(joined.len());
    for c in joined.split('/').filter(|c| !c.is_empty()) {
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_dots_and_folds_slashes() {
        assert_eq!(join_path("/app", "x.py"), "/app/x.py");
        assert_eq!(join_path("/app", "/etc//passwd"), "/etc/passwd");
        assert_eq!(join_path("/", "../a/./b/"), "/../a/./b");
        assert_eq!(join_path("/", ""), "/");
    }

    #[test]
    fn syscall_table_has_no_duplicates() {
        let mut nrs: Vec<i64> = syscalls::TRACED.iter().map(|t| t.0).collect();
        nrs.sort();
        nrs.dedup();
        assert_eq!(nrs.len(), syscalls::TRACED.len());
    }
}
