//! Load validation data, predict with a model, print the MSE and the time taken: the same
//! job as `shared/bench/pandas_mse.py`, to compare the two.
//!
//! Usage: `cargo run --release --example validate_csv -- DATA.csv|DATA.npy|DATA.parquet MODEL [target]`
//! A `.npy` file is one matrix with the target as its last column (features `x0`..). MODEL
//! is any model `Model::load` reads (linear JSON, XGBoost JSON/UBJSON, LightGBM text).
//! `elapsed` on stderr splits the time into loading the data and predicting.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use runbook::validation::{load_csv, load_npy_matrix, load_parquet, mse, Model, ParquetOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: validate_csv DATA.csv|DATA.npy|DATA.parquet MODEL [target]");
        return ExitCode::from(2);
    }
    let (data_path, model_path) = (&args[0], &args[1]);
    let target = args.get(2).map_or("y", String::as_str);
    let start = Instant::now();
    let run = || -> runbook::Result<f64> {
        let model = Model::load(Path::new(model_path), model_path)?;
        let loading = Instant::now();
        let data = if data_path.ends_with(".npy") {
            load_npy_matrix(Path::new(data_path), data_path, None)?
        } else if data_path.ends_with(".parquet") {
            load_parquet(
                Path::new(data_path),
                data_path,
                &ParquetOptions::new(target),
            )?
        } else {
            load_csv(Path::new(data_path), data_path, target)?
        };
        let loaded = loading.elapsed();
        let predicting = Instant::now();
        let pred = model.predict(&data)?;
        eprintln!(
            "load {:.1} ms, predict {:.1} ms",
            loaded.as_secs_f64() * 1000.0,
            predicting.elapsed().as_secs_f64() * 1000.0
        );
        mse(data.y.view(), pred.view())
    };
    match run() {
        Ok(value) => {
            println!("mse {value:.6}");
            eprintln!("elapsed {:.1} ms", start.elapsed().as_secs_f64() * 1000.0);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", e.render());
            ExitCode::from(e.code() as u8)
        }
    }
}
