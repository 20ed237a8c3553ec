//! Analyses of images: what is in them ([`inspect`]), dive's figures ([`dive`]), CI gates
//! ([`ci`]) and dive's JSON export ([`export`]).

pub mod ci;
pub mod dive;
pub mod doctor;
pub mod export;
pub mod inspect;

use crate::layer::LayerError;
use crate::oci::Digest;
use crate::transport::TransportError;

/// Errors of the analyses.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// A layer could not be opened.
    #[error("layer {index} ({digest}): {source}")]
    LayerOpen {
        /// Layer index, bottom first.
        index: usize,
        /// Blob digest.
        digest: Digest,
        /// The problem (boxed: transport errors are large).
        source: Box<TransportError>,
    },
    /// A layer could not be read: truncated, corrupt, or failing verification.
    #[error("layer {index} ({digest}): {source}")]
    Layer {
        /// Layer index, bottom first.
        index: usize,
        /// Blob digest.
        digest: Digest,
        /// The problem, with the offset in the tar stream where known.
        source: LayerError,
    },
    /// A layer's uncompressed content does not match the config's diff_id.
    #[error("layer {index} ({digest}) does not match the config: its diff_id should be {diff_id} but its content hashes to {actual}; the image is damaged or was assembled wrongly")]
    DiffIdMismatch {
        /// Layer index.
        index: usize,
        /// Blob digest.
        digest: Digest,
        /// The config's diff_id.
        diff_id: Digest,
        /// What the uncompressed layer hashes to.
        actual: Digest,
    },
    /// CI rules are misconfigured (bad value, unknown key, unreadable file).
    #[error("CI configuration: {0}")]
    CiConfig(String),
}
