//! `pinnace copy SRC DST`.

use anyhow::Context;
use clap::Args;

use pinnace::copy::{copy, CopyOptions, CopyReport, LayerAction, DEFAULT_JOBS};
use pinnace::layer::{Compression, EncoderOptions};
use pinnace::oci::Platform;
use pinnace::transport::registry::RegistryOptions;
use pinnace::transport::ImageRef;

use super::registry::CredsArg;

const AFTER: &str = "\
References (skopeo's syntax):
  oci:DIR[:TAG]                  OCI image layout directory (adding a tag keeps the others)
  oci-archive:FILE[:TAG]         tar of an OCI image layout
  docker-archive:FILE[:NAME:TAG] what docker save / podman save write; docker load reads it
  containers-storage:NAME        podman's local images (through the podman CLI)
  docker-daemon:NAME             the Docker Engine's images (through the docker CLI)
  docker://HOST[:PORT]/REPO[:TAG|@DIGEST]  a registry (a bare HOST/REPO:TAG too); docker.io
                                 when HOST is left out; --tls-verify=false for plain HTTP

What stays the same:
  The config (image ID) and every layer's diff_id are identical across every conversion.
  The manifest digest is kept between oci: and oci-archive: (layers copied byte for byte).
  It cannot be kept into or out of docker-archive: (and the daemons): those store
  uncompressed layers and no manifest, so layers are decompressed on the way in and
  gzip-compressed (deterministically: same input, same digest) on the way out.";

/// Arguments of `pinnace copy`.
#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct CopyArgs {
    /// Source image reference.
    pub source: String,
    /// Destination image reference.
    pub destination: String,
    /// Platform to pick from a multi-platform image (os/arch[/variant]); default: this machine's.
    #[arg(long)]
    pub platform: Option<String>,
    /// Compression for layers that must be compressed (gzip, zstd).
    #[arg(long, default_value = "gzip")]
    pub compression: String,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the result as JSON (digest, sizes, what happened to each layer).
    #[arg(long)]
    pub json: bool,
    /// TLS verification for the source registry (overrides --tls-verify).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub src_tls_verify: Option<bool>,
    /// TLS verification for the destination registry (overrides --tls-verify).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub dest_tls_verify: Option<bool>,
    /// CA certificates (and client certificate) for the source registry.
    #[arg(long, value_name = "DIR")]
    pub src_cert_dir: Option<std::path::PathBuf>,
    /// CA certificates (and client certificate) for the destination registry.
    #[arg(long, value_name = "DIR")]
    pub dest_cert_dir: Option<std::path::PathBuf>,
    /// Credentials for the source registry, instead of the auth files (a missing PASS is asked for on the terminal).
    #[arg(long, value_name = "USER[:PASS]")]
    pub src_creds: Option<CredsArg>,
    /// Credentials for the destination registry, instead of the auth files.
    #[arg(long, value_name = "USER[:PASS]")]
    pub dest_creds: Option<CredsArg>,
    /// Blobs transferred at once when either end is a registry.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_JOBS, value_parser = parse_jobs)]
    pub jobs: usize,
    /// Copy every image of a multi-platform index, and the index (instead of one platform).
    #[arg(long, short, conflicts_with = "platform")]
    pub all: bool,
}

/// Runs the copy and renders its report.
pub fn run(a: CopyArgs) -> anyhow::Result<()> {
    let src: ImageRef = a.source.parse()?;
    let dst: ImageRef = a.destination.parse()?;
    let platform = a.platform.as_deref().map(str::parse::<Platform>).transpose()?;
    let compression: Compression = a.compression.parse().map_err(anyhow::Error::msg)?;
    if compression == Compression::None {
        anyhow::bail!("--compression none: OCI stores keep plain layers as they are; choose gzip or zstd for layers that get compressed");
    }
    let opts = CopyOptions {
        platform,
        all: a.all,
        jobs: a.jobs,
        progress: !a.quiet && !a.json,
        encoder: Some(EncoderOptions { compression, ..Default::default() }),
        source_registry: RegistryOptions {
            tls_verify: a.src_tls_verify,
            cert_dir: a.src_cert_dir,
            credentials: a.src_creds.map(|c| c.resolve("--src-creds")).transpose()?,
            ..Default::default()
        },
        destination_registry: RegistryOptions {
            tls_verify: a.dest_tls_verify,
            cert_dir: a.dest_cert_dir,
            credentials: a.dest_creds.map(|c| c.resolve("--dest-creds")).transpose()?,
            ..Default::default()
        },
    };
    let report = copy(&src, &dst, &opts).with_context(|| format!("copying {src} to {dst}"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !a.quiet {
        println!("{} -> {}", report.source, report.destination);
        render(&report, "");
        for img in &report.images {
            render(img, "  ");
        }
        println!("total    {}", super::human(report.size));
    }
    Ok(())
}

fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=64) => Ok(n),
        _ => Err("expected a number from 1 to 64".into()),
    }
}

/// The manifest, config, layers and what happened to them, indented by `pad`.
fn render(r: &CopyReport, pad: &str) {
    let kind = if r.config_digest.is_none() { "index   " } else { "manifest" };
    let kept = if r.manifest_kept { ", kept" } else { ", new" };
    println!("{pad}{kind} {} ({}){kept}", r.manifest_digest, r.manifest_media_type);
    let Some(config) = &r.config_digest else { return };
    println!("{pad}config   {config}");
    for l in &r.layers {
        println!("{pad}  {:?} {} {}", l.action, l.digest, super::human(l.size));
    }
    let count = |a: LayerAction| r.layers.iter().filter(|l| l.action == a).count();
    let (present, mounted) = (count(LayerAction::Skipped), count(LayerAction::Mounted));
    if present + mounted > 0 {
        println!(
            "{pad}skipped  {} of {} layers: {present} already there, {mounted} mounted from another repository",
            present + mounted,
            r.layers.len()
        );
    }
}
