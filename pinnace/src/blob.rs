//! Verified blob streams and atomic, content-addressed writes.
//!
//! Contract: every byte pinnace reads from an image passes through a [`VerifyReader`],
//! which fails the read that would exceed the expected size and the read that reaches
//! the end with a wrong size or digest. Consumers therefore see an error before they
//! see a successful end of stream. Every file pinnace writes goes through an
//! [`AtomicFile`]: a temporary file in the destination directory, fsynced, then renamed
//! over the target, so an interrupted command leaves the previous file intact.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::oci::{Digest, Hasher};

mod direct;
pub use direct::DirectFile;

/// A blob did not match what its descriptor promised.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BlobError {
    /// The content hashes to another digest.
    #[error("blob {expected} is corrupt: its content hashes to {actual}; the source is damaged or was changed, fetch or rebuild it")]
    Digest {
        /// The digest the descriptor names.
        expected: Digest,
        /// What the content hashes to.
        actual: Digest,
    },
    /// The content has another length.
    #[error("blob {expected} has the wrong size: expected {expected_size} bytes, got {actual_size}{}", if *.truncated { " (truncated)" } else { " or more" })]
    Size {
        /// The digest the descriptor names.
        expected: Digest,
        /// The size the descriptor names.
        expected_size: u64,
        /// What was read before stopping.
        actual_size: u64,
        /// Whether the stream ended early (true) or ran past the size (false).
        truncated: bool,
    },
}

impl BlobError {
    /// Finds a `BlobError` carried inside an `io::Error` from a [`VerifyReader`].
    pub fn from_io(e: &io::Error) -> Option<&BlobError> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<BlobError>())
    }
}

/// A reader that checks size and digest while it reads (see the module contract).
pub struct VerifyReader<R> {
    inner: R,
    expected: Digest,
    expected_size: Option<u64>,
    hasher: Hasher,
    done: bool,
}

impl<R: Read> VerifyReader<R> {
    /// Verifies `inner` against `digest` and `size` (`None` when the size is unknown, as
    /// for a diff_id, whose uncompressed length no descriptor records).
    pub fn new(inner: R, digest: Digest, size: Option<u64>) -> Self {
        VerifyReader { inner, expected: digest, expected_size: size, hasher: Hasher::new(), done: false }
    }

    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.hasher.len()
    }

    fn finish_check(&mut self) -> io::Result<()> {
        self.done = true;
        let n = self.hasher.len();
        if let Some(size) = self.expected_size {
            if n != size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    BlobError::Size {
                        expected: self.expected,
                        expected_size: size,
                        actual_size: n,
                        truncated: n < size,
                    },
                ));
            }
        }
        let (actual, _) = std::mem::take(&mut self.hasher).finish();
        if actual != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                BlobError::Digest { expected: self.expected, actual },
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for VerifyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        // Never ask for more than one byte past the expected size: enough to detect an
        // over-long blob without reading an unbounded stream.
        let want = match self.expected_size {
            Some(size) => {
                let left = size.saturating_sub(self.hasher.len()).saturating_add(1);
                buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))
            }
            None => buf.len(),
        };
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            self.finish_check()?;
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        if let Some(size) = self.expected_size {
            if self.hasher.len() > size {
                self.done = true;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    BlobError::Size {
                        expected: self.expected,
                        expected_size: size,
                        actual_size: self.hasher.len(),
                        truncated: false,
                    },
                ));
            }
        }
        Ok(n)
    }
}

/// Reads a whole small blob (manifest, config) through verification, refusing more than
/// `limit` bytes so a hostile descriptor cannot make pinnace allocate without bound.
pub fn read_verified<R: Read>(inner: R, digest: Digest, size: u64, limit: u64) -> io::Result<Vec<u8>> {
    if size > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("blob {digest} claims {size} bytes; metadata larger than {limit} bytes is refused"),
        ));
    }
    let mut out = Vec::with_capacity(size as usize);
    VerifyReader::new(inner, digest, Some(size)).read_to_end(&mut out)?;
    Ok(out)
}

/// Largest manifest, index or config pinnace reads (the distribution spec suggests 4 MiB).
pub const METADATA_LIMIT: u64 = 16 << 20;

/// A file written under a temporary name in the target's directory, then fsynced and
/// renamed into place by [`AtomicFile::commit`]. Dropped without commit, it is removed.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
    /// Bytes written since writeback of the file was last started.
    unsynced: u64,
    /// Bytes written in all (the offset of the next write when writing sequentially).
    written: u64,
}

/// Writeback of a file being written is started every this many bytes, so the fsync at
/// commit only waits for the tail instead of the whole file.
const WRITEBACK_STEP: u64 = 16 << 20;

impl AtomicFile {
    /// Starts writing what will become `target`.
    pub fn create(target: &Path) -> io::Result<AtomicFile> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.pid{}.", std::process::id()))
            .suffix(TMP_SUFFIX)
            .tempfile_in(&dir)?;
        Ok(AtomicFile { tmp, target: target.to_path_buf(), unsynced: 0, written: 0 })
    }

    /// The open file (for seeking back to patch headers).
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames to another target than the one given at creation (content-addressed blobs
    /// learn their name only at the end of the stream).
    pub fn set_target(&mut self, target: PathBuf) {
        self.target = target;
    }

    /// fsyncs the data, renames over the target, and fsyncs the directory.
    pub fn commit(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        let target = self.target;
        self.tmp.persist(&target).map_err(|e| e.error)?;
        if let Some(dir) = target.parent() {
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tmp.write(buf)?;
        self.written += n as u64;
        self.unsynced += n as u64;
        if self.unsynced >= WRITEBACK_STEP {
            use std::os::fd::AsRawFd;
            let start = self.written - self.unsynced;
            // Starts writeback of what was just written without waiting for it (Linux
            // sync_file_range(2), SYNC_FILE_RANGE_WRITE); the durability guarantee stays
            // with the fsync in `commit`. Failure only loses the head start.
            // SAFETY: the fd is owned by `self.tmp` and open; the call reads no memory.
            unsafe {
                libc::sync_file_range(
                    self.tmp.as_file().as_raw_fd(),
                    start as libc::off64_t,
                    self.unsynced as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.unsynced = 0;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// The suffix of every temporary file or directory pinnace creates next to a destination.
pub const TMP_SUFFIX: &str = ".pinnace-tmp";

/// Removes temporary files and directories that a killed pinnace left in `dir`: names
/// `.NAME.pidPID.X.pinnace-tmp` whose process no longer exists. Entries of live processes
/// (a concurrent pinnace) and anything else are left alone; errors are ignored, since a
/// leftover costs only disk space.
pub fn sweep_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let p = e.path();
        let _ = match e.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&p),
            Ok(_) => fs::remove_file(&p),
            Err(_) => continue,
        };
    }
}

/// The process that owns a temporary name, if it is one of pinnace's.
fn owner_pid(name: &str) -> Option<u32> {
    let head = name.strip_prefix('.')?.strip_suffix(TMP_SUFFIX)?;
    let (head, _unique) = head.rsplit_once('.')?;
    let (_, pid) = head.rsplit_once(".pid")?;
    pid.parse().ok()
}

/// Copies `r` to `w` in 1 MiB chunks (std's `io::copy` uses 8 KiB through `dyn` readers
/// and writers, which costs a system call per 8 KiB on large blobs).
pub fn copy_large(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
}

/// Copies `r` to `w` with reading (and whatever the reader does: decompression, digest
/// checks) on a second thread, so it overlaps with what the writer does (hashing,
/// compressing, writing).
pub fn copy_pipelined<R: Read + Send>(r: R, w: &mut dyn Write) -> io::Result<u64> {
    with_read_ahead(r, |ahead| copy_large(ahead, w))
}

/// Calls `f` with a reader that yields `r`'s bytes, read ahead on a second thread (at
/// most four 1 MiB chunks in flight, buffers recycled). `r`'s errors, verification
/// failures included, reach `f` in order, after the bytes read before them. The reader
/// `f` gets is `Send`, so it can feed another read-ahead stage.
pub fn with_read_ahead<R: Read + Send, T>(mut r: R, f: impl FnOnce(&mut (dyn Read + Send)) -> T) -> T {
    use std::sync::mpsc::sync_channel;
    const CHUNK: usize = 1 << 20;
    std::thread::scope(|s| {
        let (full_tx, full_rx) = sync_channel::<io::Result<(Vec<u8>, usize)>>(4);
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(6);
        for _ in 0..5 {
            let _ = empty_tx.send(vec![0u8; CHUNK]);
        }
        s.spawn(move || loop {
            let Ok(mut buf) = empty_rx.recv() else { return };
            let mut filled = 0;
            let res = loop {
                match r.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(k) => {
                        filled += k;
                        if filled == buf.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            // Bytes read before an error go first, then the error.
            let (chunk, err) = match res {
                Ok(()) => (Some((buf, filled)), None),
                Err(e) if filled > 0 => (Some((buf, filled)), Some(e)),
                Err(e) => (None, Some(e)),
            };
            let end = err.is_some() || chunk.as_ref().is_some_and(|c| c.1 == 0);
            if let Some(c) = chunk {
                if full_tx.send(Ok(c)).is_err() {
                    return;
                }
            }
            if let Some(e) = err {
                let _ = full_tx.send(Err(e));
            }
            if end {
                return;
            }
        });
        let mut ahead = ReadAhead { full: full_rx, empty: empty_tx, cur: Vec::new(), pos: 0, len: 0, done: false };
        f(&mut ahead)
        // Dropping `ahead` closes the channels; the reader thread then stops and is joined.
    })
}

struct ReadAhead {
    full: std::sync::mpsc::Receiver<io::Result<(Vec<u8>, usize)>>,
    empty: std::sync::mpsc::SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    len: usize,
    done: bool,
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            if self.done {
                return Ok(0);
            }
            let (buf, len) = match self.full.recv() {
                Ok(m) => m?,
                Err(_) => return Err(io::Error::other("read-ahead thread stopped")),
            };
            let old = std::mem::replace(&mut self.cur, buf);
            if !old.is_empty() {
                let _ = self.empty.send(old);
            }
            (self.pos, self.len) = (0, len);
            if len == 0 {
                self.done = true;
            }
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Writes `bytes` to `target` atomically.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(target)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Whether the file at `path` exists with exactly `size` bytes and hashes to `digest`.
pub fn file_matches(path: &Path, digest: Digest, size: u64) -> bool {
    match fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == size => {}
        _ => return false,
    }
    let Ok(f) = File::open(path) else { return false };
    io::copy(&mut VerifyReader::new(io::BufReader::with_capacity(1 << 20, f), digest, Some(size)), &mut io::sink())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8], d: Digest, size: Option<u64>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        VerifyReader::new(data, d, size).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn verifies_digest_and_size() {
        let data = b"some blob content".to_vec();
        let d = Digest::of(&data);
        assert_eq!(read_all(&data, d, Some(data.len() as u64)).unwrap(), data);
        assert_eq!(read_all(&data, d, None).unwrap(), data);

        let mut flipped = data.clone();
        flipped[3] ^= 1;
        let e = read_all(&flipped, d, Some(data.len() as u64)).unwrap_err();
        match BlobError::from_io(&e) {
            Some(BlobError::Digest { expected, actual }) => {
                assert_eq!(*expected, d);
                assert_eq!(*actual, Digest::of(&flipped));
            }
            other => panic!("{other:?}"),
        }
        let e = read_all(&data[..5], d, Some(data.len() as u64)).unwrap_err();
        assert!(matches!(BlobError::from_io(&e), Some(BlobError::Size { truncated: true, .. })));
        let mut longer = data.clone();
        longer.extend_from_slice(b"more");
        let e = read_all(&longer, d, Some(data.len() as u64)).unwrap_err();
        assert!(matches!(BlobError::from_io(&e), Some(BlobError::Size { truncated: false, .. })));
        assert!(e.to_string().contains(&d.to_string()));
    }

    #[test]
    fn metadata_limit_refuses_huge_claims() {
        let d = Digest::of(b"");
        assert!(read_verified(&b""[..], d, 1 << 40, METADATA_LIMIT).is_err());
    }

    #[test]
    fn atomic_file_replaces_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("index.json");
        write_atomic(&target, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&target).unwrap();
            f.write_all(b"new but abandoned").unwrap();
        }
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "temp file left behind");
        write_atomic(&target, b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert!(file_matches(&target, Digest::of(b"new"), 3));
        assert!(!file_matches(&target, Digest::of(b"old"), 3));
    }

    #[test]
    fn pipelined_copy_moves_every_byte_and_passes_errors() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut out = Vec::new();
        assert_eq!(copy_pipelined(&data[..], &mut out).unwrap(), data.len() as u64);
        assert_eq!(out, data);
        let d = Digest::of(&data);
        let mut out = Vec::new();
        let err =
            copy_pipelined(VerifyReader::new(&data[..4_000_000], d, Some(data.len() as u64)), &mut out).unwrap_err();
        assert!(matches!(BlobError::from_io(&err), Some(BlobError::Size { truncated: true, .. })), "{err}");
        let mut out = Vec::new();
        assert_eq!(copy_pipelined(&b""[..], &mut out).unwrap(), 0);
        let mut out = Vec::new();
        assert_eq!(copy_large(&mut &data[..], &mut out).unwrap(), data.len() as u64);
        assert_eq!(out, data);
    }

    #[test]
    fn read_ahead_delivers_bytes_before_errors_and_stops_when_dropped() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        let d = Digest::of(&data);
        // Truncated: every byte read arrives, then the size error.
        let got = with_read_ahead(VerifyReader::new(&data[..2_500_000], d, Some(data.len() as u64)), |r| {
            let mut v = Vec::new();
            let e = r.read_to_end(&mut v).unwrap_err();
            (v.len(), BlobError::from_io(&e).cloned())
        });
        assert_eq!(got.0, 2_500_000);
        assert!(matches!(got.1, Some(BlobError::Size { truncated: true, .. })));
        // A consumer that stops early does not hang the reader thread.
        let first = with_read_ahead(&data[..], |r| {
            let mut b = [0u8; 10];
            r.read_exact(&mut b).unwrap();
            b
        });
        assert_eq!(&first[..], &data[..10]);
    }

    #[test]
    fn stale_temp_files_of_dead_processes_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        // pid 0 never names a user process; our own pid is alive.
        let dead = dir.path().join(".index.json.pid0.abc123.pinnace-tmp");
        let dead_dir = dir.path().join(".out.pid0.7.pinnace-tmp");
        let live = dir.path().join(format!(".index.json.pid{}.xyz.pinnace-tmp", std::process::id()));
        let other = dir.path().join("index.json");
        fs::write(&dead, b"x").unwrap();
        fs::create_dir_all(dead_dir.join("blobs")).unwrap();
        fs::write(&live, b"x").unwrap();
        fs::write(&other, b"x").unwrap();
        assert_eq!(owner_pid(".a.b.pid42.r.pinnace-tmp"), Some(42));
        assert_eq!(owner_pid("a.pid42.r.pinnace-tmp"), None);
        sweep_stale(dir.path());
        assert!(!dead.exists() && !dead_dir.exists());
        assert!(live.exists() && other.exists());
    }

    proptest::proptest! {
        #[test]
        fn verify_reader_accepts_only_the_exact_content(data in proptest::collection::vec(proptest::num::u8::ANY, 0..2048), cut in 0usize..2048) {
            let d = Digest::of(&data);
            let cut = cut.min(data.len());
            let r = read_all(&data[..cut], d, Some(data.len() as u64));
            proptest::prop_assert_eq!(r.is_ok(), cut == data.len());
        }
    }
}
