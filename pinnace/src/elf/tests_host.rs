//! The resolver against the real host (Debian 12): programs compiled with gcc in a temp
//! directory, `/usr/bin/curl`, and `ldd` as the reference. A missing compiler fails the
//! test under CI (`CI=true`) and skips it elsewhere.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;

use crate::elf::*;

const INTERP: &str = "/lib64/ld-linux-x86-64.so.2";

/// Whether `tool` runs; under CI a missing tool is a failure.
fn have(tool: &str) -> bool {
    let arg = if tool == "go" { "version" } else { "--version" };
    let ok = Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success());
    if !ok && std::env::var("CI").as_deref() == Ok("true") {
        panic!("{tool} is required under CI");
    }
    if !ok {
        eprintln!("skipping: {tool} not found");
    }
    ok && cfg!(all(target_arch = "x86_64", target_os = "linux"))
}

/// Compiles `src` (C, or C++ when `compiler` is g++) into `dir/out` and returns its path.
fn compile(compiler: &str, dir: &Path, out: &str, src: &str, args: &[&str]) -> PathBuf {
    let ext = if compiler == "g++" { "cc" } else { "c" };
    let source = dir.join(format!("{out}.{ext}"));
    let output = dir.join(out);
    fs::create_dir_all(output.parent().unwrap()).unwrap();
    fs::write(&source, src).unwrap();
    let run = Command::new(compiler).arg("-o").arg(&output).arg(&source).args(args).output().unwrap();
    assert!(run.status.success(), "{compiler} failed: {}", String::from_utf8_lossy(&run.stderr));
    output
}

fn gcc(dir: &Path, out: &str, src: &str, args: &[&str]) -> PathBuf {
    compile("gcc", dir, out, src, args)
}

fn host_closure(path: &Path) -> Result<Closure, ElfError> {
    let root = HostRoot::new("/");
    let bin = Binary::from_root(&root, path.to_str().unwrap())?;
    resolve_closure(&root, &bin, &ClosureOptions::default())
}

/// The real paths of what `ldd` says the loader maps, and its `name => path` pairs.
fn ldd(path: &Path) -> (BTreeSet<PathBuf>, Vec<(String, String)>) {
    let out = Command::new("ldd").arg(path).env_remove("LD_LIBRARY_PATH").env_remove("LD_PRELOAD").output().unwrap();
    assert!(out.status.success(), "ldd {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let mut real = BTreeSet::new();
    let mut pairs = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let line = line.trim();
        let file = match line.split_once(" => ") {
            Some((name, rest)) => {
                let p = rest.split(" (").next().unwrap().to_string();
                pairs.push((name.to_string(), p.clone()));
                p
            }
            None => line.split(" (").next().unwrap().to_string(),
        };
        if file.starts_with('/') {
            real.insert(fs::canonicalize(&file).unwrap());
        }
    }
    (real, pairs)
}

/// Our mapped objects that the program itself asks for (not glibc's dlopens).
fn ours(c: &Closure) -> BTreeSet<PathBuf> {
    c.objects
        .iter()
        .filter(|o| o.needed_by.is_some() || o.via == "interpreter")
        .map(|o| fs::canonicalize(&o.real_path).unwrap())
        .collect()
}

fn object<'a>(c: &'a Closure, name: &str) -> &'a LoadedObject {
    c.objects.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("{name} not loaded: {c:#?}"))
}

const DEMO_LIB: &str = "int demo(int x) { return 2 * x; }\n";
const DEMO_MAIN: &str = "#include <math.h>\nint demo(int);\n\
    int main(int argc, char **argv) { return demo((int)cos((double)argc)); }\n";

#[test]
fn a_program_with_libm_and_its_own_library_through_origin() {
    if !have("gcc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lib = gcc(d, "lib/libdemo.so", DEMO_LIB, &["-shared", "-fPIC"]);
    let libdir = format!("-L{}", d.join("lib").display());
    let app = gcc(d, "bin/app", DEMO_MAIN, &[&libdir, "-ldemo", "-lm", "-Wl,-rpath,$ORIGIN/../lib"]);
    let facts = inspect(&fs::read(&app).unwrap()).unwrap();
    assert_eq!(facts.runpath, ["$ORIGIN/../lib"]);
    assert!(facts.rpath.is_empty(), "gcc on Debian emits DT_RUNPATH");
    assert_eq!(facts.libc, Libc::Glibc);
    assert!(facts.has_symtab && !facts.is_stripped());

    let c = host_closure(&app).unwrap();
    assert_eq!(c.interpreter.as_deref(), Some(INTERP));
    for name in [INTERP, "libc.so.6", "libm.so.6", "libdemo.so"] {
        object(&c, name);
    }
    let demo = object(&c, "libdemo.so");
    assert_eq!(demo.via, format!("RUNPATH of {}", app.display()));
    assert_eq!(demo.real_path, lib.to_str().unwrap());
    assert!(c.files.iter().any(|f| f.path == demo.real_path && f.kind == ClosureFileKind::Regular));
    assert!(!c.files.iter().any(|f| f.path == app.to_str().unwrap()), "the binary itself is not listed");
    // Sorted, each path once.
    assert!(c.files.windows(2).all(|w| w[0].path < w[1].path));
    if have("ldd") {
        assert_eq!(ours(&c), ldd(&app).0);
    }
}

#[test]
fn curl_matches_ldd_and_speaks_tls() {
    let curl = Path::new("/usr/bin/curl");
    if !curl.exists() || !have("ldd") {
        eprintln!("skipping: no /usr/bin/curl or ldd");
        return;
    }
    let c = host_closure(curl).unwrap();
    let (real, pairs) = ldd(curl);
    assert_eq!(ours(&c), real);
    for (name, path) in pairs {
        assert_eq!(object(&c, &name).path, path, "{name}");
    }
    let tls = c.facts.tls.as_deref().unwrap_or_default();
    assert!(tls.contains("libssl") || tls.contains("libgnutls"), "{tls:?}");
    // Every regular file exists and every link is reproduced as stored.
    for f in &c.files {
        let meta = fs::symlink_metadata(&f.path).unwrap();
        match &f.kind {
            ClosureFileKind::Regular => assert!(meta.is_file(), "{}", f.path),
            ClosureFileKind::Symlink { target } => {
                assert_eq!(fs::read_link(&f.path).unwrap().to_str().unwrap(), target)
            }
        }
    }
    if fs::symlink_metadata("/lib").is_ok_and(|m| m.is_symlink()) {
        let lib = c.files.iter().find(|f| f.path == "/lib").expect("/lib link listed");
        assert_eq!(lib.kind, ClosureFileKind::Symlink { target: "usr/lib".into() });
    }
}

#[test]
fn static_programs_need_nothing() {
    if !have("gcc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n";
    for (flag, linkage) in [("-static", Linkage::Static), ("-static-pie", Linkage::StaticPie)] {
        let bin = gcc(dir.path(), &format!("s{flag}"), src, &[flag]);
        let c = host_closure(&bin).unwrap();
        assert!(c.files.is_empty() && c.objects.is_empty(), "{flag}");
        assert_eq!(c.facts.linkage, linkage);
        assert!(c.facts.is_static());
        assert_eq!(c.facts.libc, Libc::Glibc);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }
}

const RESOLVER: &str = "#include <netdb.h>\n#include <stddef.h>\n\
    int main(void) { struct addrinfo *r; return getaddrinfo(\"localhost\", NULL, NULL, &r); }\n";

#[test]
fn nss_modules_come_with_getaddrinfo() {
    if !have("gcc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = gcc(dir.path(), "resolver", RESOLVER, &[]);
    let c = host_closure(&bin).unwrap();
    assert!(c.facts.nss.contains(&"getaddrinfo".to_string()));
    let multiarch = "/usr/lib/x86_64-linux-gnu";
    for module in ["libnss_files.so.2", "libnss_dns.so.2"] {
        if Path::new(multiarch).join(module).exists() {
            let o = object(&c, module);
            assert_eq!(o.needed_by, None);
            let f = c.files.iter().find(|f| f.path == o.real_path).unwrap();
            assert!(f.reason.starts_with("dlopen: NSS (getaddrinfo"), "{}", f.reason);
        }
    }
    let off = ClosureOptions { nss: false, ..Default::default() };
    let root = HostRoot::new("/");
    let plain = resolve_closure(&root, &Binary::from_root(&root, bin.to_str().unwrap()).unwrap(), &off).unwrap();
    assert!(!plain.objects.iter().any(|o| o.name.starts_with("libnss_")));

    // Statically linked, NSS still dlopens: a warning.
    let st = gcc(dir.path(), "resolver-static", RESOLVER, &["-static"]);
    let c = host_closure(&st).unwrap();
    assert!(c.files.is_empty());
    assert!(c.warnings.iter().any(|w| w.contains("NSS")), "{:?}", c.warnings);
}

#[test]
fn libgcc_s_gconv_and_cxx() {
    if !have("gcc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cancel = "#include <pthread.h>\nint main(void) { pthread_exit(0); }\n";
    let c = host_closure(&gcc(d, "cancel", cancel, &["-pthread"])).unwrap();
    assert!(object(&c, "libgcc_s.so.1").via != "interpreter");
    assert_eq!(c.facts.unwinder.as_deref(), Some("imports pthread_exit"));

    let iconv = "#include <iconv.h>\nint main(void) { return iconv_open(\"UTF-8\", \"LATIN2\") == 0; }\n";
    let c = host_closure(&gcc(d, "iconv", iconv, &[])).unwrap();
    assert!(c.facts.iconv);
    let gconv = "/usr/lib/x86_64-linux-gnu/gconv";
    if Path::new(gconv).is_dir() {
        let f = c.files.iter().find(|f| f.path == format!("{gconv}/gconv-modules")).expect("gconv-modules");
        assert!(f.reason.starts_with("gconv (iconv_open"), "{}", f.reason);
        assert!(c.files.iter().any(|f| f.path.ends_with("/gconv/ISO8859-2.so")));
    }

    if have("g++") {
        let cxx = "#include <string>\nint main(int c, char **v) { try { throw std::string(v[0]); } catch (...) {} return 0; }\n";
        let c = host_closure(&compile("g++", d, "cxx", cxx, &[])).unwrap();
        object(&c, "libstdc++.so.6");
        object(&c, "libgcc_s.so.1");
        if have("ldd") {
            assert_eq!(ours(&c), ldd(&d.join("cxx")).0);
        }
    }
}

#[test]
fn facts_of_common_binaries() {
    if !have("gcc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tz = "#include <time.h>\nint main(void) { time_t t = 0; return localtime(&t)->tm_year; }\n";
    let stripped = gcc(d, "tz", tz, &["-s"]);
    let facts = inspect(&fs::read(&stripped).unwrap()).unwrap();
    assert!(facts.is_stripped() && !facts.go && !facts.rust && !facts.upx);
    assert_eq!(facts.zoneinfo.as_deref(), Some("imports localtime"));
    assert_eq!(facts.tls, None);

    let mut packed = fs::read(&stripped).unwrap();
    packed[0x200..0x204].copy_from_slice(b"UPX!");
    assert!(inspect(&packed).unwrap().upx);

    let me = inspect(&fs::read(std::env::current_exe().unwrap()).unwrap()).unwrap();
    assert!(me.rust && !me.go, "this test binary is Rust");
}

#[test]
fn go_programs_are_recognised() {
    if !have("go") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = "package main\nimport (\n\t\"crypto/tls\"\n\t\"fmt\"\n\t\"time\"\n\t_ \"time/tzdata\"\n)\n\
        func main() { fmt.Println(tls.VersionTLS13, time.Now().Location()) }\n";
    fs::write(d.join("main.go"), src).unwrap();
    let out = Command::new("go")
        .args(["build", "-o", "app", "main.go"])
        .current_dir(d)
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", d.join("cache"))
        .env("GOPATH", d.join("gopath"))
        .env("GO111MODULE", "off")
        .output()
        .unwrap();
    assert!(out.status.success(), "go build: {}", String::from_utf8_lossy(&out.stderr));
    let facts = inspect(&fs::read(d.join("app")).unwrap()).unwrap();
    assert!(facts.go && !facts.rust, "{facts:?}");
    assert!(facts.is_static());
    assert_eq!(facts.libc, Libc::None);
    assert_eq!(facts.tls.as_deref(), Some("Go package crypto/tls"));
    assert!(facts.go_embedded_tzdata && facts.zoneinfo.is_some());
}

#[test]
fn clear_errors_for_bad_input() {
    let script = b"#!/bin/sh\necho hi\n";
    let err = inspect(script).unwrap_err();
    assert!(matches!(err, ElfError::NotElf { .. }), "{err}");
    let err = resolve_closure(&HostRoot::new("/"), &Binary::new("/x.sh", script.to_vec()), &ClosureOptions::default())
        .unwrap_err();
    assert!(err.to_string().starts_with("/x.sh: not an ELF file (it starts with 23 21 2f 62"), "{err}");
    assert!(inspect(b"").unwrap_err().to_string().contains("empty"));

    let real = fs::read("/bin/true").unwrap();
    let err = inspect(&real[..100]).unwrap_err().at("/bin/true");
    assert!(matches!(err, ElfError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("/bin/true: truncated ELF file: the program header table"), "{err}");

    let mut arm = real.clone();
    arm[18..20].copy_from_slice(&183u16.to_le_bytes());
    let facts = inspect(&arm).unwrap();
    assert_eq!(machine_name(facts.machine), "aarch64");
    let err =
        resolve_closure(&HostRoot::new("/"), &Binary::new("/bin/arm", arm), &ClosureOptions::default()).unwrap_err();
    assert!(matches!(err, ElfError::WrongArchitecture { ref path, .. } if path == INTERP), "{err}");
    let text = err.to_string();
    assert!(text.contains("it is x86-64 (ELF64, little-endian), but /bin/arm is aarch64"), "{text}");
}

#[test]
fn a_missing_library_lists_name_user_and_directories() {
    if !have("gcc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gcc(d, "elsewhere/libdemo.so", DEMO_LIB, &["-shared", "-fPIC"]);
    let libdir = format!("-L{}", d.join("elsewhere").display());
    let app = gcc(d, "app", DEMO_MAIN, &[&libdir, "-ldemo", "-lm"]);
    let err = host_closure(&app).unwrap_err();
    let ElfError::MissingLibraries { missing } = &err else { panic!("{err}") };
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].soname, "libdemo.so");
    assert_eq!(missing[0].needed_by, [app.to_str().unwrap()]);
    for dir in ["/etc/ld.so.cache", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib"] {
        assert!(missing[0].searched.iter().any(|s| s == dir), "{dir} in {err}");
    }
    let text = err.to_string();
    assert!(text.contains("libdemo.so (needed by") && text.contains("--sysroot"), "{text}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn inspect_never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = inspect(&data);
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.extend_from_slice(&data);
        let _ = inspect(&elf);
    }

    #[test]
    fn inspect_never_panics_on_damaged_binaries(
        edits in proptest::collection::vec((0usize..4096, any::<u8>()), 1..16),
        cut in 0usize..100_000,
    ) {
        let mut data = fs::read("/bin/true").unwrap();
        for (at, b) in edits {
            let n = data.len();
            data[at % n] = b;
        }
        let _ = inspect(&data);
        data.truncate(cut);
        let _ = inspect(&data);
    }
}
