//! Helpers shared by every integration test: running the real `pinnace` binary and the
//! real tools, temp dirs, tool requirements, locks around podman/docker, and cleanup at
//! process exit.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

/// The captured result of a command.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: Vec<u8>,
}

impl Out {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// A command with stdin closed (podman and docker must never wait on a terminal).
pub fn cmd(program: &str) -> Command {
    let mut c = Command::new(program);
    c.stdin(Stdio::null());
    c
}

/// The `pinnace` binary under test.
pub fn pinnace_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pinnace"));
    c.stdin(Stdio::null());
    c
}

fn describe(c: &Command) -> String {
    let mut s = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `c` and captures everything.
pub fn run(c: &mut Command) -> Out {
    let o = c.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(c)));
    Out {
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        stdout_bytes: o.stdout,
    }
}

/// Runs `c` and panics with its output unless it succeeds.
pub fn run_ok(c: &mut Command) -> Out {
    let o = run(c);
    assert!(
        o.status.success(),
        "`{}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
        describe(c),
        o.status,
        o.stdout,
        o.stderr
    );
    o
}

/// Runs `pinnace ARGS`.
pub fn pinnace(args: &[&str]) -> Out {
    run(pinnace_cmd().args(args))
}

/// Runs `pinnace ARGS` and requires success.
pub fn pinnace_ok(args: &[&str]) -> Out {
    run_ok(pinnace_cmd().args(args))
}

/// Runs `pinnace ARGS` and requires exit code 1 with the `pinnace: error:` prefix.
pub fn pinnace_fails(args: &[&str]) -> Out {
    let o = pinnace(args);
    assert_eq!(o.code(), Some(1), "pinnace {args:?} should fail with 1:\nstdout:{}\nstderr:{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("pinnace: error:"), "no `pinnace: error:` in {:?}", o.stderr);
    o
}

fn is_ci() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

fn probe(tool: &str) -> bool {
    let args: &[&str] = match tool {
        // The CLI alone is not enough: the tests need the engine.
        "docker" => &["info", "--format", "{{.ServerVersion}}"],
        "gcc" | "tar" => &["--version"],
        // These spell it as a subcommand.
        "go" | "openssl" => &["version"],
        _ => &["--version"],
    };
    Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether every tool is usable. A missing tool fails the test under `CI=true`; outside
/// CI the test is skipped with a message (the caller returns).
pub fn require_tools(tools: &[&str]) -> bool {
    static CACHE: OnceLock<Mutex<std::collections::HashMap<String, bool>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    for t in tools {
        let ok = *lock(cache).entry(t.to_string()).or_insert_with(|| probe(t));
        if !ok {
            if is_ci() {
                panic!("required tool {t:?} is missing or not working (CI=true): run scripts/setup-test-tools.sh");
            }
            eprintln!("SKIPPED: tool {t:?} is missing or not working (run scripts/setup-test-tools.sh)");
            return false;
        }
    }
    true
}

/// Returns from the test (skipping it) unless every tool is usable; panics under CI.
#[macro_export]
macro_rules! require {
    ($($t:expr),+ $(,)?) => {
        if !$crate::util::require_tools(&[$($t),+]) {
            return;
        }
    };
}

/// Locks a mutex, ignoring poisoning (a failed test must not fail the others).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serialises podman use: every test image shares one image ID (the fixture's config),
/// so loads, runs and removals must not interleave.
pub fn podman_lock() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    lock(&M)
}

/// Serialises docker use (same reason as [`podman_lock`]).
pub fn docker_lock() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    lock(&M)
}

/// Where this test process keeps its files: `target/tmp/it-PID`, removed at exit.
pub fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("it-{}", std::process::id()));
        fs::create_dir_all(&p).unwrap();
        at_exit(Cleanup::Dir(p.clone()));
        p
    })
}

/// A temp dir for one test, removed when dropped (also on panic).
#[derive(Debug)]
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A fresh temp dir with a lowercase name (podman derives image names from paths).
pub fn tempdir() -> TestDir {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = scratch_root().join(format!("t{n}"));
    let _ = fs::remove_dir_all(&p);
    fs::create_dir_all(&p).unwrap();
    TestDir(p)
}

/// Something to undo when the test process exits.
#[derive(Debug, Clone)]
pub enum Cleanup {
    Dir(PathBuf),
    PodmanImage(String),
    DockerImage(String),
}

static CLEANUPS: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());

extern "C" fn run_cleanups() {
    let list = std::mem::take(&mut *lock(&CLEANUPS));
    for c in list.into_iter().rev() {
        let quiet = |c: &mut Command| {
            let _ = c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
        };
        match c {
            Cleanup::Dir(p) => {
                let _ = fs::remove_dir_all(p);
            }
            Cleanup::PodmanImage(i) => quiet(Command::new("podman").args(["rmi", "-f", &i])),
            Cleanup::DockerImage(i) => quiet(Command::new("docker").args(["rmi", "-f", &i])),
        }
    }
}

/// Registers `c` to run when the process exits (after the test harness is done).
pub fn at_exit(c: Cleanup) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registering a plain extern "C" function with no arguments.
        unsafe {
            libc::atexit(run_cleanups);
        }
    });
    lock(&CLEANUPS).push(c);
}

/// sha256 hex of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `sha256:` + hex of a file's content.
pub fn file_digest(p: &Path) -> String {
    let mut f = fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Every path under `root` (relative, sorted), recursively, without following links.
pub fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(root).unwrap().to_path_buf());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Runs `f` on another thread and fails if it takes longer than `limit` (a hang).
pub fn within<T: Send + 'static>(limit: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("{what}: still running after {limit:?} (hang)"),
    }
}

/// A fast deterministic generator (xorshift64*) for bulk test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let v = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&v[..n]);
    }
}

/// Writes a hand-built OCI layout at `dir` tagged `t`, with the given uncompressed layer
/// tars and `config` (any JSON object; its `rootfs` is filled in from the layers). Returns
/// the reference `oci:DIR:t`. Crafted single images with plain layers go through this one
/// writer; `registry/images.rs` writes the gzip-layer images and indexes the registry
/// tests need.
pub fn write_oci_layout(dir: &Path, layers: &[Vec<u8>], mut config: serde_json::Value) -> String {
    use serde_json::json;
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |b: &[u8]| {
        let d = format!("sha256:{}", sha256_hex(b));
        fs::write(dir.join("blobs/sha256").join(&d[7..]), b).unwrap();
        d
    };
    let diff_ids: Vec<String> = layers.iter().map(|l| put(l)).collect();
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    let config = serde_json::to_vec(&config).unwrap();
    let cd = put(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": layers.iter().zip(&diff_ids).map(|(l, d)| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": l.len()})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let md = put(&manifest);
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "t"}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    format!("oci:{}:t", dir.display())
}
