//! [`inspect`]: facts about one ELF file, computed from its bytes alone.
//!
//! `doctor` feeds bytes read from inside an image, `build` bytes from the host; neither
//! needs a file system here. The facts are heuristics where the file format has no
//! definite answer (language, TLS, time zones); each heuristic is documented on its field
//! and the `Option<String>` facts carry the evidence found, for messages.

use object::elf;
use serde::Serialize;

use crate::elf::dlopen;
use crate::elf::error::ElfError;
use crate::elf::parse::{self, ByteOrder, ElfClass, Parsed};

/// Facts about one ELF file. Produced by [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfInfo {
    /// 32- or 64-bit.
    pub class: ElfClass,
    /// Byte order.
    pub byte_order: ByteOrder,
    /// `e_machine` (62 is x86-64, 183 aarch64); see [`machine_name`](crate::elf::machine_name).
    pub machine: u16,
    /// `e_flags` (ABI details such as ARM hard-float or the RISC-V float ABI).
    pub e_flags: u32,
    /// `e_type`: 2 is an executable, 3 a shared object or PIE.
    pub e_type: u16,
    /// How the file is linked.
    pub linkage: Linkage,
    /// `PT_INTERP`: the dynamic loader the kernel starts, e.g. `/lib64/ld-linux-x86-64.so.2`.
    pub interpreter: Option<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    /// `DT_RPATH`, split on `:`, unexpanded. ld.so ignores it when `runpath` is present.
    pub rpath: Vec<String>,
    /// `DT_RUNPATH`, split on `:`, unexpanded.
    pub runpath: Vec<String>,
    /// `DF_1_NODEFLIB`: ld.so must not search the default directories for this object's deps.
    pub nodeflib: bool,
    /// Which C library the file is built against.
    pub libc: Libc,
    /// A Go program: a `.note.go.buildid`, `.go.buildinfo` or `.gopclntab` section, or the
    /// Go build-info magic `\xff Go buildinf:` in the bytes (section headers may be stripped).
    pub go: bool,
    /// A Rust program: a `.rustc` section, Rust symbols (`rust_begin_unwind`, legacy
    /// `_ZN…17h<hash>E` mangling) or the `/rustc/` source paths panics embed.
    pub rust: bool,
    /// Has a `.symtab` section (not stripped).
    pub has_symtab: bool,
    /// Has `.debug_*` sections.
    pub has_debug_info: bool,
    /// Looks like it speaks TLS, with the evidence: links libssl, libgnutls, libnss3 (or
    /// another TLS library); or is Go with `crypto/tls`, or Rust with `rustls`/`openssl`.
    /// Only this file's own `DT_NEEDED` count here; a closure merges its libraries'.
    pub tls: Option<String>,
    /// Reads time zone data, with the evidence: for Go, `time/tzdata` or a call of
    /// `time.LoadLocation`; otherwise the strings `/usr/share/zoneinfo` or `zoneinfo`, or
    /// imports of `localtime`, `localtime_r`, `mktime`, `tzset`.
    pub zoneinfo: Option<String>,
    /// A Go program that embeds the time zone database (`time/tzdata`), so it needs no
    /// `/usr/share/zoneinfo`.
    pub go_embedded_tzdata: bool,
    /// Packed with UPX: `UPX!` in the first 4 KiB or a `UPX0`/`UPX1` section.
    pub upx: bool,
    /// NSS functions it uses (imports, or for a static binary its `.symtab`); for a
    /// stripped static binary, `libnss_*` when the string `libnss_` is present.
    pub nss: Vec<String>,
    /// Why glibc will `dlopen` `libgcc_s.so.1` for it: imports `pthread_cancel`,
    /// `pthread_exit` or `backtrace`, or any `_Unwind_*`.
    pub unwinder: Option<String>,
    /// Imports (or, static, contains) `iconv_open`, so glibc may load gconv modules.
    pub iconv: bool,
}

/// How an ELF file is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Linkage {
    /// No `PT_INTERP`, no dynamic section: needs nothing at run time.
    Static,
    /// A static position-independent executable: a dynamic section but no interpreter
    /// and no `DT_NEEDED`; needs nothing at run time.
    StaticPie,
    /// Has a `PT_INTERP`: the kernel starts the loader, which loads `DT_NEEDED`.
    Dynamic,
    /// No interpreter but a dynamic section: a shared library (or the loader itself).
    SharedLibrary,
}

/// The C library an ELF file is built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Libc {
    /// GNU libc: interpreter `ld-linux*`/`ld64.so*`, `libc.so.6`, or (static) the
    /// `GLIBC_TUNABLES` string.
    Glibc,
    /// musl: interpreter `ld-musl-*` or `libc.musl-*`.
    Musl,
    /// No C library at all (a static Go program).
    None,
    /// Could not tell (a static musl binary, an exotic libc, a plain library).
    Unknown,
}

impl ElfInfo {
    /// Needs nothing from the image at run time (no interpreter, no libraries).
    pub fn is_static(&self) -> bool {
        matches!(self.linkage, Linkage::Static | Linkage::StaticPie)
    }

    /// Has no symbol table (and no debug information).
    pub fn is_stripped(&self) -> bool {
        !self.has_symtab && !self.has_debug_info
    }

    /// `x86-64 (ELF64, little-endian)`, for messages.
    pub fn arch_label(&self) -> String {
        parse::arch_label(self.machine, self.class, self.byte_order)
    }
}

/// Reads the facts of one ELF file from its bytes.
///
/// Pure: no file system access. Errors carry the path `<bytes>`; relabel them with
/// [`ElfError::at`].
pub fn inspect(bytes: &[u8]) -> Result<ElfInfo, ElfError> {
    let parsed = parse::parse(bytes)?;
    Ok(facts(bytes, &parsed))
}

/// NSS functions that resolve host names, which need `libnss_dns` besides `libnss_files`.
pub(crate) const NSS_HOST_FUNCTIONS: &[&str] = &[
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname2",
    "gethostbyname_r",
    "gethostbyname2_r",
    "gethostbyaddr",
    "gethostbyaddr_r",
    "getnameinfo",
    "gethostent",
    "gethostent_r",
];

/// Other functions answered by NSS modules (passwd, group, shadow, services, protocols…).
pub(crate) const NSS_OTHER_FUNCTIONS: &[&str] = &[
    "getpwnam",
    "getpwnam_r",
    "getpwuid",
    "getpwuid_r",
    "getpwent",
    "getpwent_r",
    "getgrnam",
    "getgrnam_r",
    "getgrgid",
    "getgrgid_r",
    "getgrent",
    "getgrent_r",
    "getgrouplist",
    "initgroups",
    "getspnam",
    "getspnam_r",
    "getservbyname",
    "getservbyname_r",
    "getservbyport",
    "getservbyport_r",
    "getservent",
    "getprotobyname",
    "getprotobyname_r",
    "getprotobynumber",
    "getprotobynumber_r",
    "getprotoent",
    "getnetbyname",
    "getnetbyaddr",
    "getnetgrent",
    "innetgr",
    "getaliasbyname",
    "getrpcbyname",
    "getrpcbynumber",
    "ether_ntohost",
    "ether_hostton",
];

/// Libraries whose presence means the program speaks TLS.
pub(crate) fn is_tls_library(name: &str) -> bool {
    ["libssl.so", "libssl3.so", "libgnutls.so", "libnss3.so", "libwolfssl.so", "libmbedtls.so"]
        .iter()
        .any(|p| name.starts_with(p))
}

// Strings searched for in the whole file, by index into NEEDLES_REVERSED.
const RUSTC_PATH: usize = 0;
const RUST_UNWIND: usize = 1;
const RUSTLS: usize = 2;
const OPENSSL: usize = 3;
const CRYPTO_TLS: usize = 4;
const ZONEINFO_PATH: usize = 5;
const ZONEINFO: usize = 6;
const TZDATA: usize = 7;
const LIBNSS: usize = 8;
const GO_BUILDINFO: usize = 9;
const GLIBC_TUNABLES: usize = 10;
const GO_LOAD_LOCATION: usize = 11;
/// The needles, stored reversed: a program that contains this code (pinnace itself)
/// must not carry the very strings it looks for, or it would look like Go, TLS, ….
const NEEDLES_REVERSED: [&[u8]; 12] = [
    b"/ctsur/",
    b"dniwnu_nigeb_tsur",
    b"sltsur",
    b"lssnepo",
    b"slt/otpyrc",
    b"ofnienoz/erahs/rsu/",
    b"ofnienoz",
    b"atadzt/emit",
    b"_ssnbil",
    b":fnidliub oG \xff",
    b"SELBANUT_CBILG",
    b"noitacoLdaoL.emit",
];

fn needles() -> Vec<Vec<u8>> {
    NEEDLES_REVERSED.iter().map(|n| n.iter().rev().copied().collect()).collect()
}

/// Which of `needles` (at most 64) occur in `data`, as a bit set. One pass over `data`.
pub(crate) fn find_strings<N: AsRef<[u8]>>(data: &[u8], needles: &[N]) -> u64 {
    let mut first = [0u64; 256];
    for (i, n) in needles.iter().enumerate().take(64) {
        if let Some(&b) = n.as_ref().first() {
            first[b as usize] |= 1 << i;
        }
    }
    let all = first.iter().fold(0, |acc, m| acc | m);
    let mut found = 0u64;
    for (pos, &b) in data.iter().enumerate() {
        let mut candidates = first[b as usize] & !found;
        while candidates != 0 {
            let i = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            if data[pos..].starts_with(needles[i].as_ref()) {
                found |= 1 << i;
            }
        }
        if found == all {
            break;
        }
    }
    found
}

/// A legacy-mangled Rust symbol: `_ZN…17h` + 16 hex digits + `E`.
fn is_rust_legacy_symbol(name: &[u8]) -> bool {
    let n = name.len();
    name.starts_with(b"_ZN")
        && n >= 23
        && name[n - 1] == b'E'
        && &name[n - 20..n - 17] == b"17h"
        && name[n - 17..n - 1].iter().all(u8::is_ascii_hexdigit)
}

fn facts(bytes: &[u8], p: &Parsed<'_>) -> ElfInfo {
    let found = find_strings(bytes, &needles());
    let has = |i: usize| found & (1 << i) != 0;
    let section = |name: &str| p.sections.iter().any(|s| s == name);
    let imports = |name: &str| p.imports.binary_search_by(|s| s.as_str().cmp(name)).is_ok();

    let linkage = if p.interp.is_some() {
        Linkage::Dynamic
    } else if !p.has_dynamic {
        Linkage::Static
    } else if p.e_type == elf::ET_DYN
        && p.needed.is_empty()
        && (p.flags_1 & u64::from(elf::DF_1_PIE) != 0 || p.soname.is_none())
    {
        Linkage::StaticPie
    } else {
        Linkage::SharedLibrary
    };

    let statically = linkage == Linkage::Static || linkage == Linkage::StaticPie;
    let go = section(".note.go.buildid") || section(".go.buildinfo") || section(".gopclntab") || has(GO_BUILDINFO);
    let rust =
        section(".rustc") || has(RUSTC_PATH) || has(RUST_UNWIND) || p.symtab.iter().any(|s| is_rust_legacy_symbol(s));

    let interp_base = p.interp.as_deref().map(|i| i.rsplit('/').next().unwrap_or(i));
    let libc = match interp_base {
        Some(i) if i.starts_with("ld-musl-") => Libc::Musl,
        Some(i) if i.starts_with("ld-linux") || i.starts_with("ld64.so") || i.starts_with("ld.so") => Libc::Glibc,
        _ if p.needed.iter().any(|n| n.starts_with("libc.musl-")) => Libc::Musl,
        _ if p.needed.iter().any(|n| n == "libc.so.6") => Libc::Glibc,
        _ if statically && has(GLIBC_TUNABLES) => Libc::Glibc,
        _ if go && p.needed.is_empty() => Libc::None,
        _ => Libc::Unknown,
    };

    let tls = if let Some(lib) = p.needed.iter().find(|n| is_tls_library(n)) {
        Some(format!("links {lib}"))
    } else if go && has(CRYPTO_TLS) {
        Some("Go package crypto/tls".to_string())
    } else if rust && has(RUSTLS) {
        Some("Rust crate rustls".to_string())
    } else if rust && has(OPENSSL) {
        Some("Rust crate openssl".to_string())
    } else {
        None
    };

    let tz_import = ["localtime", "localtime_r", "mktime", "tzset"].into_iter().find(|f| imports(f));
    // Every Go binary carries "/usr/share/zoneinfo" (the time package's search path), but
    // it reads zone files only for time.LoadLocation or a TZ naming a zone; function names
    // survive stripping (pclntab), so the call is visible.
    let zoneinfo = if go {
        if has(TZDATA) {
            Some("Go package time/tzdata".to_string())
        } else if has(GO_LOAD_LOCATION) {
            Some("Go function time.LoadLocation".to_string())
        } else {
            None
        }
    } else if has(ZONEINFO_PATH) {
        Some("string \"/usr/share/zoneinfo\"".to_string())
    } else if has(ZONEINFO) {
        Some("string \"zoneinfo\"".to_string())
    } else if go && has(TZDATA) {
        Some("Go package time/tzdata".to_string())
    } else {
        tz_import.map(|f| format!("imports {f}"))
    };

    let upx = bytes[..bytes.len().min(4096)].windows(4).any(|w| w == b"UPX!") || section("UPX0") || section("UPX1");

    let defines = |name: &str| p.symtab.contains(&name.as_bytes());
    let mut nss: Vec<String> = NSS_HOST_FUNCTIONS
        .iter()
        .chain(NSS_OTHER_FUNCTIONS)
        .filter(|f| imports(f) || (statically && defines(f)))
        .map(|f| f.to_string())
        .collect();
    if statically && nss.is_empty() && !go && has(LIBNSS) {
        nss.push("libnss_*".to_string());
    }

    let unwinder = dlopen::unwinder_trigger(&p.imports).map(|f| format!("imports {f}"));

    ElfInfo {
        class: p.class,
        byte_order: p.order,
        machine: p.machine,
        e_flags: p.e_flags,
        e_type: p.e_type,
        linkage,
        interpreter: p.interp.clone(),
        soname: p.soname.clone(),
        needed: p.needed.clone(),
        rpath: split_path_list(p.rpath.as_deref()),
        runpath: split_path_list(p.runpath.as_deref()),
        nodeflib: p.flags_1 & u64::from(elf::DF_1_NODEFLIB) != 0,
        libc,
        go,
        rust,
        has_symtab: section(".symtab"),
        has_debug_info: p.sections.iter().any(|s| s.starts_with(".debug_") || s.starts_with(".zdebug_")),
        tls,
        zoneinfo,
        go_embedded_tzdata: go && has(TZDATA),
        upx,
        nss,
        unwinder,
        iconv: dlopen::imports_iconv(&p.imports) || (statically && defines("iconv_open")),
    }
}

/// `a:b::c` -> `["a", "b", "", "c"]`; `None` -> `[]`.
pub(crate) fn split_path_list(list: Option<&str>) -> Vec<String> {
    list.map(|l| l.split(':').map(str::to_string).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_strings_in_one_pass() {
        let found = find_strings(b"xx/rustc/abc zoneinfo", &[&b"/rustc/"[..], b"zoneinfo", b"nope"]);
        assert_eq!(found, 0b011);
        assert_eq!(find_strings(b"", &[b"a"]), 0);
        assert_eq!(find_strings(b"aaab", &[&b"aab"[..], b"b"]), 0b11);
    }

    #[test]
    fn needles_decode_to_what_they_stand_for() {
        let n = needles();
        assert_eq!(n[RUSTC_PATH], b"/rustc/");
        assert_eq!(n[RUST_UNWIND], b"rust_begin_unwind");
        assert_eq!(n[RUSTLS], b"rustls");
        assert_eq!(n[OPENSSL], b"openssl");
        assert_eq!(n[CRYPTO_TLS], b"crypto/tls");
        assert_eq!(n[ZONEINFO_PATH], b"/usr/share/zoneinfo");
        assert_eq!(n[ZONEINFO], b"zoneinfo");
        assert_eq!(n[TZDATA], b"time/tzdata");
        assert_eq!(n[LIBNSS], b"libnss_");
        // Spelled differently here, so this test binary does not look like Go.
        assert_eq!(n[GO_BUILDINFO][0], 0xff);
        assert!(n[GO_BUILDINFO][1..].eq_ignore_ascii_case(b" GO BUILDINF:"));
        assert_eq!(n[GLIBC_TUNABLES], b"GLIBC_TUNABLES");
        assert_eq!(n[GO_LOAD_LOCATION], b"time.LoadLocation");
    }

    #[test]
    fn recognises_legacy_rust_symbols() {
        assert!(is_rust_legacy_symbol(b"_ZN4core3fmt5write17h0123456789abcdefE"));
        assert!(!is_rust_legacy_symbol(b"_ZN4core3fmt5writeE"));
        assert!(!is_rust_legacy_symbol(b"_ZNSt6vectorIiSaIiEE9push_backERKi"));
    }

    #[test]
    fn classifies_tls_libraries() {
        assert!(is_tls_library("libssl.so.3"));
        assert!(is_tls_library("libgnutls.so.30"));
        assert!(!is_tls_library("libcrypto.so.3"));
    }
}
