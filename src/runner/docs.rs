//! `runbook docs`: the reference of every primitive, generated from the engine's own
//! registrations, and the table of known functions `check` compares calls against.

use super::check::FnTable;
use crate::context::RunContext;
use crate::effects::Console;
use crate::effects::Workspace;
use crate::engine;
use std::collections::BTreeMap;

/// An engine with every primitive registered with its documentation, bound to a throwaway
/// context: for `check` and `docs`, which need the registrations but never call them.
fn reference_engine() -> rhai::Engine {
    let dir = std::env::temp_dir();
    let ws = Workspace::open(&dir, "reference", true, Console::Quiet).expect("the temp dir exists");
    let ctx = RunContext::new(ws);
    engine::for_reference(&ctx, &dir)
}

pub(super) fn metadata() -> serde_json::Value {
    let json = reference_engine()
        .gen_fn_metadata_to_json(false)
        .expect("metadata serialises");
    serde_json::from_str(&json).expect("rhai writes valid JSON")
}

/// `family -> function -> arities` of every registered primitive. Built once per process:
/// `runbook check runbooks/*.rhai` would otherwise build an engine and its metadata per file.
pub(crate) fn known_functions() -> &'static BTreeMap<String, FnTable> {
    static KNOWN: std::sync::OnceLock<BTreeMap<String, FnTable>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(build_known_functions)
}

fn build_known_functions() -> BTreeMap<String, FnTable> {
    let meta = metadata();
    let mut out = BTreeMap::new();
    if let Some(modules) = meta["modules"].as_object() {
        for (mname, m) in modules {
            let mut fns: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for f in m["functions"].as_array().into_iter().flatten() {
                let name = f["name"].as_str().unwrap_or_default().to_string();
                fns.entry(name)
                    .or_default()
                    .push(f["numParams"].as_u64().unwrap_or(0) as usize);
            }
            out.insert(mname.clone(), fns);
        }
    }
    out
}

/// The signatures of the primitive `family::name` as the reference documents them
/// (`production(name: &str) -> Dynamic`), for error messages; empty for anything else.
pub(crate) fn signatures(qualified: &str) -> Vec<String> {
    static SIGS: std::sync::OnceLock<BTreeMap<String, Vec<String>>> = std::sync::OnceLock::new();
    let table = SIGS.get_or_init(|| {
        let meta = metadata();
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(modules) = meta["modules"].as_object() {
            for (mname, m) in modules {
                for f in m["functions"].as_array().into_iter().flatten() {
                    let name = f["name"].as_str().unwrap_or_default();
                    out.entry(format!("{mname}::{name}"))
                        .or_default()
                        .push(f["signature"].as_str().unwrap_or_default().to_string());
                }
            }
        }
        out
    });
    table.get(qualified).cloned().unwrap_or_default()
}

/// A script's name for a Rust type in Rhai's "function not found" message.
fn script_type(rust: &str) -> &str {
    match rust.trim() {
        "i64" | "i32" | "INT" => "int",
        "f64" | "f32" | "FLOAT" => "float",
        "ImmutableString" | "String" | "&str" | "string" => "string",
        "()" => "()",
        "Array" | "array" => "array",
        "Map" | "map" => "map",
        other => other,
    }
}

/// What `Function not found: registry::production (i64)` should say: the primitive, the
/// types it takes and the types it was given. `None` when `sig` is no primitive's.
pub(crate) fn explain_not_found(sig: &str) -> Option<String> {
    let (name, args) = sig.split_once(" (")?;
    let known = signatures(name.trim());
    if known.is_empty() {
        return None;
    }
    let given: Vec<&str> = args
        .strip_suffix(')')
        .unwrap_or(args)
        .split(',')
        .map(script_type)
        .filter(|t| !t.is_empty())
        .collect();
    let family = name.split("::").next().unwrap_or_default();
    let takes: Vec<String> = known
        .iter()
        .map(|s| {
            let s = s
                .replace("&str", "string")
                .replace("i64", "int")
                .replace("f64", "float");
            format!("`{family}::{s}`")
        })
        .collect();
    let mut msg = format!(
        "`{name}` cannot take ({}); it takes {}",
        given.join(", "),
        takes.join(" or ")
    );
    if given.contains(&"()") {
        msg.push_str("; a `()` argument is usually a `params.` field the header does not declare or a variable that was never set (`runbook check` names undeclared parameters)");
    }
    Some(msg)
}

/// What `registry::production`, `previous`, `get` and `versions` return: the entry as the
/// store holds it, a map. The rules (`registry/mod.rs`) read the first six fields.
const REGISTRY_ENTRY: &str = "
## Registry entries

`registry::production`, `registry::previous` and `registry::get` return one entry, a map
(or `()` when there is none); `registry::versions` returns an array of them. Every field
of the stored entry is there; these are the ones runbook reads and writes:

| field | type | meaning |
|---|---|---|
| `name` | string | the model, such as `sl_forecaster` |
| `version` | string | the version, such as `v4` (letters, digits, `.`, `_`, `-`, `+`) |
| `model_path` | string | the model file, relative to the workspace |
| `status` | string | `production`, `superseded` (a previous production version), `archived` or `staging` |
| `is_production` | bool | true for the one production version |
| `promoted_at` | string | RFC 3339, when it last became production (`registry::previous` takes the latest superseded) |
| `created_at` | string | RFC 3339, when it was registered |
| `metrics` | map | what training recorded, such as `#{ val_mse: 0.0016 }` (the MLflow store: the `metric.*` tags) |

```rhai
let prod = registry::production(\"sl_forecaster\");
print(`${prod.version} at ${prod.model_path}, ${prod.status}, promoted ${prod.promoted_at}`);
```

Types in signatures: `&str`/`String` is a string, `i64` an int, `f64` a float, `Map` a map
(`#{ .. }`), `Array` an array, `Dynamic` any value (a map or `()` for an entry),
`()` nothing.
";

/// The reference of every primitive, generated from the engine's registrations.
pub fn docs() -> String {
    let meta = metadata();
    let mut out = String::from(
        "# runbook primitives\n\nGenerated by `runbook docs` from what the engine registers.\n",
    );
    let render_fns = |out: &mut String, prefix: &str, fns: &[serde_json::Value]| {
        for f in fns {
            let sig = f["signature"].as_str().unwrap_or_default();
            out.push_str(&format!("\n### `{prefix}{sig}`\n\n"));
            for c in f["docComments"].as_array().into_iter().flatten() {
                let text: Vec<&str> = c
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .map(|l| {
                        l.trim_start_matches("///")
                            .strip_prefix(' ')
                            .unwrap_or(l.trim_start_matches("///"))
                    })
                    .collect();
                out.push_str(&text.join("\n"));
                out.push('\n');
            }
        }
    };
    if let Some(modules) = meta["modules"].as_object() {
        for (name, m) in modules {
            out.push_str(&format!(
                "\n## `{name}::`\n\n{}\n",
                m["doc"].as_str().unwrap_or_default()
            ));
            render_fns(
                &mut out,
                &format!("{name}::"),
                m["functions"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            );
        }
    }
    out.push_str(REGISTRY_ENTRY);
    // Global functions are either plain globals or belong to a type the primitives return
    // (a property getter `get$name`, or a method taking the value as `&mut Type`).
    let globals = meta["functions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let receiver = |f: &serde_json::Value| -> Option<String> {
        let ty = f["params"][0]["type"].as_str()?;
        ty.strip_prefix("&mut ").map(str::to_string)
    };
    let documented =
        |f: &&serde_json::Value| f["docComments"].as_array().is_some_and(|c| !c.is_empty());
    let (typed, plain): (Vec<serde_json::Value>, Vec<serde_json::Value>) = globals
        .iter()
        .filter(documented)
        .cloned()
        .partition(|f| receiver(f).is_some());
    out.push_str("\n## Globals\n\nAlso in scope: `params` (the parameters, a map), `DRY_RUN` (bool), `RUN_ID` (string), and the syntax `step \"name\" { ... }`.\n");
    render_fns(&mut out, "", &plain);
    if !typed.is_empty() {
        out.push_str("\n## Types\n\nValues the primitives return to scripts, with their properties (`value.name`) and methods (`value.name()`).\n");
        let as_member: Vec<serde_json::Value> = typed
            .iter()
            .map(|f| {
                let ty = receiver(f).unwrap_or_default();
                let name = f["name"].as_str().unwrap_or_default();
                let ret = f["returnType"].as_str().unwrap_or_default();
                let signature = match name.strip_prefix("get$") {
                    Some(prop) => format!("{ty}.{prop} -> {ret}"),
                    None => format!("{ty}.{name}() -> {ret}"),
                };
                let mut g = f.clone();
                g["signature"] = serde_json::Value::String(signature);
                g
            })
            .collect();
        let mut sorted = as_member;
        sorted.sort_by(|a, b| a["signature"].as_str().cmp(&b["signature"].as_str()));
        render_fns(&mut out, "", &sorted);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_cover_every_family_with_examples() {
        let d = docs();
        for family in crate::primitives::FAMILIES {
            assert!(d.contains(&format!("## `{family}::`")), "{family} missing");
        }
        assert!(
            d.contains("registry::set_production(name: &str, version: &str)")
                || d.contains("registry::set_production(name: String, version: String)"),
            "{d}"
        );
        assert!(d.contains("```rhai"));
        assert!(d.contains("## Registry entries"), "{d}");
        assert!(d.contains("| `model_path` | string |"), "{d}");
    }
}
