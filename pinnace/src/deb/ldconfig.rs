//! `/etc/ld.so.cache` for packages that put libraries outside the loader's default
//! directories, as `ldconfig` (run by libc-bin's trigger) would have written it.
//!
//! When: only if a directory named by the package set's `/etc/ld.so.conf` (and the
//! `/etc/ld.so.conf.d/*.conf` it includes) is not one of the loader's default
//! directories and holds a shared library, e.g. `libfakeroot`'s
//! `/usr/lib/x86_64-linux-gnu/libfakeroot`. Otherwise there is no cache, as in
//! distroless: Debian's ld.so searches `/lib/TRIPLET`, `/usr/lib/TRIPLET`, `/lib` and
//! `/usr/lib` by itself.
//!
//! What (glibc `elf/ldconfig.c`, `elf/cache.c`): the directories of the configuration in
//! order, then `/lib` and `/usr/lib`, each once (by the path links resolve to). In each,
//! files named `lib*.so*` or `ld-*.so*` that are ELF shared objects, keyed by soname; of
//! several with one soname a regular file beats a link, then the higher name by
//! `_dl_cache_libcmp`; a missing `SONAME -> FILE` link is created, as ldconfig does.
//! Entries are sorted as ldconfig sorts them (by soname, descending in
//! `_dl_cache_libcmp` order, which ld.so's binary search relies on; then flags,
//! descending; ties keep directory order, so the earlier directory wins). Written in
//! the new format only (`glibc-ld.so.cache1.1`, what glibc >= 2.32 writes), little- or
//! big-endian as the libraries are, without the extension directory (no glibc-hwcaps
//! subdirectories are scanned). `elf::LdCache` reads it back in the tests, and so does
//! the host's `ldconfig -p`.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use crate::elf::{self, ByteOrder, Node, RootFs};
use crate::layer::{LayerEntrySpec, SpecKind};

use super::root::PackageRoot;

/// Where the cache goes.
pub const LD_SO_CACHE: &str = "etc/ld.so.cache";

const MAGIC: &[u8; 20] = b"glibc-ld.so.cache1.1";

/// One entry of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// `FLAG_ELF_LIBC6` or'ed with the ABI byte (`elf::ld_cache_flags`).
    pub flags: i32,
    /// The soname.
    pub soname: String,
    /// `DIR/SONAME`.
    pub path: String,
}

/// The loader's default directories for a Debian architecture's multiarch triplet.
pub fn default_dirs(triplet: &str) -> [String; 4] {
    [format!("/lib/{triplet}"), format!("/usr/lib/{triplet}"), "/lib".into(), "/usr/lib".into()]
}

/// The multiarch triplet of a Debian architecture (`amd64` -> `x86_64-linux-gnu`).
pub fn triplet(arch: &str) -> String {
    match arch {
        "amd64" => "x86_64-linux-gnu",
        "arm64" => "aarch64-linux-gnu",
        "armhf" => "arm-linux-gnueabihf",
        "armel" => "arm-linux-gnueabi",
        "i386" => "i386-linux-gnu",
        "ppc64el" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "mips64el" => "mips64el-linux-gnuabi64",
        "riscv64" => "riscv64-linux-gnu",
        other => return format!("{other}-linux-gnu"),
    }
    .to_string()
}

/// The directories of `/etc/ld.so.conf` in the package set, in ldconfig's order:
/// `include GLOB` (a `*` in the last component; matches sorted) and one directory per
/// line; `hwcap` lines and comments are ignored.
/// Without `/etc/ld.so.conf` (libc-bin ships it, and images leave libc-bin out) the
/// file libc-bin ships is assumed: `include /etc/ld.so.conf.d/*.conf`.
pub fn conf_dirs(root: &PackageRoot) -> Vec<String> {
    let mut out = Vec::new();
    if root.contains("/etc/ld.so.conf") {
        read_conf(root, "/etc/ld.so.conf", &mut out, 0);
    } else {
        for f in glob(root, "/etc/ld.so.conf.d/*.conf") {
            read_conf(root, &f, &mut out, 1);
        }
    }
    out
}

fn read_conf(root: &PackageRoot, file: &str, out: &mut Vec<String>, depth: usize) {
    let Ok(bytes) = root.read(file) else { return };
    if depth > 8 {
        return;
    }
    for line in String::from_utf8_lossy(&bytes).lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line.strip_prefix("include").filter(|r| r.starts_with([' ', '\t'])) {
            for p in pattern.split_whitespace() {
                let p = if p.starts_with('/') {
                    p.to_string()
                } else {
                    format!("{}/{p}", file.rsplit_once('/').map_or("", |x| x.0))
                };
                for f in glob(root, &p) {
                    read_conf(root, &f, out, depth + 1);
                }
            }
        } else if line.starts_with('/') {
            // Old `DIR=TYPE` suffixes and `DIR:TYPE` are accepted, as ldconfig does.
            let dir = line.split(['=', ':', ' ', '\t']).next().unwrap_or(line).trim_end_matches('/');
            out.push(if dir.is_empty() { "/".into() } else { dir.to_string() });
        }
    }
}

/// Files matching `pattern` with at most one `*`, in its last component; sorted.
fn glob(root: &PackageRoot, pattern: &str) -> Vec<String> {
    let Some((dir, name)) = pattern.rsplit_once('/') else { return Vec::new() };
    let Some((pre, post)) = name.split_once('*') else {
        return if root.contains(pattern) { vec![pattern.to_string()] } else { Vec::new() };
    };
    let mut out: Vec<String> = root
        .read_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.len() >= pre.len() + post.len() && n.starts_with(pre) && n.ends_with(post))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    out.sort();
    out
}

/// glibc's `_dl_cache_libcmp`: runs of digits compare as numbers, a digit sorts after
/// anything else, other bytes compare as bytes.
pub fn libcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        if a[i].is_ascii_digit() {
            if j >= b.len() || !b[j].is_ascii_digit() {
                return Ordering::Greater;
            }
            let (si, sj) = (i, j);
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let (x, y) = (trim_zeros(&a[si..i]), trim_zeros(&b[sj..j]));
            match x.len().cmp(&y.len()).then(x.cmp(y)) {
                Ordering::Equal => {}
                o => return o,
            }
        } else if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        } else if j >= b.len() || a[i] != b[j] {
            return a[i].cmp(b.get(j).unwrap_or(&0));
        } else {
            i += 1;
            j += 1;
        }
    }
    0u8.cmp(b.get(j).unwrap_or(&0))
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n..]
}

/// What [`generate`] makes.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The `ld.so.cache` file.
    pub cache: Vec<u8>,
    /// Soname links ldconfig would have created (paths without a leading `/`).
    pub links: Vec<LayerEntrySpec>,
    /// The configured directories outside the defaults that hold libraries (the reason
    /// for the cache).
    pub extra_dirs: Vec<String>,
}

/// The cache for the package set and the soname links ldconfig would create; `None`
/// when no configured directory outside [`default_dirs`] holds a library.
pub fn generate(root: &PackageRoot, arch: &str) -> Option<Generated> {
    let defaults = default_dirs(&triplet(arch));
    let conf = conf_dirs(root);
    let real = |d: &str| elf::resolve_in_root(root, d).ok().filter(|r| r.node == Node::Dir).map(|r| r.path);
    let default_real: BTreeSet<String> = defaults.iter().filter_map(|d| real(d)).collect();
    // The directories ldconfig scans, once each by where they resolve to.
    let mut seen = BTreeSet::new();
    let dirs: Vec<(String, String)> = conf
        .iter()
        .chain(["/lib".to_string(), "/usr/lib".to_string()].iter())
        .filter_map(|d| real(d).map(|r| (d.clone(), r)))
        .filter(|(_, r)| seen.insert(r.clone()))
        .collect();
    // Scan the directories outside the defaults first: most package sets have none with
    // a library, and then the (larger) default directories are not read at all.
    let is_extra = |(d, r): &(String, String)| !default_real.contains(r) && !defaults.contains(d);
    let extra_dirs: Vec<String> = dirs
        .iter()
        .filter(|d| is_extra(d))
        .filter(|(d, _)| !scan(root, d).is_empty())
        .map(|(d, _)| d.clone())
        .collect();
    if extra_dirs.is_empty() {
        return None;
    }
    let scanned: Vec<(String, Vec<Found>)> = dirs.into_iter().map(|(d, _)| (d.clone(), scan(root, &d))).collect();
    let mut entries = Vec::new();
    let mut links = Vec::new();
    let mut big = false;
    for (dir, libs) in &scanned {
        for f in libs {
            let path = format!("{dir}/{}", f.soname);
            if !f.is_link && f.name != f.soname && !root.contains(&path) {
                links.push(LayerEntrySpec {
                    path: path.trim_start_matches('/').to_string(),
                    kind: SpecKind::Symlink(f.name.clone()),
                    mode: 0o777,
                    uid: 0,
                    gid: 0,
                });
            }
            big |= f.big;
            entries.push(CacheEntry { flags: f.flags, soname: f.soname.clone(), path });
        }
    }
    Some(Generated { cache: write(&mut entries, big), links, extra_dirs })
}

/// A library of one directory.
#[derive(Debug)]
struct Found {
    name: String,
    soname: String,
    flags: i32,
    is_link: bool,
    big: bool,
}

fn scan(root: &PackageRoot, dir: &str) -> Vec<Found> {
    let mut names = root.read_dir(dir).unwrap_or_default();
    names.sort();
    let mut out: Vec<Found> = Vec::new();
    for name in names {
        if !(name.starts_with("lib") || name.starts_with("ld-")) || !name.contains(".so") {
            continue;
        }
        let path = format!("{dir}/{name}");
        let is_link = matches!(root.lstat(&path), Ok(Some(Node::Symlink(_))));
        let Ok(r) = elf::resolve_in_root(root, &path) else { continue };
        if r.node != Node::File {
            continue;
        }
        let Ok(info) = root.read(&r.path).map_err(|_| ()).and_then(|b| elf::inspect(&b).map_err(|_| ())) else {
            continue;
        };
        // ET_DYN only (shared objects; PIE executables are named otherwise).
        if info.e_type != 3 {
            continue;
        }
        let Some(flags) = elf::ld_cache_flags(info.class, info.machine, info.e_flags) else { continue };
        let soname = info.soname.clone().unwrap_or_else(|| name.clone());
        let f = Found { name, soname, flags, is_link, big: info.byte_order == ByteOrder::Big };
        match out.iter_mut().find(|o| o.soname == f.soname) {
            Some(o) => {
                if (!f.is_link && o.is_link) || (f.is_link == o.is_link && libcmp(&o.name, &f.name) == Ordering::Less) {
                    *o = f;
                }
            }
            None => out.push(f),
        }
    }
    out
}

/// The cache file for `entries` (sorted here as ldconfig sorts them; stable, so equal
/// entries keep their order), in the byte order of the libraries.
pub fn write(entries: &mut [CacheEntry], big: bool) -> Vec<u8> {
    entries.sort_by(|a, b| libcmp(&b.soname, &a.soname).then(b.flags.cmp(&a.flags)));
    let u32b = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
    let strings_at = 48 + 24 * entries.len();
    // Each distinct string once; offsets count from the start of the header.
    let mut strings: Vec<u8> = Vec::new();
    let mut offsets: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    let mut table: Vec<u8> = Vec::with_capacity(24 * entries.len());
    for e in entries.iter() {
        for s in [e.soname.as_str(), e.path.as_str()] {
            offsets.entry(s).or_insert_with(|| {
                let o = (strings_at + strings.len()) as u32;
                strings.extend_from_slice(s.as_bytes());
                strings.push(0);
                o
            });
        }
        table.extend(u32b(e.flags as u32));
        table.extend(u32b(offsets[e.soname.as_str()]));
        table.extend(u32b(offsets[e.path.as_str()]));
        table.extend(u32b(0)); // osversion, unused
        table.extend([0u8; 8]); // hwcap: none
    }
    let mut out = Vec::with_capacity(strings_at + strings.len());
    out.extend_from_slice(MAGIC);
    out.extend(u32b(entries.len() as u32));
    out.extend(u32b(strings.len() as u32));
    out.push(if big { 3 } else { 2 }); // cache_file_new_flags_endian_big / _little
    out.extend([0u8; 3]);
    out.extend(u32b(0)); // extension_offset: no extension directory
    out.extend([0u8; 12]);
    out.extend(table);
    out.extend(strings);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{ElfClass, LdCache};

    fn file(path: &str, bytes: &[u8]) -> LayerEntrySpec {
        crate::deb::postinst::bytes_entry(path, bytes.to_vec())
    }

    fn link(path: &str, target: &str) -> LayerEntrySpec {
        LayerEntrySpec { path: path.into(), kind: SpecKind::Symlink(target.into()), mode: 0o777, uid: 0, gid: 0 }
    }

    /// A shared object of the host with a soname, to stand in for packaged libraries.
    fn host_lib() -> Option<(Vec<u8>, String)> {
        for p in [
            "/lib/x86_64-linux-gnu/libz.so.1",
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
            "/lib/x86_64-linux-gnu/libc.so.6",
        ] {
            if let Ok(b) = std::fs::read(p) {
                if let Ok(i) = elf::inspect(&b) {
                    if let Some(s) = i.soname {
                        return Some((b, s));
                    }
                }
            }
        }
        None
    }

    #[test]
    fn libcmp_is_glibcs() {
        assert_eq!(libcmp("libz.so.1", "libz.so.1"), Ordering::Equal);
        assert_eq!(libcmp("libz.so.10", "libz.so.9"), Ordering::Greater);
        assert_eq!(libcmp("libz.so.010", "libz.so.9"), Ordering::Greater);
        assert_eq!(libcmp("lib1", "liba"), Ordering::Greater);
        assert_eq!(libcmp("liba", "lib1"), Ordering::Less);
        assert_eq!(libcmp("libc.so", "libc.so.6"), Ordering::Less);
        assert_eq!(libcmp("libfakeroot-sysv.so", "libfakeroot-tcp.so"), Ordering::Less);
    }

    #[test]
    fn only_for_libraries_outside_the_defaults_and_round_trips() {
        let Some((lib, soname)) = host_lib() else { return };
        let conf = b"# multiarch\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n";
        let mut root = PackageRoot::default();
        root.add(&[
            file("etc/ld.so.conf.d/x86_64-linux-gnu.conf", conf),
            file("lib/x86_64-linux-gnu/libdefault.so.1.2", &lib),
        ]);
        assert!(generate(&root, "amd64").is_none(), "only default directories: no cache");
        root.add(&[
            file("etc/ld.so.conf.d/extra.conf", b"/opt/extra/lib\n"),
            file("opt/extra/lib/libextra-real.so", &lib),
            link("opt/extra/lib/libextra.so", "libextra-real.so"),
            file("opt/extra/lib/README", b"not a library"),
        ]);
        let g = generate(&root, "amd64").expect("a cache");
        assert_eq!(g.extra_dirs, ["/opt/extra/lib"]);
        // The soname links ldconfig creates: SONAME -> the file, in each directory.
        let links: Vec<(&str, String)> = g
            .links
            .iter()
            .map(|e| {
                (
                    e.path.as_str(),
                    match &e.kind {
                        SpecKind::Symlink(t) => t.clone(),
                        _ => panic!(),
                    },
                )
            })
            .collect();
        assert_eq!(
            links,
            [
                (format!("opt/extra/lib/{soname}").as_str(), "libextra-real.so".to_string()),
                (format!("lib/x86_64-linux-gnu/{soname}").as_str(), "libdefault.so.1.2".to_string())
            ]
        );
        let cache = LdCache::parse(&g.cache).unwrap();
        let paths: Vec<&str> = cache.entries.iter().map(|e| e.path.as_str()).collect();
        // One soname in two directories: the configured order decides (ldconfig's).
        assert_eq!(paths, [format!("/opt/extra/lib/{soname}"), format!("/lib/x86_64-linux-gnu/{soname}")]);
        assert_eq!(cache.entries[0].flags, 0x0303);
        let found = cache.lookup(&soname, ElfClass::Elf64, object::elf::EM_X86_64, 0);
        assert_eq!(found, Some(format!("/opt/extra/lib/{soname}").as_str()));
    }
}
