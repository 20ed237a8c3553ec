//! `docker://` against a real registry (distribution 2.8 on 127.0.0.1, see [`harness`]):
//! round trips with skopeo and podman, basic auth and login/logout, TLS with a private CA,
//! bearer tokens, faults injected by a proxy ([`proxy`]), mounts and re-pushes.

mod harness;
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

    // The same image to a second repository: mounted, not uploaded.
    let v = env.copy_json(&[&oci(fx), &format!("docker://{}/second/app:1", px.addr), NO_TLS]);
    assert!(actions(&v).iter().all(|a| a == "skipped"), "{v}");
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
