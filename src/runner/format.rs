//! A saved plan as people read it: `--format text` (the default, for a terminal) and
//! `--format markdown` (for a pull-request comment). Both are pure functions of the plan
//! document, so two plans of the same state render the same, byte for byte.

use serde_json::Value;

/// The output formats of commands that have them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Format {
        match s {
            "markdown" | "md" => Format::Markdown,
            "json" => Format::Json,
            _ => Format::Text,
        }
    }
}

/// The groups of a plan's summary: heading in text, row in Markdown, and the effect kinds
/// in it. The first five are always shown, the others when they have something.
const GROUPS: &[(&str, &[&str], bool)] = &[
    ("registry changes", &["registry"], true),
    (
        "files removed (moved to the trash)",
        &["file_removed"],
        true,
    ),
    ("files written", &["file_written"], true),
    ("files moved", &["file_moved"], false),
    ("git changes", &["git"], true),
    ("processes signalled", &["process"], true),
];

fn items(doc: &Value) -> impl Iterator<Item = (&Value, &Value)> {
    doc["steps"].as_array().into_iter().flatten().flat_map(|s| {
        s["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(move |i| (s, i))
    })
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn params_line(doc: &Value, code: &str) -> String {
    let params: Vec<String> = doc["params"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let shown = match v {
                Value::Null => "(unset)".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{code}{k}{code} = {code}{shown}{code}")
        })
        .collect();
    if params.is_empty() {
        "none".into()
    } else {
        params.join(", ")
    }
}

/// The plan for a terminal.
pub fn text(doc: &Value) -> String {
    let rb = &doc["runbook"];
    let mut out = format!(
        "plan: {} {} ({}, sha256 {})\nparameters: {}\n",
        str_of(&rb["name"]),
        str_of(&rb["version"]),
        str_of(&rb["given"]),
        &str_of(&rb["sha256"])[..str_of(&rb["sha256"]).len().min(12)],
        params_line(doc, "")
    );
    for step in doc["steps"].as_array().into_iter().flatten() {
        let depth = str_of(&step["step"]).matches('.').count();
        let pad = "    ".repeat(depth);
        out.push_str(&format!(
            "{pad}[{}] {}\n",
            str_of(&step["step"]),
            str_of(&step["name"])
        ));
        for item in step["items"].as_array().into_iter().flatten() {
            let line = match str_of(&item["type"]) {
                "message" => format!("| {}", str_of(&item["text"])),
                "check" => format!("check {}", str_of(&item["summary"])),
                "command" => format!("run {}", str_of(&item["summary"])),
                _ => format!("{}. {}", item["effect"], str_of(&item["summary"])),
            };
            for l in line.lines() {
                out.push_str(&format!("{pad}    {l}\n"));
            }
        }
    }
    out.push_str("summary:\n");
    let mut any = false;
    for (heading, kinds, _) in GROUPS {
        let listed: Vec<&str> = items(doc)
            .filter(|(_, i)| i["type"] == "effect" && kinds.contains(&str_of(&i["kind"])))
            .map(|(_, i)| str_of(&i["summary"]))
            .collect();
        if listed.is_empty() {
            continue;
        }
        any = true;
        out.push_str(&format!("  {heading}:\n"));
        for s in listed {
            out.push_str(&format!("    - {s}\n"));
        }
    }
    if !any {
        out.push_str("  no changes\n");
    }
    let n = doc["effects"].as_array().map_or(0, Vec::len);
    out.push_str(&format!(
        "{n} effect(s) planned; `<timestamp>` and `<run-id>` are the real run's start time and id\n"
    ));
    out
}

/// A Markdown table cell: pipes escaped, lines joined.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn code(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    };
    format!("`{}`", cell(&s))
}

/// The plan for a pull-request comment: a summary table, then the steps with their
/// effects, a registry change as the fields it changes (before, after), a written text file
/// as a unified diff.
pub fn markdown(doc: &Value) -> String {
    let rb = &doc["runbook"];
    let sha = str_of(&rb["sha256"]);
    let mut out = format!(
        "### Plan: `{}` {}\n\nRunbook `{}` (sha256 `{}`). Parameters: {}.\n\n\
         `<timestamp>` is when the real run starts (`YYYYmmdd_HHMMSS`), `<run-id>` its id, \
         `<now>` the moment it makes the change. `runbook apply` runs exactly these effects, \
         or refuses if the workspace changed since.\n\n",
        str_of(&rb["name"]),
        str_of(&rb["version"]),
        str_of(&rb["given"]),
        &sha[..sha.len().min(12)],
        params_line(doc, "`")
    );
    out.push_str("#### Summary\n\n| | |\n|---|---|\n");
    for (heading, kinds, always) in GROUPS {
        let listed: Vec<String> = items(doc)
            .filter(|(_, i)| i["type"] == "effect" && kinds.contains(&str_of(&i["kind"])))
            .map(|(_, i)| cell(str_of(&i["summary"])))
            .collect();
        if listed.is_empty() && !always {
            continue;
        }
        let shown = if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join("<br>")
        };
        let label = heading.split(" (").next().unwrap_or(heading);
        out.push_str(&format!("| {label} | {shown} |\n"));
    }
    for (label, ty) in [("commands run", "command"), ("checks", "check")] {
        let listed: Vec<String> = items(doc)
            .filter(|(_, i)| i["type"] == ty)
            .map(|(_, i)| cell(str_of(&i["summary"])))
            .collect();
        if listed.is_empty() && ty == "command" {
            continue;
        }
        let shown = if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join("<br>")
        };
        out.push_str(&format!("| {label} | {shown} |\n"));
    }
    out.push_str("\n#### Steps\n");
    for step in doc["steps"].as_array().into_iter().flatten() {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&format!(
            "**{}. {}**\n\n",
            str_of(&step["step"]),
            str_of(&step["name"])
        ));
        let step_items = step["items"].as_array().cloned().unwrap_or_default();
        if step_items.is_empty() {
            out.push_str("- nothing\n");
        }
        for item in &step_items {
            match str_of(&item["type"]) {
                "message" => out.push_str(&format!("- says: {}\n", str_of(&item["text"]))),
                "check" => out.push_str(&format!("- check: {}\n", str_of(&item["summary"]))),
                "command" => out.push_str(&format!("- runs: {}\n", str_of(&item["summary"]))),
                _ => {
                    out.push_str(&format!(
                        "- **{}.** {}\n",
                        item["effect"],
                        str_of(&item["summary"])
                    ));
                    detail(&mut out, &item["detail"]);
                }
            }
        }
    }
    out
}

/// The before/after of a registry change, or the diff of a written file, under its effect.
fn detail(out: &mut String, detail: &Value) {
    for entry in detail["registry"].as_array().into_iter().flatten() {
        let who = format!(
            "`{}` `{}`",
            str_of(&entry["name"]),
            str_of(&entry["version"])
        );
        if entry["removed"] == true {
            out.push_str(&format!("\n  {who}: the entry is removed\n"));
            continue;
        }
        let fields = entry["fields"].as_object().cloned().unwrap_or_default();
        let added = if entry["added"] == true { " (new)" } else { "" };
        out.push_str(&format!(
            "\n  | {who}{added} | before | after |\n  |---|---|---|\n"
        ));
        for (k, v) in &fields {
            out.push_str(&format!(
                "  | `{}` | {} | {} |\n",
                cell(k),
                code(&v[0]),
                code(&v[1])
            ));
        }
    }
    for file in detail["files"].as_array().into_iter().flatten() {
        if file["binary"] == true {
            out.push_str(&format!(
                "\n  `{}`: binary, rewritten\n",
                str_of(&file["path"])
            ));
        } else {
            diff_block(out, file);
        }
    }
    diff_block(out, detail);
    if !detail.is_null() {
        out.push('\n');
    }
}

/// The unified diff of a written file (or why it is not shown), indented under its effect.
fn diff_block(out: &mut String, detail: &Value) {
    if let Some(diff) = detail["diff"].as_str() {
        out.push_str("\n  ```diff\n");
        for line in diff.lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out.push_str("  ```\n");
    } else if let Some(n) = detail["diff_omitted"].as_u64() {
        out.push_str(&format!(
            "\n  (a diff of {n} bytes, not shown; new sha256 `{}`)\n",
            str_of(&detail["sha256"])
        ));
    }
}
