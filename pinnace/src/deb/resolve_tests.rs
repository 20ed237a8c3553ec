//! Resolver tests on crafted Packages files.

use super::*;
use crate::deb::index::parse;

/// A Packages text from `(name, version, extra fields)`.
fn index(pkgs: &[(&str, &str, &str)]) -> String {
    pkgs.iter()
        .map(|(n, v, extra)| {
            format!(
                "Package: {n}\nVersion: {v}\nArchitecture: amd64\n{extra}Filename: pool/{n}_{v}.deb\nSize: 1\nSHA256: 00\n\n"
            )
        })
        .collect()
}

fn names(text: &str, roots: &[&str], exclude: &[&str]) -> Result<Vec<String>, DebError> {
    let pkgs = parse(text, "t").unwrap();
    let u = Universe::new(&pkgs, "amd64");
    let roots: Vec<String> = roots.iter().map(|s| s.to_string()).collect();
    let ex: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
    let r = u.resolve(&roots, &ex)?;
    Ok(r.packages.iter().map(|&i| format!("{}={}", pkgs[i].name, pkgs[i].version)).collect())
}

#[test]
fn relations_parse() {
    let g = parse_relations("a (>= 1.0), b:any | c (<< 2~) [amd64] <!nocheck>, d:native");
    assert_eq!(g.len(), 3);
    assert_eq!(g[0][0], Relation { name: "a", arch: "", version: Some((Op::Ge, "1.0")) });
    assert_eq!(g[1][0].arch, "any");
    assert_eq!(g[1][1], Relation { name: "c", arch: "", version: Some((Op::Lt, "2~")) });
    assert_eq!(g[2][0].name, "d");
    assert!(parse_relations("").is_empty());
}

#[test]
fn alternatives_take_the_first_satisfiable() {
    let t = index(&[("app", "1", "Depends: missing | b, c | b\n"), ("b", "1", ""), ("c", "1", "")]);
    // `missing` has no candidate, so b; then `c | b` is already satisfied by b.
    assert_eq!(names(&t, &["app"], &[]).unwrap(), ["app=1", "b=1"]);
}

#[test]
fn virtual_packages_through_provides() {
    let t = index(&[
        ("app", "1", "Depends: mail-transport-agent, libfoo-abi (= 2)\n"),
        ("zmta", "1", "Provides: mail-transport-agent\n"),
        ("amta", "1", "Provides: mail-transport-agent\n"),
        ("foo1", "1", "Provides: libfoo-abi (= 1)\n"),
        ("foo2", "1", "Provides: libfoo-abi (= 2)\n"),
    ]);
    // Providers by name: amta before zmta; the versioned provide picks foo2.
    assert_eq!(names(&t, &["app"], &[]).unwrap(), ["amta=1", "app=1", "foo2=1"]);
}

#[test]
fn version_constraints_pick_the_highest_match() {
    let t = index(&[
        ("app", "1", "Depends: lib (>= 1.5), lib (<< 3)\n"),
        ("lib", "1.0", ""),
        ("lib", "2.0", ""),
        ("lib", "3.0", ""),
    ]);
    // The highest version (3.0) meets `>= 1.5` but then `<< 3` fails: no backtracking,
    // and the error names the chain.
    let e = names(&t, &["app"], &[]).unwrap_err().to_string();
    assert!(e.contains("app") && e.contains("lib"), "{e}");
    let t2 = index(&[
        ("app", "1", "Depends: lib (<< 3), lib (>= 1.5)\n"),
        ("lib", "1.0", ""),
        ("lib", "2.0", ""),
        ("lib", "3.0", ""),
    ]);
    assert_eq!(names(&t2, &["app"], &[]).unwrap(), ["app=1", "lib=2.0"]);
    assert_eq!(names(&t2, &["lib=1.0"], &[]).unwrap(), ["lib=1.0"]);
}

#[test]
fn conflicts_skip_to_the_next_alternative() {
    let t = index(&[
        ("app", "1", "Depends: x, y1 | y2\n"),
        ("x", "1", "Conflicts: y1\n"),
        ("y1", "1", ""),
        ("y2", "1", "Breaks: nothing\n"),
    ]);
    assert_eq!(names(&t, &["app"], &[]).unwrap(), ["app=1", "x=1", "y2=1"]);
    let t = index(&[("app", "1", "Depends: x, y1\n"), ("x", "1", ""), ("y1", "1", "Conflicts: x\n")]);
    let e = names(&t, &["app"], &[]).unwrap_err().to_string();
    assert!(e.contains("y1 conflicts with x"), "{e}");
    // Packages asked for that conflict are an error too, not a silent pair.
    let e = names(&t, &["x", "y1"], &[]).unwrap_err().to_string();
    assert!(e.contains("cannot install y1: y1 conflicts with x"), "{e}");
}

#[test]
fn cycles_terminate() {
    let t = index(&[("a", "1", "Depends: b\n"), ("b", "1", "Pre-Depends: c\n"), ("c", "1", "Depends: a\n")]);
    assert_eq!(names(&t, &["a"], &[]).unwrap(), ["a=1", "b=1", "c=1"]);
}

#[test]
fn exclusions_and_errors_with_the_chain() {
    let t = index(&[
        ("app", "1", "Depends: lib, perl-base\n"),
        ("lib", "1", "Depends: gone (>= 2)\n"),
        ("gone", "1", ""),
        ("perl-base", "1", ""),
    ]);
    let e = names(&t, &["app"], &[]).unwrap_err().to_string();
    assert!(e.contains("app -> lib") && e.contains("gone (>= 2) wanted, the index has 1"), "{e}");
    assert_eq!(names(&t, &["app"], &["gone", "perl-base"]).unwrap(), ["app=1", "lib=1"]);
    assert!(names(&t, &["nope"], &[]).unwrap_err().to_string().contains("no such package"));
}

#[test]
fn other_architectures_are_ignored_and_multiarch_qualifiers_accepted() {
    let t =
        index(&[("app", "1", "Depends: py:any, lib:native\n"), ("py", "1", "Multi-Arch: allowed\n"), ("lib", "1", "")])
            + "Package: arm\nVersion: 1\nArchitecture: arm64\nFilename: f\nSize: 1\nSHA256: 00\n";
    assert_eq!(names(&t, &["app"], &[]).unwrap(), ["app=1", "lib=1", "py=1"]);
    assert!(names(&t, &["arm"], &[]).is_err());
    // `lib:arm64` is not met by the amd64 lib already chosen (found by the proptest below).
    let t = index(&[("app", "1", "Depends: lib, tool\n"), ("lib", "1", ""), ("tool", "1", "Depends: lib:arm64\n")]);
    let e = names(&t, &["app"], &[]).unwrap_err().to_string();
    assert!(e.contains("app -> tool") && e.contains("lib:arm64 is another architecture"), "{e}");
}

#[test]
fn deterministic() {
    let t = index(&[("app", "1", "Depends: v\n"), ("p2", "1", "Provides: v\n"), ("p1", "1", "Provides: v\n")]);
    let first = names(&t, &["app"], &[]).unwrap();
    for _ in 0..5 {
        assert_eq!(names(&t, &["app"], &[]).unwrap(), first);
    }
    assert_eq!(first, ["app=1", "p1=1"]);
}

#[test]
fn providers_by_priority_then_name() {
    let t = index(&[
        ("app", "1", "Depends: awk\n"),
        ("gawk", "1", "Priority: optional\nProvides: awk\n"),
        ("mawk", "1", "Priority: required\nProvides: awk\n"),
    ]);
    assert_eq!(names(&t, &["app"], &[]).unwrap(), ["app=1", "mawk=1"]);
}

/// Random small universes: the resolver never panics, its answer does not depend on
/// the order of the stanzas, and what it returns is closed under Depends and free of
/// conflicts, or it is the documented `Unsatisfiable` error.
mod universes {
    use super::*;
    use proptest::prelude::*;

    const NAMES: [&str; 7] = ["a", "b", "c", "d", "e", "libx", "liby"];
    const VIRTUALS: [&str; 2] = ["v", "w"];
    const VERSIONS: [&str; 6] = ["1", "1.5", "2", "1:0.1", "2~rc1", "2+b1"];
    const OPS: [&str; 5] = ["<<", "<=", "=", ">=", ">>"];

    fn relation() -> impl Strategy<Value = String> {
        let name = prop::sample::select([&NAMES[..], &VIRTUALS[..], &["missing"]].concat());
        let constraint = prop::option::of((prop::sample::select(&OPS[..]), prop::sample::select(&VERSIONS[..])));
        let qual = prop::sample::select(vec!["", "", "", ":any", ":native", ":arm64"]);
        (name, qual, constraint).prop_map(|(n, q, c)| match c {
            Some((op, v)) => format!("{n}{q} ({op} {v})"),
            None => format!("{n}{q}"),
        })
    }

    fn field(max_groups: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::collection::vec(relation(), 1..4).prop_map(|alts| alts.join(" | ")), 0..max_groups)
            .prop_map(|groups| groups.join(", "))
    }

    /// One stanza; (name, version) pairs are unique in a universe, as in an archive.
    fn stanza() -> impl Strategy<Value = ((String, String), String)> {
        let provides = prop::collection::vec(
            (prop::sample::select(&VIRTUALS[..]), prop::option::of(prop::sample::select(&VERSIONS[..]))),
            0..2,
        )
        .prop_map(|ps| {
            ps.into_iter()
                .map(|(v, ver)| ver.map_or(v.to_string(), |x| format!("{v} (= {x})")))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let conflicts = prop::collection::vec(relation(), 0..2).prop_map(|c| c.join(", "));
        (
            prop::sample::select(&NAMES[..]),
            prop::sample::select(&VERSIONS[..]),
            prop::sample::select(vec!["amd64", "amd64", "all", "arm64"]),
            field(3),
            field(2),
            provides,
            conflicts,
            prop::sample::select(vec!["required", "optional", "extra"]),
        )
            .prop_map(|(n, v, arch, dep, pre, prov, conf, prio)| {
                let mut s = format!("Package: {n}\nVersion: {v}\nArchitecture: {arch}\nPriority: {prio}\n");
                for (f, val) in [("Depends", dep), ("Pre-Depends", pre), ("Provides", prov), ("Conflicts", conf)] {
                    if !val.is_empty() {
                        s.push_str(&format!("{f}: {val}\n"));
                    }
                }
                s.push_str(&format!("Filename: pool/{n}_{v}_{arch}.deb\nSize: 1\nSHA256: 00\n\n"));
                ((n.to_string(), v.to_string()), s)
            })
    }

    fn universe() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(stanza(), 0..14).prop_map(|v| {
            let mut seen = HashSet::new();
            v.into_iter().filter(|(k, _)| seen.insert(k.clone())).map(|(_, s)| s).collect()
        })
    }

    /// (name=version of every chosen package) or the error text.
    fn outcome(stanzas: &[String], roots: &[String], exclude: &[String]) -> Result<Vec<String>, String> {
        let text = stanzas.concat();
        let pkgs = parse(&text, "t").unwrap();
        let r = Universe::new(&pkgs, "amd64").resolve(roots, exclude).map_err(|e| e.to_string())?;
        Ok(r.packages.iter().map(|&i| format!("{}={}", pkgs[i].name, pkgs[i].version)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn deterministic_closed_and_order_independent(
            stanzas in universe(),
            roots in prop::collection::vec(prop::sample::select(&NAMES[..]), 1..3),
            exclude in prop::collection::vec(prop::sample::select(&NAMES[..]), 0..2),
            seed in any::<u64>(),
        ) {
            let roots: Vec<String> = roots.iter().map(|s| s.to_string()).collect();
            let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
            let first = outcome(&stanzas, &roots, &exclude);
            prop_assert_eq!(&outcome(&stanzas, &roots, &exclude), &first);
            // The same universe in another order gives the same answer (or error).
            let mut shuffled = stanzas.clone();
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(&outcome(&shuffled, &roots, &exclude), &first);

            let text = stanzas.concat();
            let pkgs = parse(&text, "t").unwrap();
            let u = Universe::new(&pkgs, "amd64");
            match u.resolve(&roots, &exclude) {
                Err(e) => prop_assert!(matches!(e, DebError::Unsatisfiable { .. }), "{}", e),
                Ok(r) => {
                    // Every root and every dependency group is met inside the result, unless
                    // it names an excluded package.
                    let mut names = HashSet::new();
                    for &i in &r.packages {
                        let p = &pkgs[i];
                        prop_assert!(p.arch == "amd64" || p.arch == "all", "{} is {}", p.name, p.arch);
                        prop_assert!(names.insert(p.name), "{} chosen twice", p.name);
                        for g in parse_relations(p.pre_depends).into_iter().chain(parse_relations(p.depends)) {
                            let met = g.iter().any(|rel| r.packages.iter().any(|&c| u.meets(c, rel)) && u.arch_ok(rel));
                            let excluded = g.iter().any(|rel| exclude.iter().any(|e| e == rel.name));
                            prop_assert!(met || excluded, "{} {}: {:?} unmet in {:?}", p.name, p.version, g, r.packages);
                        }
                    }
                    for root in &roots {
                        let rel = Relation { name: root, arch: "", version: None };
                        prop_assert!(r.packages.iter().any(|&c| u.meets(c, &rel)), "root {} missing", root);
                    }
                    // No two chosen packages conflict.
                    for &c in &r.packages {
                        for x in u.conflicts(c) {
                            let hit = r.packages.iter().find(|&&s| s != c && u.meets(s, &x));
                            prop_assert!(hit.is_none(), "{} conflicts with {:?}", pkgs[c].name, hit.map(|&h| pkgs[h].name));
                        }
                    }
                    for &(a, b) in &r.edges {
                        prop_assert!(r.packages.contains(&a) && r.packages.contains(&b));
                    }
                }
            }
        }
    }
}
