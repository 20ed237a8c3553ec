//! A real registry for the tests: Debian's `docker-registry` (distribution 2.8) started on
//! a free 127.0.0.1 port with a generated config and storage in a temp dir, waited for,
//! and killed when dropped. Variants: plain HTTP, htpasswd basic auth, TLS with a
//! self-signed CA, and token auth against an issuer the test runs.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{cmd, run_ok, tempdir, TestDir};

/// How the registry authenticates and serves.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Plain HTTP, anonymous.
    Plain,
    /// Plain HTTP with htpasswd basic auth for USER:PASSWORD.
    Basic(String, String),
    /// HTTPS with a certificate for 127.0.0.1 signed by a generated CA.
    Tls,
    /// Plain HTTP with bearer tokens from `realm`, verified with `cert` (PEM).
    Token { realm: String, cert: PathBuf },
}

/// A running registry.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Temp dir with config, storage, log and (for TLS) the CA in `certs/ca.crt`.
    pub dir: TestDir,
}

impl Registry {
    /// The registry's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
    /// A directory holding the CA as `ca.crt` (for `--cert-dir`).
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }
    /// Bytes of blob data the registry stores.
    pub fn stored_blob_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = fs::read_dir(p) else { return 0 };
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(_) if e.file_name() == "data" => e.metadata().map(|m| m.len()).unwrap_or(0),
                    _ => 0,
                })
                .sum()
        }
        walk(&self.dir.path().join("storage/docker/registry/v2/blobs"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts connections on `addr`.
pub fn wait_for(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr} after 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A bcrypt htpasswd line, with `htpasswd` (apache2-utils) or python3's `crypt`.
fn htpasswd_line(user: &str, pass: &str) -> String {
    if let Ok(o) = Command::new("htpasswd").args(["-Bbn", user, pass]).stdin(Stdio::null()).output() {
        if o.status.success() {
            return String::from_utf8_lossy(&o.stdout).trim().to_string();
        }
    }
    let script = "import crypt,sys;print(crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))";
    let o = run_ok(cmd("python3").args(["-W", "ignore", "-c", script, user, pass]));
    format!("{user}:{}", o.stdout.trim())
}

/// A CA and a server certificate for 127.0.0.1 (openssl), written into `dir`.
pub fn make_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca_key, ca, key, csr, crt) = (
        dir.join("ca.key"),
        dir.join("ca.crt"),
        dir.join("server.key"),
        dir.join("server.csr"),
        dir.join("server.crt"),
    );
    let subj = |cn: &str| format!("/CN={cn}");
    run_ok(
        cmd("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
            .arg(subj("pinnace test CA"))
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
    );
    run_ok(
        cmd("openssl")
            .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj"])
            .arg(subj("127.0.0.1"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    let ext = dir.join("ext.cnf");
    fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
    run_ok(
        cmd("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-out")
            .arg(&crt)
            .arg("-extfile")
            .arg(&ext),
    );
    (ca, crt, key)
}

/// Starts a registry in `mode`.
pub fn start(mode: Mode) -> Registry {
    let dir = tempdir();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let storage = dir.path().join("storage");
    let mut cfg = format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: pinnace-test-secret\n",
        storage.display()
    );
    match &mode {
        Mode::Plain => {}
        Mode::Basic(u, p) => {
            let f = dir.path().join("htpasswd");
            fs::write(&f, format!("{}\n", htpasswd_line(u, p))).unwrap();
            cfg.push_str(&format!("auth:\n  htpasswd:\n    realm: pinnace-test\n    path: {}\n", f.display()));
        }
        Mode::Tls => {
            let certs = dir.path().join("certs");
            fs::create_dir_all(&certs).unwrap();
            let work = dir.path().join("tls");
            fs::create_dir_all(&work).unwrap();
            let (ca, crt, key) = make_tls(&work);
            fs::copy(&ca, certs.join("ca.crt")).unwrap();
            cfg.push_str(&format!("  tls:\n    certificate: {}\n    key: {}\n", crt.display(), key.display()));
        }
        Mode::Token { realm, cert } => {
            cfg.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: pinnace-test\n    issuer: pinnace-test-issuer\n    rootcertbundle: {}\n",
                cert.display()
            ));
        }
    }
    let config = dir.path().join("config.yml");
    fs::write(&config, cfg).unwrap();
    let log = fs::File::create(dir.path().join("registry.log")).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("docker-registry");
    wait_for(&addr);
    Registry { child, addr, dir }
}
