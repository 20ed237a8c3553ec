//! The small files minimal images forget, and when `auto` adds each.
//!
//! | extra | `auto` adds it when | content |
//! |---|---|---|
//! | `passwd` | always, unless building on a base image | `/etc/passwd`, `/etc/group` with root 0, nobody 65534, nonroot 65532; `/home/nonroot` (owned 65532), `/root` |
//! | `tmp` | always, unless building on a base image | `/tmp`, mode 1777 |
//! | `certs` | a binary or one of its libraries does TLS (links libssl, libgnutls, libnss3…; Go with `crypto/tls`; Rust with rustls/openssl), see `ElfInfo::tls` | `/etc/ssl/certs/ca-certificates.crt` from `--certs FILE`, else the root's bundle |
//! | `zoneinfo` | a binary reads time zone data (`ElfInfo::zoneinfo`; Go binaries embedding `time/tzdata` excepted) or `TZ` is set | `/usr/share/zoneinfo` of the root, without the `right/` leap-second copies |
//! | `nsswitch` | NSS modules are in the closure (the binary resolves names or users) | `/etc/nsswitch.conf`: files, then dns for hosts |
//!
//! `--with NAME` forces an extra on, `--without NAME` off (it wins over `--with`).

use std::path::Path;
use std::sync::Arc;

use crate::layer::{FileSource, LayerBuilder, LayerEntrySpec, SpecKind};

use super::BuildError;

/// The extras pinnace knows.
pub const EXTRAS: [&str; 5] = ["passwd", "tmp", "certs", "zoneinfo", "nsswitch"];

/// What the binaries need, merged over all of them and their closures.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// Evidence of TLS.
    pub tls: Option<String>,
    /// Evidence of time zone use.
    pub zoneinfo: Option<String>,
    /// NSS modules are in the closure.
    pub nss: bool,
}

/// Which extras to add and why.
pub fn decide(
    needs: &Needs,
    with: &[String],
    without: &[String],
    has_base: bool,
    tz_env: bool,
) -> Result<Vec<(&'static str, String)>, BuildError> {
    for n in with.iter().chain(without) {
        if !EXTRAS.contains(&n.as_str()) {
            return Err(BuildError::Spec(format!("unknown extra {n:?}: choose from {}", EXTRAS.join(", "))));
        }
    }
    let mut out = Vec::new();
    for name in EXTRAS {
        let forced_on = with.iter().any(|w| w == name);
        if without.iter().any(|w| w == name) {
            continue;
        }
        let auto: Option<String> = match name {
            "passwd" | "tmp" if !has_base => Some("every image needs it".into()),
            "certs" => needs.tls.clone().map(|e| format!("TLS: {e}")),
            "zoneinfo" => needs
                .zoneinfo
                .clone()
                .map(|e| format!("time zones: {e}"))
                .or_else(|| tz_env.then(|| "TZ is set".into())),
            "nsswitch" if needs.nss => Some("NSS modules are in the closure".into()),
            _ => None,
        };
        match (forced_on, auto) {
            (true, _) => out.push((name, "--with".to_string())),
            (false, Some(why)) => out.push((name, why)),
            _ => {}
        }
    }
    Ok(out)
}

fn bytes_entry(path: &str, content: &[u8], mode: u32) -> LayerEntrySpec {
    LayerEntrySpec {
        path: path.into(),
        kind: SpecKind::File(FileSource::Bytes(Arc::from(content))),
        mode,
        uid: 0,
        gid: 0,
    }
}

fn dir_entry(path: &str, mode: u32, owner: u32) -> LayerEntrySpec {
    LayerEntrySpec { path: path.into(), kind: SpecKind::Dir, mode, uid: owner, gid: owner }
}

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n";
const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n";

/// Adds one extra's files to `layer`, reading what it needs from `root`.
pub fn add(name: &str, layer: &mut LayerBuilder, root: &Path, certs: Option<&Path>) -> Result<(), BuildError> {
    match name {
        "passwd" => {
            layer.add(bytes_entry("etc/passwd", PASSWD.as_bytes(), 0o644))?;
            layer.add(bytes_entry("etc/group", GROUP.as_bytes(), 0o644))?;
            layer.add(dir_entry("home/nonroot", 0o700, 65532))?;
            layer.add(dir_entry("root", 0o700, 0))?;
        }
        "tmp" => layer.add(dir_entry("tmp", 0o1777, 0))?,
        "nsswitch" => layer.add(bytes_entry("etc/nsswitch.conf", NSSWITCH.as_bytes(), 0o644))?,
        "certs" => {
            let src = match certs {
                Some(p) => p.to_path_buf(),
                None => root.join("etc/ssl/certs/ca-certificates.crt"),
            };
            let data = std::fs::read(&src).map_err(|e| BuildError::Extra {
                extra: "certs",
                why: format!(
                    "{}: {e}; install ca-certificates or pass --certs FILE (or --without certs)",
                    src.display()
                ),
            })?;
            if !String::from_utf8_lossy(&data).contains("-----BEGIN CERTIFICATE-----") {
                return Err(BuildError::Extra {
                    extra: "certs",
                    why: format!("{} holds no PEM certificate", src.display()),
                });
            }
            layer.add(bytes_entry("etc/ssl/certs/ca-certificates.crt", &data, 0o644))?;
        }
        "zoneinfo" => {
            let src = root.join("usr/share/zoneinfo");
            if !src.is_dir() {
                return Err(BuildError::Extra {
                    extra: "zoneinfo",
                    why: format!("{} does not exist; install tzdata or use --without zoneinfo", src.display()),
                });
            }
            super::plan::add_tree(layer, &src, "usr/share/zoneinfo", None, None, &|rel: &str| {
                rel == "right" || rel.starts_with("right/")
            })?;
        }
        other => return Err(BuildError::Spec(format!("unknown extra {other:?}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_rules() {
        let none = Needs::default();
        let names = |v: Vec<(&'static str, String)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(decide(&none, &[], &[], false, false).unwrap()), vec!["passwd", "tmp"]);
        assert!(names(decide(&none, &[], &[], true, false).unwrap()).is_empty());
        let tls = Needs { tls: Some("links libssl.so.3".into()), ..Default::default() };
        assert!(names(decide(&tls, &[], &[], false, false).unwrap()).contains(&"certs"));
        assert!(!names(decide(&tls, &[], &["certs".into()], false, false).unwrap()).contains(&"certs"));
        assert!(names(decide(&none, &[], &[], false, true).unwrap()).contains(&"zoneinfo"));
        assert!(decide(&none, &["cert".into()], &[], false, false).is_err());
    }
}
