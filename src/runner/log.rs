//! `runbook log`: the runs of a workspace, newest first, from their journals; a run that
//! did not finish (killed, machine down) is marked as such, with what to do about it.

use crate::effects::{Console, Workspace};
use crate::error::{Error, Result};
use crate::output::outln;
use serde_json::Value;
use std::path::Path;

/// One run, as its journal tells it.
pub struct RunSummary {
    pub run_id: String,
    pub start: Value,
    pub end: Option<Value>,
    pub changes: usize,
    pub unfinished: bool,
}

pub(super) fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Every run in `workspace`, newest first.
pub fn runs(workspace: &Path) -> Result<Vec<RunSummary>> {
    let ws = Workspace::open(workspace, "log", true, Console::Quiet)?;
    ws.check_own_files()?;
    let dir = ws.display_root().join(".runbook/runs");
    let ids: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".jsonl")
                    .map(str::to_string)
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut all: Vec<RunSummary> = ids
        .into_iter()
        .map(|id| {
            let events = read_events(&dir.join(format!("{id}.jsonl")));
            let (start, end) = start_and_end(&events);
            let changes = events
                .iter()
                .filter(|e| e["event"] == "action" && e["applied"] == true)
                .count();
            RunSummary {
                unfinished: ws.is_unfinished(&id),
                run_id: id,
                start,
                end,
                changes,
            }
        })
        .collect();
    // Newest first by when each run started: two run ids of the same second sort by their
    // random suffix, not by time. RFC 3339 in UTC with fixed digits sorts as text.
    all.sort_by(|a, b| {
        let started = |r: &RunSummary| r.start["ts"].as_str().unwrap_or("").to_string();
        started(b)
            .cmp(&started(a))
            .then_with(|| b.run_id.cmp(&a.run_id))
    });
    Ok(all)
}

fn status(r: &RunSummary) -> String {
    if r.unfinished {
        return "DID NOT FINISH (killed?)".into();
    }
    match &r.end {
        Some(e) => e["status"].as_str().unwrap_or("?").to_string(),
        None => "no end recorded".into(),
    }
}

/// The one run `runbook log RUN_ID` or `--last` asks for (`None`: neither, list them all).
pub fn select<'a>(
    all: &'a [RunSummary],
    run_id: Option<&str>,
    last: bool,
) -> Result<Option<&'a RunSummary>> {
    Ok(match (run_id, last) {
        (Some(id), _) => Some(all.iter().find(|r| r.run_id == id).ok_or_else(|| {
            Error::Usage(format!("there is no run `{id}`; `runbook log` lists them"))
        })?),
        (None, true) => {
            Some(all.first().ok_or_else(|| {
                Error::Usage("no run has been logged in this workspace yet".into())
            })?)
        }
        (None, false) => None,
    })
}

/// A run log's `run_start` event (`null` when it has none) and its last `run_end`.
pub fn start_and_end(events: &[Value]) -> (Value, Option<Value>) {
    let start = events
        .iter()
        .find(|e| e["event"] == "run_start")
        .cloned()
        .unwrap_or(Value::Null);
    let end = events
        .iter()
        .rev()
        .find(|e| e["event"] == "run_end")
        .cloned();
    (start, end)
}

/// `runbook log [RUN_ID | --last]`.
pub fn print(workspace: &Path, run_id: Option<&str>, last: bool) -> Result<()> {
    let all = runs(workspace)?;
    let one = select(&all, run_id, last)?;
    let Some(run) = one else {
        if all.is_empty() {
            outln!("no runs in `{}` yet", workspace.display());
        }
        for r in &all {
            let mode = if r.start["dry_run"] == true {
                "dry"
            } else {
                "real"
            };
            let duration = r
                .end
                .as_ref()
                .and_then(|e| e["duration_ms"].as_f64())
                .map(|ms| format!("{ms:.0} ms"))
                .unwrap_or_else(|| "-".into());
            outln!(
                "{}  {} {}  {mode}  {}  started {}  {duration}  {} change(s)",
                r.run_id,
                r.start["name"].as_str().unwrap_or("?"),
                r.start["version"].as_str().unwrap_or(""),
                status(r),
                r.start["ts"].as_str().unwrap_or("?"),
                r.changes
            );
        }
        if let Some(r) = all.iter().find(|r| r.unfinished) {
            outln!("run {} did not finish: `runbook resume {}` finishes it, `runbook undo {}` reverts it", r.run_id, r.run_id, r.run_id);
        }
        return Ok(());
    };
    let ws = Workspace::open(workspace, "log", true, Console::Quiet)?;
    let events = read_events(
        &ws.display_root()
            .join(format!(".runbook/runs/{}.jsonl", run.run_id)),
    );
    outln!(
        "run {}: {} {} ({})",
        run.run_id,
        run.start["name"].as_str().unwrap_or("?"),
        run.start["version"].as_str().unwrap_or(""),
        status(run)
    );
    // Each step as it started, its actions under it, its status when it ended; an action
    // is shown by the line the console showed (logs before `summary` existed: op and args).
    for e in events {
        let pad = "  ".repeat(e["step"].as_str().map_or(0, |s| s.matches('.').count()) + 1);
        match e["event"].as_str() {
            Some("step_start") => outln!(
                "{pad}[{}] {}",
                e["step"].as_str().unwrap_or(""),
                e["name"].as_str().unwrap_or("")
            ),
            Some("step_end") => outln!(
                "{pad}[{}] {} ({} ms){}",
                e["step"].as_str().unwrap_or(""),
                e["status"].as_str().unwrap_or(""),
                e["duration_ms"]
                    .as_f64()
                    .map_or("-".into(), |ms| format!("{ms:.1}")),
                e["error"]
                    .as_str()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            Some("action") => {
                let what = match e["summary"].as_str() {
                    Some(s) => s.to_string(),
                    None => format!("{} {}", e["op"].as_str().unwrap_or(""), e["args"]),
                };
                let verb = if e["kind"] == "check" {
                    "check"
                } else if e["applied"] == true {
                    "done:"
                } else {
                    "would"
                };
                outln!("{pad}    {verb} {what}");
            }
            _ => {}
        }
    }
    Ok(())
}
