//! The keep-set: which paths of the image the slim image holds, and why each one.
//!
//! Rules (a path kept by several shows one, see [`Reason`]):
//! 1. `traced`: every path of the [`Trace`], walked through the tree with every node on
//!    the way recorded ([`walk`]): each directory passed (`parent`), each symbolic link
//!    followed, targets' own links included (`symlink_chain`), and the end. A directory
//!    at the end is kept empty (a stat or a chdir needs it to exist, not its content). A
//!    path missing from the image (created at run time, `/proc`, a probe for an optional
//!    file) keeps only its deepest existing directory: a file the app looked for and did
//!    not find stays absent.
//! 2. `elf_closure`, `interpreter`: every kept regular file that is an ELF object gets
//!    its closure, resolved by [`crate::elf`] against the unpacked root (its
//!    `ld.so.cache`, RUNPATHs, `$ORIGIN`; `PT_INTERP` included), and every kept script
//!    its `#!` interpreter (`/usr/bin/env NAME` looks NAME up in the image's `PATH`),
//!    repeatedly until nothing new is kept.
//! 3. `include`, `shell`, `package`: what the options ask for ([`KeepOptions`]).
//! 4. `runtime`: what the runtime needs without the trace showing it: `/etc/passwd`,
//!    `/etc/group`, `/etc/nsswitch.conf` always (tiny; user lookups happen in the
//!    runtime); the CA bundles and `/etc/ssl/certs` when the trace touched any TLS
//!    directory; and, when glibc's `libc.so.6` is kept, the NSS modules of the services
//!    `/etc/nsswitch.conf` names and `libgcc_s.so.1` (glibc `dlopen`s them).
//! 5. `parent`: every directory above a kept path, with its own metadata.
//!
//! Then [`KeepOptions::debug_exclude`] removes paths whatever their reasons. Device
//! nodes and fifos are never kept (the runtime provides `/dev`).

mod content;
mod dpkg;
mod walk;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::trace::Trace;
use crate::fs::glob::Glob;
use crate::fs::{FsTree, NodeId, NodeKind};
pub(crate) use walk::{walk, Step, Walk};

/// Why a path is kept. When several rules keep a path, the one recorded is the first
/// rule that names the path itself, in this order: `traced`, `elf_closure`,
/// `interpreter`, `include`, `shell`, `package`, `runtime`; `symlink_chain` and `parent`
/// (the path is only on the way to, or above, something kept) come last, since a
/// path's own rule says more (an included directory is `include`, not the `parent` of
/// its files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Reason {
    /// The traced application named it.
    Traced,
    /// A symbolic link followed on the way to a kept path.
    SymlinkChain,
    /// A directory above a kept path.
    Parent,
    /// In the ELF closure (interpreter, libraries, glibc's `dlopen`s) of a kept file.
    ElfClosure {
        /// The ELF file whose closure it is in.
        of: String,
    },
    /// The `#!` interpreter of a kept script.
    Interpreter {
        /// The script.
        of: String,
    },
    /// Asked for with `--include`.
    Include {
        /// The path or glob given.
        pattern: String,
    },
    /// `/bin/sh` and what it resolves to (`--include-shell`).
    Shell,
    /// A file of a package asked for with `--keep-package`.
    Package {
        /// The package.
        name: String,
    },
    /// Needed by the runtime without the trace showing it.
    Runtime {
        /// What for, e.g. "nss module for hosts", "ca bundle", "passwd/group".
        what: String,
    },
}

impl Reason {
    fn rank(&self) -> u8 {
        match self {
            Reason::Traced => 0,
            Reason::ElfClosure { .. } => 1,
            Reason::Interpreter { .. } => 2,
            Reason::Include { .. } => 3,
            Reason::Shell => 4,
            Reason::Package { .. } => 5,
            Reason::Runtime { .. } => 6,
            Reason::SymlinkChain => 7,
            Reason::Parent => 8,
        }
    }
}

/// What to keep besides the trace.
#[derive(Debug, Clone, Default)]
pub struct KeepOptions {
    /// The image's `PATH` (from its config's `Env`), for `#!/usr/bin/env NAME`; empty
    /// means the usual `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`.
    pub path: String,
    /// Exact paths (the path and, for a directory, its whole subtree) or globs
    /// ([`Glob`]: `*`, `?`, `**`; a matching directory brings its subtree too).
    pub includes: Vec<String>,
    /// Keep `/bin/sh`, what it resolves to, and its closure.
    pub include_shell: bool,
    /// Debian packages whose every file is kept (from the image's dpkg database).
    pub keep_packages: Vec<String>,
    /// Paths (exact, with their subtree, or globs) removed at the end whatever keeps
    /// them: a test knob to over-slim on purpose.
    pub debug_exclude: Vec<String>,
}

/// Why the keep-set could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// An `--include` names nothing in the image.
    #[error("--include {pattern}: no such path in the image")]
    IncludeNotFound {
        /// The path or glob.
        pattern: String,
    },
    /// A `--keep-package` is not in the image's dpkg database.
    #[error("--keep-package {name}: no such package in the image's dpkg database{}", did_you_mean(close))]
    UnknownPackage {
        /// The name given.
        name: String,
        /// Installed packages with similar names.
        close: Vec<String>,
    },
    /// `--keep-package` on an image without a dpkg database.
    #[error("--keep-package {name}: the image has no dpkg database (/var/lib/dpkg/info or /var/lib/dpkg/status.d)")]
    NoDpkgDatabase {
        /// The name given.
        name: String,
    },
    /// A distroless-style package entry without its file list.
    #[error("--keep-package {name}: {status} lists no files (no {status}.md5sums); use --include for its files")]
    PackageWithoutFileList {
        /// The name given.
        name: String,
        /// Its status file.
        status: String,
    },
    /// A file of the unpacked image could not be read.
    #[error("{}: reading the unpacked image", path.display())]
    Read {
        /// The file on the host.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn did_you_mean(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(" (installed packages with similar names: {})", close.join(", "))
    }
}

/// The paths the slim image keeps and why (see the module documentation).
#[derive(Debug, Clone)]
pub struct KeepSet {
    reasons: BTreeMap<NodeId, Reason>,
    kept_files: usize,
    kept_bytes: u64,
    removed_files: usize,
    removed_bytes: u64,
    warnings: Vec<String>,
}

impl KeepSet {
    /// Every kept node with the reason it is kept (the root directory is implied).
    pub fn reasons(&self) -> &BTreeMap<NodeId, Reason> {
        &self.reasons
    }

    /// Whether `id` is kept.
    pub fn contains(&self, id: NodeId) -> bool {
        self.reasons.contains_key(&id)
    }

    /// Kept paths that are regular files or hard links.
    pub fn kept_files(&self) -> usize {
        self.kept_files
    }

    /// Bytes of the kept file contents (each content once, however many links it has).
    pub fn kept_bytes(&self) -> u64 {
        self.kept_bytes
    }

    /// Paths of the image that are regular files or hard links and are not kept.
    pub fn removed_files(&self) -> usize {
        self.removed_files
    }

    /// Bytes of file contents the image shows and the keep-set drops.
    pub fn removed_bytes(&self) -> u64 {
        self.removed_bytes
    }

    /// Things to tell the user: ELF files whose closure could not be resolved, missing
    /// libraries, scripts whose interpreter is not in the image.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The paths the slim run looked up (`trace_of_slim`) that exist in the original
    /// image (`tree`, the one this set was computed on) but are not kept: for each
    /// lookup, the symbolic links on its way and its end (the deepest existing directory
    /// for a path the image lacks) that are missing. Directories passed through are left
    /// out: keeping the end keeps them. Sorted, each path once; what `--include` fixes.
    pub fn missing_in(&self, tree: &FsTree, trace_of_slim: &Trace) -> Vec<String> {
        let mut out = BTreeSet::new();
        for a in &trace_of_slim.accesses {
            let w = walk(tree, &a.path, a.follow_last);
            let links = w.steps.iter().filter(|(_, s)| *s == Step::Link).map(|(id, _)| *id);
            for id in links.chain([w.found.unwrap_or(w.deepest_dir)]) {
                if id != NodeId::ROOT && !self.contains(id) {
                    out.insert(tree.path(id));
                }
            }
        }
        out.into_iter().collect()
    }
}

/// Computes the keep-set of `tree` (unpacked at `root`) for `trace` and `opts`.
pub fn keep_set(tree: &FsTree, root: &Path, trace: &Trace, opts: &KeepOptions) -> Result<KeepSet, KeepError> {
    let mut k = Keeper::new(tree, root, opts);
    for a in &trace.accesses {
        let w = walk(tree, &a.path, a.follow_last);
        k.keep_walk(&w, &Reason::Traced);
    }
    k.follow_contents()?;
    for pattern in &opts.includes {
        let matched = matching(tree, pattern, true);
        if matched.is_empty() {
            return Err(KeepError::IncludeNotFound { pattern: pattern.clone() });
        }
        for id in matched {
            k.keep_subtree(id, &Reason::Include { pattern: pattern.clone() });
        }
    }
    if opts.include_shell && k.keep_path("/bin/sh", true, &Reason::Shell).is_none() {
        k.warnings.push("--include-shell: the image has no /bin/sh".into());
    }
    for name in &opts.keep_packages {
        let read = |p: &str| k.read(p, usize::MAX);
        let files = dpkg::package_files(tree, name, &read)?;
        for f in files {
            k.keep_path(&f, true, &Reason::Package { name: name.clone() });
        }
    }
    k.runtime_files(trace);
    k.follow_contents()?;
    if k.glibc_extras()? {
        k.follow_contents()?;
    }
    let kept: Vec<NodeId> = k.reasons.keys().copied().collect();
    for id in kept {
        let mut cur = tree.parent(id);
        while let Some(p) = cur.filter(|&p| p != NodeId::ROOT) {
            k.keep(p, &Reason::Parent);
            cur = tree.parent(p);
        }
    }
    for pattern in &opts.debug_exclude {
        for id in matching(tree, pattern, false) {
            k.reasons.remove(&id);
            for d in tree.walk_from(id, false) {
                k.reasons.remove(&d);
            }
        }
    }
    Ok(k.finish())
}

/// The nodes `pattern` names: a glob's matches, or the node at an exact path (symlinks
/// in the last component followed when `follow_last`).
fn matching(tree: &FsTree, pattern: &str, follow_last: bool) -> Vec<NodeId> {
    if pattern.contains(['*', '?']) {
        let g = Glob::new(pattern);
        tree.walk().into_iter().filter(|&id| g.matches(&tree.path(id))).collect()
    } else {
        walk(tree, pattern, follow_last).found.filter(|&id| id != NodeId::ROOT).into_iter().collect()
    }
}

/// The keep-set being computed.
struct Keeper<'a> {
    tree: &'a FsTree,
    root: &'a Path,
    opts: &'a KeepOptions,
    reasons: BTreeMap<NodeId, Reason>,
    /// Kept regular files not yet examined for ELF closures and interpreters.
    todo: Vec<NodeId>,
    /// Real paths of objects already loaded in a resolved closure (their own closure is
    /// part of it, so it is not resolved again).
    covered: HashSet<String>,
    warnings: Vec<String>,
}

impl<'a> Keeper<'a> {
    fn new(tree: &'a FsTree, root: &'a Path, opts: &'a KeepOptions) -> Self {
        let (reasons, todo, covered, warnings) = Default::default();
        Keeper { tree, root, opts, reasons, todo, covered, warnings }
    }

    /// Keeps `id` for `reason`, unless an earlier rule already keeps it.
    fn keep(&mut self, id: NodeId, reason: &Reason) {
        let kind = self.tree.meta(id).kind;
        if id == NodeId::ROOT || matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice | NodeKind::Fifo) {
            return;
        }
        match self.reasons.get_mut(&id) {
            Some(r) if r.rank() > reason.rank() => *r = reason.clone(),
            Some(_) => {}
            None => {
                self.reasons.insert(id, reason.clone());
                if matches!(kind, NodeKind::File | NodeKind::HardLink) {
                    self.todo.push(id);
                }
            }
        }
    }

    /// Keeps what a walk touched: directories as `parent`, links as `symlink_chain`, the
    /// end (or, for a missing path, the deepest directory reached) as `end`.
    fn keep_walk(&mut self, w: &Walk, end: &Reason) {
        for &(id, step) in &w.steps {
            self.keep(id, if step == Step::Link { &Reason::SymlinkChain } else { &Reason::Parent });
        }
        self.keep(w.found.unwrap_or(w.deepest_dir), end);
    }

    /// Walks `path` and keeps it with its chain when it exists; returns its node.
    fn keep_path(&mut self, path: &str, follow_last: bool, reason: &Reason) -> Option<NodeId> {
        let w = walk(self.tree, path, follow_last);
        let found = w.found?;
        self.keep_walk(&w, reason);
        Some(found)
    }

    /// Keeps `id` and, for a directory, everything under it (links in it resolved too).
    fn keep_subtree(&mut self, id: NodeId, reason: &Reason) {
        self.keep(id, reason);
        if self.tree.meta(id).kind == NodeKind::Symlink {
            self.keep_path(&self.tree.path(id), true, reason);
        }
        if self.tree.meta(id).kind == NodeKind::Dir {
            for d in self.tree.walk_from(id, false) {
                self.keep(d, reason);
                if self.tree.meta(d).kind == NodeKind::Symlink {
                    self.keep_path(&self.tree.path(d), true, reason);
                }
            }
        }
    }

    /// Up to `limit` leading bytes of the image file at tree path `path` (resolved
    /// through the tree first, so the host path has no link in it).
    fn read(&self, path: &str, limit: usize) -> Result<Vec<u8>, KeepError> {
        let real = self.tree.resolve(path, true).map(|id| self.tree.path(id)).unwrap_or_else(|_| path.to_string());
        let host = self.root.join(real.trim_start_matches('/'));
        let err = |source| KeepError::Read { path: host.clone(), source };
        let f = File::options().read(true).custom_flags(libc::O_NOFOLLOW).open(&host).map_err(err)?;
        let mut buf = Vec::new();
        f.take(limit as u64).read_to_end(&mut buf).map_err(err)?;
        Ok(buf)
    }

    fn finish(self) -> KeepSet {
        let t = self.tree;
        let is_file = |id: &NodeId| matches!(t.meta(*id).kind, NodeKind::File | NodeKind::HardLink);
        let mut seen = HashSet::new();
        let (mut kept_files, mut kept_bytes) = (0, 0);
        for id in self.reasons.keys().filter(|id| is_file(id)) {
            kept_files += 1;
            if t.inode(*id).is_none_or(|ino| seen.insert(ino)) {
                kept_bytes += t.meta(*id).size;
            }
        }
        let all_files = t.walk().iter().filter(|id| is_file(id)).count();
        KeepSet {
            removed_files: all_files - kept_files,
            removed_bytes: t.file_bytes().saturating_sub(kept_bytes),
            reasons: self.reasons,
            kept_files,
            kept_bytes,
            warnings: self.warnings,
        }
    }
}

#[cfg(test)]
#[path = "keep_tests.rs"]
pub(crate) mod tests;
