//! Where the registry is kept: the [`Store`] trait, and the workspace configuration that
//! chooses one.
//!
//! A store loads the whole [`Registry`] and applies a [`Change`]; the rules (what
//! `set_production` does, what "previous" means) live in the domain module and are the same
//! for every store. A store writes only through the [`StoreWriter`] the effect door hands it
//! while it performs a registry effect, so a dry run simulates its writes and every change is
//! journaled, whatever the store.
//!
//! The store is chosen by configuration, not code: `runbook.yaml` at the workspace root,
//!
//! ```yaml
//! registry:
//!   store: json                  # the default
//!   path: models/registry.json   # the JSON file (the default)
//! ```
//!
//! or the MLflow Model Registry (`mlflow_store.rs`):
//!
//! ```yaml
//! registry:
//!   store: mlflow
//!   tracking_uri: http://127.0.0.1:5000   # required
//!   alias: champion                       # the production alias (default `champion`)
//!   token_env: MLFLOW_TOKEN               # optional: a bearer token from this variable
//!   timeout: 10s                          # per HTTP request (default 10s)
//!   lock_ttl: 15m                         # a dead run's lock expires after this (default 15m)
//! ```
//!
//! A workspace without the file uses the defaults. Secrets are never in the file: only the
//! name of the variable that holds the token.

use super::{Change, JsonFileStore, MlflowConfig, MlflowStore, Registry};
use crate::effects::{StoreWriter, Workspace};
use crate::error::{Error, Result};
use serde_json::Value;
use std::rc::Rc;

/// The workspace configuration file.
pub const CONFIG_FILE: &str = "runbook.yaml";

pub trait Store {
    /// How the store is named in messages: the file, or the server.
    fn name(&self) -> String;
    /// The whole registry as the run sees it (a dry run's simulated changes included).
    fn load(&self, ws: &Workspace) -> Result<Rc<Registry>>;
    /// Write `change`. Called only by the effect door, which journals it.
    fn apply(&self, writer: &StoreWriter<'_>, change: &Change) -> Result<()>;
    /// Problems only the store can see (an MLflow alias on a missing version), added to
    /// what `registry::check` finds in the entries. Valid after a `load`.
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
    /// The workspace directory that most likely holds the model files, which
    /// `registry::check` will list: a file store's own directory (`models/` beside
    /// `models/registry.json`). `None` where nothing suggests one.
    fn files_dir(&self) -> Option<String> {
        None
    }
}

/// The `registry` section of `runbook.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    Json { path: String },
    Mlflow(MlflowConfig),
}

const JSON_KEYS: &[&str] = &["store", "path"];
const MLFLOW_KEYS: &[&str] = &[
    "store",
    "tracking_uri",
    "alias",
    "token_env",
    "timeout",
    "lock_ttl",
];

impl StoreConfig {
    /// Read the configuration from the workspace (defaults when the file is absent).
    pub fn read(ws: &Workspace) -> Result<StoreConfig> {
        let default = StoreConfig::Json {
            path: JsonFileStore::DEFAULT_PATH.into(),
        };
        let rel = ws.resolve(CONFIG_FILE)?;
        if !ws.exists(&rel) {
            return Ok(default);
        }
        let doc = crate::document::parse_yaml(&ws.read(&rel)?, CONFIG_FILE)?;
        let bad = |msg: String| Error::invalid(format!("`{CONFIG_FILE}`"), msg);
        let Some(top) = doc.as_object() else {
            if doc.is_null() {
                return Ok(default);
            }
            return Err(bad("must be a mapping with a `registry` section".into()));
        };
        for key in top.keys() {
            // `commands` and `notify` belong to the effect door; they are read there.
            if !matches!(key.as_str(), "registry" | "commands" | "notify") {
                return Err(bad(format!(
                    "unknown section `{key}`; the known ones are `registry`, `commands` and `notify`"
                )));
            }
        }
        let Some(section) = top.get("registry") else {
            return Ok(default);
        };
        let Some(section) = section.as_object() else {
            return Err(bad(
                "`registry` must be a mapping such as `{store: json, path: models/registry.json}`"
                    .into(),
            ));
        };
        let store = match section.get("store") {
            None => "json",
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(bad(format!("`registry.store` must be a name, got {other}")))
            }
        };
        let known = match store {
            "json" => JSON_KEYS,
            "mlflow" => MLFLOW_KEYS,
            other => {
                return Err(bad(format!(
                    "unknown registry store `{other}`; the known ones are `json` and `mlflow`"
                )))
            }
        };
        for key in section.keys() {
            if !known.contains(&key.as_str()) {
                return Err(bad(format!(
                    "unknown key `registry.{key}` for the `{store}` store; the known ones are {}",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let text = |key: &str| -> Result<Option<String>> {
            match section.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(p)) if !p.trim().is_empty() => Ok(Some(p.trim().to_string())),
                Some(other) => Err(bad(format!(
                    "`registry.{key}` must be a non-empty string, got {other}"
                ))),
            }
        };
        let duration = |key: &str, default: std::time::Duration| -> Result<std::time::Duration> {
            match section.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::String(t)) => crate::runner::parse_duration(t)
                    .map_err(|m| bad(format!("`registry.{key}`: {m}"))),
                Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f > 0.0) => Ok(
                    std::time::Duration::from_secs_f64(n.as_f64().unwrap_or(1.0)),
                ),
                Some(other) => Err(bad(format!(
                    "`registry.{key}` must be a duration such as `10s`, got {other}"
                ))),
            }
        };
        if store == "json" {
            return Ok(StoreConfig::Json {
                path: text("path")?.unwrap_or_else(|| JsonFileStore::DEFAULT_PATH.to_string()),
            });
        }
        let tracking_uri = text("tracking_uri")?.ok_or_else(|| {
            bad(
                "the `mlflow` store needs `registry.tracking_uri`, such as `http://127.0.0.1:5000`"
                    .into(),
            )
        })?;
        let alias = text("alias")?.unwrap_or_else(|| MlflowConfig::DEFAULT_ALIAS.to_string());
        if !super::is_plain_name(&alias) {
            return Err(bad(format!(
                "`registry.alias` `{alias}` may hold only letters, digits, `.`, `_`, `-` and `+`"
            )));
        }
        Ok(StoreConfig::Mlflow(MlflowConfig {
            tracking_uri,
            alias,
            token_env: text("token_env")?,
            timeout: duration("timeout", MlflowConfig::DEFAULT_TIMEOUT)?,
            lock_ttl: duration("lock_ttl", MlflowConfig::DEFAULT_LOCK_TTL)?,
        }))
    }
}

/// The store the workspace's configuration chooses.
pub fn open(ws: &Workspace) -> Result<Box<dyn Store>> {
    match StoreConfig::read(ws)? {
        StoreConfig::Json { path } => Ok(Box::new(JsonFileStore::new(ws.resolve_writable(&path)?))),
        StoreConfig::Mlflow(config) => Ok(Box::new(MlflowStore::new(config)?)),
    }
}

/// `runbook unlock`: remove the registry server's lock that a run which died left behind.
/// Like `runbook trash purge`, it changes something outside any run, on purpose; it reads
/// the workspace only for its `runbook.yaml`. Returns what it did, for the console.
pub fn unlock(workspace: &std::path::Path) -> Result<String> {
    let ws = Workspace::open(workspace, "unlock", true, crate::effects::Console::Quiet)?;
    match StoreConfig::read(&ws)? {
        StoreConfig::Json { .. } => Ok(format!(
            "the `json` store has no lock to remove: a run's lock on `.runbook/lock` goes away with its process (`{CONFIG_FILE}` chooses the store)"
        )),
        StoreConfig::Mlflow(config) => MlflowStore::new(config)?.unlock(),
    }
}
