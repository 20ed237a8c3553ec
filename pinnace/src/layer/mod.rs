//! Layers: the one deterministic writer, the one streaming reader, and compression.
//!
//! - [`writer`] turns a set of entries into a reproducible tar, compressed and hashed in
//!   one pass (diff_id and digest together).
//! - [`reader`] walks a layer's tar stream and yields normalised entries, with a defined
//!   outcome for every kind of hostile input.
//! - [`compress`] detects compression by magic bytes (media types lie), decompresses
//!   with a bound, and compresses (gzip via [`pgzip`], zstd, none).

pub mod compress;
pub mod pgzip;
pub mod reader;
pub mod writer;

use std::io::{self, Read};

pub use compress::{Compression, Encoded, Encoder, EncoderOptions};
pub use reader::{EntryKind, LayerEntry, LayerError, LayerReader, LayerSummary, Warning};
pub use writer::{FileSource, LayerBuilder, LayerEntrySpec, SpecKind, WriterError};

use crate::blob::VerifyReader;
use crate::oci::Digest;

/// Ratio past which decompression is refused as a bomb: deflate cannot exceed ~1032:1,
/// and no real layer comes close; zstd can, so the bound is applied to every codec.
pub const MAX_RATIO: u64 = 1100;

/// Opens a layer blob for reading its tar stream: the compressed bytes are verified
/// against `digest`/`size`, decompressed by magic, bounded by [`MAX_RATIO`], and, when
/// `diff_id` is known, the uncompressed bytes are verified against it too.
///
/// Verification fires at end of stream: callers that stop early (a tar reader at its
/// end-of-archive marker) must drain the reader to see the verdict; [`LayerReader`]
/// does.
pub fn open_verified<'a, R: Read + Send + 'a>(
    raw: R,
    digest: Digest,
    size: u64,
    diff_id: Option<Digest>,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let verified = VerifyReader::new(raw, digest, Some(size));
    let (compression, plain) = compress::decompress(verified)?;
    let limit = size.saturating_mul(MAX_RATIO).max(1 << 20);
    let bounded = compress::LimitReader::new(plain, limit, digest);
    Ok(match (diff_id, compression) {
        // An uncompressed layer's digest is its diff_id: one hash is enough.
        (Some(d), Compression::None) if d == digest => (compression, Box::new(bounded)),
        (Some(d), _) => (compression, Box::new(VerifyReader::new(bounded, d, None))),
        (None, _) => (compression, Box::new(bounded)),
    })
}

/// Reads a layer blob's verified tar stream as [`open_verified`] does, in three stages on
/// three threads so that no thread does two of the expensive steps: reading the blob and
/// checking its digest; decompressing (bounded by [`MAX_RATIO`]); and, in the calling
/// thread inside `f`, checking the diff_id of what `f` reads. Decompression is the
/// slowest step of a layer copy, and on its own thread it runs at its full speed.
///
/// `f` sees a verification failure as an error from a read, before it sees the end of
/// the stream, as with [`open_verified`]; it must read to the end for the checks to fire.
/// The outer error is one of starting to decompress (a damaged header), before `f` runs.
/// Memory: at most ten 1 MiB chunks in flight between the stages.
pub fn with_verified_stages<R: Read + Send, T>(
    raw: R,
    digest: Digest,
    size: u64,
    diff_id: Digest,
    f: impl FnOnce(&mut dyn Read) -> T,
) -> io::Result<T> {
    let verified = VerifyReader::new(raw, digest, Some(size));
    crate::blob::with_read_ahead(verified, |compressed| {
        let (compression, plain) = compress::decompress(compressed)?;
        let limit = size.saturating_mul(MAX_RATIO).max(1 << 20);
        let bounded = compress::LimitReader::new(plain, limit, digest);
        crate::blob::with_read_ahead(bounded, |plain| {
            Ok(if compression == Compression::None && diff_id == digest {
                // An uncompressed layer's digest is its diff_id: one hash is enough.
                f(plain)
            } else {
                f(&mut VerifyReader::new(plain, diff_id, None))
            })
        })
    })
}
