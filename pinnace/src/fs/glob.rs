//! Path globs for `--path`: `*` (any run of characters within one component), `?` (one
//! character other than `/`), `**` as a whole component (any number of components,
//! including none), everything else literal. Patterns and paths are compared without
//! their leading `/`.
//!
//! Hand-written rather than the `globset` crate: these three rules are all `--path`
//! needs, they fit in a few lines with backtracking, and globset would bring regex and
//! aho-corasick into a binary that is meant to stay small.

/// A compiled path glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// Compiles a pattern (every string is a valid pattern).
    pub fn new(pattern: &str) -> Glob {
        Glob(pattern.trim_start_matches('/').to_string())
    }

    /// Whether `path` (leading `/` optional) matches the whole pattern.
    pub fn matches(&self, path: &str) -> bool {
        matches(self.0.as_bytes(), path.trim_start_matches('/').as_bytes())
    }
}

fn matches(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] if rest.is_empty() || rest[0] == b'/' => {
            let rest = rest.strip_prefix(b"/").unwrap_or(rest);
            if rest.is_empty() {
                return true;
            }
            // Zero components, or resume after any `/`.
            matches(rest, s) || (0..s.len()).any(|i| s[i] == b'/' && matches(rest, &s[i + 1..]))
        }
        [b'*', rest @ ..] => {
            for i in 0..=s.len() {
                if matches(rest, &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == b'/' {
                    break;
                }
            }
            false
        }
        [b'?', rest @ ..] => !s.is_empty() && s[0] != b'/' && matches(rest, &s[1..]),
        [c, rest @ ..] => s.first() == Some(c) && matches(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn star_question_and_double_star() {
        let g = Glob::new("/usr/lib/**");
        assert!(g.matches("/usr/lib/x"));
        assert!(g.matches("usr/lib/a/b/c.so"));
        assert!(!g.matches("/usr/lib"));
        assert!(!g.matches("/usr/libexec/x"));
        let g = Glob::new("/usr/*/x?.so");
        assert!(g.matches("/usr/lib/x1.so"));
        assert!(!g.matches("/usr/lib/a/x1.so"));
        assert!(!g.matches("/usr/lib/x12.so"));
        let g = Glob::new("**/*.so");
        assert!(g.matches("/a.so"));
        assert!(g.matches("/usr/lib/deep/b.so"));
        assert!(!g.matches("/usr/lib/b.so.1"));
        let g = Glob::new("/etc/**/conf");
        assert!(g.matches("/etc/conf"));
        assert!(g.matches("/etc/a/b/conf"));
        assert!(Glob::new("*").matches("/anything"));
        assert!(!Glob::new("*").matches("/a/b"));
        assert!(Glob::new("/a*b*c").matches("/abxbc"));
    }
}
