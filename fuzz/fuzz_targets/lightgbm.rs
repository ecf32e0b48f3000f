//! The LightGBM text-model reader on arbitrary bytes (after the `tree` line it needs); a
//! model that loads is asked to predict a small dataset. It may fail, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use runbook::validation::lightgbm::Model;
use runbook::validation::parse_csv;

fuzz_target!(|data: &[u8]| {
    let mut text = b"tree\n".to_vec();
    text.extend_from_slice(data);
    if let Ok(model) = Model::from_text(&text, "fuzz.txt") {
        let names = model.feature_names();
        if names.len() > 64 {
            return;
        }
        let mut csv = names.join(",");
        csv.push_str(",y\n");
        for row in 0..4 {
            let cells: Vec<String> = (0..names.len())
                .map(|i| match (row + i) % 4 {
                    0 => String::new(),
                    1 => "0".into(),
                    2 => "-1".into(),
                    _ => "3e9".into(),
                })
                .collect();
            csv.push_str(&cells.join(","));
            csv.push_str(",0\n");
        }
        if let Ok(dataset) = parse_csv(csv.as_bytes(), "fuzz.csv", "y") {
            let _ = model.predict_output(&dataset);
        }
    }
});
