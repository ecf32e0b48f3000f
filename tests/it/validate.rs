//! Validation through the binary: the shipped verification runbooks, the gate in the full
//! rollback (for real and in a dry run), where the threshold comes from, loaders and models
//! as runbooks see them (CSV, `.npy`, XGBoost, external predictors), the metrics in the run
//! log, and the per-run dataset cache.

use crate::support::{actions, repo, shipped, Ws};
use serde_json::Value;

const HEAD: &str = "//! name: t\n//! version: 1.0.0\n//! description: a test runbook\n";

/// A test runbook at `rb/<name>.rhai` in the workspace; returns its path for `runbook run`.
fn runbook(ws: &Ws, name: &str, body: &str) -> String {
    let path = format!("rb/{name}.rhai");
    ws.write(&path, &format!("{HEAD}{body}\n"));
    path
}

/// The MSE of a linear JSON model on a CSV file with target `y`, computed here without the
/// crate, so that the binary's figure is checked against an independent one.
fn reference_mse(ws: &Ws, model: &str, data: &str) -> f64 {
    let m = ws.json(model);
    let weights: Vec<f64> = m["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap())
        .collect();
    let bias = m["bias"].as_f64().unwrap();
    let names: Vec<&str> = m["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let text = ws.read(data);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (cols, target) = (names.iter().map(|n| col(n)).collect::<Vec<_>>(), col("y"));
    let (mut sum, mut n) = (0.0, 0.0);
    for line in lines.filter(|l| !l.is_empty()) {
        let cells: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        let pred: f64 = bias
            + cols
                .iter()
                .zip(&weights)
                .map(|(&c, w)| w * cells[c])
                .sum::<f64>();
        sum += (cells[target] - pred).powi(2);
        n += 1.0;
    }
    sum / n
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * b.abs().max(1e-12)
}

/// A float64 `.npy` file (NumPy format 1.0, C order) holding `rows`.
fn npy(rows: &[Vec<f64>]) -> Vec<u8> {
    let shape = match rows[0].len() {
        1 => format!("({},)", rows.len()),
        n => format!("({}, {n})", rows.len()),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + newline: a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    for v in rows.iter().flatten() {
        out.extend(v.to_le_bytes());
    }
    out
}

fn write_bytes(ws: &Ws, rel: &str, bytes: &[u8]) {
    let p = ws.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

// ----- the shipped runbooks -----------------------------------------------------------------

#[test]
fn verify_rollback_fails_on_the_broken_model_and_passes_after_the_rollback() {
    let ws = Ws::demo();
    let verify = shipped("verify_rollback.rhai");
    // The demo's production model, v5, is the badly trained one.
    let out = ws.runbook(&["run", &verify]).run().code(1);
    let out = out.stderr_has("of `sl_forecaster` v5 is above the threshold 0.1");
    assert!(
        out.stderr
            .contains("step `Validate the production model` failed: mse "),
        "{}",
        out.stderr
    );
    let gate = actions(&ws.last_log(), "validate.gate")[0].clone();
    assert_eq!(gate["result"]["passed"], false);
    assert_eq!(gate["args"]["label"], "`sl_forecaster` v5");
    assert_eq!(ws.last_log().last().unwrap()["status"], "failed");

    ws.runbook(&["run", &shipped("full_rollback.rhai")])
        .run()
        .success();
    ws.runbook(&["run", &verify, "--param", "expected=v4"])
        .run()
        .success()
        .stdout_has("gate: mse ")
        .stdout_has("of `sl_forecaster` v4 is within the threshold 0.1")
        .stdout_has("verified: sl_forecaster v4 passes on data/validation.csv (1000 rows)");
    ws.runbook(&["run", &verify, "--param", "expected=v3"])
        .run()
        .code(1)
        .stderr_has("production sl_forecaster is v4, but v3 was expected");
}

#[test]
fn quick_verification_passes_and_fails_with_one_line() {
    let ws = Ws::demo();
    let quick = shipped("quick_verification.rhai");
    ws.runbook(&["run", &quick])
        .run()
        .success()
        .stdout_has("| quick verification passed");
    // A corrupt artifact.
    ws.write(
        "models/sl_model_v5.json",
        "{\"type\": \"linear\", \"weights\": [1,",
    );
    ws.runbook(&["run", &quick])
        .run()
        .code(1)
        .stderr_has("step `Load its artifact` failed: quick verification failed: `models/sl_model_v5.json` is not valid model JSON")
        .stdout_lacks("quick verification passed");
    // No production model at all.
    let reg = ws
        .read("models/registry.json")
        .replace("\"is_production\": true", "\"is_production\": false")
        .replace("\"production\"", "\"superseded\"");
    ws.write("models/registry.json", &reg);
    ws.runbook(&["run", &quick])
        .run()
        .code(1)
        .stderr_has("quick verification failed: there is no production version of 'sl_forecaster'");
    // Data the model cannot be run on.
    let ws = Ws::demo();
    ws.write("data/validation.csv", "x0,y\n1,2\n");
    ws.runbook(&["run", &quick])
        .run()
        .code(1)
        .stderr_has("step `Run the validation pipeline` failed: quick verification failed: model `models/sl_model_v5.json`: needs features `x1`");
}

#[test]
fn full_rollback_refuses_a_bad_target_before_changing_anything() {
    let ws = Ws::demo();
    let v4 = ws.json("models/sl_model_v4.json");
    let mut broken = v4.clone();
    broken["weights"] = serde_json::json!(vec![0.0; 8]);
    ws.write("models/sl_model_v4.json", &broken.to_string());
    let before = ws.snapshot();
    let out = ws
        .runbook(&["run", &shipped("full_rollback.rhai")])
        .run()
        .code(1);
    out.stderr_has("step `Identify the current and previous production versions` failed: mse ")
        .stderr_has("of `sl_forecaster` v4 is above the threshold 0.1");
    before.assert_same(&ws.snapshot());
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v5"));
    let log = ws.last_log();
    let end = log.last().unwrap();
    assert_eq!(end["status"], "failed");
    let evaluate = actions(&log, "validate.evaluate")[0];
    assert!(f(&evaluate["result"]["mse"]) > 0.1, "{evaluate}");
}

#[test]
fn dry_run_of_full_rollback_scores_the_model_it_would_put_in_production() {
    let ws = Ws::demo();
    let want = reference_mse(&ws, "models/sl_model_v4.json", "data/validation.csv");
    let before = ws.snapshot();
    let out = ws
        .runbook(&["run", &shipped("full_rollback.rhai"), "--dry-run"])
        .run()
        .success();
    before.assert_same(&ws.snapshot());
    // The registry on disk still says v5; the verify step saw the simulated v4.
    assert_eq!(ws.production("sl_forecaster").as_deref(), Some("v5"));
    let out = out
        .stdout_has("check evaluate `models/sl_model_v4.json` on `data/validation.csv` (1000 rows)")
        .stdout_has("of `sl_forecaster` v4 is within the threshold 0.1")
        .stdout_has("rollback complete: sl_forecaster production is v4");
    let log = ws.last_log();
    let evaluate = actions(&log, "validate.evaluate")[0];
    assert_eq!(evaluate["args"]["model"], "models/sl_model_v4.json");
    assert_eq!(evaluate["applied"], false, "a check changes nothing");
    assert_eq!(evaluate["kind"], "check");
    let mse = f(&evaluate["result"]["mse"]);
    assert!(close(mse, want, 1e-9), "{mse} != {want}");
    assert_eq!(evaluate["result"]["rows"], 1000);
    let gate = actions(&log, "validate.gate")[0];
    assert_eq!(gate["result"]["passed"], true);
    assert_eq!(f(&gate["args"]["value"]), mse);
    // The checks are not changes: the plan lists none.
    assert!(!out.stdout.contains("    - evaluate"), "{}", out.stdout);
}

// ----- the threshold ------------------------------------------------------------------------

fn config_with_threshold(threshold: &str) -> String {
    format!(
        "model:\n  type: xgboost\n  learning_rate: 0.05\nvalidation:\n  split: time\n  mse_threshold: {threshold}\n"
    )
}

#[test]
fn threshold_comes_from_the_param_then_the_config_then_the_plan() {
    let ws = Ws::demo();
    ws.runbook(&["run", &shipped("full_rollback.rhai")])
        .run()
        .success();
    let verify = shipped("verify_rollback.rhai");
    let used = |ws: &Ws| f(&actions(&ws.last_log(), "validate.gate")[0]["args"]["threshold"]);

    // The config's threshold is below v4's MSE (about 0.006): the config fails the gate...
    ws.write(
        "configs/sl/training_configs.yaml",
        &config_with_threshold("0.001"),
    );
    ws.runbook(&["run", &verify])
        .run()
        .code(1)
        .stderr_has("of `sl_forecaster` v4 is above the threshold 0.001");
    assert_eq!(used(&ws), 0.001);
    // ...and the parameter beats the config.
    ws.runbook(&["run", &verify, "--param", "threshold=0.05"])
        .run()
        .success();
    assert_eq!(used(&ws), 0.05);
    // A config without the key, or no config at all: the plan's 0.1.
    ws.write(
        "configs/sl/training_configs.yaml",
        "model:\n  type: xgboost\n  learning_rate: 0.05\n",
    );
    ws.runbook(&["run", &verify]).run().success();
    assert_eq!(used(&ws), 0.1);
    std::fs::remove_file(ws.join("configs/sl/training_configs.yaml")).unwrap();
    ws.runbook(&["run", &verify]).run().success();
    assert_eq!(used(&ws), 0.1);
    // A threshold that is not a positive number is refused, not ignored.
    ws.write(
        "configs/sl/training_configs.yaml",
        &config_with_threshold("lots"),
    );
    ws.runbook(&["run", &verify])
        .run()
        .code(1)
        .stderr_has("`validation.mse_threshold` must be a positive number, got `\"lots\"`");
}

#[test]
fn malformed_config_fails_with_line_and_column_unless_the_param_decides() {
    let ws = Ws::demo();
    ws.write(
        "configs/sl/training_configs.yaml",
        "model:\n  type: xgboost\n   learning_rate: 0.05\n",
    );
    let before = ws.snapshot();
    ws.runbook(&["run", &shipped("verify_rollback.rhai")])
        .run()
        .code(1)
        .stderr_has("`configs/sl/training_configs.yaml` is not valid YAML")
        .stderr_has("at line 3, column 17");
    before.assert_same(&ws.snapshot());
    // With the threshold given, the config is never read.
    ws.runbook(&[
        "run",
        &shipped("verify_rollback.rhai"),
        "--param",
        "threshold=100",
    ])
    .run()
    .success();
}

#[test]
fn dry_run_reads_simulated_config_and_data() {
    let ws = Ws::demo();
    let rb = runbook(
        &ws,
        "sim",
        r#"
step "change the config and the data" {
    fs::write("configs/sl/training_configs.yaml", "validation:\n  mse_threshold: 0.002\n");
    fs::write("data/validation.csv", "x0,y\n1,2\n3,4\n5,6\n");
}
step "validate" {
    print(`threshold ${validate::threshold("configs/sl/training_configs.yaml")}`);
    let d = validate::load_csv("data/validation.csv");
    print(`rows ${d.rows}`);
}
"#,
    );
    let before = ws.snapshot();
    ws.runbook(&["run", &rb, "--dry-run"])
        .run()
        .success()
        .stdout_has("| threshold 0.002")
        .stdout_has("| rows 3");
    before.assert_same(&ws.snapshot());
    // A real run of the same reads the same.
    ws.runbook(&["run", &rb])
        .run()
        .success()
        .stdout_has("| threshold 0.002")
        .stdout_has("| rows 3");
}

// ----- models and data as runbooks see them -------------------------------------------------

#[test]
fn a_model_whose_features_the_data_lacks_fails_clearly() {
    let ws = Ws::demo();
    ws.write(
        "models/sl_model_v5.json",
        r#"{"type": "linear", "weights": [1.0, 2.0, 3.0], "bias": 0.0, "features": ["x0", "x1", "z9"]}"#,
    );
    ws.runbook(&["run", &shipped("verify_rollback.rhai")])
        .run()
        .code(1)
        .stderr_has("model `models/sl_model_v5.json`: needs feature `z9` that data `data/validation.csv` does not have");
}

#[test]
fn loader_errors_name_the_file_and_position() {
    let ws = Ws::demo();
    ws.write("data/bad.csv", "x0,y\n1,2\n3,abc\n");
    let rb = runbook(&ws, "bad", r#"validate::load_csv("data/bad.csv");"#);
    ws.runbook(&["run", &rb])
        .run()
        .code(1)
        .stderr_has("`data/bad.csv` is not valid CSV")
        .stderr_has("at line 3, column 3");
    let rb = runbook(&ws, "missing", r#"validate::load_csv("data/nope.csv");"#);
    ws.runbook(&["run", &rb])
        .run()
        .code(1)
        .stderr_has("cannot read `data/nope.csv`: no such file or directory");
    let rb = runbook(
        &ws,
        "target",
        r#"validate::load_csv("data/validation.csv", "demand");"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .code(1)
        .stderr_has("no target column `demand`");
    write_bytes(&ws, "data/bad.npy", b"not numpy");
    let rb = runbook(&ws, "npy", r#"validate::load_npy("data/bad.npy");"#);
    ws.runbook(&["run", &rb])
        .run()
        .code(1)
        .stderr_has("`data/bad.npy` is not valid .npy");
    let rb = runbook(
        &ws,
        "model",
        r#"validate::load_model("configs/sl/training_configs.yaml");"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .code(1)
        .stderr_has("model `configs/sl/training_configs.yaml`: it is neither JSON, UBJSON nor a LightGBM text model");
    // Leaving the workspace is refused and cannot be caught.
    let rb = runbook(
        &ws,
        "escape",
        r#"try { validate::load_csv("../outside.csv"); } catch (e) { print("caught"); }"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .code(1)
        .stderr_has("refused path `../outside.csv`")
        .stdout_lacks("| caught");
}

#[test]
fn npy_data_gives_the_same_scores_as_the_csv_it_holds() {
    let ws = Ws::demo();
    let text = ws.read("data/validation.csv");
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    write_bytes(&ws, "data/validation.npy", &npy(&rows));
    let x: Vec<Vec<f64>> = rows.iter().map(|r| r[..r.len() - 1].to_vec()).collect();
    let y: Vec<Vec<f64>> = rows.iter().map(|r| vec![r[r.len() - 1]]).collect();
    write_bytes(&ws, "data/X.npy", &npy(&x));
    write_bytes(&ws, "data/y.npy", &npy(&y));
    let rb = runbook(
        &ws,
        "npy",
        r#"
let model = validate::load_model("models/sl_model_v4.json");
let csv = validate::evaluate("models/sl_model_v4.json", "data/validation.csv");
let matrix = validate::evaluate("models/sl_model_v4.json", "data/validation.npy");
let pair = validate::load_npy("data/X.npy", "data/y.npy");
let from_pair = validate::mse(pair, validate::predict(model, pair));
print(`rows ${pair.rows} features ${pair.features.len()}`);
assert(csv.mse == matrix.mse && csv.mse == from_pair, `${csv.mse} ${matrix.mse} ${from_pair}`);
"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .success()
        .stdout_has("| rows 1000 features 8");
    // The shipped runbook takes .npy data too.
    ws.runbook(&[
        "run",
        &shipped("quick_verification.rhai"),
        "--param",
        "data=data/validation.npy",
    ])
    .run()
    .success();
}

#[test]
fn xgboost_fixture_predictions_agree_through_a_runbook() {
    let ws = Ws::empty();
    let fixture = repo().join("tests/fixtures/xgboost/regression");
    let model = std::fs::read_to_string(fixture.join("model.json")).unwrap();
    ws.write("models/xgb.json", &model);
    // The fixture's features, with XGBoost's own predictions as the target: the native
    // predictions must then be off by float32 rounding at most.
    let data = std::fs::read_to_string(fixture.join("data.csv")).unwrap();
    let expected = std::fs::read_to_string(fixture.join("predictions.csv")).unwrap();
    let mut lines = data.lines();
    let header = lines.next().unwrap();
    let mut csv = format!(
        "{}\n",
        header.rsplit_once(',').unwrap().0.to_string() + ",y"
    );
    for (row, want) in lines.zip(expected.lines().skip(1)) {
        csv.push_str(&format!("{},{want}\n", row.rsplit_once(',').unwrap().0));
    }
    ws.write("data/expected.csv", &csv);
    let rb = runbook(
        &ws,
        "xgb",
        r#"
let model = validate::load_model("models/xgb.json");
let data = validate::load_csv("data/expected.csv");
print(`${model.kind} on ${data.rows} rows`);
let worst = validate::max_abs_error(data, validate::predict(model, data));
validate::gate("max_abs_error", worst, 1e-4, "the XGBoost fixture");
"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .success()
        .stdout_has("| xgboost on 340 rows")
        .stdout_has("gate: max_abs_error");
}

#[test]
fn metrics_match_hand_computed_values_and_are_logged() {
    let ws = Ws::empty();
    // Targets 3, -0.5, 2, 7 and predictions 2.5, 0, 2, 8 (the model copies column p).
    ws.write("data/d.csv", "p,y\n2.5,3\n0,-0.5\n2,2\n8,7\n");
    ws.write(
        "models/m.json",
        r#"{"type": "linear", "weights": [1.0], "bias": 0.0, "features": ["p"]}"#,
    );
    let rb = runbook(
        &ws,
        "metrics",
        r#"
let data = validate::load_csv("data/d.csv");
let pred = validate::predict(validate::load_model("models/m.json"), data);
assert(pred.len == 4 && pred.len() == 4 && pred.to_array() == [2.5, 0.0, 2.0, 8.0], `${pred.to_array()}`);
for name in ["mse", "rmse", "mae", "r2", "max_abs_error"] {
    let v = switch name {
        "mse" => validate::mse(data, pred),
        "rmse" => validate::rmse(data, pred),
        "mae" => validate::mae(data, pred),
        "r2" => validate::r2(data, pred),
        _ => validate::max_abs_error(data, pred),
    };
    print(`${name} ${v}`);
}
let all = validate::metrics(data, pred);
print(`rows ${all.rows}`);
"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .success()
        .stdout_has("check mse of `models/m.json` on `data/d.csv`: 0.375 (4 rows)")
        .stdout_has("| rows 4");
    // errors 0.5, -0.5, 0, -1; mean of y 2.875, SS_tot 29.1875, SS_res 1.5.
    let want = [
        ("mse", 0.375),
        ("rmse", 0.375f64.sqrt()),
        ("mae", 0.5),
        ("r2", 1.0 - 1.5 / 29.1875),
        ("max_abs_error", 1.0),
    ];
    let log = ws.last_log();
    for (name, value) in want {
        let logged = actions(&log, &format!("validate.{name}"));
        assert_eq!(logged.len(), 1, "one action per metric call: {name}");
        let a = logged[0];
        assert!(close(f(&a["result"]["value"]), value, 1e-12), "{a}");
        assert_eq!(a["args"]["model"], "models/m.json");
        assert_eq!(a["args"]["data"], "data/d.csv");
        assert_eq!(a["args"]["rows"], 4);
        let all = actions(&log, "validate.metrics")[0];
        assert!(close(f(&all["result"][name]), value, 1e-12), "{all}");
        assert_eq!(all["result"]["rows"], 4);
    }
}

#[test]
fn a_dataset_loaded_once_is_reused_until_its_file_changes() {
    let ws = Ws::demo();
    let rb = runbook(
        &ws,
        "cache",
        r#"
step "load" { validate::load_csv("data/validation.csv"); }
step "change something else" {
    fs::write("notes.txt", "the registry and other files change during a rollback");
    registry::archive("sl_forecaster", "v1");
}
step "load again" {
    let d = validate::load_csv("data/validation.csv");
    validate::evaluate("models/sl_model_v4.json", "data/validation.csv");
    print(`rows ${d.rows}`);
}
step "a different target is a different dataset" { validate::load_csv("data/validation.csv", "x0"); }
step "change the data" { fs::write("data/validation.csv", "x0,y\n1,2\n"); }
step "load the new data" { print(`rows ${validate::load_csv("data/validation.csv").rows}`); }
"#,
    );
    for mode in [&["--dry-run"][..], &[][..]] {
        let mut args = vec!["run", rb.as_str()];
        args.extend(mode);
        let out = ws.runbook(&args).run().success();
        let out = out
            .stdout_has("check load `data/validation.csv` (1000 rows, 8 features)")
            .stdout_has("check load `data/validation.csv` (1000 rows, cached)")
            .stdout_has("(1000 rows, data cached)")
            .stdout_has("check load `data/validation.csv` (1 rows, 1 features)");
        assert!(out.stdout.contains("| rows 1\n"), "{}", out.stdout);
        let log = ws.last_log();
        let cached: Vec<bool> = actions(&log, "validate.load")
            .iter()
            .map(|a| a["result"]["cached"].as_bool().unwrap())
            .collect();
        assert_eq!(cached, [false, true, false, false], "{mode:?}");
        let evaluate = actions(&log, "validate.evaluate")[0];
        assert_eq!(evaluate["result"]["cached"], true);
    }
}

// ----- external predictors ------------------------------------------------------------------

/// A predictor for the demo's linear JSON models, in Python: what a team would write for a
/// format runbook cannot read.
const PREDICT_PY: &str = r#"import csv, json, sys
model = json.load(open(sys.argv[1]))
rows = csv.DictReader(open(sys.argv[2]))
print("prediction")
for r in rows:
    print(model["bias"] + sum(w * float(r[f]) for w, f in zip(model["weights"], model["features"])))
"#;

#[test]
fn external_predictor_agrees_with_the_native_model() {
    let ws = Ws::demo();
    ws.runbook(&["run", &shipped("full_rollback.rhai")])
        .run()
        .success();
    ws.write("tools/predict.py", PREDICT_PY);
    let verify = shipped("verify_rollback.rhai");
    ws.runbook(&["run", &verify]).run().success();
    let native = f(&actions(&ws.last_log(), "validate.metrics")[0]["result"]["mse"]);
    ws.runbook(&[
        "run",
        &verify,
        "--param",
        "predictor=python3,tools/predict.py",
    ])
    .run()
    .success()
    .stdout_has("loaded Model(`models/sl_model_v4.json` through `python3 tools/predict.py`)")
    .stdout_has("ran predict `models/sl_model_v4.json` on `data/validation.csv` with `python3 tools/predict.py` (1000 rows");
    let log = ws.last_log();
    let external = f(&actions(&log, "validate.metrics")[0]["result"]["mse"]);
    assert!(close(external, native, 1e-9), "{external} != {native}");
    assert_eq!(actions(&log, "validate.predict").len(), 1);
    assert!(
        !ws.exists(".runbook/tmp"),
        "the predictor's scratch files were left behind"
    );
}

#[test]
fn external_predictor_failures_are_clear() {
    let ws = Ws::demo();
    ws.write_executable(
        "tools/short.sh",
        "#!/bin/sh\n# One prediction short.\ntail -n +3 \"$2\" | while read -r line; do echo 0.5; done\n",
    );
    ws.write_executable(
        "tools/crash.sh",
        "#!/bin/sh\necho 'cannot unpickle the model' >&2\nexit 3\n",
    );
    ws.write_executable("tools/slow.sh", "#!/bin/sh\nsleep 30\n");
    let verify = shipped("verify_rollback.rhai");
    ws.runbook(&["run", &verify, "--param", "predictor=tools/short.sh"])
        .run()
        .code(1)
        .stderr_has("external predictor `")
        .stderr_has("printed 999 predictions for 1000 rows");
    ws.runbook(&["run", &verify, "--param", "predictor=tools/crash.sh"])
        .run()
        .code(1)
        .stderr_has("exited with status 3")
        .stderr_has("cannot unpickle the model");
    ws.runbook(&["run", &verify, "--param", "predictor=tools/none.sh"])
        .run()
        .code(1)
        .stderr_has("no such program");
    let rb = runbook(
        &ws,
        "slow",
        r#"
step "predict" {
    let model = validate::external_model(["tools/slow.sh"], "models/sl_model_v5.json", 0.3);
    let data = validate::load_csv("data/validation.csv");
    validate::predict(model, data);
}
"#,
    );
    let started = std::time::Instant::now();
    ws.runbook(&["run", &rb])
        .run()
        .code(1)
        .stderr_has("did not finish within 300 ms");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!ws.exists(".runbook/tmp"));
    // The run's own time limit bounds a predictor with a longer timeout of its own.
    let rb = runbook(
        &ws,
        "slow_run",
        r#"
let model = validate::external_model(["tools/slow.sh"], "models/sl_model_v5.json");
validate::predict(model, validate::load_csv("data/validation.csv"));
"#,
    );
    let started = std::time::Instant::now();
    ws.runbook(&["run", &rb, "--timeout", "1s"])
        .run()
        .code(1)
        .stderr_has("did not finish within");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let rb = runbook(
        &ws,
        "empty",
        r#"validate::external_model([], "models/sl_model_v5.json");"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .code(1)
        .stderr_has("the command is empty");
}

#[test]
fn external_predictor_in_a_dry_run_reads_the_simulated_model() {
    let ws = Ws::demo();
    ws.write("tools/predict.py", PREDICT_PY);
    // The model exists only in the dry run's overlay: the predictor gets a scratch copy.
    let rb = runbook(
        &ws,
        "drycopy",
        r#"
fs::write("models/candidate.json", fs::read("models/sl_model_v4.json"));
let model = validate::external_model(["python3", "tools/predict.py"], "models/candidate.json");
let data = validate::load_csv("data/validation.csv");
let native = validate::mse(data, validate::predict(validate::load_model("models/candidate.json"), data));
let external = validate::mse(data, validate::predict(model, data));
assert((native - external).abs() < 1e-9, `${native} ${external}`);
"#,
    );
    let before = ws.snapshot();
    ws.runbook(&["run", &rb, "--dry-run"]).run().success();
    before.assert_same(&ws.snapshot());
    assert!(!ws.exists(".runbook/tmp"));
}

/// Copy a committed fixture into the workspace, bytes as they are (models may be binary).
fn fixture_to(ws: &Ws, fixture: &str, rel: &str) {
    let to = ws.join(rel);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(repo().join("tests/fixtures").join(fixture), to).unwrap();
}

/// What a trading dataset looks like: a timestamp, a symbol with a comma in it (quoted the
/// way pandas quotes it), the features, the target; `;` as the delimiter.
#[test]
fn trading_csv_with_timestamp_symbol_and_quotes_validates_and_gives_its_time_range() {
    let ws = Ws::empty();
    ws.write(
        "data/v.csv",
        "timestamp;symbol;p;y\n2026-11-01T00:00:00Z;\"Apple; Inc.\";1;1.5\n2026-11-02 12:30:00;\"say \"\"hi\"\"\";2;2\n",
    );
    ws.write(
        "models/m.json",
        r#"{"type": "linear", "weights": [1.0], "bias": 0.0, "features": ["p"]}"#,
    );
    let rb = runbook(
        &ws,
        "trading",
        r#"
let data = validate::load_csv("data/v.csv", "y", #{ delimiter: ";", timestamp: "timestamp", id: "symbol" });
let span = validate::time_range(data);
print(`from ${span.min} to ${span.max}, column ${span.column}, features ${data.features}`);
let m = validate::metrics(data, validate::predict(validate::load_model("models/m.json"), data));
print(`mse ${m.mse}`);
// Without options, the text columns are left out instead of failing the load.
let plain = validate::load_csv("data/v.csv", "y", #{ delimiter: ";" });
print(`text ${plain.text_columns}`);
"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .success()
        .stdout_has("| from 2026-11-01T00:00:00Z to 2026-11-02T12:30:00Z, column timestamp, features [\"p\"]")
        .stdout_has("| mse 0.125")
        .stdout_has("| text [\"timestamp\", \"symbol\"]")
        .stdout_has("`timestamp` from 2026-11-01T00:00:00Z to 2026-11-02T12:30:00Z");
    let log = ws.last_log();
    let load = actions(&log, "validate.load")[0];
    assert_eq!(load["result"]["time_min"], "2026-11-01T00:00:00Z", "{load}");
    assert_eq!(load["args"]["options"]["delimiter"], ";", "{load}");
}

#[test]
fn bad_load_options_are_named() {
    let ws = Ws::empty();
    ws.write("data/v.csv", "p,y\n1,2\n");
    let rb = runbook(
        &ws,
        "opts",
        r#"validate::load_csv("data/v.csv", "y", #{ delimeter: ";" });"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .code(1)
        .stderr_has("validate::load_csv: unknown option `delimeter` (the options are `delimiter`, `features`, `timestamp`, `id`, `max_bytes`)");
    let rb = runbook(
        &ws,
        "opts2",
        r#"validate::time_range(validate::load_csv("data/v.csv"));"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .code(1)
        .stderr_has("was loaded without a timestamp column");
}

/// The same data as Parquet and as CSV: the same dataset, and `load_data` picks the loader
/// by extension.
#[test]
fn parquet_loads_like_its_csv() {
    let ws = Ws::empty();
    fixture_to(&ws, "parquet/validation.parquet", "data/v.parquet");
    fixture_to(&ws, "parquet/validation.csv", "data/v.csv");
    ws.write(
        "models/m.json",
        r#"{"type": "linear", "weights": [1.5, -2.0, 0.01], "bias": 0.0, "features": ["f0", "f1", "f2"]}"#,
    );
    ws.write(
        "models/m2.json",
        r#"{"type": "linear", "weights": [-2.0, 0.01], "bias": 0.0, "features": ["f1", "f2"]}"#,
    );
    ws.write(
        "rb/lib/validation.rhai",
        &std::fs::read_to_string(repo().join("runbooks/lib/validation.rhai")).unwrap(),
    );
    let rb = runbook(
        &ws,
        "pq",
        r#"
import "lib/validation" as v;
let opts = #{ timestamp: "timestamp", id: "symbol" };
let p = validate::load_parquet("data/v.parquet", "y", opts);
let c = validate::load_csv("data/v.csv", "y", opts);
let model = validate::load_model("models/m.json");
let pp = validate::predict(model, p).to_array();
let cp = validate::predict(model, c).to_array();
let same = true;
// f1 is float32 in the Parquet file, and its CSV holds the shortest decimal of each value.
for i in 0..pp.len() { if (pp[i] - cp[i]).abs() > 1e-6 && !(pp[i].is_nan && cp[i].is_nan) { same = false; } }
print(`rows ${p.rows} features ${p.features} text ${p.text_columns} same ${same}`);
print(`span ${validate::time_range(p).max} ${validate::time_range(c).max}`);
print(`by extension ${v::load_data("data/v.parquet", "y").rows}`);
print(`evaluate rows ${validate::evaluate("models/m2.json", "data/v.parquet", "y").rows}`);
"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .success()
        .stdout_has("| rows 50 features [\"f0\", \"f1\", \"f2\"] text [] same true")
        .stdout_has("| span 2026-11-03T01:00:00Z 2026-11-03T01:00:00Z")
        .stdout_has("| by extension 50")
        .stdout_has("| evaluate rows 50");
}

/// Early stopping through scikit-learn: `evaluate` uses rounds 0..=best_iteration and says
/// so in the run log.
#[test]
fn early_stopped_xgboost_model_says_it_uses_best_iteration() {
    let ws = Ws::empty();
    fixture_to(&ws, "xgboost/early_stopping_ubj/model.ubj", "models/m.ubj");
    fixture_to(&ws, "xgboost/early_stopping_ubj/data.csv", "data/d.csv");
    let rb = runbook(
        &ws,
        "es",
        r#"let m = validate::evaluate("models/m.ubj", "data/d.csv"); print(`mse ${m.mse}`);"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .success()
        .stdout_has("as XGBRegressor.predict does");
    let log = ws.last_log();
    let eval = actions(&log, "validate.evaluate")[0];
    let note = eval["result"]["model_note"].as_str().unwrap();
    assert!(note.starts_with("best_iteration "), "{eval}");
}

/// Classifiers get log loss and accuracy; a regression model is refused them by name.
#[test]
fn classifiers_are_scored_with_log_loss_and_accuracy() {
    let ws = Ws::empty();
    fixture_to(&ws, "xgboost/multi_softprob/model.json", "models/mc.json");
    fixture_to(&ws, "xgboost/multi_softprob/data.csv", "data/mc.csv");
    fixture_to(&ws, "lightgbm/binary/model.txt", "models/b.txt");
    fixture_to(&ws, "lightgbm/binary/data.csv", "data/b.csv");
    fixture_to(&ws, "lightgbm/regression/model.txt", "models/r.txt");
    let rb = runbook(
        &ws,
        "cls",
        r#"
let d = validate::load_csv("data/mc.csv");
let p = validate::predict(validate::load_model("models/mc.json"), d);
let ll = validate::log_loss(d, p);
let acc = validate::accuracy(d, p);
assert(ll > 0.0 && ll < 1.1 && acc > 0.5 && acc <= 1.0, `${ll} ${acc}`);
let b = validate::load_csv("data/b.csv");
let bm = validate::load_model("models/b.txt");
print(`kind ${bm.kind} accuracy ${validate::accuracy(b, validate::predict(bm, b)) > 0.8}`);
let e = validate::evaluate("models/b.txt", "data/b.csv");
print(`evaluate has ${"log_loss" in e} ${"accuracy" in e}`);
validate::log_loss(b, validate::predict(validate::load_model("models/r.txt"), b));
"#,
    );
    ws.runbook(&["run", &rb])
        .run()
        .code(1)
        .stdout_has("| kind lightgbm accuracy true")
        .stdout_has("| evaluate has true true")
        .stderr_has("model `models/r.txt` is not a classifier");
}

/// Hostile and oversized inputs fail with exit 1 and a message, never a panic or an abort.
#[test]
fn hostile_inputs_fail_cleanly() {
    let ws = Ws::empty();
    // 928 bytes whose header claims shape (10^12, 9): aborted with exit 134 before.
    let mut huge = npy(&[vec![0.0; 9]]);
    let header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 9), }";
    huge.truncate(10);
    let mut dict = header.to_vec();
    while !(10 + dict.len() + 1).is_multiple_of(64) {
        dict.push(b' ');
    }
    dict.push(b'\n');
    huge[8..10].copy_from_slice(&(dict.len() as u16).to_le_bytes());
    huge.extend_from_slice(&dict);
    huge.resize(928, 0);
    std::fs::create_dir_all(ws.join("data")).unwrap();
    std::fs::write(ws.join("data/huge.npy"), &huge).unwrap();
    ws.write("data/big.csv", "a,y\n1,2\n3,4\n");
    std::fs::create_dir_all(ws.join("models")).unwrap();
    std::fs::write(
        ws.join("models/m.ubj"),
        b"{L\x7f\xff\xff\xff\xff\xff\xff\xff",
    )
    .unwrap();
    for (call, want) in [
        (
            r#"validate::load_npy("data/huge.npy");"#,
            "announces shape [1000000000000, 9]",
        ),
        (
            r#"validate::load_csv("data/big.csv", "y", #{ max_bytes: 8 });"#,
            "more than the 0.0 GiB limit",
        ),
        (
            r#"validate::load_model("models/m.ubj");"#,
            "`models/m.ubj` is not valid XGBoost UBJSON",
        ),
    ] {
        let rb = runbook(&ws, "hostile", call);
        ws.runbook(&["run", &rb]).run().code(1).stderr_has(want);
    }
}
