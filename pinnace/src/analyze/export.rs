//! dive's `--json` export schema (`dive/runtime/export`), so tools that read dive's
//! JSON keep working with `pinnace inspect --format dive-json`.
//!
//! Equal to dive's export apart from these documented fields:
//! - `layer[].id`: dive uses the first component of the layer's path inside a docker
//!   archive (e.g. `blobs` for `blobs/sha256/...`, or the layer directory name); pinnace
//!   reads any transport, so it gives the layer's diff_id hex.
//! - `layer[].digestId`: dive takes a history `id` docker archives do not have (so it
//!   is empty); pinnace gives the layer blob digest.
//! - `image.fileReference`: paths of equal `sizeBytes` may be ordered differently (dive
//!   sorts with Go's unstable sort).

use serde::Serialize;

use super::dive::DiveFileInfo;
use super::inspect::Inspection;

/// dive's export document.
#[derive(Debug, Serialize)]
pub struct DiveExport {
    /// Layers, bottom first.
    pub layer: Vec<DiveLayer>,
    /// Image figures.
    pub image: DiveImage,
}

/// One layer in dive's export.
#[derive(Debug, Serialize)]
pub struct DiveLayer {
    /// Index.
    pub index: usize,
    /// Layer id (see the module docs).
    pub id: String,
    /// Digest (see the module docs).
    #[serde(rename = "digestId")]
    pub digest_id: String,
    /// Sum of tar header sizes.
    #[serde(rename = "sizeBytes")]
    pub size_bytes: u64,
    /// `created_by` without a leading `/bin/sh -c ` (as dive shows it).
    pub command: String,
    /// Every node of the layer's tree, children first.
    #[serde(rename = "fileList")]
    pub file_list: Vec<DiveFileInfo>,
}

/// Image figures in dive's export.
#[derive(Debug, Serialize)]
pub struct DiveImage {
    /// Sum of layer sizes.
    #[serde(rename = "sizeBytes")]
    pub size_bytes: u64,
    /// Wasted bytes.
    #[serde(rename = "inefficientBytes")]
    pub inefficient_bytes: u64,
    /// Efficiency.
    #[serde(rename = "efficiencyScore")]
    pub efficiency_score: f64,
    /// Inefficient paths, largest first.
    #[serde(rename = "fileReference")]
    pub file_reference: Vec<DiveFileReference>,
}

/// One inefficient path.
#[derive(Debug, Serialize)]
pub struct DiveFileReference {
    /// Layers it appears in.
    pub count: u32,
    /// Cumulative size.
    #[serde(rename = "sizeBytes")]
    pub size_bytes: u64,
    /// Path.
    pub file: String,
}

/// Builds dive's export from an inspection made with `dive_file_lists`.
pub fn dive_export(i: &Inspection) -> DiveExport {
    let layer = i
        .layers
        .iter()
        .map(|l| DiveLayer {
            index: l.index,
            id: l.diff_id.hex(),
            digest_id: l.digest.to_string(),
            size_bytes: l.tar_size,
            command: l.created_by.as_deref().map_or("(missing)", |c| c.strip_prefix("/bin/sh -c ").unwrap_or(c)).into(),
            file_list: i.dive_file_lists.get(l.index).cloned().unwrap_or_default(),
        })
        .collect();
    DiveExport {
        layer,
        image: DiveImage {
            size_bytes: i.dive.size_bytes,
            inefficient_bytes: i.dive.wasted_bytes,
            efficiency_score: i.dive.efficiency,
            file_reference: i
                .dive
                .inefficiencies
                .iter()
                .map(|f| DiveFileReference {
                    count: f.count,
                    size_bytes: f.cumulative_size as u64,
                    file: f.path.clone(),
                })
                .collect(),
        },
    }
}
