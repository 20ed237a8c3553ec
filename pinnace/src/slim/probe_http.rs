//! The HTTP/1.0 client of the probes: one `GET`, the raw response read to EOF, then
//! parsed (chunked bodies decoded, `Content-Length` honoured). Kept apart from the probe
//! logic so the wire format can be tested on its own.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::format_duration;

/// Bodies larger than this are cut (and the cut is an error of the probe).
const BODY_LIMIT: u64 = 64 << 20;

/// Why one HTTP exchange gave no response.
pub(super) enum Exchange {
    /// Connected, then closed or reset before a single byte: the app is not listening
    /// yet behind a proxy, or is restarting. Retried until the ready timeout.
    NotReady(String),
    /// A real failure (no answer in time, a cut body): recorded as the probe's error.
    Failed(String),
}

/// Sends one `GET` and reads the raw response to EOF (at most [`BODY_LIMIT`] bytes plus headers).
pub(super) fn exchange(mut s: TcpStream, port: u16, path: &str, timeout: Duration) -> Result<Vec<u8>, Exchange> {
    let end = Instant::now() + timeout;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\nUser-Agent: pinnace-slim-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let _ = s.set_write_timeout(Some(timeout));
    if let Err(e) = s.write_all(request.as_bytes()) {
        return Err(Exchange::NotReady(format!("sending the request: {e}")));
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Exchange::Failed(if raw.is_empty() {
                format!("connected, but no answer within {}", format_duration(timeout))
            } else {
                format!("the response was not complete after {} ({} bytes read)", format_duration(timeout), raw.len())
            }));
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut buf) {
            Ok(0) if raw.is_empty() => return Err(Exchange::NotReady("connection closed without a response".into())),
            Ok(0) => return Ok(raw),
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() as u64 > BODY_LIMIT + (64 << 10) {
                    return Err(Exchange::Failed(format!("the response is larger than {} MiB", BODY_LIMIT >> 20)));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if raw.is_empty() => return Err(Exchange::NotReady(format!("reading the response: {e}"))),
            Err(e) => return Err(Exchange::Failed(format!("reading the response after {} bytes: {e}", raw.len()))),
        }
    }
}

/// Status and body of a raw HTTP/1.x response (chunked bodies decoded, `Content-Length` honoured).
pub(super) fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let (head_end, body_start) = match find(raw, b"\r\n\r\n") {
        Some(i) => (i, i + 4),
        None => match find(raw, b"\n\n") {
            Some(i) => (i, i + 2),
            None => return Err(format!("not an HTTP response (no end of headers in {} bytes)", raw.len())),
        },
    };
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        let shown: String = status_line.chars().take(80).collect();
        return Err(format!("not an HTTP response (status line {shown:?})"));
    }
    let status: u16 = code.parse().map_err(|_| "bad status code".to_string())?;
    let mut chunked = false;
    let mut length: Option<u64> = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else { continue };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if k.eq_ignore_ascii_case("content-length") {
            length = Some(v.parse().map_err(|_| format!("bad Content-Length {v:?}"))?);
        }
    }
    let body = &raw[body_start..];
    if chunked {
        return decode_chunked(body).map(|b| (status, b));
    }
    match length {
        Some(n) if (body.len() as u64) < n => {
            Err(format!("the body was cut: {} of the {n} bytes Content-Length announced", body.len()))
        }
        Some(n) => Ok((status, body[..n as usize].to_vec())),
        None => Ok((status, body.to_vec())),
    }
}

/// Decodes a `Transfer-Encoding: chunked` body (extensions and trailers ignored).
pub(super) fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n").ok_or("chunked body: a chunk size line is cut")?;
        let line = std::str::from_utf8(&data[..eol]).map_err(|_| "chunked body: a chunk size is not text")?;
        let hexpart = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(hexpart, 16)
            .map_err(|_| format!("chunked body: bad chunk size {:?}", line.chars().take(20).collect::<String>()))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if size > (data.len() as u64) {
            return Err(format!("chunked body: a chunk of {size} bytes is cut after {} bytes", data.len()));
        }
        let size = size as usize;
        out.extend_from_slice(&data[..size]);
        data = &data[size..];
        if !data.starts_with(b"\r\n") {
            return Err("chunked body: no CRLF after a chunk".into());
        }
        data = &data[2..];
    }
}

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub(super) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || find(hay, needle).is_some()
}
