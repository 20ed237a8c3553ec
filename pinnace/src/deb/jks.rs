//! Java's JKS keystore, written for `/etc/ssl/certs/java/cacerts` (the trust store that
//! `ca-certificates-java`'s maintainer script would have made) and read back for checks.
//!
//! Written by hand: no maintained Rust crate writes JKS (crates cover PKCS#12, or nothing;
//! JKS is Sun's own format, specified only by `sun.security.provider.JavaKeyStore`), and
//! the part a trust store needs is small. Big-endian throughout:
//!
//! ```text
//! u32 0xFEEDFEED   u32 2 (version)   u32 entry count
//! per entry:  u32 2 (trustedCertEntry)   alias (u16 length + Java modified UTF-8)
//!             u64 creation time (ms since the epoch)
//!             "X.509" (u16 length + UTF-8)   u32 DER length   DER certificate
//! 20 bytes: SHA-1( password as UTF-16BE || "Mighty Aphrodite" || everything above )
//! ```
//!
//! JDK 17 reads JKS trust stores through its default `pkcs12` type
//! (`keystore.type.compat=true`, the default), as it reads the one Debian ships. Aliases
//! are stored lower-case, as `JavaKeyStore` stores them.

use sha1::{Digest as _, Sha1};

/// The password Debian's (and the JDK's) `cacerts` is protected with.
pub const CACERTS_PASSWORD: &str = "changeit";

const MAGIC: u32 = 0xFEED_FEED;
const VERSION: u32 = 2;
const TRUSTED_CERT: u32 = 2;
const WHITENER: &[u8] = b"Mighty Aphrodite";

/// One trusted certificate of a keystore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCert {
    /// The alias (lower-cased on write, as JKS does).
    pub alias: String,
    /// The DER-encoded X.509 certificate.
    pub der: Vec<u8>,
}

/// Java's modified UTF-8 with its u16 length prefix (`DataOutputStream.writeUTF`):
/// U+0000 as two bytes, characters beyond the BMP as two three-byte surrogates.
fn write_utf(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
    let mut b = Vec::with_capacity(s.len());
    for u in s.encode_utf16() {
        match u {
            0x0001..=0x007F => b.push(u as u8),
            0x0000 | 0x0080..=0x07FF => b.extend([0xC0 | (u >> 6) as u8, 0x80 | (u & 0x3F) as u8]),
            _ => b.extend([0xE0 | (u >> 12) as u8, 0x80 | ((u >> 6) & 0x3F) as u8, 0x80 | (u & 0x3F) as u8]),
        }
    }
    let len = u16::try_from(b.len()).map_err(|_| format!("alias {s:?} is longer than 65535 bytes"))?;
    out.extend(len.to_be_bytes());
    out.extend(b);
    Ok(())
}

fn integrity(password: &str, data: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    for u in password.encode_utf16() {
        h.update(u.to_be_bytes());
    }
    h.update(WHITENER);
    h.update(data);
    h.finalize().into()
}

/// A JKS keystore of trusted certificates, in the order given, each dated `time_ms`.
/// Aliases are lower-cased; they must be unique after that.
pub fn write(certs: &[TrustedCert], password: &str, time_ms: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(16 + certs.iter().map(|c| c.der.len() + c.alias.len() + 32).sum::<usize>());
    out.extend(MAGIC.to_be_bytes());
    out.extend(VERSION.to_be_bytes());
    out.extend(u32::try_from(certs.len()).map_err(|_| "too many certificates")?.to_be_bytes());
    let mut seen = std::collections::HashSet::new();
    for c in certs {
        let alias = c.alias.to_lowercase();
        if !seen.insert(alias.clone()) {
            return Err(format!("alias {alias:?} is used twice"));
        }
        out.extend(TRUSTED_CERT.to_be_bytes());
        write_utf(&mut out, &alias)?;
        out.extend(time_ms.to_be_bytes());
        write_utf(&mut out, "X.509")?;
        out.extend(u32::try_from(c.der.len()).map_err(|_| format!("{alias}: certificate too large"))?.to_be_bytes());
        out.extend(&c.der);
    }
    let digest = integrity(password, &out);
    out.extend(digest);
    Ok(out)
}

/// Reads a JKS keystore of trusted certificates and checks its integrity digest with
/// `password`. Private-key entries are an error (trust stores have none).
pub fn read(bytes: &[u8], password: &str) -> Result<Vec<TrustedCert>, String> {
    let body_len = bytes.len().checked_sub(20).ok_or("shorter than a JKS digest")?;
    let (body, digest) = bytes.split_at(body_len);
    let mut r = Reader(body);
    if r.u32()? != MAGIC {
        return Err("not a JKS keystore (no 0xFEEDFEED magic)".into());
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(format!("JKS version {version}, expected {VERSION}"));
    }
    let n = r.u32()?;
    let mut out = Vec::new();
    for i in 0..n {
        let tag = r.u32()?;
        if tag != TRUSTED_CERT {
            return Err(format!("entry {i}: tag {tag}, expected a trustedCertEntry ({TRUSTED_CERT})"));
        }
        let alias = r.utf()?;
        r.take(8)?;
        let kind = r.utf()?;
        if kind != "X.509" {
            return Err(format!("{alias}: certificate type {kind:?}"));
        }
        let len = r.u32()? as usize;
        out.push(TrustedCert { alias, der: r.take(len)?.to_vec() });
    }
    if !r.0.is_empty() {
        return Err(format!("{} bytes after the last entry", r.0.len()));
    }
    if integrity(password, body)[..] != *digest {
        return Err("integrity digest does not match (wrong password or damaged file)".into());
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err(format!("truncated: {n} bytes wanted, {} left", self.0.len()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Java modified UTF-8 back to a string.
    fn utf(&mut self) -> Result<String, String> {
        let len = self.take(2)?;
        let b = self.take(usize::from(u16::from_be_bytes([len[0], len[1]])))?;
        let mut units = Vec::with_capacity(b.len());
        let mut i = 0;
        let bad = || "bad modified UTF-8 in an alias".to_string();
        while i < b.len() {
            let c = u16::from(b[i]);
            let cont = |k: usize| b.get(i + k).map(|&x| u16::from(x & 0x3F)).ok_or_else(bad);
            let (u, n) = match b[i] {
                0x01..=0x7F => (c, 1),
                0xC0..=0xDF => (((c & 0x1F) << 6) | cont(1)?, 2),
                0xE0..=0xEF => (((c & 0x0F) << 12) | (cont(1)? << 6) | cont(2)?, 3),
                _ => return Err(bad()),
            };
            units.push(u);
            i += n;
        }
        String::from_utf16(&units).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_and_digest() {
        let certs = [TrustedCert { alias: "Debian:A.pem".into(), der: vec![0x30, 0x03, 1, 2, 3] }];
        let ks = write(&certs, CACERTS_PASSWORD, 1000).unwrap();
        let mut want = vec![0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 12];
        want.extend(b"debian:a.pem");
        want.extend(1000u64.to_be_bytes());
        want.extend([0, 5]);
        want.extend(b"X.509");
        want.extend([0, 0, 0, 5, 0x30, 0x03, 1, 2, 3]);
        assert_eq!(&ks[..ks.len() - 20], &want[..]);
        // The digest as keytool computes it: SHA-1 of "\0c\0h..." + whitener + data.
        let mut h = Sha1::new();
        h.update(b"\0c\0h\0a\0n\0g\0e\0i\0t");
        h.update(b"Mighty Aphrodite");
        h.update(&want);
        assert_eq!(&ks[ks.len() - 20..], &h.finalize()[..]);
        assert_eq!(read(&ks, CACERTS_PASSWORD).unwrap()[0].alias, "debian:a.pem");
        assert!(read(&ks, "secret").unwrap_err().contains("integrity"));
        let dup = [certs[0].clone(), TrustedCert { alias: "debian:a.PEM".into(), der: vec![] }];
        assert!(write(&dup, CACERTS_PASSWORD, 0).is_err());
    }

    #[test]
    fn modified_utf8_aliases() {
        let a = "debian:netlock_arany_=class_gold=_főtanúsítvány.pem\u{0}\u{1F600}";
        let ks = write(&[TrustedCert { alias: a.into(), der: vec![] }], "x", 0).unwrap();
        // NUL is two bytes (C0 80), the emoji two surrogates of three bytes each.
        assert!(ks.windows(2).any(|w| w == [0xC0, 0x80]));
        assert!(ks.windows(3).any(|w| w == [0xED, 0xA0, 0xBD]));
        assert_eq!(read(&ks, "x").unwrap()[0].alias, a);
    }

    /// A keystore Java wrote (the host's, when `ca-certificates-java` is installed)
    /// verifies with our digest, and its entries survive our write.
    #[test]
    fn host_cacerts_round_trip() {
        let Ok(bytes) = std::fs::read("/etc/ssl/certs/java/cacerts") else { return };
        if !bytes.starts_with(&MAGIC.to_be_bytes()) {
            return;
        }
        let certs = read(&bytes, CACERTS_PASSWORD).unwrap();
        assert!(certs.len() > 100);
        // Entries and order survive a write and a read (time stamps are not kept).
        let again = read(&write(&certs, CACERTS_PASSWORD, 0).unwrap(), CACERTS_PASSWORD).unwrap();
        assert_eq!(again, certs);
    }

    proptest! {
        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut b = vec![0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2];
            b.extend(&bytes);
            let _ = read(&b, "changeit");
            let _ = read(&bytes, "changeit");
        }
    }
}
