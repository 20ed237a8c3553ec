//! ELF programs: for every ELF program on the chain (the entrypoint, a shell-form
//! script's command, script interpreters), the shared-library closure resolved inside the
//! image the way ld.so would resolve it there ([`crate::elf::resolve_closure`]: RUNPATH,
//! RPATH, `$ORIGIN`, the image's own `ld.so.cache`, the default directories), then what
//! would stop the loader: a missing interpreter or library, another architecture, the
//! other C library, a symbol version the image's library does not define.
//!
//! [`analyze_until_complete`] runs the analysis, fetches what it needed and the main
//! pass did not keep (see [`super::rootfs`]), and runs it again, until nothing is missing.
//!
//! Checks: `elf-interpreter-missing`, `elf-missing-library`, `elf-arch-mismatch`,
//! `elf-libc-mismatch`, `elf-glibc-version`, `elf-symbol-version`, `elf-corrupt`,
//! `elf-note`.

use std::collections::{BTreeSet, HashSet};

use object::elf as abi;

use super::capture::Captured;
use super::command::{discover, Chain, Launch};
use super::rootfs::TreeRoot;
use super::scan::Snapshot;
use super::{versions, DoctorError, DoctorOptions, Finding};
use crate::elf::{resolve_closure, Binary, Closure, ClosureOptions, ElfError, ElfInfo, Libc};
use crate::fs::FsTree;
use crate::transport::{Image, Source};

/// Targeted passes at most (each fetches everything the previous analysis missed).
const MAX_ROUNDS: usize = 6;

/// The analysis of one ELF program.
#[derive(Debug)]
pub struct ElfProgram {
    /// Index into [`Chain::programs`].
    pub program: usize,
    /// Facts from the program's whole bytes (captured while streaming).
    pub info: Option<ElfInfo>,
    /// It carries its own root certificates.
    pub embedded_roots: bool,
    /// The closure, or why it could not be resolved.
    pub closure: Result<Closure, ElfError>,
    /// Symbol-version findings over the closure.
    pub versions: Vec<Finding>,
}

/// The chain of programs and the analysis of its ELF programs.
#[derive(Debug, Default)]
pub struct Analysis {
    /// The programs the image starts.
    pub chain: Chain,
    /// One entry per distinct ELF program of the chain.
    pub elf: Vec<ElfProgram>,
}

impl Analysis {
    /// Real paths of every object loaded for any program (libraries and interpreters).
    pub fn loaded_objects(&self) -> BTreeSet<String> {
        self.elf
            .iter()
            .filter_map(|e| e.closure.as_ref().ok())
            .flat_map(|c| c.objects.iter().map(|o| o.real_path.clone()))
            .collect()
    }
}

/// Discovers the chain and analyses its ELF programs, fetching missing content with
/// targeted passes until the analysis read everything it needed.
pub fn analyze_until_complete(
    src: &dyn Source,
    image: &Image,
    snap: &mut Snapshot,
    launch: &Launch,
    opts: &DoctorOptions,
) -> Result<Analysis, DoctorError> {
    let mut asked = BTreeSet::new();
    for _ in 0..MAX_ROUNDS {
        let (analysis, missing) = {
            let root = TreeRoot::new(snap);
            let a = analyze(snap, launch, &root);
            (a, root.missing())
        };
        let new: BTreeSet<String> = missing.difference(&asked).cloned().collect();
        if new.is_empty() {
            return Ok(analysis);
        }
        snap.fetch(src, image, &new, opts)?;
        asked.extend(new);
    }
    let root = TreeRoot::new(snap);
    Ok(analyze(snap, launch, &root))
}

/// One round: the chain, and the closure of each distinct ELF program on it.
pub fn analyze(snap: &Snapshot, launch: &Launch, root: &TreeRoot) -> Analysis {
    let chain = discover(snap, launch, root);
    let mut seen = HashSet::new();
    let mut elf = Vec::new();
    for (i, p) in chain.programs.iter().enumerate() {
        let Some(Captured::Elf(e)) = snap.captured(p.id) else { continue };
        if !seen.insert(p.real.clone()) || e.truncated {
            continue;
        }
        let opts = ClosureOptions { allow_missing: true, ..ClosureOptions::default() };
        let closure = Binary::from_root(root, &p.path).and_then(|b| resolve_closure(root, &b, &opts));
        let versions = match &closure {
            Ok(c) => versions::check_closure(&p.path, &p.real, c, &|path| root.bytes(path).ok().flatten()),
            Err(_) => Vec::new(),
        };
        elf.push(ElfProgram { program: i, info: e.info.clone(), embedded_roots: e.embedded_roots, closure, versions });
    }
    Analysis { chain, elf }
}

/// The ELF machine an image platform's architecture runs (GOARCH spelling).
pub fn machine_of(arch: &str) -> Option<u16> {
    Some(match arch {
        "amd64" => abi::EM_X86_64,
        "arm64" => abi::EM_AARCH64,
        "386" => abi::EM_386,
        "arm" => abi::EM_ARM,
        "ppc64le" | "ppc64" => abi::EM_PPC64,
        "s390x" => abi::EM_S390,
        "riscv64" => abi::EM_RISCV,
        "mips64le" | "mips64" | "mipsle" | "mips" => abi::EM_MIPS,
        "loong64" => abi::EM_LOONGARCH,
        _ => return None,
    })
}

/// Where the image's C libraries are: glibc's `libc.so.6` and musl's loader, if any.
pub fn image_libcs(tree: &FsTree) -> (Option<String>, Option<String>) {
    let (mut glibc, mut musl) = (None, None);
    for top in ["/lib", "/usr/lib", "/lib64", "/usr/lib64"] {
        let Ok(dir) = tree.resolve(top, true) else { continue };
        let subdirs = tree.sorted_children(dir).into_iter().filter(|&c| tree.is_present(c));
        for d in std::iter::once(dir).chain(subdirs) {
            for c in tree.sorted_children(d).into_iter().filter(|&c| tree.is_present(c)) {
                let name = tree.name(c);
                if name == "libc.so.6" && glibc.is_none() {
                    glibc = Some(tree.path(c));
                } else if (name.starts_with("ld-musl-") || name.starts_with("libc.musl-")) && musl.is_none() {
                    musl = Some(tree.path(c));
                }
            }
        }
    }
    (glibc, musl)
}

/// Findings for every analysed ELF program.
pub fn check(snap: &Snapshot, image: &Image, analysis: &Analysis, out: &mut Vec<Finding>) {
    let platform = image.platform();
    let expected = machine_of(&platform.architecture);
    let libcs = image_libcs(&snap.tree);
    for e in &analysis.elf {
        let p = &analysis.chain.programs[e.program];
        let facts = e.info.as_ref().or(e.closure.as_ref().ok().map(|c| &c.facts));
        if let (Some(f), Some(want)) = (facts, expected) {
            if f.machine != want {
                out.push(
                    Finding::new(
                        "elf-arch-mismatch",
                        format!(
                            "{} is {} but the image's platform is {}/{}: the kernel refuses to run it (exec format error)",
                            p.path,
                            f.arch_label(),
                            platform.os,
                            platform.architecture
                        ),
                    )
                    .at(&p.path),
                );
                continue;
            }
        }
        if let Some(f) = static_nss(&p.path, e) {
            out.push(f);
        }
        match &e.closure {
            Ok(c) => closure_findings(&p.path, facts, c, &libcs, out),
            Err(ElfError::WrongArchitecture { path, binary, expected, found }) => out.push(
                Finding::new(
                    "elf-arch-mismatch",
                    format!("{path}, which {binary} needs, is {found}, but {binary} is {expected}"),
                )
                .at(path.clone()),
            ),
            Err(err @ (ElfError::NotElf { .. } | ElfError::Truncated { .. } | ElfError::Malformed { .. })) => {
                out.push(Finding::new("elf-corrupt", err.to_string()).at(&p.path))
            }
            Err(err) => {
                out.push(Finding::new("elf-note", format!("{}: closure not resolved: {err}", p.path)).at(&p.path))
            }
        }
        out.extend(e.versions.iter().cloned());
    }
}

/// A static glibc program that uses NSS: judged from the facts of its whole bytes (the
/// resolver sees only the kept ranges, where the evidence, strings, is not).
fn static_nss(path: &str, e: &ElfProgram) -> Option<Finding> {
    let info = e.info.as_ref()?;
    let glibc = matches!(info.libc, Libc::Glibc | Libc::Unknown);
    if !info.is_static() || info.nss.is_empty() || !glibc || info.go {
        return None;
    }
    let noted = e.closure.as_ref().is_ok_and(|c| c.warnings.iter().any(|w| w.contains("uses NSS")));
    (!noted).then(|| {
        Finding::new(
            "elf-note",
            format!(
                "{path} is statically linked but uses NSS ({}): glibc will still dlopen libnss_*.so.2 of the same \
                 glibc version at run time, which the image does not provide; link it dynamically or against musl",
                info.nss.join(", ")
            ),
        )
        .at(path)
    })
}

fn closure_findings(
    program: &str,
    facts: Option<&ElfInfo>,
    c: &Closure,
    (glibc, musl): &(Option<String>, Option<String>),
    out: &mut Vec<Finding>,
) {
    let mut libc_mismatch = false;
    for m in &c.missing {
        let by = m.needed_by.join(", ");
        if m.needed_by.iter().any(|b| b.ends_with("(PT_INTERP)")) {
            let libc = facts.map_or(Libc::Unknown, |f| f.libc);
            let other = match libc {
                Libc::Musl if musl.is_none() => glibc.as_ref().map(|g| ("musl", "glibc", g)),
                Libc::Glibc if glibc.is_none() => musl.as_ref().map(|m| ("glibc", "musl", m)),
                _ => None,
            };
            if let Some((built, has, at)) = other {
                libc_mismatch = true;
                out.push(
                    Finding::new(
                        "elf-libc-mismatch",
                        format!(
                            "{program} is built against {built} (interpreter {}), but the image only has {has} ({at}): the kernel reports \"no such file or directory\" for a file that exists",
                            m.soname
                        ),
                    )
                    .at(program),
                );
            } else {
                out.push(
                    Finding::new(
                        "elf-interpreter-missing",
                        format!(
                            "{program} needs the dynamic loader {}, which is not in the image: exec fails with \"no such file or directory\" although {program} exists",
                            m.soname
                        ),
                    )
                    .at(program),
                );
            }
            continue;
        }
        if libc_mismatch && m.soname.starts_with("libc.") {
            continue;
        }
        let searched =
            if m.searched.is_empty() { String::new() } else { format!(" (searched {})", m.searched.join(", ")) };
        out.push(
            Finding::new("elf-missing-library", format!("{} needed by {by} is not in the image{searched}", m.soname))
                .at(m.needed_by.first().cloned().unwrap_or_else(|| program.to_string())),
        );
        for s in &m.skipped {
            out.push(
                Finding::new("elf-arch-mismatch", format!("{} needed by {by}: the loader skips {s}", m.soname))
                    .at(program),
            );
        }
    }
    for w in &c.warnings {
        out.push(Finding::new("elf-note", w.clone()).at(program));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::doctor::scan::testkit::{snapshot, E};

    #[test]
    fn machines_of_platforms() {
        assert_eq!(machine_of("amd64"), Some(abi::EM_X86_64));
        assert_eq!(machine_of("arm64"), Some(abi::EM_AARCH64));
        assert_eq!(machine_of("wasm"), None);
    }

    #[test]
    fn finds_the_image_libc() {
        let glibc = snapshot(&[vec![E::file("usr/lib/x86_64-linux-gnu/libc.so.6", b"x"), E::link("lib", "usr/lib")]]);
        assert_eq!(image_libcs(&glibc.tree), (Some("/usr/lib/x86_64-linux-gnu/libc.so.6".into()), None));
        let musl = snapshot(&[vec![E::file("lib/ld-musl-x86_64.so.1", b"x")]]);
        assert_eq!(image_libcs(&musl.tree), (None, Some("/lib/ld-musl-x86_64.so.1".into())));
        assert_eq!(image_libcs(&snapshot(&[vec![]]).tree), (None, None));
    }

    /// The test binary itself (dynamic, glibc) placed into a scratch image: its loader
    /// and libraries are missing; with the host's loader and libc next to it, not.
    #[test]
    fn a_dynamic_program_on_scratch_misses_its_loader() {
        let me = std::fs::read("/proc/self/exe").unwrap();
        let info = crate::elf::inspect(&me).unwrap();
        let Some(interp) = info.interpreter.clone() else { return };
        let launch = Launch::new(vec!["/app".into()], vec![], None, None);
        let snap = crate::analyze::doctor::scan::testkit::snapshot_for(&launch, &[vec![E::exe("app", &me)]]);
        let root = TreeRoot::new(&snap);
        let a = analyze(&snap, &launch, &root);
        assert_eq!(a.elf.len(), 1);
        let mut out = Vec::new();
        let c = a.elf[0].closure.as_ref().unwrap();
        closure_findings("/app", a.elf[0].info.as_ref(), c, &(None, None), &mut out);
        assert!(out.iter().any(|f| f.id == "elf-interpreter-missing" && f.message.contains(&interp)), "{out:?}");
        assert!(out.iter().any(|f| f.id == "elf-missing-library" && f.message.contains("libc.so.6")), "{out:?}");
    }
}
