//! A two-stage read pipeline for one layer: a producer thread reads a stream (the blob,
//! its digest check, decompression) into chunks and a bounded queue hands them to the
//! consumer (diff_id hash, tar walk, per-file sha256) on the caller's thread.
//!
//! Why: decompression and the hashes are each a large share of a layer's CPU time, and
//! an image usually has fewer big layers than cores or one layer that dominates (a JDK
//! on a base). Splitting every layer in two keeps the cores busy; the queue bounds the
//! memory at [`QUEUE`] chunks of [`CHUNK`] bytes per layer.
//!
//! Errors keep their identity: the producer's `io::Error` (digest mismatch, corrupt gzip,
//! decompression bomb) is handed to the consumer after the bytes read before it, so
//! downcasts ([`crate::blob::BlobError::from_io`]) and tar offsets are as without the
//! pipeline. End of stream is an explicit empty chunk: a producer that stops without it
//! is reported as an error, never taken for a clean end.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes per chunk.
pub(super) const CHUNK: usize = 256 * 1024;
/// Chunks in flight per layer.
pub(super) const QUEUE: usize = 4;

/// The consumer's end: reads the chunks in order.
pub(crate) struct PipeReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

/// A connected producer/consumer pair; run [`produce`] with the sender on another thread.
pub(crate) fn pipe() -> (SyncSender<io::Result<Vec<u8>>>, PipeReader) {
    let (tx, rx) = sync_channel(QUEUE);
    (tx, PipeReader { rx, buf: Vec::new(), pos: 0, done: false })
}

/// Reads `src` to its end into `tx`: full chunks, then an empty chunk at the end, or the
/// bytes read before an error followed by the error. Returns early when the consumer
/// hung up (it stopped on an error of its own).
pub(crate) fn produce<R: Read>(mut src: R, tx: SyncSender<io::Result<Vec<u8>>>) {
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        let outcome = loop {
            match src.read(&mut buf[filled..]) {
                Ok(0) => break Ok(true),
                Ok(n) => {
                    filled += n;
                    if filled == CHUNK {
                        break Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(filled);
        if filled > 0 && tx.send(Ok(buf)).is_err() {
            return;
        }
        match outcome {
            Ok(false) => {}
            Ok(true) => {
                let _ = tx.send(Ok(Vec::new()));
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => self.done = true,
                Ok(Ok(chunk)) => (self.buf, self.pos) = (chunk, 0),
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the layer's reading thread stopped before the end of the stream"));
                }
            }
        }
        let n = (self.buf.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields `data` in odd-sized reads, then `err` if given.
    struct Source {
        data: Vec<u8>,
        pos: usize,
        err: Option<io::Error>,
    }

    impl Read for Source {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.data.len() {
                return self.err.take().map_or(Ok(0), Err);
            }
            let n = (self.data.len() - self.pos).min(out.len()).min(7919);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn run(data: Vec<u8>, err: Option<io::Error>) -> (Vec<u8>, io::Result<usize>) {
        let (tx, mut r) = pipe();
        std::thread::scope(|s| {
            s.spawn(move || produce(Source { data, pos: 0, err }, tx));
            let mut got = Vec::new();
            let res = r.read_to_end(&mut got);
            (got, res)
        })
    }

    #[test]
    fn bytes_in_order_then_end() {
        let data: Vec<u8> = (0..(3 * CHUNK + 12345)).map(|i| (i * 31 % 251) as u8).collect();
        let (got, res) = run(data.clone(), None);
        assert_eq!(res.unwrap(), data.len());
        assert_eq!(got, data);
        let (got, res) = run(Vec::new(), None);
        assert_eq!((got.len(), res.unwrap()), (0, 0));
    }

    #[test]
    fn error_after_the_bytes_before_it() {
        let data = vec![9u8; CHUNK + 10];
        let (got, res) = run(data.clone(), Some(io::Error::new(io::ErrorKind::InvalidData, "bad digest")));
        assert_eq!(got, data);
        assert_eq!(res.unwrap_err().to_string(), "bad digest");
    }

    #[test]
    fn a_vanished_producer_is_an_error_and_a_gone_consumer_stops_it() {
        let (tx, mut r) = pipe();
        tx.send(Ok(vec![1, 2, 3])).unwrap();
        drop(tx);
        let mut got = Vec::new();
        assert!(r.read_to_end(&mut got).is_err());
        assert_eq!(got, [1, 2, 3]);
        // The consumer hangs up: the producer returns instead of blocking on a full queue.
        let (tx, r) = pipe();
        drop(r);
        produce(Source { data: vec![0; 10 * CHUNK], pos: 0, err: None }, tx);
    }
}
