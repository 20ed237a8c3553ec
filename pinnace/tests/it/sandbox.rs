//! The slim sandbox and tracer alone, through the hidden `pinnace __trace ROOT -- CMD`
//! (run CMD over an unpacked root in the sandbox, print the exit code, log and trace):
//! what the tracer records for each syscall family, that threads and children are
//! followed, that fanotify witnesses what the kernel opens itself, that the unpacked
//! root stays pristine, that nothing outside the work directory is written and the work
//! directory is removed, that the network is loopback only, and that the image's user
//! is used.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use serde_json::Value;

use crate::util::*;

/// A root made of host programs (dash, cat, rm, the test's probe) and their libraries,
/// laid out like a merged-/usr Debian. `probe` is compiled from `sandbox/probe.c`.
fn host_root(dir: &Path) {
    for d in ["usr/bin", "usr/lib/x86_64-linux-gnu", "usr/lib64", "etc", "data", "run", "tmp"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    symlink("usr/bin", dir.join("bin")).unwrap();
    symlink("usr/lib", dir.join("lib")).unwrap();
    symlink("usr/lib64", dir.join("lib64")).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/sandbox/probe.c");
    run_ok(cmd("gcc").args(["-O1", "-pthread", "-o"]).arg(dir.join("usr/bin/probe")).arg(&src));
    let mut libs = BTreeSet::new();
    for b in ["/bin/dash", "/bin/cat", "/bin/rm"] {
        fs::copy(b, dir.join("usr/bin").join(Path::new(b).file_name().unwrap())).unwrap();
    }
    let ldd = run_ok(cmd("ldd").args(["/bin/dash", "/bin/cat", "/bin/rm"]).arg(dir.join("usr/bin/probe")));
    for w in ldd.stdout.split_whitespace().filter(|w| w.starts_with('/') && w.contains(".so")) {
        libs.insert(w.to_string());
    }
    for l in libs {
        let name = Path::new(&l).file_name().unwrap();
        let to = if name.to_str().unwrap().starts_with("ld-linux") { "usr/lib64" } else { "usr/lib/x86_64-linux-gnu" };
        fs::copy(fs::canonicalize(&l).unwrap(), dir.join(to).join(name)).unwrap();
    }
    symlink("dash", dir.join("usr/bin/sh")).unwrap();
    fs::write(dir.join("etc/motd"), "hello from the image\n").unwrap();
    fs::write(dir.join("etc/only-stat"), "").unwrap();
    fs::write(dir.join("etc/acc"), "").unwrap();
    fs::write(dir.join("etc/at.txt"), "").unwrap();
    symlink("motd", dir.join("etc/link")).unwrap();
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    for f in ["rel.txt", "thread.txt", "child.txt", "unused.txt"] {
        fs::write(dir.join("data").join(f), f).unwrap();
    }
    fs::write(dir.join("data/script.sh"), "#!/bin/sh\ncat /etc/motd\n").unwrap();
    run_ok(cmd("chmod").args(["755"]).arg(dir.join("data/script.sh")));
}

/// Every path under `root` with its kind and content hash (what "unchanged" means).
fn snapshot(root: &Path) -> Vec<(String, String)> {
    tree(root)
        .into_iter()
        .map(|p| {
            let full = root.join(&p);
            let m = fs::symlink_metadata(&full).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&full).unwrap().display())
            } else if m.is_file() {
                file_digest(&full)
            } else {
                "dir".into()
            };
            (p.display().to_string(), what)
        })
        .collect()
}

fn trace_in(root: &Path, tmp: &Path, extra: &[&str], argv: &[&str]) -> Value {
    trace_with(None, root, tmp, extra, argv)
}

/// [`trace_in`] with the tracer's mode forced (`PINNACE_TRACER`).
fn trace_with(mode: Option<&str>, root: &Path, tmp: &Path, extra: &[&str], argv: &[&str]) -> Value {
    let mut c = pinnace_cmd();
    if let Some(m) = mode {
        c.env("PINNACE_TRACER", m);
    }
    c.env("TMPDIR", tmp).arg("__trace").arg(root).args(extra).arg("--").args(argv);
    let out = run_ok(&mut c);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn accesses(v: &Value) -> BTreeSet<(String, String, bool)> {
    v["trace"]["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["kind"].as_str().unwrap().to_string(),
                a["follow_last"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// A test's directory with the host root in `root` and an empty `tmp` (the TMPDIR the
/// sandbox's work directory goes to); `None` when the test cannot run here (not root).
fn fixture() -> Option<(TestDir, std::path::PathBuf, std::path::PathBuf)> {
    if !needs_root() {
        return None;
    }
    let d = tempdir();
    let root = d.path().join("root");
    host_root(&root);
    let tmp = d.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    Some((d, root, tmp))
}

fn needs_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: the slim sandbox needs root");
    }
    root || std::env::var("CI").is_ok_and(|v| v == "true")
}

#[test]
fn tracer_records_each_syscall_family_across_threads_children_and_exec() {
    records_each_syscall_family("notify");
}

/// The fallback for kernels without seccomp user notifications records the same.
#[test]
fn ptrace_tracer_records_each_syscall_family_across_threads_children_and_exec() {
    records_each_syscall_family("ptrace");
}

fn records_each_syscall_family(mode: &str) {
    crate::require!("gcc", "ldd");
    let Some((_d, root, tmp)) = fixture() else { return };
    let v = trace_with(Some(mode), &root, &tmp, &[], &["probe"]);
    assert_eq!(v["exit"], 0, "{v:#}");
    let log = v["log"].as_str().unwrap();
    assert!(log.contains("only-stat present") && log.contains("absent missing"), "{log}");
    assert!(log.contains("hello from the image"), "the script ran through its interpreter: {log}");
    let got = accesses(&v);
    let has = |p: &str, k: &str, f: bool| got.contains(&(p.to_string(), k.to_string(), f));
    for (p, k, f) in [
        ("/usr/bin/probe", "exec", true),
        ("/etc/only-stat", "stat", true),
        ("/etc/absent", "stat", true),
        ("/etc/link", "stat", false),
        ("/etc/acc", "access", true),
        ("/etc/link", "readlink", false),
        ("/data", "list_dir", true),
        ("/data", "chdir", true),
        ("/data/rel.txt", "open", true),
        ("/etc/at.txt", "open", true),
        ("/run/app.sock", "connect", true),
        ("/data/child.txt", "open", true),
        ("/data/thread.txt", "open", true),
        ("/data/made", "create", false),
        ("/data/made/new.txt", "create", true),
        ("/data/script.sh", "exec", true),
        ("/etc/motd", "open", true),
    ] {
        assert!(has(p, k, f), "no {k} of {p} (follow {f}) in the trace: {got:#?}");
    }
    assert!(!got.iter().any(|(p, _, _)| p.contains("unused")), "a file nobody touched is in the trace");
    assert!(!got.iter().any(|(p, _, _)| p.contains("pinnace-trace")), "the sandbox's own files leak into the trace");
    let tasks = v["trace"]["tasks"].as_u64().unwrap();
    if mode == "ptrace" {
        assert!(tasks >= 4, "init, probe, its child and its thread are traced: {tasks}");
    } else {
        // Counted by who stopped: the init installs no filter.
        assert!(tasks >= 3, "probe, its child and its thread stopped: {tasks}");
    }
    // fanotify sees what the kernel opened without a syscall: the script's interpreter.
    let w = &v["trace"]["witness"];
    assert_eq!(w["available"], true, "fanotify is available on this kernel: {w}");
    let opened: Vec<&str> = w["opened"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(opened.contains(&"/usr/bin/dash"), "{opened:?}");
    assert!(!has("/usr/bin/dash", "exec", true), "the tracer cannot see the kernel open the interpreter");
}

#[test]
fn sandbox_leaves_the_root_pristine_writes_nothing_outside_and_cleans_up() {
    crate::require!("gcc", "ldd");
    let Some((d, root, tmp)) = fixture() else { return };
    let before = snapshot(&root);
    let outside = snapshot(d.path());
    let v = trace_in(
        &root,
        &tmp,
        &[],
        &[
            "sh",
            "-c",
            "rm /etc/motd; echo changed > /etc/passwd; echo new > /tmp/new; cat /etc/motd; cat /proc/net/dev",
        ],
    );
    assert_eq!(v["exit"], 0, "{v:#}");
    let log = v["log"].as_str().unwrap();
    assert!(log.contains("/etc/motd: No such file"), "the removal is visible inside: {log}");
    // /proc/net/dev: two header lines, then one line per interface.
    let ifaces: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.starts_with(" face"))
        .skip(1)
        .filter_map(|l| Some(l.split_once(':')?.0.trim()))
        .collect();
    assert_eq!(ifaces, ["lo"], "loopback only:\n{log}");
    assert_eq!(snapshot(&root), before, "the unpacked root changed");
    assert_eq!(snapshot(d.path()), outside, "something was written outside the sandbox's work directory");
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0, "the work directory was not removed");
}

#[test]
fn sandbox_runs_as_the_images_user_in_its_workdir() {
    crate::require!("gcc", "ldd");
    let Some((_d, root, tmp)) = fixture() else { return };
    let v = trace_in(&root, &tmp, &["--user", "1000:1001", "--workdir", "/srv/app"], &["probe", "whoami"]);
    assert_eq!(v["exit"], 0, "{v:#}");
    assert_eq!(v["log"].as_str().unwrap().trim(), "1000:1001");
    // The tracer raises its own priority; the app keeps pinnace's.
    let v = trace_in(&root, &tmp, &[], &["probe", "nice"]);
    // SAFETY: getpriority has no preconditions.
    let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    assert_eq!(v["log"].as_str().unwrap().trim(), ours.to_string(), "{v:#}");
    let v = trace_in(&root, &tmp, &[], &["no-such-program"]);
    assert_eq!(v["exit"], 127, "{v:#}");
    assert!(v["log"].as_str().unwrap().contains("not found in $PATH"), "{v:#}");
}

#[test]
fn exec_probes_sent_right_after_the_app_all_run() {
    crate::require!("gcc", "ldd");
    let Some((_d, root, tmp)) = fixture() else { return };
    // The app and three probes are sent back to back: the init must serve every line
    // even when one read brings several.
    for _ in 0..3 {
        let v = trace_in(
            &root,
            &tmp,
            &["--seconds", "0", "--exec", "cat /etc/motd", "--exec", "probe whoami", "--exec", "cat /data/rel.txt"],
            &["sh", "-c", "while :; do cat /etc/motd >/dev/null; done"],
        );
        let execs = v["execs"].as_array().unwrap();
        let got: Vec<(i64, &str)> =
            execs.iter().map(|e| (e["code"].as_i64().unwrap(), e["stdout"].as_str().unwrap())).collect();
        assert_eq!(got, [(0, "hello from the image\n"), (0, "0:0\n"), (0, "rel.txt")], "{v:#}");
    }
}

#[test]
fn without_privileges_the_error_names_the_missing_capability() {
    crate::require!("gcc", "ldd", "setpriv");
    let Some((d, root, tmp)) = fixture() else { return };
    run_ok(cmd("chmod").args(["-R", "a+rwX"]).arg(d.path()));
    let mut c = cmd("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_pinnace"))
        .env("TMPDIR", &tmp)
        .arg("__trace")
        .arg(&root)
        .args(["--", "sh", "-c", "true"]);
    let o = run(&mut c);
    assert_eq!(o.code(), Some(1), "{o:?}");
    assert!(o.stderr.contains("CAP_SYS_ADMIN") && o.stderr.contains("CAP_SYS_PTRACE"), "{}", o.stderr);
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0, "the work directory was not removed");
}
