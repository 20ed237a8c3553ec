//! Hostile layers through a full `pinnace copy`: each crafted tar is wrapped (plain and
//! gzipped) into an OCI layout written here with correct digests, then copied to every
//! file sink. `copy` moves layer bytes without interpreting entries, so nothing may
//! appear outside the destination: the test lists the whole work dir before and after,
//! and checks the absolute paths the layers aim at. The copied layers must read back
//! exactly like the originals (same entries, same warnings, same error).

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use pinnace::layer::{LayerError, LayerReader, LayerSummary};
use pinnace::transport::{open_source, Image, ImageRef};

use crate::tarcraft::{Hdr, Tar, BLOCK, CHAR, FIFO, HARDLINK, SYMLINK};
use crate::util::{pinnace_cmd, run, sha256_hex, tempdir, tree};

fn escape_name() -> String {
    format!("pinnace-hostile-{}", std::process::id())
}

/// The absolute path the hostile layers aim at on the host.
fn absolute_target() -> PathBuf {
    std::env::temp_dir().join(format!("{}-abs", escape_name()))
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let esc = escape_name();
    let abs = absolute_target().display().to_string();
    vec![
        (
            "dotdot",
            Tar::new()
                .file(format!("../../../{esc}").as_bytes(), b"escaped")
                .file(format!("a/../../{esc}").as_bytes(), b"escaped")
                .end()
                .bytes(),
        ),
        ("absolute", Tar::new().file(abs.as_bytes(), b"escaped").end().bytes()),
        (
            "symlink-then-write-through-it",
            Tar::new()
                .link(b"esc", SYMLINK, b"../../../..")
                .file(format!("esc/{esc}").as_bytes(), b"escaped")
                .link(b"abs", SYMLINK, std::env::temp_dir().display().to_string().as_bytes())
                .file(format!("abs/{esc}-via-link").as_bytes(), b"escaped")
                .end()
                .bytes(),
        ),
        (
            "hardlink-out",
            Tar::new()
                .link(b"h", HARDLINK, b"../../../../etc/passwd")
                .link(b"h2", HARDLINK, b"/etc/passwd")
                .end()
                .bytes(),
        ),
        (
            "devices",
            Tar::new()
                .entry(Hdr::new(b"null", CHAR), b"")
                .entry(Hdr::new(b"sda", BLOCK), b"")
                .entry(Hdr::new(b"fifo", FIFO), b"")
                .end()
                .bytes(),
        ),
        ("lying-size", Tar::new().lying_file(b"big", 1 << 30, b"short").bytes()),
        ("cut-mid-header", Tar::new().file(b"a", b"1").bytes()[..700].to_vec()),
        ("duplicates", Tar::new().file(b"a", b"1").file(b"./a", b"2").end().bytes()),
        ("non-utf8", Tar::new().file(b"caf\xe9", b"x").end().bytes()),
        ("garbage-after-end", Tar::new().file(b"a", b"1").end().raw(b"trailing garbage").bytes()),
        ("whiteout-dotdot", Tar::new().file(b"a/.wh...", b"").file(b".wh...", b"").end().bytes()),
        ("empty", Vec::new()),
    ]
}

/// Writes an OCI layout at `dir` holding one image whose only layer is `blob`.
fn layout_with_layer(dir: &Path, blob: &[u8], diff_id: &str, media_type: &str) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let h = sha256_hex(b);
        fs::write(blobs.join(&h), b).unwrap();
        (format!("sha256:{h}"), b.len())
    };
    let (ld, ls) = put(blob);
    let arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" };
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let (cd, cs) = put(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": media_type, "digest": ld, "size": ls}],
    }))
    .unwrap();
    let (md, ms) = put(&manifest);
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
        "annotations": {"org.opencontainers.image.ref.name": "t"},
    }]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// The reader's outcome, comparable across copies.
fn outcome(r: Result<(Vec<String>, LayerSummary), LayerError>) -> Result<(Vec<String>, LayerSummary), String> {
    r.map_err(|e| match e {
        LayerError::Truncated { offset, .. } => format!("truncated at {offset}"),
        LayerError::Corrupt { offset, .. } => format!("corrupt at {offset}"),
        LayerError::Io(e) => format!("io: {}", e.kind()),
    })
}

fn read_tar(bytes: &[u8]) -> Result<(Vec<String>, LayerSummary), LayerError> {
    let mut paths = Vec::new();
    let s = LayerReader::new(bytes).visit(|e, _| {
        paths.push(format!("{} {:?}", e.path, e.kind));
        Ok(())
    })?;
    Ok((paths, s))
}

fn read_copied_layer(reference: &str) -> Result<(Vec<String>, LayerSummary), LayerError> {
    let r: ImageRef = reference.parse().unwrap();
    let src = open_source(&r).unwrap();
    let img = Image::open(src.as_ref(), None).unwrap();
    let (_, rd) = img.open_layer(src.as_ref(), 0).unwrap();
    let mut paths = Vec::new();
    let s = LayerReader::new(rd).visit(|e, _| {
        paths.push(format!("{} {:?}", e.path, e.kind));
        Ok(())
    })?;
    Ok((paths, s))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn assert_no_escape(before: &BTreeSet<PathBuf>, work: &Path, dst: &Path, what: &str) {
    let after = tree(work);
    let dst_rel = dst.strip_prefix(work).unwrap();
    let extra: Vec<&PathBuf> = after.difference(before).filter(|p| !p.starts_with(dst_rel)).collect();
    assert!(extra.is_empty(), "{what}: created outside the destination: {extra:?}");
    let missing: Vec<&PathBuf> = before.difference(&after).collect();
    assert!(missing.is_empty(), "{what}: removed: {missing:?}");
    let esc = escape_name();
    for p in [
        absolute_target(),
        std::env::temp_dir().join(format!("{esc}-via-link")),
        std::env::temp_dir().join(&esc),
        crate::util::scratch_root().join(&esc),
        crate::util::scratch_root().parent().unwrap().join(&esc),
        PathBuf::from("/").join(&esc),
    ] {
        assert!(!p.exists(), "{what}: {} exists", p.display());
    }
}

#[test]
fn hostile_layers_copy_without_writing_outside_the_destination() {
    let work = tempdir();
    let w = work.path();
    let out = w.join("out");
    fs::create_dir_all(&out).unwrap();
    for (name, tar) in corpus() {
        let original = outcome(read_tar(&tar));
        let diff_id = format!("sha256:{}", sha256_hex(&tar));
        for (form, blob, mt) in [
            ("plain", tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
            ("gzip", gzip(&tar), "application/vnd.oci.image.layer.v1.tar+gzip"),
        ] {
            let src = w.join(format!("src-{name}-{form}"));
            layout_with_layer(&src, &blob, &diff_id, mt);
            for (kind, dst) in [
                ("oci", out.join(format!("{name}-{form}-layout"))),
                ("oci-archive", out.join(format!("{name}-{form}-oci.tar"))),
                ("docker-archive", out.join(format!("{name}-{form}-docker.tar"))),
            ] {
                let what = format!("{name} ({form}) -> {kind}");
                let before = tree(w);
                let dst_ref = match kind {
                    "docker-archive" => format!("{kind}:{}", dst.display()),
                    _ => format!("{kind}:{}:t", dst.display()),
                };
                // Relative escapes would land in the working directory's parents.
                let o = run(pinnace_cmd().current_dir(&out).args([
                    "copy",
                    "-q",
                    &format!("oci:{}:t", src.display()),
                    &dst_ref,
                ]));
                assert_eq!(o.code(), Some(0), "{what}: {}", o.stderr);
                assert_no_escape(&before, w, &dst, &what);
                crate::check::validates(&dst_ref);
                assert_eq!(outcome(read_copied_layer(&dst_ref)), original, "{what}: the copy reads differently");
            }
        }
    }
}

#[test]
fn decompression_bomb_layer_fails_the_copy_and_writes_nothing() {
    // A zstd stream of 256 MiB of zeros: ~8 KB, far past the ratio bound.
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    let work = tempdir();
    let w = work.path();
    let src = w.join("src");
    let diff_id = format!("sha256:{}", sha256_hex(&vec![0u8; 256 << 20]));
    layout_with_layer(&src, &bomb, &diff_id, "application/vnd.oci.image.layer.v1.tar+zstd");
    let out = w.join("out");
    fs::create_dir_all(&out).unwrap();
    let dst = out.join("docker.tar");
    let before = tree(w);
    let o = run(pinnace_cmd().args([
        "copy",
        "-q",
        &format!("oci:{}:t", src.display()),
        &format!("docker-archive:{}", dst.display()),
    ]));
    assert_eq!(o.code(), Some(1), "{}", o.stderr);
    assert!(o.stderr.contains("decompression bomb") && o.stderr.contains(&sha256_hex(&bomb)), "{}", o.stderr);
    assert_eq!(tree(w), before, "a failed copy left files behind");
}
