//! The config primitives and the `restore_config` runbook: restore from the backup, fall back
//! to the built-in default, show the diff, refuse malformed YAML, and change nothing in a
//! dry run.

use crate::support::{repo, shipped, Ws};

const CONFIG: &str = "configs/sl/training_configs.yaml";
const BACKUP: &str = "configs/sl/training_configs.yaml.backup";
const HEAD: &str = "//! name: t\n//! version: 1.0.0\n//! description: d\n";

fn restore_config() -> String {
    shipped("restore_config.rhai")
}

fn template() -> String {
    std::fs::read_to_string(repo().join("runbooks/templates/training_configs.default.yaml"))
        .unwrap()
}

#[test]
fn restores_the_backup_byte_for_byte_and_shows_the_diff() {
    let ws = Ws::generated(&[]);
    let backup = ws.read(BACKUP);
    let changed = ws.read(CONFIG);
    assert_ne!(backup, changed);
    let out = ws.runbook(&["run", &restore_config()]).run().success();
    out.stdout_has("done: restore `configs/sl/training_configs.yaml` from `configs/sl/training_configs.yaml.backup` (+2 -2 lines; old content kept at")
        .stdout_has("| -  type: lightgbm")
        .stdout_has("| +  type: xgboost")
        .stdout_has("| -  learning_rate: 0.3")
        .stdout_has("| +  learning_rate: 0.05")
        .stdout_has("check `configs/sl/training_configs.yaml` is a valid training configuration")
        .stdout_has("| training configuration: model xgboost, learning rate 0.05");
    assert_eq!(ws.read(CONFIG), backup);
    assert_eq!(ws.read(BACKUP), backup);
    let log = ws.last_log();
    let run_id = log[0]["run_id"].as_str().unwrap();
    assert_eq!(
        ws.read(&format!(".runbook/trash/{run_id}/{CONFIG}")),
        changed
    );
    let restore = log.iter().find(|e| e["op"] == "config.restore").unwrap();
    assert!(restore["result"]["diff"]
        .as_str()
        .unwrap()
        .contains("+  type: xgboost"));
    // Running again changes nothing.
    ws.runbook(&["run", &restore_config()])
        .run()
        .success()
        .stdout_has("already had this content; nothing to change");
    assert_eq!(ws.read(CONFIG), backup);
}

#[test]
fn without_a_backup_writes_the_built_in_default() {
    let ws = Ws::generated(&[]);
    std::fs::remove_file(ws.join(BACKUP)).unwrap();
    ws.runbook(&["run", &restore_config()])
        .run()
        .success()
        .stdout_has("no backup 'configs/sl/training_configs.yaml.backup'; using the default training configuration built into runbook")
        .stdout_has("done: write `configs/sl/training_configs.yaml` (+")
        .stdout_has("is a valid training configuration");
    // The template as shipped, comments included.
    assert_eq!(ws.read(CONFIG), template());
    assert!(!ws.exists(BACKUP));

    // Or a template from the workspace, when one is named.
    let ws = Ws::generated(&[]);
    std::fs::remove_file(ws.join(BACKUP)).unwrap();
    let custom = "model:\n  type: ridge\n  learning_rate: 0.1\n";
    ws.write("templates/mine.yaml", custom);
    ws.runbook(&[
        "run",
        &restore_config(),
        "-p",
        "template=templates/mine.yaml",
    ])
    .run()
    .success()
    .stdout_has("model ridge, learning rate 0.1");
    assert_eq!(ws.read(CONFIG), custom);
}

#[test]
fn the_demo_workspace_restores_with_its_own_runbook() {
    let ws = Ws::demo();
    ws.runbook(&["run", "runbooks/restore_config.rhai"])
        .run()
        .success();
    assert_eq!(ws.read(CONFIG), ws.read(BACKUP));
    std::fs::remove_file(ws.join(BACKUP)).unwrap();
    ws.write(CONFIG, "model:\n  type: lightgbm\n  learning_rate: 0.3\n");
    ws.runbook(&[
        "run",
        "runbooks/restore_config.rhai",
        "-p",
        "template=runbooks/templates/training_configs.default.yaml",
    ])
    .run()
    .success();
    assert_eq!(ws.read(CONFIG), template());
}

#[test]
fn dry_run_shows_the_diff_in_both_cases_and_changes_nothing() {
    let ws = Ws::generated(&[]);
    let before = ws.snapshot();
    ws.runbook(&["run", &restore_config(), "--dry-run"])
        .run()
        .success()
        .stdout_has("would restore `configs/sl/training_configs.yaml` from `configs/sl/training_configs.yaml.backup` (+2 -2 lines")
        .stdout_has("| +++ b/configs/sl/training_configs.yaml")
        .stdout_has("| -  type: lightgbm")
        .stdout_has("| +  type: xgboost")
        // Validation read what the restore would have written.
        .stdout_has("model xgboost, learning rate 0.05")
        .stdout_has("files written:");
    before.assert_same(&ws.snapshot());

    std::fs::remove_file(ws.join(BACKUP)).unwrap();
    let before = ws.snapshot();
    ws.runbook(&["run", &restore_config(), "--dry-run"])
        .run()
        .success()
        .stdout_has("would write `configs/sl/training_configs.yaml` (+")
        .stdout_has("| +# SL training configuration: the default")
        .stdout_has("| -  type: lightgbm")
        .stdout_has("model xgboost, learning rate 0.05");
    before.assert_same(&ws.snapshot());
    assert!(!ws.exists(".runbook/trash"));
}

#[test]
fn a_malformed_backup_is_refused_with_its_position_and_nothing_changes() {
    let ws = Ws::generated(&[]);
    let broken = "model:\n  type: xgboost\n   learning_rate: 0.05\n";
    ws.write(BACKUP, broken);
    let before = ws.snapshot();
    ws.runbook(&["run", &restore_config()])
        .run()
        .code(1)
        .stderr_has("`configs/sl/training_configs.yaml.backup` is not valid YAML")
        .stderr_has("at line 3, column 17")
        .stderr_has("step `Choose and check the source` failed");
    before.assert_same(&ws.snapshot());
    assert_eq!(ws.read(BACKUP), broken);

    // An invalid (but well-formed) backup is refused too, before anything is written.
    ws.write(BACKUP, "model:\n  type: xgboost\n  learning_rate: 5\n");
    let before = ws.snapshot();
    ws.runbook(&["run", &restore_config()])
        .run()
        .code(1)
        .stderr_has("`model.learning_rate` must be a number in (0, 1], got `5`");
    before.assert_same(&ws.snapshot());
}

#[test]
fn malformed_yaml_is_an_error_with_its_position_in_every_primitive() {
    let ws = Ws::generated(&[]);
    let broken = "model:\n  type: [xgboost\n  learning_rate: 0.05\n";
    ws.write(CONFIG, broken);
    for (name, call) in [
        ("read", format!("config::read_yaml(\"{CONFIG}\");")),
        (
            "check",
            format!("config::check_training_config(\"{CONFIG}\");"),
        ),
        (
            "restore",
            format!("config::restore(\"{CONFIG}\", \"configs/sl/copy.yaml\");"),
        ),
        (
            "text",
            "config::write_yaml_text(\"configs/sl/new.yaml\", \"a: [1\\nb: 2\\n\");".to_string(),
        ),
    ] {
        ws.write(&format!("rb/{name}.rhai"), &format!("{HEAD}{call}\n"));
        let out = ws
            .runbook(&["run", &format!("rb/{name}.rhai")])
            .run()
            .code(1);
        assert!(
            out.stderr.contains("is not valid YAML"),
            "{name}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(", column "), "{name}: {}", out.stderr);
    }
    assert_eq!(ws.read(CONFIG), broken);
    assert!(!ws.exists("configs/sl/copy.yaml"));
    assert!(!ws.exists("configs/sl/new.yaml"));
}

#[test]
fn scripts_edit_yaml_and_json_as_maps_and_key_order_survives() {
    let ws = Ws::generated(&[]);
    ws.write(
        "rb/edit.rhai",
        &format!(
            "{HEAD}let cfg = config::read_yaml(\"{CONFIG}\");\n\
             cfg.model.learning_rate = 0.05;\n\
             cfg.model.type = \"xgboost\";\n\
             cfg.notes = \"restored\";\n\
             print(config::write_yaml(\"{CONFIG}\", cfg));\n\
             let meta = config::read_json(\"models/sl_model_v1_metadata.json\");\n\
             meta.checked = true;\n\
             config::write_json(\"models/sl_model_v1_metadata.json\", meta);\n\
             print(`problems ${{config::validate_training_config(config::read_yaml(\"{CONFIG}\"))}}`);\n"
        ),
    );
    ws.runbook(&["run", "rb/edit.rhai"])
        .run()
        .success()
        .stdout_has("| -  type: lightgbm")
        .stdout_has("| +  type: xgboost")
        .stdout_has("| +notes: restored")
        .stdout_has("| problems []");
    let text = ws.read(CONFIG);
    // The file's order (model, features, validation), not Rhai's sorted one; new keys last.
    let keys: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with([' ', '#']))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(keys, ["model", "features", "validation", "notes"]);
    assert!(
        text.starts_with("model:\n  type: xgboost\n  learning_rate: 0.05\n  max_depth: 6\n"),
        "{text}"
    );
    let meta = ws.json("models/sl_model_v1_metadata.json");
    let keys: Vec<&String> = meta.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["version", "trained_at", "rows", "checked"]);
}
