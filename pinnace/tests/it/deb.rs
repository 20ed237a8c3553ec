//! `pinnace build` from Debian packages (issue 8): presets run under podman, the trust
//! chain rejects tampering, status.d matches dpkg's format, builds are reproducible.
//!
//! These tests download from the host's Debian mirror on the first run; the package cache
//! (`target/tmp/deb-cache`, kept between runs) makes later runs fast. The tamper test uses
//! its own cache so it never damages the shared one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{at_exit, cmd, pinnace_cmd, podman_lock, run, run_ok, tempdir, Cleanup, Out};

/// The shared package cache (`XDG_CACHE_HOME`) of these tests.
fn shared_cache() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deb-cache");
    fs::create_dir_all(&p).unwrap();
    p
}

fn pinnace_deb(cache: &Path, args: &[&str]) -> Command {
    let mut c = pinnace_cmd();
    c.env("XDG_CACHE_HOME", cache).env("SOURCE_DATE_EPOCH", "0").args(["build", "--json"]).args(args);
    c
}

/// Builds and returns (manifest digest, config digest).
fn build(cache: &Path, args: &[&str]) -> (String, String) {
    let o = run_ok(&mut pinnace_deb(cache, args));
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    (v["digest"].as_str().unwrap().to_string(), v["config_digest"].as_str().unwrap().to_string())
}

/// Loads a docker archive into podman, runs it (by image ID) and removes it.
fn podman_run(archive: &Path, config_digest: &str, args: &[&str]) -> Out {
    let _g = podman_lock();
    let id = config_digest.trim_start_matches("sha256:").to_string();
    at_exit(Cleanup::PodmanImage(id.clone()));
    run_ok(cmd("podman").args(["load", "-q", "-i"]).arg(archive));
    let o = run(cmd("podman").args(["run", "--rm", "--network", "none"]).arg(&id).args(args));
    let _ = run(cmd("podman").args(["rmi", "-f", &id]));
    assert!(o.status.success(), "podman run failed ({}):\n{}{}", o.status, o.stdout, o.stderr);
    o
}

/// Extracts the layers of an OCI layout in order into `root` (enough for regular files).
fn unpack(layout: &Path, root: &Path) {
    let index: serde_json::Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap()).unwrap();
    fs::create_dir_all(root).unwrap();
    for l in m["layers"].as_array().unwrap() {
        run_ok(cmd("tar").arg("-xzf").arg(blob(l["digest"].as_str().unwrap())).arg("-C").arg(root));
    }
}

#[test]
fn static_preset_runs_a_go_binary_with_zoneinfo_and_certs() {
    crate::require!("go", "podman");
    let d = tempdir();
    fs::write(
        d.path().join("main.go"),
        r#"package main
import ("crypto/x509"; "encoding/pem"; "fmt"; "os"; "time")
func main() {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil { panic(err) }
	pool, err := x509.SystemCertPool()
	if err != nil { panic(err) }
	data, _ := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	n := 0
	for rest := data; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil { break }
		if _, err := x509.ParseCertificate(b.Bytes); err != nil { panic(err) }
	}
	fmt.Println("zone", time.Date(2024, 7, 1, 0, 0, 0, 0, loc).Format("MST"), "certs", n, len(pool.Subjects()) == n)
}
"#,
    )
    .unwrap();
    fs::write(d.path().join("go.mod"), "module hello\n\ngo 1.19\n").unwrap();
    run_ok(cmd("go").args(["build", "-o", "hello", "."]).current_dir(d.path()).env("CGO_ENABLED", "0"));
    let out = d.path().join("img.tar");
    let target = format!("docker-archive:{}", out.display());
    let bin = format!("{}:/hello", d.path().join("hello").display());
    let (_, config) = build(&shared_cache(), &["--preset", "static", "--binary", &bin, "-t", &target]);
    let o = podman_run(&out, &config, &[]);
    let line = o.stdout.trim();
    assert!(line.starts_with("zone CEST certs ") && line.ends_with(" true"), "{line}");
    let n: usize = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(n > 100, "only {n} certificates in the bundle");
}

#[test]
fn python3_preset_runs_a_script_with_ssl_json_sqlite3() {
    crate::require!("podman");
    let d = tempdir();
    let script = d.path().join("app.py");
    fs::write(&script, "import ssl, json, sqlite3\nprint(json.dumps({'ok': sqlite3.connect(':memory:').execute('select 41+1').fetchone()[0], 'tls': ssl.OPENSSL_VERSION.split()[0]}))\n").unwrap();
    let out = d.path().join("py.tar");
    let sbom = d.path().join("sbom.json");
    let (_, config) = build(
        &shared_cache(),
        &[
            "--preset",
            "python3",
            "--file",
            &format!("{}:/app/app.py", script.display()),
            "--entrypoint",
            "/usr/bin/python3,/app/app.py",
            "--sbom",
            sbom.to_str().unwrap(),
            "-t",
            &format!("docker-archive:{}", out.display()),
        ],
    );
    let o = podman_run(&out, &config, &[]);
    assert_eq!(o.stdout.trim(), r#"{"ok": 42, "tls": "OpenSSL"}"#);
    let s: serde_json::Value = serde_json::from_slice(&fs::read(&sbom).unwrap()).unwrap();
    assert_eq!(s["spdxVersion"], "SPDX-2.3");
    let pkgs = s["packages"].as_array().unwrap();
    let py = pkgs.iter().find(|p| p["name"] == "python3.11-minimal").expect("python3.11-minimal in the SBOM");
    let purl = py["externalRefs"][0]["referenceLocator"].as_str().unwrap();
    assert!(purl.starts_with("pkg:deb/debian/python3.11-minimal@3.11") && purl.contains("arch=amd64"), "{purl}");
    assert!(pkgs.iter().any(|p| p["licenseDeclared"] != "NOASSERTION"), "no machine-readable licence found");
}

#[test]
fn cc_preset_runs_a_cpp_program() {
    crate::require!("g++", "podman");
    let d = tempdir();
    fs::write(d.path().join("hi.cpp"), "#include <iostream>\n#include <string>\n#include <vector>\nint main(){std::vector<std::string> v{\"c++\",\"ok\"};for(auto&s:v)std::cout<<s<<' ';std::cout<<std::endl;}\n").unwrap();
    run_ok(cmd("g++").args(["-O2", "-o", "hi", "hi.cpp"]).current_dir(d.path()));
    let out = d.path().join("cc.tar");
    let bin = format!("{}", d.path().join("hi").display());
    let o = run_ok(&mut pinnace_deb(
        &shared_cache(),
        &["--preset", "cc", "--binary", &bin, "-t", &format!("docker-archive:{}", out.display())],
    ));
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let warnings = v["warnings"].as_array().unwrap();
    assert!(!warnings.iter().any(|w| w.as_str().unwrap().contains("in no package")), "{}", o.stdout);
    // No host library is mixed in: the only layer beyond packages and base files is the binary.
    let app = v["layers"].as_array().unwrap().iter().find(|l| l["role"] == "application").unwrap();
    assert_eq!(app["files"], 1);
    let o = podman_run(&out, v["config_digest"].as_str().unwrap(), &[]);
    assert_eq!(o.stdout.trim(), "c++ ok");
}

#[test]
fn tampered_inrelease_packages_and_debs_are_rejected() {
    let d = tempdir();
    let cache = d.path().join("cache");
    let layout = format!("oci:{}", d.path().join("o").display());
    build(&cache, &["--preset", "static", "-t", &layout]);
    let offline = |extra: &[&str]| {
        let mut args = vec!["--preset", "static", "--offline", "-t", &layout];
        args.extend_from_slice(extra);
        run(&mut pinnace_deb(&cache, &args))
    };
    assert!(offline(&[]).status.success(), "a warm cache builds offline");
    let files = |dir: &str| -> Vec<PathBuf> {
        fs::read_dir(cache.join("pinnace/deb").join(dir)).unwrap().map(|e| e.unwrap().path()).collect()
    };
    let tamper = |p: &Path, from: &[u8], to: &[u8]| {
        let b = fs::read(p).unwrap();
        let i = b.windows(from.len()).position(|w| w == from).expect("pattern present");
        let mut t = b.clone();
        t[i..i + from.len()].copy_from_slice(to);
        fs::write(p, &t).unwrap();
        b
    };
    // InRelease: one changed byte in the signed text.
    let inrelease = files("url").into_iter().next().unwrap();
    let orig = tamper(&inrelease, b"Origin: Debian", b"Origin: Debiam");
    let o = offline(&[]);
    assert!(!o.status.success() && o.stderr.contains("signature"), "{}", o.stderr);
    let o = offline(&["--insecure-skip-signature"]);
    assert!(o.status.success() && o.stderr.contains("NOT"), "{}", o.stderr);
    fs::write(&inrelease, orig).unwrap();
    // Packages and a .deb: any change is a SHA256 mismatch naming the file.
    let starts = |p: &PathBuf, m: &[u8]| fs::read(p).unwrap().starts_with(m);
    let packages = files("sha256").into_iter().find(|p| starts(p, b"Package: ")).unwrap();
    let good = tamper(&packages, b"Package: ", b"Package:\t");
    // A damaged Packages is rebuilt from the verified Packages.xz, and checked again.
    assert!(offline(&[]).status.success());
    assert_eq!(fs::read(&packages).unwrap(), good);
    let xz = files("sha256").into_iter().find(|p| starts(p, b"\xFD7zXZ\0")).unwrap();
    tamper(&packages, b"Package: ", b"Package:\t");
    let mut x = fs::read(&xz).unwrap();
    let n = x.len() / 2;
    x[n] ^= 1;
    fs::write(&xz, x).unwrap();
    let o = offline(&[]);
    assert!(!o.status.success() && o.stderr.contains("SHA256 mismatch"), "{}", o.stderr);
    build(&cache, &["--preset", "static", "-t", &layout]);
    let deb = files("sha256").into_iter().find(|p| starts(p, b"!<arch>\n")).unwrap();
    tamper(&deb, b"debian-binary", b"debian-binarz");
    let o = offline(&[]);
    assert!(
        !o.status.success()
            && o.stderr.contains("SHA256 mismatch")
            && o.stderr.contains(deb.file_name().unwrap().to_str().unwrap()),
        "{}",
        o.stderr
    );
}

/// A stanza of a dpkg status file as (field, value) pairs.
fn stanza_of(text: &str, package: &str) -> Option<Vec<(String, String)>> {
    let st = text.split("\n\n").find(|s| s.lines().next() == Some(&format!("Package: {package}")))?;
    let mut out: Vec<(String, String)> = Vec::new();
    for line in st.lines() {
        match line.split_once(':') {
            Some((k, v)) if !line.starts_with([' ', '\t']) => out.push((k.to_string(), v.trim().to_string())),
            _ => out.last_mut().unwrap().1.push_str(&format!("\n{line}")),
        }
    }
    Some(out)
}

#[test]
fn status_d_matches_dpkg_and_builds_are_reproducible() {
    let d = tempdir();
    let a = d.path().join("a");
    let (digest1, _) = build(&shared_cache(), &["--preset", "static", "-t", &format!("oci:{}", a.display())]);
    let (digest2, _) = build(
        &shared_cache(),
        &["--preset", "static", "--max-layers", "8", "-t", &format!("oci:{}", d.path().join("b").display())],
    );
    assert_eq!(digest1, digest2, "same package versions give the same digest");
    let root = d.path().join("root");
    unpack(&a, &root);
    let host = fs::read_to_string("/var/lib/dpkg/status").unwrap_or_default();
    let mut compared = 0;
    for pkg in ["netbase", "base-files", "tzdata", "ca-certificates"] {
        let ours = fs::read_to_string(root.join("var/lib/dpkg/status.d").join(pkg)).unwrap();
        let ours = stanza_of(&ours, pkg).unwrap_or_else(|| panic!("status.d/{pkg} is not a dpkg stanza"));
        assert_eq!(ours[0].0, "Package");
        assert!(ours.contains(&("Status".into(), "install ok installed".into())), "{pkg}: {ours:?}");
        let Some(theirs) = stanza_of(&host, pkg) else { continue };
        let same_version = ours.iter().find(|f| f.0 == "Version") == theirs.iter().find(|f| f.0 == "Version");
        let stable = ["Package", "Status", "Priority", "Section", "Maintainer", "Architecture", "Multi-Arch"];
        let common: Vec<&String> = ours.iter().map(|f| &f.0).filter(|k| theirs.iter().any(|t| &t.0 == *k)).collect();
        let theirs_order: Vec<&String> = theirs.iter().map(|f| &f.0).filter(|k| common.contains(k)).collect();
        assert_eq!(common, theirs_order, "{pkg}: field order differs from dpkg's");
        for k in common {
            if same_version || stable.contains(&k.as_str()) {
                let v = |s: &[(String, String)]| s.iter().find(|f| &f.0 == k).unwrap().1.clone();
                assert_eq!(v(&ours), v(&theirs), "{pkg}: {k}");
            }
        }
        compared += 1;
    }
    assert!(compared > 0 || host.is_empty(), "no package to compare with the host's dpkg status");
    // The CA bundle and zoneinfo are in place.
    assert!(
        fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt"))
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count()
            > 100
    );
    assert!(root.join("usr/share/zoneinfo/Europe/Paris").is_file());
    assert!(!root.join("usr/share/man").exists() && !root.join("usr/share/doc/netbase/changelog.gz").exists());
}
