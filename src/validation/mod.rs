//! Model validation: load held-out data, predict with a model, and score the predictions.
//!
//! This is the pure-Rust core behind the runbook's validation primitives; it knows nothing of
//! Rhai. A rollback promotes an older model version again, and before it does, the runbook
//! checks that version against validation data. That check must be trustworthy (feature
//! names are matched, bad data is reported with file, line and column, NaN never passes
//! silently) and fast on large data, since it sits on the critical path of an incident.
//!
//! - [`data`]: [`Dataset`] from CSV (parallel RFC 4180 parser) or `.npy`, with bounded
//!   reads.
//! - [`parquet`]: [`Dataset`] from Parquet, reading only the needed columns.
//! - [`model`]: [`Model`], a linear model, an XGBoost booster or a LightGBM model, told
//!   apart by content, and predict.
//! - [`xgboost`]: native evaluation of XGBoost models (JSON and UBJSON, via [`ubjson`]).
//! - [`lightgbm`]: native evaluation of LightGBM text models.
//! - [`metrics`]: MSE, RMSE, MAE, R², max absolute error; log loss and accuracy for
//!   classifiers.

pub mod data;
#[cfg(test)]
mod fixtures;
pub mod lightgbm;
pub mod metrics;
pub mod model;
pub mod parquet;
#[cfg(test)]
mod proptests;
pub mod ubjson;
pub mod xgboost;

pub use data::{
    format_timestamp, load_csv, load_csv_with, load_npy_matrix, load_npy_pair, parse_csv,
    parse_csv_with, parse_npy_matrix, parse_npy_pair, parse_timestamp, CsvOptions, Dataset, Input,
    DEFAULT_MAX_INPUT_BYTES,
};
pub use metrics::{accuracy, log_loss, log_loss_binary, mae, max_abs_error, mse, r2, rmse};
pub use model::Model;
pub use parquet::{load_parquet, parse_parquet, ParquetOptions};
pub use xgboost::Booster;
