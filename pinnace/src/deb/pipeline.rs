//! [`prepare`]: from a [`DebSpec`] to package layers, a file tree for closures, and an SBOM.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::layer::{FileSource, LayerBuilder, LayerEntrySpec, SpecKind};

use super::extract::{self, DebContents};
use super::fetch::{default_cache_dir, Fetcher, Wanted};
use super::index::{self, Package};
use super::release::{self, Release};
use super::resolve::Universe;
use super::sbom::{self, SbomPackage};
use super::{layers, presets, sources, status, DebError, DebSpec, PackageRoot};

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
    let archive =
        sources::choose(spec.mirror.as_deref(), spec.suite.as_deref(), spec.arch.as_deref(), Path::new("/etc/apt"));
    let fetcher = Fetcher::new(default_cache_dir(), spec.offline, spec.progress);
    let mut warnings = Vec::new();

    let base_url = format!("{}/dists/{}/", archive.mirror, archive.suite);
    let inrelease_url = format!("{base_url}InRelease");
    let bytes = fetcher.get_unverified(&inrelease_url)?;
    let (text, verified) = if spec.insecure_skip_signature {
        warnings.push(format!(
            "--insecure-skip-signature: the signature of {inrelease_url} was NOT checked; anyone on the network path could have chosen these packages"
        ));
        (release::unverified_text(&bytes), false)
    } else {
        let keyring = spec.keyring.clone().unwrap_or_else(|| release::DEFAULT_KEYRING.into());
        let keys = release::read_keyring(&keyring)?;
        (release::verify(&bytes, &keys, &inrelease_url)?, true)
    };
    let rel = Release::parse(&text, &base_url)?;

    let texts: Vec<String> =
        archive.components.iter().map(|c| index::load(&fetcher, &rel, c, &archive.arch)).collect::<Result<_, _>>()?;
    let mut pkgs: Vec<Package<'_>> = Vec::new();
    for (c, t) in archive.components.iter().zip(&texts) {
        pkgs.extend(index::parse(t, &rel.url(&format!("{c}/binary-{}/Packages", archive.arch)))?);
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

    let wanted: Vec<Wanted> = chosen
        .iter()
        .map(|p| Wanted {
            url: format!("{}/{}", archive.mirror, p.filename),
            sha256: p.sha256.to_string(),
            size: p.size,
        })
        .collect();
    let debs = fetcher.get_all(&wanted)?;
    let contents = extract_all(&debs, &wanted)?;

    // Dependency edges as positions in `chosen`.
    let pos: BTreeMap<usize, usize> = res.packages.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    let edges: Vec<(usize, usize)> = res.edges.iter().filter_map(|(a, b)| Some((*pos.get(a)?, *pos.get(b)?))).collect();
    let names: Vec<&str> = chosen.iter().map(|p| p.name).collect();
    let groups = layers::group(&names, &edges, spec.max_layers.unwrap_or(layers::DEFAULT_MAX_LAYERS));

    let mut out_layers = Vec::new();
    let mut root = PackageRoot::default();
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
            root.add(&c.entries);
            let mut generated = vec![bytes_entry(
                &format!("var/lib/dpkg/status.d/{}", p.name),
                status::status_entry(&c.control, p.filename)?.into_bytes(),
            )];
            if let Some(bundle) = extract::ca_bundle(&c.entries) {
                generated.push(bytes_entry("etc/ssl/certs/ca-certificates.crt", bundle));
            }
            for e in generated {
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
        let mut v =
            serde_json::to_vec_pretty(&sbom::document(&name, &pk, &archive.suite, &created)).unwrap_or_default();
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
        summary: format!(
            "{} packages from {} {} ({})",
            chosen.len(),
            archive.mirror,
            rel.suite,
            if verified { "InRelease signature verified" } else { "SIGNATURE NOT VERIFIED" }
        ),
        warnings,
    })
}

fn bytes_entry(path: &str, bytes: Vec<u8>) -> LayerEntrySpec {
    LayerEntrySpec {
        path: path.into(),
        kind: SpecKind::File(FileSource::Bytes(Arc::from(bytes))),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

fn copyright(c: &DebContents, name: &str) -> Option<String> {
    let path = format!("usr/share/doc/{name}/copyright");
    c.entries.iter().find(|e| e.path == path).and_then(|e| match &e.kind {
        SpecKind::File(FileSource::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    })
}

/// Opens every .deb, a few at a time (xz decompression is the slow part of a cold build).
fn extract_all(debs: &[Vec<u8>], wanted: &[Wanted]) -> Result<Vec<DebContents>, DebError> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    let next = AtomicUsize::new(0);
    type Slot = Option<Result<DebContents, DebError>>;
    let results: Mutex<Vec<Slot>> = Mutex::new((0..debs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.min(debs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = debs.get(i) else { break };
                let r = extract::open(d, &wanted[i].url);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(DebError::Spec("extraction did not run".into()))))
        .collect()
}
