//! `containers-storage:NAME` (podman) and `docker-daemon:NAME` (Docker Engine), through
//! their own CLIs: `save` to a private temporary archive that the archive transports then
//! read in place, and `load` of an archive the docker-archive sink wrote.
//!
//! Going through the CLI costs one archive on disk, but needs no privileged access to
//! podman's storage or the daemon's socket API, and is exactly what users would type.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::layer::Encoded;
use crate::oci::{Digest, RawManifest};

use super::docker_archive::{DockerArchiveSink, DockerArchiveSource};
use super::oci_archive::OciArchiveSource;
use super::{BlobKind, FinalImage, LayerForm, Sink, Source, TransportError};

/// Which local image store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// podman's containers-storage.
    Podman,
    /// The Docker Engine.
    Docker,
}

impl Daemon {
    fn tool(self) -> &'static str {
        match self {
            Daemon::Podman => "podman",
            Daemon::Docker => "docker",
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            Daemon::Podman => "containers-storage",
            Daemon::Docker => "docker-daemon",
        }
    }
}

fn run(tool: &str, args: &[&str]) -> Result<(), TransportError> {
    let out = Command::new(tool).args(args).stdin(Stdio::null()).output().map_err(|e| TransportError::Tool {
        tool: tool.into(),
        why: format!("cannot run it ({e}); install it, or use an archive transport instead"),
    })?;
    if !out.status.success() {
        return Err(TransportError::Tool {
            tool: format!("{tool} {}", args.join(" ")),
            why: format!("exited with {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(())
}

enum Inner {
    Oci(OciArchiveSource),
    Docker(DockerArchiveSource),
}

/// A daemon image, saved to a temporary archive and read from it.
pub struct DaemonSource {
    name: String,
    inner: Inner,
    _dir: tempfile::TempDir,
}

fn tempdir() -> Result<tempfile::TempDir, TransportError> {
    let base = std::env::var_os("TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new().prefix("pinnace-").tempdir_in(&base).map_err(TransportError::io(base))
}

impl DaemonSource {
    /// Saves `name` from the daemon.
    pub fn open(d: Daemon, name: &str) -> Result<Self, TransportError> {
        let dir = tempdir()?;
        let file = dir.path().join("image.tar");
        let f = file.to_string_lossy().into_owned();
        let inner = match d {
            Daemon::Podman => {
                run("podman", &["image", "save", "--format", "oci-archive", "-o", &f, name])?;
                Inner::Oci(OciArchiveSource::open(&file, None)?)
            }
            Daemon::Docker => {
                run("docker", &["image", "save", "-o", &f, name])?;
                Inner::Docker(DockerArchiveSource::open(&file, None)?)
            }
        };
        Ok(DaemonSource { name: format!("{}:{name}", d.prefix()), inner, _dir: dir })
    }
}

impl Source for DaemonSource {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn root_manifest(&self) -> Result<RawManifest, TransportError> {
        match &self.inner {
            Inner::Oci(s) => s.root_manifest(),
            Inner::Docker(s) => s.root_manifest(),
        }
    }
    fn open_blob(&self, digest: &Digest, size: u64) -> Result<Box<dyn Read + Send + '_>, TransportError> {
        match &self.inner {
            Inner::Oci(s) => s.open_blob(digest, size),
            Inner::Docker(s) => s.open_blob(digest, size),
        }
    }
}

/// A daemon as destination: a docker archive in a temp dir, loaded at commit.
pub struct DaemonSink {
    daemon: Daemon,
    name: String,
    file: PathBuf,
    inner: Box<DockerArchiveSink>,
    _dir: tempfile::TempDir,
}

impl DaemonSink {
    /// Prepares to load an image named `name`.
    pub fn create(d: Daemon, name: &str) -> Result<Self, TransportError> {
        let dir = tempdir()?;
        let file = dir.path().join("image.tar");
        let inner = Box::new(DockerArchiveSink::create(&file, Some(name.to_string()))?);
        Ok(DaemonSink { daemon: d, name: name.to_string(), file, inner, _dir: dir })
    }
}

impl Sink for DaemonSink {
    fn describe(&self) -> String {
        format!("{}:{}", self.daemon.prefix(), self.name)
    }
    fn layer_form(&self) -> LayerForm {
        LayerForm::Uncompressed
    }
    fn has_blob(&mut self, digest: &Digest, size: u64) -> Result<bool, TransportError> {
        self.inner.has_blob(digest, size)
    }
    fn put_blob(
        &mut self,
        kind: BlobKind,
        digest: &Digest,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), TransportError> {
        self.inner.put_blob(kind, digest, size, data)
    }
    fn put_blob_with(
        &mut self,
        produce: &mut dyn FnMut(&mut (dyn std::io::Write + Send)) -> std::io::Result<Encoded>,
    ) -> Result<Encoded, TransportError> {
        self.inner.put_blob_with(produce)
    }
    fn put_manifest(&mut self, image: &FinalImage) -> Result<(), TransportError> {
        self.inner.put_manifest(image)
    }
    fn commit(self: Box<Self>) -> Result<(), TransportError> {
        let DaemonSink { daemon, file, inner, _dir, .. } = *self;
        inner.commit()?;
        run(daemon.tool(), &["load", "-i", &file.to_string_lossy()])
    }
}
