//! One `pinnace slim` run, end to end: open and unpack the source, run it traced under
//! the probes, compute the keep-set, rebuild, verify with a real runtime, and write the
//! destinations only when every probe agrees (or `force`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::keep::{self, KeepOptions, KeepSet, Reason};
use super::probe::{self, CompareMode, Probe, ProbeDiff, ProbeOptions, ProbeOutcome, ProbeTarget};
use super::rebuild::{self, RebuildOptions, SlimImage};
use super::sandbox::{self, Sandbox, SandboxSpec};
use super::trace::{Access, AccessKind, Trace};
use super::unpack::{self, Unpacked};
use super::verify::{self, ContainerSpec, Runtime};
use crate::copy::{copy_image, CopyOptions, CopyReport};
use crate::fs::{FsTree, NodeId, NodeKind};
use crate::oci::{Digest, Platform};
use crate::transport::{self, Image, ImageRef};
use std::collections::HashSet;

/// What a slim run is asked to do.
#[derive(Debug, Clone, Default)]
pub struct SlimOptions {
    /// The image to slim.
    pub source: Option<ImageRef>,
    /// Where the slim image goes (written only when every probe agrees, or with `force`).
    pub destinations: Vec<ImageRef>,
    /// Platform to pick from an index (must be the host's: the image is run here).
    pub platform: Option<Platform>,
    /// Probes; none means [`probe::default_probes`].
    pub probes: Vec<Probe>,
    /// Probe timeouts.
    pub probe_options: ProbeOptions,
    /// How strictly the two runs are compared.
    pub compare: CompareMode,
    /// Signal that stops the app (default: the image's `StopSignal`, else SIGTERM).
    pub stop_signal: Option<String>,
    /// What to keep besides the trace.
    pub keep: KeepOptions,
    /// One layer per contributing source layer instead of one layer.
    pub split_layers: bool,
    /// Write the destinations even when probes disagree.
    pub force: bool,
    /// Runtime for verification (`None`: docker if it answers, else podman).
    pub runtime: Option<Runtime>,
    /// Progress bars when copying to the destinations.
    pub progress: bool,
}

/// Sizes of one image.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    /// Manifest digest.
    pub digest: Digest,
    /// Stored size of the layers and config (compressed or not, as the store keeps them).
    pub compressed: u64,
    /// Bytes of file content in the final filesystem.
    pub file_bytes: u64,
    /// Regular files in the final filesystem.
    pub files: usize,
}

/// One probe, on both images.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The original's answer (in the traced sandbox).
    pub original: ProbeOutcome,
    /// The slim image's answer (in the verifying runtime).
    pub slim: Option<ProbeOutcome>,
    /// Whether the two agree under the comparison mode.
    pub agree: bool,
}

/// A kept path and why.
#[derive(Debug, Clone, Serialize)]
pub struct KeptPath {
    /// Path inside the image.
    pub path: String,
    /// Why it is kept.
    pub reason: Reason,
}

/// What a slim run did.
#[derive(Debug, Clone, Serialize)]
pub struct SlimReport {
    /// The source reference.
    pub source: String,
    /// The original image.
    pub original: Sizes,
    /// The slim image.
    pub slim: Sizes,
    /// original.file_bytes / slim.file_bytes: the content of each final filesystem
    /// (stored sizes are not comparable when the source keeps its layers uncompressed).
    pub ratio: f64,
    /// Regular files removed.
    pub files_removed: usize,
    /// Bytes of file content removed.
    pub bytes_removed: u64,
    /// The probes and their verdicts.
    pub probes: Vec<ProbeReport>,
    /// Which probes ran when none were given, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_probes: Option<String>,
    /// What ran the slim image for verification.
    pub verified_with: String,
    /// Whether every probe agreed.
    pub verified: bool,
    /// What the tracer saw.
    pub trace: TraceSummary,
    /// What the fanotify witness saw, and where it disagrees with the tracer.
    pub witness: WitnessReport,
    /// Every kept path and why, sorted by path.
    pub kept: Vec<KeptPath>,
    /// Warnings (unpack, keep-set).
    pub warnings: Vec<String>,
    /// One copy report per destination.
    pub destinations: Vec<CopyReport>,
    /// Seconds spent: unpack, traced run, rebuild, verify, total.
    pub seconds: Timings,
}

/// Tracer figures.
#[derive(Debug, Clone, Serialize)]
pub struct TraceSummary {
    /// Processes and threads traced.
    pub tasks: u32,
    /// Syscall stops handled.
    pub events: u64,
    /// Distinct path accesses.
    pub accesses: usize,
}

/// The fanotify witness against the tracer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WitnessReport {
    /// Whether fanotify watched the run.
    pub available: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Files it saw opened.
    pub opened: usize,
    /// Files it saw opened that no traced path names. Expected: what the kernel opens
    /// itself (ELF interpreters, `#!` interpreters), which the keep-set's ELF and shebang
    /// rules cover.
    pub only_witness: Vec<String>,
    /// Of those, the files the keep-set would have dropped: the two witnesses disagree
    /// on these, and they are kept.
    pub added: Vec<String>,
}

/// Compares what fanotify saw opened with the tracer's paths and the keep-set.
fn witness_check(tree: &FsTree, trace: &Trace, keep: &KeepSet) -> WitnessReport {
    let w = &trace.witness;
    let named: HashSet<NodeId> =
        trace.accesses.iter().filter_map(|a| keep::walk(tree, &a.path, a.follow_last).found).collect();
    let mut r = WitnessReport {
        available: w.available,
        unavailable: w.unavailable.clone(),
        opened: w.opened.len(),
        ..Default::default()
    };
    for p in &w.opened {
        let Some(n) = keep::walk(tree, p, false).found else { continue };
        if tree.meta(n).kind == NodeKind::Dir || named.contains(&n) {
            continue;
        }
        r.only_witness.push(p.clone());
        if !keep.contains(n) {
            r.added.push(p.clone());
        }
    }
    r
}

/// Where the time went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Unpacking the source.
    pub unpack: f64,
    /// The traced run under the probes.
    pub trace: f64,
    /// Keep-set and rebuild.
    pub rebuild: f64,
    /// The verification run.
    pub verify: f64,
    /// Everything.
    pub total: f64,
}

/// Why a slim run failed. Nothing is written at any destination in every case.
#[derive(Debug, thiserror::Error)]
pub enum SlimError {
    /// Bad options.
    #[error("{0}")]
    Usage(String),
    /// Reading the source or writing a destination failed.
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    /// Unpacking failed.
    #[error(transparent)]
    Unpack(#[from] unpack::UnpackError),
    /// The sandbox failed.
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    /// A probe could not run (the app exited, ...).
    #[error(transparent)]
    Probe(#[from] probe::ProbeError),
    /// The keep-set could not be computed.
    #[error(transparent)]
    Keep(#[from] keep::KeepError),
    /// Rebuilding failed.
    #[error(transparent)]
    Rebuild(#[from] rebuild::RebuildError),
    /// Verification could not run.
    #[error(transparent)]
    Verify(#[from] verify::VerifyError),
    /// The image is for another architecture than this machine's.
    #[error("the image is for {image}, this machine runs {host}: slim runs the image, so it must be slimmed on a {image} machine")]
    Platform {
        /// The image's platform.
        image: String,
        /// This machine's.
        host: String,
    },
    /// A probe already fails on the original image.
    #[error("nothing to preserve: {} already fail{} on the original image:\n{}\nthe app's last log lines:\n{log}",
        if failed.len() == 1 { "a probe" } else { "probes" }, if failed.len() == 1 { "s" } else { "" },
        failed.iter().map(|o| format!("  {}: {}", o.probe, o.summary())).collect::<Vec<_>>().join("\n"))]
    NothingToPreserve {
        /// The failing outcomes.
        failed: Vec<ProbeOutcome>,
        /// The app's last log lines.
        log: String,
    },
    /// The slim image does not answer the probes as the original did.
    #[error("the slim image does not behave like the original; nothing was written (use --force to write it anyway):\n{}{}",
        diffs.iter().map(|d| format!("  {}: original {} / slim {} ({})\n", d.probe, d.original, d.slim, d.why)).collect::<String>(),
        missing_text(missing))]
    Disagree {
        /// The probes that differ.
        diffs: Vec<ProbeDiff>,
        /// Paths the slim run looked for that the original has.
        missing: Vec<String>,
        /// The report of the run (for `--report`).
        report: Box<SlimReport>,
    },
    /// Ctrl-C.
    #[error("interrupted: the sandbox was stopped and its directory removed; nothing was written")]
    Interrupted,
}

fn missing_text(missing: &[String]) -> String {
    if missing.is_empty() {
        return "the slim run looked for no file the original has; if the difference is in dynamic content (times, ids), try --probe-compare status".into();
    }
    let shown: Vec<&String> = missing.iter().take(20).collect();
    format!(
        "files the slim image lacks that the slim run looked for:\n{}\nto keep them: {}",
        shown.iter().map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n"),
        shown.iter().map(|m| format!("--include {m}")).collect::<Vec<_>>().join(" ")
    )
}

/// The image config's run settings.
struct RunConfig {
    argv: Vec<String>,
    env: Vec<String>,
    user: String,
    workdir: String,
    ports: Vec<u16>,
    stop_signal: Option<String>,
}

fn run_config(image: &Image) -> RunConfig {
    let c: Value = serde_json::from_slice(&image.config.bytes).unwrap_or(Value::Null);
    let cfg = &c["config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let mut argv = strings(&cfg["Entrypoint"]);
    argv.extend(strings(&cfg["Cmd"]));
    let mut ports: Vec<u16> = cfg["ExposedPorts"]
        .as_object()
        .map(|o| o.keys().filter(|k| !k.ends_with("/udp")).filter_map(|k| k.split('/').next()?.parse().ok()).collect())
        .unwrap_or_default();
    ports.sort_unstable();
    ports.dedup();
    RunConfig {
        argv,
        env: strings(&cfg["Env"]),
        user: cfg["User"].as_str().unwrap_or("").to_string(),
        workdir: cfg["WorkingDir"].as_str().filter(|w| !w.is_empty()).unwrap_or("/").to_string(),
        ports,
        stop_signal: cfg["StopSignal"].as_str().map(str::to_string),
    }
}

/// `USER[:GROUP]` (names or ids) resolved the way runtimes do, against the image's
/// `/etc/passwd` and `/etc/group`: (uid, gid, supplementary groups, home).
pub(crate) fn resolve_user(root: &Path, user: &str) -> Result<(u32, u32, Vec<u32>, String), SlimError> {
    let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_default();
    let passwd = read("etc/passwd");
    let group = read("etc/group");
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && (f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u)));
    let uid: u32 = match (u.parse(), &entry) {
        (Ok(n), _) => n,
        (Err(_), Some(f)) => f[2].parse().unwrap_or(0),
        (Err(_), None) => return Err(SlimError::Usage(format!("user {u:?} is not in the image's /etc/passwd"))),
    };
    let name = entry.as_ref().map(|f| f[0].to_string());
    let home = entry.as_ref().map(|f| f[5].to_string()).unwrap_or_else(|| "/".into());
    let gid: u32 = match g {
        Some(g) => match g.parse() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| SlimError::Usage(format!("group {g:?} is not in the image's /etc/group")))?,
        },
        None => entry.as_ref().and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    let mut groups = vec![gid];
    if let Some(name) = name {
        for f in group.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse::<u32>() {
                    if !groups.contains(&n) {
                        groups.push(n);
                    }
                }
            }
        }
    }
    Ok((uid, gid, groups, home))
}

/// A signal by name (`SIGTERM`, `TERM`) or number.
pub fn parse_signal(s: &str) -> Result<i32, SlimError> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    Ok(match name.as_str() {
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "HUP" => libc::SIGHUP,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "WINCH" => libc::SIGWINCH,
        _ => return Err(SlimError::Usage(format!("unknown signal {s:?}"))),
    })
}

/// The sandbox spec for running `root` with the image's config.
fn sandbox_spec(root: &Path, rc: &RunConfig, trace: bool) -> Result<SandboxSpec, SlimError> {
    let (uid, gid, groups, home) = resolve_user(root, &rc.user)?;
    let mut env = rc.env.clone();
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k));
    if !has(&env, "PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    let hostname = "pinnace-slim".to_string();
    if !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={hostname}"));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={home}"));
    }
    Ok(SandboxSpec {
        lower: root.to_path_buf(),
        env,
        uid,
        gid,
        groups,
        cwd: rc.workdir.clone(),
        hostname,
        trace,
        witness: trace,
    })
}

/// Runs `probes` against the image unpacked at `root` in a sandbox (traced or not);
/// returns the outcomes and the trace.
fn sandbox_run(
    root: &Path,
    work: &Path,
    rc: &RunConfig,
    probes: &[Probe],
    opts: &SlimOptions,
    trace: bool,
) -> Result<(Vec<ProbeOutcome>, Trace, String), SlimError> {
    let spec = sandbox_spec(root, rc, trace)?;
    let sb = Sandbox::start(&spec, work, &rc.argv)?;
    let outcomes = probe::run_probes(&sb, probes, &opts.probe_options);
    if sandbox::interrupted() {
        return Err(SlimError::Interrupted);
    }
    let log = sb.log_tail(20);
    let signal = parse_signal(opts.stop_signal.as_deref().or(rc.stop_signal.as_deref()).unwrap_or("SIGTERM"))?;
    let outcomes = outcomes?;
    let t = sb.stop(signal, Duration::from_secs(10))?;
    Ok((outcomes, t, log))
}

/// A thread joined when dropped (so it ends before the work directory's own removal).
struct Background(Option<std::thread::JoinHandle<()>>);

impl Background {
    fn spawn(f: impl FnOnce() + Send + 'static) -> Background {
        Background(Some(std::thread::spawn(f)))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// Leftover work directories of slim runs whose pinnace is gone (killed with SIGKILL:
/// the sandbox died with it, its directory did not).
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("pinnace-slim-")) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Slims `opts.source` (see the module docs).
pub fn slim(opts: &SlimOptions) -> Result<SlimReport, SlimError> {
    let started = Instant::now();
    let mut t = Timings::default();
    let source = opts.source.as_ref().ok_or_else(|| SlimError::Usage("no source image".into()))?;
    if opts.destinations.is_empty() {
        return Err(SlimError::Usage("no destination: give -t REF (e.g. -t oci:out/app:slim)".into()));
    }
    sandbox::catch_interrupts();
    let src = transport::open_source(source)?;
    let image = Image::open(src.as_ref(), opts.platform.as_ref())?;
    let (ip, host) = (image.platform(), Platform::host());
    if ip.os != host.os || ip.architecture != host.architecture {
        return Err(SlimError::Platform { image: ip.to_string(), host: host.to_string() });
    }
    let tmp_parent = std::env::temp_dir();
    sweep_stale(&tmp_parent);
    let work = tempfile::Builder::new()
        .prefix(&format!("pinnace-slim-{}-", std::process::id()))
        .tempdir_in(&tmp_parent)
        .map_err(|e| SlimError::Usage(format!("creating a work directory in {}: {e}", tmp_parent.display())))?;
    let root = work.path().join("rootfs");
    std::fs::create_dir(&root).map_err(|e| SlimError::Usage(format!("{}: {e}", root.display())))?;
    let unpacked = unpack::unpack(src.as_ref(), &image, &root)?;
    if sandbox::interrupted() {
        return Err(SlimError::Interrupted);
    }
    t.unpack = started.elapsed().as_secs_f64();
    let rc = run_config(&image);
    if rc.argv.is_empty() {
        return Err(SlimError::Usage("the image has no entrypoint and no cmd: nothing to run".into()));
    }
    let (probes, default_note) = if opts.probes.is_empty() {
        let (p, why) = probe::default_probes(&rc.ports);
        (p, Some(why))
    } else {
        (opts.probes.clone(), None)
    };

    // 1. The original, traced.
    let t0 = Instant::now();
    let (original, trace, log) = sandbox_run(&root, &work.path().join("run-original"), &rc, &probes, opts, true)?;
    let failed: Vec<ProbeOutcome> = original.iter().filter(|o| !o.ok()).cloned().collect();
    if !failed.is_empty() {
        return Err(SlimError::NothingToPreserve { failed, log });
    }
    t.trace = t0.elapsed().as_secs_f64();

    // 2. Keep-set and rebuild.
    let t0 = Instant::now();
    let mut keep_opts = opts.keep.clone();
    if keep_opts.path.is_empty() {
        keep_opts.path = rc.env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or_default().to_string();
    }
    let mut keep = keep::keep_set(&unpacked.tree, &root, &trace, &keep_opts)?;
    let witness = witness_check(&unpacked.tree, &trace, &keep);
    if !witness.added.is_empty() {
        // fanotify saw files opened that nothing else keeps: keep them, as traced.
        let mut merged = trace.clone();
        for p in &witness.added {
            merged.accesses.insert(Access { path: p.clone(), kind: AccessKind::Open, follow_last: false });
        }
        keep = keep::keep_set(&unpacked.tree, &root, &merged, &keep_opts)?;
    }
    let slim_img = rebuild::rebuild(
        src.as_ref(),
        &image,
        &unpacked,
        &keep,
        &RebuildOptions { split_by_source_layers: opts.split_layers, ..Default::default() },
    )?;
    t.rebuild = t0.elapsed().as_secs_f64();
    // The unpacked original is no longer read (the tree is in memory): remove it while
    // the runtime verifies, rather than after (thousands of files, seconds on ext4).
    let _removing = Background::spawn(move || {
        let _ = std::fs::remove_dir_all(&root);
    });

    // 3. Verify with a real runtime (or, without one, in the sandbox).
    let t0 = Instant::now();
    let (slim_run, verified_with) = verify_slim(&slim_img, &rc, &probes, opts, work.path())?;
    if sandbox::interrupted() {
        return Err(SlimError::Interrupted);
    }
    t.verify = t0.elapsed().as_secs_f64();
    let (slim_outcomes, diffs) = match slim_run {
        Ok(o) => {
            let d = probe::compare(&original, &o, opts.compare);
            (o, d)
        }
        // The slim image's app died under the probes: every probe is a difference.
        Err(e) => (
            Vec::new(),
            vec![ProbeDiff {
                probe: probes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                original: "every probe answered".into(),
                slim: e,
                why: "the slim image's app failed under the probes".into(),
            }],
        ),
    };
    let mut report = report(source, &image, &unpacked, &keep, &slim_img, &trace, original, slim_outcomes, &diffs);
    report.default_probes = default_note;
    report.witness = witness;
    report.verified_with = verified_with;
    report.verified = diffs.is_empty();
    if !diffs.is_empty() && !opts.force {
        // Trace the slim image too, to name the files it looked for and lacks.
        let missing = match diagnose(&slim_img, &rc, &probes, opts, work.path()) {
            Ok(trace2) => keep.missing_in(&unpacked.tree, &trace2),
            Err(_) => Vec::new(),
        };
        t.total = started.elapsed().as_secs_f64();
        report.seconds = t;
        return Err(SlimError::Disagree { diffs, missing, report: Box::new(report) });
    }

    // 4. Write.
    for d in &opts.destinations {
        let sink = transport::open_sink(d)?;
        report.destinations.push(copy_image(
            &slim_img,
            sink,
            &CopyOptions { progress: opts.progress, ..Default::default() },
        )?);
    }
    t.total = started.elapsed().as_secs_f64();
    report.seconds = t;
    Ok(report)
}

/// Runs the probes against the slim image: `Ok(Err(message))` when its app failed under
/// them (a verdict, not an error of slim's).
fn verify_slim(
    slim_img: &SlimImage,
    rc: &RunConfig,
    probes: &[Probe],
    opts: &SlimOptions,
    work: &Path,
) -> Result<(Result<Vec<ProbeOutcome>, String>, String), SlimError> {
    match opts.runtime.or_else(Runtime::detect) {
        Some(rt) => {
            let ports: Vec<u16> = probes.iter().filter_map(Probe::port).collect();
            let c = verify::RuntimeContainer::start(
                rt,
                slim_img,
                &ContainerSpec { ports, stop_signal: opts.stop_signal.clone().or(rc.stop_signal.clone()) },
            )?;
            let outcomes = probe::run_probes(&c, probes, &opts.probe_options).map_err(|e| e.to_string());
            Ok((outcomes, c.describe()))
        }
        None => {
            let root = unpack_slim(slim_img, work)?;
            let run = match sandbox_run(&root, &work.join("run-verify"), rc, probes, opts, false) {
                Ok((o, _, _)) => Ok(o),
                Err(SlimError::Probe(e)) => Err(e.to_string()),
                Err(e) => return Err(e),
            };
            Ok((run, "pinnace's sandbox (neither docker nor podman answered)".into()))
        }
    }
}

fn unpack_slim(slim_img: &SlimImage, work: &Path) -> Result<PathBuf, SlimError> {
    let root = work.join("rootfs-slim");
    if !root.exists() {
        std::fs::create_dir(&root).map_err(|e| SlimError::Usage(format!("{}: {e}", root.display())))?;
        let image = Image::open(slim_img, None)?;
        unpack::unpack(slim_img, &image, &root)?;
    }
    Ok(root)
}

/// Runs the slim image traced in the sandbox: what it looked for explains a failure.
fn diagnose(
    slim_img: &SlimImage,
    rc: &RunConfig,
    probes: &[Probe],
    opts: &SlimOptions,
    work: &Path,
) -> Result<Trace, SlimError> {
    let root = unpack_slim(slim_img, work)?;
    let spec = sandbox_spec(&root, rc, true)?;
    let sb = Sandbox::start(&spec, &work.join("run-diagnose"), &rc.argv)?;
    let _ = probe::run_probes(&sb, probes, &opts.probe_options);
    Ok(sb.stop(libc::SIGKILL, Duration::from_secs(1))?)
}

#[allow(clippy::too_many_arguments)]
fn report(
    source: &ImageRef,
    image: &Image,
    unpacked: &Unpacked,
    keep: &KeepSet,
    slim_img: &SlimImage,
    trace: &Trace,
    original: Vec<ProbeOutcome>,
    slim: Vec<ProbeOutcome>,
    diffs: &[ProbeDiff],
) -> SlimReport {
    let tree = &unpacked.tree;
    let mut kept: Vec<KeptPath> = keep
        .reasons()
        .iter()
        .map(|(id, r)| KeptPath { path: format!("/{}", tree.path(*id).trim_start_matches('/')), reason: r.clone() })
        .collect();
    kept.sort_by(|a, b| a.path.cmp(&b.path));
    let probes = original
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let agree = !diffs.iter().any(|d| d.probe == o.probe);
            ProbeReport { slim: slim.get(i).cloned(), original: o, agree }
        })
        .collect();
    let original = Sizes {
        digest: image.manifest.digest,
        compressed: image.compressed_size(),
        file_bytes: tree.file_bytes(),
        files: tree.files().len(),
    };
    let slim_sizes = Sizes {
        digest: slim_img.manifest_digest,
        compressed: slim_img.compressed_size,
        file_bytes: keep.kept_bytes(),
        files: keep.kept_files(),
    };
    let mut warnings = unpacked.warnings.clone();
    warnings.extend(keep.warnings().iter().cloned());
    SlimReport {
        source: source.to_string(),
        ratio: original.file_bytes as f64 / slim_sizes.file_bytes.max(1) as f64,
        original,
        slim: slim_sizes,
        files_removed: keep.removed_files(),
        bytes_removed: keep.removed_bytes(),
        probes,
        default_probes: None,
        verified_with: String::new(),
        verified: false,
        trace: TraceSummary { tasks: trace.tasks, events: trace.events, accesses: trace.accesses.len() },
        witness: WitnessReport::default(),
        kept,
        warnings,
        destinations: Vec::new(),
        seconds: Timings::default(),
    }
}
