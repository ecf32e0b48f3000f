//! Authoring without recompiling: finding runbooks by name (file, the workspace's
//! `runbooks/`, the ones shipped in the binary), `list`, `eject`, `new`, and `check`.

use crate::support::*;

#[test]
fn a_shipped_runbook_runs_by_name_in_a_generated_workspace() {
    let ws = Ws::generated(&[]);
    assert!(!ws.exists("runbooks"));
    ws.runbook(&["run", "full_rollback.rhai", "-q", "-p", "from=v3"])
        .run()
        .success();
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v2"));
    let start = &ws.last_log()[0];
    assert_eq!(start["runbook"], "shipped:full_rollback.rhai");
    // Without the extension, and from another directory with -w.
    let other = Ws::generated(&[]);
    Ws::empty()
        .runbook(&["run", "full_rollback", "-q", "--dry-run", "-w"])
        .arg(other.path())
        .run()
        .success();
    // An error inside a shipped helper points into it.
    ws.write("models/registry.json", "[\n");
    ws.runbook(&["run", "full_rollback", "-q"])
        .run()
        .code(1)
        .stderr_has("--> shipped:lib/models.rhai:")
        .stderr_has("= called from shipped:full_rollback.rhai:");
}

#[test]
fn an_unknown_name_is_a_usage_error_naming_the_shipped_runbooks() {
    let ws = Ws::generated(&[]);
    ws.runbook(&["run", "ful_rollback"])
        .run()
        .code(2)
        .stderr_has("runbook `ful_rollback` does not exist")
        .stderr_has("full_rollback.rhai, ");
}

#[test]
fn the_workspace_runbook_wins_over_the_shipped_one_and_list_says_where_each_is_from() {
    let ws = Ws::generated(&[]);
    ws.write(
        "runbooks/full_rollback.rhai",
        "//! name: full_rollback\n//! version: 9.0.0\n//! description: a local override\n\nprint(\"local override ran\");\n",
    );
    ws.runbook(&["run", "full_rollback"])
        .run()
        .success()
        .stdout_has("local override ran");
    let out = ws.runbook(&["list"]).run().success();
    let out = out
        .stdout_has("runbooks/full_rollback.rhai  full_rollback 9.0.0  (in `runbooks`)")
        .stdout_has(
            "shipped:verify_rollback.rhai  verify_rollback 1.0.0  (shipped; `runbook eject verify_rollback` to edit a copy)",
        );
    assert!(
        !out.stdout.contains("shipped:full_rollback.rhai"),
        "an overridden shipped runbook is listed: {}",
        out.stdout
    );
}

#[test]
fn eject_copies_a_shipped_runbook_and_its_helpers_and_never_overwrites() {
    let ws = Ws::generated(&[]);
    ws.runbook(&["eject", "full_rollback"])
        .run()
        .success()
        .stdout_has("wrote runbooks/full_rollback.rhai")
        .stdout_has("wrote runbooks/lib/models.rhai")
        .stdout_has("wrote runbooks/lib/validation.rhai");
    assert_eq!(
        ws.read("runbooks/full_rollback.rhai"),
        std::fs::read_to_string(shipped("full_rollback.rhai")).unwrap()
    );
    // Through the door: a run log of its own with the writes.
    let log = ws.last_log();
    assert_eq!(actions(&log, "fs.write").len(), 3);
    // The copy is what runs now.
    let edited = ws
        .read("runbooks/full_rollback.rhai")
        .replace("rollback complete:", "ejected copy complete:");
    ws.write("runbooks/full_rollback.rhai", &edited);
    ws.runbook(&["run", "full_rollback"])
        .run()
        .success()
        .stdout_has("ejected copy complete:");
    // Ejecting again refuses: the runbook there differs now; nothing is written.
    let before = ws.snapshot();
    ws.runbook(&["eject", "full_rollback"])
        .run()
        .code(2)
        .stderr_has("`runbooks/full_rollback.rhai` exists in the workspace with other content");
    before.assert_same(&ws.snapshot());
    ws.runbook(&["eject", "no_such"])
        .run()
        .code(2)
        .stderr_has("no shipped runbook is called `no_such`");
}

#[test]
fn new_writes_a_template_that_check_accepts_and_run_runs() {
    let ws = Ws::generated(&[]);
    ws.runbook(&["new", "clear_cache"])
        .run()
        .success()
        .stdout_has("wrote runbooks/clear_cache.rhai");
    ws.runbook(&["check", "runbooks/clear_cache.rhai"])
        .run()
        .success()
        .stdout_has("clear_cache 0.1.0, 2 step(s)");
    let before = ws.snapshot();
    ws.runbook(&["run", "clear_cache", "--dry-run"])
        .run()
        .success()
        .stdout_has("would write `notes/clear_cache_");
    before.assert_same(&ws.snapshot());
    ws.runbook(&["run", "clear_cache"])
        .run()
        .success()
        .stdout_has("production is v3");
    let notes: Vec<String> = ws
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("notes/"))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(ws.read(&notes[0]), "checked by clear_cache: production v3");
    ws.runbook(&["new", "clear_cache"])
        .run()
        .code(2)
        .stderr_has("exists already");
    ws.runbook(&["new", "Bad-Name"])
        .run()
        .code(2)
        .stderr_has("is not a runbook name");
}

#[test]
fn imports_fall_back_to_the_workspace_runbooks_then_the_shipped_helpers() {
    let ws = Ws::generated(&[]);
    let elsewhere = tempfile::tempdir().unwrap();
    let script = elsewhere.path().join("mine.rhai");
    std::fs::write(
        &script,
        "//! name: mine\n//! version: 1.0.0\n//! description: imports\n\nimport \"lib/models\" as models;\nimport \"lib/local\" as local;\nprint(`${models::version_files(\"v3\")} ${local::hello()}`);\n",
    )
    .unwrap();
    ws.write(
        "runbooks/lib/local.rhai",
        "fn hello() { \"from the workspace\" }\n",
    );
    ws.runbook(&["run"])
        .arg(&script)
        .run()
        .success()
        .stdout_has("models/sl_model_v3.json")
        .stdout_has("from the workspace");
    // `..` is still refused, wherever the import would look.
    std::fs::write(
        &script,
        "//! name: mine\n//! version: 1.0.0\n//! description: imports\n\nimport \"../lib/models\" as models;\n",
    )
    .unwrap();
    ws.runbook(&["run"])
        .arg(&script)
        .run()
        .code(1)
        .stderr_has("leaves the runbooks directory");
}

#[test]
fn run_report_is_markdown_with_steps_effects_metrics_time_and_criteria() {
    let ws = Ws::generated(&[]);
    let out_dir = tempfile::tempdir().unwrap();
    let report = out_dir.path().join("rollback.md");
    ws.runbook(&["run", "full_rollback", "-q", "-p", "from=v3", "--report"])
        .arg(&report)
        .run()
        .success();
    let md = std::fs::read_to_string(&report).unwrap();
    let start = &ws.last_log()[0];
    for needed in [
        "# Run report: full_rollback 1.6.0".to_string(),
        format!("| sha256 | `{}` |", start["sha256"].as_str().unwrap()),
        "| `from` | `\"v3\"` |".to_string(),
        "| 4 | Make v2 production and remove v3 | ok |".to_string(),
        "| registry | make `sl_forecaster` `v2` production (`v3` becomes archived) | yes |"
            .to_string(),
        "- gate: mse ".to_string(),
        "| simple rollback (version revert): 15-30 minutes |".to_string(),
        "| Previous model version performs within acceptable parameters | held |".to_string(),
        "| Stakeholders are notified of successful rollback | not checked by this run |"
            .to_string(),
    ] {
        assert!(md.contains(&needed), "the report lacks {needed:?}:\n{md}");
    }
    // A failed run is reported too, with its error.
    let ws2 = Ws::generated(&[]);
    ws2.runbook(&["run", "full_rollback", "-q", "-p", "from=v1", "--report"])
        .arg(&report)
        .run()
        .code(1);
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("| status | **failed** |"), "{md}");
    assert!(md.contains("is v3, not v1"), "{md}");
    // Inside the workspace it is refused before the run starts.
    let before = ws2.snapshot();
    let runs = std::fs::read_dir(ws2.join(".runbook/runs"))
        .unwrap()
        .count();
    ws2.runbook(&["run", "full_rollback", "--report", "r.md"])
        .run()
        .code(2)
        .stderr_has("is inside the workspace");
    before.assert_same(&ws2.snapshot());
    assert_eq!(
        std::fs::read_dir(ws2.join(".runbook/runs"))
            .unwrap()
            .count(),
        runs
    );
}

fn runbook_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_wrong_argument_type_names_the_primitive_the_types_and_the_line() {
    let ws = Ws::generated(&[]);
    let dir = tempfile::tempdir().unwrap();
    let f = runbook_file(
        &dir,
        "t.rhai",
        "//! name: t\n//! version: 1.0.0\n//! description: d\n\nlet p = registry::production(42);\n",
    );
    ws.runbook(&["run", &f])
        .run()
        .code(1)
        .stderr_has("`registry::production` cannot take (int); it takes `registry::production(name: string)")
        .stderr_has("t.rhai:5:");
    let f = runbook_file(
        &dir,
        "u.rhai",
        "//! name: u\n//! version: 1.0.0\n//! description: d\n\nstep \"s\" { fs::exists(()); }\n",
    );
    ws.runbook(&["run", &f])
        .run()
        .code(1)
        .stderr_has("`fs::exists` cannot take (())")
        .stderr_has("a `()` argument is usually a `params.` field");
}

#[test]
fn check_names_undeclared_params_and_header_typos() {
    let dir = tempfile::tempdir().unwrap();
    let f = runbook_file(
        &dir,
        "t.rhai",
        "//! name: t\n//! version: 1.0.0\n//! description: d\n//! param model: string = sl_forecaster -- m\n\nprint(params.model.len());\nlet p = registry::production(params.modle);\n",
    );
    Ws::empty()
        .runbook(&["check", &f])
        .run()
        .code(2)
        .stderr_has(
            "`params.modle` is not a parameter the header declares; did you mean `params.model`?",
        )
        .stderr_has("t.rhai:7:");
    let f = runbook_file(
        &dir,
        "v.rhai",
        "//! name: v\n//! verison: 1.0.0\n//! description: d\n",
    );
    Ws::empty()
        .runbook(&["check", &f])
        .run()
        .code(2)
        .stderr_has("unknown header key `verison`; did you mean `version`?");
}

#[test]
fn check_accepts_helper_modules_without_a_header() {
    let lib = repo().join("runbooks/lib");
    let ws = Ws::empty();
    let mut cmd = ws.runbook(&["check"]);
    let mut n = 0;
    for e in std::fs::read_dir(&lib).unwrap().flatten() {
        cmd = cmd.arg(e.path());
        n += 1;
    }
    assert!(n >= 3);
    let out = cmd.run().success();
    assert_eq!(
        out.stdout.matches("(helper module, ").count(),
        n,
        "{}",
        out.stdout
    );
    // A helper with a bad call is still caught.
    let dir = tempfile::tempdir().unwrap();
    let f = runbook_file(&dir, "lib/bad.rhai", "fn f() { registry::nope() }\n");
    Ws::empty()
        .runbook(&["check", &f])
        .run()
        .code(2)
        .stderr_has("there is no primitive `registry::nope`");
}

/// The ```` ```rhai ```` blocks of a Markdown file, with the line each starts on.
fn rhai_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match &mut current {
            None if line.trim() == "```rhai" => current = Some((i + 2, String::new())),
            None => {}
            Some(_) if line.trim() == "```" => out.push(current.take().unwrap()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    out
}

/// Parameters the documented runbooks need (a required parameter has no default to run with).
fn doc_params(text: &str) -> Vec<&'static str> {
    if text.contains("//! name: archive_version") {
        vec!["version=v1"]
    } else {
        Vec::new()
    }
}

#[test]
fn every_rhai_example_in_the_readme_and_the_guide_checks_and_runs() {
    let base = Ws::generated(&[]);
    base.git_identity();
    let dir = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for doc in ["README.md", "docs/GUIDE.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        let blocks = rhai_blocks(&text);
        assert!(!blocks.is_empty(), "{doc} has no rhai example");
        for (line, block) in blocks {
            seen += 1;
            // A snippet without a header runs as the body of a minimal runbook.
            let script = if block.trim_start().starts_with("//!") {
                block.clone()
            } else {
                format!("//! name: example\n//! version: 1.0.0\n//! description: {doc} line {line}\n\n{block}")
            };
            let file = runbook_file(&dir, &format!("ex{seen}.rhai"), &script);
            let what = format!("{doc}:{line}");
            let out = base.runbook(&["check", &file]).run();
            assert_eq!(out.code, 0, "{what} does not check:\n{}", out.stderr);
            for dry in [true, false] {
                let ws = base.copy();
                let mut cmd = ws.runbook(&["run", &file, "-q"]);
                if dry {
                    cmd = cmd.arg("--dry-run");
                }
                for p in doc_params(&script) {
                    cmd = cmd.arg("-p").arg(p);
                }
                let out = cmd.run();
                assert_eq!(
                    out.code, 0,
                    "{what} fails (dry run: {dry}):\n{}\n{}",
                    out.stdout, out.stderr
                );
            }
        }
    }
    assert!(seen >= 6, "only {seen} examples");
}

/// The point of the tool: a team's own runbook, written here and shipped nowhere, uses a
/// primitive of every family and runs against a workspace with the built binary, no rebuild.
#[test]
fn a_runbook_written_in_a_test_uses_every_family_with_the_built_binary() {
    const SCRIPT: &str = r#"//! name: every_family
//! version: 1.0.0
//! description: a primitive of every family
//! param model: string = sl_forecaster -- the model

let prod = step "Read" {
    let prod = registry::production(params.model);
    assert(prod != (), "no production version");
    assert(!process::is_running("run/sl_model_training.pid"), "training runs");
    let cfg = config::read_yaml("configs/sl/training_configs.yaml");
    let m = validate::evaluate(prod.model_path, "data/validation.csv", "y");
    let old = time::age("backup_timestamp.txt") > time::duration("1m");
    #{ version: prod.version, head: git::head(), model_type: cfg.model.type, mse: m.mse, old: old,
       files: fs::size("models").files }
};

step "Write" {
    fs::write("notes/every_family.txt",
        `${prod.version} ${prod.head.len()} ${prod.model_type} ${prod.mse < 100.0} ${prod.old} ${prod.files}`);
    notify::send(`every family ran against ${prod.version}`);
}
"#;
    for family in runbook::primitives::FAMILIES {
        assert!(
            SCRIPT.contains(&format!("{family}::")),
            "the script uses no `{family}::`"
        );
    }
    let ws = Ws::generated(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = runbook_file(&dir, "every_family.rhai", SCRIPT);
    ws.runbook(&["check", &file]).run().success();
    let before = ws.snapshot();
    ws.runbook(&["run", &file, "--dry-run"])
        .run()
        .success()
        .stdout_has("would write `notes/every_family.txt`")
        .stdout_has("would notify print: every family ran against v3");
    before.assert_same(&ws.snapshot());
    ws.runbook(&["run", &file])
        .run()
        .success()
        .stdout_has("| notify: every family ran against v3");
    assert_eq!(
        ws.read("notes/every_family.txt"),
        "v3 40 lightgbm true true 8"
    );
}
