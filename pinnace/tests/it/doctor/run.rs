//! `--run` under podman: a program that ignores SIGTERM (killed after the stop timeout,
//! exit status 137), one that handles it (exits at once), one that fails at start-up
//! (exit status 3, its output in the message), a job that exits 0, and one that cannot
//! start at all.

use std::time::Instant;

use serde_json::Value;

use super::{doctor_json, exe, gcc, host_ok, ids, with_id, Img};
use crate::util::{cmd, podman_lock, require_tools, run};

const IGNORES: &str = "#include <signal.h>\n#include <unistd.h>\n\
int main(void) { signal(SIGTERM, SIG_IGN); for (;;) sleep(1); }\n";
const HANDLES: &str = "#include <signal.h>\n#include <unistd.h>\n\
static void on_term(int s) { (void)s; _exit(0); }\n\
int main(void) { signal(SIGTERM, on_term); for (;;) pause(); }\n";
const FAILS: &str = "#include <stdio.h>\nint main(void) { puts(\"cannot open /config.yaml\"); return 3; }\n";

fn image(name: &str, source: &str) -> String {
    let prog = gcc(name, source, &["-static", "-s", "-O2"]);
    Img::clean(&["/app"], vec![exe("app", &std::fs::read(prog).unwrap())]).write(&format!("run-{name}"))
}

/// `doctor --json --run` with a short wait and stop timeout (4 s instead of 10 s, so the
/// suite stays quick; the logic is the same).
fn doctor_run(r: &str) -> Value {
    doctor_json(r, &["--run", "--run-wait", "1", "--stop-timeout", "4"]).0
}

/// No container or image of ours is left behind.
fn nothing_left() {
    let ps = run(cmd("podman").args(["ps", "-a", "--format", "{{.Names}}"]));
    assert!(!ps.stdout.contains(&format!("pinnace-doctor-{}-", std::process::id())), "{}", ps.stdout);
    let images = run(cmd("podman").args(["images", "--format", "{{.Repository}}"]));
    assert!(!images.stdout.contains(&format!("pinnace-doctor-{}-", std::process::id())), "{}", images.stdout);
}

#[test]
fn run_watches_start_exit_and_sigterm() {
    if !host_ok() || !require_tools(&["podman"]) {
        return;
    }
    let (ignores, handles, fails) =
        (image("ignores-term", IGNORES), image("handles-term", HANDLES), image("fails", FAILS));
    let _p = podman_lock();

    let start = Instant::now();
    let v = doctor_run(&ignores);
    let took = start.elapsed();
    assert!(ids(&v).contains("run-stays-up"), "{:#}", v["findings"]);
    let f = with_id(&v, "run-ignores-sigterm");
    assert_eq!(f.len(), 1, "{:#}", v["findings"]);
    assert_eq!(f[0]["severity"], "warn");
    assert_eq!(v["run"]["stop_exit_code"], 137, "{:#}", v["run"]);
    assert!(v["run"]["stop_seconds"].as_f64().unwrap() >= 3.5, "{:#}", v["run"]);
    assert!(took.as_secs() < 60, "{took:?}");

    let v = doctor_run(&handles);
    assert!(ids(&v).contains("run-stops-on-sigterm"), "{:#}", v["findings"]);
    assert!(!ids(&v).contains("run-ignores-sigterm"));
    assert_eq!(v["run"]["stop_exit_code"], 0, "{:#}", v["run"]);
    assert!(v["run"]["stop_seconds"].as_f64().unwrap() < 3.0, "{:#}", v["run"]);

    let (v, o) = doctor_json(&fails, &["--run", "--run-wait", "2"]);
    let f = with_id(&v, "run-exited-nonzero");
    assert_eq!(f.len(), 1, "{:#}", v["findings"]);
    assert!(
        f[0]["message"].as_str().unwrap().contains("status 3")
            && f[0]["message"].as_str().unwrap().contains("cannot open /config.yaml"),
        "{f:#?}"
    );
    assert_eq!(o.code(), Some(1));
    assert_eq!(v["run"]["exit_code"], 3);

    // A job: it runs to completion with status 0.
    let job = Img::clean(&["/app"], vec![exe("app", &super::static_hello())]).write("run-job");
    let (v, o) = doctor_json(&job, &["--run", "--run-wait", "2"]);
    assert!(ids(&v).contains("run-exited-0"), "{:#}", v["findings"]);
    assert_eq!((o.code(), v["run"]["exit_code"].as_i64()), (Some(0), Some(0)));

    // A missing entrypoint: doctor says so statically, and podman refuses to start it.
    let missing = Img::clean(&["/nope"], vec![]).write("run-missing");
    let (v, _) = doctor_json(&missing, &["--run", "--run-wait", "1"]);
    assert!(ids(&v).contains("entrypoint-missing") && ids(&v).contains("run-start-failed"), "{:#}", v["findings"]);
    assert_eq!(v["run"]["started"], false);
    nothing_left();
}
