//! [`resolve_closure`]: every file the loader opens to start a binary, found in a root the
//! way ld.so (glibc) or the musl loader would find them.
//!
//! Loading is breadth first from the main binary, like `_dl_map_object_deps`: each
//! object's `DT_NEEDED` in order, a name already loaded (by requested name, soname or
//! file) is not searched again, and each new object remembers its loader, whose chain of
//! `DT_RPATH`s applies to it (see [`search`](crate::elf::search)). Then the libraries
//! glibc `dlopen`s on the program's behalf (see `elf::dlopen`) and their dependencies.

use std::collections::{BTreeMap, HashMap};

use crate::elf::closure::{Binary, Closure, ClosureFile, ClosureFileKind, ClosureOptions, LoadedObject};
use crate::elf::dlopen::{self, GconvPolicy, TreeEntry};
use crate::elf::error::{ElfError, MissingLibrary};
use crate::elf::info::{self, Libc};
use crate::elf::parse;
use crate::elf::rootfs::{dirname, normalize, resolve_in_root, Node, Resolved, RootFs};
use crate::elf::search::{Dso, Flavor, Outcome, SearchDir, SearchEnv};

/// One object in the resolver's load list.
struct Obj {
    /// The path the loader opens; `$ORIGIN` is its directory (for the main binary:
    /// [`Binary::origin`]).
    path: String,
    origin: String,
    dso: Dso,
    loader: Option<usize>,
}

/// The resolver's working state.
struct Resolver<'a, R: ?Sized> {
    root: &'a R,
    env: SearchEnv,
    objs: Vec<Obj>,
    loaded: Vec<LoadedObject>,
    interp: Option<usize>,
    by_name: HashMap<String, usize>,
    by_real: HashMap<String, usize>,
    files: BTreeMap<String, ClosureFile>,
    missing: BTreeMap<String, MissingLibrary>,
    warnings: Vec<String>,
}

/// Resolves the files the image needs so that `binary` starts: its interpreter, its
/// libraries (recursively), the libraries glibc `dlopen`s for it, with every symbolic
/// link on the way. Everything is looked up in `root`.
///
/// A static binary needs nothing (a static glibc binary that uses NSS gets a warning).
/// Fails on a binary that is not a valid ELF file, an interpreter of another
/// architecture, a corrupt library, and (unless [`ClosureOptions::allow_missing`]) on
/// missing libraries, listing all of them.
pub fn resolve_closure<R: RootFs + ?Sized>(
    root: &R,
    binary: &Binary,
    opts: &ClosureOptions,
) -> Result<Closure, ElfError> {
    let mut facts = info::inspect(binary.bytes()).map_err(|e| e.at(binary.path()))?;
    let mut warnings = Vec::new();
    if facts.is_static() {
        if !facts.nss.is_empty() && matches!(facts.libc, Libc::Glibc | Libc::Unknown) && !facts.go {
            warnings.push(format!(
                "{} is statically linked but uses NSS ({}): glibc will still dlopen \
                 libnss_*.so.2 of the same glibc version at run time, which the image does \
                 not provide; link it dynamically or against musl",
                binary.path(),
                facts.nss.join(", ")
            ));
        }
        let (files, objects, missing) = (Vec::new(), Vec::new(), Vec::new());
        return Ok(Closure { interpreter: None, files, objects, missing, warnings, facts });
    }

    let main = parse::parse(binary.bytes()).map_err(|e| e.at(binary.path()))?;
    let main = Dso::from_parsed(main);
    let env = SearchEnv::new(
        root,
        main.arch,
        facts.interpreter.as_deref(),
        opts.lib.as_deref(),
        opts.platform.as_deref(),
        &mut warnings,
    );
    let mut r = Resolver {
        root,
        env,
        objs: Vec::new(),
        loaded: Vec::new(),
        interp: None,
        by_name: HashMap::new(),
        by_real: HashMap::new(),
        files: BTreeMap::new(),
        missing: BTreeMap::new(),
        warnings,
    };
    r.objs.push(Obj { path: binary.path().to_string(), origin: binary.origin().to_string(), dso: main, loader: None });
    if let Some(interp) = facts.interpreter.clone() {
        r.load_interpreter(&interp, binary.path())?;
    }
    r.load_all_needed(0)?;
    if r.env.flavor == Flavor::Glibc {
        r.add_dlopened(opts)?;
    }
    r.add_ld_cache_if_needed();

    if facts.tls.is_none() {
        facts.tls = r.loaded.iter().find(|o| info::is_tls_library(&o.name)).map(|o| match &o.needed_by {
            Some(by) => format!("links {} (needed by {by})", o.name),
            None => format!("links {}", o.name),
        });
    }
    let missing: Vec<MissingLibrary> = r.missing.into_values().collect();
    if !missing.is_empty() && !opts.allow_missing {
        return Err(ElfError::MissingLibraries { missing });
    }
    Ok(Closure {
        interpreter: facts.interpreter.clone(),
        files: r.files.into_values().collect(),
        objects: r.loaded,
        missing,
        warnings: r.warnings,
        facts,
    })
}

impl<R: RootFs + ?Sized> Resolver<'_, R> {
    /// Records `resolved` (its links and its file) in the file list.
    fn add_files(&mut self, resolved: &Resolved, reason: &str) {
        for hop in &resolved.hops {
            self.files.entry(hop.path.clone()).or_insert_with(|| ClosureFile {
                path: hop.path.clone(),
                kind: ClosureFileKind::Symlink { target: hop.target.clone() },
                reason: reason.to_string(),
            });
        }
        self.files.entry(resolved.path.clone()).or_insert_with(|| ClosureFile {
            path: resolved.path.clone(),
            kind: ClosureFileKind::Regular,
            reason: reason.to_string(),
        });
    }

    fn note_missing(&mut self, name: &str, needed_by: String, searched: Vec<String>, skipped: Vec<String>) {
        let m = self.missing.entry(name.to_string()).or_insert_with(|| MissingLibrary {
            soname: name.to_string(),
            needed_by: Vec::new(),
            searched,
            skipped,
        });
        if !m.needed_by.contains(&needed_by) {
            m.needed_by.push(needed_by);
        }
    }

    fn load_interpreter(&mut self, interp: &str, binary: &str) -> Result<(), ElfError> {
        let resolved = match resolve_in_root(self.root, interp) {
            Ok(r) if r.node == Node::File => r,
            Ok(_) | Err(ElfError::NotFound { .. } | ElfError::NotADirectory { .. }) => {
                let by = format!("{binary} (PT_INTERP)");
                self.note_missing(interp, by, vec![interp.to_string()], Vec::new());
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let bytes =
            self.root.read(&resolved.path).map_err(|e| ElfError::Io { path: resolved.path.clone(), source: e })?;
        let dso = Dso::from_parsed(parse::parse(&bytes).map_err(|e| e.at(interp))?);
        let main = self.objs[0].dso.arch;
        if (dso.arch.class, dso.arch.order, dso.arch.machine) != (main.class, main.order, main.machine) {
            return Err(ElfError::WrongArchitecture {
                path: interp.to_string(),
                binary: binary.to_string(),
                expected: main.label(),
                found: dso.arch.label(),
            });
        }
        self.add_files(&resolved, &format!("interpreter of {binary}"));
        let idx = self.push(interp, interp.to_string(), resolved, dso, None, "interpreter".into());
        if let Some(base) = interp.rsplit('/').next() {
            self.by_name.entry(base.to_string()).or_insert(idx);
        }
        self.interp = Some(idx);
        Ok(())
    }

    /// Adds a newly loaded object and indexes its names.
    fn push(
        &mut self,
        name: &str,
        path: String,
        resolved: Resolved,
        dso: Dso,
        loader: Option<usize>,
        via: String,
    ) -> usize {
        let idx = self.objs.len();
        self.by_name.insert(name.to_string(), idx);
        if let Some(s) = &dso.soname {
            self.by_name.entry(s.clone()).or_insert(idx);
        }
        self.by_real.insert(resolved.path.clone(), idx);
        self.loaded.push(LoadedObject {
            name: name.to_string(),
            path: path.clone(),
            real_path: resolved.path,
            needed_by: loader.map(|l| self.objs[l].path.clone()),
            via,
        });
        let origin = dirname(&path).to_string();
        self.objs.push(Obj { path, origin, dso, loader });
        idx
    }

    /// Loads the `DT_NEEDED` of every object from `start` on, breadth first, including
    /// the objects this adds.
    fn load_all_needed(&mut self, start: usize) -> Result<(), ElfError> {
        let mut i = start;
        while i < self.objs.len() {
            for name in self.objs[i].dso.needed.clone() {
                let reason = format!("DT_NEEDED {name} of {}", self.objs[i].path);
                self.load(&name, Some(i), &reason)?;
            }
            i += 1;
        }
        Ok(())
    }

    /// musl maps the names of its own parts (libc, libm, libpthread…) to itself.
    fn musl_builtin(&self, name: &str) -> bool {
        const RESERVED: [&str; 7] = ["c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet."];
        matches!(self.env.flavor, Flavor::Musl(_))
            && name.strip_prefix("lib").is_some_and(|n| RESERVED.iter().any(|r| n.starts_with(r)))
    }

    /// Loads `name` for `loader` (`None`: a `dlopen` by libc on the program's behalf).
    /// Returns whether it is (now) loaded.
    fn load(&mut self, name: &str, loader: Option<usize>, reason: &str) -> Result<bool, ElfError> {
        if self.by_name.contains_key(name) {
            return Ok(true);
        }
        if self.musl_builtin(name) && self.interp.is_some() {
            return Ok(true);
        }
        let needed_by = self.objs[loader.unwrap_or(0)].path.clone();
        let outcome = if name.contains('/') {
            let path = normalize(name);
            if !name.starts_with('/') {
                self.warnings.push(format!(
                    "{needed_by} needs {name}, a path relative to the working directory; looked for {path}"
                ));
            }
            let mut skipped = Vec::new();
            match self.env.open(self.root, &path, "path in DT_NEEDED".into(), &mut skipped)? {
                Some(c) => Outcome::Found(Box::new(c)),
                None => Outcome::Missing { searched: vec![path], skipped },
            }
        } else {
            let dirs = self.search_dirs(loader);
            let nodeflib = self.objs[loader.unwrap_or(0)].dso.nodeflib;
            self.env.search(self.root, name, &dirs, nodeflib)?
        };
        match outcome {
            Outcome::Found(c) => {
                let c = *c;
                if let Some(&idx) = self.by_real.get(&c.resolved.path) {
                    // The same file under another name (ld.so compares device and inode).
                    self.by_name.insert(name.to_string(), idx);
                    return Ok(true);
                }
                self.add_files(&c.resolved, reason);
                self.push(name, c.path, c.resolved, c.dso, loader, c.via);
                Ok(true)
            }
            Outcome::Missing { searched, skipped } => {
                if loader.is_some() {
                    self.note_missing(name, needed_by, searched, skipped);
                }
                Ok(false)
            }
        }
    }

    /// The directories to search before the cache for a library `loader` needs.
    fn search_dirs(&mut self, loader: Option<usize>) -> Vec<SearchDir> {
        let mut dirs = Vec::new();
        let musl = matches!(self.env.flavor, Flavor::Musl(_));
        // glibc: the RPATHs of the loader chain, unless the loader has a RUNPATH; an
        // object's own RPATH is void when it has a RUNPATH. musl: RUNPATH-or-RPATH of
        // every object up the chain. A dlopen by libc sees the main binary's RPATH.
        let own_runpath = loader.and_then(|l| self.objs[l].dso.runpath.clone());
        if musl || own_runpath.is_none() {
            let mut chain = Vec::new();
            let mut cur = Some(loader.unwrap_or(0));
            while let Some(i) = cur {
                chain.push(i);
                cur = self.objs[i].loader;
            }
            // glibc also tries the executable's RPATH when the chain does not reach it
            // (objects loaded by a dlopen).
            if !musl && !chain.contains(&0) {
                chain.push(0);
            }
            for i in chain {
                let o = &self.objs[i];
                let (list, kind) = match (&o.dso.runpath, &o.dso.rpath) {
                    (Some(rp), _) if musl => (rp.clone(), "RUNPATH"),
                    (None, Some(rp)) => (rp.clone(), "RPATH"),
                    _ => continue,
                };
                let (origin, path) = (o.origin.clone(), o.path.clone());
                self.expand_into(&mut dirs, &list, &origin, &format!("{kind} of {path}"));
            }
        }
        if let (false, Some(list), Some(l)) = (musl, own_runpath, loader) {
            let (origin, path) = (self.objs[l].origin.clone(), self.objs[l].path.clone());
            self.expand_into(&mut dirs, &list, &origin, &format!("RUNPATH of {path}"));
        }
        dirs
    }

    fn expand_into(&mut self, dirs: &mut Vec<SearchDir>, list: &str, origin: &str, why: &str) {
        for entry in list.split(':') {
            match self.env.expand(entry, origin) {
                Some(dir) if dir.starts_with('/') => dirs.push(SearchDir { dir, why: why.to_string() }),
                Some(dir) => {
                    let w = format!("ignoring {why} entry {dir:?}: relative to the working directory");
                    if !self.warnings.contains(&w) {
                        self.warnings.push(w);
                    }
                }
                None => {}
            }
        }
    }

    /// Adds what glibc loads with `dlopen` for the objects loaded so far.
    fn add_dlopened(&mut self, opts: &ClosureOptions) -> Result<(), ElfError> {
        let first_new = self.objs.len();
        let mut requests: Vec<(&str, String)> = Vec::new();
        if opts.nss {
            let [any, host] = self.first_trigger(dlopen::nss_triggers);
            if let Some(why) = any {
                requests.push(("libnss_files.so.2", format!("dlopen: NSS ({why})")));
            }
            if let Some(why) = host {
                requests.push(("libnss_dns.so.2", format!("dlopen: NSS ({why})")));
            }
        }
        if opts.libgcc_s && !self.loaded.iter().any(|o| o.name.starts_with("libunwind")) {
            let [why, _] = self.first_trigger(|imports| (dlopen::unwinder_trigger(imports), None));
            if let Some(why) = why {
                requests.push(("libgcc_s.so.1", format!("dlopen: unwinding ({why})")));
            }
        }
        for (name, reason) in requests {
            if !self.load(name, None, &reason)? {
                self.warnings.push(format!(
                    "{name} not found; {reason} will fail at run time unless libc provides it \
                     (glibc 2.34 and later has the files and dns services built in)"
                ));
            }
        }
        self.load_all_needed(first_new)?;
        self.add_gconv(opts.gconv)
    }

    /// For each of the two results of `trigger`, the first object (in load order) for
    /// which it finds something: `"<function> in <object path>"`.
    fn first_trigger<F>(&self, trigger: F) -> [Option<String>; 2]
    where
        F: for<'i> Fn(&'i [String]) -> (Option<&'i str>, Option<&'i str>),
    {
        let mut found = [None, None];
        for o in &self.objs {
            let (x, y) = trigger(&o.dso.imports);
            for (slot, f) in found.iter_mut().zip([x, y]) {
                if let (None, Some(f)) = (&slot, f) {
                    *slot = Some(format!("{f} in {}", o.path));
                }
            }
        }
        found
    }

    fn add_gconv(&mut self, policy: GconvPolicy) -> Result<(), ElfError> {
        let importer = self.objs.iter().position(|o| dlopen::imports_iconv(&o.dso.imports));
        let Some(importer) = importer else { return Ok(()) };
        let who = self.objs[importer].path.clone();
        let wanted = match policy {
            GconvPolicy::Never => false,
            GconvPolicy::IfMainImports => importer == 0,
            GconvPolicy::IfAnyImports => true,
        };
        if !wanted {
            self.warnings.push(format!(
                "{who} imports iconv_open; gconv modules are not included, so only glibc's \
                 built-in charsets (UTF-8, ASCII, ISO-8859-1, UCS-2/4) convert"
            ));
            return Ok(());
        }
        let libc = self.loaded.iter().find(|o| o.name == "libc.so.6").map(|o| o.real_path.clone());
        let dir = libc.and_then(|l| dlopen::gconv_dir(self.root, dirname(&l)));
        let Some(dir) = dir else {
            self.warnings.push(format!("{who} imports iconv_open, but the root has no gconv directory next to libc"));
            return Ok(());
        };
        let reason = format!("gconv (iconv_open in {who})");
        for hop in &dir.hops {
            let kind = ClosureFileKind::Symlink { target: hop.target.clone() };
            let file = ClosureFile { path: hop.path.clone(), kind, reason: reason.clone() };
            self.files.entry(hop.path.clone()).or_insert(file);
        }
        for entry in dlopen::list_tree(self.root, &dir.path, 2)? {
            let (path, kind) = match entry {
                TreeEntry::File(p) => (p, ClosureFileKind::Regular),
                TreeEntry::Symlink(p, target) => (p, ClosureFileKind::Symlink { target }),
            };
            let reason = reason.clone();
            self.files.entry(path.clone()).or_insert(ClosureFile { path, kind, reason });
        }
        Ok(())
    }

    /// A library found only through ld.so.cache, outside the default directories, is not
    /// found in an image without the cache: then the cache goes into the image too.
    fn add_ld_cache_if_needed(&mut self) {
        let outside = self
            .loaded
            .iter()
            .find(|o| o.via == "ld.so.cache" && !self.env.default_dirs.iter().any(|d| d == dirname(&o.path)));
        let Some(o) = outside else { return };
        let reason = format!("ld.so.cache ({} is found through it, at {})", o.name, o.path);
        if let Some((_, at)) = &self.env.cache {
            let at = at.clone();
            self.add_files(&at, &reason);
        }
    }
}
