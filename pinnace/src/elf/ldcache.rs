//! glibc's `/etc/ld.so.cache`, the index `ldconfig` writes and ld.so consults before the
//! default directories.
//!
//! Two layouts exist (glibc `sysdeps/generic/dl-cache.h`):
//!
//! - old, `ld.so-1.7.0`: magic (11 bytes, padded to 12), `nlibs: u32`, then `nlibs`
//!   entries `{flags: i32, key: u32, value: u32}` whose string offsets count from the
//!   end of the entries;
//! - new, `glibc-ld.so.cache1.1`: a 48-byte header (`nlibs` at 20, `len_strings` at 24,
//!   an endianness byte at 28), then entries `{flags, key, value, osversion: u32,
//!   hwcap: u64}` whose string offsets count from the start of the new header.
//!
//! Until glibc 2.32 ldconfig wrote both: the old table, then the new one aligned to 8
//! bytes. ld.so prefers the new table when present, and so do we.

use serde::Serialize;

use crate::elf::error::ElfError;
use crate::elf::parse::{self, ElfClass};

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const NEW_HEADER: usize = 48;
const NEW_ENTRY: usize = 24;
const OLD_HEADER: usize = 16;
const OLD_ENTRY: usize = 12;

/// A parsed `ld.so.cache`: its entries in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LdCache {
    /// Entries in file order (ldconfig sorts them; the first match wins).
    pub entries: Vec<LdCacheEntry>,
}

/// One library known to the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LdCacheEntry {
    /// `FLAG_ELF_LIBC6` (3) or'ed with the ABI byte, e.g. `0x0303` for x86-64.
    pub flags: i32,
    /// The soname, e.g. `libz.so.1`.
    pub soname: String,
    /// The absolute path ldconfig found it at (inside the root the cache belongs to).
    pub path: String,
    /// Non-zero for entries of a `glibc-hwcaps` or legacy hwcap subdirectory.
    pub hwcap: u64,
}

fn bad(detail: impl Into<String>) -> ElfError {
    ElfError::BadLdCache { path: "/etc/ld.so.cache".to_string(), detail: detail.into() }
}

/// Little- or big-endian integer reads with bounds checks.
#[derive(Clone, Copy)]
struct Reader<'a> {
    data: &'a [u8],
    big: bool,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N], ElfError> {
        at.checked_add(N)
            .and_then(|end| self.data.get(at..end))
            .map(|s| s.try_into().expect("slice of length N"))
            .ok_or_else(|| bad(format!("ends before byte {}", at.saturating_add(N))))
    }

    fn u32(&self, at: usize) -> Result<u32, ElfError> {
        let b = self.bytes::<4>(at)?;
        Ok(if self.big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }

    fn u64(&self, at: usize) -> Result<u64, ElfError> {
        let b = self.bytes::<8>(at)?;
        Ok(if self.big { u64::from_be_bytes(b) } else { u64::from_le_bytes(b) })
    }

    /// The NUL-terminated string at `base + offset`.
    fn string(&self, base: usize, offset: u32) -> Result<String, ElfError> {
        let start = base
            .checked_add(offset as usize)
            .filter(|&s| s < self.data.len())
            .ok_or_else(|| bad(format!("string offset {offset} is past the end")))?;
        let rest = &self.data[start..];
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad(format!("string at offset {offset} is not terminated")))?;
        Ok(String::from_utf8_lossy(&rest[..len]).into_owned())
    }
}

impl LdCache {
    /// Parses a cache in the old, the new, or the combined layout.
    pub fn parse(data: &[u8]) -> Result<LdCache, ElfError> {
        if data.starts_with(NEW_MAGIC) {
            return parse_new(data, 0);
        }
        if !data.starts_with(OLD_MAGIC) {
            return Err(bad("unknown magic (neither glibc-ld.so.cache1.1 nor ld.so-1.7.0)"));
        }
        // The old format has no byte-order mark: take the reading that fits the file.
        let le = Reader { data, big: false };
        let mut reader = le;
        let mut nlibs = le.u32(12)? as usize;
        if nlibs.saturating_mul(OLD_ENTRY).saturating_add(OLD_HEADER) > data.len() {
            reader = Reader { data, big: true };
            nlibs = reader.u32(12)? as usize;
        }
        let end = nlibs
            .checked_mul(OLD_ENTRY)
            .and_then(|n| n.checked_add(OLD_HEADER))
            .filter(|&e| e <= data.len())
            .ok_or_else(|| bad(format!("{nlibs} old-format entries do not fit in the file")))?;
        // A new table may follow, aligned to 8 (or 4 on 32-bit writers).
        for align in [8, 4] {
            let start = end.next_multiple_of(align);
            if data.get(start..).is_some_and(|rest| rest.starts_with(NEW_MAGIC)) {
                return parse_new(data, start);
            }
        }
        let mut entries = Vec::with_capacity(nlibs);
        for i in 0..nlibs {
            let at = OLD_HEADER + i * OLD_ENTRY;
            entries.push(LdCacheEntry {
                flags: reader.u32(at)? as i32,
                soname: reader.string(end, reader.u32(at + 4)?)?,
                path: reader.string(end, reader.u32(at + 8)?)?,
                hwcap: 0,
            });
        }
        Ok(LdCache { entries })
    }

    /// The path ld.so would take from the cache for `soname`, for a binary of this class,
    /// machine and `e_flags`: the first entry with that name whose flags
    /// `_dl_cache_check_flags` accepts, skipping hwcap entries (those are for particular
    /// CPUs, and an image must run on any CPU of its architecture).
    pub fn lookup(&self, soname: &str, class: ElfClass, machine: u16, e_flags: u32) -> Option<&str> {
        let want = parse::ld_cache_flags(class, machine, e_flags);
        self.entries
            .iter()
            .filter(|e| e.soname == soname && e.hwcap == 0)
            .find(|e| match want {
                // Generic rule (sysdeps/generic/dl-cache.h): 1 (plain ELF) or 3 (libc6).
                None | Some(3) => e.flags == 1 || e.flags == 3,
                Some(f) => e.flags == f,
            })
            .map(|e| e.path.as_str())
    }
}

/// Parses the new-format table whose header starts at `base`.
fn parse_new(data: &[u8], base: usize) -> Result<LdCache, ElfError> {
    let flags = *data.get(base + 28).ok_or_else(|| bad("header is truncated"))?;
    let big = match flags & 3 {
        2 => false,
        3 => true,
        1 => return Err(bad("the cache marks itself invalid (endianness flag 1)")),
        // Written by an ldconfig without the flag: take the reading that fits.
        _ => {
            let n = Reader { data, big: false }.u32(base + 20)? as usize;
            n.saturating_mul(NEW_ENTRY).saturating_add(base + NEW_HEADER) > data.len()
        }
    };
    let reader = Reader { data, big };
    let nlibs = reader.u32(base + 20)? as usize;
    let entries_end = nlibs
        .checked_mul(NEW_ENTRY)
        .and_then(|n| n.checked_add(base + NEW_HEADER))
        .filter(|&e| e <= data.len())
        .ok_or_else(|| bad(format!("{nlibs} entries do not fit in the file")))?;
    debug_assert!(entries_end <= data.len());
    let mut entries = Vec::with_capacity(nlibs);
    for i in 0..nlibs {
        let at = base + NEW_HEADER + i * NEW_ENTRY;
        entries.push(LdCacheEntry {
            flags: reader.u32(at)? as i32,
            soname: reader.string(base, reader.u32(at + 4)?)?,
            path: reader.string(base, reader.u32(at + 8)?)?,
            hwcap: reader.u64(at + 16)?,
        });
    }
    Ok(LdCache { entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::testutil::build_ld_cache as build;
    use object::elf::{EM_386, EM_X86_64};
    use proptest::prelude::*;

    #[test]
    fn reads_new_and_combined_layouts_in_both_byte_orders() {
        let entries = [
            (0x0303, "libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1", 0),
            (0x0003, "libz.so.1", "/lib/i386-linux-gnu/libz.so.1", 0),
        ];
        for (old, big) in [(false, false), (true, false), (false, true), (true, true)] {
            let cache = LdCache::parse(&build(&entries, old, big)).unwrap();
            assert_eq!(cache.entries.len(), 2, "old={old} big={big}");
            let x64 = cache.lookup("libz.so.1", ElfClass::Elf64, EM_X86_64, 0);
            assert_eq!(x64, Some("/lib/x86_64-linux-gnu/libz.so.1"));
            let x86 = cache.lookup("libz.so.1", ElfClass::Elf32, EM_386, 0);
            assert_eq!(x86, Some("/lib/i386-linux-gnu/libz.so.1"));
            assert_eq!(cache.lookup("libq.so.1", ElfClass::Elf64, EM_X86_64, 0), None);
        }
    }

    #[test]
    fn reads_the_old_layout_alone() {
        let data = crate::elf::testutil::build_old_ld_cache(&[
            (1, "libold.so.1", "/usr/lib/libold.so.1"),
            (3, "libz.so.1", "/lib/libz.so.1"),
        ]);
        let cache = LdCache::parse(&data).unwrap();
        assert_eq!(cache.entries.len(), 2);
        assert_eq!(cache.lookup("libold.so.1", ElfClass::Elf32, EM_386, 0), Some("/usr/lib/libold.so.1"));
        // x86-64 requires its own ABI byte, so plain libc6 entries are not for it.
        assert_eq!(cache.lookup("libz.so.1", ElfClass::Elf64, EM_X86_64, 0), None);
    }

    #[test]
    fn skips_hwcap_entries() {
        let entries = [
            (0x0303, "libm.so.6", "/lib/glibc-hwcaps/x86-64-v3/libm.so.6", 1 << 62),
            (0x0303, "libm.so.6", "/lib/libm.so.6", 0),
        ];
        let cache = LdCache::parse(&build(&entries, false, false)).unwrap();
        assert_eq!(cache.lookup("libm.so.6", ElfClass::Elf64, EM_X86_64, 0), Some("/lib/libm.so.6"));
    }

    #[test]
    fn reads_the_host_cache() {
        let Ok(data) = std::fs::read("/etc/ld.so.cache") else { return };
        let cache = LdCache::parse(&data).unwrap();
        let libc = cache.lookup("libc.so.6", ElfClass::Elf64, EM_X86_64, 0).unwrap();
        assert!(libc.ends_with("/libc.so.6"), "{libc}");
    }

    #[test]
    fn rejects_garbage_with_a_clear_error() {
        let err = LdCache::parse(b"hello").unwrap_err().to_string();
        assert!(err.contains("ld.so.cache") && err.contains("magic"), "{err}");
        let mut cut = build(&[(3, "a", "/a", 0)], false, false);
        cut.truncate(60);
        assert!(LdCache::parse(&cut).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..512), magic in 0u8..3) {
            let mut input = match magic {
                0 => NEW_MAGIC.to_vec(),
                1 => OLD_MAGIC.to_vec(),
                _ => Vec::new(),
            };
            input.extend_from_slice(&data);
            let _ = LdCache::parse(&input);
        }
    }
}
