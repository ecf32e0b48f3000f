//! The JSON file store: the registry as one file (`models/registry.json` by default), a JSON
//! array of entries, with every change appended to `registry_history.jsonl` beside it.
//!
//! Entries a change does not touch are written back byte for byte. The file is replaced
//! atomically through the effect door (its old content goes to the trash), and the parsed
//! registry is cached against the file's stamp and refreshed with what was just written, so
//! a run neither re-parses 10,000 entries after each of its own writes nor misses a change
//! somebody else made.

use super::{Change, Entry, Registry, Store, Text};
use crate::effects::{RelPath, Stamped, StoreWriter, Workspace};
use crate::error::{Error, Result};
use serde_json::json;
use serde_json::value::RawValue;
use std::cell::RefCell;
use std::rc::Rc;

pub struct JsonFileStore {
    path: RelPath,
    cache: RefCell<Option<Stamped<Rc<Registry>>>>,
}

impl JsonFileStore {
    pub const DEFAULT_PATH: &'static str = "models/registry.json";

    pub fn new(path: RelPath) -> JsonFileStore {
        JsonFileStore {
            path,
            cache: RefCell::new(None),
        }
    }

    pub fn path(&self) -> &RelPath {
        &self.path
    }

    fn history(&self) -> RelPath {
        self.path
            .parent()
            .unwrap_or_default()
            .join("registry_history.jsonl")
    }

    fn not_there(&self, e: Error) -> Error {
        match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::registry(
                    self.path.to_string(),
                    "the file does not exist; is `--workspace` pointing at the right directory?",
                )
            }
            other => other,
        }
    }
}

impl Store for JsonFileStore {
    fn name(&self) -> String {
        self.path.to_string()
    }

    fn load(&self, ws: &Workspace) -> Result<Rc<Registry>> {
        let content = ws.content(&self.path).map_err(|e| self.not_there(e))?;
        let stamp = ws.stamp(&content)?;
        if let Some(hit) = self.cache.borrow().as_ref().and_then(|c| c.get(&stamp)) {
            return Ok(hit);
        }
        let bytes = ws.bytes(&content).map_err(|e| self.not_there(e))?;
        let reg = Rc::new(parse_shared(self.path.as_str(), bytes)?);
        *self.cache.borrow_mut() = Some(Stamped::new(stamp, reg.clone()));
        Ok(reg)
    }

    fn files_dir(&self) -> Option<String> {
        Some(self.path.parent().unwrap_or_default().to_string())
    }

    fn apply(&self, writer: &StoreWriter<'_>, change: &Change) -> Result<()> {
        // The history must take the record, or the change is not made at all.
        writer.check_appendable(&self.history())?;
        writer.write_pieces(&self.path, &render_pieces(&change.next))?;
        let ts = crate::effects::journal::now_rfc3339();
        let mut lines = String::new();
        for c in &change.changed {
            let rec = json!({
                "ts": ts, "run_id": writer.run_id(), "op": c.op, "name": c.name,
                "version": c.version, "old": c.old, "new": c.new,
            });
            lines.push_str(&rec.to_string());
            lines.push('\n');
        }
        writer.append(&self.history(), lines.as_bytes())?;
        // The cache keeps what was just written: no re-parse of our own write.
        let stamp = writer.stamp(&self.path)?;
        *self.cache.borrow_mut() = Some(Stamped::new(stamp, Rc::new(change.next.clone())));
        Ok(())
    }
}

/// Parse and validate registry JSON.
pub fn parse(path: &str, bytes: &[u8]) -> Result<Registry> {
    parse_shared(path, Rc::from(bytes))
}

/// [`parse`] of a file's bytes as read: the entries keep ranges of them as their text
/// instead of a copy each (at 10,000 versions, 3 MB and 10,000 allocations fewer).
pub fn parse_shared(path: &str, bytes: Rc<[u8]>) -> Result<Registry> {
    parse_shared_with(path, bytes, true)
}

/// [`parse_shared`], with or without the one-pass scan (`scan`), so that a test can hold
/// the scan to the same result as the way without it.
fn parse_shared_with(path: &str, bytes: Rc<[u8]>, scan: bool) -> Result<Registry> {
    let parse_error = |e: serde_json::Error| Error::Parse {
        path: path.to_string(),
        format: "JSON",
        line: e.line(),
        column: e.column(),
        message: e
            .to_string()
            .split(" at line")
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let first = bytes.iter().position(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|i| bytes[i] != b'[') {
        // Still report a syntax error as such; only valid JSON of the wrong shape gets this.
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(parse_error)?;
        return Err(Error::Parse {
            path: path.to_string(),
            format: "registry JSON",
            line: 1,
            column: first.map(|i| i + 1).unwrap_or(1),
            message: "expected an array of entries at the top level".into(),
        });
    }
    // The top-level array is split by a scan that only follows strings and brackets (a
    // fraction of a full parse), and each entry is then parsed once, which checks it
    // whole; its text stays a range of the file's. Text the scan is not sure of goes to
    // serde_json's full parse (and each entry is copied), so a broken file is reported
    // exactly as before.
    let file: Option<Rc<str>> = std::str::from_utf8(&bytes).is_ok().then(|| {
        // SAFETY: `str` has the layout of `[u8]`, and these bytes were just found UTF-8.
        unsafe { Rc::from_raw(Rc::into_raw(bytes.clone()) as *const str) }
    });
    let entry_error = |i: usize, m: String| {
        Error::registry(
            path,
            format!(
                "entry {} {m}; fix the file and run again (it was left unchanged)",
                i + 1
            ),
        )
    };
    // The common case: one pass splits the array, checks its syntax and finds each entry's
    // fields (see `scan`); a file it is not sure of is read the way below.
    if let Some((file, scanned)) = file
        .as_ref()
        .filter(|_| scan)
        .and_then(|f| Some((f, super::scan::entries(f)?)))
    {
        let entries = scanned
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                Entry::from_scanned(file, e)
                    .map(Rc::new)
                    .map_err(|m| (i, m))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|(i, m)| entry_error(i, m))?;
        let reg = Registry { entries };
        reg.validate(path)?;
        return Ok(reg);
    }
    let split = file.as_deref().and_then(split_entries);
    let fast = split.is_some();
    let read = match (&file, split) {
        (Some(file), Some(ranges)) => ranges
            .into_iter()
            .enumerate()
            .map(|(i, r)| Entry::from_part(file, r).map(Rc::new).map_err(|m| (i, m)))
            .collect::<std::result::Result<Vec<_>, _>>(),
        _ => serde_json::from_slice::<Vec<&RawValue>>(&bytes)
            .map_err(parse_error)?
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                Entry::from_borrowed(raw.get())
                    .map(Rc::new)
                    .map_err(|m| (i, m))
            })
            .collect(),
    };
    let entries = match read {
        Ok(entries) => entries,
        Err((i, m)) => {
            if fast {
                // A syntax error inside an entry is the full parser's to report, with its
                // line and column; any other error is the same either way.
                serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(parse_error)?;
            }
            return Err(entry_error(i, m));
        }
    };
    let reg = Registry { entries };
    reg.validate(path)?;
    Ok(reg)
}

/// The entries of a registry file's top-level array, as ranges of its text, split without parsing
/// them: the scan follows strings (memchr to the next quote or backslash) and brackets.
/// `None` when the text is anything but `[`, objects separated by commas, and `]`, with
/// whitespace between (a broken or unusual file, which the full parser then reads), or when
/// an entry nests so deep that the full parser's limit decides.
fn split_entries(text: &str) -> Option<Vec<std::ops::Range<usize>>> {
    let b = text.as_bytes();
    let skip_ws = |mut i: usize| {
        while b
            .get(i)
            .is_some_and(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
        {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 256);
    i = skip_ws(i + 1);
    if b.get(i) == Some(&b']') {
        return (skip_ws(i + 1) == b.len()).then_some(out);
    }
    loop {
        if b.get(i) != Some(&b'{') {
            return None;
        }
        let start = i;
        let mut depth = 0usize;
        loop {
            match *b.get(i)? {
                b'"' => {
                    i += 1;
                    loop {
                        let at = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
                        if b[at] == b'"' {
                            i = at;
                            break;
                        }
                        i = at + 2;
                    }
                }
                b'{' | b'[' => {
                    depth += 1;
                    // The array and the entry's levels together must stay within
                    // serde_json's limit, as they would in a full parse.
                    if depth >= MAX_ENTRY_NESTING {
                        return None;
                    }
                }
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        // `b[i]` closes the entry; the brackets matched, and the entry's own parse
        // checks they are the right kind.
        out.push(start..i + 1);
        i = skip_ws(i + 1);
        match b.get(i)? {
            b',' => i = skip_ws(i + 1),
            b']' => return (skip_ws(i + 1) == b.len()).then_some(out),
            _ => return None,
        }
    }
}

/// One less than serde_json's recursion limit (128), which a full parse counts from the
/// top-level array.
const MAX_ENTRY_NESTING: usize = 127;

/// The registry file's text: entries a change did not touch keep their exact text.
pub fn render(reg: &Registry) -> Vec<u8> {
    render_pieces(reg).concat()
}

/// [`render`] as the pieces of text it joins, each borrowed from where it is. A run of
/// untouched entries that the file as read already laid out as [`render`] lays them out is
/// one piece of that file: writing a 15 MB registry that changed in two entries is a
/// `writev` of a handful of pieces, not a 15 MB copy into a new buffer first (at 50,000
/// versions, 3,700 fresh pages).
pub fn render_pieces(reg: &Registry) -> Vec<&[u8]> {
    const SEP: &str = ",\n  ";
    enum Piece<'a> {
        Str(&'a str),
        File(&'a Rc<str>, std::ops::Range<usize>),
    }
    let mut pieces: Vec<Piece> = Vec::new();
    pieces.push(Piece::Str("["));
    for (i, e) in reg.entries.iter().enumerate() {
        let sep = if i == 0 { "\n  " } else { SEP };
        match &e.raw {
            Text::Part(file, range) => {
                // Extend the previous piece when the file has exactly this separator between
                // it and this entry.
                if let Some(Piece::File(last, run)) = pieces.last_mut() {
                    if Rc::ptr_eq(last, file) && file.get(run.end..range.start) == Some(SEP) {
                        run.end = range.end;
                        continue;
                    }
                }
                pieces.push(Piece::Str(sep));
                pieces.push(Piece::File(file, range.clone()));
            }
            Text::Own(text) => {
                pieces.push(Piece::Str(sep));
                pieces.push(Piece::Str(text));
            }
        }
    }
    pieces.push(Piece::Str(if reg.entries.is_empty() {
        "]\n"
    } else {
        "\n]\n"
    }));
    pieces
        .into_iter()
        .map(|p| match p {
            Piece::Str(s) => s.as_bytes(),
            Piece::File(file, range) => file[range].as_bytes(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn parse_names_position_and_bad_entries() {
        let e = parse("models/registry.json", b"[{\"name\": \"m\",}]").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("`models/registry.json` is not valid JSON"),
            "{msg}"
        );
        assert!(msg.contains("line 1, column"), "{msg}");
        let e = parse("r.json", br#"[{"name":"m","version":"v1","model_path":"x","is_production":false,"status":"weird"}]"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("entry 1 (`m` `v1`): `status` must be one of"),
            "{e}"
        );
        let e = parse("r.json", br#"{"name": "m"}"#).unwrap_err();
        assert!(
            e.to_string().contains("expected an array of entries"),
            "{e}"
        );
        let e = parse("r.json", br#"[3]"#).unwrap_err();
        assert!(e.to_string().contains("entry 1 is not an object"), "{e}");
    }

    fn big_registry(n: usize, bad: Option<usize>) -> String {
        let entries: Vec<String> = (1..=n)
            .map(|i| {
                let status = if Some(i) == bad { "weird" } else if i == n { "production" } else { "superseded" };
                format!(
                    r#"{{"name": "m", "version": "v{i}", "model_path": "models/m_{i}.json", "is_production": {}, "status": "{status}", "promoted_at": "2026-01-01T00:00:00Z", "metrics": {{"mse": 0.{i}}}}}"#,
                    i == n
                )
            })
            .collect();
        format!("[\n  {}\n]\n", entries.join(",\n  "))
    }

    #[test]
    fn a_big_registry_is_read_in_order_and_names_a_bad_entry() {
        // Entries keep ranges of the file's text: the order, the text written back and the
        // entry a message names must not depend on that.
        let n = 5000;
        let text = big_registry(n, None);
        let reg = parse("r.json", text.as_bytes()).unwrap();
        assert_eq!(reg.entries.len(), n);
        assert!(reg
            .entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == format!("v{}", i + 1)));
        assert_eq!(String::from_utf8(render(&reg)).unwrap(), text);
        for bad in [3, n - 2] {
            let e = parse("r.json", big_registry(n, Some(bad)).as_bytes()).unwrap_err();
            assert!(
                e.to_string().contains(&format!(
                    "entry {bad} (`m` `v{bad}`): `status` must be one of"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn the_split_follows_strings_and_leaves_what_it_is_not_sure_of_to_the_parser() {
        let text = r#" [ {"a": "}],{[\"\\"}, {"b": [{"c": "]"}]} ,{}
]
"#;
        let parts: Vec<&str> = split_entries(text)
            .unwrap()
            .into_iter()
            .map(|r| &text[r])
            .collect();
        let serde: Vec<&RawValue> = serde_json::from_str(text).unwrap();
        assert_eq!(parts, serde.iter().map(|r| r.get()).collect::<Vec<_>>());
        assert_eq!(split_entries(" [ ]\n"), Some(vec![]));
        // Not plain arrays of objects: the full parser reads these and says what is wrong.
        for odd in [
            "[{},]",
            "[{}] x",
            "[1]",
            "{}",
            "[{}",
            "[{\"a\": \"}]",
            "[{}{}]",
            "[{}, ]",
            "",
        ] {
            assert_eq!(split_entries(odd), None, "{odd}");
        }
        let deep = format!("[{{\"a\": {}1{}}}]", "[".repeat(126), "]".repeat(126));
        assert_eq!(split_entries(&deep), None);
        let fine = format!("[{{\"a\": {}1{}}}]", "[".repeat(125), "]".repeat(125));
        assert_eq!(split_entries(&fine).map(|v| v.len()), Some(1));
        // Either way a broken entry is reported with the full parser's line and column.
        let e = parse("r.json", b"[\n  {\"name\": \"m\", \"x\": tru}\n]").unwrap_err();
        assert!(e.to_string().contains("line 2, column"), "{e}");
    }

    #[test]
    fn the_scan_reads_unusual_files_as_the_way_without_it() {
        let entry = |extra: &str| {
            format!(
                r#"{{"name": "m", "version": "v1", "model_path": "a.json", "is_production": true, "status": "production"{extra}}}"#
            )
        };
        let read = |text: &str, scan: bool| match parse_shared_with(
            "r.json",
            Rc::from(text.as_bytes()),
            scan,
        ) {
            Ok(reg) => Ok(reg
                .entries
                .iter()
                .map(|e| {
                    format!(
                        "{:?} {}",
                        (
                            &e.name,
                            &e.version,
                            &e.model_path,
                            e.is_production,
                            e.status,
                            e.promoted_at
                        ),
                        e.raw()
                    )
                })
                .collect::<Vec<_>>()),
            Err(e) => Err(e.to_string()),
        };
        for extra in [
            "",
            r#", "promoted_at": null"#,
            r#", "promoted_at": "2026-01-01T00:00:00+02:00""#,
            r#", "promoted_at": 3"#,
            r#", "x": {"name": [1, 2.5e-3, -0, true, false, null, {}], "y": []}"#,
            r#", "x": 1, "x": 2"#,
            r#", "name": "n""#,
            r#", "status": null"#,
            r#", "promoted_at": "not a time""#,
            r#", "x": "café ✓""#,
            r#", "x": "esc"aped""#,
        ] {
            let text = format!(
                "[\n  {},\n  {}\n]\n",
                entry(extra),
                entry(extra)
                    .replace("v1", "v2")
                    .replace("true", "false")
                    .replace("production\"", "archived\"")
            );
            let scanned = read(&text, true);
            assert_eq!(scanned, read(&text, false), "{text}");
        }
        // A plain file takes the scan (the fallback would read it the same, only slower).
        assert!(super::super::scan::entries(&big_registry(3, None)).is_some());
    }

    #[test]
    fn escaped_strings_are_decoded_and_plain_ones_read_as_they_are() {
        let text = r#"[{"name": "m", "version": "v\u0031", "model_path": "models/a \"b\".json", "is_production": true, "status": "production"}]"#;
        let reg = parse("r.json", text.as_bytes()).unwrap();
        assert_eq!(reg.entries[0].version, "v1");
        assert_eq!(reg.entries[0].model_path, r#"models/a "b".json"#);
        let e = parse("r.json", br#"[{"name": "m", "version": "v/\u002e\u002e", "model_path": "x", "is_production": true, "status": "production"}]"#).unwrap_err();
        assert!(e.to_string().contains("`version` may hold only"), "{e}");
    }

    #[test]
    fn a_write_joins_runs_of_untouched_entries_into_pieces_of_the_file() {
        let n = 1000;
        let text = big_registry(n, None);
        let reg = parse("r.json", text.as_bytes()).unwrap();
        // Laid out as `render` lays it out: the whole array is one piece of the file.
        let pieces = render_pieces(&reg);
        assert_eq!(pieces.len(), 4, "[, first separator, the entries, ]");
        assert_eq!(pieces.concat(), text.as_bytes());
        let (change, _) = super::super::set_production(
            &reg,
            "r.json",
            "m",
            "v500",
            super::super::Status::Archived,
            |_| true,
        )
        .unwrap()
        .unwrap();
        // v1..v499 | v500 (now production) | v501..v999 | v1000 (archived), with
        // separators between and the brackets around.
        let pieces = render_pieces(&change.next);
        assert_eq!(pieces.len(), 10);
        let out = String::from_utf8(pieces.concat()).unwrap();
        let again = parse("r.json", out.as_bytes()).unwrap();
        assert_eq!(again.entries.len(), n);
        assert!(again.entries[499].is_production);
        // Entries the change did not touch are byte for byte the file's.
        for (a, b) in again.entries.iter().zip(&reg.entries) {
            if a.version != "v500" && !b.is_production {
                assert_eq!(a.raw(), b.raw());
            }
        }
        // A file laid out otherwise is written piece by piece, with the same text as before.
        let odd = text.replace(",\n  {", " ,{");
        let reg = parse("r.json", odd.as_bytes()).unwrap();
        let pieces = render_pieces(&reg);
        assert_eq!(pieces.len(), 2 * n + 2);
        assert_eq!(pieces.concat(), render(&reg));
    }

    #[test]
    fn untouched_entries_keep_their_exact_text() {
        let text = "[\n  {\"name\": \"m\", \"version\": \"v1\", \"model_path\": \"a\", \"is_production\": false,\n    \"status\": \"superseded\", \"extra\": [1, 2], \"promoted_at\": null},\n  {\"version\": \"v2\", \"name\": \"m\", \"model_path\": \"b\", \"is_production\": true, \"status\": \"production\"}\n]\n";
        let reg = parse("r.json", text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(render(&reg)).unwrap(), text);
        let (change, _) = super::super::set_production(
            &reg,
            "r.json",
            "m",
            "v1",
            super::super::Status::Superseded,
            |_| true,
        )
        .unwrap()
        .unwrap();
        let out = String::from_utf8(render(&change.next)).unwrap();
        let reparsed: Value = serde_json::from_str(&out).unwrap();
        let keys: Vec<&String> = reparsed[1].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["version", "name", "model_path", "is_production", "status"]
        );
        assert_eq!(reparsed[1]["status"], "superseded");
        assert_eq!(reparsed[0]["status"], "production");
        assert_eq!(reparsed[0]["extra"], serde_json::json!([1, 2]));
    }
}

#[cfg(test)]
mod fuzz {
    //! Hostile registries: whatever the bytes, the reader answers with an entry or an
    //! error, never a panic.
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = r#"[
  {"name": "sl_forecaster", "version": "v1", "model_path": "models/a.json", "is_production": false, "status": "superseded", "promoted_at": "2026-01-01T00:00:00Z", "metrics": {"mse": 0.1}},
  {"name": "sl_forecaster", "version": "v2", "model_path": "models/b.json", "is_production": true, "status": "production", "promoted_at": null, "metrics": {}}
]"#;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse("r.json", &bytes);
        }

        #[test]
        fn mutated_registries_never_panic(at in 0usize..VALID.len(), cut in 0usize..40, insert in "[\\[\\]{}\",:0-9a-z*/.\\\\ -]{0,12}") {
            let mut text = VALID.as_bytes().to_vec();
            let end = (at + cut).min(text.len());
            text.splice(at..end, insert.bytes());
            if let Ok(reg) = parse("r.json", &text) {
                // What parses is consistent and can be written back and read again.
                let again = parse("r.json", &render(&reg)).expect("a rendered registry parses");
                prop_assert_eq!(again.entries.len(), reg.entries.len());
                for e in &reg.entries {
                    prop_assert!(crate::registry::is_plain_name(&e.version));
                }
            }
        }

        /// The one-pass scan reads every file, valid or broken, exactly as the way without
        /// it: the same entries (fields and text) or the same error message.
        #[test]
        fn the_scan_agrees_with_the_way_without_it(at in 0usize..VALID.len(), cut in 0usize..40, insert in "[\\[\\]{}\",:0-9a-z*/.\\\\ \n\t+eE-]{0,12}", times in 1usize..4) {
            let mut text = VALID.to_string();
            let (at, end) = (at.min(text.len()), (at + cut).min(text.len()));
            if !text.is_char_boundary(at) || !text.is_char_boundary(end) {
                return Ok(());
            }
            text.replace_range(at..end, &insert.repeat(times));
            let read = |scan: bool| match parse_shared_with("r.json", Rc::from(text.as_bytes()), scan) {
                Ok(reg) => Ok(reg
                    .entries
                    .iter()
                    .map(|e| format!("{}|{}|{}|{}|{:?}|{:?}|{}", e.name, e.version, e.model_path, e.is_production, e.status, e.promoted_at, e.raw()))
                    .collect::<Vec<_>>()),
                Err(e) => Err(e.to_string()),
            };
            prop_assert_eq!(read(true), read(false), "{}", text);
        }

        #[test]
        fn the_split_agrees_with_the_full_parser(at in 0usize..VALID.len(), cut in 0usize..40, insert in "[\\[\\]{}\",:0-9a-z*/.\\\\ \n-]{0,12}") {
            let mut text = VALID.to_string();
            let (at, end) = (at.min(text.len()), (at + cut).min(text.len()));
            if !text.is_char_boundary(at) || !text.is_char_boundary(end) {
                return Ok(());
            }
            text.replace_range(at..end, &insert);
            let split = split_entries(&text)
                .map(|ranges| ranges.into_iter().map(|r| &text[r]).collect::<Vec<_>>());
            match serde_json::from_str::<Vec<&RawValue>>(&text) {
                // A file the parser reads as an array of objects is split the same way.
                Ok(raws) if raws.iter().all(|r| r.get().starts_with('{')) => {
                    prop_assert_eq!(split, Some(raws.iter().map(|r| r.get()).collect::<Vec<_>>()));
                }
                // Anything else, if split at all, fails as an entry and goes to the parser.
                _ => {
                    if split.is_some() {
                        prop_assert!(parse("r.json", text.as_bytes()).is_err());
                    }
                }
            }
        }

        #[test]
        fn deep_nesting_is_an_error_not_a_crash(depth in 100usize..2000) {
            let deep = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            let text = format!(r#"[{{"name":"m","version":"v1","model_path":"x","is_production":true,"status":"production","metrics":{deep}}}]"#);
            let _ = parse("r.json", text.as_bytes());
        }
    }
}
