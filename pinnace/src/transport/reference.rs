//! Image references in skopeo's transport syntax.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::TransportError;

/// Where an image lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `oci:DIR[:TAG]`: an OCI image layout directory.
    Oci {
        /// The layout directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` to select or write.
        tag: Option<String>,
    },
    /// `oci-archive:FILE[:TAG]`: a tar of an OCI image layout.
    OciArchive {
        /// The archive.
        file: PathBuf,
        /// The ref name.
        tag: Option<String>,
    },
    /// `docker-archive:FILE[:NAME:TAG]`: what `docker save` writes.
    DockerArchive {
        /// The archive.
        file: PathBuf,
        /// The repo tag to select or write (e.g. `localhost/app:1`).
        name: Option<String>,
    },
    /// `containers-storage:NAME`: podman's local store.
    ContainersStorage {
        /// The image name.
        name: String,
    },
    /// `docker-daemon:NAME`: the Docker Engine's image store.
    DockerDaemon {
        /// The image name.
        name: String,
    },
    /// `docker://HOST/REPO:TAG` or a bare `HOST/REPO:TAG`: a registry.
    Registry {
        /// The reference after `docker://`.
        reference: String,
    },
}

const FORMS: &str = "use oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], containers-storage:NAME, docker-daemon:NAME or docker://HOST/REPO:TAG";

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl FromStr for ImageRef {
    type Err = TransportError;
    fn from_str(s: &str) -> Result<ImageRef, TransportError> {
        let bad = |why: &str| TransportError::BadReference { input: s.to_string(), why: why.to_string() };
        let path_and = |rest: &str| -> Result<(PathBuf, Option<String>), TransportError> {
            let (p, t) = match rest.split_once(':') {
                Some((p, t)) => (p, nonempty(t)),
                None => (rest, None),
            };
            if p.is_empty() {
                return Err(bad(&format!("the path is empty; {FORMS}")));
            }
            Ok((PathBuf::from(p), t))
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = path_and(rest)?;
            return Ok(ImageRef::Oci { dir, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = path_and(rest)?;
            return Ok(ImageRef::OciArchive { file, tag });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, name) = path_and(rest)?;
            return Ok(ImageRef::DockerArchive { file, name });
        }
        for (prefix, podman) in [("containers-storage:", true), ("docker-daemon:", false)] {
            if let Some(rest) = s.strip_prefix(prefix) {
                let name = nonempty(rest).ok_or_else(|| bad(&format!("the image name is empty; {FORMS}")))?;
                return Ok(if podman { ImageRef::ContainersStorage { name } } else { ImageRef::DockerDaemon { name } });
            }
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            let reference = nonempty(rest).ok_or_else(|| bad(&format!("the reference is empty; {FORMS}")))?;
            return Ok(ImageRef::Registry { reference });
        }
        // A bare HOST/REPO:TAG means a registry; anything else with a scheme-like prefix
        // is an unknown transport.
        match s.split_once(':') {
            Some((t, _)) if !t.contains('/') && !t.contains('.') && !t.is_empty() && !s.contains('/') => {
                Err(bad(&format!("unknown transport {t:?}; {FORMS}")))
            }
            _ if s.is_empty() => Err(bad(FORMS)),
            _ if s.contains('/') => Ok(ImageRef::Registry { reference: s.to_string() }),
            _ => Err(bad(&format!("no transport given; {FORMS}"))),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with = |f: &mut fmt::Formatter<'_>, t: &str, p: &PathBuf, tag: &Option<String>| {
            write!(f, "{t}:{}", p.display())?;
            if let Some(tag) = tag {
                write!(f, ":{tag}")?;
            }
            Ok(())
        };
        match self {
            ImageRef::Oci { dir, tag } => with(f, "oci", dir, tag),
            ImageRef::OciArchive { file, tag } => with(f, "oci-archive", file, tag),
            ImageRef::DockerArchive { file, name } => with(f, "docker-archive", file, name),
            ImageRef::ContainersStorage { name } => write!(f, "containers-storage:{name}"),
            ImageRef::DockerDaemon { name } => write!(f, "docker-daemon:{name}"),
            ImageRef::Registry { reference } => write!(f, "docker://{reference}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_skopeo_syntax() {
        let r: ImageRef = "oci:out/app:1.0".parse().unwrap();
        assert_eq!(r, ImageRef::Oci { dir: "out/app".into(), tag: Some("1.0".into()) });
        let r: ImageRef = "docker-archive:app.tar:localhost/app:1".parse().unwrap();
        assert_eq!(r, ImageRef::DockerArchive { file: "app.tar".into(), name: Some("localhost/app:1".into()) });
        assert_eq!(r.to_string(), "docker-archive:app.tar:localhost/app:1");
        let r: ImageRef = "oci-archive:x.tar".parse().unwrap();
        assert_eq!(r, ImageRef::OciArchive { file: "x.tar".into(), tag: None });
        let r: ImageRef = "containers-storage:localhost/app:1".parse().unwrap();
        assert_eq!(r, ImageRef::ContainersStorage { name: "localhost/app:1".into() });
        let r: ImageRef = "localhost:5000/app:1".parse().unwrap();
        assert_eq!(r, ImageRef::Registry { reference: "localhost:5000/app:1".into() });
        for bad in ["", "oci:", "oci-archive::tag", "ftp:thing", "containers-storage:", "plainname"] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad:?}");
        }
    }
}
