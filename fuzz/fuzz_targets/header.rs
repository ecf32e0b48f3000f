//! The runbook header and parameter parser on arbitrary text: an error or a header, never a
//! panic; parameters given on the command line are checked against it, never trusted.
#![no_main]
use libfuzzer_sys::fuzz_target;
use runbook::header::Header;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (head, value) = text.split_once('\u{0}').unwrap_or((text, "1"));
    if let Ok(h) = Header::parse("fuzz.rhai", head) {
        for p in &h.params {
            let _ = h.resolve_params(&[(p.name.clone(), value.to_string())]);
        }
        let _ = h.resolve_params(&[]);
    }
});
