//! `config::` — YAML and JSON configuration files as Rhai maps: read, write back, restore
//! from a backup, diff, and check a training configuration (plan §3.3.1).
//!
//! Parsing, writing and checking live in [`crate::document`]; this module reads and writes
//! through the effect layer, so writes are atomic, the old content goes to the trash, and a
//! dry run only pretends. Every write reports the unified diff of what it changes (and
//! returns it, so a runbook can print it): in a dry run that is the diff the real run would
//! make. A file that is not valid YAML or JSON is an error naming its line and column, and
//! nothing is written.
//!
//! Rhai maps keep their keys sorted, so a document that went through a script would come
//! back reordered. When a write replaces a file, the new document's keys are therefore put
//! back in the order the old file had them (new keys last), which keeps diffs to what really
//! changed. Comments do not survive a document written from a map; `config::restore` and
//! `config::write_yaml_text` copy text as it is, comments included.

use super::{json_to_dynamic, Family, RhaiResult};
use crate::context::{Ctx, RunContext};
use crate::document;
use crate::effects::{Effect, Record, RelPath};
use crate::error::{Error, Result};
use rhai::{Array, Dynamic, NativeCallContext};
use serde_json::{json, Value};

/// The two formats, chosen by file name: `.json` is JSON, anything else YAML (a `.backup`
/// of a YAML file included).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Yaml,
    Json,
}

impl Format {
    fn of(path: &RelPath) -> Format {
        if path.file_name().ends_with(".json") {
            Format::Json
        } else {
            Format::Yaml
        }
    }

    fn parse(self, bytes: &[u8], display: &str) -> Result<Value> {
        match self {
            Format::Yaml => document::parse_yaml(bytes, display),
            Format::Json => document::parse_json(bytes, display),
        }
    }
}

/// A Rhai value as JSON, refusing what has no JSON form (functions, timestamps) rather than
/// writing `null` in its place.
fn to_json(value: &Dynamic) -> Result<Value> {
    rhai::serde::from_dynamic(value).map_err(|e| {
        Error::invalid(
            format!("value of type `{}`", value.type_name()),
            format!("cannot be written as a document: {e}"),
        )
    })
}

fn read_document(ctx: &RunContext, path: &str, format: Format) -> Result<Value> {
    let rel = ctx.ws.resolve(path)?;
    let bytes = ctx.ws.read(&rel)?;
    format.parse(&bytes, rel.as_str())
}

/// `new` with the keys of every mapping in the order `old` has them, keys `old` lacks last.
fn order_like(new: Value, old: &Value) -> Value {
    match (new, old) {
        (Value::Object(mut new), Value::Object(old)) => {
            let mut out = serde_json::Map::with_capacity(new.len());
            for (key, old_value) in old {
                if let Some(v) = new.remove(key) {
                    out.insert(key.clone(), order_like(v, old_value));
                }
            }
            out.extend(new);
            Value::Object(out)
        }
        (Value::Array(new), Value::Array(old)) => Value::Array(
            new.into_iter()
                .enumerate()
                .map(|(i, v)| match old.get(i) {
                    Some(o) => order_like(v, o),
                    None => v,
                })
                .collect(),
        ),
        (new, _) => new,
    }
}

/// Lines added and removed from `old` to `new`.
fn line_counts(old: &str, new: &str) -> (usize, usize) {
    let diff = similar::TextDiff::from_lines(old, new);
    diff.iter_all_changes()
        .fold((0, 0), |(a, d), change| match change.tag() {
            similar::ChangeTag::Insert => (a + 1, d),
            similar::ChangeTag::Delete => (a, d + 1),
            similar::ChangeTag::Equal => (a, d),
        })
}

/// The text the run currently sees at `rel` (empty when there is no file).
fn current_text(ctx: &RunContext, rel: &RelPath) -> Result<String> {
    if !ctx.ws.exists(rel) {
        return Ok(String::new());
    }
    Ok(String::from_utf8_lossy(&ctx.ws.read(rel)?).into_owned())
}

/// The unified diff from what the run sees at `rel` to `new_text`, headed `a/PATH`, `b/PATH`.
fn diff_against(ctx: &RunContext, rel: &RelPath, new_text: &str) -> Result<String> {
    let old = current_text(ctx, rel)?;
    let old_name = if ctx.ws.exists(rel) {
        format!("a/{rel}")
    } else {
        "/dev/null".to_string()
    };
    Ok(document::unified_diff(
        &old,
        new_text,
        &old_name,
        &format!("b/{rel}"),
    ))
}

/// Write `text` to `rel` through the effect layer, logging one action whose summary is
/// `verb` plus the line counts; returns the diff. Writing what is there already changes
/// nothing and logs a check instead.
fn write_document(
    ctx: &RunContext,
    op: &str,
    rel: &RelPath,
    text: &str,
    verb: String,
    args: Value,
) -> Result<String> {
    let existed = ctx.ws.exists(rel);
    if existed && ctx.ws.read(rel)?[..] == *text.as_bytes() {
        ctx.ws.check(Record::new(
            op,
            args,
            format!("`{rel}` already has this content; left as it is"),
        ));
        return Ok(String::new());
    }
    let diff = diff_against(ctx, rel, text)?;
    let (added, removed) = line_counts(&current_text(ctx, rel)?, text);
    let what = if existed { "" } else { "new file, " };
    let effect = Effect::Write {
        path: rel.clone(),
        bytes: text.as_bytes().to_vec(),
    };
    ctx.ws.perform(effect, |out| {
        let kept_note = match &out.kept {
            Some(t) => format!("; old content kept at `{t}`"),
            None => String::new(),
        };
        Record::new(op, args, format!("{verb} ({what}+{added} -{removed} lines{kept_note})"))
            .with_result(json!({"diff": &diff, "previous_kept_at": out.kept.as_ref().map(|t| t.as_str().to_string())}))
    })?;
    Ok(diff)
}

/// Serialise `value` for `rel` in its format, keeping the key order of the file it replaces.
fn serialise(ctx: &RunContext, rel: &RelPath, value: &Dynamic, format: Format) -> Result<String> {
    let mut doc = to_json(value)?;
    if ctx.ws.exists(rel) {
        // A file that does not parse has no order worth keeping; it is replaced all the same.
        if let Ok(old) = format.parse(&ctx.ws.read(rel)?, rel.as_str()) {
            doc = order_like(doc, &old);
        }
    }
    match format {
        Format::Yaml => document::to_yaml(&doc),
        Format::Json => Ok(document::to_json_pretty(&doc)),
    }
}

fn write_value(ctx: &RunContext, path: &str, value: &Dynamic, format: Format) -> Result<String> {
    let rel = ctx.ws.resolve_writable(path)?;
    let text = serialise(ctx, &rel, value, format)?;
    let (op, kind) = match format {
        Format::Yaml => ("config.write_yaml", "YAML"),
        Format::Json => ("config.write_json", "JSON"),
    };
    write_document(
        ctx,
        op,
        &rel,
        &text,
        format!("write `{rel}` as {kind}"),
        json!({"path": rel.as_str()}),
    )
}

fn write_yaml_text(ctx: &RunContext, path: &str, text: &str) -> Result<String> {
    let rel = ctx.ws.resolve_writable(path)?;
    document::parse_yaml(text.as_bytes(), &format!("{rel} (new content)"))?;
    write_document(
        ctx,
        "config.write_yaml_text",
        &rel,
        text,
        format!("write `{rel}`"),
        json!({"path": rel.as_str(), "bytes": text.len()}),
    )
}

fn restore(ctx: &RunContext, from: &str, to: &str) -> Result<String> {
    let src = ctx.ws.resolve(from)?;
    let dst = ctx.ws.resolve_writable(to)?;
    let bytes = ctx.ws.read(&src)?;
    // A broken backup must not replace a working file: parse before anything is written.
    Format::of(&dst).parse(&bytes, src.as_str())?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::invalid(format!("`{src}`"), "is not UTF-8 text"))?;
    write_document(
        ctx,
        "config.restore",
        &dst,
        &text,
        format!("restore `{dst}` from `{src}`"),
        json!({"from": src.as_str(), "to": dst.as_str()}),
    )
}

fn check_training_config(ctx: &RunContext, path: &str) -> Result<Vec<String>> {
    let rel = ctx.ws.resolve(path)?;
    let doc = read_document(ctx, path, Format::of(&rel))?;
    let problems = document::validate_training_config(&doc);
    let summary = if problems.is_empty() {
        format!("`{rel}` is a valid training configuration")
    } else {
        format!(
            "`{rel}` has {} problem(s): {}",
            problems.len(),
            problems.join("; ")
        )
    };
    ctx.ws.check(
        Record::new(
            "config.check_training_config",
            json!({"path": rel.as_str()}),
            summary,
        )
        .with_result(json!({"problems": problems})),
    );
    Ok(problems)
}

fn strings(items: Vec<String>) -> Array {
    items.into_iter().map(Dynamic::from).collect()
}

pub fn family(ctx: &Ctx) -> Family {
    let mut f = Family::new(
        "config",
        "YAML and JSON configuration files as maps: read, write back, restore from a backup, diff, and check the training configuration. A malformed file is an error with its line and column, and nothing is written.",
    );

    let c = ctx.clone();
    f.add(
        "read_yaml",
        &["path: &str", "Dynamic"],
        "Read a YAML file into a value: mappings become maps, sequences arrays. Fails with the line and column when the file is not valid YAML (a duplicate key included).\n```rhai\nlet cfg = config::read_yaml(\"configs/sl/training_configs.yaml\");\nprint(cfg.model.type);\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<Dynamic> {
            read_document(&c, path, Format::Yaml).map(|v| json_to_dynamic(&v)).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "read_json",
        &["path: &str", "Dynamic"],
        "Read a JSON file into a value. Fails with the line and column when it is not valid JSON.\n```rhai\nlet meta = config::read_json(\"models/sl_model_v4_metadata.json\");\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<Dynamic> {
            read_document(&c, path, Format::Json).map(|v| json_to_dynamic(&v)).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "parse_yaml",
        &["text: &str", "Dynamic"],
        "Parse YAML text into a value.\n```rhai\nlet cfg = document::parse_yaml(config::default_training_config());\n```",
        move |call: NativeCallContext, text: &str| -> RhaiResult<Dynamic> {
            document::parse_yaml(text.as_bytes(), "YAML text").map(|v| json_to_dynamic(&v)).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "to_yaml",
        &["value: Dynamic", "String"],
        "A value as YAML text (block style; strings a YAML 1.1 reader would misread, such as `no` or `001`, are quoted).\n```rhai\nprint(document::to_yaml(#{ model: #{ type: \"xgboost\" } }));\n```",
        move |call: NativeCallContext, value: Dynamic| -> RhaiResult<String> {
            to_json(&value).and_then(|v| document::to_yaml(&v)).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "write_yaml",
        &["path: &str", "value: Dynamic", "String"],
        "Write a value as a YAML file, atomically; the old file goes to the trash and keys keep the order it had them in (comments are not kept). Returns the unified diff of the change (empty when nothing changed).\n```rhai\nlet cfg = config::read_yaml(\"configs/sl/training_configs.yaml\");\ncfg.model.learning_rate = 0.05;\nprint(config::write_yaml(\"configs/sl/training_configs.yaml\", cfg));\n```",
        move |call: NativeCallContext, path: &str, value: Dynamic| -> RhaiResult<String> {
            write_value(&c, path, &value, Format::Yaml).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "write_json",
        &["path: &str", "value: Dynamic", "String"],
        "Write a value as a pretty JSON file (two-space indent), like `config::write_yaml`. Returns the diff.\n```rhai\nconfig::write_json(\"configs/sl/features.json\", #{ window: 64 });\n```",
        move |call: NativeCallContext, path: &str, value: Dynamic| -> RhaiResult<String> {
            write_value(&c, path, &value, Format::Json).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "write_yaml_text",
        &["path: &str", "text: &str", "String"],
        "Write YAML text to a file as it is, comments included, after checking that it parses (nothing is written when it does not). Returns the diff.\n```rhai\nconfig::write_yaml_text(\"configs/sl/training_configs.yaml\", config::default_training_config());\n```",
        move |call: NativeCallContext, path: &str, text: &str| -> RhaiResult<String> {
            write_yaml_text(&c, path, text).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "restore",
        &["from: &str", "to: &str", "String"],
        "Copy the configuration `from` (a backup) over `to`, byte for byte, after checking that it parses as `to`'s format (JSON for `.json`, else YAML); a malformed backup fails with its line and column and nothing is written. The old `to` goes to the trash. Returns the diff (empty when they were the same). Plan §3.3.1.\n```rhai\nprint(config::restore(\"configs/sl/training_configs.yaml.backup\", \"configs/sl/training_configs.yaml\"));\n```",
        move |call: NativeCallContext, from: &str, to: &str| -> RhaiResult<String> { restore(&c, from, to).map_err(|e| c.fail_at(&call, e)) },
    );
    let c = ctx.clone();
    f.add(
        "diff",
        &["path: &str", "new_text: &str", "String"],
        "The unified diff from the file at `path` (as the run sees it; empty if missing) to `new_text`, without writing anything; empty when they are equal.\n```rhai\nlet d = config::diff(\"configs/sl/training_configs.yaml\", fs::read(\"configs/sl/training_configs.yaml.backup\"));\nif d != \"\" { print(d); }\n```",
        move |call: NativeCallContext, path: &str, new_text: &str| -> RhaiResult<String> {
            let run = || diff_against(&c, &c.ws.resolve(path)?, new_text);
            run().map_err(|e| c.fail_at(&call, e))
        },
    );
    f.add(
        "default_training_config",
        &["String"],
        "The default training configuration built into `runbook` (`runbooks/templates/training_configs.default.yaml`), as YAML text with its comments: what plan §3.3.1 writes when there is no backup.\n```rhai\nlet cfg = document::parse_yaml(config::default_training_config());\nprint(cfg.model.type);\n```",
        || -> RhaiResult<String> { Ok(document::DEFAULT_TRAINING_CONFIG.to_string()) },
    );
    let c = ctx.clone();
    f.add(
        "validate_training_config",
        &["config: Dynamic", "Array"],
        "The problems of a training configuration value, one message each; empty when it is fine. Requires `model.type` (string) and `model.learning_rate` (in (0, 1]); checks `max_depth`, `n_estimators`, `features.window`, `features.lags`, `validation.split` and `validation.mse_threshold` when present; other keys are allowed.\n```rhai\nlet problems = document::validate_training_config(config::read_yaml(\"configs/sl/training_configs.yaml\"));\nassert(problems.is_empty(), `bad config: ${problems}`);\n```",
        move |call: NativeCallContext, value: Dynamic| -> RhaiResult<Array> {
            let doc = to_json(&value).map_err(|e| c.fail_at(&call, e))?;
            Ok(strings(document::validate_training_config(&doc)))
        },
    );
    let c = ctx.clone();
    f.add(
        "check_training_config",
        &["path: &str", "Array"],
        "Read the training configuration at `path` (YAML, or JSON for `.json`) and return its problems like `config::validate_training_config`; the result is logged. Fails with the line and column when the file does not parse.\n```rhai\nlet problems = config::check_training_config(\"configs/sl/training_configs.yaml\");\nassert(problems.is_empty(), `bad config: ${problems}`);\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<Array> {
            check_training_config(&c, path).map(strings).map_err(|e| c.fail_at(&call, e))
        },
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_like_keeps_the_old_key_order_and_appends_new_keys() {
        let old = json!({"z": 1, "a": {"y": 1, "b": 2}, "list": [{"k2": 1, "k1": 2}]});
        let new = json!({"a": {"b": 3, "y": 1}, "list": [{"k1": 2, "k2": 1}], "new": 0, "z": 1});
        let ordered = order_like(new, &old);
        assert_eq!(
            serde_json::to_string(&ordered).unwrap(),
            r#"{"z":1,"a":{"y":1,"b":3},"list":[{"k2":1,"k1":2}],"new":0}"#
        );
    }

    #[test]
    fn line_counts_count_inserts_and_deletes() {
        assert_eq!(line_counts("a\nb\nc\n", "a\nB\nc\nd\n"), (2, 1));
        assert_eq!(line_counts("", "x\n"), (1, 0));
    }
}
