//! Chains of conversions: what each keeps (config, diff_ids, manifest digest), that
//! compression is deterministic, and that tags in a layout accumulate.

use std::fs;

use serde_json::Value;

use crate::check::{self, Written};
use crate::util::{cmd, file_digest, pinnace_cmd, pinnace_fails, pinnace_ok, run_ok, tempdir};

fn manifest_digest_of(report: &str) -> String {
    let v: Value = serde_json::from_str(report).unwrap();
    v["manifest_digest"].as_str().unwrap().to_string()
}

#[test]
fn oci_to_oci_archive_to_docker_archive_to_oci_keeps_config_and_diff_ids() {
    let fx = crate::fixture!();
    let d = tempdir();
    let p = d.path();
    let a = format!("oci-archive:{}/a.tar:t", p.display());
    let b = format!("docker-archive:{}/b.tar", p.display());
    let c = format!("oci:{}/c:t", p.display());
    pinnace_ok(&["copy", "-q", &format!("oci:{}", fx.oci_dir.display()), &a]);
    pinnace_ok(&["copy", "-q", &a, &b]);
    pinnace_ok(&["copy", "-q", &b, &c]);
    for r in [&a, &b, &c] {
        check::same_config_and_diff_ids(fx, r);
        check::validates(r);
    }
    check::same_rootfs(fx, &Written::Oci(&p.join("c"), "t"));
    // The last hop had to recompress: a new manifest, in the OCI format.
    let m = check::skopeo_manifest(&c);
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_ne!(check::skopeo_digest(&c), fx.manifest_digest);
}

#[test]
fn oci_to_oci_archive_to_oci_keeps_the_manifest_digest() {
    let fx = crate::fixture!();
    let d = tempdir();
    let p = d.path();
    let a = format!("oci-archive:{}/a.tar:t", p.display());
    let b = format!("oci:{}/b:t", p.display());
    let r1 = pinnace_ok(&["copy", "--json", &format!("oci:{}", fx.oci_dir.display()), &a]);
    let r2 = pinnace_ok(&["copy", "--json", &a, &b]);
    assert_eq!(manifest_digest_of(&r1.stdout), fx.manifest_digest);
    assert_eq!(manifest_digest_of(&r2.stdout), fx.manifest_digest);
    assert_eq!(check::skopeo_digest(&a), fx.manifest_digest);
    assert_eq!(check::skopeo_digest(&b), fx.manifest_digest);
    // Byte for byte: every blob of the source layout is in the result, unchanged.
    for blob in fs::read_dir(fx.oci_dir.join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap();
        let copy = p.join("b/blobs/sha256").join(blob.file_name());
        assert_eq!(fs::read(blob.path()).unwrap(), fs::read(&copy).unwrap(), "{}", copy.display());
    }
    check::validates(&b);
}

#[test]
fn docker_archive_to_oci_twice_gives_the_same_digest() {
    let fx = crate::fixture!();
    let d = tempdir();
    let p = d.path();
    let src = format!("docker-archive:{}", fx.docker_archive.display());
    let one = pinnace_ok(&["copy", "--json", &src, &format!("oci:{}/one:t", p.display())]);
    let two = pinnace_ok(&["copy", "--json", &src, &format!("oci:{}/two:t", p.display())]);
    assert_eq!(manifest_digest_of(&one.stdout), manifest_digest_of(&two.stdout));
    let list = |dir: &str| {
        let mut v: Vec<_> = fs::read_dir(p.join(dir).join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(list("one"), list("two"));
    assert_eq!(fs::read(p.join("one/index.json")).unwrap(), fs::read(p.join("two/index.json")).unwrap());
    // And an OCI archive written twice is the same file.
    let a1 = p.join("a1.tar");
    let a2 = p.join("a2.tar");
    pinnace_ok(&["copy", "-q", &src, &format!("oci-archive:{}:t", a1.display())]);
    pinnace_ok(&["copy", "-q", &src, &format!("oci-archive:{}:t", a2.display())]);
    assert_eq!(file_digest(&a1), file_digest(&a2));
}

#[test]
fn source_date_epoch_changes_archive_bytes_not_the_image() {
    let fx = crate::fixture!();
    let d = tempdir();
    let src = format!("oci:{}", fx.oci_dir.display());
    let write = |name: &str, epoch: &str| {
        let f = d.path().join(name);
        run_ok(pinnace_cmd().env("SOURCE_DATE_EPOCH", epoch).args([
            "copy",
            "-q",
            &src,
            &format!("docker-archive:{}", f.display()),
        ]));
        f
    };
    let a = write("a.tar", "0");
    let b = write("b.tar", "0");
    let c = write("c.tar", "1700000000");
    assert_eq!(file_digest(&a), file_digest(&b), "same inputs, same archive");
    assert_ne!(file_digest(&a), file_digest(&c), "archive member times follow SOURCE_DATE_EPOCH");
    let o = run_ok(cmd("tar").arg("--full-time").arg("-tvf").arg(&c));
    assert!(o.stdout.contains("2023-11-14"), "{}", o.stdout);
    check::same_config_and_diff_ids(fx, &format!("docker-archive:{}", c.display()));
}

#[test]
fn adding_a_tag_to_a_layout_keeps_the_others() {
    let fx = crate::fixture!();
    let d = tempdir();
    let l = d.path().join("layout");
    let oci_src = format!("oci:{}", fx.oci_dir.display());
    let docker_src = format!("docker-archive:{}", fx.docker_archive.display());
    pinnace_ok(&["copy", "-q", &oci_src, &format!("oci:{}:first", l.display())]);
    // A different manifest (recompressed from the docker archive) under a second tag.
    let second = pinnace_ok(&["copy", "--json", &docker_src, &format!("oci:{}:second", l.display())]);
    let second_digest = manifest_digest_of(&second.stdout);
    assert_ne!(second_digest, fx.manifest_digest);
    assert_eq!(check::skopeo_digest(&format!("oci:{}:first", l.display())), fx.manifest_digest);
    assert_eq!(check::skopeo_digest(&format!("oci:{}:second", l.display())), second_digest);
    check::same_rootfs(fx, &Written::Oci(&l, "first"));
    check::same_rootfs(fx, &Written::Oci(&l, "second"));

    // Re-tagging "first" replaces only that entry.
    pinnace_ok(&["copy", "-q", &docker_src, &format!("oci:{}:first", l.display())]);
    let idx: Value = serde_json::from_slice(&fs::read(l.join("index.json")).unwrap()).unwrap();
    let mut tags: Vec<(String, String)> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    tags.sort();
    assert_eq!(tags, [("first".to_string(), second_digest.clone()), ("second".to_string(), second_digest)]);

    // Without a tag, a layout holding two images is ambiguous: the error lists them.
    let o = pinnace_fails(&["copy", &format!("oci:{}", l.display()), &format!("oci:{}/x", d.path().display())]);
    assert!(o.stderr.contains("first") && o.stderr.contains("second"), "{}", o.stderr);
}

#[test]
fn docker_archive_names_select_and_are_recorded() {
    let fx = crate::fixture!();
    let d = tempdir();
    let f = d.path().join("named.tar");
    let src = format!("oci:{}", fx.oci_dir.display());
    pinnace_ok(&["copy", "-q", &src, &format!("docker-archive:{}:localhost/app:1", f.display())]);
    let o = run_ok(cmd("tar").arg("-xOf").arg(&f).arg("manifest.json"));
    let m: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(m[0]["RepoTags"], serde_json::json!(["localhost/app:1"]));
    pinnace_ok(&[
        "copy",
        "-q",
        &format!("docker-archive:{}:localhost/app:1", f.display()),
        &format!("oci:{}/o:t", d.path().display()),
    ]);
    let o = pinnace_fails(&[
        "copy",
        &format!("docker-archive:{}:localhost/nope:2", f.display()),
        &format!("oci:{}/p:t", d.path().display()),
    ]);
    assert!(o.stderr.contains("localhost/app:1"), "the error should list the archive's tags: {}", o.stderr);
    assert!(!d.path().join("p").exists());
}
