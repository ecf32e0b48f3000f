//! The review workflow (issue 10): `runbook plan` saves what a dry run would do and what it
//! read; `runbook apply` runs exactly that or refuses, naming what changed; the Markdown
//! plan is pinned; `--format json` outputs parse and carry their documented fields;
//! confirmation, colour and progress behave with and without a terminal.

use crate::support::Ws;
use serde_json::Value;

/// A demo workspace whose registry times are fixed, so a plan of it is the same any day
/// (`runbook demo` dates the versions relative to now).
fn pinned_demo() -> Ws {
    let ws = Ws::demo();
    let text = ws.read("models/registry.json");
    let re = regex::Regex::new(r#""(created_at|promoted_at)": "[^"]*""#).unwrap();
    let mut n = 0;
    let fixed = re.replace_all(&text, |c: &regex::Captures| {
        n += 1;
        format!("\"{}\": \"2026-11-{:02}T10:00:00Z\"", &c[1], n.min(28))
    });
    ws.write("models/registry.json", &fixed);
    ws
}

/// Where plans are saved: outside the workspace, as `runbook plan -o` requires.
fn outside() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rb-plan-")
        .tempdir()
        .unwrap()
}

fn plan(ws: &Ws, runbook: &str, out: &std::path::Path) -> crate::support::Done {
    ws.runbook(&["plan", runbook, "-o"]).arg(out).run()
}

/// The plan file without its own `created_at` line (registry entries have theirs, deeper).
fn without_created_at(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("  \"created_at\""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn plan_then_apply_performs_exactly_the_planned_effects() {
    let ws = pinned_demo();
    let dir = outside();
    let file = dir.path().join("plan.json");
    plan(&ws, "runbooks/full_rollback.rhai", &file)
        .success()
        .stdout_has("5 effect(s) planned");
    // The dry run changed nothing: v5 is still production.
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v5"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let planned: Vec<(String, String)> = doc["effects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["op"].as_str().unwrap().to_string(),
                e["summary"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        planned
            .iter()
            .map(|(op, _)| op.as_str())
            .collect::<Vec<_>>(),
        [
            "fs.backup",
            "registry.set_production",
            "registry.remove",
            "fs.remove",
            "fs.remove"
        ]
    );

    ws.runbook(&["apply", "--yes"]).arg(&file).run().success();
    let log = ws.last_log();
    let run_id = log[0]["run_id"].as_str().unwrap().to_string();
    let start = &log[0];
    assert_eq!(start["dry_run"], false);
    let stamp = {
        let backups: Vec<String> = std::fs::read_dir(ws.join("backups"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(backups.len(), 1, "{backups:?}");
        backups[0]
            .trim_start_matches("registry_")
            .trim_end_matches(".json")
            .to_string()
    };
    // The real run's effects are the planned ones, in order, with its own id and time put
    // where the plan had placeholders.
    let done: Vec<(String, String)> = log
        .iter()
        .filter(|e| e["event"] == "action" && e["applied"] == true)
        .map(|e| {
            (
                e["op"].as_str().unwrap().to_string(),
                e["summary"]
                    .as_str()
                    .unwrap()
                    .replace(&run_id, "<run-id>")
                    .replace(&stamp, "<timestamp>"),
            )
        })
        .collect();
    assert_eq!(done, planned);
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v4"));
    assert!(!ws.exists("models/sl_model_v5.json"));

    // Applying it again is refused: the registry it read is not the registry now.
    let before = ws.snapshot();
    ws.runbook(&["apply", "--yes"])
        .arg(&file)
        .run()
        .code(1)
        .stderr_has("registry entry `sl_forecaster` `v5` is gone");
    before.assert_same(&ws.snapshot());
}

#[test]
fn a_registry_change_after_the_plan_is_refused_naming_it() {
    let ws = pinned_demo();
    let dir = outside();
    let file = dir.path().join("plan.json");
    plan(&ws, "runbooks/full_rollback.rhai", &file).success();
    let text = ws.read("models/registry.json");
    ws.write(
        "models/registry.json",
        &text.replacen("\"val_mse\": 0.0004", "\"val_mse\": 0.0005", 1),
    );
    assert_ne!(
        text,
        ws.read("models/registry.json"),
        "the edit must change v4"
    );
    let before = ws.snapshot();
    let runs_before = std::fs::read_dir(ws.join(".runbook/runs")).unwrap().count();
    let done = ws.runbook(&["apply", "--yes"]).arg(&file).run().code(1);
    assert!(
        done.stderr.contains("`models/registry.json` changed")
            && done
                .stderr
                .contains("registry entry `sl_forecaster` `v4` changed")
            && done.stderr.contains("nothing was changed"),
        "{}",
        done.stderr
    );
    // Only v4 was edited: no other entry is named.
    assert!(!done.stderr.contains("`v3` changed"), "{}", done.stderr);
    before.assert_same(&ws.snapshot());
    // Refused before the run started: no run log either.
    assert_eq!(
        std::fs::read_dir(ws.join(".runbook/runs")).unwrap().count(),
        runs_before
    );
}

#[test]
fn a_change_to_any_file_the_plan_read_is_refused_naming_it() {
    let ws = pinned_demo();
    let dir = outside();
    let file = dir.path().join("plan.json");
    plan(&ws, "runbooks/full_rollback.rhai", &file).success();
    // The MSE threshold comes from the training config; the validation data is scored.
    ws.write(
        "configs/sl/training_configs.yaml",
        &(ws.read("configs/sl/training_configs.yaml") + "\n# edited\n"),
    );
    ws.write(
        "models/sl_model_v5_extra.bin",
        "new file the remove step would glob",
    );
    let before = ws.snapshot();
    let done = ws.runbook(&["apply", "--yes"]).arg(&file).run().code(1);
    assert!(
        done.stderr
            .contains("`configs/sl/training_configs.yaml` changed: it was sha256")
            && done.stderr.contains(
                "matches of `models/sl_model_v5_*` changed; new: `models/sl_model_v5_extra.bin`"
            ),
        "{}",
        done.stderr
    );
    assert!(
        !done.stderr.contains("`data/validation.csv`"),
        "{}",
        done.stderr
    );
    before.assert_same(&ws.snapshot());

    // A file appearing where the plan saw none is a change too (the pid file of training).
    let ws = pinned_demo();
    plan(&ws, "runbooks/full_rollback.rhai", &file).success();
    ws.write("run/sl_model_training.pid", "999999\n");
    ws.runbook(&["apply", "--yes"])
        .arg(&file)
        .run()
        .code(1)
        .stderr_has("`run/sl_model_training.pid` changed: it was absent, now it is sha256");
}

#[test]
fn a_runbook_edited_after_the_plan_is_refused() {
    let ws = pinned_demo();
    let dir = outside();
    let file = dir.path().join("plan.json");
    plan(&ws, "runbooks/full_rollback.rhai", &file).success();
    let rb = ws.read("runbooks/full_rollback.rhai");
    ws.write("runbooks/full_rollback.rhai", &(rb + "\n// a late edit\n"));
    let before = ws.snapshot();
    ws.runbook(&["apply", "--yes"])
        .arg(&file)
        .run()
        .code(1)
        .stderr_has("full_rollback.rhai` changed since the plan was made (sha256")
        .stderr_has("nothing was changed");
    before.assert_same(&ws.snapshot());
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v5"));
}

#[test]
fn an_effect_that_differs_from_the_plan_stops_the_run_before_it() {
    let ws = Ws::empty();
    ws.write(
        "rb/branch.rhai",
        "//! name: branch\n//! version: 1.0.0\n//! description: does one thing when planned, another when applied\n\
         step \"write\" {\n    fs::write(\"first.txt\", \"1\");\n    if DRY_RUN { fs::write(\"planned.txt\", \"p\"); } else { fs::write(\"other.txt\", \"o\"); }\n    fs::write(\"last.txt\", \"l\");\n}\n",
    );
    let rb = ws.join("rb/branch.rhai");
    let dir = outside();
    let file = dir.path().join("plan.json");
    let work = Ws::empty();
    work.runbook(&["plan"])
        .arg(&rb)
        .arg("-o")
        .arg(&file)
        .run()
        .success()
        .stdout_has("write `planned.txt`");
    // A script may not catch the refusal and go on.
    let done = work.runbook(&["apply", "--yes"]).arg(&file).run().code(1);
    assert!(
        done.stderr.contains("effect 2 differs from the plan")
            && done.stderr.contains(r#"planned: {"write":"planned.txt""#)
            && done.stderr.contains(r#"now:     {"write":"other.txt""#),
        "{}",
        done.stderr
    );
    // The first effect was planned and done; the differing one and everything after it not.
    assert!(work.exists("first.txt"));
    assert!(!work.exists("other.txt"));
    assert!(!work.exists("planned.txt"));
    assert!(!work.exists("last.txt"));
}

#[test]
fn two_plans_of_the_same_state_are_byte_identical_but_for_created_at() {
    let ws = pinned_demo();
    let dir = outside();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    plan(&ws, "runbooks/full_rollback.rhai", &a).success();
    // A second apart at least, so the run's clock (backup names) differs between the two.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    plan(&ws, "runbooks/full_rollback.rhai", &b).success();
    let (ta, tb) = (
        std::fs::read_to_string(&a).unwrap(),
        std::fs::read_to_string(&b).unwrap(),
    );
    assert_ne!(ta, tb, "created_at differs");
    assert_eq!(without_created_at(&ta), without_created_at(&tb));
    assert_eq!(
        ta.lines()
            .filter(|l| l.starts_with("  \"created_at\""))
            .count(),
        1,
        "one created_at"
    );
    for bad in ["duration_ms", "/trash/2026", "\"run_id\""] {
        assert!(!ta.contains(bad), "the plan holds {bad}");
    }
    let md = |ws: &Ws| {
        ws.runbook(&[
            "plan",
            "runbooks/full_rollback.rhai",
            "--format",
            "markdown",
        ])
        .run()
        .success()
        .stdout
    };
    let first = md(&ws);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(first, md(&ws));
}

#[test]
fn the_markdown_plan_of_the_full_rollback_is_pinned() {
    let ws = pinned_demo();
    let md = ws
        .runbook(&[
            "plan",
            "runbooks/full_rollback.rhai",
            "--format",
            "markdown",
        ])
        .run()
        .success()
        .stdout;
    insta::assert_snapshot!("full_rollback_plan_markdown", md);
}

#[test]
fn a_changed_config_is_shown_as_a_unified_diff() {
    let ws = pinned_demo();
    ws.write(
        "configs/sl/training_configs.yaml.backup",
        &ws.read("configs/sl/training_configs.yaml")
            .replace("learning_rate: 0.3", "learning_rate: 0.05"),
    );
    let md = ws
        .runbook(&[
            "plan",
            "runbooks/restore_config.rhai",
            "--format",
            "markdown",
        ])
        .run()
        .success()
        .stdout;
    assert!(md.contains("```diff"), "{md}");
    // The training config goes back to the backup's content: one line changes.
    assert!(
        md.contains(
            "  --- a/configs/sl/training_configs.yaml\n  +++ b/configs/sl/training_configs.yaml\n"
        ) && md.contains("\n  -  learning_rate: 0.3\n  +  learning_rate: 0.05\n"),
        "{md}"
    );
}

#[test]
fn apply_without_a_terminal_needs_yes() {
    let ws = pinned_demo();
    let dir = outside();
    let file = dir.path().join("plan.json");
    plan(&ws, "runbooks/full_rollback.rhai", &file).success();
    let before = ws.snapshot();
    ws.runbook(&["apply"])
        .arg(&file)
        .run()
        .code(2)
        .stderr_has("there is no terminal to ask on")
        .stderr_has("`--yes`");
    before.assert_same(&ws.snapshot());
}

#[test]
fn a_plan_file_inside_the_workspace_is_refused() {
    let ws = pinned_demo();
    ws.runbook(&["plan", "runbooks/full_rollback.rhai", "-o", "plan.json"])
        .run()
        .code(2)
        .stderr_has("is inside the workspace");
    assert!(!ws.exists("plan.json"));
}
