//! Media types of OCI 1.1 and Docker v2.2, and what pinnace makes of them.
//!
//! Media types are labels, not facts: a layer's real compression is read from its magic
//! bytes (see [`crate::layer::Compression::detect`]). They still decide how a manifest is
//! parsed and which layer form a sink receives.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker v2.2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema1 manifest (unsupported).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema1 signed manifest (unsupported).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (non-distributable) layer.
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// What kind of document a manifest media type announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image manifest (OCI or Docker v2.2).
    Image,
    /// An index or manifest list.
    Index,
    /// Docker schema1 (refused with advice).
    Schema1,
}

/// Classifies a manifest media type; `None` for types that are not manifests.
pub fn manifest_kind(media_type: &str) -> Option<ManifestKind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(ManifestKind::Image),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(ManifestKind::Index),
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Some(ManifestKind::Schema1),
        _ => None,
    }
}

/// Whether a manifest of this media type belongs to the Docker family (its layers and
/// config then use Docker media types too).
pub fn is_docker(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.docker.")
}

/// Whether a layer is foreign / non-distributable (its blob may be absent from archives).
pub fn is_foreign_layer(media_type: &str) -> bool {
    media_type == DOCKER_LAYER_FOREIGN || media_type.contains(".nondistributable.")
}

/// The compression a layer media type claims (`None` when it names none or is unknown).
pub fn claimed_compression(media_type: &str) -> Option<crate::layer::Compression> {
    use crate::layer::Compression;
    if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
        Some(Compression::Gzip)
    } else if media_type.ends_with("+zstd") {
        Some(Compression::Zstd)
    } else if media_type.ends_with(".tar") {
        Some(Compression::None)
    } else {
        None
    }
}

/// The layer media type for a compression, in the OCI or Docker family.
pub fn layer_media_type(compression: crate::layer::Compression, docker: bool) -> &'static str {
    use crate::layer::Compression;
    match (compression, docker) {
        (Compression::None, false) => OCI_LAYER,
        (Compression::Gzip, false) => OCI_LAYER_GZIP,
        (Compression::Zstd, _) => OCI_LAYER_ZSTD,
        (Compression::None, true) => DOCKER_LAYER,
        (Compression::Gzip, true) => DOCKER_LAYER_GZIP,
    }
}
