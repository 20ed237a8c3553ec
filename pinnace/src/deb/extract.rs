//! A `.deb` opened without dpkg: its `ar` members, the `control` file, and `data.tar.*`
//! turned into layer entries.
//!
//! The `ar` container is parsed here by hand: a .deb is an 8-byte magic and a handful of
//! 60-byte fixed-width headers (`debian-binary`, `control.tar.*`, `data.tar.*`), so a
//! crate would add a dependency for twenty lines. Decompression uses the crates the layer
//! code already has (zstd, flate2) plus `lzma-rs` for xz.
//!
//! Nothing of the package runs: no maintainer scripts, no triggers. What those would
//! have produced that images need is generated instead (see `status` and [`ca_bundle`]).
//! Documentation, manual pages, info pages and translations are dropped by default,
//! keeping `/usr/share/doc/PACKAGE/copyright` (licences must ship with the binaries).

use std::io::Read;
use std::sync::Arc;

use crate::layer::writer::normalize_image_path;
use crate::layer::{FileSource, LayerEntrySpec, SpecKind};

use super::DebError;

/// One member of an `ar` archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArMember<'a> {
    /// Member name (GNU `/` terminator removed).
    pub name: &'a str,
    /// Member content.
    pub data: &'a [u8],
}

/// Splits an `ar` archive into members.
pub fn ar_members(bytes: &[u8]) -> Result<Vec<ArMember<'_>>, String> {
    let mut rest = bytes.strip_prefix(b"!<arch>\n").ok_or("not an ar archive (no !<arch> magic)")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest == b"\n" {
            break;
        }
        if rest.len() < 60 {
            return Err(format!("truncated ar header after {} members", out.len()));
        }
        let (h, body) = rest.split_at(60);
        if &h[58..60] != b"`\n" {
            return Err(format!("bad ar header magic in member {}", out.len() + 1));
        }
        let field =
            |r: std::ops::Range<usize>| std::str::from_utf8(&h[r]).map(str::trim).map_err(|_| "ar header is not ASCII");
        let name = field(0..16)?;
        let name = name.strip_suffix('/').unwrap_or(name);
        let size: usize = field(48..58)?.parse().map_err(|_| format!("bad ar member size in {name:?}"))?;
        if size > body.len() {
            return Err(format!("ar member {name:?} claims {size} bytes, {} remain", body.len()));
        }
        out.push(ArMember { name, data: &body[..size] });
        rest = &body[(size + (size & 1)).min(body.len())..];
    }
    Ok(out)
}

/// Decompresses a `control.tar.*`/`data.tar.*` member by its name's extension.
fn decompress(m: &ArMember<'_>) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(m.data.len() * 4);
    let r: std::io::Result<usize> = match m.name.rsplit('.').next() {
        Some("xz") => {
            return lzma_rs::xz_decompress(&mut std::io::BufReader::new(m.data), &mut out)
                .map(|_| out)
                .map_err(|e| format!("{}: xz: {e}", m.name))
        }
        Some("zst") => zstd::stream::read::Decoder::new(m.data).and_then(|mut d| d.read_to_end(&mut out)),
        // Every member of a multi-member gzip (dpkg-deb reads them all, as gzip -d does).
        Some("gz") => flate2::read::MultiGzDecoder::new(m.data).read_to_end(&mut out),
        Some("tar") => return Ok(m.data.to_vec()),
        _ => return Err(format!("{}: unknown compression", m.name)),
    };
    r.map(|_| out).map_err(|e| format!("{}: {e}", m.name))
}

/// What a .deb holds, ready for a layer.
#[derive(Debug, Clone)]
pub struct DebContents {
    /// The `control` file (dpkg's source for the status entry).
    pub control: String,
    /// Files, directories and links of `data.tar`, filtered.
    pub entries: Vec<LayerEntrySpec>,
}

/// Whether `path` (normalised, no leading `/`) is kept in an image.
pub fn keep(path: &str, is_symlink: bool) -> bool {
    if let Some(rest) = path.strip_prefix("usr/share/doc/") {
        // usr/share/doc/PKG/copyright, and PKG itself when a link to another package's dir.
        let mut parts = rest.split('/');
        let (_pkg, next) = (parts.next(), parts.next());
        return match next {
            None => is_symlink,
            Some("copyright") => parts.next().is_none(),
            _ => false,
        };
    }
    const DROP: [&str; 6] = [
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "usr/share/lintian",
        "usr/share/doc-base",
        "usr/share/doc",
    ];
    !DROP.iter().any(|d| path == *d || path.strip_prefix(d).is_some_and(|r| r.starts_with('/')))
}

/// The two tar archives of a .deb, decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// `control.tar`.
    pub control_tar: Vec<u8>,
    /// `data.tar`.
    pub data_tar: Vec<u8>,
}

/// Splits a .deb (or a [`repack`]ed one) and decompresses its tar archives. `file` names
/// the package in errors.
pub fn unpack(deb: &[u8], file: &str) -> Result<Unpacked, DebError> {
    let bad = |why: String| DebError::Deb { file: file.to_string(), why };
    let members = ar_members(deb).map_err(bad)?;
    let find = |prefix: &str| members.iter().find(|m| m.name.starts_with(prefix));
    let ctl = find("control.tar").ok_or_else(|| bad("no control.tar member".into()))?;
    let data = find("data.tar").ok_or_else(|| bad("no data.tar member".into()))?;
    Ok(Unpacked { control_tar: decompress(ctl).map_err(bad)?, data_tar: decompress(data).map_err(bad)? })
}

/// The package re-packed for the extraction cache: an `ar` archive of the same shape as
/// a .deb (`debian-binary`, `control.tar.zst`, `data.tar.zst`) so [`open`] reads it
/// unchanged, but zstd-compressed (level 1, with zstd's content checksum, so damage is
/// detected on read): xz decompression is most of a warm build's time, zstd's is
/// about twenty times faster.
pub fn repack(u: &Unpacked) -> std::io::Result<Vec<u8>> {
    let zst = |b: &[u8]| -> std::io::Result<Vec<u8>> {
        let mut e = zstd::stream::write::Encoder::new(Vec::with_capacity(b.len() / 3), 1)?;
        e.include_checksum(true)?;
        std::io::Write::write_all(&mut e, b)?;
        e.finish()
    };
    Ok(ar_archive(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.zst", &zst(&u.control_tar)?),
        ("data.tar.zst", &zst(&u.data_tar)?),
    ]))
}

/// An `ar` archive of `members` (GNU names, zero dates, mode 0644), as `dpkg-deb` writes.
pub fn ar_archive(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (n, d) in members {
        out.extend_from_slice(format!("{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", n, 0, 0, 0, 100644, d.len()).as_bytes());
        out.extend_from_slice(d);
        if d.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// Opens a .deb: reads `control` and turns `data.tar` into entries. `file` names the
/// package in errors.
pub fn open(deb: &[u8], file: &str) -> Result<DebContents, DebError> {
    contents(&unpack(deb, file)?, file)
}

/// Reads `control` and turns `data.tar` into entries (see [`open`]).
pub fn contents(u: &Unpacked, file: &str) -> Result<DebContents, DebError> {
    let bad = |why: String| DebError::Deb { file: file.to_string(), why };
    let mut control = None;
    let mut ar = tar::Archive::new(&u.control_tar[..]);
    for e in ar.entries().map_err(|e| bad(e.to_string()))? {
        let mut e = e.map_err(|e| bad(e.to_string()))?;
        let p = e.path().map_err(|e| bad(e.to_string()))?.to_string_lossy().into_owned();
        if p.trim_start_matches("./") == "control" {
            let mut s = String::new();
            e.read_to_string(&mut s).map_err(|e| bad(format!("control: {e}")))?;
            control = Some(s);
        }
    }
    let control = control.ok_or_else(|| bad("control.tar has no control file".into()))?;
    let mut entries = Vec::new();
    let mut ar = tar::Archive::new(&u.data_tar[..]);
    for e in ar.entries().map_err(|e| bad(e.to_string()))? {
        let mut e = e.map_err(|e| bad(e.to_string()))?;
        let raw = e.path().map_err(|e| bad(e.to_string()))?.to_string_lossy().into_owned();
        if matches!(raw.as_str(), "." | "./" | "/") {
            continue;
        }
        let path = normalize_image_path(&raw).map_err(|_| bad(format!("unsafe path {raw:?} in data.tar")))?;
        let h = e.header();
        let (mode, uid, gid) =
            (h.mode().unwrap_or(0o644) & 0o7777, h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
        let et = h.entry_type();
        let link = || -> Result<String, DebError> {
            Ok(e.link_name()
                .map_err(|x| bad(x.to_string()))?
                .ok_or_else(|| bad(format!("{raw}: link without target")))?
                .to_string_lossy()
                .into_owned())
        };
        let kind = match et {
            tar::EntryType::Directory => SpecKind::Dir,
            tar::EntryType::Symlink => SpecKind::Symlink(link()?),
            tar::EntryType::Link => {
                let t = link()?;
                SpecKind::HardLink(normalize_image_path(&t).map_err(|_| bad(format!("unsafe hard link {t:?}")))?)
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut buf = Vec::with_capacity(e.size() as usize);
                e.read_to_end(&mut buf).map_err(|x| bad(format!("{raw}: {x}")))?;
                SpecKind::File(FileSource::Bytes(Arc::from(buf)))
            }
            // Device nodes, fifos: packages for images have none; dpkg would create them,
            // an unprivileged image build cannot, and runtimes provide /dev.
            _ => continue,
        };
        if !keep(&path, matches!(kind, SpecKind::Symlink(_))) {
            continue;
        }
        entries.push(LayerEntrySpec { path, kind, mode, uid, gid });
    }
    // A hard link whose target was dropped becomes a copy-free omission.
    let kept: std::collections::HashSet<String> = entries.iter().map(|e| e.path.clone()).collect();
    entries.retain(|e| !matches!(&e.kind, SpecKind::HardLink(t) if !kept.contains(t)));
    Ok(DebContents { control, entries })
}

/// The certificates `update-ca-certificates` enables by default: every
/// `usr/share/ca-certificates/**.crt` among `entries`, as (path, PEM bytes), unsorted.
pub(crate) fn ca_certificate_files<'a>(entries: impl Iterator<Item = &'a LayerEntrySpec>) -> Vec<(&'a str, &'a [u8])> {
    entries
        .filter(|e| e.path.starts_with("usr/share/ca-certificates/") && e.path.ends_with(".crt"))
        .filter_map(|e| match &e.kind {
            SpecKind::File(FileSource::Bytes(b)) => Some((e.path.as_str(), &b[..])),
            _ => None,
        })
        .collect()
}

/// The CA bundle `update-ca-certificates` writes to `/etc/ssl/certs/ca-certificates.crt`:
/// every `usr/share/ca-certificates/**.crt` in byte order of its path (the order of the
/// `/etc/ca-certificates.conf` that the package's postinst generates), each followed by a
/// newline when it lacks one. `None` when there are no certificates.
pub fn ca_bundle(entries: &[LayerEntrySpec]) -> Option<Vec<u8>> {
    let mut certs = ca_certificate_files(entries.iter());
    if certs.is_empty() {
        return None;
    }
    certs.sort();
    let mut out = Vec::new();
    for (_, b) in certs {
        out.extend_from_slice(b);
        if !b.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use ar_archive as ar;

    #[test]
    fn ar_round_trip_and_errors() {
        let a = ar(&[("debian-binary", b"2.0\n"), ("control.tar.gz/", b"abc"), ("data.tar.xz", b"")]);
        let m = ar_members(&a).unwrap();
        assert_eq!(m.iter().map(|m| m.name).collect::<Vec<_>>(), ["debian-binary", "control.tar.gz", "data.tar.xz"]);
        assert_eq!(m[1].data, b"abc");
        assert!(ar_members(b"nope").is_err());
        assert!(ar_members(&a[..70]).is_err());
        let e = open(&a, "x.deb").unwrap_err().to_string();
        assert!(e.contains("x.deb"), "{e}");
    }

    /// A small .deb: control.tar.gz with `./control`, data.tar.xz with a file and a link.
    fn deb() -> Vec<u8> {
        let tar = |files: &[(&str, &[u8])]| {
            let mut b = tar::Builder::new(Vec::new());
            for (p, d) in files {
                let mut h = tar::Header::new_gnu();
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, p, *d).unwrap();
            }
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            b.append_link(&mut h, "./usr/bin/alias", "tool").unwrap();
            b.into_inner().unwrap()
        };
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar(&[("./control", b"Package: t\nVersion: 1\n")])).unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &tar(&[("./usr/bin/tool", b"#!/bin/sh\n")])[..], &mut xz).unwrap();
        ar(&[("debian-binary", b"2.0\n"), ("control.tar.gz", &gz.finish().unwrap()), ("data.tar.xz", &xz)])
    }

    #[test]
    fn repacked_opens_the_same_and_damage_is_detected() {
        let d = deb();
        let u = unpack(&d, "t.deb").unwrap();
        let direct = contents(&u, "t.deb").unwrap();
        assert_eq!(direct.control, "Package: t\nVersion: 1\n");
        let paths: Vec<&str> = direct.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["usr/bin/tool", "usr/bin/alias"]);
        let r = repack(&u).unwrap();
        let names: Vec<&str> = ar_members(&r).unwrap().iter().map(|m| m.name).collect();
        assert_eq!(names, ["debian-binary", "control.tar.zst", "data.tar.zst"]);
        let again = open(&r, "t.deb").unwrap();
        assert_eq!(format!("{again:?}"), format!("{direct:?}"));
        assert_eq!(unpack(&r, "t.deb").unwrap(), u);
        // One flipped bit anywhere in the compressed data fails the zstd checksum or the
        // decoder: a damaged cache entry is never taken for a package.
        let data = ar_members(&r).unwrap()[2].data.as_ptr() as usize - r.as_ptr() as usize;
        for i in data..r.len() {
            let mut bad = r.clone();
            bad[i] ^= 0x10;
            if let Ok(b) = unpack(&bad, "t.deb") {
                assert_eq!(b, u, "byte {i}");
            }
        }
    }

    #[test]
    fn docs_are_dropped_but_copyright_kept() {
        assert!(keep("usr/bin/python3", false));
        assert!(keep("usr/share/doc/libc6/copyright", false));
        assert!(!keep("usr/share/doc/libc6/changelog.Debian.gz", false));
        assert!(!keep("usr/share/doc/libc6", false));
        assert!(keep("usr/share/doc/libc6", true));
        assert!(!keep("usr/share/man/man1/ls.1.gz", false));
        assert!(!keep("usr/share/locale/de/LC_MESSAGES/x.mo", false));
        assert!(keep("usr/share/localedata", false));
        assert!(keep("usr/share/zoneinfo/UTC", false));
    }

    #[test]
    fn ca_bundle_is_sorted_and_newline_terminated() {
        let f = |p: &str, b: &[u8]| LayerEntrySpec {
            path: p.into(),
            kind: SpecKind::File(FileSource::Bytes(Arc::from(b))),
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let e = vec![
            f("usr/share/ca-certificates/mozilla/B.crt", b"b"),
            f("usr/share/ca-certificates/mozilla/A.crt", b"a\n"),
            f("etc/x.crt", b"x"),
        ];
        assert_eq!(ca_bundle(&e).unwrap(), b"a\nb\n");
        assert!(ca_bundle(&e[2..]).is_none());
    }

    proptest! {
        #[test]
        fn ar_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut b = b"!<arch>\n".to_vec();
            b.extend(bytes.clone());
            let _ = ar_members(&b);
            let _ = ar_members(&bytes);
            let _ = open(&b, "fuzz.deb");
        }
    }
}
