//! `pinnace slim` end to end (issue 10): real Debian images built here (see
//! `tests/fixtures/slim/make-images.sh`: debootstrap + apt-get in a chroot, cached per day
//! under /var/tmp/pinnace-test-cache), each slimmed by the real binary, which traces it in
//! its sandbox and verifies the result with docker (or podman, where asked); then the
//! ratio is measured here, from the layer tars, and the slim image is checked from the
//! outside. Plus the refusals: an over-slimmed image, a probe that already fails, an app
//! that does not start; and a sandbox that leaves nothing behind.
//!
//! The images are built once per test process (a `OnceLock`) and shared.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{at_exit, cmd, pinnace_cmd, podman_lock, run, run_ok, tempdir, Cleanup, Out, TestDir};

/// The OCI layout holding the fixture images (tags base, python, node, java, perl, capps,
/// crash), built on first use.
fn images() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slim/make-images.sh");
        let t0 = Instant::now();
        let o = run(cmd("bash").arg(&script));
        if !o.status.success() {
            return Err(format!("{} failed ({}):\n{}", script.display(), o.status, o.stderr));
        }
        eprintln!("slim fixtures ready in {:.0?}", t0.elapsed());
        Ok(PathBuf::from(o.stdout.trim()))
    });
    match r {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// `oci:LAYOUT:TAG` of a fixture image.
fn image(tag: &str) -> String {
    format!("oci:{}:{tag}", images().display())
}

/// The fixture's uncompressed size (the sum of its layer tars).
fn original_size(tag: &str) -> u64 {
    fs::read_to_string(images().join(format!("{tag}.size"))).unwrap().trim().parse().unwrap()
}

/// Everything one slim run left: its output, the report, the destination archive.
struct Slimmed {
    out: Out,
    dir: TestDir,
    archive: PathBuf,
}

impl Slimmed {
    /// The `--json` report on stdout.
    fn report(&self) -> Value {
        serde_json::from_str(&self.out.stdout)
            .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{}\nstderr:\n{}", self.out.stdout, self.out.stderr))
    }
    /// Layer tar bytes of the slim image (docker-archive: uncompressed layers).
    fn size(&self) -> u64 {
        let (manifest, sizes) = archive_members(&self.archive);
        manifest[0]["Layers"].as_array().unwrap().iter().map(|l| sizes[l.as_str().unwrap()]).sum()
    }
    /// Every path in the slim image (from its layers; `/`-rooted, directories without a
    /// trailing slash).
    fn paths(&self) -> BTreeSet<String> {
        let (manifest, _) = archive_members(&self.archive);
        let mut all = BTreeSet::new();
        for l in manifest[0]["Layers"].as_array().unwrap() {
            let layer = member_bytes(&self.archive, l.as_str().unwrap());
            let mut t = tar::Archive::new(&layer[..]);
            for e in t.entries().unwrap() {
                let e = e.unwrap();
                let p = e.path().unwrap().to_string_lossy().trim_start_matches("./").trim_end_matches('/').to_string();
                if !p.is_empty() {
                    all.insert(format!("/{p}"));
                }
            }
        }
        all
    }
}

fn archive_members(archive: &Path) -> (Value, std::collections::HashMap<String, u64>) {
    let mut t = tar::Archive::new(fs::File::open(archive).unwrap());
    let mut sizes = std::collections::HashMap::new();
    let mut manifest = Value::Null;
    for e in t.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        sizes.insert(name.clone(), e.size());
        if name == "manifest.json" {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            manifest = serde_json::from_str(&s).unwrap();
        }
    }
    (manifest, sizes)
}

fn member_bytes(archive: &Path, name: &str) -> Vec<u8> {
    let mut t = tar::Archive::new(fs::File::open(archive).unwrap());
    for e in t.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == name {
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            return v;
        }
    }
    panic!("{name} not in {}", archive.display());
}

/// Runs `pinnace slim IMAGE -t docker-archive:DIR/slim.tar --json ARGS` with TMPDIR in the
/// test's own directory (so the sandbox's directory can be looked for afterwards).
fn slim(tag: &str, args: &[&str], env: &[(&str, &str)]) -> Slimmed {
    let dir = tempdir();
    let archive = dir.path().join("slim.tar");
    let tmp = dir.path().join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let mut c = pinnace_cmd();
    c.arg("slim").arg(image(tag)).arg("-t").arg(format!("docker-archive:{}", archive.display())).arg("--json");
    c.args(args).env("TMPDIR", &tmp);
    for (k, v) in env {
        c.env(k, v);
    }
    let t0 = Instant::now();
    let out = run(&mut c);
    eprintln!("slim {tag} {args:?}: {:.1?}, exit {:?}", t0.elapsed(), out.code());
    Slimmed { out, dir, archive }
}

/// Requires success, every probe verified and agreeing, and a ratio of at least `min`
/// (measured here from the layer tars); returns the report.
fn slimmed_ok(s: &Slimmed, tag: &str, min: f64) -> Value {
    assert!(
        s.out.status.success(),
        "pinnace slim {tag} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        s.out.status,
        s.out.stdout,
        s.out.stderr
    );
    let r = s.report();
    assert_eq!(r["verified"], true, "not verified: {}", s.out.stdout);
    let probes = r["probes"].as_array().unwrap();
    assert!(!probes.is_empty());
    for p in probes {
        assert_eq!(p["agree"], true, "probe disagrees: {p:#}");
        assert!(p["slim"]["error"].is_null(), "{p:#}");
    }
    let (before, after) = (original_size(tag), s.size());
    let ratio = before as f64 / after as f64;
    eprintln!("slim {tag}: {before} -> {after} bytes of layers, {ratio:.1}x; report ratio {}", r["ratio"]);
    assert!(ratio >= min, "{tag}: only {ratio:.2}x smaller ({before} -> {after}), expected >= {min}x");
    assert_sandbox_gone(&s.dir);
    r
}

/// The sandbox's directory (under TMPDIR) is gone, and nothing of it stays mounted.
fn assert_sandbox_gone(dir: &TestDir) {
    let tmp = dir.path().join("tmp");
    let left: Vec<_> = fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "left in TMPDIR after slim: {left:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let t = tmp.to_string_lossy();
    assert!(!mounts.contains(t.as_ref()), "still mounted under {t}:\n{mounts}");
}

fn assert_refused(s: &Slimmed, needles: &[&str]) {
    assert_eq!(s.out.code(), Some(1), "should fail with 1:\nstdout:\n{}\nstderr:\n{}", s.out.stdout, s.out.stderr);
    assert!(s.out.stderr.contains("pinnace: error:"), "{}", s.out.stderr);
    for n in needles {
        assert!(s.out.stderr.contains(n), "{n:?} not in:\n{}", s.out.stderr);
    }
    assert!(!s.archive.exists(), "{} was written", s.archive.display());
    assert_sandbox_gone(&s.dir);
}

fn reasons(r: &Value) -> std::collections::HashMap<String, String> {
    r["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["path"].as_str().unwrap().to_string(), k["reason"]["rule"].as_str().unwrap_or("?").to_string()))
        .collect()
}

/// GET over a fresh connection, retried until the app answers (at most 20 s).
fn http_get(port: u16, path: &str) -> String {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r)
        })();
        match attempt {
            Ok(r) if !r.is_empty() => return r,
            _ if Instant::now() < end => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("GET {path} on {port}: {other:?}"),
        }
    }
}

#[test]
fn python_service_keeps_lazily_imported_modules() {
    crate::require!("docker", "debootstrap", "gcc", "javac");
    let s = slim("python", &["--http-probe", "8080:/", "--http-probe", r#"8080:/work="sum": 45"#], &[]);
    let r = slimmed_ok(&s, "python", 3.0);
    let work = &r["probes"][1]["slim"];
    assert!(work["excerpt"].as_str().unwrap().contains(r#""ca_certificates_loaded": true"#), "{work:#}");
    let paths = s.paths();
    for p in ["/usr/lib/python3.11/ssl.py", "/usr/lib/python3.11/sqlite3", "/etc/ssl/certs/ca-certificates.crt"] {
        assert!(paths.contains(p), "{p} missing from the slim image");
    }
    assert!(!paths.contains("/usr/bin/apt-get"), "apt-get kept");
}

#[test]
fn node_service_with_default_probes() {
    crate::require!("docker", "debootstrap", "gcc", "javac");
    // No probe given: the exposed port 8080 gets `GET /`, and the report says so.
    let s = slim("node", &[], &[]);
    let r = slimmed_ok(&s, "node", 1.5);
    assert!(r["default_probes"].as_str().unwrap().contains("8080"), "{}", r["default_probes"]);
    assert!(r["probes"][0]["slim"]["excerpt"].as_str().unwrap().contains(r#""gzip_roundtrip":true"#));
}

#[test]
fn java_service_on_debian_jre() {
    crate::require!("docker", "debootstrap", "gcc", "javac");
    let s = slim("java", &["--http-probe", "8080:/=crc32=abb4c184"], &[]);
    slimmed_ok(&s, "java", 1.3);
    let paths = s.paths();
    assert!(
        paths.iter().any(|p| p.starts_with("/etc/java-17-openjdk/security/java.security")),
        "java.security (reached through the conf/ symlinks) missing"
    );
}

#[test]
fn perl_worker_by_exec_probe_verified_with_podman() {
    crate::require!("podman", "debootstrap", "gcc", "javac");
    let s = slim("perl", &["--exec-probe", "perl /app/worker.pl --report"], &[("PINNACE_SLIM_RUNTIME", "podman")]);
    let r = slimmed_ok(&s, "perl", 5.0);
    assert!(r["verified_with"].as_str().unwrap().contains("podman"), "{}", r["verified_with"]);
    // The image's user is named: the slim image keeps passwd for it.
    let out = r["probes"][0]["slim"]["excerpt"].as_str().unwrap();
    assert_eq!(out, "sum=31 max=9 floor=3 user=nobody\n");
    assert!(s.paths().contains("/etc/passwd"));
}

const CAPPS_PROBES: &[&str] = &[
    "--http-probe",
    "8080:/=cbrt(2)=1.259921",
    "--http-probe",
    "8080:/ca",
    "--http-probe",
    "8080:/resolve=localhost is 127.0.0.1",
    "--http-probe",
    "8080:/feature=feature on",
    "--http-probe",
    "8080:/lock=locked",
    "--http-probe",
    "8080:/motd=HELLO FROM A SHELL ENTRYPOINT",
];

/// The C service behind a shell entrypoint: libm, the CA bundle, getaddrinfo, a file
/// only stat()ed, an empty directory, coreutils. Slimmed, then run by podman from the
/// archive to check it from the outside too.
#[test]
fn c_service_behind_a_shell_entrypoint() {
    crate::require!("docker", "podman", "debootstrap", "gcc", "javac");
    for host_path in ["/tmp/pinnace-capps-motd", "/var/lock/cserver", "/run/lock/cserver"] {
        assert!(!Path::new(host_path).exists(), "{host_path} exists on the host before the test");
    }
    let s = slim("capps", CAPPS_PROBES, &[]);
    let r = slimmed_ok(&s, "capps", 10.0);
    // Nothing the app wrote reached the host.
    for host_path in ["/tmp/pinnace-capps-motd", "/var/lock/cserver", "/run/lock/cserver"] {
        assert!(!Path::new(host_path).exists(), "the sandboxed app wrote {host_path} on the host");
    }
    let paths = s.paths();
    for p in [
        "/app/cserver",
        "/app/entry.sh",
        "/etc/cserver/feature.enabled",
        "/run/lock/cserver",
        "/var/lock",
        "/etc/ssl/certs/ca-certificates.crt",
        "/usr/bin/date",
        "/usr/bin/cat",
        "/usr/bin/tr",
        "/usr/bin/dash",
    ] {
        assert!(paths.contains(p), "{p} missing from the slim image");
    }
    for p in ["/usr/bin/apt-get", "/usr/bin/perl", "/usr/share/doc", "/var/lib/dpkg/status"] {
        assert!(!paths.contains(p), "{p} should have gone");
    }
    let why = reasons(&r);
    assert!(why.contains_key("/etc/cserver/feature.enabled"), "no reason recorded for the stat-only file");

    // From the outside: podman runs the archive and the answers are the original's.
    let _g = podman_lock();
    let loaded = run_ok(cmd("podman").args(["load", "-q", "-i"]).arg(&s.archive));
    let id = loaded.stdout.trim().rsplit(' ').next().unwrap().trim_start_matches("sha256:").to_string();
    at_exit(Cleanup::PodmanImage(id.clone()));
    let name = format!("pinnace-it-capps-{}", std::process::id());
    run_ok(cmd("podman").args(["run", "-d", "--name", &name, "-p", "127.0.0.1::8080", &id]));
    let port = run_ok(cmd("podman").args(["port", &name, "8080/tcp"]));
    let port: u16 = port.stdout.trim().rsplit(':').next().unwrap().parse().unwrap();
    let answers: Vec<String> = ["/feature", "/lock", "/motd", "/resolve"].iter().map(|p| http_get(port, p)).collect();
    let _ = run(cmd("podman").args(["rm", "-f", &name]));
    let _ = run(cmd("podman").args(["rmi", &id]));
    assert!(answers[0].ends_with("feature on\n"), "{}", answers[0]);
    assert!(answers[1].ends_with("locked\n"), "{}", answers[1]);
    assert!(answers[2].ends_with("1970-01-02\nHELLO FROM A SHELL ENTRYPOINT\n"), "{}", answers[2]);
    assert!(answers[3].ends_with("localhost is 127.0.0.1\n"), "{}", answers[3]);
}

/// A needed file removed behind slim's back: verification catches it, nothing is written,
/// and the message names the probe and the `--include` that would fix it.
#[test]
fn over_slimmed_image_is_refused() {
    crate::require!("docker", "debootstrap", "gcc", "javac");
    let s = slim(
        "capps",
        &["--http-probe", "8080:/", "--http-probe", "8080:/feature", "--debug-exclude", "/etc/cserver/feature.enabled"],
        &[],
    );
    assert_refused(&s, &["http 8080:/feature", "--include"]);
    assert!(s.out.stderr.contains("/etc/cserver/feature.enabled"), "the missing file is not named:\n{}", s.out.stderr);
    assert!(!s.out.stderr.contains("DIFF http 8080:/ "), "{}", s.out.stderr);
}

#[test]
fn a_probe_failing_on_the_original_leaves_nothing_to_preserve() {
    crate::require!("docker", "debootstrap", "gcc", "javac");
    let s = slim("capps", &["--http-probe", "8080:/", "--http-probe", "8080:/fail"], &[]);
    assert_refused(&s, &["nothing to preserve", "http 8080:/fail", "500"]);
}

#[test]
fn an_app_that_does_not_start_shows_its_last_log_lines() {
    crate::require!("docker", "debootstrap", "gcc", "javac");
    let s = slim("crash", &[], &[]);
    assert_refused(&s, &["cserver: fatal: /etc/cserver/config.toml is missing", "3"]);
}
