//! Property tests of the loaders and model readers: no input makes them panic, abort or
//! allocate past what the input could describe, and what they parse is what was written.
//! The same entry points are fuzzed by the `cargo fuzz` targets under `fuzz/`.

use proptest::prelude::*;

use crate::validation::data::{parse_csv, parse_csv_with, parse_npy_matrix, CsvOptions};
use crate::validation::lightgbm;
use crate::validation::model::Model;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes that look a little like CSV, so the generator reaches the parser's corners.
fn csv_like() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b','),
            Just(b';'),
            Just(b'\t'),
            Just(b'"'),
            Just(b'\n'),
            Just(b'\r'),
            Just(b' '),
            Just(b'y'),
            Just(b'a'),
            Just(b'-'),
            Just(b'.'),
            Just(b'e'),
            b'0'..=b'9',
            any::<u8>(),
        ],
        0..400,
    )
}

/// A valid `.npy` header for `descr` and `shape` (any shape text), then `data`.
fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while !(10 + dict.len() + 1).is_multiple_of(64) {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Every committed model fixture's bytes, for mutation.
fn fixture_models() -> &'static [Vec<u8>] {
    static MODELS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    MODELS.get_or_init(read_fixture_models)
}

fn read_fixture_models() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    [
        "xgboost/regression/model.json",
        "xgboost/regression_ubj/model.ubj",
        "xgboost/categorical/model.json",
        "xgboost/multi_softprob/model.json",
        "xgboost/dart/model.json",
        "xgboost/gblinear/model.json",
        "lightgbm/categorical/model.txt",
        "lightgbm/multiclass/model.txt",
    ]
    .iter()
    .map(|p| std::fs::read(root.join(p)).unwrap())
    .collect()
}

fn small_data() -> crate::validation::Dataset {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = std::fs::read_to_string(root.join("xgboost/regression/data.csv")).unwrap();
    let head: String = text.lines().take(40).map(|l| format!("{l}\n")).collect();
    parse_csv(head.as_bytes(), "d.csv", "y").unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn csv_never_panics(bytes in csv_like(), delimiter in prop_oneof![Just(b','), Just(b';'), Just(b'\t')]) {
        let mut o = CsvOptions::new("y");
        o.delimiter = delimiter;
        let _ = parse_csv_with(&bytes, "p.csv", &o);
        o.timestamp = Some("a".into());
        o.id = Some("a".into());
        let _ = parse_csv_with(&bytes, "p.csv", &o);
    }

    /// A matrix written as CSV (any delimiter, quoting, line ending) reads back exactly.
    #[test]
    fn csv_round_trips(
        rows in proptest::collection::vec(proptest::collection::vec(-1e6f64..1e6, 3), 1..40),
        delimiter in prop_oneof![Just(','), Just(';'), Just('\t')],
        quote in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let end = if crlf { "\r\n" } else { "\n" };
        let cell = |v: f64| if quote { format!("\"{v:?}\"") } else { format!("{v:?}") };
        let mut text = format!("a{delimiter}\"b{delimiter}c\"{delimiter}y{end}");
        for r in &rows {
            text.push_str(&format!("{}{delimiter}{}{delimiter}{}{end}", cell(r[0]), cell(r[1]), cell(r[2])));
        }
        let mut o = CsvOptions::new("y");
        o.delimiter = delimiter as u8;
        let d = parse_csv_with(text.as_bytes(), "r.csv", &o).unwrap();
        prop_assert_eq!(&d.features, &vec!["a".to_string(), format!("b{delimiter}c")]);
        for (i, r) in rows.iter().enumerate() {
            prop_assert_eq!(d.x[[i, 0]], r[0]);
            prop_assert_eq!(d.x[[i, 1]], r[1]);
            prop_assert_eq!(d.y[i], r[2]);
        }
    }

    #[test]
    fn npy_never_panics_or_overallocates(
        rows in 0u64..u64::MAX,
        cols in 0u64..1_000_000_000_000,
        data in proptest::collection::vec(any::<u8>(), 0..200),
        descr in prop_oneof![Just("<f8"), Just(">f4"), Just("<i8"), Just("|b1")],
    ) {
        let _ = parse_npy_matrix(&npy(descr, &format!("({rows}, {cols})"), &data), "p.npy", None);
        let _ = parse_npy_matrix(&npy(descr, &format!("({rows},)"), &data), "p.npy", None);
    }

    #[test]
    fn npy_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = parse_npy_matrix(&bytes, "p.npy", None);
        let _ = parse_npy_matrix(&with_magic, "p.npy", None);
    }

}

proptest! {
    // Each case parses a whole model file: fewer cases keep `cargo test` quick.
    #![proptest_config(ProptestConfig { cases: 64, ..config() })]

    /// Any model file with a few bytes changed loads or fails, and a model that loads
    /// predicts or fails: never a panic.
    #[test]
    fn mutated_models_never_panic(
        which in 0usize..8,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let models = fixture_models();
        let mut bytes = models[which].clone();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(model) = Model::from_bytes(&bytes, "m") {
            let _ = model.predict_output(&small_data());
        }
    }

}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_model_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Model::from_bytes(&bytes, "m");
        let mut ubj = b"{".to_vec();
        ubj.extend_from_slice(&bytes);
        let _ = Model::from_bytes(&ubj, "m");
        let mut lgb = b"tree\n".to_vec();
        lgb.extend_from_slice(&bytes);
        let _ = lightgbm::Model::from_text(&lgb, "m");
    }

    /// LightGBM text with its numbers replaced by others (counts, children, thresholds).
    #[test]
    fn lightgbm_numbers_changed_never_panic(seed in any::<u64>(), replacement in prop_oneof![Just("-1"), Just("0"), Just("99999999"), Just("nan"), Just("-2147483648"), Just("1e308")]) {
        let text = String::from_utf8(fixture_models()[6].clone()).unwrap();
        let mut words: Vec<String> = text.split(' ').map(str::to_string).collect();
        let n = words.len();
        for k in 0..4 {
            let i = (seed.wrapping_mul(6364136223846793005).wrapping_add(k * 1442695040888963407) % n as u64) as usize;
            words[i] = replacement.to_string();
        }
        if let Ok(model) = lightgbm::Model::from_text(words.join(" ").as_bytes(), "m") {
            let _ = model.predict_output(&small_data());
        }
    }
}
