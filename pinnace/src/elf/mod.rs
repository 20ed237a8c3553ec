//! The shared-library closure of a binary, resolved the way the dynamic loader does, and
//! facts about ELF files for `build` and `doctor`.
//!
//! - [`inspect`] reads one ELF file from bytes: class, machine, interpreter, `DT_NEEDED`,
//!   RPATH/RUNPATH, and heuristics (static, musl, Go, Rust, stripped, TLS, time zones,
//!   UPX, NSS) in an [`ElfInfo`].
//! - [`resolve_closure`] finds, inside a root ([`RootFs`]: a host directory or an image's
//!   file tree), every file the loader opens to start a [`Binary`]: `PT_INTERP`,
//!   `DT_NEEDED` recursively through `DT_RPATH`/`DT_RUNPATH` (with `$ORIGIN`, `$LIB`,
//!   `$PLATFORM`), the root's `/etc/ld.so.cache` ([`LdCache`]) and the default
//!   directories, plus what glibc `dlopen`s (NSS modules, `libgcc_s`, gconv). The
//!   [`Closure`] lists each file and each symbolic link on the way to it, so an image
//!   reproduces the same chains (`/lib -> usr/lib` included).
//! - [`resolve_in_root`] follows symbolic links with the root as `/`, never leaving it.
//!
//! `LD_LIBRARY_PATH` and `LD_PRELOAD` play no part: they belong to the image's
//! environment, not to the root the files come from.
//!
//! ```no_run
//! use pinnace::elf::{resolve_closure, Binary, ClosureOptions, HostRoot};
//!
//! let root = HostRoot::new("/");
//! let binary = Binary::from_root(&root, "/usr/bin/curl")?;
//! let closure = resolve_closure(&root, &binary, &ClosureOptions::default())?;
//! for file in &closure.files {
//!     println!("{} ({})", file.path, file.reason);
//! }
//! # Ok::<(), pinnace::elf::ElfError>(())
//! ```

mod closure;
mod dlopen;
mod error;
mod info;
mod ldcache;
mod parse;
mod resolve;
mod rootfs;
mod search;

#[cfg(test)]
mod tests_host;
#[cfg(test)]
mod tests_mem;
#[cfg(test)]
mod testutil;

pub use closure::{Binary, Closure, ClosureFile, ClosureFileKind, ClosureOptions, LoadedObject};
pub use dlopen::GconvPolicy;
pub use error::{ElfError, MissingLibrary};
pub use info::{inspect, ElfInfo, Libc, Linkage};
pub use ldcache::{LdCache, LdCacheEntry};
pub(crate) use parse::ld_cache_flags;
pub use parse::{machine_name, ByteOrder, ElfClass};
pub use resolve::resolve_closure;
pub use rootfs::{resolve_in_root, Hop, HostRoot, Node, Resolved, RootFs, MAX_SYMLINKS};
