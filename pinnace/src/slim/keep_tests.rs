//! Keep-set tests: small images made with the layer writer, unpacked for real, and traces
//! written by hand; the ELF rule against host binaries copied into an image.

use std::sync::Arc;

use super::*;
use crate::fs::tests::{file, spec, tar_of};
use crate::layer::{FileSource, LayerEntrySpec, SpecKind};
use crate::slim::trace::{Access, AccessKind};
use crate::slim::unpack::tests::image_of;
use crate::slim::unpack::{unpack, Unpacked};

pub(crate) fn unpacked(entries: Vec<LayerEntrySpec>) -> (tempfile::TempDir, Unpacked) {
    let (src, img) = image_of(vec![tar_of(entries)]);
    let dir = tempfile::tempdir().unwrap();
    let u = unpack(&src, &img, dir.path()).unwrap();
    (dir, u)
}

pub(crate) fn trace(accesses: &[(&str, AccessKind, bool)]) -> Trace {
    Trace {
        accesses: accesses.iter().map(|&(p, kind, f)| Access { path: p.into(), kind, follow_last: f }).collect(),
        ..Default::default()
    }
}

fn link(path: &str, target: &str) -> LayerEntrySpec {
    spec(path, SpecKind::Symlink(target.into()))
}

fn dir(path: &str) -> LayerEntrySpec {
    spec(path, SpecKind::Dir)
}

/// Kept paths and their reasons, as `path reason-json`.
fn kept(u: &Unpacked, k: &KeepSet) -> Vec<String> {
    let mut v: Vec<String> = k
        .reasons()
        .iter()
        .map(|(id, r)| format!("{} {}", u.tree.path(*id), serde_json::to_string(r).unwrap()))
        .collect();
    v.sort();
    v
}

fn reason_of(u: &Unpacked, k: &KeepSet, path: &str) -> Option<Reason> {
    let id = u.tree.lookup(path)?;
    k.reasons().get(&id).cloned()
}

fn set(u: &Unpacked, t: &Trace, opts: &KeepOptions) -> KeepSet {
    keep_set(&u.tree, &u.root, t, opts).unwrap()
}

#[test]
fn traced_paths_keep_their_chains_parents_and_only_existing_directories() {
    use AccessKind::*;
    let (_d, u) = unpacked(vec![
        file("usr/bin/app", b"plain", 0o755),
        link("bin", "usr/bin"),
        link("lib", "usr/lib"),
        link("usr/lib/libfoo.so.1", "libfoo.so.1.2"),
        file("usr/lib/libfoo.so.1.2", b"foo", 0o644),
        link("usr/lib/abs", "/lib/libfoo.so.1"),
        dir("var/lock"),
        file("var/lock/stale", b"old", 0o644),
        file("d/sub/x", b"x", 0o644),
        file("unused", b"0123456789", 0o644),
    ]);
    let t = trace(&[
        ("/bin/app", Exec, true),
        ("/usr/lib/abs", Open, true),
        ("/var/lock/app.pid", Create, true),
        ("/d", Stat, true),
        ("/lib", Readlink, false),
        ("/nope/deeper", Stat, true),
        ("/usr/bin/../bin/./app", Stat, true),
    ]);
    let k = set(&u, &t, &KeepOptions::default());
    assert_eq!(
        kept(&u, &k),
        [
            r#"/bin {"rule":"symlink_chain"}"#,
            r#"/d {"rule":"traced"}"#,
            r#"/lib {"rule":"traced"}"#,
            r#"/usr {"rule":"parent"}"#,
            r#"/usr/bin {"rule":"parent"}"#,
            r#"/usr/bin/app {"rule":"traced"}"#,
            r#"/usr/lib {"rule":"parent"}"#,
            r#"/usr/lib/abs {"rule":"symlink_chain"}"#,
            r#"/usr/lib/libfoo.so.1 {"rule":"symlink_chain"}"#,
            r#"/usr/lib/libfoo.so.1.2 {"rule":"traced"}"#,
            r#"/var {"rule":"parent"}"#,
            r#"/var/lock {"rule":"traced"}"#,
        ]
    );
    assert_eq!((k.kept_files(), k.kept_bytes()), (2, 8));
    assert_eq!((k.removed_files(), k.removed_bytes()), (3, 14));
    assert!(k.warnings().is_empty(), "{:?}", k.warnings());
}

#[test]
fn missing_in_names_what_the_slim_run_did_not_find() {
    use AccessKind::*;
    let (_d, u) = unpacked(vec![
        file("app/main", b"m", 0o755),
        file("app/templates/a.html", b"a", 0o644),
        link("app/current", "templates"),
    ]);
    let k = set(&u, &trace(&[("/app/main", Exec, true)]), &KeepOptions::default());
    let slim = trace(&[
        ("/app/main", Exec, true),
        ("/app/current/a.html", Open, true),
        ("/run/app.sock", Create, true),
        ("/app/templates", Stat, true),
    ]);
    assert_eq!(k.missing_in(&u.tree, &slim), ["/app/current", "/app/templates", "/app/templates/a.html"]);
}

#[test]
fn scripts_keep_their_interpreters_through_env_and_path() {
    use AccessKind::*;
    let (_d, u) = unpacked(vec![
        file("app/run.sh", b"#!/bin/sh -e\nexec python3 x.py\n", 0o755),
        file("app/x.py", b"#!/usr/bin/env -S python3 -u\nprint(1)\n", 0o755),
        file("app/lost.pl", b"#!/usr/bin/perl\n", 0o755),
        link("bin/sh", "dash"),
        file("bin/dash", b"not really dash", 0o755),
        file("usr/bin/env", b"not really env", 0o755),
        link("usr/local/bin/python3", "python3.11"),
        file("usr/local/bin/python3.11", b"not really python", 0o755),
        file("usr/bin/python3", b"shadowed by /usr/local/bin", 0o755),
    ]);
    let t = trace(&[("/app/run.sh", Exec, true), ("/app/x.py", Exec, true), ("/app/lost.pl", Exec, true)]);
    let opts = KeepOptions { path: "/usr/local/bin:/usr/bin".into(), ..Default::default() };
    let k = set(&u, &t, &opts);
    let interp = |of: &str| Some(Reason::Interpreter { of: of.into() });
    assert_eq!(reason_of(&u, &k, "/bin/dash"), interp("/app/run.sh"));
    assert_eq!(reason_of(&u, &k, "/bin/sh"), Some(Reason::SymlinkChain));
    assert_eq!(reason_of(&u, &k, "/usr/bin/env"), interp("/app/x.py"));
    assert_eq!(reason_of(&u, &k, "/usr/local/bin/python3.11"), interp("/app/x.py"));
    assert_eq!(reason_of(&u, &k, "/usr/local/bin/python3"), Some(Reason::SymlinkChain));
    assert_eq!(reason_of(&u, &k, "/usr/bin/python3"), None);
    assert!(k.warnings().iter().any(|w| w.contains("/usr/bin/perl")), "{:?}", k.warnings());
}

#[test]
fn includes_shell_packages_and_debug_excludes() {
    let list = b"/.\n/usr\n/usr/share\n/usr/share/foo\n/usr/share/foo/a\n/usr/bin/foo\n";
    let (_d, u) = unpacked(vec![
        file("opt/data/big", b"big", 0o644),
        file("opt/data/small", b"s", 0o644),
        link("opt/data/ref", "/srv/target"),
        file("srv/target", b"t", 0o644),
        file("usr/share/t/x/page.tmpl", b"p", 0o644),
        file("usr/share/t/page.html", b"h", 0o644),
        link("bin/sh", "dash"),
        file("bin/dash", b"dash", 0o755),
        file("var/lib/dpkg/info/foo.list", list, 0o644),
        file("var/lib/dpkg/info/libbar1:amd64.list", b"/usr/lib/libbar.so.1\n", 0o644),
        file("usr/share/foo/a", b"a", 0o644),
        file("usr/share/foo/b", b"not listed", 0o644),
        file("usr/bin/foo", b"foo", 0o755),
        file("usr/lib/libbar.so.1", b"bar", 0o644),
    ]);
    let opts = KeepOptions {
        includes: vec!["/opt/data".into(), "/usr/share/**/*.tmpl".into()],
        include_shell: true,
        keep_packages: vec!["foo".into(), "libbar1".into()],
        debug_exclude: vec!["/opt/data/big".into()],
        ..Default::default()
    };
    let k = set(&u, &Trace::default(), &opts);
    let inc = |p: &str| Some(Reason::Include { pattern: p.into() });
    assert_eq!(reason_of(&u, &k, "/opt/data"), inc("/opt/data"));
    assert_eq!(reason_of(&u, &k, "/opt/data/small"), inc("/opt/data"));
    assert_eq!(reason_of(&u, &k, "/opt/data/big"), None, "excluded whatever keeps it");
    assert_eq!(reason_of(&u, &k, "/srv/target"), inc("/opt/data"), "links in an included tree resolve");
    assert_eq!(reason_of(&u, &k, "/usr/share/t/x/page.tmpl"), inc("/usr/share/**/*.tmpl"));
    assert_eq!(reason_of(&u, &k, "/usr/share/t/page.html"), None);
    assert_eq!(reason_of(&u, &k, "/bin/dash"), Some(Reason::Shell));
    let pkg = |n: &str| Some(Reason::Package { name: n.into() });
    assert_eq!(reason_of(&u, &k, "/usr/share/foo/a"), pkg("foo"));
    assert_eq!(reason_of(&u, &k, "/usr/bin/foo"), pkg("foo"));
    assert_eq!(reason_of(&u, &k, "/usr/share/foo/b"), None);
    assert_eq!(reason_of(&u, &k, "/usr/lib/libbar.so.1"), pkg("libbar1"));

    let err = |o: KeepOptions| keep_set(&u.tree, &u.root, &Trace::default(), &o).unwrap_err();
    let e = err(KeepOptions { keep_packages: vec!["fo".into()], ..Default::default() });
    assert!(matches!(&e, KeepError::UnknownPackage { close, .. } if close == &["foo"]), "{e}");
    assert!(e.to_string().contains("similar names: foo"), "{e}");
    let e = err(KeepOptions { includes: vec!["/no/such".into()], ..Default::default() });
    assert!(matches!(e, KeepError::IncludeNotFound { .. }), "{e}");
}

#[test]
fn distroless_status_d_packages() {
    let (_d, u) = unpacked(vec![
        file("var/lib/dpkg/status.d/tzdata", b"Package: tzdata\n", 0o644),
        file("var/lib/dpkg/status.d/tzdata.md5sums", b"0123  usr/share/zoneinfo/UTC\n", 0o644),
        file("var/lib/dpkg/status.d/base", b"Package: base\n", 0o644),
        file("usr/share/zoneinfo/UTC", b"TZif", 0o644),
    ]);
    let opts = KeepOptions { keep_packages: vec!["tzdata".into()], ..Default::default() };
    let k = set(&u, &Trace::default(), &opts);
    assert_eq!(reason_of(&u, &k, "/usr/share/zoneinfo/UTC"), Some(Reason::Package { name: "tzdata".into() }));
    let opts = KeepOptions { keep_packages: vec!["base".into()], ..Default::default() };
    let e = keep_set(&u.tree, &u.root, &Trace::default(), &opts).unwrap_err();
    assert!(matches!(e, KeepError::PackageWithoutFileList { .. }), "{e}");
}

#[test]
fn runtime_files_and_ca_bundles_when_tls_is_used() {
    use AccessKind::*;
    let entries = || {
        vec![
            file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644),
            file("etc/group", b"root:x:0:\n", 0o644),
            file("etc/ssl/certs/ca-certificates.crt", b"PEM", 0o644),
            link("etc/ssl/certs/1234abcd.0", "ISRG.pem"),
            link("etc/ssl/certs/ISRG.pem", "/usr/share/ca-certificates/mozilla/ISRG.crt"),
            file("usr/share/ca-certificates/mozilla/ISRG.crt", b"PEM", 0o644),
            file("usr/share/ca-certificates/mozilla/Other.crt", b"PEM", 0o644),
            link("usr/lib/ssl/certs", "/etc/ssl/certs"),
        ]
    };
    let (_d, u) = unpacked(entries());
    let k = set(&u, &Trace::default(), &KeepOptions::default());
    let passwd = Some(Reason::Runtime { what: "passwd/group".into() });
    assert_eq!(reason_of(&u, &k, "/etc/passwd"), passwd);
    assert_eq!(reason_of(&u, &k, "/etc/group"), passwd);
    assert_eq!(reason_of(&u, &k, "/etc/ssl/certs/ca-certificates.crt"), None, "no TLS in the trace");
    let k = set(&u, &trace(&[("/usr/lib/ssl/certs/99999999.0", Stat, true)]), &KeepOptions::default());
    let ca = Some(Reason::Runtime { what: "ca bundle".into() });
    assert_eq!(reason_of(&u, &k, "/etc/ssl/certs/ca-certificates.crt"), ca);
    assert_eq!(reason_of(&u, &k, "/etc/ssl/certs/1234abcd.0"), ca);
    assert_eq!(reason_of(&u, &k, "/usr/share/ca-certificates/mozilla/ISRG.crt"), ca);
    assert_eq!(reason_of(&u, &k, "/usr/share/ca-certificates/mozilla/Other.crt"), None);
    assert_eq!(reason_of(&u, &k, "/usr/lib/ssl/certs"), Some(Reason::SymlinkChain));
}

#[test]
fn nsswitch_services_in_order_without_actions() {
    let conf = "# c\npasswd: files systemd\nhosts: files [NOTFOUND=return] mdns4_minimal [ !UNAVAIL=return ] dns\n\
                networks: files\nnetgroup: nis # trailing\n";
    let got = content::nss_services(conf);
    let got: Vec<String> = got.iter().map(|(d, s)| format!("{d}:{s}")).collect();
    assert_eq!(got, ["passwd:files", "passwd:systemd", "hosts:mdns4_minimal", "hosts:dns", "netgroup:nis"]);
}

/// The host's `/usr/bin/ls` (Debian: glibc, merged /usr) and its closure, copied into an
/// image with the libraries glibc `dlopen`s next to libc.
#[test]
fn elf_closure_and_glibc_extras_of_a_host_binary() {
    use crate::elf::{resolve_closure, Binary, ClosureFileKind, ClosureOptions, HostRoot};
    let host = HostRoot::new("/");
    let Ok(closure) = Binary::from_root(&host, "/usr/bin/ls")
        .and_then(|b| resolve_closure(&host, &b, &ClosureOptions { allow_missing: true, ..Default::default() }))
    else {
        return eprintln!("skipping: no resolvable /usr/bin/ls on this host");
    };
    let libc = closure.objects.iter().find(|o| o.name == "libc.so.6").map(|o| o.real_path.clone());
    let Some(libc) = libc else { return eprintln!("skipping: /usr/bin/ls is not linked with glibc here") };
    let libdir = libc.rsplit_once('/').unwrap().0.to_string();
    let host_file = |p: &str| LayerEntrySpec {
        path: p.into(),
        kind: SpecKind::File(FileSource::Path(p.into())),
        mode: 0o755,
        uid: 0,
        gid: 0,
    };
    let mut entries = vec![host_file("/usr/bin/ls")];
    for f in &closure.files {
        entries.push(match &f.kind {
            ClosureFileKind::Regular => host_file(&f.path),
            ClosureFileKind::Symlink { target } => link(&f.path, target),
        });
    }
    let mut extras = Vec::new();
    for name in ["libgcc_s.so.1", "libnss_files.so.2", "libnss_dns.so.2"] {
        let p = format!("{libdir}/{name}");
        if std::path::Path::new(&p).is_file() && !entries.iter().any(|e| e.path == p) {
            entries.push(host_file(&p));
            extras.push(p);
        }
    }
    entries.push(file("etc/nsswitch.conf", b"passwd: files\nhosts: files dns\n", 0o644));
    entries.push(file("usr/bin/unused", b"\x7fELF not even parsed", 0o755));
    entries.push(LayerEntrySpec {
        path: "opt/broken".into(),
        kind: SpecKind::File(FileSource::Bytes(Arc::from(&b"\x7fELF garbage"[..]))),
        mode: 0o755,
        uid: 0,
        gid: 0,
    });
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path.trim_start_matches('/') == b.path.trim_start_matches('/'));
    let (_d, u) = unpacked(entries);
    let t = trace(&[("/usr/bin/ls", AccessKind::Exec, true), ("/opt/broken", AccessKind::Open, true)]);
    let k = set(&u, &t, &KeepOptions::default());
    let of_ls = Some(Reason::ElfClosure { of: "/usr/bin/ls".into() });
    assert_eq!(reason_of(&u, &k, &libc), of_ls);
    for f in &closure.files {
        assert!(k.contains(u.tree.lookup(&f.path).unwrap()), "{} of the closure is kept", f.path);
    }
    let interp = closure.interpreter.clone().unwrap();
    assert!(k.contains(u.tree.resolve(&interp, true).unwrap()));
    for p in &extras {
        let r = reason_of(&u, &k, p);
        assert!(matches!(r, Some(Reason::Runtime { .. } | Reason::ElfClosure { .. })), "{p}: {r:?}");
    }
    if extras.iter().any(|p| p.ends_with("libgcc_s.so.1")) {
        let r = reason_of(&u, &k, &format!("{libdir}/libgcc_s.so.1"));
        assert_eq!(r, Some(Reason::Runtime { what: "libgcc_s for pthread_cancel".into() }));
    }
    assert_eq!(reason_of(&u, &k, "/usr/bin/unused"), None);
    assert!(k.warnings().iter().any(|w| w.starts_with("/opt/broken: ELF closure not resolved")), "{:?}", k.warnings());
}

#[test]
fn walk_records_chains_of_chains_and_stops_where_the_tree_does() {
    let (_d, u) = unpacked(vec![
        link("lib64", "usr/lib64"),
        link("usr/lib64/ld.so", "../lib/x/ld-2.so"),
        file("usr/lib/x/ld-2.so", b"ld", 0o755),
        link("loop", "loop"),
        file("f", b"f", 0o644),
    ]);
    let t = &u.tree;
    let show = |w: &Walk| {
        let steps: Vec<String> = w.steps.iter().map(|(id, s)| format!("{}:{s:?}", t.path(*id))).collect();
        (steps, w.found.map(|id| t.path(id)), t.path(w.deepest_dir))
    };
    let (steps, found, deepest) = show(&walk(t, "/lib64/ld.so", true));
    assert_eq!(
        steps,
        ["/lib64:Link", "/usr:Dir", "/usr/lib64:Dir", "/usr/lib64/ld.so:Link", "/usr/lib:Dir", "/usr/lib/x:Dir"]
    );
    assert_eq!((found.as_deref(), deepest.as_str()), (Some("/usr/lib/x/ld-2.so"), "/usr/lib/x"));
    let (steps, found, _) = show(&walk(t, "/lib64/ld.so", false));
    assert_eq!(steps, ["/lib64:Link", "/usr:Dir", "/usr/lib64:Dir"]);
    assert_eq!(found.as_deref(), Some("/usr/lib64/ld.so"));
    // `..` after a followed link climbs from where the link led, as the kernel does.
    assert_eq!(show(&walk(t, "/lib64/../lib/x", true)).1.as_deref(), Some("/usr/lib/x"));
    assert_eq!(show(&walk(t, "/lib64/", true)).1.as_deref(), Some("/usr/lib64"));
    assert_eq!(show(&walk(t, "/", true)).1.as_deref(), Some("/"));
    for (p, deepest) in [("/usr/lib/nope/x", "/usr/lib"), ("/f/x", "/"), ("/loop", "/")] {
        let (_, found, d) = show(&walk(t, p, true));
        assert_eq!((found, d.as_str()), (None, deepest), "{p}");
    }
}
