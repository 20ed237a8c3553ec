//! The shared test image, built once per test process with the real tools:
//!
//! - layer 1: a static C program (`gcc -static`) that prints [`Fixture::line`];
//! - layer 2: `ADD files.tar /` with a nested directory (mode 0700), a relative and an
//!   absolute symlink, a hard link, a 0640 file, an empty file and a path longer than
//!   100 bytes (so PAX/GNU long names are exercised);
//!
//! in a `FROM scratch` image built by `podman build`, saved by `podman save` as a docker
//! archive and an OCI archive, and unpacked (`tar -x`) into an OCI layout. What the
//! other tests compare against (config digest, diff_ids, the rootfs listing) is read
//! with skopeo and umoci, never with pinnace.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::check;
use crate::util::{at_exit, cmd, podman_lock, require_tools, run_ok, scratch_root, sha256_hex, Cleanup};

/// Tools the fixture needs.
pub const TOOLS: &[&str] = &["podman", "gcc", "skopeo", "umoci", "tar"];

/// The built image and what is known about it.
#[derive(Debug)]
pub struct Fixture {
    /// podman's name for it while it existed (`localhost/pinnace-it-PID:1`).
    pub name: String,
    /// What the program prints.
    pub line: String,
    /// `podman save --format docker-archive`.
    pub docker_archive: PathBuf,
    /// `podman save --format oci-archive`.
    pub oci_archive: PathBuf,
    /// The OCI archive unpacked with `tar -x`: a byte-identical OCI layout.
    pub oci_dir: PathBuf,
    /// Config digest (`sha256:...`), i.e. the image ID.
    pub config_digest: String,
    /// The config's diff_ids.
    pub diff_ids: Vec<String>,
    /// Digest of podman's OCI manifest.
    pub manifest_digest: String,
    /// Digests of the OCI layout's layer blobs, bottom first.
    pub layer_blobs: Vec<String>,
    /// The rootfs as umoci unpacks it (see [`check::listing`]).
    pub rootfs: Vec<String>,
}

impl Fixture {
    /// The config digest without `sha256:` (what podman and docker call the image ID).
    pub fn id(&self) -> &str {
        self.config_digest.trim_start_matches("sha256:")
    }
}

/// The fixture, or `None` (test skipped) when a tool is missing outside CI.
pub fn get() -> Option<&'static Fixture> {
    static F: OnceLock<Fixture> = OnceLock::new();
    if !require_tools(TOOLS) {
        return None;
    }
    Some(F.get_or_init(build))
}

/// `let fx = fixture!();` returns from the test when the fixture's tools are missing.
#[macro_export]
macro_rules! fixture {
    () => {
        match $crate::fixture::get() {
            Some(f) => f,
            None => return,
        }
    };
}

const SOURCE: &str = r#"#include <stdio.h>
int main(void) { puts(LINE); return 0; }
"#;

fn write_files(root: &Path) {
    let data = root.join("data");
    fs::create_dir_all(data.join("nested/deeper")).unwrap();
    fs::write(data.join("nested/deeper/file.txt"), "nested file\n").unwrap();
    fs::write(data.join("orig.txt"), "original\n").unwrap();
    fs::write(data.join("empty"), "").unwrap();
    fs::hard_link(data.join("orig.txt"), data.join("hardlink.txt")).unwrap();
    std::os::unix::fs::symlink("orig.txt", data.join("symlink")).unwrap();
    std::os::unix::fs::symlink("/hello", data.join("abs-link")).unwrap();
    let long_dir = data.join("long-directory-name-".repeat(3));
    fs::create_dir_all(&long_dir).unwrap();
    fs::write(long_dir.join(format!("{}.txt", "x".repeat(60))), "long\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(data.join("orig.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(data.join("nested"), fs::Permissions::from_mode(0o700)).unwrap();
}

fn build() -> Fixture {
    let pid = std::process::id();
    let dir = scratch_root().join("fixture");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let name = format!("localhost/pinnace-it-{pid}:1");
    // The pid makes the binary, hence every digest, unique to this run.
    let line = format!("hello from the pinnace test fixture {pid}");

    fs::write(dir.join("hello.c"), SOURCE).unwrap();
    run_ok(
        cmd("gcc")
            .current_dir(&dir)
            .args(["-static", "-O2", "-o", "hello", "hello.c"])
            .arg(format!("-DLINE=\"{line}\"")),
    );
    let files = dir.join("files");
    write_files(&files);
    run_ok(cmd("tar").current_dir(&files).args(["--format=pax", "-cf", "../files.tar", "data"]));
    fs::write(dir.join("Containerfile"), "FROM scratch\nCOPY hello /hello\nADD files.tar /\nCMD [\"/hello\"]\n")
        .unwrap();

    let docker_archive = dir.join("podman-docker.tar");
    let oci_archive = dir.join("podman-oci.tar");
    {
        let _p = podman_lock();
        at_exit(Cleanup::PodmanImage(name.clone()));
        run_ok(cmd("podman").args(["build", "-q", "--network", "none", "-t", &name]).arg(&dir));
        run_ok(cmd("podman").args(["save", "-q", "--format", "docker-archive", "-o"]).arg(&docker_archive).arg(&name));
        run_ok(cmd("podman").args(["save", "-q", "--format", "oci-archive", "-o"]).arg(&oci_archive).arg(&name));
        // Leave podman's store without the image: every later load must really read
        // what pinnace wrote instead of reusing layers already there.
        run_ok(cmd("podman").args(["rmi", "-f", &name]));
    }

    let oci_dir = dir.join("podman-oci");
    fs::create_dir_all(&oci_dir).unwrap();
    run_ok(cmd("tar").arg("-xf").arg(&oci_archive).arg("-C").arg(&oci_dir));

    let config = check::skopeo_config(&format!("oci-archive:{}", oci_archive.display()));
    let config_digest = format!("sha256:{}", sha256_hex(&config));
    let diff_ids = check::diff_ids(&config);
    let manifest = check::skopeo_manifest(&format!("oci-archive:{}", oci_archive.display()));
    assert_eq!(manifest["config"]["digest"].as_str(), Some(config_digest.as_str()));
    let layer_blobs: Vec<String> =
        manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect();
    assert_eq!(layer_blobs.len(), 2, "fixture should have two layers");
    let manifest_digest = check::skopeo_digest(&format!("oci-archive:{}", oci_archive.display()));

    // The reference rootfs: skopeo (not pinnace) makes a tagged layout, umoci unpacks it.
    let reflayout = dir.join("ref-layout");
    run_ok(
        cmd("skopeo")
            .arg("copy")
            .arg(format!("oci-archive:{}", oci_archive.display()))
            .arg(format!("oci:{}:ref", reflayout.display())),
    );
    let rootfs = check::umoci_listing(&reflayout, "ref");
    assert!(rootfs.iter().any(|l| l.starts_with("hello f")), "{rootfs:#?}");
    assert!(rootfs.iter().any(|l| l.contains("data/symlink l") && l.ends_with("-> orig.txt")), "{rootfs:#?}");

    Fixture {
        name,
        line,
        docker_archive,
        oci_archive,
        oci_dir,
        config_digest,
        diff_ids,
        manifest_digest,
        layer_blobs,
        rootfs,
    }
}
