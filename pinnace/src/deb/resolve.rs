//! Dependency resolution: from the packages asked for to the set an image needs.
//!
//! Rules (a deliberate subset of apt's, deterministic, no backtracking):
//! - `Pre-Depends` and `Depends` are followed; `Recommends` and `Suggests` are not (as
//!   `apt-get install --no-install-recommends`, and as distroless does).
//! - A group `a | b (>= 1)` is satisfied by a package already chosen (by name or by
//!   `Provides`) when one exists; otherwise the first alternative with a candidate wins.
//!   Candidates of a name are the real package (highest version meeting the constraint),
//!   then the packages that provide it, by `Priority` (required first, as apt) then name.
//! - A candidate that `Conflicts`/`Breaks` a chosen package, or that a chosen package
//!   conflicts with, is passed over for the next one; packages asked for that conflict
//!   are an error. So no two packages of a resolution conflict, and every group of
//!   every chosen package is met inside it (both checked by a proptest).
//! - Multi-arch qualifiers `:any` and `:native` (and `:ARCH` of the target) are accepted;
//!   only packages of the target architecture or `all` are candidates, and a relation
//!   naming another architecture is met by nothing.
//! - A group with an excluded name (`--exclude`) counts as satisfied: the image will not
//!   have that package (no maintainer scripts run, so most exclusions are harmless).
//! - Cycles end at packages already chosen.
//!
//! Packages are processed breadth first in the order asked, dependencies in file order,
//! so the same index and request always give the same set.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::index::Package;
use super::version::Op;
use super::DebError;

/// One alternative of a dependency: `name [(op version)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation<'a> {
    /// Package name, multi-arch qualifier removed.
    pub name: &'a str,
    /// Architecture qualifier (`any`, `native`, an architecture) or "".
    pub arch: &'a str,
    /// Version constraint.
    pub version: Option<(Op, &'a str)>,
}

/// Parses a relation field (`Depends`, `Provides`, ...) into groups of alternatives.
/// Architecture restrictions (`[...]`) and build profiles (`<...>`) are dropped.
pub fn parse_relations(field: &str) -> Vec<Vec<Relation<'_>>> {
    field.split(',').map(|g| g.split('|').filter_map(parse_one).collect::<Vec<_>>()).filter(|g| !g.is_empty()).collect()
}

fn parse_one(s: &str) -> Option<Relation<'_>> {
    let s = s.trim();
    let (head, ver) = match (s.find('('), s.find(')')) {
        (Some(a), Some(b)) if a < b => (&s[..a], Some(s[a + 1..b].trim())),
        _ => (s, None),
    };
    let head = head.split(['[', '<']).next().unwrap_or("").trim();
    if head.is_empty() {
        return None;
    }
    let (name, arch) = head.split_once(':').unwrap_or((head, ""));
    let version = ver.and_then(|v| {
        let op_len = v.find(|c: char| !matches!(c, '<' | '>' | '=')).unwrap_or(v.len());
        Some((Op::parse(&v[..op_len])?, v[op_len..].trim()))
    });
    Some(Relation { name, arch, version })
}

/// Rank of a package's `Priority` (required first), the way apt prefers providers.
fn priority(p: &Package<'_>) -> u8 {
    match p.stanza.get("Priority").unwrap_or("optional") {
        "required" => 0,
        "important" => 1,
        "standard" => 2,
        "optional" => 3,
        _ => 4,
    }
}

/// The package index made searchable: by name and by what is provided.
#[derive(Debug)]
pub struct Universe<'p, 'a> {
    pkgs: &'p [Package<'a>],
    by_name: HashMap<&'a str, Vec<usize>>,
    providers: HashMap<&'a str, Vec<(usize, Option<&'a str>)>>,
    arch: String,
}

/// The outcome: chosen packages and who needs whom.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Indexes into the package slice, sorted by package name.
    pub packages: Vec<usize>,
    /// `(dependent, dependency)` edges between chosen packages.
    pub edges: Vec<(usize, usize)>,
    /// Dependencies left out because of `--exclude`: (excluded name, needed by).
    pub excluded: BTreeMap<String, Vec<String>>,
}

impl<'p, 'a> Universe<'p, 'a> {
    /// Indexes `pkgs` for `arch` (packages of other architectures are ignored).
    pub fn new(pkgs: &'p [Package<'a>], arch: &str) -> Self {
        let mut by_name: HashMap<&'a str, Vec<usize>> = HashMap::new();
        let mut providers: HashMap<&'a str, Vec<(usize, Option<&'a str>)>> = HashMap::new();
        for (i, p) in pkgs.iter().enumerate().filter(|(_, p)| p.arch == arch || p.arch == "all") {
            by_name.entry(p.name).or_default().push(i);
            for g in parse_relations(p.provides) {
                for r in g {
                    let v = r.version.filter(|(op, _)| *op == Op::Eq).map(|(_, v)| v);
                    providers.entry(r.name).or_default().push((i, v));
                }
            }
        }
        for v in by_name.values_mut() {
            v.sort_by(|a, b| super::version::compare(pkgs[*b].version, pkgs[*a].version));
        }
        for v in providers.values_mut() {
            v.sort_by(|a, b| {
                let (pa, pb) = (&pkgs[a.0], &pkgs[b.0]);
                priority(pa)
                    .cmp(&priority(pb))
                    .then(pa.name.cmp(pb.name))
                    .then(super::version::compare(pb.version, pa.version))
            });
        }
        Universe { pkgs, by_name, providers, arch: arch.to_string() }
    }

    fn arch_ok(&self, r: &Relation<'_>) -> bool {
        matches!(r.arch, "" | "any" | "native") || r.arch == self.arch
    }

    /// Whether package `i` (by name or a `Provides`) meets `r`. A relation qualified with
    /// another architecture (`foo:arm64`) is met by nothing of this one.
    fn meets(&self, i: usize, r: &Relation<'_>) -> bool {
        if !self.arch_ok(r) {
            return false;
        }
        let p = &self.pkgs[i];
        if p.name == r.name {
            return r.version.is_none_or(|(op, v)| op.holds(p.version, v));
        }
        self.providers.get(r.name).is_some_and(|ps| {
            ps.iter().any(|(j, pv)| {
                *j == i
                    && match (r.version, pv) {
                        (None, _) => true,
                        (Some((op, v)), Some(pv)) => op.holds(pv, v),
                        (Some(_), None) => false,
                    }
            })
        })
    }

    /// Candidates for `r`, best first.
    fn candidates(&self, r: &Relation<'_>) -> Vec<usize> {
        if !self.arch_ok(r) {
            return Vec::new();
        }
        let real = self.by_name.get(r.name).into_iter().flatten().copied();
        let provided = self.providers.get(r.name).into_iter().flatten().map(|(i, _)| *i);
        let mut out: Vec<usize> = real.chain(provided).filter(|i| self.meets(*i, r)).collect();
        let mut seen = HashSet::new();
        out.retain(|i| seen.insert(*i));
        out
    }

    fn conflicts(&self, i: usize) -> Vec<Relation<'a>> {
        let p = &self.pkgs[i];
        let mut v: Vec<_> = parse_relations(p.conflicts).into_iter().flatten().collect();
        v.extend(parse_relations(p.breaks).into_iter().flatten());
        v
    }

    /// A chosen package that `c` conflicts with (`Conflicts`/`Breaks`, either way round).
    fn conflicting(&self, c: usize, chosen: &[usize]) -> Option<usize> {
        self.conflicts(c)
            .iter()
            .find_map(|x| chosen.iter().find(|&&s| s != c && self.meets(s, x)).copied())
            .or_else(|| chosen.iter().find(|&&s| s != c && self.conflicts(s).iter().any(|x| self.meets(c, x))).copied())
    }

    /// Resolves `roots` (package names, optionally `name=version`) leaving out `exclude`.
    pub fn resolve(&self, roots: &[String], exclude: &[String]) -> Result<Resolution, DebError> {
        let mut chosen: Vec<usize> = Vec::new();
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut out = Resolution::default();
        let mut queue = VecDeque::new();
        let chain = |mut i: usize, parent: &HashMap<usize, usize>| {
            let mut c = vec![self.pkgs[i].name.to_string()];
            while let Some(&p) = parent.get(&i) {
                c.push(self.pkgs[p].name.to_string());
                i = p;
            }
            c
        };
        for root in roots {
            let (name, ver) = root.split_once('=').map_or((root.as_str(), None), |(n, v)| (n, Some(v)));
            let r = Relation { name, arch: "", version: ver.map(|v| (Op::Eq, v)) };
            let Some(&c) = self.candidates(&r).first() else {
                let why = if self.by_name.contains_key(name) {
                    format!("no version {} (the index has {})", ver.unwrap_or(""), self.versions(name))
                } else {
                    "no such package in the index".to_string()
                };
                return Err(DebError::Unsatisfiable { chain: vec![root.clone()], why });
            };
            if !chosen.iter().any(|&x| self.meets(x, &r)) {
                if let Some(h) = self.conflicting(c, &chosen) {
                    let why = format!("{} conflicts with {}", self.pkgs[c].name, self.pkgs[h].name);
                    return Err(DebError::Unsatisfiable { chain: vec![root.clone()], why });
                }
                by_name.insert(self.pkgs[c].name, c);
                chosen.push(c);
                queue.push_back(c);
            }
        }
        while let Some(i) = queue.pop_front() {
            let p = &self.pkgs[i];
            for group in parse_relations(p.pre_depends).into_iter().chain(parse_relations(p.depends)) {
                if let Some(&s) = chosen.iter().find(|&&c| group.iter().any(|r| self.meets(c, r))) {
                    out.edges.push((i, s));
                    continue;
                }
                if let Some(r) = group.iter().find(|r| exclude.iter().any(|e| e == r.name)) {
                    out.excluded.entry(r.name.to_string()).or_default().push(p.name.to_string());
                    continue;
                }
                let mut why = Vec::new();
                let mut pick = None;
                'alts: for r in &group {
                    let cands = self.candidates(r);
                    if cands.is_empty() {
                        why.push(match (self.by_name.contains_key(r.name), r.version) {
                            (true, Some((op, v))) => {
                                format!(
                                    "{} ({} {v}) wanted, the index has {}",
                                    r.name,
                                    op.symbol(),
                                    self.versions(r.name)
                                )
                            }
                            _ if !self.arch_ok(r) => format!("{}:{} is another architecture", r.name, r.arch),
                            _ => format!("no package {} (real or provided)", r.name),
                        });
                    }
                    for c in cands {
                        if let Some(&old) = by_name.get(self.pkgs[c].name) {
                            why.push(format!("{} {} is already chosen", self.pkgs[old].name, self.pkgs[old].version));
                            continue;
                        }
                        if let Some(h) = self.conflicting(c, &chosen) {
                            why.push(format!("{} conflicts with {}", self.pkgs[c].name, self.pkgs[h].name));
                            continue;
                        }
                        pick = Some(c);
                        break 'alts;
                    }
                }
                let Some(c) = pick else {
                    let mut ch = chain(i, &parent);
                    ch.reverse();
                    let want = group.iter().map(|r| r.name).collect::<Vec<_>>().join(" | ");
                    return Err(DebError::Unsatisfiable {
                        chain: ch,
                        why: format!("needs {want}: {}", why.join("; ")),
                    });
                };
                by_name.insert(self.pkgs[c].name, c);
                chosen.push(c);
                parent.insert(c, i);
                out.edges.push((i, c));
                queue.push_back(c);
            }
        }
        chosen.sort_by_key(|&i| self.pkgs[i].name);
        out.packages = chosen;
        out.edges.sort_unstable();
        out.edges.dedup();
        Ok(out)
    }

    fn versions(&self, name: &str) -> String {
        let v: Vec<&str> = self.by_name.get(name).into_iter().flatten().map(|&i| self.pkgs[i].version).collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
