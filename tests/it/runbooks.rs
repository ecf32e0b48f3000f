//! The shipped runbooks as a responder meets them: every precondition a later step asserts
//! is checked before the first change, so breaking any one of them ends the run with exit 1
//! and every file of the workspace (`.git/` included) as it was.

use crate::support::*;

/// Run `runbook run RUNBOOK -p PARAMS...` in `ws` and require that it fails with exit 1,
/// says `says` on stderr, and changes nothing outside `.runbook/`.
fn refused(ws: &Ws, runbook: &str, params: &[&str], says: &str) {
    let before = ws.snapshot();
    let mut cmd = ws.runbook(&["run", runbook]);
    for p in params {
        cmd = cmd.arg("-p").arg(p);
    }
    cmd.run().code(1).stderr_has(says);
    before.assert_same(&ws.snapshot());
}

/// The generated workspace (make_workspace.py: v3 production and broken, v2 the previous
/// one, v1 older, an unrelated `risk_model` r1).
fn generated() -> Ws {
    Ws::generated(&[])
}

/// Rewrite the registry with `edit` applied to every entry.
fn edit_registry(ws: &Ws, edit: impl Fn(&mut serde_json::Value)) {
    let mut reg = ws.json("models/registry.json");
    for e in reg.as_array_mut().unwrap() {
        edit(e);
    }
    ws.write(
        "models/registry.json",
        &serde_json::to_string_pretty(&reg).unwrap(),
    );
}

#[test]
fn full_rollback_checks_every_precondition_before_the_first_change() {
    let fr = shipped("full_rollback.rhai");
    type Setup = fn(&Ws);
    let cases: &[(&str, Setup, &[&str], &str)] = &[
        (
            "an unrelated model's file is missing",
            |ws| std::fs::remove_file(ws.join("models/risk_model_r1.json")).unwrap(),
            &[],
            "`models/risk_model_r1.json` does not exist",
        ),
        (
            "the target's model file is missing",
            |ws| std::fs::remove_file(ws.join("models/sl_model_v2.json")).unwrap(),
            &[],
            "models/sl_model_v2.json",
        ),
        (
            "the target fails the gate",
            |_| {},
            &["threshold=0.0000001"],
            "threshold",
        ),
        (
            "production is not the version named by `from`",
            |_| {},
            &["from=v2"],
            "is v3, not v2",
        ),
        (
            "`to` names no version",
            |_| {},
            &["to=v9"],
            "there is no version v9",
        ),
        (
            "`to` names the production version",
            |_| {},
            &["to=v3"],
            "v3 is already production",
        ),
        (
            "the pid file is garbled",
            |ws| {
                ws.write("run/sl_model_training.pid", "not a pid\n");
            },
            &[],
            "not a process id",
        ),
        (
            "no superseded version is left",
            |ws| {
                edit_registry(ws, |e| {
                    if e["status"] == "superseded" {
                        e["status"] = "archived".into();
                    }
                })
            },
            &[],
            "no superseded version is left",
        ),
        (
            "the validation data is missing",
            |ws| std::fs::remove_file(ws.join("data/validation.csv")).unwrap(),
            &[],
            "data/validation.csv",
        ),
    ];
    for (what, setup, params, says) in cases {
        let ws = generated();
        setup(&ws);
        eprintln!("case: {what}");
        refused(&ws, &fr, params, says);
    }
}

#[test]
fn full_rollback_with_from_rolls_back_once_when_run_twice() {
    let ws = generated();
    let fr = shipped("full_rollback.rhai");
    ws.runbook(&["run", &fr, "-q", "-p", "from=v3"])
        .run()
        .success();
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v2"));
    assert_eq!(ws.versions("sl_forecaster"), ["v1", "v2"]);
    // The same command again: production is v2 now, so it refuses and changes nothing.
    refused(&ws, &fr, &["from=v3"], "is v2, not v3");
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v2"));
    assert!(ws.exists("models/sl_model_v1.json"));
}

#[test]
fn full_rollback_to_a_named_version() {
    let ws = generated();
    let fr = shipped("full_rollback.rhai");
    ws.runbook(&["run", &fr, "-q", "-p", "to=v1", "-p", "from=v3"])
        .run()
        .success();
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v1"));
    assert_eq!(ws.versions("sl_forecaster"), ["v1", "v2"]);
    assert!(!ws.exists("models/sl_model_v3.json"));
    assert!(ws.exists("models/sl_model_v2.json"));
}

/// `git` in a child process with no identity anywhere: no global or system config, and
/// `user.useConfigOnly` so git does not make one up from the host name.
fn without_git_identity(cmd: Cmd, home: &std::path::Path) -> Cmd {
    cmd.env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "user.useConfigOnly")
        .env("GIT_CONFIG_VALUE_0", "true")
}

#[test]
fn version_control_checks_git_identity_before_anything_changes() {
    let ws = generated();
    let home = tempfile::tempdir().unwrap();
    let before = ws.snapshot();
    let cmd = ws.runbook(&["run", &shipped("version_control.rhai"), "-p", "tag=sl-v1.1"]);
    let out = without_git_identity(cmd, home.path()).run().code(1);
    let out = out.stderr_has("git does not know who you are");
    assert!(
        out.stderr.contains("Check the repository"),
        "not refused in the first step: {}",
        out.stderr
    );
    before.assert_same(&ws.snapshot());
}

#[test]
fn version_control_refuses_a_clean_tree_and_an_existing_tag() {
    let vc = shipped("version_control.rhai");
    let ws = generated();
    ws.git_identity();
    refused(&ws, &vc, &["tag=sl-v1.0"], "sl-v1.0");
    refused(&ws, &vc, &["message= "], "empty");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-q", "-m", "everything"]);
    refused(&ws, &vc, &[], "nothing to commit");
}

#[test]
fn restore_config_refuses_a_bad_source_before_writing() {
    let rc = shipped("restore_config.rhai");
    let ws = generated();
    ws.write(
        "configs/sl/training_configs.yaml.backup",
        "model: [unclosed\n",
    );
    refused(&ws, &rc, &[], "training_configs.yaml.backup");
    std::fs::remove_file(ws.join("configs/sl/training_configs.yaml.backup")).unwrap();
    ws.write("bad_default.yaml", "model:\n  type: 7\n");
    refused(&ws, &rc, &["template=bad_default.yaml"], "not valid");
}

#[test]
fn revert_code_refuses_an_unknown_revision() {
    let ws = generated();
    refused(
        &ws,
        &shipped("revert_code.rhai"),
        &["rev=no-such-rev"],
        "no-such-rev",
    );
}

#[test]
fn verification_runbooks_fail_and_change_nothing() {
    let ws = generated();
    refused(
        &ws,
        &shipped("verify_rollback.rhai"),
        &["expected=v1"],
        "but v1 was expected",
    );
    // v3, the generated production version, is broken: it fails the default gate.
    refused(&ws, &shipped("verify_rollback.rhai"), &[], "mse");
    std::fs::remove_file(ws.join("models/sl_model_v3.json")).unwrap();
    refused(
        &ws,
        &shipped("quick_verification.rhai"),
        &[],
        "quick verification failed",
    );
}

/// The generated workspace after `revert_model`: v2 production, v3 archived and kept.
fn reverted() -> Ws {
    let ws = generated();
    ws.runbook(&["run", &shipped("revert_model.rhai"), "-q"])
        .run()
        .success();
    ws
}

#[test]
fn create_backup_copies_to_the_plans_names_and_records_the_timestamp() {
    let ws = generated();
    let out = ws
        .runbook(&["run", &shipped("create_backup.rhai")])
        .run()
        .success();
    let stamp = ws.read("backup_timestamp.txt");
    assert_eq!(stamp.len(), 15, "{stamp}");
    for (src, dst) in [
        ("models", format!("backups/models_{stamp}")),
        ("src/sl", format!("backups/src_sl_{stamp}")),
        ("configs/sl", format!("backups/configs_sl_{stamp}")),
    ] {
        let files: Vec<String> = ws
            .paths()
            .into_iter()
            .filter(|p| p.starts_with(&format!("{src}/")))
            .collect();
        for f in &files {
            let copy = format!("{dst}/{}", &f[src.len() + 1..]);
            assert_eq!(ws.read(f), ws.read(&copy), "{copy}");
        }
        let line = format!("{src} -> {dst}: {} file(s)", files.len());
        assert!(out.stdout.contains(&line), "no {line:?} in\n{}", out.stdout);
    }
    assert_eq!(
        ws.read(&format!("backups/registry_{stamp}.json")),
        ws.read("models/registry.json")
    );
}

#[test]
fn create_backup_refuses_before_copying_when_the_disk_lacks_room() {
    let ws = generated();
    refused(
        &ws,
        &shipped("create_backup.rhai"),
        &["reserve_mb=1000000000"],
        "not enough disk space for the backup",
    );
    refused(
        &ws,
        &shipped("create_backup.rhai"),
        &["sources=nothing,here"],
        "nothing to back up",
    );
}

#[test]
fn revert_model_archives_and_keeps_the_bad_version() {
    let ws = reverted();
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v2"));
    let reg = ws.json("models/registry.json");
    let v3 = reg
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["version"] == "v3")
        .unwrap();
    assert_eq!(v3["status"], "archived");
    assert!(ws.exists("models/sl_model_v3.json"));
    // Run again: production is v2 now, which is no longer `from`.
    refused(
        &ws,
        &shipped("revert_model.rhai"),
        &["from=v3"],
        "is v2, not v3",
    );
    let ws = generated();
    std::fs::remove_file(ws.join("models/risk_model_r1.json")).unwrap();
    refused(
        &ws,
        &shipped("revert_model.rhai"),
        &[],
        "the registry is inconsistent",
    );
}

#[test]
fn remove_model_files_removes_the_version_and_its_new_files() {
    let ws = reverted();
    ws.runbook(&[
        "run",
        &shipped("remove_model_files.rhai"),
        "-p",
        "version=v3",
    ])
    .run()
    .success()
    .stdout_has("no file of sl_forecaster v3 remains");
    assert!(!ws.exists("models/sl_model_v3.json"));
    assert!(!ws.exists("models/sl_model_v3_metadata.json"));
    assert_eq!(ws.versions("sl_forecaster"), ["v1", "v2"]);
    assert!(ws.exists("models/sl_model_v2.json"));
    assert!(ws.exists("models/risk_model_r1.json"));
}

#[test]
fn remove_model_files_checks_its_preconditions_first() {
    let rm = shipped("remove_model_files.rhai");
    let ws = generated();
    refused(&ws, &rm, &["version=v3"], "v3 is production");
    let ws = reverted();
    // A new file that belongs to v2, which stays.
    ws.write("models/sl_model_v2_extra_metadata.json", "{}");
    refused(
        &ws,
        &rm,
        &["version=v3"],
        "belongs to a version of sl_forecaster that stays",
    );
    let ws = reverted();
    std::fs::remove_file(ws.join("backup_timestamp.txt")).unwrap();
    refused(
        &ws,
        &rm,
        &["version=v3"],
        "the reference 'backup_timestamp.txt' is missing",
    );
    let ws = reverted();
    ws.runbook(&["run", &rm])
        .run()
        .code(2)
        .stderr_has("version");
}

/// `data/validation.csv` with a `ts` column holding `ts` on every row.
fn with_timestamps(ws: &Ws, ts: &str) {
    let text = ws.read("data/validation.csv");
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        out.push_str(line);
        out.push(',');
        out.push_str(if i == 0 { "ts" } else { ts });
        out.push('\n');
    }
    ws.write("data/validation_ts.csv", &out);
}

#[test]
fn post_rollback_checks_pass_after_a_revert_and_name_what_fails() {
    let pc = shipped("post_rollback_checks.rhai");
    // The generated production version is the broken one.
    refused(&generated(), &pc, &[], "mse");
    let ws = reverted();
    ws.runbook(&["run", &pc])
        .run()
        .success()
        .stdout_has("post-rollback checks passed")
        .stdout_has("baseline 0.0004");
    // Logs: an ERROR line before `since` does not count, one after does.
    ws.write(
        "logs/app.log",
        "2026-01-01T10:00:00Z ERROR old failure\n2026-01-02T10:00:00Z INFO fine\n",
    );
    ws.runbook(&[
        "run",
        &pc,
        "-q",
        "-p",
        "logs=logs/app.log",
        "-p",
        "since=2026-01-02T00:00:00Z",
    ])
    .run()
    .success();
    refused(
        &ws,
        &pc,
        &["logs=logs/app.log"],
        "1 ERROR line(s) in the logs",
    );
    refused(&ws, &pc, &["logs=logs/missing.log"], "does not exist");
    // Predictions out of range, a training job running (a pid file of a live process is
    // checked by process::is_running).
    refused(&ws, &pc, &["pred_max=-100"], "outside");
    // Leakage: rows from before the training end of v2.
    with_timestamps(&ws, "2020-01-01T00:00:00Z");
    refused(
        &ws,
        &pc,
        &["data=data/validation_ts.csv", "timestamp=ts"],
        "leakage: validation rows from 2020-01-01",
    );
    with_timestamps(&ws, "2099-01-01T00:00:00Z");
    ws.runbook(&[
        "run",
        &pc,
        "-p",
        "data=data/validation_ts.csv",
        "-p",
        "timestamp=ts",
    ])
    .run()
    .success()
    .stdout_has("no leakage");
    // A feature the model needs is missing from the data.
    let text = ws.read("data/validation.csv").replace("x7", "z7");
    ws.write("data/validation_ts.csv", &text);
    refused(
        &ws,
        &pc,
        &["data=data/validation_ts.csv"],
        "needs feature `x7`",
    );
}

#[test]
fn rollback_checklist_runs_the_procedures_and_reports() {
    let ws = generated();
    let out = ws
        .runbook(&["run", &shipped("rollback_checklist.rhai"), "-p", "from=v3"])
        .run()
        .success();
    out.stdout_has("[x] created a backup of the current state")
        .stdout_has("[x] removed v3 and its 2 file(s)")
        .stdout_has("rollback of sl_forecaster: v3 -> v2");
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v2"));
    assert_eq!(ws.versions("sl_forecaster"), ["v1", "v2"]);
    let stamp = ws.read("backup_timestamp.txt");
    assert!(ws.exists(&format!("backups/models_{stamp}/sl_model_v3.json")));
    // Every precondition comes before the backup.
    let cl = shipped("rollback_checklist.rhai");
    let ws = generated();
    refused(
        &ws,
        &cl,
        &["reserve_mb=1000000000"],
        "not enough disk space",
    );
    refused(&ws, &cl, &["from=v2"], "is v3, not v2");
    std::fs::remove_file(ws.join("models/risk_model_r1.json")).unwrap();
    refused(&ws, &cl, &[], "the registry is inconsistent");
}

/// A one-shot HTTP server on 127.0.0.1 that answers 200 and hands over the request body.
fn webhook() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut s = stream.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = s.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break body.to_string();
                    }
                }
                if n == 0 {
                    break String::new();
                }
            };
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            tx.send(body).unwrap();
        }
    });
    (url, rx)
}

const NOTIFYING: &str = "//! name: tell\n//! version: 1.0.0\n//! description: notifies\n\nstep \"tell\" {\n    let r = notify::send(\"rolling back v3\", #{ model: \"sl_forecaster\" });\n    print(`sent ${r.sent}, failed ${r.failed.len()}`);\n}\nstep \"after\" { fs::write(\"after.txt\", \"the run went on\"); }\n";

#[test]
fn notify_sends_to_the_configured_sinks_and_a_dry_run_sends_nothing() {
    let ws = generated();
    let (url, received) = webhook();
    ws.write(
        "runbook.yaml",
        &format!(
            "notify:\n  - {{type: print}}\n  - {{type: file, path: notifications.log}}\n  - {{type: webhook, url: \"{url}\", timeout: 5s}}\n  - {{type: command, argv: [sh, -c, \"cat > /dev/null\"]}}\n"
        ),
    );
    ws.write("runbooks/tell.rhai", NOTIFYING);
    let before = ws.snapshot();
    ws.runbook(&["run", "tell", "--dry-run"])
        .run()
        .success()
        .stdout_has("would notify print, file `notifications.log`, webhook")
        .stdout_has("sent 0, failed 0");
    before.assert_same(&ws.snapshot());
    assert!(
        received.try_recv().is_err(),
        "a dry run posted to the webhook"
    );
    ws.runbook(&["run", "tell"])
        .run()
        .success()
        .stdout_has("| notify: rolling back v3")
        .stdout_has("sent 4, failed 0");
    let body: serde_json::Value = serde_json::from_str(
        &received
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["text"], "rolling back v3");
    assert_eq!(body["model"], "sl_forecaster");
    let line: serde_json::Value =
        serde_json::from_str(ws.read("notifications.log").trim()).unwrap();
    assert_eq!(line["text"], "rolling back v3");
    let log = ws.last_log();
    let sent = actions(&log, "notify.send");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["kind"], "notification");
    assert_eq!(sent[0]["applied"], true);
}

#[test]
fn a_failing_sink_is_reported_and_the_run_goes_on() {
    let ws = generated();
    ws.write(
        "runbook.yaml",
        "notify:\n  - {type: webhook, url: \"http://127.0.0.1:9/hook\", timeout: 2s}\n  - {type: command, argv: [sh, -c, \"exit 3\"]}\n  - {type: file, path: notifications.log}\n",
    );
    ws.write("runbooks/tell.rhai", NOTIFYING);
    ws.runbook(&["run", "tell"])
        .run()
        .success()
        .stdout_has("notification to webhook `http://127.0.0.1:9/hook` failed")
        .stdout_has("the run goes on")
        .stdout_has("sent 1, failed 2");
    assert_eq!(ws.read("after.txt"), "the run went on");
    assert!(ws.read("notifications.log").contains("rolling back v3"));
    // A bad configuration is an error before anything is sent.
    ws.write("runbook.yaml", "notify:\n  - {type: pigeon}\n");
    ws.runbook(&["run", "tell"])
        .run()
        .code(1)
        .stderr_has("`notify[0].type` is `pigeon`");
    // `--no-exec` refuses the command sink, and only it.
    ws.write(
        "runbook.yaml",
        "notify:\n  - {type: command, argv: [sh, -c, \"exit 0\"]}\n  - {type: print}\n",
    );
    ws.runbook(&["run", "tell", "--no-exec"])
        .run()
        .success()
        .stdout_has("--no-exec")
        .stdout_has("sent 1, failed 1");
}

#[test]
fn post_rollback_checks_hold_a_watched_process_to_its_limits() {
    let ws = reverted();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    ws.write("run/serving.pid", &format!("{}\n", child.id()));
    let pc = shipped("post_rollback_checks.rhai");
    ws.runbook(&[
        "run",
        &pc,
        "-p",
        "watch=run/serving.pid",
        "-p",
        "max_rss_mb=100000",
    ])
    .run()
    .success()
    .stdout_has("within the limits");
    refused(
        &ws,
        &pc,
        &["watch=run/serving.pid", "max_rss_mb=0.001"],
        "above the limit of 0.001 MiB",
    );
    child.kill().unwrap();
    child.wait().unwrap();
    ws.runbook(&[
        "run",
        &pc,
        "-p",
        "watch=run/serving.pid",
        "-p",
        "max_rss_mb=0.001",
    ])
    .run()
    .success()
    .stdout_has("no process running from 'run/serving.pid'");
}

#[test]
fn the_demo_holds_what_every_runbook_needs_and_says_where_to_look_next() {
    let ws = Ws::empty();
    let dir = ws.join("demo");
    let out = ws
        .runbook(&["demo"])
        .arg(&dir)
        .run()
        .success()
        .stdout_has("log --last")
        .stdout_has("run rollback_checklist --dry-run")
        .stdout_has("run post_rollback_checks");
    assert!(out.stdout.contains("run ok:"), "{}", out.stdout);
    for name in [
        "create_backup.rhai",
        "rollback_checklist.rhai",
        "lib/procedures.rhai",
    ] {
        assert_eq!(
            std::fs::read_to_string(dir.join("runbooks").join(name)).unwrap(),
            std::fs::read_to_string(repo().join("runbooks").join(name)).unwrap(),
            "{name}"
        );
    }
    // After the demo's rollback (v5 -> v4), the hinted post-rollback checks pass, leakage
    // check included, and the old ERROR line in the log is before `since`.
    let run = |args: &[&str]| {
        let mut cmd = ws.runbook(&["run", "-w"]).arg(&dir);
        for a in args {
            cmd = cmd.arg(a);
        }
        cmd.run()
    };
    run(&[
        "post_rollback_checks",
        "-p",
        "logs=logs/training.log",
        "-p",
        "since=2026-11-30T00:00:00Z",
        "-p",
        "data=data/validation_recent.csv",
        "-p",
        "timestamp=timestamp",
    ])
    .success()
    .stdout_has("no leakage");
    run(&["post_rollback_checks", "-p", "logs=logs/training.log"])
        .code(1)
        .stderr_has("ERROR loss diverged");
    run(&["rollback_checklist", "--dry-run", "-q", "-p", "tolerance=1"]).success();
    run(&["create_backup", "-q"]).success();
}
