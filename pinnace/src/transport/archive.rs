//! Tar files as image stores: an index over an archive on disk for random access to its
//! members (read side), and a writer for archives whose members may be produced on the
//! fly (write side). Shared by the OCI-archive and docker-archive transports.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::blob::AtomicFile;
use crate::layer::reader::normalize;

use super::TransportError;

/// Where each member of a tar file lies, found by one pass over its headers (the data
/// is skipped by seeking, so indexing a 1 GB archive reads a few KB).
#[derive(Debug)]
pub struct TarIndex {
    file: PathBuf,
    members: HashMap<String, Member>,
}

#[derive(Debug, Clone)]
enum Member {
    Data { offset: u64, size: u64 },
    Link(String),
}

impl TarIndex {
    /// Indexes the archive at `file`.
    pub fn scan(file: &Path) -> Result<TarIndex, TransportError> {
        let f = File::open(file).map_err(TransportError::io(file))?;
        let malformed = |why: String| TransportError::Malformed {
            image: file.display().to_string(),
            why: format!("not a readable tar archive: {why}"),
        };
        let mut ar = tar::Archive::new(f);
        let mut members = HashMap::new();
        for e in ar.entries_with_seek().map_err(|e| malformed(e.to_string()))? {
            let e = e.map_err(|e| malformed(e.to_string()))?;
            let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let Some(name) = normalize(&raw) else { continue };
            let kind = e.header().entry_type();
            let m = if kind.is_file() {
                Member::Data { offset: e.raw_file_position(), size: e.size() }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = e.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                let joined = if kind.is_symlink() && !target.starts_with('/') {
                    match name.rsplit_once('/') {
                        Some((dir, _)) => format!("{dir}/{target}"),
                        None => target,
                    }
                } else {
                    target
                };
                match normalize(&joined) {
                    Some(t) => Member::Link(t),
                    None => continue,
                }
            } else {
                continue;
            };
            members.insert(name, m);
        }
        Ok(TarIndex { file: file.to_path_buf(), members })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Offset and size of a member, following links inside the archive.
    pub fn locate(&self, name: &str) -> Option<(u64, u64)> {
        let mut name = normalize(name)?;
        for _ in 0..8 {
            match self.members.get(&name)? {
                Member::Data { offset, size } => return Some((*offset, *size)),
                Member::Link(t) => name = t.clone(),
            }
        }
        None
    }

    /// Whether a member exists.
    pub fn contains(&self, name: &str) -> bool {
        self.locate(name).is_some()
    }

    /// Opens a member for reading (each call opens its own file handle, so several
    /// members can be read at once from different threads).
    pub fn open(&self, name: &str) -> io::Result<Option<(u64, io::Take<File>)>> {
        let Some((offset, size)) = self.locate(name) else { return Ok(None) };
        let mut f = File::open(&self.file)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(Some((size, f.take(size))))
    }

    /// Reads a small member whole, refusing more than `limit` bytes.
    pub fn read_small(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, TransportError> {
        let io_err = TransportError::io(&self.file);
        match self.open(name).map_err(io_err)? {
            None => Ok(None),
            Some((size, _)) if size > limit => Err(TransportError::Malformed {
                image: self.file.display().to_string(),
                why: format!("{name} is {size} bytes; refusing metadata over {limit} bytes"),
            }),
            Some((size, mut r)) => {
                let mut v = Vec::with_capacity(size as usize);
                r.read_to_end(&mut v).map_err(TransportError::io(&self.file))?;
                Ok(Some(v))
            }
        }
    }
}

/// Writes a tar archive atomically (temp file beside the target, renamed on `finish`).
/// Members whose size or name is known only after their data is written are supported
/// by writing a placeholder header and patching it once the data is in place.
pub struct TarFileWriter {
    out: AtomicFile,
    pos: u64,
    mtime: u64,
}

impl TarFileWriter {
    /// Starts an archive that will replace `target`.
    pub fn create(target: &Path) -> Result<TarFileWriter, TransportError> {
        if let Some(dir) = target.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(TransportError::io(dir))?;
            }
        }
        if let Some(dir) = target.parent() {
            crate::blob::sweep_stale(if dir.as_os_str().is_empty() { Path::new(".") } else { dir });
        }
        let out = AtomicFile::create(target).map_err(TransportError::io(target))?;
        Ok(TarFileWriter { out, pos: 0, mtime: crate::layer::writer::source_date_epoch() })
    }

    fn err(&self) -> impl FnOnce(io::Error) -> TransportError {
        TransportError::io(self.out.target().to_path_buf())
    }

    fn header(&self, name: &str, size: u64, dir: bool) -> io::Result<tar::Header> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)?;
        h.set_entry_type(if dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        h.set_cksum();
        Ok(h)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; 512][..512 - rem])?;
            self.pos += (512 - rem) as u64;
        }
        Ok(())
    }

    /// Adds a directory member.
    pub fn add_dir(&mut self, name: &str) -> Result<(), TransportError> {
        let h = self.header(&format!("{}/", name.trim_end_matches('/')), 0, true).map_err(self.err())?;
        self.out.write_all(h.as_bytes()).map_err(self.err())?;
        self.pos += 512;
        Ok(())
    }

    /// Adds a member from bytes.
    pub fn add_bytes(&mut self, name: &str, data: &[u8]) -> Result<(), TransportError> {
        self.add_reader(name, data.len() as u64, &mut &data[..])
    }

    /// Adds a member of known size from a reader, which must yield exactly `size` bytes.
    pub fn add_reader(&mut self, name: &str, size: u64, data: &mut dyn Read) -> Result<(), TransportError> {
        let h = self.header(name, size, false).map_err(self.err())?;
        self.out.write_all(h.as_bytes()).map_err(self.err())?;
        self.pos += 512;
        let n = crate::blob::copy_large(&mut data.take(size), &mut self.out).map_err(self.err())?;
        if n != size {
            return Err(self.err()(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: expected {size} bytes, source gave {n}"),
            )));
        }
        // A source that yields more than promised is also wrong; drain-check one byte.
        let mut extra = [0u8; 1];
        if data.read(&mut extra).map_err(self.err())? != 0 {
            return Err(self.err()(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: source gave more than {size} bytes"),
            )));
        }
        self.pos += size;
        self.pad(size).map_err(self.err())
    }

    /// Adds a member produced by `produce`, which writes the data and returns a value
    /// from which `name_of` derives the member's name (e.g. a digest known only at the end).
    pub fn add_produced<T>(
        &mut self,
        produce: &mut dyn FnMut(&mut (dyn Write + Send)) -> io::Result<T>,
        name_of: impl FnOnce(&T) -> String,
    ) -> Result<(T, String), TransportError> {
        let start = self.pos;
        self.out.write_all(&[0u8; 512]).map_err(self.err())?;
        let target = self.out.target().to_path_buf();
        let mut counter = CountingWriter { inner: &mut self.out, n: 0 };
        let value = produce(&mut counter).map_err(TransportError::io(target))?;
        let size = counter.n;
        self.pos += 512 + size;
        self.pad(size).map_err(self.err())?;
        let name = name_of(&value);
        let h = self.header(&name, size, false).map_err(self.err())?;
        let f = self.out.file();
        f.flush().map_err(TransportError::io(PathBuf::new()))?;
        let patch = (|| {
            f.seek(SeekFrom::Start(start))?;
            f.write_all(h.as_bytes())?;
            f.seek(SeekFrom::End(0))?;
            Ok::<(), io::Error>(())
        })();
        patch.map_err(self.err())?;
        Ok((value, name))
    }

    /// Writes the end-of-archive blocks and renames the archive into place.
    pub fn finish(mut self) -> Result<(), TransportError> {
        self.out.write_all(&[0u8; 1024]).map_err(self.err())?;
        let e = self.err();
        self.out.commit().map_err(e)
    }
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produced_members_get_patched_headers_and_index_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.tar");
        let mut w = TarFileWriter::create(&target).unwrap();
        w.add_dir("blobs").unwrap();
        w.add_bytes("oci-layout", b"{}").unwrap();
        let (n, name) = w
            .add_produced(
                &mut |out: &mut (dyn Write + Send)| {
                    out.write_all(&[9u8; 1000])?;
                    Ok(1000u64)
                },
                |n| format!("blobs/x{n}"),
            )
            .unwrap();
        assert_eq!((n, name.as_str()), (1000, "blobs/x1000"));
        w.add_bytes("after", b"tail").unwrap();
        assert!(!target.exists(), "visible before finish");
        w.finish().unwrap();
        let idx = TarIndex::scan(&target).unwrap();
        assert_eq!(idx.read_small("blobs/x1000", 4096).unwrap().unwrap(), vec![9u8; 1000]);
        assert_eq!(idx.read_small("./after", 10).unwrap().unwrap(), b"tail");
        assert!(idx.read_small("blobs/x1000", 10).is_err(), "limit ignored");
        let out = std::process::Command::new("tar").arg("-tf").arg(&target).output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "blobs/\noci-layout\nblobs/x1000\nafter\n");
    }
}
