//! A small HTTP/1.1 proxy between pinnace and the registry that counts upload bytes and
//! how many uploads are in flight at once, and injects faults: a connection dropped in the
//! middle of a blob upload, a 500 or 429 with `Retry-After`, a truncated manifest, a blob
//! with one byte changed, uploads slowed down (so that concurrent ones surely overlap).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What to break.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Nothing: count only.
    None,
    /// Drop the connection after `after` bytes of the first PATCH body (once).
    DropPatch { after: usize },
    /// Answer the first request whose method is `method` and path contains `path` with
    /// `status` and `Retry-After: 1` (once).
    Status { method: &'static str, path: &'static str, status: u16 },
    /// Serve every manifest with half its body, then close.
    TruncateManifest,
    /// Flip a byte in the middle of every blob served.
    CorruptBlob,
    /// Hold every upload request carrying data (PATCH, PUT with a body) for `ms` before
    /// it goes on to the registry.
    SlowUploads { ms: u64 },
    /// Serve the first `after` bytes of every blob larger than that, then hold the
    /// connection for a minute (time for a test to kill the client mid-blob).
    StallBlob { after: usize },
}

/// What went through.
#[derive(Debug, Default)]
pub struct Stats {
    /// Request body bytes sent to `/blobs/uploads/` (PATCH, PUT).
    pub upload_bytes: AtomicU64,
    /// `METHOD PATH STATUS` per request.
    pub requests: Mutex<Vec<String>>,
    fired: AtomicBool,
    uploading: AtomicU64,
    max_uploading: AtomicU64,
}

impl Stats {
    /// The request log.
    pub fn log(&self) -> Vec<String> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Whether the fault happened.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
    /// The most upload requests carrying data that were in flight at the same time.
    pub fn max_concurrent_uploads(&self) -> u64 {
        self.max_uploading.load(Ordering::SeqCst)
    }
}

/// Counts an upload request in flight until dropped.
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn new(st: &'a Stats) -> InFlight<'a> {
        let now = st.uploading.fetch_add(1, Ordering::SeqCst) + 1;
        st.max_uploading.fetch_max(now, Ordering::SeqCst);
        InFlight(st)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.uploading.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running proxy (its threads live until the test process ends).
pub struct Proxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Counters.
    pub stats: Arc<Stats>,
}

/// Starts a proxy to `upstream` with `fault`.
pub fn start(upstream: &str, fault: Fault) -> Proxy {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let stats = Arc::new(Stats::default());
    let (st, up) = (stats.clone(), upstream.to_string());
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let (st, up, fault) = (st.clone(), up.clone(), fault.clone());
            std::thread::spawn(move || {
                let _ = serve(c, &up, &fault, &st);
            });
        }
    });
    Proxy { addr, stats }
}

struct Head {
    raw: Vec<u8>,
    first: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, k: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str())
    }
    fn len(&self) -> Option<u64> {
        self.get("content-length").and_then(|v| v.trim().parse().ok())
    }
}

fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut raw)?;
        if n == 0 {
            return Ok(None);
        }
        if raw.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("").to_string();
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().into(), v.trim().into())).collect();
    Ok(Some(Head { raw, first, headers }))
}

fn relay(r: &mut impl Read, w: &mut impl Write, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), w)?;
    if copied != n {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short body"));
    }
    Ok(())
}

fn relay_chunked(r: &mut impl BufRead, w: &mut impl Write) -> io::Result<()> {
    loop {
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line)?;
        w.write_all(&line)?;
        let size = u64::from_str_radix(String::from_utf8_lossy(&line).trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            loop {
                let mut t = Vec::new();
                r.read_until(b'\n', &mut t)?;
                w.write_all(&t)?;
                if t == b"\r\n" || t.is_empty() {
                    return Ok(());
                }
            }
        }
        relay(r, w, size + 2)?;
    }
}

fn serve(client: TcpStream, upstream: &str, fault: &Fault, st: &Stats) -> io::Result<()> {
    let mut cr = BufReader::new(client.try_clone()?);
    let mut cw = client;
    let server = TcpStream::connect(upstream)?;
    let mut sr = BufReader::new(server.try_clone()?);
    let mut sw = server;
    while let Some(req) = read_head(&mut cr)? {
        let mut parts = req.first.split(' ');
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let body = req.len().unwrap_or(0);
        let record = |status: &str| st.requests.lock().unwrap().push(format!("{method} {path} {status}"));
        if let Fault::Status { method: m, path: p, status } = fault {
            if method == *m && path.contains(p) && !st.fired.swap(true, Ordering::SeqCst) {
                relay(&mut cr, &mut io::sink(), body)?;
                write!(cw, "HTTP/1.1 {status} Injected\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n")?;
                record(&format!("{status} (injected)"));
                continue;
            }
        }
        let uploading = path.contains("/blobs/uploads/") && body > 0;
        let _in_flight = uploading.then(|| InFlight::new(st));
        if let (Fault::SlowUploads { ms }, true) = (fault, uploading) {
            std::thread::sleep(std::time::Duration::from_millis(*ms));
        }
        sw.write_all(&req.raw)?;
        if path.contains("/blobs/uploads/") {
            st.upload_bytes.fetch_add(body, Ordering::SeqCst);
        }
        if let Fault::DropPatch { after } = fault {
            if method == "PATCH" && body > *after as u64 && !st.fired.swap(true, Ordering::SeqCst) {
                relay(&mut cr, &mut sw, *after as u64)?;
                sw.flush()?;
                // Let the registry take what it got before the connection goes.
                std::thread::sleep(std::time::Duration::from_millis(300));
                record("dropped (injected)");
                let _ = sw.shutdown(std::net::Shutdown::Both);
                let _ = cw.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
        }
        relay(&mut cr, &mut sw, body)?;
        let Some(resp) = read_head(&mut sr)? else { return Ok(()) };
        let status: u16 = resp.first.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        record(&status.to_string());
        let no_body = method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
        if no_body {
            cw.write_all(&resp.raw)?;
            continue;
        }
        if resp.get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            cw.write_all(&resp.raw)?;
            relay_chunked(&mut sr, &mut cw)?;
            continue;
        }
        let n = resp.len().unwrap_or(0);
        let mut data = Vec::new();
        (&mut sr).take(n).read_to_end(&mut data)?;
        cw.write_all(&resp.raw)?;
        match fault {
            Fault::TruncateManifest if method == "GET" && path.contains("/manifests/") && status == 200 => {
                st.fired.store(true, Ordering::SeqCst);
                cw.write_all(&data[..data.len() / 2])?;
                cw.flush()?;
                let _ = cw.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
            Fault::StallBlob { after }
                if method == "GET" && path.contains("/blobs/") && data.len() > *after && status < 300 =>
            {
                cw.write_all(&data[..*after])?;
                cw.flush()?;
                st.fired.store(true, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_secs(60));
                let _ = cw.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
            Fault::CorruptBlob if method == "GET" && path.contains("/blobs/") && !data.is_empty() && status < 300 => {
                st.fired.store(true, Ordering::SeqCst);
                let mid = data.len() / 2;
                data[mid] ^= 0x40;
            }
            _ => {}
        }
        cw.write_all(&data)?;
    }
    Ok(())
}
