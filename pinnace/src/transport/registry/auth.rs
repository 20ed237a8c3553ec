//! Registry authentication: `WWW-Authenticate` challenges, basic auth, and the bearer
//! token flow of the distribution token spec (`GET realm?service=..&scope=..`, with the
//! user's credentials as basic auth when there are any, anonymous otherwise).
//!
//! Tokens are cached per scope set until shortly before they expire; a 401 drops the
//! cached token for that scope and the request is retried once with a fresh one (see
//! [`super::client`]). Credentials never appear in `Debug` output or in errors.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// A user name and password (or identity token used as a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The secret.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

impl Credentials {
    /// The `Authorization: Basic ...` value.
    pub fn basic_header(&self) -> String {
        format!("Basic {}", base64_encode(format!("{}:{}", self.username, self.password).as_bytes()))
    }
}

/// A challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=...`.
    Basic,
    /// `Bearer realm=...,service=...,scope=...`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to send back.
        service: Option<String>,
        /// The scope the registry asked for, if it said.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value (RFC 7235 auth-params, quoted strings may hold
/// commas). Returns the first Bearer or Basic challenge.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let h = header.trim();
    let (scheme, rest) = h.split_once(char::is_whitespace).unwrap_or((h, ""));
    let params = parse_params(rest);
    let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer { realm: get("realm")?, service: get("service"), scope: get("scope") })
    } else if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else {
        None
    }
}

fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if name.trim().is_empty() {
            break;
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_string();
        }
        out.push((name.trim().to_string(), value));
    }
    out
}

/// A token endpoint's answer (`token`, or OAuth2's `access_token`).
#[derive(Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long to use it (60 s when the issuer does not say, as the
    /// token spec prescribes; renewed 10 s early).
    pub fn into_token(self) -> Option<(String, Duration)> {
        let t = if self.token.is_empty() { self.access_token } else { self.token };
        let ttl = self.expires_in.unwrap_or(60).max(20);
        (!t.is_empty()).then(|| (t, Duration::from_secs(ttl - 10)))
    }
}

/// Cached bearer tokens, keyed by the space-joined scope list.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.tokens.lock().map(|t| t.len()).unwrap_or(0);
        write!(f, "TokenCache({n} tokens, redacted)")
    }
}

impl TokenCache {
    /// A live token for `scope`.
    pub fn get(&self, scope: &str) -> Option<String> {
        let t = self.tokens.lock().ok()?;
        t.get(scope).filter(|(_, exp)| Instant::now() < *exp).map(|(v, _)| v.clone())
    }
    /// Stores a token for `ttl`.
    pub fn put(&self, scope: &str, token: String, ttl: Duration) {
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(scope.to_string(), (token, Instant::now() + ttl));
        }
    }
    /// Forgets the token for `scope` (after a 401).
    pub fn drop_scope(&self, scope: &str) {
        if let Ok(mut t) = self.tokens.lock() {
            t.remove(scope);
        }
    }
}

/// The token endpoint URL for `realm` with `service` and `scopes` (each its own
/// `scope=` parameter, as the token spec allows).
pub fn token_url(realm: &str, service: Option<&str>, scopes: &[String]) -> String {
    let mut url = realm.to_string();
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    if let Some(s) = service {
        url.push(sep);
        url.push_str("service=");
        url.push_str(&query_escape(s));
        sep = '&';
    }
    for s in scopes {
        url.push(sep);
        url.push_str("scope=");
        url.push_str(&query_escape(s));
        sep = '&';
    }
    url
}

/// Percent-encodes a query value (everything outside RFC 3986's unreserved set).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (what docker config `auth` fields and basic auth use).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional, whitespace ignored); `None` when invalid.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#;
        assert_eq!(
            parse_challenge(h),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None, "a bearer challenge needs a realm");
    }

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "user:pässword!", "x:y:z"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{e}");
        }
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert!(base64_decode("not base64!").is_none());
    }

    #[test]
    fn credentials_are_redacted() {
        let c = Credentials { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{c:?}").contains("hunter2"));
        let cache = TokenCache::default();
        cache.put("s", "secret-token".into(), Duration::from_secs(60));
        assert_eq!(cache.get("s").as_deref(), Some("secret-token"));
        assert!(!format!("{cache:?}").contains("secret"));
    }

    #[test]
    fn token_urls_escape_scopes() {
        let u = token_url("https://a/token", Some("reg svc"), &["repository:x/y:pull,push".into()]);
        assert_eq!(u, "https://a/token?service=reg%20svc&scope=repository%3Ax%2Fy%3Apull%2Cpush");
    }
}
