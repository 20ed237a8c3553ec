//! Secrets: private keys and credentials in any layer, including the lower copies that a
//! later layer deleted (a whiteout) or replaced. Deleting a file in a later layer hides it
//! from the container's filesystem but not from the image: the layer that added it is
//! still pulled, and `tar -x` of it shows the file.
//!
//! Names decide what is captured (up to 64 KiB) and the content confirms, so a public
//! certificate named `server.pem` or an `.npmrc` without a token is not reported:
//!
//! | name | confirmed by |
//! |---|---|
//! | `id_rsa`, `id_dsa`, `id_ecdsa`, `id_ed25519` (and `_sk`) | `PRIVATE KEY` |
//! | `*.pem`, `*.key` | `PRIVATE KEY` |
//! | `.env`, `.env.*` (not `.example`, `.sample`, `.template`, `.dist`) | a `NAME=value` line |
//! | `.aws/credentials` | `aws_secret_access_key` or `aws_access_key_id` |
//! | `.docker/config.json` | an `auths` entry with `auth` or an `identitytoken` |
//! | `.npmrc` | `_authToken`, `_auth` or `_password` |
//! | `.pypirc`, `.netrc` | `password` |
//! | `.git-credentials` | a `scheme://user:secret@host` line |

use super::scan::Snapshot;
use super::{Finding, Severity};

/// Whether the name at `path` (normalised) may hold a secret, so its content is captured.
pub fn candidate(path: &str) -> bool {
    rule(path).is_some()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    SshKey,
    Pem,
    DotEnv,
    Aws,
    Docker,
    Npm,
    Password,
    GitCredentials,
}

fn rule(path: &str) -> Option<Rule> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ssh = ["id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk"];
    Some(if ssh.contains(&name) {
        Rule::SshKey
    } else if name.ends_with(".pem") || name.ends_with(".key") {
        Rule::Pem
    } else if name == ".env"
        || name.strip_prefix(".env.").is_some_and(|s| !["example", "sample", "template", "dist"].contains(&s))
    {
        Rule::DotEnv
    } else if path.ends_with(".aws/credentials") {
        Rule::Aws
    } else if path.ends_with(".docker/config.json") {
        Rule::Docker
    } else if name == ".npmrc" {
        Rule::Npm
    } else if name == ".pypirc" || name == ".netrc" {
        Rule::Password
    } else if name == ".git-credentials" {
        Rule::GitCredentials
    } else {
        return None;
    })
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The kind of secret the file at `path` holds, judged from its content; `None` when the
/// content does not confirm what the name suggests.
pub fn classify(path: &str, data: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(data);
    match rule(path)? {
        Rule::SshKey => contains(data, "PRIVATE KEY").then_some("SSH private key"),
        Rule::Pem => contains(data, "PRIVATE KEY").then_some("PEM private key"),
        Rule::DotEnv => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .any(|l| l.split_once('=').is_some_and(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty()))
            .then_some(".env file with values"),
        Rule::Aws => (contains(data, "aws_secret_access_key") || contains(data, "aws_access_key_id"))
            .then_some("AWS credentials"),
        Rule::Docker => docker_auth(data).then_some("registry credentials"),
        Rule::Npm => ["_authToken", "_auth", "_password"].iter().any(|k| contains(data, k)).then_some("npm token"),
        Rule::Password => contains(data, "password").then_some("password file"),
        Rule::GitCredentials => text
            .lines()
            .any(|l| {
                l.split_once("://").is_some_and(|(_, rest)| {
                    rest.split('@').next().is_some_and(|u| u.contains(':')) && rest.contains('@')
                })
            })
            .then_some("git credentials"),
    }
}

/// A docker `config.json` with a stored login (not only `credsStore`/`credHelpers`).
fn docker_auth(data: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return contains(data, "\"auth\"");
    };
    v.get("auths").and_then(|a| a.as_object()).is_some_and(|auths| {
        auths.values().any(|e| {
            let set = |k: &str| e.get(k).and_then(|x| x.as_str()).is_some_and(|s| !s.is_empty());
            set("auth") || set("identitytoken") || set("password")
        })
    })
}

/// Reports every secret seen in any layer (see the module documentation).
pub fn check(snap: &Snapshot, out: &mut Vec<Finding>) {
    let tree = &snap.tree;
    for hit in &snap.secrets {
        let shown = format!("/{}", hit.path);
        let node = tree.lookup_any(&hit.path);
        let current = node.filter(|&n| tree.is_present(n)).and_then(|n| snap.content_layer(n));
        let f = if current == Some(hit.layer) {
            Finding::new(
                "secret-in-image",
                format!(
                    "{shown} is a {} in the image (layer {}): anyone who pulls the image can read it",
                    hit.kind, hit.layer
                ),
            )
        } else {
            let how = match (node, current) {
                (Some(n), None) => match tree.removed_in(n) {
                    Some(l) => format!("deleted by layer {l}"),
                    None => "deleted by a later layer".to_string(),
                },
                (_, Some(l)) => format!("replaced by layer {l}"),
                _ => "removed later".to_string(),
            };
            Finding::new(
                "secret-in-layer",
                format!(
                    "{shown} ({}) was {how}, but it is still in layer {}: anyone who pulls the image can read it",
                    hit.kind, hit.layer
                ),
            )
        };
        debug_assert!(f.severity >= Severity::Warn);
        out.push(f.at(shown).in_layer(hit.layer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_select_candidates() {
        for p in [
            "root/.ssh/id_rsa",
            "app/.env",
            "app/.env.production",
            "root/.aws/credentials",
            "root/.docker/config.json",
            "home/u/.npmrc",
            "etc/ssl/private/x.key",
            "srv/tls.pem",
            "root/.netrc",
            "root/.git-credentials",
        ] {
            assert!(candidate(p), "{p}");
        }
        for p in ["root/.ssh/id_rsa.pub", "app/.env.example", "app/env", "etc/passwd", "srv/known_hosts"] {
            assert!(!candidate(p), "{p}");
        }
    }

    #[test]
    fn content_confirms_the_name() {
        assert_eq!(classify("root/.ssh/id_ed25519", b"-----BEGIN OPENSSH PRIVATE KEY-----\n"), Some("SSH private key"));
        assert_eq!(classify("srv/tls.pem", b"-----BEGIN CERTIFICATE-----\n"), None);
        assert_eq!(classify("srv/tls.pem", b"-----BEGIN RSA PRIVATE KEY-----\n"), Some("PEM private key"));
        assert_eq!(classify("app/.env", b"# nothing\nEMPTY=\n"), None);
        assert_eq!(classify("app/.env", b"DB_PASSWORD=hunter2\n"), Some(".env file with values"));
        assert_eq!(classify("h/.npmrc", b"registry=https://r.example/\n"), None);
        assert_eq!(classify("h/.npmrc", b"//r.example/:_authToken=abc\n"), Some("npm token"));
        assert_eq!(classify("r/.aws/credentials", b"[default]\naws_secret_access_key = x\n"), Some("AWS credentials"));
        assert_eq!(classify("r/.docker/config.json", br#"{"credsStore":"pass"}"#), None);
        assert_eq!(
            classify("r/.docker/config.json", br#"{"auths":{"r.io":{"auth":"dTpw"}}}"#),
            Some("registry credentials")
        );
        assert_eq!(classify("r/.git-credentials", b"https://u:tok@github.com\n"), Some("git credentials"));
        assert_eq!(classify("r/.git-credentials", b"https://github.com\n"), None);
    }
}
