//! pinnace: the smallest container image that still runs an application, and the truth
//! about any image.
//!
//! The library is organised by concept (see `DESIGN.md` in the project's shared notes):
//!
//! - [`oci`]: digests, media types, descriptors, manifests, indexes and configs.
//! - [`blob`]: verified blob streams and atomic content-addressed writes.
//! - [`layer`]: the one deterministic layer writer, the one streaming layer reader, and
//!   compression (gzip as one member per fixed 1 MiB block, compressed in parallel; zstd; none).
//! - [`transport`]: image references in skopeo's syntax, and one reader/writer pair per
//!   transport (OCI layout, OCI archive, docker archive, podman and docker daemons).
//! - [`copy`](mod@copy): the one generic copy from any source to any sink.
//! - [`build`]: `pinnace build`, from binaries and files to the smallest image that runs.
//! - [`fs`]: FsTree, an image's filesystem with each path's layer history.
//! - [`analyze`]: inspect (dive-compatible figures, reclaimable bytes, duplicates), CI gates.
//! - [`elf`]: the shared-library closure of a binary, resolved the way ld.so does.
//! - [`deb`]: Debian packages as a source: verified archive access, resolver, extraction.
//!
//! ```no_run
//! use pinnace::transport::ImageRef;
//! let src: ImageRef = "docker-archive:app.tar".parse()?;
//! let dst: ImageRef = "oci:out/app:1.0".parse()?;
//! let report = pinnace::copy::copy(&src, &dst, &pinnace::copy::CopyOptions::default())?;
//! println!("{}", report.manifest_digest);
//! # Ok::<(), pinnace::Error>(())
//! ```

pub mod analyze;
pub mod blob;
pub mod build;
pub mod copy;
pub mod deb;
pub mod elf;
pub mod error;
pub mod fs;
pub mod layer;
pub mod oci;
pub mod progress;
pub mod slim;
pub mod transport;

pub use error::{Error, Result};
