//! Libraries glibc loads with `dlopen` behind the program's back, and what triggers them.
//!
//! - NSS modules: `getaddrinfo`, `getpwnam` and friends consult `/etc/nsswitch.conf` and
//!   load `libnss_<service>.so.2`. We add `libnss_files.so.2` for any NSS function and
//!   `libnss_dns.so.2` for host lookups. Since glibc 2.34 both services are built into
//!   libc and the `.so.2` files are stubs, so they are added only when they exist in the
//!   root (a missing one is a warning, not an error). Other services named in
//!   `nsswitch.conf` (systemd, mdns, ldap) are not added: an image normally does not run
//!   their daemons.
//! - `libgcc_s.so.1`: glibc loads it to unwind the stack for `pthread_cancel` and
//!   `pthread_exit`, and for `backtrace`; an `_Unwind_*` import needs it too.
//! - gconv modules: `iconv_open` loads `<libdir>/gconv/*.so` named in `gconv-modules`
//!   for charsets other than the built-in ones (UTF-8, UCS-2/4, ASCII, ISO-8859-1…).
//!   The charsets are run-time data, so it is all or nothing: the whole gconv directory
//!   (configuration, cache, every module — about 8 MiB on Debian). By default only a
//!   main binary that imports `iconv_open` gets it ([`GconvPolicy::IfMainImports`]):
//!   libraries such as libunistring import it defensively and, in the C or a UTF-8
//!   locale, only ever convert between built-in charsets.

use serde::Serialize;

use crate::elf::error::{io_error, ElfError};
use crate::elf::info::{NSS_HOST_FUNCTIONS, NSS_OTHER_FUNCTIONS};
use crate::elf::rootfs::{join, resolve_in_root, Node, Resolved, RootFs};

/// When to add glibc's gconv modules, which `iconv_open` loads for charsets other than
/// the built-in ones (UTF-8, UCS-2/4, ASCII, ISO-8859-1).
///
/// The charset names are run-time data, so it is all or nothing: the whole gconv
/// directory next to libc (configuration, cache and every module; about 8 MiB on
/// Debian). Libraries such as libunistring and libidn2 import `iconv_open` defensively
/// and in the C or a UTF-8 locale only convert between built-in charsets, hence the
/// default looks at the main binary only (and warns about the libraries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum GconvPolicy {
    /// Never add them.
    Never,
    /// Add them when the main binary imports `iconv_open` (the default).
    #[default]
    IfMainImports,
    /// Add them when any object of the closure imports `iconv_open`.
    IfAnyImports,
}

/// The NSS function among `imports` that makes glibc load `libnss_files`, and the one
/// that makes it load `libnss_dns` (a host lookup).
pub(crate) fn nss_triggers(imports: &[String]) -> (Option<&str>, Option<&str>) {
    let has = |f: &&str| imports.binary_search_by(|s| s.as_str().cmp(f)).is_ok();
    let host = NSS_HOST_FUNCTIONS.iter().copied().find(has);
    let any = host.or_else(|| NSS_OTHER_FUNCTIONS.iter().copied().find(has));
    (any, host)
}

/// The import among `imports` (sorted) that makes glibc load `libgcc_s.so.1`.
pub(crate) fn unwinder_trigger(imports: &[String]) -> Option<&str> {
    ["pthread_cancel", "pthread_exit", "backtrace"]
        .into_iter()
        .find(|f| imports.binary_search_by(|s| s.as_str().cmp(f)).is_ok())
        .or_else(|| imports.iter().find(|s| s.starts_with("_Unwind_")).map(String::as_str))
}

/// Whether `imports` (sorted) contains `iconv_open`.
pub(crate) fn imports_iconv(imports: &[String]) -> bool {
    imports.binary_search_by(|s| s.as_str().cmp("iconv_open")).is_ok()
}

/// One entry of a directory tree copied as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TreeEntry {
    File(String),
    Symlink(String, String),
}

/// Every file and symbolic link under `dir` (a link-free directory of the root), sorted,
/// at most `depth` directories deep. Links are listed, not followed.
pub(crate) fn list_tree<R: RootFs + ?Sized>(root: &R, dir: &str, depth: usize) -> Result<Vec<TreeEntry>, ElfError> {
    let mut out = Vec::new();
    for name in root.read_dir(dir).map_err(|e| io_error(dir, e))? {
        let path = join(dir, &name);
        match root.lstat(&path).map_err(|e| io_error(&path, e))? {
            Some(Node::File) => out.push(TreeEntry::File(path)),
            Some(Node::Symlink(target)) => out.push(TreeEntry::Symlink(path, target)),
            Some(Node::Dir) if depth > 0 => out.extend(list_tree(root, &path, depth - 1)?),
            _ => {}
        }
    }
    Ok(out)
}

/// The gconv directory next to libc (`<dir of libc>/gconv`, glibc's default
/// `GCONV_PATH`), resolved, if it is a directory.
pub(crate) fn gconv_dir<R: RootFs + ?Sized>(root: &R, libc_dir: &str) -> Option<Resolved> {
    resolve_in_root(root, &join(libc_dir, "gconv")).ok().filter(|r| r.node == Node::Dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::testutil::MemRoot;

    fn owned(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn finds_triggers() {
        assert_eq!(nss_triggers(&owned(&["getaddrinfo", "puts"])), (Some("getaddrinfo"), Some("getaddrinfo")));
        assert_eq!(nss_triggers(&owned(&["getpwnam"])), (Some("getpwnam"), None));
        assert_eq!(nss_triggers(&owned(&["puts"])), (None, None));
        assert_eq!(unwinder_trigger(&owned(&["pthread_exit"])), Some("pthread_exit"));
        assert_eq!(unwinder_trigger(&owned(&["_Unwind_Resume", "a"])), Some("_Unwind_Resume"));
        assert!(imports_iconv(&owned(&["iconv", "iconv_open"])));
    }

    #[test]
    fn lists_a_tree_without_following_links() {
        let mut root = MemRoot::default();
        root.file("/g/gconv-modules", b"");
        root.file("/g/gconv-modules.d/a.conf", b"");
        root.file("/g/UTF-7.so", b"");
        root.link("/g/ALIAS.so", "UTF-7.so");
        let got = list_tree(&root, "/g", 2).unwrap();
        assert_eq!(
            got,
            [
                TreeEntry::Symlink("/g/ALIAS.so".into(), "UTF-7.so".into()),
                TreeEntry::File("/g/UTF-7.so".into()),
                TreeEntry::File("/g/gconv-modules".into()),
                TreeEntry::File("/g/gconv-modules.d/a.conf".into()),
            ]
        );
        assert_eq!(gconv_dir(&root, "/"), None);
        root.link("/lib/gconv", "../g");
        let g = gconv_dir(&root, "/lib").unwrap();
        assert_eq!((g.path.as_str(), g.hops.len()), ("/g", 1));
    }
}
