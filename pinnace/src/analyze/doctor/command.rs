//! Runnability of the command: what the image starts (Entrypoint then Cmd), found the
//! way the runtime finds it (a name without `/` through the image's `PATH`, a relative
//! path from `WorkingDir`, symbolic links followed inside the image), then the chain of
//! programs that actually run: the shell of a shell-form command and the command its
//! script runs, and the `#!` interpreter of each script ([`discover`]).
//!
//! Checks: `entrypoint-none`, `entrypoint-missing`, `entrypoint-not-executable`,
//! `entrypoint-shell-missing`, `entrypoint-exec-format`.

use super::capture::Captured;
use super::rootfs::TreeRoot;
use super::scan::Snapshot;
use super::scripts::{self, Shebang};
use super::Finding;
use crate::fs::{FsTree, NodeId, NodeKind};
use crate::transport::Image;

/// The runtime's `PATH` when the image sets none (podman, docker and runc agree).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Shells a shell-form command starts (`["/bin/sh", "-c", "..."]`).
const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"];

/// How the image starts, from its config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launch {
    /// Entrypoint followed by Cmd.
    pub argv: Vec<String>,
    /// Environment, `KEY=VALUE` split.
    pub env: Vec<(String, String)>,
    /// `PATH` split (the default when unset).
    pub path: Vec<String>,
    /// WorkingDir (default `/`).
    pub workdir: String,
    /// User (`None` when unset or empty).
    pub user: Option<String>,
}

impl Launch {
    /// Reads the image config.
    pub fn from_image(image: &Image) -> Launch {
        let Some(c) = image.config.parsed.config() else {
            return Launch::new(Vec::new(), Vec::new(), None, None);
        };
        let mut argv = c.entrypoint().clone().unwrap_or_default();
        argv.extend(c.cmd().clone().unwrap_or_default());
        let env = c.env().clone().unwrap_or_default();
        Launch::new(argv, env, c.working_dir().as_deref(), c.user().as_deref())
    }

    /// A launch from its parts (`env` as `KEY=VALUE` strings).
    pub fn new(argv: Vec<String>, env: Vec<String>, workdir: Option<&str>, user: Option<&str>) -> Launch {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|kv| kv.split_once('=').map_or((kv.clone(), String::new()), |(k, v)| (k.into(), v.into())))
            .collect();
        let path_var = env.iter().rev().find(|(k, _)| k == "PATH").map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        let workdir = workdir.filter(|w| !w.is_empty()).unwrap_or("/").to_string();
        let path =
            path_var.split(':').map(|d| if d.is_empty() { "." } else { d }).map(|d| absolute(d, &workdir)).collect();
        let user = user.filter(|u| !u.is_empty()).map(str::to_string);
        Launch { argv, env, path, workdir, user }
    }

    /// The value of an environment variable (the last definition wins).
    pub fn env(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `(shell, script)` of a shell-form command: `["/bin/sh", "-c", "script", ...]`.
    pub fn shell_form(&self) -> Option<(&str, &str)> {
        let [shell, flag, script, ..] = self.argv.as_slice() else { return None };
        let base = shell.rsplit('/').next().unwrap_or(shell);
        (SHELLS.contains(&base) && flag.starts_with('-') && flag.contains('c'))
            .then_some((shell.as_str(), script.as_str()))
    }

    /// Every absolute path the runtime may open to start the command (and the command of
    /// a shell-form script): what the main pass captures whole.
    pub fn candidates(&self) -> Vec<String> {
        let mut names: Vec<&str> = self.argv.first().map(String::as_str).into_iter().collect();
        let script_cmd = self.shell_form().and_then(|(_, s)| script_command(s));
        names.extend(script_cmd.as_deref());
        names.iter().flat_map(|n| self.search_list(n)).collect()
    }

    /// Where `name` is looked for, in order.
    pub fn search_list(&self, name: &str) -> Vec<String> {
        if name.contains('/') {
            vec![absolute(name, &self.workdir)]
        } else {
            self.path.iter().map(|d| format!("{}/{name}", d.trim_end_matches('/'))).collect()
        }
    }
}

/// `p` made absolute against `base`.
fn absolute(p: &str, base: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{}/{p}", base.trim_end_matches('/'))
    }
}

/// The program a shell script runs first, when that is plain enough to tell: `exec` and
/// variable assignments skipped; `None` for builtins, keywords, expansions and quoting.
pub fn script_command(script: &str) -> Option<String> {
    const BUILTINS: &[&str] = &[
        "set", "cd", "export", "source", ".", "if", "for", "while", "until", "case", "echo", "printf", "test", "[",
        "[[", "true", "false", ":", "trap", "ulimit", "umask", "eval", "wait", "read", "{", "(", "!", "exit", "unset",
        "shift", "local", "return", "function", "sleep",
    ];
    for word in script.split_whitespace() {
        let word = word.split([';', '&', '|']).next().unwrap_or("");
        if word == "exec" || word.is_empty() {
            continue;
        }
        if word
            .split_once('=')
            .is_some_and(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            continue;
        }
        if BUILTINS.contains(&word) || !word.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b)) {
            return None;
        }
        return Some(word.to_string());
    }
    None
}

/// Why a program runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The first word of Entrypoint/Cmd.
    Entrypoint,
    /// The command a shell-form script runs.
    ShellCommand,
    /// The `#!` interpreter of a script (or the program `env` starts for it).
    Interpreter {
        /// The script.
        script: String,
        /// The `#!` line.
        line: String,
    },
}

/// A program found on the chain.
#[derive(Debug, Clone)]
pub struct Program {
    /// Why it runs.
    pub role: Role,
    /// The name as written (`java`, `/bin/sh`).
    pub named: String,
    /// The path the runtime opens (`/usr/bin/java`).
    pub path: String,
    /// That path with every link resolved.
    pub real: String,
    /// Its node.
    pub id: NodeId,
}

/// A program on the chain that is not in the image.
#[derive(Debug, Clone)]
pub struct MissingProgram {
    /// Why it would run.
    pub role: Role,
    /// The name as written.
    pub named: String,
    /// The paths tried.
    pub tried: Vec<String>,
    /// What the history says (removed by a layer, dangling link), if anything.
    pub note: Option<String>,
}

/// The chain of programs the image starts.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// Found, in discovery order (entrypoint first).
    pub programs: Vec<Program>,
    /// Not found.
    pub missing: Vec<MissingProgram>,
}

/// Finds `name` the way `execvp` in the image would: the first candidate that is an
/// executable regular file, else the first that exists at all (reported as not
/// executable or not a file). `Err` carries the paths tried and a note.
pub fn lookup(tree: &FsTree, launch: &Launch, name: &str) -> Result<(String, NodeId), (Vec<String>, Option<String>)> {
    let tried = launch.search_list(name);
    let mut existing = None;
    for c in &tried {
        if let Ok(id) = tree.resolve(c, true) {
            let m = tree.meta(id);
            if matches!(m.kind, NodeKind::File | NodeKind::HardLink) && m.mode & 0o111 != 0 {
                return Ok((c.clone(), id));
            }
            existing.get_or_insert((c.clone(), id));
        }
    }
    existing.ok_or_else(|| {
        let note = tried.iter().find_map(|c| note_for(tree, c));
        (tried, note)
    })
}

/// What the tree knows about a path that does not resolve.
fn note_for(tree: &FsTree, path: &str) -> Option<String> {
    if let Some(id) = tree.lookup(path) {
        if tree.meta(id).kind == NodeKind::Symlink {
            let target = tree.meta(id).link.as_deref().unwrap_or("");
            return Some(format!("{path} is a symbolic link to {target}, which does not exist in the image"));
        }
    }
    let id = tree.lookup_any(path)?;
    let by = tree.removed_in(id)?;
    Some(format!("{path} was added by layer {} and deleted by layer {by}", tree.added_in(id)))
}

/// Walks the chain: the entrypoint, a shell-form script's command, and interpreters of
/// scripts (at most 4 deep). A program whose content was not captured is asked for
/// through `root`, so the caller can fetch it and walk again.
pub fn discover(snap: &Snapshot, launch: &Launch, root: &TreeRoot) -> Chain {
    let mut chain = Chain::default();
    let Some(argv0) = launch.argv.first() else { return chain };
    let mut queue: Vec<(Role, String)> = vec![(Role::Entrypoint, argv0.clone())];
    if let Some(cmd) = launch.shell_form().and_then(|(_, s)| script_command(s)) {
        queue.push((Role::ShellCommand, cmd));
    }
    let mut i = 0;
    while i < queue.len() && i < 8 {
        let (role, named) = queue[i].clone();
        i += 1;
        match lookup(&snap.tree, launch, &named) {
            Err((tried, note)) => chain.missing.push(MissingProgram { role, named, tried, note }),
            Ok((path, id)) => {
                let real = snap.tree.path(id);
                match snap.captured(id) {
                    None if snap.tree.meta(id).kind != NodeKind::Dir => {
                        if let Some(p) = snap.content_path(id) {
                            root.want(&format!("/{p}"));
                        }
                    }
                    Some(Captured::Bytes { data, .. }) => {
                        if let Some(sb) = scripts::parse_shebang(data) {
                            queue.extend(interpreters(&sb, &real));
                        }
                    }
                    _ => {}
                }
                chain.programs.push(Program { role, named, path, real, id });
            }
        }
    }
    chain
}

/// The programs a `#!` line starts: the interpreter, and for `env NAME` also NAME.
fn interpreters(sb: &Shebang, script: &str) -> Vec<(Role, String)> {
    let role = Role::Interpreter { script: script.to_string(), line: sb.line.clone() };
    let mut out = vec![(role.clone(), sb.interpreter.clone())];
    if let Some(prog) = sb.env_program() {
        out.push((role, prog));
    }
    out
}

/// Runnability findings for the entrypoint and a shell-form script's command.
pub fn check(snap: &Snapshot, launch: &Launch, chain: &Chain, out: &mut Vec<Finding>) {
    if launch.argv.is_empty() {
        out.push(Finding::new("entrypoint-none", "the config has no Entrypoint and no Cmd"));
        return;
    }
    for m in &chain.missing {
        let note = m.note.as_ref().map_or(String::new(), |n| format!("; {n}"));
        let f = match (&m.role, launch.shell_form()) {
            (Role::Entrypoint, Some((shell, _))) => Finding::new(
                "entrypoint-shell-missing",
                format!("the command is in shell form ({shell} -c ...) but {shell} is not in the image{note}"),
            ),
            (Role::Entrypoint, None) => Finding::new(
                "entrypoint-missing",
                format!("{} is not in the image (looked for {}){note}", m.named, m.tried.join(", ")),
            ),
            (Role::ShellCommand, _) => Finding::new(
                "entrypoint-missing",
                format!(
                    "the shell command runs {}, which is not in the image (looked for {}){note}",
                    m.named,
                    m.tried.join(", ")
                ),
            ),
            (Role::Interpreter { .. }, _) => continue,
        };
        out.push(f.at(m.tried.first().cloned().unwrap_or_else(|| m.named.clone())));
    }
    for p in &chain.programs {
        if matches!(p.role, Role::Interpreter { .. }) {
            continue;
        }
        let m = snap.tree.meta(p.id);
        let shown = if p.real == p.path { p.path.clone() } else { format!("{} (-> {})", p.path, p.real) };
        let layer = snap.tree.modified_in(p.id).unwrap_or(snap.tree.added_in(p.id));
        if !matches!(m.kind, NodeKind::File | NodeKind::HardLink) {
            let what = format!("{:?}", m.kind).to_lowercase();
            out.push(
                Finding::new("entrypoint-missing", format!("{shown} is a {what}, not a program"))
                    .at(&p.path)
                    .in_layer(layer),
            );
        } else if m.mode & 0o111 == 0 {
            out.push(
                Finding::new(
                    "entrypoint-not-executable",
                    format!("{shown} has mode {:04o}: no one may execute it", m.mode),
                )
                .at(&p.path)
                .in_layer(layer),
            );
        } else if let Some(Captured::Bytes { data, .. }) = snap.captured(p.id) {
            if !data.starts_with(b"#!") {
                let start: Vec<String> = data.iter().take(4).map(|b| format!("{b:02x}")).collect();
                out.push(
                    Finding::new(
                        "entrypoint-exec-format",
                        format!("{shown} is neither ELF nor a #! script (it starts with {}): exec fails with \"exec format error\"", start.join(" ")),
                    )
                    .at(&p.path)
                    .in_layer(layer),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::doctor::scan::testkit::{snapshot_for, E};

    fn launch(argv: &[&str], env: &[&str]) -> Launch {
        Launch::new(
            argv.iter().map(|s| s.to_string()).collect(),
            env.iter().map(|s| s.to_string()).collect(),
            Some("/srv"),
            None,
        )
    }

    fn findings(l: &Launch, layers: &[Vec<E>]) -> Vec<Finding> {
        let snap = snapshot_for(l, layers);
        let root = TreeRoot::new(&snap);
        let chain = discover(&snap, l, &root);
        let mut out = Vec::new();
        check(&snap, l, &chain, &mut out);
        out
    }

    fn ids(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.id).collect()
    }

    #[test]
    fn path_workdir_and_shell_form() {
        let l = launch(&["/bin/sh", "-c", "FOO=1 exec server --port 80"], &["PATH=/app/bin:bin"]);
        assert_eq!(l.path, vec!["/app/bin", "/srv/bin"]);
        assert_eq!(l.shell_form(), Some(("/bin/sh", "FOO=1 exec server --port 80")));
        assert_eq!(l.candidates(), vec!["/bin/sh", "/app/bin/server", "/srv/bin/server"]);
        assert_eq!(launch(&["./run"], &[]).candidates(), vec!["/srv/./run"]);
        assert_eq!(Launch::new(vec![], vec![], None, Some("")).user, None);
        assert_eq!(Launch::new(vec!["x".into()], vec![], None, None).path.len(), 6);
    }

    #[test]
    fn script_commands() {
        assert_eq!(script_command("exec /app/server -x").as_deref(), Some("/app/server"));
        assert_eq!(script_command("java -jar app.jar && echo").as_deref(), Some("java"));
        assert_eq!(script_command("node;echo").as_deref(), Some("node"));
        assert_eq!(script_command("set -e; run"), None);
        assert_eq!(script_command("$APP"), None);
        assert_eq!(script_command("   "), None);
    }

    #[test]
    fn missing_not_executable_and_found() {
        let l = launch(&["/app"], &[]);
        assert_eq!(ids(&findings(&l, &[vec![E::file("etc/x", b"")]])), vec!["entrypoint-missing"]);
        assert_eq!(ids(&findings(&l, &[vec![E::file("app", b"#!/bin/true\n")]])), vec!["entrypoint-not-executable"]);
        assert!(findings(&l, &[vec![E::exe("app", b"#!/bin/true\n")]]).is_empty());
        assert_eq!(ids(&findings(&l, &[vec![E::exe("app", b"MZ\x90\x00")]])), vec!["entrypoint-exec-format"]);
        let none = launch(&[], &[]);
        assert_eq!(ids(&findings(&none, &[vec![]])), vec!["entrypoint-none"]);
    }

    #[test]
    fn deleted_and_dangling_entrypoints_say_why() {
        let l = launch(&["/app"], &[]);
        let f = findings(&l, &[vec![E::exe("app", b"#!/bin/true\n")], vec![E::Whiteout("app")]]);
        assert!(f[0].message.contains("deleted by layer 1"), "{f:?}");
        let f = findings(&l, &[vec![E::link("app", "/opt/gone")]]);
        assert!(f[0].message.contains("symbolic link to /opt/gone"), "{f:?}");
    }

    #[test]
    fn shell_form_without_shell_and_its_command() {
        let l = launch(&["/bin/sh", "-c", "exec /srv/app"], &[]);
        assert_eq!(ids(&findings(&l, &[vec![E::exe("srv/app", b"#!/x\n")]])), vec!["entrypoint-shell-missing"]);
        let f = findings(&l, &[vec![E::exe("bin/sh", b"#!/x\n")]]);
        assert_eq!(ids(&f), vec!["entrypoint-missing"]);
        assert!(f[0].message.contains("the shell command runs /srv/app"));
        assert!(findings(&l, &[vec![E::exe("bin/sh", b"#!/x\n"), E::exe("srv/app", b"#!/x\n")]]).is_empty());
    }

    #[test]
    fn names_are_found_through_path_and_links() {
        let l = launch(&["tool"], &["PATH=/usr/bin"]);
        let layers = [vec![E::link("usr/bin/tool", "../lib/tool/run"), E::exe("usr/lib/tool/run", b"#!/x\n")]];
        let snap = snapshot_for(&l, &layers);
        let root = TreeRoot::new(&snap);
        let chain = discover(&snap, &l, &root);
        assert_eq!(chain.programs[0].path, "/usr/bin/tool");
        assert_eq!(chain.programs[0].real, "/usr/lib/tool/run");
        // The real file was not a capture candidate: it is asked for.
        assert_eq!(root.missing().into_iter().collect::<Vec<_>>(), vec!["/usr/lib/tool/run"]);
    }
}
