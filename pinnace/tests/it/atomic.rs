//! Atomicity: `pinnace copy` of a large image into an existing destination (an OCI
//! layout, an OCI archive, a docker archive), SIGKILLed mid-way, leaves the previous
//! destination byte-for-byte unchanged and readable by skopeo; a retry then succeeds.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::check;
use crate::tarcraft::Tar;
use crate::util::{cmd, file_digest, pinnace_cmd, pinnace_ok, run, scratch_root, sha256_hex, tempdir, Rng};

/// Layers of the large image, and the random bytes in each.
const LAYERS: usize = 4;
const LAYER_BYTES: usize = 50 << 20;

/// An OCI layout with [`LAYERS`] layers of seeded random data (200 MB), written by the
/// test itself with correct digests. The layers are gzip streams of stored (level 0)
/// blocks: quick to make, passed through byte for byte into OCI stores and really
/// decompressed into docker archives.
fn big_image() -> &'static Path {
    static BIG: OnceLock<PathBuf> = OnceLock::new();
    BIG.get_or_init(|| {
        let dir = scratch_root().join("big");
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| {
            let hex = sha256_hex(bytes);
            fs::write(blobs.join(&hex), bytes).unwrap();
            (format!("sha256:{hex}"), bytes.len())
        };
        let mut rng = Rng::new(0x5eed);
        let mut layers = Vec::new();
        let mut data = vec![0u8; LAYER_BYTES];
        for i in 0..LAYERS {
            rng.fill(&mut data);
            let tar = Tar::new().dir(b"big/").file(format!("big/random-{i}.bin").as_bytes(), &data).end().bytes();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
            gz.write_all(&tar).unwrap();
            let (digest, size) = put(&gz.finish().unwrap());
            layers.push((digest, size, format!("sha256:{}", sha256_hex(&tar))));
        }
        let arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" };
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.2.clone()).collect::<Vec<_>>()},
        }))
        .unwrap();
        let (cdigest, csize) = put(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
            "layers": layers.iter().map(|(d, s, _)| json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s
            })).collect::<Vec<_>>(),
        }))
        .unwrap();
        let (mdigest, msize) = put(&manifest);
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let index = json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": msize,
            "annotations": {"org.opencontainers.image.ref.name": "big"}
        }]});
        fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        dir
    })
}

/// Every file under `dir` with its digest.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    crate::util::tree(dir)
        .into_iter()
        .filter(|p| dir.join(p).is_file())
        .map(|p| {
            let d = file_digest(&dir.join(&p));
            (p, d)
        })
        .collect()
}

/// The `*.pinnace-tmp` files directly in `dir` and their sizes.
fn temp_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(rd) = fs::read_dir(dir) else { return Vec::new() };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pinnace-tmp"))
        .map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)))
        .collect()
}

/// Starts `pinnace copy SRC DST` and SIGKILLs it once `ready()` says the copy is well
/// under way (polled every 2 ms). Panics if the copy finished first.
fn kill_midway(src: &str, dst: &str, mut ready: impl FnMut() -> bool) {
    let mut child: Child =
        pinnace_cmd().args(["copy", "-q", src, dst]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the copy ended ({status}) before it could be killed; make the image larger");
        }
        if ready() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the copy made no visible progress in 120 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "the copy was not killed mid-way: {status}");
}

#[test]
fn sigkill_during_copy_into_a_layout_leaves_it_intact() {
    let fx = crate::fixture!();
    let big = big_image();
    let d = tempdir();
    let dst = d.path().join("layout");
    pinnace_ok(&["copy", "-q", &format!("oci:{}", fx.oci_dir.display()), &format!("oci:{}:old", dst.display())]);
    let before = snapshot(&dst);
    let blobs_before = fs::read_dir(dst.join("blobs/sha256")).unwrap().count();
    let index_before = fs::read(dst.join("index.json")).unwrap();

    let new = format!("oci:{}:new", dst.display());
    kill_midway(&format!("oci:{}:big", big.display()), &new, || {
        // At least one new layer committed and the next one being written.
        let blobs = fs::read_dir(dst.join("blobs/sha256")).map(|r| r.count()).unwrap_or(0);
        blobs > blobs_before && temp_files(&dst).iter().any(|(_, n)| *n > 0)
    });

    assert_eq!(fs::read(dst.join("index.json")).unwrap(), index_before, "index.json changed");
    let after = snapshot(&dst);
    for (p, digest) in &before {
        assert_eq!(after.get(p), Some(digest), "{} changed or vanished", p.display());
    }
    // Whatever new blob landed is complete: its content hashes to its name.
    for (p, digest) in &after {
        if p.starts_with("blobs/sha256") {
            assert_eq!(digest.trim_start_matches("sha256:"), p.file_name().unwrap().to_str().unwrap());
        }
    }
    assert_eq!(check::skopeo_digest(&format!("oci:{}:old", dst.display())), fx.manifest_digest);
    assert!(!run(cmd("skopeo").args(["inspect", &new])).status.success(), "a dangling tag `new` exists");
    check::validates(&format!("oci:{}:old", dst.display()));

    pinnace_ok(&["copy", "-q", &format!("oci:{}:big", big.display()), &new]);
    check::validates(&new);
    assert_eq!(check::skopeo_digest(&format!("oci:{}:old", dst.display())), fx.manifest_digest);
}

fn archive_case(kind: &str, tag: &str) {
    let fx = crate::fixture!();
    let big = big_image();
    let d = tempdir();
    let file = d.path().join("dst.tar");
    let old = format!("{kind}:{}{tag}", file.display());
    pinnace_ok(&["copy", "-q", &format!("oci:{}", fx.oci_dir.display()), &old]);
    let digest_before = file_digest(&file);

    kill_midway(&format!("oci:{}:big", big.display()), &old, || {
        // Past the first layer of the temp archive.
        temp_files(d.path()).iter().any(|(_, n)| *n > LAYER_BYTES as u64 + (8 << 20))
    });

    assert_eq!(file_digest(&file), digest_before, "{old} changed");
    check::same_config_and_diff_ids(fx, &old);
    check::validates(&old);

    pinnace_ok(&["copy", "-q", &format!("oci:{}:big", big.display()), &old]);
    let img = check::validates(&old);
    assert_eq!(img.layers.len(), LAYERS);
    let m = check::skopeo_manifest(&old);
    assert_eq!(m["layers"].as_array().unwrap().len(), LAYERS);
}

#[test]
fn sigkill_during_copy_into_an_oci_archive_leaves_it_intact() {
    archive_case("oci-archive", ":t");
}

#[test]
fn sigkill_during_copy_into_a_docker_archive_leaves_it_intact() {
    archive_case("docker-archive", "");
}

#[test]
fn sigkill_during_copy_into_a_new_layout_leaves_no_layout() {
    let _fx = crate::fixture!();
    let big = big_image();
    let d = tempdir();
    let dst = d.path().join("fresh");
    let r = format!("oci:{}:t", dst.display());
    // A new layout is assembled in a hidden sibling directory and renamed at the end.
    kill_midway(&format!("oci:{}:big", big.display()), &r, || {
        fs::read_dir(d.path()).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".pinnace-tmp")
                && fs::read_dir(e.path().join("blobs/sha256")).map(|r| r.count()).unwrap_or(0) > 0
        })
    });
    assert!(!dst.exists(), "a half-written layout exists at {}", dst.display());
    pinnace_ok(&["copy", "-q", &format!("oci:{}:big", big.display()), &r]);
    check::validates(&r);
    // The retry swept what the killed process left behind.
    let left: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pinnace-tmp"))
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "stale temp entries after the retry: {left:?}");
}
