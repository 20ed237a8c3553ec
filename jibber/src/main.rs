//! jibber: nonsense verse over HTTP, from an order-3 Markov chain trained on Lewis
//! Carroll's "Jabberwocky". A std-only Rust port of the Spring demo of the same name.
//!
//! - `GET /jibber[?seed=N]`: ten lines of verse, each followed by `<br/>`; the same
//!   seed always gives the same verse.
//! - `GET /healthz`: `ok`.
//!
//! Environment: `PORT` (default 8080; 0 picks a free port), and for tests and tuning
//! `JIBBER_MAX_CONNECTIONS` (default 64) and `JIBBER_READ_TIMEOUT_MS` (default 10000,
//! also the keep-alive idle timeout). It listens on 0.0.0.0, logs
//! `Started jibber in X seconds` to stderr once the socket is listening, and shuts down
//! gracefully on SIGTERM or SIGINT.

mod chain;
mod http;
mod server;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Reads a numeric environment variable; `Err` names the variable if it is set but
/// not a number.
fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Ok(v) => http::parse_u64(v.trim().as_bytes())
            .ok_or_else(|| format!("{name} must be a non-negative integer, not {v:?}")),
        Err(_) => Err(format!("{name} is not valid UTF-8")),
    }
}

fn main() -> ExitCode {
    let started = Instant::now();
    server::install_signal_handlers();

    let mut config = server::Config::default();
    let settings = (|| {
        let port = u16::try_from(env_number("PORT", 8080)?).map_err(|_| "PORT must be at most 65535".to_string())?;
        let max = env_number("JIBBER_MAX_CONNECTIONS", config.max_connections as u64)?;
        config.max_connections = usize::try_from(max.max(1)).unwrap_or(usize::MAX);
        let timeout = env_number("JIBBER_READ_TIMEOUT_MS", 10_000)?.max(1);
        config.read_timeout = Duration::from_millis(timeout);
        config.idle_timeout = config.read_timeout;
        Ok::<u16, String>(port)
    })();
    let port = match settings {
        Ok(port) => port,
        Err(e) => {
            eprintln!("jibber: {e}");
            return ExitCode::from(2);
        }
    };

    let chain: &'static chain::Chain = Box::leak(Box::new(chain::Chain::jabberwocky()));
    let listener = match TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("jibber: cannot listen on 0.0.0.0:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let elapsed = started.elapsed();
    match listener.local_addr() {
        Ok(addr) => eprintln!("jibber: listening on {addr}"),
        Err(e) => eprintln!("jibber: listening (address unknown: {e})"),
    }
    // Spring's format, with microseconds (integer arithmetic: no float formatting).
    let micros = elapsed.as_micros();
    eprintln!("Started jibber in {}.{:06} seconds", micros / 1_000_000, micros % 1_000_000);

    match server::serve(listener, chain, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jibber: {e}");
            ExitCode::FAILURE
        }
    }
}
