//! The command line's contract: exit code 0 on success, 1 on failure with a
//! `pinnace: error:` line naming the file, digest or tag, 2 on usage errors.

use std::fs;

use crate::util::{pinnace, pinnace_fails, tempdir};

#[test]
fn version_and_help() {
    let o = pinnace(&["--version"]);
    assert_eq!(o.code(), Some(0), "{}", o.stderr);
    assert_eq!(o.stdout.trim(), format!("pinnace {}", env!("CARGO_PKG_VERSION")));
    let o = pinnace(&["copy", "--help"]);
    assert_eq!(o.code(), Some(0), "{}", o.stderr);
    for word in ["oci:DIR[:TAG]", "oci-archive:", "docker-archive:", "containers-storage:", "docker-daemon:", "diff_id"]
    {
        assert!(o.stdout.contains(word), "copy --help should mention {word}:\n{}", o.stdout);
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--no-such-flag"][..],
        &["copy", "--no-such-flag", "oci:a", "oci:b"],
        &["copy", "oci:only-one"],
        &["copy"],
        &["no-such-command"],
        &[],
    ] {
        let o = pinnace(args);
        assert_eq!(o.code(), Some(2), "pinnace {args:?}: stdout {} stderr {}", o.stdout, o.stderr);
        assert!(!o.stderr.is_empty(), "pinnace {args:?} said nothing on stderr");
    }
}

#[test]
fn failures_exit_1_and_name_what_failed() {
    let d = tempdir();
    let p = d.path();
    let missing_dir = p.join("no-such-layout");
    let o = pinnace_fails(&["copy", &format!("oci:{}", missing_dir.display()), &format!("oci:{}/x", p.display())]);
    assert!(o.stderr.contains(&missing_dir.display().to_string()), "{}", o.stderr);

    let missing_tar = p.join("no-such.tar");
    for t in ["docker-archive", "oci-archive"] {
        let o = pinnace_fails(&["copy", &format!("{t}:{}", missing_tar.display()), &format!("oci:{}/x", p.display())]);
        assert!(o.stderr.contains(&missing_tar.display().to_string()), "{}", o.stderr);
    }

    let not_tar = p.join("not-a.tar");
    fs::write(&not_tar, b"this is not a tar archive, just some text that is long enough").unwrap();
    let o =
        pinnace_fails(&["copy", &format!("docker-archive:{}", not_tar.display()), &format!("oci:{}/x", p.display())]);
    assert!(o.stderr.contains(&not_tar.display().to_string()), "{}", o.stderr);

    let o = pinnace_fails(&["copy", "ftp:thing", &format!("oci:{}/x", p.display())]);
    assert!(o.stderr.contains("ftp"), "{}", o.stderr);

    let o = pinnace_fails(&["copy", "docker://localhost:5000/x:1", &format!("oci:{}/x", p.display())]);
    assert!(o.stderr.contains("registr"), "{}", o.stderr);

    let same = format!("oci:{}/same:t", p.display());
    let o = pinnace_fails(&["copy", &same, &same]);
    assert!(o.stderr.contains("same"), "{}", o.stderr);

    // Nothing was created by any of these.
    assert_eq!(fs::read_dir(p).unwrap().count(), 1, "{:?}", crate::util::tree(p));
}

#[test]
fn failures_on_real_images_name_tag_and_file() {
    let fx = crate::fixture!();
    let d = tempdir();
    let p = d.path();
    let o = pinnace_fails(&[
        "copy",
        &format!("oci:{}:no-such-tag", fx.oci_dir.display()),
        &format!("oci:{}/x", p.display()),
    ]);
    assert!(o.stderr.contains("no-such-tag") && o.stderr.contains(&fx.name), "{}", o.stderr);
    let o = pinnace_fails(&[
        "copy",
        "--platform",
        "bogus",
        &format!("oci:{}", fx.oci_dir.display()),
        &format!("oci:{}/x", p.display()),
    ]);
    assert!(o.stderr.contains("bogus") && o.stderr.contains("os/arch"), "{}", o.stderr);
    let o = pinnace_fails(&[
        "copy",
        "--compression",
        "none",
        &format!("oci:{}", fx.oci_dir.display()),
        &format!("oci:{}/x", p.display()),
    ]);
    assert!(o.stderr.contains("--compression"), "{}", o.stderr);
    // The destination of a failed copy does not exist.
    assert!(!p.join("x").exists());
}
