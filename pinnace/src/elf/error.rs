//! The one error type of the ELF module.

use std::fmt;
use std::io;

use serde::Serialize;

/// Everything that can go wrong while reading an ELF file or resolving its closure.
///
/// Every variant names the file it is about. Errors from [`inspect`](crate::elf::inspect),
/// which only sees bytes, carry the placeholder path `<bytes>` until a caller that knows
/// the path relabels them with [`ElfError::at`].
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file does not start with the ELF magic `\x7fELF`.
    #[error("{path}: not an ELF file (it starts with {start}); give the path of a compiled program or shared library")]
    NotElf {
        /// The file.
        path: String,
        /// The first bytes of the file, in hex, for the message.
        start: String,
    },
    /// The file ends before a structure the ELF header points to.
    #[error("{path}: truncated ELF file: {detail}; the file was probably cut short while copying")]
    Truncated {
        /// The file.
        path: String,
        /// Which structure lies past the end.
        detail: String,
    },
    /// The ELF structures are inconsistent (bad sizes, offsets, string indices).
    #[error("{path}: corrupt ELF file: {detail}")]
    Malformed {
        /// The file.
        path: String,
        /// What is inconsistent.
        detail: String,
    },
    /// A file the binary must load (its interpreter, or a library named by path) is built
    /// for another machine, ELF class or byte order than the binary.
    #[error("{path}: wrong architecture: it is {found}, but {binary} is {expected}; use a root (--sysroot) of the binary's architecture")]
    WrongArchitecture {
        /// The incompatible file.
        path: String,
        /// The binary whose closure was being resolved.
        binary: String,
        /// The binary's architecture, e.g. `x86-64 (ELF64, little-endian)`.
        expected: String,
        /// The file's architecture.
        found: String,
    },
    /// A path does not exist in the root.
    #[error("{path}: no such file in the root")]
    NotFound {
        /// The path, inside the root.
        path: String,
    },
    /// Resolving a path met more than 40 symbolic links (a loop, most likely).
    #[error("{path}: too many levels of symbolic links (more than 40)")]
    SymlinkLoop {
        /// The path being resolved, inside the root.
        path: String,
    },
    /// A component of a path that should be a directory is a file.
    #[error("{path}: {component} is not a directory")]
    NotADirectory {
        /// The path being resolved, inside the root.
        path: String,
        /// The component that is not a directory.
        component: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file, inside the root.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The root's `ld.so.cache` cannot be read (ld.so would ignore it too; the resolver
    /// only warns and searches the default directories).
    #[error("{path}: corrupt ld.so.cache: {detail}")]
    BadLdCache {
        /// The cache file, inside the root.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The interpreter or libraries the loader needs are not in the root. Lists all of
    /// them at once, each with who needs it and where it was looked for.
    #[error("{}", MissingList(.missing))]
    MissingLibraries {
        /// Every missing file, sorted by name.
        missing: Vec<MissingLibrary>,
    },
}

/// One library (or interpreter) the loader would not find.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingLibrary {
    /// The `DT_NEEDED` name (for the interpreter: its `PT_INTERP` path).
    pub soname: String,
    /// The objects that need it, in the order they were met.
    pub needed_by: Vec<String>,
    /// Where it was looked for, in order: directories, and `ld.so.cache` when consulted.
    pub searched: Vec<String>,
    /// Candidates that exist but were skipped (like ld.so does) because they are built
    /// for another architecture, with the reason.
    pub skipped: Vec<String>,
}

impl ElfError {
    /// The same error about `path` instead of the placeholder `<bytes>` that
    /// [`inspect`](crate::elf::inspect) uses. Errors that already name a real path keep it.
    pub fn at(self, path: &str) -> Self {
        let relabel = |p: String| {
            if p == BYTES {
                path.to_string()
            } else {
                p
            }
        };
        match self {
            ElfError::NotElf { path: p, start } => ElfError::NotElf { path: relabel(p), start },
            ElfError::Truncated { path: p, detail } => ElfError::Truncated { path: relabel(p), detail },
            ElfError::Malformed { path: p, detail } => ElfError::Malformed { path: relabel(p), detail },
            other => other,
        }
    }
}

/// The path placeholder of errors about bare bytes.
pub(crate) const BYTES: &str = "<bytes>";

/// Displays the list of missing libraries, one per line, with a hint.
struct MissingList<'a>(&'a [MissingLibrary]);

impl fmt::Display for MissingList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} shared {} not found in the root:", if n == 1 { "object" } else { "objects" })?;
        for m in self.0 {
            write!(f, "\n  {} (needed by {})", m.soname, m.needed_by.join(", "))?;
            write!(f, "\n    searched: {}", m.searched.join(", "))?;
            for s in &m.skipped {
                write!(f, "\n    skipped: {s}")?;
            }
        }
        write!(f, "\ninstall the packages that provide them into the root, or point --sysroot at a root that has them")
    }
}

/// `e` relabelled: an I/O error on `path`.
pub(crate) fn io_error(path: &str, source: io::Error) -> ElfError {
    ElfError::Io { path: path.to_string(), source }
}
