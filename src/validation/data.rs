//! Validation data: a matrix of named feature columns and a target column, loaded from CSV or
//! NumPy `.npy` files.
//!
//! A rollback is validated by scoring a model on held-out data, and that data is often large
//! (millions of rows), so loading is the hot path of validation. The CSV reader parses the
//! bytes in place, on several threads at once, each writing into its own disjoint range of
//! rows of the final arrays, with a correctly rounded float parser and no allocation per
//! cell. `.npy` files are read with `ndarray-npy` straight into the array that is kept.
//!
//! Missing values: an empty cell, `nan` in any case (`NaN`, `NAN`), `NA`, `N/A`, `null`,
//! `NULL` and `None` become `f64::NAN`, as pandas reads them. XGBoost models route NaN along
//! each split's default branch; a linear model turns it into a NaN prediction, which the
//! metrics then report with its row. `inf`/`infinity` (any case, optional sign) parse as
//! infinities.
//!
//! CSV dialect: comma-separated, `\n` or `\r\n` line endings, the last newline optional, an
//! optional UTF-8 BOM, blank lines skipped. Spaces around a cell and double quotes around a
//! whole cell are dropped; a quoted cell may not contain a comma (numeric data never does).
//!
//! Every error names the file, and for CSV the line (1-based, counting the header as line 1)
//! and the column.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::thread;

use ndarray::{s, Array1, Array2, ArrayD, Axis, Ix1, Ix2, IxDyn, ShapeBuilder};
use ndarray_npy::npy::header::{Header, ParseHeaderError, ReadHeaderError};

use crate::error::{Error, Result};

/// A feature matrix with its column names, and the target values.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Feature column names, in the column order of `x`.
    pub features: Vec<String>,
    /// One row per sample, one column per feature. Rows are always contiguous in memory, but
    /// `x` need not be in standard layout: a `.npy` matrix keeps its target column in place
    /// (the row stride is one more than the width) rather than copying every row to drop it.
    pub x: Array2<f64>,
    /// Target values, one per row of `x`.
    pub y: Array1<f64>,
    /// The target column's name (`y` unless the caller chose another).
    pub target: String,
    /// The data file as the user named it, for messages.
    pub source: String,
    /// The timestamp column, when the caller asked for one: one value per row.
    pub timestamps: Option<Timestamps>,
    /// The id column, when the caller asked for one: one value per row, for messages.
    pub ids: Option<Ids>,
    /// Columns left out of the features because a cell in them is not a number (a symbol,
    /// a date): a model that needs one gets an error naming that cell.
    pub text_columns: Vec<TextColumn>,
}

/// A column of timestamps, as microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone)]
pub struct Timestamps {
    pub column: String,
    pub micros: Vec<i64>,
}

/// A column of row ids (symbols, keys), as text.
#[derive(Debug, Clone)]
pub struct Ids {
    pub column: String,
    pub values: Vec<String>,
}

/// A column that is not a feature because it holds text, and the first cell that showed it.
#[derive(Debug, Clone)]
pub struct TextColumn {
    pub name: String,
    pub line: usize,
    pub cell: String,
}

impl Dataset {
    /// Number of rows (samples).
    pub fn n_rows(&self) -> usize {
        self.x.nrows()
    }

    /// Number of feature columns.
    pub fn n_features(&self) -> usize {
        self.x.ncols()
    }

    /// The column of `x` that holds the feature called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f == name)
    }

    /// The earliest and latest timestamp, when the data has a timestamp column.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let t = self.timestamps.as_ref()?;
        let min = *t.micros.iter().min()?;
        let max = *t.micros.iter().max()?;
        Some((min, max))
    }

    /// Row `row` (0-based) for messages: `row 12`, or ``row 12 (`symbol` `AAPL`)`` when the
    /// data has an id column.
    pub fn describe_row(&self, row: usize) -> String {
        match self
            .ids
            .as_ref()
            .and_then(|ids| Some((&ids.column, ids.values.get(row)?)))
        {
            Some((column, id)) => format!("row {} (`{column}` `{id}`)", row + 1),
            None => format!("row {}", row + 1),
        }
    }

    /// `err` with its first ``row N`` (a metric's message) spelled as [`Dataset::describe_row`]
    /// does, so a bad row is named by its id too when the data has an id column.
    pub fn name_row_in(&self, err: Error) -> Error {
        let Error::Invalid { what, message } = err else {
            return err;
        };
        if self.ids.is_none() {
            return Error::Invalid { what, message };
        }
        let mut out = message.clone();
        if let Some(at) = message.find("row ") {
            let digits: String = message[at + 4..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                if n >= 1 {
                    out = format!(
                        "{}{}{}",
                        &message[..at],
                        self.describe_row(n - 1),
                        &message[at + 4 + digits.len()..]
                    );
                }
            }
        }
        Error::Invalid { what, message: out }
    }

    /// The column of `x` for each of `names`, in that order. Fails naming every name the data
    /// lacks, the model (`model_source`) and the data file, so a mismatch between a model and
    /// its validation data is found before anything is predicted.
    pub fn columns_for(&self, names: &[String], model_source: &str) -> Result<Vec<usize>> {
        let mut missing = Vec::new();
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            match self.column_index(name) {
                Some(c) => columns.push(c),
                None => missing.push(format!("`{name}`")),
            }
        }
        if missing.is_empty() {
            return Ok(columns);
        }
        if let Some(text) = self.text_columns.iter().find(|t| names.contains(&t.name)) {
            return Err(Error::invalid(
                format!("model `{model_source}`"),
                format!(
                    "needs feature `{}`, but that column of data `{}` holds text (line {} has `{}`), not numbers; give data whose `{}` column holds numbers (empty cells for missing values)",
                    text.name, self.source, text.line, text.cell, text.name
                ),
            ));
        }
        let noun = if missing.len() == 1 {
            "feature"
        } else {
            "features"
        };
        Err(Error::invalid(
            format!("model `{model_source}`"),
            format!(
                "needs {noun} {} that data `{}` does not have (its columns: {}); validate with data that has the model's features",
                missing.join(", "),
                self.source,
                list_names(&self.features),
            ),
        ))
    }
}

/// `a, b, c`, cut short after a dozen names so a wide file does not flood the message.
fn list_names(names: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut out: Vec<String> = names.iter().take(SHOWN).map(|n| format!("`{n}`")).collect();
    if names.len() > SHOWN {
        out.push(format!("and {} more", names.len() - SHOWN));
    }
    if out.is_empty() {
        "none".to_string()
    } else {
        out.join(", ")
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded input

/// Data files larger than this are refused before they are read (4 GiB), unless the caller
/// raises the limit (`max_bytes`): loaders hold the file and the parsed matrix in memory,
/// and a rollback must not be the process the kernel kills for memory.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 4 << 30;

/// A parsed matrix may take at most this many times the input limit: a CSV of one-digit
/// cells parses to about 4 bytes of matrix per byte of file, never more than 8.
const MATRIX_BYTES_PER_INPUT_BYTE: u64 = 4;

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn too_large(display_path: &str, what: &str, size: u64, limit: u64) -> Error {
    Error::invalid(
        format!("{what} `{display_path}`"),
        format!(
            "it is {size} bytes ({}), more than the {} limit for a {what} file read into memory; validate on a sample of it, or raise the limit with `max_bytes`",
            gib(size),
            gib(limit)
        ),
    )
}

/// Read a whole file into memory, refusing it when it holds more than `max_bytes` (checked
/// before reading from its size, and again while reading, for a file that grows).
///
/// A read rather than a memory map: a mapped file that another process truncates while it
/// is parsed kills this process with SIGBUS, and a runbook must not die mid-rollback. The
/// buffer is advised onto huge pages first, which brings the read of a 90 MB file from about
/// 47 ms (mostly page faults on the fresh buffer) to about 12 ms, close to mapping it.
pub(crate) fn read_bounded(
    file: File,
    display_path: &str,
    max_bytes: u64,
    what: &str,
) -> Result<Vec<u8>> {
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > max_bytes {
        return Err(too_large(display_path, what, size, max_bytes));
    }
    let mut bytes = Vec::with_capacity((size as usize).saturating_add(1));
    advise_huge_pages(bytes.as_mut_ptr(), bytes.capacity());
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(display_path, "read", e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(display_path, what, bytes.len() as u64, max_bytes));
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Below this many bytes of data a single thread parses the whole file: starting threads
/// would cost more than it saves.
const MIN_CHUNK_BYTES: usize = 1 << 20;

/// How to read a CSV file: which column is the target, the delimiter, and which columns
/// are features, timestamps or row ids.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// The target column (`y` by default).
    pub target: String,
    /// The cell delimiter: `,` by default, `;`, tab or any other ASCII byte but `"`, `\r`
    /// and `\n`.
    pub delimiter: u8,
    /// The feature columns, when the caller knows them: every other column is skipped
    /// unread. Without it, every column but the target, timestamp and id columns is a
    /// feature if all its cells are numbers, and left out (see [`Dataset::text_columns`])
    /// if one is not.
    pub features: Option<Vec<String>>,
    /// A column of timestamps to parse (RFC 3339, or `YYYY-mm-dd HH:MM:SS` taken as UTC).
    pub timestamp: Option<String>,
    /// A column of row ids (any text), carried for messages.
    pub id: Option<String>,
    /// The largest file read ([`DEFAULT_MAX_INPUT_BYTES`] by default).
    pub max_bytes: u64,
}

impl CsvOptions {
    /// Comma-separated, target `target`, every other numeric column a feature.
    pub fn new(target: &str) -> CsvOptions {
        CsvOptions {
            target: target.to_string(),
            delimiter: b',',
            features: None,
            timestamp: None,
            id: None,
            max_bytes: DEFAULT_MAX_INPUT_BYTES,
        }
    }
}

/// Where a CSV column's values go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dest {
    Feature(usize),
    Target,
    Timestamp,
    Id,
    /// Not needed: the cell is stepped over, never decoded.
    Skip,
}

/// What every chunk parser needs to know about the file.
struct CsvLayout<'a> {
    display_path: &'a str,
    /// The header's column names, in file order.
    columns: &'a [String],
    dest: Vec<Dest>,
    n_features: usize,
    delimiter: u8,
    /// Whether a feature cell that is not a number drops its column (features not named by
    /// the caller) rather than failing the load.
    lenient: bool,
}

impl CsvLayout<'_> {
    fn error(&self, line: usize, column: usize, message: String) -> Error {
        Error::Parse {
            path: self.display_path.to_string(),
            format: "CSV",
            line,
            column,
            message,
        }
    }
}

/// The first cell of a feature column that is not a number.
#[derive(Debug, Clone)]
struct TextCell {
    line: usize,
    text: String,
}

/// What one chunk parser found besides the numbers it wrote.
struct ChunkOut {
    rows: usize,
    text_cells: Vec<Option<TextCell>>,
    ids: Vec<String>,
}

/// Read a CSV file with a header line. Column `target` becomes `y`; every other column
/// whose cells are all numbers is a feature. `display_path` is how the file is named in
/// messages.
pub fn load_csv(input: impl Input, display_path: &str, target: &str) -> Result<Dataset> {
    load_csv_with(input, display_path, &CsvOptions::new(target))
}

/// [`load_csv`] with every option: delimiter, features, timestamp and id columns, limit.
pub fn load_csv_with(
    input: impl Input,
    display_path: &str,
    options: &CsvOptions,
) -> Result<Dataset> {
    let bytes = read_bounded(
        input.open(display_path)?,
        display_path,
        options.max_bytes,
        "data",
    )?;
    parse_csv_with(&bytes, display_path, options)
}

/// Where a loader reads from: a file the caller opened (the run's effect layer opens every
/// workspace file relative to its directory handle), or a path (tools and tests).
pub trait Input {
    fn open(self, display_path: &str) -> Result<File>;
}

impl Input for File {
    fn open(self, _display_path: &str) -> Result<File> {
        Ok(self)
    }
}

impl Input for &Path {
    fn open(self, display_path: &str) -> Result<File> {
        File::open(self).map_err(|e| Error::io(display_path, "open", e))
    }
}

impl Input for &std::path::PathBuf {
    fn open(self, display_path: &str) -> Result<File> {
        self.as_path().open(display_path)
    }
}

/// A zeroed buffer of `len` values for the parser to fill. The allocator hands out fresh,
/// untouched pages for large zeroed buffers; advising them onto huge pages before the
/// parser threads touch them cuts the page faults of a 72 MB matrix about 500-fold.
fn zeroed_buffer<T: Copy + Default>(len: usize) -> Vec<T> {
    let mut buf = vec![T::default(); len];
    advise_huge_pages(buf.as_mut_ptr(), buf.len());
    buf
}

/// Ask Linux to back the 2 MiB-aligned part of a large buffer with transparent huge pages.
/// A hint only: where THP is off, or elsewhere than Linux, nothing changes.
#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(ptr: *mut T, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = ptr as usize;
    let end = start.saturating_add(len.saturating_mul(std::mem::size_of::<T>()));
    let aligned_start = start.next_multiple_of(HUGE);
    let aligned_end = end & !(HUGE - 1);
    if aligned_end > aligned_start {
        // SAFETY: the range lies inside one live allocation that this process owns.
        // MADV_HUGEPAGE only changes how the kernel backs those pages, never their contents,
        // and its result is ignored because failure just means no huge pages.
        unsafe {
            libc::madvise(
                aligned_start as *mut libc::c_void,
                aligned_end - aligned_start,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_ptr: *mut T, _len: usize) {}

/// Parse CSV `bytes` (a header line, then one record per row). See [`load_csv`].
pub fn parse_csv(bytes: &[u8], display_path: &str, target: &str) -> Result<Dataset> {
    parse_csv_with(bytes, display_path, &CsvOptions::new(target))
}

/// Parse CSV `bytes` with `options`. See [`load_csv_with`].
pub fn parse_csv_with(bytes: &[u8], display_path: &str, options: &CsvOptions) -> Result<Dataset> {
    if bytes.len() as u64 > options.max_bytes {
        return Err(too_large(
            display_path,
            "data",
            bytes.len() as u64,
            options.max_bytes,
        ));
    }
    // Data under two chunks is parsed on this thread anyway; asking how many cores there
    // are reads three cgroup files (about 0.1 ms, a tenth of a small rollback's CPU).
    let threads = if bytes.len() < 2 * MIN_CHUNK_BYTES {
        1
    } else {
        thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    };
    parse_csv_chunked(bytes, display_path, options, threads, MIN_CHUNK_BYTES)
}

/// Split one record (the header) into its cells, RFC 4180 quoting undone.
fn split_header(line: &[u8], delimiter: u8) -> std::result::Result<Vec<String>, String> {
    let mut cells = Vec::new();
    let mut pos = 0;
    loop {
        let cell = scan_cell(line, pos, delimiter).map_err(|e| e.message)?;
        cells.push(cell.decode(line).trim().to_string());
        match line.get(cell.end) {
            Some(&d) if d == delimiter => pos = cell.end + 1,
            _ => return Ok(cells),
        }
    }
}

/// [`parse_csv_with`] with the parallelism spelled out, so tests can force many small chunks.
fn parse_csv_chunked(
    bytes: &[u8],
    display_path: &str,
    options: &CsvOptions,
    max_threads: usize,
    min_chunk: usize,
) -> Result<Dataset> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let parse_error = |line, column, message: String| Error::Parse {
        path: display_path.to_string(),
        format: "CSV",
        line,
        column,
        message,
    };
    let delimiter = options.delimiter;
    if matches!(delimiter, b'"' | b'\r' | b'\n') || !delimiter.is_ascii() {
        return Err(Error::invalid(
            format!("data `{display_path}`"),
            format!(
                "`{}` cannot be a CSV delimiter; use an ASCII character such as `,`, `;` or a tab",
                char::from(delimiter).escape_default()
            ),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(parse_error(
            0,
            0,
            "the file is empty (it needs a header line and at least one row)".into(),
        ));
    }
    let quoted = bytes.contains(&b'"');
    let header_end = record_end(bytes, 0, quoted).unwrap_or(bytes.len());
    let header = trim_cr(&bytes[..header_end]);
    if std::str::from_utf8(header).is_err() {
        return Err(parse_error(
            1,
            1,
            "the header line is not UTF-8 text".into(),
        ));
    }
    let columns = split_header(header, delimiter).map_err(|m| parse_error(1, 1, m))?;
    for (i, name) in columns.iter().enumerate() {
        if !name.is_empty() && columns[..i].contains(name) {
            return Err(parse_error(
                1,
                1,
                format!("column `{name}` appears twice in the header"),
            ));
        }
    }
    let find = |name: &str, role: &str| -> Result<usize> {
        columns.iter().position(|c| c == name).ok_or_else(|| {
            parse_error(
                1,
                1,
                format!(
                    "the header has no {role} column `{name}` (its columns: {})",
                    list_names(&columns)
                ),
            )
        })
    };
    let target_col = find(&options.target, "target")?;
    let timestamp_col = options
        .timestamp
        .as_deref()
        .map(|t| find(t, "timestamp"))
        .transpose()?;
    let id_col = options.id.as_deref().map(|t| find(t, "id")).transpose()?;
    if let Some(features) = &options.features {
        for f in features {
            let c = find(f, "feature")?;
            if c == target_col || Some(c) == timestamp_col || Some(c) == id_col {
                return Err(Error::invalid(
                    format!("data `{display_path}`"),
                    format!("column `{f}` cannot be a feature and the target, timestamp or id column at once"),
                ));
            }
        }
    }
    let mut features = Vec::new();
    let dest: Vec<Dest> = columns
        .iter()
        .enumerate()
        .map(|(c, name)| {
            if c == target_col {
                Dest::Target
            } else if Some(c) == timestamp_col {
                Dest::Timestamp
            } else if Some(c) == id_col {
                Dest::Id
            } else if name.is_empty()
                || options.features.as_ref().is_some_and(|f| !f.contains(name))
            {
                // An unnamed column (pandas' index) or one the caller did not ask for.
                Dest::Skip
            } else {
                features.push(name.clone());
                Dest::Feature(features.len() - 1)
            }
        })
        .collect();
    let layout = CsvLayout {
        display_path,
        columns: &columns,
        dest,
        n_features: features.len(),
        delimiter,
        lenient: options.features.is_none(),
    };

    let body_start = (header_end + 1).min(bytes.len());
    let body = &bytes[body_start..];
    let chunks = split_records(body, max_threads, min_chunk, quoted);

    // Pass 1: records and lines per chunk, so every chunk knows the rows it may fill and its
    // first line number.
    let counts: Vec<(usize, usize)> = if chunks.len() == 1 {
        vec![count_records(chunks[0], quoted)]
    } else {
        thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|c| scope.spawn(move || count_records(c, quoted)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or((0, 0)))
                .collect()
        })
    };
    // A row that is not blank takes at least one byte per delimiter (or one byte), so no
    // chunk holds more rows than that bound, however many blank lines it claims: the
    // buffers below are bounded by the file's size, not by what it declares.
    let min_row_bytes = columns.len().saturating_sub(1).max(1);
    let slots: Vec<usize> = counts
        .iter()
        .zip(&chunks)
        .map(|(&(records, _), c)| records.min(c.len() / min_row_bytes + 1))
        .collect();
    let total_slots: usize = slots.iter().sum();
    let nf = layout.n_features;
    let matrix_bytes = (total_slots as u64)
        .saturating_mul(nf as u64 + 2)
        .saturating_mul(8);
    let matrix_limit = options
        .max_bytes
        .saturating_mul(MATRIX_BYTES_PER_INPUT_BYTE);
    if matrix_bytes > matrix_limit {
        return Err(Error::invalid(
            format!("data `{display_path}`"),
            format!(
                "its {total_slots} rows of {nf} features would take {} in memory, more than the {} limit; validate on a sample of it, or raise the limit with `max_bytes`",
                gib(matrix_bytes),
                gib(matrix_limit)
            ),
        ));
    }

    // Pass 2: parse every chunk into its own rows of `x`, `y` and the timestamps.
    let mut x = zeroed_buffer::<f64>(total_slots * nf);
    let mut y = zeroed_buffer::<f64>(total_slots);
    let mut ts = zeroed_buffer::<i64>(if timestamp_col.is_some() {
        total_slots
    } else {
        0
    });
    let mut jobs = Vec::with_capacity(chunks.len());
    {
        let (mut x_rest, mut y_rest, mut ts_rest) =
            (x.as_mut_slice(), y.as_mut_slice(), ts.as_mut_slice());
        let mut first_line = 2 + count_newlines(&bytes[..header_end]); // the header is line 1
        for ((chunk, &(_, lines)), &rows) in chunks.iter().zip(&counts).zip(&slots) {
            let (x_part, x_tail) = x_rest.split_at_mut(rows * nf);
            let (y_part, y_tail) = y_rest.split_at_mut(rows);
            let (ts_part, ts_tail) = if timestamp_col.is_some() {
                ts_rest.split_at_mut(rows)
            } else {
                ts_rest.split_at_mut(0)
            };
            jobs.push((*chunk, first_line, x_part, y_part, ts_part));
            x_rest = x_tail;
            y_rest = y_tail;
            ts_rest = ts_tail;
            first_line += lines;
        }
    }
    let results: Vec<Result<ChunkOut>> = if jobs.len() == 1 {
        let (chunk, first_line, xs, ys, tss) = jobs.pop().expect("one job");
        vec![parse_chunk(&layout, chunk, first_line, xs, ys, tss)]
    } else {
        let layout = &layout;
        thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(chunk, first_line, xs, ys, tss)| {
                    scope.spawn(move || parse_chunk(layout, chunk, first_line, xs, ys, tss))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::invalid("CSV parser", "a parser thread failed"))
                    })
                })
                .collect()
        })
    };
    // Every chunk ran to its end or its first error, so the first error reported is the one
    // nearest the top of the file, whatever the thread timing.
    let mut outs = Vec::with_capacity(results.len());
    for result in results {
        outs.push(result?);
    }

    // Blank lines were given slots but hold no row: close the gaps they left.
    let mut n_rows = 0;
    let mut start = 0;
    let mut text_cells: Vec<Option<TextCell>> = vec![None; nf];
    let mut ids = Vec::new();
    for (out, &rows_slots) in outs.iter_mut().zip(&slots) {
        let rows = out.rows;
        if n_rows != start {
            x.copy_within(start * nf..(start + rows) * nf, n_rows * nf);
            y.copy_within(start..start + rows, n_rows);
            if !ts.is_empty() {
                ts.copy_within(start..start + rows, n_rows);
            }
        }
        for (slot, cell) in text_cells.iter_mut().zip(out.text_cells.drain(..)) {
            if slot.is_none() {
                *slot = cell;
            }
        }
        ids.append(&mut out.ids);
        n_rows += rows;
        start += rows_slots;
    }
    if n_rows == 0 {
        return Err(parse_error(
            0,
            0,
            "the file has a header but no data rows".into(),
        ));
    }
    x.truncate(n_rows * nf);
    y.truncate(n_rows);
    ts.truncate(n_rows);

    // Feature columns that hold text are left out of the matrix, and remembered so that a
    // model that needs one gets an error naming the cell.
    let mut dropped = Vec::new();
    let mut kept_features = Vec::new();
    for (j, cell) in text_cells.into_iter().enumerate() {
        match cell {
            Some(cell) => dropped.push(TextColumn {
                name: features[j].clone(),
                line: cell.line,
                cell: cell.text,
            }),
            None => kept_features.push(j),
        }
    }
    let (x, features) = if dropped.is_empty() {
        (x, features)
    } else {
        let kept = kept_features.len();
        let mut compact = Vec::with_capacity(n_rows * kept);
        for row in x.chunks_exact(nf) {
            compact.extend(kept_features.iter().map(|&j| row[j]));
        }
        let names = kept_features.iter().map(|&j| features[j].clone()).collect();
        (compact, names)
    };
    let nf = features.len();
    let x = Array2::from_shape_vec((n_rows, nf), x)
        .map_err(|_| Error::invalid("CSV parser", "the parsed matrix does not match its shape"))?;
    Ok(Dataset {
        features,
        x,
        y: Array1::from_vec(y),
        target: options.target.clone(),
        source: display_path.to_string(),
        timestamps: timestamp_col.map(|c| Timestamps {
            column: columns[c].clone(),
            micros: ts,
        }),
        ids: id_col.map(|c| Ids {
            column: columns[c].clone(),
            values: ids,
        }),
        text_columns: dropped,
    })
}

/// Where the record that starts at `from` ends (its newline), outside quoted cells when the
/// file has quotes.
fn record_end(bytes: &[u8], from: usize, quoted: bool) -> Option<usize> {
    if !quoted {
        return find_byte(bytes, from, b'\n');
    }
    let mut in_quotes = false;
    for (i, &b) in bytes[from..].iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' if !in_quotes => return Some(from + i),
            _ => {}
        }
    }
    None
}

/// Split `body` into at most `max_chunks` pieces of at least `min_chunk` bytes, each ending
/// just after a record's newline (or at the end), so that no record is cut in two. With
/// quotes in the file, a newline ends a record only outside quotes: an even number of `"`
/// before it (an escaped `""` counts twice, so it keeps the parity).
fn split_records(body: &[u8], max_chunks: usize, min_chunk: usize, quoted: bool) -> Vec<&[u8]> {
    let n = (body.len() / min_chunk.max(1)).clamp(1, max_chunks.max(1));
    let mut chunks = Vec::with_capacity(n);
    let mut start = 0;
    for i in 1..n {
        let aim = (body.len() * i / n).max(start);
        let end = if quoted {
            // The parity of the quotes between the chunk's start and the aim tells whether
            // the aim sits inside a quoted cell.
            let inside = count_byte(&body[start..aim], b'"') % 2 == 1;
            quoted_record_end(body, aim, inside)
        } else {
            find_byte(body, aim, b'\n')
        };
        let end = end.map_or(body.len(), |nl| nl + 1);
        if end > start {
            chunks.push(&body[start..end]);
            start = end;
        }
    }
    if start < body.len() || chunks.is_empty() {
        chunks.push(&body[start..]);
    }
    chunks
}

fn quoted_record_end(bytes: &[u8], from: usize, mut in_quotes: bool) -> Option<usize> {
    for (i, &b) in bytes[from..].iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' if !in_quotes => return Some(from + i),
            _ => {}
        }
    }
    None
}

/// Records in a chunk (one per newline outside quotes, plus a last one without a newline)
/// and its lines (every newline).
fn count_records(chunk: &[u8], quoted: bool) -> (usize, usize) {
    let newlines = count_newlines(chunk);
    let last = usize::from(chunk.last().is_some_and(|&b| b != b'\n'));
    if !quoted || !chunk.contains(&b'"') {
        return (newlines + last, newlines);
    }
    let mut in_quotes = false;
    let mut records = 0;
    for &b in chunk {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' if !in_quotes => records += 1,
            _ => {}
        }
    }
    (records + last, newlines)
}

fn count_newlines(chunk: &[u8]) -> usize {
    count_byte(chunk, b'\n')
}

/// Occurrences of `byte`. Counted into a byte per block, then widened once per block: the
/// compiler turns this into wide vector compares, about 7 times faster than a plain
/// filter-count (3 ms vs 20 ms for 90 MB). A block of 192 cannot overflow the u8 counter.
fn count_byte(chunk: &[u8], byte: u8) -> usize {
    let mut blocks = chunk.chunks_exact(192);
    let mut n = 0usize;
    for block in &mut blocks {
        n += usize::from(block.iter().fold(0u8, |n, &b| n + u8::from(b == byte)));
    }
    n + blocks.remainder().iter().filter(|&&b| b == byte).count()
}

fn find_byte(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b == byte)
        .map(|p| p + from)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One cell as found in the bytes: where its content lies, whether it was quoted, and where
/// the delimiter or line ending after it is.
struct ScannedCell {
    content: std::ops::Range<usize>,
    quoted: bool,
    /// Whether the quoted content holds `""` escapes to undo.
    escaped: bool,
    /// The index of the delimiter, `\n`, `\r` of a line ending, or the end after the cell.
    end: usize,
    /// Newlines inside the quotes.
    newlines: usize,
}

impl ScannedCell {
    fn decode<'a>(&self, bytes: &'a [u8]) -> std::borrow::Cow<'a, str> {
        let raw = String::from_utf8_lossy(&bytes[self.content.clone()]);
        if self.escaped {
            std::borrow::Cow::Owned(raw.replace("\"\"", "\""))
        } else if self.quoted {
            raw
        } else {
            match raw {
                std::borrow::Cow::Borrowed(s) => {
                    std::borrow::Cow::Borrowed(s.trim_matches([' ', '\t']))
                }
                std::borrow::Cow::Owned(s) => {
                    std::borrow::Cow::Owned(s.trim_matches([' ', '\t']).to_string())
                }
            }
        }
    }
}

struct CellError {
    /// Offset of the problem from the cell's start.
    offset: usize,
    message: String,
}

/// Find the extent of the cell that starts at `pos`, by RFC 4180: a cell either is quoted
/// (spaces around the quotes are allowed, `""` is a quote, delimiters and newlines inside
/// are content) or runs to the next delimiter or newline and holds no quote.
fn scan_cell(
    bytes: &[u8],
    pos: usize,
    delimiter: u8,
) -> std::result::Result<ScannedCell, CellError> {
    let len = bytes.len();
    let mut i = pos;
    while i < len && (bytes[i] == b' ' || (bytes[i] == b'\t' && delimiter != b'\t')) {
        i += 1;
    }
    if i < len && bytes[i] == b'"' {
        let open = i;
        i += 1;
        let mut escaped = false;
        let mut newlines = 0;
        loop {
            match bytes.get(i) {
                None => {
                    return Err(CellError {
                        offset: open - pos,
                        message: "a quoted cell is never closed (a `\"` is missing)".into(),
                    })
                }
                Some(b'"') if bytes.get(i + 1) == Some(&b'"') => {
                    escaped = true;
                    i += 2;
                }
                Some(b'"') => break,
                Some(b'\n') => {
                    newlines += 1;
                    i += 1;
                }
                Some(_) => i += 1,
            }
        }
        let content = open + 1..i;
        i += 1;
        while i < len && (bytes[i] == b' ' || (bytes[i] == b'\t' && delimiter != b'\t')) {
            i += 1;
        }
        let end = match bytes.get(i) {
            None => i,
            Some(&b) if b == delimiter || b == b'\n' => i,
            Some(b'\r') if matches!(bytes.get(i + 1), None | Some(b'\n')) => i,
            Some(_) => {
                return Err(CellError {
                    offset: i - pos,
                    message: "text follows the closing quote of a quoted cell (write a quote inside quotes as `\"\"`)".into(),
                })
            }
        };
        return Ok(ScannedCell {
            content,
            quoted: true,
            escaped,
            end,
            newlines,
        });
    }
    let mut end = i;
    while end < len && bytes[end] != delimiter && bytes[end] != b'\n' {
        if bytes[end] == b'"' {
            return Err(CellError {
                offset: end - pos,
                message: "a `\"` inside a cell that is not quoted; quote the whole cell and write the quote as `\"\"`".into(),
            });
        }
        end += 1;
    }
    // A `\r` right before the newline belongs to the line ending, not to the cell.
    if end > pos && bytes[end - 1] == b'\r' && (end == len || bytes[end] == b'\n') {
        end -= 1;
    }
    Ok(ScannedCell {
        content: pos..end,
        quoted: false,
        escaped: false,
        end,
        newlines: 0,
    })
}

/// Parse one chunk of whole records into `x` (row-major, `n_features` wide), `y` and the
/// timestamps; returns the rows written (fewer than the records when some lines are blank),
/// the first text cell of each feature column, and the ids.
fn parse_chunk(
    layout: &CsvLayout,
    chunk: &[u8],
    first_line: usize,
    x: &mut [f64],
    y: &mut [f64],
    ts: &mut [i64],
) -> Result<ChunkOut> {
    let ncols = layout.dest.len();
    let nf = layout.n_features;
    let delimiter = layout.delimiter;
    let len = chunk.len();
    let mut out = ChunkOut {
        rows: 0,
        text_cells: vec![None; nf],
        ids: Vec::new(),
    };
    let mut pos = 0;
    let mut line = first_line;
    while pos < len {
        let line_start = pos;
        if is_blank_line(chunk, pos) {
            pos = find_byte(chunk, pos, b'\n').map_or(len, |nl| nl + 1);
            line += 1;
            continue;
        }
        let row = out.rows;
        if row >= y.len() {
            // Cannot happen (the slots bound every chunk's rows), but a wrong count must
            // be an error, never an out-of-bounds write.
            return Err(layout.error(line, 1, "more rows than were counted".into()));
        }
        let x_row = &mut x[row * nf..(row + 1) * nf];
        let mut row_newlines = 0;
        for (c, dest) in layout.dest.iter().enumerate() {
            let column = pos - line_start + 1;
            let end = match *dest {
                Dest::Feature(_) | Dest::Target => {
                    let (value, end) = match parse_cell_fast(chunk, pos, delimiter) {
                        Some(hit) => hit,
                        None => {
                            let cell = scan_cell(chunk, pos, delimiter).map_err(|e| {
                                layout.error(line + row_newlines, column + e.offset, e.message)
                            })?;
                            row_newlines += cell.newlines;
                            let text = cell.decode(chunk);
                            match number_cell(&text) {
                                Some(v) => (v, cell.end),
                                None => match *dest {
                                    Dest::Feature(j) if layout.lenient => {
                                        if out.text_cells[j].is_none() {
                                            out.text_cells[j] = Some(TextCell {
                                                line,
                                                text: text.chars().take(40).collect(),
                                            });
                                        }
                                        (f64::NAN, cell.end)
                                    }
                                    _ => {
                                        let shown: String = text.chars().take(40).collect();
                                        return Err(layout.error(
                                            line,
                                            column,
                                            format!(
                                                "the cell `{shown}` in column `{}` is not a number (leave a cell empty for a missing value)",
                                                layout.columns[c]
                                            ),
                                        ));
                                    }
                                },
                            }
                        }
                    };
                    match *dest {
                        Dest::Feature(j) => x_row[j] = value,
                        _ => y[row] = value,
                    }
                    end
                }
                Dest::Skip | Dest::Id | Dest::Timestamp => {
                    let cell = scan_cell(chunk, pos, delimiter).map_err(|e| {
                        layout.error(line + row_newlines, column + e.offset, e.message)
                    })?;
                    row_newlines += cell.newlines;
                    if *dest == Dest::Id {
                        out.ids.push(cell.decode(chunk).into_owned());
                    } else if *dest == Dest::Timestamp {
                        let text = cell.decode(chunk);
                        ts[row] = parse_timestamp(text.trim()).ok_or_else(|| {
                            let shown: String = text.chars().take(40).collect();
                            layout.error(
                                line,
                                column,
                                format!(
                                    "the cell `{shown}` in timestamp column `{}` is not a timestamp (write RFC 3339, `2026-11-01T09:30:00Z`, or `2026-11-01 09:30:00` for UTC)",
                                    layout.columns[c]
                                ),
                            )
                        })?;
                    }
                    cell.end
                }
            };
            let next = chunk.get(end).copied();
            if c + 1 < ncols {
                if next == Some(delimiter) {
                    pos = end + 1;
                    continue;
                }
                // The line ended early.
                return Err(layout.error(
                    line,
                    end - line_start + 1,
                    format!(
                        "the line has {} cells but the header has {ncols} columns (no cell for column `{}`)",
                        c + 1,
                        layout.columns[c + 1]
                    ),
                ));
            }
            pos = match next {
                None => len,
                Some(b'\n') => end + 1,
                Some(b'\r') if matches!(chunk.get(end + 1), None | Some(b'\n')) => end + 2,
                Some(d) if d == delimiter => {
                    return Err(layout.error(
                        line,
                        end - line_start + 1,
                        format!("the line has more cells than the {ncols} columns of the header"),
                    ))
                }
                Some(_) => {
                    return Err(layout.error(
                        line,
                        end - line_start + 1,
                        "a stray carriage return ends the cell".into(),
                    ))
                }
            };
        }
        out.rows += 1;
        line += 1 + row_newlines;
    }
    Ok(out)
}

/// A line with nothing but spaces, tabs or a carriage return. Such lines hold no row, as in
/// pandas.
fn is_blank_line(chunk: &[u8], pos: usize) -> bool {
    for &b in &chunk[pos..] {
        match b {
            b'\n' => return true,
            b' ' | b'\t' | b'\r' => {}
            _ => return false,
        }
    }
    true
}

/// The common case: a plain number directly followed by a delimiter. Returns the value and
/// the index of the delimiter (or the end). Anything else (spaces, quotes, missing values,
/// garbage) goes to the slow path.
#[inline]
fn parse_cell_fast(chunk: &[u8], pos: usize, delimiter: u8) -> Option<(f64, usize)> {
    if let Some(hit) = parse_plain_decimal(chunk, pos, delimiter) {
        return Some(hit);
    }
    let (value, used) = fast_float2::parse_partial::<f64, _>(chunk.get(pos..)?).ok()?;
    let end = pos + used;
    match chunk.get(end) {
        None | Some(b'\n' | b'\r') => Some((value, end)),
        Some(&d) if d == delimiter => Some((value, end)),
        _ => None,
    }
}

/// A cell's text as a number: missing-value markers become NaN.
fn number_cell(text: &str) -> Option<f64> {
    match text.trim_matches([' ', '\t']) {
        "" | "NA" | "N/A" | "null" | "NULL" | "None" => Some(f64::NAN),
        cell => fast_float2::parse::<f64, _>(cell).ok(),
    }
}

/// Exact powers of ten up to 10^22, the largest that an f64 holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The shape nearly every cell of a data export has, `-123.456789`, parsed in a few
/// nanoseconds: a third faster than the general parser on the benchmark file.
///
/// Correctly rounded by construction (Clinger's fast path): the digits form an integer
/// `m < 2^53` and the divisor `10^f` (`f <= 22`) are both exact in an f64, and IEEE
/// division rounds their quotient correctly. Anything else (more digits, an exponent, a
/// leading `+` or `.`, a missing value) returns `None` for the general parser.
#[inline]
fn parse_plain_decimal(chunk: &[u8], pos: usize, delimiter: u8) -> Option<(f64, usize)> {
    let mut i = pos;
    let negative = chunk.get(i) == Some(&b'-');
    i += usize::from(negative);
    let mut mantissa: u64 = 0;
    let int_start = i;
    while let Some(d) = chunk
        .get(i)
        .map(|c| c.wrapping_sub(b'0'))
        .filter(|&d| d <= 9)
    {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if int_digits > 0 && chunk.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while let Some(d) = chunk
            .get(i)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|&d| d <= 9)
        {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        frac_digits = i - frac_start;
    }
    // 19 digits cannot overflow a u64, so `mantissa` is exact when this holds.
    if int_digits == 0 || int_digits + frac_digits > 19 || frac_digits > 22 || mantissa > 1 << 53 {
        return None;
    }
    match chunk.get(i) {
        None | Some(b'\n' | b'\r') => {}
        Some(&d) if d == delimiter => {}
        _ => return None,
    }
    let value = mantissa as f64 / POW10[frac_digits];
    Some((if negative { -value } else { value }, i))
}

// ---------------------------------------------------------------------------------------------
// Timestamps

/// Microseconds since 1970-01-01T00:00:00Z from `YYYY-MM-DD`, optionally followed by `T`
/// or a space and `HH:MM[:SS[.fraction]]`, optionally followed by `Z` or an offset
/// (`+02:00`, `-0500`). Without an offset the time is taken as UTC. A hand-written parser:
/// chrono's format parser takes about 200 ns a cell, which is 200 ms on a million rows.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |from: usize, n: usize| -> Option<i64> {
        let s = b.get(from..from + n)?;
        s.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let year = digits(0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (month, day) = (digits(5, 2)?, digits(8, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    let mut micros = 0i64;
    let mut i = 10;
    if i < b.len() {
        if !matches!(b[i], b'T' | b't' | b' ') {
            return None;
        }
        let (hour, minute) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
        if b.get(i + 3) != Some(&b':') || hour > 23 || minute > 59 {
            return None;
        }
        seconds += hour * 3600 + minute * 60;
        i += 6;
        if b.get(i) == Some(&b':') {
            let second = digits(i + 1, 2)?;
            if second > 60 {
                return None;
            }
            seconds += second;
            i += 3;
            if matches!(b.get(i), Some(b'.' | b',')) {
                i += 1;
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    if i - start < 6 {
                        micros = micros * 10 + i64::from(b[i] - b'0');
                    }
                    i += 1;
                }
                let n = i - start;
                if n == 0 {
                    return None;
                }
                for _ in n..6 {
                    micros *= 10;
                }
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z' | b'z') if i + 1 == b.len() => {}
            Some(&sign @ (b'+' | b'-')) => {
                let oh = digits(i + 1, 2)?;
                let om = match b.get(i + 3) {
                    Some(b':') => digits(i + 4, 2)?,
                    _ => digits(i + 3, 2)?,
                };
                let used = if b.get(i + 3) == Some(&b':') { 6 } else { 5 };
                if i + used != b.len() || oh > 23 || om > 59 {
                    return None;
                }
                let offset = oh * 3600 + om * 60;
                seconds -= if sign == b'+' { offset } else { -offset };
            }
            _ => return None,
        }
    }
    seconds.checked_mul(1_000_000)?.checked_add(micros)
}

/// A timestamp as RFC 3339 in UTC, `2026-11-01T09:30:00Z` (with microseconds when any).
pub fn format_timestamp(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let time = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if frac == 0 {
        format!("{y:04}-{m:02}-{d:02}T{time}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{time}.{frac:06}Z")
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

// ---------------------------------------------------------------------------------------------
// .npy

/// Load one 2-D `.npy` matrix (float64 or float32): every column but the last is a feature,
/// the last is the target. Features are named `x0`..`x{n-1}` unless `feature_names` gives
/// their names (one per feature column).
pub fn load_npy_matrix(
    input: impl Input,
    display_path: &str,
    feature_names: Option<Vec<String>>,
) -> Result<Dataset> {
    let a = read_npy_file(input, display_path)?;
    matrix_dataset(a, display_path, feature_names)
}

/// [`load_npy_matrix`] from the bytes of a `.npy` file already in memory (a file that a dry
/// run has only simulated exists nowhere else).
pub fn parse_npy_matrix(
    bytes: &[u8],
    display_path: &str,
    feature_names: Option<Vec<String>>,
) -> Result<Dataset> {
    let a = read_npy(&mut { bytes }, bytes.len() as u64, display_path)?;
    matrix_dataset(a, display_path, feature_names)
}

fn matrix_dataset(
    a: ArrayD<f64>,
    display_path: &str,
    feature_names: Option<Vec<String>>,
) -> Result<Dataset> {
    if a.ndim() != 2 {
        return Err(npy_error(
            display_path,
            format!(
                "expected a 2-D matrix (rows × features, target last), but the array is {}-D; save features and target with `numpy.column_stack`",
                a.ndim()
            ),
        ));
    }
    let a = a
        .into_dimensionality::<Ix2>()
        .map_err(|_| unreachable_ndim())?;
    let (rows, cols) = a.dim();
    if cols < 2 {
        return Err(npy_error(
            display_path,
            format!("the matrix has {cols} column(s); it needs feature columns and the target as its last column"),
        ));
    }
    if rows == 0 {
        return Err(npy_error(
            display_path,
            "the matrix has no rows; validation needs at least one".into(),
        ));
    }
    let features = feature_names_for(feature_names, cols - 1, display_path)?;
    let y = a.column(cols - 1).to_owned();
    // Keep the features where they are: slicing an owned array keeps its buffer, so a
    // 70 MB matrix costs no second copy (rows stay contiguous, with a stride of `cols`).
    let x = a.slice_move(s![.., ..cols - 1]);
    Ok(Dataset {
        features,
        x,
        y,
        target: "y".into(),
        source: display_path.to_string(),
        ..Dataset::default()
    })
}

/// Load features and target from two `.npy` files: `x_path` a 2-D matrix (n rows, one
/// column per feature), `y_path` a vector of n values (or an n×1 matrix). float64 or float32.
pub fn load_npy_pair(
    x_path: impl Input,
    x_display: &str,
    y_path: impl Input,
    y_display: &str,
    feature_names: Option<Vec<String>>,
) -> Result<Dataset> {
    let x = read_npy_file(x_path, x_display)?;
    let y = read_npy_file(y_path, y_display)?;
    pair_dataset(x, x_display, y, y_display, feature_names)
}

/// [`load_npy_pair`] from the bytes of two `.npy` files already in memory.
pub fn parse_npy_pair(
    x_bytes: &[u8],
    x_display: &str,
    y_bytes: &[u8],
    y_display: &str,
    feature_names: Option<Vec<String>>,
) -> Result<Dataset> {
    let x = read_npy(&mut { x_bytes }, x_bytes.len() as u64, x_display)?;
    let y = read_npy(&mut { y_bytes }, y_bytes.len() as u64, y_display)?;
    pair_dataset(x, x_display, y, y_display, feature_names)
}

fn pair_dataset(
    x: ArrayD<f64>,
    x_display: &str,
    y: ArrayD<f64>,
    y_display: &str,
    feature_names: Option<Vec<String>>,
) -> Result<Dataset> {
    if x.ndim() != 2 {
        return Err(npy_error(
            x_display,
            format!(
                "the features must be a 2-D matrix (rows × features), but the array is {}-D",
                x.ndim()
            ),
        ));
    }
    let x = x
        .into_dimensionality::<Ix2>()
        .map_err(|_| unreachable_ndim())?;
    let y = match y.shape() {
        [_] => y
            .into_dimensionality::<Ix1>()
            .map_err(|_| unreachable_ndim())?,
        [_, 1] => y
            .index_axis_move(Axis(1), 0)
            .into_dimensionality::<Ix1>()
            .map_err(|_| unreachable_ndim())?,
        shape => {
            return Err(npy_error(
                y_display,
                format!(
                "the target must be a vector (or one column), but the array has shape {shape:?}"
            ),
            ))
        }
    };
    if x.nrows() != y.len() {
        return Err(Error::invalid(
            format!("data `{x_display}` and `{y_display}`"),
            format!(
                "the features have {} rows but the target has {}; give one target value per row",
                x.nrows(),
                y.len()
            ),
        ));
    }
    if x.nrows() == 0 {
        return Err(npy_error(
            x_display,
            "the matrix has no rows; validation needs at least one".into(),
        ));
    }
    let features = feature_names_for(feature_names, x.ncols(), x_display)?;
    Ok(Dataset {
        features,
        x,
        y,
        target: "y".into(),
        source: x_display.to_string(),
        ..Dataset::default()
    })
}

fn feature_names_for(
    names: Option<Vec<String>>,
    n: usize,
    display_path: &str,
) -> Result<Vec<String>> {
    match names {
        None => Ok((0..n).map(|i| format!("x{i}")).collect()),
        Some(names) if names.len() == n => Ok(names),
        Some(names) => Err(Error::invalid(
            format!("feature names for `{display_path}`"),
            format!("{} names were given but the data has {n} feature columns; give one name per column", names.len()),
        )),
    }
}

/// Read a float64 or float32 `.npy` file, of any rank, as f64.
///
/// ndarray-npy parses the header (a Python dict literal); the data is read here, straight
/// into a buffer advised onto huge pages. The crate's own reader allocates a buffer this
/// code cannot advise, and its page faults made loading a 72 MB matrix take about 30 ms
/// instead of about 12 ms.
fn read_npy_file(input: impl Input, display_path: &str) -> Result<ArrayD<f64>> {
    let file = input.open(display_path)?;
    let size = file
        .metadata()
        .map_err(|e| Error::io(display_path, "read", e))?
        .len();
    if size > DEFAULT_MAX_INPUT_BYTES {
        return Err(too_large(
            display_path,
            "data",
            size,
            DEFAULT_MAX_INPUT_BYTES,
        ));
    }
    read_npy(
        &mut io::BufReader::with_capacity(1 << 16, file),
        size,
        display_path,
    )
}

/// Read a float64 or float32 `.npy` array of any rank, as f64, from `input` (a file or
/// bytes in memory) of `total_len` bytes; see [`read_npy_file`].
///
/// The header's shape is checked against the bytes the input actually holds before the
/// array is allocated: a 928-byte file that claims a shape of (10^12, 9) is refused here,
/// not by the allocator aborting the process.
fn read_npy(input: &mut impl Read, total_len: u64, display_path: &str) -> Result<ArrayD<f64>> {
    // The header's length is a u16 (version 1) or a u32 (versions 2 and 3), and the header
    // parser allocates that much before reading: check it against the input first. Found
    // by the `npy` fuzz target, which made it allocate 4 GiB for an 18-byte file.
    let mut prefix = [0u8; 12];
    let got = read_up_to(input, &mut prefix).map_err(|e| Error::io(display_path, "read", e))?;
    let prefix = &prefix[..got];
    if got >= 10 && prefix.starts_with(b"\x93NUMPY") {
        let header_len = match prefix[6] {
            1 => Some(u64::from(u16::from_le_bytes([prefix[8], prefix[9]])) + 10),
            2 | 3 if got >= 12 => Some(
                u64::from(u32::from_le_bytes([
                    prefix[8], prefix[9], prefix[10], prefix[11],
                ])) + 12,
            ),
            _ => None,
        };
        if let Some(header_len) = header_len {
            if header_len > total_len {
                return Err(npy_error(
                    display_path,
                    format!(
                        "its header claims {header_len} bytes but the file holds {total_len} (is it truncated?)"
                    ),
                ));
            }
        }
    }
    let mut chained = prefix.chain(input);
    let mut input = CountingReader {
        inner: &mut chained,
        read: 0,
    };
    let header = Header::from_reader(&mut input).map_err(|e| match e {
        ReadHeaderError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => npy_error(
            display_path,
            "it is too short to be a NumPy array file".into(),
        ),
        ReadHeaderError::Io(io) => Error::io(display_path, "read", io),
        ReadHeaderError::Parse(p) => npy_header_error(p, display_path),
    })?;
    let descriptor = header.type_descriptor.as_string().map(String::as_str);
    let (width, big_endian) = match descriptor {
        Some("<f8") => (8, false),
        Some(">f8") => (8, true),
        Some("<f4") => (4, false),
        Some(">f4") => (4, true),
        _ => {
            return Err(npy_error(
                display_path,
                format!(
                    "its elements are `{}`, but only float64 and float32 arrays are read (convert with `.astype(numpy.float64)`)",
                    header.type_descriptor
                ),
            ))
        }
    };
    let len = header
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|n| n.checked_mul(width).is_some())
        .ok_or_else(|| {
            npy_error(
                display_path,
                format!("its shape {:?} is too large", header.shape),
            )
        })?;
    let data_bytes = len as u64 * width as u64;
    let available = total_len.saturating_sub(input.read);
    if data_bytes != available {
        return Err(npy_error(
            display_path,
            if data_bytes > available {
                format!(
                    "its header announces shape {:?}, {data_bytes} bytes of data, but the file holds only {available} after the header (is it truncated?)",
                    header.shape
                )
            } else {
                format!(
                    "its header announces shape {:?}, {data_bytes} bytes of data, but {} more bytes follow the data",
                    header.shape,
                    available - data_bytes
                )
            },
        ));
    }
    let input = &mut input;
    let swap = big_endian == cfg!(target_endian = "little");
    let data = if width == 8 {
        let mut data = zeroed_buffer(len);
        read_npy_data(input, f64_bytes_mut(&mut data), display_path)?;
        if swap {
            data.iter_mut()
                .for_each(|v| *v = f64::from_bits(v.to_bits().swap_bytes()));
        }
        data
    } else {
        let mut narrow = vec![0.0f32; len];
        read_npy_data(input, f32_bytes_mut(&mut narrow), display_path)?;
        let mut data = zeroed_buffer(len);
        for (wide, &v) in data.iter_mut().zip(&narrow) {
            let v = if swap {
                f32::from_bits(v.to_bits().swap_bytes())
            } else {
                v
            };
            *wide = f64::from(v);
        }
        data
    };
    let shape = IxDyn(&header.shape);
    let array = if header.layout.is_fortran() {
        ArrayD::from_shape_vec(shape.f(), data)
    } else {
        ArrayD::from_shape_vec(shape, data)
    };
    array.map_err(|_| npy_error(display_path, "its shape does not match its data".into()))
}

/// Read as many bytes as `buf` holds, or fewer at the end of the input.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A reader that counts the bytes read through it, to know where the header ended.
struct CountingReader<'a, R> {
    inner: &'a mut R,
    read: u64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Fill `buf` from the input, then insist the input ends there.
fn read_npy_data(input: &mut impl Read, buf: &mut [u8], display_path: &str) -> Result<()> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => npy_error(
            display_path,
            "the file ends before all the data its header announces (is it truncated?)".into(),
        ),
        _ => Error::io(display_path, "read", e),
    })?;
    let mut extra = [0u8; 1];
    match input.read(&mut extra) {
        Ok(0) => Ok(()),
        Ok(_) => Err(npy_error(
            display_path,
            "bytes follow the data its header announces".into(),
        )),
        Err(e) => Err(Error::io(display_path, "read", e)),
    }
}

/// The bytes of an f64 buffer, for reading raw `.npy` data into it.
fn f64_bytes_mut(values: &mut [f64]) -> &mut [u8] {
    // SAFETY: the byte slice covers exactly the memory of `values`, which it borrows
    // mutably for its whole life; u8 has no alignment requirement, and every bit pattern
    // written through it is a valid f64.
    unsafe {
        std::slice::from_raw_parts_mut(
            values.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(values),
        )
    }
}

/// The bytes of an f32 buffer; see [`f64_bytes_mut`].
fn f32_bytes_mut(values: &mut [f32]) -> &mut [u8] {
    // SAFETY: as for `f64_bytes_mut`: same memory, exclusive borrow, any bits are a valid f32.
    unsafe {
        std::slice::from_raw_parts_mut(
            values.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(values),
        )
    }
}

fn npy_header_error(e: ParseHeaderError, display_path: &str) -> Error {
    match e {
        ParseHeaderError::MagicString => npy_error(
            display_path,
            "it does not start with the .npy magic bytes, so it is not a NumPy array file (write one with `numpy.save`)".into(),
        ),
        other => npy_error(display_path, format!("its header is malformed ({other})")),
    }
}

fn npy_error(display_path: &str, message: String) -> Error {
    Error::Parse {
        path: display_path.to_string(),
        format: ".npy",
        line: 0,
        column: 0,
        message,
    }
}

/// `read_npy` returns a dynamic-dimension array whose rank was checked by the caller.
fn unreachable_ndim() -> Error {
    Error::invalid("npy array", "unexpected number of dimensions")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use ndarray_npy::write_npy;
    use std::fs;

    fn parse(text: &str) -> Result<Dataset> {
        parse_csv(text.as_bytes(), "data.csv", "y")
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn reads_features_and_target() {
        let d = parse("a,y,b\n1,10,2\n3.5,20,-4e-1\n").unwrap();
        assert_eq!(d.features, ["a", "b"]);
        assert_eq!(d.x, array![[1.0, 2.0], [3.5, -0.4]]);
        assert_eq!(d.y, array![10.0, 20.0]);
        assert_eq!((d.target.as_str(), d.source.as_str()), ("y", "data.csv"));
        assert_eq!(d.column_index("b"), Some(1));
    }

    #[test]
    fn line_endings_bom_quotes_and_spaces() {
        let want = parse("a,y\n1,2\n3,4\n").unwrap();
        for text in [
            "a,y\r\n1,2\r\n3,4\r\n",
            "a,y\r\n1,2\r\n3,4",
            "a,y\n1,2\n3,4",
            "\u{feff}a,y\n1,2\n3,4\n",
            "\"a\",\"y\"\n\"1\", 2\n 3 ,4\t\n",
            "a,y\n\n1,2\n   \n3,4\n\n\n",
        ] {
            let d = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(
                (d.x.clone(), d.y.clone()),
                (want.x.clone(), want.y.clone()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn custom_target_name() {
        let d = parse_csv(b"price,size,rooms\n100,50,2\n", "h.csv", "price").unwrap();
        assert_eq!(d.features, ["size", "rooms"]);
        assert_eq!(d.y, array![100.0]);
        assert_eq!(d.target, "price");
    }

    #[test]
    fn missing_values_become_nan() {
        let d = parse("a,b,c,y\n,nan,NaN,1\nNA,N/A,null,2\n1,inf,-Infinity,\n").unwrap();
        assert!(d.x.row(0).iter().all(|v| v.is_nan()));
        assert!(d.x.row(1).iter().all(|v| v.is_nan()));
        assert_eq!(d.x[[2, 1]], f64::INFINITY);
        assert_eq!(d.x[[2, 2]], f64::NEG_INFINITY);
        assert!(d.y[2].is_nan());
    }

    #[test]
    fn missing_target_lists_the_columns() {
        let err = message("a,b\n1,2\n");
        assert!(
            err.contains("`data.csv`") && err.contains("no target column `y`"),
            "{err}"
        );
        assert!(err.contains("`a`, `b`") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn non_numeric_cell_names_line_and_column() {
        let strict = |text: &str, features: &[&str]| {
            let mut o = CsvOptions::new("y");
            o.features = Some(features.iter().map(|f| f.to_string()).collect());
            parse_csv_with(text.as_bytes(), "data.csv", &o)
                .unwrap_err()
                .to_string()
        };
        let err = strict("a,b,y\n1,2,3\n4,five,6\n", &["a", "b"]);
        assert!(
            err.contains("`five`") && err.contains("column `b`"),
            "{err}"
        );
        assert!(err.contains("line 3, column 3"), "{err}");
        let err = strict("a,y\n1,2\n1.5x,2\n", &["a"]);
        assert!(err.contains("`1.5x`") && err.contains("line 3"), "{err}");
        // The target is always strict.
        let err = message("a,y\n1,2\n3,two\n");
        assert!(
            err.contains("`two` in column `y`") && err.contains("line 3"),
            "{err}"
        );
    }

    /// A column that holds text is left out, not an error, until a model needs it.
    #[test]
    fn text_columns_do_not_matter_until_a_model_needs_them() {
        let text = "timestamp,symbol,f0,y\n2026-11-01T00:00:00Z,AAPL,1.5,2\n2026-11-01T00:01:00Z,\"Apple, Inc.\",2.5,3\n";
        let d = parse(text).unwrap();
        assert_eq!(d.features, ["f0"]);
        assert_eq!(d.x, array![[1.5], [2.5]]);
        let names: Vec<&str> = d.text_columns.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["timestamp", "symbol"]);
        let err = d
            .columns_for(&["f0".into(), "symbol".into()], "m.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs feature `symbol`")
                && err.contains("holds text (line 2 has `AAPL`)"),
            "{err}"
        );
    }

    #[test]
    fn rfc4180_quoting_delimiters_timestamps_and_ids() {
        let mut o = CsvOptions::new("y");
        o.delimiter = b';';
        o.timestamp = Some("ts".into());
        o.id = Some("sym".into());
        let text = "ts;sym;note;f0;y\r\n\
            2026-11-01 09:30:00;\"A;B\";\"said \"\"hi\"\"\nover two lines\";1,5;2\r\n\
            2026-11-02T10:00:00.25+01:00;C;plain;\"3.25\";4\r\n";
        // `1,5` with `;` as the delimiter is text: the column is left out.
        let d = parse_csv_with(text.as_bytes(), "d.csv", &o).unwrap();
        assert_eq!(d.n_rows(), 2);
        assert_eq!(d.ids.as_ref().unwrap().values, ["A;B", "C"]);
        let (min, max) = d.time_range().unwrap();
        assert_eq!(format_timestamp(min), "2026-11-01T09:30:00Z");
        assert_eq!(format_timestamp(max), "2026-11-02T09:00:00.250000Z");
        assert_eq!(d.describe_row(1), "row 2 (`sym` `C`)");
        let err = d.name_row_in(Error::invalid(
            "metric `mse`",
            "the prediction for row 2 is NaN",
        ));
        assert_eq!(
            err.to_string(),
            "metric `mse`: the prediction for row 2 (`sym` `C`) is NaN"
        );
        assert!(d.features.is_empty(), "{:?}", d.features);
        assert_eq!(d.text_columns.len(), 2);
        // Tabs, and a quoted newline counted in later line numbers.
        o.delimiter = b'\t';
        o.timestamp = None;
        o.id = None;
        let d = parse_csv_with(b"a\tb\ty\n\"x\ny\"\t1\t2\n\"z\"\tbad\t3\n", "t.tsv", &o).unwrap();
        assert_eq!(d.features, Vec::<String>::new());
        assert_eq!(d.text_columns[1].line, 4);
        let err = parse_csv_with(
            b"ts,y\n2026-13-01,1\n",
            "d.csv",
            &CsvOptions {
                timestamp: Some("ts".into()),
                ..CsvOptions::new("y")
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`2026-13-01` in timestamp column `ts` is not a timestamp")
                && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn quoted_files_split_into_chunks_like_one_thread() {
        let mut text = String::from("id,f0,y\n");
        for i in 0..600 {
            text.push_str(&format!("\"r{i},\n\"\"q\"\"\",{i},{}\n", i * 2));
        }
        let mut o = CsvOptions::new("y");
        o.id = Some("id".into());
        let one = parse_csv_chunked(text.as_bytes(), "d.csv", &o, 1, usize::MAX).unwrap();
        for threads in [2, 3, 7] {
            let many = parse_csv_chunked(text.as_bytes(), "d.csv", &o, threads, 64).unwrap();
            assert_eq!((&many.x, &many.y), (&one.x, &one.y), "{threads} threads");
            assert_eq!(
                many.ids.as_ref().unwrap().values,
                one.ids.as_ref().unwrap().values
            );
        }
        assert_eq!(one.ids.unwrap().values[599], "r599,\n\"q\"");
    }

    #[test]
    fn timestamps_parse_and_format() {
        let cases = [
            ("1970-01-01", 0),
            ("1970-01-01T00:00:01Z", 1_000_000),
            ("2026-11-01T00:00:00Z", 1_793_491_200_000_000),
            ("2026-11-01 00:00:00", 1_793_491_200_000_000),
            ("2026-11-01T02:00:00+02:00", 1_793_491_200_000_000),
            ("2026-10-31T19:00:00-0500", 1_793_491_200_000_000),
            ("2000-02-29T12:00:00.5Z", 951_825_600_500_000),
            ("1969-12-31T23:59:59Z", -1_000_000),
        ];
        for (text, want) in cases {
            assert_eq!(parse_timestamp(text), Some(want), "{text}");
        }
        for bad in [
            "2026-02-30",
            "2026-11-01T24:00:00",
            "20261101",
            "2026-11-01T00:00:00Zx",
            "2026-11-01T00:00:00.Z",
            "",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        assert_eq!(format_timestamp(-1_000_000), "1969-12-31T23:59:59Z");
        assert_eq!(
            format_timestamp(951_825_600_500_000),
            "2000-02-29T12:00:00.500000Z"
        );
    }

    #[test]
    fn inputs_over_the_limit_are_refused_before_allocating() {
        let mut o = CsvOptions::new("y");
        o.max_bytes = 10;
        let err = parse_csv_with(b"a,y\n1,2\n3,4\n", "d.csv", &o)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("more than the") && err.contains("`max_bytes`"),
            "{err}"
        );
        // A million blank lines under a thousand-column header claim rows that cannot exist.
        let mut text = (0..1000)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",");
        text.push_str(",y\n");
        text.push_str(&"\n".repeat(1_000_000));
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("no data rows"), "{err}");
        // A version-2 header whose length field claims 4 GiB (found by the `npy` fuzz target).
        let err = parse_npy_matrix(b"\x93NUMPY\x02\x00\x00\x00\x00\xffabcdef", "h.npy", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("its header claims 4278190092 bytes but the file holds 18"),
            "{err}"
        );
        // A 928-byte .npy whose header claims shape (10^12, 9).
        let mut npy = raw_npy("<f8", false, "(1000000000000, 9)", &[]);
        npy.resize(928, 0);
        let err = parse_npy_matrix(&npy, "huge.npy", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("announces shape [1000000000000, 9]") && err.contains("holds only"),
            "{err}"
        );
    }

    #[test]
    fn ragged_rows_are_errors() {
        let err = message("a,b,y\n1,2,3\n4,5\n");
        assert!(
            err.contains("2 cells but the header has 3") && err.contains("no cell for column `y`"),
            "{err}"
        );
        assert!(err.contains("line 3"), "{err}");
        let err = message("a,b,y\n1,2,3,4\n");
        assert!(
            err.contains("more cells than the 3 columns") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn empty_and_header_only_files() {
        assert!(message("").contains("the file is empty"));
        assert!(message("\n\n").contains("the file is empty"));
        assert!(message("a,y\n").contains("no data rows"));
        assert!(message("a,y").contains("no data rows"));
        assert!(message("a,y\n\n\n").contains("no data rows"));
    }

    #[test]
    fn bad_headers() {
        assert!(message("a,a,y\n1,2,3\n").contains("column `a` appears twice"));
        // An unnamed column (pandas' index) is skipped, never a feature.
        let d = parse(",a,y\n0,2,3\n1,4,5\n").unwrap();
        assert_eq!(d.features, ["a"]);
        assert!(message("a,\"b,y\n1,2\n").contains("never closed"));
    }

    /// A CSV with blank lines and missing cells, parsed in many tiny chunks, must give exactly
    /// what one thread gives.
    #[test]
    fn chunked_parse_matches_single_thread() {
        let mut text = String::from("x0,x1,y,x2\n");
        for i in 0..997 {
            if i % 97 == 0 {
                text.push('\n');
            }
            let missing = if i % 13 == 0 {
                String::new()
            } else {
                format!("{}", i as f64 * 0.25)
            };
            let end = if i % 2 == 0 { "\r\n" } else { "\n" };
            text.push_str(&format!("{i},{missing},{},{}e-3{end}", -i, i * 7));
        }
        let one = parse_csv_chunked(
            text.as_bytes(),
            "d.csv",
            &CsvOptions::new("y"),
            1,
            usize::MAX,
        )
        .unwrap();
        for threads in [2, 3, 8] {
            let many =
                parse_csv_chunked(text.as_bytes(), "d.csv", &CsvOptions::new("y"), threads, 64)
                    .unwrap();
            assert_eq!(many.x.dim(), (997, 3));
            // NaN != NaN, so compare the bits.
            let bits = |d: &Dataset| {
                d.x.iter()
                    .chain(&d.y)
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(&many), bits(&one), "{threads} threads");
        }
        assert_eq!(one.y[996], -996.0);
        assert_eq!(one.x[[996, 2]], 6.972);
    }

    #[test]
    fn chunked_errors_report_the_first_bad_line() {
        let mut text = String::from("a,y\n");
        for i in 0..500 {
            text.push_str(if i == 300 || i == 450 {
                "oops,1\n"
            } else {
                "1,1\n"
            });
        }
        let mut o = CsvOptions::new("y");
        o.features = Some(vec!["a".into()]);
        let err = parse_csv_chunked(text.as_bytes(), "d.csv", &o, 4, 32)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 302"), "{err}");
        // Leniently, the column is left out, and the first bad cell is the one remembered.
        let d = parse_csv_chunked(text.as_bytes(), "d.csv", &CsvOptions::new("y"), 4, 32).unwrap();
        assert_eq!(d.text_columns[0].line, 302);
    }

    #[test]
    fn chunks_split_on_line_boundaries() {
        let body = b"1,2\n3,4\n5,6\n7,8";
        for n in 1..6 {
            let chunks = split_records(body, n, 1, false);
            assert_eq!(chunks.concat(), body.to_vec());
            assert!(chunks[..chunks.len() - 1]
                .iter()
                .all(|c| c.ends_with(b"\n")));
        }
    }

    #[test]
    fn plain_decimals_round_like_the_general_parser() {
        let cases = [
            "0",
            "-0",
            "1",
            "-1.5",
            "0.1",
            "0.30000000000000004",
            "123456789.123456",
            "9007199254740993",
            "1.7976931348623157",
            "-0.000001",
            "4.35",
            "0.000000000000000000001",
            "12345678901234567890",
            "1.",
            "1.e5",
            "1e5",
            "+1",
            ".5",
            "-",
            "abc",
            "1.5x",
        ];
        for text in cases {
            let plain = parse_plain_decimal(text.as_bytes(), 0, b',');
            let general = fast_float2::parse::<f64, _>(text).ok();
            if let Some((v, end)) = plain {
                assert_eq!(end, text.len(), "{text}");
                assert_eq!(Some(v.to_bits()), general.map(f64::to_bits), "{text}");
            }
        }
        // A deterministic sweep of six-decimal values, the benchmark's format.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let text = format!("{:.6}", (state % 20_000_000_000) as f64 / 1e6 - 10_000.0);
            let (v, _) = parse_plain_decimal(text.as_bytes(), 0, b',').expect("plain");
            assert_eq!(
                v.to_bits(),
                fast_float2::parse::<f64, _>(&text).unwrap().to_bits(),
                "{text}"
            );
        }
    }

    #[test]
    fn load_csv_names_a_missing_file() {
        let err = load_csv(Path::new("/nonexistent/v.csv"), "data/v.csv", "y").unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot open `data/v.csv`: no such file"),
            "{err}"
        );
    }

    #[test]
    fn npy_matrix_f64_and_f32() {
        let dir = tempfile::tempdir().unwrap();
        let p64 = dir.path().join("m64.npy");
        write_npy(&p64, &array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]).unwrap();
        let d = load_npy_matrix(&p64, "m64.npy", None).unwrap();
        assert_eq!(d.features, ["x0", "x1"]);
        assert_eq!(d.x, array![[1.0, 2.0], [4.0, 5.0]]);
        assert_eq!(d.y, array![3.0, 6.0]);

        let p32 = dir.path().join("m32.npy");
        write_npy(&p32, &array![[1.5f32, 2.0], [f32::NAN, 5.0]]).unwrap();
        let d = load_npy_matrix(&p32, "m32.npy", Some(vec!["size".into()])).unwrap();
        assert_eq!(d.features, ["size"]);
        assert!(d.x[[1, 0]].is_nan());
        assert_eq!(d.y, array![2.0, 5.0]);

        let err = load_npy_matrix(&p64, "m64.npy", Some(vec!["a".into()]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1 names were given but the data has 2"),
            "{err}"
        );
    }

    #[test]
    fn npy_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("v.npy");
        write_npy(&v, &array![1.0f64, 2.0]).unwrap();
        let err = load_npy_matrix(&v, "v.npy", None).unwrap_err().to_string();
        assert!(err.contains("`v.npy`") && err.contains("1-D"), "{err}");

        let text = dir.path().join("t.npy");
        fs::write(&text, "a,b\n1,2\n").unwrap();
        let err = load_npy_matrix(&text, "t.npy", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`t.npy`") && err.contains("not a NumPy array file"),
            "{err}"
        );

        let ints = dir.path().join("i.npy");
        write_npy(&ints, &array![[1i64, 2], [3, 4]]).unwrap();
        let err = load_npy_matrix(&ints, "i.npy", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`i.npy`") && err.contains("<i8"), "{err}");

        let truncated = dir.path().join("cut.npy");
        let bytes = fs::read(dir.path().join("v.npy")).unwrap();
        fs::write(&truncated, &bytes[..bytes.len() - 3]).unwrap();
        let err = load_npy_matrix(&truncated, "cut.npy", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    /// A version 1.0 `.npy` file written by hand, for layouts `write_npy` does not produce.
    fn raw_npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut dict = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + dict.len() + 1) % 64 != 0 {
            dict.push(' ');
        }
        dict.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn npy_big_endian_fortran_and_trailing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let be8: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        fs::write(&path, raw_npy(">f8", false, "(2, 2)", &be8)).unwrap();
        let d = load_npy_matrix(&path, "a.npy", None).unwrap();
        assert_eq!(
            (d.x.column(0).to_vec(), d.y.to_vec()),
            (vec![1.0, 3.0], vec![2.0, 4.0])
        );

        // Fortran order: the bytes hold column after column.
        let be4: Vec<u8> = [1.0f32, 3.0, 2.0, 4.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        fs::write(&path, raw_npy(">f4", true, "(2, 2)", &be4)).unwrap();
        let d = load_npy_matrix(&path, "a.npy", None).unwrap();
        assert_eq!(
            (d.x.column(0).to_vec(), d.y.to_vec()),
            (vec![1.0, 3.0], vec![2.0, 4.0])
        );

        let mut le8: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        le8.push(0);
        fs::write(&path, raw_npy("<f8", false, "(1, 2)", &le8)).unwrap();
        let err = load_npy_matrix(&path, "a.npy", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bytes follow the data"), "{err}");

        fs::write(&path, b"\x93NU").unwrap();
        let err = load_npy_matrix(&path, "a.npy", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("too short"), "{err}");
    }

    #[test]
    fn npy_from_bytes_matches_npy_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let (mp, xp, yp) = (
            dir.path().join("m.npy"),
            dir.path().join("x.npy"),
            dir.path().join("y.npy"),
        );
        write_npy(&mp, &array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]).unwrap();
        write_npy(&xp, &array![[1.0f32, 2.0], [4.0, 5.0]]).unwrap();
        write_npy(&yp, &array![3.0f64, 6.0]).unwrap();
        let from_file = load_npy_matrix(&mp, "m.npy", None).unwrap();
        let from_bytes = parse_npy_matrix(&fs::read(&mp).unwrap(), "m.npy", None).unwrap();
        assert_eq!(
            (from_file.x, from_file.y),
            (from_bytes.x.clone(), from_bytes.y.clone())
        );
        let pair = parse_npy_pair(
            &fs::read(&xp).unwrap(),
            "x.npy",
            &fs::read(&yp).unwrap(),
            "y.npy",
            None,
        )
        .unwrap();
        assert_eq!((pair.x, pair.y), (from_bytes.x, from_bytes.y));
        let err = parse_npy_matrix(&fs::read(&mp).unwrap()[..60], "cut.npy", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`cut.npy`"), "{err}");
    }

    #[test]
    fn npy_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (xp, yp, y2p, badp) = (
            dir.path().join("x.npy"),
            dir.path().join("y.npy"),
            dir.path().join("y2.npy"),
            dir.path().join("bad.npy"),
        );
        write_npy(&xp, &array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]]).unwrap();
        write_npy(&yp, &array![7.0f32, 8.0, 9.0]).unwrap();
        write_npy(&y2p, &array![[7.0f64], [8.0], [9.0]]).unwrap();
        write_npy(&badp, &array![7.0f64, 8.0]).unwrap();
        let d = load_npy_pair(&xp, "x.npy", &yp, "y.npy", None).unwrap();
        assert_eq!((d.x.dim(), d.y.to_vec()), ((3, 2), vec![7.0, 8.0, 9.0]));
        let d = load_npy_pair(&xp, "x.npy", &y2p, "y2.npy", None).unwrap();
        assert_eq!(d.y.to_vec(), vec![7.0, 8.0, 9.0]);
        let err = load_npy_pair(&xp, "x.npy", &badp, "bad.npy", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("3 rows but the target has 2") && err.contains("`bad.npy`"),
            "{err}"
        );
        let err = load_npy_pair(&yp, "y.npy", &yp, "y.npy", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2-D matrix"), "{err}");
    }

    #[test]
    fn columns_for_names_every_missing_feature() {
        let d = parse("a,b,y\n1,2,3\n").unwrap();
        assert_eq!(
            d.columns_for(&["b".into(), "a".into()], "m.json").unwrap(),
            [1, 0]
        );
        let err = d
            .columns_for(&["a".into(), "c".into(), "d".into()], "m.json")
            .unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("features `c`, `d`")
                && err.contains("`m.json`")
                && err.contains("`data.csv`"),
            "{err}"
        );
    }
}
