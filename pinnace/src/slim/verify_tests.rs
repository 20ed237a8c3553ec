//! Tests of [`super`] against the real runtimes: a static C service packed into an OCI
//! layout here, loaded, probed, and removed. Each runtime that works is tested; a missing
//! runtime or gcc skips the test outside CI and fails it under `CI=true`.

use std::fs;
use std::path::Path;
use std::process::Command;

use sha2::{Digest as _, Sha256};

use super::*;
use crate::slim::probe::{run_probes, Probe, ProbeOptions};
use crate::transport::layout::LayoutSource;

const SERVICE_C: &str = r#"
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--crash") == 0) { fprintf(stderr, "verify-svc: fatal: no config\n"); return 3; }
    if (argc > 1 && strcmp(argv[1], "--sleep") == 0) { for (;;) pause(); }
    if (argc > 1 && strcmp(argv[1], "--print") == 0) { printf("exec ok\n"); fprintf(stderr, "to stderr\n"); return 5; }
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(8080)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 8)) { perror("listen"); return 1; }
    fprintf(stderr, "verify-svc listening\n");
    for (;;) {
        int c = accept(s, 0, 0);
        char buf[1024];
        if (read(c, buf, sizeof buf) > 0) {
            const char *r = "HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nhello verify\n";
            if (write(c, r, strlen(r)) < 0) perror("write");
        }
        close(c);
    }
}
"#;

fn required(what: &str, ok: bool) -> bool {
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{what} is required under CI=true (run scripts/setup-test-tools.sh)");
        }
        eprintln!("SKIPPED: {what} is not available");
    }
    ok
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// An OCI layout with one layer (/svc, static) and two tags: `ok` serves HTTP on 8080,
/// `crash` exits 3 at once.
fn layout(dir: &Path) {
    fs::write(dir.join("svc.c"), SERVICE_C).unwrap();
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("svc"))
        .arg(dir.join("svc.c"))
        .status()
        .unwrap();
    assert!(st.success(), "gcc -static failed");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let bin = fs::read(dir.join("svc")).unwrap();
    h.set_size(bin.len() as u64);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "svc", &bin[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let blobs = dir.join("oci/blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = sha(data);
        fs::write(blobs.join(&d[7..]), data).unwrap();
        d
    };
    let ld = put(&layer);
    let mut manifests = Vec::new();
    for (tag, entry) in [("ok", vec!["/svc"]), ("crash", vec!["/svc", "--crash"])] {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": entry, "ExposedPorts": {"8080/tcp": {}}},
            "rootfs": {"type": "layers", "diff_ids": [ld]},
        }))
        .unwrap();
        let cd = put(&config);
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
        }))
        .unwrap();
        let md = put(&m);
        manifests.push(serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": m.len(), "annotations": {"org.opencontainers.image.ref.name": tag}}));
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    fs::write(dir.join("oci/index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci/oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn exists(rt: Runtime, args: &[&str]) -> bool {
    rt.command().args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap().success()
}

fn check(rt: Runtime, dir: &Path) {
    let src = LayoutSource::open(&dir.join("oci"), Some("ok")).unwrap();
    let spec = ContainerSpec { ports: vec![8080], stop_signal: Some("SIGKILL".into()) };
    let c = RuntimeContainer::start(rt, &src, &spec).unwrap();
    let (image, container) = (c.image_name().to_string(), c.container.clone().unwrap());
    assert!(image.starts_with("localhost/pinnace-slim-verify:") && image.len() == 38, "{image}");
    assert!(c.describe().contains(&container), "{}", c.describe());
    let probes = [Probe::http("8080:/=verify").unwrap(), Probe::exec("/svc --print").unwrap()];
    let out = run_probes(&c, &probes, &ProbeOptions::default()).unwrap();
    assert!(out[0].ok() && out[0].excerpt == "hello verify\n", "{:?}", out[0]);
    assert_eq!((out[1].exit_code, out[1].excerpt.as_str()), (Some(5), "exec ok\n"), "{:?}", out[1]);
    assert_eq!(out[1].stderr.as_deref(), Some("to stderr\n"));
    assert_eq!(c.app_exited(), None);
    assert!(c.log_tail(5).contains("verify-svc listening"), "{}", c.log_tail(5));
    let e = c.connect(9999, Duration::from_secs(1)).unwrap_err();
    assert!(e.to_string().contains("not published"), "{e}");
    let slow = c.exec(&["/svc".into(), "--sleep".into()], Duration::from_millis(500)).unwrap();
    assert!(slow.timed_out, "{slow:?}");
    drop(c);
    assert!(!exists(rt, &["container", "inspect", &container]), "{container} left behind");
    assert!(!exists(rt, &["image", "inspect", &image]), "{image} left behind");

    // An app that exits at once: its code and log lines, and the cleanup all the same.
    let src = LayoutSource::open(&dir.join("oci"), Some("crash")).unwrap();
    let c = RuntimeContainer::start(rt, &src, &spec).unwrap();
    let (image, container) = (c.image_name().to_string(), c.container.clone().unwrap());
    let e = run_probes(&c, &[Probe::http("8080:/").unwrap()], &ProbeOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("exited with code 3") && msg.contains("verify-svc: fatal: no config"), "{msg}");
    drop(c);
    assert!(!exists(rt, &["container", "inspect", &container]) && !exists(rt, &["image", "inspect", &image]));
}

#[test]
fn containers_conf_keys_are_recognised() {
    assert!(conf_sets("runtime = \"runc\"\n", "runtime"));
    assert!(!conf_sets("runtime_path = []\n#runtime = \"crun\"\n", "runtime"));
    assert!(conf_sets("  default_ulimits=[]", "default_ulimits"));
}

#[test]
fn a_container_serves_probes_and_is_removed() {
    if !required("gcc", Command::new("gcc").arg("--version").output().is_ok_and(|o| o.status.success())) {
        return;
    }
    let runtimes: Vec<Runtime> = [Runtime::Docker, Runtime::Podman].into_iter().filter(|r| r.works()).collect();
    if !required("docker or podman", !runtimes.is_empty()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    for rt in runtimes {
        check(rt, dir.path());
    }
}
