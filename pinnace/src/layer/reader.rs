//! The one layer reader: walks a layer's tar stream once and yields normalised entries.
//!
//! Defined outcomes for hostile or odd input (each has a test below):
//!
//! | input | outcome |
//! |---|---|
//! | `./a/b`, `/a/b`, `a//b/.` | normalised to `a/b` |
//! | a `..` component, in a path or a hard-link target; a whiteout of `..`, `.` or nothing (`a/.wh...`) | entry skipped, [`Warning::Escapes`] |
//! | symlink whose target is absolute or climbs out | yielded as is: link targets are resolved inside the image root by whoever follows them (see `crate::fs`), never on the host |
//! | device nodes, fifos | yielded with their kind; nothing is created from them here |
//! | a header claiming more data than the stream has; a stream cut mid-header | [`LayerError::Truncated`] with the offset of that header |
//! | a header with a bad checksum or garbage | [`LayerError::Corrupt`] with the offset of that header |
//! | the same path twice | both yielded, [`Warning::Duplicate`] (later wins, as in tar) |
//! | non-UTF-8 names | converted lossily, [`Warning::NonUtf8`] |
//! | end of stream without the two zero blocks; one zero block | accepted as the end |
//! | data after the end-of-archive zero block | ignored (GNU tar does the same) and drained for verification |
//! | a decompression bomb | refused by the bound in [`super::open_verified`] |

use std::collections::HashSet;
use std::io::{self, Read};

/// A layer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The stream ended inside an entry.
    #[error("layer is truncated at byte {offset} of its tar stream: {detail}")]
    Truncated {
        /// Uncompressed offset of the entry header being read.
        offset: u64,
        /// What was being read.
        detail: String,
    },
    /// A header is not a tar header.
    #[error("layer is corrupt at byte {offset} of its tar stream: {detail}")]
    Corrupt {
        /// Uncompressed offset.
        offset: u64,
        /// The parser's complaint.
        detail: String,
    },
    /// The consumer of the entries failed, or verification at end of stream failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Something odd but survivable in a layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Warning {
    /// An entry (or its hard-link target) leaves the root with `..`; it was skipped.
    Escapes {
        /// The raw path.
        path: String,
    },
    /// The same path appears twice in one layer.
    Duplicate {
        /// The path.
        path: String,
    },
    /// A name is not UTF-8; it was converted lossily.
    NonUtf8 {
        /// The converted path.
        path: String,
    },
    /// An entry type pinnace does not model (e.g. GNU sparse, volume labels); skipped.
    Unsupported {
        /// The path.
        path: String,
        /// The tar type flag.
        type_flag: u8,
    },
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file (its data is readable in the visitor).
    File,
    /// Directory.
    Dir,
    /// Symbolic link with its target, verbatim.
    Symlink(String),
    /// Hard link to another path (normalised).
    HardLink(String),
    /// Whiteout: removes `path` from lower layers.
    Whiteout,
    /// Opaque whiteout: hides the lower content of directory `path`.
    OpaqueWhiteout,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
}

/// One normalised entry.
#[derive(Debug, Clone)]
pub struct LayerEntry {
    /// Path relative to the root, e.g. `usr/bin/env` (for whiteouts: the path removed;
    /// for opaque whiteouts: the directory; `""` is the root itself).
    pub path: String,
    /// Kind.
    pub kind: EntryKind,
    /// Permission bits and setuid/setgid/sticky (07777).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Data size (0 for everything but files).
    pub size: u64,
    /// Modification time.
    pub mtime: u64,
    /// Offset of the entry's header in the uncompressed stream.
    pub offset: u64,
}

/// Counts from one pass over a layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerSummary {
    /// Entries yielded.
    pub entries: u64,
    /// Warnings, in stream order.
    pub warnings: Vec<Warning>,
    /// Bytes of the tar stream consumed, including what follows the end marker.
    pub stream_bytes: u64,
}

/// Streams a layer's (already decompressed) tar bytes.
pub struct LayerReader<R: Read> {
    inner: R,
}

struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Normalises a tar path; `None` when it climbs out with `..`.
pub fn normalize(raw: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

impl<R: Read> LayerReader<R> {
    /// Reads `inner`, an uncompressed tar stream (see [`super::open_verified`]).
    pub fn new(inner: R) -> Self {
        LayerReader { inner }
    }

    /// Calls `visit` for each entry in stream order, with a reader over its data (empty
    /// for non-files). The visitor may read the data or not. After the last entry the
    /// rest of the stream is drained so end-of-stream verification runs.
    pub fn visit<F>(self, mut visit: F) -> Result<LayerSummary, LayerError>
    where
        F: FnMut(&LayerEntry, &mut dyn Read) -> io::Result<()>,
    {
        let mut archive = tar::Archive::new(Counting { inner: self.inner, n: 0 });
        let mut summary = LayerSummary::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut last_offset = 0u64;
        // Where the next header should start: the tar reader fails either skipping the
        // rest of the previous entry's data (that entry is truncated: `last_offset`) or
        // reading the next header (truncated or corrupt there: `next_header`).
        let mut next_header = 0u64;
        {
            let entries = archive.entries().map_err(|e| LayerError::Corrupt { offset: 0, detail: e.to_string() })?;
            for item in entries {
                let mut entry = item.map_err(|e| {
                    let at = if e.to_string().contains("during skip") { last_offset } else { next_header };
                    classify(e, at)
                })?;
                let offset = entry.raw_header_position();
                last_offset = offset;
                next_header = offset.saturating_add(512).saturating_add(entry.size().div_ceil(512).saturating_mul(512));
                let header = entry.header();
                let type_flag = header.entry_type().as_byte();
                let mode = header.mode().unwrap_or(0) & 0o7777;
                let uid = header.uid().unwrap_or(0);
                let gid = header.gid().unwrap_or(0);
                let mtime = header.mtime().unwrap_or(0);
                let size = entry.size();
                let raw_bytes = entry.path_bytes().into_owned();
                let raw = match String::from_utf8(raw_bytes) {
                    Ok(s) => s,
                    Err(e) => {
                        let s = String::from_utf8_lossy(e.as_bytes()).into_owned();
                        summary.warnings.push(Warning::NonUtf8 { path: s.clone() });
                        s
                    }
                };
                let Some(mut path) = normalize(&raw) else {
                    summary.warnings.push(Warning::Escapes { path: raw });
                    continue;
                };
                let link = entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned());
                let (dir, name) = match path.rsplit_once('/') {
                    Some((d, n)) => (d.to_string(), n.to_string()),
                    None => (String::new(), path.clone()),
                };
                let kind = match type_flag {
                    _ if name == ".wh..wh..opq" => {
                        path = dir;
                        EntryKind::OpaqueWhiteout
                    }
                    _ if name.starts_with(".wh.") => {
                        let target = &name[4..];
                        if matches!(target, "" | "." | "..") {
                            // A whiteout of the directory itself or of its parent.
                            summary.warnings.push(Warning::Escapes { path: raw });
                            continue;
                        }
                        path = if dir.is_empty() { target.to_string() } else { format!("{dir}/{target}") };
                        EntryKind::Whiteout
                    }
                    b'0' | b'\0' | b'7' => EntryKind::File,
                    b'5' => EntryKind::Dir,
                    b'2' => EntryKind::Symlink(link.unwrap_or_default()),
                    b'1' => match link.as_deref().and_then(normalize) {
                        Some(t) if !t.is_empty() => EntryKind::HardLink(t),
                        _ => {
                            summary.warnings.push(Warning::Escapes {
                                path: format!("{path} (hard link to {})", link.unwrap_or_default()),
                            });
                            continue;
                        }
                    },
                    b'3' => EntryKind::CharDevice,
                    b'4' => EntryKind::BlockDevice,
                    b'6' => EntryKind::Fifo,
                    _ => {
                        summary.warnings.push(Warning::Unsupported { path, type_flag });
                        continue;
                    }
                };
                if kind != EntryKind::OpaqueWhiteout && !seen.insert(path.clone()) && !path.is_empty() {
                    summary.warnings.push(Warning::Duplicate { path: path.clone() });
                }
                let e = LayerEntry {
                    path,
                    kind,
                    mode,
                    uid,
                    gid,
                    size: if type_flag == b'0' || type_flag == b'\0' || type_flag == b'7' { size } else { 0 },
                    mtime,
                    offset,
                };
                visit(&e, &mut entry).map_err(|err| classify(err, offset))?;
                // Unread data is skipped by the tar reader; a short stream shows up there.
                summary.entries += 1;
            }
        }
        // Drain what follows the end marker so digest verification at EOF runs.
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| classify(e, last_offset))?;
        summary.stream_bytes = rest.n;
        Ok(summary)
    }
}

fn classify(e: io::Error, offset: u64) -> LayerError {
    if crate::blob::BlobError::from_io(&e).is_some() {
        return LayerError::Io(e);
    }
    let msg = e.to_string();
    if e.kind() == io::ErrorKind::UnexpectedEof
        || msg.contains("unexpected EOF")
        || msg.contains("failed to read entire block")
        || msg.contains("size mismatch")
    {
        LayerError::Truncated { offset, detail: msg }
    } else if e.kind() == io::ErrorKind::InvalidData
        && (msg.contains("decompression bomb")
            || msg.contains("corrupt")
            || msg.contains("deflate")
            || msg.contains("gzip"))
    {
        LayerError::Io(e)
    } else if e.kind() == io::ErrorKind::Other && msg.contains("checksum")
        || msg.contains("numeric field")
        || msg.contains("archive header")
    {
        LayerError::Corrupt { offset, detail: msg }
    } else {
        LayerError::Io(e)
    }
}
