//! Layers decompressed ahead, on another core, for sinks that write one stream.
//!
//! A docker archive is one tar file: its layer members must go in layer order, so a
//! plain copy decompresses one layer at a time and leaves the second core to the
//! pipeline's lighter stages. [`Ahead`] lets a helper thread decompress later layers
//! at the same time into spool files in the destination's directory (see
//! [`crate::transport::Sink::spool_dir`]), while the copy's own thread writes the
//! current layer straight into the archive. When the copy reaches a layer the helper
//! took, it appends the spool's bytes as they arrive, so the spool is read while it is
//! still being written.
//!
//! Claims: the layers to decompress are numbered in layer order. The copy's thread
//! takes layer 0 itself and, in order, every layer nobody has claimed yet when it gets
//! there; the helper always claims the lowest unclaimed one. Which layer goes through a
//! spool depends on timing, but the bytes appended are the same either way, so the
//! archive is byte-identical to a serial copy's. Spool files are unnamed (`O_TMPFILE`
//! where the filesystem has it), so nothing is left behind whatever happens.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::layer::Encoded;
use crate::oci::Digest;

/// The plan and the claims of one image's layers (see the module docs).
pub(super) struct Ahead {
    /// The layers to decompress, in layer order.
    order: Vec<Digest>,
    dir: PathBuf,
    claims: Mutex<Claims>,
    stop: AtomicBool,
}

struct Claims {
    /// The lowest layer nobody has claimed.
    next: usize,
    /// The spools of the layers the helper claimed.
    spools: Vec<Option<Arc<Spool>>>,
}

impl Ahead {
    /// Plans decompressing `order` (layer order) with spools in `dir`; `None` when a
    /// helper cannot pay: fewer than two layers, or one core.
    pub(super) fn plan(order: Vec<Digest>, dir: Option<PathBuf>) -> Option<Ahead> {
        let dir = dir?;
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        if order.len() < 2 || cores < 2 {
            return None;
        }
        let spools = vec![None; order.len()];
        // Layer 0 is the copy thread's: it starts right away, before the helper.
        Some(Ahead { order, dir, claims: Mutex::new(Claims { next: 1, spools }), stop: AtomicBool::new(false) })
    }

    fn claims(&self) -> MutexGuard<'_, Claims> {
        self.claims.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// For the copy's thread, reaching `digest` in layer order: the spool to append when
    /// the helper has claimed it, `None` when the copy is to decompress it itself (the
    /// claim is then the copy's).
    pub(super) fn claim(&self, digest: &Digest) -> Option<Arc<Spool>> {
        let k = self.order.iter().position(|d| d == digest)?;
        let mut c = self.claims();
        if k < c.next {
            c.spools[k].clone()
        } else {
            c.next = k + 1;
            None
        }
    }

    /// The helper: claims the lowest unclaimed layer, decompresses it into a spool with
    /// `produce`, and again, until none is left or [`Ahead::stop`] is called. A spool
    /// that cannot be created ends the helping; the copy then does the rest itself.
    pub(super) fn help(&self, produce: impl Fn(&Digest, &mut (dyn Write + Send)) -> io::Result<Encoded>) {
        while !self.stop.load(Ordering::SeqCst) {
            let Ok(file) = tempfile::tempfile_in(&self.dir) else { return };
            let spool = Arc::new(Spool::new(file));
            let k = {
                let mut c = self.claims();
                if c.next >= self.order.len() || self.stop.load(Ordering::SeqCst) {
                    return;
                }
                let k = c.next;
                c.next += 1;
                c.spools[k] = Some(Arc::clone(&spool));
                k
            };
            let mut w = SpoolWriter { spool: &spool, stop: &self.stop };
            let r = produce(&self.order[k], &mut w);
            spool.finish(r);
        }
    }

    /// Tells the helper to stop: no new claims, and its current layer fails at its next
    /// write. Called when the copy ends, successfully or not.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A layer being decompressed into a file by the helper, readable while it grows.
pub(super) struct Spool {
    file: File,
    state: Mutex<SpoolState>,
    grown: Condvar,
}

struct SpoolState {
    /// Bytes written so far.
    written: u64,
    /// The producer's result, once it has finished.
    done: Option<io::Result<Encoded>>,
}

impl Spool {
    fn new(file: File) -> Spool {
        Spool { file, state: Mutex::new(SpoolState { written: 0, done: None }), grown: Condvar::new() }
    }

    fn state(&self) -> MutexGuard<'_, SpoolState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn grew(&self, n: usize) {
        self.state().written += n as u64;
        self.grown.notify_all();
    }

    fn finish(&self, r: io::Result<Encoded>) {
        self.state().done = Some(r);
        self.grown.notify_all();
    }

    /// Copies the spool into `w` as it grows, in chunks of up to 1 MiB, and returns the
    /// producer's result once every byte is in `w` (or its error as soon as it fails).
    /// Takes the result: call it once.
    pub(super) fn drain_into(&self, w: &mut dyn Write) -> io::Result<Encoded> {
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0u64;
        loop {
            let (avail, finished) = {
                let mut st = self.state();
                while st.written == pos && st.done.is_none() {
                    st = self.grown.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                match &st.done {
                    Some(Err(_)) => {
                        return match st.done.take() {
                            Some(Err(e)) => Err(e),
                            _ => unreachable!("matched just above"),
                        };
                    }
                    Some(Ok(enc)) if st.written == pos => (pos, Some(*enc)),
                    _ => (st.written, None),
                }
            };
            if let Some(enc) = finished {
                return Ok(enc);
            }
            while pos < avail {
                let want = usize::try_from(avail - pos).unwrap_or(usize::MAX).min(buf.len());
                let n = self.file.read_at(&mut buf[..want], pos)?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "spool file shorter than written"));
                }
                w.write_all(&buf[..n])?;
                pos += n as u64;
            }
        }
    }
}

/// The helper's writer into a spool: appends, publishes the growth, and fails once the
/// copy has stopped.
struct SpoolWriter<'a> {
    spool: &'a Spool,
    stop: &'a AtomicBool,
}

impl Write for SpoolWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(io::Error::other("copy stopped"));
        }
        let n = (&self.spool.file).write(buf)?;
        self.spool.grew(n);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Compression;

    fn enc(n: u64) -> Encoded {
        let d = Digest::of(&[]);
        Encoded { diff_id: d, uncompressed_size: n, digest: d, size: n, compression: Compression::None }
    }

    #[test]
    fn the_copy_takes_layer_zero_and_what_the_helper_left() {
        let order: Vec<Digest> = (0u8..4).map(|i| Digest::of(&[i])).collect();
        let dir = tempfile::tempdir().unwrap();
        let ahead = Ahead::plan(order.clone(), Some(dir.path().to_path_buf())).unwrap();
        assert!(ahead.claim(&order[0]).is_none(), "layer 0 is the copy's");
        // The helper takes layers 1 and 2 (it would take 3 too; stop it after two).
        let done = std::sync::atomic::AtomicUsize::new(0);
        ahead.help(|d, w| {
            w.write_all(d.hex().as_bytes())?;
            if done.fetch_add(1, Ordering::SeqCst) == 1 {
                ahead.stop();
            }
            Ok(enc(64))
        });
        for k in [1, 2] {
            let spool = ahead.claim(&order[k]).expect("the helper's");
            let mut out = Vec::new();
            assert_eq!(spool.drain_into(&mut out).unwrap(), enc(64));
            assert_eq!(out, order[k].hex().as_bytes());
        }
        assert!(ahead.claim(&order[3]).is_none(), "left to the copy");
        assert!(Ahead::plan(order[..1].to_vec(), Some(dir.path().to_path_buf())).is_none());
        assert!(Ahead::plan(order, None).is_none());
    }

    #[test]
    fn a_spool_is_read_while_it_grows_and_errors_pass_through() {
        let spool = Spool::new(tempfile::tempfile().unwrap());
        let stop = AtomicBool::new(false);
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut w = SpoolWriter { spool: &spool, stop: &stop };
                for part in data.chunks(70_000) {
                    w.write_all(part).unwrap();
                    std::thread::yield_now();
                }
                spool.finish(Ok(enc(data.len() as u64)));
            });
            assert_eq!(spool.drain_into(&mut out).unwrap(), enc(data.len() as u64));
        });
        assert!(out == data);

        let spool = Spool::new(tempfile::tempfile().unwrap());
        (&spool.file).write_all(b"partial").unwrap();
        spool.grew(7);
        spool.finish(Err(io::Error::other("corrupt source")));
        let err = spool.drain_into(&mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "corrupt source");
        stop.store(true, Ordering::SeqCst);
        assert!(SpoolWriter { spool: &spool, stop: &stop }.write(b"x").is_err(), "stopped");
    }
}
