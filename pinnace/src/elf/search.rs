//! Where the loader looks for one library: dynamic string tokens, `ld.so.cache`, default
//! directories, and the check ld.so makes on every candidate file.
//!
//! glibc (`elf/dl-load.c`, `_dl_map_object`): the directories the resolver passes in
//! (RPATHs of the loader chain, then the loader's RUNPATH), then `ld.so.cache`, then the
//! default directories; `DF_1_NODEFLIB` on the loader skips the last two for system
//! directories. A candidate built for another class or machine is skipped silently; a
//! candidate that is not a valid ELF file is an error. musl (`ldso/dynlink.c`): the
//! RUNPATH-or-RPATH of every object up the loader chain, then the lines of
//! `/etc/ld-musl-ARCH.path` (default `/lib:/usr/local/lib:/usr/lib`); no cache.
//!
//! Not emulated: `LD_LIBRARY_PATH` and `LD_PRELOAD` (the image's environment decides
//! them, not the source root), and `glibc-hwcaps`/legacy hwcap subdirectories (they hold
//! CPU-specific builds; an image must run on any CPU of its architecture).

use object::elf;

use crate::elf::error::ElfError;
use crate::elf::ldcache::LdCache;
use crate::elf::parse::{self, ByteOrder, ElfClass, Parsed};
use crate::elf::rootfs::{dirname, join, resolve_in_root, Node, Resolved, RootFs};

/// The architecture every object of a closure must share with the main binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arch {
    pub class: ElfClass,
    pub order: ByteOrder,
    pub machine: u16,
    pub e_flags: u32,
}

impl Arch {
    pub fn label(&self) -> String {
        parse::arch_label(self.machine, self.class, self.order)
    }

    fn of(p: &Parsed<'_>) -> Arch {
        Arch { class: p.class, order: p.order, machine: p.machine, e_flags: p.e_flags }
    }

    /// Whether ld.so would accept an object of `other` (it compares class, byte order and
    /// machine; ABI flags are checked by the ld.so.cache flags instead).
    fn accepts(&self, other: &Arch) -> bool {
        self.class == other.class && self.order == other.order && self.machine == other.machine
    }
}

/// What the resolver keeps of one loaded object.
#[derive(Debug, Clone)]
pub(crate) struct Dso {
    pub arch: Arch,
    pub needed: Vec<String>,
    pub soname: Option<String>,
    pub rpath: Option<String>,
    pub runpath: Option<String>,
    pub nodeflib: bool,
    pub imports: Vec<String>,
}

impl Dso {
    pub fn from_parsed(p: Parsed<'_>) -> Dso {
        Dso {
            arch: Arch::of(&p),
            nodeflib: p.flags_1 & u64::from(elf::DF_1_NODEFLIB) != 0,
            needed: p.needed,
            soname: p.soname,
            rpath: p.rpath,
            runpath: p.runpath,
            imports: p.imports,
        }
    }
}

/// Which loader's rules apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Flavor {
    Glibc,
    /// musl, with its architecture name from `ld-musl-ARCH.so.1`.
    Musl(String),
}

/// Everything the search needs that does not change from one library to the next.
#[derive(Debug)]
pub(crate) struct SearchEnv {
    pub flavor: Flavor,
    pub arch: Arch,
    /// Expansion of `$LIB`.
    pub lib: String,
    /// Expansion of `$PLATFORM`.
    pub platform: String,
    /// The directories searched last, in order.
    pub default_dirs: Vec<String>,
    /// The root's ld.so.cache (glibc only), and where it is.
    pub cache: Option<(LdCache, Resolved)>,
}

/// One directory to search, with why (for messages), e.g. `RUNPATH of /usr/bin/curl`.
#[derive(Debug, Clone)]
pub(crate) struct SearchDir {
    pub dir: String,
    pub why: String,
}

/// Where one search ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Found(Box<Candidate>),
    Missing { searched: Vec<String>, skipped: Vec<String> },
}

/// A file that ld.so would load.
#[derive(Debug)]
pub(crate) struct Candidate {
    /// The path as the loader opens it (its directory is `$ORIGIN`).
    pub path: String,
    pub resolved: Resolved,
    pub dso: Dso,
    /// How it was found: `RUNPATH of …`, `ld.so.cache`, `default directory`, ….
    pub via: String,
}

/// The Debian multiarch triplet of an architecture, which names its library directories.
fn triplet(arch: &Arch) -> Option<&'static str> {
    let is64 = arch.class == ElfClass::Elf64;
    let little = arch.order == ByteOrder::Little;
    Some(match arch.machine {
        elf::EM_X86_64 if is64 => "x86_64-linux-gnu",
        elf::EM_X86_64 => "x86_64-linux-gnux32",
        elf::EM_386 => "i386-linux-gnu",
        elf::EM_AARCH64 => "aarch64-linux-gnu",
        elf::EM_ARM if arch.e_flags & elf::EF_ARM_ABI_FLOAT_HARD != 0 => "arm-linux-gnueabihf",
        elf::EM_ARM => "arm-linux-gnueabi",
        elf::EM_PPC64 if little => "powerpc64le-linux-gnu",
        elf::EM_PPC64 => "powerpc64-linux-gnu",
        elf::EM_S390 if is64 => "s390x-linux-gnu",
        elf::EM_RISCV if is64 => "riscv64-linux-gnu",
        elf::EM_LOONGARCH if is64 => "loongarch64-linux-gnu",
        elf::EM_MIPS if is64 && little => "mips64el-linux-gnuabi64",
        elf::EM_MIPS if little => "mipsel-linux-gnu",
        _ => return None,
    })
}

/// The `AT_PLATFORM` string the kernel reports for an architecture (best effort).
fn platform(arch: &Arch) -> &'static str {
    match arch.machine {
        elf::EM_X86_64 => "x86_64",
        elf::EM_386 => "i686",
        elf::EM_AARCH64 => "aarch64",
        elf::EM_ARM => "v7l",
        elf::EM_PPC64 => "power8",
        elf::EM_S390 => "z13",
        elf::EM_RISCV => "riscv64",
        elf::EM_LOONGARCH => "loongarch64",
        _ => "unknown",
    }
}

impl SearchEnv {
    /// The search environment for a binary of `arch` whose interpreter is `interp`,
    /// reading the root's ld.so.cache (glibc) or `/etc/ld-musl-ARCH.path` (musl).
    pub fn new<R: RootFs + ?Sized>(
        root: &R,
        arch: Arch,
        interp: Option<&str>,
        lib: Option<&str>,
        platform_name: Option<&str>,
        warnings: &mut Vec<String>,
    ) -> SearchEnv {
        let base = interp.map(|i| i.rsplit('/').next().unwrap_or(i)).unwrap_or("");
        let is_dir = |p: &str| resolve_in_root(root, p).is_ok_and(|r| r.node == Node::Dir);
        if let Some(rest) = base.strip_prefix("ld-musl-") {
            let musl_arch = rest.split(".so").next().unwrap_or(rest).to_string();
            let path_file = format!("/etc/ld-musl-{musl_arch}.path");
            let listed = resolve_in_root(root, &path_file).ok().and_then(|r| root.read(&r.path).ok());
            let default_dirs = match listed {
                Some(text) => String::from_utf8_lossy(&text)
                    .split([':', '\n'])
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect(),
                None => vec!["/lib".into(), "/usr/local/lib".into(), "/usr/lib".into()],
            };
            return SearchEnv {
                flavor: Flavor::Musl(musl_arch),
                arch,
                lib: String::new(),
                platform: String::new(),
                default_dirs,
                cache: None,
            };
        }

        // glibc. The default directories: Debian's multiarch pair, then the lib64 pair
        // other distributions use, then /lib and /usr/lib (a superset of any one
        // distribution's compiled-in list, in an order where none of them conflicts).
        let mut default_dirs = Vec::new();
        let triplet = triplet(&arch);
        if let Some(t) = triplet {
            default_dirs.push(format!("/lib/{t}"));
            default_dirs.push(format!("/usr/lib/{t}"));
        }
        if arch.class == ElfClass::Elf64 {
            default_dirs.push("/lib64".into());
            default_dirs.push("/usr/lib64".into());
        }
        default_dirs.push("/lib".into());
        default_dirs.push("/usr/lib".into());
        // $LIB is the basename-ish of glibc's slibdir: Debian builds it as
        // lib/<triplet>, others as lib64 or lib.
        let lib = match (lib, triplet) {
            (Some(l), _) => l.to_string(),
            (None, Some(t)) if is_dir(&format!("/lib/{t}")) || is_dir(&format!("/usr/lib/{t}")) => {
                format!("lib/{t}")
            }
            _ if arch.class == ElfClass::Elf64 && is_dir("/lib64") => "lib64".into(),
            _ => "lib".into(),
        };
        let cache = match resolve_in_root(root, "/etc/ld.so.cache") {
            Ok(r) => match root
                .read(&r.path)
                .map_err(|e| e.to_string())
                .and_then(|d| LdCache::parse(&d).map_err(|e| e.to_string()))
            {
                Ok(c) => Some((c, r)),
                Err(e) => {
                    warnings.push(format!("ignoring the root's ld.so.cache, as ld.so would: {e}"));
                    None
                }
            },
            Err(_) => None,
        };
        SearchEnv {
            flavor: Flavor::Glibc,
            arch,
            lib,
            platform: platform_name.unwrap_or(platform(&arch)).to_string(),
            default_dirs,
            cache,
        }
    }

    /// One RPATH/RUNPATH entry with `$ORIGIN`, `$LIB`, `$PLATFORM` (also `${…}`)
    /// expanded. musl expands only `$ORIGIN`. Unknown tokens stay as written, as in
    /// glibc. `None` for an empty entry.
    pub fn expand(&self, entry: &str, origin: &str) -> Option<String> {
        if entry.is_empty() {
            return None;
        }
        let musl = matches!(self.flavor, Flavor::Musl(_));
        let mut out = String::new();
        let mut rest = entry;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            let (name, len) = if let Some(braced) = rest.strip_prefix('{') {
                match braced.find('}') {
                    Some(end) => (&braced[..end], end + 2),
                    None => ("", 0),
                }
            } else {
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
                let end = end.unwrap_or(rest.len());
                (&rest[..end], end)
            };
            let value = match name {
                "ORIGIN" => Some(origin),
                "LIB" if !musl => Some(self.lib.as_str()),
                "PLATFORM" if !musl => Some(self.platform.as_str()),
                _ => None,
            };
            match value {
                Some(v) => {
                    out.push_str(v);
                    rest = &rest[len..];
                }
                None => out.push('$'),
            }
        }
        out.push_str(rest);
        Some(out)
    }

    /// Looks for `name` (no `/` in it) in `dirs`, then in the cache and default
    /// directories (skipping system directories when `nodeflib`).
    pub fn search<R: RootFs + ?Sized>(
        &self,
        root: &R,
        name: &str,
        dirs: &[SearchDir],
        nodeflib: bool,
    ) -> Result<Outcome, ElfError> {
        let mut searched = Vec::new();
        let mut skipped = Vec::new();
        for d in dirs {
            let label = format!("{} ({})", d.dir, d.why);
            if !searched.contains(&label) {
                searched.push(label);
            }
            let path = join(&d.dir, name);
            if let Some(found) = self.open(root, &path, d.why.clone(), &mut skipped)? {
                return Ok(Outcome::Found(Box::new(found)));
            }
        }
        if let (Flavor::Glibc, Some((cache, at))) = (&self.flavor, &self.cache) {
            searched.push(at.path.clone());
            let arch = &self.arch;
            if let Some(path) = cache.lookup(name, arch.class, arch.machine, arch.e_flags) {
                let system = self.default_dirs.iter().any(|d| d == dirname(path));
                if !(nodeflib && system) {
                    let via = "ld.so.cache".to_string();
                    if let Some(found) = self.open(root, path, via, &mut skipped)? {
                        return Ok(Outcome::Found(Box::new(found)));
                    }
                }
            }
        }
        if !nodeflib || matches!(self.flavor, Flavor::Musl(_)) {
            for dir in &self.default_dirs {
                searched.push(dir.clone());
                let via = "default directory".to_string();
                if let Some(found) = self.open(root, &join(dir, name), via, &mut skipped)? {
                    return Ok(Outcome::Found(Box::new(found)));
                }
            }
        }
        Ok(Outcome::Missing { searched, skipped })
    }

    /// What ld.so's `open_verify` does with one candidate path: `None` (noting why in
    /// `skipped` when something was there) if it would move on, an error if it would
    /// stop, the loaded object otherwise.
    pub fn open<R: RootFs + ?Sized>(
        &self,
        root: &R,
        path: &str,
        via: String,
        skipped: &mut Vec<String>,
    ) -> Result<Option<Candidate>, ElfError> {
        let resolved = match resolve_in_root(root, path) {
            Ok(r) if r.node == Node::File => r,
            Ok(_) | Err(ElfError::NotFound { .. } | ElfError::NotADirectory { .. }) => return Ok(None),
            Err(e) => {
                skipped.push(e.to_string());
                return Ok(None);
            }
        };
        let bytes = root.read(&resolved.path).map_err(|e| ElfError::Io { path: resolved.path.clone(), source: e })?;
        let dso = Dso::from_parsed(parse::parse(&bytes).map_err(|e| e.at(path))?);
        if !self.arch.accepts(&dso.arch) {
            skipped.push(format!("{path}: {}, need {}", dso.arch.label(), self.arch.label()));
            return Ok(None);
        }
        Ok(Some(Candidate { path: path.to_string(), resolved, dso, via }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::testutil::MemRoot;

    fn env(root: &MemRoot, interp: &str) -> SearchEnv {
        let arch = Arch { class: ElfClass::Elf64, order: ByteOrder::Little, machine: elf::EM_X86_64, e_flags: 0 };
        SearchEnv::new(root, arch, Some(interp), None, None, &mut Vec::new())
    }

    #[test]
    fn expands_dynamic_string_tokens() {
        let mut root = MemRoot::default();
        root.dir("/usr/lib/x86_64-linux-gnu");
        let e = env(&root, "/lib64/ld-linux-x86-64.so.2");
        let x = |s| e.expand(s, "/opt/app/bin");
        assert_eq!(x("$ORIGIN/../lib").as_deref(), Some("/opt/app/bin/../lib"));
        assert_eq!(x("${ORIGIN}/x").as_deref(), Some("/opt/app/bin/x"));
        assert_eq!(x("/a/$LIB/${PLATFORM}").as_deref(), Some("/a/lib/x86_64-linux-gnu/x86_64"));
        assert_eq!(x("/a/$ORIGINAL/$FOO").as_deref(), Some("/a/$ORIGINAL/$FOO"));
        assert_eq!(x("/a/${ORIGIN").as_deref(), Some("/a/${ORIGIN"));
        assert_eq!(x(""), None);
        let musl = env(&root, "/lib/ld-musl-x86_64.so.1");
        assert_eq!(musl.expand("$ORIGIN/$LIB", "/o").as_deref(), Some("/o/$LIB"));
        assert_eq!(musl.default_dirs, ["/lib", "/usr/local/lib", "/usr/lib"]);
    }

    #[test]
    fn picks_lib_by_layout() {
        let mut root = MemRoot::default();
        root.dir("/lib64");
        assert_eq!(env(&root, "/lib64/ld-linux-x86-64.so.2").lib, "lib64");
        root.file("/etc/ld-musl-x86_64.path", b"/opt/lib\n/usr/lib:/lib\n");
        let musl = env(&root, "/lib/ld-musl-x86_64.so.1");
        assert_eq!(musl.flavor, Flavor::Musl("x86_64".into()));
        assert_eq!(musl.default_dirs, ["/opt/lib", "/usr/lib", "/lib"]);
    }
}
