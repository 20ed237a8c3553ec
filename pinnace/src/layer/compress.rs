//! Compression: detection by magic bytes, bounded decompression, and the encoder that
//! hashes the uncompressed stream (diff_id) and the compressed one (digest) in one pass.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};

use crate::oci::{Digest, HashingWriter};

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
    /// gzip level (fixed default 6; output is deterministic for a given level).
    pub gzip_level: u32,
    /// zstd level (fixed default 3).
    pub zstd_level: i32,
    /// Threads for gzip; output does not depend on it (fixed-block deflate, see pgzip).
    pub threads: usize,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            compression: Compression::Gzip,
            gzip_level: 6,
            zstd_level: 3,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

/// zstd worker count: fixed, because zstd's multi-threaded framing depends on it and
/// the output must be the same on every machine.
const ZSTD_WORKERS: u32 = 2;

enum Codec<W: Write + Send> {
    None(HashingWriter<W>),
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
/// hashing both sides as they pass: one pass over the bytes.
pub struct Encoder<W: Write + Send> {
    plain: HashingWriter<Codec<W>>,
}

impl<W: Write + Send> Encoder<W> {
    /// Starts encoding into `out`.
    pub fn new(out: W, opts: &EncoderOptions) -> io::Result<Self> {
        let out = HashingWriter::new(out);
        let codec = match opts.compression {
            Compression::None => Codec::None(out),
            Compression::Gzip => Codec::Gzip(ParallelGzEncoder::new(out, opts.gzip_level, opts.threads.max(1))),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, opts.zstd_level)?;
                e.multithread(ZSTD_WORKERS)?;
                e.include_checksum(false)?;
                Codec::Zstd(e)
            }
        };
        Ok(Encoder { plain: HashingWriter::new(codec) })
    }

    /// Finishes the stream and returns the writer with both digests.
    pub fn finish(self) -> io::Result<(W, Encoded)> {
        let (codec, diff_id, uncompressed_size) = self.plain.finish();
        let (out, compression) = match codec {
            Codec::None(w) => (w, Compression::None),
            Codec::Gzip(e) => (e.finish()?, Compression::Gzip),
            Codec::Zstd(e) => (e.finish()?, Compression::Zstd),
        };
        let (w, digest, size) = out.finish();
        Ok((w, Encoded { diff_id, uncompressed_size, digest, size, compression }))
    }
}

impl<W: Write + Send> Write for Codec<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Codec::None(w) => w.write(buf),
            Codec::Gzip(w) => w.write(buf),
            Codec::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Codec::None(w) => w.flush(),
            Codec::Gzip(w) => w.flush(),
            Codec::Zstd(w) => w.flush(),
        }
    }
}

impl<W: Write + Send> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.plain.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.plain.flush()
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
