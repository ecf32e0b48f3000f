//! Validation data from Parquet files (`DataFrame.to_parquet`), where most ML teams keep
//! their validation sets.
//!
//! Only the columns validation needs are read: the target, the features (the caller's list,
//! or every numeric column that is not the target, timestamp or id), and the timestamp and
//! id columns when asked for. Other columns (strings, nested data) are never decoded, and
//! from a file never even read: the reader fetches the byte ranges of the needed column
//! chunks with positioned reads (`pread`), so several threads decode columns at once
//! without sharing a file offset. Nulls become NaN (a missing value, as in pandas).
//!
//! Numeric columns are `DOUBLE`, `FLOAT`, `INT32` and `INT64` (integers as floats; a
//! timestamp or date column is never a feature). A timestamp column may be a Parquet
//! `TIMESTAMP` (milliseconds, microseconds or nanoseconds), a `DATE`, or strings in the CSV
//! loader's formats. The file is untrusted: its declared row count is checked against the
//! memory limit before anything is allocated, and every decode error names the file.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::thread;

use bytes::Bytes;
use ndarray::{Array1, Array2};
use parquet::basic::{LogicalType, TimeUnit, Type as PhysicalType};
use parquet::column::reader::ColumnReader;
use parquet::file::reader::{ChunkReader, FileReader, Length, SerializedFileReader};

use crate::error::{Error, Result};
use crate::validation::data::{
    parse_timestamp, Dataset, Ids, Input, TextColumn, Timestamps, DEFAULT_MAX_INPUT_BYTES,
};

/// Which columns to read, and the limit; see [`crate::validation::CsvOptions`], whose
/// fields mean the same.
#[derive(Debug, Clone)]
pub struct ParquetOptions {
    pub target: String,
    pub features: Option<Vec<String>>,
    pub timestamp: Option<String>,
    pub id: Option<String>,
    /// The largest file read, and a quarter of the largest matrix built.
    pub max_bytes: u64,
}

impl ParquetOptions {
    pub fn new(target: &str) -> ParquetOptions {
        ParquetOptions {
            target: target.to_string(),
            features: None,
            timestamp: None,
            id: None,
            max_bytes: DEFAULT_MAX_INPUT_BYTES,
        }
    }
}

/// A file read with positioned reads, shareable between threads.
struct PreadFile(Arc<File>, u64);

impl Length for PreadFile {
    fn len(&self) -> u64 {
        self.1
    }
}

struct PreadReader {
    file: Arc<File>,
    at: u64,
}

impl Read for PreadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl ChunkReader for PreadFile {
    type T = PreadReader;

    fn get_read(&self, start: u64) -> parquet::errors::Result<PreadReader> {
        Ok(PreadReader {
            file: self.0.clone(),
            at: start,
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        // The length comes from the file's metadata: never allocate past the file's end.
        if start.saturating_add(length as u64) > self.1 {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "{length} bytes at {start} lie past the end of the file"
            )));
        }
        let mut buf = vec![0u8; length];
        self.0
            .read_exact_at(&mut buf, start)
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
        Ok(Bytes::from(buf))
    }
}

/// Load a Parquet file. `display_path` names it in messages.
pub fn load_parquet(
    input: impl Input,
    display_path: &str,
    options: &ParquetOptions,
) -> Result<Dataset> {
    let file = input.open(display_path)?;
    let size = file
        .metadata()
        .map_err(|e| Error::io(display_path, "read", e))?
        .len();
    if size > options.max_bytes {
        return Err(Error::invalid(
            format!("data `{display_path}`"),
            format!(
                "it is {size} bytes, more than the {}-byte limit for a data file read into memory; validate on a sample of it, or raise the limit with `max_bytes`",
                options.max_bytes
            ),
        ));
    }
    let reader = SerializedFileReader::new(PreadFile(Arc::new(file), size))
        .map_err(|e| parquet_error(display_path, e))?;
    read_dataset(&reader, display_path, options)
}

/// [`load_parquet`] from the bytes of a file in memory (a file a dry run only simulated).
pub fn parse_parquet(
    bytes: &[u8],
    display_path: &str,
    options: &ParquetOptions,
) -> Result<Dataset> {
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(bytes))
        .map_err(|e| parquet_error(display_path, e))?;
    read_dataset(&reader, display_path, options)
}

fn parquet_error(display_path: &str, e: parquet::errors::ParquetError) -> Error {
    Error::Parse {
        path: display_path.to_string(),
        format: "Parquet",
        line: 0,
        column: 0,
        message: e.to_string(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Feature,
    Target,
    Timestamp,
    Id,
}

/// What a column is read as.
enum ColumnData {
    Numbers(Vec<f64>),
    Micros(Vec<i64>),
    Text(Vec<String>),
}

fn read_dataset<R: ChunkReader + 'static>(
    reader: &SerializedFileReader<R>,
    display_path: &str,
    options: &ParquetOptions,
) -> Result<Dataset> {
    let invalid = |message: String| Error::invalid(format!("data `{display_path}`"), message);
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let columns = schema.columns();
    // Top-level, non-repeated columns only, by name.
    let names: Vec<String> = columns.iter().map(|c| c.path().string()).collect();
    let find = |name: &str, role: &str| -> Result<usize> {
        names.iter().position(|n| n == name).ok_or_else(|| {
            invalid(format!(
                "it has no {role} column `{name}` (its columns: {})",
                names
                    .iter()
                    .take(12)
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    };
    let numeric = |i: usize| {
        let c = &columns[i];
        c.max_rep_level() == 0
            && matches!(
                c.physical_type(),
                PhysicalType::DOUBLE
                    | PhysicalType::FLOAT
                    | PhysicalType::INT32
                    | PhysicalType::INT64
            )
            && !matches!(
                c.logical_type_ref(),
                Some(
                    LogicalType::Timestamp(_)
                        | LogicalType::Date
                        | LogicalType::Time(_)
                        | LogicalType::Decimal(_)
                )
            )
    };
    let target = find(&options.target, "target")?;
    if !numeric(target) {
        return Err(invalid(format!(
            "the target column `{}` is of type {}, not a number",
            options.target,
            columns[target].physical_type()
        )));
    }
    let timestamp = options
        .timestamp
        .as_deref()
        .map(|t| find(t, "timestamp"))
        .transpose()?;
    let id = options.id.as_deref().map(|t| find(t, "id")).transpose()?;
    let mut wanted: Vec<(usize, Role)> = vec![(target, Role::Target)];
    let mut text_columns = Vec::new();
    match &options.features {
        Some(features) => {
            for f in features {
                let i = find(f, "feature")?;
                if !numeric(i) {
                    return Err(invalid(format!(
                        "feature column `{f}` is of type {}, not a number",
                        columns[i].physical_type()
                    )));
                }
                wanted.push((i, Role::Feature));
            }
        }
        None => {
            for (i, name) in names.iter().enumerate() {
                if i == target || Some(i) == timestamp || Some(i) == id {
                    continue;
                }
                if numeric(i) {
                    wanted.push((i, Role::Feature));
                } else {
                    text_columns.push(TextColumn {
                        name: name.clone(),
                        line: 0,
                        cell: format!("a {} column", columns[i].physical_type()),
                    });
                }
            }
        }
    }
    if let Some(t) = timestamp {
        wanted.push((t, Role::Timestamp));
    }
    if let Some(i) = id {
        wanted.push((i, Role::Id));
    }

    let n_rows = usize::try_from(meta.file_metadata().num_rows())
        .map_err(|_| invalid("it declares a negative number of rows".into()))?;
    let n_features = wanted.iter().filter(|(_, r)| *r == Role::Feature).count();
    let matrix_bytes = (n_rows as u64)
        .saturating_mul(2 * n_features as u64 + 2)
        .saturating_mul(8);
    let limit = options.max_bytes.saturating_mul(4);
    if matrix_bytes > limit {
        return Err(invalid(format!(
            "it declares {n_rows} rows of {n_features} features, {matrix_bytes} bytes in memory, more than the {limit}-byte limit; validate on a sample of it, or raise the limit with `max_bytes`"
        )));
    }
    if n_rows == 0 {
        return Err(invalid(
            "it has no rows; validation needs at least one".into(),
        ));
    }

    // Decode the wanted columns, spread over the cores.
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(wanted.len())
        .max(1);
    let mut decoded: Vec<Option<Result<ColumnData>>> = (0..wanted.len()).map(|_| None).collect();
    thread::scope(|scope| {
        let wanted = &wanted;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..wanted.len())
                        .step_by(threads)
                        .map(|k| {
                            let (column, role) = wanted[k];
                            (k, read_column(reader, column, role, n_rows, display_path))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            // A thread that panicked leaves its columns `None`, reported below.
            if let Ok(results) = h.join() {
                for (k, r) in results {
                    decoded[k] = Some(r);
                }
            }
        }
    });
    let mut features = Vec::new();
    let mut feature_columns = Vec::new();
    let mut y = None;
    let mut timestamps = None;
    let mut ids = None;
    for ((column, role), data) in wanted.iter().zip(decoded) {
        let data = data.unwrap_or_else(|| Err(invalid("a column reader failed".into())))?;
        let name = names[*column].clone();
        match (role, data) {
            (Role::Target, ColumnData::Numbers(v)) => y = Some(v),
            (Role::Feature, ColumnData::Numbers(v)) => {
                features.push(name);
                feature_columns.push(v);
            }
            (Role::Timestamp, ColumnData::Micros(v)) => {
                timestamps = Some(Timestamps {
                    column: name,
                    micros: v,
                })
            }
            (Role::Id, ColumnData::Text(v)) => {
                ids = Some(Ids {
                    column: name,
                    values: v,
                })
            }
            _ => {
                return Err(invalid(format!(
                    "column `{name}` could not be read as needed"
                )))
            }
        }
    }
    let y = y.ok_or_else(|| invalid("the target column could not be read".into()))?;
    // Row-major, as every loader gives it: rows stay contiguous for the predictors.
    let nf = feature_columns.len();
    let mut x = vec![0.0f64; n_rows * nf];
    for (j, column) in feature_columns.iter().enumerate() {
        for (slot, &v) in x.iter_mut().skip(j).step_by(nf.max(1)).zip(column) {
            *slot = v;
        }
    }
    let x = Array2::from_shape_vec((n_rows, nf), x)
        .map_err(|_| invalid("the columns do not match the row count".into()))?;
    Ok(Dataset {
        features,
        x,
        y: Array1::from_vec(y),
        target: options.target.clone(),
        source: display_path.to_string(),
        timestamps,
        ids,
        text_columns,
    })
}

/// Rows decoded per call: big enough to amortise the call, small enough to stay in cache.
const BATCH: usize = 64 * 1024;

/// Decode one column across every row group into what its role needs; nulls become NaN
/// (numbers) and are errors for timestamps.
fn read_column<R: ChunkReader + 'static>(
    reader: &SerializedFileReader<R>,
    column: usize,
    role: Role,
    n_rows: usize,
    display_path: &str,
) -> Result<ColumnData> {
    let meta = reader.metadata();
    let descr = meta.file_metadata().schema_descr().column(column);
    let name = descr.path().string();
    let max_def = descr.max_def_level();
    let invalid = |message: String| Error::invalid(format!("data `{display_path}`"), message);
    let unit_scale = match descr.logical_type_ref() {
        Some(LogicalType::Timestamp(t)) => match t.unit {
            TimeUnit::MILLIS => Some((1000i64, 1i64)),
            TimeUnit::MICROS => Some((1, 1)),
            TimeUnit::NANOS => Some((1, 1000)),
        },
        Some(LogicalType::Date) => Some((86_400_000_000, 1)),
        _ => None,
    };
    // Every row has a value (NaN for a null), so the column's final size is known.
    let mut numbers: Vec<f64> =
        Vec::with_capacity(if matches!(role, Role::Feature | Role::Target) {
            n_rows
        } else {
            0
        });
    let mut micros: Vec<i64> = Vec::new();
    let mut text: Vec<String> = Vec::new();
    let mut defs: Vec<i16> = Vec::new();
    let mut seen_rows = 0usize;
    for g in 0..meta.num_row_groups() {
        let group = reader
            .get_row_group(g)
            .map_err(|e| parquet_error(display_path, e))?;
        let group_rows = usize::try_from(group.metadata().num_rows()).unwrap_or(usize::MAX);
        if seen_rows.saturating_add(group_rows) > n_rows {
            return Err(invalid(
                "its row groups hold more rows than the file declares".into(),
            ));
        }
        let col = group
            .get_column_reader(column)
            .map_err(|e| parquet_error(display_path, e))?;
        // Reads up to `group_rows` records with a typed reader into `values`, then spreads
        // them over the rows with the definition levels (a level below the maximum is null).
        macro_rules! read_all {
            ($reader:expr, $values:ty, $push:expr) => {{
                let mut reader = $reader;
                let mut left = group_rows;
                let mut values: Vec<$values> = Vec::new();
                while left > 0 {
                    values.clear();
                    defs.clear();
                    let (records, _, levels) = reader
                        .read_records(left.min(BATCH), Some(&mut defs), None, &mut values)
                        .map_err(|e| parquet_error(display_path, e))?;
                    if records == 0 {
                        return Err(invalid(format!(
                            "column `{name}` ends before the {group_rows} rows of row group {g}"
                        )));
                    }
                    left = left.saturating_sub(records);
                    let mut it = values.iter();
                    if max_def == 0 || values.len() == levels {
                        for v in it {
                            $push(Some(v))?;
                        }
                    } else {
                        for &d in &defs[..levels] {
                            $push(if d == max_def { it.next() } else { None })?;
                        }
                    }
                }
            }};
        }
        match (role, col) {
            (Role::Feature | Role::Target, ColumnReader::DoubleColumnReader(mut r)) => {
                // The common case, decoded straight into the column: doubles, and a batch
                // without nulls is copied whole.
                let mut left = group_rows;
                let mut values: Vec<f64> = Vec::with_capacity(BATCH);
                while left > 0 {
                    values.clear();
                    defs.clear();
                    let (records, _, levels) = r
                        .read_records(left.min(BATCH), Some(&mut defs), None, &mut values)
                        .map_err(|e| parquet_error(display_path, e))?;
                    if records == 0 {
                        return Err(invalid(format!(
                            "column `{name}` ends before the {group_rows} rows of row group {g}"
                        )));
                    }
                    left = left.saturating_sub(records);
                    if max_def == 0 || values.len() == levels {
                        numbers.extend_from_slice(&values);
                    } else {
                        let mut it = values.iter();
                        for &d in &defs[..levels] {
                            numbers.push(if d == max_def {
                                it.next().copied().unwrap_or(f64::NAN)
                            } else {
                                f64::NAN
                            });
                        }
                    }
                }
            }
            (Role::Feature | Role::Target, ColumnReader::FloatColumnReader(r)) => {
                read_all!(r, f32, |v: Option<&f32>| -> Result<()> {
                    numbers.push(v.map_or(f64::NAN, |&v| f64::from(v)));
                    Ok(())
                })
            }
            (Role::Feature | Role::Target, ColumnReader::Int32ColumnReader(r)) => {
                read_all!(r, i32, |v: Option<&i32>| -> Result<()> {
                    numbers.push(v.map_or(f64::NAN, |&v| f64::from(v)));
                    Ok(())
                })
            }
            (Role::Feature | Role::Target, ColumnReader::Int64ColumnReader(r)) => {
                read_all!(r, i64, |v: Option<&i64>| -> Result<()> {
                    numbers.push(v.map_or(f64::NAN, |&v| v as f64));
                    Ok(())
                })
            }
            (Role::Timestamp, ColumnReader::Int64ColumnReader(r)) if unit_scale.is_some() => {
                let (mul, div) = unit_scale.unwrap_or((1, 1));
                read_all!(r, i64, |v: Option<&i64>| -> Result<()> {
                    let v = v.ok_or_else(|| {
                        invalid(format!(
                            "timestamp column `{name}` has an empty cell in row {}",
                            micros.len() + 1
                        ))
                    })?;
                    micros.push(v.div_euclid(div).saturating_mul(mul));
                    Ok(())
                })
            }
            (Role::Timestamp, ColumnReader::Int32ColumnReader(r)) if unit_scale.is_some() => {
                let (mul, _) = unit_scale.unwrap_or((1, 1));
                read_all!(r, i32, |v: Option<&i32>| -> Result<()> {
                    let v = v.ok_or_else(|| {
                        invalid(format!(
                            "timestamp column `{name}` has an empty cell in row {}",
                            micros.len() + 1
                        ))
                    })?;
                    micros.push(i64::from(*v).saturating_mul(mul));
                    Ok(())
                })
            }
            (Role::Timestamp, ColumnReader::ByteArrayColumnReader(r)) => {
                read_all!(
                    r,
                    parquet::data_type::ByteArray,
                    |v: Option<&parquet::data_type::ByteArray>| -> Result<()> {
                        let row = micros.len() + 1;
                        let t = v
                        .and_then(|b| std::str::from_utf8(b.data()).ok())
                        .and_then(|s| parse_timestamp(s.trim()))
                        .ok_or_else(|| invalid(format!("timestamp column `{name}` holds something that is not a timestamp in row {row} (write RFC 3339, `2026-11-01T09:30:00Z`)")))?;
                        micros.push(t);
                        Ok(())
                    }
                )
            }
            (Role::Id, ColumnReader::ByteArrayColumnReader(r)) => {
                read_all!(
                    r,
                    parquet::data_type::ByteArray,
                    |v: Option<&parquet::data_type::ByteArray>| -> Result<()> {
                        text.push(v.map_or_else(String::new, |b| {
                            String::from_utf8_lossy(b.data()).into_owned()
                        }));
                        Ok(())
                    }
                )
            }
            (Role::Id, ColumnReader::Int64ColumnReader(r)) => {
                read_all!(r, i64, |v: Option<&i64>| -> Result<()> {
                    text.push(v.map_or_else(String::new, i64::to_string));
                    Ok(())
                })
            }
            (Role::Id, ColumnReader::Int32ColumnReader(r)) => {
                read_all!(r, i32, |v: Option<&i32>| -> Result<()> {
                    text.push(v.map_or_else(String::new, i32::to_string));
                    Ok(())
                })
            }
            (role, _) => {
                let what = match role {
                    Role::Timestamp => "a timestamp",
                    Role::Id => "an id",
                    _ => "a number",
                };
                return Err(invalid(format!(
                    "column `{name}` is of type {}, which cannot be read as {what}",
                    descr.physical_type()
                )));
            }
        }
        seen_rows += group_rows;
    }
    let got = numbers.len().max(micros.len()).max(text.len());
    if got != n_rows {
        return Err(invalid(format!(
            "column `{name}` holds {got} values but the file declares {n_rows} rows"
        )));
    }
    Ok(match role {
        Role::Timestamp => ColumnData::Micros(micros),
        Role::Id => ColumnData::Text(text),
        _ => ColumnData::Numbers(numbers),
    })
}
