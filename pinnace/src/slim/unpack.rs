//! The image's final filesystem written into a private directory, safely, for the
//! sandbox to run (the one place pinnace unpacks an image to disk).
//!
//! Two passes over the layers. The first builds the [`FsTree`] exactly as `inspect` does
//! (layers read and scanned in parallel, applied bottom-up) and notes, for every file
//! content (an inode of the tree), which layer and which tar path carry its bytes. Then
//! the final filesystem is created from the tree, not from the tar entries:
//! 1. every directory, top-down;
//! 2. every file content, in a second streaming pass over the layers that hold one
//!    (layers in parallel): each content is written once, at the path [`FsTree::files`]
//!    picks, as the layer that last wrote it has it (a content that no layer holds, a
//!    hard link to a missing target, is an empty file);
//! 3. every other path of the same content as a hard link to that one;
//! 4. symbolic links, targets verbatim (nothing is ever followed while unpacking);
//! 5. owners and modes of directories, bottom-up (files get theirs when written).
//!
//! Device nodes and fifos are not created: they are listed in [`Unpacked::skipped`]
//! (the sandbox mounts its own `/dev`).
//!
//! Safety: every path is created relative to a directory file descriptor obtained by
//! opening each component from `dest` with `O_NOFOLLOW | O_DIRECTORY`, and every file
//! with `O_NOFOLLOW`, so no symbolic link, whatever a layer says, can redirect a creation
//! outside `dest`. The tree itself already confines hostile input: tar paths with `..`
//! are skipped by the layer reader, absolute paths are made relative, and a symlink used
//! as a parent in a later entry (`etc -> /`, then `etc/passwd`) is replaced by a
//! directory (see [`crate::fs`]). Symbolic links are created last, so none exists while
//! anything else is created.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{File, Permissions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::analyze::inspect::read_layer;
use crate::analyze::{ordered_parallel, AnalyzeError};
use crate::fs::scan::scan_layer;
use crate::fs::{FsTree, NodeId, NodeKind};
use crate::layer::{EntryKind, LayerReader};
use crate::oci::Digest;
use crate::transport::{Image, Source};

/// An image's final filesystem on disk.
#[derive(Debug)]
pub struct Unpacked {
    /// The image's filesystem (metadata and history of every path).
    pub tree: FsTree,
    /// The directory it was written into (the `dest` given to [`unpack`]).
    pub root: PathBuf,
    /// Paths not created, with why (device nodes and fifos).
    pub skipped: Vec<(String, String)>,
    /// Paths written as regular files or hard links.
    pub files: usize,
    /// Bytes of file content written (each content once, however many links it has).
    pub bytes: u64,
    /// Things that went wrong without stopping the unpack (owners that could not be set).
    pub warnings: Vec<String>,
}

/// Why unpacking failed.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// `dest` is missing, not a directory, a symbolic link, or not empty.
    #[error("{}: the unpack directory must be an existing empty directory", path.display())]
    BadDestination {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        source: io::Error,
    },
    /// A layer could not be read (it names the layer and its digest).
    #[error(transparent)]
    Layer(#[from] AnalyzeError),
    /// A path's parent is not a directory in the tree (refused, never created).
    #[error("/{path}: its parent is not a directory in the image; refusing to create it")]
    ParentNotDir {
        /// The path (no leading `/`).
        path: String,
    },
    /// Creating a path (or setting its owner or mode) failed.
    #[error("{}/{path}: creating the {what}", root.display())]
    Create {
        /// The path inside the image (no leading `/`).
        path: String,
        /// The unpack directory.
        root: PathBuf,
        /// What was being done: "directory", "file", "hard link", "symbolic link", "mode".
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A layer that the first pass saw holding a file's content did not hold it on the
    /// second pass (the source changed in between).
    #[error("layer {layer} ({digest}) no longer holds /{path}, which it held on the first read; the image changed while pinnace read it")]
    ContentMissing {
        /// The path.
        path: String,
        /// Layer index.
        layer: usize,
        /// Its blob digest.
        digest: Digest,
    },
}

/// Writes `image`'s final filesystem into `dest`, an existing empty directory (see the
/// module documentation). Runs as root to keep owners; when changing an owner is not
/// permitted, that is said once in [`Unpacked::warnings`] and the unpack goes on.
pub fn unpack(src: &dyn Source, image: &Image, dest: &Path) -> Result<Unpacked, UnpackError> {
    let out = Dest::open(dest)?;
    // Pass 1: the tree, and where each content's bytes are: inode -> (layer, tar path).
    let mut tree = FsTree::new();
    let mut holder: HashMap<u32, (usize, String)> = HashMap::new();
    let n = image.layers.len();
    ordered_parallel(n, 0, &|i| read_layer(src, image, i, |tar| scan_layer(tar, None)), &mut |i, scan| {
        let files: Vec<String> =
            scan.entries.iter().filter(|e| e.kind == EntryKind::File).map(|e| e.path.clone()).collect();
        tree.apply_layer(i, scan);
        for p in files {
            // The node as of this layer: a later entry for the same path in the same layer
            // wins, and only a regular file holds bytes.
            if let Some(id) = tree.lookup(&p).filter(|&id| tree.meta(id).kind == NodeKind::File) {
                holder.extend(tree.inode(id).map(|ino| (ino, (i, p))));
            }
        }
        Ok(())
    })?;

    // The path written for each content, and the layer streams that hold them.
    let reps = tree.files();
    let mut wanted: Vec<HashMap<String, NodeId>> = vec![HashMap::new(); n];
    let mut empty = Vec::new();
    for &id in &reps {
        match tree.inode(id).and_then(|ino| holder.get(&ino)) {
            Some((layer, path)) => {
                wanted[*layer].insert(path.clone(), id);
            }
            None => empty.push(id),
        }
    }
    let rep_of: HashMap<u32, NodeId> = reps.iter().filter_map(|&id| Some((tree.inode(id)?, id))).collect();
    let walk = tree.walk();

    for &id in &walk {
        if tree.meta(id).kind == NodeKind::Dir {
            let (parent, name) = out.parent_of(&tree, id)?;
            mkdirat(parent.as_fd(), &name, 0o700).map_err(|e| out.err(&tree, id, "directory", e))?;
        }
    }
    // Pass 2: contents, each layer that holds one streamed again (in parallel).
    let written: Mutex<u64> = Mutex::new(0);
    ordered_parallel(
        n,
        0,
        &|i| {
            if wanted[i].is_empty() {
                return Ok(());
            }
            write_layer_files(src, image, i, &wanted[i], &tree, &out, &written)
        },
        &mut |_, ()| Ok(()),
    )?;
    for &id in &empty {
        let (parent, name) = out.parent_of(&tree, id)?;
        out.write_file(&tree, id, parent.as_fd(), &name, &mut io::empty())?;
    }
    let mut files = 0;
    let mut skipped = Vec::new();
    let mut links = Vec::new();
    for &id in &walk {
        let m = tree.meta(id);
        match m.kind {
            NodeKind::File | NodeKind::HardLink => {
                files += 1;
                let rep = tree.inode(id).and_then(|ino| rep_of.get(&ino).copied()).unwrap_or(id);
                if rep != id {
                    let (from_dir, from) = out.parent_of(&tree, rep)?;
                    let (to_dir, to) = out.parent_of(&tree, id)?;
                    linkat(from_dir.as_fd(), &from, to_dir.as_fd(), &to)
                        .map_err(|e| out.err(&tree, id, "hard link", e))?;
                }
            }
            NodeKind::Symlink => links.push(id),
            NodeKind::CharDevice | NodeKind::BlockDevice | NodeKind::Fifo => {
                skipped.push((tree.path(id), format!("{:?} not created (the sandbox provides /dev)", m.kind)))
            }
            NodeKind::Dir => {}
        }
    }
    for id in links {
        let (parent, name) = out.parent_of(&tree, id)?;
        let m = tree.meta(id);
        symlinkat(m.link.as_deref().unwrap_or(""), parent.as_fd(), &name)
            .map_err(|e| out.err(&tree, id, "symbolic link", e))?;
        out.chown(&tree, id, fchownat_nofollow(parent.as_fd(), &name, m.uid, m.gid))?;
    }
    // Directory owners and modes last, deepest first (a 0555 directory is filled first).
    for &id in walk.iter().rev().chain([&NodeId::ROOT]) {
        if tree.meta(id).kind == NodeKind::Dir {
            let fd = out.open_dir(&tree, id)?;
            out.set_owner_mode(&tree, id, fd)?;
        }
    }
    let bytes = *written.lock().expect("no panics while holding it");
    let warnings = out.warnings.into_inner().expect("no panics while holding it");
    Ok(Unpacked { tree, root: dest.to_path_buf(), skipped, files, bytes, warnings })
}

/// Streams layer `i` and writes the contents `wanted` (tar path -> node) names.
fn write_layer_files(
    src: &dyn Source,
    image: &Image,
    i: usize,
    wanted: &HashMap<String, NodeId>,
    tree: &FsTree,
    out: &Dest,
    written: &Mutex<u64>,
) -> Result<(), UnpackError> {
    let mut failed: Option<UnpackError> = None;
    let mut done: HashMap<NodeId, u64> = HashMap::new();
    let mut cache: Option<(NodeId, OwnedFd)> = None;
    let read = read_layer(src, image, i, |tar| {
        LayerReader::new(tar).visit(|e, data| {
            let Some(&id) = wanted.get(&e.path).filter(|_| e.kind == EntryKind::File) else { return Ok(()) };
            let parent_id = tree.parent(id).unwrap_or(NodeId::ROOT);
            let result = match cache.take() {
                Some((p, fd)) if p == parent_id => Ok(fd),
                _ => out.open_dir(tree, parent_id),
            }
            .and_then(|fd| {
                let n = out.write_file(tree, id, fd.as_fd(), tree.name(id), data)?;
                cache = Some((parent_id, fd));
                Ok(n)
            });
            match result {
                Ok(n) => {
                    // The same path twice in one layer: the later entry is the content.
                    done.insert(id, n);
                    Ok(())
                }
                Err(err) => {
                    failed = Some(err);
                    Err(io::Error::other("unpack failed"))
                }
            }
        })
    });
    if let Some(err) = failed {
        return Err(err);
    }
    read?;
    if let Some((path, _)) = wanted.iter().find(|(_, id)| !done.contains_key(id)) {
        return Err(UnpackError::ContentMissing { path: path.clone(), layer: i, digest: image.layers[i].digest });
    }
    *written.lock().expect("no panics while holding it") += done.values().sum::<u64>();
    Ok(())
}

/// The unpack directory, opened once; every creation goes through it.
struct Dest {
    fd: OwnedFd,
    path: PathBuf,
    chown_refused: AtomicBool,
    warnings: Mutex<Vec<String>>,
}

impl Dest {
    fn open(path: &Path) -> Result<Dest, UnpackError> {
        let bad = |source| UnpackError::BadDestination { path: path.to_path_buf(), source };
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| bad(io::Error::new(io::ErrorKind::InvalidInput, "NUL in path")))?;
        // SAFETY: a valid C string; the returned descriptor is checked and owned.
        let raw =
            unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
        let fd = owned(raw).map_err(bad)?;
        if std::fs::read_dir(path).map_err(bad)?.next().is_some() {
            return Err(bad(io::Error::new(io::ErrorKind::AlreadyExists, "not empty")));
        }
        let warnings = Mutex::new(Vec::new());
        Ok(Dest { fd, path: path.to_path_buf(), chown_refused: AtomicBool::new(false), warnings })
    }

    fn err(&self, tree: &FsTree, id: NodeId, what: &'static str, source: io::Error) -> UnpackError {
        let path = tree.path(id).trim_start_matches('/').to_string();
        UnpackError::Create { path, root: self.path.clone(), what, source }
    }

    /// Opens directory `dir` of the tree inside the unpack directory, one component at a
    /// time, never following a symbolic link.
    fn open_dir(&self, tree: &FsTree, dir: NodeId) -> Result<OwnedFd, UnpackError> {
        let mut names = Vec::new();
        let mut cur = dir;
        while let Some(p) = tree.parent(cur) {
            names.push(tree.name(cur));
            cur = p;
        }
        let mut fd = self.fd.try_clone().map_err(|e| self.err(tree, NodeId::ROOT, "directory", e))?;
        for name in names.into_iter().rev() {
            fd = openat(fd.as_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
                .map_err(|e| self.err(tree, dir, "directory", e))?;
        }
        Ok(fd)
    }

    /// The opened parent directory of `id` and `id`'s name; refuses a parent that is not
    /// a directory of the tree.
    fn parent_of(&self, tree: &FsTree, id: NodeId) -> Result<(OwnedFd, String), UnpackError> {
        let parent = tree.parent(id).unwrap_or(NodeId::ROOT);
        if tree.meta(parent).kind != NodeKind::Dir || !tree.is_present(parent) {
            return Err(UnpackError::ParentNotDir { path: tree.path(id).trim_start_matches('/').to_string() });
        }
        Ok((self.open_dir(tree, parent)?, tree.name(id).to_string()))
    }

    /// Creates (or truncates) regular file `name` in `dir` with `data`, then sets the
    /// node's owner and mode. Returns the bytes written.
    fn write_file(
        &self,
        tree: &FsTree,
        id: NodeId,
        dir: BorrowedFd<'_>,
        name: &str,
        data: &mut dyn io::Read,
    ) -> Result<u64, UnpackError> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW;
        let fd = openat(dir, name, flags, 0o600).map_err(|e| self.err(tree, id, "file", e))?;
        let mut f = File::from(fd);
        let n = io::copy(data, &mut f).map_err(|e| self.err(tree, id, "file", e))?;
        self.set_owner_mode(tree, id, f.into())?;
        Ok(n)
    }

    /// Owner, then mode (a change of owner clears setuid/setgid, so the mode comes last).
    fn set_owner_mode(&self, tree: &FsTree, id: NodeId, fd: OwnedFd) -> Result<(), UnpackError> {
        let m = tree.meta(id);
        let owner = match (u32::try_from(m.uid), u32::try_from(m.gid)) {
            (Ok(u), Ok(g)) => std::os::unix::fs::fchown(&fd, Some(u), Some(g)),
            _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        };
        self.chown(tree, id, owner)?;
        File::from(fd)
            .set_permissions(Permissions::from_mode(m.mode & 0o7777))
            .map_err(|e| self.err(tree, id, "mode", e))
    }

    /// Handles the result of changing an owner: not being permitted (no root, a user
    /// namespace without that id) is said once and tolerated; anything else fails.
    fn chown(&self, tree: &FsTree, id: NodeId, r: io::Result<()>) -> Result<(), UnpackError> {
        match r {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) => {
                if !self.chown_refused.swap(true, Ordering::SeqCst) {
                    let m = tree.meta(id);
                    let msg = format!(
                        "owners not kept: setting {}:{} on {} is not permitted ({e}); files are owned by the unpacking user",
                        m.uid,
                        m.gid,
                        tree.path(id)
                    );
                    self.warnings.lock().expect("no panics while holding it").push(msg);
                }
                Ok(())
            }
            Err(e) => Err(self.err(tree, id, "owner", e)),
        }
    }
}

fn cname(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

fn owned(raw: libc::c_int) -> io::Result<OwnedFd> {
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `openat(dir, name, flags | O_CLOEXEC, mode)`.
fn openat(dir: BorrowedFd<'_>, name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let c = cname(name)?;
    // SAFETY: valid descriptor and C string; the result is checked.
    owned(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })
}

fn mkdirat(dir: BorrowedFd<'_>, name: &str, mode: libc::mode_t) -> io::Result<()> {
    let c = cname(name)?;
    // SAFETY: valid descriptor and C string.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) })
}

fn symlinkat(target: &str, dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let (t, c) = (cname(target)?, cname(name)?);
    // SAFETY: valid descriptor and C strings.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) })
}

/// `linkat` without `AT_SYMLINK_FOLLOW`: the link is made to `from` itself.
fn linkat(from_dir: BorrowedFd<'_>, from: &str, to_dir: BorrowedFd<'_>, to: &str) -> io::Result<()> {
    let (f, t) = (cname(from)?, cname(to)?);
    // SAFETY: valid descriptors and C strings.
    check(unsafe { libc::linkat(from_dir.as_raw_fd(), f.as_ptr(), to_dir.as_raw_fd(), t.as_ptr(), 0) })
}

fn fchownat_nofollow(dir: BorrowedFd<'_>, name: &str, uid: u64, gid: u64) -> io::Result<()> {
    let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let c = cname(name)?;
    // SAFETY: valid descriptor and C string.
    check(unsafe { libc::fchownat(dir.as_raw_fd(), c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
pub(crate) mod tests;
