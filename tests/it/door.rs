//! One door: nothing outside `src/effects/` can write to the disk, start a process or send
//! a signal, and no primitive decides "real or dry" by itself.
//!
//! Much of this the compiler enforces (the journal's `action`, the git commands that change
//! the repository and the raw paths are private to `effects/`); this test catches the rest:
//! a new `std::fs::write`, `Command::new` or `libc::kill` in a primitive fails here. It reads
//! the sources as text with string literals and comments taken out (primitive docs quote
//! Rhai such as `fs::write(..)`), and stops at a file's `#[cfg(test)]` module. The few
//! places allowed to do such things outside a run are listed here and in ARCHITECTURE.md.

use crate::support::repo;

/// Files outside `src/effects/` allowed to write, and why (ARCHITECTURE.md says the same).
const ALLOWED: &[(&str, &str)] = &[
    // `runbook demo` creates a new workspace (files and `git init`), outside any run.
    ("src/demo.rs", "demo"),
];

/// What no code outside the door may call.
const FORBIDDEN: &[&str] = &[
    "fs::write(",
    "fs::rename(",
    "fs::remove_file(",
    "fs::remove_dir(",
    "fs::remove_dir_all(",
    "fs::create_dir(",
    "fs::create_dir_all(",
    "fs::copy(",
    "fs::hard_link(",
    "fs::set_permissions(",
    "File::create(",
    "OpenOptions",
    "symlink(",
    "Command::new(",
    "process::Command",
    "libc::kill",
    "libc::syncfs",
    "libc::sync_file_range",
    "libc::unlink",
    "libc::rename",
    "rustix::fs::",
    ".set_len(",
    ".set_modified(",
];

/// The code of a Rust file without comments, string and char literals, and without its
/// `#[cfg(test)]` part.
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'r' if matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                j += 1;
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') || (b.get(i + 1) == Some(&b'\\')) => {
                // A char literal ('x', '\n', '\''); a lifetime ('a) has no closing quote.
                i += 1;
                if b.get(i) == Some(&b'\\') {
                    i += 1;
                }
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

fn sources() -> Vec<(String, String)> {
    let root = repo();
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root.join("src"))
        .into_iter()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "rs") {
            let rel = e.path().strip_prefix(&root).unwrap().display().to_string();
            out.push((rel, std::fs::read_to_string(e.path()).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn nothing_outside_the_effect_layer_writes_spawns_or_signals() {
    let mut found = Vec::new();
    let mut checked = 0;
    for (path, text) in sources() {
        if path.starts_with("src/effects/") || ALLOWED.iter().any(|(p, _)| *p == path) {
            continue;
        }
        checked += 1;
        let code = code_only(&text);
        for (n, line) in code.lines().enumerate() {
            for pattern in FORBIDDEN {
                if line.contains(pattern) {
                    found.push(format!(
                        "{path}:{}: `{pattern}` in `{}`",
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(checked > 15, "only {checked} files were checked");
    assert!(
        found.is_empty(),
        "effects outside src/effects/ (perform them through `Workspace::perform`):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_primitive_decides_real_or_dry_by_itself() {
    let mut found = Vec::new();
    for (path, text) in sources() {
        if !path.starts_with("src/primitives/") {
            continue;
        }
        for (n, line) in code_only(&text).lines().enumerate() {
            if line.contains("dry_run") {
                found.push(format!("{path}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "primitives must not branch on the mode:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_sees_calls_and_skips_strings_and_comments() {
    let text = "fn a() { std::fs::write(p, b); }\n// fs::rename(a, b)\nlet d = \"fs::remove_file(x)\";\nlet r = r#\"Command::new(\"sh\")\"#;\nlet c = '\"'; Command::new(\"git\");\n#[cfg(test)]\nmod tests { fs::copy(a, b); }";
    let code = code_only(text);
    assert!(code.contains("fs::write("), "{code}");
    assert!(code.contains("Command::new("), "{code}");
    assert!(!code.contains("fs::rename"), "{code}");
    assert!(!code.contains("remove_file"), "{code}");
    assert!(!code.contains("fs::copy"), "{code}");
    assert_eq!(code.matches("Command::new(").count(), 1, "{code}");
}
