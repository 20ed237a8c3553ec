//! Registry credentials where docker, podman and skopeo keep them.
//!
//! Lookup order (containers/image's): `--authfile`, `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `$XDG_CONFIG_HOME/containers/auth.json`
//! (`~/.config/...`), then docker's `$DOCKER_CONFIG/config.json` (`~/.docker/...`). In
//! each file a `credHelpers` entry for the registry wins, then an `auths` entry (base64
//! `auth` or `username`/`password`; keys may carry a scheme or path, as docker writes
//! `https://index.docker.io/v1/`), then the file's `credsStore`. Helpers are run as
//! `docker-credential-NAME get` with the registry on stdin.
//!
//! `pinnace login` and `logout` write the first file of the podman order
//! (`--authfile`, `$REGISTRY_AUTH_FILE`, the runtime dir, the config dir), keeping every
//! other key of an existing file, atomically and with mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

use super::auth::{base64_decode, base64_encode, Credentials};
use super::reference::normalize_registry;
use super::RegistryError;
use crate::blob::AtomicFile;

fn env_path(k: &str) -> Option<PathBuf> {
    std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn home() -> Option<PathBuf> {
    env_path("HOME")
}

/// The files searched for credentials, in order (existing or not).
pub fn search_path(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    v.extend(explicit.map(Path::to_path_buf));
    v.extend(env_path("REGISTRY_AUTH_FILE"));
    v.extend(env_path("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
    v.extend(
        env_path("XDG_CONFIG_HOME")
            .or_else(|| home().map(|h| h.join(".config")))
            .map(|d| d.join("containers/auth.json")),
    );
    v.extend(env_path("DOCKER_CONFIG").or_else(|| home().map(|h| h.join(".docker"))).map(|d| d.join("config.json")));
    v
}

/// The file `login`/`logout` write (see the module docs).
pub fn write_target(explicit: Option<&Path>) -> Result<PathBuf, RegistryError> {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| env_path("REGISTRY_AUTH_FILE"))
        .or_else(|| env_path("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")))
        .or_else(|| {
            env_path("XDG_CONFIG_HOME")
                .or_else(|| home().map(|h| h.join(".config")))
                .map(|d| d.join("containers/auth.json"))
        })
        .ok_or_else(|| RegistryError::Credentials {
            place: "auth file".into(),
            why: "no HOME, XDG_RUNTIME_DIR or REGISTRY_AUTH_FILE to place it; pass --authfile FILE".into(),
        })
}

fn read_json(path: &Path) -> Result<Option<Map<String, Value>>, RegistryError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RegistryError::Io { path: path.to_path_buf(), source: e }),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Map::new()));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(cred_err(path, "not a JSON object".into())),
        Err(e) => Err(cred_err(path, format!("not valid JSON: {e}"))),
    }
}

fn cred_err(path: &Path, why: String) -> RegistryError {
    RegistryError::Credentials { place: path.display().to_string(), why }
}

/// Credentials for `registry`, or `None` for anonymous access.
pub fn lookup(registry: &str, explicit: Option<&Path>) -> Result<Option<Credentials>, RegistryError> {
    let want = normalize_registry(registry);
    for path in search_path(explicit) {
        let Some(doc) = read_json(&path)? else { continue };
        if let Some(helper) = doc.get("credHelpers").and_then(|h| find_key(h, &want)).and_then(Value::as_str) {
            if let Some(c) = run_helper(helper, registry)? {
                return Ok(Some(c));
            }
        }
        if let Some(entry) = doc.get("auths").and_then(|a| find_key(a, &want)) {
            if let Some(c) = entry_credentials(entry).map_err(|why| cred_err(&path, why))? {
                return Ok(Some(c));
            }
        }
        if let Some(store) = doc.get("credsStore").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            if let Some(c) = run_helper(store, registry)? {
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

fn find_key<'a>(obj: &'a Value, want: &str) -> Option<&'a Value> {
    obj.as_object()?.iter().find(|(k, _)| normalize_registry(k) == want).map(|(_, v)| v)
}

fn entry_credentials(entry: &Value) -> Result<Option<Credentials>, String> {
    if let Some(a) = entry.get("auth").and_then(Value::as_str).filter(|a| !a.is_empty()) {
        let raw = base64_decode(a).ok_or("an `auth` value is not base64")?;
        let s = String::from_utf8(raw).map_err(|_| "an `auth` value is not UTF-8")?;
        let (u, p) = s.split_once(':').ok_or("an `auth` value is not base64 of USER:PASSWORD")?;
        return Ok(Some(Credentials { username: u.into(), password: p.into() }));
    }
    let u = entry.get("username").and_then(Value::as_str);
    let p = entry.get("password").and_then(Value::as_str);
    Ok(match (u, p) {
        (Some(u), Some(p)) if !u.is_empty() => Some(Credentials { username: u.into(), password: p.into() }),
        _ => None,
    })
}

/// Runs `docker-credential-NAME get` (the docker credential helper protocol).
fn run_helper(name: &str, registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let prog = format!("docker-credential-{name}");
    let err = |why: String| RegistryError::Credentials { place: prog.clone(), why };
    let mut child = Command::new(&prog)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run it ({e}); install it or remove it from the docker config")))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(registry.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // The protocol's "not found" answer means anonymous, not failure.
        if stdout.contains("credentials not found") || String::from_utf8_lossy(&out.stderr).contains("not found") {
            return Ok(None);
        }
        return Err(err(format!("`get` failed ({})", out.status)));
    }
    let v: Value = serde_json::from_str(&stdout).map_err(|e| err(format!("`get` printed no JSON: {e}")))?;
    let user = v.get("Username").and_then(Value::as_str).unwrap_or_default();
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or_default();
    if secret.is_empty() {
        return Ok(None);
    }
    // `<token>` as user name marks an identity token; registries take it as a password.
    Ok(Some(Credentials { username: user.into(), password: secret.into() }))
}

/// Writes the JSON document atomically with mode 0600 (directory 0700 when created).
fn write_doc(path: &Path, doc: &Map<String, Value>) -> Result<(), RegistryError> {
    let io = |source| RegistryError::Io { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(io)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
    }
    let mut bytes = serde_json::to_vec_pretty(doc).map_err(|e| cred_err(path, e.to_string()))?;
    bytes.push(b'\n');
    let mut f = AtomicFile::create(path).map_err(io)?;
    f.file().set_permissions(fs::Permissions::from_mode(0o600)).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.commit().map_err(io)
}

/// Stores `creds` for `registry`; returns the file written.
pub fn login(registry: &str, creds: &Credentials, explicit: Option<&Path>) -> Result<PathBuf, RegistryError> {
    let path = write_target(explicit)?;
    let mut doc = read_json(&path)?.unwrap_or_default();
    let auths = doc.entry("auths").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(auths) = auths else {
        return Err(cred_err(&path, "`auths` is not an object".into()));
    };
    let want = normalize_registry(registry);
    auths.retain(|k, _| normalize_registry(k) != want);
    let auth = base64_encode(format!("{}:{}", creds.username, creds.password).as_bytes());
    auths.insert(want, serde_json::json!({ "auth": auth }));
    write_doc(&path, &doc)?;
    Ok(path)
}

/// Removes `registry`'s entry; returns the file and whether there was one.
pub fn logout(registry: &str, explicit: Option<&Path>) -> Result<(PathBuf, bool), RegistryError> {
    let path = write_target(explicit)?;
    let Some(mut doc) = read_json(&path)? else { return Ok((path, false)) };
    let want = normalize_registry(registry);
    let mut removed = false;
    if let Some(Value::Object(auths)) = doc.get_mut("auths") {
        let before = auths.len();
        auths.retain(|k, _| normalize_registry(k) != want);
        removed = auths.len() != before;
    }
    if removed {
        write_doc(&path, &doc)?;
    }
    Ok((path, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_lookup_logout_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("sub/auth.json");
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTE6cDE="}},"other":1}"#).unwrap();
        let c = Credentials { username: "me".into(), password: "s3cret:x".into() };
        assert_eq!(login("localhost:5000", &c, Some(&f)).unwrap(), f);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        let doc: Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
        assert_eq!(doc["other"], 1, "unknown keys are kept");
        assert_eq!(lookup("localhost:5000", Some(&f)).unwrap(), Some(c));
        let hub = lookup("docker.io", Some(&f)).unwrap().unwrap();
        assert_eq!((hub.username.as_str(), hub.password.as_str()), ("u1", "p1"));
        assert_eq!(logout("localhost:5000", Some(&f)).unwrap(), (f.clone(), true));
        assert_eq!(logout("localhost:5000", Some(&f)).unwrap(), (f.clone(), false));
        assert!(lookup("localhost:5000", Some(&f)).unwrap().is_none() || env_has_other_auth());
    }

    fn env_has_other_auth() -> bool {
        search_path(None).iter().any(|p| p.exists())
    }

    #[test]
    fn bad_auth_values_are_errors_without_secrets() {
        let e = entry_credentials(&serde_json::json!({"auth": "bm9jb2xvbg=="})).unwrap_err();
        assert!(e.contains("USER:PASSWORD") && !e.contains("nocolon"), "{e}");
        assert!(entry_credentials(&serde_json::json!({})).unwrap().is_none());
    }
}
