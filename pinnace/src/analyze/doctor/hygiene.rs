//! Binaries and file-system hygiene.
//!
//! - UPX-packed executables (the seed's point: a packed binary is unpacked into private
//!   memory at every start, so neither the layer nor the page cache is shared between
//!   containers, start-up is slower, and the compressed layer is barely smaller).
//! - Unstripped programs and libraries: each one the image starts or loads, with its
//!   symbol and debug bytes (from 16 KiB on); the rest summed in one line (from 1 MiB on).
//! - setuid/setgid files, world-writable directories without the sticky bit, `/tmp`
//!   missing or not mode 1777.
//!
//! Checks: `binary-upx`, `binary-unstripped`, `setuid`, `world-writable-dir`,
//! `tmp-missing`, `tmp-not-writable`. (`runs-as-root` is in [`super::user`].)

use std::collections::BTreeSet;

use super::capture::{Captured, ElfFile};
use super::elf::Analysis;
use super::scan::Snapshot;
use super::{human, Finding};
use crate::fs::{NodeId, NodeKind};

/// Other files' symbol bytes are reported (summed) from this total on.
const OTHER_DEBUG_MIN: u64 = 1 << 20;
/// A started program or loaded library is reported from this many symbol bytes on (a
/// few kilobytes of `.symtab` are not worth a line).
const DEBUG_MIN: u64 = 16 << 10;

/// Every ELF capture that is a present file's current content: `(path, node, capture)`.
fn current_elves(snap: &Snapshot) -> Vec<(String, NodeId, &ElfFile)> {
    let mut v: Vec<(String, NodeId, &ElfFile)> = snap
        .files
        .iter()
        .filter_map(|(path, (layer, c))| {
            let Captured::Elf(e) = c else { return None };
            let id = snap.tree.lookup(path)?;
            (snap.content_layer(id) == Some(*layer)).then(|| (format!("/{path}"), id, &**e))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn layer_of(snap: &Snapshot, id: NodeId) -> usize {
    snap.tree.modified_in(id).unwrap_or(snap.tree.added_in(id))
}

/// Reports binaries and file-system hygiene.
pub fn check(snap: &Snapshot, analysis: &Analysis, out: &mut Vec<Finding>) {
    binaries(snap, analysis, out);
    let tree = &snap.tree;
    for id in tree.walk() {
        let m = tree.meta(id);
        let path = tree.path(id);
        match m.kind {
            NodeKind::File | NodeKind::HardLink if m.mode & 0o6000 != 0 => {
                let bits = match (m.mode & 0o4000 != 0, m.mode & 0o2000 != 0) {
                    (true, true) => "setuid and setgid",
                    (true, false) => "setuid",
                    _ => "setgid",
                };
                let owner = if m.mode & 0o4000 != 0 { format!(" (uid {})", m.uid) } else { format!(" (gid {})", m.gid) };
                out.push(
                    Finding::new("setuid", format!("{path} is {bits}{owner}, mode {:04o}", m.mode))
                        .at(path)
                        .in_layer(layer_of(snap, id)),
                );
            }
            NodeKind::Dir if m.mode & 0o002 != 0 && m.mode & 0o1000 == 0 => out.push(
                Finding::new("world-writable-dir", format!("{path} has mode {:04o}: anyone can write to it, and without the sticky bit anyone can delete others' files", m.mode))
                    .at(path)
                    .in_layer(layer_of(snap, id)),
            ),
            _ => {}
        }
    }
    match tree.resolve("/tmp", true) {
        Err(_) => out.push(Finding::new("tmp-missing", "the image has no /tmp").at("/tmp")),
        Ok(id) if tree.meta(id).kind != NodeKind::Dir => {
            out.push(Finding::new("tmp-missing", "/tmp is not a directory").at("/tmp"))
        }
        Ok(id) if tree.meta(id).mode & 0o1777 != 0o1777 => out.push(
            Finding::new("tmp-not-writable", format!("/tmp has mode {:04o}, not 1777", tree.meta(id).mode)).at("/tmp"),
        ),
        Ok(_) => {}
    }
}

fn binaries(snap: &Snapshot, analysis: &Analysis, out: &mut Vec<Finding>) {
    let mut started: BTreeSet<String> = analysis.chain.programs.iter().map(|p| p.real.clone()).collect();
    started.extend(analysis.loaded_objects());
    let (mut other_bytes, mut other_files) = (0u64, 0usize);
    for (path, id, e) in current_elves(snap) {
        if e.upx {
            out.push(
                Finding::new("binary-upx", format!("{path} is packed with UPX"))
                    .at(path.clone())
                    .in_layer(layer_of(snap, id)),
            );
        }
        if e.debug_bytes == 0 {
            continue;
        }
        if started.contains(&path) && e.debug_bytes >= DEBUG_MIN {
            out.push(
                Finding::new(
                    "binary-unstripped",
                    format!(
                        "{path} carries {} of symbols and debug information ({} in all)",
                        human(e.debug_bytes),
                        human(e.sparse.len)
                    ),
                )
                .at(path)
                .in_layer(layer_of(snap, id)),
            );
        } else if !started.contains(&path) {
            other_bytes += e.debug_bytes;
            other_files += 1;
        }
    }
    if other_bytes >= OTHER_DEBUG_MIN {
        out.push(Finding::new(
            "binary-unstripped",
            format!(
                "{other_files} other programs and libraries carry {} of symbols and debug information",
                human(other_bytes)
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::doctor::scan::testkit::{snapshot, E};

    fn run(layers: &[Vec<E>]) -> Vec<(&'static str, Option<String>)> {
        let snap = snapshot(layers);
        let mut out = Vec::new();
        check(&snap, &Analysis::default(), &mut out);
        out.into_iter().map(|f| (f.id, f.path)).collect()
    }

    #[test]
    fn modes() {
        let ok = vec![E::Dir("tmp", 0o1777), E::exe("bin/app", b"x")];
        assert!(run(&[ok]).is_empty());
        let f = run(&[vec![
            E::Dir("tmp", 0o1777),
            E::File("bin/su", b"x".to_vec(), 0o4755),
            E::Dir("data", 0o777),
            E::Dir("shared", 0o1777),
        ]]);
        assert_eq!(f, vec![("setuid", Some("/bin/su".into())), ("world-writable-dir", Some("/data".into()))]);
    }

    #[test]
    fn tmp_missing_or_wrong() {
        assert_eq!(run(&[vec![E::exe("app", b"x")]]), vec![("tmp-missing", Some("/tmp".into()))]);
        assert_eq!(run(&[vec![E::Dir("tmp", 0o755)]]), vec![("tmp-not-writable", Some("/tmp".into()))]);
        assert!(run(&[vec![E::Dir("var/tmp", 0o1777), E::link("tmp", "var/tmp")]]).is_empty());
    }

    #[test]
    fn upx_and_symbols_of_captured_elves() {
        let mut packed = std::fs::read("/proc/self/exe").unwrap();
        packed[9..13].copy_from_slice(b"UPX!");
        // Named by the command, so captured whole (the test binary is bigger than LIB_CAP);
        // not started by the (empty) analysis.
        let launch = crate::analyze::doctor::command::Launch::new(vec!["/usr/bin/packed".into()], vec![], None, None);
        let snap = crate::analyze::doctor::scan::testkit::snapshot_for(
            &launch,
            &[vec![E::Dir("tmp", 0o1777), E::exe("usr/bin/packed", &packed)]],
        );
        let mut out = Vec::new();
        check(&snap, &Analysis::default(), &mut out);
        let f: Vec<(&str, Option<String>)> = out.into_iter().map(|f| (f.id, f.path)).collect();
        assert!(f.contains(&("binary-upx", Some("/usr/bin/packed".into()))), "{f:?}");
        // Not started by the image: its symbols are summed in one line.
        assert!(f.contains(&("binary-unstripped", None)), "{f:?}");
    }
}
