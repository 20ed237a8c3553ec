//! `docker://` against a real registry (distribution 2.8 on 127.0.0.1, see [`harness`]):
//! round trips with skopeo and podman, basic auth and login/logout, TLS with a private CA,
//! bearer tokens, faults injected by a proxy ([`proxy`]), mounts and re-pushes, concurrent
//! blob transfers, and multi-platform indexes ([`images`]).

mod harness;
mod images;
mod proxy;
mod token;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::check;
use crate::fixture::Fixture;
use crate::util::{cmd, pinnace_cmd, podman_lock, run, run_ok, tempdir, Out, TestDir};
use harness::Mode;
use proxy::Fault;

/// pinnace with HOME, caches, auth files and CA settings confined to a temp dir.
struct Env {
    dir: TestDir,
}

impl Env {
    fn new() -> Env {
        Env { dir: tempdir() }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn cmd(&self) -> Command {
        let mut c = pinnace_cmd();
        for (k, v) in [
            ("HOME", "home"),
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_RUNTIME_DIR", "run"),
            ("XDG_CONFIG_HOME", "config"),
            ("DOCKER_CONFIG", "docker"),
        ] {
            c.env(k, self.path(v));
        }
        c.env_remove("REGISTRY_AUTH_FILE").env_remove("SSL_CERT_FILE").env_remove("PINNACE_REGISTRY_CHUNK_SIZE");
        c
    }
    fn run(&self, args: &[&str]) -> Out {
        run(self.cmd().args(args))
    }
    fn ok(&self, args: &[&str]) -> Out {
        run_ok(self.cmd().args(args))
    }
    fn fails(&self, args: &[&str]) -> Out {
        let o = self.run(args);
        assert_eq!(o.code(), Some(1), "pinnace {args:?} should fail:\n{}\n{}", o.stdout, o.stderr);
        o
    }
    /// `pinnace copy --json`, parsed.
    fn copy_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["copy", "--json"];
        a.extend_from_slice(args);
        let o = self.ok(&a);
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
    }
}

fn oci(fx: &Fixture) -> String {
    format!("oci:{}", fx.oci_dir.display())
}

fn actions(v: &Value) -> Vec<String> {
    v["layers"].as_array().unwrap().iter().map(|l| l["action"].as_str().unwrap().to_string()).collect()
}

const NO_TLS: &str = "--tls-verify=false";

/// `pinnace login ADDR -u USER --password-stdin` with `password` on stdin.
fn login_with(env: &Env, addr: &str, user: &str, password: &str) -> Out {
    use std::io::Write;
    let mut c = env.cmd();
    c.args(["login", addr, "-u", user, "--password-stdin", NO_TLS]);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("pinnace login");
    child.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    Out {
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        stdout_bytes: o.stdout,
    }
}

#[test]
fn push_pull_round_trip_with_skopeo_and_podman_then_repush_and_mount() {
    let fx = crate::fixture!();
    let reg = harness::start(Mode::Plain);
    let px = proxy::start(&reg.addr, Fault::None);
    let env = Env::new();
    let dst = format!("docker://{}/app:1", px.addr);
    let v = env.copy_json(&[&oci(fx), &dst, "--dest-tls-verify=false"]);
    assert_eq!(v["manifest_digest"].as_str(), Some(fx.manifest_digest.as_str()), "the digest is kept: {v}");
    assert!(actions(&v).iter().all(|a| a == "copied"), "{v}");
    let first_bytes = px.stats.upload_bytes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(first_bytes > 0);
    let stored = reg.stored_blob_bytes();

    // skopeo reads what pinnace pushed.
    let direct = format!("docker://{}/app:1", reg.addr);
    let sk = run_ok(cmd("skopeo").args(["inspect", NO_TLS, &direct]));
    let inspected: Value = serde_json::from_str(&sk.stdout).unwrap();
    assert_eq!(inspected["Digest"].as_str(), Some(fx.manifest_digest.as_str()));
    let d = tempdir();
    let sk_layout = d.path().join("sk");
    run_ok(
        cmd("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false", &direct])
            .arg(format!("oci:{}:t", sk_layout.display())),
    );
    check::same_config_and_diff_ids(fx, &format!("oci:{}:t", sk_layout.display()));

    // pinnace pulls it back; the layout validates and is what podman built.
    let back = d.path().join("back");
    let v = env.copy_json(&[&direct, &format!("oci:{}:t", back.display()), NO_TLS]);
    assert_eq!(v["manifest_digest"].as_str(), Some(fx.manifest_digest.as_str()));
    check::validates(&format!("oci:{}:t", back.display()));
    check::same_rootfs(fx, &check::Written::Oci(&back, "t"));

    // podman pulls and runs what pinnace pushed.
    {
        let _l = podman_lock();
        let name = format!("{}/app:1", reg.addr);
        run_ok(cmd("podman").args(["pull", "-q", NO_TLS, &name]));
        let o = run(cmd("podman").args(["run", "--rm", "--network", "none", &name]));
        let _ = run(cmd("podman").args(["rmi", "-f", &name]));
        assert!(o.status.success(), "podman run: {}", o.stderr);
        assert_eq!(o.stdout.trim_end(), fx.line);
    }

    // Re-push: every blob is already there, nothing is uploaded.
    let v = env.copy_json(&[&oci(fx), &dst, NO_TLS]);
    assert!(actions(&v).iter().all(|a| a == "skipped"), "{v}");
    assert_eq!(px.stats.upload_bytes.load(std::sync::atomic::Ordering::SeqCst), first_bytes, "re-push uploaded bytes");

    // The same image to a second repository: mounted, not uploaded (the mounts run
    // concurrently, one connection per blob).
    let v = env.copy_json(&[&oci(fx), &format!("docker://{}/second/app:1", px.addr), NO_TLS]);
    assert!(actions(&v).iter().all(|a| a == "mounted"), "{v}");
    assert_eq!(px.stats.upload_bytes.load(std::sync::atomic::Ordering::SeqCst), first_bytes, "mount uploaded bytes");
    let mounts = px.stats.log().iter().filter(|l| l.contains("mount=") && l.ends_with(" 201")).count();
    assert_eq!(mounts, fx.layer_blobs.len() + 1, "layers and config mounted: {:#?}", px.stats.log());
    assert!(reg.log().contains("mount="), "the registry saw no mount");
    assert_eq!(reg.stored_blob_bytes(), stored, "re-push and mount stored new blobs");
    run_ok(cmd("skopeo").args(["inspect", NO_TLS, &format!("docker://{}/second/app:1", reg.addr)]));
}

#[test]
fn reads_what_skopeo_pushed_and_inspects_it() {
    let fx = crate::fixture!();
    let reg = harness::start(Mode::Plain);
    let env = Env::new();
    let r = format!("docker://{}/skopeo/app:2", reg.addr);
    run_ok(cmd("skopeo").args(["copy", "-q", "--dest-tls-verify=false", "--format", "v2s2", &oci(fx), &r]));
    let d = tempdir();
    let out = format!("oci:{}:t", d.path().join("out").display());
    let v = env.copy_json(&[&r, &out, "--src-tls-verify=false"]);
    assert_eq!(v["config_digest"].as_str(), Some(fx.config_digest.as_str()));
    check::validates(&out);
    // By digest, and a Docker v2.2 manifest copied registry to registry keeps its digest.
    let digest =
        run_ok(cmd("skopeo").args(["inspect", NO_TLS, "--format", "{{.Digest}}", &r])).stdout.trim().to_string();
    let v = env.copy_json(&[
        &format!("docker://{}/skopeo/app@{digest}", reg.addr),
        &format!("docker://{}/copy:1", reg.addr),
        NO_TLS,
    ]);
    assert_eq!(v["manifest_digest"].as_str(), Some(digest.as_str()), "{v}");
    env.ok(&["inspect", NO_TLS, &r]);
    let o = env.fails(&["copy", NO_TLS, &format!("docker://{}/skopeo/app:nope", reg.addr), &out]);
    assert!(o.stderr.contains("MANIFEST_UNKNOWN") && o.stderr.contains("skopeo/app"), "{}", o.stderr);
}

#[test]
fn basic_auth_login_logout_and_credential_helpers() {
    let fx = crate::fixture!();
    let (user, pass) = ("tester", "s3cret-Pa55");
    let reg = harness::start(Mode::Basic(user.into(), pass.into()));
    let env = Env::new();
    let dst = format!("docker://{}/auth/app:1", reg.addr);
    let o = env.fails(&["copy", &oci(fx), &dst, NO_TLS]);
    assert!(o.stderr.contains("401") && o.stderr.contains("pinnace login"), "{}", o.stderr);

    let login = |pw: &str| login_with(&env, &reg.addr, user, pw);
    let bad = login("wrong");
    assert_eq!(bad.code(), Some(1), "{}", bad.stderr);
    assert!(!bad.stderr.contains("wrong"), "a password was printed: {}", bad.stderr);
    let good = login(&format!("{pass}\n"));
    assert!(good.status.success(), "{}", good.stderr);
    let auth_file = env.path("run/containers/auth.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!good.stdout.contains(pass) && !good.stderr.contains(pass));

    let v = env.copy_json(&[&oci(fx), &dst, NO_TLS]);
    assert_eq!(v["manifest_digest"].as_str(), Some(fx.manifest_digest.as_str()));
    run_ok(cmd("skopeo").args(["inspect", NO_TLS, "--creds", &format!("{user}:{pass}"), &dst]));

    env.ok(&["logout", &reg.addr]);
    env.fails(&["copy", &oci(fx), &dst, NO_TLS]);

    // skopeo's --dest-creds / --src-creds instead of a login; never echoed back.
    let creds = format!("{user}:{pass}");
    let v = env.copy_json(&[&oci(fx), &format!("docker://{}/auth/creds:1", reg.addr), NO_TLS, "--dest-creds", &creds]);
    assert_eq!(v["manifest_digest"].as_str(), Some(fx.manifest_digest.as_str()));
    assert!(!v.to_string().contains(pass), "a password in the JSON: {v}");
    let pulled = format!("oci:{}:t", env.path("creds-pulled").display());
    let o = env.ok(&["copy", &format!("docker://{}/auth/creds:1", reg.addr), &pulled, NO_TLS, "--src-creds", &creds]);
    assert!(!o.stdout.contains(pass) && !o.stderr.contains(pass));
    check::validates(&pulled);
    let o = env.fails(&["copy", &oci(fx), &dst, NO_TLS, "--dest-creds", &format!("{user}:not-{pass}")]);
    assert!(o.stderr.contains("401") && !o.stderr.contains(&format!("not-{pass}")), "{}", o.stderr);

    // docker's config.json with a credential helper.
    let bin = env.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-pinnacetest");
    fs::write(&helper, format!("#!/bin/sh\nread host\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{pass}\"}}' \"$host\"\n")).unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(env.path("docker")).unwrap();
    fs::write(env.path("docker/config.json"), r#"{"credsStore":"pinnacetest"}"#).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let o = run_ok(env.cmd().env("PATH", path).args([
        "copy",
        "-q",
        &oci(fx),
        &format!("docker://{}/auth/helper:1", reg.addr),
        NO_TLS,
    ]));
    assert!(!o.stderr.contains(pass));
}

#[test]
fn tls_with_a_private_ca_by_cert_dir_and_ssl_cert_file() {
    let fx = crate::fixture!();
    crate::require!("openssl");
    let reg = harness::start(Mode::Tls);
    let env = Env::new();
    let dst = format!("docker://{}/tls/app:1", reg.addr);
    let o = env.fails(&["copy", &oci(fx), &dst]);
    assert!(o.stderr.contains("--cert-dir"), "{}", o.stderr);
    let certs = reg.cert_dir();
    env.ok(&["copy", "-q", &oci(fx), &dst, "--dest-cert-dir", certs.to_str().unwrap()]);
    run_ok(env.cmd().env("SSL_CERT_FILE", certs.join("ca.crt")).args([
        "copy",
        "-q",
        &dst,
        &format!("oci:{}:t", env.path("pulled").display()),
    ]));
    check::validates(&format!("oci:{}:t", env.path("pulled").display()));
    // Unverified HTTPS.
    env.ok(&["copy", "-q", &oci(fx), &format!("docker://{}/tls/insecure:1", reg.addr), NO_TLS]);
    run_ok(cmd("skopeo").args(["inspect", "--cert-dir", certs.to_str().unwrap(), &dst]));
}

/// A PATCH cut off before any byte reached the registry resumes from the offset the
/// registry reports; one cut off mid-body cannot be resumed on distribution 2.8 (it
/// answers `BLOB_UPLOAD_INVALID` and asks clients to start over), so the blob is uploaded
/// again from its source. Either way the push succeeds and the image is intact.
#[test]
fn uploads_recover_after_a_dropped_connection() {
    let fx = crate::fixture!();
    let reg = harness::start(Mode::Plain);
    let env = Env::new();
    for (after, repo) in [(0, "resume"), (40_000, "restart")] {
        let px = proxy::start(&reg.addr, Fault::DropPatch { after });
        let dst = format!("docker://{}/{repo}/app:1", px.addr);
        let o = run_ok(env.cmd().env("PINNACE_REGISTRY_CHUNK_SIZE", "65536").args([
            "copy",
            "--json",
            &oci(fx),
            &dst,
            NO_TLS,
        ]));
        let log = px.stats.log();
        assert!(px.stats.fired(), "no PATCH was dropped: {log:#?}");
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["manifest_digest"].as_str(), Some(fx.manifest_digest.as_str()));
        let status_ok =
            log.iter().any(|l| l.starts_with("GET /v2/") && l.contains("/blobs/uploads/") && l.ends_with(" 204"));
        let restarted =
            log.iter().any(|l| l.starts_with("GET /v2/") && l.contains("/blobs/uploads/") && l.ends_with(" 404"));
        if after == 0 {
            assert!(status_ok && !restarted, "expected a resume from the reported offset: {log:#?}");
        } else {
            assert!(restarted, "expected a restart after BLOB_UPLOAD_INVALID: {log:#?}");
        }
        let d = tempdir();
        let r = format!("docker://{}/{repo}/app:1", reg.addr);
        let out = format!("oci:{}:t", d.path().join("o").display());
        run_ok(cmd("skopeo").args(["copy", "-q", "--src-tls-verify=false", &r, &out]));
        check::same_config_and_diff_ids(fx, &out);
        check::validates(&out);
    }
}

#[test]
fn server_errors_and_rate_limits_are_retried_after_retry_after() {
    let fx = crate::fixture!();
    let reg = harness::start(Mode::Plain);
    let env = Env::new();
    for (method, path, status) in [("PUT", "/manifests/", 500), ("HEAD", "/blobs/", 429), ("GET", "/manifests/", 503)] {
        let px = proxy::start(&reg.addr, Fault::Status { method, path, status });
        let t = Instant::now();
        if method == "GET" {
            env.ok(&[
                "copy",
                "-q",
                &format!("docker://{}/retry/app:1", px.addr),
                &format!("oci:{}:t", env.path("pulled").display()),
                NO_TLS,
            ]);
        } else {
            env.ok(&["copy", "-q", &oci(fx), &format!("docker://{}/retry/app:1", px.addr), NO_TLS]);
        }
        assert!(px.stats.fired(), "{method} {path}: {:#?}", px.stats.log());
        assert!(t.elapsed() >= Duration::from_secs(1), "Retry-After: 1 not honoured ({:?})", t.elapsed());
    }
    // A 4xx is not retried: a manifest that does not exist fails once.
    let px = proxy::start(&reg.addr, Fault::None);
    env.fails(&[
        "copy",
        NO_TLS,
        &format!("docker://{}/retry/none:1", px.addr),
        &format!("oci:{}:x", env.path("x").display()),
    ]);
    let gets = px.stats.log().iter().filter(|l| l.starts_with("GET /v2/retry/none/manifests/")).count();
    assert_eq!(gets, 1, "{:#?}", px.stats.log());
}

#[test]
fn corrupt_or_truncated_downloads_are_rejected_and_nothing_is_written() {
    let fx = crate::fixture!();
    let reg = harness::start(Mode::Plain);
    let env = Env::new();
    env.ok(&["copy", "-q", &oci(fx), &format!("docker://{}/bad/app:1", reg.addr), NO_TLS]);
    let layout = env.path("out");
    env.ok(&["copy", "-q", &oci(fx), &format!("oci:{}:before", layout.display())]);
    let index_before = fs::read(layout.join("index.json")).unwrap();
    for fault in [Fault::CorruptBlob, Fault::TruncateManifest] {
        let px = proxy::start(&reg.addr, fault.clone());
        let o = env.fails(&[
            "copy",
            NO_TLS,
            &format!("docker://{}/bad/app:1", px.addr),
            &format!("oci:{}:after", layout.display()),
        ]);
        assert!(px.stats.fired(), "{fault:?}");
        let named = o.stderr.contains("sha256:") || o.stderr.contains("GET manifest 1");
        assert!(named, "{fault:?}: the error names no blob or manifest: {}", o.stderr);
        assert_eq!(fs::read(layout.join("index.json")).unwrap(), index_before, "{fault:?} changed the layout");
        let stray: Vec<_> =
            crate::util::tree(&layout).into_iter().filter(|p| p.to_string_lossy().contains("tmp")).collect();
        assert!(stray.is_empty(), "{fault:?} left {stray:?}");
    }
}

/// A pull killed in the middle of a large blob (the proxy serves 6 MiB of a 9 MiB layer,
/// then stalls), into a layout that already holds another image: index.json is unchanged,
/// every file under blobs/sha256 hashes to its name (no partial blob), neither the layer
/// nor the manifest that would reference it is there; the next pull removes the dead
/// process's temporary file and completes.
#[test]
fn a_pull_killed_mid_blob_leaves_no_partial_blob_and_nothing_referencing_it() {
    crate::require!("docker-registry");
    let reg = harness::start(Mode::Plain);
    let d = tempdir();
    let (src, m) = layered(&d.path().join("src"), 13, 1, 9 << 20);
    let manifest: Value = serde_json::from_slice(
        &fs::read(d.path().join("src/blobs/sha256").join(m.digest.trim_start_matches("sha256:"))).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let env = Env::new();
    env.ok(&["copy", "-q", &src, &format!("docker://{}/kill/app:1", reg.addr), NO_TLS]);
    let layout = d.path().join("out");
    layered(&layout, 14, 1, 1000);
    let index_before = fs::read(layout.join("index.json")).unwrap();
    let dst = format!("oci:{}:new", layout.display());

    let px = proxy::start(&reg.addr, Fault::StallBlob { after: 6 << 20 });
    let mut child = env
        .cmd()
        .args(["copy", "-q", NO_TLS, &format!("docker://{}/kill/app:1", px.addr), &dst])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once part of the layer is on disk, in a temporary file.
    let partial = || {
        fs::read_dir(&layout).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".pinnace-tmp") && e.metadata().is_ok_and(|m| m.len() > 0)
        })
    };
    let start = Instant::now();
    while !(px.stats.fired() && partial()) && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(px.stats.fired() && partial(), "the pull was not caught mid-blob: {:#?}", px.stats.log());

    assert_eq!(fs::read(layout.join("index.json")).unwrap(), index_before, "index.json changed");
    for e in fs::read_dir(layout.join("blobs/sha256")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert_eq!(crate::util::file_digest(&e.path()), format!("sha256:{name}"), "a partial blob in place");
        assert_ne!(name, layer, "the interrupted layer is in place");
        assert_ne!(format!("sha256:{name}"), m.digest, "the manifest referencing it is in place");
    }

    env.ok(&["copy", "-q", NO_TLS, &format!("docker://{}/kill/app:1", reg.addr), &dst]);
    check::validates(&dst);
    let stray: Vec<_> =
        crate::util::tree(&layout).into_iter().filter(|p| p.to_string_lossy().contains("tmp")).collect();
    assert!(stray.is_empty(), "left {stray:?}");
}

#[test]
fn bearer_token_flow_with_a_local_issuer() {
    let fx = crate::fixture!();
    crate::require!("openssl");
    let issuer = token::Issuer::start("tok-user", "tok-pass");
    let reg = harness::start(Mode::Token { realm: issuer.realm.clone(), cert: issuer.cert.clone() });
    let env = Env::new();
    let dst = format!("docker://{}/tok/app:1", reg.addr);
    // Anonymous: the issuer refuses push.
    let o = env.fails(&["copy", &oci(fx), &dst, NO_TLS]);
    assert!(o.stderr.contains("token") || o.stderr.contains("401"), "{}", o.stderr);
    let auth = env.path("auth.json");
    fs::write(&auth, format!(r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#, reg.addr, token::b64("tok-user:tok-pass")))
        .unwrap();
    let a = auth.to_str().unwrap();
    let v = env.copy_json(&[&oci(fx), &dst, NO_TLS, "--authfile", a]);
    assert_eq!(v["manifest_digest"].as_str(), Some(fx.manifest_digest.as_str()));
    let pulled = format!("oci:{}:t", env.path("pulled").display());
    env.ok(&["copy", "-q", &dst, &pulled, NO_TLS, "--authfile", a]);
    check::validates(&pulled);
    let scopes = issuer.scopes();
    assert!(scopes.iter().any(|s| s.contains("repository:tok/app:pull,push")), "{scopes:?}");
    // One token per scope per process: far fewer token requests than registry requests.
    assert!(scopes.len() <= 8, "tokens are not cached: {scopes:?}");
}

/// A layout holding `layers` random gzip layers of `size` bytes, tagged `t`.
fn layered(dir: &std::path::Path, seed: u64, layers: usize, size: usize) -> (String, images::Desc) {
    let m = images::image(dir, seed, layers, size, "amd64");
    (images::tag(dir, &m, "t"), m)
}

/// Uploads overlap with the default `--jobs` (observed at the proxy, which holds every
/// upload 300 ms), run one at a time with `--jobs 1`, and both give the same manifest.
#[test]
fn concurrent_push_overlaps_uploads_and_matches_a_sequential_push() {
    crate::require!("docker-registry", "skopeo");
    let reg = harness::start(Mode::Plain);
    let d = tempdir();
    let (src, m) = layered(&d.path().join("src"), 7, 5, 1 << 20);
    let mut digests = Vec::new();
    for (jobs, repo) in [("1", "seq"), ("3", "par")] {
        let px = proxy::start(&reg.addr, Fault::SlowUploads { ms: 300 });
        // A fresh environment each time: no remembered locations, so no mounts.
        let env = Env::new();
        let v = env.copy_json(&[&src, &format!("docker://{}/{repo}/app:1", px.addr), NO_TLS, "--jobs", jobs]);
        assert!(actions(&v).iter().all(|a| a == "copied"), "{v}");
        let most = px.stats.max_concurrent_uploads();
        if jobs == "1" {
            assert_eq!(most, 1, "--jobs 1 overlapped uploads: {:#?}", px.stats.log());
        } else {
            assert!(most >= 2, "no uploads overlapped with --jobs {jobs}: {:#?}", px.stats.log());
            assert!(most <= 3, "more than --jobs uploads at once ({most})");
        }
        digests.push(v["manifest_digest"].as_str().unwrap().to_string());
        let out = format!("oci:{}:t", d.path().join(repo).display());
        run_ok(cmd("skopeo").args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{}/{repo}/app:1", reg.addr),
            &out,
        ]));
        check::validates(&out);
    }
    assert_eq!(digests, vec![m.digest.clone(), m.digest.clone()], "the manifest depends on --jobs");

    // Pulls run concurrently as well and keep the digest.
    let env = Env::new();
    let back = format!("oci:{}:t", d.path().join("back").display());
    let v = env.copy_json(&[&format!("docker://{}/par/app:1", reg.addr), &back, NO_TLS]);
    assert_eq!(v["manifest_digest"].as_str(), Some(m.digest.as_str()));
    check::validates(&back);
}

/// A connection dropped in the middle of one PATCH while other blobs upload beside it:
/// that blob is uploaded again (distribution 2.8 cannot resume a broken PATCH), the others
/// are not disturbed, and the image arrives whole with the digest of the source.
#[test]
fn a_dropped_connection_during_a_concurrent_push_recovers() {
    crate::require!("docker-registry", "skopeo");
    let reg = harness::start(Mode::Plain);
    let d = tempdir();
    let (src, m) = layered(&d.path().join("src"), 11, 4, 600_000);
    let px = proxy::start(&reg.addr, Fault::DropPatch { after: 40_000 });
    let env = Env::new();
    let o = run_ok(env.cmd().env("PINNACE_REGISTRY_CHUNK_SIZE", "65536").args([
        "copy",
        "--json",
        &src,
        &format!("docker://{}/drop/app:1", px.addr),
        NO_TLS,
    ]));
    let log = px.stats.log();
    assert!(px.stats.fired(), "no PATCH was dropped: {log:#?}");
    assert!(px.stats.max_concurrent_uploads() >= 2, "the push was not concurrent: {log:#?}");
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["manifest_digest"].as_str(), Some(m.digest.as_str()));
    let out = format!("oci:{}:t", d.path().join("out").display());
    run_ok(cmd("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{}/drop/app:1", reg.addr),
        &out,
    ]));
    check::validates(&out);
}

/// `--all` pushes every image of an index and then the index itself, byte for byte;
/// without it one platform is picked, as before. A registry-to-registry `--all` copy keeps
/// the index digest, and a store that holds single images refuses `--all` cleanly.
#[test]
fn all_copies_a_multi_platform_index() {
    crate::require!("docker-registry", "skopeo");
    let reg = harness::start(Mode::Plain);
    let d = tempdir();
    let dir = d.path().join("multi");
    let amd = images::image(&dir, 21, 2, 100_000, "amd64");
    let arm = images::image(&dir, 22, 2, 100_000, "arm64");
    let idx = images::index(&dir, &[(amd.clone(), "amd64"), (arm.clone(), "arm64")]);
    let src = images::tag(&dir, &idx, "t");
    let env = Env::new();

    let dst = format!("docker://{}/multi/app:1", reg.addr);
    let v = env.copy_json(&[&src, &dst, NO_TLS, "--all"]);
    assert_eq!(v["manifest_digest"].as_str(), Some(idx.digest.as_str()), "{v}");
    assert!(v["config_digest"].is_null(), "{v}");
    let children: Vec<&str> =
        v["images"].as_array().unwrap().iter().map(|i| i["manifest_digest"].as_str().unwrap()).collect();
    assert_eq!(children, [amd.digest.as_str(), arm.digest.as_str()]);
    let raw = run_ok(cmd("skopeo").args(["inspect", "--raw", NO_TLS, &dst]));
    assert_eq!(format!("sha256:{}", crate::util::sha256_hex(&raw.stdout_bytes)), idx.digest, "the index was not kept");
    for (child, arch) in [(&amd, "amd64"), (&arm, "arm64")] {
        // skopeo picks each platform from the index pinnace pushed.
        let o = run_ok(cmd("skopeo").args([
            "inspect",
            "--config",
            NO_TLS,
            "--override-arch",
            arch,
            "--override-os",
            "linux",
            &dst,
        ]));
        let config: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(config["architecture"].as_str(), Some(arch), "{config}");
        let out = format!("oci:{}:t", d.path().join(arch).display());
        run_ok(cmd("skopeo").args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{}/multi/app@{}", reg.addr, child.digest),
            &out,
        ]));
        check::validates(&out);
    }

    // Registry to registry: the children are read from the manifests endpoint.
    let v = env.copy_json(&[&dst, &format!("docker://{}/multi/copy:1", reg.addr), NO_TLS, "--all"]);
    assert_eq!(v["manifest_digest"].as_str(), Some(idx.digest.as_str()), "{v}");

    // Without --all: one platform, as before.
    let v = env.copy_json(&[&src, &format!("docker://{}/multi/arm:1", reg.addr), NO_TLS, "--platform", "linux/arm64"]);
    assert_eq!(v["manifest_digest"].as_str(), Some(arm.digest.as_str()), "{v}");
    assert!(v.get("images").is_none(), "{v}");

    // A layout stores single images: refused, and nothing is left behind.
    let layout = d.path().join("refused");
    let o = env.fails(&["copy", NO_TLS, "--all", &dst, &format!("oci:{}:t", layout.display())]);
    assert!(o.stderr.contains("--all") && o.stderr.contains("index"), "{}", o.stderr);
    assert!(!layout.exists(), "a refused --all copy left {layout:?}");
}
