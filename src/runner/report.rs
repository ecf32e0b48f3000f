//! `runbook run --report FILE.md`: a Markdown report of one run, for the post-rollback
//! documentation (plan §7, §8.3). It is rendered from the run's own log (`.runbook/runs/
//! <run-id>.jsonl`), so it says exactly what the journal says: the runbook's name, version
//! and hash, its parameters, every step with its status and duration, every effect, the
//! metrics and gates, the plan's time estimate (§10) next to the measured time, and which of
//! the plan's success criteria (§11) the run showed to hold. The file lies outside the
//! workspace and is written like `--dry-run-state` (`effects::write_output`).

use crate::error::{Error, Result};
use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

/// The plan's §10 estimate for a runbook, by its name.
fn estimate(name: &str) -> Option<(&'static str, f64)> {
    match name {
        "revert_model" | "full_rollback" | "verify_rollback" | "quick_verification"
        | "remove_model_files" => Some((
            "simple rollback (version revert): 15-30 minutes",
            30.0 * 60.0,
        )),
        "revert_code" | "restore_config" | "version_control" | "create_backup" => {
            Some(("complex rollback (code revert): 1-2 hours", 2.0 * 3600.0))
        }
        "rollback_checklist" => Some(("full system rollback: 2-4 hours", 4.0 * 3600.0)),
        _ => None,
    }
}

fn ms(v: &Value) -> String {
    match v.as_f64() {
        Some(m) if m < 1000.0 => format!("{m:.1} ms"),
        Some(m) => format!("{:.2} s", m / 1000.0),
        None => "—".into(),
    }
}

/// Text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Render the report of the run logged in `log`.
pub fn render(log: &str) -> Result<String> {
    let events: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let start = events
        .iter()
        .find(|e| e["event"] == "run_start")
        .ok_or_else(|| Error::invalid("the run log", "has no `run_start` event"))?;
    let end = events.iter().rev().find(|e| e["event"] == "run_end");
    let name = start["name"].as_str().unwrap_or("?");
    let dry = start["dry_run"] == true;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Run report: {name} {}{}\n",
        start["version"].as_str().unwrap_or(""),
        if dry { " (dry run)" } else { "" }
    );
    let status = end
        .map(|e| e["status"].as_str().unwrap_or("?"))
        .unwrap_or("did not finish");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(
        md,
        "| runbook | `{}` |",
        start["runbook"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        md,
        "| version | {} |",
        start["version"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        md,
        "| sha256 | `{}` |",
        start["sha256"].as_str().unwrap_or("")
    );
    let _ = writeln!(md, "| run | `{}` |", start["run_id"].as_str().unwrap_or(""));
    let _ = writeln!(
        md,
        "| workspace | `{}` |",
        start["workspace"].as_str().unwrap_or("")
    );
    let _ = writeln!(md, "| started | {} |", start["ts"].as_str().unwrap_or(""));
    let _ = writeln!(md, "| status | **{status}** |");
    if let Some(err) = end.and_then(|e| e["error"].as_str()) {
        let _ = writeln!(md, "| error | {} |", cell(err));
    }

    let _ = writeln!(md, "\n## Parameters\n");
    match start["params"].as_object() {
        Some(p) if !p.is_empty() => {
            let _ = writeln!(md, "| parameter | value |\n|---|---|");
            for (k, v) in p {
                let _ = writeln!(md, "| `{k}` | `{}` |", cell(&v.to_string()));
            }
        }
        _ => md.push_str("none\n"),
    }

    let _ = writeln!(
        md,
        "\n## Steps\n\n| step | name | status | duration |\n|---|---|---|---|"
    );
    for e in events.iter().filter(|e| e["event"] == "step_end") {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            e["step"].as_str().unwrap_or(""),
            cell(e["name"].as_str().unwrap_or("")),
            e["status"].as_str().unwrap_or(""),
            ms(&e["duration_ms"])
        );
    }

    let actions: Vec<&Value> = events.iter().filter(|e| e["event"] == "action").collect();
    let _ = writeln!(md, "\n## Effects\n");
    let changes: Vec<&&Value> = actions.iter().filter(|a| a["kind"] != "check").collect();
    if changes.is_empty() {
        md.push_str("none\n");
    } else {
        let _ = writeln!(md, "| step | kind | what | applied |\n|---|---|---|---|");
        for a in &changes {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                a["step"].as_str().unwrap_or(""),
                a["kind"].as_str().unwrap_or(""),
                cell(
                    a["summary"]
                        .as_str()
                        .unwrap_or(a["op"].as_str().unwrap_or(""))
                ),
                if a["applied"] == true { "yes" } else { "no" }
            );
        }
    }
    let _ = writeln!(md, "\n## Metrics and checks\n");
    let checks: Vec<&&Value> = actions.iter().filter(|a| a["kind"] == "check").collect();
    if checks.is_empty() {
        md.push_str("none\n");
    }
    for a in &checks {
        let _ = writeln!(
            md,
            "- {}",
            cell(
                a["summary"]
                    .as_str()
                    .unwrap_or(a["op"].as_str().unwrap_or(""))
            )
        );
    }

    let measured = end.and_then(|e| e["duration_ms"].as_f64());
    let _ = writeln!(md, "\n## Time\n");
    let shown = end
        .map(|e| ms(&e["duration_ms"]))
        .unwrap_or_else(|| "—".into());
    match estimate(name) {
        Some((text, limit_s)) => {
            let within = measured.is_some_and(|m| m / 1000.0 <= limit_s);
            let _ = writeln!(
                md,
                "| plan's estimate (§10) | measured |\n|---|---|\n| {text} | {shown}{} |",
                if within { " (within the estimate)" } else { "" }
            );
        }
        None => {
            let _ = writeln!(
                md,
                "measured: {shown} (the plan gives no estimate for `{name}`)"
            );
        }
    }

    // §11: what this run showed. A criterion the run did not check says so.
    let ok = status == "ok";
    let step_ok = |needle: &str| -> Option<bool> {
        let steps: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["event"] == "step_end"
                    && e["name"]
                        .as_str()
                        .is_some_and(|n| n.to_lowercase().contains(needle))
            })
            .collect();
        (!steps.is_empty()).then(|| steps.iter().all(|e| e["status"] == "ok"))
    };
    let gates: Vec<&&Value> = actions
        .iter()
        .filter(|a| a["op"] == "validate.gate")
        .collect();
    let notified: Vec<&&Value> = actions
        .iter()
        .filter(|a| a["op"] == "notify.send")
        .collect();
    let notify_ok = notified.iter().all(|a| {
        a["result"]
            .as_array()
            .is_some_and(|r| r.iter().all(|d| d["error"].is_null()))
    });
    let mark = |held: Option<bool>| match held {
        Some(true) => "held",
        Some(false) => "**did not hold**",
        None => "not checked by this run",
    };
    let criteria = [
        (
            "System returns to stable operating state",
            step_ok("stability").map(|s| s && ok).or(Some(ok)),
        ),
        (
            "Previous model version performs within acceptable parameters",
            (!gates.is_empty()).then(|| gates.iter().all(|g| g["result"]["passed"] == true)),
        ),
        (
            "No data loss or corruption occurs (removed and overwritten files are in the trash)",
            Some(end.is_some()),
        ),
        (
            "All integrations function correctly",
            step_ok("integration"),
        ),
        (
            "Stakeholders are notified of successful rollback",
            (!notified.is_empty()).then_some(notify_ok && ok && !dry),
        ),
    ];
    let _ = writeln!(
        md,
        "\n## Success criteria (§11)\n\n| criterion | |\n|---|---|"
    );
    for (what, held) in criteria {
        let _ = writeln!(md, "| {what} | {} |", mark(held));
    }
    Ok(md)
}

/// Write the report of the run logged at `log_path` to `out` (outside `workspace`).
pub fn write(out: &Path, workspace: &Path, log_path: &Path) -> Result<()> {
    let log = std::fs::read_to_string(log_path)
        .map_err(|e| Error::io(log_path.display().to_string(), "read", e))?;
    let md = render(&log)?;
    crate::effects::write_output(out, workspace, md.as_bytes())
}

/// Refuse, before the run starts, a report path inside the workspace (where only runbooks
/// change files) or in a directory that does not exist.
pub fn check_target(out: &Path, workspace: &Path) -> Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&parent).map_err(|e| {
        Error::Usage(format!(
            "--report `{}`: cannot use the directory `{}`: {e}",
            out.display(),
            parent.display()
        ))
    })?;
    let ws = std::fs::canonicalize(workspace).unwrap_or_else(|_| workspace.to_path_buf());
    if dir.starts_with(&ws) {
        return Err(Error::Usage(format!(
            "--report `{}` is inside the workspace; write it somewhere else (the workspace changes only through runbooks)",
            out.display()
        )));
    }
    Ok(())
}
