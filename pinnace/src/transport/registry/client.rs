//! The HTTP side of a registry: one blocking [`ureq`] agent per registry, the `/v2/`
//! ping that picks the scheme and learns the auth challenge, authentication on every
//! request, and retries.
//!
//! Retry contract: connection errors, 429 and 5xx are retried with exponential backoff
//! (250 ms doubling, capped at 8 s, with ±50 % jitter) or after the `Retry-After` the
//! registry sent (capped at 60 s), up to [`MAX_ATTEMPTS`] attempts. Other 4xx answers are
//! returned at once (a bad request or a refusal does not get better by repeating it),
//! except a 401, which refreshes the challenge and token and is retried once. Requests
//! marked `retry: false` (a PATCH of upload data, whose partial effect must be inspected
//! first) get neither; [`super::upload`] resumes them itself.

use std::hash::{BuildHasher, Hasher as _};
use std::io::Read;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use ureq::http::{self, Response};
use ureq::{Agent, Body};

use super::auth::{self, Challenge, Credentials, TokenCache};
use super::error::{parse_error_codes, status_hint, RegistryError};
use super::{credentials, reference, tls, RegistryOptions};

/// Attempts per request, the first included.
pub const MAX_ATTEMPTS: u32 = 5;
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
const ERROR_BODY_LIMIT: u64 = 64 << 10;
/// The agent's input and output buffer, per connection.
const IO_BUFFER: usize = 1 << 20;

/// HTTP methods the distribution API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Method {
    fn as_http(self) -> http::Method {
        match self {
            Method::Get => http::Method::GET,
            Method::Head => http::Method::HEAD,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Patch => http::Method::PATCH,
            Method::Delete => http::Method::DELETE,
        }
    }
}

/// One request: replayable, since the body is a slice.
#[derive(Debug)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body (`None`: no body at all).
    pub body: Option<&'a [u8]>,
    /// Token scopes the request needs (`repository:NAME:pull`, ...).
    pub scopes: Vec<String>,
    /// Whether transport errors, 429 and 5xx are retried here.
    pub retry: bool,
}

impl<'a> Request<'a> {
    /// A retried request without body.
    pub fn new(method: Method, url: String, scopes: Vec<String>) -> Request<'a> {
        Request { method, url, headers: Vec::new(), body: None, scopes, retry: true }
    }
    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    /// Sets the body.
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = Some(body);
        self
    }
}

/// A client for one registry (see the module contract).
pub struct Client {
    registry: String,
    host: String,
    agent: Agent,
    insecure: bool,
    base: OnceLock<String>,
    creds: Option<Credentials>,
    challenge: Mutex<Option<Challenge>>,
    tokens: TokenCache,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("registry", &self.registry).field("insecure", &self.insecure).finish()
    }
}

/// The repository scope for `actions` (`pull` or `pull,push`).
pub fn scope(repository: &str, actions: &str) -> String {
    format!("repository:{repository}:{actions}")
}

impl Client {
    /// A client for `registry` (`HOST[:PORT]`), with credentials looked up as
    /// [`credentials::lookup`] does unless `opts` carries some.
    pub fn new(registry: &str, opts: &RegistryOptions) -> Result<Client, RegistryError> {
        let verify = opts.tls_verify.unwrap_or(true);
        let tls = tls::tls_config(registry, verify, opts.cert_dir.as_deref())?;
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("pinnace/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .timeout_per_write(Some(Duration::from_secs(120)))
            // 1 MiB instead of ureq's 128 KiB each way: a large blob moves in an eighth of
            // the recv/send calls (issue 9: a pull made ~2,000 recvfrom calls for 247 MiB).
            .input_buffer_size(IO_BUFFER)
            .output_buffer_size(IO_BUFFER)
            .build();
        let creds = match &opts.credentials {
            Some(c) => Some(c.clone()),
            None => credentials::lookup(registry, opts.auth_file.as_deref())?,
        };
        Ok(Client {
            registry: registry.to_string(),
            host: reference::api_host(registry).to_string(),
            agent: config.into(),
            insecure: !verify,
            base: OnceLock::new(),
            creds,
            challenge: Mutex::new(None),
            tokens: TokenCache::default(),
        })
    }

    /// `HOST[:PORT]` as the user named it.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `SCHEME://HOST` after the ping; the API lives under `/v2/`.
    pub fn base(&self) -> Result<&str, RegistryError> {
        if let Some(b) = self.base.get() {
            return Ok(b);
        }
        // skopeo's rule: HTTPS, and with --tls-verify=false, plain HTTP when HTTPS fails.
        let schemes: &[&str] = if self.insecure { &["https", "http"] } else { &["https"] };
        let mut last = None;
        for (i, s) in schemes.iter().enumerate() {
            let url = format!("{s}://{}/v2/", self.host);
            let mut req = Request::new(Method::Get, url, Vec::new());
            req.retry = i + 1 == schemes.len();
            match self.raw_send(&req, None, "ping /v2/") {
                Ok(resp) => {
                    if resp.status() == 401 {
                        self.learn_challenge(&resp);
                    }
                    let _ = self.base.set(format!("{s}://{}", self.host));
                    return Ok(self.base.get().map(String::as_str).unwrap_or_default());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| self.connect_error("ping /v2/", "no scheme to try".into())))
    }

    /// `BASE/v2/PATH`.
    pub fn url(&self, path: &str) -> Result<String, RegistryError> {
        Ok(format!("{}/v2/{path}", self.base()?))
    }

    /// Resolves a `Location` header against the registry base.
    pub fn resolve(&self, location: &str) -> Result<String, RegistryError> {
        if location.starts_with("http://") || location.starts_with("https://") {
            Ok(location.to_string())
        } else if location.starts_with('/') {
            Ok(format!("{}{location}", self.base()?))
        } else {
            Ok(format!("{}/{location}", self.base()?))
        }
    }

    fn learn_challenge(&self, resp: &Response<Body>) -> bool {
        let h = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok());
        match h.and_then(auth::parse_challenge) {
            Some(c) => {
                if let Ok(mut g) = self.challenge.lock() {
                    *g = Some(c);
                }
                true
            }
            None => false,
        }
    }

    fn auth_header(&self, scopes: &[String]) -> Result<Option<String>, RegistryError> {
        let ch = self.challenge.lock().ok().and_then(|g| g.clone());
        match ch {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.creds.as_ref().map(Credentials::basic_header)),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = scopes.join(" ");
                if let Some(t) = self.tokens.get(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let (token, ttl) = self.fetch_token(&realm, service.as_deref(), scopes)?;
                self.tokens.put(&key, token.clone(), ttl);
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<(String, Duration), RegistryError> {
        let err = |why: String| RegistryError::Token { registry: self.registry.clone(), realm: realm.into(), why };
        let mut req = Request::new(Method::Get, auth::token_url(realm, service, scopes), Vec::new());
        if let Some(c) = &self.creds {
            req = req.header("Authorization", c.basic_header());
        }
        let resp = self.raw_send(&req, None, "token").map_err(|e| err(e.to_string()))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let bytes = body.with_config().limit(1 << 20).read_to_vec().map_err(|e| err(e.to_string()))?;
        if status != 200 {
            let codes = parse_error_codes(&bytes);
            let hint = if status == 401 || status == 403 {
                format!("; the credentials were refused: log in again with `pinnace login {}`", self.registry)
            } else {
                String::new()
            };
            let list: Vec<String> = codes.iter().map(ToString::to_string).collect();
            return Err(err(format!("HTTP {status} {}{hint}", list.join(", "))));
        }
        let t: auth::TokenResponse =
            serde_json::from_slice(&bytes).map_err(|e| err(format!("not a token response: {e}")))?;
        t.into_token().ok_or_else(|| err("the response holds no token".into()))
    }

    /// Sends `req` with authentication and the retry contract of the module; returns any
    /// final answer (the caller checks the status, see [`Client::status_error`]).
    pub fn send(&self, req: &Request<'_>, what: &str) -> Result<Response<Body>, RegistryError> {
        self.base()?;
        let mut scopes = req.scopes.clone();
        let mut reauthed = false;
        loop {
            let auth = self.auth_header(&scopes)?;
            let resp = self.raw_send(req, auth, what)?;
            if resp.status() == 401 && !reauthed {
                reauthed = true;
                self.tokens.drop_scope(&scopes.join(" "));
                if !self.learn_challenge(&resp) {
                    return Ok(resp);
                }
                let ch = self.challenge.lock().ok().and_then(|g| g.clone());
                match ch {
                    Some(Challenge::Basic) if self.creds.is_none() => return Ok(resp),
                    Some(Challenge::Bearer { scope: Some(s), .. }) if !scopes.contains(&s) => {
                        self.tokens.drop_scope(&scopes.join(" "));
                        scopes.push(s);
                    }
                    _ => {}
                }
                continue;
            }
            return Ok(resp);
        }
    }

    /// Sends `req` once with `len` bytes streamed from `body` (`req.body` is ignored): no
    /// retry, since the bytes cannot be sent again from here; the caller inspects the
    /// upload session instead (see [`super::upload::Upload::stream`]).
    pub fn send_streamed(
        &self,
        req: &Request<'_>,
        body: &mut dyn Read,
        len: u64,
        what: &str,
    ) -> Result<Response<Body>, RegistryError> {
        self.base()?;
        let mut b = http::Request::builder().method(req.method.as_http()).uri(&req.url);
        for (k, v) in &req.headers {
            b = b.header(*k, v);
        }
        if let Some(a) = self.auth_header(&req.scopes)? {
            b = b.header("Authorization", a);
        }
        b = b.header("Content-Length", len.to_string());
        let mut limited = body.take(len);
        let r =
            b.body(ureq::SendBody::from_reader(&mut limited)).map_err(|e| self.connect_error(what, e.to_string()))?;
        self.run(r).map_err(|why| self.connect_error(what, why))
    }

    /// One request with retries on transport errors, 429 and 5xx (when `req.retry`).
    fn raw_send(&self, req: &Request<'_>, auth: Option<String>, what: &str) -> Result<Response<Body>, RegistryError> {
        let attempts = if req.retry { MAX_ATTEMPTS } else { 1 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut b = http::Request::builder().method(req.method.as_http()).uri(&req.url);
            for (k, v) in &req.headers {
                b = b.header(*k, v);
            }
            if let Some(a) = &auth {
                b = b.header("Authorization", a);
            }
            let result = match req.body {
                Some(body) => b.body(body).map_err(|e| e.to_string()).and_then(|r| self.run(r)),
                None => b.body(()).map_err(|e| e.to_string()).and_then(|r| self.run(r)),
            };
            match result {
                Err(why) if attempt < attempts && retryable_transport(&why) => sleep_backoff(attempt, None),
                Err(why) => return Err(self.connect_error(what, why)),
                Ok(resp) if attempt < attempts && retryable_status(resp.status().as_u16()) => {
                    sleep_backoff(attempt, retry_after(&resp));
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }

    fn run<B: ureq::AsSendBody>(&self, r: http::Request<B>) -> Result<Response<Body>, String> {
        self.agent.run(r).map_err(|e| e.to_string())
    }

    fn connect_error(&self, what: &str, why: String) -> RegistryError {
        let tlsish =
            why.contains("tls") || why.contains("TLS") || why.contains("certificate") || why.contains("corrupt");
        let hint = if tlsish && !self.insecure {
            "; a plain-HTTP registry needs --tls-verify=false, a private CA --cert-dir DIR (with ca.crt) or SSL_CERT_FILE"
        } else {
            ""
        };
        RegistryError::Connect { registry: self.registry.clone(), what: what.to_string(), why, hint }
    }

    /// The error for an unexpected answer: status, the registry's codes, and a hint.
    pub fn status_error(&self, resp: Response<Body>, repository: &str, what: &str) -> RegistryError {
        let status = resp.status().as_u16();
        let mut bytes = Vec::new();
        let _ = resp.into_body().into_reader().take(ERROR_BODY_LIMIT).read_to_end(&mut bytes);
        let codes = parse_error_codes(&bytes);
        RegistryError::Status {
            registry: self.registry.clone(),
            repository: repository.to_string(),
            what: what.to_string(),
            status,
            hint: status_hint(&self.registry, status, &codes),
            codes,
        }
    }

    /// An answer that breaks the protocol.
    pub fn protocol_error(&self, repository: &str, what: &str, why: impl Into<String>) -> RegistryError {
        RegistryError::Protocol {
            registry: self.registry.clone(),
            repository: repository.to_string(),
            what: what.to_string(),
            why: why.into(),
        }
    }

    /// Checks that the registry accepts the credentials (for `pinnace login`): pings and,
    /// for token auth, fetches a token without a scope.
    pub fn check_login(&self) -> Result<(), RegistryError> {
        let url = self.url("")?;
        let resp = self.send(&Request::new(Method::Get, url, Vec::new()), "log in")?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            _ => Err(self.status_error(resp, "(none)", "log in")),
        }
    }
}

fn retryable_transport(why: &str) -> bool {
    // Name resolution and TLS failures do not heal by repeating; broken connections and
    // timeouts may.
    !(why.contains("host not found") || why.contains("tls") || why.contains("certificate") || why.contains("corrupt"))
}

fn retryable_status(status: u16) -> bool {
    status == 429 || status >= 500
}

/// `Retry-After`, in either form RFC 7231 §7.1.3 allows: delay-seconds, or an HTTP-date
/// (the time to wait is then that date minus now; a date in the past means at once).
/// Capped at 60 s; `None` when absent or unreadable (backoff applies).
pub fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    parse_retry_after(v, std::time::SystemTime::now())
}

fn parse_retry_after(v: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = v.trim();
    let wait = match v.parse::<u64>() {
        Ok(s) => Duration::from_secs(s),
        Err(_) => parse_http_date(v)?.duration_since(now).unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// An HTTP-date (RFC 7231 §7.1.1.1): the IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, and
/// the obsolete forms recipients must still read, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`
/// and asctime `Sun Nov  6 08:49:37 1994`.
fn parse_http_date(v: &str) -> Option<std::time::SystemTime> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = |m: &str| MONTHS.iter().position(|x| *x == m).map(|i| i as u32 + 1);
    let (year, mon, day, time) = match v.split_once(", ") {
        Some((_, rest)) => {
            let f: Vec<&str> = rest.split(' ').collect();
            match f.as_slice() {
                // IMF-fixdate.
                [d, m, y, t, "GMT"] if y.len() == 4 => (y.parse::<i64>().ok()?, month(m)?, d.parse::<u32>().ok()?, *t),
                // RFC 850: two-digit years are taken as 1970-2069.
                [date, t, "GMT"] => {
                    let mut p = date.split('-');
                    let (d, m, y) = (p.next()?, p.next()?, p.next()?);
                    let y = y.parse::<i64>().ok().filter(|_| y.len() == 2)?;
                    (if y >= 70 { 1900 + y } else { 2000 + y }, month(m)?, d.parse::<u32>().ok()?, *t)
                }
                _ => return None,
            }
        }
        None => {
            let f: Vec<&str> = v.split_whitespace().collect();
            match f.as_slice() {
                [_, m, d, t, y] => (y.parse::<i64>().ok()?, month(m)?, d.parse::<u32>().ok()?, *t),
                _ => return None,
            }
        }
    };
    let mut hms = time.split(':').map(|x| x.parse::<u32>().ok());
    let (h, mi, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(year, mon, day) * 86_400 + i64::from(h * 3600 + mi * 60 + sec);
    let secs = u64::try_from(secs).ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Sleeps before attempt `attempt + 1`: `Retry-After` when given, else backoff with jitter.
pub fn sleep_backoff(attempt: u32, retry_after: Option<Duration>) {
    std::thread::sleep(backoff(attempt, retry_after));
}

fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(r) = retry_after {
        return r;
    }
    let base = 250u64.saturating_mul(1 << attempt.saturating_sub(1).min(6)).min(8000);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let jitter = h.finish() % (base + 1);
    Duration::from_millis(base / 2 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for a in 1..10 {
            let d = backoff(a, None).as_millis() as u64;
            let base = (250u64 << (a - 1).min(6)).min(8000);
            assert!(d >= base / 2 && d <= base + base / 2, "attempt {a}: {d}");
        }
        assert_eq!(backoff(3, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert!(retryable_status(503) && retryable_status(429) && !retryable_status(404) && !retryable_status(401));
        assert!(!retryable_transport("tls: bad certificate") && retryable_transport("io: Connection reset by peer"));
    }

    #[test]
    fn retry_after_in_seconds_and_http_dates() {
        use std::time::UNIX_EPOCH;
        // 1994-11-06 08:49:37 UTC, the RFC's example.
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(UNIX_EPOCH), "the epoch itself");
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(1_835_481_599)),
            "a leap day"
        );
        let before = t - Duration::from_secs(7);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", before), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t + Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 09:49:37 GMT", t), Some(MAX_RETRY_AFTER), "capped");
        assert_eq!(parse_retry_after(" 3 ", t), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("100000", t), Some(MAX_RETRY_AFTER));
        for bad in [
            "soon",
            "",
            "-1",
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, t), None, "{bad:?}");
        }
    }
}
