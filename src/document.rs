//! YAML and JSON documents for runbooks: parsing configuration files into `serde_json::Value`
//! (the one in-memory form scripts see, whichever the file format), writing them back, checking
//! a training configuration before a rollback installs it (plan §3.3.1), and the unified diff a
//! dry run shows instead of writing. Key order survives a round trip because the crate builds
//! `serde_json` with `preserve_order`; comments do not survive (serde has no place for them),
//! which is why whole defaults ship as commented templates (`DEFAULT_TRAINING_CONFIG`).
//!
//! YAML goes through `serde-saphyr` rather than `yaml_serde` (the YAML organisation's fork of
//! the archived `serde_yaml`). Both are maintained and both report line and column, but these
//! files are also read by the team's Python code with PyYAML, a YAML 1.1 reader, and there
//! `serde-saphyr` agrees with it where `yaml_serde` does not: it reads `on`/`yes`/`off` as
//! booleans as PyYAML does, and it quotes such strings when writing, where `yaml_serde` writes
//! `on: off` bare and PyYAML would read back `{True: False}`. It also rejects duplicate keys
//! (PyYAML and `yaml_serde` silently keep the last) and `.nan`/`.inf`, which JSON cannot hold
//! and `yaml_serde` turns into `null` without a word. Its cost is Rust 1.89 and a few more
//! small dependencies.

use serde_json::Value;
use serde_saphyr::MessageFormatter;

use crate::error::{Error, Result};

/// The default training configuration (`runbooks/templates/training_configs.default.yaml`):
/// what plan §3.3.1's `create_default_training_config()` writes when there is no backup.
/// It passes [`validate_training_config`].
pub const DEFAULT_TRAINING_CONFIG: &str =
    include_str!("../runbooks/templates/training_configs.default.yaml");

/// Parse one YAML document. `display_path` names the file in errors.
///
/// Malformed YAML, a duplicate key, a non-finite number or several documents in one file give
/// [`Error::Parse`] with the 1-based line and column. An empty file is `null`.
pub fn parse_yaml(bytes: &[u8], display_path: &str) -> Result<Value> {
    serde_saphyr::from_slice::<Value>(bytes).map_err(|err| {
        // The location travels in the error's fields; the message is the bare explanation,
        // and the plain (user) wording rather than advice about the library's options.
        let inner = err.without_snippet();
        let message = serde_saphyr::UserMessageFormatter.format_message(inner);
        let (line, column) = err
            .location()
            .map_or((0, 0), |at| (to_usize(at.line()), to_usize(at.column())));
        Error::Parse {
            path: display_path.to_string(),
            format: "YAML",
            line,
            column,
            // The library asks callers to neutralise control characters before printing.
            message: message.escape_debug().to_string(),
        }
    })
}

/// Write `value` as a YAML document (block style, two-space indent, ending in a newline).
/// Strings that a YAML 1.1 reader would take for something else (`no`, `on`, `"001"`) are
/// quoted.
pub fn to_yaml(value: &Value) -> Result<String> {
    serde_saphyr::to_string(value).map_err(|err| {
        Error::invalid(
            "YAML output",
            format!("cannot write the value as YAML: {err}"),
        )
    })
}

/// Parse a JSON document. `display_path` names the file in errors, which carry the 1-based
/// line and column.
pub fn parse_json(bytes: &[u8], display_path: &str) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|err| {
        // serde_json appends " at line L column C" to its message; the position is kept in
        // the error's own fields instead, so it is said once.
        let text = err.to_string();
        let suffix = format!(" at line {} column {}", err.line(), err.column());
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
        Error::Parse {
            path: display_path.to_string(),
            format: "JSON",
            line: err.line(),
            column: err.column(),
            message,
        }
    })
}

/// `value` as pretty JSON with two-space indent, keys in their original order, ending in a
/// newline so that the written file is a proper text file.
pub fn to_json_pretty(value: &Value) -> String {
    // A `Value` always serializes: its map keys are strings and its numbers finite.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// The problems of a training configuration (`configs/sl/training_configs.yaml`), one message
/// each; empty when it is fine. Keys not listed here are allowed, so teams can add their own.
///
/// | key                        | rule                                  |
/// |----------------------------|---------------------------------------|
/// | `model`                    | required mapping                      |
/// | `model.type`               | required, a non-empty string          |
/// | `model.learning_rate`      | required, a number in (0, 1]          |
/// | `model.max_depth`          | when present, a positive integer      |
/// | `model.n_estimators`       | when present, a positive integer      |
/// | `features`                 | when present, a mapping               |
/// | `features.window`          | when present, a positive integer      |
/// | `features.lags`            | when present, a list of positive integers |
/// | `validation`               | when present, a mapping               |
/// | `validation.split`         | when present, a non-empty string      |
/// | `validation.mse_threshold` | when present, a positive number       |
pub fn validate_training_config(config: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(root) = config.as_object() else {
        problems.push(format!(
            "the training configuration must be a mapping with a `model` section, got {}",
            describe(config)
        ));
        return problems;
    };

    match root.get("model") {
        None => problems.push(
            "`model` is missing; add a `model` section with `type` and `learning_rate`".into(),
        ),
        Some(model) => match model.as_object() {
            None => problems.push(format!(
                "`model` must be a mapping, got {}",
                describe(model)
            )),
            Some(model) => {
                match model.get("type") {
                    None => problems.push(
                        "`model.type` is missing; set it to the model family, such as `xgboost`"
                            .into(),
                    ),
                    Some(value) => check_string("model.type", value, &mut problems),
                }
                match model.get("learning_rate") {
                    None => problems.push(
                        "`model.learning_rate` is missing; set it to a number in (0, 1], such as `0.05`"
                            .into(),
                    ),
                    Some(value) => {
                        let ok = value.as_f64().is_some_and(|rate| rate > 0.0 && rate <= 1.0);
                        if !ok {
                            problems.push(format!(
                                "`model.learning_rate` must be a number in (0, 1], got {}",
                                describe(value)
                            ));
                        }
                    }
                }
                for key in ["max_depth", "n_estimators"] {
                    if let Some(value) = model.get(key) {
                        check_positive_integer(&format!("model.{key}"), value, &mut problems);
                    }
                }
            }
        },
    }

    if let Some(features) = section(root, "features", &mut problems) {
        if let Some(window) = features.get("window") {
            check_positive_integer("features.window", window, &mut problems);
        }
        if let Some(lags) = features.get("lags") {
            let ok = lags
                .as_array()
                .is_some_and(|lags| lags.iter().all(|lag| lag.as_u64().is_some_and(|n| n > 0)));
            if !ok {
                problems.push(format!(
                    "`features.lags` must be a list of positive integers, such as `[1, 2, 5]`, got {}",
                    describe(lags)
                ));
            }
        }
    }

    if let Some(validation) = section(root, "validation", &mut problems) {
        if let Some(split) = validation.get("split") {
            check_string("validation.split", split, &mut problems);
        }
        if let Some(threshold) = validation.get("mse_threshold") {
            if !threshold.as_f64().is_some_and(|t| t > 0.0) {
                problems.push(format!(
                    "`validation.mse_threshold` must be a positive number, got {}",
                    describe(threshold)
                ));
            }
        }
    }
    problems
}

/// A unified diff from `old` to `new` with three lines of context, headed `--- old_name` and
/// `+++ new_name`, as `diff -u` and `git diff` print it; empty when the texts are equal.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

/// An optional mapping under `root`; a problem when it is there but not a mapping.
fn section<'a>(
    root: &'a serde_json::Map<String, Value>,
    key: &str,
    problems: &mut Vec<String>,
) -> Option<&'a serde_json::Map<String, Value>> {
    let value = root.get(key)?;
    let map = value.as_object();
    if map.is_none() {
        problems.push(format!(
            "`{key}` must be a mapping, got {}",
            describe(value)
        ));
    }
    map
}

fn check_string(key: &str, value: &Value, problems: &mut Vec<String>) {
    match value {
        Value::String(text) if !text.trim().is_empty() => {}
        // YAML 1.1 reads bare `yes`, `no`, `on`, `off` as booleans, which surprises people.
        Value::Bool(_) => problems.push(format!(
            "`{key}` must be a non-empty string, got {}; quote the value, since YAML reads a bare `yes`/`no`/`on`/`off` as true or false",
            describe(value)
        )),
        _ => problems.push(format!("`{key}` must be a non-empty string, got {}", describe(value))),
    }
}

fn check_positive_integer(key: &str, value: &Value, problems: &mut Vec<String>) {
    if !matches!(value.as_u64(), Some(n) if n > 0) {
        problems.push(format!(
            "`{key}` must be a positive integer, got {}",
            describe(value)
        ));
    }
}

/// A value as it appears in a message: short JSON in backticks, or the kind of a container.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (`null`)".to_string(),
        Value::Array(_) if value.to_string().len() > 40 => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
        other => format!("`{other}`"),
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_error(result: Result<Value>) -> (usize, usize, String) {
        match result {
            Err(Error::Parse {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_yaml_reports_line_and_column() {
        let text = "model:\n  type: xgboost\n   learning_rate: 0.05\n";
        let err = parse_yaml(text.as_bytes(), "configs/sl/training_configs.yaml").unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with("`configs/sl/training_configs.yaml` is not valid YAML"),
            "{shown}"
        );
        assert!(shown.contains("at line 3, column 17"), "{shown}");
        let (line, column, message) = parse_error(Err(err));
        assert_eq!((line, column), (3, 17));
        assert!(
            !message.contains("line"),
            "the position is said once: {message}"
        );

        let (line, column, _) = parse_error(parse_yaml(b"a: [1, 2\nb: 3\n", "x.yaml"));
        assert_eq!((line, column), (2, 2));
        let (line, _, message) = parse_error(parse_yaml(b"lr: 1\nlr: 2\n", "x.yaml"));
        assert_eq!(line, 2);
        assert!(message.contains("duplicate"), "{message}");
        assert!(parse_yaml(b"a: .nan\n", "x.yaml").is_err());
        assert!(parse_yaml(b"a: 1\n---\nb: 2\n", "x.yaml").is_err());
        assert!(parse_yaml(b"\xff\xfe\x00", "x.yaml").is_err());
    }

    #[test]
    fn yaml_round_trip_keeps_key_order_and_values() {
        let text =
            "zeta: 1\nalpha:\n  second: two\n  first: [1, 2.5, \"3\"]\nmiddle: null\nflag: on\n";
        let value = parse_yaml(text.as_bytes(), "x.yaml").unwrap();
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["zeta", "alpha", "middle", "flag"]);
        assert_eq!(value["flag"], json!(true));
        assert_eq!(value["alpha"]["first"], json!([1, 2.5, "3"]));

        let written = to_yaml(&value).unwrap();
        assert!(
            written.starts_with("zeta: 1\nalpha:\n  second: two\n"),
            "{written}"
        );
        assert_eq!(parse_yaml(written.as_bytes(), "x.yaml").unwrap(), value);
        let inner: Vec<&String> = value["alpha"].as_object().unwrap().keys().collect();
        assert_eq!(inner, ["second", "first"]);
    }

    #[test]
    fn yaml_output_quotes_strings_a_yaml_1_1_reader_would_misread() {
        let value = json!({"no": "off", "version": "001", "empty": "", "colon": "a: b"});
        let written = to_yaml(&value).unwrap();
        assert!(written.contains("\"no\": \"off\""), "{written}");
        assert!(written.contains("version: \"001\""), "{written}");
        assert_eq!(parse_yaml(written.as_bytes(), "x.yaml").unwrap(), value);
    }

    #[test]
    fn json_parse_errors_and_pretty_output() {
        let err = parse_json(b"{\n  \"a\": 1,\n  \"b\": \n}", "models/registry.json").unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("`models/registry.json` is not valid JSON"),
            "{shown}"
        );
        let (line, column, message) = parse_error(Err(err));
        assert_eq!((line, column), (4, 1));
        assert!(!message.contains("at line"), "{message}");

        let value = parse_json(br#"{"z": [1, {"y": true}], "a": null}"#, "x.json").unwrap();
        let pretty = to_json_pretty(&value);
        assert_eq!(
            pretty,
            "{\n  \"z\": [\n    1,\n    {\n      \"y\": true\n    }\n  ],\n  \"a\": null\n}\n"
        );
        assert_eq!(parse_json(pretty.as_bytes(), "x.json").unwrap(), value);
    }

    #[test]
    fn unified_diff_shows_changed_lines_with_headers() {
        let old = "model:\n  type: lightgbm\n  learning_rate: 0.3\n  max_depth: 6\n";
        let new = "model:\n  type: xgboost\n  learning_rate: 0.05\n  max_depth: 6\n";
        let diff = unified_diff(
            old,
            new,
            "a/training_configs.yaml",
            "b/training_configs.yaml",
        );
        let expected = "\
--- a/training_configs.yaml
+++ b/training_configs.yaml
@@ -1,4 +1,4 @@
 model:
-  type: lightgbm
-  learning_rate: 0.3
+  type: xgboost
+  learning_rate: 0.05
   max_depth: 6
";
        assert_eq!(diff, expected);
        assert_eq!(unified_diff(old, old, "a", "b"), "");
        let diff = unified_diff("x", "x\n", "a", "b");
        assert!(diff.contains("\\ No newline at end of file"), "{diff}");
    }

    #[test]
    fn validation_names_each_problem() {
        let config = json!({
            "model": {"type": "", "learning_rate": 1.5, "max_depth": 0, "n_estimators": 2.5},
            "features": {"window": -1, "lags": [1, 0]},
            "validation": {"split": false, "mse_threshold": 0},
        });
        let problems = validate_training_config(&config);
        let expected = [
            "`model.type` must be a non-empty string, got `\"\"`",
            "`model.learning_rate` must be a number in (0, 1], got `1.5`",
            "`model.max_depth` must be a positive integer, got `0`",
            "`model.n_estimators` must be a positive integer, got `2.5`",
            "`features.window` must be a positive integer, got `-1`",
            "`features.lags` must be a list of positive integers, such as `[1, 2, 5]`, got `[1,0]`",
            "`validation.split` must be a non-empty string, got `false`; quote the value, since YAML reads a bare `yes`/`no`/`on`/`off` as true or false",
            "`validation.mse_threshold` must be a positive number, got `0`",
        ];
        assert_eq!(problems, expected);

        let problems = validate_training_config(&json!({"model": {}, "features": [1]}));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("`model.type` is missing"));
        assert!(problems[1].starts_with("`model.learning_rate` is missing"));
        assert_eq!(problems[2], "`features` must be a mapping, got `[1]`");
        assert_eq!(
            validate_training_config(&Value::Null),
            ["the training configuration must be a mapping with a `model` section, got nothing (`null`)"]
        );
        assert!(
            validate_training_config(&json!({"model": {"type": "ridge", "learning_rate": 1}}))
                .is_empty()
        );
    }

    #[test]
    fn the_default_template_parses_and_validates() {
        let value = parse_yaml(
            DEFAULT_TRAINING_CONFIG.as_bytes(),
            "training_configs.default.yaml",
        )
        .unwrap();
        assert_eq!(validate_training_config(&value), Vec::<String>::new());
        assert_eq!(value["model"]["type"], json!("xgboost"));
        assert_eq!(value["model"]["learning_rate"], json!(0.05));
    }

    /// The template is the original configuration of the benchmark workspace, the one its
    /// `.backup` holds.
    #[test]
    fn the_default_template_matches_the_benchmark_backup() {
        let script = std::path::Path::new("/work/shared/bench/make_workspace.py");
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        let made = std::process::Command::new("python3")
            .arg(script)
            .arg(&ws)
            .status();
        if !script.exists() || !made.is_ok_and(|status| status.success()) {
            eprintln!("skipped: needs python3 and {}", script.display());
            return;
        }
        let read = |rel: &str| std::fs::read(ws.join(rel)).unwrap();
        let backup =
            parse_yaml(&read("configs/sl/training_configs.yaml.backup"), "backup").unwrap();
        let template = parse_yaml(DEFAULT_TRAINING_CONFIG.as_bytes(), "template").unwrap();
        assert_eq!(template, backup);
        // The changed configuration in the workspace is valid too; only its values differ.
        let current = parse_yaml(&read("configs/sl/training_configs.yaml"), "current").unwrap();
        assert!(validate_training_config(&current).is_empty());
        assert_eq!(current["model"]["type"], json!("lightgbm"));
    }
}
