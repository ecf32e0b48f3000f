//! The git primitives and the `revert_code` and `version_control` runbooks, on real
//! repositories: the benchmark workspace (whose `HEAD~1` holds the previous `src/sl/`), the
//! demo, and small ones made here.

use crate::support::{shipped, Ws};

const TRADITIONAL: &str = "src/sl/models/traditional.py";
const TREE_BASED: &str = "src/sl/models/tree_based.py";
const OLD_TRADITIONAL: &str = "def fit(X, y):\n    return 'ridge'\n";
const OLD_TREE_BASED: &str = "def fit(X, y):\n    return 'xgboost'\n";
const HEAD: &str = "//! name: t\n//! version: 1.0.0\n//! description: d\n";

fn revert_code() -> String {
    shipped("revert_code.rhai")
}

fn version_control() -> String {
    shipped("version_control.rhai")
}

/// A repository-local identity, so commits do not depend on the machine's git config.
fn identify(ws: &Ws) {
    ws.git(&["config", "user.name", "Runbook Test"]);
    ws.git(&["config", "user.email", "test@example.invalid"]);
}

/// Everything git can tell about the repository's state, for before/after comparisons.
/// `--no-optional-locks` keeps this `git status` from refreshing the index itself.
fn git_state(ws: &Ws) -> (String, String, String) {
    (
        ws.git(&["rev-parse", "HEAD"]),
        ws.git(&[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=all",
        ]),
        ws.git(&["tag"]),
    )
}

fn action<'a>(log: &'a [serde_json::Value], op: &str) -> &'a serde_json::Value {
    log.iter()
        .find(|e| e["event"] == "action" && e["op"] == op)
        .unwrap_or_else(|| panic!("no `{op}` action in the log"))
}

#[test]
fn revert_restores_the_previous_src_sl() {
    let ws = Ws::generated(&[]);
    let head = ws.git(&["rev-parse", "HEAD"]);
    let out = ws.runbook(&["run", &revert_code()]).run().success();
    out.stdout_has("done: check out `src/sl/` at `HEAD~1` (2 files: `src/sl/models/traditional.py` +1 -1, `src/sl/models/tree_based.py` +1 -1)")
        .stdout_has("2 file(s) now match HEAD~1");
    assert_eq!(ws.read(TRADITIONAL), OLD_TRADITIONAL);
    assert_eq!(ws.read(TREE_BASED), OLD_TREE_BASED);
    // `git checkout REV -- PATHS` stages what it writes and leaves HEAD where it was.
    assert_eq!(ws.git(&["rev-parse", "HEAD"]), head);
    let staged = ws.git(&["diff", "--cached", "--name-only"]);
    assert_eq!(staged, format!("{TRADITIONAL}\n{TREE_BASED}\n"));
    let log = ws.last_log();
    let checkout = action(&log, "git.checkout");
    assert_eq!(checkout["args"]["rev"], "HEAD~1");
    assert_eq!(
        checkout["args"]["commit"],
        ws.git(&["rev-parse", "HEAD~1"]).trim()
    );
    assert_eq!(checkout["result"]["files"].as_array().unwrap().len(), 2);
    assert_eq!(checkout["result"]["saved"], serde_json::json!([]));
    // Nothing was dirty, so nothing needed saving.
    assert!(!ws.exists(".runbook/trash"));
}

#[test]
fn dirty_and_untracked_files_are_saved_not_lost() {
    let ws = Ws::generated(&[]);
    let edited = "def fit(X, y):\n    return 'ridge-v3'  # unsaved work\n";
    ws.write(TRADITIONAL, edited);
    // An untracked file that exists in HEAD~1: the checkout would overwrite it too.
    ws.git(&["rm", "-q", "--cached", TREE_BASED]);
    ws.write(
        TREE_BASED,
        "def fit(X, y):\n    return 'catboost'  # untracked\n",
    );
    // A new file that HEAD~1 does not have: the checkout leaves it alone.
    ws.write("src/sl/models/new_idea.py", "idea = 1\n");

    ws.runbook(&["run", &revert_code()])
        .run()
        .success()
        .stdout_has("uncommitted changes to 2 files saved first to");
    assert_eq!(ws.read(TRADITIONAL), OLD_TRADITIONAL);
    assert_eq!(ws.read(TREE_BASED), OLD_TREE_BASED);
    assert_eq!(ws.read("src/sl/models/new_idea.py"), "idea = 1\n");

    let log = ws.last_log();
    let run_id = log[0]["run_id"].as_str().unwrap().to_string();
    let trash = format!(".runbook/trash/{run_id}");
    let saved: Vec<String> = action(&log, "git.checkout")["result"]["saved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        saved.contains(&format!("{trash}/{TRADITIONAL}")),
        "{saved:?}"
    );
    assert!(
        saved.contains(&format!("{trash}/{TREE_BASED}")),
        "{saved:?}"
    );
    // Copies of both files as they were...
    assert_eq!(ws.read(&format!("{trash}/{TRADITIONAL}")), edited);
    assert!(ws
        .read(&format!("{trash}/{TREE_BASED}"))
        .contains("catboost"));
    // ...and a patch that puts the tracked edit back onto HEAD.
    let patch = format!("{trash}/git-checkout-uncommitted.patch");
    assert!(saved.contains(&patch), "{saved:?}");
    // (It also records the staged removal of the other file, which the copy above keeps.)
    ws.git(&["checkout", "HEAD", "--", TRADITIONAL]);
    ws.git(&["apply", &format!("--include={TRADITIONAL}"), &patch]);
    assert_eq!(ws.read(TRADITIONAL), edited);
}

#[test]
fn dry_run_changes_nothing_and_lists_the_files_it_would_change() {
    let ws = Ws::generated(&[]);
    ws.write(TRADITIONAL, "def fit(X, y):\n    return 'unsaved'\n");
    // A file the same in HEAD~1 whose timestamps git has cached no longer match: a careless
    // `git diff` would refresh them and rewrite the index.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let same = std::fs::read(ws.join("src/sl/__init__.py")).unwrap();
    std::fs::write(ws.join("src/sl/__init__.py"), same).unwrap();
    let state = git_state(&ws);
    let before = ws.snapshot();

    let out = ws
        .runbook(&["run", &revert_code(), "--dry-run"])
        .run()
        .success();
    before.assert_same(&ws.snapshot());
    assert_eq!(git_state(&ws), state);
    let run_id = ws.last_log()[0]["run_id"].as_str().unwrap().to_string();
    out.stdout_has("plan (dry run, nothing was changed):")
        .stdout_has("git changes:")
        .stdout_has("would check out `src/sl/` at `HEAD~1` (2 files: `src/sl/models/traditional.py` +1 -1, `src/sl/models/tree_based.py` +1 -1); uncommitted changes to 1 file saved first to")
        .stdout_has(&format!(".runbook/trash/{run_id}/{TRADITIONAL}"))
        // The verify step read the files the checkout would have written.
        .stdout_has("2 file(s) now match HEAD~1");
    assert!(!ws.exists(".runbook/trash"));
    let log = ws.last_log();
    assert_eq!(action(&log, "git.checkout")["applied"], false);
}

#[test]
fn later_reads_and_commits_in_a_dry_run_see_the_checkout() {
    let ws = Ws::generated(&[]);
    identify(&ws);
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-q", "-m", "everything"]);
    // The test's own runbook lives in the workspace; keep it out of the commit.
    ws.write(".gitignore", "backups/\n*.log\nrb/\n");
    ws.git(&["commit", "-q", "-am", "ignore logs"]);
    ws.write(
        "rb/dry.rhai",
        &format!(
            "{HEAD}git::checkout(\"sl-v1.0~1\", \"src/sl/models/\");\n\
             print(fs::read(\"{TRADITIONAL}\"));\n\
             print(`dirty: ${{git::dirty()}}`);\n\
             fs::write(\"notes.txt\", \"new\");\n\
             fs::write(\"train.log\", \"ignored\");\n\
             let c = git::commit_all(\"Revert the SL models\");\n\
             print(`would commit: ${{c.files}}`);\n\
             git::tag(\"sl-v1.1\", \"SL Model Version 1.1\");\n\
             print(`tags: ${{git::tags()}}`);\n"
        ),
    );
    let state = git_state(&ws);
    let before = ws.snapshot();
    let out = ws.runbook(&["run", "rb/dry.rhai", "-n"]).run().success();
    before.assert_same(&ws.snapshot());
    assert_eq!(git_state(&ws), state);
    out.stdout_has("|     return 'ridge'\n")
        .stdout_has(&format!("| dirty: [\"{TRADITIONAL}\", \"{TREE_BASED}\"]"))
        .stdout_has(&format!(
            "| would commit: [\"notes.txt\", \"{TRADITIONAL}\", \"{TREE_BASED}\"]"
        ))
        .stdout_has("would commit 3 files: \"Revert the SL models\"")
        .stdout_has("would create tag `sl-v1.1` on the new commit: \"SL Model Version 1.1\"")
        .stdout_has("| tags: [\"sl-v1.0\", \"sl-v1.1\"]");
}

#[test]
fn version_control_commits_everything_and_tags_it() {
    let ws = Ws::generated(&[]);
    identify(&ws);
    let parent = ws.git(&["rev-parse", "HEAD"]);

    // The dry run says what it would commit and changes nothing.
    let state = git_state(&ws);
    let before = ws.snapshot();
    ws.runbook(&[
        "run",
        &version_control(),
        "-n",
        "--param",
        "tag=sl-v1.1",
        "--param",
        "tag_message=SL Model Version 1.1",
    ])
    .run()
    .success()
    .stdout_has("would commit ")
    .stdout_has("would create tag `sl-v1.1` on the new commit");
    before.assert_same(&ws.snapshot());
    assert_eq!(git_state(&ws), state);

    ws.runbook(&[
        "run",
        &version_control(),
        "--param",
        "tag=sl-v1.1",
        "--param",
        "tag_message=SL Model Version 1.1",
    ])
    .run()
    .success()
    .stdout_has("done: commit ")
    .stdout_has("files: \"Backup before SL model implementation\"");
    assert_eq!(
        ws.git(&["log", "-1", "--format=%s"]).trim(),
        "Backup before SL model implementation"
    );
    assert_eq!(ws.git(&["rev-parse", "HEAD~1"]), parent);
    // Clean afterwards, and the run's own logs and trash were not committed.
    assert_eq!(ws.git(&["status", "--porcelain"]), "");
    assert_eq!(ws.git(&["ls-files", ".runbook"]), "");
    assert!(ws.git(&["ls-files"]).contains("models/registry.json"));
    // An annotated tag on the new commit.
    assert_eq!(ws.git(&["cat-file", "-t", "sl-v1.1"]).trim(), "tag");
    assert_eq!(
        ws.git(&["rev-parse", "sl-v1.1^{commit}"]),
        ws.git(&["rev-parse", "HEAD"])
    );
    assert_eq!(
        ws.git(&["tag", "-l", "-n1", "sl-v1.1"]).trim(),
        "sl-v1.1         SL Model Version 1.1"
    );
    let log = ws.last_log();
    let commit = action(&log, "git.commit");
    assert_eq!(
        commit["result"]["commit"],
        ws.git(&["rev-parse", "HEAD"]).trim()
    );

    // Nothing left to commit: a clear error, and nothing happens.
    let head = ws.git(&["rev-parse", "HEAD"]);
    ws.runbook(&["run", &version_control()])
        .run()
        .code(1)
        .stderr_has("nothing to commit: the work tree is clean");
    assert_eq!(ws.git(&["rev-parse", "HEAD"]), head);
}

#[test]
fn an_existing_tag_is_refused_before_anything_is_committed() {
    let ws = Ws::generated(&[]);
    identify(&ws);
    let state = git_state(&ws);
    ws.runbook(&["run", &version_control(), "--param", "tag=sl-v1.0"])
        .run()
        .code(1)
        .stderr_has("tag `sl-v1.0` already exists");
    assert_eq!(git_state(&ws), state);
    ws.runbook(&["run", &version_control(), "--param", "tag=bad tag"])
        .run()
        .code(1)
        .stderr_has("is not a valid git tag name");
    assert_eq!(git_state(&ws), state);
}

#[test]
fn commit_with_nothing_staged_is_a_clear_error() {
    let ws = Ws::generated(&[]);
    identify(&ws);
    ws.write(
        "rb/commit.rhai",
        &format!("{HEAD}git::commit(\"only what is staged\");\n"),
    );
    let state = git_state(&ws);
    for dry in [true, false] {
        let mut args = vec!["run", "rb/commit.rhai"];
        if dry {
            args.push("-n");
        }
        ws.runbook(&args)
            .run()
            .code(1)
            .stderr_has("nothing to commit in")
            .stderr_has("nothing is staged; stage changes with `git::add` first");
    }
    assert_eq!(git_state(&ws), state);
}

#[test]
fn a_path_missing_from_the_revision_is_refused_and_nothing_changes() {
    let ws = Ws::generated(&[]);
    let before = ws.snapshot();
    ws.runbook(&[
        "run",
        &revert_code(),
        "--param",
        "paths=src/sl/models/traditional.py,src/sl/models/no_such_model.py",
    ])
    .run()
    .code(1)
    .stderr_has("`src/sl/models/no_such_model.py` does not exist in `HEAD~1`");
    before.assert_same(&ws.snapshot());
    ws.runbook(&["run", &revert_code(), "--param", "rev=no-such-rev"])
        .run()
        .code(1)
        .stderr_has("unknown revision `no-such-rev`");
    before.assert_same(&ws.snapshot());
}

#[test]
fn a_workspace_that_is_not_a_repository_is_a_clear_error() {
    let ws = Ws::empty();
    ws.write("src/sl/a.py", "a\n");
    let parent = ws.path().parent().unwrap().to_path_buf();
    ws.runbook(&["run", &revert_code()])
        // Never find a repository above the temporary directory, wherever it lives.
        .env("GIT_CEILING_DIRECTORIES", &parent)
        .run()
        .code(1)
        .stderr_has("is not inside a git work tree; run `git init` there");
    assert_eq!(ws.read("src/sl/a.py"), "a\n");
}

#[test]
fn git_paths_go_through_the_sandbox() {
    let ws = Ws::generated(&[]);
    let mut runs = Vec::new();
    for (name, call) in [
        ("up", "git::checkout(\"HEAD~1\", \"../outside\");"),
        ("abs", "git::checkout(\"HEAD~1\", [\"/etc\"]);"),
        ("dotgit", "git::add(\".git/config\");"),
        ("runbook", "git::checkout(\"HEAD~1\", \".runbook/runs\");"),
        (
            "caught",
            "try { git::checkout(\"HEAD~1\", \"../x\"); } catch (e) { print(\"caught\"); }",
        ),
    ] {
        ws.write(&format!("rb/{name}.rhai"), &format!("{HEAD}{call}\n"));
        runs.push(name);
    }
    let before = ws.snapshot();
    for name in runs {
        let out = ws
            .runbook(&["run", &format!("rb/{name}.rhai")])
            .run()
            .code(1)
            .stderr_has("refused path");
        assert!(
            !out.stdout.contains("| caught"),
            "{name}: sandbox error caught"
        );
    }
    before.assert_same(&ws.snapshot());
}

#[test]
fn reads_report_head_branch_log_tags_and_file_content() {
    let ws = Ws::generated(&[]);
    ws.write(
        "rb/read.rhai",
        &format!(
            "{HEAD}print(`head ${{git::head()}}`);\n\
             print(`branch ${{git::branch()}}`);\n\
             print(`clean ${{git::is_clean()}}`);\n\
             print(`sl dirty ${{git::dirty(\"src/sl\").len()}}`);\n\
             for c in git::log(5) {{ print(`log ${{c.subject}}`); }}\n\
             print(`tags ${{git::tags()}}`);\n\
             print(git::show(\"HEAD~1\", \"{TRADITIONAL}\"));\n\
             for c in git::checkout_changes(\"HEAD~1\", [\"src/sl/models\"]) {{ print(`change ${{c.status}} ${{c.path}} +${{c.added}} -${{c.deleted}}`); }}\n"
        ),
    );
    let head = ws.git(&["rev-parse", "HEAD"]);
    ws.runbook(&["run", "rb/read.rhai"])
        .run()
        .success()
        .stdout_has(&format!("| head {}", head.trim()))
        .stdout_has("| branch main")
        // The generated workspace leaves models/ and backup_timestamp.txt untracked.
        .stdout_has("| clean false")
        .stdout_has("| sl dirty 0")
        .stdout_has("| log Implemented SL model components\n")
        .stdout_has("| log SL pipeline before new model work\n")
        .stdout_has("| tags [\"sl-v1.0\"]")
        .stdout_has("|     return 'ridge'\n")
        .stdout_has(&format!("| change M {TRADITIONAL} +1 -1"));
}

#[test]
fn a_workspace_in_a_subdirectory_of_the_repository_works() {
    let top = Ws::empty();
    top.git(&["init", "-q", "-b", "main"]);
    identify(&top);
    top.write("ml/ws/src/sl/model.py", "old\n");
    top.write("other/keep.txt", "keep\n");
    top.git(&["add", "-A"]);
    top.git(&["commit", "-q", "-m", "first"]);
    top.write("ml/ws/src/sl/model.py", "new\n");
    top.git(&["commit", "-q", "-am", "second"]);
    top.write("other/keep.txt", "edited outside the workspace\n");

    top.runbook(&["run", &revert_code(), "-w", "ml/ws"])
        .run()
        .success()
        .stdout_has("check out `src/sl/` at `HEAD~1` (1 file: `src/sl/model.py` +1 -1)");
    assert_eq!(top.read("ml/ws/src/sl/model.py"), "old\n");
    // Committing everything stays inside the workspace.
    top.runbook(&[
        "run",
        &version_control(),
        "-w",
        "ml/ws",
        "--param",
        "message=Revert the model",
    ])
    .run()
    .success()
    .stdout_has("commit 1 file: \"Revert the model\"");
    assert_eq!(
        top.git(&["show", "--name-only", "--format=", "HEAD"]),
        "ml/ws/src/sl/model.py\n"
    );
    assert_eq!(top.git(&["status", "--porcelain"]), " M other/keep.txt\n");
}

#[test]
fn the_demo_workspace_reverts_and_commits_with_its_own_runbooks() {
    let ws = Ws::demo();
    identify(&ws);
    ws.runbook(&["run", "runbooks/revert_code.rhai"])
        .run()
        .success();
    assert_eq!(ws.read(TRADITIONAL), OLD_TRADITIONAL);
    ws.runbook(&["run", "runbooks/version_control.rhai", "-p", "tag=sl-v1.1"])
        .run()
        .success();
    assert_eq!(ws.git(&["status", "--porcelain"]), "");
    assert!(ws.git(&["tag"]).contains("sl-v1.1"));
}

#[test]
fn docs_list_the_git_and_config_primitives_with_examples() {
    let ws = Ws::empty();
    let docs = ws.runbook(&["docs"]).run().success();
    for needle in [
        "## `git::`",
        "### `git::checkout(rev: &str, paths: Dynamic) -> Map`",
        "### `git::checkout_changes(",
        "### `git::commit_all(",
        "### `git::tag(",
        "### `git::show(",
        "## `config::`",
        "### `config::read_yaml(",
        "### `config::write_yaml(",
        "### `config::restore(",
        "### `config::diff(",
        "### `config::check_training_config(",
        "git::checkout(\"HEAD~1\", \"src/sl/\");",
    ] {
        assert!(docs.stdout.contains(needle), "docs lack {needle}");
    }
}

/// The work tree, the index and `HEAD` as git shows them: what an undo must give back.
fn tree_and_index(ws: &Ws) -> (std::collections::BTreeMap<String, Vec<u8>>, [String; 4]) {
    (
        ws.files(),
        [
            ws.git(&["rev-parse", "HEAD"]),
            ws.git(&[
                "--no-optional-locks",
                "status",
                "--porcelain",
                "--untracked-files=all",
            ]),
            ws.git(&["diff", "--binary"]),
            ws.git(&["diff", "--cached", "--binary"]),
        ],
    )
}

#[test]
fn undo_takes_back_a_checkout_with_unstaged_staged_and_untracked_work() {
    let ws = Ws::generated(&[]);
    // Unstaged work in one file; staged work in the other, edited again after staging;
    // an untracked file the revision does not have.
    ws.write(
        TRADITIONAL,
        "def fit(X, y):\n    return 'ridge-v3'  # unsaved\n",
    );
    ws.write(TREE_BASED, "def fit(X, y):\n    return 'lgbm'  # staged\n");
    ws.git(&["add", TREE_BASED]);
    ws.write(
        TREE_BASED,
        "def fit(X, y):\n    return 'lgbm-2'  # edited after staging\n",
    );
    ws.write("src/sl/models/new_idea.py", "idea = 1\n");
    let before = tree_and_index(&ws);

    ws.runbook(&["run", &revert_code(), "-q"]).run().success();
    assert_eq!(ws.read(TRADITIONAL), OLD_TRADITIONAL);
    assert_eq!(ws.read(TREE_BASED), OLD_TREE_BASED);
    let run_id = ws.last_log()[0]["run_id"].as_str().unwrap().to_string();
    let after = ws.snapshot();

    // A dry undo says what it would do and changes nothing.
    ws.runbook(&["undo", &run_id, "--dry-run"])
        .run()
        .success()
        .stdout_has(&format!(
            "put back `{TRADITIONAL}` as it was before run {run_id}"
        ))
        .stdout_has("index entries of 2 path(s) back to");
    after.assert_same(&ws.snapshot());

    ws.runbook(&["undo", &run_id, "-q"]).run().success();
    assert_eq!(tree_and_index(&ws), before);
    // What the checkout wrote is kept in the undo's trash, not lost.
    let undo_log = ws.last_log();
    assert!(
        undo_log
            .iter()
            .any(|e| e["event"] == "action" && e["op"] == "undo.git_index"),
        "{undo_log:?}"
    );
}

#[test]
fn undo_of_a_checkout_refuses_a_file_edited_since_and_a_commit_it_cannot_take_back() {
    let ws = Ws::generated(&[]);
    identify(&ws);
    let before = tree_and_index(&ws);
    ws.runbook(&["run", &revert_code(), "-q"]).run().success();
    let run_id = ws.last_log()[0]["run_id"].as_str().unwrap().to_string();
    // Someone edits a restored file: undo names it and changes nothing.
    ws.write(TRADITIONAL, "def fit(X, y):\n    return 'hotfix'\n");
    let edited = ws.snapshot();
    ws.runbook(&["undo", &run_id])
        .run()
        .code(1)
        .stderr_has("the workspace changed since that run")
        .stderr_has(TRADITIONAL);
    edited.assert_same(&ws.snapshot());
    // With the edit gone again, the undo goes through.
    ws.write(TRADITIONAL, OLD_TRADITIONAL);
    ws.runbook(&["undo", &run_id, "-q"]).run().success();
    assert_eq!(tree_and_index(&ws), before);

    // A run that committed cannot be undone; nothing changes.
    ws.write("notes.txt", "x\n");
    ws.runbook(&["run", &version_control(), "-q", "-p", "message=m"])
        .run()
        .success();
    let committed = ws.last_log()[0]["run_id"].as_str().unwrap().to_string();
    let snap = ws.snapshot();
    ws.runbook(&["undo", &committed])
        .run()
        .code(1)
        .stderr_has("`git_commit`")
        .stderr_has("git revert");
    snap.assert_same(&ws.snapshot());
}
