//! What every output of `pinnace copy` is checked with: skopeo (manifest, config,
//! diff_ids), umoci (unpacked rootfs listing), podman and docker (load and run), and
//! pinnace's own `validate` (every digest recomputed).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;

use crate::fixture::Fixture;
use crate::util::{cmd, docker_lock, podman_lock, run, run_ok, sha256_hex, tempdir};

/// `skopeo inspect --raw REF`: the manifest as stored.
pub fn skopeo_manifest(r: &str) -> Value {
    let o = run_ok(cmd("skopeo").args(["inspect", "--raw", r]));
    serde_json::from_slice(&o.stdout_bytes).unwrap_or_else(|e| panic!("skopeo --raw {r}: {e}: {}", o.stdout))
}

/// `skopeo inspect --config --raw REF`: the config bytes.
pub fn skopeo_config(r: &str) -> Vec<u8> {
    run_ok(cmd("skopeo").args(["inspect", "--config", "--raw", r])).stdout_bytes
}

/// `skopeo inspect REF`'s `Digest`: the manifest digest.
pub fn skopeo_digest(r: &str) -> String {
    let o = run_ok(cmd("skopeo").args(["inspect", r]));
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

/// The diff_ids of a config.
pub fn diff_ids(config: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(config).unwrap();
    v["rootfs"]["diff_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect()
}

/// One line per path under `rootfs`: path, type, mode, owner, and for files size, link
/// count and content hash, for symlinks the target. Sorted.
pub fn listing(rootfs: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for p in crate::util::tree(rootfs) {
        let full = rootfs.join(&p);
        let m = fs::symlink_metadata(&full).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            'l'
        } else if ft.is_dir() {
            'd'
        } else if ft.is_file() {
            'f'
        } else {
            '?'
        };
        let mut line = format!("{} {kind} {:o} {}:{}", p.display(), m.mode() & 0o7777, m.uid(), m.gid());
        if ft.is_symlink() {
            line += &format!(" -> {}", fs::read_link(&full).unwrap().display());
        } else if ft.is_file() {
            let data = fs::read(&full).unwrap();
            line += &format!(" size={} nlink={} sha={}", m.len(), m.nlink(), &sha256_hex(&data)[..16]);
        }
        out.push(line);
    }
    out
}

/// `umoci unpack --image LAYOUT:TAG` and the listing of its rootfs.
pub fn umoci_listing(layout: &Path, tag: &str) -> Vec<String> {
    let d = tempdir();
    let bundle = d.path().join("bundle");
    run_ok(cmd("umoci").arg("unpack").arg("--image").arg(format!("{}:{tag}", layout.display())).arg(&bundle));
    listing(&bundle.join("rootfs"))
}

/// A place pinnace wrote an image to.
#[derive(Debug, Clone)]
pub enum Written<'a> {
    /// `oci:DIR:TAG`.
    Oci(&'a Path, &'a str),
    /// `oci-archive:FILE:TAG`.
    OciArchive(&'a Path, &'a str),
    /// `docker-archive:FILE`.
    DockerArchive(&'a Path),
}

impl Written<'_> {
    /// The skopeo / pinnace reference.
    pub fn reference(&self) -> String {
        match self {
            Written::Oci(d, t) => format!("oci:{}:{t}", d.display()),
            Written::OciArchive(f, t) => format!("oci-archive:{}:{t}", f.display()),
            Written::DockerArchive(f) => format!("docker-archive:{}", f.display()),
        }
    }
}

/// skopeo sees the fixture's config (same digest, same bytes) and diff_ids; returns the
/// manifest skopeo read.
pub fn same_config_and_diff_ids(fx: &Fixture, r: &str) -> Value {
    let m = skopeo_manifest(r);
    assert_eq!(m["config"]["digest"].as_str(), Some(fx.config_digest.as_str()), "{r}: config digest in {m}");
    assert_eq!(m["layers"].as_array().map(Vec::len), Some(fx.diff_ids.len()), "{r}: layer count in {m}");
    let c = skopeo_config(r);
    assert_eq!(format!("sha256:{}", sha256_hex(&c)), fx.config_digest, "{r}: config bytes changed");
    assert_eq!(diff_ids(&c), fx.diff_ids, "{r}: diff_ids");
    m
}

/// The rootfs umoci unpacks from what pinnace wrote, as [`listing`] lines (docker archives
/// are converted by skopeo first: umoci reads OCI layouts only).
pub fn unpacked_listing(w: &Written) -> Vec<String> {
    match w {
        Written::Oci(d, t) => umoci_listing(d, t),
        Written::OciArchive(f, t) => {
            let d = tempdir();
            run_ok(cmd("tar").arg("-xf").arg(f).arg("-C").arg(d.path()));
            umoci_listing(d.path(), t)
        }
        Written::DockerArchive(f) => {
            // umoci reads OCI layouts only: skopeo converts, independently of pinnace.
            let d = tempdir();
            let layout = d.path().join("layout");
            run_ok(
                cmd("skopeo")
                    .arg("copy")
                    .arg(format!("docker-archive:{}", f.display()))
                    .arg(format!("oci:{}:conv", layout.display())),
            );
            umoci_listing(&layout, "conv")
        }
    }
}

/// The unpacked rootfs of what pinnace wrote equals the fixture's.
pub fn same_rootfs(fx: &Fixture, w: &Written) {
    let listing = unpacked_listing(w);
    assert_eq!(listing, fx.rootfs, "{}: rootfs differs from the fixture's", w.reference());
}

/// `podman load` of an archive (or `podman pull oci:DIR:TAG` of a layout), then
/// `podman run` prints the line.
pub fn podman_runs(fx: &Fixture, w: &Written) {
    let _l = podman_lock();
    let _ = run(cmd("podman").args(["rmi", "-f", fx.id()]));
    let path = match w {
        Written::Oci(d, _) => {
            run_ok(cmd("podman").args(["pull", "-q", &w.reference()]));
            *d
        }
        Written::OciArchive(f, _) | Written::DockerArchive(f) => {
            run_ok(cmd("podman").args(["load", "-q", "-i"]).arg(f));
            *f
        }
    };
    let o = run(cmd("podman").args(["run", "--rm", "--network", "none", fx.id()]));
    let _ = run(cmd("podman").args(["rmi", "-f", fx.id()]));
    assert!(o.status.success(), "podman run of {} failed: {}", path.display(), o.stderr);
    assert_eq!(o.stdout.trim_end(), fx.line, "podman run of {}", path.display());
}

/// `docker load` of a docker archive, then `docker run` prints the line.
pub fn docker_runs(fx: &Fixture, path: &Path) {
    let _l = docker_lock();
    let _ = run(cmd("docker").args(["rmi", "-f", fx.id()]));
    run_ok(cmd("docker").args(["load", "-q", "-i"]).arg(path));
    let o = run(cmd("docker").args(["run", "--rm", "--network", "none", fx.id()]));
    let _ = run(cmd("docker").args(["rmi", "-f", fx.id()]));
    assert!(o.status.success(), "docker run of {} failed: {}", path.display(), o.stderr);
    assert_eq!(o.stdout.trim_end(), fx.line, "docker run of {}", path.display());
}

/// pinnace's own check: every digest and diff_id recomputed from the bytes.
pub fn validates(r: &str) -> pinnace::transport::Image {
    let parsed: pinnace::transport::ImageRef = r.parse().unwrap();
    pinnace::copy::validate(&parsed, None).unwrap_or_else(|e| panic!("validate {r}: {e}"))
}

/// Everything: skopeo, umoci, podman (and docker for docker archives), validate.
pub fn output_is_good(fx: &Fixture, w: &Written) {
    let r = w.reference();
    same_config_and_diff_ids(fx, &r);
    validates(&r);
    same_rootfs(fx, w);
    podman_runs(fx, w);
    if let Written::DockerArchive(f) = w {
        docker_runs(fx, f);
    }
}
