//! One pass over a registry file's text that splits its top-level array into entries and
//! finds, in each, the raw JSON of the fields the rules read (`name`, `version`, ...), while
//! checking that every byte is valid JSON.
//!
//! Reading a 50,000-entry registry was a split of the array (one scan) and then a serde_json
//! parse of each entry (a second scan, a state machine per field): about half of a 10,000-
//! version rollback's first step. This scan does both at once. It is deliberately narrow:
//! text it is not sure of (any backslash, a key given twice, nesting near serde_json's limit,
//! anything not an array of objects) makes it answer `None`, and the caller then reads the
//! file the old way, serde_json's, which also words every error. So it never has to produce
//! an error message, and a proptest holds it to the same result as that way on valid and
//! broken files alike.

use std::ops::Range;

/// The fields an entry's rules read, in this order (see [`super::Head`]).
pub const FIELDS: [&str; 6] = [
    "name",
    "version",
    "model_path",
    "is_production",
    "status",
    "promoted_at",
];

/// One entry of the array: its text, and the raw JSON of each field of [`FIELDS`] that it
/// has with a value other than `null` (serde reads a `null` as absent, and so do we).
pub struct Scanned {
    pub range: Range<usize>,
    pub fields: [Option<Range<usize>>; 6],
}

/// One less than serde_json's recursion limit (128), counted from the top-level array: an
/// entry that nests this deep is left to serde_json, whose limit decides.
const MAX_DEPTH: usize = 127;

/// The entries of `text`, a registry file, or `None` when the scan is not sure of it.
pub fn entries(text: &str) -> Option<Vec<Scanned>> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
    };
    s.ws();
    s.eat(b'[')?;
    let mut out = Vec::with_capacity(text.len() / 256);
    s.ws();
    if s.peek() == Some(b']') {
        s.i += 1;
        s.ws();
        return (s.i == s.b.len()).then_some(out);
    }
    loop {
        out.push(s.entry()?);
        s.ws();
        match s.next()? {
            b',' => s.ws(),
            b']' => {
                s.ws();
                return (s.i == s.b.len()).then_some(out);
            }
            _ => return None,
        }
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    /// An entry: an object whose keys are looked at.
    fn entry(&mut self) -> Option<Scanned> {
        let start = self.i;
        self.eat(b'{')?;
        let mut fields: [Option<Range<usize>>; 6] = Default::default();
        let mut seen = [false; 6];
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(Scanned {
                range: start..self.i,
                fields,
            });
        }
        loop {
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value_start = self.i;
            self.value(1)?;
            let value = value_start..self.i;
            let key = &self.b[key.start + 1..key.end - 1];
            if let Some(k) = FIELDS.iter().position(|f| f.as_bytes() == key) {
                // serde refuses a field given twice; its message is the old way's to give.
                if std::mem::replace(&mut seen[k], true) {
                    return None;
                }
                if &self.b[value.clone()] != b"null" {
                    fields[k] = Some(value);
                }
            }
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b'}' => {
                    return Some(Scanned {
                        range: start..self.i,
                        fields,
                    })
                }
                _ => return None,
            }
        }
    }

    /// Any JSON value, inside `depth` levels of arrays and objects of the entry.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' if depth + 1 >= MAX_DEPTH => None,
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; what follows is the caller's to check.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digit()?;
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.digit()?;
            self.digits();
        }
        Some(())
    }

    fn digit(&mut self) -> Option<()> {
        self.next()?.is_ascii_digit().then_some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters; its range, quotes included. The text
    /// is UTF-8 already (the caller checked), so any other byte may be in it.
    fn string(&mut self) -> Option<Range<usize>> {
        let start = self.i;
        self.eat(b'"')?;
        loop {
            match self.next()? {
                b'"' => return Some(start..self.i),
                b'\\' | 0..=0x1f => return None,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Option<Vec<Vec<Option<&str>>>> {
        entries(text).map(|es| {
            es.iter()
                .map(|e| {
                    e.fields
                        .iter()
                        .map(|f| f.clone().map(|r| &text[r]))
                        .collect()
                })
                .collect()
        })
    }

    #[test]
    fn finds_the_fields_and_the_entries() {
        let text = r#" [ {"name": "m", "version":"v1", "x": {"name": [1, -2.5e3, true, null]},
            "is_production": false, "promoted_at": null} , {} ] "#;
        let es = entries(text).unwrap();
        assert_eq!(es.len(), 2);
        assert!(text[es[0].range.clone()].starts_with("{\"name\""));
        assert!(text[es[0].range.clone()].ends_with("null}"));
        assert_eq!(&text[es[1].range.clone()], "{}");
        let f = fields(text).unwrap();
        assert_eq!(
            f[0],
            [
                Some("\"m\""),
                Some("\"v1\""),
                None,
                Some("false"),
                None,
                None
            ]
        );
        assert_eq!(f[1], [None; 6]);
        assert_eq!(fields("[]").unwrap().len(), 0);
    }

    #[test]
    fn is_unsure_of_what_the_old_way_must_read_or_word() {
        for text in [
            "",
            "{}",
            "[",
            "[{}",
            "[{},]",
            "[{}] x",
            "[1]",
            r#"[{"name": "a\"b"}]"#,
            r#"[{"name": "a", "name": "b"}]"#,
            r#"[{"name": null, "name": "b"}]"#,
            "[{\"a\": \"tab\there\"}]",
            r#"[{"a": 01}]"#,
            r#"[{"a": 1.}]"#,
            r#"[{"a": -}]"#,
            r#"[{"a": 1e}]"#,
            r#"[{"a": tru}]"#,
            r#"[{"a": [1,]}]"#,
            r#"[{"a": {"b" 1}}]"#,
            r#"[{"a": 1 "b": 2}]"#,
        ] {
            assert!(entries(text).is_none(), "{text}");
        }
        let deep = format!("[{{\"a\": {}{}}}]", "[".repeat(200), "]".repeat(200));
        assert!(entries(&deep).is_none());
    }
}
