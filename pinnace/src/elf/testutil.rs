//! Test helpers: an in-memory [`RootFs`] and a generator of minimal ELF files.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;

use crate::elf::rootfs::{dirname, Node, RootFs};

/// A file tree in memory, the shape an image's file tree has for `doctor`.
/// Records every path it is asked about.
#[derive(Debug, Default)]
pub(crate) struct MemRoot {
    nodes: BTreeMap<String, (Node, Vec<u8>)>,
    asked: RefCell<Vec<String>>,
}

impl MemRoot {
    fn parents(&mut self, path: &str) {
        let parent = dirname(path);
        if parent != "/" && !self.nodes.contains_key(parent) {
            let parent = parent.to_string();
            self.parents(&parent);
            self.nodes.insert(parent, (Node::Dir, Vec::new()));
        }
    }

    /// Adds a directory (and its parents).
    pub fn dir(&mut self, path: &str) {
        self.parents(path);
        self.nodes.insert(path.to_string(), (Node::Dir, Vec::new()));
    }

    /// Adds a regular file (and its parents).
    pub fn file(&mut self, path: &str, data: &[u8]) {
        self.parents(path);
        self.nodes.insert(path.to_string(), (Node::File, data.to_vec()));
    }

    /// Adds a symbolic link (and its parents).
    pub fn link(&mut self, path: &str, target: &str) {
        self.parents(path);
        self.nodes.insert(path.to_string(), (Node::Symlink(target.to_string()), Vec::new()));
    }

    /// Every path passed to `lstat`, `read` or `read_dir` so far.
    pub fn asked(&self) -> Vec<String> {
        self.asked.borrow().clone()
    }
}

impl RootFs for MemRoot {
    fn lstat(&self, path: &str) -> io::Result<Option<Node>> {
        self.asked.borrow_mut().push(path.to_string());
        Ok(self.nodes.get(path).map(|(n, _)| n.clone()))
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.asked.borrow_mut().push(path.to_string());
        match self.nodes.get(path) {
            Some((Node::File, data)) => Ok(data.clone()),
            _ => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
        self.asked.borrow_mut().push(path.to_string());
        Ok(self
            .nodes
            .keys()
            .filter(|k| *k != "/" && dirname(k) == path)
            .map(|k| k.rsplit('/').next().unwrap_or(k).to_string())
            .collect())
    }
}

/// What a generated ELF file declares.
#[derive(Debug, Clone, Default)]
pub(crate) struct ElfSpec<'a> {
    /// `e_machine`; 0 means x86-64.
    pub machine: u16,
    pub interp: Option<&'a str>,
    pub needed: &'a [&'a str],
    pub soname: Option<&'a str>,
    pub rpath: Option<&'a str>,
    pub runpath: Option<&'a str>,
}

/// A minimal little-endian ELF64 file: header, `PT_LOAD` over the whole file (virtual
/// address = file offset), optional `PT_INTERP`, and `PT_DYNAMIC` with the spec's strings.
/// No sections, like a binary after `sstrip`.
pub(crate) fn build_elf(spec: &ElfSpec<'_>) -> Vec<u8> {
    const PT_LOAD: u32 = 1;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    let phnum: u16 = if spec.interp.is_some() { 3 } else { 2 };
    let mut strtab = vec![0u8];
    let mut add = |s: &str| {
        let at = strtab.len() as u64;
        strtab.extend_from_slice(s.as_bytes());
        strtab.push(0);
        at
    };
    let mut dynamic: Vec<(u64, u64)> = spec.needed.iter().map(|n| (1, add(n))).collect();
    if let Some(s) = spec.soname {
        dynamic.push((14, add(s)));
    }
    if let Some(s) = spec.rpath {
        dynamic.push((15, add(s)));
    }
    if let Some(s) = spec.runpath {
        dynamic.push((29, add(s)));
    }
    let interp_at = 64 + 56 * u64::from(phnum);
    let interp = spec.interp.map(|i| format!("{i}\0")).unwrap_or_default();
    let strtab_at = interp_at + interp.len() as u64;
    let dynamic_at = (strtab_at + strtab.len() as u64).next_multiple_of(8);
    dynamic.push((5, strtab_at));
    dynamic.push((10, strtab.len() as u64));
    dynamic.push((0, 0));
    let total = dynamic_at + 16 * dynamic.len() as u64;

    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    out.extend_from_slice(&3u16.to_le_bytes()); // ET_DYN
    let machine = if spec.machine == 0 { 62 } else { spec.machine };
    out.extend_from_slice(&machine.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // entry
    out.extend_from_slice(&64u64.to_le_bytes()); // phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, phnum, 64, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut phdr = |ty: u32, off: u64, size: u64| {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&4u32.to_le_bytes());
        for v in [off, off, off, size, size, 8] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    };
    phdr(PT_LOAD, 0, total);
    if spec.interp.is_some() {
        phdr(PT_INTERP, interp_at, interp.len() as u64);
    }
    phdr(PT_DYNAMIC, dynamic_at, 16 * dynamic.len() as u64);
    out.extend_from_slice(interp.as_bytes());
    out.extend_from_slice(&strtab);
    out.resize(dynamic_at as usize, 0);
    for (tag, val) in dynamic {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&val.to_le_bytes());
    }
    out
}

/// Builds a cache the way ldconfig lays it out; `old` adds the old table in front.
pub(crate) fn build_ld_cache(entries: &[(i32, &str, &str, u64)], old: bool, big: bool) -> Vec<u8> {
    let w32 = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
    // Strings go after the new entries; offsets count from the new header.
    let strings_at = 48 + entries.len() * 24;
    let mut strings = Vec::new();
    let mut offsets = Vec::new();
    for (_, name, path, _) in entries {
        let k = strings_at + strings.len();
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        let v = strings_at + strings.len();
        strings.extend_from_slice(path.as_bytes());
        strings.push(0);
        offsets.push((k as u32, v as u32));
    }
    let mut new = b"glibc-ld.so.cache1.1".to_vec();
    new.extend_from_slice(&w32(entries.len() as u32));
    new.extend_from_slice(&w32(strings.len() as u32));
    new.extend_from_slice(&[if big { 3 } else { 2 }, 0, 0, 0]);
    new.extend_from_slice(&[0; 16]);
    for ((flags, _, _, hwcap), (k, v)) in entries.iter().zip(&offsets) {
        new.extend_from_slice(&w32(*flags as u32));
        new.extend_from_slice(&w32(*k));
        new.extend_from_slice(&w32(*v));
        new.extend_from_slice(&w32(0));
        new.extend_from_slice(&if big { hwcap.to_be_bytes() } else { hwcap.to_le_bytes() });
    }
    new.extend_from_slice(&strings);
    if !old {
        return new;
    }
    // Old table with no entries of its own, then padding to 8, then the new table.
    let mut out = b"ld.so-1.7.0".to_vec();
    out.push(0);
    out.extend_from_slice(&w32(0));
    while out.len() % 8 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&new);
    out
}

/// A cache in the old `ld.so-1.7.0` layout only (little-endian): string offsets count
/// from the end of the entries.
pub(crate) fn build_old_ld_cache(entries: &[(i32, &str, &str)]) -> Vec<u8> {
    let mut strings = Vec::new();
    let mut out = b"ld.so-1.7.0\0".to_vec();
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (flags, name, path) in entries {
        let k = strings.len() as u32;
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        let v = strings.len() as u32;
        strings.extend_from_slice(path.as_bytes());
        strings.push(0);
        for x in [*flags as u32, k, v] {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.extend_from_slice(&strings);
    out
}
