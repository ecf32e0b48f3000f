//! Never make an incident worse: a full rollback killed with SIGKILL at every point where
//! the door is between two steps of an effect (the `RUNBOOK_CRASH_AT` hook), and at random
//! moments, on a large generated workspace. After each kill:
//!
//! - the registry is whole (the old one or the new one), and every file the run removed is
//!   in the trash;
//! - the next real run refuses, naming the run and the ways on, and changes nothing;
//! - `runbook resume` finishes the rollback to exactly the state an uninterrupted run gives,
//!   and leaves no temp file behind;
//! - `runbook undo` (on another copy) returns the workspace to the state before the run.

use crate::differential::Normaliser;
use crate::support::*;
use std::collections::BTreeMap;

/// A workspace's files, normalised (run ids, times, stamps). Files with the same bytes as
/// in `like` are taken from it as they are, so only what differs is normalised again.
fn normalised(norm: &Normaliser, ws: &Ws) -> BTreeMap<String, String> {
    ws.files()
        .iter()
        .map(|(p, b)| (norm.text(p), norm.bytes(b)))
        .collect()
}

struct Known {
    raw: BTreeMap<String, Vec<u8>>,
    normal: BTreeMap<String, String>,
}

impl Known {
    fn of(norm: &Normaliser, ws: &Ws) -> Known {
        Known {
            raw: ws.files(),
            normal: normalised(norm, ws),
        }
    }

    /// `ws`'s files, normalised, reusing what is byte-identical to these.
    fn compare(&self, case: &str, norm: &Normaliser, ws: &Ws) {
        let got: BTreeMap<String, String> = ws
            .files()
            .into_iter()
            .map(|(p, b)| {
                let n = match self.raw.get(&p) {
                    Some(known) if *known == b => self.normal[&norm.text(&p)].clone(),
                    _ => norm.bytes(&b),
                };
                (norm.text(&p), n)
            })
            .collect();
        assert_same_files(case, &self.normal, &got);
    }
}

fn assert_same_files(case: &str, want: &BTreeMap<String, String>, got: &BTreeMap<String, String>) {
    let mut diffs = Vec::new();
    for path in want
        .keys()
        .chain(got.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (want.get(path), got.get(path)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                let at = a
                    .bytes()
                    .zip(b.bytes())
                    .position(|(x, y)| x != y)
                    .unwrap_or(0);
                let start = at.saturating_sub(80);
                let cut = |t: &str| {
                    t.get(start..(at + 80).min(t.len()))
                        .unwrap_or("")
                        .to_string()
                };
                diffs.push(format!(
                    "{path} differs at byte {at}: want …{}… got …{}…",
                    cut(a),
                    cut(b)
                ))
            }
            (Some(_), None) => diffs.push(format!("{path} missing")),
            (None, Some(_)) => diffs.push(format!("{path} extra")),
            (None, None) => {}
        }
    }
    assert!(diffs.is_empty(), "{case}: {diffs:?}");
}

fn temp_files(ws: &Ws) -> Vec<String> {
    ws.paths()
        .iter()
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or("");
            name.contains(".runbook-") && name.ends_with(".tmp")
        })
        .cloned()
        .collect()
}

struct Scenario {
    base: Ws,
    norm: Normaliser,
    reference: Known,
    before: Known,
    model_files: Vec<String>,
}

impl Scenario {
    fn new() -> Scenario {
        // Large enough that the registry is a real file (300 versions, 600 model files).
        let base = Ws::generated(&["--versions", "300"]);
        base.git_identity();
        let norm = Normaliser::new(&base);
        let done = base.copy();
        done.runbook(&["run", &shipped("full_rollback.rhai"), "-q"])
            .run()
            .success();
        Scenario {
            reference: Known::of(&norm, &done),
            before: Known::of(&norm, &base),
            model_files: base
                .paths()
                .into_iter()
                .filter(|p| p.starts_with("models/"))
                .collect(),
            base,
            norm,
        }
    }

    /// Check everything about a workspace in which a rollback was killed.
    fn check_killed(&self, case: &str, ws: &Ws) {
        let started = ws.join(".runbook/runs").read_dir().is_ok_and(|mut d| {
            d.any(|e| {
                e.is_ok_and(|e| {
                    std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("\"run_start\""))
                })
            })
        });
        if !started {
            // Killed before its log said anything: it changed nothing, and the next run
            // goes ahead (and clears its marker).
            self.before.compare(case, &self.norm, ws);
            ws.runbook(&["run", &shipped("quick_verification.rhai"), "-q"])
                .run()
                .success();
            assert!(
                std::fs::read_dir(ws.join(".runbook/active")).is_ok_and(|mut d| d.next().is_none()),
                "{case}"
            );
            return;
        }
        let run_id = ws.last_log()[0]["run_id"].as_str().unwrap().to_string();
        // The registry is whole, and what the run removed is in its trash.
        let reg: serde_json::Value = serde_json::from_str(&ws.read("models/registry.json"))
            .unwrap_or_else(|e| panic!("{case}: torn registry: {e}"));
        assert!(reg.as_array().is_some_and(|a| a.len() >= 299), "{case}");
        for path in &self.model_files {
            if !ws.exists(path) {
                let kept = ws.exists(&format!(".runbook/trash/{run_id}/{path}"));
                assert!(kept, "{case}: {path} is gone and not in the trash");
            }
        }
        // The next real run refuses and changes nothing, but for moving the dead run's temp
        // files into its trash (and saying so).
        let temps = temp_files(ws);
        let without_temps = |ws: &Ws| -> BTreeMap<String, Vec<u8>> {
            ws.files()
                .into_iter()
                .filter(|(p, _)| !temps.contains(p))
                .collect()
        };
        let before = without_temps(ws);
        let refused = ws
            .runbook(&["run", &shipped("full_rollback.rhai"), "-q"])
            .run()
            .code(1)
            .stderr_has("did not finish")
            .stderr_has(&format!("runbook resume {run_id}"))
            .stderr_has(&format!("runbook undo {run_id}"))
            .stderr_has("--force");
        assert!(
            before == without_temps(ws),
            "{case}: the refused run changed the workspace"
        );
        assert!(
            temp_files(ws).is_empty(),
            "{case}: temp files left: {:?}",
            temp_files(ws)
        );
        for t in &temps {
            assert!(
                refused
                    .stdout
                    .contains(&format!("moved the temp file `{t}`")),
                "{case}: {}",
                refused.stdout
            );
        }
        // Undo, on a copy, returns to the state before the run.
        let undone = ws.copy();
        undone.runbook(&["undo", &run_id, "-q"]).run().success();
        self.before
            .compare(&format!("{case}: undo"), &self.norm, &undone);
        assert!(
            temp_files(&undone).is_empty(),
            "{case}: undo left {:?}",
            temp_files(&undone)
        );
        // Resume finishes the rollback exactly as an uninterrupted run does.
        ws.runbook(&["resume", &run_id, "-q"]).run().success();
        self.reference
            .compare(&format!("{case}: resume"), &self.norm, ws);
        assert!(
            temp_files(ws).is_empty(),
            "{case}: resume left {:?}",
            temp_files(ws)
        );
        // And the workspace is usable again: the next run is not refused.
        ws.runbook(&["run", &shipped("verify_rollback.rhai"), "-q"])
            .run()
            .success();
    }
}

#[test]
fn a_full_rollback_killed_at_every_point_is_resumable_and_undoable() {
    let s = Scenario::new();
    let mut points = 0;
    for n in 1..200 {
        let ws = s.base.copy();
        let done = ws
            .runbook(&["run", &shipped("full_rollback.rhai"), "-q"])
            .env("RUNBOOK_CRASH_AT", n.to_string())
            .run();
        if done.code == 0 {
            // Past the last crash point: the run finished.
            s.reference.compare("uninterrupted", &s.norm, &ws);
            break;
        }
        assert_eq!(
            done.code, -1,
            "crash point {n}: not killed: {}",
            done.stderr
        );
        s.check_killed(&format!("crash point {n}"), &ws);
        points += 1;
    }
    assert!(points >= 50, "only {points} crash points");

    // And at moments no crash point chose: SIGKILL from a timer inside the process, at a
    // random moment of a run's own duration (as its journal measured it).
    let timing = s.base.copy();
    timing
        .runbook(&["run", &shipped("full_rollback.rhai"), "-q"])
        .run()
        .success();
    let log = timing.last_log();
    let end = log.last().cloned().unwrap();
    let full_us = (end["duration_ms"].as_f64().unwrap() * 1000.0) as u64;
    // The effects happen in the last part of that: from the first intent to the end.
    let at = |e: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap()).unwrap()
    };
    let first = log.iter().find(|e| e["event"] == "intent").unwrap();
    let effects_us = (at(&end) - at(first)).num_microseconds().unwrap().max(1) as u64;
    let window_start = full_us.saturating_sub(effects_us);
    let mut killed = 0;
    let mut seed = 0x9E37_79B9u64;
    for i in 0..12 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = window_start + (seed >> 33) % (effects_us + effects_us / 4);
        let ws = s.base.copy();
        let done = ws
            .runbook(&["run", &shipped("full_rollback.rhai"), "-q"])
            .env("RUNBOOK_CRASH_AFTER_US", delay.to_string())
            .run();
        if done.code == 0 {
            continue;
        }
        assert_eq!(done.code, -1, "kill {i}: {}", done.stderr);
        let started = ws.join(".runbook/runs").read_dir().is_ok_and(|mut d| {
            d.any(|e| {
                e.is_ok_and(|e| {
                    std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("\"run_start\""))
                })
            })
        });
        if !started {
            // Killed before its log said anything: it changed nothing, and the next run
            // goes ahead.
            s.before.compare(&format!("kill {i}"), &s.norm, &ws);
            continue;
        }
        let marked =
            std::fs::read_dir(ws.join(".runbook/active")).is_ok_and(|mut d| d.next().is_some());
        if !marked {
            // Killed after it had finished and unmarked itself: the rollback is complete.
            s.reference
                .compare(&format!("kill {i} at the very end"), &s.norm, &ws);
            continue;
        }
        s.check_killed(&format!("kill {i} after {delay} µs"), &ws);
        killed += 1;
    }
    eprintln!("killed at {points} crash points and {killed} random moments");
    assert!(
        points + killed >= 50,
        "{points} crash points and {killed} timed kills"
    );
}

#[test]
fn force_runs_past_an_unfinished_run_and_undo_refuses_a_changed_workspace() {
    let base = Ws::demo();
    // Kill it just after it promoted the good version (the first crash point past that).
    let ws = (10..200)
        .find_map(|n| {
            let ws = base.copy();
            let done = ws
                .runbook(&["run", &shipped("full_rollback.rhai"), "-q"])
                .env("RUNBOOK_CRASH_AT", n.to_string())
                .run();
            assert_eq!(done.code, -1, "crash point {n}");
            let wrote = ws
                .last_log()
                .iter()
                .any(|e| e["event"] == "action" && e["op"] == "registry.set_production");
            wrote.then_some(ws)
        })
        .unwrap();
    let run_id = ws.last_log()[0]["run_id"].as_str().unwrap().to_string();
    ws.runbook(&["log"])
        .run()
        .success()
        .stdout_has(&format!(
            "{run_id}  full_rollback 1.6.0  real  DID NOT FINISH"
        ))
        .stdout_has(&format!("`runbook resume {run_id}` finishes it"));
    // Someone edits what the run wrote: undo refuses, naming it.
    let copy = ws.copy();
    let edited = format!("{}\n", copy.read("models/registry.json"));
    copy.write("models/registry.json", &edited);
    let before = copy.snapshot();
    copy.runbook(&["undo", &run_id])
        .run()
        .code(1)
        .stderr_has("the workspace changed since that run")
        .stderr_has("models/registry.json");
    before.assert_same(&copy.snapshot());
    // --force goes ahead and leaves the unfinished run as it is.
    ws.runbook(&["run", &shipped("quick_verification.rhai"), "--force", "-q"])
        .run()
        .success();
    ws.runbook(&["run", &shipped("quick_verification.rhai"), "-q"])
        .run()
        .success();
    ws.runbook(&["resume", &run_id])
        .run()
        .code(2)
        .stderr_has("is not unfinished");
}

#[test]
fn process_stop_never_signals_runbook_its_parents_or_an_unrelated_process() {
    let ws = Ws::demo();
    // The test harness is runbook's parent.
    ws.write(
        "run/sl_model_training.pid",
        &format!("{}\n", std::process::id()),
    );
    ws.runbook(&["run", &shipped("full_rollback.rhai")])
        .run()
        .code(1)
        .stderr_has("runbook itself or the process that started it");
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v5"));
    // A stale pid file naming an unrelated process.
    let mut other = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .unwrap();
    ws.write("run/sl_model_training.pid", &format!("{}\n", other.id()));
    ws.runbook(&["run", &shipped("full_rollback.rhai")])
        .run()
        .code(1)
        .stderr_has("which is not `sl_model_training`; nothing was signalled");
    assert!(
        other.try_wait().unwrap().is_none(),
        "an unrelated process was signalled"
    );
    other.kill().unwrap();
    other.wait().unwrap();
}

#[test]
fn registry_values_are_data_and_bad_registries_stop_before_any_change() {
    for (case, edit, says) in [
        ("star version", r#""version": "v4""#, r#""version": "*""#),
        (
            "path version",
            r#""version": "v4""#,
            r#""version": "v5/../../etc""#,
        ),
    ] {
        let ws = Ws::demo();
        let text = ws.read("models/registry.json").replacen(edit, says, 1);
        ws.write("models/registry.json", &text);
        let before = ws.snapshot();
        ws.runbook(&["run", &shipped("full_rollback.rhai")])
            .run()
            .code(1)
            .stderr_has("may hold only letters, digits");
        before.assert_same(&ws.snapshot());
        let _ = case;
    }
    // A version listed twice, and two production versions.
    let ws = Ws::demo();
    let reg: Vec<serde_json::Value> =
        serde_json::from_str(&ws.read("models/registry.json")).unwrap();
    let mut dup = reg.clone();
    dup.push(reg[0].clone());
    ws.write(
        "models/registry.json",
        &serde_json::to_string_pretty(&dup).unwrap(),
    );
    let before = ws.snapshot();
    ws.runbook(&["run", &shipped("full_rollback.rhai")])
        .run()
        .code(1)
        .stderr_has("are both `sl_forecaster`");
    before.assert_same(&ws.snapshot());
    let mut two = reg.clone();
    for e in two.iter_mut() {
        if e["version"] == "v4" {
            e["is_production"] = true.into();
            e["status"] = "production".into();
        }
    }
    ws.write(
        "models/registry.json",
        &serde_json::to_string_pretty(&two).unwrap(),
    );
    ws.runbook(&["run", &shipped("full_rollback.rhai")])
        .run()
        .code(1)
        .stderr_has("has two production versions");
}

/// A predictor that tries to change the workspace and the world before it predicts.
const HOSTILE: &str = r#"//! name: hostile
//! version: 1.0.0
//! description: a predictor that writes where it must not
let data = validate::load_csv("data/validation.csv");
let model = validate::external_model(["sh", "-c", "touch pwned.txt; touch /tmp/rb-hostile-$PPID; rm -f backup_timestamp.txt; n=$(($(wc -l < \"$2\") - 1)); i=0; while [ $i -lt $n ]; do echo 0; i=$((i+1)); done", "sh", "{model}", "{data}"], "models/sl_model_v4.json");
let p = validate::predict(model, data);
print(`predicted ${p.len()} rows`);
"#;

#[test]
fn commands_are_confined_journaled_and_can_be_forbidden() {
    let ws = Ws::demo();
    ws.write("rb/hostile.rhai", HOSTILE);
    for dry in [true, false] {
        let before = ws.snapshot();
        let mut cmd = ws.runbook(&["run", "rb/hostile.rhai"]);
        if dry {
            cmd = cmd.arg("--dry-run");
        }
        let out = cmd.run().success();
        // Landlock kept it from writing anywhere but its scratch directory.
        before.assert_same(&ws.snapshot());
        assert!(
            !ws.exists("pwned.txt") && ws.exists("backup_timestamp.txt"),
            "{}",
            out.stdout
        );
        let log = ws.last_log();
        let run = actions(&log, "validate.predict");
        assert_eq!(run.len(), 1);
        assert_eq!(run[0]["kind"], "command");
        assert_eq!(run[0]["args"]["command"][0], "sh");
    }
    // --no-exec refuses it, naming it.
    ws.runbook(&["run", "rb/hostile.rhai", "--no-exec"])
        .run()
        .code(1)
        .stderr_has("`--no-exec`");
    // A workspace may list the programs it allows.
    ws.write("runbook.yaml", "commands:\n  allow: [python3]\n");
    ws.runbook(&["run", "rb/hostile.rhai", "--dry-run"])
        .run()
        .code(1)
        .stderr_has("`sh` is not in `commands.allow`");
}

#[test]
fn concurrent_refusals_always_name_the_run_holding_the_lock() {
    let ws = Ws::demo();
    ws.write(
        "rb/busy.rhai",
        "//! name: busy\n//! version: 1.0.0\n//! description: holds the lock a while\nfs::write(\"busy.txt\", \"1\");\nlet x = 0;\nfor i in 0..4000000 { x += i; }\n",
    );
    let mut holder = std::process::Command::new(BIN)
        .args(["run", "rb/busy.rhai", "-q"])
        .current_dir(ws.path())
        .spawn()
        .unwrap();
    // Wait until it holds the lock (its marker is there).
    let t = std::time::Instant::now();
    while !ws
        .join(".runbook/active")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        assert!(t.elapsed().as_secs() < 20, "the first run never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let others: Vec<_> = (0..10)
        .map(|_| {
            std::process::Command::new(BIN)
                .args(["run", "rb/busy.rhai", "-q"])
                .current_dir(ws.path())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in others {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("another run is changing it (run ") && stderr.contains(" by pid "),
            "{stderr}"
        );
    }
    assert!(holder.wait().unwrap().success());
}

/// A stand-in for the training job, named as the pid file says; its pid file written.
fn training_job(ws: &Ws) -> std::process::Child {
    let child = std::process::Command::new("bash")
        .args(["-c", "exec -a sl_model_training sleep 300"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    ws.write("run/sl_model_training.pid", &format!("{}\n", child.id()));
    child
}

#[test]
fn a_rollback_killed_between_its_signal_and_the_pid_file_resumes_to_the_same_end() {
    let base = Ws::demo();
    let norm = Normaliser::new(&base);
    let whole = base.copy();
    let mut job = training_job(&whole);
    whole
        .runbook(&["run", &shipped("full_rollback.rhai"), "-q"])
        .run()
        .success();
    job.wait().unwrap();
    assert!(!whole.exists("run/sl_model_training.pid"));
    let reference = Known::of(&norm, &whole);
    for n in 1..200 {
        let ws = base.copy();
        let mut job = training_job(&ws);
        let done = ws
            .runbook(&["run", &shipped("full_rollback.rhai"), "-q"])
            .env("RUNBOOK_CRASH_AT", n.to_string())
            .run();
        assert_eq!(
            done.code, -1,
            "crash point {n}: the run ended before the stop was done"
        );
        let log = ws.last_log();
        let begun = log
            .iter()
            .any(|e| e["event"] == "intent" && e["effect"].get("stop_process").is_some());
        let stopped = log.iter().any(|e| e["op"] == "process.stop");
        let signalled = job.try_wait().unwrap().is_some();
        if !(begun && !stopped && signalled && ws.exists("run/sl_model_training.pid")) {
            let _ = job.kill();
            let _ = job.wait();
            continue;
        }
        // Killed after the job was gone and before its pid file moved: resume finishes
        // the stop (the pid file to the trash) and the rest, as if never interrupted.
        let run_id = log[0]["run_id"].as_str().unwrap().to_string();
        ws.runbook(&["resume", &run_id, "-q"]).run().success();
        assert!(!ws.exists("run/sl_model_training.pid"));
        assert!(ws.exists(&format!(
            ".runbook/trash/{run_id}/run/sl_model_training.pid"
        )));
        reference.compare(&format!("crash point {n}: resume"), &norm, &ws);
        return;
    }
    panic!("no crash point fell between the signal and the pid file's move");
}
