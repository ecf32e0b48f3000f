//! `runbook list`: the runbooks in a directory with their headers.

use crate::error::{Error, Result};
use crate::header::{Header, ParamValue};
use std::path::{Path, PathBuf};

pub struct Listed {
    pub path: PathBuf,
    pub header: Result<Header>,
}

/// The runbooks (`*.rhai`, not under `lib/`) in `dir`, sorted by path.
pub fn list(dir: &Path) -> Result<Vec<Listed>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Usage(format!("cannot list runbooks in `{}`: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rhai") && p.is_file())
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| {
            let header = std::fs::read_to_string(&p)
                .map_err(|e| Error::io(p.display().to_string(), "read", e))
                .and_then(|t| Header::parse(&p.display().to_string(), &t));
            Listed { path: p, header }
        })
        .collect())
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
