//! Reading the parts of an ELF file that the dynamic loader and our heuristics look at.
//!
//! The dynamic section is read through the program headers (`PT_DYNAMIC`, `DT_STRTAB`
//! mapped through `PT_LOAD`), as ld.so does, so a binary whose section headers were
//! stripped still resolves. Section headers are only used for facts (section names,
//! `.dynsym` imports, `.symtab`). Bounds are checked before `object` parses anything so
//! that a short file is reported as truncated rather than as corrupt.

use object::elf;
use object::read::elf::{Dyn as _, FileHeader, ProgramHeader as _, Sym as _};
use object::Endianness;
use serde::Serialize;

use crate::elf::error::{ElfError, BYTES};

/// ELF class: the width of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ElfClass {
    /// `ELFCLASS32`.
    Elf32,
    /// `ELFCLASS64`.
    Elf64,
}

/// Byte order of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ByteOrder {
    /// `ELFDATA2LSB`.
    Little,
    /// `ELFDATA2MSB`.
    Big,
}

/// What the loader reads from one ELF file, plus raw material for the fact heuristics.
#[derive(Debug, Clone)]
pub(crate) struct Parsed<'a> {
    pub class: ElfClass,
    pub order: ByteOrder,
    pub machine: u16,
    pub e_flags: u32,
    pub e_type: u16,
    pub interp: Option<String>,
    pub has_dynamic: bool,
    pub needed: Vec<String>,
    pub soname: Option<String>,
    pub rpath: Option<String>,
    pub runpath: Option<String>,
    pub flags_1: u64,
    /// Names of all sections (empty when section headers are stripped).
    pub sections: Vec<String>,
    /// Undefined symbols of `.dynsym`, sorted and deduplicated.
    pub imports: Vec<String>,
    /// Names of the symbols of `.symtab` (empty when stripped).
    pub symtab: Vec<&'a [u8]>,
}

fn truncated(detail: impl Into<String>) -> ElfError {
    ElfError::Truncated { path: BYTES.to_string(), detail: detail.into() }
}

fn malformed(detail: impl Into<String>) -> ElfError {
    ElfError::Malformed { path: BYTES.to_string(), detail: detail.into() }
}

/// Parses `data` as an ELF file of either class and byte order.
pub(crate) fn parse(data: &[u8]) -> Result<Parsed<'_>, ElfError> {
    if data.len() < 4 || data[..4] != elf::ELFMAG {
        let start: Vec<String> = data.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let start = if start.is_empty() { "nothing: it is empty".into() } else { start.join(" ") };
        return Err(ElfError::NotElf { path: BYTES.to_string(), start });
    }
    if data.len() < 6 {
        return Err(truncated(format!("{} bytes, shorter than the ELF identification", data.len())));
    }
    match data[4] {
        elf::ELFCLASS32 => parse_as::<elf::FileHeader32<Endianness>>(data),
        elf::ELFCLASS64 => parse_as::<elf::FileHeader64<Endianness>>(data),
        c => Err(malformed(format!("unknown ELF class {c}"))),
    }
}

/// Checks that `[offset, offset + size)` lies inside `data`.
fn check_range(data: &[u8], offset: u64, size: u64, what: &str) -> Result<(), ElfError> {
    match offset.checked_add(size) {
        Some(end) if end <= data.len() as u64 => Ok(()),
        Some(end) => Err(truncated(format!("{what} ends at byte {end}, but the file has {} bytes", data.len()))),
        None => Err(malformed(format!("{what} offset {offset:#x} + size {size:#x} overflows"))),
    }
}

fn parse_as<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Parsed<'_>, ElfError> {
    let header_size = std::mem::size_of::<Elf>() as u64;
    check_range(data, 0, header_size, "the ELF header")?;
    let header = Elf::parse(data).map_err(|e| malformed(e.to_string()))?;
    let endian = header.endian().map_err(|e| malformed(e.to_string()))?;
    let order = if endian == Endianness::Little { ByteOrder::Little } else { ByteOrder::Big };
    let class = if header.is_type_64() { ElfClass::Elf64 } else { ElfClass::Elf32 };

    // Tables the header points to must be inside the file.
    let phoff: u64 = header.e_phoff(endian).into();
    let phnum = u64::from(header.e_phnum(endian));
    if phoff != 0 && phnum != 0 {
        let size = phnum * u64::from(header.e_phentsize(endian));
        check_range(data, phoff, size, "the program header table")?;
    }
    let shoff: u64 = header.e_shoff(endian).into();
    let shnum = u64::from(header.e_shnum(endian));
    if shoff != 0 {
        let size = shnum.max(1) * u64::from(header.e_shentsize(endian));
        check_range(data, shoff, size, "the section header table")?;
    }
    let phdrs = header.program_headers(endian, data).map_err(|e| malformed(e.to_string()))?;

    let mut parsed = Parsed {
        class,
        order,
        machine: header.e_machine(endian),
        e_flags: header.e_flags(endian),
        e_type: header.e_type(endian),
        interp: None,
        has_dynamic: false,
        needed: Vec::new(),
        soname: None,
        rpath: None,
        runpath: None,
        flags_1: 0,
        sections: Vec::new(),
        imports: Vec::new(),
        symtab: Vec::new(),
    };

    // Segments: the interpreter and the dynamic section, as the loader sees them.
    let mut loads = Vec::new();
    let mut dynamic = None;
    for ph in phdrs {
        let (offset, size) = (ph.p_offset(endian).into(), ph.p_filesz(endian).into());
        match ph.p_type(endian) {
            elf::PT_LOAD => loads.push((ph.p_vaddr(endian).into(), offset, size)),
            elf::PT_INTERP => {
                check_range(data, offset, size, "the PT_INTERP segment")?;
                let bytes = ph.interpreter(endian, data).map_err(|e| malformed(e.to_string()))?;
                let bytes = bytes.ok_or_else(|| malformed("PT_INTERP is unreadable"))?;
                parsed.interp = Some(String::from_utf8_lossy(bytes).into_owned());
            }
            elf::PT_DYNAMIC => {
                check_range(data, offset, size, "the PT_DYNAMIC segment")?;
                dynamic = ph.dynamic(endian, data).map_err(|e| malformed(e.to_string()))?;
            }
            _ => {}
        }
    }
    if let Some(entries) = dynamic {
        parsed.has_dynamic = true;
        read_dynamic::<Elf>(data, endian, entries, &loads, &mut parsed)?;
    }

    // Sections: only facts depend on them, so damage below the header is tolerated.
    if let Ok(sections) = header.sections(endian, data) {
        for section in sections.iter() {
            if let Ok(name) = sections.section_name(endian, section) {
                parsed.sections.push(String::from_utf8_lossy(name).into_owned());
            }
        }
        if let Ok(dynsym) = sections.symbols(endian, data, elf::SHT_DYNSYM) {
            for sym in dynsym.iter() {
                if sym.st_shndx(endian) != elf::SHN_UNDEF {
                    continue;
                }
                match dynsym.symbol_name(endian, sym) {
                    Ok(name) if !name.is_empty() => {
                        parsed.imports.push(String::from_utf8_lossy(name).into_owned());
                    }
                    _ => {}
                }
            }
            parsed.imports.sort();
            parsed.imports.dedup();
        }
        if let Ok(symtab) = sections.symbols(endian, data, elf::SHT_SYMTAB) {
            parsed.symtab = symtab.iter().filter_map(|s| symtab.symbol_name(endian, s).ok()).collect();
        }
    }
    Ok(parsed)
}

/// Reads `DT_NEEDED`, `DT_SONAME`, `DT_RPATH`, `DT_RUNPATH` and `DT_FLAGS_1`.
fn read_dynamic<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
    endian: Endianness,
    entries: &[Elf::Dyn],
    loads: &[(u64, u64, u64)],
    parsed: &mut Parsed<'_>,
) -> Result<(), ElfError> {
    let mut strtab_addr = None;
    let mut strsz = None;
    let mut strings = Vec::new();
    for entry in entries {
        let tag: u64 = entry.d_tag(endian).into();
        let val: u64 = entry.d_val(endian).into();
        match u32::try_from(tag) {
            Ok(elf::DT_NULL) => break,
            Ok(elf::DT_STRTAB) => strtab_addr = Some(val),
            Ok(elf::DT_STRSZ) => strsz = Some(val),
            Ok(elf::DT_FLAGS_1) => parsed.flags_1 = val,
            Ok(t @ (elf::DT_NEEDED | elf::DT_SONAME | elf::DT_RPATH | elf::DT_RUNPATH)) => strings.push((t, val)),
            _ => {}
        }
    }
    if strings.is_empty() {
        return Ok(());
    }
    let addr = strtab_addr.ok_or_else(|| malformed("dynamic section has strings but no DT_STRTAB"))?;
    // The string table is addressed by virtual address; the loadable segment that
    // contains it says where that is in the file.
    let offset = loads
        .iter()
        .find(|&&(vaddr, _, size)| addr >= vaddr && addr - vaddr < size)
        .map(|&(vaddr, off, _)| off + (addr - vaddr))
        .ok_or_else(|| malformed(format!("DT_STRTAB {addr:#x} is outside every PT_LOAD segment")))?;
    let size = strsz.unwrap_or(data.len() as u64 - offset.min(data.len() as u64));
    check_range(data, offset, size, "the dynamic string table")?;
    let table = &data[offset as usize..(offset + size) as usize];
    for (tag, index) in strings {
        let s = table
            .get(index as usize..)
            .and_then(|rest| rest.iter().position(|&b| b == 0).map(|end| &rest[..end]))
            .ok_or_else(|| malformed(format!("dynamic string index {index} is out of range")))?;
        let s = String::from_utf8_lossy(s).into_owned();
        match tag {
            elf::DT_NEEDED => parsed.needed.push(s),
            elf::DT_SONAME => parsed.soname = Some(s),
            elf::DT_RPATH => parsed.rpath = Some(s),
            _ => parsed.runpath = Some(s),
        }
    }
    Ok(())
}

/// The `_dl_cache_check_flags` value ld.so accepts for this class/machine/ABI, or `None`
/// when we do not know the machine (then the generic rule, flags 1 or 3, applies).
pub(crate) fn ld_cache_flags(class: ElfClass, machine: u16, e_flags: u32) -> Option<i32> {
    // glibc sysdeps/generic/ldconfig.h: FLAG_ELF_LIBC6 | a per-ABI "required" byte.
    const LIBC6: i32 = 0x0003;
    let is64 = class == ElfClass::Elf64;
    let required = match machine {
        elf::EM_X86_64 if is64 => 0x0300,
        elf::EM_X86_64 => 0x0800,
        elf::EM_AARCH64 if is64 => 0x0a00,
        elf::EM_ARM if e_flags & elf::EF_ARM_ABI_FLOAT_HARD != 0 => 0x0900,
        elf::EM_ARM => 0x0b00,
        elf::EM_S390 if is64 => 0x0400,
        elf::EM_PPC64 => 0x0500,
        elf::EM_SPARCV9 => 0x0100,
        elf::EM_IA_64 => 0x0200,
        elf::EM_RISCV if e_flags & elf::EF_RISCV_FLOAT_ABI == elf::EF_RISCV_FLOAT_ABI_DOUBLE => 0x1000,
        elf::EM_RISCV if e_flags & elf::EF_RISCV_FLOAT_ABI == elf::EF_RISCV_FLOAT_ABI_SOFT => 0x0f00,
        elf::EM_LOONGARCH if e_flags & 0x7 == 0x3 => 0x1200,
        elf::EM_LOONGARCH if e_flags & 0x7 == 0x1 => 0x1100,
        elf::EM_386 | elf::EM_PPC | elf::EM_S390 | elf::EM_SPARC => 0,
        _ => return None,
    };
    Some(required | LIBC6)
}

/// A short human name for an ELF machine number.
pub fn machine_name(machine: u16) -> String {
    let name = match machine {
        elf::EM_386 => "x86",
        elf::EM_X86_64 => "x86-64",
        elf::EM_AARCH64 => "aarch64",
        elf::EM_ARM => "arm",
        elf::EM_RISCV => "riscv",
        elf::EM_PPC => "powerpc",
        elf::EM_PPC64 => "powerpc64",
        elf::EM_S390 => "s390",
        elf::EM_MIPS => "mips",
        elf::EM_LOONGARCH => "loongarch",
        elf::EM_SPARC => "sparc",
        elf::EM_SPARCV9 => "sparc64",
        elf::EM_IA_64 => "ia64",
        other => return format!("machine {other}"),
    };
    name.to_string()
}

/// `x86-64 (ELF64, little-endian)`: machine, class and byte order, for messages.
pub(crate) fn arch_label(machine: u16, class: ElfClass, order: ByteOrder) -> String {
    let class = match class {
        ElfClass::Elf32 => "ELF32",
        ElfClass::Elf64 => "ELF64",
    };
    let order = match order {
        ByteOrder::Little => "little-endian",
        ByteOrder::Big => "big-endian",
    };
    format!("{} ({class}, {order})", machine_name(machine))
}
