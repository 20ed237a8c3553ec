//! Times the Debian index alone: reading and verifying a cached `Packages` file, parsing
//! it, indexing it for the resolver, and resolving the python3 preset. Used by
//! `bench/debian.sh` for the "parse of the whole bookworm main Packages" figure.
//!
//! `cargo run --release -p pinnace --example deb_index -- [PACKAGES]` (default: the
//! largest `Packages` in `$XDG_CACHE_HOME/pinnace/deb/sha256`, which a build puts there).
//! Prints one line per phase: best and median of 7 runs, in milliseconds.

use std::path::PathBuf;
use std::time::Instant;

use pinnace::deb::{fetch, index, presets, resolve::Universe};

fn main() {
    let path = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        let dir = fetch::default_cache_dir().join("sha256");
        let mut best: Option<(u64, PathBuf)> = None;
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let head = std::fs::read(e.path()).map(|b| b.starts_with(b"Package: ")).unwrap_or(false);
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            if head && best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, e.path()));
            }
        }
        best.expect("no cached Packages: run a pinnace build --deb first").1
    });
    let roots: Vec<String> = presets::packages("python3").unwrap().into_iter().map(str::to_string).collect();
    let exclude: Vec<String> = presets::DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect();
    let mut times: [Vec<f64>; 4] = Default::default();
    let (mut n, mut chosen, mut bytes) = (0, 0, 0);
    for _ in 0..7 {
        let t = Instant::now();
        let raw = std::fs::read(&path).unwrap();
        let hex = pinnace::oci::Digest::of(&raw).hex().to_string();
        let text = String::from_utf8(raw).unwrap();
        times[0].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let pkgs = index::parse(&text, "Packages").unwrap();
        times[1].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let u = Universe::new(&pkgs, "amd64");
        times[2].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        chosen = u.resolve(&roots, &exclude).unwrap().packages.len();
        times[3].push(t.elapsed().as_secs_f64());
        (n, bytes) = (pkgs.len(), text.len());
        assert_eq!(hex.len(), 64);
    }
    println!("{}: {n} stanzas, {:.1} MiB", path.display(), bytes as f64 / 1048576.0);
    let names = ["read + SHA256", "parse", "index (Universe::new)", "resolve python3"];
    for (name, mut t) in names.into_iter().zip(times) {
        t.sort_by(f64::total_cmp);
        println!("{name:<24} best {:7.1} ms   median {:7.1} ms", t[0] * 1e3, t[t.len() / 2] * 1e3);
    }
    println!("python3 preset: {chosen} packages");
}
