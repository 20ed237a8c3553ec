//! [`DirectFile`]: a large blob written once, front to back, with direct I/O.
//!
//! Why (issue 9, cold pull): a blob written through the page cache costs a kernel copy
//! into freshly allocated page-cache pages, and on the VMs pinnace is benchmarked on
//! (free pages handed back to the host by virtio-balloon free page reporting) every fresh
//! page is a host fault: 1 MiB `write(2)` calls took 3 to 4.5 ms there, slower than the
//! disk. With `O_DIRECT` the bytes go from one reused, aligned buffer to the device, no
//! page cache is filled, and the fsync at commit has only metadata and the device cache
//! left to flush.
//!
//! Contract: the same as [`AtomicFile`]'s. Nothing is visible under the target name until
//! [`DirectFile::commit`], which writes what is buffered, fsyncs (direct I/O alone is not
//! durable: block allocation and the device's cache need the fsync), renames and fsyncs
//! the directory. Dropped without commit, the temporary file is removed. Where the
//! filesystem refuses direct I/O (tmpfs, some FUSE and network filesystems) or a direct
//! write fails with `EINVAL`, the file silently continues through the page cache.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::AtomicFile;

/// Alignment of the buffer, of every direct write's length and of its file offset: the
/// largest logical block size of common devices.
const ALIGN: usize = 4096;

/// Bytes gathered before each direct write.
const CHUNK: usize = 4 << 20;

/// A temporary file renamed into place at [`DirectFile::commit`] (see the module docs).
pub struct DirectFile {
    file: AtomicFile,
    /// `CHUNK + ALIGN` bytes; the aligned window starts at `start`.
    buf: Vec<u8>,
    start: usize,
    /// Bytes pending in the window.
    len: usize,
    direct: bool,
}

impl DirectFile {
    /// Starts writing what will become `target` (see [`AtomicFile::create`]).
    pub fn create(target: &Path) -> io::Result<DirectFile> {
        let mut file = AtomicFile::create(target)?;
        let direct = set_direct(file.file(), true).is_ok();
        let buf = vec![0u8; CHUNK + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Ok(DirectFile { file, buf, start, len: 0, direct })
    }

    /// Renames to another target than the one given at creation.
    pub fn set_target(&mut self, target: PathBuf) {
        self.file.set_target(target);
    }

    /// Whether writes still bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Copies everything `r` yields, reading straight into the aligned buffer (no copy
    /// in between); returns the bytes copied.
    pub fn fill_from(&mut self, r: &mut dyn Read) -> io::Result<u64> {
        let mut n = 0u64;
        loop {
            if self.len == CHUNK {
                self.write_out(CHUNK)?;
            }
            let window = &mut self.buf[self.start + self.len..self.start + CHUNK];
            match r.read(window) {
                Ok(0) => return Ok(n),
                Ok(k) => {
                    self.len += k;
                    n += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the buffered bytes, fsyncs, renames over the target and fsyncs the
    /// directory (see [`AtomicFile::commit`]).
    pub fn commit(mut self) -> io::Result<()> {
        // The aligned head directly, then the tail (shorter than a block) through the
        // page cache: a direct write's length must be a multiple of the block size.
        let head = self.len / ALIGN * ALIGN;
        self.write_out(head)?;
        if self.len > 0 {
            self.go_buffered()?;
            self.write_out(self.len)?;
        }
        self.file.commit()
    }

    /// Writes the first `n` pending bytes (a multiple of `ALIGN` while direct) and keeps
    /// the rest at the front of the window.
    fn write_out(&mut self, n: usize) -> io::Result<()> {
        let mut done = 0;
        while done < n {
            let w = &self.buf[self.start + done..self.start + n];
            match self.file.file().write(w) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => {
                    done += k;
                    // A short direct write leaves the offset unaligned: the rest goes
                    // through the page cache.
                    if self.direct && done % ALIGN != 0 {
                        self.go_buffered()?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The filesystem or device refused the alignment: nothing was written.
                Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => self.go_buffered()?,
                Err(e) => return Err(e),
            }
        }
        self.buf.copy_within(self.start + n..self.start + self.len, self.start);
        self.len -= n;
        Ok(())
    }

    fn go_buffered(&mut self) -> io::Result<()> {
        if self.direct {
            set_direct(self.file.file(), false)?;
            self.direct = false;
        }
        Ok(())
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.len == CHUNK {
            self.write_out(CHUNK)?;
        }
        let k = data.len().min(CHUNK - self.len);
        self.buf[self.start + self.len..self.start + self.len + k].copy_from_slice(&data[..k]);
        self.len += k;
        Ok(k)
    }
    /// Does not write the partial chunk (a direct write needs whole blocks); `commit` does.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sets or clears `O_DIRECT` on an open file (Linux lets `F_SETFL` change it; a
/// filesystem without direct I/O refuses with `EINVAL`).
fn set_direct(f: &std::fs::File, on: bool) -> io::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: `fd` is open for the duration of both calls, which read no memory of ours.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on { flags | libc::O_DIRECT } else { flags & !libc::O_DIRECT };
        if libc::fcntl(fd, libc::F_SETFL, flags) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn every_length_round_trips_and_appears_only_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        for n in [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + ALIGN + 7] {
            let d = data(n);
            let target = dir.path().join(format!("blob-{n}"));
            let mut f = DirectFile::create(&dir.path().join("pending")).unwrap();
            f.set_target(target.clone());
            // Odd-sized reads, so the window fills unevenly.
            let mut r = io::BufReader::with_capacity(100_003, &d[..]);
            assert_eq!(f.fill_from(&mut r).unwrap(), n as u64);
            assert!(!target.exists(), "{n}: visible before commit");
            f.commit().unwrap();
            assert!(fs::read(&target).unwrap() == d, "{n}: content differs");
        }
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(names.iter().all(|n| n.to_string_lossy().starts_with("blob-")), "{names:?}");
    }

    #[test]
    fn write_trait_and_fill_from_mix() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("b");
        let d = data(CHUNK * 2 + 12345);
        let mut f = DirectFile::create(&target).unwrap();
        f.write_all(&d[..777]).unwrap();
        f.fill_from(&mut &d[777..CHUNK + 5]).unwrap();
        f.write_all(&d[CHUNK + 5..]).unwrap();
        f.commit().unwrap();
        assert!(fs::read(&target).unwrap() == d);
    }

    #[test]
    fn dropped_without_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("b");
        let mut f = DirectFile::create(&target).unwrap();
        f.fill_from(&mut &data(CHUNK + 3)[..]).unwrap();
        drop(f);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_failing_reader_fails_the_fill() {
        struct Fails(usize);
        impl Read for Fails {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("cut off"));
                }
                let k = buf.len().min(self.0);
                self.0 -= k;
                Ok(k)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let mut f = DirectFile::create(&dir.path().join("b")).unwrap();
        assert!(f.fill_from(&mut Fails(CHUNK * 2 + 5)).is_err());
    }

    #[test]
    fn switching_to_the_page_cache_mid_file_keeps_every_byte() {
        // What happens after a direct write failed with EINVAL or came back short.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("b");
        let d = data(3 * CHUNK + 99);
        let mut f = DirectFile::create(&target).unwrap();
        f.fill_from(&mut &d[..CHUNK + 10]).unwrap();
        f.go_buffered().unwrap();
        assert!(!f.is_direct());
        f.fill_from(&mut &d[CHUNK + 10..]).unwrap();
        f.commit().unwrap();
        assert!(fs::read(&target).unwrap() == d);
    }

    #[test]
    fn falls_back_to_the_page_cache_where_direct_io_is_refused() {
        // /dev/shm is tmpfs, which refuses O_DIRECT on older kernels; either way the file
        // must come out right.
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else { return };
        let target = dir.path().join("b");
        let d = data(CHUNK + ALIGN + 3);
        let mut f = DirectFile::create(&target).unwrap();
        f.fill_from(&mut &d[..]).unwrap();
        f.commit().unwrap();
        assert!(fs::read(&target).unwrap() == d);
    }
}
