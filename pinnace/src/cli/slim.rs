//! `pinnace slim`: shrink an image by watching it work, then prove the result works.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use pinnace::oci::Platform;
use pinnace::slim::keep::KeepOptions;
use pinnace::slim::probe::{self, CompareMode, Probe};
use pinnace::slim::sandbox::{Sandbox, SandboxSpec};
use pinnace::slim::verify::Runtime;
use pinnace::slim::{SlimError, SlimOptions, SlimReport};
use pinnace::transport::ImageRef;

/// Arguments of `pinnace slim`.
#[derive(Debug, Args)]
#[command(after_help = "The image runs here in a sandbox (namespaces, overlayfs, pivot_root; needs root) under a \
seccomp filter that stops only its file syscalls (for a supervisor through seccomp user notifications; ptrace \
before Linux 5.5 or with PINNACE_TRACER=ptrace), while the probes exercise it. Everything it touched is kept, with the ELF closures, \
shebang interpreters, symlink chains and glibc's dlopen'ed modules of what it touched; everything else goes. \
The slim image is then run by docker (or podman) with the same probes, and the destinations are written only \
when every probe answers as it did on the original. Exec probes are split into words like a shell would, \
but not run by a shell (slim images have none).")]
pub struct SlimArgs {
    /// The image to slim (any transport: docker-daemon:, containers-storage:, oci:, oci-archive:, docker-archive:, docker://).
    pub source: String,
    /// Destination (repeatable), written only when every probe agrees.
    #[arg(short = 't', long = "tag", required = true)]
    pub tags: Vec<String>,
    /// HTTP probe: PORT:PATH[=EXPECTED] (GET; EXPECTED must be in the body). Repeatable.
    #[arg(long = "http-probe", value_name = "PORT:PATH[=EXPECTED]")]
    pub http_probes: Vec<String>,
    /// Exec probe: a command run inside the running container (not through a shell). Repeatable.
    #[arg(long = "exec-probe", value_name = "CMD")]
    pub exec_probes: Vec<String>,
    /// Let the app run this long (e.g. 20s) as a probe of its own.
    #[arg(long = "run-for", value_name = "DURATION")]
    pub run_for: Option<String>,
    /// A TOML file of probes ([[probe]] http = "8080:/" / exec = [..] / run_for = "5s").
    #[arg(long = "probes", value_name = "FILE")]
    pub probes_file: Option<PathBuf>,
    /// Signal that stops the app (default: the image's StopSignal, else SIGTERM).
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// How probe answers are compared: full (status/exit code and body/output hash) or status.
    #[arg(long = "probe-compare", default_value = "full")]
    pub probe_compare: String,
    /// Keep this path (with its subtree) or glob as well. Repeatable.
    #[arg(long = "include", value_name = "PATH|GLOB")]
    pub includes: Vec<String>,
    /// Keep /bin/sh and what it needs.
    #[arg(long = "include-shell")]
    pub include_shell: bool,
    /// Keep every file of this Debian package (from the image's dpkg database). Repeatable.
    #[arg(long = "keep-package", value_name = "NAME")]
    pub keep_packages: Vec<String>,
    /// One layer per source layer that still contributes files, instead of one layer.
    #[arg(long = "layers")]
    pub layers: bool,
    /// Write the destinations even when the probes disagree.
    #[arg(long)]
    pub force: bool,
    /// Runtime that verifies the slim image: docker or podman (default: docker if it answers, else podman).
    #[arg(long)]
    pub runtime: Option<String>,
    /// Platform to pick from an index (must be this machine's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Write the full report (probes, kept paths and why) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Debugging: remove this path (or glob) from the slim image whatever keeps it (to see verification fail).
    #[arg(long = "debug-exclude", hide = true)]
    pub debug_exclude: Vec<String>,
}

/// Runs `pinnace slim`.
pub fn run(a: SlimArgs) -> anyhow::Result<()> {
    let mut probes: Vec<Probe> = Vec::new();
    for h in &a.http_probes {
        probes.push(Probe::http(h)?);
    }
    for e in &a.exec_probes {
        probes.push(Probe::exec(e)?);
    }
    let mut probe_options = probe::ProbeOptions::default();
    if let Some(f) = &a.probes_file {
        let file = probe::ProbeFile::read(f)?;
        file.apply(&mut probe_options);
        probes.extend(file.probes);
    }
    if let Some(d) = &a.run_for {
        probes.push(Probe::run_for(d)?);
    }
    let compare: CompareMode = a.probe_compare.parse().map_err(anyhow::Error::msg)?;
    let runtime = match a.runtime.as_deref() {
        None => None,
        Some("docker") => Some(Runtime::Docker),
        Some("podman") => Some(Runtime::Podman),
        Some(r) => anyhow::bail!("--runtime {r}: expected docker or podman"),
    };
    let opts = SlimOptions {
        source: Some(a.source.parse::<ImageRef>()?),
        destinations: a.tags.iter().map(|t| t.parse::<ImageRef>()).collect::<Result<_, _>>()?,
        platform: a.platform.as_deref().map(str::parse::<Platform>).transpose()?,
        probes,
        probe_options,
        compare,
        stop_signal: a.stop_signal.clone(),
        keep: KeepOptions {
            includes: a.includes.clone(),
            include_shell: a.include_shell,
            keep_packages: a.keep_packages.clone(),
            debug_exclude: a.debug_exclude.clone(),
            ..Default::default()
        },
        split_layers: a.layers,
        force: a.force,
        runtime,
        progress: !a.quiet && !a.json,
    };
    let result = pinnace::slim::slim(&opts);
    let report = match &result {
        Ok(r) => Some(r),
        Err(SlimError::Disagree { report, .. }) => Some(report.as_ref()),
        Err(_) => None,
    };
    if let (Some(path), Some(r)) = (&a.report, report) {
        pinnace::blob::write_atomic(path, &serde_json::to_vec_pretty(r)?)
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    let report = result.with_context(|| format!("slimming {}", a.source))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !a.quiet {
        render(&report);
    }
    Ok(())
}

fn render(r: &SlimReport) {
    let h = super::human;
    println!(
        "{}: files {} -> {} ({:.1}x smaller), {} -> {} files ({} removed); stored {} -> {}",
        r.source,
        h(r.original.file_bytes),
        h(r.slim.file_bytes),
        r.ratio,
        r.original.files,
        r.slim.files,
        r.files_removed,
        h(r.original.compressed),
        h(r.slim.compressed),
    );
    if let Some(d) = &r.default_probes {
        println!("probes: {d}");
    }
    for p in &r.probes {
        println!(
            "  {} {}: original {} / slim {}",
            if p.agree { "ok  " } else { "DIFF" },
            p.original.probe,
            p.original.summary(),
            p.slim.as_ref().map_or("(not run)".into(), |s| s.summary())
        );
    }
    println!("verified with {}", r.verified_with);
    println!(
        "traced {} tasks, {} syscall stops, {} distinct paths; {:.1} s (unpack {:.1}, trace {:.1}, rebuild {:.1}, verify {:.1})",
        r.trace.tasks, r.trace.events, r.trace.accesses, r.seconds.total, r.seconds.unpack, r.seconds.trace, r.seconds.rebuild, r.seconds.verify
    );
    match (&r.witness.unavailable, r.witness.added.is_empty()) {
        (Some(why), _) => println!("witness: fanotify unavailable ({why})"),
        (None, true) => println!(
            "witness: fanotify saw {} files opened, {} of them named by no traced path (kernel-loaded interpreters), all kept anyway",
            r.witness.opened,
            r.witness.only_witness.len()
        ),
        (None, false) => println!(
            "witness: fanotify saw {} files opened that the tracer missed and the keep-set would have dropped; kept: {}",
            r.witness.added.len(),
            r.witness.added.join(", ")
        ),
    }
    let mut by_reason: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for k in &r.kept {
        let v = serde_json::to_value(&k.reason).unwrap_or_default();
        *by_reason.entry(v["rule"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    println!(
        "kept paths by reason: {}",
        by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    );
    for w in &r.warnings {
        println!("warning: {w}");
    }
    for d in &r.destinations {
        println!("wrote {} {}", d.destination, d.manifest_digest);
    }
}

/// Arguments of the hidden `__trace` command (a debugging aid and a test hook for the
/// sandbox alone): runs a command over an unpacked root, prints
/// `{"exit": CODE, "log": TEXT, "trace": TRACE}` as JSON.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// An unpacked root directory.
    pub root: PathBuf,
    /// Seconds to let the command run before it is stopped.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Working directory inside the root.
    #[arg(long, default_value = "/")]
    pub workdir: String,
    /// UID:GID to run as.
    #[arg(long, default_value = "0:0")]
    pub user: String,
    /// Run untraced (to measure what tracing costs).
    #[arg(long = "no-trace")]
    pub no_trace: bool,
    /// Trace without the fanotify witness (to measure what it costs).
    #[arg(long = "no-witness")]
    pub no_witness: bool,
    /// Exec probes to run next to the command, right after it starts (argv, split on spaces).
    #[arg(long = "exec")]
    pub execs: Vec<String>,
    /// The command.
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

/// Runs `__trace`.
pub fn trace(a: TraceArgs) -> anyhow::Result<()> {
    use pinnace::slim::probe::ProbeTarget;
    pinnace::slim::sandbox::catch_interrupts();
    let (uid, gid) = a.user.split_once(':').context("--user UID:GID")?;
    let (uid, gid): (u32, u32) = (uid.parse()?, gid.parse()?);
    let work = tempfile::Builder::new().prefix("pinnace-trace-").tempdir()?;
    let spec = SandboxSpec {
        lower: a.root.canonicalize()?,
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        uid,
        gid,
        groups: vec![gid],
        cwd: a.workdir.clone(),
        hostname: "pinnace".into(),
        trace: !a.no_trace,
        witness: !a.no_witness,
    };
    let started = std::time::Instant::now();
    let sb = Sandbox::start(&spec, &work.path().join("run"), &a.argv)?;
    let mut execs = Vec::new();
    for e in &a.execs {
        let argv: Vec<String> = e.split_whitespace().map(str::to_string).collect();
        let o = sb.exec(&argv, Duration::from_secs(10))?;
        execs.push(
            serde_json::json!({"code": o.code, "stdout": String::from_utf8_lossy(&o.stdout), "timed_out": o.timed_out}),
        );
    }
    let code = sb.wait_app_exit(Duration::from_secs(a.seconds));
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let log = sb.log_tail(200);
    let t = if a.no_trace {
        let _ = sb.stop(libc::SIGTERM, Duration::from_secs(2));
        Default::default()
    } else {
        sb.stop(libc::SIGTERM, Duration::from_secs(2))?
    };
    println!(
        "{}",
        serde_json::to_string_pretty(
            &serde_json::json!({"exit": code, "millis": millis, "log": log, "execs": execs, "trace": t})
        )?
    );
    Ok(())
}
