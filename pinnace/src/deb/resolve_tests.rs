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
