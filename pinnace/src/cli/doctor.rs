//! `pinnace doctor REF`: will this image run, and is it clean. One line per finding,
//! a summary, exit 1 at `--fail-on` (default: any error); `--json`; `--run`.

use std::time::Duration;

use anyhow::Context;
use clap::Args;

use pinnace::analyze::doctor::checks::help_table;
use pinnace::analyze::doctor::{doctor, DoctorOptions, Finding, Report, Severity};
use pinnace::oci::Platform;
use pinnace::transport::{open_source, Image, ImageRef};

fn after_help() -> String {
    format!(
        "Checks (severity, id, what it finds):\n{}\n\
         Exit status: 1 when a finding is at least as severe as --fail-on (default error), else 0.\n\
         --json: pinnace's report, schema_version 1 (see pinnace::analyze::doctor::Report).",
        help_table()
    )
}

/// Arguments of `pinnace doctor`.
#[derive(Debug, Args)]
#[command(after_help = after_help())]
pub struct DoctorArgs {
    /// Image reference (oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, containers-storage:NAME, ...).
    pub image: String,
    /// Print the report as JSON (schema_version 1).
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when any finding is at least this severe.
    #[arg(long, default_value = "error", value_parser = ["error", "warn", "info"])]
    pub fail_on: String,
    /// Also start the image with podman (docker when podman is missing) and watch it.
    #[arg(long)]
    pub run: bool,
    /// With --run: seconds the container must stay up to count as a service.
    #[arg(long, default_value_t = 3, value_name = "SECONDS")]
    pub run_wait: u64,
    /// With --run: seconds `stop` waits after SIGTERM before SIGKILL.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub stop_timeout: u64,
    /// Platform to pick from a multi-platform image (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
}

/// Examines the image and renders the findings.
pub fn run(a: DoctorArgs) -> anyhow::Result<()> {
    let level: Severity = a.fail_on.parse()?;
    let r: ImageRef = a.image.parse()?;
    let platform = a.platform.as_deref().map(str::parse::<Platform>).transpose()?;
    let src = open_source(&r)?;
    let image = Image::open(src.as_ref(), platform.as_ref())?;
    let opts = DoctorOptions {
        run: a.run,
        run_wait: Duration::from_secs(a.run_wait),
        stop_timeout: Duration::from_secs(a.stop_timeout),
        ..DoctorOptions::default()
    };
    let report = doctor(src.as_ref(), &image, &opts).with_context(|| format!("examining {r}"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if report.fails(level) {
        let n = report.findings.iter().filter(|f| f.severity >= level).count();
        anyhow::bail!("{n} finding(s) at or above {level} (--fail-on {level})");
    }
    Ok(())
}

/// Where a finding is: `path [layer N]`, `layer N`, or `image`.
fn location(f: &Finding) -> String {
    match (&f.path, f.layer) {
        (Some(p), Some(l)) => format!("{p} [layer {l}]"),
        (Some(p), None) => p.clone(),
        (None, Some(l)) => format!("layer {l}"),
        (None, None) => "image".to_string(),
    }
}

fn print_report(r: &Report) {
    let w = r.findings.iter().map(|f| f.id.len()).max().unwrap_or(0);
    for f in &r.findings {
        println!("{:<5}  {:<w$}  {}: {}; fix: {}", f.severity.to_string(), f.id, location(f), f.message, f.fix);
    }
    if !r.findings.is_empty() {
        println!();
    }
    let command = if r.command.is_empty() { "(none)".to_string() } else { r.command.join(" ") };
    println!("{}  {}/{}  command: {command}", r.image, r.platform.os, r.platform.architecture);
    if let Some(run) = &r.run {
        let how = match (run.state.as_str(), run.exit_code, run.stop_seconds) {
            ("exited", Some(c), _) => format!("exited with status {c}"),
            ("running", _, Some(s)) => {
                format!("stayed up; stopped in {s:.1}s with status {}", run.stop_exit_code.unwrap_or(-1))
            }
            _ => "did not start".to_string(),
        };
        println!("run ({}): {how}", run.engine);
    }
    let s = &r.summary;
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    println!(
        "{}, {}, {}",
        plural(s.errors, "error", "errors"),
        plural(s.warnings, "warning", "warnings"),
        plural(s.infos, "info", "infos")
    );
}
