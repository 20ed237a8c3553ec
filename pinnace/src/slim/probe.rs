//! Probes: what slim runs against the original and the slim image, and compares.
//!
//! A probe is parsed from its CLI text ([`Probe::http`], [`Probe::exec`],
//! [`Probe::run_for`]) or from a TOML file ([`ProbeFile`]), run against anything that
//! implements [`ProbeTarget`] ([`run_probes`]), and the two runs' outcomes are compared
//! ([`compare`]). An outcome records hashes, not bodies, so a report stays small; the
//! first bytes are kept for messages.
//!
//! HTTP probes speak plain HTTP/1.0 (`Connection: close`), so servers answer without
//! chunked encoding and the body ends at EOF; a chunked answer is decoded anyway. A
//! connection that is accepted and then closed without a byte counts as "not ready yet"
//! (docker's userland proxy accepts before the app listens) and is retried until
//! [`ProbeOptions::ready_timeout`].

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[path = "probe_http.rs"]
mod http;
use http::{contains, exchange, parse_response, Exchange};

/// What an exec probe printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code (128 + signal number when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Killed because it ran past its timeout.
    pub timed_out: bool,
}

/// A running image that probes can reach: the sandbox (original image, traced) or a
/// container of docker or podman (the slim image, verified).
pub trait ProbeTarget {
    /// Connects to the app's TCP `port` on the container's loopback (or its published
    /// port), failing after `timeout` for that one attempt.
    fn connect(&self, port: u16, timeout: Duration) -> io::Result<TcpStream>;
    /// Runs `argv` inside the running container (same filesystem, env, user and
    /// workdir as the app; `argv[0]` looked up in the image's `PATH`), waits at most
    /// `timeout`, then kills it.
    fn exec(&self, argv: &[String], timeout: Duration) -> io::Result<ExecOutput>;
    /// `Some(code)` once the app (the entrypoint) has exited.
    fn app_exited(&self) -> Option<i32>;
    /// The last `lines` lines the app wrote to stdout and stderr.
    fn log_tail(&self, lines: usize) -> String;
    /// What this target is, for messages ("sandbox", "docker container 3f2a...").
    fn describe(&self) -> String;
}

/// Errors of parsing and running probes.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// An `--http-probe` text did not parse.
    #[error("http probe {input:?}: {why} (expected PORT:PATH[=EXPECTED], e.g. 8080:/api/health or 8080:/=ok)")]
    BadHttp {
        /// The text.
        input: String,
        /// What is wrong.
        why: String,
    },
    /// An `--exec-probe` text did not split into words.
    #[error("exec probe {input:?}: {why}")]
    BadExec {
        /// The text.
        input: String,
        /// What is wrong.
        why: String,
    },
    /// A probe's text form (`http ...`, `exec ...`, `run-for ...`) names no known kind.
    #[error("probe {input:?}: expected `http PORT:PATH[=EXPECTED]`, `exec CMD` or `run-for DURATION`")]
    BadProbe {
        /// The text.
        input: String,
    },
    /// A duration did not parse.
    #[error("duration {input:?}: {why} (expected e.g. 500ms, 20s, 1m, 1m30s)")]
    BadDuration {
        /// The text.
        input: String,
        /// What is wrong.
        why: String,
    },
    /// A probe file could not be read.
    #[error("probe file {path}: {source}")]
    FileRead {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A probe file's content is invalid.
    #[error("probe file {path}: {why}")]
    FileSyntax {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the probe's position where known.
        why: String,
    },
    /// The app exited while probes were running (or before they could start).
    #[error("the app in the {target} exited with code {code} {when}; its last log lines:\n{log}")]
    AppExited {
        /// The target's description.
        target: String,
        /// The app's exit code.
        code: i32,
        /// When ("before probe `http 8080:/` could run", "during `run-for 5s`").
        when: String,
        /// The last lines the app wrote.
        log: String,
    },
}

/// One probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET PATH` on the app's TCP `port`; `expect`, when given, must be contained in
    /// the body.
    Http {
        /// The app's port (inside the container).
        port: u16,
        /// Absolute request path, query included.
        path: String,
        /// Text the body must contain.
        expect: Option<String>,
    },
    /// A command run inside the running container, without a shell.
    Exec {
        /// Program and arguments (`argv[0]` looked up in the image's `PATH`).
        argv: Vec<String>,
    },
    /// Let the app run this long (it must stay alive, or exit with code 0).
    RunFor(Duration),
}

impl Probe {
    /// Parses `PORT:PATH[=EXPECTED]` (`8080:/api/health`, `8080:/=ok`).
    ///
    /// The `=` that starts EXPECTED is the first one when the path has no query; inside a
    /// query (`?a=1&b=2`) each `&`-separated pair keeps its own first `=`, and a second
    /// `=` in a pair starts EXPECTED: `8080:/s?q=x=found` expects "found" from `/s?q=x`.
    /// The path must start with `/` and hold only visible ASCII (percent-encode the rest).
    pub fn http(s: &str) -> Result<Probe, ProbeError> {
        let bad = |why: &str| ProbeError::BadHttp { input: s.to_string(), why: why.to_string() };
        let (port, rest) = s.split_once(':').ok_or_else(|| bad("no `:` between port and path"))?;
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
            return Err(bad("the port must be a number from 1 to 65535"));
        }
        let port: u32 = port.parse().map_err(|_| bad("the port must be a number from 1 to 65535"))?;
        if port == 0 || port > 65535 {
            return Err(bad("the port must be a number from 1 to 65535"));
        }
        let split = expect_split(rest);
        let (path, expect) = match split {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if !path.starts_with('/') {
            return Err(bad("the path must start with `/`"));
        }
        if let Some(c) = path.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(bad(&format!(
                "the path holds {c:?}: only visible ASCII is allowed (percent-encode spaces and the rest)"
            )));
        }
        if path.contains('#') {
            return Err(bad("the path holds a fragment (`#`), which is never sent to a server"));
        }
        let expect = match expect {
            Some("") => return Err(bad("empty EXPECTED text after `=`")),
            Some(e) if e.contains('\0') => return Err(bad("EXPECTED holds a NUL byte")),
            e => e.map(str::to_string),
        };
        Ok(Probe::Http { port: port as u16, path: path.to_string(), expect })
    }

    /// Splits a command line into words the way a POSIX shell would (whitespace,
    /// `'single'` and `"double"` quotes, backslash escapes), without running a shell:
    /// slim images usually have none. Unquoted shell operators (`| & ; < > ( ) $` and
    /// backquotes) are refused, since no shell would interpret them.
    pub fn exec(s: &str) -> Result<Probe, ProbeError> {
        let argv = split_words(s).map_err(|why| ProbeError::BadExec { input: s.to_string(), why })?;
        Ok(Probe::Exec { argv })
    }

    /// An exec probe from words given one by one (a probe file's array form).
    pub fn exec_argv(argv: Vec<String>) -> Result<Probe, ProbeError> {
        let bad = |why: &str| ProbeError::BadExec { input: format!("{argv:?}"), why: why.to_string() };
        if argv.is_empty() || argv[0].is_empty() {
            return Err(bad("no command"));
        }
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(bad("an argument holds a NUL byte"));
        }
        Ok(Probe::Exec { argv })
    }

    /// Parses a `--run-for` duration (see [`parse_duration`]).
    pub fn run_for(s: &str) -> Result<Probe, ProbeError> {
        Ok(Probe::RunFor(parse_duration(s)?))
    }

    /// The port an HTTP probe needs published, if any.
    pub fn port(&self) -> Option<u16> {
        match self {
            Probe::Http { port, .. } => Some(*port),
            _ => None,
        }
    }
}

/// The probe as a user would write it: `http 8080:/=ok`, `exec python3 -c 'import app'`,
/// `run-for 5s`.
impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Http { port, path, expect: None } => write!(f, "http {port}:{path}"),
            Probe::Http { port, path, expect: Some(e) } => write!(f, "http {port}:{path}={e}"),
            Probe::Exec { argv } => {
                f.write_str("exec")?;
                for a in argv {
                    write!(f, " {}", quote_word(a))?;
                }
                Ok(())
            }
            Probe::RunFor(d) => write!(f, "run-for {}", format_duration(*d)),
        }
    }
}

/// Parses [`Probe`]'s `Display` form back (`http ...`, `exec ...`, `run-for ...`).
impl FromStr for Probe {
    type Err = ProbeError;
    fn from_str(s: &str) -> Result<Probe, ProbeError> {
        let (kind, rest) = s.split_once(' ').unwrap_or((s, ""));
        match kind {
            "http" => Probe::http(rest),
            "exec" => Probe::exec(rest),
            "run-for" => Probe::run_for(rest),
            _ => Err(ProbeError::BadProbe { input: s.to_string() }),
        }
    }
}

/// Where EXPECTED starts in `PATH=EXPECTED` (see [`Probe::http`]).
fn expect_split(rest: &str) -> Option<usize> {
    let q = rest.find('?');
    let path_end = q.unwrap_or(rest.len());
    if let Some(i) = rest[..path_end].find('=') {
        return Some(i);
    }
    let q = q?;
    let mut seen_eq = false;
    for (i, c) in rest.char_indices().skip_while(|&(i, _)| i <= q) {
        match c {
            '&' => seen_eq = false,
            '=' if seen_eq => return Some(i),
            '=' => seen_eq = true,
            _ => {}
        }
    }
    None
}

/// Shell-style word splitting (no expansion of any kind).
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('\\' | '"' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c @ ('$' | '`')) => {
                            return Err(format!(
                                "`{c}` inside double quotes would be expanded by a shell, and no shell runs \
                                 exec probes: put the text in single quotes"
                            ))
                        }
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    cur.push(c);
                }
                None => return Err("a trailing backslash escapes nothing".into()),
            },
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' => {
                return Err(format!(
                    "unquoted `{c}`: exec probes are not run by a shell (slim images rarely have one); \
                     quote it to pass it as an argument, or probe with `sh -c '...'` if the image keeps a shell"
                ))
            }
            '\0' => return Err("a NUL byte cannot be passed to a program".into()),
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    match words.first() {
        None => Err("no command".into()),
        Some(w) if w.is_empty() => Err("the command name is empty".into()),
        Some(_) => Ok(words),
    }
}

/// Quotes a word for display so that [`split_words`] gives it back.
fn quote_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | ',' | '+' | '@' | '%')
        });
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Parses a duration: one or more NUMBER UNIT pairs with units `ms`, `s`, `m`, `h`
/// (`500ms`, `20s`, `1m30s`); a bare number means seconds. At most 24 hours.
pub fn parse_duration(s: &str) -> Result<Duration, ProbeError> {
    let bad = |why: &str| ProbeError::BadDuration { input: s.to_string(), why: why.to_string() };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad("empty"));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = t.parse().map_err(|_| bad("too large"))?;
        return check_max(Duration::from_secs(n.min(u64::MAX / 2)), &bad);
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad("too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let ms_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err(bad("a number without a unit inside a compound duration")),
            u => return Err(bad(&format!("unknown unit {u:?}"))),
        };
        rest = &rest[unit_len..];
        let ms = n.checked_mul(ms_per).ok_or_else(|| bad("too large"))?;
        total = total.checked_add(Duration::from_millis(ms)).ok_or_else(|| bad("too large"))?;
    }
    check_max(total, &bad)
}

fn check_max(d: Duration, bad: &dyn Fn(&str) -> ProbeError) -> Result<Duration, ProbeError> {
    if d > Duration::from_secs(24 * 3600) {
        return Err(bad("longer than 24h"));
    }
    Ok(d)
}

/// Formats a duration the way [`parse_duration`] reads it (`5s`, `1m30s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (n, u) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{u}"));
        }
    }
    out
}

/// A probe file (`--probes FILE`), TOML:
///
/// ```toml
/// timeout = "10s"          # per request / per command (optional)
/// ready_timeout = "90s"    # how long to wait for a port (optional)
///
/// [[probe]]
/// http = "8080:/api/health"
///
/// [[probe]]
/// exec = ["python3", "-c", "import app"]   # or one string, split like --exec-probe
///
/// [[probe]]
/// run_for = "5s"
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFile {
    /// The probes, in file order.
    pub probes: Vec<Probe>,
    /// `timeout`: overrides [`ProbeOptions::request_timeout`] and [`ProbeOptions::exec_timeout`].
    pub timeout: Option<Duration>,
    /// `ready_timeout`: overrides [`ProbeOptions::ready_timeout`].
    pub ready_timeout: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    timeout: Option<String>,
    ready_timeout: Option<String>,
    #[serde(default)]
    probe: Vec<RawProbe>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    http: Option<String>,
    exec: Option<RawExec>,
    run_for: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawExec {
    Line(String),
    Argv(Vec<String>),
}

impl ProbeFile {
    /// Parses a probe file's text; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<ProbeFile, ProbeError> {
        let syntax = |why: String| ProbeError::FileSyntax { path: path.to_path_buf(), why };
        let raw: RawFile = toml::from_str(text).map_err(|e| syntax(e.to_string().trim_end().to_string()))?;
        let dur = |name: &str, v: Option<String>| {
            v.map(|s| parse_duration(&s).map_err(|e| syntax(format!("{name}: {e}")))).transpose()
        };
        let timeout = dur("timeout", raw.timeout)?;
        let ready_timeout = dur("ready_timeout", raw.ready_timeout)?;
        let mut probes = Vec::with_capacity(raw.probe.len());
        for (i, p) in raw.probe.into_iter().enumerate() {
            let at = |e: ProbeError| syntax(format!("probe {}: {e}", i + 1));
            let probe = match (p.http, p.exec, p.run_for) {
                (Some(h), None, None) => Probe::http(&h).map_err(at)?,
                (None, Some(RawExec::Line(l)), None) => Probe::exec(&l).map_err(at)?,
                (None, Some(RawExec::Argv(a)), None) => Probe::exec_argv(a).map_err(at)?,
                (None, None, Some(d)) => Probe::run_for(&d).map_err(at)?,
                _ => return Err(syntax(format!("probe {}: give exactly one of `http`, `exec`, `run_for`", i + 1))),
            };
            probes.push(probe);
        }
        if probes.is_empty() {
            return Err(syntax("no [[probe]] entries".into()));
        }
        Ok(ProbeFile { probes, timeout, ready_timeout })
    }

    /// Reads and parses a probe file.
    pub fn read(path: &Path) -> Result<ProbeFile, ProbeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProbeError::FileRead { path: path.to_path_buf(), source })?;
        ProbeFile::parse(&text, path)
    }

    /// Applies the file's timeouts to `opts`.
    pub fn apply(&self, opts: &mut ProbeOptions) {
        if let Some(t) = self.timeout {
            opts.request_timeout = t;
            opts.exec_timeout = t;
        }
        if let Some(t) = self.ready_timeout {
            opts.ready_timeout = t;
        }
    }
}

/// How long [`default_probes`] runs an image that exposes no TCP port.
pub const DEFAULT_RUN_FOR: Duration = Duration::from_secs(5);

/// The probes used when none is given: `GET /` on every exposed TCP port, else
/// [`Probe::RunFor`] of [`DEFAULT_RUN_FOR`]. The string says which, for the report.
pub fn default_probes(exposed_ports: &[u16]) -> (Vec<Probe>, String) {
    let mut ports: Vec<u16> = exposed_ports.iter().copied().filter(|&p| p != 0).collect();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        let why = format!(
            "no probe given and the image exposes no TCP port: running the app for {}",
            format_duration(DEFAULT_RUN_FOR)
        );
        return (vec![Probe::RunFor(DEFAULT_RUN_FOR)], why);
    }
    let list = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    let why = format!("no probe given: GET / on the exposed TCP port{} {list}", if ports.len() > 1 { "s" } else { "" });
    (ports.into_iter().map(|port| Probe::Http { port, path: "/".into(), expect: None }).collect(), why)
}

/// Timeouts of [`run_probes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOptions {
    /// How long an HTTP probe waits for its port to answer (default 60 s).
    pub ready_timeout: Duration,
    /// How long one HTTP request may take once connected (default 30 s).
    pub request_timeout: Duration,
    /// How long an exec probe may run (default 30 s).
    pub exec_timeout: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            ready_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            exec_timeout: Duration::from_secs(30),
        }
    }
}

/// How many bytes of a body or output an outcome keeps for messages.
pub const EXCERPT_BYTES: usize = 200;
/// How often an HTTP probe retries its port while the app starts: often enough that the
/// first answer's time measures the app's start-up (the slim benchmark uses it), cheap
/// enough (one refused connect) not to matter.
const RETRY: Duration = Duration::from_millis(50);

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeOutcome {
    /// The probe, as [`Probe`]'s `Display` writes it.
    pub probe: String,
    /// HTTP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Exit code of an exec probe (or of an app that ended during `run-for`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// `sha256:` of the body or of the command's stdout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Body or stdout length in bytes.
    pub length: u64,
    /// The first [`EXCERPT_BYTES`] of the body or stdout, lossily decoded.
    pub excerpt: String,
    /// The last [`EXCERPT_BYTES`] of an exec probe's stderr, when it wrote any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Whether the body contained the probe's EXPECTED text (`None`: nothing expected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_met: Option<bool>,
    /// Why the probe got no answer (connection refused until the timeout, a timeout, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in milliseconds (waiting for the port included).
    pub millis: u64,
}

impl ProbeOutcome {
    fn new(probe: &Probe) -> ProbeOutcome {
        ProbeOutcome {
            probe: probe.to_string(),
            status: None,
            exit_code: None,
            hash: None,
            length: 0,
            excerpt: String::new(),
            stderr: None,
            expect_met: None,
            error: None,
            millis: 0,
        }
    }

    /// Whether the probe succeeded: it got an answer, an HTTP status below 500, exit code
    /// 0, and the EXPECTED text. A probe that is not ok on the original image has
    /// nothing to preserve.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.status.is_none_or(|s| s < 500)
            && self.exit_code.is_none_or(|c| c == 0)
            && self.expect_met != Some(false)
    }

    /// One line for messages: `HTTP 200, 1234 bytes sha256:ab12cd34ef56`, `exit 1`, or the error.
    pub fn summary(&self) -> String {
        if let Some(e) = &self.error {
            return format!("error: {e}");
        }
        let mut s = match (self.status, self.exit_code) {
            (Some(st), _) => format!("HTTP {st}"),
            (None, Some(c)) => format!("exit {c}"),
            (None, None) => "alive".to_string(),
        };
        if let Some(h) = &self.hash {
            let short = h.strip_prefix("sha256:").unwrap_or(h);
            s.push_str(&format!(", {} bytes sha256:{}", self.length, &short[..short.len().min(12)]));
        }
        if self.expect_met == Some(false) {
            s.push_str(", EXPECTED text missing");
        }
        if !self.excerpt.is_empty() {
            let one_line: String =
                self.excerpt.chars().take(60).map(|c| if c.is_control() { ' ' } else { c }).collect();
            s.push_str(&format!(" ({})", one_line.trim()));
        }
        s
    }

    fn record(&mut self, data: &[u8]) {
        self.hash = Some(format!("sha256:{}", hex::encode(Sha256::digest(data))));
        self.length = data.len() as u64;
        self.excerpt = String::from_utf8_lossy(&data[..data.len().min(EXCERPT_BYTES)]).into_owned();
    }
}

/// Runs `probes` in order against `target`.
///
/// A probe that gets no answer or a bad one is recorded in its [`ProbeOutcome`]
/// (`error`, status, exit code); the run only fails, with [`ProbeError::AppExited`] and
/// the app's last 20 log lines, when the app has exited before an HTTP or exec probe or
/// while a probe waited for it, or exited with a non-zero code during `run-for`.
pub fn run_probes(
    target: &dyn ProbeTarget,
    probes: &[Probe],
    opts: &ProbeOptions,
) -> Result<Vec<ProbeOutcome>, ProbeError> {
    let mut out = Vec::with_capacity(probes.len());
    for p in probes {
        let started = Instant::now();
        let mut o = ProbeOutcome::new(p);
        match p {
            Probe::Http { port, path, expect } => {
                check_alive(target, &format!("before probe `{p}` could run"))?;
                match http_probe(target, *port, path, opts, p)? {
                    Ok((status, body)) => {
                        o.status = Some(status);
                        o.record(&body);
                        if let Some(e) = expect {
                            o.expect_met = Some(contains(&body, e.as_bytes()));
                        }
                    }
                    Err(e) => o.error = Some(e),
                }
            }
            Probe::Exec { argv } => {
                check_alive(target, &format!("before probe `{p}` could run"))?;
                match target.exec(argv, opts.exec_timeout) {
                    Ok(x) => {
                        o.record(&x.stdout);
                        o.exit_code = Some(x.code);
                        if !x.stderr.is_empty() {
                            let tail = &x.stderr[x.stderr.len().saturating_sub(EXCERPT_BYTES)..];
                            o.stderr = Some(String::from_utf8_lossy(tail).into_owned());
                        }
                        if x.timed_out {
                            o.error = Some(format!("still running after {}", format_duration(opts.exec_timeout)));
                        }
                    }
                    Err(e) => o.error = Some(format!("cannot run it: {e}")),
                }
            }
            Probe::RunFor(d) => {
                let end = started + *d;
                loop {
                    if let Some(code) = target.app_exited() {
                        if code != 0 {
                            return Err(app_exited(target, code, &format!("during `{p}`")));
                        }
                        o.exit_code = Some(0);
                        break;
                    }
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    std::thread::sleep((end - now).min(Duration::from_millis(100)));
                }
            }
        }
        o.millis = started.elapsed().as_millis() as u64;
        out.push(o);
    }
    Ok(out)
}

fn app_exited(target: &dyn ProbeTarget, code: i32, when: &str) -> ProbeError {
    ProbeError::AppExited { target: target.describe(), code, when: when.to_string(), log: target.log_tail(20) }
}

fn check_alive(target: &dyn ProbeTarget, when: &str) -> Result<(), ProbeError> {
    match target.app_exited() {
        Some(code) => Err(app_exited(target, code, when)),
        None => Ok(()),
    }
}

/// Waits for `port` and GETs `path`. The outer error is the app exiting; the inner one a
/// probe failure to record.
fn http_probe(
    target: &dyn ProbeTarget,
    port: u16,
    path: &str,
    opts: &ProbeOptions,
    p: &Probe,
) -> Result<Result<(u16, Vec<u8>), String>, ProbeError> {
    let deadline = Instant::now() + opts.ready_timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let attempt = remaining.clamp(Duration::from_millis(100), Duration::from_secs(2));
        let why = match target.connect(port, attempt) {
            Ok(stream) => match exchange(stream, port, path, opts.request_timeout) {
                Ok(raw) => return Ok(parse_response(&raw)),
                Err(Exchange::Failed(e)) => return Ok(Err(e)),
                Err(Exchange::NotReady(e)) => e,
            },
            Err(e) => e.to_string(),
        };
        if let Some(code) = target.app_exited() {
            return Err(app_exited(target, code, &format!("while probe `{p}` waited for port {port}")));
        }
        if Instant::now() >= deadline {
            return Ok(Err(format!(
                "port {port} gave no answer within {} (last attempt: {why})",
                format_duration(opts.ready_timeout)
            )));
        }
        std::thread::sleep(RETRY.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// How strictly [`compare`] matches the two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareMode {
    /// Status or exit code, and the body or output hash (the default).
    #[default]
    Full,
    /// Status or exit code only (for answers with timestamps or random ids).
    Status,
}

impl FromStr for CompareMode {
    type Err = String;
    fn from_str(s: &str) -> Result<CompareMode, String> {
        match s {
            "full" => Ok(CompareMode::Full),
            "status" => Ok(CompareMode::Status),
            _ => Err(format!("probe comparison {s:?}: expected `full` or `status`")),
        }
    }
}

/// One probe whose answers differ between the original and the slim image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeDiff {
    /// The probe.
    pub probe: String,
    /// The original's answer ([`ProbeOutcome::summary`]).
    pub original: String,
    /// The slim image's answer.
    pub slim: String,
    /// What differs.
    pub why: String,
}

/// Compares two runs of the same probes, pairwise. Empty when every probe agrees.
///
/// Both modes require: an answer from both (or no answer from both), the same HTTP status
/// or exit code, and an EXPECTED text found in both bodies. [`CompareMode::Full`] also
/// requires the same body or output hash.
pub fn compare(original: &[ProbeOutcome], slim: &[ProbeOutcome], mode: CompareMode) -> Vec<ProbeDiff> {
    let mut diffs = Vec::new();
    let n = original.len().max(slim.len());
    for i in 0..n {
        let (a, b) = match (original.get(i), slim.get(i)) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) => {
                diffs.push(diff(a, None, "the slim run has no outcome for it".into()));
                continue;
            }
            (None, Some(b)) => {
                diffs.push(ProbeDiff {
                    probe: b.probe.clone(),
                    original: "(not run)".into(),
                    slim: b.summary(),
                    why: "the original run has no outcome for it".into(),
                });
                continue;
            }
            (None, None) => unreachable!("i < max of both lengths"),
        };
        if a.probe != b.probe {
            diffs.push(diff(a, Some(b), format!("not the same probe (slim ran `{}`)", b.probe)));
            continue;
        }
        if let Some(why) = difference(a, b, mode) {
            diffs.push(diff(a, Some(b), why));
        }
    }
    diffs
}

fn diff(a: &ProbeOutcome, b: Option<&ProbeOutcome>, why: String) -> ProbeDiff {
    ProbeDiff {
        probe: a.probe.clone(),
        original: a.summary(),
        slim: b.map(ProbeOutcome::summary).unwrap_or_else(|| "(not run)".into()),
        why,
    }
}

fn difference(a: &ProbeOutcome, b: &ProbeOutcome, mode: CompareMode) -> Option<String> {
    match (&a.error, &b.error) {
        (None, Some(e)) => return Some(format!("no answer from the slim image: {e}")),
        (Some(e), None) => return Some(format!("the original gave no answer ({e}) but the slim image did")),
        (Some(_), Some(_)) => return None,
        (None, None) => {}
    }
    if a.status != b.status {
        let show = |s: Option<u16>| s.map_or("none".to_string(), |s| s.to_string());
        return Some(format!("HTTP status {} on the original, {} on the slim image", show(a.status), show(b.status)));
    }
    if a.exit_code != b.exit_code {
        let show = |c: Option<i32>| c.map_or("still running".to_string(), |c| c.to_string());
        return Some(format!(
            "exit code {} on the original, {} on the slim image",
            show(a.exit_code),
            show(b.exit_code)
        ));
    }
    if a.expect_met.is_some() && (a.expect_met != Some(true) || b.expect_met != Some(true)) {
        let whose = if b.expect_met != Some(true) { "slim image's" } else { "original's" };
        return Some(format!("the EXPECTED text is missing from the {whose} answer"));
    }
    if mode == CompareMode::Full && a.hash != b.hash {
        let what = if a.status.is_some() { "body" } else { "output" };
        return Some(format!(
            "the {what} differs ({} bytes on the original, {} on the slim image; `--probe-compare status` ignores it)",
            a.length, b.length
        ));
    }
    None
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
