//! Compression: detection by magic bytes, bounded decompression, and the encoder that
//! hashes the uncompressed stream (diff_id) and the compressed one (digest) in one pass.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};

use crate::oci::{Digest, Hasher, HashingWriter};

use super::pgzip::ParallelGzEncoder;

/// A layer's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// zstd.
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" | "uncompressed" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(format!("unknown compression {s:?}: use gzip, zstd or none")),
        }
    }
}

impl Compression {
    /// Detects compression from the first bytes of a blob.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Wraps a reader in the decompressor its magic bytes call for.
pub fn decompress<'a, R: Read + Send + 'a>(r: R) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let mut br = BufReader::with_capacity(256 << 10, r);
    let head = loop {
        match br.fill_buf() {
            Ok(h) => break h,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    let c = Compression::detect(head);
    Ok(match c {
        Compression::None => (c, Box::new(br)),
        // Multi-member gzip is valid gzip; some tools write one member per chunk.
        Compression::Gzip => (c, Box::new(flate2::bufread::MultiGzDecoder::new(br))),
        Compression::Zstd => (c, Box::new(zstd::stream::read::Decoder::with_buffer(br)?)),
    })
}

/// Refuses to yield more than `limit` bytes (a decompression bomb guard).
pub struct LimitReader<R> {
    inner: R,
    left: u64,
    limit: u64,
    blob: Digest,
}

impl<R: Read> LimitReader<R> {
    /// Bounds `inner` to `limit` bytes; `blob` names the layer in the error.
    pub fn new(inner: R, limit: u64, blob: Digest) -> Self {
        LimitReader { inner, left: limit, limit, blob }
    }
}

impl<R: Read> Read for LimitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "layer {} decompresses to more than {} bytes ({}x its compressed size): refusing a likely decompression bomb",
                    self.blob,
                    self.limit,
                    super::MAX_RATIO
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// How to compress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderOptions {
    /// The codec.
    pub compression: Compression,
    /// gzip level, libdeflate's scale 0–12 (fixed default 4: in 1 MiB members it
    /// compresses smaller than Go's gzip at its default level, with about a third less
    /// CPU than zlib-rs at level 4; see bench/RESULTS.md and [`super::pgzip`]). Output is
    /// deterministic for a given level and independent of `threads`.
    pub gzip_level: u32,
    /// zstd level (fixed default 3).
    pub zstd_level: i32,
    /// Threads for gzip; output does not depend on it (fixed 1 MiB blocks, each its own
    /// gzip member, see pgzip).
    pub threads: usize,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            compression: Compression::Gzip,
            gzip_level: 4,
            zstd_level: 3,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

/// zstd worker count: fixed, because zstd's multi-threaded framing depends on it and
/// the output must be the same on every machine.
const ZSTD_WORKERS: u32 = 2;

enum Codec<W: Write + Send> {
    /// Plain: the blob is the tar stream itself, so its digest is the diff_id.
    None(W),
    Gzip(ParallelGzEncoder<HashingWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, HashingWriter<W>>),
}

/// What an [`Encoder`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// sha256 of the uncompressed stream.
    pub diff_id: Digest,
    /// Its length.
    pub uncompressed_size: u64,
    /// sha256 of the compressed stream (the blob digest).
    pub digest: Digest,
    /// Its length.
    pub size: u64,
    /// The codec used.
    pub compression: Compression,
}

/// A writer that takes a layer's uncompressed bytes and writes them compressed to `W`,
/// hashing both sides as they pass: one pass over the bytes. Each side is hashed once:
/// a plain layer's digest is its diff_id, and a caller that already verifies the
/// uncompressed bytes (see [`Encoder::with_diff_id`]) saves the second hash.
pub struct Encoder<W: Write + Send> {
    codec: Codec<W>,
    plain: Option<Hasher>,
    known_diff_id: Option<Digest>,
    plain_len: u64,
}

impl<W: Write + Send> Encoder<W> {
    /// Starts encoding into `out`.
    pub fn new(out: W, opts: &EncoderOptions) -> io::Result<Self> {
        Self::start(out, opts, None)
    }

    /// Starts encoding bytes whose sha256 is already known to be `diff_id`: the caller
    /// guarantees it, typically by reading them through a `VerifyReader` that fails
    /// before the end of stream is seen on a mismatch. The uncompressed side is then
    /// not hashed again.
    pub fn with_diff_id(out: W, opts: &EncoderOptions, diff_id: Digest) -> io::Result<Self> {
        Self::start(out, opts, Some(diff_id))
    }

    fn start(out: W, opts: &EncoderOptions, known_diff_id: Option<Digest>) -> io::Result<Self> {
        let codec = match opts.compression {
            Compression::None => Codec::None(out),
            Compression::Gzip => {
                Codec::Gzip(ParallelGzEncoder::new(HashingWriter::new(out), opts.gzip_level, opts.threads.max(1)))
            }
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(HashingWriter::new(out), opts.zstd_level)?;
                e.multithread(ZSTD_WORKERS)?;
                e.include_checksum(false)?;
                Codec::Zstd(e)
            }
        };
        let plain = if known_diff_id.is_some() { None } else { Some(Hasher::new()) };
        Ok(Encoder { codec, plain, known_diff_id, plain_len: 0 })
    }

    /// Finishes the stream and returns the writer with both digests.
    pub fn finish(self) -> io::Result<(W, Encoded)> {
        let uncompressed_size = self.plain_len;
        let diff_id = match (self.known_diff_id, self.plain) {
            (Some(d), _) => d,
            (None, Some(h)) => h.finish().0,
            (None, None) => unreachable!("a hasher exists whenever the diff_id is unknown"),
        };
        let (out, compression) = match self.codec {
            Codec::None(w) => {
                let enc = Encoded {
                    diff_id,
                    uncompressed_size,
                    digest: diff_id,
                    size: uncompressed_size,
                    compression: Compression::None,
                };
                return Ok((w, enc));
            }
            Codec::Gzip(e) => (e.finish()?, Compression::Gzip),
            Codec::Zstd(e) => (e.finish()?, Compression::Zstd),
        };
        let (w, digest, size) = out.finish();
        Ok((w, Encoded { diff_id, uncompressed_size, digest, size, compression }))
    }
}

impl<W: Write + Send> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.codec {
            Codec::None(w) => w.write(buf)?,
            Codec::Gzip(w) => w.write(buf)?,
            Codec::Zstd(w) => w.write(buf)?,
        };
        if let Some(h) = &mut self.plain {
            h.update(&buf[..n]);
        }
        self.plain_len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.codec {
            Codec::None(w) => w.flush(),
            Codec::Gzip(w) => w.flush(),
            Codec::Zstd(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(c: Compression) {
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let opts = EncoderOptions { compression: c, ..Default::default() };
        let mut e = Encoder::new(Vec::new(), &opts).unwrap();
        e.write_all(&data).unwrap();
        let (out, enc) = e.finish().unwrap();
        assert_eq!(enc.diff_id, Digest::of(&data));
        assert_eq!(enc.digest, Digest::of(&out));
        assert_eq!(enc.size, out.len() as u64);
        let (detected, mut r) = decompress(&out[..]).unwrap();
        assert_eq!(detected, c);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn every_codec_round_trips() {
        roundtrip(Compression::None);
        roundtrip(Compression::Gzip);
        roundtrip(Compression::Zstd);
    }

    #[test]
    fn known_diff_id_skips_the_plain_hash_and_is_reported() {
        let data = vec![5u8; 100_000];
        let d = Digest::of(&data);
        for c in [Compression::None, Compression::Gzip] {
            let opts = EncoderOptions { compression: c, ..Default::default() };
            let mut e = Encoder::with_diff_id(Vec::new(), &opts, d).unwrap();
            e.write_all(&data).unwrap();
            let (out, enc) = e.finish().unwrap();
            assert_eq!(enc.diff_id, d);
            assert_eq!(enc.uncompressed_size, data.len() as u64);
            assert_eq!(enc.digest, Digest::of(&out));
        }
    }

    #[test]
    fn zstd_output_is_deterministic() {
        let data = vec![7u8; 3 << 20];
        let enc = |_| {
            let mut e =
                Encoder::new(Vec::new(), &EncoderOptions { compression: Compression::Zstd, ..Default::default() })
                    .unwrap();
            e.write_all(&data).unwrap();
            e.finish().unwrap().1.digest
        };
        assert_eq!(enc(0), enc(1));
    }
}
