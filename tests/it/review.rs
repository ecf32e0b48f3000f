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
        .stdout_has("4 effect(s) planned");
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
        // The step's two registry changes are one effect (one write), named by its first.
        [
            "fs.backup",
            "registry.set_production",
            "fs.remove",
            "fs.remove"
        ]
    );
    // Every action the plan shows, the merged effect's second one included.
    let planned: Vec<(String, String)> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["items"].as_array().unwrap().iter())
        .filter(|i| i["type"] == "effect")
        .map(|i| {
            (
                i["op"].as_str().unwrap().to_string(),
                i["summary"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(planned.len(), 5, "{planned:?}");

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

// ----- --format json ----------------------------------------------------------------------

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{text}"))
}

/// Every key in `keys` is present in `doc` (null allowed where a field has no value).
fn has_fields(doc: &Value, keys: &[&str]) {
    for k in keys {
        assert!(doc.get(*k).is_some(), "no `{k}` in {doc:#}");
    }
}

#[test]
fn run_format_json_is_one_document_with_the_documented_fields() {
    let ws = pinned_demo();
    let out = ws
        .runbook(&["run", "runbooks/full_rollback.rhai", "--format", "json"])
        .run()
        .success();
    let doc = parse(&out.stdout);
    has_fields(
        &doc,
        &[
            "run_id",
            "status",
            "dry_run",
            "runbook",
            "params",
            "workspace",
            "duration_ms",
            "changes",
            "log",
            "error",
            "exit_code",
            "steps",
            "effects",
            "checks",
            "metrics",
            "messages",
        ],
    );
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["dry_run"], false);
    assert_eq!(doc["changes"], 5);
    assert_eq!(doc["runbook"]["name"], "full_rollback");
    assert_eq!(doc["steps"].as_array().unwrap().len(), 5);
    assert_eq!(doc["effects"].as_array().unwrap().len(), 5);
    assert!(doc["effects"][0]["applied"] == true && doc["effects"][0]["summary"].is_string());
    let mse = &doc["metrics"][0]["values"]["mse"];
    assert!(mse.as_f64().is_some_and(|m| m > 0.0 && m < 0.1), "{doc:#}");
    assert!(std::path::Path::new(doc["log"].as_str().unwrap()).exists());

    // A failed run is a document too, with its error and exit code.
    let out = ws
        .runbook(&[
            "run",
            "runbooks/full_rollback.rhai",
            "--format",
            "json",
            "-p",
            "model=nope",
        ])
        .run()
        .code(1);
    let doc = parse(&out.stdout);
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["exit_code"], 1);
    assert!(doc["error"].as_str().unwrap().contains("nope"), "{doc:#}");
    // One that never started (an unknown parameter) still answers in JSON.
    let out = ws
        .runbook(&[
            "run",
            "runbooks/full_rollback.rhai",
            "--format",
            "json",
            "-p",
            "bogus=1",
        ])
        .run()
        .code(2);
    let doc = parse(&out.stdout);
    assert_eq!(doc["status"], "error");
    assert_eq!(doc["exit_code"], 2);
    assert!(doc["run_id"].is_null());
}

#[test]
fn plan_check_list_log_and_docs_format_json_parse_with_their_fields() {
    let ws = pinned_demo();
    let plan = parse(
        &ws.runbook(&["plan", "runbooks/full_rollback.rhai", "--format", "json"])
            .run()
            .success()
            .stdout,
    );
    has_fields(
        &plan,
        &[
            "plan_format",
            "created_at",
            "runbook",
            "params",
            "param_args",
            "placeholders",
            "summary",
            "steps",
            "effects",
            "fingerprint",
        ],
    );
    has_fields(
        &plan["runbook"],
        &["path", "given", "name", "version", "sha256"],
    );
    has_fields(
        &plan["fingerprint"],
        &["files", "walks", "globs", "git", "registry"],
    );
    assert_eq!(plan["summary"]["registry"], 1);
    assert_eq!(plan["summary"]["file_removed"], 2);

    let check = parse(
        &ws.runbook(&["check", "runbooks/full_rollback.rhai", "--format", "json"])
            .run()
            .success()
            .stdout,
    );
    assert_eq!(check["ok"], true);
    has_fields(
        &check["files"][0],
        &["file", "ok", "header", "steps", "error"],
    );
    assert_eq!(check["files"][0]["header"]["name"], "full_rollback");
    ws.write(
        "bad.rhai",
        "//! name: bad\n//! version: 1.0.0\n//! description: d\nlet x = ;\n",
    );
    let bad = ws
        .runbook(&["check", "bad.rhai", "--format", "json"])
        .run()
        .code(2);
    let bad = parse(&bad.stdout);
    assert_eq!(bad["ok"], false);
    assert!(bad["files"][0]["error"]
        .as_str()
        .unwrap()
        .contains("does not compile"));

    let list = parse(
        &ws.runbook(&["list", "--format", "json"])
            .run()
            .success()
            .stdout,
    );
    let names: Vec<&str> = list["runbooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["header"]["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"full_rollback"), "{names:?}");
    let fr = list["runbooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["header"]["name"] == "full_rollback")
        .unwrap();
    has_fields(&fr["header"], &["name", "version", "description", "params"]);
    has_fields(
        &fr["header"]["params"][0],
        &["name", "type", "default", "required", "description"],
    );

    ws.runbook(&["run", "runbooks/full_rollback.rhai", "-q"])
        .run()
        .success();
    let log = parse(
        &ws.runbook(&["log", "--format", "json"])
            .run()
            .success()
            .stdout,
    );
    let runs = log["runs"].as_array().unwrap();
    // The plan's dry run and the real run, newest first.
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["mode"], "real");
    assert_eq!(runs[1]["mode"], "dry");
    has_fields(
        &runs[0],
        &[
            "run_id",
            "runbook",
            "name",
            "version",
            "mode",
            "status",
            "unfinished",
            "started",
            "duration_ms",
            "changes",
        ],
    );
    assert_eq!(runs[0]["changes"], 5);
    let last = parse(
        &ws.runbook(&["log", "--last", "--format", "json"])
            .run()
            .success()
            .stdout,
    );
    assert_eq!(last["run_id"], runs[0]["run_id"]);
    assert_eq!(last["effects"].as_array().unwrap().len(), 5);
    has_fields(
        &last,
        &["steps", "effects", "checks", "metrics", "messages", "log"],
    );

    let docs = parse(
        &ws.runbook(&["docs", "--format", "json"])
            .run()
            .success()
            .stdout,
    );
    let families: Vec<&str> = docs["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for f in ["registry", "fs", "process", "git", "config", "validate"] {
        assert!(families.contains(&f), "{families:?}");
    }
    let registry = docs["families"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "registry")
        .unwrap();
    let set = registry["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "set_production")
        .unwrap();
    assert!(set["doc"].as_str().unwrap().contains("```rhai"), "{set:#}");
    assert!(!docs["globals"].as_array().unwrap().is_empty());
}

// ----- runbook log ------------------------------------------------------------------------

#[test]
fn log_lists_runs_newest_first_and_marks_one_that_did_not_finish() {
    let ws = pinned_demo();
    ws.runbook(&["run", "runbooks/full_rollback.rhai", "--dry-run", "-q"])
        .run()
        .success();
    ws.runbook(&["run", "runbooks/full_rollback.rhai", "-q"])
        .run()
        .success();
    // A real run killed in the middle (the crash hook kills it at the 5th point).
    ws.runbook(&["run", "runbooks/full_rollback.rhai", "-q"])
        .env("RUNBOOK_CRASH_AT", "5")
        .run();
    let out = ws.runbook(&["log"]).run().success().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("DID NOT FINISH"), "{out}");
    assert!(
        lines[1].contains("  real  ok  ") && lines[1].contains("5 change(s)"),
        "{out}"
    );
    assert!(
        lines[2].contains("  dry  ok  ") && lines[2].contains("0 change(s)"),
        "{out}"
    );
    assert!(out.contains("`runbook resume"), "{out}");
    let killed = lines[0].split_whitespace().next().unwrap();
    ws.runbook(&["log", "--last"])
        .run()
        .success()
        .stdout_has(&format!("run {killed}"));
    let one = ws.runbook(&["log", killed]).run().success().stdout;
    assert!(one.contains("DID NOT FINISH"), "{one}");
    // One run: its steps in order, each with its actions under it and its status.
    let real = lines[1].split_whitespace().next().unwrap();
    let one = ws.runbook(&["log", real]).run().success().stdout;
    assert!(
        one.contains("  [4] Make v4 production and remove v5\n      done: make `sl_forecaster` `v4` production (`v5` becomes archived)\n      done: remove `sl_forecaster` `v5` from the registry\n")
            && one.contains("      check gate: mse 0.006445"),
        "{one}"
    );
}

// ----- confirmation, colour and progress ----------------------------------------------------

/// Run `args` of the binary on a terminal (util-linux `script` gives it a pty), typing
/// `input`; returns the exit code and what the terminal showed.
fn on_terminal(ws: &Ws, args: &str, input: &str, env: &[(&str, &str)]) -> (i32, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qec",
        &format!("{} {args}", crate::support::BIN),
        "/dev/null",
    ])
    .current_dir(ws.path())
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    // The test's own environment must not decide: no NO_COLOR unless given, a real TERM.
    cmd.env_remove("NO_COLOR").env("TERM", "xterm");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .expect("util-linux `script` runs the binary on a terminal (apt-get install bsdutils)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn with_confirm_header(ws: &Ws) {
    let rb = ws.read("runbooks/full_rollback.rhai");
    ws.write(
        "runbooks/full_rollback.rhai",
        &rb.replacen(
            "//! version: 1.6.0\n",
            "//! version: 1.6.0\n//! confirm: true\n",
            1,
        ),
    );
}

#[test]
fn a_runbook_that_asks_for_confirmation_needs_yes_without_a_terminal() {
    let ws = pinned_demo();
    with_confirm_header(&ws);
    let before = ws.snapshot();
    ws.runbook(&["run", "runbooks/full_rollback.rhai"])
        .run()
        .code(2)
        .stderr_has("asks for confirmation (`confirm: true` in its header) and there is no terminal to ask on; pass `--yes`");
    before.assert_same(&ws.snapshot());
    assert!(
        !ws.exists(".runbook/runs"),
        "refused before any run started"
    );
    // --confirm makes any runbook ask; a dry run never asks.
    let plain = pinned_demo();
    plain
        .runbook(&["run", "runbooks/full_rollback.rhai", "--confirm"])
        .run()
        .code(2)
        .stderr_has("`--confirm` asks for confirmation");
    plain
        .runbook(&[
            "run",
            "runbooks/full_rollback.rhai",
            "--confirm",
            "--dry-run",
            "-q",
        ])
        .run()
        .success();
    // Without the flags a run never prompts: the shipped runbook runs unattended.
    plain
        .runbook(&["run", "runbooks/full_rollback.rhai", "-q"])
        .run()
        .success();
    assert_eq!(plain.production("sl_forecaster").as_deref(), Some("v4"));
    // --yes runs it.
    ws.runbook(&["run", "runbooks/full_rollback.rhai", "--yes", "-q"])
        .run()
        .success();
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v4"));
}

#[test]
fn on_a_terminal_the_plan_is_shown_and_the_answer_decides() {
    let ws = pinned_demo();
    with_confirm_header(&ws);
    let before = ws.snapshot();
    let (code, screen) = on_terminal(&ws, "run runbooks/full_rollback.rhai", "n\n", &[]);
    assert_eq!(code, 2, "{screen}");
    assert!(
        screen.contains("2. make `sl_forecaster` `v4` production")
            && screen.contains("run it for real? [y/N]")
            && screen.contains("not confirmed; nothing was changed"),
        "{screen}"
    );
    before.assert_same(&ws.snapshot());
    let (code, screen) = on_terminal(&ws, "run runbooks/full_rollback.rhai", "y\n", &[]);
    assert_eq!(code, 0, "{screen}");
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v4"));
}

#[test]
fn step_asks_before_each_top_level_step() {
    let ws = pinned_demo();
    // Run the first three steps, skip the fourth (the rollback itself), abort before the
    // fifth.
    let (code, screen) = on_terminal(
        &ws,
        "run runbooks/full_rollback.rhai --step",
        "y\ny\ny\ns\na\n",
        &[],
    );
    assert_eq!(code, 1, "{screen}");
    assert!(
        screen.contains("next step: Make v4 production and remove v5"),
        "{screen}"
    );
    assert!(
        screen.contains("stopped before step `Verify the rollback` (answered abort)"),
        "{screen}"
    );
    // Skipped: v5 is still production, registered, and its file is there; the backup the
    // third step made is.
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v5"));
    assert!(ws.exists("backups"));
    assert!(ws.versions("sl_forecaster").contains(&"v5".to_string()));
    assert!(ws.exists("models/sl_model_v5.json"));
    // Without a terminal --step is refused before anything runs.
    let other = pinned_demo();
    other
        .runbook(&["run", "runbooks/full_rollback.rhai", "--step"])
        .run()
        .code(2)
        .stderr_has("`--step` asks before each step and there is no terminal");
    assert_eq!(other.production("sl_forecaster").as_deref(), Some("v5"));
}

#[test]
fn colour_on_a_terminal_off_with_no_color_and_when_piped() {
    let ws = pinned_demo();
    let args = "run runbooks/full_rollback.rhai --dry-run";
    let (code, screen) = on_terminal(&ws, args, "", &[]);
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("\x1b[32mok\x1b[0m"),
        "no colour on a terminal:\n{screen}"
    );
    let (code, screen) = on_terminal(&ws, args, "", &[("NO_COLOR", "1")]);
    assert_eq!(code, 0, "{screen}");
    assert!(!screen.contains("\x1b["), "colour with NO_COLOR:\n{screen}");
    let (_, screen) = on_terminal(&ws, &format!("{args} --color never"), "", &[]);
    assert!(
        !screen.contains("\x1b["),
        "colour with --color never:\n{screen}"
    );
    // Piped: plain lines, nothing on stderr (no progress line).
    let out = ws
        .runbook(&["run", "runbooks/full_rollback.rhai", "--dry-run"])
        .run()
        .success();
    assert!(
        !out.stdout.contains('\x1b') && out.stderr.is_empty(),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("[1] ok Identify"), "{}", out.stdout);
    let quiet = ws
        .runbook(&["run", "runbooks/full_rollback.rhai", "--dry-run", "-q"])
        .run()
        .success();
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty());
}

#[test]
fn a_slow_step_shows_a_progress_line_on_a_terminal_only() {
    let ws = Ws::empty();
    ws.write(
        "slow.rhai",
        "//! name: slow\n//! version: 1.0.0\n//! description: one slow step\nstep \"count\" { let x = 0; for i in 0..1500000 { x += i; } print(`sum ${x}`); }\n",
    );
    let (code, screen) = on_terminal(&ws, "run slow.rhai --dry-run", "", &[]);
    assert_eq!(code, 0, "{screen}");
    // The live line names the step with its elapsed time, then is cleared.
    assert!(
        screen.contains("[1] count (") && screen.contains("\x1b[2K"),
        "{screen}"
    );
    let piped = ws
        .runbook(&["run", "slow.rhai", "--dry-run"])
        .run()
        .success();
    assert!(!piped.stdout.contains("[1] count (") && piped.stderr.is_empty());
    assert!(piped.stdout.contains("[1] ok count ("), "{}", piped.stdout);
}

// ----- view, completions, man -------------------------------------------------------------

#[test]
fn view_shows_the_procedure_without_running_it() {
    let ws = pinned_demo();
    let before = ws.snapshot();
    let out = ws
        .runbook(&["view", "runbooks/full_rollback.rhai"])
        .run()
        .success()
        .stdout;
    assert!(out.starts_with("full_rollback 1.6.0\n"), "{out}");
    assert!(out.contains("  pidfile (string, default run/sl_model_training.pid): pid file the training job writes\n"), "{out}");
    assert!(
        out.contains(
            "  4. Make ${good} production and remove ${bad}\n     # One registry write does both"
        ) && out.contains("     - registry::set_production(model, good, \"archived\")\n     - registry::remove(model, bad)\n"),
        "{out}"
    );
    let md = ws
        .runbook(&[
            "view",
            "runbooks/full_rollback.rhai",
            "--format",
            "markdown",
        ])
        .run()
        .success()
        .stdout;
    assert!(
        md.contains("**2. Stop the training job**\n\n- `process::stop(params.pidfile)`"),
        "{md}"
    );
    assert!(!ws.exists(".runbook"), "view runs nothing, not even a log");
    before.assert_same(&ws.snapshot());
}

#[test]
fn completions_and_man_page_are_generated() {
    let ws = Ws::empty();
    let bash = ws.runbook(&["completions", "bash"]).run().success().stdout;
    assert!(
        bash.contains("_runbook()") && bash.contains("apply"),
        "{bash}"
    );
    let zsh = ws.runbook(&["completions", "zsh"]).run().success().stdout;
    assert!(zsh.starts_with("#compdef runbook"), "{zsh}");
    let man = ws.runbook(&["man"]).run().success().stdout;
    assert!(
        man.contains(".TH runbook 1") && man.contains("plan"),
        "{man}"
    );
}

#[test]
fn a_restored_source_file_is_shown_as_a_diff_and_the_plan_applies() {
    let ws = pinned_demo();
    let dir = outside();
    let file = dir.path().join("plan.json");
    let md = ws
        .runbook(&[
            "plan",
            "runbooks/revert_code.rhai",
            "--format",
            "markdown",
            "-o",
        ])
        .arg(&file)
        .run()
        .success()
        .stdout;
    assert!(
        md.contains("  --- a/src/sl/models/traditional.py\n  +++ b/src/sl/models/traditional.py\n")
            && md.contains("  -    return 'ridge-v2'  # new approach\n  +    return 'ridge'\n"),
        "{md}"
    );
    ws.runbook(&["apply", "--yes", "-q"])
        .arg(&file)
        .run()
        .success();
    assert!(ws
        .read("src/sl/models/traditional.py")
        .contains("return 'ridge'\n"));
    // The checkout made the work tree dirty: the same plan no longer holds.
    ws.runbook(&["apply", "--yes"])
        .arg(&file)
        .run()
        .code(1)
        .stderr_has(
            "git's uncommitted changes differ; changed since: `src/sl/models/traditional.py`",
        );
}
