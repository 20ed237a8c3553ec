//! Resolver rules on generated ELF files in an in-memory root (the shape `doctor` uses):
//! RPATH inheritance, RUNPATH scope, merged /usr links, ld.so.cache, musl, errors.

use crate::elf::testutil::{build_elf, build_ld_cache, ElfSpec, MemRoot};
use crate::elf::*;

const INTERP: &str = "/lib64/ld-linux-x86-64.so.2";
const MULTIARCH: &str = "/usr/lib/x86_64-linux-gnu";

fn lib(soname: &str, needed: &[&str]) -> Vec<u8> {
    build_elf(&ElfSpec { soname: Some(soname), needed, ..Default::default() })
}

/// A Debian 12 shaped root: merged /usr, the loader reached through two links.
fn debian_root() -> MemRoot {
    let mut r = MemRoot::default();
    r.link("/lib", "usr/lib");
    r.link("/lib64", "usr/lib64");
    r.link("/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    r.file(&format!("{MULTIARCH}/ld-linux-x86-64.so.2"), &lib("ld-linux-x86-64.so.2", &[]));
    r.file(&format!("{MULTIARCH}/libc.so.6"), &lib("libc.so.6", &["ld-linux-x86-64.so.2"]));
    r.file(&format!("{MULTIARCH}/libz.so.1.2.13"), &lib("libz.so.1", &["libc.so.6"]));
    r.link(&format!("{MULTIARCH}/libz.so.1"), "libz.so.1.2.13");
    r
}

fn app(needed: &[&str], rpath: Option<&str>, runpath: Option<&str>) -> Binary {
    let spec = ElfSpec { interp: Some(INTERP), needed, rpath, runpath, ..Default::default() };
    Binary::new("/usr/bin/app", build_elf(&spec))
}

fn resolve(root: &MemRoot, bin: &Binary) -> Result<Closure, ElfError> {
    resolve_closure(root, bin, &ClosureOptions::default())
}

fn files(c: &Closure) -> Vec<(String, String)> {
    c.files
        .iter()
        .map(|f| match &f.kind {
            ClosureFileKind::Regular => (f.path.clone(), String::new()),
            ClosureFileKind::Symlink { target } => (f.path.clone(), format!("-> {target}")),
        })
        .collect()
}

fn object<'a>(c: &'a Closure, name: &str) -> &'a LoadedObject {
    c.objects.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("{name} not loaded: {c:#?}"))
}

#[test]
fn keeps_every_link_of_a_merged_usr_root() {
    let root = debian_root();
    let c = resolve(&root, &app(&["libz.so.1", "libc.so.6"], None, None)).unwrap();
    let want = [
        ("/lib", "-> usr/lib"),
        ("/lib64", "-> usr/lib64"),
        ("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", ""),
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", ""),
        ("/usr/lib/x86_64-linux-gnu/libz.so.1", "-> libz.so.1.2.13"),
        ("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", ""),
        ("/usr/lib64/ld-linux-x86-64.so.2", "-> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
    ];
    let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(files(&c), want);
    assert_eq!(c.interpreter.as_deref(), Some(INTERP));
    let names: Vec<&str> = c.objects.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, [INTERP, "libz.so.1", "libc.so.6"], "libc's DT_NEEDED of the loader is the loader");
    let z = object(&c, "libz.so.1");
    assert_eq!(z.path, "/lib/x86_64-linux-gnu/libz.so.1");
    assert_eq!(z.real_path, "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13");
    assert_eq!(z.via, "default directory");
    let reason = &c.files.iter().find(|f| f.path.ends_with("libz.so.1.2.13")).unwrap().reason;
    assert_eq!(reason, "DT_NEEDED libz.so.1 of /usr/bin/app");
    assert_eq!(resolve(&root, &app(&["libz.so.1", "libc.so.6"], None, None)).unwrap(), c, "deterministic");
}

#[test]
fn rpath_applies_to_the_whole_chain_but_runpath_only_to_direct_deps() {
    let mut root = debian_root();
    root.file("/opt/a/liba.so", &lib("liba.so", &["libb.so"]));
    root.file("/opt/a/libb.so", &lib("libb.so", &["libc.so.6"]));

    let c = resolve(&root, &app(&["liba.so"], Some("/opt/a"), None)).unwrap();
    assert_eq!(object(&c, "libb.so").via, "RPATH of /usr/bin/app", "inherited from the loader's loader");

    let err = resolve(&root, &app(&["liba.so"], None, Some("/opt/a"))).unwrap_err();
    let ElfError::MissingLibraries { missing } = &err else { panic!("{err}") };
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].soname, "libb.so");
    assert_eq!(missing[0].needed_by, ["/opt/a/liba.so"]);
    assert!(missing[0].searched.contains(&MULTIARCH.to_string()), "{err}");
    assert!(!missing[0].searched.iter().any(|s| s.starts_with("/opt/a")), "{err}");
    let text = err.to_string();
    assert!(text.contains("libb.so (needed by /opt/a/liba.so)") && text.contains("searched:"), "{text}");
}

#[test]
fn rpath_is_void_when_runpath_is_present() {
    let mut root = debian_root();
    root.file("/opt/r/libx.so", &lib("libx.so", &[]));
    let err = resolve(&root, &app(&["libx.so"], Some("/opt/r"), Some("/opt/u"))).unwrap_err();
    assert!(err.to_string().contains("/opt/u (RUNPATH of /usr/bin/app)"), "{err}");
    assert!(!err.to_string().contains("/opt/r"), "{err}");
}

#[test]
fn origin_is_the_directory_of_the_real_binary_and_of_each_library_as_opened() {
    let mut root = debian_root();
    let spec = ElfSpec {
        interp: Some(INTERP),
        needed: &["libapp.so"],
        runpath: Some("${ORIGIN}/../lib"),
        ..Default::default()
    };
    root.file("/opt/app/bin/app", &build_elf(&spec));
    root.link("/usr/bin/app", "../../opt/app/bin/app");
    let needs_sub = ElfSpec {
        soname: Some("libapp.so"),
        needed: &["libsub.so"],
        runpath: Some("$ORIGIN/sub"),
        ..Default::default()
    };
    root.file("/opt/app/lib/libapp.so", &build_elf(&needs_sub));
    root.file("/opt/app/lib/sub/libsub.so", &lib("libsub.so", &[]));

    let bin = Binary::from_root(&root, "/usr/bin/app").unwrap();
    assert_eq!(bin.origin(), "/opt/app/bin");
    let c = resolve(&root, &bin).unwrap();
    assert_eq!(object(&c, "libapp.so").path, "/opt/app/bin/../lib/libapp.so");
    assert_eq!(object(&c, "libsub.so").real_path, "/opt/app/lib/sub/libsub.so");

    // The same bytes placed elsewhere in the image: $ORIGIN follows the given path.
    let moved = Binary::new("/srv/bin/app", bin.bytes().to_vec());
    let err = resolve(&root, &moved).unwrap_err();
    assert!(err.to_string().contains("/srv/bin/../lib (RUNPATH of /srv/bin/app)"), "{err}");
}

#[test]
fn skips_libraries_of_another_architecture_like_ld_so() {
    let mut root = debian_root();
    let arm = build_elf(&ElfSpec { machine: 183, soname: Some("libq.so"), ..Default::default() });
    root.file("/opt/q/libq.so", &arm);
    let err = resolve(&root, &app(&["libq.so"], None, Some("/opt/q"))).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("skipped: /opt/q/libq.so: aarch64 (ELF64, little-endian), need x86-64"), "{text}");
    root.file(&format!("{MULTIARCH}/libq.so"), &lib("libq.so", &[]));
    let c = resolve(&root, &app(&["libq.so"], None, Some("/opt/q"))).unwrap();
    assert_eq!(object(&c, "libq.so").path, "/lib/x86_64-linux-gnu/libq.so");
}

#[test]
fn an_interpreter_of_another_architecture_is_an_error() {
    let mut root = MemRoot::default();
    root.file(INTERP, &build_elf(&ElfSpec { machine: 183, ..Default::default() }));
    let err = resolve(&root, &app(&[], None, None)).unwrap_err();
    assert!(matches!(err, ElfError::WrongArchitecture { ref path, .. } if path == INTERP), "{err}");
    assert!(err.to_string().contains("aarch64"), "{err}");
}

#[test]
fn lists_every_missing_library_and_a_missing_interpreter() {
    let root = MemRoot::default();
    let err = resolve(&root, &app(&["libq.so.1", "libr.so.2"], None, None)).unwrap_err();
    let ElfError::MissingLibraries { missing } = &err else { panic!("{err}") };
    let names: Vec<&str> = missing.iter().map(|m| m.soname.as_str()).collect();
    assert_eq!(names, [INTERP, "libq.so.1", "libr.so.2"]);
    assert_eq!(missing[0].needed_by, ["/usr/bin/app (PT_INTERP)"]);

    let opts = ClosureOptions { allow_missing: true, ..Default::default() };
    let c = resolve_closure(&root, &app(&["libq.so.1"], None, None), &opts).unwrap();
    assert_eq!(c.missing.len(), 2);
    assert!(c.files.is_empty());
}

#[test]
fn a_corrupt_library_is_an_error_naming_it() {
    let mut root = debian_root();
    root.file(&format!("{MULTIARCH}/libbad.so.1"), b"INPUT(-lbad)\n");
    let err = resolve(&root, &app(&["libbad.so.1"], None, None)).unwrap_err();
    assert!(matches!(err, ElfError::NotElf { ref path, .. } if path == "/lib/x86_64-linux-gnu/libbad.so.1"), "{err}");
}

#[test]
fn uses_the_roots_ld_so_cache_and_ships_it_when_needed() {
    let mut root = debian_root();
    root.file("/opt/vendor/libv.so.3", &lib("libv.so.3", &[]));
    root.file("/etc/ld.so.cache", &build_ld_cache(&[(0x0303, "libv.so.3", "/opt/vendor/libv.so.3", 0)], false, false));
    let c = resolve(&root, &app(&["libv.so.3"], None, None)).unwrap();
    assert_eq!(object(&c, "libv.so.3").via, "ld.so.cache");
    let cache = c.files.iter().find(|f| f.path == "/etc/ld.so.cache").expect("cache shipped");
    assert!(cache.reason.contains("libv.so.3"), "{}", cache.reason);

    root.file("/etc/ld.so.cache", b"garbage");
    let opts = ClosureOptions { allow_missing: true, ..Default::default() };
    let c = resolve_closure(&root, &app(&["libv.so.3"], None, None), &opts).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("corrupt ld.so.cache")), "{:?}", c.warnings);
    assert_eq!(c.missing[0].soname, "libv.so.3");
}

#[test]
fn follows_musl_rules() {
    let mut root = MemRoot::default();
    let musl = "/lib/ld-musl-x86_64.so.1";
    root.file(musl, &lib("libc.musl-x86_64.so.1", &[]));
    root.link("/lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1");
    root.file("/usr/lib/libz.so.1", &lib("libz.so.1", &["libc.musl-x86_64.so.1"]));
    root.file("/opt/p/deep/libd.so", &lib("libd.so", &[]));
    // musl walks the loader chain for RUNPATH too.
    let libp = ElfSpec { soname: Some("libp.so"), needed: &["libd.so"], ..Default::default() };
    root.file("/opt/p/libp.so", &build_elf(&libp));
    let spec = ElfSpec {
        interp: Some(musl),
        needed: &["libz.so.1", "libp.so", "libc.musl-x86_64.so.1", "libm.so"],
        runpath: Some("/opt/p:/opt/p/deep"),
        ..Default::default()
    };
    let c = resolve(&root, &Binary::new("/app", build_elf(&spec))).unwrap();
    let names: Vec<&str> = c.objects.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, [musl, "libz.so.1", "libp.so", "libd.so"]);
    assert_eq!(object(&c, "libd.so").via, "RUNPATH of /app");
    assert_eq!(c.facts.libc, Libc::Musl);
}

#[test]
fn a_static_binary_needs_nothing() {
    let bytes = build_elf(&ElfSpec::default());
    let c = resolve(&MemRoot::default(), &Binary::new("/app", bytes)).unwrap();
    assert!(c.facts.is_static());
    assert!(c.files.is_empty() && c.objects.is_empty());
}
