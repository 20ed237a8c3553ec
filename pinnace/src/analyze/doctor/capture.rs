//! What doctor keeps of file contents while the layers stream past, and the reduction of
//! each captured file to what the checks read.
//!
//! The plan decides from the path alone (the capture hook runs before the content is
//! read): the entrypoint's candidate paths, ELF candidates (files in a `bin`, `sbin` or
//! `libexec` directory, files named like shared libraries), the small files the loader and
//! the user check read, and names that look like secrets. [`process`] then runs on the
//! streaming thread as soon as a file has passed and keeps only: an ELF file's
//! [`Sparse`] form plus, for executables, the facts computed from its whole bytes; a
//! script's first line; a configuration file whole; and whether a secret was seen.

use std::collections::HashSet;

use super::secrets;
use super::sparse::{self, Sparse};
use crate::elf::{inspect, ElfInfo};

/// The most of one file asked for by name captured (an entrypoint candidate, or a file
/// a targeted pass fetches).
pub const ELF_CAP: usize = 256 << 20;
/// The most of one ELF candidate captured by the general rules (files in `bin`
/// directories, libraries). Each capture is reduced as soon as the file has passed, so
/// this bounds the memory the main pass needs per streaming thread; it is above the
/// big libraries closures do load (ICU's 30 MB `libicudata`), and the rare bigger one
/// (`libLLVM`) is fetched by a targeted pass when a closure needs it.
pub const LIB_CAP: usize = 64 << 20;
/// The most of one configuration file captured.
pub const TEXT_CAP: usize = 4 << 20;
/// The most of a secret candidate captured.
pub const SECRET_CAP: usize = 64 << 10;
/// What is kept of a script or of any other non-ELF program.
pub const SCRIPT_HEAD: usize = 512;

/// Files read whole, by normalised path.
const TEXT_FILES: &[&str] = &["etc/passwd", "etc/group", "etc/ld.so.cache"];

/// Which files to capture, and how much of each.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Paths (normalised, no leading `/`) captured whole whatever their name.
    exact: HashSet<String>,
    /// Only `exact` (a targeted pass), not the general rules.
    only_exact: bool,
}

impl Plan {
    /// The plan of the main pass: general rules plus `programs`, the paths the image's
    /// command may start (absolute, from [`super::command::Launch::candidates`]).
    pub fn new(launch: &super::command::Launch) -> Plan {
        let exact = launch.candidates().iter().map(|p| p.trim_start_matches('/').to_string()).collect();
        Plan { exact, only_exact: false }
    }

    /// A targeted plan: exactly these paths (absolute or not), whole.
    pub fn exact<'a>(paths: impl IntoIterator<Item = &'a str>) -> Plan {
        Plan { exact: paths.into_iter().map(|p| p.trim_start_matches('/').to_string()).collect(), only_exact: true }
    }

    /// Whether `path` was asked for by name (an entrypoint candidate or a targeted path).
    pub fn is_exact(&self, path: &str) -> bool {
        self.exact.contains(path)
    }

    /// How many leading bytes of the regular file at `path` (normalised) to capture.
    pub fn want(&self, path: &str) -> usize {
        if self.exact.contains(path) {
            return ELF_CAP;
        }
        if self.only_exact {
            return 0;
        }
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        if TEXT_FILES.contains(&path) || (dir == "etc" && name.starts_with("ld-musl-") && name.ends_with(".path")) {
            TEXT_CAP
        } else if is_lib_name(name) || in_bin_dir(dir) {
            LIB_CAP
        } else if secrets::candidate(path) {
            SECRET_CAP
        } else {
            0
        }
    }
}

/// Named like a shared object or loader: `libz.so`, `libc.so.6`, `ld-linux-x86-64.so.2`.
pub fn is_lib_name(name: &str) -> bool {
    name.ends_with(".so") || name.contains(".so.")
}

/// A directory programs live in: `…/bin`, `…/sbin`, or anything under a `libexec`.
pub fn in_bin_dir(dir: &str) -> bool {
    let last = dir.rsplit('/').next().unwrap_or(dir);
    last == "bin" || last == "sbin" || dir.split('/').any(|c| c == "libexec")
}

/// What is kept of an ELF file.
#[derive(Debug, Clone)]
pub struct ElfFile {
    /// Headers and dynamic tables.
    pub sparse: Sparse,
    /// Facts from the whole bytes (executables only; libraries are read by the resolver).
    pub info: Option<ElfInfo>,
    /// Bytes of symbol tables and debug sections.
    pub debug_bytes: u64,
    /// UPX's marker in the first 4 KiB or a `UPX0`/`UPX1` section.
    pub upx: bool,
    /// A TLS program that carries its own root certificates (Rust `webpki-roots`, Go
    /// `x509roots/fallback`), so it needs no CA bundle in the image.
    pub embedded_roots: bool,
    /// The capture stopped at its cap ([`LIB_CAP`] or [`ELF_CAP`]): the sparse form may
    /// miss tables, so readers treat the file as not captured.
    pub truncated: bool,
}

/// What is kept of one captured file.
#[derive(Debug, Clone)]
pub enum Captured {
    /// An ELF file.
    Elf(Box<ElfFile>),
    /// Other bytes: a configuration file whole, or a program's first [`SCRIPT_HEAD`] bytes.
    Bytes {
        /// The bytes.
        data: Box<[u8]>,
        /// Whether they are the whole file.
        complete: bool,
    },
}

/// The result of [`process`].
#[derive(Debug, Clone, Default)]
pub struct Processed {
    /// What to keep (`None`: nothing of interest).
    pub captured: Option<Captured>,
    /// The kind of secret the content is, e.g. `SSH private key`.
    pub secret: Option<&'static str>,
}

/// Reduces one captured file. `want` is what the plan asked for (a capture shorter than
/// it is the whole file); `exact` says the path was asked for by name.
pub fn process(path: &str, bytes: Vec<u8>, want: usize, exact: bool) -> Processed {
    let complete = bytes.len() < want;
    let secret = if secrets::candidate(path) { secrets::classify(path, &bytes) } else { None };
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let captured = if bytes.starts_with(b"\x7fELF") {
        Sparse::of(&bytes).map(|sparse| {
            let program = exact || (in_bin_dir(dir) && !is_lib_name(name));
            let info = if program && complete { inspect(&bytes).ok() } else { None };
            let head = sparse.head();
            let upx = head.windows(4).any(|w| w == b"UPX!")
                || info.as_ref().is_some_and(|i| i.upx)
                || has_upx_section(&sparse);
            let embedded_roots = info.as_ref().is_some_and(|i| i.tls.is_some()) && has_embedded_roots(&bytes);
            Captured::Elf(Box::new(ElfFile {
                debug_bytes: sparse::debug_bytes(&bytes),
                sparse,
                info,
                upx,
                embedded_roots,
                truncated: !complete,
            }))
        })
    } else if want == TEXT_CAP {
        Some(Captured::Bytes { data: bytes.into_boxed_slice(), complete })
    } else if bytes.starts_with(b"#!") || exact {
        let n = bytes.len().min(SCRIPT_HEAD);
        Some(Captured::Bytes { data: bytes[..n].into(), complete: complete && n == bytes.len() })
    } else {
        None
    };
    Processed { captured, secret }
}

/// Section names `UPX0`/`UPX1` in the kept section-name table.
fn has_upx_section(s: &Sparse) -> bool {
    s.pieces.iter().skip(1).any(|(_, b)| b.windows(5).any(|w| w == b"UPX0\0" || w == b"UPX1\0"))
}

/// Root certificates compiled into the program.
fn has_embedded_roots(bytes: &[u8]) -> bool {
    const NEEDLES: [&[u8]; 3] = [b"webpki_roots", b"webpki-roots", b"x509roots/fallback"];
    NEEDLES.iter().any(|n| bytes.windows(n.len()).any(|w| w == *n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_rules() {
        let p = Plan { exact: ["app/server".to_string()].into(), only_exact: false };
        assert_eq!(p.want("app/server"), ELF_CAP);
        assert_eq!(p.want("usr/lib/x86_64-linux-gnu/libc.so.6"), LIB_CAP);
        assert_eq!(p.want("usr/bin/env"), LIB_CAP);
        assert_eq!(p.want("usr/libexec/git-core/git-http"), LIB_CAP);
        assert_eq!(p.want("etc/passwd"), TEXT_CAP);
        assert_eq!(p.want("etc/ld.so.cache"), TEXT_CAP);
        assert_eq!(p.want("etc/ld-musl-x86_64.path"), TEXT_CAP);
        assert_eq!(p.want("root/.ssh/id_rsa"), SECRET_CAP);
        assert_eq!(p.want("usr/share/doc/README"), 0);
        assert_eq!(p.want("usr/lib/jvm/lib/modules"), 0);
        let t = Plan::exact(["/opt/x"]);
        assert_eq!(t.want("opt/x"), ELF_CAP);
        assert_eq!(t.want("usr/bin/env"), 0);
    }

    #[test]
    fn names_and_dirs() {
        assert!(is_lib_name("libc.so.6") && is_lib_name("libz.so") && is_lib_name("ld-linux-x86-64.so.2"));
        assert!(!is_lib_name("server") && !is_lib_name("x.sock"));
        assert!(
            in_bin_dir("usr/bin") && in_bin_dir("sbin") && in_bin_dir("opt/jdk/bin") && in_bin_dir("usr/libexec/a")
        );
        assert!(!in_bin_dir("usr/lib") && !in_bin_dir("binaries"));
    }

    #[test]
    fn scripts_keep_their_head_and_data_is_dropped() {
        let script = b"#!/bin/sh\necho hi\n".to_vec();
        match process("usr/bin/hi", script.clone(), LIB_CAP, false).captured {
            Some(Captured::Bytes { data, complete }) => assert!(complete && *data == *script),
            other => panic!("{other:?}"),
        }
        assert!(process("usr/bin/data", b"plain".to_vec(), ELF_CAP, false).captured.is_none());
        assert!(process("app/data", b"plain".to_vec(), ELF_CAP, true).captured.is_some());
        match process("etc/passwd", b"root:x:0:0::/root:/bin/sh\n".to_vec(), TEXT_CAP, false).captured {
            Some(Captured::Bytes { complete, .. }) => assert!(complete),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_elf_program_keeps_facts_and_a_sparse_form() {
        let me = std::fs::read("/proc/self/exe").unwrap();
        let len = me.len();
        match process("usr/bin/me", me, ELF_CAP, false).captured {
            Some(Captured::Elf(e)) => {
                assert!(e.info.is_some() && !e.truncated && e.debug_bytes > 0 && !e.upx);
                assert_eq!(e.sparse.len as usize, len);
                assert!(e.sparse.kept_bytes() < len as u64);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_capture_cut_at_its_cap_is_marked() {
        let me = std::fs::read("/proc/self/exe").unwrap();
        let cap = 64 << 10;
        match process("usr/lib/libbig.so", me[..cap].to_vec(), cap, false).captured {
            Some(Captured::Elf(e)) => assert!(e.truncated && e.info.is_none()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secrets_are_classified_while_passing() {
        let key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n".to_vec();
        let p = process("root/.ssh/id_rsa", key, SECRET_CAP, false);
        assert!(p.secret.is_some() && p.captured.is_none());
    }
}
