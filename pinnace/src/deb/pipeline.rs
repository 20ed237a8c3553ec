//! [`prepare`]: from a [`DebSpec`] to package layers, a file tree for closures, and an SBOM.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::layer::{FileSource, LayerBuilder, LayerEntrySpec, SpecKind};

use super::extract::{self, DebContents};
use super::fetch::{default_cache_dir, Fetcher, Wanted};
use super::index::{self, Package};
use super::postinst::{self, bytes_entry};
use super::release;
use super::resolve::Universe;
use super::sbom::{self, SbomPackage};
use super::{layers, ldconfig, presets, sources, status, suites, DebError, DebSpec, PackageRoot};

/// A package in the image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstalledPackage {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
}

/// What [`prepare`] produced.
#[derive(Debug)]
pub struct DebImage {
    /// Package layers, bottom first: (role, entries).
    pub layers: Vec<(String, LayerBuilder)>,
    /// Packages, sorted by name.
    pub packages: Vec<InstalledPackage>,
    /// Every file of the packages (for `--binary` closures).
    pub root: PackageRoot,
    /// The SPDX document, when `--sbom` was asked for.
    pub sbom: Option<Vec<u8>>,
    /// One line about where the packages came from.
    pub summary: String,
    /// Warnings (unverified signature, file conflicts, exclusions).
    pub warnings: Vec<String>,
}

/// Resolves, fetches, verifies and extracts the packages `spec` asks for.
pub fn prepare(spec: &DebSpec) -> Result<DebImage, DebError> {
    let etc_apt = Path::new("/etc/apt");
    let archive = sources::choose(spec.mirror.as_deref(), spec.suite.as_deref(), spec.arch.as_deref(), etc_apt);
    let fetcher = Fetcher::new(default_cache_dir(), spec.offline, spec.progress);
    let mut warnings = Vec::new();

    let keys = if spec.insecure_skip_signature {
        warnings.push(
            "--insecure-skip-signature: the InRelease signatures were NOT checked; anyone on the network path could have chosen these packages".to_string(),
        );
        None
    } else {
        let keyring = spec.keyring.clone().unwrap_or_else(|| release::DEFAULT_KEYRING.into());
        Some(release::read_keyring(&keyring)?)
    };
    let suites = suites::read(&fetcher, &archive, keys.as_deref(), spec.no_updates, etc_apt)?;
    // All suites' packages in one universe; `origin[i]` is the suite of `pkgs[i]`.
    let mut pkgs: Vec<Package<'_>> = Vec::new();
    let mut origin: Vec<usize> = Vec::new();
    for (k, suite) in suites.iter().enumerate() {
        for (url, text) in &suite.indexes {
            pkgs.extend(index::parse(text, url)?);
            origin.resize(pkgs.len(), k);
        }
    }

    let mut roots: Vec<String> = Vec::new();
    if let Some(p) = &spec.preset {
        let list = presets::packages(p).ok_or_else(|| {
            DebError::Spec(format!("unknown preset {p:?}: choose from {}", presets::PRESETS.join(", ")))
        })?;
        roots.extend(list.into_iter().map(str::to_string));
    }
    roots.extend(spec.packages.iter().cloned());
    let asked: HashSet<&str> = roots.iter().map(|r| r.split('=').next().unwrap_or(r)).collect();
    let exclude: Vec<String> = presets::DEFAULT_EXCLUDE
        .iter()
        .map(|s| s.to_string())
        .chain(spec.exclude.iter().cloned())
        .filter(|e| !asked.contains(e.as_str()))
        .collect();
    let roots: Vec<String> = roots.into_iter().filter(|r| !spec.exclude.iter().any(|e| e == r)).collect();
    let universe = Universe::new(&pkgs, &archive.arch);
    let res = universe.resolve(&roots, &exclude)?;
    let chosen: Vec<&Package<'_>> = res.packages.iter().map(|&i| &pkgs[i]).collect();
    let chosen_suite: Vec<&suites::Suite> = res.packages.iter().map(|&i| &suites[origin[i]]).collect();

    let wanted: Vec<Wanted> = chosen
        .iter()
        .zip(&chosen_suite)
        .map(|(p, suite)| Wanted {
            url: format!("{}/{}", suite.mirror, p.filename),
            sha256: p.sha256.to_string(),
            size: p.size,
        })
        .collect();
    let debs = fetcher.get_all(&wanted)?;
    let contents = extract_all(&fetcher, &debs, &wanted, &mut warnings)?;

    // Dependency edges as positions in `chosen`.
    let pos: BTreeMap<usize, usize> = res.packages.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    let edges: Vec<(usize, usize)> = res.edges.iter().filter_map(|(a, b)| Some((*pos.get(a)?, *pos.get(b)?))).collect();
    let names: Vec<&str> = chosen.iter().map(|p| p.name).collect();
    let groups = layers::group(&names, &edges, spec.max_layers.unwrap_or(layers::DEFAULT_MAX_LAYERS));

    // Every file of the packages, first one at a path winning in layer order (as in the
    // image), for ldconfig and for `--binary` closures.
    let mut root = PackageRoot::default();
    for &k in groups.iter().flatten() {
        root.add(&contents[k].entries);
    }
    let time_ms = crate::layer::writer::source_date_epoch().saturating_mul(1000);
    let mut generated: BTreeMap<usize, Vec<LayerEntrySpec>> = BTreeMap::new();
    for (k, e) in postinst::generate(&names, &contents, time_ms)? {
        generated.entry(k).or_default().push(e);
    }
    if let Some(ld) = ldconfig::generate(&root, &archive.arch) {
        // In the layer of the first package with a library in one of the extra
        // directories: the package that made the cache necessary.
        let in_extra = |e: &LayerEntrySpec| {
            ld.extra_dirs
                .iter()
                .any(|d| e.path.strip_prefix(d.trim_start_matches('/')).is_some_and(|r| r.starts_with('/')))
        };
        let owner = contents.iter().position(|c| c.entries.iter().any(in_extra)).unwrap_or(0);
        let g = generated.entry(owner).or_default();
        g.push(bytes_entry(ldconfig::LD_SO_CACHE, ld.cache));
        g.extend(ld.links);
    }

    let mut out_layers = Vec::new();
    for g in &groups {
        let mut b = LayerBuilder::new();
        let mut owner: BTreeMap<String, &str> = BTreeMap::new();
        for &k in g {
            let (p, c) = (chosen[k], &contents[k]);
            for e in &c.entries {
                if let Some(first) = owner.get(&e.path) {
                    if !matches!(e.kind, SpecKind::Dir) {
                        warnings.push(format!("/{} is in both {first} and {}: keeping {first}'s", e.path, p.name));
                    }
                    continue;
                }
                owner.insert(e.path.clone(), p.name);
                b.add(e.clone())?;
            }
            let status = bytes_entry(
                &format!("var/lib/dpkg/status.d/{}", p.name),
                status::status_entry(&c.control, p.filename)?.into_bytes(),
            );
            for e in std::iter::once(status).chain(generated.remove(&k).unwrap_or_default()) {
                root.add(std::slice::from_ref(&e));
                b.add(e)?;
            }
        }
        let mut role: Vec<&str> = g.iter().map(|&k| names[k]).collect();
        let n = role.len();
        role.truncate(6);
        let more = if n > 6 { format!(" and {} more", n - 6) } else { String::new() };
        out_layers.push((format!("debian: {}{more}", role.join(", ")), b));
    }
    for (name, by) in &res.excluded {
        if !presets::DEFAULT_EXCLUDE.contains(&name.as_str()) {
            warnings.push(format!("left out {name} (--exclude), which {} depend on", by.join(", ")));
        }
    }

    let sbom = spec.sbom.as_ref().map(|_| {
        let pk: Vec<SbomPackage> = chosen
            .iter()
            .enumerate()
            .map(|(k, p)| SbomPackage {
                name: p.name.into(),
                version: p.version.into(),
                arch: p.arch.into(),
                source: p.source_name().into(),
                source_version: p.source_version().into(),
                sha256: p.sha256.into(),
                url: wanted[k].url.clone(),
                maintainer: p.stanza.get("Maintainer").unwrap_or("").into(),
                depends: edges.iter().filter(|(a, _)| *a == k).map(|(_, b)| names[*b].to_string()).collect(),
                copyright: copyright(&contents[k], p.name),
            })
            .collect();
        let name = spec.preset.clone().unwrap_or_else(|| "packages".into());
        let created = crate::build::rfc3339(crate::layer::writer::source_date_epoch() as i64);
        let distro = if suites[0].release.suite.is_empty() { &archive.suite } else { &suites[0].release.suite };
        let mut v = serde_json::to_vec_pretty(&sbom::document(&name, &pk, distro, &created)).unwrap_or_default();
        v.push(b'\n');
        v
    });

    Ok(DebImage {
        layers: out_layers,
        packages: chosen
            .iter()
            .map(|p| InstalledPackage { name: p.name.into(), version: p.version.into(), arch: p.arch.into() })
            .collect(),
        root,
        sbom,
        summary: summary(&suites, &chosen_suite, keys.is_some()),
        warnings,
    })
}

/// "38 packages from MIRROR bookworm (35), bookworm-updates (1), bookworm-security from
/// SECURITY-MIRROR (2) (InRelease signatures verified)".
fn summary(suites: &[suites::Suite], chosen: &[&suites::Suite], verified: bool) -> String {
    let parts: Vec<String> = suites
        .iter()
        .map(|s| {
            let n = chosen.iter().filter(|c| std::ptr::eq(**c, s)).count();
            let from = if s.mirror == suites[0].mirror { String::new() } else { format!(" from {}", s.mirror) };
            format!("{}{from} ({n})", s.name)
        })
        .collect();
    format!(
        "{} packages from {} {} ({})",
        chosen.len(),
        suites[0].mirror,
        parts.join(", "),
        if verified { "InRelease signatures verified" } else { "SIGNATURES NOT VERIFIED" }
    )
}

fn copyright(c: &DebContents, name: &str) -> Option<String> {
    let path = format!("usr/share/doc/{name}/copyright");
    c.entries.iter().find(|e| e.path == path).and_then(|e| match &e.kind {
        SpecKind::File(FileSource::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    })
}

/// The kind of derived cache entry holding a repacked .deb (see [`extract::repack`]).
const REPACKED: &str = "repacked-v1";

/// Opens every .deb, a few at a time. Each comes from its repacked copy in the cache
/// when there is one that reads (zstd instead of xz: the warm path), else from the .deb
/// itself, which is then repacked for the next build (xz decompression is the slow part
/// of a cold build, and was most of a warm one before that cache). Every .deb was
/// verified by [`Fetcher::get_all`] before this runs.
fn extract_all(
    fetcher: &Fetcher,
    debs: &[Vec<u8>],
    wanted: &[Wanted],
    warnings: &mut Vec<String>,
) -> Result<Vec<DebContents>, DebError> {
    // (contents, why the repacked copy could not be cached)
    type Opened = (DebContents, Option<String>);
    let open_one = |i: usize| -> Result<Opened, DebError> {
        let (sha, url) = (&wanted[i].sha256, &wanted[i].url);
        if let Some(c) = fetcher.derived(REPACKED, sha).and_then(|r| extract::open(&r, url).ok()) {
            return Ok((c, None));
        }
        let u = extract::unpack(&debs[i], url)?;
        let c = extract::contents(&u, url)?;
        // A cache that cannot be written costs speed next time, not this build.
        let stored = extract::repack(&u)
            .map_err(|e| e.to_string())
            .and_then(|r| fetcher.store_derived(REPACKED, sha, &r).map_err(|e| e.to_string()));
        Ok((c, stored.err().map(|e| format!("{url}: {e}"))))
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Opened, DebError>>>> = Mutex::new((0..debs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.min(debs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= debs.len() {
                    break;
                }
                let r = open_one(i);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    let mut out = Vec::with_capacity(debs.len());
    let mut not_cached = Vec::new();
    for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let (c, err) = r.unwrap_or_else(|| Err(DebError::Spec("extraction did not run".into())))?;
        not_cached.extend(err);
        out.push(c);
    }
    if let Some(first) = not_cached.first() {
        warnings
            .push(format!("could not cache {} extracted package(s) (next build is slower): {first}", not_cached.len()));
    }
    Ok(out)
}
