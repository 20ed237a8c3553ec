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
//! What each preset's image holds beyond the packages' own files is what their maintainer
//! scripts would have made ([`super::postinst`]): every preset has the CA bundle
//! `/etc/ssl/certs/ca-certificates.crt` and `/var/lib/dpkg/status.d/*`. `java17` in
//! detail (bookworm, 62 packages, about 240 MiB uncompressed):
//! - the headless JRE in `/usr/lib/jvm/java-17-openjdk-amd64` (`java`, `keytool`,
//!   `rmiregistry`, `jpackage`), with `/usr/bin/java` and the other tools linked to it as
//!   `update-alternatives` would have;
//! - `/etc/ssl/certs/java/cacerts`, the JDK's default trust store (its
//!   `lib/security/cacerts` links there): a JKS keystore, password `changeit`, one
//!   `debian:NAME.pem` entry per certificate of the CA bundle, as `ca-certificates-java`
//!   makes it;
//! - the JRE's libraries: libc6, zlib, libstdc++6, libnss3, libcups2 (and Avahi, D-Bus,
//!   GnuTLS, Kerberos through it), fontconfig with fonts-dejavu-core, freetype, harfbuzz,
//!   lcms2, libjpeg, libpng, libasound2, libpcsclite. Not `util-linux`, which
//!   openjdk-17-jre-headless depends on: it is an Essential tool package like coreutils
//!   (11 packages, 6 MiB with its libraries), and the JRE runs without it (tested by
//!   `tests/it/deb.rs`); `--deb util-linux` puts it back.
//!
//! [`DEFAULT_EXCLUDE`] is left out of every package image (presets and `--deb` alike):
//! tools that maintainer scripts or interactive use need but a runtime image does not.
//! A package asked for by name with `--deb` is kept even when listed here, and
//! `--exclude` adds names. (`awk` is what `base-files` pre-depends on for its postinst.)

/// The preset names.
pub const PRESETS: [&str; 5] = ["static", "base", "cc", "python3", "java17"];

/// Packages left out of images unless asked for by name.
pub const DEFAULT_EXCLUDE: [&str; 24] = [
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
    "util-linux",
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
