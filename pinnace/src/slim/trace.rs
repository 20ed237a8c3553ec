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
    /// Processes seen (the first exec included).
    pub processes: u32,
    /// Syscall stops handled.
    pub events: u64,
}
