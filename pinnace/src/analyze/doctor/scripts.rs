//! Scripts: the `#!` line of every script the image starts, and of executable scripts on
//! the image's `PATH`, must name an interpreter the image has. The kernel reads the line
//! as Linux does (`fs/binfmt_script.c`): the interpreter path up to the first blank, then
//! at most one argument, the rest of the line. `#!/usr/bin/env NAME` also needs NAME on
//! the image's `PATH` (with `env -S`, the first word after the options).
//!
//! Checks: `shebang-missing-interpreter` (a script the image starts), `shebang-dangling`
//! (another executable script on `PATH`).

use std::collections::HashSet;

use super::capture::Captured;
use super::command::{lookup, Chain, Launch, Role};
use super::scan::Snapshot;
use super::Finding;
use crate::fs::NodeKind;

/// A parsed `#!` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shebang {
    /// The whole first line.
    pub line: String,
    /// The interpreter path.
    pub interpreter: String,
    /// The optional argument (the rest of the line, trimmed).
    pub arg: Option<String>,
}

impl Shebang {
    /// For `#!/usr/bin/env [-S] [NAME=VALUE...] PROGRAM`, the program `env` starts.
    pub fn env_program(&self) -> Option<String> {
        if self.interpreter.rsplit('/').next() != Some("env") {
            return None;
        }
        let arg = self.arg.as_deref()?;
        let mut words = arg.split_whitespace().peekable();
        while let Some(w) = words.peek() {
            if w.starts_with('-') || w.contains('=') {
                words.next();
            } else {
                break;
            }
        }
        words.next().map(str::to_string)
    }
}

/// Parses the first line of `data` when it starts with `#!`.
pub fn parse_shebang(data: &[u8]) -> Option<Shebang> {
    let rest = data.strip_prefix(b"#!")?;
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = String::from_utf8_lossy(&rest[..end]).trim_end_matches('\r').to_string();
    let body = line.trim_start_matches([' ', '\t']);
    let (interp, arg) = match body.find([' ', '\t']) {
        Some(i) => (&body[..i], Some(body[i..].trim().to_string()).filter(|a| !a.is_empty())),
        None => (body, None),
    };
    if interp.is_empty() {
        return None;
    }
    Some(Shebang { line: format!("#!{line}"), interpreter: interp.to_string(), arg })
}

/// Reports missing interpreters of the scripts the image starts, then of the other
/// executable scripts on `PATH`.
pub fn check(snap: &Snapshot, launch: &Launch, chain: &Chain, out: &mut Vec<Finding>) {
    for m in &chain.missing {
        let Role::Interpreter { script, line } = &m.role else { continue };
        let via_env = !m.named.starts_with('/');
        let note = m.note.as_ref().map_or(String::new(), |n| format!("; {n}"));
        let what = if via_env {
            format!("{} is not on the image's PATH (looked for {})", m.named, m.tried.join(", "))
        } else {
            format!("{} is not in the image", m.named)
        };
        out.push(
            Finding::new("shebang-missing-interpreter", format!("{script} starts with `{line}`, but {what}{note}"))
                .at(script.clone()),
        );
    }
    let started: HashSet<&str> = chain.programs.iter().map(|p| p.real.as_str()).collect();
    let tree = &snap.tree;
    let mut seen_dirs = HashSet::new();
    for dir in &launch.path {
        let Ok(d) = tree.resolve(dir, true) else { continue };
        if tree.meta(d).kind != NodeKind::Dir || !seen_dirs.insert(d) {
            continue;
        }
        for id in tree.sorted_children(d) {
            let m = tree.meta(id);
            if !tree.is_present(id) || m.kind != NodeKind::File || m.mode & 0o111 == 0 {
                continue;
            }
            let path = tree.path(id);
            let Some(Captured::Bytes { data, .. }) = snap.captured(id) else { continue };
            let Some(sb) = parse_shebang(data) else { continue };
            if started.contains(path.as_str()) {
                continue;
            }
            let mut problems = Vec::new();
            if lookup(tree, launch, &sb.interpreter).is_err() {
                problems.push(format!("{} is not in the image", sb.interpreter));
            } else if let Some(p) = sb.env_program() {
                if lookup(tree, launch, &p).is_err() {
                    problems.push(format!("{p} is not on the image's PATH"));
                }
            }
            if let Some(p) = problems.first() {
                let layer = tree.modified_in(id).unwrap_or(tree.added_in(id));
                out.push(
                    Finding::new("shebang-dangling", format!("{path} starts with `{}`, but {p}", sb.line))
                        .at(path)
                        .in_layer(layer),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::doctor::command::discover;
    use crate::analyze::doctor::rootfs::TreeRoot;
    use crate::analyze::doctor::scan::testkit::{snapshot_for, E};

    #[test]
    fn parses_lines_like_the_kernel() {
        let s = parse_shebang(b"#! /usr/bin/python3 -u -x\nprint()").unwrap();
        assert_eq!((s.interpreter.as_str(), s.arg.as_deref()), ("/usr/bin/python3", Some("-u -x")));
        let s = parse_shebang(b"#!/bin/sh\r\n").unwrap();
        assert_eq!((s.interpreter.as_str(), s.arg), ("/bin/sh", None));
        assert!(parse_shebang(b"#!\n").is_none());
        assert!(parse_shebang(b"\x7fELF").is_none());
        assert_eq!(parse_shebang(b"#!/usr/bin/env python3").unwrap().env_program().as_deref(), Some("python3"));
        let s = parse_shebang(b"#!/usr/bin/env -S A=1 node --flag").unwrap();
        assert_eq!(s.env_program().as_deref(), Some("node"));
        assert_eq!(parse_shebang(b"#!/bin/bash -e").unwrap().env_program(), None);
    }

    fn run(argv: &[&str], layers: &[Vec<E>]) -> Vec<Finding> {
        let l =
            Launch::new(argv.iter().map(|s| s.to_string()).collect(), vec!["PATH=/usr/bin:/bin".into()], None, None);
        let snap = snapshot_for(&l, layers);
        let root = TreeRoot::new(&snap);
        let chain = discover(&snap, &l, &root);
        let mut out = Vec::new();
        check(&snap, &l, &chain, &mut out);
        out
    }

    #[test]
    fn entrypoint_script_interpreters() {
        let script = E::exe("app.sh", b"#!/bin/bash\necho hi\n");
        let f = run(&["/app.sh"], &[vec![script]]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].id, "shebang-missing-interpreter");
        assert!(f[0].message.contains("/bin/bash is not in the image"));
        let fixed = run(&["/app.sh"], &[vec![E::exe("app.sh", b"#!/bin/bash\n"), E::exe("bin/bash", b"\x7fELF-ish")]]);
        assert!(fixed.is_empty(), "{fixed:?}");
        let env =
            run(&["/app.py"], &[vec![E::exe("app.py", b"#!/usr/bin/env python3\n"), E::exe("usr/bin/env", b"x")]]);
        assert_eq!(env.len(), 1);
        assert!(env[0].message.contains("python3 is not on the image's PATH"), "{env:?}");
    }

    #[test]
    fn dangling_scripts_on_path() {
        let f = run(&[], &[vec![E::exe("usr/bin/tool", b"#!/usr/bin/perl\n"), E::file("usr/bin/notes", b"#!/nope\n")]]);
        assert_eq!(f.iter().map(|f| f.id).collect::<Vec<_>>(), vec!["shebang-dangling"]);
        assert_eq!(f[0].path.as_deref(), Some("/usr/bin/tool"));
    }
}
