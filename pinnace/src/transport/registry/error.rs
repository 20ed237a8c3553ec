//! Errors of the registry client: each names the registry, the repository and the object
//! (manifest, blob digest, upload), carries the registry's own error codes
//! (distribution spec "Error Codes") and says what to do next. None ever holds a
//! credential: request URLs and headers are not part of any message.

use std::fmt;
use std::io;
use std::path::PathBuf;

use serde::Deserialize;

/// One entry of a registry's `{"errors": [...]}` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorCode {
    /// `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `DENIED`, `UNAUTHORIZED`, ...
    #[serde(default)]
    pub code: String,
    /// The registry's message.
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{} ({})", self.code, self.message)
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorCode>,
}

/// Parses a registry error body; anything else yields no codes.
pub fn parse_error_codes(body: &[u8]) -> Vec<ErrorCode> {
    serde_json::from_slice::<ErrorBody>(body).map(|b| b.errors).unwrap_or_default()
}

/// Errors talking to a registry, or handling its credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A reference did not parse.
    #[error("image reference {input:?}: {why}")]
    Reference {
        /// The input.
        input: String,
        /// What is wrong.
        why: String,
    },
    /// The registry could not be reached (after retries).
    #[error("registry {registry}: {what}: cannot connect: {why}{hint}")]
    Connect {
        /// `HOST[:PORT]`.
        registry: String,
        /// The operation.
        what: String,
        /// The transport error.
        why: String,
        /// What to try.
        hint: &'static str,
    },
    /// The registry answered with an unexpected status.
    #[error("registry {registry}, repository {repository}: {what}: HTTP {status}{}{hint}", codes_text(.codes))]
    Status {
        /// `HOST[:PORT]`.
        registry: String,
        /// The repository.
        repository: String,
        /// The operation and object (`GET manifest 1.0`, `HEAD blob sha256:...`).
        what: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error codes.
        codes: Vec<ErrorCode>,
        /// What to do next.
        hint: String,
    },
    /// The registry's answer was not what the protocol promises.
    #[error("registry {registry}, repository {repository}: {what}: {why}")]
    Protocol {
        /// `HOST[:PORT]`.
        registry: String,
        /// The repository.
        repository: String,
        /// The operation.
        what: String,
        /// What was wrong.
        why: String,
    },
    /// An upload session broke off and the registry cannot resume it: the blob must be
    /// uploaded again from the start ([`RegistryError::restartable`]).
    #[error("registry {registry}, repository {repository}: the blob upload broke off and the registry cannot resume it: {why}")]
    UploadLost {
        /// `HOST[:PORT]`.
        registry: String,
        /// The repository.
        repository: String,
        /// What failed.
        why: String,
    },
    /// A streamed upload broke off, and the registry kept the session with `offset` bytes:
    /// sending the blob again from its source continues there
    /// ([`RegistryError::restartable`]; the sink keeps the session for that).
    #[error("registry {registry}, repository {repository}: the blob upload broke off after {offset} bytes (the registry kept them): {why}")]
    UploadInterrupted {
        /// `HOST[:PORT]`.
        registry: String,
        /// The repository.
        repository: String,
        /// Bytes the registry holds.
        offset: u64,
        /// What failed.
        why: String,
    },
    /// A bearer token could not be obtained.
    #[error("registry {registry}: token from {realm}: {why}")]
    Token {
        /// `HOST[:PORT]`.
        registry: String,
        /// The token endpoint (without query).
        realm: String,
        /// What happened.
        why: String,
    },
    /// A credentials file or helper failed.
    #[error("credentials: {place}: {why}")]
    Credentials {
        /// The file or `docker-credential-NAME`.
        place: String,
        /// What happened.
        why: String,
    },
    /// TLS material (CA file, cert dir) could not be read.
    #[error("TLS: {path}: {why}")]
    Tls {
        /// The file or directory.
        path: PathBuf,
        /// What happened.
        why: String,
    },
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn codes_text(codes: &[ErrorCode]) -> String {
    if codes.is_empty() {
        return String::new();
    }
    let list: Vec<String> = codes.iter().map(ToString::to_string).collect();
    format!(" {}", list.join(", "))
}

impl RegistryError {
    /// The registry's error codes, when it sent some.
    pub fn codes(&self) -> &[ErrorCode] {
        match self {
            RegistryError::Status { codes, .. } => codes,
            _ => &[],
        }
    }

    /// Whether sending the blob again from its source may succeed (from the start, or
    /// from where an interrupted session stopped).
    pub fn restartable(&self) -> bool {
        matches!(self, RegistryError::UploadLost { .. } | RegistryError::UploadInterrupted { .. })
    }

    /// The HTTP status, for status errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The hint for a status error: what the user can do about it.
pub fn status_hint(registry: &str, status: u16, codes: &[ErrorCode]) -> String {
    let has = |c: &str| codes.iter().any(|e| e.code == c);
    if status == 401 || has("UNAUTHORIZED") {
        format!("; log in with `pinnace login {registry}` (or check the credentials in the auth file)")
    } else if status == 403 || has("DENIED") {
        "; the credentials used have no access to this repository".into()
    } else if has("MANIFEST_UNKNOWN") || has("NAME_UNKNOWN") {
        "; no such image or tag in the registry".into()
    } else if has("BLOB_UNKNOWN") {
        "; the registry does not hold this blob".into()
    } else if status == 429 {
        "; the registry is rate limiting (retries exhausted); try again later".into()
    } else if status >= 500 {
        "; the registry failed (retries exhausted); try again later".into()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_and_renders_them() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        let codes = parse_error_codes(body);
        assert_eq!(codes.len(), 1);
        let e = RegistryError::Status {
            registry: "r:5000".into(),
            repository: "app".into(),
            what: "GET manifest x".into(),
            status: 404,
            hint: status_hint("r:5000", 404, &codes),
            codes,
        };
        let s = e.to_string();
        assert!(s.contains("r:5000") && s.contains("app") && s.contains("MANIFEST_UNKNOWN (manifest unknown)"), "{s}");
        assert!(s.contains("no such image"), "{s}");
        assert!(parse_error_codes(b"<html>").is_empty());
        assert!(status_hint("r", 401, &[]).contains("pinnace login r"));
    }
}
