//! `/var/lib/dpkg/status.d/PACKAGE`: what dpkg would have recorded, so vulnerability
//! scanners (Trivy, Grype, Syft) see the packages, as in distroless images.
//!
//! Each file is one stanza in the format of `/var/lib/dpkg/status`: the package's own
//! `control` file with `Status: install ok installed` added and the fields in dpkg's
//! order (`lib/dpkg/parse.c`, `fieldinfos`), fields dpkg does not know (Homepage,
//! Built-Using, ...) after them in control-file order. `Conffiles` is left out (dpkg
//! fills it with MD5 sums at unpack time; scanners do not use it).

use super::control::{stanzas, write_stanza};
use super::DebError;

/// dpkg's field order for status entries.
const ORDER: [&str; 26] = [
    "Package",
    "Essential",
    "Protected",
    "Status",
    "Priority",
    "Section",
    "Installed-Size",
    "Origin",
    "Maintainer",
    "Bugs",
    "Architecture",
    "Multi-Arch",
    "Source",
    "Version",
    "Config-Version",
    "Replaces",
    "Provides",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Breaks",
    "Conflicts",
    "Enhances",
    "Conffiles",
    "Description",
];

/// The status stanza for a package from its `control` file (`file` names it in errors).
pub fn status_entry(control: &str, file: &str) -> Result<String, DebError> {
    let st = stanzas(control)
        .next()
        .ok_or_else(|| DebError::Deb { file: file.into(), why: "empty control file".into() })?
        .map_err(|e| DebError::Deb { file: file.into(), why: format!("control line {}: {}", e.line, e.why) })?;
    let mut fields: Vec<(&str, &str)> = Vec::new();
    for name in ORDER {
        if name == "Status" {
            fields.push(("Status", "install ok installed"));
        } else if let Some(v) = st.get(name) {
            fields.push((name, v));
        }
    }
    for f in &st.fields {
        if !ORDER.iter().any(|o| o.eq_ignore_ascii_case(f.name)) {
            fields.push((f.name, f.value));
        }
    }
    let mut out = String::with_capacity(control.len() + 32);
    write_stanza(&mut out, &fields);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_order_with_status() {
        let control = "Package: netbase\nVersion: 6.4\nArchitecture: all\nMaintainer: M <m@x>\n\
Installed-Size: 41\nHomepage: https://x\nMulti-Arch: foreign\nSection: admin\nPriority: important\n\
Description: Basic TCP/IP networking system\n This package provides\n .\n more\n";
        let s = status_entry(control, "netbase.deb").unwrap();
        assert_eq!(
            s,
            "Package: netbase\nStatus: install ok installed\nPriority: important\nSection: admin\n\
Installed-Size: 41\nMaintainer: M <m@x>\nArchitecture: all\nMulti-Arch: foreign\nVersion: 6.4\n\
Description: Basic TCP/IP networking system\n This package provides\n .\n more\nHomepage: https://x\n"
        );
        assert!(status_entry("", "x").is_err());
    }
}
