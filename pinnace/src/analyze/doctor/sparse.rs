//! An ELF file reduced to the byte ranges the loader and the checks read: the ELF and
//! program headers, `PT_INTERP`, `PT_DYNAMIC` and its string table, the section header
//! table and section names, `.dynsym` with its strings, the symbol-version tables
//! (`.gnu.version_r`, `.gnu.version_d`), and the first 4 KiB (UPX's marker).
//!
//! Kept instead of the whole file for every library-like file of an image, so doctor can
//! resolve any closure after one streaming pass without holding the libraries' code in
//! memory (a JDK image has ~85 MB of `.so` files; their sparse forms take a few MB).
//! [`Sparse::materialize`] rebuilds a buffer of the original length with zeros elsewhere,
//! which the ELF parser reads exactly as it would read the file: every offset it follows
//! lands inside a kept range.

use object::elf;
use object::read::elf::{Dyn as _, FileHeader, ProgramHeader as _, SectionHeader as _};
use object::Endianness;

/// Gaps smaller than this between kept ranges are kept too (fewer, larger pieces).
const MERGE_GAP: u64 = 256;
/// The leading bytes always kept.
const HEAD: u64 = 4096;

/// An ELF file's kept ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparse {
    /// Length of the original file (as captured).
    pub len: u64,
    /// `(offset, bytes)`, sorted, not overlapping.
    pub pieces: Vec<(u64, Box<[u8]>)>,
}

impl Sparse {
    /// Reduces `data` to the ranges [`elf_ranges`] names; `None` when it is not ELF.
    pub fn of(data: &[u8]) -> Option<Sparse> {
        let ranges = elf_ranges(data)?;
        let pieces = ranges.into_iter().map(|(o, e)| (o, data[o as usize..e as usize].into())).collect();
        Some(Sparse { len: data.len() as u64, pieces })
    }

    /// Bytes held.
    pub fn kept_bytes(&self) -> u64 {
        self.pieces.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// A buffer of the original length: kept ranges in place, zeros elsewhere.
    pub fn materialize(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len as usize];
        for (o, b) in &self.pieces {
            out[*o as usize..*o as usize + b.len()].copy_from_slice(b);
        }
        out
    }

    /// The first bytes (at most 4 KiB), always kept.
    pub fn head(&self) -> &[u8] {
        self.pieces.first().filter(|(o, _)| *o == 0).map_or(&[], |(_, b)| &b[..b.len().min(HEAD as usize)])
    }
}

/// The byte ranges `[start, end)` of `data` to keep, sorted and merged; `None` when
/// `data` is not an ELF file. Damage past the ELF header only shrinks the list.
pub fn elf_ranges(data: &[u8]) -> Option<Vec<(u64, u64)>> {
    if data.len() < 6 || data[..4] != elf::ELFMAG {
        return None;
    }
    let mut r = vec![(0, HEAD)];
    match data[4] {
        elf::ELFCLASS32 => ranges_as::<elf::FileHeader32<Endianness>>(data, &mut r),
        elf::ELFCLASS64 => ranges_as::<elf::FileHeader64<Endianness>>(data, &mut r),
        _ => {}
    }
    Some(merge(r, data.len() as u64))
}

fn ranges_as<Elf: FileHeader<Endian = Endianness>>(data: &[u8], r: &mut Vec<(u64, u64)>) {
    let Ok(header) = Elf::parse(data) else { return };
    let Ok(endian) = header.endian() else { return };
    let span = |o: u64, n: u64| (o, o.saturating_add(n));
    let phoff: u64 = header.e_phoff(endian).into();
    r.push(span(phoff, u64::from(header.e_phnum(endian)) * u64::from(header.e_phentsize(endian))));
    let shoff: u64 = header.e_shoff(endian).into();
    if shoff != 0 {
        r.push(span(shoff, u64::from(header.e_shnum(endian)).max(1) * u64::from(header.e_shentsize(endian))));
    }
    if let Ok(phdrs) = header.program_headers(endian, data) {
        let loads: Vec<(u64, u64, u64)> = phdrs
            .iter()
            .filter(|p| p.p_type(endian) == elf::PT_LOAD)
            .map(|p| (p.p_vaddr(endian).into(), p.p_offset(endian).into(), p.p_filesz(endian).into()))
            .collect();
        for ph in phdrs {
            let t = ph.p_type(endian);
            if t == elf::PT_INTERP || t == elf::PT_DYNAMIC {
                r.push(span(ph.p_offset(endian).into(), ph.p_filesz(endian).into()));
            }
            if t != elf::PT_DYNAMIC {
                continue;
            }
            let Ok(Some(entries)) = ph.dynamic(endian, data) else { continue };
            let (mut strtab, mut strsz) = (None, 0u64);
            for d in entries {
                let tag: u64 = d.d_tag(endian).into();
                match u32::try_from(tag) {
                    Ok(elf::DT_STRTAB) => strtab = Some(d.d_val(endian).into()),
                    Ok(elf::DT_STRSZ) => strsz = d.d_val(endian).into(),
                    Ok(elf::DT_NULL) => break,
                    _ => {}
                }
            }
            let offset = strtab.and_then(|addr: u64| {
                loads.iter().find(|l| addr >= l.0 && addr - l.0 < l.2).map(|l| l.1 + (addr - l.0))
            });
            if let Some(o) = offset {
                r.push(span(o, strsz));
            }
        }
    }
    let Ok(sections) = header.sections(endian, data) else { return };
    let shstrndx = usize::from(header.e_shstrndx(endian));
    for (i, s) in sections.iter().enumerate() {
        let t = s.sh_type(endian);
        if t == elf::SHT_NOBITS {
            continue;
        }
        let keep = i == shstrndx
            || matches!(t, elf::SHT_DYNSYM | elf::SHT_DYNAMIC | elf::SHT_GNU_VERNEED | elf::SHT_GNU_VERDEF);
        if !keep {
            continue;
        }
        r.push(span(s.sh_offset(endian).into(), s.sh_size(endian).into()));
        if t != elf::SHT_DYNAMIC && i != shstrndx {
            // The linked string table (.dynstr) the names are indices into.
            if let Ok(link) = sections.section(object::SectionIndex(s.sh_link(endian) as usize)) {
                if link.sh_type(endian) != elf::SHT_NOBITS {
                    r.push(span(link.sh_offset(endian).into(), link.sh_size(endian).into()));
                }
            }
        }
    }
}

/// Clamps ranges to `len`, drops empty ones, sorts and merges overlapping or close ones.
fn merge(mut r: Vec<(u64, u64)>, len: u64) -> Vec<(u64, u64)> {
    for x in r.iter_mut() {
        *x = (x.0.min(len), x.1.min(len));
    }
    r.retain(|x| x.1 > x.0);
    r.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(r.len());
    for (s, e) in r {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(MERGE_GAP) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Bytes of symbol tables and debug information (`.symtab`, `.strtab`, `.debug_*`,
/// `.zdebug_*`) from the section headers; 0 for a stripped file or one that is not ELF.
pub fn debug_bytes(data: &[u8]) -> u64 {
    if data.len() < 6 || data[..4] != elf::ELFMAG {
        return 0;
    }
    match data[4] {
        elf::ELFCLASS32 => debug_as::<elf::FileHeader32<Endianness>>(data),
        elf::ELFCLASS64 => debug_as::<elf::FileHeader64<Endianness>>(data),
        _ => 0,
    }
}

fn debug_as<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> u64 {
    let Ok(header) = Elf::parse(data) else { return 0 };
    let Ok(endian) = header.endian() else { return 0 };
    let Ok(sections) = header.sections(endian, data) else { return 0 };
    let mut total = 0u64;
    for s in sections.iter() {
        let Ok(name) = sections.section_name(endian, s) else { continue };
        let debug =
            name == b".symtab" || name == b".strtab" || name.starts_with(b".debug_") || name.starts_with(b".zdebug_");
        if debug && s.sh_type(endian) != elf::SHT_NOBITS {
            total += s.sh_size(endian).into();
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_elf(path: &str) -> Option<Vec<u8>> {
        std::fs::read(path).ok()
    }

    #[test]
    fn merges_and_clamps() {
        assert_eq!(
            merge(vec![(0, 10), (5, 20), (300, 400), (1000, 5000)], 2000),
            vec![(0, 20), (300, 400), (1000, 2000)]
        );
        assert_eq!(merge(vec![(0, 10), (100, 120)], 50), vec![(0, 10)]);
        assert_eq!(merge(vec![(0, 10), (100, 120)], 1000), vec![(0, 120)]);
        assert_eq!(merge(vec![(60, 60)], 50), vec![]);
    }

    #[test]
    fn not_elf_is_none() {
        assert!(Sparse::of(b"#!/bin/sh\necho hi\n").is_none());
        assert!(elf_ranges(b"\x7fEL").is_none());
        assert_eq!(debug_bytes(b"plain"), 0);
    }

    #[test]
    fn a_truncated_header_keeps_the_head() {
        let mut data = b"\x7fELF\x02\x01\x01".to_vec();
        data.resize(40, 0);
        let s = Sparse::of(&data).unwrap();
        assert_eq!(s.materialize(), data);
    }

    /// The loader's view of a real library is the same from the sparse form as from the
    /// whole file, and the sparse form is much smaller.
    #[test]
    fn sparse_libc_parses_like_the_file() {
        let Some(path) = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
        else {
            return;
        };
        let data = host_elf(path).unwrap();
        let s = Sparse::of(&data).unwrap();
        assert!(s.kept_bytes() < data.len() as u64 / 2, "{} of {}", s.kept_bytes(), data.len());
        let m = s.materialize();
        let (a, b) = (crate::elf::inspect(&data).unwrap(), crate::elf::inspect(&m).unwrap());
        assert_eq!((a.needed, a.soname, a.interpreter, a.machine), (b.needed, b.soname, b.interpreter, b.machine));
        assert_eq!(super::super::versions::definitions(&data), super::super::versions::definitions(&m));
        assert!(!super::super::versions::definitions(&m).is_empty());
    }

    #[test]
    fn debug_bytes_of_a_test_binary() {
        // The test binary itself is built with symbols.
        let data = host_elf("/proc/self/exe").unwrap();
        assert!(debug_bytes(&data) > 0);
    }
}
