//! The one layer writer: a deterministic tar stream from a set of entries.
//!
//! Determinism contract: the bytes depend only on the entries (paths, kinds, modes,
//! owners, contents), the mtime and the compression options. Entries are sorted by path
//! component by component, every parent directory is emitted before its children
//! (missing ones are added as root-owned 0755 directories), owners are numeric only (no
//! user or group names), mtime is one fixed value for every entry (`SOURCE_DATE_EPOCH` or
//! 0), and no atime/ctime is written. Headers are ustar; a PAX extended header is added
//! only when a field does not fit (long path or link target, size >= 8 GiB, big ids).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::compress::{Encoded, Encoder, EncoderOptions};

/// Errors building a layer.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// A path is empty, absolute after normalisation, or leaves the root with `..`.
    #[error("image path {0:?} is not a clean path inside the image (no `..`, no empty components)")]
    BadPath(String),
    /// Two different entries claim one path.
    #[error("image path /{path} is given twice ({first} and {second}); keep one")]
    Conflict {
        /// The path.
        path: String,
        /// The first entry's description.
        first: String,
        /// The second one's.
        second: String,
    },
    /// A path is needed as a directory but is something else.
    #[error("image path /{0} is needed as a directory (it has children) but is given as a file or link")]
    NotADirectory(String),
    /// Reading a source file failed.
    #[error("reading {path}: {source}")]
    Source {
        /// The host path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A source file changed size while it was being written into the layer.
    #[error(
        "{path} changed size while pinnace read it (expected {expected} bytes); retry when it is not being written"
    )]
    Changed {
        /// The host path.
        path: PathBuf,
        /// The size first seen.
        expected: u64,
    },
    /// Writing the layer failed.
    #[error("writing the layer: {0}")]
    Io(#[from] io::Error),
}

/// Where a regular file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// A file on the host (read when the layer is written; its size is taken then).
    Path(PathBuf),
    /// Bytes in memory (generated files: passwd, certificates bundle, ...).
    Bytes(Arc<[u8]>),
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecKind {
    /// A regular file.
    File(FileSource),
    /// A directory.
    Dir,
    /// A symbolic link with this target (kept verbatim).
    Symlink(String),
    /// A hard link to another path of the same layer (relative to the root, no leading `/`).
    HardLink(String),
    /// Removes the path from lower layers (`.wh.NAME`).
    Whiteout,
    /// Hides the lower layers' content of this directory (`DIR/.wh..wh..opq`). May be
    /// given next to a [`SpecKind::Dir`] entry for the same path (the marker is written
    /// right after that directory's entry, before its children); without one, the
    /// directory is emitted as an implicit parent (root-owned `0755`).
    OpaqueWhiteout,
}

/// One entry to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntrySpec {
    /// Path inside the image, normalised: no leading `/`, no `.` or `..` components.
    pub path: String,
    /// Kind and content.
    pub kind: SpecKind,
    /// Permission bits (07777 mask applied).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// Normalises an image path: strips leading `/` and `./`, drops `.` components, refuses
/// `..` and empty results.
pub fn normalize_image_path(p: &str) -> Result<String, WriterError> {
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(WriterError::BadPath(p.to_string())),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(WriterError::BadPath(p.to_string()));
    }
    Ok(parts.join("/"))
}

/// Collects entries, then writes them as one deterministic layer.
#[derive(Debug, Default, Clone)]
pub struct LayerBuilder {
    entries: BTreeMap<Vec<String>, LayerEntrySpec>,
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries given (implicit parent directories not counted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an entry. The same entry twice is fine; two different ones at one path are a
    /// [`WriterError::Conflict`] (a directory and an opaque whiteout of it are not: they
    /// belong together).
    pub fn add(&mut self, mut e: LayerEntrySpec) -> Result<(), WriterError> {
        e.path = normalize_image_path(&e.path)?;
        e.mode &= 0o7777;
        if let SpecKind::HardLink(t) = &e.kind {
            e.kind = SpecKind::HardLink(normalize_image_path(t)?);
        }
        let mut key: Vec<String> = e.path.split('/').map(str::to_string).collect();
        if e.kind == SpecKind::OpaqueWhiteout {
            // The marker is stored under `[D.., ""]`: the empty component sorts right after
            // D's own entry and before every child of D, which is where containers/storage
            // writes `D/.wh..wh..opq`, and it lets D have both a directory entry (mode,
            // owner) and an opaque marker. Real components are never empty.
            key.push(String::new());
        }
        if let Some(prev) = self.entries.get(&key) {
            if *prev != e {
                return Err(WriterError::Conflict {
                    path: e.path.clone(),
                    first: describe(prev),
                    second: describe(&e),
                });
            }
            return Ok(());
        }
        self.entries.insert(key, e);
        Ok(())
    }

    /// Iterates the entries in write order (parents not yet filled in).
    pub fn entries(&self) -> impl Iterator<Item = &LayerEntrySpec> {
        self.entries.values()
    }

    /// Writes the layer into `out`, compressed as `opts` says, with every entry's mtime
    /// set to `mtime`. Returns `out` and the digests.
    pub fn write<W: Write + Send>(
        &self,
        out: W,
        opts: &EncoderOptions,
        mtime: u64,
    ) -> Result<(W, Encoded), WriterError> {
        let enc = Encoder::new(out, opts)?;
        let mut tar = TarOut { w: enc, mtime };
        let mut emitted_dirs: Vec<Vec<String>> = Vec::new();
        for (key, e) in &self.entries {
            // Parents first: any ancestor not given explicitly is emitted as a directory.
            for depth in 1..key.len() {
                let parent = &key[..depth];
                if emitted_dirs.iter().any(|d| d.as_slice() == parent) {
                    continue;
                }
                match self.entries.get(parent) {
                    Some(p) if p.kind != SpecKind::Dir => return Err(WriterError::NotADirectory(parent.join("/"))),
                    Some(_) => {} // emitted in order, before this entry (BTreeMap order)
                    None => tar.dir(&parent.join("/"), 0o755, 0, 0)?,
                }
                emitted_dirs.push(parent.to_vec());
            }
            tar.entry(e)?;
            if e.kind == SpecKind::Dir {
                emitted_dirs.push(key.clone());
            }
            // Only the current path's ancestors matter for the next entries.
            emitted_dirs.retain(|d| key.starts_with(d));
        }
        let enc = tar.finish()?;
        Ok(enc.finish()?)
    }
}

fn describe(e: &LayerEntrySpec) -> String {
    match &e.kind {
        SpecKind::File(FileSource::Path(p)) => format!("file {}", p.display()),
        SpecKind::File(FileSource::Bytes(b)) => format!("generated file of {} bytes", b.len()),
        SpecKind::Dir => "a directory".into(),
        SpecKind::Symlink(t) => format!("symlink to {t}"),
        SpecKind::HardLink(t) => format!("hard link to /{t}"),
        SpecKind::Whiteout => "a whiteout".into(),
        SpecKind::OpaqueWhiteout => "an opaque whiteout".into(),
    }
}

struct TarOut<W: Write> {
    w: W,
    mtime: u64,
}

const USTAR_MAX_ID: u32 = 0o7777777;
const USTAR_MAX_SIZE: u64 = 0o77777777777;

impl<W: Write> TarOut<W> {
    fn dir(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> io::Result<()> {
        self.header(&format!("{path}/"), tar::EntryType::Directory, mode, uid, gid, 0, None)
    }

    fn entry(&mut self, e: &LayerEntrySpec) -> Result<(), WriterError> {
        let (uid, gid, mode) = (e.uid, e.gid, e.mode);
        match &e.kind {
            SpecKind::Dir => self.dir(&e.path, mode, uid, gid)?,
            SpecKind::Symlink(t) => self.header(&e.path, tar::EntryType::Symlink, mode, uid, gid, 0, Some(t))?,
            SpecKind::HardLink(t) => self.header(&e.path, tar::EntryType::Link, mode, uid, gid, 0, Some(t))?,
            SpecKind::Whiteout => {
                let (dir, name) = split_parent(&e.path);
                self.header(&format!("{dir}.wh.{name}"), tar::EntryType::Regular, 0o644, 0, 0, 0, None)?
            }
            SpecKind::OpaqueWhiteout => {
                self.header(&format!("{}/.wh..wh..opq", e.path), tar::EntryType::Regular, 0o644, 0, 0, 0, None)?
            }
            SpecKind::File(FileSource::Bytes(b)) => {
                self.header(&e.path, tar::EntryType::Regular, mode, uid, gid, b.len() as u64, None)?;
                self.w.write_all(b)?;
                self.pad(b.len() as u64)?;
            }
            SpecKind::File(FileSource::Path(p)) => {
                let src = |source| WriterError::Source { path: p.clone(), source };
                let f = File::open(p).map_err(src)?;
                let size = f.metadata().map_err(src)?.len();
                if !f.metadata().map_err(src)?.is_file() {
                    return Err(src(io::Error::other("not a regular file")));
                }
                self.header(&e.path, tar::EntryType::Regular, mode, uid, gid, size, None)?;
                let copied = io::copy(&mut f.take(size), &mut self.w).map_err(src)?;
                if copied != size {
                    return Err(WriterError::Changed { path: p.clone(), expected: size });
                }
                self.pad(size)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn header(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        uid: u32,
        gid: u32,
        size: u64,
        link: Option<&str>,
    ) -> io::Result<()> {
        let mut pax: Vec<(&str, String)> = Vec::new();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode & 0o7777);
        h.set_mtime(self.mtime.min(USTAR_MAX_SIZE));
        if self.mtime > USTAR_MAX_SIZE {
            pax.push(("mtime", self.mtime.to_string()));
        }
        for (key, id) in [("uid", uid), ("gid", gid)] {
            if id > USTAR_MAX_ID {
                pax.push((key, id.to_string()));
            }
        }
        h.set_uid(u64::from(uid.min(USTAR_MAX_ID)));
        h.set_gid(u64::from(gid.min(USTAR_MAX_ID)));
        if size > USTAR_MAX_SIZE {
            pax.push(("size", size.to_string()));
            h.set_size(0);
        } else {
            h.set_size(size);
        }
        if h.set_path(path).is_err() {
            pax.push(("path", path.to_string()));
            // The ustar field keeps a truncated, still-valid name for readers without PAX.
            let short: String = path.chars().rev().take(90).collect::<Vec<_>>().into_iter().rev().collect();
            h.set_path(short.trim_start_matches('/')).or_else(|_| h.set_path("pax-long-name"))?;
        }
        if let Some(t) = link {
            if t.len() > 100 || h.set_link_name(t).is_err() {
                pax.push(("linkpath", t.to_string()));
                h.set_link_name("pax-long-link")?;
            }
        }
        if !pax.is_empty() {
            self.pax(path, &pax)?;
        }
        h.set_cksum();
        self.w.write_all(h.as_bytes())
    }

    /// Writes a PAX extended header ('x') whose records apply to the next entry.
    fn pax(&mut self, path: &str, records: &[(&str, String)]) -> io::Result<()> {
        let mut body = Vec::new();
        for (k, v) in records {
            // Each record is "LEN KEY=VALUE\n" where LEN counts its own digits.
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len = len.to_string().len() + rest;
            }
            body.extend_from_slice(format!("{len} {k}={v}\n").as_bytes());
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        let name: String = format!("PaxHeaders/{}", path.rsplit('/').next().unwrap_or(path));
        let name: String = name.chars().take(99).collect();
        h.set_path(&name)?;
        h.set_mode(0o644);
        h.set_mtime(self.mtime.min(USTAR_MAX_SIZE));
        h.set_size(body.len() as u64);
        h.set_cksum();
        self.w.write_all(h.as_bytes())?;
        self.w.write_all(&body)?;
        self.pad(body.len() as u64)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.w.write_all(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; 1024])?;
        Ok(self.w)
    }
}

fn split_parent(path: &str) -> (String, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name),
        None => (String::new(), path),
    }
}

/// The mtime layers get: `SOURCE_DATE_EPOCH` when set and valid, else 0.
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Reads a host file's permission bits (for entries that keep the source's mode).
pub fn host_mode(p: &Path) -> io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(p)?.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Compression, LayerReader};

    fn file(path: &str, content: &[u8]) -> LayerEntrySpec {
        LayerEntrySpec {
            path: path.into(),
            kind: SpecKind::File(FileSource::Bytes(content.into())),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn sample() -> LayerBuilder {
        let mut b = LayerBuilder::new();
        b.add(file("usr/bin/app", b"#!/bin/true\n")).unwrap();
        b.add(file("etc/passwd", b"root:x:0:0::/root:/sbin/nologin\n")).unwrap();
        b.add(LayerEntrySpec { path: "/tmp".into(), kind: SpecKind::Dir, mode: 0o1777, uid: 0, gid: 0 }).unwrap();
        b.add(LayerEntrySpec {
            path: "bin".into(),
            kind: SpecKind::Symlink("usr/bin".into()),
            mode: 0o777,
            uid: 0,
            gid: 0,
        })
        .unwrap();
        b.add(LayerEntrySpec {
            path: "usr/bin/app2".into(),
            kind: SpecKind::HardLink("usr/bin/app".into()),
            mode: 0o755,
            uid: 0,
            gid: 0,
        })
        .unwrap();
        b.add(LayerEntrySpec { path: "var/gone".into(), kind: SpecKind::Whiteout, mode: 0, uid: 0, gid: 0 }).unwrap();
        b.add(LayerEntrySpec { path: "opt".into(), kind: SpecKind::OpaqueWhiteout, mode: 0, uid: 0, gid: 0 }).unwrap();
        let long = format!("{}/file", "d".repeat(150));
        b.add(file(&long, b"long")).unwrap();
        b
    }

    fn names(tar_bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        LayerReader::new(tar_bytes)
            .visit(|e, _| {
                out.push(format!("{}:{:?}", e.path, e.kind));
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn same_entries_same_bytes_and_epoch_changes_digest() {
        let opts = EncoderOptions { compression: Compression::Gzip, ..Default::default() };
        let (a, ea) = sample().write(Vec::new(), &opts, 0).unwrap();
        let (b, eb) = sample().write(Vec::new(), &EncoderOptions { threads: 1, ..opts }, 0).unwrap();
        assert_eq!(a, b);
        assert_eq!(ea, eb);
        let (_, ec) = sample().write(Vec::new(), &opts, 1_700_000_000).unwrap();
        assert_ne!(ea.digest, ec.digest);
        assert_ne!(ea.diff_id, ec.diff_id);
    }

    #[test]
    fn parents_first_sorted_and_special_entries() {
        let opts = EncoderOptions { compression: Compression::None, ..Default::default() };
        let (bytes, enc) = sample().write(Vec::new(), &opts, 0).unwrap();
        assert_eq!(enc.digest, enc.diff_id);
        let n = names(&bytes);
        let pos = |p: &str| {
            n.iter().position(|x| x.starts_with(&format!("{p}:"))).unwrap_or_else(|| panic!("{p} missing in {n:?}"))
        };
        assert!(pos("usr") < pos("usr/bin") && pos("usr/bin") < pos("usr/bin/app"));
        assert!(pos("usr/bin/app") < pos("usr/bin/app2"));
        assert!(n.iter().any(|x| x.starts_with("var/gone:Whiteout")), "{n:?}");
        assert!(n.iter().any(|x| x.starts_with("opt:OpaqueWhiteout")), "{n:?}");
        assert!(n.iter().any(|x| x.starts_with(&format!("{}/file:", "d".repeat(150)))), "{n:?}");
        // GNU tar, an independent reader, agrees on the names.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.tar");
        std::fs::write(&p, &bytes).unwrap();
        let out = std::process::Command::new("tar").arg("-tvf").arg(&p).output().unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{listing}");
        assert!(listing.contains(&format!("{}/file", "d".repeat(150))), "{listing}");
        assert!(listing.contains("bin -> usr/bin"), "{listing}");
        assert!(listing.contains("usr/bin/app2 link to usr/bin/app"), "{listing}");
        assert!(listing.contains("drwxrwxrwt 0/0"), "{listing}");
        assert!(listing.contains("1970-01-01"), "{listing}");
    }

    #[test]
    fn opaque_marker_right_after_its_directory() {
        let mut b = LayerBuilder::new();
        let dir = |p: &str| LayerEntrySpec { path: p.into(), kind: SpecKind::Dir, mode: 0o700, uid: 7, gid: 8 };
        let opaque =
            |p: &str| LayerEntrySpec { path: p.into(), kind: SpecKind::OpaqueWhiteout, mode: 0, uid: 0, gid: 0 };
        b.add(file("d/a", b"a")).unwrap();
        b.add(file("d/-dash", b"-")).unwrap();
        b.add(opaque("d")).unwrap();
        b.add(dir("d")).unwrap();
        b.add(opaque("d")).unwrap(); // the same marker twice is one marker
        b.add(dir("d/sub")).unwrap();
        b.add(opaque("d/sub")).unwrap();
        b.add(file("d/sub/x", b"x")).unwrap();
        b.add(opaque("e")).unwrap(); // no directory entry given: an implicit one
        b.add(file("c", b"c")).unwrap();
        let opts = EncoderOptions { compression: Compression::None, ..Default::default() };
        let (bytes, _) = b.write(Vec::new(), &opts, 0).unwrap();
        assert_eq!(
            names(&bytes),
            [
                "c:File",
                "d:Dir",
                "d:OpaqueWhiteout",
                "d/-dash:File",
                "d/a:File",
                "d/sub:Dir",
                "d/sub:OpaqueWhiteout",
                "d/sub/x:File",
                "e:Dir",
                "e:OpaqueWhiteout"
            ]
        );
        // The directory keeps its own mode and owner.
        let mut d = None;
        LayerReader::new(&bytes[..])
            .visit(|e, _| {
                if e.path == "d" && e.kind == crate::layer::EntryKind::Dir {
                    d = Some((e.mode, e.uid, e.gid));
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(d, Some((0o700, 7, 8)));
        // A marker under a path given as a file is refused.
        let mut c = LayerBuilder::new();
        c.add(file("f", b"1")).unwrap();
        c.add(opaque("f")).unwrap();
        assert!(matches!(c.write(Vec::new(), &opts, 0), Err(WriterError::NotADirectory(_))));
    }

    #[test]
    fn conflicts_and_bad_paths_are_errors() {
        let mut b = LayerBuilder::new();
        b.add(file("a/b", b"1")).unwrap();
        b.add(file("a/b", b"1")).unwrap();
        assert!(matches!(b.add(file("/a/b", b"2")), Err(WriterError::Conflict { .. })));
        assert!(matches!(b.add(file("../etc/passwd", b"x")), Err(WriterError::BadPath(_))));
        assert!(matches!(b.add(file("/", b"x")), Err(WriterError::BadPath(_))));
        let mut c = LayerBuilder::new();
        c.add(file("a", b"1")).unwrap();
        c.add(file("a/b", b"1")).unwrap();
        let err = c.write(Vec::new(), &EncoderOptions::default(), 0).unwrap_err();
        assert!(matches!(err, WriterError::NotADirectory(_)), "{err}");
    }
}
