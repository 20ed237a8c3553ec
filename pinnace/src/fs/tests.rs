//! FsTree unit tests: layers built with the one layer writer, applied in order.

use std::sync::Arc;

use super::scan::scan_layer;
use super::*;
use crate::layer::{Compression, EncoderOptions, FileSource, LayerBuilder, LayerEntrySpec, SpecKind};

pub(crate) fn file(path: &str, content: &[u8], mode: u32) -> LayerEntrySpec {
    LayerEntrySpec {
        path: path.into(),
        kind: SpecKind::File(FileSource::Bytes(Arc::from(content))),
        mode,
        uid: 0,
        gid: 0,
    }
}

pub(crate) fn spec(path: &str, kind: SpecKind) -> LayerEntrySpec {
    LayerEntrySpec { path: path.into(), kind, mode: 0o755, uid: 0, gid: 0 }
}

pub(crate) fn tar_of(entries: Vec<LayerEntrySpec>) -> Vec<u8> {
    let mut b = LayerBuilder::new();
    for e in entries {
        b.add(e).unwrap();
    }
    let opts = EncoderOptions { compression: Compression::None, ..Default::default() };
    b.write(Vec::new(), &opts, 0).unwrap().0
}

fn tree_of(layers: Vec<Vec<LayerEntrySpec>>) -> FsTree {
    let mut t = FsTree::new();
    for (i, l) in layers.into_iter().enumerate() {
        t.apply_layer(i, scan_layer(&tar_of(l)[..], None).unwrap());
    }
    t
}

fn paths(t: &FsTree) -> Vec<String> {
    t.walk().into_iter().map(|id| t.path(id)).collect()
}

#[test]
fn layers_whiteouts_and_history() {
    let t = tree_of(vec![
        vec![file("a/x", b"one", 0o644), file("a/y", b"two", 0o644), file("b/z", b"z", 0o644)],
        vec![file("a/x", b"one!", 0o644), spec("a/y", SpecKind::Whiteout), spec("c", SpecKind::Symlink("a/x".into()))],
        vec![spec("b", SpecKind::Whiteout), file("a/x", b"one!", 0o600)],
    ]);
    assert_eq!(paths(&t), ["/a", "/a/x", "/c"]);
    let x = t.lookup("/a/x").unwrap();
    assert_eq!((t.added_in(x), t.modified_in(x)), (0, Some(2)));
    assert_eq!(t.meta(x).size, 4);
    assert_eq!(t.meta(x).mode, 0o600);
    assert_eq!(t.meta(x).hash, Some(crate::oci::Digest::of(b"one!")));
    let y = t.lookup_any("a/y").unwrap();
    assert!(!t.is_present(y));
    assert_eq!(t.removed_in(y), Some(1));
    let z = t.lookup_any("/b/z").unwrap();
    assert_eq!(t.removed_in(z), Some(2));
    let kinds = |l| t.layer_changes(l).iter().map(|c| (t.path(c.node), c.kind)).collect::<Vec<_>>();
    assert!(kinds(1).contains(&("/a/y".into(), ChangeKind::Removed)));
    assert!(kinds(1).contains(&("/a/x".into(), ChangeKind::Modified)));
    assert!(kinds(1).contains(&("/c".into(), ChangeKind::Added)));
    assert_eq!(t.resolve("/c", true).unwrap(), x);
    assert!(t.warnings().is_empty());
    // Replaying to layer 0 gives the first filesystem back.
    let t0 = t.as_of(0);
    assert_eq!(paths(&t0), ["/a", "/a/x", "/a/y", "/b", "/b/z"]);
    assert_eq!(t0.meta(t0.lookup("a/x").unwrap()).size, 3);
}

/// A raw tar, in an order the layer writer never produces (it writes an opaque marker
/// right after its directory's entry, as containers/storage does).
pub(crate) fn raw_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(*kind);
        h.set_mode(if *kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn opaque_whiteout_hides_only_lower_content() {
    use tar::EntryType::{Directory, Regular};
    let mut t = FsTree::new();
    let l0 = tar_of(vec![file("d/old", b"1", 0o644), file("d/sub/deep", b"2", 0o644)]);
    t.apply_layer(0, scan_layer(&l0[..], None).unwrap());
    // The marker after a same-layer entry must not hide it.
    let l1 = raw_tar(&[
        ("d/", Directory, b""),
        ("d/-new", Regular, b"3"),
        ("d/.wh..wh..opq", Regular, b""),
        ("d/sub/", Directory, b""),
    ]);
    t.apply_layer(1, scan_layer(&l1[..], None).unwrap());
    assert_eq!(paths(&t), ["/d", "/d/-new", "/d/sub"]);
}

#[test]
fn hard_links_take_their_target() {
    let t = tree_of(vec![vec![file("bin/a", b"binary", 0o755), spec("bin/b", SpecKind::HardLink("bin/a".into()))]]);
    let b = t.lookup("/bin/b").unwrap();
    assert_eq!(t.meta(b).kind, NodeKind::HardLink);
    assert_eq!(t.meta(b).size, 6);
    assert_eq!(t.meta(b).hash, Some(crate::oci::Digest::of(b"binary")));
    assert_eq!(t.file_bytes(), 6);
}

#[test]
fn hard_links_keep_content_of_deleted_or_replaced_targets() {
    let t = tree_of(vec![
        vec![
            file("a", b"0123456789", 0o644),
            spec("b", SpecKind::HardLink("a".into())),
            file("c", b"xyz", 0o644),
            spec("d", SpecKind::HardLink("c".into())),
            spec("e", SpecKind::HardLink("c".into())),
        ],
        // `a` deleted: its content lives on as `b`. `c` rewritten: the old content lives on
        // as `d` and `e` (one inode), the new one as `c`.
        vec![spec("a", SpecKind::Whiteout), file("c", b"XYZW", 0o644)],
    ]);
    let id = |p: &str| t.lookup(p).unwrap();
    assert_eq!(t.inode(id("d")), t.inode(id("e")));
    assert_ne!(t.inode(id("c")), t.inode(id("d")));
    assert_eq!(t.inode(id("/")), None);
    let files: Vec<String> = t.files().into_iter().map(|n| t.path(n)).collect();
    assert_eq!(files, ["/b", "/c", "/d"]);
    // Stored: 10 + 3 + 4 bytes of regular files; all of it is still shown.
    assert_eq!(t.file_bytes(), 17);
    // Deleting every name of a content drops it.
    let t = tree_of(vec![
        vec![file("a", b"0123456789", 0o644), spec("b", SpecKind::HardLink("a".into()))],
        vec![spec("a", SpecKind::Whiteout), spec("b", SpecKind::Whiteout)],
    ]);
    assert_eq!(t.file_bytes(), 0);
}

#[test]
fn missing_whiteouts_and_dir_replacement() {
    let t = tree_of(vec![
        vec![file("d/f", b"1", 0o644)],
        vec![spec("nothing", SpecKind::Whiteout), file("d", b"now a file", 0o644)],
    ]);
    assert_eq!(t.warnings(), [TreeWarning::WhiteoutMissing { layer: 1, path: "/nothing".into() }]);
    assert_eq!(paths(&t), ["/d"]);
    assert_eq!(t.removed_in(t.lookup_any("/d/f").unwrap()), Some(1));
}

#[test]
fn resolve_stays_inside_the_root() {
    let t = tree_of(vec![vec![
        file("usr/lib/libc.so.6", b"elf", 0o755),
        spec("lib", SpecKind::Symlink("usr/lib".into())),
        spec("up", SpecKind::Symlink("../../../usr".into())),
        spec("abs", SpecKind::Symlink("/lib/libc.so.6".into())),
        spec("loop", SpecKind::Symlink("loop".into())),
    ]]);
    let libc = t.lookup("usr/lib/libc.so.6").unwrap();
    assert_eq!(t.resolve("/lib/libc.so.6", true).unwrap(), libc);
    assert_eq!(t.resolve("/up/lib/libc.so.6", true).unwrap(), libc);
    assert_eq!(t.resolve("/abs", true).unwrap(), libc);
    assert_eq!(t.resolve("/abs", false).unwrap(), t.lookup("abs").unwrap());
    assert!(matches!(t.resolve("/loop", true), Err(ResolveError::Loop(_))));
    assert!(matches!(t.resolve("/nope/x", true), Err(ResolveError::NotFound(_))));
    assert!(matches!(t.resolve("/abs/x", true), Err(ResolveError::NotADirectory(_))));
}

#[test]
fn capture_hook_keeps_prefixes_of_selected_files() {
    let tar = tar_of(vec![file("bin/app", b"\x7fELF and more", 0o755), file("etc/x", b"text", 0o644)]);
    let hook = |p: &str| if p.starts_with("bin/") { 4 } else { 0 };
    let mut t = FsTree::new();
    t.apply_layer(0, scan_layer(&tar[..], Some(&hook)).unwrap());
    assert_eq!(t.prefix(t.lookup("/bin/app").unwrap()), Some(&b"\x7fELF"[..]));
    assert_eq!(t.prefix(t.lookup("/etc/x").unwrap()), None);
}
