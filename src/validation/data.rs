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
#[derive(Debug, Clone)]
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
// CSV

/// Below this many bytes of data a single thread parses the whole file: starting threads
/// would cost more than it saves.
const MIN_CHUNK_BYTES: usize = 1 << 20;

/// Where a CSV column's values go: a feature column of `x`, or `y`.
#[derive(Clone, Copy)]
enum Dest {
    Feature(usize),
    Target,
}

/// What every chunk parser needs to know about the file.
struct CsvLayout<'a> {
    display_path: &'a str,
    /// The header's column names, in file order.
    columns: &'a [String],
    dest: Vec<Dest>,
    n_features: usize,
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

/// Read a CSV file with a header line. Column `target` becomes `y`; every other column is a
/// feature. `display_path` is how the file is named in messages.
pub fn load_csv(input: impl Input, display_path: &str, target: &str) -> Result<Dataset> {
    let bytes = read_file(input.open(display_path)?, display_path)?;
    parse_csv(&bytes, display_path, target)
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

/// Read a whole file into memory.
///
/// A read rather than a memory map: a mapped file that another process truncates while it
/// is parsed kills this process with SIGBUS, and a runbook must not die mid-rollback. The
/// buffer is advised onto huge pages first, which brings the read of a 90 MB file from about
/// 47 ms (mostly page faults on the fresh buffer) to about 12 ms, close to mapping it.
fn read_file(mut file: File, display_path: &str) -> Result<Vec<u8>> {
    let size = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut bytes = Vec::with_capacity(size.saturating_add(1));
    advise_huge_pages(bytes.as_mut_ptr(), bytes.capacity());
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io(display_path, "read", e))?;
    Ok(bytes)
}

/// A zeroed buffer of `len` values for the parser to fill. The allocator hands out fresh,
/// untouched pages for large zeroed buffers; advising them onto huge pages before the
/// parser threads touch them cuts the page faults of a 72 MB matrix about 500-fold.
fn zeroed_buffer(len: usize) -> Vec<f64> {
    let mut buf = vec![0.0f64; len];
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

/// Parse CSV `bytes` (a header line, then one line per row). See [`load_csv`].
pub fn parse_csv(bytes: &[u8], display_path: &str, target: &str) -> Result<Dataset> {
    let threads = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    parse_csv_with(bytes, display_path, target, threads, MIN_CHUNK_BYTES)
}

/// [`parse_csv`] with the parallelism spelled out, so tests can force many small chunks.
fn parse_csv_with(
    bytes: &[u8],
    display_path: &str,
    target: &str,
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
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(parse_error(
            0,
            0,
            "the file is empty (it needs a header line and at least one row)".into(),
        ));
    }

    let header_end = find_byte(bytes, 0, b'\n').unwrap_or(bytes.len());
    let header = trim_cr(&bytes[..header_end]);
    let header = std::str::from_utf8(header)
        .map_err(|_| parse_error(1, 1, "the header line is not UTF-8 text".into()))?;
    let columns: Vec<String> = header
        .split(',')
        .map(|c| unquote(c.trim()).to_string())
        .collect();
    for (i, name) in columns.iter().enumerate() {
        if name.is_empty() {
            return Err(parse_error(
                1,
                1,
                format!("column {} of the header has no name", i + 1),
            ));
        }
        if columns[..i].contains(name) {
            return Err(parse_error(
                1,
                1,
                format!("column `{name}` appears twice in the header"),
            ));
        }
    }
    let Some(target_col) = columns.iter().position(|c| c == target) else {
        return Err(parse_error(
            1,
            1,
            format!(
                "the header has no target column `{target}` (its columns: {})",
                list_names(&columns)
            ),
        ));
    };
    let features: Vec<String> = columns
        .iter()
        .filter(|c| c.as_str() != target)
        .cloned()
        .collect();
    let mut next_feature = 0;
    let dest: Vec<Dest> = (0..columns.len())
        .map(|c| {
            if c == target_col {
                Dest::Target
            } else {
                next_feature += 1;
                Dest::Feature(next_feature - 1)
            }
        })
        .collect();
    let layout = CsvLayout {
        display_path,
        columns: &columns,
        dest,
        n_features: features.len(),
    };

    let body_start = (header_end + 1).min(bytes.len());
    let body = &bytes[body_start..];
    let chunks = split_lines(body, max_threads, min_chunk);

    // Pass 1: lines per chunk, so every chunk knows the rows it owns and its first line number.
    let line_counts: Vec<usize> = if chunks.len() == 1 {
        vec![count_lines(chunks[0])]
    } else {
        thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|c| scope.spawn(move || count_lines(c)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("line counter panicked"))
                .collect()
        })
    };
    let total_lines: usize = line_counts.iter().sum();

    // Pass 2: parse every chunk into its own rows of `x` and `y`.
    let nf = layout.n_features;
    let mut x = zeroed_buffer(total_lines * nf);
    let mut y = zeroed_buffer(total_lines);
    let mut jobs = Vec::with_capacity(chunks.len());
    {
        let (mut x_rest, mut y_rest) = (x.as_mut_slice(), y.as_mut_slice());
        let mut first_line = 2; // the header is line 1
        for (chunk, &lines) in chunks.iter().zip(&line_counts) {
            let (x_part, x_tail) = x_rest.split_at_mut(lines * nf);
            let (y_part, y_tail) = y_rest.split_at_mut(lines);
            jobs.push((*chunk, first_line, x_part, y_part));
            x_rest = x_tail;
            y_rest = y_tail;
            first_line += lines;
        }
    }
    let results: Vec<Result<usize>> = if jobs.len() == 1 {
        let (chunk, first_line, xs, ys) = jobs.pop().expect("one job");
        vec![parse_chunk(&layout, chunk, first_line, xs, ys)]
    } else {
        let layout = &layout;
        thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(chunk, first_line, xs, ys)| {
                    scope.spawn(move || parse_chunk(layout, chunk, first_line, xs, ys))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("CSV parser panicked"))
                .collect()
        })
    };
    // Every chunk ran to its end or its first error, so the first error reported is the one
    // nearest the top of the file, whatever the thread timing.
    let mut rows_per_chunk = Vec::with_capacity(results.len());
    for result in results {
        rows_per_chunk.push(result?);
    }

    // Blank lines were counted as lines but hold no row: close the gaps they left.
    let mut n_rows = 0;
    let mut start = 0;
    for (&rows, &lines) in rows_per_chunk.iter().zip(&line_counts) {
        if n_rows != start {
            x.copy_within(start * nf..(start + rows) * nf, n_rows * nf);
            y.copy_within(start..start + rows, n_rows);
        }
        n_rows += rows;
        start += lines;
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
    let x = Array2::from_shape_vec((n_rows, nf), x).expect("row-major buffer matches its shape");
    Ok(Dataset {
        features,
        x,
        y: Array1::from_vec(y),
        target: target.to_string(),
        source: display_path.to_string(),
    })
}

/// Split `body` into at most `max_chunks` pieces of at least `min_chunk` bytes, each ending
/// just after a newline (or at the end), so that no line is cut in two.
fn split_lines(body: &[u8], max_chunks: usize, min_chunk: usize) -> Vec<&[u8]> {
    let n = (body.len() / min_chunk.max(1)).clamp(1, max_chunks.max(1));
    let mut chunks = Vec::with_capacity(n);
    let mut start = 0;
    for i in 1..n {
        let aim = (body.len() * i / n).max(start);
        let end = match find_byte(body, aim, b'\n') {
            Some(nl) => nl + 1,
            None => body.len(),
        };
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

/// Lines in a chunk: one per newline, plus a last line without one.
fn count_lines(chunk: &[u8]) -> usize {
    // Count into a byte per block, then widen once per block: the compiler turns this into
    // wide vector compares, about 7 times faster than a plain filter-count (3 ms vs 20 ms
    // for 90 MB). A block of 192 cannot overflow the u8 counter.
    let mut blocks = chunk.chunks_exact(192);
    let mut newlines = 0usize;
    for block in &mut blocks {
        newlines += usize::from(block.iter().fold(0u8, |n, &b| n + u8::from(b == b'\n')));
    }
    newlines += blocks.remainder().iter().filter(|&&b| b == b'\n').count();
    newlines + usize::from(chunk.last().is_some_and(|&b| b != b'\n'))
}

fn find_byte(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    bytes[from..]
        .iter()
        .position(|&b| b == byte)
        .map(|p| p + from)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// Parse one chunk of whole lines into `x` (row-major, `n_features` wide) and `y`; returns
/// the number of rows written (fewer than the lines when some lines are blank).
fn parse_chunk(
    layout: &CsvLayout,
    chunk: &[u8],
    first_line: usize,
    x: &mut [f64],
    y: &mut [f64],
) -> Result<usize> {
    let ncols = layout.dest.len();
    let nf = layout.n_features;
    let len = chunk.len();
    let mut pos = 0;
    let mut row = 0;
    let mut line = first_line;
    while pos < len {
        let line_start = pos;
        if is_blank_line(chunk, pos) {
            pos = find_byte(chunk, pos, b'\n').map_or(len, |nl| nl + 1);
            line += 1;
            continue;
        }
        let x_row = &mut x[row * nf..(row + 1) * nf];
        for (c, dest) in layout.dest.iter().enumerate() {
            let (value, end) = match parse_cell_fast(chunk, pos) {
                Some(hit) => hit,
                None => parse_cell_slow(layout, chunk, pos, line, line_start, c)?,
            };
            match *dest {
                Dest::Feature(j) => x_row[j] = value,
                Dest::Target => y[row] = value,
            }
            let next = chunk.get(end).copied();
            if c + 1 < ncols {
                if next == Some(b',') {
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
                Some(b',') => {
                    return Err(layout.error(
                        line,
                        end - line_start + 1,
                        format!("the line has more cells than the {ncols} columns of the header"),
                    ))
                }
                // Only a cell ending in a stray `\r` gets here; report it as that cell.
                Some(_) => {
                    return Err(parse_cell_slow(layout, chunk, pos, line, line_start, c)
                        .err()
                        .unwrap_or_else(|| {
                            layout.error(
                                line,
                                end - line_start + 1,
                                "a stray carriage return ends the line".into(),
                            )
                        }))
                }
            };
        }
        row += 1;
        line += 1;
    }
    Ok(row)
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
fn parse_cell_fast(chunk: &[u8], pos: usize) -> Option<(f64, usize)> {
    if let Some(hit) = parse_plain_decimal(chunk, pos) {
        return Some(hit);
    }
    let (value, used) = fast_float2::parse_partial::<f64, _>(&chunk[pos..]).ok()?;
    let end = pos + used;
    match chunk.get(end) {
        None | Some(b',' | b'\n' | b'\r') => Some((value, end)),
        _ => None,
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
fn parse_plain_decimal(chunk: &[u8], pos: usize) -> Option<(f64, usize)> {
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
    if !matches!(chunk.get(i), None | Some(b',' | b'\n' | b'\r')) {
        return None;
    }
    let value = mantissa as f64 / POW10[frac_digits];
    Some((if negative { -value } else { value }, i))
}

/// Cells the fast path declined: surrounding spaces, quotes, missing-value markers. A cell
/// runs to the next comma or newline; anything in it that is not a number is an error
/// naming the line and the column.
#[cold]
fn parse_cell_slow(
    layout: &CsvLayout,
    chunk: &[u8],
    pos: usize,
    line: usize,
    line_start: usize,
    column: usize,
) -> Result<(f64, usize)> {
    let end = chunk[pos..]
        .iter()
        .position(|&b| b == b',' || b == b'\n')
        .map_or(chunk.len(), |p| p + pos);
    // A `\r` right before the newline belongs to the line ending, not to the cell.
    let raw_end = if end > pos && chunk[end - 1] == b'\r' && chunk.get(end) != Some(&b',') {
        end - 1
    } else {
        end
    };
    let raw = &chunk[pos..raw_end];
    let text = String::from_utf8_lossy(raw);
    let cell = unquote(text.trim_matches([' ', '\t']));
    let value = match cell {
        "" | "NA" | "N/A" | "null" | "NULL" | "None" => Some(f64::NAN),
        _ => fast_float2::parse::<f64, _>(cell).ok(),
    };
    match value {
        // `raw_end` is where the next delimiter (or the `\r` of a line ending) sits.
        Some(v) => Ok((v, raw_end)),
        None => {
            let shown: String = text.chars().take(40).collect();
            Err(layout.error(
                line,
                pos - line_start + 1,
                format!(
                    "the cell `{shown}` in column `{}` is not a number (leave a cell empty for a missing value)",
                    layout.columns[column]
                ),
            ))
        }
    }
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
    let a = read_npy(&mut { bytes }, display_path)?;
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
    let x = read_npy(&mut { x_bytes }, x_display)?;
    let y = read_npy(&mut { y_bytes }, y_display)?;
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
    let mut file = input.open(display_path)?;
    read_npy(&mut file, display_path)
}

/// Read a float64 or float32 `.npy` array of any rank, as f64, from `input` (a file or
/// bytes in memory); see [`read_npy_file`].
fn read_npy(input: &mut impl Read, display_path: &str) -> Result<ArrayD<f64>> {
    let header = Header::from_reader(&mut *input).map_err(|e| match e {
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
    Ok(array.expect("buffer length is the product of the shape"))
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
        let err = message("a,b,y\n1,2,3\n4,five,6\n");
        assert!(
            err.contains("`five`") && err.contains("column `b`"),
            "{err}"
        );
        assert!(err.contains("line 3, column 3"), "{err}");
        let err = message("a,y\n1,2\n1.5x,2\n");
        assert!(err.contains("`1.5x`") && err.contains("line 3"), "{err}");
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
        assert!(message("a,,y\n1,2,3\n").contains("column 2 of the header has no name"));
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
        let one = parse_csv_with(text.as_bytes(), "d.csv", "y", 1, usize::MAX).unwrap();
        for threads in [2, 3, 8] {
            let many = parse_csv_with(text.as_bytes(), "d.csv", "y", threads, 64).unwrap();
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
        let err = parse_csv_with(text.as_bytes(), "d.csv", "y", 4, 32)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 302"), "{err}");
    }

    #[test]
    fn chunks_split_on_line_boundaries() {
        let body = b"1,2\n3,4\n5,6\n7,8";
        for n in 1..6 {
            let chunks = split_lines(body, n, 1);
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
            let plain = parse_plain_decimal(text.as_bytes(), 0);
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
            let (v, _) = parse_plain_decimal(text.as_bytes(), 0).expect("plain");
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
