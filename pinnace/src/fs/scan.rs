//! Streaming one layer into a list of entries: every regular file's sha256 is computed
//! while its bytes pass, and a caller-chosen prefix of selected files is kept (doctor
//! reads ELF headers from it). Nothing else of the content is kept.

use std::io::{self, Read};

use crate::layer::{EntryKind, LayerError, LayerReader, Warning};
use crate::oci::{Digest, Hasher};

/// Decides, for a regular file, how many leading bytes of its content to keep (0: none).
/// Called from the thread that streams the layer, once per regular file, with the
/// normalised path (no leading `/`).
pub type CaptureFn = dyn Fn(&str) -> usize + Sync;

/// One entry of a layer as the tree needs it: the reader's normalised entry plus the
/// content hash and the captured prefix.
#[derive(Debug, Clone)]
pub struct ScannedEntry {
    /// Normalised path (for whiteouts: the path removed; for opaque whiteouts: the directory).
    pub path: String,
    /// Kind (hard links unresolved here; the tree resolves them).
    pub kind: EntryKind,
    /// Permission bits (07777).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// The size in the tar header (0 for everything but regular files).
    pub size: u64,
    /// sha256 of a regular file's content.
    pub hash: Option<Digest>,
    /// The first bytes of the content, when the capture hook asked for them.
    pub prefix: Option<Box<[u8]>>,
}

/// A whole layer, scanned.
#[derive(Debug, Clone, Default)]
pub struct LayerScan {
    /// Entries in stream order.
    pub entries: Vec<ScannedEntry>,
    /// The reader's warnings, in stream order.
    pub warnings: Vec<Warning>,
    /// Bytes of the uncompressed tar stream.
    pub stream_bytes: u64,
    /// Sum of the tar header sizes of every entry (what dive reports as a layer's size).
    pub tar_size: u64,
}

/// Turns the bytes captured for one regular file into what the tree keeps as its prefix
/// (`None`: nothing). Called on the streaming thread, with the normalised path, as soon as
/// the file's content has passed, so a caller can reduce a large capture (doctor keeps an
/// ELF file's headers and dynamic tables) before the next file is read: memory is then
/// bounded by the largest captured file, not by the layer.
pub type KeepFn<'a> = dyn Fn(&str, Vec<u8>) -> Option<Box<[u8]>> + Sync + 'a;

/// Streams an uncompressed tar once: hashes every regular file, keeps the prefixes the
/// hook asks for, and drains the stream so end-of-stream verification runs.
pub fn scan_layer<R: Read>(tar: R, capture: Option<&CaptureFn>) -> Result<LayerScan, LayerError> {
    scan_layer_with(tar, capture, None)
}

/// [`scan_layer`], with each captured prefix passed through `keep` before it is stored
/// (and hooks that may borrow from the caller).
pub fn scan_layer_with<R: Read>(
    tar: R,
    capture: Option<&(dyn Fn(&str) -> usize + Sync + '_)>,
    keep: Option<&KeepFn<'_>>,
) -> Result<LayerScan, LayerError> {
    let mut entries = Vec::new();
    let mut tar_size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let summary = LayerReader::new(tar).visit(|e, data| {
        tar_size += e.size;
        let (mut hash, mut prefix) = (None, None);
        if e.kind == EntryKind::File {
            let want = capture.map_or(0, |c| c(&e.path));
            // Sized from the header (bounded: a lying header must not allocate much).
            let mut kept = Vec::with_capacity(want.min(e.size as usize).min(64 << 20));
            let mut h = Hasher::new();
            loop {
                let n = match data.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err(err),
                };
                h.update(&buf[..n]);
                if kept.len() < want {
                    let take = (want - kept.len()).min(n);
                    kept.extend_from_slice(&buf[..take]);
                }
            }
            hash = Some(h.finish().0);
            if want > 0 {
                prefix = match keep {
                    Some(k) => k(&e.path, kept),
                    None => Some(kept.into_boxed_slice()),
                };
            }
        }
        entries.push(ScannedEntry {
            path: e.path.clone(),
            kind: e.kind.clone(),
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: e.size,
            hash,
            prefix,
        });
        Ok(())
    })?;
    Ok(LayerScan { entries, warnings: summary.warnings, stream_bytes: summary.stream_bytes, tar_size })
}
