//! The runbook header: the leading `//!` comment lines of a script, `key: value` each.
//!
//! A header names the runbook, gives its semver version and a description, and declares its
//! parameters, so that `runbook list` can describe a runbook without running it and
//! `--param` values can be checked before anything runs:
//!
//! ```text
//! //! name: full_rollback
//! //! version: 1.0.0
//! //! description: Revert a model to its previous production version.
//! //! param model: string = "sl_forecaster" -- registry name of the model to roll back
//! //! param threshold: float? -- MSE gate; unset means the training config decides
//! ```
//!
//! A parameter line is `param NAME: TYPE [= DEFAULT] -- DESCRIPTION`. TYPE is one of `string`,
//! `int`, `float`, `bool` or `list` (comma-separated strings). A `?` after the type makes the
//! parameter optional with no default (the script sees `()`); a parameter with neither a
//! default nor `?` is required. Unknown header keys are kept (and listed) but not interpreted.

use crate::error::{Error, Result};
use rhai::{Array, Dynamic, Map};
use std::collections::BTreeMap;

/// The type a parameter's value is checked against and converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Int,
    Float,
    Bool,
    List,
}

impl ParamType {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "string" | "str" => ParamType::String,
            "int" | "integer" => ParamType::Int,
            "float" | "number" => ParamType::Float,
            "bool" | "boolean" => ParamType::Bool,
            "list" => ParamType::List,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::List => "list",
        }
    }
}

/// A typed parameter value, converted from its text once, at the boundary.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<String>),
    /// An optional parameter that was not given.
    Unset,
}

impl ParamValue {
    pub fn to_dynamic(&self) -> Dynamic {
        match self {
            ParamValue::String(s) => s.clone().into(),
            ParamValue::Int(i) => (*i).into(),
            ParamValue::Float(f) => (*f).into(),
            ParamValue::Bool(b) => (*b).into(),
            ParamValue::List(items) => {
                let arr: Array = items.iter().map(|s| Dynamic::from(s.clone())).collect();
                arr.into()
            }
            ParamValue::Unset => Dynamic::UNIT,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            ParamValue::String(s) => Value::from(s.as_str()),
            ParamValue::Int(i) => Value::from(*i),
            ParamValue::Float(f) => Value::from(*f),
            ParamValue::Bool(b) => Value::from(*b),
            ParamValue::List(items) => Value::from(items.clone()),
            ParamValue::Unset => Value::Null,
        }
    }

    /// Convert a parameter's text to its declared type.
    pub fn parse(ty: ParamType, text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        match ty {
            ParamType::String => Ok(ParamValue::String(unquote(text).to_string())),
            ParamType::Int => text
                .parse()
                .map(ParamValue::Int)
                .map_err(|_| format!("expects an int, got `{text}`")),
            ParamType::Float => text
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(ParamValue::Float)
                .ok_or_else(|| format!("expects a float, got `{text}`")),
            ParamType::Bool => match text {
                "true" | "yes" | "1" => Ok(ParamValue::Bool(true)),
                "false" | "no" | "0" => Ok(ParamValue::Bool(false)),
                _ => Err(format!("expects true or false, got `{text}`")),
            },
            ParamType::List => Ok(ParamValue::List(
                unquote(text)
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            )),
        }
    }
}

fn unquote(text: &str) -> &str {
    let t = text.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        &t[1..t.len() - 1]
    } else {
        t
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub ty: ParamType,
    /// `None` with `optional == false` means the parameter is required.
    pub default: Option<ParamValue>,
    pub optional: bool,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub name: String,
    pub version: semver::Version,
    pub description: String,
    pub params: Vec<ParamSpec>,
    /// Header keys this version does not interpret (`author`, `owner`...), kept for `list`.
    pub extra: BTreeMap<String, String>,
}

impl Header {
    /// Parse the header of a runbook's text. `file` is used in error messages only.
    pub fn parse(file: &str, text: &str) -> Result<Header> {
        let mut fields: BTreeMap<String, (usize, String)> = BTreeMap::new();
        let mut params = Vec::new();
        let mut last_line = 0;
        for (idx, line) in text.lines().enumerate() {
            let line_no = idx + 1;
            let trimmed = line.trim_start();
            // The header is the leading block of `//!` lines; a shebang or blank lines may precede it.
            if trimmed.is_empty() || (idx == 0 && trimmed.starts_with("#!")) {
                if fields.is_empty() && params.is_empty() {
                    continue;
                }
                break;
            }
            let Some(body) = trimmed.strip_prefix("//!") else {
                break;
            };
            last_line = line_no;
            let body = body.trim();
            if body.is_empty() {
                continue;
            }
            if let Some(rest) = body.strip_prefix("param ") {
                params.push(parse_param(file, line_no, rest)?);
                continue;
            }
            let Some((key, value)) = body.split_once(':') else {
                return Err(header_err(
                    file,
                    line_no,
                    format!("expected `key: value`, got `{body}`"),
                ));
            };
            let key = key.trim().to_string();
            if fields
                .insert(key.clone(), (line_no, value.trim().to_string()))
                .is_some()
            {
                return Err(header_err(file, line_no, format!("`{key}` is given twice")));
            }
        }
        // A key that is one or two letters from a known one is a typo (`verison`), not an
        // extra key such as `author`: name it before "missing `version`" hides why.
        for (key, (line, _)) in &fields {
            if KNOWN_KEYS.contains(&key.as_str()) {
                continue;
            }
            if let Some(known) = suggest(key, KNOWN_KEYS) {
                return Err(header_err(
                    file,
                    *line,
                    format!("unknown header key `{key}`; did you mean `{known}`?"),
                ));
            }
        }
        let mut take = |key: &str| -> Result<(usize, String)> {
            match fields.remove(key) {
                Some((line, v)) if !v.is_empty() => Ok((line, v)),
                _ => Err(header_err(
                    file,
                    last_line.max(1),
                    format!(
                        "missing `{key}`; add a line `//! {key}: ...` at the top of the runbook"
                    ),
                )),
            }
        };
        let (_, name) = take("name")?;
        let (vline, version_text) = take("version")?;
        let (_, description) = take("description")?;
        let version = semver::Version::parse(&version_text).map_err(|e| {
            header_err(
                file,
                vline,
                format!("version `{version_text}` is not semver ({e}); write it like `1.0.0`"),
            )
        })?;
        let mut seen = std::collections::HashSet::new();
        for p in &params {
            if !seen.insert(p.name.clone()) {
                return Err(header_err(
                    file,
                    last_line,
                    format!("parameter `{}` is declared twice", p.name),
                ));
            }
        }
        Ok(Header {
            name,
            version,
            description,
            params,
            extra: fields.into_iter().map(|(k, (_, v))| (k, v)).collect(),
        })
    }

    /// Check `--param KEY=VALUE` pairs against the declared parameters and return every
    /// parameter's value, defaults filled in.
    pub fn resolve_params(&self, given: &[(String, String)]) -> Result<Vec<(String, ParamValue)>> {
        let mut values: BTreeMap<&str, ParamValue> = BTreeMap::new();
        for (key, text) in given {
            let Some(spec) = self.params.iter().find(|p| &p.name == key) else {
                let known: Vec<_> = self
                    .params
                    .iter()
                    .map(|p| format!("`{}`", p.name))
                    .collect();
                let known = if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                };
                return Err(Error::Usage(format!(
                    "unknown parameter `{key}` for runbook `{}`; it declares: {known}",
                    self.name
                )));
            };
            let value = ParamValue::parse(spec.ty, text)
                .map_err(|e| Error::Usage(format!("parameter `{key}` {e}")))?;
            values.insert(spec.name.as_str(), value);
        }
        let mut out = Vec::with_capacity(self.params.len());
        for spec in &self.params {
            let value = match values.remove(spec.name.as_str()) {
                Some(v) => v,
                None => match (&spec.default, spec.optional) {
                    (Some(d), _) => d.clone(),
                    (None, true) => ParamValue::Unset,
                    (None, false) => {
                        return Err(Error::Usage(format!(
                            "runbook `{}` needs parameter `{}` ({}); pass `--param {}=VALUE`",
                            self.name, spec.name, spec.description, spec.name
                        )))
                    }
                },
            };
            out.push((spec.name.clone(), value));
        }
        Ok(out)
    }
}

/// The parameters as the script sees them: a map in the constant `params`.
pub fn params_map(values: &[(String, ParamValue)]) -> Map {
    values
        .iter()
        .map(|(k, v)| (k.as_str().into(), v.to_dynamic()))
        .collect()
}

/// The header keys runbook interprets (`param` lines aside).
const KNOWN_KEYS: &[&str] = &["name", "version", "description", "param"];

/// The candidate closest to `word` when it is a likely typo of it: at most two edits away
/// (one for words of up to four letters), and not `word` itself.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = if word.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d > 0 && *d <= limit && *c != word)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, with a swap of two neighbours counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

fn header_err(file: &str, line: usize, message: String) -> Error {
    Error::Header {
        file: file.to_string(),
        line,
        message,
    }
}

fn parse_param(file: &str, line: usize, rest: &str) -> Result<ParamSpec> {
    let form = "write `//! param NAME: TYPE [= DEFAULT] -- DESCRIPTION`";
    let (decl, description) = match rest.split_once("--") {
        Some((d, desc)) => (d.trim(), desc.trim().to_string()),
        None => (rest.trim(), String::new()),
    };
    let Some((name, rest)) = decl.split_once(':') else {
        return Err(header_err(
            file,
            line,
            format!("parameter `{decl}` has no type; {form}"),
        ));
    };
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(header_err(
            file,
            line,
            format!("parameter name `{name}` must be letters, digits and `_`"),
        ));
    }
    let (ty_text, default_text) = match rest.split_once('=') {
        Some((t, d)) => (t.trim(), Some(d.trim())),
        None => (rest.trim(), None),
    };
    let (ty_text, optional) = match ty_text.strip_suffix('?') {
        Some(t) => (t.trim(), true),
        None => (ty_text, false),
    };
    let ty = ParamType::parse(ty_text).ok_or_else(|| {
        header_err(
            file,
            line,
            format!("parameter `{name}` has unknown type `{ty_text}`; use string, int, float, bool or list"),
        )
    })?;
    let default =
        match default_text {
            Some(d) => Some(ParamValue::parse(ty, d).map_err(|e| {
                header_err(file, line, format!("default of parameter `{name}` {e}"))
            })?),
            None => None,
        };
    Ok(ParamSpec {
        name: name.to_string(),
        ty,
        default,
        optional,
        description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "//! name: demo\n//! version: 1.2.3\n//! description: does things\n\
        //! param model: string = \"sl_forecaster\" -- the model\n\
        //! param threshold: float? -- the gate\n\
        //! param paths: list = src/sl/, configs/ -- where\n\
        //! param count: int -- required one\n\nstep \"x\" {}\n";

    #[test]
    fn header_key_typos_are_named_with_a_suggestion() {
        let e = Header::parse(
            "t.rhai",
            "//! name: a\n//! verison: 1.0.0\n//! description: d\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown header key `verison`; did you mean `version`?"),
            "{e}"
        );
        assert!(e.contains("(line 2)"), "{e}");
        let h = Header::parse(
            "t.rhai",
            "//! name: a\n//! version: 1.0.0\n//! description: d\n//! author: me\n",
        )
        .unwrap();
        assert_eq!(h.extra["author"], "me");
        assert_eq!(suggest("modle", &["model", "data"]), Some("model"));
        assert_eq!(suggest("xyz", &["model", "data"]), None);
    }

    #[test]
    fn parses_fields_and_params() {
        let h = Header::parse("demo.rhai", TEXT).unwrap();
        assert_eq!(h.name, "demo");
        assert_eq!(h.version.to_string(), "1.2.3");
        assert_eq!(h.params.len(), 4);
        assert_eq!(
            h.params[0].default,
            Some(ParamValue::String("sl_forecaster".into()))
        );
        assert!(h.params[1].optional);
        assert_eq!(
            h.params[2].default,
            Some(ParamValue::List(vec!["src/sl/".into(), "configs/".into()]))
        );
    }

    #[test]
    fn resolves_and_checks_params() {
        let h = Header::parse("demo.rhai", TEXT).unwrap();
        let v = h.resolve_params(&[("count".into(), "3".into())]).unwrap();
        assert_eq!(v[1].1, ParamValue::Unset);
        assert_eq!(v[3].1, ParamValue::Int(3));
        let e = h
            .resolve_params(&[("nope".into(), "1".into())])
            .unwrap_err();
        assert!(e.to_string().contains("unknown parameter `nope`"), "{e}");
        assert_eq!(e.code(), 2);
        let e = h.resolve_params(&[]).unwrap_err();
        assert!(e.to_string().contains("needs parameter `count`"), "{e}");
        let e = h
            .resolve_params(&[("count".into(), "x".into())])
            .unwrap_err();
        assert!(e.to_string().contains("expects an int"), "{e}");
    }

    #[test]
    fn missing_fields_and_bad_version_are_errors() {
        let e = Header::parse(
            "a.rhai",
            "//! name: a\n//! version: 1\n//! description: d\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not semver"), "{e}");
        let e = Header::parse("a.rhai", "//! name: a\n//! version: 1.0.0\n").unwrap_err();
        assert!(e.to_string().contains("missing `description`"), "{e}");
        let e = Header::parse("a.rhai", "let x = 1;").unwrap_err();
        assert!(e.to_string().contains("missing `name`"), "{e}");
    }
}

#[cfg(test)]
mod fuzz {
    //! Hostile headers and parameter values: an error or a header, never a panic.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_headers_never_panic(lines in proptest::collection::vec("//! ?[a-z ]{0,8}:? ?[a-zA-Z0-9_ ?=,.:-]{0,30}", 0..8)) {
            let text = lines.join("\n");
            if let Ok(h) = Header::parse("rb.rhai", &text) {
                let _ = h.resolve_params(&[]);
            }
        }

        #[test]
        fn arbitrary_parameter_values_never_panic(value in "\\PC{0,40}") {
            let text = "//! name: n\n//! version: 1.0.0\n//! description: d\n//! param a: int = 1 -- x\n//! param b: float? -- y\n//! param c: list = a,b -- z\n//! param d: bool = false -- w\n";
            let h = Header::parse("rb.rhai", text).unwrap();
            for key in ["a", "b", "c", "d", "nope"] {
                let _ = h.resolve_params(&[(key.to_string(), value.clone())]);
            }
        }
    }
}
