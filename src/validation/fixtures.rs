//! Differential tests: every model under `tests/fixtures/` (written by
//! `tests/fixtures/make_fixtures.py` with the real xgboost and lightgbm) is evaluated here
//! on its data and compared, row by row, with the library's own predictions. No Python is
//! needed: models, data and predictions are committed. The cases come from
//! `tests/fixtures/cases.json`, so a new case needs no new test code.

use std::path::PathBuf;

use serde::Deserialize;

use crate::validation::data::load_csv;
use crate::validation::model::Model;

#[derive(Deserialize)]
struct Cases {
    xgboost: String,
    lightgbm: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    library: String,
    case: String,
    model: String,
    data: String,
    predictions: String,
    rows: usize,
    objective: String,
    #[serde(default)]
    best_iteration: Option<usize>,
    #[serde(default)]
    trees_in_file: Option<usize>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn cases() -> Cases {
    let text = std::fs::read_to_string(root().join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The library's predictions: one column, or one per class.
fn expected(path: &str) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

/// Agreement within 1e-5, relative for values above 1 (a Poisson count of 40 is an f32
/// whose last bit is worth 4e-6).
fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-5 * want.abs().max(1.0)
}

#[test]
fn every_fixture_agrees_with_its_library() {
    let all = cases();
    assert!(all.cases.len() >= 30, "{} cases", all.cases.len());
    let mut failures = Vec::new();
    for case in &all.cases {
        let name = format!("{}/{}", case.library, case.case);
        let model = match Model::load(&root().join(&case.model), &case.model) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let data = load_csv(&root().join(&case.data), &case.data, "y").unwrap();
        assert_eq!(data.n_rows(), case.rows, "{name}");
        let want = expected(&case.predictions);
        let out = match model.predict_output(&data) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let mut bad = 0;
        let mut first = None;
        for (r, w) in want.iter().enumerate() {
            let got: Vec<f64> = match (&out.probabilities, w.len()) {
                (Some(p), n) if n > 1 => p.row(r).to_vec(),
                _ => vec![out.values[r]],
            };
            if got.len() != w.len() || got.iter().zip(w).any(|(g, w)| !close(*g, *w)) {
                bad += 1;
                first.get_or_insert(format!(
                    "row {}: got {got:?}, {} says {w:?}",
                    r + 1,
                    case.library
                ));
            }
        }
        if bad > 0 {
            failures.push(format!(
                "{name} ({}): {bad} of {} rows differ, first {}",
                case.objective,
                want.len(),
                first.unwrap_or_default()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "xgboost {}, lightgbm {}:\n{}",
        all.xgboost,
        all.lightgbm,
        failures.join("\n")
    );
}

#[test]
fn early_stopping_cuts_at_best_iteration_and_says_so() {
    for case in cases().cases.iter().filter(|c| c.best_iteration.is_some()) {
        let model = Model::load(&root().join(&case.model), &case.model).unwrap();
        let Model::XGBoost(b) = &model else {
            panic!("{} is not XGBoost", case.case)
        };
        let best = case.best_iteration.unwrap();
        assert_eq!(b.best_iteration(), Some(best));
        assert_eq!(b.num_trees(), best + 1);
        let note = model.note().unwrap();
        assert_eq!(
            note,
            format!(
                "best_iteration {best}: {} of {} trees used (rounds 0..={best}), as XGBRegressor.predict does",
                best + 1,
                case.trees_in_file.unwrap()
            )
        );
    }
}

#[test]
fn every_fixture_kind_is_covered() {
    let all = cases();
    let objectives: Vec<&str> = all.cases.iter().map(|c| c.objective.as_str()).collect();
    for want in [
        "count:poisson",
        "reg:gamma",
        "reg:tweedie",
        "reg:squaredlogerror",
        "binary:logitraw",
        "reg:quantileerror",
        "binary:hinge",
        "multi:softprob",
        "multi:softmax",
        "binary",
        "poisson",
        "gamma",
        "tweedie",
        "multiclass",
    ] {
        assert!(objectives.contains(&want), "no fixture for {want}");
    }
    for dir in [
        "xgboost/dart",
        "xgboost/gblinear",
        "xgboost/categorical",
        "xgboost/regression_ubj",
        "lightgbm/categorical",
    ] {
        assert!(
            all.cases
                .iter()
                .any(|c| format!("{}/{}", c.library, c.case) == dir),
            "no fixture {dir}"
        );
    }
}
