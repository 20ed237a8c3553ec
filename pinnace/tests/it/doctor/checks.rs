//! One crafted image per check that must trigger it, and its fixed twin that must not.

use std::fs;

use serde_json::{json, Value};

use super::{doctor_json, dyn_hello, exe, file, gcc, glibc, host_ok, ids, static_hello, with_id, Ent, Img, HELLO};
use crate::util::{pinnace_ok, scratch_root};

/// Asserts that `bad` reports `id` (with each of `words` in its message) and `good` does not.
fn pair(id: &str, bad: &Img, good: &Img, words: &[&str]) -> Value {
    let name = format!("{id}-bad");
    let (v, _) = doctor_json(&bad.write(&name), &[]);
    let found = with_id(&v, id);
    assert!(!found.is_empty(), "{id}: not reported on the bad image: {:#}", v["findings"]);
    for w in words {
        assert!(found.iter().any(|f| f["message"].as_str().unwrap().contains(w)), "{id}: no {w:?} in {found:#?}");
    }
    let (g, _) = doctor_json(&good.write(&format!("{id}-good")), &[]);
    assert!(!ids(&g).contains(id), "{id}: reported on the fixed image: {:#}", g["findings"]);
    v
}

fn hello_at(path: &str) -> Vec<Ent> {
    vec![exe(path, &static_hello())]
}

#[test]
fn runnability() {
    if !host_ok() {
        return;
    }
    let good = Img::clean(&["/app"], hello_at("app"));
    pair("entrypoint-missing", &Img::clean(&["/app"], vec![]), &good, &["/app is not in the image"]);
    let v = pair(
        "entrypoint-missing",
        &Img::clean(&["/app"], hello_at("app")).with_layer(vec![Ent::Whiteout("app".into())]),
        &good,
        &["deleted by layer 1"],
    );
    assert_eq!(v["findings"][0]["severity"], "error");
    let relative = Img::clean(&["server"], hello_at("opt/bin/server")).set("Env", json!(["PATH=/opt/bin"]));
    assert!(ids(&doctor_json(&relative.write("path-lookup"), &[]).0).is_empty(), "found through PATH");
    let not_exec = Img::clean(&["/app"], vec![Ent::File("app".into(), static_hello(), 0o644)]);
    pair("entrypoint-not-executable", &not_exec, &good, &["mode 0644"]);
    let garbage = Img::clean(&["/app"], vec![exe("app", b"MZ\x90\x00 not a linux program")]);
    pair("entrypoint-exec-format", &garbage, &good, &["exec format error"]);
    let none = Img::clean(&[], vec![]);
    pair("entrypoint-none", &none, &good, &[]);
}

/// A shell-form command made with `pinnace build --entrypoint /bin/sh,-c,...`: without a
/// shell in the image it cannot start; with one (any executable at /bin/sh) it can.
#[test]
fn shell_form_without_a_shell() {
    if !host_ok() {
        return;
    }
    let hello = gcc("static-hello", HELLO, &["-static", "-s", "-O2"]);
    let dir = scratch_root().join("doctor-shell");
    fs::create_dir_all(&dir).unwrap();
    let bin = format!("{}:/usr/local/bin/hello", hello.display());
    let build = |name: &str, extra: &[&str]| {
        let r = format!("oci:{}:1", dir.join(name).display());
        let mut args = vec!["build", "-q", "--binary", &bin, "--entrypoint", "/bin/sh,-c,exec hello", "-t", &r];
        args.extend_from_slice(extra);
        pinnace_ok(&args);
        r
    };
    let bad = build("bad", &[]);
    let shell = format!("{}:/bin/sh", hello.display());
    let good = build("good", &["--file", &shell]);
    let (v, o) = doctor_json(&bad, &[]);
    assert_eq!(o.code(), Some(1));
    let f = with_id(&v, "entrypoint-shell-missing");
    assert!(f[0]["message"].as_str().unwrap().contains("/bin/sh is not in the image"), "{f:#?}");
    let (g, o) = doctor_json(&good, &[]);
    assert!(super::errors(&g).is_empty(), "{:#}", g["findings"]);
    assert_eq!(o.code(), Some(0));
    assert_eq!(g["command"], json!(["/bin/sh", "-c", "exec hello"]));
}

#[test]
fn elf_loader_libraries_and_architecture() {
    if !host_ok() {
        return;
    }
    let mut with_glibc = vec![exe("app", &dyn_hello())];
    with_glibc.extend(glibc());
    let good = Img::clean(&["/app"], with_glibc.clone());
    let scratch = Img::clean(&["/app"], vec![exe("app", &dyn_hello())]);
    let v =
        pair("elf-interpreter-missing", &scratch, &good, &["/lib64/ld-linux-x86-64.so.2", "no such file or directory"]);
    assert!(with_id(&v, "elf-missing-library").iter().any(|f| f["message"].as_str().unwrap().contains("libc.so.6")));

    // A library found through RUNPATH: missing in one image, present in its twin.
    let dir = super::progs().to_path_buf();
    fs::write(dir.join("foo.c"), "int foo(void) { return 42; }\n").unwrap();
    crate::util::run_ok(crate::util::cmd("gcc").current_dir(&dir).args([
        "-shared",
        "-fPIC",
        "-s",
        "-o",
        "libfoo.so.1",
        "-Wl,-soname,libfoo.so.1",
        "foo.c",
    ]));
    let app = gcc(
        "uses-foo",
        "int foo(void);\nint main(void) { return foo() == 42 ? 0 : 1; }\n",
        &["-s", "-L", dir.to_str().unwrap(), "-Wl,-rpath,/opt/lib", "-l:libfoo.so.1"],
    );
    let mut base = vec![exe("app", &fs::read(app).unwrap())];
    base.extend(glibc());
    let missing = Img::clean(&["/app"], base.clone());
    base.push(exe("opt/lib/libfoo.so.1", &fs::read(dir.join("libfoo.so.1")).unwrap()));
    let present = Img::clean(&["/app"], base);
    pair("elf-missing-library", &missing, &present, &["libfoo.so.1 needed by /app", "/opt/lib"]);

    let arm = good.clone().set("Entrypoint", json!(["/app"]));
    let arm = Img { arch: "arm64", ..arm };
    pair("elf-arch-mismatch", &arm, &good, &["x86-64", "linux/arm64"]);
}

#[test]
fn elf_libc_and_symbol_versions() {
    if !host_ok() {
        return;
    }
    // Built for musl's loader, on an image that has glibc only.
    let musl = gcc("musl-interp", HELLO, &["-s", "-Wl,--dynamic-linker=/lib/ld-musl-x86_64.so.1"]);
    let mut entries = vec![exe("app", &fs::read(musl).unwrap())];
    entries.extend(glibc());
    let mut fixed = vec![exe("app", &dyn_hello())];
    fixed.extend(glibc());
    let good = Img::clean(&["/app"], fixed);
    pair("elf-libc-mismatch", &Img::clean(&["/app"], entries), &good, &["built against musl", "only has glibc"]);

    // A libc that defines GLIBC_2.2.5 only: the program needs a newer one.
    let dir = super::progs().to_path_buf();
    fs::write(dir.join("old-libc.map"), "GLIBC_2.2.5 { global: *; };\n").unwrap();
    fs::write(
        dir.join("old-libc.c"),
        "int puts(const char *s) { return 0; }\nint __libc_start_main(void) { return 0; }\n",
    )
    .unwrap();
    crate::util::run_ok(crate::util::cmd("gcc").current_dir(&dir).args([
        "-shared",
        "-fPIC",
        "-nostdlib",
        "-o",
        "old-libc.so.6",
        "-Wl,-soname,libc.so.6",
        "-Wl,--version-script=old-libc.map",
        "old-libc.c",
    ]));
    let mut old = glibc();
    old[1] = exe("lib/x86_64-linux-gnu/libc.so.6", &fs::read(dir.join("old-libc.so.6")).unwrap());
    old.push(exe("app", &dyn_hello()));
    let v = pair("elf-glibc-version", &Img::clean(&["/app"], old), &good, &["GLIBC_2.34", "GLIBC_2.2.5", "libc.so.6"]);
    assert_eq!(with_id(&v, "elf-glibc-version")[0]["severity"], "error");
}

#[test]
fn scripts_and_users() {
    if !host_ok() {
        return;
    }
    let script = exe("app.sh", b"#!/bin/bash\nexec echo hi\n");
    let bad = Img::clean(&["/app.sh"], vec![script.clone()]);
    let good = Img::clean(&["/app.sh"], vec![script, exe("bin/bash", &static_hello())]);
    pair("shebang-missing-interpreter", &bad, &good, &["#!/bin/bash", "/bin/bash is not in the image"]);
    let env =
        Img::clean(&["/app.py"], vec![exe("app.py", b"#!/usr/bin/env python3\n"), exe("usr/bin/env", &static_hello())]);
    let env_ok = env.clone().with_layer(vec![exe("usr/bin/python3", &static_hello())]);
    pair("shebang-missing-interpreter", &env, &env_ok, &["python3 is not on the image's PATH"]);
    let tool = exe("usr/bin/tool", b"#!/usr/bin/perl\nprint 1;\n");
    let dangling = Img::clean(&["/app"], vec![exe("app", &static_hello()), tool]);
    pair("shebang-dangling", &dangling, &Img::clean(&["/app"], hello_at("app")), &["/usr/bin/perl"]);

    let named = |passwd: &[u8]| {
        Img {
            layers: vec![vec![Ent::Dir("tmp".into(), 0o1777), exe("app", &static_hello()), file("etc/passwd", passwd)]],
            ..Img::clean(&["/app"], vec![])
        }
        .set("User", json!("web"))
    };
    let bad = named(b"root:x:0:0::/root:/bin/sh\n");
    let good = named(b"root:x:0:0::/root:/bin/sh\nweb:x:1000:1000::/:/bin/sh\n");
    pair("user-unknown", &bad, &good, &["no user \"web\""]);
    let root = Img::clean(&["/app"], hello_at("app")).set("User", json!("root"));
    pair("runs-as-root", &root, &Img::clean(&["/app"], hello_at("app")), &["root"]);
}

#[test]
fn tls_and_time_zones() {
    if !host_ok() || !std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        return;
    }
    let tls = gcc(
        "tls-client",
        "#include <stdio.h>\nint OPENSSL_init_ssl(unsigned long long, const void *);\nint main(void) { return OPENSSL_init_ssl(0, 0) ? 0 : 1; }\n",
        &["-s", "/usr/lib/x86_64-linux-gnu/libssl.so.3"],
    );
    let dir = scratch_root().join("doctor-tls");
    fs::create_dir_all(&dir).unwrap();
    let bin = format!("{}:/usr/local/bin/client", tls.display());
    let build = |name: &str, extra: &[&str]| {
        let r = format!("oci:{}:1", dir.join(name).display());
        let mut args = vec!["build", "-q", "--binary", &bin, "-t", &r];
        args.extend_from_slice(extra);
        pinnace_ok(&args);
        r
    };
    let (bad, good) = (build("bad", &["--without", "certs"]), build("good", &[]));
    let (v, o) = doctor_json(&bad, &[]);
    assert_eq!(o.code(), Some(1));
    let f = with_id(&v, "tls-no-ca-bundle");
    assert!(f[0]["message"].as_str().unwrap().contains("libssl.so.3"), "{f:#?}");
    assert!(!ids(&doctor_json(&good, &[]).0).contains("tls-no-ca-bundle"));

    let tz = Img::clean(&["/app"], hello_at("app")).set("Env", json!(["TZ=Europe/Paris"]));
    let paris = fs::read("/usr/share/zoneinfo/Europe/Paris").unwrap();
    let tz_ok = tz.clone().with_layer(vec![file("usr/share/zoneinfo/Europe/Paris", &paris)]);
    pair("tz-no-zoneinfo", &tz, &tz_ok, &["TZ=Europe/Paris", "/usr/share/zoneinfo/Europe/Paris"]);
}

#[test]
fn secrets_in_any_layer() {
    if !host_ok() {
        return;
    }
    let key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
    let with_key = Img::clean(&["/app"], vec![exe("app", &static_hello()), file("root/.ssh/id_rsa", key)]);
    let removed = with_key.clone().with_layer(vec![Ent::Whiteout("root/.ssh/id_rsa".into())]);
    let public =
        Img::clean(&["/app"], vec![exe("app", &static_hello()), file("root/.ssh/id_rsa.pub", b"ssh-ed25519 AAAA x\n")]);
    let v =
        pair("secret-in-layer", &removed, &public, &["/root/.ssh/id_rsa", "deleted by layer 1", "still in layer 0"]);
    let f = &with_id(&v, "secret-in-layer")[0];
    assert_eq!((f["severity"].as_str(), f["layer"].as_u64()), (Some("error"), Some(0)));
    pair("secret-in-image", &with_key, &public, &["SSH private key"]);
    let npm = |rc: &[u8]| Img::clean(&["/app"], vec![exe("app", &static_hello()), file("home/app/.npmrc", rc)]);
    let npm_token =
        npm(b"//registry.npmjs.org/:_authToken=npm_abc\n").with_layer(vec![file("home/app/.npmrc", b"registry=x\n")]);
    pair(
        "secret-in-layer",
        &npm_token,
        &npm(b"registry=https://registry.npmjs.org/\n"),
        &["npm token", "replaced by layer 1"],
    );
    let pem = |text: &[u8]| Img::clean(&["/app"], vec![exe("app", &static_hello()), file("srv/tls.pem", text)]);
    pair(
        "secret-in-image",
        &pem(b"-----BEGIN PRIVATE KEY-----\nMII\n"),
        &pem(b"-----BEGIN CERTIFICATE-----\nMII\n"),
        &["PEM private key"],
    );
}

#[test]
fn waste() {
    if !host_ok() {
        return;
    }
    let good = Img::clean(&["/app"], hello_at("app"));
    let lists = Img::clean(
        &["/app"],
        vec![exe("app", &static_hello()), file("var/lib/apt/lists/deb_main_Packages", &[b'P'; 65536])],
    );
    pair("waste-package-cache", &lists, &good, &["/var/lib/apt/lists holds 64.0 KiB"]);
    let tools = Img::clean(&["/app"], vec![exe("app", &static_hello()), exe("usr/bin/gcc", &static_hello())]);
    pair("waste-build-tools", &tools, &good, &["/usr/bin/gcc"]);
    let big = Img::clean(&["/app"], vec![exe("app", &static_hello()), file("big.tar", &vec![1u8; 3 << 20])])
        .with_layer(vec![Ent::Whiteout("big.tar".into())]);
    let small = Img::clean(&["/app"], vec![exe("app", &static_hello()), file("small", b"x")])
        .with_layer(vec![Ent::Whiteout("small".into())]);
    pair("waste-deleted-bytes", &big, &small, &["/big.tar (3.0 MiB) is stored in layer 0 and deleted by layer 1"]);
}

#[test]
fn binaries_and_file_system() {
    if !host_ok() {
        return;
    }
    let good = Img::clean(&["/app"], hello_at("app"));
    let upx = gcc(
        "upx-section",
        "__attribute__((section(\"UPX0\"))) int marker = 1;\nint main(void) { return marker - 1; }\n",
        &["-static", "-s"],
    );
    pair(
        "binary-upx",
        &Img::clean(&["/app"], vec![exe("app", &fs::read(upx).unwrap())]),
        &good,
        &["/app is packed with UPX"],
    );
    let symbols = gcc("static-hello-g", HELLO, &["-static", "-g", "-O2"]);
    pair(
        "binary-unstripped",
        &Img::clean(&["/app"], vec![exe("app", &fs::read(symbols).unwrap())]),
        &good,
        &["/app carries"],
    );
    let suid = Img::clean(&["/app"], vec![Ent::File("app".into(), static_hello(), 0o4755)]);
    pair("setuid", &suid, &good, &["/app is setuid"]);
    let data = |mode| Img::clean(&["/app"], vec![exe("app", &static_hello()), Ent::Dir("data".into(), mode)]);
    pair("world-writable-dir", &data(0o777), &data(0o1777), &["/data has mode 0777"]);
    let no_tmp = Img { layers: vec![vec![exe("app", &static_hello())]], ..good.clone() };
    pair("tmp-missing", &no_tmp, &good, &["no /tmp"]);
    let tmp_755 =
        Img { layers: vec![vec![exe("app", &static_hello()), Ent::Dir("tmp".into(), 0o755)]], ..good.clone() };
    pair("tmp-not-writable", &tmp_755, &good, &["0755"]);
}

/// An entrypoint reached through a link to a place the main pass does not capture is
/// fetched by a targeted pass over only its layer, and analysed like any other.
#[test]
fn files_outside_the_plan_are_fetched_by_a_targeted_pass() {
    if !host_ok() {
        return;
    }
    let mut lower = glibc();
    lower.push(Ent::Dir("tmp".into(), 0o1777));
    let img = Img {
        layers: vec![
            lower,
            vec![exe("opt/app/run", &dyn_hello())],
            vec![Ent::Link("usr/local/bin/app".into(), "/opt/app/run".into())],
        ],
        config: json!({"Entrypoint": ["app"], "User": "65532:65532"}),
        arch: "amd64",
    };
    let (v, o) = doctor_json(&img.write("targeted"), &[]);
    assert_eq!(o.code(), Some(0), "{:#}", v["findings"]);
    assert_eq!(v["stats"]["layers_reread"], 1, "{:#}", v["stats"]);
    assert_eq!(v["stats"]["programs"], 1);
    // The same program without its loader: the fetched bytes are really analysed.
    let broken =
        Img { layers: vec![vec![Ent::Dir("tmp".into(), 0o1777)], img.layers[1].clone(), img.layers[2].clone()], ..img };
    let (v, _) = doctor_json(&broken.write("targeted-broken"), &[]);
    assert!(ids(&v).contains("elf-interpreter-missing"), "{:#}", v["findings"]);
}

#[test]
fn elf_other_versions_corruption_and_notes() {
    if !host_ok() {
        return;
    }
    // A library whose newer build defines VER_2; the image has the older one (VER_1 only).
    let dir = super::progs().to_path_buf();
    fs::write(dir.join("ver.c"), "int v1(void) { return 1; }\nint v2(void) { return 2; }\n").unwrap();
    fs::write(dir.join("ver-old.c"), "int v1(void) { return 1; }\n").unwrap();
    fs::write(dir.join("ver-new.map"), "VER_1 { global: v1; local: *; };\nVER_2 { global: v2; } VER_1;\n").unwrap();
    fs::write(dir.join("ver-old.map"), "VER_1 { global: v1; local: *; };\n").unwrap();
    for (src, map, out) in [("ver.c", "ver-new.map", "new"), ("ver-old.c", "ver-old.map", "old")] {
        fs::create_dir_all(dir.join(out)).unwrap();
        crate::util::run_ok(crate::util::cmd("gcc").current_dir(&dir).args([
            "-shared",
            "-fPIC",
            "-s",
            "-o",
            &format!("{out}/libver.so.1"),
            "-Wl,-soname,libver.so.1",
            &format!("-Wl,--version-script={map}"),
            src,
        ]));
    }
    let new_dir = dir.join("new");
    let app = gcc(
        "uses-ver",
        "int v2(void);\nint main(void) { return v2() == 2 ? 0 : 1; }\n",
        &["-s", "-L", new_dir.to_str().unwrap(), "-Wl,-rpath,/opt/lib", "-l:libver.so.1"],
    );
    let image = |lib: &str| {
        let mut e = vec![exe("app", &fs::read(&app).unwrap())];
        e.extend(glibc());
        e.push(exe("opt/lib/libver.so.1", &fs::read(dir.join(lib).join("libver.so.1")).unwrap()));
        Img::clean(&["/app"], e)
    };
    pair("elf-symbol-version", &image("old"), &image("new"), &["needs VER_2 from libver.so.1", "versions up to VER_1"]);

    // A program cut short while copying.
    let mut with_glibc = glibc();
    with_glibc.push(exe("app", &dyn_hello()[..2000]));
    let mut fixed = glibc();
    fixed.push(exe("app", &dyn_hello()));
    pair("elf-corrupt", &Img::clean(&["/app"], with_glibc), &Img::clean(&["/app"], fixed), &["truncated"]);

    // A static glibc program that uses NSS: glibc will still dlopen libnss_* at run time.
    let nss = gcc(
        "static-nss",
        "#include <pwd.h>\nint main(void) { return getpwnam(\"root\") ? 0 : 1; }\n",
        &["-static", "-s", "-O2"],
    );
    let noted = Img::clean(&["/app"], vec![exe("app", &fs::read(nss).unwrap())]);
    pair("elf-note", &noted, &Img::clean(&["/app"], hello_at("app")), &["statically linked but uses NSS"]);
}
