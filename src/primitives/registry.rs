//! `registry::` — the model registry, `models/registry.json`.
//!
//! The registry is a JSON array of entries, each with at least `name`, `version`,
//! `model_path`, `is_production`, `status` (`staging`, `production`, `superseded`,
//! `archived`), `created_at`, `promoted_at` and `metrics`. Every change is written atomically
//! through the effect layer (the old file goes to the trash) and appended to
//! `registry_history.jsonl` beside it: what changed, when, old and new values, and the run.
//!
//! Each entry is kept as its exact JSON text plus the few fields queries need. An entry a
//! run does not change is written back byte for byte, so unknown fields, key order and
//! formatting survive a rewrite, and a 10,000-version registry is neither fully parsed into
//! maps nor re-serialised to change two entries.
//!
//! The "previous production" version is the `superseded` entry of that name with the latest
//! `promoted_at`. A rollback therefore has to take the bad version out of the superseded
//! pool (archive or remove it), or a second rollback would pick it again.

use super::{dynamic_to_json, json_to_dynamic, Family, RhaiResult};
use crate::context::{Ctx, RunContext};
use crate::effects::{RelPath, Stamp};
use crate::error::{Error, Result};
use crate::journal::{now_rfc3339, ActionKind};
use chrono::{DateTime, FixedOffset};
use rhai::{Array, Dynamic, Map, NativeCallContext};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::rc::Rc;

pub const DEFAULT_PATH: &str = "models/registry.json";
const STATUSES: &[&str] = &["staging", "production", "superseded", "archived"];

/// One registry entry: its JSON text, and the fields the registry's logic reads.
#[derive(Clone, Debug)]
pub struct Entry {
    raw: Box<RawValue>,
    name: String,
    version: String,
    model_path: String,
    is_production: bool,
    status: String,
    promoted_at: Option<DateTime<FixedOffset>>,
}

/// The fields an entry must have, read without building a map of the whole entry.
#[derive(serde::Deserialize)]
struct Fields {
    name: Option<Value>,
    version: Option<Value>,
    model_path: Option<Value>,
    is_production: Option<Value>,
    status: Option<Value>,
    promoted_at: Option<Value>,
}

impl Entry {
    /// Read and validate an entry from its JSON text.
    fn from_raw(raw: Box<RawValue>) -> std::result::Result<Entry, String> {
        let f: Fields =
            serde_json::from_str(raw.get()).map_err(|_| "is not an object".to_string())?;
        let text = |v: &Option<Value>| {
            v.as_ref()
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        };
        let who = format!("(`{}` `{}`)", text(&f.name), text(&f.version));
        let required = |key: &str, v: &Option<Value>| match v {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(format!("{who}: `{key}` must be a non-empty string")),
        };
        let name = required("name", &f.name)?;
        let version = required("version", &f.version)?;
        let model_path = required("model_path", &f.model_path)?;
        let Some(Value::Bool(is_production)) = f.is_production else {
            return Err(format!("{who}: `is_production` must be true or false"));
        };
        let status = match f.status {
            Some(Value::String(s)) if STATUSES.contains(&s.as_str()) => s,
            other => {
                return Err(format!(
                "{who}: `status` must be one of staging, production, superseded, archived (got {})",
                other
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "nothing".into())
            ))
            }
        };
        let promoted_at = match f.promoted_at {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(DateTime::parse_from_rfc3339(&s).map_err(|_| {
                format!("{who}: `promoted_at` must be an RFC 3339 time or null, got `{s}`")
            })?),
            Some(other) => {
                return Err(format!(
                    "{who}: `promoted_at` must be an RFC 3339 time or null, got {other}"
                ))
            }
        };
        Ok(Entry {
            raw,
            name,
            version,
            model_path,
            is_production,
            status,
            promoted_at,
        })
    }

    /// An entry from a JSON value (a new or changed entry), formatted like the file's own.
    fn from_value(v: &Value) -> std::result::Result<Entry, String> {
        let text = serde_json::to_string_pretty(v).expect("JSON values always serialise");
        // Indented one level, as an element of the top-level array.
        let raw =
            RawValue::from_string(text.replace('\n', "\n  ")).expect("serde_json wrote valid JSON");
        Entry::from_raw(raw)
    }

    /// The whole entry as a JSON value (key order kept).
    pub fn value(&self) -> Value {
        serde_json::from_str(self.raw.get()).expect("validated when read")
    }

    /// Change the entry through its JSON value.
    fn edit(&mut self, change: impl FnOnce(&mut Value)) -> Value {
        let mut v = self.value();
        change(&mut v);
        *self = Entry::from_value(&v).expect("an edit keeps the required fields");
        v
    }
}

/// A parsed registry kept between calls while its file is unchanged. Keyed on the file's
/// own stamp, not on "anything changed": a rollback copies and removes other files between
/// registry reads, and re-parsing 10,000 entries each time would dominate the run.
pub struct Cached {
    path: RelPath,
    stamp: Stamp,
    entries: Rc<Vec<Entry>>,
}

fn not_there(path: &RelPath, e: Error) -> Error {
    match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Error::registry(
                path.to_string(),
                "the file does not exist; is `--workspace` pointing at the right directory?",
            )
        }
        other => other,
    }
}

fn default_path(ctx: &RunContext) -> Result<RelPath> {
    ctx.ws.resolve(DEFAULT_PATH)
}

/// Load (or reuse) the registry at `path`, validating every entry.
pub fn load(ctx: &RunContext, path: &RelPath) -> Result<Rc<Vec<Entry>>> {
    let content = ctx.ws.content(path).map_err(|e| not_there(path, e))?;
    let stamp = Stamp::of(&content, path)?;
    if let Some(c) = ctx.registry_cache.borrow().as_ref() {
        if &c.path == path && c.stamp == stamp {
            return Ok(c.entries.clone());
        }
    }
    let bytes = content.bytes(path).map_err(|e| not_there(path, e))?;
    let entries = Rc::new(parse(path.as_str(), &bytes)?);
    *ctx.registry_cache.borrow_mut() = Some(Cached {
        path: path.clone(),
        stamp,
        entries: entries.clone(),
    });
    Ok(entries)
}

/// Parse and validate registry JSON.
pub fn parse(path: &str, bytes: &[u8]) -> Result<Vec<Entry>> {
    let parse_error = |e: serde_json::Error| Error::Parse {
        path: path.to_string(),
        format: "JSON",
        line: e.line(),
        column: e.column(),
        message: e
            .to_string()
            .split(" at line")
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let first = bytes.iter().position(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|i| bytes[i] != b'[') {
        // Still report a syntax error as such; only valid JSON of the wrong shape gets this.
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(parse_error)?;
        return Err(Error::Parse {
            path: path.to_string(),
            format: "registry JSON",
            line: 1,
            column: first.map(|i| i + 1).unwrap_or(1),
            message: "expected an array of entries at the top level".into(),
        });
    }
    let raws: Vec<Box<RawValue>> = serde_json::from_slice(bytes).map_err(parse_error)?;
    raws.into_iter()
        .enumerate()
        .map(|(i, raw)| {
            Entry::from_raw(raw).map_err(|m| {
                Error::registry(
                    path,
                    format!(
                        "entry {} {m}; fix the file and run again (it was left unchanged)",
                        i + 1
                    ),
                )
            })
        })
        .collect()
}

/// The registry file's text: entries a run did not change keep their exact text.
fn render(entries: &[Entry]) -> Vec<u8> {
    let mut out =
        String::with_capacity(entries.iter().map(|e| e.raw.get().len() + 4).sum::<usize>() + 4);
    out.push('[');
    for (i, e) in entries.iter().enumerate() {
        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
        out.push_str(e.raw.get());
    }
    out.push_str(if entries.is_empty() { "]\n" } else { "\n]\n" });
    out.into_bytes()
}

fn find(entries: &[Entry], name: &str, version: &str) -> Option<usize> {
    entries
        .iter()
        .position(|e| e.name == name && e.version == version)
}

pub fn production<'a>(
    path: &RelPath,
    entries: &'a [Entry],
    name: &str,
) -> Result<Option<&'a Entry>> {
    let mut prod = entries.iter().filter(|e| e.name == name && e.is_production);
    let first = prod.next();
    if let Some(second) = prod.next() {
        return Err(Error::registry(
            path.to_string(),
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
pub fn previous<'a>(entries: &'a [Entry], name: &str) -> Option<&'a Entry> {
    entries
        .iter()
        .filter(|e| e.name == name && e.status == "superseded")
        .filter_map(|e| Some((e.promoted_at?, e)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, e)| e)
}

/// Problems that make the registry inconsistent: duplicate versions, more than one
/// production version of a name, `is_production` disagreeing with `status`, and
/// `model_path`s that do not exist (as the run sees the workspace).
pub fn check(ctx: &RunContext, entries: &[Entry]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut production_count: std::collections::BTreeMap<&str, usize> = Default::default();
    let paths: Vec<&str> = entries.iter().map(|e| e.model_path.as_str()).collect();
    let exists = ctx.ws.exist_all(&paths);
    for (e, exists) in entries.iter().zip(exists) {
        let (name, version) = (e.name.as_str(), e.version.as_str());
        if !seen.insert((name, version)) {
            problems.push(format!("`{name}` `{version}` appears more than once"));
        }
        if e.is_production {
            *production_count.entry(name).or_default() += 1;
        }
        if e.is_production != (e.status == "production") {
            problems.push(format!(
                "`{name}` `{version}`: is_production is {} but status is `{}`",
                e.is_production, e.status
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

/// One registry change, for the history file.
struct Change {
    name: String,
    version: String,
    old: Value,
    new: Value,
}

/// Apply `mutate` to the registry, then write it atomically and append the history.
fn update(
    ctx: &RunContext,
    path: &RelPath,
    op: &str,
    mutate: impl FnOnce(&mut Vec<Entry>) -> Result<Vec<Change>>,
) -> Result<Vec<Change>> {
    let entries = load(ctx, path)?;
    // Take the cached copy rather than cloning 10,000 entries; the cache is refreshed below.
    ctx.registry_cache.borrow_mut().take();
    let mut entries = Rc::try_unwrap(entries).unwrap_or_else(|rc| (*rc).clone());
    let changes = mutate(&mut entries)?;
    if changes.is_empty() {
        return Ok(changes);
    }
    ctx.ws.write(path, &render(&entries))?;
    let history = path
        .parent()
        .unwrap_or_else(|| path.clone())
        .join("registry_history.jsonl");
    let ts = now_rfc3339();
    let mut lines = String::new();
    for c in &changes {
        let rec = json!({
            "ts": ts, "run_id": ctx.ws.run_id(), "op": op, "name": c.name, "version": c.version,
            "old": c.old, "new": c.new,
        });
        lines.push_str(&rec.to_string());
        lines.push('\n');
    }
    ctx.ws.append(&history, lines.as_bytes())?;
    let content = ctx.ws.content(path)?;
    *ctx.registry_cache.borrow_mut() = Some(Cached {
        path: path.clone(),
        stamp: Stamp::of(&content, path)?,
        entries: Rc::new(entries),
    });
    Ok(changes)
}

fn not_found(path: &RelPath, name: &str, version: &str) -> Error {
    Error::registry(path.to_string(), format!("there is no version `{version}` of `{name}`; `registry::versions(\"{name}\")` lists them"))
}

/// Make `version` production. The old production version gets `demoted_status`:
/// `superseded` (a normal promotion: it stays a rollback target) or `archived` (a rollback:
/// the bad version must never be picked again, and marking it in the same atomic write
/// leaves no moment in which it is the newest superseded version).
pub fn set_production(
    ctx: &RunContext,
    path: &RelPath,
    name: &str,
    version: &str,
    demoted_status: &str,
) -> Result<Option<String>> {
    if !matches!(demoted_status, "superseded" | "archived") {
        return Err(Error::invalid(
            "registry::set_production",
            format!("the old production version can become `superseded` or `archived`, not `{demoted_status}`"),
        ));
    }
    let mut demoted = None;
    let changes = update(ctx, path, "set_production", |entries| {
        let idx = find(entries, name, version).ok_or_else(|| not_found(path, name, version))?;
        if entries[idx].is_production {
            return Ok(Vec::new());
        }
        let model_path = entries[idx].model_path.clone();
        let present = ctx
            .ws
            .resolve(&model_path)
            .map(|p| ctx.ws.exists(&p))
            .unwrap_or(false);
        if !present {
            return Err(Error::registry(
                path.to_string(),
                format!("model file `{model_path}` of `{name}` `{version}` does not exist; refusing to make it production"),
            ));
        }
        let mut changes = Vec::new();
        let now =
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        for (i, e) in entries.iter_mut().enumerate() {
            if i != idx && e.name == name && e.is_production {
                let old = e.value();
                let new = e.edit(|v| {
                    v["is_production"] = Value::Bool(false);
                    v["status"] = Value::from(demoted_status);
                });
                demoted = Some(e.version.clone());
                changes.push(Change {
                    name: name.into(),
                    version: e.version.clone(),
                    old,
                    new,
                });
            }
        }
        let e = &mut entries[idx];
        let old = e.value();
        let new = e.edit(|v| {
            v["is_production"] = Value::Bool(true);
            v["status"] = Value::from("production");
            v["promoted_at"] = now;
        });
        changes.push(Change {
            name: name.into(),
            version: version.into(),
            old,
            new,
        });
        Ok(changes)
    })?;
    let summary = match (&demoted, changes.is_empty()) {
        (_, true) => format!("leave `{name}` `{version}` as production (it already is)"),
        (Some(d), _) => {
            format!("make `{name}` `{version}` production (`{d}` becomes {demoted_status})")
        }
        (None, _) => format!("make `{name}` `{version}` production"),
    };
    if !changes.is_empty() {
        ctx.journal.action(
            ActionKind::Registry,
            "registry.set_production",
            json!({"path": path.as_str(), "name": name, "version": version}),
            &summary,
            Some(json!({"demoted": demoted})),
        );
    }
    Ok(demoted)
}

pub fn archive(ctx: &RunContext, path: &RelPath, name: &str, version: &str) -> Result<()> {
    let changes = update(ctx, path, "archive", |entries| {
        let idx = find(entries, name, version).ok_or_else(|| not_found(path, name, version))?;
        let e = &mut entries[idx];
        if e.is_production {
            return Err(Error::registry(
                path.to_string(),
                format!("`{name}` `{version}` is production; archiving it would leave no production version, so make another version production first"),
            ));
        }
        if e.status == "archived" {
            return Ok(Vec::new());
        }
        let old = e.value();
        let new = e.edit(|v| v["status"] = Value::from("archived"));
        Ok(vec![Change {
            name: name.into(),
            version: version.into(),
            old,
            new,
        }])
    })?;
    if !changes.is_empty() {
        ctx.journal.action(
            ActionKind::Registry,
            "registry.archive",
            json!({"path": path.as_str(), "name": name, "version": version}),
            &format!("archive `{name}` `{version}`"),
            None,
        );
    }
    Ok(())
}

pub fn remove(ctx: &RunContext, path: &RelPath, name: &str, version: &str) -> Result<Value> {
    let mut removed = Value::Null;
    update(ctx, path, "remove", |entries| {
        let idx = find(entries, name, version).ok_or_else(|| not_found(path, name, version))?;
        if entries[idx].is_production {
            return Err(Error::registry(
                path.to_string(),
                format!("`{name}` `{version}` is production; make another version production before removing it"),
            ));
        }
        let old = entries.remove(idx).value();
        removed = old.clone();
        Ok(vec![Change {
            name: name.into(),
            version: version.into(),
            old,
            new: Value::Null,
        }])
    })?;
    ctx.journal.action(
        ActionKind::Registry,
        "registry.remove",
        json!({"path": path.as_str(), "name": name, "version": version}),
        &format!("remove `{name}` `{version}` from the registry"),
        None,
    );
    Ok(removed)
}

pub fn register(ctx: &RunContext, path: &RelPath, entry: Value) -> Result<Value> {
    let Value::Object(mut obj) = entry else {
        return Err(Error::invalid(
            "registry::register",
            "expects a map with at least `name`, `version` and `model_path`",
        ));
    };
    obj.entry("is_production").or_insert(Value::Bool(false));
    obj.entry("status").or_insert(Value::from("staging"));
    obj.entry("created_at")
        .or_insert_with(|| Value::String(now_rfc3339()));
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
    update(ctx, path, "register", |entries| {
        if find(entries, &name, &version).is_some() {
            return Err(Error::registry(
                path.to_string(),
                format!("`{name}` `{version}` is already registered"),
            ));
        }
        entries.push(entry);
        Ok(vec![Change {
            name: name.clone(),
            version: version.clone(),
            old: Value::Null,
            new: value.clone(),
        }])
    })?;
    ctx.journal.action(
        ActionKind::Registry,
        "registry.register",
        json!({"path": path.as_str(), "name": name, "version": version}),
        &format!("register `{name}` `{version}`"),
        None,
    );
    Ok(value)
}

fn entry_to_dynamic(e: &Entry) -> Dynamic {
    json_to_dynamic(&e.value())
}

/// The registry's path and its (cached) entries, for the read-only primitives.
fn loaded(ctx: &RunContext) -> Result<(RelPath, Rc<Vec<Entry>>)> {
    let path = default_path(ctx)?;
    let entries = load(ctx, &path)?;
    Ok((path, entries))
}

/// `registry::set_production` in both its forms.
fn promote(ctx: &RunContext, name: &str, version: &str, demoted_status: &str) -> Result<Dynamic> {
    let path = default_path(ctx)?;
    let demoted = set_production(ctx, &path, name, version, demoted_status)?;
    Ok(demoted.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
}

pub fn family(ctx: &Ctx) -> Family {
    let mut f = Family::new(
        "registry",
        "The model registry, `models/registry.json`: query versions, promote, archive, remove, check.",
    );
    let c = ctx.clone();
    f.add(
        "versions",
        &["name: &str", "Array"],
        "Every entry of model `name`, in file order.\n```rhai\nfor e in registry::versions(\"sl_forecaster\") { print(e.version + \" \" + e.status); }\n```",
        move |call: NativeCallContext, name: &str| -> RhaiResult<Array> {
            let (_, entries) = loaded(&c).map_err(|e| c.fail_at(&call, e))?;
            Ok(entries.iter().filter(|e| e.name == name).map(entry_to_dynamic).collect())
        },
    );
    let c = ctx.clone();
    f.add(
        "get",
        &["name: &str", "version: &str", "Dynamic"],
        "The entry for `name` `version`, or `()` when there is none.\n```rhai\nlet e = registry::get(\"sl_forecaster\", \"v4\");\nif e == () { throw \"no v4\"; }\n```",
        move |call: NativeCallContext, name: &str, version: &str| -> RhaiResult<Dynamic> {
            let (_, entries) = loaded(&c).map_err(|e| c.fail_at(&call, e))?;
            Ok(find(&entries, name, version).map(|i| entry_to_dynamic(&entries[i])).unwrap_or(Dynamic::UNIT))
        },
    );
    let c = ctx.clone();
    f.add(
        "production",
        &["name: &str", "Dynamic"],
        "The production entry of `name`, or `()` when it has none. Fails if it has more than one.\n```rhai\nlet cur = registry::production(\"sl_forecaster\");\nprint(`production is ${cur.version}`);\n```",
        move |call: NativeCallContext, name: &str| -> RhaiResult<Dynamic> {
            let (path, entries) = loaded(&c).map_err(|e| c.fail_at(&call, e))?;
            Ok(production(&path, &entries, name).map_err(|e| c.fail_at(&call, e))?.map(entry_to_dynamic).unwrap_or(Dynamic::UNIT))
        },
    );
    let c = ctx.clone();
    f.add(
        "previous",
        &["name: &str", "Dynamic"],
        "The previous production entry of `name`: the `superseded` one with the latest `promoted_at`, or `()`.\n```rhai\nlet prev = registry::previous(\"sl_forecaster\");\nassert(prev != (), \"nothing to roll back to\");\n```",
        move |call: NativeCallContext, name: &str| -> RhaiResult<Dynamic> {
            let (_, entries) = loaded(&c).map_err(|e| c.fail_at(&call, e))?;
            Ok(previous(&entries, name).map(entry_to_dynamic).unwrap_or(Dynamic::UNIT))
        },
    );
    let c = ctx.clone();
    f.add(
        "set_production",
        &["name: &str", "version: &str", "Dynamic"],
        "Make `version` the production version of `name`; the old production version becomes `superseded` and the new one gets `promoted_at` = now. Refuses a version whose model file is missing. Returns the demoted version, or `()`.\n```rhai\nregistry::set_production(\"sl_forecaster\", \"v4\");\n```",
        move |call: NativeCallContext, name: &str, version: &str| -> RhaiResult<Dynamic> {
            promote(&c, name, version, "superseded").map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "set_production",
        &["name: &str", "version: &str", "demoted_status: &str", "Dynamic"],
        "Like `registry::set_production(name, version)`, with the status the old production version gets: `superseded` or `archived`. A rollback archives the bad version in the same atomic write that promotes the good one, so there is no moment in which the bad one would be the next rollback target.\n```rhai\nregistry::set_production(\"sl_forecaster\", \"v4\", \"archived\");\n```",
        move |call: NativeCallContext, name: &str, version: &str, demoted_status: &str| -> RhaiResult<Dynamic> {
            promote(&c, name, version, demoted_status).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "archive",
        &["name: &str", "version: &str", "()"],
        "Mark `name` `version` as `archived` (it can no longer be chosen as a rollback target). Refuses the production version.\n```rhai\nregistry::archive(\"sl_forecaster\", \"v5\");\n```",
        move |call: NativeCallContext, name: &str, version: &str| -> RhaiResult<()> {
            let path = default_path(&c).map_err(|e| c.fail_at(&call, e))?;
            archive(&c, &path, name, version).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "remove",
        &["name: &str", "version: &str", "Map"],
        "Take `name` `version` out of the registry and return the removed entry. Refuses the production version. The old registry file is kept in the trash.\n```rhai\nlet gone = registry::remove(\"sl_forecaster\", \"v5\");\nprint(gone.model_path);\n```",
        move |call: NativeCallContext, name: &str, version: &str| -> RhaiResult<Dynamic> {
            let path = default_path(&c).map_err(|e| c.fail_at(&call, e))?;
            Ok(json_to_dynamic(&remove(&c, &path, name, version).map_err(|e| c.fail_at(&call, e))?))
        },
    );
    let c = ctx.clone();
    f.add(
        "register",
        &["entry: Map", "Map"],
        "Add a new entry (needs `name`, `version`, `model_path`; `status` defaults to `staging`, `created_at` to now). Returns the stored entry.\n```rhai\nregistry::register(#{ name: \"sl_forecaster\", version: \"v6\", model_path: \"models/sl_model_v6.json\" });\n```",
        move |call: NativeCallContext, entry: Map| -> RhaiResult<Dynamic> {
            let path = default_path(&c).map_err(|e| c.fail_at(&call, e))?;
            let json = dynamic_to_json(&Dynamic::from_map(entry));
            Ok(json_to_dynamic(&register(&c, &path, json).map_err(|e| c.fail_at(&call, e))?))
        },
    );
    let c = ctx.clone();
    f.add(
        "check",
        &["Array"],
        "Consistency problems of the whole registry, as strings (empty when consistent): duplicate versions, more than one production version per name, `is_production` disagreeing with `status`, missing model files.\n```rhai\nlet problems = registry::check();\nassert(problems.is_empty(), `registry inconsistent: ${problems}`);\n```",
        move |call: NativeCallContext| -> RhaiResult<Array> {
            let (_, entries) = loaded(&c).map_err(|e| c.fail_at(&call, e))?;
            Ok(check(&c, &entries).into_iter().map(Dynamic::from).collect())
        },
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &str, status: &str, promoted: Option<&str>) -> Entry {
        Entry::from_value(&json!({"name": "m", "version": v, "model_path": format!("models/{v}"), "is_production": status == "production",
               "status": status, "created_at": "2026-01-01T00:00:00Z", "promoted_at": promoted, "metrics": {}}))
        .unwrap()
    }

    #[test]
    fn previous_is_latest_promoted_superseded() {
        let entries = vec![
            entry("v1", "superseded", Some("2026-01-01T00:00:00Z")),
            entry("v2", "superseded", Some("2026-01-03T00:00:00Z")),
            entry("v3", "archived", Some("2026-01-04T00:00:00Z")),
            entry("v4", "superseded", None),
            entry("v5", "production", Some("2026-01-05T00:00:00Z")),
        ];
        assert_eq!(previous(&entries, "m").unwrap().version, "v2");
        assert!(previous(&entries, "other").is_none());
    }

    #[test]
    fn parse_names_position_and_bad_entries() {
        let e = parse("models/registry.json", b"[{\"name\": \"m\",}]").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("`models/registry.json` is not valid JSON"),
            "{msg}"
        );
        assert!(msg.contains("line 1, column"), "{msg}");
        let e = parse("r.json", br#"[{"name":"m","version":"v1","model_path":"x","is_production":false,"status":"weird"}]"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("entry 1 (`m` `v1`): `status` must be one of"),
            "{e}"
        );
        let e = parse("r.json", br#"{"name": "m"}"#).unwrap_err();
        assert!(
            e.to_string().contains("expected an array of entries"),
            "{e}"
        );
        let e = parse("r.json", br#"[3]"#).unwrap_err();
        assert!(e.to_string().contains("entry 1 is not an object"), "{e}");
    }

    #[test]
    fn untouched_entries_keep_their_exact_text() {
        let text = "[\n  {\"name\": \"m\", \"version\": \"v1\", \"model_path\": \"a\", \"is_production\": false,\n    \"status\": \"superseded\", \"extra\": [1, 2], \"promoted_at\": null},\n  {\"version\": \"v2\", \"name\": \"m\", \"model_path\": \"b\", \"is_production\": true, \"status\": \"production\"}\n]\n";
        let mut entries = parse("r.json", text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(render(&entries)).unwrap(), text);
        entries[1].edit(|v| v["status"] = Value::from("superseded"));
        let out = String::from_utf8(render(&entries)).unwrap();
        // The first entry is byte-identical; the edited one keeps its key order.
        assert!(out.starts_with("[\n  {\"name\": \"m\", \"version\": \"v1\", \"model_path\": \"a\", \"is_production\": false,\n    \"status\""), "{out}");
        let reparsed: Value = serde_json::from_str(&out).unwrap();
        let keys: Vec<&String> = reparsed[1].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["version", "name", "model_path", "is_production", "status"]
        );
        assert_eq!(reparsed[1]["status"], "superseded");
    }
}
