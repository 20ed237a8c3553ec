//! The file tree the resolver reads: a trait, a host-directory implementation, and
//! [`resolve_in_root`], which follows symbolic links with the root as `/`.
//!
//! `build` resolves against a directory on the host (`/`, or `--sysroot DIR`); `doctor`
//! against the file tree of an image. Both only need "what is at this path" and "read this
//! file", so that is the whole of [`RootFs`]. Every path handed to a [`RootFs`] comes out
//! of [`resolve_in_root`] (or is built from one of its results): absolute, normalised, and
//! with no symbolic link among its parent directories. An implementation therefore never
//! has to follow a link itself, and a hostile link cannot lead it out of the root.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::elf::error::{io_error, ElfError};

/// The most symbolic links one resolution follows (Linux's `MAXSYMLINKS`).
pub const MAX_SYMLINKS: usize = 40;

/// What is at a path, without following a final symbolic link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Node {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link, with its target exactly as stored.
    Symlink(String),
    /// Anything else (device, fifo, socket).
    Other,
}

/// Read access to a file tree whose top is `/`.
///
/// Paths are absolute and normalised (no `.`, `..` or empty components), and no parent
/// directory in them is a symbolic link: callers resolve paths with [`resolve_in_root`]
/// first. Implementations must not follow symbolic links.
pub trait RootFs {
    /// What is at `path`; `Ok(None)` when nothing is (including when a parent is a file).
    fn lstat(&self, path: &str) -> io::Result<Option<Node>>;
    /// The contents of the regular file at `path`.
    fn read(&self, path: &str) -> io::Result<Vec<u8>>;
    /// The names of the entries of the directory at `path`, sorted.
    fn read_dir(&self, path: &str) -> io::Result<Vec<String>>;
}

/// A directory of the host used as the root (`/` itself, or a `--sysroot`).
#[derive(Debug, Clone)]
pub struct HostRoot {
    root: PathBuf,
}

impl HostRoot {
    /// A root at `root` on the host.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostRoot { root: root.into() }
    }

    /// The host directory this root is.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path of `path`. Refuses `..`, so even a caller that breaks the
    /// [`RootFs`] contract cannot name a file above the root.
    fn host_path(&self, path: &str) -> io::Result<PathBuf> {
        let mut out = self.root.clone();
        for c in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            if c == ".." {
                let msg = format!("{path}: `..` in a path handed to HostRoot");
                return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
            }
            out.push(c);
        }
        Ok(out)
    }
}

impl RootFs for HostRoot {
    fn lstat(&self, path: &str) -> io::Result<Option<Node>> {
        let host = self.host_path(path)?;
        let meta = match fs::symlink_metadata(&host) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
            Err(e) => return Err(e),
        };
        let t = meta.file_type();
        Ok(Some(if t.is_symlink() {
            Node::Symlink(fs::read_link(&host)?.to_string_lossy().into_owned())
        } else if t.is_dir() {
            Node::Dir
        } else if t.is_file() {
            Node::File
        } else {
            debug_assert!(t.is_fifo() || t.is_socket() || t.is_block_device() || t.is_char_device());
            Node::Other
        }))
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        use std::io::Read as _;
        // O_NOFOLLOW: the final component must not be a link (the contract says parents
        // are not either).
        let mut file = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(self.host_path(path)?)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        Ok(data)
    }

    fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let mut names = fs::read_dir(self.host_path(path)?)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }
}

/// A path resolved inside a root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// The final path: absolute, normalised, free of symbolic links.
    pub path: String,
    /// What is there (never [`Node::Symlink`]).
    pub node: Node,
    /// Every symbolic link followed on the way, in order, so an image can rebuild the
    /// same chain (including links to directories such as `/lib -> usr/lib`).
    pub hops: Vec<Hop>,
}

/// One symbolic link met while resolving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// Where the link is: absolute, normalised, its parents free of links.
    pub path: String,
    /// Its target, exactly as stored (relative or absolute).
    pub target: String,
}

/// Resolves `path` inside `root` the way the kernel would after `chroot(root)`: absolute
/// link targets restart at the root, `..` never climbs above it, and more than
/// [`MAX_SYMLINKS`] links is an error. A relative `path` counts from `/`.
pub fn resolve_in_root<R: RootFs + ?Sized>(root: &R, path: &str) -> Result<Resolved, ElfError> {
    // Components still to walk, last first; and the link-free prefix walked so far.
    let mut pending: Vec<String> = components(path).rev().map(str::to_string).collect();
    let mut done: Vec<String> = Vec::new();
    let mut node = Node::Dir;
    let mut hops = Vec::new();
    while let Some(c) = pending.pop() {
        if c.is_empty() {
            continue;
        }
        if node != Node::Dir {
            let component = absolute(&done);
            return Err(ElfError::NotADirectory { path: path.to_string(), component });
        }
        if c == "." {
            continue;
        }
        if c == ".." {
            done.pop();
            continue;
        }
        done.push(c);
        let here = absolute(&done);
        match root.lstat(&here).map_err(|e| io_error(&here, e))? {
            None => return Err(ElfError::NotFound { path: path.to_string() }),
            Some(Node::Symlink(target)) => {
                if hops.len() >= MAX_SYMLINKS {
                    return Err(ElfError::SymlinkLoop { path: path.to_string() });
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                pending.extend(components(&target).rev().map(str::to_string));
                hops.push(Hop { path: here, target });
                node = Node::Dir;
            }
            Some(n) => node = n,
        }
    }
    Ok(Resolved { path: absolute(&done), node, hops })
}

/// The `/`-separated components of `path` (possibly empty ones).
fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/')
}

/// `["usr", "lib"]` -> `/usr/lib`; `[]` -> `/`.
fn absolute(parts: &[String]) -> String {
    if parts.is_empty() {
        "/".to_string()
    } else {
        parts.iter().fold(String::new(), |acc, p| acc + "/" + p)
    }
}

/// `path` made absolute and normalised without touching any file system (`..` at the top
/// stays at `/`). For paths that name no file, such as `$ORIGIN` of a host binary.
pub(crate) fn normalize(path: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c.to_string()),
        }
    }
    absolute(&parts)
}

/// The directory part of an absolute normalised path: `/a/b` -> `/a`, `/a` -> `/`.
pub(crate) fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// `dir` + `/` + `name`, without doubling the slash after `/`.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::testutil::MemRoot;
    use proptest::prelude::*;
    use std::os::unix::fs::symlink;

    /// A tempdir root full of links that try to leave it, next to a real `etc/passwd`.
    fn hostile_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::write(r.join("etc/passwd"), "inside\n").unwrap();
        fs::create_dir_all(r.join("usr/lib/x")).unwrap();
        fs::write(r.join("usr/lib/x/libz.so.1.2"), "z").unwrap();
        symlink("libz.so.1.2", r.join("usr/lib/x/libz.so.1")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("../../../../../../etc/passwd", r.join("up")).unwrap();
        symlink("/etc/passwd", r.join("abs")).unwrap();
        symlink("/..", r.join("rootup")).unwrap();
        fs::create_dir_all(r.join("d")).unwrap();
        symlink("../../../..", r.join("d/top")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        symlink("self", r.join("self")).unwrap();
        dir
    }

    #[test]
    fn never_leaves_the_root() {
        let dir = hostile_root();
        let root = HostRoot::new(dir.path());
        for p in ["/up", "/abs", "/../../etc/passwd", "/rootup/../../etc/passwd", "/d/top/etc/passwd", "up"] {
            let r = resolve_in_root(&root, p).unwrap();
            assert_eq!(r.path, "/etc/passwd", "{p}");
            assert_eq!(r.node, Node::File);
            assert_eq!(root.read(&r.path).unwrap(), b"inside\n", "{p}");
        }
        assert_eq!(resolve_in_root(&root, "/d/top").unwrap().path, "/");
        assert!(root.lstat("/../etc").is_err(), "HostRoot refuses `..`");
        // The final link must not be followed by a read either.
        assert!(root.read("/abs").is_err());
    }

    #[test]
    fn records_every_link_on_the_way() {
        let dir = hostile_root();
        let r = resolve_in_root(&HostRoot::new(dir.path()), "/lib/x/libz.so.1").unwrap();
        assert_eq!(r.path, "/usr/lib/x/libz.so.1.2");
        let hops: Vec<(&str, &str)> = r.hops.iter().map(|h| (h.path.as_str(), h.target.as_str())).collect();
        assert_eq!(hops, [("/lib", "usr/lib"), ("/usr/lib/x/libz.so.1", "libz.so.1.2")]);
    }

    #[test]
    fn reports_loops_missing_files_and_files_used_as_directories() {
        let dir = hostile_root();
        let root = HostRoot::new(dir.path());
        for p in ["/loop1", "/self/x"] {
            assert!(matches!(resolve_in_root(&root, p), Err(ElfError::SymlinkLoop { .. })), "{p}");
        }
        let e = resolve_in_root(&root, "/etc/nope").unwrap_err();
        assert!(matches!(e, ElfError::NotFound { ref path } if path == "/etc/nope"), "{e}");
        let e = resolve_in_root(&root, "/etc/passwd/x").unwrap_err();
        assert!(matches!(e, ElfError::NotADirectory { .. }), "{e}");
    }

    #[test]
    fn normalises_lexically() {
        assert_eq!(normalize("a/./b/../c/"), "/a/c");
        assert_eq!(normalize("/../.."), "/");
        assert_eq!(dirname("/a/b"), "/a");
        assert_eq!(dirname("/a"), "/");
        assert_eq!(join("/", "a"), "/a");
    }

    proptest! {
        /// Whatever the links say, every path the resolver asks about and the path it
        /// returns are normalised absolute paths (so they cannot name anything above `/`).
        #[test]
        fn only_ever_asks_about_normalised_paths(
            links in proptest::collection::vec(("[abc]", "(/|\\.\\./|\\./|[abc]/){0,4}[abc.]{0,2}"), 0..6),
            query in "(/|\\.\\./|[abc]/){0,5}[abc]",
        ) {
            let mut root = MemRoot::default();
            root.dir("/d");
            root.file("/d/f", b"x");
            for (name, target) in &links {
                root.link(&format!("/{name}"), target);
            }
            let result = resolve_in_root(&root, &query);
            for asked in root.asked() {
                prop_assert!(asked.starts_with('/') && normalize(&asked) == asked, "{asked}");
            }
            if let Ok(r) = result {
                prop_assert_eq!(normalize(&r.path), r.path.clone());
                prop_assert!(r.hops.len() <= MAX_SYMLINKS);
            }
        }
    }
}
