//! The CSV loader on arbitrary bytes: the first byte picks the delimiter and whether a
//! timestamp and an id column are asked for; the rest is the file. It may fail, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use runbook::validation::{parse_csv_with, CsvOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let mut options = CsvOptions::new("y");
    options.delimiter = [b',', b';', b'\t', b'|'][usize::from(mode & 3)];
    if mode & 4 != 0 {
        options.timestamp = Some("t".into());
    }
    if mode & 8 != 0 {
        options.id = Some("id".into());
    }
    if mode & 16 != 0 {
        options.features = Some(vec!["a".into(), "b".into()]);
    }
    let _ = parse_csv_with(bytes, "fuzz.csv", &options);
});
