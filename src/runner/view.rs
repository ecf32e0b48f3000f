//! `runbook view FILE`: a runbook as a procedure a person can follow by hand when the
//! automation is down: the header, the parameters, then every step in order with the
//! comments written above it and the primitive calls it makes. Read from the script text,
//! never run; a computed step name (``step `Make ${good} production` ``) is shown as written.

use super::format::Format;
use crate::error::Result;
use std::path::Path;

/// One `step` found in the script.
struct Step {
    number: String,
    name: String,
    comments: Vec<String>,
    calls: Vec<String>,
}

/// The primitive families whose calls a step lists (`registry::set_production(..)`).
fn is_call(line: &str) -> bool {
    crate::primitives::FAMILIES
        .iter()
        .any(|f| line.contains(&format!("{f}::")))
}

/// The name of a `step "name" {` or ``step `name` {`` line, if it is one.
fn step_name(line: &str) -> Option<String> {
    let at = line.find("step ")?;
    let before = &line[..at];
    if !(before.trim().is_empty() || before.trim_end().ends_with('=')) {
        return None;
    }
    let rest = line[at + 5..].trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '`')?;
    let end = rest[1..].find(quote)?;
    Some(rest[1..1 + end].to_string())
}

/// Braces opened minus closed on a line, outside strings and comments.
fn brace_delta(line: &str) -> i64 {
    let code = line.split("//").next().unwrap_or("");
    let mut delta = 0;
    let mut quote: Option<char> = None;
    for c in code.chars() {
        match (quote, c) {
            (None, '"' | '`' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '{') => delta += 1,
            (None, '}') => delta -= 1,
            _ => {}
        }
    }
    delta
}

fn steps_of(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    // The open steps: their index in `steps` and the brace depth their body opened at.
    let mut open: Vec<(usize, i64)> = Vec::new();
    let mut counters: Vec<usize> = vec![0];
    let mut depth: i64 = 0;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("//!") {
            continue;
        }
        if let Some(c) = t.strip_prefix("//") {
            comments.push(c.trim().to_string());
            continue;
        }
        if t.is_empty() {
            comments.clear();
            continue;
        }
        if let Some(name) = step_name(t) {
            let level = open.len();
            counters.truncate(level + 1);
            counters[level] += 1;
            counters.push(0);
            let number = counters[..=level]
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(".");
            steps.push(Step {
                number,
                name,
                comments: std::mem::take(&mut comments),
                calls: Vec::new(),
            });
            open.push((steps.len() - 1, depth));
        } else {
            comments.clear();
            if let Some((i, _)) = open.last() {
                if is_call(t) {
                    steps[*i].calls.push(t.trim_end_matches(';').to_string());
                }
            }
        }
        depth += brace_delta(t);
        while open.last().is_some_and(|(_, d)| depth <= *d) {
            open.pop();
            counters.truncate(open.len() + 1);
        }
    }
    steps
}

/// Render the runbook at `path` as a procedure.
pub fn view(path: &Path, format: Format) -> Result<String> {
    let (display, text, header) = super::read_runbook(path)?;
    let steps = steps_of(&text);
    let md = format == Format::Markdown;
    let mut out = String::new();
    if md {
        out.push_str(&format!(
            "## `{}` {}\n\n{}\n\nFile `{display}`.\n\n",
            header.name, header.version, header.description
        ));
    } else {
        out.push_str(&format!(
            "{} {}\n{}\nfile: {display}\n",
            header.name, header.version, header.description
        ));
    }
    if md {
        out.push_str("### Parameters\n\n");
        if header.params.is_empty() {
            out.push_str("none\n");
        }
        out.push_str("| name | type | default | description |\n|---|---|---|---|\n");
    } else {
        out.push_str("parameters:\n");
    }
    for p in &header.params {
        let default = super::describe_default(&p.default, p.optional);
        if md {
            out.push_str(&format!(
                "| `{}` | {} | `{default}` | {} |\n",
                p.name,
                p.ty.name(),
                p.description.replace('|', "\\|")
            ));
        } else {
            out.push_str(&format!(
                "  {} ({}, default {default}): {}\n",
                p.name,
                p.ty.name(),
                p.description
            ));
        }
    }
    out.push_str(if md { "\n### Steps\n" } else { "steps:\n" });
    for s in &steps {
        let depth = s.number.matches('.').count();
        if md {
            out.push_str(&format!("\n**{}. {}**\n\n", s.number, s.name));
            for c in &s.comments {
                out.push_str(&format!("> {c}\n"));
            }
            if !s.comments.is_empty() {
                out.push('\n');
            }
            for c in &s.calls {
                out.push_str(&format!("- `{c}`\n"));
            }
        } else {
            let pad = "  ".repeat(depth + 1);
            out.push_str(&format!("{pad}{}. {}\n", s.number, s.name));
            for c in &s.comments {
                out.push_str(&format!("{pad}   # {c}\n"));
            }
            for c in &s.calls {
                out.push_str(&format!("{pad}   - {c}\n"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_numbered_with_their_comments_and_calls() {
        let text = "//! name: x\n// why we stop\nstep \"Stop\" {\n    process::stop(p);\n    step `Inner ${v}` {\n        fs::remove(\"a\");\n    }\n}\n\nlet v = step \"Second\" { registry::get(m, v) };\n";
        let steps = steps_of(text);
        let shown: Vec<(String, String, Vec<String>, Vec<String>)> = steps
            .into_iter()
            .map(|s| (s.number, s.name, s.comments, s.calls))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "1".into(),
                    "Stop".into(),
                    vec!["why we stop".to_string()],
                    vec!["process::stop(p)".to_string()]
                ),
                (
                    "1.1".into(),
                    "Inner ${v}".into(),
                    vec![],
                    vec!["fs::remove(\"a\")".to_string()]
                ),
                ("2".into(), "Second".into(), vec![], vec![]),
            ]
        );
    }
}
