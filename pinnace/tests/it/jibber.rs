//! The README's main job: `scripts/demo.sh` packages jibber with `pinnace build --cargo`,
//! runs it under podman and fetches a verse. This test runs the script itself with the
//! pinnace binary under test, then checks the image and the container's answers.

use std::path::Path;

use crate::util::{cmd, podman_lock, run, run_ok, tempdir};

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root")
}

#[test]
fn demo_builds_runs_and_serves_jibber() {
    crate::require!("podman", "cargo", "curl");
    let _podman = podman_lock();
    let dir = tempdir();
    let out = dir.path().join("out");
    // A separate target dir: the outer `cargo test` may hold the workspace's lock.
    let o = run_ok(
        cmd("bash")
            .arg(workspace().join("scripts/demo.sh"))
            .current_dir(workspace())
            .env("PINNACE", env!("CARGO_BIN_EXE_pinnace"))
            .env("OUT", &out)
            .env("CARGO_TARGET_DIR", workspace().join("target/nested")),
    );
    let text = &o.stdout;
    let verse: Vec<&str> = text.lines().filter(|l| l.ends_with("<br/>")).map(str::trim).collect();
    assert_eq!(verse.len(), 10, "expected 10 lines of verse:\n{text}");
    assert!(text.contains("pinnace build --cargo jibber"), "{text}");
    assert!(text.contains("SIGTERM -> exit 0"), "jibber did not exit 0 on SIGTERM as PID 1:\n{text}");

    // The image: small, static, nonroot, with the package's settings and labels.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("build.json")).unwrap()).unwrap();
    let usize = report["uncompressed_size"].as_u64().unwrap();
    assert!(usize <= 1_500_000, "jibber image is {usize} bytes uncompressed (target <= 1.5 MB)");
    assert!(
        report["layers"].as_array().unwrap().iter().all(|l| l["role"] != "shared libraries"),
        "static binary brought libraries"
    );
    let cfg = run_ok(
        cmd("skopeo").args(["inspect", "--config"]).arg(format!("oci-archive:{}", out.join("jibber.tar").display())),
    );
    let cfg: serde_json::Value = serde_json::from_str(&cfg.stdout).unwrap();
    assert_eq!(cfg["config"]["User"], "65532:65532");
    assert_eq!(cfg["config"]["Entrypoint"][0], "/usr/local/bin/jibber");
    assert!(cfg["config"]["ExposedPorts"]["8080/tcp"].is_object(), "{cfg}");
    assert_eq!(cfg["config"]["Labels"]["org.opencontainers.image.title"], "jibber");

    // Same seed, same verse: run the demo's image once more and compare.
    let name = "localhost/pinnace-demo-jibber:latest";
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cname = format!("pinnace-it-jibber-{}", std::process::id());
    run_ok(cmd("podman").args(["run", "-d", "--name", &cname, "-p", &format!("127.0.0.1:{port}:8080"), name]));
    let mut body = String::new();
    for _ in 0..200 {
        let o = run(cmd("curl").args(["-sf", "--max-time", "1", &format!("http://127.0.0.1:{port}/jibber?seed=42")]));
        if o.status.success() {
            body = o.stdout;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = run(cmd("podman").args(["rm", "-f", &cname]));
    let _ = run(cmd("podman").args(["rmi", "-f", name]));
    let again: Vec<&str> = body.lines().collect();
    assert_eq!(again, verse, "seed 42 gave another verse on a second run");
}
