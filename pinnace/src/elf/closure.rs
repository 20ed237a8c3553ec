//! What [`resolve_closure`](crate::elf::resolve_closure) takes and returns: the binary,
//! the options, and the closure (files, loaded objects, missing libraries, warnings).

use serde::Serialize;

use crate::elf::dlopen::GconvPolicy;
use crate::elf::error::{ElfError, MissingLibrary};
use crate::elf::info::ElfInfo;
use crate::elf::rootfs::{dirname, normalize, resolve_in_root, Node, RootFs};

/// How to resolve a closure. `Default` is what `pinnace build` uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosureOptions {
    /// Add the NSS modules glibc loads for NSS functions (default `true`):
    /// `libnss_files.so.2` for any of them (`getpwnam`, `getservbyname`…), and
    /// `libnss_dns.so.2` for host lookups (`getaddrinfo`, `gethostbyname`…), when they
    /// exist in the root (glibc 2.34+ has both built in and ships stubs).
    pub nss: bool,
    /// Add `libgcc_s.so.1` when glibc would load it for unwinding (default `true`):
    /// an object imports `pthread_cancel`, `pthread_exit`, `backtrace` or `_Unwind_*`.
    pub libgcc_s: bool,
    /// When to add glibc's gconv modules.
    pub gconv: GconvPolicy,
    /// The expansion of `$LIB`; `None` derives it from the root's layout
    /// (`lib/<triplet>` on Debian, else `lib64` or `lib`).
    pub lib: Option<String>,
    /// The expansion of `$PLATFORM`; `None` uses the machine's usual `AT_PLATFORM`.
    pub platform: Option<String>,
    /// Report missing libraries in [`Closure::missing`] instead of failing (`doctor`).
    pub allow_missing: bool,
}

impl Default for ClosureOptions {
    fn default() -> Self {
        ClosureOptions {
            nss: true,
            libgcc_s: true,
            gconv: GconvPolicy::default(),
            lib: None,
            platform: None,
            allow_missing: false,
        }
    }
}

/// The program whose closure is resolved: its bytes and where it lives in the image.
///
/// The bytes may come from outside the root (a binary given on the host command line is
/// placed into an image built from a `--sysroot`); the path is only used for `$ORIGIN`.
#[derive(Debug, Clone)]
pub struct Binary {
    path: String,
    bytes: Vec<u8>,
    origin: String,
}

impl Binary {
    /// A binary that will live at `path` in the image. `$ORIGIN` is the directory of
    /// `path`, normalised without touching any file system.
    pub fn new(path: &str, bytes: Vec<u8>) -> Binary {
        let path = normalize(path);
        let origin = dirname(&path).to_string();
        Binary { path, bytes, origin }
    }

    /// The binary at `path` inside `root`. `$ORIGIN` is the directory of its resolved
    /// path, as the kernel reports it in `/proc/self/exe`.
    pub fn from_root<R: RootFs + ?Sized>(root: &R, path: &str) -> Result<Binary, ElfError> {
        let resolved = resolve_in_root(root, path)?;
        if resolved.node != Node::File {
            return Err(ElfError::NotFound { path: path.to_string() });
        }
        let bytes = root.read(&resolved.path).map_err(|e| ElfError::Io { path: resolved.path.clone(), source: e })?;
        let origin = dirname(&resolved.path).to_string();
        Ok(Binary { path: normalize(path), bytes, origin })
    }

    /// Where the binary lives in the image.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The binary's contents.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// What `$ORIGIN` expands to in the binary's own RPATH/RUNPATH.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// The result of [`resolve_closure`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Closure {
    /// The main binary's `PT_INTERP`, as written in it.
    pub interpreter: Option<String>,
    /// Every file and symbolic link the image needs besides the binary itself, sorted by
    /// path, each path once. Links include directories that are links (`/lib -> usr/lib`).
    pub files: Vec<ClosureFile>,
    /// The objects the loader maps, in load order (interpreter first).
    pub objects: Vec<LoadedObject>,
    /// Libraries not found (only with [`ClosureOptions::allow_missing`]; otherwise they
    /// are an [`ElfError::MissingLibraries`]).
    pub missing: Vec<MissingLibrary>,
    /// Things that work now but may not at run time, for the user to read.
    pub warnings: Vec<String>,
    /// The main binary's facts, with the closure's TLS libraries merged into `tls`.
    pub facts: ElfInfo,
}

/// One path the image must contain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosureFile {
    /// Absolute path in the root, e.g. `/usr/lib/x86_64-linux-gnu/libz.so.1.2.13`.
    pub path: String,
    /// A regular file, or a link to reproduce as is.
    pub kind: ClosureFileKind,
    /// Why it is needed, e.g. `DT_NEEDED libz.so.1 of /usr/bin/curl`, `interpreter`,
    /// `dlopen: NSS (getaddrinfo)`.
    pub reason: String,
}

/// What a [`ClosureFile`] is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ClosureFileKind {
    /// A regular file: copy its contents.
    Regular,
    /// A symbolic link: recreate it with this exact target.
    Symlink {
        /// The target as stored in the root (relative or absolute).
        target: String,
    },
}

/// One object the loader maps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadedObject {
    /// The name it was asked for (`DT_NEEDED`, or the `PT_INTERP` path).
    pub name: String,
    /// The path the loader opens (what `ldd` prints after `=>`).
    pub path: String,
    /// `path` with every link resolved.
    pub real_path: String,
    /// The object that needed it first (`None` for the interpreter and `dlopen`s).
    pub needed_by: Option<String>,
    /// How it was found: `interpreter`, `RUNPATH of …`, `RPATH of …`, `ld.so.cache`,
    /// `default directory`, `dlopen: …`.
    pub via: String,
}
