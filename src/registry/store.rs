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
//!   store: json                  # the only store so far (the default)
//!   path: models/registry.json   # the JSON file (the default)
//! ```
//!
//! A workspace without the file uses the defaults.

use super::{Change, JsonFileStore, Registry};
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
}

/// The `registry` section of `runbook.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    Json { path: String },
}

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
            if key != "registry" {
                return Err(bad(format!(
                    "unknown section `{key}`; the known one is `registry`"
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
        for key in section.keys() {
            if !matches!(key.as_str(), "store" | "path") {
                return Err(bad(format!(
                    "unknown key `registry.{key}`; the known ones are `store` and `path`"
                )));
            }
        }
        let store = match section.get("store") {
            None => "json",
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(bad(format!("`registry.store` must be a name, got {other}")))
            }
        };
        match store {
            "json" => {
                let path = match section.get("path") {
                    None => JsonFileStore::DEFAULT_PATH.to_string(),
                    Some(Value::String(p)) => p.clone(),
                    Some(other) => {
                        return Err(bad(format!("`registry.path` must be a path, got {other}")))
                    }
                };
                Ok(StoreConfig::Json { path })
            }
            other => Err(bad(format!(
                "unknown registry store `{other}`; the known one is `json`"
            ))),
        }
    }
}

/// The store the workspace's configuration chooses.
pub fn open(ws: &Workspace) -> Result<Box<dyn Store>> {
    match StoreConfig::read(ws)? {
        StoreConfig::Json { path } => Ok(Box::new(JsonFileStore::new(ws.resolve_writable(&path)?))),
    }
}
