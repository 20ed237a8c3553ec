//! `pinnace inspect` against the real dive 0.13.1 and umoci, on hand-built images with
//! known content and on an image podman builds; `--ci` gates, `.dive-ci`, `pinnace.toml`,
//! the `--json` schema, `--tree`, damaged layers.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tar::EntryType::{self, Directory, Link, Regular, Symlink};

use crate::require;
use crate::util::{cmd, pinnace, pinnace_cmd, pinnace_fails, pinnace_ok, podman_lock, run, run_ok, tempdir};

/// One tar entry: path, type, mode, data (or link target for links).
type E<'a> = (&'a str, EntryType, u32, &'a [u8]);

fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, mode, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_mtime(0);
        match kind {
            Symlink | Link => {
                h.set_size(0);
                b.append_link(&mut h, path, std::str::from_utf8(data).unwrap()).unwrap();
            }
            _ => {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Writes an OCI layout (uncompressed layers) at `dir` tagged `t`, with one history entry
/// per layer and an empty-layer entry after each (as Dockerfile builds leave them).
fn oci_layout(dir: &Path, layers: &[Vec<u8>]) {
    let history: Vec<Value> = (0..layers.len())
        .flat_map(|i| {
            [json!({"created_by": format!("/bin/sh -c step {i}")}), json!({"created_by": "ENV x", "empty_layer": true})]
        })
        .collect();
    crate::util::write_oci_layout(
        dir,
        layers,
        json!({"architecture": "amd64", "os": "linux", "config": {}, "history": history}),
    );
}

/// Every case the issue names: added, overwritten, chmod-only, file whiteout, directory
/// whiteout, opaque whiteout, hard link, duplicates under two names, symlink.
fn known_layers() -> Vec<Vec<u8>> {
    let x500 = [b'x'; 500];
    vec![
        layer(&[
            ("etc/", Directory, 0o755, b""),
            ("etc/a", Regular, 0o644, &[1; 100]),
            ("etc/b", Regular, 0o644, &[2; 200]),
            ("bin/", Directory, 0o755, b""),
            ("bin/tool", Regular, 0o755, &[3; 300]),
            ("bin/tool2", Link, 0o755, b"bin/tool"),
            ("bin/sh", Symlink, 0o777, b"tool"),
            ("d/", Directory, 0o755, b""),
            ("d/x", Regular, 0o644, &[4; 50]),
            ("d/y", Regular, 0o644, &[5; 60]),
            ("o/", Directory, 0o755, b""),
            ("o/p", Regular, 0o644, &[6; 70]),
            ("dup1", Regular, 0o644, &x500),
        ]),
        layer(&[
            ("etc/", Directory, 0o755, b""),
            ("etc/a", Regular, 0o644, &[7; 120]),
            ("bin/", Directory, 0o755, b""),
            ("bin/tool", Regular, 0o700, &[3; 300]),
            (".wh.d", Regular, 0o644, b""),
            ("o/", Directory, 0o755, b""),
            ("o/.wh..wh..opq", Regular, 0o644, b""),
            ("o/q", Regular, 0o644, &[8; 10]),
            ("dup2", Regular, 0o644, &x500),
        ]),
        layer(&[
            ("etc/", Directory, 0o755, b""),
            ("etc/.wh.a", Regular, 0o644, b""),
            ("new", Regular, 0o600, &[9; 33]),
        ]),
    ]
}

/// dive's quirk: a whiteout of a path nothing has aborts the rest of that layer's count.
fn quirk_layers() -> Vec<Vec<u8>> {
    vec![
        layer(&[("a", Regular, 0o644, &[1; 10]), ("c", Regular, 0o644, &[1; 7])]),
        layer(&[(".wh.nothing", Regular, 0o644, b""), ("b", Regular, 0o644, &[2; 6]), ("c", Regular, 0o644, &[3; 7])]),
    ]
}

fn archive(dir: &Path, layers: &[Vec<u8>]) -> String {
    oci_layout(&dir.join("oci"), layers);
    let tar = dir.join("image.tar");
    pinnace_ok(&[
        "copy",
        "-q",
        &format!("oci:{}:t", dir.join("oci").display()),
        &format!("docker-archive:{}", tar.display()),
    ]);
    tar.display().to_string()
}

fn dive_json(tar: &str, dir: &Path) -> Value {
    let out = dir.join("dive.json");
    run_ok(cmd("dive").args(["--source", "docker-archive", tar, "--json"]).arg(&out));
    serde_json::from_slice(&fs::read(out).unwrap()).unwrap()
}

fn refs(v: &Value) -> BTreeSet<(String, u64, u64)> {
    v["image"]["fileReference"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["file"].as_str().unwrap().to_string(), r["count"].as_u64().unwrap(), r["sizeBytes"].as_u64().unwrap())
        })
        .collect()
}

fn compare_with_dive(layers: Vec<Vec<u8>>) -> (Value, Value) {
    let d = tempdir();
    let tar = archive(d.path(), &layers);
    compare_archive_with_dive(&tar, d.path())
}

/// dive's export of the docker archive `tar` against `--format dive-json`: image figures,
/// inefficient paths, and per layer the size, command and whole file list. Returns
/// pinnace's `--json` report and dive's export.
fn compare_archive_with_dive(tar: &str, d: &Path) -> (Value, Value) {
    let dive = dive_json(tar, d);
    let ours: Value = serde_json::from_str(
        &pinnace_ok(&["inspect", "--format", "dive-json", &format!("docker-archive:{tar}")]).stdout,
    )
    .unwrap();
    for k in ["sizeBytes", "inefficientBytes"] {
        assert_eq!(ours["image"][k], dive["image"][k], "image.{k}");
    }
    let (e1, e2) =
        (ours["image"]["efficiencyScore"].as_f64().unwrap(), dive["image"]["efficiencyScore"].as_f64().unwrap());
    assert!((e1 - e2).abs() < 1e-12, "efficiency {e1} vs dive {e2}");
    assert_eq!(refs(&ours), refs(&dive), "fileReference");
    let (ol, dl) = (ours["layer"].as_array().unwrap(), dive["layer"].as_array().unwrap());
    assert_eq!(ol.len(), dl.len());
    assert!(!dl[0]["fileList"].as_array().unwrap().is_empty(), "dive exported no file list");
    eprintln!("dive: {}", dive["image"]);
    for (o, dv) in ol.iter().zip(dl) {
        for k in ["index", "sizeBytes", "command", "fileList"] {
            assert_eq!(o[k], dv[k], "layer {} field {k}", o["index"]);
        }
    }
    let report: Value =
        serde_json::from_str(&pinnace_ok(&["inspect", "--json", &format!("docker-archive:{tar}")]).stdout).unwrap();
    (report, dive)
}

#[test]
fn known_content_matches_dive() {
    require!("dive");
    let (r, dive) = compare_with_dive(known_layers());
    assert!(dive["image"]["inefficientBytes"].as_u64().unwrap() > 0);
    // pinnace's own figures: etc/a twice overwritten (100 + 120), d/x + d/y deleted (110),
    // o/p hidden (70): stored, not shown. The first bin/tool (300), rewritten by a chmod,
    // is still shown by its hard link bin/tool2: not reclaimable.
    assert_eq!(r["reclaimable_bytes"], 100 + 120 + 110 + 70);
    assert_eq!(r["duplicates"][0]["paths"], json!(["/dup1", "/dup2"]));
    assert_eq!(r["duplicates"][0]["wasted"], 500);
    let l1 = &r["layers"][1];
    assert_eq!((l1["added"].as_u64(), l1["modified"].as_u64(), l1["removed"].as_u64()), (Some(2), Some(5), Some(2)));
    assert_eq!(l1["created_by"], "/bin/sh -c step 1");
}

#[test]
fn hard_link_keeps_a_deleted_target_and_matches_dive() {
    require!("dive");
    let big = [7u8; 1000];
    let layers = vec![
        layer(&[
            ("a", Regular, 0o644, &big),
            ("b", Link, 0o644, b"a"),
            ("c", Regular, 0o644, &[1; 10]),
            ("e", Regular, 0o644, &[2; 30]),
            ("f", Link, 0o644, b"e"),
        ]),
        // `a` deleted: its 1000 bytes are still shown as `b`. `e` and `f` both deleted.
        layer(&[(".wh.a", Regular, 0o644, b""), (".wh.e", Regular, 0o644, b""), (".wh.f", Regular, 0o644, b"")]),
    ];
    let (r, _) = compare_with_dive(layers);
    assert_eq!(r["reclaimable_bytes"], 30);
    assert_eq!(r["final_file_bytes"], 1010);
    assert_eq!(r["largest_files"][0], json!({"path": "/b", "size": 1000, "layer": 0}));
}

#[test]
fn missing_whiteout_quirk_matches_dive() {
    require!("dive");
    let (r, _) = compare_with_dive(quirk_layers());
    assert_eq!(r["warnings"][0], json!({"kind": "whiteout_missing", "layer": 1, "path": "/nothing"}));
}

#[test]
fn final_tree_matches_umoci_unpack() {
    require!("umoci");
    let d = tempdir();
    oci_layout(&d.path().join("oci"), &known_layers());
    run_ok(
        cmd("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:t", d.path().join("oci").display()))
            .arg(d.path().join("bundle")),
    );
    let rootfs = d.path().join("bundle/rootfs");
    let mut theirs = BTreeSet::new();
    for e in walk(&rootfs) {
        use std::os::unix::fs::PermissionsExt;
        let m = fs::symlink_metadata(&e).unwrap();
        let rel = format!("/{}", e.strip_prefix(&rootfs).unwrap().display());
        let link = fs::read_link(&e).ok().map(|p| p.display().to_string());
        let size = if m.is_file() { m.len() } else { 0 };
        theirs.insert((rel, size, m.permissions().mode() & 0o7777, link));
    }
    let r: pinnace::transport::ImageRef = format!("oci:{}:t", d.path().join("oci").display()).parse().unwrap();
    let src = pinnace::transport::open_source(&r).unwrap();
    let image = pinnace::transport::Image::open(src.as_ref(), None).unwrap();
    let i = pinnace::analyze::inspect::inspect(src.as_ref(), &image, &Default::default()).unwrap();
    let t = &i.tree;
    let ours: BTreeSet<_> = t
        .walk()
        .into_iter()
        .map(|id| {
            let m = t.meta(id);
            let link = (m.kind == pinnace::fs::NodeKind::Symlink).then(|| m.link.as_deref().unwrap().to_string());
            (t.path(id), m.size, m.mode, link)
        })
        .collect();
    assert_eq!(ours, theirs);
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
fn ci_rules_pass_fail_threshold_and_config() {
    let d = tempdir();
    let tar = archive(d.path(), &known_layers());
    let img = format!("docker-archive:{tar}");
    let r: Value = serde_json::from_str(&pinnace_ok(&["inspect", "--json", &img]).stdout).unwrap();
    let eff = r["efficiency"].as_f64().unwrap();
    let wasted = r["wasted_bytes"].as_u64().unwrap().to_string();
    // Equality passes (strict comparisons), one byte less fails.
    pinnace_ok(&[
        "inspect",
        &img,
        "--ci",
        "--lowestEfficiency",
        &format!("{eff}"),
        "--highestUserWastedPercent",
        "1",
        "--highestWastedBytes",
        &wasted,
    ]);
    let less = (wasted.parse::<u64>().unwrap() - 1).to_string();
    let o = pinnace_fails(&[
        "inspect",
        &img,
        "--ci",
        "--lowestEfficiency",
        "0",
        "--highestUserWastedPercent",
        "off",
        "--highestWastedBytes",
        &less,
    ]);
    assert_eq!(o.code(), Some(1));
    assert!(o.stdout.contains("FAIL  highestWastedBytes"), "{}", o.stdout);
    assert!(o.stdout.contains("SKIP  highestUserWastedPercent"), "{}", o.stdout);
    // Defaults (0.9 efficiency) fail on this wasteful image.
    assert_eq!(pinnace(&["inspect", &img, "--ci"]).code(), Some(1));
    // .dive-ci with dive's keys, comments and quotes; flags still override it.
    let cfg = d.path().join("dive-ci.yaml");
    fs::write(&cfg, "# gate\nrules:\n  lowestEfficiency: 0.1 # lenient\n  highestWastedBytes: \"1MB\"\n  highestUserWastedPercent: disabled\n  highestReclaimableBytes: 1KiB\n").unwrap();
    let c = cfg.display().to_string();
    pinnace_ok(&["inspect", &img, "--ci", "--ci-config", &c]);
    assert_eq!(
        pinnace(&["inspect", &img, "--ci", "--ci-config", &c, "--highestReclaimableBytes", "100"]).code(),
        Some(1)
    );
    // Misconfiguration is a failure too.
    fs::write(&cfg, "rules:\n  lowestEfficiency: 1.5\n").unwrap();
    assert_eq!(pinnace(&["inspect", &img, "--ci", "--ci-config", &c]).code(), Some(1));
    fs::write(&cfg, "rules:\n  lowestEficiency: 0.5\n").unwrap();
    assert!(pinnace_fails(&["inspect", &img, "--ci", "--ci-config", &c]).stderr.contains("unknown rule"));
}

#[test]
fn ci_rule_sources_and_their_precedence() {
    let d = tempdir();
    let tar = archive(d.path(), &known_layers());
    let img = format!("docker-archive:{tar}");
    let work = d.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let ci = |extra: &[&str]| {
        let o = run(pinnace_cmd().current_dir(&work).args(["inspect", &img, "--ci"]).args(extra));
        let line = |rule: &str| {
            o.stdout
                .lines()
                .find(|l| l.contains(rule))
                .unwrap_or_else(|| panic!("no {rule}:\n{}{}", o.stdout, o.stderr))
                .to_string()
        };
        (o.code(), line("lowestEfficiency"), line("highestWastedBytes"))
    };
    // ./.dive-ci alone.
    fs::write(work.join(".dive-ci"), "rules:\n  lowestEfficiency: 0.11\n  highestUserWastedPercent: off\n").unwrap();
    let (code, eff, wasted) = ci(&[]);
    assert_eq!(code, Some(0));
    assert!(eff.contains("PASS") && eff.ends_with("threshold=0.11"), "{eff}");
    assert!(wasted.contains("SKIP"), "{wasted}");
    // ./pinnace.toml [inspect.ci] overrides .dive-ci, key by key (kebab-case or camelCase);
    // the build spec beside it is not looked at.
    fs::write(
        work.join("pinnace.toml"),
        "binaries = [\"bin/app\"]\n[inspect.ci]\nlowest-efficiency = 0.12\nhighestWastedBytes = \"1MB\"\n",
    )
    .unwrap();
    let (code, eff, wasted) = ci(&[]);
    assert_eq!(code, Some(0));
    assert!(
        eff.ends_with("threshold=0.12") && wasted.contains("PASS") && wasted.ends_with("threshold=1000000"),
        "{eff}\n{wasted}"
    );
    // ... and `pinnace build -f pinnace.toml` reads the same file, leaving [inspect] alone.
    let spec = pinnace::build::BuildSpec::from_file(&work.join("pinnace.toml")).unwrap();
    assert_eq!(spec.binaries.len(), 1);
    // --config names another pinnace.toml.
    fs::write(d.path().join("other.toml"), "[inspect.ci]\nlowestEfficiency = 0.13\nhighest-wasted-bytes = 1\n")
        .unwrap();
    let other = d.path().join("other.toml").display().to_string();
    let (code, eff, wasted) = ci(&["--config", &other]);
    assert_eq!(code, Some(1));
    assert!(eff.ends_with("threshold=0.13") && wasted.contains("FAIL"), "{eff}\n{wasted}");
    // --ci-config FILE overrides pinnace.toml (and replaces ./.dive-ci); flags override all.
    fs::write(d.path().join("ci.yaml"), "rules:\n  lowestEfficiency: 0.14\n").unwrap();
    let ci_yaml = d.path().join("ci.yaml").display().to_string();
    let (_, eff, _) = ci(&["--ci-config", &ci_yaml]);
    assert!(eff.ends_with("threshold=0.14"), "{eff}");
    let (_, eff, _) = ci(&["--ci-config", &ci_yaml, "--lowest-efficiency", "0.15"]);
    assert!(eff.ends_with("threshold=0.15"), "{eff}");
    // Without ./.dive-ci, its highestUserWastedPercent: off no longer applies: --ci-config
    // replaced it, and the default 0.1 fails on this image.
    let o = run(pinnace_cmd().current_dir(&work).args(["inspect", &img, "--ci", "--ci-config", &ci_yaml]));
    assert!(o.stdout.contains("FAIL  highestUserWastedPercent"), "{}", o.stdout);
    // A typo in pinnace.toml is a misconfiguration, named with the file.
    fs::write(work.join("pinnace.toml"), "[inspect.ci]\nlowest-eficiency = 0.5\n").unwrap();
    let o = run(pinnace_cmd().current_dir(&work).args(["inspect", &img, "--ci"]));
    assert_eq!(o.code(), Some(1));
    assert!(o.stderr.contains("pinnace.toml [inspect.ci]") && o.stderr.contains("unknown rule"), "{}", o.stderr);
}

/// `podman rmi -f` on drop.
struct PodmanImages(Vec<String>);

impl Drop for PodmanImages {
    fn drop(&mut self) {
        for i in &self.0 {
            let _ = run(cmd("podman").args(["rmi", "-f", i]));
        }
    }
}

/// An image built by `podman build`: a base that passed through containers/storage (the
/// hand-built layers with whiteouts, an opaque directory and hard links, loaded into
/// podman) and five COPY layers that overwrite files, change only a mode, and add the
/// same content under other names. Saved by `podman save`, read by dive and pinnace.
#[test]
fn podman_built_image_matches_dive() {
    require!("dive", "podman");
    let d = tempdir();
    let pid = std::process::id();
    let (base, img) =
        (format!("localhost/pinnace-it-inspect-base:{pid}"), format!("localhost/pinnace-it-inspect:{pid}"));
    oci_layout(&d.path().join("oci"), &known_layers());
    let base_tar = d.path().join("base.tar");
    pinnace_ok(&[
        "copy",
        "-q",
        &format!("oci:{}:t", d.path().join("oci").display()),
        &format!("docker-archive:{}:{base}", base_tar.display()),
    ]);
    let ctx = d.path().join("ctx");
    let put = |p: &str, data: &[u8]| {
        let p = ctx.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    };
    put("a/f1", &[b'1'; 1000]);
    put("a/f2", &[b'2'; 2000]);
    put("a/sub/f3", &[b'3'; 300]);
    put("b/f1", &[b'4'; 1500]);
    put("b/f4", &[b'5'; 400]);
    put("dup/one", &[b'2'; 2000]);
    put("dup/two", &[b'2'; 2000]);
    put("etc/b", &[b'6'; 250]);
    put(
        "Containerfile",
        format!(
            "FROM {base}\nCOPY a/ /data/\nCOPY b/ /data/\nCOPY --chmod=600 a/f2 /data/f2\nCOPY dup/ /dup/\nCOPY etc/ /etc/\n"
        )
        .as_bytes(),
    );
    let tar = d.path().join("image.tar");
    {
        let _podman = podman_lock();
        let _cleanup = PodmanImages(vec![img.clone(), base.clone()]);
        run_ok(cmd("podman").args(["load", "-q", "-i"]).arg(&base_tar));
        run_ok(cmd("podman").args(["build", "-q", "--network", "none", "-t", &img]).arg(&ctx));
        run_ok(cmd("podman").args(["save", "--format", "docker-archive", "-o"]).arg(&tar).arg(&img));
    }
    let (r, dive) = compare_archive_with_dive(&tar.display().to_string(), d.path());
    assert_eq!(r["layer_count"], 8, "{}", r["layers"]);
    assert!(r["layers"][3]["created_by"].as_str().unwrap().contains("COPY"), "{}", r["layers"][3]);
    // Overwritten: data/f1 (1000), data/f2 (2000, mode only), etc/b (200), plus the base's
    // own (etc/a 100 + 120, d/ 110, o/p 70).
    assert_eq!(r["reclaimable_bytes"], 1000 + 2000 + 200 + 100 + 120 + 110 + 70);
    let dups: Vec<&Value> = r["duplicates"].as_array().unwrap().iter().filter(|g| g["size"] == 2000).collect();
    assert_eq!(dups[0]["paths"], json!(["/data/f2", "/dup/one", "/dup/two"]));
    assert!(dive["image"]["inefficientBytes"].as_u64().unwrap() >= 1000 + 1500 + 4000);
}

#[test]
fn json_schema_is_stable() {
    let d = tempdir();
    let tar = archive(d.path(), &known_layers());
    let r: Value =
        serde_json::from_str(&pinnace_ok(&["inspect", "--json", &format!("docker-archive:{tar}")]).stdout).unwrap();
    let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = [
        "schema_version",
        "image",
        "manifest_digest",
        "config_digest",
        "platform",
        "compressed_size",
        "uncompressed_size",
        "layer_count",
        "efficiency",
        "wasted_bytes",
        "user_wasted_percent",
        "dive_size_bytes",
        "reclaimable_bytes",
        "final_paths",
        "final_file_bytes",
        "layers",
        "top_wasted",
        "duplicates",
        "largest_files",
        "warnings",
    ]
    .into();
    assert_eq!(keys, want);
    assert_eq!(r["schema_version"], 1);
    let layer_keys: BTreeSet<&str> = r["layers"][0].as_object().unwrap().keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = [
        "index",
        "digest",
        "diff_id",
        "compressed_size",
        "uncompressed_size",
        "tar_size",
        "added",
        "modified",
        "removed",
        "created_by",
        "warnings",
    ]
    .into();
    assert_eq!(layer_keys, want);
}

#[test]
fn tree_views() {
    let d = tempdir();
    oci_layout(&d.path().join("oci"), &known_layers());
    let img = format!("oci:{}:t", d.path().join("oci").display());
    // The indented tree: guides, sizes, markers of the last layer.
    let o = pinnace_ok(&["inspect", &img, "--tree"]).stdout;
    let has = |o: &str, mark: char, tail: &str| o.lines().any(|l| l.starts_with(mark) && l.ends_with(tail));
    assert!(o.lines().next().unwrap().contains("TREE"), "{o}");
    assert!(has(&o, ' ', "├── bin") && has(&o, ' ', "│   ├── sh -> tool"), "{o}");
    assert!(has(&o, ' ', "│   └── tool2 => /bin/tool") && has(&o, 'A', "├── new"), "{o}");
    assert!(!o.contains("── x"), "removed /d/x shown in the final tree:\n{o}");
    // Layer 1's changes only: removed, modified and added paths under their parents.
    let o = pinnace_ok(&["inspect", &img, "--tree", "--layer", "1", "--changes"]).stdout;
    assert!(has(&o, 'R', "├── d") && has(&o, 'M', "│   └── a") && has(&o, 'A', "    └── q"), "{o}");
    // Filters keep the parents of what matches; --flat lists full paths.
    let args = ["inspect", &img, "--tree", "--path", "/bin/**", "--sort", "size", "--min-size", "100"];
    let o = pinnace_ok(&args).stdout;
    // What follows the size column ("600 B  ").
    let names =
        |o: &str| -> Vec<String> { o.lines().skip(1).map(|l| l.split_once("B  ").unwrap().1.to_string()).collect() };
    assert_eq!(names(&o), ["└── bin", "    ├── tool", "    └── tool2 => /bin/tool"], "{o}");
    let o = pinnace_ok(&[&args[..], &["--flat"]].concat()).stdout;
    assert_eq!(names(&o), ["/bin/tool", "/bin/tool2 => /bin/tool"], "{o}");
    let o = pinnace_ok(&["inspect", &img, "--tree", "--flat", "--layer", "1", "--changes"]).stdout;
    assert!(o.lines().any(|l| l.starts_with('R') && l.ends_with(" /d")), "{o}");
    let o = pinnace(&["inspect", &img, "--tree", "--sort", "age"]);
    assert!(o.code() == Some(2) && o.stderr.contains("possible values: name, size"), "{}", o.stderr);
}

#[test]
fn damaged_layers_name_the_layer() {
    let d = tempdir();
    let mut layers = known_layers();
    let good = layers[1].clone();
    layers[1].truncate(1200);
    oci_layout(&d.path().join("oci"), &layers);
    let img = format!("oci:{}:t", d.path().join("oci").display());
    let o = pinnace_fails(&["inspect", &img]);
    assert!(o.stderr.contains("layer 1 (sha256:"), "{}", o.stderr);
    // A blob whose content no longer matches its digest (flipped byte in file data).
    let d2 = tempdir();
    let mut layers = known_layers();
    oci_layout(&d2.path().join("oci"), &layers);
    let blob = d2.path().join("oci/blobs/sha256").join(&sha(&good)[7..]);
    layers[1][600] ^= 0xff;
    fs::write(&blob, &layers[1]).unwrap();
    let o = pinnace_fails(&["inspect", &format!("oci:{}:t", d2.path().join("oci").display())]);
    assert!(o.stderr.contains("layer 1 (sha256:") && o.stderr.contains("corrupt"), "{}", o.stderr);
}
