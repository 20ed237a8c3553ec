//! Presets: distroless's Debian images as package lists, and what every package image
//! leaves out.
//!
//! | preset | packages asked for (their dependencies are added) | distroless image |
//! |---|---|---|
//! | `static` | base-files, netbase, tzdata, ca-certificates | `static-debian12` |
//! | `base` | static + libc6, libssl3 | `base-debian12` |
//! | `cc` | base + libgcc-s1, libgomp1, libstdc++6 | `cc-debian12` |
//! | `python3` | cc + python3-minimal, libpython3-stdlib (ssl, json, sqlite3, ...) | `python3-debian12` |
//! | `java17` | base + openjdk-17-jre-headless | `java17-debian12` |
//!
//! [`DEFAULT_EXCLUDE`] is left out of every package image (presets and `--deb` alike):
//! tools that maintainer scripts or interactive use need but a runtime image does not.
//! A package asked for by name with `--deb` is kept even when listed here, and
//! `--exclude` adds names. (`awk` is what `base-files` pre-depends on for its postinst.)

/// The preset names.
pub const PRESETS: [&str; 5] = ["static", "base", "cc", "python3", "java17"];

/// Packages left out of images unless asked for by name.
pub const DEFAULT_EXCLUDE: [&str; 23] = [
    "adduser",
    "awk",
    "bash",
    "coreutils",
    "dash",
    "debconf",
    "debconf-2.0",
    "debianutils",
    "dpkg",
    "findutils",
    "grep",
    "gzip",
    "init-system-helpers",
    "install-info",
    "login",
    "lsb-base",
    "openssl",
    "passwd",
    "perl-base",
    "sed",
    "sensible-utils",
    "tar",
    "ucf",
];

/// The packages a preset asks for, or `None` for an unknown name.
pub fn packages(preset: &str) -> Option<Vec<&'static str>> {
    let stat = ["base-files", "netbase", "tzdata", "ca-certificates"];
    let base = [&stat[..], &["libc6", "libssl3"]].concat();
    let cc = [&base[..], &["libgcc-s1", "libgomp1", "libstdc++6"]].concat();
    Some(match preset {
        "static" => stat.to_vec(),
        "base" => base,
        "cc" => cc.clone(),
        "python3" => [&cc[..], &["python3-minimal", "libpython3-stdlib"]].concat(),
        "java17" => [&base[..], &["openjdk-17-jre-headless"]].concat(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_nest() {
        for p in PRESETS {
            assert!(packages(p).unwrap().contains(&"base-files"), "{p}");
        }
        assert!(packages("python3").unwrap().contains(&"libstdc++6"));
        assert!(packages("alpine").is_none());
        let mut sorted = DEFAULT_EXCLUDE.to_vec();
        sorted.sort();
        assert_eq!(sorted, DEFAULT_EXCLUDE);
    }
}
