//! `pinnace build` against real programs and real tools: C (gcc, with libm and a
//! library found through `$ORIGIN`), Go (static net/http server, cgo resolver), Rust
//! (dynamic and `+crt-static`), OpenSSL (CA bundle by `auto`, gone with `--without`).
//! Every image is run with `podman run` and its output (or HTTP answer) checked; the
//! outputs are read back with skopeo and umoci, never with pinnace. Also: reproducible
//! digests, layer sharing, `--from`, `pinnace.toml`, and bad input that fails cleanly.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::check::{self, Written};
use crate::util::{at_exit, cmd, pinnace_cmd, podman_lock, run, run_ok, scratch_root, tempdir, Cleanup, Out};

// ---------------------------------------------------------------- helpers

/// `pinnace build ARGS` in `dir` with a private TMPDIR and no SOURCE_DATE_EPOCH (so the
/// caller's environment cannot change digests).
fn pinnace_build(dir: &Path, args: &[&str]) -> Command {
    let tmp = dir.join(".tmp");
    fs::create_dir_all(&tmp).unwrap();
    let mut c = pinnace_cmd();
    c.current_dir(dir).env("TMPDIR", &tmp).env_remove("SOURCE_DATE_EPOCH").arg("build").args(args);
    c
}

/// `pinnace build --json ARGS` in `dir`, required to succeed; the parsed report.
fn build_json(dir: &Path, args: &[&str]) -> Value {
    report(run_ok(pinnace_build(dir, args).arg("--json")))
}

fn report(o: Out) -> Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("--json output: {e}: {}", o.stdout))
}

/// `pinnace build ARGS` in `dir`, required to fail with exit code 1 and the error
/// prefix, leaving no temp files behind; its stderr.
fn build_fails(dir: &Path, args: &[&str]) -> String {
    let o = run(&mut pinnace_build(dir, args));
    assert_eq!(o.code(), Some(1), "pinnace build {args:?} should fail:\nstdout:{}\nstderr:{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("pinnace: error:"), "no `pinnace: error:` in {:?}", o.stderr);
    let left: Vec<_> = fs::read_dir(dir.join(".tmp")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "pinnace build {args:?} left temp files: {left:?}");
    o.stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn digest_of(v: &Value) -> String {
    v["digest"].as_str().unwrap().to_string()
}

fn layer_digests(v: &Value) -> Vec<String> {
    v["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

fn layer_roles(v: &Value) -> Vec<String> {
    v["layers"].as_array().unwrap().iter().map(|l| l["role"].as_str().unwrap().to_string()).collect()
}

fn extras(v: &Value) -> Vec<String> {
    v["extras"].as_array().unwrap().iter().map(|e| e[0].as_str().unwrap().to_string()).collect()
}

/// Runs gcc in `dir`, required to succeed.
fn gcc(dir: &Path, args: &[&str]) {
    run_ok(cmd("gcc").current_dir(dir).args(args));
}

/// `printf("%s\n", MSG)` with the message compiled in, so every test's image is distinct.
const HELLO_C: &str = "#include <stdio.h>\nint main(void) { puts(MSG); return 0; }\n";

/// A program that needs libm at run time (cos of an argument), and optionally libfoo.
const APP_C: &str = r#"#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef WITH_FOO
const char *foo_greeting(void);
#else
static const char *foo_greeting(void) { return "no foo"; }
#endif
int main(int argc, char **argv) {
    double x = argc > 1 ? strtod(argv[1], NULL) : 0.0;
    printf("%s: %s; cos(%g) = %.3f\n", MSG, foo_greeting(), x, cos(x));
    return 0;
}
"#;

const FOO_C: &str = "const char *foo_greeting(void) { return \"hello from libfoo\"; }\n";

/// `-DMSG="..."` for gcc.
fn msg(m: &str) -> String {
    format!("-DMSG=\"{m}\"")
}

/// Builds the host layout `DIR/bin/app` + `DIR/lib/libfoo.so`, the app linked to libm
/// and libfoo with RUNPATH `$ORIGIN/../lib`.
fn app_with_libfoo(dir: &Path, message: &str) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::write(dir.join("foo.c"), FOO_C).unwrap();
    fs::write(dir.join("app.c"), APP_C).unwrap();
    gcc(dir, &["-shared", "-fPIC", "-Wl,-soname,libfoo.so", "-o", "lib/libfoo.so", "foo.c"]);
    gcc(
        dir,
        &[
            "-O2",
            "-DWITH_FOO",
            &msg(message),
            "-o",
            "bin/app",
            "app.c",
            "-Llib",
            "-lfoo",
            "-lm",
            "-Wl,-rpath,$ORIGIN/../lib",
        ],
    );
    let d = run_ok(cmd("readelf").args(["-d"]).arg(dir.join("bin/app"))).stdout;
    assert!(d.contains("RUNPATH") && d.contains("[$ORIGIN/../lib]"), "gcc did not write RUNPATH: {d}");
    assert!(d.contains("[libm.so.6]") && d.contains("[libfoo.so]"), "app does not need libm and libfoo: {d}");
}

/// A dynamic C program linked to libm only, at `dir/NAME`.
fn app_with_libm(dir: &Path, name: &str, message: &str) -> PathBuf {
    fs::write(dir.join(format!("{name}.c")), APP_C).unwrap();
    gcc(dir, &["-O2", &msg(message), "-o", name, &format!("{name}.c"), "-lm"]);
    dir.join(name)
}

/// A static C program at `dir/NAME`.
fn static_hello(dir: &Path, name: &str, message: &str) -> PathBuf {
    fs::write(dir.join(format!("{name}.c")), HELLO_C).unwrap();
    gcc(dir, &["-static", "-O2", &msg(message), "-o", name, &format!("{name}.c")]);
    dir.join(name)
}

/// Loads a docker archive, OCI archive or OCI layout into podman, runs the image (by ID,
/// the config digest) with `run_args` before and `args` after the image, and removes it.
/// Under the podman lock: pinnace's layers are reproducible, so tests share layers, and a
/// `podman rmi` in one test can remove a layer another test's `podman load` is adding
/// ("layer not known").
fn podman_run(image: &Path, config_digest: &str, run_args: &[&str], args: &[&str]) -> Out {
    let _l = podman_lock();
    let id = config_digest.trim_start_matches("sha256:").to_string();
    at_exit(Cleanup::PodmanImage(id.clone()));
    run_ok(cmd("podman").args(["load", "-q", "-i"]).arg(image));
    let o = run(cmd("podman").args(["run", "--rm"]).args(run_args).arg(&id).args(args));
    let _ = run(cmd("podman").args(["rmi", "-f", &id]));
    o
}

/// [`podman_run`] that must succeed; its stdout.
fn podman_output(image: &Path, config_digest: &str, args: &[&str]) -> String {
    let o = podman_run(image, config_digest, &["--network", "none"], args);
    assert!(o.status.success(), "podman run of {} failed ({}):\n{}{}", image.display(), o.status, o.stdout, o.stderr);
    o.stdout
}

/// The paths in the rootfs umoci unpacks from what pinnace wrote (docker archives are
/// converted by skopeo first, umoci reads OCI layouts only), as [`check::listing`] lines.
fn unpacked(w: &Written) -> Vec<String> {
    check::unpacked_listing(w)
}

/// Just the paths of a listing.
fn paths(listing: &[String]) -> BTreeSet<String> {
    listing.iter().map(|l| l.split(' ').next().unwrap().to_string()).collect()
}

/// The listing line of `path` (`PATH TYPE MODE UID:GID ...`).
fn entry<'a>(listing: &'a [String], path: &str) -> &'a str {
    listing
        .iter()
        .find(|l| l.split(' ').next() == Some(path))
        .unwrap_or_else(|| panic!("{path} is not in the image:\n{}", listing.join("\n")))
}

/// The Go toolchain with module mode, no network, and cache and GOPATH in the test
/// process's scratch dir (shared by the Go tests, removed at exit).
fn go(dir: &Path) -> Command {
    let root = scratch_root();
    let mut c = cmd("go");
    c.current_dir(dir)
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", root.join("go-cache"))
        .env("GOPATH", root.join("go-path"))
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOENV", "off")
        .env("GO111MODULE", "on");
    c
}

/// Writes a one-file Go module (stdlib only) into `dir`.
fn go_module(dir: &Path, name: &str, main_go: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("go.mod"), format!("module example.com/{name}\n\ngo 1.19\n")).unwrap();
    fs::write(dir.join("main.go"), main_go).unwrap();
}

/// `podman rm -f` on drop.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = run(cmd("podman").args(["rm", "-f", "-t", "0", &self.0]));
    }
}

/// A TCP port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.0 GET; the whole answer.
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

// ---------------------------------------------------------------- programs

#[test]
fn c_program_with_libm_and_origin_runpath() {
    crate::require!("gcc", "readelf", "podman", "skopeo", "umoci");
    let w = tempdir();
    let host = w.path().join("host");
    app_with_libfoo(&host, "c-origin");
    let out = w.path().join("app.tar");
    let r = build_json(w.path(), &["--binary", s(&host.join("bin/app")), "-t", &format!("docker-archive:{}", s(&out))]);
    assert_eq!(layer_roles(&r), ["base files (passwd, tmp)", "shared libraries", "application"], "{r}");

    let listing = unpacked(&Written::DockerArchive(&out));
    let p = paths(&listing);
    // libfoo was found through $ORIGIN/../lib on the host and moved next to the binary's
    // image path, where the same RUNPATH finds it in the container.
    for want in ["usr/local/bin/app", "usr/local/lib/libfoo.so", "usr/lib/x86_64-linux-gnu/libm.so.6", "etc/passwd"] {
        assert!(p.contains(want), "{want} missing from the image:\n{}", listing.join("\n"));
    }
    assert!(!p.iter().any(|x| x.contains(s(w.path()).trim_start_matches('/'))), "host build path leaked: {p:?}");
    assert!(entry(&listing, "tmp").starts_with("tmp d 1777 0:0"), "{}", entry(&listing, "tmp"));
    assert!(entry(&listing, "home/nonroot").contains(" 65532:65532"), "{}", entry(&listing, "home/nonroot"));

    let cfg: Value = serde_json::from_slice(&check::skopeo_config(&format!("docker-archive:{}", s(&out)))).unwrap();
    assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["/usr/local/bin/app"]), "{cfg}");
    assert_eq!(cfg["config"]["User"], "65532:65532", "{cfg}");

    let stdout = podman_output(&out, r["config_digest"].as_str().unwrap(), &["3.14159265"]);
    assert_eq!(stdout, "c-origin: hello from libfoo; cos(3.14159) = -1.000\n");
}

const GO_SERVER: &str = r#"package main

import (
	"fmt"
	"net/http"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pinnace go static %s\n", r.URL.Path)
	})
	if err := http.ListenAndServe(":8080", nil); err != nil {
		panic(err)
	}
}
"#;

#[test]
fn go_static_http_server_answers() {
    crate::require!("podman", "skopeo");
    crate::require!("go");
    let w = tempdir();
    let src = w.path().join("srv");
    go_module(&src, "srv", GO_SERVER);
    run_ok(go(&src).env("CGO_ENABLED", "0").args(["build", "-o", "../server", "."]));
    let out = w.path().join("server.tar");
    let r = build_json(
        w.path(),
        &[
            "--binary",
            "server",
            "--port",
            "8080",
            "-t",
            &format!("docker-archive:{}:localhost/pinnace-it-go:1", s(&out)),
        ],
    );
    // Static: nothing from the host's library directories.
    assert!(!layer_roles(&r).contains(&"shared libraries".to_string()), "{r}");
    let cfg: Value = serde_json::from_slice(&check::skopeo_config(&format!("docker-archive:{}", s(&out)))).unwrap();
    assert_eq!(cfg["config"]["ExposedPorts"], serde_json::json!({"8080/tcp": {}}), "{cfg}");

    let id = r["config_digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    at_exit(Cleanup::PodmanImage(id.clone()));
    let _l = podman_lock();
    run_ok(cmd("podman").args(["load", "-q", "-i"]).arg(&out));
    let name = format!("pinnace-it-go-{}", std::process::id());
    let port = free_port();
    let _c = Container(name.clone());
    let _ = run(cmd("podman").args(["rm", "-f", &name]));
    run_ok(cmd("podman").args(["run", "-d", "--name", &name, "-p", &format!("127.0.0.1:{port}:8080"), &id]));
    let start = Instant::now();
    let answer = loop {
        match http_get(port, "/hello") {
            Ok(a) if a.contains("200 OK") => break a,
            other if start.elapsed() > Duration::from_secs(30) => {
                let logs = run(cmd("podman").args(["logs", &name]));
                panic!("no HTTP answer on 127.0.0.1:{port} after 30 s: {other:?}\nlogs: {}{}", logs.stdout, logs.stderr)
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert!(answer.ends_with("pinnace go static /hello\n"), "{answer}");
    drop(_c);
    let _ = run(cmd("podman").args(["rmi", "-f", &id]));
}

const GO_LOOKUP: &str = r#"package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	addrs, err := net.LookupHost("localhost")
	if err != nil {
		fmt.Println("lookup failed:", err)
		os.Exit(1)
	}
	fmt.Println("localhost ->", addrs)
}
"#;

#[test]
fn go_cgo_resolves_localhost_through_nss() {
    crate::require!("gcc", "podman", "skopeo", "umoci");
    crate::require!("go");
    let w = tempdir();
    let src = w.path().join("lookup-src");
    go_module(&src, "lookup", GO_LOOKUP);
    run_ok(go(&src).env("CGO_ENABLED", "1").args(["build", "-tags", "netcgo", "-o", "../lookup", "."]));
    let layout = w.path().join("oci");
    // GODEBUG=netdns=cgo+1 makes Go say which resolver it used, on stderr.
    let r = build_json(
        w.path(),
        &["--binary", "lookup", "--env", "GODEBUG=netdns=cgo+1", "-t", &format!("oci:{}:1", s(&layout))],
    );
    assert!(extras(&r).contains(&"nsswitch".to_string()), "{r}");
    let listing = unpacked(&Written::Oci(&layout, "1"));
    let p = paths(&listing);
    for want in
        ["etc/nsswitch.conf", "usr/lib/x86_64-linux-gnu/libnss_files.so.2", "usr/lib/x86_64-linux-gnu/libc.so.6"]
    {
        assert!(p.contains(want), "{want} missing:\n{}", listing.join("\n"));
    }
    let o = podman_run(&layout, r["config_digest"].as_str().unwrap(), &["--network", "none"], &[]);
    assert!(o.status.success(), "lookup failed in the container: {}{}", o.stdout, o.stderr);
    assert!(o.stdout.starts_with("localhost -> [") && o.stdout.contains("127.0.0.1"), "{}", o.stdout);
    assert!(o.stderr.contains("using cgo DNS resolver"), "Go did not use the cgo (NSS) resolver: {}", o.stderr);
}

const RUST_MAIN: &str = r#"fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let sum: u64 = (1..=n).sum();
    let v: Vec<String> = std::env::vars().filter(|(k, _)| k == "GREETING").map(|(_, v)| v).collect();
    println!("rust {}: sum(1..={n}) = {sum}", v.join(""));
}
"#;

#[test]
fn rust_dynamic_and_crt_static() {
    crate::require!("rustc", "podman", "umoci");
    let w = tempdir();
    fs::write(w.path().join("main.rs"), RUST_MAIN).unwrap();
    run_ok(cmd("rustc").current_dir(w.path()).args(["-O", "-o", "dyn", "main.rs"]));
    run_ok(cmd("rustc").current_dir(w.path()).args([
        "-O",
        "-C",
        "target-feature=+crt-static",
        "-o",
        "static",
        "main.rs",
    ]));
    for (bin, dynamic) in [("dyn", true), ("static", false)] {
        let layout = w.path().join(format!("oci-{bin}"));
        let r = build_json(
            w.path(),
            &["--binary", bin, "--env", &format!("GREETING={bin}"), "-t", &format!("oci:{}:1", s(&layout))],
        );
        let listing = unpacked(&Written::Oci(&layout, "1"));
        let p = paths(&listing);
        assert!(p.contains(&format!("usr/local/bin/{bin}")), "{}", listing.join("\n"));
        let libc = "usr/lib/x86_64-linux-gnu/libc.so.6";
        if dynamic {
            // Rust's std links libgcc_s for unwinding.
            for want in
                [libc, "usr/lib/x86_64-linux-gnu/libgcc_s.so.1", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"]
            {
                assert!(p.contains(want), "{want} missing:\n{}", listing.join("\n"));
            }
        } else {
            assert!(!p.contains(libc), "a +crt-static binary got libc:\n{}", listing.join("\n"));
            assert_eq!(layer_roles(&r), ["base files (passwd, tmp)", "application"], "{r}");
        }
        let stdout = podman_output(&layout, r["config_digest"].as_str().unwrap(), &["100"]);
        assert_eq!(stdout, format!("rust {bin}: sum(1..=100) = 5050\n"));
    }
}

const TLS_C: &str = r#"#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
int main(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) { puts("tls: no context"); return 2; }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    const char *bundle = "/etc/ssl/certs/ca-certificates.crt";
    if (SSL_CTX_load_verify_locations(ctx, bundle, NULL) != 1) {
        printf("tls: no CA bundle at %s\n", bundle);
        return 1;
    }
    int n = sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx)));
    printf("tls: %d trusted CAs\n", n);
    SSL_CTX_free(ctx);
    return 0;
}
"#;

/// A program that sets up TLS verification: a C program on OpenSSL when its headers
/// are installed, else the host's curl (which links libssl too).
fn tls_program(dir: &Path) -> (PathBuf, bool) {
    let dev = run(cmd("dpkg").args(["-s", "libssl-dev"])).status.success();
    if dev {
        fs::write(dir.join("tls.c"), TLS_C).unwrap();
        gcc(dir, &["-O2", "-o", "tls", "tls.c", "-lssl", "-lcrypto"]);
        (dir.join("tls"), true)
    } else {
        eprintln!("libssl-dev is not installed: using /usr/bin/curl as the TLS program");
        (PathBuf::from("/usr/bin/curl"), false)
    }
}

#[test]
fn tls_program_gets_certs_by_auto_and_loses_them_with_without() {
    crate::require!("gcc", "podman", "umoci");
    let w = tempdir();
    let (prog, is_c) = tls_program(w.path());
    let bundle = "etc/ssl/certs/ca-certificates.crt";
    let host_bundle = fs::read("/etc/ssl/certs/ca-certificates.crt").expect("the host has a CA bundle");

    let with = w.path().join("with");
    let r = build_json(w.path(), &["--binary", s(&prog), "-t", &format!("oci:{}:1", s(&with))]);
    assert!(extras(&r).contains(&"certs".to_string()), "certs not added by auto: {r}");
    let listing = unpacked(&Written::Oci(&with, "1"));
    let line = entry(&listing, bundle);
    assert!(line.contains(&format!("size={}", host_bundle.len())), "not the host's bundle: {line}");

    let without = w.path().join("without");
    let r2 =
        build_json(w.path(), &["--binary", s(&prog), "--without", "certs", "-t", &format!("oci:{}:1", s(&without))]);
    assert!(!extras(&r2).contains(&"certs".to_string()), "{r2}");
    let listing2 = unpacked(&Written::Oci(&without, "1"));
    assert!(!paths(&listing2).contains(bundle), "--without certs kept the bundle");
    assert!(!paths(&listing2).iter().any(|p| p.starts_with("etc/ssl")), "{}", listing2.join("\n"));

    if is_c {
        let o = podman_output(&with, r["config_digest"].as_str().unwrap(), &[]);
        let n: usize =
            o.trim().strip_prefix("tls: ").and_then(|x| x.strip_suffix(" trusted CAs")).unwrap().parse().unwrap();
        assert!(n > 50, "only {n} CAs loaded: {o}");
        let o = podman_run(&without, r2["config_digest"].as_str().unwrap(), &["--network", "none"], &[]);
        assert_eq!(o.code(), Some(1), "{}{}", o.stdout, o.stderr);
        assert_eq!(o.stdout, "tls: no CA bundle at /etc/ssl/certs/ca-certificates.crt\n");
    } else {
        let o = podman_output(&with, r["config_digest"].as_str().unwrap(), &["--version"]);
        assert!(o.contains("OpenSSL"), "{o}");
    }
}

// ---------------------------------------------------------------- properties of the output

#[test]
fn reproducible_across_directories_and_mtimes() {
    crate::require!("gcc", "skopeo");
    let w = tempdir();
    let src = w.path().join("src");
    app_with_libfoo(&src, "repro");
    fs::write(src.join("config.toml"), "answer = 42\n").unwrap();
    let a = w.path().join("a/proj");
    let b = w.path().join("b/somewhere/else/proj");
    for (dir, when) in [(&a, "2001-02-03 04:05:06"), (&b, "2021-06-07 08:09:10")] {
        fs::create_dir_all(dir.parent().unwrap()).unwrap();
        run_ok(cmd("cp").arg("-a").arg(&src).arg(dir));
        run_ok(cmd("find").arg(dir).args(["-exec", "touch", "-h", "-d", when, "{}", "+"]));
    }
    let args = ["--binary", "bin/app", "--file", "config.toml:/etc/app/config.toml", "-t", "oci:out:1"];
    let ra = build_json(&a, &args);
    let rb = build_json(&b, &args);
    assert_eq!(digest_of(&ra), digest_of(&rb), "same inputs, different digests:\n{ra}\n{rb}");
    assert_eq!(check::skopeo_digest(&format!("oci:{}:1", s(&a.join("out")))), digest_of(&ra));
    assert_eq!(check::skopeo_digest(&format!("oci:{}:1", s(&b.join("out")))), digest_of(&ra));

    // SOURCE_DATE_EPOCH moves every time stamp: another digest, the same one everywhere.
    let sde = |dir: &Path, out: &str| {
        let mut c =
            pinnace_build(dir, &["--json", "--binary", "bin/app", "--file", "config.toml:/etc/app/config.toml"]);
        c.env("SOURCE_DATE_EPOCH", "1700000000").args(["-t", out]);
        report(run_ok(&mut c))
    };
    let sa = sde(&a, "oci:out-sde:1");
    let sb = sde(&b, "oci:out-sde:1");
    assert_ne!(digest_of(&sa), digest_of(&ra), "SOURCE_DATE_EPOCH did not change the digest");
    assert_eq!(digest_of(&sa), digest_of(&sb));
    let cfg: Value =
        serde_json::from_slice(&check::skopeo_config(&format!("oci:{}:1", s(&a.join("out-sde"))))).unwrap();
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z", "{cfg}");
}

#[test]
fn two_programs_share_base_and_library_layers() {
    crate::require!("gcc", "skopeo");
    let w = tempdir();
    let one = app_with_libm(w.path(), "one", "first program");
    let two = app_with_libm(w.path(), "two", "the second, different program");
    let r1 = build_json(w.path(), &["--binary", s(&one), "-t", "oci:out1:1"]);
    let r2 = build_json(w.path(), &["--binary", s(&two), "-t", "oci:out2:1"]);
    assert_eq!(layer_roles(&r1), ["base files (passwd, tmp)", "shared libraries", "application"], "{r1}");
    let (l1, l2) = (layer_digests(&r1), layer_digests(&r2));
    assert_eq!(l1[..2], l2[..2], "base and library layers differ:\n{r1}\n{r2}");
    assert_ne!(l1[2], l2[2]);
    // skopeo sees the same layer blobs.
    let m1 = check::skopeo_manifest(&format!("oci:{}:1", s(&w.path().join("out1"))));
    let m2 = check::skopeo_manifest(&format!("oci:{}:1", s(&w.path().join("out2"))));
    assert_eq!(m1["layers"][0], m2["layers"][0]);
    assert_eq!(m1["layers"][1], m2["layers"][1]);
}

#[test]
fn every_output_format_reads_with_skopeo_and_umoci_and_runs() {
    crate::require!("gcc", "readelf", "podman", "skopeo", "umoci", "tar");
    let w = tempdir();
    let host = w.path().join("host");
    app_with_libfoo(&host, "formats");
    let (oci, oar, dar) = (w.path().join("oci"), w.path().join("image.oci.tar"), w.path().join("image.docker.tar"));
    let r = build_json(
        w.path(),
        &[
            "--binary",
            s(&host.join("bin/app")),
            "-t",
            &format!("oci:{}:1", s(&oci)),
            "-t",
            &format!("oci-archive:{}:1", s(&oar)),
            "-t",
            &format!("docker-archive:{}:localhost/pinnace-it-formats:1", s(&dar)),
        ],
    );
    let dests = r["destinations"].as_array().unwrap();
    assert_eq!(dests.len(), 3, "{r}");
    let config_digest = r["config_digest"].as_str().unwrap();
    let diff_ids: Vec<String> =
        r["layers"].as_array().unwrap().iter().map(|l| l["diff_id"].as_str().unwrap().to_string()).collect();
    let mut listings = Vec::new();
    for (i, wr) in
        [Written::Oci(&oci, "1"), Written::OciArchive(&oar, "1"), Written::DockerArchive(&dar)].iter().enumerate()
    {
        let reference = wr.reference();
        // A docker archive stores no manifest: skopeo makes one up (its own media types), so
        // only the OCI forms have a manifest digest to compare.
        if !matches!(wr, Written::DockerArchive(_)) {
            assert_eq!(check::skopeo_digest(&reference), dests[i]["manifest_digest"].as_str().unwrap(), "{reference}");
            assert_eq!(dests[i]["manifest_digest"], r["digest"], "{reference}");
        }
        let m = check::skopeo_manifest(&reference);
        assert_eq!(m["config"]["digest"].as_str(), Some(config_digest), "{reference}: {m}");
        assert_eq!(m["layers"].as_array().unwrap().len(), 3, "{reference}: {m}");
        assert_eq!(check::diff_ids(&check::skopeo_config(&reference)), diff_ids, "{reference}");
        let listing = unpacked(wr);
        assert!(paths(&listing).contains("usr/local/lib/libfoo.so"), "{reference}:\n{}", listing.join("\n"));
        listings.push(listing);
        let path = match wr {
            Written::Oci(d, _) => *d,
            Written::OciArchive(f, _) | Written::DockerArchive(f) => *f,
        };
        let out = podman_output(path, config_digest, &["0"]);
        assert_eq!(out, "formats: hello from libfoo; cos(0) = 1.000\n", "{reference}");
    }
    assert_eq!(listings[0], listings[1], "oci-archive unpacks differently from oci");
    assert_eq!(listings[0], listings[2], "docker-archive unpacks differently from oci");
}

#[test]
fn from_base_keeps_its_layers_and_the_app_runs() {
    crate::require!("gcc", "podman", "skopeo");
    let w = tempdir();
    let tool = static_hello(w.path(), "basetool", "base tool here");
    let base = w.path().join("base");
    let rb =
        build_json(w.path(), &["--binary", s(&tool), "--env", "FROM_BASE=yes", "-t", &format!("oci:{}:1", s(&base))]);
    let app = app_with_libm(w.path(), "app", "on top of the base");
    let out = w.path().join("app.tar");
    let r = build_json(
        w.path(),
        &["--from", &format!("oci:{}:1", s(&base)), "--binary", s(&app), "-t", &format!("docker-archive:{}", s(&out))],
    );
    let base_ref = format!("oci:{}:1", s(&base));
    let out_ref = format!("docker-archive:{}", s(&out));
    let bm = check::skopeo_manifest(&base_ref);
    let base_layers = bm["layers"].as_array().unwrap();
    let (base_ids, ids) =
        (check::diff_ids(&check::skopeo_config(&base_ref)), check::diff_ids(&check::skopeo_config(&out_ref)));
    assert!(
        ids.len() > base_ids.len() && ids[..base_ids.len()] == base_ids[..],
        "base layers not kept: {base_ids:?} vs {ids:?}"
    );
    let digests = layer_digests(&r);
    for (i, l) in base_layers.iter().enumerate() {
        assert_eq!(digests[i], l["digest"].as_str().unwrap(), "base layer {i} changed");
        assert_eq!(r["layers"][i]["role"], "base image");
    }
    assert_eq!(layer_digests(&rb), digests[..base_layers.len()]);
    // The base's config is kept (env, user); the entrypoint becomes the new binary; on a
    // base, auto extras are not added again.
    let cfg: Value = serde_json::from_slice(&check::skopeo_config(&out_ref)).unwrap();
    let env = cfg["config"]["Env"].as_array().unwrap();
    assert!(env.iter().any(|e| e == "FROM_BASE=yes"), "{cfg}");
    assert_eq!(cfg["config"]["User"], "65532:65532");
    assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["/usr/local/bin/app"]));
    assert!(extras(&r).is_empty(), "{r}");

    let id = r["config_digest"].as_str().unwrap();
    assert_eq!(podman_output(&out, id, &["1"]), "on top of the base: no foo; cos(1) = 0.540\n");
    let o = podman_run(&out, id, &["--network", "none", "--entrypoint", "/usr/local/bin/basetool"], &[]);
    assert!(o.status.success(), "{}", o.stderr);
    assert_eq!(o.stdout, "base tool here\n");
}

const TOML_APP_C: &str = r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    char buf[128] = {0};
    FILE *f = fopen("/etc/app/greeting.txt", "r");
    if (!f || !fgets(buf, sizeof buf, f)) { puts("no greeting"); return 1; }
    buf[strcspn(buf, "\n")] = 0;
    printf("%s, mode=%s\n", buf, getenv("APP_MODE") ? getenv("APP_MODE") : "unset");
    return 0;
}
"#;

#[test]
fn pinnace_toml_gives_the_same_digest_as_flags() {
    crate::require!("gcc", "podman", "skopeo");
    let w = tempdir();
    let proj = w.path().join("proj");
    fs::create_dir_all(proj.join("bin")).unwrap();
    fs::create_dir_all(proj.join("data")).unwrap();
    fs::write(proj.join("app.c"), TOML_APP_C).unwrap();
    gcc(&proj, &["-O2", "-o", "bin/app", "app.c"]);
    fs::write(proj.join("data/greeting.txt"), "hello from the toml test\n").unwrap();
    fs::write(
        proj.join("pinnace.toml"),
        r#"binaries = ["bin/app"]
files = [{ src = "data/greeting.txt", dest = "/etc/app/greeting.txt", mode = "0640", owner = "1000:1000" }]
env = { APP_MODE = "toml" }
ports = ["8080", "53/udp"]
user = "1000:1000"
workdir = "/srv"
labels = { "org.opencontainers.image.title" = "toml-app" }
stop-signal = "SIGINT"
without = ["tmp"]
"#,
    )
    .unwrap();
    // From another directory: paths in the file are relative to the file.
    let by_file = build_json(w.path(), &["-f", "proj/pinnace.toml", "-t", "oci:out-file:1"]);
    let by_flags = build_json(
        &proj,
        &[
            "--binary",
            "bin/app",
            "--file",
            "data/greeting.txt:/etc/app/greeting.txt",
            "--env",
            "APP_MODE=toml",
            "--port",
            "8080",
            "--port",
            "53/udp",
            "--user",
            "1000:1000",
            "--workdir",
            "/srv",
            "--label",
            "org.opencontainers.image.title=toml-app",
            "--stop-signal",
            "SIGINT",
            "--without",
            "tmp",
            "-t",
            "oci:out-flags:1",
        ],
    );
    // The flags cannot set the file's mode and owner: the digests differ by exactly that.
    // So compare with a file that does not set them either.
    fs::write(
        proj.join("plain.toml"),
        fs::read_to_string(proj.join("pinnace.toml")).unwrap().replace(
            r#"{ src = "data/greeting.txt", dest = "/etc/app/greeting.txt", mode = "0640", owner = "1000:1000" }"#,
            r#""data/greeting.txt:/etc/app/greeting.txt""#,
        ),
    )
    .unwrap();
    let plain = build_json(w.path(), &["-f", "proj/plain.toml", "-t", "oci:out-plain:1"]);
    assert_eq!(digest_of(&plain), digest_of(&by_flags), "pinnace.toml and the same flags differ:\n{plain}\n{by_flags}");
    assert_ne!(digest_of(&by_file), digest_of(&plain), "mode/owner overrides were ignored");
    let cfg: Value =
        serde_json::from_slice(&check::skopeo_config(&format!("oci:{}:1", s(&w.path().join("out-file"))))).unwrap();
    let c = &cfg["config"];
    assert_eq!(c["User"], "1000:1000", "{cfg}");
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"8080/tcp": {}, "53/udp": {}}));
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "toml-app");

    // Flags override the file.
    let over = build_json(w.path(), &["-f", "proj/pinnace.toml", "--user", "root", "-t", "oci:out-over:1"]);
    let cfg: Value =
        serde_json::from_slice(&check::skopeo_config(&format!("oci:{}:1", s(&w.path().join("out-over"))))).unwrap();
    assert_eq!(cfg["config"]["User"], "0:0", "{over}");

    // The image from the file runs, as user 1000, reading its 0640 file owned by 1000.
    let layout = w.path().join("out-file");
    assert_eq!(
        podman_output(&layout, by_file["config_digest"].as_str().unwrap(), &[]),
        "hello from the toml test, mode=toml\n"
    );
}

// ---------------------------------------------------------------- bad input

/// A built app whose needed library is gone, plus a successful earlier output that a
/// failing build must leave untouched.
#[test]
fn missing_library_lists_soname_and_searched_paths() {
    crate::require!("gcc", "readelf");
    let w = tempdir();
    let host = w.path().join("host");
    app_with_libfoo(&host, "missing");
    let previous = w.path().join("previous.tar");
    build_json(w.path(), &["--binary", s(&host.join("bin/app")), "-t", &format!("oci-archive:{}", s(&previous))]);
    let before = fs::read(&previous).unwrap();
    fs::remove_file(host.join("lib/libfoo.so")).unwrap();
    let err = build_fails(
        w.path(),
        &["--binary", s(&host.join("bin/app")), "-t", &format!("oci-archive:{}", s(&previous)), "-t", "oci:new:1"],
    );
    assert!(err.contains("libfoo.so"), "{err}");
    assert!(err.contains(s(&host.join("bin/app"))), "the error does not name who needs it: {err}");
    assert!(
        err.contains(&format!("{}/bin/../lib (RUNPATH", s(&host))),
        "the RUNPATH dir is not listed as searched: {err}"
    );
    assert!(err.contains("/usr/lib/x86_64-linux-gnu"), "the default dirs are not listed as searched: {err}");
    assert!(err.contains("--sysroot") && err.contains("--file"), "no hint: {err}");
    assert_eq!(fs::read(&previous).unwrap(), before, "a failed build changed the previous output");
    assert!(!w.path().join("new").exists(), "a failed build created its destination");
}

#[test]
fn missing_library_can_be_supplied_with_file() {
    crate::require!("gcc", "readelf", "podman");
    let w = tempdir();
    let host = w.path().join("host");
    app_with_libfoo(&host, "supplied");
    // The library is not where the loader (or pinnace) would look on the host: the user
    // puts it where the loader will look in the image.
    fs::rename(host.join("lib/libfoo.so"), w.path().join("libfoo-built.so")).unwrap();
    let out = w.path().join("app.tar");
    let r = build_json(
        w.path(),
        &[
            "--binary",
            s(&host.join("bin/app")),
            "--file",
            "libfoo-built.so:/usr/local/lib/libfoo.so",
            "-t",
            &format!("docker-archive:{}", s(&out)),
        ],
    );
    assert_eq!(
        podman_output(&out, r["config_digest"].as_str().unwrap(), &["0"]),
        "supplied: hello from libfoo; cos(0) = 1.000\n"
    );
}

#[test]
fn missing_input_file_is_named() {
    let w = tempdir();
    let err = build_fails(w.path(), &["--binary", "no-such-program", "-t", "oci:out:1"]);
    assert!(err.contains("no-such-program") && err.contains("No such file"), "{err}");
    assert!(!err.contains("(os error 2): No such file"), "the cause is printed twice: {err}");
    fs::write(w.path().join("prog"), b"\x7fELF").unwrap();
    let err = build_fails(w.path(), &["--file", "no-such-config:/etc/x", "-t", "oci:out:1"]);
    assert!(err.contains("no-such-config"), "{err}");
    let err = build_fails(w.path(), &["--dir", "no-such-dir:/srv", "-t", "oci:out:1"]);
    assert!(err.contains("no-such-dir"), "{err}");
    assert!(!w.path().join("out").exists());
}

#[test]
fn directory_where_a_file_is_expected() {
    let w = tempdir();
    fs::create_dir_all(w.path().join("adir")).unwrap();
    let err = build_fails(w.path(), &["--binary", "adir", "-t", "oci:out:1"]);
    assert!(err.contains("adir") && err.contains("not a regular file"), "{err}");
    let err = build_fails(w.path(), &["--file", "adir:/etc/adir", "-t", "oci:out:1"]);
    assert!(err.contains("adir") && err.contains("--dir"), "{err}");
    assert!(!w.path().join("out").exists());
}

#[test]
fn non_elf_binary_is_named() {
    let w = tempdir();
    fs::write(w.path().join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    let err = build_fails(w.path(), &["--binary", "script.sh", "-t", "oci-archive:out.tar"]);
    assert!(err.contains("script.sh") && err.contains("not an ELF file"), "{err}");
    assert!(!w.path().join("out.tar").exists());
}

#[test]
fn conflicting_destinations_are_refused() {
    crate::require!("gcc");
    let w = tempdir();
    let app = static_hello(w.path(), "app", "x");
    let err = build_fails(w.path(), &["--binary", s(&app), "-t", "oci:out:1", "-t", "oci:out:1"]);
    assert!(err.contains("oci:out:1") && err.contains("twice"), "{err}");
    let err = build_fails(w.path(), &["--binary", s(&app), "-t", "docker-archive:o.tar", "-t", "docker-archive:o.tar"]);
    assert!(err.contains("o.tar") && err.contains("twice"), "{err}");
    assert!(!w.path().join("out").exists() && !w.path().join("o.tar").exists());
}

#[test]
fn image_paths_escaping_the_root_are_refused() {
    crate::require!("gcc");
    let w = tempdir();
    let app = static_hello(w.path(), "app", "x");
    fs::write(w.path().join("x"), "x").unwrap();
    for args in [
        vec!["--binary", s(&app), "--file", "x:/../../etc/x"],
        vec!["--binary", &format!("{}:/../../bin/app", s(&app))],
        vec!["--binary", s(&app), "--file", "x:etc/../../x"],
    ] {
        let mut a = args.clone();
        a.extend(["-t", "oci-archive:out.tar"]);
        let err = build_fails(w.path(), &a);
        assert!(err.contains(".."), "{err}");
        assert!(!w.path().join("out.tar").exists());
    }
}

#[test]
fn failure_while_writing_leaves_nothing_behind() {
    crate::require!("gcc");
    let w = tempdir();
    let app = static_hello(w.path(), "app", "x");
    // The layers are written, then the destination cannot be: its parent is a file.
    fs::write(w.path().join("afile"), "keep me").unwrap();
    for dest in ["oci-archive:afile/x.tar", "oci:afile/layout:1", "docker-archive:afile/x.tar"] {
        let err = build_fails(w.path(), &["--binary", s(&app), "-t", dest]);
        assert!(err.contains("afile"), "{err}");
        assert_eq!(fs::read(w.path().join("afile")).unwrap(), b"keep me");
    }
    let left: Vec<_> = fs::read_dir(w.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    let mut left: Vec<_> = left.iter().map(|n| n.to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, [".tmp", "afile", "app", "app.c"], "stray files");
}
