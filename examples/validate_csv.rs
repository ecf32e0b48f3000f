//! Load validation data, predict with a model, print the MSE and the time taken: the same
//! job as `shared/bench/pandas_mse.py`, to compare the two.
//!
//! Usage: `cargo run --release --example validate_csv -- DATA.csv|DATA.npy MODEL.json [target]`
//! A `.npy` file is one matrix with the target as its last column (features `x0`..).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use runbook::validation::{load_csv, load_npy_matrix, mse, Model};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: validate_csv DATA.csv|DATA.npy MODEL.json [target]");
        return ExitCode::from(2);
    }
    let (data_path, model_path) = (&args[0], &args[1]);
    let target = args.get(2).map_or("y", String::as_str);
    let start = Instant::now();
    let run = || -> runbook::Result<f64> {
        let model = Model::load(Path::new(model_path), model_path)?;
        let data = if data_path.ends_with(".npy") {
            load_npy_matrix(Path::new(data_path), data_path, None)?
        } else {
            load_csv(Path::new(data_path), data_path, target)?
        };
        let pred = model.predict(&data)?;
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
