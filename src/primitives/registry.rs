//! `registry::` — the model registry, `models/registry.json`.
//!
//! The registry is a JSON array of entries, each with at least `name`, `version`,
//! `model_path`, `is_production`, `status` (`staging`, `production`, `superseded`,
//! `archived`), `created_at`, `promoted_at` and `metrics`. Entries are kept as JSON values
//! in file order, so unknown fields and key order survive a rewrite. Every change is written
//! atomically through the effect layer (the old file goes to the trash) and appended to
//! `registry_history.jsonl` beside it: what changed, when, old and new values, and the run.
//!
//! The "previous production" version is the `superseded` entry of that name with the latest
//! `promoted_at`. A rollback therefore has to take the bad version out of the superseded
//! pool (archive or remove it), or a second rollback would pick it again.

use super::{dynamic_to_json, json_to_dynamic, Family, RhaiResult};
use crate::context::{Ctx, RunContext};
use crate::effects::RelPath;
use crate::error::{Error, Result};
use crate::journal::{now_rfc3339, ActionKind};
use rhai::{Array, Dynamic, Map, NativeCallContext};
use serde_json::{json, Value};
use std::rc::Rc;
use std::time::SystemTime;

pub const DEFAULT_PATH: &str = "models/registry.json";
const STATUSES: &[&str] = &["staging", "production", "superseded", "archived"];

/// A parsed registry kept between calls while the workspace is unchanged.
pub struct Cached {
    path: RelPath,
    generation: u64,
    disk_stamp: Option<(SystemTime, u64)>,
    entries: Rc<Vec<Value>>,
}

fn disk_stamp(ctx: &RunContext, path: &RelPath) -> Option<(SystemTime, u64)> {
    let md = std::fs::metadata(ctx.ws.abs(path)).ok()?;
    Some((md.modified().ok()?, md.len()))
}

fn default_path(ctx: &RunContext) -> Result<RelPath> {
    ctx.ws.resolve(DEFAULT_PATH)
}

/// Load (or reuse) the registry at `path`, validating every entry.
pub fn load(ctx: &RunContext, path: &RelPath) -> Result<Rc<Vec<Value>>> {
    let stamp = disk_stamp(ctx, path);
    if let Some(c) = ctx.registry_cache.borrow().as_ref() {
        if &c.path == path && c.generation == ctx.ws.generation() && c.disk_stamp == stamp {
            return Ok(c.entries.clone());
        }
    }
    let bytes = ctx.ws.read(path).map_err(|e| match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Error::registry(
                path.to_string(),
                "the file does not exist; is `--workspace` pointing at the right directory?",
            )
        }
        other => other,
    })?;
    let entries = parse(path.as_str(), &bytes)?;
    let entries = Rc::new(entries);
    *ctx.registry_cache.borrow_mut() = Some(Cached {
        path: path.clone(),
        generation: ctx.ws.generation(),
        disk_stamp: stamp,
        entries: entries.clone(),
    });
    Ok(entries)
}

/// Parse and validate registry JSON.
pub fn parse(path: &str, bytes: &[u8]) -> Result<Vec<Value>> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::Parse {
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
    })?;
    let Value::Array(entries) = value else {
        return Err(Error::Parse {
            path: path.to_string(),
            format: "registry JSON",
            line: 1,
            column: 1,
            message: "expected an array of entries at the top level".into(),
        });
    };
    for (i, e) in entries.iter().enumerate() {
        validate_entry(e).map_err(|m| {
            Error::registry(
                path,
                format!(
                    "entry {} {m}; fix the file and run again (it was left unchanged)",
                    i + 1
                ),
            )
        })?;
    }
    Ok(entries)
}

fn validate_entry(e: &Value) -> std::result::Result<(), String> {
    let Value::Object(obj) = e else {
        return Err("is not an object".into());
    };
    let who = format!(
        "(`{}` `{}`)",
        obj.get("name").and_then(Value::as_str).unwrap_or("?"),
        obj.get("version").and_then(Value::as_str).unwrap_or("?")
    );
    for key in ["name", "version", "model_path"] {
        match obj.get(key) {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err(format!("{who}: `{key}` must be a non-empty string")),
        }
    }
    if !matches!(obj.get("is_production"), Some(Value::Bool(_))) {
        return Err(format!("{who}: `is_production` must be true or false"));
    }
    match obj.get("status").and_then(Value::as_str) {
        Some(s) if STATUSES.contains(&s) => {}
        other => {
            return Err(format!(
                "{who}: `status` must be one of staging, production, superseded, archived (got {})",
                other
                    .map(|s| format!("`{s}`"))
                    .unwrap_or_else(|| "nothing".into())
            ))
        }
    }
    match obj.get("promoted_at") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {}
        Some(other) => {
            return Err(format!(
                "{who}: `promoted_at` must be an RFC 3339 time or null, got {other}"
            ))
        }
    }
    Ok(())
}

fn field<'a>(e: &'a Value, key: &str) -> &'a str {
    e.get(key).and_then(Value::as_str).unwrap_or("")
}

fn is_production(e: &Value) -> bool {
    e.get("is_production")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn find(entries: &[Value], name: &str, version: &str) -> Option<usize> {
    entries
        .iter()
        .position(|e| field(e, "name") == name && field(e, "version") == version)
}

pub fn production<'a>(
    path: &RelPath,
    entries: &'a [Value],
    name: &str,
) -> Result<Option<&'a Value>> {
    let mut prod = entries
        .iter()
        .filter(|e| field(e, "name") == name && is_production(e));
    let first = prod.next();
    if let Some(second) = prod.next() {
        return Err(Error::registry(
            path.to_string(),
            format!(
                "`{name}` has more than one production version (`{}` and `{}`); fix the registry by hand or with `registry::set_production`",
                field(first.unwrap_or(second), "version"),
                field(second, "version")
            ),
        ));
    }
    Ok(first)
}

/// The `superseded` entry of `name` with the latest `promoted_at`.
pub fn previous<'a>(entries: &'a [Value], name: &str) -> Option<&'a Value> {
    entries
        .iter()
        .filter(|e| field(e, "name") == name && field(e, "status") == "superseded")
        .filter_map(|e| {
            let at = chrono::DateTime::parse_from_rfc3339(e.get("promoted_at")?.as_str()?).ok()?;
            Some((at, e))
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, e)| e)
}

/// Problems that make the registry inconsistent: duplicate versions, more than one
/// production version of a name, `is_production` disagreeing with `status`, and
/// `model_path`s that do not exist (as the run sees the workspace).
pub fn check(ctx: &RunContext, entries: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut production_count: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in entries {
        let (name, version) = (field(e, "name"), field(e, "version"));
        if !seen.insert((name, version)) {
            problems.push(format!("`{name}` `{version}` appears more than once"));
        }
        if is_production(e) {
            *production_count.entry(name).or_default() += 1;
        }
        if is_production(e) != (field(e, "status") == "production") {
            problems.push(format!(
                "`{name}` `{version}`: is_production is {} but status is `{}`",
                is_production(e),
                field(e, "status")
            ));
        }
        let model_path = field(e, "model_path");
        let exists = ctx
            .ws
            .resolve(model_path)
            .map(|p| ctx.ws.exists(&p))
            .unwrap_or(false);
        if !exists {
            problems.push(format!(
                "`{name}` `{version}`: model file `{model_path}` does not exist"
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
    mutate: impl FnOnce(&mut Vec<Value>) -> Result<Vec<Change>>,
) -> Result<Vec<Change>> {
    let entries = load(ctx, path)?;
    // Take the cached copy rather than cloning 10,000 entries; the cache is refreshed below.
    ctx.registry_cache.borrow_mut().take();
    let mut entries = Rc::try_unwrap(entries).unwrap_or_else(|rc| (*rc).clone());
    let changes = mutate(&mut entries)?;
    if changes.is_empty() {
        return Ok(changes);
    }
    let mut bytes = serde_json::to_vec_pretty(&entries).expect("JSON values always serialise");
    bytes.push(b'\n');
    ctx.ws.write(path, &bytes)?;
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
    *ctx.registry_cache.borrow_mut() = Some(Cached {
        path: path.clone(),
        generation: ctx.ws.generation(),
        disk_stamp: disk_stamp(ctx, path),
        entries: Rc::new(entries),
    });
    Ok(changes)
}

fn not_found(path: &RelPath, name: &str, version: &str) -> Error {
    Error::registry(path.to_string(), format!("there is no version `{version}` of `{name}`; `registry::versions(\"{name}\")` lists them"))
}

pub fn set_production(
    ctx: &RunContext,
    path: &RelPath,
    name: &str,
    version: &str,
) -> Result<Option<String>> {
    let mut demoted = None;
    let changes = update(ctx, path, "set_production", |entries| {
        let idx = find(entries, name, version).ok_or_else(|| not_found(path, name, version))?;
        if is_production(&entries[idx]) {
            return Ok(Vec::new());
        }
        let model_path = field(&entries[idx], "model_path").to_string();
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
            if i != idx && field(e, "name") == name && is_production(e) {
                let old = e.clone();
                e["is_production"] = Value::Bool(false);
                e["status"] = Value::from("superseded");
                demoted = Some(field(e, "version").to_string());
                changes.push(Change {
                    name: name.into(),
                    version: field(e, "version").into(),
                    old,
                    new: e.clone(),
                });
            }
        }
        let e = &mut entries[idx];
        let old = e.clone();
        e["is_production"] = Value::Bool(true);
        e["status"] = Value::from("production");
        e["promoted_at"] = now;
        changes.push(Change {
            name: name.into(),
            version: version.into(),
            old,
            new: e.clone(),
        });
        Ok(changes)
    })?;
    let summary = match (&demoted, changes.is_empty()) {
        (_, true) => format!("leave `{name}` `{version}` as production (it already is)"),
        (Some(d), _) => format!("make `{name}` `{version}` production (`{d}` becomes superseded)"),
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
        if is_production(e) {
            return Err(Error::registry(
                path.to_string(),
                format!("`{name}` `{version}` is production; archiving it would leave no production version, so make another version production first"),
            ));
        }
        if field(e, "status") == "archived" {
            return Ok(Vec::new());
        }
        let old = e.clone();
        e["status"] = Value::from("archived");
        Ok(vec![Change {
            name: name.into(),
            version: version.into(),
            old,
            new: e.clone(),
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
        if is_production(&entries[idx]) {
            return Err(Error::registry(
                path.to_string(),
                format!("`{name}` `{version}` is production; make another version production before removing it"),
            ));
        }
        let old = entries.remove(idx);
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
    let entry = Value::Object(obj);
    validate_entry(&entry)
        .map_err(|m| Error::invalid("registry::register", format!("the new entry {m}")))?;
    if is_production(&entry) {
        return Err(Error::invalid(
            "registry::register",
            "register the entry first, then promote it with `registry::set_production`",
        ));
    }
    let (name, version) = (
        field(&entry, "name").to_string(),
        field(&entry, "version").to_string(),
    );
    let added = entry.clone();
    update(ctx, path, "register", |entries| {
        if find(entries, &name, &version).is_some() {
            return Err(Error::registry(
                path.to_string(),
                format!("`{name}` `{version}` is already registered"),
            ));
        }
        entries.push(entry.clone());
        Ok(vec![Change {
            name: name.clone(),
            version: version.clone(),
            old: Value::Null,
            new: entry,
        }])
    })?;
    ctx.journal.action(
        ActionKind::Registry,
        "registry.register",
        json!({"path": path.as_str(), "name": name, "version": version}),
        &format!("register `{name}` `{version}`"),
        None,
    );
    Ok(added)
}

pub fn family(ctx: &Ctx) -> Family {
    let mut f = Family::new(
        "registry",
        "The model registry, `models/registry.json`: query versions, promote, archive, remove, check.",
    );
    let wrap = |ctx: &Ctx| ctx.clone();

    let c = wrap(ctx);
    f.add(
        "versions",
        &["name: &str", "Array"],
        "Every entry of model `name`, in file order.\n```rhai\nfor e in registry::versions(\"sl_forecaster\") { print(e.version + \" \" + e.status); }\n```",
        move |call: NativeCallContext, name: &str| -> RhaiResult<Array> {
            let path = default_path(&c).map_err(|e| c.fail_at(&call, e))?;
            let entries = load(&c, &path).map_err(|e| c.fail_at(&call, e))?;
            Ok(entries.iter().filter(|e| field(e, "name") == name).map(json_to_dynamic).collect())
        },
    );
    let c = wrap(ctx);
    f.add(
        "get",
        &["name: &str", "version: &str", "Dynamic"],
        "The entry for `name` `version`, or `()` when there is none.\n```rhai\nlet e = registry::get(\"sl_forecaster\", \"v4\");\nif e == () { throw \"no v4\"; }\n```",
        move |call: NativeCallContext, name: &str, version: &str| -> RhaiResult<Dynamic> {
            let path = default_path(&c).map_err(|e| c.fail_at(&call, e))?;
            let entries = load(&c, &path).map_err(|e| c.fail_at(&call, e))?;
            Ok(find(&entries, name, version).map(|i| json_to_dynamic(&entries[i])).unwrap_or(Dynamic::UNIT))
        },
    );
    let c = wrap(ctx);
    f.add(
        "production",
        &["name: &str", "Dynamic"],
        "The production entry of `name`, or `()` when it has none. Fails if it has more than one.\n```rhai\nlet cur = registry::production(\"sl_forecaster\");\nprint(`production is ${cur.version}`);\n```",
        move |call: NativeCallContext, name: &str| -> RhaiResult<Dynamic> {
            let path = default_path(&c).map_err(|e| c.fail_at(&call, e))?;
            let entries = load(&c, &path).map_err(|e| c.fail_at(&call, e))?;
            Ok(production(&path, &entries, name).map_err(|e| c.fail_at(&call, e))?.map(json_to_dynamic).unwrap_or(Dynamic::UNIT))
        },
    );
    let c = wrap(ctx);
    f.add(
        "previous",
        &["name: &str", "Dynamic"],
        "The previous production entry of `name`: the `superseded` one with the latest `promoted_at`, or `()`.\n```rhai\nlet prev = registry::previous(\"sl_forecaster\");\nassert(prev != (), \"nothing to roll back to\");\n```",
        move |call: NativeCallContext, name: &str| -> RhaiResult<Dynamic> {
            let path = default_path(&c).map_err(|e| c.fail_at(&call, e))?;
            let entries = load(&c, &path).map_err(|e| c.fail_at(&call, e))?;
            Ok(previous(&entries, name).map(json_to_dynamic).unwrap_or(Dynamic::UNIT))
        },
    );
    let c = wrap(ctx);
    f.add(
        "set_production",
        &["name: &str", "version: &str", "Dynamic"],
        "Make `version` the production version of `name`; the old production version becomes `superseded` and the new one gets `promoted_at` = now. Refuses a version whose model file is missing. Returns the demoted version, or `()`.\n```rhai\nregistry::set_production(\"sl_forecaster\", \"v4\");\n```",
        move |call: NativeCallContext, name: &str, version: &str| -> RhaiResult<Dynamic> {
            let path = default_path(&c).map_err(|e| c.fail_at(&call, e))?;
            let demoted = set_production(&c, &path, name, version).map_err(|e| c.fail_at(&call, e))?;
            Ok(demoted.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
        },
    );
    let c = wrap(ctx);
    f.add(
        "archive",
        &["name: &str", "version: &str", "()"],
        "Mark `name` `version` as `archived` (it can no longer be chosen as a rollback target). Refuses the production version.\n```rhai\nregistry::archive(\"sl_forecaster\", \"v5\");\n```",
        move |call: NativeCallContext, name: &str, version: &str| -> RhaiResult<()> {
            let path = default_path(&c).map_err(|e| c.fail_at(&call, e))?;
            archive(&c, &path, name, version).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = wrap(ctx);
    f.add(
        "remove",
        &["name: &str", "version: &str", "Map"],
        "Take `name` `version` out of the registry and return the removed entry. Refuses the production version. The old registry file is kept in the trash.\n```rhai\nlet gone = registry::remove(\"sl_forecaster\", \"v5\");\nprint(gone.model_path);\n```",
        move |call: NativeCallContext, name: &str, version: &str| -> RhaiResult<Dynamic> {
            let path = default_path(&c).map_err(|e| c.fail_at(&call, e))?;
            Ok(json_to_dynamic(&remove(&c, &path, name, version).map_err(|e| c.fail_at(&call, e))?))
        },
    );
    let c = wrap(ctx);
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
    let c = wrap(ctx);
    f.add(
        "check",
        &["Array"],
        "Consistency problems of the whole registry, as strings (empty when consistent): duplicate versions, more than one production version per name, `is_production` disagreeing with `status`, missing model files.\n```rhai\nlet problems = registry::check();\nassert(problems.is_empty(), `registry inconsistent: ${problems}`);\n```",
        move |call: NativeCallContext| -> RhaiResult<Array> {
            let path = default_path(&c).map_err(|e| c.fail_at(&call, e))?;
            let entries = load(&c, &path).map_err(|e| c.fail_at(&call, e))?;
            Ok(check(&c, &entries).into_iter().map(Dynamic::from).collect())
        },
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &str, status: &str, promoted: Option<&str>) -> Value {
        json!({"name": "m", "version": v, "model_path": format!("models/{v}"), "is_production": status == "production",
               "status": status, "created_at": "2026-01-01T00:00:00Z", "promoted_at": promoted, "metrics": {}})
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
        assert_eq!(field(previous(&entries, "m").unwrap(), "version"), "v2");
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
    }
}
