//! `validate::` — load validation data and models, predict, score, and gate a rollback on a
//! metric (plan §3.1.3, §4.3.2, §5.2). The computing is done by [`crate::validation`]; this
//! file binds it to a run: paths go through the effect layer, results go to the run log,
//! and loaded data is kept for later steps.
//!
//! Validation only reads, so it runs in a dry run too, and it reads what the run sees: a file
//! that an earlier step of a dry run changed, copied or removed is read from the overlay
//! (`Content::Bytes`) or found missing, exactly as a real run would find it. An untouched
//! file is read straight from disk by the fast loaders. The one exception to "only reads"
//! is an external predictor: it is someone else's program and runs in a dry run as well, so
//! it must not write to the workspace. Its scratch files live in `.runbook/tmp/<run-id>/`,
//! runbook's own area, and are removed when it returns.
//!
//! A dataset loaded once is kept in the run's [`DatasetCache`] and handed out again while its
//! file is unchanged, so a 90 MB CSV read in one step is not read again in a later one. The
//! cache checks the file itself (device, inode, size, modification and change times; for a
//! simulated file, the identity of its bytes), not the workspace's change counter: a
//! rollback's registry writes must not throw the data away.
//!
//! Every score is logged as a `check` action (op `validate.<metric>`, `validate.metrics`,
//! `validate.evaluate`, `validate.gate`) so the run log is the audit trail of the decision.

use super::{Family, RhaiResult};
use crate::context::{Ctx, RunContext};
use crate::effects::{Record, RelPath, Source, Stamp};
use crate::error::{Error, Result};
use crate::validation::{self as core, Dataset, Model};
use ndarray::{Array1, Array2};
use rhai::{Array, Dynamic, Engine, FuncRegistration, Map, NativeCallContext, INT};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

/// The plan's MSE limit (§3.1.3: `assert mse < 0.1`), when nothing else sets one.
pub const DEFAULT_MSE_THRESHOLD: f64 = 0.1;
/// The CSV column holding the target, unless a script names another.
pub const DEFAULT_TARGET: &str = "y";
/// How long an external predictor may run unless the script says otherwise.
pub const DEFAULT_EXTERNAL_TIMEOUT_SECS: f64 = 300.0;
/// The metrics `validate::metrics` computes, in the order they are reported.
pub const METRICS: [&str; 5] = ["mse", "rmse", "mae", "r2", "max_abs_error"];

/// Record a check in the run log (validation only reads, so everything it logs is a check).
fn check(
    ctx: &RunContext,
    op: &str,
    args: serde_json::Value,
    summary: &str,
    result: Option<serde_json::Value>,
) {
    let record = Record::new(op, args, summary);
    ctx.ws.check(match result {
        Some(r) => record.with_result(r),
        None => record,
    });
}

/// The validation family's state: the run, and the datasets it loaded. Dereferences to the
/// run's context, so the functions below read `ctx.ws` as everywhere else.
pub struct Validation {
    ctx: Ctx,
    datasets: std::cell::RefCell<DatasetCache>,
}

impl std::ops::Deref for Validation {
    type Target = RunContext;
    fn deref(&self) -> &RunContext {
        &self.ctx
    }
}

// ----- the script-visible types ------------------------------------------------------------

/// A loaded dataset, as scripts hold it (`Dataset` in Rhai). Shared, never copied: the same
/// data may sit in the cache and in several script variables.
#[derive(Clone)]
pub struct DataRef(Rc<Dataset>);

/// A model ready to predict (`Model` in Rhai).
#[derive(Clone)]
pub struct ModelRef(Rc<ModelSpec>);

enum ModelSpec {
    Native {
        model: Model,
        path: RelPath,
    },
    /// Predicts through a command; the model file is read by that command, at predict time.
    External {
        command: Vec<String>,
        path: RelPath,
        timeout: Duration,
    },
}

impl ModelRef {
    fn path(&self) -> &RelPath {
        match &*self.0 {
            ModelSpec::Native { path, .. } | ModelSpec::External { path, .. } => path,
        }
    }

    fn kind(&self) -> &'static str {
        match &*self.0 {
            ModelSpec::Native { model, .. } => model.kind(),
            ModelSpec::External { .. } => "external",
        }
    }
}

/// One prediction per row of a dataset (`Predictions` in Rhai), with where they came from,
/// so a metric's log entry can say which model was scored on which data.
#[derive(Clone)]
pub struct Predictions {
    values: Rc<Array1<f64>>,
    model: String,
    data: String,
    /// Class probabilities (`rows × classes`) of a multi-class model.
    probabilities: Option<Rc<Array2<f64>>>,
    /// Whether the model is a classifier: `values` are probabilities of class 1 (binary)
    /// or classes (multi-class), so log loss and accuracy apply.
    classifier: bool,
}

// ----- the dataset cache -------------------------------------------------------------------

/// How a dataset was loaded, and from which file(s).
#[derive(Clone, PartialEq, Eq, Hash)]
enum DataKey {
    Csv {
        path: RelPath,
        target: String,
    },
    NpyMatrix(RelPath),
    NpyPair {
        x: RelPath,
        y: RelPath,
    },
    /// A CSV file read with options (delimiter, features, timestamp, id, limit).
    CsvWith {
        path: RelPath,
        target: String,
        options: LoadOptions,
    },
    Parquet {
        path: RelPath,
        target: String,
        options: LoadOptions,
    },
}

/// The loading options a script may give as a map (`#{ delimiter: ";", timestamp: "ts" }`),
/// in a form that can key the cache.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
struct LoadOptions {
    delimiter: Option<u8>,
    features: Option<Vec<String>>,
    timestamp: Option<String>,
    id: Option<String>,
    max_bytes: Option<u64>,
}

impl LoadOptions {
    const KEYS: &'static str = "`delimiter`, `features`, `timestamp`, `id`, `max_bytes`";

    fn from_map(map: &Map, function: &str) -> Result<LoadOptions> {
        let bad = |key: &str, want: &str, got: &Dynamic| {
            Error::invalid(
                function,
                format!("option `{key}` must be {want}, got a {}", got.type_name()),
            )
        };
        let text = |key: &str, v: &Dynamic| -> Result<String> {
            v.clone()
                .into_immutable_string()
                .map(|s| s.to_string())
                .map_err(|_| bad(key, "a string", v))
        };
        let mut options = LoadOptions::default();
        for (key, value) in map {
            match key.as_str() {
                "delimiter" => {
                    let d = text("delimiter", value)?;
                    let byte = match d.as_str() {
                        "\\t" | "tab" => b'\t',
                        one if one.len() == 1 && one.is_ascii() => one.as_bytes()[0],
                        _ => {
                            return Err(Error::invalid(
                                function,
                                format!("option `delimiter` must be one ASCII character such as \",\", \";\" or \"\\t\", got `{d}`"),
                            ))
                        }
                    };
                    options.delimiter = Some(byte);
                }
                "features" => {
                    let list = value
                        .clone()
                        .into_typed_array::<rhai::ImmutableString>()
                        .map_err(|_| bad("features", "a list of column names", value))?;
                    options.features = Some(list.into_iter().map(|s| s.to_string()).collect());
                }
                "timestamp" => options.timestamp = Some(text("timestamp", value)?),
                "id" => options.id = Some(text("id", value)?),
                "max_bytes" => {
                    let n = value
                        .as_int()
                        .map_err(|_| bad("max_bytes", "an integer", value))?;
                    options.max_bytes =
                        Some(u64::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| {
                            Error::invalid(
                                function,
                                format!("option `max_bytes` must be positive, got {n}"),
                            )
                        })?);
                }
                other => {
                    return Err(Error::invalid(
                        function,
                        format!("unknown option `{other}` (the options are {})", Self::KEYS),
                    ))
                }
            }
        }
        Ok(options)
    }

    fn csv(&self, target: &str) -> core::CsvOptions {
        let mut o = core::CsvOptions::new(target);
        if let Some(d) = self.delimiter {
            o.delimiter = d;
        }
        o.features.clone_from(&self.features);
        o.timestamp.clone_from(&self.timestamp);
        o.id.clone_from(&self.id);
        if let Some(m) = self.max_bytes {
            o.max_bytes = m;
        }
        o
    }

    fn parquet(&self, target: &str) -> core::ParquetOptions {
        let mut o = core::ParquetOptions::new(target);
        o.features.clone_from(&self.features);
        o.timestamp.clone_from(&self.timestamp);
        o.id.clone_from(&self.id);
        if let Some(m) = self.max_bytes {
            o.max_bytes = m;
        }
        o
    }

    fn json(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        if let Some(d) = self.delimiter {
            obj.insert("delimiter".into(), json!(char::from(d).to_string()));
        }
        if let Some(f) = &self.features {
            obj.insert("features".into(), json!(f));
        }
        if let Some(t) = &self.timestamp {
            obj.insert("timestamp".into(), json!(t));
        }
        if let Some(i) = &self.id {
            obj.insert("id".into(), json!(i));
        }
        if let Some(m) = self.max_bytes {
            obj.insert("max_bytes".into(), json!(m));
        }
        serde_json::Value::Object(obj)
    }
}

impl DataKey {
    fn files(&self) -> Vec<&RelPath> {
        match self {
            DataKey::Csv { path, .. } | DataKey::NpyMatrix(path) => vec![path],
            DataKey::NpyPair { x, y } => vec![x, y],
            DataKey::CsvWith { path, .. } | DataKey::Parquet { path, .. } => vec![path],
        }
    }
}

/// Datasets loaded in this run, kept while their files are unchanged. Lives in the
/// [`Validation`] family state; a run is short, so entries are never evicted, only replaced when their
/// file changes.
#[derive(Default)]
pub struct DatasetCache {
    entries: HashMap<DataKey, (Vec<Stamp>, Rc<Dataset>)>,
}

/// The dataset for `key`, from the cache when its files are unchanged (then `true`), else
/// loaded from what the run sees: the disk, or the dry-run overlay.
fn load_data(ctx: &Validation, key: DataKey) -> Result<(Rc<Dataset>, bool)> {
    let files = key.files();
    let contents = files
        .iter()
        .map(|f| ctx.ws.content(f))
        .collect::<Result<Vec<_>>>()?;
    // Stamped before reading: a file that changes during the read is read again next time.
    let stamps = contents
        .iter()
        .zip(&files)
        .map(|(c, _)| ctx.ws.stamp(c))
        .collect::<Result<Vec<_>>>()?;
    if let Some((cached_stamps, data)) = ctx.datasets.borrow().entries.get(&key) {
        if *cached_stamps == stamps {
            return Ok((data.clone(), true));
        }
    }
    let sources = contents
        .iter()
        .map(|c| ctx.ws.open_content(c))
        .collect::<Result<Vec<_>>>()?;
    let mut sources = sources.into_iter();
    let first = sources.next();
    let data = match (&key, first) {
        (DataKey::Csv { path, target }, Some(Source::File(f))) => {
            core::load_csv(f, path.as_str(), target)?
        }
        (DataKey::Csv { path, target }, Some(Source::Bytes(b))) => {
            core::parse_csv(&b, path.as_str(), target)?
        }
        (DataKey::NpyMatrix(path), Some(Source::File(f))) => {
            core::load_npy_matrix(f, path.as_str(), None)?
        }
        (DataKey::NpyMatrix(path), Some(Source::Bytes(b))) => {
            core::parse_npy_matrix(&b, path.as_str(), None)?
        }
        (
            DataKey::CsvWith {
                path,
                target,
                options,
            },
            Some(Source::File(f)),
        ) => core::load_csv_with(f, path.as_str(), &options.csv(target))?,
        (
            DataKey::CsvWith {
                path,
                target,
                options,
            },
            Some(Source::Bytes(b)),
        ) => core::parse_csv_with(&b, path.as_str(), &options.csv(target))?,
        (
            DataKey::Parquet {
                path,
                target,
                options,
            },
            Some(Source::File(f)),
        ) => core::load_parquet(f, path.as_str(), &options.parquet(target))?,
        (
            DataKey::Parquet {
                path,
                target,
                options,
            },
            Some(Source::Bytes(b)),
        ) => core::parse_parquet(&b, path.as_str(), &options.parquet(target))?,
        (DataKey::NpyPair { x, y }, Some(xs)) => match (xs, sources.next()) {
            (Source::File(xf), Some(Source::File(yf))) => {
                core::load_npy_pair(xf, x.as_str(), yf, y.as_str(), None)?
            }
            _ => core::parse_npy_pair(
                &ctx.ws.bytes(&contents[0])?,
                x.as_str(),
                &ctx.ws.bytes(&contents[1])?,
                y.as_str(),
                None,
            )?,
        },
        _ => {
            return Err(Error::invalid(
                "validation data",
                "a data key has one file per part; this is a bug in runbook",
            ))
        }
    };
    let data = Rc::new(data);
    ctx.datasets
        .borrow_mut()
        .entries
        .insert(key, (stamps, data.clone()));
    Ok((data, false))
}

/// Load (or reuse) a dataset for a script and log it as a check.
fn load_logged(ctx: &Validation, key: DataKey) -> Result<DataRef> {
    let (data, cached) = load_data(ctx, key.clone())?;
    let (args, what) = match &key {
        DataKey::Csv { path, target } => (
            json!({"path": path.as_str(), "target": target}),
            format!("`{path}`"),
        ),
        DataKey::NpyMatrix(path) => (json!({"path": path.as_str()}), format!("`{path}`")),
        DataKey::NpyPair { x, y } => (
            json!({"x": x.as_str(), "y": y.as_str()}),
            format!("`{x}` and `{y}`"),
        ),
        DataKey::CsvWith {
            path,
            target,
            options,
        }
        | DataKey::Parquet {
            path,
            target,
            options,
        } => (
            json!({"path": path.as_str(), "target": target, "options": options.json()}),
            format!("`{path}`"),
        ),
    };
    let mut detail = if cached {
        format!("{} rows, cached", data.n_rows())
    } else {
        format!("{} rows, {} features", data.n_rows(), data.n_features())
    };
    let mut result =
        json!({"rows": data.n_rows(), "features": data.n_features(), "cached": cached});
    if let Some((min, max)) = data.time_range() {
        let (min, max) = (core::format_timestamp(min), core::format_timestamp(max));
        detail.push_str(&format!(
            ", `{}` from {min} to {max}",
            data.timestamps.as_ref().map_or("", |t| t.column.as_str())
        ));
        result["time_min"] = json!(min);
        result["time_max"] = json!(max);
    }
    if !data.text_columns.is_empty() {
        let names: Vec<String> = data
            .text_columns
            .iter()
            .map(|t| format!("`{}`", t.name))
            .collect();
        detail.push_str(&format!(", text columns left out: {}", names.join(", ")));
        result["text_columns"] = json!(data
            .text_columns
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>());
    }
    check(
        ctx,
        "validate.load",
        args,
        &format!("load {what} ({detail})"),
        Some(result),
    );
    Ok(DataRef(data))
}

/// The cache key for data at `path`: a `.npy` matrix by its extension, CSV otherwise.
fn key_for(ctx: &Validation, path: &str, target: &str) -> Result<DataKey> {
    let rel = ctx.ws.resolve(path)?;
    if rel.as_str().ends_with(".npy") {
        if target != DEFAULT_TARGET {
            return Err(Error::invalid(
                format!("data `{rel}`"),
                format!("a .npy matrix holds its target in the last column, so target `{target}` cannot be chosen; leave the target at `y` or use CSV"),
            ));
        }
        return Ok(DataKey::NpyMatrix(rel));
    }
    if rel.as_str().ends_with(".parquet") {
        return Ok(DataKey::Parquet {
            path: rel,
            target: target.to_string(),
            options: LoadOptions::default(),
        });
    }
    Ok(DataKey::Csv {
        path: rel,
        target: target.to_string(),
    })
}

// ----- models and predictions ---------------------------------------------------------------

fn load_model(ctx: &Validation, path: &str) -> Result<ModelRef> {
    let rel = ctx.ws.resolve(path)?;
    let content = ctx.ws.content(&rel)?;
    let model = match ctx.ws.open_content(&content)? {
        Source::File(f) => Model::load(f, rel.as_str())?,
        Source::Bytes(b) => Model::from_bytes(&b, rel.as_str())?,
    };
    // How the model is evaluated, when that is not obvious from the file (XGBoost's
    // `best_iteration` cut), goes to the run log.
    if let Some(note) = model.note() {
        check(
            ctx,
            "validate.load_model",
            json!({"path": rel.as_str()}),
            &format!("load {} model `{rel}`: {note}", model.kind()),
            Some(json!({"kind": model.kind(), "note": note})),
        );
    }
    Ok(ModelRef(Rc::new(ModelSpec::Native { model, path: rel })))
}

fn external_model(
    ctx: &Validation,
    command: Array,
    path: &str,
    timeout_secs: f64,
) -> Result<ModelRef> {
    let what = "validate::external_model";
    let mut words = Vec::with_capacity(command.len());
    for (i, word) in command.into_iter().enumerate() {
        match word.into_immutable_string() {
            Ok(s) => words.push(s.to_string()),
            Err(ty) => {
                return Err(Error::invalid(
                    what,
                    format!("word {} of the command is a {ty}; give the command as a list of strings, such as [\"python3\", \"predict.py\"]", i + 1),
                ))
            }
        }
    }
    let Some(program) = words.first_mut() else {
        return Err(Error::invalid(
            what,
            "the command is empty; give the program and its arguments, such as [\"python3\", \"predict.py\"]",
        ));
    };
    // A program named by a relative path lives in the workspace (a script shipped with the
    // models); a bare name is looked up on PATH, an absolute path is taken as it is.
    if program.contains('/') && !Path::new(program.as_str()).is_absolute() {
        let rel = ctx.ws.resolve(program)?;
        *program = ctx.ws.path_for_child(&rel).display().to_string();
    }
    if !(timeout_secs.is_finite() && timeout_secs > 0.0) {
        return Err(Error::invalid(
            what,
            format!("the timeout must be a positive number of seconds, got {timeout_secs}"),
        ));
    }
    let rel = ctx.ws.resolve(path)?;
    if !ctx.ws.exists(&rel) {
        return Err(Error::io(
            rel.to_string(),
            "find the model file",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    Ok(ModelRef(Rc::new(ModelSpec::External {
        command: words,
        path: rel,
        timeout: Duration::from_secs_f64(timeout_secs),
    })))
}

fn predict(ctx: &Validation, model: &ModelRef, data: &DataRef) -> Result<Predictions> {
    let mut probabilities = None;
    let values = match &*model.0 {
        ModelSpec::Native { model, .. } => {
            let out = model.predict_output(&data.0)?;
            probabilities = out.probabilities.map(Rc::new);
            out.values
        }
        ModelSpec::External {
            command,
            path,
            timeout,
        } => {
            let scratch = ctx.ws.scratch()?;
            // The predictor reads the model file the run sees: in a dry run that may be a
            // simulated copy, which is written to the scratch directory under its own name
            // (predictors often dispatch on the extension).
            let content = ctx.ws.content(path)?;
            let model_file = match ctx.ws.open_content(&content)? {
                Source::File(_) => ctx.ws.path_for_child(path),
                Source::Bytes(b) => scratch.write(path.file_name(), &b)?,
            };
            // The run's `--timeout` cannot interrupt a wait inside a primitive.
            let run = crate::effects::Predictor {
                command,
                model_file: &model_file,
                data: &data.0,
                scratch: &scratch,
                timeout: ctx.bounded(*timeout),
            };
            let values = ctx.ws.predict(run, |seconds| {
                Record::new(
                    "validate.predict",
                    json!({"command": command, "model": path.as_str(), "data": data.0.source, "rows": data.0.n_rows()}),
                    format!(
                        "predict `{path}` on `{}` with `{}` ({} rows, {seconds:.2} s)",
                        data.0.source,
                        command.join(" "),
                        data.0.n_rows()
                    ),
                )
                .with_result(json!({"seconds": (seconds * 1000.0).round() / 1000.0}))
            })?;
            values
        }
    };
    let classifier = matches!(&*model.0, ModelSpec::Native { model, .. } if model.is_classifier());
    Ok(Predictions {
        values: Rc::new(values),
        model: model.path().as_str().to_string(),
        data: data.0.source.clone(),
        probabilities,
        classifier,
    })
}

// ----- metrics and the gate -----------------------------------------------------------------

/// Refuse to score predictions against data they were not made for.
fn check_pairing(data: &Dataset, predictions: &Predictions) -> Result<()> {
    if data.source != predictions.data {
        return Err(Error::invalid(
            "validate",
            format!(
                "the predictions were made for `{}`, not for `{}`; predict on the data you score",
                predictions.data, data.source
            ),
        ));
    }
    Ok(())
}

fn metric_fn(name: &str) -> fn(ndarray::ArrayView1<f64>, ndarray::ArrayView1<f64>) -> Result<f64> {
    match name {
        "mse" => core::mse,
        "rmse" => core::rmse,
        "mae" => core::mae,
        "r2" => core::r2,
        _ => core::max_abs_error,
    }
}

/// One metric, logged as one check action.
fn metric(ctx: &Validation, name: &str, data: &DataRef, predictions: &Predictions) -> Result<f64> {
    check_pairing(&data.0, predictions)?;
    let value = metric_fn(name)(data.0.y.view(), predictions.values.view())
        .map_err(|e| data.0.name_row_in(e))?;
    check(
        ctx,
        &format!("validate.{name}"),
        json!({"model": predictions.model, "data": data.0.source, "rows": data.0.n_rows()}),
        &format!(
            "{name} of `{}` on `{}`: {} ({} rows)",
            predictions.model,
            data.0.source,
            fmt_value(value),
            data.0.n_rows()
        ),
        Some(json!({ "value": value })),
    );
    Ok(value)
}

/// Log loss or accuracy of a classifier's predictions: binary models predict the
/// probability of class 1 (the class is `p > 0.5`, as XGBClassifier and LGBMClassifier
/// decide), multi-class models the class, with the probabilities alongside.
fn class_metric_value(name: &str, data: &Dataset, predictions: &Predictions) -> Result<f64> {
    if !predictions.classifier {
        return Err(Error::invalid(
            format!("validate::{name}"),
            format!(
                "model `{}` is not a classifier (it predicts values, not classes); score it with `validate::mse` or `validate::metrics`",
                predictions.model
            ),
        ));
    }
    let y = data.y.view();
    match (name, &predictions.probabilities) {
        ("log_loss", Some(p)) => core::log_loss(y, p.view()),
        ("log_loss", None) => core::log_loss_binary(y, predictions.values.view()),
        (_, Some(_)) => core::accuracy(y, predictions.values.view()),
        (_, None) => {
            let classes = predictions.values.mapv(|p| if p > 0.5 { 1.0 } else { 0.0 });
            core::accuracy(y, classes.view())
        }
    }
}

/// A classifier metric, logged as one check action.
fn class_metric(
    ctx: &Validation,
    name: &str,
    data: &DataRef,
    predictions: &Predictions,
) -> Result<f64> {
    check_pairing(&data.0, predictions)?;
    let value = class_metric_value(name, &data.0, predictions)?;
    check(
        ctx,
        &format!("validate.{name}"),
        json!({"model": predictions.model, "data": data.0.source, "rows": data.0.n_rows()}),
        &format!(
            "{name} of `{}` on `{}`: {} ({} rows)",
            predictions.model,
            data.0.source,
            fmt_value(value),
            data.0.n_rows()
        ),
        Some(json!({ "value": value })),
    );
    Ok(value)
}

/// Every metric, in [`METRICS`] order. Not logged: the callers log once with all of them.
fn all_metrics(data: &Dataset, predictions: &Array1<f64>) -> Result<Vec<(&'static str, f64)>> {
    let mse = core::mse(data.y.view(), predictions.view())?;
    Ok(vec![
        ("mse", mse),
        ("rmse", mse.sqrt()),
        ("mae", core::mae(data.y.view(), predictions.view())?),
        ("r2", core::r2(data.y.view(), predictions.view())?),
        (
            "max_abs_error",
            core::max_abs_error(data.y.view(), predictions.view())?,
        ),
    ])
}

fn metrics_json(values: &[(&str, f64)], rows: usize) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    for (k, v) in values {
        obj.insert((*k).to_string(), json!(v));
    }
    obj.insert("rows".into(), json!(rows));
    serde_json::Value::Object(obj)
}

fn metrics_map(values: &[(&str, f64)], rows: usize) -> Map {
    let mut map: Map = values
        .iter()
        .map(|(k, v)| ((*k).into(), Dynamic::from_float(*v)))
        .collect();
    map.insert("rows".into(), Dynamic::from_int(rows as INT));
    map
}

fn metrics_text(values: &[(&str, f64)]) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k} {}", fmt_value(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn metrics(ctx: &Validation, data: &DataRef, predictions: &Predictions) -> Result<Map> {
    check_pairing(&data.0, predictions)?;
    let values = all_metrics(&data.0, &predictions.values).map_err(|e| data.0.name_row_in(e))?;
    let rows = data.0.n_rows();
    check(
        ctx,
        "validate.metrics",
        json!({"model": predictions.model, "data": data.0.source, "rows": rows}),
        &format!(
            "metrics of `{}` on `{}` ({rows} rows): {}",
            predictions.model,
            data.0.source,
            metrics_text(&values)
        ),
        Some(metrics_json(&values, rows)),
    );
    Ok(metrics_map(&values, rows))
}

fn evaluate(ctx: &Validation, model_path: &str, data_path: &str, target: &str) -> Result<Map> {
    let key = key_for(ctx, data_path, target)?;
    let (data, cached) = load_data(ctx, key)?;
    let model = load_model(ctx, model_path)?;
    let ModelSpec::Native {
        model: native,
        path,
    } = &*model.0
    else {
        unreachable!("load_model gives native models");
    };
    let output = native.predict_output(&data)?;
    let predictions = output.values.clone();
    let mut values = all_metrics(&data, &predictions).map_err(|e| data.name_row_in(e))?;
    if native.is_classifier() {
        let p = Predictions {
            values: Rc::new(output.values),
            model: path.as_str().to_string(),
            data: data.source.clone(),
            probabilities: output.probabilities.map(Rc::new),
            classifier: true,
        };
        values.push(("log_loss", class_metric_value("log_loss", &data, &p)?));
        values.push(("accuracy", class_metric_value("accuracy", &data, &p)?));
    }
    let rows = data.n_rows();
    let mut result = metrics_json(&values, rows);
    result["cached"] = json!(cached);
    let model_note = native.note();
    if let Some(note) = &model_note {
        result["model_note"] = json!(note);
    }
    let cached_note = match (cached, &model_note) {
        (true, Some(n)) => format!(", data cached; {n}"),
        (true, None) => ", data cached".to_string(),
        (false, Some(n)) => format!("; {n}"),
        (false, None) => String::new(),
    };
    check(
        ctx,
        "validate.evaluate",
        json!({"model": path.as_str(), "data": data.source, "target": data.target}),
        &format!(
            "evaluate `{path}` on `{}` ({rows} rows{cached_note}): {}",
            data.source,
            metrics_text(&values)
        ),
        Some(result),
    );
    Ok(metrics_map(&values, rows))
}

/// `validation.mse_threshold` from the training configuration, as the run sees it, or the
/// plan's 0.1 when the file or the key is absent.
pub fn threshold(ctx: &RunContext, config_path: &str) -> Result<f64> {
    let rel = ctx.ws.resolve(config_path)?;
    if !ctx.ws.exists(&rel) {
        return Ok(DEFAULT_MSE_THRESHOLD);
    }
    let config = crate::document::parse_yaml(&ctx.ws.read(&rel)?, rel.as_str())?;
    let bad = |got: String| {
        Error::invalid(
            format!("`{rel}`"),
            format!("`validation.mse_threshold` must be a positive number, got {got}; fix the file or give the runbook a threshold parameter"),
        )
    };
    let Some(validation) = config.get("validation") else {
        return Ok(DEFAULT_MSE_THRESHOLD);
    };
    if !validation.is_object() {
        return Err(bad(format!(
            "a `validation` section that is `{validation}`"
        )));
    }
    match validation.get("mse_threshold") {
        None | Some(serde_json::Value::Null) => Ok(DEFAULT_MSE_THRESHOLD),
        Some(v) => match v.as_f64() {
            Some(t) if t > 0.0 && t.is_finite() => Ok(t),
            _ => Err(bad(format!("`{v}`"))),
        },
    }
}

/// Pass when `value` is at most `threshold`; otherwise fail with a message that names the
/// metric, the value, what was measured and the limit. Logged either way.
fn gate(ctx: &RunContext, metric: &str, value: f64, threshold: f64, label: &str) -> Result<()> {
    if threshold.is_nan() {
        return Err(Error::invalid(
            "validate::gate",
            format!("the threshold for {metric} of {label} is NaN; give a number"),
        ));
    }
    let passed = value <= threshold;
    let (shown, limit) = (fmt_value(value), fmt_value(threshold));
    let message = if value.is_nan() {
        format!(
            "{metric} of {label} is not a number (NaN), so it cannot pass the threshold {limit}"
        )
    } else if passed {
        format!("{metric} {shown} of {label} is within the threshold {limit}")
    } else {
        format!("{metric} {shown} of {label} is above the threshold {limit}")
    };
    check(
        ctx,
        "validate.gate",
        json!({"metric": metric, "value": value, "threshold": threshold, "label": label}),
        &format!("gate: {message}"),
        Some(json!({ "passed": passed })),
    );
    if passed {
        Ok(())
    } else {
        Err(Error::Failed {
            location: None,
            step: None,
            message,
        })
    }
}

/// A metric for people: four significant digits (`0.2731`, `0.002512`, `12.35`), trailing
/// zeros dropped (`0.1`), scientific notation for the very small and the very large.
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-5..=9).contains(&magnitude) {
        return format!("{v:.3e}");
    }
    let decimals = (3 - magnitude).max(0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A number a script gave to `function`, integer or float.
fn number(value: &Dynamic, function: &str, what: &str) -> Result<f64> {
    if let Ok(f) = value.as_float() {
        return Ok(f);
    }
    if let Ok(i) = value.as_int() {
        return Ok(i as f64);
    }
    Err(Error::invalid(
        function,
        format!("`{what}` must be a number, got a {}", value.type_name()),
    ))
}

// ----- registration -----------------------------------------------------------------------

pub fn family(ctx: &Ctx) -> Family {
    let mut f = Family::new(
        "validate",
        "Validation: load data and models, predict, score, and gate a rollback on a metric. It only reads, so it also runs in a dry run, against the state the run simulates. Every score is logged as a check in the run log.",
    );
    let v = Rc::new(Validation {
        ctx: ctx.clone(),
        datasets: Default::default(),
    });

    let c = v.clone();
    f.add(
        "load_csv",
        &["path: &str", "Dataset"],
        "Load a CSV file with a header line; column `y` is the target, every other column a feature. Loaded once per run: a later load of the unchanged file reuses it.\n```rhai\nlet data = validate::load_csv(\"data/validation.csv\");\nprint(`${data.rows} rows, features ${data.features}`);\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<DataRef> {
            c.ws.resolve(path)
                .and_then(|rel| load_logged(&c, DataKey::Csv { path: rel, target: DEFAULT_TARGET.into() }))
                .map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "load_csv",
        &["path: &str", "target: &str", "Dataset"],
        "Like `validate::load_csv(path)`, with the target in column `target`.\n```rhai\nlet data = validate::load_csv(\"data/validation.csv\", \"demand\");\n```",
        move |call: NativeCallContext, path: &str, target: &str| -> RhaiResult<DataRef> {
            c.ws.resolve(path)
                .and_then(|rel| load_logged(&c, DataKey::Csv { path: rel, target: target.to_string() }))
                .map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "load_csv",
        &["path: &str", "target: &str", "options: Map", "Dataset"],
        "Like `validate::load_csv(path, target)`, with options: `delimiter` (one character, `\"\\t\"` for tab; default `,`), `features` (the feature columns; every other column is skipped unread), `timestamp` (a column of RFC 3339 or `YYYY-mm-dd HH:MM:SS` UTC timestamps, for `validate::time_range`), `id` (a column of row ids named in messages), `max_bytes` (the largest file read, default 4 GiB). Cells follow RFC 4180: a quoted cell may hold delimiters, `\"\"` and newlines. Without `features`, a column holding text is left out of the features (and named in the log) rather than failing the load; a model that needs it fails naming the cell.\n```rhai\nlet data = validate::load_csv(\"data/validation.csv\", \"y\", #{ delimiter: \";\", timestamp: \"timestamp\", id: \"symbol\" });\nlet span = validate::time_range(data);\nprint(`validation data from ${span.min} to ${span.max}`);\n```",
        move |call: NativeCallContext, path: &str, target: &str, options: Map| -> RhaiResult<DataRef> {
            LoadOptions::from_map(&options, "validate::load_csv")
                .and_then(|options| Ok(DataKey::CsvWith { path: c.ws.resolve(path)?, target: target.to_string(), options }))
                .and_then(|key| load_logged(&c, key))
                .map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "load_parquet",
        &["path: &str", "Dataset"],
        "Load a Parquet file (`DataFrame.to_parquet`): column `y` is the target, every other numeric column a feature; other columns are never read. Nulls are missing values. Snappy-compressed or uncompressed files (pandas' default is snappy).\n```rhai\nlet data = validate::load_parquet(\"data/validation.parquet\");\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<DataRef> {
            c.ws.resolve(path)
                .and_then(|rel| load_logged(&c, DataKey::Parquet { path: rel, target: DEFAULT_TARGET.into(), options: LoadOptions::default() }))
                .map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "load_parquet",
        &["path: &str", "target: &str", "Dataset"],
        "Like `validate::load_parquet(path)`, with the target in column `target`.\n```rhai\nlet data = validate::load_parquet(\"data/validation.parquet\", \"demand\");\n```",
        move |call: NativeCallContext, path: &str, target: &str| -> RhaiResult<DataRef> {
            c.ws.resolve(path)
                .and_then(|rel| load_logged(&c, DataKey::Parquet { path: rel, target: target.to_string(), options: LoadOptions::default() }))
                .map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "load_parquet",
        &["path: &str", "target: &str", "options: Map", "Dataset"],
        "Like `validate::load_parquet(path, target)`, with the options of `validate::load_csv` (`features`, `timestamp`, `id`, `max_bytes`; a Parquet timestamp column may be a `TIMESTAMP`, a `DATE` or strings).\n```rhai\nlet data = validate::load_parquet(\"data/validation.parquet\", \"y\", #{ timestamp: \"timestamp\", id: \"symbol\" });\n```",
        move |call: NativeCallContext, path: &str, target: &str, options: Map| -> RhaiResult<DataRef> {
            LoadOptions::from_map(&options, "validate::load_parquet")
                .and_then(|options| Ok(DataKey::Parquet { path: c.ws.resolve(path)?, target: target.to_string(), options }))
                .and_then(|key| load_logged(&c, key))
                .map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "time_range",
        &["data: Dataset", "Map"],
        "The earliest and latest timestamp of data loaded with a `timestamp` column, as RFC 3339 UTC strings (`#{ column, min, max, min_micros, max_micros }`; the `_micros` values are microseconds since 1970 and compare as numbers), for the post-rollback leakage check. Fails when the data has no timestamp column.\n```rhai\nlet span = validate::time_range(data);\nassert(span.min > \"2026-10-01\", `validation data starts at ${span.min}, inside the training window`);\n```",
        move |call: NativeCallContext, data: DataRef| -> RhaiResult<Map> {
            time_range(&data.0).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "load_npy",
        &["path: &str", "Dataset"],
        "Load one 2-D `.npy` matrix (float64 or float32): the last column is the target, the others are features named `x0`, `x1`, ...\n```rhai\nlet data = validate::load_npy(\"data/validation.npy\");\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<DataRef> {
            c.ws.resolve(path)
                .and_then(|rel| load_logged(&c, DataKey::NpyMatrix(rel)))
                .map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "load_npy",
        &["x_path: &str", "y_path: &str", "Dataset"],
        "Load features from one `.npy` file (a rows × features matrix) and the target from another (a vector).\n```rhai\nlet data = validate::load_npy(\"data/X_val.npy\", \"data/y_val.npy\");\n```",
        move |call: NativeCallContext, x_path: &str, y_path: &str| -> RhaiResult<DataRef> {
            let key = c.ws.resolve(x_path).and_then(|x| Ok(DataKey::NpyPair { x, y: c.ws.resolve(y_path)? }));
            key.and_then(|k| load_logged(&c, k)).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "load_model",
        &["path: &str", "Model"],
        "Load a model, told apart by content: a linear model (`{\"type\": \"linear\", \"weights\": [...], \"bias\": b, \"features\": [...]}`), an XGBoost model (`save_model(\"m.json\")` or `\"m.ubj\"`; gbtree, dart or gblinear; regression, binary, count, gamma, tweedie, quantile and multi-class objectives; categorical splits; `best_iteration` honoured as `XGBRegressor.predict` does, and logged) or a LightGBM text model (`save_model(\"model.txt\")`). Other formats: `validate::external_model`.\n```rhai\nlet model = validate::load_model(\"models/sl_model_v4.json\");\nprint(model.kind);\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<ModelRef> { load_model(&c, path).map_err(|e| c.fail_at(&call, e)) },
    );
    let c = v.clone();
    f.add(
        "external_model",
        &["command: Array", "model_path: &str", "Model"],
        "A model that predicts through a command, for any other format. The command (a list: program, then arguments; no shell) gets the model file and a CSV of the features as its last two arguments (or where the arguments `{model}` and `{data}` stand), runs in the workspace, and prints one prediction per line. It is stopped after 300 s, or sooner when the run's `--timeout` runs out. It also runs in a dry run, so it must not write to the workspace.\n```rhai\nlet model = validate::external_model([\"python3\", \"tools/predict.py\"], \"models/sl_model_v4.pkl\");\n```",
        move |call: NativeCallContext, command: Array, model_path: &str| -> RhaiResult<ModelRef> {
            external_model(&c, command, model_path, DEFAULT_EXTERNAL_TIMEOUT_SECS).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "external_model",
        &["command: Array", "model_path: &str", "timeout_secs: Dynamic", "Model"],
        "Like `validate::external_model(command, model_path)`, stopped after `timeout_secs` seconds.\n```rhai\nlet model = validate::external_model([\"tools/predict.sh\"], \"models/m.onnx\", 30);\n```",
        move |call: NativeCallContext, command: Array, model_path: &str, timeout_secs: Dynamic| -> RhaiResult<ModelRef> {
            number(&timeout_secs, "validate::external_model", "timeout_secs")
                .and_then(|t| external_model(&c, command, model_path, t))
                .map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "predict",
        &["model: Model", "data: Dataset", "Predictions"],
        "Predict one value per row of `data`. The model's feature names are matched to the data's columns by name; a missing feature is an error that names it.\n```rhai\nlet pred = validate::predict(model, data);\nprint(pred.len);\n```",
        move |call: NativeCallContext, model: ModelRef, data: DataRef| -> RhaiResult<Predictions> {
            predict(&c, &model, &data).map_err(|e| c.fail_at(&call, e))
        },
    );
    for (name, doc) in [
        (
            "mse",
            "Mean squared error of `predictions` against the target of `data`.",
        ),
        ("rmse", "Root mean squared error, in the target's unit."),
        ("mae", "Mean absolute error."),
        (
            "r2",
            "Coefficient of determination R² (1 is perfect, 0 is as good as predicting the mean).",
        ),
        ("max_abs_error", "The largest absolute error over all rows."),
    ] {
        let c = v.clone();
        f.add(
            name,
            &["data: Dataset", "predictions: Predictions", "f64"],
            &format!("{doc} Logged as a check. Fails on NaN or infinite values, naming the row.\n```rhai\nlet v = validate::{name}(data, validate::predict(model, data));\n```"),
            move |call: NativeCallContext, data: DataRef, predictions: Predictions| -> RhaiResult<f64> {
                metric(&c, name, &data, &predictions).map_err(|e| c.fail_at(&call, e))
            },
        );
    }
    for (name, doc) in [
        (
            "log_loss",
            "Log loss of a classifier (binary: the predicted probability of class 1; multi-class: the class probabilities), with the targets as class numbers `0..classes`; probabilities are clipped to [ε, 1-ε] as scikit-learn does.",
        ),
        (
            "accuracy",
            "The share of rows whose predicted class is the target (a binary model predicts class 1 when its probability is above 0.5).",
        ),
    ] {
        let c = v.clone();
        f.add(
            name,
            &["data: Dataset", "predictions: Predictions", "f64"],
            &format!("{doc} Logged as a check. Fails for a model that is not a classifier.\n```rhai\nlet v = validate::{name}(data, validate::predict(model, data));\n```"),
            move |call: NativeCallContext, data: DataRef, predictions: Predictions| -> RhaiResult<f64> {
                class_metric(&c, name, &data, &predictions).map_err(|e| c.fail_at(&call, e))
            },
        );
    }
    let c = v.clone();
    f.add(
        "metrics",
        &["data: Dataset", "predictions: Predictions", "Map"],
        "All five metrics at once, as a map `#{ mse, rmse, mae, r2, max_abs_error, rows }`; logged as one check.\n```rhai\nlet m = validate::metrics(data, validate::predict(model, data));\nprint(`mse ${m.mse}, r2 ${m.r2}`);\n```",
        move |call: NativeCallContext, data: DataRef, predictions: Predictions| -> RhaiResult<Map> {
            metrics(&c, &data, &predictions).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "evaluate",
        &["model_path: &str", "data_path: &str", "Map"],
        "Load a model and data (CSV or Parquet with target `y`, or a `.npy` matrix, told by the extension), predict, and return all metrics as in `validate::metrics` (with `log_loss` and `accuracy` for a classifier); logged as one check, with how the model was evaluated (XGBoost's `best_iteration` cut) when that matters.\n```rhai\nlet m = validate::evaluate(\"models/sl_model_v4.json\", \"data/validation.csv\");\n```",
        move |call: NativeCallContext, model_path: &str, data_path: &str| -> RhaiResult<Map> {
            evaluate(&c, model_path, data_path, DEFAULT_TARGET).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "evaluate",
        &["model_path: &str", "data_path: &str", "target: &str", "Map"],
        "Like `validate::evaluate(model_path, data_path)`, with the CSV's target in column `target`.\n```rhai\nlet m = validate::evaluate(prod.model_path, params.data, params.target);\n```",
        move |call: NativeCallContext, model_path: &str, data_path: &str, target: &str| -> RhaiResult<Map> {
            evaluate(&c, model_path, data_path, target).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = v.clone();
    f.add(
        "threshold",
        &["config_path: &str", "f64"],
        "The MSE limit: `validation.mse_threshold` from the training configuration at `config_path` (as the run sees it, so a dry run reads a simulated config), or 0.1 when the file or the key is absent. Malformed YAML is an error with its line and column.\n```rhai\nlet limit = if params.threshold == () { validate::threshold(\"configs/sl/training_configs.yaml\") } else { params.threshold };\n```",
        move |call: NativeCallContext, config_path: &str| -> RhaiResult<f64> { threshold(&c, config_path).map_err(|e| c.fail_at(&call, e)) },
    );
    let c = v.clone();
    f.add(
        "gate",
        &["metric: &str", "value: Dynamic", "threshold: Dynamic", "label: &str", "()"],
        "Fail the step when `value` is above `threshold` (or NaN), with a message such as ``mse 0.2731 of `sl_forecaster` v5 is above the threshold 0.1``; pass otherwise. Logged as a check either way.\n```rhai\nvalidate::gate(\"mse\", m.mse, limit, \"`sl_forecaster` v4\");\n```",
        move |call: NativeCallContext, metric: &str, value: Dynamic, threshold: Dynamic, label: &str| -> RhaiResult<()> {
            number(&value, "validate::gate", "value")
                .and_then(|v| Ok((v, number(&threshold, "validate::gate", "threshold")?)))
                .and_then(|(v, t)| gate(&c, metric, v, t, label))
                .map_err(|e| c.fail_at(&call, e))
        },
    );
    f
}

/// `validate::time_range`: the data's timestamp span.
fn time_range(data: &Dataset) -> Result<Map> {
    let Some((min, max)) = data.time_range() else {
        return Err(Error::invalid(
            "validate::time_range",
            format!(
                "data `{}` was loaded without a timestamp column; load it with `#{{ timestamp: \"COLUMN\" }}`",
                data.source
            ),
        ));
    };
    let mut map = Map::new();
    let column = data
        .timestamps
        .as_ref()
        .map_or(String::new(), |t| t.column.clone());
    map.insert("column".into(), Dynamic::from(column));
    map.insert("min".into(), Dynamic::from(core::format_timestamp(min)));
    map.insert("max".into(), Dynamic::from(core::format_timestamp(max)));
    map.insert("min_micros".into(), Dynamic::from_int(min as INT));
    map.insert("max_micros".into(), Dynamic::from_int(max as INT));
    Ok(map)
}

/// Register the custom types scripts get from `validate::` (`Dataset`, `Model`,
/// `Predictions`) with their properties, methods and printed forms.
pub fn register_types(engine: &mut Engine) {
    engine.register_type_with_name::<DataRef>("Dataset");
    engine.register_type_with_name::<ModelRef>("Model");
    engine.register_type_with_name::<Predictions>("Predictions");

    getter(
        engine,
        "rows",
        "data: &mut Dataset",
        "int",
        "Number of rows.",
        |d: &mut DataRef| d.0.n_rows() as INT,
    );
    getter(
        engine,
        "features",
        "data: &mut Dataset",
        "Array",
        "Feature column names, in column order.",
        |d: &mut DataRef| -> Array {
            d.0.features
                .iter()
                .map(|f| Dynamic::from(f.clone()))
                .collect()
        },
    );
    getter(
        engine,
        "target",
        "data: &mut Dataset",
        "String",
        "The target column's name.",
        |d: &mut DataRef| d.0.target.clone(),
    );
    getter(
        engine,
        "source",
        "data: &mut Dataset",
        "String",
        "The data file, as named in the workspace.",
        |d: &mut DataRef| d.0.source.clone(),
    );

    getter(
        engine,
        "text_columns",
        "data: &mut Dataset",
        "Array",
        "Columns left out of the features because they hold text (a symbol, a date).",
        |d: &mut DataRef| -> Array {
            d.0.text_columns
                .iter()
                .map(|t| Dynamic::from(t.name.clone()))
                .collect()
        },
    );

    getter(
        engine,
        "kind",
        "model: &mut Model",
        "String",
        "`linear`, `xgboost`, `lightgbm` or `external`.",
        |m: &mut ModelRef| m.kind().to_string(),
    );
    getter(
        engine,
        "source",
        "model: &mut Model",
        "String",
        "The model file, as named in the workspace.",
        |m: &mut ModelRef| m.path().as_str().to_string(),
    );
    getter(
        engine,
        "features",
        "model: &mut Model",
        "Dynamic",
        "The feature names the model expects, or `()` when it does not record them.",
        |m: &mut ModelRef| -> Dynamic {
            match &*m.0 {
                ModelSpec::Native { model, .. } => model
                    .feature_names()
                    .map(|names| {
                        names
                            .iter()
                            .map(|n| Dynamic::from(n.clone()))
                            .collect::<Array>()
                            .into()
                    })
                    .unwrap_or(Dynamic::UNIT),
                ModelSpec::External { .. } => Dynamic::UNIT,
            }
        },
    );

    getter(
        engine,
        "len",
        "predictions: &mut Predictions",
        "int",
        "Number of predictions (one per data row).",
        |p: &mut Predictions| p.values.len() as INT,
    );
    getter(
        engine,
        "model",
        "predictions: &mut Predictions",
        "String",
        "The model file that made them.",
        |p: &mut Predictions| p.model.clone(),
    );
    FuncRegistration::new("len")
        .with_params_info(["predictions: &mut Predictions", "int"])
        .with_comments(["/// Number of predictions, as `predictions.len`.\n/// ```rhai\n/// assert(pred.len() == data.rows, \"one prediction per row\");\n/// ```"])
        .register_into_engine(engine, |p: &mut Predictions| p.values.len() as INT);
    FuncRegistration::new("to_array")
        .with_params_info(["predictions: &mut Predictions", "Array"])
        .with_comments(["/// The predictions as an array of floats (for small data: the metrics need no conversion).\n/// ```rhai\n/// let first = validate::predict(model, data).to_array()[0];\n/// ```"])
        .register_into_engine(engine, |p: &mut Predictions| -> Array {
            p.values.iter().map(|v| Dynamic::from_float(*v)).collect()
        });

    printable(engine, |d: &DataRef| describe_data(&d.0));
    printable(engine, describe_model);
    printable(engine, describe_predictions);
}

/// How `print` and string interpolation show a value of a custom type.
fn printable<T: rhai::Variant + Clone>(engine: &mut Engine, describe: fn(&T) -> String) {
    engine.register_fn("to_string", move |v: &mut T| describe(v));
    engine.register_fn("to_debug", move |v: &mut T| describe(v));
}

fn getter<T: rhai::Variant + Clone, R: rhai::Variant + Clone>(
    engine: &mut Engine,
    prop: &str,
    this: &str,
    returns: &str,
    doc: &str,
    get: impl Fn(&mut T) -> R + 'static,
) {
    FuncRegistration::new_getter(prop)
        .with_params_info([this, returns])
        .with_comments([format!("/// {doc}")])
        .register_into_engine(engine, get);
}

fn describe_data(d: &Dataset) -> String {
    format!(
        "Dataset(`{}`: {} rows, {} features, target `{}`)",
        d.source,
        d.n_rows(),
        d.n_features(),
        d.target
    )
}

fn describe_model(m: &ModelRef) -> String {
    match &*m.0 {
        ModelSpec::Native { .. } => format!("Model({} `{}`)", m.kind(), m.path()),
        ModelSpec::External { command, .. } => {
            format!("Model(`{}` through `{}`)", m.path(), command.join(" "))
        }
    }
}

fn describe_predictions(p: &Predictions) -> String {
    format!(
        "Predictions({} of `{}` on `{}`)",
        p.values.len(),
        p.model,
        p.data
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::{Console, Effect, Workspace};

    const CONFIG_PATH: &str = "configs/sl/training_configs.yaml";

    fn context(dir: &Path) -> Ctx {
        let ws = Workspace::open(dir, "unit", false, Console::Quiet).unwrap();
        RunContext::new(ws)
    }

    fn write(ctx: &RunContext, path: &str, bytes: &[u8]) {
        let path = ctx.ws.resolve(path).unwrap();
        let effect = Effect::Write {
            path,
            bytes: bytes.to_vec(),
        };
        ctx.ws
            .perform(effect, |_| {
                Record::new("test.write", serde_json::Value::Null, "write")
            })
            .unwrap();
    }

    #[test]
    fn gate_passes_up_to_the_threshold_and_fails_above_it_or_on_nan() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let label = "`sl_forecaster` v5";
        assert!(gate(&ctx, "mse", 0.1, 0.1, label).is_ok());
        assert!(gate(&ctx, "mse", 0.0999, 0.1, label).is_ok());
        let err = gate(&ctx, "mse", 0.27314, 0.1, label).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mse 0.2731 of `sl_forecaster` v5 is above the threshold 0.1"
        );
        let err = gate(&ctx, "mse", f64::NAN, 0.1, label).unwrap_err();
        assert!(err.to_string().contains("not a number (NaN)"), "{err}");
        assert!(gate(&ctx, "mse", f64::INFINITY, 0.1, label).is_err());
        assert!(gate(&ctx, "mse", 0.0, f64::NAN, label).is_err());
    }

    #[test]
    fn threshold_reads_the_config_or_falls_back_to_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        assert_eq!(threshold(&ctx, CONFIG_PATH).unwrap(), DEFAULT_MSE_THRESHOLD);
        let config = dir.path().join(CONFIG_PATH);
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        for (text, want) in [
            ("validation:\n  mse_threshold: 0.25\n", Some(0.25)),
            ("validation:\n  mse_threshold: 2\n", Some(2.0)),
            ("validation:\n  split: time\n", Some(DEFAULT_MSE_THRESHOLD)),
            ("model:\n  type: xgboost\n", Some(DEFAULT_MSE_THRESHOLD)),
            ("", Some(DEFAULT_MSE_THRESHOLD)),
            ("validation:\n  mse_threshold: -1\n", None),
            ("validation:\n  mse_threshold: [0.1]\n", None),
            ("validation: 0.1\n", None),
        ] {
            std::fs::write(&config, text).unwrap();
            match (threshold(&ctx, CONFIG_PATH), want) {
                (Ok(t), Some(w)) => assert_eq!(t, w, "{text:?}"),
                (Err(e), None) => assert!(e.to_string().contains("mse_threshold"), "{e}"),
                (got, _) => panic!("{text:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn datasets_are_reused_until_their_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Validation {
            ctx: context(dir.path()),
            datasets: Default::default(),
        };
        std::fs::write(dir.path().join("d.csv"), "a,y\n1,2\n").unwrap();
        let key = || DataKey::Csv {
            path: ctx.ws.resolve("d.csv").unwrap(),
            target: "y".into(),
        };
        let (first, cached) = load_data(&ctx, key()).unwrap();
        assert!(!cached);
        // Other changes to the workspace do not matter.
        write(&ctx, "other.txt", b"x");
        let (again, cached) = load_data(&ctx, key()).unwrap();
        assert!(cached && Rc::ptr_eq(&first, &again));
        // A rewrite of the file does, even with the same size.
        write(
            &ctx,
            "d.csv",
            b"a,y
3,4
",
        );
        let (fresh, cached) = load_data(&ctx, key()).unwrap();
        assert!(!cached);
        assert_eq!(fresh.y.to_vec(), vec![4.0]);
    }

    #[test]
    fn values_are_shown_with_four_significant_digits() {
        for (v, want) in [
            (0.27314, "0.2731"),
            (0.1, "0.1"),
            (0.0025104, "0.00251"),
            (12.3456, "12.35"),
            (1.5, "1.5"),
            (20.0, "20"),
            (12345.6, "12346"),
            (0.0, "0"),
            (-0.5, "-0.5"),
            (1e-7, "1.000e-7"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(fmt_value(v), want, "{v}");
        }
    }
}
