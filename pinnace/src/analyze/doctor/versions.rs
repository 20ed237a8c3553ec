//! Symbol versions: what each object of a closure requires (`.gnu.version_r`: "from
//! libc.so.6, GLIBC_2.34") against what the providing library defines (`.gnu.version_d`).
//!
//! ld.so refuses to start a program when a required version is missing from a library
//! that has version definitions ("version `GLIBC_2.34' not found"), the usual result of
//! building on a newer distribution than the image's base. A library without version
//! definitions only draws a warning from ld.so, so it is not reported here.

use object::elf;
use object::read::elf::FileHeader;
use object::Endianness;

use super::Finding;
use crate::elf::{Closure, LoadedObject};

/// Versions one object requires from one file: `("libc.so.6", ["GLIBC_2.2.5", "GLIBC_2.34"])`.
pub type Requirement = (String, Vec<String>);

/// The version requirements of an ELF file (empty when it has none or is not ELF).
pub fn requirements(data: &[u8]) -> Vec<Requirement> {
    match class(data) {
        Some(elf::ELFCLASS32) => needs_as::<elf::FileHeader32<Endianness>>(data).unwrap_or_default(),
        Some(elf::ELFCLASS64) => needs_as::<elf::FileHeader64<Endianness>>(data).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The versions an ELF file defines, without the base entry (its own soname).
pub fn definitions(data: &[u8]) -> Vec<String> {
    match class(data) {
        Some(elf::ELFCLASS32) => defs_as::<elf::FileHeader32<Endianness>>(data).unwrap_or_default(),
        Some(elf::ELFCLASS64) => defs_as::<elf::FileHeader64<Endianness>>(data).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn class(data: &[u8]) -> Option<u8> {
    (data.len() > 4 && data[..4] == elf::ELFMAG).then(|| data[4])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn needs_as<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> object::read::Result<Vec<Requirement>> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let Some((mut iter, link)) = sections.gnu_verneed(endian, data)? else { return Ok(Vec::new()) };
    let strings = sections.strings(endian, data, link)?;
    let mut out = Vec::new();
    while let Some((need, mut aux)) = iter.next()? {
        let file = text(need.file(endian, strings)?);
        let mut versions = Vec::new();
        while let Some(a) = aux.next()? {
            versions.push(text(a.name(endian, strings)?));
        }
        out.push((file, versions));
    }
    Ok(out)
}

fn defs_as<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> object::read::Result<Vec<String>> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let Some((mut iter, link)) = sections.gnu_verdef(endian, data)? else { return Ok(Vec::new()) };
    let strings = sections.strings(endian, data, link)?;
    let mut out = Vec::new();
    while let Some((def, mut aux)) = iter.next()? {
        // The first name of an entry is the version; further ones name its parents.
        let first = aux.next()?;
        if def.vd_flags.get(endian) & elf::VER_FLG_BASE != 0 {
            continue;
        }
        if let Some(a) = first {
            out.push(text(a.name(endian, strings)?));
        }
    }
    Ok(out)
}

/// `GLIBC_2.34` -> `("GLIBC_", [2, 34])`; names without a numeric tail sort as `[]`.
fn split_version(v: &str) -> (&str, Vec<u64>) {
    let cut = v.rfind('_').map_or(0, |i| i + 1);
    let nums: Option<Vec<u64>> = v[cut..].split('.').map(|n| n.parse().ok()).collect();
    match nums {
        Some(n) if cut > 0 => (&v[..cut], n),
        _ => (v, Vec::new()),
    }
}

/// The newest of `defs` in the same family as `wanted` (`GLIBC_2.31` for `GLIBC_2.34`).
fn newest_like<'a>(defs: &'a [String], wanted: &str) -> Option<&'a str> {
    let family = split_version(wanted).0;
    defs.iter().filter(|d| split_version(d).0 == family).max_by_key(|d| split_version(d).1).map(String::as_str)
}

/// The object of `closure` a requirement names: by `DT_NEEDED` name, or by base name for
/// the interpreter (whose name is its path).
fn provider<'c>(closure: &'c Closure, file: &str) -> Option<&'c LoadedObject> {
    closure.objects.iter().find(|o| o.name == file || o.name.rsplit('/').next() == Some(file))
}

/// Findings for every version an object of `closure` (or the program itself, at `main`,
/// really `main_real`) requires and its provider does not define. `read` returns an
/// object's bytes by its real path in the image.
pub fn check_closure(
    main: &str,
    main_real: &str,
    closure: &Closure,
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut defs_cache: Vec<(String, Vec<String>)> = Vec::new();
    let objects = std::iter::once((main.to_string(), main_real.to_string()))
        .chain(closure.objects.iter().map(|o| (o.path.clone(), o.real_path.clone())));
    for (shown, real) in objects {
        let Some(bytes) = read(&real) else { continue };
        for (file, versions) in requirements(&bytes) {
            let Some(p) = provider(closure, &file) else { continue };
            let defs = match defs_cache.iter().find(|(path, _)| *path == p.real_path) {
                Some((_, d)) => d.clone(),
                None => {
                    let d = read(&p.real_path).map(|b| definitions(&b)).unwrap_or_default();
                    defs_cache.push((p.real_path.clone(), d.clone()));
                    d
                }
            };
            if defs.is_empty() {
                continue;
            }
            let missing: Vec<&String> = versions.iter().filter(|v| !defs.contains(v)).collect();
            let Some(first) = missing.first() else { continue };
            let glibc = missing.iter().any(|v| v.starts_with("GLIBC_"));
            let id = if glibc { "elf-glibc-version" } else { "elf-symbol-version" };
            let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            let newest = newest_like(&defs, first)
                .map_or_else(|| "none of that family".to_string(), |n| format!("versions up to {n}"));
            out.push(
                Finding::new(
                    id,
                    format!(
                        "{shown} needs {} from {file}, but the image's {} defines {newest}; the loader stops with \"version `{}' not found\"",
                        names.join(", "),
                        p.real_path,
                        first
                    ),
                )
                .at(shown.clone()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_split_and_order() {
        assert_eq!(split_version("GLIBC_2.34"), ("GLIBC_", vec![2, 34]));
        assert_eq!(split_version("GLIBCXX_3.4.30"), ("GLIBCXX_", vec![3, 4, 30]));
        assert_eq!(split_version("GLIBC_PRIVATE"), ("GLIBC_PRIVATE", vec![]));
        let defs: Vec<String> = ["GLIBC_2.2.5", "GLIBC_2.31", "GLIBC_2.4", "GLIBC_PRIVATE"].map(String::from).to_vec();
        assert_eq!(newest_like(&defs, "GLIBC_2.34"), Some("GLIBC_2.31"));
        assert_eq!(newest_like(&defs, "OPENSSL_3.0.0"), None);
    }

    #[test]
    fn not_elf_has_no_versions() {
        assert!(requirements(b"#!/bin/sh").is_empty());
        assert!(definitions(b"").is_empty());
    }

    #[test]
    fn the_test_binary_requires_glibc_versions_that_host_libc_defines() {
        let me = std::fs::read("/proc/self/exe").unwrap();
        let reqs = requirements(&me);
        let libc = reqs.iter().find(|(f, _)| f == "libc.so.6").expect("the test binary links libc.so.6");
        assert!(libc.1.iter().all(|v| v.starts_with("GLIBC_")), "{libc:?}");
        let Some(host) =
            ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"].iter().find_map(|p| std::fs::read(p).ok())
        else {
            return;
        };
        let defs = definitions(&host);
        assert!(defs.iter().any(|d| d == "GLIBC_2.2.5"), "{defs:?}");
        assert!(libc.1.iter().all(|v| defs.contains(v)), "{libc:?} vs {defs:?}");
    }
}
