//! The layer reader's defined outcome (documented at the top of
//! `pinnace/src/layer/reader.rs`) for each kind of hostile or odd tar stream, crafted
//! here byte by byte. Every case is read twice, once reading each entry's data and once
//! skipping it, and both must give the same outcome.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use pinnace::layer::{open_verified, EntryKind, LayerEntry, LayerError, LayerReader, LayerSummary, Warning, MAX_RATIO};
use pinnace::oci::Digest;

use crate::tarcraft::{self, header, set_checksum, Hdr, Tar, BLOCK, CHAR, FIFO, HARDLINK, SYMLINK};

/// What a pass over a layer produced: entries with their data, and the summary.
type Outcome = Result<(Vec<(LayerEntry, Vec<u8>)>, LayerSummary), LayerError>;

fn read_with(r: impl Read, read_data: bool) -> Outcome {
    let mut entries = Vec::new();
    let summary = LayerReader::new(r).visit(|e, data| {
        let mut d = Vec::new();
        if read_data {
            data.read_to_end(&mut d)?;
        }
        entries.push((e.clone(), d));
        Ok(())
    })?;
    Ok((entries, summary))
}

/// Reads `bytes` both ways; the outcomes must agree (paths, kinds, warnings, error kind).
fn read(bytes: &[u8]) -> Outcome {
    let with = read_with(bytes, true);
    let without = read_with(bytes, false);
    let shape = |r: &Outcome| match r {
        Ok((e, s)) => {
            Ok((e.iter().map(|(e, _)| (e.path.clone(), e.kind.clone(), e.offset)).collect::<Vec<_>>(), s.clone()))
        }
        Err(e) => Err(std::mem::discriminant(e)),
    };
    assert_eq!(shape(&with), shape(&without), "reading data or skipping it changed the outcome");
    with
}

fn ok(bytes: &[u8]) -> (Vec<(LayerEntry, Vec<u8>)>, LayerSummary) {
    read(bytes).unwrap_or_else(|e| panic!("expected the layer to be read, got: {e}"))
}

fn paths(entries: &[(LayerEntry, Vec<u8>)]) -> Vec<&str> {
    entries.iter().map(|(e, _)| e.path.as_str()).collect()
}

fn escapes(s: &LayerSummary) -> Vec<&str> {
    s.warnings
        .iter()
        .filter_map(|w| match w {
            Warning::Escapes { path } => Some(path.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn paths_are_normalised() {
    let long = format!("deep/{}/file", "d".repeat(120));
    let long_link = format!("/{}", "t".repeat(150));
    let bytes = Tar::new()
        .dir(b"./")
        .file(b"./a/b", b"1")
        .file(b"/abs/path", b"2")
        .file(b"c//d/.", b"3")
        .gnu_longname(long.as_bytes())
        .file(b"ignored-short-name", b"4")
        .pax(&[("path", format!("./pax/{}", "p".repeat(110)).as_bytes()), ("linkpath", long_link.as_bytes())])
        .link(b"ignored", SYMLINK, b"short")
        .end()
        .bytes();
    let (entries, summary) = ok(&bytes);
    assert_eq!(paths(&entries), ["", "a/b", "abs/path", "c/d", long.as_str(), &format!("pax/{}", "p".repeat(110))]);
    assert_eq!(entries[0].0.kind, EntryKind::Dir);
    let data: Vec<&[u8]> = entries[1..5].iter().map(|(_, d)| d.as_slice()).collect();
    assert_eq!(data, [b"1", b"2", b"3", b"4"]);
    assert_eq!(entries[5].0.kind, EntryKind::Symlink(long_link));
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    assert_eq!(summary.entries, 6);
}

#[test]
fn dotdot_entries_are_skipped_with_a_warning() {
    let long_escape = format!("{}/../../../{}", "a".repeat(60), "e".repeat(60));
    let bytes = Tar::new()
        .file(b"../evil", b"x")
        .file(b"a/../../evil2", b"x")
        .file(b"a/../b", b"x")
        .file(b"ok", b"fine")
        .link(b"h1", HARDLINK, b"../outside")
        .link(b"h2", HARDLINK, b"/ok")
        .link(b"h3", HARDLINK, b".")
        .link(b"h4", HARDLINK, b"a/../../x")
        .gnu_longname(long_escape.as_bytes())
        .file(b"innocent-gnu", b"x")
        .pax(&[("path", b"../pax-evil")])
        .file(b"innocent-pax", b"x")
        .file(b"after", b"still read")
        .end()
        .bytes();
    let (entries, summary) = ok(&bytes);
    assert_eq!(paths(&entries), ["ok", "h2", "after"]);
    assert_eq!(entries[0].1, b"fine");
    assert_eq!(entries[1].0.kind, EntryKind::HardLink("ok".into()), "absolute hard-link targets are inside the root");
    assert_eq!(entries[2].1, b"still read", "skipped entries must not desynchronise the stream");
    assert_eq!(
        escapes(&summary),
        [
            "../evil",
            "a/../../evil2",
            "a/../b",
            "h1 (hard link to ../outside)",
            "h3 (hard link to .)",
            "h4 (hard link to a/../../x)",
            long_escape.as_str(),
            "../pax-evil",
        ]
    );
    assert_eq!(summary.warnings.len(), 8, "{:?}", summary.warnings);
}

#[test]
fn whiteouts_and_whiteouts_that_would_escape() {
    let bytes = Tar::new()
        .file(b"etc/.wh.passwd", b"")
        .file(b"var/cache/.wh..wh..opq", b"")
        .file(b".wh.top", b"")
        // A whiteout whose target is `..` (`a/.wh...` would remove `a/..`, i.e. the
        // root's children seen from `a`) or `.` or nothing: never a path to act on.
        .file(b"a/.wh...", b"")
        .file(b".wh...", b"")
        .file(b"b/.wh..", b"")
        .file(b"c/.wh.", b"")
        .end()
        .bytes();
    let (entries, summary) = ok(&bytes);
    let got: Vec<(&str, &EntryKind)> = entries.iter().map(|(e, _)| (e.path.as_str(), &e.kind)).collect();
    assert_eq!(
        got,
        [
            ("etc/passwd", &EntryKind::Whiteout),
            ("var/cache", &EntryKind::OpaqueWhiteout),
            ("top", &EntryKind::Whiteout)
        ]
    );
    assert_eq!(escapes(&summary).len(), 4, "{:?}", summary.warnings);
    for (e, _) in &entries {
        assert!(!e.path.split('/').any(|c| c == ".." || c == "."), "{e:?}");
    }
}

#[test]
fn symlinks_leaving_the_root_are_yielded_verbatim() {
    let bytes = Tar::new()
        .link(b"s1", SYMLINK, b"/etc/shadow")
        .link(b"s2", SYMLINK, b"../../../../etc")
        .link(b"dir/s3", SYMLINK, b"a/../../../x")
        .end()
        .bytes();
    let (entries, summary) = ok(&bytes);
    let kinds: Vec<&EntryKind> = entries.iter().map(|(e, _)| &e.kind).collect();
    assert_eq!(
        kinds,
        [
            &EntryKind::Symlink("/etc/shadow".into()),
            &EntryKind::Symlink("../../../../etc".into()),
            &EntryKind::Symlink("a/../../../x".into()),
        ]
    );
    assert_eq!(paths(&entries), ["s1", "s2", "dir/s3"]);
    assert!(summary.warnings.is_empty());
}

#[test]
fn devices_and_fifos_are_yielded_with_their_kind() {
    let bytes = Tar::new()
        .entry(Hdr::new(b"dev/null", CHAR), b"")
        .entry(Hdr::new(b"dev/sda", BLOCK), b"")
        // A fifo header claiming data: the data is skipped, never handed out as content.
        .entry(Hdr::new(b"run/fifo", FIFO), b"0123456789")
        .file(b"after", b"ok")
        .entry(Hdr::new(b"weird", b'Z'), b"zz")
        .file(b"after2", b"ok2")
        .end()
        .bytes();
    let (entries, summary) = ok(&bytes);
    let got: Vec<(&str, &EntryKind, u64)> = entries.iter().map(|(e, _)| (e.path.as_str(), &e.kind, e.size)).collect();
    assert_eq!(
        got,
        [
            ("dev/null", &EntryKind::CharDevice, 0),
            ("dev/sda", &EntryKind::BlockDevice, 0),
            ("run/fifo", &EntryKind::Fifo, 0),
            ("after", &EntryKind::File, 2),
            ("after2", &EntryKind::File, 3),
        ]
    );
    assert_eq!(entries[3].1, b"ok");
    assert_eq!(entries[4].1, b"ok2");
    assert_eq!(summary.warnings, [Warning::Unsupported { path: "weird".into(), type_flag: b'Z' }]);
}

fn truncated_at(bytes: &[u8]) -> u64 {
    match read(bytes) {
        Err(LayerError::Truncated { offset, .. }) => offset,
        other => panic!("expected Truncated, got {:?}", other.map(|(e, s)| (paths(&e).join(","), s))),
    }
}

#[test]
fn header_sizes_larger_than_the_stream_are_truncation() {
    let t = Tar::new().dir(b"d/");
    let at = t.pos();
    let bytes = t.lying_file(b"d/big", 1 << 20, b"only ten b").bytes();
    assert_eq!(truncated_at(&bytes), at);

    // A size near the top of the octal field (8 GiB).
    let t = Tar::new().file(b"a", b"a");
    let at = t.pos();
    let bytes = t.lying_file(b"huge", 0o77777777777, b"tiny").bytes();
    assert_eq!(truncated_at(&bytes), at);

    // PAX `size` overrides the header's: the stream is short for the PAX size.
    let t = Tar::new().pax(&[("size", b"999999")]);
    let at = t.pos();
    let bytes = t.file(b"small-in-header", b"abc").end().bytes();
    assert_eq!(truncated_at(&bytes), at);
}

#[test]
fn streams_cut_mid_data_or_mid_header_are_truncation() {
    let t = Tar::new().file(b"one", &[1u8; 700]);
    let second = t.pos();
    let full = t.file(b"two", &[2u8; 3000]).end().bytes();
    // Mid-data of the second entry.
    assert_eq!(truncated_at(&full[..second as usize + 512 + 1000]), second);
    // Right after the second header (no data at all).
    assert_eq!(truncated_at(&full[..second as usize + 512]), second);
    // Mid-header: the offset is the header being read.
    assert_eq!(truncated_at(&full[..second as usize + 100]), second);
    // Mid-data of the first entry.
    assert_eq!(truncated_at(&full[..600]), 0);
    // Cut exactly after a complete entry: a stream without end blocks (accepted).
    let (entries, _) = ok(&full[..second as usize]);
    assert_eq!(paths(&entries), ["one"]);
}

#[test]
fn bad_checksums_and_garbage_headers_are_corrupt() {
    let t = Tar::new().file(b"good", b"data");
    let at = t.pos();
    let mut bad = header(&Hdr::new(b"bad-checksum", tarcraft::FILE));
    bad[0] = b'B'; // changed after the checksum was computed
    let bytes = t.clone().raw(&bad).end().bytes();
    match read(&bytes) {
        Err(LayerError::Corrupt { offset, .. }) => assert_eq!(offset, at),
        other => panic!("{:?}", other.err()),
    }

    let mut garbage = [0u8; 512];
    crate::util::Rng::new(7).fill(&mut garbage);
    let bytes = t.clone().raw(&garbage).end().bytes();
    match read(&bytes) {
        Err(LayerError::Corrupt { offset, .. }) => assert_eq!(offset, at),
        other => panic!("{:?}", other.err()),
    }

    // A size field that is not a number, with a valid checksum.
    let mut h = header(&Hdr::new(b"bad-size", tarcraft::FILE));
    h[124..136].copy_from_slice(b"zzzzzzzzzzz\0");
    set_checksum(&mut h);
    let bytes = t.raw(&h).end().bytes();
    match read(&bytes) {
        Err(LayerError::Corrupt { offset, .. }) => assert_eq!(offset, at),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn duplicate_paths_are_both_yielded_with_a_warning() {
    let bytes = Tar::new()
        .file(b"a", b"first")
        .file(b"a", b"second")
        .file(b"./b", b"1")
        .file(b"b", b"2")
        .dir(b"d/")
        .dir(b"d")
        .end()
        .bytes();
    let (entries, summary) = ok(&bytes);
    assert_eq!(paths(&entries), ["a", "a", "b", "b", "d", "d"]);
    assert_eq!(entries[1].1, b"second", "later wins: both are handed out in order");
    assert_eq!(
        summary.warnings,
        [
            Warning::Duplicate { path: "a".into() },
            Warning::Duplicate { path: "b".into() },
            Warning::Duplicate { path: "d".into() }
        ]
    );
}

#[test]
fn non_utf8_names_are_converted_with_a_warning() {
    let bytes =
        Tar::new().file(b"caf\xe9.txt", b"x").link(b"link", SYMLINK, b"t\xffrget").file(b"ok", b"y").end().bytes();
    let (entries, summary) = ok(&bytes);
    assert_eq!(paths(&entries), ["caf\u{fffd}.txt", "link", "ok"]);
    assert_eq!(entries[1].0.kind, EntryKind::Symlink("t\u{fffd}rget".into()));
    assert_eq!(summary.warnings, [Warning::NonUtf8 { path: "caf\u{fffd}.txt".into() }]);
}

#[test]
fn zero_block_padding_oddities() {
    let body = Tar::new().file(b"a", b"1").dir(b"d/");
    let len = body.pos();
    // No end blocks at all.
    let (e, s) = ok(&body.clone().bytes());
    assert_eq!((paths(&e), s.stream_bytes), (vec!["a", "d"], len));
    // One zero block.
    let (e, s) = ok(&body.clone().zeros(1).bytes());
    assert_eq!((paths(&e), s.stream_bytes), (vec!["a", "d"], len + 512));
    // The usual two, plus the record padding GNU tar adds (to 10240 bytes).
    let (e, s) = ok(&body.clone().zeros(18).bytes());
    assert_eq!((paths(&e), s.stream_bytes), (vec!["a", "d"], len + 18 * 512));
    // Garbage after the end: ignored, but drained (counted).
    let bytes = body.clone().end().raw(b"garbage after the end of the archive").bytes();
    let (e, s) = ok(&bytes);
    assert_eq!((paths(&e), s.stream_bytes), (vec!["a", "d"], bytes.len() as u64));
    // One zero block, then a real header: the archive ended at the zero block, and the
    // entry behind it is not handed out (GNU tar stops there too).
    let bytes = body.clone().zeros(1).file(b"hidden", b"h").end().bytes();
    let (e, s) = ok(&bytes);
    assert_eq!((paths(&e), s.stream_bytes), (vec!["a", "d"], bytes.len() as u64));
    // An empty stream is an empty layer.
    let (e, s) = ok(b"");
    assert_eq!((e.len(), s.stream_bytes), (0, 0));
}

/// Reads a blob through `open_verified` and the reader.
fn verified(blob: &[u8], digest: Digest, size: u64, diff_id: Option<Digest>) -> Outcome {
    let (_, r) = open_verified(blob, digest, size, diff_id).map_err(LayerError::Io)?;
    read_with(r, true)
}

#[test]
fn what_follows_the_end_is_verified() {
    let body = Tar::new().file(b"a", b"1").end();
    let good = body.clone().raw(b"trailing A").bytes();
    let evil = body.raw(b"trailing B").bytes();
    let diff_id = Digest::of(&good);
    // Plain: digest == diff_id.
    assert!(verified(&good, diff_id, good.len() as u64, Some(diff_id)).is_ok());
    let err = verified(&evil, diff_id, evil.len() as u64, Some(diff_id)).unwrap_err();
    assert!(err.to_string().contains(&diff_id.to_string()), "{err}");
    // Gzipped, with the real blob digest but the diff_id of other content.
    let gz = gzip(&evil);
    let err = verified(&gz, Digest::of(&gz), gz.len() as u64, Some(diff_id)).unwrap_err();
    assert!(err.to_string().contains(&diff_id.to_string()), "{err}");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn truncated_compressed_streams_fail() {
    let tar = Tar::new().file(b"a", &[7u8; 100_000]).file(b"b", b"x").end().bytes();
    let gz = gzip(&tar);
    let cut = &gz[..gz.len() / 2];
    // The descriptor matches the cut bytes: only decompression can notice.
    let r = verified(cut, Digest::of(cut), cut.len() as u64, None);
    assert!(matches!(r, Err(LayerError::Truncated { .. })), "{:?}", r.err());
    let z = zstd::encode_all(&tar[..], 3).unwrap();
    let cut = &z[..z.len() / 2];
    let r = verified(cut, Digest::of(cut), cut.len() as u64, None);
    assert!(matches!(r, Err(LayerError::Truncated { .. }) | Err(LayerError::Io(_))), "{:?}", r.err());
    // A blob shorter than its descriptor says: a size error naming the blob.
    let d = Digest::of(&gz);
    let r = verified(&gz[..gz.len() - 10], d, gz.len() as u64, None);
    let err = r.unwrap_err();
    assert!(err.to_string().contains(&d.to_string()), "{err}");
}

/// 1 GiB of zeros as a gzip stream of 16 members of 64 MiB each (multi-member gzip is
/// valid; one member is compressed and repeated, which keeps building the bomb quick).
fn gzip_bomb() -> Vec<u8> {
    let member = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            e.write_all(&zeros).unwrap();
        }
        e.finish().unwrap()
    };
    member.repeat(16)
}

#[test]
fn zstd_bomb_is_refused_quickly() {
    // 1 GiB of zeros compresses to a few KB with zstd: far past the ratio bound.
    let bomb = {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            e.write_all(&zeros).unwrap();
        }
        e.finish().unwrap()
    };
    let size = bomb.len() as u64;
    let start = Instant::now();
    let r = crate::util::within(Duration::from_secs(30), "zstd bomb", move || {
        verified(&bomb, Digest::of(&bomb), size, None).map(|(_, s)| s.stream_bytes)
    });
    let err = r.expect_err("a zstd bomb must be refused");
    assert!(err.to_string().contains("decompression bomb"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

#[test]
fn gzip_bomb_is_bounded_by_its_declared_size() {
    let bomb = gzip_bomb();
    let size = bomb.len() as u64;
    let digest = Digest::of(&bomb);
    // Deflate cannot exceed ~1032:1, so a gzip stream with its true size never passes
    // the ratio bound: the work is bounded by size x MAX_RATIO, and here the stream is
    // just an empty archive followed by zeros.
    assert!((1u64 << 30) <= size * MAX_RATIO, "bomb ratio {} exceeds the bound", (1u64 << 30) / size);
    let start = Instant::now();
    let b = bomb.clone();
    let r = crate::util::within(Duration::from_secs(60), "gzip bomb", move || {
        verified(&b, digest, size, None).map(|(e, s)| (e.len(), s.stream_bytes))
    });
    let (entries, stream) = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((entries, stream), (0, 1 << 30));
    eprintln!("gzip bomb: {} bytes -> 1 GiB read in {:?}", size, start.elapsed());

    // The same bomb under a smaller declared size (a lying descriptor) is cut off at
    // that size: refused at once, naming the blob.
    let start = Instant::now();
    let r = crate::util::within(Duration::from_secs(30), "gzip bomb, small size", move || {
        verified(&bomb, digest, 4096, None).map(|(_, s)| s.stream_bytes)
    });
    let err = r.expect_err("a blob longer than its descriptor must fail");
    assert!(err.to_string().contains(&digest.to_string()), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
}
