//! Notifications (rollback plan §6): where a runbook's `notify::send` messages go is chosen
//! by the workspace's `runbook.yaml`, not by the runbook:
//!
//! ```yaml
//! notify:
//!   - {type: print}                                   # the console and the run log
//!   - {type: file, path: notifications.log}           # appended, one JSON object a line
//!   - {type: webhook, url: http://chat.example/hook, timeout: 5s}   # POST of JSON
//!   - {type: command, argv: [notify-team, --channel, ops]}          # the message on stdin
//! ```
//!
//! A notification is one [`super::Effect::Notify`]: a dry run shows the message and sends
//! nothing; a real run delivers it to every sink and reports each sink's outcome. A sink that
//! fails is reported (journal and console) and does not fail the call, so a chat server that
//! is down never stops, or undoes, a rollback. Without a `notify:` section messages are
//! printed. Commands follow the `commands:` policy (`--no-exec`, `allow`, confinement).

use super::{RelPath, Workspace};
use crate::error::{Error, Result};
use serde_json::Value;
use std::time::Duration;

/// Where a message goes.
#[derive(Debug, Clone)]
pub enum Sink {
    Print,
    File(RelPath),
    Webhook { url: String, timeout: Duration },
    Command(Vec<String>),
}

impl Sink {
    pub fn describe(&self) -> String {
        match self {
            Sink::Print => "print".into(),
            Sink::File(p) => format!("file `{p}`"),
            Sink::Webhook { url, .. } => format!("webhook `{url}`"),
            Sink::Command(argv) => format!("command `{}`", argv.join(" ")),
        }
    }
}

/// What happened at one sink.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub sink: String,
    /// `sent`, `would_send` (dry run) or `failed`.
    pub outcome: &'static str,
    pub error: Option<String>,
}

/// The sinks `runbook.yaml` configures (`notify:`), checked before anything is sent; print
/// only when there is no such section.
pub fn sinks(ws: &Workspace) -> Result<Vec<Sink>> {
    let rel = ws.resolve(crate::registry::CONFIG_FILE)?;
    if !ws.exists(&rel) {
        return Ok(vec![Sink::Print]);
    }
    let doc = crate::document::parse_yaml(&ws.read(&rel)?, crate::registry::CONFIG_FILE)?;
    let Some(section) = doc.get("notify") else {
        return Ok(vec![Sink::Print]);
    };
    let bad = |m: String| Error::invalid(format!("`{}`", crate::registry::CONFIG_FILE), m);
    let list = section.as_array().ok_or_else(|| {
        bad("`notify` must be a list of sinks such as `[{type: print}, {type: file, path: notifications.log}]`".into())
    })?;
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let field = |k: &str| item.get(k).and_then(Value::as_str);
        let sink = match field("type") {
            Some("print") => Sink::Print,
            Some("file") => {
                let path = field("path").ok_or_else(|| {
                    bad(format!(
                        "`notify[{i}]` (a file) needs `path`, a workspace file"
                    ))
                })?;
                Sink::File(ws.resolve_writable(path)?)
            }
            Some("webhook") => {
                let url = field("url")
                    .ok_or_else(|| bad(format!("`notify[{i}]` (a webhook) needs `url`")))?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad(format!(
                        "`notify[{i}].url` `{url}` is not an http:// or https:// URL"
                    )));
                }
                let timeout = match field("timeout") {
                    None => Duration::from_secs(10),
                    Some(t) => crate::runner::parse_duration(t)
                        .map_err(|e| bad(format!("`notify[{i}].timeout`: {e}")))?,
                };
                Sink::Webhook {
                    url: url.to_string(),
                    timeout,
                }
            }
            Some("command") => {
                let argv: Vec<String> = item
                    .get("argv")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().map(|v| v.as_str().map(String::from)).collect())
                    .filter(|a: &Vec<String>| !a.is_empty())
                    .ok_or_else(|| {
                        bad(format!(
                            "`notify[{i}]` (a command) needs `argv`, a list such as `[notify-team, --channel, ops]`"
                        ))
                    })?;
                Sink::Command(argv)
            }
            other => {
                return Err(bad(format!(
                "`notify[{i}].type` is {}; the types are `print`, `file`, `webhook` and `command`",
                other
                    .map(|t| format!("`{t}`"))
                    .unwrap_or_else(|| "missing".into())
            )))
            }
        };
        out.push(sink);
    }
    Ok(out)
}

/// Deliver `message` (a JSON object with at least `text`) to every sink; a real run only.
pub(super) fn deliver(ws: &Workspace, sinks: &[Sink], message: &Value) -> Vec<Delivery> {
    let text = message["text"].as_str().unwrap_or_default();
    sinks
        .iter()
        .map(|sink| {
            let result = match sink {
                Sink::Print => {
                    ws.journal().message("info", &format!("notify: {text}"));
                    Ok(())
                }
                Sink::File(rel) => ws.append(rel, format!("{message}\n").as_bytes()),
                Sink::Webhook { url, timeout } => post(url, *timeout, message),
                Sink::Command(argv) => ws.command_policy().and_then(|policy| {
                    let scratch = ws.scratch()?;
                    super::command::notify(
                        &policy,
                        argv,
                        text,
                        &scratch.abs(),
                        ws.display_root(),
                        Duration::from_secs(30),
                    )
                }),
            };
            match result {
                Ok(()) => Delivery {
                    sink: sink.describe(),
                    outcome: "sent",
                    error: None,
                },
                Err(e) => Delivery {
                    sink: sink.describe(),
                    outcome: "failed",
                    error: Some(e.to_string()),
                },
            }
        })
        .collect()
}

/// The dry run's answer: nothing is sent. A file sink's line lands in the dry run's overlay,
/// so the state a dry run ends with is the one the real run leaves.
pub(super) fn simulate(ws: &Workspace, sinks: &[Sink], message: &Value) -> Vec<Delivery> {
    sinks
        .iter()
        .map(|s| {
            let error = match s {
                Sink::File(rel) => ws
                    .append(rel, format!("{message}\n").as_bytes())
                    .err()
                    .map(|e| e.to_string()),
                _ => None,
            };
            Delivery {
                sink: s.describe(),
                outcome: if error.is_some() {
                    "failed"
                } else {
                    "would_send"
                },
                error,
            }
        })
        .collect()
}

fn post(url: &str, timeout: Duration, message: &Value) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let what = format!("webhook `{url}`");
    let resp = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(message.to_string())
        .map_err(|e| Error::invalid(what.clone(), format!("cannot be reached: {e}")))?;
    let status = resp.status().as_u16();
    if status >= 400 {
        return Err(Error::invalid(what, format!("answered {status}")));
    }
    Ok(())
}
