//! The crate's error: one enum wrapping each module's own.

use crate::analyze::AnalyzeError;
use crate::layer::{LayerError, WriterError};
use crate::oci::OciError;
use crate::transport::TransportError;

/// Any error from the pinnace library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Image metadata.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// Transports and copies.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Reading a layer.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// Writing a layer.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// Analysing an image (inspect, CI gates).
    #[error(transparent)]
    Analyze(#[from] AnalyzeError),
    /// Doctor: reading the image, or running it for `--run`.
    #[error(transparent)]
    Doctor(#[from] crate::analyze::doctor::DoctorError),
    /// Debian packages (archive, signatures, resolution, extraction).
    #[error(transparent)]
    Deb(#[from] crate::deb::DebError),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
