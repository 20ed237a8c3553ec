//! `InRelease`: the archive's signed table of contents.
//!
//! Trust chain: the OpenPGP signature of `InRelease` is checked against a keyring (the
//! Debian archive keyring by default); the verified text lists the SHA256 and size of every
//! index (`main/binary-amd64/Packages.xz`, ...); each index lists the SHA256 of every
//! `.deb`. Only the text the signature covers is parsed: anything around the armour is
//! ignored, so nothing unsigned can add or change an entry.
//!
//! The signature is verified with `pgp` (rPGP, pure Rust) against the primary key and
//! every subkey of every certificate in the keyring. Key expiry is not enforced (the
//! keyring is the trust anchor, as with apt's `Signed-By`); `Valid-Until` is not checked.

use std::collections::HashMap;
use std::path::Path;

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};

use super::control::stanzas;
use super::DebError;

/// The Debian archive keyring that `debian-archive-keyring` installs.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Checksum and size of one file listed in `InRelease`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// SHA256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A verified (or, with `--insecure-skip-signature`, unverified) `InRelease`.
#[derive(Debug, Clone)]
pub struct Release {
    /// `MIRROR/dists/SUITE/`.
    pub base_url: String,
    /// `Codename:`, else `Suite:`, as the file says (e.g. `bookworm`).
    pub suite: String,
    /// `Suite:` (e.g. `oldstable`, `stable-updates`, `unstable`), or "".
    pub suite_class: String,
    /// Files listed under `SHA256:`, by path relative to `base_url`.
    pub entries: HashMap<String, Entry>,
}

impl Release {
    /// The entry for `path`, or an error naming it.
    pub fn entry(&self, path: &str) -> Result<&Entry, DebError> {
        self.entries
            .get(path)
            .ok_or_else(|| DebError::NotInRelease { file: path.into(), release: self.url("InRelease") })
    }

    /// The URL of `path` below `dists/SUITE/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Parses the (already verified) text of a Release file.
    pub fn parse(text: &str, base_url: &str) -> Result<Release, DebError> {
        let url = format!("{base_url}InRelease");
        let st = stanzas(text).next().ok_or_else(|| DebError::index(&url, "empty"))?.map_err(|e| DebError::Index {
            file: url.clone(),
            line: e.line,
            why: e.why.into(),
        })?;
        let suite = st.get("Codename").or(st.get("Suite")).unwrap_or("").to_string();
        let suite_class = st.get("Suite").unwrap_or("").to_string();
        let mut entries = HashMap::new();
        for line in st.get("SHA256").ok_or_else(|| DebError::index(&url, "no SHA256 field"))?.lines() {
            let mut w = line.split_whitespace();
            let (Some(sha), Some(size), Some(name), None) = (w.next(), w.next(), w.next(), w.next()) else {
                continue;
            };
            let size = size.parse().map_err(|_| DebError::index(&url, &format!("bad size in {line:?}")))?;
            entries.insert(name.to_string(), Entry { sha256: sha.to_ascii_lowercase(), size });
        }
        Ok(Release { base_url: base_url.to_string(), suite, suite_class, entries })
    }

    /// Whether this is a released distribution (`stable`, `oldstable`, `oldoldstable`,
    /// ...), which Debian updates through `-updates` and `-security` suites.
    pub fn is_stable_release(&self) -> bool {
        self.suite_class.trim_start_matches("old") == "stable"
    }
}

/// Reads the certificates of a keyring file (binary `.gpg` or ASCII-armoured `.asc`).
pub fn read_keyring(path: &Path) -> Result<Vec<SignedPublicKey>, DebError> {
    let bytes = std::fs::read(path).map_err(|source| DebError::Io { path: path.to_path_buf(), source })?;
    let bad = |why: String| DebError::Signature { file: path.display().to_string(), why };
    let keys: Vec<SignedPublicKey> = if bytes.starts_with(b"-----BEGIN") {
        SignedPublicKey::from_armor_many(&bytes[..]).map_err(|e| bad(e.to_string()))?.0.filter_map(Result::ok).collect()
    } else {
        SignedPublicKey::from_bytes_many(&bytes[..]).map_err(|e| bad(e.to_string()))?.filter_map(Result::ok).collect()
    };
    if keys.is_empty() {
        return Err(bad("no OpenPGP certificates in the keyring".into()));
    }
    Ok(keys)
}

/// Verifies a clearsigned `InRelease` against `keys` and returns the signed text.
pub fn verify(inrelease: &[u8], keys: &[SignedPublicKey], url: &str) -> Result<String, DebError> {
    let bad = |why: String| DebError::Signature { file: url.to_string(), why };
    let text = std::str::from_utf8(inrelease).map_err(|_| bad("not UTF-8 text".into()))?;
    let (msg, _) =
        CleartextSignedMessage::from_string(text).map_err(|e| bad(format!("not a clearsigned file: {e}")))?;
    for key in keys {
        if msg.verify(&key.primary_key).is_ok() || key.public_subkeys.iter().any(|s| msg.verify(&s.key).is_ok()) {
            return Ok(msg.signed_text());
        }
    }
    Err(bad(format!(
        "no signature verifies against the keyring ({} certificates); the file was altered or is signed by an unknown key",
        keys.len()
    )))
}

/// The text of `InRelease` without checking anything (`--insecure-skip-signature`).
pub fn unverified_text(inrelease: &[u8]) -> String {
    let text = String::from_utf8_lossy(inrelease);
    match CleartextSignedMessage::from_string(&text) {
        Ok((m, _)) => m.signed_text(),
        Err(_) => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sha256_entries() {
        let text = "Origin: Debian\nCodename: bookworm\nMD5Sum:\n 00 1 x\nSHA256:\n \
aa11 123 main/binary-amd64/Packages.xz\n BB22 456 main/binary-amd64/Packages\n";
        let r = Release::parse(text, "http://m/debian/dists/bookworm/").unwrap();
        assert_eq!(r.suite, "bookworm");
        assert!(!r.is_stable_release(), "no Suite field");
        for (class, stable) in [("oldstable", true), ("stable", true), ("testing", false), ("stable-updates", false)] {
            let r = Release::parse(&format!("Suite: {class}\n{text}"), "http://m/").unwrap();
            assert_eq!(r.is_stable_release(), stable, "{class}");
        }
        assert_eq!(r.entry("main/binary-amd64/Packages").unwrap().sha256, "bb22");
        assert_eq!(r.entry("main/binary-amd64/Packages.xz").unwrap().size, 123);
        assert!(matches!(r.entry("x"), Err(DebError::NotInRelease { .. })));
        assert_eq!(r.url("InRelease"), "http://m/debian/dists/bookworm/InRelease");
    }

    #[test]
    fn garbage_is_not_a_signature() {
        let e = verify(b"Origin: Debian\n", &[], "u").unwrap_err();
        assert!(matches!(e, DebError::Signature { .. }));
        assert_eq!(unverified_text(b"A: b\n"), "A: b\n");
    }

    /// The host's archive keyring reads (when installed) and a host InRelease copy from
    /// apt's lists, if any, verifies; one flipped byte in the signed text does not.
    #[test]
    fn host_keyring_and_apt_lists() {
        let Ok(keys) = read_keyring(Path::new(DEFAULT_KEYRING)) else { return };
        assert!(!keys.is_empty());
        let Some(f) = std::fs::read_dir("/var/lib/apt/lists").ok().and_then(|d| {
            d.filter_map(Result::ok).map(|e| e.path()).find(|p| p.to_string_lossy().ends_with("_InRelease"))
        }) else {
            return;
        };
        let bytes = std::fs::read(&f).unwrap();
        let text = verify(&bytes, &keys, "host").unwrap();
        assert!(text.contains("SHA256:"));
        let s = String::from_utf8(bytes).unwrap().replacen("Origin: Debian", "Origin: Debiam", 1);
        assert!(verify(s.as_bytes(), &keys, "host").is_err());
    }
}
