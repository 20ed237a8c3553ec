//! From a spec to layers: binaries and their ELF closures, extras, files and trees,
//! grouped as `--layers` says.
//!
//! `auto` layering is base files | shared libraries | application, bottom to top, so a
//! rebuild of the application reuses the lower layers, and two programs with the same
//! libraries share those layers byte for byte (the layer writer is deterministic).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::elf::{self, Binary, ClosureFileKind, ClosureOptions, HostRoot};
use crate::layer::writer::{host_mode, normalize_image_path};
use crate::layer::{FileSource, LayerBuilder, LayerEntrySpec, SpecKind};
use crate::oci::Platform;

use super::extras::{self, Needs};
use super::spec::{parse_user, BuildSpec, Layering, Placement};
use super::BuildError;

/// One layer to write, with what it holds for the history and the summary.
#[derive(Debug, Clone)]
pub struct PlannedLayer {
    /// What it holds, e.g. "shared libraries".
    pub role: String,
    /// Its entries.
    pub builder: LayerBuilder,
}

/// The plan for an image: layers, entrypoint, platform, and what was decided on the way.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Layers, bottom first (empty ones left out).
    pub layers: Vec<PlannedLayer>,
    /// The default entrypoint (the first binary's image path).
    pub default_entrypoint: Option<String>,
    /// Platform from the binaries' ELF headers.
    pub platform: Option<Platform>,
    /// Extras added, with the reason.
    pub extras: Vec<(String, String)>,
    /// Warnings from closure resolution.
    pub warnings: Vec<String>,
    /// The SPDX SBOM of the Debian packages, when `--sbom` was given.
    pub sbom: Option<Vec<u8>>,
}

fn goarch(machine: u16) -> &'static str {
    match machine {
        62 => "amd64",
        183 => "arm64",
        3 => "386",
        40 => "arm",
        21 => "ppc64le",
        22 => "s390x",
        243 => "riscv64",
        _ => "unknown",
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io { path: path.to_path_buf(), source }
}

/// Adds a host directory tree under `dest` (image path), sorted, keeping symlinks;
/// `skip(rel)` leaves out matching relative paths.
pub fn add_tree(
    layer: &mut LayerBuilder,
    src: &Path,
    dest: &str,
    mode: Option<u32>,
    owner: Option<(u32, u32)>,
    skip: &dyn Fn(&str) -> bool,
) -> Result<(), BuildError> {
    let (uid, gid) = owner.unwrap_or((0, 0));
    let meta = fs::symlink_metadata(src).map_err(io_err(src))?;
    if !meta.is_dir() {
        return Err(BuildError::Spec(format!("{}: not a directory (use --file for single files)", src.display())));
    }
    layer.add(LayerEntrySpec {
        path: dest.into(),
        kind: SpecKind::Dir,
        mode: host_mode(src).map_err(io_err(src))?,
        uid,
        gid,
    })?;
    let mut stack = vec![(src.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut names: Vec<_> =
            fs::read_dir(&dir).map_err(io_err(&dir))?.collect::<Result<_, _>>().map_err(io_err(&dir))?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            if skip(&r) {
                continue;
            }
            let p = e.path();
            let m = fs::symlink_metadata(&p).map_err(io_err(&p))?;
            let image = format!("{dest}/{r}");
            let ft = m.file_type();
            let kind = if ft.is_symlink() {
                SpecKind::Symlink(fs::read_link(&p).map_err(io_err(&p))?.to_string_lossy().into_owned())
            } else if ft.is_dir() {
                stack.push((p.clone(), r.clone()));
                SpecKind::Dir
            } else if ft.is_file() {
                SpecKind::File(FileSource::Path(p.clone()))
            } else {
                continue; // sockets, fifos, devices do not belong in an image tree
            };
            let is_file = matches!(kind, SpecKind::File(_));
            let host = host_mode(&p).unwrap_or(0o644);
            let mode = match (&kind, mode) {
                (SpecKind::Symlink(_), _) => 0o777,
                (_, Some(m)) if is_file => m,
                _ => host,
            };
            layer.add(LayerEntrySpec { path: image, kind, mode, uid, gid })?;
        }
    }
    Ok(())
}

fn owner_of(p: &Placement) -> Result<Option<(u32, u32)>, BuildError> {
    p.owner.as_deref().map(parse_user).transpose()
}

/// Maps host paths found through `$ORIGIN` to image paths next to the binary's image
/// location (`$ORIGIN/../lib` of `/tmp/x/bin/app` placed at `/usr/local/bin/app` is
/// `/usr/local/lib`). Pairs are (host dir, image dir).
fn origin_map(info: &elf::ElfInfo, host_origin: &str, image_origin: &str) -> Vec<(String, String)> {
    let entries = if info.runpath.is_empty() { &info.rpath } else { &info.runpath };
    entries
        .iter()
        .filter(|e| e.contains("$ORIGIN") || e.contains("${ORIGIN}"))
        .filter_map(|e| {
            let sub = |o: &str| e.replace("${ORIGIN}", o).replace("$ORIGIN", o);
            let host = lexical(&sub(host_origin))?;
            let image = lexical(&sub(image_origin))?;
            Some((host, image))
        })
        .collect()
}

fn lexical(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

fn relocate(path: &str, map: &[(String, String)]) -> String {
    for (host, image) in map {
        if let Some(rest) = path.strip_prefix(host.as_str()) {
            if rest.is_empty() || rest.starts_with('/') {
                return format!("{image}{rest}");
            }
        }
    }
    path.to_string()
}

/// Whether a `--file` puts the missing library where the loader will find it in the
/// image: at the interpreter's path, or as `SONAME` in one of the directories searched
/// for it (moved like `$ORIGIN` results are). The supplied file's own dependencies are
/// not resolved: they must be in the closure already or be supplied too.
fn supplied_by_file(m: &elf::MissingLibrary, files: &[Placement], map: &[(String, String)]) -> bool {
    let dests = files.iter().filter_map(|f| normalize_image_path(f.dest.as_deref()?).ok()).map(|d| format!("/{d}"));
    if m.soname.contains('/') {
        let want = lexical(&m.soname);
        return dests.into_iter().any(|d| Some(d) == want);
    }
    // `searched` holds directories, annotated like "DIR (RUNPATH of X)", and the cache.
    let dirs: Vec<String> = m
        .searched
        .iter()
        .filter_map(|s| lexical(s.split(" (").next().unwrap_or(s)))
        .filter(|d| !d.ends_with("ld.so.cache"))
        .map(|d| relocate(&d, map))
        .collect();
    dests
        .into_iter()
        .any(|d| d.rsplit_once('/').is_some_and(|(dir, name)| name == m.soname && dirs.iter().any(|x| x == dir)))
}

/// The ELF machine of a binary from its header alone (the full analysis, which scans
/// the whole file, runs once, in the closure resolution). Anything that is not a valid
/// ELF header gets the analysis's own error.
fn elf_machine(bytes: &[u8], path: &Path) -> Result<u16, BuildError> {
    if bytes.len() >= 20 && bytes.starts_with(b"\x7fELF") && matches!(bytes[5], 1 | 2) {
        let m = [bytes[18], bytes[19]];
        return Ok(if bytes[5] == 1 { u16::from_le_bytes(m) } else { u16::from_be_bytes(m) });
    }
    let info = elf::inspect(bytes).map_err(|e| e.at(&path.display().to_string()))?;
    Ok(info.machine)
}

/// Plans the image for `spec`.
pub fn plan(spec: &BuildSpec) -> Result<Plan, BuildError> {
    let root_path = spec.sysroot.clone().unwrap_or_else(|| PathBuf::from("/"));
    if !root_path.is_dir() {
        return Err(BuildError::Spec(format!("--sysroot {}: not a directory", root_path.display())));
    }
    let root = HostRoot::new(&root_path);
    // Debian packages, when asked for: their layers go first and `--binary` closures
    // resolve inside them, never on the host.
    let debs = if spec.debian.is_empty() { None } else { Some(crate::deb::prepare(&spec.debian)?) };
    let mut base = LayerBuilder::new();
    let mut libs = LayerBuilder::new();
    let mut app = LayerBuilder::new();
    let mut needs = Needs::default();
    let mut warnings = Vec::new();
    let mut platform: Option<Platform> = None;
    let mut default_entrypoint = None;

    for b in &spec.binaries {
        let meta = fs::metadata(&b.src).map_err(io_err(&b.src))?;
        if !meta.is_file() {
            return Err(BuildError::Spec(format!("--binary {}: not a regular file", b.src.display())));
        }
        let name = b.src.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dest = b.dest.clone().unwrap_or_else(|| format!("/usr/local/bin/{name}"));
        let dest = format!("/{}", normalize_image_path(&dest)?);
        let bytes = fs::read(&b.src).map_err(io_err(&b.src))?;
        let p =
            Platform { os: "linux".into(), architecture: goarch(elf_machine(&bytes, &b.src)?).into(), variant: None };
        match &platform {
            Some(prev) if *prev != p => {
                return Err(BuildError::Spec(format!(
                    "{} is {p} but an earlier binary is {prev}: one image holds one platform",
                    b.src.display()
                )))
            }
            _ => platform = Some(p),
        }
        if let Some(d) = &debs {
            warnings.extend(crate::deb::root::check_binary(&d.root, &Binary::new(&dest, bytes), &name));
            let (uid, gid) = owner_of(b)?.unwrap_or((0, 0));
            let kind = SpecKind::File(FileSource::Path(b.src.clone()));
            app.add(LayerEntrySpec { path: dest.clone(), kind, mode: b.mode.unwrap_or(0o755), uid, gid })?;
            default_entrypoint.get_or_insert(dest);
            continue;
        }
        // $ORIGIN expands at the binary's host location when it lives in the root we
        // resolve from (no --sysroot); results are then moved next to its image path.
        let abs = fs::canonicalize(&b.src).map_err(io_err(&b.src))?;
        let host_origin_path = if spec.sysroot.is_none() { abs.to_string_lossy().into_owned() } else { dest.clone() };
        let binary = Binary::new(&host_origin_path, bytes);
        let image_origin =
            dest.rsplit_once('/').map(|(d, _)| if d.is_empty() { "/" } else { d }).unwrap_or("/").to_string();
        // Missing libraries are collected, not fatal, so that ones the user supplies with
        // --file (placed where the loader will look in the image) are accepted.
        let opts = ClosureOptions { allow_missing: true, ..ClosureOptions::default() };
        let closure = elf::resolve_closure(&root, &binary, &opts)?;
        let mut map = origin_map(&closure.facts, binary.origin(), &image_origin);
        // Libraries may carry $ORIGIN paths of their own.
        for o in &closure.objects {
            if let Ok(bytes) = fs::read(root_path.join(o.real_path.trim_start_matches('/'))) {
                if let Ok(li) = elf::inspect(&bytes) {
                    let host_dir = o.path.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
                    let image_dir = relocate(&host_dir, &map);
                    let more = origin_map(&li, &host_dir, &image_dir);
                    map.extend(more);
                }
            }
        }
        let missing: Vec<_> =
            closure.missing.iter().filter(|m| !supplied_by_file(m, &spec.files, &map)).cloned().collect();
        if !missing.is_empty() {
            return Err(BuildError::MissingLibraries { missing: elf::ElfError::MissingLibraries { missing } });
        }
        if let Some(t) = &closure.facts.tls {
            needs.tls.get_or_insert_with(|| format!("{t} ({name})"));
        }
        if let Some(z) = &closure.facts.zoneinfo {
            if !closure.facts.go_embedded_tzdata {
                needs.zoneinfo.get_or_insert_with(|| format!("{z} ({name})"));
            }
        }
        if closure.files.iter().any(|f| f.reason.contains("NSS")) {
            needs.nss = true;
        }
        warnings.extend(closure.warnings.iter().map(|w| format!("{name}: {w}")));
        for f in &closure.files {
            let image = relocate(&f.path, &map);
            let e = match &f.kind {
                ClosureFileKind::Regular => {
                    let host = root_path.join(f.path.trim_start_matches('/'));
                    let mode = host_mode(&host).map_err(io_err(&host))?;
                    LayerEntrySpec { path: image, kind: SpecKind::File(FileSource::Path(host)), mode, uid: 0, gid: 0 }
                }
                ClosureFileKind::Symlink { target } => {
                    LayerEntrySpec { path: image, kind: SpecKind::Symlink(target.clone()), mode: 0o777, uid: 0, gid: 0 }
                }
            };
            libs.add(e)?;
        }
        let (uid, gid) = owner_of(b)?.unwrap_or((0, 0));
        app.add(LayerEntrySpec {
            path: dest.clone(),
            kind: SpecKind::File(FileSource::Path(b.src.clone())),
            mode: b.mode.unwrap_or(0o755),
            uid,
            gid,
        })?;
        default_entrypoint.get_or_insert(dest);
    }

    for f in &spec.files {
        let meta = fs::metadata(&f.src).map_err(io_err(&f.src))?;
        if !meta.is_file() {
            return Err(BuildError::Spec(format!(
                "--file {}: not a regular file (use --dir for directories)",
                f.src.display()
            )));
        }
        let dest = f
            .dest
            .clone()
            .ok_or_else(|| BuildError::Spec(format!("--file {}: give the image path as SRC:DEST", f.src.display())))?;
        let (uid, gid) = owner_of(f)?.unwrap_or((0, 0));
        let mode = match f.mode {
            Some(m) => m,
            None => host_mode(&f.src).map_err(io_err(&f.src))?,
        };
        app.add(LayerEntrySpec { path: dest, kind: SpecKind::File(FileSource::Path(f.src.clone())), mode, uid, gid })?;
    }
    for d in &spec.dirs {
        let dest = d
            .dest
            .clone()
            .ok_or_else(|| BuildError::Spec(format!("--dir {}: give the image path as SRC:DEST", d.src.display())))?;
        let dest = normalize_image_path(&dest)?;
        add_tree(&mut app, &d.src, &dest, d.mode, owner_of(d)?, &|_| false)?;
    }

    let tz = spec.env.contains_key("TZ");
    let chosen = extras::decide(&needs, &spec.with, &spec.without, spec.base.is_some(), tz)?;
    for (name, _) in &chosen {
        extras::add(name, &mut base, &root_path, spec.certs.as_deref())?;
    }

    let mut layers = Vec::new();
    let mut push = |role: &str, b: LayerBuilder| {
        if !b.is_empty() {
            layers.push(PlannedLayer { role: role.to_string(), builder: b });
        }
    };
    let mut sbom = None;
    let mut deb_extra = None;
    if let Some(d) = debs {
        for (role, b) in d.layers {
            push(&role, b);
        }
        warnings.extend(d.warnings);
        sbom = d.sbom;
        deb_extra = Some(("debian".to_string(), d.summary));
    }
    match spec.layers {
        Layering::Auto => {
            let names: Vec<&str> = chosen.iter().map(|(n, _)| *n).collect();
            push(&format!("base files ({})", names.join(", ")), base);
            push("shared libraries", libs);
            push("application", app);
        }
        Layering::Single => {
            let mut all = base;
            for b in [libs, app] {
                for e in b.entries() {
                    all.add(e.clone())?;
                }
            }
            push("everything", all);
        }
    }
    Ok(Plan {
        layers,
        default_entrypoint,
        platform,
        extras: deb_extra.into_iter().chain(chosen.into_iter().map(|(n, w)| (n.to_string(), w))).collect(),
        warnings,
        sbom,
    })
}

/// Counts regular files per layer (for the summary).
pub fn file_count(b: &LayerBuilder) -> usize {
    b.entries().filter(|e| matches!(e.kind, SpecKind::File(_))).count()
}

/// Groups entries by top-level directory (for messages).
pub fn top_dirs(b: &LayerBuilder) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in b.entries() {
        *m.entry(e.path.split('/').next().unwrap_or("").to_string()).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_relocation() {
        assert_eq!(lexical("/tmp/x/bin/../lib").unwrap(), "/tmp/x/lib");
        let map = vec![("/tmp/x/lib".to_string(), "/usr/local/lib".to_string())];
        assert_eq!(relocate("/tmp/x/lib/libfoo.so", &map), "/usr/local/lib/libfoo.so");
        assert_eq!(relocate("/tmp/x/libfoo.so", &map), "/tmp/x/libfoo.so");
        assert_eq!(relocate("/tmp/x/lib2/a", &map), "/tmp/x/lib2/a");
    }

    #[test]
    fn missing_library_supplied_by_file() {
        let m = elf::MissingLibrary {
            soname: "libfoo.so".into(),
            needed_by: vec!["/tmp/x/bin/app".into()],
            searched: vec![
                "/tmp/x/bin/../lib (RUNPATH of /tmp/x/bin/app)".into(),
                "/etc/ld.so.cache".into(),
                "/usr/lib".into(),
            ],
            skipped: vec![],
        };
        let map = vec![("/tmp/x/lib".to_string(), "/usr/local/lib".to_string())];
        let file = |dest: &str| vec![Placement::parse(&format!("h/libfoo.so:{dest}"))];
        assert!(supplied_by_file(&m, &file("/usr/local/lib/libfoo.so"), &map));
        assert!(supplied_by_file(&m, &file("/usr/lib/libfoo.so"), &map));
        assert!(!supplied_by_file(&m, &file("/tmp/x/lib/libfoo.so"), &map));
        assert!(!supplied_by_file(&m, &file("/opt/libfoo.so"), &map));
        assert!(!supplied_by_file(&m, &file("/usr/lib/libbar.so"), &map));
        let interp = elf::MissingLibrary { soname: "/lib64/ld.so".into(), searched: vec![], ..m };
        assert!(supplied_by_file(&interp, &file("/lib64/ld.so"), &map));
    }
}
