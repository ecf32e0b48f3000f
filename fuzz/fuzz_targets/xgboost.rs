//! The XGBoost reader (JSON and UBJSON, told apart by content) on arbitrary bytes; a model
//! that loads is asked to predict a small dataset. It may fail, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use runbook::validation::{parse_csv, Booster};

fuzz_target!(|data: &[u8]| {
    if let Ok(booster) = Booster::from_bytes(data, "fuzz.json") {
        let names = booster
            .feature_names()
            .map(|n| n.to_vec())
            .unwrap_or_else(|| (0..booster.num_features()).map(|i| format!("f{i}")).collect());
        if names.len() > 64 {
            return;
        }
        let mut csv = names.join(",");
        csv.push_str(",y\n");
        for row in 0..4 {
            let cells: Vec<String> = (0..names.len())
                .map(|i| match (row + i) % 4 {
                    0 => String::new(),
                    1 => "0.5".into(),
                    2 => "-3".into(),
                    _ => "1e30".into(),
                })
                .collect();
            csv.push_str(&cells.join(","));
            csv.push_str(",0\n");
        }
        if let Ok(dataset) = parse_csv(csv.as_bytes(), "fuzz.csv", "y") {
            let _ = booster.predict_output(&dataset);
        }
    }
});
