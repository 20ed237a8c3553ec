//! Package layers grouped by popularity (the idea of Nix's `buildLayeredImage`).
//!
//! A package's popularity is the number of packages in the image that depend on it,
//! directly or through others. The most popular packages (libc6, libgcc-s1, ...) are at
//! the bottom, one layer each; when there are more packages than `max` layers, the least
//! popular share the top package layer. A layer's bytes depend only on the packages in
//! it, so images built on the same packages share those layers byte for byte, and an
//! image adding one package to a preset changes only the top package layer.

use std::collections::{BTreeSet, HashMap};

/// The default bound on package layers.
pub const DEFAULT_MAX_LAYERS: usize = 8;

/// Groups `names` (package names) into at most `max` layers, bottom first, given the
/// dependency `edges` (dependent, dependency) as indexes into `names`.
pub fn group(names: &[&str], edges: &[(usize, usize)], max: usize) -> Vec<Vec<usize>> {
    let max = max.max(1);
    let mut deps: HashMap<usize, Vec<usize>> = HashMap::new();
    for &(a, b) in edges {
        if a != b {
            deps.entry(a).or_default().push(b);
        }
    }
    // Transitive dependents of each package.
    let mut dependents: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); names.len()];
    for start in 0..names.len() {
        let mut stack = vec![start];
        let mut seen = BTreeSet::from([start]);
        while let Some(x) = stack.pop() {
            for &d in deps.get(&x).into_iter().flatten() {
                if seen.insert(d) {
                    dependents[d].insert(start);
                    stack.push(d);
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| dependents[b].len().cmp(&dependents[a].len()).then(names[a].cmp(names[b])));
    if order.len() <= max {
        return order.into_iter().map(|i| vec![i]).collect();
    }
    let mut out: Vec<Vec<usize>> = order[..max - 1].iter().map(|&i| vec![i]).collect();
    let mut rest = order[max - 1..].to_vec();
    rest.sort_by(|&a, &b| names[a].cmp(names[b]));
    out.push(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popular_first_rest_together() {
        let names = ["app", "libc6", "libssl3", "tool", "zlib"];
        // app -> libssl3 -> libc6; tool -> libc6; zlib -> libc6; app -> zlib
        let edges = [(0, 2), (2, 1), (3, 1), (4, 1), (0, 4)];
        let g = group(&names, &edges, 3);
        assert_eq!(g, vec![vec![1], vec![2], vec![0, 3, 4]]);
        let g = group(&names, &edges, 10);
        assert_eq!(g.len(), 5);
        assert_eq!(g[0], vec![1]);
        assert_eq!(group(&names, &edges, 1), vec![vec![0, 1, 2, 3, 4]]);
        assert!(group(&[], &[], 8).is_empty());
    }
}
