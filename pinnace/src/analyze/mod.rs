//! Analyses of images: what is in them ([`inspect`]), dive's figures ([`dive`]), CI gates
//! ([`ci`]) and dive's JSON export ([`export`]).

pub mod ci;
pub mod dive;
pub mod doctor;
pub mod export;
pub mod inspect;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::layer::LayerError;
use crate::oci::Digest;
use crate::transport::TransportError;

/// Errors of the analyses.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// A layer could not be opened.
    #[error("layer {index} ({digest}): {source}")]
    LayerOpen {
        /// Layer index, bottom first.
        index: usize,
        /// Blob digest.
        digest: Digest,
        /// The problem (boxed: transport errors are large).
        source: Box<TransportError>,
    },
    /// A layer could not be read: truncated, corrupt, or failing verification.
    #[error("layer {index} ({digest}): {source}")]
    Layer {
        /// Layer index, bottom first.
        index: usize,
        /// Blob digest.
        digest: Digest,
        /// The problem, with the offset in the tar stream where known.
        source: LayerError,
    },
    /// A layer's uncompressed content does not match the config's diff_id.
    #[error("layer {index} ({digest}) does not match the config: its diff_id should be {diff_id} but its content hashes to {actual}; the image is damaged or was assembled wrongly")]
    DiffIdMismatch {
        /// Layer index.
        index: usize,
        /// Blob digest.
        digest: Digest,
        /// The config's diff_id.
        diff_id: Digest,
        /// What the uncompressed layer hashes to.
        actual: Digest,
    },
    /// CI rules are misconfigured (bad value, unknown key, unreadable file).
    #[error("CI configuration: {0}")]
    CiConfig(String),
}

/// Runs `work(k)` for every `k` in `0..n` on up to `threads` threads (0: one per core) and
/// hands each result to `consume` in order of `k` as soon as its turn comes, so layers are
/// merged bottom first while later ones are still being read. The first error, from
/// `work` or from `consume`, stops the workers from starting new items and is returned.
pub(crate) fn ordered_parallel<T: Send, E: Send>(
    n: usize,
    threads: usize,
    work: &(dyn Fn(usize) -> Result<T, E> + Sync),
    consume: &mut dyn FnMut(usize, T) -> Result<(), E>,
) -> Result<(), E> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |p| p.get()),
        t => t,
    }
    .clamp(1, n.max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<(usize, Result<T, E>)>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            s.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= n || stop.load(Ordering::SeqCst) {
                    break;
                }
                if tx.send((k, work(k))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut done = 0;
        for (k, r) in rx {
            pending.insert(k, r);
            while let Some(r) = pending.remove(&done) {
                if let Err(e) = r.and_then(|t| consume(done, t)) {
                    stop.store(true, Ordering::SeqCst);
                    return Err(e);
                }
                done += 1;
            }
        }
        Ok(())
    })
}
