//! Property tests: arbitrary (and arbitrary-but-shaped) bytes into the layer reader,
//! plain and compressed, and into the files a source opens first (a docker archive's
//! `manifest.json`, an OCI layout's or archive's `index.json`). The only requirement is
//! no panic and no hang: any outcome, error or not, is fine. Case counts stay modest so
//! the suite stays fast; each case runs under a time limit.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};

use pinnace::layer::{open_verified, LayerReader};
use pinnace::oci::Digest;
use pinnace::transport::{open_source, Image, ImageRef};

use crate::tarcraft::{Hdr, Tar, CHAR, HARDLINK, SYMLINK};
use crate::util::{tempdir, within};

const LIMIT: Duration = Duration::from_secs(20);

/// Reads a layer to the end, reading every entry's data.
fn read_layer(r: impl Read) {
    let _ = LayerReader::new(r).visit(|_, data| {
        std::io::copy(data, &mut std::io::sink())?;
        Ok(())
    });
}

/// A valid tar with one of each interesting entry kind, for mutation.
fn base_tar() -> Vec<u8> {
    Tar::new()
        .dir(b"d/")
        .file(b"d/f", b"hello world")
        .link(b"d/s", SYMLINK, b"../f")
        .link(b"d/h", HARDLINK, b"d/f")
        .entry(Hdr::new(b"dev/c", CHAR), b"")
        .gnu_longname(&[b'g'; 150])
        .file(b"x", b"long")
        .pax(&[("path", &[b'p'; 120][..]), ("size", b"3")])
        .file(b"y", b"pax")
        .file(b"d/.wh.gone", b"")
        .end()
        .bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn reader_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        within(LIMIT, "reader on arbitrary bytes", move || read_layer(&bytes[..]));
    }

    #[test]
    fn reader_survives_mutated_tars(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut t = base_tar();
        for (i, b) in flips {
            let i = i.index(t.len());
            t[i] = b;
        }
        if let Some(c) = cut {
            t.truncate(c.index(t.len()));
        }
        within(LIMIT, "reader on a mutated tar", move || read_layer(&t[..]));
    }

    #[test]
    fn verified_gzip_and_zstd_layers_survive_arbitrary_content(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        zstd in any::<bool>(),
    ) {
        within(LIMIT, "compressed layer", move || {
            let blob = if zstd { zstd::encode_all(&bytes[..], 1).unwrap() } else { gzip(&bytes) };
            let d = Digest::of(&blob);
            let (_, r) = open_verified(&blob[..], d, blob.len() as u64, Some(Digest::of(&bytes))).unwrap();
            read_layer(r);
        });
    }

    #[test]
    fn compressed_magic_with_arbitrary_bodies(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        magic in prop_oneof![Just(&[0x1fu8, 0x8b][..]), Just(&[0x28u8, 0xb5, 0x2f, 0xfd][..])],
        diff_id in any::<bool>(),
    ) {
        within(LIMIT, "compressed garbage", move || {
            let mut blob = magic.to_vec();
            blob.extend_from_slice(&body);
            let d = Digest::of(&blob);
            let diff = diff_id.then(|| Digest::of(&body));
            let size = blob.len() as u64;
            if let Ok((_, r)) = open_verified(&blob[..], d, size, diff) {
                read_layer(r);
            };
        });
    }
}

/// Opens `r` and, if it resolves, reads every layer to the end.
fn open_everything(r: &str) {
    let r: ImageRef = r.parse().unwrap();
    let Ok(src) = open_source(&r) else { return };
    let Ok(img) = Image::open(src.as_ref(), None) else { return };
    for i in 0..img.layers.len() {
        if let Ok((_, rd)) = img.open_layer(src.as_ref(), i) {
            read_layer(rd);
        }
    }
}

/// Blobs that descriptors in generated documents may point at.
struct Blobs {
    layer: (String, usize, String),
    config: (String, usize),
    manifest: (String, usize),
    index: (String, usize),
    all: Vec<(String, Vec<u8>)>,
}

fn blobs() -> Blobs {
    let layer = base_tar();
    let layer_gz = gzip(&layer);
    let digest = |b: &[u8]| Digest::of(b).to_string();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(&layer_gz), "size": layer_gz.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&manifest),
                       "size": manifest.len(), "platform": {"os": "linux", "architecture": "amd64"}}],
    }))
    .unwrap();
    Blobs {
        layer: (digest(&layer_gz), layer_gz.len(), digest(&layer)),
        config: (digest(&config), config.len()),
        manifest: (digest(&manifest), manifest.len()),
        index: (digest(&index), index.len()),
        all: vec![
            (digest(&layer_gz), layer_gz),
            (digest(&layer), layer),
            (digest(&config), config),
            (digest(&manifest), manifest),
            (digest(&index), index),
        ],
    }
}

fn write_layout(dir: &Path, index_json: &[u8], b: &Blobs) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    for (d, bytes) in &b.all {
        fs::write(dir.join("blobs/sha256").join(d.trim_start_matches("sha256:")), bytes).unwrap();
    }
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(dir.join("index.json"), index_json).unwrap();
}

/// A descriptor with each field drawn from valid, plausible and hostile values.
fn descriptor() -> impl Strategy<Value = Value> {
    let b = blobs();
    let targets = vec![
        (b.manifest.0.clone(), b.manifest.1 as i64),
        (b.index.0.clone(), b.index.1 as i64),
        (b.config.0.clone(), b.config.1 as i64),
        (b.layer.0.clone(), b.layer.1 as i64),
    ];
    (
        prop_oneof![4 => Just(targets[0].clone()), 1 => prop::sample::select(targets)],
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(json!("sha256:0000000000000000000000000000000000000000000000000000000000000000"))),
            1 => Just(Some(json!("sha512:00"))),
            1 => Just(Some(json!("sha256:../../../etc/passwd"))),
            1 => Just(Some(json!(42))),
            1 => "[ -~]{0,40}".prop_map(|s| Some(json!(s))),
        ],
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(json!(0))),
            1 => Just(Some(json!(-1))),
            1 => Just(Some(json!(1u64 << 62))),
            1 => Just(Some(json!(u64::MAX))),
            1 => Just(Some(json!("12"))),
            1 => any::<u32>().prop_map(|n| Some(json!(n))),
        ],
        prop_oneof![
            6 => Just("application/vnd.oci.image.manifest.v1+json"),
            1 => prop::sample::select(vec![
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.docker.distribution.manifest.v1+json",
                "text/plain",
                "",
            ]),
        ],
        proptest::option::of(prop::sample::select(vec!["t", "t", "t", "", "../t", "t:1"])),
        proptest::option::of(prop::sample::select(vec![
            json!({"os": "linux", "architecture": "amd64"}),
            json!({"os": "linux", "architecture": "arm64", "variant": "v8"}),
            json!({"os": 1}),
            json!("linux/amd64"),
        ])),
    )
        .prop_map(|((digest, size), bad_digest, bad_size, mt, tag, platform)| {
            let mut d = json!({"mediaType": mt, "digest": digest, "size": size});
            if let Some(x) = bad_digest {
                d["digest"] = x;
            }
            if let Some(x) = bad_size {
                d["size"] = x;
            }
            if let Some(t) = tag {
                d["annotations"] = json!({"org.opencontainers.image.ref.name": t});
            }
            if let Some(p) = platform {
                d["platform"] = p;
            }
            d
        })
}

fn index_json() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512),
        6 => (
            proptest::collection::vec(descriptor(), 0..4),
            prop::sample::select(vec![json!(2), json!(1), json!("2"), Value::Null]),
        )
            .prop_map(|(manifests, sv)| serde_json::to_vec(&json!({"schemaVersion": sv, "manifests": manifests}))
                .unwrap()),
        1 => Just(b"{\"schemaVersion\":2,\"manifests\":{}}".to_vec()),
        1 => Just(b"[]".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn oci_layout_index_json_never_panics(index in index_json(), tagged in any::<bool>()) {
        within(LIMIT, "oci layout", move || {
            let d = tempdir();
            let dir = d.path().join("layout");
            write_layout(&dir, &index, &blobs());
            open_everything(&format!("oci:{}{}", dir.display(), if tagged { ":t" } else { "" }));
        });
    }

    #[test]
    fn oci_archive_index_json_never_panics(index in index_json()) {
        within(LIMIT, "oci archive", move || {
            let d = tempdir();
            let b = blobs();
            let mut t = Tar::new()
                .file(b"oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
                .file(b"index.json", &index)
                .dir(b"blobs/")
                .dir(b"blobs/sha256/");
            for (dg, bytes) in &b.all {
                t = t.file(format!("blobs/sha256/{}", dg.trim_start_matches("sha256:")).as_bytes(), bytes);
            }
            let f = d.path().join("a.tar");
            fs::write(&f, t.end().bytes()).unwrap();
            open_everything(&format!("oci-archive:{}", f.display()));
        });
    }
}

/// A member name: usually the right one, sometimes a hostile or wrong one.
fn member_name(right: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(right.to_string()),
        2 => prop::sample::select(vec!["l.tar", "l.tar.gz", "c.json", "bad.json", "missing", "../l.tar", "/l.tar",
            "./l.tar", "loop1", "up", "link-to-l", ""]).prop_map(str::to_string),
        1 => "[ -~]{0,20}",
    ]
}

fn manifest_json() -> impl Strategy<Value = Vec<u8>> {
    let entry = (
        member_name("c.json"),
        proptest::option::of(proptest::collection::vec(
            prop::sample::select(vec!["localhost/app:1", "app", "x@sha256:00", ""]).prop_map(str::to_string),
            0..3,
        )),
        prop_oneof![
            4 => member_name("l.tar").prop_map(|m| vec![m]),
            1 => proptest::collection::vec(member_name("l.tar.gz"), 0..4),
        ],
    )
        .prop_map(|(config, tags, layers)| {
            let mut e = json!({"Config": config, "Layers": layers});
            if let Some(t) = tags {
                e["RepoTags"] = json!(t);
            }
            e
        });
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512),
        6 => proptest::collection::vec(entry, 0..3).prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => Just(b"{}".to_vec()),
        1 => Just(b"[{\"Config\":null}]".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn docker_archive_manifest_json_never_panics(manifest in manifest_json(), name in proptest::option::of(Just("localhost/app:1"))) {
        within(LIMIT, "docker archive", move || {
            let d = tempdir();
            let layer = base_tar();
            let diff = Digest::of(&layer).to_string();
            let config = serde_json::to_vec(&json!({
                "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff]},
            })).unwrap();
            let bad = serde_json::to_vec(&json!({"rootfs": {"type": "layers", "diff_ids": [diff, "sha256:zz"]}})).unwrap();
            let t = Tar::new()
                .file(b"manifest.json", &manifest)
                .file(b"c.json", &config)
                .file(b"bad.json", &bad)
                .file(b"l.tar", &layer)
                .file(b"l.tar.gz", &gzip(&layer))
                .link(b"loop1", SYMLINK, b"loop2")
                .link(b"loop2", SYMLINK, b"loop1")
                .link(b"up", SYMLINK, b"../../../../etc/passwd")
                .link(b"link-to-l", HARDLINK, b"l.tar")
                .end()
                .bytes();
            let f = d.path().join("d.tar");
            fs::write(&f, t).unwrap();
            let r = match name {
                Some(n) => format!("docker-archive:{}:{n}", f.display()),
                None => format!("docker-archive:{}", f.display()),
            };
            open_everything(&r);
        });
    }
}
