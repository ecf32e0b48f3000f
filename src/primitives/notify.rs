//! `notify::` — tell people about the rollback (plan §6) through the sinks the workspace's
//! `runbook.yaml` configures (`notify:`: print, append to a file, POST JSON to a webhook, run
//! a command), so a team points notifications at its own chat tool without editing runbooks.
//!
//! Bindings only: the sinks are read and the message delivered by the effect door
//! (`effects/notify.rs`), which journals it; a dry run shows the message and sends nothing.
//! A sink that fails is reported and the call still succeeds: a notification never stops, or
//! undoes, a rollback.

use super::{dynamic_to_json, Family, RhaiResult};
use crate::context::{Ctx, RunContext};
use crate::effects::{notify, Effect, Record};
use crate::error::Result;
use rhai::{Array, Dynamic, Map, NativeCallContext};
use serde_json::json;

fn send(ctx: &RunContext, text: &str, fields: Option<&Map>) -> Result<Map> {
    let sinks = notify::sinks(&ctx.ws)?;
    let mut message = json!({
        "text": text,
        "run_id": ctx.ws.run_id(),
        "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let Some(fields) = fields {
        for (k, v) in fields {
            if !matches!(k.as_str(), "text" | "run_id" | "ts") {
                message[k.as_str()] = dynamic_to_json(v);
            }
        }
    }
    let shown: Vec<String> = sinks.iter().map(|s| s.describe()).collect();
    let out = ctx.ws.perform(
        Effect::Notify {
            sinks: &sinks,
            message: &message,
        },
        |o| {
            let results: Vec<_> = o
                .deliveries
                .iter()
                .map(|d| json!({"sink": d.sink, "outcome": d.outcome, "error": d.error}))
                .collect();
            Record::new(
                "notify.send",
                json!({"text": text, "sinks": shown}),
                format!("notify {}: {text}", shown.join(", ")),
            )
            .with_result(json!(results))
        },
    )?;
    let mut failed = Array::new();
    let mut sent = 0i64;
    for d in &out.deliveries {
        match &d.error {
            Some(e) => {
                ctx.journal().message(
                    "warn",
                    &format!("notification to {} failed: {e}; the run goes on", d.sink),
                );
                let mut m = Map::new();
                m.insert("sink".into(), d.sink.clone().into());
                m.insert("error".into(), e.clone().into());
                failed.push(m.into());
            }
            None if d.outcome == "sent" => sent += 1,
            None => {}
        }
    }
    let mut result = Map::new();
    result.insert("sent".into(), sent.into());
    result.insert("failed".into(), failed.into());
    Ok(result)
}

pub fn family(ctx: &Ctx) -> Family {
    let mut f = Family::new(
        "notify",
        "Notifications to the sinks `runbook.yaml` configures (`notify:`); a dry run sends nothing.",
    );
    let c = ctx.clone();
    f.add(
        "send",
        &["text: &str", "Map"],
        "Send `text` to every sink of the workspace's `runbook.yaml` (`notify:` — `print`, `file` (appends a JSON line), `webhook` (POSTs JSON `{text, run_id, ts}`), `command` (the text on stdin); without that section, print). A dry run shows the message and sends nothing. A failing sink is reported and does not fail the call. Returns `#{ sent, failed }` (`failed`: `[#{ sink, error }]`).\n```rhai\nlet r = notify::send(\"rolling back sl_forecaster v5\");\nif !r.failed.is_empty() { print(`not delivered: ${r.failed}`); }\n```",
        move |call: NativeCallContext, text: &str| -> RhaiResult<Map> {
            send(&c, text, None).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "send",
        &["text: &str", "fields: Map", "Map"],
        "Like `notify::send(text)`, with more fields in the JSON message (such as `severity` or `model`).\n```rhai\nnotify::send(\"rollback complete\", #{ severity: \"info\", model: \"sl_forecaster\" });\n```",
        move |call: NativeCallContext, text: &str, fields: Map| -> RhaiResult<Map> {
            send(&c, text, Some(&fields)).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "sinks",
        &["Array"],
        "The configured sinks, as they are named in messages (`print`, ``file `notifications.log` ``, ...).\n```rhai\nprint(`notifications go to ${notify::sinks()}`);\n```",
        move |call: NativeCallContext| -> RhaiResult<Array> {
            let sinks = notify::sinks(&c.ws).map_err(|e| c.fail_at(&call, e))?;
            Ok(sinks.iter().map(|s| Dynamic::from(s.describe())).collect())
        },
    );
    f
}
