//! `--format json`: one JSON document on stdout per command, for machines. The shapes are
//! documented in README ("JSON output") and checked by `tests/it/review.rs`; the text output
//! for people stays the default. Every document is built from what the command already
//! knows (a run from its own log), so the two outputs cannot tell different stories.

use super::log::{read_events, RunSummary};
use crate::error::Error;
use crate::header::Header;
use serde_json::{json, Value};
use std::path::Path;

/// A runbook's header: name, version, description, parameters.
pub fn header(h: &Header) -> Value {
    json!({
        "name": h.name,
        "version": h.version.to_string(),
        "description": h.description,
        "params": h.params.iter().map(|p| json!({
            "name": p.name,
            "type": p.ty.name(),
            "default": p.default.as_ref().map(|d| d.to_json()),
            "required": p.default.is_none() && !p.optional,
            "description": p.description,
        })).collect::<Vec<_>>(),
        "extra": h.extra,
    })
}

/// The status of a run as `log` tells it.
fn status(r: &RunSummary) -> &str {
    if r.unfinished {
        return "unfinished";
    }
    r.end
        .as_ref()
        .and_then(|e| e["status"].as_str())
        .unwrap_or("no_end")
}

/// One line of `runbook log --format json`.
pub fn run_summary(r: &RunSummary) -> Value {
    json!({
        "run_id": r.run_id,
        "runbook": r.start["runbook"],
        "name": r.start["name"],
        "version": r.start["version"],
        "mode": if r.start["dry_run"] == true { "dry" } else { "real" },
        "status": status(r),
        "unfinished": r.unfinished,
        "started": r.start["ts"],
        "duration_ms": r.end.as_ref().map(|e| e["duration_ms"].clone()).unwrap_or(Value::Null),
        "changes": r.changes,
    })
}

/// A run's steps, effects and metrics from its log events.
pub fn run_detail(events: &[Value]) -> Value {
    let steps: Vec<Value> = events
        .iter()
        .filter(|e| e["event"] == "step_end")
        .map(|e| {
            json!({
                "step": e["step"], "name": e["name"], "status": e["status"],
                "duration_ms": e["duration_ms"], "error": e.get("error").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    let actions: Vec<Value> = events
        .iter()
        .filter(|e| e["event"] == "action")
        .map(|e| {
            json!({
                "step": e["step"], "op": e["op"], "kind": e["kind"], "args": e["args"],
                "summary": e.get("summary").cloned().unwrap_or(Value::Null),
                "applied": e["applied"], "result": e.get("result").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    let (checks, effects): (Vec<Value>, Vec<Value>) =
        actions.into_iter().partition(|a| a["kind"] == "check");
    // A check's result with numbers in it is a metric (an evaluation, a gate).
    let metrics: Vec<Value> = checks
        .iter()
        .filter(|c| {
            c["result"]
                .as_object()
                .is_some_and(|m| m.values().any(Value::is_number))
        })
        .map(|c| json!({"step": c["step"], "op": c["op"], "values": c["result"]}))
        .collect();
    let messages: Vec<Value> = events
        .iter()
        .filter(|e| e["event"] == "log")
        .map(|e| json!({"step": e["step"], "message": e["message"]}))
        .collect();
    json!({"steps": steps, "effects": effects, "checks": checks, "metrics": metrics, "messages": messages})
}

/// `runbook run --format json`: the run as its log tells it, or the error that kept it from
/// starting.
pub fn run_report(log: Option<&Path>, error: Option<&Error>) -> Value {
    let events = log.map(read_events).unwrap_or_default();
    let (start, end) = super::log::start_and_end(&events);
    let end = end.unwrap_or(Value::Null);
    let status = match (&end["status"], error) {
        (Value::String(s), _) => s.clone(),
        (_, Some(_)) => "error".into(),
        _ => "unknown".into(),
    };
    let mut doc = json!({
        "run_id": start["run_id"],
        "status": status,
        "dry_run": start["dry_run"],
        "runbook": {
            "path": start["runbook"], "name": start["name"],
            "version": start["version"], "sha256": start["sha256"],
        },
        "params": start["params"],
        "workspace": start["workspace"],
        "duration_ms": end["duration_ms"],
        "changes": end["actions"],
        "log": log.map(|p| p.display().to_string()),
        "error": error.map(|e| e.to_string()),
        "exit_code": error.map_or(0, Error::code),
    });
    if let (Some(d), Value::Object(detail)) = (doc.as_object_mut(), run_detail(&events)) {
        d.extend(detail);
    }
    doc
}

/// `runbook docs --format json`: every family with its functions, and the globals.
pub fn docs() -> Value {
    let meta = super::docs::metadata();
    let function = |f: &Value| {
        let doc: Vec<String> = f["docComments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .flat_map(|c| c.lines())
            .map(|l| {
                let l = l.trim_start_matches("///");
                l.strip_prefix(' ').unwrap_or(l).to_string()
            })
            .collect();
        json!({"name": f["name"], "signature": f["signature"], "doc": doc.join("\n")})
    };
    let families: Vec<Value> = meta["modules"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, m)| {
            json!({
                "name": name,
                "doc": m["doc"],
                "functions": m["functions"].as_array().into_iter().flatten().map(function).collect::<Vec<_>>(),
            })
        })
        .collect();
    let globals: Vec<Value> = meta["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["docComments"].as_array().is_some_and(|c| !c.is_empty()))
        .map(function)
        .collect();
    json!({"families": families, "globals": globals})
}

/// Print one document (pretty, with a final newline).
pub fn print(doc: &Value) {
    crate::output::out!(
        "{}\n",
        serde_json::to_string_pretty(doc).unwrap_or_default()
    );
}
