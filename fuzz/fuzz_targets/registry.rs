//! The JSON registry reader on arbitrary bytes: an error or a registry, never a panic; what
//! it reads renders back to text it reads again the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use runbook::registry::{parse_json_registry, render_json_registry};

fuzz_target!(|data: &[u8]| {
    if let Ok(reg) = parse_json_registry("fuzz.json", data) {
        let again = parse_json_registry("fuzz.json", &render_json_registry(&reg))
            .expect("a rendered registry reads again");
        assert_eq!(again.entries.len(), reg.entries.len());
    }
});
