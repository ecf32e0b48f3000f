//! The `.npy` loader on arbitrary bytes, as one matrix and as a features/target pair. It
//! may fail, never panic or allocate past what the bytes could hold.
#![no_main]
use libfuzzer_sys::fuzz_target;
use runbook::validation::{parse_npy_matrix, parse_npy_pair};

fuzz_target!(|data: &[u8]| {
    let _ = parse_npy_matrix(data, "fuzz.npy", None);
    let half = data.len() / 2;
    let _ = parse_npy_pair(&data[..half], "x.npy", &data[half..], "y.npy", None);
});
