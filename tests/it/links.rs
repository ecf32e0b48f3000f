//! The door is also the sandbox, and it holds against the file system itself: links a
//! careless or hostile script (or an earlier accident) left in a workspace, links planted
//! where runbook writes its own files, a directory flipped to a link while a run writes
//! through it, hard links to files outside. Every case is refused (exit 1) or kept inside,
//! and nothing outside the workspace is created or changed.

use crate::support::*;
use std::os::unix::fs::symlink;
use std::path::Path;

/// A directory outside the workspace with one file, and what it holds now.
struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Outside {
        let dir = tempfile::Builder::new()
            .prefix("rb-outside-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("secret.txt"), "secret\n").unwrap();
        Outside { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self) -> std::path::PathBuf {
        self.dir.path().join("secret.txt")
    }

    /// Nothing but `secret.txt`, with its original content.
    fn assert_untouched(&self, case: &str) {
        let names: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["secret.txt"],
            "{case}: something was created outside"
        );
        assert_eq!(
            std::fs::read_to_string(self.file()).unwrap(),
            "secret\n",
            "{case}: the file outside changed"
        );
    }
}

fn script(ws: &Ws, dir: &tempfile::TempDir, name: &str, body: &str) -> String {
    let _ = ws;
    let path = dir.path().join(format!("{name}.rhai"));
    std::fs::write(
        &path,
        format!("//! name: {name}\n//! version: 1.0.0\n//! description: link case\n\n{body}"),
    )
    .unwrap();
    path.display().to_string()
}

/// A snapshot of `.git/` alone.
fn git_dir(ws: &Ws) -> std::collections::BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(ws.join(".git"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().display().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn links_to_the_workspace_itself_or_to_git_cannot_reach_git_or_runbook() {
    let ws = Ws::demo();
    symlink(".", ws.join("self")).unwrap();
    symlink(".git", ws.join("dotgit")).unwrap();
    symlink(".runbook", ws.join("dotrunbook")).unwrap();
    // A first run makes `.runbook/` (its log, its lock).
    ws.runbook(&["run", &shipped("quick_verification.rhai")])
        .run()
        .success();
    let git_before = git_dir(&ws);
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        (
            "write_git_config",
            r#"fs::write("self/.git/config", "[core]\n");"#,
        ),
        ("remove_git", r#"fs::remove("self/.git");"#),
        ("move_git", r#"fs::move("self/.git", "gone");"#),
        (
            "forge_a_run_log",
            r#"fs::write("self/.runbook/runs/forged.jsonl", "{}");"#,
        ),
        ("remove_the_lock", r#"fs::remove("self/.runbook/lock");"#),
        (
            "write_through_dotgit",
            r#"fs::write("dotgit/config", "[core]\n");"#,
        ),
        (
            "copy_into_dotgit",
            r#"fs::copy("models/registry.json", "dotgit/registry.json");"#,
        ),
        ("remove_below_dotgit", r#"fs::remove("dotgit/HEAD");"#),
        (
            "write_through_dotrunbook",
            r#"fs::write("dotrunbook/trash/x", "x");"#,
        ),
        (
            "caught_with_try",
            r##"try { fs::write("self/.git/hooks/pre-commit", "#!/bin/sh\n"); } catch (e) { print("caught"); }"##,
        ),
    ] {
        let path = script(&ws, &dir, name, body);
        for dry in [false, true] {
            let mut cmd = ws.runbook(&["run", &path]);
            if dry {
                cmd = cmd.arg("--dry-run");
            }
            cmd.run().code(1).stderr_has("refused path");
        }
        assert_eq!(git_dir(&ws), git_before, "{name} changed .git");
        assert!(ws.exists(".runbook/lock"), "{name}");
        assert!(!ws.exists(".runbook/runs/forged.jsonl"), "{name}");
    }
    // Removing the link itself is fine: it names the link, not what it points at.
    let path = script(&ws, &dir, "remove_the_link", r#"fs::remove("dotgit");"#);
    ws.runbook(&["run", &path]).run().success();
    assert!(!ws.join("dotgit").exists() && ws.join(".git").is_dir());
}

#[test]
fn runbook_refuses_to_start_when_its_own_files_are_links() {
    for planted in [
        ".runbook",
        ".runbook/lock",
        ".runbook/trash",
        ".runbook/runs",
        ".runbook/.gitignore",
        ".runbook/tmp",
    ] {
        let ws = Ws::demo();
        let outside = Outside::new();
        if planted != ".runbook" {
            std::fs::create_dir_all(ws.join(".runbook")).unwrap();
        }
        let target = if planted.ends_with("lock") || planted.ends_with(".gitignore") {
            outside.file()
        } else {
            outside.path().to_path_buf()
        };
        symlink(&target, ws.join(planted)).unwrap();
        for args in [vec!["--dry-run"], vec![]] {
            let mut cmd = ws.runbook(&["run", &shipped("full_rollback.rhai")]);
            for a in &args {
                cmd = cmd.arg(a);
            }
            cmd.run().code(1).stderr_has("it is a symlink");
        }
        ws.runbook(&["trash", "list"])
            .run()
            .code(1)
            .stderr_has("it is a symlink");
        outside.assert_untouched(planted);
        assert_eq!(
            ws.production("sl_forecaster").as_deref(),
            Some("v5"),
            "{planted}"
        );
    }
}

#[test]
fn a_link_planted_at_a_temp_file_name_is_never_written_through() {
    let ws = Ws::demo();
    let outside = Outside::new();
    // The old temp name was `.registry.json.runbook-<pid>.tmp`: plant it for the next pids.
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .map(|t| t.trim().parse().unwrap_or(1000))
        .unwrap_or(1000);
    for pid in last..last + 400 {
        for name in ["registry.json", "registry_history.jsonl"] {
            let _ = symlink(
                outside.file(),
                ws.join(&format!("models/.{name}.runbook-{pid}.tmp")),
            );
        }
    }
    ws.runbook(&["run", &shipped("full_rollback.rhai")])
        .run()
        .success();
    outside.assert_untouched("temp file link");
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v4"));
}

#[test]
fn a_directory_flipped_to_a_link_mid_run_never_puts_a_file_outside() {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let ws = Ws::empty();
    let outside = Outside::new();
    std::fs::create_dir_all(ws.join("dir/sub")).unwrap();
    symlink(outside.path(), ws.join("dir/alt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        &ws,
        &dir,
        "writes_through_sub",
        r#"for i in 0..40 { fs::write(`dir/sub/f${i}.txt`, "x"); }"#,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let (a, b) = (ws.join("dir/sub"), ws.join("dir/alt"));
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Swap the real directory and the link atomically, over and over.
                let _ = renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE);
                flips += 1;
            }
            flips
        })
    };
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..25 {
        let done = ws.runbook(&["run", &path, "-q"]).run();
        *codes.entry(done.code).or_insert(0) += 1;
        assert!(
            done.code == 0 || done.code == 1,
            "exit {}: {}",
            done.code,
            done.stderr
        );
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    assert!(flips > 100, "the race did not run ({flips} flips)");
    outside.assert_untouched(&format!("flip race ({flips} flips, exits {codes:?})"));
}

#[test]
fn appending_through_a_hard_link_to_a_file_outside_is_refused() {
    let ws = Ws::demo();
    let outside = Outside::new();
    std::fs::remove_file(ws.join("models/registry_history.jsonl")).ok();
    std::fs::hard_link(outside.file(), ws.join("models/registry_history.jsonl")).unwrap();
    let registry = ws.read("models/registry.json");
    ws.runbook(&["run", &shipped("full_rollback.rhai")])
        .run()
        .code(1)
        .stderr_has("hard links");
    outside.assert_untouched("hard-linked history");
    // Refused before the registry was written: the history never misses a change.
    assert_eq!(ws.read("models/registry.json"), registry);
}

#[test]
fn trash_restore_through_a_linked_directory_lands_nowhere_outside() {
    let ws = Ws::demo();
    let outside = Outside::new();
    ws.runbook(&["run", &shipped("full_rollback.rhai")])
        .run()
        .success();
    let run_id = ws.last_log()[0]["run_id"].as_str().unwrap().to_string();
    std::fs::rename(ws.join("models"), ws.join("models_real")).unwrap();
    symlink(outside.path(), ws.join("models")).unwrap();
    let done = ws
        .runbook(&["trash", "restore", &run_id, "models/sl_model_v5.json"])
        .run();
    assert_ne!(done.code, 0, "{}", done.stdout);
    assert!(
        done.stderr.contains("refused path") || done.stderr.contains("symlink"),
        "{}",
        done.stderr
    );
    outside.assert_untouched("restore through a link");
    assert!(ws.exists(&format!(".runbook/trash/{run_id}/models/sl_model_v5.json")));
}

#[test]
fn globs_and_reads_do_not_list_or_read_files_outside_through_a_link() {
    let ws = Ws::empty();
    let outside = Outside::new();
    symlink(outside.path(), ws.join("out")).unwrap();
    std::fs::create_dir_all(ws.join("inside")).unwrap();
    std::fs::write(ws.join("inside/mine.txt"), "mine").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        &ws,
        &dir,
        "globs",
        r#"fs::write("obs.txt", `${fs::glob("out/*")} ${fs::glob("**/secret.txt")} ${fs::glob("**")}`);"#,
    );
    ws.runbook(&["run", &path]).run().success();
    let seen = ws.read("obs.txt");
    assert!(!seen.contains("secret"), "{seen}");
    assert!(seen.contains("inside/mine.txt"), "{seen}");
    let path = script(&ws, &dir, "read_out", r#"fs::read("out/secret.txt");"#);
    ws.runbook(&["run", &path])
        .run()
        .code(1)
        .stderr_has("points outside the workspace");
    outside.assert_untouched("globs");
}
