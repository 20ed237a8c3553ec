//! The accept loop, one thread per connection (bounded), routing, and graceful
//! shutdown on SIGTERM or SIGINT.
//!
//! Shutdown: the signal handler only sets [`SHUTDOWN`]. A watcher thread polls it
//! and, once set, connects to the listener so the blocking `accept` returns; the accept
//! loop then drops the listener (new connections are refused) and waits for in-flight
//! connections. Idle keep-alive connections close at once; a connection in the middle
//! of a request gets [`Config::grace`] to finish it. As a backstop the watcher exits the
//! process with status 0 shortly after the grace period, so shutdown always completes
//! within a second.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::chain::{Chain, SplitMix64};
use crate::http::{self, Body, Request, Response};

/// Set by the SIGTERM/SIGINT handler; everything else only reads it.
pub static SHUTDOWN: AtomicBool = AtomicBool::new(false);

/// How often blocked threads look at [`SHUTDOWN`] and their deadlines.
const POLL: Duration = Duration::from_millis(20);

/// Requests served on one connection before it is closed.
const MAX_REQUESTS_PER_CONNECTION: usize = 1000;

/// Stack size of connection threads: the handler needs a few KiB.
const STACK_SIZE: usize = 128 * 1024;

/// Server limits and timeouts.
#[derive(Debug, Clone)]
pub struct Config {
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time allowed to receive a whole request (head and body) once it has started,
    /// and to send a response.
    pub read_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// After a shutdown signal, how long a request already started may take to finish.
    pub grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 64,
            read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            grace: Duration::from_millis(700),
        }
    }
}

/// The signal handler: one atomic store, which is async-signal-safe.
extern "C" fn on_signal(_signum: std::ffi::c_int) {
    SHUTDOWN.store(true, Ordering::SeqCst);
}

extern "C" {
    /// `signal(2)` from the C library that std already links. glibc gives it BSD
    /// semantics: the handler stays installed and interrupted calls restart.
    fn signal(signum: std::ffi::c_int, handler: extern "C" fn(std::ffi::c_int)) -> usize;
}

/// Installs the SIGTERM and SIGINT handlers that start a graceful shutdown. Needed even
/// for the default behaviour when running as PID 1, which has no default handlers.
pub fn install_signal_handlers() {
    const SIGINT: std::ffi::c_int = 2;
    const SIGTERM: std::ffi::c_int = 15;
    for signum in [SIGINT, SIGTERM] {
        // SAFETY: `signal` is declared with its C signature (sighandler_t is a
        // pointer-sized function pointer; the result is only compared, never called).
        // The handler does nothing but an atomic store, which is async-signal-safe.
        let previous = unsafe { signal(signum, on_signal) };
        if previous == usize::MAX {
            eprintln!("jibber: cannot install handler for signal {signum}");
        }
    }
}

/// Decrements the live-connection count when a connection thread ends (or fails to
/// start).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `listener` until a shutdown signal, then waits for in-flight requests (at most
/// [`Config::grace`] plus a little) and returns.
pub fn serve(listener: TcpListener, chain: &'static Chain, config: Config) -> io::Result<()> {
    let local = listener.local_addr()?;
    let wake = SocketAddr::new(
        match local.ip() {
            ip if ip.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
            ip => ip,
        },
        local.port(),
    );
    let grace = config.grace;
    thread::Builder::new()
        .name("shutdown".into())
        .stack_size(STACK_SIZE)
        .spawn(move || watch_for_shutdown(wake, grace))?;

    let config = Arc::new(config);
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                if SHUTDOWN.load(Ordering::SeqCst) {
                    break;
                }
                // Out of descriptors, aborted handshakes and the like: try again later
                // rather than spin or stop serving.
                if e.kind() != io::ErrorKind::Interrupted {
                    thread::sleep(POLL);
                }
                continue;
            }
        };
        if SHUTDOWN.load(Ordering::SeqCst) {
            // The watcher's wake-up connection, or a client that raced the signal.
            break;
        }
        if live.load(Ordering::SeqCst) >= config.max_connections {
            reject_busy(stream);
            continue;
        }
        live.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(Arc::clone(&live));
        let config = Arc::clone(&config);
        let spawned = thread::Builder::new().stack_size(STACK_SIZE).spawn(move || {
            let _slot = slot;
            handle_connection(stream, chain, &config);
        });
        if let Err(e) = spawned {
            // The closure (stream and slot) is dropped: the client sees a reset.
            eprintln!("jibber: cannot start connection thread: {e}");
            thread::sleep(POLL);
        }
    }
    drop(listener);
    let deadline = Instant::now() + grace + Duration::from_millis(100);
    while live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Waits for [`SHUTDOWN`], wakes the accept loop, and exits the process if the orderly
/// shutdown overruns.
fn watch_for_shutdown(wake: SocketAddr, grace: Duration) {
    while !SHUTDOWN.load(Ordering::SeqCst) {
        thread::sleep(POLL);
    }
    eprintln!("jibber: shutting down");
    // Unblock `accept`. If this fails the listener is already gone or unreachable; the
    // backstop below still ends the process.
    let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(200));
    thread::sleep(grace + Duration::from_millis(200));
    std::process::exit(0);
}

/// Answers a connection over the limit with 503, without blocking the accept loop.
fn reject_busy(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    // Take whatever request bytes already arrived, so closing does not reset the
    // connection before the client reads the answer.
    let mut scratch = [0u8; 4096];
    for _ in 0..4 {
        if !matches!(stream.read(&mut scratch), Ok(n) if n > 0) {
            break;
        }
    }
    let mut response = Response::error(503);
    response.extra.push("Retry-After: 1");
    let _ = stream.write_all(&response.to_bytes(false, false, &now_date()));
    let _ = stream.shutdown(Shutdown::Write);
}

/// The current time as an HTTP date.
fn now_date() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    http::http_date(secs)
}

/// A seed for requests without `?seed=`: time, process id and a counter, mixed.
fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut rng = SplitMix64::new(nanos ^ (u64::from(std::process::id()) << 32) ^ count);
    rng.next_u64()
}

/// The response to a well-formed request.
pub fn route(req: &Request<'_>, chain: &Chain) -> Response {
    if req.path != "/jibber" && req.path != "/healthz" {
        return Response::error(404);
    }
    if req.method != "GET" && req.method != "HEAD" {
        let mut response = Response::error(405);
        response.extra.push("Allow: GET, HEAD");
        return response;
    }
    if req.path == "/healthz" {
        return Response::text(200, "ok");
    }
    let seed = match http::seed_param(req.query) {
        Ok(Some(seed)) => seed,
        Ok(None) => fresh_seed(),
        Err(()) => return Response::text(400, "seed must be an unsigned 64-bit decimal integer\n"),
    };
    Response {
        status: 200,
        content_type: "text/html; charset=utf-8",
        extra: vec!["Cache-Control: no-store"],
        body: chain.verse_html(seed).into_bytes(),
    }
}

/// Why reading stopped.
enum Stop {
    /// Close quietly: end of stream, I/O error, idle timeout, or shutdown while idle.
    Close,
    /// Answer with this status, then close.
    Fail(u16),
}

/// Reads from `stream` into `buf` until `done(buf)` says enough (`done` may also
/// consume bytes), honouring deadlines and shutdown. While no byte of a request has
/// arrived (`in_request` is false and `buf` is empty) the connection is idle: the idle
/// timeout applies and a shutdown closes it at once. Otherwise the read timeout applies
/// and a shutdown leaves [`Config::grace`] to finish.
fn fill(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    config: &Config,
    in_request: bool,
    mut done: impl FnMut(&mut Vec<u8>) -> Result<bool, Stop>,
) -> Result<(), Stop> {
    let started = Instant::now();
    let mut request_started = in_request.then_some(started);
    let mut shutdown_seen: Option<Instant> = None;
    let mut chunk = [0u8; 4096];
    loop {
        if done(buf)? {
            return Ok(());
        }
        let now = Instant::now();
        if !buf.is_empty() {
            request_started.get_or_insert(now);
        }
        match request_started {
            None if now - started >= config.idle_timeout => return Err(Stop::Close),
            Some(t) if now - t >= config.read_timeout => return Err(Stop::Fail(408)),
            _ => {}
        }
        if SHUTDOWN.load(Ordering::SeqCst) {
            if request_started.is_none() {
                return Err(Stop::Close);
            }
            if now - *shutdown_seen.get_or_insert(now) >= config.grace {
                return Err(Stop::Close);
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(Stop::Close),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Err(Stop::Close),
        }
    }
}

/// Serves requests on one connection until it closes.
fn handle_connection(mut stream: TcpStream, chain: &Chain, config: &Config) {
    // Short read timeouts are the polling interval for deadlines and shutdown.
    if stream.set_read_timeout(Some(POLL)).is_err() || stream.set_write_timeout(Some(config.read_timeout)).is_err() {
        return;
    }
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    for served in 1..=MAX_REQUESTS_PER_CONNECTION {
        // The head.
        let mut len = 0;
        let got_head = fill(&mut stream, &mut buf, config, false, |buf| {
            // Blank lines between requests do not start a request.
            let skip = http::leading_blank_lines(buf);
            buf.drain(..skip);
            match http::head_len(buf) {
                Some(n) if n > http::MAX_HEAD => Err(Stop::Fail(431)),
                Some(n) => {
                    len = n;
                    Ok(true)
                }
                None if buf.len() >= http::MAX_HEAD => Err(Stop::Fail(431)),
                None => Ok(false),
            }
        });
        if let Err(stop) = got_head {
            return finish(stream, stop);
        }
        let head: Vec<u8> = buf.drain(..len).collect();
        let req = match http::parse_head(&head) {
            Ok(req) => req,
            Err(e) => return finish(stream, Stop::Fail(e.status())),
        };

        // The body, read and discarded so the next request on the connection starts
        // where it should.
        let mut keep_alive = req.keep_alive;
        match req.body {
            Body::None => {}
            Body::Length(n) if n > http::MAX_BODY => return finish(stream, Stop::Fail(413)),
            Body::Length(n) => {
                let mut left = n as usize; // at most MAX_BODY
                let drained = fill(&mut stream, &mut buf, config, true, |buf| {
                    let take = left.min(buf.len());
                    buf.drain(..take);
                    left -= take;
                    Ok(left == 0)
                });
                if let Err(stop) = drained {
                    return finish(stream, stop);
                }
            }
            // Not decoded: answer, then close instead of finding the body's end.
            Body::Chunked => keep_alive = false,
        }

        let response = route(&req, chain);
        // The last request a connection may carry is answered with `Connection: close`,
        // so the client knows not to send another on it.
        keep_alive &= !SHUTDOWN.load(Ordering::SeqCst) && served < MAX_REQUESTS_PER_CONNECTION;
        let bytes = response.to_bytes(req.method == "HEAD", keep_alive, &now_date());
        if stream.write_all(&bytes).is_err() {
            return;
        }
        if !keep_alive {
            return linger_close(stream);
        }
    }
    linger_close(stream);
}

/// Ends a connection after `stop`.
fn finish(mut stream: TcpStream, stop: Stop) {
    if let Stop::Fail(status) = stop {
        let bytes = Response::error(status).to_bytes(false, false, &now_date());
        let _ = stream.write_all(&bytes);
    }
    linger_close(stream);
}

/// Closes the sending side, then reads and discards what the client still sends (for a
/// short while) so that unread request bytes do not turn the close into a reset that
/// destroys the response before the client reads it.
fn linger_close(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let until = Instant::now() + Duration::from_millis(500);
    let mut scratch = [0u8; 4096];
    let mut total = 0usize;
    while Instant::now() < until && total < 256 * 1024 {
        match stream.read(&mut scratch) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                if SHUTDOWN.load(Ordering::SeqCst) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(method: &'a str, path: &'a str, query: Option<&'a str>) -> Request<'a> {
        Request { method, path, query, version: http::Version::Http11, keep_alive: true, body: Body::None }
    }

    #[test]
    fn routes() {
        let chain = Chain::jabberwocky();
        let r = route(&req("GET", "/healthz", None), &chain);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        let r = route(&req("HEAD", "/healthz", Some("x")), &chain);
        assert_eq!(r.status, 200);

        let r = route(&req("GET", "/jibber", Some("seed=9")), &chain);
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "text/html; charset=utf-8");
        assert_eq!(r.body, chain.verse_html(9).into_bytes());
        let r = route(&req("GET", "/jibber", None), &chain);
        assert_eq!(r.status, 200);
        assert_eq!(String::from_utf8(r.body).unwrap().matches("<br/>\n").count(), 10);

        for bad in ["seed=x", "seed=-1", "seed", "seed=1&seed=2"] {
            assert_eq!(route(&req("GET", "/jibber", Some(bad)), &chain).status, 400);
        }
        for path in ["/", "/jibber/", "/Jibber", "/healthz/x", "/jibber%20", "//jibber"] {
            assert_eq!(route(&req("GET", path, None), &chain).status, 404, "{path}");
        }
        assert_eq!(route(&req("POST", "/nope", None), &chain).status, 404);
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "get", "TRACE"] {
            let r = route(&req(method, "/jibber", None), &chain);
            assert_eq!(r.status, 405, "{method}");
            assert_eq!(r.extra, vec!["Allow: GET, HEAD"]);
        }
    }

    #[test]
    fn fresh_seeds_differ() {
        let a = fresh_seed();
        let b = fresh_seed();
        assert_ne!(a, b);
    }
}
