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
