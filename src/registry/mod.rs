//! The model registry as a domain: entries, their [`Status`], and the rules for production,
//! previous and consistency, independent of where the registry is kept.
//!
//! An entry has at least `name`, `version`, `model_path`, `is_production`, `status`
//! (`staging`, `production`, `superseded`, `archived`), `created_at`, `promoted_at` and
//! `metrics`. Each is kept as its exact JSON text plus the few fields the rules read, so a
//! store can write back an entry a run did not change byte for byte (unknown fields, key
//! order and formatting survive), and a 10,000-version registry is neither parsed into maps
//! nor re-serialised to change two entries.
//!
//! The "previous production" version is the `superseded` entry of that name with the latest
//! `promoted_at`. A rollback therefore has to take the bad version out of the superseded pool
//! (archive or remove it), or a second rollback would pick it again.
//!
//! Names and versions are data, never patterns or paths: they are checked against a small
//! character set when the registry is read, so a version `*` or `v5/../../etc` is refused
//! before any rule or any runbook glob sees it.
//!
//! Where the registry lives is a [`Store`] (`store.rs`), chosen by the workspace's
//! configuration: the JSON file store (`json_store.rs`, the default) or the MLflow Model
//! Registry (`mlflow_store.rs`).

mod json_store;
mod mlflow_store;
mod scan;
mod store;

pub use json_store::{parse as parse_json_registry, render as render_json_registry, JsonFileStore};
pub use mlflow_store::{MlflowConfig, MlflowStore, LOCK_MODEL};
pub use store::{open as open_store, unlock, Store, StoreConfig, CONFIG_FILE};

use crate::error::{Error, Result};
use chrono::{DateTime, FixedOffset};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::rc::Rc;

/// Where a version stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Staging,
    Production,
    Superseded,
    Archived,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Staging,
        Status::Production,
        Status::Superseded,
        Status::Archived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Staging => "staging",
            Status::Production => "production",
            Status::Superseded => "superseded",
            Status::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// An entry's JSON text: a range of the registry file as it was read (no copy per entry),
/// or text of its own (an entry a run changed or made, or one read the slow way).
#[derive(Clone, Debug)]
enum Text {
    Own(Box<str>),
    Part(Rc<str>, std::ops::Range<usize>),
}

impl Text {
    fn as_str(&self) -> &str {
        match self {
            Text::Own(s) => s,
            Text::Part(file, range) => &file[range.clone()],
        }
    }
}

/// One registry entry: its JSON text (valid JSON, checked when the entry was read), and
/// the fields the rules read.
#[derive(Clone, Debug)]
pub struct Entry {
    raw: Text,
    pub name: String,
    pub version: String,
    pub model_path: String,
    pub is_production: bool,
    pub status: Status,
    pub promoted_at: Option<DateTime<FixedOffset>>,
}

/// The fields an entry must have, read without building a map of the whole entry: each
/// is borrowed as its JSON text and looked at only as far as the rules need, so a
/// 10,000-entry registry is read without an allocation per field.
#[derive(serde::Deserialize)]
struct SerdeFields<'a> {
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    version: Option<&'a RawValue>,
    #[serde(borrow)]
    model_path: Option<&'a RawValue>,
    #[serde(borrow)]
    is_production: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<&'a RawValue>,
    #[serde(borrow)]
    promoted_at: Option<&'a RawValue>,
}

/// The raw JSON text of each field the rules read, `None` when the entry does not have it
/// or has `null` (as serde reads an `Option`): from serde_json ([`SerdeFields`]) or from
/// the one-pass scan of a whole file ([`scan::entries`], in [`scan::FIELDS`]'s order).
struct Fields<'a> {
    name: Option<&'a str>,
    version: Option<&'a str>,
    model_path: Option<&'a str>,
    is_production: Option<&'a str>,
    status: Option<&'a str>,
    promoted_at: Option<&'a str>,
}

/// A field's value when it is a JSON string (escapes decoded), else `None`.
fn as_string(v: Option<&str>) -> Option<std::borrow::Cow<'_, str>> {
    let text = v?;
    if !text.starts_with('"') {
        return None;
    }
    // Valid JSON text without a backslash is the string itself between its quotes (the
    // parser already refused control characters): no decoding needed.
    if text.len() >= 2 && !text.as_bytes().contains(&b'\\') {
        return Some(std::borrow::Cow::Borrowed(&text[1..text.len() - 1]));
    }
    serde_json::from_str(text).ok()
}

/// serde_json's recursion limit: an entry nested deeper cannot be read as a value.
const MAX_NESTING: usize = 127;

/// How deep the arrays and objects of valid JSON text nest (brackets in strings skipped).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Whether `s` may be a model name or version: letters, digits, `.`, `_`, `-`, `+`, starting
/// with a letter or digit, at most 128 characters.
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
}

/// An entry's fields as the rules read them, before its text is attached.
struct Head {
    name: String,
    version: String,
    model_path: String,
    is_production: bool,
    status: Status,
    promoted_at: Option<DateTime<FixedOffset>>,
}

impl Head {
    /// Read and validate the fields of an entry's JSON text. Parsing the fields checks the
    /// whole text: serde_json checks the syntax of the values it skips too. `nested_ok`
    /// says the text is known to nest no deeper than serde_json's limit (an element of a
    /// whole file's array, which the split or the full parse limited already).
    fn read(raw: &str, nested_ok: bool) -> std::result::Result<Head, String> {
        let f: SerdeFields = serde_json::from_str(raw).map_err(|e| {
            if e.is_syntax() || e.to_string().contains("recursion") {
                format!(
                    "cannot be read: {}",
                    e.to_string().split(" at line").next().unwrap_or_default()
                )
            } else {
                "is not an object".to_string()
            }
        })?;
        // Deeper than serde_json's nesting limit, every later read of the entry would fail;
        // a scan of the brackets says so without parsing the entry a second time. Text with
        // no more opening brackets than the limit cannot nest deeper: one vectorised count
        // spares every ordinary entry the scan.
        if !nested_ok
            && raw.bytes().filter(|b| matches!(b, b'[' | b'{')).count() > MAX_NESTING
            && nesting_depth(raw) > MAX_NESTING
        {
            return Err(format!(
                "cannot be read: it nests more than {MAX_NESTING} levels deep"
            ));
        }
        Head::from_fields(Fields {
            name: f.name.map(RawValue::get),
            version: f.version.map(RawValue::get),
            model_path: f.model_path.map(RawValue::get),
            is_production: f.is_production.map(RawValue::get),
            status: f.status.map(RawValue::get),
            promoted_at: f.promoted_at.map(RawValue::get),
        })
    }

    /// Check the fields' values against the rules (the entry's text is valid JSON).
    fn from_fields(f: Fields) -> std::result::Result<Head, String> {
        // Who the entry is, for a message: made only when there is something to say.
        let who = || {
            let text = |v: Option<&str>| {
                as_string(v)
                    .as_deref()
                    .unwrap_or("?")
                    .chars()
                    .take(40)
                    .collect::<String>()
            };
            format!("(`{}` `{}`)", text(f.name), text(f.version))
        };
        let required = |key: &str, v: Option<&str>| match as_string(v) {
            Some(s) if !s.is_empty() => Ok(s.into_owned()),
            _ => Err(format!("{}: `{key}` must be a non-empty string", who())),
        };
        let name = required("name", f.name)?;
        let version = required("version", f.version)?;
        for (key, value) in [("name", &name), ("version", &version)] {
            if !is_plain_name(value) {
                return Err(format!(
                    "{}: `{key}` may hold only letters, digits, `.`, `_`, `-` and `+` (starting with a letter or digit), so that it can never act as a path or a pattern", who()
                ));
            }
        }
        let model_path = required("model_path", f.model_path)?;
        let is_production = match f.is_production {
            Some("true") => true,
            Some("false") => false,
            _ => return Err(format!("{}: `is_production` must be true or false", who())),
        };
        let Some(status) = as_string(f.status).and_then(|s| Status::parse(&s)) else {
            return Err(format!(
                "{}: `status` must be one of staging, production, superseded, archived (got {})",
                who(),
                f.status.unwrap_or("nothing")
            ));
        };
        let promoted_at = match f.promoted_at {
            None | Some("null") => None,
            Some(text) => match as_string(f.promoted_at) {
                Some(s) => Some(DateTime::parse_from_rfc3339(&s).map_err(|_| {
                    format!(
                        "{}: `promoted_at` must be an RFC 3339 time or null, got `{s}`",
                        who()
                    )
                })?),
                None => {
                    return Err(format!(
                        "{}: `promoted_at` must be an RFC 3339 time or null, got {text}",
                        who()
                    ))
                }
            },
        };
        Ok(Head {
            name,
            version,
            model_path,
            is_production,
            status,
            promoted_at,
        })
    }

    fn with(self, raw: Text) -> Entry {
        Entry {
            raw,
            name: self.name,
            version: self.version,
            model_path: self.model_path,
            is_production: self.is_production,
            status: self.status,
            promoted_at: self.promoted_at,
        }
    }
}

impl Entry {
    /// Read and validate an entry from its JSON text.
    pub fn from_raw(raw: String) -> std::result::Result<Entry, String> {
        let head = Head::read(&raw, false)?;
        Ok(head.with(Text::Own(raw.into_boxed_str())))
    }

    /// [`Entry::from_raw`] for an element of a whole registry file's top-level array, as
    /// `json_store` splits it (its nesting is checked by the split or the full parse): the
    /// entry's text is copied once, after it was found valid.
    pub fn from_borrowed(raw: &str) -> std::result::Result<Entry, String> {
        let head = Head::read(raw, true)?;
        Ok(head.with(Text::Own(raw.into())))
    }

    /// [`Entry::from_borrowed`] for the element at `range` of a registry file's text, which
    /// the entry keeps a share of instead of a copy.
    pub fn from_part(
        file: &Rc<str>,
        range: std::ops::Range<usize>,
    ) -> std::result::Result<Entry, String> {
        let head = Head::read(&file[range.clone()], true)?;
        Ok(head.with(Text::Part(file.clone(), range)))
    }

    /// [`Entry::from_part`] for an entry the one-pass scan found ([`scan::entries`]): its
    /// text was checked by the scan, and its fields are where the scan says.
    pub fn from_scanned(
        file: &Rc<str>,
        scanned: scan::Scanned,
    ) -> std::result::Result<Entry, String> {
        let field = |k: usize| scanned.fields[k].clone().map(|r| &file[r]);
        let head = Head::from_fields(Fields {
            name: field(0),
            version: field(1),
            model_path: field(2),
            is_production: field(3),
            status: field(4),
            promoted_at: field(5),
        })?;
        Ok(head.with(Text::Part(file.clone(), scanned.range)))
    }

    /// An entry from a JSON value (a new or changed entry), formatted like the file's own.
    pub fn from_value(v: &Value) -> std::result::Result<Entry, String> {
        let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
        // Indented one level, as an element of the top-level array.
        Entry::from_raw(text.replace('\n', "\n  "))
    }

    /// The entry's exact JSON text.
    pub fn raw(&self) -> &str {
        self.raw.as_str()
    }

    /// The whole entry as a JSON value (key order kept). Checked readable when the entry
    /// was made, so this cannot fail.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.raw()).unwrap_or(Value::Null)
    }

    /// Change the entry through its JSON value; returns the new value.
    fn edit(&mut self, change: impl FnOnce(&mut Value)) -> Result<Value> {
        let mut v = self.value();
        change(&mut v);
        *self = Entry::from_value(&v).map_err(|m| Error::invalid("registry entry", m))?;
        Ok(v)
    }
}

/// The whole registry, in its stored order. Entries are shared: a change clones the list
/// (one reference count per entry) and copies only the entries it edits.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    pub entries: Vec<Rc<Entry>>,
}

/// One changed entry, for the history.
#[derive(Clone, Debug)]
pub struct Changed {
    /// The operation that changed it (`set_production`, ...): a merged [`Change`] holds
    /// entries of several.
    pub op: &'static str,
    pub name: String,
    pub version: String,
    pub old: Value,
    pub new: Value,
}

/// A change to apply: what the registry becomes, and which entries changed how.
#[derive(Clone, Debug)]
pub struct Change {
    pub next: Registry,
    /// Never empty: each operation changes at least one entry.
    pub changed: Vec<Changed>,
}

impl Change {
    /// This change followed by `later`, which was computed on this one's `next`: one
    /// write of `later.next` makes both. Every entry change is kept, in order, so the
    /// history still records each operation (an entry archived and then removed has two
    /// records), and a server store sends each.
    pub fn then(mut self, later: Change) -> Change {
        self.next = later.next;
        self.changed.extend(later.changed);
        self
    }

    /// `set_production`, `archive`, `remove` or `register`: the (first) operation.
    pub fn op(&self) -> &'static str {
        self.changed.first().map_or("change", |c| c.op)
    }

    /// The operations in the change, in order and each once, joined by `+`
    /// (`set_production+remove`); a single operation's change is named by it alone.
    pub fn ops(&self) -> String {
        let mut ops: Vec<&str> = Vec::new();
        for c in &self.changed {
            if !ops.contains(&c.op) {
                ops.push(c.op);
            }
        }
        ops.join("+")
    }
}

impl Registry {
    pub fn find(&self, name: &str, version: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.name == name && e.version == version)
    }

    pub fn get(&self, name: &str, version: &str) -> Option<&Entry> {
        self.find(name, version).map(|i| &*self.entries[i])
    }

    pub fn versions<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .map(|e| &**e)
            .filter(move |e| e.name == name)
    }

    /// The production entry of `name`; an error when there is more than one.
    pub fn production(&self, store: &str, name: &str) -> Result<Option<&Entry>> {
        let mut prod = self
            .entries
            .iter()
            .map(|e| &**e)
            .filter(|e| e.name == name && e.is_production);
        let first = prod.next();
        if let Some(second) = prod.next() {
            return Err(Error::registry(
                store,
                format!(
                    "`{name}` has more than one production version (`{}` and `{}`); fix the registry by hand or with `registry::set_production`",
                    first.unwrap_or(second).version,
                    second.version
                ),
            ));
        }
        Ok(first)
    }

    /// The `superseded` entry of `name` with the latest `promoted_at`.
    pub fn previous(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .map(|e| &**e)
            .filter(|e| e.name == name && e.status == Status::Superseded)
            .filter_map(|e| Some((e.promoted_at?, e)))
            .max_by_key(|(at, _)| *at)
            .map(|(_, e)| e)
    }

    /// Refuse a registry no rule can work on safely, naming the entry: a version listed
    /// twice, two production versions of one name, `is_production` disagreeing with
    /// `status`. Checked when the registry is read, so a hand-edited registry stops a run
    /// before it changes anything, instead of in its verify step after everything changed.
    pub fn validate(&self, store: &str) -> Result<()> {
        let mut seen =
            foldhash::HashMap::with_capacity_and_hasher(self.entries.len(), Default::default());
        let mut production: foldhash::HashMap<&str, usize> = Default::default();
        for (i, e) in self.entries.iter().enumerate() {
            let (name, version) = (e.name.as_str(), e.version.as_str());
            if let Some(first) = seen.insert((name, version), i) {
                return Err(Error::registry(
                    store,
                    format!("entries {} and {} are both `{name}` `{version}`; remove one by hand (nothing was changed)", first + 1, i + 1),
                ));
            }
            if e.is_production != (e.status == Status::Production) {
                return Err(Error::registry(
                    store,
                    format!(
                        "entry {} (`{name}` `{version}`) has is_production {} but status `{}`; make them agree by hand (nothing was changed)",
                        i + 1,
                        e.is_production,
                        e.status.as_str()
                    ),
                ));
            }
            if e.is_production {
                if let Some(first) = production.insert(name, i) {
                    return Err(Error::registry(
                        store,
                        format!(
                            "`{name}` has two production versions (`{}` in entry {} and `{version}` in entry {}); fix the registry by hand (nothing was changed)",
                            self.entries[first].version,
                            first + 1,
                            i + 1
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Problems that make the registry inconsistent: duplicate versions, more than one
    /// production version of a name, `is_production` disagreeing with `status`, and model
    /// files that do not exist (`exists[i]` says whether entry `i`'s does).
    pub fn check(&self, exists: &[bool]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen =
            foldhash::HashSet::with_capacity_and_hasher(self.entries.len(), Default::default());
        let mut production_count: std::collections::BTreeMap<&str, usize> = Default::default();
        for (e, exists) in self.entries.iter().zip(exists) {
            let (name, version) = (e.name.as_str(), e.version.as_str());
            if !seen.insert((name, version)) {
                problems.push(format!("`{name}` `{version}` appears more than once"));
            }
            if e.is_production {
                *production_count.entry(name).or_default() += 1;
            }
            if e.is_production != (e.status == Status::Production) {
                problems.push(format!(
                    "`{name}` `{version}`: is_production is {} but status is `{}`",
                    e.is_production,
                    e.status.as_str()
                ));
            }
            if !exists {
                problems.push(format!(
                    "`{name}` `{version}`: model file `{}` does not exist",
                    e.model_path
                ));
            }
        }
        for (name, n) in production_count {
            if n > 1 {
                problems.push(format!("`{name}` has {n} production versions"));
            }
        }
        problems
    }
}

fn not_found(store: &str, name: &str, version: &str) -> Error {
    Error::registry(
        store,
        format!("there is no version `{version}` of `{name}`; `registry::versions(\"{name}\")` lists them"),
    )
}

fn now_value() -> Value {
    Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Make `version` production; the old production version gets `demoted` (`superseded` for a
/// normal promotion, `archived` for a rollback, so that no moment exists in which the bad
/// version is the newest superseded one). `model_exists` says whether the version's model
/// file is there. `None` when it already is production.
pub fn set_production(
    reg: &Registry,
    store: &str,
    name: &str,
    version: &str,
    demoted: Status,
    model_exists: impl Fn(&str) -> bool,
) -> Result<Option<(Change, Option<String>)>> {
    if !matches!(demoted, Status::Superseded | Status::Archived) {
        return Err(Error::invalid(
            "registry::set_production",
            format!(
                "the old production version can become `superseded` or `archived`, not `{}`",
                demoted.as_str()
            ),
        ));
    }
    let idx = reg
        .find(name, version)
        .ok_or_else(|| not_found(store, name, version))?;
    if reg.entries[idx].is_production {
        return Ok(None);
    }
    let model_path = reg.entries[idx].model_path.clone();
    if !model_exists(&model_path) {
        return Err(Error::registry(
            store,
            format!("model file `{model_path}` of `{name}` `{version}` does not exist; refusing to make it production"),
        ));
    }
    let mut next = reg.clone();
    let mut changed = Vec::new();
    let mut demoted_version = None;
    for (i, e) in next.entries.iter_mut().enumerate() {
        if i != idx && e.name == name && e.is_production {
            let old = e.value();
            let new = Rc::make_mut(e).edit(|v| {
                v["is_production"] = Value::Bool(false);
                v["status"] = Value::from(demoted.as_str());
            })?;
            demoted_version = Some(e.version.clone());
            changed.push(Changed {
                op: "set_production",
                name: name.into(),
                version: e.version.clone(),
                old,
                new,
            });
        }
    }
    let e = Rc::make_mut(&mut next.entries[idx]);
    let old = e.value();
    let new = e.edit(|v| {
        v["is_production"] = Value::Bool(true);
        v["status"] = Value::from("production");
        v["promoted_at"] = now_value();
    })?;
    changed.push(Changed {
        op: "set_production",
        name: name.into(),
        version: version.into(),
        old,
        new,
    });
    Ok(Some((Change { next, changed }, demoted_version)))
}

/// Mark `version` archived; `None` when it already is. Refuses the production version.
pub fn archive(reg: &Registry, store: &str, name: &str, version: &str) -> Result<Option<Change>> {
    let idx = reg
        .find(name, version)
        .ok_or_else(|| not_found(store, name, version))?;
    let e = &reg.entries[idx];
    if e.is_production {
        return Err(Error::registry(
            store,
            format!("`{name}` `{version}` is production; archiving it would leave no production version, so make another version production first"),
        ));
    }
    if e.status == Status::Archived {
        return Ok(None);
    }
    let mut next = reg.clone();
    let e = Rc::make_mut(&mut next.entries[idx]);
    let old = e.value();
    let new = e.edit(|v| v["status"] = Value::from("archived"))?;
    Ok(Some(Change {
        next,
        changed: vec![Changed {
            op: "archive",
            name: name.into(),
            version: version.into(),
            old,
            new,
        }],
    }))
}

/// Take `version` out of the registry; returns the change and the removed entry.
pub fn remove(reg: &Registry, store: &str, name: &str, version: &str) -> Result<(Change, Value)> {
    let idx = reg
        .find(name, version)
        .ok_or_else(|| not_found(store, name, version))?;
    if reg.entries[idx].is_production {
        return Err(Error::registry(
            store,
            format!("`{name}` `{version}` is production; make another version production before removing it"),
        ));
    }
    let mut next = reg.clone();
    let old = next.entries.remove(idx).value();
    Ok((
        Change {
            next,
            changed: vec![Changed {
                op: "remove",
                name: name.into(),
                version: version.into(),
                old: old.clone(),
                new: Value::Null,
            }],
        },
        old,
    ))
}

/// Add a new entry (defaults filled in); returns the change and the stored entry.
pub fn register(reg: &Registry, store: &str, entry: Value) -> Result<(Change, Value)> {
    let Value::Object(mut obj) = entry else {
        return Err(Error::invalid(
            "registry::register",
            "expects a map with at least `name`, `version` and `model_path`",
        ));
    };
    obj.entry("is_production").or_insert(Value::Bool(false));
    obj.entry("status").or_insert(Value::from("staging"));
    obj.entry("created_at").or_insert_with(now_value);
    obj.entry("promoted_at").or_insert(Value::Null);
    obj.entry("metrics").or_insert_with(|| json!({}));
    let value = Value::Object(obj);
    let entry = Entry::from_value(&value)
        .map_err(|m| Error::invalid("registry::register", format!("the new entry {m}")))?;
    if entry.is_production {
        return Err(Error::invalid(
            "registry::register",
            "register the entry first, then promote it with `registry::set_production`",
        ));
    }
    let (name, version) = (entry.name.clone(), entry.version.clone());
    if reg.find(&name, &version).is_some() {
        return Err(Error::registry(
            store,
            format!("`{name}` `{version}` is already registered"),
        ));
    }
    let mut next = reg.clone();
    next.entries.push(Rc::new(entry));
    Ok((
        Change {
            next,
            changed: vec![Changed {
                op: "register",
                name,
                version,
                old: Value::Null,
                new: value.clone(),
            }],
        },
        value,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &str, status: &str, promoted: Option<&str>) -> Rc<Entry> {
        Rc::new(Entry::from_value(&json!({"name": "m", "version": v, "model_path": format!("models/{v}"), "is_production": status == "production",
               "status": status, "created_at": "2026-01-01T00:00:00Z", "promoted_at": promoted, "metrics": {}}))
        .unwrap())
    }

    #[test]
    fn previous_is_latest_promoted_superseded() {
        let reg = Registry {
            entries: vec![
                entry("v1", "superseded", Some("2026-01-01T00:00:00Z")),
                entry("v2", "superseded", Some("2026-01-03T00:00:00Z")),
                entry("v3", "archived", Some("2026-01-04T00:00:00Z")),
                entry("v4", "superseded", None),
                entry("v5", "production", Some("2026-01-05T00:00:00Z")),
            ],
        };
        assert_eq!(reg.previous("m").unwrap().version, "v2");
        assert!(reg.previous("other").is_none());
    }

    #[test]
    fn versions_and_names_are_plain_data() {
        for bad in ["*", "v5/../../etc", "", ".hidden", "v 1", "v[1]"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        for good in ["v1", "1.2.3", "sl_forecaster", "v2-rc+1"] {
            assert!(is_plain_name(good), "{good:?}");
        }
        let e = Entry::from_value(
            &json!({"name": "m", "version": "*", "model_path": "x", "is_production": false, "status": "staging"}),
        );
        assert!(e.unwrap_err().contains("`version` may hold only"));
    }

    #[test]
    fn nesting_depth_skips_strings() {
        assert_eq!(nesting_depth(r#"{"a": [1, {"b": "[[[{"}]}"#), 3);
        assert_eq!(nesting_depth(r#""\"[""#), 0);
    }

    #[test]
    fn deeply_nested_entries_are_refused_not_a_panic() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let text = format!(
            r#"{{"name":"m","version":"v1","model_path":"x","is_production":true,"status":"production","metrics":{deep}}}"#
        );
        assert!(Entry::from_raw(text).is_err());
    }
}
