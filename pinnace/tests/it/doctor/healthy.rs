//! No false alarms: images that work get no finding of error severity. Images that
//! pinnace builds (a static C program, a static Go net/http server like jibber, the
//! host's /usr/bin/curl with its closure and CA bundle) and a podman-built C image (a
//! dynamic program with the loader and libc copied next to it, `FROM scratch`), which
//! podman really runs.

use std::fs;
use std::path::Path;

use super::{doctor_json, errors, gcc, host_ok, ids, HELLO};
use crate::util::{at_exit, cmd, pinnace_ok, podman_lock, require_tools, run_ok, scratch_root, Cleanup};

fn build(name: &str, args: &[&str]) -> String {
    let r = format!("oci:{}:1", scratch_root().join("doctor-healthy").join(name).display());
    let mut all = vec!["build", "-q", "-t", &r];
    all.extend_from_slice(args);
    pinnace_ok(&all);
    r
}

fn no_errors(r: &str) -> serde_json::Value {
    let (v, o) = doctor_json(r, &[]);
    assert!(errors(&v).is_empty(), "{r}: {:#}", v["findings"]);
    assert_eq!(o.code(), Some(0), "{}", o.stderr);
    v
}

#[test]
fn images_pinnace_builds_have_no_errors() {
    if !host_ok() {
        return;
    }
    let hello = gcc("static-hello", HELLO, &["-static", "-s", "-O2"]);
    let v = no_errors(&build("static-c", &["--binary", &format!("{}:/usr/local/bin/hello", hello.display())]));
    assert!(ids(&v).is_empty(), "a pinnace-built static image is clean: {:#}", v["findings"]);

    if Path::new("/usr/bin/curl").exists() {
        let v = no_errors(&build("curl", &["--binary", "/usr/bin/curl"]));
        assert!(v["stats"]["programs"].as_u64() == Some(1));
        assert!(!ids(&v).contains("tls-no-ca-bundle"));
    }

    if require_tools(&["go"]) {
        let dir = scratch_root().join("doctor-go");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("main.go"),
            "package main\nimport (\"fmt\"; \"net/http\")\nfunc main() {\n\thttp.ListenAndServe(\":8080\", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, \"ok\") }))\n}\n",
        )
        .unwrap();
        fs::write(dir.join("go.mod"), "module example.com/doctor\n\ngo 1.19\n").unwrap();
        run_ok(
            cmd("go")
                .current_dir(&dir)
                .env("CGO_ENABLED", "0")
                .env("GOTOOLCHAIN", "local")
                .env("GOFLAGS", "-mod=mod")
                .env("GOPROXY", "off")
                .args(["build", "-o", "server", "."]),
        );
        let v =
            no_errors(&build("go", &["--binary", &format!("{}:/usr/local/bin/server", dir.join("server").display())]));
        // Go's net/http brings crypto/tls: pinnace build added the CA bundle, so no error.
        assert!(!ids(&v).contains("tls-no-ca-bundle"), "{:#}", v["findings"]);
    }
}

/// `podman build` of a dynamic C program `FROM scratch` with the loader and libc
/// copied to their places: podman runs it, and doctor reads it from containers-storage.
#[test]
fn a_podman_built_c_image_that_works_has_no_errors() {
    if !host_ok() || !require_tools(&["podman"]) {
        return;
    }
    let dir = scratch_root().join("doctor-podman");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(gcc("dyn-hello", HELLO, &["-s", "-O2"]), dir.join("app")).unwrap();
    let libc = String::from_utf8(run_ok(cmd("gcc").arg("-print-file-name=libc.so.6")).stdout_bytes).unwrap();
    fs::copy(fs::canonicalize(libc.trim()).unwrap(), dir.join("libc.so.6")).unwrap();
    fs::copy(fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap(), dir.join("ld.so")).unwrap();
    fs::write(
        dir.join("Containerfile"),
        "FROM scratch\nCOPY app /app\nCOPY ld.so /lib64/ld-linux-x86-64.so.2\nCOPY libc.so.6 /lib/x86_64-linux-gnu/libc.so.6\nUSER 65532\nCMD [\"/app\"]\n",
    )
    .unwrap();
    let name = format!("localhost/pinnace-doctor-healthy-{}:1", std::process::id());
    let _p = podman_lock();
    at_exit(Cleanup::PodmanImage(name.clone()));
    run_ok(cmd("podman").args(["build", "-q", "--network", "none", "-t", &name]).arg(&dir));
    let out = run_ok(cmd("podman").args(["run", "--rm", "--network", "none", &name]));
    assert_eq!(out.stdout.trim(), "hello from doctor");
    let v = no_errors(&format!("containers-storage:{name}"));
    assert_eq!(v["stats"]["programs"], 1);
    let _ = run_ok(cmd("podman").args(["rmi", "-f", &name]));
}
