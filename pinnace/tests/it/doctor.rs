//! `pinnace doctor` against images crafted here: for every check, an image that must
//! trigger it and its fixed twin that must not ([`checks`]); no error on healthy images
//! that pinnace and podman build and that really run ([`healthy`]); `--run` against
//! programs that ignore and handle SIGTERM ([`run`]); the `--json` schema and exit codes.
//!
//! Images are OCI layouts written here from tar layers (`tar` crate) and a config of our
//! choosing, or made by `pinnace build`. The programs in them are compiled with gcc in
//! the test (static, dynamic, against libssl, with a foreign interpreter, with a UPX
//! section), and the glibc parts are the host's own loader and libc.

mod checks;
mod healthy;
mod run;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::util::{cmd, pinnace, run_ok, scratch_root, Out};

/// One entry of a crafted layer.
#[derive(Debug, Clone)]
pub enum Ent {
    /// A regular file: path, content, mode.
    File(String, Vec<u8>, u32),
    /// A directory with a mode.
    Dir(String, u32),
    /// A symbolic link to a target.
    Link(String, String),
    /// A whiteout removing the path from lower layers.
    Whiteout(String),
}

/// `Ent::File` with mode 0755.
pub fn exe(path: &str, data: &[u8]) -> Ent {
    Ent::File(path.into(), data.to_vec(), 0o755)
}

/// `Ent::File` with mode 0644.
pub fn file(path: &str, data: &[u8]) -> Ent {
    Ent::File(path.into(), data.to_vec(), 0o644)
}

fn layer_tar(entries: &[Ent]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        match e {
            Ent::File(p, data, mode) => {
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, &data[..]).unwrap();
            }
            Ent::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, format!("{p}/"), &[][..]).unwrap();
            }
            Ent::Link(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            Ent::Whiteout(p) => {
                let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
                let wh = if dir.is_empty() { format!(".wh.{name}") } else { format!("{dir}/.wh.{name}") };
                h.set_mode(0o644);
                h.set_size(0);
                b.append_data(&mut h, wh, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// An image to craft: layers bottom first, the config's `config` object, the architecture.
#[derive(Debug, Clone)]
pub struct Img {
    pub layers: Vec<Vec<Ent>>,
    pub config: Value,
    pub arch: &'static str,
}

impl Img {
    /// A clean image around `entries`: /tmp 1777, passwd and group with user 65532,
    /// User 65532, Entrypoint `entrypoint`.
    pub fn clean(entrypoint: &[&str], entries: Vec<Ent>) -> Img {
        let mut base = vec![
            Ent::Dir("tmp".into(), 0o1777),
            file("etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\napp:x:65532:65532::/home/app:/sbin/nologin\n"),
            file("etc/group", b"root:x:0:\napp:x:65532:\n"),
        ];
        base.extend(entries);
        Img { layers: vec![base], config: json!({"Entrypoint": entrypoint, "User": "65532"}), arch: "amd64" }
    }

    /// The same image with one more layer.
    pub fn with_layer(mut self, entries: Vec<Ent>) -> Img {
        self.layers.push(entries);
        self
    }

    /// The same image with `key` of the config set to `value`.
    pub fn set(mut self, key: &str, value: Value) -> Img {
        self.config[key] = value;
        self
    }

    /// Writes the image as an OCI layout (uncompressed layers) under a fresh directory
    /// named `name`; returns its reference.
    pub fn write(&self, name: &str) -> String {
        let dir = scratch_root().join("doctor").join(name);
        let _ = fs::remove_dir_all(&dir);
        let tars: Vec<Vec<u8>> = self.layers.iter().map(|l| layer_tar(l)).collect();
        crate::util::write_oci_layout(
            &dir,
            &tars,
            json!({"architecture": self.arch, "os": "linux", "config": self.config}),
        )
    }
}

/// `pinnace doctor --json REF ARGS`: the parsed report and the run (any exit code but 2).
pub fn doctor_json(r: &str, args: &[&str]) -> (Value, Out) {
    let mut all = vec!["doctor", "--json", r];
    all.extend_from_slice(args);
    let o = pinnace(&all);
    assert!(matches!(o.code(), Some(0 | 1)), "pinnace {all:?}: {:?}\n{}\n{}", o.code(), o.stdout, o.stderr);
    let v: Value =
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("--json: {e}: {}\n{}", o.stdout, o.stderr));
    (v, o)
}

/// The finding ids of a report.
pub fn ids(v: &Value) -> BTreeSet<String> {
    v["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect()
}

/// The findings of a report with this id.
pub fn with_id<'a>(v: &'a Value, id: &str) -> Vec<&'a Value> {
    v["findings"].as_array().unwrap().iter().filter(|f| f["id"] == id).collect()
}

/// The findings of severity error.
pub fn errors(v: &Value) -> Vec<&Value> {
    v["findings"].as_array().unwrap().iter().filter(|f| f["severity"] == "error").collect()
}

/// Where compiled test programs go (one directory per test process).
fn progs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = scratch_root().join("doctor-progs");
        fs::create_dir_all(&d).unwrap();
        d
    })
}

/// Compiles `source` (C) with `gcc SOURCE ARGS` (libraries after the source) into `name`
/// once per process; its path.
pub fn gcc(name: &str, source: &str, args: &[&str]) -> PathBuf {
    static COMPILING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = crate::util::lock(&COMPILING);
    let out = progs().join(name);
    if !out.exists() {
        let src = progs().join(format!("{name}.c"));
        fs::write(&src, source).unwrap();
        let tmp = progs().join(format!("{name}.tmp"));
        run_ok(cmd("gcc").arg("-o").arg(&tmp).arg(&src).args(args));
        fs::rename(&tmp, &out).unwrap();
    }
    out
}

/// A program that prints a line and exits 0.
pub const HELLO: &str = "#include <stdio.h>\nint main(void) { puts(\"hello from doctor\"); return 0; }\n";

/// Static, stripped hello.
pub fn static_hello() -> Vec<u8> {
    fs::read(gcc("static-hello", HELLO, &["-static", "-s", "-O2"])).unwrap()
}

/// Dynamic (glibc) hello, stripped.
pub fn dyn_hello() -> Vec<u8> {
    fs::read(gcc("dyn-hello", HELLO, &["-s", "-O2"])).unwrap()
}

/// The host's dynamic loader and libc as image entries at Debian's paths.
pub fn glibc() -> Vec<Ent> {
    let libc = String::from_utf8(run_ok(cmd("gcc").arg("-print-file-name=libc.so.6")).stdout_bytes).unwrap();
    let libc = fs::canonicalize(libc.trim()).unwrap();
    let ld = fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap();
    vec![
        exe("lib64/ld-linux-x86-64.so.2", &fs::read(ld).unwrap()),
        exe("lib/x86_64-linux-gnu/libc.so.6", &fs::read(libc).unwrap()),
    ]
}

/// Whether the host can build what these tests need (gcc, glibc at Debian's x86-64 paths).
pub fn host_ok() -> bool {
    if !crate::util::require_tools(&["gcc"]) {
        return false;
    }
    let ok = cfg!(target_arch = "x86_64") && Path::new("/lib64/ld-linux-x86-64.so.2").exists();
    if !ok {
        eprintln!("SKIPPED: doctor tests need an x86-64 glibc host");
    }
    ok
}

#[test]
fn a_clean_crafted_image_has_no_findings() {
    if !host_ok() {
        return;
    }
    let r = Img::clean(&["/app"], vec![exe("app", &static_hello())]).write("clean");
    let (v, o) = doctor_json(&r, &[]);
    assert_eq!(o.code(), Some(0));
    assert!(ids(&v).is_empty(), "{:#}", v["findings"]);
    let (_, o) = doctor_json(&r, &["--fail-on", "info"]);
    assert_eq!(o.code(), Some(0));
}

#[test]
fn json_schema_and_exit_codes() {
    if !host_ok() {
        return;
    }
    // Errors: exit 1, findings first in JSON, the text names each one on a line.
    let bad = Img::clean(&["/app"], vec![]).set("User", json!("")).write("schema-bad");
    let (v, o) = doctor_json(&bad, &[]);
    assert_eq!(o.code(), Some(1));
    assert!(o.stderr.contains("pinnace: error:") && o.stderr.contains("--fail-on error"), "{}", o.stderr);
    assert_eq!(v["schema_version"], 1);
    for key in [
        "image",
        "manifest_digest",
        "config_digest",
        "platform",
        "command",
        "user",
        "findings",
        "summary",
        "run",
        "stats",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v:#}");
    }
    assert_eq!(v["platform"]["architecture"], "amd64");
    assert_eq!(v["command"], json!(["/app"]));
    assert!(v["manifest_digest"].as_str().unwrap().starts_with("sha256:"));
    for key in ["errors", "warnings", "infos"] {
        assert!(v["summary"][key].is_u64(), "{key}");
    }
    for key in ["layers", "layers_reread", "elf_files", "kept_bytes", "programs"] {
        assert!(v["stats"][key].is_u64(), "{key}");
    }
    let first = &v["findings"][0];
    assert_eq!(first["id"], "entrypoint-missing");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["path"], "/app");
    for key in ["layer", "message", "fix"] {
        assert!(first.get(key).is_some(), "{key}");
    }
    let sevs: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["severity"].as_str().unwrap()).collect();
    assert_eq!(sevs, vec!["error", "info"], "errors first, then root as info");

    let text = pinnace(&["doctor", &bad]);
    assert_eq!(text.code(), Some(1));
    let line = text.stdout.lines().find(|l| l.contains("entrypoint-missing")).expect("one line per finding");
    assert!(line.starts_with("error") && line.contains("/app") && line.contains("fix:"), "{line}");
    assert!(text.stdout.contains("1 error, 0 warnings, 1 info"), "{}", text.stdout);

    // Warnings only: 0 by default, 1 with --fail-on warn.
    let warn =
        Img::clean(&["/app"], vec![exe("app", &static_hello()), Ent::Dir("data".into(), 0o777)]).write("schema-warn");
    assert_eq!(doctor_json(&warn, &[]).1.code(), Some(0));
    assert_eq!(doctor_json(&warn, &["--fail-on", "warn"]).1.code(), Some(1));
    // Info only (root): 1 only with --fail-on info.
    let info = Img::clean(&["/app"], vec![exe("app", &static_hello())]).set("User", json!("0")).write("schema-info");
    assert_eq!(doctor_json(&info, &["--fail-on", "warn"]).1.code(), Some(0));
    assert_eq!(doctor_json(&info, &["--fail-on", "info"]).1.code(), Some(1));
    // Usage errors are 2; an unreadable image is 1 with the error prefix.
    assert_eq!(pinnace(&["doctor", &warn, "--fail-on", "fatal"]).code(), Some(2));
    assert_eq!(pinnace(&["doctor"]).code(), Some(2));
    let missing = pinnace(&["doctor", "oci:/nonexistent/layout:t"]);
    assert_eq!(missing.code(), Some(1));
    assert!(missing.stderr.contains("pinnace: error:"), "{}", missing.stderr);
}
