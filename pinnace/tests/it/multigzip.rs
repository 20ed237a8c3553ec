//! pinnace's gzip layers are one gzip member per 1 MiB block (`layer/pgzip.rs`): every
//! reader must read all members (gzip, skopeo, umoci, podman, docker through pinnace's
//! own reader), and the bytes must not depend on how many cores pinnace had. Docker
//! archives written with layers decompressed ahead on a second core must be the same
//! bytes as written on one.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::check;
use crate::fixture::Fixture;
use crate::tarcraft::Tar;
use crate::util::{cmd, file_digest, podman_lock, run, run_ok, sha256_hex, tempdir, write_oci_layout, Rng};

/// The big layer's file: 5 MiB + a bit of half-compressible bytes (several members).
fn big_file() -> Vec<u8> {
    let mut data = vec![0u8; (5 << 20) + 12_345];
    Rng::new(0xb16).fill(&mut data);
    // Every other 4 KiB run repeats, so deflate has matches to find.
    for i in (0..data.len() / 8192).map(|i| i * 8192) {
        data.copy_within(i..i + 4096, i + 4096);
    }
    data
}

/// An image of plain layers: the fixture's two layers plus a big one, in an OCI layout
/// at `dir` (tag `t`). Returns the reference, the config digest and the big layer tar.
fn big_image(fx: &Fixture, dir: &Path) -> (String, String, Vec<u8>) {
    let src = dir.join("fixture");
    fs::create_dir_all(&src).unwrap();
    run_ok(cmd("tar").arg("-xf").arg(&fx.docker_archive).arg("-C").arg(&src));
    let manifest: Value = serde_json::from_slice(&fs::read(src.join("manifest.json")).unwrap()).unwrap();
    let mut layers: Vec<Vec<u8>> = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| fs::read(src.join(l.as_str().unwrap())).unwrap())
        .collect();
    let big = Tar::new().dir(b"big").file(b"big/blob.bin", &big_file()).end().bytes();
    layers.push(big.clone());
    let mut config: Value =
        serde_json::from_slice(&fs::read(src.join(manifest[0]["Config"].as_str().unwrap())).unwrap()).unwrap();
    // Three layers now; the fixture's history names two.
    config.as_object_mut().unwrap().remove("history");
    let r = write_oci_layout(&dir.join("plain"), &layers, config);
    let config_digest = check::skopeo_manifest(&r)["config"]["digest"].as_str().unwrap().to_string();
    (r, config_digest, big)
}

/// The gzip members of a blob, decoded one at a time.
fn members(gz: &[u8]) -> Vec<Vec<u8>> {
    let mut rest = gz;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(rest);
        let mut plain = Vec::new();
        d.read_to_end(&mut plain).unwrap();
        rest = d.into_inner();
        out.push(plain);
    }
    out
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

fn layer_digests(r: &str) -> Vec<String> {
    let m = check::skopeo_manifest(r);
    m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

#[test]
fn multi_member_gzip_layers_are_read_whole_by_every_tool() {
    let fx = crate::fixture!();
    if !crate::util::require_tools(&["gzip", "docker"]) {
        return;
    }
    let d = tempdir();
    let (plain, config_digest, big) = big_image(fx, d.path());
    let gz_dir = d.path().join("gz");
    let gz = format!("oci:{}:t", gz_dir.display());
    crate::util::pinnace_ok(&["copy", "-q", &plain, &gz]);

    let diff_ids = check::diff_ids(&check::skopeo_config(&gz));
    assert_eq!(check::skopeo_manifest(&gz)["config"]["digest"].as_str(), Some(config_digest.as_str()));
    let blobs = layer_digests(&gz);
    assert_eq!(blobs.len(), 3);
    // The big layer is several members, each a 1 MiB block but the last.
    let big_gz = fs::read(blob_path(&gz_dir, &blobs[2])).unwrap();
    let ms = members(&big_gz);
    assert_eq!(ms.len(), big.len().div_ceil(1 << 20), "one member per MiB");
    assert!(ms[..ms.len() - 1].iter().all(|m| m.len() == 1 << 20));
    assert!(ms.concat() == big);
    // GNU gzip tests and decodes every layer whole.
    for (blob, diff_id) in blobs.iter().zip(&diff_ids) {
        let path = blob_path(&gz_dir, blob);
        run_ok(cmd("gzip").arg("-t").arg(&path));
        let o = run_ok(cmd("gzip").arg("-dc").arg(&path));
        assert_eq!(format!("sha256:{}", sha256_hex(&o.stdout_bytes)), *diff_id, "gzip -dc of {blob}");
    }
    // umoci (Go's compress/gzip) unpacks the big file whole.
    let listing = check::umoci_listing(&gz_dir, "t");
    let want =
        format!("big/blob.bin f 644 0:0 size={} nlink=1 sha={}", big_file().len(), &sha256_hex(&big_file())[..16]);
    assert!(listing.contains(&want), "{want} not in {listing:#?}");
    // pinnace's own reader: every digest and diff_id recomputed; inspect sees the file.
    check::validates(&gz);
    let o = crate::util::pinnace_ok(&["inspect", "--json", &gz]);
    let report: Value = serde_json::from_str(&o.stdout).unwrap();
    let largest = &report["largest_files"][0];
    assert_eq!(largest["path"], "/big/blob.bin", "{largest}");
    assert_eq!(largest["size"].as_u64(), Some(big_file().len() as u64), "{largest}");
    // Decompressed again by pinnace into a docker archive: the original layer tar.
    let da = d.path().join("back.tar");
    crate::util::pinnace_ok(&[
        "copy",
        "-q",
        &gz,
        &format!("docker-archive:{}:localhost/pinnace-it-mgz:1", da.display()),
    ]);
    let unpacked = d.path().join("back");
    fs::create_dir_all(&unpacked).unwrap();
    run_ok(cmd("tar").arg("-xf").arg(&da).arg("-C").arg(&unpacked));
    let big_member = unpacked.join(format!("{}.tar", diff_ids[2].trim_start_matches("sha256:")));
    assert!(fs::read(&big_member).unwrap() == big, "docker archive layer differs from the original tar");

    // podman pulls the gzip layout (verifying diff_ids) and runs it; docker loads and runs
    // the archive pinnace decompressed.
    let id = config_digest.trim_start_matches("sha256:");
    {
        let _l = podman_lock();
        let _ = run(cmd("podman").args(["rmi", "-f", id]));
        run_ok(cmd("podman").args(["pull", "-q", &gz]));
        let o = run(cmd("podman").args(["run", "--rm", "--network", "none", id]));
        let _ = run(cmd("podman").args(["rmi", "-f", id]));
        assert!(o.status.success(), "podman run failed: {}", o.stderr);
        assert_eq!(o.stdout.trim_end(), fx.line);
    }
    {
        let _l = crate::util::docker_lock();
        let _ = run(cmd("docker").args(["rmi", "-f", id]));
        run_ok(cmd("docker").args(["load", "-q", "-i"]).arg(&da));
        let o = run(cmd("docker").args(["run", "--rm", "--network", "none", id]));
        let _ = run(cmd("docker").args(["rmi", "-f", id]));
        assert!(o.status.success(), "docker run failed: {}", o.stderr);
        assert_eq!(o.stdout.trim_end(), fx.line);
    }
}

/// `pinnace copy` pinned to one core (`taskset`), where the gzip writer compresses inline
/// and docker archives are written one layer at a time.
fn one_core_copy(src: &str, dst: &str) {
    run_ok(cmd("taskset").args(["-c", "0"]).arg(env!("CARGO_BIN_EXE_pinnace")).args(["copy", "-q", src, dst]));
}

#[test]
fn written_bytes_do_not_depend_on_the_cores_or_the_run() {
    let fx = crate::fixture!();
    if !crate::util::require_tools(&["taskset"]) {
        return;
    }
    let d = tempdir();
    let p = d.path();
    let (plain, _, _) = big_image(fx, p);
    // gzip layers: the same blobs on one core as on all, and when written again.
    let layouts: Vec<String> = ["one", "all", "again"].iter().map(|n| format!("oci:{}/{n}:t", p.display())).collect();
    one_core_copy(&plain, &layouts[0]);
    crate::util::pinnace_ok(&["copy", "-q", &plain, &layouts[1]]);
    crate::util::pinnace_ok(&["copy", "-q", &plain, &layouts[2]]);
    let blobs = layer_digests(&layouts[0]);
    for l in &layouts[1..] {
        assert_eq!(layer_digests(l), blobs, "{l}");
        assert_eq!(check::skopeo_digest(l), check::skopeo_digest(&layouts[0]), "{l}");
    }
    for b in &blobs {
        assert_eq!(file_digest(&blob_path(&p.join("one"), b)), *b, "blob named by its content");
    }
    // Docker archives from gzip layers (three layers to decompress): one layer at a time
    // on one core, layers decompressed ahead on two; the same file. Nothing is left in
    // the destination's directory but the archive.
    for (i, src) in [&layouts[0], &format!("oci:{}", fx.oci_dir.display())].into_iter().enumerate() {
        let out = p.join(format!("da{i}"));
        fs::create_dir_all(&out).unwrap();
        let serial = out.join("serial.tar");
        let ahead = out.join("ahead.tar");
        one_core_copy(src, &format!("docker-archive:{}:localhost/x:1", serial.display()));
        crate::util::pinnace_ok(&["copy", "-q", src, &format!("docker-archive:{}:localhost/x:1", ahead.display())]);
        assert_eq!(file_digest(&serial), file_digest(&ahead), "{src}: docker archive bytes depend on the cores");
        let mut names: Vec<String> =
            fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["ahead.tar", "serial.tar"], "leftovers in the destination directory");
    }
}
