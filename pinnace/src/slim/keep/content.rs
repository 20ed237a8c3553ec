//! The rules of the keep-set that read kept files from the unpacked root: ELF closures,
//! `#!` interpreters, and what the runtime needs (CA bundles, passwd/group, glibc's
//! `dlopen`ed NSS modules and `libgcc_s`).

use std::collections::BTreeSet;

use super::{walk, KeepError, Keeper, Reason};
use crate::elf::{self, resolve_closure, Binary, ClosureOptions, GconvPolicy, HostRoot};
use crate::fs::{NodeId, NodeKind};
use crate::slim::trace::Trace;
// CA bundles of the usual distributions: doctor's list (Go's `crypto/x509` one).
use crate::analyze::doctor::tls::CA_FILES as CA_BUNDLES;

/// `PATH` when the image sets none (docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Directories whose use means TLS certificates are looked up.
const TLS_DIRS: [&str; 6] =
    ["/etc/ssl", "/etc/pki", "/usr/lib/ssl", "/usr/local/ssl", "/usr/share/ca-certificates", "/etc/ca-certificates"];

/// glibc's built-in NSS configuration when `/etc/nsswitch.conf` is absent.
const DEFAULT_NSSWITCH: &str = "passwd: files\ngroup: files\nhosts: dns files\n";

impl Keeper<'_> {
    /// Examines every kept regular file not yet examined: ELF objects get their closure,
    /// scripts their interpreter; what those keep is examined in turn.
    pub(super) fn follow_contents(&mut self) -> Result<(), KeepError> {
        while let Some(id) = self.todo.pop() {
            let path = self.tree.path(id);
            // 256 bytes: the kernel reads no more of a `#!` line (BINPRM_BUF_SIZE).
            let head = self.read(&path, 256)?;
            if head.starts_with(b"\x7fELF") {
                self.elf_closure(&path);
            } else if let Some(line) = head.strip_prefix(b"#!") {
                let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
                self.interpreter(&path, &String::from_utf8_lossy(line));
            }
        }
        Ok(())
    }

    /// Keeps the closure of the ELF object at `path`. Libraries get no gconv modules (see
    /// [`GconvPolicy`]); an object already loaded by a resolved closure is not resolved
    /// again (its dependencies were loaded with it). Problems are warnings: the image
    /// may well carry ELF files it never runs.
    fn elf_closure(&mut self, path: &str) {
        if self.covered.contains(path) {
            return;
        }
        let root = HostRoot::new(self.root);
        let closure = Binary::from_root(&root, path).and_then(|bin| {
            let info = elf::inspect(bin.bytes())?;
            let executable = info.interpreter.is_some() || info.e_type == 2; // ET_EXEC
            let gconv = if executable { GconvPolicy::IfMainImports } else { GconvPolicy::Never };
            resolve_closure(&root, &bin, &ClosureOptions { allow_missing: true, gconv, ..Default::default() })
        });
        let closure = match closure {
            Ok(c) => c,
            Err(e) => return self.warnings.push(format!("{path}: ELF closure not resolved: {e}")),
        };
        let reason = Reason::ElfClosure { of: path.to_string() };
        for f in &closure.files {
            self.keep_path(&f.path, false, &reason);
        }
        self.covered.insert(path.to_string());
        self.covered.extend(closure.objects.iter().map(|o| o.real_path.clone()));
        for m in &closure.missing {
            self.warnings.push(format!(
                "{path}: {} not found in the image (needed by {})",
                m.soname,
                m.needed_by.join(", ")
            ));
        }
    }

    /// Keeps the interpreter of the script at `path` whose `#!` line is `line`; for
    /// `/usr/bin/env [-S] [VAR=x] NAME`, NAME found in the image's `PATH` too.
    fn interpreter(&mut self, path: &str, line: &str) {
        let line = line.trim();
        let (interp, arg) = line.split_once([' ', '\t']).unwrap_or((line, ""));
        if interp.is_empty() {
            return;
        }
        let reason = Reason::Interpreter { of: path.to_string() };
        if self.keep_path(interp, true, &reason).is_none() {
            return self.warnings.push(format!("{path}: its interpreter {interp} is not in the image"));
        }
        if interp.rsplit('/').next() != Some("env") {
            return;
        }
        let Some(name) = arg.split_whitespace().find(|t| !t.starts_with('-') && !t.contains('=')) else { return };
        if name.contains('/') {
            self.keep_path(name, true, &reason);
            return;
        }
        let dirs = if self.opts.path.is_empty() { DEFAULT_PATH } else { self.opts.path.as_str() };
        for dir in dirs.split(':').filter(|d| d.starts_with('/')) {
            let w = walk(self.tree, &format!("{dir}/{name}"), true);
            if w.found.is_some_and(|id| matches!(self.tree.meta(id).kind, NodeKind::File | NodeKind::HardLink)) {
                return self.keep_walk(&w, &reason);
            }
        }
        self.warnings.push(format!("{path}: {name} (run by {interp}) is in none of the PATH directories {dirs}"));
    }

    /// passwd, group and nsswitch.conf always; CA bundles when the trace used TLS.
    pub(super) fn runtime_files(&mut self, trace: &Trace) {
        for (p, what) in
            [("/etc/passwd", "passwd/group"), ("/etc/group", "passwd/group"), ("/etc/nsswitch.conf", "nss")]
        {
            self.keep_path(p, true, &Reason::Runtime { what: what.into() });
        }
        let under = |p: &str, d: &str| p.strip_prefix(d).is_some_and(|r| r.is_empty() || r.starts_with('/'));
        if !trace.accesses.iter().any(|a| TLS_DIRS.iter().any(|d| under(&a.path, d))) {
            return;
        }
        let reason = Reason::Runtime { what: "ca bundle".into() };
        for b in CA_BUNDLES {
            self.keep_path(b, true, &reason);
        }
        // Hashed certificate links (OpenSSL's CApath lookups, by the name of the issuer
        // of whatever server is met at run time) and their targets.
        if let Some(id) = self.keep_path("/etc/ssl/certs", true, &reason) {
            self.keep_subtree(id, &reason);
        }
    }

    /// When glibc's `libc.so.6` is kept: the NSS modules of the services nsswitch.conf
    /// names (glibc's defaults without one) and `libgcc_s.so.1`, from libc's directories.
    /// Returns whether libc is kept.
    pub(super) fn glibc_extras(&mut self) -> Result<bool, KeepError> {
        let t = self.tree;
        let libcs: Vec<NodeId> = self.reasons.keys().copied().filter(|&id| t.name(id) == "libc.so.6").collect();
        let mut dirs = BTreeSet::new();
        for id in libcs {
            dirs.extend(t.parent(id).map(|p| t.path(p)));
            if let Ok(real) = t.resolve(&t.path(id), true) {
                dirs.extend(t.parent(real).map(|p| t.path(p)));
            }
        }
        if dirs.is_empty() {
            return Ok(false);
        }
        let conf = match walk(t, "/etc/nsswitch.conf", true).found {
            Some(_) => String::from_utf8_lossy(&self.read("/etc/nsswitch.conf", 1 << 20)?).into_owned(),
            None => DEFAULT_NSSWITCH.to_string(),
        };
        let mut wanted: Vec<(String, String)> = nss_services(&conf)
            .into_iter()
            .map(|(db, svc)| (format!("libnss_{svc}.so.2"), format!("nss module for {db}")))
            .collect();
        wanted.push(("libgcc_s.so.1".into(), "libgcc_s for pthread_cancel".into()));
        for (file, what) in wanted {
            let reason = Reason::Runtime { what };
            for d in &dirs {
                if self.keep_path(&format!("{d}/{file}"), true, &reason).is_some() {
                    break;
                }
            }
        }
        Ok(true)
    }
}

/// `(database, service)` pairs of an nsswitch.conf, in order, actions (`[NOTFOUND=return]`)
/// and comments left out, each service once (with the first database naming it).
pub(super) fn nss_services(conf: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in conf.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let Some((db, rest)) = line.split_once(':') else { continue };
        let mut in_action = false;
        for tok in rest.split_whitespace() {
            if tok.starts_with('[') {
                in_action = true;
            }
            if !in_action && !out.iter().any(|(_, s)| s == tok) {
                out.push((db.trim().to_string(), tok.to_string()));
            }
            if tok.ends_with(']') {
                in_action = false;
            }
        }
    }
    out
}
