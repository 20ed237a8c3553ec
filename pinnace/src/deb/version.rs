//! Debian version numbers compared the way dpkg does (`deb-version(7)`,
//! `dpkg/lib/dpkg/version.c`: `verrevcmp`), without allocating.
//!
//! Hand-written rather than taken from the `debversion` crate: the algorithm is 40 lines,
//! the resolver compares versions in its inner loop, and the crate would bring a regex
//! engine into the binary for parsing.

use std::cmp::Ordering;

/// A version split into epoch, upstream version and Debian revision (borrowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    /// Epoch (0 when absent).
    pub epoch: u64,
    /// Upstream part.
    pub upstream: &'a str,
    /// Debian revision ("" when absent; dpkg treats absent and "0" alike in comparisons).
    pub revision: &'a str,
}

impl<'a> Version<'a> {
    /// Splits `s` at the first `:` (epoch, when all digits) and the last `-` (revision).
    pub fn parse(s: &'a str) -> Version<'a> {
        let s = s.trim();
        let (epoch, rest) = match s.split_once(':') {
            Some((e, r)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, s),
        };
        let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
        Version { epoch, upstream, revision }
    }
}

/// Compares two version strings with dpkg's rules.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (Version::parse(a), Version::parse(b));
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| verrevcmp(a.upstream.as_bytes(), b.upstream.as_bytes()))
        .then_with(|| verrevcmp(a.revision.as_bytes(), b.revision.as_bytes()))
}

/// dpkg's character order: `~` before the end, the end before letters, letters before
/// everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0i32;
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        while digit(a, i) && digit(b, j) {
            if first_diff == 0 {
                first_diff = i32::from(a[i]) - i32::from(b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

/// A version relation of a dependency (`<<`, `<=`, `=`, `>=`, `>>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<<`
    Lt,
    /// `<=` (and the obsolete `<`)
    Le,
    /// `=`
    Eq,
    /// `>=` (and the obsolete `>`)
    Ge,
    /// `>>`
    Gt,
}

impl Op {
    /// Parses an operator as written in control files.
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }

    /// The operator as written in control files.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }

    /// Whether `have OP want` holds.
    pub fn holds(self, have: &str, want: &str) -> bool {
        let o = compare(have, want);
        match self {
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Eq => o == Ordering::Equal,
            Op::Ge => o != Ordering::Less,
            Op::Gt => o == Ordering::Greater,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dpkg_order() {
        // Pairs from dpkg's own test suite (t-version.c) and deb-version(7).
        let less = [
            ("1.0", "1.1"),
            ("1.0~rc1", "1.0"),
            ("1.0~~", "1.0~"),
            ("1.0~", "1.0"),
            ("1.0", "1.0a"),
            ("1.0a", "1.0+"),
            ("1.0-1", "1.0-2"),
            ("1.0-1", "1.0-1.1"),
            ("1:0.1", "2:0.0"),
            ("9.9", "1:0.1"),
            ("2.36-9", "2.36-9+deb12u10"),
            ("1.2.9", "1.2.10"),
            ("0.9", "1.0"),
            ("3.0.11-1~deb12u2", "3.0.11-1"),
        ];
        for (a, b) in less {
            assert_eq!(compare(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(compare(b, a), Ordering::Greater, "{b} > {a}");
        }
        for (a, b) in [("1.0", "1.0"), ("0:1.0", "1.0"), ("1.01", "1.1"), ("1.0-0", "1.0")] {
            assert_eq!(compare(a, b), Ordering::Equal, "{a} = {b}");
        }
        assert!(Op::Ge.holds("2.36-9", "2.34") && !Op::Lt.holds("2.36", "2.36") && Op::parse("<").is_some());
    }

    proptest! {
        #[test]
        fn antisymmetric_and_total(a in "[0-9a-z.+~:-]{0,12}", b in "[0-9a-z.+~:-]{0,12}") {
            prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
            prop_assert_eq!(compare(&a, &a), Ordering::Equal);
        }

        #[test]
        fn no_panic_on_anything(a in "\\PC{0,20}", b in "\\PC{0,20}") {
            let _ = compare(&a, &b);
        }
    }
}
