//! `pinnace inspect REF`: summary, layers, wasted paths, duplicates, largest files;
//! `--tree`, `--json`, `--format dive-json`, `--ci`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use pinnace::analyze::ci::{parse_bytes, CiConfig, Status};
use pinnace::analyze::export::dive_export;
use pinnace::analyze::inspect::{inspect, InspectOptions, Inspection};
use pinnace::fs::glob::Glob;
use pinnace::fs::view::{self, SortBy, ViewOptions};
use pinnace::fs::{ChangeKind, FsTree, NodeKind};
use pinnace::oci::Platform;
use pinnace::transport::{open_source, Image, ImageRef};

use super::human;

const AFTER: &str = "\
Figures:
  efficiency, wasted bytes, user wasted percent and layer sizes are dive 0.13.1's, exactly
  (layer size = sum of tar header sizes). reclaimable is pinnace's: bytes stored in layers
  that the final filesystem does not show (what squashing or a rebuild would save).

CI (--ci): rules and defaults: lowestEfficiency (0.9), highestWastedBytes (disabled),
  highestUserWastedPercent (0.1, a ratio), highestReclaimableBytes (disabled). Equal passes.
  Sizes: 20MB = 20e6, 20MiB = 20*2^20. `disabled`/`off`/false skips a rule.
  Exit 1 when a rule fails or the configuration is wrong.
  Sources, each overriding the ones before it (lowest first):
    1. ./.dive-ci, when present and no --ci-config is given (as in dive): YAML `rules:`
       with dive's camelCase keys
    2. [inspect.ci] in ./pinnace.toml, when present, or in --config FILE: camelCase or
       kebab-case keys, e.g. lowest-efficiency = 0.95, highest-wasted-bytes = \"20MB\"
    3. --ci-config FILE (the .dive-ci format)
    4. flags: --lowestEfficiency, --highestWastedBytes, ... (or --lowest-efficiency, ...)

--json: pinnace's report, schema_version 1 (see pinnace::analyze::inspect::Inspection).
--format dive-json: dive's export schema (layer[], image{...}).";

/// Arguments of `pinnace inspect`.
#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct InspectArgs {
    /// Image reference (oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, containers-storage:NAME, ...).
    pub image: String,
    /// Platform to pick from a multi-platform image (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print pinnace's JSON report (schema_version 1).
    #[arg(long)]
    pub json: bool,
    /// Output format: text, json, dive-json.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Rows in the top lists (wasted paths, duplicates, largest files).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Show the file tree (final, or as of --layer), indented, with sizes and A/M/R markers
    /// for what the shown layer added, modified or removed.
    #[arg(long)]
    pub tree: bool,
    /// With --tree: one full path per line instead of the indented tree.
    #[arg(long)]
    pub flat: bool,
    /// With --tree: the tree as of this layer (0 = bottom).
    #[arg(long)]
    pub layer: Option<usize>,
    /// With --tree --layer N: only what layer N added, modified or removed.
    #[arg(long)]
    pub changes: bool,
    /// With --tree: only paths matching this glob (`*`, `?`, `**`); the tree keeps their parents.
    #[arg(long)]
    pub path: Option<String>,
    /// With --tree: `name` (default) or `size` (largest first, among siblings in the tree).
    #[arg(long, default_value = "name", value_parser = ["name", "size"])]
    pub sort: String,
    /// With --tree: hide entries smaller than this (e.g. 1MB, 512KiB; directories: their contents).
    #[arg(long)]
    pub min_size: Option<String>,
    /// Evaluate CI rules; exit 1 when one fails.
    #[arg(long)]
    pub ci: bool,
    /// CI rules file in dive's .dive-ci format (read instead of ./.dive-ci).
    #[arg(long, value_name = "FILE")]
    pub ci_config: Option<PathBuf>,
    /// pinnace.toml whose [inspect.ci] table sets CI rules (default: ./pinnace.toml when present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// CI: lowest allowed efficiency (ratio 0-1, or disabled).
    #[arg(long = "lowestEfficiency", alias = "lowest-efficiency")]
    pub lowest_efficiency: Option<String>,
    /// CI: highest allowed wasted bytes (e.g. 20MB, or disabled).
    #[arg(long = "highestWastedBytes", alias = "highest-wasted-bytes")]
    pub highest_wasted_bytes: Option<String>,
    /// CI: highest allowed wasted/user bytes ratio (0-1, or disabled).
    #[arg(long = "highestUserWastedPercent", alias = "highest-user-wasted-percent")]
    pub highest_user_wasted_percent: Option<String>,
    /// CI: highest allowed reclaimable bytes (e.g. 50MiB, or disabled).
    #[arg(long = "highestReclaimableBytes", alias = "highest-reclaimable-bytes")]
    pub highest_reclaimable_bytes: Option<String>,
}

/// Runs the inspection and renders it.
pub fn run(a: InspectArgs) -> anyhow::Result<()> {
    let format = if a.json { "json" } else { a.format.as_str() };
    if !matches!(format, "text" | "json" | "dive-json") {
        anyhow::bail!("--format {format:?}: expected text, json or dive-json");
    }
    let ci = if a.ci { Some(ci_config(&a)?) } else { None };
    let min_size = a.min_size.as_deref().map(parse_bytes).transpose().map_err(anyhow::Error::msg)?;
    let r: ImageRef = a.image.parse()?;
    let platform = a.platform.as_deref().map(str::parse::<Platform>).transpose()?;
    let src = open_source(&r)?;
    let image = Image::open(src.as_ref(), platform.as_ref())?;
    if let Some(l) = a.layer.filter(|&l| l >= image.layers.len()) {
        anyhow::bail!("--layer {l}: the image has {} layers (0..{})", image.layers.len(), image.layers.len() - 1);
    }
    let opts = InspectOptions { top: a.top, dive_file_lists: format == "dive-json", ..Default::default() };
    let report = inspect(src.as_ref(), &image, &opts).with_context(|| format!("inspecting {r}"))?;
    let results = ci.as_ref().map(|c| c.evaluate(&report)).transpose()?;
    match format {
        "json" => {
            let mut v = serde_json::to_value(&report)?;
            if let Some(res) = &results {
                v["ci"] = serde_json::to_value(res)?;
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "dive-json" => println!("{}", serde_json::to_string_pretty(&dive_export(&report))?),
        _ if a.tree => print_tree(&report.tree, &a, min_size),
        _ => print_summary(&report),
    }
    if let Some(res) = results {
        if format == "text" {
            println!("\nCI rules:");
            for r in &res {
                println!("  {:<4}  {:<26} {}", format!("{:?}", r.status).to_uppercase(), r.rule, r.message);
            }
        }
        let failed = res.iter().filter(|r| r.status == Status::Fail).count();
        if failed > 0 {
            anyhow::bail!("CI: {failed} rule(s) failed");
        }
        if format == "text" {
            println!("PASS");
        }
    }
    Ok(())
}

/// The CI rules from every source, in the order the help text gives.
fn ci_config(a: &InspectArgs) -> anyhow::Result<CiConfig> {
    let mut c = CiConfig::default();
    let read = |f: &PathBuf| std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()));
    let existing = |name: &str| Some(PathBuf::from(name)).filter(|p| p.exists());
    if a.ci_config.is_none() {
        if let Some(f) = existing(".dive-ci") {
            c.apply_dive_ci(&read(&f)?).with_context(|| format!("CI rules {}", f.display()))?;
        }
    }
    if let Some(f) = a.config.clone().or_else(|| existing("pinnace.toml")) {
        c.apply_pinnace_toml(&read(&f)?).with_context(|| format!("CI rules in {} [inspect.ci]", f.display()))?;
    }
    if let Some(f) = &a.ci_config {
        c.apply_dive_ci(&read(f)?).with_context(|| format!("CI rules {}", f.display()))?;
    }
    for (k, v) in [
        ("lowestEfficiency", &a.lowest_efficiency),
        ("highestWastedBytes", &a.highest_wasted_bytes),
        ("highestUserWastedPercent", &a.highest_user_wasted_percent),
        ("highestReclaimableBytes", &a.highest_reclaimable_bytes),
    ] {
        if let Some(v) = v {
            c.set(k, v)?;
        }
    }
    Ok(c)
}

fn print_summary(r: &Inspection) {
    println!("image        {}", r.image);
    println!("manifest     {}", r.manifest_digest);
    println!("config       {}", r.config_digest);
    println!("platform     {}", r.platform);
    println!("layers       {}", r.layer_count);
    println!("size         {} compressed, {} uncompressed", human(r.compressed_size), human(r.uncompressed_size));
    println!("efficiency   {:.4} %", r.efficiency * 100.0);
    println!("wasted       {} bytes ({})", r.wasted_bytes, human(r.wasted_bytes));
    match r.user_wasted_percent {
        Some(p) => println!("user wasted  {:.2} %", p * 100.0),
        None => println!("user wasted  n/a (one layer)"),
    }
    println!("reclaimable  {} bytes ({})", r.reclaimable_bytes, human(r.reclaimable_bytes));
    println!(
        "\n{:>3}  {:<19}  {:>10}  {:>10}  {:>6} {:>6} {:>6}  CREATED BY",
        "#", "DIGEST", "COMPRESSED", "SIZE", "ADDED", "MOD", "REM"
    );
    for l in &r.layers {
        let by = l.created_by.as_deref().unwrap_or("");
        let by: String = by.chars().take(60).collect();
        println!(
            "{:>3}  {:<19}  {:>10}  {:>10}  {:>6} {:>6} {:>6}  {by}",
            l.index,
            &l.digest.to_string()[..19],
            human(l.compressed_size),
            human(l.tar_size),
            l.added,
            l.modified,
            l.removed
        );
    }
    if !r.top_wasted.is_empty() {
        println!("\nTop wasted paths:\n  {:>5}  {:>10}  PATH", "COUNT", "BYTES");
        for w in &r.top_wasted {
            println!("  {:>5}  {:>10}  {}", w.occurrences, human(w.bytes), w.path);
        }
    }
    if !r.duplicates.is_empty() {
        println!("\nDuplicate content:");
        for d in &r.duplicates {
            println!("  {} x {} ({} wasted): {}", d.paths.len(), human(d.size), human(d.wasted), d.paths.join(", "));
        }
    }
    if !r.largest_files.is_empty() {
        println!("\nLargest files:\n  {:>10}  {:>5}  PATH", "SIZE", "LAYER");
        for f in &r.largest_files {
            println!("  {:>10}  {:>5}  {}", human(f.size), f.layer, f.path);
        }
    }
    if !r.warnings.is_empty() {
        println!("\nWarnings:");
        for w in &r.warnings {
            println!("  {}", serde_json::to_string(w).unwrap_or_default());
        }
    }
}

fn mode_string(kind: NodeKind, mode: u32) -> String {
    let t = match kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Fifo => 'p',
        NodeKind::File | NodeKind::HardLink => '-',
    };
    let mut s = String::from(t);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

fn print_tree(full: &FsTree, a: &InspectArgs, min_size: Option<u64>) {
    let replayed;
    let t = match a.layer {
        Some(l) => {
            replayed = full.as_of(l);
            &replayed
        }
        None => full,
    };
    let glob = a.path.as_deref().map(Glob::new);
    let opts = ViewOptions {
        layer: a.layer.unwrap_or(t.layer_count().saturating_sub(1)),
        changes_only: a.changes,
        glob: glob.as_ref(),
        min_size,
        sort: if a.sort == "size" { SortBy::Size } else { SortBy::Name },
    };
    let rows = if a.flat { view::flat(t, &opts) } else { view::tree(t, &opts) };
    println!("  {:<10} {:>11} {:>10}  {}", "PERMISSION", "UID:GID", "SIZE", if a.flat { "PATH" } else { "TREE" });
    for r in rows {
        let m = t.meta(r.node);
        let mark = match r.change {
            Some(ChangeKind::Added) => 'A',
            Some(ChangeKind::Modified) => 'M',
            Some(ChangeKind::Removed) => 'R',
            None => ' ',
        };
        let link = match (m.kind, &m.link) {
            (NodeKind::Symlink, Some(l)) => format!(" -> {l}"),
            (NodeKind::HardLink, Some(l)) => format!(" => /{l}"),
            _ => String::new(),
        };
        let name = if a.flat { t.path(r.node) } else { format!("{}{}", r.branch(), t.name(r.node)) };
        println!(
            "{mark} {} {:>11} {:>10}  {name}{link}",
            mode_string(m.kind, m.mode),
            format!("{}:{}", m.uid, m.gid),
            human(r.size),
        );
    }
}
