//! The engine core: the full rollback, dry run, run log, errors, timeouts, sandbox, pid files.

use crate::support::{shipped, Ws};

fn full_rollback() -> String {
    shipped("full_rollback.rhai")
}

#[test]
fn full_rollback_reverts_to_previous_and_keeps_removed_files() {
    let ws = Ws::demo();
    let before = ws.read("models/registry.json");
    let out = ws.runbook(&["run", &full_rollback()]).run().success();
    assert!(out.stdout.contains("[5] ok"), "{}", out.stdout);
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v4"));
    assert_eq!(ws.versions("sl_forecaster"), ["v1", "v2", "v3", "v4"]);
    // The unrelated model is untouched.
    assert_eq!(ws.production("risk_model").as_deref(), Some("r1"));
    assert!(ws.exists("models/risk_model_r1.json"));
    // v5's files went to the trash, not away.
    assert!(!ws.exists("models/sl_model_v5.json"));
    assert!(!ws.exists("models/sl_model_v5_metadata.json"));
    let run_id = ws.last_log()[0]["run_id"].as_str().unwrap().to_string();
    assert!(ws.exists(&format!(".runbook/trash/{run_id}/models/sl_model_v5.json")));
    assert!(ws.exists(&format!(
        ".runbook/trash/{run_id}/models/sl_model_v5_metadata.json"
    )));
    // The step that promotes v4 and removes v5 writes the registry once: one registry
    // effect and one old copy in the trash (the history, checked below, still has a
    // record for each entry change).
    let log = ws.last_log();
    let registry_intents: Vec<_> = log
        .iter()
        .filter(|e| e["event"] == "intent" && e["kind"] == "registry")
        .collect();
    assert_eq!(registry_intents.len(), 1, "{registry_intents:?}");
    assert_eq!(registry_intents[0]["effect"]["op"], "set_production+remove");
    assert!(ws.exists(&format!(".runbook/trash/{run_id}/models/registry.json")));
    assert!(!ws.exists(&format!(".runbook/trash/{run_id}/models/registry.json~1")));
    // The registry backup holds the registry as it was.
    let backups: Vec<_> = std::fs::read_dir(ws.join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(backups[0].starts_with("registry_") && backups[0].ends_with(".json"));
    assert_eq!(ws.read(&format!("backups/{}", backups[0])), before);
    // Key order and unknown fields survive the rewrite.
    let reg = ws.json("models/registry.json");
    let keys: Vec<&String> = reg[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "name",
            "version",
            "model_path",
            "is_production",
            "status",
            "created_at",
            "promoted_at",
            "metrics"
        ]
    );
    // The history records each change with old and new values.
    let history: Vec<serde_json::Value> = ws
        .read("models/registry_history.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ops: Vec<(&str, &str)> = history
        .iter()
        .map(|h| (h["op"].as_str().unwrap(), h["version"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ops,
        [
            ("set_production", "v5"),
            ("set_production", "v4"),
            ("remove", "v5")
        ]
    );
    // The rollback archives the bad version in the write that promotes the good one.
    assert_eq!(history[0]["new"]["status"], "archived");
    assert_eq!(history[2]["new"], serde_json::Value::Null);
    assert!(history.iter().all(|h| h["run_id"] == run_id.as_str()));
}

#[test]
fn running_twice_on_v1_to_v5_leaves_v3_in_production() {
    let ws = Ws::generated(&["--versions", "5"]);
    // Every durability mode gives the same result (they differ only in when data is flushed).
    ws.runbook(&["run", &full_rollback(), "--sync", "each"])
        .run()
        .success();
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v4"));
    ws.runbook(&["run", &full_rollback(), "--sync", "none"])
        .run()
        .success();
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v3"));
    assert_eq!(ws.versions("sl_forecaster"), ["v1", "v2", "v3"]);
    // Every remaining entry points at a file that exists.
    for e in ws.json("models/registry.json").as_array().unwrap() {
        assert!(ws.exists(e["model_path"].as_str().unwrap()), "{e}");
    }
}

#[test]
fn version_prefixes_do_not_collide() {
    // Rolling back v1 must not touch v10..v19 (the plan's `rm sl_model_${V}*` would).
    let ws = Ws::generated(&["--versions", "12"]);
    ws.runbook(&["run", &full_rollback()]).run().success();
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v11"));
    assert!(ws.exists("models/sl_model_v1.json"));
    assert!(ws.exists("models/sl_model_v11.json"));
    assert!(!ws.exists("models/sl_model_v12.json"));
}

#[test]
fn dry_run_changes_nothing_and_prints_the_plan() {
    let ws = Ws::demo();
    let before = ws.snapshot();
    let out = ws
        .runbook(&["run", &full_rollback(), "--dry-run"])
        .run()
        .success();
    before.assert_same(&ws.snapshot());
    let out = out
        .stdout_has("plan (dry run, nothing was changed):")
        .stdout_has("registry changes:")
        .stdout_has("make `sl_forecaster` `v4` production")
        .stdout_has("files removed (moved to the trash):")
        .stdout_has("remove `models/sl_model_v5.json`")
        .stdout_has("files written:")
        .stdout_has("back up `models/registry.json`");
    // Later steps saw the simulated state: the verify step found v4 in production.
    assert!(
        out.stdout
            .contains("rollback complete: sl_forecaster production is v4"),
        "{}",
        out.stdout
    );
    let log = ws.last_log();
    assert!(log.iter().all(|e| e["dry_run"] == true));
    // Only read-only checks (the pid-file probe, validation) count as applied in a dry run.
    assert!(log
        .iter()
        .filter(|e| e["event"] == "action")
        .all(|e| e["applied"] == false
            || e["op"] == "process.stop"
            || e["op"].as_str().unwrap().starts_with("validate.")));
    // And no trash was written.
    assert!(!ws.exists(".runbook/trash"));
}

#[test]
fn run_log_has_every_event_and_field() {
    let ws = Ws::demo();
    ws.runbook(&["run", &full_rollback(), "--param", "model=sl_forecaster"])
        .run()
        .success();
    let log = ws.last_log();
    let first = &log[0];
    assert_eq!(first["event"], "run_start");
    assert_eq!(first["name"], "full_rollback");
    assert_eq!(first["version"], "1.6.0");
    assert_eq!(first["params"]["model"], "sl_forecaster");
    assert_eq!(first["runbook"], full_rollback());
    let text = std::fs::read(full_rollback()).unwrap();
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(first["sha256"], sha);
    let run_id = first["run_id"].as_str().unwrap();
    for e in &log {
        assert_eq!(e["run_id"], run_id);
        assert_eq!(e["dry_run"], false);
        assert!(
            chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap()).is_ok(),
            "{e}"
        );
    }
    let count = |ev: &str| log.iter().filter(|e| e["event"] == ev).count();
    assert_eq!(count("step_start"), 5);
    assert_eq!(count("step_end"), 5);
    assert_eq!(count("run_end"), 1);
    let actions: Vec<&serde_json::Value> = log.iter().filter(|e| e["event"] == "action").collect();
    let ops: Vec<&str> = actions.iter().map(|a| a["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        [
            "validate.evaluate",
            "validate.gate",
            "process.stop",
            "fs.backup",
            "registry.set_production",
            "registry.remove",
            "fs.remove",
            "fs.remove",
            "validate.evaluate",
            "validate.gate"
        ]
    );
    // `applied` means "changed the workspace": every effect of a real run, never a check.
    assert!(actions.iter().all(|a| a["args"].is_object()
        && a["applied"] == (a["kind"] != "check")
        && a["kind"].is_string()));
    for e in log.iter().filter(|e| e["event"] == "step_end") {
        assert_eq!(e["status"], "ok");
        assert!(e["duration_ms"].as_f64().is_some());
    }
    let end = log.last().unwrap();
    assert_eq!(end["event"], "run_end");
    assert_eq!(end["status"], "ok");
    assert!(end["duration_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn malformed_registry_fails_with_position_and_is_left_unchanged() {
    let ws = Ws::demo();
    let broken =
        "[\n  {\"name\": \"sl_forecaster\",\n    \"version\": \"v1\" \"model_path\": \"x\"}\n]\n";
    ws.write("models/registry.json", broken);
    let before = ws.snapshot();
    let out = ws.runbook(&["run", &full_rollback()]).run().code(1);
    let out = out
        .stderr_has("`models/registry.json` is not valid JSON")
        .stderr_has("line 3, column")
        // The error points into the helper that read the registry, and at the runbook line
        // that called it.
        .stderr_has("runbooks/lib/models.rhai:")
        .stderr_has("registry::check()")
        .stderr_has("= called from ");
    assert!(
        out.stderr
            .contains("step `Identify the current and previous production versions` failed"),
        "{}",
        out.stderr
    );
    assert_eq!(ws.read("models/registry.json"), broken);
    before.assert_same(&ws.snapshot());
    let end = ws.last_log().pop().unwrap();
    assert_eq!(end["status"], "failed");
    assert!(end["error"].as_str().unwrap().contains("not valid JSON"));
}

#[test]
fn no_previous_version_fails_and_changes_nothing() {
    let ws = Ws::demo();
    let reg = ws
        .read("models/registry.json")
        .replace("\"superseded\"", "\"archived\"");
    ws.write("models/registry.json", &reg);
    let before = ws.snapshot();
    ws.runbook(&["run", &full_rollback()])
        .run()
        .code(1)
        .stderr_has("no superseded version is left to roll back to");
    before.assert_same(&ws.snapshot());
    assert!(!ws.exists("backups"));
}

#[test]
fn missing_registry_names_the_file() {
    let ws = Ws::empty();
    ws.runbook(&["run", &full_rollback()])
        .run()
        .code(1)
        .stderr_has("registry `models/registry.json`: the file does not exist");
}

#[test]
fn syntax_error_exits_2_with_line_and_column_from_check_and_run() {
    let ws = Ws::empty();
    ws.write("rb/broken.rhai", "//! name: broken\n//! version: 0.1.0\n//! description: d\n\nstep \"one\" {\n    let x = ;\n}\n");
    let check = ws.runbook(&["check", "rb/broken.rhai"]).run().code(2);
    let check = check
        .stderr_has("--> rb/broken.rhai:6:13")
        .stderr_has("6 |     let x = ;");
    assert!(
        check.stderr.contains("does not compile"),
        "{}",
        check.stderr
    );
    ws.runbook(&["run", "rb/broken.rhai"])
        .run()
        .code(2)
        .stderr_has("rb/broken.rhai:6:13");
    // Nothing ran, so no run log.
    assert!(!ws.exists(".runbook/runs"));
}

#[test]
fn check_finds_unknown_primitives_bad_arity_and_header_problems() {
    let ws = Ws::empty();
    let head = "//! name: t\n//! version: 1.0.0\n//! description: d\n";
    ws.write(
        "rb/unknown.rhai",
        &format!("{head}registry::promote(\"m\", \"v1\");\n"),
    );
    ws.write(
        "rb/arity.rhai",
        &format!("{head}\nfs::exists(\"a\", \"b\");\n"),
    );
    ws.write("rb/module.rhai", &format!("{head}nope::thing();\n"));
    ws.write("rb/noversion.rhai", "//! name: t\n//! description: d\n");
    ws.write(
        "rb/good.rhai",
        &format!("{head}step \"a\" {{ fs::exists(\"x\"); }}\nstep \"b\" {{ }}\n"),
    );
    ws.runbook(&["check", "rb/unknown.rhai"])
        .run()
        .code(2)
        .stderr_has("there is no primitive `registry::promote`")
        .stderr_has("rb/unknown.rhai:4:");
    ws.runbook(&["check", "rb/arity.rhai"])
        .run()
        .code(2)
        .stderr_has("`fs::exists` takes 1 argument(s), not 2");
    ws.runbook(&["check", "rb/module.rhai"])
        .run()
        .code(2)
        .stderr_has("unknown module `nope`");
    ws.runbook(&["check", "rb/noversion.rhai"])
        .run()
        .code(2)
        .stderr_has("missing `version`");
    ws.runbook(&["check", "rb/good.rhai"])
        .run()
        .success()
        .stdout_has("ok  rb/good.rhai  (t 1.0.0, 2 step(s))");
    // The shipped runbooks all pass.
    let mut all = vec!["check".to_string()];
    for e in std::fs::read_dir(crate::support::repo().join("runbooks"))
        .unwrap()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "rhai") {
            all.push(e.path().display().to_string());
        }
    }
    let args: Vec<&str> = all.iter().map(String::as_str).collect();
    ws.runbook(&args).run().success();
}

#[test]
fn endless_loop_is_stopped_by_timeout() {
    let ws = Ws::empty();
    ws.write("rb/loop.rhai", "//! name: loop\n//! version: 1.0.0\n//! description: never ends\n\nstep \"spin\" {\n    loop { }\n}\n");
    let start = std::time::Instant::now();
    let out = ws
        .runbook(&["run", "rb/loop.rhai", "--timeout", "300ms"])
        .run()
        .code(1);
    out.stderr_has("timed out after 300 ms")
        .stderr_has("rb/loop.rhai:6:");
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
    let log = ws.last_log();
    let step_end = log.iter().find(|e| e["event"] == "step_end").unwrap();
    assert_eq!(step_end["status"], "failed");
    assert_eq!(log.last().unwrap()["status"], "failed");
}

#[test]
fn paths_outside_the_workspace_are_refused_even_inside_try() {
    let ws = Ws::empty();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("victim.txt"), "keep me").unwrap();
    std::os::unix::fs::symlink(outside.path(), ws.join("link")).unwrap();
    let head = "//! name: escape\n//! version: 1.0.0\n//! description: d\n";
    for (name, body) in [
        ("dotdot", "fs::remove(\"../victim.txt\");"),
        (
            "absolute",
            &*format!("fs::remove(\"{}/victim.txt\");", outside.path().display()),
        ),
        ("symlink", "fs::write(\"link/victim.txt\", \"gone\");"),
        (
            "caught",
            "try { fs::remove(\"link/victim.txt\"); } catch (e) { print(\"caught\"); }",
        ),
        (
            "runbook_dir",
            "fs::write(\".runbook/runs/x.jsonl\", \"forged\");",
        ),
    ] {
        ws.write(
            &format!("rb/{name}.rhai"),
            &format!("{head}step \"go\" {{ {body} }}\n"),
        );
        let out = ws
            .runbook(&["run", &format!("rb/{name}.rhai")])
            .run()
            .code(1)
            .stderr_has("refused path");
        assert!(
            !out.stdout.contains("| caught"),
            "a sandbox error was caught by the script"
        );
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("victim.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn imports_cannot_leave_the_runbooks_directory() {
    let ws = Ws::empty();
    ws.write("evil.rhai", "fn x() { 1 }");
    ws.write("rb/lib/ok.rhai", "fn answer() { 42 }");
    let head = "//! name: imp\n//! version: 1.0.0\n//! description: d\n";
    ws.write(
        "rb/bad.rhai",
        &format!("{head}import \"../evil\" as e;\nprint(e::x());\n"),
    );
    ws.write(
        "rb/good.rhai",
        &format!("{head}import \"lib/ok\" as ok;\nprint(`answer ${{ok::answer()}}`);\n"),
    );
    ws.runbook(&["run", "rb/bad.rhai"])
        .run()
        .code(1)
        .stderr_has("leaves the runbooks directory");
    ws.runbook(&["check", "rb/bad.rhai"])
        .run()
        .code(2)
        .stderr_has("leaves the runbooks directory");
    ws.runbook(&["run", "rb/good.rhai"])
        .run()
        .success()
        .stdout_has("| answer 42");
}

#[test]
fn eval_is_disabled() {
    let ws = Ws::empty();
    ws.write(
        "rb/e.rhai",
        "//! name: e\n//! version: 1.0.0\n//! description: d\neval(\"1 + 1\");\n",
    );
    ws.runbook(&["check", "rb/e.rhai"]).run().code(2);
}

#[test]
fn parameters_are_checked_against_the_header() {
    let ws = Ws::demo();
    ws.runbook(&["run", &full_rollback(), "--param", "modle=x"])
        .run()
        .code(2)
        .stderr_has("unknown parameter `modle`")
        .stderr_has("`model`");
    ws.runbook(&["run", &full_rollback(), "--param", "novalue"])
        .run()
        .code(2)
        .stderr_has("expected KEY=VALUE");
    ws.runbook(&["run", &full_rollback(), "--timeout", "soon"])
        .run()
        .code(2)
        .stderr_has("--timeout");
    let out = ws
        .runbook(&["run", &full_rollback(), "--param", "model=risk_model"])
        .run()
        .code(1);
    out.stderr_has("no superseded version is left to roll back to");
    assert!(!ws.exists(".runbook/runs") || ws.last_log()[0]["params"]["model"] == "risk_model");
}

#[test]
fn pid_file_stop_ends_a_real_child_process() {
    let ws = Ws::demo();
    // The training job, as the pid file names it: its command line says what it is.
    let mut child = std::process::Command::new("bash")
        .args(["-c", "exec -a sl_model_training sleep 300"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    ws.write("run/sl_model_training.pid", &format!("{}\n", child.id()));
    let out = ws.runbook(&["run", &full_rollback()]).run().success();
    assert!(
        out.stdout.contains(&format!("stop pid {}", child.id())),
        "{}",
        out.stdout
    );
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    // The pid file went to the trash so a recycled pid is never signalled later.
    assert!(!ws.exists("run/sl_model_training.pid"));
    let log = ws.last_log();
    let stop = log.iter().find(|e| e["op"] == "process.stop").unwrap();
    assert_eq!(stop["result"]["outcome"], "terminated");
}

#[test]
fn pid_file_stop_escalates_to_sigkill_and_dry_run_does_not_signal() {
    let ws = Ws::empty();
    // A child that ignores SIGTERM.
    let mut child = std::process::Command::new("sh")
        .args(["-c", "trap '' TERM; while true; do sleep 0.05; done"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    ws.write("job.pid", &child.id().to_string());
    let head = "//! name: stop\n//! version: 1.0.0\n//! description: d\n";
    ws.write("rb/stop.rhai", &format!("{head}step \"stop\" {{ let r = process::stop(\"job.pid\", #{{ timeout: 0.3, expect: \"while true\" }}); print(r.outcome); }}\n"));
    ws.runbook(&["run", "rb/stop.rhai", "--dry-run"])
        .run()
        .success()
        .stdout_has("| would_stop");
    assert!(
        child.try_wait().unwrap().is_none(),
        "a dry run signalled the process"
    );
    ws.runbook(&["run", "rb/stop.rhai"])
        .run()
        .success()
        .stdout_has("| killed");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    // Missing pid file: a logged no-op.
    ws.runbook(&["run", "rb/stop.rhai"])
        .run()
        .success()
        .stdout_has("| no_pidfile");
    // Garbage pid file: a clear error.
    ws.write("job.pid", "-1");
    ws.runbook(&["run", "rb/stop.rhai"])
        .run()
        .code(1)
        .stderr_has("names pid -1, which runbook will never signal");
}

#[test]
fn trash_restore_brings_removed_files_back() {
    let ws = Ws::demo();
    ws.runbook(&["run", &full_rollback()]).run().success();
    let run_id = ws.last_log()[0]["run_id"].as_str().unwrap().to_string();
    ws.runbook(&["trash", "list"])
        .run()
        .success()
        .stdout_has(&run_id)
        .stdout_has("models/sl_model_v5.json");
    ws.runbook(&["trash", "restore", &run_id, "models/sl_model_v5.json"])
        .run()
        .success();
    assert!(ws.exists("models/sl_model_v5.json"));
    // Restore never overwrites: the registry's old copy would clash with the live one.
    let before = ws.read("models/registry.json");
    ws.runbook(&["trash", "restore", &run_id, "models/registry.json"])
        .run()
        .code(2)
        .stderr_has("restore never overwrites");
    assert_eq!(ws.read("models/registry.json"), before);
    assert!(ws.exists(&format!(".runbook/trash/{run_id}/models/registry.json")));
    // A run that wrote the registry in two steps kept two versions of it: both cannot go
    // back onto one path, so a restore must name one.
    ws.write(
        "runbooks/two.rhai",
        "//! name: two\n//! version: 1.0.0\n//! description: d\n\nstep \"one\" { registry::archive(\"sl_forecaster\", \"v1\"); }\nstep \"two\" { registry::archive(\"sl_forecaster\", \"v2\"); }\n",
    );
    ws.runbook(&["run", "runbooks/two.rhai", "-q"])
        .run()
        .success();
    let two = ws.last_log()[0]["run_id"].as_str().unwrap().to_string();
    ws.runbook(&["trash", "restore", &two, "models/registry.json"])
        .run()
        .code(2)
        .stderr_has("kept 2 versions of `models/registry.json`");
    assert!(ws.exists(&format!(".runbook/trash/{two}/models/registry.json~1")));
    ws.runbook(&["trash", "purge", &run_id]).run().success();
    assert!(!ws.exists(&format!(".runbook/trash/{run_id}")));
}

#[test]
fn list_and_docs_describe_runbooks_and_primitives() {
    let ws = Ws::empty();
    let dir = crate::support::repo().join("runbooks");
    ws.runbook(&["list"])
        .arg(&dir)
        .run()
        .success()
        .stdout_has("full_rollback 1.6.0")
        .stdout_has("--param model=<string>  default sl_forecaster");
    let docs = ws.runbook(&["docs"]).run().success();
    for needle in [
        "## `registry::`",
        "## `fs::`",
        "## `process::`",
        "registry::set_production(",
        "fs::newer(",
        "```rhai",
    ] {
        assert!(docs.stdout.contains(needle), "docs lack {needle}");
    }
}

#[test]
fn steps_nest_return_values_and_failures_name_the_step() {
    let ws = Ws::empty();
    let script = "//! name: nest\n//! version: 1.0.0\n//! description: d\n\
        let v = step \"outer\" {\n    let a = step \"inner\" { 20 };\n    a + 22\n};\nprint(`v=${v}`);\n\
        step \"fails\" {\n    step \"deep\" { throw \"boom\"; }\n}\nstep \"never\" { print(\"unreachable\"); }\n";
    ws.write("rb/nest.rhai", script);
    let out = ws.runbook(&["run", "rb/nest.rhai"]).run().code(1);
    let out = out
        .stdout_has("[1.1] inner")
        .stdout_has("| v=42")
        .stdout_has("[2.1] FAILED")
        .stdout_lacks("unreachable");
    assert!(
        out.stderr.contains("step `deep` failed: boom"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("rb/nest.rhai:10:"), "{}", out.stderr);
    let log = ws.last_log();
    let ends: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| e["event"] == "step_end")
        .map(|e| (e["step"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ends,
        [
            ("1.1", "ok"),
            ("1", "ok"),
            ("2.1", "failed"),
            ("2", "failed")
        ]
    );
}

#[test]
fn demo_runs_the_full_rollback_in_a_fresh_directory() {
    let ws = Ws::empty();
    let target = ws.join("demo");
    let out = ws.runbook(&["demo"]).arg(&target).run().success();
    out.stdout_has("rollback complete: sl_forecaster production is v4")
        .stdout_has("run ok");
    ws.runbook(&["demo"])
        .arg(&target)
        .run()
        .code(2)
        .stderr_has("is not empty");
}

#[test]
fn ctrl_c_stops_the_run_between_operations_and_logs_it() {
    let ws = Ws::empty();
    ws.write(
        "rb/spin.rhai",
        "//! name: spin\n//! version: 1.0.0\n//! description: d\n\nstep \"before\" { fs::write(\"a.txt\", \"1\"); }\nstep \"spin\" {\n    loop { }\n}\nstep \"after\" { fs::write(\"b.txt\", \"2\"); }\n",
    );
    let child = std::process::Command::new(crate::support::BIN)
        .args(["run", "rb/spin.rhai"])
        .current_dir(ws.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the loop is running (the first step wrote its file), then press Ctrl-C.
    let start = std::time::Instant::now();
    while !ws.exists("a.txt") && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert!(!ws.exists("b.txt"), "the run went on after Ctrl-C");
    let log = ws.last_log();
    let spin_end = log
        .iter()
        .find(|e| e["event"] == "step_end" && e["name"] == "spin")
        .unwrap();
    assert_eq!(spin_end["status"], "interrupted");
    assert_eq!(log.last().unwrap()["status"], "interrupted");
}

#[test]
fn fs_newer_finds_what_gnu_find_finds() {
    // The plan's `find models/ -newer backup_timestamp.txt` (files only), and its `-name`
    // variant, on a tree with nested directories, a dry-run-written file and a removal.
    let ws = Ws::generated(&["--versions", "6", "--extra-files", "300"]);
    ws.write("models/sl_model_v6_extra.pkl", "new");
    ws.write("models/archive/07/deep/new.pkl", "new");
    let find = |args: &[&str]| -> Vec<String> {
        let out = std::process::Command::new("find")
            .args(["models/", "-type", "f", "-newer", "backup_timestamp.txt"])
            .args(args)
            .current_dir(ws.path())
            .output()
            .unwrap();
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.replace("models//", "models/"))
            .collect();
        v.sort();
        v
    };
    let all = find(&[]);
    let pkl = find(&["-name", "*.pkl"]);
    assert!(all.len() >= 4 && pkl.len() == 2, "{all:?} {pkl:?}");
    let head = "//! name: newer\n//! version: 1.0.0\n//! description: d\n";
    ws.write(
        "rb/newer.rhai",
        &format!("{head}for f in fs::newer(\"models\", \"backup_timestamp.txt\") {{ print(`all ${{f}}`); }}\nfor f in fs::newer(\"models\", \"backup_timestamp.txt\", \"*.pkl\") {{ print(`pkl ${{f}}`); }}\n"),
    );
    let out = ws.runbook(&["run", "rb/newer.rhai"]).run().success();
    let listed = |tag: &str| -> Vec<String> {
        out.stdout
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix(&format!("| {tag} "))
                    .map(String::from)
            })
            .collect()
    };
    assert_eq!(listed("all"), all);
    assert_eq!(listed("pkl"), pkl);
    // In a dry run, files written and removed earlier in the run count as they would.
    ws.write(
        "rb/newer_dry.rhai",
        &format!("{head}fs::write(\"models/fresh.pkl\", \"x\");\nfs::remove(\"models/archive/07/deep/new.pkl\");\nfor f in fs::newer(\"models\", \"backup_timestamp.txt\", \"*.pkl\") {{ print(`pkl ${{f}}`); }}\n"),
    );
    let out = ws
        .runbook(&["run", "rb/newer_dry.rhai", "--dry-run"])
        .run()
        .success();
    let dry: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("| pkl "))
        .collect();
    assert_eq!(dry, ["models/fresh.pkl", "models/sl_model_v6_extra.pkl"]);
}

#[test]
fn a_second_real_run_is_refused_while_one_is_changing_the_workspace() {
    let ws = Ws::demo();
    let head = "//! name: slow\n//! version: 1.0.0\n//! description: d\n";
    ws.write("rb/slow.rhai", &format!("{head}step \"started\" {{ fs::write(\"started.txt\", \"1\"); }}\nstep \"hold\" {{ loop {{ }} }}\n"));
    let mut first = std::process::Command::new(crate::support::BIN)
        .args(["run", "rb/slow.rhai", "--timeout", "60s", "-q"])
        .current_dir(ws.path())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !ws.exists("started.txt") && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = ws.read("models/registry.json");
    ws.runbook(&["run", &full_rollback()])
        .run()
        .code(1)
        .stderr_has("another run is changing it (run ")
        .stderr_has("a dry run can go ahead");
    assert_eq!(ws.read("models/registry.json"), before);
    // A dry run changes nothing, so it does not wait.
    ws.runbook(&["run", &full_rollback(), "--dry-run"])
        .run()
        .success();
    unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
    first.wait().unwrap();
    // The lock went away with the process.
    ws.runbook(&["run", &full_rollback()]).run().success();
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v4"));
}

#[test]
fn promotion_keeps_the_old_version_as_target_and_an_interrupted_rollback_cannot_repick_the_bad_one()
{
    let ws = Ws::demo();
    let head = "//! name: reg\n//! version: 1.0.0\n//! description: d\n";
    // A normal promotion: v6 goes to production, v5 stays a rollback target.
    ws.write(
        "models/sl_model_v6.json",
        &ws.read("models/sl_model_v4.json"),
    );
    ws.write(
        "rb/promote.rhai",
        &format!("{head}registry::register(#{{ name: \"sl_forecaster\", version: \"v6\", model_path: \"models/sl_model_v6.json\" }});\nregistry::set_production(\"sl_forecaster\", \"v6\");\nprint(`previous ${{registry::previous(\"sl_forecaster\").version}}`);\n"),
    );
    ws.runbook(&["run", "rb/promote.rhai"])
        .run()
        .success()
        .stdout_has("| previous v5");
    // A rollback that stopped right after promoting (v6 -> v5, v6 archived) and a rerun: the
    // rerun rolls back from v5 to v4; it never picks v6 again.
    ws.write(
        "rb/half.rhai",
        &format!("{head}registry::set_production(\"sl_forecaster\", \"v5\", \"archived\");\n"),
    );
    ws.runbook(&["run", "rb/half.rhai"]).run().success();
    ws.write(
        "rb/bad.rhai",
        &format!("{head}registry::set_production(\"sl_forecaster\", \"v4\", \"retired\");\n"),
    );
    ws.runbook(&["run", "rb/bad.rhai"])
        .run()
        .code(1)
        .stderr_has("can become `superseded` or `archived`, not `retired`");
    ws.runbook(&["run", &full_rollback()]).run().success();
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v4"));
}

#[test]
fn check_also_checks_the_modules_a_runbook_imports() {
    let ws = Ws::empty();
    let head = "//! name: t\n//! version: 1.0.0\n//! description: d\n";
    ws.write(
        "rb/lib/helpers.rhai",
        "fn ok() { fs::exists(\"a\") }\n\nfn typo() {\n    registry::productoin(\"m\")\n}\n",
    );
    ws.write(
        "rb/lib/nested.rhai",
        "import \"helpers\" as h;\nfn run_it() { h::ok() }\n",
    );
    ws.write(
        "rb/uses.rhai",
        &format!("{head}import \"lib/nested\" as n;\nstep \"a\" {{ n::run_it(); }}\n"),
    );
    let out = ws.runbook(&["check", "rb/uses.rhai"]).run().code(2);
    out.stderr_has("there is no primitive `registry::productoin`")
        .stderr_has("rb/lib/helpers.rhai:4:")
        .stderr_has("registry::productoin(\"m\")");
    ws.write("rb/lib/helpers.rhai", "fn ok() { fs::exists(\"a\") }\n");
    ws.runbook(&["check", "rb/uses.rhai"]).run().success();
    // Imports resolve relative to the importing file, at run time as in `check`.
    ws.runbook(&["run", "rb/uses.rhai"]).run().success();
}

/// Registry changes a step makes one after another are written once, at the step's end;
/// anything else that goes through the door first writes what is staged, and a change
/// outside a step is written at once. The step reads its own staged change.
#[test]
fn registry_changes_a_step_makes_in_a_row_are_written_once() {
    let ws = Ws::demo();
    ws.write(
        "runbooks/batch.rhai",
        r#"//! name: batch
//! version: 1.0.0
//! description: registry changes in a row

step "archive two" {
    registry::archive("sl_forecaster", "v1");
    registry::archive("sl_forecaster", "v2");
    assert(registry::get("sl_forecaster", "v2").status == "archived", "the step sees its change");
}
step "a read between two changes" {
    registry::archive("sl_forecaster", "v3");
    fs::write("obs/registry.json", fs::read("models/registry.json"));
    registry::remove("sl_forecaster", "v1");
}
registry::remove("sl_forecaster", "v2");
step "fails after a change" {
    registry::remove("sl_forecaster", "v3");
    throw "boom";
}
"#,
    );
    ws.runbook(&["run", "runbooks/batch.rhai", "-q"])
        .run()
        .code(1)
        .stderr_has("boom");
    let log = ws.last_log();
    // Each intent as (what, registry entries, step).
    let intents: Vec<(String, Vec<String>, serde_json::Value)> = log
        .iter()
        .filter(|e| e["event"] == "intent")
        .map(|e| {
            let effect = &e["effect"];
            let entries = effect["entries"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            let what = match effect["op"].as_str() {
                Some(op) => op.to_string(),
                None => effect.as_object().unwrap().keys().next().unwrap().clone(),
            };
            (what, entries, e["step"].clone())
        })
        .collect();
    let v = |x: &str| format!("sl_forecaster {x}");
    let what: Vec<(&str, Vec<String>)> = intents
        .iter()
        .map(|(w, e, _)| (w.as_str(), e.clone()))
        .collect();
    assert_eq!(
        what,
        [
            ("archive", vec![v("v1"), v("v2")]),
            ("archive", vec![v("v3")]),
            ("write", vec![]),
            ("remove", vec![v("v1")]),
            ("remove", vec![v("v2")]),
            ("remove", vec![v("v3")]),
        ]
    );
    // Where each was journaled: in its step, the top-level one outside any.
    let steps: Vec<&serde_json::Value> = intents.iter().map(|(_, _, s)| s).collect();
    assert_eq!(steps[0], "1");
    assert_eq!(steps[1], "2");
    assert_eq!(steps[3], "2");
    assert!(steps[4].is_null(), "{:?}", steps[4]);
    assert_eq!(steps[5], "3");
    // The read between saw v3 archived and v1 still there.
    let seen = ws.json("obs/registry.json");
    let status = |reg: &serde_json::Value, v: &str| {
        reg.as_array()
            .unwrap()
            .iter()
            .find(|e| e["version"] == v)
            .map(|e| e["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status(&seen, "v3").as_deref(), Some("archived"));
    assert_eq!(status(&seen, "v1").as_deref(), Some("archived"));
    // The failing step's change was made before the step failed, and its action is in the
    // journal: v1, v2 and v3 are gone.
    assert_eq!(ws.versions("sl_forecaster"), ["v4", "v5"]);
    assert_eq!(crate::support::actions(&log, "registry.remove").len(), 3);
    let end = log.iter().rfind(|e| e["event"] == "step_end").unwrap();
    assert_eq!(end["status"], "failed");
}
