//! What the binary does with a stdout nobody reads any more (`runbook check ... | head`),
//! and the Rhai standard library a run still offers although its engine loads most of it
//! lazily.

use crate::support::{repo, shipped, Ws, BIN};
use std::process::{Command, Output, Stdio};

/// Run the binary with stdout connected to a pipe whose read end is already closed, so its
/// first write to stdout fails with `EPIPE` (the reader of `| head` has gone).
fn with_closed_stdout(args: &[&str], dir: &std::path::Path) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn assert_quiet_success(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr, "", "{what}: stderr should be empty");
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
}

#[test]
fn commands_writing_to_a_closed_pipe_exit_quietly() {
    let root = repo();
    let ws = Ws::demo();
    let files: Vec<String> = std::fs::read_dir(root.join("runbooks"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .map(|p| p.display().to_string())
        .collect();
    let mut check = vec!["check"];
    check.extend(files.iter().map(String::as_str));
    assert_quiet_success(&with_closed_stdout(&check, &root), "check");
    assert_quiet_success(&with_closed_stdout(&["list"], &root), "list");
    assert_quiet_success(&with_closed_stdout(&["docs"], &root), "docs");
    assert_quiet_success(&with_closed_stdout(&["--help"], &root), "--help");
    let demo_dir = ws.join("demo");
    assert_quiet_success(
        &with_closed_stdout(&["demo", "--no-run", demo_dir.to_str().unwrap()], ws.path()),
        "demo",
    );
}

#[test]
fn a_run_with_a_closed_stdout_completes_the_rollback() {
    let ws = Ws::demo();
    let out = with_closed_stdout(
        &[
            "run",
            &shipped("full_rollback.rhai"),
            "-w",
            ws.path().to_str().unwrap(),
        ],
        ws.path(),
    );
    assert_quiet_success(&out, "run");
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v4"));
    assert!(!ws.exists("models/sl_model_v5.json"));
    let log = ws.last_log();
    let end = log.last().unwrap();
    assert_eq!(end["event"], "run_end");
    assert_eq!(end["status"], "ok");
    assert_eq!(end["steps_ok"], 5);
}

#[test]
fn a_failing_command_still_reports_its_error_and_status_with_stdout_closed() {
    let ws = Ws::empty();
    ws.write(
        "bad.rhai",
        "//! name: bad\n//! version: 1.0.0\n//! description: d\nlet x = ;\n",
    );
    let out = with_closed_stdout(&["check", "bad.rhai"], ws.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.rhai:4:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Every part of Rhai's standard library a script may reach for, in one run: the eagerly
/// loaded packages (strings, arrays, maps, function pointers) and the lazily loaded rest
/// (ranges, math, other number functions, blobs, bit fields, string iteration).
#[test]
fn runs_have_the_whole_standard_library() {
    let ws = Ws::empty();
    ws.write(
        "rb/std.rhai",
        r#"//! name: stdlib
//! version: 1.0.0
//! description: the standard library
let total = 0;
for i in 0..10 { total += i; }
for i in range(0, 10, 2) { total += i; }
for c in "abc" { total += 1; }
for c in "abc".chars() { total += 1; }
let b = blob(4, 0x42);
let x = abs(-3) + max(2, 5) + (10).min(3);
let f = sqrt(16.0) + (2.7).floor() + parse_float("1.5") + to_float(2);
let n = parse_int("42") + "hello".len() + [3, 1, 2].len();
let s = [3, 1, 2];
s.sort();
let m = #{a: 1, b: 2};
let t = 5 > 3.0 && (1..5).contains(3) && 7 % 2 == 1 && 2 ** 3 == 8 && 0b1010.get_bit(1);
let y = Fn("abs").call(-9);
let words = "a,b,c".split(",").map(|w| w.to_upper()).filter(|w| w != "B");
print(`total ${total} x ${x} f ${f} n ${n} s ${s} m ${m} t ${t} y ${y} words ${words} blob ${b.len()} sign ${sign(-2)} round ${(3.14159).round()} hex ${(17).to_hex()} type ${type_of(m)} keys ${m.keys()}`);
"#,
    );
    let out = ws
        .runbook(&["run", ws.join("rb/std.rhai").to_str().unwrap()])
        .run()
        .success();
    assert!(
        out.stdout.contains(
            r#"| total 71 x 11 f 9.5 n 50 s [1, 2, 3] m #{"a": 1, "b": 2} t true y 9 words ["A", "C"] blob 4 sign -1 round 3.0 hex 11 type map keys ["a", "b"]"#
        ),
        "{}",
        out.stdout
    );
}
