//! The dry run is a promise, checked differentially: every script here runs for real on one
//! copy of a generated workspace and as a dry run on another, and then
//!
//! - the dry run's final state of every file (`--dry-run-state`: what it would write, what
//!   it would remove) applied to the starting files equals the real run's disk;
//! - the ordered journal actions (op and args) are the same;
//! - both exit alike;
//! - the dry-run copy is byte for byte as it was, `.git` (index, refs, objects) included,
//!   with the same modes and modification times.
//!
//! Run ids, timestamps, the run's `YYYYmmdd_HHMMSS` stamp and the shas of commits the run
//! makes differ between two runs by nature; they are normalised before comparing. Scripts
//! write what they observe into `obs/`, so that a read that answered differently in the two
//! modes shows up as a file that differs.

use crate::support::*;
use regex::Regex;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

pub struct Normaliser {
    patterns: Vec<(Regex, &'static str)>,
    known_commits: BTreeSet<String>,
}

impl Normaliser {
    pub fn new(base: &Ws) -> Normaliser {
        let known_commits = base
            .git(&["rev-list", "--all"])
            .lines()
            .map(str::to_string)
            .collect();
        Normaliser {
            patterns: vec![
                (Regex::new(r"\d{8}T\d{6}Z-[0-9a-f]{4}").unwrap(), "RUN"),
                (
                    Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
                        .unwrap(),
                    "TIME",
                ),
                (Regex::new(r"\d{8}_\d{6}").unwrap(), "STAMP"),
                (Regex::new(r"planned:\d+").unwrap(), "NEWCOMMIT"),
            ],
            known_commits,
        }
    }

    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (re, to) in &self.patterns {
            out = re.replace_all(&out, *to).into_owned();
        }
        let sha = Regex::new(r"\b[0-9a-f]{40}\b").unwrap();
        sha.replace_all(&out, |c: &regex::Captures| {
            if self.known_commits.contains(&c[0]) {
                c[0].to_string()
            } else {
                "NEWCOMMIT".to_string()
            }
        })
        .into_owned()
    }

    pub fn bytes(&self, b: &[u8]) -> String {
        match std::str::from_utf8(b) {
            Ok(t) => self.text(t),
            Err(_) => format!("sha256:{}", sha256(b)),
        }
    }

    fn json(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.json(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (self.text(k), self.json(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The generated workspace every case starts from: make_workspace.py's layout, a git
/// history, and a local git identity so commits work on any machine.
fn base() -> Ws {
    let ws = Ws::generated(&[]);
    ws.git_identity();
    ws
}

/// Run `runbook` (a file path) with `params` for real on one copy of `base` and dry on
/// another, and require that both agree. Returns the real run's exit code.
fn differential(name: &str, runbook: &str, params: &[&str]) -> i32 {
    differential_from(base(), name, runbook, params)
}

/// [`differential`] from a workspace prepared by the caller.
fn differential_from(base: Ws, name: &str, runbook: &str, params: &[&str]) -> i32 {
    let norm = Normaliser::new(&base);
    let real = base.copy();
    let dry = base.copy();
    let state_dir = tempfile::tempdir().unwrap();
    let state_file = state_dir.path().join("state.json");

    let mut real_cmd = real.runbook(&["run", runbook, "-q"]);
    let mut dry_cmd = dry
        .runbook(&["run", runbook, "-q", "--dry-run", "--dry-run-state"])
        .arg(&state_file);
    for p in params {
        real_cmd = real_cmd.arg("-p").arg(p);
        dry_cmd = dry_cmd.arg("-p").arg(p);
    }
    let before_dry = dry.snapshot();
    let starting = dry.files();
    let real_out = real_cmd.run();
    let dry_out = dry_cmd.run();
    assert_eq!(
        real_out.code, dry_out.code,
        "{name}: real and dry exit differently\nreal: {}\ndry: {}",
        real_out.stderr, dry_out.stderr
    );

    // The dry run changed nothing outside `.runbook/`, `.git/` included.
    before_dry.assert_same(&dry.snapshot());

    // What the dry run says the files would be, against what the real run left.
    let state: serde_json::Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(&state_file)
            .unwrap_or_else(|e| panic!("{name}: no dry-run state ({e}): {}", dry_out.stderr)),
    )
    .unwrap();
    let mut predicted: BTreeMap<String, String> = starting
        .iter()
        .map(|(p, b)| (norm.text(p), norm.bytes(b)))
        .collect();
    for (path, v) in &state {
        let path = norm.text(path);
        match v {
            Value::Null => {
                predicted.remove(&path);
            }
            v if v.get("text").is_some() => {
                predicted.insert(path, norm.text(v["text"].as_str().unwrap()));
            }
            v => {
                predicted.insert(path, format!("sha256:{}", v["sha256"].as_str().unwrap()));
            }
        }
    }
    let actual: BTreeMap<String, String> = real
        .files()
        .iter()
        .map(|(p, b)| {
            let text = norm.bytes(b);
            // Large or binary files are compared by hash, as the state gives them.
            let shown = if b.len() > 1 << 20 {
                format!("sha256:{}", sha256(b))
            } else {
                text
            };
            (norm.text(p), shown)
        })
        .collect();
    let mut diffs = Vec::new();
    for path in predicted
        .keys()
        .chain(actual.keys())
        .collect::<BTreeSet<_>>()
    {
        match (predicted.get(path), actual.get(path)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => diffs.push(format!("{path}: dry {a:?} != real {b:?}")),
            (Some(_), None) => diffs.push(format!("{path}: only in the dry run's view")),
            (None, Some(_)) => diffs.push(format!("{path}: only on the real disk")),
            (None, None) => {}
        }
    }
    assert!(
        diffs.is_empty(),
        "{name}: the dry run's state differs from the real run's:\n{}\nreal stderr: {}\ndry stderr: {}",
        diffs.join("\n"),
        real_out.stderr,
        dry_out.stderr
    );

    // The same effects, in the same order, with the same arguments.
    let ops = |ws: &Ws| -> Vec<Value> {
        ws.last_log()
            .iter()
            .filter(|e| e["event"] == "action")
            .map(|e| {
                norm.json(&serde_json::json!({"op": e["op"], "kind": e["kind"], "args": e["args"]}))
            })
            .collect()
    };
    let (real_ops, dry_ops) = (ops(&real), ops(&dry));
    assert_eq!(real_ops, dry_ops, "{name}: the journals differ");
    assert!(
        real.last_log().iter().any(|e| e["event"] == "run_end"),
        "{name}: no run_end"
    );
    real_out.code
}

/// Write `body` (with a header) as a runbook in its own directory; returns its path.
fn script(dir: &tempfile::TempDir, name: &str, body: &str) -> String {
    let path = dir.path().join(format!("{name}.rhai"));
    std::fs::write(
        &path,
        format!(
            "//! name: {name}\n//! version: 1.0.0\n//! description: differential case\n\n{body}"
        ),
    )
    .unwrap();
    path.display().to_string()
}

const MIXED: &[(&str, &str)] = &[
    (
        "fs_remove_then_git_checkout",
        r#"
step "remove, then restore from git" {
    fs::remove("src/sl/models/traditional.py");
    git::checkout("HEAD", "src/sl/");
    fs::write("obs/exists.txt", `${fs::exists("src/sl/models/traditional.py")}`);
    fs::write("obs/text.txt", fs::read("src/sl/models/traditional.py"));
}
"#,
    ),
    (
        "fs_write_then_git_checkout",
        r#"
fs::write("src/sl/models/traditional.py", "edited\n");
let r = git::checkout("HEAD", "src/sl/models/traditional.py");
fs::write("obs/text.txt", fs::read("src/sl/models/traditional.py"));
fs::write("obs/saved.txt", `${r.saved.len()} ${r.files}`);
"#,
    ),
    (
        "git_checkout_then_fs",
        r#"
let r = git::checkout("HEAD~1", "src/sl/");
fs::write("obs/files.txt", `${r.files}`);
for f in r.files { fs::write(`obs/len/${f}`, `${fs::read(f).len()}`); }
fs::remove("src/sl/__init__.py");
fs::write("obs/dirty.txt", `${git::dirty("src/sl/")}`);
"#,
    ),
    (
        "registry_then_fs",
        r#"
let prod = registry::production("sl_forecaster");
let prev = registry::previous("sl_forecaster");
registry::set_production("sl_forecaster", prev.version, "archived");
registry::remove("sl_forecaster", prod.version);
for p in fs::glob(`models/sl_model_${prod.version}.*`) { fs::remove(p); }
for p in fs::glob(`models/sl_model_${prod.version}_*`) { fs::remove(p); }
fs::write("obs/check.txt", `${registry::check()}`);
fs::write("obs/prod.txt", registry::production("sl_forecaster").version);
fs::write("obs/versions.txt", `${registry::versions("sl_forecaster").map(|e| e.version + ":" + e.status)}`);
"#,
    ),
    (
        "registry_changes_batched_in_a_step",
        r#"
step "two changes in a row, one write" {
    let prod = registry::production("sl_forecaster");
    let prev = registry::previous("sl_forecaster");
    registry::set_production("sl_forecaster", prev.version, "archived");
    registry::remove("sl_forecaster", prod.version);
    fs::write("obs/staged.txt", `${registry::versions("sl_forecaster").map(|e| e.version + ":" + e.status)}`);
    fs::write("obs/file.txt", fs::read("models/registry.json"));
    registry::archive("sl_forecaster", "v1");
}
step "a read between two changes" {
    registry::register(#{name: "sl_forecaster", version: "v90", model_path: "models/sl_model_v1.json"});
    fs::write("obs/between.txt", `${fs::exists("models/registry_history.jsonl")} ${fs::read("models/registry.json").len()}`);
    registry::archive("sl_forecaster", "v90");
}
registry::remove("sl_forecaster", "v90");
fs::write("obs/history.txt", fs::read("models/registry_history.jsonl"));
"#,
    ),
    (
        "config_write_then_git_checkout",
        r#"
let cfg = config::read_yaml("configs/sl/training_configs.yaml");
cfg.extra_key = "added by the run";
config::write_yaml("configs/sl/training_configs.yaml", cfg);
fs::write("obs/dirty.txt", `${git::dirty()}`);
let r = git::checkout("HEAD", "configs/sl/");
fs::write("obs/after.txt", fs::read("configs/sl/training_configs.yaml"));
fs::write("obs/saved.txt", `${r.saved.len()}`);
"#,
    ),
    (
        "backup_then_remove",
        r#"
let b = fs::backup("models");
let r = fs::backup("models/registry.json");
fs::remove("models/sl_model_v1.json");
fs::write("obs/backup.txt", `${b} ${r} ${fs::glob(b + "/*")}`);
fs::write("obs/gone.txt", `${fs::exists("models/sl_model_v1.json")} ${fs::exists(b + "/sl_model_v1.json")}`);
"#,
    ),
    (
        "nested_steps",
        r#"
step "outer" {
    step "inner one" {
        fs::write("x/1.txt", "1");
        step "innermost" { fs::remove("x/1.txt"); }
    }
    step "inner two" { fs::write("x/2.txt", "2"); fs::mkdir("x/empty"); }
}
fs::write("obs/x.txt", `${fs::glob("x/*")} ${fs::is_dir("x/empty")}`);
"#,
    ),
    (
        "try_catch_around_a_failing_primitive",
        r#"
let prod = registry::production("sl_forecaster");
try { registry::archive("sl_forecaster", prod.version); } catch (e) { fs::write("obs/archive.txt", "refused"); }
try { fs::read("no/such/file.txt"); } catch (e) { fs::write("obs/read.txt", "missing"); }
try { fs::copy("models/registry.json", "models/registry.json"); } catch (e) { fs::write("obs/copy.txt", "refused"); }
fs::write("obs/after.txt", registry::production("sl_forecaster").version);
"#,
    ),
    (
        "glob_double_star",
        r#"
fs::write("d/a/1.txt", "1");
fs::write("d/b/2.txt", "2");
fs::write("d/b/c/3.txt", "3");
fs::remove("d/a/1.txt");
fs::write("obs/glob.txt", `${fs::glob("d/**")}`);
fs::write("obs/py.txt", `${fs::glob("src/**/*.py")}`);
fs::remove("src/sl/models");
fs::write("obs/py2.txt", `${fs::glob("src/**")}`);
"#,
    ),
    (
        "move_creates_directories",
        r#"
fs::move("models/sl_model_v1.json", "archive/2026/sl_model_v1.json");
fs::write("obs/m.txt", `${fs::is_dir("archive/2026")} ${fs::glob("archive/*")} ${fs::exists("models/sl_model_v1.json")}`);
fs::write("obs/walk.txt", `${fs::glob("archive/**")}`);
"#,
    ),
    (
        "directory_emptied_by_removals",
        r#"
fs::write("e/1.txt", "1");
fs::write("e/2.txt", "2");
for f in fs::glob("e/*") { fs::remove(f); }
for f in fs::glob("src/sl/persistence/*") { fs::remove(f); }
fs::write("obs/e.txt", `${fs::exists("e")} ${fs::is_dir("e")} ${fs::glob("e/*")}`);
fs::write("obs/p.txt", `${fs::exists("src/sl/persistence")} ${fs::glob("src/sl/persistence/*")}`);
"#,
    ),
    (
        "file_removed_twice",
        r#"
fs::write("t.txt", "1");
let first = fs::remove("t.txt");
fs::write("t.txt", "2");
let second = fs::remove("t.txt");
fs::write("models/registry_copy.json", fs::read("models/registry.json"));
fs::write("models/registry_copy.json", "[]");
fs::write("obs/t.txt", `${first} ${second}`);
"#,
    ),
    (
        "git_dirty_and_head_after_a_planned_commit",
        r#"
fs::write("src/sl/new_module.py", "x = 1\n");
git::add("src/sl/");
git::commit("Add a module");
fs::write("obs/dirty.txt", `${git::dirty()}`);
fs::write("obs/show.txt", git::show("HEAD", "src/sl/new_module.py"));
fs::write("obs/prev.txt", `${git::show("HEAD~1", "src/sl/models/traditional.py").len()}`);
fs::write("obs/log.txt", `${git::log(3).map(|c| c.subject)}`);
let ch = git::checkout_changes("HEAD~1", "src/sl/");
fs::write("obs/changes.txt", `${ch.map(|c| c.path + c.status)}`);
"#,
    ),
    (
        "commit_all_then_tag",
        r#"
fs::write("notes.md", "release notes\n");
git::commit_all("Everything");
git::tag("sl-v9", "SL version 9");
fs::write("obs/tags.txt", `${git::tags()}`);
fs::write("obs/clean.txt", `${git::is_clean()} ${git::dirty()}`);
"#,
    ),
    (
        "copy_tree_then_edit_the_copy",
        r#"
fs::copy("src/sl", "src_copy");
fs::write("src_copy/models/traditional.py", "changed\n");
fs::write("obs/c.txt", `${fs::glob("src_copy/**")}`);
fs::write("obs/orig.txt", fs::read("src/sl/models/traditional.py"));
"#,
    ),
    (
        "registry_register_promote_check",
        r#"
registry::register(#{ name: "sl_forecaster", version: "v9", model_path: "models/sl_model_v1.json" });
registry::set_production("sl_forecaster", "v9");
fs::write("obs/r.txt", `${registry::previous("sl_forecaster").version} ${registry::check()}`);
fs::write("obs/h.txt", `${fs::exists("models/registry_history.jsonl")}`);
"#,
    ),
    (
        "config_restore_and_newer",
        r#"
config::restore("configs/sl/training_configs.yaml.backup", "configs/sl/training_configs.yaml");
fs::write("models/new_checkpoint.pkl", "ckpt");
fs::write("obs/newer.txt", `${fs::newer("models", "backup_timestamp.txt")}`);
fs::write("obs/cfg.txt", fs::read("configs/sl/training_configs.yaml"));
"#,
    ),
    (
        "git_checkout_file_then_remove_then_dirty",
        r#"
git::checkout("HEAD~1", ["src/sl/models/tree_based.py"]);
fs::remove("src/sl/models/tree_based.py");
fs::write("obs/dirty.txt", `${git::dirty()}`);
git::checkout("HEAD", "src/sl/models/");
fs::write("obs/dirty2.txt", `${git::dirty("src/")}`);
"#,
    ),
    (
        "notify_to_a_file_and_time",
        r#"
fs::write("runbook.yaml", "notify:\n  - {type: file, path: notes/notify.log}\n  - {type: print}\n");
let r = notify::send("rolling back", #{ model: "sl_forecaster" });
// `sent` differs by nature: a dry run sends nothing.
fs::write("obs/sent.txt", `${r.failed.len()} ${notify::sinks()}`);
fs::write("obs/log.txt", `${fs::exists("notes/notify.log")} ${fs::size("notes").files}`);
fs::write("obs/time.txt", `${time::duration("1h30m")} ${time::age("backup_timestamp.txt") > 0}`);
"#,
    ),
];

#[test]
fn mixed_scripts_agree_real_and_dry() {
    assert!(MIXED.len() >= 15);
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in MIXED {
        let path = script(&dir, name, body);
        let code = differential(name, &path, &[]);
        assert_eq!(code, 0, "{name} failed");
    }
}

#[test]
fn shipped_runbooks_agree_real_and_dry() {
    for (runbook, params) in [
        ("full_rollback.rhai", &[][..]),
        // The generated workspace's production version is the bad one: it verifies only
        // against a generous threshold.
        ("verify_rollback.rhai", &["threshold=100"][..]),
        ("quick_verification.rhai", &[][..]),
        ("restore_config.rhai", &[][..]),
        ("revert_code.rhai", &[][..]),
        ("version_control.rhai", &["tag=sl-v1.1"][..]),
        ("create_backup.rhai", &[][..]),
        ("revert_model.rhai", &["from=v3"][..]),
        ("rollback_checklist.rhai", &["from=v3"][..]),
    ] {
        let code = differential(runbook, &shipped(runbook), params);
        assert_eq!(code, 0, "{runbook} failed");
    }
}

#[test]
fn a_failing_script_agrees_up_to_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        &dir,
        "fails_midway",
        r#"
fs::write("a.txt", "a");
registry::archive("sl_forecaster", registry::production("sl_forecaster").version);
fs::write("b.txt", "b");
"#,
    );
    assert_eq!(differential("fails_midway", &path, &[]), 1);
}

/// The runbooks that follow a revert (§3.2, §5) start from a workspace where v3 is archived
/// and v2 is production, as `revert_model` leaves it.
#[test]
fn runbooks_after_a_revert_agree_real_and_dry() {
    for (runbook, params) in [
        ("remove_model_files.rhai", &["version=v3"][..]),
        ("post_rollback_checks.rhai", &[][..]),
    ] {
        let ws = base();
        ws.runbook(&["run", &shipped("revert_model.rhai"), "-q"])
            .run()
            .success();
        let code = differential_from(ws, runbook, &shipped(runbook), params);
        assert_eq!(code, 0, "{runbook} failed");
    }
}
