//! Rebuild tests: a two-layer image unpacked, a keep-set from a hand-written trace, the
//! slim image written, read back (directly and through an `oci:` layout) and compared.

use serde_json::json;

use super::*;
use crate::analyze::inspect::{inspect, InspectOptions};
use crate::copy::{copy_image, CopyOptions};
use crate::fs::tests::{file, spec, tar_of};
use crate::fs::FsTree;
use crate::slim::keep::{keep_set, KeepOptions};
use crate::slim::trace::AccessKind::*;
use crate::slim::unpack::tests::{image_with_config, owned};
use crate::slim::unpack::unpack;
use crate::transport::{open_sink, open_source, ImageRef};

struct Fixture {
    src: StoreSource,
    image: Image,
    unpacked: Unpacked,
    keep: KeepSet,
    _dir: tempfile::TempDir,
}

fn fixture(trace: &[(&str, crate::slim::trace::AccessKind, bool)]) -> Fixture {
    let l0 = tar_of(vec![
        owned(file("usr/bin/app", b"#!app", 0o755), 0o4750, 1000, 1000),
        spec("usr/bin/app2", SpecKind::HardLink("usr/bin/app".into())),
        file("etc/conf", b"v1", 0o644),
        owned(spec("tmp", SpecKind::Dir), 0o1777, 0, 0),
        spec("var/lock", SpecKind::Dir),
        file("var/lock/stale", b"old", 0o644),
        file("usr/share/doc/big", &[7; 5000], 0o644),
    ]);
    let l1 = tar_of(vec![
        file("etc/conf", b"v2", 0o600),
        spec("bin", SpecKind::Symlink("usr/bin".into())),
        owned(spec("srv", SpecKind::Dir), 0o700, 33, 33),
        file("srv/data", b"d", 0o640),
    ]);
    let config = json!({"Entrypoint": ["/bin/app"], "Env": ["PATH=/bin"], "Labels": {"team": "x"}, "X-Unknown": 1});
    let (src, image) = image_with_config(vec![l0, l1], config);
    let dir = tempfile::tempdir().unwrap();
    let unpacked = unpack(&src, &image, dir.path()).unwrap();
    let t = crate::slim::keep::tests::trace(trace);
    let keep = keep_set(&unpacked.tree, &unpacked.root, &t, &KeepOptions::default()).unwrap();
    Fixture { src, image, unpacked, keep, _dir: dir }
}

const TRACE: &[(&str, crate::slim::trace::AccessKind, bool)] = &[
    ("/bin/app", Exec, true),
    ("/usr/bin/app2", Stat, true),
    ("/etc/conf", Open, true),
    ("/var/lock/x.pid", Create, true),
    ("/tmp", Stat, true),
    ("/srv/data", Open, true),
];

/// The final filesystem of an image, read back with inspect.
fn tree_of(src: &dyn Source) -> (Image, FsTree) {
    let img = Image::open(src, None).unwrap();
    let tree = inspect(src, &img, &InspectOptions::default()).unwrap().tree;
    (img, tree)
}

fn paths(t: &FsTree, ids: impl IntoIterator<Item = NodeId>) -> Vec<String> {
    let mut v: Vec<String> = ids.into_iter().map(|id| t.path(id)).collect();
    v.sort();
    v
}

#[test]
fn one_layer_reproducible_and_readable_through_an_oci_layout() {
    let f = fixture(TRACE);
    let opts = RebuildOptions::default();
    let slim = rebuild(&f.src, &f.image, &f.unpacked, &f.keep, &opts).unwrap();
    let again = rebuild(&f.src, &f.image, &f.unpacked, &f.keep, &opts).unwrap();
    assert_eq!(slim.manifest_digest, again.manifest_digest);
    assert_eq!(slim.layers.len(), 1);
    assert_eq!(slim.files, 3, "app (app2 is a hard link to it), conf, data");

    let out = tempfile::tempdir().unwrap();
    let r: ImageRef = format!("oci:{}:slim", out.path().display()).parse().unwrap();
    copy_image(&slim, open_sink(&r).unwrap(), &CopyOptions::default()).unwrap();
    copy_image(&slim, open_sink(&r).unwrap(), &CopyOptions::default()).unwrap(); // twice: still there
    let back = open_source(&r).unwrap();
    let (img, tree) = tree_of(back.as_ref());
    assert_eq!(img.manifest.digest, slim.manifest_digest);

    let kept = paths(&f.unpacked.tree, f.keep.reasons().keys().copied());
    assert_eq!(paths(&tree, tree.walk()), kept);
    assert_eq!(
        kept,
        [
            "/bin",
            "/etc",
            "/etc/conf",
            "/srv",
            "/srv/data",
            "/tmp",
            "/usr",
            "/usr/bin",
            "/usr/bin/app",
            "/usr/bin/app2",
            "/var",
            "/var/lock"
        ]
    );
    let meta = |p: &str| tree.meta(tree.lookup(p).unwrap()).clone();
    assert_eq!((meta("/usr/bin/app").mode, meta("/usr/bin/app").uid), (0o4750, 1000));
    assert_eq!(meta("/usr/bin/app2").kind, NodeKind::HardLink);
    assert_eq!((meta("/tmp").mode, meta("/srv").mode, meta("/srv").uid), (0o1777, 0o700, 33));
    assert_eq!(meta("/etc/conf").hash, Some(Digest::of(b"v2")));
    assert_eq!(meta("/bin").link.as_deref(), Some("usr/bin"));

    let c: Value = serde_json::from_slice(&img.config.bytes).unwrap();
    assert_eq!(c["config"]["Entrypoint"], json!(["/bin/app"]));
    assert_eq!(c["config"]["Labels"], json!({"team": "x"}));
    assert_eq!(c["config"]["X-Unknown"], json!(1));
    assert_eq!(c["history"].as_array().unwrap().len(), 1);
    assert_eq!(c["history"][0]["created_by"], json!("pinnace slim"));
    if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
        assert_eq!(c["created"], json!("2020-01-01T00:00:00Z"), "the source's");
    }
    let m: Value = serde_json::from_slice(&img.manifest.bytes).unwrap();
    assert_eq!(m["annotations"][SOURCE_ANNOTATION], json!(f.image.manifest.digest.to_string()));
    assert_eq!(m["annotations"][SOURCE_REF_ANNOTATION], json!("test image"));
}

#[test]
fn split_by_source_layers_puts_each_path_in_its_layer() {
    let f = fixture(TRACE);
    let opts = RebuildOptions { split_by_source_layers: true, ..Default::default() };
    let slim = rebuild(&f.src, &f.image, &f.unpacked, &f.keep, &opts).unwrap();
    assert_eq!(slim.layers.iter().map(|l| l.source_layer).collect::<Vec<_>>(), [Some(0), Some(1)]);
    let (_, tree) = tree_of(&slim);
    let layer = |p: &str| {
        let id = tree.lookup(p).unwrap();
        tree.modified_in(id).unwrap_or(tree.added_in(id))
    };
    assert_eq!((layer("/usr/bin/app"), layer("/usr/bin/app2"), layer("/var/lock"), layer("/tmp")), (0, 0, 0, 0));
    assert_eq!((layer("/etc/conf"), layer("/bin"), layer("/srv/data")), (1, 1, 1));
    // Directories above a path carry their own metadata in every layer.
    let srv = tree.meta(tree.lookup("/srv").unwrap());
    assert_eq!((srv.mode, srv.uid), (0o700, 33));
    let kept = paths(&f.unpacked.tree, f.keep.reasons().keys().copied());
    assert_eq!(paths(&tree, tree.walk()), kept);
}

#[test]
fn a_hard_link_without_its_target_becomes_a_file() {
    let f = fixture(&[("/usr/bin/app2", Open, true)]);
    let slim = rebuild(&f.src, &f.image, &f.unpacked, &f.keep, &RebuildOptions::default()).unwrap();
    let (_, tree) = tree_of(&slim);
    let m = tree.meta(tree.lookup("/usr/bin/app2").unwrap());
    assert_eq!((m.kind, m.hash), (NodeKind::File, Some(Digest::of(b"#!app"))));
    assert!(tree.lookup("/usr/bin/app").is_none());
}
