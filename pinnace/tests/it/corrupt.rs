//! A flipped byte in any blob of an OCI layout (either layer, the config, the manifest),
//! at the start, the middle or the end: `pinnace copy` fails with exit code 1 and an
//! error naming that blob's digest, and neither the destination nor anything else
//! appears next to it.

use std::fs;
use std::path::Path;

use crate::util::{pinnace_fails, tempdir, tree};

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            fs::copy(e.path(), &t).unwrap();
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum At {
    Start,
    Middle,
    End,
}

fn flipped_blob_fails(which: &str, digest: &str) {
    let fx = crate::fixture!();
    for at in [At::Start, At::Middle, At::End] {
        let d = tempdir();
        let src = d.path().join("src");
        copy_dir(&fx.oci_dir, &src);
        let blob = src.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
        let mut bytes = fs::read(&blob).unwrap();
        let i = match at {
            At::Start => 0,
            At::Middle => bytes.len() / 2,
            At::End => bytes.len() - 1,
        };
        bytes[i] ^= 0x01;
        fs::write(&blob, &bytes).unwrap();

        let out = d.path().join("out");
        fs::create_dir_all(&out).unwrap();
        for dst in [
            format!("oci:{}:t", out.join("layout").display()),
            format!("oci-archive:{}:t", out.join("oci.tar").display()),
            format!("docker-archive:{}", out.join("docker.tar").display()),
        ] {
            let o = pinnace_fails(&["copy", &format!("oci:{}", src.display()), &dst]);
            assert!(
                o.stderr.contains(digest),
                "{which} flipped at {at:?}, copy to {dst}: the error should name {digest}:\n{}",
                o.stderr
            );
            let left: Vec<_> = tree(&out).into_iter().collect();
            assert!(left.is_empty(), "{which} flipped at {at:?}, copy to {dst} left {left:?}");
        }
    }
}

#[test]
fn flipped_byte_in_first_layer() {
    let fx = crate::fixture!();
    flipped_blob_fails("layer 0", &fx.layer_blobs[0]);
}

#[test]
fn flipped_byte_in_second_layer() {
    let fx = crate::fixture!();
    flipped_blob_fails("layer 1", &fx.layer_blobs[1]);
}

#[test]
fn flipped_byte_in_config() {
    let fx = crate::fixture!();
    flipped_blob_fails("config", &fx.config_digest);
}

#[test]
fn flipped_byte_in_manifest() {
    let fx = crate::fixture!();
    flipped_blob_fails("manifest", &fx.manifest_digest);
}

#[test]
fn missing_blob_is_named() {
    let fx = crate::fixture!();
    let d = tempdir();
    let src = d.path().join("src");
    copy_dir(&fx.oci_dir, &src);
    let layer = &fx.layer_blobs[1];
    fs::remove_file(src.join("blobs/sha256").join(layer.trim_start_matches("sha256:"))).unwrap();
    let out = d.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let o = pinnace_fails(&["copy", &format!("oci:{}", src.display()), &format!("oci:{}:t", out.join("l").display())]);
    assert!(o.stderr.contains(layer.as_str()) && o.stderr.contains("missing"), "{}", o.stderr);
    assert!(tree(&out).is_empty(), "{:?}", tree(&out));
}
