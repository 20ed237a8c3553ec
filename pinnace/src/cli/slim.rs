//! `pinnace slim`: shrink an image by watching it work, then prove the result works.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use pinnace::slim::sandbox::{Sandbox, SandboxSpec};

/// Arguments of the hidden `__trace` command (a debugging aid and a test hook for the
/// sandbox alone).
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// An unpacked root directory.
    pub root: PathBuf,
    /// Seconds to let the command run before it is stopped.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// The command.
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

/// Runs `__trace`.
pub fn trace(a: TraceArgs) -> anyhow::Result<()> {
    pinnace::slim::sandbox::catch_interrupts();
    let work = tempfile::Builder::new().prefix("pinnace-trace-").tempdir()?;
    let spec = SandboxSpec {
        lower: a.root.canonicalize()?,
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        uid: 0,
        gid: 0,
        groups: vec![0],
        cwd: "/".into(),
        hostname: "pinnace".into(),
        trace: true,
    };
    let sb = Sandbox::start(&spec, &work.path().join("run"), &a.argv)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(a.seconds);
    use pinnace::slim::probe::ProbeTarget;
    while std::time::Instant::now() < deadline && sb.app_exited().is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = sb.app_exited();
    let log = sb.log_tail(20);
    let t = sb.stop(libc::SIGTERM, Duration::from_secs(2))?;
    eprintln!("exit: {code:?}\nlog:\n{log}");
    println!("{}", serde_json::to_string_pretty(&t)?);
    Ok(())
}
