//! `runbook list`: the runbooks in a directory with their headers, then the shipped ones
//! (compiled into the binary) that no file there overrides, each marked with where it
//! comes from.

use crate::error::{Error, Result};
use crate::header::{Header, ParamValue};
use std::path::{Path, PathBuf};

pub struct Listed {
    pub path: PathBuf,
    /// Where it comes from: `in DIR`, or `shipped; runbook eject NAME to edit a copy`.
    pub origin: String,
    pub header: Result<Header>,
}

/// The runbooks (`*.rhai`, not under `lib/`) in `dir`, sorted by path, then the shipped
/// runbooks whose file name is not among them. A missing `dir` lists the shipped ones only.
pub fn list(dir: &Path) -> Result<Vec<Listed>> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "rhai") && p.is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(Error::Usage(format!(
                "cannot list runbooks in `{}`: {e}",
                dir.display()
            )))
        }
    };
    paths.sort();
    let mut out: Vec<Listed> = paths
        .into_iter()
        .map(|p| {
            let header = std::fs::read_to_string(&p)
                .map_err(|e| Error::io(p.display().to_string(), "read", e))
                .and_then(|t| Header::parse(&p.display().to_string(), &t));
            Listed {
                origin: format!("in `{}`", dir.display()),
                path: p,
                header,
            }
        })
        .collect();
    for (name, text) in super::source::shipped_runbooks() {
        if out
            .iter()
            .any(|l| l.path.file_name().is_some_and(|f| f == name))
        {
            continue;
        }
        let path = PathBuf::from(format!("{}{name}", super::source::SHIPPED_PREFIX));
        out.push(Listed {
            origin: format!(
                "shipped; `runbook eject {}` to edit a copy",
                name.trim_end_matches(".rhai")
            ),
            header: Header::parse(&path.display().to_string(), text),
            path,
        });
    }
    Ok(out)
}

/// Render a parameter's default for `list`.
pub fn describe_default(v: &Option<ParamValue>, optional: bool) -> String {
    match v {
        Some(ParamValue::List(items)) => items.join(","),
        Some(other) => other.to_json().to_string().trim_matches('"').to_string(),
        None if optional => "(unset)".into(),
        None => "(required)".into(),
    }
}
