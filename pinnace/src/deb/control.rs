//! Debian control files (deb822): stanzas of `Field: value` lines separated by blank
//! lines, values continued on lines starting with a space or tab.
//!
//! Hand-written rather than `debian-control`/`deb822-lossless`: those build a lossless
//! syntax tree (a node per token, owned strings) so a file can be edited and written back,
//! which is what packaging tools need. pinnace only reads, and reads the whole archive
//! index (about 63,000 stanzas, 45 MB, for bookworm main amd64) on every build, so this
//! parser borrows slices of the input and allocates one small vector per stanza. It is
//! measured by `index::tests::parse_speed` and by `bench/debian.sh`.

/// One `Field: value` of a stanza, borrowed from the input. `value` is trimmed and keeps
/// continuation lines verbatim (newlines and their leading space), as dpkg writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// Field name, as written (comparisons are case-insensitive, see [`Stanza::get`]).
    pub name: &'a str,
    /// The value.
    pub value: &'a str,
}

/// One paragraph of a control file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stanza<'a> {
    /// Fields in file order.
    pub fields: Vec<Field<'a>>,
}

impl<'a> Stanza<'a> {
    /// The value of field `name` (ASCII case-insensitive), if present.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| f.value)
    }
}

/// A malformed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub why: &'static str,
}

/// Iterates over the stanzas of `text`. Comment lines (`#`) are skipped; PGP armour is
/// not understood here (strip it first, see `release`).
pub fn stanzas(text: &str) -> Stanzas<'_> {
    Stanzas { text, pos: 0, line: 0 }
}

/// Iterator returned by [`stanzas`].
#[derive(Debug, Clone)]
pub struct Stanzas<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Stanzas<'a> {
    /// The next line (without its newline) and the offset where it starts.
    fn next_line(&mut self) -> Option<(usize, &'a str)> {
        if self.pos >= self.text.len() {
            return None;
        }
        let start = self.pos;
        let rest = &self.text[start..];
        let end = rest.find('\n').map_or(self.text.len(), |i| start + i);
        self.pos = end + 1;
        self.line += 1;
        Some((start, self.text[start..end].trim_end_matches('\r')))
    }
}

impl<'a> Iterator for Stanzas<'a> {
    type Item = Result<Stanza<'a>, SyntaxError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut st = Stanza { fields: Vec::with_capacity(24) };
        // (name, value start offset, value end offset) of the field being read.
        let mut cur: Option<(&'a str, usize, usize)> = None;
        while let Some((start, line)) = self.next_line() {
            if line.trim().is_empty() {
                if cur.is_some() || !st.fields.is_empty() {
                    break;
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                match cur.as_mut() {
                    Some(c) => c.2 = start + line.len(),
                    None => {
                        self.pos = self.text.len();
                        return Some(Err(SyntaxError { line: self.line, why: "continuation line without a field" }));
                    }
                }
                continue;
            }
            let Some(colon) = line.find(':') else {
                self.pos = self.text.len();
                return Some(Err(SyntaxError {
                    line: self.line,
                    why: "line is neither `Field: value` nor a continuation",
                }));
            };
            if let Some((n, s, e)) = cur.take() {
                st.fields.push(Field { name: n, value: self.text[s..e].trim() });
            }
            let vstart = start + colon + 1;
            cur = Some((&line[..colon], vstart, start + line.len()));
        }
        if let Some((n, s, e)) = cur {
            st.fields.push(Field { name: n, value: self.text[s..e].trim() });
        }
        if st.fields.is_empty() {
            None
        } else {
            Some(Ok(st))
        }
    }
}

/// Writes a stanza back in dpkg's format: `Name: value`, continuation lines as stored.
pub fn write_stanza(out: &mut String, fields: &[(&str, &str)]) {
    for (n, v) in fields {
        out.push_str(n);
        out.push(':');
        if !v.starts_with('\n') {
            out.push(' ');
        }
        out.push_str(v);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fields_and_continuations() {
        let text = "Package: a\nVersion: 1.0\nDescription: short\n long line\n .\n more\n\n\n# c\nPackage: b\r\nDepends: x,\n y\n";
        let all: Vec<_> = stanzas(text).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].get("package"), Some("a"));
        assert_eq!(all[0].get("Description"), Some("short\n long line\n .\n more"));
        assert_eq!(all[1].get("Depends"), Some("x,\n y"));
        let mut s = String::new();
        write_stanza(&mut s, &[("Package", "a"), ("Description", "short\n long")]);
        assert_eq!(s, "Package: a\nDescription: short\n long\n");
    }

    #[test]
    fn errors_name_the_line() {
        let e = stanzas("Package: a\nbroken\n").next().unwrap().unwrap_err();
        assert_eq!(e.line, 2);
        assert!(stanzas(" lead\n").next().unwrap().is_err());
    }

    proptest! {
        #[test]
        fn no_panic_and_terminates(text in "([A-Za-z-]{0,6}(: ?)?[ a-z,|()<=>.]{0,10}\r?\n?){0,20}") {
            let n = stanzas(&text).take(100).count();
            prop_assert!(n < 100);
        }

        #[test]
        fn no_panic_on_arbitrary_text(text in "\\PC{0,200}") {
            let _ = stanzas(&text).take(1000).count();
        }
    }
}
