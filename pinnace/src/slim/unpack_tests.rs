//! Unpack tests on hand-made layers (the layer writer, and raw tar headers for hostile
//! input), plus the helpers the other slim tests use to make images.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::json;

use super::*;
use crate::build::store::{BlobStore, StoreSource};
use crate::fs::tests::{file, spec, tar_of};
use crate::layer::{LayerEntrySpec, SpecKind};
use crate::oci::{self, media, RawManifest};

/// An image whose layers are the given plain tars, served from a private store.
pub(crate) fn image_of(layers: Vec<Vec<u8>>) -> (StoreSource, Image) {
    image_with_config(layers, json!({"Env": ["PATH=/usr/bin:/bin"], "Labels": {"a": "b"}}))
}

/// [`image_of`] with `config` as the config's `config` object.
pub(crate) fn image_with_config(layers: Vec<Vec<u8>>, config: serde_json::Value) -> (StoreSource, Image) {
    let mut store = BlobStore::new("pinnace-test-").unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        let len = tar.len();
        let d = store.insert_bytes(tar);
        descs.push(json!({"mediaType": media::OCI_LAYER, "digest": d.to_string(), "size": len}));
        diff_ids.push(d.to_string());
    }
    let history: Vec<_> = diff_ids.iter().map(|_| json!({"created_by": "test"})).collect();
    let cfg = json!({"architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00Z", "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history});
    let cfg = oci::canonical_json(&cfg);
    let len = cfg.len();
    let cd = store.insert_bytes(cfg);
    let m = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": cd.to_string(), "size": len}, "layers": descs});
    let manifest = RawManifest::new(oci::canonical_json(&m), Some(media::OCI_MANIFEST)).unwrap();
    let src = store.into_source(manifest, None, "test image");
    let img = Image::open(&src, None).unwrap();
    (src, img)
}

/// A raw tar whose names and link names are written into the headers byte for byte,
/// bypassing every check a tar library makes (`..`, absolute paths).
pub(crate) fn hostile_tar(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, kind, data, link) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

pub(crate) fn owned(e: LayerEntrySpec, mode: u32, uid: u32, gid: u32) -> LayerEntrySpec {
    LayerEntrySpec { mode, uid, gid, ..e }
}

fn do_unpack(layers: Vec<Vec<u8>>) -> (tempfile::TempDir, Unpacked) {
    let (src, img) = image_of(layers);
    let dir = tempfile::tempdir().unwrap();
    let u = unpack(&src, &img, dir.path()).unwrap();
    (dir, u)
}

/// Every path under `root`, relative, sorted, with a kind letter.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let k = if t.is_symlink() {
                'l'
            } else if t.is_dir() {
                stack.push(e.path());
                'd'
            } else {
                'f'
            };
            out.push(format!("{k} {rel}"));
        }
    }
    out.sort();
    out
}

#[test]
fn final_filesystem_with_whiteouts_opaque_dirs_links_and_modes() {
    let l0 = tar_of(vec![
        owned(file("usr/bin/tool", b"v1", 0o755), 0o4755, 1000, 1001),
        spec("usr/bin/tool2", SpecKind::HardLink("usr/bin/tool".into())),
        file("usr/lib/a", b"aaaa", 0o644),
        spec("bin", SpecKind::Symlink("usr/bin".into())),
        owned(spec("tmp", SpecKind::Dir), 0o1777, 0, 0),
        file("opt/old/x", b"x", 0o644),
        file("gone", b"gone", 0o644),
        file("keepme", b"0123456789", 0o600),
        spec("keepme2", SpecKind::HardLink("keepme".into())),
        owned(spec("ro", SpecKind::Dir), 0o555, 0, 0),
        file("ro/inside", b"i", 0o444),
    ]);
    let l1 = tar_of(vec![
        file("usr/lib/a", b"new a", 0o640),
        spec("gone", SpecKind::Whiteout),
        spec("keepme", SpecKind::Whiteout),
        spec("opt", SpecKind::OpaqueWhiteout),
        file("opt/new", b"n", 0o644),
    ]);
    let (dir, u) = do_unpack(vec![l0, l1]);
    let r = dir.path();
    assert_eq!(
        listing(r),
        [
            "d opt",
            "d ro",
            "d tmp",
            "d usr",
            "d usr/bin",
            "d usr/lib",
            "f keepme2",
            "f opt/new",
            "f ro/inside",
            "f usr/bin/tool",
            "f usr/bin/tool2",
            "f usr/lib/a",
            "l bin",
        ]
    );
    assert_eq!(fs::read(r.join("usr/lib/a")).unwrap(), b"new a");
    assert_eq!(fs::read(r.join("keepme2")).unwrap(), b"0123456789", "a deleted target's content lives on");
    assert_eq!(fs::read_link(r.join("bin")).unwrap(), Path::new("usr/bin"));
    let tool = fs::metadata(r.join("usr/bin/tool")).unwrap();
    assert_eq!((tool.mode() & 0o7777, tool.uid(), tool.gid()), (0o4755, 1000, 1001));
    assert_eq!(tool.ino(), fs::metadata(r.join("usr/bin/tool2")).unwrap().ino());
    assert_eq!(tool.nlink(), 2);
    assert_eq!(fs::metadata(r.join("tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);
    assert_eq!(fs::metadata(r.join("ro")).unwrap().permissions().mode() & 0o7777, 0o555);
    assert_eq!(fs::metadata(r.join("usr/lib/a")).unwrap().permissions().mode() & 0o7777, 0o640);
    // Contents counted once per inode: v1 (2) + aaaa->"new a" (5) + 10 + n (1) + i (1).
    assert_eq!((u.files, u.bytes), (6, 19));
    assert!(u.skipped.is_empty() && u.warnings.is_empty(), "{:?} {:?}", u.skipped, u.warnings);
    assert_eq!(u.tree.walk().len(), 13);
}

#[test]
fn devices_and_fifos_are_skipped_and_listed() {
    let l0 = hostile_tar(&[
        ("dev/null", tar::EntryType::Char, b"", ""),
        ("run/fifo", tar::EntryType::Fifo, b"", ""),
        ("etc/hostname", tar::EntryType::Regular, b"box\n", ""),
    ]);
    let (dir, u) = do_unpack(vec![l0]);
    assert_eq!(listing(dir.path()), ["d dev", "d etc", "d run", "f etc/hostname"]);
    let skipped: Vec<&str> = u.skipped.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(skipped, ["/dev/null", "/run/fifo"]);
}

#[test]
fn hostile_layers_never_write_outside_dest() {
    use tar::EntryType::{Link, Regular, Symlink};
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("root");
    fs::create_dir(&dest).unwrap();
    let marker = format!("pinnace-unpack-escape-{}", std::process::id());
    let l0 = hostile_tar(&[
        ("etc", Symlink, b"", "/"),
        ("up", Symlink, b"", "../../../.."),
        ("outer", Symlink, b"", ".."),
        ("../escape-dotdot", Regular, b"x", ""),
        ("/abs-file", Regular, b"abs", ""),
        ("hl", Link, b"", "../../etc/shadow"),
    ]);
    let l1 = hostile_tar(&[
        (&format!("etc/{marker}"), Regular, b"pwned", ""),
        (&format!("up/tmp/{marker}"), Regular, b"pwned", ""),
        (&format!("outer/{marker}"), Regular, b"pwned", ""),
    ]);
    let (src, img) = image_of(vec![l0, l1]);
    let u = unpack(&src, &img, &dest).unwrap();
    // Only `dest` is in the outer directory, and nothing reached the host's root or /tmp.
    let outer_names: Vec<_> = fs::read_dir(outer.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outer_names, ["root"]);
    assert!(!Path::new("/").join(&marker).exists());
    assert!(!Path::new("/tmp").join(&marker).exists());
    // The symlink parents were replaced by directories holding the files.
    let l = listing(&dest);
    assert!(l.contains(&format!("f etc/{marker}")), "{l:?}");
    assert!(l.contains(&format!("f up/tmp/{marker}")), "{l:?}");
    assert!(l.contains(&format!("f outer/{marker}")), "{l:?}");
    assert!(l.contains(&"f abs-file".to_string()), "{l:?}");
    assert!(!l.iter().any(|p| p.contains("escape-dotdot") || p.contains("hl")), "{l:?}");
    assert!(fs::symlink_metadata(dest.join("etc")).unwrap().is_dir());
    assert!(!u.tree.warnings().is_empty());
}

#[test]
fn destination_must_be_an_empty_directory() {
    let (src, img) = image_of(vec![tar_of(vec![file("a", b"a", 0o644)])]);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("x"), "x").unwrap();
    assert!(matches!(unpack(&src, &img, dir.path()), Err(UnpackError::BadDestination { .. })));
    let link = dir.path().join("link");
    std::os::unix::fs::symlink("/tmp", &link).unwrap();
    assert!(matches!(unpack(&src, &img, &link), Err(UnpackError::BadDestination { .. })));
    assert!(matches!(unpack(&src, &img, &dir.path().join("missing")), Err(UnpackError::BadDestination { .. })));
}
