//! `pinnace build` from Debian packages (issue 8): presets (static, python3, cc, java17)
//! run under podman, the trust chain rejects tampering, status.d matches dpkg's format,
//! builds are reproducible.
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

/// The JDK's three views of trust must agree: the default TrustManagerFactory (reading
/// `lib/security/cacerts` -> `/etc/ssl/certs/java/cacerts` with no password), the same
/// keystore loaded as JKS with "changeit" (so its integrity digest is checked by Java
/// itself), and the PEM bundle.
const TRUST_JAVA: &str = r#"import java.io.FileInputStream;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

public class Trust {
    public static void main(String[] args) throws Exception {
        TrustManagerFactory f = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        f.init((KeyStore) null);
        int issuers = 0;
        for (var m : f.getTrustManagers()) {
            if (m instanceof X509TrustManager x) issuers += x.getAcceptedIssuers().length;
        }
        KeyStore jks = KeyStore.getInstance("JKS");
        try (var in = new FileInputStream("/etc/ssl/certs/java/cacerts")) {
            jks.load(in, "changeit".toCharArray());
        }
        int pem;
        try (var in = new FileInputStream("/etc/ssl/certs/ca-certificates.crt")) {
            pem = CertificateFactory.getInstance("X.509").generateCertificates(in).size();
        }
        System.out.println("java " + System.getProperty("java.specification.version") + " issuers " + issuers
            + " jks " + jks.size() + " pem " + pem);
    }
}
"#;

#[test]
fn java17_preset_runs_a_program_that_trusts_the_ca_bundle() {
    crate::require!("javac", "podman");
    let d = tempdir();
    fs::write(d.path().join("Trust.java"), TRUST_JAVA).unwrap();
    run_ok(cmd("javac").args(["--release", "17", "Trust.java"]).current_dir(d.path()));
    let out = d.path().join("java.tar");
    let class = format!("{}:/app/Trust.class", d.path().join("Trust.class").display());
    let (_, config) = build(
        &shared_cache(),
        &[
            "--preset",
            "java17",
            "--file",
            &class,
            // `java` by PATH: /usr/bin/java is the link update-alternatives would have made.
            "--entrypoint",
            "java,-cp,/app,Trust",
            "-t",
            &format!("docker-archive:{}", out.display()),
        ],
    );
    let o = podman_run(&out, &config, &[]);
    let w: Vec<&str> = o.stdout.split_whitespace().collect();
    assert!(matches!(w[..], ["java", "17", "issuers", _, "jks", _, "pem", _]), "{}", o.stdout);
    let n: usize = w[3].parse().unwrap();
    assert!(n > 100, "only {n} trusted issuers: {}", o.stdout);
    assert_eq!((w[5], w[7]), (w[3], w[3]), "trust store and PEM bundle differ: {}", o.stdout);
}

#[test]
fn tampered_inrelease_packages_and_debs_are_rejected() {
    let d = tempdir();
    let cache = d.path().join("cache");
    let layout = format!("oci:{}", d.path().join("o").display());
    let (first, _) = build(&cache, &["--preset", "static", "-t", &layout]);
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
    // (Every suite's: the release, -updates and -security each have a Packages, though
    // -updates may be empty just after a point release.)
    let packages: Vec<PathBuf> = files("sha256").into_iter().filter(|p| starts(p, b"Package: ")).collect();
    assert!((2..=3).contains(&packages.len()), "{packages:?}");
    let good: Vec<Vec<u8>> = packages.iter().map(|p| tamper(p, b"Package: ", b"Package:\t")).collect();
    // A damaged Packages is rebuilt from the verified Packages.xz, and checked again.
    let o = offline(&[]);
    assert!(o.status.success(), "{}", o.stderr);
    for (p, g) in packages.iter().zip(&good) {
        assert_eq!(&fs::read(p).unwrap(), g);
        tamper(p, b"Package: ", b"Package:\t");
    }
    for xz in files("sha256").into_iter().filter(|p| starts(p, b"\xFD7zXZ\0")) {
        let mut x = fs::read(&xz).unwrap();
        let n = x.len() / 2;
        x[n] ^= 1;
        fs::write(&xz, x).unwrap();
    }
    let o = offline(&[]);
    assert!(!o.status.success() && o.stderr.contains("SHA256 mismatch"), "{}", o.stderr);
    build(&cache, &["--preset", "static", "-t", &layout]);
    // Repacked packages (the warm path's extraction cache): a damaged one is not used;
    // the package is extracted from its verified .deb again and the entry rewritten.
    let repacked: Vec<PathBuf> = files("derived/repacked-v1");
    assert!(!repacked.is_empty());
    let saved: Vec<Vec<u8>> = repacked.iter().map(|p| fs::read(p).unwrap()).collect();
    for p in &repacked {
        let mut b = fs::read(p).unwrap();
        let n = b.len() - 40;
        b[n] ^= 0x55;
        fs::write(p, b).unwrap();
    }
    let o = offline(&[]);
    assert!(o.status.success(), "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["digest"].as_str().unwrap(), first, "same image from the .debs");
    for (p, b) in repacked.iter().zip(&saved) {
        assert_eq!(&fs::read(p).unwrap(), b, "{} rewritten", p.display());
    }
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

/// libfakeroot puts its library in /usr/lib/x86_64-linux-gnu/libfakeroot, named by an
/// /etc/ld.so.conf.d file: the image gets the /etc/ld.so.cache that ldconfig would have
/// written (glibc's own `ldconfig -p` lists exactly what `ldconfig -r` makes of the same
/// tree), and the real loader in the container finds the library through it.
#[test]
fn ld_so_cache_for_libraries_outside_the_default_dirs() {
    crate::require!("gcc", "podman", "ldconfig");
    let d = tempdir();
    fs::write(
        d.path().join("dl.c"),
        "#include <dlfcn.h>\n#include <stdio.h>\nint main(void) {\n\
  void *h = dlopen(\"libfakeroot-0.so\", RTLD_LAZY | RTLD_LOCAL);\n\
  puts(h ? \"found libfakeroot-0.so\" : dlerror());\n  return h ? 0 : 1;\n}\n",
    )
    .unwrap();
    run_ok(cmd("gcc").args(["-O2", "-o", "dl", "dl.c"]).current_dir(d.path()));
    let bin = format!("{}:/dl", d.path().join("dl").display());
    let out = d.path().join("dl.tar");
    let (_, config) = build(
        &shared_cache(),
        &["--deb", "libfakeroot", "--binary", &bin, "-t", &format!("docker-archive:{}", out.display())],
    );
    let o = podman_run(&out, &config, &[]);
    assert_eq!(o.stdout.trim(), "found libfakeroot-0.so");

    let layout = d.path().join("oci");
    build(&shared_cache(), &["--deb", "libfakeroot", "-t", &format!("oci:{}", layout.display())]);
    let ours = d.path().join("ours");
    unpack(&layout, &ours);
    let theirs = d.path().join("theirs");
    run_ok(cmd("cp").arg("-a").arg(&ours).arg(&theirs));
    fs::remove_file(theirs.join("etc/ld.so.cache")).unwrap();
    // What libc-bin ships as /etc/ld.so.conf (pinnace assumes it; images leave libc-bin out).
    fs::write(theirs.join("etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n").unwrap();
    run_ok(cmd("ldconfig").arg("-r").arg(&theirs));
    let list = |root: &Path| -> Vec<String> {
        let o = run_ok(cmd("ldconfig").arg("-p").arg("-C").arg(root.join("etc/ld.so.cache")));
        o.stdout.lines().skip(1).filter(|l| !l.starts_with("Cache generated by")).map(str::to_string).collect()
    };
    let (a, b) = (list(&ours), list(&theirs));
    assert!(a.iter().any(|l| l.contains("/libfakeroot/libfakeroot-0.so")), "{a:#?}");
    assert_eq!(a, b, "pinnace's ld.so.cache differs from ldconfig's");
}

/// A suite's `Packages`, fetched by the test itself (not by pinnace) for its expectations.
fn archive_packages(url: &str) -> String {
    run_ok(cmd("sh").args(["-c", &format!("curl -sfL --max-time 300 '{url}' | xz -dc")])).stdout
}

/// Whether dpkg orders version `a` after `b`.
fn dpkg_newer(a: &str, b: &str) -> bool {
    run(cmd("dpkg").args(["--compare-versions", a, "gt", b])).status.success()
}

/// The highest version of `name` in a `Packages` text.
fn version_in(packages: &str, name: &str) -> Option<String> {
    let head = format!("Package: {name}\n");
    packages
        .split("\n\n")
        .filter(|st| st.starts_with(&head))
        .filter_map(|st| st.lines().find_map(|l| l.strip_prefix("Version: ")).map(str::to_string))
        .reduce(|a, b| if dpkg_newer(&b, &a) { b } else { a })
}

/// (name, version, download URL) of every package of an SPDX SBOM.
fn sbom_packages(path: &Path) -> Vec<(String, String, String)> {
    let s: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    let field = |p: &serde_json::Value, k: &str| p[k].as_str().unwrap().to_string();
    s["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (field(p, "name"), field(p, "versionInfo"), field(p, "downloadLocation")))
        .collect()
}

/// bookworm is a stable release: by default pinnace reads bookworm-updates and
/// bookworm-security too, and every package is the highest version of the three suites,
/// as the test computes it from the archive itself; `--no-updates` reads bookworm alone.
/// The SBOM and status.d name the version that is in the image. Packages that often
/// have security fixes (libssl3 first) make it likely that some version differs.
#[test]
fn stable_release_reads_updates_and_security_and_the_highest_version_wins() {
    crate::require!("curl", "xz", "dpkg");
    const MIRROR: &str = "http://deb.debian.org/debian";
    let d = tempdir();
    let mut args = vec!["--mirror", MIRROR, "--suite", "bookworm"];
    for p in ["libssl3", "libexpat1", "libxml2", "libsqlite3-0", "libgnutls30", "zlib1g", "libkrb5-3", "libpng16-16"] {
        args.extend(["--deb", p]);
    }
    let build_with = |name: &str, extra: &[&str]| {
        let sbom = d.path().join(format!("{name}.spdx.json"));
        let layout = d.path().join(name);
        let mut a = args.clone();
        a.extend_from_slice(extra);
        let target = format!("oci:{}", layout.display());
        a.extend(["--sbom", sbom.to_str().unwrap(), "-t", &target]);
        let o = run_ok(&mut pinnace_deb(&shared_cache(), &a));
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        (v["extras"][0][1].as_str().unwrap().to_string(), sbom_packages(&sbom), layout)
    };
    let (main_summary, main, _) = build_with("main", &["--no-updates"]);
    assert!(!main_summary.contains("-security") && !main_summary.contains("-updates"), "{main_summary}");
    let (summary, all, layout) = build_with("all", &[]);
    assert!(summary.contains("bookworm-updates (") && summary.contains("bookworm-security"), "{summary}");

    // Where pinnace reads bookworm-security unless the host names another source.
    let security =
        archive_packages("http://deb.debian.org/debian-security/dists/bookworm-security/main/binary-amd64/Packages.xz");
    let updates = archive_packages(&format!("{MIRROR}/dists/bookworm-updates/main/binary-amd64/Packages.xz"));
    let root = d.path().join("root");
    unpack(&layout, &root);
    let mut newer = Vec::new();
    for (name, version, url) in &all {
        let Some((_, released, _)) = main.iter().find(|m| &m.0 == name) else { continue };
        let mut want = released.clone();
        for v in [version_in(&security, name), version_in(&updates, name)].into_iter().flatten() {
            if dpkg_newer(&v, &want) {
                want = v;
            }
        }
        assert_eq!(version, &want, "{name}: not the highest version of the three suites");
        if version != released {
            let from_security = version_in(&security, name).as_ref() == Some(version);
            assert!(!from_security || url.contains("-security/pool/"), "{name} {version} from {url}");
            newer.push(format!("{name} {released} -> {version}"));
        }
        let status = fs::read_to_string(root.join("var/lib/dpkg/status.d").join(name)).unwrap();
        assert!(status.lines().any(|l| l == format!("Version: {version}")), "{name}: status.d says\n{status}");
    }
    // Not asserted non-empty: just after a point release the suites agree.
    eprintln!("updated over bookworm: {newer:?}");
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
