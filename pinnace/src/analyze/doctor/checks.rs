//! The table of checks: every finding's id, severity, explanation and default fix.
//! `pinnace doctor --help` prints it; findings refine the fix where they know more.

use serde::Serialize;

use super::Severity;

/// One check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable id, e.g. `elf-missing-library`.
    pub id: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// What it looks for, in one line.
    pub explanation: &'static str,
    /// How to fix what it finds, in general.
    pub fix: &'static str,
}

const fn c(id: &'static str, severity: Severity, explanation: &'static str, fix: &'static str) -> Check {
    Check { id, severity, explanation, fix }
}

use Severity::{Error, Info, Warn};

/// Every check doctor runs, grouped by family (runnability first).
#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("entrypoint-none", Warn, "the image has neither Entrypoint nor Cmd, so it cannot start without a command",
      "set ENTRYPOINT or CMD (pinnace build --entrypoint)"),
    c("entrypoint-missing", Error, "the program the image starts does not exist in the final filesystem",
      "copy the program into the image at that path, or fix Entrypoint/Cmd (relative names are looked up in the image's PATH)"),
    c("entrypoint-not-executable", Error, "the program the image starts has no execute permission",
      "chmod +x it in the layer that adds it (COPY --chmod=755, or pinnace build --binary)"),
    c("entrypoint-shell-missing", Error, "a shell-form command (/bin/sh -c ...) on an image without that shell",
      "use the exec form (CMD [\"/app\", \"arg\"]) or add the shell"),
    c("entrypoint-exec-format", Error, "the program is neither an ELF binary nor a script with #!, so exec fails (exec format error)",
      "point Entrypoint at the real program, or start the script with a #! line"),
    c("elf-interpreter-missing", Error, "the ELF interpreter (PT_INTERP, the dynamic loader) is not in the image",
      "add the loader and the libraries (pinnace build --binary copies the whole closure), or link the program statically"),
    c("elf-missing-library", Error, "a shared library a program needs (DT_NEEDED) is not where the loader looks in the image",
      "add the library to a directory the loader searches (or fix RUNPATH/ld.so.cache); pinnace build --binary copies the closure"),
    c("elf-arch-mismatch", Error, "a program or library is built for another architecture than the image (or than each other)",
      "build for the image's platform, or set the image's platform to the binary's"),
    c("elf-libc-mismatch", Error, "a program built against one C library (glibc or musl) on an image that only has the other",
      "build the program against the image's C library, link it statically, or base the image on the matching distribution"),
    c("elf-glibc-version", Error, "a program needs a GLIBC_x.y symbol version newer than the image's glibc provides",
      "build on a system with a glibc no newer than the image's, or use a newer base image"),
    c("elf-symbol-version", Error, "a program needs a symbol version (e.g. GLIBCXX_3.4.30) that the image's library does not define",
      "use a base image with a newer version of that library, or build against the older one"),
    c("elf-corrupt", Error, "a program or library in the closure is not a valid ELF file",
      "rebuild or recopy it; it was probably truncated"),
    c("elf-note", Info, "something the loader may do at run time that the image may not support (dlopen of NSS modules, gconv)",
      "read the message; usually nothing to do"),
    c("shebang-missing-interpreter", Error, "a script the image starts names an interpreter (#!) that is not in the image",
      "add the interpreter, or change the #! line to one the image has"),
    c("shebang-dangling", Warn, "an executable script on the PATH names an interpreter (#!) that is not in the image",
      "add the interpreter or remove the script"),
    c("user-unknown", Error, "the config's User names a user or group that /etc/passwd or /etc/group does not define",
      "add the user to /etc/passwd (and group to /etc/group), or use a numeric UID:GID"),
    c("tls-no-ca-bundle", Error, "the program speaks TLS but the image has no CA certificates, so every certificate check fails",
      "add a CA bundle at /etc/ssl/certs/ca-certificates.crt (pinnace build --with certs) or set SSL_CERT_FILE"),
    c("tz-no-zoneinfo", Warn, "TZ is set or a program reads time zones, and the image has no zone data: times silently come out in UTC",
      "add /usr/share/zoneinfo (pinnace build --with zoneinfo), or embed it (Go: import time/tzdata)"),
    c("secret-in-layer", Error, "a private key or credential was deleted or overwritten by a later layer but is still stored in a lower one",
      "remove it from the layer that added it (multi-stage build, build secrets mounts), rebuild, and rotate the secret"),
    c("secret-in-image", Warn, "a private key or credential is in the image: anyone who can pull the image can read it",
      "mount it at run time (secrets, volumes, environment) instead of baking it in, and rotate it"),
    c("waste-package-cache", Warn, "package manager caches or index lists are shipped in the image",
      "clean them in the same RUN step that fills them (apt-get clean && rm -rf /var/lib/apt/lists/*, pip --no-cache-dir, npm cache clean)"),
    c("waste-build-tools", Warn, "compilers and build tools in what looks like a runtime image",
      "build in one stage and copy only the result into the runtime image"),
    c("waste-deleted-bytes", Warn, "a large file is stored in one layer and deleted or replaced by a later one: every pull still downloads it",
      "create and delete it in the same RUN step, or use a multi-stage build"),
    c("binary-upx", Warn, "a UPX-packed executable: it defeats layer and page sharing, unpacks into private memory at every start, costs start-up time, and alarms scanners",
      "ship the unpacked binary: the compressed layer is about as small, and it is shared between containers"),
    c("binary-unstripped", Warn, "a program or library carries its symbol table or debug information",
      "strip it (strip --strip-unneeded, go build -ldflags='-s -w', cargo profile strip = true) or ship debug info separately"),
    c("setuid", Warn, "a setuid or setgid file: a way to gain privileges inside the container",
      "remove the bit (chmod u-s,g-s) unless the program must change users"),
    c("world-writable-dir", Warn, "a directory anyone can write to, without the sticky bit: users can delete each other's files",
      "chmod o-w, or chmod +t when it is a shared temporary directory"),
    c("tmp-missing", Warn, "the image has no /tmp: programs that create temporary files fail",
      "add /tmp with mode 1777 (pinnace build --with tmp)"),
    c("tmp-not-writable", Warn, "/tmp is not a world-writable directory with the sticky bit (mode 1777)",
      "chmod 1777 /tmp"),
    c("runs-as-root", Info, "the image runs as root (no User, or User 0)",
      "set USER to an unprivileged user (pinnace build uses nonroot, 65532, by default)"),
    c("run-start-failed", Error, "--run: the container could not be started",
      "read the message: usually a missing program, library or permission reported above"),
    c("run-exited-nonzero", Error, "--run: the container exited with a non-zero status",
      "read its output (shown in the message)"),
    c("run-exited-0", Info, "--run: the container ran to completion with status 0 (a job, not a service)",
      "nothing, if the image is meant to run and exit"),
    c("run-stays-up", Info, "--run: the container started and kept running", "nothing"),
    c("run-ignores-sigterm", Warn, "--run: the program did not exit within the stop timeout after SIGTERM as PID 1 and was killed",
      "handle SIGTERM (as PID 1 the kernel applies no default action), exec the program from wrapper scripts, or run with an init (podman run --init, tini)"),
    c("run-stops-on-sigterm", Info, "--run: the program exited promptly on SIGTERM", "nothing"),
];

/// The check with this id.
pub fn check(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// The table as help text: per check, `severity id` on one line and the explanation,
/// indented, on the next (help text is wrapped to the terminal; this stays readable).
pub fn help_table() -> String {
    CHECKS.iter().map(|c| format!("  {:<5} {}\n        {}\n", c.severity.to_string(), c.id, c.explanation)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_kebab_case_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for c in CHECKS {
            assert!(seen.insert(c.id), "duplicate id {}", c.id);
            assert!(c.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{}", c.id);
            assert!(!c.explanation.is_empty() && !c.fix.is_empty(), "{}", c.id);
        }
    }

    #[test]
    fn the_issue_ids_exist() {
        for id in [
            "entrypoint-missing",
            "elf-missing-library",
            "elf-interpreter-missing",
            "elf-arch-mismatch",
            "elf-libc-mismatch",
            "elf-glibc-version",
            "shebang-missing-interpreter",
            "user-unknown",
            "tls-no-ca-bundle",
            "tz-no-zoneinfo",
            "secret-in-layer",
            "waste-package-cache",
            "waste-build-tools",
            "waste-deleted-bytes",
            "binary-upx",
            "binary-unstripped",
            "setuid",
            "world-writable-dir",
            "tmp-missing",
            "runs-as-root",
        ] {
            assert!(check(id).is_some(), "{id}");
        }
        assert_eq!(check("secret-in-layer").unwrap().severity, Severity::Error);
        assert_eq!(check("runs-as-root").unwrap().severity, Severity::Info);
    }

    #[test]
    fn help_lists_every_check() {
        let h = help_table();
        assert_eq!(h.lines().count(), 2 * CHECKS.len());
        assert!(h.contains("tls-no-ca-bundle"));
    }
}
