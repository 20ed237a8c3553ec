//! Just enough HTTP/1.1 for jibber: finding and parsing a request head, reading the
//! `seed` query parameter, and serialising responses.
//!
//! Everything here is a pure function over bytes, so hostile input is tested without
//! sockets. The parser is strict where leniency enables request smuggling (conflicting
//! or malformed `Content-Length`, `Transfer-Encoding` together with `Content-Length`,
//! obsolete line folding, bare CR, control characters) and lenient where RFC 9112 allows
//! it (bare LF line endings, empty lines before the request line).

/// The largest request head (request line plus headers, including the blank line)
/// accepted; a longer head gets `431 Request Header Fields Too Large`.
pub const MAX_HEAD: usize = 8 * 1024;

/// The most header fields accepted in one request; more gets 431.
pub const MAX_HEADERS: usize = 64;

/// The largest request body read and discarded to keep a connection alive; a larger
/// declared body gets `413 Content Too Large` and the connection is closed.
pub const MAX_BODY: u64 = 64 * 1024;

/// The protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: connections close after one exchange unless asked otherwise.
    Http10,
    /// HTTP/1.1: connections persist unless asked otherwise.
    Http11,
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body.
    None,
    /// A body of exactly this many bytes (`Content-Length`).
    Length(u64),
    /// A `Transfer-Encoding` body. jibber does not decode it: it answers and closes.
    Chunked,
}

/// A parsed request head. Borrowed from the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method token, case-sensitive (`GET`, `HEAD`, ...).
    pub method: &'a str,
    /// The path part of the origin-form target, without the query.
    pub path: &'a str,
    /// The query (after `?`), if the target had one.
    pub query: Option<&'a str>,
    /// The protocol version.
    pub version: Version,
    /// Whether the client lets the connection persist after this exchange.
    pub keep_alive: bool,
    /// How the body is framed.
    pub body: Body,
}

/// Why a request head was rejected. Each maps to one response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Malformed syntax: 400.
    BadRequest,
    /// Head longer than [`MAX_HEAD`] or more than [`MAX_HEADERS`] fields: 431.
    HeadTooLarge,
    /// Well-formed but unsupported version such as HTTP/2.0: 505.
    VersionNotSupported,
}

impl Error {
    /// The response status for this error.
    pub fn status(self) -> u16 {
        match self {
            Error::BadRequest => 400,
            Error::HeadTooLarge => 431,
            Error::VersionNotSupported => 505,
        }
    }
}

/// The number of leading bytes of `buf` that are empty lines (CRLF or LF), which a
/// server should skip before a request line (RFC 9112 section 2.2).
pub fn leading_blank_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match buf.get(i..) {
            Some([b'\n', ..]) => i += 1,
            Some([b'\r', b'\n', ..]) => i += 2,
            _ => return i,
        }
    }
}

/// The length of the request head at the start of `buf`, including the blank line
/// that ends it (CRLF CRLF, or bare LFs), or `None` if the head is not complete yet.
pub fn head_len(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match buf.get(i + 1..) {
                Some([b'\n', ..]) => return Some(i + 2),
                Some([b'\r', b'\n', ..]) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// `tchar` from RFC 9110: the characters of a token (method, header name).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Header value bytes: visible ASCII, space, tab and obs-text; no other controls.
fn is_field_value(s: &[u8]) -> bool {
    s.iter().all(|&b| b == b'\t' || b == b' ' || (0x21..=0x7E).contains(&b) || b >= 0x80)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses a decimal number of 1 to 20 ASCII digits (no sign, no spaces) that fits a
/// u64. `str::parse` would also accept a leading `+`.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Whether a comma-separated header value contains `token`, case-insensitively.
fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|t| trim_ows(t).eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses a complete request head (as delimited by [`head_len`], after skipping
/// [`leading_blank_lines`]). Never panics, whatever the bytes.
pub fn parse_head(head: &[u8]) -> Result<Request<'_>, Error> {
    if head.len() > MAX_HEAD {
        return Err(Error::HeadTooLarge);
    }
    // Exactly one complete head: it ends at its first blank line.
    if head_len(head) != Some(head.len()) {
        return Err(Error::BadRequest);
    }
    let mut lines = head.split(|&b| b == b'\n').map(|l| match l {
        [rest @ .., b'\r'] => rest,
        l => l,
    });

    // Request line: method SP request-target SP HTTP-version, single spaces.
    let request_line = lines.next().ok_or(Error::BadRequest)?;
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::BadRequest);
    };
    if !is_token(method) {
        return Err(Error::BadRequest);
    }
    // Origin form only, visible ASCII only.
    if target.first() != Some(&b'/') || !target.iter().all(|b| (0x21..=0x7E).contains(b)) {
        return Err(Error::BadRequest);
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            return Err(Error::VersionNotSupported)
        }
        _ => return Err(Error::BadRequest),
    };
    // Both checked to be ASCII above, so these conversions cannot fail.
    let method = std::str::from_utf8(method).map_err(|_| Error::BadRequest)?;
    let target = std::str::from_utf8(target).map_err(|_| Error::BadRequest)?;
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };

    let mut close = false;
    let mut keep_alive_token = false;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut hosts = 0;
    let mut fields = 0;
    for line in lines {
        if line.is_empty() {
            break;
        }
        fields += 1;
        if fields > MAX_HEADERS {
            return Err(Error::HeadTooLarge);
        }
        // Obsolete line folding and whitespace before the colon are rejected, and so is
        // a bare CR (the value check excludes every control but HTAB).
        let colon = line.iter().position(|&b| b == b':').ok_or(Error::BadRequest)?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if !is_token(name) || !is_field_value(value) {
            return Err(Error::BadRequest);
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_u64(value).ok_or(Error::BadRequest)?;
            if content_length.is_some_and(|old| old != n) {
                return Err(Error::BadRequest);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= has_token(value, "close");
            keep_alive_token |= has_token(value, "keep-alive");
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        }
    }
    if hosts > 1 {
        return Err(Error::BadRequest);
    }
    let body = match (transfer_encoding, content_length) {
        (true, Some(_)) => return Err(Error::BadRequest),
        (true, None) => Body::Chunked,
        (false, Some(0) | None) => Body::None,
        (false, Some(n)) => Body::Length(n),
    };
    let keep_alive = !close
        && match version {
            Version::Http11 => true,
            Version::Http10 => keep_alive_token,
        };
    Ok(Request { method, path, query, version, keep_alive, body })
}

/// The `seed` parameter of a query string: `Ok(None)` when absent, `Ok(Some(n))` for
/// exactly one `seed=N` with N a decimal u64, `Err(())` for anything else that names
/// `seed` (empty, signed, non-numeric, overflowing, repeated, no `=`). Other
/// parameters are ignored.
pub fn seed_param(query: Option<&str>) -> Result<Option<u64>, ()> {
    let mut seed = None;
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = match pair.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (pair, None),
        };
        if key != "seed" {
            continue;
        }
        if seed.is_some() {
            return Err(());
        }
        seed = Some(parse_u64(value.ok_or(())?.as_bytes()).ok_or(())?);
    }
    Ok(seed)
}

/// The reason phrase for the statuses jibber sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The Content-Type header.
    pub content_type: &'static str,
    /// Extra header lines, each `Name: value` without CRLF.
    pub extra: Vec<&'static str>,
    /// The body (sent for every method except HEAD).
    pub body: Vec<u8>,
}

impl Response {
    /// A `text/plain` response.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            extra: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    /// The plain-text error response for `status`: its reason phrase as the body.
    pub fn error(status: u16) -> Response {
        let mut body = reason(status).to_ascii_lowercase();
        body.push('\n');
        Response::text(status, &body)
    }

    /// The bytes on the wire: status line, headers (with `Date`, `Content-Length` and
    /// `Connection`), blank line and, unless `head_only`, the body.
    pub fn to_bytes(&self, head_only: bool, keep_alive: bool, date: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(192 + self.body.len());
        let mut push = |s: &str| out.extend_from_slice(s.as_bytes());
        push("HTTP/1.1 ");
        push(&self.status.to_string());
        push(" ");
        push(reason(self.status));
        push("\r\nDate: ");
        push(date);
        push("\r\nContent-Type: ");
        push(self.content_type);
        push("\r\nContent-Length: ");
        push(&self.body.len().to_string());
        push(if keep_alive { "\r\nConnection: keep-alive\r\n" } else { "\r\nConnection: close\r\n" });
        for line in &self.extra {
            push(line);
            push("\r\n");
        }
        push("\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for `secs` seconds after the Unix
/// epoch, for the `Date` header.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), unsigned
    // because dates before the epoch never occur here.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(head: &str) -> Request<'_> {
        parse_head(head.as_bytes()).unwrap_or_else(|e| panic!("{head:?}: {e:?}"))
    }

    fn err(head: &[u8]) -> Error {
        match parse_head(head) {
            Ok(r) => panic!("{:?} parsed as {r:?}", String::from_utf8_lossy(head)),
            Err(e) => e,
        }
    }

    #[test]
    fn simple_get() {
        let r = ok("GET /jibber HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/jibber");
        assert_eq!(r.query, None);
        assert_eq!(r.version, Version::Http11);
        assert!(r.keep_alive);
        assert_eq!(r.body, Body::None);
    }

    #[test]
    fn query_and_versions() {
        let r = ok("GET /jibber?seed=5&x HTTP/1.0\r\n\r\n");
        assert_eq!(r.path, "/jibber");
        assert_eq!(r.query, Some("seed=5&x"));
        assert_eq!(r.version, Version::Http10);
        assert!(!r.keep_alive);
        let r = ok("GET /? HTTP/1.1\r\n\r\n");
        assert_eq!((r.path, r.query), ("/", Some("")));
        let r = ok("HEAD /a?b?c HTTP/1.1\r\n\r\n");
        assert_eq!((r.path, r.query), ("/a", Some("b?c")));
    }

    #[test]
    fn connection_header() {
        assert!(!ok("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.1\r\nconnection: Keep-Alive, CLOSE\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.1\r\nConnection: upgrade,close\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.0\r\nConnection: \r\n\r\n").keep_alive);
    }

    #[test]
    fn bare_lf_and_whitespace_in_values() {
        let r = ok("GET /healthz HTTP/1.1\nHost: x\nX:   \t padded \t \n\n");
        assert_eq!(r.path, "/healthz");
        ok("GET / HTTP/1.1\r\nX-Empty:\r\n\r\n");
        ok("GET / HTTP/1.1\r\nX: a\tb c\r\n\r\n");
        assert!(parse_head(b"GET / HTTP/1.1\r\nX: caf\xc3\xa9 \xff\r\n\r\n").is_ok());
    }

    #[test]
    fn bodies() {
        assert_eq!(ok("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").body, Body::Length(12));
        assert_eq!(ok("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").body, Body::None);
        assert_eq!(ok("POST / HTTP/1.1\r\ncontent-length: 7\r\nContent-Length: 7\r\n\r\n").body, Body::Length(7));
        assert_eq!(ok("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").body, Body::Chunked);
        assert_eq!(ok("POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n").body, Body::Length(u64::MAX));
    }

    #[test]
    fn hostile_content_length() {
        for cl in [
            "-1",
            "+1",
            "1.0",
            "0x10",
            "1 2",
            "1,1",
            "",
            "18446744073709551616",
            "99999999999999999999999999",
            "١",
            "1\x0b",
        ] {
            let head = format!("POST / HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n");
            assert_eq!(err(head.as_bytes()), Error::BadRequest, "{cl:?}");
        }
        assert_eq!(err(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), Error::BadRequest);
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Error::BadRequest
        );
    }

    #[test]
    fn malformed_request_lines() {
        let cases: &[&[u8]] = &[
            b"\r\n\r\n",
            b"\n\n",
            b"GET\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET / \r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET /  HTTP/1.1\r\n\r\n",
            b" GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET\t/\tHTTP/1.1\r\n\r\n",
            b"GET jibber HTTP/1.1\r\n\r\n",
            b"GET * HTTP/1.1\r\n\r\n",
            b"GET http://x/jibber HTTP/1.1\r\n\r\n",
            b"GET /a\x00b HTTP/1.1\r\n\r\n",
            b"GET /a\x7fb HTTP/1.1\r\n\r\n",
            b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"G\xc3\x89T / HTTP/1.1\r\n\r\n",
            b"GET / http/1.1\r\n\r\n",
            b"GET / HTTP/1.1x\r\n\r\n",
            b"GET / HTTP/11\r\n\r\n",
            b"GET / HTTP/1.\r\n\r\n",
            b"GET / HTTP/\r\n\r\n",
            b"GET / HTTP/a.b\r\n\r\n",
            b"GET / HTTP/1.1\r\r\n\r\n",
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1",
            b"",
            b"\xff\xfe\xfd",
        ];
        for case in cases {
            assert_eq!(err(case), Error::BadRequest, "{:?}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn unsupported_versions() {
        for v in ["HTTP/2.0", "HTTP/0.9", "HTTP/3.0", "HTTP/1.2"] {
            let head = format!("GET / {v}\r\n\r\n");
            assert_eq!(err(head.as_bytes()), Error::VersionNotSupported, "{v}");
        }
    }

    #[test]
    fn malformed_headers() {
        let cases: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n",
            b"GET / HTTP/1.1\r\nX Y: z\r\n\r\n",
            b"GET / HTTP/1.1\r\nX\x00: z\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x1bb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX\xc3\xa9: z\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r",
        ];
        for case in cases {
            assert_eq!(err(case), Error::BadRequest, "{:?}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn too_many_or_too_long_headers() {
        let mut head = String::from("GET / HTTP/1.1\r\n");
        for i in 0..MAX_HEADERS {
            head.push_str(&format!("X-{i}: v\r\n"));
        }
        let at_limit = format!("{head}\r\n");
        assert!(parse_head(at_limit.as_bytes()).is_ok());
        head.push_str("X-last: v\r\n\r\n");
        assert_eq!(err(head.as_bytes()), Error::HeadTooLarge);

        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(err(long.as_bytes()), Error::HeadTooLarge);
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(err(long_target.as_bytes()), Error::HeadTooLarge);
    }

    #[test]
    fn finding_the_head() {
        assert_eq!(head_len(b""), None);
        assert_eq!(head_len(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(head_len(b"GET / HTTP/1.1\r\nHost: x\r\n\r"), None);
        assert_eq!(head_len(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
        assert_eq!(head_len(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(head_len(b"GET / HTTP/1.1\r\n\nX"), Some(17));
        assert_eq!(head_len(b"A\r\nB: c\r\n\r\nbody\r\n\r\n"), Some(11));
        assert_eq!(head_len(b"\n\n"), Some(2));
        assert_eq!(head_len(b"\r\r\r\r"), None);
    }

    #[test]
    fn skipping_blank_lines() {
        assert_eq!(leading_blank_lines(b""), 0);
        assert_eq!(leading_blank_lines(b"\r\n\nGET"), 3);
        assert_eq!(leading_blank_lines(b"\r\n\r\n"), 4);
        assert_eq!(leading_blank_lines(b"\r"), 0);
        assert_eq!(leading_blank_lines(b"\r\r\n"), 0);
        assert_eq!(leading_blank_lines(b"GET"), 0);
    }

    #[test]
    fn seeds() {
        assert_eq!(seed_param(None), Ok(None));
        assert_eq!(seed_param(Some("")), Ok(None));
        assert_eq!(seed_param(Some("seed=0")), Ok(Some(0)));
        assert_eq!(seed_param(Some("seed=42")), Ok(Some(42)));
        assert_eq!(seed_param(Some("a=1&seed=007&b")), Ok(Some(7)));
        assert_eq!(seed_param(Some("seeds=1&xseed=2")), Ok(None));
        assert_eq!(seed_param(Some("seed=18446744073709551615")), Ok(Some(u64::MAX)));
        for bad in [
            "seed",
            "seed=",
            "seed=-1",
            "seed=+1",
            "seed= 1",
            "seed=1 ",
            "seed=1.5",
            "seed=abc",
            "seed=0x10",
            "seed=18446744073709551616",
            "seed=000000000000000000001",
            "seed=%31",
            "seed=1&seed=1",
            "seed=1=2",
        ] {
            assert_eq!(seed_param(Some(bad)), Err(()), "{bad}");
        }
    }

    #[test]
    fn responses_serialise() {
        let r = Response::text(200, "ok");
        let bytes = r.to_bytes(false, true, "Thu, 01 Jan 1970 00:00:00 GMT");
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Length: 2\r\n"));
        assert!(text.contains("\r\nConnection: keep-alive\r\n"));
        assert!(text.ends_with("\r\n\r\nok"));

        let mut r = Response::error(405);
        r.extra.push("Allow: GET, HEAD");
        let text = String::from_utf8(r.to_bytes(true, false, "d")).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text.contains("\r\nAllow: GET, HEAD\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.contains("\r\nContent-Length: 19\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "HEAD has no body");
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_709_164_799), "Wed, 28 Feb 2024 23:59:59 GMT");
        assert_eq!(http_date(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
        // Far future: no panic, no overflow.
        let _ = http_date(u64::MAX / 2);
    }

    /// Every status jibber can send has a reason phrase.
    #[test]
    fn reasons() {
        for s in [200, 400, 404, 405, 408, 413, 431, 503, 505] {
            assert_ne!(reason(s), "Unknown");
        }
    }

    /// A small deterministic fuzzer: random bytes and mutations of valid requests go
    /// through the same functions the server uses; nothing may panic, and whatever
    /// parses must be internally consistent.
    #[test]
    fn fuzz_never_panics() {
        let mut rng = crate::chain::SplitMix64::new(0x5EED);
        let seeds: &[&[u8]] = &[
            b"GET /jibber?seed=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            b"POST /jibber HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"HEAD /healthz HTTP/1.0\nConnection: keep-alive\n\n",
            b"\r\n\r\nGET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ];
        let alphabet = b"\r\n :?=&/\t\x00\x7f\xffGETHP1.0seed-,";
        for round in 0..20_000 {
            let mut buf: Vec<u8> = if round % 4 == 0 {
                let len = rng.below(200);
                (0..len).map(|_| rng.next_u64() as u8).collect()
            } else {
                seeds[rng.below(seeds.len())].to_vec()
            };
            for _ in 0..rng.below(8) {
                if buf.is_empty() {
                    buf.push(b'G');
                }
                let at = rng.below(buf.len());
                let byte = if rng.below(2) == 0 { alphabet[rng.below(alphabet.len())] } else { rng.next_u64() as u8 };
                match rng.below(3) {
                    0 => buf[at] = byte,
                    1 => buf.insert(at, byte),
                    _ => {
                        buf.remove(at);
                    }
                }
            }
            let skip = leading_blank_lines(&buf);
            assert!(skip <= buf.len());
            let rest = &buf[skip..];
            let Some(len) = head_len(rest) else {
                let _ = parse_head(rest);
                continue;
            };
            assert!(len <= rest.len());
            if let Ok(req) = parse_head(&rest[..len]) {
                assert!(req.path.starts_with('/'));
                assert!(!req.method.is_empty());
                let _ = seed_param(req.query);
            }
        }
    }
}
