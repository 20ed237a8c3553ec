//! A minimal token issuer (distribution's token auth): a thread answering
//! `GET /token?service=..&scope=..` with an RS256 JWT signed by `openssl dgst`, its
//! self-signed certificate in the `x5c` header, which the registry trusts through
//! `rootcertbundle`. Basic credentials are required; every scope asked for is recorded.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::util::{cmd, run_ok, tempdir, TestDir};

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn encode(data: &[u8], url: bool) -> String {
    let mut out = String::new();
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            let ch = STD[(n >> (18 - 6 * i)) as usize & 63] as char;
            out.push(match (url, ch) {
                (true, '+') => '-',
                (true, '/') => '_',
                (_, c) => c,
            });
        }
        if !url {
            out.extend(std::iter::repeat_n('=', 3 - c.len()));
        }
    }
    out
}

/// Standard base64.
pub fn b64(s: &str) -> String {
    encode(s.as_bytes(), false)
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A running issuer.
pub struct Issuer {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The certificate the registry trusts.
    pub cert: PathBuf,
    scopes: Arc<Mutex<Vec<String>>>,
    _dir: TestDir,
}

impl Issuer {
    /// Scope lists of the tokens issued.
    pub fn scopes(&self) -> Vec<String> {
        self.scopes.lock().unwrap().clone()
    }

    /// Starts an issuer that accepts `user`:`pass`.
    pub fn start(user: &str, pass: &str) -> Issuer {
        let dir = tempdir();
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        run_ok(
            cmd("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=pinnace-test-issuer",
                    "-keyout",
                ])
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        let der = run_ok(cmd("openssl").args(["x509", "-outform", "der", "-in"]).arg(&cert)).stdout_bytes;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", l.local_addr().unwrap());
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let expected = format!("Basic {}", b64(&format!("{user}:{pass}")));
        let (sc, user, workdir) = (scopes.clone(), user.to_string(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut first = String::new();
                let _ = r.read_line(&mut first);
                let mut authorized = false;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        authorized |= k.eq_ignore_ascii_case("authorization") && v.trim() == expected;
                    }
                }
                let mut w = c;
                if !authorized {
                    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
                    let _ = write!(
                        w,
                        "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    continue;
                }
                let query = first
                    .split(' ')
                    .nth(1)
                    .and_then(|p| p.split_once('?'))
                    .map(|(_, q)| q.to_string())
                    .unwrap_or_default();
                let asked: Vec<String> =
                    query.split('&').filter_map(|kv| kv.strip_prefix("scope=")).map(unescape).collect();
                sc.lock().unwrap().push(asked.join(" "));
                let access: Vec<serde_json::Value> = asked
                    .iter()
                    .filter_map(|s| {
                        let mut p = s.splitn(3, ':');
                        let (t, name, actions) = (p.next()?, p.next()?, p.next()?);
                        Some(serde_json::json!({"type": t, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
                    })
                    .collect();
                let token = sign(&workdir, &der, &user, access);
                let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
                let _ = write!(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
        });
        Issuer { realm, cert, scopes, _dir: dir }
    }
}

fn sign(dir: &std::path::Path, der: &[u8], user: &str, access: Vec<serde_json::Value>) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [encode(der, false)]});
    let claims = serde_json::json!({
        "iss": "pinnace-test-issuer", "sub": user, "aud": "pinnace-test",
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", rand_id()),
        "access": access,
    });
    let input =
        format!("{}.{}", encode(header.to_string().as_bytes(), true), encode(claims.to_string().as_bytes(), true));
    let f = dir.join(format!("input-{}", rand_id()));
    std::fs::write(&f, &input).unwrap();
    let sig = run_ok(cmd("openssl").args(["dgst", "-sha256", "-sign"]).arg(dir.join("key.pem")).arg(&f)).stdout_bytes;
    let _ = std::fs::remove_file(&f);
    format!("{input}.{}", encode(&sig, true))
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}
