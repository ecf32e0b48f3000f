//! The MLflow Model Registry as a store: the registry kept in an MLflow tracking server that
//! every host shares, reached over its REST API (`/api/2.0/mlflow/`) with blocking `ureq`.
//!
//! MLflow has neither stages (deprecated since 2.9) nor a history of alias moves, nor any
//! compare-and-set, so this store maps the domain onto what MLflow does have:
//!
//! - production is the version an alias (`champion` by default) points at;
//! - a version's `status` and `promoted_at` are version tags `runbook.status` and
//!   `runbook.promoted_at`, so "previous" (the superseded version promoted last) is read from
//!   the server by every host alike; the alias wins over a stale status tag;
//! - every change appends one record per changed version to the registered model's tags
//!   `runbook.history.NNNNNN` (run id, host, user, pid, time, old and new state): the history
//!   lives in the server, not in a file of one workspace;
//! - archive is a tag, remove deletes the version (its last state stays in the history);
//! - a run that may change the registry holds a lock in the server: the registered model
//!   `runbook.lock`, made with `registered-models/create` (MLflow's one atomic
//!   create-if-absent), whose description names the holder and an expiry; `runbook unlock`
//!   deletes it;
//! - before a change the store reads the model again and refuses when somebody else moved it
//!   since the run read it, and after the change it reads it back and checks every write.
//!
//! Reads go straight to the server, once per run: the store then keeps its view (what it
//! wrote in a real run, what it would have written in a dry run, which sends nothing because
//! every change goes through [`StoreWriter::remote`]).
//!
//! A version's `model_path` is the workspace path where each host keeps its file: the version
//! tag `runbook.model_path` when set, else its `source` when that is a path (or `file://` URI)
//! inside the workspace, else for an `mlflow-artifacts:` source the artifact fetched through
//! the server into `.runbook/tmp/mlflow/<name>/<version>/` (once per version, in dry runs
//! too, through the effect layer), else the `source` itself (which then does not exist in
//! the workspace, so `registry::check` reports it and `set_production` refuses it).

use super::{is_plain_name, Change, Entry, Registry, Status, Store};
use crate::effects::{StoreWriter, Workspace};
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The registered model that is the lock. Its name is not a plain model name (it has a
/// `.` where scripts never look), and the store leaves it out of the registry.
pub const LOCK_MODEL: &str = "runbook.lock";
const TAG_STATUS: &str = "runbook.status";
const TAG_PROMOTED: &str = "runbook.promoted_at";
const TAG_MODEL_PATH: &str = "runbook.model_path";
const TAG_HISTORY: &str = "runbook.history.";
const TAG_METRIC: &str = "metric.";

/// The `registry:` section of `runbook.yaml` for `store: mlflow`.
#[derive(Debug, Clone, PartialEq)]
pub struct MlflowConfig {
    /// `http://host:port` of the tracking server.
    pub tracking_uri: String,
    /// The alias that marks the production version.
    pub alias: String,
    /// The environment variable holding a bearer token, if the server wants one.
    pub token_env: Option<String>,
    /// The limit of one HTTP request, connection included.
    pub timeout: Duration,
    /// How long a lock holds when its run dies without releasing it.
    pub lock_ttl: Duration,
}

impl MlflowConfig {
    pub const DEFAULT_ALIAS: &'static str = "champion";
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(15 * 60);
}

/// A failed request: what the server said (status and MLflow's `error_code`), or an error
/// that is already a message.
enum Failure {
    Api {
        status: u16,
        code: String,
        message: String,
    },
    Other(Error),
}

impl Failure {
    fn into_error(self, uri: &str) -> Error {
        match self {
            Failure::Api {
                status,
                code,
                message,
            } => Error::Server {
                uri: uri.to_string(),
                message: format!("answered {status} {code}: {message}"),
            },
            Failure::Other(e) => e,
        }
    }

    fn is(&self, wanted: &str) -> bool {
        matches!(self, Failure::Api { code, .. } if code == wanted)
    }
}

/// The HTTP side: one agent (keep-alive), the token, a request counter.
struct Client {
    uri: String,
    agent: ureq::Agent,
    token: Option<String>,
    timeout: Duration,
    calls: Cell<u64>,
    /// `RUNBOOK_HTTP_TRACE=1` prints every request to stderr (the benchmark counts them).
    trace: bool,
}

impl Client {
    fn new(config: &MlflowConfig) -> Result<Client> {
        let uri = config.tracking_uri.trim_end_matches('/').to_string();
        let bad = |m: String| Error::invalid(format!("`{}`", super::CONFIG_FILE), m);
        if uri.starts_with("https://") && !cfg!(feature = "tls") {
            return Err(bad(format!(
                "`registry.tracking_uri` `{uri}` needs TLS, which this build of runbook leaves out; build it with `cargo build --release --features tls`"
            )));
        }
        if !(uri.starts_with("http://") || uri.starts_with("https://")) {
            return Err(bad(format!(
                "`registry.tracking_uri` must be an `http://` or `https://` URL such as `http://127.0.0.1:5000`, got `{uri}`"
            )));
        }
        let token = match &config.token_env {
            None => None,
            Some(var) => Some(std::env::var(var).map_err(|_| {
                bad(format!(
                    "`registry.token_env` names the environment variable `{var}`, which is not set; export it (runbook never stores the token) or remove `token_env`"
                ))
            })?),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(Client {
            uri,
            agent,
            token,
            timeout: config.timeout,
            calls: Cell::new(0),
            trace: std::env::var_os("RUNBOOK_HTTP_TRACE").is_some_and(|v| v == "1"),
        })
    }

    fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> std::result::Result<Value, Failure> {
        self.request("GET", endpoint, query, None)
    }

    fn post(&self, endpoint: &str, body: Value) -> std::result::Result<Value, Failure> {
        self.request("POST", endpoint, &[], Some(body))
    }

    fn delete(&self, endpoint: &str, body: Value) -> std::result::Result<Value, Failure> {
        self.request("DELETE", endpoint, &[], Some(body))
    }

    fn request(
        &self,
        method: &str,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> std::result::Result<Value, Failure> {
        let (status, html, bytes) = self.raw(method, &format!("mlflow/{endpoint}"), query, body)?;
        self.decode(endpoint, status, html, &String::from_utf8_lossy(&bytes))
    }

    /// A file the server's artifact proxy serves (`mlflow-artifacts:` sources).
    fn artifact(&self, path: &str) -> std::result::Result<Vec<u8>, Failure> {
        let endpoint = format!("mlflow-artifacts/artifacts/{path}");
        let (status, html, bytes) = self.raw("GET", &endpoint, &[], None)?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        self.decode(&endpoint, status, html, &String::from_utf8_lossy(&bytes))
            .map(|_| Vec::new())
    }

    /// One request to `/api/2.0/<endpoint>`: status, whether the body is HTML, the body.
    fn raw(
        &self,
        method: &str,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> std::result::Result<(u16, bool, Vec<u8>), Failure> {
        let url = format!("{}/api/2.0/{endpoint}", self.uri);
        let started = Instant::now();
        self.calls.set(self.calls.get() + 1);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let sent = match (method, body) {
            ("GET", _) => {
                let mut req = self.agent.get(&url);
                for (k, v) in query {
                    req = req.query(*k, *v);
                }
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            (m, body) => {
                let mut req = if m == "DELETE" {
                    self.agent.delete(&url).force_send_body()
                } else {
                    self.agent.post(&url)
                };
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.header("Content-Type", "application/json")
                    .send(body.unwrap_or(Value::Null).to_string())
            }
        };
        let result = sent
            .map_err(|e| Failure::Other(self.transport_error(method, endpoint, e)))
            .and_then(|resp| {
                let status = resp.status().as_u16();
                let html = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("html"));
                // Model artifacts can be large; MLflow's own answers are small.
                let bytes = resp
                    .into_body()
                    .with_config()
                    .limit(4 << 30)
                    .read_to_vec()
                    .map_err(|e| Failure::Other(self.transport_error(method, endpoint, e)))?;
                Ok((status, html, bytes))
            });
        if self.trace {
            let outcome = match &result {
                Ok((status, _, _)) => status.to_string(),
                Err(_) => "failed".to_string(),
            };
            eprintln!(
                "http: {method} {endpoint} {outcome} {:.1} ms",
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        result
    }

    fn transport_error(&self, method: &str, endpoint: &str, e: ureq::Error) -> Error {
        let endpoint = endpoint.strip_prefix("mlflow/").unwrap_or(endpoint);
        let what = format!("`{method} {endpoint}`");
        let message = match &e {
            ureq::Error::Timeout(_) => format!(
                "did not answer {what} within {} s (`registry.timeout` in `runbook.yaml`); is the server stopped or overloaded? nothing more was sent",
                self.timeout.as_secs_f64()
            ),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => format!(
                "did not answer {what} within {} s (`registry.timeout` in `runbook.yaml`); is the server stopped or overloaded? nothing more was sent",
                self.timeout.as_secs_f64()
            ),
            ureq::Error::Io(io) => format!(
                "cannot be reached ({io}); is the MLflow server running, and is `registry.tracking_uri` in `runbook.yaml` right?"
            ),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => format!(
                "cannot be reached ({e}); is the MLflow server running, and is `registry.tracking_uri` in `runbook.yaml` right?"
            ),
            other => format!("{what} failed: {other}"),
        };
        Error::Server {
            uri: self.uri.clone(),
            message,
        }
    }

    fn decode(
        &self,
        endpoint: &str,
        status: u16,
        html: bool,
        text: &str,
    ) -> std::result::Result<Value, Failure> {
        let parsed: Option<Value> = serde_json::from_str(text).ok();
        if (200..300).contains(&status) {
            return parsed.ok_or_else(|| {
                Failure::Other(Error::Server {
                    uri: self.uri.clone(),
                    message: format!(
                        "answered `{endpoint}` with something that is not JSON ({}); is `registry.tracking_uri` an MLflow server?",
                        snippet(text)
                    ),
                })
            });
        }
        match parsed {
            Some(v) if v.get("error_code").is_some() => Err(Failure::Api {
                status,
                code: v["error_code"].as_str().unwrap_or("?").to_string(),
                message: v["message"].as_str().unwrap_or("").to_string(),
            }),
            _ => {
                let looks_html = html || text.trim_start().starts_with('<');
                let body = if looks_html {
                    format!(
                        "an HTML page ({}), not the MLflow API",
                        html_title(text).unwrap_or_else(|| snippet(text))
                    )
                } else {
                    snippet(text)
                };
                let hint = if status == 401 || status == 403 {
                    "; does the server need a token (`registry.token_env`)?"
                } else if status >= 500 {
                    "; the server failed, see its log"
                } else {
                    "; is `registry.tracking_uri` the MLflow server itself, not a proxy or a login page?"
                };
                Err(Failure::Other(Error::Server {
                    uri: self.uri.clone(),
                    message: format!("answered `{endpoint}` with {status} and {body}{hint}"),
                }))
            }
        }
    }
}

fn snippet(text: &str) -> String {
    let t: String = text.trim().chars().take(80).collect();
    if t.is_empty() {
        "an empty body".into()
    } else {
        format!("`{}`", t.replace('\n', " "))
    }
}

fn html_title(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title>")? + 7;
    let end = lower[start..].find("</title>")? + start;
    Some(format!("title `{}`", text[start..end].trim()))
}

/// One model version as the server has it.
#[derive(Clone, Debug, PartialEq)]
struct VersionState {
    source: String,
    run_id: String,
    mlflow_status: String,
    created_ms: i64,
    tags: BTreeMap<String, String>,
}

/// The part of a model this store's writes decide: the alias, and each version's
/// `runbook.` tags.
type Decided<'a> = (Option<String>, Vec<(u64, Vec<(&'a String, &'a String)>)>);

/// One registered model as the server has it.
#[derive(Clone, Debug, Default, PartialEq)]
struct ModelState {
    alias: Option<String>,
    tags: BTreeMap<String, String>,
    /// Keyed by version number, so versions sort as MLflow counts them.
    versions: BTreeMap<u64, VersionState>,
}

impl ModelState {
    /// What this store's writes decide: the alias and every version's `runbook.` tags.
    fn decided(&self) -> Decided<'_> {
        let versions = self
            .versions
            .iter()
            .map(|(n, v)| {
                let tags = v
                    .tags
                    .iter()
                    .filter(|(k, _)| k.starts_with("runbook."))
                    .collect();
                (*n, tags)
            })
            .collect();
        (self.alias.clone(), versions)
    }

    fn next_history_seq(&self) -> u64 {
        self.tags
            .keys()
            .filter_map(|k| k.strip_prefix(TAG_HISTORY)?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1
    }
}

fn tags_of(v: &Value) -> BTreeMap<String, String> {
    v["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|t| Some((t["key"].as_str()?.into(), t["value"].as_str()?.into())))
                .collect()
        })
        .unwrap_or_default()
}

fn version_of(v: &Value) -> Option<(u64, VersionState)> {
    let n = v["version"].as_str()?.parse().ok()?;
    Some((
        n,
        VersionState {
            source: v["source"].as_str().unwrap_or_default().into(),
            run_id: v["run_id"].as_str().unwrap_or_default().into(),
            mlflow_status: v["status"].as_str().unwrap_or("READY").into(),
            created_ms: v["creation_timestamp"].as_i64().unwrap_or(0),
            tags: tags_of(v),
        },
    ))
}

/// A single write to the server, in the order the store sends them.
#[derive(Debug, Clone)]
enum Op {
    SetTag {
        version: String,
        key: &'static str,
        value: String,
    },
    SetAlias {
        version: String,
    },
    DeleteVersion {
        version: String,
    },
}

impl Op {
    fn describe(&self, alias: &str) -> String {
        match self {
            Op::SetTag {
                version,
                key,
                value,
            } => format!("tag `{key}` = `{value}` on version `{version}`"),
            Op::SetAlias { version } => format!("alias `{alias}` to version `{version}`"),
            Op::DeleteVersion { version } => format!("delete version `{version}`"),
        }
    }

    /// What the op does to the model, for the read-back check.
    fn simulate(&self, state: &mut ModelState) {
        match self {
            Op::SetTag {
                version,
                key,
                value,
            } => {
                if let Some(v) = version
                    .parse()
                    .ok()
                    .and_then(|n: u64| state.versions.get_mut(&n))
                {
                    v.tags.insert(key.to_string(), value.clone());
                }
            }
            Op::SetAlias { version } => state.alias = Some(version.clone()),
            Op::DeleteVersion { version } => {
                if let Ok(n) = version.parse::<u64>() {
                    state.versions.remove(&n);
                }
                if state.alias.as_deref() == Some(version) {
                    state.alias = None;
                }
            }
        }
    }
}

/// The lock this run holds in the server.
struct Held {
    run_id: String,
}

pub struct MlflowStore {
    config: MlflowConfig,
    client: Client,
    /// What the server held when this run read it, per model: checked before each write.
    server: RefCell<Option<BTreeMap<String, ModelState>>>,
    /// The registry as this run sees it.
    view: RefCell<Option<Rc<Registry>>>,
    /// Problems only the server shows (an alias on a missing version), for `registry::check`.
    problems: RefCell<Vec<String>>,
    lock: RefCell<Option<Held>>,
}

impl MlflowStore {
    pub fn new(config: MlflowConfig) -> Result<MlflowStore> {
        let client = Client::new(&config)?;
        Ok(MlflowStore {
            config,
            client,
            server: RefCell::new(None),
            view: RefCell::new(None),
            problems: RefCell::new(Vec::new()),
            lock: RefCell::new(None),
        })
    }

    pub fn uri(&self) -> &str {
        &self.client.uri
    }

    /// How many HTTP requests this store has sent.
    pub fn calls(&self) -> u64 {
        self.client.calls.get()
    }

    fn err(&self, f: Failure) -> Error {
        f.into_error(&self.client.uri)
    }

    fn server_error(&self, message: impl Into<String>) -> Error {
        Error::Server {
            uri: self.client.uri.clone(),
            message: message.into(),
        }
    }

    /// Every page of a search endpoint.
    fn search_all(&self, endpoint: &str, key: &str, filter: Option<&str>) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut query = vec![("max_results", "1000")];
            if let Some(f) = filter {
                query.push(("filter", f));
            }
            if !token.is_empty() {
                query.push(("page_token", token.as_str()));
            }
            let page = self.client.get(endpoint, &query).map_err(|f| self.err(f))?;
            if let Some(items) = page[key].as_array() {
                out.extend(items.iter().cloned());
            }
            match page["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_string(),
                _ => return Ok(out),
            }
        }
    }

    fn model_from(&self, rm: &Value) -> ModelState {
        let alias = rm["aliases"].as_array().and_then(|aliases| {
            aliases
                .iter()
                .find(|a| a["alias"].as_str() == Some(self.config.alias.as_str()))
                .and_then(|a| a["version"].as_str().map(String::from))
        });
        ModelState {
            alias,
            tags: tags_of(rm),
            versions: BTreeMap::new(),
        }
    }

    /// The whole registry on the server: every registered model and every version.
    fn read_all(&self) -> Result<BTreeMap<String, ModelState>> {
        let mut models = BTreeMap::new();
        for rm in self.search_all("registered-models/search", "registered_models", None)? {
            let Some(name) = rm["name"].as_str() else {
                continue;
            };
            if name != LOCK_MODEL {
                models.insert(name.to_string(), self.model_from(&rm));
            }
        }
        for v in self.search_all("model-versions/search", "model_versions", None)? {
            let name = v["name"].as_str().unwrap_or_default();
            if let (Some(m), Some((n, state))) = (models.get_mut(name), version_of(&v)) {
                m.versions.insert(n, state);
            }
        }
        Ok(models)
    }

    /// One registered model and its versions, fresh from the server.
    fn read_model(&self, name: &str) -> Result<ModelState> {
        let rm = self
            .client
            .get("registered-models/get", &[("name", name)])
            .map_err(|f| self.err(f))?;
        let mut model = self.model_from(&rm["registered_model"]);
        let filter = format!("name='{}'", name.replace('\'', "\\'"));
        for v in self.search_all("model-versions/search", "model_versions", Some(&filter))? {
            if let Some((n, state)) = version_of(&v) {
                model.versions.insert(n, state);
            }
        }
        Ok(model)
    }

    /// The registry entries for the server's state; `root` maps sources inside the workspace.
    fn to_registry(
        &self,
        models: &BTreeMap<String, ModelState>,
        root: &str,
        fetched: &BTreeMap<(String, u64), String>,
        mut problems: Vec<String>,
    ) -> Registry {
        let mut entries = Vec::new();
        for (name, model) in models {
            if !is_plain_name(name) {
                problems.push(format!(
                    "registered model `{name}` is left out: runbook takes only names of letters, digits, `.`, `_`, `-` and `+`"
                ));
                continue;
            }
            if let Some(a) = &model.alias {
                if !a
                    .parse()
                    .is_ok_and(|n: u64| model.versions.contains_key(&n))
                {
                    problems.push(format!(
                        "`{name}`: alias `{}` points at version `{a}`, which does not exist",
                        self.config.alias
                    ));
                }
            }
            for (n, v) in &model.versions {
                let version = n.to_string();
                if v.mlflow_status != "READY" {
                    problems.push(format!(
                        "`{name}` `{version}`: MLflow says its status is `{}`, not `READY`",
                        v.mlflow_status
                    ));
                }
                let is_production = model.alias.as_deref() == Some(version.as_str());
                let status = if is_production {
                    Status::Production
                } else {
                    // A version that lost the alias without its tag being updated (a write
                    // cut short, another client) held it before: it is superseded.
                    match v.tags.get(TAG_STATUS).and_then(|s| Status::parse(s)) {
                        Some(Status::Production) => Status::Superseded,
                        Some(s) => s,
                        None => Status::Staging,
                    }
                };
                let promoted_at = v
                    .tags
                    .get(TAG_PROMOTED)
                    .filter(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())
                    .map(|t| Value::String(t.clone()))
                    .unwrap_or(Value::Null);
                let metrics: serde_json::Map<String, Value> = v
                    .tags
                    .iter()
                    .filter_map(|(k, val)| {
                        let key = k.strip_prefix(TAG_METRIC)?;
                        let value = val
                            .parse::<f64>()
                            .ok()
                            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                            .unwrap_or_else(|| Value::String(val.clone()));
                        Some((key.to_string(), value))
                    })
                    .collect();
                let created = chrono::DateTime::from_timestamp_millis(v.created_ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                let value = json!({
                    "name": name,
                    "version": version,
                    "model_path": fetched
                        .get(&(name.clone(), *n))
                        .cloned()
                        .unwrap_or_else(|| model_path(v, root)),
                    "is_production": is_production,
                    "status": status.as_str(),
                    "created_at": created,
                    "promoted_at": promoted_at,
                    "metrics": metrics,
                    "source": v.source,
                    "run_id": v.run_id,
                });
                match Entry::from_value(&value) {
                    Ok(e) => entries.push(std::rc::Rc::new(e)),
                    Err(m) => problems.push(format!("`{name}` `{version}` is left out: {m}")),
                }
            }
        }
        *self.problems.borrow_mut() = problems;
        Registry { entries }
    }

    /// Fetch the artifact of every version whose `source` is `mlflow-artifacts:` (and that
    /// names no workspace path) through the server into `.runbook/tmp/mlflow/<name>/<version>/`,
    /// once: a version's artifact never changes, so a file already there is used as it is.
    /// A fetch that fails is a `registry::check` problem, not a failed read.
    fn fetch_artifacts(
        &self,
        ws: &Workspace,
        models: &BTreeMap<String, ModelState>,
        root: &str,
    ) -> (BTreeMap<(String, u64), String>, Vec<String>) {
        let mut fetched = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, model) in models {
            if !is_plain_name(name) {
                continue;
            }
            for (n, v) in &model.versions {
                let Some(path) = artifact_path(&v.source) else {
                    continue;
                };
                if model_path(v, root) != v.source {
                    continue;
                }
                match self.fetch(ws, name, *n, path) {
                    Ok(p) => {
                        fetched.insert((name.clone(), *n), p);
                    }
                    Err(e) => problems.push(format!(
                        "`{name}` `{n}`: its artifact `{}` cannot be read through the server: {e}",
                        v.source
                    )),
                }
            }
        }
        (fetched, problems)
    }

    /// One version's artifact (a file, or a directory fetched file by file); returns its
    /// workspace path under `.runbook/tmp/`.
    fn fetch(&self, ws: &Workspace, name: &str, version: u64, path: &str) -> Result<String> {
        let leaf = path.rsplit('/').next().unwrap_or("artifact");
        let base = format!("mlflow/{name}/{version}/{leaf}");
        let shown = format!(".runbook/tmp/{base}");
        if ws.resolve(&shown).is_ok_and(|rel| ws.exists(&rel)) {
            return Ok(shown);
        }
        let mut files = Vec::new();
        self.list_artifacts(path, "", &mut files, 0)?;
        if files.is_empty() {
            // Not a directory: the path is the file itself.
            let bytes = self.client.artifact(path).map_err(|f| self.err(f))?;
            ws.keep_fetched(&base, &bytes)?;
        } else {
            for sub in files {
                let bytes = self
                    .client
                    .artifact(&format!("{path}/{sub}"))
                    .map_err(|f| self.err(f))?;
                ws.keep_fetched(&format!("{base}/{sub}"), &bytes)?;
            }
        }
        Ok(shown)
    }

    /// The files under an artifact directory, relative to it (nothing for a file).
    fn list_artifacts(
        &self,
        root: &str,
        sub: &str,
        out: &mut Vec<String>,
        depth: usize,
    ) -> Result<()> {
        let dir = if sub.is_empty() {
            root.to_string()
        } else {
            format!("{root}/{sub}")
        };
        let endpoint = "mlflow-artifacts/artifacts";
        let (status, html, bytes) = self
            .client
            .raw("GET", endpoint, &[("path", dir.as_str())], None)
            .map_err(|f| self.err(f))?;
        let listing = self
            .client
            .decode(endpoint, status, html, &String::from_utf8_lossy(&bytes))
            .map_err(|f| self.err(f))?;
        for f in listing["files"].as_array().into_iter().flatten() {
            let Some(p) = f["path"].as_str() else {
                continue;
            };
            // The listing gives names relative to the listed directory (or, in some
            // versions, to the root): keep the last component only.
            let leaf = p.rsplit('/').next().unwrap_or(p);
            let rel = if sub.is_empty() {
                leaf.to_string()
            } else {
                format!("{sub}/{leaf}")
            };
            if f["is_dir"] == true {
                if depth < 8 {
                    self.list_artifacts(root, &rel, out, depth + 1)?;
                }
            } else if out.len() < 10_000 {
                out.push(rel);
            }
        }
        Ok(())
    }

    /// The writes that make `change`, ordered so that the alias moves last but one: until it
    /// moves the registry reads as it was (the demoted version still holds the alias and the
    /// promoted one is still the newest superseded), after it the registry reads as new.
    fn plan(&self, change: &Change) -> Result<Vec<(String, Op)>> {
        let mut ops: Vec<(u8, String, Op)> = Vec::new();
        for c in &change.changed {
            let (name, version) = (c.name.clone(), c.version.clone());
            if c.old.is_null() {
                return Err(self.server_error(format!(
                    "`registry::register` cannot add `{name}` `{version}` here: MLflow numbers versions itself; register it with MLflow (`mlflow.register_model`, or `model-versions/create`) and runbook sees it"
                )));
            }
            if c.new.is_null() {
                ops.push((4, name, Op::DeleteVersion { version }));
                continue;
            }
            let promoted = c.new["is_production"] == true && c.old["is_production"] != true;
            if c.new["promoted_at"] != c.old["promoted_at"] {
                if let Some(at) = c.new["promoted_at"].as_str() {
                    ops.push((
                        1,
                        name.clone(),
                        Op::SetTag {
                            version: version.clone(),
                            key: TAG_PROMOTED,
                            value: at.to_string(),
                        },
                    ));
                }
            }
            if promoted {
                ops.push((
                    2,
                    name.clone(),
                    Op::SetAlias {
                        version: version.clone(),
                    },
                ));
            }
            if c.new["status"] != c.old["status"] {
                let value = c.new["status"].as_str().unwrap_or("staging").to_string();
                ops.push((
                    if promoted { 3 } else { 0 },
                    name,
                    Op::SetTag {
                        version,
                        key: TAG_STATUS,
                        value,
                    },
                ));
            }
        }
        ops.sort_by_key(|(order, _, _)| *order);
        Ok(ops.into_iter().map(|(_, n, op)| (n, op)).collect())
    }

    fn send_op(&self, name: &str, op: &Op) -> std::result::Result<Value, Failure> {
        match op {
            Op::SetTag {
                version,
                key,
                value,
            } => self.client.post(
                "model-versions/set-tag",
                json!({"name": name, "version": version, "key": key, "value": value}),
            ),
            Op::SetAlias { version } => self.client.post(
                "registered-models/alias",
                json!({"name": name, "alias": self.config.alias, "version": version}),
            ),
            Op::DeleteVersion { version } => self.client.delete(
                "model-versions/delete",
                json!({"name": name, "version": version}),
            ),
        }
    }

    /// A real run's change: check the server still holds what this run read, write, record
    /// the history, read back.
    fn send(&self, run_id: &str, change: &Change, ops: &[(String, Op)]) -> Result<()> {
        let mut names: Vec<&str> = change.changed.iter().map(|c| c.name.as_str()).collect();
        names.dedup();
        let mut fresh = BTreeMap::new();
        let untouched = "nothing was written to the server; the registry is as it was";
        for name in &names {
            let now = self
                .read_model(name)
                .map_err(|e| with_state(e, untouched))?;
            let seen = self
                .server
                .borrow()
                .as_ref()
                .and_then(|s| s.get(*name).cloned())
                .unwrap_or_default();
            if now.decided() != seen.decided() {
                return Err(self.server_error(format!(
                    "`{name}` changed on the server since this run read it ({}); another client wrote it, so nothing was written; run again to work from what the server holds now",
                    difference(&self.config.alias, &seen, &now),
                )));
            }
            fresh.insert(name.to_string(), now);
        }
        let alias = self.config.alias.as_str();
        let mut done: Vec<String> = Vec::new();
        let mut moved = false;
        for (name, op) in ops {
            if let Err(f) = self.send_op(name, op) {
                let e = self.err(f);
                let state = if done.is_empty() {
                    untouched.to_string()
                } else if moved {
                    format!(
                        "the registry is in its new state (alias `{alias}` moved), but not all of its tags and history were written (done: {}; not done: {}); check it with `registry::check` once the server answers",
                        done.join(", "),
                        op.describe(alias)
                    )
                } else {
                    format!(
                        "the registry is as it was (alias `{alias}` not moved; written so far: {}); running again is safe",
                        done.join(", ")
                    )
                };
                return Err(with_state(e, &state));
            }
            moved |= matches!(op, Op::SetAlias { .. });
            done.push(op.describe(alias));
        }
        self.append_history(run_id, change, &fresh)?;
        // MLflow cannot compare-and-set: read every write back, so a concurrent writer that
        // slipped past the lock (or a server that dropped a write) is reported, not missed.
        let mut server = self.server.borrow_mut();
        let server = server.get_or_insert_with(BTreeMap::new);
        for name in &names {
            let mut expected = fresh.get(*name).cloned().unwrap_or_default();
            for (n, op) in ops {
                if n == name {
                    op.simulate(&mut expected);
                }
            }
            let back = self.read_model(name).map_err(|e| {
                with_state(
                    e,
                    "every write was sent, but reading them back failed; check the registry with `registry::check` once the server answers",
                )
            })?;
            if back.decided() != expected.decided() {
                return Err(self.server_error(format!(
                    "after writing `{name}` the server shows alias `{alias}` on {} (expected {}) or other tags than written; another client wrote at the same time; check it with `registry::check` and the history tags `runbook.history.*`",
                    shown(&back.alias),
                    shown(&expected.alias)
                )));
            }
            server.insert(name.to_string(), back);
        }
        Ok(())
    }

    fn append_history(
        &self,
        run_id: &str,
        change: &Change,
        fresh: &BTreeMap<String, ModelState>,
    ) -> Result<()> {
        let ts = crate::effects::journal::now_rfc3339();
        let (host, user) = (host_name(), user_name());
        let mut seq: BTreeMap<&str, u64> = fresh
            .iter()
            .map(|(n, m)| (n.as_str(), m.next_history_seq()))
            .collect();
        for c in &change.changed {
            let n = seq.entry(c.name.as_str()).or_insert(1);
            let record = json!({
                "ts": ts, "run_id": run_id, "host": host, "user": user,
                "pid": std::process::id(), "op": c.op, "version": c.version,
                "old": brief(&c.old), "new": brief(&c.new),
            });
            let key = format!("{TAG_HISTORY}{:06}", *n);
            *n += 1;
            self.client
                .post(
                    "registered-models/set-tag",
                    json!({"name": c.name, "key": key, "value": record.to_string()}),
                )
                .map_err(|f| {
                    with_state(
                        self.err(f),
                        &format!("the registry is in its new state but its history record `{key}` was not written"),
                    )
                })?;
        }
        Ok(())
    }

    /// The history the server keeps for `name`, oldest first.
    pub fn history(&self, name: &str) -> Result<Vec<Value>> {
        let model = self.read_model(name)?;
        Ok(model
            .tags
            .iter()
            .filter(|(k, _)| k.starts_with(TAG_HISTORY))
            .filter_map(|(_, v)| serde_json::from_str(v).ok())
            .collect())
    }

    /// Take the server's lock for this run, or say who holds it.
    fn take_lock(&self, run_id: &str) -> Result<Held> {
        let now = chrono::Utc::now();
        let ttl = chrono::Duration::from_std(self.config.lock_ttl)
            .unwrap_or(chrono::Duration::minutes(15));
        let holder = json!({
            "run_id": run_id, "host": host_name(), "user": user_name(), "pid": std::process::id(),
            "since": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "expires_at": (now + ttl).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        for attempt in 0..2 {
            match self.client.post(
                "registered-models/create",
                json!({"name": LOCK_MODEL, "description": holder.to_string()}),
            ) {
                Ok(_) => {
                    return Ok(Held {
                        run_id: run_id.into(),
                    })
                }
                Err(f) if f.is("RESOURCE_ALREADY_EXISTS") => {
                    let current = self.lock_holder()?;
                    let expired = current
                        .as_ref()
                        .and_then(|h| h["expires_at"].as_str())
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .is_some_and(|t| t < now);
                    if expired && attempt == 0 {
                        // A run that died without releasing it: its lock has expired.
                        match self
                            .client
                            .delete("registered-models/delete", json!({"name": LOCK_MODEL}))
                        {
                            Ok(_) => continue,
                            Err(f) if f.is("RESOURCE_DOES_NOT_EXIST") => continue,
                            Err(f) => return Err(self.err(f)),
                        }
                    }
                    return Err(self.server_error(format!(
                        "the registry is locked by {}; wait for that run to finish, or, if it is gone, run `runbook unlock -w WORKSPACE`",
                        describe_holder(current.as_ref())
                    )));
                }
                Err(f) => return Err(self.err(f)),
            }
        }
        Err(self
            .server_error("the registry's lock changed hands while this run took it; run again"))
    }

    /// Who holds the lock (`None` when nobody does).
    fn lock_holder(&self) -> Result<Option<Value>> {
        match self
            .client
            .get("registered-models/get", &[("name", LOCK_MODEL)])
        {
            Ok(v) => Ok(Some(
                v["registered_model"]["description"]
                    .as_str()
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or(Value::Null),
            )),
            Err(f) if f.is("RESOURCE_DOES_NOT_EXIST") => Ok(None),
            Err(f) => Err(self.err(f)),
        }
    }

    fn release(&self, held: &Held) -> Result<()> {
        let holder = self.lock_holder()?;
        if holder.as_ref().and_then(|h| h["run_id"].as_str()) == Some(held.run_id.as_str()) {
            self.client
                .delete("registered-models/delete", json!({"name": LOCK_MODEL}))
                .map_err(|f| self.err(f))?;
        }
        Ok(())
    }

    /// `runbook unlock`: remove the lock whoever holds it; says whose it was.
    pub fn unlock(&self) -> Result<String> {
        let Some(holder) = self.lock_holder()? else {
            return Ok(format!(
                "the registry at `{}` is not locked",
                self.client.uri
            ));
        };
        match self
            .client
            .delete("registered-models/delete", json!({"name": LOCK_MODEL}))
        {
            Ok(_) | Err(Failure::Api { .. }) => {}
            Err(f) => return Err(self.err(f)),
        }
        Ok(format!(
            "removed the lock of {} from `{}`",
            describe_holder(Some(&holder)),
            self.client.uri
        ))
    }
}

/// A server error with what it left behind appended, so the run reports it.
fn with_state(e: Error, state: &str) -> Error {
    match e {
        Error::Server { uri, message } => Error::Server {
            uri,
            message: format!("{message}; {state}"),
        },
        other => other,
    }
}

/// What differs between two reads of a model, in the words of a message.
fn difference(alias: &str, before: &ModelState, after: &ModelState) -> String {
    if before.alias != after.alias {
        return format!(
            "alias `{alias}` was on {}, is now on {}",
            shown(&before.alias),
            shown(&after.alias)
        );
    }
    let list = |ns: Vec<&u64>| {
        ns.iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let added: Vec<&u64> = after
        .versions
        .keys()
        .filter(|n| !before.versions.contains_key(n))
        .collect();
    let removed: Vec<&u64> = before
        .versions
        .keys()
        .filter(|n| !after.versions.contains_key(n))
        .collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("new versions {}", list(added)));
    }
    if !removed.is_empty() {
        parts.push(format!("versions {} deleted", list(removed)));
    }
    if parts.is_empty() {
        parts.push("`runbook.` tags of its versions changed".to_string());
    }
    parts.join(", ")
}

fn shown(v: &Option<String>) -> String {
    v.as_ref()
        .map(|v| format!("version `{v}`"))
        .unwrap_or_else(|| "no version".into())
}

fn describe_holder(holder: Option<&Value>) -> String {
    match holder {
        Some(h) if h.is_object() => format!(
            "run `{}` on host `{}` (pid {}, user `{}`, until {})",
            h["run_id"].as_str().unwrap_or("?"),
            h["host"].as_str().unwrap_or("?"),
            h["pid"],
            h["user"].as_str().unwrap_or("?"),
            h["expires_at"].as_str().unwrap_or("?")
        ),
        _ => format!("a client that did not say who it is (the registered model `{LOCK_MODEL}`)"),
    }
}

/// The part of an entry the history keeps.
fn brief(v: &Value) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    json!({
        "status": v["status"], "is_production": v["is_production"],
        "promoted_at": v["promoted_at"], "model_path": v["model_path"], "source": v["source"],
    })
}

fn model_path(v: &VersionState, root: &str) -> String {
    if let Some(p) = v.tags.get(TAG_MODEL_PATH).filter(|p| !p.is_empty()) {
        return p.clone();
    }
    let path = v.source.strip_prefix("file://").unwrap_or(&v.source);
    let inside = path
        .strip_prefix(root)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|rest| !rest.is_empty());
    match inside {
        Some(rel) => rel.to_string(),
        None if v.source.is_empty() => "(no source)".into(),
        None => v.source.clone(),
    }
}

/// The path an `mlflow-artifacts:` source has in the server's artifact proxy
/// (`mlflow-artifacts:/e/r/artifacts/m`, or with a host: `mlflow-artifacts://h:5000/e/...`).
fn artifact_path(source: &str) -> Option<&str> {
    let rest = source.strip_prefix("mlflow-artifacts:")?;
    let rest = match rest.strip_prefix("//") {
        Some(with_host) => &with_host[with_host.find('/')?..],
        None => rest,
    };
    let path = rest.trim_start_matches('/').trim_end_matches('/');
    (!path.is_empty() && !path.split('/').any(|c| c == ".." || c == ".")).then_some(path)
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer it is given.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".into()
    }
}

fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

impl Store for MlflowStore {
    fn name(&self) -> String {
        self.client.uri.clone()
    }

    fn load(&self, ws: &Workspace) -> Result<Rc<Registry>> {
        if let Some(view) = self.view.borrow().as_ref() {
            return Ok(view.clone());
        }
        // A real run takes the server's lock before it reads, so what it reads is what it
        // changes; a dry run takes nothing.
        if self.lock.borrow().is_none() {
            if let Some(held) = ws.hold_remote(|| self.take_lock(ws.run_id()))? {
                *self.lock.borrow_mut() = Some(held);
            }
        }
        let models = self.read_all()?;
        let root = ws.display_root().display().to_string();
        let (fetched, problems) = self.fetch_artifacts(ws, &models, &root);
        let reg = Rc::new(self.to_registry(&models, &root, &fetched, problems));
        *self.server.borrow_mut() = Some(models);
        *self.view.borrow_mut() = Some(reg.clone());
        Ok(reg)
    }

    fn apply(&self, writer: &StoreWriter<'_>, change: &Change) -> Result<()> {
        let ops = self.plan(change)?;
        writer.remote(|| self.send(writer.run_id(), change, &ops))?;
        *self.view.borrow_mut() = Some(Rc::new(change.next.clone()));
        Ok(())
    }

    fn problems(&self) -> Vec<String> {
        self.problems.borrow().clone()
    }
}

impl Drop for MlflowStore {
    fn drop(&mut self) {
        if let Some(held) = self.lock.borrow_mut().take() {
            if let Err(e) = self.release(&held) {
                eprintln!("warning: {e}; the lock stays until it expires, or run `runbook unlock`");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(source: &str, tags: &[(&str, &str)]) -> VersionState {
        VersionState {
            source: source.into(),
            run_id: String::new(),
            mlflow_status: "READY".into(),
            created_ms: 0,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn model_path_prefers_the_tag_then_a_source_inside_the_workspace() {
        let tagged = version("/srv/art/m.json", &[(TAG_MODEL_PATH, "models/m_v1.json")]);
        assert_eq!(model_path(&tagged, "/ws"), "models/m_v1.json");
        assert_eq!(
            model_path(&version("file:///ws/models/a.json", &[]), "/ws"),
            "models/a.json"
        );
        assert_eq!(
            model_path(&version("/ws/models/a.json", &[]), "/ws"),
            "models/a.json"
        );
        assert_eq!(
            model_path(&version("/wsother/a.json", &[]), "/ws"),
            "/wsother/a.json"
        );
        assert_eq!(
            model_path(&version("mlflow-artifacts:/1/x/artifacts/m", &[]), "/ws"),
            "mlflow-artifacts:/1/x/artifacts/m"
        );
    }

    #[test]
    fn artifact_paths_come_from_mlflow_artifacts_uris_only() {
        assert_eq!(
            artifact_path("mlflow-artifacts:/1/abc/artifacts/model"),
            Some("1/abc/artifacts/model")
        );
        assert_eq!(
            artifact_path("mlflow-artifacts://host:5000/1/abc/artifacts/m.json"),
            Some("1/abc/artifacts/m.json")
        );
        assert_eq!(artifact_path("mlflow-artifacts:/1/../../etc"), None);
        assert_eq!(artifact_path("s3://bucket/m"), None);
        assert_eq!(artifact_path("/srv/m.json"), None);
    }

    #[test]
    fn html_pages_are_named_by_their_title() {
        assert_eq!(
            html_title("<html><head><TITLE> 502 Bad Gateway </TITLE>").as_deref(),
            Some("title `502 Bad Gateway`")
        );
        assert_eq!(snippet("  "), "an empty body");
    }
}
